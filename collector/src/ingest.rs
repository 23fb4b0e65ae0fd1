//! From MQTT payloads to stored inventory: decoding (with the checks a hostile or confused agent
//! needs), batching, and the link + flag evaluation that follows.
//!
//! Everything an agent sends is untrusted. [`decode`] (a delivery from the broker) and
//! [`replay_files`] (JSON lines, `ward-collector ingest`) are the ways in, and both check the
//! topic, parse, check the schema and that the payload's site and agent are the topic's, then
//! bound every field ([`check_observation`], [`check_status`]): envelope problems refuse the
//! whole message ([`Reason`]); a value out of bounds inside an accepted message is cut, replaced
//! or dropped, and counted ([`Adjustments`]). The limits are documented in
//! `docs/schema/observation-v1.md` ("What a collector accepts").
//!
//! No message text ever reaches an error or a log line: [`DecodeError`] holds only static text
//! and numbers (serde's messages quote their input, so only its category and position are
//! kept), and a topic is logged through [`SafeText`] (escaped, bounded).

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use ward_mqtt::topic::{AgentTopic, Kind};
use ward_protocols::schema::observation::{
    DeviceRecord, Observation, Seen, ServiceRecord, DEVICE_TYPES, SCHEMA,
};
use ward_protocols::schema::status::{StatusMessage, STATUS_SCHEMA};

use crate::store::{Adjustments, IngestStats, Message, Rejections, Store};

/// Longest message read: an MQTT payload (the broker has its own, smaller, limit) or a line of a
/// replayed file. Longer lines are skipped without being held in memory.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Site, agent id and instance: 1 to this many characters of `[A-Za-z0-9._-]`.
pub const MAX_ID_CHARS: usize = 64;
/// A device key: 1 to this many printable ASCII characters, no space.
pub const MAX_KEY_CHARS: usize = 128;
/// Names (manufacturer, model, software version, OUI vendor, rule ids and files), in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Fact values and the values rule matches quote, in characters.
pub const MAX_VALUE_CHARS: usize = 1024;
/// Status `version` and `reason`, in characters.
pub const MAX_STATUS_TEXT_CHARS: usize = 64;
/// Open-vocabulary tokens (address `source`): 1 to this many of `[a-z0-9_.-]`.
pub const MAX_TOKEN_CHARS: usize = 32;
/// Device records in one observation message.
pub const MAX_DEVICES: usize = 10_000;
/// Addresses per device.
pub const MAX_ADDRESSES: usize = 64;
/// Facts per device.
pub const MAX_FACTS: usize = 512;
/// Services per device and direction.
pub const MAX_SERVICES: usize = 256;
/// Peer addresses per service.
pub const MAX_PEERS: usize = 256;
/// Rule matches per classification.
pub const MAX_MATCHES: usize = 64;
/// Evidence lines per role, and rules per classification candidate.
pub const MAX_ROLE_EVIDENCE: usize = 16;
/// Highest valid VLAN id (4095 is reserved).
pub const MAX_VLAN: u16 = 4094;
/// Latest valid time, µs since the epoch: 9999-12-31T23:59:59.999999Z. Times are never negative.
pub const MAX_TIME_US: i64 = 253_402_300_799_999_999;
/// Longest rendering of a topic in a log line, in characters (escapes included).
pub const MAX_LOGGED_CHARS: usize = 256;

/// Why a message was refused whole: a fixed, short reason, the label of its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The topic is not `ward/v1/<site>/<agent-id>/devices|status` with valid ids.
    Topic,
    /// Longer than [`MAX_MESSAGE_BYTES`].
    TooLong,
    /// Not JSON (or not UTF-8).
    JsonSyntax,
    /// JSON, but not the schema's shape.
    JsonShape,
    /// `schema` names no schema this collector reads.
    UnknownSchema,
    /// The payload's site is not the topic's.
    SiteMismatch,
    /// The payload's agent id is not the topic's.
    AgentMismatch,
    /// A field outside its bounds.
    InvalidField,
}

