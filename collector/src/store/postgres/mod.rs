//! PostgreSQL backend: several collectors on one inventory (issue 22).
//!
//! Chosen with `--db postgres://…` (or `postgresql://`); a path stays SQLite. The files both
//! backends share (`../common/`: evaluation, the inventory's reads, imports, advisories, SBOMs,
//! OpenEoX, tokens, sessions) are compiled here against [`sql`], which gives them rusqlite's API and rewrites
//! the mechanical dialect differences; each file here is the SQLite backend's file of the same
//! name with the differences that are not mechanical written out (ingest in far fewer round
//! trips, reads with explicit orders), so a change to one backend's SQL is made next to its
//! twin and the two stay in step.
//!
//! - **Client**: the synchronous `postgres` crate (the [`Store`] trait is synchronous and every
//!   caller already runs it on a blocking thread), pooled with `r2d2` (one pool per URL per
//!   process: the API opens a store per request).
//! - **TLS**: rustls through `tokio-postgres-rustls`, with the process's crypto provider
//!   (aws-lc-rs, never ring as well). `sslmode` comes from the URL (`disable`, `prefer`,
//!   `require`; `verify-ca`/`verify-full` are `require`: the certificate is always verified,
//!   against the system's roots or the URL's `sslrootcert=` file).
//! - **Migrations**: the SQLite migrations, rewritten ([`schema`]), recorded one row per version
//!   in `schema_migrations`; a database from a newer program is refused. Two collectors starting
//!   at once migrate one after the other (an advisory lock).
//! - **Writers**: every writing transaction takes one advisory lock first
//!   ([`sql::WRITE_LOCK`]), PostgreSQL's counterpart of SQLite's `BEGIN IMMEDIATE`: identity
//!   resolution and every read-modify-write upsert see the previous writer's commit, whichever
//!   collector made it. Readers never wait.
//! - **The password** is never logged: errors and logs name the database by [`redacted`].

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
mod schema;
#[allow(clippy::duplicate_mod)]
#[path = "../common/sessions.rs"]
mod sessions;
pub mod sql;
#[allow(clippy::duplicate_mod)]
#[path = "../common/tokens.rs"]
mod tokens;
#[allow(clippy::duplicate_mod)]
#[path = "../common/versions.rs"]
mod versions;

/// What the files shared with the SQLite backend (`../common`) are compiled against.
mod driver {
    pub(super) use super::sql::{
        params, params_from_iter, types::Value, Connection, OptionalExtension, Params, Result, Row,
        Transaction, TransactionBehavior,
    };
    /// Claiming rows to alert: locked, and rows another collector has locked are skipped, so
    /// across collectors each alert is handed out once.
    pub(super) const CLAIM_ROWS: &str = " FOR UPDATE SKIP LOCKED";
}

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sql::{Connection, Session};

use super::{
    AdvisoryImportStats, AgentRow, Applied, Counts, Coverage, DeviceQuery, DeviceSummary,
    DeviceView, FlagQuery, FlagRow, ImportStats, IngestStats, Inventory, Link, MergeRow, Message,
    Store, StoreError, TokenRecord,
};
use crate::import::advisories::Advisory;
use crate::import::kev::KevCatalog;
use crate::import::model::{Asset, Contract};

fn db(context: impl Into<String>) -> impl FnOnce(sql::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Postgres { context, source }
}

/// The SQLite backend's `query`: prepare (cached per session), run, map every row.
fn query<T, P: sql::Params>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: P,
    map: impl FnMut(&sql::Row<'_>) -> sql::Result<T>,
) -> Result<Vec<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, map)?.collect())
        .map_err(db(what))
}

/// The SQLite backend's `exec`: one write statement; the rows changed.
fn exec<P: sql::Params>(
    conn: &Connection,
    what: &str,
    sql: &str,
    params: P,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db(what))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string())
}

/// Whether `db` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `db` with its password replaced by `***`: what logs and errors show.
pub fn redacted(db: &str) -> String {
    let Some(scheme_end) = db.find("://").map(|i| i + 3) else {
        return db.to_string();
    };
    let rest = &db[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return redact_query(db);
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_string()
    };
    redact_query(&format!("{}{shown}{}", &db[..scheme_end], &rest[at..]))
}

