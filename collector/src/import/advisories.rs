//! Security advisory import: CSAF 2.0 JSON documents (CISA ICS medical advisories, vendors'
//! own CSAF) read into typed [`Advisory`] records.
//!
//! What is kept is what matching a device and running a patch clock need: the product tree
//! flattened to one [`Product`] per leaf (vendor, product, version or range, identification
//! helpers, and whether it sits under a `legacy` — end-of-life — branch), each vulnerability's
//! product status, CVE, CVSS scores and remediations, and the tracking data that orders
//! revisions. Everything else in the document (notes, references, acknowledgments) is read
//! past.
//!
//! Deserialisation is typed, so syntax, type, missing-field and unknown-enum errors keep
//! serde_json's line and column. Checks that need the whole document (product ids referenced
//! but not defined, duplicates, dates out of order) find their place by searching the text for
//! the offending value. An invocation is all or nothing: every file is read and checked before
//! anything is stored, and the problems of all files are reported together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::import::files::{read_text, ImportError, Record, MAX_REPORTED};

/// Larger files are refused before parsing: the largest real CSAF advisories are a few MB.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// One advisory revision, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    /// `document.tracking.id`, e.g. `ICSMA-24-151-02`.
    pub id: String,
    /// `document.title`.
    pub title: String,
    /// `document.category` (`csaf_security_advisory`, `csaf_vex`).
    pub category: String,
    /// `document.csaf_version`.
    pub csaf_version: String,
    /// `document.publisher.name`.
    pub publisher: String,
    /// `document.tracking.version`: orders revisions of one advisory.
    pub tracking_version: String,
    /// `document.tracking.status` (`draft`, `interim`, `final`).
    pub status: String,
    /// `document.tracking.initial_release_date`.
    pub initial_release: DateTime<Utc>,
    /// `document.tracking.current_release_date`.
    pub current_release: DateTime<Utc>,
    /// The product tree, one entry per product.
    pub products: Vec<Product>,
    /// The vulnerabilities, in document order.
    pub vulnerabilities: Vec<Vulnerability>,
    /// The file it was read from.
    pub source: String,
}

/// One product of the tree: a leaf branch's `product`, a top-level full product name, or a
/// relationship's product, with what the branches above it say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    /// `product_id`, referenced by product status, scores and remediations.
    pub product_id: String,
    /// `full_product_name.name` (CISA writes vendor, product and version into it).
    pub name: String,
    /// The nearest `vendor` branch above it.
    pub vendor: Option<String>,
    /// The nearest `product_name` branch (or else `product_family`) above it.
    pub product: Option<String>,
    /// A `product_version` branch: exactly this version.
    pub version: Option<String>,
    /// A `product_version_range` branch: CISA free text (`<=1.52`) or a `vers:` string.
    pub version_range: Option<String>,
    /// Under a `legacy` branch: the vendor no longer supports it (end of life).
    pub legacy: bool,
    /// Identification helper: CPE.
    pub cpe: Option<String>,
    /// Identification helper: PURL.
    pub purl: Option<String>,
    /// Identification helper: model numbers.
    pub model_numbers: Vec<String>,
    /// Identification helper: stock keeping units.
    pub skus: Vec<String>,
}

/// A product's status for one vulnerability (CSAF `product_status` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// `first_affected`
    FirstAffected,
    /// `first_fixed`
    FirstFixed,
    /// `fixed`
    Fixed,
    /// `known_affected`
    KnownAffected,
    /// `known_not_affected`
    KnownNotAffected,
    /// `last_affected`
    LastAffected,
    /// `recommended`
    Recommended,
    /// `under_investigation`
    UnderInvestigation,
}

