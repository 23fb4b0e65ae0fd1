//! The real `ward-agent` binary end to end: fixture captures in, observations out through a
//! real Mosquitto broker that is killed and restarted mid-stream (every device still arrives),
//! and through JSON lines; and no patient canary (`ward_canary`: every component, prefixes,
//! every encoding) in any MQTT message, JSON line, debug log line, spool file or broker
//! persistence file — scanned while the processes run and after.
//!
//! No fixed sleeps: every step waits on state (SUBACK received, a message delivered, the spool
//! holding the devices, a stats log line), and the broker's port is leased
//! (`common::lease_port`), so tests running in parallel never collide.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{
    device_keys_of, fixtures, lease_port, public_captures, read_spool_file, scanner,
    spool_messages, wait_until, AGENT,
};
use ward_testkit::Mosquitto;

/// Mosquitto on `port` in `dir`. Persistence with a 1 s autosave keeps the subscriber's QoS 1
/// session across the SIGKILL, so messages the agent resends after the restart are queued for
/// it; every line logged, for the waits on its SUBACKs.
fn start_broker(dir: &Path, port: u16) -> Mosquitto {
    let global = format!(
        "allow_anonymous true\npersistence true\nautosave_interval 1\n\
         persistence_location {}/\nlog_type all",
        dir.display()
    );
    Mosquitto::start(dir, port, &global, "", &[])
}

/// Lines `mosquitto_sub` printed, collected by a thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// `mosquitto_sub` printing every message on `ward/v1/#` as one `topic payload` line; it
/// reconnects by itself when the broker comes back (`-c` keeps its session, QoS 1).
fn subscribe(port: u16, id: &str) -> (Child, Lines) {
    let mut child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "ward/v1/#",
            "-q",
            "1",
        ])
        .args(["-c", "-i", id, "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub is required (apt-get install mosquitto-clients)");
    let out = child.stdout.take().unwrap();
    let lines = Lines::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.0.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

/// `topic payload` lines of device messages.
fn device_messages(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, _)| t.starts_with("ward/v1/") && t.ends_with("/devices"))
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
        .collect()
}

fn device_keys(lines: &[String]) -> BTreeSet<String> {
    device_messages(lines)
        .iter()
        .flat_map(|(_, p)| device_keys_of(p.as_bytes()))
        .collect()
}

/// An agent configuration file: `batch_interval_secs` is only settable there. Waits on state
/// make the interval irrelevant to correctness; 1 s keeps the test short.
fn config(dir: &Path, batch_secs: u64) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!("batch_interval_secs = {batch_secs}\nsnapshot_interval_secs = 3600\n"),
    )
    .unwrap();
    p
}

const FILES: [&str; 4] = [
    "dicom-dcmtk.pcap",
    "dicom-pynetdicom.pcap",
    "hl7-mllp.pcap",
    "dhcp.pcap",
];

/// Devices every run must report.
const EXPECTED: [&str; 5] = [
    "mac:02:57:41:52:44:0a",
    "mac:02:57:41:52:44:0b",
    "mac:02:57:41:52:44:20",
    "mac:00:a0:37:9a:53:de",
    "mac:00:12:21:aa:bb:01",
];

