//! The patch clock end to end, through the real binary: an agent JSON-lines stream in which a
//! Sante DICOM Viewer Pro workstation runs 14.0.3 and, in a later agent run, 14.0.4 is ingested
//! (`ward-collector ingest`); the real CISA advisory ICSMA-24-058-01 (read where it lives,
//! `../shared/advisories/public/`), the KEV subset and a contract with `patch_sla_days` are
//! imported; evaluations as of chosen dates show vulnerable → overdue (with the day counts) →
//! resolved once the fixed version is on the wire, and the patch-SLA report counts it.
//!
//! ICSMA-24-058-01: `<=14.0.3`, CVE-2024-1453 HIGH 7.8, a `vendor_fix` without a date ("update
//! … to v14.0.4 or later"), released 2024-02-27: F = 2024-02-27, due with 30 days on
//! 2024-03-28.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, Kind, MacKind, Observation, Seen, SCHEMA,
};
use ward_protocols::MacAddr;

fn public(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/advisories/public")
        .join(name)
}

fn us(date: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(date)
        .unwrap()
        .timestamp_micros()
}

/// One agent message: the workstation seen at `time` running `version`, from agent run
/// `instance`.
fn line(instance: &str, time: &str, version: &str) -> String {
    let t = us(time);
    let seen = Seen {
        first_us: t,
        last_us: t + 60_000_000,
        count: 3,
    };
    let mac = MacAddr([0x02, 0x5a, 0x4e, 0x54, 0x45, 0x01]);
    let o = Observation {
        schema: SCHEMA.into(),
        site: "main".into(),
        agent_id: "span-1".into(),
        instance: instance.into(),
        seq: 1,
        kind: Kind::Delta,
        time_us: t + 60_000_000,
        devices: vec![DeviceRecord {
            key: format!("mac:{mac}"),
            mac: Some(mac),
            vlan: None,
            mac_kind: Some(MacKind::Local),
            oui_vendor: None,
            seen,
            addresses: vec![AddressRecord {
                ip: std::net::IpAddr::from([10, 1, 2, 3]),
                source: "ip".into(),
                seen,
            }],
            facts: vec![],
            services_offered: vec![],
            services_used: vec![],
            roles: vec![],
            classification: Some(ClassificationRecord {
                manufacturer: Some("Santesoft".into()),
                model: Some("Sante DICOM Viewer Pro".into()),
                device_type: "workstation".into(),
                software_version: Some(version.into()),
                confidence: 0.9,
                matches: vec![],
                candidates: vec![],
                explanation: None,
            }),
        }],
    };
    serde_json::to_string(&o).unwrap()
}

/// (kind, detail) → (status, evidence) of the advisory flags: the open flag of a kind if there
/// is one, else the last resolved one. Every import also evaluates at the wall clock (years
/// after these dates), so a flag opened then and resolved by the next dated evaluation is in
/// the history too; only "open" says what holds as of the last evaluation.
fn advisory_flags(db: &Path) -> BTreeMap<(String, String), (String, Value)> {
    let mut m: BTreeMap<(String, String), (String, Value)> = BTreeMap::new();
    for f in cli_json(db, &["flags", "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detail"] == "ICSMA-24-058-01")
    {
        let key = (
            f["kind"].as_str().unwrap().to_owned(),
            f["detail"].as_str().unwrap().to_owned(),
        );
        let st = f["status"].as_str().unwrap().to_owned();
        if m.get(&key).is_some_and(|(s, _)| s == "open") {
            continue;
        }
        m.insert(key, (st, f["evidence"].clone()));
    }
    m
}

fn status(f: &BTreeMap<(String, String), (String, Value)>, kind: &str) -> Option<String> {
    f.get(&(kind.to_owned(), "ICSMA-24-058-01".to_owned()))
        .map(|(s, _)| s.clone())
}

fn open(f: &BTreeMap<(String, String), (String, Value)>, kind: &str) -> bool {
    status(f, kind).as_deref() == Some("open")
}

