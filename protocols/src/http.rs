//! HTTP/1.x (RFC 9112) message heads: the client's `User-Agent` and `Host`, the server's
//! `Server`, `X-Powered-By` and `WWW-Authenticate` realm.
//!
//! HTTP is where patient data travels in the clear on a clinical network: request targets
//! (`/patients/4711?name=…`), bodies and cookies carry it. So this decoder reads message
//! *heads* only, and of a head only the header lines whose name is on [`ALLOWED`]; the request
//! line (method, path, query) is checked for shape and never copied, and every other header
//! (`Cookie`, `Authorization`, `Referer`, …) is skipped by its name alone. Framing headers
//! (`Content-Length`, `Transfer-Encoding`) are parsed as numbers/flags to find where the next
//! message starts, never kept.
//!
//! Streaming: each direction is consumed one complete header line at a time, so what is held
//! between segments is at most one partial line; a head longer than [`MAX_HEAD_BYTES`] ends the
//! direction. Bodies are skipped by `Content-Length` (and absent for requests without one, HEAD
//! responses, 1xx/204/304), so keep-alive and pipelined messages are read up to
//! [`MAX_MESSAGES`] per direction; a chunked or close-delimited body ends the direction (what a
//! device says about itself is in its first head, and the rest of such a stream is body).
//!
//! One kind of body is read: a `200` response whose `Content-Type` is XML is offered, by
//! `Content-Length`, de-chunked or up to the connection's close, to [`upnp`]'s scanner, which
//! reads on only when the document is a UPnP device description (its root element and
//! namespace, in the first bytes) and then copies only the allow-listed elements of its
//! devices. Every other body is still skipped by count without being looked at.
//!
//! Recognised by structure on any port ([`looks_like_http`]): a request line
//! `TOKEN SP target SP HTTP/1.x CRLF` or a status line `HTTP/1.x SP 3DIGIT`.

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::fhir;
use crate::registry::{AppDecoder, Decode, Probe};
use crate::sdc;
use crate::upnp::{self, DescriptionScanner};
use crate::{Feed, StreamDecoder};

/// Longest message head (start line plus header lines) read; past it the direction is dropped.
/// Servers commonly cap heads at 8–16 KiB too.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest request line the probe waits for before deciding a stream is not HTTP.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Messages read per direction (keep-alive, pipelining); later ones repeat the same headers.
pub const MAX_MESSAGES: u8 = 8;
/// Longest method token accepted by the probe (`PROPPATCH`, `MKCALENDAR`…).
const MAX_METHOD: usize = 16;
/// Largest SOAP response body collected for DPWS metadata (sdc11073's GetMetadata response is
/// about 3 KiB; a BICEPS GetMdib answer is larger and is not metadata).
const MAX_SOAP_BODY: usize = 64 * 1024;

/// What a collected body is read for once complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collected {
    /// DPWS GetMetadata (SOAP 1.2 response).
    Soap,
    /// A FHIR resource; `request`: sent by the client (its own identity may be read).
    Fhir { request: bool },
}

/// `Content-Type: application/soap+xml` (SOAP 1.2, RFC 3902), parameters aside.
fn is_soap_media_type(value: &[u8]) -> bool {
    value
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/soap+xml")
}

/// Longest chunk-size or trailer line of a chunked description body.
const MAX_CHUNK_LINE: usize = 1024;

/// The header names ward reads, with the field each becomes and the message kind it is read
/// from (requests describe the client, responses the server). Compared case-insensitively
/// (RFC 9110 §5.1).
pub const ALLOWED: &[(&str, Field, Kind)] = &[
    ("user-agent", Field::HttpUserAgent, Kind::Request),
    ("host", Field::HttpHost, Kind::Request),
    ("server", Field::HttpServer, Kind::Response),
    ("x-powered-by", Field::HttpPoweredBy, Kind::Response),
    ("www-authenticate", Field::HttpAuthRealm, Kind::Response),
];

/// Whether a message is a request or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request (sent by the client).
    Request,
    /// A response (sent by the server).
    Response,
}

/// HTTP's entry in [`crate::registry`]: a TCP protocol found by [`looks_like_http`]. It cannot
/// join mid-stream (a header line alone does not say where a head starts).
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Http,
    probe: |prefix| Probe::from(looks_like_http(prefix)),
    resync: None,
    decode: Decode::Stream(|| Box::new(HttpDecoder::default())),
};

/// Tells whether a stream direction starts with an HTTP/1.x request line or status line.
///
/// `Some(true)`: a complete request line `TOKEN SP target SP HTTP/1.<d>` ending in (CR)LF, or a
/// status line start `HTTP/1.<d> SP <3 digits>`; `Some(false)`: the bytes rule it out; `None`:
/// too few bytes yet. Linear in the first line, bounded by [`MAX_REQUEST_LINE`].
#[must_use]
pub fn looks_like_http(prefix: &[u8]) -> Option<bool> {
    const STATUS: &[u8] = b"HTTP/1.";
    if prefix.first() == Some(&b'H') && prefix.get(1).is_none_or(|&b| b == b'T') {
        // "H" or "HT…": a status line, or a HEAD request.
        let n = prefix.len().min(STATUS.len());
        if prefix.get(..n) == STATUS.get(..n) {
            return status_line_start(prefix);
        }
    }
    request_line(prefix)
}

/// `HTTP/1.<d> SP <3 digits>`.
fn status_line_start(p: &[u8]) -> Option<bool> {
    let checks: [fn(u8) -> bool; 5] = [
        |b| b == b'0' || b == b'1',
        |b| b == b' ',
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
    ];
    for (i, ok) in checks.iter().enumerate() {
        match p.get(7 + i) {
            None => return None,
            Some(&b) if !ok(b) => return Some(false),
            Some(_) => {}
        }
    }
    Some(true)
}

