//! The advisory scope: one device against each imported security advisory (CSAF), through
//! [`matching::match_device`], the KEV catalog and the covering contract's `patch_sla_days`.
//! Every flag's subject is the device and its detail the advisory's `tracking.id`, so a device
//! named by two advisories carries two flags of a kind, each resolved on its own.
//!
//! The patch clocks (written up in `docs/contracts.md`, "Patch clocks"):
//!
//! - the severity is the highest CVSS base severity the advisory gives the matched products'
//!   affected CVEs; it picks the contract's `patch_sla_days.<severity>` (a severity the
//!   contract does not state starts no clock; an advisory without any score takes the
//!   strictest stated SLA, and the evidence says so);
//! - a fix exists from F: the earliest remediation for a matched product whose text states an
//!   available fixed version, of any category ([`stated_fix`]; CISA files fixed versions under
//!   `mitigation` too); else, unless a remediation only promises one ("expected in an upcoming
//!   release", "in process"), the earliest `vendor_fix`. F is its `date`, else the advisory's
//!   `initial_release_date`. `patch_overdue` holds from the day after
//!   F + SLA days while the device's current version is still affected;
//! - without such a fix, `vendor_fix_overdue` holds from the day after the advisory's
//!   `initial_release_date` + SLA days: the supplier's side of the clause.
//!
//! Only product statuses that say "affected" (`known_affected`, `first_affected`,
//! `last_affected`, `under_investigation`) make a version vulnerable: an entry listed as
//! `fixed` or `known_not_affected` that the version falls in means the opposite. A version
//! that cannot be compared, or a device that never showed one, is neither vulnerable nor
//! cleared: `advisory_version_not_comparable` (low) carries both strings for a person to
//! decide, rather than a guess either way.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use serde_json::json;

use super::{device_evidence, flag, time_of, At, DeviceFacts, FlagConfig, FlagKind, Severity};
use crate::compliance::fixes::{stated_fix, FixText};
use crate::compliance::matching::{self, ProductMatch, Verdict};
use crate::compliance::sbom::{self, SbomIndex};
use crate::import::advisories::{Advisory, ProductStatus};
use crate::import::kev::KevCatalog;
use crate::import::model::PatchSla;
use crate::store::{DeviceView, FlagInstance, ResolutionNote};

/// Statuses under which a matched version is vulnerable.
const AFFECTED: &[&str] = &[
    "known_affected",
    "first_affected",
    "last_affected",
    "under_investigation",
];

/// The CVSS severity the clocks run on, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cvss {
    /// CRITICAL.
    Critical,
    /// HIGH.
    High,
    /// MEDIUM.
    Medium,
    /// LOW or NONE.
    Low,
}

impl Cvss {
    fn from_name(s: &str) -> Cvss {
        match s.to_ascii_uppercase().as_str() {
            "CRITICAL" => Cvss::Critical,
            "HIGH" => Cvss::High,
            "MEDIUM" => Cvss::Medium,
            _ => Cvss::Low,
        }
    }

    /// The `patch_sla_days` key.
    pub fn as_str(self) -> &'static str {
        match self {
            Cvss::Critical => "critical",
            Cvss::High => "high",
            Cvss::Medium => "medium",
            Cvss::Low => "low",
        }
    }

    /// The flag severity of a `vulnerable_software` flag.
    fn flag_severity(self) -> Severity {
        match self {
            Cvss::Critical | Cvss::High => Severity::High,
            Cvss::Medium => Severity::Medium,
            Cvss::Low => Severity::Low,
        }
    }
}

/// The contract's patch days for `sev`; without a score, the strictest stated.
pub fn sla_days(sla: &PatchSla, sev: Option<Cvss>) -> Option<u32> {
    match sev {
        Some(Cvss::Critical) => sla.critical,
        Some(Cvss::High) => sla.high,
        Some(Cvss::Medium) => sla.medium,
        Some(Cvss::Low) => sla.low,
        None => [sla.critical, sla.high, sla.medium, sla.low]
            .into_iter()
            .flatten()
            .min(),
    }
}

/// A fix the advisory states for the matched products.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// The remediation's category (`vendor_fix`, or `mitigation` stating a fixed version).
    pub category: String,
    /// F: when it became available.
    pub since: NaiveDate,
    /// Where F comes from: `remediation date` or `advisory initial_release_date`.
    pub since_from: &'static str,
    /// The fixed version, when the advisory states one (product status `fixed`, or a
    /// remediation sentence).
    pub version: Option<String>,
    /// How the version was read: the fixed product entry, or the sentence.
    pub version_evidence: serde_json::Value,
    /// The remediation text.
    pub details: String,
}

/// What one advisory says about one device: the facts every flag of the scope and the
/// patch-SLA report read.
#[derive(Debug, Clone)]
pub struct Assessment<'a> {
    /// The advisory.
    pub advisory: &'a Advisory,
    /// Entries whose version range holds the device's version, with an affected status.
    pub affected: Vec<ProductMatch>,
    /// Entries that could not decide (version not comparable or not seen).
    pub undecided: Vec<ProductMatch>,
    /// The affected CVEs with their highest score: id → (score, severity name).
    pub cves: BTreeMap<String, Option<(f64, String)>>,
    /// Their highest CVSS severity.
    pub severity: Option<Cvss>,
    /// The vendor fix, if one is available.
    pub fix: Option<Fix>,
    /// A remediation that promises a fix (not yet one), quoted.
    pub promised_fix: Option<String>,
}

impl Assessment<'_> {
    /// The advisory's release date.
    pub fn released(&self) -> NaiveDate {
        self.advisory.initial_release.date_naive()
    }
}

fn is_affected(m: &ProductMatch) -> bool {
    m.cves.iter().any(|c| AFFECTED.contains(&c.status.as_str()))
}

