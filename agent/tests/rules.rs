//! Rule files: the bundled set, load errors with file:line:column, overrides, and classification
//! of the devices in ward's fixture captures (tests/fixtures/manifest.json).

use std::path::{Path, PathBuf};

use ward_agent::observation::ClassificationRecord;
use ward_agent::oui::OuiRegistry;
use ward_agent::rules::{check_dir, RuleError, RuleInput, RuleSet, DEVICE_TYPES};
use ward_protocols::{Field, MacAddr};

fn bundled() -> RuleSet {
    RuleSet::bundled().unwrap_or_else(|e| panic!("bundled rules: {e}"))
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn field(name: &str) -> Field {
    *Field::ALL
        .iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

/// Classifies `facts` (by field name) for a device with `mac` (or none).
fn classify(set: &RuleSet, mac: Option<&str>, facts: &[(&str, &str)]) -> ClassificationRecord {
    let facts: Vec<(Field, &str)> = facts.iter().map(|&(f, v)| (field(f), v)).collect();
    // No MAC (e.g. a raw-IP capture): the all-zero address, and no OUI.
    let mac: Option<MacAddr> = mac.map(|m| m.parse().unwrap());
    let input = RuleInput {
        mac: mac.unwrap_or_default(),
        oui_vendor: mac.and_then(|m| OuiRegistry::bundled().lookup(m)),
        facts: &facts,
        roles: &[],
    };
    let c = set.classify(&input);
    check_matches_name_rules_and_evidence(set, &input, &c);
    c
}

/// Every match names an existing rule, its source file, and evidence the device really has.
fn check_matches_name_rules_and_evidence(
    set: &RuleSet,
    input: &RuleInput<'_>,
    c: &ClassificationRecord,
) {
    assert!(DEVICE_TYPES.contains(&c.device_type.as_str()), "{c:?}");
    assert!((0.0..=1.0).contains(&c.confidence));
    let ids: Vec<&str> = set.ids().collect();
    let mac = input.mac.to_string();
    for m in &c.matches {
        assert!(ids.contains(&m.rule.as_str()), "{m:?}");
        assert!(!m.source.is_empty(), "{m:?}");
        let real = match m.field.as_str() {
            "oui" => input.oui_vendor == Some(m.value.as_str()),
            "mac_prefix" => mac.starts_with(&m.value) && m.value.len() == 8,
            "mac" => mac == m.value,
            name => input
                .facts
                .iter()
                .any(|(f, v)| f.name() == name && *v == m.value),
        };
        assert!(real, "match evidence is not an input fact: {m:?}");
    }
    if c.matches.is_empty() {
        assert_eq!((c.device_type.as_str(), c.confidence), ("unknown", 0.0));
    }
}

fn rule_ids(c: &ClassificationRecord) -> Vec<&str> {
    c.matches.iter().map(|m| m.rule.as_str()).collect()
}

// --- The bundled files --------------------------------------------------------------------------

#[test]
fn bundled_files_parse_and_match_the_rules_directory() {
    let set = bundled();
    let summary = check_dir(&rules_dir()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = summary
        .files
        .iter()
        .map(|f| {
            Path::new(&f.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // Every *.toml in agent/rules/ must be listed in rules.rs's BUNDLED, and nothing else.
    let mut bundled: Vec<&str> = ward_agent::rules::bundled_files().collect();
    bundled.sort_unstable();
    assert_eq!(names, bundled);
    // The bundled set also holds the product dictionary's rules (agent/products/).
    let products = ward_agent::products::Dictionary::bundled().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.total() + products.rules().len(), set.len());
    for file in &summary.files {
        // The first four files' breadth is pinned; a new protocol's file needs at least one rule.
        let pinned = ["dhcp.toml", "dicom.toml", "hl7.toml", "oui.toml"]
            .iter()
            .any(|p| file.file.ends_with(p));
        assert!(file.rules >= if pinned { 10 } else { 1 }, "{file:?}");
        let one = RuleSet::parse(&file.file, &std::fs::read_to_string(&file.file).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.len(), file.rules);
    }
    let text = summary.to_string();
    assert!(
        text.contains(&format!("{} file(s)", bundled.len())),
        "{text}"
    );
    eprintln!("{text}");
}

#[test]
fn every_bundled_rule_cites_a_source_and_uses_the_vocabulary() {
    // Loading enforces the vocabulary; check the descriptions by reading the files.
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let value: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for rule in value["rule"].as_array().unwrap() {
            let d = rule["description"].as_str().unwrap();
            assert!(d.len() >= 20, "{}: {d}", rule["id"]);
        }
    }
}

// --- Load errors --------------------------------------------------------------------------------

/// Writes `files` into a fresh directory and loads it, expecting an error.
fn load_error(files: &[(&str, &str)]) -> RuleError {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    match RuleSet::load_dir(dir.path()) {
        Ok(set) => panic!("loaded {} rules from {files:?}", set.len()),
        Err(e) => {
            // check_dir reports the same error.
            assert_eq!(
                check_dir(dir.path()).unwrap_err().to_string(),
                e.to_string()
            );
            e
        }
    }
}

/// Asserts the error is at `file:line:column` (column 0 = don't care) and mentions `needle`.
fn assert_at(e: &RuleError, want_file: &str, want_line: usize, want_column: usize, needle: &str) {
    let RuleError::Invalid {
        file, line, column, ..
    } = e
    else {
        panic!("not an Invalid error: {e}");
    };
    assert!(file.ends_with(want_file), "{e}");
    assert_eq!(*line, want_line, "{e}");
    if want_column > 0 {
        assert_eq!(*column, want_column, "{e}");
    }
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{file}:{line}:{column}: ")),
        "{text}"
    );
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
}

const GOOD: &str = r#"
[[rule]]
id = "good"
description = "a valid rule"
confidence = 0.5
device_type = "ct"
match = [{ field = "dicom.modality", equals = "CT" }]
"#;

#[test]
fn syntax_error_names_file_line_and_column() {
    let e = load_error(&[("a.toml", GOOD), ("b.toml", "# x\n[[rule]\nid = \"x\"\n")]);
    assert_at(&e, "b.toml", 2, 7, "invalid table header");
}

#[test]
fn unknown_key_is_an_error_at_the_key() {
    let text = "[[rule]]\nid = \"x\"\ndescription = \"d\"\nconfidence = 0.5\ncolour = \"red\"\n";
    let e = load_error(&[("a.toml", text)]);
    assert_at(
        &e,
        "a.toml",
        5,
        1,
        "rule \"x\": unknown field `colour`, expected one of",
    );
    let text = "[[rule]]\nid = \"x\"\ndescription = \"d\"\nconfidence = 0.5\n\
                match = [{ field = \"dicom.modality\", equal = \"CT\" }]\n";
    let e = load_error(&[("a.toml", text)]);
    assert_at(&e, "a.toml", 5, 38, "rule \"x\": unknown field `equal`");
    let text = format!(
        "{GOOD}\n[[rule]]\nid = \"y\"\ndescription = \"d\"\nconfidence = 0.5\ndevice_type = \"ct\"\n\
         [[rule.match]]\nfield = \"dicom.modality\"\nequals = \"CT\"\nignore_case = true\n"
    );
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        17,
        1,
        "rule \"y\": unknown field `ignore_case`",
    );
    let e = load_error(&[("a.toml", "[[rules]]\nid = \"x\"\n")]);
    assert_at(&e, "a.toml", 1, 0, "unknown field `rules`");
}

#[test]
fn unknown_device_type_lists_the_vocabulary() {
    let text = GOOD.replace("\"ct\"", "\"scanner\"");
    let e = load_error(&[("dicom.toml", &text)]);
    assert_at(
        &e,
        "dicom.toml",
        6,
        15,
        "rule \"good\": unknown device_type \"scanner\" (expected one of: ct, mr, us,",
    );
    assert!(e.to_string().contains("infusion_pump"), "{e}");
}

#[test]
fn invalid_regex_is_reported_at_the_pattern() {
    let text = GOOD.replace("equals = \"CT\"", "regex = '^(CT'");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        7,
        46,
        "rule \"good\": invalid regex: unclosed group",
    );
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
fn unknown_field_is_reported_at_the_field() {
    let text = GOOD.replace("dicom.modality", "dicom.colour");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        7,
        20,
        "unknown field \"dicom.colour\" (expected one of: ",
    );
    assert!(e.to_string().contains("mac_prefix"), "{e}");
}

#[test]
fn duplicate_ids_are_errors_within_and_across_files() {
    let twice = format!("{GOOD}\n{GOOD}");
    let e = load_error(&[("a.toml", &twice)]);
    assert_at(&e, "a.toml", 11, 6, "duplicate rule id (first defined at ");
    assert!(e.to_string().contains("a.toml:2:1)"), "{e}");

    let e = load_error(&[("a.toml", GOOD), ("b.toml", &format!("\n\n{GOOD}"))]);
    assert_at(&e, "b.toml", 4, 1, "rule \"good\": duplicate rule id");
    assert!(e.to_string().contains("a.toml:2:1)"), "{e}");
}

#[test]
fn confidence_must_be_a_number_in_range() {
    let e = load_error(&[("a.toml", &GOOD.replace("0.5", "1.5"))]);
    assert_at(&e, "a.toml", 5, 14, "confidence 1.5 is out of range");
    let e = load_error(&[("a.toml", &GOOD.replace("0.5", "-0.1"))]);
    assert_at(&e, "a.toml", 5, 14, "out of range");
    let e = load_error(&[("a.toml", &GOOD.replace("0.5", "\"high\""))]);
    assert_at(&e, "a.toml", 5, 14, "invalid type: string \"high\"");
}

#[test]
fn a_condition_needs_exactly_one_test() {
    let text = GOOD.replace("equals = \"CT\"", "equals = \"CT\", prefix = \"C\"");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        7,
        10,
        "condition has 2 tests (equals, prefix)",
    );
    let text = GOOD.replace(", equals = \"CT\"", "");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 7, 10, "condition has no test");
    let text = GOOD.replace("equals = \"CT\"", "prefix = \"\"");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 7, 47, "empty `prefix` pattern");
}