impl Reason {
    /// Every reason, in the order of their counters.
    pub const ALL: [Reason; 8] = [
        Reason::Topic,
        Reason::TooLong,
        Reason::JsonSyntax,
        Reason::JsonShape,
        Reason::UnknownSchema,
        Reason::SiteMismatch,
        Reason::AgentMismatch,
        Reason::InvalidField,
    ];

    /// The counter label (`/metrics`, `ingest` output, log lines).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Topic => "topic",
            Reason::TooLong => "too_long",
            Reason::JsonSyntax => "json_syntax",
            Reason::JsonShape => "json_shape",
            Reason::UnknownSchema => "unknown_schema",
            Reason::SiteMismatch => "site_mismatch",
            Reason::AgentMismatch => "agent_mismatch",
            Reason::InvalidField => "invalid_field",
        }
    }

    fn count(self, r: &mut Rejections) {
        let c = match self {
            Reason::Topic => &mut r.topic,
            Reason::TooLong => &mut r.too_long,
            Reason::JsonSyntax => &mut r.json_syntax,
            Reason::JsonShape => &mut r.json_shape,
            Reason::UnknownSchema => &mut r.unknown_schema,
            Reason::SiteMismatch => &mut r.site_mismatch,
            Reason::AgentMismatch => &mut r.agent_mismatch,
            Reason::InvalidField => &mut r.invalid_field,
        };
        *c += 1;
    }
}

/// Why a message was not ingested. Such messages are logged, counted and acknowledged: a
/// message that can never be stored must not block the ones behind it.
///
/// Every variant holds static text and numbers only, so neither `Display` nor `Debug` can ever
/// carry message content into a log line or an error, whoever prints it. The topic is not part
/// of the error: log it with [`SafeText`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not `ward/v1/<site>/<agent>/<devices|status>`, or a level is not a valid id.
    #[error("topic is not ward/v1/<site>/<agent-id>/devices|status with ids of 1-64 characters of [A-Za-z0-9._-]")]
    Topic,
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {bytes} bytes is longer than the limit of {limit} bytes")]
    TooLong {
        /// Its length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON: where the parser stopped (its message is not kept: it quotes the input).
    #[error("invalid JSON at line {line} column {column}")]
    Json {
        /// Line, from 1.
        line: usize,
        /// Column (byte), from 1.
        column: usize,
    },
    /// JSON, but a field is missing, of the wrong type or has an unknown value.
    #[error("JSON at line {line} column {column} does not fit {schema} (missing field, wrong type or unknown value)")]
    Shape {
        /// The schema expected.
        schema: &'static str,
        /// Line, from 1.
        line: usize,
        /// Column (byte), from 1.
        column: usize,
    },
    /// `schema` is not the one this topic (or any) carries.
    #[error("unknown schema")]
    UnknownSchema,
    /// The payload names another site than its topic: refused, so one agent's credentials
    /// cannot write another site's inventory.
    #[error("payload site differs from topic")]
    SiteMismatch,
    /// The payload names another agent than its topic.
    #[error("payload agent_id differs from topic")]
    AgentMismatch,
    /// A field outside its bounds.
    #[error("{field}: {problem}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl DecodeError {
    /// The reason, for counters.
    pub fn reason(&self) -> Reason {
        match self {
            DecodeError::Topic => Reason::Topic,
            DecodeError::TooLong { .. } => Reason::TooLong,
            DecodeError::Json { .. } => Reason::JsonSyntax,
            DecodeError::Shape { .. } => Reason::JsonShape,
            DecodeError::UnknownSchema => Reason::UnknownSchema,
            DecodeError::SiteMismatch => Reason::SiteMismatch,
            DecodeError::AgentMismatch => Reason::AgentMismatch,
            DecodeError::Invalid { .. } => Reason::InvalidField,
        }
    }
}

fn json_error(e: &serde_json::Error, schema: &'static str) -> DecodeError {
    match e.classify() {
        serde_json::error::Category::Data => DecodeError::Shape {
            schema,
            line: e.line(),
            column: e.column(),
        },
        _ => DecodeError::Json {
            line: e.line(),
            column: e.column(),
        },
    }
}

