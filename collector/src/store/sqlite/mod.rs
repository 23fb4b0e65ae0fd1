//! SQLite backend: one file, WAL, versioned migrations in `PRAGMA user_version`.
//!
//! Why WAL with `synchronous = FULL`: a committed ingest batch is what the collector
//! acknowledges to the broker, so a commit must survive power loss, not just a process kill.
//! Batching (many messages per transaction) keeps that affordable.
//!
//! This file opens the connection and dispatches each [`Store`] method to the file of its
//! concern: [`schema`] (migrations), [`ingest`] (agent messages: sightings, identities, merges,
//! attributes, services), [`imports`] (contracts and assets), [`reads`] (the inventory and the
//! API's pages), [`evaluation`] (links, flags, summaries, alerts), [`tokens`] and
//! [`advisories`] (CSAF advisories and the KEV catalog). Which records
//! are one device is not decided here: that policy is [`crate::compliance::identity`], shared by
//! every backend.

// The `../common/` files are compiled once per backend on purpose: the same Rust and SQL
// against each backend's `driver` (below).
#[allow(clippy::duplicate_mod)]
#[path = "../common/advisories.rs"]
mod advisories;
#[allow(clippy::duplicate_mod)]
#[path = "../common/eox.rs"]
mod eox;
#[allow(clippy::duplicate_mod)]
#[path = "../common/evaluation.rs"]
mod evaluation;
#[allow(clippy::duplicate_mod)]
#[path = "../common/imports.rs"]
mod imports;
mod ingest;
#[allow(clippy::duplicate_mod)]
#[path = "../common/inventory.rs"]
mod inventory;
#[allow(clippy::duplicate_mod)]
#[path = "../common/merge.rs"]
mod merge;
mod reads;
#[allow(clippy::duplicate_mod)]
#[path = "../common/sboms.rs"]
mod sboms;
pub(crate) mod schema;
#[allow(clippy::duplicate_mod)]
#[path = "../common/sessions.rs"]
mod sessions;
#[allow(clippy::duplicate_mod)]
#[path = "../common/tokens.rs"]
mod tokens;
#[allow(clippy::duplicate_mod)]
#[path = "../common/versions.rs"]
mod versions;

/// What the files shared with the PostgreSQL backend (`../common`) are compiled against.
mod driver {
    pub(super) use rusqlite::{
        params, params_from_iter, types::Value, Connection, OptionalExtension, Params, Result, Row,
        Transaction, TransactionBehavior,
    };
    /// Claiming rows to alert: SQLite's writer holds the whole file already.
    pub(super) const CLAIM_ROWS: &str = "";
}

use std::path::Path;

use rusqlite::Connection;

pub use ingest::TIME_RESOLUTION_US;

use super::{
    AdvisoryImportStats, AgentRow, Applied, Counts, Coverage, DeviceQuery, DeviceSummary,
    DeviceView, FlagQuery, FlagRow, ImportStats, IngestStats, Inventory, Link, MergeRow, Message,
    Store, StoreError, TokenRecord,
};
use crate::import::advisories::Advisory;
use crate::import::kev::KevCatalog;
use crate::import::model::{Asset, Contract};

fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Db { context, source }
}

/// Runs `sql` with `params` and maps every row: the one prepare/query/collect loop of this
/// backend. Statements are cached by their text, so values are bound as parameters, never
/// formatted in; `what` names the read in the error.
fn query<T, P: rusqlite::Params>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: P,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, map)?.collect())
        .map_err(db(what))
}

/// Runs one cached write statement; `what` names it in the error. Returns the rows changed.
fn exec<P: rusqlite::Params>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: P,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db(what))
}

/// Statements kept prepared per connection: ingest and merges alone use about thirty, and the
/// inventory read another dozen; re-preparing them for every batch would cost more than the
/// writes they make.
const STATEMENT_CACHE: usize = 64;

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    cache: ingest::WriteCache,
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            cache: ingest::WriteCache::default(),
        })
    }

    /// Schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::version(&self.conn)
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

impl Store for SqliteStore {
    fn ingest(&mut self, batch: &[Message], received_us: i64) -> Result<IngestStats, StoreError> {
        ingest::batch(&mut self.conn, &mut self.cache, batch, received_us)
    }

    fn import_contracts(
        &mut self,
        contracts: &[Contract],
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        imports::contracts(&mut self.conn, contracts, source, now_us)
    }

    fn import_assets(
        &mut self,
        assets: &[Asset],
        replace: bool,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        imports::assets(&mut self.conn, assets, replace, source, now_us)
    }

    fn inventory(&self) -> Result<Inventory, StoreError> {
        reads::inventory(&self.conn)
    }

    fn apply_evaluated(&mut self, e: &crate::store::Evaluated<'_>) -> Result<Applied, StoreError> {
        evaluation::apply(&mut self.conn, e)
    }

