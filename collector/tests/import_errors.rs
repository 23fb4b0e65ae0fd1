//! Every malformed contract and asset file, through the real CLI: a non-zero exit, an error
//! naming the file and line, and a database exactly as it was (all-or-nothing import). The
//! number of malformed files is the number ARCHITECTURE.md documents (a file added or removed
//! without updating it fails the test).

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

fn bad_files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bad-"))
        })
        .collect();
    v.sort();
    v
}

fn snapshot(db: &Path) -> (String, String, String) {
    (
        cli_json(db, &["contracts", "list"]).to_string(),
        cli_json(db, &["assets", "list"]).to_string(),
        cli_json(db, &["status"]).to_string(),
    )
}

/// The counts ARCHITECTURE.md gives for this test: (all, contract, asset) malformed files.
fn documented_counts() -> (usize, usize, usize) {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .unwrap();
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let re = regex::Regex::new(
        r"`tests/import_errors\.rs` — each of the (\d+) malformed files in `tests/data/` \((\d+) contract, (\d+) asset files\)",
    )
    .unwrap();
    let c = re.captures(&flat).expect(
        "ARCHITECTURE.md names the number of malformed files tests/import_errors.rs checks",
    );
    let n = |i: usize| c[i].parse::<usize>().unwrap();
    (n(1), n(2), n(3))
}

#[test]
fn malformed_files_import_nothing_and_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let good_c = data("contracts").join("good.yaml");
    let good_a = data("assets").join("good.csv");
    cli_json(&db, &["contracts", "import", good_c.to_str().unwrap()]);
    cli_json(&db, &["assets", "import", good_a.to_str().unwrap()]);
    let before = snapshot(&db);
    assert!(before.0.len() > 10 && before.1.len() > 10);

    let (documented, documented_contracts, documented_assets) = documented_counts();
    let (contracts, assets) = (bad_files("contracts"), bad_files("assets"));
    assert_eq!(
        (contracts.len(), assets.len()),
        (documented_contracts, documented_assets),
        "malformed (contract, asset) files in tests/data differ from what ARCHITECTURE.md documents"
    );
    assert_eq!(documented, documented_contracts + documented_assets);
    let mut checked = 0;
    for (kind, files) in [("contracts", contracts), ("assets", assets)] {
        for f in files {
            let out = cli(&db, &[kind, "import", f.to_str().unwrap()]);
            let err = String::from_utf8_lossy(&out.stderr);
            let name = f.file_name().unwrap().to_str().unwrap();
            assert!(!out.status.success(), "{name} imported:\n{err}");
            let located = err.contains(&format!("{name}:"))
                && err
                    .split(&format!("{name}:"))
                    .nth(1)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            assert!(located, "{name}: error does not say file:line:\n{err}");
            assert_eq!(snapshot(&db), before, "{name} changed the database");
            checked += 1;
        }
    }
    assert_eq!(
        checked, documented,
        "every documented malformed file was checked"
    );
}
