//! The embedded MQTT broker: agents connect to the collector itself, no separate broker needed.
//!
//! Built on rumqttd (MQTT 3.1.1, the protocol the agents speak), assembled here from its parts
//! rather than through `rumqttd::Broker`, because `Broker::start` blocks forever, swallows
//! listener errors (it logs them and carries on) and hides the router handle that in-process
//! links need. Here:
//!
//! - [`EmbeddedBroker::new`] starts rumqttd's router (its own thread) and validates the whole
//!   configuration, TLS files included, so a bad certificate fails at start, not at the first
//!   agent connection.
//! - [`EmbeddedBroker::linker`] hands out in-process links (the collector's own subscriber,
//!   see [`crate::source`]). Subscribe **before** [`EmbeddedBroker::listen`]: rumqttd only
//!   keeps messages for filters somebody subscribed to, and acknowledges (PUBACK) publishers on
//!   receipt, so a device message that arrives before the collector subscribed is acknowledged
//!   and lost.
//! - [`EmbeddedBroker::listen`] binds the listener and returns only once it is bound, or with
//!   an error naming the address (port taken, permission denied).
//!
//! # TLS
//!
//! rumqttd performs TLS handshakes inline in its accept loop, without a timeout: one client
//! that opens a TCP connection and never speaks would stop every later connection from being
//! accepted. So TLS is terminated here instead, by a small front (its own thread) that accepts
//! on the public address, handshakes each connection concurrently with a timeout, and pipes
//! the plaintext to rumqttd listening on an ephemeral port of 127.0.0.1. This also gives
//! client-certificate verification (`tls.ca`), which rumqttd only has behind a Cargo feature.
//! The loopback port accepts plain MQTT from local processes; credentials, when configured,
//! still apply there.
//!
//! # Retained messages, wills
//!
//! rumqttd keeps the last retained message per topic (the agents' `status` topic) in memory and
//! hands it to every new subscriber of a matching filter; last wills are published when a
//! connection dies without DISCONNECT. Nothing survives a restart of the collector: the agents
//! publish a fresh status after every connect. rumqttd replays at most one batch of retained
//! messages to a new subscription (200 for in-process links, 100 for network clients) and
//! drops the rest: the ingest link is unaffected (it subscribes before any agent connects), but
//! a late viewer of `ward/v1/+/+/status` sees only part of a large fleet.
//!
//! # Memory
//!
//! rumqttd appends every publish to an in-memory log per subscribed filter and serves
//! subscribers from it; the log is a ring of [`SEGMENTS`] segments holding about
//! [`BrokerConfig::backlog_bytes`] and it stays that full once traffic has filled it. A
//! subscriber that falls further behind than that skips ahead (rumqttd logs "Read cursor start
//! jumped"): it is the bound on how far the ingest may lag.
//!
//! # Stopping
//!
//! [`EmbeddedBroker::shutdown`] (or drop) closes the listeners and every client connection.
//! rumqttd's router thread has no stop and lives on until the process exits (idle).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use rumqttc::tokio_rustls::rustls;
use rumqttc::tokio_rustls::TlsAcceptor;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tracing::{debug, error, info, warn};

/// Default listen address: loopback only; set a routable address to accept agents.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883);
/// Default largest MQTT packet: agents send observation batches of up to about 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 4 << 20;
/// Default connection limit (agents plus in-process links).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default in-memory backlog per subscribed filter (see the module documentation).
pub const DEFAULT_BACKLOG_BYTES: usize = 256 << 20;
/// Segments of the per-filter in-memory log; the oldest one is dropped as a whole.
pub const SEGMENTS: usize = 8;

/// MQTT's largest packet (remaining length).
const MQTT_MAX_PACKET: usize = 268_435_455;
/// Time a client gets to send CONNECT after the TCP (and TLS) connection is up.
const CONNECT_TIMEOUT_MS: u16 = 10_000;
/// Time a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`EmbeddedBroker::listen`] waits for a listener thread to report.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets rumqttd reads from one connection before handing them to the router.
const READ_BATCH: usize = 200;
/// Messages the router hands a subscriber per scheduling round (QoS 0 subscriptions).
const FORWARD_BATCH: u64 = 200;
/// Attempts to bind an ephemeral port we picked (another process may take it in between).
const EPHEMERAL_ATTEMPTS: usize = 5;

/// PEM files for the TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to. When set, every client
    /// must present a valid certificate (mutual TLS); when not, none is asked for.
    pub ca: Option<PathBuf>,
}

