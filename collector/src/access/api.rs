//! The HTTP API (axum, JSON) and `/metrics`. Every endpoint authenticates a bearer token and
//! goes through [`crate::access::views`], where what each role may see is decided.
//!
//! SQLite work runs on blocking threads with connections from a small pool: WAL lets readers
//! proceed while the ingest loop writes. Requests whose cost grows with the inventory (coverage,
//! installed base, the un-paginated lists, evaluation, `/metrics`) are admitted a few at a time
//! ([`ApiState::with_expensive_limit`]); a caller that cannot be admitted within a bounded wait
//! gets 503 with `Retry-After`. Connections are served by hyper's HTTP/1 server with a
//! header-read timeout, so a client trickling its request head cannot hold a connection.
//! Refusals (401, 403, 404) are logged with the token id (never its secret) and the peer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::access::tokens::{self, Principal};
use crate::access::views::{self, ViewError};
use crate::compliance::flags::FlagConfig;
use crate::ingest::SafeText;
use crate::store::{DeviceQuery, FlagQuery, Store};

/// The OpenAPI 3 document, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Expensive requests served at once by default (`[http] expensive_concurrency`).
pub const DEFAULT_EXPENSIVE_CONCURRENCY: usize = 2;
/// Longest an expensive request waits for its turn before 503 by default
/// (`[http] expensive_wait_ms`).
pub const DEFAULT_EXPENSIVE_WAIT: Duration = Duration::from_secs(10);
/// A client must send its whole request head within this time of connecting (or of its previous
/// response, on a kept-alive connection), or the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled database connections kept.
const POOL_MAX: usize = 8;

/// Counters the ingest loop keeps and `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Observation messages stored.
    pub messages: AtomicU64,
    /// Replays skipped.
    pub duplicates: AtomicU64,
    /// Device records applied.
    pub device_records: AtomicU64,
    /// Messages rejected (the serve loop's total; `/metrics` reports them by reason from
    /// `ingest::rejected_totals`, which every decode counts).
    pub rejected: AtomicU64,
    /// Status messages stored.
    pub statuses: AtomicU64,
    /// Evaluations run.
    pub evaluations: AtomicU64,
    /// 1 while this collector holds the evaluator's lease (always, on SQLite).
    pub evaluator_lease: AtomicU64,
    /// API requests served.
    pub http_requests: AtomicU64,
    /// Expensive API requests refused with 503 (too many at once).
    pub http_busy: AtomicU64,
    /// The embedded broker, when the collector runs one: its counters are reported too.
    pub broker: std::sync::OnceLock<crate::mqtt::broker::BrokerLinker>,
}

/// Shared by the handlers.
#[derive(Debug)]
pub struct ApiState {
    db: PathBuf,
    pool: Mutex<Vec<Box<dyn Store>>>,
    metrics: Arc<Metrics>,
    flags: FlagConfig,
    expensive: Arc<tokio::sync::Semaphore>,
    expensive_wait: Duration,
}

impl ApiState {
    /// State over the database at `db`. Expensive requests: [`DEFAULT_EXPENSIVE_CONCURRENCY`]
    /// at once, waiting at most [`DEFAULT_EXPENSIVE_WAIT`] (see
    /// [`ApiState::with_expensive_limit`]).
    pub fn new(db: PathBuf, metrics: Arc<Metrics>, flags: FlagConfig) -> ApiState {
        ApiState {
            db,
            pool: Mutex::new(Vec::new()),
            metrics,
            flags,
            expensive: Arc::new(tokio::sync::Semaphore::new(1)),
            expensive_wait: Duration::ZERO,
        }
        .with_expensive_limit(DEFAULT_EXPENSIVE_CONCURRENCY, DEFAULT_EXPENSIVE_WAIT)
    }

    /// At most `permits` (at least 1) expensive requests at once; a request waits at most
    /// `wait` for its turn, then gets 503.
    pub fn with_expensive_limit(mut self, permits: usize, wait: Duration) -> ApiState {
        self.expensive = Arc::new(tokio::sync::Semaphore::new(permits.clamp(1, 1024)));
        self.expensive_wait = wait;
        self
    }

    fn connection(&self) -> Result<Box<dyn Store>, ApiError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(s) => Ok(s),
            None => crate::store::open_store(&self.db.to_string_lossy()).map_err(internal),
        }
    }

    fn give_back(&self, store: Box<dyn Store>) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(store);
        }
    }
}

