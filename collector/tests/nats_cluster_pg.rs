//! The scale-out path under faults (issue 22, point 4), as real processes: a 3-node NATS cluster
//! (JetStream, an MQTT listener per node), three `ward-collector serve` on one PostgreSQL
//! database, each with its own client id and persistent session, each connected first to a
//! different node with the others listed for failover, and three agents replaying their
//! messages at QoS 1, one per node. A contract is imported first, so flags open (and alerts go
//! to a webhook) while the messages arrive. Mid-stream one NATS node and one collector are
//! `kill -9`ed and restarted:
//!
//! - NATS 2.9's MQTT has no `$share` groups, so every collector receives every message: three
//!   collectors give high availability, not load splitting. The store's idempotence (site,
//!   agent, instance, seq) makes the two extra copies of each message no-ops, whichever
//!   collector commits first;
//! - every message a publisher saw acknowledged is stored exactly once, and the inventory is
//!   the one a single Mosquitto with one collector builds from the same input (the oracle);
//! - after a final evaluation the open flags are the oracle's;
//! - one collector evaluated and alerted (the `evaluator` lease's holder: the others' evaluation
//!   counters stay at 0), and each flag event reached the webhook exactly once.
//!
//! The collector killed is one that does not hold the lease. The holder marks the alerts it
//! claims as sent in the same transaction (so no other collector sends them again); killed
//! between that commit and the webhook's answer, it would lose what it had claimed (at most
//! once, not exactly once), and the moment of a kill cannot avoid that window. The takeover of
//! the lease when its holder is killed is `cluster.rs`'s test.
//!
//! PostgreSQL only, like `cluster.rs`: it runs in the suite's PostgreSQL pass (scripts/test.sh),
//! which CI always runs; on SQLite several collectors cannot share a database.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::replay::*;
use common::*;
use serde_json::Value;

/// Per agent: 600 messages of 3 devices from a pool of 300 shared by the three agents, at 60
/// messages per second (10 s of traffic, so both faults land mid-stream even on a busy
/// machine). Fewer than `nats_cluster.rs`: every message is ingested three times here.
const LOAD: Load = Load {
    n: 600,
    per: 3,
    pool: 300,
    rate: 60,
    wait: Duration::from_secs(150),
    site: "bench",
};
const N: u64 = LOAD.n;
const AGENTS: [&str; 3] = ["pg-a", "pg-b", "pg-c"];
/// The contract every synthetic device (a WARD TEST MEDICAL WardScan 64 CT) falls under: its
/// support ended (a flag per device) and it pays for fewer devices than are linked (a flag on
/// the contract); no asset register (a flag per device).
const CONTRACT: &str = "contracts:\n  - id: C-CT\n    supplier: WARD TEST MEDICAL\n    \
    products: [\"WardScan *\"]\n    end_of_support: 2020-01-01\n    quantity: 100\n";