/// Embedded broker settings. `Default` gives a plain listener on 127.0.0.1:1883 that accepts
/// anonymous clients.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Address to listen on. Port 0 picks a free port ([`EmbeddedBroker::local_addr`] tells
    /// which).
    pub listen: SocketAddr,
    /// TLS listener instead of plain TCP.
    pub tls: Option<TlsFiles>,
    /// Per-agent user name → password. `None` allows anonymous clients; `Some` requires every
    /// client to log in with one of these (an empty map admits nobody).
    pub credentials: Option<HashMap<String, String>>,
    /// Largest MQTT packet accepted (payload plus topic and header), in bytes.
    pub max_payload: usize,
    /// Most simultaneous connections, the collector's own in-process links included.
    pub max_connections: usize,
    /// In-memory log per subscribed filter, in bytes: how far the ingest may fall behind
    /// before messages are skipped. Memory stays at about this once traffic filled it.
    pub backlog_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: DEFAULT_LISTEN,
            tls: None,
            credentials: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            backlog_bytes: DEFAULT_BACKLOG_BYTES,
        }
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
            .field("max_payload", &self.max_payload)
            .field("max_connections", &self.max_connections)
            .field("backlog_bytes", &self.backlog_bytes)
            .finish()
    }
}

/// Why the embedded broker could not start or hand out a link.
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
    /// An in-process link was refused.
    #[error("embedded MQTT broker: in-process link {client_id:?}: {reason}")]
    Link {
        /// The link's client id.
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

type LinkFn = dyn Fn(&str) -> Result<(LinkTx, LinkRx), String> + Send + Sync;
type ServerFn = dyn Fn(ServerSettings) -> Server<V4> + Send + Sync;

/// Hands out in-process links to the embedded broker's router. Cheap to clone.
#[derive(Clone)]
pub struct BrokerLinker {
    link: Arc<LinkFn>,
}

impl fmt::Debug for BrokerLinker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerLinker")
    }
}

impl BrokerLinker {
    /// Opens an in-process MQTT connection named `client_id` (a connection with the same id is
    /// dropped, as MQTT requires). Subscriptions made through the link are QoS 0: delivery is a
    /// memory hand-off, and the router holds data back (up to the backlog) while the link's
    /// reader is slow. Blocks briefly until the router answers; from async code call it in
    /// `spawn_blocking`.
    pub fn link(&self, client_id: &str) -> Result<(LinkTx, LinkRx), BrokerError> {
        let refused = |reason: String| BrokerError::Link {
            client_id: client_id.to_string(),
            reason,
        };
        if client_id.is_empty() {
            return Err(refused("the client id must not be empty".into()));
        }
        if let Some(c) = client_id.chars().find(|c| "+#/$".contains(*c)) {
            return Err(refused(format!("the client id must not contain {c:?}")));
        }
        (self.link)(client_id).map_err(|e| {
            refused(format!(
                "{e} (the router refused it: connection limit reached or router stopped)"
            ))
        })
    }
}

/// A listener thread that stops (and is joined) on drop.
struct StoppableThread {
    stop: Option<oneshot::Sender<()>>,
    join: Option<thread::JoinHandle<()>>,
}

impl Drop for StoppableThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            if join.join().is_err() {
                error!("embedded broker listener thread panicked");
            }
        }
    }
}

struct Listening {
    addr: SocketAddr,
    /// Stopped in order: the TLS front first, then the MQTT listener behind it.
    threads: Vec<StoppableThread>,
}

/// A running embedded broker. Dropping it stops the listeners (see [`EmbeddedBroker::shutdown`]).
pub struct EmbeddedBroker {
    cfg: BrokerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    linker: BrokerLinker,
    new_server: Arc<ServerFn>,
    listening: Option<Listening>,
}

impl fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("cfg", &self.cfg)
            .field("listening", &self.local_addr())
            .finish()
    }
}

/// Starts the embedded broker and its listener: [`EmbeddedBroker::new`] then
/// [`EmbeddedBroker::listen`]. Prefer the two steps when the collector's own subscriber must be
/// in place before agents can connect.
pub fn start(cfg: &BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
    let mut broker = EmbeddedBroker::new(cfg)?;
    broker.listen()?;
    Ok(broker)
}

impl EmbeddedBroker {
    /// Validates `cfg` (TLS files are loaded now) and starts rumqttd's router, without a
    /// listener yet.
    pub fn new(cfg: &BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
        validate(cfg)?;
        if cfg.credentials.as_ref().is_some_and(HashMap::is_empty) {
            warn!("embedded MQTT broker: credentials are required but none are configured; every client will be refused");
        }
        let tls = cfg.tls.as_ref().map(load_tls).transpose()?.map(Arc::new);

        let segment = (cfg.backlog_bytes / SEGMENTS).max(1024);
        let router_config = RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: FORWARD_BATCH,
            max_segment_size: segment,
            max_segment_count: SEGMENTS,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        // `Router::spawn` names its thread and panics only if the OS refuses a thread.
        let router_tx = Router::new(0, router_config).spawn();
        let link_tx = router_tx.clone();
        let linker = BrokerLinker {
            link: Arc::new(move |client_id: &str| {
                LinkBuilder::new(client_id, link_tx.clone())
                    .build()
                    .map(|(tx, rx, _connack)| (tx, rx))
                    .map_err(|e| e.to_string())
            }),
        };
        let new_server: Arc<ServerFn> =
            Arc::new(move |settings| Server::new(settings, router_tx.clone(), V4));
        info!(
            max_connections = cfg.max_connections,
            backlog_bytes = cfg.backlog_bytes,
            "embedded MQTT broker router started"
        );
        Ok(EmbeddedBroker {
            cfg: cfg.clone(),
            tls,
            linker,
            new_server,
            listening: None,
        })
    }

