//! The HTTP API over a real running collector: every endpoint with every role, vendor
//! isolation on every endpoint and report, refused tokens (none, malformed, unknown, expired,
//! revoked), token secrets stored only as SHA-256 and shown nowhere after `token create`. The
//! inventory comes from the real agent reading the fixture captures; every API response (the
//! `http` helper scans each), every report in every format, the logs at debug and the database
//! with its WAL (copied while the collector runs) are scanned for the fixtures' patient
//! canaries.

mod common;

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use common::*;
use serde_json::Value;

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
            "debug",
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
    assert_log_clean("the agent's log (debug)", &out.stderr);
    assert_file_clean("the agent's JSON lines", &jsonl);
    cli_json(db, &["ingest", jsonl.to_str().unwrap()]);
    // One advisory per vendor (test-written, fictional CVE ids), for the patch-SLA view.
    let advisories = dir.join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    for (id, vendor, model, cve) in [
        (
            "API-CT",
            "WARD TEST MEDICAL",
            "WardScan 64",
            "CVE-2099-2001",
        ),
        ("API-MR", "WARD PY MEDICAL", "PyMR 3T", "CVE-2099-2002"),
    ] {
        let doc = serde_json::json!({
            "document": {
                "category": "csaf_security_advisory", "csaf_version": "2.0",
                "publisher": {"category": "other", "name": "ward api test", "namespace": "https://example.org/ward"},
                "title": "test advisory",
                "tracking": {"id": id, "version": "1", "status": "final",
                    "initial_release_date": "2020-01-01T00:00:00Z", "current_release_date": "2020-01-01T00:00:00Z",
                    "revision_history": [{"date": "2020-01-01T00:00:00Z", "number": "1", "summary": "test"}]}
            },
            "product_tree": {"branches": [{"category": "vendor", "name": vendor, "branches": [
                {"category": "product_name", "name": model, "branches": [
                    {"category": "product_version_range", "name": "vers:all/*",
                     "product": {"name": model, "product_id": "P1"}}]}]}]},
            "vulnerabilities": [{"cve": cve, "product_status": {"known_affected": ["P1"]},
                "scores": [{"cvss_v3": {"version": "3.1", "baseScore": 9.8, "baseSeverity": "CRITICAL",
                    "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "products": ["P1"]}],
                "remediations": [{"category": "vendor_fix", "date": "2020-02-01T00:00:00Z",
                    "details": "The manufacturer released an update.", "product_ids": ["P1"]}]}]
        });
        std::fs::write(advisories.join(format!("{id}.json")), doc.to_string()).unwrap();
    }
    cli_json(db, &["advisories", "import", advisories.to_str().unwrap()]);
    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-CT\n  supplier: WARD TEST MEDICAL\n  products: [\"WardScan *\"]\n  end_of_support: 2020-01-01\n  encryption_in_transit_required: true\n  patch_sla_days: {critical: 30}\n\
         - id: C-MR\n  supplier: WARD PY MEDICAL\n  products: [\"PyMR*\"]\n  end_of_support: 2020-01-01\n  patch_sla_days: {critical: 30}\n\
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

    let mut c = serve(&db, &[], &d.join("collector.log"));
    let port = c.http_port();
    // Waits on the state, not on a clock: until the API refuses the 1-second token.
    eventually("the 1 s token expired", || {
        http(port, "GET", "/api/v1/agents", Some(&expired)).0 == 401
    });

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
        "/api/v1/patch-sla",
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
        ("GET", "/api/v1/patch-sla"),
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
    // Token secrets: shown once by `token create`, then nowhere — not in the API's token list,
    // not in `token list`, not in the database (which holds their SHA-256, checked below).
    let created = [&admin, &ce, &ct, &mr, &expired, &revoked];
    let (st, tokens) = http(port, "GET", "/api/v1/tokens", Some(&admin));
    assert_eq!(st, 200, "{tokens}");
    let listed: Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(created.len()),
        "{listed}"
    );
    assert_no_token_secret("GET /api/v1/tokens", tokens.as_bytes(), &created);
    let out = cli(&db, &["token", "list"]);
    assert!(out.status.success());
    assert!(!out.stdout.is_empty());
    assert_no_token_secret("token list", &out.stdout, &created);
    assert_no_token_secret("token list (stderr)", &out.stderr, &created);

    // Every readable endpoint with each role.
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/ID",
        "/api/v1/flags",
        "/api/v1/contracts",
        "/api/v1/assets",
        "/api/v1/coverage",
        "/api/v1/installed-base",
        "/api/v1/patch-sla",
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
            // `http` scanned the response for every canary of the fixtures (the HL7 and DICOM
            // fixtures carry canary patients).
            assert_eq!(st, want, "{role} GET {p}: {body}");
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
    // The agent's latest classification, whole: the rules behind the type, and the other
    // types the evidence proposed (the modality, the toolkit) with the explanation.
    let class = &full["device"]["classification"];
    assert_eq!(class["device_type"], "ct", "{class}");
    assert!(class["matches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["field"] == "dicom.modality"));
    assert!(
        class["explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("device_type: ct")),
        "{class}"
    );
    let own = get_json(port, &format!("/api/v1/devices/{ct_id}"), &ct);
    assert!(no_peer_keys(&own), "{own}");
    assert!(!own.to_string().contains("dicom.called_ae"), "{own}");
    // A vendor sees the rule matches only on fields it may see (no AE titles, no MAC vendor).
    let own_matches = own["device"]["classification"]["matches"]
        .as_array()
        .unwrap();
    assert!(!own_matches.is_empty());
    assert!(own_matches
        .iter()
        .all(|m| m["field"] != "dicom.calling_ae" && m["field"] != "oui"));
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
        "/api/v1/patch-sla",
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
    // The patch-SLA view: the admin sees both suppliers' contracts, the CT vendor only C-CT.
    let sla_rows = |v: Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["contract_id"].as_str().unwrap_or("").to_owned(),
                    r["advisory_ids"].to_string(),
                )
            })
            .collect()
    };
    let all_sla = sla_rows(get_json(port, "/api/v1/patch-sla", &admin));
    assert!(
        all_sla.contains(&("C-CT".into(), "[\"API-CT\"]".into())),
        "{all_sla:?}"
    );
    assert!(
        all_sla.contains(&("C-MR".into(), "[\"API-MR\"]".into())),
        "{all_sla:?}"
    );
    let ct_sla = get_json(port, "/api/v1/patch-sla", &ct);
    assert_eq!(
        sla_rows(ct_sla.clone()),
        [("C-CT".to_owned(), "[\"API-CT\"]".to_owned())]
    );
    let row = &ct_sla[0];
    assert_eq!(row["supplier"], "WARD TEST MEDICAL");
    assert_eq!(
        (row["devices_affected"].as_u64(), row["overdue"].as_u64()),
        (Some(1), Some(1)),
        "{row}"
    );
    assert!(
        row["median_days_fix_to_patch"].is_null(),
        "nothing patched: n/a"
    );
    // The other vendor, symmetrically, sees its own.
    let mr_devs = get_json(port, "/api/v1/devices?limit=1000", &mr);
    assert!(mr_devs["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["manufacturer"] == "WARD PY MEDICAL"));
    assert!(mr_devs["total"].as_u64().unwrap() >= 1);

    // Reports: every kind and format, and --vendor sees what the vendor's token sees.
    for kind in [
        "devices",
        "flags",
        "coverage",
        "installed-base",
        "patch-sla",
    ] {
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
    // Every report and format holds no patient canary, for everyone.
    scan_reports(&db, &[]);
    scan_reports(&db, &["--vendor", "WARD TEST*"]);
    scan_reports(&db, &["--vendor", "ward py medical"]);

    // `report … --vendor X --format json` is exactly what X's token sees through the API.
    for (pattern, tok) in [("WARD TEST*", &ct), ("ward py medical", &mr)] {
        for (kind, path) in [
            ("installed-base", "/api/v1/installed-base"),
            ("coverage", "/api/v1/coverage"),
            ("patch-sla", "/api/v1/patch-sla"),
        ] {
            let report = cli_json(
                &db,
                &["report", kind, "--vendor", pattern, "--format", "json"],
            );
            let api = get_json(port, path, tok);
            assert_eq!(
                report, api,
                "report {kind} --vendor {pattern:?} differs from {path} with that vendor's token"
            );
            assert!(
                report.as_array().is_none_or(|a| !a.is_empty()),
                "{kind} for {pattern:?} is empty: the comparison proves nothing"
            );
        }
    }
    let admin_ib = get_json(port, "/api/v1/installed-base", &admin);
    let ct_ib = get_json(port, "/api/v1/installed-base", &ct);
    assert_ne!(
        admin_ib, ct_ib,
        "the vendor view must be narrower than admin's"
    );

    // The database while the collector runs (with its WAL): no canary, no token secret, and
    // each token's SHA-256 stored.
    let live = copy_db_live(&db, &d.join("live-copy"));
    assert_db_copy_clean("database", &live);
    for (name, bytes) in &live.files {
        assert_no_token_secret(
            &format!("{name} copied while the collector ran"),
            bytes,
            &created,
        );
    }
    assert!(c.sigterm().success(), "{}", c.log_text());
    assert_log_clean("collector log (debug)", c.log_text());
    assert_no_token_secret("collector log", c.log_text().as_bytes(), &created);
    assert_db_clean("database after the run", &db);
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(b) = std::fs::read(&p) {
            assert_no_token_secret(&p.display().to_string(), &b, &created);
        }
    }
    assert_tokens_stored_as_sha256(&db, &created);
}

/// `ward_<id>_<secret>` → (id, secret).
fn split_token(t: &str) -> (&str, &str) {
    let rest = t
        .strip_prefix("ward_")
        .unwrap_or_else(|| panic!("not a token: {t}"));
    let (id, secret) = rest.split_once('_').unwrap();
    assert_eq!(id.len(), 16, "{t}");
    assert_eq!(secret.len(), 64, "{t}");
    (id, secret)
}

/// Neither the secret part of any token (whole, or its first 16 characters, any case) nor the
/// whole token text is in `bytes`.
fn assert_no_token_secret(what: &str, bytes: &[u8], tokens: &[&String]) {
    let hay = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    for t in tokens {
        let (_, secret) = split_token(t);
        assert!(
            !hay.contains(&secret[..16].to_ascii_lowercase()),
            "{what} holds the secret of a token (token create printed it once; it must never be shown or stored again)"
        );
    }
}

/// The database holds, per token id, the SHA-256 (lower-case hex) of the token's secret part,
/// and nothing else of it (collector/src/access/tokens.rs).
fn assert_tokens_stored_as_sha256(db: &Path, tokens: &[&String]) {
    let stored: std::collections::BTreeMap<String, String> =
        db_rows(db, "SELECT id, secret_sha256 FROM tokens")
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
    assert_eq!(stored.len(), tokens.len(), "{stored:?}");
    for t in tokens {
        let (id, secret) = split_token(t);
        let want: String = Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            stored.get(id),
            Some(&want),
            "token {id}: the stored hash is not the SHA-256 of its secret"
        );
        assert_ne!(want, secret);
    }
    // No column of any row of any table holds a secret.
    if !sqlite() {
        assert_no_token_secret("pg_dump", &pg_dump(db), tokens);
        return;
    }
    let tables: Vec<String> = db_rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    for table in tables {
        for row in db_rows(db, &format!("SELECT * FROM \"{table}\"")) {
            for text in row.iter().flatten() {
                assert_no_token_secret(&format!("table {table}"), text.as_bytes(), tokens);
            }
        }
    }
}
