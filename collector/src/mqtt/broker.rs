//! The embedded MQTT endpoint: agents connect to the collector itself, no separate broker needed.
//!
//! This is not a general-purpose broker. It speaks MQTT 3.1.1 (the protocol the agents and
//! alert consumers use) through rumqttc's packet codec (`rumqttc::mqttbytes::v4`, maintained with
//! the client the agents run) and does exactly what ward needs, with the rules a hospital's
//! security review asks for built in rather than bolted on:
//!
//! - **Acknowledged means committed.** An agent's QoS 1 message becomes a [`Delivery`] whose
//!   [`AckToken`] carries the connection and packet id; the PUBACK is written only when the
//!   ingest loop acks the token, after the database transaction committed. A `kill -9` of the
//!   collector therefore loses nothing an agent was told was received: the agent still has it
//!   in its spool and sends it again. PUBACKs leave in arrival order (MQTT 3.1.1 §4.6), because
//!   the ingest loop acks in the order it received.
//! - **Identities, roles, topics.** Every connection has an identity: the user name
//!   (`credentials`), or the client certificate's subject common name when client certificates
//!   are required and no passwords are configured. An identity listed in
//!   [`BrokerConfig::alert_readers`] is a read-only alert consumer: it may subscribe to
//!   `ward/v1/alerts/…` and publish nothing. Every other identity is an agent whose agent id is
//!   the identity: it may publish only `ward/v1/<site>/<identity>/devices` and `…/status` (and
//!   only under its own site when [`BrokerConfig::agent_sites`] binds one), its last will must
//!   be its own status topic, and it may subscribe to nothing. A refused publish closes the
//!   connection (MQTT 3.1.1 has no negative PUBACK; acknowledging and dropping would be a
//!   silent loss); a refused subscription gets the SUBACK failure code.
//! - **Client ids are bound to identities**: an identity may connect only as `<identity>` or
//!   `ward-<identity>` (the agents' default), so one agent cannot take over another's session,
//!   and the collector's own ingest is an in-process channel with no client id at all.
//! - **Anonymous mode** (no credentials and no client certificates) exists for a single host
//!   and tests: clients may publish only to `ward/v1/<site>/<agent>/devices|status` and
//!   subscribe only to alerts. [`EmbeddedBroker::listen`] refuses a non-loopback address
//!   without TLS and authentication unless [`BrokerConfig::allow_insecure`] is set (then it
//!   warns).
//! - **No unauthenticated path.** TLS is terminated in this process; there is no plaintext
//!   listener behind it. Before CONNECT is accepted a client may send at most
//!   [`PRE_AUTH_MAX_PACKET`] bytes and has [`CONNECT_TIMEOUT`] to do so.
//! - **Failures are visible**: authentication failures are logged with the user name and the
//!   peer address (rate-limited: [`AUTH_LOG_BURST`] lines per [`AUTH_LOG_WINDOW`], the rest
//!   counted), refusals and protocol errors are counted ([`BrokerStats`]). Nothing a client
//!   sends is logged except, escaped and truncated, its user name and client id.
//!
//! # Alerts
//!
//! [`BrokerLinker::publish`] hands a `ward.alert.v1` message to every alert consumer whose
//! subscription matches, at the QoS it was granted (at most 1), through a bounded queue per
//! connection ([`READER_QUEUE`]); a consumer that falls that far behind loses the oldest
//! messages it has not been sent, counted in [`BrokerStats::alerts_dropped`]. Sessions are not
//! kept: a consumer that is not connected misses alerts (the webhook, with retries, is the
//! durable path; the flags themselves stay in the database).
//!
//! # Retained messages and wills
//!
//! The only retained messages agents send are their status; they go straight to the ingest, so
//! nothing is kept here. A last will is published into the ingest when a connection ends
//! without DISCONNECT — but not when the same client id connected again and took the session
//! over, which would mark a reconnected agent offline.
//!
//! # Threads
//!
//! The listener and all connections run on one thread with its own single-threaded runtime
//! ([`EmbeddedBroker::listen`]); the ingest channel and the ack path are runtime-agnostic.
//! [`EmbeddedBroker::shutdown`] (or drop) closes the listener and every connection.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::tokio_rustls::rustls;
use rumqttc::tokio_rustls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, error, info, warn};
use ward_mqtt::topic::{self, AgentTopic};

use crate::mqtt::source::{AckToken, Delivery};

/// Default listen address: loopback only; set a routable address (with TLS and authentication)
/// to accept agents from other hosts.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883);
/// Default largest MQTT packet: agents send observation batches of up to about 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 4 << 20;
/// Default connection limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest packet a client may send before its CONNECT was accepted: an unauthenticated peer
/// must not make the collector buffer megabytes.
pub const PRE_AUTH_MAX_PACKET: usize = 64 << 10;
/// Time a client gets to complete TCP (and TLS) and send CONNECT.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies (PUBACK, SUBACK, PINGRESP) queued per connection; a client that lets more pile up
/// without reading them is disconnected.
pub const CTL_QUEUE: usize = 8192;
/// Alert messages queued per consumer connection before the oldest is dropped.
pub const READER_QUEUE: usize = 1024;
/// Authentication failures logged per [`AUTH_LOG_WINDOW`]; the rest are counted and summed up.
pub const AUTH_LOG_BURST: u64 = 20;
/// See [`AUTH_LOG_BURST`].
pub const AUTH_LOG_WINDOW: Duration = Duration::from_secs(60);
/// Topic namespace of alerts; consumers subscribe at or below it.
pub use ward_mqtt::topic::ALERTS_PREFIX;

/// MQTT's largest packet (remaining length).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// How long [`EmbeddedBroker::listen`] waits for the listener thread to report.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest user name or client id echoed into a log line (escaped).
const LOG_TEXT_MAX: usize = 64;

/// PEM files for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to. When set, every client
    /// must present a valid certificate (mutual TLS) whose subject common name is its identity;
    /// when not, none is asked for.
    pub ca: Option<PathBuf>,
}

