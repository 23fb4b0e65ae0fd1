//! The bundled product dictionary (agent/products/*.toml, issue 19 point 2): one synthetic
//! device per product family, written from the vendors' published product names, classifies to
//! the expected manufacturer, model and type; and `ward-agent products check` on the bundled
//! directory and on a broken one.

use std::path::{Path, PathBuf};
use std::process::Command;

use ward_agent::observation::ClassificationRecord;
use ward_agent::rules::{RuleInput, RuleSet};
use ward_protocols::{Field, MacAddr};

const AGENT: &str = env!("CARGO_BIN_EXE_ward-agent");

fn products_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("products")
}

fn classify(set: &RuleSet, facts: &[(&str, &str)]) -> ClassificationRecord {
    let facts: Vec<(Field, &str)> = facts
        .iter()
        .map(|(name, v)| {
            let f = Field::ALL
                .iter()
                .copied()
                .find(|f| f.name() == *name)
                .unwrap_or_else(|| panic!("no field {name}"));
            (f, *v)
        })
        .collect();
    set.classify(&RuleInput {
        mac: MacAddr::default(),
        oui_vendor: None,
        facts: &facts,
        roles: &[],
    })
}

/// (facts, manufacturer, model, device type).
type Case = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static str,
);

/// Synthetic devices per family: the values are product names as their makers publish them,
/// in the fields a device of that kind fills.
const CASES: &[Case] = &[
    // Infusion.
    (
        &[("hl7.device_model", "Alaris 8015 PC Unit")],
        "BD",
        "Alaris 8015 PC Unit",
        "infusion_pump",
    ),
    (
        &[("hl7.sending_application", "ALARIS_SYSTEMS_MANAGER")],
        "BD",
        "Alaris Systems Manager",
        "monitor_gateway",
    ),
    (
        &[("sdc.model_name", "Sigma Spectrum")],
        "Baxter",
        "Sigma Spectrum",
        "infusion_pump",
    ),
    (
        &[("dhcp.vendor_class", "Novum IQ LVP")],
        "Baxter",
        "Novum IQ",
        "infusion_pump",
    ),
    (
        &[("hl7.device_model", "Plum 360")],
        "ICU Medical",
        "Plum 360",
        "infusion_pump",
    ),
    (
        &[("lldp.med_model", "Medfusion 4000")],
        "ICU Medical",
        "Medfusion 4000",
        "infusion_pump",
    ),
    (
        &[("snmp.sys_descr", "Perfusor Space rev 3")],
        "B. Braun",
        "Perfusor Space",
        "infusion_pump",
    ),
    (
        &[("hl7.device_model", "Volumat Agilia")],
        "Fresenius Kabi",
        "Volumat Agilia",
        "infusion_pump",
    ),
    (
        &[("dhcp.hostname", "ivenix-lvp-0042")],
        "Fresenius Kabi",
        "Ivenix Infusion System",
        "infusion_pump",
    ),
    // Monitoring, central stations, telemetry.
    (
        &[("dhcp.hostname", "carescape-b650-icu12")],
        "GE HealthCare",
        "CARESCAPE",
        "patient_monitor",
    ),
    (
        &[("mdns.host_name", "IntelliVue-MX800-07.local")],
        "Philips",
        "IntelliVue",
        "patient_monitor",
    ),
    (
        &[("hl7.device_model", "IntelliVue MX450")],
        "Philips",
        "IntelliVue MX450",
        "patient_monitor",
    ),
    (
        &[("hl7.sending_application", "PIC iX")],
        "Philips",
        "Patient Information Center iX",
        "monitor_gateway",
    ),
    (
        &[("sdc.model_name", "IntelliVue MX40")],
        "Philips",
        "IntelliVue MX40",
        "telemetry",
    ),
    (
        &[("hl7.device_model", "CARESCAPE B650")],
        "GE HealthCare",
        "CARESCAPE B650",
        "patient_monitor",
    ),
    (
        &[("hl7.sending_application", "CARESCAPE Gateway")],
        "GE HealthCare",
        "CARESCAPE Gateway",
        "monitor_gateway",
    ),
    (
        &[("hl7.device_model", "ApexPro CH")],
        "GE HealthCare",
        "ApexPro CH",
        "telemetry",
    ),
    (
        &[("hl7.device_model", "BeneVision N17")],
        "Mindray",
        "BeneVision N17",
        "patient_monitor",
    ),
    (
        &[("hl7.device_model", "BeneVision TM80")],
        "Mindray",
        "BeneVision TM80",
        "telemetry",
    ),
    (
        &[("snmp.sys_descr", "Mindray eGateway HL7 server")],
        "Mindray",
        "eGateway",
        "monitor_gateway",
    ),
    (
        &[("hl7.device_model", "ePM 12M")],
        "Mindray",
        "ePM 12M",
        "patient_monitor",
    ),
    (
        &[("hl7.device_model", "BSM-6701")],
        "Nihon Kohden",
        "BSM-6701",
        "patient_monitor",
    ),
    (
        &[("hl7.sending_application", "CNS-6201")],
        "Nihon Kohden",
        "CNS",
        "monitor_gateway",
    ),
    (
        &[("sdc.model_name", "Xprezzon")],
        "Spacelabs Healthcare",
        "Xprezzon",
        "patient_monitor",
    ),
    (
        &[("lldp.med_model", "Infinity M540")],
        "Dräger",
        "Infinity M540",
        "patient_monitor",
    ),
    (
        &[("hl7.sending_application", "Infinity Gateway")],
        "Dräger",
        "Infinity Gateway",
        "monitor_gateway",
    ),
    // Ventilation and anaesthesia.
    (
        &[("dhcp.hostname", "EVITA-V500-0031")],
        "Dräger",
        "Evita",
        "ventilator",
    ),
    (
        &[("sdc.model_name", "Evita V800")],
        "Dräger",
        "Evita V800",
        "ventilator",
    ),
    (
        &[("dhcp.vendor_class", "HAMILTON-C6")],
        "Hamilton Medical",
        "HAMILTON-C6",
        "ventilator",
    ),
    (
        &[("snmp.sys_descr", "Puritan Bennett 980 ventilator")],
        "Medtronic",
        "Puritan Bennett 980",
        "ventilator",
    ),
    (
        &[("hl7.device_model", "CARESCAPE R860")],
        "GE HealthCare",
        "CARESCAPE R860",
        "ventilator",
    ),
    (
        &[("hl7.sending_application", "SERVO-U")],
        "Getinge",
        "Servo-U",
        "ventilator",
    ),
    (
        &[("sdc.model_name", "Perseus A500")],
        "Dräger",
        "Perseus A500",
        "anesthesia",
    ),
    // Laboratory and point of care.
    (
        &[("dhcp.hostname", "statstrip-ed-04")],
        "Nova Biomedical",
        "StatStrip",
        "poc_analyzer",
    ),
    (
        &[("dhcp.vendor_class", "Accu-Chek Inform II")],
        "Roche Diagnostics",
        "Accu-Chek Inform II",
        "poc_analyzer",
    ),
    (
        &[("poct1a.model_id", "i-STAT 1")],
        "Abbott",
        "i-STAT 1",
        "poc_analyzer",
    ),
    (
        &[("hl7.device_model", "Alinity ci")],
        "Abbott",
        "Alinity ci",
        "lab_analyzer",
    ),
    (
        &[("poct1a.model_id", "Accu-Chek Inform II")],
        "Roche Diagnostics",
        "Accu-Chek Inform II",
        "poc_analyzer",
    ),
    (
        &[("hl7.sending_application", "cobas b 221")],
        "Roche Diagnostics",
        "cobas b 221",
        "poc_analyzer",
    ),
    (
        &[("hl7.device_model", "Atellica Solution")],
        "Siemens Healthineers",
        "Atellica Solution",
        "lab_analyzer",
    ),
    (
        &[("poct1a.model_id", "RAPIDPoint 500e")],
        "Siemens Healthineers",
        "RAPIDPoint 500e",
        "poc_analyzer",
    ),
    (
        &[("poct1a.model_id", "epoc Host")],
        "Siemens Healthineers",
        "epoc Host",
        "poc_analyzer",
    ),
    (
        &[("hl7.sending_application", "ABL90 FLEX PLUS")],
        "Radiometer",
        "ABL90 FLEX PLUS",
        "poc_analyzer",
    ),
    (
        &[("poct1a.model_id", "StatStrip")],
        "Nova Biomedical",
        "StatStrip",
        "poc_analyzer",
    ),
    (
        &[("hl7.sending_application", "XN-1000")],
        "Sysmex",
        "XN-1000",
        "lab_analyzer",
    ),
    (
        &[("hl7.sending_application", "DxH 900")],
        "Beckman Coulter",
        "DxH 900",
        "lab_analyzer",
    ),
    (
        &[("hl7.sending_application", "AU5800")],
        "Beckman Coulter",
        "AU5800",
        "lab_analyzer",
    ),
    // Imaging: DICOM Manufacturer's Model Name.
    (
        &[("dicom.model_name", "SOMATOM Force")],
        "Siemens Healthineers",
        "SOMATOM Force",
        "ct",
    ),
    (
        &[("dicom.model_name", "MAGNETOM Vida")],
        "Siemens Healthineers",
        "MAGNETOM Vida",
        "mr",
    ),
    (
        &[("dicom.model_name", "ACUSON Sequoia")],
        "Siemens Healthineers",
        "ACUSON Sequoia",
        "us",
    ),
    (
        &[("dicom.model_name", "Revolution CT")],
        "GE HealthCare",
        "Revolution CT",
        "ct",
    ),
    (
        &[("dicom.model_name", "SIGNA Premier")],
        "GE HealthCare",
        "SIGNA Premier",
        "mr",
    ),
    (
        &[("dicom.model_name", "LOGIQ E10")],
        "GE HealthCare",
        "LOGIQ E10",
        "us",
    ),
    (
        &[("dicom.model_name", "Discovery MI")],
        "GE HealthCare",
        "Discovery MI",
        "pet",
    ),
    (
        &[("dicom.model_name", "Ingenia")],
        "Philips",
        "Ingenia",
        "mr",
    ),
    (
        &[("dicom.model_name", "IQon Spectral CT")],
        "Philips",
        "IQon Spectral CT",
        "ct",
    ),
    (
        &[("dicom.model_name", "EPIQ 7G")],
        "Philips",
        "EPIQ 7G",
        "us",
    ),
    (
        &[("dicom.model_name", "Aquilion ONE")],
        "Canon Medical Systems",
        "Aquilion ONE",
        "ct",
    ),
    (
        &[("dicom.model_name", "Vantage Orian")],
        "Canon Medical Systems",
        "Vantage Orian",
        "mr",
    ),
    (
        &[("dicom.model_name", "FDR D-EVO II")],
        "FUJIFILM",
        "FDR D-EVO II",
        "xray",
    ),
    (
        &[("dicom.model_name", "DRX-Evolution Plus")],
        "Carestream Health",
        "DRX-Evolution Plus",
        "xray",
    ),
    (
        &[("dicom.model_name", "Selenia Dimensions")],
        "Hologic",
        "Selenia Dimensions",
        "mammography",
    ),
    // Nurse call.
    (
        &[("nbns.name", "NAVICARE-SRV01")],
        "Hill-Rom",
        "NaviCare",
        "nurse_call",
    ),
    (
        &[("lldp.system_description", "NaviCare Nurse Call bed station")],
        "Hill-Rom",
        "NaviCare",
        "nurse_call",
    ),
    (
        &[("snmp.sys_descr", "Ascom Telligence NCS")],
        "Ascom",
        "Telligence",
        "nurse_call",
    ),
    (
        &[("lldp.system_description", "Rauland Responder 5 controller")],
        "Rauland",
        "Responder",
        "nurse_call",
    ),
    (
        &[("snmp.sys_descr", "Jeron Provider 790 master station")],
        "Jeron Electronic Systems",
        "Provider",
        "nurse_call",
    ),
];

