//! The two backends agree (issue 22): the real fixtures' observation streams (through
//! `ward-agent read --output jsonl:-`, three agents, one of them seeing captures another saw)
//! ingested into SQLite in order, and into PostgreSQL shuffled, with duplicates, in several
//! ingest runs, give the same inventory (devices by MAC, identities, attribute values,
//! services), the same merges and, evaluated at the same instant, the same open flags.
//!
//! PostgreSQL only: it runs in the suite's PostgreSQL pass (scripts/test.sh), which CI always
//! runs; with SQLite alone there is nothing to compare.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn stream(captures: &[&str], agent: &str) -> Vec<String> {
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
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn collector(db: &str, args: &[&str]) -> Value {
    let o = Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .env("WARD_COLLECTOR_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn ingest(db: &str, dir: &Path, name: &str, lines: &[String]) {
    let f = dir.join(name);
    std::fs::write(&f, lines.join("\n") + "\n").unwrap();
    let o = Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .arg("ingest")
        .arg(&f)
        .env("WARD_COLLECTOR_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// What a database holds, with its device ids replaced by each device's MACs: devices (MACs →
/// identities, attribute values, services), merges (identity kind and value), open flags
/// (kind, subject, detail). Times are left out: stored times are exact to the store's 60 s
/// resolution, which depends on arrival order (`TIME_RESOLUTION_US`).
#[allow(clippy::type_complexity)]
fn state(
    db: &str,
) -> (
    BTreeMap<String, String>,
    BTreeSet<(String, String)>,
    BTreeSet<String>,
) {
    let inv = collector(db, &["devices", "--json"]);
    let mut by_id = BTreeMap::new();
    let mut devices = BTreeMap::new();
    for d in inv["devices"].as_array().unwrap() {
        let mut macs: Vec<String> = d["macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap_or("").to_string())
            .collect();
        macs.sort();
        let key = macs.join(",");
        by_id.insert(d["id"].as_i64().unwrap(), key.clone());
        let attrs: BTreeMap<String, BTreeSet<String>> = d["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["value"].to_string())
                        .collect(),
                )
            })
            .collect();
        let services: BTreeSet<String> = d["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {} {}", s["direction"], s["transport"], s["port"]))
            .collect();
        devices.insert(
            key,
            format!("{} {:?} {:?}", d["identities"], attrs, services),
        );
    }
    let merges: BTreeSet<(String, String)> = collector(db, &["merges"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["identity_kind"].as_str().unwrap().to_string(),
                m["identity_value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let flags_json = collector(db, &["flags", "--json"]);
    let flags: BTreeSet<String> = flags_json
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| {
            let subject = f["subject"].as_str().unwrap_or("");
            let subject = match subject.strip_prefix("device:") {
                Some(id) => format!(
                    "device:{}",
                    id.parse::<i64>()
                        .ok()
                        .and_then(|id| by_id.get(&id).cloned())
                        .unwrap_or_else(|| format!("gone {id}"))
                ),
                None => subject.to_string(),
            };
            format!("{} {subject} {}", f["kind"], f["detail"])
        })
        .collect();
    (devices, merges, flags)
}

#[test]
fn sqlite_and_postgresql_agree_on_a_shuffled_duplicated_replay_of_the_fixtures() {
    if sqlite() {
        eprintln!("needs PostgreSQL: runs in the suite's PostgreSQL pass (WARD_TEST_POSTGRES)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut lines = Vec::new();
    lines.extend(stream(
        &[
            "dicom-dcmtk.pcap",
            "hl7-mllp.pcap",
            "dhcp.pcap",
            "lldp.pcap",
            "snmp.pcap",
        ],
        "span-1",
    ));
    lines.extend(stream(
        &[
            "sdc.pcap",
            "dicom-pynetdicom.pcap",
            "hl7-mllp-vlan.pcap",
            "mdns.pcap",
        ],
        "span-2",
    ));
    // A second span port seeing what the first saw: the same devices through another agent.
    lines.extend(stream(&["dicom-dcmtk.pcap", "dhcp.pcap"], "span-3"));
    assert!(lines.len() > 5, "{} messages", lines.len());

    let sqlite_db = d.join("oracle.db");
    let sqlite_db = sqlite_db.to_str().unwrap();
    ingest(sqlite_db, d, "all.jsonl", &lines);

    // PostgreSQL: a fixed shuffle, every third message again, in three ingest runs.
    let pg = db_arg(&d.join("ward.db"));
    let mut shuffled = lines.clone();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..shuffled.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        shuffled.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let dups: Vec<String> = lines.iter().step_by(3).cloned().collect();
    shuffled.extend(dups);
    let third = shuffled.len().div_ceil(3);
    for (i, part) in shuffled.chunks(third).enumerate() {
        ingest(&pg, d, &format!("part-{i}.jsonl"), part);
    }

    let at = "2031-06-01";
    collector(sqlite_db, &["evaluate", "--now", at]);
    collector(&pg, &["evaluate", "--now", at]);
    let (dev_s, merges_s, flags_s) = state(sqlite_db);
    let (dev_p, merges_p, flags_p) = state(&pg);
    assert!(!dev_s.is_empty() && !flags_s.is_empty());
    assert_eq!(dev_p, dev_s, "devices differ");
    assert_eq!(merges_p, merges_s, "merges differ");
    assert_eq!(flags_p, flags_s, "open flags differ");
    let stored = |db: &str| collector(db, &["status"])["messages"].clone();
    assert_eq!(
        stored(&pg),
        stored(sqlite_db),
        "messages stored (replays skipped)"
    );
    eprintln!(
        "{} messages ({} replayed), {} devices, {} merges, {} open flags: equal",
        lines.len(),
        shuffled.len() - lines.len(),
        dev_s.len(),
        merges_s.len(),
        flags_s.len()
    );
}
