//! Shared by the collector's end-to-end tests: real processes (ward-collector, ward-agent,
//! mosquitto), ports that cannot collide, the CLI's JSON output, and the patient-canary
//! scanner (`ward_canary`) with every canary of the fixtures and of the sample site, applied to
//! every path: logs, MQTT streams, the database with its -wal and -shm, reports.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ward_canary::{Kind, Scanner};

// ---------------------------------------------------------------------------------------------
// Patient canaries

/// The bundled sample site (`examples/sample-site.pcap`, the demo's capture): every patient
/// value `tests/captures/sample-site.sh` put on its wire (DICOM patient name, ID, birth date,
/// accession, referring physician; HL7 PID and NTE).
pub const SAMPLE_SITE_CANARIES: &[(Kind, &str)] = &[
    (Kind::Name, "CANARY^CTPATIENT^ONE"),
    (Kind::Name, "CANARY^USPATIENT^TWO"),
    (Kind::Name, "CANARY^USPATIENT^THREE"),
    (Kind::Name, "CANARY^CTPATIENT^FOUR"),
    (Kind::Name, "CANARY^REFERRER"),
    (Kind::Name, "CANARYICU^PATIENTTHREE"),
    (Kind::Name, "CANARYICU^PATIENTFOUR"),
    (Kind::Text, "CANARYNOTE"),
    (Kind::Identifier, "CANARY-MRN-1001"),
    (Kind::Identifier, "CANARY-MRN-1002"),
    (Kind::Identifier, "CANARY-MRN-1003"),
    (Kind::Identifier, "CANARY-MRN-1004"),
    (Kind::Identifier, "CANARY-MRN-2003"),
    (Kind::Identifier, "CANARY-MRN-2004"),
    (Kind::Identifier, "CANARY-ACC-1001"),
    (Kind::Identifier, "CANARY-ACC-1002"),
    (Kind::Identifier, "CANARY-ACC-1003"),
    (Kind::Identifier, "CANARY-ACC-1004"),
    (Kind::Date, "19700101"),
];

/// `examples/sample-site.pcap`.
pub fn sample_site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-site.pcap")
}

/// Every canary of `tests/fixtures/manifest.json` (all fixtures) and of the sample site: what
/// every output of these tests is scanned for — each component, case-insensitively, its
/// prefixes of 6 or more characters, raw and under every encoding `ward_canary` decodes.
pub fn canaries() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let mut s = Scanner::fixtures();
        for (kind, v) in SAMPLE_SITE_CANARIES {
            s.add("examples/sample-site.pcap", *kind, v);
        }
        s
    })
}

/// [`canaries`] plus test-specific secrets (passwords, values a test put in a payload that must
/// never be echoed), each searched like a canary: case-insensitively, by its prefixes of 6 or
/// more characters, raw and decoded.
pub fn canaries_and(source: &str, kind: Kind, values: &[&str]) -> Scanner {
    let mut s = canaries().clone();
    for v in values {
        s.add(source, kind, v);
    }
    s
}

/// Panics, naming `label` and every finding (never the bytes around it), if `bytes` holds a
/// patient canary.
pub fn assert_clean(label: &str, bytes: impl AsRef<[u8]>) {
    canaries().assert_clean(label, bytes);
}

/// Panics unless `path` exists and holds no canary.
pub fn assert_file_clean(label: &str, path: &Path) {
    canaries().assert_file_clean(label, path);
}

/// A log: no canary ([`assert_clean`]) and no run of 8 or more small numbers (a byte dump of
/// anything: a dump of patient bytes that are not canaries is a leak the canaries cannot show).
pub fn assert_log_clean(label: &str, text: impl AsRef<[u8]>) {
    let bytes = text.as_ref();
    assert_clean(label, bytes);
    assert_no_byte_dump(label, &String::from_utf8_lossy(bytes));
}

/// Panics if `text` holds a run of 8 or more numbers of up to 3 digits separated by commas or
/// white space (`[80, 73, 68, 124, …]`).
pub fn assert_no_byte_dump(label: &str, text: &str) {
    let mut run = 0;
    for token in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if token.is_empty() {
            continue;
        }
        let t = token.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')');
        if !t.is_empty() && t.len() <= 3 && t.bytes().all(|c| c.is_ascii_digit()) {
            run += 1;
            assert!(
                run < 8,
                "a byte-list dump in {label} (a run of {run} small numbers)"
            );
        } else {
            run = 0;
        }
    }
}