    fn changed_devices(&self, max: usize) -> Result<crate::store::Changes, StoreError> {
        evaluation::changed_devices(&self.conn, max)
    }

    fn last_change(&self) -> Result<i64, StoreError> {
        evaluation::last_change(&self.conn)
    }

    fn devices_by_id(&self, ids: &[i64]) -> Result<Vec<DeviceView>, StoreError> {
        reads::devices_by_id(&self.conn, ids)
    }

    fn device_ids_after(&self, after: i64, max: usize) -> Result<Vec<i64>, StoreError> {
        evaluation::device_ids_after(&self.conn, after, max)
    }

    fn links_of(&self, ids: &[i64]) -> Result<Vec<Link>, StoreError> {
        evaluation::links_of(&self.conn, ids)
    }

    fn linked_elsewhere(
        &self,
        exclude: &[i64],
        assets: &[String],
        contracts: &[String],
    ) -> Result<crate::store::LinkedElsewhere, StoreError> {
        evaluation::linked_elsewhere(&self.conn, exclude, assets, contracts)
    }

    fn imports_version(&self) -> Result<Vec<i64>, StoreError> {
        evaluation::imports_version(&self.conn)
    }

    fn flags(&self, open_only: bool) -> Result<Vec<FlagRow>, StoreError> {
        reads::flags(&self.conn, open_only)
    }

    fn links(&self) -> Result<Vec<Link>, StoreError> {
        reads::links(&self.conn)
    }

    fn merges(&self) -> Result<Vec<MergeRow>, StoreError> {
        reads::merges(&self.conn)
    }

    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        reads::agents(&self.conn)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        reads::counts(&self.conn)
    }

    fn inventory_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        reads::contracts(&self.conn)
    }

    fn inventory_assets(&self) -> Result<Vec<Asset>, StoreError> {
        reads::assets(&self.conn)
    }

    fn write_summaries(&mut self, rows: &[DeviceSummary]) -> Result<u64, StoreError> {
        evaluation::write_summaries(&mut self.conn, rows)
    }

    fn device_page(&self, q: &DeviceQuery) -> Result<(u64, Vec<DeviceSummary>), StoreError> {
        reads::device_page(&self.conn, q)
    }

    fn device_summaries(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<DeviceSummary>, StoreError> {
        reads::device_summaries(&self.conn, vendors)
    }

    fn coverage(&self, vendors: Option<&[String]>) -> Result<Coverage, StoreError> {
        reads::coverage(&self.conn, vendors)
    }
    fn asset_links(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<crate::store::AssetLinkRow>, StoreError> {
        reads::asset_links(&self.conn, vendors)
    }

    fn device_summary(&self, id: i64) -> Result<Option<DeviceSummary>, StoreError> {
        reads::device_summary(&self.conn, id)
    }

    fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError> {
        reads::device(&self.conn, id)
    }

    fn flag_page(&self, q: &FlagQuery) -> Result<(u64, Vec<FlagRow>), StoreError> {
        reads::flag_page(&self.conn, q)
    }

    fn take_alerts(&mut self, max: usize) -> Result<Applied, StoreError> {
        evaluation::take_alerts(&mut self.conn, max)
    }

    fn confirm_alerts(&mut self, done: &[(i64, i64)]) -> Result<(), StoreError> {
        evaluation::confirm_alerts(&mut self.conn, done)
    }

    fn undelivered_alerts(&mut self, after: i64, max: usize) -> Result<Applied, StoreError> {
        evaluation::undelivered_alerts(&self.conn, after, max)
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        tokens::insert(&self.conn, t)
    }

    fn token_get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        tokens::get(&self.conn, id)
    }

    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        tokens::list(&self.conn)
    }

    fn token_revoke(&mut self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        tokens::revoke(&self.conn, id, now_us)
    }

    fn import_advisories(
        &mut self,
        advisories: &[Advisory],
        now_us: i64,
    ) -> Result<AdvisoryImportStats, StoreError> {
        advisories::import_advisories(&mut self.conn, advisories, now_us)
    }

    fn advisories(&self) -> Result<Vec<Advisory>, StoreError> {
        advisories::advisories(&self.conn)
    }

    fn import_kev(
        &mut self,
        catalog: &KevCatalog,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        advisories::import_kev(&mut self.conn, catalog, source, now_us)
    }

    fn kev(&self) -> Result<Option<KevCatalog>, StoreError> {
        advisories::kev(&self.conn)
    }

    fn import_sbom(
        &mut self,
        sbom: &crate::import::sbom::Sbom,
        now_us: i64,
    ) -> Result<crate::store::SbomImportStats, StoreError> {
        sboms::import_sbom(&mut self.conn, sbom, now_us)
    }

    fn sboms(&self) -> Result<Vec<crate::import::sbom::Sbom>, StoreError> {
        sboms::sboms(&self.conn)
    }

    fn import_eox(
        &mut self,
        statements: &[crate::import::eox::EoxStatement],
        now_us: i64,
    ) -> Result<crate::store::EoxImportStats, StoreError> {
        eox::import_eox(&mut self.conn, statements, now_us)
    }

    fn eox_statements(&self) -> Result<Vec<crate::import::eox::EoxStatement>, StoreError> {
        eox::statements(&self.conn)
    }

    fn session_insert(&mut self, s: &crate::store::ConsoleSession) -> Result<(), StoreError> {
        sessions::insert(&self.conn, s)
    }

    fn session_use(
        &mut self,
        id_sha256: &str,
        now_us: i64,
        limits: crate::store::SessionLimits,
    ) -> Result<Option<crate::store::ConsoleSession>, StoreError> {
        sessions::use_session(&mut self.conn, id_sha256, now_us, limits)
    }

    fn session_end(&mut self, id_sha256: &str) -> Result<bool, StoreError> {
        sessions::end(&self.conn, id_sha256)
    }

    fn open_flag_counts(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        reads::open_flag_counts(&self.conn, vendors)
    }

    fn flag_timeline(
        &self,
        vendors: Option<&[String]>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<crate::store::FlagDay>, StoreError> {
        reads::flag_timeline(&self.conn, vendors, since_us, until_us)
    }
}