/// Untrusted text (a topic) for a log line: printable ASCII other than space, `"` and `\` as it
/// is, every other byte as `\xNN`; at most [`MAX_LOGGED_CHARS`] characters, then
/// `...[truncated, N bytes]`. Nothing it prints can end a line, start an escape sequence or
/// pass for another `key=value` field.
#[derive(Debug, Clone, Copy)]
pub struct SafeText<'a>(pub &'a [u8]);

impl<'a> SafeText<'a> {
    /// Wraps a string or bytes.
    pub fn new<T: AsRef<[u8]> + ?Sized>(t: &'a T) -> SafeText<'a> {
        SafeText(t.as_ref())
    }
}

impl fmt::Display for SafeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let mut n = 0;
        for &b in self.0 {
            let plain = (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\';
            let w = if plain { 1 } else { 4 };
            if n + w > MAX_LOGGED_CHARS {
                return write!(f, "...[truncated, {} bytes]", self.0.len());
            }
            if plain {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
            n += w;
        }
        Ok(())
    }
}

/// `name:count` pairs of what was adjusted, comma-separated (static names and numbers only).
struct AdjustmentList<'a>(&'a Adjustments);

impl fmt::Display for AdjustmentList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in adjustment_pairs(self.0) {
            if n > 0 {
                write!(f, "{}{name}:{n}", if first { "" } else { "," })?;
                first = false;
            }
        }
        Ok(())
    }
}

