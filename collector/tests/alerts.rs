//! Alerts against real peers: the embedded broker and a real Mosquitto (started per test on a
//! free port with a generated configuration in a temporary directory) with a real rumqttc
//! subscriber, and a real HTTP/1.1 webhook receiver (a `TcpListener` server on a thread,
//! plain or TLS). The last test drives the whole library path: ingest → evaluate → notify.
//!
//! Needs `mosquitto` and `openssl`; a missing binary fails the tests.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::tokio_rustls::rustls;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use ward_collector::alerts::{AlertConfig, AlertMqtt, Alerter};
use ward_collector::compliance::flags::FlagConfig;
use ward_collector::import::model::{
    Contract, NoticeMonths, PatchSla, ProductPattern, RemoteAccess,
};
use ward_collector::ingest;
use ward_collector::mqtt::broker::{BrokerConfig, EmbeddedBroker};
use ward_collector::store::{Applied, FlagRow, Message, Store};
use ward_mqtt::ClientConfig;
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, Kind, MacKind, Observation, Seen, SCHEMA,
};
use ward_protocols::MacAddr;

use common::init_logs;

// ---------------------------------------------------------------------------------------------
// Helpers

const T0_US: i64 = 1_767_225_600_000_000;

fn device_flag(id: i64, kind: &str, site: &str, resolved: bool) -> FlagRow {
    FlagRow {
        id,
        kind: kind.into(),
        subject: "device:42".into(),
        detail: "1.0".into(),
        severity: "medium".into(),
        status: if resolved { "resolved" } else { "open" }.into(),
        summary: format!("ACME Scanner: {kind}"),
        evidence: json!({
            "device": {
                "device_id": 42,
                "seen_by": [
                    {"site": site, "agent_id": "agent-1", "vlan": 10},
                    {"site": site, "agent_id": "agent-2", "vlan": null},
                ],
            },
        }),
        opened_us: T0_US,
        last_true_us: T0_US + 60_000_000,
        resolved_us: resolved.then_some(T0_US + 120_000_000),
    }
}

fn asset_flag(id: i64) -> FlagRow {
    FlagRow {
        id,
        kind: "asset_not_seen".into(),
        subject: "asset:A-1".into(),
        detail: String::new(),
        severity: "low".into(),
        status: "open".into(),
        summary: "asset A-1 not seen for 30 days".into(),
        evidence: json!({"asset": {"tag": "A-1"}}),
        opened_us: T0_US,
        last_true_us: T0_US,
        resolved_us: None,
    }
}

