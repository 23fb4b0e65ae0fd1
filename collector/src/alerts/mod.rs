//! Alerts: every flag that an evaluation opens or resolves becomes a `ward.alert.v1` message
//! (`docs/schema/alert-v1.md`), published on MQTT to `ward/v1/alerts/<site>` and POSTed to an
//! optional webhook, so that people hear of a compliance problem when it appears, not when
//! somebody next opens the inventory.
//!
//! # Shape
//!
//! [`Alerter::notify`] is called by the serve loop with what [`crate::ingest::evaluate`]
//! returned. It only encodes the messages and puts them on a bounded queue per destination
//! (MQTT, webhook): the ingest must never wait for a slow broker or a dead web server. A full
//! queue drops its **oldest** alert ([`AlertStats::dropped`], with a warning): the newest state
//! of the inventory matters more than an old transition, and the flags themselves stay in the
//! database. Each destination has one task that empties its queue in order.
//!
//! # MQTT
//!
//! One message per site the flag concerns (the sites of `evidence.device.seen_by`), to
//! `ward/v1/alerts/<site>` (the site escaped into one topic level by
//! [`ward_mqtt::topic::alerts_topic`]); flags without a site (assets, contracts) go to
//! `ward/v1/alerts/_global`. QoS 1, not retained: an alert is an event, and a retained one
//! would replay an old transition to every new subscriber.
//!
//! - **Embedded broker**: handed to [`BrokerLinker::publish`], which queues it to every
//!   connected alert consumer whose subscription matches, at the QoS it was granted (at most
//!   1); only identities configured as alert readers may subscribe, and nobody else may
//!   publish on `ward/v1/alerts/…`.
//! - **External broker**: a rumqttc client of its own (never the ingest's connection: its
//!   client id must differ). The alerter keeps the messages the broker has not acknowledged
//!   (PUBACK) and publishes them again, in order, after a reconnect; rumqttc itself is given
//!   at most [`MQTT_WINDOW`] messages at a time and keeps nothing across connections, so no
//!   message is either lost or sent twice by both of them. A PUBACK lost with the connection
//!   makes a duplicate: consumers deduplicate on `(collector, flag.id, event, site)`.
//!
//! # Webhook
//!
//! The same JSON, one POST per message (so per site, like MQTT), `Content-Type:
//! application/json`, with `Authorization: Bearer <token>` when a token file is configured.
//! A 2xx answer is success; anything else (another status, a refused connection, a timeout)
//! is retried with exponential backoff, up to [`AlertConfig::webhook_max_attempts`]. Messages
//! are delivered one at a time, in order: a message waits until the one before it was
//! delivered or given up (logged at error with the flag id). `https://` verifies the server
//! against [`AlertConfig::webhook_ca_file`] or the system CA bundle. Environment proxies and
//! redirects are not followed: the receiver is a known internal service, and a redirected
//! POST would be a silent misconfiguration.
//!
//! # Stopping
//!
//! [`Alerter::shutdown`] stops taking alerts and delivers what is queued until its timeout;
//! a webhook retry waiting for its backoff is attempted at once. What is left then is counted
//! in [`AlertStats::dropped`]. Dropping the [`Alerter`] instead aborts the tasks.
//!
//! # Delivered, not only claimed
//!
//! A flag event whose every message reached every destination goes to the delivered log
//! ([`Alerter::take_delivered`]), which the serve loop records in the store. An event claimed
//! from the store and never recorded delivered (dropped, given up, or queued in a collector
//! that crashed) is sent again by the next holder of the evaluator's lease: at least once.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use rumqttc::QoS;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use ward_mqtt::client::network_options;
use ward_mqtt::poll::{next_poll, PollFuture};
use ward_mqtt::tls::{read_pem_certs, system_ca_bundle};
use ward_mqtt::topic::{alerts_topic, GLOBAL_SITE};
use ward_mqtt::{Backoff, ClientConfig, ConfigError};

use crate::mqtt::broker::BrokerLinker;
use crate::store::{Applied, FlagRow};

/// The `schema` of every alert message.
pub const SCHEMA: &str = "ward.alert.v1";
/// Largest encoded alert; a larger one is sent with its evidence replaced by a note (the flag
/// and its full evidence stay in the database). Evidence lists are capped where they are
/// built, so this is a guard, not an expected case.
pub const MAX_ALERT_BYTES: usize = 256 << 10;
/// Messages handed to the external broker's client and not yet acknowledged, at most.
pub const MQTT_WINDOW: usize = 64;
/// Messages handed to the embedded broker's router in one blocking call.
const EMBEDDED_BATCH: usize = 256;

// ---------------------------------------------------------------------------------------------
// Configuration

/// `[alerts]` in the collector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// Publish alerts on MQTT: on the embedded broker, or on the external broker the collector
    /// reads from (with a connection of its own).
    pub mqtt: bool,
    /// This collector's name in alerts (`collector`); default: the host name.
    pub collector_id: Option<String>,
    /// Most messages waiting per destination (MQTT, webhook); past it the oldest are dropped.
    pub queue_capacity: usize,
    /// `http://` or `https://` URL to POST every alert to; unset = no webhook.
    pub webhook_url: Option<String>,
    /// File holding a bearer token for the webhook (`Authorization: Bearer <token>`); trailing
    /// whitespace is ignored. Kept out of the configuration file so that file can be readable.
    pub webhook_bearer_token_file: Option<PathBuf>,
    /// PEM CA certificate(s) the `https://` webhook's certificate must chain to; default: the
    /// system bundle (or `SSL_CERT_FILE`).
    pub webhook_ca_file: Option<PathBuf>,
    /// Attempts per message, the first included, before it is given up.
    pub webhook_max_attempts: u32,
    /// Timeout of one attempt (connect, send, answer), seconds.
    pub webhook_timeout_secs: u64,
    /// Wait after the first failed attempt, ms; doubled after each further failure…
    pub webhook_backoff_initial_ms: u64,
    /// …up to this, ms.
    pub webhook_backoff_max_ms: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            mqtt: true,
            collector_id: None,
            queue_capacity: 10_000,
            webhook_url: None,
            webhook_bearer_token_file: None,
            webhook_ca_file: None,
            webhook_max_attempts: 10,
            webhook_timeout_secs: 10,
            webhook_backoff_initial_ms: 1_000,
            webhook_backoff_max_ms: 300_000,
        }
    }
}

