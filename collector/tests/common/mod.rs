//! Shared by the collector's end-to-end tests: the collector's and the agent's binaries run as
//! real processes, the collector's Mosquitto settings and test certificates, the CLI's JSON
//! output, and the patient-canary scanner (`ward_canary`) with every canary of the fixtures and
//! of the sample site, applied to every path: logs, MQTT streams, the database with its -wal and
//! -shm, reports. What the agent's tests need too (ports, processes, Mosquitto, PKI, waits) is
//! `ward_testkit`'s, re-exported here.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ward_canary::{Kind, Scanner};

/// Publishers replaying into brokers and the single-collector oracle of the fault tests.
pub mod replay;
// Re-exported for the test files; each uses only some, as with the rest of this module.
#[allow(unused_imports)]
pub use ward_testkit::{
    assert_no_byte_dump, find_binary, fixtures, lease_port as free_port, Mosquitto, NatsCluster,
    Proc,
};

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
    if postgres_server().is_some() {
        // PostgreSQL: everything the collector committed, as pg_dump writes it out.
        let dump = pg_dump(db);
        assert!(!dump.is_empty(), "pg_dump of {} is empty", db.display());
        std::fs::write(to.join("pg_dump.sql"), &dump).unwrap();
        return DbCopy {
            files: vec![("pg_dump.sql".into(), dump)],
        };
    }
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
    if postgres_server().is_some() {
        assert_clean(&format!("{label}: pg_dump"), pg_dump(db));
        return;
    }
    assert_file_clean(label, db);
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            assert_file_clean(label, &p);
        }
    }
}

/// Report kinds and formats of `ward-collector report`.
pub const REPORT_KINDS: &[&str] = &[
    "devices",
    "flags",
    "coverage",
    "installed-base",
    "patch-sla",
];
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
// Processes

/// The collector's logs in the test's output (`RUST_LOG` or warnings, rumqttd's errors only),
/// for tests that run the collector's library in process.
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| "warn,rumqttd=error".parse().expect("default filter"));
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        // The builder's own ceiling is INFO; the `Targets` layer decides.
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(filter)
        .try_init();
}

pub fn collector_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ward-collector"))
}

/// `cargo`, for a build from inside a test, without the variables cargo set for the test
/// process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, …): a build script that watches one (ring's
/// watches `CARGO_MANIFEST_DIR`) would see it change between that build and the next
/// `cargo test` from a shell, and each would rebuild ring, rustls and everything above them
/// (about 100 s on the shared machine, on every run of a test that builds the publisher).
fn cargo() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd
}

