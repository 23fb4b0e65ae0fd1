//! `ward-collector serve`: source (embedded broker or external) → decode → batched store
//! transactions → acknowledgement → debounced and scheduled evaluation.
//!
//! The acknowledgement comes after the commit: with an external broker and its persistent
//! session, a crash before commit means redelivery, and the store's `(site, agent, instance,
//! seq)` key turns the redelivery into a no-op.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::access::api::{self, ApiState, Metrics};
use crate::alerts;
use crate::config::Config;
use crate::evaluation;
use crate::ingest::{self, decode};
use crate::mqtt::broker::{self, BrokerConfig};
use crate::mqtt::source::{self, Delivery, SourceConfig};
use crate::store::{IngestStats, Store, StoreError};

/// Longest a batch waits to fill once messages are flowing.
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// Least time between two evaluations triggered by ingest, whatever the configured debounce:
/// a burst of batches is evaluated once rather than once per batch, while an observation still
/// becomes a flag within a fraction of a second on an inventory that evaluates in milliseconds
/// (bench/wire-to-flag.sh: a two-second debounce alone put the p99 above two seconds).
const MIN_EVALUATION_GAP: Duration = Duration::from_millis(250);

/// Topic filters the collector subscribes to.
pub const FILTERS: [&str; 2] = ward_mqtt::topic::AGENT_FILTERS;

/// What the ingest loop tells the evaluator.
enum EvalMsg {
    /// New data was committed.
    Dirty,
    /// Evaluate once more if needed, then stop.
    Stop,
}

/// Alerts claimed and never confirmed delivered — by a previous holder of the evaluator's
/// lease that died or hung, or by this collector before a crash — queued again (at least once:
/// receivers deduplicate on the flag id and event).
fn resend_undelivered(store: &mut dyn Store, alerter: &alerts::Alerter) -> anyhow::Result<()> {
    let (mut after, mut resent) = (0i64, 0usize);
    loop {
        let batch = store
            .undelivered_alerts(after, 1000)
            .context("reading undelivered alerts")?;
        let Some(last) = batch
            .opened
            .iter()
            .chain(&batch.resolved)
            .map(|f| f.id)
            .max()
        else {
            break;
        };
        after = last;
        resent += batch.opened.len() + batch.resolved.len();
        alerter.notify(&batch);
    }
    if resent > 0 {
        tracing::warn!(
            alerts = resent,
            "alerts claimed but never delivered: sending them again"
        );
    }
    Ok(())
}

/// How often the evaluator's lease holder looks at the shared ingest clock for data other
/// collectors stored: one single-row read a second, so their flags wait no longer than this
/// plus the usual debounce.
const CLUSTER_POLL: Duration = Duration::from_secs(1);

