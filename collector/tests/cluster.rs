//! Several collectors on one PostgreSQL database (issue 22, point 2), as real processes: two
//! `ward-collector serve` share the database while the same observations reach both at once
//! (each through its own embedded broker, from two agents replaying the same captures) and two
//! `ward-collector ingest` replay one JSON-lines file concurrently. The inventory must equal a
//! single SQLite collector's (one device per identity, each merge explained once), one collector
//! evaluates at a time (the lease), each alert reaches the webhook once, and when the lease
//! holder is killed with SIGKILL the other takes over and alerts what opens next.
//!
//! PostgreSQL only: it runs in the suite's PostgreSQL pass (scripts/test.sh), which CI always
//! runs; on SQLite there is no lease to take over.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::*;
use serde_json::Value;

/// The captures, as the agent's observation stream (JSON lines).
fn observations(dir: &Path, name: &str, captures: &[&str], agent: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new(agent_bin());
    cmd.arg("read");
    for c in captures {
        cmd.arg(fixtures().join(c));
    }
    let o = cmd
        .args([
            "--output",
            "jsonl:-",
            "--site",
            "north",
            "--agent-id",
            agent,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&out, &o.stdout).unwrap();
    out
}

/// The agent replaying `captures` into the broker on `port`.
fn publish(dir: &Path, port: u16, captures: &[&str], agent: &str) -> std::process::Child {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("read");
    for c in captures {
        cmd.arg(fixtures().join(c));
    }
    cmd.args(["--output", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--site", "north", "--agent-id", agent])
        .arg("--spool-dir")
        .arg(dir.join(format!("spool-{agent}-{port}")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `ward-collector --db <db> <args>` with the database named exactly (the oracle's SQLite file
/// bypasses the PostgreSQL mapping of `cli`).
fn collector(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .env("WARD_COLLECTOR_LOG", "warn")
        .output()
        .unwrap()
}

/// The inventory as sets of MACs per device (ids differ between databases; what a device *is*
/// does not), with each device's identities.
fn devices(db: &str) -> BTreeMap<Vec<String>, Value> {
    let o = collector(db, &["devices", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut macs: Vec<String> = d["macs"]
                .as_array()
                .map(|a| a.iter().map(|m| m.to_string()).collect())
                .unwrap_or_default();
            macs.sort();
            (macs, d["identities"].clone())
        })
        .collect()
}

fn merges(db: &str) -> Vec<Value> {
    let o = collector(db, &["merges"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `(event, flag id)` of each alert the webhook received; asserts none came twice.
fn alert_keys(hooks: &Mutex<Vec<Value>>) -> BTreeSet<(String, i64)> {
    let all: Vec<(String, i64)> = hooks
        .lock()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["event"].as_str().unwrap_or("").to_string(),
                v["flag"]["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let set: BTreeSet<(String, i64)> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "an alert was sent twice: {all:?}");
    set
}

/// The start of a lease holder's name (`host:pid:…`) for the collector with `pid`.
fn survivor_holder_prefix(pid: u32) -> String {
    let host = hostname_of_this_machine();
    format!("{host}:{pid}:")
}

fn hostname_of_this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn lease_holder(db: &Path) -> Option<String> {
    db_rows(db, "SELECT holder FROM leases WHERE name = 'evaluator'")
        .into_iter()
        .next()
        .and_then(|r| r[0].clone())
}

#[test]
fn two_collectors_on_one_database_store_once_evaluate_once_and_alert_once() {
    if sqlite() {
        eprintln!("PostgreSQL only: runs in the suite's PostgreSQL pass (WARD_TEST_POSTGRES)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let url = db_arg(&db);
    let (hook_port, hooks) = alert_webhook();
    let cfg = d.join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[alerts]\nwebhook_url = \"http://127.0.0.1:{hook_port}/ward\"\n\
             webhook_backoff_initial_ms = 100\n\
             [ingest]\nevaluate_debounce_secs = 0\nevaluator_lease_secs = 3\n"
        ),
    )
    .unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--evaluate-interval",
        "1",
    ];
    let mut a = serve(&db, &args, &d.join("a.log"));
    let mut b = serve(&db, &args, &d.join("b.log"));

    // The same captures reach both collectors at once (two agents, one per broker), and the
    // same JSON lines are ingested twice concurrently.
    let first = ["dicom-dcmtk.pcap", "hl7-mllp.pcap"];
    let file = observations(d, "first.jsonl", &first, "span-file");
    let mut agents = vec![
        publish(d, a.mqtt_port(), &first, "span-a"),
        publish(d, b.mqtt_port(), &first, "span-b"),
    ];
    let ingests: Vec<std::process::Child> = (0..2)
        .map(|_| {
            Command::new(collector_bin())
                .arg("--db")
                .arg(&url)
                .arg("ingest")
                .arg(&file)
                .env("WARD_COLLECTOR_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in ingests {
        assert!(c.wait().unwrap().success());
    }
    for mut c in agents.drain(..) {
        assert!(c.wait().unwrap().success());
    }

    // The oracle: one SQLite collector given the same streams one after the other.
    let oracle = d.join("oracle.db");
    let oracle = oracle.to_str().unwrap();
    for agent in ["span-a", "span-b"] {
        let f = observations(d, &format!("{agent}.jsonl"), &first, agent);
        assert!(collector(oracle, &["ingest", f.to_str().unwrap()])
            .status
            .success());
    }
    assert!(collector(oracle, &["ingest", file.to_str().unwrap()])
        .status
        .success());
    // Each message of the file stored once although two ingests replayed it.
    let agents_rows = db_rows(
        &db,
        "SELECT agent_id, count(*), count(DISTINCT (instance, seq)) FROM messages GROUP BY agent_id",
    );
    for r in &agents_rows {
        assert_eq!(r[1], r[2], "a message stored twice: {agents_rows:?}");
    }
    let want = devices(oracle);
    eventually("both collectors stored what the agents sent", || {
        devices(&url) == want
    });
    // One device per MAC: no MAC on two live devices.
    let dup = db_rows(
        &db,
        "SELECT kind, value, count(*) FROM identities i JOIN devices d ON d.id = i.device_id
         WHERE d.merged_into IS NULL AND kind = 'mac'
         GROUP BY kind, value HAVING count(*) > 1",
    );
    assert!(dup.is_empty(), "an identity on two devices: {dup:?}");
    // Each merge explained once, as many as the single collector made.
    let m = merges(&url);
    let pairs: BTreeSet<(String, String)> = m
        .iter()
        .map(|v| (v["kept"].to_string(), v["absorbed"].to_string()))
        .collect();
    assert_eq!(pairs.len(), m.len(), "a merge recorded twice: {m:#?}");
    assert_eq!(m.len(), merges(oracle).len(), "{m:#?}");

    // One evaluator: flags were opened and alerted, each alert once.
    eventually("the lease is held", || lease_holder(&db).is_some());
    eventually("alerts for the opened flags", || {
        !alert_keys(&hooks).is_empty()
    });
    let open = db_rows(&db, "SELECT count(*) FROM flags WHERE status = 'open'");
    let open: usize = open[0][0].as_deref().unwrap().parse().unwrap();
    assert!(open > 0, "no flag opened");
    eventually("every opened flag alerted", || {
        alert_keys(&hooks)
            .iter()
            .filter(|(e, _)| e == "opened")
            .count()
            >= open
    });

    // Kill the lease holder outright; the other takes the lease once it expires and alerts the
    // flags that open next.
    let holder = lease_holder(&db).unwrap();
    let holder_pid: u32 = holder.split(':').nth(1).unwrap().parse().unwrap();
    let (victim, survivor) = if a.child.id() == holder_pid {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(victim.child.id(), holder_pid, "holder {holder}");
    victim.kill9();
    let before = alert_keys(&hooks).len();
    let more = ["dicom-pynetdicom.pcap", "astm.pcap", "poct1a.pcap"];
    let later = observations(d, "later.jsonl", &more, "span-later");
    let o = collector(&url, &["ingest", later.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // And a contract that resolves a flag opened before the kill: its resolution is the
    // survivor's to alert.
    let contracts = d.join("c.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n  - id: C-CT\n    supplier: WARD TEST MEDICAL\n    products: [\"WardScan *\"]\n",
    )
    .unwrap();
    let o = collector(&url, &["contracts", "import", contracts.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let survivor_pid = survivor.child.id();
    eventually("the survivor took the lease over", || {
        lease_holder(&db).is_some_and(|h| h.split(':').nth(1) == Some(&survivor_pid.to_string()))
    });
    eventually("the new flags alerted by the survivor", || {
        let open: usize = db_rows(&db, "SELECT count(*) FROM flags WHERE status = 'open'")[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        let keys = alert_keys(&hooks);
        keys.len() > before && keys.iter().filter(|(e, _)| e == "opened").count() >= open
    });
    eventually("nothing left unalerted", || {
        db_rows(
            &db,
            "SELECT count(*) FROM flags WHERE (status = 'open' AND alerted & 1 = 0)
               OR (status = 'resolved' AND alerted & 2 = 0)",
        )[0][0]
            .as_deref()
            == Some("0")
    });
    // Every flag event in the database was alerted exactly once (alert_keys asserts "once").
    let events: usize = db_rows(&db, "SELECT count(*) + count(resolved_us) FROM flags")[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        alert_keys(&hooks).len(),
        events,
        "{:#?}",
        hooks.lock().unwrap()
    );
    // The survivor's /metrics: its own lease gauge and the cluster's numbers from the database.
    let admin = token(&db, &["--name", "ops", "--role", "admin"]);
    let (status, metrics) = http(survivor.http_port(), "GET", "/metrics", Some(&admin));
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("\nward_collector_evaluator_lease 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("\nward_cluster_devices {}\n", devices(&url).len())),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nward_cluster_alerts_pending 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "holder=\"{}",
            survivor_holder_prefix(survivor_pid)
        )),
        "{metrics}"
    );
    eprintln!(
        "{} devices, {} merges, {} alerts ({before} before the holder {holder} was killed), lease now {:?}",
        want.len(),
        m.len(),
        alert_keys(&hooks).len(),
        lease_holder(&db)
    );
    assert!(survivor.sigterm().success(), "{}", survivor.log_text());
}

/// Data stored by a collector that does not hold the evaluator's lease (sites split between
/// collectors) is evaluated by the holder within seconds — it reads the shared ingest clock
/// every second — not at its next scheduled pass (an hour here).
#[test]
fn the_lease_holder_evaluates_what_another_collector_stored() {
    if sqlite() {
        eprintln!("PostgreSQL only: runs in the suite's PostgreSQL pass (WARD_TEST_POSTGRES)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let cfg = d.join("collector.toml");
    std::fs::write(
        &cfg,
        "[alerts]\nmqtt = false\n[ingest]\nevaluate_debounce_secs = 0\nevaluator_lease_secs = 30\n",
    )
    .unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--evaluate-interval",
        "3600",
    ];
    let mut a = serve(&db, &args, &d.join("a.log"));
    eventually("the first collector holds the lease", || {
        lease_holder(&db).is_some()
    });
    let holder = lease_holder(&db).unwrap();
    let mut b = serve(&db, &args, &d.join("b.log"));
    // Only B's embedded broker receives the agent: B stores, A evaluates.
    let mut agent = publish(
        d,
        b.mqtt_port(),
        &["dicom-dcmtk.pcap", "hl7-mllp.pcap"],
        "span-b",
    );
    assert!(agent.wait().unwrap().success());
    let open = || -> usize {
        db_rows(&db, "SELECT count(*) FROM flags WHERE status = 'open'")[0][0]
            .as_deref()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0)
    };
    let stored = std::time::Instant::now();
    eventually("flags opened for what the other collector stored", || {
        open() > 0
    });
    // Without the clock this never happens within `eventually`'s minute: the holder's next
    // pass is an hour away, and B's ingest tells only B's evaluator.
    eprintln!(
        "flags visible {:?} after the agent finished",
        stored.elapsed()
    );
    assert_eq!(
        lease_holder(&db).as_deref(),
        Some(holder.as_str()),
        "A kept the lease"
    );
    assert!(a.sigterm().success(), "{}", a.log_text());
    assert!(b.sigterm().success(), "{}", b.log_text());
}
