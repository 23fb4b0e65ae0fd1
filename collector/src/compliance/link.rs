//! Linking: device → CMMS asset, asset → contract, and device → contract by serial or model
//! coverage when no asset links it. Pure functions over an [`Inventory`] and the evaluation
//! date; every link says how it was made and how sure it is, because clinical engineering has
//! to decide whether to trust it. Only a contract in force links (docs/contracts.md, "How ward
//! evaluates a contract"); serials and asset tags match case-insensitively, trimmed.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use ward_protocols::{Attribute, Field};

use crate::import::model::{Asset, Contract};
use crate::store::{DeviceView, Inventory, Link, LinkKind};

/// Confidence of each method. A MAC is what the CMMS records for the very interface the agent
/// saw; serial-like identities are as good but can be mistyped in a register; an IP plus host
/// name can go stale with DHCP; model coverage says "a product of this kind is under contract",
/// not "this unit is".
pub mod confidence {
    /// Asset MAC = device MAC.
    pub const MAC: f32 = 1.0;
    /// Asset serial = device serial / EUI-64.
    pub const SERIAL: f32 = 0.9;
    /// Asset serial = serial inside the device's UDI (AI 21).
    pub const UDI: f32 = 0.85;
    /// Asset IP and host name both match.
    pub const IP_HOSTNAME: f32 = 0.6;
    /// Device serial listed in a contract.
    pub const CONTRACT_SERIAL: f32 = 0.9;
    /// Manufacturer + model pattern of a contract.
    pub const MODEL: f32 = 0.7;
}

