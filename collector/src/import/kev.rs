//! CISA Known Exploited Vulnerabilities (KEV) catalog import: the JSON catalog
//! (`known_exploited_vulnerabilities.json`) read into a [`KevCatalog`].
//!
//! Validation follows CISA's schema (`known_exploited_vulnerabilities_schema.json`): the
//! catalog needs `catalogVersion`, `dateReleased` (date-time), `count` and `vulnerabilities`;
//! each entry `cveID` (`CVE-YYYY-NNNN…`), `vendorProject`, `product`, `vulnerabilityName`,
//! `dateAdded` and `dueDate` (dates), `shortDescription` and `requiredAction`;
//! `knownRansomwareCampaignUse`, `notes` and `cwes` (`CWE-N`) are optional. Beyond the schema,
//! a `count` that disagrees with the entries (a truncated download), a CVE listed twice, and an
//! empty catalog (which would erase every known-exploited fact on import) are refused. The
//! catalog replaces the stored one whole, so it is all or nothing like every import.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::import::advisories::{is_cve, json_error, line_column, MAX_FILE_BYTES};
use crate::import::files::{read_text, ImportError, Record};

/// The catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KevCatalog {
    /// `title`, when given.
    pub title: Option<String>,
    /// `catalogVersion`, e.g. `2025.08.25`.
    pub catalog_version: String,
    /// `dateReleased`.
    pub date_released: DateTime<Utc>,
    /// The entries, in catalog order.
    pub entries: Vec<KevEntry>,
}

/// One known exploited vulnerability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KevEntry {
    /// `cveID`.
    pub cve: String,
    /// `vendorProject`.
    pub vendor_project: String,
    /// `product`.
    pub product: String,
    /// `vulnerabilityName`.
    pub name: String,
    /// `dateAdded`.
    pub date_added: NaiveDate,
    /// `shortDescription`.
    pub short_description: String,
    /// `requiredAction`.
    pub required_action: String,
    /// `dueDate`: when US federal agencies must have acted; the deadline alerts quote.
    pub due_date: NaiveDate,
    /// `knownRansomwareCampaignUse`: `Known` or `Unknown`.
    pub known_ransomware_campaign_use: Option<String>,
    /// `notes`.
    pub notes: Option<String>,
    /// `cwes`.
    pub cwes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCatalog {
    title: Option<String>,
    catalog_version: Bounded,
    date_released: DateTimeField,
    count: u64,
    vulnerabilities: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(rename = "cveID")]
    cve_id: CveId,
    vendor_project: Bounded,
    product: Bounded,
    vulnerability_name: Bounded,
    date_added: DateField,
    short_description: Bounded,
    required_action: Bounded,
    due_date: DateField,
    known_ransomware_campaign_use: Option<Bounded>,
    notes: Option<Bounded>,
    #[serde(default)]
    cwes: Vec<Cwe>,
}

/// A string of at most 64 KiB (the schema allows empty strings).
struct Bounded(String);

impl<'de> Deserialize<'de> for Bounded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > 64 * 1024 {
            return Err(serde::de::Error::custom("longer than 64 KiB"));
        }
        Ok(Bounded(s))
    }
}

struct CveId(String);

impl<'de> Deserialize<'de> for CveId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_cve(&s) {
            Ok(CveId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "cveID {:?} is not a CVE id (CVE-YYYY-NNNN)",
                s.chars().take(60).collect::<String>()
            )))
        }
    }
}

struct Cwe(String);

impl<'de> Deserialize<'de> for Cwe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.strip_prefix("CWE-").is_some_and(|n| {
            !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit())
        });
        if ok {
            Ok(Cwe(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "cwe {:?} is not a CWE id (CWE-N)",
                s.chars().take(60).collect::<String>()
            )))
        }
    }
}

struct DateField(NaiveDate);

impl<'de> Deserialize<'de> for DateField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map(DateField)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{:?} is not a date (YYYY-MM-DD)",
                    s.chars().take(60).collect::<String>()
                ))
            })
    }
}

struct DateTimeField(DateTime<Utc>);

impl<'de> Deserialize<'de> for DateTimeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| DateTimeField(t.with_timezone(&Utc)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{:?} is not an RFC 3339 date-time",
                    s.chars().take(60).collect::<String>()
                ))
            })
    }
}

