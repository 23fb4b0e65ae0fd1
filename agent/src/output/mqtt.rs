//! MQTT output: durable, at-least-once delivery of observation messages through a spool.
//!
//! # Delivery
//!
//! [`MqttOutput::publish_devices`] writes the message to the [`Spool`] (fsynced) before it
//! returns; a message leaves the spool only when the broker's PUBACK for it arrives. On every
//! (re)connection the whole spool is sent again, oldest first, so the collector may see
//! duplicates but never a gap (except messages the full spool evicted, which are counted).
//! At most `inflight` device messages, and at most `inflight_bytes` of them (always at least one
//! message), are unacknowledged at a time; the backlog stays on disk, not in rumqttc's memory.
//! The byte bound matters after an outage: a backlog of full snapshots (hundreds of KiB each)
//! sent 32 at a time held megabytes in memory at once, and the allocator kept that high-water
//! mark resident long after the PUBACKs (docs/BENCHMARKS.md, soak).
//!
//! # PUBACK → spool id
//!
//! One task (the *poller*) drives rumqttc's [`EventLoop`]; another (the *controller*) owns the
//! protocol state. The controller is the only one submitting requests, in order, and remembers
//! each request's tag (`Device(spool id)`, `Status`, `Offline`) in a FIFO. rumqttc processes
//! requests in submission order and reports each one, once it has assigned its packet id, as
//! `Event::Outgoing(Outgoing::Publish(pkid))` (a packet-id collision delays that event but keeps
//! the order). So the controller pops the FIFO head on each such event and records
//! `pkid → tag`; a PUBACK then names the tag, and for `Device(id)` the spool drops `id`.
//!
//! Across a connection loss: the poller forwards the events rumqttc had still queued for the
//! dead connection, then the error, and waits until the controller has stopped submitting and
//! forgotten every pkid mapping; then it clears whatever rumqttc still holds
//! (`EventLoop::clean`, `pending`, `state.events`; the session is clean anyway), sleeps the
//! backoff and reconnects. After the CONNACK the controller restarts from the oldest spooled
//! message. No request from an old connection can therefore be confused with a new one.
//!
//! # Status and last will
//!
//! `ward/v1/<site>/<agent-id>/status` carries retained `ward.status.v1` messages. The last will
//! (registered at every connect) is a retained offline status with `reason: connection_lost`,
//! derived from the latest status the agent published. After every connect the latest status
//! (or, before the first, a minimal online status) is published again, replacing a will the
//! broker may have published. A clean [`MqttOutput::shutdown`] publishes the offline status
//! with `reason: shutdown` and disconnects, so the broker discards the will.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Outgoing, Packet, QoS,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use ward_mqtt::client::{check_text, MAX_PACKET as MQTT_MAX_PACKET};
use ward_mqtt::topic::{check_level, devices_topic, status_topic};
use ward_mqtt::{Backoff, ClientConfig, ConfigError};

use super::spool::Spool;
use super::{rfc3339_millis, AgentState, MqttEndpoint, OutputError, OutputStats, StatusMessage};

/// Smallest accepted `spool_max_bytes`.
pub const MIN_SPOOL_BYTES: u64 = 4096;
/// Largest accepted `inflight`.
pub const MAX_INFLIGHT: u16 = 1024;
/// Default `inflight_bytes`.
pub const DEFAULT_INFLIGHT_BYTES: u64 = 1 << 20;
/// A connection that lasted this long resets the backoff ([`ward_mqtt::backoff`]) when it
/// drops.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// MQTT output settings.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Broker URL (`mqtt://host[:port]` or `mqtts://host[:port]`), client id (unique per
    /// broker: a duplicate makes the broker drop the other), credentials, TLS files and
    /// keep-alive.
    pub client: ClientConfig,
    /// Site (a topic level: no `/ + #` or control characters).
    pub site: String,
    /// Agent id (a topic level: no `/ + #` or control characters).
    pub agent_id: String,
    /// Agent instance (as in observations); appears in status messages and the last will.
    pub instance: String,
    /// Spool directory (one agent per directory).
    pub spool_dir: PathBuf,
    /// Spool bound in bytes; the oldest messages are evicted beyond it.
    pub spool_max_bytes: u64,
    /// Most device messages awaiting PUBACK at once (1 to 1024).
    pub inflight: u16,
    /// Most bytes (spooled size) of device messages awaiting PUBACK at once; one message is
    /// always allowed, however large.
    pub inflight_bytes: u64,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> OutputError {
    OutputError::Setting(ConfigError::invalid(setting, reason))
}

/// Checks that `value` (the setting `setting`) can be one topic level.
fn topic_level(setting: &'static str, value: &str) -> Result<(), OutputError> {
    check_level(value).map_err(|e| match e {
        ward_mqtt::topic::LevelError::Forbidden(_) => invalid(setting, format!("{value:?} {e}")),
        e => invalid(setting, e.to_string()),
    })
}

