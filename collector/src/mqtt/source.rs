//! Where ingest messages come from: one stream of [`Delivery`]s, from the embedded broker or an
//! external one.
//!
//! [`spawn`] subscribes to the given filters (normally [`INGEST_FILTERS`]) and feeds a bounded
//! `tokio::sync::mpsc` channel. A full channel holds the source back (backpressure); nothing is
//! ever buffered without bound. Every delivery carries an [`AckToken`]; the ingest loop hands
//! it to [`SourceHandle::ack`] once the message is committed to the database (or deliberately
//! rejected): acknowledging is what lets the broker forget the message.
//!
//! # External broker: at-least-once
//!
//! rumqttc with manual acknowledgements, a persistent session (`clean_session = false`, so the
//! broker queues QoS 1 messages while the collector is down) and QoS 1 subscriptions (shared,
//! `$share/<group>/<filter>`, when several collectors split the load). A PUBACK leaves only when
//! the collector acked the delivery, so a crash before the commit means the broker sends the
//! message again after the reconnect. Consequences:
//!
//! - **Duplicates** happen (redelivery after a crash or a reconnect): the ingest must be
//!   idempotent (the agents' per-message `seq`).
//! - **PUBACKs leave in the order the messages arrived** (MQTT 3.1.1 §4.6 requires it, and
//!   some brokers, rumqttd among them, drop a client that acknowledges out of order): an ack
//!   is held back until every earlier delivery was acked too. So *every* delivery must be
//!   acked, rejected ones included: one that never is stalls every later acknowledgement, and
//!   the broker stops sending once its in-flight window is full.
//! - **Acks do not survive a connection**: packet ids are per connection, so after a
//!   disconnect the tokens of the old connection are void ([`SourceStats::stale_acks`]) and
//!   the broker redelivers those messages (with the same ids) on the new one.
//! - **Throughput is bounded by the broker's in-flight window** for the client (Mosquitto:
//!   `max_inflight_messages`, default 20) divided by the time from delivery to ack. A
//!   collector that commits in batches needs a window at least as large as its batches; set
//!   `max_inflight_messages 1000` (or more) and a `max_queued_messages` that covers an outage.
//!
//! The event loop runs in a task of its own and keeps running (pings, acks, reconnects) while
//! the consumer is slow: deliveries wait in a small local queue, bounded by the broker's
//! in-flight window for QoS 1 and by [`LOCAL_QUEUE_MESSAGES`] / [`LOCAL_QUEUE_BYTES`]
//! otherwise; past those it stops reading from the socket (TCP backpressure) rather than
//! buffer more. Connection failures are retried with exponential backoff (0.5 s to 30 s, with
//! jitter); subscriptions are renewed whenever the broker did not keep the session.
//!
//! # A cluster of nodes
//!
//! [`ExternalSource::fallback_urls`] lists the other nodes of one broker cluster: whenever a
//! connection fails the source moves to the next node (at once after a lost connection, with the
//! backoff when nodes cannot be reached). Meant for a NATS JetStream cluster, whose MQTT
//! listeners keep the persistent session in replicated streams, so the session, its queued
//! messages and the unacked deliveries follow the collector to whichever node it reaches; acks
//! of the old connection are void as after any reconnect, and those messages come again.
//!
//! # Embedded broker: acked on commit
//!
//! The embedded source is the ingest channel of the [`crate::mqtt::broker`] endpoint: agents'
//! messages arrive as deliveries whose token writes the PUBACK on the agent's connection when
//! acked, so an agent is told "received" only after the commit, and a crash of the collector
//! loses nothing (the agent still has the message in its spool and sends it again after the
//! reconnect). A full channel stops the endpoint reading from the agents' sockets.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use ward_mqtt::client::{network_options, MAX_PACKET as MQTT_MAX_PACKET};
use ward_mqtt::poll::{next_poll, PollFuture};
use ward_mqtt::{Backoff, ClientConfig, ConfigError, Endpoint};

use crate::mqtt::broker::{BrokerError, BrokerLinker, EmbeddedAck};

/// Filter of the agents' observation messages (`ward.observation.v1`).
pub use ward_mqtt::topic::DEVICES_FILTER;
/// Filter of the agents' retained status messages (`ward.status.v1`).
pub use ward_mqtt::topic::STATUS_FILTER;
/// What the ingest subscribes to.
pub const INGEST_FILTERS: [&str; 2] = ward_mqtt::topic::AGENT_FILTERS;

