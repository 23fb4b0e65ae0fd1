//! Live capture end to end, with real peers in network namespaces.
//!
//! Topology (all names carry this test's pid; a guard deletes everything, also on panic):
//!
//! ```text
//!   NS c (device)             NS s (server)                          NS m (monitor)
//!   dev0 00:12:21:4c:56:01 ── srv0 02:57:41:52:44:20
//!                             tc clsact on srv0: ingress + egress
//!                             u32 match-all → mirred egress mirror ─▶ span0 ── mon0  ◀ ward captures here
//! ```
//!
//! `span0`/`mon0` is a SPAN session: a copy of every frame of the device ↔ server link arrives on
//! `mon0`, which has no address and IPv6 disabled, so nothing on this host transmits there. The
//! capture runs in a child process (this test binary, re-executed inside NS m with
//! `ip netns exec ... --exact live_capture_helper`): it opens `mon0` as root, drops to `nobody`
//! (keeping only CAP_NET_RAW), then captures. Real traffic: dcmtk `echoscu` and `storescu` (a CT
//! dataset made with `dump2dcm`) to dcmtk `storescp`, and an HL7 ORU via `mllp_send` to a small
//! MLLP listener. Then `mon0` is taken down and up (the reader must reopen it, as `nobody`, with
//! the kept CAP_NET_RAW) and another association is captured. Finally tagged frames are sent
//! straight into `span0`: live capture must keep their 802.1Q and QinQ tags.
//!
//! Asserted: the privilege state after the drop; the DICOM and HL7 identity facts; no patient
//! canary (`ward_canary`: every component of the patient values below, case-insensitively, their
//! prefixes, every encoding) in the evidence, in anything the capture child printed or in its
//! log at debug level; the capture survives the link flap; the VLAN behaviour documented in
//! `ward_agent::capture::VLAN_NOTE`; and `mon0`'s kernel `tx_packets` did not move while ward
//! captured (receive-only, proven on the interface). Every step waits on state (the reader's
//! error and reopen counters, the probe frames counted by the child), never on a sleep or the
//! wall clock.
//!
//! A second test, `live_vlan_tags_match_offline_read`, replays the tagged fixture captures with
//! `tcpreplay` over a veth into the real `ward-agent capture` and compares its device records
//! (VLAN ids included) with `ward-agent read` of the same files.
//!
//! Needs root, iproute2 (`ip`, `tc`, `ss`), `ethtool`, dcmtk in /usr/bin, python3, `mllp_send`
//! (pip package `hl7`) and `tcpreplay`; `scripts/test.sh` installs them. A missing prerequisite
//! FAILS the test with its name: there is no switch to skip it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ward_agent::capture::{Capture, CaptureConfig, InterfaceStats};
use ward_agent::privileges;
use ward_protocols::dissect::{Dissector, DissectorConfig};
use ward_protocols::frame;
use ward_protocols::{Evidence, Field};

const HELPER_IF: &str = "WARD_LIVE_CAPTURE_IF";
const HELPER_USER: &str = "WARD_LIVE_CAPTURE_USER";
const DCMTK: &str = "/usr/bin";

const MAC_DEVICE: &str = "00:12:21:4c:56:01";
const MAC_SERVER: &str = "02:57:41:52:44:20";
const IP_DEVICE: &str = "192.0.2.10";
const IP_SERVER: &str = "192.0.2.20";
/// Source MACs of the VLAN probe frames ("vlan" in ASCII, then 1, 2, 3).
const VLAN_PROBE_MACS: [&str; 3] = [
    "02:76:6c:61:6e:01", // 802.1Q VID 100
    "02:76:6c:61:6e:02", // 802.1ad VID 200 outside, 802.1Q VID 300 inside
    "02:76:6c:61:6e:03", // untagged
];

/// What the capture child reports at the end.
#[derive(Debug, Serialize, Deserialize)]
struct HelperFinal {
    stats: Vec<InterfaceStats>,
    frames: u64,
    link_errors: u64,
    evidence: Vec<Evidence>,
    /// Source MAC of each VLAN probe frame seen → the VLAN ids decoded from it.
    vlan_probes: BTreeMap<String, Vec<Vec<u16>>>,
}

/// What the packet consumer of the capture child builds while the capture runs.
#[derive(Default)]
struct Consumed {
    frames: u64,
    link_errors: u64,
    evidence: Vec<Evidence>,
    vlan_probes: BTreeMap<String, Vec<Vec<u16>>>,
}

