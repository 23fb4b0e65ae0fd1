//! Claims the README and the code comments make that no other test pinned down, each with a
//! case that fails when the claim breaks:
//!
//! - a sequence gap in an agent's messages shows as `missing > 0` in `ward-collector agents` and
//!   `/api/v1/agents` (replayed JSON lines, and live over MQTT to the embedded broker), and
//!   filling the gap brings it back to 0;
//! - `end_of_support_within` fires when end of support is at most 180 days away (day 179 and
//!   180: yes; day 181: no; today: within; yesterday: passed);
//! - `asset_not_seen` fires when the asset's devices were last seen more than 30 days ago (29
//!   days and exactly 30 days: no; 30 days and a second, 31 days: yes).
//!
//! The dates are computed relative to today; evaluations run at noon UTC of today (`--now`), so
//! a run across midnight cannot shift a boundary.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const DAY_US: i64 = 86_400_000_000;

/// Noon UTC today, in µs, and as RFC 3339.
fn today_noon() -> (i64, String) {
    let today = chrono::Utc::now().date_naive();
    let noon = today.and_hms_opt(12, 0, 0).unwrap().and_utc();
    (noon.timestamp_micros(), noon.to_rfc3339())
}

fn date(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// A medical device record (a CT of `ACME`, model `model`) last seen at `last_us`.
fn device(mac: &str, model: &str, last_us: i64) -> Value {
    let seen = json!({"first_us": last_us - 3_600_000_000i64, "last_us": last_us, "count": 3});
    json!({
        "key": format!("mac:{mac}"),
        "mac": mac,
        "mac_kind": "local",
        "seen": seen,
        "addresses": [],
        "facts": [{"field": "dicom.manufacturer", "protocol": "dicom", "value": "ACME", "seen": seen}],
        "services_offered": [],
        "services_used": [],
        "classification": {"manufacturer": "ACME", "model": model, "device_type": "ct", "confidence": 0.9, "matches": []}
    })
}

fn observation(agent: &str, instance: &str, seq: u64, time_us: i64, devices: Vec<Value>) -> Value {
    json!({
        "schema": "ward.observation.v1", "site": "s1", "agent_id": agent, "instance": instance,
        "seq": seq, "kind": "delta", "time_us": time_us, "devices": devices
    })
}

fn ingest(db: &Path, dir: &Path, name: &str, lines: &[Value]) -> Value {
    let f = dir.join(name);
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&f, text.join("\n")).unwrap();
    cli_json(db, &["ingest", f.to_str().unwrap()])
}

/// `(messages, missing)` of `agent` in `ward-collector agents`.
fn agent_counts(db: &Path, agent: &str) -> (i64, i64) {
    let v = cli_json(db, &["agents"]);
    let a = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == agent)
        .unwrap_or_else(|| panic!("no agent {agent}: {v}"));
    (
        a["messages"].as_i64().unwrap(),
        a["missing"].as_i64().unwrap(),
    )
}

#[test]
fn a_sequence_gap_shows_as_missing_until_it_is_filled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let (now, _) = today_noon();
    let msg = |agent: &str, instance: &str, seq: u64| {
        observation(
            agent,
            instance,
            seq,
            now,
            vec![device("02:00:00:00:00:01", "Gap", now)],
        )
    };
    // Seq 1, 2, 4 of one run: one message missing.
    let r = ingest(
        &db,
        d,
        "gap.jsonl",
        &[
            msg("a1", "i-1", 1),
            msg("a1", "i-1", 2),
            msg("a1", "i-1", 4),
        ],
    );
    assert_eq!(r["ingest"]["messages"], 3, "{r}");
    assert_eq!(agent_counts(&db, "a1"), (3, 1));
    // A gap in a second run of the same agent adds to it; a run without gaps adds nothing.
    ingest(
        &db,
        d,
        "second.jsonl",
        &[
            msg("a1", "i-2", 1),
            msg("a1", "i-2", 5),
            msg("a2", "i-1", 1),
            msg("a2", "i-1", 2),
        ],
    );
    assert_eq!(agent_counts(&db, "a1"), (5, 4));
    assert_eq!(agent_counts(&db, "a2"), (2, 0));
    // The late messages arrive: nothing is missing any more.
    ingest(
        &db,
        d,
        "late.jsonl",
        &[
            msg("a1", "i-1", 3),
            msg("a1", "i-2", 2),
            msg("a1", "i-2", 3),
            msg("a1", "i-2", 4),
        ],
    );
    assert_eq!(agent_counts(&db, "a1"), (9, 0));
}