/// An API error: its status, the message the caller gets, and why (static text, for the log).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    why: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            why: "",
        }
    }

    fn unauthorized(why: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or invalid bearer token".into(),
            why,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ward\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        match e {
            ViewError::Forbidden(_) => ApiError {
                status: StatusCode::FORBIDDEN,
                message: e.to_string(),
                why: "role may not",
            },
            ViewError::NotFound => ApiError {
                status: StatusCode::NOT_FOUND,
                message: e.to_string(),
                why: "not found",
            },
            ViewError::Invisible => ApiError {
                status: StatusCode::NOT_FOUND,
                message: e.to_string(),
                why: "not visible to this token",
            },
            ViewError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            ViewError::Store(s) => {
                tracing::error!(error = %s, "API storage error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API error");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// What the handlers need of a request besides its parameters: headers, peer, path.
#[derive(Debug)]
pub struct Caller {
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    path: String,
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        Ok(Caller {
            headers: parts.headers.clone(),
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            path: parts.uri.path().to_string(),
        })
    }
}

impl Caller {
    /// Logs a refusal: status, token id (never the secret), peer, path (escaped), why.
    fn refused(&self, status: StatusCode, token_id: &str, why: &str) {
        tracing::warn!(
            status = status.as_u16(),
            token_id = %token_id,
            peer = %self.peer.map_or_else(|| "-".to_string(), |p| p.to_string()),
            path = %SafeText::new(&self.path),
            why = %why,
            "API request refused"
        );
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// The id part of `ward_<id>_<secret>` when it has the shape of an id (16 hex digits): what a
/// refusal may log. Anything else a caller sent is never logged.
fn token_id_of(token: &str) -> &str {
    token
        .strip_prefix("ward_")
        .and_then(|r| r.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or("-")
}

/// Whether a request's cost grows with the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cost {
    /// Bounded (a page, one device).
    Cheap,
    /// Grows with the inventory: admitted a few at a time.
    Expensive,
}

/// Authenticates the caller, admits it if the request is expensive, then runs `f` with a
/// pooled connection on a blocking thread. Refusals are logged.
async fn authed<T: Send + 'static>(
    st: &Arc<ApiState>,
    c: &Caller,
    cost: Cost,
    f: impl FnOnce(&mut dyn Store, &Principal) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    st.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let Some(token) = bearer(&c.headers) else {
        c.refused(StatusCode::UNAUTHORIZED, "-", "no bearer token");
        return Err(ApiError::unauthorized("no bearer token"));
    };
    let id = token_id_of(&token).to_string();
    let st2 = st.clone();
    let authenticated = tokio::task::spawn_blocking(move || {
        let store = st2.connection()?;
        match tokens::authenticate(&*store, &token, crate::ingest::now_us()) {
            Ok(p) => Ok((store, p)),
            Err(e) => {
                st2.give_back(store);
                Err(match e {
                    tokens::AuthError::Store(e) => internal(e),
                    tokens::AuthError::Malformed => ApiError::unauthorized("malformed token"),
                    tokens::AuthError::Unknown => ApiError::unauthorized("unknown token"),
                    tokens::AuthError::Expired => ApiError::unauthorized("token expired"),
                    tokens::AuthError::Revoked => ApiError::unauthorized("token revoked"),
                })
            }
        }
    })
    .await
    .map_err(internal)?;
    let (store, p) = match authenticated {
        Ok(x) => x,
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                c.refused(e.status, &id, e.why);
            }
            return Err(e);
        }
    };
    let permit = match cost {
        Cost::Cheap => None,
        Cost::Expensive => {
            let sem = st.expensive.clone();
            let permit = match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) if st.expensive_wait.is_zero() => None,
                Err(_) => tokio::time::timeout(st.expensive_wait, sem.acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok),
            };
            if permit.is_none() {
                st.give_back(store);
                st.metrics.http_busy.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    token_id = %p.token_id,
                    path = %SafeText::new(&c.path),
                    "API busy: expensive request refused (503)"
                );
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy: too many expensive requests at once; retry later",
                ));
            }
            permit
        }
    };
    let (st3, p3) = (st.clone(), p.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut store = store;
        let r = f(&mut *store, &p3);
        st3.give_back(store);
        drop(permit);
        r
    })
    .await
    .map_err(internal)?;
    if let Err(e) = &result {
        if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            c.refused(e.status, &p.token_id, e.why);
        }
    }
    result
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(v).map(Json).map_err(internal)
}

