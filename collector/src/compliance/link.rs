//! Linking: device → CMMS asset, asset → contract, and device → contract by model coverage when
//! no asset links it. Pure functions over an [`Inventory`]; every link says how it was made and
//! how sure it is, because clinical engineering has to decide whether to trust it.

use std::collections::HashMap;

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

fn norm_serial(s: &str) -> String {
    s.trim().to_ascii_uppercase()
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

fn asset_for(d: &DeviceView, idx: &Indexes<'_>) -> Option<(String, &'static str, f32)> {
    for m in &d.macs {
        if let Some(a) = idx.by_mac.get(&m.to_string()) {
            return Some((a.tag.clone(), "mac", confidence::MAC));
        }
    }
    for s in d.ids("serial").iter().chain(d.ids("eui64")) {
        if let Some(a) = idx.by_serial.get(&norm_serial(s)) {
            let method = if d.ids("eui64").contains(s) {
                "eui64"
            } else {
                "serial"
            };
            return Some((a.tag.clone(), method, confidence::SERIAL));
        }
    }
    for u in d.ids("udi") {
        if let Some(a) = udi_serial(u).and_then(|s| idx.by_serial.get(&norm_serial(s))) {
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
    by_mac: HashMap<String, &'a Asset>,
    by_serial: HashMap<String, &'a Asset>,
    by_ip: HashMap<String, Vec<&'a Asset>>,
    by_tag: HashMap<&'a str, &'a Asset>,
    contracts: HashMap<&'a str, &'a Contract>,
}

/// Computes every link. Deterministic: the same inventory gives the same links.
pub fn link(inv: &Inventory) -> Vec<Link> {
    let mut idx = Indexes {
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
            idx.by_serial.entry(norm_serial(s)).or_insert(a);
        }
        if let Some(ip) = a.ip {
            idx.by_ip.entry(ip.to_string()).or_default().push(a);
        }
    }
    let mut out = Vec::new();
    for d in &inv.devices {
        let asset = asset_for(d, &idx);
        let mut contract: Option<(String, String, f32)> = None;
        if let Some((tag, method, conf)) = &asset {
            out.push(Link {
                device_id: d.id,
                kind: LinkKind::Asset,
                target: tag.clone(),
                method: (*method).to_string(),
                confidence: *conf,
            });
            if let Some(a) = idx.by_tag.get(tag.as_str()) {
                if let Some(c) = a
                    .contract_id
                    .as_deref()
                    .and_then(|id| idx.contracts.get(id))
                {
                    contract = Some((c.id.clone(), "asset_contract_id".into(), *conf));
                } else if let Some(c) = inv
                    .contracts
                    .iter()
                    .find(|c| c.asset_tags.iter().any(|t| t == tag))
                {
                    contract = Some((c.id.clone(), "contract_asset_tag".into(), *conf));
                }
            }
        }
        if contract.is_none() {
            let serials: Vec<String> = d
                .ids("serial")
                .iter()
                .map(|s| norm_serial(s))
                .chain(
                    d.ids("udi")
                        .iter()
                        .filter_map(|u| udi_serial(u))
                        .map(norm_serial),
                )
                .collect();
            if let Some(c) = inv
                .contracts
                .iter()
                .find(|c| c.serials.iter().any(|s| serials.contains(&norm_serial(s))))
            {
                contract = Some((
                    c.id.clone(),
                    "contract_serial".into(),
                    confidence::CONTRACT_SERIAL,
                ));
            }
        }
        if contract.is_none() {
            let (mut mfr, mut model) = manufacturer_model(d);
            // The register may know what the wire does not.
            if let Some(a) = asset
                .as_ref()
                .and_then(|(t, _, _)| idx.by_tag.get(t.as_str()))
            {
                mfr = mfr.or(a.manufacturer.as_deref());
                model = model.or(a.model.as_deref());
            }
            if let Some(model) = model {
                // Several contracts may cover a model (renewals): prefer the one that runs
                // longest.
                let best = inv
                    .contracts
                    .iter()
                    .filter(|c| covers_model(c, mfr, model))
                    .max_by(|a, b| {
                        let ka = a.end.unwrap_or(chrono::NaiveDate::MAX);
                        let kb = b.end.unwrap_or(chrono::NaiveDate::MAX);
                        ka.cmp(&kb).then_with(|| b.id.cmp(&a.id))
                    });
                if let Some(c) = best {
                    contract = Some((c.id.clone(), "model_coverage".into(), confidence::MODEL));
                }
            }
        }
        if let Some((target, method, confidence)) = contract {
            out.push(Link {
                device_id: d.id,
                kind: LinkKind::Contract,
                target,
                method,
                confidence,
            });
        }
    }
    out
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
}
