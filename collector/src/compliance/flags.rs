//! Compliance flags: the conditions that hold now, each with the evidence to take to the
//! vendor. Pure: `evaluate(inventory, links, config, now)` → the set of true conditions; the
//! store turns that set into opened/kept/resolved flags, so a condition that stops holding is
//! resolved with a timestamp rather than forgotten.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use ward_protocols::Protocol;

use crate::compliance::link::manufacturer_model;
use crate::import::model::{Contract, Direction, RemoteAccessPolicy, Transport};
use crate::store::{DeviceView, FlagInstance, Inventory, Link, LinkKind, ServiceView};

/// Every flag kind, for documentation, tests and the API.
pub const KINDS: &[&str] = &[
    "end_of_support_passed",
    "end_of_support_within",
    "no_contract",
    "not_in_asset_register",
    "asset_not_seen",
    "service_not_permitted",
    "cleartext_phi_protocol",
    "remote_access_not_permitted",
    "external_communication_not_permitted",
    "software_version_unsupported",
    "over_contracted_quantity",
    "segment_not_permitted",
    "software_changed",
];

/// Evaluation settings (`[flags]` in the collector's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlagConfig {
    /// `end_of_support_within` fires this many days before end of support.
    pub end_of_support_warning_days: i64,
    /// `asset_not_seen` fires when no linked device was seen for this many days.
    pub asset_not_seen_days: i64,
    /// `software_changed` stays open this long after a change (the patch-SLA review window;
    /// MC2 #31's 30 days by default).
    pub software_change_window_days: i64,
    /// The hospital's own networks; a peer outside them is external communication.
    pub internal_networks: Vec<IpNet>,
    /// Ports that carry remote (vendor) access sessions.
    pub remote_access_ports: Vec<u16>,
    /// Device types that are not medical devices: they are not expected in the asset register
    /// or under a medical-device contract (unless they speak DICOM or HL7).
    pub non_medical_types: Vec<String>,
}

