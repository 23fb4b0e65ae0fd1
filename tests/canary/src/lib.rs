//! The patient-canary scanner every ward test uses (issue 13).
//!
//! Fixtures carry made-up patients ("canaries": `CANARYFAMILY^CANARYGIVEN`, `CANARY-MRN-0001`,
//! `MOUSE^MICKEY`, …). A [`Scanner`] holds them and proves a buffer — an MQTT message, a spool
//! file, a log, a database — holds none of them, in any encoding the code could plausibly have
//! produced:
//!
//! - each canary is split into **components** at HL7/DICOM separators and white space
//!   (`CANARYFAMILY^CANARYGIVEN` → `CANARYFAMILY`, `CANARYGIVEN`); every component is searched
//!   **case-insensitively**, and so is **every prefix of 6 or more characters** of it (a
//!   truncated `CANARYF…` is a leak too);
//! - the buffer is searched raw and after decoding **hex** (plain, spaced, `0x`, `\x`),
//!   **decimal and hex byte lists** (`[67, 65, 78, 65, 82, 89]`), **base64** (standard,
//!   URL-safe, wrapped), **JSON `\u` escapes**, **percent-encoding**, **HL7 escape sequences**
//!   (`\F\ \S\ \T\ \R\ \E\ \Xhh\`), HTML character references and **UTF-16** — and each of those
//!   decoded once more (base64 of JSON-escaped text, doubly escaped JSON). Every run of an
//!   encoding is decoded once: the work is a small constant times the buffer's size.
//!
//! A component must be distinctive to be searched: shorter than 5 characters, or a common word
//! (`PATIENT` in `CANARYADT^PATIENT`, which also occurs in `patient_monitor`), it is left out
//! and listed by [`Scanner::skipped`]; a prefix that is part of a common or ward word
//! (`WORKLI…` of `WORKLISTPATIENT` in `worklist_server`) is lengthened until it is not. Numbers
//! and dates are matched whole, never by prefix (a prefix of `19700101` is a timestamp).
//!
//! A [`Finding`] names the component, where it came from, the encoding and the byte offset; it
//! never quotes the buffer, so a failing test does not print patient data around the match.
//!
//! ```
//! let scanner = ward_canary::Scanner::new().with_values("example", ["CANARYFAMILY^CANARYGIVEN"]);
//! scanner.assert_clean("a clean message", b"{\"device\":\"ct\"}");
//! let leak = b"payload bytes: [67, 65, 78, 65, 82, 89, 70]";
//! let f = &scanner.scan(leak)[0];
//! assert_eq!(f.encoding, "decimal byte list");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

mod decode;
pub mod json;

/// What kind of value a canary is; decides how it is split and matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text (a manifest string): split into components; numbers matched whole.
    Text,
    /// A person's name (`FAMILY^GIVEN`): split into components.
    Name,
    /// An identifier (MRN, accession number): one component, never split at `-`.
    Identifier,
    /// A date (birth date): matched whole only.
    Date,
}

/// A component that is searched.
#[derive(Debug, Clone)]
pub struct Component {
    /// Where the canary came from (a fixture file, a test).
    pub source: String,
    /// The component as given.
    pub text: String,
    /// The kind of value it came from.
    pub kind: Kind,
    /// Characters that must match (the rest of the component may be cut off). Equal to the
    /// component's length for numbers and dates.
    pub min_match: usize,
}

/// A component that is not searched, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where the canary came from.
    pub source: String,
    /// The component.
    pub text: String,
    /// Why it cannot be told apart from ordinary output.
    pub reason: &'static str,
}

/// A canary found in a buffer. Holds no byte of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The component found (the canary, not the haystack).
    pub component: String,
    /// Where the canary came from.
    pub source: String,
    /// How many of the component's characters matched (≥ its `min_match`).
    pub matched: usize,
    /// `raw`, or the decoding(s) that revealed it, outermost first (`base64 > JSON escapes`).
    pub encoding: String,
    /// Byte offset in the scanned buffer where the (encoded) match starts.
    pub offset: usize,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "patient canary {:?} (from {}; {} of its {} characters matched) found {} at byte offset {}",
            self.component,
            self.source,
            self.matched,
            self.component.chars().count(),
            if self.encoding == "raw" {
                "as plain text".to_owned()
            } else {
                format!("encoded as {}", self.encoding)
            },
            self.offset
        )
    }
}

