//! Publishers replaying synthetic observations (`publish-observations`) into a broker as
//! agents do, what they saw acknowledged, what the store holds, and the single-collector
//! oracle the fault tests compare their inventory with: shared by `nats_cluster.rs` (one
//! collector on a NATS cluster) and `nats_cluster_pg.rs` (three collectors on one, PostgreSQL).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{cli, cli_json, db_rows, mosquitto, publisher, serve, Proc};

/// What each agent publishes: `n` messages of `per` devices drawn from a pool of `pool` MACs
/// (shared by all agents, so their records merge), at `rate` messages per second on its first
/// run, under `site`; `wait` bounds every wait of the test.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub n: u64,
    pub per: u64,
    pub pool: u64,
    pub rate: u64,
    pub wait: Duration,
    /// The site the agents publish under (`ward/v1/<site>/…`).
    pub site: &'static str,
}

/// One run of the publisher as `agent` into the broker on `port`, its acknowledged seqs
/// appended to `dir/acked-<agent>-<run>`; at `rate` if given, else as fast as acknowledged.
pub fn publish(
    load: &Load,
    dir: &Path,
    port: u16,
    agent: &str,
    run: &str,
    rate: Option<u64>,
) -> Child {
    let mut cmd = Command::new(publisher());
    cmd.args([
        format!("127.0.0.1:{port}"),
        load.n.to_string(),
        load.per.to_string(),
        agent.to_string(),
        load.pool.to_string(),
    ])
    .env("WARD_SITE", load.site)
    .env("WARD_ACKED_FILE", dir.join(format!("acked-{agent}-{run}")))
    // One instance per agent across runs: a rerun replays the same (instance, seq) pairs.
    .env("WARD_INSTANCE", format!("{agent}-1"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(r) = rate {
        cmd.env("WARD_PUBLISH_RATE", r.to_string());
    }
    cmd.spawn().expect("running publish-observations")
}

/// An agent on node `port`: publishes at the load's rate; whenever its connection fails it
/// starts again on the same node after a short pause and replays everything (the real agent
/// replays what its spool holds unacknowledged; replaying all of it is the harder case for
/// the deduplication), until one run has every message acknowledged. Returns the runs it took.
pub fn agent(
    load: Load,
    dir: &Path,
    port: u16,
    agent: &'static str,
) -> std::thread::JoinHandle<u32> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let start = Instant::now();
        for run in 1.. {
            let rate = (run == 1).then_some(load.rate);
            if finish(
                publish(&load, &dir, port, agent, &run.to_string(), rate),
                agent,
            ) {
                return run;
            }
            assert!(
                start.elapsed() < load.wait,
                "{agent} could not publish everything in {:?}",
                load.wait
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        unreachable!()
    })
}

/// Waits for a publisher; false (its stderr printed) if it failed.
pub fn finish(child: Child, what: &str) -> bool {
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    out.status.success()
}

/// Every seq a broker acknowledged to `agent`, over all its runs.
pub fn acked(dir: &Path, agent: &str) -> BTreeSet<u64> {
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

/// Waits until the broker acknowledged `count` messages to `agent` (the publisher flushes its
/// acknowledgements every 100): a point mid-stream measured by the agent rather than by the
/// store, which lags on a busy machine.
pub fn wait_acked(load: &Load, dir: &Path, agent: &str, count: u64) {
    let start = Instant::now();
    while (acked(dir, agent).len() as u64) < count {
        assert!(start.elapsed() < load.wait, "{agent} never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The seqs of `agent`'s messages in the store.
pub fn stored_seqs(db: &Path, agent: &str) -> BTreeSet<u64> {
    // Through `db_rows`: the store is SQLite or, in the PostgreSQL pass, a schema there. The
    // agent ids are the tests' constants, so they can be spelled into the SQL.
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

/// Messages stored (`status`), or -1 while the store cannot be read.
pub fn stored(db: &Path) -> i64 {
    let out = cli(db, &["status"]);
    if !out.status.success() {
        return -1;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["messages"].as_i64())
        .unwrap_or(-1)
}

/// Waits until `want` messages are stored; on timeout fails with the logs of `procs`.
pub fn wait_stored(load: &Load, db: &Path, want: i64, procs: &[&Proc]) {
    let start = Instant::now();
    while stored(db) < want {
        assert!(
            start.elapsed() < load.wait,
            "{} of {want} messages stored after {:?}:\n{}",
            stored(db),
            load.wait,
            procs
                .iter()
                .map(|p| p.log_text())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message stored exactly once: `n` per agent and in all, every seq the broker
/// acknowledged to an agent (over all its runs) among them, and no agent missing a message.
pub fn assert_acked_stored_once(load: &Load, dir: &Path, db: &Path, agents: &[&str]) {
    let total = load.n * agents.len() as u64;
    assert_eq!(stored(db), total as i64, "duplicates or extra messages");
    for agent in agents {
        let acked = acked(dir, agent);
        let stored = stored_seqs(db, agent);
        let lost: Vec<u64> = acked.difference(&stored).copied().collect();
        assert!(
            lost.is_empty(),
            "{agent}: {} acknowledged messages not stored (first {:?})",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        assert_eq!(stored.len() as u64, load.n, "{agent}");
    }
    let listed = cli_json(db, &["agents"]);
    for a in listed.as_array().unwrap() {
        assert_eq!(a["messages"], load.n, "{listed}");
        assert_eq!(a["missing"], 0, "{listed}");
    }
}

/// The inventory as the CLI prints it, without what depends on the order of ingestion rather
/// than on its content: row ids, and first/last-seen times, which the store keeps exact only
/// to within `TIME_RESOLUTION_US` (60 s; a time within that of what the process already
/// wrote is not written again, so which one stays depends on arrival order). Every time in
/// this input lies within 2 s, so any order stores them equal within that resolution.
pub fn inventory(db: &Path) -> serde_json::Value {
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

/// Panics, naming the first differing device's fields, unless the inventories ([`inventory`])
/// of `db` and of the oracle `odb` are equal and not empty.
pub fn assert_same_inventory(db: &Path, odb: &Path) -> usize {
    let (got, want) = (inventory(db), inventory(odb));
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
    want.as_array().map_or(0, Vec::len)
}

/// The oracle: the same input (each agent's messages, published in one fault-free run each)
/// through one Mosquitto into one collector with `args`, in `dir/oracle.db`; `before` runs on
/// that database before anything is published (an import the test under faults did too).
/// Returns the database once every message is stored and the collector stopped cleanly.
pub fn oracle(
    load: &Load,
    dir: &Path,
    agents: &[&str],
    args: &[&str],
    before: impl FnOnce(&Path),
) -> PathBuf {
    let odb = dir.join("oracle.db");
    let (_mosq, port) = mosquitto(&dir.join("mosquitto"));
    let ourl = format!("mqtt://127.0.0.1:{port}");
    before(&odb);
    let mut all = vec!["--broker", ourl.as_str(), "--client-id", "oracle"];
    all.extend_from_slice(args);
    let mut oc = serve(&odb, &all, &dir.join("oracle.log"));
    for agent in agents {
        assert!(finish(
            publish(load, dir, port, agent, "oracle", None),
            "oracle"
        ));
    }
    wait_stored(load, &odb, (load.n * agents.len() as u64) as i64, &[&oc]);
    assert!(oc.sigterm().success(), "{}", oc.log_text());
    odb
}