/// The capture child, started by `live_capture_in_namespaces` inside the monitor namespace
/// (`--ignored --exact live_capture_helper`). Not a test of its own: run alone it fails.
#[test]
#[ignore = "the capture child of live_capture_in_namespaces, which runs it in a network namespace"]
fn live_capture_helper() {
    let iface = std::env::var(HELPER_IF).unwrap_or_else(|_| {
        panic!(
            "live_capture_helper is the capture child of live_capture_in_namespaces and needs \
             {HELPER_IF}: run that test instead"
        )
    });
    let user = std::env::var(HELPER_USER).expect("user to drop to");
    // Debug level: the parent scans this log for patient data.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let cap = Capture::open(&CaptureConfig::for_interfaces([iface.as_str()]))
        .unwrap_or_else(|e| panic!("open: {e}"));
    privileges::drop_to(&user).unwrap_or_else(|e| panic!("drop_to: {e}"));
    let state = privileges::state().expect("state");
    println!(
        "WARD-STATE {}",
        serde_json::to_string(&state).expect("json")
    );
    let (handle, rx) = cap.start_channel(1 << 20).expect("start");
    // Frames are dissected as they arrive, so the parent can wait on what was seen.
    let probes_seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (probes_seen, stop) = (probes_seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Consumed::default();
            let mut dissector = Dissector::new(DissectorConfig::default());
            loop {
                let p = match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(p) => p,
                    Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::SeqCst) => continue,
                    Err(_) => break,
                };
                c.frames += 1;
                match frame::decode(p.link, &p.data) {
                    Ok(f) => {
                        if let Some(src) = f.src_mac {
                            let src = src.to_string();
                            if VLAN_PROBE_MACS.contains(&src.as_str()) {
                                c.vlan_probes
                                    .entry(src)
                                    .or_default()
                                    .push(f.vlans.as_slice().to_vec());
                                probes_seen.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        dissector.process(p.time_us, &f, &mut c.evidence);
                    }
                    Err(_) => c.link_errors += 1,
                }
            }
            c
        })
    };
    println!("WARD-READY");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("STATS") => println!(
                "WARD-STATS {}",
                serde_json::to_string(&handle.stats()).expect("json")
            ),
            Ok("PROBES") => println!("WARD-PROBES {}", probes_seen.load(Ordering::SeqCst)),
            Ok("STOP") | Err(_) => break,
            Ok(_) => {}
        }
    }
    let stats = handle.join();
    // Every frame the readers delivered is in the channel now; the consumer drains it and
    // stops at the first empty wait.
    stop.store(true, Ordering::SeqCst);
    let c = consumer.join().expect("consumer");
    let out = HelperFinal {
        stats,
        frames: c.frames,
        link_errors: c.link_errors,
        evidence: c.evidence,
        vlan_probes: c.vlan_probes,
    };
    println!("WARD-FINAL {}", serde_json::to_string(&out).expect("json"));
}

// ------------------------------------------------------------------------------------------
// Parent side.

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn require_tool(tool: &str) -> PathBuf {
    find_in_path(tool).unwrap_or_else(|| {
        panic!("live capture test: required tool `{tool}` is not installed (not on PATH)")
    })
}

fn require_file(path: &str, what: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "live capture test: required tool {path} ({what}) is missing"
    );
    p
}

/// Runs a command to completion within `timeout`, panicking with its output on failure.
fn run(cmd: &mut Command, timeout: Duration) -> String {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {desc}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{desc} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{desc} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args), Duration::from_secs(10))
}

/// `ip netns exec NS args...` to completion.
fn nsx(ns: &str, args: &[&str]) -> String {
    run(
        Command::new("ip").args(["netns", "exec", ns]).args(args),
        Duration::from_secs(20),
    )
}