impl MqttConfig {
    /// Settings with defaults: client id `ward-<agent-id>`, no credentials, system CAs,
    /// keep-alive 30 s, spool bound 256 MiB, 32 in flight.
    pub fn new(
        url: impl Into<String>,
        site: impl Into<String>,
        agent_id: impl Into<String>,
        instance: impl Into<String>,
        spool_dir: impl Into<PathBuf>,
    ) -> MqttConfig {
        let agent_id = agent_id.into();
        MqttConfig {
            client: ClientConfig::new(url, format!("ward-{agent_id}")),
            site: site.into(),
            agent_id,
            instance: instance.into(),
            spool_dir: spool_dir.into(),
            spool_max_bytes: 256 << 20,
            inflight: 32,
            inflight_bytes: DEFAULT_INFLIGHT_BYTES,
        }
    }

    /// The devices topic.
    pub fn devices_topic(&self) -> String {
        devices_topic(&self.site, &self.agent_id)
    }

    /// The status topic.
    pub fn status_topic(&self) -> String {
        status_topic(&self.site, &self.agent_id)
    }

    /// Checks every setting (reading the TLS files) without connecting. Errors name the
    /// setting.
    pub fn validate(&self) -> Result<MqttEndpoint, OutputError> {
        self.options().map(|(ep, _)| ep)
    }

    fn options(&self) -> Result<(MqttEndpoint, MqttOptions), OutputError> {
        let (ep, mut o) = self.client.options()?;
        topic_level("site", &self.site)?;
        topic_level("agent_id", &self.agent_id)?;
        check_text("instance", &self.instance)?;
        if self.spool_dir.as_os_str().is_empty() {
            return Err(invalid("spool_dir", "must not be empty"));
        }
        if self.spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(invalid(
                "spool_max_bytes",
                format!("must be at least {MIN_SPOOL_BYTES} bytes"),
            ));
        }
        if self.inflight == 0 || self.inflight > MAX_INFLIGHT {
            return Err(invalid(
                "inflight",
                format!("must be from 1 to {MAX_INFLIGHT}"),
            ));
        }
        o.set_clean_session(true)
            // Room for the device window, one status and the offline status.
            .set_inflight(self.inflight + 2)
            .set_request_channel_capacity(usize::from(self.inflight) + 8)
            .set_max_packet_size(1 << 20, MQTT_MAX_PACKET + 5);
        Ok((ep, o))
    }
}

/// Who we are, for status messages.
#[derive(Debug)]
struct Identity {
    site: String,
    agent_id: String,
    instance: String,
    started_at: SystemTime,
}

impl Identity {
    fn status(&self, state: AgentState) -> StatusMessage {
        crate::output::new_status(
            state,
            &self.site,
            &self.agent_id,
            &self.instance,
            self.started_at,
        )
    }
}

/// The offline status: the latest status published (if it is a JSON object) with `state`,
/// `time` and `reason` replaced, else a minimal one. `stats: None` (the last will) removes the
/// stats; `Some` updates their spool fields.
fn offline_payload(
    latest: Option<&[u8]>,
    identity: &Identity,
    reason: &str,
    stats: Option<&OutputStats>,
) -> Vec<u8> {
    let now = rfc3339_millis(SystemTime::now());
    if let Some(Ok(Value::Object(mut m))) = latest.map(serde_json::from_slice::<Value>) {
        m.insert("state".into(), "offline".into());
        m.insert("time".into(), now.into());
        m.insert("reason".into(), reason.into());
        match stats {
            None => {
                m.remove("stats");
            }
            Some(s) => {
                if let Some(Value::Object(st)) = m.get_mut("stats") {
                    st.insert("spool_depth".into(), s.spool_depth.into());
                    st.insert("spool_bytes".into(), s.spool_bytes.into());
                    st.insert("spool_evicted".into(), s.evicted_messages.into());
                }
            }
        }
        return serde_json::to_vec(&m).unwrap_or_default();
    }
    let mut s = identity.status(AgentState::Offline);
    s.reason = Some(reason.to_string());
    serde_json::to_vec(&s).unwrap_or_default()
}

#[derive(Debug, Default)]
struct StatusSlot {
    /// The latest status the agent published.
    latest: Option<Vec<u8>>,
    /// It (or the default online status) must be (re)sent.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    spool_depth: AtomicU64,
    spool_bytes: AtomicU64,
    evicted_messages: AtomicU64,
    evicted_bytes: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    connected: AtomicBool,
}

