//! The clustered broker: a 3-node NATS cluster (JetStream, an MQTT listener per node), agents
//! publishing QoS 1 to different nodes at a steady rate, the collector holding a persistent
//! MQTT session in the cluster with every node's URL in `--broker`. One node is `kill -9`ed
//! mid-stream (the one the collector and one agent are connected to) and restarted:
//!
//! - the collector moves to the next node and its session (held in replicated JetStream
//!   streams) goes on there: nothing it had not acknowledged is lost;
//! - the collector itself is `kill -9`ed a moment later and restarted: what it had received
//!   but not committed was never acknowledged and comes again;
//! - the agent of the killed node replays its messages on a surviving node (as its spool
//!   does): what had already arrived is deduplicated by (site, agent, instance, seq);
//! - every message a publisher saw acknowledged is stored exactly once, and the inventory is
//!   the one a single Mosquitto with one collector builds from the same input (the oracle).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Messages per agent.
const N: u64 = 2000;
/// Devices per message and the MAC pool the agents draw from (shared: the same devices are seen
/// by all three agents, so their records merge).
const PER: &str = "4";
const POOL: &str = "1500";
/// Messages per second per agent while the fault happens: ~8 s of traffic.
const RATE: &str = "250";
const AGENTS: [&str; 3] = ["nats-a", "nats-b", "nats-c"];
/// How long progress may take before the test gives up: generous, as a busy CI machine slows
/// the replays and the collector; a healthy run takes 25–45 s in all.
const WAIT: Duration = Duration::from_secs(180);

fn publish(dir: &Path, port: u16, agent: &str, run: &str, rate: Option<&str>) -> Child {
    publish_n(dir, port, agent, run, rate, N, "bench")
}