/// Embedded endpoint settings. `Default` gives a plain listener on 127.0.0.1:1883 in
/// anonymous mode.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Address to listen on. Port 0 picks a free port ([`EmbeddedBroker::local_addr`] tells
    /// which).
    pub listen: SocketAddr,
    /// TLS listener instead of plain TCP.
    pub tls: Option<TlsFiles>,
    /// User name → password. `None` and no client CA: anonymous mode. `Some`: every client logs
    /// in with one of these (an empty map admits nobody); the user name is the identity.
    pub credentials: Option<HashMap<String, String>>,
    /// Agent identity → the only site it may publish under. Identities not listed may use any
    /// site.
    pub agent_sites: HashMap<String, String>,
    /// Identities that are read-only alert consumers (everyone else is an agent).
    pub alert_readers: BTreeSet<String>,
    /// Largest MQTT packet accepted from an authenticated client (payload plus topic and
    /// header), in bytes.
    pub max_payload: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Listen on a non-loopback address without TLS or without authentication (a warning is
    /// logged). Off by default: such a listener is refused.
    pub allow_insecure: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: DEFAULT_LISTEN,
            tls: None,
            credentials: None,
            agent_sites: HashMap::new(),
            alert_readers: BTreeSet::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_insecure: false,
        }
    }
}

impl BrokerConfig {
    /// Whether clients must prove an identity (passwords or client certificates).
    pub fn authenticates(&self) -> bool {
        self.credentials.is_some() || self.tls.as_ref().is_some_and(|t| t.ca.is_some())
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users = self.credentials.as_ref().map(|c| {
            let mut users: Vec<&str> = c.keys().map(String::as_str).collect();
            users.sort_unstable();
            users
        });
        f.debug_struct("BrokerConfig")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("credentials(users)", &users)
            .field("agent_sites", &self.agent_sites)
            .field("alert_readers", &self.alert_readers)
            .field("max_payload", &self.max_payload)
            .field("max_connections", &self.max_connections)
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

/// Why the embedded endpoint could not start or attach the ingest.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listener could not be bound (port in use, permission denied, no such address).
    #[error("embedded MQTT broker: cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A non-loopback listener without TLS or authentication, not explicitly allowed.
    #[error("embedded MQTT broker: refusing to listen on {addr} {reason}; configure TLS (tls_cert, tls_key) and authentication (credentials_file or tls_ca), listen on 127.0.0.1, or set allow_insecure_listen = true")]
    Insecure {
        /// The address.
        addr: SocketAddr,
        /// What is missing.
        reason: &'static str,
    },
    /// A TLS file is missing or unusable.
    #[error("embedded MQTT broker: TLS {what} {}: {reason}", path.display())]
    Tls {
        /// Which file: `certificate`, `key` or `CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A setting is out of range.
    #[error("embedded MQTT broker: invalid {setting}: {reason}")]
    InvalidSetting {
        /// The setting (field of [`BrokerConfig`]).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The ingest could not be attached.
    #[error("embedded MQTT broker: ingest link {client_id:?}: {reason}")]
    Link {
        /// Name of the link (logs only).
        client_id: String,
        /// What went wrong.
        reason: String,
    },
    /// [`EmbeddedBroker::listen`] was called twice.
    #[error("embedded MQTT broker: already listening on {0}")]
    AlreadyListening(SocketAddr),
    /// A thread or runtime could not be started.
    #[error("embedded MQTT broker: cannot start {what}: {reason}")]
    Start {
        /// What could not be started.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Counters of the endpoint (all since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Connections whose CONNECT was accepted.
    pub connections: u64,
    /// Connections open now.
    pub connected: u64,
    /// CONNECTs refused: bad user name or password, unknown or mismatched certificate, client
    /// id not bound to the identity, forbidden will topic.
    pub auth_failures: u64,
    /// Authentication failures not logged because of the rate limit.
    pub auth_failures_unlogged: u64,
    /// Connections closed for publishing to a topic their identity may not use.
    pub publishes_refused: u64,
    /// Subscription filters refused.
    pub subscriptions_refused: u64,
    /// Connections closed for a malformed packet, an oversized packet, a timeout or QoS 2.
    pub protocol_errors: u64,
    /// Connections closed because the same client id connected again.
    pub takeovers: u64,
    /// Messages handed to the ingest (wills included).
    pub received: u64,
    /// PUBACKs queued to agents after their message was committed.
    pub acks_sent: u64,
    /// Acks for a connection that had closed meanwhile (the agent sends the message again).
    pub stale_acks: u64,
    /// Alert messages queued to consumers.
    pub alerts_sent: u64,
    /// Alert messages dropped because a consumer's queue was full.
    pub alerts_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    connected: AtomicU64,
    auth_failures: AtomicU64,
    auth_failures_unlogged: AtomicU64,
    publishes_refused: AtomicU64,
    subscriptions_refused: AtomicU64,
    protocol_errors: AtomicU64,
    takeovers: AtomicU64,
    received: AtomicU64,
    acks_sent: AtomicU64,
    stale_acks: AtomicU64,
    alerts_sent: AtomicU64,
    alerts_dropped: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// No authentication configured: any agent topic, alert subscriptions.
    Anonymous,
    /// An agent: its own topics only.
    Agent {
        agent_id: String,
        site: Option<String>,
    },
    /// A read-only alert consumer.
    AlertReader,
}

/// An alert for a consumer: its writer task assigns the packet id.
struct Out(Publish);

/// The ingest's end of the hub.
struct IngestSink {
    generation: u64,
    tx: mpsc::Sender<Delivery>,
}

struct Session {
    conn: u64,
    kick: watch::Sender<bool>,
}

struct Reader {
    filters: Vec<(String, QoS)>,
    tx: mpsc::Sender<Out>,
}

/// State shared by the listener, the connections, the ingest and the alerter.
struct Hub {
    cfg: BrokerConfig,
    counters: Counters,
    ingest: Mutex<Option<IngestSink>>,
    sessions: Mutex<HashMap<String, Session>>,
    readers: Mutex<HashMap<u64, Reader>>,
    auth_log: Mutex<RateWindow>,
    next_id: AtomicU64,
}

struct RateWindow {
    start: Instant,
    logged: u64,
    suppressed: u64,
}

/// Proof that an agent's QoS 1 message reached the ingest; acking it writes the PUBACK.
pub(crate) struct EmbeddedAck {
    hub: Arc<Hub>,
    out: mpsc::Sender<Packet>,
    pkid: u16,
}

impl fmt::Debug for EmbeddedAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmbeddedAck(#{})", self.pkid)
    }
}

impl EmbeddedAck {
    /// Queues the PUBACK on the connection; false when the connection is gone (the agent
    /// sends the message again on its next connection).
    pub(crate) fn send(self) -> bool {
        let sent = self
            .out
            .try_send(Packet::PubAck(PubAck::new(self.pkid)))
            .is_ok();
        add(
            if sent {
                &self.hub.counters.acks_sent
            } else {
                &self.hub.counters.stale_acks
            },
            1,
        );
        sent
    }
}

/// Hands the endpoint to the collector's own parts: the ingest ([`BrokerLinker::attach_ingest`])
/// and the alerter ([`BrokerLinker::publish`]). Cheap to clone.
#[derive(Clone)]
pub struct BrokerLinker {
    hub: Arc<Hub>,
}

impl fmt::Debug for BrokerLinker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerLinker")
    }
}

/// The attached ingest; dropping it detaches (agents' publishes then close their connection
/// unacknowledged, so nothing is lost).
pub(crate) struct IngestLink {
    hub: Arc<Hub>,
    generation: u64,
}

impl fmt::Debug for IngestLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IngestLink({})", self.generation)
    }
}

