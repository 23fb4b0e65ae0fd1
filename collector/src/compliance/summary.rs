//! Device summaries: the per-device row the API and reports list and filter on, recomputed by
//! every evaluation from the inventory, its links and its flags.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::compliance::flags::{is_medical, FlagConfig};
use crate::compliance::link::manufacturer_model;
use crate::store::{Coverage, DeviceSummary, FlagInstance, Inventory, Link, LinkKind, LinkRef};

/// One summary per device.
pub fn summaries(
    inv: &Inventory,
    links: &[Link],
    flags: &[FlagInstance],
    cfg: &FlagConfig,
) -> Vec<DeviceSummary> {
    let mut by_dev: HashMap<(i64, LinkKind), &Link> = HashMap::new();
    for l in links {
        by_dev.insert((l.device_id, l.kind), l);
    }
    let mut kinds: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for f in flags {
        kinds
            .entry(f.subject.as_str())
            .or_default()
            .insert(f.kind.name());
        *counts.entry(f.subject.as_str()).or_default() += 1;
    }
    let link_ref = |l: Option<&&Link>| {
        l.map(|l| LinkRef {
            target: l.target.clone(),
            method: l.method.clone(),
            confidence: l.confidence,
        })
    };
    inv.devices
        .iter()
        .map(|d| {
            let subject = format!("device:{}", d.id);
            let (m, model) = manufacturer_model(d);
            let sites: BTreeSet<String> = d.sightings.iter().map(|s| s.site.clone()).collect();
            let vlans: BTreeSet<u16> = d.sightings.iter().filter_map(|s| s.vlan).collect();
            DeviceSummary {
                id: d.id,
                macs: d.macs.iter().map(|m| m.to_string()).collect(),
                ips: d.ids("ip").to_vec(),
                manufacturer: m.map(str::to_string),
                model: model.map(str::to_string),
                device_type: d.current("device_type").unwrap_or("unknown").to_string(),
                software_version: d.current("software_version").map(str::to_string),
                sites: sites.into_iter().collect(),
                vlans: vlans.into_iter().collect(),
                first_us: d.first_us,
                last_us: d.last_us,
                asset: link_ref(by_dev.get(&(d.id, LinkKind::Asset))),
                contract: link_ref(by_dev.get(&(d.id, LinkKind::Contract))),
                open_flags: counts.get(subject.as_str()).copied().unwrap_or(0),
                flag_kinds: kinds
                    .get(subject.as_str())
                    .map(|k| k.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default(),
                medical: is_medical(d, cfg),
            }
        })
        .collect()
}

/// The group of a [`summary_counts`] row: every device, one manufacturer's devices, or one
/// model's.
pub const ALL: &str = "all";
/// Counts of one manufacturer's devices (`value` = the manufacturer as stored).
pub const MANUFACTURER: &str = "manufacturer";
/// Devices of one model (`value` = the model as stored; only `devices` is counted).
pub const MODEL: &str = "model";
/// The name of an open-flag-kind count: `open:` and the kind.
pub const OPEN_PREFIX: &str = "open:";

/// The summary of the summaries: `(group, value, name) → n`, what the coverage view, the
/// device list's totals and its search read instead of a pass over every summary. Kept by the
/// store with the summaries (in the same transaction), so the two never disagree.
///
/// Names: `devices`, `medical`, `medical_in_asset_register`, `medical_under_contract`,
/// `end_of_support_passed`, `end_of_support_within`, `with_open_flags`, `with_asset`,
/// `with_contract`, and `open:<kind>` (devices with an open flag of that kind) per [`ALL`] and per
/// [`MANUFACTURER`] (a vendor's coverage is the sum over the manufacturers its globs match);
/// `devices` per [`MODEL`] (the distinct models the search matches a substring against). The
/// [`ALL`] group always has its `devices` row, zero included: its presence says the counts were
/// kept (a database summarised by an older collector has none until the next evaluation).
pub fn summary_counts(rows: &[DeviceSummary]) -> BTreeMap<(&'static str, String, String), u64> {
    let mut out = summary_counts_of(rows);
    out.entry((ALL, String::new(), "devices".into()))
        .or_insert(0);
    out
}

/// [`summary_counts`] without the row of every device when there are none: a sum over the rows,
/// so the counts of a changed part of the inventory are its new rows' minus its old rows'.
pub fn summary_counts_of<'a>(
    rows: impl IntoIterator<Item = &'a DeviceSummary>,
) -> BTreeMap<(&'static str, String, String), u64> {
    let mut out: BTreeMap<(&'static str, String, String), u64> = BTreeMap::new();
    for r in rows {
        let mut names: Vec<String> = vec!["devices".into()];
        if r.medical {
            names.push("medical".into());
            if r.asset.is_some() {
                names.push("medical_in_asset_register".into());
            }
            if r.contract.is_some() {
                names.push("medical_under_contract".into());
            }
        }
        if r.open_flags > 0 {
            names.push("with_open_flags".into());
        }
        if r.asset.is_some() {
            names.push("with_asset".into());
        }
        if r.contract.is_some() {
            names.push("with_contract".into());
        }
        // As the stored `flag_kinds` column splits them: one count per listed kind.
        for k in r.flag_kinds.iter().filter(|k| !k.is_empty()) {
            if k == "end_of_support_passed" || k == "end_of_support_within" {
                names.push(k.clone());
            }
            names.push(format!("{OPEN_PREFIX}{k}"));
        }
        for name in names {
            *out.entry((ALL, String::new(), name.clone())).or_default() += 1;
            if let Some(m) = &r.manufacturer {
                *out.entry((MANUFACTURER, m.clone(), name)).or_default() += 1;
            }
        }
        if let Some(m) = &r.model {
            *out.entry((MODEL, m.clone(), "devices".into())).or_default() += 1;
        }
    }
    out
}

/// Coverage from the `name → n` counts of one group (or their sums over several).
pub fn coverage_from(counts: impl IntoIterator<Item = (String, u64)>) -> Coverage {
    let mut c = Coverage::default();
    for (name, n) in counts {
        match name.as_str() {
            "devices" => c.devices += n,
            "medical" => c.medical += n,
            "medical_in_asset_register" => c.medical_in_asset_register += n,
            "medical_under_contract" => c.medical_under_contract += n,
            "end_of_support_passed" => c.end_of_support_passed += n,
            "end_of_support_within" => c.end_of_support_within += n,
            "with_open_flags" => c.with_open_flags += n,
            other => {
                if let Some(kind) = other.strip_prefix(OPEN_PREFIX) {
                    if n > 0 {
                        *c.open_flags_by_kind.entry(kind.to_string()).or_default() += n;
                    }
                }
            }
        }
    }
    c
}