/// Most deliveries held in the external source's local queue before it stops reading.
pub const LOCAL_QUEUE_MESSAGES: usize = 65_536;
/// Most payload bytes held in the external source's local queue before it stops reading.
pub const LOCAL_QUEUE_BYTES: usize = 64 << 20;
/// Default MQTT keep-alive towards an external broker.
pub const DEFAULT_KEEP_ALIVE: Duration = ward_mqtt::client::DEFAULT_KEEP_ALIVE;
/// Default largest incoming packet: agents send batches of up to about 1 MiB.
pub const DEFAULT_MAX_PACKET: usize = 4 << 20;

/// rumqttc's request channel: acks, subscriptions, the final disconnect.
const REQUEST_CHANNEL: usize = 4096;
/// How long a graceful shutdown waits for the last acks and the DISCONNECT to be written.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// One message for the ingest loop.
#[derive(Debug)]
pub struct Delivery {
    /// MQTT topic, e.g. `ward/v1/<site>/<agent-id>/devices`.
    pub topic: String,
    /// Message body as published.
    pub payload: Vec<u8>,
    /// Sent because it is the retained message of its topic (a new subscription replays
    /// them), not because it was just published.
    pub retained: bool,
    /// Hand to [`SourceHandle::ack`] once the message is committed (or rejected).
    pub ack: AckToken,
}

/// Proof of receipt of one [`Delivery`], to give back to [`SourceHandle::ack`]. Not `Clone`:
/// each delivery is acknowledged once.
#[must_use = "every delivery must be acked, or the acks of later ones are held back"]
pub struct AckToken(Token);

enum Token {
    /// Nothing to acknowledge (QoS 0, wills, synthetic deliveries).
    None,
    /// A QoS 1 message of an agent connected to the embedded broker: the PUBACK.
    Embedded(EmbeddedAck),
    /// A QoS 1 (or 2) message of connection `epoch`, `seq`-th delivery of the source.
    Broker { epoch: u64, seq: u64 },
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Token::None => f.write_str("AckToken(none)"),
            Token::Embedded(e) => write!(f, "AckToken({e:?})"),
            Token::Broker { epoch, seq } => write!(f, "AckToken(connection {epoch}, #{seq})"),
        }
    }
}

impl AckToken {
    /// A token that acknowledges nothing (for tests and synthetic deliveries).
    pub fn none() -> AckToken {
        AckToken(Token::None)
    }

    pub(crate) fn embedded(ack: EmbeddedAck) -> AckToken {
        AckToken(Token::Embedded(ack))
    }

    /// Whether acking this token tells a broker anything.
    pub fn is_noop(&self) -> bool {
        matches!(self.0, Token::None)
    }
}

/// Which broker to read from.
#[derive(Debug, Clone)]
// Built once at startup and moved into the source task: the size does not matter, and boxing
// would only make every caller write `Box::new`.
#[allow(clippy::large_enum_variant)]
pub enum SourceConfig {
    /// The collector's own broker, through an in-process link.
    Embedded(EmbeddedSource),
    /// Another MQTT broker, over TCP or TLS.
    External(ExternalSource),
}

/// An in-process link to the [`crate::mqtt::broker::EmbeddedBroker`].
#[derive(Debug, Clone)]
pub struct EmbeddedSource {
    /// From [`crate::mqtt::broker::EmbeddedBroker::linker`].
    pub broker: BrokerLinker,
    /// Prefix of the link's client id (no `+ # / $`). A random suffix is appended: MQTT lets a
    /// new connection with the same client id take over, so an agent that guessed the id
    /// could otherwise cut the ingest off.
    pub client_id: String,
}