fn publish_n(
    dir: &Path,
    port: u16,
    agent: &str,
    run: &str,
    rate: Option<&str>,
    n: u64,
    site: &str,
) -> Child {
    let mut cmd = Command::new(publisher());
    cmd.args([
        &format!("127.0.0.1:{port}"),
        &n.to_string(),
        PER,
        agent,
        POOL,
    ])
    .env("WARD_SITE", site)
    .env("WARD_ACKED_FILE", dir.join(format!("acked-{agent}-{run}")))
    // One instance per agent across runs: a rerun replays the same (instance, seq) pairs.
    .env("WARD_INSTANCE", format!("{agent}-1"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(r) = rate {
        cmd.env("WARD_PUBLISH_RATE", r);
    }
    cmd.spawn().expect("running publish-observations")
}

/// An agent on node `port`: publishes at [`RATE`]; whenever its connection fails it starts
/// again on the same node after a short pause and replays everything (the real agent replays
/// what its spool holds unacknowledged; replaying all of it is the harder case for the
/// deduplication), until one run has every message acknowledged. Returns the runs it took.
fn agent(dir: &Path, port: u16, agent: &'static str) -> std::thread::JoinHandle<u32> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let start = Instant::now();
        for run in 1.. {
            let rate = (run == 1).then_some(RATE);
            if finish(publish(&dir, port, agent, &run.to_string(), rate), agent) {
                return run;
            }
            assert!(
                start.elapsed() < WAIT,
                "{agent} could not publish everything in {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        unreachable!()
    })
}

/// Every seq a broker acknowledged to `agent`, over all its runs.
fn acked(dir: &Path, agent: &str) -> BTreeSet<u64> {
    let mut all = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(run) = name.strip_prefix(&format!("acked-{agent}-")) else {
            continue;
        };
        if run.parse::<u32>().is_ok() {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            all.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
        }
    }
    all
}

fn stored_seqs(db: &Path, agent: &str) -> BTreeSet<u64> {
    // Through `db_rows`: the store is SQLite or, in the PostgreSQL pass, a schema there. The
    // agent ids are this file's constants, so they can be spelled into the SQL.
    assert!(agent
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    db_rows(
        db,
        &format!("SELECT seq FROM messages WHERE agent_id = '{agent}'"),
    )
    .into_iter()
    .filter_map(|r| r.first().cloned().flatten())
    .map(|s| s.parse::<u64>().expect("a seq"))
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

fn wait_stored(db: &Path, want: i64, c: &Proc) {
    let start = Instant::now();
    while stored(db) < want {
        assert!(
            start.elapsed() < WAIT,
            "{} of {want} messages stored after {WAIT:?}:\n{}",
            stored(db),
            c.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The inventory as the CLI prints it, without what depends on the order of ingestion rather
/// than on its content: row ids, and first/last-seen times, which the store keeps exact only
/// to within `TIME_RESOLUTION_US` (60 s; a time within that of what the process already
/// wrote is not written again, so which one stays depends on arrival order). Every time in
/// this input lies within 2 s, so any order stores them equal within that resolution.
fn inventory(db: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in [
                    "id",
                    "device_id",
                    "received_us",
                    "merged_into",
                    "first_us",
                    "last_us",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    fn strip_agent(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("agent_id");
                m.values_mut().for_each(strip_agent);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip_agent),
            _ => {}
        }
    }
    let mut v = cli_json(db, &["devices", "--json"])["devices"].take();
    strip(&mut v);
    // A value several agents report alike is attributed to the one whose message was
    // committed first: arrival order again. Which agents saw each device stays compared
    // (`sightings`).
    if let serde_json::Value::Array(a) = &mut v {
        for d in a {
            strip_agent(&mut d["attributes"]);
            strip_agent(&mut d["software_versions"]);
        }
    }
    if let serde_json::Value::Array(a) = &mut v {
        a.sort_by_key(|d| (d["macs"].to_string(), d.to_string()));
    }
    v
}

fn finish(child: Child, what: &str) -> bool {
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    out.status.success()
}

#[test]
fn kill_9_of_a_nats_node_and_of_the_collector_mid_stream_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(&dir.path().join("nats"));
    let db = dir.path().join("ward.db");
    let log = dir.path().join("collector.log");
    // Node 0 first: the collector is on the node that dies.
    let urls = nats.mqtt_urls_from(0);
    let args = [
        "--broker",
        urls.as_str(),
        "--client-id",
        "ward-collector-nats",
    ];
    let mut c = serve(&db, &args, &log);

    let agents: Vec<_> = AGENTS
        .iter()
        .enumerate()
        .map(|(i, name)| agent(dir.path(), nats.ports[i].mqtt, name))
        .collect();
    // Mid-stream for agent A, the one on node 0: a quarter of its messages acknowledged (the
    // publisher flushes its acknowledgements every 100). Watching A rather than the store: on a
    // busy machine the collector lags, and A could finish before the store held any given count.
    let start = Instant::now();
    while acked(dir.path(), AGENTS[0]).len() < (N / 4) as usize {
        assert!(start.elapsed() < WAIT, "agent A never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    nats.kill9(0);
    let at_kill = stored(&db);
    std::thread::sleep(Duration::from_secs(1));
    nats.restart(0);
    // And the collector, while its session still has a backlog: what it had received but not
    // committed was never acknowledged, so the cluster delivers it again after the restart.
    let before = stored(&db);
    wait_stored(&db, before + 300, &c);
    c.kill9();
    let at_collector_kill = stored(&db);
    assert!(
        at_collector_kill < (3 * N) as i64,
        "everything stored before the collector's kill; slow the rate"
    );
    let mut c = serve(&db, &args, &log);
    let runs: Vec<u32> = agents.into_iter().map(|a| a.join().unwrap()).collect();
    assert!(
        runs[0] > 1,
        "the agent of node 0 finished before the kill; slow the rate"
    );

    wait_stored(&db, (3 * N) as i64, &c);
    // SIGTERM drains what is in flight; then the count is final.
    assert!(c.sigterm().success(), "{}", c.log_text());
    let text = c.log_text();
    assert!(
        text.contains("moving to the next broker node"),
        "the collector never moved:\n{text}"
    );
    assert_eq!(stored(&db), (3 * N) as i64, "duplicates or extra messages");
    for agent in AGENTS {
        let acked = acked(dir.path(), agent);
        let stored = stored_seqs(&db, agent);
        let lost: Vec<u64> = acked.difference(&stored).copied().collect();
        assert!(
            lost.is_empty(),
            "{agent}: {} acknowledged messages not stored (first {:?})",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        assert_eq!(stored.len() as u64, N, "{agent}");
    }
    let agents = cli_json(&db, &["agents"]);
    for a in agents.as_array().unwrap() {
        assert_eq!(a["messages"], N, "{agents}");
        assert_eq!(a["missing"], 0, "{agents}");
    }

    // The oracle: the same input through one Mosquitto into one collector.
    let odb = dir.path().join("oracle.db");
    let (_mosq, port) = mosquitto(&dir.path().join("mosquitto"));
    let ourl = format!("mqtt://127.0.0.1:{port}");
    let mut oc = serve(
        &odb,
        &["--broker", &ourl, "--client-id", "oracle"],
        &dir.path().join("oracle.log"),
    );
    for agent in AGENTS {
        assert!(finish(
            publish(dir.path(), port, agent, "oracle", None),
            "oracle"
        ));
    }
    wait_stored(&odb, (3 * N) as i64, &oc);
    assert!(oc.sigterm().success(), "{}", oc.log_text());
    let (got, want) = (inventory(&db), inventory(&odb));
    assert!(
        want.as_array().is_some_and(|a| !a.is_empty()),
        "empty oracle inventory"
    );
    if got != want {
        let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
        let differing = g.iter().zip(w).filter(|(a, b)| a != b).count();
        let first = g.iter().zip(w).find(|(a, b)| a != b);
        let fields: Vec<String> = first
            .and_then(|(a, b)| Some((a.as_object()?, b.as_object()?)))
            .map(|(a, b)| {
                a.iter()
                    .filter(|(k, v)| b.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k}: {v} vs oracle {}", b[k]))
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "the inventory differs from the oracle's: {} vs {} devices, {differing} differ; \
             first difference:\n{}",
            g.len(),
            w.len(),
            fields.join("\n")
        );
    }
    eprintln!(
        "node 0 killed with {at_kill} of {} stored, the collector with {at_collector_kill}; \
         agents' runs {runs:?}; after failover, redelivery and the replays all stored once; \
         inventory ({} devices) equal to the single-broker oracle",
        3 * N,
        want.as_array().map_or(0, Vec::len)
    );
}

/// NATS has no `$share` groups: two collectors on one cluster split the agents by site
/// (`--sites`), each with its own persistent session. Each stores exactly its sites' messages,
/// and the one `kill -9`ed mid-stream finds its sites' backlog waiting in the cluster.
#[test]
fn collectors_split_a_nats_cluster_by_site() {
    const M: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(&dir.path().join("nats"));
    let (north_db, south_db) = (dir.path().join("north.db"), dir.path().join("south.db"));
    let (nu, su) = (nats.mqtt_urls_from(0), nats.mqtt_urls_from(1));
    let north_args = [
        "--broker",
        nu.as_str(),
        "--client-id",
        "ward-north",
        "--sites",
        "north",
    ];
    let south_args = [
        "--broker",
        su.as_str(),
        "--client-id",
        "ward-south",
        "--sites",
        "south,west",
    ];
    let north_log = dir.path().join("north.log");
    let mut north = serve(&north_db, &north_args, &north_log);
    let mut south = serve(&south_db, &south_args, &dir.path().join("south.log"));
    let pubs = [
        ("split-n", "north", 0usize),
        ("split-s", "south", 1),
        ("split-w", "west", 2),
    ]
    .map(|(agent, site, node)| {
        let d = dir.path().to_path_buf();
        let port = nats.ports[node].mqtt;
        std::thread::spawn(move || {
            for run in 1..20 {
                let child = publish_n(&d, port, agent, &run.to_string(), Some("200"), M, site);
                if finish(child, agent) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            panic!("{agent} could not publish everything");
        })
    });
    // The north collector dies with north's traffic under way and comes back: its session
    // (and the messages queued in it meanwhile) waited in the cluster.
    let start = Instant::now();
    while acked(dir.path(), "split-n").len() < (M / 4) as usize {
        assert!(start.elapsed() < WAIT, "the north agent never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    north.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let mut north = serve(&north_db, &north_args, &north_log);
    for p in pubs {
        p.join().unwrap();
    }
    wait_stored(&north_db, M as i64, &north);
    wait_stored(&south_db, 2 * M as i64, &south);
    assert!(north.sigterm().success(), "{}", north.log_text());
    assert!(south.sigterm().success(), "{}", south.log_text());
    // Each holds its own sites' messages, every acknowledged one, once; nothing of the other's.
    assert_eq!(stored(&north_db), M as i64, "north: extra messages");
    assert_eq!(stored(&south_db), 2 * M as i64, "south: extra messages");
    for (db, agent, other) in [
        (&north_db, "split-n", "split-s"),
        (&south_db, "split-s", "split-n"),
        (&south_db, "split-w", "split-n"),
    ] {
        let got = stored_seqs(db, agent);
        assert!(
            acked(dir.path(), agent).is_subset(&got),
            "{agent}: acknowledged, not stored"
        );
        assert_eq!(got.len() as u64, M, "{agent}");
        assert!(
            stored_seqs(db, other).is_empty(),
            "{other}'s messages in {agent}'s store"
        );
    }
}
