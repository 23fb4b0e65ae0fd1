//! The collector's domain records: contracts (MC2 terms) and CMMS assets, as imported and as
//! stored. Parsing and validation live in `contracts.rs` and `assets.rs`; these types carry no
//! I/O so the flag logic can be tested on plain values.

use std::net::IpAddr;

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use ward_protocols::MacAddr;

/// One contract: the terms of supply and support for a set of devices.
///
/// Field names are the import format's (YAML/JSON keys, CSV headers); `docs/contracts.md`
/// documents each with its MC2/MDS2 source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// Unique contract id (the CMMS `contract_id` refers to it).
    pub id: String,
    /// Supplier (the medical device manufacturer or its agent), e.g. `Siemens Healthineers`.
    pub supplier: String,
    /// Covered products. A device is covered by model when one pattern matches.
    pub products: Vec<ProductPattern>,
    /// Covered serial numbers (case-insensitive, surrounding spaces ignored).
    pub serials: Vec<String>,
    /// Covered CMMS asset tags (case-insensitive, surrounding spaces ignored).
    pub asset_tags: Vec<String>,
    /// Number of devices the contract covers; more linked devices raise
    /// `over_contracted_quantity`.
    pub quantity: Option<u32>,
    /// Sites (agent `--site` names) the devices may be on; empty = any.
    pub sites: Vec<String>,
    /// VLAN ids the devices may be on; empty = any.
    pub vlans: Vec<u16>,
    /// Contract start.
    pub start: Option<NaiveDate>,
    /// Contract end.
    pub end: Option<NaiveDate>,
    /// End of support (IMDRF N70 EOS: all support, including security patches, ends).
    pub end_of_support: Option<NaiveDate>,
    /// End of guaranteed support (MC2 #45).
    pub end_of_guaranteed_support: Option<NaiveDate>,
    /// End of life (no longer sold).
    pub end_of_life: Option<NaiveDate>,
    /// Advance notice periods the supplier owes, in months (MC2 #45 defaults 24/24/36).
    pub notice_months: NoticeMonths,
    /// Software versions the supplier supports; glob patterns (`*`, `?`), case-insensitive.
    /// Empty = not stated (no `software_version_unsupported` flag).
    pub supported_software_versions: Vec<String>,
    /// Days to apply a security patch, by severity (MC2 #31: 30 days).
    pub patch_sla_days: PatchSla,
    /// Network services the devices may offer or use. Empty = not stated (no
    /// `service_not_permitted` flag).
    pub permitted_services: Vec<PermittedService>,
    /// Remote (vendor) access policy.
    pub remote_access: RemoteAccess,
    /// Patient data must be encrypted in transit (MDS2 TXCF-2/-5): cleartext DICOM or HL7 on
    /// the wire raises `cleartext_phi_protocol`.
    pub encryption_in_transit_required: bool,
    /// The devices may talk to peers outside the hospital's networks (MDS2 CONN-3/4/6).
    pub external_communication_permitted: bool,
    /// Reference to the MDS2 form (URL or document id).
    pub mds2: Option<String>,
    /// Reference to the SBOM (URL or document id).
    pub sbom: Option<String>,
    /// Free text.
    pub notes: Option<String>,
}

/// A covered product: a manufacturer and a model pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductPattern {
    /// Manufacturer pattern (glob, case-insensitive); `None` = the contract's supplier.
    pub manufacturer: Option<String>,
    /// Model pattern (glob, case-insensitive), e.g. `SOMATOM *`.
    pub model: String,
}

/// Notice periods in months.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeMonths {
    /// Before end of life.
    pub end_of_life: Option<u32>,
    /// Before end of guaranteed support.
    pub end_of_guaranteed_support: Option<u32>,
    /// Before end of support.
    pub end_of_support: Option<u32>,
}

/// Patch deadlines in days by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSla {
    /// Critical.
    pub critical: Option<u32>,
    /// High.
    pub high: Option<u32>,
    /// Medium.
    pub medium: Option<u32>,
    /// Low.
    pub low: Option<u32>,
}

/// Transport of a permitted service, and of a service seen on the wire
/// ([`crate::store::ServiceView`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// Every transport.
    pub const ALL: &'static [Transport] = &[Transport::Tcp, Transport::Udp];

    /// The name in files, the database and the API (`tcp`, `udp`; serde's spelling).
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of a service the device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The device accepts connections on the port (server).
    Inbound,
    /// The device connects to the port on peers (client).
    Outbound,
    /// Either.
    Both,
}

/// One permitted network service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermittedService {
    /// Application protocol name for people (`dicom`, `hl7`, `https`, …); informative only —
    /// matching is by transport and port.
    pub protocol: Option<String>,
    /// Transport.
    pub transport: Transport,
    /// Port (the server port).
    pub port: u16,
    /// Direction.
    pub direction: Direction,
    /// Peers it may be used with; empty = any peer.
    pub peers: Vec<IpNet>,
}

/// Remote (vendor) access policy (MDS2 RMOT, MC2 scope "connections").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAccess {
    /// `none`: no remote access at all; `listed`: only through `gateways`; `unrestricted`:
    /// not limited by the contract (no flag).
    pub policy: RemoteAccessPolicy,
    /// Permitted remote-access gateways or peers.
    pub gateways: Vec<IpNet>,
}

impl Default for RemoteAccess {
    fn default() -> Self {
        RemoteAccess {
            policy: RemoteAccessPolicy::Unrestricted,
            gateways: Vec::new(),
        }
    }
}

/// See [`RemoteAccess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteAccessPolicy {
    /// No remote access permitted.
    None,
    /// Only via the listed gateways/peers.
    Listed,
    /// Not restricted by this contract.
    Unrestricted,
}

/// One row of the clinical-engineering asset register (CMMS export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Asset tag (unique key).
    pub tag: String,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// IP address.
    pub ip: Option<IpAddr>,
    /// Host name (used with the IP for a low-confidence link).
    pub hostname: Option<String>,
    /// Location (building, room).
    pub location: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Contract id this asset is covered by.
    pub contract_id: Option<String>,
    /// Risk class (e.g. `high`, `IIb`).
    pub risk_class: Option<String>,
}