fn applied(opened: Vec<FlagRow>, resolved: Vec<FlagRow>) -> Applied {
    Applied {
        opened,
        resolved,
        ..Applied::default()
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One received MQTT message.
#[derive(Debug)]
struct Got {
    topic: String,
    qos: QoS,
    retain: bool,
    body: Value,
}

/// A real MQTT client subscribed to every alert (QoS 1).
struct Subscriber {
    rx: mpsc::UnboundedReceiver<Got>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects, subscribes and returns once the broker confirmed the subscription. With
    /// `persistent`, the session outlives the connection (and a broker restart).
    async fn start(port: u16, id: &str, persistent: bool) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5))
            .set_clean_session(!persistent);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        client
                            .subscribe("ward/v1/alerts/#", QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let body = serde_json::from_slice(&p.payload).unwrap();
                        let _ = tx.send(Got {
                            topic: p.topic,
                            qos: p.qos,
                            retain: p.retain,
                            body,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx.recv())
            .await
            .expect("no SUBACK");
        Subscriber { rx, task }
    }

    async fn recv(&mut self, n: usize) -> Vec<Got> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(g)) => out.push(g),
                _ => panic!("received {} of {n} messages: {out:#?}", out.len()),
            }
        }
        out
    }

    async fn expect_nothing(&mut self, quiet: Duration) {
        if let Ok(Some(g)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            panic!("unexpected message: {g:#?}");
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn assert_alert(g: &Got, topic: &str, event: &str, flag_id: i64) {
    assert_eq!(g.topic, topic, "{g:#?}");
    assert_eq!(g.qos, QoS::AtLeastOnce, "{g:#?}");
    assert!(!g.retain, "{g:#?}");
    assert_eq!(g.body["schema"], "ward.alert.v1");
    assert_eq!(g.body["event"], event, "{g:#?}");
    assert_eq!(g.body["flag"]["id"], flag_id, "{g:#?}");
}

fn embedded_broker() -> (EmbeddedBroker, u16) {
    let mut broker = EmbeddedBroker::new(&BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..BrokerConfig::default()
    })
    .unwrap();
    let addr = broker.listen().unwrap();
    (broker, addr.port())
}

fn mqtt_only(collector: &str) -> AlertConfig {
    AlertConfig {
        collector_id: Some(collector.into()),
        ..AlertConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// A real HTTP/1.1 webhook receiver

/// One request as received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

type Respond = dyn Fn(usize, &Request) -> u16 + Send + Sync;

/// A threaded HTTP/1.1 server: answers each request with the status `respond` picks (given the
/// request's index), `Connection: close`. Stops on drop.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(listener: TcpListener, respond: Box<Respond>) -> Receiver {
        Receiver::start_with(listener, respond, None)
    }

    fn start_with(
        listener: TcpListener,
        respond: Box<Respond>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("accept: {e}"),
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let result = match &tls {
                    None => serve_one(stream, &reqs, &*respond),
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                        serve_one(rustls::StreamOwned::new(conn, stream), &reqs, &*respond)
                    }
                };
                if let Err(e) = result {
                    eprintln!("webhook receiver: {e}");
                }
            }
        });
        Receiver {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/ward", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, `Content-Length` body), records it, answers.
fn serve_one<S: Read + Write>(
    stream: S,
    requests: &Mutex<Vec<Request>>,
    respond: &Respond,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let request = Request {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let status = {
        let mut all = requests.lock().unwrap();
        let status = respond(all.len(), &request);
        all.push(request);
        status
    };
    let reason = if status == 200 { "OK" } else { "Nope" };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
         Connection: close\r\n\r\nnope"
    );
    let stream = reader.get_mut();
    stream.write_all(answer.as_bytes())?;
    stream.flush()
}

fn webhook_cfg(url: &str, dir: &Path) -> AlertConfig {
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    AlertConfig {
        collector_id: Some("collector-test".into()),
        webhook_url: Some(url.into()),
        webhook_bearer_token_file: Some(token),
        webhook_max_attempts: 20,
        webhook_timeout_secs: 5,
        webhook_backoff_initial_ms: 50,
        webhook_backoff_max_ms: 200,
        ..AlertConfig::default()
    }
}

fn listen_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

// ---------------------------------------------------------------------------------------------
// (a) Embedded broker

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_publishes_per_site_and_global() {
    init_logs();
    let (broker, port) = embedded_broker();
    let mut sub = Subscriber::start(port, "viewer", false).await;
    let alerter = Alerter::start(
        &mqtt_only("collector-a"),
        AlertMqtt::Embedded(broker.linker()),
    )
    .unwrap();

    alerter.notify(&applied(
        vec![device_flag(
            1,
            "software_version_unsupported",
            "north",
            false,
        )],
        vec![device_flag(2, "no_contract", "north", true)],
    ));
    let got = sub.recv(2).await;
    assert_alert(&got[0], "ward/v1/alerts/north", "opened", 1);
    assert_alert(&got[1], "ward/v1/alerts/north", "resolved", 2);
    let opened = &got[0].body;
    assert_eq!(opened["site"], "north");
    assert_eq!(opened["collector"], "collector-a");
    assert_eq!(opened["flag"]["kind"], "software_version_unsupported");
    assert_eq!(opened["flag"]["subject"], "device:42");
    assert_eq!(opened["flag"]["detail"], "1.0");
    assert_eq!(opened["flag"]["severity"], "medium");
    assert_eq!(opened["flag"]["opened_at"], "2026-01-01T00:00:00Z");
    assert_eq!(opened["flag"]["resolved_at"], Value::Null);
    assert_eq!(opened["flag"]["evidence"]["device"]["device_id"], 42);
    assert_eq!(got[1].body["flag"]["resolved_at"], "2026-01-01T00:02:00Z");

    alerter.notify(&applied(vec![asset_flag(3)], vec![]));
    let got = sub.recv(1).await;
    assert_alert(&got[0], "ward/v1/alerts/_global", "opened", 3);
    assert_eq!(got[0].body["site"], Value::Null);

    // Nothing to say: nothing sent.
    alerter.notify(&Applied::default());
    sub.expect_nothing(Duration::from_millis(300)).await;

    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.published, 3, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    tokio::task::block_in_place(|| broker.shutdown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    init_logs();
    let (broker, port) = embedded_broker();
    let mut sub = Subscriber::start(port, "viewer", false).await;
    let cfg = AlertConfig {
        queue_capacity: 3,
        ..mqtt_only("c")
    };
    let alerter = Alerter::start(&cfg, AlertMqtt::Embedded(broker.linker())).unwrap();
    // One call with 5 messages: the queue keeps the last 3 whatever the task managed.
    let flags: Vec<FlagRow> = (1..=5).map(asset_flag).collect();
    alerter.notify(&applied(flags, vec![]));
    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.dropped, 2, "{stats:?}");
    assert_eq!(stats.published, 3, "{stats:?}");
    let ids: Vec<Value> = sub
        .recv(3)
        .await
        .iter()
        .map(|g| g.body["flag"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!(3), json!(4), json!(5)]);
    tokio::task::block_in_place(|| broker.shutdown());
}

// ---------------------------------------------------------------------------------------------
// (b) External broker: Mosquitto

/// Mosquitto on `port` with persistence in `dir`, as `common::mosquitto` configures it; start
/// it again with the same `dir` and port to restart the broker.
fn mosquitto_on(dir: &Path, port: u16) -> common::Mosquitto {
    common::mosquitto_on(dir, port)
        .unwrap_or_else(|| panic!("port {port} taken: mosquitto cannot start on it"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_gets_per_site_and_global_alerts() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let (_mosq, port) = common::mosquitto(tmp.path());
    let mut sub = Subscriber::start(port, "viewer", false).await;
    let ext = ClientConfig::new(format!("mqtt://127.0.0.1:{port}"), "ward-collector-alerts");
    let alerter = Alerter::start(&mqtt_only("collector-b"), AlertMqtt::External(ext)).unwrap();

    alerter.notify(&applied(
        vec![device_flag(
            1,
            "software_version_unsupported",
            "north",
            false,
        )],
        vec![device_flag(2, "no_contract", "north", true)],
    ));
    alerter.notify(&applied(vec![asset_flag(3)], vec![]));
    let got = sub.recv(3).await;
    assert_alert(&got[0], "ward/v1/alerts/north", "opened", 1);
    assert_alert(&got[1], "ward/v1/alerts/north", "resolved", 2);
    assert_alert(&got[2], "ward/v1/alerts/_global", "opened", 3);
    assert_eq!(got[0].body["collector"], "collector-b");

    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.published, 3, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
}

/// Alerts raised while the broker is down (stopped, then restarted on the same port) are kept
/// and published, in order, after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restart_loses_no_alert() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut mosq = mosquitto_on(tmp.path(), port);
    // A persistent QoS 1 session: the broker keeps what arrives while the viewer reconnects.
    let mut sub = Subscriber::start(port, "viewer-persistent", true).await;
    let ext = ClientConfig::new(format!("mqtt://127.0.0.1:{port}"), "ward-collector-alerts");
    let alerter = Alerter::start(&mqtt_only("c"), AlertMqtt::External(ext)).unwrap();
    alerter.notify(&applied(vec![asset_flag(1)], vec![]));
    assert_alert(&sub.recv(1).await[0], "ward/v1/alerts/_global", "opened", 1);

    // The broker has exited (sigterm waits for it): no PUBACK can come until it is back, so
    // nothing needs waiting for before checking that the two alerts are held, not published.
    mosq.sigterm();
    alerter.notify(&applied(vec![asset_flag(2), asset_flag(3)], vec![]));
    assert_eq!(alerter.stats().published, 1);
    assert_eq!(alerter.stats().dropped, 0);
    let _mosq = mosquitto_on(tmp.path(), port);

    // QoS 1 is at least once: the restarted broker may deliver alert 1 to the persistent
    // session again (its PUBACK not yet stored when the broker stopped). Receivers deduplicate
    // on the flag id and event (docs/schema/alert-v1.md); so does this one.
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(
            sub.recv(1)
                .await
                .into_iter()
                .filter(|g| g.body["flag"]["id"] != 1),
        );
    }
    assert_alert(&got[0], "ward/v1/alerts/_global", "opened", 2);
    assert_alert(&got[1], "ward/v1/alerts/_global", "opened", 3);
    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.published, 3, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
}

/// A TCP proxy that can swallow everything (a dead path the peers have not noticed yet) and
/// cut every connection.
struct Proxy {
    port: u16,
    blackhole: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (hole, all) = (blackhole.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let mut all = all.lock().unwrap();
                all.push(tokio::spawn(pipe(cr, sw, hole.clone())));
                all.push(tokio::spawn(pipe(sr, cw, hole.clone())));
            }
        });
        Proxy {
            port,
            blackhole,
            conns,
            task,
        }
    }

    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackhole: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackhole.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Messages written to a connection that died before the broker acknowledged them are
