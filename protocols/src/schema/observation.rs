//! The observation message schema, version 1: what an agent publishes on
//! `ward/v1/<site>/<agent-id>/devices` (and writes as JSON lines with `--output jsonl:`).
//! Documented for consumers in `docs/schema/observation-v1.md`.
//!
//! Every value here is derived from allow-listed [`ward_protocols::Field`]s, addresses, ports and
//! counts; nothing carries payload bytes.

use crate::{Field, MacAddr, Protocol};
use serde::{Deserialize, Serialize};

/// Schema identifier carried in every message.
pub const SCHEMA: &str = "ward.observation.v1";

/// One message: a batch of device records from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Site name (`--site`).
    pub site: String,
    /// Agent id (`--agent-id`, default the host name).
    pub agent_id: String,
    /// Agent instance: changes on every agent start, so `(agent_id, instance, seq)` is unique
    /// across restarts even if the spool was lost.
    pub instance: String,
    /// Message sequence number within the instance, from 1, gap-free in what the agent sends.
    pub seq: u64,
    /// `delta`: only devices that changed since the previous message; `snapshot`: every device.
    pub kind: Kind,
    /// Capture time the batch was cut at, microseconds since the Unix epoch.
    pub time_us: i64,
    /// The devices.
    pub devices: Vec<DeviceRecord>,
}

/// Delta or full snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Changed devices only.
    Delta,
    /// Every device in the table.
    Snapshot,
}

/// Whether a MAC is globally unique or locally administered (often randomised by the OS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MacKind {
    /// IEEE-assigned (the OUI names the maker of the interface).
    Universal,
    /// Locally administered: randomised or assigned by software; the OUI means nothing.
    Local,
}

/// First/last seen and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// First time, µs since the epoch.
    pub first_us: i64,
    /// Last time, µs since the epoch.
    pub last_us: i64,
    /// Number of times seen.
    pub count: u64,
}

impl Seen {
    /// Seen once at `t`.
    pub fn once(t: i64) -> Self {
        Seen {
            first_us: t,
            last_us: t,
            count: 1,
        }
    }

    /// Seen again at `t`.
    pub fn again(&mut self, t: i64) {
        self.first_us = self.first_us.min(t);
        self.last_us = self.last_us.max(t);
        self.count += 1;
    }
}

/// An IP address a device used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRecord {
    /// The address.
    pub ip: std::net::IpAddr,
    /// How it was learned: `ip` (source of a packet), `arp`, `dhcp` (yiaddr).
    pub source: String,
    /// When.
    pub seen: Seen,
}

/// One identity fact about the device, aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactRecord {
    /// Allow-listed field.
    pub field: Field,
    /// Protocol.
    pub protocol: Protocol,
    /// Value.
    pub value: String,
    /// When.
    pub seen: Seen,
}

/// A service (transport + port) a device offers or uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `tcp` or `udp`.
    pub transport: String,
    /// Server port.
    pub port: u16,
    /// Application protocol recognised on it, if any (`dicom`, `hl7`, `dhcp`, `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Protocol>,
    /// Distinct peers (capped count).
    pub peers: u64,
    /// The distinct peer addresses behind `peers`, sorted; at most the agent's per-service cap
    /// (64 by default), so `peers` may be larger. Added in v1.1; absent from older agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_addresses: Vec<std::net::IpAddr>,
    /// Connections (TCP SYN-ACKs) or datagrams seen.
    pub seen: Seen,
}