/// The same live: seq 1, 2 and 4 published over MQTT (QoS 1) to the embedded broker of a running
/// collector; `agents` and `/api/v1/agents` report one missing.
#[test]
fn a_sequence_gap_over_mqtt_shows_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let ce = token(&db, &["--name", "ce", "--role", "clinical_engineering"]);
    let mut c = serve(&db, &[], &d.join("collector.log"));
    let port = c.mqtt_port();
    let (now, _) = today_noon();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let o = rumqttc::MqttOptions::new("gap-agent", "127.0.0.1", port);
        let (client, mut ev) = rumqttc::AsyncClient::new(o, 16);
        for seq in [1u64, 2, 4] {
            let m = observation(
                "gap-agent",
                "run-1",
                seq,
                now,
                vec![device("02:00:00:00:00:02", "Gap", now)],
            );
            client
                .publish(
                    "ward/v1/s1/gap-agent/devices",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    serde_json::to_vec(&m).unwrap(),
                )
                .await
                .unwrap();
        }
        // Every PUBACK: the collector committed all three.
        let mut acked = 0;
        tokio::time::timeout(Duration::from_secs(30), async {
            while acked < 3 {
                if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) =
                    ev.poll().await.expect("MQTT connection")
                {
                    acked += 1;
                }
            }
        })
        .await
        .expect("three PUBACKs");
        client.disconnect().await.unwrap();
    });
    assert_eq!(agent_counts(&db, "gap-agent"), (3, 1));
    let api = get_json(c.http_port(), "/api/v1/agents", &ce);
    let row = api
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "gap-agent")
        .unwrap_or_else(|| panic!("{api}"));
    assert_eq!(row["missing"], 1, "{row}");
    assert_eq!(row["messages"], 3, "{row}");
    assert!(c.sigterm().success(), "{}", c.log_text());
}

