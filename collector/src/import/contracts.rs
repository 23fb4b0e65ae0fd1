//! Contract import: YAML, JSON or CSV files of MC2 contract terms, validated into [`Contract`]s.
//!
//! Contract files are written by hand (procurement, clinical engineering), so every error names
//! the file, line and column to fix and the contract it belongs to. Deserialisation runs on
//! loosely typed "raw" structs so that syntax, type and unknown-field errors keep serde's own
//! location; the checks that need a value's meaning (dates, ports, networks, coverage,
//! duplicates) run afterwards and find their place again with a probe parse ([`Probe`]).
//! `docs/contracts.md` is the user-facing schema.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::Path;

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::import::files::{csv_error, csv_reader, read_text, MAX_REPORTED};
pub use crate::import::files::{ImportError, Record};
use crate::import::model::{
    Contract, Direction, NoticeMonths, PatchSla, PermittedService, ProductPattern, RemoteAccess,
    RemoteAccessPolicy, Transport,
};
use crate::import::pattern::Pattern;

/// Contract file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.yaml`, `.yml`.
    Yaml,
    /// `.json`.
    Json,
    /// `.csv`: one contract per row.
    Csv,
}

impl Format {
    /// The format a file name's extension (case-insensitive) says.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Reads and validates a contract file; the format comes from the extension.
pub fn load(path: &Path) -> Result<Vec<Contract>, ImportError> {
    let file = path.display().to_string();
    let format = Format::from_path(path).ok_or_else(|| {
        ImportError::new(
            &file,
            "unsupported file type: contracts are read from .yaml, .yml, .json or .csv files",
        )
    })?;
    let text = read_text(path, &file)?;
    parse_str(&text, format, &file)
}

/// Parses and validates contract text; `file_name` is used in error messages only.
pub fn parse_str(
    text: &str,
    format: Format,
    file_name: &str,
) -> Result<Vec<Contract>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let src = Source {
        text,
        format,
        file: file_name,
    };
    let (raws, mut problems) = match format {
        Format::Yaml => {
            if let Some((line, column)) = yaml_too_deep(text, MAX_YAML_DEPTH) {
                let message = format!(
                    "nested more than {MAX_YAML_DEPTH} levels deep (mappings and lists inside \
                     each other); a contract file needs fewer than ten"
                );
                return Err(ImportError::new(file_name, message).at(Some(line), Some(column)));
            }
            let doc = serde_yaml_ng::from_str(text).map_err(|e| src.yaml_error(e))?;
            src.entries(doc)
        }
        Format::Json => {
            let doc = serde_json::from_str(text).map_err(|e| src.json_error(e))?;
            src.entries(doc)
        }
        Format::Csv => parse_csv(text, file_name)?,
    };

    let mut contracts = Vec::with_capacity(raws.len());
    let mut first_seen: HashMap<String, Origin> = HashMap::new();
    for (raw, origin) in raws {
        let mut found = Vec::new();
        let contract = convert(raw, &mut found);
        if !contract.id.is_empty() {
            if let Some(prev) = first_seen.get(&contract.id) {
                let (line, _) = src.locate(*prev, &[Seg::Key("id")]);
                let other = line.map_or_else(String::new, |l| format!(" (line {l})"));
                found.push(Problem::new(
                    vec![Seg::Key("id")],
                    format!("duplicate contract id: also the id of an earlier contract{other}"),
                ));
            } else {
                first_seen.insert(contract.id.clone(), origin);
            }
        }
        let record = (!contract.id.is_empty()).then(|| Record::Contract(contract.id.clone()));
        problems.extend(found.into_iter().map(|p| Located {
            origin,
            message: p.to_string(),
            path: p.path,
            record: record.clone(),
        }));
        contracts.push(contract);
    }
    if problems.is_empty() {
        return Ok(contracts);
    }
    let total = problems.len();
    let errors = problems
        .into_iter()
        .take(MAX_REPORTED)
        .map(|p| {
            let (line, column) = src.locate(p.origin, &p.path);
            ImportError::new(file_name, p.message)
                .at(line, column)
                .about(p.record)
        })
        .collect();
    Err(ImportError::collect(errors, total)
        .unwrap_or_else(|| ImportError::new(file_name, "invalid")))
}

// ---------------------------------------------------------------------------------------------
// Raw structs: what the file says, before its meaning is checked.

/// Containers default field by field: a missing key means "not given", and a missing `id` or
/// `supplier` is reported by the same check as an empty one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with a `contracts` list")]
struct RawFile {
    version: Option<u64>,
    contracts: Vec<RawContract>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a contract (a mapping with id, supplier, ...)"
)]
struct RawContract {
    id: String,
    supplier: String,
    products: Vec<StrOr<RawProduct>>,
    serials: Vec<String>,
    asset_tags: Vec<String>,
    quantity: Option<u64>,
    sites: Vec<String>,
    vlans: Vec<u64>,
    start: Option<String>,
    end: Option<String>,
    end_of_support: Option<String>,
    end_of_guaranteed_support: Option<String>,
    end_of_life: Option<String>,
    notice_months: RawNotice,
    supported_software_versions: Vec<String>,
    patch_sla_days: RawSla,
    permitted_services: Vec<StrOr<RawService>>,
    remote_access: Option<StrOr<RawRemote>>,
    encryption_in_transit_required: bool,
    external_communication_permitted: bool,
    mds2: Option<String>,
    sbom: Option<String>,
    notes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of notice periods in months"
)]
struct RawNotice {
    end_of_life: Option<u32>,
    end_of_guaranteed_support: Option<u32>,
    end_of_support: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of patch deadlines in days"
)]
struct RawSla {
    critical: Option<u32>,
    high: Option<u32>,
    medium: Option<u32>,
    low: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a product (a mapping with model and optionally manufacturer)"
)]
struct RawProduct {
    manufacturer: Option<String>,
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a service (a mapping with transport, port, ...)"
)]
struct RawService {
    protocol: Option<String>,
    transport: String,
    port: u64,
    direction: Option<String>,
    #[serde(default)]
    peers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a remote-access mapping with policy and gateways"
)]
struct RawRemote {
    policy: String,
    #[serde(default)]
    gateways: Vec<String>,
}

/// A compact string or the full mapping. Hand-written rather than `#[serde(untagged)]`, whose
/// "data did not match any variant" would hide the real error (an unknown field inside the
/// mapping, say) and its location.
#[derive(Debug)]
enum StrOr<T> {
    Str(String),
    Obj(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrOr::Str(v.to_owned()))
            }
            // A bare model number (`- 8015`) is a string to people.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(StrOr::Str(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Obj)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// Meaning: raw values to the model, collecting every problem.

/// A step from a node to a child: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

use Seg::{Index as I, Key as K};

/// A problem at a path relative to its contract entry.
#[derive(Debug)]
struct Problem {
    path: Vec<Seg>,
    message: String,
}