impl ProductStatus {
    /// The CSAF key.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::FirstAffected => "first_affected",
            ProductStatus::FirstFixed => "first_fixed",
            ProductStatus::Fixed => "fixed",
            ProductStatus::KnownAffected => "known_affected",
            ProductStatus::KnownNotAffected => "known_not_affected",
            ProductStatus::LastAffected => "last_affected",
            ProductStatus::Recommended => "recommended",
            ProductStatus::UnderInvestigation => "under_investigation",
        }
    }

    /// The status for a CSAF key.
    pub fn from_key(s: &str) -> Option<ProductStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// One vulnerability of an advisory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vulnerability {
    /// The CVE id, when it has one.
    pub cve: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `cwe.id`.
    pub cwe: Option<String>,
    /// Product status: which products are affected, fixed…, in document order per status.
    pub product_status: BTreeMap<ProductStatus, Vec<String>>,
    /// CVSS scores, each for its products.
    pub scores: Vec<Score>,
    /// Remediations.
    pub remediations: Vec<Remediation>,
}

/// One CVSS score (v3.x or v4.0) for some products.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// `3.0`, `3.1` or `4.0`.
    pub cvss_version: String,
    /// `baseScore`, 0.0 to 10.0.
    pub base_score: f64,
    /// `baseSeverity`: NONE, LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: String,
    /// `vectorString`.
    pub vector: String,
    /// The products it scores.
    pub products: Vec<String>,
}

/// One remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remediation {
    /// `vendor_fix`, `mitigation`, `workaround`, `none_available`, `no_fix_planned`,
    /// `fix_planned`, `optional_patch`. CISA uses `vendor_fix` loosely.
    pub category: String,
    /// When it became available, if stated.
    pub date: Option<DateTime<Utc>>,
    /// The text: fixed versions, when stated at all, are only here.
    pub details: String,
    /// The products it applies to (product groups expanded).
    pub product_ids: Vec<String>,
    /// A link.
    pub url: Option<String>,
}

// ---- the CSAF document as serde reads it -------------------------------------------------

/// A string that is not empty or blank, bounded so a hostile file cannot make one huge value
/// the report then prints.
#[derive(Debug, Clone)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        if s.len() > 64 * 1024 {
            return Err(serde::de::Error::custom("longer than 64 KiB"));
        }
        Ok(Text(s))
    }
}

/// An RFC 3339 date-time.
#[derive(Debug, Clone, Copy)]
struct Timestamp(DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{:?} is not an RFC 3339 date-time (e.g. 2024-05-30T06:00:00Z)",
                    clip(&s)
                ))
            })
    }
}

/// A CVE id: `CVE-YYYY-NNNN…`.
#[derive(Debug, Clone)]
struct Cve(String);

impl<'de> Deserialize<'de> for Cve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_cve(&s) {
            Ok(Cve(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "{:?} is not a CVE id (CVE-YYYY-NNNN)",
                clip(&s)
            )))
        }
    }
}

/// Whether `s` is `CVE-` + four digits + `-` + four or more digits.
pub(crate) fn is_cve(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && (4..=19).contains(&num.len())
        && num.bytes().all(|b| b.is_ascii_digit())
}

