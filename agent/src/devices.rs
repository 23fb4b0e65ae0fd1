//! The device table: what the agent knows about each device it has seen, keyed by MAC (+ VLAN),
//! or by IP address in captures that carry no link-layer addresses.
//!
//! Facts arrive from two places: every decoded frame (addresses, ARP, services seen from
//! SYN-ACKs and UDP responses) and the dissector's evidence (identity facts, attributed to the
//! device each field describes — see [`subject`]). Every fact keeps first/last seen and a count.
//! The table is hard-capped: beyond `max_devices` the least recently seen device is evicted and
//! counted, and every per-device list is capped too, so memory stays bounded under floods.
//! A device evicted with changes not yet taken keeps them: it waits, bounded, in a queue that
//! [`DeviceTable::take_changes`] empties first, so every change is published once.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Keyed by what the network sends: a randomly seeded, fast hasher (aHash) keeps lookups
/// constant-time under crafted input without SipHash's per-packet cost.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
use std::net::IpAddr;

use ward_protocols::frame::{Frame, Net, Transport};
use ward_protocols::roles::{self, Behaviour, RoleRecord, ServiceUse};
use ward_protocols::{registry, Attribute, Direction, Evidence, Field, MacAddr, Party, Protocol};

use crate::observation::{
    AddressRecord, ClassificationRecord, DeviceRecord, FactRecord, MacKind, Seen, ServiceRecord,
};
use crate::oui::{self, OuiRegistry};
use crate::rules::{RuleInput, RuleSet};

/// Limits of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTableConfig {
    /// Devices tracked at once.
    pub max_devices: usize,
    /// Distinct facts kept per device.
    pub max_facts: usize,
    /// Addresses kept per device.
    pub max_addresses: usize,
    /// Services kept per device and direction (offered / used).
    pub max_services: usize,
    /// Distinct peers counted per service.
    pub max_peers: usize,
}

impl Default for DeviceTableConfig {
    fn default() -> Self {
        DeviceTableConfig {
            max_devices: 100_000,
            max_facts: 256,
            max_addresses: 16,
            max_services: 64,
            max_peers: 64,
        }
    }
}

/// Key of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKey {
    /// A MAC address on a VLAN (innermost tag).
    Mac(MacAddr, Option<u16>),
    /// An IP address, for captures without MACs.
    Ip(IpAddr),
}

impl DeviceKey {
    fn render(&self) -> String {
        match self {
            DeviceKey::Mac(m, None) => format!("mac:{m}"),
            DeviceKey::Mac(m, Some(v)) => format!("mac:{m}@{v}"),
            DeviceKey::Ip(ip) => format!("ip:{ip}"),
        }
    }
}

/// Counters of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Devices currently tracked.
    pub devices: u64,
    /// Devices created.
    pub created: u64,
    /// Devices evicted because the table was full.
    pub evicted: u64,
    /// Evicted devices whose changes were lost because the queue of evicted changes
    /// ([`DeviceTable::pending_evicted`]) was full: changes were not taken in time.
    pub evicted_unpublished: u64,
    /// Facts, addresses, services or peers not recorded because a per-device cap was reached.
    pub capped: u64,
}

#[derive(Debug)]
struct Service {
    app: Option<Protocol>,
    peers: HashSet<IpAddr>,
    peer_overflow: u64,
    seen: Seen,
}

#[derive(Debug)]
struct Device {
    seen: Seen,
    oui_vendor: Option<&'static str>,
    addresses: Vec<AddressRecord>,
    /// Facts by field, then value: looked up by `&str`, so a repeated fact costs no allocation.
    facts: FastMap<Field, FastMap<String, Seen>>,
    fact_count: usize,
    offered: HashMap<(bool, u16), Service>,
    used: HashMap<(bool, u16), Service>,
    classification: Option<ClassificationRecord>,
    /// Behavioural roles, derived with the classification (when facts or services change).
    roles: Vec<RoleRecord>,
    facts_changed: bool,
    dirty: bool,
    tick: u64,
}

/// The table. See the module documentation.
#[derive(Debug)]
pub struct DeviceTable {
    cfg: DeviceTableConfig,
    devices: FastMap<DeviceKey, Device>,
    lru: BTreeMap<u64, DeviceKey>,
    tick: u64,
    /// Keys of changed devices, in the order they changed; may hold keys since evicted (and
    /// re-created), skipped when taken.
    dirty: Vec<DeviceKey>,
    /// Devices evicted with changes not yet taken, oldest first.
    evicted_changed: Vec<(DeviceKey, Device)>,
    stats: DeviceStats,
    oui: &'static OuiRegistry,
    /// Addresses learned by MAC-keyed devices, so a packet that carries only an IP (the
    /// receiver in a Linux cooked capture) finds the device instead of creating an IP-keyed one.
    by_ip: FastMap<IpAddr, DeviceKey>,
}

