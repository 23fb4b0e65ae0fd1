//! Compliance flags: the conditions that hold now, each with the evidence to take to the
//! vendor. Pure: [`evaluate`]`(inventory, links, config, now)` → the set of true conditions;
//! the store turns that set into opened/kept/resolved flags, so a condition that stops holding
//! is resolved with a timestamp rather than forgotten.
//!
//! Each [`FlagKind`] has a wire name, a [`Severity`] and a [`Scope`] ([`kind`]); each scope has
//! one function, called by [`evaluate`]:
//!
//! | scope | function | kinds |
//! |---|---|---|
//! | device | [`device::device_flags`] | cover, register, support dates, software, segments, external peers |
//! | service | [`service::service_flags`], [`service::contacted_remote_access`] | one service against the covering contract's terms; remote-access names a device reached out to |
//! | contract | [`contract::contract_flags`] | a contract and the devices linked to it |
//! | asset | [`asset::asset_flags`] | a row of the asset register |
//! | advisory | [`advisory::advisory_flags`] | a device against each imported security advisory (CSAF), the KEV catalog and the covering contract's `patch_sla_days` |
//! | advisory | [`eox::eox_flags`] | a device against each imported OpenEoX end-of-life statement |
//!
//! What a contract means — when it covers, the end-of-support boundaries, who counts as a
//! medical device — is written in `docs/contracts.md` ("How ward evaluates a contract") and
//! pinned by this module's tests.
//!
//! # Adding a flag kind
//!
//! 1. Add its row to `flag_kinds!` in [`kind`]: variant, wire name (never change one once
//!    shipped: the database, API, alerts and reports carry it), severity, scope.
//! 2. Raise it in its scope's function (`device.rs`, `service.rs`, `contract.rs`,
//!    `asset.rs` or `advisory.rs`) with [`flag`], with evidence that names what a clinical engineer needs to act
//!    (the device, the contract, the date or peer that breaks the term).
//! 3. Add a `testkit::Case` that raises and clears it to that file's `cases()`: the test
//!    `every_kind_is_raised_and_cleared` fails until there is one. Pin its boundaries there too.
//! 4. Outside the code, tests hold the lists to the enum: `openapi.json`'s `kind` and `flag`
//!    enums (`openapi_enumerates_the_kinds`); README.md's "Flags:" paragraph and
//!    `collector/tests/demo.rs` (the demo must show every documented kind, so the sample data in
//!    `examples/` must raise it); `collector/tests/e2e.rs` raises and clears every kind through
//!    the real binaries. Name the contract field that drives it in `docs/contracts.md`.

pub mod advisory;
pub mod asset;
pub mod contract;
pub mod device;
pub mod eox;
pub mod kind;
pub mod remote_names;
pub mod service;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use ward_protocols::Protocol;

pub use kind::{FlagKind, Scope, Severity, UnknownFlagKind, KINDS};

use crate::compliance::link::{self, manufacturer_model};
use crate::compliance::vendors::VendorAliases;
use crate::import::model::{Asset, Contract};
use crate::store::{
    Covered, DeviceView, FlagInstance, Inventory, Link, LinkKind, ResolutionNote, ServiceView,
};

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
    /// A site's remote-access domain file (the bundled list's format,
    /// `collector/data/remote_access_domains.toml`): its entries are added to the bundled
    /// ones, replace a bundled entry with the same domain, or remove it (`enabled = false`).
    /// Read once by [`crate::config::Config::resolve`].
    pub remote_access_domains_file: Option<PathBuf>,
    /// The remote-access domains in effect: the bundled list, with the site file applied. Not a
    /// setting of its own (see `remote_access_domains_file`).
    #[serde(skip)]
    pub remote_access_domains: remote_names::RemoteDomains,
    /// Device types that are not medical devices: they are not expected in the asset register
    /// or under a medical-device contract, unless they speak a protocol that carries patient
    /// data ([`is_medical`]).
    pub non_medical_types: Vec<String>,
    /// The vendor alias table advisories are matched through: the bundled one extended by
    /// `[advisories] vendor_aliases` (read once by [`crate::config::Config::resolve`]).
    #[serde(skip)]
    pub vendor_aliases: VendorAliases,
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
            remote_access_domains_file: None,
            remote_access_domains: remote_names::RemoteDomains::default(),
            non_medical_types: [
                "unknown",
                "workstation",
                "printer",
                "network_infra",
                "mobile_device",
                "ip_phone",
                "camera",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            vendor_aliases: VendorAliases::bundled(),
        }
    }
}

