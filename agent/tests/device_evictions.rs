//! More devices than `--max-devices` through the real `ward-agent read` (issue 12, finding 8):
//! publishing never stops, every device that changed is in some observation (an evicted
//! device's last state goes out before it is forgotten), and the evictions are counted in
//! the status message and the run's summary.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

fn key(i: u32) -> String {
    let m = mac(i);
    format!(
        "mac:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

struct Result {
    keys: BTreeSet<String>,
    observations: usize,
    last_status: serde_json::Value,
    stderr: String,
}

fn run(devices: u32, max_devices: u32, extra: &[&str]) -> Result {
    let dir = tempfile::tempdir().unwrap();
    let mut cap = pcap_header();
    for i in 0..devices {
        let ip = [10, 2, (i >> 8) as u8, i as u8];
        cap.extend(pcap_record(
            1_000_000 + u64::from(i) * 1000,
            &arp_frame(mac(i), ip),
        ));
    }
    let file = dir.path().join("many-devices.pcap");
    std::fs::write(&file, &cap).unwrap();
    let out = dir.path().join("out.jsonl");
    let result = Command::new(AGENT)
        .arg("read")
        .arg(&file)
        .args(["--output", &format!("jsonl:{}", out.display())])
        .args(["--max-devices", &max_devices.to_string()])
        .args(extra)
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut keys = BTreeSet::new();
    let mut observations = 0;
    let mut last_status = serde_json::Value::Null;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["schema"].as_str() {
            Some("ward.observation.v1") => {
                observations += 1;
                for d in v["devices"].as_array().unwrap() {
                    keys.insert(d["key"].as_str().unwrap().to_owned());
                }
            }
            Some("ward.status.v1") => last_status = v,
            other => panic!("unexpected schema {other:?}"),
        }
    }
    Result {
        keys,
        observations,
        last_status,
        stderr,
    }
}

fn check(devices: u32, max_devices: u32, r: &Result) {
    let evicted = u64::from(devices - max_devices);
    assert!(
        r.observations > 0,
        "no observation published for {devices} devices with --max-devices {max_devices}:\n{}",
        r.stderr
    );
    let missing: Vec<String> = (0..devices)
        .map(key)
        .filter(|k| !r.keys.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {devices} devices never published (first {:?}):\n{}",
        missing.len(),
        missing.first(),
        r.stderr
    );
    // The status message counts the evictions (flows: none here).
    assert_eq!(
        r.last_status["stats"]["evictions"].as_u64(),
        Some(evicted),
        "status: {}",
        r.last_status
    );
    assert_eq!(
        r.last_status["stats"]["devices"].as_u64(),
        Some(u64::from(max_devices))
    );
    // The run's summary says so too.
    let summary = r
        .stderr
        .lines()
        .find(|l| l.contains("ward-agent stopped"))
        .unwrap_or_else(|| panic!("no summary line:\n{}", r.stderr));
    assert!(
        summary.contains(&format!("devices_evicted={evicted}")),
        "{summary}"
    );
    assert!(
        r.stderr.contains("WARN") && r.stderr.contains("evicted"),
        "evictions not warned about:\n{}",
        r.stderr
    );
}

/// 1 500 devices, room for 800: 700 evicted, more than one message's worth (500), which is
/// what stopped publishing altogether.
#[test]
fn evictions_beyond_a_message_still_publish_every_device() {
    let r = run(1500, 800, &[]);
    check(1500, 800, &r);
}

/// Fewer evictions than a message holds: the evicted devices were missing from the deltas.
#[test]
fn evicted_devices_are_published_before_they_are_forgotten() {
    let r = run(1000, 800, &[]);
    check(1000, 800, &r);
}

/// Many evictions in one run: the evicted devices' records go out while the capture is read,
/// so what waits in memory stays bounded, and still every device arrives.
#[test]
fn many_times_the_table_size() {
    let r = run(6000, 500, &[]);
    check(6000, 500, &r);
}
