//! Vendor globs with non-ASCII names (hospital security review, issue 12, finding 14b).
//!
//! A vendor's manufacturer globs decide what it sees on every path: the device list, coverage
//! and installed base (filtered in SQL), the device detail and contracts (filtered in Rust),
//! flags (devices and contracts, in SQL). SQLite's LIKE folds ASCII case only, so "Dräger*"
//! listed "Dräger Medical" but not "DRÄGER" while the detail showed both. Every path must
//! agree with `pattern::matches`, the one definition of a case-insensitive glob.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

use ward_collector::access::tokens::Principal;
use ward_collector::access::views::{self, MAX_LIMIT};
use ward_collector::compliance::flags::FlagConfig;
use ward_collector::import::model::{
    Contract, NoticeMonths, PatchSla, ProductPattern, RemoteAccess,
};
use ward_collector::import::pattern;
use ward_collector::ingest;
use ward_collector::store::{DeviceQuery, FlagQuery, Message, Store};
use ward_protocols::schema::observation::{
    ClassificationRecord, DeviceRecord, Kind, MacKind, Observation, Seen, SCHEMA,
};
use ward_protocols::MacAddr;

const MANUFACTURERS: &[&str] = &[
    "DRÄGER",
    "Dräger Medical",
    "drägerwerk",
    "Siemens Healthineers",
    "SIEMENS AG",
    "ÄRZTEWERK",
    "Ärztewerk Süd",
    "ΣΙΕΜΕΝΣ",
    "GE Healthcare",
];

const GLOBS: &[&str] = &[
    "Dräger*",
    "dräger*",
    "DRÄGER*",
    "DRÄGER",
    "*ÄGER*",
    "SIEMENS*",
    "siemens healthineers",
    "ärzte*",
    "ÄRZTEWERK SÜD",
    "σιεμενσ",
    "Dr?ger*",
    "GE*",
];

fn device(i: u8, manufacturer: &str) -> DeviceRecord {
    let seen = Seen {
        first_us: 1_700_000_000_000_000,
        last_us: 1_700_000_001_000_000,
        count: 1,
    };
    let mac = MacAddr([0, 0x1b, 0x21, 0, 1, i]);
    DeviceRecord {
        key: format!("mac:{mac}@10"),
        mac: Some(mac),
        vlan: Some(10),
        mac_kind: Some(MacKind::Universal),
        oui_vendor: None,
        seen,
        addresses: vec![],
        facts: vec![],
        services_offered: vec![],
        services_used: vec![],
        roles: vec![],
        classification: Some(ClassificationRecord {
            manufacturer: Some(manufacturer.into()),
            model: Some("Evita V500".into()),
            device_type: "ventilator".into(),
            software_version: Some("2.1".into()),
            confidence: 0.9,
            matches: vec![],
            candidates: vec![],
            explanation: None,
        }),
    }
}

/// A contract for one manufacturer's devices, over its quantity (1) when both link to it, so
/// it has a flag on its own subject.
fn contract(id: &str, supplier: &str) -> Contract {
    Contract {
        id: id.into(),
        supplier: supplier.into(),
        products: vec![ProductPattern {
            manufacturer: Some(supplier.into()),
            model: "Evita*".into(),
        }],
        serials: vec![],
        asset_tags: vec![],
        quantity: Some(1),
        sites: vec![],
        vlans: vec![],
        start: None,
        end: None,
        end_of_support: None,
        end_of_guaranteed_support: None,
        end_of_life: None,
        notice_months: NoticeMonths::default(),
        supported_software_versions: vec![],
        patch_sla_days: PatchSla::default(),
        permitted_services: vec![],
        remote_access: RemoteAccess::default(),
        encryption_in_transit_required: false,
        external_communication_permitted: true,
        mds2: None,
        sbom: None,
        notes: None,
    }
}

fn owned(glob: &str, name: &str) -> bool {
    pattern::matches(glob, name)
}