fn adjustment_pairs(a: &Adjustments) -> [(&'static str, u64); 7] {
    [
        ("texts_truncated", a.texts_truncated),
        ("control_characters_replaced", a.control_characters_replaced),
        ("device_types_unknown", a.device_types_unknown),
        ("numbers_clamped", a.numbers_clamped),
        ("devices_dropped", a.devices_dropped),
        ("items_dropped", a.items_dropped),
        ("lists_capped", a.lists_capped),
    ]
}

/// Process-wide counters of everything refused or adjusted, for `/metrics`.
static REJECTED: [AtomicU64; Reason::ALL.len()] = [const { AtomicU64::new(0) }; Reason::ALL.len()];
static ADJUSTED: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

fn count_rejection(r: Reason) {
    if let Some(c) = REJECTED.get(r as usize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn count_adjustments(a: &Adjustments) {
    for (c, (_, n)) in ADJUSTED.iter().zip(adjustment_pairs(a)) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Messages refused by this process so far, by reason label (every reason, zeros included).
pub fn rejected_totals() -> Vec<(&'static str, u64)> {
    Reason::ALL
        .iter()
        .zip(REJECTED.iter())
        .map(|(r, c)| (r.label(), c.load(Ordering::Relaxed)))
        .collect()
}

/// Adjustments made by this process so far, by kind (every kind, zeros included).
pub fn adjusted_totals() -> Vec<(&'static str, u64)> {
    adjustment_pairs(&Adjustments::default())
        .iter()
        .zip(ADJUSTED.iter())
        .map(|((name, _), c)| (*name, c.load(Ordering::Relaxed)))
        .collect()
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_KEY_CHARS && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN_CHARS
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

fn valid_time(us: i64) -> bool {
    (0..=MAX_TIME_US).contains(&us)
}

/// Characters never stored: C0 and C1 controls, DEL, and the invisible formatting characters
/// that reorder or hide text on a terminal (bidirectional overrides, zero-width characters,
/// line and paragraph separators).
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

const ID_PROBLEM: &str = "not 1-64 characters of [A-Za-z0-9._-]";

fn check_id(field: &'static str, v: &str) -> Result<(), DecodeError> {
    if valid_id(v) {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            field,
            problem: ID_PROBLEM,
        })
    }
}

/// Applies the in-message bounds and counts what it changes.
#[derive(Debug, Default)]
struct Fixer {
    adj: Adjustments,
}

impl Fixer {
    /// At most `max` characters, none of them [`unsafe_char`]s (replaced by U+FFFD).
    fn text(&mut self, s: &mut String, max: usize) {
        if let Some((i, _)) = s.char_indices().nth(max) {
            s.truncate(i);
            self.adj.texts_truncated += 1;
        }
        if s.chars().any(unsafe_char) {
            *s = s
                .chars()
                .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
                .collect();
            self.adj.control_characters_replaced += 1;
        }
    }

    fn opt_text(&mut self, s: &mut Option<String>, max: usize) {
        if let Some(s) = s {
            self.text(s, max);
        }
    }

    /// A score or confidence: 0.0–1.0 (NaN is 0).
    fn unit(&mut self, x: &mut f32) {
        if !(0.0..=1.0).contains(x) {
            *x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
            self.adj.numbers_clamped += 1;
        }
    }

    /// Counts are stored as SQLite integers.
    fn count(&mut self, n: &mut u64) {
        if *n > i64::MAX as u64 {
            *n = i64::MAX as u64;
            self.adj.numbers_clamped += 1;
        }
    }

    fn seen(&mut self, s: &mut Seen) -> bool {
        self.count(&mut s.count);
        valid_time(s.first_us) && valid_time(s.last_us) && s.first_us <= s.last_us
    }

    fn cap<T>(&mut self, v: &mut Vec<T>, max: usize) {
        if v.len() > max {
            v.truncate(max);
            self.adj.lists_capped += 1;
        }
    }

    fn service(&mut self, s: &mut ServiceRecord) -> bool {
        self.count(&mut s.peers);
        self.cap(&mut s.peer_addresses, MAX_PEERS);
        let ok =
            matches!(s.transport.as_str(), "tcp" | "udp") && s.port != 0 && self.seen(&mut s.seen);
        if !ok {
            self.adj.items_dropped += 1;
        }
        ok
    }

    /// Whether the record is kept; fixes what it keeps.
    fn device(&mut self, d: &mut DeviceRecord) -> bool {
        let ok =
            valid_key(&d.key) && d.vlan.is_none_or(|v| v <= MAX_VLAN) && self.seen(&mut d.seen);
        if !ok {
            self.adj.devices_dropped += 1;
            return false;
        }
        self.opt_text(&mut d.oui_vendor, MAX_TEXT_CHARS);
        self.cap(&mut d.addresses, MAX_ADDRESSES);
        d.addresses.retain_mut(|a| {
            let ok = valid_token(&a.source) && self.seen(&mut a.seen);
            self.adj.items_dropped += u64::from(!ok);
            ok
        });
        self.cap(&mut d.facts, MAX_FACTS);
        d.facts.retain_mut(|f| {
            let ok = self.seen(&mut f.seen);
            self.adj.items_dropped += u64::from(!ok);
            if ok {
                self.text(&mut f.value, MAX_VALUE_CHARS);
            }
            ok
        });
        for list in [&mut d.services_offered, &mut d.services_used] {
            self.cap(list, MAX_SERVICES);
            list.retain_mut(|s| self.service(s));
        }
        // Roles: only the vocabulary's words, each at most once; bounded evidence.
        self.cap(&mut d.roles, ward_protocols::roles::ROLES.len());
        let mut roles_seen = Vec::new();
        d.roles.retain_mut(|r| {
            let ok = ward_protocols::roles::ROLES.contains(&r.role.as_str())
                && !roles_seen.contains(&r.role);
            self.adj.items_dropped += u64::from(!ok);
            if ok {
                roles_seen.push(r.role.clone());
            }
            ok
        });
        for r in &mut d.roles {
            self.cap(&mut r.evidence, MAX_ROLE_EVIDENCE);
            for e in &mut r.evidence {
                self.text(e, MAX_VALUE_CHARS);
            }
        }
        if let Some(c) = &mut d.classification {
            self.cap(&mut c.candidates, MAX_MATCHES);
            for k in &mut c.candidates {
                self.text(&mut k.attribute, MAX_TEXT_CHARS);
                self.text(&mut k.value, MAX_TEXT_CHARS);
                self.cap(&mut k.rules, MAX_ROLE_EVIDENCE);
                for r in &mut k.rules {
                    self.text(r, MAX_TEXT_CHARS);
                }
                self.unit(&mut k.score);
            }
            self.opt_text(&mut c.explanation, MAX_VALUE_CHARS);
            self.opt_text(&mut c.manufacturer, MAX_TEXT_CHARS);
            self.opt_text(&mut c.model, MAX_TEXT_CHARS);
            self.opt_text(&mut c.software_version, MAX_TEXT_CHARS);
            if !DEVICE_TYPES.contains(&c.device_type.as_str()) {
                c.device_type = "unknown".into();
                self.adj.device_types_unknown += 1;
            }
            self.unit(&mut c.confidence);
            self.cap(&mut c.matches, MAX_MATCHES);
            for m in &mut c.matches {
                self.text(&mut m.rule, MAX_TEXT_CHARS);
                self.text(&mut m.source, MAX_TEXT_CHARS);
                self.text(&mut m.field, MAX_TEXT_CHARS);
                self.text(&mut m.value, MAX_VALUE_CHARS);
            }
        }
        true
    }
}

/// Bounds every field of an observation. Refuses it (`Err`) when its envelope is invalid: site,
/// agent id or instance not an id, `seq` 0 or above 2^63-1, `time_us` outside 1970..9999, more
/// than [`MAX_DEVICES`] records. Otherwise drops the device records and items that are invalid,
/// cuts and cleans text, and returns what it changed.
pub fn check_observation(o: &mut Observation) -> Result<Adjustments, DecodeError> {
    check_id("site", &o.site)?;
    check_id("agent_id", &o.agent_id)?;
    check_id("instance", &o.instance)?;
    if o.seq == 0 || o.seq > i64::MAX as u64 {
        return Err(DecodeError::Invalid {
            field: "seq",
            problem: "not between 1 and 2^63-1",
        });
    }
    if !valid_time(o.time_us) {
        return Err(DecodeError::Invalid {
            field: "time_us",
            problem: "not between 1970-01-01 and 9999-12-31",
        });
    }
    if o.devices.len() > MAX_DEVICES {
        return Err(DecodeError::Invalid {
            field: "devices",
            problem: "more than 10000 device records",
        });
    }
    let mut fx = Fixer::default();
    o.devices.retain_mut(|d| fx.device(d));
    Ok(fx.adj)
}

/// A status time: RFC 3339, stored in the agent's own form (UTC, milliseconds) so stored times
/// order as text.
fn status_time(field: &'static str, v: &str) -> Result<String, DecodeError> {
    let bad = DecodeError::Invalid {
        field,
        problem: "not an RFC 3339 time after 1970",
    };
    if v.len() > MAX_STATUS_TEXT_CHARS {
        return Err(bad);
    }
    let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| bad)?;
    if t.timestamp_micros() < 0 {
        return Err(bad);
    }
    Ok(t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string())
}

/// Bounds every field of a status message: refuses it when an id or a time is invalid; cuts and
/// cleans `version` and `reason`.
pub fn check_status(s: &mut StatusMessage) -> Result<Adjustments, DecodeError> {
    check_id("site", &s.site)?;
    check_id("agent_id", &s.agent_id)?;
    check_id("instance", &s.instance)?;
    s.started_at = status_time("started_at", &s.started_at)?;
    s.time = status_time("time", &s.time)?;
    let mut fx = Fixer::default();
    fx.text(&mut s.version, MAX_STATUS_TEXT_CHARS);
    fx.opt_text(&mut s.reason, MAX_STATUS_TEXT_CHARS);
    Ok(fx.adj)
}

/// `ward/v1/<site>/<agent>/<devices|status>` ([`AgentTopic::parse`]) with valid ids.
fn topic_parts(topic: &str) -> Result<AgentTopic<'_>, DecodeError> {
    let t = AgentTopic::parse(topic).map_err(|_| DecodeError::Topic)?;
    if !valid_id(t.site) || !valid_id(t.agent_id) {
        return Err(DecodeError::Topic);
    }
    Ok(t)
}

/// A checked message and what was adjusted in it, or why it was refused.
pub type Checked = Result<(Message, Adjustments), DecodeError>;

/// [`decode`] without counting or logging: the message and what was adjusted in it.
pub fn decode_checked(topic: &str, payload: &[u8]) -> Checked {
    let AgentTopic {
        site,
        agent_id: agent,
        kind,
    } = topic_parts(topic)?;
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLong {
            bytes: payload.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    match kind {
        Kind::Devices => {
            let mut o: Observation =
                serde_json::from_slice(payload).map_err(|e| json_error(&e, SCHEMA))?;
            if o.schema != SCHEMA {
                return Err(DecodeError::UnknownSchema);
            }
            if o.site != site {
                return Err(DecodeError::SiteMismatch);
            }
            if o.agent_id != agent {
                return Err(DecodeError::AgentMismatch);
            }
            let adj = check_observation(&mut o)?;
            Ok((Message::Observation(o), adj))
        }
        Kind::Status => {
            let mut s: StatusMessage =
                serde_json::from_slice(payload).map_err(|e| json_error(&e, STATUS_SCHEMA))?;
            if s.schema != STATUS_SCHEMA {
                return Err(DecodeError::UnknownSchema);
            }
            if s.site != site {
                return Err(DecodeError::SiteMismatch);
            }
            if s.agent_id != agent {
                return Err(DecodeError::AgentMismatch);
            }
            let adj = check_status(&mut s)?;
            Ok((Message::Status(s), adj))
        }
    }
}

fn log_adjusted(topic: &[u8], bytes: usize, a: &Adjustments) {
    tracing::warn!(
        topic = %SafeText(topic),
        bytes,
        adjusted = %AdjustmentList(a),
        "message adjusted"
    );
}

/// Decodes and checks one MQTT message; counts a refusal by its reason, and counts and logs
/// what was adjusted. The caller logs a refusal (with [`SafeText`] for the topic).
pub fn decode(topic: &str, payload: &[u8]) -> Result<Message, DecodeError> {
    match decode_checked(topic, payload) {
        Ok((m, adj)) => {
            if !adj.is_empty() {
                count_adjustments(&adj);
                log_adjusted(topic.as_bytes(), payload.len(), &adj);
            }
            Ok(m)
        }
        Err(e) => {
            count_rejection(e.reason());
            Err(e)
        }
    }
}

/// One line of a replayed file: `<topic> <payload>` when it starts with `ward/` (what
/// `mosquitto_sub -v` prints; the topic is then checked as [`decode`] checks it), otherwise an
/// agent's JSON line (`--output jsonl:`; observations and status messages told apart by
/// `schema`). Returns the topic, if any, and the checked message.
pub fn decode_record(line: &[u8]) -> (Option<&[u8]>, Checked) {
    let (topic, payload) = split_record(line);
    let res = match topic {
        Some(t) => match std::str::from_utf8(t) {
            Ok(t) => decode_checked(t, payload),
            Err(_) => Err(DecodeError::Topic),
        },
        None => decode_plain(payload),
    };
    (topic, res)
}

fn split_record(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if !line.starts_with(b"ward/") {
        return (None, line);
    }
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (line.get(..i), line.get(i + 1..).unwrap_or_default()),
        None => (Some(line), &[]),
    }
}

fn decode_plain(payload: &[u8]) -> Checked {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        schema: Cow<'a, str>,
    }
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLong {
            bytes: payload.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let p: Probe =
        serde_json::from_slice(payload).map_err(|e| json_error(&e, "an agent message"))?;
    match &*p.schema {
        SCHEMA => {
            let mut o: Observation =
                serde_json::from_slice(payload).map_err(|e| json_error(&e, SCHEMA))?;
            let adj = check_observation(&mut o)?;
            Ok((Message::Observation(o), adj))
        }
        STATUS_SCHEMA => {
            let mut s: StatusMessage =
                serde_json::from_slice(payload).map_err(|e| json_error(&e, STATUS_SCHEMA))?;
            let adj = check_status(&mut s)?;
            Ok((Message::Status(s), adj))
        }
        _ => Err(DecodeError::UnknownSchema),
    }
}

/// Decodes one line of a replayed file (see [`decode_record`]), counting as [`decode`] does.
pub fn decode_line(line: &str) -> Result<Message, DecodeError> {
    let (topic, res) = decode_record(line.trim().as_bytes());
    match res {
        Ok((m, adj)) => {
            if !adj.is_empty() {
                count_adjustments(&adj);
                log_adjusted(topic.unwrap_or(b"-"), line.len(), &adj);
            }
            Ok(m)
        }
        Err(e) => {
            count_rejection(e.reason());
            Err(e)
        }
    }
}

/// Now, µs since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub use crate::evaluation::evaluate;

/// Reads one line into `out`, keeping at most `max` bytes of it (the rest is read and
/// discarded, never held); returns the line's full length without its `\n`, `None` at the end.
fn read_line_bounded(
    r: &mut impl std::io::BufRead,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    out.clear();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(len));
        }
        any = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, i + 1, true),
            None => (chunk.len(), chunk.len(), false),
        };
        let keep = part.min(max.saturating_sub(out.len()));
        out.extend_from_slice(chunk.get(..keep).unwrap_or_default());
        len = len.saturating_add(part);
        r.consume(used);
        if done {
            return Ok(Some(len));
        }
    }
}

