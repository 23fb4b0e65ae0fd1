//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) through the same harness
//! functions the fuzz targets call (`ward_protocols::fuzz_harness` for packets,
//! `ward_collector::fuzz_harness` for the collector's inputs, `ward_agent::pcap::fuzz_read` for
//! capture files), so every input the fuzzer kept is a regression test.

use std::path::Path;

use ward_protocols::fuzz_harness;

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

/// Every `fuzz/fuzz_targets/*.rs` has a replay here (a target added without one fails).
#[test]
fn every_fuzz_target_is_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let this = include_str!("fuzz_corpus.rs");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let target = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(
            this.contains(&format!("fn {target}_corpus()")),
            "fuzz target {target} has no corpus replay in tests/tests/fuzz_corpus.rs"
        );
    }
}

#[test]
fn frame_corpus() {
    replay("frame", fuzz_harness::frames);
}

#[test]
fn reassembly_corpus() {
    replay("reassembly", fuzz_harness::reassembly);
}

#[test]
fn dicom_corpus() {
    replay("dicom", fuzz_harness::dicom);
}

#[test]
fn hl7_corpus() {
    replay("hl7", fuzz_harness::hl7);
}

#[test]
fn dhcp_corpus() {
    replay("dhcp", fuzz_harness::dhcp);
}

#[test]
fn tls_corpus() {
    replay("tls", fuzz_harness::tls);
}

#[test]
fn contracts_corpus() {
    replay("contracts", ward_collector::fuzz_harness::contracts);
}

#[test]
fn assets_corpus() {
    replay("assets", ward_collector::fuzz_harness::assets);
}

#[test]
fn observation_corpus() {
    replay("observation", ward_collector::fuzz_harness::observation);
}

#[test]
fn pattern_corpus() {
    replay("pattern", ward_collector::fuzz_harness::pattern);
}

#[test]
fn pcap_corpus() {
    replay("pcap", ward_agent::pcap::fuzz_read);
    // The public captures are seeds too, read where they live (never copied into the corpus).
    let dir = ward_tests::public_captures_dir();
    let mut n = 0;
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (../shared beside the checkout)", dir.display()))
    {
        let path = e.unwrap().path();
        ward_agent::pcap::fuzz_read(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no public captures in {}", dir.display());
}

#[test]
fn app_corpus() {
    replay("app", fuzz_harness::app);
}

/// The public CISA advisories and KEV subset (`../shared/advisories/public/`) are seeds too,
/// read where they live.
fn public_advisories() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/advisories/public");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (../shared beside the checkout)", dir.display()))
    {
        out.push(std::fs::read(e.unwrap().path()).unwrap());
    }
    assert!(out.len() > 10, "public advisories in {}", dir.display());
    out
}

#[test]
fn advisory_corpus() {
    replay("advisory", ward_collector::fuzz_harness::advisory);
    for f in public_advisories() {
        ward_collector::fuzz_harness::advisory(&f);
    }
}

#[test]
fn kev_corpus() {
    replay("kev", ward_collector::fuzz_harness::kev);
    for f in public_advisories() {
        ward_collector::fuzz_harness::kev(&f);
    }
}

/// OpenEoX documents; the collector's own OpenEoX test documents (shell documents, selector 0)
/// are seeds too.
#[test]
fn eox_corpus() {
    replay("eox", ward_collector::fuzz_harness::eox);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/data/advisories");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("eox"))
        {
            let mut data = vec![0u8];
            data.extend(std::fs::read(&path).unwrap());
            ward_collector::fuzz_harness::eox(&data);
        }
    }
}

/// CycloneDX SBOMs; the collector's own SBOM test documents are seeds too.
#[test]
fn sbom_corpus() {
    replay("sbom", ward_collector::fuzz_harness::sbom);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/tests/data/sbom");
    for e in std::fs::read_dir(&dir).unwrap() {
        ward_collector::fuzz_harness::sbom(&std::fs::read(e.unwrap().path()).unwrap());
    }
}

#[test]
fn versions_corpus() {
    replay("versions", ward_collector::fuzz_harness::versions);
}
