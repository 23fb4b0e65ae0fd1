//! OpenEoX end-of-life statements: when a vendor stops selling, supporting and patching a
//! product. Read into [`EoxStatement`]s, each naming its vendor, product and (optionally)
//! version, so the evaluation can match them to devices the way it matches advisories and
//! raise `end_of_life_product` once a date has passed.
//!
//! Two document forms are read:
//!
//! - the **core** document (`$schema` `https://docs.oasis-open.org/openeox/v1.0/schema/core.json`,
//!   the OASIS OpenEoX Core 1.0 schema): only the dates — `end_of_life`,
//!   `end_of_security_support` and `last_updated` required, `end_of_sales` and
//!   `general_availability` optional, each a date-time or `"tba"` (`last_updated` a date-time).
//!   The schema is closed (`unevaluatedProperties: false`), so an unknown key is an error. It
//!   names no product, so the importer must say which one (`--vendor`, `--product`,
//!   `--version`): without them nothing is imported;
//! - the **shell** document (`$schema` `https://docs.oasis-open.org/openeox/tbd/schema/shell.json`,
//!   the TC's draft): `statements`, each a `core` document with `vendorName`, `productName`
//!   and `productVersion` (the snake_case spellings of the draft product schemas are read
//!   too). The draft leaves the shell open, so keys it does not define are ignored there —
//!   never inside `core`.
//!
//! A statement is keyed by vendor, product and version ([`EoxStatement::key`], folded for
//! case and spacing); `last_updated` orders its revisions: a later one replaces the stored
//! statement, the same one changes nothing, an earlier one is refused and the whole import
//! with it. All or nothing, errors as file:line:column like every import.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::import::advisories::{expand, json_error, line_column, MAX_FILE_BYTES};
use crate::import::files::{read_text, ImportError, MAX_REPORTED};

/// The `$schema` of an OpenEoX Core 1.0 document.
pub const CORE_SCHEMA: &str = "https://docs.oasis-open.org/openeox/v1.0/schema/core.json";
/// The `$schema` of the TC's draft shell document (the only shell published so far).
pub const SHELL_SCHEMA: &str = "https://docs.oasis-open.org/openeox/tbd/schema/shell.json";

/// Names longer than this are refused: a product name is a line, not a document.
const MAX_NAME: usize = 512;
/// Statements per file beyond this are refused (a vendor's whole catalogue is a few thousand).
const MAX_STATEMENTS: usize = 100_000;

/// An OpenEoX timestamp: a date-time, or "to be announced".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EoxDate {
    /// The date-time stated.
    At(DateTime<Utc>),
    /// `"tba"`: the vendor has not said yet.
    #[serde(serialize_with = "tba")]
    Tba,
}

fn tba<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("tba")
}

impl EoxDate {
    /// The stored text: RFC 3339, or `tba`.
    pub fn to_text(self) -> String {
        match self {
            EoxDate::At(t) => t.to_rfc3339(),
            EoxDate::Tba => "tba".into(),
        }
    }

    /// Reads the stored text back.
    pub fn from_text(s: &str) -> Option<EoxDate> {
        if s == "tba" {
            return Some(EoxDate::Tba);
        }
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| EoxDate::At(t.with_timezone(&Utc)))
    }

    /// The date-time, unless to be announced.
    pub fn at(self) -> Option<DateTime<Utc>> {
        match self {
            EoxDate::At(t) => Some(t),
            EoxDate::Tba => None,
        }
    }
}

/// One end-of-life statement about one product (release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EoxStatement {
    /// The vendor, as the statement names it (matched through the vendor alias table).
    pub vendor: String,
    /// The product, as named (matched to the device model like an advisory's product name).
    pub product: String,
    /// The version or release it is about: an exact version, or a range (`<2.0`,
    /// `vers:generic/>=1.0|<2.0`); `None` = every version of the product.
    pub version: Option<String>,
    /// `end_of_life`: the last day the vendor supports the product in any way.
    pub end_of_life: EoxDate,
    /// `end_of_security_support`: the last day the vendor provides security fixes.
    pub end_of_security_support: EoxDate,
    /// `end_of_sales`, when stated.
    pub end_of_sales: Option<EoxDate>,
    /// `general_availability`, when stated.
    pub general_availability: Option<EoxDate>,
    /// `last_updated`: orders revisions of the statement.
    pub last_updated: DateTime<Utc>,
    /// The file it came from.
    pub source: String,
}

impl EoxStatement {
    /// What identifies a statement across revisions: vendor, product and version, each
    /// lower-cased with runs of spaces folded, joined by `/` (`*` for every version).
    pub fn key(&self) -> String {
        let fold = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        format!(
            "{}/{}/{}",
            fold(&self.vendor),
            fold(&self.product),
            self.version.as_deref().map_or("*".to_owned(), fold)
        )
    }
}

