//! HL7 version 2 over MLLP: device identity from message headers and device segments.
//!
//! HL7 v2 carries patient records, so this decoder is built around what it must *not* see. It
//! streams each direction byte range by byte range and decides from a segment's three-letter name
//! alone whether to look further: only `MSH`, `OBX`, `PRT` and `DEV` are read, and within them only
//! the allow-listed fields are copied (one bounded buffer per direction, emptied after each field);
//! every other segment (`PID`, `NK1`, `PV1`, `NTE`, …) and every other field (notably `OBX-5`, the
//! observation value) is passed over by scanning for delimiters, never copied. Nothing public
//! returns segment or field content: the only output is [`Fact`]s of `Field::Hl7*` variants.
//!
//! Framing is MLLP (`0x0B` message `0x1C 0x0D`) on any port, recognised by `0x0B` followed by
//! `MSH`. Each message's own delimiters (MSH-1, MSH-2) are honoured; extracted values are
//! unescaped and written back with the default delimiters (`^` component, `~` repetition, `&`
//! subcomponent) so the same device reads the same whatever encoding characters it chose.

use core::fmt;
use std::collections::HashSet;

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

/// MLLP start block (VT).
const START_BLOCK: u8 = 0x0B;
/// MLLP end block (FS), followed by a CR.
const END_BLOCK: u8 = 0x1C;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
/// What every message starts with on the wire.
const MESSAGE_START: [u8; 4] = [START_BLOCK, b'M', b'S', b'H'];
/// Whitespace [`looks_like_hl7`] lets precede the start block (some senders emit a stray CRLF).
const MAX_LEADING_WHITESPACE: usize = 8;
/// Raw bytes kept of one wanted field. Identity values are short; a longer field is garbage or
/// abuse and is dropped whole rather than buffered.
const MAX_FIELD_BYTES: usize = 2048;
/// Bytes scanned for a message start before a direction is declared not HL7.
const MAX_HUNT_BYTES: usize = 64 * 1024;
/// Distinct facts remembered per direction for de-duplication. An interface engine repeats the
/// same MSH-3..6 in every message, so a small set removes nearly all repeats; past the bound facts
/// are still emitted, just no longer de-duplicated, so memory stays fixed.
const MAX_DEDUPE: usize = 256;

/// HL7's entry in [`crate::registry`]: a TCP protocol found by [`looks_like_hl7`], joined
/// mid-stream at the next MLLP message start ([`find_mllp_start`]). Its facts need no TCP
/// direction: MSH-3/4 describe the message's sender and MSH-5/6 its receiver.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Hl7,
    probe: |prefix| Probe::from(looks_like_hl7(prefix)),
    resync: Some(find_mllp_start),
    decode: Decode::Stream(|| Box::new(Hl7Decoder::new())),
};

/// Tells whether a stream prefix is HL7 over MLLP: `0x0B` then `MSH`, after at most a few
/// whitespace bytes.
///
/// Returns `Some(true)` for a match, `Some(false)` when the bytes rule it out and `None` when
/// `prefix` is too short to decide (call again with more bytes).
#[must_use]
pub fn looks_like_hl7(prefix: &[u8]) -> Option<bool> {
    let skipped = prefix
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .count();
    if skipped > MAX_LEADING_WHITESPACE {
        return Some(false);
    }
    let rest = prefix.get(skipped..).unwrap_or_default();
    if rest.is_empty() {
        return None;
    }
    let n = rest.len().min(MESSAGE_START.len());
    if rest.get(..n) != MESSAGE_START.get(..n) {
        return Some(false);
    }
    if n < MESSAGE_START.len() {
        None
    } else {
        Some(true)
    }
}

/// Offset of the first complete `0x0B MSH` in `data`, to resynchronise on a capture that started
/// mid-stream. Linear in `data.len()`; a match cut off by the end of `data` is not reported.
#[must_use]
pub fn find_mllp_start(data: &[u8]) -> Option<usize> {
    data.windows(MESSAGE_START.len())
        .position(|w| w == MESSAGE_START)
}

/// Streaming HL7 v2 decoder for one TCP connection (both directions, independent state each).
///
/// Consumes every byte it is offered, so it never depends on the reassembler's buffering, and
/// holds at most one bounded field plus a bounded de-duplication set per direction.
pub struct Hl7Decoder {
    client: Side,
    server: Side,
    unknown: Side,
}

impl Hl7Decoder {
    /// A decoder for a new connection.
    #[must_use]
    pub fn new() -> Self {
        Hl7Decoder {
            client: Side::new(),
            server: Side::new(),
            unknown: Side::new(),
        }
    }

    fn side(&mut self, side: Direction) -> &mut Side {
        match side {
            Direction::FromClient => &mut self.client,
            Direction::FromServer => &mut self.server,
            Direction::Unknown => &mut self.unknown,
        }
    }
}

impl Default for Hl7Decoder {
    fn default() -> Self {
        Self::new()
    }
}

// Written by hand so that a stray `{:?}` can never print a buffered field.
impl fmt::Debug for Hl7Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hl7Decoder")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("unknown", &self.unknown)
            .finish()
    }
}

impl StreamDecoder for Hl7Decoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        _at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        // `at_limit` cannot arise: every offered byte is consumed, so the reassembler never
        // accumulates a backlog for this decoder.
        self.side(side).feed(data, facts)
    }
}

/// A message's delimiters, from MSH-1 and MSH-2. Absent encoding characters play no role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Separators {
    field: u8,
    component: Option<u8>,
    repetition: Option<u8>,
    escape: Option<u8>,
    subcomponent: Option<u8>,
    truncation: Option<u8>,
}

impl Separators {
    /// Validates MSH-1 and MSH-2. Delimiters must be distinct printable non-alphanumerics:
    /// anything else means the bytes are not really an HL7 header, and guessing at field
    /// boundaries could shift a patient field into an allow-listed position.
    fn from_header(field: u8, encoding: &[u8]) -> Option<Self> {
        if encoding.len() > 5 || !is_delimiter(field) {
            return None;
        }
        for (i, &c) in encoding.iter().enumerate() {
            let earlier = encoding.get(..i).unwrap_or_default();
            if !is_delimiter(c) || c == field || earlier.contains(&c) {
                return None;
            }
        }
        let at = |i: usize| encoding.get(i).copied();
        Some(Separators {
            field,
            component: at(0),
            repetition: at(1),
            escape: at(2),
            subcomponent: at(3),
            truncation: at(4),
        })
    }

    /// The default delimiter playing the same role as `b` in this message, or `b` itself.
    /// True when every delimiter is HL7's default, so [`Self::canonical`] changes nothing.
    fn is_default(&self) -> bool {
        let ok = |d: Option<u8>, default: u8| d.is_none_or(|c| c == default);
        ok(self.component, b'^')
            && ok(self.repetition, b'~')
            && ok(self.subcomponent, b'&')
            && ok(self.truncation, b'#')
            && ok(self.escape, b'\\')
    }

