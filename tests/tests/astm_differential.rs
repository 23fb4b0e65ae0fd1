//! Differential test for ASTM (issue 18). Wireshark has no ASTM E1381/E1394 dissector
//! (`tshark -G protocols` lists none, 4.x), so the independent reading is the PyPI `astm`
//! package's own codec (the one the fixture's peers speak) over the TCP streams tshark
//! reassembles: `tests/captures/build_manifest.py`'s `astm_facts`, which splits the frames,
//! verifies each checksum with `astm.codec.make_checksum`, joins intermediate (ETB) frames and
//! decodes every record with `astm.codec.decode_record`. On every fixture with ASTM facts the
//! set of values ward extracts for each ASTM field is exactly that reading's; on every other
//! fixture and public capture ward finds no ASTM at all, so the probe steals nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ward_tests::{fact_set, fixture_path, manifest, run_capture};

type FieldSets = BTreeMap<String, BTreeSet<String>>;

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// The `astm` codec's reading of `file`, as (field, value) sets.
fn astm_codec(file: &Path) -> FieldSets {
    let script = "import json, sys\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  import build_manifest as b\n\
                  p = sys.argv[2]\n\
                  print(json.dumps(b.astm_facts(p, b.tcp_streams(p))))\n";
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(captures_dir())
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{python} is required for this test: {e}"));
    assert!(
        out.status.success(),
        "the astm codec failed on {} (scripts/test.sh installs the `astm-2025` package and \
         tshark): {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pairs: Vec<(String, String)> =
        serde_json::from_slice(&out.stdout).expect("astm_facts prints a JSON list of pairs");
    let mut sets = FieldSets::new();
    for (f, v) in pairs {
        sets.entry(f).or_default().insert(v);
    }
    sets
}

fn ours(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if f.field.starts_with("astm.") {
            sets.entry(f.field).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn astm_fields_equal_the_astm_codecs_and_appear_nowhere_else() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        let mine = ours(&file);
        if fx.facts.iter().any(|f| f.field.starts_with("astm.")) {
            let theirs = astm_codec(&file);
            if theirs.is_empty() {
                problems.push(format!("{}: the astm codec decoded no Header", fx.file));
            }
            if mine != theirs {
                problems.push(format!(
                    "{}: ASTM differs\n  ward:       {mine:?}\n  astm codec: {theirs:?}",
                    fx.file
                ));
            }
            compared += 1;
        } else if !mine.is_empty() {
            problems.push(format!(
                "{}: ASTM facts where none belong: {mine:?}",
                fx.file
            ));
        }
    }
    assert!(compared >= 1, "no fixture with ASTM facts");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
