//! Hostile agent messages through the real `ward-collector` binary: rejections are logged with
//! a typed reason and an escaped, bounded topic but never any payload text, and counted by
//! reason; every field of an accepted message is bounded (too long: cut, control characters:
//! replaced, invalid records and items: dropped, unknown device types: `unknown`), each change
//! counted; what the tables print carries no control character.
//!
//! Messages go in as lines of `<topic> <payload>` (what `mosquitto_sub -v` prints) or plain
//! agent JSON lines, through `ward-collector ingest`, and through a real Mosquitto into
//! `ward-collector serve`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600_000_000;

fn seen(first: i64, last: i64) -> Value {
    json!({"first_us": first, "last_us": last, "count": 3})
}

/// A valid device record.
fn device(n: u8) -> Value {
    let mac = format!("02:00:00:00:00:{n:02x}");
    json!({
        "key": format!("mac:{mac}"),
        "mac": mac,
        "mac_kind": "local",
        "seen": seen(T0, T0 + 1_000_000),
        "addresses": [{"ip": format!("10.0.0.{n}"), "source": "ip", "seen": seen(T0, T0 + 1_000_000)}],
        "facts": [{"field": "dicom.manufacturer", "protocol": "dicom", "value": "ACME", "seen": seen(T0, T0 + 1_000_000)}],
        "services_offered": [{"transport": "tcp", "port": 104, "app": "dicom", "peers": 1, "seen": seen(T0, T0 + 1_000_000)}],
        "services_used": [],
        "classification": {"manufacturer": "ACME", "model": "Scanner", "device_type": "ct", "confidence": 0.9, "matches": []}
    })
}

fn observation(site: &str, agent: &str, seq: u64, devices: Vec<Value>) -> Value {
    json!({
        "schema": "ward.observation.v1", "site": site, "agent_id": agent, "instance": "i-1",
        "seq": seq, "kind": "delta", "time_us": T0, "devices": devices
    })
}

fn status(site: &str, agent: &str) -> Value {
    json!({
        "schema": "ward.status.v1", "state": "online", "agent_id": agent, "site": site,
        "instance": "i-1", "version": "0.1.0", "started_at": "2026-01-01T00:00:00.000Z",
        "time": "2026-01-01T00:00:01.000Z"
    })
}

/// `<topic> <payload>`, as `mosquitto_sub -v` prints a message.
fn with_topic(topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut l = topic.to_vec();
    l.push(b' ');
    l.extend_from_slice(payload);
    l
}

fn devices_topic() -> &'static [u8] {
    b"ward/v1/s1/a1/devices"
}

fn status_topic() -> &'static [u8] {
    b"ward/v1/s1/a1/status"
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
}