/// Namespaces and processes of this test; removed on drop, also when a test assertion panics.
struct Lab {
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    fn add_ns(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
        nsx(
            name,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// Starts a long-running process in `ns` (`ip netns exec` execs it, so the child's pid is
    /// the process's own).
    fn spawn_bg(&mut self, ns: &str, args: &[&str], log: &Path) -> usize {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {args:?} in {ns}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // Anything else still running inside was started by this test.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn wait_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        if !nsx(ns, &["ss", "-Hltn", &filter]).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on tcp/{port} in {ns}");
}

fn tx_packets(ns: &str, iface: &str) -> u64 {
    nsx(
        ns,
        &[
            "cat",
            &format!("/sys/class/net/{iface}/statistics/tx_packets"),
        ],
    )
    .trim()
    .parse()
    .expect("tx_packets is a number")
}

/// The capture child: its stdin and a channel of its stdout lines.
struct Helper {
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// The helper's stderr (its tracing log).
    log: PathBuf,
}

impl Helper {
    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("helper stdin");
        self.stdin.flush().expect("helper stdin");
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // libtest prints `test live_capture_helper ... ` without a newline first.
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_owned();
                    }
                    self.seen.push(line);
                }
                Err(e) => panic!(
                    "capture helper: no `{prefix}` line ({e}); its output so far:\n{}\nits log:\n{}",
                    self.seen.join("\n"),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }

    fn stats(&mut self) -> InterfaceStats {
        self.send("STATS");
        let json = self.expect("WARD-STATS ", Duration::from_secs(10));
        let mut v: Vec<InterfaceStats> = serde_json::from_str(&json).expect("stats json");
        v.pop().expect("one interface")
    }

    /// VLAN probe frames the child has dissected so far.
    fn probes(&mut self) -> u64 {
        self.send("PROBES");
        self.expect("WARD-PROBES ", Duration::from_secs(10))
            .parse()
            .expect("probe count")
    }

    /// Asks for `STATS` every 100 ms until `done` holds; panics after `timeout`.
    fn wait_stats(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&InterfaceStats) -> bool,
    ) -> InterfaceStats {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "capture helper: timed out waiting for {what}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The patient values of [`DICOM_DUMP`] and [`HL7_MESSAGE`].
fn live_canaries() -> ward_canary::Scanner {
    use ward_canary::Kind;
    const SRC: &str = "live_capture.rs DICOM_DUMP / HL7_MESSAGE";
    ward_canary::Scanner::new()
        .with(SRC, Kind::Name, "CANARY^LIVEPATIENT")
        .with(SRC, Kind::Identifier, "CANARY-MRN-LIVE")
        .with(SRC, Kind::Identifier, "CANARY-ACC-LIVE")
        .with(SRC, Kind::Date, "19700101")
        .with(SRC, Kind::Text, "CANARYOBXVALUE")
        .with(SRC, Kind::Text, "CANARY HOSPITAL")
}

const DICOM_DUMP: &str = r"# CT image for the live capture test; patient values carry CANARY.
(0008,0005) CS [ISO_IR 100]
(0008,0008) CS [ORIGINAL\PRIMARY\AXIAL]
(0008,0016) UI =CTImageStorage
(0008,0018) UI [2.25.276543210987654321098765432199001]
(0008,0020) DA [20240102]
(0008,0030) TM [030405]
(0008,0050) SH [CANARY-ACC-LIVE]
(0008,0060) CS [CT]
(0008,0070) LO [LIVE TEST MEDICAL]
(0008,0080) LO [CANARY HOSPITAL]
(0008,1090) LO [LiveScan 1]
(0010,0010) PN [CANARY^LIVEPATIENT]
(0010,0020) LO [CANARY-MRN-LIVE]
(0010,0030) DA [19700101]
(0018,1000) LO [LIVE-001]
(0020,000d) UI [2.25.276543210987654321098765432199002]
(0020,000e) UI [2.25.276543210987654321098765432199003]
(0020,0013) IS [1]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 2
(0028,0011) US 2
(0028,0100) US 16
(0028,0101) US 12
(0028,0102) US 11
(0028,0103) US 0
(7fe0,0010) OW 0000\0100\0200\0300
";

/// HL7 v2.6 ORU, one segment per line (`mllp_send --loose`).
const HL7_MESSAGE: &str = "MSH|^~\\&|LIVE_MONITOR|LIVE_ICU|LIVE_HIS|LIVE_HOSP|20240102030405||ORU^R01^ORU_R01|LIVE-0001|P|2.6\n\
PID|1||CANARY-MRN-LIVE^^^LIVE_HOSP^MR||CANARY^LIVEPATIENT||19700101|U\n\
OBX|1|ST|68480^MDC_ATTR_ALARM_SOURCE^MDC|1.1.1.68480|CANARYOBXVALUE||||||R\n";

/// An MLLP listener that answers every message with an AA acknowledgement.
const MLLP_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 2575))
s.listen(8)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    buf = b""
    while b"\x1c\r" not in buf:
        d = c.recv(65536)
        if not d:
            break
        buf += d
    msh = buf.strip(b"\x0b\x1c\r\n").split(b"\r")[0].split(b"|")
    ctl = msh[9] if len(msh) > 9 else b""
    ack = b"MSH|^~\\&|LIVE_HIS|LIVE_HOSP|LIVE_MONITOR|LIVE_ICU|20240102030406||ACK^R01^ACK|ACK-" + ctl + b"|P|2.6\rMSA|AA|" + ctl + b"\r"
    c.sendall(b"\x0b" + ack + b"\x1c\r")
    c.close()