/// The device-type vocabulary of [`ClassificationRecord::device_type`], as of this version:
/// the agent's rules may set only these (`ward_agent::rules::DEVICE_TYPES` re-exports this
/// list), and a collector stores any other value as `unknown`.
pub const DEVICE_TYPES: &[&str] = &[
    // Imaging modalities.
    "ct",
    "mr",
    "us",
    "xray",
    "nm",
    "pet",
    "mammography",
    "radiotherapy",
    "ecg",
    "modality_other",
    // Imaging infrastructure.
    "pacs",
    "worklist_server",
    "dicom_toolkit",
    // Bedside devices.
    "patient_monitor",
    "monitor_gateway",
    "infusion_pump",
    "ventilator",
    "anesthesia",
    "lab_analyzer",
    // Point-of-care analyzers (blood gas, glucose, coagulation meters at the bedside).
    "poc_analyzer",
    // Central or patient-worn telemetry (ECG transmitters and their receivers).
    "telemetry",
    // Nurse call systems and their bed and room units.
    "nurse_call",
    "medical_device_other",
    // Clinical IT.
    "interface_engine",
    "ehr",
    "workstation",
    // General IT.
    "printer",
    "network_infra",
    // Kinds of network infrastructure, when the evidence says which (their family is
    // `network_infra`, see `device_type_family`).
    "dhcp_server",
    "router",
    "switch",
    "wireless_ap",
    "mobile_device",
    // IP telephones (desk phones, wireless handsets on a voice VLAN).
    "ip_phone",
    // IP cameras (room and surveillance cameras, video doorbells).
    "camera",
    "unknown",
];

/// The broader type a specific one belongs to — `dhcp_server`, `router`, `switch` and
/// `wireless_ap` are `network_infra` — and every other type itself. Filters and the collector's
/// non-medical list match on the family, so a query for `network_infra` finds a switch.
pub fn device_type_family(device_type: &str) -> &str {
    match device_type {
        "dhcp_server" | "router" | "switch" | "wireless_ap" => "network_infra",
        other => other,
    }
}

/// The specific types of a family (`network_infra` → itself and its four kinds), for filters.
pub fn device_types_in_family(family: &str) -> Vec<&'static str> {
    DEVICE_TYPES
        .iter()
        .copied()
        .filter(|t| device_type_family(t) == family)
        .collect()
}

/// How this device's identity was classified, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationRecord {
    /// Manufacturer, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Device type from the fixed vocabulary (`ct`, `pacs`, `infusion_pump`, … `unknown`).
    pub device_type: String,
    /// Software version, when a rule extracted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// 0.0–1.0.
    pub confidence: f32,
    /// The rules that matched, each with the evidence that made it match.
    pub matches: Vec<RuleMatchRecord>,
    /// When the evidence disagrees — rules propose different device types, manufacturers or
    /// models — every value proposed for that attribute, the chosen one first, each with its
    /// score and the rules behind it. Empty when the evidence agrees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateRecord>,
    /// Why the chosen values won, when there were candidates (one sentence per attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// One value the evidence proposed for an attribute of a classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// `device_type`, `manufacturer` or `model`.
    pub attribute: String,
    /// The value proposed.
    pub value: String,
    /// Its score: the confidence of the strongest rule proposing it (0.0–1.0).
    pub score: f32,
    /// The rules proposing it, strongest first, as `rule id (field)`.
    pub rules: Vec<String>,
    /// Whether this is the value the classification chose.
    pub chosen: bool,
}

/// One rule that contributed to a classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleMatchRecord {
    /// Rule id.
    pub rule: String,
    /// Rule file it came from.
    pub source: String,
    /// The evidence field it matched (`oui`, `dicom.implementation_class_uid`, …).
    pub field: String,
    /// The evidence value it matched.
    pub value: String,
}

/// Everything the agent knows about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Stable key of the device within this agent: `mac:<mac>[@<vlan>]`, or `ip:<address>` for
    /// captures without link-layer addresses (raw IP, loopback, Linux cooked receivers).
    pub key: String,
    /// MAC address, when the capture has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Innermost VLAN id, when tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Universal or locally administered MAC (absent without a MAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_kind: Option<MacKind>,
    /// Organisation the IEEE registry assigns the OUI to (universal MACs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oui_vendor: Option<String>,
    /// When the device was seen at all.
    pub seen: Seen,
    /// Addresses.
    pub addresses: Vec<AddressRecord>,
    /// Identity facts.
    pub facts: Vec<FactRecord>,
    /// Services it accepted connections on.
    pub services_offered: Vec<ServiceRecord>,
    /// Services it connected to.
    pub services_used: Vec<ServiceRecord>,
    /// Behavioural roles (what the device does: answers DHCP, accepts HL7 feeds…), each with
    /// the observations behind it; the `role` pseudo-field of the rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::roles::RoleRecord>,
    /// Classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationRecord>,
}
