//! The MQTT output against a real Mosquitto broker: every test starts its own `mosquitto` on a
//! free port with a generated configuration in a temporary directory (never a system service),
//! and checks what a real subscriber receives.
//!
//! Needs the `mosquitto` binary (package `mosquitto`; `mosquitto_passwd` comes with it) and
//! `openssl`. A missing binary fails the tests: they are the only proof of the spool's promise.
//! Broker ports are leased (`common::lease_port`): tests running in parallel never share one.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use ward_agent::observation::{Kind, Observation, SCHEMA};
use ward_agent::output::mqtt::{MqttConfig, MqttOutput};
use ward_agent::output::{AgentState, StatusStats};
use ward_testkit::{lease_port as free_port, make_pki, write_passwd, Mosquitto as Broker};

// ---------------------------------------------------------------------------------------------
// Helpers: logs, waits (the broker, its ports and certificates are `ward_testkit`'s)

/// Everything the agent logs, from every test in this binary (lines carry the broker URL or
/// other test-specific values to tell them apart).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let cap = Capture::default();
        let writer = cap.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .try_init();
        cap
    })
}

fn log_lines(needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Polls `done` every 10 ms; panics with `diag()` after `timeout`.
async fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    diag: impl Fn() -> String,
) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}: {}", diag());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A subscriber (rumqttc), reconnecting and resubscribing on its own

#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

struct Sub {
    msgs: Arc<Mutex<Vec<Msg>>>,
    subacks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

static SUB_IDS: AtomicU64 = AtomicU64::new(0);

impl Sub {
    async fn connect(port: u16, filter: &str, login: Option<(&str, &str)>) -> Sub {
        let id = format!(
            "test-sub-{port}-{}",
            SUB_IDS.fetch_add(1, Ordering::Relaxed)
        );
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subacks = Arc::new(AtomicU64::new(0));
        let (m, s, filter) = (msgs.clone(), subacks.clone(), filter.to_string());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.try_subscribe(&filter, QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        s.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => m.lock().unwrap().push(Msg {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        let sub = Sub {
            msgs,
            subacks,
            task,
        };
        sub.wait_subscribed(1).await;
        sub
    }

    async fn wait_subscribed(&self, n: u64) {
        let s = self.subacks.clone();
        wait_for(
            "the subscription",
            Duration::from_secs(10),
            || s.load(Ordering::SeqCst) >= n,
            || "no SUBACK".into(),
        )
        .await;
    }

    fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// `seq` of every observation received, in arrival order.
    fn seqs(&self) -> Vec<u64> {
        self.all()
            .iter()
            .filter(|m| m.topic.ends_with("/devices"))
            .map(|m| {
                let o: Observation = serde_json::from_slice(&m.payload).expect("observation");
                assert_eq!(o.schema, SCHEMA);
                o.seq
            })
            .collect()
    }

    fn statuses(&self) -> Vec<(Value, bool)> {
        self.all()
            .iter()
            .filter(|m| m.topic.ends_with("/status"))
            .map(|m| (serde_json::from_slice(&m.payload).unwrap(), m.retain))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Agent side

const SITE: &str = "test-site";

fn config(url: String, spool: &Path, agent: &str) -> MqttConfig {
    logs(); // capture the agent's logs from the start
    let mut c = MqttConfig::new(url, SITE, agent, format!("{agent}-instance"), spool);
    c.client.keep_alive = Duration::from_secs(5);
    c.inflight = 16;
    c.spool_max_bytes = 16 << 20;
    c
}

fn observation(agent: &str, seq: u64) -> Vec<u8> {
    serde_json::to_vec(&Observation {
        schema: SCHEMA.to_string(),
        site: SITE.to_string(),
        agent_id: agent.to_string(),
        instance: format!("{agent}-instance"),
        seq,
        kind: Kind::Delta,
        time_us: 1_700_000_000_000_000 + seq as i64,
        devices: Vec::new(),
    })
    .unwrap()
}

fn spooled_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "msg")
        })
        .count()
}

async fn wait_connected(out: &MqttOutput) {
    wait_for(
        "the agent to connect",
        Duration::from_secs(10),
        || out.stats().connected,
        || format!("{:?} last error {:?}", out.stats(), out.last_error()),
    )
    .await;
}

/// Every `1..=n` present (duplicates allowed); returns the number of duplicates.
fn assert_complete(seqs: &[u64], n: u64) -> usize {
    let set: BTreeSet<u64> = seqs.iter().copied().collect();
    let missing: Vec<u64> = (1..=n).filter(|s| !set.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "missing {} of {n}: {missing:?}",
        missing.len()
    );
    assert!(set.iter().all(|s| (1..=n).contains(s)));
    seqs.len() - set.len()
}

// ---------------------------------------------------------------------------------------------
// (a) 500 messages in order, retained status, offline after shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_hundred_in_order_then_clean_shutdown() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start(
        &tmp.path().join("broker"),
        port,
        "allow_anonymous true",
        "",
        &[],
    );
    let sub = Sub::connect(port, "ward/v1/#", None).await;