#[derive(Debug)]
struct Shared {
    spool: Mutex<Spool>,
    devices_topic: String,
    status_topic: String,
    identity: Identity,
    status: Mutex<StatusSlot>,
    wake: Notify,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> MutexGuard<'_, StatusSlot> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mirror(&self, spool: &Spool) {
        let s = spool.stats();
        let c = &self.counters;
        c.spool_depth.store(s.depth, Ordering::Relaxed);
        c.spool_bytes.store(s.bytes, Ordering::Relaxed);
        c.evicted_messages
            .store(s.evicted_messages, Ordering::Relaxed);
        c.evicted_bytes.store(s.evicted_bytes, Ordering::Relaxed);
    }

    fn stats(&self) -> OutputStats {
        let c = &self.counters;
        OutputStats {
            published: c.published.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            spool_depth: c.spool_depth.load(Ordering::Relaxed),
            spool_bytes: c.spool_bytes.load(Ordering::Relaxed),
            evicted_messages: c.evicted_messages.load(Ordering::Relaxed),
            evicted_bytes: c.evicted_bytes.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
            connected: c.connected.load(Ordering::Relaxed),
        }
    }

    fn will(&self) -> LastWill {
        let latest = self.status().latest.clone();
        LastWill::new(
            self.status_topic.clone(),
            offline_payload(latest.as_deref(), &self.identity, "connection_lost", None),
            QoS::AtLeastOnce,
            true,
        )
    }
}

/// The MQTT output. Dropping it without [`shutdown`](MqttOutput::shutdown) stops its tasks at
/// once (like a crash: the broker publishes the last will; the spool keeps what was not
/// acknowledged).
pub struct MqttOutput {
    shared: Arc<Shared>,
    endpoint: MqttEndpoint,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    controller: JoinHandle<()>,
    poller: JoinHandle<()>,
}

impl std::fmt::Debug for MqttOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttOutput")
            .field("broker", &self.endpoint.to_string())
            .field("devices_topic", &self.shared.devices_topic)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Drop for MqttOutput {
    fn drop(&mut self) {
        self.controller.abort();
        self.poller.abort();
    }
}