/// Runs `ward-collector ingest` with logs at debug; returns (exit ok, stdout, everything
/// printed).
fn ingest(db: &Path, file: &Path) -> (bool, Vec<u8>, Vec<u8>) {
    let out = Command::new(collector_bin())
        .arg("--db")
        .arg(db_arg(db))
        .args(["--log-level", "debug", "ingest"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut all = out.stdout.clone();
    all.extend_from_slice(&out.stderr);
    (out.status.success(), out.stdout, all)
}

/// The `CANARY-nn` values the malformed messages below carry (in fields a rejection must
/// never echo).
const PAYLOAD_CANARIES: &[&str] = &[
    "CANARY-01",
    "CANARY-02",
    "CANARY-03",
    "CANARY-04",
    "CANARY-05",
    "CANARY-06",
    "CANARY-07",
    "CANARY-08",
    "CANARY-09-",
    "CANARY-10",
    "CANARY-11",
    "CANARY-12",
    "CANARY-13",
    "CANARY-14",
    "CANARY-15",
    "CANARY-18",
    "CANARY-19",
    "CANARY-23",
];

/// The log checks every test makes: no payload text — none of the payloads' canaries nor any
/// fixture canary, in any encoding `ward_canary` decodes, nor a byte dump — no escape byte, no
/// overlong line.
fn assert_logs_safe(all: &[u8], what: &str) {
    let text = String::from_utf8_lossy(all);
    canaries_and(
        "ingest_validation payloads",
        ward_canary::Kind::Identifier,
        PAYLOAD_CANARIES,
    )
    .assert_clean(&format!("{what}: payload text in the output"), all);
    assert_no_byte_dump(what, &text);
    assert!(
        !all.contains(&0x1b),
        "{what}: an escape byte reached the output"
    );
    assert!(
        !text.contains('\u{202e}'),
        "{what}: a bidirectional override reached the output"
    );
    for l in all.split(|&b| b == b'\n') {
        assert!(
            l.len() <= 2048,
            "{what}: a line of {} bytes: {}…",
            l.len(),
            String::from_utf8_lossy(&l[..200])
        );
        assert!(
            !String::from_utf8_lossy(l).starts_with("FORGED"),
            "{what}: a forged log line"
        );
    }
}

fn lines_with(all: &[u8], needle: &str) -> usize {
    String::from_utf8_lossy(all)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Malformed messages of every kind, each with payload text that must never be echoed.
/// Returns the lines and the reason each must be refused for.
fn malformed() -> Vec<(Vec<u8>, &'static str)> {
    let ok = observation("s1", "a1", 1, vec![device(1)]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = ok.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let mut huge_site = "CANARY-09-".to_string();
    huge_site.push_str(&"x".repeat(2 << 20));
    // Nested past the parser's recursion limit inside a field it skips.
    let mut deep = br#"{"schema":"ward.observation.v1","x":"#.to_vec();
    deep.extend_from_slice("[".repeat(100_000).as_bytes());
    deep.extend_from_slice(b"\"CANARY-18\"");
    let mut bad_utf8 = br#"{"schema":"CANARY-15 "#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let long_topic = format!("ward/v1/{}/a1/devices", "t".repeat(5000));
    let escaped_topic = b"ward/v1/\x1b[31mred\x1b[0m\x1b]0;title\x07/a1/devices".to_vec();
    let ok_bytes = serde_json::to_vec(&ok).unwrap();
    let mut st = status("s1", "a1");
    st["schema"] = json!("CANARY-13\nFORGED 2026-01-01T00:00:00Z  INFO forged line \u{1b}[2J");
    let bad_status_schema = serde_json::to_vec(&st).unwrap();
    let mut st = status("s1", "a1");
    st["state"] = json!("CANARY-14");
    let bad_status_state = serde_json::to_vec(&st).unwrap();
    let mut plain_schema = ok.clone();
    plain_schema["schema"] = json!("CANARY-19");
    let plain_bad_site = observation("CANARY 20 not an id", "a1", 1, vec![device(1)]);
    vec![
        (
            with_topic(devices_topic(), b"CANARY-01 not json"),
            "json_syntax",
        ),
        (
            with_topic(
                devices_topic(),
                br#"{"schema":"ward.observation.v1","site":"CANARY-02"#,
            ),
            "json_syntax",
        ),
        (
            with_topic(devices_topic(), br#"["CANARY-03"]"#),
            "json_shape",
        ),
        (
            with_topic(
                devices_topic(),
                &with(&|v| v["schema"] = json!("CANARY-04 ward.observation.v2")),
            ),
            "unknown_schema",
        ),
        (
            with_topic(devices_topic(), &with(&|v| v["kind"] = json!("CANARY-05"))),
            "json_shape",
        ),
        (
            with_topic(devices_topic(), &with(&|v| v["seq"] = json!("CANARY-06"))),
            "json_shape",
        ),
        (
            with_topic(devices_topic(), &with(&|v| v["site"] = json!("CANARY-07"))),
            "site_mismatch",
        ),
        (
            with_topic(
                devices_topic(),
                &with(&|v| v["agent_id"] = json!("CANARY-08")),
            ),
            "agent_mismatch",
        ),
        (
            with_topic(devices_topic(), &with(&|v| v["site"] = json!(huge_site))),
            "site_mismatch",
        ),
        (
            with_topic(
                devices_topic(),
                &with(&|v| v["devices"][0]["facts"][0]["field"] = json!("CANARY-10")),
            ),
            "json_shape",
        ),
        (
            with_topic(
                devices_topic(),
                &with(&|v| v["devices"][0]["mac"] = json!("CANARY-11")),
            ),
            "json_shape",
        ),
        (
            with_topic(
                devices_topic(),
                &with(&|v| v["devices"][0]["addresses"][0]["ip"] = json!("CANARY-12")),
            ),
            "json_shape",
        ),
        (
            with_topic(status_topic(), &bad_status_schema),
            "unknown_schema",
        ),
        (with_topic(status_topic(), &bad_status_state), "json_shape"),
        (with_topic(devices_topic(), &bad_utf8), "json_syntax"),
        (with_topic(&escaped_topic, &ok_bytes), "topic"),
        (with_topic(long_topic.as_bytes(), &ok_bytes), "topic"),
        (with_topic(devices_topic(), &deep), "json_syntax"),
        (serde_json::to_vec(&plain_schema).unwrap(), "unknown_schema"),
        (
            serde_json::to_vec(&plain_bad_site).unwrap(),
            "invalid_field",
        ),
        (with_topic(devices_topic(), b""), "json_syntax"),
        (with_topic(b"ward/v1/s1/a1/other", &ok_bytes), "topic"),
        (
            with_topic(
                devices_topic(),
                &with(&|v| {
                    v["site"] =
                        json!("CANARY-23\nFORGED 2026-01-01T00:00:00Z  INFO forged \u{1b}[31m")
                }),
            ),
            "site_mismatch",
        ),
    ]
}

#[test]
fn rejected_messages_leave_no_payload_text_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let file = dir.path().join("hostile.jsonl");
    let bad = malformed();
    let mut lines: Vec<Vec<u8>> = bad.iter().map(|(l, _)| l.clone()).collect();
    // Valid messages after the bad ones: a rejection never stops a replay.
    lines.push(with_topic(
        devices_topic(),
        &serde_json::to_vec(&observation("s1", "a1", 1, vec![device(1)])).unwrap(),
    ));
    lines.push(serde_json::to_vec(&status("s1", "a1")).unwrap());
    write_lines(&file, &lines);

    let (ok, stdout, all) = ingest(&db, &file);
    assert!(ok, "ingest failed:\n{}", String::from_utf8_lossy(&all));
    assert_logs_safe(&all, "ingest");
    assert_eq!(
        lines_with(&all, "message rejected"),
        bad.len(),
        "one rejection line per malformed message:\n{}",
        String::from_utf8_lossy(&all)
    );
    let out: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(out["bad_lines"], bad.len() as u64, "{out}");
    assert_eq!(out["ingest"]["messages"], 1, "{out}");
    assert_eq!(out["ingest"]["statuses"], 1, "{out}");
    let mut want: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, reason) in &bad {
        *want.entry(reason).or_default() += 1;
    }
    for (reason, n) in want {
        assert_eq!(
            out["ingest"]["rejected"][reason], n,
            "rejections for {reason}: {out}"
        );
    }
    // Every rejection names its reason, and the topic appears escaped.
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains(r"\x1b[31mred"),
        "escaped topic missing:\n{text}"
    );
    assert!(text.contains("truncated"), "long topic not marked:\n{text}");
}

#[test]
fn hostile_field_values_are_bounded_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let file = dir.path().join("hostile.jsonl");

    let mut d1 = device(1);
    let mut manufacturer = "\u{1b}[31mACME\u{1b}]0;owned\u{7}".to_string();
    manufacturer.push_str(&"M".repeat(1 << 20));
    d1["classification"]["manufacturer"] = json!(manufacturer);
    d1["classification"]["model"] = json!("Model\nFORGED line\r\u{202e}drowssap");
    d1["classification"]["device_type"] = json!("toaster");
    d1["classification"]["confidence"] = json!(7.5);
    d1["oui_vendor"] = json!("Vendor\u{0}\u{9b}31m");
    d1["seen"]["count"] = json!(u64::MAX);
    d1["facts"][0]["value"] = json!("V".repeat(3 << 20));
    d1["services_offered"] = json!([
        {"transport": "tcp", "port": 0, "peers": 1, "seen": seen(T0, T0)},
        {"transport": "tcp", "port": 104, "app": "dicom", "peers": 1, "seen": seen(T0, T0)},
        {"transport": "sctp", "port": 9, "peers": 1, "seen": seen(T0, T0)},
    ]);
    let mut d2 = device(2);
    d2["key"] = json!("mac:02:00:00:00:00:02@65535");
    d2["vlan"] = json!(65535);
    let mut d3 = device(3);
    d3["seen"] = seen(T0 + 10, T0);
    let mut d4 = device(4);
    d4["key"] = json!("mac:\u{1b}[2J");
    // Roles: one known word kept once with its evidence capped; an unknown word and a repeat
    // dropped. Candidates: a score out of range clamped.
    let mut d5 = device(5);
    d5["roles"] = json!([
        {"role": "dhcp_server", "evidence": vec!["offered udp/67"; 20]},
        {"role": "toaster", "evidence": []},
        {"role": "dhcp_server", "evidence": []},
    ]);
    d5["classification"]["candidates"] = json!([
        {"attribute": "device_type", "value": "ct", "score": 9.0, "rules": ["r (f)"], "chosen": true},
    ]);
    let mut d6 = device(6);
    d6["addresses"] = Value::Array(
        (0..100)
            .map(|i| json!({"ip": format!("10.6.0.{i}"), "source": "ip", "seen": seen(T0, T0)}))
            .collect(),
    );
    let accepted = observation("s1", "a1", 1, vec![d1, d2, d3, d4, d5, d6]);

    let mut st = status("s1", "a1");
    st["time"] = json!("not a time");
    let mut negative_time = observation("s1", "a1", 4, vec![device(7)]);
    negative_time["time_us"] = json!(-1);
    let too_many = observation("s1", "a1", 5, (0..10_001).map(|_| device(8)).collect());
    let lines = vec![
        with_topic(devices_topic(), &serde_json::to_vec(&accepted).unwrap()),
        // A 60 kB site: refused whole, with or without a topic.
        serde_json::to_vec(&observation(&"s".repeat(60_000), "a1", 2, vec![device(9)])).unwrap(),
        with_topic(
            format!("ward/v1/{}/a1/devices", "s".repeat(60_000)).as_bytes(),
            &serde_json::to_vec(&observation(&"s".repeat(60_000), "a1", 2, vec![device(9)]))
                .unwrap(),
        ),
        serde_json::to_vec(&observation("s1", "a1", 0, vec![device(10)])).unwrap(),
        serde_json::to_vec(&negative_time).unwrap(),
        with_topic(status_topic(), &serde_json::to_vec(&st).unwrap()),
        serde_json::to_vec(&too_many).unwrap(),
    ];
    write_lines(&file, &lines);

    let (ok, stdout, all) = ingest(&db, &file);
    assert!(ok, "ingest failed:\n{}", String::from_utf8_lossy(&all));
    let out: Value = serde_json::from_slice(&stdout).unwrap();
    let ing = &out["ingest"];
    assert_eq!(ing["messages"], 1, "{out}");
    assert_eq!(ing["statuses"], 0, "{out}");
    assert_eq!(ing["rejected"]["invalid_field"], 5, "{out}");
    assert_eq!(ing["rejected"]["topic"], 1, "{out}");
    let adj = &ing["adjusted"];
    assert_eq!(adj["devices_dropped"], 3, "vlan, times, key: {out}");
    assert_eq!(
        adj["items_dropped"], 4,
        "port 0, sctp, an unknown role, a repeated role: {out}"
    );
    assert_eq!(adj["device_types_unknown"], 1, "{out}");
    assert_eq!(adj["lists_capped"], 2, "addresses, role evidence: {out}");
    assert!(adj["texts_truncated"].as_u64().unwrap() >= 2, "{out}");
    assert!(
        adj["control_characters_replaced"].as_u64().unwrap() >= 3,
        "{out}"
    );
    assert!(adj["numbers_clamped"].as_u64().unwrap() >= 3, "{out}");
    assert_logs_safe(&all, "ingest");
    assert_eq!(lines_with(&all, "message rejected"), 6);
    assert_eq!(lines_with(&all, "message adjusted"), 1);

    // What is stored.
    let inv = cli_json(&db, &["devices", "--json"]);
    let devs = inv["devices"].as_array().unwrap();
    let keys: Vec<&str> = devs
        .iter()
        .flat_map(|d| d["sightings"].as_array().unwrap())
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(devs.len(), 3, "{keys:?}");
    for k in [
        "mac:02:00:00:00:00:01",
        "mac:02:00:00:00:00:05",
        "mac:02:00:00:00:00:06",
    ] {
        assert!(keys.contains(&k), "{k} not stored: {keys:?}");
    }
    let text = inv.to_string();
    assert!(!text.contains("65535"), "VLAN 65535 stored");
    let d1 = devs
        .iter()
        .find(|d| d["macs"][0] == "02:00:00:00:00:01")
        .unwrap();
    let attr = |name: &str| -> String {
        d1["attributes"][name][0]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing: {d1}"))
            .to_string()
    };
    let m = attr("manufacturer");
    assert_eq!(m.chars().count(), 256, "{m}");
    assert!(m.starts_with("\u{fffd}[31mACME"), "{m}");
    assert_eq!(attr("dicom.manufacturer").chars().count(), 1024);
    assert_eq!(attr("device_type"), "unknown");
    assert!(!attr("model").contains('\n'), "{}", attr("model"));
    assert!(!attr("model").contains('\u{202e}'), "{}", attr("model"));
    assert!(!attr("oui_vendor").contains('\u{0}'));
    for v in d1["attributes"].as_object().unwrap().values() {
        for a in v.as_array().unwrap() {
            let s = a["value"].as_str().unwrap();
            assert!(!s.chars().any(char::is_control), "{s:?}");
        }
    }
    let ports: Vec<u64> = d1["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![104], "{d1}");
    let d5 = devs
        .iter()
        .find(|d| d["macs"][0] == "02:00:00:00:00:05")
        .unwrap();
    let roles: Vec<&str> = d5["attributes"]["role"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["dhcp_server"], "{d5}");
    let d6 = devs
        .iter()
        .find(|d| d["macs"][0] == "02:00:00:00:00:06")
        .unwrap();
    assert_eq!(d6["identities"]["ip"].as_array().unwrap().len(), 64);

    // The tables people read print no control character.
    for args in [
        vec!["devices"],
        vec!["report", "devices", "--format", "table"],
        vec!["report", "installed-base", "--format", "table"],
    ] {
        let out = cli(&db, &args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            !out.stdout
                .iter()
                .any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f),
            "{args:?} printed a control byte:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("\u{202e}"),
            "{args:?}"
        );
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            assert!(!l.starts_with("FORGED"), "{args:?}: {l}");
        }
    }
}