#[test]
fn templates_are_checked_against_the_primary_condition() {
    let text = GOOD.replace("device_type = \"ct\"", "software_version = \"DCMTK ${2}\"");
    let text = text.replace("equals = \"CT\"", "regex = '^(C)T$'");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        6,
        20,
        "capture group ${2} but the first condition's regex has 1",
    );
    let text = GOOD.replace("device_type = \"ct\"", "model = \"${1}\"");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        6,
        9,
        "can only be referenced when the first condition is a `regex`",
    );
    let text = GOOD.replace("device_type = \"ct\"", "model = \"$1\"");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 6, 9, "stray `$`");
}

#[test]
fn required_keys_and_rule_shape() {
    let text = GOOD.replace("description = \"a valid rule\"\n", "");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        2,
        1,
        "rule \"good\": missing key `description`",
    );
    let text = GOOD.replace("device_type = \"ct\"\n", "");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 2, 1, "the rule sets nothing");
    let text = GOOD.replace("[{ field = \"dicom.modality\", equals = \"CT\" }]", "[]");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 7, 9, "`match` is empty");
    let text = GOOD.replace("equals = \"CT\"", "equals = \"CT\", not = true");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(
        &e,
        "a.toml",
        7,
        10,
        "first condition cannot have `not = true`",
    );
    let text = GOOD.replace("id = \"good\"", "id = \"has space\"");
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 3, 6, "invalid rule id \"has space\"");
}