/// Where alerts are published on MQTT.
// Built once at start and moved into the alerter: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AlertMqtt {
    /// Not at all.
    None,
    /// On the collector's embedded broker, through an in-process link.
    Embedded(BrokerLinker),
    /// On an external broker, with a connection of the alerter's own: URL, client id,
    /// credentials, TLS files, keep-alive (from [`crate::mqtt::source::ExternalSource::client`]
    /// when alerts go where the ingest reads). `client_id` must differ from the ingest
    /// source's (a broker drops the older of two connections with one id).
    External(ClientConfig),
}

/// Why the alerter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A setting, or a file it names, is unusable (MQTT client and webhook settings alike).
    #[error("alerts: {0}")]
    Setting(#[from] ConfigError),
    /// [`Alerter::start`] was called outside a tokio runtime.
    #[error("alerts: must be started inside a tokio runtime")]
    NoRuntime,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> AlertError {
    ConfigError::invalid(setting, reason).into()
}

fn file_err(setting: &'static str, path: &Path, reason: impl fmt::Display) -> AlertError {
    ConfigError::file(setting, path, reason).into()
}

// ---------------------------------------------------------------------------------------------
// Messages

/// What happened to the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    /// The condition was found true (again, after it had been resolved: a new flag id).
    Opened,
    /// The condition no longer holds.
    Resolved,
}

impl AlertEvent {
    /// As in the message.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Opened => "opened",
            AlertEvent::Resolved => "resolved",
        }
    }
}

/// The flag, as an alert carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFlag {
    /// Flag id in the collector's database.
    pub id: i64,
    /// Kind (`end_of_support_passed`, …).
    pub kind: String,
    /// `device:<id>`, `asset:<tag>` or `contract:<id>`.
    pub subject: String,
    /// What distinguishes several flags of one kind on one subject; may be empty.
    pub detail: String,
    /// `high`, `medium`, `low` or `info`.
    pub severity: String,
    /// One line for people.
    pub summary: String,
    /// Structured evidence (as of the last evaluation that found the condition true).
    pub evidence: serde_json::Value,
    /// When first found true (RFC 3339, UTC).
    pub opened_at: String,
    /// When found no longer true (RFC 3339, UTC); null while open.
    pub resolved_at: Option<String>,
}

/// One `ward.alert.v1` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Opened or resolved.
    pub event: AlertEvent,
    /// The site this message is for (as in the topic, unescaped); null on `_global`.
    pub site: Option<String>,
    /// The flag.
    pub flag: AlertFlag,
    /// The collector that raised it.
    pub collector: String,
}

