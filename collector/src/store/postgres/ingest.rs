//! Ingest: agent messages applied in one transaction — the message log, agent status,
//! sightings, identity resolution and merges, attribute history, services and their peers.
//!
//! Which records are one device, which identities count and what a merge says are decided by
//! [`crate::compliance::identity`]; this file only reads and writes the rows those decisions
//! need.
//!
//! PostgreSQL: the same decisions as the SQLite twin, in far fewer round trips (each statement
//! is one; SQLite's are function calls). A batch is, under the write lock:
//! - its messages in one `INSERT … SELECT * FROM unnest(…) … RETURNING` (which are new);
//! - the sightings and identities its records look up, read in one query each into a [`View`]
//!   that the transaction's own writes keep current (the write lock keeps everyone else's out);
//! - the write-only upserts (sightings, device periods, identities, attributes,
//!   classifications, services, peers) folded per row in Rust ([`Buffers`]) the way the
//!   statement would fold them one by one (min first, max last, the latest report's agent),
//!   and written as one statement per table before commit — and before any merge, which reads
//!   the stored rows and moves them between devices.
//!
//! What stays one statement each: a new device (its id comes back), the software-version
//! timeline (a read-modify-write per change, [`super::versions::record`]), merges, statuses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::sql::{params, Connection, NativeParam, Transaction};
use ward_protocols::schema::observation::{DeviceRecord, Observation, ServiceRecord};
use ward_protocols::schema::status::StatusMessage;

use super::merge::{candidate, merge};
use super::{db, exec};

/// A driver error of a native statement's row, as the store reports it.
fn pg(context: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Postgres {
        context: context.to_string(),
        source: e.into(),
    }
}
use crate::compliance::identity::{self, Ident, MergeDecision};
use crate::store::{IngestStats, Message, ServiceDirection, StoreError};

/// Times within this much of what this process already committed are not written again:
/// agents send a delta every few seconds for every active device, and rewriting each of its rows
/// each time would bound ingest by row updates, not by new information. Stored first/last-seen
/// times are therefore exact to within this resolution.
pub const TIME_RESOLUTION_US: i64 = 60_000_000;

/// Most rows remembered before the cache starts over.
const CACHE_MAX: usize = 1 << 20;

/// What this process committed for one row: `(first_us, last_us)`. Stored ranges only ever
/// widen (min/max), whoever writes them, so a range inside one we committed is already stored —
/// which keeps this safe with several collectors sharing the database. Filled only after commit.
#[derive(Debug, Default)]
pub(super) struct WriteCache {
    rows: HashMap<RowKey, (i64, i64)>,
}

/// `(table, device, row key within the device)`.
type RowKey = (u8, i64, String);

impl WriteCache {
    fn covers(&self, key: &RowKey, first: i64, last: i64) -> bool {
        self.rows
            .get(key)
            .is_some_and(|&(f, l)| first >= f && last <= l + TIME_RESOLUTION_US)
    }

    fn commit(&mut self, pending: Vec<(RowKey, (i64, i64))>) {
        if self.rows.len() + pending.len() > CACHE_MAX {
            self.rows.clear();
        }
        for (k, (f, l)) in pending {
            let e = self.rows.entry(k).or_insert((f, l));
            e.0 = e.0.min(f);
            e.1 = e.1.max(l);
        }
    }
}

struct Ingest<'a> {
    tx: &'a Transaction<'a>,
    stats: IngestStats,
    cache: &'a WriteCache,
    pending: Vec<(RowKey, (i64, i64))>,
    merged: bool,
    /// Devices this batch wrote a row of (merges: both), recorded for the evaluator
    /// ([`super::evaluation::record_changes`]).
    changed: std::collections::BTreeSet<i64>,
    agents: HashMap<(String, String), i64>,
    view: View,
    buf: Buffers,
    /// Device ids taken from the sequence and not used yet.
    reserved: std::collections::VecDeque<i64>,
    /// The batch's sightings not stored when it started, not yet processed: the most devices
    /// the rest of the batch can create.
    prefetched_unsighted: HashSet<SightingKey>,
    unsighted_left: usize,
}

/// `(site, agent_id, key)` of a sighting.
type SightingKey = (String, String, String);

/// The stored rows the batch's records look up, as the transaction sees them: read once at the
/// start for every key the batch names, then kept current by the transaction's own writes and
/// merges. Writers hold the write lock, so no other collector changes them meanwhile. A key
/// absent here (never the case for the batch's own records) is read from the database.
#[derive(Debug, Default)]
struct View {
    /// `(site, agent, key)` → device, for the sightings the batch names (absent: none stored).
    sightings: HashMap<SightingKey, Option<i64>>,
    /// `(kind, value)` → every device holding that identity, for the identities the batch names
    /// (primary and strong).
    identities: HashMap<(String, String), BTreeSet<i64>>,
}

impl View {
    /// What a merge did to the rows: every identity and sighting of `absorbed` now `kept`'s.
    fn merged(&mut self, kept: i64, absorbed: i64) {
        for devs in self.identities.values_mut() {
            if devs.remove(&absorbed) {
                devs.insert(kept);
            }
        }
        for d in self.sightings.values_mut() {
            if *d == Some(absorbed) {
                *d = Some(kept);
            }
        }
    }
}

/// The upsert of one row, pending: the values one statement will write, folded from every
/// write of the transaction to that row as the row's own `ON CONFLICT … DO UPDATE` would fold
/// them one at a time (PostgreSQL refuses to update one row twice in a statement, and one
/// statement per write is one round trip per write).
#[derive(Debug, Clone)]
struct Span<T> {
    first: i64,
    last: i64,
    /// What the latest write (the greatest `last`, the later write on a tie) carried: the
    /// `CASE WHEN excluded.last_us >= last_us` columns.
    latest: T,
}

impl<T> Span<T> {
    fn fold(&mut self, first: i64, last: i64, latest: T) {
        self.first = self.first.min(first);
        if last >= self.last {
            self.latest = latest;
        }
        self.last = self.last.max(last);
    }
}