/// An external MQTT 3.1.1 broker.
#[derive(Debug, Clone)]
pub struct ExternalSource {
    /// Broker URL (`mqtt://host[:port]`, default port 1883, or `mqtts://host[:port]`, 8883),
    /// client id, credentials, TLS files and keep-alive. The client id identifies the
    /// persistent session, so keep it stable across restarts and unique per collector (a
    /// duplicate makes the broker drop the other connection).
    pub client: ClientConfig,
    /// Subscribe through `$share/<group>/<filter>`, so that the collectors of one group split
    /// the messages between them.
    pub shared_group: Option<String>,
    /// Largest incoming packet, in bytes. Keep the broker's own limit (Mosquitto:
    /// `message_size_limit`) at or below it: a larger message makes the source drop the
    /// connection, and the broker redelivers it after every reconnect, blocking the session.
    pub max_packet_size: usize,
    /// Other nodes of the same broker cluster (same scheme rules as `client.url`), tried in
    /// turn after `client.url` whenever a connection fails or cannot be made. Only for brokers
    /// whose nodes share the persistent session (a NATS cluster's MQTT listeners keep sessions
    /// in replicated JetStream streams): the session must follow the collector to the next
    /// node, or the messages queued for it on the dead node wait until that node returns.
    pub fallback_urls: Vec<String>,
}

impl ExternalSource {
    /// Settings with defaults: no credentials, system CAs, no shared group, keep-alive 30 s,
    /// packets up to 4 MiB.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> ExternalSource {
        ExternalSource {
            client: ClientConfig::new(url, client_id),
            shared_group: None,
            max_packet_size: DEFAULT_MAX_PACKET,
            fallback_urls: Vec::new(),
        }
    }
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A setting (or a TLS file it names) is unusable.
    #[error("MQTT source: {0}")]
    Setting(#[from] ConfigError),
    /// A subscription filter is not a valid MQTT topic filter.
    #[error("MQTT source: invalid topic filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The embedded broker refused the link.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The embedded broker did not confirm the subscriptions.
    #[error("MQTT source: the embedded broker did not confirm the subscription to {filters:?}: {reason}")]
    Subscribe {
        /// The filters.
        filters: Vec<String>,
        /// What went wrong.
        reason: String,
    },
}

/// Connection state of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStatus {
    /// Connected to the broker.
    pub connected: bool,
    /// Connected and the subscriptions are confirmed.
    pub subscribed: bool,
    /// Successful connections so far (a reconnect increments it).
    pub connections: u64,
    /// The task has ended (shutdown, channel closed, or the embedded link died).
    pub stopped: bool,
}

/// Counters of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Messages received from the broker (duplicates included).
    pub received: u64,
    /// PUBACKs written to the broker connection.
    pub acks_sent: u64,
    /// Acks of a previous connection, discarded (the broker redelivers those messages).
    pub stale_acks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    acks_sent: AtomicU64,
    stale_acks: AtomicU64,
}

/// Running source. [`SourceHandle::shutdown`] stops it cleanly (the last acks are sent, then
/// DISCONNECT); dropping the handle instead aborts the task without a DISCONNECT, as a crash
/// would (an embedded link then stays registered, idle, until a link with the same client id
/// replaces it).
pub struct SourceHandle {
    acks: Option<Arc<Mutex<AckState>>>,
    counters: Arc<Counters>,
    status: watch::Receiver<SourceStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceHandle")
            .field("external", &self.acks.is_some())
            .field("status", &self.status())
            .field("stats", &self.stats())
            .finish()
    }
}

