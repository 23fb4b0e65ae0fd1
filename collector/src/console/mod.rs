//! The web console (issue 21): server-rendered HTML at `/` on the API's address, for the people
//! who will not read JSON — clinical engineering and vendors' service managers.
//!
//! - **Same tokens, same views.** A person signs in with an API token; the session then has
//!   that token's role and vendors, and every page is built from the functions in
//!   [`crate::access::views`] (or [`crate::access::report`] for CSV), never from the store
//!   around them: a vendor sees in the browser exactly what its token sees through the API.
//! - **Sessions live in the database** ([`crate::store::Store::session_use`]), so several
//!   collectors on one database (issue 22) share them and a sign-out or a revoked token ends
//!   a session everywhere. The cookie carries a random secret; the store keeps its SHA-256.
//!   The cookie is `HttpOnly; SameSite=Strict; Path=/` (and `Secure` with
//!   `[console] secure_cookie`); nothing about a session ever appears in a URL.
//! - **CSRF**: sign-in is protected by a double-submit token (a short-lived cookie and the
//!   same value in the form), every form after it by the session's own token; a POST whose
//!   `Origin` is another site is refused as well.
//! - **No script, no CDN**: the pages work without JavaScript; the one stylesheet is compiled
//!   into the binary ([`CSS`]). Every response carries a Content-Security-Policy without
//!   `unsafe-inline`, `frame-ancestors 'none'`, `nosniff`, `no-referrer` and `no-store`
//!   ([`security_headers`]). Every value is escaped by maud at the point it is written, so a
//!   host name such as `<script>alert(1)</script>` reaches the page as text.

mod chart;
mod pages;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::access::tokens::{self, Principal, Role};
use crate::access::views::ViewError;
use crate::config::ConsoleSection;
use crate::ingest::SafeText;
use crate::store::{ConsoleSession, SessionLimits, Store};

/// The console's stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("console.css");
/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/static/console.css";
/// The session cookie.
pub const SESSION_COOKIE: &str = "ward_session";
/// The sign-in form's double-submit cookie.
pub const SIGNIN_COOKIE: &str = "ward_signin";
/// The Content-Security-Policy of every console response: nothing inline, nothing from
/// elsewhere, no framing, forms only to this origin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Idle database connections kept for the console.
const POOL_MAX: usize = 4;

/// Shared by the console's handlers.
#[derive(Debug)]
pub struct ConsoleState {
    db: PathBuf,
    pool: Mutex<Vec<Box<dyn Store>>>,
    limits: SessionLimits,
    secure_cookie: bool,
    /// Pages whose cost grows with the inventory (the CSV export of every device, the assets
    /// reconciliation) run a few at a time, as the API's expensive requests do.
    expensive: tokio::sync::Semaphore,
}

impl ConsoleState {
    /// State over the database at `db` with the `[console]` settings.
    pub fn new(db: PathBuf, cfg: &ConsoleSection) -> ConsoleState {
        let minutes = |m: u64| i64::try_from(m.max(1)).unwrap_or(i64::MAX / 2) * 60_000_000;
        ConsoleState {
            db,
            pool: Mutex::new(Vec::new()),
            limits: SessionLimits {
                idle_us: minutes(cfg.session_idle_minutes),
                absolute_us: minutes(cfg.session_max_hours.saturating_mul(60)),
            },
            secure_cookie: cfg.secure_cookie,
            expensive: tokio::sync::Semaphore::new(
                crate::access::api::DEFAULT_EXPENSIVE_CONCURRENCY,
            ),
        }
    }

    /// A turn for an expensive page, or 503 after [`crate::access::api::DEFAULT_EXPENSIVE_WAIT`].
    async fn expensive_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Response> {
        match tokio::time::timeout(
            crate::access::api::DEFAULT_EXPENSIVE_WAIT,
            self.expensive.acquire(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(PageError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The collector is busy with other large pages; try again shortly.",
            }
            .into_response()),
        }
    }