/// Matches `device` against `advisory`, directly and through the SBOMs `bound` to it (entries
/// that identify one of their components by PURL or CPE): `None` when no product entry names
/// it either way.
pub fn assess<'a>(
    device: &matching::DeviceFacts<'_>,
    bound: &[sbom::Bound<'_>],
    advisory: &'a Advisory,
    cfg: &FlagConfig,
) -> Option<Assessment<'a>> {
    let mut matches = matching::match_device(device, advisory, &cfg.vendor_aliases);
    matches.extend(sbom::match_sboms(device, bound, advisory));
    if matches.is_empty() {
        return None;
    }
    let mut affected = Vec::new();
    let mut undecided = Vec::new();
    for m in matches {
        if !is_affected(&m) {
            continue;
        }
        match m.verdict {
            Verdict::Affected => affected.push(m),
            Verdict::VersionNotComparable { .. } | Verdict::VersionUnknown => undecided.push(m),
            Verdict::NotAffected => {}
        }
    }
    let mut cves: BTreeMap<String, Option<(f64, String)>> = BTreeMap::new();
    for m in &affected {
        for c in m
            .cves
            .iter()
            .filter(|c| AFFECTED.contains(&c.status.as_str()))
        {
            let e = cves.entry(c.cve.clone()).or_insert(None);
            if let Some(s) = &c.score {
                if e.as_ref().is_none_or(|(old, _)| s.0 > *old) {
                    *e = Some(s.clone());
                }
            }
        }
    }
    let severity = cves
        .values()
        .flatten()
        .map(|(_, s)| Cvss::from_name(s))
        .min();
    let (fix, promised_fix) = if affected.is_empty() {
        (None, None)
    } else {
        vendor_fix(advisory, &affected)
    };
    Some(Assessment {
        advisory,
        affected,
        undecided,
        cves,
        severity,
        fix,
        promised_fix,
    })
}

/// Words that make a remediation a promise rather than a fix: "The fix is expected in an
/// upcoming … release", "software updates … are in process", "new releases will be made
/// available".
const PROMISE_WORDS: &[&str] = &[
    "upcoming",
    "expected",
    "planned",
    "in process",
    "in progress",
    "working to",
    "will be released",
    "will be made available",
    "will release",
];

/// The fix for the matched products, if one is available, and the promise of one, if a
/// remediation makes one.
///
/// CISA's use of `vendor_fix` is loose ("For additional information, see the bulletin" sits
/// next to "The fix is expected in an upcoming Version 4.80"), so the remediations decide in
/// this order: the earliest that states an available fixed version (any category); else, when
/// none promises a fix, the earliest `vendor_fix` (version not stated); a promise alone is no
/// fix. The fixed version is a `fixed`/`first_fixed` entry of the same product when the
/// advisory has one, else the stated one.
fn vendor_fix(advisory: &Advisory, affected: &[ProductMatch]) -> (Option<Fix>, Option<String>) {
    let ids: Vec<&str> = affected.iter().map(|m| m.product_id.as_str()).collect();
    // A `fixed` entry of the same product (CISA never writes one today; CSAF allows it).
    let product_names: Vec<Option<&str>> = affected
        .iter()
        .filter_map(|m| {
            advisory
                .products
                .iter()
                .find(|p| p.product_id == m.product_id)
                .map(|p| p.product.as_deref())
        })
        .collect();
    let fixed_entry = advisory
        .vulnerabilities
        .iter()
        .flat_map(|v| {
            [ProductStatus::Fixed, ProductStatus::FirstFixed]
                .into_iter()
                .filter_map(|s| v.product_status.get(&s))
                .flatten()
        })
        .filter_map(|id| advisory.products.iter().find(|p| &p.product_id == id))
        .find(|p| p.version.is_some() && product_names.contains(&p.product.as_deref()));
    let mut stated: Option<Fix> = None;
    let mut loose: Option<Fix> = None;
    let mut promise: Option<String> = None;
    for v in &advisory.vulnerabilities {
        for r in &v.remediations {
            if !r.product_ids.iter().any(|p| ids.contains(&p.as_str())) {
                continue;
            }
            let text = stated_fix(&r.details);
            let slot = match &text {
                FixText::Stated { planned: false, .. } => &mut stated,
                FixText::Stated {
                    planned: true,
                    sentence,
                    ..
                } => {
                    promise.get_or_insert_with(|| sentence.clone());
                    continue;
                }
                _ => {
                    let lower = r.details.to_lowercase();
                    if PROMISE_WORDS.iter().any(|w| lower.contains(w)) {
                        promise.get_or_insert_with(|| r.details.clone());
                        continue;
                    }
                    if r.category != "vendor_fix" {
                        continue;
                    }
                    &mut loose
                }
            };
            let (since, since_from) = match r.date {
                Some(d) => (d.date_naive(), "remediation date"),
                None => (
                    advisory.initial_release.date_naive(),
                    "advisory initial_release_date",
                ),
            };
            if slot.as_ref().is_some_and(|b| b.since <= since) {
                continue;
            }
            let (version, version_evidence) = match (fixed_entry, &text) {
                (Some(p), _) => (
                    p.version.clone(),
                    json!({"from": "product_status fixed", "product_id": p.product_id, "product_name": p.name}),
                ),
                (None, FixText::Stated { version, .. }) => (
                    Some(version.clone()),
                    serde_json::to_value(&text).unwrap_or_default(),
                ),
                (None, _) => (None, serde_json::to_value(&text).unwrap_or_default()),
            };
            *slot = Some(Fix {
                category: r.category.clone(),
                since,
                since_from,
                version,
                version_evidence,
                details: r.details.clone(),
            });
        }
    }
    let fix = stated.or(if promise.is_none() { loose } else { None });
    (fix, promise)
}