#[test]
fn one_device_per_product_family_is_named_right() {
    let set = RuleSet::bundled().unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = Vec::new();
    for (facts, manufacturer, model, device_type) in CASES {
        let c = classify(&set, facts);
        let got = (
            c.manufacturer.as_deref().unwrap_or(""),
            c.model.as_deref().unwrap_or(""),
            c.device_type.as_str(),
        );
        if got != (*manufacturer, *model, *device_type) {
            wrong.push(format!(
                "{facts:?}: got {got:?}, want {:?} ({:?})",
                (manufacturer, model, device_type),
                c.matches.iter().map(|m| &m.rule).collect::<Vec<_>>()
            ));
            continue;
        }
        // The product rule is among the evidence, citing its dictionary file.
        assert!(
            c.matches.iter().any(|m| m.rule.starts_with("products.")
                && m.source.starts_with("bundled:")
                && m.source.ends_with(".toml")),
            "{c:#?}"
        );
        // Never above a device's own serial-bearing model fields.
        assert!(c.confidence <= 0.85, "{c:#?}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Host-name patterns are informed guesses: they name the product but yield to anything the
/// device says about itself.
#[test]
fn host_name_guesses_are_weak_and_yield() {
    let set = RuleSet::bundled().unwrap();
    let c = classify(&set, &[("dhcp.hostname", "alaris-pcu-0112")]);
    assert_eq!(c.manufacturer.as_deref(), Some("BD"));
    assert_eq!(c.device_type, "infusion_pump");
    assert!(c.confidence <= 0.4, "{c:#?}");
    let c = classify(
        &set,
        &[
            ("dhcp.hostname", "alaris-pcu-0112"),
            ("hl7.device_model", "IntelliVue MX800"),
        ],
    );
    assert_eq!(c.device_type, "patient_monitor", "{c:#?}");
    // Other devices' ordinary strings are not products.
    for fact in [
        (
            "snmp.sys_descr",
            "VMware ESXi 8.0.2 build-22380479 hypervisor",
        ),
        (
            "snmp.sys_descr",
            "Cisco IOS Software, C3750 Software (C3750-IPSERVICESK9-M)",
        ),
        (
            "snmp.sys_descr",
            "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153",
        ),
        (
            "http.user_agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
        ),
        ("dhcp.vendor_class", "MSFT 5.0"),
        ("dhcp.vendor_class", "android-dhcp-14"),
        ("hl7.sending_application", "EPIC"),
        (
            "lldp.system_description",
            "Debian GNU/Linux 12 Linux 6.1.0-18-amd64",
        ),
    ] {
        let c = classify(&set, &[fact]);
        assert!(
            !c.matches.iter().any(|m| m.rule.starts_with("products.")),
            "{fact:?}: {c:#?}"
        );
    }
    // Ordinary words in host names are not products.
    for host in [
        "plumbing-office",
        "spectrum-analyzer",
        "delta-router",
        "evitable",
    ] {
        let c = classify(&set, &[("dhcp.hostname", host)]);
        assert!(
            !c.matches.iter().any(|m| m.rule.starts_with("products.")),
            "{host}: {c:#?}"
        );
    }
}

/// The manufacturer is reported under its canonical name whatever spelling the evidence used.
#[test]
fn manufacturer_spellings_become_one_name() {
    let set = RuleSet::bundled().unwrap();
    for (spelling, canonical) in [
        ("GE Medical Systems", "GE HealthCare"),
        ("GE Healthcare", "GE HealthCare"),
        ("CareFusion", "BD"),
        ("Becton Dickinson", "BD"),
        ("Philips Medical Systems", "Philips"),
        ("Hospira", "ICU Medical"),
        (
            "Shenzhen Mindray Bio-Medical Electronics Co., Ltd.",
            "Mindray",
        ),
    ] {
        let c = classify(&set, &[("hl7.device_manufacturer", spelling)]);
        assert_eq!(c.manufacturer.as_deref(), Some(canonical), "{spelling}");
        assert!(c.matches.iter().any(|m| m.value == spelling), "{c:#?}");
    }
}

#[test]
fn products_check_accepts_the_bundled_dictionary() {
    let out = Command::new(AGENT)
        .args(["products", "check"])
        .arg(products_dir())
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("product(s) and"), "{stdout}");
    assert!(stdout.contains("manufacturers.toml"), "{stdout}");
    assert!(stdout.contains(": OK"), "{stdout}");
}

#[test]
fn products_check_reports_the_first_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        "[[product]]\nmanufacturer = \"Nobody Medical\"\nline = \"X\"\n\
         device_type = \"infusion_pump\"\nsource = \"s\"\n\
         match = [{ field = \"dhcp.hostname\", prefix = \"x\" }]\n",
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["products", "check"])
        .arg(dir.path())
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("site.toml:2:16: "), "{stderr}");
    assert!(
        stderr.contains("unknown manufacturer \"Nobody Medical\""),
        "{stderr}"
    );
    // A site file may name the bundled manufacturers.
    std::fs::write(
        dir.path().join("site.toml"),
        "[[product]]\nmanufacturer = \"BD\"\nline = \"X\"\n\
         device_type = \"infusion_pump\"\nsource = \"s\"\n\
         match = [{ field = \"dhcp.hostname\", prefix = \"x\" }]\n",
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["products", "check"])
        .arg(dir.path())
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// `read --products-dir DIR`: a site dictionary extends the bundled one in the running agent
/// (a site product naming every DHCP client, so any capture with DHCP shows it), and a broken
/// site dictionary stops the agent before it reads anything, naming file and line.
#[test]
fn read_applies_a_site_products_directory() {
    let dir = tempfile::tempdir().unwrap();
    let products = dir.path().join("products");
    std::fs::create_dir(&products).unwrap();
    std::fs::write(
        products.join("site.toml"),
        "[[manufacturer]]\nname = \"Site Test Maker\"\nsource = \"test\"\n\n\
         [[product]]\nid = \"site.every-dhcp-client\"\nmanufacturer = \"Site Test Maker\"\n\
         line = \"Anything\"\ndevice_type = \"camera\"\nsource = \"test\"\nconfidence = 0.85\n\
         match = [{ field = \"dhcp.parameter_request_list\", regex = '.' }]\n",
    )
    .unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dhcp.pcap");
    let run = |products: &Path| {
        let jsonl = dir.path().join("out.jsonl");
        let _ = std::fs::remove_file(&jsonl);
        let out = Command::new(AGENT)
            .arg("read")
            .arg(&capture)
            .args(["--output", &format!("jsonl:{}", jsonl.display())])
            .arg("--spool-dir")
            .arg(dir.path().join("spool"))
            .arg("--products-dir")
            .arg(products)
            .env_remove("WARD_CONFIG")
            .env_remove("WARD_PRODUCTS_DIR")
            .output()
            .unwrap();
        (out, std::fs::read_to_string(&jsonl).unwrap_or_default())
    };
    let (out, jsonl) = run(&products);
    assert!(out.status.success(), "{out:?}");
    assert!(
        jsonl.contains("\"manufacturer\":\"Site Test Maker\""),
        "{jsonl}"
    );
    assert!(
        jsonl.contains("\"rule\":\"site.every-dhcp-client\""),
        "{jsonl}"
    );

    std::fs::write(
        products.join("site.toml"),
        "[[product]]\nmanufacturer = 3\n",
    )
    .unwrap();
    let (out, _) = run(&products);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("site.toml:2:16: "), "{stderr}");
}