impl Default for FlagConfig {
    fn default() -> Self {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "224.0.0.0/4",
            "255.255.255.255/32",
            "0.0.0.0/32",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "::1/128",
        ];
        FlagConfig {
            end_of_support_warning_days: 180,
            asset_not_seen_days: 30,
            software_change_window_days: 30,
            internal_networks: nets.iter().filter_map(|n| n.parse().ok()).collect(),
            // SSH, telnet, RDP, VNC (and its web client), TeamViewer, pcAnywhere.
            remote_access_ports: vec![22, 23, 3389, 5800, 5900, 5901, 5902, 5938, 5631],
            non_medical_types: [
                "unknown",
                "workstation",
                "printer",
                "network_infra",
                "mobile_device",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

const DAY_US: i64 = 86_400_000_000;

fn date_of(us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn time_of(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn device_evidence(d: &DeviceView) -> serde_json::Value {
    let (mfr, model) = manufacturer_model(d);
    json!({
        "device_id": d.id,
        "macs": d.macs.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "ips": d.ids("ip"),
        "manufacturer": mfr,
        "model": model,
        "device_type": d.current("device_type"),
        "software_version": d.current("software_version"),
        "first_seen": time_of(d.first_us),
        "last_seen": time_of(d.last_us),
        "seen_by": d.sightings.iter().map(|s| json!({"site": s.site, "agent_id": s.agent_id, "vlan": s.vlan})).collect::<Vec<_>>(),
    })
}

fn contract_evidence(c: &Contract, link: &Link) -> serde_json::Value {
    json!({
        "contract_id": c.id,
        "supplier": c.supplier,
        "link_method": link.method,
        "link_confidence": link.confidence,
        "mds2": c.mds2,
        "sbom": c.sbom,
    })
}

fn service_evidence(s: &ServiceView) -> serde_json::Value {
    json!({
        "direction": s.direction,
        "transport": s.transport,
        "port": s.port,
        "app": s.app,
        "peers": s.peers,
        "peer_addresses": s.peer_addresses.iter().take(20).map(|p| p.to_string()).collect::<Vec<_>>(),
        "first_seen": time_of(s.first_us),
        "last_seen": time_of(s.last_us),
    })
}

fn service_key(s: &ServiceView) -> String {
    format!("{}/{}/{}", s.transport, s.port, s.direction)
}

/// Whether a service's application protocol carries patient data (DICOM, HL7 today): asked of
/// the protocol ([`Protocol::carries_patient_data`]), so a new clinical protocol counts here
/// the day it is registered.
pub fn carries_patient_data(s: &ServiceView) -> bool {
    s.app
        .as_deref()
        .and_then(Protocol::from_name)
        .is_some_and(Protocol::carries_patient_data)
}

/// Whether a device counts as a medical device: it speaks a protocol that carries patient data,
/// or its type is not one of `cfg.non_medical_types`.
pub fn is_medical(d: &DeviceView, cfg: &FlagConfig) -> bool {
    let speaks_clinical = d.services.iter().any(carries_patient_data);
    let t = d.current("device_type").unwrap_or("unknown");
    speaks_clinical || !cfg.non_medical_types.iter().any(|n| n == t)
}

fn permitted(c: &Contract, s: &ServiceView) -> bool {
    let transport = match s.transport.as_str() {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        _ => return false,
    };
    c.permitted_services.iter().any(|p| {
        let dir_ok = matches!(
            (p.direction, s.direction.as_str()),
            (Direction::Both, _) | (Direction::Inbound, "offered") | (Direction::Outbound, "used")
        );
        p.transport == transport
            && p.port == s.port
            && dir_ok
            && (p.peers.is_empty()
                || s.peer_addresses
                    .iter()
                    .all(|a| p.peers.iter().any(|n| n.contains(a))))
    })
}

fn internal(cfg: &FlagConfig, ip: &IpAddr) -> bool {
    cfg.internal_networks.iter().any(|n| n.contains(ip))
}

struct Out(Vec<FlagInstance>);

impl Out {
    fn push(
        &mut self,
        kind: &str,
        subject: String,
        detail: String,
        severity: &str,
        summary: String,
        evidence: serde_json::Value,
    ) {
        self.0.push(FlagInstance {
            kind: kind.to_string(),
            subject,
            detail,
            severity: severity.to_string(),
            summary,
            evidence,
        });
    }
}

/// Every condition that holds at `now_us`.
pub fn evaluate(
    inv: &Inventory,
    links: &[Link],
    cfg: &FlagConfig,
    now_us: i64,
) -> Vec<FlagInstance> {
    let today = date_of(now_us);
    let contracts: HashMap<&str, &Contract> =
        inv.contracts.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut by_device: HashMap<(i64, LinkKind), &Link> = HashMap::new();
    for l in links {
        by_device.insert((l.device_id, l.kind), l);
    }
    let mut out = Out(Vec::new());
    let mut per_contract: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut asset_last_seen: HashMap<&str, i64> = HashMap::new();
    let devices: HashMap<i64, &DeviceView> = inv.devices.iter().map(|d| (d.id, d)).collect();
    for l in links {
        if l.kind == LinkKind::Asset {
            if let Some(d) = devices.get(&l.device_id) {
                let e = asset_last_seen.entry(l.target.as_str()).or_insert(i64::MIN);
                *e = (*e).max(d.last_us);
            }
        }
    }

    for d in &inv.devices {
        let subject = format!("device:{}", d.id);
        let medical = is_medical(d, cfg);
        let asset = by_device.get(&(d.id, LinkKind::Asset));
        let clink = by_device.get(&(d.id, LinkKind::Contract));
        let contract = clink.and_then(|l| contracts.get(l.target.as_str()).map(|c| (*c, *l)));
        let (mfr, model) = manufacturer_model(d);
        let name = match (mfr, model) {
            (Some(m), Some(o)) => format!("{m} {o}"),
            (Some(m), None) => m.to_string(),
            (None, Some(o)) => o.to_string(),
            (None, None) => d
                .macs
                .first()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("device {}", d.id)),
        };

        if medical && contract.is_none() {
            out.push(
                "no_contract",
                subject.clone(),
                String::new(),
                "medium",
                format!("{name}: no contract covers this device (by asset, serial or model)"),
                json!({"device": device_evidence(d), "asset": asset.map(|a| &a.target)}),
            );
        }
        if medical && asset.is_none() {
            out.push(
                "not_in_asset_register",
                subject.clone(),
                String::new(),
                "medium",
                format!("{name}: not in the asset register (no asset matches its MAC, serial, EUI-64, UDI or IP + host name)"),
                json!({"device": device_evidence(d)}),
            );
        }

        // software_changed holds for any device: the change itself is the evidence.
        if let Some(hist) = d.attributes.get("software_version") {
            let mut h: Vec<_> = hist.iter().collect();
            h.sort_by_key(|v| (v.first_us, v.last_us));
            for w in h.windows(2) {
                if let [old, new] = w {
                    let changed = new.first_us;
                    if new.first_us > old.first_us
                        && now_us.saturating_sub(changed)
                            <= cfg.software_change_window_days * DAY_US
                    {
                        out.push(
                            "software_changed",
                            subject.clone(),
                            format!("{}->{}", old.value, new.value),
                            "info",
                            format!("{name}: software changed from {} to {} at {} (review against the patch SLA)", old.value, new.value, time_of(changed)),
                            json!({
                                "device": device_evidence(d),
                                "from": old.value, "from_last_seen": time_of(old.last_us),
                                "to": new.value, "to_first_seen": time_of(new.first_us),
                                "reported_by": new.agent_id,
                                "patch_sla_days": contract.map(|(c, _)| c.patch_sla_days),
                            }),
                        );
                    }
                }
            }
        }

        let Some((c, link)) = contract else { continue };
        per_contract.entry(c.id.as_str()).or_default().push(d.id);
        let cev = contract_evidence(c, link);

        if let Some(eos) = c.end_of_support {
            if eos < today {
                out.push(
                    "end_of_support_passed",
                    subject.clone(),
                    String::new(),
                    "high",
                    format!("{name}: end of support {eos} passed {} days ago (contract {})", (today - eos).num_days(), c.id),
                    json!({"device": device_evidence(d), "contract": cev, "end_of_support": eos, "days_past": (today - eos).num_days()}),
                );
            } else if (eos - today).num_days() <= cfg.end_of_support_warning_days {
                out.push(
                    "end_of_support_within",
                    subject.clone(),
                    String::new(),
                    "medium",
                    format!("{name}: end of support {eos} in {} days (contract {})", (eos - today).num_days(), c.id),
                    json!({"device": device_evidence(d), "contract": cev, "end_of_support": eos, "days_left": (eos - today).num_days(), "warning_days": cfg.end_of_support_warning_days}),
                );
            }
        }

        if !c.supported_software_versions.is_empty() {
            if let Some(v) = d.current("software_version") {
                let ok = c
                    .supported_software_versions
                    .iter()
                    .any(|p| crate::import::pattern::matches(p, v));
                if !ok {
                    out.push(
                        "software_version_unsupported",
                        subject.clone(),
                        v.to_string(),
                        "medium",
                        format!("{name}: software {v} is not among the versions contract {} supports", c.id),
                        json!({"device": device_evidence(d), "contract": cev, "software_version": v, "supported": c.supported_software_versions}),
                    );
                }
            }
        }

        let mut external: Vec<(IpAddr, String)> = Vec::new();
        for s in &d.services {
            let key = service_key(s);
            if !c.permitted_services.is_empty() && !permitted(c, s) {
                out.push(
                    "service_not_permitted",
                    subject.clone(),
                    key.clone(),
                    "high",
                    format!("{name}: {} {}/{}{} is not a service contract {} permits", if s.direction == "offered" { "offers" } else { "uses" }, s.transport, s.port, s.app.as_deref().map(|a| format!(" ({a})")).unwrap_or_default(), c.id),
                    json!({"device": device_evidence(d), "contract": cev, "service": service_evidence(s), "permitted_services": c.permitted_services}),
                );
            }
            if c.encryption_in_transit_required && carries_patient_data(s) {
                let app = s.app.as_deref().unwrap_or_default().to_uppercase();
                out.push(
                    "cleartext_phi_protocol",
                    subject.clone(),
                    key.clone(),
                    "high",
                    format!("{name}: cleartext {app} on {}/{} while contract {} requires encryption in transit", s.transport, s.port, c.id),
                    json!({"device": device_evidence(d), "contract": cev, "service": service_evidence(s), "mds2_questions": ["TXCF-2", "TXCF-5", "CONN-7"]}),
                );
            }
            if cfg.remote_access_ports.contains(&s.port) {
                let violating: Vec<String> = match c.remote_access.policy {
                    RemoteAccessPolicy::Unrestricted => Vec::new(),
                    RemoteAccessPolicy::None => {
                        if s.peer_addresses.is_empty() {
                            vec!["(peer addresses not reported)".to_string()]
                        } else {
                            s.peer_addresses.iter().map(|p| p.to_string()).collect()
                        }
                    }
                    RemoteAccessPolicy::Listed => {
                        if s.peer_addresses.is_empty() && s.peers > 0 {
                            vec!["(peer addresses not reported)".to_string()]
                        } else {
                            s.peer_addresses
                                .iter()
                                .filter(|p| {
                                    !c.remote_access.gateways.iter().any(|g| g.contains(*p))
                                })
                                .map(|p| p.to_string())
                                .collect()
                        }
                    }
                };
                if !violating.is_empty() {
                    out.push(
                        "remote_access_not_permitted",
                        subject.clone(),
                        key.clone(),
                        "high",
                        format!("{name}: remote-access service {}/{} ({}) with {} peer(s) contract {} does not permit", s.transport, s.port, s.direction, violating.len(), c.id),
                        json!({"device": device_evidence(d), "contract": cev, "service": service_evidence(s), "policy": c.remote_access, "peers_not_permitted": violating, "mds2_questions": ["RMOT-1", "RMOT-2", "RMOT-3"]}),
                    );
                }
            }
            for p in &s.peer_addresses {
                if !internal(cfg, p) {
                    external.push((*p, key.clone()));
                }
            }
        }
        if !c.external_communication_permitted && !external.is_empty() {
            external.sort();
            external.dedup();
            out.push(
                "external_communication_not_permitted",
                subject.clone(),
                String::new(),
                "high",
                format!("{name}: talks to {} peer(s) outside the hospital's networks while contract {} permits no external communication", external.len(), c.id),
                json!({"device": device_evidence(d), "contract": cev, "external_peers": external.iter().take(50).map(|(p, s)| json!({"peer": p.to_string(), "service": s})).collect::<Vec<_>>(), "mds2_questions": ["CONN-3", "CONN-4", "CONN-6", "TXCF-3"]}),
            );
        }

        let mut bad_segments: Vec<String> = Vec::new();
        for s in &d.sightings {
            if !c.sites.is_empty() && !c.sites.iter().any(|x| x == &s.site) {
                bad_segments.push(format!("site:{}", s.site));
            }
            if let Some(v) = s.vlan {
                if !c.vlans.is_empty() && !c.vlans.contains(&v) {
                    bad_segments.push(format!("vlan:{v}"));
                }
            }
        }
        bad_segments.sort();
        bad_segments.dedup();
        for seg in bad_segments {
            out.push(
                "segment_not_permitted",
                subject.clone(),
                seg.clone(),
                "medium",
                format!("{name}: seen on {seg}, outside the sites/VLANs contract {} permits", c.id),
                json!({"device": device_evidence(d), "contract": cev, "segment": seg, "permitted_sites": c.sites, "permitted_vlans": c.vlans}),
            );
        }
    }

    for a in &inv.assets {
        let last = asset_last_seen.get(a.tag.as_str()).copied();
        let fresh =
            last.is_some_and(|l| now_us.saturating_sub(l) <= cfg.asset_not_seen_days * DAY_US);
        if !fresh {
            out.push(
                "asset_not_seen",
                format!("asset:{}", a.tag),
                String::new(),
                "medium",
                match last {
                    Some(l) => format!("asset {} ({} {}): last seen {} — more than {} days ago", a.tag, a.manufacturer.as_deref().unwrap_or("?"), a.model.as_deref().unwrap_or("?"), time_of(l), cfg.asset_not_seen_days),
                    None => format!("asset {} ({} {}): never seen on the network", a.tag, a.manufacturer.as_deref().unwrap_or("?"), a.model.as_deref().unwrap_or("?")),
                },
                json!({"asset": a, "last_seen": last.map(time_of), "days": cfg.asset_not_seen_days}),
            );
        }
    }

    for c in &inv.contracts {
        if let Some(q) = c.quantity {
            let devs = per_contract
                .get(c.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if devs.len() as u64 > u64::from(q) {
                out.push(
                    "over_contracted_quantity",
                    format!("contract:{}", c.id),
                    String::new(),
                    "medium",
                    format!("contract {} ({}) covers {q} devices; {} are linked to it", c.id, c.supplier, devs.len()),
                    json!({"contract_id": c.id, "supplier": c.supplier, "quantity": q, "linked": devs.len(), "device_ids": devs.iter().take(200).collect::<Vec<_>>()}),
                );
            }
        }
    }
    out.0
}