/// `TOKEN SP target SP HTTP/1.<d> (CR)LF`, the method in upper case (every registered method
/// is), the target without spaces or controls.
fn request_line(p: &[u8]) -> Option<bool> {
    let method = p
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || **b == b'-')
        .count();
    match p.get(method) {
        None if method <= MAX_METHOD => return None,
        Some(b' ') if (1..=MAX_METHOD).contains(&method) => {}
        _ => return Some(false),
    }
    let rest = p.get(method + 1..).unwrap_or(&[]);
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        if rest.iter().any(|&b| b < 0x20 && b != b'\r' || b == 0x7f) {
            return Some(false);
        }
        return if p.len() < MAX_REQUEST_LINE {
            None
        } else {
            Some(false)
        };
    };
    let line = strip_cr(p.get(..method + 1 + end).unwrap_or(&[]));
    Some(request_method(line).is_some())
}

/// The method of a complete request line (without its line end) when the line has the shape
/// [`looks_like_http`] wants; the target is checked, never returned.
fn request_method(line: &[u8]) -> Option<&[u8]> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let (method, rest) = line.split_at(sp);
    let rest = rest.get(1..)?;
    if method.is_empty()
        || method.len() > MAX_METHOD
        || !method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-')
    {
        return None;
    }
    let sp = rest.iter().rposition(|&b| b == b' ')?;
    let (target, version) = rest.split_at(sp);
    let version = version.get(1..)?;
    let target_ok = !target.is_empty() && target.iter().all(|&b| b > 0x20 && b != 0x7f);
    (target_ok && matches!(version, b"HTTP/1.0" | b"HTTP/1.1")).then_some(method)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where a direction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting a request or status line (empty lines before it are skipped, RFC 9112 §2.2).
    #[default]
    StartLine,
    /// Inside a head, reading header lines.
    Headers,
    /// Skipping this many body bytes.
    Body(u64),
    /// An XML response body offered to the description scanner: this many bytes left, or
    /// `None` up to the connection's close.
    Description(Option<u64>),
    /// A chunked XML body: expecting a chunk-size line.
    ChunkSize,
    /// This many bytes of chunk data left (offered to the description scanner).
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to the empty line.
    Trailers,
    /// Nothing more is read from this direction.
    Done,
}

/// One direction's progress.
#[derive(Debug, Default)]
struct Side {
    state: State,
    /// Bytes of the current head consumed so far.
    head_bytes: usize,
    /// Heads completed.
    messages: u8,
    /// The current message's kind and framing.
    kind: Option<Kind>,
    status: u16,
    content_length: Option<u64>,
    /// A `Transfer-Encoding` header (chunked or otherwise): the body's end is not a count.
    encoded: bool,
    /// The last transfer coding is `chunked` (RFC 9112 §6.1).
    chunked: bool,
    /// A response's `Content-Type` is XML (`text/xml`, `application/xml`, or SOAP's
    /// `application/soap+xml`).
    xml: bool,
    /// That XML is a SOAP 1.2 message (`application/soap+xml`): a DPWS GetMetadata response
    /// names an SDC device.
    soap: bool,
    /// The message's `Content-Type` is JSON (`application/fhir+json`, `application/json`): a
    /// FHIR resource, possibly ([`fhir`]).
    json: bool,
    /// A framing header that did not parse: where the next message starts is unknown.
    bad_framing: bool,
    /// Final responses seen (which request each answers, for HEAD/CONNECT).
    responses: u8,
    /// The description scanner of the XML response body this side is reading, if any.
    description: Option<Box<DescriptionScanner>>,
    /// The SOAP or JSON body this side is collecting (at most [`MAX_SOAP_BODY`] bytes), read
    /// once complete ([`sdc::metadata_facts`] and [`fhir::body_facts`] need the whole document).
    metadata: Option<(Collected, Vec<u8>)>,
}

/// The per-connection decoder: the state of each direction plus what the requests say about their responses.
#[derive(Debug, Default)]
pub struct HttpDecoder {
    sides: [Side; 2],
    /// Bit `i` set: request `i` was HEAD (its response has no body).
    head_requests: u16,
    /// Bit `i` set: request `i` was CONNECT (a 2xx answer turns the connection into a tunnel).
    connect_requests: u16,
    /// Requests seen (across the client side).
    requests: u8,
    /// The side that sent a request: the client.
    client: Option<Direction>,
    /// Facts already emitted, so repeated heads on a keep-alive connection add nothing. At most
    /// [`MAX_MESSAGES`] × ([`ALLOWED`] + [`upnp::MAX_FACTS`]) entries per direction.
    emitted: Vec<Fact>,
}

impl HttpDecoder {
    fn side_index(side: Direction) -> usize {
        usize::from(side == Direction::FromServer)
    }

    fn emit(&mut self, fact: Fact, facts: &mut Vec<Fact>) {
        if fact.value.is_empty() || self.emitted.contains(&fact) {
            return;
        }
        self.emitted.push(fact.clone());
        facts.push(fact);
    }

    /// Handles one complete line (without its LF) of side `i`, moving its state on (to
    /// [`State::Done`] when the line is not HTTP).
    fn line(&mut self, i: usize, dir: Direction, line: &[u8], facts: &mut Vec<Fact>) {
        let line = strip_cr(line);
        let Some(s) = self.sides.get_mut(i) else {
            return;
        };
        match s.state {
            State::StartLine => {
                if line.is_empty() {
                    return;
                }
                s.content_length = None;
                s.encoded = false;
                s.chunked = false;
                s.xml = false;
                s.soap = false;
                s.json = false;
                s.bad_framing = false;
                if let Some(status) = parse_status(line) {
                    s.kind = Some(Kind::Response);
                    s.status = status;
                } else if let Some(method) = request_method(line) {
                    s.kind = Some(Kind::Request);
                    let bit = 1u16.checked_shl(u32::from(self.requests)).unwrap_or(0);
                    if method == b"HEAD" {
                        self.head_requests |= bit;
                    } else if method == b"CONNECT" {
                        self.connect_requests |= bit;
                    }
                    self.requests = self.requests.saturating_add(1);
                    self.client.get_or_insert(dir);
                } else {
                    s.state = State::Done;
                    return;
                }
                s.state = State::Headers;
            }
            State::Headers if line.is_empty() => self.end_of_head(i),
            State::Headers => {
                let kind = s.kind;
                self.header(i, kind, line, facts);
            }
            State::Body(_)
            | State::Description(_)
            | State::ChunkSize
            | State::ChunkData(_)
            | State::ChunkEnd
            | State::Trailers
            | State::Done => {}
        }
    }