#[test]
fn vulnerable_then_overdue_then_patched_on_a_real_advisory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("ward.db");

    // The first agent run: 14.0.3.
    let run1 = dir.join("run1.jsonl");
    std::fs::write(
        &run1,
        line("run-1", "2024-03-01T09:00:00Z", "14.0.3") + "\n",
    )
    .unwrap();
    cli_json(&db, &["ingest", run1.to_str().unwrap()]);
    let advisory = public("icsma-24-058-01.json");
    cli_json(&db, &["advisories", "import", advisory.to_str().unwrap()]);
    let kev = public("kev-subset.json");
    cli_json(&db, &["kev", "import", kev.to_str().unwrap()]);
    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-SANTE\n  supplier: Santesoft\n  products: [\"Sante DICOM Viewer*\"]\n  patch_sla_days: {critical: 15, high: 30}\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", contracts.to_str().unwrap()]);

    // 2024-03-20: vulnerable, not overdue yet (due 2024-03-28).
    cli_json(&db, &["evaluate", "--now", "2024-03-20T12:00:00Z"]);
    let f = advisory_flags(&db);
    assert_eq!(
        status(&f, "vulnerable_software").as_deref(),
        Some("open"),
        "{f:#?}"
    );
    assert!(!open(&f, "patch_overdue"), "{f:#?}");
    let (_, ev) = &f[&("vulnerable_software".into(), "ICSMA-24-058-01".into())];
    assert_eq!(ev["cves"][0]["cve"], "CVE-2024-1453");
    assert_eq!(ev["cves"][0]["cvss_base_score"], 7.8);
    assert_eq!(ev["patch_clock"]["contract_id"], "C-SANTE");
    assert_eq!(ev["patch_clock"]["severity"], "high");
    assert_eq!(ev["patch_clock"]["patch_sla_days"], 30);
    assert_eq!(ev["vendor_fix"]["available_since"], "2024-02-27");
    assert_eq!(ev["vendor_fix"]["fixed_version"], "14.0.4");
    assert!(ev["vendor_fix"]["fixed_version_evidence"]["sentence"]
        .as_str()
        .unwrap()
        .contains("v14.0.4 or later"));
    assert!(ev["matches"][0]["explanation"]
        .as_str()
        .unwrap()
        .contains("version 14.0.3 is in <=14.0.3: affected"));
    // None of the KEV subset's CVEs is this advisory's.
    assert_eq!(status(&f, "known_exploited_vulnerability"), None);
    assert_eq!(status(&f, "vendor_fix_overdue"), None);

    // The due date itself is within the SLA.
    cli_json(&db, &["evaluate", "--now", "2024-03-28T23:00:00Z"]);
    assert!(!open(&advisory_flags(&db), "patch_overdue"));

    // 2024-04-07: 10 days overdue.
    cli_json(&db, &["evaluate", "--now", "2024-04-07T12:00:00Z"]);
    let f = advisory_flags(&db);
    assert_eq!(
        status(&f, "patch_overdue").as_deref(),
        Some("open"),
        "{f:#?}"
    );
    let (_, ev) = &f[&("patch_overdue".into(), "ICSMA-24-058-01".into())];
    assert_eq!(ev["patch_clock"]["patch_due"], "2024-03-28");
    assert_eq!(ev["patch_clock"]["days_overdue"], 10);
    assert_eq!(ev["patch_clock"]["fix_available_since"], "2024-02-27");
    assert_eq!(ev["affected_version_last_seen"], "2024-03-01T09:01:00Z");
    assert_eq!(status(&f, "vendor_fix_overdue"), None, "a fix exists");
    // 2024-04-17: the same flag, 20 days overdue now.
    cli_json(&db, &["evaluate", "--now", "2024-04-17T12:00:00Z"]);
    let f = advisory_flags(&db);
    let (_, ev) = &f[&("patch_overdue".into(), "ICSMA-24-058-01".into())];
    assert_eq!(ev["patch_clock"]["days_overdue"], 20);

    let report = cli_json(&db, &["report", "patch-sla", "--format", "json"]);
    assert_eq!(report[0]["contract_id"], "C-SANTE", "{report:#}");
    assert_eq!(report[0]["overdue"], 1);
    assert_eq!(report[0]["still_affected"], 1);
    assert_eq!(report[0]["patched"], 0);
    assert!(report[0]["median_days_fix_to_patch"].is_null());
    let table = cli(&db, &["report", "patch-sla"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("n/a"));

    // A later agent run shows 14.0.4 (2024-04-20): both flags resolve at the next evaluation.
    let run2 = dir.join("run2.jsonl");
    std::fs::write(
        &run2,
        line("run-2", "2024-04-20T08:00:00Z", "14.0.4") + "\n",
    )
    .unwrap();
    cli_json(&db, &["ingest", run2.to_str().unwrap()]);
    cli_json(&db, &["evaluate", "--now", "2024-04-21T12:00:00Z"]);
    let f = advisory_flags(&db);
    assert_eq!(
        status(&f, "vulnerable_software").as_deref(),
        Some("resolved"),
        "{f:#?}"
    );
    assert_eq!(
        status(&f, "patch_overdue").as_deref(),
        Some("resolved"),
        "{f:#?}"
    );
    // Each resolved flag says why: patched to 14.0.4, first seen 2024-04-20 08:00, 53 days
    // after the fix of 2024-02-27, past the 30-day SLA (due 2024-03-28).
    let all = cli_json(&db, &["flags", "--all", "--json"]);
    for kind in ["vulnerable_software", "patch_overdue"] {
        let noted: Vec<&Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind && f["status"] == "resolved")
            .filter(|f| !f["evidence"]["resolution"].is_null())
            .collect();
        assert_eq!(noted.len(), 1, "{kind}: {all:#}");
        let r = &noted[0]["evidence"]["resolution"];
        assert_eq!(r["software_version"], "14.0.4");
        assert_eq!(r["previous_version"], "14.0.3");
        assert_eq!(r["version_first_seen"], "2024-04-20T08:00:00Z");
        assert_eq!(r["patched_on"], "2024-04-20");
        assert_eq!(r["fix_available_since"], "2024-02-27");
        assert_eq!(r["fixed_version"], "14.0.4");
        assert_eq!(r["days_after_fix"], 53);
        assert_eq!(r["patch_sla_days"], 30);
        assert_eq!(r["within_sla"], false);
        assert!(
            noted[0]["summary"].as_str().unwrap().ends_with(
                "; resolved: patched to 14.0.4 at 2024-04-20, 53 days after the fix (2024-02-27), past the patch SLA"
            ),
            "{}",
            noted[0]["summary"]
        );
    }
    let table = cli(&db, &["flags", "--all"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("53 days after the fix (2024-02-27)"));

    // The report: patched 53 days after the fix (2024-02-27 → 2024-04-20), past the SLA.
    let report = cli_json(&db, &["report", "patch-sla", "--format", "json"]);
    let r = &report[0];
    assert_eq!(
        (
            r["supplier"].as_str(),
            r["advisories"].as_u64(),
            r["devices_affected"].as_u64(),
            r["still_affected"].as_u64(),
            r["patched"].as_u64(),
            r["patched_within_sla"].as_u64(),
            r["overdue"].as_u64(),
            r["no_fix_available"].as_u64(),
        ),
        (
            Some("Santesoft"),
            Some(1),
            Some(1),
            Some(0),
            Some(1),
            Some(0),
            Some(0),
            Some(0)
        ),
        "{r:#}"
    );
    assert_eq!(r["median_days_fix_to_patch"], 53.0);
    let pair = &r["patched_pairs"][0];
    assert_eq!(pair["advisory"], "ICSMA-24-058-01");
    assert_eq!(pair["software_version"], "14.0.4");
    assert_eq!(pair["fix_available_since"], "2024-02-27");
    assert_eq!(pair["patch_seen"], "2024-04-20");
    assert_eq!(pair["days_fix_to_patch"], 53);
    assert_eq!(pair["within_sla"], false);
    let csv = cli(&db, &["report", "patch-sla", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("supplier,contract,advisories,devices_affected"),
        "{csv}"
    );
    assert!(
        csv.contains("Santesoft,C-SANTE,1,1,0,1,0,0,0,0,53,ICSMA-24-058-01"),
        "{csv}"
    );
}

/// OpenEoX (issue 20 point 5): a shell statement on Santesoft "Sante DICOM Viewer Pro" `<=14.0.4`
/// (end of security support 2024-06-30, end of life 2024-12-31) raises `end_of_life_product`
/// on the ingested workstation from the day after the earlier date, with the statement, the
/// date, the days since and the match in its evidence; a release outside the range does not.
#[test]
fn an_openeox_statement_raises_end_of_life_once_its_date_has_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("ward.db");
    let run1 = dir.join("run1.jsonl");
    std::fs::write(
        &run1,
        line("run-1", "2024-03-01T09:00:00Z", "14.0.3") + "\n",
    )
    .unwrap();
    cli_json(&db, &["ingest", run1.to_str().unwrap()]);
    let eox = dir.join("santesoft-eox.json");
    std::fs::write(
        &eox,
        r#"{
  "$schema": "https://docs.oasis-open.org/openeox/tbd/schema/shell.json",
  "statements": [{
    "core": {
      "$schema": "https://docs.oasis-open.org/openeox/v1.0/schema/core.json",
      "end_of_life": "2024-12-31T23:59:59Z",
      "end_of_security_support": "2024-06-30T23:59:59Z",
      "last_updated": "2024-01-10T00:00:00Z"
    },
    "vendorName": "Santesoft",
    "productName": "Sante DICOM Viewer Pro",
    "productVersion": "<=14.0.4"
  }]
}"#,
    )
    .unwrap();
    cli_json(&db, &["eox", "import", eox.to_str().unwrap()]);
    let eol = |db: &Path| -> Vec<Value> {
        cli_json(db, &["flags", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "end_of_life_product")
            .cloned()
            .collect()
    };
    // The last day of security support: not yet.
    cli_json(&db, &["evaluate", "--now", "2024-06-30T12:00:00Z"]);
    assert!(eol(&db).is_empty());
    cli_json(&db, &["evaluate", "--now", "2024-07-10T12:00:00Z"]);
    let f = eol(&db);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["detail"],
        "eox:santesoft/sante dicom viewer pro/<=14.0.4"
    );
    let ev = &f[0]["evidence"];
    assert_eq!(ev["passed"]["date"], "end_of_security_support");
    assert_eq!(ev["passed"]["day"], "2024-06-30");
    assert_eq!(ev["passed"]["days_since"], 10);
    assert_eq!(ev["eox"]["source"], eox.to_str().unwrap());
    assert_eq!(ev["match"]["device_version"], "14.0.3");
    assert_eq!(ev["match"]["vendor_match"]["how"], "folded");
    assert_eq!(ev["match"]["model_match"]["how"], "product_name");
    // A release the statement does not cover: resolved.
    let run2 = dir.join("run2.jsonl");
    std::fs::write(
        &run2,
        line("run-2", "2024-07-15T08:00:00Z", "15.0.0") + "\n",
    )
    .unwrap();
    cli_json(&db, &["ingest", run2.to_str().unwrap()]);
    cli_json(&db, &["evaluate", "--now", "2024-07-16T12:00:00Z"]);
    assert!(eol(&db).is_empty());
}

