use super::*;
use proptest::prelude::*;

use load::default_confidence;

const MAKERS: &str = r#"
[[manufacturer]]
name = "Acme Medical"
aliases = ["ACME MEDICAL SYSTEMS, INC.", "Acme Med"]
source = "test"
"#;

fn parse(text: &str) -> Result<Dictionary, RuleError> {
    Dictionary::parse("t.toml", &format!("{MAKERS}{text}"), &Aliases::default())
}

/// The error's text, which must start with `t.toml:LINE:COLUMN: `; lines count from the first
/// line after MAKERS (which is 6 lines long).
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.to_string(),
    }
}

fn at(line: usize, column: usize) -> String {
    format!("t.toml:{}:{column}: ", line + 5)
}

const PUMP: &str = r#"
[[product]]
manufacturer = "Acme Medical"
line = "FlowMax"
device_type = "infusion_pump"
source = "acme.example: FlowMax product page"
"#;

#[test]
fn a_product_compiles_to_a_rule_with_a_generated_id_and_defaults() {
    let d = parse(&format!(
        "{PUMP}match = [{{ field = \"dhcp.hostname\", prefix = \"flowmax\" }}]\n"
    ))
    .unwrap();
    assert_eq!(d.rules().ids().collect::<Vec<_>>(), ["products.t.1"]);
    let facts = [(ward_protocols::Field::DhcpHostname, "flowmax-07")];
    let c = d.rules().classify(&crate::rules::RuleInput {
        mac: Default::default(),
        oui_vendor: None,
        facts: &facts,
        roles: &[],
    });
    assert_eq!(c.manufacturer.as_deref(), Some("Acme Medical"));
    assert_eq!(
        c.model.as_deref(),
        Some("FlowMax"),
        "the line, without a model"
    );
    assert_eq!(c.device_type, "infusion_pump");
    assert_eq!(c.confidence, 0.5, "host names are weak");
    assert_eq!(d.summary().products(), 1);
    assert_eq!(d.summary().manufacturers(), 1);
}

#[test]
fn match_any_makes_one_rule_per_condition_with_the_confidence_of_its_field() {
    let d = parse(
        "[[product]]\nid = \"acme.flowmax\"\nmanufacturer = \"Acme Medical\"\nline = \
         \"FlowMax\"\ndevice_type = \"infusion_pump\"\nsource = \"s\"\nmatch_any = [\n\
         { field = \"hl7.device_model\", regex = 'FlowMax' },\n\
         { field = \"dhcp.vendor_class\", regex = '^FlowMax' },\n]\n",
    );
    let d = d.unwrap();
    assert_eq!(
        d.rules().ids().collect::<Vec<_>>(),
        ["acme.flowmax.1", "acme.flowmax.2"]
    );
    let classify = |field, value| {
        let facts = [(field, value)];
        d.rules().classify(&crate::rules::RuleInput {
            mac: Default::default(),
            oui_vendor: None,
            facts: &facts,
            roles: &[],
        })
    };
    let c = classify(ward_protocols::Field::Hl7DeviceModel, "FlowMax 3");
    assert_eq!(
        (c.confidence, c.model.as_deref()),
        (0.85, Some("FlowMax 3"))
    );
    let c = classify(ward_protocols::Field::DhcpVendorClass, "FlowMax-fw2");
    assert_eq!((c.confidence, c.model.as_deref()), (0.65, Some("FlowMax")));
}

#[test]
fn match_any_fields_stand_for_one_condition_per_field() {
    let head = "[[product]]\nid = \"p\"\nmanufacturer = \"Acme Medical\"\nline = \"L\"\n\
                device_type = \"ct\"\nsource = \"s\"\n";
    let d = parse(&format!(
        "{head}[[product.match_any]]\nfields = [\"dicom.model_name\", \"hl7.device_model\"]\n\
         regex = '^L'\n[[product.match_any]]\nfield = \"dhcp.hostname\"\nprefix = \"l-\"\n"
    ))
    .unwrap();
    assert_eq!(d.rules().ids().collect::<Vec<_>>(), ["p.1", "p.2", "p.3"]);
    // An unknown field of a list is located at that field.
    let e = error(&format!(
        "{head}[[product.match_any]]\nfields = [\"dicom.model_name\", \"dicom.modle\"]\n\
         regex = '^L'\n"
    ));
    assert!(e.starts_with(&at(8, 31)), "{e}");
    assert!(
        e.contains("rule \"p.2\": unknown field \"dicom.modle\""),
        "{e}"
    );
    for (body, what) in [
        (
            "field = \"dhcp.hostname\"\nfields = [\"dhcp.fqdn\"]\nprefix = \"x\"\n",
            "not both",
        ),
        ("fields = []\nprefix = \"x\"\n", "`fields` is empty"),
        ("prefix = \"x\"\n", "no `field` or `fields`"),
        (
            "field = \"dhcp.hostname\"\nprefix = \"x\"\nnot = true\n",
            "unknown field `not`",
        ),
    ] {
        let e = error(&format!("{head}[[product.match_any]]\n{body}"));
        assert!(e.contains(what), "{e}");
    }
}