    /// Binds the listener and returns its address once it accepts connections.
    pub fn listen(&mut self) -> Result<SocketAddr, BrokerError> {
        if let Some(l) = &self.listening {
            return Err(BrokerError::AlreadyListening(l.addr));
        }
        let listening = match self.tls.clone() {
            None => {
                let (addr, thread) = self.spawn_mqtt(self.cfg.listen)?;
                Listening {
                    addr,
                    threads: vec![thread],
                }
            }
            Some(tls) => {
                // The public address first, so that a taken port fails before anything starts.
                let listen = self.cfg.listen;
                let public = StdTcpListener::bind(listen).map_err(|e| BrokerError::Bind {
                    addr: listen,
                    reason: e.to_string(),
                })?;
                let addr = public.local_addr().map_err(|e| BrokerError::Bind {
                    addr: listen,
                    reason: e.to_string(),
                })?;
                let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
                let (inner, mqtt) = self.spawn_mqtt(loopback)?;
                let front = spawn_tls_front(
                    public,
                    TlsAcceptor::from(tls),
                    inner,
                    self.cfg.max_connections,
                )?;
                info!(%addr, %inner, "embedded MQTT broker: TLS listener up");
                Listening {
                    addr,
                    threads: vec![front, mqtt],
                }
            }
        };
        let addr = listening.addr;
        info!(
            %addr,
            tls = self.tls.is_some(),
            client_certificates = self.cfg.tls.as_ref().is_some_and(|t| t.ca.is_some()),
            authentication = self.cfg.credentials.is_some(),
            "embedded MQTT broker listening"
        );
        self.listening = Some(listening);
        Ok(addr)
    }