/// The day a clock of `days` started at `from` runs out (the last day within it).
pub fn deadline(from: NaiveDate, days: u32) -> NaiveDate {
    from.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

/// Assessments by (manufacturer, model, software version): devices of one model and version
/// match the same entries, so an evaluation matches each such triple against the advisories
/// once, not each device (a site has many devices and few distinct triples).
pub type Cache<'a> = HashMap<(Option<String>, Option<String>, Option<String>), Vec<Assessment<'a>>>;

/// The kinds a move to an unaffected version resolves, and so the ones a patch note is for.
const PATCHED_KINDS: &[FlagKind] = &[
    FlagKind::VulnerableSoftware,
    FlagKind::PatchOverdue,
    FlagKind::VendorFixOverdue,
    FlagKind::KnownExploitedVulnerability,
];

/// When the device was first seen on its current version in the episode that runs now (the
/// version timeline), else in the per-value history: T of "patched at T". A version rolled
/// back to and patched again is dated by its latest episode, not its first ever.
pub fn current_version_since(d: &DeviceView) -> Option<i64> {
    let current = d.current("software_version")?;
    let episode = d
        .software_versions
        .iter()
        .filter(|e| e.value == current)
        .max_by_key(|e| (e.last_us, e.first_us))
        .map(|e| e.first_us);
    episode.or_else(|| {
        d.attributes
            .get("software_version")?
            .iter()
            .filter(|a| a.value == current)
            .map(|a| a.first_us)
            .min()
    })
}

/// A rollback: the device's current version episode follows an episode of a newer version (by
/// the version order). The advisory flags it re-opens say so, since a version that was patched
/// and came back is a different conversation with the vendor than one never patched.
pub fn rollback(d: &DeviceView) -> Option<serde_json::Value> {
    let current = d.current("software_version")?;
    let i = d
        .software_versions
        .iter()
        .enumerate()
        .filter(|(_, e)| e.value == current)
        .max_by_key(|(_, e)| (e.last_us, e.first_us))
        .map(|(i, _)| i)?;
    let now = d.software_versions.get(i)?;
    let before = d.software_versions.get(i.checked_sub(1)?)?;
    if crate::compliance::version::compare(&before.value, &now.value)
        != Some(std::cmp::Ordering::Greater)
    {
        return None;
    }
    Some(json!({
        "from_version": before.value,
        "from_version_last_seen": time_of(before.last_us),
        "to_version": now.value,
        "rolled_back_at": time_of(now.first_us),
        "rolled_back_on": super::date_of(now.first_us).to_string(),
        "agent_id": now.agent_id,
    }))
}

/// Fills `cache` for the device's manufacturer and model at `version`.
fn assess_into<'a>(
    cache: &mut Cache<'a>,
    manufacturer: Option<&str>,
    model: Option<&str>,
    version: Option<&str>,
    advisories: &'a [Advisory],
    sboms: &SbomIndex<'_>,
    cfg: &FlagConfig,
) -> (Option<String>, Option<String>, Option<String>) {
    let key = (
        manufacturer.map(str::to_owned),
        model.map(str::to_owned),
        version.map(str::to_owned),
    );
    cache.entry(key.clone()).or_insert_with(|| {
        let facts = matching::DeviceFacts {
            manufacturer,
            model,
            software_version: version,
        };
        let bound = sboms.bound_to(&facts, &cfg.vendor_aliases);
        advisories
            .iter()
            .filter_map(|a| assess(&facts, &bound, a, cfg))
            .collect()
    });
    key
}

/// "Patched at T, N days after the fix": for each advisory the device's current version is
/// clear of (matched, not affected, nothing undecided) while an earlier version it ran was
/// affected, the note every advisory flag of the pair carries when it resolves. T is the first
/// sighting of the current version ([`current_version_since`]), F the fix the advisory gave
/// for the affected version, N the days from F to T.
#[allow(clippy::too_many_arguments)] // the evaluation's parts, each read here
fn patch_notes<'a>(
    d: &DeviceFacts<'_>,
    key: &(Option<String>, Option<String>, Option<String>),
    advisories: &'a [Advisory],
    sboms: &SbomIndex<'_>,
    cfg: &FlagConfig,
    cache: &mut Cache<'a>,
    notes: &mut Vec<ResolutionNote>,
) {
    let Some(version) = key.2.as_deref() else {
        return;
    };
    let cleared: Vec<&'a Advisory> = cache
        .get(key)
        .into_iter()
        .flatten()
        .filter(|a| a.affected.is_empty() && a.undecided.is_empty())
        .map(|a| a.advisory)
        .collect();
    if cleared.is_empty() {
        return;
    }
    // Earlier versions, most recent first.
    let mut earlier: Vec<(&str, i64)> = d
        .device
        .software_versions
        .iter()
        .map(|e| (e.value.as_str(), e.last_us))
        .chain(
            d.device
                .attributes
                .get("software_version")
                .into_iter()
                .flatten()
                .map(|a| (a.value.as_str(), a.last_us)),
        )
        .filter(|(v, _)| *v != version)
        .collect();
    earlier.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut seen = std::collections::HashSet::new();
    earlier.retain(|(v, _)| seen.insert(*v));
    let keys: Vec<(String, _)> = earlier
        .iter()
        .map(|(v, _)| {
            let k = assess_into(
                cache,
                key.0.as_deref(),
                key.1.as_deref(),
                Some(v),
                advisories,
                sboms,
                cfg,
            );
            ((*v).to_owned(), k)
        })
        .collect();
    let since = current_version_since(d.device);
    let contract = d.contract.map(|c| c.contract);
    for advisory in cleared {
        let Some((from, old)) = keys.iter().find_map(|(v, k)| {
            cache
                .get(k)?
                .iter()
                .find(|a| a.advisory.id == advisory.id && !a.affected.is_empty())
                .map(|a| (v, a))
        }) else {
            continue;
        };
        let t = since.map(super::date_of);
        let fix = old.fix.as_ref().map(|f| f.since);
        let days = t.zip(fix).map(|(t, f)| (t - f).num_days());
        let sla = contract.and_then(|c| sla_days(&c.patch_sla_days, old.severity));
        let within = fix.zip(sla).zip(t).map(|((f, s), t)| t <= deadline(f, s));
        let summary = match (t, fix, days) {
            (Some(t), Some(f), Some(n)) => format!(
                "patched to {version} at {t}, {n} days after the fix ({f}){}",
                match within {
                    Some(true) => ", within the patch SLA",
                    Some(false) => ", past the patch SLA",
                    None => "",
                }
            ),
            (Some(t), None, _) => format!("patched to {version} at {t} (no vendor fix was known)"),
            _ => format!("now runs {version}"),
        };
        let evidence = json!({
            "patched": true,
            "software_version": version,
            "previous_version": from,
            "version_first_seen": since.map(time_of),
            "patched_on": t.map(|t| t.to_string()),
            "fix_available_since": fix.map(|f| f.to_string()),
            "fixed_version": old.fix.as_ref().and_then(|f| f.version.clone()),
            "days_after_fix": days,
            "patch_sla_days": sla,
            "within_sla": within,
        });
        for k in PATCHED_KINDS {
            notes.push(ResolutionNote {
                kind: *k,
                subject: d.subject.clone(),
                detail: advisory.id.clone(),
                summary: summary.clone(),
                evidence: evidence.clone(),
            });
        }
    }
}