/// The product a core document is about (`eox import --vendor --product --version`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The vendor.
    pub vendor: Option<String>,
    /// The product.
    pub product: Option<String>,
    /// The version or range; `None` = every version.
    pub version: Option<String>,
}

impl Binding {
    fn is_empty(&self) -> bool {
        self.vendor.is_none() && self.product.is_none() && self.version.is_none()
    }
}

/// `$schema` decides the form; read first, untyped, so the error for a core document with a
/// typo is the core's and not the shell's.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "$schema")]
    schema: Option<serde_json::Value>,
}

/// The Core 1.0 document; closed like its schema.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCore {
    #[serde(rename = "$schema")]
    schema: CoreSchema,
    end_of_life: Timestamp,
    end_of_security_support: Timestamp,
    #[serde(default)]
    end_of_sales: Option<Timestamp>,
    #[serde(default)]
    general_availability: Option<Timestamp>,
    last_updated: DateTimeOnly,
}

/// The draft shell: open, like its schema (unknown keys ignored, never inside `core`).
#[derive(Deserialize)]
struct RawShell {
    #[serde(rename = "$schema")]
    #[allow(dead_code)] // checked against SHELL_SCHEMA before this is read
    schema: String,
    statements: Vec<RawStatement>,
}

#[derive(Deserialize)]
struct RawStatement {
    core: RawCore,
    #[serde(rename = "vendorName", alias = "vendor_name")]
    vendor_name: Name,
    #[serde(rename = "productName", alias = "product_name")]
    product_name: Name,
    #[serde(rename = "productVersion", alias = "product_version")]
    product_version: Name,
}

struct CoreSchema;

impl<'de> Deserialize<'de> for CoreSchema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == CORE_SCHEMA {
            Ok(CoreSchema)
        } else {
            Err(serde::de::Error::custom(format!(
                "core $schema must be {CORE_SCHEMA:?} (OpenEoX Core 1.0), not {:?}",
                s.chars().take(100).collect::<String>()
            )))
        }
    }
}

/// A non-empty name of at most [`MAX_NAME`] bytes, trimmed.
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t.is_empty() {
            return Err(serde::de::Error::custom(
                "empty (the schema needs minLength 1)",
            ));
        }
        if t.len() > MAX_NAME {
            return Err(serde::de::Error::custom(format!(
                "longer than {MAX_NAME} bytes"
            )));
        }
        Ok(Name(t.to_owned()))
    }
}

fn date_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `eox_timestamp_t`: a date-time or `"tba"`.
struct Timestamp(EoxDate);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "tba" {
            return Ok(Timestamp(EoxDate::Tba));
        }
        date_time(&s)
            .map(|t| Timestamp(EoxDate::At(t)))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{:?} is neither an RFC 3339 date-time nor \"tba\"",
                    s.chars().take(60).collect::<String>()
                ))
            })
    }
}

/// `last_updated`: a date-time only.
struct DateTimeOnly(DateTime<Utc>);

impl<'de> Deserialize<'de> for DateTimeOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        date_time(&s).map(DateTimeOnly).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "last_updated {:?} is not an RFC 3339 date-time",
                s.chars().take(60).collect::<String>()
            ))
        })
    }
}

fn statement(
    core: RawCore,
    vendor: String,
    product: String,
    version: Option<String>,
    file: &str,
) -> EoxStatement {
    let _ = core.schema;
    EoxStatement {
        vendor,
        product,
        version,
        end_of_life: core.end_of_life.0,
        end_of_security_support: core.end_of_security_support.0,
        end_of_sales: core.end_of_sales.map(|t| t.0),
        general_availability: core.general_availability.map(|t| t.0),
        last_updated: core.last_updated.0,
        source: file.to_owned(),
    }
}

/// The place of the `n`-th (0-based) occurrence of `"key"` in `text`.
fn place(text: &str, key: &str, n: usize) -> (Option<usize>, Option<usize>) {
    text.match_indices(&format!("\"{key}\""))
        .nth(n)
        .map(|(i, _)| line_column(text, i))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)))
}