"#;

/// Sends the three VLAN probe frames out of an interface (argv[1]).
const VLAN_PROBES: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
dst = bytes.fromhex("ffffffffffff")
ip = bytes.fromhex("4500001c00000000401100000a0000010a000002") + bytes.fromhex("1234123500080000")
def mac(n): return bytes.fromhex("02766c616e0%d" % n)
s.send(dst + mac(1) + struct.pack(">HH", 0x8100, 100) + b"\x08\x00" + ip + bytes(20))
s.send(dst + mac(2) + struct.pack(">HHHH", 0x88A8, 200, 0x8100, 300) + b"\x08\x00" + ip + bytes(20))
s.send(dst + mac(3) + b"\x08\x00" + ip + bytes(20))
"#;

/// dcmtk's implementation class UID for a version string like `v3.6.7`.
fn dcmtk_implementation_uid(version_output: &str) -> String {
    let v = version_output
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .expect("dcmtk version");
    format!("1.2.276.0.7230010.3.0.{v}")
}

fn has(evidence: &[Evidence], field: Field, value: &str) -> bool {
    evidence
        .iter()
        .any(|e| e.field == field && e.value == value)
}

#[test]
fn live_capture_in_namespaces() {
    let started = Instant::now();
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "live capture test: must run as root (network namespaces, raw sockets, privilege drop); \
         run the suite as root through scripts/test.sh"
    );
    for tool in ["ip", "tc", "ss", "ethtool", "python3", "mllp_send"] {
        require_tool(tool);
    }
    let storescp = require_file("/usr/bin/storescp", "dcmtk");
    let storescu = require_file("/usr/bin/storescu", "dcmtk");
    let echoscu = require_file("/usr/bin/echoscu", "dcmtk");
    let dump2dcm = require_file("/usr/bin/dump2dcm", "dcmtk");
    let version = run(
        Command::new(&storescu).arg("--version"),
        Duration::from_secs(10),
    );
    assert!(
        version.contains("dcmtk"),
        "{DCMTK}/storescu is not dcmtk's: {version}"
    );
    let impl_uid = dcmtk_implementation_uid(&version);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd lookup")
        .expect("live capture test: user `nobody` is missing");

    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    std::fs::write(w.join("ct.dump"), DICOM_DUMP).expect("write dump");
    run(
        Command::new(&dump2dcm)
            .args(["-q", "+te"])
            .arg(w.join("ct.dump"))
            .arg(w.join("ct.dcm")),
        Duration::from_secs(10),
    );
    std::fs::write(w.join("oru.hl7"), HL7_MESSAGE).expect("write hl7");
    std::fs::create_dir(w.join("store")).expect("store dir");

    // ---- topology
    let pid = std::process::id();
    let (ns_c, ns_s, ns_m) = (
        format!("wardlc-{pid}-dev"),
        format!("wardlc-{pid}-srv"),
        format!("wardlc-{pid}-mon"),
    );
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    for ns in [&ns_c, &ns_s, &ns_m] {
        lab.add_ns(ns);
    }
    ip(&[
        "link", "add", "name", "dev0", "netns", &ns_c, "address", MAC_DEVICE, "type", "veth",
        "peer", "name", "srv0", "netns", &ns_s, "address", MAC_SERVER,
    ]);
    ip(&[
        "link", "add", "name", "span0", "netns", &ns_s, "type", "veth", "peer", "name", "mon0",
        "netns", &ns_m,
    ]);
    // No offloads on the peers: MTU-sized segments on the wire, as from a real NIC.
    for (ns, i) in [(&ns_c, "dev0"), (&ns_s, "srv0")] {
        nsx(
            ns,
            &["ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off"],
        );
    }
    ip(&[
        "-n",
        &ns_c,
        "addr",
        "add",
        &format!("{IP_DEVICE}/24"),
        "dev",
        "dev0",
    ]);
    ip(&[
        "-n",
        &ns_s,
        "addr",
        "add",
        &format!("{IP_SERVER}/24"),
        "dev",
        "srv0",
    ]);
    ip(&["-n", &ns_c, "link", "set", "dev0", "up"]);
    ip(&["-n", &ns_s, "link", "set", "srv0", "up"]);
    ip(&["-n", &ns_s, "link", "set", "span0", "up"]);
    ip(&["-n", &ns_m, "link", "set", "mon0", "up"]);
    nsx(&ns_s, &["tc", "qdisc", "add", "dev", "srv0", "clsact"]);
    for dir in ["ingress", "egress"] {
        nsx(
            &ns_s,
            &[
                "tc", "filter", "add", "dev", "srv0", dir, "protocol", "all", "u32", "match",
                "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "span0",
            ],
        );
    }

    // ---- peers
    let store = w.join("store");
    lab.spawn_bg(
        &ns_s,
        &[
            storescp.to_str().expect("path"),
            "-aet",
            "LIVE_PACS",
            "-od",
            store.to_str().expect("path"),
            "11112",
        ],
        &w.join("storescp.log"),
    );
    lab.spawn_bg(
        &ns_s,
        &["python3", "-u", "-c", MLLP_SERVER],
        &w.join("mllp.log"),
    );
    wait_listening(&ns_s, 11112);
    wait_listening(&ns_s, 2575);

    // ---- capture child in the monitor namespace
    let tx_before = tx_packets(&ns_m, "mon0");
    let exe = std::env::current_exe().expect("test binary");
    let helper_log = w.join("helper.log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns_m])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "live_capture_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_IF, "mon0")
        .env(HELPER_USER, "nobody")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&helper_log).expect("helper log"))
        .spawn()
        .expect("starting the capture helper");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    lab.children.push(child);
    let (line_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut helper = Helper {
        stdin,
        lines,
        seen: Vec::new(),
        log: helper_log.clone(),
    };
    let state: privileges::PrivState =
        serde_json::from_str(&helper.expect("WARD-STATE ", Duration::from_secs(20)))
            .expect("state json");
    helper.expect("WARD-READY", Duration::from_secs(10));

    // The drop: uid/gid nobody everywhere, exactly CAP_NET_RAW, no_new_privs.
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(state.uid, [uid; 3], "{state:?}");
    assert_eq!(state.gid, [gid; 3], "{state:?}");
    assert!(state.groups.is_empty(), "{state:?}");
    let net_raw = vec!["CAP_NET_RAW".to_owned()];
    assert_eq!(state.effective, net_raw, "{state:?}");
    assert_eq!(state.permitted, net_raw, "{state:?}");
    assert_eq!(state.bounding, net_raw, "{state:?}");
    assert!(state.inheritable.is_empty(), "{state:?}");
    assert!(state.ambient.is_empty(), "{state:?}");
    assert!(state.no_new_privs && !state.keepcaps, "{state:?}");

    // ---- real traffic, captured after the drop
    let ip_s = IP_SERVER;
    let echoscu = echoscu.to_str().expect("path");
    let storescu = storescu.to_str().expect("path");
    nsx(
        &ns_c,
        &[
            echoscu,
            "-aet",
            "LIVE_CT01",
            "-aec",
            "LIVE_PACS",
            ip_s,
            "11112",
        ],
    );
    let dcm = w.join("ct.dcm");
    nsx(
        &ns_c,
        &[
            storescu,
            "-aet",
            "LIVE_CT01",
            "-aec",
            "LIVE_PACS",
            ip_s,
            "11112",
            dcm.to_str().expect("path"),
        ],
    );
    let oru = w.join("oru.hl7");
    let ack = nsx(
        &ns_c,
        &[
            "mllp_send",
            "--loose",
            "-p",
            "2575",
            "-f",
            oru.to_str().expect("path"),
            ip_s,
        ],
    );
    assert!(ack.contains("MSA|AA|LIVE-0001"), "no HL7 ACK: {ack:?}");

    // ---- link flap on the monitor port: the reader reopens it as `nobody` with CAP_NET_RAW.
    let before_flap = helper.stats();
    assert!(before_flap.packets > 0, "nothing captured: {before_flap:?}");
    ip(&["-n", &ns_m, "link", "set", "mon0", "down"]);
    // The reader saw the link go (its idle ring on an interface that is down), then the link
    // comes back.
    helper.wait_stats(
        "the reader to see mon0 go down",
        Duration::from_secs(10),
        |s| s.errors > before_flap.errors,
    );
    ip(&["-n", &ns_m, "link", "set", "mon0", "up"]);
    let after_flap = helper.wait_stats(
        "the capture to recover from the link flap",
        Duration::from_secs(20),
        |s| s.reopens >= s.errors && s.socket.is_some_and(|k| k.sockets == 1),
    );
    // The reader closed the capture of the downed link, so it must have reopened mon0, as `nobody`:
    // this is what the kept CAP_NET_RAW is for.
    assert!(
        after_flap.errors >= 1 && after_flap.reopens >= 1,
        "expected the link flap to force a reopen: {after_flap:?}"
    );
    nsx(
        &ns_c,
        &[
            echoscu,
            "-aet",
            "LIVE_AFTERFLAP",
            "-aec",
            "LIVE_PACS",
            ip_s,
            "11112",
        ],
    );

    // ---- VLAN probes straight into the SPAN link; stop once the child has seen all three.
    nsx(&ns_s, &["python3", "-c", VLAN_PROBES, "span0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = helper.probes();
        if n >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the capture child saw {n} of the 3 VLAN probe frames"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    helper.send("STOP");
    let fin: HelperFinal =
        serde_json::from_str(&helper.expect("WARD-FINAL ", Duration::from_secs(20)))
            .expect("final json");
    let tx_after = tx_packets(&ns_m, "mon0");
    let helper_log = std::fs::read_to_string(&helper_log).unwrap_or_default();
    if std::env::var_os("WARD_LIVE_SHOW_LOG").is_some() {
        eprintln!("capture helper log:\n{helper_log}");
    }

    // ---- assertions
    let ev = &fin.evidence;
    let evidence_json = serde_json::to_string(ev).expect("json");
    let summary = || {
        let mut s: Vec<String> = ev
            .iter()
            .map(|e| format!("{}={}", e.field, e.value))
            .collect();
        s.sort();
        s.dedup();
        s.join("\n")
    };
    assert!(
        has(ev, Field::DicomCallingAe, "LIVE_CT01"),
        "calling AE missing:\n{}",
        summary()
    );
    assert!(
        has(ev, Field::DicomImplementationClassUid, &impl_uid),
        "implementation class UID {impl_uid} missing:\n{}",
        summary()
    );
    assert!(
        has(ev, Field::DicomModelName, "LiveScan 1"),
        "{}",
        summary()
    );
    assert!(
        has(ev, Field::DicomDeviceSerialNumber, "LIVE-001"),
        "{}",
        summary()
    );
    assert!(
        has(ev, Field::DicomManufacturer, "LIVE TEST MEDICAL"),
        "{}",
        summary()
    );
    assert!(has(ev, Field::DicomModality, "CT"), "{}", summary());
    assert!(
        has(ev, Field::Hl7SendingApplication, "LIVE_MONITOR"),
        "HL7 MSH-3 missing:\n{}",
        summary()
    );
    assert!(
        has(ev, Field::DicomCallingAe, "LIVE_AFTERFLAP"),
        "nothing captured after the link flap ({after_flap:?}):\n{}",
        summary()
    );
    // No patient value in the evidence, in anything the child printed, or in its debug log.
    let canaries = live_canaries();
    canaries.assert_clean("live capture evidence (JSON)", &evidence_json);
    canaries.assert_clean("live capture evidence (Debug)", format!("{ev:?}"));
    canaries.assert_clean("capture child output", helper.seen.join("\n"));
    canaries.assert_clean("capture child log (debug)", &helper_log);
    // The canaries were on the wire: the scan above looked for something that was there.
    let stored: Vec<u8> = std::fs::read_dir(&store)
        .expect("storescp output")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .flatten()
        .collect();
    assert!(
        !canaries.is_clean(&stored),
        "storescp received no patient canary: the traffic did not carry what the scan looks for"
    );
    // Every DICOM/HL7 fact carries the device's or the server's MAC.
    assert!(ev.iter().all(|e| {
        let macs = [e.endpoints.src_mac, e.endpoints.dst_mac].map(|m| m.map(|m| m.to_string()));
        macs.iter().all(|m| {
            m.as_deref()
                .is_some_and(|m| m == MAC_DEVICE || m == MAC_SERVER)
        })
    }));

    // VLANs: see ward_agent::capture::VLAN_NOTE. The kernel moves the outermost tag into the
    // ring's frame header; the capture puts it back (issue 16: before, pnet lost it).
    let probes = &fin.vlan_probes;
    assert_eq!(
        probes.get(VLAN_PROBE_MACS[0]),
        Some(&vec![vec![100]]),
        "802.1Q VID 100 frame: live capture keeps the tag ({probes:?})"
    );
    assert_eq!(
        probes.get(VLAN_PROBE_MACS[1]),
        Some(&vec![vec![200, 300]]),
        "QinQ 200/300 frame: live capture keeps both tags ({probes:?})"
    );
    assert_eq!(
        probes.get(VLAN_PROBE_MACS[2]),
        Some(&vec![vec![]]),
        "{probes:?}"
    );

    // Counters.
    let st = fin.stats.first().expect("stats");
    assert_eq!(st.interface, "mon0");
    assert_eq!(st.packets, fin.frames, "{st:?}");
    assert_eq!(fin.link_errors, 0);
    assert_eq!(st.sink_dropped, 0, "{st:?}");
    assert_eq!(st.ring_drops, 0, "{st:?}");
    assert_eq!(st.possibly_truncated, 0, "{st:?}");
    assert!(!st.running, "{st:?}");
    let (now, base) = (
        st.kernel.expect("kernel stats"),
        st.kernel_at_open.expect("baseline"),
    );
    let seen = now.since(&base);
    assert!(
        seen.rx_packets >= st.packets,
        "kernel counted fewer frames than ward read: {st:?}"
    );
    let sock = after_flap.socket.expect("socket stats while running");
    assert_eq!(sock.drops, Some(0), "socket drops: {after_flap:?}");
    assert!(sock.rcvbuf_bytes.is_some_and(|b| b > 0), "{after_flap:?}");

    // Receive-only, on the wire: the monitor interface transmitted nothing while ward ran.
    assert_eq!(
        tx_after,
        tx_before,
        "mon0 transmitted {} frames during capture",
        tx_after - tx_before
    );
    assert_eq!(seen.tx_packets, 0, "{st:?}");
    eprintln!(
        "live capture: {} frames, {} evidence, link flap: {} error(s) / {} reopen(s), \
         mon0 tx_packets {tx_before} -> {tx_after}, {:?}",
        fin.frames,
        ev.len(),
        after_flap.errors,
        after_flap.reopens,
        started.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// VLAN tags on live traffic, compared with reading the same capture.

const AGENT: &str = env!("CARGO_BIN_EXE_ward-agent");
const VLAN_FIXTURES: [&str; 2] = ["hl7-mllp-vlan.pcap", "qinq.pcap"];

/// Removes every field that depends on when the traffic was seen (replay time vs capture time).
fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !(k.contains("seen") || k.contains("time")));
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The last record of every device in a JSON-lines observation stream, keyed by device key,
/// without time fields.
fn devices_of(jsonl: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let msg: serde_json::Value = serde_json::from_str(line).expect("observation JSON");
        for d in msg["devices"].as_array().into_iter().flatten() {
            let mut d = d.clone();
            strip_times(&mut d);
            let key = d["key"].as_str().expect("device key").to_owned();
            out.insert(key, d);
        }
    }
    out
}

/// Tagged frames (802.1Q and QinQ, from the committed fixtures) replayed with `tcpreplay` over a
/// veth into `ward-agent capture` in its own network namespace: the device records, VLAN ids
/// included, equal those `ward-agent read` makes of the same files. The kernel has no 8021q
/// module here: the tags are in the replayed bytes, the receiving veth moves the outer one to
/// packet metadata, and the capture must put it back.
#[test]
fn live_vlan_tags_match_offline_read() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "live_vlan_tags_match_offline_read needs root (network namespaces, raw sockets)"
    );
    let tcpreplay = require_tool("tcpreplay");
    require_tool("ip");
    let fixtures: Vec<PathBuf> = VLAN_FIXTURES
        .iter()
        .map(|f| {
            require_file(
                &format!("{}/../tests/fixtures/{f}", env!("CARGO_MANIFEST_DIR")),
                "VLAN fixture",
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // The agent may drop to the packaged `ward` user when one exists: let it write here.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");

    // Offline.
    let offline = dir.path().join("offline.jsonl");
    let out = Command::new(AGENT)
        .arg("read")
        .args(&fixtures)
        .args(["--output", &format!("jsonl:{}", offline.display())])
        .arg("--spool-dir")
        .arg(dir.path().join("spool-read"))
        .env_remove("WARD_CONFIG")
        .env_remove("WARD_LOG")
        .output()
        .expect("ward-agent read");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = devices_of(&std::fs::read_to_string(&offline).expect("offline output"));
    let tagged: Vec<_> = want.values().filter_map(|d| d["vlan"].as_u64()).collect();
    assert!(
        tagged.contains(&100),
        "the fixtures' devices carry VLAN 100 offline: {want:?}"
    );

    // Live: a veth between two namespaces, the agent on the far end.
    let pid = std::process::id();
    let (ns_a, ns_b) = (format!("wvl{pid}a"), format!("wvl{pid}b"));
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    lab.add_ns(&ns_a);
    lab.add_ns(&ns_b);
    ip(&[
        "link", "add", "vla0", "netns", &ns_a, "type", "veth", "peer", "name", "vlb0", "netns",
        &ns_b,
    ]);
    ip(&["-n", &ns_a, "link", "set", "vla0", "up"]);
    ip(&["-n", &ns_b, "link", "set", "vlb0", "up"]);
    let live = dir.path().join("live.jsonl");
    let log = dir.path().join("agent.log");
    let agent = lab.spawn_bg(
        &ns_b,
        &[
            AGENT,
            "capture",
            "--interface",
            "vlb0",
            "--output",
            &format!("jsonl:{}", live.display()),
            "--spool-dir",
            &dir.path().join("spool-live").display().to_string(),
            "--stats-interval",
            "1",
            // Two workers: QinQ frames (inner tag in the frame) and the single-tagged IPv4
            // flows are split between rings by the kernel filter; records must not change.
            "--workers",
            "2",
            "--log-format",
            "text",
            "--log-level",
            "info",
        ],
        &log,
    );
    let wait_log = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; agent log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_log("the agent to start capturing", &|t| t.contains("capturing"));
    let mut frames = 0u64;
    for f in &fixtures {
        let out = nsx(
            &ns_a,
            &[
                tcpreplay.to_str().expect("path"),
                "-q",
                "--topspeed",
                "-i",
                "vla0",
                f.to_str().expect("path"),
            ],
        );
        let sent = out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .find(|w| w[0] == "Actual:" && w[2] == "packets")
            .and_then(|w| w[1].parse::<u64>().ok())
            .unwrap_or_else(|| panic!("tcpreplay output without a packet count: {out}"));
        frames += sent;
    }
    // The stats line counts frames through the engine; stop once all arrived.
    let packets_logged = |t: &str| {
        t.lines()
            .filter(|l| l.contains(" stats "))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("packets="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0)
    };
    wait_log(&format!("{frames} frames in the stats line"), &|t| {
        packets_logged(t) >= frames
    });
    let child = &mut lab.children[agent];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "agent failed: {status}\n{text}");
    assert_eq!(
        packets_logged(&text),
        frames,
        "the agent saw other frames than the replayed ones:\n{text}"
    );
    // Per-worker counters in the stats line: both rings, no loss.
    let last_stats = text
        .lines()
        .rev()
        .find(|l| l.contains(" stats "))
        .expect("a stats line");
    for ring in ["vlb0/0:", "vlb0/1:"] {
        assert!(last_stats.contains(ring), "{ring} missing: {last_stats}");
    }
    assert!(
        last_stats.contains("ring_drops=0") && last_stats.contains("queue_drops=0"),
        "{last_stats}"
    );
    let got = devices_of(&std::fs::read_to_string(&live).expect("live output"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "device keys (mac@vlan) differ between live capture and read"
    );
    for (k, d) in &want {
        assert_eq!(got.get(k), Some(d), "device {k}: live vs read");
    }
    eprintln!(
        "live VLAN replay: {frames} frames, {} devices, VLANs {:?}",
        got.len(),
        got.values()
            .filter_map(|d| d["vlan"].as_u64())
            .collect::<Vec<_>>()
    );
}