fn import_contract(dir: &Path, db: &Path) {
    let file = dir.join("contracts.yaml");
    std::fs::write(&file, CONTRACT).unwrap();
    let o = cli(db, &["contracts", "import", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn evaluate(db: &Path) {
    let o = cli(db, &["evaluate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The open flags as `(kind, subject, detail, severity)`, a device's subject written as its
/// MACs (device ids differ between databases; what a device is does not).
fn open_flags(db: &Path) -> BTreeSet<(String, String, String, String)> {
    let macs: BTreeMap<String, String> = cli_json(db, &["devices", "--json"])["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut m: Vec<String> = d["macs"]
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            m.sort();
            (format!("device:{}", d["id"]), format!("device:{m:?}"))
        })
        .collect();
    db_rows(
        db,
        "SELECT kind, subject, detail, severity FROM flags WHERE status = 'open'",
    )
    .into_iter()
    .map(|r| {
        let text = |i: usize| r[i].clone().unwrap_or_default();
        let subject = text(1);
        let subject = macs.get(&subject).cloned().unwrap_or(subject);
        (text(0), subject, text(2), text(3))
    })
    .collect()
}

/// Every flag event the database holds: `(opened, id)` for each flag, `(resolved, id)` for
/// each resolved one.
fn flag_events(db: &Path) -> BTreeSet<(String, i64)> {
    db_rows(db, "SELECT id, resolved_us FROM flags")
        .into_iter()
        .flat_map(|r| {
            let id: i64 = r[0].as_deref().unwrap().parse().unwrap();
            let resolved = r[1].is_some();
            std::iter::once(("opened".to_string(), id))
                .chain(resolved.then(|| ("resolved".to_string(), id)))
        })
        .collect()
}

/// How many times the webhook received each `(event, flag id)`.
fn alert_counts(hooks: &Mutex<Vec<Value>>) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for v in hooks.lock().unwrap().iter() {
        let key = (
            v["event"].as_str().unwrap_or("").to_string(),
            v["flag"]["id"].as_i64().unwrap_or(-1),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn lease_holder(db: &Path) -> Option<String> {
    db_rows(db, "SELECT holder FROM leases WHERE name = 'evaluator'")
        .into_iter()
        .next()
        .and_then(|r| r[0].clone())
}

/// The value of the unlabelled metric `name` in a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn three_collectors_on_a_nats_cluster_survive_kill_9_of_a_node_and_of_a_collector() {
    if sqlite() {
        eprintln!("PostgreSQL only: runs in the suite's PostgreSQL pass (WARD_TEST_POSTGRES)");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut nats = NatsCluster::start(&d.join("nats"));
    let db = d.join("ward.db");
    import_contract(d, &db);
    let (hook_port, hooks) = alert_webhook();
    let cfg = d.join("collector.toml");
    // Alerts to the webhook only (MQTT alerts would go into the cluster under test); every
    // change evaluated at once, and checked every second.
    std::fs::write(
        &cfg,
        format!(
            "[alerts]\nmqtt = false\nwebhook_url = \"http://127.0.0.1:{hook_port}/ward\"\n\
             webhook_backoff_initial_ms = 100\n[ingest]\nevaluate_debounce_secs = 0\n"
        ),
    )
    .unwrap();
    let urls: Vec<String> = (0..3).map(|i| nats.mqtt_urls_from(i)).collect();
    let ids = ["ward-c0", "ward-c1", "ward-c2"];
    let start = |i: usize| {
        serve(
            &db,
            &[
                "--broker",
                &urls[i],
                "--client-id",
                ids[i],
                "--config",
                cfg.to_str().unwrap(),
                "--evaluate-interval",
                "1",
            ],
            &d.join(format!("c{i}.log")),
        )
    };
    // Collector 0 first, until it holds the lease: the test knows the evaluator.
    let c0 = start(0);
    let c0_pid = c0.child.id().to_string();
    eventually("collector 0 holds the evaluator lease", || {
        lease_holder(&db).is_some_and(|h| h.split(':').nth(1) == Some(c0_pid.as_str()))
    });
    let mut c = [c0, start(1), start(2)];

    let agents: Vec<_> = AGENTS
        .iter()
        .enumerate()
        .map(|(i, name)| agent(LOAD, d, nats.ports[i].mqtt, name))
        .collect();
    // Node 0 (the evaluator's and agent A's) when A is a quarter through.
    wait_acked(&LOAD, d, AGENTS[0], N / 4);
    nats.kill9(0);
    let at_node_kill = stored(&db);
    std::thread::sleep(Duration::from_secs(1));
    nats.restart(0);
    // Collector 1 when agent B (on node 1) is half through: what it had received but not
    // committed was never acknowledged, and its session delivers it again after the restart.
    wait_acked(&LOAD, d, AGENTS[1], N / 2);
    c[1].kill9();
    let at_collector_kill = stored(&db);
    assert!(
        at_collector_kill < (3 * N) as i64,
        "everything stored before the collector's kill; slow the rate"
    );
    std::thread::sleep(Duration::from_millis(500));
    c[1] = start(1);
    let runs: Vec<u32> = agents.into_iter().map(|a| a.join().unwrap()).collect();
    assert!(
        runs[0] > 1,
        "the agent of node 0 finished before the kill; slow the rate"
    );
    wait_stored(&LOAD, &db, (3 * N) as i64, &[&c[0], &c[1], &c[2]]);
    let all_stored = t0.elapsed();

    // The final evaluation, over everything stored; the evaluator alerts what it changed.
    evaluate(&db);
    eventually("every flag event alerted", || {
        let unalerted = db_rows(
            &db,
            "SELECT count(*) FROM flags WHERE (status = 'open' AND alerted & 1 = 0)
               OR (status = 'resolved' AND alerted & 2 = 0)",
        );
        unalerted[0][0].as_deref() == Some("0")
            && alert_counts(&hooks).len() >= flag_events(&db).len()
    });
    // One evaluator: collector 0 held the lease throughout; the others never evaluated.
    let admin = token(&db, &["--name", "ops", "--role", "admin"]);
    for (i, p) in c.iter().enumerate() {
        let (status, text) = http(p.http_port(), "GET", "/metrics", Some(&admin));
        assert_eq!(status, 200, "{text}");
        let held = metric(&text, "ward_collector_evaluator_lease");
        let evaluations = metric(&text, "ward_collector_evaluations_total");
        if i == 0 {
            assert_eq!(held, Some(1), "collector 0 lost the lease:\n{text}");
            assert!(evaluations.is_some_and(|n| n > 0), "{text}");
        } else {
            assert_eq!(held, Some(0), "collector {i} holds the lease:\n{text}");
            assert_eq!(evaluations, Some(0), "collector {i} evaluated:\n{text}");
        }
    }
    assert!(
        lease_holder(&db).is_some_and(|h| h.split(':').nth(1) == Some(c0_pid.as_str())),
        "{:?}",
        lease_holder(&db)
    );
    // SIGTERM drains what is in flight (the evaluator last: it hands the lease on); then the
    // counts are final.
    for i in [1, 2, 0] {
        assert!(c[i].sigterm().success(), "{}", c[i].log_text());
    }
    let text = c[0].log_text();
    assert!(
        text.contains("moving to the next broker node"),
        "collector 0 never moved off the killed node:\n{text}"
    );
    assert_acked_stored_once(&LOAD, d, &db, &AGENTS);

    // Each flag event alerted exactly once across the three collectors.
    let counts = alert_counts(&hooks);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "alerts sent more than once: {twice:?}");
    let events = flag_events(&db);
    let alerted: BTreeSet<(String, i64)> = counts.keys().cloned().collect();
    assert_eq!(
        alerted,
        events,
        "alerted vs flag events: missing {:?}, extra {:?}",
        events.difference(&alerted).take(10).collect::<Vec<_>>(),
        alerted.difference(&events).take(10).collect::<Vec<_>>()
    );

    let checked = t0.elapsed();
    // The oracle: the same contract and input through one Mosquitto into one collector.
    let odb = oracle(&LOAD, d, &AGENTS, &[], |odb| import_contract(d, odb));
    let devices = assert_same_inventory(&db, &odb);
    evaluate(&odb);
    let (got, want) = (open_flags(&db), open_flags(&odb));
    for kind in ["end_of_support_passed", "over_contracted_quantity"] {
        assert!(
            want.iter().any(|f| f.0 == kind),
            "the oracle opened no {kind} flag: {want:?}"
        );
    }
    assert_eq!(
        got,
        want,
        "open flags differ from the oracle's: only here {:?}, only in the oracle {:?}",
        got.difference(&want).take(10).collect::<Vec<_>>(),
        want.difference(&got).take(10).collect::<Vec<_>>()
    );
    eprintln!(
        "node 0 killed with {at_node_kill} of {} stored, collector 1 with {at_collector_kill}; \
         agents' runs {runs:?}; all stored once; inventory ({devices} devices) and {} open \
         flags equal to the oracle's; {} alerts, each once, all from collector 0 \
         (all stored at {all_stored:.1?}, alerts and lease checked at {checked:.1?}, oracle \
         compared at {:.1?})",
        3 * N,
        got.len(),
        counts.len(),
        t0.elapsed()
    );
}