/// published again, in order, after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_alerts_are_republished_after_a_reconnect() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let (_mosq, port) = common::mosquitto(tmp.path());
    let mut sub = Subscriber::start(port, "viewer", false).await;
    let proxy = Proxy::start(port).await;
    let ext = ClientConfig::new(format!("mqtt://127.0.0.1:{}", proxy.port), "alerts");
    let alerter = Alerter::start(&mqtt_only("c"), AlertMqtt::External(ext)).unwrap();
    alerter.notify(&applied(vec![asset_flag(1)], vec![]));
    assert_alert(&sub.recv(1).await[0], "ward/v1/alerts/_global", "opened", 1);
    // The subscriber can have the message before the publisher has its PUBACK: wait for the
    // acknowledgement, or the blackhole below would swallow it.
    wait_until(
        "the first alert acknowledged",
        Duration::from_secs(10),
        || alerter.stats().published == 1,
    )
    .await;

    proxy.blackhole.store(true, Ordering::SeqCst);
    alerter.notify(&applied(vec![asset_flag(2), asset_flag(3)], vec![]));
    sub.expect_nothing(Duration::from_millis(500)).await;
    assert_eq!(alerter.stats().published, 1);
    proxy.cut();
    proxy.blackhole.store(false, Ordering::SeqCst);

    let got = sub.recv(2).await;
    assert_alert(&got[0], "ward/v1/alerts/_global", "opened", 2);
    assert_alert(&got[1], "ward/v1/alerts/_global", "opened", 3);
    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.published, 3, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_fail_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_url = ClientConfig::new("http://broker", "id");
    assert!(Alerter::start(&AlertConfig::default(), AlertMqtt::External(bad_url)).is_err());
    let missing_token = AlertConfig {
        webhook_url: Some("http://127.0.0.1:9/".into()),
        webhook_bearer_token_file: Some(tmp.path().join("missing")),
        ..AlertConfig::default()
    };
    let e = Alerter::start(&missing_token, AlertMqtt::None).unwrap_err();
    assert!(e.to_string().contains("webhook_bearer_token_file"), "{e}");
    let no_attempts = AlertConfig {
        webhook_max_attempts: 0,
        ..webhook_cfg("http://127.0.0.1:9/", tmp.path())
    };
    assert!(Alerter::start(&no_attempts, AlertMqtt::None).is_err());
}

