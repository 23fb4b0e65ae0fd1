//! The agent's device table on the fixture captures: the right devices, with the right type and
//! manufacturer, each naming the rules and evidence that classified it; and no patient canary in
//! any record.

use std::collections::BTreeMap;
use std::fs::File;

use ward_agent::engine::{Engine, EngineConfig};
use ward_agent::observation::DeviceRecord;
use ward_agent::rules::RuleSet;
use ward_tests::{fixture_path, manifest, ExpectedDevice};

fn devices(file: &str) -> Vec<DeviceRecord> {
    let mut engine = Engine::new(EngineConfig::default(), RuleSet::bundled().unwrap());
    let f = File::open(fixture_path(file)).unwrap();
    ward_agent::pcap::read_packets(f, |p| engine.process(p.time_us, p.link, p.data)).unwrap();
    engine.snapshot_all()
}

fn summary(d: &DeviceRecord) -> (String, String) {
    let c = d.classification.as_ref().unwrap();
    (
        c.device_type.clone(),
        c.manufacturer.clone().unwrap_or_default(),
    )
}

/// (fixture, device key) → (device type, manufacturer). Manufacturer "" = none expected.
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    (
        "dicom-dcmtk.pcap",
        "mac:02:57:41:52:44:0a",
        "ct",
        "WARD TEST MEDICAL",
    ),
    // Storage SCP and worklist SCP on one node: an archive with its broker, a PACS.
    ("dicom-dcmtk.pcap", "mac:02:57:41:52:44:20", "pacs", ""),
    (
        "dicom-dcmtk.pcapng",
        "mac:02:57:41:52:44:0a",
        "ct",
        "WARD TEST MEDICAL",
    ),
    (
        "dicom-pynetdicom.pcap",
        "mac:02:57:41:52:44:0b",
        "mr",
        "WARD PY MEDICAL",
    ),
    ("dicom-pynetdicom.pcap", "mac:02:57:41:52:44:20", "pacs", ""),
    (
        "dicom-sll.pcap",
        "mac:02:57:41:52:44:0e",
        "ct",
        "WARD TEST MEDICAL",
    ),
    ("dicom-sll.pcap", "mac:02:57:41:52:44:20", "pacs", ""),
    (
        "qinq.pcap",
        "mac:02:57:41:52:44:0d@100",
        "dicom_toolkit",
        "",
    ),
    (
        "hl7-mllp-vlan.pcap",
        "mac:00:a0:37:9a:53:df@100",
        "patient_monitor",
        "Mindray",
    ),
    (
        "hl7-mllp.pcap",
        "mac:00:a0:37:9a:53:de",
        "patient_monitor",
        "WARD INFUSION SYSTEMS",
    ),
    (
        "hl7-null.pcap",
        "ip:192.0.2.10",
        "patient_monitor",
        "WARD INFUSION SYSTEMS",
    ),
    (
        "dhcp.pcap",
        "mac:00:12:21:aa:bb:01",
        "infusion_pump",
        "B. Braun",
    ),
    // An infusion pump known only by the Device resource it posts over FHIR.
    (
        "fhir.pcap",
        "mac:02:57:41:52:44:1c",
        "medical_device_other",
        "WardTestMed",
    ),
    // SDC provider: type from its WS-Discovery Hello (MDS class 69641, MDC_DEV_ANALY_SAT_O2_MDS),
    // manufacturer from the DPWS metadata of its GetMetadata response.
    (
        "sdc.pcap",
        "mac:02:57:41:52:44:1b",
        "patient_monitor",
        "WardTestMed",
    ),
    (
        "lldp.pcap",
        "mac:02:57:41:52:44:1d",
        "ip_phone",
        "WardTestTel",
    ),
    // Sends ADT^A01 (its OBX-18 names a pump in use on the patient, not itself): an EHR.
    (
        "public/HL7-ADT-UDI-OBX.pcap",
        "mac:00:03:b1:b5:b6:48",
        "ehr",
        "ICU Medical",
    ),
    (
        "public/HL7-ADT.pcap",
        "mac:00:0c:29:b5:b6:48",
        "ehr",
        "VMware, Inc.",
    ),
    // The IntelliVue monitor (its Connect Indication and MDS Create Event Report): Philips
    // from NOM_ATTR_ID_MODEL, a patient monitor.
    (
        "intellivue.pcap",
        "mac:02:57:41:52:44:18",
        "patient_monitor",
        "Philips",
    ),
    // The POCT1-A device (its hello names the maker): a point-of-care analyzer.
    (
        "poct1a.pcap",
        "mac:02:57:41:52:44:19",
        "poc_analyzer",
        "Nova Biomedical",
    ),
    // The SpaceCom (it answers for a Perfusor Space): B. Braun, infusion_pump.
    (
        "bcc.pcap",
        "mac:02:57:41:52:44:1a",
        "infusion_pump",
        "B. Braun",
    ),
    (
        "public/dicom_arq_1_find_testclient.pcap",
        "ip:127.0.0.1",
        "modality_other",
        "",
    ),
    (
        "public/dicom_arq_2_get_testclient.pcap",
        "ip:127.0.0.1",
        "workstation",
        "",
    ),
    // Known only through ASTM: the analyzer's Header (generic LIS2-A2 layout) and its results.
    (
        "astm.pcap",
        "mac:02:57:41:52:44:a5",
        "lab_analyzer",
        "WardLab Diagnostics",
    ),
];