    fn header(&mut self, i: usize, kind: Option<Kind>, line: &[u8], facts: &mut Vec<Fact>) {
        // obs-fold continuation lines (RFC 9112 §5.2) start with whitespace: never a wanted
        // header's first line, so skipped like any other.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let (name, value) = line.split_at(colon);
        let value = trim_ows(value.get(1..).unwrap_or(&[]));
        if name.eq_ignore_ascii_case(b"content-length") {
            if let Some(s) = self.sides.get_mut(i) {
                match (parse_decimal(value), s.content_length) {
                    (Some(n), None) => s.content_length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => s.bad_framing = true,
                }
            }
            return;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if let Some(s) = self.sides.get_mut(i) {
                s.encoded = true;
                let last = value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
                s.chunked = trim_ows(last).eq_ignore_ascii_case(b"chunked");
            }
            return;
        }
        if name.eq_ignore_ascii_case(b"content-type") {
            // Only whether the body may be a UPnP description; the value is not kept.
            if let Some(s) = self.sides.get_mut(i) {
                let soap = is_soap_media_type(value);
                s.xml = kind == Some(Kind::Response) && (soap || upnp::is_xml_media_type(value));
                s.soap = kind == Some(Kind::Response) && soap;
                s.json = fhir::is_json_media_type(value);
            }
            return;
        }
        let Some(&(_, field, want)) = ALLOWED
            .iter()
            .find(|(n, _, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        else {
            return;
        };
        if kind != Some(want) {
            return;
        }
        let value = if field == Field::HttpAuthRealm {
            match realm(value) {
                Some(r) => r,
                None => return,
            }
        } else {
            clean_text(value)
        };
        let serial = (field == Field::HttpUserAgent)
            .then(|| user_agent_serial(&value))
            .flatten()
            .map(str::to_owned);
        self.emit(Fact::new(field, value), facts);
        if let Some(serial) = serial {
            self.emit(Fact::new(Field::HttpUserAgentSerial, serial), facts);
        }
    }

    /// The blank line after a head: decide where the next message starts.
    fn end_of_head(&mut self, i: usize) {
        let (heads, connects) = (self.head_requests, self.connect_requests);
        let Some(s) = self.sides.get_mut(i) else {
            return;
        };
        s.messages = s.messages.saturating_add(1);
        s.head_bytes = 0;
        let bit = 1u16.checked_shl(u32::from(s.responses)).unwrap_or(0);
        // A 200 answer with an XML body (not to HEAD) may be a UPnP device description or DPWS
        // metadata; a 2xx answer or a request with a JSON body may be a FHIR resource.
        let response = s.kind == Some(Kind::Response);
        let answer_body = response && heads & bit == 0 && connects & bit == 0;
        let fhir = s.json
            && (s.kind == Some(Kind::Request) || (answer_body && (200..300).contains(&s.status)));
        let description = !s.bad_framing && (fhir || (answer_body && s.status == 200 && s.xml));
        let next = if description {
            if response {
                s.responses = s.responses.saturating_add(1);
            }
            match (s.encoded, s.chunked, s.content_length) {
                (true, true, _) => State::ChunkSize,
                (true, false, _) => State::Done,
                (false, _, Some(0)) => State::StartLine,
                // A request without a length has no body (RFC 9112 §6.3).
                (false, _, None) if !response => State::StartLine,
                (false, _, n) => State::Description(n),
            }
        } else if s.bad_framing || s.encoded {
            State::Done
        } else {
            match s.kind {
                Some(Kind::Request) => match s.content_length {
                    Some(n) if n > 0 => State::Body(n),
                    _ => State::StartLine,
                },
                Some(Kind::Response) if (100..200).contains(&s.status) => State::StartLine,
                Some(Kind::Response) => {
                    s.responses = s.responses.saturating_add(1);
                    if connects & bit != 0 && (200..300).contains(&s.status) {
                        State::Done
                    } else if heads & bit != 0 || s.status == 204 || s.status == 304 {
                        State::StartLine
                    } else {
                        match s.content_length {
                            Some(0) => State::StartLine,
                            Some(n) => State::Body(n),
                            None => State::Done,
                        }
                    }
                }
                None => State::Done,
            }
        };
        let scanning = matches!(next, State::Description(_) | State::ChunkSize);
        s.state = if s.messages >= MAX_MESSAGES && !scanning {
            State::Done
        } else {
            next
        };
        let collect = if fhir {
            Some(Collected::Fhir { request: !response })
        } else if s.soap {
            Some(Collected::Soap)
        } else {
            None
        };
        s.description =
            (scanning && collect.is_none()).then(|| Box::new(DescriptionScanner::new()));
        s.metadata = collect.filter(|_| scanning).map(|c| (c, Vec::new()));
    }

    /// Offers body bytes to the description scanner, if one is reading; its facts describe the
    /// server (their field roles say so).
    fn scan(&mut self, i: usize, body: &[u8], facts: &mut Vec<Fact>) {
        let Some(s) = self.sides.get_mut(i) else {
            return;
        };
        if let Some((_, buf)) = s.metadata.as_mut() {
            // A body too big for metadata is not a GetMetadata response: drop it unread.
            if buf.len() + body.len() > MAX_SOAP_BODY {
                s.metadata = None;
            } else {
                buf.extend_from_slice(body);
            }
            return;
        }
        let Some(scanner) = s.description.as_mut() else {
            return;
        };
        let mut found = Vec::new();
        if !scanner.feed(body, &mut found) {
            s.description = None;
        }
        for f in found {
            self.emit(f, facts);
        }
    }

    /// The end of a description body: the next message starts, unless this was the last one
    /// read.
    fn body_done(&mut self, i: usize, facts: &mut Vec<Fact>) {
        let body = self.sides.get_mut(i).and_then(|s| s.metadata.take());
        if let Some((kind, body)) = body {
            let mut found = Vec::new();
            match kind {
                Collected::Soap => sdc::metadata_facts(&body, &mut found),
                // A request's Device resource is its sender describing itself; a response's
                // resources describe neither end (see fhir's module docs).
                Collected::Fhir { request } => fhir::body_facts(&body, request, &mut found),
            }
            for f in found {
                self.emit(f, facts);
            }
        }
        if let Some(s) = self.sides.get_mut(i) {
            s.description = None;
            s.state = if s.messages >= MAX_MESSAGES {
                State::Done
            } else {
                State::StartLine
            };
        }
    }

    fn scanning(&self, i: usize) -> bool {
        self.sides
            .get(i)
            .is_some_and(|s| s.description.is_some() || s.metadata.is_some())
    }

    fn set_state(&mut self, i: usize, state: State) {
        if let Some(s) = self.sides.get_mut(i) {
            s.state = state;
        }
    }

    /// One line of a chunked body's framing (without its LF); `false` when it is malformed and
    /// the direction ends.
    fn chunk_line(&mut self, i: usize, state: State, line: &[u8], facts: &mut Vec<Fact>) -> bool {
        let line = strip_cr(line);
        match state {
            State::ChunkSize => {
                // chunk-size [ chunk-ext ] (RFC 9112 §7.1): the extensions are not read.
                let end = line
                    .iter()
                    .position(|&b| b == b';' || b == b' ' || b == b'\t')
                    .unwrap_or(line.len());
                let Some(size) = parse_hex(line.get(..end).unwrap_or(&[])) else {
                    return false;
                };
                self.set_state(
                    i,
                    if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    },
                );
                true
            }
            State::ChunkEnd if line.is_empty() => {
                self.set_state(i, State::ChunkSize);
                true
            }
            State::Trailers if line.is_empty() => {
                self.body_done(i, facts);
                true
            }
            // Trailer fields are skipped unread.
            State::Trailers => true,
            _ => false,
        }
    }
}

impl StreamDecoder for HttpDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let i = Self::side_index(side);
        let mut pos = 0usize;
        loop {
            let Some(state) = self.sides.get(i).map(|s| s.state) else {
                return Feed::Done;
            };
            let rest = data.get(pos..).unwrap_or(&[]);
            match state {
                State::Done => return Feed::Done,
                State::Body(remaining) => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    pos += n;
                    let left = remaining - n as u64;
                    if let Some(s) = self.sides.get_mut(i) {
                        s.state = if left == 0 {
                            State::StartLine
                        } else {
                            State::Body(left)
                        };
                    }
                    if left > 0 {
                        break;
                    }
                }
                State::Description(None) => {
                    // Close-delimited: everything to the end is this body.
                    self.scan(i, rest, facts);
                    pos += rest.len();
                    if !self.scanning(i) {
                        return Feed::Done;
                    }
                    break;
                }
                State::Description(Some(remaining)) | State::ChunkData(remaining) => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    self.scan(i, rest.get(..n).unwrap_or(&[]), facts);
                    pos += n;
                    let left = remaining - n as u64;
                    match (state, left) {
                        (State::ChunkData(_), 0) => self.set_state(i, State::ChunkEnd),
                        (State::ChunkData(_), _) => self.set_state(i, State::ChunkData(left)),
                        (_, 0) => self.body_done(i, facts),
                        // The scanner has seen all it wants: the rest is skipped by count.
                        _ if !self.scanning(i) => self.set_state(i, State::Body(left)),
                        _ => self.set_state(i, State::Description(Some(left))),
                    }
                    if left > 0 {
                        break;
                    }
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_CHUNK_LINE || (at_limit && pos == 0) {
                            return Feed::Done;
                        }
                        break;
                    };
                    if end > MAX_CHUNK_LINE
                        || !self.chunk_line(i, state, rest.get(..end).unwrap_or(&[]), facts)
                    {
                        return Feed::Done;
                    }
                    pos += end + 1;
                }
                State::StartLine | State::Headers => {
                    let head = self.sides.get(i).map_or(0, |s| s.head_bytes);
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        // A partial line: wait for the rest, unless the head is already too
                        // long or nothing more will come.
                        if head + rest.len() > MAX_HEAD_BYTES || (at_limit && pos == 0) {
                            return Feed::Done;
                        }
                        break;
                    };
                    if head + end + 1 > MAX_HEAD_BYTES {
                        return Feed::Done;
                    }
                    if let Some(s) = self.sides.get_mut(i) {
                        s.head_bytes = head + end + 1;
                    }
                    self.line(i, side, rest.get(..end).unwrap_or(&[]), facts);
                    pos += end + 1;
                }
            }
        }
        Feed::Consumed(pos)
    }

    fn client(&self) -> Option<Direction> {
        self.client
    }
}

