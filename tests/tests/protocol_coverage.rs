//! Every registered protocol is covered (issue 14, point 4): a fixture whose manifest facts
//! include one of its fields, a fuzz seed that drives its decoder, a bundled rule file that
//! matches on its fields, and its fields listed in the documented field table
//! (`agent/rules/README.md`, "Fields"). Adding a protocol without one of these fails here.

use std::path::{Path, PathBuf};

use ward_protocols::evidence::{Field, Protocol};
use ward_protocols::registry::{self, REGISTRY};
use ward_tests::manifest;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn fields(p: Protocol) -> Vec<Field> {
    Field::ALL
        .iter()
        .copied()
        .filter(|f| f.protocol() == p)
        .collect()
}

/// Non-empty files directly in `fuzz/corpus/<dir>/`.
fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(repo().join("fuzz/corpus").join(dir)) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The protocols registered in `REGISTRY`; every `Protocol` must be one of them.
fn registered() -> Vec<Protocol> {
    let mut out: Vec<Protocol> = Protocol::ALL.to_vec();
    out.retain(|p| registry::decoders(*p).next().is_some());
    out
}

#[test]
fn every_protocol_is_registered_and_has_fields() {
    assert!(!REGISTRY.is_empty());
    for p in Protocol::ALL {
        assert!(
            registry::decoders(*p).next().is_some(),
            "{}: no decoder in REGISTRY",
            p.name()
        );
        assert!(!fields(*p).is_empty(), "{}: no fields! rows", p.name());
    }
}

#[test]
fn every_protocol_has_a_fixture_with_its_facts() {
    let m = manifest();
    let mut missing = Vec::new();
    for p in registered() {
        let names: Vec<&str> = fields(p).iter().map(|f| f.name()).collect();
        let found = m
            .fixtures
            .iter()
            .any(|fx| fx.facts.iter().any(|f| names.contains(&f.field.as_str())));
        if !found {
            missing.push(format!(
                "{}: no fixture in tests/fixtures/manifest.json lists a fact of its fields \
                 (add a generate.sh scenario and build_manifest.py facts)",
                p.name()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_protocol_has_a_fuzz_seed() {
    let app = corpus("app");
    let mut missing = Vec::new();
    for p in registered() {
        // A per-protocol target's corpus, or a seed of the generic `app` target whose selector
        // byte picks one of this protocol's registry entries.
        let own = !corpus(p.name()).is_empty();
        let generic = app.iter().any(|seed| {
            seed.len() > 1
                && REGISTRY
                    .get(usize::from(seed[0]) % REGISTRY.len())
                    .is_some_and(|d| d.protocol == p)
        });
        if !own && !generic {
            missing.push(format!(
                "{}: no seed in fuzz/corpus/{}/ nor a fuzz/corpus/app/ seed selecting it",
                p.name(),
                p.name()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_protocol_has_a_bundled_rule_file() {
    let rules_rs = read("agent/src/rules.rs");
    let mut missing = Vec::new();
    for p in registered() {
        let file = format!("{}.toml", p.name());
        if !rules_rs.contains(&format!("include_str!(\"../rules/{file}\")")) {
            missing.push(format!(
                "{}: agent/rules/{file} is not in BUNDLED (agent/src/rules.rs)",
                p.name()
            ));
            continue;
        }
        let text = read(&format!("agent/rules/{file}"));
        let names_a_field = fields(p)
            .iter()
            .any(|f| text.contains(&format!("field = \"{}\"", f.name())));
        if !names_a_field {
            missing.push(format!(
                "{}: agent/rules/{file} has no rule matching on one of its fields",
                p.name()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_field_is_in_the_documented_field_table() {
    let readme = read("agent/rules/README.md");
    let start = readme
        .find("### Fields")
        .expect("agent/rules/README.md has a \"### Fields\" section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n#").map_or(section.len(), |i| i + 4)];
    let missing: Vec<&str> = Field::ALL
        .iter()
        .map(|f| f.name())
        .filter(|n| !section.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields missing from the \"Fields\" list of agent/rules/README.md: {}",
        missing.join(", ")
    );
}