/// The serial number inside a GS1 UDI in HRI form: the value of application identifier (21).
pub fn udi_serial(udi: &str) -> Option<&str> {
    let start = udi.find("(21)")? + 4;
    let rest = udi.get(start..)?;
    let end = rest.find('(').unwrap_or(rest.len());
    let s = rest.get(..end)?.trim();
    (!s.is_empty()).then_some(s)
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether a device's reported manufacturer is the contract's supplier. Suppliers are written
/// by people ("Siemens Healthineers AG") and devices report terse names ("SIEMENS"), so the
/// test is loose: one word list is a prefix of the other, or the first significant words agree.
pub fn manufacturer_matches(expected: &str, reported: &str) -> bool {
    let (a, b) = (words(expected), words(reported));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let n = a.len().min(b.len());
    if a[..n] == b[..n] {
        return true;
    }
    let sig = |v: &[String]| v.iter().find(|w| w.len() >= 3).cloned();
    matches!((sig(&a), sig(&b)), (Some(x), Some(y)) if x == y)
}

/// Manufacturer and model of a device: what the rules classified, else the raw facts whose
/// role is manufacturer or model (in allow-list order: a DICOM dataset's before an HL7 DEV
/// segment's).
pub fn manufacturer_model(d: &DeviceView) -> (Option<&str>, Option<&str>) {
    let m = d
        .current("manufacturer")
        .or_else(|| fact_with_role(d, Attribute::Manufacturer));
    let model = d
        .current("model")
        .or_else(|| fact_with_role(d, Attribute::Model));
    (m, model)
}

/// The current value of the first field (in allow-list order) with attribute role `role`.
pub fn fact_with_role(d: &DeviceView, role: Attribute) -> Option<&str> {
    Field::ALL
        .iter()
        .filter(|f| f.attribute() == role)
        .find_map(|f| d.current(f.name()))
}

/// Whether `c` covers a product by manufacturer and model.
pub fn covers_model(c: &Contract, manufacturer: Option<&str>, model: &str) -> bool {
    c.products.iter().any(|p| {
        let model_ok = crate::import::pattern::matches(&p.model, model);
        let mfr_ok = match (&p.manufacturer, manufacturer) {
            (_, None) => false,
            (Some(pm), Some(m)) => {
                crate::import::pattern::matches(pm, m) || manufacturer_matches(pm, m)
            }
            (None, Some(m)) => manufacturer_matches(&c.supplier, m),
        };
        model_ok && mfr_ok
    })
}

/// Whether `c` is in force on `today`: it has no end, or ends today or later. The end date is
/// the last day of cover (docs/contracts.md, "How ward evaluates a contract").
pub fn in_force(c: &Contract, today: NaiveDate) -> bool {
    c.end.is_none_or(|end| end >= today)
}

/// The key serials and asset tags are compared on: people type them into registers and
/// contracts with stray spaces and either case.
fn norm_key(s: &str) -> String {
    s.trim().to_uppercase()
}

/// An asset link: tag, method, confidence.
type AssetMatch = (String, &'static str, f32);

fn asset_for(d: &DeviceView, idx: &Indexes<'_>) -> Option<AssetMatch> {
    for m in &d.macs {
        if let Some(a) = idx.by_mac.get(&m.to_string()) {
            return Some((a.tag.clone(), "mac", confidence::MAC));
        }
    }
    for s in d.ids("serial").iter().chain(d.ids("eui64")) {
        if let Some(a) = idx.by_serial.get(&norm_key(s)) {
            let method = if d.ids("eui64").contains(s) {
                "eui64"
            } else {
                "serial"
            };
            return Some((a.tag.clone(), method, confidence::SERIAL));
        }
    }
    for u in d.ids("udi") {
        if let Some(a) = udi_serial(u).and_then(|s| idx.by_serial.get(&norm_key(s))) {
            return Some((a.tag.clone(), "udi", confidence::UDI));
        }
    }
    let hostnames: Vec<String> = d
        .ids("hostname")
        .iter()
        .map(|h| h.split('.').next().unwrap_or(h).to_ascii_lowercase())
        .collect();
    for ip in d.ids("ip") {
        for a in idx.by_ip.get(ip.as_str()).into_iter().flatten() {
            if let Some(h) = &a.hostname {
                let short = h.split('.').next().unwrap_or(h).to_ascii_lowercase();
                if hostnames.contains(&short) {
                    return Some((a.tag.clone(), "ip+hostname", confidence::IP_HOSTNAME));
                }
            }
        }
    }
    None
}

struct Indexes<'a> {
    inv: &'a Inventory,
    by_mac: HashMap<String, &'a Asset>,
    by_serial: HashMap<String, &'a Asset>,
    by_ip: HashMap<String, Vec<&'a Asset>>,
    by_tag: HashMap<&'a str, &'a Asset>,
    contracts: HashMap<&'a str, &'a Contract>,
}

impl<'a> Indexes<'a> {
    fn new(inv: &'a Inventory) -> Self {
        let mut idx = Indexes {
            inv,
            by_mac: HashMap::new(),
            by_serial: HashMap::new(),
            by_ip: HashMap::new(),
            by_tag: HashMap::new(),
            contracts: inv.contracts.iter().map(|c| (c.id.as_str(), c)).collect(),
        };
        for a in &inv.assets {
            idx.by_tag.insert(a.tag.as_str(), a);
            if let Some(m) = a.mac {
                idx.by_mac.entry(m.to_string()).or_insert(a);
            }
            if let Some(s) = &a.serial {
                idx.by_serial.entry(norm_key(s)).or_insert(a);
            }
            if let Some(ip) = a.ip {
                idx.by_ip.entry(ip.to_string()).or_default().push(a);
            }
        }
        idx
    }
}

/// Of several contracts that cover a device the same way (a renewal beside the contract it
/// renews), the one that runs longest; equal ends: the smallest id, so the choice is stable.
fn longest<'a>(cs: impl Iterator<Item = &'a Contract>) -> Option<&'a Contract> {
    cs.max_by(|a, b| {
        let ka = a.end.unwrap_or(NaiveDate::MAX);
        let kb = b.end.unwrap_or(NaiveDate::MAX);
        ka.cmp(&kb).then_with(|| b.id.cmp(&a.id))
    })
}