impl Drop for IngestLink {
    fn drop(&mut self) {
        let mut ingest = lock(&self.hub.ingest);
        if ingest
            .as_ref()
            .is_some_and(|i| i.generation == self.generation)
        {
            *ingest = None;
        }
    }
}

impl BrokerLinker {
    /// Makes `tx` the destination of every message agents publish (one ingest at a time: a
    /// second attach replaces the first).
    pub(crate) fn attach_ingest(&self, tx: mpsc::Sender<Delivery>) -> IngestLink {
        let generation = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        *lock(&self.hub.ingest) = Some(IngestSink { generation, tx });
        IngestLink {
            hub: self.hub.clone(),
            generation,
        }
    }

    /// Publishes an alert to the consumers subscribed to `topic`; returns how many it was
    /// queued to. Never blocks.
    pub fn publish(&self, topic: &str, payload: &[u8]) -> usize {
        let readers = lock(&self.hub.readers);
        let mut queued = 0;
        for r in readers.values() {
            let Some(qos) = r
                .filters
                .iter()
                .filter(|(f, _)| mqttbytes::matches(topic, f))
                .map(|(_, q)| *q)
                .max_by_key(|q| *q as u8)
            else {
                continue;
            };
            let publish = Publish::new(topic, qos, payload.to_vec());
            match r.tx.try_send(Out(publish)) {
                Ok(()) => {
                    queued += 1;
                    add(&self.hub.counters.alerts_sent, 1);
                }
                Err(_) => add(&self.hub.counters.alerts_dropped, 1),
            }
        }
        queued
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        self.hub.stats()
    }
}

impl Hub {
    fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BrokerStats {
            connections: g(&c.connections),
            connected: g(&c.connected),
            auth_failures: g(&c.auth_failures),
            auth_failures_unlogged: g(&c.auth_failures_unlogged),
            publishes_refused: g(&c.publishes_refused),
            subscriptions_refused: g(&c.subscriptions_refused),
            protocol_errors: g(&c.protocol_errors),
            takeovers: g(&c.takeovers),
            received: g(&c.received),
            acks_sent: g(&c.acks_sent),
            stale_acks: g(&c.stale_acks),
            alerts_sent: g(&c.alerts_sent),
            alerts_dropped: g(&c.alerts_dropped),
        }
    }

    fn ingest_tx(&self) -> Option<mpsc::Sender<Delivery>> {
        lock(&self.ingest).as_ref().map(|i| i.tx.clone())
    }

    /// Counts an authentication failure and logs it unless the rate limit is reached.
    fn auth_failure(&self, peer: SocketAddr, user: Option<&str>, client_id: &str, reason: &str) {
        add(&self.counters.auth_failures, 1);
        let mut w = lock(&self.auth_log);
        if w.start.elapsed() >= AUTH_LOG_WINDOW {
            if w.suppressed > 0 {
                warn!(
                    suppressed = w.suppressed,
                    window = ?AUTH_LOG_WINDOW,
                    "MQTT authentication failures not logged in the last window (rate limit)"
                );
            }
            *w = RateWindow {
                start: Instant::now(),
                logged: 0,
                suppressed: 0,
            };
        }
        if w.logged < AUTH_LOG_BURST {
            w.logged += 1;
            warn!(
                %peer,
                user = %user.map(log_text).unwrap_or_else(|| "-".into()),
                client_id = %log_text(client_id),
                reason,
                "MQTT connection refused"
            );
        } else {
            w.suppressed += 1;
            add(&self.counters.auth_failures_unlogged, 1);
        }
    }
}

/// Client-chosen text for a log line: printable ASCII only (anything else as `\xNN`),
/// truncated, so that no client can forge log lines, send terminal escapes or flood the log.
fn log_text(s: &str) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        if i >= LOG_TEXT_MAX {
            out.push('…');
            break;
        }
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A topic level an agent or site id may be: what the agents accept for their own ids.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `role` may publish to `topic`: an agent topic ([`AgentTopic::parse`]) with valid
/// ids, outside the alerts namespace (which only the collector publishes in), and for an
/// agent its own id (and its bound site, if any).
fn may_publish(role: &Role, topic: &str) -> bool {
    let Ok(t) = AgentTopic::parse(topic) else {
        return false;
    };
    if !valid_id(t.site) || !valid_id(t.agent_id) || t.in_alerts_namespace() {
        return false;
    }
    match role {
        Role::Anonymous => true,
        Role::Agent {
            agent_id,
            site: bound,
        } => t.agent_id == agent_id && bound.as_deref().is_none_or(|b| b == t.site),
        Role::AlertReader => false,
    }
}

/// Whether `role` may subscribe to `filter`: alert consumers (and anonymous clients) to the
/// alerts namespace only; agents to nothing.
fn may_subscribe(role: &Role, filter: &str) -> bool {
    if matches!(role, Role::Agent { .. }) || !mqttbytes::valid_filter(filter) {
        return false;
    }
    // `ward/v1/alerts/#` or anything below `ward/v1/alerts/` with no wildcard above it.
    topic::is_alerts_filter(filter)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Listener thread that stops (and is joined) on drop.
struct Listening {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    join: Option<thread::JoinHandle<()>>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(join) = self.join.take() {
            if join.join().is_err() {
                error!("embedded broker listener thread panicked");
            }
        }
    }
}