/// The flags of one device against every advisory (directly, and through the SBOMs of the
/// product release it runs), and the patch notes of the advisories it is clear of now.
#[allow(clippy::too_many_arguments)] // the evaluation's parts, each read here
pub fn advisory_flags<'a>(
    d: &DeviceFacts<'_>,
    advisories: &'a [Advisory],
    sboms: &SbomIndex<'_>,
    kev: Option<&KevCatalog>,
    cfg: &FlagConfig,
    at: At,
    cache: &mut Cache<'a>,
    out: &mut Vec<FlagInstance>,
    notes: &mut Vec<ResolutionNote>,
) {
    if advisories.is_empty() {
        return;
    }
    let (manufacturer, model) = super::manufacturer_model(d.device);
    let version = d.device.current("software_version");
    // The last time the current (affected) version was seen.
    let version_last_seen = d
        .device
        .attributes
        .get("software_version")
        .and_then(|h| {
            h.iter()
                .filter(|a| Some(a.value.as_str()) == version)
                .map(|a| a.last_us)
                .max()
        })
        .map(time_of);
    let key = assess_into(cache, manufacturer, model, version, advisories, sboms, cfg);
    patch_notes(d, &key, advisories, sboms, cfg, cache, notes);
    let Some(assessed) = cache.get(&key) else {
        return;
    };
    let rolled_back = rollback(d.device);
    let start = out.len();
    for a in assessed.iter() {
        let advisory = a.advisory;
        let adv = json!({
            "id": advisory.id,
            "title": advisory.title,
            "tracking_version": advisory.tracking_version,
            "initial_release_date": advisory.initial_release.to_rfc3339(),
            "current_release_date": advisory.current_release.to_rfc3339(),
        });
        if a.affected.is_empty() {
            if !a.undecided.is_empty() {
                out.push(flag(
                    FlagKind::AdvisoryVersionNotComparable,
                    d.subject.clone(),
                    advisory.id.clone(),
                    match a.undecided.iter().find_map(|m| m.sbom.as_ref()) {
                        // Through an SBOM the undecided version is the component's.
                        Some(via) if a.undecided.iter().all(|m| m.sbom.is_some()) => format!(
                            "{}: its SBOM's component {} ({}) matches a product of {} but that version cannot be compared with the advisory's: check by hand",
                            d.name,
                            via.component.name,
                            via.component.version.as_deref().unwrap_or("no version given"),
                            advisory.id,
                        ),
                        _ => format!(
                            "{}: matches a product of {} but its version ({}) cannot be compared with the advisory's: check by hand",
                            d.name,
                            advisory.id,
                            version.unwrap_or("none seen")
                        ),
                    },
                    json!({
                        "device": device_evidence(d.device),
                        "advisory": adv,
                        "matches": a.undecided.iter().map(|m| json!({"explanation": m.explain(), "match": m})).collect::<Vec<_>>(),
                    }),
                ));
            }
            continue;
        }
        let cves: Vec<serde_json::Value> = a
            .cves
            .iter()
            .map(|(id, s)| {
                json!({"cve": id, "cvss_base_score": s.as_ref().map(|s| s.0), "cvss_severity": s.as_ref().map(|s| s.1.clone())})
            })
            .collect();
        let cve_ids: Vec<&str> = a.cves.keys().map(String::as_str).collect();
        let matches: Vec<serde_json::Value> = a
            .affected
            .iter()
            .map(|m| json!({"explanation": m.explain(), "match": m}))
            .collect();
        let sev = a.severity;
        let sev_name = sev.map_or("not scored", Cvss::as_str);
        let contract = d.contract.map(|c| c.contract);
        let sla = contract.and_then(|c| sla_days(&c.patch_sla_days, sev));
        let clock = json!({
            "contract_id": contract.map(|c| c.id.clone()),
            "supplier": contract.map(|c| c.supplier.clone()),
            "severity": sev_name,
            "patch_sla_days": sla,
            "why_no_clock": match (contract, sla) {
                (None, _) => Some("no contract in force covers the device"),
                (Some(_), None) => Some("the contract states no patch_sla_days for this severity"),
                _ => None,
            },
        });
        let fix = a.fix.as_ref().map(|f| {
            let after_release = (f.since - a.released()).num_days();
            json!({
                "available_since": f.since.to_string(),
                "days_after_advisory": after_release,
                // The supplier's side of the clause, kept once the fix exists: how late it was.
                "vendor_late_by_days": sla.map(|d| after_release - i64::from(d)).filter(|l| *l > 0),
                "since_from": f.since_from,
                "fixed_version": f.version,
                "fixed_version_evidence": f.version_evidence,
                "remediation_category": f.category,
                "remediation": f.details,
            })
        });
        let mut base = json!({
            "device": device_evidence(d.device),
            "advisory": adv,
            "matches": matches,
            "cves": cves,
            "vendor_fix": fix,
            "promised_fix": a.promised_fix,
            "patch_clock": clock,
            "affected_version_last_seen": version_last_seen,
        });
        if let Some(rb) = &rolled_back {
            base["rollback"] = rb.clone();
        }
        let mut v = flag(
            FlagKind::VulnerableSoftware,
            d.subject.clone(),
            advisory.id.clone(),
            match a.affected.iter().find_map(|m| m.sbom.as_ref()) {
                // Only through an SBOM: what is affected is a component of the release.
                Some(via) if a.affected.iter().all(|m| m.sbom.is_some()) => format!(
                    "{} runs {} whose SBOM lists {} {}, which {} lists as affected ({}; {sev_name})",
                    d.name,
                    version.unwrap_or("any version"),
                    via.component.name,
                    via.component.version.as_deref().unwrap_or("(no version)"),
                    advisory.id,
                    cve_ids.join(", ")
                ),
                _ => format!(
                    "{} runs {} which {} lists as affected ({}; {sev_name})",
                    d.name,
                    version.unwrap_or("any version"),
                    advisory.id,
                    cve_ids.join(", ")
                ),
            },
            base.clone(),
        );
        v.severity = sev.map_or(Severity::High, Cvss::flag_severity);
        out.push(v);

        if let Some(kev) = kev {
            let hits: Vec<serde_json::Value> = kev
                .entries
                .iter()
                .filter(|e| a.cves.contains_key(&e.cve))
                .map(|e| {
                    json!({
                        "cve": e.cve,
                        "date_added": e.date_added.to_string(),
                        "due_date": e.due_date.to_string(),
                        "known_ransomware_campaign_use": e.known_ransomware_campaign_use,
                        "required_action": e.required_action,
                        "kev_catalog_version": kev.catalog_version,
                    })
                })
                .collect();
            if !hits.is_empty() {
                let ids: Vec<&str> = hits.iter().filter_map(|h| h["cve"].as_str()).collect();
                let mut e = base.clone();
                e["kev"] = json!(hits);
                out.push(flag(
                    FlagKind::KnownExploitedVulnerability,
                    d.subject.clone(),
                    advisory.id.clone(),
                    format!(
                        "{}: {} of {} is known exploited (CISA KEV)",
                        d.name,
                        ids.join(", "),
                        advisory.id
                    ),
                    e,
                ));
            }
        }

        if let Some(m) = a.affected.iter().find(|m| m.end_of_life) {
            out.push(flag(
                FlagKind::EndOfLifeProduct,
                d.subject.clone(),
                advisory.id.clone(),
                format!(
                    "{}: {} puts {:?} in a legacy branch (end of life)",
                    d.name, advisory.id, m.product_name
                ),
                base.clone(),
            ));
        }

        let Some(days) = sla else { continue };
        match &a.fix {
            Some(f) => {
                let due = deadline(f.since, days);
                if at.today > due {
                    let overdue = (at.today - due).num_days();
                    base["patch_clock"]["fix_available_since"] = json!(f.since.to_string());
                    base["patch_clock"]["patch_due"] = json!(due.to_string());
                    base["patch_clock"]["days_overdue"] = json!(overdue);
                    base["patch_clock"]["evaluated_on"] = json!(at.today.to_string());
                    out.push(flag(
                        FlagKind::PatchOverdue,
                        d.subject.clone(),
                        advisory.id.clone(),
                        format!(
                            "{}: a fix for {} exists since {} ({}); the {days}-day {sev_name} patch SLA ran out on {due}, {overdue} days ago, and the device still runs {}",
                            d.name,
                            advisory.id,
                            f.since,
                            f.version.as_deref().map_or("fixed version not stated".to_owned(), |v| format!("fixed version {v}")),
                            version.unwrap_or("an affected version"),
                        ),
                        base,
                    ));
                }
            }
            None => {
                let due = deadline(a.released(), days);
                if at.today > due {
                    let overdue = (at.today - due).num_days();
                    base["patch_clock"]["advisory_released"] = json!(a.released().to_string());
                    base["patch_clock"]["fix_due"] = json!(due.to_string());
                    base["patch_clock"]["days_overdue"] = json!(overdue);
                    base["patch_clock"]["evaluated_on"] = json!(at.today.to_string());
                    out.push(flag(
                        FlagKind::VendorFixOverdue,
                        d.subject.clone(),
                        advisory.id.clone(),
                        format!(
                            "{}: no vendor fix for {} {} days after its release ({}); the {days}-day {sev_name} patch SLA ran out on {due}, {overdue} days ago",
                            d.name,
                            advisory.id,
                            (at.today - a.released()).num_days(),
                            a.released()
                        ),
                        base,
                    ));
                }
            }
        }
    }
    if let Some(rb) = &rolled_back {
        let (from, on) = (
            rb["from_version"].as_str().unwrap_or_default(),
            rb["rolled_back_on"].as_str().unwrap_or_default(),
        );
        for f in out.iter_mut().skip(start) {
            if PATCHED_KINDS.contains(&f.kind) {
                f.summary
                    .push_str(&format!(" (rolled back from {from} on {on})"));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};

    use super::super::testkit::*;
    use super::*;
    use crate::import::advisories::{Product, Remediation, Score, Vulnerability};
    use crate::import::kev::KevEntry;
    use crate::import::sbom::Sbom;

    /// A release date `n` days from `today()`.
    fn at(n: i64) -> chrono::DateTime<Utc> {
        let d = days(n);
        Utc.from_utc_datetime(&d.and_hms_opt(6, 0, 0).unwrap_or_default())
    }

    /// ACME-SA-1: `ACME Scan 1` versions `< 2.0` affected by CVE-2026-0001 (HIGH 8.1), released
    /// `released` days from today, with a `vendor_fix` ("update to 2.0") dated `fix` days from
    /// today when given.
    pub(crate) fn advisory(released: i64, fix: Option<i64>) -> Advisory {
        Advisory {
            id: "ACME-SA-1".into(),
            title: "ACME Scan".into(),
            category: "csaf_security_advisory".into(),
            csaf_version: "2.0".into(),
            publisher: "ACME PSIRT".into(),
            tracking_version: "1".into(),
            status: "final".into(),
            initial_release: at(released),
            current_release: at(released),
            products: vec![Product {
                product_id: "P1".into(),
                name: "ACME Scan 1 <2.0".into(),
                vendor: Some("ACME".into()),
                product: Some("Scan 1".into()),
                version: None,
                version_range: Some("vers:generic/<2.0".into()),
                legacy: false,
                cpe: None,
                purl: None,
                model_numbers: Vec::new(),
                skus: Vec::new(),
            }],
            vulnerabilities: vec![Vulnerability {
                cve: Some("CVE-2026-0001".into()),
                title: None,
                cwe: None,
                product_status: [(ProductStatus::KnownAffected, vec!["P1".to_string()])].into(),
                scores: vec![Score {
                    cvss_version: "3.1".into(),
                    base_score: 8.1,
                    severity: "HIGH".into(),
                    vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
                    products: vec!["P1".into()],
                }],
                remediations: fix
                    .map(|f| Remediation {
                        category: "vendor_fix".into(),
                        date: Some(at(f)),
                        details: "ACME recommends users update to version 2.0.".into(),
                        product_ids: vec!["P1".into()],
                        url: None,
                    })
                    .into_iter()
                    .collect(),
            }],
            source: "test".into(),
        }
    }

    fn kev() -> KevCatalog {
        KevCatalog {
            title: None,
            catalog_version: "2026.06.01".into(),
            date_released: at(-14),
            entries: vec![KevEntry {
                cve: "CVE-2026-0001".into(),
                vendor_project: "ACME".into(),
                product: "Scan".into(),
                name: "ACME Scan RCE".into(),
                date_added: days(-14),
                short_description: "x".into(),
                required_action: "Apply updates".into(),
                due_date: days(7),
                known_ransomware_campaign_use: Some("Unknown".into()),
                notes: None,
                cwes: Vec::new(),
            }],
        }
    }

    /// The covered world's device at `version`, the contract with a 30-day HIGH SLA, and the
    /// advisory.
    fn world(version: &str, a: Advisory) -> World {
        World::covered_with(|w| {
            let d = std::mem::take(w.d());
            *w.d() = d.attr("software_version", version);
            w.c().patch_sla_days.high = Some(30);
            w.inv.advisories.push(a);
        })
    }

    pub(crate) fn cases() -> Vec<Case> {
        vec![
            Case::new(
                "a version in the range is vulnerable; the fixed one is not",
                FlagKind::VulnerableSoftware,
                world("1.4", advisory(-10, None)),
                world("2.0", advisory(-10, None)),
            ),
            Case::new(
                "a CVE in KEV",
                FlagKind::KnownExploitedVulnerability,
                {
                    let mut w = world("1.4", advisory(-10, None));
                    w.inv.kev = Some(kev());
                    w
                },
                world("1.4", advisory(-10, None)),
            ),
            Case::new(
                "fix 31 days old with a 30-day SLA: overdue; 30 days: not yet",
                FlagKind::PatchOverdue,
                world("1.4", advisory(-60, Some(-31))),
                world("1.4", advisory(-60, Some(-30))),
            ),
            Case::new(
                "no fix 31 days after the advisory: the vendor is late",
                FlagKind::VendorFixOverdue,
                world("1.4", advisory(-31, None)),
                world("1.4", advisory(-30, None)),
            ),
            Case::new(
                "a legacy branch",
                FlagKind::EndOfLifeProduct,
                world("1.4", {
                    let mut a = advisory(-10, None);
                    a.products[0].legacy = true;
                    a
                }),
                world("1.4", advisory(-10, None)),
            ),
            Case::new(
                "a version the range cannot be compared with",
                FlagKind::AdvisoryVersionNotComparable,
                world("Build A", advisory(-10, None)),
                world("1.4", advisory(-10, None)),
            ),
        ]
    }

    #[test]
    fn overdue_counts_days_from_the_fix_and_shows_its_evidence() {
        let w = world("1.4", advisory(-90, Some(-45)));
        let f = w.of(FlagKind::PatchOverdue);
        assert_eq!(f.len(), 1, "{:?}", w.flags());
        let e = &f[0].evidence;
        assert_eq!(f[0].detail, "ACME-SA-1");
        assert_eq!(e["patch_clock"]["days_overdue"], 15);
        assert_eq!(e["patch_clock"]["patch_sla_days"], 30);
        assert_eq!(e["patch_clock"]["severity"], "high");
        assert_eq!(
            e["patch_clock"]["fix_available_since"],
            days(-45).to_string()
        );
        assert_eq!(e["vendor_fix"]["fixed_version"], "2.0");
        assert_eq!(e["vendor_fix"]["days_after_advisory"], 45);
        // 45 days after the advisory, with 30 days to deliver: 15 days late.
        assert_eq!(e["vendor_fix"]["vendor_late_by_days"], 15);
        assert_eq!(
            e["vendor_fix"]["fixed_version_evidence"]["sentence"],
            "ACME recommends users update to version 2.0."
        );
        assert_eq!(e["cves"][0]["cve"], "CVE-2026-0001");
        assert_eq!(e["cves"][0]["cvss_base_score"], 8.1);
        assert!(e["affected_version_last_seen"].is_string());
        assert!(e["matches"][0]["explanation"]
            .as_str()
            .is_some_and(|s| s.contains("ACME-SA-1")));
        // A fix exists: the vendor is not late.
        assert!(w.of(FlagKind::VendorFixOverdue).is_empty());
    }

    #[test]
    fn severity_follows_cvss_and_an_unstated_sla_starts_no_clock() {
        let mut a = advisory(-90, Some(-60));
        a.vulnerabilities[0].scores[0].severity = "MEDIUM".into();
        let w = world("1.4", a.clone());
        let v = w.of(FlagKind::VulnerableSoftware);
        assert_eq!(v[0].severity, Severity::Medium);
        // The contract states only `high`: no clock for a medium CVE.
        assert!(w.of(FlagKind::PatchOverdue).is_empty());
        assert_eq!(
            v[0].evidence["patch_clock"]["why_no_clock"],
            "the contract states no patch_sla_days for this severity"
        );
        // No contract at all: vulnerable, never overdue.
        let mut w = world("1.4", advisory(-90, Some(-60)));
        w.inv.contracts.clear();
        assert_eq!(w.of(FlagKind::VulnerableSoftware).len(), 1);
        assert!(w.of(FlagKind::PatchOverdue).is_empty());
    }

    #[test]
    fn a_planned_fix_is_no_fix_and_a_fixed_status_entry_is_not_vulnerable() {
        let mut a = advisory(-90, Some(-80));
        a.vulnerabilities[0].remediations[0].details =
            "A fix is expected in an upcoming release, version 2.0.".into();
        let w = world("1.4", a);
        assert!(w.of(FlagKind::PatchOverdue).is_empty());
        assert_eq!(w.of(FlagKind::VendorFixOverdue).len(), 1);
        // An entry listed `fixed` that the version falls in: not vulnerable.
        let mut a = advisory(-90, None);
        a.vulnerabilities[0].product_status =
            [(ProductStatus::Fixed, vec!["P1".to_string()])].into();
        let w = world("1.4", a);
        assert!(w.flags().is_empty(), "{:?}", w.flags());
    }

    /// A device that ran 1.4 (affected) and runs 2.0 since 5 days ago, against an advisory
    /// whose fix is 20 days old: every advisory kind of the pair gets the note "patched to 2.0
    /// at T, 15 days after the fix", and no flag holds; without the earlier version, no note.
    #[test]
    fn a_move_to_a_fixed_version_carries_a_patch_note() {
        let w = World::covered_with(|w| {
            let d = std::mem::take(w.d());
            *w.d() = d
                .attr_at(
                    "software_version",
                    "1.4",
                    now_us() - 9 * DAY_US,
                    now_us() - 6 * DAY_US,
                )
                .attr_at(
                    "software_version",
                    "2.0",
                    now_us() - 5 * DAY_US,
                    now_us() - HOUR_US,
                );
            w.c().patch_sla_days.high = Some(30);
            w.inv.advisories.push(advisory(-40, Some(-20)));
        });
        let links = crate::compliance::link::link(&w.inv, super::super::date_of(w.now_us));
        let (flags, notes) = super::super::evaluate_with_notes(&w.inv, &links, &w.cfg, w.now_us);
        assert!(flags
            .iter()
            .all(|f| f.kind.scope() != super::super::Scope::Advisory));
        let kinds: Vec<FlagKind> = notes.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, PATCHED_KINDS);
        let n = &notes[0];
        assert_eq!(n.detail, "ACME-SA-1");
        assert_eq!(n.evidence["previous_version"], "1.4");
        assert_eq!(n.evidence["days_after_fix"], 15);
        assert_eq!(n.evidence["within_sla"], true);
        assert_eq!(n.evidence["patched_on"], days(-5).to_string());
        assert_eq!(
            n.summary,
            format!(
                "patched to 2.0 at {}, 15 days after the fix ({}), within the patch SLA",
                days(-5),
                days(-20)
            )
        );
        let w = world("2.0", advisory(-40, Some(-20)));
        let links = crate::compliance::link::link(&w.inv, super::super::date_of(w.now_us));
        assert!(
            super::super::evaluate_with_notes(&w.inv, &links, &w.cfg, w.now_us)
                .1
                .is_empty()
        );
    }

    #[test]
    fn two_advisories_are_two_flags() {
        let mut b = advisory(-10, None);
        b.id = "ACME-SA-2".into();
        let mut w = world("1.4", advisory(-10, None));
        w.inv.advisories.push(b);
        let details: Vec<String> = w
            .of(FlagKind::VulnerableSoftware)
            .into_iter()
            .map(|f| f.detail)
            .collect();
        assert_eq!(details, ["ACME-SA-1", "ACME-SA-2"]);
    }

    /// The covered world's `ACME Scan 1` at `version`, an SBOM of release 1.4 bound to C-1
    /// with OpenSSL at `openssl`, and an advisory whose only entry is OpenSSL by PURL
    /// (`vers:generic/>=1.1.1|<1.1.1l`).
    fn sbom_world(version: &str, openssl: &str) -> World {
        let mut a = advisory(-10, None);
        a.products[0] = Product {
            product_id: "P1".into(),
            name: "OpenSSL 1.1.1 before 1.1.1l".into(),
            vendor: Some("OpenSSL Project".into()),
            product: Some("OpenSSL".into()),
            version: None,
            version_range: Some("vers:generic/>=1.1.1|<1.1.1l".into()),
            legacy: false,
            cpe: None,
            purl: Some("pkg:generic/openssl".into()),
            model_numbers: Vec::new(),
            skus: Vec::new(),
        };
        let mut w = world(version, a);
        w.inv.sboms.push(Sbom {
            serial_number: Some("urn:uuid:00000000-0000-4000-8000-000000000001".into()),
            bom_version: 1,
            spec_version: "1.6".into(),
            contract_id: "C-1".into(),
            product_model: "Scan 1".into(),
            product_version: Some("1.4".into()),
            manufacturer: None,
            components: vec![crate::import::sbom::Component {
                name: "openssl".into(),
                group: None,
                version: Some(openssl.into()),
                purl: Some(format!("pkg:generic/openssl@{openssl}")),
                cpe: None,
                supplier: None,
            }],
            source: "sbom.json".into(),
        });
        w
    }

    #[test]
    fn an_sbom_component_raises_the_advisory_flags_with_its_evidence() {
        let w = sbom_world("1.4", "1.1.1k");
        let v = w.of(FlagKind::VulnerableSoftware);
        assert_eq!(v.len(), 1, "{:?}", w.flags());
        let m = &v[0].evidence["matches"][0];
        assert_eq!(m["match"]["sbom"]["component"]["version"], "1.1.1k");
        assert_eq!(m["match"]["sbom"]["contract_id"], "C-1");
        assert_eq!(m["match"]["model_match"]["how"], "sbom_product");
        assert!(m["explanation"].as_str().unwrap().contains("via SBOM"));
        assert!(
            v[0].summary.contains("whose SBOM lists openssl 1.1.1k"),
            "{}",
            v[0].summary
        );
        // Another release of the device: no SBOM binds it, nothing matches.
        assert!(sbom_world("2.0", "1.1.1k")
            .flags()
            .iter()
            .all(|f| f.kind.scope() != super::super::Scope::Advisory));
        // A fixed component: not vulnerable.
        assert!(sbom_world("1.4", "1.1.1l")
            .of(FlagKind::VulnerableSoftware)
            .is_empty());
        // A component version the range cannot order: for a person to decide, both strings kept.
        let w = sbom_world("1.4", "1_1_1k-fips(vendor)");
        assert!(w.of(FlagKind::VulnerableSoftware).is_empty());
        let n = w.of(FlagKind::AdvisoryVersionNotComparable);
        assert_eq!(n.len(), 1, "{:?}", w.flags());
        let verdict = &n[0].evidence["matches"][0]["match"]["verdict"];
        assert_eq!(verdict["version"], "1_1_1k-fips(vendor)");
        assert_eq!(verdict["range"], "vers:generic/>=1.1.1|<1.1.1l");
        assert!(
            n[0].summary
                .contains("component openssl (1_1_1k-fips(vendor))"),
            "{}",
            n[0].summary
        );
    }

    fn public(name: &str) -> Advisory {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/advisories/public")
            .join(name);
        crate::import::advisories::load_file(&p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Noon UTC of a date, µs.
    fn noon(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or_default()
    }

    /// One device of `manufacturer model` at `version`, covered by a contract of its model with
    /// `patch_sla_days.high` = 30, against `advisory`, evaluated at `now_us`.
    fn real(manufacturer: &str, model: &str, version: &str, a: Advisory, now_us: i64) -> World {
        let mut w = World::new();
        w.inv.devices.push(
            dev(1)
                .typed("workstation")
                .made(manufacturer, model)
                .attr("software_version", version),
        );
        let mut c = contract("C-1");
        c.supplier = manufacturer.to_string();
        c.products = vec![product(model)];
        c.patch_sla_days.high = Some(30);
        w.inv.contracts.push(c);
        w.inv.advisories.push(a);
        w.now_us = now_us;
        w
    }

    /// ICSMA-24-058-01: Sante DICOM Viewer Pro <=14.0.3, CVE-2024-1453 HIGH 7.8, a `vendor_fix`
    /// without a date ("update … to v14.0.4 or later"): F is the release, 2024-02-27; with 30
    /// days the patch is due 2024-03-28.
    #[test]
    fn sante_dicom_viewer_clock_from_the_advisory_release() {
        let a = public("icsma-24-058-01.json");
        let make = "Santesoft";
        let model = "Sante DICOM Viewer Pro";
        let w = real(make, model, "14.0.3", a.clone(), noon(2024, 3, 28));
        let v = w.of(FlagKind::VulnerableSoftware);
        assert_eq!(v.len(), 1, "{:?}", w.flags());
        assert_eq!(v[0].severity, Severity::High);
        assert_eq!(v[0].evidence["vendor_fix"]["fixed_version"], "14.0.4");
        assert_eq!(v[0].evidence["vendor_fix"]["available_since"], "2024-02-27");
        assert!(
            w.of(FlagKind::PatchOverdue).is_empty(),
            "due today: not late"
        );
        let w = real(make, model, "14.0.3", a.clone(), noon(2024, 4, 7));
        let o = w.of(FlagKind::PatchOverdue);
        assert_eq!(o[0].evidence["patch_clock"]["days_overdue"], 10);
        assert_eq!(o[0].evidence["patch_clock"]["patch_due"], "2024-03-28");
        assert!(w.of(FlagKind::VendorFixOverdue).is_empty());
        // The fixed version: nothing at all.
        let w = real(make, model, "14.0.4", a, noon(2024, 4, 7));
        assert!(
            w.flags()
                .iter()
                .all(|f| f.kind.scope() != super::super::Scope::Advisory),
            "{:?}",
            w.flags()
        );
    }

    /// ICSMA-24-151-02 states its fix only under `mitigation` ("Version 1.52.01 (available
    /// October 16, 2023)"): still a fix, F the release (2024-05-30).
    #[test]
    fn connex_spot_monitor_fix_read_from_a_mitigation() {
        let a = public("icsma-24-151-02.json");
        let w = real("Welch Allyn", "CSM", "1.52", a.clone(), noon(2024, 7, 9));
        let o = w.of(FlagKind::PatchOverdue);
        assert_eq!(o.len(), 1, "{:?}", w.flags());
        assert_eq!(o[0].evidence["vendor_fix"]["fixed_version"], "1.52.01");
        assert_eq!(
            o[0].evidence["vendor_fix"]["remediation_category"],
            "mitigation"
        );
        assert_eq!(o[0].evidence["patch_clock"]["days_overdue"], 10);
        let w = real("Welch Allyn", "CSM", "1.52.01", a, noon(2024, 7, 9));
        assert!(w.of(FlagKind::VulnerableSoftware).is_empty());
    }

    /// ICSMA-22-062-02 (BD Viper LT `>= 2.0`): next to two `vendor_fix` remediations that carry
    /// no fix ("compensating controls", "see the bulletin"), one promises it ("expected in an
    /// upcoming … Version 4.80"): no fix, so the supplier's clock runs, and the promise is
    /// quoted.
    #[test]
    fn viper_lt_promise_is_no_fix() {
        let a = public("icsma-22-062-02.json");
        let w = real("BD", "Viper LT", "4.5", a, noon(2022, 6, 1));
        let v = w.of(FlagKind::VulnerableSoftware);
        assert_eq!(v.len(), 1, "{:?}", w.flags());
        assert!(v[0].evidence["vendor_fix"].is_null());
        assert!(v[0].evidence["promised_fix"]
            .as_str()
            .is_some_and(|s| s.contains("4.80")));
        assert!(w.of(FlagKind::PatchOverdue).is_empty());
        let o = w.of(FlagKind::VendorFixOverdue);
        // HIGH, released 2022-03-03: the fix was due 2022-04-02; on 2022-06-01, 60 days late.
        assert_eq!(v[0].evidence["patch_clock"]["severity"], "high");
        assert_eq!(o.len(), 1, "{:?}", w.flags());
        assert_eq!(o[0].evidence["patch_clock"]["fix_due"], "2022-04-02");
        assert_eq!(o[0].evidence["patch_clock"]["days_overdue"], 60);
    }

    /// Every product entry of every public advisory, as a device named by the entry's vendor
    /// and product at a few versions (none, a plain one, a Siemens-style one, the entry's own
    /// string): the evaluation never panics, each advisory flag names its advisory, and a
    /// version is never both vulnerable and not comparable for one advisory.
    #[test]
    fn every_public_product_entry_evaluates_consistently() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/advisories/public");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("icsma-"))
            })
            .collect();
        files.sort();
        assert!(files.len() >= 10);
        let mut vulnerable = 0;
        for f in &files {
            let a = crate::import::advisories::load_file(f).unwrap();
            for p in &a.products {
                let (Some(vendor), Some(product)) = (p.vendor.as_deref(), p.product.as_deref())
                else {
                    continue;
                };
                let own = p.version.clone().or(p.version_range.clone());
                for v in [None, Some("1.0"), Some("VA30A"), own.as_deref()] {
                    let mut w = World::new();
                    let mut d = dev(1).typed("workstation").made(vendor, product);
                    if let Some(v) = v {
                        d = d.attr("software_version", v);
                    }
                    w.inv.devices.push(d);
                    let mut c = contract("C-1");
                    c.supplier = vendor.to_owned();
                    c.products = vec![super::super::testkit::product(product)];
                    c.patch_sla_days = PatchSla {
                        critical: Some(15),
                        high: Some(30),
                        medium: Some(90),
                        low: Some(180),
                    };
                    w.inv.contracts.push(c);
                    w.inv.advisories.push(a.clone());
                    w.now_us = noon(2026, 6, 1);
                    let flags = w.flags();
                    let kinds: Vec<FlagKind> = flags
                        .iter()
                        .filter(|f| f.kind.scope() == super::super::Scope::Advisory)
                        .inspect(|f| assert_eq!(f.detail, a.id))
                        .map(|f| f.kind)
                        .collect();
                    let vuln = kinds.contains(&FlagKind::VulnerableSoftware);
                    assert!(
                        !(vuln && kinds.contains(&FlagKind::AdvisoryVersionNotComparable)),
                        "{} {product} {v:?}: {kinds:?}",
                        a.id
                    );
                    // Clocks need the vulnerability.
                    for k in [
                        FlagKind::PatchOverdue,
                        FlagKind::VendorFixOverdue,
                        FlagKind::KnownExploitedVulnerability,
                        FlagKind::EndOfLifeProduct,
                    ] {
                        assert!(!kinds.contains(&k) || vuln, "{} {k}: {kinds:?}", a.id);
                    }
                    // By 2026 every clock of these advisories has run out: one of the two.
                    if vuln {
                        vulnerable += 1;
                        assert!(
                            kinds.contains(&FlagKind::PatchOverdue)
                                ^ kinds.contains(&FlagKind::VendorFixOverdue),
                            "{} {product} {v:?}: {kinds:?}",
                            a.id
                        );
                    }
                }
            }
        }
        assert!(vulnerable > 20, "{vulnerable}");
    }
}