impl MqttOutput {
    /// Validates `cfg`, opens the spool (recovering what a previous run left) and spawns the
    /// connection tasks on the current Tokio runtime. Connecting happens in the background:
    /// an unreachable broker is not an error here (messages spool until it is reachable).
    pub fn start(cfg: MqttConfig) -> Result<MqttOutput, OutputError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OutputError::NoRuntime)?;
        let (endpoint, mut options) = cfg.options()?;
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)?;
        let identity = Identity {
            site: cfg.site.clone(),
            agent_id: cfg.agent_id.clone(),
            instance: cfg.instance.clone(),
            started_at: SystemTime::now(),
        };
        let shared = Arc::new(Shared {
            devices_topic: cfg.devices_topic(),
            status_topic: cfg.status_topic(),
            identity,
            status: Mutex::new(StatusSlot {
                latest: None,
                dirty: true,
            }),
            wake: Notify::new(),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            spool: Mutex::new(spool),
        });
        shared.mirror(&shared.spool());
        options.set_last_will(shared.will());
        let (client, eventloop) = AsyncClient::new(options, usize::from(cfg.inflight) + 8);
        let (loop_tx, loop_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();

        info!(
            broker = %endpoint,
            client_id = %cfg.client.client_id,
            devices_topic = %shared.devices_topic,
            spool_dir = %cfg.spool_dir.display(),
            spool_depth = shared.counters.spool_depth.load(Ordering::Relaxed),
            "MQTT output starting"
        );
        let poller = runtime.spawn(poll_loop(eventloop, loop_tx, shared.clone()));
        let controller = Controller {
            shared: shared.clone(),
            client,
            events: loop_rx,
            cmds: cmd_rx,
            window: usize::from(cfg.inflight),
            window_bytes: cfg.inflight_bytes,
            bytes_out: 0,
            broker: endpoint.to_string(),
            connected: false,
            ever_connected: false,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            devices_out: 0,
            status_out: false,
            cursor: None,
            retry_at: None,
            phase: Phase::Running,
            reply: None,
            last_failure: None,
        };
        let controller = runtime.spawn(controller.run());
        Ok(MqttOutput {
            shared,
            endpoint,
            cmd_tx,
            controller,
            poller,
        })
    }

    /// Stores an observation message durably in the spool (a blocking fsync), then queues it
    /// for sending; returns its spool id. It leaves the spool when the broker acknowledges it.
    pub fn publish_devices(&self, payload: Vec<u8>) -> Result<u64, OutputError> {
        let topic = &self.shared.devices_topic;
        let size = 4 + topic.len() + payload.len();
        if size > MQTT_MAX_PACKET {
            return Err(OutputError::TooLarge {
                size: size as u64,
                max: MQTT_MAX_PACKET as u64,
            });
        }
        let id = {
            let mut spool = self.shared.spool();
            let id = spool.push(topic, &payload)?;
            self.shared.mirror(&spool);
            id
        };
        self.shared
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Publishes a status message, retained, QoS 1. Latest value only: not spooled; a newer
    /// status replaces one not yet sent; it is sent again after every reconnection.
    pub fn publish_status(&self, payload: Vec<u8>) -> Result<(), OutputError> {
        {
            let mut slot = self.shared.status();
            slot.latest = Some(payload);
            slot.dirty = true;
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Counters (atomics; cheap).
    pub fn stats(&self) -> OutputStats {
        self.shared.stats()
    }

    /// The last connection error, if any (also logged).
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The broker.
    pub fn endpoint(&self) -> &MqttEndpoint {
        &self.endpoint
    }

    /// The devices topic.
    pub fn devices_topic(&self) -> &str {
        &self.shared.devices_topic
    }

    /// The status topic.
    pub fn status_topic(&self) -> &str {
        &self.shared.status_topic
    }

    /// Stops: waits up to about `timeout` for the spool to drain (every PUBACK), publishes the
    /// retained offline status (`reason: shutdown`), disconnects cleanly. Whatever is not
    /// acknowledged stays in the spool for the next start. A fifth of `timeout` (at most 2 s)
    /// is reserved for the offline status and the disconnect.
    pub async fn shutdown(self, timeout: Duration) -> OutputStats {
        let (reply, done) = oneshot::channel();
        if self.cmd_tx.send(Cmd::Shutdown { timeout, reply }).is_ok() {
            let _ = tokio::time::timeout(timeout + Duration::from_secs(1), done).await;
        }
        let stats = self.stats();
        info!(
            broker = %self.endpoint,
            published = stats.published,
            acked = stats.acked,
            spool_depth = stats.spool_depth,
            "MQTT output stopped"
        );
        stats
    }
}

#[derive(Debug)]
enum LoopMsg {
    Event(Event),
    /// The connection failed or dropped; the poller waits for `resume` before reconnecting.
    Down {
        error: ConnectionError,
        resume: oneshot::Sender<()>,
    },
}

#[derive(Debug)]
enum Cmd {
    Shutdown {
        timeout: Duration,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// Spool id and spooled size.
    Device(u64, u64),
    Status,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Shutting down: sending what is spooled until empty or `until`.
    Draining {
        until: Instant,
        end: Instant,
    },
    /// The offline status is submitted; waiting for its PUBACK.
    Offline {
        end: Instant,
    },
    /// DISCONNECT requested.
    Disconnecting {
        end: Instant,
    },
    Done,
}

/// Drives rumqttc's event loop; forwards every event to the controller.
async fn poll_loop(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<LoopMsg>,
    shared: Arc<Shared>,
) {
    let mut backoff = Backoff::default();
    let mut connected_at: Option<Instant> = None;
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                    connected_at = Some(Instant::now());
                }
                if tx.send(LoopMsg::Event(event)).is_err() {
                    return;
                }
            }
            Err(error) => {
                // Events rumqttc queued before failing (PUBACKs read in the same batch, the
                // Outgoing::Publish of a write that then failed) still belong to the dead
                // connection: deliver them before the Down, never after the next CONNACK.
                while let Some(event) = eventloop.state.events.pop_front() {
                    if tx.send(LoopMsg::Event(event)).is_err() {
                        return;
                    }
                }
                if connected_at
                    .take()
                    .is_some_and(|t| t.elapsed() >= STABLE_CONNECTION)
                {
                    backoff.reset();
                }
                let (resume, resumed) = oneshot::channel();
                if tx.send(LoopMsg::Down { error, resume }).is_err() {
                    return;
                }
                // The controller has stopped submitting and forgotten every packet id: drop
                // whatever rumqttc still holds for the dead connection (the spool resends it).
                if resumed.await.is_err() {
                    return;
                }
                eventloop.clean();
                eventloop.pending.clear();
                eventloop.state.events.clear();
                tokio::time::sleep(backoff.next_delay()).await;
                eventloop.mqtt_options.set_last_will(shared.will());
            }
        }
    }
}

fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => {
                    "bad user name or password (check username/password)"
                }
                ConnectReturnCode::NotAuthorized => {
                    "not authorized (check username/password or the client certificate)"
                }
                ConnectReturnCode::BadClientId => "client id rejected (check client_id)",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::RefusedProtocolVersion => {
                    "MQTT 3.1.1 not supported by the broker"
                }
                ConnectReturnCode::Success => "unexpected return code",
            };
            format!("broker refused the connection: {why}")
        }
        ConnectionError::NetworkTimeout => "timed out connecting".to_string(),
        other => other.to_string(),
    }
}

fn is_auth_refusal(error: &ConnectionError) -> bool {
    matches!(
        error,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
        )
    )
}

/// A topic rumqttc will accept for PUBLISH.
fn valid_publish_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

