//! Evaluating only the devices whose data changed (what the serve loop does after ingest) must
//! leave the database exactly as evaluating everything does: the same links, the same flags —
//! open and resolved, with their summaries and evidence — the same summaries and the same
//! counts kept with them. Two stores take the same messages in the same batches (so the same
//! device ids); one evaluates what changed after each batch, the other sweeps everything; after
//! each batch they are compared whole. The messages are the sample site's, as the agent reads
//! them, plus devices that merge (one absorbed: its rows must go) and a device that moves from
//! one asset to another; imports land midway (advisories, the KEV catalog, a new asset
//! register), which the changed-devices path must answer with a sweep. On SQLite and, in the
//! PostgreSQL pass, on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ward_collector::commands::Import;
use ward_collector::compliance::flags::{FlagConfig, FlagKind};
use ward_collector::evaluation::{self, Reference};
use ward_collector::store::{DeviceQuery, FlagQuery, Message, Store};
use ward_protocols::schema::observation::{
    DeviceRecord, FactRecord, Kind, MacKind, Observation, Seen, ServiceRecord, SCHEMA,
};
use ward_protocols::{Field, MacAddr, Protocol};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The sample site's messages, as `ward-agent read` publishes them.
fn sample_messages(dir: &Path) -> Vec<Message> {
    let jsonl = dir.join("agent.jsonl");
    let out = Command::new(common::agent_bin())
        .arg("read")
        .arg(common::sample_site())
        .args(["--output", &format!("jsonl:{}", jsonl.display())])
        .args(["--site", "north", "--agent-id", "span-1"])
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<Message> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| ward_collector::ingest::decode_line(l).unwrap())
        .collect();
    // A message a device, as an agent's deltas bring them when devices show up one by one;
    // then every third device again, ten minutes later (beyond the store's time resolution).
    let mut out = Vec::new();
    let mut again = Vec::new();
    for m in read {
        let Message::Observation(o) = m else { continue };
        for (i, d) in o.devices.iter().enumerate() {
            let mut one = o.clone();
            one.seq = o.seq * 10_000 + i as u64;
            one.devices = vec![d.clone()];
            if i % 3 == 0 {
                let mut later = one.clone();
                later.seq += 5_000;
                later.time_us += 600_000_000;
                for d in &mut later.devices {
                    d.seen.first_us += 600_000_000;
                    d.seen.last_us += 600_000_000;
                }
                again.push(Message::Observation(later));
            }
            out.push(Message::Observation(one));
        }
    }
    out.extend(again);
    out
}

/// A device record: `mac`, optionally a DICOM serial (a strong identity: two devices that
/// report the same one merge), a model the sample contracts do or do not cover.
fn record(mac: u8, serial: Option<&str>, model: &str, t: i64) -> DeviceRecord {
    let seen = Seen {
        first_us: t,
        last_us: t + 1000,
        count: 1,
    };
    let mac = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, mac]);
    let fact = |field, value: &str| FactRecord {
        field,
        protocol: Protocol::Dicom,
        value: value.into(),
        seen,
    };
    let mut facts = vec![
        fact(Field::DicomManufacturer, "ACME"),
        fact(Field::DicomModelName, model),
        fact(Field::DicomModality, "CT"),
    ];
    if let Some(s) = serial {
        facts.push(fact(Field::DicomDeviceSerialNumber, s));
    }
    DeviceRecord {
        key: format!("mac:{mac}"),
        mac: Some(mac),
        vlan: None,
        mac_kind: Some(MacKind::Universal),
        oui_vendor: None,
        seen,
        addresses: vec![],
        facts,
        services_offered: vec![],
        // DICOM: a protocol that carries patient data, so a medical device, with flags.
        services_used: vec![ServiceRecord {
            transport: "tcp".into(),
            port: 104,
            app: Some(Protocol::Dicom),
            peers: 1,
            peer_addresses: vec![std::net::IpAddr::from([10, 0, 0, 200])],
            seen,
        }],
        roles: vec![],
        classification: None,
    }
}