impl Problem {
    fn new(path: Vec<Seg>, message: String) -> Problem {
        Problem { path, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) if path.is_empty() => path.push_str(k),
                Seg::Key(k) => path.push_str(&format!(".{k}")),
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

fn path(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    base.iter().chain(more).copied().collect()
}

/// Converts one entry; the contract is returned even when `out` gained problems (callers
/// discard it then) so that all problems of all entries are found in one pass.
fn convert(raw: RawContract, out: &mut Vec<Problem>) -> Contract {
    let id = required("id", raw.id, out);
    let supplier = required("supplier", raw.supplier, out);

    let mut products = Vec::new();
    for (i, p) in raw.products.into_iter().enumerate() {
        let at = [K("products"), I(i)];
        let (manufacturer, model, model_at) = match p {
            StrOr::Str(model) => (None, model, at.to_vec()),
            StrOr::Obj(p) => (p.manufacturer, p.model, path(&at, &[K("model")])),
        };
        let manufacturer = manufacturer.map(|m| glob(path(&at, &[K("manufacturer")]), m, out));
        let model = glob(model_at, model, out);
        products.push(ProductPattern {
            manufacturer,
            model,
        });
    }
    let serials = list("serials", raw.serials, out);
    let asset_tags = list("asset_tags", raw.asset_tags, out);
    let sites = list("sites", raw.sites, out);

    let quantity = raw.quantity.and_then(|q| match u32::try_from(q) {
        Ok(q) if q > 0 => Some(q),
        _ => {
            let why = "must be a number of devices from 1 to 4294967295";
            out.push(Problem::new(vec![K("quantity")], format!("{q} {why}")));
            None
        }
    });
    let mut vlans = Vec::new();
    for (i, v) in raw.vlans.into_iter().enumerate() {
        match u16::try_from(v) {
            Ok(v) if (1..=4094).contains(&v) => vlans.push(v),
            _ => out.push(Problem::new(
                vec![K("vlans"), I(i)],
                format!("VLAN {v} is out of range (1-4094)"),
            )),
        }
    }

    let start = date("start", raw.start, out);
    let end = date("end", raw.end, out);
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            out.push(Problem::new(
                vec![K("end")],
                format!("contract ends ({e}) before it starts ({s})"),
            ));
        }
    }
    let end_of_support = date("end_of_support", raw.end_of_support, out);
    let end_of_guaranteed_support = date(
        "end_of_guaranteed_support",
        raw.end_of_guaranteed_support,
        out,
    );
    let end_of_life = date("end_of_life", raw.end_of_life, out);

    let supported_software_versions = raw
        .supported_software_versions
        .into_iter()
        .enumerate()
        .map(|(i, v)| glob(vec![K("supported_software_versions"), I(i)], v, out))
        .collect();

    let mut permitted_services = Vec::new();
    for (i, s) in raw.permitted_services.into_iter().enumerate() {
        let at = [K("permitted_services"), I(i)];
        let service = match s {
            StrOr::Str(text) => compact_service(&text).map_err(|why| {
                out.push(Problem::new(
                    at.to_vec(),
                    format!("{:?}: {why}", text.trim()),
                ));
            }),
            StrOr::Obj(s) => service_object(&at, s, out),
        };
        if let Ok(service) = service {
            permitted_services.push(service);
        }
    }

    if products.is_empty() && serials.is_empty() && asset_tags.is_empty() {
        out.push(Problem::new(
            Vec::new(),
            "covers no devices: give at least one of products, serials or asset_tags".into(),
        ));
    }

    Contract {
        id,
        supplier,
        products,
        serials,
        asset_tags,
        quantity,
        sites,
        vlans,
        start,
        end,
        end_of_support,
        end_of_guaranteed_support,
        end_of_life,
        notice_months: NoticeMonths {
            end_of_life: raw.notice_months.end_of_life,
            end_of_guaranteed_support: raw.notice_months.end_of_guaranteed_support,
            end_of_support: raw.notice_months.end_of_support,
        },
        supported_software_versions,
        patch_sla_days: PatchSla {
            critical: raw.patch_sla_days.critical,
            high: raw.patch_sla_days.high,
            medium: raw.patch_sla_days.medium,
            low: raw.patch_sla_days.low,
        },
        permitted_services,
        remote_access: remote_access(raw.remote_access, out),
        encryption_in_transit_required: raw.encryption_in_transit_required,
        external_communication_permitted: raw.external_communication_permitted,
        mds2: optional(raw.mds2),
        sbom: optional(raw.sbom),
        notes: optional(raw.notes),
    }
}

fn required(field: &'static str, v: String, out: &mut Vec<Problem>) -> String {
    let v = v.trim().to_owned();
    if v.is_empty() {
        out.push(Problem::new(vec![K(field)], "missing or empty".into()));
    }
    v
}

fn optional(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn list(field: &'static str, items: Vec<String>, out: &mut Vec<Problem>) -> Vec<String> {
    let mut kept = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let item = item.trim();
        if item.is_empty() {
            out.push(Problem::new(vec![K(field), I(i)], "empty entry".into()));
        } else {
            kept.push(item.to_owned());
        }
    }
    kept
}

/// Checked by compiling it so that a pattern the linker would refuse is refused here, where the
/// user can see where it came from.
fn glob(at: Vec<Seg>, v: String, out: &mut Vec<Problem>) -> String {
    let v = v.trim().to_owned();
    if let Err(e) = Pattern::new(&v) {
        out.push(Problem::new(at, e.to_string()));
    }
    v
}

fn date(field: &'static str, v: Option<String>, out: &mut Vec<Problem>) -> Option<NaiveDate> {
    let v = optional(v)?;
    let parsed = parse_date(&v);
    if parsed.is_none() {
        out.push(Problem::new(
            vec![K(field)],
            format!("{v:?} is not a date (expected YYYY-MM-DD)"),
        ));
    }
    parsed
}

/// Strict ISO 8601 calendar date: chrono's `%Y-%m-%d` alone would also take `2025-1-5` and
/// `+2025-01-05`, which are more likely typos than intent.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        s.get(r)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()
    };
    if s.len() != 10 || s.get(4..5) != Some("-") || s.get(7..8) != Some("-") {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

/// A bare address is the network of just that host (/32 or /128).
fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn net_error(s: &str) -> String {
    format!(
        "{:?} is not an IP address or network (e.g. 10.1.2.3 or 10.0.0.0/8)",
        s.trim()
    )
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(Transport::Tcp),
        "udp" => Ok(Transport::Udp),
        _ => Err(format!(
            "{:?} is not a transport (expected tcp or udp)",
            s.trim()
        )),
    }
}

fn parse_port(n: u64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {n} is not a valid port (1-65535)")),
    }
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        "both" => Ok(Direction::Both),
        _ => Err(format!(
            "{:?} is not a direction (expected inbound, outbound or both)",
            s.trim()
        )),
    }
}

/// `[protocol] transport/port [inbound|outbound|both] [peer,peer...]`, e.g.
/// `hl7 tcp/2575 outbound 10.0.0.0/8,10.1.2.3`.
fn compact_service(text: &str) -> Result<PermittedService, String> {
    let mut tokens = text.split_whitespace().peekable();
    let first = tokens.next().ok_or("empty service")?;
    let (protocol, tp) = if first.contains('/') {
        (None, first)
    } else {
        let tp = tokens
            .next()
            .ok_or("missing TRANSPORT/PORT after the protocol (e.g. dicom tcp/104)")?;
        (Some(first.to_owned()), tp)
    };
    let (transport, port) = tp
        .split_once('/')
        .ok_or_else(|| format!("{tp:?} is not TRANSPORT/PORT (e.g. tcp/104)"))?;
    let transport = parse_transport(transport)?;
    let port = port
        .parse::<u64>()
        .map_err(|_| format!("{port:?} is not a port number"))
        .and_then(parse_port)?;
    // Peers always contain '.', ':' or '/', so a word here is a direction (or a misspelt one).
    let mut direction = Direction::Both;
    if let Some(t) = tokens.next_if(|t| !t.contains(['.', ':', '/', ','])) {
        direction = parse_direction(t)?;
    }
    let mut peers = Vec::new();
    for p in tokens.flat_map(|t| t.split(',')).filter(|p| !p.is_empty()) {
        peers.push(parse_net(p).ok_or_else(|| net_error(p))?);
    }
    Ok(PermittedService {
        protocol,
        transport,
        port,
        direction,
        peers,
    })
}

