//! Plain inventory values for the flag tests: devices, contracts and assets built in memory,
//! linked and evaluated as `ingest::evaluate` does, without a database.

use chrono::{Days, NaiveDate};
use ward_protocols::{MacAddr, Protocol};

pub(crate) use crate::import::model::Transport;
pub(crate) use crate::store::ServiceDirection as Dir;

use super::{evaluate, FlagConfig, FlagKind};
use crate::compliance::link;
use crate::import::model::{Asset, Contract, NoticeMonths, PatchSla, ProductPattern, RemoteAccess};
use crate::store::{AttributeValue, DeviceView, FlagInstance, Inventory, ServiceView, Sighting};

pub(crate) use super::DAY_US;
pub(crate) const HOUR_US: i64 = DAY_US / 24;

/// The evaluation date of every test world: 2026-06-15, at noon UTC.
pub(crate) fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default()
}

/// Noon UTC of `today()`, µs.
pub(crate) fn now_us() -> i64 {
    today()
        .and_hms_opt(12, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or_default()
}

/// `today()` moved by `n` days (negative: earlier).
pub(crate) fn days(n: i64) -> NaiveDate {
    let d = Days::new(n.unsigned_abs());
    if n < 0 {
        today() - d
    } else {
        today() + d
    }
}

/// A device seen from ten days ago until an hour ago at site `main`, with one MAC
/// (`02:00:00:00:00:<id>`) and nothing else.
pub(crate) fn dev(id: u8) -> DeviceView {
    let mac: MacAddr = format!("02:00:00:00:00:{id:02x}").parse().unwrap();
    let (first_us, last_us) = (now_us() - 10 * DAY_US, now_us() - HOUR_US);
    DeviceView {
        id: i64::from(id),
        first_us,
        last_us,
        macs: vec![mac],
        sightings: vec![Sighting {
            site: "main".into(),
            agent_id: "a1".into(),
            key: mac.to_string(),
            vlan: None,
            first_us,
            last_us,
        }],
        identities: [("mac".to_string(), vec![mac.to_string()])].into(),
        ..DeviceView::default()
    }
}

/// Builder steps on a test device.
pub(crate) trait DeviceExt: Sized {
    /// An attribute value seen over the device's whole life.
    fn attr(self, name: &str, value: &str) -> Self;
    /// An attribute value seen from `first_us` to `last_us`.
    fn attr_at(self, name: &str, value: &str, first_us: i64, last_us: i64) -> Self;
    /// Its classified type.
    fn typed(self, t: &str) -> Self {
        self.attr("device_type", t)
    }
    /// Its classified manufacturer and model.
    fn made(self, manufacturer: &str, model: &str) -> Self {
        self.attr("manufacturer", manufacturer).attr("model", model)
    }
    /// An identity (`serial`, `udi`, `ip`, `hostname`…).
    fn id(self, kind: &str, value: &str) -> Self;
    /// A service with these peer addresses (and as many peers reported).
    fn service(
        self,
        dir: Dir,
        t: Transport,
        port: u16,
        app: Option<Protocol>,
        peers: &[&str],
    ) -> Self;
    /// Also seen at `site` on `vlan`.
    fn seen_at(self, site: &str, vlan: Option<u16>) -> Self;
}

impl DeviceExt for DeviceView {
    fn attr(self, name: &str, value: &str) -> Self {
        let (f, l) = (self.first_us, self.last_us);
        self.attr_at(name, value, f, l)
    }

    fn attr_at(mut self, name: &str, value: &str, first_us: i64, last_us: i64) -> Self {
        let h = self.attributes.entry(name.to_string()).or_default();
        h.push(AttributeValue {
            value: value.to_string(),
            first_us,
            last_us,
            agent_id: "a1".into(),
        });
        h.sort_by_key(|v| v.first_us);
        self
    }

    fn id(mut self, kind: &str, value: &str) -> Self {
        self.identities
            .entry(kind.to_string())
            .or_default()
            .push(value.to_string());
        self
    }

    fn service(
        mut self,
        dir: Dir,
        t: Transport,
        port: u16,
        app: Option<Protocol>,
        peers: &[&str],
    ) -> Self {
        self.services.push(ServiceView {
            direction: dir,
            transport: t,
            port,
            app: app.map(|p| p.name().to_string()),
            peers: peers.len() as u64,
            peer_addresses: peers.iter().map(|p| p.parse().unwrap()).collect(),
            first_us: self.first_us,
            last_us: self.last_us,
        });
        self
    }

    fn seen_at(mut self, site: &str, vlan: Option<u16>) -> Self {
        let mut s = self.sightings[0].clone();
        s.site = site.to_string();
        s.vlan = vlan;
        s.agent_id = format!("a-{site}");
        self.sightings.push(s);
        self
    }
}

/// A contract with supplier `ACME` covering nothing and stating nothing; tests set the fields
/// they need with struct-update syntax.
pub(crate) fn contract(id: &str) -> Contract {
    Contract {
        id: id.to_string(),
        supplier: "ACME".into(),
        products: Vec::new(),
        serials: Vec::new(),
        asset_tags: Vec::new(),
        quantity: None,
        sites: Vec::new(),
        vlans: Vec::new(),
        start: None,
        end: None,
        end_of_support: None,
        end_of_guaranteed_support: None,
        end_of_life: None,
        notice_months: NoticeMonths::default(),
        supported_software_versions: Vec::new(),
        patch_sla_days: PatchSla::default(),
        permitted_services: Vec::new(),
        remote_access: RemoteAccess::default(),
        encryption_in_transit_required: false,
        external_communication_permitted: false,
        mds2: None,
        sbom: None,
        notes: None,
    }
}

/// A model pattern of the supplier's.
pub(crate) fn product(model: &str) -> ProductPattern {
    ProductPattern {
        manufacturer: None,
        model: model.to_string(),
    }
}

/// An asset-register row with only a tag.
pub(crate) fn asset(tag: &str) -> Asset {
    Asset {
        tag: tag.to_string(),
        manufacturer: None,
        model: None,
        serial: None,
        mac: None,
        ip: None,
        hostname: None,
        location: None,
        department: None,
        contract_id: None,
        risk_class: None,
    }
}

/// An inventory, a configuration and an evaluation time.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub inv: Inventory,
    pub cfg: FlagConfig,
    pub now_us: i64,
}