/// Console sessions (`../common/sessions.rs`) expire and end; on PostgreSQL the console tests'
/// PostgreSQL pass runs the same SQL.
#[cfg(test)]
mod session_tests {
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ConsoleSession, SessionLimits, Store};

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_sign_out() {
        let mut s = SqliteStore::in_memory().unwrap();
        let limits = SessionLimits {
            idle_us: 100,
            absolute_us: 1000,
        };
        let mk = |id: &str, at: i64| ConsoleSession {
            id_sha256: id.into(),
            token_id: "t".into(),
            csrf: "c".into(),
            created_us: at,
            last_used_us: at,
        };
        s.session_insert(&mk("a", 0)).unwrap();
        s.session_insert(&mk("b", 0)).unwrap();
        // Used within the idle limit, again and again: alive until the absolute limit.
        for t in (50..1000).step_by(50) {
            assert!(s.session_use("a", t, limits).unwrap().is_some(), "{t}");
        }
        assert!(s.session_use("a", 1000, limits).unwrap().is_none());
        // "b" was idle for more than 100 µs: gone (deleted by the check of "a").
        assert!(s.session_use("b", 60, limits).unwrap().is_none());
        s.session_insert(&mk("c", 2000)).unwrap();
        assert!(s.session_end("c").unwrap());
        assert!(s.session_use("c", 2001, limits).unwrap().is_none());
        assert!(!s.session_end("c").unwrap());
    }
}

/// The software-version timeline (`../common/versions.rs`) on SQLite; the PostgreSQL pass of
/// the collector's tests runs the same SQL.
#[cfg(test)]
mod version_tests {
    use super::versions::{read, record};
    use crate::store::sqlite::SqliteStore;

    fn timeline(s: &SqliteStore) -> Vec<(String, i64, i64)> {
        read(
            &s.conn,
            " WHERE device_id = ?1",
            Some(rusqlite::types::Value::Integer(1)),
        )
        .unwrap()
        .remove(&1)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.value, e.first_us, e.last_us))
        .collect()
    }

    #[test]
    fn episodes_follow_changes_rollbacks_and_late_messages() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let put = |v: &str, f: i64, l: i64| {
            record(&s.conn, 1, v, f, l, "main", "a1", &["x.software_version"]).unwrap()
        };
        put("1.0", 0, 10);
        put("1.0", 20, 30);
        put("1.1", 40, 50);
        put("1.0", 60, 70);
        let v = |a: &str, f: i64, l: i64| (a.to_owned(), f, l);
        assert_eq!(
            timeline(&s),
            [v("1.0", 0, 30), v("1.1", 40, 50), v("1.0", 60, 70)]
        );
        // A late message inside an episode extends nothing new; one before the first episode
        // of the same version moves it back; one of another version before everything is an
        // episode of its own.
        put("1.1", 45, 48);
        put("1.0", -10, -5);
        put("0.9", -30, -20);
        assert_eq!(
            timeline(&s),
            [
                v("0.9", -30, -20),
                v("1.0", -10, 30),
                v("1.1", 40, 50),
                v("1.0", 60, 70)
            ]
        );
        let fields = &read(
            &s.conn,
            " WHERE device_id = ?1",
            Some(rusqlite::types::Value::Integer(1)),
        )
        .unwrap()[&1][1]
            .fields;
        assert_eq!(fields, &["x.software_version".to_owned()]);
    }
}