    let spool = tmp.path().join("spool");
    let cfg = config(format!("mqtt://127.0.0.1:{port}"), &spool, "agent-a");
    let status_topic = cfg.status_topic();
    let out = MqttOutput::start(cfg).unwrap();
    wait_connected(&out).await;

    let mut status = ward_agent::output::new_status(
        AgentState::Online,
        SITE,
        "agent-a",
        "agent-a-instance",
        std::time::SystemTime::now(),
    );
    status.stats = Some(StatusStats {
        packets: 42,
        ..Default::default()
    });
    out.publish_status(serde_json::to_vec(&status).unwrap())
        .unwrap();

    for seq in 1..=500 {
        let id = out.publish_devices(observation("agent-a", seq)).unwrap();
        assert!(id >= seq);
        if seq % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    wait_for(
        "500 messages and an empty spool",
        Duration::from_secs(20),
        || sub.seqs().len() >= 500 && out.stats().spool_depth == 0,
        || format!("received {} stats {:?}", sub.seqs().len(), out.stats()),
    )
    .await;
    assert_eq!(
        sub.seqs(),
        (1..=500).collect::<Vec<u64>>(),
        "in order, once"
    );
    let st = out.stats();
    assert_eq!((st.published, st.acked, st.sent), (500, 500, 500));
    assert_eq!((st.spool_depth, st.spool_bytes, st.reconnects), (0, 0, 0));
    assert!(st.connected);
    assert_eq!(spooled_files(&spool), 0);

    // The retained status, as a newcomer sees it.
    {
        let late = Sub::connect(port, &status_topic, None).await;
        wait_for(
            "the retained online status",
            Duration::from_secs(5),
            || {
                late.statuses()
                    .iter()
                    .any(|(v, _)| v["stats"]["packets"] == 42)
            },
            || format!("{:?}", late.statuses()),
        )
        .await;
        let (v, retained) = late.statuses().last().unwrap().clone();
        assert!(retained);
        assert_eq!(v["schema"], "ward.status.v1");
        assert_eq!(v["state"], "online");
        assert_eq!(v["agent_id"], "agent-a");
        assert_eq!(v["site"], SITE);
    }

    let t = Instant::now();
    let st = out.shutdown(Duration::from_secs(5)).await;
    let shutdown_time = t.elapsed();
    assert_eq!(st.spool_depth, 0);
    wait_for(
        "the offline status",
        Duration::from_secs(5),
        || sub.statuses().iter().any(|(v, _)| v["state"] == "offline"),
        || format!("{:?}", sub.statuses()),
    )
    .await;
    let (v, _) = sub.statuses().last().unwrap().clone();
    assert_eq!(v["reason"], "shutdown");
    assert_eq!(v["stats"]["packets"], 42, "derived from the latest status");
    assert_eq!(v["stats"]["spool_depth"], 0);

    // A clean disconnect: the broker saw DISCONNECT (so it discards the last will), and the
    // retained status for newcomers is the offline one.
    broker.wait_log("Client ward-agent-a disconnected.");
    let late = Sub::connect(port, &status_topic, None).await;
    wait_for(
        "the retained offline status",
        Duration::from_secs(5),
        || !late.statuses().is_empty(),
        || "nothing retained".into(),
    )
    .await;
    let (v, retained) = late.statuses()[0].clone();
    assert!(retained);
    assert_eq!(v["state"], "offline");
    assert_eq!(v["reason"], "shutdown");
    assert!(!broker
        .log_text()
        .contains("Client ward-agent-a closed its connection"));
    eprintln!(
        "a: 500 messages + shutdown in {:?} (shutdown {shutdown_time:?})",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (b) SIGKILL the broker mid-stream; restart on the same port; nothing is missing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_broker_killed_mid_stream_loses_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let passwd = tmp.path().join("passwd");
    write_passwd(&passwd, &[("agent", "agent-pw"), ("sub", "sub-pw")]);
    let global = format!("allow_anonymous false\npassword_file {}", passwd.display());
    let mut broker = Broker::start(&tmp.path().join("broker"), port, &global, "", &[]);
    let sub = Sub::connect(port, "ward/v1/#", Some(("sub", "sub-pw"))).await;

    let spool = tmp.path().join("spool");
    let mut cfg = config(format!("mqtt://127.0.0.1:{port}"), &spool, "agent-b");
    cfg.client.username = Some("agent".into());
    cfg.client.password = Some("agent-pw".into());
    let out = MqttOutput::start(cfg).unwrap();
    wait_connected(&out).await;

    const N: u64 = 400;
    const KILL_AT: u64 = 150;
    let mut at_kill = None;
    for seq in 1..=N {
        out.publish_devices(observation("agent-b", seq)).unwrap();
        if seq == KILL_AT {
            broker.kill();
            at_kill = Some((sub.seqs().len(), out.stats()));
        }
        if seq % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let (received_before_kill, stats_at_kill) = at_kill.unwrap();
    wait_for(
        "the agent to notice",
        Duration::from_secs(10),
        || !out.stats().connected,
        || format!("{:?}", out.stats()),
    )
    .await;
    let down = out.stats();
    assert!(
        down.spool_depth >= N - KILL_AT,
        "published after the kill must be spooled: {down:?}"
    );
    assert!(sub.seqs().len() < N as usize);

    // Restart on the same port with the agent locked out until the subscriber is back, so the
    // subscriber cannot miss the resend (the broker keeps no sessions: persistence is off).
    write_passwd(&passwd, &[("sub", "sub-pw")]);
    broker.restart();
    sub.wait_subscribed(2).await;
    write_passwd(&passwd, &[("agent", "agent-pw"), ("sub", "sub-pw")]);
    broker.reload();

    wait_for(
        "every message and an empty spool",
        Duration::from_secs(30),
        || out.stats().spool_depth == 0 && sub.seqs().len() >= N as usize,
        || format!("received {} stats {:?}", sub.seqs().len(), out.stats()),
    )
    .await;
    let seqs = sub.seqs();
    let duplicates = assert_complete(&seqs, N);
    let st = out.stats();
    assert!(st.reconnects >= 1, "{st:?}");
    assert_eq!(st.acked, N);
    assert_eq!(st.evicted_messages, 0);
    assert_eq!(spooled_files(&spool), 0);
    out.shutdown(Duration::from_secs(5)).await;
    eprintln!(
        "b: killed at {KILL_AT} (subscriber had {received_before_kill}, agent {stats_at_kill:?}); \
         spooled {} while down; all {N} arrived with {duplicates} duplicates after {} \
         reconnect(s) and {} failed attempt(s), in {:?}",
        down.spool_depth,
        st.reconnects,
        st.connect_failures,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (c) the spool stays within its bound while the broker is down; evictions are counted

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_spool_bound_holds_while_broker_is_down() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens yet
    let spool = tmp.path().join("spool");
    const MAX: u64 = 16_411; // also identifies this test's log lines
    let mut cfg = config(format!("mqtt://127.0.0.1:{port}"), &spool, "agent-c");
    cfg.spool_max_bytes = MAX;
    let out = MqttOutput::start(cfg.clone()).unwrap();

    const N: u64 = 400;
    for seq in 1..=N {
        out.publish_devices(observation("agent-c", seq)).unwrap();
        let st = out.stats();
        assert!(st.spool_bytes <= MAX, "{st:?}");
        if seq % 50 == 0 {
            let on_disk: u64 = std::fs::read_dir(&spool)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "msg"))
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum();
            assert_eq!(on_disk, st.spool_bytes);
            assert!(on_disk <= MAX);
        }
    }
    let st = out.stats();
    assert!(!st.connected);
    assert!(st.spool_depth > 10 && st.spool_depth < N, "{st:?}");
    assert_eq!(st.evicted_messages, N - st.spool_depth, "{st:?}");
    assert!(st.evicted_bytes > 0 && st.spool_bytes + st.evicted_bytes > MAX);
    let warned = log_lines(&format!("spool_max_bytes={MAX}"));
    assert!(
        warned
            .iter()
            .any(|l| l.contains("WARN") && l.contains("evicted")),
        "no eviction warning logged: {warned:?}"
    );
    let kept = st.spool_depth;
    drop(out); // a crash while the broker is away

    let broker = Broker::start(
        &tmp.path().join("broker"),
        port,
        "allow_anonymous true",
        "",
        &[],
    );
    let sub = Sub::connect(port, "ward/v1/#", None).await;
    let out = MqttOutput::start(cfg).unwrap();
    wait_for(
        "the kept messages",
        Duration::from_secs(15),
        || out.stats().spool_depth == 0 && sub.seqs().len() as u64 >= kept,
        || format!("received {} stats {:?}", sub.seqs().len(), out.stats()),
    )
    .await;
    // Exactly the newest messages survived, in order.
    assert_eq!(sub.seqs(), (N - kept + 1..=N).collect::<Vec<u64>>());
    out.shutdown(Duration::from_secs(5)).await;
    drop(broker);
    eprintln!(
        "c: {N} messages into a {MAX}-byte spool: kept {kept}, evicted {} ({} bytes); in {:?}",
        st.evicted_messages,
        st.evicted_bytes,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (d) agent crash with a full spool; the next start sends it; last will on a crash

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_agent_restart_sends_what_the_crashed_one_spooled() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let spool = tmp.path().join("spool");
    let cfg = config(format!("mqtt://127.0.0.1:{port}"), &spool, "agent-d");

    let first = MqttOutput::start(cfg.clone()).unwrap();
    let mut ids = Vec::new();
    for seq in 1..=50 {
        ids.push(first.publish_devices(observation("agent-d", seq)).unwrap());
    }
    wait_for(
        "a failed connection attempt",
        Duration::from_secs(5),
        || first.stats().connect_failures >= 1,
        || format!("{:?}", first.stats()),
    )
    .await;
    assert!(first.last_error().unwrap().contains("refused"));
    drop(first); // no shutdown: a crash
    assert_eq!(spooled_files(&spool), 50);

    let broker = Broker::start(
        &tmp.path().join("broker"),
        port,
        "allow_anonymous true",
        "",
        &[],
    );
    let sub = Sub::connect(port, "ward/v1/#", None).await;
    let second = MqttOutput::start(cfg).unwrap();
    assert_eq!(second.stats().spool_depth, 50);
    for seq in 51..=60 {
        let id = second.publish_devices(observation("agent-d", seq)).unwrap();
        assert!(id > *ids.last().unwrap(), "ids keep increasing");
    }
    wait_for(
        "60 messages",
        Duration::from_secs(10),
        || second.stats().spool_depth == 0 && sub.seqs().len() >= 60,
        || format!("received {} stats {:?}", sub.seqs().len(), second.stats()),
    )
    .await;
    assert_eq!(sub.seqs(), (1..=60).collect::<Vec<u64>>());
    assert_eq!(spooled_files(&spool), 0);

    // A crash while connected: the broker publishes the last will.
    drop(second);
    wait_for(
        "the last will",
        Duration::from_secs(10),
        || {
            sub.statuses()
                .iter()
                .any(|(v, _)| v["reason"] == "connection_lost")
        },
        || format!("{:?}", sub.statuses()),
    )
    .await;
    let (will, _) = sub
        .statuses()
        .into_iter()
        .find(|(v, _)| v["reason"] == "connection_lost")
        .unwrap();
    assert_eq!(will["schema"], "ward.status.v1");
    assert_eq!(will["state"], "offline");
    assert_eq!(will["agent_id"], "agent-d");
    assert_eq!(will["instance"], "agent-d-instance");
    let late = Sub::connect(port, "ward/v1/+/+/status", None).await;
    wait_for(
        "the retained last will",
        Duration::from_secs(5),
        || !late.statuses().is_empty(),
        || "nothing retained".into(),
    )
    .await;
    assert_eq!(late.statuses()[0].0["reason"], "connection_lost");
    assert!(late.statuses()[0].1);
    drop(broker);
    eprintln!(
        "d: crash, restart, 60 delivered, will seen, in {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// (e) username/password; a wrong password is reported and retried

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_password_auth_and_wrong_password() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let passwd = tmp.path().join("passwd");
    write_passwd(&passwd, &[("agent", "right"), ("sub", "sub-pw")]);
    let global = format!("allow_anonymous false\npassword_file {}", passwd.display());
    let _broker = Broker::start(&tmp.path().join("broker"), port, &global, "", &[]);
    let sub = Sub::connect(port, "ward/v1/#", Some(("sub", "sub-pw"))).await;
    let spool = tmp.path().join("spool");

    let mut cfg = config(format!("mqtt://127.0.0.1:{port}"), &spool, "agent-e");
    cfg.client.username = Some("agent".into());
    cfg.client.password = Some("wrong".into());
    let out = MqttOutput::start(cfg.clone()).unwrap();
    out.publish_devices(observation("agent-e", 1)).unwrap();
    wait_for(
        "two refused attempts",
        Duration::from_secs(10),
        || out.stats().connect_failures >= 2,
        || format!("{:?}", out.stats()),
    )
    .await;
    let st = out.stats();
    assert!(!st.connected);
    assert_eq!(st.spool_depth, 1);
    let err = out.last_error().unwrap();
    assert!(
        err.contains("not authorized") || err.contains("bad user name or password"),
        "{err}"
    );
    let broker_field = format!("broker=mqtt://127.0.0.1:{port}");
    let logged: Vec<_> = log_lines(&broker_field)
        .into_iter()
        .filter(|l| l.contains("cannot connect"))
        .collect();
    assert!(
        logged.len() == 1 && logged[0].contains("ERROR") && logged[0].contains("not authorized"),
        "one clear error, repeats not logged: {logged:?}"
    );
    let st = out.shutdown(Duration::from_millis(300)).await;
    assert_eq!(st.spool_depth, 1, "unsent stays spooled");
    assert!(sub.seqs().is_empty());

    cfg.client.password = Some("right".into());
    let out = MqttOutput::start(cfg).unwrap();
    out.publish_devices(observation("agent-e", 2)).unwrap();
    wait_for(
        "both messages",
        Duration::from_secs(10),
        || out.stats().spool_depth == 0 && sub.seqs().len() >= 2,
        || format!("{:?} {:?}", out.stats(), out.last_error()),
    )
    .await;
    assert_eq!(sub.seqs(), vec![1, 2]);
    out.shutdown(Duration::from_secs(5)).await;
    eprintln!("e: in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// TLS with client certificates

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificate() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    make_pki(&pki, &[("client", "ward-agent-tls")]);
    let plain = free_port();
    let tls = free_port();
    let listeners = format!(
        "listener {tls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
         require_certificate true\n",
        ca = pki.join("ca.pem").display(),
        cert = pki.join("server.pem").display(),
        key = pki.join("server.key").display(),
    );
    let _broker = Broker::start(
        &tmp.path().join("broker"),
        plain,
        "allow_anonymous true",
        &listeners,
        &[tls],
    );
    let sub = Sub::connect(plain, "ward/v1/#", None).await;

    // Without a client certificate the broker refuses the handshake; the agent retries.
    let mut cfg = config(
        format!("mqtts://localhost:{tls}"),
        &tmp.path().join("spool-nocert"),
        "agent-tls",
    );
    cfg.client.tls.ca_file = Some(pki.join("ca.pem"));
    let refused = MqttOutput::start(cfg.clone()).unwrap();
    wait_for(
        "a refused TLS handshake",
        Duration::from_secs(10),
        || refused.stats().connect_failures >= 1,
        || format!("{:?}", refused.stats()),
    )
    .await;
    assert!(!refused.stats().connected);
    eprintln!(
        "tls: without a client certificate: {:?}",
        refused.last_error()
    );
    drop(refused);

    cfg.spool_dir = tmp.path().join("spool");
    cfg.client.tls.client_cert = Some(pki.join("client.pem"));
    cfg.client.tls.client_key = Some(pki.join("client.key"));
    let out = MqttOutput::start(cfg).unwrap();
    out.publish_devices(observation("agent-tls", 1)).unwrap();
    wait_for(
        "the message over TLS",
        Duration::from_secs(10),
        || out.stats().spool_depth == 0 && !sub.seqs().is_empty(),
        || format!("{:?} {:?}", out.stats(), out.last_error()),
    )
    .await;
    assert_eq!(sub.seqs(), vec![1]);
    assert!(out.stats().connected);
    out.shutdown(Duration::from_secs(5)).await;
    wait_for(
        "the offline status over TLS",
        Duration::from_secs(5),
        || sub.statuses().iter().any(|(v, _)| v["state"] == "offline"),
        || format!("{:?}", sub.statuses()),
    )
    .await;
    eprintln!("tls: in {:?}", started.elapsed());
}