#[test]
fn list_detail_flags_and_contracts_agree_for_non_ascii_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = common::open_store(&dir.path().join("ward.db"));
    let now = ingest::now_us();
    let devices: Vec<DeviceRecord> = MANUFACTURERS
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            // Two devices per manufacturer, so each contract (quantity 1) is over its quantity.
            let i = u8::try_from(i).unwrap();
            [device(2 * i, m), device(2 * i + 1, m)]
        })
        .collect();
    let observation = Observation {
        schema: SCHEMA.into(),
        site: "north".into(),
        agent_id: "agent-1".into(),
        instance: "i-1".into(),
        seq: 1,
        kind: Kind::Snapshot,
        time_us: 1_700_000_001_000_000,
        devices,
    };
    store
        .ingest(&[Message::Observation(observation)], now)
        .unwrap();
    let contracts: Vec<Contract> = MANUFACTURERS
        .iter()
        .enumerate()
        .map(|(i, m)| contract(&format!("C-{i}"), m))
        .collect();
    store.import_contracts(&contracts, "test", now).unwrap();
    ingest::evaluate(&mut store, &FlagConfig::default(), now).unwrap();

    let admin = Principal::local_admin();
    let all = views::devices(
        &store,
        &admin,
        DeviceQuery {
            limit: MAX_LIMIT,
            ..DeviceQuery::default()
        },
    )
    .unwrap();
    assert_eq!(all.total, 2 * MANUFACTURERS.len() as u64);
    let manufacturer_of = |id: i64| -> String {
        all.items
            .iter()
            .find(|d| d.id == id)
            .and_then(|d| d.manufacturer.clone())
            .unwrap()
    };
    let all_flags = views::flags(
        &store,
        &admin,
        FlagQuery {
            limit: MAX_LIMIT,
            ..FlagQuery::default()
        },
    )
    .unwrap();
    let contract_flags: BTreeSet<String> = all_flags
        .items
        .iter()
        .filter_map(|f| f["subject"].as_str())
        .filter(|s| s.starts_with("contract:"))
        .map(str::to_owned)
        .collect();
    // Linking picks one contract per device, so not every contract is over its quantity; the
    // non-ASCII upper-case one must be (it is what SQLite's LIKE missed).
    assert!(
        contract_flags.contains("contract:C-0") && contract_flags.len() > 3,
        "contracts over their quantity: {contract_flags:?}"
    );

    for glob in GLOBS {
        let p = Principal::vendor(&[glob.to_string()]);
        let want: BTreeSet<i64> = all
            .items
            .iter()
            .filter(|d| owned(glob, d.manufacturer.as_deref().unwrap_or_default()))
            .map(|d| d.id)
            .collect();
        assert!(!want.is_empty(), "{glob}: the test should match something");

        // The list (SQL).
        let list = views::devices(
            &store,
            &p,
            DeviceQuery {
                limit: MAX_LIMIT,
                ..DeviceQuery::default()
            },
        )
        .unwrap();
        let listed: BTreeSet<i64> = list.items.iter().map(|d| d.id).collect();
        assert_eq!(list.total, listed.len() as u64, "{glob}");
        // The detail (Rust).
        let detailed: BTreeSet<i64> = all
            .items
            .iter()
            .map(|d| d.id)
            .filter(|&id| views::device(&store, &p, id).is_ok())
            .collect();
        let names = |ids: &BTreeSet<i64>| -> Vec<String> {
            ids.iter().map(|&id| manufacturer_of(id)).collect()
        };
        assert_eq!(
            names(&listed),
            names(&want),
            "{glob}: the device list disagrees with the glob"
        );
        assert_eq!(
            names(&detailed),
            names(&want),
            "{glob}: the device detail disagrees with the glob"
        );

        // Coverage and installed base (SQL, like the list).
        let coverage = views::coverage(&store, &p).unwrap();
        assert_eq!(coverage.devices, want.len() as u64, "{glob}: coverage");
        let ib = views::installed_base(&store, &p).unwrap();
        let ib_names: BTreeSet<String> = ib.iter().map(|r| r.manufacturer.clone()).collect();
        let want_names: BTreeSet<String> = names(&want).into_iter().collect();
        assert_eq!(ib_names, want_names, "{glob}: installed base");

        // Contracts (Rust) and the flags on them and on the devices (SQL).
        let visible_contracts: BTreeSet<String> = views::contracts(&store, &p)
            .unwrap()
            .into_iter()
            .map(|c| format!("contract:{}", c.id))
            .collect();
        let want_contracts: BTreeSet<String> = contracts
            .iter()
            .filter(|c| owned(glob, &c.supplier))
            .map(|c| format!("contract:{}", c.id))
            .collect();
        assert_eq!(visible_contracts, want_contracts, "{glob}: contracts");
        let flags = views::flags(
            &store,
            &p,
            FlagQuery {
                limit: MAX_LIMIT,
                ..FlagQuery::default()
            },
        )
        .unwrap();
        let flagged_contracts: BTreeSet<String> = flags
            .items
            .iter()
            .filter_map(|f| f["subject"].as_str())
            .filter(|s| s.starts_with("contract:"))
            .map(str::to_owned)
            .collect();
        let want_flagged: BTreeSet<String> = want_contracts
            .intersection(&contract_flags)
            .cloned()
            .collect();
        assert_eq!(flagged_contracts, want_flagged, "{glob}: contract flags");
        for f in &flags.items {
            let subject = f["subject"].as_str().unwrap_or_default();
            if let Some(id) = subject.strip_prefix("device:") {
                let id: i64 = id.parse().unwrap();
                assert!(
                    want.contains(&id),
                    "{glob}: flag on {subject} is not theirs"
                );
            }
        }
        let want_device_flags = all_flags
            .items
            .iter()
            .filter(|f| {
                f["subject"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("device:"))
                    .and_then(|id| id.parse::<i64>().ok())
                    .is_some_and(|id| want.contains(&id))
            })
            .count();
        let device_flags = flags
            .items
            .iter()
            .filter(|f| {
                f["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("device:"))
            })
            .count();
        assert_eq!(device_flags, want_device_flags, "{glob}: device flags");
    }
}