    fn connection(&self) -> Result<Box<dyn Store>, PageError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(s) => Ok(s),
            // A path (SQLite) or a PostgreSQL URL, as the API's connections.
            None => {
                crate::store::open_store(&self.db.to_string_lossy()).map_err(PageError::internal)
            }
        }
    }

    fn give_back(&self, store: Box<dyn Store>) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(store);
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        if self.secure_cookie {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// A page that could not be shown: its status and a message for people (never stored data).
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: &'static str,
}

impl PageError {
    fn internal(e: impl std::fmt::Display) -> PageError {
        tracing::error!(error = %e, "console error");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Something went wrong on the collector; the log says what.",
        }
    }

    fn bad_request(message: &'static str) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl From<ViewError> for PageError {
    fn from(e: ViewError) -> PageError {
        match e {
            ViewError::Forbidden(_) => PageError {
                status: StatusCode::FORBIDDEN,
                message: "Your role may not see this page.",
            },
            ViewError::NotFound | ViewError::Invisible => PageError {
                status: StatusCode::NOT_FOUND,
                message: "Not found.",
            },
            ViewError::BadRequest(_) => PageError::bad_request("A filter value is not valid."),
            ViewError::Store(s) => PageError::internal(s),
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> PageError {
        PageError::internal(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (
            self.status,
            html(pages::error_page(self.status, self.message)),
        )
            .into_response()
    }
}

fn html(m: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

/// A signed-in request: who, and the token its forms carry.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session (the token's role and vendors).
    pub principal: Principal,
    /// The session's CSRF token.
    pub csrf: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex() -> Result<String, PageError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(PageError::internal)?;
    Ok(hex(&b))
}

fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// Equal without an early exit (the values are secrets of one fixed length).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie's value from the request's `Cookie` headers, when it has the shape of one of ours
/// (64 hex digits): anything else is ignored, never echoed or logged.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a POST comes from this origin, as far as the browser says: `Sec-Fetch-Site` (sent
/// by current browsers) must be `same-origin` (or `none`: typed by the user), else an `Origin`
/// must be this host. `Origin: null` is what a browser sends under `Referrer-Policy:
/// no-referrer`, so it proves nothing either way and the form's token decides.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = get(header::ORIGIN).filter(|o| *o != "null") else {
        return true;
    };
    let host = get(header::HOST).unwrap_or("");
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o == host)
}

fn now_us() -> i64 {
    crate::ingest::now_us()
}

/// The principal of a session's token now: `None` once the token is revoked, expired or gone
/// (the session then ends).
fn principal_of(
    store: &dyn Store,
    token_id: &str,
    now: i64,
) -> Result<Option<Principal>, PageError> {
    let Some(rec) = store.token_get(token_id)? else {
        return Ok(None);
    };
    if rec.revoked_us.is_some() || rec.expires_us.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    let Ok(role) = rec.role.parse::<Role>() else {
        return Ok(None);
    };
    Ok(Some(Principal {
        token_id: rec.id,
        name: rec.name,
        role,
        vendors: (role == Role::Vendor).then_some(rec.vendors),
    }))
}

/// What a handler asks of a signed-in request.
enum Outcome {
    /// Render this.
    Page(Response),
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
}

/// Checks the session cookie, then runs `f` with a pooled connection and the session on a
/// blocking thread. No session, an ended one or a revoked token: redirect to sign-in (and the
/// stale cookie is cleared).
async fn signed_in(
    st: &Arc<ConsoleState>,
    headers: &HeaderMap,
    f: impl FnOnce(&mut dyn Store, &Session) -> Result<Response, PageError> + Send + 'static,
) -> Response {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return to_sign_in(st, false);
    };
    let had_cookie = true;
    let st2 = st.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<Outcome, PageError> {
        let mut store = st2.connection()?;
        let r = (|| {
            let id = sha256_hex(&secret);
            let now = now_us();
            let Some(s) = store.session_use(&id, now, st2.limits)? else {
                return Ok(Outcome::SignIn);
            };
            let Some(principal) = principal_of(&store, &s.token_id, now)? else {
                // The token was revoked or expired: its sessions end with it.
                store.session_end(&id)?;
                tracing::info!(token_id = %s.token_id, "console session ended: token revoked or expired");
                return Ok(Outcome::SignIn);
            };
            let session = Session {
                principal,
                csrf: s.csrf,
            };
            f(&mut store, &session).map(Outcome::Page)
        })();
        st2.give_back(store);
        r
    })
    .await;
    match r {
        Ok(Ok(Outcome::Page(p))) => p,
        Ok(Ok(Outcome::SignIn)) => to_sign_in(st, had_cookie),
        Ok(Err(e)) => e.into_response(),
        Err(e) => PageError::internal(e).into_response(),
    }
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