#[test]
fn default_confidences_by_kind_of_field() {
    assert_eq!(default_confidence("dicom.model_name"), 0.85);
    assert_eq!(default_confidence("lldp.med_model"), 0.85);
    assert_eq!(default_confidence("dhcp.vendor_class"), 0.65);
    assert_eq!(default_confidence("hl7.sending_application"), 0.65);
    assert_eq!(default_confidence("dhcp.hostname"), 0.5);
    assert_eq!(default_confidence("dicom.station_name"), 0.5);
    assert!(default_confidence("intellivue.model") <= MAX_CONFIDENCE);
}

#[test]
fn errors_name_file_line_and_column() {
    let m = "match = [{ field = \"dhcp.hostname\", prefix = \"x\" }]\n";
    // Unknown key (line 7: `colour`).
    let e = error(&format!("{PUMP}colour = \"red\"\n{m}"));
    assert!(e.starts_with(&at(7, 1)), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    // Unknown manufacturer, at its value.
    let e = error(&format!(
        "{}{m}",
        PUMP.replace("\"Acme Medical\"", "\"Nobody\"")
    ));
    assert!(e.starts_with(&at(3, 16)), "{e}");
    assert!(e.contains("unknown manufacturer \"Nobody\""), "{e}");
    assert!(e.contains("rule \"products.t.1\""), "{e}");
    // An alias where the canonical name belongs.
    let e = error(&format!(
        "{}{m}",
        PUMP.replace("\"Acme Medical\"", "\"Acme Med\"")
    ));
    assert!(e.starts_with(&at(3, 16)), "{e}");
    assert!(e.contains("alias of manufacturer \"Acme Medical\""), "{e}");
    // A device type outside the vocabulary.
    let e = error(&format!("{}{m}", PUMP.replace("infusion_pump", "pump")));
    assert!(e.starts_with(&at(5, 15)), "{e}");
    assert!(e.contains("unknown device_type \"pump\""), "{e}");
    // Confidence above the cap.
    let e = error(&format!("{PUMP}confidence = 0.95\n{m}"));
    assert!(e.starts_with(&at(7, 14)), "{e}");
    assert!(e.contains("above 0.85"), "{e}");
    // Missing source: at the product's header.
    let e = error(&format!("{}{m}", PUMP.replace("source = ", "note = ")));
    assert!(e.starts_with(&at(2, 1)), "{e}");
    assert!(e.contains("missing key `source`"), "{e}");
    // Neither `match` nor `match_any`; both.
    let e = error(PUMP);
    assert!(e.contains("missing key `match`"), "{e}");
    let e = error(&format!(
        "{PUMP}{m}match_any = [{{ field = \"dhcp.hostname\", prefix = \"y\" }}]\n"
    ));
    assert!(e.contains("not both"), "{e}");
    // The rules' own checks, located in the product file: an invalid regex.
    let e = error(&format!(
        "{PUMP}match = [{{ field = \"dhcp.hostname\", regex = 'a(' }}]\n"
    ));
    assert!(e.starts_with(&at(7, 45)), "{e}");
    assert!(e.contains("invalid regex"), "{e}");
    // An unknown field.
    let e = error(&format!(
        "{PUMP}match = [{{ field = \"dhcp.host\", prefix = \"x\" }}]\n"
    ));
    assert!(e.starts_with(&at(7, 20)), "{e}");
    assert!(e.contains("unknown field \"dhcp.host\""), "{e}");
    // A template referring to a group the regex lacks.
    let e = error(&format!(
        "{PUMP}model = \"${{2}}\"\nmatch = [{{ field = \"dhcp.hostname\", regex = '(x)' }}]\n"
    ));
    assert!(e.starts_with(&at(7, 9)), "{e}");
    assert!(e.contains("1 group(s)"), "{e}");
}

#[test]
fn duplicate_ids_and_spellings_are_errors() {
    let one = "[[product]]\nid = \"p.a\"\nmanufacturer = \"Acme Medical\"\nline = \"L\"\n\
               device_type = \"ct\"\nsource = \"s\"\n\
               match = [{ field = \"dicom.model_name\", equals = \"L\" }]\n";
    let e = error(&format!("{one}{one}"));
    assert!(e.contains("duplicate rule id"), "{e}");
    assert!(e.starts_with(&at(9, 6)), "{e}");
    // The same manufacturer twice.
    let e = error("[[manufacturer]]\nname = \"Acme Medical\"\nsource = \"s\"\n");
    assert!(e.starts_with(&at(2, 8)), "{e}");
    assert!(e.contains("defined twice"), "{e}");
    // … or another spelling of it as a second name.
    let e = error("[[manufacturer]]\nname = \"ACME medical\"\nsource = \"s\"\n");
    assert!(
        e.contains("already names manufacturer \"Acme Medical\""),
        "{e}"
    );
    // One spelling for two manufacturers.
    let e = error("[[manufacturer]]\nname = \"Other\"\naliases = [\"Acme-Med\"]\nsource = \"s\"\n");
    assert!(e.starts_with(&at(3, 12)), "{e}");
    assert!(
        e.contains("already names manufacturer \"Acme Medical\""),
        "{e}"
    );
    // A manufacturer without a source, or a name without letters.
    let e = error("[[manufacturer]]\nname = \"Other\"\n");
    assert!(e.contains("missing key `source`"), "{e}");
    let e = error("[[manufacturer]]\nname = \"--\"\nsource = \"s\"\n");
    assert!(e.contains("no letters or digits"), "{e}");
    // Duplicate ids across files of one directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), format!("{MAKERS}{one}")).unwrap();
    std::fs::write(dir.path().join("b.toml"), one).unwrap();
    let e = Dictionary::load_dir(dir.path(), &Aliases::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("b.toml:1:1: rule \"p.a\""), "{e}");
    assert!(e.contains("duplicate rule id (first defined at"), "{e}");
}

#[test]
fn a_disabled_product_needs_only_its_id_and_a_site_file_overrides_by_id() {
    let bundled = RuleSet::bundled().unwrap();
    let id = "products.infusion.bd-alaris.1";
    assert!(bundled.ids().any(|i| i == id));
    let site = Dictionary::parse(
        "site.toml",
        &format!("[[product]]\nid = \"{id}\"\nenabled = false\n"),
        bundled.aliases(),
    )
    .unwrap();
    assert_eq!(site.summary().files[0].disabled, 1);
    let merged = bundled
        .clone()
        .with_overrides(site.apply(RuleSet::default()).unwrap());
    assert!(!merged.ids().any(|i| i == id));
    assert_eq!(merged.len(), bundled.len() - 1);
    // A site product may name a bundled manufacturer, and a site alias extends the table.
    let site = Dictionary::parse(
        "site.toml",
        "[[manufacturer]]\nname = \"BD\"\naliases = [\"Our BD Pumps\"]\nsource = \"site\"\n\
         [[product]]\nmanufacturer = \"Baxter\"\nline = \"Local\"\ndevice_type = \
         \"infusion_pump\"\nsource = \"asset list\"\n\
         match = [{ field = \"dhcp.hostname\", prefix = \"bx-\" }]\n",
        bundled.aliases(),
    )
    .unwrap();
    let merged = bundled.with_overrides(site.apply(RuleSet::default()).unwrap());
    assert_eq!(merged.aliases().canonical("OUR BD PUMPS"), Some("BD"));
    assert_eq!(merged.aliases().canonical("CareFusion"), Some("BD"));
}

#[test]
fn files_beyond_the_size_bound_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
    std::fs::write(dir.path().join("big.toml"), big).unwrap();
    let e = Dictionary::load_dir(dir.path(), &Aliases::default()).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[test]
fn every_bundled_product_loads_and_every_alias_resolves() {
    let d = Dictionary::bundled().unwrap_or_else(|e| panic!("{e}"));
    assert!(d.summary().products() >= 100, "{}", d.summary());
    assert!(d.rules().len() > d.summary().products());
    let text = include_str!("../../products/manufacturers.toml");
    let file: toml::Table = toml::from_str(text).unwrap();
    let makers = file["manufacturer"].as_array().unwrap();
    for m in makers {
        let name = m["name"].as_str().unwrap();
        assert_eq!(d.aliases().canonical(name), Some(name));
        for alias in m
            .get("aliases")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let alias = alias.as_str().unwrap();
            assert_eq!(d.aliases().canonical(alias), Some(name), "{alias}");
        }
    }
    // Every manufacturer a product names is in the table, under its canonical name (the
    // loader checks it; this pins that the bundled rules' names are the canonical ones).
    for (spelling, canonical) in [
        ("GE Medical Systems", "GE HealthCare"),
        ("GE HEALTHCARE", "GE HealthCare"),
        ("GE Healthcare", "GE HealthCare"),
        ("Becton, Dickinson and Company", "BD"),
        ("CareFusion 303, Inc.", "BD"),
        ("Draeger Medical Systems, Inc.", "Dräger"),
        ("B.Braun Melsungen AG", "B. Braun"),
        ("Mindray DS USA, Inc.", "Mindray"),
        // Not listed whole: found without its legal form.
        ("Spacelabs Healthcare, Inc", "Spacelabs Healthcare"),
        ("Hamilton Medical AG", "Hamilton Medical"),
        ("Sysmex Co., Ltd.", "Sysmex"),
        ("Cisco Systems, Inc", "Cisco"),
        ("Apple, Inc.", "Apple"),
        ("XEROX CORPORATION", "Xerox"),
        ("RICOH COMPANY, LTD.", "Ricoh"),
    ] {
        assert_eq!(
            d.aliases().canonical(spelling),
            Some(canonical),
            "{spelling}"
        );
    }
    // Whole names only: a different company sharing a word is not an alias.
    for other in [
        "GE",
        "General Electric Company",
        "Siemens AG",
        "Canon Inc.",
        "Philips Lighting",
    ] {
        assert_eq!(d.aliases().canonical(other), None, "{other}");
    }
}

