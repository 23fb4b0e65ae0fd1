//! IEEE 11073 SDC discovery: WS-Discovery 1.1 (OASIS, 2009/01) SOAP-over-UDP datagrams, as
//! IEEE 11073-20702 (MDPWS) and -20701 (SDC architecture) use them, and the DPWS 1.1 device
//! metadata (`ThisModel`, `ThisDevice`) a provider returns to a GetMetadata request over HTTP.
//!
//! A datagram is a SOAP 1.2 envelope whose WS-Addressing `Action` is one of the six WS-Discovery
//! actions. What is read, and of which message:
//!
//! - `Hello`, `Bye` and the single `ProbeMatch`/`ResolveMatch` of an answer speak for their
//!   sender (a provider announcing or describing itself): its endpoint reference address (a
//!   `urn:uuid:`), its `Types` (QNames resolved against the envelope's namespace declarations:
//!   `dpws:Device`, `mdpws:MedicalDevice`), its `XAddrs` (reduced to `scheme://host:port`, the
//!   paths are dropped), its `MetadataVersion` and two kinds of `Scopes`: the location context
//!   (`sdc.ctxt.loc:/…?fac=…&bldng=…&flr=…&poc=…&rm=…&bed=…`, IEEE 11073-20701 §9.4.1.2: where
//!   the device stands, not who lies there) and the device class of an MDS
//!   (`sdc.cdc.type:/<coding system>/<version>/<code>`, §9.2). Every other scope — patient
//!   (`sdc.ctxt.pat:`), operator, ensemble, workflow, means — is skipped unread.
//! - `Probe` and `Resolve` say what the *sender* looks for on other devices: only the message
//!   kind is kept.
//! - An answer with several matches comes from a discovery proxy answering for other devices
//!   (a device answers for itself with one): only the message kind is kept.
//!
//! Recognised by structure, never by port: the document element is a SOAP 1.2 `Envelope` and
//! its `Header` holds a WS-Addressing 2005/08 `Action` naming a WS-Discovery 2009/01 message.
//! SSDP (`NOTIFY * HTTP/1.1`), mDNS (binary) and other XML never match.
//!
//! The XML is read by a small streaming scanner rather than a DOM or a general parser: it keeps
//! a bounded element and namespace stack ([`MAX_DEPTH`], [`MAX_NAMESPACES`]), looks at no more
//! than [`MAX_TOKENS`] tokens, copies at most [`MAX_TEXT`] bytes of one allow-listed element's
//! text and knows only XML's five predefined entities and character references: a DTD
//! (`<!DOCTYPE`) is an error, so there is nothing to expand. Every byte is looked at a bounded
//! number of times (linear). A maintained crate (quick-xml) would work too, but it brings its
//! own buffering and entity options to configure; the subset SOAP needs is a page of code.
//!
//! SDC as a whole carries patient data (BICEPS patient context states, metric values, reports),
//! so [`Protocol::Sdc`] has `patient_data: true`: a provider reachable in clear is a
//! `cleartext_phi_protocol` finding under a contract that requires encryption. The discovery
//! messages decoded here carry none (SDC puts no patient scope into discovery by default, and
//! one that is there is skipped unread).

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol, MAX_VALUE_CHARS};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Sdc);
/// UDP port of WS-Discovery (multicast 239.255.255.250 / FF02::C). For reference only:
/// detection is by structure ([`probe`]), never by port.
pub const PORT: u16 = 3702;
/// Element nesting kept track of (a discovery message nests six deep).
pub const MAX_DEPTH: usize = 32;
/// Namespace declarations in scope at once.
pub const MAX_NAMESPACES: usize = 64;
/// Tags, text runs and comments looked at per message.
pub const MAX_TOKENS: usize = 4096;
/// Bytes of one allow-listed element's text that are read (a `Scopes` list is a few hundred).
pub const MAX_TEXT: usize = 4096;
/// Values taken from one list (`Types`, `Scopes`, `XAddrs`).
pub const MAX_LIST: usize = 32;
/// Facts kept per message or metadata body.
pub const MAX_FACTS: usize = 64;

const NS_SOAP12: &[u8] = b"http://www.w3.org/2003/05/soap-envelope";
const NS_WSA: &[u8] = b"http://www.w3.org/2005/08/addressing";
const NS_WSD: &[u8] = b"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01";
const NS_DPWS: &[u8] = b"http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01";
/// Namespaces a `Types` QName is written with under its conventional prefix.
const KNOWN_NS: &[(&[u8], &str)] = &[
    (NS_DPWS, "dpws"),
    (
        b"http://standards.ieee.org/downloads/11073/11073-20702-2016",
        "mdpws",
    ),
    (
        b"http://standards.ieee.org/downloads/11073/11073-20701-2018",
        "sdc",
    ),
    (NS_WSD, "wsd"),
];
/// The MDC nomenclature's coding system (ISO/IEEE 11073-10101), the default of BICEPS codes.
const MDC_OID: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1";

/// SDC discovery's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Sdc,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

/// A WS-Discovery message kind, from the WS-Addressing `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A target service announces itself (multicast).
    Hello,
    /// A target service leaves (multicast).
    Bye,
    /// A client searches by type and scope (multicast).
    Probe,
    /// A target service's (or proxy's) answer to a Probe (unicast).
    ProbeMatches,
    /// A client asks for the transport addresses of an endpoint reference (multicast).
    Resolve,
    /// The answer to a Resolve (unicast).
    ResolveMatches,
}

