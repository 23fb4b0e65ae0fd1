//! The embedded broker's security settings through the real `ward-collector serve` binary:
//! non-loopback listeners refused without TLS and authentication, authentication failures
//! logged with user and peer (escaped, rate-limited), credentials never echoed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn serve_output(db: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(collector_bin())
        .arg("--db")
        .arg(db_arg(db))
        .arg("serve")
        .args(args)
        .env("WARD_COLLECTOR_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal exits at once; a collector that started would run until stopped.
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn public_listeners_need_tls_and_authentication_or_an_explicit_override() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let mqtt = format!("0.0.0.0:{}", free_port());
    let out = serve_output(&db, &["--listen", &mqtt, "--no-http"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on"), "{err}");
    assert!(err.contains("allow_insecure_listen"), "{err}");

    let http = format!("0.0.0.0:{}", free_port());
    let local = format!("127.0.0.1:{}", free_port());
    let out = serve_output(&db, &["--listen", &local, "--http", &http]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve the HTTP API"), "{err}");

    // Explicitly allowed: it runs, and says so at WARN.
    let log = dir.path().join("collector.log");
    let mut c = serve(
        &db,
        &["--listen", "0.0.0.0:0", "--allow-insecure-listen"],
        &log,
    );
    assert!(c.sigterm().success());
    let text = c.log_text();
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("allow_insecure_listen")),
        "{text}"
    );
}

/// A raw MQTT 3.1.1 CONNECT; returns the CONNACK return code (None: closed without one).
fn connect_raw(port: u16, client_id: &str, user: &str, password: &str) -> Option<u8> {
    let mut c = rumqttc::mqttbytes::v4::Connect::new(client_id);
    c.set_login(user, password);
    let mut buf = bytes::BytesMut::new();
    c.write(&mut buf).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&buf).unwrap();
    let mut ack = [0u8; 4];
    match s.read_exact(&mut ack) {
        Ok(()) if ack[0] == 0x20 && ack[1] == 2 => Some(ack[3]),
        _ => None,
    }
}

#[test]
fn authentication_failures_are_logged_with_user_and_peer_escaped_and_rate_limited() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let creds = d.join("agents.toml");
    std::fs::write(&creds, "span-rad = \"Pw-CANARY-rad\"\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = d.join("ward.db");
    let log = d.join("collector.log");
    let token = cli(&db, &["token", "create", "--name", "t", "--role", "admin"]);
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let mut c = serve(&db, &["--credentials", creds.to_str().unwrap()], &log);
    let (port, http) = (c.mqtt_port(), format!("127.0.0.1:{}", c.http_port()));
    // Right user, wrong password; unknown users; a user name built to forge a log line.
    assert_eq!(
        connect_raw(port, "ward-span-rad", "span-rad", "nope"),
        Some(4)
    );
    for i in 0..23 {
        assert_eq!(
            connect_raw(port, "x", &format!("intruder{i}"), "Pw-CANARY-rad"),
            Some(4)
        );
    }
    assert_eq!(
        connect_raw(port, "y", "evil\nFAKE LINE\u{1b}[31m", "p"),
        Some(4)
    );
    // The right password with another agent's client id: refused too.
    assert_eq!(
        connect_raw(port, "ward-span-icu", "span-rad", "Pw-CANARY-rad"),
        Some(2)
    );
    // And the right one is accepted.
    assert_eq!(
        connect_raw(port, "ward-span-rad", "span-rad", "Pw-CANARY-rad"),
        Some(0)
    );
    // /metrics counts every refusal, logged or not.
    let mut s = TcpStream::connect(&http).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).unwrap();
    assert!(
        metrics.contains("ward_collector_mqtt_refused_total{kind=\"login\"} 26"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ward_collector_mqtt_login_failures_unlogged_total 6"),
        "{metrics}"
    );
    assert!(c.sigterm().success());
    let text = c.log_text();
    // The password, in any encoding (and every patient canary): not in the log at debug.
    canaries_and(
        "agents.toml password",
        ward_canary::Kind::Identifier,
        &["Pw-CANARY-rad"],
    )
    .assert_clean("collector log (debug)", &text);
    assert_no_byte_dump("collector log (debug)", &text);
    assert!(!text.contains('\u{1b}'), "an escape byte reached the log");
    assert!(
        !text.contains("\nFAKE LINE"),
        "a user name forged a log line"
    );
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("MQTT connection refused"))
        .collect();
    // 26 failures, 20 logged (the rate limit), each with the user and the peer.
    assert_eq!(refused.len(), 20, "{text}");
    assert!(refused[0].contains("user=span-rad"), "{}", refused[0]);
    assert!(refused.iter().all(|l| l.contains("peer=127.0.0.1:")));
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("readable by every user")
            && l.contains("agents.toml")),
        "no warning for the world-readable credentials file:\n{text}"
    );
}