impl World {
    /// Nothing, evaluated at noon of `today()` with the default configuration.
    pub fn new() -> Self {
        World {
            inv: Inventory::default(),
            cfg: FlagConfig::default(),
            now_us: now_us(),
        }
    }

    /// Device 1, an `ACME Scan 1` CT seen until an hour ago, in the register as `A-1` (by MAC)
    /// and covered by contract `C-1` (by model) that states no terms: no flag holds.
    pub fn covered() -> Self {
        let mut w = World::new();
        let d = dev(1).typed("ct").made("ACME", "Scan 1");
        w.inv.assets.push(Asset {
            mac: d.macs.first().copied(),
            ..asset("A-1")
        });
        w.inv.devices.push(d);
        w.inv.contracts.push(Contract {
            products: vec![product("Scan *")],
            ..contract("C-1")
        });
        w
    }

    /// [`World::covered`] changed by `f`.
    pub fn covered_with(f: impl FnOnce(&mut World)) -> Self {
        let mut w = World::covered();
        f(&mut w);
        w
    }

    /// The first contract.
    pub fn c(&mut self) -> &mut Contract {
        &mut self.inv.contracts[0]
    }

    /// The first device.
    pub fn d(&mut self) -> &mut DeviceView {
        &mut self.inv.devices[0]
    }

    /// Links and flags, as `ingest::evaluate` computes them.
    pub fn flags(&self) -> Vec<FlagInstance> {
        let links = link::link(&self.inv, super::date_of(self.now_us));
        evaluate(&self.inv, &links, &self.cfg, self.now_us)
    }

    /// The kinds that hold, each once, in [`FlagKind::ALL`] order.
    pub fn kinds(&self) -> Vec<FlagKind> {
        let mut k: Vec<FlagKind> = self.flags().iter().map(|f| f.kind).collect();
        k.sort();
        k.dedup();
        k
    }

    /// The flags of one kind.
    pub fn of(&self, kind: FlagKind) -> Vec<FlagInstance> {
        self.flags()
            .into_iter()
            .filter(|f| f.kind == kind)
            .collect()
    }
}

/// One kind raised in one world and cleared in another.
#[derive(Debug)]
pub(crate) struct Case {
    /// What the case shows.
    pub name: &'static str,
    /// The kind.
    pub kind: FlagKind,
    /// A world where it holds.
    pub raise: World,
    /// A world where it does not.
    pub clear: World,
}

impl Case {
    pub fn new(name: &'static str, kind: FlagKind, raise: World, clear: World) -> Self {
        Case {
            name,
            kind,
            raise,
            clear,
        }
    }

    /// The flags of the case's kind in its raising world.
    pub fn raised(&self) -> Vec<FlagInstance> {
        self.raise.of(self.kind)
    }

    /// Raised in `raise`, not in `clear`.
    pub fn check(&self) {
        assert!(
            !self.raised().is_empty(),
            "{}: {} not raised; flags: {:#?}",
            self.name,
            self.kind,
            self.raise.flags()
        );
        let cleared = self.clear.of(self.kind);
        assert!(
            cleared.is_empty(),
            "{}: {} not cleared: {cleared:#?}",
            self.name,
            self.kind
        );
    }
}

/// The covered world raises nothing (so every case's raise is its own doing).
#[test]
fn the_covered_world_is_clean() {
    assert_eq!(World::covered().flags(), Vec::new());
}
