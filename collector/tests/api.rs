//! The HTTP API over a real running collector: every endpoint with every role, vendor
//! isolation on every endpoint and report, refused tokens (none, malformed, unknown, expired,
//! revoked). The inventory comes from the real agent reading the fixture captures.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A minimal HTTP/1.1 client: enough for a test, and a real socket to a real server.
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Chunked bodies: join the chunks.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
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
        out
    } else {
        body.to_string()
    };
    (status, body)
}

fn get_json(port: u16, path: &str, token: &str) -> Value {
    let (st, body) = http(port, "GET", path, Some(token));
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn ct_id_of(all: &Value) -> i64 {
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["macs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "02:57:41:52:44:0a")
        })
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

fn token(db: &Path, args: &[&str]) -> String {
    let mut a = vec!["token", "create"];
    a.extend_from_slice(args);
    let out = cli(db, &a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn build_inventory(dir: &Path, db: &Path) {
    let jsonl = dir.join("agent.jsonl");
    let mut cmd = Command::new(agent_bin());
    cmd.arg("read");
    for f in [
        "dicom-dcmtk.pcap",
        "dicom-pynetdicom.pcap",
        "hl7-mllp.pcap",
        "hl7-mllp-vlan.pcap",
        "dhcp.pcap",
    ] {
        cmd.arg(fixtures().join(f));
    }
    let out = cmd
        .args(["--output", &format!("jsonl:{}", jsonl.display())])
        .args([
            "--site",
            "test",
            "--agent-id",
            "span-1",
            "--log-level",
            "warn",
        ])
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli_json(db, &["ingest", jsonl.to_str().unwrap()]);
    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-CT\n  supplier: WARD TEST MEDICAL\n  products: [\"WardScan *\"]\n  end_of_support: 2020-01-01\n  encryption_in_transit_required: true\n\
         - id: C-MR\n  supplier: WARD PY MEDICAL\n  products: [\"PyMR*\"]\n  end_of_support: 2020-01-01\n\
         - id: C-PUMP\n  supplier: WARD INFUSION SYSTEMS\n  serials: [WP-0099-7731]\n",
    )
    .unwrap();
    cli_json(db, &["contracts", "import", contracts.to_str().unwrap()]);
    let assets = dir.join("assets.csv");
    std::fs::write(
        &assets,
        "Asset Tag,Manufacturer,Model,MAC Address,Contract\n\
         A-CT,WARD TEST MEDICAL,WardScan 64,02:57:41:52:44:0a,C-CT\n\
         A-MR,WARD PY MEDICAL,PyMR 3T,02:57:41:52:44:0b,C-MR\n",
    )
    .unwrap();
    cli_json(db, &["assets", "import", assets.to_str().unwrap()]);
}

/// Everything of the MR vendor's that the CT vendor must never see.
/// `192.0.2.20` is the worklist server the CT talks to: a peer, and another vendor's device.
const MR_SECRETS: &[&str] = &[
    "02:57:41:52:44:0b",
    "WARD PY MEDICAL",
    "PyMR",
    "C-MR",
    "A-MR",
    "PY-0007",
    "192.0.2.20",
    "02:57:41:52:44:20",
];

/// No key anywhere in `v` names peers.
fn no_peer_keys(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .all(|(k, x)| !k.contains("peer") && no_peer_keys(x)),
        Value::Array(a) => a.iter().all(no_peer_keys),
        _ => true,
    }
}

#[test]
fn every_endpoint_with_every_role_and_vendor_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    build_inventory(d, &db);

    let admin = token(&db, &["--name", "ops", "--role", "admin"]);
    let ce = token(&db, &["--name", "biomed", "--role", "clinical_engineering"]);
    let ct = token(
        &db,
        &[
            "--name",
            "ct-vendor",
            "--role",
            "vendor",
            "--vendor",
            "WARD TEST*",
        ],
    );
    let mr = token(
        &db,
        &[
            "--name",
            "mr-vendor",
            "--role",
            "vendor",
            "--vendor",
            "ward py medical",
        ],
    );
    let expired = token(
        &db,
        &["--name", "old", "--role", "admin", "--expires", "1s"],
    );
    let revoked = token(&db, &["--name", "gone", "--role", "admin"]);
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    let out = cli(&db, &["token", "revoke", &revoked_id]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(1100));

    let port = free_port();
    let http_addr = format!("127.0.0.1:{port}");
    let broker = format!("127.0.0.1:{}", free_port());
    let mut c = serve(
        &db,
        &["--listen", &broker, "--http", &http_addr],
        &d.join("collector.log"),
        Some(port),
    );

    // No token needed for the document; it lists every route.
    let (st, doc) = http(port, "GET", "/api/v1/openapi.json", None);
    assert_eq!(st, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for p in [
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/flags",
        "/api/v1/contracts",
        "/api/v1/assets",
        "/api/v1/coverage",
        "/api/v1/installed-base",
        "/api/v1/agents",
        "/api/v1/tokens",
        "/api/v1/evaluate",
        "/metrics",
    ] {
        assert!(paths.contains(&p), "{p} not in the OpenAPI document");
    }

    // Refused tokens, on every protected endpoint.
    let protected = [
        ("GET", "/api/v1/devices"),
        ("GET", "/api/v1/devices/1"),
        ("GET", "/api/v1/flags"),
        ("GET", "/api/v1/contracts"),
        ("GET", "/api/v1/assets"),
        ("GET", "/api/v1/coverage"),
        ("GET", "/api/v1/installed-base"),
        ("GET", "/api/v1/agents"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/evaluate"),
        ("GET", "/metrics"),
    ];
    let bad_unknown = format!("ward_{}_{}", "0".repeat(16), "0".repeat(64));
    for (m, p) in protected {
        for t in [
            None,
            Some("nonsense"),
            Some(bad_unknown.as_str()),
            Some(expired.as_str()),
            Some(revoked.as_str()),
        ] {
            let (st, body) = http(port, m, p, t);
            assert_eq!(st, 401, "{m} {p} with {t:?}: {body}");
        }
    }

    // Admin and clinical engineering see everything; role-restricted endpoints.
    let all = get_json(port, "/api/v1/devices?limit=1000", &admin);
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 5, "{all}");
    assert_eq!(
        get_json(port, "/api/v1/devices?limit=1000", &ce)["total"],
        total
    );
    for (m, p, who, want) in [
        ("GET", "/api/v1/agents", &ce, 200),
        ("GET", "/api/v1/agents", &admin, 200),
        ("GET", "/api/v1/agents", &ct, 403),
        ("GET", "/api/v1/tokens", &admin, 200),
        ("GET", "/api/v1/tokens", &ce, 403),
        ("GET", "/api/v1/tokens", &ct, 403),
        ("POST", "/api/v1/evaluate", &admin, 200),
        ("POST", "/api/v1/evaluate", &ce, 403),
        ("POST", "/api/v1/evaluate", &ct, 403),
        ("GET", "/metrics", &admin, 200),
        ("GET", "/metrics", &ce, 200),
        ("GET", "/metrics", &ct, 403),
        ("GET", "/api/v1/devices?limit=0", &admin, 400),
        ("GET", "/api/v1/devices?bogus=1", &admin, 400),
        ("GET", "/api/v1/devices/999999", &admin, 404),
    ] {
        let (st, body) = http(port, m, p, Some(who));
        assert_eq!(st, want, "{m} {p}: {body}");
    }
    let (_, metrics) = http(port, "GET", "/metrics", Some(&admin));
    for needle in [
        "ward_collector_devices ",
        "ward_collector_flags_open{kind=\"end_of_support_passed\"}",
        "ward_collector_ingest_messages_total",
        "ward_collector_agents{state=\"online\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    let tokens = get_json(port, "/api/v1/tokens", &admin);
    assert!(!tokens.to_string().contains("secret"), "{tokens}");

    // Every readable endpoint with each role.
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/ID",
        "/api/v1/flags",
        "/api/v1/contracts",
        "/api/v1/assets",
        "/api/v1/coverage",
        "/api/v1/installed-base",
        "/api/v1/agents",
        "/api/v1/tokens",
        "/metrics",
    ] {
        for (who, role) in [
            (&admin, "admin"),
            (&ce, "clinical_engineering"),
            (&ct, "vendor"),
        ] {
            let want = match (path, role) {
                ("/api/v1/tokens", "admin") => 200,
                ("/api/v1/tokens", _) => 403,
                ("/api/v1/agents" | "/metrics", "vendor") => 403,
                _ => 200,
            };
            let p = path.replace("ID", &ct_id_of(&all).to_string());
            let (st, body) = http(port, "GET", &p, Some(who));
            assert_eq!(st, want, "{role} GET {p}: {body}");
            // No patient canary on any path (the HL7 fixtures carry canary patients).
            assert!(
                !body.to_ascii_lowercase().contains("canary"),
                "{role} GET {p} leaked a canary"
            );
        }
    }

    // Filters.
    let cts = get_json(port, "/api/v1/devices?type=ct", &admin);
    assert!(cts["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["device_type"] == "ct"));
    assert!(cts["total"].as_u64().unwrap() >= 1);
    let eos = get_json(port, "/api/v1/devices?flag=end_of_support_passed", &ce);
    assert!(eos["total"].as_u64().unwrap() >= 2, "{eos}");
    let by_site = get_json(port, "/api/v1/devices?site=test", &ce);
    assert_eq!(by_site["total"], total);
    let none = get_json(port, "/api/v1/devices?site=elsewhere", &ce);
    assert_eq!(none["total"], 0);
    // Filter text is literal: LIKE wildcards in it match nothing.
    for q in ["manufacturer=%25", "manufacturer=_", "site=%25", "flag=%25"] {
        let v = get_json(port, &format!("/api/v1/devices?{q}"), &ce);
        assert_eq!(v["total"], 0, "{q}: {v}");
    }
    let page = get_json(port, "/api/v1/devices?limit=2&offset=2", &ce);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Device detail: admin sees peers; the owning vendor sees its device without them.
    let ct_id = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["macs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "02:57:41:52:44:0a")
        })
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mr_id = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["macs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "02:57:41:52:44:0b")
        })
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let full = get_json(port, &format!("/api/v1/devices/{ct_id}"), &admin);
    assert!(full.to_string().contains("peer_addresses"), "{full}");
    assert_eq!(full["summary"]["contract"]["target"], "C-CT");
    assert!(full["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "end_of_support_passed"));
    let own = get_json(port, &format!("/api/v1/devices/{ct_id}"), &ct);
    assert!(no_peer_keys(&own), "{own}");
    assert!(!own.to_string().contains("dicom.called_ae"), "{own}");
    let (st, _) = http(port, "GET", &format!("/api/v1/devices/{mr_id}"), Some(&ct));
    assert_eq!(st, 404, "a vendor must not see another vendor's device");
    let (st, _) = http(port, "GET", &format!("/api/v1/devices/{ct_id}"), Some(&mr));
    assert_eq!(st, 404);

    // Vendor isolation on every readable endpoint: only its manufacturer, nothing of the other.
    let mut seen_by_ct = String::new();
    for p in [
        "/api/v1/devices?limit=1000",
        "/api/v1/flags?limit=1000",
        "/api/v1/flags?status=resolved&limit=1000",
        "/api/v1/contracts",
        "/api/v1/assets",
        "/api/v1/coverage",
        "/api/v1/installed-base",
        &format!("/api/v1/devices/{ct_id}"),
    ] {
        let v = get_json(port, p, &ct);
        assert!(no_peer_keys(&v), "{p}: a vendor saw peers: {v}");
        seen_by_ct.push_str(&v.to_string());
    }
    for secret in MR_SECRETS {
        assert!(!seen_by_ct.contains(secret), "CT vendor saw {secret}");
    }
    let devs = get_json(port, "/api/v1/devices?limit=1000", &ct);
    assert!(devs["total"].as_u64().unwrap() >= 1);
    for dv in devs["items"].as_array().unwrap() {
        assert_eq!(dv["manufacturer"], "WARD TEST MEDICAL", "{dv}");
    }
    let flags = get_json(port, "/api/v1/flags?limit=1000", &ct);
    let ids: Vec<String> = devs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("device:{}", d["id"]))
        .collect();
    for f in flags["items"].as_array().unwrap() {
        let s = f["subject"].as_str().unwrap();
        assert!(ids.iter().any(|i| i == s) || s == "contract:C-CT", "{s}");
    }
    let contracts = get_json(port, "/api/v1/contracts", &ct);
    assert_eq!(contracts.as_array().unwrap().len(), 1);
    assert_eq!(
        get_json(port, "/api/v1/coverage", &ct)["devices"],
        devs["total"]
    );
    let ib = get_json(port, "/api/v1/installed-base", &ct);
    for r in ib.as_array().unwrap() {
        assert_eq!(r["manufacturer"], "WARD TEST MEDICAL");
    }
    // The other vendor, symmetrically, sees its own.
    let mr_devs = get_json(port, "/api/v1/devices?limit=1000", &mr);
    assert!(mr_devs["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["manufacturer"] == "WARD PY MEDICAL"));
    assert!(mr_devs["total"].as_u64().unwrap() >= 1);

    // Reports: every kind and format, and --vendor sees what the vendor's token sees.
    for kind in ["devices", "flags", "coverage", "installed-base"] {
        for format in ["table", "csv", "json"] {
            let out = cli(&db, &["report", kind, "--format", format]);
            assert!(
                out.status.success(),
                "report {kind} {format}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.stdout.is_empty());
            let out = cli(
                &db,
                &["report", kind, "--format", format, "--vendor", "WARD TEST*"],
            );
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout);
            for secret in MR_SECRETS {
                assert!(
                    !text.contains(secret),
                    "report {kind} {format} --vendor leaked {secret}"
                );
            }
        }
    }
    let csv = cli(&db, &["report", "devices", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("id,macs,ips,manufacturer"), "{csv}");
    assert!(csv.contains("02:57:41:52:44:0b"));

    assert!(c.sigterm().success(), "{}", c.log_text());
}
