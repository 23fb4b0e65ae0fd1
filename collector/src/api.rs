//! The HTTP API (axum, JSON) and `/metrics`. Every endpoint authenticates a bearer token and
//! goes through [`crate::views`], where what each role may see is decided.
//!
//! SQLite work runs on blocking threads with connections from a small pool: WAL lets readers
//! proceed while the ingest loop writes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::flags::FlagConfig;
use crate::store::sqlite::SqliteStore;
use crate::store::{DeviceQuery, FlagQuery, Store};
use crate::tokens::{self, Principal};
use crate::views::{self, ViewError};

/// The OpenAPI 3 document, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

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
    /// API requests served.
    pub http_requests: AtomicU64,
}

/// Shared by the handlers.
#[derive(Debug)]
pub struct ApiState {
    db: PathBuf,
    pool: Mutex<Vec<SqliteStore>>,
    metrics: Arc<Metrics>,
    flags: FlagConfig,
}

impl ApiState {
    /// State over the database at `db`.
    pub fn new(db: PathBuf, metrics: Arc<Metrics>, flags: FlagConfig) -> ApiState {
        ApiState {
            db,
            pool: Mutex::new(Vec::new()),
            metrics,
            flags,
        }
    }
}

/// An API error and its status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({"error": self.1}))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ward\""),
            );
        }
        r
    }
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        match e {
            ViewError::Forbidden(_) => ApiError(StatusCode::FORBIDDEN, e.to_string()),
            ViewError::NotFound => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            ViewError::BadRequest(m) => ApiError(StatusCode::BAD_REQUEST, m),
            ViewError::Store(s) => {
                tracing::error!(error = %s, "API storage error");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "storage error".into())
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API error");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".into(),
        )
    };
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .ok_or_else(unauthorized)?;
    Ok(t.trim().to_string())
}

/// Runs `f` with a pooled connection and the authenticated principal, on a blocking thread.
async fn authed<T: Send + 'static>(
    st: &Arc<ApiState>,
    headers: &HeaderMap,
    f: impl FnOnce(&mut SqliteStore, &Principal) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    st.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let token = bearer(headers)?;
    let st = st.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = {
            let mut pool = st.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        if store.is_none() {
            store = Some(SqliteStore::open(&st.db).map_err(internal)?);
        }
        let Some(mut store) = store else {
            return Err(internal("no connection"));
        };
        let result = match tokens::authenticate(&store, &token, crate::ingest::now_us()) {
            Ok(p) => f(&mut store, &p),
            Err(tokens::AuthError::Store(e)) => Err(internal(e)),
            Err(e) => {
                tracing::info!(reason = %e, "API token refused");
                Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "missing or invalid bearer token".into(),
                ))
            }
        };
        st.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store);
        result
    })
    .await
    .map_err(internal)?
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
    headers: HeaderMap,
    Query(q): Query<DeviceParams>,
) -> Result<Json<Value>, ApiError> {
    let page = authed(&st, &headers, move |s, p| {
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
            },
        )?)
    })
    .await?;
    to_json(page)
}

async fn get_device(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let v = authed(&st, &headers, move |s, p| Ok(views::device(s, p, id)?)).await?;
    Ok(Json(v))
}

async fn list_flags(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<FlagParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = &q.status {
        if s != "open" && s != "resolved" {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "status must be open or resolved".into(),
            ));
        }
    }
    let page = authed(&st, &headers, move |s, p| {
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
            },
        )?)
    })
    .await?;
    to_json(page)
}

async fn list_contracts(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &headers, |s, p| Ok(views::contracts(s, p)?)).await?)
}

async fn list_assets(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &headers, |s, p| Ok(views::assets(s, p)?)).await?)
}

async fn coverage(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &headers, |s, p| Ok(views::coverage(s, p)?)).await?)
}

async fn installed_base(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &headers, |s, p| Ok(views::installed_base(s, p)?)).await?)
}

async fn list_agents(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(authed(&st, &headers, |s, p| Ok(views::agents(s, p)?)).await?)
}

async fn list_tokens(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    to_json(
        authed(&st, &headers, |s, p| {
            views::require_admin(p)?;
            Ok(s.token_list().map_err(ViewError::from)?)
        })
        .await?,
    )
}

async fn evaluate(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let cfg = st.flags.clone();
    let metrics = st.metrics.clone();
    let applied = authed(&st, &headers, move |s, p| {
        views::require_admin(p)?;
        let a =
            crate::ingest::evaluate(s, &cfg, crate::ingest::now_us()).map_err(ViewError::from)?;
        metrics.evaluations.fetch_add(1, Ordering::Relaxed);
        Ok(a)
    })
    .await?;
    to_json(applied)
}

async fn metrics(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let m = st.metrics.clone();
    let text = authed(&st, &headers, move |s, p| {
        if p.role == crate::tokens::Role::Vendor {
            return Err(ViewError::Forbidden("vendor").into());
        }
        let counts = s.counts().map_err(ViewError::from)?;
        let agents = s.agents().map_err(ViewError::from)?;
        let (_, open) = s
            .flag_page(&FlagQuery {
                status: Some("open".into()),
                limit: u32::MAX,
                ..FlagQuery::default()
            })
            .map_err(ViewError::from)?;
        let mut by_kind: std::collections::BTreeMap<String, u64> = crate::flags::KINDS
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        for f in &open {
            *by_kind.entry(f.kind.clone()).or_default() += 1;
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
            "ward_collector_http_requests_total",
            "counter",
            "API requests.",
            vec![(String::new(), ld(&m.http_requests))],
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
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
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
        .route("/api/v1/flags", get(list_flags))
        .route("/api/v1/contracts", get(list_contracts))
        .route("/api/v1/assets", get(list_assets))
        .route("/api/v1/coverage", get(coverage))
        .route("/api/v1/installed-base", get(installed_base))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/tokens", get(list_tokens))
        .route("/api/v1/evaluate", post(evaluate))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` (fails clearly if taken) and serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("HTTP API: cannot listen on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %local, "HTTP API listening");
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    }))
}