impl Kind {
    /// The action's last path segment, which is also the body element's local name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Hello => "Hello",
            Kind::Bye => "Bye",
            Kind::Probe => "Probe",
            Kind::ProbeMatches => "ProbeMatches",
            Kind::Resolve => "Resolve",
            Kind::ResolveMatches => "ResolveMatches",
        }
    }

    const ALL: [Kind; 6] = [
        Kind::Hello,
        Kind::Bye,
        Kind::Probe,
        Kind::ProbeMatches,
        Kind::Resolve,
        Kind::ResolveMatches,
    ];

    fn from_action(action: &[u8]) -> Option<Kind> {
        let rest = action
            .trim_ascii()
            .strip_prefix(NS_WSD)?
            .strip_prefix(b"/")?;
        Kind::ALL.into_iter().find(|k| rest == k.name().as_bytes())
    }

    /// The element each match sits in, for answers; `None` when the body element is the match.
    fn match_element(self) -> Option<&'static [u8]> {
        match self {
            Kind::ProbeMatches => Some(b"ProbeMatch"),
            Kind::ResolveMatches => Some(b"ResolveMatch"),
            _ => None,
        }
    }

    /// Whether the message describes its sender (announcements and answers do; searches do not).
    fn describes_sender(self) -> bool {
        !matches!(self, Kind::Probe | Kind::Resolve)
    }
}

// ------------------------------------------------------------------------------------------
// The scanner: tokens of an XML document, bounded and without a DTD.