#[test]
fn the_bundled_rule_set_canonicalises_every_classification() {
    let set = RuleSet::bundled().unwrap();
    let facts = [(
        ward_protocols::Field::DicomManufacturer,
        "GE MEDICAL SYSTEMS",
    )];
    let c = set.classify(&crate::rules::RuleInput {
        mac: Default::default(),
        oui_vendor: None,
        facts: &facts,
        roles: &[],
    });
    assert_eq!(c.manufacturer.as_deref(), Some("GE HealthCare"));
    // The catch-all OUI rule takes the registry's spelling; the table names the company.
    let facts: [(ward_protocols::Field, &str); 0] = [];
    let c = set.classify(&crate::rules::RuleInput {
        mac: "02:00:00:00:00:01".parse().unwrap(),
        oui_vendor: Some("Carefusion"),
        facts: &facts,
        roles: &[],
    });
    assert_eq!(c.manufacturer.as_deref(), Some("BD"), "{c:#?}");
    // The evidence keeps the spelling seen.
    assert!(c.matches.iter().any(|m| m.value == "Carefusion"), "{c:#?}");
}

#[test]
fn overlays_keep_canonical_names_canonical() {
    let base = Dictionary::parse(
        "a.toml",
        "[[manufacturer]]\nname = \"Hospira\"\naliases = [\"Hospira Inc\"]\nsource = \"s\"\n",
        &Aliases::default(),
    )
    .unwrap();
    let over = Dictionary::parse(
        "b.toml",
        "[[manufacturer]]\nname = \"ICU Medical\"\naliases = [\"HOSPIRA\"]\nsource = \"s\"\n",
        base.aliases(),
    )
    .unwrap();
    let t = base.aliases().overlaid(over.aliases());
    assert_eq!(t.canonical("Hospira"), Some("ICU Medical"));
    assert_eq!(
        t.canonical("Hospira Inc"),
        Some("ICU Medical"),
        "follows its name"
    );
    assert_eq!(t.canonical("ICU Medical"), Some("ICU Medical"));
}

proptest! {
    #[test]
    fn canonical_is_idempotent(
        pick in 0usize..400,
        noise in "[ .,_-]{0,3}",
        upper in any::<bool>(),
        suffix in prop::sample::select(vec!["", " Inc.", ", Ltd.", " GmbH", " AG", " Corp"]),
        free in "\\PC{0,24}",
    ) {
        static SET: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        let t = SET.get_or_init(|| RuleSet::bundled().unwrap()).aliases();
        let text = include_str!("../../products/manufacturers.toml");
        let spellings: Vec<String> = text
            .lines()
            .filter(|l| l.trim_start().starts_with('"') || l.starts_with("name = "))
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        let base = spellings.get(pick % spellings.len().max(1)).cloned().unwrap_or_default();
        let mut candidate = format!("{noise}{base}{suffix}{noise}");
        if upper {
            candidate = candidate.to_uppercase();
        }
        for name in [candidate.as_str(), free.as_str()] {
            if let Some(c) = t.canonical(name) {
                prop_assert_eq!(t.canonical(c), Some(c));
            }
        }
    }
}
