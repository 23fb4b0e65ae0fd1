//! Ingest: agent messages applied in one transaction — the message log, agent status,
//! sightings, identity resolution and merges, attribute history, services and their peers.
//!
//! Which records are one device, which identities count and what a merge says are decided by
//! [`crate::compliance::identity`]; this file only reads and writes the rows those decisions
//! need.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use ward_protocols::schema::observation::{DeviceRecord, Observation, ServiceRecord};
use ward_protocols::schema::status::StatusMessage;

use super::merge::{candidate, merge};
use super::{db, exec, query};
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
    fn observation(&mut self, o: &Observation, received_us: i64) -> Result<(), StoreError> {
        let inserted = exec(
            self.tx,
            "recording message",
            "INSERT OR IGNORE INTO messages (site, agent_id, instance, seq, kind, time_us, devices, received_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                o.site,
                o.agent_id,
                o.instance,
                o.seq as i64,
                match o.kind {
                    ward_protocols::schema::observation::Kind::Delta => "delta",
                    ward_protocols::schema::observation::Kind::Snapshot => "snapshot",
                },
                o.time_us,
                o.devices.len() as i64,
                received_us
            ],
        )?;
        if inserted == 0 {
            self.stats.duplicates += 1;
            return Ok(());
        }
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

    fn device(&mut self, site: &str, agent: &str, rec: &DeviceRecord) -> Result<(), StoreError> {
        self.stats.device_records += 1;
        let tx = self.tx;
        let (first, last) = (rec.seen.first_us, rec.seen.last_us);
        let sighted: Option<i64> = tx
            .prepare_cached(
                "SELECT device_id FROM sightings WHERE site = ?1 AND agent_id = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![site, agent, rec.key], |r| r.get(0))
                    .optional()
            })
            .map_err(db("looking up sighting"))?;
        let (primary_kind, primary_value) = identity::primary_identity(site, rec);
        let dev = match sighted {
            Some(d) => d,
            None => {
                let found: Option<i64> = tx
                    .prepare_cached(
                        "SELECT min(device_id) FROM identities WHERE kind = ?1 AND value = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![primary_kind, primary_value], |r| r.get(0))
                    })
                    .map_err(db("looking up identity"))?;
                match found {
                    Some(d) => d,
                    None => {
                        exec(
                            tx,
                            "creating device",
                            "INSERT INTO devices (first_us, last_us) VALUES (?1, ?2)",
                            params![first, last],
                        )?;
                        self.stats.devices_created += 1;
                        tx.last_insert_rowid()
                    }
                }
            }
        };
        let ids = identity::identities_of(rec);
        if self.need(
            T_SIGHTING,
            dev,
            format!("{site}|{agent}|{}", rec.key),
            first,
            last,
        ) {
            exec(
                tx,
                "recording sighting",
                "INSERT INTO sightings (site, agent_id, key, device_id, vlan, first_us, last_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (site, agent_id, key) DO UPDATE SET device_id = excluded.device_id,
                   first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us)",
                params![site, agent, rec.key, dev, rec.vlan, first, last],
            )?;
        }
        if self.need(T_DEVICE, dev, String::new(), first, last) {
            exec(
                tx,
                "updating device",
                "UPDATE devices SET first_us = min(first_us, ?2), last_us = max(last_us, ?3) WHERE id = ?1",
                params![dev, first, last],
            )?;
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
            exec(
                tx,
                "storing identity",
                "INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, value, device_id) DO UPDATE SET
                   first_us = min(first_us, excluded.first_us),
                   agent_id = CASE WHEN excluded.last_us >= last_us THEN excluded.agent_id ELSE agent_id END,
                   last_us = max(last_us, excluded.last_us)",
                params![kind, value, dev, first, last, agent],
            )?;
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
                super::versions::record(tx, dev, &value, f, l, site, agent, &fields)?;
            }
            exec(
                tx,
                "storing attribute",
                "INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (device_id, name, value) DO UPDATE SET
                   first_us = min(first_us, excluded.first_us),
                   site = CASE WHEN excluded.last_us >= last_us THEN excluded.site ELSE site END,
                   agent_id = CASE WHEN excluded.last_us >= last_us THEN excluded.agent_id ELSE agent_id END,
                   last_us = max(last_us, excluded.last_us),
                   count = max(count, excluded.count)",
                params![dev, name, value, f, l, c as i64, site, agent],
            )?;
        }
        if let Some(c) = &rec.classification {
            let record = serde_json::to_string(c).unwrap_or_default();
            exec(
                tx,
                "storing classification",
                "INSERT INTO classifications (device_id, last_us, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id) DO UPDATE SET
                   record = CASE WHEN excluded.last_us >= last_us THEN excluded.record ELSE record END,
                   last_us = max(last_us, excluded.last_us)",
                params![dev, last, record],
            )?;
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
            let others: Vec<i64> = query(
                tx,
                "looking up strong identity",
                "SELECT DISTINCT device_id FROM identities WHERE kind = ?1 AND value = ?2 AND device_id != ?3",
                params![id.kind, id.value, dev],
                |r| r.get(0),
            )?;
            for other in others {
                let (this, that) = (candidate(tx, dev)?, candidate(tx, other)?);
                match identity::merge_decision(&this, &that) {
                    MergeDecision::Merge { kept, .. } => {
                        let (kept, absorbed) = if kept == this.id {
                            (&this, &that)
                        } else {
                            (&that, &this)
                        };
                        merge(tx, kept, absorbed, id, site, agent, last)?;
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
        let tx = self.tx;
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
            exec(
                tx,
                "storing service",
                "INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (device_id, direction, transport, port) DO UPDATE SET
                   app = coalesce(excluded.app, app), peers = max(peers, excluded.peers),
                   first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us),
                   count = max(count, excluded.count)",
                params![
                    dev,
                    dir,
                    s.transport,
                    s.port,
                    app,
                    s.peers as i64,
                    s.seen.first_us,
                    s.seen.last_us,
                    s.seen.count as i64
                ],
            )?;
        }
        for p in &s.peer_addresses {
            // Peers carry no times: presence is all there is to remember.
            if !self.need(T_PEER, dev, format!("{key}|{p}"), 0, 0) {
                continue;
            }
            exec(
                tx,
                "storing service peer",
                "INSERT OR IGNORE INTO service_peers (device_id, direction, transport, port, peer)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![dev, dir, s.transport, s.port, p.to_string()],
            )?;
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
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting ingest"))?;
    let mut ing = Ingest {
        tx: &tx,
        stats: IngestStats::default(),
        cache: &*cache,
        pending: Vec::new(),
        merged: false,
        changed: std::collections::BTreeSet::new(),
        agents: HashMap::new(),
    };
    for m in batch {
        match m {
            Message::Observation(o) => ing.observation(o, received_us)?,
            Message::Status(s) => ing.status(s)?,
        }
    }
    ing.finish_agents()?;
    let changed: Vec<i64> = ing.changed.iter().copied().collect();
    super::evaluation::record_changes(&tx, &changed)?;
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
