//! Matching one device to one advisory: the device's manufacturer, model and software version
//! (as the collector infers them) against each product entry of the advisory, through the
//! vendor alias table ([`super::vendors`]) and the version order ([`super::version`]).
//!
//! A pure function, so the flags, the patch-SLA report and their tests share one answer. Every
//! [`ProductMatch`] explains itself — advisory, product entry, how the vendor and the model
//! matched, the version or range and the comparison's outcome — and an undecidable version is
//! reported as such ([`Verdict::VersionNotComparable`], both strings kept) or as
//! [`Verdict::VersionUnknown`] when the wire never showed one: never silently matched or
//! dropped.
//!
//! Model matching is deliberately narrow, because advisory product names are CISA prose ("Welch
//! Allyn ELI 280/BUR280/MLBUR 280 Resting Electrocardiograph"): the device's model must equal
//! the product name, equal an abbreviation the name gives in parentheses ("CSM"), equal a
//! model number of the entry's identification helper, or appear in the name as a run of whole
//! words (spacing ignored: "BUR 280" = "BUR280") that is not only generic words ("monitor",
//! "software") and carries a model number or two or more words.

use serde::Serialize;

use super::sbom::{IdentifiedBy, SbomVia};
use super::vendors::{VendorAliases, VendorMatch};
use super::version::{membership, Membership, Range};
use crate::import::advisories::{Advisory, Product};
use crate::import::kev::{KevCatalog, KevEntry};

/// Words that name a kind of thing rather than a product: a match made only of them is none.
const GENERIC: &[&str] = &[
    "the",
    "and",
    "with",
    "for",
    "of",
    "system",
    "systems",
    "software",
    "firmware",
    "control",
    "operating",
    "server",
    "client",
    "viewer",
    "monitor",
    "monitoring",
    "patient",
    "device",
    "medical",
    "pump",
    "infusion",
    "station",
    "workstation",
    "central",
    "pro",
    "premium",
    "all",
    "versions",
    "version",
    "module",
    "modules",
];

/// What the collector knows of a device.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceFacts<'a> {
    /// Manufacturer, as announced or from the asset register.
    pub manufacturer: Option<&'a str>,
    /// Model.
    pub model: Option<&'a str>,
    /// Current software version.
    pub software_version: Option<&'a str>,
}

/// How the device's model matched the product entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum ModelMatch {
    /// The model is the product name (folded).
    ProductName,
    /// The model is an abbreviation the product name gives in parentheses.
    Abbreviation {
        /// As written in the name.
        abbreviation: String,
    },
    /// The model is a model number of the entry's identification helper.
    ModelNumber {
        /// As written in the advisory.
        model_number: String,
    },
    /// The model's words appear in the product name as a run of whole words.
    Words {
        /// The words of the product name that matched.
        words: String,
    },
    /// The model is the product of an SBOM one of whose components the entry identifies
    /// ([`ProductMatch::sbom`] says which).
    SbomProduct {
        /// The SBOM's product model.
        model: String,
    },
}

/// The outcome for one product entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The device's version is in the entry's version or range.
    Affected,
    /// It is outside.
    NotAffected,
    /// The two cannot be compared; both strings are kept for the report.
    VersionNotComparable {
        /// Why.
        reason: String,
        /// The device's version.
        version: String,
        /// The advisory's version or range.
        range: String,
    },
    /// The device matches the product but no software version was seen: affected unless shown
    /// otherwise, for the report to ask.
    VersionUnknown,
}

/// One CVE of the advisory that concerns the product entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CveStatus {
    /// The CVE id (or the vulnerability's title when it has none).
    pub cve: String,
    /// The product's status for it (`known_affected`, `fixed`, …).
    pub status: String,
    /// The highest CVSS base score given for this product, and its severity.
    pub score: Option<(f64, String)>,
}

/// A device matched to one product entry of an advisory, with everything that made it so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductMatch {
    /// `tracking.id`.
    pub advisory: String,
    /// `tracking.version`.
    pub advisory_version: String,
    /// The entry's product id.
    pub product_id: String,
    /// The entry's full product name.
    pub product_name: String,
    /// The entry's vendor branch.
    pub vendor: String,
    /// How the device's manufacturer matched it.
    pub vendor_match: VendorMatch,
    /// The device's model, as seen.
    pub device_model: String,
    /// How it matched.
    pub model_match: ModelMatch,
    /// The entry's version (`product_version`) or range (`product_version_range`).
    pub version_or_range: Option<String>,
    /// The device's version, if seen.
    pub device_version: Option<String>,
    /// The outcome.
    pub verdict: Verdict,
    /// Under a `legacy` branch: end of life.
    pub end_of_life: bool,
    /// The CVEs that name this product, with its status for each.
    pub cves: Vec<CveStatus>,
    /// Matched through an SBOM: the entry identifies one of its components (by PURL or CPE)
    /// and the verdict is about that component's version. Boxed: most matches have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<Box<SbomVia>>,
}

