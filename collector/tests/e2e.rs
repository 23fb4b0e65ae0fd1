//! End to end with real parts: the real agent reads the fixture captures and publishes over
//! MQTT — to the collector's embedded broker, and again through a real Mosquitto — the real
//! collector stores them; contract and asset files raise every flag kind, and a second set
//! clears every one. No patient canary (every component of every canary of the fixture
//! manifest, in every encoding `ward_canary` decodes) reaches any path: the MQTT bytes the
//! collector received (recorded by a proxy in front of it), the agents' and the collector's
//! logs at debug, the database with its -wal and -shm copied while the collector runs, the API
//! while it runs, every CLI output and every report in every format, and every file the run
//! left (spools, JSON lines, Mosquitto's persistence).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const DAY_US: i64 = 86_400_000_000;

/// The agents: two SPAN ports at one site, between them every fixture capture.
const AGENTS: &[(&str, &[&str])] = &[
    (
        "span-rad",
        &[
            "dicom-dcmtk.pcap",
            "dicom-pynetdicom.pcap",
            "dicom-reject-abort.pcap",
            "dicom-sll.pcap",
            "qinq.pcap",
        ],
    ),
    (
        "span-icu",
        &[
            "hl7-mllp.pcap",
            "hl7-mllp-vlan.pcap",
            "hl7-null.pcap",
            "hl7-sll2.pcap",
            "dhcp.pcap",
            "dicom-dcmtk.pcapng",
            "dns.pcap",
            "astm.pcap",
            // Devices known only through issue 18's clinical protocols.
            "poct1a.pcap",
            "intellivue.pcap",
            "fhir.pcap",
        ],
    ),
];

fn run_agent(agent: &str, files: &[&str], output: &str, dir: &Path) {
    let mut cmd = Command::new(agent_bin());
    cmd.arg("read");
    for f in files {
        cmd.arg(fixtures().join(f));
    }
    let out = cmd
        .args(["--output", output, "--site", "test", "--agent-id", agent])
        .arg("--spool-dir")
        .arg(dir.join(format!("spool-{agent}")))
        .args(["--log-level", "debug", "--stats-interval", "1"])
        .output()
        .expect("running ward-agent");
    std::fs::write(dir.join(format!("agent-{agent}.log")), &out.stderr).unwrap();
    assert!(
        out.status.success(),
        "ward-agent {agent} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until both agents' messages are all stored (none missing) and the count is stable.
fn wait_ingested(db: &Path) {
    let mut last = (-1i64, 0u32);
    eventually("all agent messages stored", || {
        let agents = cli_json(db, &["agents"]);
        let rows = agents.as_array().unwrap();
        let ok = rows.len() == AGENTS.len()
            && rows
                .iter()
                .all(|a| a["messages"].as_i64().unwrap_or(0) > 0 && a["missing"] == 0);
        let total: i64 = rows
            .iter()
            .map(|a| a["messages"].as_i64().unwrap_or(0))
            .sum();
        if ok && total == last.0 {
            last.1 += 1;
        } else {
            last = (total, 0);
        }
        ok && last.1 >= 3
    });
}

/// The device id that has this MAC.
fn dev(devices: &Value, mac: &str) -> i64 {
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["macs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m.as_str() == Some(mac))
        })
        .unwrap_or_else(|| panic!("no device with MAC {mac}:\n{devices:#}"))["id"]
        .as_i64()
        .unwrap()
}

fn link_of(devices: &Value, id: i64, kind: &str) -> Option<(String, String)> {
    devices["links"].as_array().unwrap().iter().find_map(|l| {
        (l["device_id"] == id && l["kind"] == kind).then(|| {
            (
                l["target"].as_str().unwrap().to_string(),
                l["method"].as_str().unwrap().to_string(),
            )
        })
    })
}

/// `(kind, subject, detail) -> status` of every flag.
fn flags(db: &Path) -> BTreeMap<(String, String, String), String> {
    let v = cli_json(db, &["flags", "--all", "--json"]);
    let mut out = BTreeMap::new();
    for f in v.as_array().unwrap() {
        let key = (
            f["kind"].as_str().unwrap().to_string(),
            f["subject"].as_str().unwrap().to_string(),
            f["detail"].as_str().unwrap().to_string(),
        );
        // Newest first: the first row of a key is its current state.
        out.entry(key)
            .or_insert_with(|| f["status"].as_str().unwrap().to_string());
    }
    out
}

fn date(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .to_rfc3339()
}

fn shift_times(v: &mut Value, by: i64) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k.ends_with("_us") {
                    if let Some(n) = x.as_i64() {
                        *x = Value::from(n + by);
                    }
                } else {
                    shift_times(x, by);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_times(x, by)),
        _ => {}
    }
}