#[test]
fn broker_killed_mid_stream_loses_no_observation() {
    let scanner = scanner();
    let dir = tempfile::tempdir().unwrap();
    let port = lease_port();
    let mut broker = start_broker(dir.path(), port);
    let sub_id = format!("ward-e2e-sub-{}", std::process::id());
    let (mut sub, lines) = subscribe(port, &sub_id);
    // The subscription is in place (the broker sent the SUBACK), and on disk: the broker's
    // autosave ran after it, so the subscriber's session survives the SIGKILL below.
    let suback = format!("Sending SUBACK to {sub_id}");
    wait_until(
        "the broker's SUBACK to mosquitto_sub",
        Duration::from_secs(10),
        || broker.log_text().contains(&suback).then_some(()),
        || broker.log_text(),
    );
    let subscribed_at = SystemTime::now();
    let db = dir.path().join("mosquitto.db");
    wait_until(
        "mosquitto to save the subscriber's session",
        Duration::from_secs(10),
        || {
            std::fs::metadata(&db)
                .and_then(|m| m.modified())
                .ok()
                .filter(|t| *t > subscribed_at)
        },
        || format!("{} not written since the SUBACK", db.display()),
    );

    let spool = dir.path().join("spool");
    let log_path = dir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // Feed the captures through stdin so the stream can be paused while the broker is down.
    let mut agent = Command::new(AGENT)
        .args(["read", "-", "--site", "e2e", "--agent-id", "agent-1"])
        .arg("--config")
        .arg(config(dir.path(), 1))
        .args(["--output", &format!("mqtt://127.0.0.1:{port}")])
        .arg("--spool-dir")
        .arg(&spool)
        .args([
            "--stats-interval",
            "1",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ])
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    // One pcap stream made of the first fixture, then the rest of the packets of the others
    // appended as records (same link type, so a single header suffices).
    let first = std::fs::read(fixtures().join(FILES[0])).unwrap();
    stdin.write_all(&first).unwrap();
    stdin.flush().unwrap();
    // The first batch is delivered through the broker: then kill it.
    let before_kill = wait_until(
        "the first device message at the subscriber",
        Duration::from_secs(30),
        || {
            let keys = device_keys(&lines.snapshot());
            (!keys.is_empty()).then_some(keys)
        },
        || std::fs::read_to_string(&log_path).unwrap_or_default(),
    );
    broker.kill();
    for f in &FILES[1..] {
        let bytes = std::fs::read(fixtures().join(f)).unwrap();
        stdin.write_all(&bytes[24..]).unwrap();
    }
    stdin.flush().unwrap();
    // While the broker is down the agent keeps working and spools: wait until the spool holds
    // every expected device the subscriber has not seen yet, scanning each spooled message as
    // it is (the agent is running).
    let missing: BTreeSet<String> = EXPECTED
        .iter()
        .map(|k| (*k).to_owned())
        .filter(|k| !before_kill.contains(k))
        .collect();
    assert!(!missing.is_empty(), "every device arrived before the kill");
    let mut scanned = BTreeSet::new();
    wait_until(
        "the spool to hold the devices read while the broker was down",
        Duration::from_secs(30),
        || {
            let mut keys = BTreeSet::new();
            for f in spool_messages(&spool) {
                let Some((topic, payload)) = read_spool_file(&f) else {
                    continue; // acknowledged (deleted) between listing and reading
                };
                if scanned.insert(f.clone()) {
                    scanner.assert_clean(
                        &format!("spool file {} (agent running)", f.display()),
                        &payload,
                    );
                    scanner.assert_clean("spool topic", &topic);
                }
                keys.extend(device_keys_of(&payload));
            }
            missing.is_subset(&keys).then_some(())
        },
        || {
            format!(
                "spool {:?}\nagent log:\n{}",
                spool_messages(&spool),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        },
    );
    // The raw files too, headers and all, while the agent runs.
    scanner.assert_dir_clean("spool directory (broker down)", &spool);
    broker.restart();
    drop(stdin);
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exited with {status}");

    let keys = wait_until(
        "every device at the subscriber",
        Duration::from_secs(30),
        || {
            let keys = device_keys(&lines.snapshot());
            EXPECTED.iter().all(|k| keys.contains(*k)).then_some(keys)
        },
        || format!("got {:?}", device_keys(&lines.snapshot())),
    );
    let _ = sub.kill();
    let _ = sub.wait();
    for k in EXPECTED {
        assert!(keys.contains(k), "device {k} never arrived; got {keys:?}");
    }
    let all = lines.snapshot();
    // Sequence numbers of device messages: gap-free from 1.
    let mut seqs = BTreeSet::new();
    for (_, p) in device_messages(&all) {
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        seqs.insert(v["seq"].as_u64().unwrap());
    }
    let max = *seqs.iter().max().unwrap();
    assert_eq!(
        seqs.len() as u64,
        max,
        "gap in observation sequence numbers: {seqs:?}"
    );
    // The spool drained, and nothing anywhere holds patient data.
    let left = spool_messages(&spool);
    assert!(left.is_empty(), "spool not drained: {left:?}");
    scanner.assert_clean("MQTT messages", all.join("\n"));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("\"DEBUG\""),
        "the agent logged nothing at debug level: the scan below would not cover debug logging"
    );
    scanner.assert_clean("agent log (debug)", &log);
    let files = scanner.assert_dir_clean("spool directory (after the run)", &spool);
    assert!(
        !files.is_empty(),
        "the spool directory holds not even its id lease"
    );
    broker.kill();
    scanner.assert_file_clean("broker persistence", &db);
}

/// A TCP listener that accepts connections and never answers (an MQTT broker that never sends
/// CONNACK): everything the agent publishes stays in its spool. Keeps what it received.
fn silent_broker() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (port, received)
}

fn all_fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .chain(
            std::fs::read_dir(public_captures())
                .expect("../shared/captures/public/ beside the checkout"),
        )
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    files
}