fn observation(seq: u64, t: i64, devices: Vec<DeviceRecord>) -> Message {
    Message::Observation(Observation {
        schema: SCHEMA.into(),
        site: "south".into(),
        agent_id: "span-9".into(),
        instance: "i-1".into(),
        seq,
        kind: Kind::Delta,
        time_us: t,
        devices,
    })
}

/// Everything an evaluation writes, ids of flags aside (the two stores open the same flags,
/// not necessarily in the same order).
fn state(store: &dyn Store) -> BTreeMap<&'static str, Vec<String>> {
    let mut flags: Vec<String> = store
        .flags(false)
        .unwrap()
        .into_iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {} {} {:?} | {} | {}",
                f.kind,
                f.subject,
                f.detail,
                f.severity,
                f.status,
                f.opened_us,
                f.last_true_us,
                f.resolved_us,
                f.summary,
                f.evidence
            )
        })
        .collect();
    flags.sort();
    let links = store
        .links()
        .unwrap()
        .iter()
        .map(|l| format!("{l:?}"))
        .collect();
    let summaries = store
        .device_summaries(None)
        .unwrap()
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    let (total, page) = store
        .device_page(&DeviceQuery {
            limit: 1000,
            ..DeviceQuery::default()
        })
        .unwrap();
    let mut counts = vec![
        format!("{:?}", store.coverage(None).unwrap()),
        format!("{:?}", store.open_flag_counts(None).unwrap()),
        format!(
            "{total} {:?}",
            page.iter().map(|s| s.id).collect::<Vec<_>>()
        ),
    ];
    counts.extend(
        store
            .flag_timeline(None, 0, i64::MAX / 2)
            .unwrap()
            .iter()
            .map(|d| format!("{d:?}")),
    );
    BTreeMap::from([
        ("flags", flags),
        ("links", links),
        ("summaries", summaries),
        ("counts", counts),
    ])
}

/// The totals of open-flag pages (answered from the counts kept with the flags) are the open
/// flags there are.
fn assert_open_totals(step: &str, store: &dyn Store) {
    let open = store.flags(true).unwrap();
    let page = |kind: Option<&str>| {
        store
            .flag_page(&FlagQuery {
                status: Some("open".into()),
                kind: kind.map(str::to_string),
                limit: 1,
                ..FlagQuery::default()
            })
            .unwrap()
            .0
    };
    assert_eq!(page(None), open.len() as u64, "{step}");
    for k in FlagKind::ALL {
        let n = open.iter().filter(|f| f.kind == k.name()).count() as u64;
        assert_eq!(page(Some(k.name())), n, "{step}: {k}");
    }
}

fn assert_same(step: &str, inc: &dyn Store, full: &dyn Store) {
    assert_open_totals(step, inc);
    let (a, b) = (state(inc), state(full));
    for (what, rows) in &b {
        let got = &a[what];
        if got != rows {
            let only_inc: Vec<_> = got.iter().filter(|r| !rows.contains(r)).collect();
            let only_full: Vec<_> = rows.iter().filter(|r| !got.contains(r)).collect();
            panic!(
                "{step}: {what} differ\nonly after evaluating what changed: {only_inc:#?}\n\
                 only after evaluating everything: {only_full:#?}"
            );
        }
    }
}

