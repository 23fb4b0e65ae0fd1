//! Every fixture capture yields the identity facts its manifest lists, and none of its patient
//! data: on the committed captures and, when the test command generated them, on fresh ones
//! made by real peers in this very run.

use std::path::Path;

use ward_tests::{fact_set, fixtures_dir, manifest, run_capture, Fixture};

fn check_fixture(dir: &Path, fx: &Fixture) -> Vec<String> {
    let path = dir.join(&fx.file);
    let mut problems = Vec::new();
    let result = run_capture(&path);
    let got = fact_set(&result);
    for want in &fx.facts {
        if !got.contains(want) {
            let same_field: Vec<_> = got
                .iter()
                .filter(|g| g.field == want.field)
                .map(|g| g.value.as_str())
                .collect();
            problems.push(format!(
                "{}: missing {} = {:?} (extracted for that field: {:?})",
                fx.file, want.field, want.value, same_field
            ));
        }
    }
    let json = serde_json::to_string(&result.evidence).unwrap();
    let debug = format!("{:?} {:?}", result.read, result.dissect);
    for canary in &fx.canaries {
        for needle in ward_tests::canary_needles(canary) {
            for hay in [&json, &debug] {
                if hay.to_ascii_lowercase().contains(&needle) {
                    problems.push(format!(
                        "{}: patient data {needle:?} reached the evidence",
                        fx.file
                    ));
                }
            }
        }
    }
    if !fx.vlans.is_empty() {
        let tagged = result
            .evidence
            .iter()
            .any(|e| e.endpoints.vlans == fx.vlans);
        if !tagged {
            problems.push(format!(
                "{}: no evidence carries VLANs {:?}",
                fx.file, fx.vlans
            ));
        }
    }
    if result.link_errors > 0 {
        problems.push(format!(
            "{}: {} frames with undecodable link headers",
            fx.file, result.link_errors
        ));
    }
    problems
}

#[test]
fn committed_fixtures_yield_every_listed_fact_and_no_patient_data() {
    let m = manifest();
    assert!(
        m.fixtures.len() >= 10,
        "manifest lists only {} fixtures",
        m.fixtures.len()
    );
    let problems: Vec<_> = m
        .fixtures
        .iter()
        .flat_map(|fx| check_fixture(&fixtures_dir(), fx))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn freshly_generated_captures_yield_the_same_facts() {
    let Some(dir) = std::env::var_os("WARD_FRESH_CAPTURES") else {
        // scripts/test.sh always sets it; under CI a missing run is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "WARD_FRESH_CAPTURES is not set: run the suite through scripts/test.sh"
        );
        eprintln!("WARD_FRESH_CAPTURES not set; run scripts/test.sh to test fresh captures");
        return;
    };
    let dir = Path::new(&dir);
    let m = manifest();
    let mut checked = 0;
    let mut problems = Vec::new();
    for fx in m.fixtures.iter().filter(|f| !f.file.starts_with("public/")) {
        let path = dir.join(&fx.file);
        assert!(
            path.exists(),
            "generator did not produce {}",
            path.display()
        );
        problems.extend(check_fixture(dir, fx));
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} generated fixtures checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn fixtures_cover_every_link_type_and_pcapng() {
    use std::collections::BTreeSet;
    let m = manifest();
    let mut seen = BTreeSet::new();
    for fx in &m.fixtures {
        let path = fixtures_dir().join(&fx.file);
        for (link, _) in ward_tests::frames(&path) {
            seen.insert(format!("{link:?}"));
        }
        let head = std::fs::read(&path).unwrap();
        if head.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            seen.insert("pcapng".to_owned());
        }
    }
    for want in ["Ethernet", "LinuxSll", "LinuxSll2", "Null", "pcapng"] {
        assert!(
            seen.contains(want),
            "no fixture exercises {want}; seen {seen:?}"
        );
    }
}