/// Parses one OpenEoX document; `binding` names the product of a core document (and must be
/// empty for a shell document, which names its own). `file` names it in errors.
pub fn parse(text: &str, file: &str, binding: &Binding) -> Result<Vec<EoxStatement>, ImportError> {
    let probe: Probe = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let schema = probe.schema.as_ref().and_then(|s| s.as_str());
    match schema {
        Some(CORE_SCHEMA) => {
            let core: RawCore = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
            let (Some(vendor), Some(product)) = (&binding.vendor, &binding.product) else {
                return Err(ImportError::new(
                    file,
                    "an OpenEoX core document names no product: say which one it is about with \
                     --vendor and --product (and --version for one release)",
                ));
            };
            let clean = |what: &str, s: &str| -> Result<String, ImportError> {
                let t = s.trim();
                if t.is_empty() || t.len() > MAX_NAME {
                    return Err(ImportError::new(
                        file,
                        format!("--{what} must be 1 to {MAX_NAME} bytes"),
                    ));
                }
                Ok(t.to_owned())
            };
            let version = match &binding.version {
                Some(v) => Some(clean("version", v)?),
                None => None,
            };
            Ok(vec![statement(
                core,
                clean("vendor", vendor)?,
                clean("product", product)?,
                version,
                file,
            )])
        }
        Some(SHELL_SCHEMA) => {
            if !binding.is_empty() {
                return Err(ImportError::new(
                    file,
                    "an OpenEoX shell document names its products itself: --vendor, --product \
                     and --version are for core documents",
                ));
            }
            let shell: RawShell = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
            if shell.statements.is_empty() {
                let (l, c) = place(text, "statements", 0);
                return Err(ImportError::new(
                    file,
                    "statements is empty (the shell schema needs at least one)",
                )
                .at(l, c));
            }
            if shell.statements.len() > MAX_STATEMENTS {
                return Err(ImportError::new(
                    file,
                    format!("more than {MAX_STATEMENTS} statements"),
                ));
            }
            let out: Vec<EoxStatement> = shell
                .statements
                .into_iter()
                .map(|s| {
                    statement(
                        s.core,
                        s.vendor_name.0,
                        s.product_name.0,
                        Some(s.product_version.0),
                        file,
                    )
                })
                .collect();
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut errors = Vec::new();
            for (i, s) in out.iter().enumerate() {
                if let Some(first) = seen.insert(s.key(), i) {
                    // The statement's own `core` key locates it.
                    let (l, c) = place(text, "core", i);
                    errors.push(
                        ImportError::new(
                            file,
                            format!(
                                "statement {} is about the same product as statement {} ({}): \
                                 which one holds would be a guess",
                                i + 1,
                                first + 1,
                                s.key()
                            ),
                        )
                        .at(l, c),
                    );
                }
            }
            match ImportError::collect(errors, 0) {
                Some(e) => Err(e),
                None => Ok(out),
            }
        }
        Some(other) => {
            let (l, c) = place(text, "$schema", 0);
            Err(ImportError::new(
                file,
                format!(
                    "$schema {:?} is no OpenEoX document this collector reads (core: {CORE_SCHEMA}; \
                     shell: {SHELL_SCHEMA})",
                    other.chars().take(100).collect::<String>()
                ),
            )
            .at(l, c))
        }
        None => {
            let (l, c) = place(text, "$schema", 0);
            Err(ImportError::new(
                file,
                "no $schema string: an OpenEoX document says which schema it follows (core or shell)",
            )
            .at(l.or(Some(1)), c.or(Some(1))))
        }
    }
}

/// Reads and checks one OpenEoX file.
pub fn load_file(path: &Path, binding: &Binding) -> Result<Vec<EoxStatement>, ImportError> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| ImportError::new(&file, format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::new(
            &file,
            format!(
                "{size} bytes: larger than an OpenEoX file may be ({MAX_FILE_BYTES} bytes at most)"
            ),
        ));
    }
    let text = read_text(path, &file)?;
    parse(&text, &file, binding)
}