#[test]
fn evaluating_what_changed_leaves_what_evaluating_everything_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut inc = common::open_store(&d.join("incremental.db"));
    let mut full = common::open_store(&d.join("full.db"));
    let cfg = FlagConfig::default();
    let mut messages = sample_messages(d);
    assert!(messages.len() >= 8, "{} messages", messages.len());
    let last_seen = messages
        .iter()
        .filter_map(|m| match m {
            Message::Observation(o) => Some(o.time_us),
            Message::Status(_) => None,
        })
        .max()
        .unwrap();
    // As the demo evaluates: a day after the capture, one contract's support ending soon.
    let now = last_seen + 86_400_000_000;
    let eos_soon = chrono::DateTime::from_timestamp_micros(now + 90 * 86_400_000_000)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let contracts = d.join("contracts.yaml");
    std::fs::write(
        &contracts,
        std::fs::read_to_string(workspace().join("examples/contracts.yaml"))
            .unwrap()
            .replace("{{EOS_SOON}}", &eos_soon),
    )
    .unwrap();
    // Devices of our own: 1 and 2 merge on a serial once 2 reports it; 3 is linked to asset
    // T-3 by its MAC, then the register moves that MAC to T-4; 4 is never in the register.
    let t = last_seen - 3_600_000_000;
    let mut ours = vec![
        observation(
            1,
            t,
            vec![
                record(1, Some("SN-1"), "Scan 1", t),
                record(2, None, "Scan 1", t),
            ],
        ),
        observation(
            2,
            t + 1,
            vec![
                record(3, None, "Pump 7", t + 1),
                record(4, None, "Pump 7", t + 1),
            ],
        ),
        observation(3, t + 2, vec![record(2, Some("SN-1"), "Scan 1", t + 2)]),
        observation(4, t + 3, vec![record(3, None, "Pump 8", t + 200_000_000)]),
    ];
    let register = |tags: &[(&str, u8)]| {
        let path = d.join(format!("assets-{}.csv", tags.len()));
        let mut csv = String::from("Asset Tag,Manufacturer,Model,MAC Address\n");
        for (tag, mac) in tags {
            csv.push_str(&format!("{tag},ACME,Pump 7,02:00:5e:10:00:{mac:02x}\n"));
        }
        std::fs::write(&path, csv).unwrap();
        Import::assets(path, &[], false).unwrap()
    };
    let first_imports = [
        Import::contracts(contracts).unwrap(),
        Import::assets(workspace().join("examples/cmms-assets.csv"), &[], false).unwrap(),
        register(&[("T-3", 3)]),
    ];
    let later_imports = [
        Import::advisories(vec![workspace().join("examples/advisories")]).unwrap(),
        Import::kev(workspace().join("examples/kev-example.json")).unwrap(),
        register(&[("T-3", 9), ("T-4", 3)]),
    ];
    for i in &first_imports {
        i.store(&mut inc, now).unwrap();
        i.store(&mut full, now).unwrap();
    }
    let mut reference = Reference::default();
    evaluation::evaluate_all(&mut inc, &mut reference, &cfg, &|| now, &mut |_, _| {
        Ok(true)
    })
    .unwrap();
    evaluation::evaluate(&mut full, &cfg, now).unwrap();
    assert_same("first sweep", &inc, &full);

    // The sample site a message at a time, ours among them, the later imports near the end.
    let half = messages.len() / 2;
    let mut rest = messages.split_off(half);
    messages.append(&mut ours);
    messages.append(&mut rest);
    let mut swept = 0;
    // Late enough that the merge and the move are compared before the imports' sweep.
    let midway = messages.len() - 2;
    for (n, batch) in messages.chunks(1).enumerate() {
        inc.ingest(batch, now).unwrap();
        full.ingest(batch, now).unwrap();
        if n == midway {
            for i in &later_imports {
                i.store(&mut inc, now).unwrap();
                i.store(&mut full, now).unwrap();
            }
        }
        match evaluation::evaluate_changed(&mut inc, &mut reference, &cfg, now).unwrap() {
            Some(_) => {}
            None => {
                swept += 1;
                evaluation::evaluate_all(&mut inc, &mut reference, &cfg, &|| now, &mut |_, _| {
                    Ok(true)
                })
                .unwrap();
            }
        }
        assert!(inc.changed_devices(10).unwrap().devices.is_empty());
        evaluation::evaluate(&mut full, &cfg, now).unwrap();
        assert_same(&format!("batch {n}"), &inc, &full);
    }
    assert_eq!(swept, 1, "the imports midway call for one sweep");
    // What the scenario is for happened: a merge, a device moved between assets, flags of
    // every scope opened and resolved.
    assert!(!inc.merges().unwrap().is_empty());
    let links = inc.links().unwrap();
    assert!(links.iter().any(|l| l.target == "T-4"), "{links:?}");
    let flags = inc.flags(false).unwrap();
    for scope in ["device:", "asset:", "contract:"] {
        assert!(
            flags.iter().any(|f| f.subject.starts_with(scope)),
            "no {scope} flag"
        );
    }
    assert!(flags.iter().any(|f| f.status == "resolved"));
    assert!(
        flags
            .iter()
            .any(|f| f.summary.contains("(device merged into")),
        "the merge resolved no open flag"
    );
}