pub(crate) const DAY_US: i64 = 86_400_000_000;

/// When an evaluation runs: the instant (for "seen within N days") and its UTC calendar date
/// (for contract dates, which are calendar days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// µs since the epoch.
    pub now_us: i64,
    /// The UTC date of `now_us`.
    pub today: NaiveDate,
}

impl At {
    /// The evaluation at `now_us`.
    pub fn new(now_us: i64) -> Self {
        At {
            now_us,
            today: date_of(now_us),
        }
    }
}

/// The UTC calendar date of a µs timestamp (the date contract dates are compared with).
pub fn date_of(us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn time_of(us: i64) -> String {
    DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A flag of `kind` (its severity is the kind's).
pub fn flag(
    kind: FlagKind,
    subject: String,
    detail: String,
    summary: String,
    evidence: serde_json::Value,
) -> FlagInstance {
    FlagInstance {
        kind,
        subject,
        detail,
        severity: kind.severity(),
        summary,
        evidence,
    }
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

fn contract_evidence(c: &Cover<'_>) -> serde_json::Value {
    json!({
        "contract_id": c.contract.id,
        "supplier": c.contract.supplier,
        "link_method": c.link.method,
        "link_confidence": c.link.confidence,
        "mds2": c.contract.mds2,
        "sbom": c.contract.sbom,
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

/// The detail of a service-scope flag: `tcp/104/offered`.
fn service_key(s: &ServiceView) -> String {
    format!("{}/{}/{}", s.transport, s.port, s.direction)
}

/// Whether a service's application protocol carries patient data (DICOM, HL7 today): asked of
/// the protocol ([`Protocol::carries_patient_data`]), so a new clinical protocol counts here
/// the day it is registered. A protocol ward could not see (TLS) carries nothing it knows of.
pub fn carries_patient_data(s: &ServiceView) -> bool {
    s.app
        .as_deref()
        .and_then(Protocol::from_name)
        .is_some_and(Protocol::carries_patient_data)
}

/// Whether a device counts as a medical device — expected in the asset register and under a
/// contract: it offers or uses, over any transport, a protocol that carries patient data
/// (a modality, a PACS, an EHR's interface, a DICOM printer — whatever its type), or its type
/// is not one of `cfg.non_medical_types` (no type = `unknown`).
pub fn is_medical(d: &DeviceView, cfg: &FlagConfig) -> bool {
    let speaks_clinical = d.services.iter().any(carries_patient_data);
    let t = d.current("device_type").unwrap_or("unknown");
    // A listed family covers its kinds: `network_infra` lists switches and DHCP servers too.
    let family = ward_protocols::schema::observation::device_type_family(t);
    speaks_clinical || !cfg.non_medical_types.iter().any(|n| n == t || n == family)
}

fn internal(cfg: &FlagConfig, ip: &IpAddr) -> bool {
    cfg.internal_networks.iter().any(|n| n.contains(ip))
}

/// A contract and the link that ties a device to it.
#[derive(Debug, Clone, Copy)]
pub struct Cover<'a> {
    /// The contract.
    pub contract: &'a Contract,
    /// How the device was tied to it.
    pub link: &'a Link,
}

/// One device as the device and service scopes see it.
#[derive(Debug, Clone)]
pub struct DeviceFacts<'a> {
    /// The device.
    pub device: &'a DeviceView,
    /// `device:<id>`.
    pub subject: String,
    /// Manufacturer and model, else its MAC, for summaries.
    pub name: String,
    /// [`is_medical`].
    pub medical: bool,
    /// Its asset link.
    pub asset: Option<&'a Link>,
    /// The contract in force that covers it.
    pub contract: Option<Cover<'a>>,
    /// When none does: the contract that ended and would cover it ([`link::lapsed`]).
    pub lapsed: Option<Cover<'a>>,
}

fn display_name(d: &DeviceView) -> String {
    match manufacturer_model(d) {
        (Some(m), Some(o)) => format!("{m} {o}"),
        (Some(m), None) => m.to_string(),
        (None, Some(o)) => o.to_string(),
        (None, None) => d
            .macs
            .first()
            .map(|m| m.to_string())
            .unwrap_or_else(|| format!("device {}", d.id)),
    }
}

fn cover<'a>(contracts: &HashMap<&str, &'a Contract>, link: &'a Link) -> Option<Cover<'a>> {
    contracts
        .get(link.target.as_str())
        .map(|c| Cover { contract: c, link })
}

/// Every condition that holds at `now_us`. `links` are [`link::link`]'s for the same date.
pub fn evaluate(
    inv: &Inventory,
    links: &[Link],
    cfg: &FlagConfig,
    now_us: i64,
) -> Vec<FlagInstance> {
    evaluate_with_notes(inv, links, cfg, now_us).0
}

/// [`evaluate`], with what it knows of why conditions stopped holding (a device seen on a
/// version an advisory no longer names: "patched at T, N days after the fix"), for the store
/// to keep with the flags that resolve.
pub fn evaluate_with_notes(
    inv: &Inventory,
    links: &[Link],
    cfg: &FlagConfig,
    now_us: i64,
) -> (Vec<FlagInstance>, Vec<ResolutionNote>) {
    let at = At::new(now_us);
    let mut pass = device_pass(inv, links, cfg, at);
    aggregate_flags(
        &inv.assets,
        &pass.asset_last_seen,
        &inv.contracts,
        &pass.contract_devices,
        cfg,
        at,
        &mut pass.flags,
    );
    (pass.flags, pass.notes)
}

/// What [`device_pass`] finds: the device scopes' conditions, and what the aggregate scopes
/// need from the devices it went through.
#[derive(Debug, Default)]
pub struct DevicePass {
    /// Device, service and advisory scope conditions.
    pub flags: Vec<FlagInstance>,
    /// Why conditions stopped holding ([`evaluate_with_notes`]).
    pub notes: Vec<ResolutionNote>,
    /// Asset tag → the latest last-seen time of a device linked to it.
    pub asset_last_seen: HashMap<String, i64>,
    /// Contract id → the devices it covers.
    pub contract_devices: BTreeMap<String, Covered>,
}

/// The device scopes over `inv.devices` (every device, or the part of the inventory an
/// evaluation looks at: each device's conditions depend on it, its links, the contracts and
/// the advisories alone). `links` are [`link::link`]'s for those devices.
pub fn device_pass(inv: &Inventory, links: &[Link], cfg: &FlagConfig, at: At) -> DevicePass {
    let contracts: HashMap<&str, &Contract> =
        inv.contracts.iter().map(|c| (c.id.as_str(), c)).collect();
    let lapsed_links = link::lapsed(inv, links, at.today);
    let mut by_device: HashMap<(i64, LinkKind), &Link> = HashMap::new();
    for l in links {
        by_device.insert((l.device_id, l.kind), l);
    }
    let lapsed: HashMap<i64, &Link> = lapsed_links.iter().map(|l| (l.device_id, l)).collect();

    let mut pass = DevicePass::default();
    let out = &mut pass.flags;
    let mut advisory_cache = advisory::Cache::default();
    let sbom_index = crate::compliance::sbom::SbomIndex::new(&inv.sboms, &inv.contracts);
    for d in &inv.devices {
        let facts = DeviceFacts {
            device: d,
            subject: Scope::Device.subject(d.id),
            name: display_name(d),
            medical: is_medical(d, cfg),
            asset: by_device.get(&(d.id, LinkKind::Asset)).copied(),
            contract: by_device
                .get(&(d.id, LinkKind::Contract))
                .and_then(|l| cover(&contracts, l)),
            lapsed: lapsed.get(&d.id).and_then(|l| cover(&contracts, l)),
        };
        if let Some(a) = facts.asset {
            let e = pass
                .asset_last_seen
                .entry(a.target.clone())
                .or_insert(i64::MIN);
            *e = (*e).max(d.last_us);
        }
        if let Some(c) = &facts.contract {
            pass.contract_devices
                .entry(c.contract.id.clone())
                .or_default()
                .add(1, [d.id]);
        }
        device::device_flags(&facts, cfg, at, out);
        for s in &d.services {
            service::service_flags(&facts, s, cfg, out);
        }
        service::contacted_remote_access(&facts, cfg, out);
        advisory::advisory_flags(
            &facts,
            &inv.advisories,
            &sbom_index,
            inv.kev.as_ref(),
            cfg,
            at,
            &mut advisory_cache,
            out,
            &mut pass.notes,
        );
        eox::eox_flags(&facts, &inv.eox, cfg, at, out);
    }
    pass
}

/// The aggregate scopes: each asset of `assets` given the latest last-seen time of a device
/// linked to it (`asset_last_seen`), each contract of `contracts` given the devices it covers.
pub fn aggregate_flags<'a>(
    assets: impl IntoIterator<Item = &'a Asset>,
    asset_last_seen: &HashMap<String, i64>,
    contracts: impl IntoIterator<Item = &'a Contract>,
    contract_devices: &BTreeMap<String, Covered>,
    cfg: &FlagConfig,
    at: At,
    out: &mut Vec<FlagInstance>,
) {
    for a in assets {
        let last = asset_last_seen.get(a.tag.as_str()).copied();
        asset::asset_flags(a, last, cfg, at, out);
    }
    let none = Covered::default();
    for c in contracts {
        let devs = contract_devices.get(c.id.as_str()).unwrap_or(&none);
        contract::contract_flags(c, devs, out);
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;

    fn all_cases() -> Vec<Case> {
        let mut v = device::cases();
        v.extend(service::cases());
        v.extend(contract::cases());
        v.extend(asset::cases());
        v.extend(advisory::tests::cases());
        v.extend(eox::tests::cases());
        v
    }

    /// Every kind has at least one case, and every case raises its kind (on the subject its
    /// scope names) and a changed world clears it.
    #[test]
    fn every_kind_is_raised_and_cleared() {
        let cases = all_cases();
        for k in FlagKind::ALL {
            assert!(
                cases.iter().any(|c| c.kind == *k),
                "{k} has no raise/clear case"
            );
        }
        for c in &cases {
            c.check();
        }
    }

    /// Each flag's severity is its kind's, and its subject and detail follow its scope.
    #[test]
    fn flags_follow_their_kind() {
        for c in all_cases() {
            for f in c.raised() {
                if f.kind.graded() {
                    // Never more urgent than the kind says it can be.
                    assert!(f.severity >= f.kind.severity(), "{}", c.name);
                } else {
                    assert_eq!(f.severity, f.kind.severity(), "{}", c.name);
                }
                let prefix = Scope::subject(f.kind.scope(), "");
                assert!(f.subject.starts_with(&prefix), "{}: {f:?}", c.name);
                if f.kind.scope() == Scope::Service {
                    assert_eq!(f.detail.split('/').count(), 3, "{}: {f:?}", c.name);
                }
            }
        }
    }

    /// `openapi.json` lists exactly the kinds and severities the code knows, wherever it
    /// enumerates them.
    #[test]
    fn openapi_enumerates_the_kinds() {
        let api: serde_json::Value =
            serde_json::from_str(include_str!("../../access/openapi.json")).unwrap();
        let mut kinds = 0;
        let mut severities = 0;
        let mut walk = vec![&api];
        while let Some(v) = walk.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    if let (Some(name), Some(e)) = (
                        m.get("name").and_then(|n| n.as_str()),
                        m.get("schema").and_then(|s| s.get("enum")),
                    ) {
                        let listed: Vec<&str> = e
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap())
                            .collect();
                        match name {
                            "kind" | "flag" => {
                                assert_eq!(listed, KINDS, "{name}");
                                kinds += 1;
                            }
                            "severity" => {
                                let want: Vec<&str> =
                                    Severity::ALL.iter().map(|s| s.as_str()).collect();
                                assert_eq!(listed, want);
                                severities += 1;
                            }
                            _ => {}
                        }
                    }
                    walk.extend(m.values());
                }
                serde_json::Value::Array(a) => walk.extend(a),
                _ => {}
            }
        }
        assert_eq!((kinds, severities), (2, 1));
    }

    /// Nothing to evaluate: no flag, no panic; a device with no links and a non-medical type
    /// raises nothing at all.
    #[test]
    fn a_non_medical_device_with_no_links_raises_nothing() {
        let w = World::new();
        assert!(w.flags().is_empty());
        let mut w = World::new();
        w.inv.devices.push(dev(1).typed("workstation"));
        assert!(w.flags().is_empty(), "{:?}", w.flags());
    }

    /// A medical device with no links: not covered, not in the register — and nothing that
    /// needs a contract's terms.
    #[test]
    fn a_medical_device_with_no_links_is_uncovered_and_unregistered() {
        let mut w = World::new();
        w.inv.devices.push(dev(1).typed("ct").service(
            Dir::Offered,
            Transport::Tcp,
            23,
            None,
            &["203.0.113.9"],
        ));
        assert_eq!(
            w.kinds(),
            [FlagKind::NoContract, FlagKind::NotInAssetRegister]
        );
    }
}