/// Words ward writes, or that canary parts share with ordinary clinical and network text. A
/// component contained in one of these is not searched; a prefix contained in one is
/// lengthened. Lower case.
pub const COMMON_WORDS: &[&str] = &[
    // Generic name parts of generated canaries (`CANARYADT^PATIENT`, `CANARYKIN^RELATIVE`).
    "patient",
    "patients",
    "person",
    "persons",
    "relative",
    "relatives",
    "street",
    "town",
    "family",
    "given",
    "guarantor",
    "insured",
    "insurance",
    "comment",
    "value",
    "values",
    // Clinical and protocol vocabulary in ward's output, rules and logs.
    "worklist",
    "worklist_server",
    "worklist_scu",
    "worklist_scp",
    "dicompdu",
    "dicom",
    "monitor",
    "monitoring",
    "patient_monitor",
    "hospital",
    "physician",
    "accession",
    "modality",
    "station",
    "manufacturer",
    "medical",
    "device",
    "devices",
    "observation",
    "observations",
    "server",
    "client",
    "scanner",
    "infusion",
    "ventilator",
    "laboratory",
    "radiology",
    "imaging",
    "general",
    "clinical",
    "software",
    "version",
    "serial",
    "vendor",
    "sending",
    "receiving",
    "application",
    "facility",
    "message",
    "segment",
    "association",
    "implementation",
    "storage",
    "verification",
    "unknown",
    "default",
];

/// Shortest prefix searched.
pub const MIN_PREFIX: usize = 6;
/// Shortest component searched (a 5-letter name is searched whole).
pub const MIN_COMPONENT: usize = 5;
/// Shortest number or date searched (whole).
pub const MIN_NUMBER: usize = 6;
/// Decoding layers applied to a buffer (base64 of JSON-escaped text is two).
pub const MAX_LAYERS: usize = 2;
/// Findings kept per scan.
pub const MAX_FINDINGS: usize = 64;

/// Lower-case ASCII table.
fn lower(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

#[derive(Debug, Clone)]
struct Needle {
    bytes: Vec<u8>,
    /// Components this needle stands for (it is the searched prefix of each).
    comps: Vec<usize>,
}

/// The canary scanner. Build it from the fixture manifest ([`Scanner::fixtures`],
/// [`Scanner::from_manifest`]) or from values ([`Scanner::with_values`],
/// [`Scanner::add`]), then [`scan`](Scanner::scan) or [`assert_clean`](Scanner::assert_clean).
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    comps: Vec<Component>,
    lowered: Vec<Vec<u8>>,
    skipped: Vec<Skipped>,
    needles: Vec<Needle>,
    by_first: Vec<Vec<u32>>,
    longest: usize,
}

