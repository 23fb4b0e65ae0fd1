//! The README's first command: `ward-collector demo` on the bundled sample site — the real agent
//! over MQTT to the embedded broker, the sample contracts and CMMS export — shows every one of
//! the thirteen flag kinds the README documents, and no patient canary of the sample capture
//! (nor of the fixtures) reaches its output, its logs at debug, or its database (kept with
//! `--dir`; the database, -wal and -shm are also copied while the demo runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The flag kinds the README lists ("Flags: …"), written out here rather than taken from the
/// implementation: a kind the code drops or renames fails this test.
const DOCUMENTED_KINDS: [&str; 19] = [
    "end_of_support_passed",
    "end_of_support_within",
    "no_contract",
    "not_in_asset_register",
    "asset_not_seen",
    "service_not_permitted",
    "cleartext_phi_protocol",
    "remote_access_not_permitted",
    "external_communication_not_permitted",
    "software_version_unsupported",
    "over_contracted_quantity",
    "segment_not_permitted",
    "software_changed",
    "vulnerable_software",
    "known_exploited_vulnerability",
    "patch_overdue",
    "vendor_fix_overdue",
    "end_of_life_product",
    "advisory_version_not_comparable",
];

/// The README still lists exactly these kinds (so this list is the documented one).
#[test]
fn the_documented_flag_kinds_are_the_readmes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let para = readme
        .split("\n\n")
        .find(|p| p.starts_with("Flags: "))
        .expect("README has a \"Flags: …\" paragraph");
    let listed: Vec<&str> = para
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert_eq!(listed, DOCUMENTED_KINDS, "README's flag list changed");
}

/// The sample-site canaries in `common` are the ones on the capture's wire: each component is
/// found in the raw capture (so a scan for them can fail).
#[test]
fn the_sample_site_canaries_are_on_its_wire() {
    let pcap = std::fs::read(sample_site()).unwrap();
    let mut s = ward_canary::Scanner::new();
    for (kind, v) in SAMPLE_SITE_CANARIES {
        s.add("sample site", *kind, v);
    }
    let found: std::collections::BTreeSet<String> =
        s.scan(&pcap).into_iter().map(|f| f.component).collect();
    // The scan stops at 64 findings; scan each component alone.
    for c in s.components() {
        let one = ward_canary::Scanner::new().with("sample site", c.kind, &c.text);
        assert!(
            found.contains(&c.text) || !one.scan(&pcap).is_empty(),
            "canary component {:?} is not in {}",
            c.text,
            sample_site().display()
        );
    }
}

/// `(file name, bytes)` of each database file copied.
type Copies = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Copies `ward.db`, `-wal` and `-shm` of `dir` again and again while `running`, keeping the
/// largest copy of each seen.
fn copy_while_running(dir: PathBuf, running: Arc<AtomicBool>) -> Copies {
    let copies: Copies = Arc::new(Mutex::new(Vec::new()));
    let c = copies.clone();
    std::thread::spawn(move || {
        while running.load(Ordering::Relaxed) {
            for name in ["ward.db", "ward.db-wal", "ward.db-shm"] {
                if let Ok(b) = std::fs::read(dir.join(name)) {
                    let mut all = c.lock().unwrap();
                    match all.iter_mut().find(|(n, _)| n == name) {
                        Some((_, old)) if old.len() >= b.len() => {}
                        Some((_, old)) => *old = b,
                        None => all.push((name.to_string(), b)),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    copies
}

#[test]
fn demo_shows_every_flag_kind_and_no_canary() {
    agent_bin();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let running = Arc::new(AtomicBool::new(true));
    let copies = copy_while_running(dir.clone(), running.clone());
    let child = Command::new(collector_bin())
        .args(["demo", "--no-serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .env("WARD_COLLECTOR_LOG", "debug")
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    running.store(false, Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}\n{stdout}");
    for kind in DOCUMENTED_KINDS {
        assert!(
            stdout.contains(kind),
            "flag kind {kind} missing from the demo:\n{stdout}"
        );
    }
    // The sample site's Mindray monitors (known by their DHCP vendor class) and their
    // eGateway (known by what it does: PCD-01 results for several monitors) are named right.
    let device_rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("DEVICES"))
        .take_while(|l| !l.starts_with("OPEN FLAGS"))
        .collect();
    for (mac, model, dtype) in [
        ("00:a0:37:9a:53:03", "BeneVision N17", "patient_monitor"),
        ("00:a0:37:9a:53:04", "BeneVision N17", "patient_monitor"),
        ("00:a0:37:6e:00:60", "BeneLink eGateway", "monitor_gateway"),
    ] {
        assert!(
            device_rows
                .iter()
                .any(|l| l.contains(mac) && l.contains(model) && l.contains(dtype)),
            "{mac} not shown as {model} {dtype}:\n{}",
            device_rows.join("\n")
        );
    }
    for step in 1..=6 {
        assert!(stderr.contains(&format!("[demo {step}/6]")), "{stderr}");
    }
    // The collector logged at debug (the demo lowers logging to warn unless told otherwise).
    assert!(
        stderr.contains("DEBUG") || stderr.contains(" INFO "),
        "the demo's collector did not log at debug:\n{stderr}"
    );
    assert_clean("the demo's stdout", &out.stdout);
    assert_log_clean("the demo's stderr (collector log at debug)", &out.stderr);

    // Its database, kept by --dir, and the copies taken while it ran.
    let db = dir.join("ward.db");
    assert!(db.exists(), "--dir kept no database");
    assert_db_clean("the demo's database", &db);
    let copies = copies.lock().unwrap();
    let names: Vec<&str> = copies.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        copies
            .iter()
            .any(|(n, b)| n == "ward.db-wal" && !b.is_empty()),
        "no WAL copied while the demo ran (copied: {names:?})"
    );
    for (name, bytes) in copies.iter() {
        assert_clean(&format!("the demo's {name} copied while it ran"), bytes);
    }
    // The agent's log, at debug like the collector's.
    let agent_log = std::fs::read(dir.join("agent.log")).expect("the demo keeps agent.log");
    assert!(
        String::from_utf8_lossy(&agent_log).contains("DEBUG"),
        "the demo's agent did not log at debug"
    );
    assert_log_clean("the demo's agent log (debug)", &agent_log);
    // Everything else the demo left in its directory (spool, the contracts it rewrote).
    let files = canaries().assert_dir_clean("the demo's directory", &dir);
    assert!(!files.is_empty());
    // And the reports over the demo's database, every kind and format.
    scan_reports(&db, &[]);
}