/// The collector's device-type vocabulary is the agent's rules' vocabulary.
#[test]
fn device_type_vocabulary_matches_the_agent() {
    assert_eq!(
        ward_protocols::schema::observation::DEVICE_TYPES,
        ward_agent::rules::DEVICE_TYPES
    );
}

fn http_get(port: u16, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
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
    (status, text)
}

fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The same through a real Mosquitto and `serve` (topics with spaces, quotes, a bidirectional
/// override; payloads carrying canaries); `/metrics` counts by reason.
#[test]
fn serve_logs_rejections_safely_and_counts_them_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_mosq, mport) = mosquitto(&d.join("mosquitto"));
    let db = d.join("ward.db");
    let out = cli(
        &db,
        &[
            "token",
            "create",
            "--name",
            "t",
            "--role",
            "clinical_engineering",
        ],
    );
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let log = d.join("collector.log");
    let url = format!("mqtt://127.0.0.1:{mport}");
    let mut c = serve(
        &db,
        &[
            "--broker",
            &url,
            "--client-id",
            "ward-test-validation",
            "--log-level",
            "debug",
        ],
        &log,
    );
    let http = c.http_port();
    let ok = serde_json::to_vec(&observation("s1", "a1", 1, vec![device(1)])).unwrap();
    let mut msgs: Vec<(Vec<u8>, Vec<u8>, &str)> = malformed()
        .into_iter()
        .filter_map(|(line, reason)| {
            // Only messages with a topic the collector subscribes to reach it.
            let sp = line.iter().position(|&b| b == b' ')?;
            let (topic, payload) = (line[..sp].to_vec(), line[sp + 1..].to_vec());
            // Mosquitto refuses control characters in topics: those reach the collector only
            // through a replayed file (the test above).
            if !topic.starts_with(b"ward/v1/")
                || topic.ends_with(b"/other")
                || topic.iter().any(|&b| b < 0x20 || b == 0x7f)
            {
                return None;
            }
            Some((topic, payload, reason))
        })
        .collect();
    msgs.push((
        "ward/v1/s1 reason=\"forged\" \u{202e}/a1/devices"
            .as_bytes()
            .to_vec(),
        ok.clone(),
        "topic",
    ));
    msgs.push((devices_topic().to_vec(), ok.clone(), "accepted"));
    for (i, (topic, payload, _)) in msgs.iter().enumerate() {
        let f = d.join(format!("payload-{i}"));
        std::fs::write(&f, payload).unwrap();
        let st = Command::new(find_binary("mosquitto_pub"))
            .args(["-h", "127.0.0.1", "-p", &mport.to_string(), "-q", "1", "-t"])
            .arg(std::ffi::OsStr::new(
                std::str::from_utf8(topic).expect("test topics are UTF-8"),
            ))
            .arg("-f")
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success(), "mosquitto_pub {i}");
    }
    let rejected = msgs.iter().filter(|m| m.2 != "accepted").count() as u64;
    let mut metrics = String::new();
    eventually("every message counted", || {
        let (st, body) = http_get(http, "/metrics", &token);
        metrics = body;
        let total: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("ward_collector_ingest_rejected_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        st == 200
            && total == rejected
            && metric(&metrics, "ward_collector_ingest_messages_total") == 1
    });
    let mut want: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, _, reason) in &msgs {
        if *reason != "accepted" {
            *want.entry(reason).or_default() += 1;
        }
    }
    for (reason, n) in want {
        assert_eq!(
            metric(
                &metrics,
                &format!("ward_collector_ingest_rejected_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}:\n{metrics}"
        );
    }
    c.sigterm();
    let all = std::fs::read(&log).unwrap();
    assert_logs_safe(&all, "serve");
    assert_eq!(
        lines_with(&all, "message rejected") as u64,
        rejected,
        "{}",
        String::from_utf8_lossy(&all)
    );
}
