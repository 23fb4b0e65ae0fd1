//! The storage boundary. Everything the collector keeps goes through [`Store`], so a second
//! backend (PostgreSQL, for several collectors sharing one inventory) implements this trait and
//! nothing above it changes. SQLite ([`sqlite::SqliteStore`]) is the default.
//!
//! Rules every backend keeps:
//! - each method is one transaction: it lands whole or not at all;
//! - ingest is idempotent on `(site, agent_id, instance, seq)` and order-safe: every stored
//!   time is a min/max, every "current" value is the one seen last *by observation time*;
//! - nothing here assumes it is the only writer (no in-process caches of database state that
//!   another collector could invalidate).

pub mod postgres;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use ward_protocols::schema::observation::Observation;
use ward_protocols::schema::status::StatusMessage;
use ward_protocols::MacAddr;

pub use crate::compliance::flags::{FlagKind, Severity};
use crate::import::advisories::Advisory;
use crate::import::eox::EoxStatement;
use crate::import::kev::KevCatalog;
pub use crate::import::model::Transport;
use crate::import::model::{Asset, Contract};
use crate::import::sbom::Sbom;

/// A storage failure. The message names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {context}: {source}")]
    Db {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL refused or the connection failed.
    #[error("database: {context}: {source}")]
    Postgres {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: postgres::sql::Error,
    },
    /// The database setting does not parse (the password is never shown).
    #[error("{context}: {detail}")]
    Config {
        /// Which database (redacted).
        context: String,
        /// Why.
        detail: String,
    },
    /// A file operation around the database failed (creating its directory or file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The database is newer than this program.
    #[error("database schema version {found} is newer than this ward-collector understands ({supported}); upgrade ward-collector")]
    TooNew {
        /// Found in the file.
        found: i64,
        /// Highest known.
        supported: i64,
    },
    /// Stored data that does not decode (corruption or a foreign writer).
    #[error("stored {what} does not decode: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
}

/// One decoded message from an agent.
#[derive(Debug, Clone)]
pub enum Message {
    /// `ward.observation.v1`.
    Observation(Observation),
    /// `ward.status.v1`.
    Status(StatusMessage),
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Observation messages stored.
    pub messages: u64,
    /// Observation messages skipped because they were already stored (replays).
    pub duplicates: u64,
    /// Device records applied.
    pub device_records: u64,
    /// Devices created.
    pub devices_created: u64,
    /// Device merges on a strong identity.
    pub merges: u64,
    /// Status messages stored.
    pub statuses: u64,
    /// Messages refused before they reached the store, by reason (counted where messages are
    /// decoded: `ingest::decode`, the JSON-lines replay).
    pub rejected: Rejections,
    /// Values of accepted messages cut, replaced or dropped to fit the schema's bounds.
    pub adjusted: Adjustments,
}

impl IngestStats {
    /// Adds another call's counts.
    pub fn add(&mut self, o: &IngestStats) {
        self.messages += o.messages;
        self.duplicates += o.duplicates;
        self.device_records += o.device_records;
        self.devices_created += o.devices_created;
        self.merges += o.merges;
        self.statuses += o.statuses;
        self.rejected.add(&o.rejected);
        self.adjusted.add(&o.adjusted);
    }
}

/// Messages refused whole, by reason (`ingest::Reason`; documented in
/// `docs/schema/observation-v1.md`, "What a collector accepts").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rejections {
    /// The topic is not `ward/v1/<site>/<agent-id>/devices|status` with valid ids.
    pub topic: u64,
    /// Longer than the message size limit.
    pub too_long: u64,
    /// Not JSON (or not UTF-8).
    pub json_syntax: u64,
    /// JSON, but not the schema's shape: a missing field, a wrong type, an unknown value.
    pub json_shape: u64,
    /// `schema` names no schema this collector reads.
    pub unknown_schema: u64,
    /// The payload's site is not the topic's.
    pub site_mismatch: u64,
    /// The payload's agent id is not the topic's.
    pub agent_mismatch: u64,
    /// A field outside its bounds (ids, `seq`, times, device count, status times).
    pub invalid_field: u64,
}

impl Rejections {
    /// Adds other counts.
    pub fn add(&mut self, o: &Rejections) {
        self.topic += o.topic;
        self.too_long += o.too_long;
        self.json_syntax += o.json_syntax;
        self.json_shape += o.json_shape;
        self.unknown_schema += o.unknown_schema;
        self.site_mismatch += o.site_mismatch;
        self.agent_mismatch += o.agent_mismatch;
        self.invalid_field += o.invalid_field;
    }

    /// Total.
    pub fn total(&self) -> u64 {
        self.topic
            + self.too_long
            + self.json_syntax
            + self.json_shape
            + self.unknown_schema
            + self.site_mismatch
            + self.agent_mismatch
            + self.invalid_field
    }
}

/// Changes made to accepted messages so that every stored value is within its bound
/// (`ingest::Fix`; documented in `docs/schema/observation-v1.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Adjustments {
    /// Text values cut at their length limit.
    pub texts_truncated: u64,
    /// Control and invisible formatting characters replaced with U+FFFD.
    pub control_characters_replaced: u64,
    /// Device types outside the vocabulary, stored as `unknown`.
    pub device_types_unknown: u64,
    /// Numbers brought into range (counts above 2^63-1, confidence outside 0-1).
    pub numbers_clamped: u64,
    /// Device records dropped (invalid key, VLAN above 4094, invalid times).
    pub devices_dropped: u64,
    /// Addresses, facts and services dropped (invalid times, port 0, unknown transport or
    /// address source).
    pub items_dropped: u64,
    /// Lists cut at their length limit (addresses, facts, services, peers, rule matches).
    pub lists_capped: u64,
}