impl SourceHandle {
    /// Acknowledges a delivery: call once it is committed (or rejected). Never blocks. The
    /// PUBACK leaves once every earlier delivery of the same connection was acked too; a token
    /// from a previous connection is discarded (the broker redelivers that message).
    pub fn ack(&self, token: AckToken) {
        let (epoch, seq) = match token.0 {
            Token::None => return,
            Token::Embedded(ack) => {
                let counter = if ack.send() {
                    &self.counters.acks_sent
                } else {
                    &self.counters.stale_acks
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Token::Broker { epoch, seq } => (epoch, seq),
        };
        let Some(acks) = &self.acks else {
            return;
        };
        let mut state = lock(acks);
        if !state.ack(epoch, seq) {
            self.counters.stale_acks.fetch_add(1, Ordering::Relaxed);
            debug!(
                epoch,
                seq, "ack of a previous connection discarded; the broker redelivers"
            );
            return;
        }
        state.flush();
    }

    /// Current connection state.
    pub fn status(&self) -> SourceStatus {
        *self.status.borrow()
    }

    /// Waits until the source is connected and subscribed, up to `timeout`; returns whether it
    /// is.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        let wait = async move {
            rx.wait_for(|s| s.subscribed || s.stopped)
                .await
                .is_ok_and(|s| s.subscribed)
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Counters.
    pub fn stats(&self) -> SourceStats {
        SourceStats {
            received: self.counters.received.load(Ordering::Relaxed),
            acks_sent: self.counters.acks_sent.load(Ordering::Relaxed),
            stale_acks: self.counters.stale_acks.load(Ordering::Relaxed),
        }
    }

    /// Stops the source. External broker: deliveries not yet handed to the channel are dropped
    /// (unacked, so the broker keeps them), the acks given so far are sent, then the
    /// connection is closed with a DISCONNECT (the persistent session stays on the broker).
    /// Embedded broker: the in-process link is closed; what it had not handed over is lost.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                error!(error = %e, "MQTT source task failed");
            }
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts reading `filters` from the broker of `cfg` into `tx`.
///
/// Configuration errors (URL, TLS files, filters) fail here. An external broker that is
/// unreachable is not an error: the source keeps trying in the background (see
/// [`SourceHandle::status`], [`SourceHandle::wait_subscribed`]). The embedded source returns
/// once its subscriptions are in place, so nothing published afterwards is missed.
pub async fn spawn(
    cfg: SourceConfig,
    filters: &[String],
    tx: mpsc::Sender<Delivery>,
) -> Result<SourceHandle, SourceError> {
    if filters.is_empty() {
        return Err(ConfigError::invalid("filters", "at least one topic filter is needed").into());
    }
    for f in filters {
        validate_filter(f)?;
    }
    match cfg {
        SourceConfig::Embedded(e) => spawn_embedded(e, filters.to_vec(), tx).await,
        SourceConfig::External(e) => spawn_external(&e, filters, tx),
    }
}

fn validate_filter(filter: &str) -> Result<(), SourceError> {
    let bad = |reason: &str| SourceError::InvalidFilter {
        filter: filter.to_string(),
        reason: reason.to_string(),
    };
    if filter.is_empty() || filter.len() > 65_535 {
        return Err(bad("must be 1 to 65535 bytes"));
    }
    if filter.starts_with("$share/") {
        return Err(bad("give the group as shared_group, not in the filter"));
    }
    if filter.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    if !rumqttc::valid_filter(filter) {
        return Err(bad(
            "wildcards must fill a whole level and `#` must be the last level",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Embedded

async fn spawn_embedded(
    cfg: EmbeddedSource,
    filters: Vec<String>,
    tx: mpsc::Sender<Delivery>,
) -> Result<SourceHandle, SourceError> {
    // The endpoint only lets agents publish their own devices and status topics, which are
    // exactly the ingest's filters; anything else would never arrive.
    if let Some(f) = filters
        .iter()
        .find(|f| !INGEST_FILTERS.contains(&f.as_str()))
    {
        return Err(SourceError::InvalidFilter {
            filter: f.clone(),
            reason: "the embedded broker delivers only the agents' devices and status topics"
                .into(),
        });
    }
    let link = cfg.broker.attach_ingest(tx);
    info!(
        link = cfg.client_id,
        "ingest attached to the embedded broker"
    );
    let counters = Arc::new(Counters::default());
    let (status_tx, status) = watch::channel(SourceStatus {
        connected: true,
        subscribed: true,
        connections: 1,
        stopped: false,
    });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Holding the link keeps the ingest attached; dropping it (stop or abort) detaches.
        let _link = link;
        let _ = stop_rx.await;
        status_tx.send_modify(|s| {
            s.connected = false;
            s.subscribed = false;
            s.stopped = true;
        });
    });
    Ok(SourceHandle {
        acks: None,
        counters,
        status,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

// ---------------------------------------------------------------------------------------------
// External

/// Packet ids awaiting the collector's ack, in arrival order, for the current connection.
struct AckState {
    client: AsyncClient,
    /// Connection generation: incremented at every CONNACK.
    epoch: u64,
    connected: bool,
    /// Sequence number the next delivery gets.
    next_seq: u64,
    /// Sequence number of `outstanding[0]`.
    base: u64,
    outstanding: VecDeque<Outstanding>,
    /// Acked in order, not yet accepted by rumqttc's request channel (it was full).
    released: VecDeque<(u16, QoS)>,
}

struct Outstanding {
    pkid: u16,
    qos: QoS,
    acked: bool,
}

impl AckState {
    fn register(&mut self, pkid: u16, qos: QoS) -> AckToken {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outstanding.push_back(Outstanding {
            pkid,
            qos,
            acked: false,
        });
        AckToken(Token::Broker {
            epoch: self.epoch,
            seq,
        })
    }

    /// Marks `seq` acked and releases the acked prefix; false if the token is void.
    fn ack(&mut self, epoch: u64, seq: u64) -> bool {
        if !self.connected || epoch != self.epoch || seq < self.base {
            return false;
        }
        let Some(entry) = usize::try_from(seq - self.base)
            .ok()
            .and_then(|i| self.outstanding.get_mut(i))
        else {
            return false;
        };
        entry.acked = true;
        while self.outstanding.front().is_some_and(|o| o.acked) {
            if let Some(o) = self.outstanding.pop_front() {
                self.released.push_back((o.pkid, o.qos));
                self.base += 1;
            }
        }
        true
    }

    /// Hands released acks to rumqttc, as many as its channel takes.
    fn flush(&mut self) {
        while let Some(&(pkid, qos)) = self.released.front() {
            let mut p = Publish::new("", qos, Vec::new());
            p.pkid = pkid;
            if self.client.try_ack(&p).is_err() {
                break; // channel full: the event loop retries after its next event
            }
            self.released.pop_front();
        }
    }

    /// The connection is gone: every token issued so far is void.
    fn disconnected(&mut self) {
        self.connected = false;
        self.outstanding.clear();
        self.released.clear();
        self.base = self.next_seq;
    }

    fn connected(&mut self) {
        self.epoch += 1;
        self.connected = true;
        self.outstanding.clear();
        self.released.clear();
        self.base = self.next_seq;
    }
}

/// The options of `cfg.client.url` followed by those of each fallback URL.
fn node_options(cfg: &ExternalSource) -> Result<Vec<(String, Endpoint, MqttOptions)>, SourceError> {
    let mut nodes = vec![];
    for url in std::iter::once(&cfg.client.url).chain(&cfg.fallback_urls) {
        let mut node = cfg.clone();
        node.client.url = url.clone();
        let (ep, o) = mqtt_options(&node)?;
        nodes.push((url.clone(), ep, o));
    }
    Ok(nodes)
}

fn mqtt_options(cfg: &ExternalSource) -> Result<(Endpoint, MqttOptions), SourceError> {
    let (ep, mut o) = cfg.client.options()?;
    if let Some(g) = &cfg.shared_group {
        if g.is_empty() || g.contains(['/', '+', '#']) || g.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "shared_group",
                "must be a non-empty topic level without `/ + #` or control characters",
            )
            .into());
        }
    }
    if cfg.max_packet_size < 1024 || cfg.max_packet_size > MQTT_MAX_PACKET {
        return Err(ConfigError::invalid(
            "max_packet_size",
            "must be from 1024 to 268435455 bytes",
        )
        .into());
    }
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_request_channel_capacity(REQUEST_CHANNEL)
        // Incoming: the observation batches. Outgoing: only acks and subscriptions.
        .set_max_packet_size(cfg.max_packet_size, 1 << 20);
    Ok((ep, o))
}

fn spawn_external(
    cfg: &ExternalSource,
    filters: &[String],
    tx: mpsc::Sender<Delivery>,
) -> Result<SourceHandle, SourceError> {
    let mut nodes = node_options(cfg)?;
    let (_, ep, options) = nodes.remove(0);
    let fallbacks: Vec<(String, MqttOptions)> =
        nodes.into_iter().map(|(url, _, o)| (url, o)).collect();
    let filters: Vec<String> = match &cfg.shared_group {
        Some(g) => filters.iter().map(|f| format!("$share/{g}/{f}")).collect(),
        None => filters.to_vec(),
    };
    let options_copy = options.clone();
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
    // PUBACKs are tiny and the broker's window waits for them: no Nagle delay.
    eventloop.set_network_options(network_options());

    let acks = Arc::new(Mutex::new(AckState {
        client: client.clone(),
        epoch: 0,
        connected: false,
        next_seq: 0,
        base: 0,
        outstanding: VecDeque::new(),
        released: VecDeque::new(),
    }));
    let counters = Arc::new(Counters::default());
    let (status_tx, status) = watch::channel(SourceStatus::default());
    let (stop_tx, stop_rx) = oneshot::channel();
    let url = cfg.client.url.clone();
    info!(
        url,
        client_id = cfg.client.client_id,
        tls = ep.tls,
        ?filters,
        "connecting to the MQTT broker"
    );
    let poller = Poller {
        nodes: std::iter::once((url.clone(), options_copy))
            .chain(fallbacks)
            .collect(),
        node: 0,
        url,
        client,
        filters,
        acks: acks.clone(),
        counters: counters.clone(),
        status: status_tx,
        queue: VecDeque::new(),
        queued_bytes: 0,
        subscribed_once: false,
        backoff: Backoff::default(),
        max_packet_size: cfg.max_packet_size,
    };
    let task = tokio::spawn(poller.run(eventloop, stop_rx, tx));
    Ok(SourceHandle {
        acks: Some(acks),
        counters,
        status,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

struct Poller {
    /// Every node of the broker (URL, options), the configured one first.
    nodes: Vec<(String, MqttOptions)>,
    /// Index in `nodes` of the node in use.
    node: usize,
    url: String,
    client: AsyncClient,
    filters: Vec<String>,
    acks: Arc<Mutex<AckState>>,
    counters: Arc<Counters>,
    status: watch::Sender<SourceStatus>,
    queue: VecDeque<Delivery>,
    queued_bytes: usize,
    subscribed_once: bool,
    backoff: Backoff,
    max_packet_size: usize,
}

impl Poller {
    async fn run(
        mut self,
        eventloop: EventLoop,
        mut stop: oneshot::Receiver<()>,
        tx: mpsc::Sender<Delivery>,
    ) {
        let mut poll = next_poll(eventloop, None);
        let mut polls = 0u64;
        loop {
            let room =
                self.queue.len() < LOCAL_QUEUE_MESSAGES && self.queued_bytes < LOCAL_QUEUE_BYTES;
            tokio::select! {
                biased;
                _ = &mut stop => break,
                permit = tx.reserve(), if !self.queue.is_empty() => {
                    let Ok(permit) = permit else {
                        info!(url = self.url, "ingest channel closed; MQTT source stopping");
                        break;
                    };
                    if let Some(d) = self.queue.pop_front() {
                        self.queued_bytes -= d.payload.len();
                        permit.send(d);
                    }
                }
                (mut eventloop, event) = &mut poll, if room => {
                    polls += 1;
                    let delay = match event {
                        Ok(event) => {
                            self.on_event(event);
                            None
                        }
                        Err(e) => Some(self.on_error(&mut eventloop, &e)),
                    };
                    // Acks that did not fit in rumqttc's channel before.
                    lock(&self.acks).flush();
                    poll = next_poll(eventloop, delay);
                }
            }
        }
        debug!(url = self.url, polls, "MQTT source stopping");
        self.queue.clear();
        self.disconnect(poll).await;
        self.status.send_modify(|s| {
            s.connected = false;
            s.subscribed = false;
            s.stopped = true;
        });
    }

    /// Sends the acks given so far, then DISCONNECT, and waits (bounded) until written.
    async fn disconnect(&mut self, mut poll: PollFuture) {
        {
            let mut acks = lock(&self.acks);
            if !acks.connected {
                return;
            }
            acks.flush();
            // From here on, acks are void: the broker redelivers what was not acked.
            acks.disconnected();
        }
        if self.client.try_disconnect().is_err() {
            warn!(
                url = self.url,
                "cannot queue DISCONNECT; closing the connection"
            );
            return;
        }
        let done = async {
            loop {
                let (eventloop, event) = (&mut poll).await;
                match event {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                        self.counters.acks_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
                poll = next_poll(eventloop, None);
            }
        };
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, done).await {
            Ok(()) => info!(url = self.url, "disconnected from the MQTT broker"),
            Err(_) => warn!(
                url = self.url,
                "DISCONNECT not written within the shutdown timeout; closing the connection"
            ),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::Publish(p)) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                let ack = match p.qos {
                    QoS::AtMostOnce => AckToken::none(),
                    qos => lock(&self.acks).register(p.pkid, qos),
                };
                self.queued_bytes += p.payload.len();
                self.queue.push_back(Delivery {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                    ack,
                });
            }
            Event::Outgoing(Outgoing::PubAck(_)) => {
                self.counters.acks_sent.fetch_add(1, Ordering::Relaxed);
            }
            Event::Incoming(Incoming::ConnAck(connack)) => self.on_connack(connack.session_present),
            Event::Incoming(Incoming::SubAck(ack)) => {
                let mut ok = true;
                for (code, filter) in ack.return_codes.iter().zip(&self.filters) {
                    match code {
                        SubscribeReasonCode::Failure => {
                            ok = false;
                            error!(
                                url = self.url,
                                filter, "the broker refused the subscription (ACL?)"
                            );
                        }
                        SubscribeReasonCode::Success(QoS::AtMostOnce) => warn!(
                            url = self.url,
                            filter,
                            "the broker granted QoS 0 only: its messages are not redelivered \
                             after a crash"
                        ),
                        SubscribeReasonCode::Success(_) => {}
                    }
                }
                if ok {
                    info!(url = self.url, filters = ?self.filters, "subscribed");
                }
                self.status.send_modify(|s| s.subscribed = ok);
            }
            _ => {}
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        self.backoff.reset();
        lock(&self.acks).connected();
        // A kept session keeps its subscriptions; renewing them anyway would make the broker
        // replay every retained status. At our first connection the filters may have changed.
        let subscribe = !self.subscribed_once || !session_present;
        info!(
            url = self.url,
            session_present, subscribe, "connected to the MQTT broker"
        );
        if subscribe {
            let filters = self
                .filters
                .iter()
                .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
            if let Err(e) = self.client.try_subscribe_many(filters) {
                // Only if the request channel is full of acks, which a fresh connection's is not.
                error!(url = self.url, error = %e, "cannot queue the subscription");
            }
            self.subscribed_once = true;
        }
        self.status.send_modify(|s| {
            s.connected = true;
            s.subscribed = !subscribe;
            s.connections += 1;
        });
    }

    /// Handles a connection failure; returns the delay before the next attempt.
    fn on_error(&mut self, eventloop: &mut EventLoop, e: &ConnectionError) -> Duration {
        let was_connected = {
            let mut acks = lock(&self.acks);
            let was_connected = acks.connected;
            acks.disconnected();
            // rumqttc already dropped the acks queued for the dead connection; drop those given
            // since (now that no more can come), so none reaches the next connection with an id
            // the broker may have reused.
            eventloop.clean();
            if was_connected {
                self.status.send_modify(|s| {
                    s.connected = false;
                    s.subscribed = false;
                });
            }
            was_connected
        };
        // With jitter, so that collectors restarted together do not reconnect in lockstep.
        let mut delay = self.backoff.next_delay();
        let failed_url = self.url.clone();
        if self.nodes.len() > 1 {
            // The next node of the cluster: it holds the same session (queued messages and
            // unacked deliveries), so ingest goes on while the failed node is down. A lost
            // connection moves on at once; nodes that cannot be reached back off as usual.
            self.node = (self.node + 1) % self.nodes.len();
            let (url, options) = &self.nodes[self.node];
            eventloop.mqtt_options = options.clone();
            self.url = url.clone();
            if was_connected {
                delay = Duration::ZERO;
            }
            info!(from = failed_url, to = self.url, retry_in = ?delay, "moving to the next broker node");
        }
        match e {
            ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                rumqttc::Error::PayloadSizeLimitExceeded(size),
            )) => error!(
                url = failed_url,
                size,
                max_packet_size = self.max_packet_size,
                retry_in = ?delay,
                "the broker sent a message larger than max_packet_size; it will redeliver it \
                 after the reconnect and block this session until max_packet_size is raised \
                 or the broker's message_size_limit keeps such messages out"
            ),
            ConnectionError::ConnectionRefused(code) => error!(
                url = failed_url,
                ?code,
                retry_in = ?delay,
                "the MQTT broker refused the connection (credentials? client id?)"
            ),
            e if was_connected => {
                warn!(url = failed_url, error = %e, retry_in = ?delay, "MQTT connection lost")
            }
            e => warn!(
                url = failed_url,
                error = %e,
                retry_in = ?delay,
                "cannot connect to the MQTT broker"
            ),
        }
        delay
    }
}
