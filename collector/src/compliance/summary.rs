//! Device summaries: the per-device row the API and reports list and filter on, recomputed by
//! every evaluation from the inventory, its links and its flags.

use std::collections::{BTreeSet, HashMap};

use crate::compliance::flags::{is_medical, FlagConfig};
use crate::compliance::link::manufacturer_model;
use crate::store::{DeviceSummary, FlagInstance, Inventory, Link, LinkKind, LinkRef};

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
