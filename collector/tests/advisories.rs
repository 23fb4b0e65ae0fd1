//! Security advisories (CSAF 2.0), the CISA KEV catalog and OpenEoX end-of-life statements
//! (issue 20): every real CISA medical
//! advisory in `../shared/advisories/public/` imports with the counts read from the files
//! themselves, revisions replace forward and are refused backward, and every malformed file in
//! `tests/data/advisories/` is refused whole, with file:line, leaving the database as it was.
//!
//! The public files are read where they are (the project's `../shared/`, as CI has it), never
//! copied into the repository; a missing directory fails the test rather than skipping it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ward_collector::compliance::version::{membership, Membership};
use ward_collector::import::advisories::{self, Advisory, ProductStatus};
use ward_collector::import::kev;

fn public() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/advisories/public")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/advisories")
        .join(name)
}

fn icsma_files() -> Vec<PathBuf> {
    let dir = public();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the shared advisories must be there)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("icsma-") && n.ends_with(".json"))
        })
        .collect();
    v.sort();
    v
}

/// Per file, read from the file by hand (and cross-checked with the shared README): tracking
/// id, tracking.version, products in the tree, CVEs, remediations over all vulnerabilities.
const COUNTS: &[(&str, &str, &str, usize, usize, usize)] = &[
    ("icsma-22-062-02.json", "ICSMA-22-062-02", "1", 1, 1, 3),
    ("icsma-22-167-01.json", "ICSMA-22-167-01", "1", 4, 2, 6),
    ("icsma-22-251-01.json", "ICSMA-22-251-01", "2", 6, 4, 40),
    ("icsma-23-047-01.json", "ICSMA-23-047-01", "2", 1, 1, 4),
    ("icsma-23-103-01.json", "ICSMA-23-103-01", "1", 1, 1, 6),
    ("icsma-23-117-01.json", "ICSMA-23-117-01", "1", 13, 2, 2),
    ("icsma-23-180-01.json", "ICSMA-23-180-01", "1", 1, 1, 6),
    ("icsma-23-248-01.json", "ICSMA-23-248-01", "1", 1, 2, 4),
    ("icsma-24-058-01.json", "ICSMA-24-058-01", "1", 1, 1, 5),
    ("icsma-24-151-02.json", "ICSMA-24-151-02", "1", 1, 1, 7),
    ("icsma-24-200-01.json", "ICSMA-24-200-01", "2", 1, 2, 8),
    ("icsma-25-030-01.json", "ICSMA-25-030-01", "2", 4, 4, 12),
    ("icsma-25-233-01.json", "ICSMA-25-233-01", "1", 1, 1, 6),
    ("icsma-25-294-01.json", "ICSMA-25-294-01", "1", 2, 3, 15),
];