// ---------------------------------------------------------------------------------------------
// (c) Webhook

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_until_accepted() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(listen_any(), Box::new(|i, _| if i < 2 { 503 } else { 200 }));
    let alerter =
        Alerter::start(&webhook_cfg(&receiver.url(), tmp.path()), AlertMqtt::None).unwrap();
    alerter.notify(&applied(
        vec![device_flag(
            9,
            "software_version_unsupported",
            "north",
            false,
        )],
        vec![],
    ));
    wait_until("delivered", Duration::from_secs(10), || {
        alerter.stats().webhook_delivered == 1
    })
    .await;
    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.webhook_failed_attempts, 2, "{stats:?}");
    assert_eq!(stats.webhook_abandoned, 0, "{stats:?}");

    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/ward");
        assert_eq!(r.headers["authorization"], "Bearer s3cret-token");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.body, reqs[0].body, "every attempt carries the same alert");
    }
    assert_eq!(reqs[0].body["schema"], "ward.alert.v1");
    assert_eq!(reqs[0].body["event"], "opened");
    assert_eq!(reqs[0].body["site"], "north");
    assert_eq!(reqs[0].body["flag"]["id"], 9);
    assert_eq!(reqs[0].body["collector"], "collector-test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_at_first_gets_the_alert_once_up() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port(); // closed: nothing listens yet
    let url = format!("http://127.0.0.1:{port}/hooks/ward");
    let alerter = Alerter::start(&webhook_cfg(&url, tmp.path()), AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(5)], vec![]));
    wait_until("two refused attempts", Duration::from_secs(10), || {
        alerter.stats().webhook_failed_attempts >= 2
    })
    .await;
    assert_eq!(alerter.stats().webhook_delivered, 0);

    let receiver = Receiver::start(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Box::new(|_, _| 200),
    );
    wait_until("delivered", Duration::from_secs(10), || {
        alerter.stats().webhook_delivered == 1
    })
    .await;
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].body["flag"]["id"], 5);
    assert_eq!(reqs[0].body["site"], Value::Null);
    alerter.shutdown(Duration::from_secs(5)).await;
}