impl Adjustments {
    /// Adds other counts.
    pub fn add(&mut self, o: &Adjustments) {
        self.texts_truncated += o.texts_truncated;
        self.control_characters_replaced += o.control_characters_replaced;
        self.device_types_unknown += o.device_types_unknown;
        self.numbers_clamped += o.numbers_clamped;
        self.devices_dropped += o.devices_dropped;
        self.items_dropped += o.items_dropped;
        self.lists_capped += o.lists_capped;
    }

    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        *self == Adjustments::default()
    }
}

/// Which end of a service a device is. Serialized (API, evidence) and stored as `offered` /
/// `used`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceDirection {
    /// The device is the server: it accepts connections on the port.
    Offered,
    /// The device is the client: it connects to the port on peers.
    Used,
}

impl ServiceDirection {
    /// Both directions.
    pub const ALL: &'static [ServiceDirection] =
        &[ServiceDirection::Offered, ServiceDirection::Used];

    /// The stored and serialized name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceDirection::Offered => "offered",
            ServiceDirection::Used => "used",
        }
    }
}

impl std::fmt::Display for ServiceDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored name (`services.direction`, `services.transport`) that names no value of its type:
/// a corrupt row or a newer writer. Reading fails rather than guessing.
fn from_stored<T: Copy>(
    v: rusqlite::types::ValueRef<'_>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> rusqlite::types::FromSqlResult<T> {
    let s = v.as_str()?;
    all.iter().copied().find(|t| name(*t) == s).ok_or_else(|| {
        rusqlite::types::FromSqlError::Other(format!("unknown stored name {s:?}").into())
    })
}

// The SQLite backend reads the typed service columns directly (`row.get`), so each name is
// parsed once, where the view is built.
impl rusqlite::types::FromSql for ServiceDirection {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        from_stored(v, ServiceDirection::ALL, ServiceDirection::as_str)
    }
}

impl rusqlite::types::FromSql for Transport {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        from_stored(v, Transport::ALL, Transport::as_str)
    }
}

/// A service as stored for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    /// `offered` (the device is the server) or `used` (the device is the client).
    pub direction: ServiceDirection,
    /// `tcp` or `udp`.
    pub transport: Transport,
    /// Server port.
    pub port: u16,
    /// Recognised application protocol.
    pub app: Option<String>,
    /// Distinct peers reported (may exceed `peer_addresses`).
    pub peers: u64,
    /// Peer addresses known.
    pub peer_addresses: Vec<IpAddr>,
    /// First seen, µs.
    pub first_us: i64,
    /// Last seen, µs.
    pub last_us: i64,
}

/// One value of an attribute over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeValue {
    /// The value.
    pub value: String,
    /// First seen, µs.
    pub first_us: i64,
    /// Last seen, µs.
    pub last_us: i64,
    /// Agent that last reported it.
    pub agent_id: String,
}

/// Where (which agent, site, VLAN) a device was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    /// Site.
    pub site: String,
    /// Agent.
    pub agent_id: String,
    /// Agent-local key.
    pub key: String,
    /// VLAN.
    pub vlan: Option<u16>,
    /// First seen, µs.
    pub first_us: i64,
    /// Last seen, µs.
    pub last_us: i64,
}

/// Everything stored about one device, as linking and flags need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    /// Device id.
    pub id: i64,
    /// First seen by any agent, µs.
    pub first_us: i64,
    /// Last seen by any agent, µs.
    pub last_us: i64,
    /// MAC addresses.
    pub macs: Vec<MacAddr>,
    /// Where it was seen.
    pub sightings: Vec<Sighting>,
    /// Identities by kind (`mac`, `serial`, `eui64`, `udi`, `ip`, `ae_title`, `hostname`).
    pub identities: BTreeMap<String, Vec<String>>,
    /// Attribute histories by name (`manufacturer`, `model`, `device_type`, `software_version`,
    /// every allow-listed fact field…), each sorted by first seen.
    pub attributes: BTreeMap<String, Vec<AttributeValue>>,
    /// Services.
    pub services: Vec<ServiceView>,
    /// The software-version timeline: every episode (a version seen with no other version
    /// seen in between), by first seen. A rollback to an earlier version is an episode of its
    /// own, unlike in `attributes`, which keeps one row per value.
    pub software_versions: Vec<VersionEpisode>,
    /// The latest classification an agent reported (the observation schema's
    /// `classification`: rules matched, and candidates with an explanation when the evidence
    /// disagreed), as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<serde_json::Value>,
}

/// One stretch of time a device ran one software version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionEpisode {
    /// The version.
    pub value: String,
    /// First seen in this episode, µs.
    pub first_us: i64,
    /// Last seen in this episode, µs.
    pub last_us: i64,
    /// The site of the agent that last reported it.
    pub site: String,
    /// That agent.
    pub agent_id: String,
    /// The evidence fields that carried the version (allow-list names, e.g. a DICOM or HL7
    /// software-version field); empty when the classification rules inferred it.
    pub fields: Vec<String>,
}

impl DeviceView {
    /// The current value of an attribute: the one seen last (by observation time).
    pub fn current(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)?
            .iter()
            .max_by(|a, b| (a.last_us, a.first_us).cmp(&(b.last_us, b.first_us)))
            .map(|a| a.value.as_str())
    }

    /// Identity values of a kind.
    pub fn ids(&self, kind: &str) -> &[String] {
        self.identities.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The whole inventory, as linking and flag evaluation read it.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Devices (merged ones excluded).
    pub devices: Vec<DeviceView>,
    /// Assets.
    pub assets: Vec<Asset>,
    /// Contracts.
    pub contracts: Vec<Contract>,
    /// Security advisories (CSAF), for the advisory scope of the flags. Not read by
    /// [`Store::inventory`]: `ingest::evaluate` adds them ([`Store::advisories`]).
    pub advisories: Vec<Advisory>,
    /// The KEV catalog, if imported ([`Store::kev`]), added the same way.
    pub kev: Option<KevCatalog>,
    /// SBOMs of product releases ([`Store::sboms`]), added the same way: advisories that name
    /// components by PURL or CPE reach devices through them.
    pub sboms: Vec<Sbom>,
    /// OpenEoX end-of-life statements ([`Store::eox_statements`]), added the same way.
    pub eox: Vec<EoxStatement>,
}

