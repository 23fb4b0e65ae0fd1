//! Every fixture capture yields the identity facts its manifest lists, and none of its patient
//! data: on the committed captures and on fresh ones made by real peers in this very run
//! (`scripts/test.sh` generates them and sets `WARD_FRESH_CAPTURES`; without it the fresh test
//! fails, it is never skipped).
//!
//! Patient data is looked for with `ward_canary::Scanner` holding every canary of every fixture:
//! each component, case-insensitively, its 6+ character prefixes, raw and in every encoding.

use std::path::Path;

use ward_canary::Scanner;
use ward_tests::{fact_set, fixture_path, manifest, run_capture, Fixture};

fn check_fixture(path: &Path, fx: &Fixture, scanner: &Scanner) -> Vec<String> {
    let mut problems = Vec::new();
    let result = run_capture(path);
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
    let debug = format!(
        "{:?} {:?} {:?}",
        result.evidence, result.read, result.dissect
    );
    for (what, hay) in [
        ("evidence JSON", &json),
        ("evidence and counters (Debug)", &debug),
    ] {
        for f in scanner.scan(hay.as_bytes()) {
            problems.push(format!("{}: {what}: {f}", fx.file));
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
    let scanner = Scanner::fixtures();
    let problems: Vec<_> = m
        .fixtures
        .iter()
        .flat_map(|fx| check_fixture(&fixture_path(&fx.file), fx, &scanner))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A fixture proves nothing about patient data unless it carries canaries; one that cannot
/// (no patient data on its wire) must say why.
#[test]
fn every_fixture_carries_canaries_or_says_why_not() {
    for fx in manifest().fixtures {
        match (fx.canaries.is_empty(), fx.no_patient_data.as_deref()) {
            (false, None) => {}
            (true, Some(why)) if !why.trim().is_empty() => {}
            (false, Some(_)) => panic!("{}: canaries and no_patient_data both", fx.file),
            _ => panic!("{}: no canaries and no no_patient_data reason", fx.file),
        }
    }
}

#[test]
fn freshly_generated_captures_yield_the_same_facts() {
    // A missing prerequisite fails: this test is the only proof that today's peers still
    // produce what the committed fixtures hold.
    let dir = std::env::var_os("WARD_FRESH_CAPTURES").unwrap_or_else(|| {
        panic!(
            "WARD_FRESH_CAPTURES is not set, so there are no freshly generated captures to \
             check. Run the suite through `sudo scripts/test.sh` (it generates them and sets \
             the variable), or generate them yourself: \
             `OUT_DIR=$(mktemp -d) sudo -E tests/captures/generate.sh` and set \
             WARD_FRESH_CAPTURES to that directory."
        )
    });
    let dir = Path::new(&dir);
    let scanner = Scanner::fixtures();
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
        problems.extend(check_fixture(&path, fx, &scanner));
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
        let path = fixture_path(&fx.file);
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