/// The status code of a status line `HTTP/1.<d> SP 3DIGIT [SP reason]`.
fn parse_status(line: &[u8]) -> Option<u16> {
    if looks_like_http(line) != Some(true) || !line.starts_with(b"HTTP/1.") {
        return None;
    }
    let code = line.get(9..12)?;
    if line.get(12).is_some_and(|&b| b != b' ') {
        return None;
    }
    core::str::from_utf8(code).ok()?.parse().ok()
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A chunk size: 1–15 hex digits (a larger chunk would not fit the count).
fn parse_hex(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 15 || !v.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(core::str::from_utf8(v).ok()?, 16).ok()
}

/// A `Content-Length` value: 1–19 digits.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(v).ok()?.parse().ok()
}

/// The `realm` auth-param of a `WWW-Authenticate` value (RFC 9110 §11.5: quoted-string or
/// token), the first one if there are several challenges. Nothing else of the challenge (nonce,
/// opaque, …) is read.
pub fn realm(value: &[u8]) -> Option<String> {
    let mut at = 0usize;
    while let Some(off) = find_ci(value.get(at..)?, b"realm") {
        let start = at + off;
        at = start + 5;
        // A whole parameter name: preceded by the scheme's space, a comma or the start.
        let before_ok = start == 0 || matches!(value.get(start - 1), Some(b' ' | b'\t' | b','));
        let after = trim_ows(value.get(at..).unwrap_or(&[]));
        let Some(rest) = after.strip_prefix(b"=") else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let rest = trim_ows(rest);
        let mut out = Vec::new();
        if let Some(q) = rest.strip_prefix(b"\"") {
            let mut escaped = false;
            for &b in q {
                match (escaped, b) {
                    (false, b'\\') => escaped = true,
                    (false, b'"') => break,
                    _ => {
                        escaped = false;
                        out.push(b);
                    }
                }
            }
        } else {
            out.extend(rest.iter().take_while(|&&b| b != b',' && b != b' '));
        }
        return Some(clean_text(&out));
    }
    None
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Keys an embedded client uses for its serial number in a `User-Agent` comment, longest first
/// so `serialnumber` is not read as `serial` followed by `number`.
const SERIAL_KEYS: [&str; 6] = [
    "serialnumber",
    "serial_number",
    "serial-number",
    "serial",
    "s/n",
    "sn",
];

/// The value of a serial-number key in a `User-Agent` (`SN=A1B2C3`, `Serial: 12345`,
/// `S/N 0042`): a key at a token start (after `(`, `;`, `,`, a space or at the beginning),
/// then `=`, `:` or spaces, then 3 to 40 letters, digits, `.`, `_` or `-`. One pass over the
/// (already bounded) value; the first key wins.
fn user_agent_serial(ua: &str) -> Option<&str> {
    let bytes = ua.as_bytes();
    let mut at_token_start = true;
    for (i, &b) in bytes.iter().enumerate() {
        if at_token_start {
            let rest = bytes.get(i..).unwrap_or_default();
            for key in SERIAL_KEYS {
                let Some(head) = rest.get(..key.len()) else {
                    continue;
                };
                if !head.eq_ignore_ascii_case(key.as_bytes()) {
                    continue;
                }
                let after = rest.get(key.len()..).unwrap_or_default();
                let sep = after
                    .iter()
                    .take_while(|c| matches!(c, b' ' | b'=' | b':' | b'#'))
                    .count();
                let value = after.get(sep..).unwrap_or_default();
                let len = value
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                    .count();
                if sep == 0 || !(3..=40).contains(&len) {
                    continue;
                }
                let start = i + key.len() + sep;
                // Must hold a digit: `SN=none` or `Serial: unknown` names nothing.
                let v = ua.get(start..start + len)?;
                if v.bytes().any(|c| c.is_ascii_digit()) {
                    return Some(v);
                }
            }
        }
        at_token_start = matches!(b, b'(' | b';' | b',' | b' ');
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A curl request and a Python http.server response carrying patient canaries in the path,
    /// query, cookies and body (tests/fixtures/http.pcap, the first request and response).
    const REQUEST: &[u8] = include_bytes!("../testdata/http/request.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/http/response.bin");

    fn run(chunks: &[(Direction, &[u8])]) -> (Vec<Fact>, HttpDecoder) {
        let mut dec = HttpDecoder::default();
        let mut facts = Vec::new();
        let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for (dir, chunk) in chunks {
            let i = HttpDecoder::side_index(*dir);
            pending[i].extend_from_slice(chunk);
            match dec.feed(*dir, &pending[i], false, &mut facts) {
                Feed::Consumed(n) => {
                    pending[i].drain(..n);
                }
                Feed::Done => pending[i].clear(),
            }
        }
        (facts, dec)
    }

    fn value(facts: &[Fact], f: Field) -> Option<&str> {
        facts
            .iter()
            .find(|x| x.field == f)
            .map(|x| x.value.as_str())
    }

    fn assert_no_canary(facts: &[Fact]) {
        for f in facts {
            assert!(!f.value.contains("CANARY"), "{f:?}");
            assert!(!f.value.contains("1923"), "{f:?}");
        }
    }

    #[test]
    fn captured_exchange_gives_the_allow_listed_headers_only() {
        let (facts, dec) = run(&[
            (Direction::FromClient, REQUEST),
            (Direction::FromServer, RESPONSE),
        ]);
        assert_eq!(value(&facts, Field::HttpUserAgent), Some("curl/7.88.1"));
        assert_eq!(value(&facts, Field::HttpHost), Some("192.0.2.20:8080"));
        assert_eq!(
            value(&facts, Field::HttpServer),
            Some("WardTestMed-VitalsHub/3.2.1 (WTM-VH300)")
        );
        assert_eq!(
            value(&facts, Field::HttpPoweredBy),
            Some("WardTestMed Embedded Web 1.4")
        );
        assert_eq!(
            value(&facts, Field::HttpAuthRealm),
            Some("WardTestMed VH-300 Vitals Gateway")
        );
        assert_eq!(facts.len(), 5, "{facts:?}");
        assert_no_canary(&facts);
        assert_eq!(dec.client(), Some(Direction::FromClient));
        // The raw bytes do carry the canaries the facts must not.
        assert!(REQUEST.windows(6).any(|w| w == b"CANARY"));
        assert!(RESPONSE.windows(6).any(|w| w == b"CANARY"));
    }

    #[test]
    fn every_split_point_gives_the_same_facts() {
        for (dir, bytes) in [
            (Direction::FromClient, REQUEST),
            (Direction::FromServer, RESPONSE),
        ] {
            let (whole, _) = run(&[(dir, bytes)]);
            assert!(!whole.is_empty());
            for cut in 0..bytes.len() {
                let (facts, _) = run(&[(dir, &bytes[..cut]), (dir, &bytes[cut..])]);
                assert_eq!(facts, whole, "{dir:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn probe_is_by_structure() {
        assert_eq!(looks_like_http(REQUEST), Some(true));
        assert_eq!(looks_like_http(RESPONSE), Some(true));
        assert_eq!(looks_like_http(b""), None);
        assert_eq!(looks_like_http(b"GE"), None);
        assert_eq!(looks_like_http(b"GET /a?b=c"), None);
        assert_eq!(looks_like_http(b"HTTP/1."), None);
        assert_eq!(looks_like_http(b"HTTP/1.1 2"), None);
        assert_eq!(looks_like_http(b"HEAD / HTTP/1.0\r\n"), Some(true));
        assert_eq!(looks_like_http(b"HTTP/2.0 200"), Some(false));
        assert_eq!(looks_like_http(b"PRI * HTTP/2.0\r\n"), Some(false));
        assert_eq!(looks_like_http(b"EHLO mail\r\n"), Some(false));
        assert_eq!(
            looks_like_http(b"DESCRIBE rtsp://x/ RTSP/1.0\r\n"),
            Some(false)
        );
        assert_eq!(looks_like_http(b"SSH-2.0-OpenSSH_9.6\r\n"), Some(false));
        assert_eq!(looks_like_http(b"\x0bMSH|^~\\&|"), Some(false));
        assert_eq!(looks_like_http(&[1, 0, 0, 0, 0, 68, 0, 1]), Some(false));
        assert_eq!(looks_like_http(b"get / HTTP/1.1\r\n"), Some(false));
        let long = [b"GET /".as_slice(), &[b'a'; MAX_REQUEST_LINE]].concat();
        assert_eq!(looks_like_http(&long), Some(false));
    }

    #[test]
    fn keep_alive_and_pipelined_messages_skip_bodies() {
        let c = b"POST /p?CANARY=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n\
                  User-Agent: CANARY-in-body\r\n\
                  GET /q HTTP/1.1\r\nUser-Agent: second/2\r\nHost: b\r\n\r\n\
                  HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";
        let s = b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 200 OK\r\nServer: one\r\nContent-Length: 21\r\n\r\n\
                  Server: CANARY-body\r\n\
                  HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: two\r\n\r\n\
                  5\r\nServer: CANARY\r\n";
        let (facts, _) = run(&[(Direction::FromClient, c), (Direction::FromServer, s)]);
        let got: Vec<(Field, &str)> = facts.iter().map(|f| (f.field, f.value.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Field::HttpHost, "a"),
                (Field::HttpUserAgent, "second/2"),
                (Field::HttpHost, "b"),
                (Field::HttpServer, "one"),
                (Field::HttpServer, "two"),
            ]
        );
    }

    #[test]
    fn head_responses_have_no_body() {
        let c = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let s = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nServer: first\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: second\r\n\r\n";
        let (facts, _) = run(&[(Direction::FromClient, c), (Direction::FromServer, s)]);
        assert_eq!(
            facts
                .iter()
                .filter(|f| f.field == Field::HttpServer)
                .count(),
            2
        );
    }

    #[test]
    fn headers_are_read_only_from_their_message_kind() {
        // A User-Agent in a response or a Server in a request describes no one it names.
        let c = b"GET / HTTP/1.1\r\nServer: not-me\r\nCookie: CANARY\r\n\
                  Authorization: Basic Q0FOQVJZ\r\nReferer: http://x/CANARY\r\n\r\n";
        let s = b"HTTP/1.0 401 Unauthorized\r\nUser-Agent: nope\r\n\
                  WWW-Authenticate: Digest nonce=\"realm=x\", REALM = \"Say \\\"hi\\\"\", qop=auth\r\n\
                  Set-Cookie: CANARY\r\n\r\n";
        let (facts, _) = run(&[(Direction::FromClient, c), (Direction::FromServer, s)]);
        let got: Vec<(Field, &str)> = facts.iter().map(|f| (f.field, f.value.as_str())).collect();
        assert_eq!(got, vec![(Field::HttpAuthRealm, "Say \"hi\"")]);
    }

    #[test]
    fn realm_forms() {
        assert_eq!(realm(b"Basic realm=\"R 1\"").as_deref(), Some("R 1"));
        assert_eq!(
            realm(b"Basic realm=tok, charset=UTF-8").as_deref(),
            Some("tok")
        );
        assert_eq!(realm(b"Bearer error=\"x\"").as_deref(), None);
        assert_eq!(realm(b"Basic myrealm=\"no\"").as_deref(), None);
        assert_eq!(
            realm(b"Basic realm=\"unterminated").as_deref(),
            Some("unterminated")
        );
    }

    #[test]
    fn long_heads_and_values_are_bounded() {
        let mut c = b"GET / HTTP/1.1\r\nUser-Agent: ".to_vec();
        c.extend(std::iter::repeat_n(b'u', 1000));
        c.extend_from_slice(b"\r\n");
        let (facts, _) = run(&[(Direction::FromClient, &c)]);
        assert_eq!(
            value(&facts, Field::HttpUserAgent).map(str::len),
            Some(crate::evidence::MAX_VALUE_CHARS)
        );
        // A head past the bound ends the direction, whatever follows.
        let mut c = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        c.extend(std::iter::repeat_n(b'p', MAX_HEAD_BYTES));
        c.extend_from_slice(b"\r\nUser-Agent: late\r\n\r\n");
        let mut dec = HttpDecoder::default();
        let mut facts = Vec::new();
        assert_eq!(
            dec.feed(Direction::FromClient, &c, false, &mut facts),
            Feed::Done
        );
        assert!(facts.is_empty());
        // A partial line at the reassembler's limit gives up.
        let mut dec = HttpDecoder::default();
        assert_eq!(
            dec.feed(Direction::FromClient, b"GET / HT", true, &mut facts),
            Feed::Done
        );
    }

    #[test]
    fn control_characters_never_reach_a_value() {
        let c = b"GET / HTTP/1.1\r\nUser-Agent: a\x1b[31mb\x00\r\n\r\n";
        let (facts, _) = run(&[(Direction::FromClient, c)]);
        assert_eq!(value(&facts, Field::HttpUserAgent), Some("a\u{fffd}[31mb"));
    }

    #[test]
    fn messages_per_direction_are_bounded() {
        let mut c = Vec::new();
        for i in 0..20 {
            c.extend_from_slice(format!("GET / HTTP/1.1\r\nHost: h{i}\r\n\r\n").as_bytes());
        }
        let (facts, _) = run(&[(Direction::FromClient, &c)]);
        assert_eq!(facts.len(), usize::from(MAX_MESSAGES));
    }

    /// async-upnp-client fetching minidlna's device description, a SOAP Browse carrying the
    /// canary patient and its SOAP fault (tests/fixtures/upnp.pcap).
    const UPNP_REQUEST: &[u8] = include_bytes!("../testdata/upnp/description.request.bin");
    const UPNP_RESPONSE: &[u8] = include_bytes!("../testdata/upnp/description.response.bin");
    const SOAP_REQUEST: &[u8] = include_bytes!("../testdata/upnp/browse.request.bin");
    const SOAP_RESPONSE: &[u8] = include_bytes!("../testdata/upnp/browse.response.bin");
    const SCPD_RESPONSE: &[u8] = include_bytes!("../testdata/upnp/scpd.response.bin");

    fn upnp_pairs(facts: &[Fact]) -> Vec<(Field, &str)> {
        facts
            .iter()
            .filter(|f| f.field.protocol() == Protocol::Ssdp)
            .map(|f| (f.field, f.value.as_str()))
            .collect()
    }

    #[test]
    fn upnp_description_body_is_read_by_structure() {
        let (facts, _) = run(&[
            (Direction::FromClient, UPNP_REQUEST),
            (Direction::FromServer, UPNP_RESPONSE),
        ]);
        assert_eq!(
            value(&facts, Field::HttpServer),
            Some("Debian DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0")
        );
        assert_eq!(
            upnp_pairs(&facts),
            [
                (
                    Field::SsdpDeviceType,
                    "urn:schemas-upnp-org:device:MediaServer:1"
                ),
                (Field::SsdpFriendlyName, "WardTestMed Media Station"),
                (Field::SsdpManufacturer, "Justin Maggard"),
                (Field::SsdpModelDescription, "MiniDLNA on Linux"),
                (Field::SsdpModelName, "WardTestMed MS-500"),
                (Field::SsdpModelNumber, "MS-500"),
                (Field::SsdpSerialNumber, "WTMMS500-0042"),
                (Field::SsdpUdn, "uuid:5741524e-4454-4553-544d-533530300001"),
            ]
        );
        // Split anywhere, the same facts.
        let (whole, _) = run(&[(Direction::FromServer, UPNP_RESPONSE)]);
        for cut in (0..UPNP_RESPONSE.len()).step_by(7) {
            let (facts, _) = run(&[
                (Direction::FromServer, &UPNP_RESPONSE[..cut]),
                (Direction::FromServer, &UPNP_RESPONSE[cut..]),
            ]);
            assert_eq!(facts, whole, "cut at {cut}");
        }
    }

    #[test]
    fn other_bodies_are_never_read() {
        let (facts, _) = run(&[
            (Direction::FromClient, SOAP_REQUEST),
            (Direction::FromServer, SOAP_RESPONSE),
            (Direction::FromServer, SCPD_RESPONSE),
        ]);
        assert!(upnp_pairs(&facts).is_empty(), "{facts:?}");
        assert_no_canary(&facts);
        assert!(SOAP_REQUEST.windows(6).any(|w| w == b"CANARY"));
        // A description body under another status or media type is skipped by count.
        let body = &UPNP_RESPONSE[UPNP_RESPONSE
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4..];
        for head in [
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/xml\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n",
            "HTTP/1.1 200 OK\r\n",
        ] {
            let mut m = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            m.extend_from_slice(body);
            m.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: next\r\nContent-Length: 0\r\n\r\n");
            let (facts, _) = run(&[(Direction::FromServer, &m)]);
            let got: Vec<(Field, &str)> =
                facts.iter().map(|f| (f.field, f.value.as_str())).collect();
            assert_eq!(got, [(Field::HttpServer, "next")], "{head}");
        }
    }

    #[test]
    fn a_pipelined_request_mid_body_does_not_stop_the_description() {
        let half = UPNP_RESPONSE.len() / 2;
        let (facts, _) = run(&[
            (Direction::FromClient, UPNP_REQUEST),
            (Direction::FromServer, &UPNP_RESPONSE[..half]),
            (Direction::FromClient, UPNP_REQUEST),
            (Direction::FromServer, &UPNP_RESPONSE[half..]),
        ]);
        assert_eq!(upnp_pairs(&facts).len(), 8, "{facts:?}");
    }

    #[test]
    fn chunked_and_close_delimited_descriptions() {
        let doc = b"<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\">\
                    <device><manufacturer>Ward</manufacturer><modelName>C-1</modelName></device></root>";
        let mut chunked =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for piece in doc.chunks(13) {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\nX-Trailer: CANARY\r\n\r\n");
        chunked.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: after\r\nContent-Length: 0\r\n\r\n");
        let want = [
            (Field::SsdpManufacturer, "Ward"),
            (Field::SsdpModelName, "C-1"),
        ];
        for split in [1, 5, 64, chunked.len()] {
            let chunks: Vec<(Direction, &[u8])> = chunked
                .chunks(split)
                .map(|c| (Direction::FromServer, c))
                .collect();
            let (facts, _) = run(&chunks);
            assert_eq!(upnp_pairs(&facts), want, "split {split}");
            assert_eq!(
                value(&facts, Field::HttpServer),
                Some("after"),
                "split {split}"
            );
            assert_no_canary(&facts);
        }
        // A malformed chunk size ends the direction.
        let bad = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let mut dec = HttpDecoder::default();
        assert_eq!(
            dec.feed(Direction::FromServer, bad, false, &mut Vec::new()),
            Feed::Done
        );
        // HTTP/1.0 style: the body runs to the close.
        let mut close = b"HTTP/1.0 200 OK\r\nContent-Type: application/xml\r\n\r\n".to_vec();
        close.extend_from_slice(doc);
        let (facts, _) = run(&[(Direction::FromServer, &close)]);
        assert_eq!(upnp_pairs(&facts), want);
    }

    proptest! {
        #[test]
        fn upnp_truncations_and_mutations_never_panic(
            cut in 0usize..2400, pos in 0usize..2400, byte in any::<u8>(), split in 1usize..200
        ) {
            let mut m = UPNP_RESPONSE[..cut.min(UPNP_RESPONSE.len())].to_vec();
            if let Some(b) = m.get_mut(pos) {
                *b = byte;
            }
            let mut dec = HttpDecoder::default();
            let mut facts = Vec::new();
            let mut pending = Vec::new();
            for chunk in m.chunks(split) {
                pending.extend_from_slice(chunk);
                match dec.feed(Direction::FromServer, &pending, false, &mut facts) {
                    Feed::Consumed(n) => { prop_assert!(n <= pending.len()); pending.drain(..n); }
                    Feed::Done => break,
                }
                prop_assert!(pending.len() <= MAX_HEAD_BYTES);
            }
            let _ = dec.feed(Direction::FromServer, &pending, true, &mut facts);
            for f in &facts {
                prop_assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
            }
        }
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            cut in 0usize..2048, pos in 0usize..2048, byte in any::<u8>(), split in 1usize..64
        ) {
            for base in [REQUEST, RESPONSE] {
                let mut m = base[..cut.min(base.len())].to_vec();
                let mutated = m.get(pos).is_some_and(|&b| b != byte);
                if let Some(b) = m.get_mut(pos) {
                    *b = byte;
                }
                let _ = looks_like_http(&m);
                let mut dec = HttpDecoder::default();
                let mut facts = Vec::new();
                let mut pending = Vec::new();
                for chunk in m.chunks(split) {
                    pending.extend_from_slice(chunk);
                    match dec.feed(Direction::FromServer, &pending, false, &mut facts) {
                        Feed::Consumed(n) => { prop_assert!(n <= pending.len()); pending.drain(..n); }
                        Feed::Done => break,
                    }
                }
                let _ = dec.feed(Direction::FromServer, &pending, true, &mut facts);
                for f in &facts {
                    prop_assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
                    // A mutated line end can make the next header part of an allowed one's
                    // value, as it would be on the wire; the unmutated bytes never leak.
                    prop_assert!(mutated || !f.value.contains("CANARY"));
                }
            }
        }
    }

    #[test]
    fn user_agent_serial_keys() {
        for (ua, want) in [
            (
                "VitalsClient/2.1 (Model=VS-900; FW=3.4.1b; SN=A1B2C3)",
                Some("A1B2C3"),
            ),
            ("Pump/1.0 (Serial: 100234; fw 2.0)", Some("100234")),
            ("Gateway/4 (S/N 0042-77)", Some("0042-77")),
            ("X/1 (SerialNumber=QX7781)", Some("QX7781")),
            ("X/1 (serial=unknown)", None),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", None),
            ("SNMP/1.0", None),
            ("Agent/1 (personal=12345)", None),
        ] {
            assert_eq!(user_agent_serial(ua), want, "{ua}");
        }
    }

    /// A FHIR client posting its own Device resource (chunked), then a Patient: the Device's
    /// identity is read, the Patient only named by type; the server's answer keeps types only.
    #[test]
    fn fhir_request_bodies_name_the_device_and_nothing_else() {
        let device = br#"{"resourceType":"Device","manufacturer":"WardTestMed","modelNumber":"WTP-700","serialNumber":"WTP7-1"}"#;
        let patient = br#"{"resourceType":"Patient","name":[{"family":"CANARYFHIR"}],"manufacturer":"CANARYFHIR"}"#;
        let mut client = b"POST /Device HTTP/1.1\r\nContent-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        client.extend_from_slice(format!("{:x}\r\n", device.len()).as_bytes());
        client.extend_from_slice(device);
        client.extend_from_slice(b"\r\n0\r\n\r\n");
        client.extend_from_slice(
            format!("POST /Patient?name=CANARYFHIR HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", patient.len()).as_bytes(),
        );
        client.extend_from_slice(patient);
        let mut server =
            b"HTTP/1.1 201 Created\r\nContent-Type: application/fhir+json\r\n".to_vec();
        server.extend_from_slice(format!("Content-Length: {}\r\n\r\n", device.len()).as_bytes());
        server.extend_from_slice(device);
        // Byte by byte: bodies split anywhere are collected whole.
        let mut chunks: Vec<(Direction, &[u8])> = client
            .chunks(1)
            .map(|b| (Direction::FromClient, b))
            .collect();
        chunks.push((Direction::FromServer, &server));
        let (facts, _) = run(&chunks);
        let got: Vec<(Field, &str)> = facts.iter().map(|f| (f.field, f.value.as_str())).collect();
        for want in [
            (Field::FhirResourceType, "Device"),
            (Field::FhirDeviceManufacturer, "WardTestMed"),
            (Field::FhirDeviceModelNumber, "WTP-700"),
            (Field::FhirDeviceSerialNumber, "WTP7-1"),
            (Field::FhirResourceType, "Patient"),
        ] {
            assert!(got.contains(&want), "{want:?} in {got:?}");
        }
        assert!(got.iter().all(|(_, v)| !v.contains("CANARY")), "{got:?}");
        assert_eq!(
            got.iter()
                .filter(|(f, _)| *f == Field::FhirDeviceManufacturer)
                .count(),
            1
        );
    }
}