/// Links, flags, summaries, then alerts for what opened or resolved — on its own thread and
/// database connection, so ingest never waits for an evaluation (seconds at 100 000 devices).
/// Runs at start, after new data (debounced: never sooner than four times its own last cost, so
/// it cannot take more than a fifth of the database's time, nor than the configured debounce or
/// [`MIN_EVALUATION_GAP`] after the previous one; at once when those have passed), and on the
/// schedule.
fn evaluator(
    cfg: Config,
    metrics: Arc<Metrics>,
    alerter: Arc<alerts::Alerter>,
    rx: std::sync::mpsc::Receiver<EvalMsg>,
) -> anyhow::Result<()> {
    use std::sync::mpsc::RecvTimeoutError;
    let mut store = crate::commands::open_db(&cfg.db)?;
    // Several collectors on one PostgreSQL database: one evaluates and sends alerts at a time,
    // the holder of the lease "evaluator", renewed at every wake-up (at least three times a
    // lease) and taken over by another collector once it expires (its holder died or hung).
    // SQLite grants it always.
    let lease = Duration::from_secs(cfg.ingest.evaluator_lease_secs.max(3));
    let holder = format!(
        "{}:{}:{}",
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        ingest::now_us()
    );
    let mut holding = false;
    let interval = Duration::from_secs(cfg.ingest.evaluate_interval_secs.max(1));
    let debounce = Duration::from_secs(cfg.ingest.evaluate_debounce_secs).max(MIN_EVALUATION_GAP);
    let mut dirty = false;
    // The first evaluation is a sweep over every device, and so is the one after an import.
    let mut sweep_pending = true;
    let mut reference = evaluation::Reference::default();
    let mut last = Instant::now();
    let mut cost = Duration::ZERO;
    let mut scheduled = Instant::now();
    let mut stopping = false;
    // Several collectors on one database: data another collector stored moves the shared
    // ingest clock, which the holder reads every CLUSTER_POLL (its own ingest tells it
    // directly); `None` for SQLite, one collector per file.
    let clustered = store
        .ingest_clock()
        .context("reading the ingest clock")?
        .is_some();
    let mut clock: Option<i64> = None;
    loop {
        if !stopping {
            let due = if dirty {
                (last + debounce.max(cost * 4)).min(scheduled)
            } else {
                scheduled
            }
            .min(
                Instant::now()
                    + if holding && clustered {
                        CLUSTER_POLL
                    } else {
                        lease / 3
                    },
            );
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(EvalMsg::Dirty) => {
                    dirty = true;
                    continue;
                }
                Ok(EvalMsg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    stopping = true;
                    if !dirty {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        let held = store
            .try_lease(
                "evaluator",
                &holder,
                i64::try_from(lease.as_micros()).unwrap_or(i64::MAX),
                ingest::now_us(),
            )
            .context("taking the evaluator's lease")?;
        if held != holding {
            tracing::info!(holder = %holder, held, "evaluator lease");
            holding = held;
            metrics
                .evaluator_lease
                .store(u64::from(held), Ordering::Relaxed);
            if held {
                // Taken over: what the previous holder left unevaluated is evaluated now, and
                // the alerts it claimed but never delivered (it died in between) are sent.
                dirty = true;
                resend_undelivered(&mut *store, &alerter)?;
            }
        }
        // What the destinations acknowledged since the last wake-up: recorded, so no holder
        // sends it again.
        store
            .confirm_alerts(&alerter.take_delivered())
            .context("recording delivered alerts")?;
        if held && clustered {
            let now_clock = store.ingest_clock().context("reading the ingest clock")?;
            if clock.is_some() && now_clock != clock {
                dirty = true;
            }
            clock = now_clock;
        }
        let now = Instant::now();
        let changes_due = dirty && now >= last + debounce.max(cost * 4);
        // Stopping: only what changed, so a stop never waits for a sweep.
        let mut sweep_due = (sweep_pending || now >= scheduled) && !stopping;
        if !held {
            // Another collector evaluates: wake up only to try the lease again (a third of it
            // from now), or for new data. Without this a collector that is not the holder but
            // has new data would find the debounce long past and try the lease in a busy loop
            // (bench-collector-postgres.sh with 3 collectors: a third of PostgreSQL's CPU).
            if stopping {
                break;
            }
            dirty = false;
            sweep_pending = true;
            scheduled = Instant::now() + lease / 3;
            continue;
        }
        if !(changes_due || sweep_due || stopping) {
            // Nothing is due yet: this wake-up only renewed the lease.
            continue;
        }
        let t = Instant::now();
        // Changed devices left by an evaluation that used up its time: evaluated next round.
        let mut more = false;
        if !sweep_due {
            // New data: just the devices it changed. `None`: an import changed what every
            // device is evaluated against, so every device is.
            let done = evaluation::evaluate_changed(
                &mut store,
                &mut reference,
                &cfg.flags,
                ingest::now_us(),
            )
            .context("evaluating changed devices")?;
            sweep_due = done.is_none();
            more = done.is_some_and(|c| c.more);
            cost = t.elapsed();
        }
        if sweep_due {
            let (mut resweep, mut lost) = (false, false);
            let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
            evaluation::evaluate_all(
                &mut store,
                &mut reference,
                &cfg.flags,
                &ingest::now_us,
                &mut |store, reference| {
                    // Between two parts of the sweep: new data is evaluated, alerts go out, and
                    // the lease is renewed (a sweep of a large inventory outlasts it).
                    if evaluation::evaluate_changed(store, reference, &cfg.flags, ingest::now_us())?
                        .is_none()
                    {
                        resweep = true;
                    }
                    send_alerts(store, &alerter)?;
                    store.confirm_alerts(&alerter.take_delivered())?;
                    let held = store.try_lease("evaluator", &holder, lease_us, ingest::now_us())?;
                    lost = !held;
                    Ok(held)
                },
            )
            .context("evaluating flags")?;
            let swept = t.elapsed();
            sweep_pending = resweep;
            scheduled = Instant::now() + interval.max(swept * 4);
            if lost {
                tracing::warn!(holder = %holder, "evaluator lease lost during a sweep: stopped it");
                holding = false;
                metrics.evaluator_lease.store(0, Ordering::Relaxed);
            }
        }
        metrics.evaluations.fetch_add(1, Ordering::Relaxed);
        // Alerts come from the database, not from this evaluation alone: a CLI import or
        // another collector may have opened or resolved flags since the last round.
        send_alerts(&mut store, &alerter).context("reading flags to alert")?;
        last = Instant::now();
        dirty = more;
        if stopping {
            break;
        }
    }
    if holding {
        // A clean stop hands the lease on at once rather than after it expires: renewed as
        // already expired, which only its holder may do.
        if let Err(e) = store.try_lease("evaluator", &holder, -1, ingest::now_us()) {
            tracing::warn!(error = %e, "releasing the evaluator's lease");
        }
    }
    Ok(())
}

/// Sends every alert not sent yet (whoever evaluated: this collector, another, a CLI import).
fn send_alerts(store: &mut dyn Store, alerter: &alerts::Alerter) -> Result<(), StoreError> {
    loop {
        let batch = store.take_alerts(1000)?;
        if batch.opened.is_empty() && batch.resolved.is_empty() {
            return Ok(());
        }
        alerter.notify(&batch);
    }
}

fn count(m: &Metrics, st: &IngestStats, rejected: u64) {
    m.messages.fetch_add(st.messages, Ordering::Relaxed);
    m.duplicates.fetch_add(st.duplicates, Ordering::Relaxed);
    m.device_records
        .fetch_add(st.device_records, Ordering::Relaxed);
    m.statuses.fetch_add(st.statuses, Ordering::Relaxed);
    m.rejected.fetch_add(rejected, Ordering::Relaxed);
}

/// Runs until SIGTERM/SIGINT.
pub fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cfg))
}