const CONFIG: &str = r#"
[flags]
# The pynetdicom fixture's SCP listens on 4242; the test treats it as a remote-access port so the
# fixtures can raise remote_access_not_permitted (real captures use 22/3389/5900…).
remote_access_ports = [22, 23, 3389, 5900, 4242]
"#;

fn contracts(now: i64, raise: bool) -> String {
    let far = date(now + 1000 * DAY_US);
    let (ct_eos, mr_eos) = if raise {
        (date(now - 10 * DAY_US), date(now + 60 * DAY_US))
    } else {
        (far.clone(), far.clone())
    };
    let ct_terms = if raise {
        r#"    supported_software_versions: ["SP3*"]
    permitted_services: ["dicom tcp/104 outbound"]
    encryption_in_transit_required: true
    sites: [main-campus]"#
    } else {
        r#"    supported_software_versions: ["SP2", "SP3*"]
    permitted_services: ["dicom tcp/104 outbound", "dicom tcp/11112 outbound", "dicom tcp/11113 outbound"]
    encryption_in_transit_required: false
    sites: [main-campus, test]"#
    };
    format!(
        r#"contracts:
  - id: C-CT
    supplier: WARD TEST MEDICAL
    products: ["WardScan *"]
    end_of_support: {ct_eos}
    patch_sla_days: {{critical: 30}}
    external_communication_permitted: true
{ct_terms}
  - id: C-MR
    supplier: WARD PY MEDICAL
    products: ["PyMR*"]
    end_of_support: {mr_eos}
    external_communication_permitted: {mr_ext}
  - id: C-PY
    supplier: pynetdicom
    asset_tags: [A-PY1, A-PY2]
    quantity: {py_q}
    external_communication_permitted: true
  - id: C-SRV
    supplier: OFFIS
    asset_tags: [A-SRV]
    remote_access: {srv_ra}
    external_communication_permitted: true
  - id: C-RA
    supplier: WardTestMed
    asset_tags: [A-DNS]
    remote_access: {ra_ra}
    external_communication_permitted: true
  - id: C-POC
    supplier: Nova Biomedical
    products: ["StatStrip*"]
    encryption_in_transit_required: {poc_enc}
    external_communication_permitted: true
  - id: C-IV
    supplier: Philips
    products: ["IntelliVue MP70"]
    external_communication_permitted: true
  - id: C-MON
    supplier: WARD INFUSION SYSTEMS
    serials: [WP-0099-7731]
    vlans: [{mon_vlans}]
    patch_sla_days: {{high: 30}}
    external_communication_permitted: true
  - id: C-LAB
    supplier: WardLab Diagnostics
    products: ["WLA-*"]
    external_communication_permitted: true
    encryption_in_transit_required: {lab_enc}
  - id: C-FHIR
    supplier: WardTestMed
    products: ["WTP-*"]
    external_communication_permitted: true
    encryption_in_transit_required: {lab_enc}
"#,
        mr_ext = !raise,
        poc_enc = raise,
        py_q = if raise { 1 } else { 2 },
        srv_ra = if raise { "none" } else { "unrestricted" },
        ra_ra = if raise { "none" } else { "unrestricted" },
        mon_vlans = if raise { "300" } else { "100, 300" },
        lab_enc = raise,
    )
}

/// The current value of a device's attribute in `devices --json` (the latest seen).
fn attr(devices: &Value, id: i64, name: &str) -> Option<String> {
    devices["devices"]
        .as_array()?
        .iter()
        .find(|d| d["id"] == id)?["attributes"][name]
        .as_array()?
        .iter()
        .max_by_key(|v| v["last_us"].as_i64())?["value"]
        .as_str()
        .map(str::to_owned)
}