/// `GET /api/v1/devices` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceParams {
    site: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    manufacturer: Option<String>,
    flag: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

/// `GET /api/v1/flags` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagParams {
    status: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn list_devices(
    State(st): State<Arc<ApiState>>,
    c: Caller,
    Query(q): Query<DeviceParams>,
) -> Result<Json<Value>, ApiError> {
    let page = authed(&st, &c, Cost::Cheap, move |s, p| {
        Ok(views::devices(
            s,
            p,
            DeviceQuery {
                site: q.site,
                device_type: q.device_type,
                manufacturer: q.manufacturer,
                flag: q.flag,
                vendors: None,
                limit: q.limit.unwrap_or(100),
                offset: q.offset.unwrap_or(0),
                ..DeviceQuery::default()
            },
        )?)
    })
    .await?;
    to_json(page)
}

async fn get_device(
    State(st): State<Arc<ApiState>>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let v = authed(&st, &c, Cost::Cheap, move |s, p| {
        Ok(views::device(s, p, id)?)
    })
    .await?;
    Ok(Json(v))
}

async fn get_device_versions(
    State(st): State<Arc<ApiState>>,
    c: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let v = authed(&st, &c, Cost::Cheap, move |s, p| {
        Ok(serde_json::to_value(views::device_versions(s, p, id)?).unwrap_or(Value::Null))
    })
    .await?;
    Ok(Json(v))
}

async fn list_flags(
    State(st): State<Arc<ApiState>>,
    c: Caller,
    Query(q): Query<FlagParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.status {
        if s != "open" && s != "resolved" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "status must be open or resolved",
            ));
        }
    }
    let page = authed(&st, &c, Cost::Cheap, move |s, p| {
        Ok(views::flags(
            s,
            p,
            FlagQuery {
                status: q.status,
                kind: q.kind,
                severity: q.severity,
                subject: None,
                vendors: None,
                limit: q.limit.unwrap_or(100),
                offset: q.offset.unwrap_or(0),
                ..FlagQuery::default()
            },
        )?)
    })
    .await?;
    to_json(page)
}

async fn list_contracts(
    State(st): State<Arc<ApiState>>,
    c: Caller,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &c, Cost::Expensive, |s, p| Ok(views::contracts(s, p)?)).await?)
}

async fn list_assets(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &c, Cost::Expensive, |s, p| Ok(views::assets(s, p)?)).await?)
}

async fn coverage(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &c, Cost::Expensive, |s, p| Ok(views::coverage(s, p)?)).await?)
}

async fn installed_base(
    State(st): State<Arc<ApiState>>,
    c: Caller,
) -> Result<Json<Value>, ApiError> {
    to_json(
        authed(&st, &c, Cost::Expensive, |s, p| {
            Ok(views::installed_base(s, p)?)
        })
        .await?,
    )
}

async fn patch_sla(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &c, Cost::Expensive, |s, p| Ok(views::patch_sla(s, p)?)).await?)
}

async fn list_agents(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &c, Cost::Expensive, |s, p| Ok(views::agents(s, p)?)).await?)
}

async fn list_tokens(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    to_json(
        authed(&st, &c, Cost::Cheap, |s, p| {
            views::require_admin(p)?;
            Ok(s.token_list().map_err(ViewError::from)?)
        })
        .await?,
    )
}