fn rfc3339(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// The sites a flag concerns: `evidence.device.seen_by[].site`, deduplicated and sorted;
/// empty for flags without device evidence (assets, contracts).
pub fn flag_sites(flag: &FlagRow) -> BTreeSet<String> {
    flag.evidence
        .get("device")
        .and_then(|d| d.get("seen_by"))
        .and_then(serde_json::Value::as_array)
        .map(|seen| {
            seen.iter()
                .filter_map(|s| s.get("site")?.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The messages for one flag transition, with their topics: one per site, or one on
/// `_global`.
pub fn flag_messages(
    flag: &FlagRow,
    event: AlertEvent,
    collector: &str,
) -> Vec<(String, AlertMessage)> {
    let alert_flag = AlertFlag {
        id: flag.id,
        kind: flag.kind.clone(),
        subject: flag.subject.clone(),
        detail: flag.detail.clone(),
        severity: flag.severity.clone(),
        summary: flag.summary.clone(),
        evidence: flag.evidence.clone(),
        opened_at: rfc3339(flag.opened_us),
        resolved_at: flag.resolved_us.map(rfc3339),
    };
    let message = |site: Option<String>| AlertMessage {
        schema: SCHEMA.to_string(),
        event,
        site,
        flag: alert_flag.clone(),
        collector: collector.to_string(),
    };
    let mut out = Vec::new();
    for site in flag_sites(flag) {
        // Escaped into one topic level (stored evidence may hold `/ + #`); `None` if too long.
        match alerts_topic(Some(&site)) {
            Some(topic) => out.push((topic, message(Some(site)))),
            None => warn!(
                flag_id = flag.id,
                site_bytes = site.len(),
                "alert: site too long for a topic level; not published under it"
            ),
        }
    }
    if out.is_empty() {
        if let Some(topic) = alerts_topic(None) {
            out.push((topic, message(None)));
        }
    }
    out
}

/// Every message an evaluation's result gives: opened flags first, then resolved ones.
pub fn alert_messages(applied: &Applied, collector: &str) -> Vec<(String, AlertMessage)> {
    let opened = applied
        .opened
        .iter()
        .flat_map(|f| flag_messages(f, AlertEvent::Opened, collector));
    let resolved = applied
        .resolved
        .iter()
        .flat_map(|f| flag_messages(f, AlertEvent::Resolved, collector));
    opened.chain(resolved).collect()
}

/// JSON of a message, its evidence replaced by a note when it would exceed
/// [`MAX_ALERT_BYTES`].
fn encode(mut message: AlertMessage) -> Option<Vec<u8>> {
    let encoded = match serde_json::to_vec(&message) {
        Ok(v) => v,
        Err(e) => {
            error!(flag_id = message.flag.id, error = %e, "alert: cannot encode; dropped");
            return None;
        }
    };
    if encoded.len() <= MAX_ALERT_BYTES {
        return Some(encoded);
    }
    warn!(
        flag_id = message.flag.id,
        bytes = encoded.len(),
        max = MAX_ALERT_BYTES,
        "alert: evidence too large; sent without it"
    );
    message.flag.evidence = serde_json::json!({
        "omitted": format!(
            "evidence too large for an alert ({} bytes); see flag {} in the collector",
            encoded.len(),
            message.flag.id
        )
    });
    serde_json::to_vec(&message).ok()
}

// ---------------------------------------------------------------------------------------------
// Queues and counters

/// One message ready to send.
#[derive(Debug)]
struct Item {
    topic: String,
    payload: Vec<u8>,
    flag_id: i64,
    event: AlertEvent,
    site: Option<String>,
    /// Shared by every message of this flag's event, on every destination.
    done: Arc<Completion>,
}

/// `(flag id, event bit)` of alerts delivered everywhere (bit 1 opened, 2 resolved), for the
/// store to record ([`crate::store::Store::confirm_alerts`]).
pub type DeliveredLog = Arc<Mutex<Vec<(i64, i64)>>>;

/// One flag event's messages still to deliver: its sites × the destinations. When the last is
/// delivered, the event goes to the delivered log. A message dropped (full queue, shutdown) or
/// given up never completes it, so the event stays claimed-but-undelivered in the database
/// and is sent again by the next holder of the evaluator's lease: at least once.
#[derive(Debug)]
struct Completion {
    remaining: std::sync::atomic::AtomicUsize,
    flag_id: i64,
    bit: i64,
    log: DeliveredLog,
}

impl Completion {
    fn finish(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            lock(&self.log).push((self.flag_id, self.bit));
        }
    }
}

impl AlertEvent {
    /// The event's bit in the store's `alerted`/`delivered` columns.
    pub fn bit(self) -> i64 {
        match self {
            AlertEvent::Opened => 1,
            AlertEvent::Resolved => 2,
        }
    }
}

/// Counters of an [`Alerter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    /// MQTT messages published: acknowledged by the external broker (PUBACK), or handed to
    /// the embedded broker's router. One alert on n sites is n messages.
    pub published: u64,
    /// Webhook requests answered with 2xx.
    pub webhook_delivered: u64,
    /// Webhook attempts that failed (each retry counts).
    pub webhook_failed_attempts: u64,
    /// Webhook messages given up after every attempt failed.
    pub webhook_abandoned: u64,
    /// Messages dropped without being sent: a full queue's oldest, or still queued when the
    /// shutdown timeout ran out.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    webhook_delivered: AtomicU64,
    webhook_failed_attempts: AtomicU64,
    webhook_abandoned: AtomicU64,
    dropped: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a consistent VecDeque: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded queue that drops its oldest entries, with a wake-up for its one consumer.
#[derive(Debug)]
struct Queue {
    name: &'static str,
    items: Mutex<VecDeque<Arc<Item>>>,
    capacity: usize,
    notify: Notify,
    /// Messages the consumer took and has not finished with (for the shutdown count).
    in_hand: AtomicU64,
}

impl Queue {
    fn new(name: &'static str, capacity: usize) -> Queue {
        Queue {
            name,
            items: Mutex::new(VecDeque::new()),
            capacity,
            notify: Notify::new(),
            in_hand: AtomicU64::new(0),
        }
    }

    /// Appends, dropping the oldest past the capacity; returns how many were dropped.
    fn push(&self, new: impl IntoIterator<Item = Arc<Item>>) -> u64 {
        let mut dropped = 0;
        {
            let mut items = lock(&self.items);
            for item in new {
                if items.len() >= self.capacity {
                    items.pop_front();
                    dropped += 1;
                }
                items.push_back(item);
            }
        }
        self.notify.notify_one();
        dropped
    }

    /// Puts messages that were taken back at the front, in their order (they are the
    /// oldest, so they are the ones a full queue drops); returns how many were dropped.
    fn requeue(&self, taken: Vec<Arc<Item>>) -> u64 {
        let mut items = lock(&self.items);
        for item in taken.into_iter().rev() {
            items.push_front(item);
        }
        let mut dropped = 0;
        while items.len() > self.capacity {
            items.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn pop(&self) -> Option<Arc<Item>> {
        lock(&self.items).pop_front()
    }

    fn pop_up_to(&self, n: usize) -> Vec<Arc<Item>> {
        let mut items = lock(&self.items);
        let n = n.min(items.len());
        items.drain(..n).collect()
    }

    fn is_empty(&self) -> bool {
        lock(&self.items).is_empty()
    }

    fn clear(&self) -> u64 {
        let mut items = lock(&self.items);
        let n = items.len() as u64;
        items.clear();
        n
    }
}

/// One destination: its queue and the task that empties it.
#[derive(Debug)]
struct Sink {
    queue: Arc<Queue>,
    task: JoinHandle<()>,
}

// ---------------------------------------------------------------------------------------------
// The alerter

/// Sends alerts for flag transitions; see the module documentation.
pub struct Alerter {
    collector: String,
    delivered: DeliveredLog,
    counters: Arc<Counters>,
    closing: watch::Sender<bool>,
    mqtt: Option<Sink>,
    webhook: Option<Sink>,
}

impl fmt::Debug for Alerter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerter")
            .field("collector", &self.collector)
            .field("mqtt", &self.mqtt.is_some())
            .field("webhook", &self.webhook.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Alerter {
    /// Checks the configuration (files are read now, so a missing token or CA file fails at
    /// start) and starts one task per destination. Must be called inside a tokio runtime.
    /// Connections are made in the background and retried: an unreachable broker or webhook
    /// delays alerts, it does not stop the collector.
    pub fn start(cfg: &AlertConfig, mqtt: AlertMqtt) -> Result<Alerter, AlertError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        if cfg.queue_capacity == 0 || cfg.queue_capacity > 10_000_000 {
            return Err(invalid("queue_capacity", "must be 1 to 10000000"));
        }
        let collector = match &cfg.collector_id {
            Some(id) => id.clone(),
            None => hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "ward-collector".into()),
        };
        if collector.is_empty() || collector.len() > 256 || collector.chars().any(char::is_control)
        {
            return Err(invalid(
                "collector_id",
                "must be 1 to 256 bytes without control characters",
            ));
        }
        let webhook = cfg
            .webhook_url
            .as_deref()
            .map(|url| Webhook::new(cfg, url))
            .transpose()?;
        let mqtt = if cfg.mqtt { mqtt } else { AlertMqtt::None };
        let external = match &mqtt {
            AlertMqtt::External(ext) => Some(mqtt_options(ext)?),
            _ => None,
        };

        let counters = Arc::new(Counters::default());
        let (closing, closing_rx) = watch::channel(false);
        let mqtt_sink = match (mqtt, external) {
            (AlertMqtt::Embedded(linker), _) => {
                let queue = Arc::new(Queue::new("mqtt", cfg.queue_capacity));
                let task = runtime.spawn(run_embedded(
                    linker,
                    queue.clone(),
                    counters.clone(),
                    closing_rx.clone(),
                ));
                info!(broker = "embedded", "alerts: publishing on MQTT");
                Some(Sink { queue, task })
            }
            (AlertMqtt::External(ext), Some(options)) => {
                let queue = Arc::new(Queue::new("mqtt", cfg.queue_capacity));
                let worker = ExternalWorker::new(&ext, options, queue.clone(), counters.clone());
                let task = runtime.spawn(worker.run(closing_rx.clone()));
                info!(
                    url = ext.url,
                    client_id = ext.client_id,
                    "alerts: publishing on MQTT"
                );
                Some(Sink { queue, task })
            }
            _ => None,
        };
        let webhook_sink = webhook.map(|hook| {
            let queue = Arc::new(Queue::new("webhook", cfg.queue_capacity));
            info!(
                webhook = hook.display,
                bearer_token = hook.token.is_some(),
                max_attempts = hook.max_attempts,
                "alerts: posting to a webhook"
            );
            let task = runtime.spawn(run_webhook(
                Arc::new(hook),
                queue.clone(),
                counters.clone(),
                closing_rx.clone(),
            ));
            Sink { queue, task }
        });
        if mqtt_sink.is_none() && webhook_sink.is_none() {
            info!("alerts: no destination configured; flags are only stored");
        }
        Ok(Alerter {
            collector,
            delivered: DeliveredLog::default(),
            counters,
            closing,
            mqtt: mqtt_sink,
            webhook: webhook_sink,
        })
    }

    /// Queues the alerts for what an evaluation opened and resolved. Never blocks: encoding
    /// and a short lock; a full queue drops its oldest messages (counted, with a warning).
    pub fn notify(&self, applied: &Applied) {
        if self.mqtt.is_none() && self.webhook.is_none() {
            // Nowhere to send: the flags are only stored, and nothing is left to deliver.
            let mut log = lock(&self.delivered);
            log.extend(
                applied
                    .opened
                    .iter()
                    .map(|f| (f.id, AlertEvent::Opened.bit())),
            );
            log.extend(
                applied
                    .resolved
                    .iter()
                    .map(|f| (f.id, AlertEvent::Resolved.bit())),
            );
            return;
        }
        if applied.opened.is_empty() && applied.resolved.is_empty() {
            return;
        }
        #[allow(clippy::type_complexity)]
        let encoded: Vec<(String, i64, AlertEvent, Option<String>, Vec<u8>)> =
            alert_messages(applied, &self.collector)
                .into_iter()
                .filter_map(|(topic, message)| {
                    let (flag_id, event, site) =
                        (message.flag.id, message.event, message.site.clone());
                    encode(message).map(|payload| (topic, flag_id, event, site, payload))
                })
                .collect();
        let sinks = [&self.mqtt, &self.webhook].into_iter().flatten().count();
        let mut completions: std::collections::HashMap<(i64, i64), Arc<Completion>> =
            std::collections::HashMap::new();
        for (_, flag_id, event, _, _) in &encoded {
            completions
                .entry((*flag_id, event.bit()))
                .or_insert_with(|| {
                    Arc::new(Completion {
                        remaining: std::sync::atomic::AtomicUsize::new(0),
                        flag_id: *flag_id,
                        bit: event.bit(),
                        log: self.delivered.clone(),
                    })
                })
                .remaining
                .fetch_add(sinks, Ordering::Relaxed);
        }
        let items: Vec<Arc<Item>> = encoded
            .into_iter()
            .filter_map(|(topic, flag_id, event, site, payload)| {
                let done = completions.get(&(flag_id, event.bit()))?.clone();
                Some(Arc::new(Item {
                    topic,
                    payload,
                    flag_id,
                    event,
                    site,
                    done,
                }))
            })
            .collect();
        debug!(
            opened = applied.opened.len(),
            resolved = applied.resolved.len(),
            messages = items.len(),
            "alerts queued"
        );
        for sink in [&self.mqtt, &self.webhook].into_iter().flatten() {
            let dropped = sink.queue.push(items.iter().cloned());
            if dropped > 0 {
                add(&self.counters.dropped, dropped);
                warn!(
                    destination = sink.queue.name,
                    dropped,
                    capacity = sink.queue.capacity,
                    total_dropped = self.counters.dropped.load(Ordering::Relaxed),
                    "alert queue full: oldest alerts dropped"
                );
            }
        }
    }

    /// The flag events delivered everywhere since the last call, for the store to record.
    pub fn take_delivered(&self) -> Vec<(i64, i64)> {
        std::mem::take(&mut *lock(&self.delivered))
    }

    /// The log [`Alerter::take_delivered`] reads, kept by the caller to read what the final
    /// flush of [`Alerter::shutdown`] delivered.
    pub fn delivered_log(&self) -> DeliveredLog {
        self.delivered.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> AlertStats {
        let c = &self.counters;
        AlertStats {
            published: c.published.load(Ordering::Relaxed),
            webhook_delivered: c.webhook_delivered.load(Ordering::Relaxed),
            webhook_failed_attempts: c.webhook_failed_attempts.load(Ordering::Relaxed),
            webhook_abandoned: c.webhook_abandoned.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Stops taking alerts and delivers what is queued, for at most `timeout`; then stops the
    /// tasks (what is left is counted as dropped) and returns the final counters.
    pub async fn shutdown(mut self, timeout: Duration) -> AlertStats {
        let deadline = tokio::time::Instant::now() + timeout;
        let _ = self.closing.send(true);
        let counters = self.counters.clone();
        let finish = |sink: Option<Sink>| {
            let counters = counters.clone();
            async move {
                let Some(mut sink) = sink else { return };
                if tokio::time::timeout_at(deadline, &mut sink.task)
                    .await
                    .is_ok()
                {
                    return;
                }
                sink.task.abort();
                let left = sink.queue.clear() + sink.queue.in_hand.swap(0, Ordering::Relaxed);
                if left > 0 {
                    add(&counters.dropped, left);
                    warn!(
                        destination = sink.queue.name,
                        undelivered = left,
                        ?timeout,
                        "alerts: shutdown timeout reached; undelivered alerts dropped"
                    );
                }
            }
        };
        tokio::join!(finish(self.mqtt.take()), finish(self.webhook.take()));
        let stats = self.stats();
        info!(
            published = stats.published,
            webhook_delivered = stats.webhook_delivered,
            webhook_failed_attempts = stats.webhook_failed_attempts,
            webhook_abandoned = stats.webhook_abandoned,
            dropped = stats.dropped,
            "alerts stopped"
        );
        stats
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        for sink in [self.mqtt.take(), self.webhook.take()]
            .into_iter()
            .flatten()
        {
            sink.task.abort();
        }
    }
}

/// Resolves once `closing` is true (or its sender is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

fn is_closing(closing: &watch::Receiver<bool>) -> bool {
    *closing.borrow()
}

// ---------------------------------------------------------------------------------------------
// Embedded broker

async fn run_embedded(
    linker: BrokerLinker,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        let batch = queue.pop_up_to(EMBEDDED_BATCH);
        if !batch.is_empty() {
            // A memory hand-off to the consumers' bounded queues: never blocks.
            for item in &batch {
                linker.publish(&item.topic, &item.payload);
                item.done.finish();
            }
            add(&counters.published, batch.len() as u64);
            continue;
        }
        if is_closing(&closing) {
            return;
        }
        tokio::select! {
            () = queue.notify.notified() => {}
            () = closed(&mut closing) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// External broker

/// Client options for publishing alerts. Clean session: the alerter keeps the unacknowledged
/// messages itself and republishes them after a reconnect.
fn mqtt_options(cfg: &ClientConfig) -> Result<MqttOptions, AlertError> {
    let (_, mut o) = cfg.options()?;
    o.set_clean_session(true)
        .set_inflight(MQTT_WINDOW as u16)
        .set_request_channel_capacity(MQTT_WINDOW * 2)
        // Incoming: acknowledgements only. Outgoing: alerts, capped at MAX_ALERT_BYTES.
        .set_max_packet_size(64 << 10, MAX_ALERT_BYTES + (64 << 10));
    Ok(o)
}

/// Publishes the MQTT queue on an external broker.
struct ExternalWorker {
    url: String,
    client: AsyncClient,
    eventloop: Option<EventLoop>,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    connected: bool,
    /// Given to rumqttc, not yet written (rumqttc writes requests in order).
    handed: VecDeque<Arc<Item>>,
    /// Written, awaiting PUBACK, in the order written.
    inflight: VecDeque<(u16, Arc<Item>)>,
    backoff: Backoff,
}

impl ExternalWorker {
    fn new(
        cfg: &ClientConfig,
        options: MqttOptions,
        queue: Arc<Queue>,
        counters: Arc<Counters>,
    ) -> ExternalWorker {
        let (client, mut eventloop) = AsyncClient::new(options, MQTT_WINDOW * 2);
        eventloop.set_network_options(network_options());
        ExternalWorker {
            url: cfg.url.clone(),
            client,
            eventloop: Some(eventloop),
            queue,
            counters,
            connected: false,
            handed: VecDeque::new(),
            inflight: VecDeque::new(),
            backoff: Backoff::default(),
        }
    }

    fn unconfirmed(&self) -> usize {
        self.handed.len() + self.inflight.len()
    }

    fn sync_in_hand(&self) {
        self.queue
            .in_hand
            .store(self.unconfirmed() as u64, Ordering::Relaxed);
    }

    /// Gives rumqttc what the window allows.
    fn hand_over(&mut self) {
        while self.connected && self.unconfirmed() < MQTT_WINDOW {
            let Some(item) = self.queue.pop() else { break };
            match self.client.try_publish(
                item.topic.clone(),
                QoS::AtLeastOnce,
                false,
                item.payload.clone(),
            ) {
                Ok(()) => self.handed.push_back(item),
                Err(e) => {
                    // The channel has room for the whole window, so this is a closed client or
                    // a topic rumqttc refuses: retrying would not help.
                    add(&self.counters.dropped, 1);
                    error!(url = self.url, flag_id = item.flag_id, topic = item.topic, error = %e,
                        "alerts: MQTT client refused the message; dropped");
                }
            }
        }
        self.sync_in_hand();
    }

    async fn run(mut self, mut closing: watch::Receiver<bool>) {
        let Some(eventloop) = self.eventloop.take() else {
            return;
        };
        let mut poll = next_poll(eventloop, None);
        loop {
            self.hand_over();
            if is_closing(&closing) && self.queue.is_empty() && self.unconfirmed() == 0 {
                break;
            }
            let room = self.connected && self.unconfirmed() < MQTT_WINDOW;
            tokio::select! {
                biased;
                (mut eventloop, event) = &mut poll => {
                    let delay = match event {
                        Ok(event) => {
                            self.on_event(event);
                            None
                        }
                        Err(e) => Some(self.on_error(&mut eventloop, &e)),
                    };
                    poll = next_poll(eventloop, delay);
                }
                () = self.queue.notify.notified(), if room => {}
                () = closed(&mut closing), if !is_closing(&closing) => {}
            }
        }
        self.disconnect(poll).await;
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => {
                info!(url = self.url, "alerts: connected to the MQTT broker");
                self.connected = true;
                self.backoff.reset();
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(item) = self.handed.pop_front() {
                    self.inflight.push_back((pkid, item));
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(i) = self.inflight.iter().position(|(p, _)| *p == ack.pkid) {
                    if let Some((_, item)) = self.inflight.remove(i) {
                        add(&self.counters.published, 1);
                        item.done.finish();
                        debug!(
                            flag_id = item.flag_id,
                            event = item.event.as_str(),
                            topic = item.topic,
                            "alert published"
                        );
                    }
                }
                self.sync_in_hand();
            }
            _ => {}
        }
    }

    /// The connection failed: take back everything unacknowledged (republished, in order,
    /// after the reconnect); returns the delay before the next attempt.
    fn on_error(&mut self, eventloop: &mut EventLoop, e: &ConnectionError) -> Duration {
        // rumqttc would keep what it holds for a resumed session; ours is clean, and the
        // queue below has all of it.
        eventloop.clean();
        eventloop.pending.clear();
        let taken: Vec<Arc<Item>> = self
            .inflight
            .drain(..)
            .map(|(_, item)| item)
            .chain(self.handed.drain(..))
            .collect();
        let requeued = taken.len();
        add(&self.counters.dropped, self.queue.requeue(taken));
        self.sync_in_hand();
        let delay = self.backoff.next_delay();
        if self.connected {
            warn!(url = self.url, error = %e, requeued, retry_in = ?delay,
                "alerts: MQTT connection lost");
        } else {
            warn!(url = self.url, error = %e, retry_in = ?delay,
                "alerts: cannot connect to the MQTT broker");
        }
        self.connected = false;
        delay
    }

    /// Sends DISCONNECT and waits (bounded by the shutdown's timeout) until it is written.
    async fn disconnect(&mut self, mut poll: PollFuture) {
        if !self.connected {
            return;
        }
        if self.client.try_disconnect().is_err() {
            return;
        }
        loop {
            let (eventloop, event) = (&mut poll).await;
            match event {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
            poll = next_poll(eventloop, None);
        }
        info!(url = self.url, "alerts: disconnected from the MQTT broker");
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// The webhook's settings and HTTP client.
struct Webhook {
    agent: ureq::Agent,
    url: String,
    /// `scheme://authority` only: the path may carry a secret, logs get this.
    display: String,
    token: Option<String>,
    max_attempts: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Webhook {
    fn new(cfg: &AlertConfig, url: &str) -> Result<Webhook, AlertError> {
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e| invalid("webhook_url", format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("webhook_url", "must be an http:// or https:// URL")),
        };
        let Some(authority) = uri.authority() else {
            return Err(invalid("webhook_url", "has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(invalid(
                "webhook_url",
                "credentials do not belong in the URL; use webhook_bearer_token_file",
            ));
        }
        if authority.host().is_empty() {
            return Err(invalid("webhook_url", "has no host"));
        }
        let display = format!("{}://{}", if https { "https" } else { "http" }, authority);
        if cfg.webhook_max_attempts == 0 {
            return Err(invalid("webhook_max_attempts", "must be at least 1"));
        }
        if !(1..=3600).contains(&cfg.webhook_timeout_secs) {
            return Err(invalid("webhook_timeout_secs", "must be 1 to 3600"));
        }
        if cfg.webhook_backoff_initial_ms == 0
            || cfg.webhook_backoff_max_ms < cfg.webhook_backoff_initial_ms
        {
            return Err(invalid(
                "webhook_backoff_initial_ms",
                "must be at least 1 and at most webhook_backoff_max_ms",
            ));
        }
        let token = match &cfg.webhook_bearer_token_file {
            None => None,
            Some(p) => {
                let setting = "webhook_bearer_token_file";
                let text = std::fs::read_to_string(p).map_err(|e| file_err(setting, p, e))?;
                let token = text.trim_end().to_string();
                if token.is_empty() {
                    return Err(file_err(setting, p, "the file is empty"));
                }
                // A header value: no line breaks (they would end the header) nor other
                // control characters.
                if token.chars().any(|c| c.is_control()) {
                    return Err(file_err(
                        setting,
                        p,
                        "the token contains control characters (one line expected)",
                    ));
                }
                Some(token)
            }
        };
        let roots = match (&cfg.webhook_ca_file, https) {
            (Some(_), false) => {
                return Err(invalid(
                    "webhook_ca_file",
                    "only used with an https:// webhook_url",
                ))
            }
            (_, false) => None,
            (Some(p), true) => Some(read_roots("webhook_ca_file", p)?),
            (None, true) => match system_ca_bundle() {
                Some(p) => Some(read_roots("webhook_ca_file", &p)?),
                None => {
                    return Err(invalid(
                        "webhook_ca_file",
                        "not given and no system CA bundle found (install ca-certificates or \
                         set webhook_ca_file)",
                    ))
                }
            },
        };
        let mut tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(crypto_provider());
        if let Some(roots) = roots {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(cfg.webhook_timeout_secs)))
            .user_agent(concat!("ward-collector/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        Ok(Webhook {
            agent: ureq::Agent::new_with_config(config),
            url: url.to_string(),
            display,
            token,
            max_attempts: cfg.webhook_max_attempts,
            backoff_initial: Duration::from_millis(cfg.webhook_backoff_initial_ms),
            backoff_max: Duration::from_millis(cfg.webhook_backoff_max_ms),
        })
    }

    /// One attempt: `Ok(())` on 2xx, else why not. Blocking.
    fn post(&self, body: &[u8]) -> Result<(), String> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let mut response = request.send(body).map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // A little of the answer helps whoever reads the log; it is not trusted further.
        let text = response
            .body_mut()
            .with_config()
            .limit(512)
            .read_to_string()
            .unwrap_or_default();
        let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        Err(format!("HTTP {status}: {text}"))
    }
}

/// The process-wide rustls provider when one is installed, else aws-lc-rs (what rumqttc's
/// rustls is built with): never rustls' implicit choice, which is ambiguous here.
fn crypto_provider() -> Arc<rumqttc::tokio_rustls::rustls::crypto::CryptoProvider> {
    use rumqttc::tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(aws_lc_rs::default_provider()))
}

fn read_roots(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<ureq::tls::Certificate<'static>>, AlertError> {
    let pem = read_pem_certs(setting, path)?;
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| file_err(setting, path, e))? {
            roots.push(c);
        }
    }
    Ok(roots)
}

async fn run_webhook(
    hook: Arc<Webhook>,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        let Some(item) = queue.pop() else {
            if is_closing(&closing) {
                return;
            }
            tokio::select! {
                () = queue.notify.notified() => {}
                () = closed(&mut closing) => {}
            }
            continue;
        };
        queue.in_hand.store(1, Ordering::Relaxed);
        deliver(&hook, &item, &counters, &mut closing).await;
        queue.in_hand.store(0, Ordering::Relaxed);
    }
}

/// Posts one message until it is accepted or every attempt failed.
async fn deliver(
    hook: &Arc<Webhook>,
    item: &Arc<Item>,
    counters: &Counters,
    closing: &mut watch::Receiver<bool>,
) {
    let mut delay = hook.backoff_initial;
    let mut cut_short = false;
    for attempt in 1..=hook.max_attempts {
        let (h, i) = (hook.clone(), item.clone());
        let result = tokio::task::spawn_blocking(move || h.post(&i.payload))
            .await
            .unwrap_or_else(|e| Err(format!("request task failed: {e}")));
        let reason = match result {
            Ok(()) => {
                add(&counters.webhook_delivered, 1);
                item.done.finish();
                debug!(
                    webhook = hook.display,
                    flag_id = item.flag_id,
                    event = item.event.as_str(),
                    attempt,
                    "alert delivered to the webhook"
                );
                return;
            }
            Err(reason) => reason,
        };
        add(&counters.webhook_failed_attempts, 1);
        if attempt == hook.max_attempts {
            add(&counters.webhook_abandoned, 1);
            error!(
                webhook = hook.display,
                flag_id = item.flag_id,
                event = item.event.as_str(),
                site = item.site.as_deref().unwrap_or(GLOBAL_SITE),
                attempts = attempt,
                error = reason,
                "alert not delivered to the webhook; giving up"
            );
            return;
        }
        warn!(
            webhook = hook.display,
            flag_id = item.flag_id,
            attempt,
            error = reason,
            retry_in = ?delay,
            "webhook attempt failed"
        );
        // At shutdown, a retry waiting for its backoff goes at once (once per message).
        if is_closing(closing) && !cut_short {
            cut_short = true;
        } else {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = closed(closing), if !is_closing(closing) => { cut_short = true; }
            }
        }
        delay = (delay * 2).min(hook.backoff_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(evidence: serde_json::Value) -> FlagRow {
        FlagRow {
            id: 7,
            kind: "no_contract".into(),
            subject: "device:1".into(),
            detail: String::new(),
            severity: "medium".into(),
            status: "open".into(),
            summary: "s".into(),
            evidence,
            opened_us: 1_767_225_600_000_000,
            last_true_us: 1_767_225_600_000_000,
            resolved_us: None,
        }
    }

    /// The advisory flags take the alert path like every kind: raised by the evaluation (as
    /// `ingest::evaluate` would store them), one message per site of the device, the kind and
    /// its advisory evidence in the message.
    #[test]
    fn advisory_flags_become_alert_messages() {
        use crate::compliance::flags::advisory::tests::advisory;
        use crate::compliance::flags::testkit::{DeviceExt, World};
        use crate::compliance::flags::FlagKind;
        let w = World::covered_with(|w| {
            let d = std::mem::take(w.d());
            *w.d() = d.attr("software_version", "1.4");
            w.c().patch_sla_days.high = Some(30);
            w.inv.advisories.push(advisory(-90, Some(-45)));
        });
        let raised = w.flags();
        for kind in [FlagKind::VulnerableSoftware, FlagKind::PatchOverdue] {
            let f = raised.iter().find(|f| f.kind == kind).unwrap();
            let row = FlagRow {
                id: 7,
                kind: f.kind.name().into(),
                subject: f.subject.clone(),
                detail: f.detail.clone(),
                severity: f.severity.as_str().into(),
                status: "open".into(),
                summary: f.summary.clone(),
                evidence: f.evidence.clone(),
                opened_us: w.now_us,
                last_true_us: w.now_us,
                resolved_us: None,
            };
            let m = flag_messages(&row, AlertEvent::Opened, "c1");
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].0, "ward/v1/alerts/main");
            let v: serde_json::Value =
                serde_json::from_slice(&encode(m[0].1.clone()).unwrap()).unwrap();
            assert_eq!(v["flag"]["kind"], kind.name());
            assert_eq!(v["flag"]["detail"], "ACME-SA-1");
            assert_eq!(v["flag"]["evidence"]["advisory"]["id"], "ACME-SA-1");
        }
    }

    #[test]
    fn one_message_per_distinct_site_else_global() {
        let f = flag(json!({"device": {"seen_by": [
            {"site": "north", "agent_id": "a", "vlan": 1},
            {"site": "south", "agent_id": "b", "vlan": null},
            {"site": "north", "agent_id": "c", "vlan": 2},
        ]}}));
        let m = flag_messages(&f, AlertEvent::Opened, "c1");
        let topics: Vec<_> = m.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["ward/v1/alerts/north", "ward/v1/alerts/south"]);
        assert_eq!(m[0].1.site.as_deref(), Some("north"));
        let g = flag_messages(&flag(json!({"asset": "A-1"})), AlertEvent::Resolved, "c1");
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].0, "ward/v1/alerts/_global");
        assert_eq!(g[0].1.site, None);
        let v: serde_json::Value =
            serde_json::from_slice(&encode(g[0].1.clone()).unwrap()).unwrap();
        assert_eq!(v["schema"], "ward.alert.v1");
        assert_eq!(v["event"], "resolved");
        assert_eq!(v["flag"]["opened_at"], "2026-01-01T00:00:00Z");
        assert_eq!(v["flag"]["resolved_at"], serde_json::Value::Null);
        assert_eq!(v["collector"], "c1");
    }

    #[test]
    fn oversized_evidence_is_replaced() {
        let f = flag(json!({"blob": "x".repeat(MAX_ALERT_BYTES)}));
        let (_, m) = flag_messages(&f, AlertEvent::Opened, "c").remove(0);
        let bytes = encode(m).unwrap();
        assert!(bytes.len() < 4096);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v["flag"]["evidence"]["omitted"]
            .as_str()
            .unwrap()
            .contains("flag 7"));
    }

    #[test]
    fn an_event_is_delivered_once_every_message_of_it_is() {
        let log = DeliveredLog::default();
        let c = Completion {
            remaining: std::sync::atomic::AtomicUsize::new(4),
            flag_id: 9,
            bit: 2,
            log: log.clone(),
        };
        for _ in 0..3 {
            c.finish();
        }
        assert!(
            lock(&log).is_empty(),
            "a site or a destination still owes it"
        );
        c.finish();
        assert_eq!(*lock(&log), [(9, 2)]);
    }

    #[test]
    fn full_queue_drops_oldest() {
        let q = Queue::new("t", 2);
        let item = |id| {
            Arc::new(Item {
                topic: "t".into(),
                payload: vec![],
                flag_id: id,
                event: AlertEvent::Opened,
                site: None,
                done: Arc::new(Completion {
                    remaining: std::sync::atomic::AtomicUsize::new(1),
                    flag_id: id,
                    bit: 1,
                    log: DeliveredLog::default(),
                }),
            })
        };
        assert_eq!(q.push([item(1), item(2), item(3)]), 1);
        assert_eq!(q.pop().unwrap().flag_id, 2);
        assert_eq!(q.requeue(vec![item(0), item(1)]), 1);
        let ids: Vec<_> = q.pop_up_to(10).iter().map(|i| i.flag_id).collect();
        assert_eq!(ids, [1, 3]);
    }

    #[test]
    fn webhook_settings_are_checked() {
        let cfg = |url: &str| AlertConfig {
            webhook_url: Some(url.into()),
            ..AlertConfig::default()
        };
        for bad in ["ftp://x/", "http://u:p@x/", "x", "http:///path"] {
            assert!(Webhook::new(&cfg(bad), bad).is_err(), "{bad}");
        }
        let ok = Webhook::new(
            &cfg("http://127.0.0.1:9/hook/secret"),
            "http://127.0.0.1:9/hook/secret",
        )
        .unwrap();
        assert_eq!(ok.display, "http://127.0.0.1:9");
    }
}