fn fold<K: Ord, T>(map: &mut BTreeMap<K, Span<T>>, key: K, first: i64, last: i64, latest: T) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut e) => {
            e.get_mut().fold(first, last, latest)
        }
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Span {
                first,
                last,
                latest,
            });
        }
    }
}

/// A pending attribute: its span with the latest `(site, agent)`, and the greatest count.
type AttributeRow = (Span<(String, String)>, i64);
/// `(device, direction, transport, port)`.
type ServiceKey = (i64, String, String, i64);
/// A pending service: `(app, peers, first, last, count)`.
type ServiceRow = (Option<String>, i64, i64, i64, i64);

/// The transaction's pending write-only upserts, one entry per row (ordered by key, so that
/// writers take row locks in one order).
#[derive(Debug, Default)]
struct Buffers {
    /// New devices: `(id, first, last)`.
    new_devices: Vec<(i64, i64, i64)>,
    /// Sightings: the device of the latest write (`device_id = excluded.device_id`) and the
    /// first write's VLAN (the upsert keeps the stored one).
    sightings: BTreeMap<SightingKey, (i64, Option<i64>, i64, i64)>,
    /// Device periods: `(first, last)`.
    devices: BTreeMap<i64, (i64, i64)>,
    /// `(kind, value, device)` → agent.
    identities: BTreeMap<(String, String, i64), Span<String>>,
    /// `(device, name, value)` → `(site, agent)`, and the greatest count.
    attributes: BTreeMap<(i64, String, String), AttributeRow>,
    /// device → the latest classification record.
    classifications: BTreeMap<i64, (i64, String)>,
    /// `(device, direction, transport, port)` → `(app: the latest recognised one, peers, first,
    /// last, count)`.
    services: BTreeMap<ServiceKey, ServiceRow>,
    /// `(device, direction, transport, port, peer)`.
    peers: BTreeSet<(i64, String, String, i64, String)>,
    /// Software-version sightings for the timeline, in arrival order (each one's effect
    /// depends on the episodes before it).
    versions: Vec<VersionSighting>,
}

/// One call of [`super::versions::record`], pending.
#[derive(Debug)]
struct VersionSighting {
    dev: i64,
    value: String,
    first: i64,
    last: i64,
    site: String,
    agent: String,
    fields: Vec<&'static str>,
}

/// A stored `version_episodes` row of one device.
#[derive(Debug, Clone, PartialEq)]
struct Episode {
    value: String,
    first: i64,
    last: i64,
    site: String,
    agent: String,
    fields: Vec<String>,
}

/// [`super::versions::record`] on a device's episodes in memory (ordered as `versions::read`
/// orders them): the same three cases, the same rows as its statements leave.
fn record_version(eps: &mut Vec<Episode>, v: &VersionSighting) {
    let joined = |old: &[String]| {
        let mut all = old.to_vec();
        for f in &v.fields {
            if !all.iter().any(|a| a == f) {
                all.push((*f).to_owned());
            }
        }
        all
    };
    let taken = |eps: &[Episode]| eps.iter().any(|e| e.first == v.first && e.value == v.value);
    let prev = eps.iter().rposition(|e| e.first <= v.first);
    let next = eps.iter().position(|e| e.first > v.first);
    if let Some(p) = prev.filter(|&p| eps[p].value == v.value) {
        let e = &mut eps[p];
        if v.last >= e.last {
            e.site.clone_from(&v.site);
            e.agent.clone_from(&v.agent);
        }
        e.last = e.last.max(v.last);
        e.fields = joined(&e.fields);
    } else if let Some(n) = next.filter(|&n| eps[n].value == v.value) {
        // Moved back unless that would collide with a stored row (UPDATE … AND NOT EXISTS).
        if !taken(eps) {
            eps[n].first = v.first;
            eps[n].fields = joined(&eps[n].fields);
        }
    } else if !taken(eps) {
        eps.push(Episode {
            value: v.value.clone(),
            first: v.first,
            last: v.last,
            site: v.site.clone(),
            agent: v.agent.clone(),
            fields: joined(&[]),
        });
    }
    eps.sort_by(|a, b| (a.first, a.last, &a.value).cmp(&(b.first, b.last, &b.value)));
}

impl Buffers {
    fn is_empty(&self) -> bool {
        self.new_devices.is_empty()
            && self.sightings.is_empty()
            && self.devices.is_empty()
            && self.identities.is_empty()
            && self.attributes.is_empty()
            && self.classifications.is_empty()
            && self.services.is_empty()
            && self.peers.is_empty()
            && self.versions.is_empty()
    }
}

const T_SIGHTING: u8 = 0;
const T_DEVICE: u8 = 1;
const T_IDENTITY: u8 = 2;
const T_ATTRIBUTE: u8 = 3;
const T_SERVICE: u8 = 4;
const T_PEER: u8 = 5;

impl Ingest<'_> {
    /// Whether a row needs writing; remembers it for the cache if so.
    fn need(&mut self, table: u8, dev: i64, key: String, first: i64, last: i64) -> bool {
        let k = (table, dev, key);
        if self.cache.covers(&k, first, last) {
            return false;
        }
        self.changed.insert(dev);
        self.pending.push((k, (first, last)));
        true
    }
}