async fn evaluate(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Json<Value>, ApiError> {
    let cfg = st.flags.clone();
    let metrics = st.metrics.clone();
    let applied = authed(&st, &c, Cost::Expensive, move |s, p| {
        views::require_admin(p)?;
        let a =
            crate::ingest::evaluate(s, &cfg, crate::ingest::now_us()).map_err(ViewError::from)?;
        metrics.evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(a)
    })
    .await?;
    to_json(applied)
}

async fn metrics(State(st): State<Arc<ApiState>>, c: Caller) -> Result<Response, ApiError> {
    let m = st.metrics.clone();
    let text = authed(&st, &c, Cost::Expensive, move |s, p| {
        if p.role == crate::access::tokens::Role::Vendor {
            return Err(ViewError::Forbidden("vendor").into());
        }
        let counts = s.counts().map_err(ViewError::from)?;
        let agents = s.agents().map_err(ViewError::from)?;
        // The counts kept with the flags: a scrape never reads the flags themselves (two
        // million open at a million devices).
        let mut by_kind: std::collections::BTreeMap<String, u64> = crate::compliance::flags::KINDS
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for (kind, n) in s.open_flag_counts(None).map_err(ViewError::from)? {
            *by_kind.entry(kind).or_default() += n;
        }
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in lines {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "ward_collector_ingest_messages_total",
            "counter",
            "Observation messages stored.",
            vec![(String::new(), ld(&m.messages))],
        );
        metric(
            "ward_collector_ingest_duplicates_total",
            "counter",
            "Replayed messages skipped.",
            vec![(String::new(), ld(&m.duplicates))],
        );
        metric(
            "ward_collector_ingest_device_records_total",
            "counter",
            "Device records applied.",
            vec![(String::new(), ld(&m.device_records))],
        );
        metric(
            "ward_collector_ingest_rejected_total",
            "counter",
            "Messages refused whole, by reason (see docs/schema/observation-v1.md).",
            crate::ingest::rejected_totals()
                .into_iter()
                .map(|(r, v)| (format!("{{reason=\"{r}\"}}"), v))
                .collect(),
        );
        metric(
            "ward_collector_ingest_adjusted_total",
            "counter",
            "Values of accepted messages cut, replaced or dropped to fit the schema's bounds, by kind.",
            crate::ingest::adjusted_totals()
                .into_iter()
                .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v))
                .collect(),
        );
        if let Some(b) = m.broker.get() {
            let b = b.stats();
            metric(
                "ward_collector_mqtt_clients_connected",
                "gauge",
                "Clients connected to the embedded broker.",
                vec![(String::new(), b.connected)],
            );
            metric(
                "ward_collector_mqtt_refused_total",
                "counter",
                "Embedded broker refusals, by kind: login (bad credentials, unbound client id, forbidden will), publish (topic not the identity's own; connection closed), subscribe (filter not permitted), protocol (malformed, oversized, timeout, QoS 2, connection limit).",
                vec![
                    ("{kind=\"login\"}".into(), b.auth_failures),
                    ("{kind=\"publish\"}".into(), b.publishes_refused),
                    ("{kind=\"subscribe\"}".into(), b.subscriptions_refused),
                    ("{kind=\"protocol\"}".into(), b.protocol_errors),
                ],
            );
            metric(
                "ward_collector_mqtt_login_failures_unlogged_total",
                "counter",
                "Login failures not written to the log (rate limit).",
                vec![(String::new(), b.auth_failures_unlogged)],
            );
            metric(
                "ward_collector_mqtt_acks_total",
                "counter",
                "PUBACKs after commit (sent) and acks whose connection had closed (stale; the agent resends).",
                vec![
                    ("{result=\"sent\"}".into(), b.acks_sent),
                    ("{result=\"stale\"}".into(), b.stale_acks),
                ],
            );
            metric(
                "ward_collector_mqtt_alerts_total",
                "counter",
                "Alert messages queued to alert readers, and dropped because a reader's queue was full.",
                vec![
                    ("{result=\"sent\"}".into(), b.alerts_sent),
                    ("{result=\"dropped\"}".into(), b.alerts_dropped),
                ],
            );
        }
        metric(
            "ward_collector_ingest_statuses_total",
            "counter",
            "Agent status messages stored.",
            vec![(String::new(), ld(&m.statuses))],
        );
        metric(
            "ward_collector_evaluations_total",
            "counter",
            "Link and flag evaluations.",
            vec![(String::new(), ld(&m.evaluations))],
        );
        metric(
            "ward_collector_evaluator_lease",
            "gauge",
            "1 while this collector is the one evaluating flags and sending alerts (the lease; several collectors share a PostgreSQL database).",
            vec![(String::new(), ld(&m.evaluator_lease))],
        );
        metric(
            "ward_collector_http_requests_total",
            "counter",
            "API requests.",
            vec![(String::new(), ld(&m.http_requests))],
        );
        metric(
            "ward_collector_http_busy_total",
            "counter",
            "Expensive API requests refused with 503 (too many at once).",
            vec![(String::new(), ld(&m.http_busy))],
        );
        metric(
            "ward_collector_devices",
            "gauge",
            "Devices in the inventory.",
            vec![(String::new(), counts.devices)],
        );
        metric(
            "ward_collector_contracts",
            "gauge",
            "Contracts.",
            vec![(String::new(), counts.contracts)],
        );
        metric(
            "ward_collector_assets",
            "gauge",
            "Assets in the register.",
            vec![(String::new(), counts.assets)],
        );
        metric(
            "ward_collector_flags_open",
            "gauge",
            "Open flags by kind.",
            by_kind
                .into_iter()
                .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v))
                .collect(),
        );
        let online = agents
            .iter()
            .filter(|a| a.state.as_deref() == Some("online"))
            .count() as u64;
        metric(
            "ward_collector_agents",
            "gauge",
            "Agents by last reported state.",
            vec![
                ("{state=\"online\"}".into(), online),
                ("{state=\"offline\"}".into(), agents.len() as u64 - online),
            ],
        );
        metric(
            "ward_collector_agent_messages_missing",
            "gauge",
            "Messages agents sent that never arrived (sequence gaps).",
            vec![(
                String::new(),
                agents.iter().map(|a| a.missing.max(0) as u64).sum(),
            )],
        );
        capture_metrics(&agents, &mut metric);
        // Several collectors on one PostgreSQL database: the numbers above are this
        // collector's (its counters) or the database's; these are the whole cluster's.
        if let Some(c) = s.cluster().map_err(ViewError::from)? {
            let n = |v: i64| v.max(0) as u64;
            metric(
                "ward_cluster_devices",
                "gauge",
                "Devices in the shared inventory.",
                vec![(String::new(), n(c.devices))],
            );
            metric(
                "ward_cluster_messages_stored",
                "gauge",
                "Observation messages stored by every collector.",
                vec![(String::new(), n(c.messages))],
            );
            metric(
                "ward_cluster_flags_open",
                "gauge",
                "Open flags.",
                vec![(String::new(), n(c.open_flags))],
            );
            metric(
                "ward_cluster_alerts_pending",
                "gauge",
                "Flag openings and resolutions no collector has claimed to alert yet.",
                vec![(String::new(), n(c.unalerted_flags))],
            );
            metric(
                "ward_cluster_alerts_undelivered",
                "gauge",
                "Flag openings and resolutions claimed for alerting and not yet confirmed delivered to every destination.",
                vec![(String::new(), n(c.undelivered_flags))],
            );
            metric(
                "ward_cluster_collector_sessions",
                "gauge",
                "Database sessions of ward-collector processes.",
                vec![(String::new(), n(c.sessions))],
            );
            metric(
                "ward_cluster_lease_held",
                "gauge",
                "Leases by name and holder: 1 while live (the evaluator's lease names the collector evaluating).",
                c.leases
                    .iter()
                    .map(|(name, holder, live)| {
                        (
                            format!(
                                "{{lease=\"{}\",holder=\"{}\"}}",
                                label_value(name),
                                label_value(holder)
                            ),
                            u64::from(*live),
                        )
                    })
                    .collect(),
            );
        }
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// A Prometheus label value: backslash, quote and newline escaped, control characters dropped,
/// at most 64 characters (interface names come from agents).
fn label_value(v: &str) -> String {
    let mut out = String::new();
    for ch in v.chars().filter(|c| !c.is_control() || *c == '\n').take(64) {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Live-capture loss counters from each agent's last status message (`stats.ring_drops`,
/// `stats.queue_drops`, `stats.capture[]`; see docs/schema/status-v1.md). At most 64 rings per
/// agent are reported.
fn capture_metrics(
    agents: &[crate::store::AgentRow],
    metric: &mut impl FnMut(&str, &str, &str, Vec<(String, u64)>),
) {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let mut totals = Vec::new();
    let mut rings: [Vec<(String, u64)>; 3] = Default::default();
    for a in agents {
        let Some(stats) = &a.stats else { continue };
        let agent = format!(
            "site=\"{}\",agent_id=\"{}\"",
            label_value(&a.site),
            label_value(&a.agent_id)
        );
        for kind in ["ring", "queue"] {
            if let Some(v) = num(stats, &format!("{kind}_drops")) {
                totals.push((format!("{{{agent},kind=\"{kind}\"}}"), v));
            }
        }
        let Some(capture) = stats.get("capture").and_then(serde_json::Value::as_array) else {
            continue;
        };
        for c in capture.iter().take(64) {
            let iface = c
                .get("interface")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let labels = format!(
                "{{{agent},interface=\"{}\",worker=\"{}\"}}",
                label_value(iface),
                num(c, "worker").unwrap_or(0)
            );
            for (i, k) in ["ring_drops", "queue_drops", "packets"].iter().enumerate() {
                if let Some(v) = num(c, k) {
                    rings[i].push((labels.clone(), v));
                }
            }
        }
    }
    let [ring, queue, packets] = rings;
    metric(
        "ward_collector_agent_capture_drops",
        "gauge",
        "Frames each agent's live capture lost, as of its last status: kind=ring (the kernel's capture ring was full), kind=queue (the decoder queue was full).",
        totals,
    );
    metric(
        "ward_collector_agent_capture_ring_drops",
        "gauge",
        "Frames the kernel discarded because this agent ring (interface, worker) was full, as of the agent's last status.",
        ring,
    );
    metric(
        "ward_collector_agent_capture_queue_drops",
        "gauge",
        "Frames this agent ring (interface, worker) read but the decoder queue had no room for, as of the agent's last status.",
        queue,
    );
    metric(
        "ward_collector_agent_capture_packets",
        "gauge",
        "Frames this agent ring (interface, worker) read, as of the agent's last status.",
        packets,
    );
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/:id", get(get_device))
        .route("/api/v1/devices/:id/versions", get(get_device_versions))
        .route("/api/v1/flags", get(list_flags))
        .route("/api/v1/contracts", get(list_contracts))
        .route("/api/v1/assets", get(list_assets))
        .route("/api/v1/coverage", get(coverage))
        .route("/api/v1/installed-base", get(installed_base))
        .route("/api/v1/patch-sla", get(patch_sla))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/tokens", get(list_tokens))
        .route("/api/v1/evaluate", post(evaluate))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` (fails clearly if taken) and serves until `shutdown` resolves, then lets the
/// connections finish their requests. HTTP/1 only, each connection with
/// [`HEADER_READ_TIMEOUT`]; handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    serve_with(addr, state, Router::new(), shutdown).await
}

/// [`serve`] with `extra` routes (the web console) on the same address.
pub async fn serve_with(
    addr: SocketAddr,
    state: Arc<ApiState>,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("HTTP API: cannot listen on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %local, "HTTP API listening");
    let app = router(state).merge(extra);
    Ok(tokio::spawn(serve_connections(
        listener,
        app,
        HEADER_READ_TIMEOUT,
        shutdown,
    )))
}

async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; when all are gone, every connection has finished.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, typically: do not spin.
                    tracing::warn!(error = %e, "HTTP API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(ConnectInfo(peer))),
        );
        let mut stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let _done = done;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        // hyper's errors name what went wrong, never request bytes.
                        tracing::debug!(peer = %peer, error = %e, "HTTP connection closed");
                    }
                }
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
}

#[cfg(test)]
mod capture_metrics_tests {
    use super::*;

    fn agent(site: &str, stats: serde_json::Value) -> crate::store::AgentRow {
        crate::store::AgentRow {
            site: site.into(),
            agent_id: "span-01".into(),
            instance: None,
            state: Some("online".into()),
            version: None,
            status_time: None,
            reason: None,
            stats: Some(stats),
            messages: 0,
            missing: 0,
        }
    }

    #[test]
    fn capture_losses_from_the_last_status_reach_metrics() {
        let agents = [
            agent(
                "main",
                json!({"ring_drops": 7, "queue_drops": 2, "capture": [
                    {"interface": "eth1", "worker": 0, "packets": 100, "ring_drops": 5, "queue_drops": 2},
                    {"interface": "eth\"1\n", "worker": 1, "packets": 50, "ring_drops": 2, "queue_drops": 0}
                ]}),
            ),
            // An agent from before the fields existed: no capture series, no failure.
            agent("old", json!({"kernel_drops": 3})),
        ];
        let mut out = String::new();
        let mut metric = |name: &str, _: &str, _: &str, lines: Vec<(String, u64)>| {
            for (labels, v) in lines {
                out.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        capture_metrics(&agents, &mut metric);
        for line in [
            "ward_collector_agent_capture_drops{site=\"main\",agent_id=\"span-01\",kind=\"ring\"} 7",
            "ward_collector_agent_capture_drops{site=\"main\",agent_id=\"span-01\",kind=\"queue\"} 2",
            "ward_collector_agent_capture_ring_drops{site=\"main\",agent_id=\"span-01\",interface=\"eth1\",worker=\"0\"} 5",
            "ward_collector_agent_capture_queue_drops{site=\"main\",agent_id=\"span-01\",interface=\"eth1\",worker=\"0\"} 2",
            "ward_collector_agent_capture_packets{site=\"main\",agent_id=\"span-01\",interface=\"eth\\\"1\\n\",worker=\"1\"} 50",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
        assert!(!out.contains("site=\"old\""), "{out}");
        assert_eq!(label_value(&"x".repeat(100)).len(), 64);
    }
}