/// Reads and checks every OpenEoX file of `paths` (files, or directories of `*.json`): one
/// error lists the problems of every file, and any problem means nothing may be stored. The
/// same product in two files of one invocation is refused.
pub fn load(paths: &[PathBuf], binding: &Binding) -> Result<Vec<EoxStatement>, ImportError> {
    let files = expand(paths)?;
    let mut out: Vec<EoxStatement> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in &files {
        match load_file(path, binding) {
            Ok(v) => {
                for s in v {
                    if let Some(first) = seen.insert(s.key(), s.source.clone()) {
                        if first != s.source {
                            errors.push(ImportError::new(
                                &s.source,
                                format!(
                                    "the statement about {} is also in {first}: import one revision at a time",
                                    s.key()
                                ),
                            ));
                        }
                    }
                    out.push(s);
                }
            }
            Err(e) => errors.extend(
                std::iter::once(e.clone())
                    .chain(e.more.iter().cloned())
                    .map(|mut e| {
                        e.more.clear();
                        e
                    }),
            ),
        }
    }
    if errors.is_empty() {
        return Ok(out);
    }
    let total = errors.len();
    errors.truncate(MAX_REPORTED);
    let mut it = errors.into_iter();
    let mut first = it.next().unwrap_or_else(|| ImportError::new("", ""));
    first.more = it.collect();
    if total > MAX_REPORTED {
        let note = format!("{} more problems not shown", total - MAX_REPORTED);
        first.more.push(ImportError::new(&first.file, note));
    }
    Err(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell with one statement (written for these tests; not the OASIS example).
    pub(crate) const SHELL: &str = r#"{
  "$schema": "https://docs.oasis-open.org/openeox/tbd/schema/shell.json",
  "statements": [
    {
      "core": {
        "$schema": "https://docs.oasis-open.org/openeox/v1.0/schema/core.json",
        "end_of_life": "2026-12-31T00:00:00Z",
        "end_of_security_support": "2026-06-30T00:00:00Z",
        "end_of_sales": "tba",
        "last_updated": "2026-01-15T00:00:00Z"
      },
      "vendorName": "ACME Medical",
      "productName": "Scan 1",
      "productVersion": "<2.0"
    }
  ]
}"#;

    fn bound() -> Binding {
        Binding {
            vendor: Some("ACME".into()),
            product: Some("Scan 1".into()),
            version: None,
        }
    }

    #[test]
    fn a_shell_reads_with_its_dates() {
        let v = parse(SHELL, "e.json", &Binding::default()).unwrap();
        assert_eq!(v.len(), 1);
        let s = &v[0];
        assert_eq!(s.key(), "acme medical/scan 1/<2.0");
        assert_eq!(s.end_of_sales, Some(EoxDate::Tba));
        assert_eq!(
            s.end_of_security_support.at().unwrap().to_rfc3339(),
            "2026-06-30T00:00:00+00:00"
        );
        assert!(s.general_availability.is_none());
        // Flags are for core documents.
        let e = parse(SHELL, "e.json", &bound()).unwrap_err();
        assert!(e.message.contains("names its products itself"), "{e}");
    }

    #[test]
    fn the_oasis_core_example_reads_when_told_its_product() {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/advisories/public/openeox-example.json");
        let e = load_file(&p, &Binding::default()).unwrap_err();
        assert!(e.message.contains("--vendor and --product"), "{e}");
        let v = load_file(&p, &bound()).unwrap();
        assert_eq!(v[0].end_of_life.to_text(), "2025-12-31T12:00:00+00:00");
        assert_eq!(v[0].last_updated.to_rfc3339(), "2025-02-01T12:00:00+00:00");
        assert_eq!(v[0].key(), "acme/scan 1/*");
    }

    #[test]
    fn problems_are_refused_with_their_place() {
        let cases: &[(&str, &str, u32)] = &[
            // An unknown key in the closed core.
            (
                "\"end_of_sales\": \"tba\",",
                "\"end_of_sales\": \"tba\", \"end_of_support\": \"tba\",",
                9,
            ),
            ("2026-06-30T00:00:00Z", "30/06/2026", 8),
            (
                "\"last_updated\": \"2026-01-15T00:00:00Z\"",
                "\"last_updated\": \"tba\"",
                10,
            ),
            (
                "\"productName\": \"Scan 1\",",
                "\"productName\": \"  \",",
                13,
            ),
            ("v1.0/schema/core.json", "tbd/schema/core.json", 6),
        ];
        for (from, to, line) in cases {
            let bad = SHELL.replacen(from, to, 1);
            assert_ne!(bad, SHELL, "{from}");
            let e = parse(&bad, "e.json", &Binding::default()).unwrap_err();
            // serde_json places some errors at the close of the object holding the value.
            assert!(
                e.line == Some(*line) || e.line == Some(line + 1),
                "{to}: {e}"
            );
            assert!(e.to_string().starts_with("e.json:"), "{e}");
        }
        let twice = SHELL.replace(
            "  ]\n}",
            &format!(
                "  ,{}  ]\n}}",
                &SHELL[SHELL.find("    {").unwrap()..SHELL.rfind("    }").unwrap() + 6]
            ),
        );
        let e = parse(&twice, "e.json", &Binding::default()).unwrap_err();
        assert!(e.message.contains("same product"), "{e}");
        assert_eq!(e.line, Some(17), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged documents are refused with the file's name, never a panic.
        #[test]
        fn damaged_documents_never_panic(at in 0usize..700, cut in 0usize..12, junk in "[\\[\\]{}\",:.a-zA-Z0-9 -]{0,8}") {
            let damaged = crate::import::testing::splice(SHELL, at, cut, &junk);
            if let Err(e) = parse(&damaged, "e.json", &Binding::default()) {
                proptest::prop_assert!(e.to_string().starts_with("e.json"));
            }
        }
    }
}