/// The device a field describes, given the direction of the message that carried it; `None`
/// when that cannot be told (the fact is then not attributed). Read from the field's
/// [`Describes`](ward_protocols::Describes) role in the allow-list: this table names no field.
pub fn subject(field: Field, dir: Direction) -> Option<Party> {
    field.describes().resolve(dir)
}

impl DeviceTable {
    /// An empty table.
    pub fn new(cfg: DeviceTableConfig) -> Self {
        DeviceTable {
            cfg,
            devices: FastMap::default(),
            lru: BTreeMap::new(),
            tick: 0,
            dirty: Vec::new(),
            evicted_changed: Vec::new(),
            stats: DeviceStats::default(),
            oui: OuiRegistry::bundled(),
            by_ip: FastMap::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        DeviceStats {
            devices: self.devices.len() as u64,
            ..self.stats
        }
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Evicted devices whose changes wait to be taken. The caller takes changes (or
    /// [`take_evicted`](Self::take_evicted)) when this reaches a message's worth; beyond
    /// [`evicted_queue_cap`](Self::evicted_queue_cap) further evicted changes are lost and
    /// counted in [`DeviceStats::evicted_unpublished`].
    pub fn pending_evicted(&self) -> usize {
        self.evicted_changed.len()
    }

    /// How many evicted devices' changes are kept at most: an eighth of the table, at least
    /// 4096.
    pub fn evicted_queue_cap(&self) -> usize {
        (self.cfg.max_devices / 8).max(4096)
    }

    fn key_for(
        &self,
        mac: Option<MacAddr>,
        vlan: Option<u16>,
        ip: Option<IpAddr>,
    ) -> Option<DeviceKey> {
        match (mac, ip) {
            (Some(m), _) if !oui::is_multicast(m) && m.0 != [0; 6] => Some(DeviceKey::Mac(m, vlan)),
            (Some(_), _) => None,
            (None, Some(ip)) if unicast_ip(ip) => match self.by_ip.get(&ip) {
                Some(k) if self.devices.contains_key(k) => Some(*k),
                _ => Some(DeviceKey::Ip(ip)),
            },
            (None, _) => None,
        }
    }

    /// Records that MAC-keyed `key` uses `ip`, folding any IP-keyed device for that address
    /// (created before the MAC was known) into it.
    fn learn_ip(&mut self, key: DeviceKey, ip: IpAddr) {
        if !matches!(key, DeviceKey::Mac(..)) || !unicast_ip(ip) {
            return;
        }
        if self.by_ip.get(&ip) != Some(&key)
            && self.by_ip.len() < self.cfg.max_devices.saturating_mul(self.cfg.max_addresses)
        {
            self.by_ip.insert(ip, key);
        }
        let Some(orphan) = self.devices.remove(&DeviceKey::Ip(ip)) else {
            return;
        };
        self.lru.remove(&orphan.tick);
        let cfg = self.cfg;
        if let Some(dev) = self.devices.get_mut(&key) {
            dev.seen.first_us = dev.seen.first_us.min(orphan.seen.first_us);
            dev.seen.last_us = dev.seen.last_us.max(orphan.seen.last_us);
            dev.seen.count += orphan.seen.count;
            for (f, values) in orphan.facts {
                for (v, seen) in values {
                    let known = dev.facts.get(&f).is_some_and(|m| m.contains_key(&v));
                    if known || dev.fact_count < cfg.max_facts {
                        let e = dev.facts.entry(f).or_default().entry(v).or_insert(seen);
                        if !known {
                            dev.fact_count += 1;
                        }
                        e.first_us = e.first_us.min(seen.first_us);
                        e.last_us = e.last_us.max(seen.last_us);
                    }
                }
            }
            for (svc, s) in orphan.offered {
                if dev.offered.len() < cfg.max_services {
                    dev.offered.entry(svc).or_insert(s);
                }
            }
            for (svc, s) in orphan.used {
                if dev.used.len() < cfg.max_services {
                    dev.used.entry(svc).or_insert(s);
                }
            }
            dev.facts_changed = true;
        }
    }

    /// The device for `key`, created if new (evicting the least recently seen when full), its
    /// recency refreshed and marked changed.
    fn touch(&mut self, key: DeviceKey, t: i64) -> &mut Device {
        // Keys of evicted devices linger in the changed list until taken; if changes are not
        // taken for a long while under a flood of new devices, rebuild the list from the
        // table so it stays bounded by the table's size (amortised: the rebuild halves it).
        if self.dirty.len() > self.cfg.max_devices.saturating_mul(2).max(4096) {
            self.dirty = self
                .devices
                .iter()
                .filter(|(_, d)| d.dirty)
                .map(|(k, _)| *k)
                .collect();
        }
        self.tick += 1;
        let tick = self.tick;
        if self.devices.len() >= self.cfg.max_devices && !self.devices.contains_key(&key) {
            if let Some((_, old)) = self.lru.pop_first() {
                if let Some(gone) = self.devices.remove(&old) {
                    self.stats.evicted += 1;
                    // Its changes are still owed to the output.
                    if gone.dirty {
                        if self.evicted_changed.len() < self.evicted_queue_cap() {
                            self.evicted_changed.push((old, gone));
                        } else {
                            self.stats.evicted_unpublished += 1;
                        }
                    }
                }
            }
        }
        let oui = self.oui;
        let stats = &mut self.stats;
        let dev = self.devices.entry(key).or_insert_with(|| {
            stats.created += 1;
            Device {
                seen: Seen {
                    first_us: t,
                    last_us: t,
                    count: 0,
                },
                oui_vendor: match key {
                    DeviceKey::Mac(m, _) => oui.lookup(m),
                    DeviceKey::Ip(_) => None,
                },
                addresses: Vec::new(),
                facts: FastMap::default(),
                fact_count: 0,
                offered: HashMap::new(),
                used: HashMap::new(),
                classification: None,
                roles: Vec::new(),
                facts_changed: true,
                dirty: false,
                tick,
            }
        });
        // Approximate LRU, as in the dissector's flow table: refresh the place only once the
        // device has fallen an eighth of the table behind.
        let behind = tick - dev.tick;
        if behind == 0 || behind >= (self.cfg.max_devices as u64 / 8).max(1) {
            self.lru.remove(&dev.tick);
            self.lru.insert(tick, key);
            dev.tick = tick;
        }
        dev.seen.again(t);
        if !dev.dirty {
            dev.dirty = true;
            self.dirty.push(key);
        }
        dev
    }

    /// Learns from one decoded frame: the sender's presence and address, ARP bindings, and
    /// services from TCP SYN-ACKs and UDP responses from well-known ports.
    pub fn observe_frame(&mut self, t: i64, frame: &Frame<'_>) {
        let vlan = frame.vlans.as_slice().last().copied();
        let cfg = self.cfg;
        let (src_ip, dst_ip) = match frame.net {
            Net::Ip { src, dst, .. } => (Some(src), Some(dst)),
            Net::Arp(arp) => {
                if let Some(key) = self.key_for(Some(arp.sender_mac), vlan, None) {
                    let ip = IpAddr::V4(arp.sender_ip);
                    if unicast_ip(ip) {
                        let capped = add_address(self.touch(key, t), &cfg, ip, "arp", t);
                        self.stats.capped += u64::from(capped);
                        self.learn_ip(key, ip);
                    }
                }
                return;
            }
            Net::None => (None, None),
        };
        let Some(src_key) = self.key_for(frame.src_mac, vlan, src_ip) else {
            return;
        };
        let mut learned = None;
        {
            let dev = self.touch(src_key, t);
            // Only MAC-keyed devices learn addresses from IP headers; an IP key is its address.
            if let (DeviceKey::Mac(..), Some(ip)) = (src_key, src_ip) {
                if unicast_ip(ip) && !dev.addresses.iter().any(|a| a.ip == ip) {
                    let capped = add_address(dev, &cfg, ip, "ip", t);
                    self.stats.capped += u64::from(capped);
                    learned = Some(ip);
                } else if let Some(a) = dev.addresses.iter_mut().find(|a| Some(a.ip) == src_ip) {
                    a.seen.again(t);
                }
            }
        }
        if let Some(ip) = learned {
            self.learn_ip(src_key, ip);
        }
        // (service, whether the receiver is recorded as using it).
        let service = match frame.transport {
            Transport::Tcp(s) if s.syn && s.ack => Some(((true, s.src_port), true)),
            Transport::Udp(u) if u.src_port < 1024 && u.dst_port >= 1024 => {
                Some(((false, u.src_port), true))
            }
            // DHCP servers answer from a privileged port to one (RFC 2131 §4.1: 67 → 68;
            // RFC 8415 §7.2: 547 → 546): a service the server offers (its behavioural role).
            // Every client uses DHCP, so that side is not recorded: it says nothing about the
            // client and no contract lists it.
            Transport::Udp(u) if matches!((u.src_port, u.dst_port), (67, 68) | (547, 546)) => {
                Some(((false, u.src_port), false))
            }
            _ => None,
        };
        if let Some((svc, client_too)) = service {
            let peer = dst_ip;
            let capped = record_service(self.touch(src_key, t), &cfg, true, svc, peer, None, t);
            self.stats.capped += u64::from(capped);
            let client = client_too
                .then(|| self.key_for(frame.dst_mac, vlan, dst_ip))
                .flatten();
            if let Some(dst_key) = client {
                let capped =
                    record_service(self.touch(dst_key, t), &cfg, false, svc, src_ip, None, t);
                self.stats.capped += u64::from(capped);
            }
        }
    }

    /// Attributes the evidence of one frame to the devices it describes.
    /// Drains `batch`: values move into the table rather than being copied.
    pub fn observe_evidence(&mut self, batch: &mut Vec<Evidence>) {
        let cfg = self.cfg;
        // The device a message names (a DHCP message's chaddr): what `Describes::Named` facts
        // describe.
        let named = batch
            .iter()
            .find(|e| e.field.attribute() == Attribute::SubjectMac)
            .and_then(|e| e.value.parse::<MacAddr>().ok());
        // The protocol the services of this frame were labelled with, if any.
        let mut labelled: Option<Protocol> = None;
        // Facts of one frame share its endpoints: resolve the device keys once per endpoints.
        let mut keys: Option<(
            ward_protocols::Endpoints,
            Option<DeviceKey>,
            Option<DeviceKey>,
        )> = None;
        for e in batch.drain(..) {
            let ends = &e.endpoints;
            let vlan = ends.vlans.last().copied();
            let (sender, receiver) = match &keys {
                Some((k, s, r)) if k == ends => (*s, *r),
                _ => {
                    let s = self.key_for(ends.src_mac, vlan, ends.src_ip);
                    let r = self.key_for(ends.dst_mac, vlan, ends.dst_ip);
                    keys = Some((ends.clone(), s, r));
                    (s, r)
                }
            };
            // The first fact of a TCP application tells which side serves that protocol; a
            // patient-data protocol carried inside another (FHIR or DPWS inside HTTP) labels it
            // again, and wins (see record_service).
            let relabel = match labelled {
                None => true,
                Some(p) => p != e.protocol && upgrades(p, e.protocol),
            };
            // Datagram protocols that carry patient data (IntelliVue Data Export over UDP)
            // label their service too: it is as much a cleartext-PHI service as a TCP one,
            // and its client is what collects device data.
            let tcp = registry::is_stream(e.protocol);
            if relabel && (tcp || e.protocol.carries_patient_data()) {
                labelled = Some(e.protocol);
                self.label_service(&e, sender, receiver, tcp);
            }
            let key = match subject(e.field, e.direction) {
                Some(Party::Sender) => sender,
                Some(Party::Receiver) => receiver,
                Some(Party::Named) => named
                    .and_then(|m| self.key_for(Some(m), vlan, None))
                    .or(sender),
                None => None,
            };
            let Some(key) = key else { continue };
            let t = e.time_us;
            let dev = self.touch(key, t);
            let mut learned = None;
            let capped = if e.field.attribute() == Attribute::AssignedAddress {
                match e.value.parse::<IpAddr>() {
                    Ok(ip) => {
                        learned = Some(ip);
                        add_address(dev, &cfg, ip, e.protocol.name(), t)
                    }
                    Err(_) => false,
                }
            } else {
                add_fact(dev, &cfg, e.field, e.value, t)
            };
            self.stats.capped += u64::from(capped);
            if let Some(ip) = learned {
                self.learn_ip(key, ip);
            }
        }
    }

    fn label_service(
        &mut self,
        e: &Evidence,
        sender: Option<DeviceKey>,
        receiver: Option<DeviceKey>,
        tcp: bool,
    ) {
        let ends = &e.endpoints;
        let (server, client, port, server_ip, client_ip) = match e.direction {
            Direction::FromClient => (receiver, sender, ends.dst_port, ends.dst_ip, ends.src_ip),
            Direction::FromServer => (sender, receiver, ends.src_port, ends.src_ip, ends.dst_ip),
            Direction::Unknown => return,
        };
        let Some(port) = port else { return };
        let cfg = self.cfg;
        let t = e.time_us;
        if let Some(k) = server {
            let c = record_service(
                self.touch(k, t),
                &cfg,
                true,
                (tcp, port),
                client_ip,
                Some(e.protocol),
                t,
            );
            self.stats.capped += u64::from(c);
        }
        if let Some(k) = client {
            let c = record_service(
                self.touch(k, t),
                &cfg,
                false,
                (tcp, port),
                server_ip,
                Some(e.protocol),
                t,
            );
            self.stats.capped += u64::from(c);
        }
    }

    /// Up to `limit` devices changed since they were last taken, classified with `rules`, as
    /// records — first the evicted ones (their last state), then those in the table; clears
    /// their changed marks. Returns nothing only when no change is left, so callers loop until
    /// it is empty: taking changes in bounded chunks keeps a flood of new devices from
    /// building one huge batch in memory.
    pub fn take_changes(&mut self, rules: &RuleSet, limit: usize) -> Vec<DeviceRecord> {
        let limit = limit.max(1);
        let mut out = self.take_evicted(rules, limit);
        let mut taken = 0;
        for key in &self.dirty {
            if out.len() >= limit {
                break;
            }
            taken += 1;
            // Keys of devices evicted since (or taken already, then re-created) are skipped.
            if let Some(dev) = self.devices.get_mut(key) {
                if dev.dirty {
                    dev.dirty = false;
                    out.push(record(*key, dev, rules));
                }
            }
        }
        self.dirty.drain(..taken);
        if self.dirty.is_empty() && self.dirty.capacity() > 4096 {
            self.dirty = Vec::new();
        }
        out
    }

    /// Up to `limit` evicted devices' last states (changes not yet taken when they were
    /// evicted), oldest first.
    pub fn take_evicted(&mut self, rules: &RuleSet, limit: usize) -> Vec<DeviceRecord> {
        let n = self.evicted_changed.len().min(limit.max(1));
        let out = self
            .evicted_changed
            .drain(..n)
            .map(|(key, mut dev)| record(key, &mut dev, rules))
            .collect();
        if self.evicted_changed.is_empty() && self.evicted_changed.capacity() > 4096 {
            self.evicted_changed = Vec::new();
        }
        out
    }

    /// Clears the changed marks of the devices in the table (a full snapshot is about to
    /// carry them); evicted devices' changes are kept for [`take_evicted`](Self::take_evicted).
    pub fn clear_changes(&mut self) {
        for key in self.dirty.drain(..) {
            if let Some(dev) = self.devices.get_mut(&key) {
                dev.dirty = false;
            }
        }
        if self.dirty.capacity() > 4096 {
            self.dirty = Vec::new();
        }
    }

    /// Every device, classified, handed to `each` in chunks of at most `chunk` records, in key
    /// order (a full snapshot). Does not clear changed marks.
    pub fn snapshot(
        &mut self,
        rules: &RuleSet,
        chunk: usize,
        mut each: impl FnMut(Vec<DeviceRecord>),
    ) {
        let mut keys: Vec<DeviceKey> = self.devices.keys().copied().collect();
        keys.sort();
        for part in keys.chunks(chunk.max(1)) {
            let records: Vec<DeviceRecord> = part
                .iter()
                .filter_map(|k| self.devices.get_mut(k).map(|d| record(*k, d, rules)))
                .collect();
            each(records);
        }
    }

    /// Rough heap bytes held, for statistics (walks the table; not for per-packet use).
    pub fn memory(&self) -> usize {
        let per_dev = std::mem::size_of::<Device>() + std::mem::size_of::<DeviceKey>() * 2 + 32;
        self.devices
            .values()
            .map(|d| {
                per_dev
                    + d.addresses.capacity() * std::mem::size_of::<AddressRecord>()
                    + d.facts
                        .values()
                        .flat_map(|m| m.keys())
                        .map(|v| v.capacity() + 64)
                        .sum::<usize>()
                    + (d.offered.len() + d.used.len()) * 96
                    + d.offered
                        .values()
                        .chain(d.used.values())
                        .map(|s| s.peers.capacity() * 24)
                        .sum::<usize>()
            })
            .sum()
    }
}

fn unicast_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Returns true when the per-device cap stopped the address being recorded.
fn add_address(
    dev: &mut Device,
    cfg: &DeviceTableConfig,
    ip: IpAddr,
    source: &str,
    t: i64,
) -> bool {
    if let Some(a) = dev
        .addresses
        .iter_mut()
        .find(|a| a.ip == ip && a.source == source)
    {
        a.seen.again(t);
        return false;
    }
    if dev.addresses.len() >= cfg.max_addresses {
        // A router's MAC carries every remote address: keep the most recent ones.
        if let Some(oldest) = dev
            .addresses
            .iter()
            .enumerate()
            .min_by_key(|(_, a)| a.seen.last_us)
            .map(|(i, _)| i)
        {
            dev.addresses.swap_remove(oldest);
        }
        dev.addresses.push(AddressRecord {
            ip,
            source: source.to_owned(),
            seen: Seen::once(t),
        });
        dev.facts_changed = true;
        return true;
    }
    dev.addresses.push(AddressRecord {
        ip,
        source: source.to_owned(),
        seen: Seen::once(t),
    });
    dev.facts_changed = true;
    false
}

fn add_fact(
    dev: &mut Device,
    cfg: &DeviceTableConfig,
    field: Field,
    value: String,
    t: i64,
) -> bool {
    if let Some(seen) = dev
        .facts
        .get_mut(&field)
        .and_then(|m| m.get_mut(value.as_str()))
    {
        seen.again(t);
        return false;
    }
    if dev.fact_count >= cfg.max_facts {
        return true;
    }
    dev.facts
        .entry(field)
        .or_default()
        .insert(value, Seen::once(t));
    dev.fact_count += 1;
    dev.facts_changed = true;
    false
}

#[allow(clippy::too_many_arguments)]
/// Whether a service labelled `current` is better described as `seen`: a protocol that carries
/// patient data (FHIR, SDC) found inside one that does not (HTTP) — so a cleartext FHIR server
/// is judged as FHIR, not as a web server. Never the other way round.
fn upgrades(current: Protocol, seen: Protocol) -> bool {
    seen.carries_patient_data() && !current.carries_patient_data()
}

fn record_service(
    dev: &mut Device,
    cfg: &DeviceTableConfig,
    offered: bool,
    svc: (bool, u16),
    peer: Option<IpAddr>,
    app: Option<Protocol>,
    t: i64,
) -> bool {
    let map = if offered {
        &mut dev.offered
    } else {
        &mut dev.used
    };
    let mut capped = false;
    if !map.contains_key(&svc) {
        if map.len() >= cfg.max_services {
            return true;
        }
        map.insert(
            svc,
            Service {
                app: None,
                peers: HashSet::new(),
                peer_overflow: 0,
                seen: Seen {
                    first_us: t,
                    last_us: t,
                    count: 0,
                },
            },
        );
        dev.facts_changed = true;
    }
    if let Some(s) = map.get_mut(&svc) {
        if app.is_some() && (s.app.is_none() || s.app.zip(app).is_some_and(|(a, b)| upgrades(a, b)))
        {
            s.app = app;
            dev.facts_changed = true;
        } else {
            s.seen.again(t);
        }
        if let Some(p) = peer {
            if !s.peers.contains(&p) {
                if s.peers.len() < cfg.max_peers {
                    s.peers.insert(p);
                } else {
                    s.peer_overflow += 1;
                    capped = true;
                }
            }
        }
    }
    capped
}

fn services(map: &HashMap<(bool, u16), Service>) -> Vec<ServiceRecord> {
    let mut v: Vec<ServiceRecord> = map
        .iter()
        .map(|(&(tcp, port), s)| ServiceRecord {
            transport: if tcp { "tcp" } else { "udp" }.to_owned(),
            port,
            app: s.app,
            peers: s.peers.len() as u64 + s.peer_overflow,
            peer_addresses: {
                let mut p: Vec<IpAddr> = s.peers.iter().copied().collect();
                p.sort_unstable();
                p
            },
            seen: s.seen,
        })
        .collect();
    v.sort_by(|a, b| (&a.transport, a.port).cmp(&(&b.transport, b.port)));
    v
}

fn record(key: DeviceKey, dev: &mut Device, rules: &RuleSet) -> DeviceRecord {
    let mac = match key {
        DeviceKey::Mac(m, _) => Some(m),
        DeviceKey::Ip(_) => None,
    };
    if dev.facts_changed || dev.classification.is_none() {
        // Latest first: of a field's values the one seen last leads, so a device that moved
        // to another software version during the run is classified with the version it runs
        // now (the patch clock's input). Values seen together (a DICOM Software Versions with
        // several values, in one message) keep their first-seen order, so the primary one
        // still leads.
        let mut ordered: Vec<(core::cmp::Reverse<i64>, i64, Field, &str)> = dev
            .facts
            .iter()
            .flat_map(|(f, m)| {
                m.iter()
                    .map(|(v, s)| (core::cmp::Reverse(s.last_us), s.first_us, *f, v.as_str()))
            })
            .collect();
        ordered.sort();
        let facts: Vec<(Field, &str)> = ordered.into_iter().map(|(_, _, f, v)| (f, v)).collect();
        let uses = |map: &HashMap<(bool, u16), Service>| -> Vec<ServiceUse> {
            map.iter()
                .map(|(&(tcp, port), s)| ServiceUse {
                    tcp,
                    port,
                    app: s.app,
                    peers: s.peers.len() as u64 + s.peer_overflow,
                })
                .collect()
        };
        let (offered, used) = (uses(&dev.offered), uses(&dev.used));
        dev.roles = roles::derive(&Behaviour {
            facts: &facts,
            offered: &offered,
            used: &used,
            // Addresses from IP headers only: a DHCP-assigned or ARP address is the device's own.
            source_addresses: dev.addresses.iter().filter(|a| a.source == "ip").count(),
        });
        let role_names: Vec<&str> = dev.roles.iter().map(|r| r.role.as_str()).collect();
        let input = RuleInput {
            mac: mac.unwrap_or_default(),
            oui_vendor: dev.oui_vendor,
            facts: &facts,
            roles: &role_names,
        };
        dev.classification = Some(rules.classify(&input));
        dev.facts_changed = false;
    }
    let mut facts: Vec<FactRecord> = dev
        .facts
        .iter()
        .flat_map(|(f, m)| {
            m.iter().map(|(v, s)| FactRecord {
                field: *f,
                protocol: f.protocol(),
                value: v.clone(),
                seen: *s,
            })
        })
        .collect();
    facts.sort_by(|a, b| (a.field, &a.value).cmp(&(b.field, &b.value)));
    let mut addresses = dev.addresses.clone();
    addresses.sort_by(|a, b| (a.ip, &a.source).cmp(&(b.ip, &b.source)));
    DeviceRecord {
        key: key.render(),
        mac,
        vlan: match key {
            DeviceKey::Mac(_, v) => v,
            DeviceKey::Ip(_) => None,
        },
        mac_kind: mac.map(|m| {
            if oui::is_locally_administered(m) {
                MacKind::Local
            } else {
                MacKind::Universal
            }
        }),
        oui_vendor: dev.oui_vendor.map(str::to_owned),
        seen: dev.seen,
        addresses,
        facts,
        services_offered: services(&dev.offered),
        services_used: services(&dev.used),
        roles: dev.roles.clone(),
        classification: dev.classification.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_protocols::frame::{self, LinkType};

    fn arp(i: u32) -> Vec<u8> {
        let b = i.to_be_bytes();
        let mac = [0x02, 0x42, b[0], b[1], b[2], b[3]];
        let ip = [10, 9, b[2], b[3]];
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&ip);
        f
    }

    fn see(table: &mut DeviceTable, i: u32) {
        let bytes = arp(i);
        let f = frame::decode(LinkType::Ethernet, &bytes).unwrap();
        table.observe_frame(i64::from(i), &f);
    }

    fn table(max_devices: usize) -> DeviceTable {
        DeviceTable::new(DeviceTableConfig {
            max_devices,
            ..DeviceTableConfig::default()
        })
    }

    fn take_all(t: &mut DeviceTable, rules: &RuleSet, chunk: usize) -> Vec<String> {
        let mut keys = Vec::new();
        loop {
            let c = t.take_changes(rules, chunk);
            if c.is_empty() {
                return keys;
            }
            assert!(c.len() <= chunk);
            keys.extend(c.into_iter().map(|r| r.key));
        }
    }

    /// The attribution table this module held before the roles moved into the allow-list
    /// (issue 14), as it was: the roles must attribute every field the same way, except that
    /// DHCP facts now carry the message's direction (BOOTREQUEST = from the client) instead of
    /// the server's source port 67 deciding which of them to drop.
    fn legacy_subject(field: Field, dir: Direction, from_port_67: bool) -> Option<Party> {
        use Field::*;
        Some(match field {
            DicomCalledAe => match dir {
                Direction::FromClient => Party::Receiver,
                Direction::FromServer => Party::Sender,
                Direction::Unknown => return None,
            },
            DicomCallingAe => match dir {
                Direction::FromClient => Party::Sender,
                Direction::FromServer => Party::Receiver,
                Direction::Unknown => return None,
            },
            DicomModality
            | DicomManufacturer
            | DicomStationName
            | DicomModelName
            | DicomDeviceSerialNumber
            | DicomSoftwareVersions => match dir {
                Direction::FromClient => Party::Sender,
                _ => return None,
            },
            Hl7ReceivingApplication | Hl7ReceivingFacility => Party::Receiver,
            DhcpOptionOrder | DhcpMessageType if from_port_67 => return None,
            DhcpMessageType
            | DhcpClientMac
            | DhcpHostname
            | DhcpRequestedIp
            | DhcpParameterRequestList
            | DhcpVendorClass
            | DhcpClientId
            | DhcpFqdn
            | DhcpYourIp
            | DhcpOptionOrder
            // Added with issue 17 (options 77 and 43): client options, like 60 and 61.
            | DhcpUserClass
            | DhcpVendorOptionCodes
            | DhcpVendorOption => Party::Named,
            _ => Party::Sender,
        })
    }

    #[test]
    fn roles_attribute_every_field_as_the_old_table_did() {
        let then = [Protocol::Dicom, Protocol::Hl7, Protocol::Dhcp];
        for &f in Field::ALL.iter().filter(|f| then.contains(&f.protocol())) {
            if f.protocol() == Protocol::Dhcp {
                // Old: every DHCP fact had direction Unknown; a server's (source port 67)
                // message type and option order were dropped. New: BOOTREPLY = FromServer.
                assert_eq!(
                    subject(f, Direction::FromClient),
                    legacy_subject(f, Direction::Unknown, false),
                    "{f}"
                );
                assert_eq!(
                    subject(f, Direction::FromServer),
                    legacy_subject(f, Direction::Unknown, true),
                    "{f}"
                );
                continue;
            }
            for dir in [
                Direction::FromClient,
                Direction::FromServer,
                Direction::Unknown,
            ] {
                assert_eq!(
                    subject(f, dir),
                    legacy_subject(f, dir, false),
                    "{f} {dir:?}"
                );
            }
        }
    }

    /// A device that moves to another software version during one run is classified with the
    /// version it runs now; values seen in one message keep their first-seen order.
    #[test]
    fn the_latest_software_version_leads() {
        let rules = RuleSet::bundled().unwrap();
        let mut t = table(10);
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let ends = ward_protocols::Endpoints {
            src_mac: Some(mac),
            dst_mac: Some("02:00:00:00:00:08".parse().unwrap()),
            src_ip: Some("192.0.2.7".parse().unwrap()),
            dst_ip: Some("192.0.2.8".parse().unwrap()),
            src_port: Some(40000),
            dst_port: Some(2575),
            ..Default::default()
        };
        let ev = |t: i64, v: &str| {
            Evidence::new(
                ward_protocols::Fact::new(Field::Hl7DeviceSoftwareVersion, v.to_owned()),
                t,
                Direction::FromClient,
                ends.clone(),
            )
        };
        let version = |t: &mut DeviceTable| {
            let recs = t.take_changes(&rules, 10);
            let rec = recs.iter().find(|r| r.key.contains("00:07")).unwrap();
            rec.classification
                .as_ref()
                .unwrap()
                .software_version
                .clone()
        };
        t.observe_evidence(&mut vec![ev(1_000, "4.1.0"), ev(1_000, "4.1.0-b2")]);
        assert_eq!(version(&mut t).as_deref(), Some("4.1.0"));
        // Patched: 4.2.0 from now on, 4.1.0 never again.
        t.observe_evidence(&mut vec![ev(2_000, "4.2.0")]);
        assert_eq!(version(&mut t).as_deref(), Some("4.2.0"));
        // A value seen again is not a change (it would republish the device on every
        // message): a rollback to 4.1.0 shows once another fact of the device changes.
    }

    /// The first chunk of changes used to be all evicted devices, came back empty, and the
    /// caller (which stops at an empty chunk) published nothing at all.
    #[test]
    fn evicted_devices_changes_are_taken_and_taking_stops_only_when_none_is_left() {
        let rules = RuleSet::bundled().unwrap();
        let mut t = table(100);
        for i in 0..350 {
            see(&mut t, i);
        }
        assert_eq!(t.stats().evicted, 250);
        let keys = take_all(&mut t, &rules, 30);
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(keys.len(), 350, "each changed device exactly once");
        assert_eq!(distinct.len(), 350);
        assert_eq!(t.pending_evicted(), 0);
        assert!(t.take_changes(&rules, 30).is_empty());
    }

    #[test]
    fn a_device_evicted_and_seen_again_is_taken_once_per_change() {
        let rules = RuleSet::bundled().unwrap();
        let mut t = table(10);
        for i in 0..10 {
            see(&mut t, i);
        }
        assert_eq!(take_all(&mut t, &rules, 4).len(), 10);
        // Device 0 changes, is evicted, comes back and changes again.
        see(&mut t, 0);
        for i in 10..25 {
            see(&mut t, i);
        }
        see(&mut t, 0);
        let keys = take_all(&mut t, &rules, 7);
        let zero = keys.iter().filter(|k| k.ends_with("00:00:00:00")).count();
        // Its last state before eviction, and its state since.
        assert_eq!(zero, 2, "{keys:?}");
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 16, "{keys:?}");
    }

    #[test]
    fn snapshot_clearing_keeps_evicted_changes() {
        let rules = RuleSet::bundled().unwrap();
        let mut t = table(10);
        for i in 0..15 {
            see(&mut t, i);
        }
        t.clear_changes();
        assert_eq!(t.pending_evicted(), 5);
        let evicted = t.take_evicted(&rules, 100);
        assert_eq!(evicted.len(), 5);
        assert!(t.take_changes(&rules, 100).is_empty());
    }

    #[test]
    fn evicted_queue_and_changed_list_are_bounded_and_losses_counted() {
        let rules = RuleSet::bundled().unwrap();
        let mut t = table(16);
        let cap = t.evicted_queue_cap();
        let n = (cap + 16 + 100) as u32;
        for i in 0..n {
            see(&mut t, i);
        }
        let s = t.stats();
        assert_eq!(s.evicted, u64::from(n) - 16);
        assert_eq!(t.pending_evicted(), cap);
        assert_eq!(s.evicted_unpublished, 100);
        assert!(t.dirty.len() <= 2 * 4096 + 1, "{}", t.dirty.len());
        assert_eq!(take_all(&mut t, &rules, 500).len(), cap + 16);
    }
}