fn to_sign_in(st: &ConsoleState, clear: bool) -> Response {
    let mut r = redirect("/signin");
    if clear {
        r.headers_mut()
            .append(header::SET_COOKIE, st.cookie(SESSION_COOKIE, "", Some(0)));
    }
    r
}

/// The sign-in page, with a fresh double-submit token in a cookie and in the form.
async fn sign_in_page(State(st): State<Arc<ConsoleState>>) -> Response {
    sign_in_form(&st, StatusCode::OK, None)
}

fn sign_in_form(st: &ConsoleState, status: StatusCode, error: Option<&'static str>) -> Response {
    let csrf = match random_hex() {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut r = (status, html(pages::sign_in(&csrf, error))).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        st.cookie(SIGNIN_COOKIE, &csrf, Some(600)),
    );
    r
}

/// `POST /signin` form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    csrf: String,
}

async fn sign_in(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let double_submit = cookie(&headers, SIGNIN_COOKIE).is_some_and(|c| same(&c, &form.csrf));
    if !double_submit || !same_origin(&headers) {
        tracing::warn!("console sign-in refused: CSRF check failed");
        return sign_in_form(
            &st,
            StatusCode::FORBIDDEN,
            Some("The sign-in form had expired. Please try again."),
        );
    }
    let token_id = token_id_of(&form.token).to_string();
    let st2 = st.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<Option<String>, PageError> {
        let mut store = st2.connection()?;
        let r = (|| {
            let now = now_us();
            let p = match tokens::authenticate(&store, &form.token, now) {
                Ok(p) => p,
                Err(tokens::AuthError::Store(e)) => return Err(PageError::internal(e)),
                Err(_) => return Ok(None),
            };
            let secret = random_hex()?;
            store.session_insert(&ConsoleSession {
                id_sha256: sha256_hex(&secret),
                token_id: p.token_id.clone(),
                csrf: random_hex()?,
                created_us: now,
                last_used_us: now,
            })?;
            tracing::info!(token_id = %p.token_id, role = p.role.as_str(), "console sign-in");
            Ok(Some(secret))
        })();
        st2.give_back(store);
        r
    })
    .await;
    match r {
        Ok(Ok(Some(secret))) => {
            let mut r = redirect("/");
            let h = r.headers_mut();
            h.append(header::SET_COOKIE, st.cookie(SESSION_COOKIE, &secret, None));
            h.append(header::SET_COOKIE, st.cookie(SIGNIN_COOKIE, "", Some(0)));
            r
        }
        Ok(Ok(None)) => {
            tracing::warn!(token_id = %SafeText::new(&token_id), "console sign-in refused: token not accepted");
            sign_in_form(
                &st,
                StatusCode::UNAUTHORIZED,
                Some("That token was not accepted (unknown, revoked or expired)."),
            )
        }
        Ok(Err(e)) => e.into_response(),
        Err(e) => PageError::internal(e).into_response(),
    }
}

/// The id part of a token when it has the shape of one (what a refusal may log).
fn token_id_of(token: &str) -> &str {
    token
        .trim()
        .strip_prefix("ward_")
        .and_then(|r| r.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or("-")
}

/// `POST /signout` form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let origin_ok = same_origin(&headers);
    let secret = cookie(&headers, SESSION_COOKIE);
    let r = signed_in(&st, &headers, move |store, s| {
        if !origin_ok || !same(&s.csrf, &form.csrf) {
            tracing::warn!(token_id = %s.principal.token_id, "console sign-out refused: CSRF check failed");
            return Err(PageError {
                status: StatusCode::FORBIDDEN,
                message: "The form had expired. Please try again.",
            });
        }
        if let Some(secret) = secret {
            store.session_end(&sha256_hex(&secret))?;
        }
        tracing::info!(token_id = %s.principal.token_id, "console sign-out");
        Ok(redirect("/signin"))
    })
    .await;
    let mut r = r;
    if r.status() == StatusCode::SEE_OTHER {
        r.headers_mut()
            .append(header::SET_COOKIE, st.cookie(SESSION_COOKIE, "", Some(0)));
    }
    r
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// Adds the security headers to every console response; pages are never cached.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn overview(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    signed_in(&st, &headers, |s, sess| Ok(html(pages::overview(s, sess)?))).await
}