/// The list's `manufacturer` filter ("contains, case-insensitive") folds case the same way.
#[test]
fn the_manufacturer_filter_folds_non_ascii_case() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = common::open_store(&dir.path().join("ward.db"));
    let now = ingest::now_us();
    let observation = Observation {
        schema: SCHEMA.into(),
        site: "north".into(),
        agent_id: "agent-1".into(),
        instance: "i-1".into(),
        seq: 1,
        kind: Kind::Snapshot,
        time_us: 1_700_000_001_000_000,
        devices: vec![
            device(1, "DRÄGER"),
            device(2, "Dräger Medical"),
            device(3, "GE"),
        ],
    };
    store
        .ingest(&[Message::Observation(observation)], now)
        .unwrap();
    ingest::evaluate(&mut store, &FlagConfig::default(), now).unwrap();
    let admin = Principal::local_admin();
    for (filter, want) in [
        ("dräger", vec!["DRÄGER", "Dräger Medical"]),
        ("ÄGER", vec!["DRÄGER", "Dräger Medical"]),
        ("äger med", vec!["Dräger Medical"]),
        ("100%", vec![]),
        ("G_", vec![]),
    ] {
        let page = views::devices(
            &store,
            &admin,
            DeviceQuery {
                manufacturer: Some(filter.into()),
                limit: MAX_LIMIT,
                ..DeviceQuery::default()
            },
        )
        .unwrap();
        let got: Vec<String> = page
            .items
            .iter()
            .filter_map(|d| d.manufacturer.clone())
            .collect();
        assert_eq!(got, want, "manufacturer={filter:?}");
        assert_eq!(page.total, want.len() as u64, "manufacturer={filter:?}");
    }
}

/// A minimal HTTP/1.1 GET over a real socket (as in tests/api.rs).
fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    (status, out)
}

/// The same through the HTTP API of a running collector with real vendor tokens.
#[test]
fn api_list_and_detail_agree_for_non_ascii_vendor_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    let observation = Observation {
        schema: SCHEMA.into(),
        site: "north".into(),
        agent_id: "agent-1".into(),
        instance: "i-1".into(),
        seq: 1,
        kind: Kind::Snapshot,
        time_us: 1_700_000_001_000_000,
        devices: MANUFACTURERS
            .iter()
            .enumerate()
            .map(|(i, m)| device(u8::try_from(i).unwrap(), m))
            .collect(),
    };
    let jsonl = d.join("agent.jsonl");
    std::fs::write(
        &jsonl,
        format!("{}\n", serde_json::to_string(&observation).unwrap()),
    )
    .unwrap();
    cli_json(&db, &["ingest", jsonl.to_str().unwrap()]);
    let token = |glob: &str| -> String {
        let out = cli(
            &db,
            &[
                "token", "create", "--name", "v", "--role", "vendor", "--vendor", glob,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let globs = ["Dräger*", "DRÄGER*", "SIEMENS*", "ärzte*", "σιεμενσ"];
    let tokens: Vec<String> = globs.iter().map(|g| token(g)).collect();
    let admin = {
        let out = cli(&db, &["token", "create", "--name", "a", "--role", "admin"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    let c = serve(&db, &[], &d.join("collector.log"));
    let port = c.http_port();
    let json = |path: &str, token: &str| -> Value {
        let (st, body) = get(port, path, token);
        assert_eq!(st, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let all = json("/api/v1/devices?limit=1000", &admin);
    let all: Vec<(i64, String)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_i64().unwrap(),
                d["manufacturer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(all.len(), MANUFACTURERS.len());
    for (glob, token) in globs.iter().zip(&tokens) {
        let want: BTreeSet<i64> = all
            .iter()
            .filter(|(_, m)| owned(glob, m))
            .map(|(id, _)| *id)
            .collect();
        assert!(!want.is_empty(), "{glob}: the test should match something");
        let listed: BTreeSet<i64> = json("/api/v1/devices?limit=1000", token)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect();
        let detailed: BTreeSet<i64> = all
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| get(port, &format!("/api/v1/devices/{id}"), token).0 == 200)
            .collect();
        assert_eq!(listed, want, "{glob}: the API's device list");
        assert_eq!(detailed, want, "{glob}: the API's device detail");
    }
}