#[derive(Debug, Clone, Copy)]
enum Token<'a> {
    /// `<name attrs>` or `<name attrs/>`; `attrs` is the raw text between name and `>`.
    Start {
        name: &'a [u8],
        attrs: &'a [u8],
        empty: bool,
    },
    /// `</name>`.
    End { name: &'a [u8] },
    /// Character data, entities not yet expanded.
    Text(&'a [u8]),
    /// A CDATA section's content (taken literally).
    CData(&'a [u8]),
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    tokens: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn invalid(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: LAYER,
        offset,
        what,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        // A UTF-8 byte order mark may precede the document.
        let pos = if b.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
        Scanner { b, pos, tokens: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }

    /// The next token with its offset; `None` at the end of the input.
    fn next(&mut self) -> Option<Result<(usize, Token<'a>), DecodeError>> {
        loop {
            let at = self.pos;
            let rest = self.rest();
            if rest.is_empty() {
                return None;
            }
            self.tokens += 1;
            if self.tokens > MAX_TOKENS {
                return Some(Err(DecodeError::Unsupported {
                    layer: LAYER,
                    what: "XML document with more tokens than the scan limit",
                }));
            }
            if rest.first() != Some(&b'<') {
                let len = memchr::memchr(b'<', rest).unwrap_or(rest.len());
                self.pos += len;
                return Some(Ok((at, Token::Text(rest.get(..len).unwrap_or_default()))));
            }
            let tail = rest.get(1..).unwrap_or_default();
            match tail.first() {
                Some(b'?') => {
                    // Processing instruction or XML declaration: skipped.
                    let Some(end) = find(tail, b"?>") else {
                        return Some(Err(DecodeError::truncated(LAYER, at, 2, rest.len())));
                    };
                    self.pos += 1 + end + 2;
                }
                Some(b'!') if tail.starts_with(b"!--") => {
                    let Some(end) = find(tail.get(3..).unwrap_or_default(), b"-->") else {
                        return Some(Err(DecodeError::truncated(LAYER, at, 4, rest.len())));
                    };
                    self.pos += 1 + 3 + end + 3;
                }
                Some(b'!') if tail.starts_with(b"![CDATA[") => {
                    let body = tail.get(8..).unwrap_or_default();
                    let Some(end) = find(body, b"]]>") else {
                        return Some(Err(DecodeError::truncated(LAYER, at, 12, rest.len())));
                    };
                    self.pos += 1 + 8 + end + 3;
                    return Some(Ok((at, Token::CData(body.get(..end).unwrap_or_default()))));
                }
                Some(b'!') => {
                    // <!DOCTYPE …>: SOAP forbids a DTD (SOAP 1.2 Part 1 §5), and without one
                    // there are no entities to expand.
                    return Some(Err(DecodeError::Unsupported {
                        layer: LAYER,
                        what: "document type declaration",
                    }));
                }
                Some(b'/') => {
                    let body = tail.get(1..).unwrap_or_default();
                    let Some(end) = memchr::memchr(b'>', body) else {
                        return Some(Err(DecodeError::truncated(LAYER, at, 3, rest.len())));
                    };
                    self.pos += 2 + end + 1;
                    let name = body.get(..end).unwrap_or_default().trim_ascii();
                    return Some(Ok((at, Token::End { name })));
                }
                Some(_) => {
                    // Find the closing '>' outside quoted attribute values.
                    let mut quote = None;
                    let mut end = None;
                    for (i, &c) in tail.iter().enumerate() {
                        match quote {
                            Some(q) if c == q => quote = None,
                            Some(_) => {}
                            None if c == b'"' || c == b'\'' => quote = Some(c),
                            None if c == b'>' => {
                                end = Some(i);
                                break;
                            }
                            None => {}
                        }
                    }
                    let Some(end) = end else {
                        return Some(Err(DecodeError::truncated(LAYER, at, 2, rest.len())));
                    };
                    self.pos += 1 + end + 1;
                    let inner = tail.get(..end).unwrap_or_default();
                    let (inner, empty) = match inner.strip_suffix(b"/") {
                        Some(i) => (i, true),
                        None => (inner, false),
                    };
                    let name_len = inner
                        .iter()
                        .position(|&c| is_space(c))
                        .unwrap_or(inner.len());
                    let name = inner.get(..name_len).unwrap_or_default();
                    if name.is_empty() {
                        return Some(Err(invalid(at, "element name")));
                    }
                    let attrs = inner.get(name_len..).unwrap_or_default();
                    return Some(Ok((at, Token::Start { name, attrs, empty })));
                }
                None => return Some(Err(DecodeError::truncated(LAYER, at, 2, 1))),
            }
        }
    }
}

/// The `name="value"` pairs of a start tag's attribute text (values raw, entities unexpanded).
fn attributes(mut a: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    core::iter::from_fn(move || {
        a = a.trim_ascii_start();
        let eq = memchr::memchr(b'=', a)?;
        let name = a.get(..eq)?.trim_ascii();
        let after = a.get(eq + 1..)?.trim_ascii_start();
        let q = *after.first()?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let body = after.get(1..)?;
        let end = memchr::memchr(q, body)?;
        a = body.get(end + 1..)?;
        Some((name, body.get(..end)?))
    })
}

fn split_qname(name: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', name) {
        Some(i) => (
            name.get(..i).unwrap_or_default(),
            name.get(i + 1..).unwrap_or_default(),
        ),
        None => (&[], name),
    }
}

/// The element and namespace stacks of a scan.
struct Scope<'a> {
    /// `(raw name, namespace uri, local name)` of each open element.
    elements: Vec<(&'a [u8], &'a [u8], &'a [u8])>,
    /// `(depth, prefix, uri)` of each declaration in scope (an empty prefix is the default).
    namespaces: Vec<(usize, &'a [u8], &'a [u8])>,
}

impl<'a> Scope<'a> {
    fn new() -> Self {
        Scope {
            elements: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    fn depth(&self) -> usize {
        self.elements.len()
    }

    fn resolve(&self, prefix: &[u8]) -> Option<&'a [u8]> {
        if prefix == b"xml" {
            return Some(b"http://www.w3.org/XML/1998/namespace");
        }
        self.namespaces
            .iter()
            .rev()
            .find(|(_, p, _)| *p == prefix)
            .map(|(_, _, uri)| *uri)
            .or(if prefix.is_empty() { Some(&[]) } else { None })
    }

    /// Opens an element: its declarations enter scope, then its name is resolved.
    fn open(
        &mut self,
        at: usize,
        name: &'a [u8],
        attrs: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        if self.elements.len() >= MAX_DEPTH {
            return Err(DecodeError::Unsupported {
                layer: LAYER,
                what: "element nesting deeper than the scan limit",
            });
        }
        let depth = self.elements.len() + 1;
        for (attr, value) in attributes(attrs) {
            let prefix = if attr == b"xmlns" {
                &[][..]
            } else if let Some(p) = attr.strip_prefix(b"xmlns:") {
                p
            } else {
                continue;
            };
            if self.namespaces.len() >= MAX_NAMESPACES {
                return Err(DecodeError::Unsupported {
                    layer: LAYER,
                    what: "more namespace declarations than the scan limit",
                });
            }
            self.namespaces.push((depth, prefix, value));
        }
        let (prefix, local) = split_qname(name);
        let Some(ns) = self.resolve(prefix) else {
            return Err(invalid(at, "element with an undeclared namespace prefix"));
        };
        self.elements.push((name, ns, local));
        Ok((ns, local))
    }

    /// Closes the innermost element; `name` must match it.
    fn close(&mut self, at: usize, name: &[u8]) -> Result<(), DecodeError> {
        match self.elements.pop() {
            Some((open, _, _)) if open == name => {}
            _ => return Err(invalid(at, "end tag that does not match its start tag")),
        }
        let depth = self.elements.len() + 1;
        while self.namespaces.last().is_some_and(|(d, _, _)| *d >= depth) {
            self.namespaces.pop();
        }
        Ok(())
    }

    /// `(namespace, local name)` of the element at `depth` (1 = the document element).
    fn at(&self, depth: usize) -> Option<(&'a [u8], &'a [u8])> {
        let (_, ns, local) = self.elements.get(depth.checked_sub(1)?)?;
        Some((ns, local))
    }
}

/// Appends `raw` character data to `out` with entity and character references expanded, up to
/// [`MAX_TEXT`] bytes.
fn push_text(out: &mut Vec<u8>, raw: &[u8], at: usize) -> Result<(), DecodeError> {
    let mut rest = raw;
    while !rest.is_empty() && out.len() < MAX_TEXT {
        let Some(amp) = memchr::memchr(b'&', rest) else {
            let room = MAX_TEXT - out.len();
            out.extend_from_slice(rest.get(..room.min(rest.len())).unwrap_or_default());
            return Ok(());
        };
        let room = MAX_TEXT - out.len();
        out.extend_from_slice(rest.get(..amp.min(room)).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after
            .iter()
            .take(12)
            .position(|&c| c == b';')
            .ok_or_else(|| invalid(at, "entity reference"))?;
        let name = after.get(..semi).unwrap_or_default();
        let ch = match name {
            b"lt" => Some('<'),
            b"gt" => Some('>'),
            b"amp" => Some('&'),
            b"quot" => Some('"'),
            b"apos" => Some('\''),
            _ => {
                let num = name.strip_prefix(b"#");
                let code = match num {
                    Some(hex) if hex.first().is_some_and(|&c| c == b'x' || c == b'X') => {
                        core::str::from_utf8(hex.get(1..).unwrap_or_default())
                            .ok()
                            .and_then(|s| u32::from_str_radix(s, 16).ok())
                    }
                    Some(dec) => core::str::from_utf8(dec).ok().and_then(|s| s.parse().ok()),
                    None => None,
                };
                code.and_then(char::from_u32)
            }
        };
        // Without a DTD no other entity exists: the document is not well formed.
        let ch = ch.ok_or_else(|| invalid(at, "entity reference"))?;
        let mut buf = [0u8; 4];
        if out.len() + ch.len_utf8() <= MAX_TEXT {
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    Ok(())
}

/// A value as text: UTF-8 when it is (SOAP is UTF-8 or UTF-16; these values are set by device
/// software, e.g. a manufacturer's "Dräger"), control characters replaced, at most
/// [`MAX_VALUE_CHARS`] characters, surrounding blanks trimmed. Anything else goes through
/// [`clean_text`].
fn clean(raw: &[u8]) -> String {
    let raw = raw.trim_ascii();
    match core::str::from_utf8(raw) {
        Ok(s) if !s.is_ascii() => s
            .chars()
            .take(MAX_VALUE_CHARS)
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect::<String>()
            .trim()
            .to_owned(),
        _ => clean_text(raw),
    }
}

/// Whitespace-separated list items (`xs:list`), at most [`MAX_LIST`].
fn list(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&c| is_space(c))
        .filter(|t| !t.is_empty())
        .take(MAX_LIST)
}

// ------------------------------------------------------------------------------------------
// WS-Discovery.

/// The message's kind, or why it is not WS-Discovery: the document element must be a SOAP 1.2
/// `Envelope` whose `Header` has a WS-Addressing `Action` naming a WS-Discovery message. Reads
/// no further than the `Header`.
pub fn kind(payload: &[u8]) -> Result<Kind, DecodeError> {
    // Every UDP datagram is probed: reject anything whose first non-blank byte is not '<'
    // before scanning (SSDP starts with a request line, mDNS and most others are binary).
    let start = payload
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(payload)
        .trim_ascii_start();
    if start.first() != Some(&b'<') {
        return Err(invalid(0, "document (does not start with a tag)"));
    }
    let mut sc = Scanner::new(payload);
    let mut scope = Scope::new();
    let mut action = Vec::new();
    let mut in_action = false;
    while let Some(tok) = sc.next() {
        let (at, tok) = tok?;
        match tok {
            Token::Start { name, attrs, empty } => {
                let (ns, local) = scope.open(at, name, attrs)?;
                match scope.depth() {
                    1 if (ns, local) != (NS_SOAP12, &b"Envelope"[..]) => {
                        return Err(invalid(at, "document element (not a SOAP 1.2 Envelope)"));
                    }
                    2 if ns == NS_SOAP12 && local == b"Body" => {
                        return Err(invalid(at, "SOAP header without a WS-Addressing Action"));
                    }
                    3 if scope.at(2) == Some((NS_SOAP12, b"Header"))
                        && (ns, local) == (NS_WSA, &b"Action"[..]) =>
                    {
                        in_action = !empty;
                    }
                    _ => {}
                }
                if empty {
                    scope.close(at, name)?;
                }
            }
            Token::End { name } => {
                if in_action {
                    return Kind::from_action(&action)
                        .ok_or_else(|| invalid(at, "WS-Addressing Action (not WS-Discovery)"));
                }
                scope.close(at, name)?;
            }
            Token::Text(t) if in_action => push_text(&mut action, t, at)?,
            Token::CData(t) if in_action => action.extend(t.iter().take(MAX_TEXT)),
            Token::Text(_) | Token::CData(_) => {}
        }
    }
    Err(DecodeError::truncated(
        LAYER,
        0,
        payload.len() + 1,
        payload.len(),
    ))
}

/// Structure test: see [`kind`].
pub fn probe(payload: &[u8]) -> Probe {
    if kind(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A Probe or Resolve comes from a client looking for devices; their answers from the devices
/// (or a proxy). Hello and Bye are announcements: no conversation, no direction.
fn direction(payload: &[u8]) -> Direction {
    match kind(payload) {
        Ok(Kind::Probe | Kind::Resolve) => Direction::FromClient,
        Ok(Kind::ProbeMatches | Kind::ResolveMatches) => Direction::FromServer,
        _ => Direction::Unknown,
    }
}

/// Which allow-listed child of a match is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Address,
    Types,
    Scopes,
    XAddrs,
    MetadataVersion,
}

/// Pushes the facts of one discovery datagram: the message kind, then for an announcement or a
/// single match the endpoint reference address, types, location and device-class scopes,
/// transport addresses and metadata version, in wire order. Facts found before a malformed part
/// are kept.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let k = kind(payload)?;
    out.push(Fact::new(Field::SdcMessage, k.name()));
    if !k.describes_sender() {
        return Ok(());
    }
    let mut facts = Vec::new();
    let result = read_matches(payload, k, &mut facts);
    if let Ok(matches) = result {
        // Several matches: a discovery proxy answering for other devices.
        if matches > 1 {
            return Ok(());
        }
    }
    out.extend(facts.into_iter().take(MAX_FACTS));
    result.map(|_| ())
}

/// Reads the match(es) of `k`'s body into `facts`; returns how many matches there were.
fn read_matches(payload: &[u8], k: Kind, facts: &mut Vec<Fact>) -> Result<usize, DecodeError> {
    let mut sc = Scanner::new(payload);
    let mut scope = Scope::new();
    let mut text = Vec::new();
    let mut part: Option<(Part, usize)> = None;
    let mut matches = 0usize;
    // Depth of the element whose children are read: the body element itself (Hello, Bye) or
    // each ProbeMatch/ResolveMatch in it.
    let match_depth = if k.match_element().is_some() { 4 } else { 3 };
    while let Some(tok) = sc.next() {
        let (at, tok) = tok?;
        match tok {
            Token::Start { name, attrs, empty } => {
                let (ns, local) = scope.open(at, name, attrs)?;
                let d = scope.depth();
                let in_body = scope.at(2) == Some((NS_SOAP12, b"Body"));
                let body_is_k = scope.at(3) == Some((NS_WSD, k.name().as_bytes()));
                if d == match_depth && in_body && body_is_k {
                    let is_match = match k.match_element() {
                        Some(m) => ns == NS_WSD && local == m,
                        None => true,
                    };
                    if is_match {
                        matches += 1;
                    }
                }
                let in_match = in_body
                    && body_is_k
                    && match k.match_element() {
                        Some(m) => scope.at(4) == Some((NS_WSD, m)),
                        None => true,
                    };
                if in_match && part.is_none() {
                    part = if d == match_depth + 1 && ns == NS_WSD {
                        match local {
                            b"Types" => Some((Part::Types, d)),
                            b"Scopes" => Some((Part::Scopes, d)),
                            b"XAddrs" => Some((Part::XAddrs, d)),
                            b"MetadataVersion" => Some((Part::MetadataVersion, d)),
                            _ => None,
                        }
                    } else if d == match_depth + 2
                        && (ns, local) == (NS_WSA, &b"Address"[..])
                        && scope.at(match_depth + 1) == Some((NS_WSA, b"EndpointReference"))
                    {
                        Some((Part::Address, d))
                    } else {
                        None
                    };
                    text.clear();
                } else if part.is_some_and(|(_, pd)| d > pd) {
                    // A simple-typed value with child elements: not what the schema allows.
                    part = None;
                }
                if empty {
                    if let Some((p, pd)) = part {
                        if pd == d {
                            emit(p, &text, &scope, facts);
                            part = None;
                        }
                    }
                    scope.close(at, name)?;
                }
            }
            Token::End { name } => {
                if let Some((p, pd)) = part {
                    if pd == scope.depth() {
                        // Resolved while the element's own declarations are still in scope.
                        emit(p, &text, &scope, facts);
                        part = None;
                    }
                }
                scope.close(at, name)?;
            }
            Token::Text(t) if part.is_some() => push_text(&mut text, t, at)?,
            Token::CData(t) if part.is_some() => {
                let room = MAX_TEXT.saturating_sub(text.len());
                text.extend_from_slice(t.get(..room.min(t.len())).unwrap_or_default());
            }
            Token::Text(_) | Token::CData(_) => {}
        }
        if facts.len() >= MAX_FACTS {
            break;
        }
    }
    Ok(matches)
}

fn emit(part: Part, text: &[u8], scope: &Scope<'_>, facts: &mut Vec<Fact>) {
    match part {
        Part::Address => {
            let v = text.trim_ascii();
            // Usually a urn:uuid; an http(s) address is a transport address, cut like XAddrs.
            let value =
                if v.len() > 4 && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"urn:")) {
                    Some(clean(v))
                } else {
                    transport_address(v)
                };
            if let Some(value) = value.filter(|s| !s.is_empty()) {
                facts.push(Fact::new(Field::SdcEpr, value));
            }
        }
        Part::Types => {
            for qname in list(text) {
                if let Some(t) = resolve_type(qname, scope) {
                    facts.push(Fact::new(Field::SdcType, t));
                }
            }
        }
        Part::XAddrs => {
            for addr in list(text) {
                if let Some(a) = transport_address(addr) {
                    facts.push(Fact::new(Field::SdcXaddr, a));
                }
            }
        }
        Part::Scopes => {
            for s in list(text) {
                scope_facts(s, facts);
            }
        }
        Part::MetadataVersion => {
            let v = text.trim_ascii();
            if !v.is_empty() && v.len() <= 10 && v.iter().all(u8::is_ascii_digit) {
                facts.push(Fact::new(Field::SdcMetadataVersion, clean_text(v)));
            }
        }
    }
}

/// `prefix:local` resolved against the namespaces in scope: `dpws:Device` for the known
/// namespaces, `{uri}local` for others; `None` when the prefix is undeclared.
fn resolve_type(qname: &[u8], scope: &Scope<'_>) -> Option<String> {
    let (prefix, local) = split_qname(qname);
    if local.is_empty() || local.len() > 128 {
        return None;
    }
    let ns = scope.resolve(prefix)?;
    let local = clean_text(local);
    Some(match KNOWN_NS.iter().find(|(uri, _)| *uri == ns) {
        Some((_, p)) => format!("{p}:{local}"),
        None if ns.is_empty() => local,
        None => clean_text(format!("{{{}}}{local}", clean_text(ns)).as_bytes()),
    })
}

/// `scheme://host[:port]` of a URL: user information, path, query and fragment dropped (a path
/// can hold anything the device chose to put there).
fn transport_address(url: &[u8]) -> Option<String> {
    let sep = find(url, b"://")?;
    let scheme = url.get(..sep)?;
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
    {
        return None;
    }
    let rest = url.get(sep + 3..)?;
    let end = rest
        .iter()
        .position(|c| b"/?#".contains(c))
        .unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let host = match memchr::memrchr(b'@', authority) {
        Some(at) => authority.get(at + 1..)?,
        None => authority,
    };
    if host.is_empty() {
        return None;
    }
    let mut s = scheme.to_ascii_lowercase();
    s.extend_from_slice(b"://");
    s.extend_from_slice(host);
    Some(clean_text(&s))
}

/// Percent-decodes `raw` (RFC 3986 §2.1) into bytes, at most [`MAX_VALUE_CHARS`] of them.
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len().min(MAX_VALUE_CHARS));
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if out.len() >= MAX_VALUE_CHARS {
            break;
        }
        let hex = |j: usize| raw.get(j).and_then(|&h| (h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The facts of one scope URI: the location detail of an `sdc.ctxt.loc:` scope, the code of an
/// `sdc.cdc.type:` scope. Any other scope — a patient's (`sdc.ctxt.pat:`) above all — is
/// skipped unread.
fn scope_facts(scope: &[u8], facts: &mut Vec<Fact>) {
    let Some(colon) = memchr::memchr(b':', scope) else {
        return;
    };
    let scheme = scope.get(..colon).unwrap_or_default();
    let rest = scope.get(colon + 1..).unwrap_or_default();
    if scheme.eq_ignore_ascii_case(b"sdc.ctxt.loc") {
        // The query names the parts (IEEE 11073-20701 §9.4.1.2); the path repeats them in the
        // instance identifier and is not read.
        let Some(q) = memchr::memchr(b'?', rest) else {
            return;
        };
        let query = rest.get(q + 1..).unwrap_or_default();
        let query = query.split(|&c| c == b'#').next().unwrap_or_default();
        for pair in query.split(|&c| c == b'&').take(MAX_LIST) {
            let Some(eq) = memchr::memchr(b'=', pair) else {
                continue;
            };
            let field = match pair.get(..eq).unwrap_or_default() {
                b"fac" => Field::SdcLocationFacility,
                b"bldng" => Field::SdcLocationBuilding,
                b"flr" => Field::SdcLocationFloor,
                b"poc" => Field::SdcLocationPointOfCare,
                b"rm" => Field::SdcLocationRoom,
                b"bed" => Field::SdcLocationBed,
                _ => continue,
            };
            let v = clean(&percent_decode(pair.get(eq + 1..).unwrap_or_default()));
            if !v.is_empty() {
                facts.push(Fact::new(field, v));
            }
        }
    } else if scheme.eq_ignore_ascii_case(b"sdc.cdc.type") {
        // `/<coding system>/<coding system version>/<code>`, each percent-encoded (§9.2).
        let mut parts = rest
            .strip_prefix(b"/")
            .unwrap_or(rest)
            .split(|&c| c == b'/');
        let (Some(cs), Some(_csv), Some(code), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let code = clean(&percent_decode(code));
        if code.is_empty() {
            return;
        }
        let cs = clean(&percent_decode(cs));
        // MDC codes (the default coding system) as the bare code, so rules match `^69641$`;
        // another coding system's codes keep it in front.
        let value = if cs.is_empty() || cs == MDC_OID {
            code
        } else {
            format!("{cs}#{code}")
        };
        facts.push(Fact::new(Field::SdcDeviceClass, value));
    }
}

// ------------------------------------------------------------------------------------------
// DPWS metadata (carried over HTTP).

/// Pushes the device identity of a DPWS 1.1 GetMetadata response body (a SOAP envelope whose
/// `wsx:Metadata` sections hold `dpws:ThisModel` and `dpws:ThisDevice`, DPWS 1.1 §5.1-5.2):
/// Manufacturer, ModelName, ModelNumber and ModelUrl of `ThisModel`, FriendlyName,
/// FirmwareVersion and SerialNumber of `ThisDevice`. Only these children of those two elements
/// are read; every other element of the body (the `Relationship` section, or a BICEPS body
/// with patient context states when this is called on some other SOAP message) is skipped
/// unread. The body is the HTTP response's (the device describes itself); call it for
/// response bodies only. Stops silently at malformed XML, keeping what it found.
pub fn metadata_facts(body: &[u8], out: &mut Vec<Fact>) {
    let start = body
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(body)
        .trim_ascii_start();
    if start.first() != Some(&b'<') {
        return;
    }
    let mut sc = Scanner::new(body);
    let mut scope = Scope::new();
    let mut text = Vec::new();
    let mut part: Option<(Field, usize)> = None;
    let mut pushed = 0usize;
    while let Some(Ok((at, tok))) = sc.next() {
        match tok {
            Token::Start { name, attrs, empty } => {
                let Ok((ns, local)) = scope.open(at, name, attrs) else {
                    return;
                };
                let d = scope.depth();
                let parent = d.checked_sub(1).and_then(|p| scope.at(p));
                if part.is_none() && ns == NS_DPWS {
                    part = match (parent, local) {
                        (Some((NS_DPWS, b"ThisModel")), b"Manufacturer") => {
                            Some((Field::SdcManufacturer, d))
                        }
                        (Some((NS_DPWS, b"ThisModel")), b"ModelName") => {
                            Some((Field::SdcModelName, d))
                        }
                        (Some((NS_DPWS, b"ThisModel")), b"ModelNumber") => {
                            Some((Field::SdcModelNumber, d))
                        }
                        (Some((NS_DPWS, b"ThisModel")), b"ModelUrl") => {
                            Some((Field::SdcModelUrl, d))
                        }
                        (Some((NS_DPWS, b"ThisDevice")), b"FriendlyName") => {
                            Some((Field::SdcFriendlyName, d))
                        }
                        (Some((NS_DPWS, b"ThisDevice")), b"FirmwareVersion") => {
                            Some((Field::SdcFirmwareVersion, d))
                        }
                        (Some((NS_DPWS, b"ThisDevice")), b"SerialNumber") => {
                            Some((Field::SdcSerialNumber, d))
                        }
                        _ => None,
                    };
                    text.clear();
                } else if part.is_some_and(|(_, pd)| d > pd) {
                    part = None;
                }
                if empty {
                    if part.is_some_and(|(_, pd)| pd == d) {
                        part = None;
                    }
                    if scope.close(at, name).is_err() {
                        return;
                    }
                }
            }
            Token::End { name } => {
                if let Some((field, pd)) = part {
                    if pd == scope.depth() {
                        let v = clean(&text);
                        if !v.is_empty() && !out.iter().any(|f| f.field == field && f.value == v) {
                            out.push(Fact::new(field, v));
                            pushed += 1;
                        }
                        part = None;
                    }
                }
                if scope.close(at, name).is_err() || pushed >= MAX_FACTS {
                    return;
                }
            }
            Token::Text(t) if part.is_some() => {
                if push_text(&mut text, t, at).is_err() {
                    part = None;
                }
            }
            Token::CData(t) if part.is_some() => {
                let room = MAX_TEXT.saturating_sub(text.len());
                text.extend_from_slice(t.get(..room.min(t.len())).unwrap_or_default());
            }
            Token::Text(_) | Token::CData(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Captured by tests/captures/generate.sh (scenario_sdc): sdc11073 3.0.0 provider and
    // consumer, UDP payloads of tests/fixtures/sdc.pcap and two HTTP response bodies.
    const HELLO: &[u8] = include_bytes!("../testdata/sdc/hello.bin");
    const PROBE: &[u8] = include_bytes!("../testdata/sdc/probe.bin");
    const PROBE_MATCHES: &[u8] = include_bytes!("../testdata/sdc/probe_matches.bin");
    const BYE: &[u8] = include_bytes!("../testdata/sdc/bye.bin");
    const METADATA: &[u8] = include_bytes!("../testdata/sdc/metadata_response_body.xml");
    const GET_MDIB: &[u8] = include_bytes!("../testdata/sdc/get_mdib_response_body.xml");

    const EPR: &str = "urn:uuid:5741524e-5344-4300-8000-574f58333030";

    fn facts(b: &[u8]) -> Vec<Fact> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out
    }

    fn values(b: &[u8], field: Field) -> Vec<String> {
        facts(b)
            .into_iter()
            .filter(|f| f.field == field)
            .map(|f| f.value)
            .collect()
    }

    fn announces_the_provider(b: &[u8]) {
        assert_eq!(values(b, Field::SdcEpr), [EPR]);
        assert_eq!(
            values(b, Field::SdcType),
            ["dpws:Device", "mdpws:MedicalDevice"]
        );
        // http://192.0.2.10:6464/5741524e534443008000574f58333030 on the wire: path dropped.
        assert_eq!(values(b, Field::SdcXaddr), ["http://192.0.2.10:6464"]);
        assert_eq!(values(b, Field::SdcLocationFacility), ["WARDHOSP"]);
        assert_eq!(values(b, Field::SdcLocationBuilding), ["NorthWing"]);
        assert_eq!(values(b, Field::SdcLocationFloor), ["3"]);
        assert_eq!(values(b, Field::SdcLocationRoom), ["ICU-12"]);
        assert_eq!(values(b, Field::SdcLocationBed), ["Bed7"]);
        assert_eq!(values(b, Field::SdcLocationPointOfCare), ["ICU"]);
        assert_eq!(values(b, Field::SdcDeviceClass), ["69641"]);
        assert_eq!(values(b, Field::SdcMetadataVersion), ["1"]);
    }

    #[test]
    fn hello_announces_the_provider() {
        assert_eq!(kind(HELLO), Ok(Kind::Hello));
        assert_eq!(values(HELLO, Field::SdcMessage), ["Hello"]);
        announces_the_provider(HELLO);
        assert_eq!(direction(HELLO), Direction::Unknown);
    }

    #[test]
    fn probe_match_describes_the_provider() {
        assert_eq!(kind(PROBE_MATCHES), Ok(Kind::ProbeMatches));
        announces_the_provider(PROBE_MATCHES);
        assert_eq!(direction(PROBE_MATCHES), Direction::FromServer);
    }

    #[test]
    fn probe_says_only_what_it_is() {
        let f = facts(PROBE);
        assert_eq!(f, [Fact::new(Field::SdcMessage, "Probe")]);
        assert_eq!(direction(PROBE), Direction::FromClient);
    }

    /// sdc11073's consumer found the provider by Probe alone; a ResolveMatches is the
    /// captured ProbeMatches with the WS-Discovery 1.1 §6.2 names, a Resolve names the EPR it
    /// looks for (the other device's, so it is not read).
    #[test]
    fn resolve_and_resolve_matches() {
        let rm = core::str::from_utf8(PROBE_MATCHES)
            .unwrap()
            .replace("ProbeMatch", "ResolveMatch");
        assert_eq!(kind(rm.as_bytes()), Ok(Kind::ResolveMatches));
        assert_eq!(values(rm.as_bytes(), Field::SdcMessage), ["ResolveMatches"]);
        announces_the_provider(rm.as_bytes());
        let r = core::str::from_utf8(PROBE)
            .unwrap()
            .replace("Probe", "Resolve")
            .replace(
                "<wsd:Types",
                "<wsa:EndpointReference><wsa:Address>urn:uuid:other</wsa:Address></wsa:EndpointReference><wsd:Types",
            );
        assert_eq!(
            facts(r.as_bytes()),
            [Fact::new(Field::SdcMessage, "Resolve")]
        );
        assert_eq!(direction(r.as_bytes()), Direction::FromClient);
    }

    #[test]
    fn bye_names_the_endpoint() {
        let f = facts(BYE);
        assert_eq!(
            f,
            [
                Fact::new(Field::SdcMessage, "Bye"),
                Fact::new(Field::SdcEpr, EPR)
            ]
        );
    }

    fn hello_with(types: &str, scopes: &str, xaddrs: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\"?>\n<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:a=\"http://www.w3.org/2005/08/addressing\" xmlns:d=\"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01\" \
             xmlns:x=\"http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01\">\
             <env:Header><a:Action> http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello </a:Action></env:Header>\
             <env:Body><d:Hello><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference>\
             <d:Types>{types}</d:Types><d:Scopes>{scopes}</d:Scopes><d:XAddrs>{xaddrs}</d:XAddrs>\
             </d:Hello></env:Body></env:Envelope>"
        )
        .into_bytes()
    }

    #[test]
    fn patient_and_other_scopes_are_skipped_unread() {
        let m = hello_with(
            "x:Device",
            "sdc.ctxt.pat:/urn%3Aoid%3A1/CANARYSCOPE%5EPATIENT?name=CANARYSCOPE \
             sdc.ctxt.opr:/op/CANARYOPERATOR sdc.ctxt.ens:/e/1 \
             sdc.ctxt.loc:/sdc.ctxt.loc.detail/x?fac=H%20One&amp;bed=B%2F1&amp;pat=CANARYQUERY \
             sdc.cdc.type:/urn%3Aoid%3A1.2.840.10004.1.1.1.0.0.1/2/69965 sdc.cdc.type:/LOINC//1234-5",
            "https://user:pw@[2001:db8::1]:6464/CANARYPATH?x=1 soap.udp://192.0.2.1:3702",
        );
        let f = facts(&m);
        for fact in &f {
            assert!(!fact.value.contains("CANARY"), "{fact:?}");
            assert!(!fact.value.contains("user:pw"), "{fact:?}");
        }
        assert_eq!(values(&m, Field::SdcLocationFacility), ["H One"]);
        assert_eq!(values(&m, Field::SdcLocationBed), ["B/1"]);
        assert_eq!(values(&m, Field::SdcDeviceClass), ["69965", "LOINC#1234-5"]);
        assert_eq!(
            values(&m, Field::SdcXaddr),
            ["https://[2001:db8::1]:6464", "soap.udp://192.0.2.1:3702"]
        );
        assert_eq!(values(&m, Field::SdcType), ["dpws:Device"]);
    }

    #[test]
    fn types_resolve_against_the_declarations_in_scope() {
        // Default namespace, an unknown namespace, a prefix declared on the element, an
        // undeclared prefix (dropped).
        let m = hello_with("x:Device u:Thing Plain", "", "");
        let m = String::from_utf8(m).unwrap().replace(
            "<d:Types>",
            "<d:Types xmlns:u=\"urn:example:t\" xmlns=\"urn:example:d\">",
        );
        assert_eq!(
            values(m.as_bytes(), Field::SdcType),
            [
                "dpws:Device",
                "{urn:example:t}Thing",
                "{urn:example:d}Plain"
            ]
        );
        let undeclared = hello_with("zz:Device", "", "");
        assert!(values(&undeclared, Field::SdcType).is_empty());
    }

    #[test]
    fn a_proxys_answer_with_several_matches_is_not_read() {
        let one = core::str::from_utf8(PROBE_MATCHES).unwrap();
        let start = one.find("<wsd:ProbeMatch>").unwrap();
        let end = one.find("</wsd:ProbeMatch>").unwrap() + "</wsd:ProbeMatch>".len();
        let two = format!(
            "{}{}{}",
            &one[..end],
            &one[start..end].replace("574f58333030", "000000000001"),
            &one[end..]
        );
        assert_eq!(
            facts(two.as_bytes()),
            [Fact::new(Field::SdcMessage, "ProbeMatches")]
        );
    }

    /// SDC carries patient data (BICEPS), so a provider in clear is a cleartext-PHI finding
    /// under an encryption-required contract, although discovery carries none.
    #[test]
    fn sdc_is_a_patient_data_protocol_in_clear() {
        assert!(Protocol::Sdc.carries_patient_data());
        assert!(!Protocol::Sdc.encrypts_transport());
        assert_eq!(DECODER.protocol, Protocol::Sdc);
    }

    #[test]
    fn probe_recognises_ws_discovery_only() {
        for b in [HELLO, PROBE, PROBE_MATCHES, BYE] {
            assert_eq!(probe(b), Probe::Certain);
        }
        let ssdp = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        let other_action = core::str::from_utf8(HELLO).unwrap().replace(
            "discovery/2009/01/Hello</wsa:Action>",
            "discovery/2009/01/Hullo</wsa:Action>",
        );
        let soap11 = core::str::from_utf8(HELLO).unwrap().replace(
            "http://www.w3.org/2003/05/soap-envelope",
            "http://schemas.xmlsoap.org/soap/envelope/",
        );
        for other in [
            &ssdp[..],
            b"M-SEARCH * HTTP/1.1\r\n\r\n",
            &[0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0][..],
            b"",
            b"<",
            b"<?xml version='1.0'?><root/>",
            METADATA,
            other_action.as_bytes(),
            soap11.as_bytes(),
            b"\x0bMSH|^~\\&|",
        ] {
            assert_eq!(
                probe(other),
                Probe::NotMine,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn dtd_and_unknown_entities_are_refused() {
        let dtd = format!(
            "<!DOCTYPE x [<!ENTITY e \"CANARYDTD\">]>{}",
            core::str::from_utf8(HELLO)
                .unwrap()
                .trim_start_matches("<?xml version='1.0' encoding='UTF-8'?>")
        );
        assert!(matches!(
            extract(dtd.as_bytes(), &mut Vec::new()),
            Err(DecodeError::Unsupported { .. })
        ));
        let m = hello_with("x:Device", "sdc.ctxt.loc:/x?fac=&e;", "");
        let mut out = Vec::new();
        assert!(extract(&m, &mut out).is_err());
        assert!(out.iter().all(|f| !f.value.contains("e;")));
    }

    #[test]
    fn errors_never_echo_payload() {
        let m = hello_with("x:Device", "", "").repeat(1);
        let bad = String::from_utf8(m)
            .unwrap()
            .replace("</d:Hello>", "</d:WardTestMedOops>");
        let e = extract(bad.as_bytes(), &mut Vec::new()).unwrap_err();
        assert!(!e.to_string().contains("WardTestMed"), "{e}");
        assert_eq!(e.layer(), LAYER);
    }

    #[test]
    fn metadata_names_model_and_device() {
        let mut out = Vec::new();
        metadata_facts(METADATA, &mut out);
        assert_eq!(
            out,
            [
                Fact::new(Field::SdcManufacturer, "WardTestMed"),
                Fact::new(Field::SdcModelName, "WardOx 300"),
                Fact::new(Field::SdcModelNumber, "WOX-300"),
                Fact::new(Field::SdcModelUrl, "http://wardtestmed.example/wox300"),
                Fact::new(Field::SdcFriendlyName, "WardOx 300 Bed 7"),
                Fact::new(Field::SdcFirmwareVersion, "3.4.1"),
                Fact::new(Field::SdcSerialNumber, "WOX300-0042"),
            ]
        );
    }

    #[test]
    fn metadata_reads_nothing_of_a_biceps_body() {
        // The GetMdib response of the same capture: patient context with canary names.
        assert!(GET_MDIB.windows(14).any(|w| w == b"CANARYSDCGIVEN"));
        let mut out = Vec::new();
        metadata_facts(GET_MDIB, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Nor is a GetMdib body a discovery message.
        assert_eq!(probe(GET_MDIB), Probe::NotMine);
    }

    #[test]
    fn metadata_is_utf8_and_allow_listed() {
        let body = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
                    xmlns:d=\"http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01\"><s:Body>\
                    <d:ThisModel><d:Manufacturer xml:lang=\"de\">Dr&#xE4;ger</d:Manufacturer>\
                    <d:Manufacturer>Dräger</d:Manufacturer><d:Note>CANARYNOTE</d:Note></d:ThisModel>\
                    <d:ThisDevice><d:FriendlyName><![CDATA[Vent <3>]]></d:FriendlyName></d:ThisDevice>\
                    <d:SerialNumber>CANARYOUTSIDE</d:SerialNumber></s:Body></s:Envelope>";
        let mut out = Vec::new();
        metadata_facts(body.as_bytes(), &mut out);
        assert_eq!(
            out,
            [
                Fact::new(Field::SdcManufacturer, "Dräger"),
                Fact::new(Field::SdcFriendlyName, "Vent <3>"),
            ]
        );
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=METADATA.len()) {
            for b in [HELLO, PROBE, PROBE_MATCHES, BYE] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                let _ = direction(t);
                prop_assert!(out.len() <= MAX_FACTS + 1);
                for f in &out {
                    prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                }
            }
            let t = METADATA.get(..cut).unwrap();
            let mut out = Vec::new();
            metadata_facts(t, &mut out);
            prop_assert!(out.len() <= MAX_FACTS);
        }

        #[test]
        fn mutations_never_panic(at in 0usize..3300, byte in any::<u8>()) {
            for b in [HELLO, PROBE_MATCHES, BYE, METADATA, GET_MDIB] {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                metadata_facts(&m, &mut out);
                prop_assert!(out.len() <= 2 * MAX_FACTS + 1);
                prop_assert!(out.iter().all(|f| !f.value.contains("CANARY")));
            }
        }
    }
}