async fn run_async(cfg: Config) -> anyhow::Result<()> {
    let mut store = crate::commands::open_db(&cfg.db)?;
    let (tx, mut rx) = mpsc::channel::<Delivery>(cfg.ingest.batch.max(1) * 4);
    // Every site's agents, or (several collectors without shared subscriptions) this
    // collector's sites only; the sites were checked as topic levels with the configuration.
    let filters: Vec<String> = if cfg.source.sites.is_empty() {
        FILTERS.iter().map(|s| s.to_string()).collect()
    } else {
        let mut f = Vec::new();
        for site in &cfg.source.sites {
            f.extend(ward_mqtt::topic::site_filters(site).context("source.sites")?);
        }
        f
    };
    let mut embedded: Option<broker::EmbeddedBroker> = None;
    let alert_mqtt: Option<alerts::AlertMqtt>;
    let source_cfg = match &cfg.source.url {
        Some(url) => {
            let password = match &cfg.source.password_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading password file {}", p.display()))?
                        .trim_end()
                        .to_string(),
                ),
                None => std::env::var("WARD_COLLECTOR_MQTT_PASSWORD").ok(),
            };
            let client_id = cfg.source.client_id.clone().unwrap_or_else(|| {
                format!(
                    "ward-collector-{}",
                    hostname::get()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| "local".into())
                )
            });
            // A list names the nodes of one cluster (NATS): the first, then the others in turn.
            let mut urls = ward_mqtt::endpoint::split_list(url);
            if urls.is_empty() {
                anyhow::bail!("source.url / --broker names no broker URL");
            }
            let first = urls.remove(0);
            let mut ext = source::ExternalSource::new(first, client_id);
            ext.fallback_urls = urls;
            ext.client.username = cfg.source.username.clone();
            ext.client.password = password;
            ext.client.tls.ca_file = cfg.source.ca.clone();
            ext.client.tls.client_cert = cfg.source.cert.clone();
            ext.client.tls.client_key = cfg.source.key.clone();
            ext.shared_group = cfg.source.share_group.clone();
            ext.max_packet_size = cfg.broker.max_payload;
            tracing::info!(url = %url, client_id = %ext.client.client_id, share_group = ?ext.shared_group, sites = ?cfg.source.sites, "subscribing to an external broker");
            let mut alert_client = ext.client.clone();
            // A second connection: the broker would drop the ingest session on a duplicate id.
            alert_client.client_id = format!("{}-alerts", ext.client.client_id);
            alert_mqtt = Some(alerts::AlertMqtt::External(alert_client));
            SourceConfig::External(ext)
        }
        None => {
            let credentials = match &cfg.broker.credentials_file {
                Some(p) => Some(broker::Credentials::load(p)?),
                None => None,
            };
            let tls = match (&cfg.broker.tls_cert, &cfg.broker.tls_key) {
                (Some(cert), Some(key)) => Some(broker::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: cfg.broker.tls_ca.clone(),
                }),
                (None, None) => None,
                _ => anyhow::bail!("the embedded broker's TLS needs both tls_cert and tls_key"),
            };
            // The ingest is attached before listening, so no agent connects to an endpoint
            // with nowhere to deliver.
            let (credentials, agent_sites) = match credentials {
                Some(c) => (Some(c.passwords), c.sites),
                None => (None, Default::default()),
            };
            let b = broker::EmbeddedBroker::new(&BrokerConfig {
                listen: cfg.broker.listen,
                tls,
                credentials,
                agent_sites,
                alert_readers: cfg.broker.alert_readers.iter().cloned().collect(),
                max_payload: cfg.broker.max_payload,
                allow_insecure: cfg.broker.allow_insecure_listen,
                ..BrokerConfig::default()
            })
            .with_context(|| format!("starting the embedded broker on {}", cfg.broker.listen))?;
            alert_mqtt = Some(alerts::AlertMqtt::Embedded(b.linker()));
            let sc = SourceConfig::Embedded(source::EmbeddedSource {
                broker: b.linker(),
                client_id: "ward-collector-ingest".into(),
            });
            embedded = Some(b);
            sc
        }
    };
    let handle = source::spawn(source_cfg, &filters, tx)
        .await
        .context("connecting the ingest source")?;
    if let Some(b) = embedded.as_mut() {
        let addr = b
            .listen()
            .with_context(|| format!("embedded broker on {}", cfg.broker.listen))?;
        tracing::info!(listen = %addr, tls = cfg.broker.tls_cert.is_some(), passwords = cfg.broker.credentials_file.is_some(), client_certificates = cfg.broker.tls_ca.is_some(), "embedded broker listening");
    }
    let alerter =
        alerts::Alerter::start(&cfg.alerts, alert_mqtt.unwrap_or(alerts::AlertMqtt::None))
            .context("starting alerts")?;
    let alerter = Arc::new(alerter);
    let metrics = Arc::new(Metrics::default());
    if let Some(b) = &embedded {
        let _ = metrics.broker.set(b.linker());
    }
    let (eval_tx, eval_rx) = std::sync::mpsc::sync_channel::<EvalMsg>(1);
    let eval_thread = {
        let (cfg, metrics, alerter) = (cfg.clone(), metrics.clone(), alerter.clone());
        std::thread::Builder::new()
            .name("evaluator".into())
            .spawn(move || evaluator(cfg, metrics, alerter, eval_rx))
            .context("starting the evaluator thread")?
    };
    let stop_http = Arc::new(tokio::sync::Notify::new());
    if cfg.http.enabled && !cfg.http.listen.ip().is_loopback() {
        // The API has no TLS of its own: bearer tokens would cross the network in clear text.
        anyhow::ensure!(
            cfg.http.allow_insecure_listen,
            "refusing to serve the HTTP API on {} in plain HTTP: listen on 127.0.0.1 behind a TLS-terminating proxy, or set [http] allow_insecure_listen = true (--allow-insecure-listen)",
            cfg.http.listen
        );
        tracing::warn!(listen = %cfg.http.listen, "serving the HTTP API in plain HTTP on a non-loopback address (allow_insecure_listen): bearer tokens cross the network in clear text unless a TLS proxy on this host fronts it");
    }
    let http = if cfg.http.enabled {
        let state = Arc::new(
            ApiState::new(cfg.db.clone(), metrics.clone(), cfg.flags.clone()).with_expensive_limit(
                cfg.http.expensive_concurrency,
                Duration::from_millis(cfg.http.expensive_wait_ms),
            ),
        );
        let stop = stop_http.clone();
        let shutdown = async move { stop.notified().await };
        if cfg.console.enabled {
            // The web console on the API's address (issue 21): same tokens, same views.
            let console = crate::console::router(Arc::new(crate::console::ConsoleState::new(
                cfg.db.clone(),
                &cfg.console,
            )));
            Some(api::serve_with(cfg.http.listen, state, console, shutdown).await?)
        } else {
            Some(api::serve(cfg.http.listen, state, shutdown).await?)
        }
    } else {
        None
    };
    tracing::info!(db = %crate::store::display_db(&cfg.db.to_string_lossy()), "collector running");

    let batch_max = cfg.ingest.batch.max(1);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(30));
    let mut totals = IngestStats::default();
    let mut rejected = 0u64;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let started = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break; }
            first = rx.recv() => {
                let Some(first) = first else {
                    anyhow::bail!("the ingest source stopped");
                };
                let mut deliveries = vec![first];
                // Each commit is an fsync: under load, wait a few milliseconds for a fuller
                // batch rather than commit a trickle one message at a time.
                let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                while deliveries.len() < batch_max {
                    match rx.try_recv() {
                        Ok(d) => deliveries.push(d),
                        Err(_) if deliveries.len() > 1 => {
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(d)) => deliveries.push(d),
                                _ => break,
                            }
                        }
                        Err(_) => break,
                    }
                }
                let mut msgs = Vec::with_capacity(deliveries.len());
                let mut rejected_now = 0u64;
                for d in &deliveries {
                    match decode(&d.topic, &d.payload) {
                        Ok(m) => msgs.push(m),
                        Err(e) => {
                            rejected += 1;
                            rejected_now += 1;
                            tracing::warn!(topic = %ingest::SafeText::new(&d.topic), bytes = d.payload.len(), reason = e.reason().label(), error = %e, "message rejected");
                        }
                    }
                }
                let st = tokio::task::block_in_place(|| store.ingest(&msgs, ingest::now_us()))
                    .context("storing observations")?;
                // Committed: now, and only now, the broker may forget them.
                for d in deliveries {
                    handle.ack(d.ack);
                }
                totals.add(&st);
                count(&metrics, &st, rejected_now);
                if st.messages > 0 || st.statuses > 0 {
                    // A full channel means an evaluation is already requested.
                    let _ = eval_tx.try_send(EvalMsg::Dirty);
                }
            }
            _ = stats_tick.tick() => {
                if eval_thread.is_finished() {
                    // It only stops early on an error: report it rather than ingest unevaluated.
                    break;
                }
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                tracing::info!(
                    messages = totals.messages, duplicates = totals.duplicates,
                    device_records = totals.device_records, devices_created = totals.devices_created,
                    merges = totals.merges, statuses = totals.statuses, rejected,
                    records_per_sec = (totals.device_records as f64 / secs) as u64,
                    "ingest stats"
                );
                if let Some(b) = &embedded {
                    let s = b.stats();
                    tracing::info!(
                        connected = s.connected, connections = s.connections,
                        auth_failures = s.auth_failures,
                        auth_failures_unlogged = s.auth_failures_unlogged,
                        publishes_refused = s.publishes_refused,
                        subscriptions_refused = s.subscriptions_refused,
                        protocol_errors = s.protocol_errors, takeovers = s.takeovers,
                        received = s.received, acks_sent = s.acks_sent, stale_acks = s.stale_acks,
                        alerts_sent = s.alerts_sent, alerts_dropped = s.alerts_dropped,
                        "embedded broker stats"
                    );
                }
            }
        }
    }
    // Deliveries already taken from the broker are stored and acknowledged before exit, so
    // neither the agents nor an external broker need to send them again.
    let mut rest = Vec::new();
    while let Ok(d) = rx.try_recv() {
        rest.push(d);
    }
    let msgs: Vec<_> = rest
        .iter()
        .filter_map(|d| match decode(&d.topic, &d.payload) {
            Ok(m) => Some(m),
            Err(e) => {
                metrics.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %ingest::SafeText::new(&d.topic), bytes = d.payload.len(), reason = e.reason().label(), error = %e, "message rejected");
                None
            }
        })
        .collect();
    if !msgs.is_empty() {
        let st = tokio::task::block_in_place(|| store.ingest(&msgs, ingest::now_us()))
            .context("storing observations")?;
        totals.add(&st);
        let _ = eval_tx.try_send(EvalMsg::Dirty);
    }
    for d in rest {
        handle.ack(d.ack);
    }
    // The evaluator finishes a last round (if anything changed), then stops.
    let evaluated = tokio::task::block_in_place(|| {
        let _ = eval_tx.send(EvalMsg::Stop);
        eval_thread.join()
    });
    match evaluated {
        Ok(r) => r.context("evaluator")?,
        Err(_) => anyhow::bail!("the evaluator thread panicked"),
    }
    if let Ok(a) = Arc::try_unwrap(alerter) {
        let delivered = a.delivered_log();
        let st = a.shutdown(Duration::from_secs(5)).await;
        // The last flush's deliveries, recorded through the ingest's store (the evaluator's
        // is gone); what did not go out stays claimed-but-undelivered for the next holder.
        let done = std::mem::take(&mut *delivered.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = tokio::task::block_in_place(|| store.confirm_alerts(&done)) {
            tracing::warn!(error = %e, "recording the last delivered alerts");
        }
        tracing::info!(
            published = st.published,
            webhook_delivered = st.webhook_delivered,
            dropped = st.dropped,
            "alerts flushed"
        );
    }
    handle.shutdown().await;
    stop_http.notify_one();
    if let Some(h) = http {
        let _ = h.await;
    }
    tracing::info!(
        messages = totals.messages,
        duplicates = totals.duplicates,
        device_records = totals.device_records,
        rejected,
        "collector stopped"
    );
    Ok(())
}