/// A message every attempt of which fails is given up; the next ones follow, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gives_up_then_carries_on_in_order() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        listen_any(),
        Box::new(|_, r| if r.body["flag"]["id"] == 1 { 500 } else { 200 }),
    );
    let cfg = AlertConfig {
        webhook_max_attempts: 3,
        ..webhook_cfg(&receiver.url(), tmp.path())
    };
    let alerter = Alerter::start(&cfg, AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(1), asset_flag(2)], vec![]));
    alerter.notify(&applied(vec![asset_flag(3)], vec![]));
    wait_until("two delivered", Duration::from_secs(10), || {
        alerter.stats().webhook_delivered == 2
    })
    .await;
    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.webhook_abandoned, 1, "{stats:?}");
    assert_eq!(stats.webhook_failed_attempts, 3, "{stats:?}");
    let ids: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r.body["flag"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(1), json!(1), json!(2), json!(3)]);
}

/// At shutdown, a retry waiting for a long backoff goes at once; what still fails is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_it_can() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        listen_any(),
        Box::new(|i, _| if i == 0 { 503 } else { 200 }),
    );
    let cfg = AlertConfig {
        webhook_backoff_initial_ms: 60_000,
        webhook_backoff_max_ms: 60_000,
        ..webhook_cfg(&receiver.url(), tmp.path())
    };
    let alerter = Alerter::start(&cfg, AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(1), asset_flag(2)], vec![]));
    wait_until("first attempt failed", Duration::from_secs(10), || {
        alerter.stats().webhook_failed_attempts == 1
    })
    .await;
    let started = Instant::now();
    let stats = alerter.shutdown(Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.webhook_delivered, 2, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");

    // A receiver that never answers 2xx: the shutdown timeout bounds the wait.
    let down = common::free_port();
    let cfg = AlertConfig {
        webhook_backoff_initial_ms: 60_000,
        webhook_backoff_max_ms: 60_000,
        ..webhook_cfg(&format!("http://127.0.0.1:{down}/"), tmp.path())
    };
    let alerter = Alerter::start(&cfg, AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(1), asset_flag(2)], vec![]));
    let started = Instant::now();
    let stats = alerter.shutdown(Duration::from_millis(500)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.dropped, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhook_with_a_private_ca() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    common::make_pki(tmp.path());
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        std::fs::File::open(tmp.path().join("server.pem")).unwrap(),
    ))
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        std::fs::File::open(tmp.path().join("server.key")).unwrap(),
    ))
    .unwrap()
    .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let receiver = Receiver::start_with(listen_any(), Box::new(|_, _| 200), Some(Arc::new(server)));
    let url = format!("https://localhost:{}/hooks/ward", receiver.addr.port());
    let cfg = AlertConfig {
        webhook_ca_file: Some(tmp.path().join("ca.pem")),
        ..webhook_cfg(&url, tmp.path())
    };
    let alerter = Alerter::start(&cfg, AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(4)], vec![]));
    wait_until("delivered over TLS", Duration::from_secs(10), || {
        alerter.stats().webhook_delivered == 1
    })
    .await;
    alerter.shutdown(Duration::from_secs(5)).await;
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].headers["authorization"], "Bearer s3cret-token");
    assert_eq!(reqs[0].body["flag"]["id"], 4);

    // Without the private CA the server is not trusted: attempts fail.
    let untrusted = AlertConfig {
        webhook_ca_file: Some(tmp.path().join("client.pem")),
        webhook_max_attempts: 1,
        ..webhook_cfg(&url, tmp.path())
    };
    let alerter = Alerter::start(&untrusted, AlertMqtt::None).unwrap();
    alerter.notify(&applied(vec![asset_flag(5)], vec![]));
    wait_until("given up", Duration::from_secs(10), || {
        alerter.stats().webhook_abandoned == 1
    })
    .await;
    alerter.shutdown(Duration::from_secs(1)).await;
    assert_eq!(receiver.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// End to end: ingest → evaluate → notify → MQTT and webhook

fn observation(seq: u64, time_us: i64, version: &str) -> Message {
    let seen = Seen {
        first_us: time_us,
        last_us: time_us + 1000,
        count: 1,
    };
    let mac = MacAddr([0, 0x1b, 0x21, 0, 0, 7]);
    Message::Observation(Observation {
        schema: SCHEMA.into(),
        site: "north".into(),
        agent_id: "agent-1".into(),
        instance: "i-1".into(),
        seq,
        kind: Kind::Delta,
        time_us,
        devices: vec![DeviceRecord {
            key: format!("mac:{mac}@10"),
            mac: Some(mac),
            vlan: Some(10),
            mac_kind: Some(MacKind::Universal),
            oui_vendor: None,
            seen,
            addresses: vec![AddressRecord {
                ip: std::net::IpAddr::from([10, 0, 0, 7]),
                source: "ip".into(),
                seen,
            }],
            facts: vec![],
            services_offered: vec![],
            services_used: vec![],
            roles: vec![],
            classification: Some(ClassificationRecord {
                manufacturer: Some("ACME".into()),
                model: Some("Scanner".into()),
                device_type: "ct".into(),
                software_version: Some(version.into()),
                confidence: 0.9,
                matches: vec![],
                candidates: vec![],
                explanation: None,
            }),
        }],
    })
}

fn contract() -> Contract {
    Contract {
        id: "C-1".into(),
        supplier: "ACME".into(),
        products: vec![ProductPattern {
            manufacturer: None,
            model: "Scanner".into(),
        }],
        serials: vec![],
        asset_tags: vec![],
        quantity: None,
        sites: vec![],
        vlans: vec![],
        start: None,
        end: None,
        end_of_support: None,
        end_of_guaranteed_support: None,
        end_of_life: None,
        notice_months: NoticeMonths::default(),
        supported_software_versions: vec!["2.*".into()],
        patch_sla_days: PatchSla::default(),
        permitted_services: vec![],
        remote_access: RemoteAccess::default(),
        encryption_in_transit_required: false,
        external_communication_permitted: true,
        mds2: None,
        sbom: None,
        notes: None,
    }
}

const KIND: &str = "software_version_unsupported";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_raised_and_resolved_by_ingest_reaches_mqtt_and_the_webhook() {
    init_logs();
    let tmp = tempfile::tempdir().unwrap();
    let (broker, port) = embedded_broker();
    let mut sub = Subscriber::start(port, "viewer", false).await;
    let receiver = Receiver::start(listen_any(), Box::new(|_, _| 200));
    let alerter = Alerter::start(
        &webhook_cfg(&receiver.url(), tmp.path()),
        AlertMqtt::Embedded(broker.linker()),
    )
    .unwrap();

    let mut store = common::fresh_store();
    let now = ingest::now_us();
    let t1 = now - 30 * 60_000_000;
    let t2 = now - 20 * 60_000_000;
    store.import_contracts(&[contract()], "test", now).unwrap();
    store.ingest(&[observation(1, t1, "1.0")], t1).unwrap();
    ingest::evaluate(&mut store, &FlagConfig::default(), now).unwrap();
    // As the serve loop does: what the evaluation opened or resolved, claimed from the store.
    let first = store.take_alerts(1000).unwrap();
    let opened: Vec<&FlagRow> = first.opened.iter().filter(|f| f.kind == KIND).collect();
    assert_eq!(opened.len(), 1, "{:#?}", first.opened);
    let flag_id = opened[0].id;
    alerter.notify(&first);

    store.ingest(&[observation(2, t2, "2.1")], t2).unwrap();
    ingest::evaluate(&mut store, &FlagConfig::default(), now + 1).unwrap();
    let second = store.take_alerts(1000).unwrap();
    assert!(
        second
            .resolved
            .iter()
            .any(|f| f.kind == KIND && f.id == flag_id),
        "{:#?}",
        second.resolved
    );
    alerter.notify(&second);

    let expected =
        first.opened.len() + first.resolved.len() + second.opened.len() + second.resolved.len();
    let got = sub.recv(expected).await;
    let ours: Vec<&Got> = got
        .iter()
        .filter(|g| g.body["flag"]["kind"] == KIND)
        .collect();
    assert_eq!(ours.len(), 2, "{got:#?}");
    assert_alert(ours[0], "ward/v1/alerts/north", "opened", flag_id);
    assert_alert(ours[1], "ward/v1/alerts/north", "resolved", flag_id);
    assert_eq!(ours[0].body["flag"]["detail"], "1.0");
    assert_eq!(
        ours[0].body["flag"]["evidence"]["device"]["software_version"],
        "1.0"
    );
    assert!(ours[1].body["flag"]["resolved_at"].is_string());

    wait_until("webhook calls", Duration::from_secs(10), || {
        receiver.requests().len() == expected
    })
    .await;
    let calls: Vec<Request> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.body["flag"]["kind"] == KIND)
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].body, ours[0].body,
        "the webhook gets the MQTT message's JSON"
    );
    assert_eq!(calls[1].body, ours[1].body);

    let stats = alerter.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.published as usize, expected, "{stats:?}");
    assert_eq!(stats.webhook_delivered as usize, expected, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    tokio::task::block_in_place(|| broker.shutdown());
}
