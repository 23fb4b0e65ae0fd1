//! The collector's HTTP API and database against hostile or careless surroundings, through the
//! real binary: expensive endpoints bounded in concurrency (503 with Retry-After beyond the
//! limit), a client trickling its request head dropped, refusals logged with the token id and
//! the peer address (never the secret), database files private whatever the umask.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600_000_000;

/// JSON lines of `n` devices, 500 per message, manufacturers alternating between two vendors.
fn inventory(path: &Path, n: usize) {
    let mut out = String::new();
    let devices: Vec<Value> = (0..n)
        .map(|i| {
            let mac = format!(
                "02:00:00:{:02x}:{:02x}:{:02x}",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            );
            let seen = json!({"first_us": T0, "last_us": T0 + 1000, "count": 1});
            json!({
                "key": format!("mac:{mac}"), "mac": mac, "seen": seen,
                "addresses": [], "facts": [], "services_offered": [], "services_used": [],
                "classification": {
                    "manufacturer": if i % 2 == 0 { "ACME MEDICAL" } else { "OTHER CORP" },
                    "model": "Scanner", "device_type": "ct", "confidence": 0.9, "matches": []
                }
            })
        })
        .collect();
    for (seq, chunk) in devices.chunks(500).enumerate() {
        let o = json!({
            "schema": "ward.observation.v1", "site": "s1", "agent_id": "a1", "instance": "i-1",
            "seq": seq + 1, "kind": "snapshot", "time_us": T0, "devices": chunk
        });
        out.push_str(&o.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn build(dir: &Path, n: usize) -> PathBuf {
    let db = dir.join("ward.db");
    let file = dir.join("inventory.jsonl");
    inventory(&file, n);
    let out = cli_json(&db, &["ingest", file.to_str().unwrap()]);
    assert_eq!(out["ingest"]["device_records"], n as u64, "{out}");
    db
}

fn token(db: &Path, args: &[&str]) -> String {
    let mut a = vec!["token", "create"];
    a.extend_from_slice(args);
    let out = cli(db, &a);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `ward-collector serve` with the embedded broker and the API on ports the kernel picks, extra
/// environment; returns once it runs, with the API's port.
fn start(db: &Path, env: &[(&str, &str)], log: &Path) -> (Proc, u16) {
    let p = serve_env(db, &[], log, env);
    let http = p.http_port();
    (p, http)
}

/// One request over a fresh connection: (status, head, body).
fn request(port: u16, path: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn parallel(port: u16, path: &str, token: &str, n: usize) -> Vec<(u16, String, String)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (b, path, token) = (barrier.clone(), path.to_string(), token.to_string());
            std::thread::spawn(move || {
                b.wait();
                request(port, &path, Some(&token))
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Coverage over a few thousand devices, many callers at once: with a limit of one expensive
/// query and no wait, some callers get 503 with Retry-After and the others the right answer;
/// with the defaults, everyone gets the answer.
#[test]
fn expensive_endpoints_admit_a_bounded_number_of_callers() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path(), 4000);
    let ce = token(&db, &["--name", "ce", "--role", "clinical_engineering"]);
    let (mut c, http) = start(
        &db,
        &[
            ("WARD_COLLECTOR_API_EXPENSIVE_CONCURRENCY", "1"),
            ("WARD_COLLECTOR_API_EXPENSIVE_WAIT_MS", "0"),
        ],
        &dir.path().join("limited.log"),
    );
    let (mut ok, mut busy) = (0, 0);
    for _ in 0..30 {
        for (st, head, body) in parallel(http, "/api/v1/coverage", &ce, 16) {
            match st {
                200 => {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(v["devices"], 4000, "{v}");
                    ok += 1;
                }
                503 => {
                    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
                    busy += 1;
                }
                other => panic!("status {other}: {head}\n{body}"),
            }
        }
        if ok > 0 && busy > 0 {
            break;
        }
    }
    assert!(ok > 0 && busy > 0, "ok {ok}, busy {busy}");
    // The limit is released: a lone caller is served.
    let (st, _, body) = request(http, "/api/v1/coverage", Some(&ce));
    assert_eq!(st, 200, "{body}");
    let (_, _, metrics) = request(http, "/metrics", Some(&ce));
    let refused: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ward_collector_http_busy_total ")?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(refused >= busy, "{metrics}");
    c.sigterm();

    let (mut c, http) = start(&db, &[], &dir.path().join("defaults.log"));
    for (st, _, body) in parallel(http, "/api/v1/coverage", &ce, 16) {
        assert_eq!(st, 200, "{body}");
    }
    c.sigterm();
}

/// A client that opens a connection and trickles its request head, a line a second, is
/// disconnected once the header-read timeout (10 s) passes.
#[test]
fn a_client_trickling_its_request_head_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path(), 10);
    let (mut c, http) = start(&db, &[], &dir.path().join("collector.log"));
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(b"GET /api/v1/coverage HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            // Closed, or an error response followed by the close.
            Ok(_) => break true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
        if s.write_all(b"X-Slow: 1\r\n").is_err() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(25) {
            break false;
        }
    };
    assert!(
        closed,
        "still connected after {:?} of trickled headers",
        start.elapsed()
    );
    // The server is still there for everyone else.
    let (st, _, _) = request(http, "/api/v1/openapi.json", None);
    assert_eq!(st, 200);
    c.sigterm();
}

/// 401, 403 and 404 for a device the token may not see are logged with the token id and the
/// peer address; never the secret, never a malformed token's text.
#[test]
fn refusals_are_logged_with_the_token_id_and_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(dir.path(), 2);
    let vendor = token(
        &db,
        &["--name", "acme", "--role", "vendor", "--vendor", "ACME*"],
    );
    let vendor_id = vendor.split('_').nth(1).unwrap().to_string();
    let inv = cli_json(&db, &["devices", "--json"]);
    let other = inv["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["attributes"]["manufacturer"][0]["value"] == "OTHER CORP")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let log = dir.path().join("collector.log");
    let (mut c, http) = start(&db, &[], &log);

    let secret = "5ec7".repeat(16);
    let unknown = format!("ward_0123456789abcdef_{secret}");
    assert_eq!(request(http, "/api/v1/devices", Some(&unknown)).0, 401);
    assert_eq!(
        request(http, "/api/v1/devices", Some("MALFORMEDTOKENTEXT")).0,
        401
    );
    assert_eq!(request(http, "/api/v1/agents", Some(&vendor)).0, 403);
    assert_eq!(
        request(http, &format!("/api/v1/devices/{other}"), Some(&vendor)).0,
        404
    );
    let vendor_secret = vendor.rsplit('_').next().unwrap().to_string();
    c.sigterm();
    let text = c.log_text();
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("API request refused"))
        .collect();
    let find = |needles: &[&str]| {
        refusals
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        find(&["status=401", "token_id=0123456789abcdef", "peer=127.0.0.1:"]),
        "{text}"
    );
    assert!(find(&["status=401", "peer=127.0.0.1:"]), "{text}");
    assert!(
        find(&[
            "status=403",
            &format!("token_id={vendor_id}"),
            "peer=127.0.0.1:"
        ]),
        "{text}"
    );
    assert!(
        find(&[
            "status=404",
            &format!("token_id={vendor_id}"),
            "peer=127.0.0.1:",
            "not visible"
        ]),
        "{text}"
    );
    assert!(!text.contains(&secret), "a token secret in the log");
    assert!(!text.contains(&vendor_secret), "a token secret in the log");
    assert!(
        !text.contains("MALFORMEDTOKENTEXT"),
        "token text in the log"
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under `umask 000`, the database directory the collector creates is 0700 and the database,
/// its -wal and -shm files 0600.
#[cfg(unix)]
#[test]
fn database_files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new/sub/ward.db");
    let log = dir.path().join("serve.log");
    let http = free_port();
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(collector_bin())
        .arg("--db")
        .arg(&db)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--http",
            &format!("127.0.0.1:{http}"),
        ])
        .env("WARD_COLLECTOR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    let mut p = Proc::new(child, &log);
    p.wait_port(http, "ward-collector");
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let shm = PathBuf::from(format!("{}-shm", db.display()));
    eventually("-wal and -shm exist", || wal.exists() && shm.exists());
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/sub")), 0o700);
    for f in [&db, &wal, &shm] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    p.sigterm();

    // A CLI command creating a database does the same.
    let db2 = dir.path().join("cli/ward.db");
    let st = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(collector_bin())
        .arg("--db")
        .arg(&db2)
        .arg("status")
        .env("WARD_COLLECTOR_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mode(&dir.path().join("cli")), 0o700);
    assert_eq!(mode(&db2), 0o600);
}
