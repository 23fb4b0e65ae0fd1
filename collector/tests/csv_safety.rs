//! CSV in and out, through the real CLI (hospital security review, issue 12):
//!
//! - an import CSV whose quoting is broken (a quote never closed, a stray quote) is refused,
//!   naming the file and the line where the quote opened, and imports nothing — before, the
//!   `csv` crate read an unclosed quote as running to the end of the file, so the rows after it
//!   vanished into one cell of a "valid" import;
//! - `report … --format csv` never writes a cell a spreadsheet would run as a formula: values
//!   from agents and imports beginning with `=`, `+`, `-`, `@`, tab or carriage return (also
//!   after leading whitespace) are prefixed with `'` (OWASP CSV injection).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ward_protocols::schema::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, Kind, MacKind, Observation, Seen, SCHEMA,
};
use ward_protocols::MacAddr;

fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

fn snapshot(db: &Path) -> (String, String, String) {
    (
        cli_json(db, &["contracts", "list"]).to_string(),
        cli_json(db, &["assets", "list"]).to_string(),
        cli_json(db, &["status"]).to_string(),
    )
}

#[test]
fn broken_csv_quoting_imports_nothing_and_names_the_line_the_quote_opened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    cli_json(
        &db,
        &[
            "contracts",
            "import",
            data("contracts/good.yaml").to_str().unwrap(),
        ],
    );
    cli_json(
        &db,
        &[
            "assets",
            "import",
            data("assets/good.csv").to_str().unwrap(),
        ],
    );
    let before = snapshot(&db);

    // The reviewer's file: three rows, the second opens a quote that is never closed.
    let three_rows = dir.path().join("three-rows.csv");
    std::fs::write(
        &three_rows,
        "id,supplier,products,notes\n\
         C-9001,Acme,X*,one\n\
         C-9002,Acme,Y*,\"two\n\
         C-9003,Acme,Z*,three\n",
    )
    .unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "contracts",
            three_rows,
            "three-rows.csv:3:16: unterminated quote",
        ),
        (
            "contracts",
            data("contracts/bad-unterminated-quote.csv"),
            "bad-unterminated-quote.csv:3:34: unterminated quote",
        ),
        (
            "contracts",
            data("contracts/bad-eof-in-quote.csv"),
            "bad-eof-in-quote.csv:3:26: unterminated quote",
        ),
        (
            "contracts",
            data("contracts/bad-stray-quote.csv"),
            "bad-stray-quote.csv:3:31: stray quote",
        ),
        (
            "contracts",
            data("contracts/bad-text-after-quote.csv"),
            "bad-text-after-quote.csv:3:27: text after the closing quote",
        ),
        (
            "assets",
            data("assets/bad-unterminated-quote.csv"),
            "bad-unterminated-quote.csv:3:53: unterminated quote",
        ),
        (
            "assets",
            data("assets/bad-eof-in-quote.csv"),
            "bad-eof-in-quote.csv:3:35: unterminated quote",
        ),
        (
            "assets",
            data("assets/bad-stray-quote.csv"),
            "bad-stray-quote.csv:3:28: stray quote",
        ),
        (
            "assets",
            data("assets/bad-text-after-quote.csv"),
            "bad-text-after-quote.csv:3:30: text after the closing quote",
        ),
    ];
    for (kind, file, want) in cases {
        let out = cli(&db, &[kind, "import", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} imported:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(err.contains(want), "want {want:?} in:\n{err}");
        assert_eq!(
            snapshot(&db),
            before,
            "{} changed the database",
            file.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CSV injection

/// Values a spreadsheet would run: formulas, DDE, and the same behind tab, CR or spaces.
const HOSTILE_MANUFACTURER: &str = "=HYPERLINK(\"http://x\",\"click\")";
const HOSTILE_MODEL: &str = "@SUM(1+1)*cmd|' /C calc'!A0";
const HOSTILE_SOFTWARE: &str = "+cmd|' /C calc'!A0";

fn device(mac: [u8; 6], ip: u8, manufacturer: &str, model: &str, software: &str) -> DeviceRecord {
    let seen = Seen {
        first_us: 1_700_000_000_000_000,
        last_us: 1_700_000_001_000_000,
        count: 3,
    };
    let mac = MacAddr(mac);
    DeviceRecord {
        key: format!("mac:{mac}@10"),
        mac: Some(mac),
        vlan: Some(10),
        mac_kind: Some(MacKind::Universal),
        oui_vendor: None,
        seen,
        addresses: vec![AddressRecord {
            ip: std::net::IpAddr::from([10, 0, 0, ip]),
            source: "ip".into(),
            seen,
        }],
        facts: vec![],
        services_offered: vec![],
        services_used: vec![],
        roles: vec![],
        classification: Some(ClassificationRecord {
            manufacturer: Some(manufacturer.into()),
            model: Some(model.into()),
            device_type: "ct".into(),
            software_version: Some(software.into()),
            confidence: 0.9,
            matches: vec![],
            candidates: vec![],
            explanation: None,
        }),
    }
}

/// Whether a spreadsheet would treat `cell` as a formula (OWASP): it begins with `=`, `+`, `-`,
/// `@`, tab or CR, also after leading whitespace.
fn runs_as_formula(cell: &str) -> bool {
    cell.starts_with(['\t', '\r']) || cell.trim_start().starts_with(['=', '+', '-', '@'])
}

fn csv_report(db: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let mut a = vec!["report"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "csv"]);
    let out = cli(db, &a);
    assert!(
        out.status.success(),
        "report {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(out.stdout.as_slice());
    r.records()
        .map(|rec| {
            rec.unwrap_or_else(|e| panic!("report {args:?}: not CSV: {e}"))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn csv_reports_never_write_a_formula() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");

    let observation = Observation {
        schema: SCHEMA.into(),
        site: "north".into(),
        agent_id: "agent-1".into(),
        instance: "i-1".into(),
        seq: 1,
        kind: Kind::Snapshot,
        time_us: 1_700_000_001_000_000,
        devices: vec![
            device(
                [0, 0x1b, 0x21, 0, 0, 7],
                7,
                HOSTILE_MANUFACTURER,
                HOSTILE_MODEL,
                HOSTILE_SOFTWARE,
            ),
            device([0, 0x1b, 0x21, 0, 0, 8], 8, "\t=1+1", "  =2+2", "\r-3+3"),
            device([0, 0x1b, 0x21, 0, 0, 9], 9, " @A1", "-", "\n+1"),
        ],
    };
    let jsonl = d.join("agent.jsonl");
    std::fs::write(
        &jsonl,
        format!("{}\n", serde_json::to_string(&observation).unwrap()),
    )
    .unwrap();
    cli_json(&db, &["ingest", jsonl.to_str().unwrap()]);

    // Imported values reach the reports too: asset tags and contract ids in the device rows,
    // contract ids in flags.
    let contracts = d.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: \"=C-EVIL\"\n  supplier: \"@Supplier\"\n  products: [\"*\"]\n  end_of_support: 2020-01-01\n",
    )
    .unwrap();
    cli_json(&db, &["contracts", "import", contracts.to_str().unwrap()]);
    let assets = d.join("assets.csv");
    std::fs::write(
        &assets,
        "Asset Tag,Manufacturer,MAC,Contract\n\
         +A-EVIL,\"=HYPERLINK(\"\"http://x\"\")\",00:1b:21:00:00:07,=C-EVIL\n\
         -A-2,x,00:1b:21:00:00:08,=C-EVIL\n",
    )
    .unwrap();
    cli_json(&db, &["assets", "import", assets.to_str().unwrap()]);

    let reports: Vec<Vec<&str>> = vec![
        vec!["devices"],
        vec!["flags", "--status", "all"],
        vec!["coverage"],
        vec!["installed-base"],
        vec!["devices", "--vendor", "=HYPERLINK*"],
        vec!["installed-base", "--vendor", "=HYPERLINK*"],
        vec!["flags", "--vendor", "=HYPERLINK*", "--status", "all"],
    ];
    let mut all_cells: Vec<String> = Vec::new();
    for args in &reports {
        let rows = csv_report(&db, args);
        assert!(rows.len() > 1, "report {args:?} is empty: {rows:?}");
        for row in &rows {
            for cell in row {
                assert!(
                    !runs_as_formula(cell),
                    "report {args:?}: cell {cell:?} would run as a formula in {row:?}"
                );
            }
        }
        all_cells.extend(rows.into_iter().flatten());
    }
    // Neutralised, not dropped: the value is there after the quote. (Ingest may replace the
    // control characters of "\t=1+1" and "\r-3+3"; either way no cell above ran as a formula,
    // and `report::csv_cell`'s unit test covers the tab and CR prefixes themselves.)
    for want in [
        format!("'{HOSTILE_MANUFACTURER}"),
        format!("'{HOSTILE_MODEL}"),
        format!("'{HOSTILE_SOFTWARE}"),
        "'  =2+2".to_owned(),
        "' @A1".to_owned(),
        "'-".to_owned(),
    ] {
        assert!(
            all_cells.contains(&want),
            "{want:?} missing from the reports"
        );
    }
    assert!(
        all_cells.iter().any(|c| c.starts_with("'+A-EVIL")),
        "asset tag"
    );
    assert!(
        all_cells.iter().any(|c| c.starts_with("'=C-EVIL")),
        "contract id"
    );

    // Numbers the report writes itself stay numbers.
    let coverage = csv_report(&db, &["coverage"]);
    assert_eq!(coverage[0], ["measure", "value"]);
    for row in &coverage[1..] {
        assert!(row[1].parse::<u64>().is_ok(), "{row:?}");
    }
    assert!(coverage.iter().any(|r| r[0] == "devices" && r[1] == "3"));
    let devices = csv_report(&db, &["devices"]);
    let head = &devices[0];
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    for row in &devices[1..] {
        assert!(row[col("id")].parse::<u64>().is_ok(), "{row:?}");
        assert!(row[col("open_flags")].parse::<u64>().is_ok(), "{row:?}");
        assert!(
            row[col("last_seen")].starts_with("2023-"),
            "dates stay as they are: {row:?}"
        );
    }
    let ib = csv_report(&db, &["installed-base", "--vendor", "=HYPERLINK*"]);
    assert_eq!(ib.len(), 2, "one manufacturer, model, version: {ib:?}");
    assert_eq!(ib[1][3], "1", "{ib:?}");
}