/// A running embedded endpoint. Dropping it stops the listener and closes every connection.
pub struct EmbeddedBroker {
    hub: Arc<Hub>,
    tls: Option<Arc<rustls::ServerConfig>>,
    listening: Option<Listening>,
}

impl fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("cfg", &self.hub.cfg)
            .field("listening", &self.local_addr())
            .finish()
    }
}

/// Starts the endpoint and its listener: [`EmbeddedBroker::new`] then
/// [`EmbeddedBroker::listen`]. Prefer the two steps when the ingest must be attached before
/// agents can connect.
pub fn start(cfg: &BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
    let mut broker = EmbeddedBroker::new(cfg)?;
    broker.listen()?;
    Ok(broker)
}

impl EmbeddedBroker {
    /// Validates `cfg` (TLS files are loaded now, so a bad certificate fails at start, not at
    /// the first agent connection), without a listener yet.
    pub fn new(cfg: &BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
        validate(cfg)?;
        if cfg.credentials.as_ref().is_some_and(HashMap::is_empty) {
            warn!("embedded MQTT broker: credentials are required but none are configured; every client will be refused");
        }
        let tls = cfg.tls.as_ref().map(load_tls).transpose()?.map(Arc::new);
        Ok(EmbeddedBroker {
            hub: Arc::new(Hub {
                cfg: cfg.clone(),
                counters: Counters::default(),
                ingest: Mutex::new(None),
                sessions: Mutex::new(HashMap::new()),
                readers: Mutex::new(HashMap::new()),
                auth_log: Mutex::new(RateWindow {
                    start: Instant::now(),
                    logged: 0,
                    suppressed: 0,
                }),
                next_id: AtomicU64::new(1),
            }),
            tls,
            listening: None,
        })
    }

    /// Binds the listener and returns its address once it accepts connections. Refuses a
    /// non-loopback address without TLS and authentication unless
    /// [`BrokerConfig::allow_insecure`].
    pub fn listen(&mut self) -> Result<SocketAddr, BrokerError> {
        if let Some(l) = &self.listening {
            return Err(BrokerError::AlreadyListening(l.addr));
        }
        let cfg = &self.hub.cfg;
        let listen = cfg.listen;
        if !listen.ip().is_loopback() {
            let missing = match (cfg.tls.is_some(), cfg.authenticates()) {
                (true, true) => None,
                (false, true) => Some("without TLS"),
                (true, false) => Some("without authentication"),
                (false, false) => Some("without TLS and without authentication"),
            };
            if let Some(reason) = missing {
                if !cfg.allow_insecure {
                    return Err(BrokerError::Insecure {
                        addr: listen,
                        reason,
                    });
                }
                warn!(
                    %listen,
                    reason,
                    "embedded MQTT broker: listening on a non-loopback address {reason} because allow_insecure_listen is set; any host that reaches it can read credentials on the wire or publish as any agent"
                );
            }
        }
        let std_listener = StdTcpListener::bind(listen).map_err(|e| BrokerError::Bind {
            addr: listen,
            reason: e.to_string(),
        })?;
        let addr = std_listener.local_addr().map_err(|e| BrokerError::Bind {
            addr: listen,
            reason: e.to_string(),
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| BrokerError::Bind {
                addr,
                reason: e.to_string(),
            })?;
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let hub = self.hub.clone();
        let tls = self.tls.clone().map(TlsAcceptor::from);
        let join = thread::Builder::new()
            .name("mqtt-endpoint".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    accept_loop(listener, hub, tls, stop_rx).await;
                });
            })
            .map_err(|e| BrokerError::Start {
                what: "listener thread",
                reason: e.to_string(),
            })?;
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(BrokerError::Start {
                    what: "listener",
                    reason,
                })
            }
            Err(_) => {
                return Err(BrokerError::Start {
                    what: "listener",
                    reason: format!("no answer within {START_TIMEOUT:?}"),
                })
            }
        }
        info!(
            %addr,
            tls = self.tls.is_some(),
            client_certificates = cfg.tls.as_ref().is_some_and(|t| t.ca.is_some()),
            passwords = cfg.credentials.is_some(),
            alert_readers = cfg.alert_readers.len(),
            "embedded MQTT broker listening"
        );
        self.listening = Some(Listening {
            addr,
            stop,
            join: Some(join),
        });
        Ok(addr)
    }

    /// The bound address, once listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listening.as_ref().map(|l| l.addr)
    }

    /// Hands out the collector's own links (ingest, alerts).
    pub fn linker(&self) -> BrokerLinker {
        BrokerLinker {
            hub: self.hub.clone(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        self.hub.stats()
    }

    /// Stops the listener and closes every connection.
    pub fn shutdown(mut self) {
        self.listening = None;
    }
}

/// Agent credentials read from a file: user name → password, and agent → bound site.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name (agent id or alert reader) → password.
    pub passwords: HashMap<String, String>,
    /// Agent id → the only site it may publish under.
    pub sites: HashMap<String, String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.passwords.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("Credentials")
            .field("users", &users)
            .field("sites", &self.sites)
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum CredentialEntry {
    Password(String),
    Table {
        password: String,
        #[serde(default)]
        site: Option<String>,
    },
}

/// Why a credentials file is unusable. Never quotes the file: it holds passwords.
#[derive(Debug, thiserror::Error)]
#[error("credentials file {}: {reason}", path.display())]
pub struct CredentialsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the line number where there is one.
    pub reason: String,
}