    fn canonical(&self, b: u8) -> u8 {
        let role = Some(b);
        if role == self.component {
            b'^'
        } else if role == self.repetition {
            b'~'
        } else if role == self.subcomponent {
            b'&'
        } else if role == self.truncation {
            b'#'
        } else if role == self.escape {
            b'\\'
        } else {
            b
        }
    }
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// Ends a segment or message wherever it appears: HL7 forbids these bytes in content.
fn is_terminator(b: u8) -> bool {
    matches!(b, CR | LF | END_BLOCK | START_BLOCK)
}

/// First terminator in `s`. Segments are skipped at memchr speed: one SIMD pass for the three
/// common terminators, and a second over the bytes before it for a message start.
fn find_terminator(s: &[u8]) -> Option<usize> {
    let end = memchr::memchr3(CR, LF, END_BLOCK, s);
    let head = s.get(..end.unwrap_or(s.len())).unwrap_or(s);
    memchr::memchr(START_BLOCK, head).or(end)
}

/// First field separator or terminator in `s`. Fields are short, so a plain loop beats
/// setting up SIMD searches.
fn find_field_end(s: &[u8], field: u8) -> Option<usize> {
    s.iter().position(|&b| b == field || is_terminator(b))
}

/// The only segments ever looked into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Msh,
    Obx,
    Prt,
    Dev,
}

impl Segment {
    fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"MSH" => Some(Segment::Msh),
            b"OBX" => Some(Segment::Obx),
            b"PRT" => Some(Segment::Prt),
            b"DEV" => Some(Segment::Dev),
            _ => None,
        }
    }

    /// Past this field nothing is wanted, so the rest of the segment is skipped unread.
    fn last_wanted(self) -> u16 {
        match self {
            Segment::Msh => 21,
            Segment::Obx => 18,
            Segment::Prt | Segment::Dev => 16,
        }
    }

    /// What to do with field `n` (MSH numbering counts MSH-1, the separator itself).
    fn wanted(self, n: u16, equipment: bool) -> Option<Want> {
        use Field::*;
        match (self, n) {
            (Segment::Msh, 3) => Some(Want::Whole(Hl7SendingApplication)),
            (Segment::Msh, 4) => Some(Want::Whole(Hl7SendingFacility)),
            (Segment::Msh, 5) => Some(Want::Whole(Hl7ReceivingApplication)),
            (Segment::Msh, 6) => Some(Want::Whole(Hl7ReceivingFacility)),
            (Segment::Msh, 9) => Some(Want::Whole(Hl7MessageType)),
            (Segment::Msh, 11) => Some(Want::Whole(Hl7ProcessingId)),
            (Segment::Msh, 12) => Some(Want::Whole(Hl7Version)),
            (Segment::Msh, 21) => Some(Want::Each(Hl7Profile)),
            (Segment::Obx, 3) => Some(Want::DeviceCode),
            (Segment::Obx, 18) => Some(Want::Each(Hl7EquipmentInstance)),
            (Segment::Prt, 4) => Some(Want::Participation),
            // A PRT also names people (PRT-5); its device fields only count when the
            // participation itself is the equipment, which the standard marks with EQUIP.
            (Segment::Prt, 10) if equipment => Some(Want::Each(Hl7ParticipationDevice)),
            (Segment::Prt, 16) if equipment => Some(Want::Each(Hl7Udi)),
            (Segment::Dev, 5) => Some(Want::Whole(Hl7DeviceManufacturer)),
            (Segment::Dev, 7) => Some(Want::Whole(Hl7DeviceModel)),
            (Segment::Dev, 11) => Some(Want::Whole(Hl7DeviceSerial)),
            (Segment::Dev, 16) => Some(Want::Whole(Hl7DeviceSoftwareVersion)),
            _ => None,
        }
    }
}

/// How a wanted field turns into facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Want {
    /// One fact with the whole field.
    Whole(Field),
    /// One fact per repetition.
    Each(Field),
    /// OBX-3, reported only when it names a device.
    DeviceCode,
    /// PRT-4, read to decide whether PRT-10 and PRT-16 are wanted; never reported.
    Participation,
}

/// Where one direction is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Looking for `0x0B MSH`; `matched` bytes of it seen so far.
    Hunt { matched: usize },
    /// At a segment start, reading its name and the byte after it.
    Name { head: [u8; 4], len: usize },
    /// Reading MSH-2 after the field separator `field`.
    Encoding {
        field: u8,
        chars: [u8; 5],
        len: usize,
    },
    /// Inside a segment of interest, in field `field`.
    Fields {
        segment: Segment,
        field: u16,
        want: Option<Want>,
        equipment: bool,
    },
    /// Discarding up to the end of the segment.
    Skip,
    /// Not HL7, or gave up: ignore everything.
    Done,
}

impl Mode {
    fn segment_start() -> Self {
        Mode::Name {
            head: [0; 4],
            len: 0,
        }
    }

    /// Where to go after the terminator `b` ended a segment (or interrupted one).
    fn after_terminator(b: u8) -> Self {
        match b {
            END_BLOCK => Mode::Hunt { matched: 0 },
            START_BLOCK => Mode::Hunt { matched: 1 },
            _ => Mode::segment_start(),
        }
    }
}

/// One direction's decoding state.
struct Side {
    mode: Mode,
    /// Delimiters of the current message; `None` until its MSH validated, and then no segment
    /// is read.
    separators: Option<Separators>,
    /// Raw bytes of the wanted field being read.
    value: Vec<u8>,
    /// The wanted field outgrew [`MAX_FIELD_BYTES`] and will be dropped.
    overflow: bool,
    /// Bytes passed over while hunting since the last message start.
    hunted: usize,
    seen: HashSet<Fact, ahash::RandomState>,
    /// Hashes of (wanted field, raw bytes) already decoded on this side.
    raw_seen: HashSet<u64, ahash::RandomState>,
    /// Seeded per side, so crafted collisions cannot be precomputed.
    raw_hasher: ahash::RandomState,
}