/// What a link joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Device → CMMS asset (target = asset tag).
    Asset,
    /// Device → contract (target = contract id).
    Contract,
}

impl LinkKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Asset => "asset",
            LinkKind::Contract => "contract",
        }
    }
}

/// A link with how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// Device id.
    pub device_id: i64,
    /// Kind.
    pub kind: LinkKind,
    /// Asset tag or contract id.
    pub target: String,
    /// How: `mac`, `serial`, `eui64`, `udi`, `ip+hostname`, `ip`, `asset_contract_id`,
    /// `contract_asset_tag`, `contract_serial`, `model_coverage`.
    pub method: String,
    /// 0–1.
    pub confidence: f32,
}

/// A flag condition that holds now (what `compliance::flags::evaluate` finds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagInstance {
    /// Kind; stored under its wire name ([`FlagKind::name`]).
    pub kind: FlagKind,
    /// `device:<id>`, `asset:<tag>` or `contract:<id>` (the kind's [`crate::compliance::flags::Scope`]).
    pub subject: String,
    /// What distinguishes several flags of one kind on one subject (e.g. `tcp/23/offered`);
    /// empty when there is one.
    pub detail: String,
    /// The kind's severity ([`FlagKind::severity`]).
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// The evidence, structured.
    pub evidence: serde_json::Value,
}

/// What an evaluation knows about why a condition stopped holding, for the flag it resolves:
/// e.g. "patched at T, N days after the fix" when the wire shows a device on a version an
/// advisory no longer names. Applied only if that evaluation resolves an open flag of the same
/// kind, subject and detail; otherwise it says nothing (the condition was not open).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolutionNote {
    /// The kind of the flag it resolves.
    pub kind: FlagKind,
    /// Its subject.
    pub subject: String,
    /// Its detail.
    pub detail: String,
    /// Appended to the resolved flag's summary.
    pub summary: String,
    /// Stored as the resolved flag's `evidence.resolution`.
    pub evidence: serde_json::Value,
}

/// A stored flag. Kind and severity stay the stored text: a database may hold kinds this
/// version does not evaluate (written by a newer collector, or a kind since retired), and they
/// must still list and resolve. [`FlagKind`]'s `FromStr` reads a stored kind when it matters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagRow {
    /// Row id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: String,
    /// Detail.
    pub detail: String,
    /// Severity.
    pub severity: String,
    /// `open` or `resolved`.
    pub status: String,
    /// Summary.
    pub summary: String,
    /// Evidence (as of the last evaluation that found it true).
    pub evidence: serde_json::Value,
    /// When first found true, µs.
    pub opened_us: i64,
    /// When last found true, µs.
    pub last_true_us: i64,
    /// When found no longer true, µs.
    pub resolved_us: Option<i64>,
}

/// What applying an evaluation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyStats {
    /// Links added or changed.
    pub links_changed: u64,
    /// Links removed.
    pub links_removed: u64,
    /// Flags opened.
    pub flags_opened: u64,
    /// Flags resolved.
    pub flags_resolved: u64,
    /// Flags open now.
    pub flags_open: u64,
}

/// What applying an evaluation did, with the flags it opened and resolved (for alerts).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Applied {
    /// Counts.
    #[serde(flatten)]
    pub stats: ApplyStats,
    /// Flags opened by this evaluation.
    #[serde(skip)]
    pub opened: Vec<FlagRow>,
    /// Flags resolved by this evaluation.
    #[serde(skip)]
    pub resolved: Vec<FlagRow>,
}

/// What one evaluation stores, in one transaction: its links, flags and summaries replace the
/// stored ones within `scope`; `changes` says which recorded changes it has seen.
#[derive(Debug, Clone, Copy)]
pub struct Evaluated<'a> {
    /// The stored rows these results replace.
    pub scope: EvalScope<'a>,
    /// Every link of the scope's devices.
    pub links: &'a [Link],
    /// Every condition that holds within the scope.
    pub flags: &'a [FlagInstance],
    /// Why conditions stopped holding ([`ResolutionNote`]).
    pub notes: &'a [ResolutionNote],
    /// The summaries of the scope's devices; `None` leaves the summaries as they are.
    pub summaries: Option<&'a [DeviceSummary]>,
    /// The recorded changes ([`Store::changed_devices`]) this evaluation has seen, forgotten
    /// with it.
    pub changes: ChangesSeen<'a>,
    /// When, µs.
    pub now_us: i64,
}

/// Which stored rows an evaluation replaces.
#[derive(Debug, Clone, Copy)]
pub enum EvalScope<'a> {
    /// All of them: every link, every open flag, every summary.
    All,
    /// Part of the inventory: the links, `device:` flags and summaries of `devices` (a device
    /// absent from the results — merged away — loses them), and the flags of `assets` and
    /// `contracts`; with `every_aggregate`, every open `asset:` and `contract:` flag (the
    /// last step of a sweep, which also recounts the flag counts from the flags).
    Part {
        /// Device ids.
        devices: &'a [i64],
        /// Asset tags.
        assets: &'a [String],
        /// Contract ids.
        contracts: &'a [String],
        /// Every asset and contract flag is in scope.
        every_aggregate: bool,
    },
}

/// The recorded changes an evaluation has seen, by the token of the latest one it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesSeen<'a> {
    /// None.
    None,
    /// These devices' changes with tokens up to `up_to` (a device changed again since has a
    /// greater token and stays recorded).
    These {
        /// Device ids.
        devices: &'a [i64],
        /// The greatest token read.
        up_to: i64,
    },
    /// Every change with a token up to `up_to`: a sweep that started after them.
    UpTo(i64),
}