/// A copy of a database file and its `-wal` and `-shm` companions, taken while the collector
/// that writes it runs (SQLite removes the WAL when the last connection closes).
#[derive(Debug)]
pub struct DbCopy {
    /// `(file name, bytes)` of each file that existed.
    pub files: Vec<(String, Vec<u8>)>,
}

impl DbCopy {
    /// The bytes of `<db><suffix>` (`""`, `"-wal"`, `"-shm"`), if it existed.
    pub fn get(&self, suffix: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| match suffix {
                "" => !n.ends_with("-wal") && !n.ends_with("-shm"),
                s => n.ends_with(s),
            })
            .map(|(_, b)| b.as_slice())
    }
}

/// Copies `db`, `db-wal` and `db-shm` into `to` now (while the collector runs); asserts the
/// database and a non-empty WAL exist — so a scan of the copy reads what the WAL held.
pub fn copy_db_live(db: &Path, to: &Path) -> DbCopy {
    std::fs::create_dir_all(to).unwrap();
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::read(&src) {
            Ok(b) => {
                let name = src.file_name().unwrap().to_string_lossy().to_string();
                std::fs::write(to.join(&name), &b).unwrap();
                files.push((name, b));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("copying {}: {e}", src.display()),
        }
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let wal = files.iter().find(|(n, _)| n.ends_with("-wal"));
    assert!(
        files
            .iter()
            .any(|(n, _)| !n.ends_with("-wal") && !n.ends_with("-shm")),
        "no database file {} while the collector runs (copied: {names:?})",
        db.display()
    );
    let wal = wal.unwrap_or_else(|| {
        panic!(
            "no {}-wal while the collector runs: nothing of the WAL could be scanned (copied: {names:?})",
            db.display()
        )
    });
    assert!(
        !wal.1.is_empty(),
        "{}-wal is empty while the collector runs",
        db.display()
    );
    DbCopy { files }
}

/// Scans every file of a live database copy.
pub fn assert_db_copy_clean(label: &str, copy: &DbCopy) {
    for (name, bytes) in &copy.files {
        assert_clean(
            &format!("{label}: {name} copied while the collector ran"),
            bytes,
        );
    }
}

/// The database file and whatever -wal/-shm exist now (after the processes ended).
pub fn assert_db_clean(label: &str, db: &Path) {
    assert_file_clean(label, db);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            assert_file_clean(label, &p);
        }
    }
}

/// Report kinds and formats of `ward-collector report`.
pub const REPORT_KINDS: &[&str] = &["devices", "flags", "coverage", "installed-base"];
/// Formats of `ward-collector report`.
pub const REPORT_FORMATS: &[&str] = &["table", "csv", "json"];

/// Every report in every format (with `extra` arguments, e.g. `--vendor X`): each must succeed
/// with output, and hold no canary; returns `(label, stdout)` of each.
pub fn scan_reports(db: &Path, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in REPORT_KINDS {
        for format in REPORT_FORMATS {
            let mut args = vec!["report", kind, "--format", format];
            args.extend_from_slice(extra);
            let o = cli(db, &args);
            assert!(
                o.status.success(),
                "report {kind} --format {format} {extra:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                !o.stdout.is_empty(),
                "report {kind} --format {format} {extra:?}: no output"
            );
            let label = format!("report {kind} --format {format} {extra:?}");
            assert_clean(&label, &o.stdout);
            assert_clean(&format!("{label} (stderr)"), &o.stderr);
            out.push((label, o.stdout));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Ports

/// Leases held by this process (released when it exits).
/// A TCP port on 127.0.0.1 that no other test (in any test binary) is handed: see
/// [`ward_canary::ports::lease_port`].
pub fn free_port() -> u16 {
    ward_canary::ports::lease_port()
}

/// Did a server fail because its port was taken (by something outside the lease scheme)?
fn address_in_use(log: &str) -> bool {
    let l = log.to_ascii_lowercase();
    l.contains("address already in use") || l.contains("address in use")
}

pub fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ward-collector"))
}

/// The agent binary of this workspace. `cargo test --workspace` builds it (the agent has
/// integration tests); alone, `cargo test -p ward-collector` builds it here.
pub fn agent_bin() -> PathBuf {
    let p = collector_bin().with_file_name("ward-agent");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "ward-agent", "--bin", "ward-agent"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for ward-agent");
        assert!(st.success(), "cargo build -p ward-agent failed");
    }
    assert!(p.exists(), "{} missing", p.display());
    p
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn find_binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: these tests need a real {name} (apt-get install -y mosquitto); scripts/test.sh installs it")
}

pub fn wait_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "{what} exited ({st}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} does not listen on {port}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    /// Where this run's part of `log` starts (a restarted collector appends to the same file).
    pub log_from: u64,
}