impl ProductMatch {
    /// One sentence a clinical engineer can take to the vendor.
    pub fn explain(&self) -> String {
        if let Some(via) = &self.sbom {
            return self.explain_sbom(via);
        }
        let vendor = match &self.vendor_match {
            VendorMatch::Folded { .. } => format!("vendor {:?}", self.vendor),
            VendorMatch::Alias { vendor, .. } => {
                format!("vendor {:?} (alias table: {vendor})", self.vendor)
            }
        };
        let model = match &self.model_match {
            ModelMatch::ProductName => "is the product name".to_owned(),
            ModelMatch::Abbreviation { abbreviation } => {
                format!("is the abbreviation ({abbreviation}) in the product name")
            }
            ModelMatch::ModelNumber { model_number } => {
                format!("is model number {model_number:?}")
            }
            ModelMatch::Words { words } => format!("matches the words {words:?}"),
            ModelMatch::SbomProduct { model } => format!("is the SBOM's product {model:?}"),
        };
        let range = self
            .version_or_range
            .as_deref()
            .unwrap_or("no version given");
        let version = match (&self.verdict, &self.device_version) {
            (Verdict::Affected, Some(v)) => format!("version {v} is in {range}: affected"),
            (Verdict::Affected, None) => format!("{range}: every version affected"),
            (Verdict::NotAffected, Some(v)) => format!("version {v} is outside {range}"),
            (Verdict::NotAffected, None) => format!("outside {range}"),
            (Verdict::VersionNotComparable { reason, .. }, _) => {
                format!("version not comparable with {range} ({reason})")
            }
            (Verdict::VersionUnknown, _) => {
                format!("no software version seen to compare with {range}")
            }
        };
        let cves: Vec<&str> = self.cves.iter().map(|c| c.cve.as_str()).collect();
        let eol = if self.end_of_life {
            "; end of life (legacy branch)"
        } else {
            ""
        };
        format!(
            "{} {} {:?}: {vendor}; model {:?} {model}; {version}; {}{eol}",
            self.advisory,
            self.product_id,
            self.product_name,
            self.device_model,
            cves.join(", ")
        )
    }
}

impl ProductMatch {
    /// [`ProductMatch::explain`] for a match through an SBOM: which SBOM put which component on
    /// the device, and how the advisory entry names that component.
    fn explain_sbom(&self, via: &SbomVia) -> String {
        let c = &via.component;
        let cm = &via.component_match;
        let component = format!(
            "component {} {}{}",
            c.name,
            c.version.as_deref().unwrap_or("(no version)"),
            [c.purl.as_deref(), c.cpe.as_deref()]
                .into_iter()
                .flatten()
                .map(|i| format!(" {i}"))
                .collect::<String>()
        );
        let by = match cm.identified_by {
            IdentifiedBy::Purl => "PURL",
            IdentifiedBy::Cpe => "CPE",
        };
        let range = self.version_or_range.as_deref().unwrap_or("every version");
        let version = match (&self.verdict, &cm.component_version) {
            (Verdict::Affected, Some(v)) => {
                format!("component version {v} is in {range}: affected")
            }
            (Verdict::Affected, None) => format!("{range}: affected"),
            (Verdict::NotAffected, v) => format!(
                "component version {} is outside {range}",
                v.as_deref().unwrap_or("?")
            ),
            (Verdict::VersionNotComparable { reason, .. }, _) => {
                format!("component version not comparable with {range} ({reason})")
            }
            (Verdict::VersionUnknown, _) => {
                format!("the SBOM gives the component no version to compare with {range}")
            }
        };
        let vendor = match &self.vendor_match {
            VendorMatch::Folded { .. } => String::new(),
            VendorMatch::Alias { vendor, .. } => {
                format!(" (manufacturer by alias table: {vendor})")
            }
        };
        let cves: Vec<&str> = self.cves.iter().map(|c| c.cve.as_str()).collect();
        format!(
            "{} {} {:?} via SBOM {} version {} (contract {}, product {:?} {}, {}): device model {:?} \
             {}{vendor} runs its {component}, which the advisory identifies by {by} {}; {version}; {}",
            self.advisory,
            self.product_id,
            self.product_name,
            via.serial_number.as_deref().unwrap_or("without serial number"),
            via.bom_version,
            via.contract_id,
            via.product_model,
            via.product_version.as_deref().unwrap_or("any version"),
            via.source,
            self.device_model,
            self.device_version.as_deref().unwrap_or("(version not seen)"),
            cm.advisory_identifier,
            cves.join(", ")
        )
    }
}