/// CSAF's `version_t`: an integer without leading zeros, or a semantic version
/// (`MAJOR.MINOR.PATCH[-pre][+build]`).
fn is_tracking_version(s: &str) -> bool {
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let ident =
        |i: &str| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if number(s) {
        return true;
    }
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && pre.is_none_or(|p| p.split('.').all(ident))
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// At most 60 characters of a value for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct RawCsaf {
    document: RawDocument,
    product_tree: RawProductTree,
    vulnerabilities: Vec<RawVulnerability>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum DocumentCategory {
    #[serde(rename = "csaf_security_advisory")]
    SecurityAdvisory,
    #[serde(rename = "csaf_vex")]
    Vex,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum CsafVersion {
    #[serde(rename = "2.0")]
    V2_0,
}

#[derive(Deserialize)]
struct RawDocument {
    category: DocumentCategory,
    csaf_version: CsafVersion,
    publisher: RawPublisher,
    title: Text,
    tracking: RawTracking,
}

#[derive(Deserialize)]
struct RawPublisher {
    #[allow(dead_code)] // required by CSAF; checked, not stored
    category: PublisherCategory,
    name: Text,
    #[allow(dead_code)]
    namespace: Text,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PublisherCategory {
    Coordinator,
    Discoverer,
    Other,
    Translator,
    User,
    Vendor,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum TrackingStatus {
    Draft,
    Final,
    Interim,
}

#[derive(Deserialize)]
struct RawTracking {
    id: Text,
    version: Text,
    initial_release_date: Timestamp,
    current_release_date: Timestamp,
    status: TrackingStatus,
    revision_history: Vec<RawRevision>,
}

#[derive(Deserialize)]
struct RawRevision {
    #[allow(dead_code)] // required by CSAF; checked, not stored
    date: Timestamp,
    #[allow(dead_code)]
    number: Text,
}

#[derive(Deserialize, Default)]
struct RawProductTree {
    #[serde(default)]
    branches: Vec<RawBranch>,
    #[serde(default)]
    full_product_names: Vec<RawFullProductName>,
    #[serde(default)]
    relationships: Vec<RawRelationship>,
    #[serde(default)]
    product_groups: Vec<RawGroup>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BranchCategory {
    Architecture,
    HostName,
    Language,
    Legacy,
    PatchLevel,
    ProductFamily,
    ProductName,
    ProductVersion,
    ProductVersionRange,
    ServicePack,
    Specification,
    Vendor,
}

#[derive(Deserialize)]
struct RawBranch {
    category: BranchCategory,
    name: Text,
    #[serde(default)]
    branches: Vec<RawBranch>,
    product: Option<RawFullProductName>,
}

#[derive(Deserialize)]
struct RawFullProductName {
    name: Text,
    product_id: Text,
    product_identification_helper: Option<RawHelper>,
}

#[derive(Deserialize, Default)]
struct RawHelper {
    cpe: Option<Text>,
    purl: Option<Text>,
    #[serde(default)]
    model_numbers: Vec<Text>,
    #[serde(default)]
    skus: Vec<Text>,
}

#[derive(Deserialize)]
struct RawRelationship {
    full_product_name: RawFullProductName,
}

#[derive(Deserialize)]
struct RawGroup {
    group_id: Text,
    product_ids: Vec<Text>,
}

#[derive(Deserialize)]
struct RawVulnerability {
    cve: Option<Cve>,
    title: Option<Text>,
    cwe: Option<RawCwe>,
    #[serde(default)]
    product_status: BTreeMap<ProductStatus, Vec<Text>>,
    #[serde(default)]
    scores: Vec<RawScore>,
    #[serde(default)]
    remediations: Vec<RawRemediation>,
}

#[derive(Deserialize)]
struct RawCwe {
    id: Text,
}

#[derive(Deserialize)]
struct RawScore {
    products: Vec<Text>,
    cvss_v3: Option<RawCvss>,
    cvss_v4: Option<RawCvss>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCvss {
    version: Text,
    vector_string: Text,
    base_score: BaseScore,
    base_severity: Severity,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::None => "NONE",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

#[derive(Clone, Copy)]
struct BaseScore(f64);

impl<'de> Deserialize<'de> for BaseScore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if (0.0..=10.0).contains(&v) {
            Ok(BaseScore(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "baseScore {v} is outside 0.0-10.0"
            )))
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RemediationCategory {
    FixPlanned,
    Mitigation,
    NoFixPlanned,
    NoneAvailable,
    OptionalPatch,
    VendorFix,
    Workaround,
}

impl RemediationCategory {
    fn as_str(self) -> &'static str {
        match self {
            RemediationCategory::FixPlanned => "fix_planned",
            RemediationCategory::Mitigation => "mitigation",
            RemediationCategory::NoFixPlanned => "no_fix_planned",
            RemediationCategory::NoneAvailable => "none_available",
            RemediationCategory::OptionalPatch => "optional_patch",
            RemediationCategory::VendorFix => "vendor_fix",
            RemediationCategory::Workaround => "workaround",
        }
    }
}

#[derive(Deserialize)]
struct RawRemediation {
    category: RemediationCategory,
    details: Text,
    date: Option<Timestamp>,
    #[serde(default)]
    product_ids: Vec<Text>,
    #[serde(default)]
    group_ids: Vec<Text>,
    url: Option<Text>,
}

// ---- loading ----------------------------------------------------------------------------

/// The `.json` files of `paths`: a file as given, a directory's `*.json` files (not recursive)
/// in name order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let file = p.display().to_string();
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ImportError::new(&file, format!("cannot read directory: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .is_some_and(|x| x.eq_ignore_ascii_case("json"))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(ImportError::new(&file, "no .json files in this directory"));
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads and checks every advisory of `paths` (files or directories); one error lists the
/// problems of every file, and any problem means nothing may be stored. The same advisory id
/// twice in one invocation is refused: which revision to keep would be a guess.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Advisory>, ImportError> {
    let files = expand(paths)?;
    let mut advisories = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in &files {
        match load_file(path) {
            Ok(a) => {
                if let Some(first) = seen.insert(a.id.clone(), a.source.clone()) {
                    errors.push(
                        ImportError::new(
                            &a.source,
                            format!(
                                "advisory {} is also in {first}: import one revision at a time",
                                a.id
                            ),
                        )
                        .about(Some(Record::Advisory(a.id.clone()))),
                    );
                }
                advisories.push(a);
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
        return Ok(advisories);
    }
    // Files in the order given, then lines: `collect` sorts by line only, so keep file order.
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

/// Reads and checks one CSAF file.
pub fn load_file(path: &Path) -> Result<Advisory, ImportError> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| ImportError::new(&file, format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::new(
            &file,
            format!("{size} bytes: larger than any CSAF advisory ({MAX_FILE_BYTES} bytes at most)"),
        ));
    }
    let text = read_text(path, &file)?;
    parse(&text, &file)
}

/// Parses and checks one CSAF document; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Advisory, ImportError> {
    let raw: RawCsaf = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let id = raw.document.tracking.id.0.trim().to_owned();
    let checker = Checker {
        text,
        file,
        id: &id,
        errors: Vec::new(),
    };
    checker.build(raw)
}

/// A serde_json error as an [`ImportError`] at its place (serde_json's own " at line L column
/// C" suffix removed: the place is in front).
pub(crate) fn json_error(file: &str, e: &serde_json::Error) -> ImportError {
    let message = e.to_string();
    if e.line() == 0 {
        return ImportError::new(file, message);
    }
    let message = message
        .replacen(
            &format!(" at line {} column {}", e.line(), e.column()),
            "",
            1,
        )
        .to_string();
    ImportError::new(file, message).at(Some(e.line()), Some(e.column()))
}

/// Whole-document checks, locating each problem in the text.
struct Checker<'a> {
    text: &'a str,
    file: &'a str,
    id: &'a str,
    errors: Vec<ImportError>,
}

impl Checker<'_> {
    /// An error at the first occurrence of `needle` (a JSON string value, quoted) at or after
    /// the first occurrence of the key `after`, at that key when `needle` is empty, or without
    /// a place when neither is found.
    fn error_at(&mut self, after: &str, needle: &str, message: String) {
        let key = self.text.find(&format!("\"{after}\""));
        let start = key.unwrap_or(0);
        let place = if needle.is_empty() {
            key.map(|k| line_column(self.text, k))
        } else {
            let quoted = serde_json::to_string(needle).unwrap_or_default();
            self.text[start..]
                .find(&quoted)
                .map(|i| line_column(self.text, start + i))
        };
        let e = ImportError::new(self.file, message)
            .at(place.map(|p| p.0), place.map(|p| p.1))
            .about(Some(Record::Advisory(self.id.to_owned())));
        self.errors.push(e);
    }

    fn build(mut self, raw: RawCsaf) -> Result<Advisory, ImportError> {
        let doc = &raw.document;
        let tracking = &doc.tracking;
        if tracking.current_release_date.0 < tracking.initial_release_date.0 {
            let shown = tracking.current_release_date.0.to_rfc3339();
            self.error_at(
                "current_release_date",
                "",
                format!(
                    "current_release_date {shown} is before initial_release_date {}",
                    tracking.initial_release_date.0.to_rfc3339()
                ),
            );
        }
        if tracking.revision_history.is_empty() {
            self.error_at(
                "revision_history",
                "",
                "revision_history is empty: CSAF requires at least the initial revision".into(),
            );
        }
        if !is_tracking_version(&tracking.version.0) {
            let v = tracking.version.0.clone();
            self.error_at(
                "tracking",
                &v,
                format!(
                    "tracking.version {:?} is neither an integer (1, 2, …) nor a semantic version \
                     (1.0.0): CSAF orders revisions by it",
                    clip(&v)
                ),
            );
        }

        // The product tree, flattened.
        let mut products = Vec::new();
        for b in &raw.product_tree.branches {
            flatten(b, &Context::default(), &mut products);
        }
        for f in &raw.product_tree.full_product_names {
            products.push(product(f, &Context::default()));
        }
        for r in &raw.product_tree.relationships {
            products.push(product(&r.full_product_name, &Context::default()));
        }
        if products.is_empty() {
            self.error_at(
                "product_tree",
                "",
                "product_tree defines no product: nothing could be matched to a device".into(),
            );
        }
        let mut ids = HashSet::new();
        for p in &products {
            if !ids.insert(p.product_id.clone()) {
                let id = p.product_id.clone();
                // The second definition is the one to fix.
                let quoted = serde_json::to_string(&id).unwrap_or_default();
                let place = self
                    .text
                    .match_indices(&quoted)
                    .nth(1)
                    .map(|(i, _)| line_column(self.text, i));
                self.errors.push(
                    ImportError::new(
                        self.file,
                        format!(
                            "product_id {:?} is defined twice in the product tree",
                            clip(&id)
                        ),
                    )
                    .at(place.map(|p| p.0), place.map(|p| p.1))
                    .about(Some(Record::Advisory(self.id.to_owned()))),
                );
            }
        }
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        for g in &raw.product_tree.product_groups {
            for p in &g.product_ids {
                if !ids.contains(&p.0) {
                    self.error_at(
                        "product_groups",
                        &p.0,
                        format!(
                            "product group {:?} names product_id {:?}, which the product tree \
                             does not define",
                            clip(&g.group_id.0),
                            clip(&p.0)
                        ),
                    );
                }
            }
            groups.insert(
                g.group_id.0.clone(),
                g.product_ids.iter().map(|p| p.0.clone()).collect(),
            );
        }

        if raw.vulnerabilities.is_empty() {
            self.error_at(
                "vulnerabilities",
                "",
                "vulnerabilities is empty: an advisory without a vulnerability affects nothing"
                    .into(),
            );
        }
        let mut vulnerabilities = Vec::with_capacity(raw.vulnerabilities.len());
        for v in raw.vulnerabilities {
            let check = |c: &mut Checker<'_>, pid: &str, what: &str| {
                if !ids.contains(pid) {
                    c.error_at(
                        "vulnerabilities",
                        pid,
                        format!(
                            "{what} names product_id {:?}, which the product tree does not define",
                            clip(pid)
                        ),
                    );
                }
            };
            let mut status = BTreeMap::new();
            for (s, list) in v.product_status {
                for p in &list {
                    check(&mut self, &p.0, &format!("product_status.{}", s.as_str()));
                }
                status.insert(s, list.into_iter().map(|p| p.0).collect());
            }
            let mut scores = Vec::new();
            for s in v.scores {
                let products: Vec<String> = s.products.into_iter().map(|p| p.0).collect();
                for p in &products {
                    check(&mut self, p, "a score");
                }
                for (cvss, want) in [(s.cvss_v3, "3."), (s.cvss_v4, "4.")] {
                    let Some(c) = cvss else { continue };
                    if !c.version.0.starts_with(want) {
                        let found = c.version.0.clone();
                        self.error_at(
                            "vulnerabilities",
                            &found,
                            format!("CVSS version {:?} where {want}x is expected", clip(&found)),
                        );
                    }
                    scores.push(Score {
                        cvss_version: c.version.0,
                        base_score: c.base_score.0,
                        severity: c.base_severity.as_str().to_owned(),
                        vector: c.vector_string.0,
                        products: products.clone(),
                    });
                }
            }
            let mut remediations = Vec::new();
            for r in v.remediations {
                let mut pids: Vec<String> = r.product_ids.into_iter().map(|p| p.0).collect();
                for p in &pids {
                    check(&mut self, p, "a remediation");
                }
                for g in &r.group_ids {
                    match groups.get(&g.0) {
                        Some(members) => pids.extend(members.iter().cloned()),
                        None => self.error_at(
                            "vulnerabilities",
                            &g.0,
                            format!(
                                "a remediation names product group {:?}, which the product tree \
                                 does not define",
                                clip(&g.0)
                            ),
                        ),
                    }
                }
                if pids.is_empty() {
                    let d = r.details.0.clone();
                    self.error_at(
                        "vulnerabilities",
                        &d,
                        "a remediation names no product_ids or group_ids".into(),
                    );
                }
                remediations.push(Remediation {
                    category: r.category.as_str().to_owned(),
                    date: r.date.map(|d| d.0),
                    details: r.details.0,
                    product_ids: pids,
                    url: r.url.map(|u| u.0),
                });
            }
            vulnerabilities.push(Vulnerability {
                cve: v.cve.map(|c| c.0),
                title: v.title.map(|t| t.0),
                cwe: v.cwe.map(|c| c.id.0),
                product_status: status,
                scores,
                remediations,
            });
        }

        // Every problem was located, so none is hidden from the count.
        if let Some(e) = ImportError::collect(std::mem::take(&mut self.errors), 0) {
            return Err(e);
        }
        Ok(Advisory {
            id: self.id.to_owned(),
            title: doc.title.0.clone(),
            category: match doc.category {
                DocumentCategory::SecurityAdvisory => "csaf_security_advisory",
                DocumentCategory::Vex => "csaf_vex",
            }
            .to_owned(),
            csaf_version: match doc.csaf_version {
                CsafVersion::V2_0 => "2.0",
            }
            .to_owned(),
            publisher: doc.publisher.name.0.clone(),
            tracking_version: tracking.version.0.trim().to_owned(),
            status: match tracking.status {
                TrackingStatus::Draft => "draft",
                TrackingStatus::Final => "final",
                TrackingStatus::Interim => "interim",
            }
            .to_owned(),
            initial_release: tracking.initial_release_date.0,
            current_release: tracking.current_release_date.0,
            products,
            vulnerabilities,
            source: self.file.to_owned(),
        })
    }
}

/// What the branches above a product say.
#[derive(Default, Clone)]
struct Context {
    vendor: Option<String>,
    family: Option<String>,
    product: Option<String>,
    version: Option<String>,
    range: Option<String>,
    legacy: bool,
}

fn flatten(b: &RawBranch, above: &Context, out: &mut Vec<Product>) {
    let mut c = above.clone();
    let name = Some(b.name.0.trim().to_owned());
    match b.category {
        BranchCategory::Vendor => c.vendor = name,
        BranchCategory::ProductFamily => c.family = name,
        BranchCategory::ProductName => c.product = name,
        BranchCategory::ProductVersion => c.version = name,
        BranchCategory::ProductVersionRange => c.range = name,
        BranchCategory::Legacy => c.legacy = true,
        _ => {}
    }
    if let Some(p) = &b.product {
        out.push(product(p, &c));
    }
    for sub in &b.branches {
        flatten(sub, &c, out);
    }
}

fn product(f: &RawFullProductName, c: &Context) -> Product {
    let h = f.product_identification_helper.as_ref();
    let list = |v: Option<&Vec<Text>>| {
        v.map(|v| v.iter().map(|t| t.0.clone()).collect())
            .unwrap_or_default()
    };
    Product {
        product_id: f.product_id.0.clone(),
        name: f.name.0.clone(),
        vendor: c.vendor.clone(),
        product: c.product.clone().or_else(|| c.family.clone()),
        version: c.version.clone(),
        version_range: c.range.clone(),
        legacy: c.legacy,
        cpe: h.and_then(|h| h.cpe.as_ref()).map(|t| t.0.clone()),
        purl: h.and_then(|h| h.purl.as_ref()).map(|t| t.0.clone()),
        model_numbers: list(h.map(|h| &h.model_numbers)),
        skus: list(h.map(|h| &h.skus)),
    }
}

/// 1-based line and column (in characters) of byte `at` of `text`.
pub(crate) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// How a new revision of an advisory relates to the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// Not stored yet.
    New,
    /// A newer `tracking.version`: replaces the stored one.
    Newer,
    /// The same `tracking.version`: nothing to do.
    Same,
    /// An older `tracking.version`: refused.
    Older,
    /// The two versions cannot be ordered: refused rather than guessed.
    NotComparable,
}

/// Orders `new` against `stored` (`tracking.version`: an integer or a semantic version; a
/// semantic version's build metadata after `+` does not order).
pub fn revision(stored: Option<&str>, new: &str) -> Revision {
    use std::cmp::Ordering;
    let Some(stored) = stored else {
        return Revision::New;
    };
    let strip = |s: &str| s.split('+').next().unwrap_or(s).trim().to_owned();
    match crate::compliance::version::compare(&strip(stored), &strip(new)) {
        Some(Ordering::Less) => Revision::Newer,
        Some(Ordering::Equal) => Revision::Same,
        Some(Ordering::Greater) => Revision::Older,
        None => Revision::NotComparable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"{
  "document": {
    "category": "csaf_security_advisory",
    "csaf_version": "2.0",
    "publisher": {"category": "vendor", "name": "Acme", "namespace": "https://acme.example"},
    "title": "Acme Pump",
    "tracking": {
      "id": "ACME-2024-001",
      "version": "2",
      "status": "final",
      "initial_release_date": "2024-01-01T00:00:00Z",
      "current_release_date": "2024-02-01T00:00:00Z",
      "revision_history": [{"date": "2024-01-01T00:00:00Z", "number": "1", "summary": "x"}]
    }
  },
  "product_tree": {
    "branches": [{"category": "vendor", "name": "Acme", "branches": [
      {"category": "product_name", "name": "Pump", "branches": [
        {"category": "product_version_range", "name": "<=4.2.0_Build_9",
         "product": {"name": "Acme Pump <=4.2.0_Build_9", "product_id": "P1",
           "product_identification_helper": {"cpe": "cpe:2.3:h:acme:pump:*:*:*:*:*:*:*:*",
             "purl": "pkg:generic/acme/pump", "model_numbers": ["PX-1"], "skus": ["S-9"]}}},
        {"category": "legacy", "name": "end of life", "branches": [
          {"category": "product_version", "name": "3.0",
           "product": {"name": "Acme Pump 3.0", "product_id": "P2"}}]}
      ]}
    ]}]
  },
  "vulnerabilities": [{
    "cve": "CVE-2024-0001",
    "cwe": {"id": "CWE-798", "name": "Use of Hard-coded Credentials"},
    "product_status": {"known_affected": ["P1", "P2"], "fixed": []},
    "scores": [{"cvss_v3": {"version": "3.1", "baseScore": 9.8, "baseSeverity": "CRITICAL",
       "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
       "cvss_v4": {"version": "4.0", "baseScore": 9.3, "baseSeverity": "CRITICAL",
       "vectorString": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
       "products": ["P1"]}],
    "remediations": [{"category": "vendor_fix", "date": "2024-03-01T00:00:00Z",
       "details": "Update to 4.2.0_Build_10.", "product_ids": ["P1"]}]
  }]
}"#;

    fn err(text: &str) -> ImportError {
        parse(text, "t.json").unwrap_err()
    }

    #[test]
    fn a_minimal_document_reads_whole() {
        let a = parse(MINIMAL, "t.json").unwrap();
        assert_eq!(a.id, "ACME-2024-001");
        assert_eq!(a.tracking_version, "2");
        assert_eq!(a.products.len(), 2);
        let p1 = &a.products[0];
        assert_eq!(p1.vendor.as_deref(), Some("Acme"));
        assert_eq!(p1.product.as_deref(), Some("Pump"));
        assert_eq!(p1.version_range.as_deref(), Some("<=4.2.0_Build_9"));
        assert_eq!(p1.model_numbers, ["PX-1"]);
        assert_eq!(p1.skus, ["S-9"]);
        assert!(p1.cpe.is_some() && p1.purl.is_some() && !p1.legacy);
        let p2 = &a.products[1];
        assert!(p2.legacy);
        assert_eq!(p2.version.as_deref(), Some("3.0"));
        let v = &a.vulnerabilities[0];
        assert_eq!(v.cve.as_deref(), Some("CVE-2024-0001"));
        assert_eq!(v.cwe.as_deref(), Some("CWE-798"));
        assert_eq!(
            v.product_status[&ProductStatus::KnownAffected],
            ["P1", "P2"]
        );
        assert_eq!(v.scores.len(), 2);
        assert_eq!(v.scores[0].severity, "CRITICAL");
        assert_eq!(v.scores[1].cvss_version, "4.0");
        assert_eq!(v.remediations[0].category, "vendor_fix");
        assert!(v.remediations[0].date.is_some());
    }

    #[test]
    fn type_and_shape_errors_keep_serde_s_place() {
        let e = err(&MINIMAL.replace("\"2.0\",\n    \"publisher\"", "\"1.2\",\n    \"publisher\""));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("unknown variant"), "{e}");
        let e = err(&MINIMAL.replace("\"CVE-2024-0001\"", "\"CVE-24-1\""));
        assert!(e.message.contains("not a CVE id"), "{e}");
        assert_eq!(e.line, Some(30), "{e}");
        let e = err(&MINIMAL.replace("9.8", "11.0"));
        assert!(e.message.contains("outside 0.0-10.0"), "{e}");
        assert!(e.to_string().starts_with("t.json:33:"), "{e}");
    }

    #[test]
    fn whole_document_checks_find_their_place() {
        let e = err(&MINIMAL.replace(
            "\"known_affected\": [\"P1\", \"P2\"]",
            "\"known_affected\": [\"P1\", \"P9\"]",
        ));
        assert!(e.message.contains("\"P9\""), "{e}");
        assert_eq!((e.line, e.column), (Some(32), Some(49)), "{e}");
        assert!(e.to_string().contains("advisory \"ACME-2024-001\""), "{e}");
        let e = err(&MINIMAL.replace("\"product_id\": \"P2\"", "\"product_id\": \"P1\""));
        assert!(e.message.contains("defined twice"), "{e}");
        assert_eq!(e.line, Some(25), "{e}");
    }

    #[test]
    fn revisions_order_by_tracking_version() {
        assert_eq!(revision(None, "1"), Revision::New);
        assert_eq!(revision(Some("1"), "2"), Revision::Newer);
        assert_eq!(revision(Some("2"), "2"), Revision::Same);
        assert_eq!(revision(Some("10"), "9"), Revision::Older);
        assert_eq!(revision(Some("1.0.0"), "1.1.0"), Revision::Newer);
        assert_eq!(
            revision(Some("1.0.0+build.1"), "1.0.0+build.2"),
            Revision::Same
        );
        assert_eq!(revision(Some("1.0.0-rc.1"), "1.0.0"), Revision::Newer);
        assert_eq!(revision(Some("2"), "draft"), Revision::NotComparable);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged advisories are refused with the file's name, never a panic; one that still
        /// parses keeps every product id it references defined.
        #[test]
        fn damaged_advisories_never_panic(at in 0usize..2600, cut in 0usize..12, junk in "[\\[\\]{}\",:.a-z0-9 ]{0,8}") {
            let damaged = crate::import::testing::splice(MINIMAL, at, cut, &junk);
            match parse(&damaged, "t.json") {
                Err(e) => proptest::prop_assert!(e.to_string().starts_with("t.json")),
                Ok(a) => {
                    let ids: HashSet<&str> = a.products.iter().map(|p| p.product_id.as_str()).collect();
                    for v in &a.vulnerabilities {
                        for list in v.product_status.values() {
                            for p in list {
                                proptest::prop_assert!(ids.contains(p.as_str()));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tracking_versions_are_integers_or_semantic_versions() {
        for ok in [
            "1",
            "0",
            "12",
            "1.0.0",
            "2.1.3-rc.1",
            "1.0.0+build.7",
            "1.0.0-alpha+001",
        ] {
            assert!(is_tracking_version(ok), "{ok}");
        }
        for bad in [
            "",
            "01",
            "1.0",
            "v1",
            "first draft",
            "1.0.0-",
            "1.0.0+",
            "1..0",
        ] {
            assert!(!is_tracking_version(bad), "{bad}");
        }
    }
}