struct Controller {
    shared: Arc<Shared>,
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<LoopMsg>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    /// Most device messages in flight.
    window: usize,
    /// Most bytes (spooled size) of device messages in flight, beyond the first message.
    window_bytes: u64,
    /// Spooled size of the device messages in `queued` + `inflight`.
    bytes_out: u64,
    broker: String,
    connected: bool,
    ever_connected: bool,
    /// Submitted to rumqttc, packet id not yet known (FIFO).
    queued: VecDeque<Tag>,
    /// Packet id → what it carries, until its PUBACK.
    inflight: HashMap<u16, Tag>,
    /// Device messages in `queued` + `inflight`.
    devices_out: usize,
    /// A status message is in `queued` or `inflight`.
    status_out: bool,
    /// Last spool id submitted on this connection.
    cursor: Option<u64>,
    /// Retry reading the spool after an I/O error.
    retry_at: Option<Instant>,
    phase: Phase,
    reply: Option<oneshot::Sender<()>>,
    /// The last connection failure logged (repeats are logged at debug level).
    last_failure: Option<String>,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Controller {
    async fn run(mut self) {
        loop {
            self.pump();
            self.advance();
            if self.phase == Phase::Done {
                break;
            }
            let deadline = match self.phase {
                Phase::Running | Phase::Done => None,
                Phase::Draining { until, .. } => Some(until),
                Phase::Offline { end } | Phase::Disconnecting { end } => Some(end),
            };
            let deadline = match (deadline, self.retry_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                msg = self.events.recv() => match msg {
                    Some(msg) => self.on_loop_msg(msg),
                    None => break,
                },
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Shutdown { timeout, reply }) => self.begin_shutdown(timeout, reply),
                    None => break,
                },
                () = self.shared.wake.notified() => {}
                () = sleep_until(deadline) => {
                    if self.retry_at.is_some_and(|t| t <= Instant::now()) {
                        self.retry_at = None;
                    }
                }
            }
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(());
        }
    }

    /// Submits what the window allows: the status first, then spooled messages in id order.
    fn pump(&mut self) {
        if !self.connected || !matches!(self.phase, Phase::Running | Phase::Draining { .. }) {
            return;
        }
        if !self.status_out {
            let payload = {
                let mut slot = self.shared.status();
                if slot.dirty {
                    slot.dirty = false;
                    Some(slot.latest.clone().unwrap_or_else(|| {
                        serde_json::to_vec(&self.shared.identity.status(AgentState::Online))
                            .unwrap_or_default()
                    }))
                } else {
                    None
                }
            };
            if let Some(payload) = payload {
                let topic = self.shared.status_topic.clone();
                if self
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, true, payload)
                    .is_ok()
                {
                    self.queued.push_back(Tag::Status);
                    self.status_out = true;
                } else {
                    self.shared.status().dirty = true;
                }
            }
        }
        if self.retry_at.is_some() {
            return;
        }
        while self.devices_out < self.window {
            let next = {
                let mut spool = self.shared.spool();
                let mut found = None;
                while let Some(id) = spool.next_after(self.cursor) {
                    // The byte window is checked before the message is read into memory.
                    let size = spool.size(id).unwrap_or(0);
                    if self.devices_out > 0
                        && self.bytes_out.saturating_add(size) > self.window_bytes
                    {
                        break;
                    }
                    match spool.read(id) {
                        Ok(Some(m)) => {
                            found = Some((m, size));
                            break;
                        }
                        Ok(None) => self.cursor = Some(id),
                        Err(e @ super::SpoolError::Corrupt { .. }) => {
                            error!(id, error = %e, "spool: skipping a corrupt message");
                            self.cursor = Some(id);
                        }
                        Err(e) => {
                            warn!(id, error = %e, "spool: cannot read a message; retrying in 1 s");
                            self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                            break;
                        }
                    }
                }
                self.shared.mirror(&spool);
                found
            };
            let Some((m, size)) = next else { break };
            if !valid_publish_topic(&m.topic) {
                error!(id = m.id, topic = %m.topic, "spool: dropping a message with an invalid topic");
                let mut spool = self.shared.spool();
                let _ = spool.ack(m.id);
                self.shared.mirror(&spool);
                self.cursor = Some(m.id);
                continue;
            }
            match self
                .client
                .try_publish(m.topic, QoS::AtLeastOnce, false, m.payload)
            {
                Ok(()) => {
                    self.cursor = Some(m.id);
                    self.queued.push_back(Tag::Device(m.id, size));
                    self.devices_out += 1;
                    self.bytes_out += size;
                    self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // The request channel is sized for the window; try again on the next event.
                    debug!(error = %e, "MQTT request channel full");
                    break;
                }
            }
        }
    }

    /// Moves the shutdown along.
    fn advance(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Running | Phase::Done => {}
            Phase::Draining { until, end } => {
                let depth = self.shared.spool().depth();
                if depth == 0 || now >= until {
                    if depth > 0 {
                        warn!(
                            spool_depth = depth,
                            connected = self.connected,
                            "shutdown: spool not drained in time; the rest stays spooled for the next start"
                        );
                    }
                    if self.connected {
                        self.submit_offline(end);
                    } else {
                        self.phase = Phase::Done;
                    }
                }
            }
            Phase::Offline { end } => {
                if now >= end {
                    warn!("shutdown: no acknowledgement of the offline status in time");
                    self.disconnect(end);
                }
            }
            Phase::Disconnecting { end } => {
                if now >= end {
                    self.phase = Phase::Done;
                }
            }
        }
    }

    fn begin_shutdown(&mut self, timeout: Duration, reply: oneshot::Sender<()>) {
        let now = Instant::now();
        let reserve = (timeout / 5).min(Duration::from_secs(2));
        self.phase = Phase::Draining {
            until: now + (timeout - reserve),
            end: now + timeout,
        };
        self.reply = Some(reply);
        info!(
            broker = %self.broker,
            timeout_ms = timeout.as_millis() as u64,
            spool_depth = self.shared.spool().depth(),
            connected = self.connected,
            "MQTT output shutting down: draining the spool"
        );
    }

    fn submit_offline(&mut self, end: Instant) {
        let latest = self.shared.status().latest.clone();
        let stats = self.shared.stats();
        let payload = offline_payload(
            latest.as_deref(),
            &self.shared.identity,
            "shutdown",
            Some(&stats),
        );
        let topic = self.shared.status_topic.clone();
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => {
                self.queued.push_back(Tag::Offline);
                self.phase = Phase::Offline { end };
            }
            Err(_) => self.disconnect(end),
        }
    }

    fn disconnect(&mut self, end: Instant) {
        if self.client.try_disconnect().is_ok() {
            self.phase = Phase::Disconnecting { end };
        } else {
            self.phase = Phase::Done;
        }
    }

    /// Forgets everything about the current connection.
    fn reset_connection_state(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.devices_out = 0;
        self.bytes_out = 0;
        self.status_out = false;
        self.cursor = None;
        self.shared.status().dirty = true;
    }

    fn on_loop_msg(&mut self, msg: LoopMsg) {
        match msg {
            LoopMsg::Event(event) => self.on_event(event),
            LoopMsg::Down { error, resume } => {
                let was_connected = self.connected;
                self.connected = false;
                self.shared
                    .counters
                    .connected
                    .store(false, Ordering::Relaxed);
                self.reset_connection_state();
                let what = describe(&error);
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(what.clone());
                let spool_depth = self.shared.spool().depth();
                if matches!(
                    self.phase,
                    Phase::Offline { .. } | Phase::Disconnecting { .. }
                ) {
                    debug!(broker = %self.broker, error = %what, "connection closed while stopping");
                    self.phase = Phase::Done;
                    return;
                }
                if was_connected {
                    warn!(broker = %self.broker, error = %what, spool_depth,
                        "disconnected from MQTT broker; spooling and reconnecting");
                    self.last_failure = None;
                } else {
                    self.shared
                        .counters
                        .connect_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if self.last_failure.as_deref() != Some(what.as_str()) {
                        if is_auth_refusal(&error) {
                            error!(broker = %self.broker, error = %what, spool_depth,
                                "cannot connect to MQTT broker; retrying with backoff");
                        } else {
                            warn!(broker = %self.broker, error = %what, spool_depth,
                                "cannot connect to MQTT broker; retrying with backoff");
                        }
                        self.last_failure = Some(what);
                    } else {
                        debug!(broker = %self.broker, error = %what, "connection attempt failed again");
                    }
                }
                let _ = resume.send(());
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.reset_connection_state();
                self.connected = true;
                self.shared
                    .counters
                    .connected
                    .store(true, Ordering::Relaxed);
                if self.ever_connected {
                    self.shared
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.ever_connected = true;
                self.last_failure = None;
                info!(
                    broker = %self.broker,
                    spool_depth = self.shared.spool().depth(),
                    reconnects = self.shared.counters.reconnects.load(Ordering::Relaxed),
                    "connected to MQTT broker"
                );
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => match self.queued.pop_front() {
                Some(tag) => {
                    self.inflight.insert(pkid, tag);
                }
                None => error!(pkid, "MQTT: a publish that was not submitted here"),
            },
            Event::Incoming(Packet::PubAck(ack)) => match self.inflight.remove(&ack.pkid) {
                Some(Tag::Device(id, size)) => {
                    self.devices_out = self.devices_out.saturating_sub(1);
                    self.bytes_out = self.bytes_out.saturating_sub(size);
                    let mut spool = self.shared.spool();
                    if let Err(e) = spool.ack(id) {
                        warn!(id, error = %e, "spool: cannot delete an acknowledged message");
                    }
                    self.shared.mirror(&spool);
                    self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                }
                Some(Tag::Status) => self.status_out = false,
                Some(Tag::Offline) => {
                    if let Phase::Offline { end } = self.phase {
                        self.disconnect(end);
                    }
                }
                None => debug!(pkid = ack.pkid, "MQTT: PUBACK for an unknown packet id"),
            },
            Event::Outgoing(Outgoing::Disconnect) => {
                if matches!(self.phase, Phase::Disconnecting { .. }) {
                    self.phase = Phase::Done;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(dir: &Path) -> MqttConfig {
        MqttConfig::new("mqtt://localhost", "site-1", "agent-1", "inst", dir)
    }

    fn setting_of(e: OutputError) -> &'static str {
        match e {
            OutputError::Setting(e) => e.setting(),
            other => panic!("not a setting error: {other}"),
        }
    }

    #[test]
    fn topics() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        assert_eq!(c.devices_topic(), "ward/v1/site-1/agent-1/devices");
        assert_eq!(c.status_topic(), "ward/v1/site-1/agent-1/status");
        assert_eq!(c.validate().unwrap().port, 1883);
    }

    #[test]
    fn validation_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        type Edit = Box<dyn Fn(&mut MqttConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("url", Box::new(|c| c.client.url = "http://x".into())),
            ("url", Box::new(|c| c.client.url = "jsonl:-".into())),
            (
                "client_id",
                Box::new(|c| c.client.client_id = String::new()),
            ),
            ("site", Box::new(|c| c.site = "a/b".into())),
            ("site", Box::new(|c| c.site = "a+".into())),
            ("agent_id", Box::new(|c| c.agent_id = "#".into())),
            ("agent_id", Box::new(|c| c.agent_id = "a\nb".into())),
            ("agent_id", Box::new(|c| c.agent_id = String::new())),
            ("instance", Box::new(|c| c.instance = String::new())),
            (
                "password",
                Box::new(|c| c.client.password = Some("pw".into())),
            ),
            (
                "keep_alive",
                Box::new(|c| c.client.keep_alive = Duration::ZERO),
            ),
            (
                "keep_alive",
                Box::new(|c| c.client.keep_alive = Duration::from_secs(70_000)),
            ),
            ("spool_dir", Box::new(|c| c.spool_dir = PathBuf::new())),
            ("spool_max_bytes", Box::new(|c| c.spool_max_bytes = 100)),
            ("inflight", Box::new(|c| c.inflight = 0)),
            ("inflight", Box::new(|c| c.inflight = 5000)),
            (
                "ca_file",
                Box::new(|c| c.client.tls.ca_file = Some("x".into())),
            ),
            (
                "client_cert",
                Box::new(|c| c.client.tls.client_cert = Some("x".into())),
            ),
        ];
        for (want, edit) in cases {
            let mut c = cfg(dir.path());
            edit(&mut c);
            let e = c.validate().unwrap_err();
            let msg = e.to_string();
            assert_eq!(setting_of(e), want, "{msg}");
            assert!(msg.contains(want), "{msg}");
        }

        let tls = |edit: &dyn Fn(&mut MqttConfig)| {
            let mut c = cfg(dir.path());
            c.client.url = "mqtts://broker".into();
            edit(&mut c);
            c.validate()
        };
        let e = tls(&|c| c.client.tls.ca_file = Some(missing.clone())).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        assert_eq!(setting_of(e), "ca_file");
        assert_eq!(
            setting_of(tls(&|c| c.client.tls.ca_file = Some(not_pem.clone())).unwrap_err()),
            "ca_file"
        );
        assert_eq!(
            setting_of(tls(&|c| c.client.tls.client_cert = Some(not_pem.clone())).unwrap_err()),
            "client_key"
        );
        assert_eq!(
            setting_of(tls(&|c| c.client.tls.client_key = Some(not_pem.clone())).unwrap_err()),
            "client_cert"
        );
        assert_eq!(
            setting_of(tls(&|c| c.client.url = "mqtts://[::1]".into()).unwrap_err()),
            "url"
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let mut c = cfg(Path::new("/tmp"));
        c.client.username = Some("u".into());
        c.client.password = Some("hunter2".into());
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"));
        assert!(s.contains("redacted"));
    }

    #[test]
    fn offline_status_derives_from_the_latest() {
        let id = Identity {
            site: "s".into(),
            agent_id: "a".into(),
            instance: "i".into(),
            started_at: SystemTime::UNIX_EPOCH,
        };
        // No status yet: a minimal one.
        let v: Value =
            serde_json::from_slice(&offline_payload(None, &id, "shutdown", None)).unwrap();
        assert_eq!(v["schema"], "ward.status.v1");
        assert_eq!(v["state"], "offline");
        assert_eq!(v["reason"], "shutdown");
        assert_eq!(v["instance"], "i");
        assert!(v.get("stats").is_none());

        let mut online = id.status(AgentState::Online);
        online.started_at = "2025-01-01T00:00:00.000Z".into();
        online.stats = Some(super::super::StatusStats {
            packets: 7,
            spool_depth: 99,
            ..Default::default()
        });
        let latest = serde_json::to_vec(&online).unwrap();
        // Last will: no stats.
        let v: Value = serde_json::from_slice(&offline_payload(
            Some(&latest),
            &id,
            "connection_lost",
            None,
        ))
        .unwrap();
        assert_eq!(v["state"], "offline");
        assert_eq!(v["reason"], "connection_lost");
        assert_eq!(v["started_at"], "2025-01-01T00:00:00.000Z");
        assert!(v.get("stats").is_none());
        // Clean shutdown: stats kept, spool fields current.
        let stats = OutputStats {
            spool_depth: 3,
            spool_bytes: 300,
            evicted_messages: 1,
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&offline_payload(
            Some(&latest),
            &id,
            "shutdown",
            Some(&stats),
        ))
        .unwrap();
        assert_eq!(v["stats"]["packets"], 7);
        assert_eq!(v["stats"]["spool_depth"], 3);
        assert_eq!(v["stats"]["spool_bytes"], 300);
        assert_eq!(v["stats"]["spool_evicted"], 1);
        let parsed: StatusMessage = serde_json::from_value(v).unwrap();
        assert_eq!(parsed.state, AgentState::Offline);
    }

    /// Reads one MQTT packet: (first byte, body).
    async fn read_packet(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        let first = s.read_u8().await.unwrap();
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.unwrap();
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.unwrap();
        (first, body)
    }

    /// The next QoS 1 PUBLISH: (topic, packet id); other packets are skipped.
    async fn next_publish(s: &mut tokio::net::TcpStream) -> (String, [u8; 2]) {
        loop {
            let (first, body) = read_packet(s).await;
            if first >> 4 == 3 && (first >> 1) & 3 == 1 {
                let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = String::from_utf8(body[2..2 + n].to_vec()).unwrap();
                return (topic, [body[2 + n], body[3 + n]]);
            }
        }
    }

    /// After an outage the backlog goes out within the byte window, not `inflight` messages
    /// at once: a broker that withholds PUBACKs sees two 100 kB messages of a 250 kB window,
    /// one more per PUBACK, and every message in the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backlog_is_sent_within_the_byte_window() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut c = MqttConfig::new(
            format!("mqtt://127.0.0.1:{port}"),
            "site-1",
            "agent-1",
            "inst",
            dir.path(),
        );
        c.inflight = 32;
        c.inflight_bytes = 250_000;
        {
            let mut spool = Spool::open(dir.path(), 64 << 20).unwrap();
            for i in 0..10u8 {
                spool.push(&c.devices_topic(), &[i; 100_000]).unwrap();
            }
        }
        let devices_topic = c.devices_topic();
        let out = MqttOutput::start(c).unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        let (first, _) = read_packet(&mut s).await;
        assert_eq!(first >> 4, 1, "CONNECT first");
        s.write_all(&[0x20, 2, 0, 0]).await.unwrap();
        // Unacknowledged device publishes; statuses are acknowledged at once. Each round waits
        // (generously) for the publishes the window allows, then 300 ms for any beyond it.
        let mut held = VecDeque::new();
        let mut received = 0;
        let mut acked = 0;
        while acked < 10 {
            let want = (10 - acked).min(2);
            loop {
                let wait = if held.len() < want {
                    Duration::from_secs(10)
                } else {
                    Duration::from_millis(300)
                };
                match tokio::time::timeout(wait, next_publish(&mut s)).await {
                    Ok((topic, pkid)) if topic == devices_topic => {
                        held.push_back(pkid);
                        received += 1;
                    }
                    Ok((_, pkid)) => s.write_all(&[0x40, 2, pkid[0], pkid[1]]).await.unwrap(),
                    Err(_) => break,
                }
            }
            assert_eq!(held.len(), want, "in flight with {acked} acknowledged");
            let pkid = held.pop_front().unwrap();
            s.write_all(&[0x40, 2, pkid[0], pkid[1]]).await.unwrap();
            acked += 1;
        }
        assert_eq!(received, 10);
        for _ in 0..500 {
            if out.stats().spool_depth == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(out.stats().spool_depth, 0);
        assert_eq!(out.stats().acked, 10);
        drop(out);
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            MqttOutput::start(cfg(dir.path())),
            Err(OutputError::NoRuntime)
        ));
    }
}