#[test]
fn device_types_and_manufacturers_match_the_expected_table() {
    let mut by_file: BTreeMap<&str, Vec<DeviceRecord>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, key, dtype, manufacturer) in EXPECTED {
        let devs = by_file.entry(file).or_insert_with(|| devices(file));
        let Some(d) = devs.iter().find(|d| d.key == *key) else {
            problems.push(format!(
                "{file}: no device {key}; have {:?}",
                devs.iter().map(|d| &d.key).collect::<Vec<_>>()
            ));
            continue;
        };
        let (t, m) = summary(d);
        if (t.as_str(), m.as_str()) != (*dtype, *manufacturer) {
            problems.push(format!(
                "{file} {key}: got ({t}, {m:?}), want ({dtype}, {manufacturer:?})"
            ));
        }
        let c = d.classification.as_ref().unwrap();
        if c.device_type != "unknown" && c.matches.is_empty() {
            problems.push(format!("{file} {key}: classified without naming a rule"));
        }
        for m in &c.matches {
            if m.rule.is_empty() || m.field.is_empty() || m.value.is_empty() || m.source.is_empty()
            {
                problems.push(format!("{file} {key}: match without rule/evidence: {m:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// minidlna's device description (upnp.pcap) lands on the HTTP server that served it, the device
/// (02:57:41:52:44:1f), never on the control point that fetched it (…:20); its model names the
/// device through the description rules, its serial is a fact of the device, and minidlna's
/// built-in manufacturer (its author) is not taken for the device's.
#[test]
fn upnp_description_describes_the_device_that_served_it() {
    let devs = devices("upnp.pcap");
    let find = |key: &str| {
        devs.iter().find(|d| d.key == key).unwrap_or_else(|| {
            panic!(
                "no {key} in {:?}",
                devs.iter().map(|d| &d.key).collect::<Vec<_>>()
            )
        })
    };
    let device = find("mac:02:57:41:52:44:1f");
    let cp = find("mac:02:57:41:52:44:20");
    let has = |d: &DeviceRecord, field: &str, value: &str| {
        d.facts
            .iter()
            .any(|f| f.field.name() == field && f.value == value)
    };
    for (field, value) in [
        ("ssdp.model_name", "WardTestMed MS-500"),
        ("ssdp.serial_number", "WTMMS500-0042"),
        ("ssdp.friendly_name", "WardTestMed Media Station"),
        (
            "ssdp.device_type",
            "urn:schemas-upnp-org:device:MediaServer:1",
        ),
        ("ssdp.location", "http://192.0.2.10:8200"),
    ] {
        assert!(has(device, field, value), "device lacks {field}={value}");
    }
    assert!(
        cp.facts
            .iter()
            .all(|f| !f.field.name().starts_with("ssdp.")),
        "control point got {:?}",
        cp.facts
    );
    let c = device.classification.as_ref().unwrap();
    assert_eq!(c.model.as_deref(), Some("WardTestMed MS-500"));
    assert_eq!(c.manufacturer, None);
    assert!(c
        .matches
        .iter()
        .any(|m| m.rule == "ssdp.description.model" && m.field == "ssdp.model_name"));
}

/// lldpd's phone is known only from LLDP and CDP frames, which have no IP layer: the device is
/// keyed by its source MAC, gets model and software from its LLDP-MED inventory, and its
/// management address stays a fact (claimed, not observed), not one of its addresses. The
/// multicast destinations are no devices.
#[test]
fn a_device_seen_only_by_lldp_and_cdp_is_keyed_by_its_mac() {
    let devs = devices("lldp.pcap");
    assert_eq!(
        devs.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["mac:02:57:41:52:44:1d"]
    );
    let d = &devs[0];
    let c = d.classification.as_ref().unwrap();
    assert_eq!(c.model.as_deref(), Some("WT-7"), "{c:#?}");
    assert_eq!(c.software_version.as_deref(), Some("7.4.1"));
    assert!(d.addresses.is_empty(), "{:?}", d.addresses);
    let fact = |name: &str| {
        d.facts
            .iter()
            .filter(|f| f.field.name() == name)
            .map(|f| f.value.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(fact("lldp.management_address"), ["192.0.2.10"]);
    assert_eq!(fact("lldp.med_serial"), ["WT7-000042"]);
    assert_eq!(fact("cdp.platform"), ["WardTestTel WT-7"]);
}

/// Every fixture's device records, as JSON and as `Debug`, hold no canary of any fixture
/// (`ward_canary`: every component, prefixes, every encoding).
#[test]
fn no_patient_canary_in_any_device_record() {
    let scanner = ward_canary::Scanner::fixtures();
    let fixtures = manifest().fixtures;
    assert!(fixtures.len() >= 10);
    for fx in fixtures {
        let records = devices(&fx.file);
        let json = serde_json::to_string(&records).unwrap();
        scanner.assert_clean(&format!("{}: device records (JSON)", fx.file), &json);
        scanner.assert_clean(
            &format!("{}: device records (Debug)", fx.file),
            format!("{records:?}"),
        );
    }
}

/// `type` of a test-harness host that is several systems at once (one host replaying a
/// monitor's, a pump gateway's and an EHR's messages; client and server on one loopback
/// address): no single type is right, so it is left out of the figures.
const MIXED: &str = "mixed";

/// Every device of every capture ward has, with its type as a clinical engineer names it from
/// the wire (tests/captures/expected-devices.toml): the fixtures' and public captures' from the
/// manifest, the sample site's from that file.
fn truth() -> Vec<(String, ExpectedDevice)> {
    let mut all: Vec<(String, ExpectedDevice)> = Vec::new();
    for fx in manifest().fixtures {
        assert!(
            !fx.devices.is_empty(),
            "{}: no devices in the manifest",
            fx.file
        );
        all.extend(fx.devices.into_iter().map(|d| (fx.file.clone(), d)));
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/captures/expected-devices.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut table: BTreeMap<String, Vec<ExpectedDevice>> = toml::from_str(&text).unwrap();
    let site = table.remove("examples/sample-site.pcap").unwrap();
    all.extend(
        site.into_iter()
            .map(|d| ("../../examples/sample-site.pcap".to_owned(), d)),
    );
    all
}

/// Devices whose type ward still gets wrong, and why.
const KNOWN_MISSES: &[(&str, &str)] = &[];

#[test]
fn every_device_of_every_capture_is_named_right() {
    let truth = truth();
    let mut by_file: BTreeMap<&str, Vec<DeviceRecord>> = BTreeMap::new();
    for (file, _) in &truth {
        by_file
            .entry(file.as_str())
            .or_insert_with(|| devices(file));
    }
    let mut problems = Vec::new();
    // Every device ward reports is in the table: none escapes the figures.
    for (file, devs) in &by_file {
        for d in devs {
            if !truth.iter().any(|(f, e)| f == file && e.key == d.key) {
                problems.push(format!("{file} {}: not in the expected devices", d.key));
            }
        }
    }
    let (mut scored, mut right, mut models, mut models_right) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    for (file, e) in &truth {
        let (file, key, dtype) = (file.as_str(), e.key.as_str(), e.device_type.as_str());
        let Some(d) = by_file[file].iter().find(|d| d.key == key) else {
            problems.push(format!("{file}: no device {key}"));
            continue;
        };
        if dtype == MIXED {
            continue;
        }
        let c = d.classification.as_ref().unwrap();
        scored += 1;
        let known = KNOWN_MISSES.contains(&(file, key));
        if c.device_type == dtype {
            right += 1;
        } else {
            misses.push((file, key));
            if !known {
                problems.push(format!(
                    "{file} {key}: type {}, want {dtype} ({:?})",
                    c.device_type, c.explanation
                ));
            }
        }
        if let Some(m) = &e.manufacturer {
            if c.manufacturer.as_ref() != Some(m) && !known {
                problems.push(format!(
                    "{file} {key}: manufacturer {:?}, want {m:?}",
                    c.manufacturer
                ));
            }
        }
        if let Some(model) = &e.model {
            models += 1;
            if c.model.as_ref() == Some(model) {
                models_right += 1;
            } else if !known {
                problems.push(format!("{file} {key}: model {:?}, want {model:?}", c.model));
            }
        }
    }
    for known in KNOWN_MISSES {
        if !misses.contains(known) {
            problems.push(format!(
                "{known:?} is right now: take it out of KNOWN_MISSES"
            ));
        }
    }
    let share = right as f64 / scored as f64;
    println!(
        "device types: {right} of {scored} right ({:.1} %); models named on the wire: \
         {models_right} of {models}; {} harness devices left out",
        share * 100.0,
        truth.iter().filter(|(_, e)| e.device_type == MIXED).count()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(share >= 0.95, "{right} of {scored} device types right");
}
