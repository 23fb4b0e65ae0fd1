//! The ward collector as a library: ingest of agent observations, the inventory store, contract
//! and asset import, linking and compliance flags. The binary (`main.rs`) wires them up.
#![forbid(unsafe_code)]

// Grouped by what they do; ARCHITECTURE.md's code map follows this list.
pub mod access;
pub mod alerts;
pub mod commands;
pub mod compliance;
pub mod config;
pub mod console;
pub mod demo;
pub mod evaluation;
pub mod fuzz_harness;
pub mod import;
pub mod ingest;
pub mod mqtt;
pub mod serve;
pub mod store;

#[cfg(test)]
mod no_protocol_names {
    //! `ward-protocols` is the only crate that names protocol fields: collector logic asks a
    //! field or protocol for its role (identity, attribute, vendor visibility, patient data)
    //! instead of matching its name, so a new protocol or field needs no collector change and
    //! cannot be silently missed. Test modules and comments may name them (test data, docs).

    use std::path::{Path, PathBuf};

    use ward_protocols::{Field, Protocol};

    /// Source lines with `#[cfg(test)]` items and comments removed.
    fn logic_lines(text: &str) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        let mut lines = text.lines().enumerate();
        while let Some((n, line)) = lines.next() {
            let t = line.trim_start();
            if t.starts_with("#[cfg(test)]") {
                // Skip the item that follows: to its `;` or its closing brace.
                let mut depth = 0i64;
                let mut opened = false;
                for (_, l) in lines.by_ref() {
                    for c in l.chars() {
                        match c {
                            '{' => {
                                depth += 1;
                                opened = true;
                            }
                            '}' => depth -= 1,
                            _ => {}
                        }
                    }
                    if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                        break;
                    }
                }
                continue;
            }
            // Comments, and `Debug` builders' field names (Rust identifiers such as a broker
            // config's `tls`, not wire protocols).
            if t.starts_with("//") || t.starts_with(".field(\"") {
                continue;
            }
            out.push((n + 1, line));
        }
        out
    }

    /// Logic that spells a protocol's wire name for something else, reviewed: the `http`/`https`
    /// URL schemes of webhooks and the collector's own `[http]` config section (issue 17 made
    /// `http` a protocol name).
    const NOT_A_PROTOCOL: &[&str] = &[
        "Some(\"http\") => false",
        "if https { \"https\" } else { \"http\" }",
        "\"http.expensive_concurrency / --api-expensive-concurrency",
    ];

    /// The wire names a line of logic must not contain.
    fn offending(line: &str) -> Option<String> {
        if NOT_A_PROTOCOL.iter().any(|ok| line.contains(ok)) {
            return None;
        }
        for p in Protocol::ALL {
            let n = p.name();
            for pat in [
                format!("\"{n}\""),
                format!("'{n}'"),
                format!("\"{n}."),
                format!("'{n}."),
            ] {
                if line.to_ascii_lowercase().contains(&pat) {
                    return Some(pat);
                }
            }
        }
        Field::ALL
            .iter()
            .map(|f| f.name())
            .find(|name| line.contains(name))
            .map(str::to_owned)
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn collector_logic_names_no_protocol_or_field() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        assert!(files.len() > 20, "{files:?}");
        let mut found = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for (n, line) in logic_lines(&text) {
                if let Some(what) = offending(line) {
                    found.push(format!("{}:{n}: {what}: {}", f.display(), line.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "collector logic names protocols or fields as strings; ask the field or protocol \
             for its role instead (ward_protocols::evidence):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_scan_finds_what_it_looks_for_and_skips_tests_and_comments() {
        let text = r#"
fn a(s: &str) -> bool { s == "hl7" }
// a comment naming "dicom" is documentation
const X: &str = "ok";
let q = "SELECT 1 WHERE app = 'dhcp'";
let f = d.current("dicom.manufacturer");
#[cfg(test)]
mod tests {
    fn t() { assert_eq!(x, "dicom"); }
}
fn b() -> &'static str { "Dicom" }
"#;
        let hits: Vec<_> = logic_lines(text)
            .into_iter()
            .filter_map(|(n, l)| offending(l).map(|w| (n, w)))
            .collect();
        assert_eq!(
            hits,
            [
                (2, "\"hl7\"".to_owned()),
                (5, "'dhcp'".to_owned()),
                (6, "\"dicom.".to_owned()),
                (11, "\"dicom\"".to_owned()),
            ]
        );
    }
}