impl Proc {
    pub fn new(child: Child, log: &Path) -> Proc {
        Proc {
            child,
            log: log.to_path_buf(),
            log_from: 0,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This run's part of the log.
    pub fn run_log(&self) -> String {
        let b = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(b.get(self.log_from as usize..).unwrap_or_default()).into_owned()
    }

    /// The port the embedded MQTT broker bound (from its "embedded broker listening" line).
    pub fn mqtt_port(&self) -> u16 {
        bound_port(&self.run_log(), "embedded broker listening")
            .unwrap_or_else(|| panic!("no embedded broker in this run:\n{}", self.run_log()))
    }

    /// The port the HTTP API bound (from its "HTTP API listening" line).
    pub fn http_port(&self) -> u16 {
        bound_port(&self.run_log(), "HTTP API listening")
            .unwrap_or_else(|| panic!("no HTTP API in this run:\n{}", self.run_log()))
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in the `listen=<addr>` field of the last log line carrying `message`.
pub fn bound_port(log: &str, message: &str) -> Option<u16> {
    log.lines()
        .rev()
        .find(|l| l.contains(message))
        .and_then(|l| {
            let v = l
                .split_whitespace()
                .find_map(|f| f.strip_prefix("listen="))?;
            v.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
        })
}

/// A real mosquitto with persistence in `dir`, unlimited queues for offline persistent
/// sessions (the collector's), on a leased port (another if the port turns out taken).
pub fn mosquitto(dir: &Path) -> (Proc, u16) {
    for _ in 0..5 {
        let port = free_port();
        if let Some(p) = mosquitto_on(dir, port) {
            return (p, port);
        }
    }
    panic!("mosquitto found no free port in 5 tries")
}

/// Mosquitto on `port` (configured as [`mosquitto`] does); `None` if the port was taken.
pub fn mosquitto_on(dir: &Path, port: u16) -> Option<Proc> {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    std::fs::write(
        &conf,
        format!(
            "user root\npersistence true\npersistence_location {}/\nautosave_interval 1\n\
             max_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n\
             log_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n",
            dir.display()
        ),
    )
    .unwrap();
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let from = logf.metadata().map(|m| m.len()).unwrap_or(0);
    let mut child = Command::new(find_binary("mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("starting mosquitto");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            let b = std::fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(b.get(from as usize..).unwrap_or_default());
            if address_in_use(&text) {
                return None;
            }
            panic!("mosquitto exited ({st}):\n{text}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "mosquitto does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut p = Proc::new(child, &log);
    p.log_from = from;
    Some(p)
}

/// Starts `ward-collector serve` with `args` (after the global `--db`), logging at `debug` to
/// `log` (appended). Unless `args` say otherwise, the embedded broker and the API listen on
/// port 0 — the kernel picks, nothing can collide — and [`Proc::mqtt_port`] and
/// [`Proc::http_port`] read the bound ports from the log. Returns once the collector logged
/// "collector running" (and, with `--broker`, its subscription confirmed); a port someone else
/// took in the meantime is retried with another.
pub fn serve(db: &Path, args: &[&str], log: &Path) -> Proc {
    serve_env(db, args, log, &[])
}

/// [`serve`] with extra environment variables.
pub fn serve_env(db: &Path, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
    let mut args: Vec<&str> = args.to_vec();
    if !args.iter().any(|a| *a == "--http" || *a == "--no-http") {
        args.extend(["--http", "127.0.0.1:0"]);
    }
    let external = args.contains(&"--broker");
    if !external && !args.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let from = logf.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(collector_bin());
    cmd.arg("--db")
        .arg(db)
        .arg("serve")
        .args(&args)
        .env("WARD_COLLECTOR_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("starting ward-collector");
    let mut p = Proc::new(child, log);
    p.log_from = from;
    let start = Instant::now();
    loop {
        let text = p.run_log();
        if text.contains("collector running") && (!external || text.contains(": subscribed")) {
            return p;
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!(
                "ward-collector exited ({st}){}:\n{text}",
                if address_in_use(&text) {
                    " (a port given on its command line was taken)"
                } else {
                    ""
                }
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "collector not running after 30 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// A recording TCP proxy

/// A TCP proxy on 127.0.0.1 (port 0) to `127.0.0.1:<upstream>` that records every byte in both
/// directions: what a client sent (`up`) and what the server sent it (`down`). Put between an
/// MQTT peer and its broker, it holds every MQTT packet either side received.
pub struct RecordingProxy {
    pub port: u16,
    pub up: Arc<Mutex<Vec<u8>>>,
    pub down: Arc<Mutex<Vec<u8>>>,
    pub connections: Arc<Mutex<u64>>,
}

impl RecordingProxy {
    pub fn start(upstream: u16) -> RecordingProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (u, d, n) = (up.clone(), down.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                *n.lock().unwrap() += 1;
                for (mut from, mut to, rec) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        u.clone(),
                    ),
                    (server, client, d.clone()),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => {
                                    rec.lock().unwrap().extend_from_slice(&buf[..k]);
                                    if to.write_all(&buf[..k]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        RecordingProxy {
            port,
            up,
            down,
            connections,
        }
    }

    /// Everything recorded so far, both directions.
    pub fn bytes(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.up.lock().unwrap().clone(),
            self.down.lock().unwrap().clone(),
        )
    }
}

/// Runs a collector command and parses its JSON output; panics with stderr on failure.
pub fn cli_json(db: &Path, args: &[&str]) -> serde_json::Value {
    let out = cli(db, args);
    assert!(
        out.status.success(),
        "ward-collector {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ward-collector {args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn cli(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .env("WARD_COLLECTOR_LOG", "warn")
        .output()
        .expect("running ward-collector")
}

/// Polls `check` until true (60 s), then returns; panics with `what` otherwise.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.1 client (a real socket to a real server): `(status, body)`, chunked
/// bodies joined. Every body is scanned for patient canaries.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert_clean(&format!("API response to {method} {path}"), &buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// `GET path` as `token`; asserts 200 and parses the JSON body.
pub fn get_json(port: u16, path: &str, token: &str) -> serde_json::Value {
    let (st, body) = http(port, "GET", path, Some(token));
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// `ward-collector token create ARGS`: the token text it printed.
pub fn token(db: &Path, args: &[&str]) -> String {
    let mut a = vec!["token", "create"];
    a.extend_from_slice(args);
    let out = cli(db, &a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA, server certificate (localhost, 127.0.0.1) and client certificates, EC P-256: `client`
/// (common name `agent-tls`, an agent id), `client2` (`agent-other`) and `reader`
/// (`noc-reader`, configured as an alert reader where a test needs one).
pub fn make_pki(dir: &Path) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ward test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-config", "ca.cnf", "-extensions", "v3_ca"];
    args.extend(ec);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    openssl(dir, &args);
    for (name, cn, eku, san) in [
        (
            "server",
            "localhost",
            "serverAuth",
            "subjectAltName = DNS:localhost,IP:127.0.0.1\n",
        ),
        ("client", "agent-tls", "clientAuth", ""),
        ("client2", "agent-other", "clientAuth", ""),
        ("reader", "noc-reader", "clientAuth", ""),
    ] {
        std::fs::write(
            dir.join(format!("{name}.cnf")),
            format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = {eku}\n{san}"
            ),
        )
        .unwrap();
        let (cnf, key, csr, pem, ext) = (
            format!("{name}.cnf"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut args = vec!["req", "-new", "-config", &cnf];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// The `publish-observations` load generator (ward-tests), built on first use.
pub fn publisher() -> PathBuf {
    let p = collector_bin().with_file_name("publish-observations");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "ward-tests",
                "--bin",
                "publish-observations",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build");
        assert!(st.success());
    }
    p
}