#[test]
fn mac_prefix_patterns_must_be_hex() {
    let text = GOOD.replace(
        "field = \"dicom.modality\", equals = \"CT\"",
        "field = \"mac_prefix\", equals = \"00:12:2G\"",
    );
    let e = load_error(&[("a.toml", &text)]);
    assert_at(&e, "a.toml", 7, 43, "is not a MAC address or prefix");
}

#[test]
fn io_errors_name_the_path_and_other_files_are_ignored() {
    let e = RuleSet::load_dir(Path::new("/nonexistent/ward-rules")).unwrap_err();
    assert!(matches!(e, RuleError::Io { .. }), "{e}");
    assert!(
        e.to_string().starts_with("/nonexistent/ward-rules: "),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not toml [[").unwrap();
    std::fs::write(dir.path().join("b.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("a.toml"), "# no rules yet\n").unwrap();
    let summary = check_dir(dir.path()).unwrap();
    assert_eq!(summary.files.len(), 2);
    assert!(summary.files[0].file.ends_with("a.toml"));
    assert_eq!((summary.files[0].rules, summary.files[1].rules), (0, 1));
    assert_eq!(RuleSet::load_dir(dir.path()).unwrap().len(), 1);
}

// --- Overrides ----------------------------------------------------------------------------------

#[test]
fn user_rules_override_bundled_rules_by_id() {
    let archive = [("dicom.role_hint", "storage_scp")];
    let base = bundled();
    let before = classify(&base, None, &archive);
    assert_eq!(before.device_type, "pacs");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        r#"
# This site's storage SCPs are all modality-side DICOM routers.
[[rule]]
id = "dicom.role.storage-scp"
description = "site override: storage SCPs here are routers"
confidence = 0.5
device_type = "interface_engine"
match = [{ field = "dicom.role_hint", equals = "storage_scp" }]

# Never guess a manufacturer from the NIC vendor.
[[rule]]
id = "oui.vendor"
enabled = false

[[rule]]
id = "site.ct-by-ae"
description = "site naming convention: AE titles CT* are CT scanners"
confidence = 0.8
device_type = "ct"
match = [{ field = "dicom.calling_ae", prefix = "CT" }]
"#,
    )
    .unwrap();
    let summary = check_dir(dir.path()).unwrap();
    assert_eq!((summary.files[0].rules, summary.files[0].disabled), (2, 1));
    let user = RuleSet::load_dir(dir.path()).unwrap();
    let merged = base.clone().with_overrides(user);
    assert_eq!(merged.len(), base.len() - 1 + 1);
    assert_eq!(
        merged
            .ids()
            .filter(|&id| id == "dicom.role.storage-scp")
            .count(),
        1
    );
    assert!(!merged.ids().any(|id| id == "oui.vendor"));

    let after = classify(&merged, None, &archive);
    assert_eq!(after.device_type, "interface_engine");
    assert!(after.matches[0].source.ends_with("site.toml"), "{after:?}");

    // A tie at equal confidence goes to the user rule.
    let tie = classify(
        &merged,
        None,
        &[("dicom.calling_ae", "CT01"), ("dicom.modality", "MR")],
    );
    assert_eq!(tie.device_type, "ct", "{tie:?}");

    // The catch-all OUI manufacturer is gone, the bundled one still works.
    let intel = Some("00:1b:21:00:00:01");
    assert!(classify(&base, intel, &[]).manufacturer.is_some());
    assert_eq!(classify(&merged, intel, &[]).manufacturer, None);
}

// --- Classification of the fixture devices ------------------------------------------------------

#[test]
fn dcmtk_ct_modality() {
    let c = classify(
        &bundled(),
        Some("52:54:00:12:34:56"),
        &[
            ("dicom.calling_ae", "WARD_CT01"),
            (
                "dicom.implementation_class_uid",
                "1.2.276.0.7230010.3.0.3.6.7",
            ),
            ("dicom.implementation_version", "OFFIS_DCMTK_367"),
            ("dicom.sop_class", "CT Image Storage"),
            ("dicom.sop_class", "MR Image Storage"),
            ("dicom.sop_class", "RT Plan Storage"),
            ("dicom.sop_class", "12-lead ECG Waveform Storage"),
            ("dicom.role_hint", "modality_storage_scu"),
            ("dicom.role_hint", "storage_scu"),
            ("dicom.role_hint", "worklist_scu"),
            ("dicom.command", "C-STORE-RQ"),
            ("dicom.modality", "CT"),
            ("dicom.manufacturer", "WARD TEST MEDICAL"),
            ("dicom.station_name", "CT-STATION-1"),
            ("dicom.model_name", "WardScan 64"),
            ("dicom.device_serial_number", "SN-0042"),
            ("dicom.software_versions", "VA40B"),
            ("dicom.software_versions", "SP2"),
        ],
    );
    assert_eq!(c.device_type, "ct", "{c:#?}");
    assert_eq!(c.manufacturer.as_deref(), Some("WARD TEST MEDICAL"));
    assert_eq!(c.model.as_deref(), Some("WardScan 64"));
    assert_eq!(c.software_version.as_deref(), Some("VA40B"));
    assert_eq!(c.confidence, 0.8);
    let ids = rule_ids(&c);
    assert_eq!(ids[0], "dicom.dataset.manufacturer", "{ids:?}");
    for id in [
        "dicom.modality.ct",
        "dicom.dataset.model",
        "dicom.dataset.software-versions",
        "dicom.role.modality-storage-and-worklist",
        "dicom.toolkit.dcmtk.uid",
        "dicom.toolkit.dcmtk.name",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    // storescu proposes every storage class: the SOP-class rules must not guess.
    assert!(
        !ids.iter().any(|id| id.starts_with("dicom.sop.")),
        "{ids:?}"
    );
    let m = c
        .matches
        .iter()
        .find(|m| m.rule == "dicom.toolkit.dcmtk.uid")
        .unwrap();
    assert_eq!(
        (m.source.as_str(), m.field.as_str(), m.value.as_str()),
        (
            "bundled:dicom.toml",
            "dicom.implementation_class_uid",
            "1.2.276.0.7230010.3.0.3.6.7"
        )
    );
}

#[test]
fn toolkit_alone_gives_the_toolkit_version() {
    let c = classify(
        &bundled(),
        None,
        &[
            (
                "dicom.implementation_class_uid",
                "1.2.276.0.7230010.3.0.3.6.7",
            ),
            ("dicom.implementation_version", "OFFIS_DCMTK_367"),
        ],
    );
    assert_eq!(c.device_type, "dicom_toolkit");
    assert_eq!(c.software_version.as_deref(), Some("DCMTK 3.6.7"));
    assert_eq!(c.confidence, 0.25);
    let c = classify(
        &bundled(),
        None,
        &[
            (
                "dicom.implementation_class_uid",
                "1.2.826.0.1.3680043.9.3811.3.0.4",
            ),
            ("dicom.implementation_version", "PYNETDICOM_304"),
            ("dicom.modality", "MR"),
            ("dicom.manufacturer", "SIEMENS"),
        ],
    );
    assert_eq!(c.device_type, "mr");
    assert_eq!(c.manufacturer.as_deref(), Some("Siemens Healthineers"));
    assert_eq!(c.software_version.as_deref(), Some("pynetdicom 3.0.4"));
    let c = classify(
        &bundled(),
        None,
        &[
            (
                "dicom.implementation_class_uid",
                "1.2.826.0.1.3680043.9.7133.1.1",
            ),
            ("dicom.implementation_version", "GODICOM_1_1"),
        ],
    );
    assert_eq!(c.software_version.as_deref(), Some("go-dicom 1.1"));
}

#[test]
fn mindray_pcd01_sender() {
    let c = classify(
        &bundled(),
        Some("00:a0:37:9a:00:53"),
        &[
            (
                "hl7.sending_application",
                "MINDRAY_D-SERIES^00A037009A0053DE^EUI-64",
            ),
            ("hl7.sending_facility", "WARD_ICU"),
            ("hl7.message_type", "ORU^R01^ORU_R01"),
            ("hl7.version", "2.6"),
            (
                "hl7.profile",
                "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
            ),
            (
                "hl7.device_code",
                "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
            ),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Mindray"), "{c:#?}");
    assert!(
        ["patient_monitor", "monitor_gateway"].contains(&c.device_type.as_str()),
        "{c:#?}"
    );
    assert_eq!(c.device_type, "patient_monitor");
    let ids = rule_ids(&c);
    for id in [
        "hl7.mdc.multi-param-monitor",
        "hl7.msh3.mindray-d-series",
        "hl7.eui64.mindray",
        "hl7.profile.pcd-01.name",
        "hl7.profile.pcd-01.oid",
        "oui.prefix.mindray-00a037",
        "oui.name.mindray",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let eui = c
        .matches
        .iter()
        .find(|m| m.rule == "hl7.eui64.mindray")
        .unwrap();
    assert_eq!(eui.field, "hl7.sending_application");
    assert_eq!(eui.source, "bundled:hl7.toml");
}

#[test]
fn hl7_dev_segment_and_hospira_equipment() {
    let c = classify(
        &bundled(),
        None,
        &[
            (
                "hl7.sending_application",
                "WARD_PUMP_GW^0012211839000002^EUI-64",
            ),
            ("hl7.device_manufacturer", "WARD INFUSION SYSTEMS"),
            ("hl7.device_model", "WardPump 500"),
            ("hl7.device_software_version", "4.2.1"),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("WARD INFUSION SYSTEMS"));
    assert_eq!(c.model.as_deref(), Some("WardPump 500"));
    assert_eq!(c.software_version.as_deref(), Some("4.2.1"));
    let c = classify(
        &bundled(),
        None,
        &[("hl7.equipment_instance", "Hospira Plum A+")],
    );
    assert_eq!(c.device_type, "infusion_pump");
    assert_eq!(c.model.as_deref(), Some("Plum A+"));
}

#[test]
fn bbraun_pump_from_dhcp() {
    let c = classify(
        &bundled(),
        Some("00:12:21:aa:bb:01"),
        &[
            ("dhcp.message_type", "DISCOVER"),
            ("dhcp.client_mac", "00:12:21:aa:bb:01"),
            ("dhcp.hostname", "infusion-pump-07"),
            ("dhcp.vendor_class", "BBraun-SpaceStation"),
            ("dhcp.parameter_request_list", "1,3,6,42,12,43,15,28"),
            ("dhcp.client_id", "01001221aabb01"),
            ("dhcp.fqdn", "infusion-pump-07.ward.test"),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("B. Braun"), "{c:#?}");
    assert_eq!(c.device_type, "infusion_pump");
    assert_eq!(c.model.as_deref(), Some("SpaceStation"));
    assert_eq!(c.confidence, 0.6);
    let ids = rule_ids(&c);
    assert_eq!(ids[0], "dhcp.vendor-class.bbraun");
    for id in [
        "dhcp.hostname.infusion",
        "oui.prefix.bbraun-001221",
        "oui.name.bbraun",
        "oui.vendor",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let prefix = c
        .matches
        .iter()
        .find(|m| m.rule == "oui.prefix.bbraun-001221")
        .unwrap();
    assert_eq!(
        (prefix.field.as_str(), prefix.value.as_str()),
        ("mac_prefix", "00:12:21")
    );
    let vendor = c.matches.iter().find(|m| m.rule == "oui.vendor").unwrap();
    assert_eq!(
        (vendor.field.as_str(), vendor.value.as_str()),
        ("oui", "B.Braun Melsungen AG")
    );
}

#[test]
fn storescp_archive_is_a_pacs() {
    let c = classify(
        &bundled(),
        Some("52:54:00:aa:bb:cc"),
        &[
            ("dicom.called_ae", "WARD_PACS"),
            (
                "dicom.implementation_class_uid",
                "1.2.276.0.7230010.3.0.3.6.7",
            ),
            ("dicom.implementation_version", "OFFIS_DCMTK_367"),
            (
                "dicom.context_result",
                "1.2.840.10008.5.1.4.1.1.2:acceptance",
            ),
            ("dicom.transfer_syntax", "1.2.840.10008.1.2.1"),
            ("dicom.role_hint", "storage_scp"),
        ],
    );
    assert_eq!(c.device_type, "pacs", "{c:#?}");
    assert_eq!(c.confidence, 0.5);
    assert_eq!(c.software_version.as_deref(), Some("DCMTK 3.6.7"));
    assert_eq!(c.manufacturer, None, "locally administered MAC, no OUI");
    assert_eq!(c.matches[0].rule, "dicom.role.storage-scp");
    assert_eq!(c.matches[0].value, "storage_scp");
}

#[test]
fn archive_forwarding_images_is_not_the_modality() {
    let c = classify(
        &bundled(),
        None,
        &[
            ("dicom.role_hint", "storage_scp"),
            ("dicom.role_hint", "query_retrieve_scp"),
            ("dicom.role_hint", "modality_storage_scu"),
            ("dicom.sop_class", "CT Image Storage"),
            ("dicom.modality", "CT"),
            ("dicom.modality", "MR"),
            ("dicom.manufacturer", "SIEMENS"),
        ],
    );
    assert_eq!(c.device_type, "pacs", "{c:#?}");
    assert_eq!(c.manufacturer, None);
    // A modality that also accepts storage (priors) but only ever sends CT.
    let c = classify(
        &bundled(),
        None,
        &[("dicom.role_hint", "storage_scp"), ("dicom.modality", "CT")],
    );
    assert_eq!(c.device_type, "ct", "{c:#?}");
}

#[test]
fn nothing_known_is_unknown() {
    let c = classify(&bundled(), None, &[]);
    assert_eq!((c.device_type.as_str(), c.confidence), ("unknown", 0.0));
    assert!(c.matches.is_empty() && c.manufacturer.is_none());
    let c = classify(
        &bundled(),
        Some("da:a1:19:00:00:01"),
        &[("hl7.message_type", "ADT^A01")],
    );
    assert_eq!((c.device_type.as_str(), c.confidence), ("unknown", 0.0));
    // A universal MAC of a non-medical vendor: manufacturer from the catch-all only.
    let c = classify(&bundled(), Some("00:1b:21:00:00:01"), &[]);
    assert_eq!(c.device_type, "unknown");
    assert_eq!(c.confidence, 0.05);
    assert_eq!(rule_ids(&c), ["oui.vendor"]);
}

#[test]
fn other_bundled_signals() {
    let set = bundled();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("dhcp.vendor_class", "MSFT 5.0")], "workstation"),
        (
            &[(
                "dhcp.parameter_request_list",
                "1,3,6,15,31,33,43,44,46,47,119,121,249,252",
            )],
            "workstation",
        ),
        (&[("dhcp.vendor_class", "android-dhcp-13")], "mobile_device"),
        (&[("dhcp.vendor_class", "udhcp 1.36.1")], "network_infra"),
        (&[("dhcp.hostname", "NPI8A1B2C")], "printer"),
        (&[("dicom.role_hint", "worklist_scp")], "worklist_server"),
        (&[("dicom.modality", "DX")], "xray"),
        (&[("dicom.modality", "PT"), ("dicom.modality", "CT")], "pet"),
        (&[("dicom.modality", "RTPLAN")], "radiotherapy"),
        (
            &[("hl7.device_code", "MDC_DEV_PUMP_INFUS_MDS")],
            "infusion_pump",
        ),
        (
            &[("hl7.device_code", "70001^MDC_DEV_SYS_PT_VENT_MDS^MDC")],
            "ventilator",
        ),
        (
            &[("hl7.sending_application", "MIRTH_CONNECT")],
            "interface_engine",
        ),
        (&[("hl7.sending_application", "EPIC^EPIC")], "ehr"),
        (
            &[
                ("dicom.sop_class", "Ultrasound Multi-frame Image Storage"),
                ("dicom.sop_class", "Ultrasound Image Storage"),
                ("dicom.role_hint", "modality_storage_scu"),
            ],
            "us",
        ),
    ];
    for (facts, want) in cases {
        let c = classify(&set, None, facts);
        assert_eq!(&c.device_type, want, "{facts:?}: {c:#?}");
    }
    let c = classify(&set, None, &[("dhcp.vendor_class", "android-dhcp-13")]);
    assert_eq!(c.software_version.as_deref(), Some("Android 13"));
    let c = classify(
        &set,
        None,
        &[("dicom.implementation_version", "MergeCOM3_340")],
    );
    assert_eq!(c.software_version.as_deref(), Some("MergeCOM-3 340"));
    let c = classify(
        &set,
        None,
        &[("dicom.implementation_class_uid", "1.2.840.113619.6.5")],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("GE HealthCare"));
}

/// UPnP device descriptions (issue 17): the description's own manufacturer and model name, its
/// model number only when it looks like one, printer and gateway device types, and MiniDLNA's
/// built-in manufacturer (its author) never taken for the device's.
#[test]
fn upnp_description_rules() {
    let set = bundled();
    let c = classify(
        &set,
        None,
        &[
            (
                "ssdp.device_type",
                "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
            ),
            ("ssdp.manufacturer", "WardTestNet"),
            ("ssdp.model_name", "WardTestNet Router"),
            ("ssdp.model_number", "WR-9000"),
            (
                "ssdp.device_type",
                "urn:schemas-upnp-org:device:WANDevice:2",
            ),
        ],
    );
    assert_eq!(c.device_type, "network_infra");
    assert_eq!(c.manufacturer.as_deref(), Some("WardTestNet"));
    assert_eq!(c.model.as_deref(), Some("WardTestNet Router"));
    let c = classify(
        &set,
        None,
        &[
            ("ssdp.device_type", "urn:schemas-upnp-org:device:Printer:1"),
            ("ssdp.model_number", "LP-2044"),
        ],
    );
    assert_eq!(c.device_type, "printer");
    assert_eq!(c.model.as_deref(), Some("LP-2044"));
    // A bare version in modelNumber is not a model; MiniDLNA's author is not a manufacturer.
    let c = classify(
        &set,
        None,
        &[
            (
                "ssdp.device_type",
                "urn:schemas-upnp-org:device:MediaServer:1",
            ),
            ("ssdp.manufacturer", "Justin Maggard"),
            ("ssdp.model_number", "1"),
        ],
    );
    assert_eq!(c.device_type, "unknown");
    assert_eq!((c.manufacturer, c.model), (None, None));
    let c = classify(&set, None, &[("ssdp.model_number", "12.0")]);
    assert_eq!(c.model, None);
}

#[test]
fn readme_examples_parse() {
    let readme = std::fs::read_to_string(rules_dir().join("README.md")).unwrap();
    let mut blocks = 0;
    for (i, block) in readme.split("```toml").skip(1).enumerate() {
        let text = block.split("```").next().unwrap();
        if !text.contains("[[rule]]") {
            continue; // a fragment
        }
        // The markdown list indents one example.
        let text: String = text
            .lines()
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        RuleSet::parse(&format!("README example {i}"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        blocks += 1;
    }
    assert!(blocks >= 4, "{blocks}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn shared() -> &'static RuleSet {
        static SET: OnceLock<RuleSet> = OnceLock::new();
        SET.get_or_init(bundled)
    }

    /// Values near what the bundled rules look for, so rules do fire.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("CT".to_owned()),
            Just("storage_scp".to_owned()),
            Just("modality_storage_scu".to_owned()),
            Just("OFFIS_DCMTK_367".to_owned()),
            Just("MINDRAY_D-SERIES^00A037009A0053DE^EUI-64".to_owned()),
            Just("69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC".to_owned()),
            Just("BBraun-SpaceStation".to_owned()),
            "[ -~]{0,24}",
            "\\PC{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn classify_upholds_its_invariants(
            facts in prop::collection::vec((0..Field::ALL.len(), value()), 0..40),
            mac in prop::array::uniform6(any::<u8>()),
        ) {
            let facts: Vec<(Field, &str)> =
                facts.iter().map(|(i, v)| (Field::ALL[*i], v.as_str())).collect();
            let mac = MacAddr(mac);
            let input = RuleInput {
                mac,
                oui_vendor: OuiRegistry::bundled().lookup(mac),
                facts: &facts,
                roles: &[],
            };
            let c = shared().classify(&input);
            check_matches_name_rules_and_evidence(shared(), &input, &c);
            // Deterministic.
            prop_assert_eq!(c, shared().classify(&input));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,400}") {
            let _ = RuleSet::parse("fuzz.toml", &text);
        }

        #[test]
        fn parse_never_panics_on_rule_shaped_text(
            id in "[a-z.]{0,8}",
            field in prop_oneof![Just("dicom.modality".to_owned()), "[a-z._]{0,12}"],
            pattern in "\\PC{0,16}",
            template in "[$a-z{}0-9]{0,12}",
            conf in -1.0f64..2.0,
        ) {
            let text = format!(
                "[[rule]]\nid = {id:?}\ndescription = \"d\"\nconfidence = {conf}\n\
                 model = {template:?}\nmatch = [{{ field = {field:?}, regex = {pattern:?} }}]\n"
            );
            if let Err(RuleError::Invalid { line, column, .. }) = RuleSet::parse("p.toml", &text) {
                prop_assert!((1..=7).contains(&line) && column >= 1);
            }
        }
    }
}

/// HTTP and SSH rules (issue 17): public product strings, none from our fixtures' names.
#[test]
fn http_and_ssh_signals() {
    let set = bundled();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(
                "http.user_agent",
                "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)",
            )],
            "mobile_device",
        ),
        (
            &[(
                "http.server",
                "HP HTTP Server; HP Color LaserJet MFP M480f - 3QA55A; Serial Number: X",
            )],
            "printer",
        ),
        (&[("http.server", "Microsoft-IIS/10.0")], "workstation"),
        (&[("http.x_powered_by", "ASP.NET")], "workstation"),
        (&[("ssh.software_version", "Cisco-1.25")], "network_infra"),
        (
            &[("ssh.software_version", "dropbear_2022.83")],
            "network_infra",
        ),
        (
            &[("ssh.software_version", "OpenSSH_for_Windows_8.1")],
            "workstation",
        ),
    ];
    for (facts, want) in cases {
        let c = classify(&set, None, facts);
        assert_eq!(&c.device_type, want, "{facts:?}: {c:#?}");
    }
    let c = classify(
        &set,
        None,
        &[(
            "http.user_agent",
            "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)",
        )],
    );
    assert_eq!(c.model.as_deref(), Some("Pixel 7"));
    assert_eq!(c.software_version.as_deref(), Some("Android 13"));
    let c = classify(
        &set,
        None,
        &[(
            "http.server",
            "HP HTTP Server; HP Color LaserJet MFP M480f - 3QA55A",
        )],
    );
    assert_eq!(c.model.as_deref(), Some("Color LaserJet MFP M480f"));
    let c = classify(
        &set,
        None,
        &[
            ("ssh.banner", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
            ("ssh.software_version", "OpenSSH_9.2p1"),
        ],
    );
    assert_eq!(c.software_version.as_deref(), Some("Debian 12"));
    assert_eq!(c.device_type, "unknown");
}

/// The organisation of a device's self-issued certificate names its maker, but only when the
/// device presents no CA-issued certificate too (conditions hold per device, and a site CA's
/// certificate names the site): the facts of tls.pcap's server, which serves both.
#[test]
fn tls_self_issued_certificate_organisation() {
    let pump = [
        ("tls.cert_subject_o", "Ward Infusion Systems"),
        ("tls.cert_subject_cn", "wardpump-500-7731"),
        ("tls.cert_self_signed", "true"),
    ];
    let c = classify(&bundled(), None, &pump);
    assert_eq!(
        c.manufacturer.as_deref(),
        Some("Ward Infusion Systems"),
        "{c:#?}"
    );
    assert_eq!(rule_ids(&c), ["tls.cert.self-issued-organization"]);
    let mut both = pump.to_vec();
    both.extend([
        ("tls.cert_subject_o", "St Example Hospital"),
        ("tls.cert_self_signed", "false"),
    ]);
    let c = classify(&bundled(), None, &both);
    assert_eq!(c.manufacturer, None, "{c:#?}");
    let c = classify(
        &bundled(),
        None,
        &[
            ("tls.cert_subject_o", "St Example Hospital"),
            ("tls.cert_self_signed", "false"),
        ],
    );
    assert_eq!(c.manufacturer, None, "{c:#?}");
}

#[test]
fn dns_queried_vendor_hosts_are_weak_hints() {
    let c = classify(
        &bundled(),
        None,
        &[
            ("dns.queried_name", "MESU.apple.com"),
            ("dns.query_type", "A"),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Apple"), "{c:#?}");
    assert!(c.confidence <= 0.3, "{c:#?}");
    assert_eq!(rule_ids(&c), ["dns.query.apple-software-update"]);
    let c = classify(
        &bundled(),
        None,
        &[("dns.queried_name", "fe2.update.microsoft.com")],
    );
    assert_eq!(c.device_type, "workstation", "{c:#?}");
    let c = classify(&bundled(), None, &[("dns.queried_name", "x.hpeprint.com")]);
    assert_eq!(
        (c.manufacturer.as_deref(), c.device_type.as_str()),
        (Some("HP"), "printer"),
        "{c:#?}"
    );
    // A look-alike is not the vendor's host; an answer is the server's, not a query.
    for facts in [
        [("dns.queried_name", "mesu.apple.com.example")],
        [("dns.answered_name", "mesu.apple.com")],
    ] {
        let c = classify(&bundled(), None, &facts);
        assert!(c.matches.is_empty(), "{c:#?}");
    }
}

#[test]
fn dhcp_user_classes() {
    let c = classify(&bundled(), None, &[("dhcp.user_class", "iPXE")]);
    assert_eq!(rule_ids(&c), ["dhcp.user-class.ipxe"]);
    let c = classify(&bundled(), None, &[("dhcp.user_class", "RRAS.Microsoft")]);
    assert_eq!(c.device_type, "workstation", "{c:#?}");
}

/// LLDP-MED inventory names the device; capabilities and CDP platforms give the type. A Linux
/// host that forwards (lldpd reports "router") is outranked by the device's own inventory class.
#[test]
fn lldp_and_cdp_signals() {
    // lldpd's announcement in tests/fixtures/lldp.pcap.
    let phone = [
        ("lldp.med_manufacturer", "WardTestTel"),
        ("lldp.med_model", "WT-7"),
        ("lldp.med_software_revision", "7.4.1"),
        ("lldp.med_firmware_revision", "FW-2024.3"),
        ("lldp.med_device_class", "communication_endpoint"),
        ("lldp.enabled_capabilities", "telephone"),
        ("cdp.platform", "WardTestTel WT-7"),
        ("cdp.capabilities", "host"),
    ];
    let c = classify(&bundled(), Some("02:57:41:52:44:1d"), &phone);
    assert_eq!(c.manufacturer.as_deref(), Some("WardTestTel"), "{c:#?}");
    assert_eq!(c.model.as_deref(), Some("WT-7"));
    assert_eq!(c.software_version.as_deref(), Some("7.4.1"));
    assert_eq!(c.device_type, "ip_phone");
    assert_eq!(
        rule_ids(&c)[..2],
        ["lldp.med.manufacturer", "lldp.med.model"]
    );

    // A Catalyst switch over CDP (strings from Cisco's 'show cdp neighbors detail' examples).
    let c = classify(
        &bundled(),
        None,
        &[
            ("cdp.platform", "cisco WS-C2960-24TT-L"),
            (
                "cdp.software_version",
                "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, \
                 RELEASE SOFTWARE (fc3)",
            ),
            ("cdp.capabilities", "switch"),
            ("cdp.capabilities", "igmp"),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Cisco"), "{c:#?}");
    assert_eq!(c.model.as_deref(), Some("WS-C2960-24TT-L"));
    assert_eq!(c.software_version.as_deref(), Some("IOS 15.0(2)SE11"));
    // A Catalyst platform says which kind of network equipment: a switch.
    assert_eq!(c.device_type, "switch");

    // Cisco IP phone and Aironet access point platforms.
    let c = classify(&bundled(), None, &[("cdp.platform", "Cisco IP Phone 7965")]);
    assert_eq!(
        (c.model.as_deref(), c.device_type.as_str()),
        (Some("IP Phone 7965"), "ip_phone")
    );
    let c = classify(
        &bundled(),
        None,
        &[("cdp.platform", "cisco AIR-CAP3702I-E-K9")],
    );
    assert_eq!(
        (c.model.as_deref(), c.device_type.as_str()),
        (Some("AIR-CAP3702I-E-K9"), "wireless_ap")
    );

    // An LLDP switch: bridge enabled, an IOS system description.
    let c = classify(
        &bundled(),
        None,
        &[
            ("lldp.enabled_capabilities", "bridge"),
            (
                "lldp.system_description",
                "Cisco IOS Software, C3750E Software (C3750E-UNIVERSALK9-M), Version 15.2(4)E10, RELEASE SOFTWARE (fc2)",
            ),
        ],
    );
    assert_eq!(c.manufacturer.as_deref(), Some("Cisco"), "{c:#?}");
    assert_eq!(c.software_version.as_deref(), Some("IOS 15.2(4)E10"));
    assert_eq!(c.device_type, "switch", "{c:#?}");

    // lldpd on a Linux host with IP forwarding and a software bridge: not network equipment.
    let c = classify(
        &bundled(),
        None,
        &[
            ("lldp.enabled_capabilities", "bridge"),
            ("lldp.enabled_capabilities", "router"),
            (
                "lldp.system_description",
                "Debian GNU/Linux 12 (bookworm) Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC \
                 Debian 6.1.76-1 (2024-02-01) x86_64",
            ),
        ],
    );
    assert_eq!(c.device_type, "unknown", "{c:#?}");
}

/// ASTM Header layouts from vendors' host interface manuals (the header strings are the
/// manuals' own examples, see agent/rules/astm.toml), and the generic LIS2-A2 layout.
#[test]
fn astm_sender_layouts() {
    let set = bundled();
    let c = |sender: &str, types: &str| {
        classify(
            &set,
            None,
            &[("astm.sender", sender), ("astm.record_types", types)],
        )
    };
    let want = |c: ClassificationRecord, m: &str, model: &str, sw: Option<&str>| {
        assert_eq!(c.device_type, "lab_analyzer", "{c:#?}");
        assert_eq!(c.manufacturer.as_deref(), Some(m), "{c:#?}");
        assert_eq!(c.model.as_deref(), Some(model), "{c:#?}");
        assert_eq!(c.software_version.as_deref(), sw, "{c:#?}");
    };
    want(
        c("ARCHITECT^9.45^F3452180006^H1P1O1R1C1Q1L1", "H,P,O,R,L"),
        "Abbott",
        "ARCHITECT",
        Some("9.45"),
    );
    want(
        c("XN-350^00-14^13126^^^^AW618382", "H,P,O,R,L"),
        "Sysmex",
        "XN-350",
        Some("00-14"),
    );
    want(
        c("cobas-e411^1", "H,P,O,R,L"),
        "Roche Diagnostics",
        "cobas-e411",
        None,
    );
    want(
        c("OCD^VISION^5.13.1.46935^J60009999", "H,P,O,R,L"),
        // Ortho Clinical Diagnostics is QuidelOrtho since 2022: the product dictionary's alias
        // table (agent/products/manufacturers.toml) reports the one name (issue 19 point 2).
        "QuidelOrtho",
        "VISION",
        Some("5.13.1.46935"),
    );
    want(
        c("IDS-iSYS B300B0378", "H,Q,L"),
        "Immunodiagnostic Systems",
        "IDS-iSYS",
        None,
    );
    // The generic layout: manufacturer^product^version^instrument.
    want(
        c("Acme Lab^AX-100^2.4.1^SN77", "H,P,O,R,L"),
        "Acme Lab",
        "AX-100",
        Some("2.4.1"),
    );
    // A LIS sending orders only: no type from the records, no vendor from a bare name.
    let lis = c("LIS", "H,P,O,L");
    assert_eq!(lis.device_type, "unknown", "{lis:#?}");
    assert_eq!(lis.manufacturer, None);
}
