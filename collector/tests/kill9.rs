//! `kill -9` during ingest of a large replay, then restart: every message the broker
//! acknowledged to the publisher ends up stored exactly once.
//!
//! - Through a real Mosquitto with persistence: the collector holds a persistent session and
//!   acknowledges only after its database commit, so what it had not committed is redelivered
//!   and what it had is deduplicated.
//! - Through the default deployment, the collector's embedded broker: the collector's PUBACK
//!   leaves only after the commit, so every message the publisher saw acknowledged is in the
//!   database even though the collector died mid-ingest.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Seqs of the messages stored for `agent`, read from the database file itself.
fn stored_seqs(db: &Path, agent: &str) -> std::collections::BTreeSet<u64> {
    assert!(agent.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    db_rows(
        db,
        &format!("SELECT seq FROM messages WHERE agent_id = '{agent}'"),
    )
    .into_iter()
    .map(|r| r[0].as_deref().unwrap().parse::<u64>().unwrap())
    .collect()
}

fn stored(db: &Path) -> i64 {
    let out = cli(db, &["status"]);
    if !out.status.success() {
        return -1;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["messages"].as_i64())
        .unwrap_or(-1)
}

#[test]
fn kill_9_mid_ingest_loses_nothing_and_duplicates_nothing() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (_mosq, port) = mosquitto(&dir.path().join("mosquitto"));
    let db = dir.path().join("ward.db");
    let url = format!("mqtt://127.0.0.1:{port}");
    let args = ["--broker", url.as_str(), "--client-id", "ward-collector-k9"];
    let log = dir.path().join("collector.log");
    let mut c = serve(&db, &args, &log);

    let out = Command::new(publisher())
        .args([
            &format!("127.0.0.1:{port}"),
            &N.to_string(),
            "4",
            "k9",
            "3000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every message is now acknowledged by the broker. Kill the collector mid-ingest.
    let start = Instant::now();
    while stored(&db) < (N / 4) as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ingest stalled:\n{}",
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill9();
    let at_kill = stored(&db);
    assert!(
        at_kill < N as i64,
        "all {N} stored before the kill; make the replay larger"
    );

    let mut c = serve(&db, &args, &log);
    eventually("every acknowledged message stored", || {
        stored(&db) >= N as i64
    });
    // SIGTERM drains whatever is still in flight (a redelivered duplicate included) before the
    // collector exits, so the count below is final without waiting for anything else.
    let st = c.sigterm();
    assert!(st.success(), "{}", c.log_text());
    assert_eq!(stored(&db), N as i64, "duplicates or extra messages");

    let agents = cli_json(&db, &["agents"]);
    let a = &agents.as_array().unwrap()[0];
    assert_eq!(a["messages"], N, "{agents}");
    assert_eq!(a["missing"], 0, "{agents}");
    let status = cli_json(&db, &["status"]);
    assert_eq!(status["devices"], 3000, "{status}");
    eprintln!("killed with {at_kill} of {N} stored; after restart all {N}, no duplicates");
}

#[test]
fn kill_9_of_the_collector_with_its_embedded_broker_loses_no_acknowledged_message() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let args = ["--listen", "127.0.0.1:0"];
    let log = dir.path().join("collector.log");
    let mut c = serve(&db, &args, &log);
    let listen = format!("127.0.0.1:{}", c.mqtt_port());

    let acked_file = dir.path().join("acked");
    let publisher = Command::new(publisher())
        .args([&listen, &N.to_string(), "4", "k9e", "3000"])
        .env("WARD_ACKED_FILE", &acked_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stored(&db) < (N / 4) as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ingest stalled:\n{}",
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill9();
    let out = publisher.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the publisher finished before the kill; make the replay larger"
    );
    let acked: std::collections::BTreeSet<u64> = std::fs::read_to_string(&acked_file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let committed = stored_seqs(&db, "k9e");
    assert!(!acked.is_empty());
    let lost: Vec<u64> = acked.difference(&committed).copied().collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages are not in the database (first: {:?})",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    assert!((committed.len() as u64) < N, "the kill came too late");
    eprintln!(
        "killed with {} committed, {} acknowledged to the publisher: none lost",
        committed.len(),
        acked.len()
    );
    // The restarted collector opens the same database and goes on.
    let mut c = serve(&db, &args, &log);
    assert!(c.sigterm().success(), "{}", c.log_text());
}