impl Ingest<'_> {
    /// Records the batch's observations in the message log, all in one statement; for each
    /// message of `batch`, whether it is new (a duplicate, stored before or earlier in this
    /// batch, is not: its devices are not applied again).
    fn messages(&mut self, batch: &[Message], received_us: i64) -> Result<Vec<bool>, StoreError> {
        let mut firsts = vec![false; batch.len()];
        let mut seen = HashSet::new();
        let (mut site, mut agent, mut instance) = (Vec::new(), Vec::new(), Vec::new());
        let (mut seq, mut kind, mut time, mut devices) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, m) in batch.iter().enumerate() {
            let Message::Observation(o) = m else { continue };
            let key = (
                o.site.as_str(),
                o.agent_id.as_str(),
                o.instance.as_str(),
                o.seq as i64,
            );
            if !seen.insert(key) {
                continue;
            }
            firsts[i] = true;
            site.push(o.site.as_str());
            agent.push(o.agent_id.as_str());
            instance.push(o.instance.as_str());
            seq.push(o.seq as i64);
            kind.push(match o.kind {
                ward_protocols::schema::observation::Kind::Delta => "delta",
                ward_protocols::schema::observation::Kind::Snapshot => "snapshot",
            });
            time.push(o.time_us);
            devices.push(o.devices.len() as i64);
        }
        if site.is_empty() {
            return Ok(firsts);
        }
        let received = vec![received_us; site.len()];
        let rows = self
            .tx
            .query_native(
                "INSERT INTO messages (site, agent_id, instance, seq, kind, time_us, devices, received_us)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                      $6::bigint[], $7::bigint[], $8::bigint[])
                 ON CONFLICT DO NOTHING
                 RETURNING site, agent_id, instance, seq",
                &[&site, &agent, &instance, &seq, &kind, &time, &devices, &received],
            )
            .map_err(db("recording messages"))?;
        let mut inserted = HashSet::new();
        for r in &rows {
            let key: (String, String, String, i64) = (
                r.try_get(0).map_err(pg("recording messages"))?,
                r.try_get(1).map_err(pg("recording messages"))?,
                r.try_get(2).map_err(pg("recording messages"))?,
                r.try_get(3).map_err(pg("recording messages"))?,
            );
            inserted.insert(key);
        }
        for (i, m) in batch.iter().enumerate() {
            if let (Message::Observation(o), true) = (m, firsts[i]) {
                firsts[i] = inserted.contains(&(
                    o.site.clone(),
                    o.agent_id.clone(),
                    o.instance.clone(),
                    o.seq as i64,
                ));
            }
        }
        Ok(firsts)
    }

    /// Reads into the view every sighting and identity the new messages' records will look up:
    /// one query each.
    fn prefetch(&mut self, batch: &[Message], new: &[bool]) -> Result<(), StoreError> {
        let observations = || {
            batch.iter().zip(new).filter_map(|(m, n)| match m {
                Message::Observation(o) if *n => Some(o),
                _ => None,
            })
        };
        let mut skeys: HashSet<(&str, &str, &str)> = HashSet::new();
        for o in observations() {
            for rec in &o.devices {
                skeys.insert((o.site.as_str(), o.agent_id.as_str(), rec.key.as_str()));
            }
        }
        let skeys: Vec<_> = skeys.into_iter().collect();
        self.fetch_sightings(&skeys)?;
        for (s, a, k) in &skeys {
            let k = (s.to_string(), a.to_string(), k.to_string());
            if self.view.sightings.get(&k) == Some(&None) {
                self.prefetched_unsighted.insert(k);
            }
        }
        self.unsighted_left = self.prefetched_unsighted.len();
        // The identities a record will look up: its primary one when its sighting is new, and
        // its strong ones unless committed for its device by this process (`merge_on` skips
        // those). A device known and unchanged, the usual delta, needs none.
        let mut ikeys: HashSet<(&'static str, String)> = HashSet::new();
        for o in observations() {
            for rec in &o.devices {
                let k = (o.site.clone(), o.agent_id.clone(), rec.key.clone());
                let sighted = self.view.sightings.get(&k).copied().flatten();
                if sighted.is_none() {
                    ikeys.insert(identity::primary_identity(&o.site, rec));
                }
                for id in identity::identities_of(rec).strong {
                    let covered = sighted.is_some_and(|dev| {
                        self.cache.covers(
                            &(T_IDENTITY, dev, format!("{}|{}", id.kind, id.value)),
                            rec.seen.first_us,
                            rec.seen.last_us,
                        )
                    });
                    if !covered {
                        ikeys.insert((id.kind, id.value));
                    }
                }
            }
        }
        let ikeys: Vec<_> = ikeys.into_iter().collect();
        self.fetch_identities(&ikeys)
    }

    fn fetch_sightings(&mut self, keys: &[(&str, &str, &str)]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let site: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let agent: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let key: Vec<&str> = keys.iter().map(|k| k.2).collect();
        for (s, a, k) in keys {
            self.view
                .sightings
                .insert((s.to_string(), a.to_string(), k.to_string()), None);
        }
        let rows = self
            .tx
            .query_native(
                "SELECT site, agent_id, key, device_id FROM sightings
                 WHERE (site, agent_id, key) IN
                   (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                &[&site, &agent, &key],
            )
            .map_err(db("looking up sightings"))?;
        for r in &rows {
            let k: SightingKey = (
                r.try_get(0).map_err(pg("looking up sightings"))?,
                r.try_get(1).map_err(pg("looking up sightings"))?,
                r.try_get(2).map_err(pg("looking up sightings"))?,
            );
            let d: i64 = r.try_get(3).map_err(pg("looking up sightings"))?;
            self.view.sightings.insert(k, Some(d));
        }
        Ok(())
    }

    fn fetch_identities(&mut self, keys: &[(&str, String)]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let kind: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let value: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        for (k, v) in keys {
            self.view
                .identities
                .insert((k.to_string(), v.clone()), BTreeSet::new());
        }
        let rows = self
            .tx
            .query_native(
                "SELECT kind, value, device_id FROM identities
                 WHERE (kind, value) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&kind, &value],
            )
            .map_err(db("looking up identities"))?;
        for r in &rows {
            let k: (String, String) = (
                r.try_get(0).map_err(pg("looking up identities"))?,
                r.try_get(1).map_err(pg("looking up identities"))?,
            );
            let d: i64 = r.try_get(2).map_err(pg("looking up identities"))?;
            self.view.identities.entry(k).or_default().insert(d);
        }
        Ok(())
    }

    /// The device a sighting points to, as the transaction sees it.
    fn sighting(&mut self, site: &str, agent: &str, key: &str) -> Result<Option<i64>, StoreError> {
        let k = (site.to_string(), agent.to_string(), key.to_string());
        if !self.view.sightings.contains_key(&k) {
            // Never written in this transaction (a write keeps the view): the stored row is it.
            self.fetch_sightings(&[(site, agent, key)])?;
        }
        Ok(self.view.sightings.get(&k).copied().flatten())
    }

    /// Every device holding identity `(kind, value)`, as the transaction sees it.
    fn holders(&mut self, kind: &str, value: &str) -> Result<BTreeSet<i64>, StoreError> {
        let k = (kind.to_string(), value.to_string());
        if !self.view.identities.contains_key(&k) {
            // Pending writes of this key are not in the view (only fetched keys are kept):
            // store them first.
            self.flush()?;
            self.fetch_identities(&[(kind, value.to_string())])?;
        }
        Ok(self.view.identities.get(&k).cloned().unwrap_or_default())
    }

    fn observation(&mut self, o: &Observation) -> Result<(), StoreError> {
        self.stats.messages += 1;
        let t = self
            .agents
            .entry((o.site.clone(), o.agent_id.clone()))
            .or_insert(o.time_us);
        *t = (*t).max(o.time_us);
        for rec in &o.devices {
            self.device(&o.site, &o.agent_id, rec)?;
        }
        Ok(())
    }

    fn finish_agents(&mut self) -> Result<(), StoreError> {
        for ((site, agent), t) in std::mem::take(&mut self.agents) {
            exec(
                self.tx,
                "updating agent",
                "INSERT INTO agents (site, agent_id, last_message_us) VALUES (?1, ?2, ?3)
                     ON CONFLICT (site, agent_id) DO UPDATE SET
                       last_message_us = max(coalesce(last_message_us, 0), excluded.last_message_us)",
                params![site, agent, t],
            )?;
        }
        Ok(())
    }

    fn status(&mut self, s: &StatusMessage) -> Result<(), StoreError> {
        let stats = s
            .stats
            .as_ref()
            .map(|st| serde_json::to_string(st).unwrap_or_default());
        let state = match s.state {
            ward_protocols::schema::status::AgentState::Online => "online",
            ward_protocols::schema::status::AgentState::Offline => "offline",
        };
        // Order-safe: an older status (a replayed retained message) never overwrites a newer.
        exec(
            self.tx,
            "storing agent status",
            "INSERT INTO agents (site, agent_id, instance, state, version, started_at, status_time, reason, stats)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (site, agent_id) DO UPDATE SET
                   instance = excluded.instance, state = excluded.state, version = excluded.version,
                   started_at = excluded.started_at, status_time = excluded.status_time,
                   reason = excluded.reason, stats = coalesce(excluded.stats, agents.stats)
                 WHERE agents.status_time IS NULL OR excluded.status_time >= agents.status_time",
            params![
                s.site,
                s.agent_id,
                s.instance,
                state,
                s.version,
                s.started_at,
                s.time,
                s.reason,
                stats
            ],
        )?;
        self.stats.statuses += 1;
        Ok(())
    }

    /// The id of a new device. PostgreSQL: taken from the identity column's sequence, as many
    /// at once as the batch's records without a stored sighting (the most it can create), in
    /// one statement; those left over are handed back before commit ([`Ingest::return_ids`]),
    /// so the ids are the ones one insert per device would have given (SQLite: the rowid).
    fn new_device_id(&mut self) -> Result<i64, StoreError> {
        if self.reserved.is_empty() {
            let n = i64::try_from(self.unsighted_left.max(1)).unwrap_or(i64::MAX);
            let rows = self
                .tx
                .query_native(
                    "SELECT nextval(pg_get_serial_sequence('devices', 'id'))
                     FROM generate_series(1, $1::bigint)",
                    &[&n],
                )
                .map_err(db("creating devices"))?;
            for r in &rows {
                self.reserved
                    .push_back(r.try_get(0).map_err(pg("creating devices"))?);
            }
        }
        self.reserved
            .pop_front()
            .ok_or_else(|| StoreError::Corrupt {
                what: "devices".into(),
                detail: "the id sequence returned no value".into(),
            })
    }

    /// Hands the unused reserved ids back to the sequence. Only ingest creates devices, and
    /// only under the write lock, which this transaction holds: nobody took an id since.
    fn return_ids(&mut self) -> Result<(), StoreError> {
        if let Some(&next) = self.reserved.front() {
            self.tx
                .query_native(
                    "SELECT setval(pg_get_serial_sequence('devices', 'id'), $1::bigint, false)",
                    &[&next],
                )
                .map_err(db("returning device ids"))?;
            self.reserved.clear();
        }
        Ok(())
    }

    fn device(&mut self, site: &str, agent: &str, rec: &DeviceRecord) -> Result<(), StoreError> {
        self.stats.device_records += 1;
        let (first, last) = (rec.seen.first_us, rec.seen.last_us);
        let unsighted = self.prefetched_unsighted.remove(&(
            site.to_string(),
            agent.to_string(),
            rec.key.clone(),
        ));
        let sighted = self.sighting(site, agent, &rec.key)?;
        let (primary_kind, primary_value) = identity::primary_identity(site, rec);
        let dev = match sighted {
            Some(d) => d,
            None => match self.holders(primary_kind, &primary_value)?.first().copied() {
                Some(d) => d,
                None => {
                    let id = self.new_device_id()?;
                    self.buf.new_devices.push((id, first, last));
                    self.stats.devices_created += 1;
                    id
                }
            },
        };
        if unsighted {
            self.unsighted_left = self.unsighted_left.saturating_sub(1);
        }
        let ids = identity::identities_of(rec);
        if self.need(
            T_SIGHTING,
            dev,
            format!("{site}|{agent}|{}", rec.key),
            first,
            last,
        ) {
            // ON CONFLICT (site, agent_id, key) DO UPDATE SET device_id = excluded.device_id,
            //   first_us = min, last_us = max (the VLAN stays the first stored).
            let vlan = rec.vlan.map(i64::from);
            let k = (site.to_string(), agent.to_string(), rec.key.clone());
            let e = self
                .buf
                .sightings
                .entry(k.clone())
                .or_insert((dev, vlan, first, last));
            *e = (dev, e.1, e.2.min(first), e.3.max(last));
            self.view.sightings.insert(k, Some(dev));
        }
        if self.need(T_DEVICE, dev, String::new(), first, last) {
            let e = self.buf.devices.entry(dev).or_insert((first, last));
            *e = (e.0.min(first), e.1.max(last));
        }

        let mut idents: Vec<(&str, &str)> = vec![(primary_kind, primary_value.as_str())];
        idents.extend(
            ids.strong
                .iter()
                .chain(ids.weak.iter())
                .map(|i| (i.kind, i.value.as_str())),
        );
        for (kind, value) in idents {
            if !self.need(T_IDENTITY, dev, format!("{kind}|{value}"), first, last) {
                continue;
            }
            fold(
                &mut self.buf.identities,
                (kind.to_string(), value.to_string(), dev),
                first,
                last,
                agent.to_string(),
            );
            // Only keys read in full are kept: a partial set would hide stored holders.
            if let Some(devs) = self
                .view
                .identities
                .get_mut(&(kind.to_string(), value.to_string()))
            {
                devs.insert(dev);
            }
        }

        let seen_count = rec.seen.count;
        let mut attrs: Vec<(&str, String, i64, i64, u64)> = Vec::new();
        if let Some(v) = rec.vlan {
            attrs.push(("vlan", v.to_string(), first, last, seen_count));
        }
        if let Some(k) = rec.mac_kind {
            let k = match k {
                ward_protocols::schema::observation::MacKind::Universal => "universal",
                ward_protocols::schema::observation::MacKind::Local => "local",
            };
            attrs.push(("mac_kind", k.to_string(), first, last, seen_count));
        }
        if let Some(v) = &rec.oui_vendor {
            attrs.push(("oui_vendor", v.clone(), first, last, seen_count));
        }
        if let Some(c) = &rec.classification {
            attrs.push((
                "device_type",
                c.device_type.clone(),
                first,
                last,
                seen_count,
            ));
            if let Some(v) = &c.manufacturer {
                attrs.push(("manufacturer", v.clone(), first, last, seen_count));
            }
            if let Some(v) = &c.model {
                attrs.push(("model", v.clone(), first, last, seen_count));
            }
        }
        // Behavioural roles are attributes like facts: history, filters and the device view.
        for r in &rec.roles {
            attrs.push(("role", r.role.clone(), first, last, seen_count));
        }
        for f in &rec.facts {
            attrs.push((
                f.field.name(),
                f.value.clone(),
                f.seen.first_us,
                f.seen.last_us,
                f.seen.count,
            ));
        }
        if let Some((v, f, l)) = identity::software_version(rec) {
            attrs.push(("software_version", v.to_string(), f, l, seen_count));
        }
        for (name, value, f, l, c) in attrs {
            if !self.need(T_ATTRIBUTE, dev, format!("{name}|{value}"), f, l) {
                continue;
            }
            if name == "software_version" {
                // The timeline keeps each change, a rollback included (the row below keeps one
                // per value). Written when the attribute row is: a sighting the cache covers
                // changes neither.
                let fields = identity::software_version_fields(rec, &value);
                self.buf.versions.push(VersionSighting {
                    dev,
                    value: value.clone(),
                    first: f,
                    last: l,
                    site: site.to_string(),
                    agent: agent.to_string(),
                    fields,
                });
            }
            // ON CONFLICT (device_id, name, value): min first, the latest report's site and
            // agent, max last, max count.
            let k = (dev, name.to_string(), value);
            let (site, agent) = (site.to_string(), agent.to_string());
            match self.buf.attributes.entry(k) {
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let (span, count) = e.get_mut();
                    span.fold(f, l, (site, agent));
                    *count = (*count).max(c as i64);
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((
                        Span {
                            first: f,
                            last: l,
                            latest: (site, agent),
                        },
                        c as i64,
                    ));
                }
            }
        }
        if let Some(c) = &rec.classification {
            // ON CONFLICT (device_id): the latest report's record (a tie: the later write).
            let record = serde_json::to_string(c).unwrap_or_default();
            let e = self
                .buf
                .classifications
                .entry(dev)
                .or_insert((last, String::new()));
            if last >= e.0 {
                *e = (last, record);
            }
        }
        for s in &rec.services_offered {
            self.service(dev, ServiceDirection::Offered.as_str(), s)?;
        }
        for s in &rec.services_used {
            self.service(dev, ServiceDirection::Used.as_str(), s)?;
        }
        // Merges come last, once this record is stored: the merge guard and the explanation
        // then see its MACs, addresses and peers whichever record arrived first.
        self.merge_on(dev, &ids.strong, site, agent, (first, last))
    }

    /// Merges `dev` with every other device that reports one of its strong identities, unless
    /// the identity policy ([`identity::merge_decision`]) finds them to be two devices.
    fn merge_on(
        &mut self,
        mut dev: i64,
        strong: &[Ident],
        site: &str,
        agent: &str,
        (first, last): (i64, i64),
    ) -> Result<(), StoreError> {
        let tx = self.tx;
        for id in strong {
            // Already committed for this device: any other device claiming it since found this
            // one when it stored the identity, and was merged with it or kept apart then.
            if self.cache.covers(
                &(T_IDENTITY, dev, format!("{}|{}", id.kind, id.value)),
                first,
                last,
            ) {
                continue;
            }
            let others: Vec<i64> = self
                .holders(id.kind, &id.value)?
                .into_iter()
                .filter(|d| *d != dev)
                .collect();
            for other in others {
                // The candidates and the merge read and move the stored rows: the pending
                // ones are stored first.
                self.flush()?;
                let (this, that) = (candidate(tx, dev)?, candidate(tx, other)?);
                match identity::merge_decision(&this, &that) {
                    MergeDecision::Merge { kept, .. } => {
                        let (kept, absorbed) = if kept == this.id {
                            (&this, &that)
                        } else {
                            (&that, &this)
                        };
                        merge(tx, kept, absorbed, id, site, agent, last)?;
                        self.view.merged(kept.id, absorbed.id);
                        self.stats.merges += 1;
                        self.merged = true;
                        self.changed.extend([kept.id, absorbed.id]);
                        dev = kept.id;
                    }
                    MergeDecision::Distinct => {
                        tracing::debug!(device = dev, other, kind = id.kind, value = %id.value, "devices that talk to each other share a strong identity: kept apart");
                    }
                }
            }
        }
        Ok(())
    }

    fn service(&mut self, dev: i64, dir: &str, s: &ServiceRecord) -> Result<(), StoreError> {
        let app = s.app.map(ward_protocols::Protocol::name);
        let key = format!("{dir}|{}|{}", s.transport, s.port);
        // A recognised protocol or more peers than committed is news even within the
        // resolution.
        let known = self.cache.covers(
            &(T_SERVICE, dev, format!("{key}|{:?}|{}", app, s.peers)),
            s.seen.first_us,
            s.seen.last_us,
        );
        if !known {
            self.pending.push((
                (T_SERVICE, dev, format!("{key}|{:?}|{}", app, s.peers)),
                (s.seen.first_us, s.seen.last_us),
            ));
            // ON CONFLICT (device_id, direction, transport, port): the latest recognised app,
            // max peers, min first, max last, max count.
            let k = (dev, dir.to_string(), s.transport.clone(), i64::from(s.port));
            let app = app.map(str::to_string);
            let (peers, f, l, c) = (
                s.peers as i64,
                s.seen.first_us,
                s.seen.last_us,
                s.seen.count as i64,
            );
            let e = self.buf.services.entry(k).or_insert((None, peers, f, l, c));
            if app.is_some() {
                e.0 = app;
            }
            e.1 = e.1.max(peers);
            e.2 = e.2.min(f);
            e.3 = e.3.max(l);
            e.4 = e.4.max(c);
        }
        for p in &s.peer_addresses {
            // Peers carry no times: presence is all there is to remember.
            if !self.need(T_PEER, dev, format!("{key}|{p}"), 0, 0) {
                continue;
            }
            self.buf.peers.insert((
                dev,
                dir.to_string(),
                s.transport.clone(),
                i64::from(s.port),
                p.to_string(),
            ));
        }
        Ok(())
    }
}