/// The contract that covers `d` among the contracts `eligible` accepts, by the first method
/// that finds one: the asset's contract id, the asset's tag in a contract, the device's serial
/// in a contract, the device's (or its asset's) manufacturer and model.
fn contract_for(
    d: &DeviceView,
    asset: Option<&AssetMatch>,
    idx: &Indexes<'_>,
    eligible: impl Fn(&Contract) -> bool,
) -> Option<Link> {
    let found = |c: &Contract, method: &str, confidence: f32| Link {
        device_id: d.id,
        kind: LinkKind::Contract,
        target: c.id.clone(),
        method: method.to_string(),
        confidence,
    };
    let contracts = || idx.inv.contracts.iter().filter(|c| eligible(c));
    let asset_row = asset.and_then(|(tag, _, _)| idx.by_tag.get(tag.as_str()).copied());
    if let (Some((tag, _, conf)), Some(a)) = (asset, asset_row) {
        if let Some(c) = a
            .contract_id
            .as_deref()
            .and_then(|id| idx.contracts.get(id))
            .filter(|c| eligible(c))
        {
            return Some(found(c, "asset_contract_id", *conf));
        }
        let tag = norm_key(tag);
        if let Some(c) =
            longest(contracts().filter(|c| c.asset_tags.iter().any(|t| norm_key(t) == tag)))
        {
            return Some(found(c, "contract_asset_tag", *conf));
        }
    }
    let serials: Vec<String> = d
        .ids("serial")
        .iter()
        .map(|s| norm_key(s))
        .chain(
            d.ids("udi")
                .iter()
                .filter_map(|u| udi_serial(u))
                .map(norm_key),
        )
        .collect();
    if let Some(c) =
        longest(contracts().filter(|c| c.serials.iter().any(|s| serials.contains(&norm_key(s)))))
    {
        return Some(found(c, "contract_serial", confidence::CONTRACT_SERIAL));
    }
    let (mut mfr, mut model) = manufacturer_model(d);
    // The register may know what the wire does not.
    if let Some(a) = asset_row {
        mfr = mfr.or(a.manufacturer.as_deref());
        model = model.or(a.model.as_deref());
    }
    let model = model?;
    longest(contracts().filter(|c| covers_model(c, mfr, model)))
        .map(|c| found(c, "model_coverage", confidence::MODEL))
}

/// Computes every link as of `today`: each device's asset, and the contract in force that
/// covers it. A contract whose end has passed covers nothing ([`lapsed`] finds what it would
/// have covered). Deterministic: the same inventory and date give the same links.
pub fn link(inv: &Inventory, today: NaiveDate) -> Vec<Link> {
    let idx = Indexes::new(inv);
    let mut out = Vec::new();
    for d in &inv.devices {
        let asset = asset_for(d, &idx);
        if let Some((tag, method, conf)) = &asset {
            out.push(Link {
                device_id: d.id,
                kind: LinkKind::Asset,
                target: tag.clone(),
                method: (*method).to_string(),
                confidence: *conf,
            });
        }
        out.extend(contract_for(d, asset.as_ref(), &idx, |c| {
            in_force(c, today)
        }));
    }
    out
}