impl fmt::Debug for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("mode", &self.mode)
            .field("separators", &self.separators)
            .field("hunted", &self.hunted)
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Side {
    fn new() -> Self {
        Side {
            mode: Mode::Hunt { matched: 0 },
            separators: None,
            value: Vec::new(),
            overflow: false,
            hunted: 0,
            seen: HashSet::default(),
            raw_seen: HashSet::default(),
            raw_hasher: ahash::RandomState::new(),
        }
    }

    fn feed(&mut self, data: &[u8], facts: &mut Vec<Fact>) -> Feed {
        let mut rest = data;
        while !rest.is_empty() {
            rest = match self.mode {
                Mode::Done => break,
                Mode::Hunt { matched } => self.hunt(matched, rest),
                Mode::Name { head, len } => self.name(head, len, rest),
                Mode::Encoding { field, chars, len } => self.encoding(field, chars, len, rest),
                Mode::Fields { .. } => self.fields(rest, facts),
                Mode::Skip => self.skip(rest),
            };
        }
        if self.mode == Mode::Done {
            self.value = Vec::new();
            Feed::Done
        } else {
            Feed::Consumed(data.len())
        }
    }

    fn hunt<'a>(&mut self, matched: usize, rest: &'a [u8]) -> &'a [u8] {
        if matched == 0 {
            let (skipped, next) = match rest.iter().position(|&b| b == START_BLOCK) {
                Some(p) => (p + 1, Mode::Hunt { matched: 1 }),
                None => (rest.len(), Mode::Hunt { matched: 0 }),
            };
            self.hunted = self.hunted.saturating_add(skipped);
            self.mode = if self.hunted > MAX_HUNT_BYTES {
                Mode::Done
            } else {
                next
            };
            return rest.get(skipped..).unwrap_or_default();
        }
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        self.hunted = self.hunted.saturating_add(1);
        if MESSAGE_START.get(matched) == Some(&b) {
            if matched + 1 == MESSAGE_START.len() {
                self.hunted = 0;
                self.separators = None;
                self.mode = Mode::Name {
                    head: [b'M', b'S', b'H', 0],
                    len: 3,
                };
            } else {
                self.mode = Mode::Hunt {
                    matched: matched + 1,
                };
            }
        } else if self.hunted > MAX_HUNT_BYTES {
            self.mode = Mode::Done;
        } else {
            let matched = usize::from(b == START_BLOCK);
            self.mode = Mode::Hunt { matched };
        }
        tail
    }

    /// Reads a segment name one byte at a time; the segment's content is never reached unless
    /// the name is one of the four looked into.
    fn name<'a>(&mut self, mut head: [u8; 4], len: usize, rest: &'a [u8]) -> &'a [u8] {
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        if is_terminator(b) {
            // An empty line (the LF of a CRLF) or a stub segment: nothing to read.
            self.mode = Mode::after_terminator(b);
            return tail;
        }
        if let Some(slot) = head.get_mut(len) {
            *slot = b;
        }
        let len = len + 1;
        self.mode = match (Segment::from_name(head.get(..3).unwrap_or_default()), len) {
            (_, 1 | 2) => Mode::Name { head, len },
            (None, _) => Mode::Skip,
            (Some(Segment::Msh), 3) => {
                // A header inside a block (batches, unframed resends) starts a new message.
                self.separators = None;
                Mode::Name { head, len }
            }
            (Some(_), 3) if self.separators.is_some() => Mode::Name { head, len },
            (Some(Segment::Msh), _) => Mode::Encoding {
                field: b,
                chars: [0; 5],
                len: 0,
            },
            (Some(segment), _) => match self.separators {
                Some(s) if s.field == b => Mode::Fields {
                    segment,
                    field: 1,
                    want: segment.wanted(1, false),
                    equipment: false,
                },
                // Longer name (`OBXZ|`), or no valid header in this message.
                _ => Mode::Skip,
            },
        };
        tail
    }

    fn encoding<'a>(
        &mut self,
        field: u8,
        mut chars: [u8; 5],
        len: usize,
        rest: &'a [u8],
    ) -> &'a [u8] {
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        if b == field || is_terminator(b) {
            self.separators = Separators::from_header(field, chars.get(..len).unwrap_or_default());
            self.mode = match self.separators {
                None if b == field => Mode::Skip,
                Some(_) if b == field => Mode::Fields {
                    segment: Segment::Msh,
                    field: 3,
                    want: Segment::Msh.wanted(3, false),
                    equipment: false,
                },
                _ => Mode::after_terminator(b),
            };
        } else if let Some(slot) = chars.get_mut(len) {
            *slot = b;
            self.mode = Mode::Encoding {
                field,
                chars,
                len: len + 1,
            };
        } else {
            // More than five encoding characters: not a header we can trust.
            self.mode = Mode::Skip;
        }
        tail
    }

    fn fields<'a>(&mut self, rest: &'a [u8], facts: &mut Vec<Fact>) -> &'a [u8] {
        let (
            Mode::Fields {
                segment,
                mut field,
                mut want,
                mut equipment,
            },
            Some(seps),
        ) = (self.mode, self.separators)
        else {
            self.mode = Mode::Skip;
            return rest;
        };
        // Fields nobody asked for are stepped over in one tight loop, without a round trip
        // through the state machine per field.
        let mut rest = rest;
        while want.is_none() {
            let Some(p) = find_field_end(rest, seps.field) else {
                self.mode = Mode::Fields {
                    segment,
                    field,
                    want,
                    equipment,
                };
                return &[];
            };
            let (Some(&b), tail) = (rest.get(p), rest.get(p + 1..).unwrap_or_default()) else {
                return &[];
            };
            if b != seps.field {
                self.mode = Mode::after_terminator(b);
                return tail;
            }
            if field >= segment.last_wanted() {
                self.mode = Mode::Skip;
                return tail;
            }
            field += 1;
            want = segment.wanted(field, equipment);
            rest = tail;
        }
        // The wanted field may continue in the next feed: remember where we are.
        self.mode = Mode::Fields {
            segment,
            field,
            want,
            equipment,
        };
        let stop = find_field_end(rest, seps.field);
        let end = stop.unwrap_or(rest.len());
        if want.is_some() {
            self.collect(rest.get(..end).unwrap_or_default());
        }
        let Some((&b, tail)) = rest.get(end..).and_then(|r| r.split_first()) else {
            return &[];
        };
        if b == START_BLOCK {
            // A new message interrupted this one: the field may be cut short, so drop it.
            self.clear_value();
        } else if let Some(want) = want {
            self.finish_field(want, &seps, &mut equipment, facts);
        }
        self.mode = if b != seps.field {
            Mode::after_terminator(b)
        } else if field >= segment.last_wanted() {
            Mode::Skip
        } else {
            let field = field + 1;
            Mode::Fields {
                segment,
                field,
                want: segment.wanted(field, equipment),
                equipment,
            }
        };
        tail
    }

    fn skip<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        match find_terminator(rest) {
            Some(p) => {
                if let Some(&b) = rest.get(p) {
                    self.mode = Mode::after_terminator(b);
                }
                rest.get(p + 1..).unwrap_or_default()
            }
            None => &[],
        }
    }

    fn collect(&mut self, chunk: &[u8]) {
        if self.overflow {
            return;
        }
        if self.value.len() + chunk.len() > MAX_FIELD_BYTES {
            self.overflow = true;
            self.value.clear();
        } else {
            self.value.extend_from_slice(chunk);
        }
    }

    fn clear_value(&mut self) {
        self.value.clear();
        self.overflow = false;
    }

    fn finish_field(
        &mut self,
        want: Want,
        seps: &Separators,
        equipment: &mut bool,
        facts: &mut Vec<Fact>,
    ) {
        if self.overflow {
            self.clear_value();
            return;
        }
        let raw = core::mem::take(&mut self.value);
        // An interface engine repeats the same header fields in every message: recognise a
        // field already reported by a hash of its raw bytes before decoding it again.
        if !matches!(want, Want::Participation) {
            let key = raw_key(&self.raw_hasher, want, seps, &raw);
            if self.raw_seen.contains(&key) {
                self.value = raw;
                self.clear_value();
                return;
            }
            if self.raw_seen.len() < MAX_DEDUPE {
                self.raw_seen.insert(key);
            }
        }
        match want {
            Want::Whole(field) => self.emit(field, &unescape(&raw, seps), facts),
            Want::Each(field) => {
                for repetition in repetitions(&raw, seps) {
                    self.emit(field, &unescape(repetition, seps), facts);
                }
            }
            Want::DeviceCode => {
                let text = unescape(&raw, seps);
                if contains(&text, b"MDC_DEV_", false) {
                    self.emit(Field::Hl7DeviceCode, &text, facts);
                }
            }
            Want::Participation => {
                let text = unescape(&raw, seps);
                let identifier = text.split(|&b| b == b'^').next().unwrap_or_default();
                *equipment = trim(identifier).eq_ignore_ascii_case(b"EQUIP")
                    || contains(&text, b"equipment", true);
            }
        }
        // Hand the allocation back for the next field.
        self.value = raw;
        self.clear_value();
    }

    fn emit(&mut self, field: Field, decoded: &[u8], facts: &mut Vec<Fact>) {
        let value = clean_text(decoded);
        // Empty, HL7's explicit null `""`, and bare delimiters (`^^`) say nothing about a device.
        if !value.chars().any(char::is_alphanumeric) {
            return;
        }
        let fact = Fact::new(field, value);
        if self.seen.contains(&fact) {
            return;
        }
        if self.seen.len() < MAX_DEDUPE {
            self.seen.insert(fact.clone());
        }
        facts.push(fact);
    }
}