impl Ingest<'_> {
    /// Stores the pending upserts: one statement per table (the rows already folded per key),
    /// in the order the foreign keys allow.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.buf);
        let tx = self.tx;
        let run = |what: &str, sql: &str, params: &[NativeParam<'_>]| {
            tx.execute_native(sql, params).map(drop).map_err(db(what))
        };
        if !b.new_devices.is_empty() {
            let id: Vec<i64> = b.new_devices.iter().map(|d| d.0).collect();
            let first: Vec<i64> = b.new_devices.iter().map(|d| d.1).collect();
            let last: Vec<i64> = b.new_devices.iter().map(|d| d.2).collect();
            run(
                "creating devices",
                "INSERT INTO devices (id, first_us, last_us)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])",
                &[&id, &first, &last],
            )?;
        }
        if !b.sightings.is_empty() {
            let (mut site, mut agent, mut key) = (Vec::new(), Vec::new(), Vec::new());
            let (mut dev, mut vlan, mut first, mut last) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((s, a, k), (d, v, f, l)) in &b.sightings {
                site.push(s.as_str());
                agent.push(a.as_str());
                key.push(k.as_str());
                dev.push(*d);
                vlan.push(*v);
                first.push(*f);
                last.push(*l);
            }
            run(
                "recording sightings",
                "INSERT INTO sightings (site, agent_id, key, device_id, vlan, first_us, last_us)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                      $6::bigint[], $7::bigint[])
                 ON CONFLICT (site, agent_id, key) DO UPDATE SET device_id = excluded.device_id,
                   first_us = LEAST(sightings.first_us, excluded.first_us),
                   last_us = GREATEST(sightings.last_us, excluded.last_us)",
                &[&site, &agent, &key, &dev, &vlan, &first, &last],
            )?;
        }
        if !b.devices.is_empty() {
            let id: Vec<i64> = b.devices.keys().copied().collect();
            let first: Vec<i64> = b.devices.values().map(|v| v.0).collect();
            let last: Vec<i64> = b.devices.values().map(|v| v.1).collect();
            run(
                "updating devices",
                "UPDATE devices d SET first_us = LEAST(d.first_us, u.first_us),
                   last_us = GREATEST(d.last_us, u.last_us)
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, first_us, last_us)
                 WHERE d.id = u.id",
                &[&id, &first, &last],
            )?;
        }
        if !b.identities.is_empty() {
            let (mut kind, mut value, mut dev) = (Vec::new(), Vec::new(), Vec::new());
            let (mut first, mut last, mut agent) = (Vec::new(), Vec::new(), Vec::new());
            for ((k, v, d), span) in &b.identities {
                kind.push(k.as_str());
                value.push(v.as_str());
                dev.push(*d);
                first.push(span.first);
                last.push(span.last);
                agent.push(span.latest.as_str());
            }
            run(
                "storing identities",
                "INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[],
                                      $5::bigint[], $6::text[])
                 ON CONFLICT (kind, value, device_id) DO UPDATE SET
                   first_us = LEAST(identities.first_us, excluded.first_us),
                   agent_id = CASE WHEN excluded.last_us >= identities.last_us
                                   THEN excluded.agent_id ELSE identities.agent_id END,
                   last_us = GREATEST(identities.last_us, excluded.last_us)",
                &[&kind, &value, &dev, &first, &last, &agent],
            )?;
        }
        if !b.attributes.is_empty() {
            let (mut dev, mut name, mut value) = (Vec::new(), Vec::new(), Vec::new());
            let (mut first, mut last, mut count) = (Vec::new(), Vec::new(), Vec::new());
            let (mut site, mut agent) = (Vec::new(), Vec::new());
            for ((d, n, v), (span, c)) in &b.attributes {
                dev.push(*d);
                name.push(n.as_str());
                value.push(v.as_str());
                first.push(span.first);
                last.push(span.last);
                count.push(*c);
                site.push(span.latest.0.as_str());
                agent.push(span.latest.1.as_str());
            }
            run(
                "storing attributes",
                "INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[],
                                      $5::bigint[], $6::bigint[], $7::text[], $8::text[])
                 ON CONFLICT (device_id, name, value) DO UPDATE SET
                   first_us = LEAST(attributes.first_us, excluded.first_us),
                   site = CASE WHEN excluded.last_us >= attributes.last_us
                               THEN excluded.site ELSE attributes.site END,
                   agent_id = CASE WHEN excluded.last_us >= attributes.last_us
                                   THEN excluded.agent_id ELSE attributes.agent_id END,
                   last_us = GREATEST(attributes.last_us, excluded.last_us),
                   count = GREATEST(attributes.count, excluded.count)",
                &[&dev, &name, &value, &first, &last, &count, &site, &agent],
            )?;
        }
        if !b.classifications.is_empty() {
            let dev: Vec<i64> = b.classifications.keys().copied().collect();
            let last: Vec<i64> = b.classifications.values().map(|v| v.0).collect();
            let record: Vec<&str> = b.classifications.values().map(|v| v.1.as_str()).collect();
            run(
                "storing classifications",
                "INSERT INTO classifications (device_id, last_us, record)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
                 ON CONFLICT (device_id) DO UPDATE SET
                   record = CASE WHEN excluded.last_us >= classifications.last_us
                                 THEN excluded.record ELSE classifications.record END,
                   last_us = GREATEST(classifications.last_us, excluded.last_us)",
                &[&dev, &last, &record],
            )?;
        }
        if !b.services.is_empty() {
            let (mut dev, mut dir, mut transport, mut port) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut app, mut peers, mut first, mut last, mut count) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((d, di, t, p), (a, pe, f, l, c)) in &b.services {
                dev.push(*d);
                dir.push(di.as_str());
                transport.push(t.as_str());
                port.push(*p);
                app.push(a.as_deref());
                peers.push(*pe);
                first.push(*f);
                last.push(*l);
                count.push(*c);
            }
            run(
                "storing services",
                "INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                      $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
                 ON CONFLICT (device_id, direction, transport, port) DO UPDATE SET
                   app = coalesce(excluded.app, services.app),
                   peers = GREATEST(services.peers, excluded.peers),
                   first_us = LEAST(services.first_us, excluded.first_us),
                   last_us = GREATEST(services.last_us, excluded.last_us),
                   count = GREATEST(services.count, excluded.count)",
                &[&dev, &dir, &transport, &port, &app, &peers, &first, &last, &count],
            )?;
        }
        if !b.peers.is_empty() {
            let (mut dev, mut dir, mut transport, mut port, mut peer) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (d, di, t, p, pe) in &b.peers {
                dev.push(*d);
                dir.push(di.as_str());
                transport.push(t.as_str());
                port.push(*p);
                peer.push(pe.as_str());
            }
            run(
                "storing service peers",
                "INSERT INTO service_peers (device_id, direction, transport, port, peer)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[])
                 ON CONFLICT DO NOTHING",
                &[&dev, &dir, &transport, &port, &peer],
            )?;
        }
        if !b.versions.is_empty() {
            self.flush_versions(b.versions)?;
        }
        Ok(())
    }

    /// The timeline's pending sightings: each device's episodes read in one query, the
    /// sightings applied to them in memory in arrival order ([`record_version`]), and the rows
    /// that changed written back in two statements. A device whose version changes within the
    /// batch (rare: an upgrade) goes through [`super::versions::record`], one sighting at a time.
    fn flush_versions(&mut self, pending: Vec<VersionSighting>) -> Result<(), StoreError> {
        let tx = self.tx;
        let mut by_dev: BTreeMap<i64, Vec<VersionSighting>> = BTreeMap::new();
        for v in pending {
            by_dev.entry(v.dev).or_default().push(v);
        }
        let (changing, steady): (Vec<_>, Vec<_>) = by_dev
            .into_iter()
            .partition(|(_, vs)| vs.iter().any(|v| v.value != vs[0].value));
        for (dev, vs) in changing {
            for v in vs {
                super::versions::record(
                    tx, dev, &v.value, v.first, v.last, &v.site, &v.agent, &v.fields,
                )?;
            }
        }
        if steady.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = steady.iter().map(|(d, _)| *d).collect();
        let rows = tx
            .query_native(
                "SELECT device_id, value, first_us, last_us, site, agent_id, fields
                 FROM version_episodes WHERE device_id = ANY($1::bigint[])
                 ORDER BY device_id, first_us, last_us, value",
                &[&ids],
            )
            .map_err(db("reading version episodes"))?;
        let mut stored: HashMap<i64, Vec<Episode>> = HashMap::new();
        let e = pg("reading version episodes");
        for r in &rows {
            let fields: String = r.try_get(6).map_err(&e)?;
            stored
                .entry(r.try_get(0).map_err(&e)?)
                .or_default()
                .push(Episode {
                    value: r.try_get(1).map_err(&e)?,
                    first: r.try_get(2).map_err(&e)?,
                    last: r.try_get(3).map_err(&e)?,
                    site: r.try_get(4).map_err(&e)?,
                    agent: r.try_get(5).map_err(&e)?,
                    fields: fields
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                });
        }
        let (mut gone_dev, mut gone_first, mut gone_value) = (Vec::new(), Vec::new(), Vec::new());
        let mut put: Vec<(i64, Episode)> = Vec::new();
        for (dev, vs) in steady {
            let before = stored.remove(&dev).unwrap_or_default();
            let mut eps = before.clone();
            for v in &vs {
                record_version(&mut eps, v);
            }
            for b in &before {
                if !eps.iter().any(|e| e.first == b.first && e.value == b.value) {
                    gone_dev.push(dev);
                    gone_first.push(b.first);
                    gone_value.push(b.value.clone());
                }
            }
            for e in eps {
                if !before.contains(&e) {
                    put.push((dev, e));
                }
            }
        }
        if !gone_dev.is_empty() {
            tx.execute_native(
                "DELETE FROM version_episodes WHERE (device_id, first_us, value) IN
                   (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]))",
                &[&gone_dev, &gone_first, &gone_value],
            )
            .map_err(db("moving version episodes"))?;
        }
        if !put.is_empty() {
            let dev: Vec<i64> = put.iter().map(|(d, _)| *d).collect();
            let value: Vec<&str> = put.iter().map(|(_, e)| e.value.as_str()).collect();
            let first: Vec<i64> = put.iter().map(|(_, e)| e.first).collect();
            let last: Vec<i64> = put.iter().map(|(_, e)| e.last).collect();
            let site: Vec<&str> = put.iter().map(|(_, e)| e.site.as_str()).collect();
            let agent: Vec<&str> = put.iter().map(|(_, e)| e.agent.as_str()).collect();
            let fields: Vec<String> = put.iter().map(|(_, e)| e.fields.join(",")).collect();
            tx.execute_native(
                "INSERT INTO version_episodes (device_id, value, first_us, last_us, site, agent_id, fields)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[],
                                      $5::text[], $6::text[], $7::text[])
                 ON CONFLICT (device_id, first_us, value) DO UPDATE SET
                   last_us = excluded.last_us, site = excluded.site,
                   agent_id = excluded.agent_id, fields = excluded.fields",
                &[&dev, &value, &first, &last, &site, &agent, &fields],
            )
            .map_err(db("storing version episodes"))?;
        }
        Ok(())
    }
}