/// Lower-case alphanumeric words.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How `model` matches `product`, if it does.
pub fn model_match(model: &str, product: &Product) -> Option<ModelMatch> {
    let m = words(model);
    let compact: String = m.concat();
    if compact.len() < 2 {
        return None;
    }
    for n in &product.model_numbers {
        if words(n).concat() == compact {
            return Some(ModelMatch::ModelNumber {
                model_number: n.clone(),
            });
        }
    }
    let names: Vec<&str> = [Some(product.name.as_str()), product.product.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    for name in &names {
        if words(name).concat() == compact {
            return Some(ModelMatch::ProductName);
        }
    }
    for name in &names {
        // "(CSM)": an abbreviation the advisory itself gives.
        for part in name.split('(').skip(1) {
            if let Some((inside, _)) = part.split_once(')') {
                if words(inside).concat() == compact {
                    return Some(ModelMatch::Abbreviation {
                        abbreviation: inside.trim().to_owned(),
                    });
                }
            }
        }
    }
    // A run of whole words of the product name that spells the model, spacing ignored.
    let meaningful = |run: &[String]| {
        let specific: Vec<&String> = run
            .iter()
            .filter(|w| !GENERIC.contains(&w.as_str()))
            .collect();
        !specific.is_empty()
            && (specific.len() >= 2
                || specific
                    .iter()
                    .any(|w| w.bytes().any(|b| b.is_ascii_digit())))
    };
    for name in &names {
        let p = words(name);
        for i in 0..p.len() {
            let mut joined = String::new();
            for j in i..p.len() {
                joined.push_str(&p[j]);
                if joined.len() > compact.len() {
                    break;
                }
                if joined == compact && meaningful(&p[i..=j]) {
                    return Some(ModelMatch::Words {
                        words: p[i..=j].join(" "),
                    });
                }
            }
        }
    }
    None
}

/// Every product entry of `advisory` the device matches (vendor and model), with the verdict
/// on its version. A device without manufacturer or model matches nothing: the advisory's
/// products are named by both.
pub fn match_device(
    device: &DeviceFacts<'_>,
    advisory: &Advisory,
    aliases: &VendorAliases,
) -> Vec<ProductMatch> {
    let (Some(manufacturer), Some(model)) = (device.manufacturer, device.model) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &advisory.products {
        let Some(vendor) = p.vendor.as_deref() else {
            continue;
        };
        let Some(vendor_match) = aliases.same_vendor(manufacturer, vendor) else {
            continue;
        };
        let Some(model_match) = model_match(model, p) else {
            continue;
        };
        let (spec, exact) = match (&p.version, &p.version_range) {
            (Some(v), _) => (Some(v.clone()), true),
            (None, Some(r)) => (Some(r.clone()), false),
            (None, None) => (None, false),
        };
        let verdict = match (&spec, device.software_version) {
            // An entry without a version covers the product as a whole.
            (None, _) => Verdict::Affected,
            (Some(s), Some(v)) => match membership(v, s, exact) {
                Membership::Affected => Verdict::Affected,
                Membership::NotAffected => Verdict::NotAffected,
                Membership::NotComparable {
                    reason,
                    version,
                    range,
                } => Verdict::VersionNotComparable {
                    reason,
                    version,
                    range,
                },
            },
            // `vers:all/*` needs no version to decide.
            (Some(s), None) if !exact && matches!(Range::parse(s), Ok(Range::All)) => {
                Verdict::Affected
            }
            (Some(_), None) => Verdict::VersionUnknown,
        };
        out.push(ProductMatch {
            advisory: advisory.id.clone(),
            advisory_version: advisory.tracking_version.clone(),
            product_id: p.product_id.clone(),
            product_name: p.name.clone(),
            vendor: vendor.to_owned(),
            vendor_match,
            device_model: model.to_owned(),
            model_match,
            version_or_range: spec,
            device_version: device.software_version.map(str::to_owned),
            verdict,
            end_of_life: p.legacy,
            cves: cves_for(advisory, &p.product_id),
            sbom: None,
        });
    }
    out
}

/// The KEV entries of a match's CVEs (with their due dates), in the match's CVE order. The
/// KEV catalog names CVEs, so this is the whole link: its `vendorProject`/`product` are CISA's
/// words and are not matched against the device.
pub fn known_exploited<'k>(m: &ProductMatch, catalog: &'k KevCatalog) -> Vec<&'k KevEntry> {
    m.cves
        .iter()
        .filter_map(|c| catalog.entries.iter().find(|e| e.cve == c.cve))
        .collect()
}