/// Every fixture through `read` twice, logging at trace level: to JSON lines, and to MQTT with
/// a broker that never acknowledges, so every observation stays in the spool. The JSON lines,
/// the logs, every spool file (read back and raw) and the bytes the agent sent the broker hold
/// no canary.
#[test]
fn jsonl_output_log_and_spool_hold_no_patient_data() {
    let scanner = scanner();
    let dir = tempfile::tempdir().unwrap();
    let files = all_fixture_files();

    // JSON lines.
    let out = dir.path().join("out.jsonl");
    let result = Command::new(AGENT)
        .arg("read")
        .args(&files)
        .args(["--output", &format!("jsonl:{}", out.display())])
        .args(["--log-level", "trace", "--log-format", "json"])
        .arg("--spool-dir")
        .arg(dir.path().join("unused-spool"))
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_LOG")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().count() >= 2);
    for k in EXPECTED {
        assert!(text.contains(k), "{k} missing from JSONL output");
    }
    let log = String::from_utf8_lossy(&result.stderr);
    scanner.assert_clean("JSONL output", &text);
    scanner.assert_clean("log (trace, JSON lines run)", log.as_bytes());
    scanner.assert_clean("stdout (JSON lines run)", &result.stdout);

    // MQTT with a broker that never answers: everything is spooled, and stays.
    let (port, received) = silent_broker();
    let spool = dir.path().join("spool");
    let result = Command::new(AGENT)
        .arg("read")
        .args(&files)
        .args(["--output", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--log-level", "trace", "--log-format", "text"])
        .arg("--spool-dir")
        .arg(&spool)
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_LOG")
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let msgs = spool_messages(&spool);
    assert!(!msgs.is_empty(), "nothing spooled");
    let mut keys = BTreeSet::new();
    for m in &msgs {
        let (topic, payload) =
            read_spool_file(m).unwrap_or_else(|| panic!("{} is not a spool message", m.display()));
        assert!(topic.ends_with("/devices"), "{topic}");
        keys.extend(device_keys_of(&payload));
        scanner.assert_clean(&format!("spool message {}", m.display()), &payload);
    }
    for k in EXPECTED {
        assert!(keys.contains(k), "{k} missing from the spool: {keys:?}");
    }
    let spooled = scanner.assert_dir_clean("spool directory", &spool);
    assert!(
        spooled.len() > msgs.len(),
        "the id lease file was not scanned"
    );
    scanner.assert_clean(
        "log (trace, MQTT run)",
        String::from_utf8_lossy(&result.stderr).as_bytes(),
    );
    let sent = received.lock().unwrap().clone();
    assert!(!sent.is_empty(), "the agent never connected to the broker");
    scanner.assert_clean("bytes sent to the broker", &sent);
}

/// SIGTERM while the input is still open flushes the devices read so far. The batch and
/// snapshot timers are an hour, so only the final flush can write them.
#[test]
fn sigterm_flushes_devices_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut agent = Command::new(AGENT)
        .args(["read", "-", "--output", &format!("jsonl:{}", out.display())])
        .arg("--config")
        .arg(config(dir.path(), 3600))
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .args(["--stats-interval", "1", "--log-level", "debug"])
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    stdin
        .write_all(&std::fs::read(fixtures().join("dhcp.pcap")).unwrap())
        .unwrap();
    stdin.flush().unwrap();
    // Wait until a stats line shows the device in the table.
    let (tx, rx) = mpsc::channel();
    let err = agent.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            log2.lock().unwrap().push_str(&line);
            log2.lock().unwrap().push('\n');
            let _ = tx.send(line);
        }
    });
    let has_device = |l: &str| {
        l.contains("stats")
            && l.split_whitespace().any(|w| {
                w.strip_prefix("devices=")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= 1)
            })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if has_device(&l) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "no stats line with a device ({e}):\n{}",
                log.lock().unwrap()
            ),
        }
    }
    assert!(
        std::fs::read_to_string(&out).unwrap_or_default().is_empty(),
        "something was published before the signal: the test would not prove the final flush"
    );
    // The input is still open: only the signal can end the run.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_until(
        "the agent to stop on SIGTERM",
        Duration::from_secs(15),
        || agent.try_wait().unwrap(),
        String::new,
    );
    drop(stdin);
    assert!(status.success(), "exit status {status}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("mac:00:12:21:aa:bb:01"),
        "final flush missing: {text}"
    );
    scanner().assert_clean("JSONL output", &text);
    scanner().assert_clean("log (debug)", log.lock().unwrap().as_bytes());
}