/// A CSAF 2.0 advisory written by the test (fictional CVE ids of year 2099) naming one
/// device's vendor and model as the wire showed them: revision `rev`, one product entry
/// (`range`, under a `legacy` branch if `legacy`), one CVE, a `vendor_fix` dated `fix` if given.
#[allow(clippy::too_many_arguments)]
fn csaf(
    id: &str,
    rev: &str,
    vendor: &str,
    model: &str,
    range: &str,
    legacy: bool,
    released: i64,
    cve: &str,
    (score, severity): (f64, &str),
    fix: Option<i64>,
) -> String {
    let leaf = serde_json::json!({"category": "product_name", "name": model, "branches": [
        {"category": "product_version_range", "name": range,
         "product": {"name": format!("{vendor} {model} {range}"), "product_id": "P1"}}]});
    let branch = if legacy {
        serde_json::json!({"category": "legacy", "name": "end of life", "branches": [leaf]})
    } else {
        leaf
    };
    let remediations: Vec<Value> = fix
        .map(|f| {
            serde_json::json!({"category": "vendor_fix", "date": rfc3339(f),
                "details": "The manufacturer released an update.", "product_ids": ["P1"]})
        })
        .into_iter()
        .collect();
    serde_json::json!({
        "document": {
            "category": "csaf_security_advisory", "csaf_version": "2.0",
            "publisher": {"category": "other", "name": "ward e2e", "namespace": "https://example.org/ward"},
            "title": format!("{model} (test advisory)"),
            "tracking": {"id": id, "version": rev, "status": "final",
                "initial_release_date": rfc3339(released), "current_release_date": rfc3339(released),
                "revision_history": [{"date": rfc3339(released), "number": rev, "summary": "test"}]}
        },
        "product_tree": {"branches": [{"category": "vendor", "name": vendor, "branches": [branch]}]},
        "vulnerabilities": [{"cve": cve, "product_status": {"known_affected": ["P1"]},
            "scores": [{"cvss_v3": {"version": "3.1", "baseScore": score, "baseSeverity": severity,
                "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, "products": ["P1"]}],
            "remediations": remediations}]
    })
    .to_string()
}

/// A KEV catalog (CISA's format) listing `cves`.
fn kev(now: i64, cves: &[&str]) -> String {
    let v: Vec<Value> = cves
        .iter()
        .map(|c| {
            serde_json::json!({"cveID": c, "vendorProject": "WARD TEST MEDICAL", "product": "WardScan",
                "vulnerabilityName": "test", "dateAdded": date(now - 20 * DAY_US),
                "shortDescription": "test", "requiredAction": "Apply updates.",
                "dueDate": date(now - DAY_US), "knownRansomwareCampaignUse": "Known", "notes": ""})
        })
        .collect();
    serde_json::json!({"title": "test", "catalogVersion": "2099.01.01", "dateReleased": rfc3339(now),
        "count": v.len(), "vulnerabilities": v})
    .to_string()
}

fn assets(raise: bool) -> String {
    let mut s = String::from(
        "Asset Tag,Manufacturer,Model,Serial Number,MAC Address,IP Address,Location,Department,Contract,Risk Class,PM Due\n\
         A-PY1,pynetdicom,pynetdicom SCU,,02:57:41:52:44:0c,,Radiology 1,Radiology,C-PY,medium,2027-01-01\n\
         A-PY2,OFFIS,DCMTK SCU,,02-57-41-52-44-0D,,Radiology 2,Radiology,C-PY,medium,2027-01-01\n\
         A-SRV,OFFIS,DCMTK worklist,,0257.4152.4420,,Data centre,IT,C-SRV,low,\n\
         A-DNS,WardTestMed,Update client,,02:57:41:52:44:53,,Ward 4,Biomed,C-RA,low,\n",
    );
    if raise {
        s.push_str("A-GHOST,Acme,Ghost 1,GH-1,00:11:22:33:44:55,,Storage,Biomed,,high,\n");
    } else {
        s.push_str("A-E0,Mindray,BeneVision,,00:a0:37:9a:53:e0,,ICU 3,ICU,C-MON,high,\n");
    }
    s
}

/// Every file the run left under `dir` (logs, spools, JSON lines, the database and what is
/// left of its WAL, Mosquitto's persistence) and every CLI output: no canary. Logs also hold
/// no byte dump.
fn assert_no_canary(dir: &Path, db: &Path, outputs: &[(String, Vec<u8>)]) {
    assert_db_clean("database after the run", db);
    let files = canaries().assert_dir_clean("files the run left", dir);
    let logs: Vec<&std::path::PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert!(
        logs.iter().any(|p| p.ends_with("collector.log"))
            && logs.iter().any(|p| p.ends_with("agent-span-rad.log"))
            && logs.iter().any(|p| p.ends_with("agent-span-icu.log")),
        "logs missing: {logs:?}"
    );
    for p in logs {
        assert_log_clean(&p.display().to_string(), std::fs::read(p).unwrap());
    }
    for (label, bytes) in outputs {
        assert_clean(label, bytes);
    }
}

/// Where the agents publish and where the collector reads.
enum Broker {
    /// The collector's embedded broker; the agents publish through a recording proxy to it.
    Embedded,
    /// A real Mosquitto on this port; the collector subscribes through a recording proxy.
    Mosquitto(u16),
}

/// The whole scenario against `broker`.
fn scenario(dir: &Path, broker: Broker) {
    let db = dir.join("ward.db");
    let cfg = dir.join("collector.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut args = vec!["--config".to_string(), cfg.display().to_string()];
    let proxy_to_mosquitto = match broker {
        Broker::Embedded => None,
        Broker::Mosquitto(port) => {
            let proxy = RecordingProxy::start(port);
            args.extend([
                "--broker".into(),
                format!("mqtt://127.0.0.1:{}", proxy.port),
                "--client-id".into(),
                "ward-collector-e2e".into(),
            ]);
            Some(proxy)
        }
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut collector = serve(&db, &args, &dir.join("collector.log"));
    let (proxy, agent_port) = match (&broker, proxy_to_mosquitto) {
        (Broker::Embedded, _) => {
            let proxy = RecordingProxy::start(collector.mqtt_port());
            let port = proxy.port;
            (proxy, port)
        }
        (Broker::Mosquitto(port), Some(proxy)) => (proxy, *port),
        (Broker::Mosquitto(_), None) => unreachable!(),
    };
    let output = format!("mqtt://127.0.0.1:{agent_port}");
    for (agent, files) in AGENTS {
        run_agent(agent, files, &output, dir);
    }
    wait_ingested(&db);

    // While the collector runs: the MQTT bytes it received, its database with the WAL, the API.
    let (up, down) = proxy.bytes();
    let received = match broker {
        Broker::Embedded => &up,
        Broker::Mosquitto(_) => &down,
    };
    let text = String::from_utf8_lossy(received);
    assert!(
        text.matches("ward.observation.v1").count() >= 2
            && text.contains("ward/v1/test/span-icu/devices"),
        "the proxy recorded no observation messages ({} bytes)",
        received.len()
    );
    assert_clean("MQTT bytes the collector received", &up);
    assert_clean("MQTT bytes the collector received", &down);
    let live = copy_db_live(&db, &dir.join("live-copy"));
    assert_db_copy_clean("database", &live);
    let admin = token(&db, &["--name", "e2e", "--role", "admin"]);
    let http_port = collector.http_port();
    // The API lists what the last evaluation summarised: evaluate now, so the lists below hold
    // every device (an API scan over an empty list would prove nothing).
    let (st, body) = http(http_port, "POST", "/api/v1/evaluate", Some(&admin));
    assert_eq!(st, 200, "{body}");
    for path in [
        "/api/v1/devices?limit=1000",
        "/api/v1/flags?limit=1000",
        "/api/v1/flags?status=resolved&limit=1000",
        "/api/v1/contracts",
        "/api/v1/assets",
        "/api/v1/agents",
        "/api/v1/coverage",
        "/api/v1/installed-base",
        "/metrics",
    ] {
        // `http` scans every response.
        let (st, body) = http(http_port, "GET", path, Some(&admin));
        assert_eq!(st, 200, "{path}: {body}");
    }
    let all = get_json(http_port, "/api/v1/devices?limit=1000", &admin);
    let stored = cli_json(&db, &["status"])["devices"].as_u64().unwrap();
    assert_eq!(all["total"].as_u64(), Some(stored), "{all}");
    assert!(stored >= 5, "{stored} devices");
    for d in all["items"].as_array().unwrap() {
        http(
            http_port,
            "GET",
            &format!("/api/v1/devices/{}", d["id"]),
            Some(&admin),
        );
    }

    let st = collector.sigterm();
    assert!(
        st.success(),
        "collector exit {st}:\n{}",
        collector.log_text()
    );
    assert!(collector.log_text().contains("collector stopped"));

    // Replays change nothing.
    let before = cli_json(&db, &["status"]);
    let again = dir.join("again.jsonl");
    run_agent(
        "span-rad",
        AGENTS[0].1,
        &format!("jsonl:{}", again.display()),
        dir,
    );

    // A software update on the infusion pump a day later, as the agent reports it.
    let hl7 = dir.join("update.jsonl");
    run_agent(
        "span-icu",
        &["hl7-mllp.pcap"],
        &format!("jsonl:{}", hl7.display()),
        dir,
    );
    let mut lines = Vec::new();
    for l in std::fs::read_to_string(&hl7).unwrap().lines() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        if v["schema"] == "ward.observation.v1" {
            shift_times(&mut v, DAY_US);
            v["instance"] = Value::from("after-update");
        }
        lines.push(v.to_string().replace("4.2.1", "4.3.0"));
    }
    std::fs::write(&hl7, lines.join("\n")).unwrap();
    let r = cli_json(&db, &["ingest", hl7.to_str().unwrap()]);
    assert!(r["ingest"]["messages"].as_u64().unwrap() > 0, "{r}");

    let devices = cli_json(&db, &["devices", "--json"]);
    let last = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["last_us"].as_i64().unwrap())
        .max()
        .unwrap();
    let now = last + DAY_US;

    // Identity: one device across VLANs and agents; merges on serial and EUI-64, explained.
    let ct = dev(&devices, "02:57:41:52:44:0a");
    assert_eq!(
        ct,
        dev(&devices, "02:57:41:52:44:0e"),
        "CT MACs share serial SN-0042"
    );
    let mon = dev(&devices, "00:a0:37:9a:53:de");
    assert_eq!(
        mon,
        dev(&devices, "00:a0:37:9a:53:df"),
        "pump MACs share an EUI-64"
    );
    let srv = dev(&devices, "02:57:41:52:44:20");
    let srv_dev = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == srv)
        .unwrap();
    let vlans: BTreeSet<Option<i64>> = srv_dev["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["vlan"].as_i64())
        .collect();
    assert_eq!(vlans, BTreeSet::from([None, Some(100)]), "{srv_dev:#}");
    let merges = cli_json(&db, &["merges"]);
    let kinds: BTreeSet<&str> = merges
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["identity_kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["eui64", "serial"]), "{merges:#}");
    for m in merges.as_array().unwrap() {
        let e = m["explanation"].as_str().unwrap();
        assert!(
            e.contains("merged into") && e.contains("both report"),
            "{e}"
        );
    }

    // Raise every flag kind.
    let cfile = dir.join("contracts.yaml");
    std::fs::write(&cfile, contracts(now, true)).unwrap();
    cli_json(&db, &["contracts", "import", cfile.to_str().unwrap()]);
    let afile = dir.join("assets.csv");
    std::fs::write(&afile, assets(true)).unwrap();
    cli_json(&db, &["assets", "import", afile.to_str().unwrap()]);
    let cfg_arg = ["--config", cfg.to_str().unwrap()];
    let now_s = rfc3339(now);
    let ev = |at: &str| {
        let mut a: Vec<&str> = cfg_arg.to_vec();
        a.extend(["evaluate", "--now", at]);
        cli_json(&db, &a)
    };
    ev(&now_s);

    let devices = cli_json(&db, &["devices", "--json"]);
    let py = dev(&devices, "02:57:41:52:44:0c");
    let e0 = dev(&devices, "00:a0:37:9a:53:e0");
    let mr = dev(&devices, "02:57:41:52:44:0b");
    // dns.pcap's client resolves a TeamViewer router name (a remote-desktop relay).
    let ra = dev(&devices, "02:57:41:52:44:53");
    // The lab analyzer is known only through its ASTM Header (astm.pcap): its model links it to
    // the contract, and its results travel in clear to the LIS on tcp/15200.
    let lab = dev(&devices, "02:57:41:52:44:a5");
    // An infusion pump known only by the Device resource it posts over FHIR (fhir.pcap): its
    // model number links it to the contract, and it speaks FHIR in clear on tcp/8090.
    let fhir = dev(&devices, "02:57:41:52:44:1c");
    assert_eq!(
        link_of(&devices, fhir, "contract"),
        Some(("C-FHIR".into(), "model_coverage".into()))
    );
    assert_eq!(
        link_of(&devices, lab, "contract"),
        Some(("C-LAB".into(), "model_coverage".into()))
    );
    assert_eq!(
        link_of(&devices, ct, "contract"),
        Some(("C-CT".into(), "model_coverage".into()))
    );
    assert_eq!(
        link_of(&devices, mon, "contract"),
        Some(("C-MON".into(), "contract_serial".into()))
    );
    assert_eq!(
        link_of(&devices, py, "asset"),
        Some(("A-PY1".into(), "mac".into()))
    );
    assert_eq!(
        link_of(&devices, py, "contract"),
        Some(("C-PY".into(), "asset_contract_id".into()))
    );
    assert_eq!(
        link_of(&devices, srv, "contract"),
        Some(("C-SRV".into(), "asset_contract_id".into()))
    );
    // A point-of-care meter known only by its POCT1-A hello, and a monitor known only by its
    // IntelliVue MDS Create Event Report, link to their contracts by model.
    let poc = dev(&devices, "02:57:41:52:44:19");
    let iv = dev(&devices, "02:57:41:52:44:18");
    assert_eq!(
        link_of(&devices, poc, "contract"),
        Some(("C-POC".into(), "model_coverage".into()))
    );
    assert_eq!(
        link_of(&devices, iv, "contract"),
        Some(("C-IV".into(), "model_coverage".into()))
    );

    // Advisories naming the devices as the wire showed them, and a KEV catalog: the CT's
    // version is in a legacy range with a fix 60 days old (critical, 30-day SLA: 30 days
    // overdue) and known exploited; the pump's has no fix 100 days after its advisory (high,
    // 30 days); the MR's version is compared with a range in free text.
    let advisories = dir.join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    let write_advisories = |rev: &str, product: Option<&str>| {
        for (id, d, range, legacy, released, cve, sev, fix) in [
            (
                "E2E-CT",
                ct,
                "vers:generic/<SP3",
                true,
                now - 90 * DAY_US,
                "CVE-2099-1001",
                (9.8, "CRITICAL"),
                Some(now - 60 * DAY_US),
            ),
            (
                "E2E-MON",
                mon,
                "vers:generic/<5.0",
                false,
                now - 100 * DAY_US,
                "CVE-2099-1002",
                (8.0, "HIGH"),
                None,
            ),
            (
                "E2E-MR",
                mr,
                "2.x (build 7)",
                false,
                now - 10 * DAY_US,
                "CVE-2099-1003",
                (5.0, "MEDIUM"),
                None,
            ),
        ] {
            let vendor = attr(&devices, d, "manufacturer").expect("manufacturer");
            let model = attr(&devices, d, "model").expect("model");
            let text = csaf(
                id,
                rev,
                &vendor,
                product.unwrap_or(&model),
                range,
                legacy,
                released,
                cve,
                sev,
                fix,
            );
            std::fs::write(advisories.join(format!("{id}.json")), text).unwrap();
        }
        cli_json(&db, &["advisories", "import", advisories.to_str().unwrap()]);
    };
    write_advisories("1", None);
    let kfile = dir.join("kev.json");
    std::fs::write(&kfile, kev(now, &["CVE-2099-1001"])).unwrap();
    cli_json(&db, &["kev", "import", kfile.to_str().unwrap()]);
    ev(&now_s);

    let dsub = |id: i64| format!("device:{id}");
    let expect_open: Vec<(&str, String, &str)> = vec![
        ("vulnerable_software", dsub(ct), "E2E-CT"),
        ("known_exploited_vulnerability", dsub(ct), "E2E-CT"),
        ("patch_overdue", dsub(ct), "E2E-CT"),
        ("end_of_life_product", dsub(ct), "E2E-CT"),
        ("vendor_fix_overdue", dsub(mon), "E2E-MON"),
        ("advisory_version_not_comparable", dsub(mr), "E2E-MR"),
        ("end_of_support_passed", dsub(ct), ""),
        ("end_of_support_within", dsub(mr), ""),
        ("no_contract", dsub(e0), ""),
        ("not_in_asset_register", dsub(e0), ""),
        ("asset_not_seen", "asset:A-GHOST".into(), ""),
        ("service_not_permitted", dsub(ct), "tcp/11112/used"),
        ("cleartext_phi_protocol", dsub(ct), "tcp/11112/used"),
        ("cleartext_phi_protocol", dsub(lab), "tcp/15200/used"),
        ("cleartext_phi_protocol", dsub(fhir), "tcp/8090/used"),
        ("cleartext_phi_protocol", dsub(poc), "tcp/7011/used"),
        ("remote_access_not_permitted", dsub(srv), "tcp/4242/offered"),
        (
            "remote_access_not_permitted",
            dsub(ra),
            "name/teamviewer.com/contacted",
        ),
        ("external_communication_not_permitted", dsub(mr), ""),
        ("software_version_unsupported", dsub(ct), "SP2"),
        ("over_contracted_quantity", "contract:C-PY".into(), ""),
        ("segment_not_permitted", dsub(ct), "site:test"),
        ("segment_not_permitted", dsub(mon), "vlan:100"),
        ("software_changed", dsub(mon), "4.2.1->4.3.0"),
    ];
    let f = flags(&db);
    for (k, s, d) in &expect_open {
        let st = f.get(&(k.to_string(), s.clone(), d.to_string()));
        assert_eq!(st.map(String::as_str), Some("open"), "{k} {s} {d}: {f:#?}");
    }
    let raised: BTreeSet<&str> = f.keys().map(|k| k.0.as_str()).collect();
    for k in ward_collector::compliance::flags::KINDS {
        assert!(raised.contains(k), "flag kind {k} never raised");
    }
    // Evidence names the contract and the device.
    let rows = cli_json(&db, &["flags", "--json"]);
    let eos = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "end_of_support_passed")
        .unwrap();
    assert_eq!(eos["evidence"]["contract"]["contract_id"], "C-CT");
    assert!(eos["evidence"]["device"]["macs"]
        .as_array()
        .unwrap()
        .contains(&Value::from("02:57:41:52:44:0a")));

    // Name-based remote access: the evidence names the name, its field, the rule and its source.
    let named = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "remote_access_not_permitted" && r["subject"] == dsub(ra))
        .unwrap();
    let ev_ra = &named["evidence"];
    assert_eq!(ev_ra["contract"]["contract_id"], "C-RA");
    assert_eq!(
        ev_ra["contacted_names"][0]["name"],
        "router15.teamviewer.com"
    );
    assert_eq!(ev_ra["contacted_names"][0]["field"], "dns.queried_name");
    assert_eq!(ev_ra["rule"]["product"], "TeamViewer");
    assert!(!ev_ra["rule"]["source"].as_str().unwrap().is_empty());

    let overdue = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "patch_overdue")
        .unwrap();
    assert_eq!(
        overdue["evidence"]["patch_clock"]["days_overdue"], 30,
        "{overdue:#}"
    );
    assert_eq!(overdue["evidence"]["patch_clock"]["patch_sla_days"], 30);
    assert_eq!(overdue["severity"], "high");

    // Clear every one: the advisories' revision 2 names another product, the KEV catalog
    // no longer lists the CVE.
    write_advisories("2", Some("Another Product"));
    std::fs::write(&kfile, kev(now, &["CVE-2099-1009"])).unwrap();
    cli_json(&db, &["kev", "import", kfile.to_str().unwrap()]);
    std::fs::write(&cfile, contracts(now, false)).unwrap();
    cli_json(&db, &["contracts", "import", cfile.to_str().unwrap()]);
    std::fs::write(&afile, assets(false)).unwrap();
    cli_json(
        &db,
        &["assets", "import", afile.to_str().unwrap(), "--replace"],
    );
    ev(&now_s);
    let f = flags(&db);
    for (k, s, d) in &expect_open {
        if *k == "software_changed" {
            continue;
        }
        let st = f.get(&(k.to_string(), s.clone(), d.to_string()));
        assert_eq!(st.map(String::as_str), Some("resolved"), "{k} {s} {d}");
    }
    // The patch-review window passes.
    ev(&rfc3339(now + 40 * DAY_US));
    let f = flags(&db);
    assert_eq!(
        f.get(&("software_changed".into(), dsub(mon), "4.2.1->4.3.0".into()))
            .map(String::as_str),
        Some("resolved")
    );

    // Replaying the first agent's messages (same instance? no: a new run is a new instance,
    // so replay the stored JSON lines of this run twice instead).
    let r1 = cli_json(&db, &["ingest", again.to_str().unwrap()]);
    let c1 = cli_json(&db, &["status"]);
    let r2 = cli_json(&db, &["ingest", again.to_str().unwrap()]);
    let c2 = cli_json(&db, &["status"]);
    assert!(r1["ingest"]["messages"].as_u64().unwrap() > 0);
    assert_eq!(r2["ingest"]["messages"], 0, "replay stored again: {r2}");
    assert_eq!(r2["ingest"]["duplicates"], r1["ingest"]["messages"]);
    assert_eq!(c1["devices"], c2["devices"]);
    assert_eq!(c1["messages"], c2["messages"]);
    assert_eq!(before["merges"], c2["merges"]);

    let mut outs: Vec<(String, Vec<u8>)> = Vec::new();
    for args in [
        &["devices", "--json"][..],
        &["devices"],
        &["flags", "--all", "--json"],
        &["flags", "--all"],
        &["agents"],
        &["merges"],
        &["status"],
        &["contracts", "list"],
        &["assets", "list"],
    ] {
        let out = cli(&db, args);
        assert!(out.status.success(), "{args:?}");
        outs.push((format!("ward-collector {args:?}"), out.stdout));
        outs.push((format!("ward-collector {args:?} (stderr)"), out.stderr));
    }
    outs.extend(scan_reports(&db, &[]));
    outs.extend(scan_reports(&db, &["--vendor", "WARD*"]));
    assert_no_canary(dir, &db, &outs);
}

#[test]
fn agents_to_embedded_broker_to_inventory_links_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), Broker::Embedded);
}

