//! Shared helpers for ward's end-to-end tests: the fixture manifest, and running a capture
//! through the agent's offline pipeline.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use ward_agent::pipeline::{evidence_from_capture, CaptureResult};
use ward_protocols::dissect::DissectorConfig;

/// `tests/fixtures/`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `../shared/captures/public/` beside the checkout: third-party captures, read where they are
/// rather than copied into the repository (present for every developer and in CI).
pub fn public_captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/public")
}

/// Where a manifest entry's capture lives: `public/...` entries are third-party captures read
/// from [`public_captures_dir`] (never copied into the repository); the rest are under
/// [`fixtures_dir`]. Panics with a clear message if a public capture is missing.
pub fn fixture_path(file: &str) -> PathBuf {
    match file.strip_prefix("public/") {
        Some(name) => {
            let path = public_captures_dir().join(name);
            assert!(
                path.exists(),
                "public capture {} is missing: third-party captures are read from \
                 ../shared/captures/public/ beside the checkout",
                path.display()
            );
            path
        }
        None => fixtures_dir().join(file),
    }
}

/// One expected fact.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedFact {
    /// Field name, e.g. `dicom.calling_ae`.
    pub field: String,
    /// Exact value.
    pub value: String,
}

/// One fixture capture and what must (and must not) come out of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// Path relative to `tests/fixtures/`, or `public/NAME` for a capture in
    /// `../shared/captures/public/` (see [`fixture_path`]).
    pub file: String,
    /// Link type as capinfos names it.
    #[serde(default)]
    pub linktype: Option<String>,
    /// Facts a correct extractor finds.
    #[serde(default)]
    pub facts: Vec<ExpectedFact>,
    /// Patient-data strings placed in (or found in) the capture: must never be extracted.
    /// Tests look for them with `ward_canary::Scanner` (every component, prefixes, encodings).
    #[serde(default)]
    pub canaries: Vec<String>,
    /// Why a capture has no canaries: it carries no patient data at all (the manifest builder
    /// checks the wire for data-set PDVs, patient element tags and HL7 patient segments).
    #[serde(default)]
    pub no_patient_data: Option<String>,
    /// VLAN ids the evidence must carry.
    #[serde(default)]
    pub vlans: Vec<u16>,
    /// The devices the capture holds, as a clinical engineer names them from the wire (from
    /// `tests/captures/expected-devices.toml`).
    #[serde(default)]
    pub devices: Vec<ExpectedDevice>,
}

/// One device a capture holds, and what it is: the truth classification is measured against.
#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedDevice {
    /// The agent's device key (`mac:…`, `mac:…@vlan`, `ip:…`).
    pub key: String,
    /// Device type, or `mixed` for a test-harness host that is several systems at once.
    #[serde(rename = "type")]
    pub device_type: String,
    /// Manufacturer, where the wire names it.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model, where the wire names it.
    #[serde(default)]
    pub model: Option<String>,
    /// Why this type, when not obvious.
    #[serde(default)]
    pub note: Option<String>,
}

/// `tests/fixtures/manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Every fixture.
    pub fixtures: Vec<Fixture>,
}

/// Loads the manifest.
pub fn manifest() -> Manifest {
    let path = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Runs one capture file through the agent's pipeline with default limits.
pub fn run_capture(path: &Path) -> CaptureResult {
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    evidence_from_capture(f, DissectorConfig::default())
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The distinct (field, value) pairs of a capture's evidence.
pub fn fact_set(result: &CaptureResult) -> BTreeSet<ExpectedFact> {
    result
        .evidence
        .iter()
        .map(|e| ExpectedFact {
            field: e.field.name().to_owned(),
            value: e.value.clone(),
        })
        .collect()
}

/// Every TCP payload of a capture, per direction, concatenated in capture order (good enough
/// for the in-order fixtures; used to hand whole streams to decoders in robustness tests).
pub fn tcp_streams(path: &Path) -> Vec<Vec<u8>> {
    use std::collections::BTreeMap;
    use ward_protocols::frame::{self, Net, Transport};
    let mut streams: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    ward_agent::pcap::read_packets(f, |p| {
        let Some(link) = p.link else { return };
        let Ok(fr) = frame::decode(link, p.data) else {
            return;
        };
        if let (Net::Ip { src, dst, .. }, Transport::Tcp(t)) = (fr.net, fr.transport) {
            if !t.payload.is_empty() {
                let key = format!("{src}:{}>{dst}:{}", t.src_port, t.dst_port);
                streams.entry(key).or_default().extend_from_slice(t.payload);
            }
        }
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    streams.into_values().collect()
}

/// Every frame of a capture with its link type.
pub fn frames(path: &Path) -> Vec<(ward_protocols::frame::LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    ward_agent::pcap::read_packets(f, |p| {
        if let Some(link) = p.link {
            out.push((link, p.data.to_vec()));
        }
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    out
}

/// `tshark -n -r FILE ARGS…`'s standard output: the oracle of the differential tests. A missing
/// tshark or a failed run fails the test (scripts/test.sh installs it), never skips it.
pub fn tshark<S: AsRef<std::ffi::OsStr>>(args: &[S], file: &Path) -> String {
    let out = std::process::Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is required for this test (scripts/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("tshark output: {e}"))
}