/// For each device `links` gives no contract, the contract that ended before `today` and
/// would cover it otherwise (by the same methods, the latest-ending first): what the device's
/// `no_contract` flag names. Not links: they are neither stored nor shown as cover.
pub fn lapsed(inv: &Inventory, links: &[Link], today: NaiveDate) -> Vec<Link> {
    let covered: HashSet<i64> = links
        .iter()
        .filter(|l| l.kind == LinkKind::Contract)
        .map(|l| l.device_id)
        .collect();
    let idx = Indexes::new(inv);
    inv.devices
        .iter()
        .filter(|d| !covered.contains(&d.id))
        .filter_map(|d| {
            let asset = asset_for(d, &idx);
            contract_for(d, asset.as_ref(), &idx, |c| !in_force(c, today))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_manufacturer_names_match() {
        assert!(manufacturer_matches("Siemens Healthineers AG", "SIEMENS"));
        assert!(manufacturer_matches("B. Braun Melsungen AG", "B. Braun"));
        assert!(manufacturer_matches(
            "WARD TEST MEDICAL",
            "Ward Test Medical GmbH"
        ));
        assert!(!manufacturer_matches("GE HealthCare", "Philips"));
        assert!(!manufacturer_matches("", "Philips"));
    }

    #[test]
    fn udi_serial_is_ai_21() {
        assert_eq!(
            udi_serial("(01)00643169001763(17)160712(21)21A11F4855"),
            Some("21A11F4855")
        );
        assert_eq!(udi_serial("(01)00643169001763(21)X1(17)160712"), Some("X1"));
        assert_eq!(udi_serial("(01)00643169001763"), None);
    }

    use crate::compliance::flags::testkit::*;
    use crate::import::model::Contract;

    fn contract_link(w: &World) -> Option<(String, String)> {
        link(&w.inv, today())
            .into_iter()
            .find(|l| l.kind == LinkKind::Contract)
            .map(|l| (l.target, l.method))
    }

    /// Asset tags in a contract match the register's like serials do: case-insensitive,
    /// surrounding spaces ignored.
    #[test]
    fn asset_tags_and_serials_match_case_insensitively_and_trimmed() {
        for listed in ["A-1", "a-1", " A-1 ", "\tA-1"] {
            let w = World::covered_with(|w| {
                w.c().products.clear();
                w.c().asset_tags = vec![listed.to_string()];
            });
            assert_eq!(
                contract_link(&w),
                Some(("C-1".into(), "contract_asset_tag".into())),
                "{listed:?}"
            );
        }
        let w = World::covered_with(|w| {
            w.c().products.clear();
            w.c().asset_tags = vec!["A-10".into()];
        });
        assert_eq!(contract_link(&w), None);
        for (listed, seen) in [("sn-7", "SN-7"), (" SN-7", "sn-7 "), ("Sn-7", "sN-7")] {
            let w = World::covered_with(|w| {
                w.c().products.clear();
                w.c().serials = vec![listed.to_string()];
                let d = w.d().clone().id("serial", seen);
                *w.d() = d;
                w.inv.assets.clear();
            });
            assert_eq!(
                contract_link(&w),
                Some(("C-1".into(), "contract_serial".into())),
                "{listed:?} ~ {seen:?}"
            );
        }
        // The register's serial, too.
        let w = World::covered_with(|w| {
            w.inv.assets[0].mac = None;
            w.inv.assets[0].serial = Some(" sn-7 ".into());
            let d = w.d().clone().id("serial", "SN-7");
            *w.d() = d;
        });
        let l = link(&w.inv, today());
        assert_eq!(
            (l[0].target.as_str(), l[0].method.as_str()),
            ("A-1", "serial")
        );
    }

    /// Only a contract in force links; one that ended yesterday is what `lapsed` reports, and
    /// only for a device nothing in force covers.
    #[test]
    fn only_contracts_in_force_link() {
        let w = World::covered_with(|w| {
            w.inv.assets[0].contract_id = Some("C-OLD".into());
            w.inv.contracts.push(Contract {
                end: Some(days(-1)),
                ..contract("C-OLD")
            });
        });
        // The register names a lapsed contract, a contract in force covers the model.
        assert_eq!(
            contract_link(&w),
            Some(("C-1".into(), "model_coverage".into()))
        );
        assert_eq!(lapsed(&w.inv, &link(&w.inv, today()), today()), Vec::new());
        // Without it, the lapsed one is found by the register's contract id.
        let mut w = w;
        w.inv.contracts.retain(|c| c.id == "C-OLD");
        assert_eq!(contract_link(&w), None);
        let l = lapsed(&w.inv, &link(&w.inv, today()), today());
        assert_eq!(
            (l[0].target.as_str(), l[0].method.as_str()),
            ("C-OLD", "asset_contract_id")
        );
        // Ending today, it still links.
        w.c().end = Some(today());
        assert_eq!(
            contract_link(&w),
            Some(("C-OLD".into(), "asset_contract_id".into()))
        );
    }

    /// Several contracts covering a device the same way: the one that runs longest (no end =
    /// longest), then the smallest id.
    #[test]
    fn the_longest_running_contract_wins() {
        let tagged = |id: &str, end: Option<i64>| Contract {
            asset_tags: vec!["A-1".into()],
            end: end.map(days),
            ..contract(id)
        };
        for (contracts, want) in [
            (
                vec![tagged("C-A", Some(10)), tagged("C-B", Some(20))],
                "C-B",
            ),
            (vec![tagged("C-A", None), tagged("C-B", Some(20))], "C-A"),
            (
                vec![tagged("C-B", Some(20)), tagged("C-A", Some(20))],
                "C-A",
            ),
            (vec![tagged("C-A", Some(-1)), tagged("C-B", Some(0))], "C-B"),
        ] {
            let mut w = World::covered();
            w.inv.contracts = contracts;
            assert_eq!(contract_link(&w).map(|l| l.0).as_deref(), Some(want));
        }
    }
}