/// The version timeline (issue 20 point 8): one agent stream in which the workstation runs
/// 1.0, then 1.1, then 1.0 again (a rollback), then 1.2 lists four changes in order — the
/// rollback an entry of its own — with their times, the agent that saw them and which one is
/// current, through the CLI and the API; a vendor token sees only its own devices' timelines.
#[test]
fn the_version_timeline_shows_every_change_a_rollback_included() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("ward.db");
    let stream = dir.join("stream.jsonl");
    let runs = [
        ("run-1", "2024-01-01T09:00:00Z", "1.0"),
        ("run-2", "2024-02-01T09:00:00Z", "1.1"),
        ("run-3", "2024-03-01T09:00:00Z", "1.0"),
        ("run-4", "2024-04-01T09:00:00Z", "1.2"),
    ];
    let text: String = runs.iter().map(|(i, t, v)| line(i, t, v) + "\n").collect();
    std::fs::write(&stream, text).unwrap();
    cli_json(&db, &["ingest", stream.to_str().unwrap()]);
    let id = cli_json(&db, &["devices", "--json"])["devices"][0]["id"]
        .as_i64()
        .unwrap();
    let timeline = cli_json(&db, &["device", "versions", &id.to_string(), "--json"]);
    let got: Vec<(String, String, String, bool)> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["software_version"].as_str().unwrap().to_owned(),
                v["first_seen"].as_str().unwrap().to_owned(),
                v["change"].as_str().unwrap().to_owned(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, bool)> = [
        ("1.0", "2024-01-01T09:00:00Z", "first", false),
        ("1.1", "2024-02-01T09:00:00Z", "upgrade", false),
        ("1.0", "2024-03-01T09:00:00Z", "rollback", false),
        ("1.2", "2024-04-01T09:00:00Z", "upgrade", true),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d))
    .collect();
    assert_eq!(got, want, "{timeline:#}");
    assert_eq!(timeline[2]["last_seen"], "2024-03-01T09:01:00Z");
    assert_eq!(timeline[0]["agent_id"], "span-1");
    assert_eq!(timeline[0]["site"], "main");
    let table = cli(&db, &["device", "versions", &id.to_string()]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("rollback"), "{table}");
    // Ingested again (a replay), nothing changes.
    cli_json(&db, &["ingest", stream.to_str().unwrap()]);
    assert_eq!(
        cli_json(&db, &["device", "versions", &id.to_string(), "--json"]),
        timeline
    );

    // The API: the same for the vendor of the device, a 404 for another vendor.
    let own = token(
        &db,
        &[
            "--name",
            "sante",
            "--role",
            "vendor",
            "--vendor",
            "Santesoft*",
        ],
    );
    let other = token(
        &db,
        &["--name", "acme", "--role", "vendor", "--vendor", "Acme*"],
    );
    let c = serve(&db, &[], &dir.join("collector.log"));
    let port = c.http_port();
    let path = format!("/api/v1/devices/{id}/versions");
    assert_eq!(get_json(port, &path, &own), timeline);
    assert_eq!(http(port, "GET", &path, Some(&other)).0, 404);
    assert_eq!(
        http(port, "GET", "/api/v1/devices/999999/versions", Some(&own)).0,
        404
    );
}