/// A `password=` query parameter, redacted.
fn redact_query(db: &str) -> String {
    let Some(q) = db.find('?') else {
        return db.to_string();
    };
    let pairs: Vec<String> = db[q + 1..]
        .split('&')
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{}?{}", &db[..q], pairs.join("&"))
}

/// Opens sessions for the pool.
#[derive(Clone)]
pub struct Manager {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // postgres::Config's Debug redacts the password; the TLS connector has nothing to show.
        f.debug_struct("Manager")
            .field("config", &self.config)
            .finish()
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Session;
    type Error = sql::Error;

    fn connect(&self) -> Result<Session, sql::Error> {
        let (config, tls) = (&self.config, self.tls.clone());
        Ok(sql::off_runtime(|| config.connect(tls)).map(Session::new)?)
    }

    fn is_valid(&self, s: &mut Session) -> Result<(), sql::Error> {
        s.ping()
    }

    fn has_broken(&self, s: &mut Session) -> bool {
        s.is_closed()
    }
}

/// Pool settings: a collector's ingest loop, its evaluator and a handful of API requests at
/// once; the API waits for a session rather than failing under a burst.
const POOL_SIZE: u32 = 8;
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The process's pools, one per database URL while a store uses it: the API opens a store per
/// request, and they share one pool; the last store closed closes its pool's sessions.
fn pools() -> &'static Mutex<HashMap<String, Weak<r2d2::Pool<Manager>>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Weak<r2d2::Pool<Manager>>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The process-wide rustls provider when one is installed, else aws-lc-rs (as the alert
/// sender and the broker do): never rustls' implicit choice, which is ambiguous here.
fn crypto_provider() -> Arc<rumqttc::tokio_rustls::rustls::crypto::CryptoProvider> {
    use rumqttc::tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(aws_lc_rs::default_provider()))
}

fn config_error(url: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Config {
        context: format!("database {}", redacted(url)),
        detail: detail.to_string(),
    }
}

/// Splits the URL into what `postgres::Config` reads and the options this backend reads
/// itself (`sslrootcert`; `sslmode=verify-ca|verify-full`, which the driver does not know).
fn parse(url: &str) -> Result<(postgres::Config, Option<String>), StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut root = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.split_once('=') {
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            _ => kept.push(kv),
        }
    }
    let driver_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = postgres::Config::from_str(&driver_url).map_err(|e| config_error(url, e))?;
    if config.get_application_name().is_none() {
        config.application_name("ward-collector");
    }
    config.connect_timeout(Duration::from_secs(10));
    Ok((config, root))
}