/// Hash of the field kind, the delimiters (the same bytes mean different things under
/// different delimiters) and the raw bytes, with a per-side random seed. A collision could only
/// make one value go unreported as a duplicate of another on the same connection side.
fn raw_key(hasher: &ahash::RandomState, want: Want, seps: &Separators, raw: &[u8]) -> u64 {
    hasher.hash_one((want, seps, raw))
}

fn repetitions<'a>(raw: &'a [u8], seps: &Separators) -> impl Iterator<Item = &'a [u8]> {
    let rep = seps.repetition;
    raw.split(move |&b| Some(b) == rep)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

fn contains(haystack: &[u8], needle: &[u8], ignore_case: bool) -> bool {
    haystack.windows(needle.len()).any(|w| {
        if ignore_case {
            w.eq_ignore_ascii_case(needle)
        } else {
            w == needle
        }
    })
}

/// Resolves escape sequences and rewrites the message's delimiters to the defaults.
///
/// Delimiter escapes (`\F\ \S\ \T\ \R\ \E\ \P\`) become the default delimiter of that role and
/// `\Xhh…\` its bytes (control bytes are neutralised later by `clean_text`); highlighting,
/// formatting and character-set escapes are dropped; anything else keeps its escape character as
/// a literal so that no data silently disappears.
fn unescape<'a>(raw: &'a [u8], seps: &Separators) -> std::borrow::Cow<'a, [u8]> {
    // The common case: default delimiters and no escape sequence, so nothing to rewrite.
    if seps.is_default() && seps.escape.is_none_or(|e| memchr::memchr(e, raw).is_none()) {
        return std::borrow::Cow::Borrowed(raw);
    }
    std::borrow::Cow::Owned(unescape_slow(raw, seps))
}

fn unescape_slow(raw: &[u8], seps: &Separators) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        if Some(b) == seps.escape {
            if let Some(end) = tail.iter().position(|&c| c == b) {
                let body = tail.get(..end).unwrap_or_default();
                if decode_escape(body, &mut out) {
                    rest = tail.get(end + 1..).unwrap_or_default();
                    continue;
                }
            }
        }
        out.push(seps.canonical(b));
        rest = tail;
    }
    out
}

