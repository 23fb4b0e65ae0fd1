//! SBOMs end to end, through the real binary: an infusion pump ("Acme Medical" "Infusomat
//! Space X") is seen by an agent running firmware 2.0 (an agent JSON-lines stream, `ingest`),
//! and later 2.1. The manufacturer's CycloneDX SBOMs of both releases are imported for the
//! pump's contract (`sbom import`): 2.0 ships OpenSSL 1.1.1k (nested under the Linux
//! component), 2.1 OpenSSL 3.0.13. A test advisory (`tests/data/sbom/openssl-advisory.json`,
//! written for this test) names no pump at all: its product tree identifies OpenSSL by PURL
//! (`pkg:generic/openssl` with `vers:generic/>=1.1.1|<1.1.1l`, and
//! `pkg:generic/openssl@1.1.1k`). Through the 2.0 SBOM, vulnerable_software and patch_overdue
//! open with evidence naming the SBOM, the component and the advisory entry; once the wire
//! shows 2.1, they resolve. The SBOM import's refusals (unknown contract, older BOM version)
//! leave the database unchanged.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, Kind, MacKind, Observation, Seen, SCHEMA,
};
use ward_protocols::MacAddr;

const ADVISORY: &str = "ACME-TEST-2024-0001";
const SERIAL_20: &str = "urn:uuid:6c3f4d2e-1b7a-4c1e-9f0a-2d5e8b7c9a01";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sbom")
        .join(name)
}

fn us(date: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(date)
        .unwrap()
        .timestamp_micros()
}