/// Reads and checks a KEV catalog file.
pub fn load(path: &Path) -> Result<KevCatalog, ImportError> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| ImportError::new(&file, format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::new(
            &file,
            format!("{size} bytes: larger than the KEV catalog ({MAX_FILE_BYTES} bytes at most)"),
        ));
    }
    let text = read_text(path, &file)?;
    parse(&text, &file)
}

/// Parses and checks a KEV catalog; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<KevCatalog, ImportError> {
    let raw: RawCatalog = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let at_key = |key: &str| {
        text.find(&format!("\"{key}\""))
            .map(|i| line_column(text, i))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)))
    };
    let mut errors = Vec::new();
    if raw.vulnerabilities.is_empty() {
        let (l, c) = at_key("vulnerabilities");
        errors.push(
            ImportError::new(
                file,
                "the catalog lists no vulnerability: importing it would erase every known \
                 exploited fact",
            )
            .at(l, c),
        );
    }
    if raw.count != raw.vulnerabilities.len() as u64 {
        let (l, c) = at_key("count");
        errors.push(
            ImportError::new(
                file,
                format!(
                    "count is {} but the catalog lists {} vulnerabilities (a truncated or edited \
                     download?)",
                    raw.count,
                    raw.vulnerabilities.len()
                ),
            )
            .at(l, c),
        );
    }
    let mut seen = HashSet::new();
    for e in &raw.vulnerabilities {
        if !seen.insert(e.cve_id.0.as_str()) {
            let quoted = format!("\"{}\"", e.cve_id.0);
            let place = text
                .match_indices(&quoted)
                .nth(1)
                .map(|(i, _)| line_column(text, i));
            errors.push(
                ImportError::new(file, "listed twice")
                    .at(place.map(|p| p.0), place.map(|p| p.1))
                    .about(Some(Record::Kev(e.cve_id.0.clone()))),
            );
        }
    }
    if let Some(e) = ImportError::collect(errors, 0) {
        return Err(e);
    }
    Ok(KevCatalog {
        title: raw.title,
        catalog_version: raw.catalog_version.0,
        date_released: raw.date_released.0,
        entries: raw
            .vulnerabilities
            .into_iter()
            .map(|e| KevEntry {
                cve: e.cve_id.0,
                vendor_project: e.vendor_project.0,
                product: e.product.0,
                name: e.vulnerability_name.0,
                date_added: e.date_added.0,
                short_description: e.short_description.0,
                required_action: e.required_action.0,
                due_date: e.due_date.0,
                known_ransomware_campaign_use: e.known_ransomware_campaign_use.map(|b| b.0),
                notes: e.notes.map(|b| b.0),
                cwes: e.cwes.into_iter().map(|c| c.0).collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{
  "catalogVersion": "2025.01.01",
  "dateReleased": "2025-01-01T00:00:00.000Z",
  "count": 1,
  "vulnerabilities": [
    {"cveID": "CVE-2021-44228", "vendorProject": "Apache", "product": "Log4j2",
     "vulnerabilityName": "Log4Shell", "dateAdded": "2021-12-10",
     "shortDescription": "x", "requiredAction": "patch", "dueDate": "2021-12-24",
     "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": ["CWE-20"]}
  ]
}"#;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged catalogs are refused with the file's name, never a panic.
        #[test]
        fn damaged_catalogs_never_panic(at in 0usize..500, cut in 0usize..12, junk in "[\\[\\]{}\",:.a-zA-Z0-9 -]{0,8}") {
            let damaged = crate::import::testing::splice(ONE, at, cut, &junk);
            if let Err(e) = parse(&damaged, "k.json") {
                proptest::prop_assert!(e.to_string().starts_with("k.json"));
            }
        }
    }

    #[test]
    fn a_catalog_reads_and_its_checks_say_where() {
        let c = parse(ONE, "k.json").unwrap();
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].due_date.to_string(), "2021-12-24");
        assert_eq!(
            c.entries[0].known_ransomware_campaign_use.as_deref(),
            Some("Known")
        );
        let e = parse(&ONE.replace("\"count\": 1", "\"count\": 2"), "k.json").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = parse(&ONE.replace("2021-12-24", "24/12/2021"), "k.json").unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("not a date"), "{e}");
        let e = parse(&ONE.replace("CWE-20", "CWE20"), "k.json").unwrap_err();
        assert!(e.message.contains("not a CWE id"), "{e}");
    }
}