/// The agent binary of this workspace. `cargo test --workspace` builds it (the agent has
/// integration tests); alone, `cargo test -p ward-collector` builds it here.
pub fn agent_bin() -> PathBuf {
    let p = collector_bin().with_file_name("ward-agent");
    if !p.exists() {
        let st = cargo()
            .args(["build", "-q", "-p", "ward-agent", "--bin", "ward-agent"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build for ward-agent");
        assert!(st.success(), "cargo build -p ward-agent failed");
    }
    assert!(p.exists(), "{} missing", p.display());
    p
}

/// The ports a collector run bound, read from its log: port 0 on its command line leaves the
/// choice to the kernel, so nothing can collide.
pub trait BoundPorts {
    /// The port the embedded MQTT broker bound (from its "embedded broker listening" line).
    fn mqtt_port(&self) -> u16;
    /// The port the HTTP API bound (from its "HTTP API listening" line).
    fn http_port(&self) -> u16;
}

impl BoundPorts for Proc {
    fn mqtt_port(&self) -> u16 {
        bound_port(&self.run_log(), "embedded broker listening")
            .unwrap_or_else(|| panic!("no embedded broker in this run:\n{}", self.run_log()))
    }

    fn http_port(&self) -> u16 {
        bound_port(&self.run_log(), "HTTP API listening")
            .unwrap_or_else(|| panic!("no HTTP API in this run:\n{}", self.run_log()))
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

/// The collector's Mosquitto: persistence in `dir` saved every second (a restart on the same
/// `dir` keeps the collector's persistent session), no limit on queued or in-flight messages
/// (the collector's offline session, a collector that acks after its commit holding many at
/// once), errors and warnings logged, anonymous clients.
pub fn mosquitto_settings(dir: &Path) -> String {
    format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n\
         max_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\n\
         set_tcp_nodelay true\nlog_type error\nlog_type warning\nallow_anonymous true",
        dir.display()
    )
}

/// A real mosquitto with [`mosquitto_settings`] in `dir`, on a leased port.
pub fn mosquitto(dir: &Path) -> (Mosquitto, u16) {
    let m = Mosquitto::start_leased(dir, &mosquitto_settings(dir));
    let port = m.port;
    (m, port)
}

/// Mosquitto on `port` (configured as [`mosquitto`] does; start it again on the same `dir` and
/// port to restart the broker); `None` if the port was taken.
pub fn mosquitto_on(dir: &Path, port: u16) -> Option<Mosquitto> {
    Mosquitto::try_start(dir, port, &mosquitto_settings(dir), "", &[])
}

/// Starts `ward-collector serve` with `args` (after the global `--db`), logging at `debug` to
/// `log` (appended). Unless `args` say otherwise, the embedded broker and the API listen on
/// port 0 — the kernel picks, nothing can collide — and [`BoundPorts::mqtt_port`] and
/// [`BoundPorts::http_port`] read the bound ports from the log. Returns once the collector
/// logged "collector running" (and, with `--broker`, its subscription confirmed); if it exits
/// first the test fails with its log (noting a port on its command line that was taken).
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
    let mut cmd = Command::new(collector_bin());
    cmd.arg("--db")
        .arg(db_arg(db))
        .arg("serve")
        .args(&args)
        .env("WARD_COLLECTOR_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(&mut cmd, log);
    p.wait_log("the collector to run", Duration::from_secs(30), |text| {
        text.contains("collector running") && (!external || text.contains(": subscribed"))
    });
    p
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
        .arg(db_arg(db))
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

/// The test PKI ([`ward_testkit::make_pki`]) with the collector's client certificates:
/// `client` (common name `agent-tls`, an agent id), `client2` (`agent-other`) and `reader`
/// (`noc-reader`, configured as an alert reader where a test needs one).
pub fn make_pki(dir: &Path) {
    ward_testkit::make_pki(
        dir,
        &[
            ("client", "agent-tls"),
            ("client2", "agent-other"),
            ("reader", "noc-reader"),
        ],
    );
}

/// The `publish-observations` load generator (ward-tests), built once per test process: it is
/// another package's binary, which `cargo test -p ward-collector` does not rebuild, and a stale
/// one (an older publisher without `WARD_INSTANCE`) makes a replay look like new messages.
pub fn publisher() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let p = collector_bin().with_file_name("publish-observations");
    BUILT.call_once(|| {
        let st = cargo()
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
    });
    p
}

// ---------------------------------------------------------------------------------------------
// The backend under test

/// The PostgreSQL server the tests run against (`WARD_TEST_POSTGRES`, e.g.
/// `postgres://ward@127.0.0.1:5432/postgres`, a database the tests may connect to and a role
/// that may create databases), or `None` for SQLite. scripts/test.sh runs the suite once each
/// way.
pub fn postgres_server() -> Option<String> {
    std::env::var("WARD_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The server URL with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// What the collector gets as `--db` for a test's database `path`: the path itself (SQLite),
/// or, under PostgreSQL, a schema of its own in the database `ward_test` named after the path
/// (created on first use; the URL's `search_path` selects it), so every test, and every
/// database within a test, starts empty. A schema rather than a database each: creating one is
/// instant and takes no disk (a database copies its template, megabytes each).
pub fn db_arg(path: &Path) -> String {
    let Some(server) = postgres_server() else {
        return path.to_string_lossy().into_owned();
    };
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    let schema = format!("ws_{:016x}", h.finish());
    static CREATED: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let created = CREATED.get_or_init(Default::default);
    let mut created = created.lock().unwrap_or_else(|e| e.into_inner());
    let database = with_database(&server, "ward_test");
    // The postgres client runs its own runtime, which tokio refuses inside a #[tokio::test]:
    // the set-up runs on a thread of its own.
    let set: &mut std::collections::HashSet<String> = &mut created;
    std::thread::scope(|sc| sc.spawn(|| create(&server, &database, &schema, set)).join())
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let sep = if database.contains('?') { '&' } else { '?' };
    format!("{database}{sep}options=-c%20search_path%3D{schema}")
}

/// Creates the database `ward_test` (once per process) and `schema` in it (once).
fn create(
    server: &str,
    database: &str,
    schema: &str,
    created: &mut std::collections::HashSet<String>,
) {
    if created.is_empty() {
        let mut admin = postgres::Client::connect(server, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to WARD_TEST_POSTGRES: {e:?}"));
        let exists = !admin
            .query("SELECT 1 FROM pg_database WHERE datname = 'ward_test'", &[])
            .unwrap()
            .is_empty();
        if !exists {
            // Several test binaries may race to create it: the loser finds it there.
            if let Err(e) = admin.batch_execute("CREATE DATABASE ward_test") {
                let again = admin
                    .query("SELECT 1 FROM pg_database WHERE datname = 'ward_test'", &[])
                    .unwrap();
                assert!(!again.is_empty(), "creating database ward_test: {e}");
            }
        }
        created.insert(String::new());
    }
    if !created.contains(schema) {
        let mut c = postgres::Client::connect(database, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to ward_test: {e:?}"));
        c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
        created.insert(schema.to_string());
    }
}

/// The schema [`db_arg`] gives `path`.
fn schema_of(path: &Path) -> String {
    let url = db_arg(path);
    url.rsplit("search_path%3D")
        .next()
        .unwrap_or("")
        .to_string()
}

/// Opens the test's store at `path` (see [`db_arg`]).
pub fn open_store(path: &Path) -> Box<dyn ward_collector::store::Store> {
    ward_collector::store::open_store(&db_arg(path)).expect("opening the store")
}

/// A fresh, empty store: SQLite in memory, or a new PostgreSQL database.
pub fn fresh_store() -> Box<dyn ward_collector::store::Store> {
    if postgres_server().is_none() {
        return Box::new(ward_collector::store::sqlite::SqliteStore::in_memory().unwrap());
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "ward-fresh-{}-{}-{n}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    open_store(&path)
}

/// Whether the tests run on SQLite (a file on disk, its mode, its WAL).
pub fn sqlite() -> bool {
    postgres_server().is_none()
}

/// Everything stored in the test's PostgreSQL schema, as `pg_dump --data-only` prints it
/// (what the canary scans read under PostgreSQL).
pub fn pg_dump(path: &Path) -> Vec<u8> {
    let url = with_database(&postgres_server().expect("PostgreSQL"), "ward_test");
    let schema = schema_of(path);
    let bin = ["/usr/bin/pg_dump", "/usr/lib/postgresql/15/bin/pg_dump"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("pg_dump");
    let out = Command::new(bin)
        .arg("--data-only")
        .arg("--schema")
        .arg(&schema)
        .arg("--dbname")
        .arg(&url)
        .output()
        .expect("running pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Rows of a read-only query on the test's database, every value as text (SQLite's or
/// PostgreSQL's text form): for the tests that look at what is stored beneath the collector.
pub fn db_rows(path: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    if postgres_server().is_none() {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the database");
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(
                (0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                    })
                    .collect(),
            );
        }
        return out;
    }
    let url = db_arg(path);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut c = postgres::Client::connect(&url, postgres::NoTls)
                .expect("connect to the test database");
            let mut out = Vec::new();
            for m in c.simple_query(sql).expect("query") {
                if let postgres::SimpleQueryMessage::Row(r) = m {
                    out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                }
            }
            out
        })
        .join()
    })
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

// ---------------------------------------------------------------------------------------------
// An alert webhook

/// A real HTTP/1.1 server on 127.0.0.1 (port 0) that records each POSTed JSON body (`Null` if
/// it is not JSON) and answers 200: the receiving end of the collector's alert webhook.
pub fn alert_webhook() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let (port, _, got) = switchable_webhook(true);
    (port, got)
}

/// [`alert_webhook`], answering 503 (and recording nothing) while the returned flag is false:
/// a receiver that is down, then back.
#[allow(clippy::type_complexity)]
pub fn switchable_webhook(
    accepting: bool,
) -> (
    u16,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicBool, Ordering};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accept = Arc::new(AtomicBool::new(accepting));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (a, g) = (accept.clone(), got.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let read = r.read_exact(&mut body).is_ok();
            if !a.load(Ordering::SeqCst) {
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            if read {
                g.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, accept, got)
}