fn load(name: &str) -> Advisory {
    advisories::load_file(&public().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_public_advisory_imports_with_the_counts_read_from_it() {
    let files = icsma_files();
    assert_eq!(files.len(), COUNTS.len(), "{files:?}");
    for (file, id, version, products, cves, remediations) in COUNTS {
        let a = load(file);
        assert_eq!(a.id, *id, "{file}");
        assert_eq!(a.tracking_version, *version, "{file}");
        assert_eq!(a.products.len(), *products, "{file}: products");
        let with_cve = a.vulnerabilities.iter().filter(|v| v.cve.is_some()).count();
        assert_eq!(with_cve, *cves, "{file}: CVEs");
        let rem: usize = a.vulnerabilities.iter().map(|v| v.remediations.len()).sum();
        assert_eq!(rem, *remediations, "{file}: remediations");
        // The README's facts about all of CISA's ICSMA files.
        for v in &a.vulnerabilities {
            let keys: Vec<_> = v.product_status.keys().copied().collect();
            assert_eq!(keys, [ProductStatus::KnownAffected], "{file}");
            assert!(
                !v.scores.is_empty(),
                "{file}: every CVE has a CVSS v3 score"
            );
            assert!(v.scores.iter().all(|s| s.cvss_version.starts_with("3.")));
        }
        for p in &a.products {
            assert!(p.vendor.is_some() && p.product.is_some(), "{file}: {p:?}");
            assert!(
                p.version.is_some() != p.version_range.is_some(),
                "{file}: {p:?}"
            );
            assert!(p.cpe.is_none() && p.purl.is_none() && p.model_numbers.is_empty());
            assert!(!p.legacy, "{file}: no ICSMA file has a legacy branch");
        }
        assert_eq!(a.publisher, "CISA");
        assert!(a.current_release >= a.initial_release);
    }
}

#[test]
fn the_traps_of_the_public_advisories_are_kept_as_written() {
    // Connex Spot Monitor: vendor "Baxter", only mitigations, the fix 1.52.01 is outside <=1.52.
    let a = load("icsma-24-151-02.json");
    let p = &a.products[0];
    assert_eq!(p.vendor.as_deref(), Some("Baxter"));
    assert_eq!(
        p.product.as_deref(),
        Some("Welch Allyn Connex Spot Monitor (CSM)")
    );
    assert_eq!(p.version_range.as_deref(), Some("<=1.52"));
    let cats: Vec<&str> = a.vulnerabilities[0]
        .remediations
        .iter()
        .map(|r| r.category.as_str())
        .collect();
    assert!(cats.iter().all(|c| *c == "mitigation"), "{cats:?}");
    assert!(a.vulnerabilities[0]
        .remediations
        .iter()
        .any(|r| r.details.contains("Version 1.52.01")));
    assert_eq!(
        membership("1.52.01", "<=1.52", false),
        Membership::NotAffected
    );
    assert_eq!(a.vulnerabilities[0].scores[0].severity, "HIGH");

    // Vue PACS Update A: revision 2, released again 2024-11-21, two CVEs left.
    let a = load("icsma-24-200-01.json");
    assert_eq!(a.current_release.date_naive().to_string(), "2024-11-21");
    let cves: Vec<_> = a
        .vulnerabilities
        .iter()
        .filter_map(|v| v.cve.clone())
        .collect();
    assert_eq!(cves, ["CVE-2021-28165", "CVE-2023-40704"]);

    // Contec CMS8000: three exact firmware strings and vers:all/*; CVE-2024-12248 only on the
    // three firmware products, the others on all four.
    let a = load("icsma-25-030-01.json");
    assert_eq!(a.products[0].vendor.as_deref(), Some("Contec Health"));
    let exact: Vec<_> = a
        .products
        .iter()
        .filter_map(|p| p.version.clone())
        .collect();
    assert_eq!(
        exact,
        [
            "smart3250-2.6.27-wlan2.1.7.cramfs",
            "CMS7.820.075.08/0.74(0.75)",
            "CMS7.820.120.01/0.93(0.95)"
        ]
    );
    assert_eq!(a.products[3].version_range.as_deref(), Some("vers:all/*"));
    for v in &a.vulnerabilities {
        let n = v.product_status[&ProductStatus::KnownAffected].len();
        let want = if v.cve.as_deref() == Some("CVE-2024-12248") {
            3
        } else {
            4
        };
        assert_eq!(n, want, "{:?}", v.cve);
    }
    assert_eq!(
        membership("any firmware", "vers:all/*", false),
        Membership::Affected
    );
    assert!(matches!(
        membership(
            "CMS7.820.120.01/0.93(0.95)",
            "CMS7.820.075.08/0.74(0.75)",
            true
        ),
        Membership::NotComparable { .. }
    ));

    // MinKNOW: two products of one name; 24.06 outside the first range, inside the second.
    let a = load("icsma-25-294-01.json");
    let ranges: Vec<_> = a
        .products
        .iter()
        .map(|p| (p.product.clone().unwrap(), p.version_range.clone().unwrap()))
        .collect();
    assert_eq!(
        ranges,
        [
            ("MinKNOW".to_owned(), "<24.06".to_owned()),
            ("MinKNOW".to_owned(), "<24.11".to_owned())
        ]
    );
    assert_eq!(
        membership("24.06", "<24.06", false),
        Membership::NotAffected
    );
    assert_eq!(membership("24.06", "<24.11", false), Membership::Affected);

    // Hillrom: two companies in the vendor name, model aliases in the product name.
    let a = load("icsma-22-167-01.json");
    assert_eq!(
        a.products[0].vendor.as_deref(),
        Some("Hillrom and ELI, Baxter International Inc.")
    );
    assert_eq!(a.products[2].version_range.as_deref(), Some("<= 2.3.1"));
    assert_eq!(membership("2.3.1", "<= 2.3.1", false), Membership::Affected);

    // Alaris Infusion Central: a two-sided range in CISA's free form.
    let a = load("icsma-23-047-01.json");
    let r = a.products[0].version_range.clone().unwrap();
    assert_eq!(r, ">= 1.1 | <= 1.3.2");
    assert_eq!(membership("1.2", &r, false), Membership::Affected);
    assert_eq!(membership("1.4", &r, false), Membership::NotAffected);

    // B. Braun: part numbers where a version belongs: not comparable, never guessed.
    let a = load("icsma-23-103-01.json");
    let r = a.products[0].version_range.clone().unwrap();
    assert!(matches!(
        membership("053L000092", &r, false),
        Membership::NotComparable { .. }
    ));

    // Baxter Sigma Spectrum: "9.x model 35700BAX3" is no version either.
    let a = load("icsma-22-251-01.json");
    let v = a.products[0].version.clone().unwrap();
    assert_eq!(v, "9.x model 35700BAX3");
    assert!(matches!(
        membership("9.2", &v, true),
        Membership::NotComparable { .. }
    ));
}

#[test]
fn the_cli_imports_the_public_directory_lists_it_back_and_reimports_as_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    // The files, not the directory: it also holds the KEV subset and OpenEoX, and a directory
    // import takes every *.json in it as CSAF.
    let files: Vec<String> = icsma_files()
        .iter()
        .map(|f| f.to_str().unwrap().to_owned())
        .collect();
    let args = |dry: bool| {
        let mut a = vec!["advisories", "import"];
        if dry {
            a.push("--dry-run");
        }
        a.extend(files.iter().map(String::as_str));
        a
    };
    let out = cli_json(&db, &args(false));
    assert_eq!(out["advisories"]["inserted"], COUNTS.len(), "{out}");
    assert!(out["evaluation"].is_object(), "{out}");

    let listed = cli_json(&db, &["advisories", "list"]);
    let parsed: Vec<Advisory> = icsma_files()
        .iter()
        .map(|f| advisories::load_file(f).unwrap())
        .collect();
    let mut want = serde_json::to_value(&parsed).unwrap();
    // The list is by id; the files' names sort the same way.
    want.as_array_mut()
        .unwrap()
        .sort_by_key(|a| a["id"].as_str().unwrap().to_owned());
    assert_eq!(listed, want, "stored and read back whole");

    let again = cli_json(&db, &args(false));
    assert_eq!(again["advisories"]["unchanged"], COUNTS.len(), "{again}");
    assert_eq!(again["advisories"]["inserted"], 0, "{again}");
}

#[test]
fn a_newer_revision_replaces_an_equal_one_is_a_no_op_and_an_older_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let v1 = data("good-acme.json");
    let text = std::fs::read_to_string(&v1).unwrap();
    let v2 = dir.path().join("acme-v2.json");
    std::fs::write(
        &v2,
        text.replace("\"version\": \"1\"", "\"version\": \"2\"")
            .replace("Acme Infusion Pump", "Acme Infusion Pump (Update A)")
            .replace(
                "\"current_release_date\": \"2024-01-01T00:00:00Z\"",
                "\"current_release_date\": \"2024-04-01T00:00:00Z\"",
            ),
    )
    .unwrap();
    let (v1s, v2s) = (v1.to_str().unwrap(), v2.to_str().unwrap());

    let out = cli_json(&db, &["advisories", "import", v1s]);
    assert_eq!(out["advisories"]["inserted"], 1, "{out}");
    let out = cli_json(&db, &["advisories", "import", v2s]);
    assert_eq!(out["advisories"]["replaced"], 1, "{out}");
    let listed = cli_json(&db, &["advisories", "list"]);
    assert_eq!(listed[0]["title"], "Acme Infusion Pump (Update A)");
    assert_eq!(listed[0]["tracking_version"], "2");
    assert_eq!(
        listed[0]["products"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    assert_eq!(listed[0]["products"][1]["legacy"], true, "{listed}");
    let out = cli_json(&db, &["advisories", "import", v2s]);
    assert_eq!(out["advisories"]["unchanged"], 1, "{out}");

    let out = cli(&db, &["advisories", "import", v1s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an older revision imported");
    assert!(
        err.contains("nothing imported")
            && err.contains("\"ACME-2024-001\"")
            && err.contains("is older than the stored revision \"2\""),
        "{err}"
    );
    assert_eq!(cli_json(&db, &["advisories", "list"]), listed);

    // Both revisions in one invocation: which to keep would be a guess.
    let out = cli(&db, &["advisories", "import", v1s, v2s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("import one revision at a time"),
        "{err}"
    );
}

#[test]
fn kev_imports_replaces_whole_and_no_icsma_cve_is_known_exploited() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let subset = public().join("kev-subset.json");
    let out = cli_json(&db, &["kev", "import", subset.to_str().unwrap()]);
    assert_eq!(out["kev"]["inserted"], 21, "{out}");
    let listed = cli_json(&db, &["kev", "list"]);
    assert_eq!(listed["catalog_version"], "2025.08.25");
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 21);
    let mirth = entries
        .iter()
        .find(|e| e["cve"] == "CVE-2023-43208")
        .expect("Mirth Connect is in the subset");
    assert_eq!(mirth["vendor_project"], "NextGen Healthcare");
    assert!(mirth["due_date"].is_string() && mirth["known_ransomware_campaign_use"].is_string());
    assert_eq!(
        serde_json::to_value(kev::load(&subset).unwrap()).unwrap(),
        listed,
        "stored and read back whole"
    );

    // The README: none of the advisories' CVEs is in KEV as of this catalog.
    let kev_cves: std::collections::HashSet<&str> =
        entries.iter().map(|e| e["cve"].as_str().unwrap()).collect();
    let mut icsma_cves = 0;
    for f in icsma_files() {
        for v in advisories::load_file(&f).unwrap().vulnerabilities {
            let cve = v.cve.unwrap();
            assert!(!kev_cves.contains(cve.as_str()), "{cve}");
            icsma_cves += 1;
        }
    }
    assert_eq!(icsma_cves, 26);

    // A newer catalog replaces the old one whole.
    let small = data("good-kev.json");
    let out = cli_json(&db, &["kev", "import", small.to_str().unwrap()]);
    assert_eq!(out["kev"]["inserted"], 2, "{out}");
    assert_eq!(out["kev"]["removed"], 21, "{out}");
    assert_eq!(
        cli_json(&db, &["kev", "list"])["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Every malformed file of tests/data/advisories, with the line its error must name (checked
/// by reading each file: the line holds the faulty value, or ends the object missing a field).
const MALFORMED: &[(&str, &str, u32)] = &[
    ("advisories", "bad-csaf-branch-category.json", 33),
    ("advisories", "bad-csaf-category.json", 3),
    ("advisories", "bad-csaf-cve.json", 66),
    ("advisories", "bad-csaf-date.json", 15),
    ("advisories", "bad-csaf-dates-out-of-order.json", 16),
    ("advisories", "bad-csaf-duplicate-product.json", 53),
    ("advisories", "bad-csaf-empty-title.json", 10),
    ("advisories", "bad-csaf-missing-product-tree.json", 64),
    ("advisories", "bad-csaf-missing-tracking.json", 11),
    ("advisories", "bad-csaf-missing-vulnerabilities.json", 64),
    ("advisories", "bad-csaf-no-products.json", 26),
    ("advisories", "bad-csaf-no-vulnerabilities.json", 64),
    ("advisories", "bad-csaf-not-utf8.json", 10),
    ("advisories", "bad-csaf-remediation-category.json", 92),
    ("advisories", "bad-csaf-remediation-no-products.json", 94),
    ("advisories", "bad-csaf-score.json", 81),
    ("advisories", "bad-csaf-severity.json", 82),
    ("advisories", "bad-csaf-syntax.json", 10),
    ("advisories", "bad-csaf-tracking-version.json", 13),
    ("advisories", "bad-csaf-truncated.json", 90),
    ("advisories", "bad-csaf-unknown-product.json", 74),
    ("advisories", "bad-csaf-version.json", 4),
    ("kev", "bad-kev-count.json", 5),
    ("kev", "bad-kev-cve.json", 23),
    ("kev", "bad-kev-cwe.json", 20),
    ("kev", "bad-kev-date-released.json", 4),
    ("kev", "bad-kev-due-date.json", 15),
    ("kev", "bad-kev-duplicate.json", 23),
    ("kev", "bad-kev-empty.json", 6),
    ("kev", "bad-kev-missing-catalog-version.json", 35),
    ("kev", "bad-kev-missing-due-date.json", 33),
    ("eox", "bad-eox-core-schema.json", 6),
    ("eox", "bad-eox-date.json", 7),
    ("eox", "bad-eox-document-schema.json", 2),
    ("eox", "bad-eox-duplicate.json", 18),
    ("eox", "bad-eox-empty-product.json", 25),
    // serde_json places this one at the close of the core object whose last value is wrong.
    ("eox", "bad-eox-last-updated-tba.json", 23),
    ("eox", "bad-eox-truncated.json", 24),
    ("eox", "bad-eox-unknown-field.json", 10),
];

fn snapshot(db: &Path) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    (
        cli_json(db, &["advisories", "list"]),
        cli_json(db, &["kev", "list"]),
        cli_json(db, &["eox", "list"]),
    )
}

#[test]
fn malformed_files_import_nothing_and_say_file_and_line() {
    let mut on_disk: Vec<String> = std::fs::read_dir(data(""))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("bad-"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = MALFORMED.iter().map(|m| m.1.to_owned()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every malformed file has its expected line here"
    );
    assert!(MALFORMED.len() >= 15);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let good = data("good-acme.json");
    cli_json(&db, &["advisories", "import", good.to_str().unwrap()]);
    cli_json(
        &db,
        &["kev", "import", data("good-kev.json").to_str().unwrap()],
    );
    cli_json(
        &db,
        &["eox", "import", data("good-eox.json").to_str().unwrap()],
    );
    let before = snapshot(&db);
    assert_eq!(before.0.as_array().unwrap().len(), 1);
    assert_eq!(before.2.as_array().unwrap().len(), 2);

    for (cmd, name, line) in MALFORMED {
        let f = data(name);
        let out = cli(&db, &[cmd, "import", f.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} imported:\n{err}");
        assert!(
            err.contains(&format!("{name}:{line}:"))
                || err.contains(&format!("{name}:{line}\n"))
                || err.contains(&format!("{name}:{line}: ")),
            "{name}: the error does not name line {line}:\n{err}"
        );
        assert_eq!(snapshot(&db), before, "{name} changed the database");
    }
}

#[test]
fn one_bad_file_among_good_ones_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let batch = dir.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    std::fs::copy(data("good-acme.json"), batch.join("a-good.json")).unwrap();
    std::fs::copy(data("bad-csaf-cve.json"), batch.join("b-bad.json")).unwrap();
    let real = public().join("icsma-24-151-02.json");
    let out = cli(
        &db,
        &[
            "advisories",
            "import",
            real.to_str().unwrap(),
            batch.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("b-bad.json:66:"), "{err}");
    assert_eq!(
        cli_json(&db, &["advisories", "list"]),
        serde_json::json!([])
    );

    // A directory of the public files holds other JSON too: refused whole, each file named.
    let out = cli(&db, &["advisories", "import", public().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("kev-subset.json:"),
        "{err}"
    );
    assert_eq!(
        cli_json(&db, &["advisories", "list"]),
        serde_json::json!([])
    );

    // --dry-run checks and stores nothing.
    let out = cli(
        &db,
        &[
            "advisories",
            "import",
            "--dry-run",
            real.to_str().unwrap(),
            batch.join("a-good.json").to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("2 advisories (ICSMA-24-151-02, ACME-2024-001), valid"),
        "{said}"
    );
    assert_eq!(
        cli_json(&db, &["advisories", "list"]),
        serde_json::json!([])
    );
}

#[test]
fn fixed_versions_are_read_from_remediation_text_only_where_unambiguous() {
    use std::collections::BTreeSet;
    use ward_collector::compliance::fixes::{stated_fix, Bound, FixText};
    let mut stated = BTreeSet::new();
    let mut ambiguous = BTreeSet::new();
    for f in icsma_files() {
        let a = advisories::load_file(&f).unwrap();
        for v in &a.vulnerabilities {
            for r in &v.remediations {
                match stated_fix(&r.details) {
                    FixText::Stated {
                        version,
                        bound,
                        planned,
                        sentence,
                    } => {
                        assert!(r.details.contains(&sentence));
                        stated.insert((a.id.clone(), version, bound == Bound::LaterThan, planned));
                    }
                    FixText::Ambiguous { versions, .. } => {
                        ambiguous.insert((a.id.clone(), versions.join(" ")));
                    }
                    FixText::NotStated => {}
                }
            }
        }
    }
    let s = |id: &str, v: &str, later: bool, planned: bool| {
        (id.to_owned(), v.to_owned(), later, planned)
    };
    let want: BTreeSet<_> = [
        s("ICSMA-22-062-02", "4.80", false, true),
        s("ICSMA-23-180-01", "1.12", false, false),
        s("ICSMA-23-248-01", "7.2.9.820", false, false),
        s("ICSMA-24-058-01", "14.0.4", false, false),
        s("ICSMA-24-151-02", "1.52.01", false, false),
        s("ICSMA-24-200-01", "12.2.8.410", false, false),
        s("ICSMA-25-233-01", "8.2", false, false),
        s("ICSMA-25-294-01", "24.11", true, false),
    ]
    .into_iter()
    .collect();
    assert_eq!(stated, want);
    let a = |id: &str, v: &str| (id.to_owned(), v.to_owned());
    let want: BTreeSet<_> = [
        a("ICSMA-25-233-01", "8.0 8.1.1"),
        a("ICSMA-25-294-01", "24.11 24.06"),
    ]
    .into_iter()
    .collect();
    assert_eq!(ambiguous, want);
}

#[test]
fn the_configured_alias_file_extends_the_bundled_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let aliases = dir.path().join("aliases.toml");
    std::fs::write(
        &aliases,
        "[[vendor]]\nname = \"GE HealthCare\"\naliases = [\"GEHC Imaging\"]\n\
         source = \"our CMMS spells it so\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[advisories]\nvendor_aliases = {:?}\n",
            aliases.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let table = cli_json(&db, &["--config", cfg_s, "advisories", "vendors"]);
    let ge = table
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "GE HealthCare")
        .unwrap();
    let names: Vec<&str> = ge["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"GE Medical Systems") && names.contains(&"GEHC Imaging"),
        "{names:?}"
    );

    // A name that would be two companies is refused with the file named.
    std::fs::write(
        &aliases,
        "[[vendor]]\nname = \"Philips\"\naliases = [\"CareFusion\"]\n",
    )
    .unwrap();
    let out = cli(&db, &["--config", cfg_s, "advisories", "vendors"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("aliases.toml") && err.contains("CareFusion"),
        "{err}"
    );
}

/// OpenEoX: the OASIS core example imports only when told its product; statements are keyed by
/// vendor/product/version, and `last_updated` orders revisions (later replaces, same is a
/// no-op, earlier is refused with nothing of the invocation stored).
#[test]
fn openeox_statements_import_with_their_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    // A good file beside a malformed one: nothing of either is stored.
    let out = cli(
        &db,
        &[
            "eox",
            "import",
            data("good-eox.json").to_str().unwrap(),
            data("bad-eox-date.json").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad-eox-date.json:7:"));
    assert_eq!(cli_json(&db, &["eox", "list"]), serde_json::json!([]));
    let example = public().join("openeox-example.json");
    let example = example.to_str().unwrap();
    let out = cli(&db, &["eox", "import", example]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vendor and --product"));
    let r = cli_json(
        &db,
        &[
            "eox",
            "import",
            example,
            "--vendor",
            "ACME",
            "--product",
            "Scan 1",
            "--version",
            "<2.0",
        ],
    );
    assert_eq!(r["eox"]["inserted"], 1, "{r}");
    let listed = cli_json(&db, &["eox", "list"]);
    assert_eq!(listed[0]["vendor"], "ACME");
    assert_eq!(listed[0]["version"], "<2.0");
    assert_eq!(listed[0]["end_of_sales"], "2025-09-01T23:59:59Z");
    assert_eq!(listed[0]["end_of_life"], "2025-12-31T12:00:00Z");

    let good = data("good-eox.json");
    let r = cli_json(&db, &["eox", "import", good.to_str().unwrap()]);
    assert_eq!(
        (r["eox"]["inserted"].as_u64(), r["eox"]["replaced"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    let r = cli_json(&db, &["eox", "import", good.to_str().unwrap()]);
    assert_eq!(r["eox"]["unchanged"], 2, "{r}");
    let text = std::fs::read_to_string(&good).unwrap();
    let later = dir.path().join("later.json");
    std::fs::write(
        &later,
        text.replacen("2025-01-15T00:00:00Z", "2025-03-01T00:00:00Z", 1)
            .replacen(
                "\"end_of_life\": \"2025-12-31T00:00:00Z\"",
                "\"end_of_life\": \"2026-06-30T00:00:00Z\"",
                1,
            ),
    )
    .unwrap();
    let r = cli_json(&db, &["eox", "import", later.to_str().unwrap()]);
    assert_eq!(
        (
            r["eox"]["replaced"].as_u64(),
            r["eox"]["unchanged"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
    let before = cli_json(&db, &["eox", "list"]);
    // The original again: its first statement is older than the stored one, so nothing of it
    // is stored (not even the unchanged second one).
    let out = cli(&db, &["eox", "import", good.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("an older statement never replaces a newer one"),
        "{err}"
    );
    assert_eq!(cli_json(&db, &["eox", "list"]), before);
    let stored = before
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["version"] == "<3.0")
        .unwrap();
    assert_eq!(stored["end_of_life"], "2026-06-30T00:00:00Z");
}