    /// The address agents connect to, once listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listening.as_ref().map(|l| l.addr)
    }

    /// A handle that opens in-process links (for [`crate::source`]).
    pub fn linker(&self) -> BrokerLinker {
        self.linker.clone()
    }

    /// Opens an in-process link; see [`BrokerLinker::link`].
    pub fn link(&self, client_id: &str) -> Result<(LinkTx, LinkRx), BrokerError> {
        self.linker.link(client_id)
    }

    /// Closes the listeners and every client connection, and waits for their threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(l) = self.listening.take() {
            let addr = l.addr;
            drop(l.threads);
            info!(%addr, "embedded MQTT broker stopped listening");
        }
    }

    /// Starts rumqttd's MQTT listener on `addr`, returning the bound address.
    fn spawn_mqtt(&self, addr: SocketAddr) -> Result<(SocketAddr, StoppableThread), BrokerError> {
        // Behind the TLS front this is the loopback listener; credentials apply there too.
        let mut settings = ServerSettings {
            name: format!("ward-mqtt-{addr}"),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections: ConnectionSettings {
                connection_timeout_ms: CONNECT_TIMEOUT_MS,
                max_payload_size: self.cfg.max_payload,
                max_inflight_count: READ_BATCH,
                auth: self.cfg.credentials.clone(),
                external_auth: None,
                dynamic_filters: false,
            },
        };
        if addr.port() != 0 {
            let thread = spawn_mqtt_server(&self.new_server, settings.clone())?;
            return Ok((addr, thread));
        }
        // rumqttd cannot report the port it bound, so pick a free one and hand it over; another
        // process may grab it in between, hence the retries.
        let mut last = None;
        for _ in 0..EPHEMERAL_ATTEMPTS {
            let picked = StdTcpListener::bind(addr)
                .and_then(|l| l.local_addr())
                .map_err(|e| BrokerError::Bind {
                    addr,
                    reason: e.to_string(),
                })?;
            settings.listen = picked;
            settings.name = format!("ward-mqtt-{picked}");
            match spawn_mqtt_server(&self.new_server, settings.clone()) {
                Ok(thread) => return Ok((picked, thread)),
                Err(e) => {
                    debug!(%picked, error = %e, "picked port was taken, trying another");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(BrokerError::Bind {
            addr,
            reason: "no free port found".into(),
        }))
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
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
    if cfg.max_connections < 2 {
        return Err(invalid(
            "max_connections",
            "must be at least 2 (the collector's own link plus one agent)",
        ));
    }
    if cfg.backlog_bytes < SEGMENTS * 1024 {
        return Err(invalid(
            "backlog_bytes",
            format!("must be at least {} bytes", SEGMENTS * 1024),
        ));
    }
    if let Some(creds) = &cfg.credentials {
        if let Some(user) = creds.keys().find(|u| u.is_empty() || u.len() > 65_535) {
            return Err(invalid(
                "credentials",
                format!("user name {user:?} must be 1 to 65535 bytes"),
            ));
        }
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

fn new_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs rumqttd's listener for `settings` on a thread of its own; returns once it is bound.
///
/// `Server::start` binds first thing and then waits for connections, so the first poll of its
/// future either fails with the bind error or leaves the listener bound: that first poll is our
/// readiness signal, and the only way to surface the error (rumqttd would just log it).
fn spawn_mqtt_server(
    new_server: &Arc<ServerFn>,
    settings: ServerSettings,
) -> Result<StoppableThread, BrokerError> {
    let addr = settings.listen;
    let mut server = new_server(settings);
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let join = thread::Builder::new()
        .name("ward-mqtt-listener".into())
        .spawn(move || {
            let rt = match new_runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let run = server.start(LinkType::Remote);
                tokio::pin!(run);
                let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
                match first {
                    Poll::Ready(Err(e)) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                    Poll::Ready(Ok(())) => {
                        let _ = ready_tx.send(Err("the listener stopped at once".into()));
                        return;
                    }
                    Poll::Pending => {
                        let _ = ready_tx.send(Ok(()));
                    }
                }
                tokio::select! {
                    r = run => match r {
                        Ok(()) => error!(%addr, "embedded MQTT listener stopped"),
                        Err(e) => error!(%addr, error = %e, "embedded MQTT listener failed"),
                    },
                    _ = stop_rx => debug!(%addr, "embedded MQTT listener stopping"),
                }
            });
        })
        .map_err(|e| BrokerError::Start {
            what: "the MQTT listener thread",
            reason: e.to_string(),
        })?;
    let thread = StoppableThread {
        stop: Some(stop_tx),
        join: Some(join),
    };
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(reason)) => Err(BrokerError::Bind { addr, reason }),
        Err(_) => Err(BrokerError::Bind {
            addr,
            reason: format!("the listener did not start within {START_TIMEOUT:?}"),
        }),
    }
}

/// Runs the TLS front on a thread of its own: accepts on `public`, handshakes, pipes to `inner`.
fn spawn_tls_front(
    public: StdTcpListener,
    acceptor: TlsAcceptor,
    inner: SocketAddr,
    max_connections: usize,
) -> Result<StoppableThread, BrokerError> {
    let addr = public.local_addr().map_err(|e| BrokerError::Start {
        what: "the TLS listener",
        reason: e.to_string(),
    })?;
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let join = thread::Builder::new()
        .name("ward-mqtt-tls".into())
        .spawn(move || {
            let rt = match new_runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match public
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(public))
                {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    () = tls_accept_loop(listener, acceptor, inner, max_connections) => {}
                    _ = stop_rx => debug!(%addr, "TLS listener stopping"),
                }
            });
            // Dropping the runtime here closes every proxied connection.
        })
        .map_err(|e| BrokerError::Start {
            what: "the TLS listener thread",
            reason: e.to_string(),
        })?;
    let thread = StoppableThread {
        stop: Some(stop_tx),
        join: Some(join),
    };
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(reason)) => Err(BrokerError::Bind { addr, reason }),
        Err(_) => Err(BrokerError::Bind {
            addr,
            reason: format!("the TLS listener did not start within {START_TIMEOUT:?}"),
        }),
    }
}

fn tls_accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    inner: SocketAddr,
    max_connections: usize,
) -> impl Future<Output = ()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    warn!(error = %e, "TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(%peer, max_connections, "TLS listener: connection limit reached, refusing");
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _slot = slot;
                proxy_tls(tcp, peer, acceptor, inner).await;
            });
        }
    }
}

async fn proxy_tls(tcp: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, inner: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let mut tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            return;
        }
    };
    let mut plain = match TcpStream::connect(inner).await {
        Ok(s) => s,
        Err(e) => {
            error!(%peer, %inner, error = %e, "TLS front: cannot reach the MQTT listener");
            return;
        }
    };
    let _ = plain.set_nodelay(true);
    debug!(%peer, "TLS connection established");
    match tokio::io::copy_bidirectional(&mut tls, &mut plain).await {
        Ok((up, down)) => debug!(%peer, up, down, "TLS connection closed"),
        Err(e) => debug!(%peer, error = %e, "TLS connection ended"),
    }
}