async fn devices(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(q): Query<pages::DeviceParams>,
) -> Response {
    signed_in(&st, &headers, move |s, sess| {
        Ok(html(pages::devices(s, sess, &q)?))
    })
    .await
}

async fn devices_csv(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(q): Query<pages::DeviceParams>,
) -> Response {
    let _turn = match st.expensive_turn().await {
        Ok(t) => t,
        Err(busy) => return busy,
    };
    signed_in(&st, &headers, move |s, sess| {
        let mut out = Vec::new();
        crate::access::report::devices_csv(s, &sess.principal, q.query(0, 1)?, &mut out)
            .map_err(PageError::internal)?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"ward-devices.csv\"",
                ),
            ],
            out,
        )
            .into_response())
    })
    .await
}

async fn device(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return PageError {
            status: StatusCode::NOT_FOUND,
            message: "Not found.",
        }
        .into_response();
    };
    signed_in(&st, &headers, move |s, sess| {
        Ok(html(pages::device(s, sess, id)?))
    })
    .await
}

async fn flags(
    State(st): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(q): Query<pages::FlagParams>,
) -> Response {
    signed_in(&st, &headers, move |s, sess| {
        Ok(html(pages::flags(s, sess, &q)?))
    })
    .await
}

async fn contracts(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    signed_in(&st, &headers, |s, sess| {
        Ok(html(pages::contracts(s, sess)?))
    })
    .await
}

async fn assets(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let _turn = match st.expensive_turn().await {
        Ok(t) => t,
        Err(busy) => return busy,
    };
    signed_in(&st, &headers, |s, sess| Ok(html(pages::assets(s, sess)?))).await
}

async fn agents(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    signed_in(&st, &headers, |s, sess| Ok(html(pages::agents(s, sess)?))).await
}

async fn patch_sla(State(st): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    signed_in(&st, &headers, |s, sess| {
        Ok(html(pages::patch_sla(s, sess)?))
    })
    .await
}

async fn not_found() -> Response {
    PageError {
        status: StatusCode::NOT_FOUND,
        message: "Not found.",
    }
    .into_response()
}

/// The console's routes, each response with [`security_headers`]. Merged with the API's
/// router on one address; the API's paths (`/api/…`, `/metrics`) are not the console's.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/devices", get(devices))
        .route("/devices.csv", get(devices_csv))
        .route("/devices/:id", get(device))
        .route("/flags", get(flags))
        .route("/contracts", get(contracts))
        .route("/assets", get(assets))
        .route("/agents", get(agents))
        .route("/patch-sla", get(patch_sla))
        .route(CSS_PATH, get(css))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_only_in_our_shape() {
        let mut h = HeaderMap::new();
        let v = "a".repeat(64);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; ward_session={v}; y=2")).unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some(v));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("ward_session=<script>"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
    }

    #[test]
    fn origin_must_be_this_host_when_given() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h), "no-referrer pages post with Origin: null");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_asked() {
        let mut cfg = ConsoleSection::default();
        let st = ConsoleState::new("x.db".into(), &cfg);
        let c = st.cookie(SESSION_COOKIE, "v", None);
        assert_eq!(c, "ward_session=v; HttpOnly; SameSite=Strict; Path=/");
        cfg.secure_cookie = true;
        let st = ConsoleState::new("x.db".into(), &cfg);
        let c = st.cookie(SESSION_COOKIE, "", Some(0));
        assert_eq!(
            c,
            "ward_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure"
        );
        assert!(!CSP.contains("unsafe-inline"));
    }
}
