//! Replays the committed cargo-fuzz corpus of the collector's targets (`fuzz/corpus/<target>/`)
//! through the same harness functions the fuzz targets call, so every input the fuzzer kept is
//! a regression test of the collector's parsers.

use std::path::Path;

use ward_collector::fuzz_harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading corpus {}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn contracts_corpus() {
    replay("contracts", fuzz_harness::contracts);
}

#[test]
fn assets_corpus() {
    replay("assets", fuzz_harness::assets);
}

#[test]
fn observation_corpus() {
    replay("observation", fuzz_harness::observation);
}

#[test]
fn pattern_corpus() {
    replay("pattern", fuzz_harness::pattern);
}