/// Replays agent JSON-lines files into the store, in batches: agent `--output jsonl:` lines,
/// or `<topic> <payload>` lines as `mosquitto_sub -v` prints them (see [`decode_record`]).
/// Every line goes through the checks a delivery from the broker goes through; refused lines
/// are logged (reason, topic escaped, length: never their text) and counted by reason, like
/// the adjustments, in the returned stats. Returns the totals and the number of lines refused.
pub fn replay_files(
    store: &mut dyn Store,
    paths: &[std::path::PathBuf],
    batch: usize,
) -> anyhow::Result<(IngestStats, u64)> {
    use anyhow::Context;
    let mut total = IngestStats::default();
    let mut rejected = Rejections::default();
    let mut adjusted = Adjustments::default();
    let mut buf = Vec::with_capacity(batch.min(4096));
    let mut line = Vec::new();
    for p in paths {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let mut r = std::io::BufReader::with_capacity(1 << 16, f);
        let mut n = 0u64;
        while let Some(len) = read_line_bounded(&mut r, &mut line, MAX_MESSAGE_BYTES)
            .with_context(|| format!("reading {}", p.display()))?
        {
            n += 1;
            let rec = line.trim_ascii();
            if rec.is_empty() && len <= MAX_MESSAGE_BYTES {
                continue;
            }
            let (topic, res) = if len > MAX_MESSAGE_BYTES {
                (
                    split_record(rec).0,
                    Err(DecodeError::TooLong {
                        bytes: len,
                        limit: MAX_MESSAGE_BYTES,
                    }),
                )
            } else {
                decode_record(rec)
            };
            let topic = SafeText(topic.unwrap_or(b"-"));
            match res {
                Ok((m, adj)) => {
                    if !adj.is_empty() {
                        adjusted.add(&adj);
                        count_adjustments(&adj);
                        tracing::warn!(file = %p.display(), line = n, %topic, bytes = len, adjusted = %AdjustmentList(&adj), "message adjusted");
                    }
                    buf.push(m);
                }
                Err(e) => {
                    e.reason().count(&mut rejected);
                    count_rejection(e.reason());
                    tracing::warn!(file = %p.display(), line = n, %topic, bytes = len, reason = e.reason().label(), error = %e, "message rejected");
                }
            }
            if buf.len() >= batch {
                total.add(&store.ingest(&buf, now_us())?);
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        total.add(&store.ingest(&buf, now_us())?);
    }
    total.rejected.add(&rejected);
    total.adjusted.add(&adjusted);
    Ok((total, rejected.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"schema":"ward.observation.v1","site":"x","agent_id":"b","instance":"i","seq":1,"kind":"delta","time_us":1,"devices":[]}"#;

    #[test]
    fn topics_and_payloads_are_checked() {
        assert_eq!(
            decode("ward/v2/a/b/devices", b"{}").err(),
            Some(DecodeError::Topic)
        );
        assert_eq!(
            decode("ward/v1/a/b/other", b"{}").err(),
            Some(DecodeError::Topic)
        );
        assert_eq!(
            decode("ward/v1/a b/b/devices", OK.as_bytes()).err(),
            Some(DecodeError::Topic)
        );
        assert!(matches!(
            decode("ward/v1/a/b/devices", b"not json"),
            Err(DecodeError::Json { line: 1, column: 2 })
        ));
        assert_eq!(
            decode("ward/v1/a/b/devices", OK.as_bytes()).err(),
            Some(DecodeError::SiteMismatch)
        );
        assert_eq!(
            decode("ward/v1/x/c/devices", OK.as_bytes()).err(),
            Some(DecodeError::AgentMismatch)
        );
        assert!(matches!(
            decode("ward/v1/x/b/devices", OK.as_bytes()),
            Ok(Message::Observation(_))
        ));
    }

    #[test]
    fn errors_never_quote_the_input() {
        let canary = "CANARY\n\u{1b}[31m";
        let quoted = serde_json::to_string(canary).unwrap();
        let cases = [
            ("ward/v1/x/b/devices", OK.replace("\"delta\"", &quoted)),
            (
                "ward/v1/x/b/devices",
                OK.replace("\"ward.observation.v1\"", &quoted),
            ),
            ("ward/v1/x/b/devices", OK.replace("\"x\"", &quoted)),
            ("ward/v1/x/b/devices", OK.replace("delta", canary)),
            ("ward/v1/x/b/devices", format!("{canary} {OK}")),
            ("ward/v1/x/b/status", OK.to_string()),
        ];
        for (topic, payload) in cases {
            let e = decode(topic, payload.as_bytes()).unwrap_err();
            for shown in [e.to_string(), format!("{e:?}")] {
                assert!(!shown.contains("CANARY"), "{shown}");
                assert!(!shown.contains('\u{1b}'), "{shown}");
            }
        }
        let e = decode_line(&OK.replace("\"ward.observation.v1\"", &quoted)).unwrap_err();
        assert_eq!(e, DecodeError::UnknownSchema);
    }

    #[test]
    fn counters_are_indexed_by_reason() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let before = rejected_totals();
        let _ = decode("ward/v1/a/b/devices", b"[");
        let after = rejected_totals();
        let grew: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| a.1 > b.1)
            .map(|(b, _)| b.0)
            .collect();
        assert!(grew.contains(&"json_syntax"), "{grew:?}");
    }

    #[test]
    fn safe_text_escapes_and_bounds() {
        let s = SafeText::new("a b\n\u{1b}[2J\"\\é").to_string();
        assert_eq!(s, r"a\x20b\x0a\x1b[2J\x22\x5c\xc3\xa9");
        let long = "t".repeat(5000);
        let s = SafeText::new(&long).to_string();
        assert!(s.len() < MAX_LOGGED_CHARS + 40, "{s}");
        assert!(s.ends_with("...[truncated, 5000 bytes]"), "{s}");
    }

    #[test]
    fn lines_are_bounded_without_holding_them() {
        let data = b"short\nlonger line\n\nlast";
        let mut r = std::io::BufReader::with_capacity(4, &data[..]);
        let mut out = Vec::new();
        let mut got = Vec::new();
        while let Some(n) = read_line_bounded(&mut r, &mut out, 6).unwrap() {
            got.push((n, out.clone()));
        }
        assert_eq!(
            got,
            vec![
                (5, b"short".to_vec()),
                (11, b"longer".to_vec()),
                (0, vec![]),
                (4, b"last".to_vec())
            ]
        );
    }

    #[test]
    fn text_is_cut_on_a_character_boundary_and_cleaned() {
        let mut fx = Fixer::default();
        let mut s = "é".repeat(300);
        fx.text(&mut s, 256);
        assert_eq!(s.chars().count(), 256);
        let mut s = "a\u{202e}b\u{7}c".to_string();
        fx.text(&mut s, 256);
        assert_eq!(s, "a\u{fffd}b\u{fffd}c");
        assert_eq!(fx.adj.texts_truncated, 1);
        assert_eq!(fx.adj.control_characters_replaced, 1);
    }
}