/// A rollback (issue 20): vulnerable on 14.0.3 → patched to 14.0.4 (both flags resolve) → the
/// agent sees 14.0.3 again → the next evaluation re-opens vulnerable_software and
/// patch_overdue, with the rollback in the evidence; a second patch resolves them again, dated
/// by the new episode (not the first sighting of 14.0.4).
#[test]
fn a_rollback_to_an_affected_version_reopens_the_advisory_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("ward.db");
    let ingest = |name: &str, instance: &str, time: &str, version: &str| {
        let f = dir.join(name);
        std::fs::write(&f, line(instance, time, version) + "\n").unwrap();
        cli_json(&db, &["ingest", f.to_str().unwrap()]);
    };
    ingest("r1.jsonl", "run-1", "2024-03-01T09:00:00Z", "14.0.3");
    let advisory = public("icsma-24-058-01.json");
    cli_json(&db, &["advisories", "import", advisory.to_str().unwrap()]);
    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-SANTE\n  supplier: Santesoft\n  products: [\"Sante DICOM Viewer*\"]\n  patch_sla_days: {critical: 15, high: 30}\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", contracts.to_str().unwrap()]);
    let open_kinds = |db: &Path| -> Vec<String> {
        let mut v: Vec<String> = cli_json(db, &["flags", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["detail"] == "ICSMA-24-058-01")
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    cli_json(&db, &["evaluate", "--now", "2024-04-07T12:00:00Z"]);
    assert_eq!(open_kinds(&db), ["patch_overdue", "vulnerable_software"]);

    // Patched on 2024-04-20: nothing open.
    ingest("r2.jsonl", "run-2", "2024-04-20T08:00:00Z", "14.0.4");
    cli_json(&db, &["evaluate", "--now", "2024-04-21T12:00:00Z"]);
    assert!(open_kinds(&db).is_empty());

    // Rolled back on 2024-05-10: vulnerable and overdue again at the next evaluation.
    ingest("r3.jsonl", "run-3", "2024-05-10T08:00:00Z", "14.0.3");
    cli_json(&db, &["evaluate", "--now", "2024-05-11T12:00:00Z"]);
    assert_eq!(open_kinds(&db), ["patch_overdue", "vulnerable_software"]);
    let flags = cli_json(&db, &["flags", "--json"]);
    let overdue = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "patch_overdue")
        .unwrap();
    // Due 2024-03-28: 44 days overdue on 2024-05-11.
    assert_eq!(overdue["evidence"]["patch_clock"]["days_overdue"], 44);
    let rb = &overdue["evidence"]["rollback"];
    assert_eq!(rb["from_version"], "14.0.4", "{overdue:#}");
    assert_eq!(rb["rolled_back_on"], "2024-05-10");
    assert!(overdue["summary"]
        .as_str()
        .unwrap()
        .contains("rolled back from 14.0.4 on 2024-05-10"));

    // Patched again on 2024-06-01: resolved, 95 days after the fix (the second patch).
    ingest("r4.jsonl", "run-4", "2024-06-01T08:00:00Z", "14.0.4");
    cli_json(&db, &["evaluate", "--now", "2024-06-02T12:00:00Z"]);
    assert!(open_kinds(&db).is_empty());
    let all = cli_json(&db, &["flags", "--all", "--json"]);
    let last = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "vulnerable_software" && !f["evidence"]["resolution"].is_null())
        .max_by_key(|f| f["resolved_us"].as_i64())
        .unwrap();
    assert_eq!(last["evidence"]["resolution"]["patched_on"], "2024-06-01");
    assert_eq!(last["evidence"]["resolution"]["days_after_fix"], 95);
}