/// Devices whose stored facts changed since an evaluation last saw them (each ingest that
/// writes a row of a device records it; merges record both devices), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Device ids, ascending.
    pub devices: Vec<i64>,
    /// The greatest token among them (0 when there are none).
    pub up_to: i64,
}

/// What links of devices outside an evaluation's part say about the assets and contracts it
/// touches: the aggregate scopes' inputs ([`crate::compliance::flags::aggregate_flags`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkedElsewhere {
    /// Asset tag → the latest last-seen time of a device linked to it.
    pub asset_last_seen: HashMap<String, i64>,
    /// Contract id → the devices linked to it (only contracts with a quantity: nothing else
    /// counts them).
    pub contract_devices: BTreeMap<String, Covered>,
}

/// The devices a contract covers: how many, and the lowest ids (what a flag's evidence lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Covered {
    /// How many.
    pub count: u64,
    /// The lowest [`Covered::LISTED`] ids, ascending.
    pub first: Vec<i64>,
}

impl Covered {
    /// Ids an evidence lists at most.
    pub const LISTED: usize = 200;

    /// Adds devices (none of them counted already).
    pub fn add(&mut self, count: u64, ids: impl IntoIterator<Item = i64>) {
        self.count += count;
        self.first.extend(ids);
        self.first.sort_unstable();
        self.first.truncate(Self::LISTED);
    }
}

/// A recorded merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeRow {
    /// Device kept.
    pub kept: i64,
    /// Device absorbed.
    pub absorbed: i64,
    /// Identity kind that justified it.
    pub identity_kind: String,
    /// Its value.
    pub identity_value: String,
    /// Why, for people.
    pub explanation: String,
    /// Observation time, µs.
    pub at_us: i64,
}

/// An agent as last heard from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// Site.
    pub site: String,
    /// Agent id.
    pub agent_id: String,
    /// Last instance.
    pub instance: Option<String>,
    /// `online`/`offline` from the last status.
    pub state: Option<String>,
    /// Agent version.
    pub version: Option<String>,
    /// Last status time (RFC 3339).
    pub status_time: Option<String>,
    /// Offline reason.
    pub reason: Option<String>,
    /// Last stats object.
    pub stats: Option<serde_json::Value>,
    /// Observation messages stored.
    pub messages: i64,
    /// Messages missing: per instance, highest `seq` minus messages stored (a message lost
    /// between an agent and the store; the agent's next snapshot restores the state).
    pub missing: i64,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Devices (not merged away).
    pub devices: u64,
    /// Observation messages stored.
    pub messages: u64,
    /// Contracts.
    pub contracts: u64,
    /// Assets.
    pub assets: u64,
    /// Links.
    pub links: u64,
    /// Open flags.
    pub open_flags: u64,
    /// Merges.
    pub merges: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    /// New records.
    pub inserted: u64,
    /// Replaced records (same id/tag).
    pub replaced: u64,
    /// Removed (assets with `--replace`).
    pub removed: u64,
}

/// A device linked to an asset of the register, with what the network says it is (the
/// console's reconciliation of the register with the network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLinkRow {
    /// Asset tag.
    pub tag: String,
    /// Device id.
    pub device_id: i64,
    /// The device's manufacturer.
    pub manufacturer: Option<String>,
    /// The device's model.
    pub model: Option<String>,
}

/// A link as shown with a device.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LinkRef {
    /// Asset tag or contract id.
    pub target: String,
    /// How it was made.
    pub method: String,
    /// 0–1.
    pub confidence: f32,
}

/// One row of the device list: what the API, reports and filters need, kept by every
/// evaluation so listing 100 000 devices never loads the whole inventory.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeviceSummary {
    /// Device id.
    pub id: i64,
    /// MAC addresses.
    pub macs: Vec<String>,
    /// IP addresses.
    pub ips: Vec<String>,
    /// Manufacturer (classified, else as reported).
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Device type.
    pub device_type: String,
    /// Software version.
    pub software_version: Option<String>,
    /// Sites it was seen at.
    pub sites: Vec<String>,
    /// VLANs it was seen on.
    pub vlans: Vec<u16>,
    /// First seen, µs.
    pub first_us: i64,
    /// Last seen, µs.
    pub last_us: i64,
    /// Asset link.
    pub asset: Option<LinkRef>,
    /// Contract link.
    pub contract: Option<LinkRef>,
    /// Open flags on the device.
    pub open_flags: u32,
    /// Their kinds.
    pub flag_kinds: Vec<String>,
    /// Whether it counts as a medical device (see `flags::FlagConfig::non_medical_types`).
    pub medical: bool,
}

/// Coverage: is every device known, covered and supported (`/api/v1/coverage`, the coverage
/// report). Read from the counts every evaluation keeps with the device summaries (per
/// manufacturer for a vendor), so neither its time nor its memory grows with the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Devices.
    pub devices: u64,
    /// Medical devices.
    pub medical: u64,
    /// Medical devices linked to an asset.
    pub medical_in_asset_register: u64,
    /// Medical devices linked to a contract.
    pub medical_under_contract: u64,
    /// Devices past end of support.
    pub end_of_support_passed: u64,
    /// Devices within the end-of-support warning window.
    pub end_of_support_within: u64,
    /// Devices with at least one open flag.
    pub with_open_flags: u64,
    /// Open device flags by kind.
    pub open_flags_by_kind: BTreeMap<String, u64>,
}