fn service_object(
    at: &[Seg],
    s: RawService,
    out: &mut Vec<Problem>,
) -> Result<PermittedService, ()> {
    let before = out.len();
    let mut fail = |field: &'static str, why: String| {
        out.push(Problem::new(path(at, &[K(field)]), why));
    };
    let transport = parse_transport(&s.transport).map_err(|e| fail("transport", e));
    let port = parse_port(s.port).map_err(|e| fail("port", e));
    let direction = s
        .direction
        .as_deref()
        .map_or(Ok(Direction::Both), parse_direction)
        .map_err(|e| fail("direction", e));
    let mut peers = Vec::new();
    for (i, p) in s.peers.iter().enumerate() {
        match parse_net(p) {
            Some(n) => peers.push(n),
            None => out.push(Problem::new(path(at, &[K("peers"), I(i)]), net_error(p))),
        }
    }
    match (transport, port, direction) {
        (Ok(transport), Ok(port), Ok(direction)) if out.len() == before => Ok(PermittedService {
            protocol: optional(s.protocol),
            transport,
            port,
            direction,
            peers,
        }),
        _ => Err(()),
    }
}

fn remote_access(raw: Option<StrOr<RawRemote>>, out: &mut Vec<Problem>) -> RemoteAccess {
    let (policy, gateways, policy_at) = match raw {
        None => return RemoteAccess::default(),
        Some(StrOr::Str(p)) => (p, Vec::new(), vec![K("remote_access")]),
        Some(StrOr::Obj(r)) => (r.policy, r.gateways, vec![K("remote_access"), K("policy")]),
    };
    let policy = match policy.trim().to_ascii_lowercase().as_str() {
        "none" => Some(RemoteAccessPolicy::None),
        "listed" => Some(RemoteAccessPolicy::Listed),
        "unrestricted" => Some(RemoteAccessPolicy::Unrestricted),
        _ => {
            out.push(Problem::new(
                policy_at,
                format!(
                    "{:?} is not a remote-access policy (expected none, listed or unrestricted)",
                    policy.trim()
                ),
            ));
            None
        }
    };
    let mut nets = Vec::new();
    for (i, g) in gateways.iter().enumerate() {
        match parse_net(g) {
            Some(n) => nets.push(n),
            None => out.push(Problem::new(
                vec![K("remote_access"), K("gateways"), I(i)],
                net_error(g),
            )),
        }
    }
    match policy {
        Some(RemoteAccessPolicy::Listed) if gateways.is_empty() => out.push(Problem::new(
            vec![K("remote_access")],
            "policy listed needs at least one gateway".into(),
        )),
        Some(RemoteAccessPolicy::None | RemoteAccessPolicy::Unrestricted)
            if !gateways.is_empty() =>
        {
            out.push(Problem::new(
                vec![K("remote_access"), K("gateways")],
                "gateways are only allowed with policy listed".into(),
            ))
        }
        _ => {}
    }
    RemoteAccess {
        policy: policy.unwrap_or(RemoteAccessPolicy::Unrestricted),
        gateways: nets,
    }
}

// ---------------------------------------------------------------------------------------------
// Finding places again (YAML, JSON).

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The document itself (top-level keys).
    Document,
    /// `contracts[i]` of a YAML or JSON document.
    Entry(usize),
    /// A CSV row starting on this line.
    Line(usize),
}

/// A problem waiting to be located.
#[derive(Debug)]
struct Located {
    origin: Origin,
    path: Vec<Seg>,
    record: Option<Record>,
    message: String,
}

#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    text: &'a str,
    format: Format,
    file: &'a str,
}

type Entries = (Vec<(RawContract, Origin)>, Vec<Located>);