/// The vulnerabilities that name `product_id` in their product status, with its status and the
/// highest score given for it.
pub(crate) fn cves_for(advisory: &Advisory, product_id: &str) -> Vec<CveStatus> {
    let mut out = Vec::new();
    for (i, v) in advisory.vulnerabilities.iter().enumerate() {
        // The first status (in CSAF's key order) that lists the product.
        let Some(status) = v
            .product_status
            .iter()
            .find(|(_, ids)| ids.iter().any(|id| id == product_id))
            .map(|(s, _)| *s)
        else {
            continue;
        };
        let score = v
            .scores
            .iter()
            .filter(|s| s.products.iter().any(|p| p == product_id))
            .max_by(|a, b| a.base_score.total_cmp(&b.base_score))
            .map(|s| (s.base_score, s.severity.clone()));
        out.push(CveStatus {
            cve: v
                .cve
                .clone()
                .or_else(|| v.title.clone())
                .unwrap_or_else(|| format!("vulnerability {}", i + 1)),
            status: status.as_str().to_owned(),
            score,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::advisories;
    use std::path::PathBuf;

    fn public(name: &str) -> Advisory {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/advisories/public")
            .join(name);
        advisories::load_file(&p).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dev<'a>(m: &'a str, model: &'a str, v: Option<&'a str>) -> DeviceFacts<'a> {
        DeviceFacts {
            manufacturer: Some(m),
            model: Some(model),
            software_version: v,
        }
    }

    #[test]
    fn connex_spot_monitor_through_the_welch_allyn_alias_and_the_1_52_trap() {
        let a = public("icsma-24-151-02.json");
        let t = VendorAliases::bundled();
        let m = match_device(&dev("Welch Allyn", "CSM", Some("1.52")), &a, &t);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].verdict, Verdict::Affected);
        assert!(matches!(m[0].vendor_match, VendorMatch::Alias { .. }));
        assert_eq!(
            m[0].model_match,
            ModelMatch::Abbreviation {
                abbreviation: "CSM".into()
            }
        );
        assert_eq!(m[0].cves[0].cve, "CVE-2024-1275");
        assert_eq!(m[0].cves[0].status, "known_affected");
        assert_eq!(m[0].cves[0].score.as_ref().unwrap().1, "HIGH");
        let text = m[0].explain();
        assert!(
            text.contains("ICSMA-24-151-02")
                && text.contains("alias table: Baxter")
                && text.contains("version 1.52 is in <=1.52: affected"),
            "{text}"
        );
        let fixed = match_device(
            &dev("Welch Allyn", "Connex Spot Monitor", Some("1.52.01")),
            &a,
            &t,
        );
        assert_eq!(fixed[0].verdict, Verdict::NotAffected, "{fixed:?}");
        assert_eq!(
            fixed[0].model_match,
            ModelMatch::Words {
                words: "connex spot monitor".into()
            }
        );
        let unknown = match_device(&dev("Baxter", "CSM", None), &a, &t);
        assert_eq!(unknown[0].verdict, Verdict::VersionUnknown);
    }

    #[test]
    fn eli_electrocardiographs_by_model_words_spacing_ignored() {
        let a = public("icsma-22-167-01.json");
        let t = VendorAliases::bundled();
        let m = match_device(&dev("Welch Allyn, Inc.", "BUR 280", Some("2.3.1")), &a, &t);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].product_id, "CSAFPID-0003");
        assert_eq!(m[0].verdict, Verdict::Affected);
        assert_eq!(m[0].cves.len(), 2);
        let m = match_device(&dev("Mortara Instrument", "ELI 380", Some("2.6.1")), &a, &t);
        assert_eq!(m[0].verdict, Verdict::NotAffected, "{m:?}");
        // "Resting Electrocardiograph" is no model: every product has it; generic words alone
        // match nothing.
        assert!(match_device(&dev("Welch Allyn", "Monitor", Some("1")), &a, &t).is_empty());
        // Another vendor's ELI 280 is not this one.
        assert!(match_device(&dev("Philips", "ELI 280", Some("1")), &a, &t).is_empty());
    }

    #[test]
    fn contec_firmware_strings_and_vers_all() {
        let a = public("icsma-25-030-01.json");
        let t = VendorAliases::bundled();
        let m = match_device(
            &dev(
                "Contec Medical Systems Co., Ltd.",
                "CMS8000",
                Some("CMS7.820.075.08/0.74(0.75)"),
            ),
            &a,
            &t,
        );
        // The model words "cms8000" are in all four product names.
        assert_eq!(m.len(), 4, "{m:?}");
        let verdicts: Vec<&Verdict> = m.iter().map(|m| &m.verdict).collect();
        assert_eq!(verdicts[1], &Verdict::Affected, "same firmware string");
        assert!(matches!(verdicts[2], Verdict::VersionNotComparable { .. }));
        assert_eq!(verdicts[3], &Verdict::Affected, "vers:all/*");
        let all = match_device(&dev("Contec Health", "CMS8000", None), &a, &t);
        assert_eq!(
            all[3].verdict,
            Verdict::Affected,
            "vers:all/* needs no version"
        );
        assert_eq!(all[0].verdict, Verdict::VersionUnknown);
    }

    #[test]
    fn minknow_two_entries_and_b_braun_part_numbers() {
        let t = VendorAliases::bundled();
        let a = public("icsma-25-294-01.json");
        let m = match_device(&dev("Oxford Nanopore", "MinKNOW", Some("24.06")), &a, &t);
        let v: Vec<_> = m
            .iter()
            .map(|m| (m.product_id.as_str(), &m.verdict))
            .collect();
        assert_eq!(
            v,
            [
                ("CSAFPID-0001", &Verdict::NotAffected),
                ("CSAFPID-0002", &Verdict::Affected)
            ]
        );
        let a = public("icsma-23-103-01.json");
        let m = match_device(
            &dev(
                "B. Braun Medical Inc.",
                "Battery pack SP with WIFI",
                Some("053L000092"),
            ),
            &a,
            &t,
        );
        assert_eq!(m.len(), 1, "{m:?}");
        match &m[0].verdict {
            Verdict::VersionNotComparable { version, range, .. } => {
                assert_eq!(version, "053L000092");
                assert!(range.starts_with("053L000091 (global)"), "{range}");
            }
            other => panic!("{other:?}"),
        }
        assert!(m[0].explain().contains("version not comparable"));
    }

    #[test]
    fn known_exploited_cves_are_found_by_id_with_their_due_date() {
        let a = public("icsma-25-294-01.json");
        let t = VendorAliases::bundled();
        let m = match_device(&dev("Oxford Nanopore", "MinKNOW", Some("24.10")), &a, &t);
        let kev_text = r#"{"catalogVersion": "x", "dateReleased": "2025-01-01T00:00:00Z", "count": 1,
          "vulnerabilities": [{"cveID": "CVE-2025-54808", "vendorProject": "Oxford Nanopore",
          "product": "MinKNOW", "vulnerabilityName": "n", "dateAdded": "2025-11-01",
          "shortDescription": "d", "requiredAction": "a", "dueDate": "2025-11-22"}]}"#;
        let catalog = crate::import::kev::parse(kev_text, "k.json").unwrap();
        let hits = known_exploited(&m[1], &catalog);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].due_date.to_string(), "2025-11-22");
        assert!(
            known_exploited(&m[0], &catalog).is_empty(),
            "CVE-2024-35585 is not in it"
        );
    }

    #[test]
    fn no_manufacturer_or_model_matches_nothing() {
        let a = public("icsma-24-058-01.json");
        let t = VendorAliases::bundled();
        let d = DeviceFacts {
            manufacturer: Some("Santesoft"),
            model: None,
            software_version: Some("14.0.3"),
        };
        assert!(match_device(&d, &a, &t).is_empty());
        let m = match_device(
            &dev("SANTESOFT LTD", "Sante DICOM Viewer Pro", Some("14.0.3")),
            &a,
            &t,
        );
        assert_eq!(m[0].model_match, ModelMatch::ProductName);
        assert_eq!(m[0].verdict, Verdict::Affected);
        assert!(matches!(
            m[0].vendor_match,
            VendorMatch::Alias { .. } | VendorMatch::Folded { .. }
        ));
    }
}