/// Splits a value into components.
fn components(kind: Kind, value: &str) -> Vec<&str> {
    let seps: &[char] = match kind {
        Kind::Identifier | Kind::Date => &[],
        Kind::Text | Kind::Name => &['^', '&', '~', '|', '\\', ',', ';', '/', '='],
    };
    value
        .split(|c: char| seps.contains(&c) || (kind != Kind::Date && c.is_whitespace()))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

impl Scanner {
    /// An empty scanner (it refuses to [`assert_clean`](Scanner::assert_clean) until it holds a
    /// canary: a check with nothing to look for proves nothing).
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// The canaries of `tests/fixtures/manifest.json`, all fixtures together.
    pub fn fixtures() -> Scanner {
        Scanner::from_manifest(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/manifest.json"),
        )
    }

    /// The canaries of a fixture manifest, all fixtures together; panics (naming the file) if it
    /// cannot be read or holds no canary.
    pub fn from_manifest(path: impl AsRef<Path>) -> Scanner {
        let path = path.as_ref();
        Scanner::try_from_manifest(path, None)
            .unwrap_or_else(|e| panic!("canary manifest {}: {e}", path.display()))
    }

    /// The canaries of one fixture (`file` as the manifest names it).
    pub fn from_manifest_fixture(path: impl AsRef<Path>, file: &str) -> Scanner {
        let path = path.as_ref();
        Scanner::try_from_manifest(path, Some(file))
            .unwrap_or_else(|e| panic!("canary manifest {}: {e}", path.display()))
    }

    /// Reads a manifest: `{"fixtures": [{"file": …, "canaries": [...]}], "canaries": [...]}`.
    /// A canary is a string (split into components) or a record object whose members are
    /// strings: `family`, `given`, `name`, `physician` (names), `mrn`, `accession`, `id`
    /// (identifiers), `birth_date`/`dob` (dates), anything else text.
    pub fn try_from_manifest(path: &Path, only: Option<&str>) -> Result<Scanner, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let doc = json::parse(&text)?;
        let mut s = Scanner::new();
        let mut add_list = |source: &str, list: Option<&json::Value>| -> Result<(), String> {
            for c in list.and_then(json::Value::as_array).unwrap_or_default() {
                match c {
                    json::Value::String(v) => s.add(source, Kind::Text, v),
                    json::Value::Object(m) => {
                        for (k, v) in m {
                            let v = v.as_str().ok_or_else(|| {
                                format!("{source}: canary field {k} is not a string")
                            })?;
                            s.add(source, kind_of_field(k), v);
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{source}: a canary is neither a string nor a record"
                        ))
                    }
                }
            }
            Ok(())
        };
        if only.is_none() {
            add_list("manifest", doc.get("canaries"))?;
        }
        let mut found = false;
        for fx in doc
            .get("fixtures")
            .and_then(json::Value::as_array)
            .unwrap_or_default()
        {
            let file = fx.get("file").and_then(json::Value::as_str).unwrap_or("?");
            if only.is_some_and(|o| o != file) {
                continue;
            }
            found = true;
            add_list(file, fx.get("canaries"))?;
        }
        if let Some(o) = only {
            if !found {
                return Err(format!("no fixture {o:?}"));
            }
        } else if s.comps.is_empty() {
            return Err("no canary in the manifest".into());
        }
        Ok(s)
    }

    /// Adds the values of `values` (each split as [`Kind::Text`]), from `source`.
    pub fn with_values<I, S>(mut self, source: &str, values: I) -> Scanner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for v in values {
            self.add(source, Kind::Text, v.as_ref());
        }
        self
    }

    /// Adds one value of kind `kind`, from `source`.
    pub fn with(mut self, source: &str, kind: Kind, value: &str) -> Scanner {
        self.add(source, kind, value);
        self
    }

    /// Adds one canary value.
    pub fn add(&mut self, source: &str, kind: Kind, value: &str) {
        for c in components(kind, value) {
            self.add_component(source, kind, c);
        }
    }

    /// Adds every canary of `other`.
    pub fn merge(mut self, other: &Scanner) -> Scanner {
        for c in &other.comps {
            self.add_component(&c.source, c.kind, &c.text);
        }
        self.skipped.extend(other.skipped.iter().cloned());
        self
    }

    fn add_component(&mut self, source: &str, kind: Kind, text: &str) {
        let low: Vec<u8> = text.bytes().map(lower).collect();
        let skip = |reason| Skipped {
            source: source.to_owned(),
            text: text.to_owned(),
            reason,
        };
        if self.lowered.contains(&low) {
            return;
        }
        let whole_only = kind == Kind::Date || !text.chars().any(char::is_alphabetic);
        let min_match = if whole_only {
            if low.iter().filter(|b| b.is_ascii_alphanumeric()).count() < MIN_NUMBER {
                self.skipped
                    .push(skip("a number or date shorter than 6 digits"));
                return;
            }
            low.len()
        } else {
            if low.len() < MIN_COMPONENT {
                self.skipped.push(skip("shorter than 5 characters"));
                return;
            }
            let common = |p: &[u8]| COMMON_WORDS.iter().any(|w| contains(w.as_bytes(), p));
            if common(&low) {
                self.skipped.push(skip("a common word"));
                return;
            }
            let mut n = MIN_PREFIX.min(low.len());
            while common(&low[..n]) {
                n += 1;
            }
            n
        };
        let idx = self.comps.len();
        self.comps.push(Component {
            source: source.to_owned(),
            text: text.to_owned(),
            kind,
            min_match,
        });
        self.longest = self.longest.max(low.len());
        let needle = low[..min_match].to_vec();
        self.lowered.push(low);
        match self.needles.iter_mut().find(|n| n.bytes == needle) {
            Some(n) => n.comps.push(idx),
            None => {
                if self.by_first.is_empty() {
                    self.by_first = vec![Vec::new(); 256];
                }
                self.by_first[usize::from(needle[0])].push(self.needles.len() as u32);
                self.needles.push(Needle {
                    bytes: needle,
                    comps: vec![idx],
                });
            }
        }
    }

    /// The components searched.
    pub fn components(&self) -> &[Component] {
        &self.comps
    }

    /// The components left out, with the reason.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Every canary found in `bytes` (at most [`MAX_FINDINGS`]), raw and decoded.
    pub fn scan(&self, bytes: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        self.layer(bytes, &mut Vec::new(), &|i| i, &mut out);
        out.sort_by(|a, b| (a.offset, &a.encoding).cmp(&(b.offset, &b.encoding)));
        out.dedup_by(|a, b| a.offset == b.offset && a.component == b.component);
        out
    }

    /// True when `bytes` holds no canary.
    pub fn is_clean(&self, bytes: &[u8]) -> bool {
        self.scan(bytes).is_empty()
    }

    /// Panics, naming `label` and every finding (never the surrounding bytes), unless `bytes`
    /// holds no canary. Also panics if the scanner holds no canary at all.
    pub fn assert_clean(&self, label: &str, bytes: impl AsRef<[u8]>) {
        assert!(
            !self.comps.is_empty(),
            "canary scanner for {label}: no canary to look for (a check that cannot fail)"
        );
        let found = self.scan(bytes.as_ref());
        if !found.is_empty() {
            panic!("{}", report(label, &found));
        }
    }

    /// Scans one file.
    pub fn scan_file(&self, path: impl AsRef<Path>) -> std::io::Result<Vec<Finding>> {
        Ok(self.scan(&std::fs::read(path)?))
    }

    /// Panics unless the file exists and holds no canary.
    pub fn assert_file_clean(&self, label: &str, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{label}: cannot read {}: {e}", path.display()));
        self.assert_clean(&format!("{label} ({})", path.display()), bytes);
    }

    /// Scans every regular file under `dir` (recursively; symbolic links are not followed).
    /// Returns the files scanned and the findings per file. A missing directory is an error,
    /// not an empty result.
    pub fn scan_dir(&self, dir: impl AsRef<Path>) -> std::io::Result<DirScan> {
        let mut scan = DirScan::default();
        let mut stack = vec![dir.as_ref().to_path_buf()];
        while let Some(d) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&d)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(std::fs::DirEntry::path);
            for e in entries {
                let ty = e.file_type()?;
                let p = e.path();
                if ty.is_dir() {
                    stack.push(p);
                } else if ty.is_file() {
                    // A file removed between listing and reading (a spool acknowledging it) is
                    // no longer there to leak.
                    let bytes = match std::fs::read(&p) {
                        Ok(b) => b,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    scan.bytes += bytes.len() as u64;
                    for f in self.scan(&bytes) {
                        scan.findings.push((p.clone(), f));
                    }
                    scan.files.push(p);
                }
            }
        }
        Ok(scan)
    }

    /// Panics unless `dir` exists and no file under it holds a canary; returns the files
    /// scanned (callers assert it is not empty when the directory must hold something).
    pub fn assert_dir_clean(&self, label: &str, dir: impl AsRef<Path>) -> Vec<PathBuf> {
        let dir = dir.as_ref();
        assert!(
            !self.comps.is_empty(),
            "canary scanner for {label}: no canary to look for (a check that cannot fail)"
        );
        let scan = self
            .scan_dir(dir)
            .unwrap_or_else(|e| panic!("{label}: cannot scan {}: {e}", dir.display()));
        if !scan.findings.is_empty() {
            let mut msg = format!("{label} ({}): patient data found", dir.display());
            for (p, f) in scan.findings.iter().take(20) {
                msg.push_str(&format!("\n  {}: {f}", p.display()));
            }
            panic!("{msg}");
        }
        scan.files
    }

    fn layer(
        &self,
        buf: &[u8],
        chain: &mut Vec<&'static str>,
        map: &dyn Fn(usize) -> usize,
        out: &mut Vec<Finding>,
    ) {
        if out.len() >= MAX_FINDINGS || self.needles.is_empty() {
            return;
        }
        self.search(buf, |comp, pos, matched, ties| {
            if out.len() < MAX_FINDINGS {
                let c = &self.comps[comp];
                // A prefix several canaries share (`CANARY` of `CANARY^…` and `CANARY-MRN-…`)
                // is named as that prefix, not as one of them picked at random.
                let (component, source) = if ties > 1 {
                    (
                        c.text.get(..matched).unwrap_or(&c.text).to_owned(),
                        format!("the shared prefix of {ties} canaries"),
                    )
                } else {
                    (c.text.clone(), c.source.clone())
                };
                out.push(Finding {
                    component,
                    source,
                    matched,
                    encoding: if chain.is_empty() {
                        "raw".to_owned()
                    } else {
                        chain.join(" > ")
                    },
                    offset: map(pos),
                });
            }
        });
        if chain.len() >= MAX_LAYERS {
            return;
        }
        let margin = self.longest.max(16);
        let mut segs = Vec::new();
        for &(name, decode) in decode::DECODERS {
            segs.clear();
            decode(buf, margin, &mut segs);
            for seg in &segs {
                chain.push(name);
                let inner = |i: usize| map(seg.map.get(i).copied().unwrap_or(0));
                self.layer(&seg.bytes, chain, &inner, out);
                chain.pop();
            }
        }
    }

    /// Calls `hit(component, position, matched characters, components matching as far)` for
    /// every needle occurrence.
    fn search(&self, hay: &[u8], mut hit: impl FnMut(usize, usize, usize, usize)) {
        for (i, &b) in hay.iter().enumerate() {
            let cands = &self.by_first[usize::from(lower(b))];
            if cands.is_empty() {
                continue;
            }
            for &n in cands {
                let needle = &self.needles[n as usize];
                let nb = &needle.bytes;
                if hay.len() - i < nb.len()
                    || !hay[i..i + nb.len()]
                        .iter()
                        .zip(nb)
                        .all(|(&h, &n)| lower(h) == n)
                {
                    continue;
                }
                // The component that matches furthest, and how many match as far.
                let (mut comp, mut matched, mut ties) = (needle.comps[0], 0, 0);
                for &c in &needle.comps {
                    let m = hay[i..]
                        .iter()
                        .zip(&self.lowered[c])
                        .take_while(|(&h, &l)| lower(h) == l)
                        .count();
                    if m > matched {
                        (comp, matched, ties) = (c, m, 1);
                    } else if m == matched {
                        ties += 1;
                    }
                }
                hit(comp, i, matched, ties);
            }
        }
    }
}

/// The result of [`Scanner::scan_dir`].
#[derive(Debug, Clone, Default)]
pub struct DirScan {
    /// Every regular file scanned.
    pub files: Vec<PathBuf>,
    /// Bytes scanned.
    pub bytes: u64,
    /// Findings, with their file.
    pub findings: Vec<(PathBuf, Finding)>,
}

fn kind_of_field(key: &str) -> Kind {
    match key.to_ascii_lowercase().as_str() {
        "family" | "given" | "name" | "physician" | "mother" | "kin" => Kind::Name,
        "mrn" | "accession" | "id" | "ssn" | "account" | "visit" => Kind::Identifier,
        "birth_date" | "dob" | "date" => Kind::Date,
        _ => Kind::Text,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The message [`Scanner::assert_clean`] panics with.
pub fn report(label: &str, found: &[Finding]) -> String {
    let mut msg = format!("{label}: patient data found ({} findings)", found.len());
    for f in found.iter().take(20) {
        msg.push_str("\n  ");
        msg.push_str(&f.to_string());
    }
    msg
}

#[cfg(test)]
mod tests;
