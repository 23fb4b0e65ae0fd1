//! A real 3-node NATS cluster per test (Debian's `nats-server`, 2.9): each node with JetStream
//! (its store in the test's temporary directory), routes to the other two, and an MQTT listener
//! — the clustered broker agents publish to and collectors read from. Nodes can be killed
//! (`kill -9`) and restarted on the same ports and store; every start returns only once the
//! cluster has its routes and a JetStream meta leader, so an MQTT client's first connection
//! (which creates the MQTT streams, replicated on 3 nodes) succeeds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::lease_port;
use crate::process::{log_since, Proc};
use crate::tools::find_binary;
use crate::wait::wait_until;

/// How long the cluster may take to form and elect its JetStream meta leader.
const PATIENCE: Duration = Duration::from_secs(30);
/// Nodes in the cluster: the smallest that survives the loss of one (JetStream's Raft groups
/// need a majority).
pub const NODES: usize = 3;

/// One node's ports, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct NatsPorts {
    /// NATS clients.
    pub client: u16,
    /// Routes between the nodes.
    pub cluster: u16,
    /// The MQTT listener.
    pub mqtt: u16,
    /// The monitoring endpoint (`/jsz`, `/routez`).
    pub monitor: u16,
}

/// A 3-node NATS cluster with JetStream and MQTT; every node killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    /// Each node's ports, node `i` at index `i`.
    pub ports: Vec<NatsPorts>,
    dir: PathBuf,
    procs: Vec<Option<Proc>>,
}

impl NatsCluster {
    /// Writes `dir/n<i>.conf` for 3 nodes on leased ports (JetStream store `dir/js<i>`, log
    /// `dir/n<i>.log`), starts them and waits until the cluster is formed.
    pub fn start(dir: &Path) -> NatsCluster {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ports: Vec<NatsPorts> = (0..NODES)
            .map(|_| NatsPorts {
                client: lease_port(),
                cluster: lease_port(),
                mqtt: lease_port(),
                monitor: lease_port(),
            })
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{}", p.cluster))
            .collect();
        for (i, p) in ports.iter().enumerate() {
            // `ack_wait`: how long the server waits for an MQTT subscriber's PUBACK before it
            // redelivers; the default 30 s would make a test wait that long after a collector's
            // crash for nothing (its session's unacked messages are redelivered on reconnect
            // anyway). `max_ack_pending` is the in-flight window per subscription.
            let conf = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                 jetstream {{ store_dir: \"{store}\" }}\n\
                 cluster {{ name: ward, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n\
                 mqtt {{ listen: 127.0.0.1:{mqtt}, ack_wait: \"10s\", max_ack_pending: 4096 }}\n",
                client = p.client,
                monitor = p.monitor,
                store = dir.join(format!("js{i}")).display(),
                cluster = p.cluster,
                routes = routes.join(", "),
                mqtt = p.mqtt,
            );
            let path = dir.join(format!("n{i}.conf"));
            std::fs::write(&path, conf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let mut c = NatsCluster {
            ports,
            dir: dir.to_path_buf(),
            procs: (0..NODES).map(|_| None).collect(),
        };
        for i in 0..NODES {
            c.launch(i);
        }
        c.wait_formed();
        c
    }

    /// `mqtt://127.0.0.1:<port>` of node `i`'s MQTT listener.
    pub fn mqtt_url(&self, i: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.ports[i].mqtt)
    }

    /// Every node's MQTT URL, comma-separated, `first` first: the collector's `--broker` list.
    pub fn mqtt_urls_from(&self, first: usize) -> String {
        (0..NODES)
            .map(|k| self.mqtt_url((first + k) % NODES))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kill -9` of node `i`: what it had not replicated is the cluster's to recover.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill9();
        }
    }

    /// Starts the killed node `i` again (same ports, same store) and waits until the cluster is
    /// whole again.
    pub fn restart(&mut self, i: usize) {
        assert!(self.procs[i].is_none(), "node {i} is still running");
        self.launch(i);
        self.wait_formed();
    }

    /// Node `i`'s log (every run of it).
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.log"))
    }

    fn launch(&mut self, i: usize) {
        let mut cmd = Command::new(find_binary("nats-server"));
        cmd.arg("-c").arg(self.dir.join(format!("n{i}.conf")));
        let mut p = Proc::spawn(&mut cmd, &self.log(i));
        let (log, from, port) = (self.log(i), p.log_from, self.ports[i].mqtt);
        wait_until(
            &format!("NATS node {i} to listen for MQTT on {port}"),
            PATIENCE,
            || {
                if p.listens_on(port) {
                    return Some(());
                }
                if let Some(st) = p.exited() {
                    panic!("nats-server node {i} exited ({st}):\n{}", p.run_log());
                }
                None
            },
            || log_since(&log, from),
        );
        self.procs[i] = Some(p);
    }

    /// Waits until every running node has routes to all the others and knows the JetStream
    /// meta leader.
    fn wait_formed(&self) {
        let running: Vec<usize> = (0..NODES).filter(|i| self.procs[*i].is_some()).collect();
        wait_until(
            "the NATS cluster to form (routes and a JetStream meta leader)",
            PATIENCE,
            || {
                running
                    .iter()
                    .all(|&i| {
                        let port = self.ports[i].monitor;
                        let routes = http_get(port, "/routez").unwrap_or_default();
                        let jsz = http_get(port, "/jsz").unwrap_or_default();
                        let want = format!("\"num_routes\": {}", running.len() - 1);
                        routes.contains(&want)
                            && jsz.contains("\"leader\": \"n")
                            && jsz.contains("\"cluster_size\": 3")
                    })
                    .then_some(())
            },
            || {
                running
                    .iter()
                    .map(|&i| format!("node {i}:\n{}", self.log_text(i)))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
    }
}

/// The body of `GET path` from the monitoring port, or `None` on any failure.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    ok.then(|| body.to_string())
}