/// Device list filters. `vendors` confines the result to those vendors' devices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceQuery {
    /// Seen at this site.
    pub site: Option<String>,
    /// Of this type.
    pub device_type: Option<String>,
    /// Manufacturer contains this (case-insensitive).
    pub manufacturer: Option<String>,
    /// Has an open flag of this kind.
    pub flag: Option<String>,
    /// Its manufacturer or model contains this (case-insensitive), or one of its MAC, IP, host
    /// name, serial, EUI-64 or UDI identities starts with it (as typed, in lower or in upper
    /// case): index lookups, fast at any inventory size. AE titles are not searched: a vendor
    /// may not see them, so it may not probe for them either.
    pub search: Option<String>,
    /// Contract link.
    pub contract: Option<LinkFilter>,
    /// Asset (CMMS register) link.
    pub asset: Option<LinkFilter>,
    /// Order.
    pub sort: DeviceSort,
    /// Only devices whose manufacturer matches one of these globs; `None` = all.
    pub vendors: Option<Vec<String>>,
    /// Page size.
    pub limit: u32,
    /// Page start.
    pub offset: u64,
    /// Count at most this many matching devices for the total when it cannot be read from the
    /// summary of the summaries: a total above it is returned as `u64::MAX` ("more than cap"),
    /// so a broad filter's total costs `cap` index entries, not the whole inventory (the
    /// console). `None` counts them all (the API's exact totals).
    pub count_cap: Option<u64>,
}

/// How a device list is ordered (`DeviceQuery::sort`); every order ends with the device id, so
/// pages never overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceSort {
    /// Device id (the order devices were first stored).
    #[default]
    Id,
    /// Manufacturer, then model.
    Manufacturer,
    /// Device type.
    Type,
    /// Last seen, most recent first.
    LastSeen,
    /// Open flags, most first.
    Flags,
}

/// Whether a device is linked (`DeviceQuery::contract`, `DeviceQuery::asset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFilter {
    /// Linked to anything.
    Linked,
    /// Not linked.
    Unlinked,
    /// Linked to this target (contract id, asset tag).
    To(String),
}

/// Flags opened and resolved on one day (UTC), for the console's chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlagDay {
    /// Days since 1970-01-01.
    pub day: i64,
    /// Flags first found true that day.
    pub opened: u64,
    /// Flags found no longer true that day.
    pub resolved: u64,
}

/// A web console session as stored: the SHA-256 of its secret (the cookie holds the secret),
/// the API token it was opened with, and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the session secret, hex.
    pub id_sha256: String,
    /// The token whose role and vendors the session has (checked on every request, so a
    /// revoked or expired token ends its sessions).
    pub token_id: String,
    /// The token every state-changing form of this session carries.
    pub csrf: String,
    /// Opened, µs.
    pub created_us: i64,
    /// Last used, µs.
    pub last_used_us: i64,
}

/// How long a console session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ends after this long unused, µs.
    pub idle_us: i64,
    /// Ends this long after sign-in whatever its use, µs.
    pub absolute_us: i64,
}

/// Flag list filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagQuery {
    /// `open`, `resolved`; `None` = both.
    pub status: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Only flags on devices seen at this site.
    pub site: Option<String>,
    /// Only flags on this contract or on the devices linked to it.
    pub contract: Option<String>,
    /// Only flags on these vendors' devices and contracts; `None` = all.
    pub vendors: Option<Vec<String>>,
    /// Page size.
    pub limit: u32,
    /// Page start.
    pub offset: u64,
}

/// An API token as stored: only a hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Public id (the part of the token before the secret).
    pub id: String,
    /// Who or what it is for.
    pub name: String,
    /// `admin`, `clinical_engineering` or `vendor`.
    pub role: String,
    /// Manufacturers a vendor token is confined to.
    pub vendors: Vec<String>,
    /// SHA-256 of the secret, hex.
    #[serde(skip)]
    pub secret_sha256: String,
    /// Created, µs.
    pub created_us: i64,
    /// Expires, µs.
    pub expires_us: Option<i64>,
    /// Revoked, µs.
    pub revoked_us: Option<i64>,
}