impl Credentials {
    /// Reads `path` (TOML: `agent-id = "password"` or `agent-id = { password = "…", site = "…" }`).
    /// Warns when the file is readable by other users: it holds passwords in clear text.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let err = |reason: String| CredentialsError {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o004 != 0 {
                warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the credentials file is readable by every user on this host; chmod 600 it (owner: the collector's user)");
            } else if mode & 0o040 != 0 {
                debug!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the credentials file is readable by its group");
            }
        }
        if meta.len() > 16 << 20 {
            return Err(err("larger than 16 MiB".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let table: std::collections::BTreeMap<String, CredentialEntry> = toml::from_str(&text)
            .map_err(|e| {
                // toml's message quotes the offending line, which may be a password.
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                err(match line {
                    Some(l) => format!("line {l}: expected `agent-id = \"password\"` or `agent-id = {{ password = \"…\", site = \"…\" }}`"),
                    None => "expected lines of `agent-id = \"password\"`".into(),
                })
            })?;
        let mut c = Credentials::default();
        for (user, entry) in table {
            if !valid_id(&user) {
                return Err(err(format!(
                    "user name {:?} must be 1 to 128 characters of A-Z a-z 0-9 - _ . (it is the agent id)",
                    log_text(&user)
                )));
            }
            let (password, site) = match entry {
                CredentialEntry::Password(p) => (p, None),
                CredentialEntry::Table { password, site } => (password, site),
            };
            if password.is_empty() {
                return Err(err(format!("user {user}: empty password")));
            }
            if let Some(site) = site {
                if !valid_id(&site) {
                    return Err(err(format!(
                        "user {user}: site must be 1 to 128 characters of A-Z a-z 0-9 - _ ."
                    )));
                }
                c.sites.insert(user.clone(), site);
            }
            c.passwords.insert(user, password);
        }
        Ok(c)
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidSetting {
        setting,
        reason: reason.into(),
    }
}

fn validate(cfg: &BrokerConfig) -> Result<(), BrokerError> {
    if cfg.max_payload < 1024 || cfg.max_payload > MQTT_MAX_PACKET {
        return Err(invalid(
            "max_payload",
            format!(
                "{} is not from 1024 to {MQTT_MAX_PACKET} bytes",
                cfg.max_payload
            ),
        ));
    }
    if cfg.max_connections < 1 {
        return Err(invalid("max_connections", "must be at least 1"));
    }
    if let Some(creds) = &cfg.credentials {
        if let Some(user) = creds.keys().find(|u| !valid_id(u)) {
            return Err(invalid(
                "credentials",
                format!(
                    "user name {:?} must be 1 to 128 characters of A-Z a-z 0-9 - _ . (it is the agent id)",
                    log_text(user)
                ),
            ));
        }
    }
    for (agent, site) in &cfg.agent_sites {
        if !valid_id(agent) || !valid_id(site) {
            return Err(invalid(
                "agent_sites",
                format!(
                    "{:?} = {:?}: both must be 1 to 128 characters of A-Z a-z 0-9 - _ .",
                    log_text(agent),
                    log_text(site)
                ),
            ));
        }
    }
    if let Some(reader) = cfg.alert_readers.iter().find(|r| !valid_id(r)) {
        return Err(invalid(
            "alert_readers",
            format!(
                "{:?} must be 1 to 128 characters of A-Z a-z 0-9 - _ .",
                log_text(reader)
            ),
        ));
    }
    Ok(())
}

fn tls_err(what: &'static str, path: &Path, reason: impl Into<String>) -> BrokerError {
    BrokerError::Tls {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BrokerError> {
    let file = std::fs::File::open(path).map_err(|e| tls_err(what, path, e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(what, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(what, path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Loads and checks the TLS files into a rustls server configuration.
fn load_tls(files: &TlsFiles) -> Result<rustls::ServerConfig, BrokerError> {
    let certs = read_certs("certificate", &files.cert)?;
    let key_file =
        std::fs::File::open(&files.key).map_err(|e| tls_err("key", &files.key, e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
        .map_err(|e| tls_err("key", &files.key, e.to_string()))?
        .ok_or_else(|| {
            tls_err(
                "key",
                &files.key,
                "no PEM private key (PKCS#8, PKCS#1 or SEC1) found",
            )
        })?;
    // The process-wide provider when one is installed, else the one rustls is built with here.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("certificate", &files.cert, e.to_string()))?;
    let builder = match &files.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("CA", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| tls_err("CA", ca, e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| tls_err("CA", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("certificate", &files.cert, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Connections

async fn accept_loop(
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(hub.cfg.max_connections));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                warn!(error = %e, "embedded MQTT broker: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            add(&hub.counters.protocol_errors, 1);
            debug!(%peer, "embedded MQTT broker: connection limit reached; closed");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let hub = hub.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(hub, tcp, peer, None, stop).await,
                Some(acceptor) => {
                    let tls_stream = match tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            add(&hub.counters.protocol_errors, 1);
                            debug!(%peer, error = %e, "embedded MQTT broker: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            add(&hub.counters.protocol_errors, 1);
                            debug!(%peer, "embedded MQTT broker: TLS handshake timed out");
                            return;
                        }
                    };
                    let cn = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| certificate_cn(c.as_ref()));
                    serve_connection(hub, tls_stream, peer, cn, stop).await
                }
            }
        });
    }
}

/// The subject common name of a DER certificate; `Err` when there is none usable.
fn certificate_cn(der: &[u8]) -> Result<String, ()> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| ())?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(())?;
    Ok(cn.to_string())
}

/// Why a connection ended.
enum End {
    /// DISCONNECT: no will.
    Clean,
    /// Another connection took the client id over: no will.
    TakenOver,
    /// The endpoint is stopping: no will (the collector is going away).
    Stopping,
    /// Anything else: the will is published.
    Lost,
}

/// Reads one packet, reading more from `stream` as needed (within `max`).
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Packet, ReadError> {
    loop {
        match Packet::read(buf, max) {
            Ok(p) => return Ok(p),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(ReadError::Protocol(e)),
        }
        // Bounded by `max`: `Packet::read` refuses a larger remaining length before we read it.
        buf.reserve(16 << 10);
        match stream.read_buf(buf).await {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

enum ReadError {
    Closed,
    Io(std::io::Error),
    Protocol(mqttbytes::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => f.write_str("connection closed"),
            ReadError::Io(e) => write!(f, "I/O error: {}", e.kind()),
            // mqttbytes' messages carry numbers and packet types only, never client bytes.
            ReadError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

async fn write_packet<S: AsyncWrite + Unpin>(
    w: &mut S,
    packet: &Packet,
    buf: &mut BytesMut,
) -> std::io::Result<()> {
    buf.clear();
    packet
        .write(buf, MQTT_MAX_PACKET)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    w.write_all(buf).await
}

/// Authenticates a CONNECT: the role, or the CONNACK code and a reason for the log.
fn authenticate(
    cfg: &BrokerConfig,
    connect: &mqttbytes::v4::Connect,
    cert_cn: Option<&Result<String, ()>>,
) -> Result<Role, (ConnectReturnCode, &'static str)> {
    use ConnectReturnCode as C;
    let login = connect.login.as_ref();
    let identity = if let Some(creds) = &cfg.credentials {
        let Some(login) = login else {
            return Err((C::NotAuthorized, "no user name"));
        };
        let Some(expected) = creds.get(&login.username) else {
            return Err((C::BadUserNamePassword, "unknown user"));
        };
        if !constant_time_eq(expected.as_bytes(), login.password.as_bytes()) {
            return Err((C::BadUserNamePassword, "wrong password"));
        }
        if let Some(cn) = cert_cn {
            match cn {
                Ok(cn) if *cn == login.username => {}
                Ok(_) => {
                    return Err((
                        C::NotAuthorized,
                        "certificate common name differs from the user name",
                    ))
                }
                Err(()) => return Err((C::NotAuthorized, "certificate has no common name")),
            }
        }
        Some(login.username.clone())
    } else if let Some(cn) = cert_cn {
        let Ok(cn) = cn else {
            return Err((C::NotAuthorized, "certificate has no common name"));
        };
        if !valid_id(cn) {
            return Err((
                C::NotAuthorized,
                "certificate common name is not a valid identity",
            ));
        }
        if login.is_some_and(|l| l.username != *cn) {
            return Err((
                C::NotAuthorized,
                "user name differs from the certificate common name",
            ));
        }
        Some(cn.clone())
    } else if cfg.tls.as_ref().is_some_and(|t| t.ca.is_some()) {
        // The TLS verifier requires a certificate; this is unreachable unless that changes.
        return Err((C::NotAuthorized, "no client certificate"));
    } else {
        None
    };
    let client_id = connect.client_id.as_str();
    let role = match identity {
        None => {
            if client_id.is_empty() {
                return Err((C::BadClientId, "empty client id"));
            }
            Role::Anonymous
        }
        Some(id) => {
            let bound = client_id == id
                || client_id
                    .strip_prefix("ward-")
                    .is_some_and(|rest| rest == id);
            if !bound {
                return Err((
                    C::BadClientId,
                    "client id is not the identity or ward-<identity>",
                ));
            }
            if cfg.alert_readers.contains(&id) {
                Role::AlertReader
            } else {
                Role::Agent {
                    site: cfg.agent_sites.get(&id).cloned(),
                    agent_id: id,
                }
            }
        }
    };
    if let Some(will) = &connect.last_will {
        if !may_publish(&role, &will.topic) || will.qos == QoS::ExactlyOnce {
            return Err((C::NotAuthorized, "last will topic not permitted"));
        }
    }
    Ok(role)
}

async fn serve_connection<S>(
    hub: Arc<Hub>,
    stream: S,
    peer: SocketAddr,
    cert_cn: Option<Result<String, ()>>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    let mut wbuf = BytesMut::new();
    let first = tokio::time::timeout(
        CONNECT_TIMEOUT,
        read_packet(&mut rd, &mut buf, PRE_AUTH_MAX_PACKET),
    )
    .await;
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => {
            add(&hub.counters.protocol_errors, 1);
            debug!(%peer, "MQTT: first packet is not CONNECT; closed");
            return;
        }
        Ok(Err(ReadError::Protocol(mqttbytes::Error::InvalidProtocolLevel(level)))) => {
            add(&hub.counters.protocol_errors, 1);
            debug!(%peer, level, "MQTT: unsupported protocol level; refused");
            let ack = Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::RefusedProtocolVersion,
                false,
            ));
            let _ = write_packet(&mut wr, &ack, &mut wbuf).await;
            return;
        }
        Ok(Err(e)) => {
            add(&hub.counters.protocol_errors, 1);
            debug!(%peer, error = %e, "MQTT: no valid CONNECT; closed");
            return;
        }
        Err(_) => {
            add(&hub.counters.protocol_errors, 1);
            debug!(%peer, "MQTT: no CONNECT within the timeout; closed");
            return;
        }
    };
    let role = match authenticate(&hub.cfg, &connect, cert_cn.as_ref()) {
        Ok(r) => r,
        Err((code, reason)) => {
            let user = connect.login.as_ref().map(|l| l.username.as_str());
            hub.auth_failure(peer, user, &connect.client_id, reason);
            let _ = write_packet(
                &mut wr,
                &Packet::ConnAck(ConnAck::new(code, false)),
                &mut wbuf,
            )
            .await;
            let _ = wr.shutdown().await;
            return;
        }
    };
    let client_id = connect.client_id.clone();
    let conn = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (kick_tx, mut kick) = watch::channel(false);
    // Take the session over (MQTT: a new connection with the same client id wins).
    if let Some(old) = lock(&hub.sessions).insert(
        client_id.clone(),
        Session {
            conn,
            kick: kick_tx,
        },
    ) {
        add(&hub.counters.takeovers, 1);
        let _ = old.kick.send(true);
        debug!(%peer, client_id = %log_text(&client_id), "MQTT: client id connected again; the older connection is closed");
    }
    add(&hub.counters.connections, 1);
    add(&hub.counters.connected, 1);
    debug!(%peer, client_id = %log_text(&client_id), role = ?role_name(&role), "MQTT client connected");

    // Writer task. Control packets (acks, SUBACKs, PINGRESPs) go through a bounded queue: a
    // client that keeps sending requests but never reads the answers fills it, and is dropped
    // (below) rather than allowed to grow it; alerts go through their own bounded queue.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Packet>(CTL_QUEUE);
    let (alert_tx, mut alert_rx) = mpsc::channel::<Out>(READER_QUEUE);
    let _ = ctl_tx.try_send(Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        false,
    )));
    // Acks in the ingest hold senders of `ctl`, so its end is told separately.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut wbuf = BytesMut::new();
        let mut next_pkid: u16 = 0;
        loop {
            let packet = tokio::select! {
                biased;
                p = ctl_rx.recv() => match p { Some(p) => p, None => break },
                _ = &mut done_rx => {
                    // Flush what is queued (a last SUBACK, PINGRESP), then close: acks that
                    // come later find the channel closed and count as stale.
                    ctl_rx.close();
                    while let Ok(p) = ctl_rx.try_recv() {
                        if write_packet(&mut wr, &p, &mut wbuf).await.is_err() {
                            break;
                        }
                    }
                    break;
                }
                a = alert_rx.recv() => match a {
                    Some(Out(mut publish)) => {
                        if publish.qos != QoS::AtMostOnce {
                            next_pkid = next_pkid.checked_add(1).unwrap_or(1);
                            publish.pkid = next_pkid;
                        }
                        Packet::Publish(publish)
                    }
                    None => continue,
                },
            };
            if write_packet(&mut wr, &packet, &mut wbuf).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let max = hub.cfg.max_payload;
    let keep_alive = match connect.keep_alive {
        0 => None,
        // MQTT 3.1.1 §3.1.2.10: one and a half keep-alive periods without a packet.
        k => Some(Duration::from_millis(u64::from(k) * 1500)),
    };
    let end = loop {
        let read = async {
            match keep_alive {
                Some(k) => tokio::time::timeout(k, read_packet(&mut rd, &mut buf, max))
                    .await
                    .unwrap_or(Err(ReadError::Closed)),
                None => read_packet(&mut rd, &mut buf, max).await,
            }
        };
        let packet = tokio::select! {
            biased;
            _ = stop.changed() => break End::Stopping,
            _ = kick.changed() => break End::TakenOver,
            p = read => p,
        };
        let packet = match packet {
            Ok(p) => p,
            Err(ReadError::Closed) => break End::Lost,
            Err(e) => {
                if matches!(e, ReadError::Protocol(_)) {
                    add(&hub.counters.protocol_errors, 1);
                }
                debug!(%peer, client_id = %log_text(&client_id), error = %e, "MQTT connection closed");
                break End::Lost;
            }
        };
        match packet {
            Packet::Publish(p) => {
                if p.qos == QoS::ExactlyOnce {
                    add(&hub.counters.protocol_errors, 1);
                    debug!(%peer, client_id = %log_text(&client_id), "MQTT: QoS 2 is not supported; closed");
                    break End::Lost;
                }
                if !may_publish(&role, &p.topic) {
                    add(&hub.counters.publishes_refused, 1);
                    warn!(
                        %peer,
                        client_id = %log_text(&client_id),
                        role = role_name(&role),
                        topic = %log_text(&p.topic),
                        "MQTT: publish to a topic this identity may not use; connection closed"
                    );
                    break End::Lost;
                }
                let Some(ingest) = hub.ingest_tx() else {
                    // Closing without PUBACK: the agent keeps the message and sends it again.
                    debug!(%peer, "MQTT: no ingest attached; connection closed");
                    break End::Stopping;
                };
                let ack = if p.qos == QoS::AtLeastOnce {
                    AckToken::embedded(EmbeddedAck {
                        hub: hub.clone(),
                        out: ctl_tx.clone(),
                        pkid: p.pkid,
                    })
                } else {
                    AckToken::none()
                };
                let delivery = Delivery {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retained: false,
                    ack,
                };
                // Waiting here is the backpressure: we stop reading the socket.
                let sent = tokio::select! {
                    biased;
                    _ = stop.changed() => break End::Stopping,
                    s = ingest.send(delivery) => s,
                };
                if sent.is_err() {
                    debug!(%peer, "MQTT: the ingest stopped; connection closed");
                    break End::Stopping;
                }
                add(&hub.counters.received, 1);
            }
            Packet::Subscribe(s) => {
                let mut codes = Vec::with_capacity(s.filters.len());
                let mut granted = Vec::new();
                for f in &s.filters {
                    if may_subscribe(&role, &f.path) {
                        let qos = if f.qos == QoS::AtMostOnce {
                            QoS::AtMostOnce
                        } else {
                            QoS::AtLeastOnce
                        };
                        codes.push(SubscribeReasonCode::Success(qos));
                        granted.push((f.path.clone(), qos));
                    } else {
                        add(&hub.counters.subscriptions_refused, 1);
                        warn!(
                            %peer,
                            client_id = %log_text(&client_id),
                            role = role_name(&role),
                            filter = %log_text(&f.path),
                            "MQTT: subscription refused"
                        );
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                if !granted.is_empty() {
                    let mut readers = lock(&hub.readers);
                    let r = readers.entry(conn).or_insert_with(|| Reader {
                        filters: Vec::new(),
                        tx: alert_tx.clone(),
                    });
                    for (f, q) in granted {
                        r.filters.retain(|(old, _)| *old != f);
                        r.filters.push((f, q));
                    }
                }
                if ctl_tx
                    .try_send(Packet::SubAck(SubAck::new(s.pkid, codes)))
                    .is_err()
                {
                    add(&hub.counters.protocol_errors, 1);
                    debug!(%peer, client_id = %log_text(&client_id), "MQTT: the client does not read its replies; closed");
                    break End::Lost;
                }
            }
            Packet::Unsubscribe(u) => {
                if let Some(r) = lock(&hub.readers).get_mut(&conn) {
                    r.filters.retain(|(f, _)| !u.topics.contains(f));
                }
                if ctl_tx
                    .try_send(Packet::UnsubAck(UnsubAck::new(u.pkid)))
                    .is_err()
                {
                    add(&hub.counters.protocol_errors, 1);
                    debug!(%peer, client_id = %log_text(&client_id), "MQTT: the client does not read its replies; closed");
                    break End::Lost;
                }
            }
            Packet::PingReq => {
                if ctl_tx.try_send(Packet::PingResp).is_err() {
                    add(&hub.counters.protocol_errors, 1);
                    debug!(%peer, client_id = %log_text(&client_id), "MQTT: the client does not read its replies; closed");
                    break End::Lost;
                }
            }
            // A consumer acknowledging an alert: nothing is kept to release.
            Packet::PubAck(_) => {}
            Packet::Disconnect => break End::Clean,
            _ => {
                add(&hub.counters.protocol_errors, 1);
                debug!(%peer, client_id = %log_text(&client_id), "MQTT: unexpected packet; closed");
                break End::Lost;
            }
        }
    };

    lock(&hub.readers).remove(&conn);
    {
        let mut sessions = lock(&hub.sessions);
        if sessions.get(&client_id).is_some_and(|s| s.conn == conn) {
            sessions.remove(&client_id);
        }
    }
    if let (End::Lost, Some(will)) = (&end, connect.last_will) {
        if let Some(ingest) = hub.ingest_tx() {
            let d = Delivery {
                topic: will.topic,
                payload: will.message.to_vec(),
                retained: false,
                ack: AckToken::none(),
            };
            if ingest.try_send(d).is_ok() {
                add(&hub.counters.received, 1);
            } else {
                debug!(%peer, "MQTT: ingest queue full; last will not delivered");
            }
        }
    }
    drop(ctl_tx);
    drop(alert_tx);
    let _ = done_tx.send(());
    let _ = writer.await;
    hub.counters.connected.fetch_sub(1, Ordering::Relaxed);
    debug!(%peer, client_id = %log_text(&client_id), "MQTT client disconnected");
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Anonymous => "anonymous",
        Role::Agent { .. } => "agent",
        Role::AlertReader => "alert_reader",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Role {
        Role::Agent {
            agent_id: id.into(),
            site: None,
        }
    }

    #[test]
    fn agents_publish_only_their_own_topics() {
        let a = agent("agentA");
        assert!(may_publish(&a, "ward/v1/north/agentA/devices"));
        assert!(may_publish(&a, "ward/v1/south/agentA/status"));
        assert!(!may_publish(&a, "ward/v1/north/agentB/devices"));
        assert!(!may_publish(&a, "ward/v1/alerts/north"));
        assert!(!may_publish(&a, "ward/v1/alerts/agentA/devices"));
        assert!(!may_publish(&a, "ward/v1/north/agentA/devices/x"));
        assert!(!may_publish(&a, "ward/v1/north/agentA/other"));
        assert!(!may_publish(&a, "ward/v1/no rth/agentA/devices"));
        let bound = Role::Agent {
            agent_id: "agentA".into(),
            site: Some("north".into()),
        };
        assert!(may_publish(&bound, "ward/v1/north/agentA/devices"));
        assert!(!may_publish(&bound, "ward/v1/south/agentA/devices"));
        assert!(!may_publish(
            &Role::AlertReader,
            "ward/v1/north/agentA/devices"
        ));
        assert!(!may_publish(&Role::AlertReader, "ward/v1/alerts/north"));
        assert!(may_publish(&Role::Anonymous, "ward/v1/north/x/devices"));
        assert!(!may_publish(&Role::Anonymous, "ward/v1/alerts/north"));
    }

    #[test]
    fn only_readers_subscribe_and_only_to_alerts() {
        for f in [
            "#",
            "ward/#",
            "ward/v1/#",
            "ward/v1/+/+/devices",
            "ward/v1/alerts/",
        ] {
            assert!(!may_subscribe(&Role::AlertReader, f), "{f}");
        }
        assert!(may_subscribe(&Role::AlertReader, "ward/v1/alerts/#"));
        assert!(may_subscribe(&Role::AlertReader, "ward/v1/alerts/north"));
        assert!(may_subscribe(&Role::Anonymous, "ward/v1/alerts/+"));
        assert!(!may_subscribe(&agent("a"), "ward/v1/alerts/#"));
    }

    #[test]
    fn log_text_escapes_and_bounds() {
        assert_eq!(log_text("a\nb\x1b[31m"), "a\\x0ab\\x1b[31m");
        assert!(log_text(&"x".repeat(10_000)).len() < 80);
        assert_eq!(log_text("é"), "\\xc3\\xa9");
    }

    fn connect(id: &str, login: Option<(&str, &str)>) -> mqttbytes::v4::Connect {
        let mut c = mqttbytes::v4::Connect::new(id);
        if let Some((u, p)) = login {
            c.set_login(u, p);
        }
        c
    }

    #[test]
    fn client_ids_are_bound_to_identities() {
        let cfg = BrokerConfig {
            credentials: Some(HashMap::from([
                ("agentA".to_string(), "pa".to_string()),
                ("noc".to_string(), "pn".to_string()),
            ])),
            alert_readers: BTreeSet::from(["noc".to_string()]),
            ..BrokerConfig::default()
        };
        let ok = |id, u, p| authenticate(&cfg, &connect(id, Some((u, p))), None);
        assert_eq!(ok("ward-agentA", "agentA", "pa").unwrap(), agent("agentA"));
        assert_eq!(ok("agentA", "agentA", "pa").unwrap(), agent("agentA"));
        assert!(ok("ward-agentB", "agentA", "pa").is_err());
        assert!(ok("ward-collector-ingest", "agentA", "pa").is_err());
        assert!(ok("ward-agentA", "agentA", "wrong").is_err());
        assert!(ok("ward-agentA", "agentB", "pa").is_err());
        assert_eq!(ok("noc", "noc", "pn").unwrap(), Role::AlertReader);
        assert!(authenticate(&cfg, &connect("ward-agentA", None), None).is_err());
        // Certificates: the common name must match the user.
        let cn = Ok("agentB".to_string());
        assert!(authenticate(
            &cfg,
            &connect("ward-agentA", Some(("agentA", "pa"))),
            Some(&cn)
        )
        .is_err());
    }

    #[test]
    fn certificate_identity_without_passwords() {
        let cfg = BrokerConfig {
            tls: Some(TlsFiles {
                cert: "c".into(),
                key: "k".into(),
                ca: Some("ca".into()),
            }),
            ..BrokerConfig::default()
        };
        let cn = Ok("agentA".to_string());
        assert_eq!(
            authenticate(&cfg, &connect("ward-agentA", None), Some(&cn)).unwrap(),
            agent("agentA")
        );
        assert!(authenticate(&cfg, &connect("ward-agentB", None), Some(&cn)).is_err());
        assert!(authenticate(&cfg, &connect("ward-agentA", None), Some(&Err(()))).is_err());
        assert!(authenticate(&cfg, &connect("ward-agentA", None), None).is_err());
    }

    #[test]
    fn wills_must_be_the_agents_own_status() {
        let cfg = BrokerConfig {
            credentials: Some(HashMap::from([("agentA".to_string(), "pa".to_string())])),
            ..BrokerConfig::default()
        };
        let mut c = connect("ward-agentA", Some(("agentA", "pa")));
        c.last_will = Some(mqttbytes::v4::LastWill::new(
            "ward/v1/north/agentB/status",
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        assert!(authenticate(&cfg, &c, None).is_err());
        c.last_will = Some(mqttbytes::v4::LastWill::new(
            "ward/v1/north/agentA/status",
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        assert!(authenticate(&cfg, &c, None).is_ok());
    }
}