/// Appends what escape `body` (the text between two escape characters) stands for; false when
/// it is not a recognised escape.
fn decode_escape(body: &[u8], out: &mut Vec<u8>) -> bool {
    let hex = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_hexdigit);
    match body {
        b"F" => out.push(b'|'),
        b"S" => out.push(b'^'),
        b"T" => out.push(b'&'),
        b"R" => out.push(b'~'),
        b"E" => out.push(b'\\'),
        b"P" => out.push(b'#'),
        // Highlight on/off, and formatting commands such as `.br` or `.sp2`.
        b"H" | b"N" => {}
        [b'.', a, b, arg @ ..]
            if a.is_ascii_alphabetic()
                && b.is_ascii_alphabetic()
                && arg
                    .iter()
                    .all(|&c| c.is_ascii_digit() || c == b'+' || c == b'-') => {}
        // Character-set switches carry no data.
        [b'C', code @ ..] if code.len() == 4 && hex(code) => {}
        [b'M', code @ ..] if (code.len() == 4 || code.len() == 6) && hex(code) => {}
        [b'X', digits @ ..] if digits.len() % 2 == 0 && hex(digits) => {
            out.extend(
                digits
                    .chunks(2)
                    .map(|pair| pair.iter().fold(0u8, |acc, &d| (acc << 4) | hex_value(d))),
            );
        }
        _ => return false,
    }
    true
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ADT_CLIENT: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-client.bin");
    const ADT_SERVER: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-server.bin");
    const UDI_OBX_CLIENT: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-udi-obx-client.bin");
    const UDI_OBX_SERVER: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-udi-obx-server.bin");
    const UDI_PRT_CLIENT: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-udi-prt-client.bin");
    const UDI_PRT_SERVER: &[u8] = include_bytes!("../testdata/hl7/hl7-adt-udi-prt-server.bin");
    const ORM_CLIENT: &[u8] = include_bytes!("../testdata/hl7/hl7-orm-client.bin");
    const ORM_SERVER: &[u8] = include_bytes!("../testdata/hl7/hl7-orm-server.bin");
    const ORU_CLIENT: &[u8] = include_bytes!("../testdata/hl7/hl7-oru-client.bin");
    const ORU_SERVER: &[u8] = include_bytes!("../testdata/hl7/hl7-oru-server.bin");

    const CAPTURES: &[(&str, &[u8])] = &[
        ("adt-client", ADT_CLIENT),
        ("adt-server", ADT_SERVER),
        ("udi-obx-client", UDI_OBX_CLIENT),
        ("udi-obx-server", UDI_OBX_SERVER),
        ("udi-prt-client", UDI_PRT_CLIENT),
        ("udi-prt-server", UDI_PRT_SERVER),
        ("orm-client", ORM_CLIENT),
        ("orm-server", ORM_SERVER),
        ("oru-client", ORU_CLIENT),
        ("oru-server", ORU_SERVER),
    ];

    use Field::*;

    fn facts(list: &[(Field, &str)]) -> Vec<Fact> {
        list.iter().map(|&(f, v)| Fact::new(f, v)).collect()
    }

    /// What one side reports for several messages: each distinct fact once, first seen first.
    fn once(all: Vec<Fact>) -> Vec<Fact> {
        let mut seen = HashSet::new();
        all.into_iter().filter(|f| seen.insert(f.clone())).collect()
    }

    /// Feeds `chunks` in order to one side, checking every byte is consumed.
    fn run_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Fact> {
        let mut dec = Hl7Decoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            match dec.feed(Direction::FromClient, chunk, false, &mut out) {
                Feed::Consumed(n) => assert_eq!(n, chunk.len()),
                Feed::Done => break,
            }
        }
        out
    }

    fn run(data: &[u8]) -> Vec<Fact> {
        run_chunks([data])
    }

    fn run_sizes(data: &[u8], sizes: &[usize]) -> Vec<Fact> {
        let mut chunks = Vec::new();
        let mut rest = data;
        for &s in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at(s.clamp(1, rest.len()));
            chunks.push(a);
            rest = b;
        }
        run_chunks(chunks)
    }

    /// A segment with each value at its field number, using `sep` as field separator.
    fn seg_with(sep: &str, name: &str, fields: &[(usize, &str)]) -> String {
        let max = fields.iter().map(|f| f.0).max().unwrap_or(0);
        let mut parts = vec![""; max + 1];
        parts[0] = name;
        for &(n, v) in fields {
            parts[n] = v;
        }
        parts.join(sep)
    }

    fn seg(name: &str, fields: &[(usize, &str)]) -> String {
        seg_with("|", name, fields)
    }

    /// MSH with default encoding characters; MSH-1 is the separator itself, so MSH-n sits at
    /// split position n-1.
    fn msh(fields: &[(usize, &str)]) -> String {
        let mut shifted = vec![(1, "^~\\&")];
        shifted.extend(fields.iter().map(|&(n, v)| (n - 1, v)));
        seg("MSH", &shifted)
    }

    fn mllp(segments: &[String]) -> Vec<u8> {
        let mut out = vec![START_BLOCK];
        for s in segments {
            out.extend_from_slice(s.as_bytes());
            out.push(CR);
        }
        out.extend_from_slice(&[END_BLOCK, CR]);
        out
    }

    fn pcd01() -> Vec<u8> {
        mllp(&[
            msh(&[
                (3, "MINDRAY_D-SERIES^00A037009A0053DE^EUI-64"),
                (4, "MINDRAY"),
                (5, "WARD_GATEWAY^ACDE48FFFE000001^EUI-64"),
                (6, "ICU_HOSPITAL"),
                (7, "20240101120000+0000"),
                (9, "ORU^R01^ORU_R01"),
                (10, "CANARYCTRL0001"),
                (11, "P"),
                (12, "2.6"),
                (15, "AL"),
                (16, "NE"),
                (18, "UNICODE UTF-8"),
                (
                    21,
                    "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO~WARD_TEST^WARD^1.2.3.4^ISO",
                ),
            ]),
            seg(
                "PID",
                &[
                    (1, "1"),
                    (3, "CANARYMRN12345^^^HOSP^MR"),
                    (5, "CANARYFAMILY^CANARYGIVEN^^^^^L"),
                    (7, "19700101"),
                    (8, "M"),
                    (11, "1 CANARY STREET^^CANARYCITY^^12345"),
                ],
            ),
            seg(
                "PV1",
                &[(2, "I"), (3, "ICU^BED-CANARY^1"), (7, "CANARYDOC^CANARYATT")],
            ),
            seg(
                "OBR",
                &[
                    (1, "1"),
                    (2, "CANARYPLACER^MINDRAY"),
                    (4, "CANARYOBR^MDC_DEV_CANARY_OBR^MDC"),
                    (7, "20240101120000"),
                ],
            ),
            seg(
                "OBX",
                &[
                    (1, "1"),
                    (3, "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC"),
                    (4, "1.0.0.0"),
                    (11, "X"),
                    (18, "080019FFFE0B4020^B40_GE"),
                ],
            ),
            seg(
                "OBX",
                &[
                    (1, "2"),
                    (2, "NM"),
                    (3, "150456^MDC_PULS_OXIM_SAT_O2^MDC"),
                    (4, "1.0.1.150456"),
                    (5, "CANARYVALUE98 MDC_DEV_SPOOF"),
                    (6, "262688^MDC_DIM_PERCENT^MDC"),
                    (11, "R"),
                    (16, "CANARYOBSERVER"),
                    (18, "080019FFFE0B4020^B40_GE~00A037009A0053DE^MINDRAY"),
                    (19, "CANARYAFTER18"),
                ],
            ),
            seg(
                "PRT",
                &[
                    (1, "1"),
                    (2, "UC"),
                    (4, "EQUIP^Equipment^HL70912"),
                    (10, "00A037009A0053DE^^00A037009A0053DE^EUI-64"),
                    (16, "(01)00812345678901(21)SN12345^^2.16.840.1.113883.3.3719^ISO"),
                    (20, "CANARYPRT20"),
                ],
            ),
            seg(
                "PRT",
                &[
                    (1, "2"),
                    (2, "UC"),
                    (4, "OP^Ordering Provider^HL70912"),
                    (5, "CANARYPROVIDER^CANARYDR"),
                    (10, "CANARYNOTEQUIPDEVICE"),
                    (16, "CANARYNOTEQUIPUDI"),
                ],
            ),
            seg(
                "DEV",
                &[
                    (1, "A"),
                    (2, "(01)00812345678901^^2.16.840.1.113883.3.3719^ISO"),
                    (5, "Mindray Bio-Medical Electronics"),
                    (6, "BeneVision"),
                    (7, "N22"),
                    (11, "NA-12345678"),
                    (16, "03.01.00"),
                    (17, "CANARYDEV17"),
                ],
            ),
            seg("NTE", &[(1, "1"), (3, "CANARYNOTE about CANARYFAMILY")]),
            seg("ZPD", &[(1, "CANARYZSEG"), (3, "MDC_DEV_CANARY_Z")]),
        ])
    }

    fn pcd01_facts() -> Vec<Fact> {
        facts(&[
            (
                Hl7SendingApplication,
                "MINDRAY_D-SERIES^00A037009A0053DE^EUI-64",
            ),
            (Hl7SendingFacility, "MINDRAY"),
            (
                Hl7ReceivingApplication,
                "WARD_GATEWAY^ACDE48FFFE000001^EUI-64",
            ),
            (Hl7ReceivingFacility, "ICU_HOSPITAL"),
            (Hl7MessageType, "ORU^R01^ORU_R01"),
            (Hl7ProcessingId, "P"),
            (Hl7Version, "2.6"),
            (
                Hl7Profile,
                "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
            ),
            (Hl7Profile, "WARD_TEST^WARD^1.2.3.4^ISO"),
            (
                Hl7DeviceCode,
                "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
            ),
            (Hl7EquipmentInstance, "080019FFFE0B4020^B40_GE"),
            (Hl7EquipmentInstance, "00A037009A0053DE^MINDRAY"),
            (
                Hl7ParticipationDevice,
                "00A037009A0053DE^^00A037009A0053DE^EUI-64",
            ),
            (
                Hl7Udi,
                "(01)00812345678901(21)SN12345^^2.16.840.1.113883.3.3719^ISO",
            ),
            (Hl7DeviceManufacturer, "Mindray Bio-Medical Electronics"),
            (Hl7DeviceModel, "N22"),
            (Hl7DeviceSerial, "NA-12345678"),
            (Hl7DeviceSoftwareVersion, "03.01.00"),
        ])
    }

    fn adt_a01() -> Vec<u8> {
        mllp(&[
            msh(&[
                (3, "ADT_ENGINE"),
                (4, "HOSPITAL_A"),
                (5, "BEDSIDE_GW"),
                (6, "ICU"),
                (7, "20240101120000"),
                (9, "ADT^A01^ADT_A01"),
                (10, "CANARYCTRL"),
                (11, "P"),
                (12, "2.5.1"),
            ]),
            seg(
                "EVN",
                &[(1, "A01"), (2, "20240101120000"), (5, "CANARYCLERK")],
            ),
            seg(
                "PID",
                &[
                    (1, "1"),
                    (3, "CANARYMRN777^^^HOSP^MR"),
                    (5, "CANARYFAMILY^CANARYGIVEN"),
                    (6, "CANARYMAIDEN"),
                    (7, "19800202"),
                    (11, "CANARY ROAD 9^^CANARYTOWN"),
                    (13, "555-CANARY"),
                    (19, "CANARYSSN"),
                ],
            ),
            seg("PD1", &[(4, "CANARYPCP^DOCTOR")]),
            seg(
                "PV1",
                &[(2, "I"), (3, "ICU^CANARYBED"), (7, "CANARYATTENDING")],
            ),
            seg("PV2", &[(3, "CANARYREASON")]),
            seg(
                "NK1",
                &[(1, "1"), (2, "CANARYKIN^CANARYSPOUSE"), (3, "SPO")],
            ),
            seg("GT1", &[(1, "1"), (3, "CANARYGUARANTOR")]),
            seg(
                "IN1",
                &[(1, "1"), (4, "CANARYINSURER"), (16, "CANARYINSURED")],
            ),
            seg("AL1", &[(1, "1"), (3, "^CANARYALLERGY")]),
            seg("DG1", &[(1, "1"), (4, "CANARYDIAGNOSIS")]),
            seg("NTE", &[(1, "1"), (3, "CANARYNOTE")]),
        ])
    }

    fn adt_a01_facts() -> Vec<Fact> {
        facts(&[
            (Hl7SendingApplication, "ADT_ENGINE"),
            (Hl7SendingFacility, "HOSPITAL_A"),
            (Hl7ReceivingApplication, "BEDSIDE_GW"),
            (Hl7ReceivingFacility, "ICU"),
            (Hl7MessageType, "ADT^A01^ADT_A01"),
            (Hl7ProcessingId, "P"),
            (Hl7Version, "2.5.1"),
        ])
    }

    fn assert_no_canary(out: &[Fact]) {
        for f in out {
            assert!(f.field.protocol() == crate::Protocol::Hl7, "{f:?}");
            assert!(
                !f.value.to_ascii_uppercase().contains("CANARY"),
                "leak: {f:?}"
            );
        }
    }

    /// Patient identifiers found by reading the capture's PID and NK1 segments the way a
    /// full parser would: names (PID-5, NK1-2), id (PID-3), birth date (PID-7), address (PID-11),
    /// phone (PID-13).
    fn patient_tokens(capture: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(capture);
        let mut tokens = Vec::new();
        for segment in text.split(['\r', '\n', '\u{b}', '\u{1c}']) {
            let fields: Vec<&str> = segment.split('|').collect();
            let wanted: &[usize] = match fields[0] {
                "PID" => &[3, 5, 7, 11, 13],
                "NK1" => &[2],
                _ => continue,
            };
            for &n in wanted {
                let Some(field) = fields.get(n) else { continue };
                for part in field.split(['^', '&', '~']) {
                    let part = part.trim();
                    // Single letters (middle initials) would match any value.
                    if part.len() >= 3 {
                        tokens.push(part.to_ascii_uppercase());
                    }
                }
            }
        }
        tokens
    }

    fn assert_no_patient_data(capture: &[u8], out: &[Fact]) {
        let tokens = patient_tokens(capture);
        for f in out {
            let value = f.value.to_ascii_uppercase();
            for t in &tokens {
                assert!(!value.contains(t.as_str()), "{t} leaked in {f:?}");
            }
        }
    }

    #[test]
    fn recognises_mllp_prefix() {
        assert_eq!(looks_like_hl7(b"\x0bMSH|^~\\&|"), Some(true));
        assert_eq!(looks_like_hl7(b"\r\n \x0bMSH"), Some(true));
        assert_eq!(looks_like_hl7(b""), None);
        assert_eq!(looks_like_hl7(b"\r\n"), None);
        assert_eq!(looks_like_hl7(b"\x0bMS"), None);
        assert_eq!(looks_like_hl7(b"\x0bMSX"), Some(false));
        assert_eq!(looks_like_hl7(b"MSH|^~\\&|"), Some(false));
        assert_eq!(looks_like_hl7(b"GET / HTTP/1.1"), Some(false));
        assert_eq!(looks_like_hl7(&[b'\n'; 20]), Some(false));
        for (name, capture) in CAPTURES {
            assert_eq!(looks_like_hl7(capture), Some(true), "{name}");
        }
    }

    #[test]
    fn finds_message_start_mid_stream() {
        assert_eq!(find_mllp_start(ORU_CLIENT), Some(0));
        assert_eq!(find_mllp_start(&ORU_CLIENT[1..]), None);
        let mut two = ADT_CLIENT[100..].to_vec();
        two.extend_from_slice(ADT_SERVER);
        assert_eq!(find_mllp_start(&two), Some(ADT_CLIENT.len() - 100));
        assert_eq!(find_mllp_start(b"\x0bMS"), None);
        assert_eq!(find_mllp_start(b"xx\x0b\x0bMSH"), Some(3));
    }

    fn msh_facts(sa: &str, sf: &str, ra: &str, rf: &str, ty: &str) -> Vec<Fact> {
        facts(&[
            (Hl7SendingApplication, sa),
            (Hl7SendingFacility, sf),
            (Hl7ReceivingApplication, ra),
            (Hl7ReceivingFacility, rf),
            (Hl7MessageType, ty),
            (Hl7ProcessingId, "P"),
            (Hl7Version, "2.3"),
        ])
    }

    #[test]
    fn public_captures_exact_facts() {
        let adt = msh_facts(
            "SENDING_APPLICATION",
            "SENDING_FACILITY",
            "RECEIVING_APPLICATION",
            "RECEIVING_FACILITY",
            "ADT^A01",
        );
        let adt_ack = msh_facts(
            "RECEIVING_APPLICATION",
            "RECEIVING_FACILITY",
            "SENDING_APPLICATION",
            "SENDING_FACILITY",
            "ACK",
        );
        let lab = |ty| {
            msh_facts(
                "SendingApp",
                "SendingFac",
                "ReceivingApp",
                "ReceivingFac",
                ty,
            )
        };
        let lab_ack = msh_facts(
            "ReceivingApp",
            "ReceivingFac",
            "SendingApp",
            "SendingFac",
            "ACK",
        );
        let mut udi_obx = adt.clone();
        udi_obx.push(Fact::new(Hl7EquipmentInstance, "Hospira Plum A+"));

        assert_eq!(run(ADT_CLIENT), adt);
        assert_eq!(run(ADT_SERVER), adt_ack);
        assert_eq!(run(UDI_OBX_CLIENT), udi_obx);
        assert_eq!(run(UDI_OBX_SERVER), adt_ack);
        // The capture's PRT-4 is the placeholder `D`, not an equipment participation, so its
        // PRT-16 is deliberately not reported (see `prt_capture_with_equipment_role`).
        assert_eq!(run(UDI_PRT_CLIENT), adt);
        assert_eq!(run(UDI_PRT_SERVER), adt_ack);
        assert_eq!(run(ORM_CLIENT), lab("ORM^O01"));
        assert_eq!(run(ORM_SERVER), lab_ack);
        // OBX-3 there are lab codes, not MDC_DEV, and OBX-18 is empty.
        assert_eq!(run(ORU_CLIENT), lab("ORU^R01"));
        assert_eq!(run(ORU_SERVER), lab_ack);
        // The capture's own TCP segmentation (1460 + 319) gives the same.
        assert_eq!(
            run_chunks([&ORU_CLIENT[..1460], &ORU_CLIENT[1460..]]),
            lab("ORU^R01")
        );
    }

    #[test]
    fn prt_capture_with_equipment_role() {
        let text = String::from_utf8_lossy(UDI_PRT_CLIENT);
        assert!(text.contains("\rPRT|A|B|C|D|"));
        let patched = text.replace("\rPRT|A|B|C|D|", "\rPRT|A|B|C|EQUIP|");
        let out = run(patched.as_bytes());
        assert_eq!(out.last(), Some(&Fact::new(Hl7Udi, "Hospira Plum A+")));
        assert_eq!(out.len(), 8);
        let patched = text.replace("\rPRT|A|B|C|D|", "\rPRT|A|B|C|^Equipment^HL70912|");
        assert_eq!(
            run(patched.as_bytes()).last(),
            Some(&Fact::new(Hl7Udi, "Hospira Plum A+"))
        );
    }

    #[test]
    fn public_captures_leak_no_patient_data() {
        let mut all_tokens = Vec::new();
        for (name, capture) in CAPTURES {
            let out = run(capture);
            assert!(!out.is_empty(), "{name}");
            assert_no_patient_data(capture, &out);
            all_tokens.extend(patient_tokens(capture));
        }
        // The scan really found the people in these captures.
        for name in [
            "MOUSE",
            "MICKEY",
            "MINNIE",
            "135769",
            "19281118",
            "123 MAIN ST.",
        ] {
            assert!(
                all_tokens.iter().any(|t| t == name),
                "{name} not found by the scan"
            );
        }
    }

    #[test]
    fn pcd01_message_yields_device_identity_only() {
        let msg = pcd01();
        let out = run(&msg);
        assert_eq!(out, pcd01_facts());
        assert_no_canary(&out);
    }

    #[test]
    fn adt_message_yields_header_only() {
        let out = run(&adt_a01());
        assert_eq!(out, adt_a01_facts());
        assert_no_canary(&out);
    }

    #[test]
    fn non_default_separators_and_escapes() {
        let sep = "#";
        let msg = mllp(&[
            "MSH#$*@%#ACME@T@CO$DEV@F@1$EUI-64#FAC%SUB#RECV##20240101##ORU$R01#CANARY#P#2.6"
                .to_owned(),
            seg_with(
                sep,
                "PID",
                &[(3, "CANARYMRN"), (5, "CANARYFAMILY$CANARYGIVEN")],
            ),
            seg_with(
                sep,
                "OBX",
                &[
                    (1, "1"),
                    (3, "69965$MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS$MDC"),
                    (5, "CANARY|VALUE^WITH~DEFAULTS"),
                    (18, "AAA$X*BBB$Y"),
                ],
            ),
            // `|` is data in this message, not a separator.
            seg_with(sep, "DEV", &[(5, "Pipe|Maker"), (7, "M@S@1")]),
        ]);
        let out = run(&msg);
        assert_eq!(
            out,
            facts(&[
                (Hl7SendingApplication, "ACME&CO^DEV|1^EUI-64"),
                (Hl7SendingFacility, "FAC&SUB"),
                (Hl7ReceivingApplication, "RECV"),
                (Hl7MessageType, "ORU^R01"),
                (Hl7ProcessingId, "P"),
                (Hl7Version, "2.6"),
                (
                    Hl7DeviceCode,
                    "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC"
                ),
                (Hl7EquipmentInstance, "AAA^X"),
                (Hl7EquipmentInstance, "BBB^Y"),
                (Hl7DeviceManufacturer, "Pipe|Maker"),
                (Hl7DeviceModel, "M^1"),
            ])
        );
        assert_no_canary(&out);
    }

    #[test]
    fn default_escapes() {
        let msg = mllp(&[msh(&[
            (3, "ACME\\T\\SONS\\F\\DEV\\X4142\\\\H\\HI\\N\\\\.br\\\\Q\\"),
            (4, "A\\X0D\\B\\S\\C\\R\\D\\E\\E\\.sp2\\\\C2842\\"),
            (5, "\\X4\\Xzz"),
            (6, "\"\""),
            (9, "^^"),
            (12, "2.7"),
        ])]);
        assert_eq!(
            run(&msg),
            facts(&[
                (Hl7SendingApplication, "ACME&SONS|DEVABHI\\Q\\"),
                (Hl7SendingFacility, "A\u{fffd}B^C~D\\E"),
                (Hl7ReceivingApplication, "\\X4\\Xzz"),
                (Hl7Version, "2.7"),
            ])
        );
    }

    #[test]
    fn invalid_header_disables_the_message() {
        // Alphanumeric field separator, repeated encoding characters, too many of them.
        for header in [
            "MSHA^~\\&A",
            "MSH|^^\\&|",
            "MSH|^~\\&#!|",
            "MSH|^~\u{1}&|",
            "MSH| ~\\&|",
        ] {
            let msg = mllp(&[
                format!("{header}APP|FAC"),
                "OBX|1||69965^MDC_DEV_X^MDC".to_owned(),
            ]);
            assert_eq!(run(&msg), vec![], "{header}");
        }
        // Header-only MSH-2 with no fields after it still sets up the message.
        let msg = mllp(&[
            "MSH|^~\\&".to_owned(),
            "OBX|1||69965^MDC_DEV_X^MDC".to_owned(),
        ]);
        assert_eq!(run(&msg), facts(&[(Hl7DeviceCode, "69965^MDC_DEV_X^MDC")]));
        // No MSH at all: OBX after a bare start block is not read.
        assert_eq!(run(b"\x0bOBX|1||69965^MDC_DEV_X^MDC\r\x1c\r"), vec![]);
    }

    #[test]
    fn chunking_does_not_change_facts() {
        let mut stream = pcd01();
        stream.extend_from_slice(&adt_a01());
        stream.extend_from_slice(ORU_CLIENT);
        let whole = run(&stream);
        let mut expected = pcd01_facts();
        expected.extend(adt_a01_facts());
        expected.extend(run(ORU_CLIENT));
        assert_eq!(whole, once(expected));
        assert_eq!(run_sizes(&stream, &[1]), whole);
        assert_eq!(run_sizes(&stream, &[2, 3, 5, 7, 11, 13]), whole);
        assert_eq!(run_sizes(&stream, &[64, 1, 1, 300]), whole);
    }

    #[test]
    fn messages_in_one_feed_and_dedupe() {
        let mut stream = pcd01();
        stream.extend_from_slice(&pcd01());
        stream.extend_from_slice(&adt_a01());
        stream.extend_from_slice(&pcd01());
        let mut expected = pcd01_facts();
        expected.extend(adt_a01_facts());
        assert_eq!(run(&stream), once(expected));
    }

    #[test]
    fn dedupe_set_is_bounded() {
        let mut dec = Hl7Decoder::new();
        let mut out = Vec::new();
        for i in 0..400 {
            let app = format!("APP{i}");
            let msg = mllp(&[msh(&[(3, app.as_str()), (12, "2.5")])]);
            dec.feed(Direction::FromServer, &msg, false, &mut out);
        }
        // Every distinct application is reported; the repeated version only until the set fills.
        assert_eq!(
            out.iter()
                .filter(|f| f.field == Hl7SendingApplication)
                .count(),
            400
        );
        assert_eq!(out.iter().filter(|f| f.field == Hl7Version).count(), 1);
        assert_eq!(dec.server.seen.len(), MAX_DEDUPE);
    }

    #[test]
    fn sides_are_independent() {
        let pcd = pcd01();
        let adt = adt_a01();
        let mut dec = Hl7Decoder::new();
        let mut client = Vec::new();
        let mut server = Vec::new();
        // Interleave the two directions byte-ish chunk by chunk.
        for i in 0..pcd.len().max(adt.len()) {
            if let Some(b) = pcd.get(i..i + 1) {
                dec.feed(Direction::FromClient, b, false, &mut client);
            }
            if let Some(b) = adt.get(i..i + 1) {
                dec.feed(Direction::FromServer, b, false, &mut server);
            }
        }
        assert_eq!(client, pcd01_facts());
        assert_eq!(server, adt_a01_facts());
        // Dedupe is per side: the same message on the unknown side reports again.
        let mut unknown = Vec::new();
        dec.feed(Direction::Unknown, &pcd, false, &mut unknown);
        assert_eq!(unknown, pcd01_facts());
    }

    #[test]
    fn mid_stream_start_resyncs() {
        let first = pcd01();
        let mut stream = first.clone();
        stream.extend_from_slice(&pcd01());
        for cut in 1..first.len() {
            assert_eq!(run(&stream[cut..]), pcd01_facts(), "cut at {cut}");
            assert_eq!(
                run_sizes(&stream[cut..], &[1]),
                pcd01_facts(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn terminators_and_leading_whitespace() {
        let crlf = String::from_utf8(pcd01()).unwrap().replace('\r', "\r\n");
        assert_eq!(run(format!("\r\n{crlf}").as_bytes()), pcd01_facts());
        let lf = String::from_utf8(pcd01()).unwrap().replace('\r', "\n");
        assert_eq!(run(lf.as_bytes()), pcd01_facts());
        // Missing end block: the next start block still begins a new message.
        let mut stream = pcd01();
        stream.truncate(stream.len() - 2);
        stream.extend_from_slice(&adt_a01());
        let mut expected = pcd01_facts();
        expected.extend(adt_a01_facts());
        assert_eq!(run(&stream), once(expected));
    }

    #[test]
    fn interrupted_field_is_dropped() {
        let mut stream = b"\x0bMSH|^~\\&|CUT_SHORT_APP".to_vec();
        stream.extend_from_slice(&adt_a01());
        assert_eq!(run(&stream), adt_a01_facts());
    }

    #[test]
    fn not_hl7_gives_up_after_bound() {
        let mut dec = Hl7Decoder::new();
        let mut out = Vec::new();
        let junk = vec![b'A'; 1000];
        let mut fed = 0;
        let mut done = false;
        while fed < 2 * MAX_HUNT_BYTES {
            if dec.feed(Direction::FromClient, &junk, false, &mut out) == Feed::Done {
                done = true;
                break;
            }
            fed += junk.len();
        }
        assert!(done);
        assert!(fed <= MAX_HUNT_BYTES);
        assert_eq!(
            dec.feed(Direction::FromClient, &pcd01(), false, &mut out),
            Feed::Done
        );
        assert!(out.is_empty());
        // The other direction is unaffected.
        dec.feed(Direction::FromServer, &pcd01(), false, &mut out);
        assert_eq!(out, pcd01_facts());

        // Start blocks alone are junk too.
        let mut dec = Hl7Decoder::new();
        let junk = vec![START_BLOCK; MAX_HUNT_BYTES + 2];
        assert_eq!(
            dec.feed(Direction::FromClient, &junk, false, &mut out),
            Feed::Done
        );

        // Junk below the bound, then a message: found.
        let mut stream = vec![0x0b; 30_000];
        stream.extend_from_slice(b"\x0bMS\x0bMSX");
        stream.extend_from_slice(&pcd01());
        assert_eq!(run(&stream), pcd01_facts());
    }

    #[test]
    fn long_segments_are_streamed_not_buffered() {
        let huge = "X".repeat(1 << 20);
        let msg = mllp(&[
            msh(&[(3, &"A".repeat(MAX_FIELD_BYTES + 1)), (4, "FAC")]),
            seg("PID", &[(5, &huge)]),
            seg(
                "OBX",
                &[
                    (3, "1^MDC_DEV_BIG^MDC"),
                    (5, &huge),
                    (18, "0012211839000001^BBRAUN"),
                ],
            ),
        ]);
        let mut dec = Hl7Decoder::new();
        let mut out = Vec::new();
        for chunk in msg.chunks(1460) {
            dec.feed(Direction::FromClient, chunk, false, &mut out);
            assert!(dec.client.value.len() <= MAX_FIELD_BYTES);
        }
        assert_eq!(
            out,
            facts(&[
                (Hl7SendingFacility, "FAC"),
                (Hl7DeviceCode, "1^MDC_DEV_BIG^MDC"),
                (Hl7EquipmentInstance, "0012211839000001^BBRAUN"),
            ])
        );
        // Values are capped by clean_text.
        let long = "B".repeat(1000);
        let out = run(&mllp(&[msh(&[(3, &long)])]));
        assert_eq!(out[0].value.len(), crate::evidence::MAX_VALUE_CHARS);
    }

    #[test]
    fn debug_output_never_shows_buffered_content() {
        let mut dec = Hl7Decoder::new();
        let mut out = Vec::new();
        dec.feed(
            Direction::FromClient,
            b"\x0bMSH|^~\\&|SECRETAPP",
            false,
            &mut out,
        );
        let shown = format!("{dec:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn truncations_never_panic_and_stay_consistent() {
        let msg = pcd01();
        for cut in 0..=msg.len() {
            let out = run(&msg[..cut]);
            assert!(
                out.iter().all(|f| pcd01_facts().contains(f)),
                "cut at {cut}"
            );
            assert_no_canary(&out);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                       split in 0usize..2048) {
            let mut framed = b"\x0bMSH|^~\\&|".to_vec();
            framed.extend_from_slice(&data);
            for input in [&data[..], &framed[..]] {
                let split = split.min(input.len());
                let out = run_chunks([&input[..split], &input[split..]]);
                for f in out {
                    prop_assert_eq!(f.field.protocol(), crate::Protocol::Hl7);
                    prop_assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
                }
            }
        }

        #[test]
        fn mutations_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                 sizes in proptest::collection::vec(1usize..64, 1..8)) {
            let mut msg = pcd01();
            msg.extend_from_slice(&adt_a01());
            for (at, b) in edits {
                let at = at % msg.len();
                msg[at] = b;
            }
            let whole = run(&msg);
            prop_assert_eq!(run_sizes(&msg, &sizes), whole.clone());
            for f in whole {
                prop_assert_eq!(f.field.protocol(), crate::Protocol::Hl7);
            }
        }

        #[test]
        fn random_chunking_is_invisible(sizes in proptest::collection::vec(1usize..200, 1..16)) {
            let mut stream = pcd01();
            stream.extend_from_slice(UDI_OBX_CLIENT);
            stream.extend_from_slice(&adt_a01());
            prop_assert_eq!(run_sizes(&stream, &sizes), run(&stream));
        }
    }
}