impl Source<'_> {
    fn entries(&self, doc: RawFile) -> Entries {
        let mut problems = Vec::new();
        if let Some(v) = doc.version.filter(|v| *v != 1) {
            problems.push(Located {
                origin: Origin::Document,
                path: vec![K("version")],
                record: None,
                message: format!("version: {v} is not supported (this ward reads version 1)"),
            });
        }
        let entries = doc
            .contracts
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, Origin::Entry(i)))
            .collect();
        (entries, problems)
    }

    /// Line and column of `path` under `origin`, falling back to the entry itself.
    fn locate(&self, origin: Origin, rel: &[Seg]) -> (Option<usize>, Option<usize>) {
        let base: Vec<Seg> = match origin {
            Origin::Line(line) => return (Some(line), None),
            Origin::Document => Vec::new(),
            Origin::Entry(i) => vec![K("contracts"), I(i)],
        };
        self.probe(&path(&base, rel))
            .or_else(|| self.probe(&base))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)))
    }

    fn probe(&self, path: &[Seg]) -> Option<(usize, usize)> {
        match self.format {
            Format::Yaml => {
                let de = serde_yaml_ng::Deserializer::from_str(self.text);
                let err = Probe(path).deserialize(de).err()?;
                probe_width(&err.to_string())?;
                let loc = err.location()?;
                Some((loc.line(), loc.column()))
            }
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(self.text);
                let err = Probe(path).deserialize(&mut de).err()?;
                let width = probe_width(&err.to_string())?;
                // serde_json reports the last byte it consumed: the end of a scalar or key, or
                // (width 0) the whitespace before the next token after `{`/`[`.
                let col = if width == 0 {
                    err.column() + 1
                } else {
                    (err.column() + 1).saturating_sub(width).max(1)
                };
                Some((err.line(), col))
            }
            Format::Csv => None,
        }
    }

    fn yaml_error(&self, e: serde_yaml_ng::Error) -> ImportError {
        let loc = e.location().map(|l| (l.line(), l.column()));
        self.deserialize_error(e.to_string(), loc)
    }

    fn json_error(&self, e: serde_json::Error) -> ImportError {
        let loc = (e.line() > 0).then(|| (e.line(), e.column()));
        self.deserialize_error(e.to_string(), loc)
    }

    fn deserialize_error(&self, message: String, loc: Option<(usize, usize)>) -> ImportError {
        let Some((line, column)) = loc else {
            return ImportError::new(self.file, message);
        };
        let message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
        // serde_yaml_ng prefixes the path (`contracts[3].end: ...`); the record says which entry.
        let message = match message.strip_prefix("contracts[") {
            Some(rest) => rest
                .split_once(']')
                .map(|(_, r)| r.trim_start_matches(['.', ':', ' ']).to_owned())
                .unwrap_or(message),
            None => message,
        };
        let record = self.entry_ids().and_then(|ids| {
            let i = self.entry_containing(ids.len(), (line, column))?;
            ids.into_iter().nth(i).flatten().map(Record::Contract)
        });
        ImportError::new(self.file, message)
            .at(Some(line), Some(column))
            .about(record)
    }

    /// Ids of the entries, read leniently so that they are known even when the entry is not
    /// a valid contract.
    fn entry_ids(&self) -> Option<Vec<Option<String>>> {
        match self.format {
            Format::Yaml => {
                let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(self.text).ok()?;
                let entries = doc.get("contracts")?.as_sequence()?;
                Some(
                    entries
                        .iter()
                        .map(|e| match e.get("id")? {
                            serde_yaml_ng::Value::String(s) => Some(s.clone()),
                            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect(),
                )
            }
            Format::Json => {
                let doc: serde_json::Value = serde_json::from_str(self.text).ok()?;
                let entries = doc.get("contracts")?.as_array()?;
                Some(
                    entries
                        .iter()
                        .map(|e| e.get("id")?.as_str().map(str::to_owned))
                        .collect(),
                )
            }
            Format::Csv => None,
        }
    }

    /// The last entry starting at or before `pos` (binary search: entries are in file order).
    fn entry_containing(&self, n: usize, pos: (usize, usize)) -> Option<usize> {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.probe(&[K("contracts"), I(mid)]) {
                Some(start) if start <= pos => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
    }
}

const PROBE: &str = "\u{1}ward-probe:";

fn probe_error<E: de::Error>(width: usize) -> E {
    E::custom(format!("{PROBE}{width}"))
}

fn probe_width(message: &str) -> Option<usize> {
    let at = message.find(PROBE)?;
    let rest = message.get(at + PROBE.len()..)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Walks a path through a document and fails on arrival, so that the parser's own error
/// location says where the node is. Neither serde_json nor serde_yaml_ng hands out spans, and
/// this runs only to report problems in small files, so re-parsing is the simpler price.
#[derive(Debug, Clone, Copy)]
struct Probe<'p>(&'p [Seg]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => d.deserialize_any(Arrive),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Index(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the probed path")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((&Seg::Key(key), rest)) = self.0.split_first() else {
            return Ok(());
        };
        let seed = KeyProbe {
            key,
            arrive: rest.is_empty(),
        };
        while let Some(found) = map.next_key_seed(seed)? {
            if found {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((&Seg::Index(index), rest)) = self.0.split_first() else {
            return Ok(());
        };
        for _ in 0..index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe(rest)).map(|_| ())
    }
}

/// Recognises the wanted key; when the path ends at it, fails there (a key is a better place
/// to point at than its value, which may be a long block).
#[derive(Debug, Clone, Copy)]
struct KeyProbe {
    key: &'static str,
    arrive: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.key, self.arrive) {
            (true, true) => Err(probe_error(v.len() + 2)),
            (found, _) => Ok(found),
        }
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Fails at whatever node it is given; the width lets the JSON side find the node's start.
#[derive(Debug, Clone, Copy)]
struct Arrive;

impl<'de> Visitor<'de> for Arrive {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(probe_error(v.to_string().len()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(probe_error(v.to_string().len()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(probe_error(v.to_string().len()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(probe_error(v.to_string().len()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let width = serde_json::to_string(v).map_or(v.len() + 2, |s| s.len());
        Err(probe_error(width))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(probe_error(4))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(probe_error(4))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(probe_error(0))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(probe_error(0))
    }
}

// ---------------------------------------------------------------------------------------------
// CSV.

/// Header names: the YAML keys, nested ones flattened with `_` (`.` is accepted too).
const CSV_COLUMNS: [&str; 29] = [
    "id",
    "supplier",
    "products",
    "serials",
    "asset_tags",
    "quantity",
    "sites",
    "vlans",
    "start",
    "end",
    "end_of_support",
    "end_of_guaranteed_support",
    "end_of_life",
    "notice_months_end_of_life",
    "notice_months_end_of_guaranteed_support",
    "notice_months_end_of_support",
    "supported_software_versions",
    "patch_sla_days_critical",
    "patch_sla_days_high",
    "patch_sla_days_medium",
    "patch_sla_days_low",
    "permitted_services",
    "remote_access",
    "remote_access_gateways",
    "encryption_in_transit_required",
    "external_communication_permitted",
    "mds2",
    "sbom",
    "notes",
];

fn parse_csv(text: &str, file: &str) -> Result<Entries, ImportError> {
    let mut reader = csv_reader(text, file)?;
    let headers = reader.headers().map_err(|e| csv_error(file, &e))?.clone();
    let header_line = Some(headers.position().map_or(1, |p| p.line() as usize));
    let mut columns: Vec<&'static str> = Vec::new();
    for h in &headers {
        let norm = h.trim().to_ascii_lowercase().replace('.', "_");
        let Some(&name) = CSV_COLUMNS.iter().find(|c| **c == norm) else {
            return Err(ImportError::new(
                file,
                format!(
                    "unknown column {:?} (known columns: {})",
                    h.trim(),
                    CSV_COLUMNS.join(", ")
                ),
            )
            .at(header_line, None));
        };
        if columns.contains(&name) {
            let msg = format!("column {:?} appears twice", h.trim());
            return Err(ImportError::new(file, msg).at(header_line, None));
        }
        columns.push(name);
    }
    for needed in ["id", "supplier"] {
        if !columns.contains(&needed) {
            let msg = format!("no {needed:?} column");
            return Err(ImportError::new(file, msg).at(header_line, None));
        }
    }

    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(file, &e))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let mut raw = RawContract::default();
        let mut remote = (None, Vec::new());
        let mut row_problems = Vec::new();
        for (name, cell) in columns.iter().zip(&record) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            if let Err(why) = csv_cell(&mut raw, &mut remote, name, cell) {
                row_problems.push(format!("{name}: {why}"));
            }
        }
        raw.remote_access = match remote {
            (None, gateways) if gateways.is_empty() => None,
            (Some(policy), gateways) if gateways.is_empty() => Some(StrOr::Str(policy)),
            (policy, gateways) => Some(StrOr::Obj(RawRemote {
                policy: policy.unwrap_or_default(),
                gateways,
            })),
        };
        let id = raw.id.trim();
        let record = (!id.is_empty()).then(|| Record::Contract(id.to_owned()));
        problems.extend(row_problems.into_iter().map(|message| Located {
            origin: Origin::Line(line),
            path: Vec::new(),
            record: record.clone(),
            message,
        }));
        entries.push((raw, Origin::Line(line)));
    }
    Ok((entries, problems))
}

fn csv_cell(
    raw: &mut RawContract,
    remote: &mut (Option<String>, Vec<String>),
    name: &str,
    cell: &str,
) -> Result<(), String> {
    let items = || -> Vec<String> { split_list(cell).map(str::to_owned).collect() };
    let text = || Some(cell.to_owned());
    match name {
        "id" => raw.id = cell.to_owned(),
        "supplier" => raw.supplier = cell.to_owned(),
        "products" => {
            raw.products = split_list(cell)
                .map(|p| match p.split_once('|') {
                    Some((m, model)) => StrOr::Obj(RawProduct {
                        manufacturer: Some(m.trim().to_owned()),
                        model: model.trim().to_owned(),
                    }),
                    None => StrOr::Str(p.to_owned()),
                })
                .collect()
        }
        "serials" => raw.serials = items(),
        "asset_tags" => raw.asset_tags = items(),
        "quantity" => raw.quantity = Some(number(cell)?),
        "sites" => raw.sites = items(),
        "vlans" => raw.vlans = split_list(cell).map(number).collect::<Result<_, _>>()?,
        "start" => raw.start = text(),
        "end" => raw.end = text(),
        "end_of_support" => raw.end_of_support = text(),
        "end_of_guaranteed_support" => raw.end_of_guaranteed_support = text(),
        "end_of_life" => raw.end_of_life = text(),
        "notice_months_end_of_life" => raw.notice_months.end_of_life = Some(number(cell)?),
        "notice_months_end_of_guaranteed_support" => {
            raw.notice_months.end_of_guaranteed_support = Some(number(cell)?)
        }
        "notice_months_end_of_support" => raw.notice_months.end_of_support = Some(number(cell)?),
        "supported_software_versions" => raw.supported_software_versions = items(),
        "patch_sla_days_critical" => raw.patch_sla_days.critical = Some(number(cell)?),
        "patch_sla_days_high" => raw.patch_sla_days.high = Some(number(cell)?),
        "patch_sla_days_medium" => raw.patch_sla_days.medium = Some(number(cell)?),
        "patch_sla_days_low" => raw.patch_sla_days.low = Some(number(cell)?),
        "permitted_services" => {
            raw.permitted_services = split_list(cell).map(|s| StrOr::Str(s.to_owned())).collect()
        }
        "remote_access" => remote.0 = text(),
        "remote_access_gateways" => remote.1 = items(),
        "encryption_in_transit_required" => raw.encryption_in_transit_required = boolean(cell)?,
        "external_communication_permitted" => raw.external_communication_permitted = boolean(cell)?,
        "mds2" => raw.mds2 = text(),
        "sbom" => raw.sbom = text(),
        "notes" => raw.notes = text(),
        _ => return Err("unknown column".into()),
    }
    Ok(())
}

/// `;`-separated list items; a trailing `;` is forgiven.
fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';').map(str::trim).filter(|s| !s.is_empty())
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{:?} is not a whole number", s.trim()))
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!(
            "{:?} is not a boolean (expected true/false, yes/no or 1/0)",
            s.trim()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// YAML nesting depth.

/// The deepest nesting of collections (mappings and sequences, block or flow) a contract YAML
/// file may have. A contract needs about six; libyaml (under serde_yaml_ng) spends time
/// quadratic in the depth, so 200 000 nested `[` took minutes before this limit.
pub const MAX_YAML_DEPTH: usize = 64;

/// Where a YAML document first nests collections deeper than `limit`, as (line, column), found
/// in one pass before any parser sees the text.
///
/// The scan follows libyaml's rules closely enough to know what is structure:
///
/// - block collections are a stack of (column, kind) of the open ones: a line pops what it is
///   not indented under, a sequence at its parent key's column nests one level deeper, and
///   compact nodes later on a line (`- - x`, `- key: x`, `? x`) are pushed at their own columns
///   so that the lines under them nest below them;
/// - open flow collections (`[`, `{`) add to the depth of the place they open at;
/// - quoted scalars (also over several lines), block scalars (`|`, `>`: the lines indented
///   under their node, as libyaml detects the indentation), comments, and plain scalars
///   (`[` or `{` inside plain text in block context, continuation lines of a multi-line plain
///   scalar, `:` inside a plain scalar in flow context) are text.
///
/// Where it is unsure the scan counts a level more, never less, and the stack never holds more
/// than `limit` entries. (Checked by hand, not in CI, against PyYAML's composed depth on 2000
/// generated documents: never less, at most one more.)
fn yaml_too_deep(text: &str, limit: usize) -> Option<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Seq,
        Map,
    }
    /// The lines a block scalar takes.
    #[derive(Clone, Copy)]
    enum BlockScalar {
        /// Until its first line of text: lines indented more than its node's column.
        Under(usize),
        /// Then: lines indented at least as much as its first line of text.
        From(usize),
    }
    // Open block collections: (column, kind).
    let mut stack: Vec<(usize, Kind)> = Vec::new();
    // Open flow collections, the depth they started at, and the column of the outermost.
    let (mut flow, mut flow_base, mut flow_col) = (0usize, 0usize, 0usize);
    // Inside a quoted scalar (which may span lines).
    let mut quote: Option<u8> = None;
    let mut block_scalar: Option<BlockScalar> = None;
    // In flow context: at the start of a token (where a quote opens a quoted scalar).
    let mut flow_token_start = true;
    // In flow context: just after a quoted scalar or a collection, where `:` is a value
    // indicator even without a space after it (`{"a":1}`).
    let mut flow_json = false;
    // A plain scalar in block context ran to the end of the previous line: lines indented
    // under the innermost block collection continue it.
    let mut plain_open = false;

    for (n, raw) in text.split('\n').enumerate() {
        let b = raw.strip_suffix('\r').unwrap_or(raw).as_bytes();
        // 1-based column in characters; only computed when reporting.
        let at = |i: usize| -> usize {
            b.get(..i)
                .map_or(i, |p| p.iter().filter(|&&c| c & 0xC0 != 0x80).count())
                + 1
        };
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        let empty = b
            .get(indent..)
            .is_none_or(|rest| rest.iter().all(|&c| c == b' ' || c == b'\t'));
        if let Some(bs) = block_scalar {
            let text = match bs {
                BlockScalar::Under(col) => indent > col,
                BlockScalar::From(col) => indent >= col,
            };
            if empty || text {
                if let (BlockScalar::Under(_), false) = (bs, empty) {
                    block_scalar = Some(BlockScalar::From(indent));
                }
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        // Whether the token being read is the line's first (the stack already holds its node).
        let mut first = false;
        // Whether the scalar just read was the line's first token: a `:` after it is a key of
        // the mapping the stack already holds.
        let mut key_first = false;
        // Column of the innermost node begun on this line: a block scalar's text must be
        // indented more, and a key opens its mapping there.
        let mut node_col = indent;
        // In block context: at a token start, and inside a plain scalar.
        let mut token_start = true;
        let mut in_plain = false;
        if quote.is_none() && flow == 0 {
            if empty {
                continue;
            }
            if b.get(indent) == Some(&b'#') || b.first() == Some(&b'%') {
                // A comment line (which also ends a plain scalar) or a directive.
                plain_open = false;
                continue;
            }
            let marker = |m: &[u8]| b.starts_with(m) && b.get(3).is_none_or(|&c| c == b' ');
            let innermost = stack.last().map(|&(col, _)| col);
            if marker(b"---") || marker(b"...") {
                // A new document; what follows on the line is counted from zero.
                stack.clear();
                i = 3;
            } else if plain_open && innermost.is_none_or(|col| indent > col) {
                // The plain scalar of the line before goes on: this line is text.
                i = indent;
                token_start = false;
                in_plain = true;
            } else {
                let dash =
                    b.get(indent) == Some(&b'-') && b.get(indent + 1).is_none_or(|&c| c == b' ');
                let kind = if dash { Kind::Seq } else { Kind::Map };
                while let Some(&(col, k)) = stack.last() {
                    if col > indent || (col == indent && k == Kind::Seq && kind == Kind::Map) {
                        stack.pop();
                    } else {
                        break;
                    }
                }
                if stack.last() != Some(&(indent, kind)) {
                    if stack.len() >= limit {
                        return Some((n + 1, at(indent)));
                    }
                    stack.push((indent, kind));
                }
                i = indent;
                first = true;
            }
        }
        while let Some(&c) = b.get(i) {
            if let Some(q) = quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    quote = None;
                    flow_token_start = false;
                    flow_json = true;
                    token_start = false;
                }
                i += 1;
                continue;
            }
            let after_space = i == 0 || matches!(b.get(i - 1), Some(b' ' | b'\t'));
            let indicator = b.get(i + 1).is_none_or(|&c| c == b' ' || c == b'\t');
            if flow > 0 {
                match c {
                    b'[' | b'{' => {
                        if flow_base + flow >= limit {
                            return Some((n + 1, at(i)));
                        }
                        flow += 1;
                        flow_token_start = true;
                        flow_json = false;
                    }
                    b']' | b'}' => {
                        flow -= 1;
                        flow_token_start = false;
                        flow_json = true;
                        // Back in block context after a flow node: a `:` would make it a key.
                        token_start = false;
                        key_first = false;
                        node_col = flow_col;
                    }
                    b',' => {
                        flow_token_start = true;
                        flow_json = false;
                    }
                    b':' | b'?' if indicator || (c == b':' && flow_json) => {
                        flow_token_start = true;
                        flow_json = false;
                    }
                    b'"' | b'\'' if flow_token_start => quote = Some(c),
                    b'#' if after_space => break,
                    b' ' | b'\t' => {}
                    _ => {
                        flow_token_start = false;
                        flow_json = false;
                    }
                }
                i += 1;
                continue;
            }
            // A block collection begun at `col` later on this line than its first token.
            let mut open = |col: usize, kind: Kind| -> bool {
                if stack.len() >= limit {
                    return false;
                }
                stack.push((col, kind));
                true
            };
            match c {
                b' ' | b'\t' => {}
                b'#' if after_space => {
                    in_plain = false;
                    break;
                }
                b'-' | b'?' if token_start && indicator => {
                    let kind = if c == b'-' { Kind::Seq } else { Kind::Map };
                    if !first && !open(i, kind) {
                        return Some((n + 1, at(i)));
                    }
                    first = false;
                    node_col = i;
                }
                b':' if indicator => {
                    // A key ends here; unless it was the line's first token, it opens a mapping
                    // at its own column (`- key: x`).
                    if !token_start && !key_first && !open(node_col, Kind::Map) {
                        return Some((n + 1, at(node_col)));
                    }
                    key_first = true;
                    token_start = true;
                    in_plain = false;
                }
                b'[' | b'{' if token_start => {
                    if stack.len() >= limit {
                        return Some((n + 1, at(i)));
                    }
                    flow = 1;
                    flow_base = stack.len();
                    flow_col = i;
                    flow_token_start = true;
                    flow_json = false;
                    first = false;
                }
                b'"' | b'\'' if token_start => {
                    quote = Some(c);
                    node_col = i;
                    key_first = first;
                    first = false;
                }
                b'|' | b'>' if token_start => {
                    block_scalar = Some(BlockScalar::Under(node_col));
                    break;
                }
                b'&' | b'!' if token_start => {
                    // Anchor or tag: a node's properties, the node follows.
                    while b.get(i + 1).is_some_and(|&c| c != b' ' && c != b'\t') {
                        i += 1;
                    }
                }
                _ if token_start => {
                    // A plain scalar (or alias) begins: it may turn out to be a key.
                    token_start = false;
                    in_plain = true;
                    node_col = i;
                    key_first = first;
                    first = false;
                }
                _ => {}
            }
            i += 1;
        }
        plain_open = in_plain && quote.is_none() && flow == 0 && block_scalar.is_none();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/contracts")
            .join(name)
    }

    fn ok(text: &str, format: Format) -> Vec<Contract> {
        parse_str(text, format, "t").unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str, format: Format) -> ImportError {
        match parse_str(text, format, "t") {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e,
        }
    }

    const MINIMAL: &str = "contracts:\n  - id: C-1\n    supplier: Acme\n    products: [X*]\n";

    #[test]
    fn yaml_json_and_csv_forms_are_equal() {
        let yaml = load(&data("good.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let json = load(&data("good.json")).unwrap_or_else(|e| panic!("{e}"));
        let csv = load(&data("good.csv")).unwrap_or_else(|e| panic!("{e}"));
        assert!(yaml.len() >= 4);
        assert_eq!(yaml, json);
        assert_eq!(yaml, csv);
    }

    #[test]
    fn good_yaml_values() {
        let all = load(&data("good.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let ct = &all[0];
        assert_eq!(ct.id, "C-1001");
        assert_eq!(ct.products[0].manufacturer.as_deref(), Some("Siemens*"));
        assert_eq!(ct.start, NaiveDate::from_ymd_opt(2023, 1, 1));
        assert_eq!(ct.notice_months.end_of_support, Some(36));
        assert_eq!(ct.patch_sla_days.critical, Some(30));
        assert_eq!(ct.vlans, vec![110, 111]);
        let dicom = &ct.permitted_services[0];
        assert_eq!(dicom.protocol.as_deref(), Some("dicom"));
        assert_eq!((dicom.transport, dicom.port), (Transport::Tcp, 104));
        assert_eq!(dicom.direction, Direction::Inbound);
        assert_eq!(ct.remote_access.policy, RemoteAccessPolicy::Listed);
        assert_eq!(ct.remote_access.gateways[1].to_string(), "198.51.100.7/32");
        assert!(ct.encryption_in_transit_required);
        assert!(all
            .iter()
            .any(|c| c.remote_access.policy == RemoteAccessPolicy::None));
    }

    #[test]
    fn defaults() {
        let c = &ok(MINIMAL, Format::Yaml)[0];
        assert!(!c.encryption_in_transit_required && !c.external_communication_permitted);
        assert_eq!(c.remote_access, RemoteAccess::default());
        assert!(c.permitted_services.is_empty() && c.vlans.is_empty() && c.serials.is_empty());
        assert_eq!(c.products[0].manufacturer, None);
        let v1 = format!("version: 1\n{MINIMAL}");
        assert_eq!(ok(&v1, Format::Yaml), ok(MINIMAL, Format::Yaml));
        assert!(ok("contracts: []", Format::Yaml).is_empty());
    }

    #[test]
    fn compact_services() {
        let s = compact_service("hl7 tcp/2575 outbound 10.0.0.0/8,10.1.2.3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.protocol.as_deref(), Some("hl7"));
        assert_eq!(
            (s.transport, s.port, s.direction),
            (Transport::Tcp, 2575, Direction::Outbound)
        );
        assert_eq!(s.peers.len(), 2);
        assert_eq!(s.peers[1].to_string(), "10.1.2.3/32");
        let s = compact_service("UDP/123").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.protocol, s.transport, s.port, s.direction),
            (None, Transport::Udp, 123, Direction::Both)
        );
        let s = compact_service("tcp/443 10.0.0.0/8, fd00::/8").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.direction, s.peers.len()), (Direction::Both, 2));
        for (bad, why) in [
            ("", "empty"),
            ("dicom", "missing TRANSPORT/PORT"),
            ("dicom 104", "not TRANSPORT/PORT"),
            ("sctp/1", "not a transport"),
            ("tcp/0", "port 0"),
            ("tcp/70000", "port 70000"),
            ("tcp/x", "not a port number"),
            ("tcp/1 sideways", "not a direction"),
            ("tcp/1 inbound 10.0.0.0/33", "not an IP address or network"),
        ] {
            match compact_service(bad) {
                Ok(s) => panic!("{bad:?} accepted: {s:?}"),
                Err(e) => assert!(e.contains(why), "{bad:?}: {e}"),
            }
        }
    }

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2023-02-29",
            "2024-2-01",
            "+2024-01-01",
            "2024/01/01",
            "20240101",
            "2024-01-1x",
            "2024-13-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn yaml_error_points_at_the_field_and_names_the_contract() {
        let text = "contracts:\n  - id: C-1\n    supplier: Acme\n    products: [X*]\n  - id: C-1002\n    supplier: Acme\n    products: [Y]\n    end_of_support: \"2026-13-01\"\n";
        let e = err(text, Format::Yaml);
        assert_eq!(
            e.to_string(),
            "t:8:5: contract \"C-1002\": end_of_support: \"2026-13-01\" is not a date (expected YYYY-MM-DD)"
        );
    }

    #[test]
    fn json_error_points_at_the_field() {
        let text = "{\"contracts\": [\n  {\"id\": \"C-1\", \"supplier\": \"Acme\", \"products\": [\"X\"]},\n  {\"id\": \"C-2\", \"supplier\": \"Acme\", \"products\": [\"X\"],\n   \"vlans\": [10, 5000]}\n]}\n";
        let e = err(text, Format::Json);
        assert_eq!(
            e.to_string(),
            "t:4:18: contract \"C-2\": vlans[1]: VLAN 5000 is out of range (1-4094)"
        );
        let text = "{\"contracts\": [\n  {\"id\": \"C-1\", \"supplier\": \"Acme\", \"products\": [\"X\"]},\n  {\"id\": \"C-2\", \"supplier\": \"Acme\", \"products\": [\"X\"],\n   \"end\": \"2020-01-01\", \"start\": \"2021-01-01\"}\n]}\n";
        let e = err(text, Format::Json);
        assert_eq!((e.line, e.column), (Some(4), Some(4)), "{e}");
        assert!(e.message.contains("before it starts"), "{e}");
    }

    #[test]
    fn serde_errors_keep_their_place_and_find_the_contract() {
        let text = format!(
            "{MINIMAL}  - id: C-2\n    supplier: Acme\n    products: [X]\n    colour: red\n"
        );
        let e = err(&text, Format::Yaml);
        assert_eq!((e.line, e.column), (Some(8), Some(5)));
        assert_eq!(e.record, Some(Record::Contract("C-2".into())));
        assert!(e.message.starts_with("unknown field `colour`"), "{e}");
        let e = err(
            "{\"contracts\": [{\"id\": \"C-9\", \"supplier\": 5}]}",
            Format::Json,
        );
        assert_eq!(e.record, Some(Record::Contract("C-9".into())), "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn all_problems_are_reported_in_file_order() {
        let text = "contracts:\n  - id: C-1\n    supplier: \"\"\n    products: [X*]\n    vlans: [0]\n  - id: C-1\n    supplier: Acme\n";
        let e = err(text, Format::Yaml);
        let lines: Vec<_> = e.problems().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(3), Some(5), Some(6), Some(6)], "{e}");
        let text = e.to_string();
        assert!(text.contains("t:6:5: contract \"C-1\": id: duplicate contract id: also the id of an earlier contract (line 2)"), "{text}");
        assert!(text.contains("covers no devices"), "{text}");
    }

    #[test]
    fn csv_headers_and_cells() {
        let text = "ID,Supplier,Products,notice_months.end_of_support,Patch_SLA_Days_High,remote_access_gateways\nC-1,Acme,\"Acme|X*;Y\",24,7,10.0.0.1\n";
        let e = err(text, Format::Csv);
        assert!(
            e.to_string()
                .starts_with("t:2: contract \"C-1\": remote_access.policy"),
            "{e}"
        );
        let text = "id;supplier;products;encryption_in_transit_required\nC-1;Acme;X;yes\n";
        assert!(ok(text, Format::Csv)[0].encryption_in_transit_required);
        let e = err("id,supplier,colour\n", Format::Csv);
        assert!(
            e.to_string().starts_with("t:1: unknown column \"colour\""),
            "{e}"
        );
        let e = err(
            "id,supplier,products,quantity\nC-1,Acme,X,many\n",
            Format::Csv,
        );
        assert_eq!(
            e.to_string(),
            "t:2: contract \"C-1\": quantity: \"many\" is not a whole number"
        );
    }

    #[test]
    fn csv_quotes_follow_rfc_4180() {
        // The quote opened on line 3 is never closed: read leniently, the rest of the file
        // would become that one field and line 4's contract would silently vanish.
        let text = "id,supplier,products,notes\nC-1,Acme,X,ok\nC-2,Acme,Y,\"never closed\nC-3,Acme,Z,gone\n";
        let e = err(text, Format::Csv);
        assert_eq!((e.line, e.column), (Some(3), Some(12)), "{e}");
        assert!(e.message.starts_with("unterminated quote"), "{e}");
        // The line is where the quote opened, not where the row or the file ends.
        let text = "id,supplier,products,notes\nC-1,Acme,X,\"two\nlines\"\nC-2,Acme,Y,\"open\n\n\n";
        let e = err(text, Format::Csv);
        assert_eq!((e.line, e.column), (Some(4), Some(12)), "{e}");
        // The file ends inside a quoted field (no final line break).
        let e = err("id,supplier,products\nC-1,Acme,\"X", Format::Csv);
        assert_eq!((e.line, e.column), (Some(2), Some(10)), "{e}");
        assert!(e.message.starts_with("unterminated quote"), "{e}");
        // A quote inside an unquoted field.
        let e = err("id,supplier,products\nC-1,Acme,24\" X\n", Format::Csv);
        assert_eq!((e.line, e.column), (Some(2), Some(12)), "{e}");
        assert!(e.message.starts_with("stray quote"), "{e}");
        // Text after a closing quote (also a space before the delimiter).
        let e = err("id,supplier,products\nC-1,Acme,\"X\" Gen2\n", Format::Csv);
        assert_eq!((e.line, e.column), (Some(2), Some(13)), "{e}");
        assert!(e.message.starts_with("text after the closing quote"), "{e}");
        // A quote after leading spaces is a stray quote too: a lenient reader would split
        // "Acme, Inc" at its comma.
        let e = err("id,supplier,products\nC-1, \"Acme, Inc\",X\n", Format::Csv);
        assert_eq!((e.line, e.column), (Some(2), Some(6)), "{e}");
        // Multi-byte characters count as one column.
        let e = err("id,supplier,products\nC-1,Dräger,\"X\n", Format::Csv);
        assert_eq!((e.line, e.column), (Some(2), Some(12)), "{e}");
        // What RFC 4180 allows still imports: doubled quotes, delimiters and line breaks inside
        // quotes, CRLF, empty quoted fields, `;` exports.
        let got = ok(
            "id,supplier,products,notes,mds2\r\nC-1,\"Acme, Inc\",\"24\"\" X\",\"a\r\nb\",\"\"\r\n",
            Format::Csv,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].supplier, "Acme, Inc");
        assert_eq!(got[0].products[0].model, "24\" X");
        assert_eq!(got[0].notes.as_deref(), Some("a\r\nb"));
        let got = ok("id;supplier;products\nC-1;\"Acme; Inc\";X\n", Format::Csv);
        assert_eq!(got[0].supplier, "Acme; Inc");
    }

    /// A YAML document nested `n` levels deep in flow style, block style, ...
    fn deep(n: usize) -> Vec<(&'static str, String)> {
        let mut indented = String::from("contracts:\n");
        let mut mixed = String::from("contracts:\n");
        for i in 0..n.min(1500) {
            // Block nesting costs indentation, so its size grows with the square of the depth.
            indented.push_str(&" ".repeat(i + 1));
            indented.push_str("a:\n");
            // A sequence may sit at its parent key's indentation: two levels per step.
            mixed.push_str(&" ".repeat(2 * (i / 2)));
            mixed.push_str(if i % 2 == 0 { "- a:\n" } else { "  b:\n" });
        }
        vec![
            (
                "flow sequences",
                format!("contracts: {}{}\n", "[".repeat(n), "]".repeat(n)),
            ),
            (
                "flow mappings",
                format!("contracts: {}x{}\n", "{a: ".repeat(n), "}".repeat(n)),
            ),
            (
                "compact sequences",
                format!("contracts:\n  {}x\n", "- ".repeat(n)),
            ),
            (
                "compact keys",
                format!("contracts:\n  {}x\n", "? ".repeat(n)),
            ),
            (
                "compact mappings",
                format!("contracts:\n  {}x\n", "- a: ".repeat(n)),
            ),
            ("indented mappings", indented),
            ("mixed", mixed),
            // Places where a scan that mistook text for structure, or structure for text,
            // would miss the nesting: a quote at the start of a plain scalar's continuation
            // line is text, so is `:'` inside a flow plain scalar, and a block scalar ends at
            // the first line indented less than its text.
            (
                "after a plain continuation",
                format!(
                    "contracts: b\n  'c\nx: {}{}\n",
                    "[".repeat(n),
                    "]".repeat(n)
                ),
            ),
            (
                "after a flow plain scalar with a colon",
                format!("contracts: [a:'b, {}{}]\n", "[".repeat(n), "]".repeat(n)),
            ),
            (
                "after a block scalar",
                format!(
                    "contracts: |\n      text\nx: {}{}\n",
                    "[".repeat(n),
                    "]".repeat(n)
                ),
            ),
        ]
    }

    #[test]
    fn deeply_nested_yaml_is_refused_before_parsing() {
        for (shape, text) in deep(200_000) {
            let e = err(&text, Format::Yaml);
            assert!(
                e.message.starts_with("nested more than 64 levels deep"),
                "{shape}: {e}"
            );
            assert!(e.line.is_some(), "{shape}: {e}");
        }
        let e = err(&deep(200_000)[0].1, Format::Yaml);
        assert_eq!((e.line, e.column), (Some(1), Some(75)), "{e}");
        // Under the limit the pre-scan says nothing (the shapes are no contracts, but that is
        // for the parser to say).
        for (shape, text) in deep(20) {
            assert_eq!(yaml_too_deep(&text, MAX_YAML_DEPTH), None, "{shape}");
        }
    }

    #[test]
    fn yaml_nesting_ignores_scalars_and_comments() {
        let b = "[{".repeat(100);
        let text = format!(
            "# {b}\ncontracts: # {b}\n  - id: C-1\n    supplier: \"{b} \\\" {b}\"\n    products: ['{b}', \"{b}\", it's]\n    notes: |\n      {b}\n\n      {b}\n    mds2: a{b} # {b}\n    sbom: >-\n      {b}\n        {b}\n    serials:\n      - '{b} '' {b}'\n      - \"multi\n        line {b}\"\n"
        );
        let c = ok(&text, Format::Yaml);
        assert_eq!(c[0].products.len(), 3, "{:?}", c[0].products);
        assert_eq!(c[0].notes.as_deref(), Some(format!("{b}\n\n{b}").as_str()));
        assert_eq!(c[0].serials.len(), 2);
        let good = std::fs::read_to_string(data("good.yaml")).unwrap_or_default();
        assert!(ok(&good, Format::Yaml).len() >= 4);
    }

    #[test]
    fn yaml_depth_is_counted_per_level() {
        let flow = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        // The mapping is one level, each `[` one more.
        assert_eq!(yaml_too_deep(&flow(9), 10), None);
        assert_eq!(yaml_too_deep(&flow(10), 10), Some((1, 13)));
        let block = |n: usize| format!("a:\n  {}x\n", "- ".repeat(n));
        assert_eq!(yaml_too_deep(&block(9), 10), None);
        assert_eq!(yaml_too_deep(&block(10), 10), Some((2, 21)));
        // Back out of the nesting, the depth is what it was.
        let text = format!("{}b:\n  c: [[x]]\n", block(9));
        assert_eq!(yaml_too_deep(&text, 10), None);
    }

    #[test]
    fn load_refuses_unknown_extensions() {
        let e = load(Path::new("contracts.txt"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("unsupported file type")));
    }

    proptest::proptest! {
        // Each case re-parses whole files (and probes on error): 64 cases keep `cargo test` quick.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged files are refused, never a panic: splice junk into the good files.
        #[test]
        fn damaged_files_never_panic(at in 0usize..6000, cut in 0usize..8, junk in "\\PC{0,8}") {
            for (name, format) in [("good.yaml", Format::Yaml), ("good.json", Format::Json), ("good.csv", Format::Csv)] {
                let text = std::fs::read_to_string(data(name)).unwrap_or_default();
                let damaged = crate::import::testing::splice(&text, at, cut, &junk);
                if let Err(e) = parse_str(&damaged, format, name) {
                    proptest::prop_assert!(e.to_string().starts_with(name));
                }
            }
        }
    }

    /// Every bad file fails, naming itself and a line, with the expected complaint.
    #[test]
    fn bad_files() {
        let expected: &[(&str, &str)] = &[
            ("bad-unknown-field.yaml", "unknown field `warranty`"),
            ("bad-date.yaml", "\"2026-13-01\" is not a date"),
            ("bad-duplicate-id.yaml", "duplicate contract id"),
            ("bad-end-before-start.yaml", "before it starts"),
            ("bad-port.yaml", "port 0 is not a valid port"),
            (
                "bad-cidr.yaml",
                "\"10.20.0.0/33\" is not an IP address or network",
            ),
            ("bad-direction.yaml", "\"sideways\" is not a direction"),
            (
                "bad-remote-policy.yaml",
                "\"vpn-only\" is not a remote-access policy",
            ),
            ("bad-syntax.yaml", "did not find expected"),
            ("bad-wrong-type.yaml", "invalid type"),
            ("bad-empty-id.yaml", "id: missing or empty"),
            ("bad-no-coverage.yaml", "covers no devices"),
            ("bad-vlan.yaml", "VLAN 5000 is out of range"),
            ("bad-empty-pattern.yaml", "empty pattern"),
            ("bad-quantity.yaml", "quantity: 0 must be"),
            ("bad-version.yaml", "version: 2 is not supported"),
            ("bad-unknown-field.json", "unknown field `colour`"),
            ("bad-date.json", "\"2025-02-30\" is not a date"),
            ("bad-syntax.json", "expected"),
            (
                "bad-wrong-type.json",
                "invalid type: string \"eight\", expected u64",
            ),
            ("bad-duplicate-id.json", "duplicate contract id"),
            ("bad-header.csv", "unknown column \"warranty_end\""),
            ("bad-date.csv", "\"31/12/2027\" is not a date"),
            ("bad-service.csv", "\"sctp\" is not a transport"),
            ("bad-boolean.csv", "\"maybe\" is not a boolean"),
            ("bad-empty-id.csv", "id: missing or empty"),
            (
                "bad-row-length.csv",
                "row has 4 fields but the header has 5",
            ),
            (
                "bad-unterminated-quote.csv",
                "bad-unterminated-quote.csv:3:34: unterminated quote",
            ),
            (
                "bad-eof-in-quote.csv",
                "bad-eof-in-quote.csv:3:26: unterminated quote",
            ),
            (
                "bad-stray-quote.csv",
                "bad-stray-quote.csv:3:31: stray quote",
            ),
            (
                "bad-text-after-quote.csv",
                "bad-text-after-quote.csv:3:27: text after the closing quote",
            ),
            (
                "bad-deep-flow.yaml",
                "bad-deep-flow.yaml:5:76: nested more than 64 levels deep",
            ),
            ("bad-deep-block.yaml", "bad-deep-block.yaml:6:"),
        ];
        let dir = data("");
        let mut seen = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !name.starts_with("bad-") {
                continue;
            }
            seen += 1;
            let e = match load(&path) {
                Ok(c) => panic!("{name} accepted: {c:?}"),
                Err(e) => e,
            };
            let text = e.to_string();
            assert!(text.contains(&name), "{name}: {text}");
            assert!(
                e.line
                    .is_some_and(|l| text.contains(&format!("{name}:{l}"))),
                "{name}: {text}"
            );
            let want = expected.iter().find(|(n, _)| *n == name).map(|(_, w)| *w);
            let want = want.unwrap_or_else(|| panic!("{name}: add it to the expectation table"));
            assert!(text.contains(want), "{name}: want {want:?} in {text}");
            if name.ends_with(".yaml") {
                let body = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    body.starts_with('#'),
                    "{name}: say what is wrong in a leading comment"
                );
            }
        }
        assert_eq!(seen, expected.len());
    }
}