/// The storage operations. Each is one transaction.
pub trait Store: Send + std::fmt::Debug {
    /// Stores a batch of agent messages: device records, identities, history, agent status.
    /// Replays (same `site, agent_id, instance, seq`) are skipped.
    fn ingest(&mut self, batch: &[Message], received_us: i64) -> Result<IngestStats, StoreError>;
    /// Inserts or replaces contracts by id.
    fn import_contracts(
        &mut self,
        contracts: &[Contract],
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError>;
    /// Inserts or replaces assets by tag; with `replace`, removes every asset not in `assets`
    /// (the file is a full register export).
    fn import_assets(
        &mut self,
        assets: &[Asset],
        replace: bool,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError>;
    /// Reads what linking and flag evaluation need.
    fn inventory(&self) -> Result<Inventory, StoreError>;
    /// Stores an evaluation: within its scope, the links are replaced with its links, conditions
    /// in its flags open (or stay open), open flags not in them are resolved at `now_us`, each
    /// with the note that names it, if any (its summary appended, its evidence under
    /// `resolution`), and the summaries (if given) replace the stored ones; the counts kept
    /// with flags and summaries follow, and the changes it saw are forgotten.
    fn apply_evaluated(&mut self, e: &Evaluated<'_>) -> Result<Applied, StoreError>;
    /// [`Store::apply_evaluated`] over the whole inventory, without summaries.
    fn apply_evaluation(
        &mut self,
        links: &[Link],
        flags: &[FlagInstance],
        notes: &[ResolutionNote],
        now_us: i64,
    ) -> Result<Applied, StoreError> {
        self.apply_evaluated(&Evaluated {
            scope: EvalScope::All,
            links,
            flags,
            notes,
            summaries: None,
            changes: ChangesSeen::None,
            now_us,
        })
    }
    /// Devices whose stored facts changed since an evaluation saw them, at most `max`, oldest
    /// change first.
    fn changed_devices(&self, max: usize) -> Result<Changes, StoreError>;
    /// The greatest change token recorded (0: none).
    fn last_change(&self) -> Result<i64, StoreError>;
    /// These devices (merged-away ones absent), by id, as [`Store::inventory`] reads them.
    fn devices_by_id(&self, ids: &[i64]) -> Result<Vec<DeviceView>, StoreError>;
    /// Device ids above `after`, ascending, at most `max`: every device's (merged ones too) and
    /// every summary's, so a sweep over them reaches whatever an evaluation ever stored.
    fn device_ids_after(&self, after: i64, max: usize) -> Result<Vec<i64>, StoreError>;
    /// The stored links of these devices.
    fn links_of(&self, ids: &[i64]) -> Result<Vec<Link>, StoreError>;
    /// For these assets and contracts, what the links of devices other than `exclude` say.
    fn linked_elsewhere(
        &self,
        exclude: &[i64],
        assets: &[String],
        contracts: &[String],
    ) -> Result<LinkedElsewhere, StoreError>;
    /// A number that changes whenever an import changes contracts, assets, advisories, the
    /// KEV catalog, SBOMs or OpenEoX statements: what an evaluator keeps of them in memory is
    /// current while it holds.
    fn imports_version(&self) -> Result<Vec<i64>, StoreError>;
    /// Flags, newest first; `open_only` filters.
    fn flags(&self, open_only: bool) -> Result<Vec<FlagRow>, StoreError>;
    /// Links.
    fn links(&self) -> Result<Vec<Link>, StoreError>;
    /// Merges.
    fn merges(&self) -> Result<Vec<MergeRow>, StoreError>;
    /// Agents.
    fn agents(&self) -> Result<Vec<AgentRow>, StoreError>;
    /// Counts.
    fn counts(&self) -> Result<Counts, StoreError>;
    /// Every contract.
    fn inventory_contracts(&self) -> Result<Vec<Contract>, StoreError>;
    /// Every asset.
    fn inventory_assets(&self) -> Result<Vec<Asset>, StoreError>;
    /// Replaces the device summaries with `rows` (writing only what changed).
    fn write_summaries(&mut self, rows: &[DeviceSummary]) -> Result<u64, StoreError>;
    /// A page of device summaries and the total matching.
    fn device_page(&self, q: &DeviceQuery) -> Result<(u64, Vec<DeviceSummary>), StoreError>;
    /// Every device summary (of these vendors).
    fn device_summaries(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<DeviceSummary>, StoreError>;
    /// Coverage counts over the device summaries (of these vendors), from the counts kept with
    /// them (`compliance::summary::summary_counts`), without loading them.
    fn coverage(&self, vendors: Option<&[String]>) -> Result<Coverage, StoreError>;
    /// The devices linked to an asset (of these vendors), by tag: four narrow columns of one
    /// index, no summary body.
    fn asset_links(&self, vendors: Option<&[String]>) -> Result<Vec<AssetLinkRow>, StoreError>;
    /// One device's summary.
    fn device_summary(&self, id: i64) -> Result<Option<DeviceSummary>, StoreError>;
    /// One device in full.
    fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError>;
    /// A page of flags and the total matching.
    fn flag_page(&self, q: &FlagQuery) -> Result<(u64, Vec<FlagRow>), StoreError>;
    /// Flags whose opening or resolution has not been alerted yet (whoever evaluated: the
    /// collector, or a CLI import), at most `max`; marks them alerted. Applied's stats are zero.
    fn take_alerts(&mut self, max: usize) -> Result<Applied, StoreError>;
    /// Records alerts as delivered to every destination: `(flag id, event bit)`, 1 for the
    /// opening, 2 for the resolution.
    fn confirm_alerts(&mut self, done: &[(i64, i64)]) -> Result<(), StoreError>;
    /// Alerts taken ([`Store::take_alerts`]) but never confirmed delivered, flag ids above
    /// `after`, at most `max`: lost with the collector that took them, to be sent again.
    fn undelivered_alerts(&mut self, after: i64, max: usize) -> Result<Applied, StoreError>;
    /// Stores a new token.
    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), StoreError>;
    /// A token by id.
    fn token_get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token.
    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token; false if there is none with that id.
    fn token_revoke(&mut self, id: &str, now_us: i64) -> Result<bool, StoreError>;
    /// Stores advisory revisions: a new id is inserted, a newer `tracking.version` replaces the
    /// stored revision whole, the same version is left as it is. An older (or unorderable)
    /// version is refused, and then nothing of the call is stored (`refused` says why).
    fn import_advisories(
        &mut self,
        advisories: &[Advisory],
        now_us: i64,
    ) -> Result<AdvisoryImportStats, StoreError>;
    /// Every stored advisory, whole, by id.
    fn advisories(&self) -> Result<Vec<Advisory>, StoreError>;
    /// Replaces the KEV catalog with `catalog` (entries not in it are removed).
    fn import_kev(
        &mut self,
        catalog: &KevCatalog,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError>;
    /// The stored KEV catalog, if one was imported.
    fn kev(&self) -> Result<Option<KevCatalog>, StoreError>;
    /// Stores an SBOM bound to its contract (which must exist) and product: one with the same
    /// key (serial number) and the same or a newer BOM version replaces the stored one whole;
    /// an older version, or an unknown contract, is refused and nothing is stored.
    fn import_sbom(&mut self, sbom: &Sbom, now_us: i64) -> Result<SbomImportStats, StoreError>;
    /// Every stored SBOM, whole, by key.
    fn sboms(&self) -> Result<Vec<Sbom>, StoreError>;
    /// Stores OpenEoX statements by key ([`EoxStatement::key`]): a new key is inserted, a later
    /// `last_updated` replaces the stored statement, the same one is left as it is. An earlier
    /// one is refused, and then nothing of the call is stored (`refused` says why).
    fn import_eox(
        &mut self,
        statements: &[EoxStatement],
        now_us: i64,
    ) -> Result<EoxImportStats, StoreError>;
    /// Every stored OpenEoX statement, by key.
    fn eox_statements(&self) -> Result<Vec<EoxStatement>, StoreError>;
    /// Stores a new console session.
    fn session_insert(&mut self, s: &ConsoleSession) -> Result<(), StoreError>;
    /// The session whose secret hashes to `id_sha256` if it is within `limits` at `now_us`,
    /// its use recorded (to within a minute, or a quarter of the idle limit: most calls only
    /// read); `None` if it is unknown or has ended. Expired sessions are deleted when it writes.
    fn session_use(
        &mut self,
        id_sha256: &str,
        now_us: i64,
        limits: SessionLimits,
    ) -> Result<Option<ConsoleSession>, StoreError>;
    /// Ends a session (sign-out); false if there was none.
    fn session_end(&mut self, id_sha256: &str) -> Result<bool, StoreError>;
    /// Open flags by kind, of the flags these vendors see (the same subjects as
    /// [`Store::flag_page`] with `vendors`).
    fn open_flag_counts(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// Flags opened and resolved per UTC day from `since_us` to `until_us` (at most a year),
    /// of the flags these vendors see (the same subjects as [`Store::flag_page`] with
    /// `vendors`); days with neither are left out.
    fn flag_timeline(
        &self,
        vendors: Option<&[String]>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<FlagDay>, StoreError>;

    /// Takes or renews the lease `name` (the evaluator's) for `holder` until `now_us + ttl_us`;
    /// whether `holder` has it. A lease expired is taken over: its holder died or stalled.
    /// SQLite: one collector per file, so always granted.
    fn try_lease(
        &mut self,
        _name: &str,
        _holder: &str,
        _ttl_us: i64,
        _now_us: i64,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Numbers about every collector sharing this database (`ward_cluster_*`), when the
    /// backend is shared (PostgreSQL); `None` for SQLite.
    fn cluster(&self) -> Result<Option<ClusterStats>, StoreError> {
        Ok(None)
    }
    /// A number that moves whenever any collector sharing the database stored new messages
    /// (PostgreSQL); `None` where one collector is the only writer (SQLite), whose own ingest
    /// tells its evaluator.
    fn ingest_clock(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }
}

/// A boxed store is a store (what `open_store` returns passes wherever a store goes).
impl<S: Store + ?Sized> Store for Box<S> {
    fn ingest(&mut self, batch: &[Message], received_us: i64) -> Result<IngestStats, StoreError> {
        (**self).ingest(batch, received_us)
    }
    fn import_contracts(
        &mut self,
        contracts: &[Contract],
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        (**self).import_contracts(contracts, source, now_us)
    }
    fn import_assets(
        &mut self,
        assets: &[Asset],
        replace: bool,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        (**self).import_assets(assets, replace, source, now_us)
    }
    fn inventory(&self) -> Result<Inventory, StoreError> {
        (**self).inventory()
    }
    fn apply_evaluated(&mut self, e: &Evaluated<'_>) -> Result<Applied, StoreError> {
        (**self).apply_evaluated(e)
    }
    fn changed_devices(&self, max: usize) -> Result<Changes, StoreError> {
        (**self).changed_devices(max)
    }
    fn last_change(&self) -> Result<i64, StoreError> {
        (**self).last_change()
    }
    fn devices_by_id(&self, ids: &[i64]) -> Result<Vec<DeviceView>, StoreError> {
        (**self).devices_by_id(ids)
    }
    fn device_ids_after(&self, after: i64, max: usize) -> Result<Vec<i64>, StoreError> {
        (**self).device_ids_after(after, max)
    }
    fn links_of(&self, ids: &[i64]) -> Result<Vec<Link>, StoreError> {
        (**self).links_of(ids)
    }
    fn linked_elsewhere(
        &self,
        exclude: &[i64],
        assets: &[String],
        contracts: &[String],
    ) -> Result<LinkedElsewhere, StoreError> {
        (**self).linked_elsewhere(exclude, assets, contracts)
    }
    fn imports_version(&self) -> Result<Vec<i64>, StoreError> {
        (**self).imports_version()
    }
    fn flags(&self, open_only: bool) -> Result<Vec<FlagRow>, StoreError> {
        (**self).flags(open_only)
    }
    fn links(&self) -> Result<Vec<Link>, StoreError> {
        (**self).links()
    }
    fn merges(&self) -> Result<Vec<MergeRow>, StoreError> {
        (**self).merges()
    }
    fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        (**self).agents()
    }
    fn counts(&self) -> Result<Counts, StoreError> {
        (**self).counts()
    }
    fn inventory_contracts(&self) -> Result<Vec<Contract>, StoreError> {
        (**self).inventory_contracts()
    }
    fn inventory_assets(&self) -> Result<Vec<Asset>, StoreError> {
        (**self).inventory_assets()
    }
    fn write_summaries(&mut self, rows: &[DeviceSummary]) -> Result<u64, StoreError> {
        (**self).write_summaries(rows)
    }
    fn device_page(&self, q: &DeviceQuery) -> Result<(u64, Vec<DeviceSummary>), StoreError> {
        (**self).device_page(q)
    }
    fn device_summaries(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<DeviceSummary>, StoreError> {
        (**self).device_summaries(vendors)
    }
    fn coverage(&self, vendors: Option<&[String]>) -> Result<Coverage, StoreError> {
        (**self).coverage(vendors)
    }
    fn asset_links(&self, vendors: Option<&[String]>) -> Result<Vec<AssetLinkRow>, StoreError> {
        (**self).asset_links(vendors)
    }
    fn device_summary(&self, id: i64) -> Result<Option<DeviceSummary>, StoreError> {
        (**self).device_summary(id)
    }
    fn device(&self, id: i64) -> Result<Option<DeviceView>, StoreError> {
        (**self).device(id)
    }
    fn flag_page(&self, q: &FlagQuery) -> Result<(u64, Vec<FlagRow>), StoreError> {
        (**self).flag_page(q)
    }
    fn take_alerts(&mut self, max: usize) -> Result<Applied, StoreError> {
        (**self).take_alerts(max)
    }
    fn confirm_alerts(&mut self, done: &[(i64, i64)]) -> Result<(), StoreError> {
        (**self).confirm_alerts(done)
    }
    fn undelivered_alerts(&mut self, after: i64, max: usize) -> Result<Applied, StoreError> {
        (**self).undelivered_alerts(after, max)
    }
    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        (**self).token_insert(t)
    }
    fn token_get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        (**self).token_get(id)
    }
    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).token_list()
    }
    fn token_revoke(&mut self, id: &str, now_us: i64) -> Result<bool, StoreError> {
        (**self).token_revoke(id, now_us)
    }
    fn import_advisories(
        &mut self,
        advisories: &[Advisory],
        now_us: i64,
    ) -> Result<AdvisoryImportStats, StoreError> {
        (**self).import_advisories(advisories, now_us)
    }
    fn advisories(&self) -> Result<Vec<Advisory>, StoreError> {
        (**self).advisories()
    }
    fn import_kev(
        &mut self,
        catalog: &KevCatalog,
        source: &str,
        now_us: i64,
    ) -> Result<ImportStats, StoreError> {
        (**self).import_kev(catalog, source, now_us)
    }
    fn kev(&self) -> Result<Option<KevCatalog>, StoreError> {
        (**self).kev()
    }
    fn import_sbom(&mut self, sbom: &Sbom, now_us: i64) -> Result<SbomImportStats, StoreError> {
        (**self).import_sbom(sbom, now_us)
    }
    fn sboms(&self) -> Result<Vec<Sbom>, StoreError> {
        (**self).sboms()
    }
    fn import_eox(
        &mut self,
        statements: &[EoxStatement],
        now_us: i64,
    ) -> Result<EoxImportStats, StoreError> {
        (**self).import_eox(statements, now_us)
    }
    fn eox_statements(&self) -> Result<Vec<EoxStatement>, StoreError> {
        (**self).eox_statements()
    }
    fn try_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_us: i64,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        (**self).try_lease(name, holder, ttl_us, now_us)
    }
    fn cluster(&self) -> Result<Option<ClusterStats>, StoreError> {
        (**self).cluster()
    }
    fn ingest_clock(&self) -> Result<Option<i64>, StoreError> {
        (**self).ingest_clock()
    }
    fn session_insert(&mut self, s: &ConsoleSession) -> Result<(), StoreError> {
        (**self).session_insert(s)
    }
    fn session_use(
        &mut self,
        id_sha256: &str,
        now_us: i64,
        limits: SessionLimits,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        (**self).session_use(id_sha256, now_us, limits)
    }
    fn session_end(&mut self, id_sha256: &str) -> Result<bool, StoreError> {
        (**self).session_end(id_sha256)
    }
    fn open_flag_counts(
        &self,
        vendors: Option<&[String]>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        (**self).open_flag_counts(vendors)
    }
    fn flag_timeline(
        &self,
        vendors: Option<&[String]>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Vec<FlagDay>, StoreError> {
        (**self).flag_timeline(vendors, since_us, until_us)
    }
}

/// Numbers about the whole cluster, read from the shared database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStats {
    /// Devices (not merged away).
    pub devices: i64,
    /// Observation messages stored.
    pub messages: i64,
    /// Open flags.
    pub open_flags: i64,
    /// Flags whose alert no collector has claimed yet.
    pub unalerted_flags: i64,
    /// Flags whose alert was claimed and not yet confirmed delivered (in a collector's queue,
    /// or lost with it and waiting for the next holder of the evaluator's lease).
    pub undelivered_flags: i64,
    /// Collectors' database sessions.
    pub sessions: i64,
    /// Leases: `(name, holder, live)`.
    pub leases: Vec<(String, String, bool)>,
}

/// Opens the store `db` names: a `postgres://` or `postgresql://` URL is PostgreSQL, anything
/// else a SQLite file path.
pub fn open_store(db: &str) -> Result<Box<dyn Store>, StoreError> {
    if postgres::is_url(db) {
        Ok(Box::new(postgres::PostgresStore::open(db)?))
    } else {
        Ok(Box::new(sqlite::SqliteStore::open(std::path::Path::new(
            db,
        ))?))
    }
}

/// How `db` is shown in logs and errors: a URL without its password.
pub fn display_db(db: &str) -> String {
    postgres::redacted(db)
}

/// What an OpenEoX import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EoxImportStats {
    /// Statements not stored before.
    pub inserted: u64,
    /// Stored statements replaced by ones updated later.
    pub replaced: u64,
    /// Statements already stored with the same `last_updated`.
    pub unchanged: u64,
    /// Statements older than the stored ones: when not empty, nothing was stored.
    pub refused: Vec<String>,
}

/// What an SBOM import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SbomImportStats {
    /// Not stored before.
    pub inserted: u64,
    /// Replaced the stored BOM of the same serial number (same or newer version).
    pub replaced: u64,
    /// Components stored.
    pub components: u64,
    /// Why nothing was stored, when refused.
    pub refused: Option<String>,
}

/// What an advisory import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdvisoryImportStats {
    /// Advisories not stored before.
    pub inserted: u64,
    /// Stored revisions replaced by newer ones.
    pub replaced: u64,
    /// Revisions already stored (same `tracking.version`).
    pub unchanged: u64,
    /// Revisions refused: when not empty, nothing was stored.
    pub refused: Vec<RefusedRevision>,
}

/// A revision older than (or not orderable against) the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedRevision {
    /// The advisory.
    pub id: String,
    /// The file offered.
    pub file: String,
    /// Its `tracking.version`.
    pub version: String,
    /// The stored `tracking.version`.
    pub stored_version: String,
    /// Where the stored revision came from.
    pub stored_source: String,
    /// The versions cannot be ordered (rather than the offered one being older).
    pub not_comparable: bool,
}

impl std::fmt::Display for RefusedRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = if self.not_comparable {
            "cannot be ordered against"
        } else {
            "is older than"
        };
        write!(
            f,
            "{}: advisory {:?} tracking.version {:?} {why} the stored revision {:?} (from {}); \
             an older revision never replaces a newer one",
            self.file, self.id, self.version, self.stored_version, self.stored_source
        )
    }
}