fn tls(
    url: &str,
    root: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rumqttc::tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| StoreError::Io {
                context: format!("reading sslrootcert {path}"),
                source: e,
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert =
                    cert.map_err(|e| config_error(url, format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| config_error(url, format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            // The system's roots; a site with its own CA names it with sslrootcert=.
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(url, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn pool(url: &str) -> Result<Arc<r2d2::Pool<Manager>>, StoreError> {
    let mut pools = pools().lock().unwrap_or_else(|e| e.into_inner());
    pools.retain(|_, p| p.strong_count() > 0);
    if let Some(p) = pools.get(url).and_then(Weak::upgrade) {
        return Ok(p);
    }
    let (config, root) = parse(url)?;
    let manager = Manager {
        config,
        tls: tls(url, root.as_deref())?,
    };
    // One connection first, outside the pool: a wrong host, password or TLS setting fails now
    // with the server's own reason, instead of after the pool's wait with "timed out".
    drop(
        r2d2::ManageConnection::connect(&manager).map_err(|source| StoreError::Postgres {
            context: format!("connecting to {}", redacted(url)),
            source,
        })?,
    );
    let p = r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(1))
        .connection_timeout(POOL_WAIT)
        // No round trip per checkout (one per store call would be one per ingest batch): a
        // session whose connection died is dropped by `has_broken`, and a statement on one
        // that died unnoticed fails its transaction, which the caller retries.
        .test_on_check_out(false)
        // r2d2 logs connection errors itself through `log`; ours say which database.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(manager)
        .map_err(|e| StoreError::Postgres {
            context: format!("connecting to {}", redacted(url)),
            source: sql::Error::Pool(e.to_string()),
        })?;
    let p = Arc::new(p);
    pools.insert(url.to_string(), Arc::downgrade(&p));
    Ok(p)
}

/// The PostgreSQL store. Cheap to open more than once per URL (the pool is shared).
#[derive(Debug)]
pub struct PostgresStore {
    pool: Arc<r2d2::Pool<Manager>>,
    cache: ingest::WriteCache,
    url: String,
}

impl PostgresStore {
    /// Connects (TLS per `sslmode`) and migrates the database `url` names.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        sql::off_runtime(|| {
            let store = PostgresStore {
                pool: pool(url)?,
                cache: ingest::WriteCache::default(),
                url: redacted(url),
            };
            let conn = store.conn()?;
            schema::migrate(&conn)?;
            drop(conn);
            Ok(store)
        })
    }

    fn conn(&self) -> Result<Connection, StoreError> {
        self.pool
            .get()
            .map(Connection::new)
            .map_err(|e| StoreError::Postgres {
                context: format!("connecting to {}", self.url),
                source: sql::Error::Pool(e.to_string()),
            })
    }

    /// Schema version (the shared migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::version(&self.conn()?)
    }
}

/// Runs a writing transaction again when PostgreSQL asks for it (a serialization failure or a
/// deadlock: `sql::Error::is_retryable`), a few times with a short pause. Writers are serialised
/// by the write lock, so this is the exception (a DDL or a hand-run transaction in between), but
/// a transaction PostgreSQL aborted is never reported as the store's failure while a retry would
/// do. Each attempt is a whole transaction: nothing of a failed one was committed.
fn retrying<T>(mut f: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut attempt = 0u32;
    loop {
        match f() {
            Err(StoreError::Postgres { source, context })
                if source.is_retryable() && attempt < 5 =>
            {
                attempt += 1;
                tracing::debug!(attempt, context = %context, "PostgreSQL asked for a retry");
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
            }
            other => return other,
        }
    }
}

// Every method runs its statements off any async runtime (`sql::off_runtime`): the collector
// calls the store from its ingest loop, a tokio task.
impl Store for PostgresStore {
    fn ingest(&mut self, batch: &[Message], received_us: i64) -> Result<IngestStats, StoreError> {
        sql::off_runtime(|| {
            retrying(|| {
                let mut conn = self.conn()?;
                ingest::batch(&mut conn, &mut self.cache, batch, received_us)
            })
        })
    }

    fn import_contracts(
        &mut self,
        contracts: &[Contract],
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        sql::off_runtime(|| imports::contracts(&mut self.conn()?, contracts, source, now_us))
    }

    fn import_assets(
        &mut self,
        assets: &[Asset],
        replace: bool,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        sql::off_runtime(|| imports::assets(&mut self.conn()?, assets, replace, source, now_us))
    }

    fn inventory(&self) -> Result<Inventory, StoreError> {
        sql::off_runtime(|| {
            // reads::inventory reads on one snapshot (REPEATABLE READ): devices, identities and
            // attributes agree even while another collector writes.
            reads::inventory(&self.conn()?)
        })
    }

    fn apply_evaluated(&mut self, e: &crate::store::Evaluated<'_>) -> Result<Applied, StoreError> {
        sql::off_runtime(|| retrying(|| evaluation::apply(&mut self.conn()?, e)))
    }

    fn changed_devices(&self, max: usize) -> Result<crate::store::Changes, StoreError> {
        sql::off_runtime(|| evaluation::changed_devices(&self.conn()?, max))
    }

    fn last_change(&self) -> Result<i64, StoreError> {
        sql::off_runtime(|| evaluation::last_change(&self.conn()?))
    }

    fn devices_by_id(&self, ids: &[i64]) -> Result<Vec<DeviceView>, StoreError> {
        sql::off_runtime(|| reads::devices_by_id(&self.conn()?, ids))
    }

    fn device_ids_after(&self, after: i64, max: usize) -> Result<Vec<i64>, StoreError> {
        sql::off_runtime(|| evaluation::device_ids_after(&self.conn()?, after, max))
    }

    fn links_of(&self, ids: &[i64]) -> Result<Vec<Link>, StoreError> {
        sql::off_runtime(|| evaluation::links_of(&self.conn()?, ids))
    }

    fn linked_elsewhere(
        &self,
        exclude: &[i64],
        assets: &[String],
        contracts: &[String],
    ) -> Result<crate::store::LinkedElsewhere, StoreError> {
        sql::off_runtime(|| evaluation::linked_elsewhere(&self.conn()?, exclude, assets, contracts))
    }

    fn imports_version(&self) -> Result<Vec<i64>, StoreError> {
        sql::off_runtime(|| evaluation::imports_version(&self.conn()?))
    }

    fn flags(&self, open_only: bool) -> Result<Vec<FlagRow>, StoreError> {
        sql::off_runtime(|| reads::flags(&self.conn()?, open_only))
    }

    fn links(&self) -> Result<Vec<Link>, StoreError> {
        sql::off_runtime(|| reads::links(&self.conn()?))
    }

    fn merges(&self) -> Result<Vec<MergeRow>, StoreError> {
        sql::off_runtime(|| reads::merges(&self.conn()?))
    }

    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        sql::off_runtime(|| reads::agents(&self.conn()?))
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        sql::off_runtime(|| reads::counts(&self.conn()?))
    }

    fn inventory_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        sql::off_runtime(|| reads::contracts(&self.conn()?))
    }

    fn inventory_assets(&self) -> Result<Vec<Asset>, StoreError> {
        sql::off_runtime(|| reads::assets(&self.conn()?))
    }

    fn write_summaries(&mut self, rows: &[DeviceSummary]) -> Result<u64, StoreError> {
        sql::off_runtime(|| evaluation::write_summaries(&mut self.conn()?, rows))
    }

    fn device_page(&self, q: &DeviceQuery) -> Result<(u64, Vec<DeviceSummary>), StoreError> {
        sql::off_runtime(|| reads::device_page(&self.conn()?, q))
    }

    fn device_summaries(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<DeviceSummary>, StoreError> {
        sql::off_runtime(|| reads::device_summaries(&self.conn()?, vendors))
    }

    fn coverage(&self, vendors: Option<&[String]>) -> Result<Coverage, StoreError> {
        sql::off_runtime(|| reads::coverage(&self.conn()?, vendors))
    }
    fn asset_links(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<crate::store::AssetLinkRow>, StoreError> {
        sql::off_runtime(|| reads::asset_links(&self.conn()?, vendors))
    }

    fn device_summary(&self, id: i64) -> Result<Option<DeviceSummary>, StoreError> {
        sql::off_runtime(|| reads::device_summary(&self.conn()?, id))
    }

    fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError> {
        sql::off_runtime(|| reads::device(&self.conn()?, id))
    }

    fn flag_page(&self, q: &FlagQuery) -> Result<(u64, Vec<FlagRow>), StoreError> {
        sql::off_runtime(|| reads::flag_page(&self.conn()?, q))
    }

    fn take_alerts(&mut self, max: usize) -> Result<Applied, StoreError> {
        sql::off_runtime(|| retrying(|| evaluation::take_alerts(&mut self.conn()?, max)))
    }

    fn confirm_alerts(&mut self, done: &[(i64, i64)]) -> Result<(), StoreError> {
        sql::off_runtime(|| retrying(|| evaluation::confirm_alerts(&mut self.conn()?, done)))
    }

    fn undelivered_alerts(&mut self, after: i64, max: usize) -> Result<Applied, StoreError> {
        sql::off_runtime(|| evaluation::undelivered_alerts(&self.conn()?, after, max))
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        sql::off_runtime(|| tokens::insert(&self.conn()?, t))
    }

    fn token_get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        sql::off_runtime(|| tokens::get(&self.conn()?, id))
    }

    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        sql::off_runtime(|| tokens::list(&self.conn()?))
    }

    fn token_revoke(&mut self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        sql::off_runtime(|| tokens::revoke(&self.conn()?, id, now_us))
    }

    fn session_insert(&mut self, s: &crate::store::ConsoleSession) -> Result<(), StoreError> {
        sql::off_runtime(|| sessions::insert(&self.conn()?, s))
    }

    fn session_use(
        &mut self,
        id_sha256: &str,
        now_us: i64,
        limits: crate::store::SessionLimits,
    ) -> Result<Option<crate::store::ConsoleSession>, StoreError> {
        sql::off_runtime(|| {
            retrying(|| sessions::use_session(&mut self.conn()?, id_sha256, now_us, limits))
        })
    }

    fn session_end(&mut self, id_sha256: &str) -> Result<bool, StoreError> {
        sql::off_runtime(|| sessions::end(&self.conn()?, id_sha256))
    }

    fn open_flag_counts(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        sql::off_runtime(|| reads::open_flag_counts(&self.conn()?, vendors))
    }

    fn flag_timeline(
        &self,
        vendors: Option<&[String]>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<crate::store::FlagDay>, StoreError> {
        sql::off_runtime(|| reads::flag_timeline(&self.conn()?, vendors, since_us, until_us))
    }

    fn import_advisories(
        &mut self,
        advisories: &[Advisory],
        now_us: i64,
    ) -> Result<AdvisoryImportStats, StoreError> {
        sql::off_runtime(|| advisories::import_advisories(&mut self.conn()?, advisories, now_us))
    }

    fn advisories(&self) -> Result<Vec<Advisory>, StoreError> {
        sql::off_runtime(|| advisories::advisories(&self.conn()?))
    }

    fn import_kev(
        &mut self,
        catalog: &KevCatalog,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        sql::off_runtime(|| advisories::import_kev(&mut self.conn()?, catalog, source, now_us))
    }

    fn kev(&self) -> Result<Option<KevCatalog>, StoreError> {
        sql::off_runtime(|| advisories::kev(&self.conn()?))
    }

    fn import_sbom(
        &mut self,
        sbom: &crate::import::sbom::Sbom,
        now_us: i64,
    ) -> Result<crate::store::SbomImportStats, StoreError> {
        sql::off_runtime(|| sboms::import_sbom(&mut self.conn()?, sbom, now_us))
    }

    fn sboms(&self) -> Result<Vec<crate::import::sbom::Sbom>, StoreError> {
        sql::off_runtime(|| sboms::sboms(&self.conn()?))
    }

    fn import_eox(
        &mut self,
        statements: &[crate::import::eox::EoxStatement],
        now_us: i64,
    ) -> Result<crate::store::EoxImportStats, StoreError> {
        sql::off_runtime(|| eox::import_eox(&mut self.conn()?, statements, now_us))
    }

    fn eox_statements(&self) -> Result<Vec<crate::import::eox::EoxStatement>, StoreError> {
        sql::off_runtime(|| eox::statements(&self.conn()?))
    }

    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_us: i64,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        sql::off_runtime(|| schema::try_lease(&self.conn()?, name, holder, ttl_us, now_us))
    }

    fn cluster(&self) -> Result<Option<super::ClusterStats>, StoreError> {
        sql::off_runtime(|| schema::cluster(&self.conn()?).map(Some))
    }

    fn ingest_clock(&self) -> Result<Option<i64>, StoreError> {
        sql::off_runtime(|| schema::ingest_clock(&self.conn()?).map(Some))
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn the_password_is_never_shown() {
        assert_eq!(
            redacted("postgres://ward:s3cret@db.example:5432/ward?sslmode=require"),
            "postgres://ward:***@db.example:5432/ward?sslmode=require"
        );
        assert_eq!(
            redacted("postgresql://ward@db/ward?password=s3cret&sslmode=disable"),
            "postgresql://ward@db/ward?password=***&sslmode=disable"
        );
        assert_eq!(redacted("postgres://db/ward"), "postgres://db/ward");
    }
}