#[test]
fn agents_through_real_mosquitto_to_inventory_links_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (_mosq, port) = mosquitto(&dir.path().join("mosquitto"));
    scenario(dir.path(), Broker::Mosquitto(port));
}

/// The embedded broker as configured from the command line: TLS and per-agent credentials, with
/// the real agent connecting over mqtts:// with a CA and a password.
#[test]
fn agent_over_tls_with_credentials_to_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d);
    std::fs::write(
        d.join("agents.toml"),
        "span-rad = \"s3cret-rad\"\nspan-icu = \"s3cret-icu\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "s3cret-rad\n").unwrap();
    let db = d.join("ward.db");
    let mut c = serve(
        &db,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            d.join("server.pem").to_str().unwrap(),
            "--tls-key",
            d.join("server.key").to_str().unwrap(),
            "--credentials",
            d.join("agents.toml").to_str().unwrap(),
        ],
        &d.join("collector.log"),
    );
    let port = c.mqtt_port();
    let out = Command::new(agent_bin())
        .arg("read")
        .arg(fixtures().join("dicom-dcmtk.pcap"))
        .args(["--output", &format!("mqtts://localhost:{port}")])
        .args(["--site", "test", "--agent-id", "span-rad"])
        .args(["--mqtt-username", "span-rad"])
        .arg("--mqtt-password-file")
        .arg(d.join("pw"))
        .arg("--mqtt-ca")
        .arg(d.join("ca.pem"))
        .arg("--spool-dir")
        .arg(d.join("spool"))
        .args(["--log-level", "warn"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the agent's devices stored", || {
        cli_json(&db, &["status"])["devices"].as_u64().unwrap_or(0) > 0
    });
    let agents = cli_json(&db, &["agents"]);
    assert_eq!(agents[0]["agent_id"], "span-rad", "{agents}");
    assert!(c.sigterm().success(), "{}", c.log_text());
    assert_log_clean("collector log", c.log_text());
    assert_log_clean("agent log", &out.stderr);
    assert_db_clean("database", &db);
}
