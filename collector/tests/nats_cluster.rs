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

use std::time::Duration;

use common::replay::*;
use common::*;

/// Messages per agent, devices per message and the MAC pool the agents draw from (shared: the
/// same devices are seen by all three agents, so their records merge); messages per second per
/// agent while the fault happens: ~8 s of traffic. How long progress may take before the test
/// gives up: generous, as a busy CI machine slows the replays and the collector; a healthy run
/// takes 25–45 s in all.
const LOAD: Load = Load {
    n: 2000,
    per: 4,
    pool: 1500,
    rate: 250,
    wait: Duration::from_secs(180),
    site: "bench",
};
const N: u64 = LOAD.n;
const AGENTS: [&str; 3] = ["nats-a", "nats-b", "nats-c"];

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
        .map(|(i, name)| agent(LOAD, dir.path(), nats.ports[i].mqtt, name))
        .collect();
    // Mid-stream for agent A, the one on node 0: a quarter of its messages acknowledged (the
    // publisher flushes its acknowledgements every 100). Watching A rather than the store: on a
    // busy machine the collector lags, and A could finish before the store held any given count.
    wait_acked(&LOAD, dir.path(), AGENTS[0], N / 4);
    nats.kill9(0);
    let at_kill = stored(&db);
    std::thread::sleep(Duration::from_secs(1));
    nats.restart(0);
    // And the collector, while its session still has a backlog: what it had received but not
    // committed was never acknowledged, so the cluster delivers it again after the restart.
    let before = stored(&db);
    wait_stored(&LOAD, &db, before + 300, &[&c]);
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

    wait_stored(&LOAD, &db, (3 * N) as i64, &[&c]);
    // SIGTERM drains what is in flight; then the count is final.
    assert!(c.sigterm().success(), "{}", c.log_text());
    let text = c.log_text();
    assert!(
        text.contains("moving to the next broker node"),
        "the collector never moved:\n{text}"
    );
    assert_acked_stored_once(&LOAD, dir.path(), &db, &AGENTS);

    // The oracle: the same input through one Mosquitto into one collector.
    let odb = oracle(&LOAD, dir.path(), &AGENTS, &[], |_| {});
    let devices = assert_same_inventory(&db, &odb);
    eprintln!(
        "node 0 killed with {at_kill} of {} stored, the collector with {at_collector_kill}; \
         agents' runs {runs:?}; after failover, redelivery and the replays all stored once; \
         inventory ({} devices) equal to the single-broker oracle",
        3 * N,
        devices
    );
}

/// NATS has no `$share` groups: two collectors on one cluster split the agents by site
/// (`--sites`), each with its own persistent session. Each stores exactly its sites' messages,
/// and the one `kill -9`ed mid-stream finds its sites' backlog waiting in the cluster.
#[test]
fn collectors_split_a_nats_cluster_by_site() {
    let load = |site| Load {
        n: 600,
        rate: 200,
        site,
        ..LOAD
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(&dir.path().join("nats"));
    let (north_db, south_db) = (dir.path().join("north.db"), dir.path().join("south.db"));
    let (nu, su) = (nats.mqtt_urls_from(0), nats.mqtt_urls_from(1));
    let north_args = [
        "--broker",
        &nu,
        "--client-id",
        "ward-north",
        "--sites",
        "north",
    ];
    let south_args = [
        "--broker",
        &su,
        "--client-id",
        "ward-south",
        "--sites",
        "south,west",
    ];
    let north_log = dir.path().join("north.log");
    let mut north = serve(&north_db, &north_args, &north_log);
    let mut south = serve(&south_db, &south_args, &dir.path().join("south.log"));
    let agents = [
        ("split-n", "north"),
        ("split-s", "south"),
        ("split-w", "west"),
    ];
    let runs: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(i, (name, site))| agent(load(site), dir.path(), nats.ports[i].mqtt, name))
        .collect();
    // The north collector dies with north's traffic under way and comes back: its session
    // (and the messages queued in it meanwhile) waited in the cluster.
    wait_acked(&load("north"), dir.path(), "split-n", 150);
    north.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let mut north = serve(&north_db, &north_args, &north_log);
    for r in runs {
        r.join().unwrap();
    }
    wait_stored(&load("north"), &north_db, 600, &[&north]);
    wait_stored(&load("south"), &south_db, 1200, &[&south]);
    assert!(north.sigterm().success(), "{}", north.log_text());
    assert!(south.sigterm().success(), "{}", south.log_text());
    // Each holds its own sites' messages, every acknowledged one, once; nothing of the other's.
    assert_acked_stored_once(&load("north"), dir.path(), &north_db, &["split-n"]);
    assert_acked_stored_once(
        &load("south"),
        dir.path(),
        &south_db,
        &["split-s", "split-w"],
    );
    assert!(
        stored_seqs(&north_db, "split-s").is_empty()
            && stored_seqs(&north_db, "split-w").is_empty()
    );
    assert!(stored_seqs(&south_db, "split-n").is_empty());
}
