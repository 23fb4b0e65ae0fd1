//! The real `ward-agent` binary end to end: fixture captures in, observations out through a
//! real Mosquitto broker that is killed and restarted mid-stream (every device still arrives),
//! and through JSON lines; and no patient canary in any output, log line or spool file.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_ward-agent");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker {
    child: Child,
    conf: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            // Persistence with a 1 s autosave keeps the subscriber's QoS 1 session across the
            // SIGKILL, so messages the agent resends after the restart are queued for it.
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 autosave_interval 1\npersistence_location {}/\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "mosquitto is required (apt-get install mosquitto; scripts/test.sh installs it)",
            );
        let b = Broker { child, conf };
        wait_port(port);
        b
    }

    fn restart(&mut self, port: u16) {
        self.child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `mosquitto_sub` printing every message on `ward/v1/#` as one line; it reconnects by itself
/// when the broker comes back (`-c` keeps its session, QoS 1).
fn subscribe(port: u16, id: &str) -> (Child, mpsc::Receiver<String>) {
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
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn device_keys(lines: &[String]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for l in lines {
        let Some((topic, payload)) = l.split_once(' ') else {
            continue;
        };
        if !topic.ends_with("/devices") {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        for d in v["devices"].as_array().unwrap() {
            keys.insert(d["key"].as_str().unwrap().to_owned());
        }
    }
    keys
}

fn canaries() -> Vec<String> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for f in m["fixtures"].as_array().unwrap() {
        for c in f["canaries"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap();
            for part in c.split(['^', ' ']) {
                if (part.to_ascii_uppercase().contains("CANARY") || !c.contains("CANARY"))
                    && part.len() >= 4
                {
                    out.push(part.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

fn assert_no_canary(what: &str, text: &str) {
    let t = text.to_ascii_lowercase();
    for c in canaries() {
        assert!(!t.contains(&c), "patient canary {c:?} found in {what}");
    }
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
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port);
    let (mut sub, rx) = subscribe(port, "ward-e2e-sub");
    std::thread::sleep(Duration::from_millis(300));
    let spool = dir.path().join("spool");
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    // Feed the captures through stdin so the stream can be paused while the broker is down.
    let mut agent = Command::new(AGENT)
        .args(["read", "-", "--site", "e2e", "--agent-id", "agent-1"])
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
    // Let the agent cut and send a batch (batch interval 5 s by default; the stats tick
    // publishes status each second), then kill the broker.
    std::thread::sleep(Duration::from_millis(5500));
    broker.kill();
    for f in &FILES[1..] {
        let bytes = std::fs::read(fixtures().join(f)).unwrap();
        stdin.write_all(&bytes[24..]).unwrap();
    }
    stdin.flush().unwrap();
    // While the broker is down, the agent keeps working and spools.
    std::thread::sleep(Duration::from_millis(5500));
    let spooled: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "msg"))
        .collect();
    assert!(
        !spooled.is_empty(),
        "nothing spooled while the broker was down"
    );
    for f in &spooled {
        assert_no_canary(
            &format!("spool file {}", f.display()),
            &String::from_utf8_lossy(&std::fs::read(f).unwrap()),
        );
    }
    broker.restart(port);
    drop(stdin);
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exited with {status}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
        let keys = device_keys(&lines);
        if EXPECTED.iter().all(|k| keys.contains(*k)) || Instant::now() > deadline {
            break;
        }
    }
    let _ = sub.kill();
    let keys = device_keys(&lines);
    for k in EXPECTED {
        assert!(keys.contains(k), "device {k} never arrived; got {keys:?}");
    }
    // Sequence numbers of device messages: gap-free from 1.
    let mut seqs = BTreeSet::new();
    for l in &lines {
        if let Some((t, p)) = l.split_once(' ') {
            if t.ends_with("/devices") {
                let v: serde_json::Value = serde_json::from_str(p).unwrap();
                seqs.insert(v["seq"].as_u64().unwrap());
            }
        }
    }
    let max = *seqs.iter().max().unwrap();
    assert_eq!(
        seqs.len() as u64,
        max,
        "gap in observation sequence numbers: {seqs:?}"
    );
    // The spool drained, and nothing anywhere holds patient data.
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "msg"))
        .collect();
    assert!(left.is_empty(), "spool not drained: {left:?}");
    assert_no_canary("MQTT messages", &lines.join("\n"));
    assert_no_canary(
        "agent log",
        &std::fs::read_to_string(dir.path().join("agent.log")).unwrap(),
    );
}

#[test]
fn jsonl_output_log_and_spool_hold_no_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .chain(std::fs::read_dir(fixtures().join("public")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    let result = Command::new(AGENT)
        .arg("read")
        .args(&files)
        .args(["--output", &format!("jsonl:{}", out.display())])
        .args(["--log-level", "trace", "--log-format", "json"])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .env_remove("WARD_CONFIG")
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
    assert_no_canary("JSONL output", &text);
    assert_no_canary("log", &String::from_utf8_lossy(&result.stderr));
}

#[test]
fn sigterm_flushes_devices_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut agent = Command::new(AGENT)
        .args(["read", "-", "--output", &format!("jsonl:{}", out.display())])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .env_remove("WARD_CONFIG")
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
    std::thread::sleep(Duration::from_millis(800));
    // The input is still open: only the signal can end the run.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = agent.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    assert!(status.success(), "exit status {status}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("mac:00:12:21:aa:bb:01"),
        "final flush missing: {text}"
    );
}