#[test]
fn credential_file_errors_name_the_line_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("agents.toml");
    std::fs::write(
        &creds,
        "span-rad = \"Pw-CANARY-1\"\nspan-icu = Pw-CANARY-2 broken\n",
    )
    .unwrap();
    let out = serve_output(
        &dir.path().join("ward.db"),
        &[
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--credentials",
            creds.to_str().unwrap(),
            "--no-http",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("agents.toml"), "{err}");
    canaries_and(
        "agents.toml password",
        ward_canary::Kind::Identifier,
        &["Pw-CANARY-1", "Pw-CANARY-2"],
    )
    .assert_clean("credential-file error", out.stderr);
}

/// The ingest is an in-process channel, not an MQTT client: no client id a peer picks can cut
/// it off (a client connecting as the old ingest id used to make `serve` exit).
#[test]
fn no_client_id_cuts_the_ingest_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let log = dir.path().join("collector.log");
    let mut c = serve(&db, &[], &log);
    let port = c.mqtt_port();
    for id in [
        "ward-collector-ingest",
        "ward-collector",
        "ward-collector-alerts",
    ] {
        assert_eq!(connect_anonymous(port, id), Some(0), "{id}");
    }
    // Still ingesting: a message published now is stored.
    let out = Command::new(publisher())
        .args([&format!("127.0.0.1:{port}"), "3", "1", "after"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the messages stored", || {
        cli_json(&db, &["status"])["messages"].as_u64() == Some(3)
    });
    assert!(c.sigterm().success(), "{}", c.log_text());
}

fn connect_anonymous(port: u16, client_id: &str) -> Option<u8> {
    let c = rumqttc::mqttbytes::v4::Connect::new(client_id);
    let mut buf = bytes::BytesMut::new();
    c.write(&mut buf).unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&buf).unwrap();
    let mut ack = [0u8; 4];
    // Only a CONNACK (type 2, remaining length 2) counts: a TLS port answers with an alert.
    s.read_exact(&mut ack)
        .ok()
        .filter(|()| ack[0] == 0x20 && ack[1] == 2)
        .map(|()| ack[3])
}

/// Imported text reaches terminal tables escaped: an asset tag carrying terminal escapes and a
/// forged line shows as `\u{1b}` text in `flags` and `report … --format table`.
#[test]
fn tables_escape_control_characters_from_imports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let csv = dir.path().join("assets.csv");
    std::fs::write(
        &csv,
        "Asset No,Manufacturer,Model Number,S/N\n\
         \"EVIL\u{1b}[2J\u{1b}[31mRED\rFORGED\",Acme\u{7},Model\u{1b}]0;title\u{7},SN-1\n",
    )
    .unwrap();
    let out = cli(&db, &["assets", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&db, &["evaluate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        vec!["flags"],
        vec!["report", "flags"],
        vec!["report", "flags", "--format", "table"],
        vec!["devices"],
    ] {
        let out = cli(&db, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r']),
            "{args:?} printed a control character:\n{text:?}"
        );
        if args[0] == "flags" || args.len() == 4 {
            assert!(text.contains("EVIL\\u{1b}[2J"), "{args:?}:\n{text}");
        }
    }
}

/// TCP ports process `pid` listens on (from /proc: its socket inodes in LISTEN state).
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st ... inode (10th column); 0A = LISTEN.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports
}

/// With client certificates and no passwords there is exactly one MQTT listener, the TLS one:
/// no plaintext port behind it (the old TLS front piped into an anonymous loopback listener).
#[test]
fn client_certificates_leave_no_unauthenticated_listener() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d);
    let mut c = serve(
        &d.join("ward.db"),
        &[
            "--tls-cert",
            d.join("server.pem").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
            "--tls-ca",
            d.join("ca.pem").to_str().unwrap(),
        ],
        &d.join("collector.log"),
    );
    let (port, http) = (c.mqtt_port(), c.http_port());
    let mut expected = vec![port, http];
    expected.sort_unstable();
    assert_eq!(listening_ports(c.child.id()), expected);
    // And the one MQTT port refuses a plaintext CONNECT.
    assert_eq!(connect_anonymous(port, "sneaky"), None);
    assert!(c.sigterm().success());
}