/// Applies a batch of messages in one transaction; `cache` learns what was committed.
pub(super) fn batch(
    conn: &mut Connection,
    cache: &mut WriteCache,
    batch: &[Message],
    received_us: i64,
) -> Result<IngestStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::sql::TransactionBehavior::Immediate)
        .map_err(db("starting ingest"))?;
    let mut ing = Ingest {
        tx: &tx,
        stats: IngestStats::default(),
        cache: &*cache,
        pending: Vec::new(),
        merged: false,
        changed: std::collections::BTreeSet::new(),
        agents: HashMap::new(),
        view: View::default(),
        buf: Buffers::default(),
        reserved: std::collections::VecDeque::new(),
        prefetched_unsighted: HashSet::new(),
        unsighted_left: 0,
    };
    let new = ing.messages(batch, received_us)?;
    ing.prefetch(batch, &new)?;
    for (m, new) in batch.iter().zip(new) {
        match m {
            Message::Observation(o) if new => ing.observation(o)?,
            Message::Observation(_) => ing.stats.duplicates += 1,
            Message::Status(s) => ing.status(s)?,
        }
    }
    ing.flush()?;
    ing.return_ids()?;
    ing.finish_agents()?;
    let changed: Vec<i64> = ing.changed.iter().copied().collect();
    super::evaluation::record_changes(&tx, &changed)?;
    if ing.stats.messages > 0 {
        // One row, already under the write lock: tells the evaluator's lease holder, on
        // whichever collector, that there is new data ([`super::schema::ingest_clock`]).
        exec(
            &tx,
            "advancing the ingest clock",
            "UPDATE ingest_clock SET n = n + 1",
            params![],
        )?;
    }
    let (stats, pending, merged) = (ing.stats, ing.pending, ing.merged);
    tx.commit().map_err(db("committing ingest"))?;
    if merged {
        // Rows moved between devices: start over rather than reason about which entries moved.
        cache.rows.clear();
    } else {
        cache.commit(pending);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::{record_version, Episode, Span, VersionSighting};

    fn seen(value: &str, first: i64, last: i64, agent: &str) -> VersionSighting {
        VersionSighting {
            dev: 1,
            value: value.into(),
            first,
            last,
            site: "s".into(),
            agent: agent.into(),
            fields: vec!["dicom.software_versions"],
        }
    }

    fn rows(eps: &[Episode]) -> Vec<(String, i64, i64, String)> {
        eps.iter()
            .map(|e| (e.value.clone(), e.first, e.last, e.agent.clone()))
            .collect()
    }

    #[test]
    fn the_timeline_in_memory_makes_the_rows_versions_record_makes() {
        let mut eps = Vec::new();
        // A first sighting starts an episode; the next of the same version extends it, and the
        // latest report's agent is kept.
        record_version(&mut eps, &seen("1.0", 10, 20, "a"));
        record_version(&mut eps, &seen("1.0", 15, 30, "b"));
        record_version(&mut eps, &seen("1.0", 12, 25, "c"));
        assert_eq!(rows(&eps), [("1.0".into(), 10, 30, "b".into())]);
        assert_eq!(eps[0].fields, ["dicom.software_versions"]);
        // An upgrade, then a rollback: three episodes (the attribute row keeps two values).
        record_version(&mut eps, &seen("1.1", 40, 50, "a"));
        record_version(&mut eps, &seen("1.0", 60, 70, "a"));
        assert_eq!(
            rows(&eps),
            [
                ("1.0".into(), 10, 30, "b".into()),
                ("1.1".into(), 40, 50, "a".into()),
                ("1.0".into(), 60, 70, "a".into()),
            ]
        );
        // A late sighting of the next episode's version moves that episode back (its end and
        // agent stay); one of another version between two starts an episode of its own.
        record_version(&mut eps, &seen("1.1", 35, 36, "z"));
        assert_eq!(rows(&eps)[1], ("1.1".into(), 35, 50, "a".into()));
        record_version(&mut eps, &seen("2.0", 32, 33, "z"));
        assert_eq!(rows(&eps)[1], ("2.0".into(), 32, 33, "z".into()));
        assert_eq!(eps.len(), 4);
    }

    #[test]
    fn a_folded_upsert_keeps_what_one_by_one_upserts_keep() {
        // min first, max last, and the agent of the latest report (the later one on a tie).
        let mut s = Span {
            first: 10,
            last: 20,
            latest: "a",
        };
        s.fold(5, 15, "b");
        assert_eq!((s.first, s.last, s.latest), (5, 20, "a"));
        s.fold(12, 20, "c");
        assert_eq!((s.first, s.last, s.latest), (5, 20, "c"));
        s.fold(30, 40, "d");
        assert_eq!((s.first, s.last, s.latest), (5, 40, "d"));
    }
}
