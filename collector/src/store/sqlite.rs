//! SQLite backend: one file, WAL, versioned migrations in `PRAGMA user_version`.
//!
//! Why WAL with `synchronous = FULL`: a committed ingest batch is what the collector
//! acknowledges to the broker, so a commit must survive power loss, not just a process kill.
//! Batching (many messages per transaction) keeps that affordable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use ward_protocols::schema::observation::{DeviceRecord, Observation, ServiceRecord};
use ward_protocols::schema::status::StatusMessage;
use ward_protocols::{Attribute, Identity, MacAddr};

use super::{
    AgentRow, Applied, ApplyStats, AttributeValue, Counts, Coverage, DeviceQuery, DeviceSummary,
    DeviceView, FlagInstance, FlagQuery, FlagRow, ImportStats, IngestStats, Inventory, Link,
    LinkKind, MergeRow, Message, ServiceDirection, ServiceView, Sighting, Store, StoreError,
    TokenRecord, Transport,
};
use crate::import::model::{Asset, Contract};

/// Migrations, in order; `user_version` = how many have run. Never edit one that shipped:
/// append.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    site TEXT NOT NULL, agent_id TEXT NOT NULL,
    instance TEXT, state TEXT, version TEXT, started_at TEXT, status_time TEXT, reason TEXT,
    stats TEXT, last_message_us INTEGER,
    PRIMARY KEY (site, agent_id)
);
CREATE TABLE messages (
    site TEXT NOT NULL, agent_id TEXT NOT NULL, instance TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, time_us INTEGER NOT NULL, devices INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    PRIMARY KEY (site, agent_id, instance, seq)
);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    merged_into INTEGER REFERENCES devices(id)
);
CREATE TABLE sightings (
    site TEXT NOT NULL, agent_id TEXT NOT NULL, key TEXT NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id), vlan INTEGER,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    PRIMARY KEY (site, agent_id, key)
);
CREATE INDEX sightings_device ON sightings(device_id);
CREATE TABLE identities (
    kind TEXT NOT NULL, value TEXT NOT NULL, device_id INTEGER NOT NULL REFERENCES devices(id),
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, agent_id TEXT NOT NULL,
    PRIMARY KEY (kind, value, device_id)
);
CREATE INDEX identities_device ON identities(device_id);
CREATE TABLE attributes (
    device_id INTEGER NOT NULL REFERENCES devices(id), name TEXT NOT NULL, value TEXT NOT NULL,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, count INTEGER NOT NULL,
    site TEXT NOT NULL, agent_id TEXT NOT NULL,
    PRIMARY KEY (device_id, name, value)
);
CREATE TABLE services (
    device_id INTEGER NOT NULL REFERENCES devices(id), direction TEXT NOT NULL,
    transport TEXT NOT NULL, port INTEGER NOT NULL, app TEXT, peers INTEGER NOT NULL,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (device_id, direction, transport, port)
);
CREATE TABLE service_peers (
    device_id INTEGER NOT NULL, direction TEXT NOT NULL, transport TEXT NOT NULL,
    port INTEGER NOT NULL, peer TEXT NOT NULL,
    PRIMARY KEY (device_id, direction, transport, port, peer)
);
CREATE TABLE merges (
    id INTEGER PRIMARY KEY, kept INTEGER NOT NULL, absorbed INTEGER NOT NULL,
    identity_kind TEXT NOT NULL, identity_value TEXT NOT NULL, explanation TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE TABLE contracts (
    id TEXT PRIMARY KEY, supplier TEXT NOT NULL, body TEXT NOT NULL, source TEXT NOT NULL,
    imported_us INTEGER NOT NULL
);
CREATE TABLE assets (
    tag TEXT PRIMARY KEY, body TEXT NOT NULL, mac TEXT, serial TEXT, ip TEXT, contract_id TEXT,
    source TEXT NOT NULL, imported_us INTEGER NOT NULL
);
CREATE TABLE links (
    device_id INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, method TEXT NOT NULL,
    confidence REAL NOT NULL, since_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind)
);
CREATE TABLE flags (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,
    severity TEXT NOT NULL, status TEXT NOT NULL, summary TEXT NOT NULL, evidence TEXT NOT NULL,
    opened_us INTEGER NOT NULL, last_true_us INTEGER NOT NULL, resolved_us INTEGER
);
CREATE UNIQUE INDEX flags_open ON flags(kind, subject, detail) WHERE status = 'open';
CREATE INDEX flags_subject ON flags(subject);
"#,
    r#"
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, vendors TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL, created_us INTEGER NOT NULL, expires_us INTEGER,
    revoked_us INTEGER, last_used_us INTEGER
);
CREATE TABLE device_summary (
    device_id INTEGER PRIMARY KEY, body TEXT NOT NULL,
    manufacturer TEXT, model TEXT, device_type TEXT, software_version TEXT,
    sites TEXT NOT NULL, first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    asset_tag TEXT, contract_id TEXT, open_flags INTEGER NOT NULL, flag_kinds TEXT NOT NULL,
    medical INTEGER NOT NULL
);
CREATE INDEX device_summary_type ON device_summary(device_type);
-- Alerting state per flag: bit 1 = its opening was alerted, bit 2 = its resolution. Flags that
-- predate alerts count as alerted, so an upgrade does not replay history.
ALTER TABLE flags ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
UPDATE flags SET alerted = 3;
CREATE INDEX flags_unalerted ON flags(alerted) WHERE alerted != 3;
"#,
];

/// Identity kinds strong enough to merge two MACs into one device.
pub const STRONG_KINDS: &[&str] = &["serial", "eui64", "udi"];

fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Db { context, source }
}

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
struct WriteCache {
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

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    cache: WriteCache,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`. A database it creates is
    /// private whatever the umask: see [`prepare_private`].
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        prepare_private(path)?;
        let conn =
            Connection::open(path).map_err(db(format!("opening database {}", path.display())))?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(db("opening in-memory database"))?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db("enabling foreign keys"))?;
        // Several collectors or a CLI import may share the file; wait rather than fail.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db("setting busy timeout"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db("reading schema version"))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db("starting migration"))?;
            tx.execute_batch(sql)
                .map_err(db(format!("applying migration {}", i + 1)))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db("recording schema version"))?;
            tx.commit().map_err(db("committing migration"))?;
            tracing::info!(version = i + 1, "database migrated");
        }
        Ok(SqliteStore {
            conn,
            cache: WriteCache::default(),
        })
    }

    /// Schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db("reading schema version"))
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

/// The inventory is for its owner's eyes only. Missing directories on the way to the database are
/// created 0700 and a new database file 0600, set explicitly so the umask cannot widen (or
/// narrow) them; SQLite gives the `-wal` and `-shm` files it creates the database file's mode.
/// An existing file or directory keeps its mode: a database readable by others is reported.
#[cfg(unix)]
fn prepare_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let private = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("setting the mode of {}", p.display())))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let missing: Vec<&Path> = parent.ancestors().take_while(|a| !a.exists()).collect();
        for dir in missing.into_iter().rev() {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => private(dir, 0o700)?,
                // Created meanwhile by someone else: theirs, keep its mode.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(format!("creating directory {}", dir.display()))(e)),
            }
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => private(path, 0o600)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for p in [
                path.to_path_buf(),
                std::path::PathBuf::from(format!("{}-wal", path.display())),
                std::path::PathBuf::from(format!("{}-shm", path.display())),
            ] {
                if let Ok(m) = std::fs::metadata(&p) {
                    let mode = m.permissions().mode() & 0o777;
                    if m.is_file() && mode & 0o077 != 0 {
                        tracing::warn!(file = %p.display(), mode = format!("{mode:03o}"), "database file readable by others than its owner (chmod 600)");
                    }
                }
            }
        }
        Err(e) => return Err(io(format!("creating database {}", path.display()))(e)),
    }
    Ok(())
}

#[cfg(not(unix))]
fn prepare_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// An identity taken from a device record.
struct Ident {
    kind: &'static str,
    value: String,
    field: &'static str,
}

/// Serial numbers some devices send when they have none; merging on them would join strangers.
fn plausible_serial(s: &str) -> bool {
    let t = s.trim();
    if t.len() < 3 {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "n/a" | "na" | "none" | "null" | "unknown" | "serial" | "0000" | "000000" | "123456"
    ) {
        return false;
    }
    let first = t.chars().next();
    !t.chars().all(|c| Some(c) == first)
}

/// `0012211839000001^EUI-64` (IEEE 11073 equipment instance): the 16 hex digits before an
/// `EUI-64` component.
fn eui64(v: &str) -> Option<String> {
    let comps: Vec<&str> = v.split('^').collect();
    for w in comps.windows(2) {
        if let [id, kind] = w {
            if kind.eq_ignore_ascii_case("EUI-64")
                && id.len() == 16
                && id.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Some(id.to_ascii_uppercase());
            }
        }
    }
    None
}

fn identities_of(rec: &DeviceRecord) -> (Vec<Ident>, Vec<Ident>) {
    let mut strong = Vec::new();
    let mut weak = Vec::new();
    for f in &rec.facts {
        let v = f.value.trim();
        if v.is_empty() {
            continue;
        }
        // By the field's identity role in the allow-list, never by its name.
        match (f.field.identity(), f.field.attribute()) {
            (Identity::Serial, _) if plausible_serial(v) => strong.push(Ident {
                kind: "serial",
                value: v.to_string(),
                field: f.field.name(),
            }),
            (Identity::Udi, _) => strong.push(Ident {
                kind: "udi",
                value: v.to_string(),
                field: f.field.name(),
            }),
            (Identity::Eui64, _) => {
                if let Some(e) = eui64(v) {
                    strong.push(Ident {
                        kind: "eui64",
                        value: e,
                        field: f.field.name(),
                    })
                }
            }
            (Identity::Weak, Attribute::HostName) => weak.push(Ident {
                kind: "hostname",
                value: v.to_ascii_lowercase(),
                field: f.field.name(),
            }),
            // Application entity / application names (DICOM AE titles).
            (Identity::Weak, _) => weak.push(Ident {
                kind: "ae_title",
                value: v.to_string(),
                field: f.field.name(),
            }),
            _ => {}
        }
    }
    for a in &rec.addresses {
        weak.push(Ident {
            kind: "ip",
            value: a.ip.to_string(),
            field: "address",
        });
    }
    (strong, weak)
}

fn fmt_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| us.to_string())
}

struct Ingest<'a> {
    tx: &'a Transaction<'a>,
    stats: IngestStats,
    cache: &'a WriteCache,
    pending: Vec<(RowKey, (i64, i64))>,
    merged: bool,
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
        self.pending.push((k, (first, last)));
        true
    }
}

impl Ingest<'_> {
    fn observation(&mut self, o: &Observation, received_us: i64) -> Result<(), StoreError> {
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO messages (site, agent_id, instance, seq, kind, time_us, devices, received_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
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
                ])
            })
            .map_err(db("recording message"))?;
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
            self.tx
                .prepare_cached(
                    "INSERT INTO agents (site, agent_id, last_message_us) VALUES (?1, ?2, ?3)
                     ON CONFLICT (site, agent_id) DO UPDATE SET
                       last_message_us = max(coalesce(last_message_us, 0), excluded.last_message_us)",
                )
                .and_then(|mut s| s.execute(params![site, agent, t]))
                .map_err(db("updating agent"))?;
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
        self.tx
            .prepare_cached(
                "INSERT INTO agents (site, agent_id, instance, state, version, started_at, status_time, reason, stats)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (site, agent_id) DO UPDATE SET
                   instance = excluded.instance, state = excluded.state, version = excluded.version,
                   started_at = excluded.started_at, status_time = excluded.status_time,
                   reason = excluded.reason, stats = coalesce(excluded.stats, agents.stats)
                 WHERE agents.status_time IS NULL OR excluded.status_time >= agents.status_time",
            )
            .and_then(|mut st| {
                st.execute(params![
                    s.site,
                    s.agent_id,
                    s.instance,
                    state,
                    s.version,
                    s.started_at,
                    s.time,
                    s.reason,
                    stats
                ])
            })
            .map_err(db("storing agent status"))?;
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
        // MAC-less records (raw IP captures) are only ever one device per site and address.
        let (primary_kind, primary_value) = match rec.mac {
            Some(m) => ("mac", m.to_string()),
            None => ("ipkey", format!("{site}|{}", rec.key)),
        };
        let mut dev = match sighted {
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
                        tx.prepare_cached(
                            "INSERT INTO devices (first_us, last_us) VALUES (?1, ?2)",
                        )
                        .and_then(|mut s| s.execute(params![first, last]))
                        .map_err(db("creating device"))?;
                        self.stats.devices_created += 1;
                        tx.last_insert_rowid()
                    }
                }
            }
        };
        let (strong, weak) = identities_of(rec);
        for id in &strong {
            // Already committed for this device: any other device claiming it since would have
            // found this one when it wrote the identity.
            if self.cache.covers(
                &(T_IDENTITY, dev, format!("{}|{}", id.kind, id.value)),
                first,
                last,
            ) {
                continue;
            }
            let others: Vec<i64> = tx
                .prepare_cached(
                    "SELECT DISTINCT device_id FROM identities WHERE kind = ?1 AND value = ?2 AND device_id != ?3",
                )
                .and_then(|mut s| {
                    s.query_map(params![id.kind, id.value, dev], |r| r.get(0))?
                        .collect::<Result<Vec<i64>, _>>()
                })
                .map_err(db("looking up strong identity"))?;
            for other in others {
                let (kept, absorbed) = (dev.min(other), dev.max(other));
                merge(tx, kept, absorbed, id, site, agent, last)?;
                self.stats.merges += 1;
                self.merged = true;
                dev = kept;
            }
        }
        if self.need(
            T_SIGHTING,
            dev,
            format!("{site}|{agent}|{}", rec.key),
            first,
            last,
        ) {
            tx.prepare_cached(
                "INSERT INTO sightings (site, agent_id, key, device_id, vlan, first_us, last_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (site, agent_id, key) DO UPDATE SET device_id = excluded.device_id,
                   first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us)",
            )
            .and_then(|mut s| s.execute(params![site, agent, rec.key, dev, rec.vlan, first, last]))
            .map_err(db("recording sighting"))?;
        }
        if self.need(T_DEVICE, dev, String::new(), first, last) {
            tx.prepare_cached(
                "UPDATE devices SET first_us = min(first_us, ?2), last_us = max(last_us, ?3) WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![dev, first, last]))
            .map_err(db("updating device"))?;
        }

        let mut idents: Vec<(&str, &str)> = vec![(primary_kind, primary_value.as_str())];
        idents.extend(
            strong
                .iter()
                .chain(weak.iter())
                .map(|i| (i.kind, i.value.as_str())),
        );
        for (kind, value) in idents {
            if !self.need(T_IDENTITY, dev, format!("{kind}|{value}"), first, last) {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, value, device_id) DO UPDATE SET
                   first_us = min(first_us, excluded.first_us),
                   agent_id = CASE WHEN excluded.last_us >= last_us THEN excluded.agent_id ELSE agent_id END,
                   last_us = max(last_us, excluded.last_us)",
            )
            .and_then(|mut s| s.execute(params![kind, value, dev, first, last, agent]))
            .map_err(db("storing identity"))?;
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
        for f in &rec.facts {
            attrs.push((
                f.field.name(),
                f.value.clone(),
                f.seen.first_us,
                f.seen.last_us,
                f.seen.count,
            ));
        }
        // The software version's history is what patch-SLA review needs: take its times from
        // the facts that carried it, not from the device as a whole.
        if let Some(c) = &rec.classification {
            if let Some(v) = &c.software_version {
                let (f, l) = rec
                    .facts
                    .iter()
                    .filter(|f| {
                        f.value.contains(v.as_str())
                            && f.field.attribute() == Attribute::SoftwareVersion
                    })
                    .fold(None, |acc: Option<(i64, i64)>, f| {
                        Some(match acc {
                            None => (f.seen.first_us, f.seen.last_us),
                            Some((a, b)) => (a.min(f.seen.first_us), b.max(f.seen.last_us)),
                        })
                    })
                    .unwrap_or((first, last));
                attrs.push(("software_version", v.clone(), f, l, seen_count));
            }
        }
        for (name, value, f, l, c) in attrs {
            if !self.need(T_ATTRIBUTE, dev, format!("{name}|{value}"), f, l) {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (device_id, name, value) DO UPDATE SET
                   first_us = min(first_us, excluded.first_us),
                   site = CASE WHEN excluded.last_us >= last_us THEN excluded.site ELSE site END,
                   agent_id = CASE WHEN excluded.last_us >= last_us THEN excluded.agent_id ELSE agent_id END,
                   last_us = max(last_us, excluded.last_us),
                   count = max(count, excluded.count)",
            )
            .and_then(|mut s| s.execute(params![dev, name, value, f, l, c as i64, site, agent]))
            .map_err(db("storing attribute"))?;
        }
        for s in &rec.services_offered {
            self.service(dev, ServiceDirection::Offered.as_str(), s)?;
        }
        for s in &rec.services_used {
            self.service(dev, ServiceDirection::Used.as_str(), s)?;
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
            tx.prepare_cached(
                "INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (device_id, direction, transport, port) DO UPDATE SET
                   app = coalesce(excluded.app, app), peers = max(peers, excluded.peers),
                   first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us),
                   count = max(count, excluded.count)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    dev,
                    dir,
                    s.transport,
                    s.port,
                    app,
                    s.peers as i64,
                    s.seen.first_us,
                    s.seen.last_us,
                    s.seen.count as i64
                ])
            })
            .map_err(db("storing service"))?;
        }
        for p in &s.peer_addresses {
            // Peers carry no times: presence is all there is to remember.
            if !self.need(T_PEER, dev, format!("{key}|{p}"), 0, 0) {
                continue;
            }
            tx.prepare_cached(
                "INSERT OR IGNORE INTO service_peers (device_id, direction, transport, port, peer)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![dev, dir, s.transport, s.port, p.to_string()]))
            .map_err(db("storing service peer"))?;
        }
        Ok(())
    }
}

fn macs_of(tx: &Transaction, dev: i64) -> Result<String, StoreError> {
    let v: Vec<String> = tx
        .prepare_cached(
            "SELECT value FROM identities WHERE device_id = ?1 AND kind = 'mac' ORDER BY value",
        )
        .and_then(|mut s| {
            s.query_map(params![dev], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(db("reading MACs"))?;
    Ok(if v.is_empty() {
        "no MAC".to_string()
    } else {
        v.join(", ")
    })
}

/// Folds `absorbed` into `kept`. Histories are combined with min/max so the result is the same
/// whichever order the two were seen in.
fn merge(
    tx: &Transaction,
    kept: i64,
    absorbed: i64,
    why: &Ident,
    site: &str,
    agent: &str,
    at_us: i64,
) -> Result<(), StoreError> {
    let explanation = format!(
        "device {absorbed} ({}) merged into device {kept} ({}): both report {} {:?} ({}); seen by agent {agent} at site {site} at {}",
        macs_of(tx, absorbed)?,
        macs_of(tx, kept)?,
        why.kind,
        why.value,
        why.field,
        fmt_time(at_us)
    );
    let stmts = [
        "INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
         SELECT kind, value, ?1, first_us, last_us, agent_id FROM identities WHERE device_id = ?2
         ON CONFLICT (kind, value, device_id) DO UPDATE SET
           first_us = min(identities.first_us, excluded.first_us),
           last_us = max(identities.last_us, excluded.last_us)",
        "DELETE FROM identities WHERE device_id = ?2",
        "INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
         SELECT ?1, name, value, first_us, last_us, count, site, agent_id FROM attributes WHERE device_id = ?2
         ON CONFLICT (device_id, name, value) DO UPDATE SET
           first_us = min(attributes.first_us, excluded.first_us),
           last_us = max(attributes.last_us, excluded.last_us),
           count = max(attributes.count, excluded.count)",
        "DELETE FROM attributes WHERE device_id = ?2",
        "INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
         SELECT ?1, direction, transport, port, app, peers, first_us, last_us, count FROM services WHERE device_id = ?2
         ON CONFLICT (device_id, direction, transport, port) DO UPDATE SET
           app = coalesce(services.app, excluded.app), peers = max(services.peers, excluded.peers),
           first_us = min(services.first_us, excluded.first_us),
           last_us = max(services.last_us, excluded.last_us),
           count = max(services.count, excluded.count)",
        "DELETE FROM services WHERE device_id = ?2",
        "INSERT OR IGNORE INTO service_peers (device_id, direction, transport, port, peer)
         SELECT ?1, direction, transport, port, peer FROM service_peers WHERE device_id = ?2",
        "DELETE FROM service_peers WHERE device_id = ?2",
        "UPDATE sightings SET device_id = ?1 WHERE device_id = ?2",
        "UPDATE devices SET
           first_us = min(first_us, (SELECT first_us FROM devices WHERE id = ?2)),
           last_us = max(last_us, (SELECT last_us FROM devices WHERE id = ?2))
         WHERE id = ?1",
        "UPDATE devices SET merged_into = ?1 WHERE id = ?2 OR merged_into = ?2",
        "DELETE FROM links WHERE device_id = ?2",
    ];
    for sql in stmts {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![kept, absorbed]))
            .map_err(db("merging devices"))?;
    }
    // The absorbed device's open flags end here; the next evaluation raises them on the kept one.
    tx.prepare_cached(
        "UPDATE flags SET status = 'resolved', resolved_us = ?2,
           summary = summary || ' (device merged into ' || ?3 || ')'
         WHERE subject = ?1 AND status = 'open'",
    )
    .and_then(|mut s| {
        s.execute(params![
            format!("device:{absorbed}"),
            at_us,
            kept.to_string()
        ])
    })
    .map_err(db("resolving merged device flags"))?;
    tx.prepare_cached(
        "INSERT INTO merges (kept, absorbed, identity_kind, identity_value, explanation, at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            kept,
            absorbed,
            why.kind,
            why.value,
            explanation,
            at_us
        ])
    })
    .map_err(db("recording merge"))?;
    tracing::info!(kept, absorbed, kind = why.kind, value = %why.value, "devices merged on a strong identity");
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain data structs cannot fail; an empty object keeps the row well-formed if
    // it ever did.
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

/// Devices (not merged away) with everything stored about them; `one` restricts to one id.
fn load_devices(
    tx: &rusqlite::Transaction<'_>,
    one: Option<i64>,
) -> Result<BTreeMap<i64, DeviceView>, StoreError> {
    // An integer, formatted: no injection possible, and the index on device_id is used.
    let w = one
        .map(|i| format!(" WHERE device_id = {i}"))
        .unwrap_or_default();
    let mut devs: BTreeMap<i64, DeviceView> = BTreeMap::new();
    {
        let mut s = tx
            .prepare(&format!(
                "SELECT id, first_us, last_us FROM devices WHERE merged_into IS NULL{}",
                one.map(|i| format!(" AND id = {i}")).unwrap_or_default()
            ))
            .map_err(db("reading devices"))?;
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db("reading devices"))?;
        for row in rows {
            let (id, first_us, last_us): (i64, i64, i64) = row.map_err(db("reading devices"))?;
            devs.insert(
                id,
                DeviceView {
                    id,
                    first_us,
                    last_us,
                    ..Default::default()
                },
            );
        }
    }
    {
        let mut s = tx
                .prepare(&format!("SELECT device_id, kind, value FROM identities{w} ORDER BY device_id, kind, first_us, value"))
                .map_err(db("reading identities"))?;
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db("reading identities"))?;
        for row in rows {
            let (id, kind, value): (i64, String, String) = row.map_err(db("reading identities"))?;
            if let Some(d) = devs.get_mut(&id) {
                if kind == "mac" {
                    if let Ok(m) = value.parse::<MacAddr>() {
                        d.macs.push(m);
                    }
                }
                d.identities.entry(kind).or_default().push(value);
            }
        }
    }
    {
        let mut s = tx
                .prepare(&format!("SELECT device_id, name, value, first_us, last_us, agent_id FROM attributes{w} ORDER BY device_id, name, first_us"))
                .map_err(db("reading attributes"))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    AttributeValue {
                        value: r.get(2)?,
                        first_us: r.get(3)?,
                        last_us: r.get(4)?,
                        agent_id: r.get(5)?,
                    },
                ))
            })
            .map_err(db("reading attributes"))?;
        for row in rows {
            let (id, name, v) = row.map_err(db("reading attributes"))?;
            if let Some(d) = devs.get_mut(&id) {
                d.attributes.entry(name).or_default().push(v);
            }
        }
    }
    {
        let mut s = tx
                .prepare(&format!("SELECT site, agent_id, key, device_id, vlan, first_us, last_us FROM sightings{w} ORDER BY device_id, site, agent_id, key"))
                .map_err(db("reading sightings"))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(3)?,
                    Sighting {
                        site: r.get(0)?,
                        agent_id: r.get(1)?,
                        key: r.get(2)?,
                        vlan: r.get(4)?,
                        first_us: r.get(5)?,
                        last_us: r.get(6)?,
                    },
                ))
            })
            .map_err(db("reading sightings"))?;
        for row in rows {
            let (id, si) = row.map_err(db("reading sightings"))?;
            if let Some(d) = devs.get_mut(&id) {
                d.sightings.push(si);
            }
        }
    }
    let mut peers: HashMap<(i64, ServiceDirection, Transport, u16), Vec<IpAddr>> = HashMap::new();
    {
        let mut s = tx
            .prepare(&format!(
                "SELECT device_id, direction, transport, port, peer FROM service_peers{w}"
            ))
            .map_err(db("reading service peers"))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, ServiceDirection>(1)?,
                    r.get::<_, Transport>(2)?,
                    r.get::<_, u16>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(db("reading service peers"))?;
        for row in rows {
            let (id, dir, tr, port, peer) = row.map_err(db("reading service peers"))?;
            if let Ok(ip) = peer.parse::<IpAddr>() {
                peers.entry((id, dir, tr, port)).or_default().push(ip);
            }
        }
    }
    {
        let mut s = tx
                .prepare(&format!("SELECT device_id, direction, transport, port, app, peers, first_us, last_us FROM services{w} ORDER BY device_id, direction, transport, port"))
                .map_err(db("reading services"))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    ServiceView {
                        direction: r.get(1)?,
                        transport: r.get(2)?,
                        port: r.get(3)?,
                        app: r.get(4)?,
                        peers: r.get::<_, i64>(5)?.max(0) as u64,
                        peer_addresses: Vec::new(),
                        first_us: r.get(6)?,
                        last_us: r.get(7)?,
                    },
                ))
            })
            .map_err(db("reading services"))?;
        for row in rows {
            let (id, mut sv) = row.map_err(db("reading services"))?;
            if let Some(mut p) = peers.remove(&(id, sv.direction, sv.transport, sv.port)) {
                p.sort_unstable();
                sv.peer_addresses = p;
            }
            if let Some(d) = devs.get_mut(&id) {
                d.services.push(sv);
            }
        }
    }
    Ok(devs)
}

fn read_contracts(tx: &rusqlite::Transaction<'_>) -> Result<Vec<Contract>, StoreError> {
    let mut s = tx
        .prepare("SELECT id, body FROM contracts ORDER BY id")
        .map_err(db("reading contracts"))?;
    let rows = s
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(db("reading contracts"))?;
    let mut v = Vec::new();
    for row in rows {
        let (id, body) = row.map_err(db("reading contracts"))?;
        v.push(decode::<Contract>(&format!("contract {id}"), &body)?);
    }
    Ok(v)
}

fn read_assets(tx: &rusqlite::Transaction<'_>) -> Result<Vec<Asset>, StoreError> {
    let mut s = tx
        .prepare("SELECT tag, body FROM assets ORDER BY tag")
        .map_err(db("reading assets"))?;
    let rows = s
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(db("reading assets"))?;
    let mut v = Vec::new();
    for row in rows {
        let (tag, body) = row.map_err(db("reading assets"))?;
        v.push(decode::<Asset>(&format!("asset {tag}"), &body)?);
    }
    Ok(v)
}

impl Store for SqliteStore {
    fn ingest(&mut self, batch: &[Message], received_us: i64) -> Result<IngestStats, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting ingest"))?;
        let mut ing = Ingest {
            tx: &tx,
            stats: IngestStats::default(),
            cache: &self.cache,
            pending: Vec::new(),
            merged: false,
            agents: HashMap::new(),
        };
        for m in batch {
            match m {
                Message::Observation(o) => ing.observation(o, received_us)?,
                Message::Status(s) => ing.status(s)?,
            }
        }
        ing.finish_agents()?;
        let (stats, pending, merged) = (ing.stats, ing.pending, ing.merged);
        tx.commit().map_err(db("committing ingest"))?;
        if merged {
            // Rows moved between devices: start over rather than reason about which entries moved.
            self.cache.rows.clear();
        } else {
            self.cache.commit(pending);
        }
        Ok(stats)
    }

    fn import_contracts(
        &mut self,
        contracts: &[Contract],
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting import"))?;
        let mut st = ImportStats::default();
        for c in contracts {
            let existed: bool = tx
                .query_row(
                    "SELECT count(*) FROM contracts WHERE id = ?1",
                    params![c.id],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db("reading contract"))?
                > 0;
            tx.execute(
                "INSERT INTO contracts (id, supplier, body, source, imported_us) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET supplier = excluded.supplier, body = excluded.body,
                   source = excluded.source, imported_us = excluded.imported_us",
                params![c.id, c.supplier, encode(c), source, now_us],
            )
            .map_err(db(format!("storing contract {}", c.id)))?;
            if existed {
                st.replaced += 1
            } else {
                st.inserted += 1
            }
        }
        tx.commit().map_err(db("committing import"))?;
        Ok(st)
    }

    fn import_assets(
        &mut self,
        assets: &[Asset],
        replace: bool,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting import"))?;
        let mut st = ImportStats::default();
        if replace {
            let tags: HashSet<&str> = assets.iter().map(|a| a.tag.as_str()).collect();
            let existing: Vec<String> = tx
                .prepare("SELECT tag FROM assets")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()
                })
                .map_err(db("reading assets"))?;
            for t in existing {
                if !tags.contains(t.as_str()) {
                    tx.execute("DELETE FROM assets WHERE tag = ?1", params![t])
                        .map_err(db("removing asset"))?;
                    st.removed += 1;
                }
            }
        }
        for a in assets {
            let existed = tx
                .query_row(
                    "SELECT count(*) FROM assets WHERE tag = ?1",
                    params![a.tag],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db("reading asset"))?
                > 0;
            tx.execute(
                "INSERT INTO assets (tag, body, mac, serial, ip, contract_id, source, imported_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (tag) DO UPDATE SET body = excluded.body, mac = excluded.mac,
                   serial = excluded.serial, ip = excluded.ip, contract_id = excluded.contract_id,
                   source = excluded.source, imported_us = excluded.imported_us",
                params![
                    a.tag,
                    encode(a),
                    a.mac.map(|m| m.to_string()),
                    a.serial,
                    a.ip.map(|i| i.to_string()),
                    a.contract_id,
                    source,
                    now_us
                ],
            )
            .map_err(db(format!("storing asset {}", a.tag)))?;
            if existed {
                st.replaced += 1
            } else {
                st.inserted += 1
            }
        }
        tx.commit().map_err(db("committing import"))?;
        Ok(st)
    }

    fn inventory(&self) -> Result<Inventory, StoreError> {
        // One read transaction so the pieces agree with each other.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting read"))?;
        let devs = load_devices(&tx, None)?;
        let contracts = read_contracts(&tx)?;
        let assets = read_assets(&tx)?;
        Ok(Inventory {
            devices: devs.into_values().collect(),
            assets,
            contracts,
        })
    }

    fn apply_evaluation(
        &mut self,
        links: &[Link],
        flags: &[FlagInstance],
        now_us: i64,
    ) -> Result<Applied, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting evaluation"))?;
        let mut st = ApplyStats::default();
        let mut opened: Vec<FlagRow> = Vec::new();
        let mut resolved: Vec<i64> = Vec::new();
        let existing: HashMap<(i64, String), (String, String, f64)> = tx
            .prepare("SELECT device_id, kind, target, method, confidence FROM links")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
                        (r.get(2)?, r.get(3)?, r.get(4)?),
                    ))
                })?
                .collect::<Result<HashMap<_, _>, _>>()
            })
            .map_err(db("reading links"))?;
        let mut wanted: HashSet<(i64, String)> = HashSet::new();
        for l in links {
            let key = (l.device_id, l.kind.as_str().to_string());
            wanted.insert(key.clone());
            let same = existing.get(&key).is_some_and(|(t, m, c)| {
                t == &l.target && m == &l.method && (*c - f64::from(l.confidence)).abs() < 1e-6
            });
            if !same {
                tx.execute(
                    "INSERT INTO links (device_id, kind, target, method, confidence, since_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (device_id, kind) DO UPDATE SET target = excluded.target,
                       method = excluded.method, confidence = excluded.confidence,
                       since_us = excluded.since_us",
                    params![
                        l.device_id,
                        l.kind.as_str(),
                        l.target,
                        l.method,
                        f64::from(l.confidence),
                        now_us
                    ],
                )
                .map_err(db("storing link"))?;
                st.links_changed += 1;
            }
        }
        for key in existing.keys() {
            if !wanted.contains(key) {
                tx.execute(
                    "DELETE FROM links WHERE device_id = ?1 AND kind = ?2",
                    params![key.0, key.1],
                )
                .map_err(db("removing link"))?;
                st.links_removed += 1;
            }
        }
        let open: HashMap<(String, String, String), i64> = tx
            .prepare("SELECT kind, subject, detail, id FROM flags WHERE status = 'open'")
            .and_then(|mut s| {
                s.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))?
                    .collect::<Result<HashMap<_, _>, _>>()
            })
            .map_err(db("reading flags"))?;
        let mut still: HashSet<i64> = HashSet::new();
        for f in flags {
            let key = (
                f.kind.name().to_string(),
                f.subject.clone(),
                f.detail.clone(),
            );
            match open.get(&key) {
                Some(&id) => {
                    still.insert(id);
                    tx.prepare_cached(
                        "UPDATE flags SET last_true_us = ?2, severity = ?3, summary = ?4, evidence = ?5 WHERE id = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![id, now_us, f.severity.as_str(), f.summary, encode(&f.evidence)])
                    })
                    .map_err(db("updating flag"))?;
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO flags (kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us)
                         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?7)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            f.kind.name(),
                            f.subject,
                            f.detail,
                            f.severity.as_str(),
                            f.summary,
                            encode(&f.evidence),
                            now_us
                        ])
                    })
                    .map_err(db("opening flag"))?;
                    st.flags_opened += 1;
                    opened.push(FlagRow {
                        id: tx.last_insert_rowid(),
                        kind: f.kind.name().to_string(),
                        subject: f.subject.clone(),
                        detail: f.detail.clone(),
                        severity: f.severity.as_str().to_string(),
                        status: "open".into(),
                        summary: f.summary.clone(),
                        evidence: f.evidence.clone(),
                        opened_us: now_us,
                        last_true_us: now_us,
                        resolved_us: None,
                    });
                    tracing::info!(kind = %f.kind, subject = %f.subject, detail = %f.detail, severity = %f.severity, "flag opened");
                }
            }
        }
        for (key, id) in &open {
            if !still.contains(id) {
                tx.execute(
                    "UPDATE flags SET status = 'resolved', resolved_us = ?2 WHERE id = ?1",
                    params![id, now_us],
                )
                .map_err(db("resolving flag"))?;
                st.flags_resolved += 1;
                resolved.push(*id);
                tracing::info!(kind = %key.0, subject = %key.1, detail = %key.2, "flag resolved");
            }
        }
        st.flags_open = tx
            .query_row(
                "SELECT count(*) FROM flags WHERE status = 'open'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db("counting flags"))? as u64;
        tx.commit().map_err(db("committing evaluation"))?;
        let resolved = if resolved.is_empty() {
            Vec::new()
        } else {
            let ids: HashSet<i64> = resolved.into_iter().collect();
            self.flags(false)?
                .into_iter()
                .filter(|f| ids.contains(&f.id))
                .collect()
        };
        Ok(Applied {
            stats: st,
            opened,
            resolved,
        })
    }

    fn flags(&self, open_only: bool) -> Result<Vec<FlagRow>, StoreError> {
        let sql = if open_only {
            "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us FROM flags WHERE status = 'open' ORDER BY id DESC"
        } else {
            "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us FROM flags ORDER BY id DESC"
        };
        let mut s = self.conn.prepare(sql).map_err(db("reading flags"))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    FlagRow {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        subject: r.get(2)?,
                        detail: r.get(3)?,
                        severity: r.get(4)?,
                        status: r.get(5)?,
                        summary: r.get(6)?,
                        evidence: serde_json::Value::Null,
                        opened_us: r.get(8)?,
                        last_true_us: r.get(9)?,
                        resolved_us: r.get(10)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(db("reading flags"))?;
        let mut v = Vec::new();
        for row in rows {
            let (mut f, ev) = row.map_err(db("reading flags"))?;
            f.evidence = decode("flag evidence", &ev)?;
            v.push(f);
        }
        Ok(v)
    }

    fn links(&self) -> Result<Vec<Link>, StoreError> {
        let mut s = self
            .conn
            .prepare("SELECT device_id, kind, target, method, confidence FROM links ORDER BY device_id, kind")
            .map_err(db("reading links"))?;
        let rows = s
            .query_map([], |r| {
                Ok(Link {
                    device_id: r.get(0)?,
                    kind: if r.get::<_, String>(1)? == "asset" {
                        LinkKind::Asset
                    } else {
                        LinkKind::Contract
                    },
                    target: r.get(2)?,
                    method: r.get(3)?,
                    confidence: r.get::<_, f64>(4)? as f32,
                })
            })
            .map_err(db("reading links"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(db("reading links"))
    }

    fn merges(&self) -> Result<Vec<MergeRow>, StoreError> {
        let mut s = self
            .conn
            .prepare("SELECT kept, absorbed, identity_kind, identity_value, explanation, at_us FROM merges ORDER BY id")
            .map_err(db("reading merges"))?;
        let rows = s
            .query_map([], |r| {
                Ok(MergeRow {
                    kept: r.get(0)?,
                    absorbed: r.get(1)?,
                    identity_kind: r.get(2)?,
                    identity_value: r.get(3)?,
                    explanation: r.get(4)?,
                    at_us: r.get(5)?,
                })
            })
            .map_err(db("reading merges"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(db("reading merges"))
    }

    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let mut s = self
            .conn
            .prepare(
                "SELECT a.site, a.agent_id, a.instance, a.state, a.version, a.status_time, a.reason, a.stats,
                   (SELECT count(*) FROM messages m WHERE m.site = a.site AND m.agent_id = a.agent_id),
                   (SELECT coalesce(sum(mx - n), 0) FROM
                      (SELECT max(seq) AS mx, count(*) AS n FROM messages m
                       WHERE m.site = a.site AND m.agent_id = a.agent_id GROUP BY instance))
                 FROM agents a ORDER BY a.site, a.agent_id",
            )
            .map_err(db("reading agents"))?;
        let rows = s
            .query_map([], |r| {
                Ok(AgentRow {
                    site: r.get(0)?,
                    agent_id: r.get(1)?,
                    instance: r.get(2)?,
                    state: r.get(3)?,
                    version: r.get(4)?,
                    status_time: r.get(5)?,
                    reason: r.get(6)?,
                    stats: r
                        .get::<_, Option<String>>(7)?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                    messages: r.get(8)?,
                    missing: r.get(9)?,
                })
            })
            .map_err(db("reading agents"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(db("reading agents"))
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let one = |sql: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(db("counting"))
        };
        Ok(Counts {
            devices: one("SELECT count(*) FROM devices WHERE merged_into IS NULL")?,
            messages: one("SELECT count(*) FROM messages")?,
            contracts: one("SELECT count(*) FROM contracts")?,
            assets: one("SELECT count(*) FROM assets")?,
            links: one("SELECT count(*) FROM links")?,
            open_flags: one("SELECT count(*) FROM flags WHERE status = 'open'")?,
            merges: one("SELECT count(*) FROM merges")?,
        })
    }

    fn inventory_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting read"))?;
        read_contracts(&tx)
    }

    fn inventory_assets(&self) -> Result<Vec<Asset>, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting read"))?;
        read_assets(&tx)
    }

    fn write_summaries(&mut self, rows: &[DeviceSummary]) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting summary write"))?;
        let existing: HashMap<i64, String> = tx
            .prepare("SELECT device_id, body FROM device_summary")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<HashMap<_, _>, _>>()
            })
            .map_err(db("reading summaries"))?;
        let mut written = 0u64;
        let mut keep: HashSet<i64> = HashSet::with_capacity(rows.len());
        for r in rows {
            keep.insert(r.id);
            let body = encode(r);
            if existing.get(&r.id) == Some(&body) {
                continue;
            }
            let join = |v: &[String]| format!(",{},", v.join(","));
            tx.prepare_cached(
                "INSERT OR REPLACE INTO device_summary (device_id, body, manufacturer, model,
                   device_type, software_version, sites, first_us, last_us, asset_tag, contract_id,
                   open_flags, flag_kinds, medical)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.id,
                    body,
                    r.manufacturer,
                    r.model,
                    r.device_type,
                    r.software_version,
                    join(&r.sites),
                    r.first_us,
                    r.last_us,
                    r.asset.as_ref().map(|a| a.target.clone()),
                    r.contract.as_ref().map(|c| c.target.clone()),
                    r.open_flags,
                    join(&r.flag_kinds),
                    r.medical
                ])
            })
            .map_err(db("writing summary"))?;
            written += 1;
        }
        for id in existing.keys() {
            if !keep.contains(id) {
                tx.execute(
                    "DELETE FROM device_summary WHERE device_id = ?1",
                    params![id],
                )
                .map_err(db("removing summary"))?;
                written += 1;
            }
        }
        tx.commit().map_err(db("committing summaries"))?;
        Ok(written)
    }

    fn device_page(&self, q: &DeviceQuery) -> Result<(u64, Vec<DeviceSummary>), StoreError> {
        let mut wh: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let arg = |v: String, args: &mut Vec<rusqlite::types::Value>| {
            args.push(rusqlite::types::Value::Text(v));
            format!("?{}", args.len())
        };
        if let Some(site) = &q.site {
            let p = arg(format!("%,{},%", like_literal(site)), &mut args);
            wh.push(format!("sites LIKE {p} ESCAPE '\\'"));
        }
        if let Some(t) = &q.device_type {
            let p = arg(t.clone(), &mut args);
            wh.push(format!("device_type = {p}"));
        }
        if let Some(m) = &q.manufacturer {
            let needle = crate::import::pattern::Substring::new(m);
            let names =
                self.names_where("device_summary", "manufacturer", |n| needle.matches(n))?;
            wh.push(format!(
                "manufacturer IN {}",
                json_list(names, &mut args, &arg)
            ));
        }
        if let Some(f) = &q.flag {
            let p = arg(format!("%,{},%", like_literal(f)), &mut args);
            wh.push(format!("flag_kinds LIKE {p} ESCAPE '\\'"));
        }
        if let Some(pats) = &q.vendors {
            let names =
                self.names_where("device_summary", "manufacturer", |n| glob_any(pats, n))?;
            wh.push(format!(
                "manufacturer IN {}",
                json_list(names, &mut args, &arg)
            ));
        }
        let where_sql = if wh.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", wh.join(" AND "))
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM device_summary{where_sql}"))
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0)))
            .map_err(db("counting devices"))?;
        args.push(rusqlite::types::Value::Integer(i64::from(q.limit)));
        let lim = args.len();
        args.push(rusqlite::types::Value::Integer(
            i64::try_from(q.offset).unwrap_or(i64::MAX),
        ));
        let off = args.len();
        let bodies: Vec<String> = self
            .conn
            .prepare_cached(&format!(
                "SELECT body FROM device_summary{where_sql} ORDER BY device_id LIMIT ?{lim} OFFSET ?{off}"
            ))
            .and_then(|mut s| {
                s.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(db("listing devices"))?;
        let rows = bodies
            .iter()
            .map(|b| decode("device summary", b))
            .collect::<Result<Vec<DeviceSummary>, _>>()?;
        Ok((total.max(0) as u64, rows))
    }

    fn device_summaries(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<DeviceSummary>, StoreError> {
        let (_, rows) = self.device_page(&DeviceQuery {
            vendors: vendors.map(<[String]>::to_vec),
            limit: u32::MAX,
            ..DeviceQuery::default()
        })?;
        Ok(rows)
    }

    fn coverage(&self, vendors: Option<&[String]>) -> Result<Coverage, StoreError> {
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let arg = |v: String, args: &mut Vec<rusqlite::types::Value>| {
            args.push(rusqlite::types::Value::Text(v));
            format!("?{}", args.len())
        };
        let where_sql = match vendors {
            Some(pats) => {
                let names =
                    self.names_where("device_summary", "manufacturer", |n| glob_any(pats, n))?;
                format!(
                    " WHERE manufacturer IN {}",
                    json_list(names, &mut args, &arg)
                )
            }
            None => String::new(),
        };
        // A row at a time, five narrow columns, no summary body decoded: memory stays flat
        // whatever the inventory's size.
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT medical, asset_tag IS NOT NULL, contract_id IS NOT NULL, open_flags, flag_kinds
                 FROM device_summary{where_sql}"
            ))
            .map_err(db("reading coverage"))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(db("reading coverage"))?;
        let mut c = Coverage::default();
        while let Some(r) = rows.next().map_err(db("reading coverage"))? {
            let medical: bool = r.get(0).map_err(db("reading coverage"))?;
            let asset: bool = r.get(1).map_err(db("reading coverage"))?;
            let contract: bool = r.get(2).map_err(db("reading coverage"))?;
            let open: i64 = r.get(3).map_err(db("reading coverage"))?;
            let kinds = r
                .get_ref(4)
                .and_then(|v| v.as_str().map_err(rusqlite::Error::from))
                .map_err(db("reading coverage"))?;
            c.devices += 1;
            if medical {
                c.medical += 1;
                c.medical_in_asset_register += u64::from(asset);
                c.medical_under_contract += u64::from(contract);
            }
            c.with_open_flags += u64::from(open > 0);
            for k in kinds.split(',').filter(|k| !k.is_empty()) {
                c.end_of_support_passed += u64::from(k == "end_of_support_passed");
                c.end_of_support_within += u64::from(k == "end_of_support_within");
                match c.open_flags_by_kind.get_mut(k) {
                    Some(n) => *n += 1,
                    None => {
                        c.open_flags_by_kind.insert(k.to_string(), 1);
                    }
                }
            }
        }
        Ok(c)
    }

    fn device_summary(&self, id: i64) -> Result<Option<DeviceSummary>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM device_summary WHERE device_id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(db("reading device summary"))?;
        body.map(|b| decode("device summary", &b)).transpose()
    }

    fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db("starting read"))?;
        Ok(load_devices(&tx, Some(id))?.remove(&id))
    }

    fn flag_page(&self, q: &FlagQuery) -> Result<(u64, Vec<FlagRow>), StoreError> {
        let mut wh: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let arg = |v: String, args: &mut Vec<rusqlite::types::Value>| {
            args.push(rusqlite::types::Value::Text(v));
            format!("?{}", args.len())
        };
        for (col, v) in [
            ("status", &q.status),
            ("kind", &q.kind),
            ("severity", &q.severity),
            ("subject", &q.subject),
        ] {
            if let Some(v) = v {
                let p = arg(v.clone(), &mut args);
                wh.push(format!("{col} = {p}"));
            }
        }
        if let Some(pats) = &q.vendors {
            // A vendor sees flags on its devices and on its own contracts, nothing else.
            let devices =
                self.names_where("device_summary", "manufacturer", |n| glob_any(pats, n))?;
            let devices = json_list(devices, &mut args, &arg);
            let contracts = self.names_where("contracts", "supplier", |n| glob_any(pats, n))?;
            let contracts = json_list(contracts, &mut args, &arg);
            wh.push(format!(
                "(subject IN (SELECT 'device:' || device_id FROM device_summary WHERE manufacturer IN {devices})
                  OR subject IN (SELECT 'contract:' || id FROM contracts WHERE supplier IN {contracts}))"
            ));
        }
        let where_sql = if wh.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", wh.join(" AND "))
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM flags{where_sql}"))
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0)))
            .map_err(db("counting flags"))?;
        args.push(rusqlite::types::Value::Integer(i64::from(q.limit)));
        let lim = args.len();
        args.push(rusqlite::types::Value::Integer(
            i64::try_from(q.offset).unwrap_or(i64::MAX),
        ));
        let off = args.len();
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us
                 FROM flags{where_sql} ORDER BY id DESC LIMIT ?{lim} OFFSET ?{off}"
            ))
            .map_err(db("listing flags"))?;
        let rows = s
            .query_map(rusqlite::params_from_iter(args.iter()), flag_row)
            .map_err(db("listing flags"))?;
        let mut v = Vec::new();
        for row in rows {
            let (mut f, ev) = row.map_err(db("listing flags"))?;
            f.evidence = decode("flag evidence", &ev)?;
            v.push(f);
        }
        Ok((total.max(0) as u64, v))
    }

    fn take_alerts(&mut self, max: usize) -> Result<Applied, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting alert read"))?;
        let rows: Vec<(FlagRowRaw, i64)> = tx
            .prepare_cached(
                "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us, alerted
                 FROM flags WHERE alerted != 3
                   AND ((status = 'open' AND alerted & 1 = 0) OR (status = 'resolved' AND alerted & 2 = 0))
                 ORDER BY id LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map(params![max as i64], |r| Ok((flag_row(r)?, r.get(11)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(db("reading unalerted flags"))?;
        let mut out = Applied::default();
        for ((mut f, ev), alerted) in rows {
            f.evidence = decode("flag evidence", &ev)?;
            let mark = if f.status == "open" { 1 } else { 3 };
            tx.prepare_cached("UPDATE flags SET alerted = alerted | ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![f.id, mark]))
                .map_err(db("marking flag alerted"))?;
            if alerted & 1 == 0 {
                // Opened and resolved between two alert rounds: say both, in order.
                out.opened.push(f.clone());
            }
            if f.status == "resolved" {
                out.resolved.push(f);
            }
        }
        tx.commit().map_err(db("committing alert marks"))?;
        Ok(out)
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO tokens (id, name, role, vendors, secret_sha256, created_us, expires_us, revoked_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    t.id,
                    t.name,
                    t.role,
                    encode(&t.vendors),
                    t.secret_sha256,
                    t.created_us,
                    t.expires_us,
                    t.revoked_us
                ],
            )
            .map_err(db("storing token"))?;
        Ok(())
    }

    fn token_get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT id, name, role, vendors, secret_sha256, created_us, expires_us, revoked_us FROM tokens WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row(params![id], token_row).optional())
            .map_err(db("reading token"))?;
        row.map(|(t, v)| finish_token(t, &v)).transpose()
    }

    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = self
            .conn
            .prepare(
                "SELECT id, name, role, vendors, secret_sha256, created_us, expires_us, revoked_us FROM tokens ORDER BY created_us",
            )
            .and_then(|mut s| s.query_map([], token_row)?.collect::<Result<Vec<_>, _>>())
            .map_err(db("reading tokens"))?;
        rows.into_iter().map(|(t, v)| finish_token(t, &v)).collect()
    }

    fn token_revoke(&mut self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_us = coalesce(revoked_us, ?2) WHERE id = ?1",
                params![id, now_us],
            )
            .map_err(db("revoking token"))?;
        Ok(n > 0)
    }
}

/// API filter text taken literally inside a LIKE pattern: a caller's `%` or `_` must neither
/// widen the match nor make SQLite backtrack over every row.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `name` matches one of the vendor globs: `pattern::matches`, the same test the views
/// apply to a single device or contract. SQLite's `LIKE` folds ASCII case only, so a glob is
/// never translated to SQL: the store lists the distinct stored names ([`SqliteStore::names_where`])
/// and filters by the ones that match.
fn glob_any(globs: &[String], name: &str) -> bool {
    globs
        .iter()
        .any(|g| crate::import::pattern::matches(g, name))
}

/// `(SELECT value FROM json_each(?n))` binding `names` as one JSON array parameter: any number
/// of names in one statement, no dynamic SQL.
fn json_list(
    names: Vec<String>,
    args: &mut Vec<rusqlite::types::Value>,
    arg: &dyn Fn(String, &mut Vec<rusqlite::types::Value>) -> String,
) -> String {
    let p = arg(encode(&names), args);
    format!("(SELECT value FROM json_each({p}))")
}

impl SqliteStore {
    /// The distinct non-null values of `table.column` (a name column: manufacturers, suppliers)
    /// for which `keep` holds. There are far fewer distinct names than rows, and each is tested
    /// once (globs are compiled once per thread).
    fn names_where(
        &self,
        table: &str,
        column: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
            ))
            .map_err(db("listing names"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db("listing names"))?;
        let mut out = Vec::new();
        for name in rows {
            let name = name.map_err(db("listing names"))?;
            if keep(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }
}

type FlagRowRaw = (FlagRow, String);

fn flag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FlagRowRaw> {
    Ok((
        FlagRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            subject: r.get(2)?,
            detail: r.get(3)?,
            severity: r.get(4)?,
            status: r.get(5)?,
            summary: r.get(6)?,
            evidence: serde_json::Value::Null,
            opened_us: r.get(8)?,
            last_true_us: r.get(9)?,
            resolved_us: r.get(10)?,
        },
        r.get::<_, String>(7)?,
    ))
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, String)> {
    Ok((
        TokenRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: r.get(2)?,
            vendors: Vec::new(),
            secret_sha256: r.get(4)?,
            created_us: r.get(5)?,
            expires_us: r.get(6)?,
            revoked_us: r.get(7)?,
        },
        r.get::<_, String>(3)?,
    ))
}

fn finish_token(mut t: TokenRecord, vendors: &str) -> Result<TokenRecord, StoreError> {
    t.vendors = decode("token vendors", vendors)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_protocols::schema::observation::{FactRecord, Seen};
    use ward_protocols::{Field, Protocol};

    /// Identities are read from the fields' roles; these are the kinds the collector derived by
    /// field name before issue 14, for every field of the protocols that existed then (a new
    /// protocol's fields are filed by their roles alone).
    #[test]
    fn identity_kinds_from_roles_match_the_former_table() {
        let former = |f: Field| -> Option<(&str, bool)> {
            use Field::*;
            Some(match f {
                DicomDeviceSerialNumber | Hl7DeviceSerial => ("serial", true),
                Hl7Udi => ("udi", true),
                Hl7EquipmentInstance => ("eui64", true),
                DicomCallingAe | DicomCalledAe => ("ae_title", false),
                DhcpHostname | DhcpFqdn => ("hostname", false),
                _ => return None,
            })
        };
        let then = [Protocol::Dicom, Protocol::Hl7, Protocol::Dhcp];
        for &field in Field::ALL.iter().filter(|f| then.contains(&f.protocol())) {
            let value = match field {
                Field::Hl7EquipmentInstance => "0012211839000001^EUI-64",
                _ => "SN-0042",
            };
            let rec: DeviceRecord = serde_json::from_value(serde_json::json!({
                "key": "mac:02:00:00:00:00:01",
                "seen": {"first_us": 1, "last_us": 2, "count": 1},
                "addresses": [], "facts": [], "services_offered": [], "services_used": [],
            }))
            .unwrap();
            let rec = DeviceRecord {
                facts: vec![FactRecord {
                    field,
                    protocol: field.protocol(),
                    value: value.into(),
                    seen: Seen {
                        first_us: 1,
                        last_us: 2,
                        count: 1,
                    },
                }],
                ..rec
            };
            let (strong, weak) = identities_of(&rec);
            let got = strong
                .iter()
                .map(|i| (i.kind, true))
                .chain(
                    weak.iter()
                        .filter(|i| i.kind != "ip")
                        .map(|i| (i.kind, false)),
                )
                .next();
            assert_eq!(got, former(field), "{field}");
        }
    }

    #[test]
    fn eui64_needs_the_marker_and_sixteen_hex_digits() {
        assert_eq!(
            eui64("0012211839000001^EUI-64").as_deref(),
            Some("0012211839000001")
        );
        assert_eq!(
            eui64("abcdefabcdefabcd^EUI-64^IEEE").as_deref(),
            Some("ABCDEFABCDEFABCD")
        );
        assert_eq!(eui64("0012211839000001"), None);
        assert_eq!(eui64("00122118390000^EUI-64"), None);
    }

    #[test]
    fn placeholder_serials_never_merge() {
        for s in ["", "0", "N/A", "unknown", "0000", "XXXXXX", "123456"] {
            assert!(!plausible_serial(s), "{s}");
        }
        assert!(plausible_serial("SN-0042"));
    }

    #[test]
    fn migrations_run_once_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.db");
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = SqliteStore::open(&p).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }
}