/// One agent message: the pump seen at `time` running `version`, from agent run `instance`.
fn line(instance: &str, time: &str, version: &str) -> String {
    let t = us(time);
    let seen = Seen {
        first_us: t,
        last_us: t + 60_000_000,
        count: 3,
    };
    let mac = MacAddr([0x02, 0x5a, 0x4e, 0x54, 0x45, 0x21]);
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
                ip: std::net::IpAddr::from([10, 1, 2, 33]),
                source: "ip".into(),
                seen,
            }],
            facts: vec![],
            services_offered: vec![],
            services_used: vec![],
            roles: vec![],
            classification: Some(ClassificationRecord {
                manufacturer: Some("Acme Medical".into()),
                model: Some("Infusomat Space X".into()),
                device_type: "infusion_pump".into(),
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

/// The advisory's flag of `kind`: the open one if there is one, else the last resolved one.
fn flag(db: &Path, kind: &str) -> Option<(String, Value)> {
    let mut found: Option<(String, Value)> = None;
    for f in cli_json(db, &["flags", "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detail"] == ADVISORY && f["kind"] == kind)
    {
        if found.as_ref().is_some_and(|(s, _)| s == "open") {
            continue;
        }
        found = Some((
            f["status"].as_str().unwrap().to_owned(),
            f["evidence"].clone(),
        ));
    }
    found
}

fn status(db: &Path, kind: &str) -> Option<String> {
    flag(db, kind).map(|(s, _)| s)
}

fn sboms(db: &Path) -> Value {
    cli_json(db, &["sbom", "list"])
}

#[test]
fn an_advisory_naming_a_component_by_purl_reaches_the_pump_through_its_sbom() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("ward.db");
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    let run1 = dir.join("run1.jsonl");
    std::fs::write(&run1, line("run-1", "2024-03-01T09:00:00Z", "2.0") + "\n").unwrap();
    cli_json(&db, &["ingest", &s(&run1)]);

    // The contract must exist before an SBOM is bound to it: refused, nothing stored.
    let sbom20 = data("product-2.0.cdx.json");
    let out = cli(
        &db,
        &["sbom", "import", &s(&sbom20), "--contract", "C-ACME"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contract \"C-ACME\" is not imported"), "{err}");
    assert_eq!(sboms(&db), Value::Array(vec![]));

    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-ACME\n  supplier: Acme Medical\n  products: [\"Infusomat*\"]\n  patch_sla_days: {critical: 15, high: 30}\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", &s(&contracts)]);

    // A dry run reads and checks only.
    let out = cli(
        &db,
        &[
            "sbom",
            "import",
            &s(&sbom20),
            "--contract",
            "C-ACME",
            "--dry-run",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Infusomat Space X 2.0"));
    assert_eq!(sboms(&db), Value::Array(vec![]));

    let imported = cli_json(
        &db,
        &["sbom", "import", &s(&sbom20), "--contract", "C-ACME"],
    );
    assert_eq!(imported["sbom"]["inserted"], 1, "{imported}");
    assert_eq!(imported["sbom"]["components"], 3, "{imported}");
    cli_json(
        &db,
        &[
            "sbom",
            "import",
            &s(&data("product-2.1.cdx.json")),
            "--contract",
            "C-ACME",
        ],
    );
    let list = sboms(&db);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");
    assert_eq!(list[0]["serial_number"], SERIAL_20);
    assert_eq!(list[0]["product_model"], "Infusomat Space X");
    assert_eq!(list[0]["product_version"], "2.0");
    assert_eq!(
        list[0]["components"][1]["name"], "openssl",
        "nested, flattened"
    );

    // Revisions: version 2 of the same BOM replaces it; then version 1 is refused.
    let v2 = dir.join("product-2.0-v2.cdx.json");
    let text = std::fs::read_to_string(&sbom20).unwrap();
    std::fs::write(
        &v2,
        text.replace(
            "\"version\": 1,\n  \"metadata\"",
            "\"version\": 2,\n  \"metadata\"",
        ),
    )
    .unwrap();
    let replaced = cli_json(&db, &["sbom", "import", &s(&v2), "--contract", "C-ACME"]);
    assert_eq!(replaced["sbom"]["replaced"], 1, "{replaced}");
    let out = cli(
        &db,
        &["sbom", "import", &s(&sbom20), "--contract", "C-ACME"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("older than the stored version 2"), "{err}");
    let list = sboms(&db);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        list[0]["bom_version"], 2,
        "the refused import changed nothing"
    );

    // The advisory names OpenSSL only. Fix 2024-02-01, CRITICAL, 15 days: due 2024-02-16.
    cli_json(
        &db,
        &["advisories", "import", &s(&data("openssl-advisory.json"))],
    );
    cli_json(&db, &["evaluate", "--now", "2024-03-05T12:00:00Z"]);
    let (st, ev) = flag(&db, "vulnerable_software").expect("vulnerable_software");
    assert_eq!(st, "open", "{ev:#}");
    let matches = ev["matches"].as_array().unwrap();
    assert_eq!(
        matches.len(),
        2,
        "the range entry and the 1.1.1k entry: {ev:#}"
    );
    for m in matches {
        let via = &m["match"]["sbom"];
        assert_eq!(via["serial_number"], SERIAL_20, "{m:#}");
        assert_eq!(via["contract_id"], "C-ACME");
        assert_eq!(via["bom_version"], 2);
        assert_eq!(via["component"]["name"], "openssl");
        assert_eq!(via["component"]["version"], "1.1.1k");
        assert_eq!(via["component"]["purl"], "pkg:generic/openssl@1.1.1k");
        assert_eq!(via["component_match"]["identified_by"], "purl");
        let explanation = m["explanation"].as_str().unwrap();
        assert!(explanation.contains("via SBOM"), "{explanation}");
        assert!(explanation.contains(SERIAL_20), "{explanation}");
        assert!(explanation.contains("contract C-ACME"), "{explanation}");
    }
    let range = matches
        .iter()
        .find(|m| m["match"]["product_id"] == "OPENSSL-111")
        .expect("the range entry");
    assert_eq!(
        range["match"]["version_or_range"],
        "vers:generic/>=1.1.1|<1.1.1l"
    );
    assert!(range["explanation"]
        .as_str()
        .unwrap()
        .contains("component version 1.1.1k is in vers:generic/>=1.1.1|<1.1.1l: affected"));
    assert_eq!(ev["cves"][0]["cve"], "CVE-2021-3711");
    assert_eq!(ev["patch_clock"]["contract_id"], "C-ACME");
    assert_eq!(ev["patch_clock"]["severity"], "critical");
    assert_eq!(ev["vendor_fix"]["fixed_version"], "1.1.1l");
    let (st, ev) = flag(&db, "patch_overdue").expect("patch_overdue");
    assert_eq!(st, "open");
    assert_eq!(ev["patch_clock"]["patch_due"], "2024-02-16");
    assert_eq!(ev["patch_clock"]["days_overdue"], 18);

    // Firmware 2.1 on the wire: its SBOM has OpenSSL 3.0.13, outside the range.
    let run2 = dir.join("run2.jsonl");
    std::fs::write(&run2, line("run-2", "2024-03-10T08:00:00Z", "2.1") + "\n").unwrap();
    cli_json(&db, &["ingest", &s(&run2)]);
    cli_json(&db, &["evaluate", "--now", "2024-03-11T12:00:00Z"]);
    assert_eq!(
        status(&db, "vulnerable_software").as_deref(),
        Some("resolved")
    );
    assert_eq!(status(&db, "patch_overdue").as_deref(), Some("resolved"));
    assert_eq!(status(&db, "advisory_version_not_comparable"), None);
}

/// Every malformed SBOM of `tests/data/sbom/`, with the line its error must name and words of
/// the message.
const MALFORMED: &[(&str, u32, &str)] = &[
    ("bad-bom-version.json", 5, "integer from 1"),
    ("bad-component-name.json", 34, "must not be empty"),
    ("bad-component-type.json", 33, "unknown variant `libary`"),
    ("bad-components-not-a-list.json", 21, "expected a sequence"),
    ("bad-cpe.json", 27, "13 ':'-separated parts"),
    ("bad-format.json", 2, "expected `CycloneDX`"),
    ("bad-no-product.json", 6, "--product"),
    ("bad-purl.json", 37, "starts with pkg:"),
    ("bad-serial.json", 4, "urn:uuid"),
    ("bad-spec-version.json", 3, "unknown variant `1.2`"),
    ("bad-syntax.json", 35, "key must be a string"),
    ("bad-version-type.json", 35, "expected a string"),
];

#[test]
fn malformed_sboms_import_nothing_and_say_file_and_line() {
    let mut on_disk: Vec<String> = std::fs::read_dir(data(""))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("bad-"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = MALFORMED.iter().map(|m| m.0.to_owned()).collect();
    assert_eq!(on_disk, listed, "every malformed file has its line here");
    assert!(MALFORMED.len() >= 6);

    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ward.db");
    let contracts = tmp.path().join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n- id: C-ACME\n  supplier: Acme Medical\n  products: [\"Infusomat*\"]\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", contracts.to_str().unwrap()]);
    let good = data("product-2.1.cdx.json");
    cli_json(
        &db,
        &[
            "sbom",
            "import",
            good.to_str().unwrap(),
            "--contract",
            "C-ACME",
        ],
    );
    let before = sboms(&db);
    for (name, line, words) in MALFORMED {
        let p = data(name);
        let out = cli(
            &db,
            &[
                "sbom",
                "import",
                p.to_str().unwrap(),
                "--contract",
                "C-ACME",
            ],
        );
        assert!(!out.status.success(), "{name} imported");
        let err = String::from_utf8_lossy(&out.stderr);
        let place = format!("{}:{line}:", p.display());
        assert!(err.contains(&place), "{name}: want {place} in {err}");
        assert!(err.contains(words), "{name}: want {words:?} in {err}");
        assert_eq!(sboms(&db), before, "{name} changed the database");
    }
}