/// Open flags: `(kind, subject) -> detail`.
fn open_flags(db: &Path) -> BTreeMap<(String, String), String> {
    cli_json(db, &["flags", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                (
                    f["kind"].as_str().unwrap().to_string(),
                    f["subject"].as_str().unwrap().to_string(),
                ),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// MAC → device id.
fn device_ids(db: &Path) -> BTreeMap<String, i64> {
    let v = cli_json(db, &["devices", "--json"]);
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["macs"][0].as_str().unwrap().to_string(),
                d["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn end_of_support_within_fires_up_to_180_days_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let (now, now_s) = today_noon();
    // Days from today to the end of support, per device.
    let cases: [(i64, &str); 6] = [
        (-1, "02:00:00:00:10:01"),
        (0, "02:00:00:00:10:02"),
        (179, "02:00:00:00:10:03"),
        (180, "02:00:00:00:10:04"),
        (181, "02:00:00:00:10:05"),
        (400, "02:00:00:00:10:06"),
    ];
    let devices = cases
        .iter()
        .map(|(days, mac)| device(mac, &format!("EOS {days}"), now - 3_600_000_000))
        .collect();
    ingest(
        &db,
        d,
        "devices.jsonl",
        &[observation("a1", "i-1", 1, now, devices)],
    );
    let mut yaml = String::from("contracts:\n");
    for (days, _) in &cases {
        yaml.push_str(&format!(
            "  - id: C-EOS-{days}\n    supplier: ACME\n    products: [\"EOS {days}\"]\n    end_of_support: {}\n",
            date(now + days * DAY_US)
        ));
    }
    let cfile = d.join("contracts.yaml");
    std::fs::write(&cfile, yaml).unwrap();
    cli_json(&db, &["contracts", "import", cfile.to_str().unwrap()]);
    cli_json(&db, &["evaluate", "--now", &now_s]);

    let ids = device_ids(&db);
    let flags = open_flags(&db);
    let devices = cli_json(&db, &["devices", "--json"]);
    for (days, mac) in cases {
        let subject = format!("device:{}", ids[mac]);
        // Each device is linked to its own contract (else the test proves nothing).
        let linked = devices["links"].as_array().unwrap().iter().any(|l| {
            l["device_id"] == ids[mac]
                && l["kind"] == "contract"
                && l["target"] == format!("C-EOS-{days}")
        });
        assert!(
            linked,
            "device with end of support in {days} days is not linked: {devices:#}"
        );
        let within = flags.contains_key(&("end_of_support_within".into(), subject.clone()));
        let passed = flags.contains_key(&("end_of_support_passed".into(), subject.clone()));
        let (want_within, want_passed) = match days {
            -1 => (false, true),
            0..=180 => (true, false),
            _ => (false, false),
        };
        assert_eq!(
            (within, passed),
            (want_within, want_passed),
            "end of support in {days} days: (within, passed) at {now_s}; open flags: {flags:#?}"
        );
    }
    // The evidence names the threshold and the days left.
    let rows = cli_json(&db, &["flags", "--json"]);
    let f180 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["kind"] == "end_of_support_within"
                && f["subject"] == format!("device:{}", ids["02:00:00:00:10:04"])
        })
        .unwrap();
    assert_eq!(f180["evidence"]["days_left"], 180, "{f180:#}");
    assert_eq!(f180["evidence"]["warning_days"], 180, "{f180:#}");
}

#[test]
fn asset_not_seen_fires_after_more_than_30_days() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let (now, now_s) = today_noon();
    // How long before `now` each asset's device was last seen, and whether it is flagged.
    let cases: [(&str, &str, i64, bool); 5] = [
        ("A-29D", "02:00:00:00:20:01", 29 * DAY_US, false),
        ("A-30D", "02:00:00:00:20:02", 30 * DAY_US, false),
        (
            "A-30D1S",
            "02:00:00:00:20:03",
            30 * DAY_US + 1_000_000,
            true,
        ),
        ("A-31D", "02:00:00:00:20:04", 31 * DAY_US, true),
        ("A-1H", "02:00:00:00:20:05", 3_600_000_000, false),
    ];
    let devices = cases
        .iter()
        .map(|(_, mac, ago, _)| device(mac, "Seen", now - ago))
        .collect();
    ingest(
        &db,
        d,
        "devices.jsonl",
        &[observation("a1", "i-1", 1, now, devices)],
    );
    let mut csv = String::from("Asset Tag,Manufacturer,Model,MAC Address\n");
    for (tag, mac, _, _) in &cases {
        csv.push_str(&format!("{tag},ACME,Seen,{mac}\n"));
    }
    csv.push_str("A-NEVER,ACME,Seen,02:00:00:00:20:99\n");
    let afile = d.join("assets.csv");
    std::fs::write(&afile, csv).unwrap();
    cli_json(&db, &["assets", "import", afile.to_str().unwrap()]);
    cli_json(&db, &["evaluate", "--now", &now_s]);

    let flags = open_flags(&db);
    let devices = cli_json(&db, &["devices", "--json"]);
    let ids = device_ids(&db);
    for (tag, mac, ago, want) in cases {
        let linked = devices["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["device_id"] == ids[mac] && l["kind"] == "asset" && l["target"] == tag);
        assert!(
            linked,
            "asset {tag} is not linked to its device: {devices:#}"
        );
        let got = flags.contains_key(&("asset_not_seen".into(), format!("asset:{tag}")));
        assert_eq!(
            got,
            want,
            "asset {tag}, last seen {} s before {now_s}: asset_not_seen; open flags: {flags:#?}",
            ago / 1_000_000
        );
    }
    assert!(
        flags.contains_key(&("asset_not_seen".into(), "asset:A-NEVER".into())),
        "an asset never seen is flagged: {flags:#?}"
    );
}
