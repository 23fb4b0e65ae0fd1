//! ASTM E1381 / CLSI LIS1-A low-level framing and E1394 / CLSI LIS2-A2 records: what a
//! laboratory analyzer (or the LIS talking to it) says about itself in its Header record.
//!
//! Lab analyzers and laboratory information systems exchange patient demographics, orders and
//! results in this protocol, in clear, on whatever TCP port the site configured. The decoder is
//! built around what it must *not* see:
//!
//! - **Framing (E1381)** is followed byte by byte: `ENQ` opens a transfer, the receiver answers
//!   `ACK`/`NAK`, frames are `STX FN text ETX|ETB C1 C2 CR LF` with the frame number `FN`
//!   (`0`–`7`, starting at 1, modulo 8) and a checksum (the sum of the bytes from `FN` through
//!   `ETX`/`ETB`, modulo 256, as two hex digits), and `EOT` ends the transfer. A record split over
//!   intermediate frames (`ETB`) is joined across them. Every frame's checksum is verified before
//!   anything learned from it counts; a bad checksum, a frame number out of sequence, a
//!   retransmitted frame and a malformed frame are counted ([`AstmStats`]) and what the frame
//!   contributed is rolled back.
//! - **Records (E1394)**: only the Header record (`H`) is read, and within it only the
//!   allow-listed fields: H.5 sender name or ID (split into its components), H.10 receiver ID,
//!   H.12 processing ID and H.13 version. Every other header field (notably H.4, the access
//!   password) is stepped over without being copied. Patient (`P`), order (`O`), result (`R`),
//!   comment (`C`), manufacturer (`M`), request (`Q`), scientific (`S`) and terminator (`L`)
//!   records are counted by their first byte and never looked at again: their remaining bytes
//!   only enter the checksum sum, as E1381 requires of every receiver.
//!
//! The delimiters are the Header's own (`H` then field, repeat, component and escape delimiter:
//! `H|\^&`); extracted values are unescaped (`&F&`, `&S&`, `&R&`, `&E&`) and written back with
//! the default delimiters so the same analyzer reads the same whatever it chose.
//!
//! Recognised by structure ([`looks_like_astm`]): `ENQ` then a frame `STX <digit> H` with four
//! valid delimiters. Some instruments and middleware send the LIS2-A2 records straight over TCP
//! without E1381 framing, one per line: a stream that starts with a Header (`H|\^&`) is read
//! that way too, each record committed at its end of line, and unframed records count only
//! after a valid unframed Header. A capture that joined mid-session is picked up at the next
//! Header frame, the next frame whose checksum verifies, or the next unframed Header
//! ([`find_frame_start`]). Every buffer is bounded; every byte offered is consumed.

use core::fmt;

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

const LAYER: Layer = Layer::App(Protocol::Astm);

/// E1381 transmission control characters.
pub mod control {
    /// Start of text: begins a frame.
    pub const STX: u8 = 0x02;
    /// End of text: ends the last frame of a record (or message).
    pub const ETX: u8 = 0x03;
    /// End of transmission: ends the transfer phase.
    pub const EOT: u8 = 0x04;
    /// Enquiry: the sender asks to open a transfer.
    pub const ENQ: u8 = 0x05;
    /// Acknowledge.
    pub const ACK: u8 = 0x06;
    /// Negative acknowledge: the frame (or the ENQ) is refused.
    pub const NAK: u8 = 0x15;
    /// End of transmission block: ends an intermediate frame; the record goes on in the next.
    pub const ETB: u8 = 0x17;
    /// Carriage return: ends a record inside the text, and starts a frame's trailer.
    pub const CR: u8 = 0x0D;
    /// Line feed: ends a frame's trailer.
    pub const LF: u8 = 0x0A;
}
use control::*;

/// Byte offsets inside a frame and a Header record, in the smoltcp `mod field` style.
mod field {
    /// Frame: `STX`.
    pub const STX: usize = 0;
    /// Frame: the frame number digit.
    pub const FN: usize = 1;
    /// Frame: the first text byte (a record's type when the frame starts a record).
    pub const TEXT: usize = 2;
    /// Header text: the field delimiter (after the record type `H`).
    pub const FIELD_DELIMITER: usize = 1;
    /// Header text: the repeat, component and escape delimiters.
    pub const DELIMITERS: core::ops::Range<usize> = 2..5;
    /// Header text: bytes through the four delimiters (`H|\^&`).
    pub const HEADER_HEAD: usize = 5;
}

/// Bytes of frame text accepted before a frame is abandoned. E1381 allows 240 characters of
/// text per frame; senders that do not split records (or send a whole message in one frame)
/// exceed that, so the bound is generous. Nothing of a frame's text is buffered except the
/// Header's wanted fields, so the bound only stops a stream that never ends a frame.
pub const MAX_FRAME_TEXT: usize = 64 * 1024;
/// Raw bytes kept of one wanted Header field. Identity values are short; a longer field is
/// dropped whole rather than buffered.
pub const MAX_FIELD_BYTES: usize = 512;
/// Bytes passed over between frames (neither a control character nor a frame) before a
/// direction is declared not ASTM.
pub const MAX_HUNT_BYTES: usize = 64 * 1024;
/// Control bytes (`ACK`, `NAK`, `EOT`, `ENQ`) the probe lets precede the first frame: a
/// receiver's direction carries nothing else, and a refused `ENQ` is repeated.
pub const MAX_LEADING_CONTROL: usize = 16;
/// Distinct facts remembered per direction for de-duplication: an analyzer repeats the same
/// Header in every message. Past the bound facts are still emitted, only no longer de-duplicated.
const MAX_DEDUPE: usize = 64;
/// Components of H.5 reported on their own (LIS2-A2's manufacturer^product^version^instrument).
const SENDER_COMPONENTS: usize = 4;

/// ASTM's entry in [`crate::registry`]: a TCP protocol found by [`looks_like_astm`], joined
/// mid-session at the next Header frame ([`find_frame_start`]). Its facts describe the sender of
/// the Header record, so no TCP direction is needed.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Astm,
    probe: |prefix| Probe::from(looks_like_astm(prefix)),
    resync: Some(find_frame_start),
    decode: Decode::Stream(|| Box::new(AstmDecoder::new())),
};

/// Whether `b` can be an E1394 delimiter: printable, not a letter or digit.
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// The four delimiters of a Header record (`|\^&`), validated: distinct printable
/// non-alphanumerics. Anything else means the bytes are not a Header, and guessing at field
/// boundaries could shift a patient value into an allow-listed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delimiters {
    field: u8,
    repeat: u8,
    component: u8,
    escape: u8,
}

impl Delimiters {
    fn new(d: [u8; 4]) -> Option<Self> {
        let [field, repeat, component, escape] = d;
        let all_valid = d.iter().all(|&b| is_delimiter(b));
        let distinct = d
            .iter()
            .enumerate()
            .all(|(i, b)| !d.get(..i).unwrap_or_default().contains(b));
        (all_valid && distinct).then_some(Delimiters {
            field,
            repeat,
            component,
            escape,
        })
    }
}

/// A checked view of the start of a frame that opens a Header record: `STX FN H` and the four
/// delimiters. `new_checked` validates everything the accessors rely on.
#[derive(Debug, Clone, Copy)]
pub struct HeaderFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HeaderFrame<T> {
    /// Bytes needed to tell: `STX`, the frame number, `H` and four delimiters.
    pub const LEN: usize = field::TEXT + field::HEADER_HEAD;

    /// Validates a Header frame start: `STX`, a frame number `0`–`7`, record type `H` (or `h`)
    /// and four distinct valid delimiters.
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let b = buffer.as_ref();
        if b.len() < Self::LEN {
            return Err(DecodeError::truncated(LAYER, 0, Self::LEN, b.len()));
        }
        if b.get(field::STX) != Some(&STX) {
            return Err(DecodeError::Invalid {
                layer: LAYER,
                offset: field::STX,
                what: "frame start (STX)",
            });
        }
        if !b.get(field::FN).is_some_and(|d| (b'0'..=b'7').contains(d)) {
            return Err(DecodeError::Invalid {
                layer: LAYER,
                offset: field::FN,
                what: "frame number",
            });
        }
        let text = b.get(field::TEXT..).unwrap_or_default();
        if !matches!(text.first(), Some(b'H' | b'h')) {
            return Err(DecodeError::Unsupported {
                layer: LAYER,
                what: "first record is not a Header",
            });
        }
        if header_delimiters(text).is_none() {
            return Err(DecodeError::Invalid {
                layer: LAYER,
                offset: field::TEXT + field::FIELD_DELIMITER,
                what: "header delimiters",
            });
        }
        Ok(HeaderFrame { buffer })
    }

    /// The frame number (0–7).
    pub fn frame_number(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::FN)
            .map_or(0, |d| d.wrapping_sub(b'0'))
    }

    /// The field, repeat, component and escape delimiters, as sent.
    pub fn delimiters(&self) -> [u8; 4] {
        let text = self.buffer.as_ref().get(field::TEXT..).unwrap_or_default();
        header_delimiters(text).map_or([0; 4], |d| [d.field, d.repeat, d.component, d.escape])
    }
}

/// The delimiters of Header text `H|\^&…`.
fn header_delimiters(text: &[u8]) -> Option<Delimiters> {
    let f = *text.get(field::FIELD_DELIMITER)?;
    let rest = text.get(field::DELIMITERS)?;
    let [r, c, e] = <[u8; 3]>::try_from(rest).ok()?;
    Delimiters::new([f, r, c, e])
}

/// Tells whether a stream direction starts as ASTM: at most [`MAX_LEADING_CONTROL`] control
/// bytes (`ENQ`, `ACK`, `NAK`, `EOT`), then a frame opening a Header record ([`HeaderFrame`]),
/// or a Header record sent without E1381 framing (`H` and four valid delimiters, `H|\^&`:
/// LIS2-A2 records straight over TCP). A direction of control bytes alone (the receiver's
/// `ACK`s) is unsure: the other direction decides.
///
/// `Some(true)`: certain; `Some(false)`: not ASTM; `None`: too few bytes yet.
#[must_use]
pub fn looks_like_astm(prefix: &[u8]) -> Option<bool> {
    let lead = prefix
        .iter()
        .take(MAX_LEADING_CONTROL + 1)
        .take_while(|b| matches!(**b, ENQ | ACK | NAK | EOT))
        .count();
    if lead > MAX_LEADING_CONTROL {
        return Some(false);
    }
    let rest = prefix.get(lead..).unwrap_or_default();
    match rest.first() {
        None => None,
        Some(&b'H') => looks_like_raw_header(rest),
        Some(_) => match HeaderFrame::new_checked(rest) {
            Ok(_) => Some(true),
            // Too short to tell: every byte so far must still fit a Header frame start.
            Err(DecodeError::Truncated { .. }) => {
                let fits = rest.iter().enumerate().all(|(i, &b)| match i {
                    field::STX => b == STX,
                    field::FN => (b'0'..=b'7').contains(&b),
                    field::TEXT => matches!(b, b'H' | b'h'),
                    _ => is_delimiter(b),
                });
                if fits {
                    None
                } else {
                    Some(false)
                }
            }
            Err(_) => Some(false),
        },
    }
}

/// Whether `text` starts with an unframed Header record: `H` and four valid delimiters.
fn looks_like_raw_header(text: &[u8]) -> Option<bool> {
    if text.first() != Some(&b'H') {
        return Some(false);
    }
    if let Some(head) = text.get(..field::HEADER_HEAD) {
        return Some(header_delimiters(head).is_some());
    }
    let plausible = text
        .get(1..)
        .unwrap_or_default()
        .iter()
        .all(|&b| is_delimiter(b));
    if plausible {
        None
    } else {
        Some(false)
    }
}

/// Offset of the first place in `data` where a capture that started mid-session can be joined:
/// a Header frame start (`STX <digit> H` and four delimiters; the `ENQ` right before it when
/// there is one), or a complete frame of any record type whose checksum verifies (a session
/// carries one Header and then any number of records, so the next Header may be far off; the
/// decoder joins there, counts, and reads the next Header). Linear in `data.len()`: each
/// candidate's scan stops at the next `STX`.
#[must_use]
pub fn find_frame_start(data: &[u8]) -> Option<usize> {
    let mut from = 0usize;
    while let Some(p) = data
        .get(from..)
        .and_then(|d| memchr::memchr(STX, d))
        .map(|p| p + from)
    {
        let at = data.get(p..).unwrap_or_default();
        if HeaderFrame::new_checked(at).is_ok() {
            let enq = p.checked_sub(1).filter(|&q| data.get(q) == Some(&ENQ));
            return Some(enq.unwrap_or(p));
        }
        if is_verified_frame(at) {
            return Some(p);
        }
        from = p + 1;
    }
    // Unframed records: a Header at the start of a line.
    data.windows(2)
        .enumerate()
        .filter(|(_, w)| matches!(w, [CR | LF, b'H']))
        .map(|(i, _)| i + 1)
        .find(|&p| looks_like_raw_header(data.get(p..).unwrap_or_default()) == Some(true))
}

/// Whether `data` starts with a whole frame `STX FN <record type> <delimiter> … ETX|ETB C1 C2`
/// whose checksum verifies.
fn is_verified_frame(data: &[u8]) -> bool {
    let starts_a_record = match data {
        [STX, fn_digit, t, d, ..] => {
            (b'0'..=b'7').contains(fn_digit)
                && RecordType::from_byte(*t) != RecordType::Other
                && is_delimiter(*d)
        }
        _ => false,
    };
    if !starts_a_record {
        return false;
    }
    let mut sum = 0u8;
    let body = data.get(field::FN..).unwrap_or_default();
    for (i, &b) in body.iter().enumerate().take(MAX_FRAME_TEXT + 2) {
        sum = sum.wrapping_add(b);
        match b {
            ETX | ETB => {
                let digits = body.get(i + 1..i + 3).unwrap_or_default();
                return match digits {
                    [hi, lo] => match (hex_digit(*hi), hex_digit(*lo)) {
                        (Some(hi), Some(lo)) => (hi << 4) | lo == sum,
                        _ => false,
                    },
                    _ => false,
                };
            }
            STX | ENQ | EOT => return false,
            _ => {}
        }
    }
    false
}

/// Record type of a record's first byte (E1394 section 6; lower case accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `H` message header: the only record read.
    Header,
    /// `P` patient information: counted, never read.
    Patient,
    /// `O` test order: counted, never read.
    Order,
    /// `R` result: counted, never read.
    Result,
    /// `C` comment: counted, never read.
    Comment,
    /// `M` manufacturer information: counted, never read.
    Manufacturer,
    /// `Q` request information (query): counted, never read.
    Query,
    /// `S` scientific: counted, never read.
    Scientific,
    /// `L` message terminator: counted, never read.
    Terminator,
    /// Any other first byte.
    Other,
}

impl RecordType {
    /// Every record type, in [`RecordType::index`] order.
    pub const ALL: [RecordType; 10] = [
        RecordType::Header,
        RecordType::Patient,
        RecordType::Order,
        RecordType::Result,
        RecordType::Comment,
        RecordType::Manufacturer,
        RecordType::Query,
        RecordType::Scientific,
        RecordType::Terminator,
        RecordType::Other,
    ];

    /// The type a record's first byte names.
    pub fn from_byte(b: u8) -> Self {
        match b.to_ascii_uppercase() {
            b'H' => RecordType::Header,
            b'P' => RecordType::Patient,
            b'O' => RecordType::Order,
            b'R' => RecordType::Result,
            b'C' => RecordType::Comment,
            b'M' => RecordType::Manufacturer,
            b'Q' => RecordType::Query,
            b'S' => RecordType::Scientific,
            b'L' => RecordType::Terminator,
            _ => RecordType::Other,
        }
    }

    /// Position in [`RecordType::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The record type letter (`?` for [`RecordType::Other`]).
    pub const fn letter(self) -> char {
        match self {
            RecordType::Header => 'H',
            RecordType::Patient => 'P',
            RecordType::Order => 'O',
            RecordType::Result => 'R',
            RecordType::Comment => 'C',
            RecordType::Manufacturer => 'M',
            RecordType::Query => 'Q',
            RecordType::Scientific => 'S',
            RecordType::Terminator => 'L',
            RecordType::Other => '?',
        }
    }
}

/// What one direction's framing looked like: counters only, never content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AstmStats {
    /// Frames whose checksum verified and were accepted.
    pub frames: u64,
    /// Frames whose checksum did not match (rolled back; the receiver NAKs them).
    pub checksum_errors: u64,
    /// Accepted frames whose number was not the one expected after the previous frame.
    pub sequence_errors: u64,
    /// Frames repeating the previous frame's number (a retransmission): not counted twice.
    pub retransmissions: u64,
    /// Frames abandoned: no frame number, no checksum digits, interrupted, or over
    /// [`MAX_FRAME_TEXT`].
    pub malformed_frames: u64,
    /// `ENQ`, `ACK`, `NAK`, `EOT` seen between frames.
    pub enq: u64,
    /// `ACK`s.
    pub ack: u64,
    /// `NAK`s.
    pub nak: u64,
    /// `EOT`s.
    pub eot: u64,
    /// Records of each type in accepted frames, indexed by [`RecordType::index`].
    pub records: [u64; 10],
}

impl AstmStats {
    /// Records of type `t` counted.
    pub fn records_of(&self, t: RecordType) -> u64 {
        self.records.get(t.index()).copied().unwrap_or(0)
    }
}

/// The Header fields read (H.n is field `n`, counting the record type as H.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Sender,
    Receiver,
    ProcessingId,
    Version,
}

impl Wanted {
    const ALL: [Wanted; 4] = [
        Wanted::Sender,
        Wanted::Receiver,
        Wanted::ProcessingId,
        Wanted::Version,
    ];

    fn of_field(n: u16) -> Option<Self> {
        match n {
            5 => Some(Wanted::Sender),
            10 => Some(Wanted::Receiver),
            12 => Some(Wanted::ProcessingId),
            13 => Some(Wanted::Version),
            _ => None,
        }
    }

    const fn slot(self) -> usize {
        self as usize
    }
}

/// Past H.13 nothing is wanted: the rest of the Header is stepped over.
const LAST_WANTED: u16 = 13;

/// A Header record being read: its delimiters, the field it is in and the wanted fields' raw
/// bytes (bounded). Written by hand for `Debug` so buffered values are never printed.
#[derive(Clone, Default)]
struct Header {
    /// Bytes of the record seen (the first [`field::HEADER_HEAD`] are the type and delimiters).
    len: usize,
    head: [u8; field::HEADER_HEAD],
    delimiters: Option<Delimiters>,
    /// Current field number (H.1 is the record type, H.2 the delimiter definition).
    field: u16,
    values: [Vec<u8>; 4],
    overflow: [bool; 4],
    /// The delimiters were invalid: nothing of this record is read.
    invalid: bool,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("len", &self.len)
            .field("field", &self.field)
            .field("delimiters", &self.delimiters)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Takes one byte of the record after its type byte.
    fn push(&mut self, b: u8) {
        if self.invalid {
            return;
        }
        self.len = self.len.saturating_add(1);
        let Some(d) = self.delimiters else {
            if let Some(slot) = self.head.get_mut(self.len) {
                *slot = b;
            }
            if self.len + 1 == field::HEADER_HEAD {
                // `H` + field delimiter + three more: H.2 (the definition) is now read.
                let [_, f, r, c, e] = self.head;
                self.delimiters = Delimiters::new([f, r, c, e]);
                self.invalid = self.delimiters.is_none();
                self.field = 2;
            }
            return;
        };
        if b == d.field {
            self.field = self.field.saturating_add(1);
            return;
        }
        if self.field > LAST_WANTED {
            return;
        }
        if let Some(w) = Wanted::of_field(self.field) {
            let slot = w.slot();
            if let (Some(v), Some(over)) = (self.values.get_mut(slot), self.overflow.get_mut(slot))
            {
                // A value past the bound is dropped whole (and its buffer freed), never cut.
                if *over {
                    return;
                }
                if v.len() >= MAX_FIELD_BYTES {
                    *over = true;
                    *v = Vec::new();
                } else {
                    v.push(b);
                }
            }
        }
    }

    /// The facts of a complete Header record.
    fn facts(&self, out: &mut Vec<Fact>) {
        let Some(d) = self.delimiters else {
            return;
        };
        for w in Wanted::ALL {
            let slot = w.slot();
            if self.overflow.get(slot).copied().unwrap_or(true) {
                continue;
            }
            let raw = self.values.get(slot).map(Vec::as_slice).unwrap_or_default();
            // Only the first repetition: the Header describes one sender.
            let first = raw.split(|&b| b == d.repeat).next().unwrap_or_default();
            match w {
                Wanted::Sender => {
                    push_value(out, Field::AstmSender, &canonical(first, &d));
                    let fields = [
                        Field::AstmSenderManufacturer,
                        Field::AstmSenderModel,
                        Field::AstmSenderSoftwareVersion,
                        Field::AstmInstrumentId,
                    ];
                    for (component, field) in first
                        .split(|&b| b == d.component)
                        .take(SENDER_COMPONENTS)
                        .zip(fields)
                    {
                        push_value(out, field, &canonical(component, &d));
                    }
                }
                Wanted::Receiver => push_value(out, Field::AstmReceiverId, &canonical(first, &d)),
                Wanted::ProcessingId => {
                    push_value(out, Field::AstmProcessingId, &canonical(first, &d));
                }
                Wanted::Version => push_value(out, Field::AstmVersion, &canonical(first, &d)),
            }
        }
    }
}

/// A value with something to say (a letter or digit), cleaned for output.
fn push_value(out: &mut Vec<Fact>, field: Field, raw: &[u8]) {
    let value = clean_text(raw);
    if value.chars().any(char::is_alphanumeric) {
        out.push(Fact::new(field, value));
    }
}

/// Resolves E1394 escape sequences (`&F&` field, `&S&` component, `&R&` repeat, `&E&` escape,
/// with the message's own escape delimiter) and writes the message's delimiters back as the
/// defaults (`|`, `^`, `\`, `&`). An unknown escape is kept as written.
fn canonical(raw: &[u8], d: &Delimiters) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        if b == d.escape {
            if let [code, e, after @ ..] = tail {
                if *e == d.escape {
                    let lit = match code {
                        b'F' => Some(b'|'),
                        b'S' => Some(b'^'),
                        b'R' => Some(b'\\'),
                        b'E' => Some(b'&'),
                        _ => None,
                    };
                    if let Some(lit) = lit {
                        out.push(lit);
                        rest = after;
                        continue;
                    }
                }
            }
        }
        out.push(if b == d.field {
            b'|'
        } else if b == d.component {
            b'^'
        } else if b == d.repeat {
            b'\\'
        } else if b == d.escape {
            b'&'
        } else {
            b
        });
        rest = tail;
    }
    out
}

/// Where one direction is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between frames: control characters, a frame start, or junk (bounded).
    Idle,
    /// After `STX`: the frame number.
    FrameNumber,
    /// Inside the frame text.
    Text,
    /// After `ETX`/`ETB`: the checksum's two hex digits (`first` once one is read).
    Checksum { end: u8, first: Option<u8> },
    /// Records sent without E1381 framing (LIS2-A2 records over TCP, one per line): no frame
    /// numbers or checksums, each record committed at its end of line.
    Raw,
    /// Not ASTM (or gave up): ignore everything.
    Done,
}

/// The record being read when a frame starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordPos {
    /// The next text byte is a record's type.
    at_start: bool,
    /// The record being read (after its first byte).
    current: Option<RecordType>,
}

impl RecordPos {
    const START: RecordPos = RecordPos {
        at_start: true,
        current: None,
    };
}

/// One direction's decoding state.
struct Side {
    mode: Mode,
    /// Between frames: bytes passed over since the last frame or control character.
    hunted: usize,
    /// Between frames, at the start of a line: a record type letter here starts an unframed
    /// record ([`Mode::Raw`]).
    line_start: bool,
    /// An unframed Header with valid delimiters was read: the unframed records after it count.
    raw_session: bool,
    /// The current frame: number, checksum sum, text length.
    fn_digit: u8,
    sum: u8,
    text_len: usize,
    /// Record position as the current frame started (restored when it is rolled back) and now.
    pos_at_frame: RecordPos,
    pos: RecordPos,
    /// The Header as the current frame started (only while a Header spans frames) and now.
    header_at_frame: Option<Header>,
    header: Option<Header>,
    /// A Header record ended inside the current frame: reported once the frame verifies.
    header_done: Option<Header>,
    /// Records begun in the current frame, by type (committed when it verifies).
    staged: [u64; 10],
    /// The frame number the next frame should carry (`None`: not known, e.g. mid-session).
    expected_fn: Option<u8>,
    /// The number of the last accepted frame, to recognise a retransmission.
    last_fn: Option<u8>,
    /// Record types of the current message (H to L), in order of first appearance.
    message_types: Vec<RecordType>,
    stats: AstmStats,
    seen: Vec<Fact>,
}

impl fmt::Debug for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("mode", &self.mode)
            .field("pos", &self.pos)
            .field("header", &self.header)
            .field("stats", &self.stats)
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Side {
    fn new() -> Self {
        Side {
            mode: Mode::Idle,
            hunted: 0,
            line_start: true,
            raw_session: false,
            fn_digit: 0,
            sum: 0,
            text_len: 0,
            pos_at_frame: RecordPos::START,
            pos: RecordPos::START,
            header_at_frame: None,
            header: None,
            header_done: None,
            staged: [0; 10],
            expected_fn: None,
            last_fn: None,
            message_types: Vec::new(),
            stats: AstmStats::default(),
            seen: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8], facts: &mut Vec<Fact>) -> Feed {
        let mut rest = data;
        while !rest.is_empty() {
            rest = match self.mode {
                Mode::Done => break,
                Mode::Idle => self.idle(rest, facts),
                Mode::FrameNumber => self.frame_number(rest),
                Mode::Text => self.text(rest),
                Mode::Checksum { end, first } => self.checksum(end, first, rest, facts),
                Mode::Raw => self.raw(rest, facts),
            };
        }
        if self.mode == Mode::Done {
            self.header = None;
            self.header_at_frame = None;
            self.header_done = None;
            Feed::Done
        } else {
            Feed::Consumed(data.len())
        }
    }

    fn idle<'a>(&mut self, rest: &'a [u8], facts: &mut Vec<Fact>) -> &'a [u8] {
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        match b {
            STX => {
                self.hunted = 0;
                self.start_frame();
                self.mode = Mode::FrameNumber;
            }
            ENQ => {
                self.hunted = 0;
                self.stats.enq += 1;
                // A new transfer: frames count from 1 and a record starts.
                self.expected_fn = Some(1);
                self.last_fn = None;
                self.pos = RecordPos::START;
                self.header = None;
            }
            EOT => {
                self.hunted = 0;
                self.stats.eot += 1;
                self.end_message(facts);
                self.expected_fn = None;
                self.last_fn = None;
                self.pos = RecordPos::START;
                self.header = None;
            }
            ACK => {
                self.hunted = 0;
                self.stats.ack += 1;
            }
            NAK => {
                self.hunted = 0;
                self.stats.nak += 1;
            }
            // A frame's trailer (CR LF after the checksum) and stray line ends.
            CR | LF => {}
            _ if self.line_start && (b == b'H' || (self.raw_session && is_raw_record_type(b))) => {
                // A record without framing: read it (this byte included) in raw mode.
                self.hunted = 0;
                self.mode = Mode::Raw;
                self.pos = RecordPos::START;
                return rest;
            }
            _ => {
                self.line_start = false;
                self.hunted = self.hunted.saturating_add(1);
                if self.hunted > MAX_HUNT_BYTES {
                    self.mode = Mode::Done;
                }
                return tail;
            }
        }
        self.line_start = true;
        tail
    }

    /// Unframed records: each record's bytes go through [`Side::text_byte`] as in a frame, and
    /// the record counts once its line ends. A control character (a frame start, ENQ, EOT…)
    /// or a line that does not start with a record type returns to [`Mode::Idle`].
    fn raw<'a>(&mut self, rest: &'a [u8], facts: &mut Vec<Fact>) -> &'a [u8] {
        for (i, &b) in rest.iter().enumerate() {
            if b == CR || b == LF {
                if self.pos.at_start {
                    continue;
                }
                if self.pos.current == Some(RecordType::Header)
                    && self.header.as_ref().is_none_or(|h| h.delimiters.is_none())
                {
                    // `H` at a line start but no Header after all (e.g. a line cut mid-record):
                    // nothing of it counts, and no unframed records follow from it.
                    self.roll_back();
                    self.raw_session = false;
                    self.mode = Mode::Idle;
                    self.line_start = true;
                    return rest.get(i + 1..).unwrap_or_default();
                }
                if self.pos.current == Some(RecordType::Header) {
                    self.raw_session = true;
                }
                self.text_byte(CR);
                self.commit(true, facts);
                continue;
            }
            if b < 0x20 && b != b'\t' {
                // Framing resumes, or the line was not ASTM: drop the unfinished record.
                self.roll_back();
                self.raw_session = false;
                self.mode = Mode::Idle;
                self.line_start = true;
                return rest.get(i..).unwrap_or_default();
            }
            if self.pos.at_start {
                if !(b == b'H' || (self.raw_session && is_raw_record_type(b))) {
                    self.raw_session = false;
                    self.mode = Mode::Idle;
                    self.line_start = false;
                    return rest.get(i..).unwrap_or_default();
                }
                self.start_frame();
            }
            self.text_len += 1;
            if self.text_len > MAX_FRAME_TEXT {
                self.stats.malformed_frames += 1;
                self.roll_back();
                self.raw_session = false;
                self.mode = Mode::Idle;
                self.line_start = false;
                return rest.get(i + 1..).unwrap_or_default();
            }
            self.text_byte(b);
        }
        &[]
    }

    fn start_frame(&mut self) {
        self.sum = 0;
        self.text_len = 0;
        self.staged = [0; 10];
        self.pos_at_frame = self.pos;
        self.header_at_frame = self.header.clone();
        self.header_done = None;
    }

    /// Undoes what the current frame contributed: it failed its checksum or was malformed.
    fn roll_back(&mut self) {
        self.pos = self.pos_at_frame;
        self.header = self.header_at_frame.take();
        self.header_done = None;
        self.staged = [0; 10];
    }

    fn malformed(&mut self) {
        self.stats.malformed_frames += 1;
        self.roll_back();
        self.mode = Mode::Idle;
    }

    fn frame_number<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        if (b'0'..=b'7').contains(&b) {
            self.fn_digit = b - b'0';
            self.sum = b;
            self.mode = Mode::Text;
            tail
        } else {
            // Not a frame after all; let the idle state look at this byte (it may be an STX).
            self.malformed();
            rest
        }
    }

    fn text<'a>(&mut self, rest: &'a [u8]) -> &'a [u8] {
        for (i, &b) in rest.iter().enumerate() {
            match b {
                ETX | ETB => {
                    self.sum = self.sum.wrapping_add(b);
                    self.mode = Mode::Checksum {
                        end: b,
                        first: None,
                    };
                    return rest.get(i + 1..).unwrap_or_default();
                }
                STX | ENQ | EOT => {
                    // The frame was cut short: drop it and read this byte between frames.
                    self.malformed();
                    return rest.get(i..).unwrap_or_default();
                }
                _ => {}
            }
            self.text_len += 1;
            if self.text_len > MAX_FRAME_TEXT {
                self.malformed();
                return rest.get(i + 1..).unwrap_or_default();
            }
            self.sum = self.sum.wrapping_add(b);
            self.text_byte(b);
        }
        &[]
    }

    /// One byte of frame text: a record's first byte is counted; a Header's bytes are read;
    /// every other record's bytes are not looked at beyond the record separator.
    fn text_byte(&mut self, b: u8) {
        if b == CR {
            if self.pos.current == Some(RecordType::Header) {
                self.header_done = self.header.take();
            }
            self.pos = RecordPos::START;
            return;
        }
        if self.pos.at_start {
            let t = RecordType::from_byte(b);
            if let Some(n) = self.staged.get_mut(t.index()) {
                *n += 1;
            }
            self.pos = RecordPos {
                at_start: false,
                current: Some(t),
            };
            self.header = (t == RecordType::Header).then(Header::default);
            return;
        }
        if self.pos.current == Some(RecordType::Header) {
            if let Some(h) = self.header.as_mut() {
                h.push(b);
            }
        }
    }

    fn checksum<'a>(
        &mut self,
        end: u8,
        first: Option<u8>,
        rest: &'a [u8],
        facts: &mut Vec<Fact>,
    ) -> &'a [u8] {
        let Some((&b, tail)) = rest.split_first() else {
            return rest;
        };
        let Some(digit) = hex_digit(b) else {
            self.malformed();
            return rest;
        };
        let Some(hi) = first else {
            self.mode = Mode::Checksum {
                end,
                first: Some(digit),
            };
            return tail;
        };
        self.mode = Mode::Idle;
        if (hi << 4) | digit != self.sum {
            self.stats.checksum_errors += 1;
            self.roll_back();
            return tail;
        }
        self.accept(end, facts);
        tail
    }

    /// A frame whose checksum verified: check its number, then commit what it contributed.
    fn accept(&mut self, end: u8, facts: &mut Vec<Fact>) {
        let n = self.fn_digit;
        if self.last_fn == Some(n) {
            // The sender repeats a frame whose ACK it missed: the content was counted already.
            self.stats.retransmissions += 1;
            self.roll_back();
            return;
        }
        if self.expected_fn.is_some_and(|e| e != n) {
            self.stats.sequence_errors += 1;
        }
        self.last_fn = Some(n);
        self.expected_fn = Some((n + 1) % 8);
        self.stats.frames += 1;
        // ETX ends the record even when the sender left out its CR.
        self.commit(end == ETX, facts);
    }

    /// Commits what the current frame (or unframed record) contributed: record counts, the
    /// message's record types, a completed Header's facts; `record_end` when it ended a record.
    fn commit(&mut self, record_end: bool, facts: &mut Vec<Fact>) {
        for (t, &k) in RecordType::ALL.iter().zip(self.staged.iter()) {
            if k == 0 {
                continue;
            }
            if let Some(total) = self.stats.records.get_mut(t.index()) {
                *total += k;
            }
            if *t == RecordType::Header {
                // A Header opens a new message.
                self.message_types.clear();
            }
            if !self.message_types.contains(t) {
                self.message_types.push(*t);
            }
        }
        if record_end {
            if self.pos.current == Some(RecordType::Header) {
                self.header_done = self.header.take();
            }
            self.pos = RecordPos::START;
        }
        if let Some(h) = self.header_done.take() {
            let mut out = Vec::new();
            h.facts(&mut out);
            for f in out {
                self.emit(f, facts);
            }
        }
        if self.staged.get(RecordType::Terminator.index()) > Some(&0) {
            self.end_message(facts);
        }
        self.staged = [0; 10];
        self.header_at_frame = None;
    }

    /// The message (Header to Terminator, or to EOT) ended: report its record types.
    fn end_message(&mut self, facts: &mut Vec<Fact>) {
        if self.message_types.first() != Some(&RecordType::Header) {
            self.message_types.clear();
            return;
        }
        let types: String = self
            .message_types
            .iter()
            .map(|t| t.letter().to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.message_types.clear();
        self.emit(Fact::new(Field::AstmRecordTypes, types), facts);
    }

    fn emit(&mut self, fact: Fact, facts: &mut Vec<Fact>) {
        if self.seen.contains(&fact) {
            return;
        }
        if self.seen.len() < MAX_DEDUPE {
            self.seen.push(fact.clone());
        }
        facts.push(fact);
    }
}

/// A record type letter an unframed record may start with (upper case only, which keeps
/// ordinary text lines out).
fn is_raw_record_type(b: u8) -> bool {
    b.is_ascii_uppercase() && RecordType::from_byte(b) != RecordType::Other
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Streaming ASTM decoder for one TCP connection (both directions, independent state each).
///
/// Consumes every byte it is offered and holds at most the wanted Header fields
/// ([`MAX_FIELD_BYTES`] each) and a bounded de-duplication list per direction.
pub struct AstmDecoder {
    sides: [Side; 3],
}

impl AstmDecoder {
    /// A decoder for a new connection.
    #[must_use]
    pub fn new() -> Self {
        AstmDecoder {
            sides: [Side::new(), Side::new(), Side::new()],
        }
    }

    fn slot(side: Direction) -> usize {
        match side {
            Direction::FromClient => 0,
            Direction::FromServer => 1,
            Direction::Unknown => 2,
        }
    }

    /// Framing and record counters of one direction.
    #[must_use]
    pub fn stats(&self, side: Direction) -> AstmStats {
        self.sides
            .get(Self::slot(side))
            .map(|s| s.stats)
            .unwrap_or_default()
    }
}

impl Default for AstmDecoder {
    fn default() -> Self {
        Self::new()
    }
}

// Written by hand so that a stray `{:?}` can never print a buffered field.
impl fmt::Debug for AstmDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.sides.iter()).finish()
    }
}

impl StreamDecoder for AstmDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        _at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        // `at_limit` cannot arise: every offered byte is consumed.
        match self.sides.get_mut(Self::slot(side)) {
            Some(s) => s.feed(data, facts),
            None => Feed::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The analyzer's and the LIS's bytes of the two sessions of tests/fixtures/astm.pcap
    /// (astm_peers.py: the `astm` package's client and server): one record per frame, then the
    /// same records split into intermediate (ETB) frames of at most 64 bytes.
    const FRAMES_CLIENT: &[u8] = include_bytes!("../testdata/astm/frames-client.bin");
    const FRAMES_SERVER: &[u8] = include_bytes!("../testdata/astm/frames-server.bin");
    const CHUNKED_CLIENT: &[u8] = include_bytes!("../testdata/astm/chunked-client.bin");
    const CHUNKED_SERVER: &[u8] = include_bytes!("../testdata/astm/chunked-server.bin");

    use Field::*;

    fn header_facts() -> Vec<Fact> {
        [
            (AstmSender, "WardLab Diagnostics^WLA-800^3.2.1^WLA8-000417"),
            (AstmSenderManufacturer, "WardLab Diagnostics"),
            (AstmSenderModel, "WLA-800"),
            (AstmSenderSoftwareVersion, "3.2.1"),
            (AstmInstrumentId, "WLA8-000417"),
            (AstmReceiverId, "WARDLIS"),
            (AstmProcessingId, "P"),
            (AstmVersion, "LIS2-A2"),
            (AstmRecordTypes, "H,P,O,R,C,L"),
        ]
        .iter()
        .map(|&(f, v)| Fact::new(f, v))
        .collect()
    }

    fn run_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Fact>, AstmStats) {
        let mut dec = AstmDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            match dec.feed(Direction::FromClient, chunk, false, &mut out) {
                Feed::Consumed(n) => assert_eq!(n, chunk.len()),
                Feed::Done => break,
            }
        }
        (out, dec.stats(Direction::FromClient))
    }

    fn run(data: &[u8]) -> Vec<Fact> {
        run_chunks([data]).0
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
        run_chunks(chunks).0
    }

    /// `STX FN text end C1 C2 CR LF` with the right checksum.
    fn frame(n: u8, text: &str, end: u8) -> Vec<u8> {
        let mut body = vec![b'0' + n];
        body.extend_from_slice(text.as_bytes());
        body.push(end);
        let sum = body.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        let mut out = vec![STX];
        out.extend_from_slice(&body);
        out.extend_from_slice(format!("{sum:02X}\r\n").as_bytes());
        out
    }

    /// ENQ, one frame per record, EOT.
    fn session(records: &[&str]) -> Vec<u8> {
        let mut out = vec![ENQ];
        for (i, r) in records.iter().enumerate() {
            out.extend(frame(((i + 1) % 8) as u8, &format!("{r}\r"), ETX));
        }
        out.push(EOT);
        out
    }

    fn assert_no_canary(out: &[Fact]) {
        for f in out {
            assert!(!f.value.contains("CANARY"), "{f:?}");
        }
    }

    #[test]
    fn captured_sessions_yield_the_header_only() {
        for capture in [FRAMES_CLIENT, CHUNKED_CLIENT] {
            assert!(capture.windows(6).any(|w| w == b"CANARY"));
            let (out, stats) = run_chunks([capture]);
            assert_eq!(out, header_facts());
            assert_no_canary(&out);
            assert_eq!(stats.checksum_errors, 0);
            assert_eq!(stats.sequence_errors, 0);
            assert_eq!(stats.malformed_frames, 0);
            // The client opens a new transfer after the terminator, then finds nothing to send.
            assert_eq!((stats.enq, stats.eot), (2, 2));
            for (t, n) in [
                (RecordType::Header, 1),
                (RecordType::Patient, 1),
                (RecordType::Order, 1),
                (RecordType::Result, 2),
                (RecordType::Comment, 1),
                (RecordType::Terminator, 1),
                (RecordType::Query, 0),
                (RecordType::Other, 0),
            ] {
                assert_eq!(stats.records_of(t), n, "{t:?}");
            }
        }
        // One frame per record in the first session; the second splits them over ETB frames.
        assert_eq!(run_chunks([FRAMES_CLIENT]).1.frames, 7);
        assert!(CHUNKED_CLIENT.contains(&ETB));
        assert!(run_chunks([CHUNKED_CLIENT]).1.frames > 7);
        // The LIS only acknowledges: nothing to report, every ACK counted.
        let mut dec = AstmDecoder::new();
        let mut out = Vec::new();
        for server in [FRAMES_SERVER, CHUNKED_SERVER] {
            dec.feed(Direction::FromServer, server, false, &mut out);
        }
        assert!(out.is_empty());
        let s = dec.stats(Direction::FromServer);
        assert_eq!(s.ack as usize, FRAMES_SERVER.len() + CHUNKED_SERVER.len());
    }

    #[test]
    fn probe_is_certain_of_its_own_bytes_only() {
        for c in [FRAMES_CLIENT, CHUNKED_CLIENT] {
            assert_eq!(looks_like_astm(c), Some(true));
            for cut in 0..HeaderFrame::<&[u8]>::LEN + 1 {
                assert_eq!(looks_like_astm(&c[..cut]), None, "cut {cut}");
            }
        }
        // A receiver's direction is ACKs alone: the other direction decides.
        assert_eq!(looks_like_astm(FRAMES_SERVER), None);
        assert_eq!(
            looks_like_astm(&[ACK; MAX_LEADING_CONTROL + 1]),
            Some(false)
        );
        // Joined at a frame boundary, without the ENQ.
        assert_eq!(looks_like_astm(&FRAMES_CLIENT[1..]), Some(true));
        for other in [
            &b"\x0bMSH|^~\\&|"[..],
            b"GET / HTTP/1.1\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[1, 0, 0, 0, 0, 68, 0, 1],
            &[0x16, 3, 1, 0, 0xc4, 1],
            b"\x05\x021P|1|",
            b"\x05\x021Habc",
            b"\x05\x029H|\\^&",
            b"\x05\x021H||^&",
        ] {
            assert_eq!(looks_like_astm(other), Some(false), "{other:?}");
        }
        assert!(HeaderFrame::new_checked(&FRAMES_CLIENT[1..]).is_ok());
        let h = HeaderFrame::new_checked(&FRAMES_CLIENT[1..]).unwrap();
        assert_eq!(h.frame_number(), 1);
        assert_eq!(h.delimiters(), *b"|\\^&");
    }

    #[test]
    fn checked_view_errors_name_layer_and_offset() {
        assert_eq!(
            HeaderFrame::new_checked(&b"\x021H|"[..]).unwrap_err(),
            DecodeError::Truncated {
                layer: LAYER,
                offset: 0,
                needed: 7,
                available: 4
            }
        );
        let e = HeaderFrame::new_checked(&b"\x028H|\\^&"[..]).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { offset: 1, .. }), "{e}");
        let e = HeaderFrame::new_checked(&b"\x021H|\\^|"[..]).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { offset: 3, .. }), "{e}");
        assert_eq!(e.layer(), Layer::App(Protocol::Astm));
        // The message never echoes the bytes.
        assert!(!e.to_string().contains('^'));
    }

    #[test]
    fn resync_joins_mid_session() {
        // The tail of a frame, then a session: joined at its ENQ.
        let mut stream = CHUNKED_CLIENT[40..60].to_vec();
        stream.extend_from_slice(FRAMES_CLIENT);
        let at = find_frame_start(&stream).unwrap();
        assert_eq!(stream[at], ENQ);
        assert_eq!(stream.len() - at, FRAMES_CLIENT.len());
        assert_eq!(find_frame_start(&stream[at + 1..]), Some(0));
        // Without a Header ahead, the next complete frame whose checksum verifies.
        let next = find_frame_start(&CHUNKED_CLIENT[40..]).unwrap();
        assert_eq!(CHUNKED_CLIENT[40 + next], STX);
        assert!(is_verified_frame(&CHUNKED_CLIENT[40 + next..]));
        let p = frame(3, "P|1|CANARYX\r", ETX);
        let mut corrupt = p.clone();
        corrupt[5] ^= 1;
        assert!(is_verified_frame(&p));
        assert!(!is_verified_frame(&corrupt));
        assert_eq!(
            find_frame_start(&[&b"xyz"[..], &corrupt, &p].concat()),
            Some(3 + p.len())
        );
        assert!(!is_verified_frame(&frame(3, "X|1\r", ETX)));
        assert!(!is_verified_frame(&p[..p.len() - 3]));
        // Fed from any cut, the decoder reports nothing false and finds the next Header.
        for cut in 0..CHUNKED_CLIENT.len() {
            let mut s = CHUNKED_CLIENT[cut..].to_vec();
            s.extend_from_slice(FRAMES_CLIENT);
            let out = run(&s);
            assert!(
                out.iter().all(|f| header_facts().contains(f)),
                "cut {cut}: {out:?}"
            );
            assert_eq!(out.len(), header_facts().len(), "cut {cut}: {out:?}");
        }
        // Joined at a result frame of a session whose Header was missed: the records are
        // counted, and the next session's Header is read.
        let r = frame(4, "R|1|^^^GLU|CANARYRESULT\r", ETX);
        let mut stream = b"CANARY tail of a patient record".to_vec();
        stream.extend_from_slice(&r);
        stream.extend_from_slice(&frame(5, "L|1|N\r", ETX));
        stream.push(EOT);
        stream.extend_from_slice(FRAMES_CLIENT);
        let at = find_frame_start(&stream).unwrap();
        let (out, stats) = run_chunks([&stream[at..]]);
        assert_eq!(out, header_facts());
        assert_eq!(stats.records_of(RecordType::Result), 3);
        assert_eq!(stats.checksum_errors, 0);
    }

    #[test]
    fn checksum_errors_are_counted_and_rolled_back() {
        let header = "H|\\^&|||ACME^AX-1^2.0^SN1|||||||P|1";
        let good = frame(1, &format!("{header}\r"), ETX);
        // A flipped text byte: the frame is refused, its Header never reported.
        let mut bad = good.clone();
        bad[12] ^= 0x01;
        let mut stream = vec![ENQ];
        stream.extend_from_slice(&bad);
        let (out, stats) = run_chunks([&stream[..]]);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.checksum_errors, 1);
        assert_eq!(stats.frames, 0);
        assert_eq!(stats.records_of(RecordType::Header), 0);
        // The receiver NAKs; the sender repeats the frame with the same number: accepted.
        stream.extend_from_slice(&good);
        let (out, stats) = run_chunks([&stream[..]]);
        assert_eq!(
            out.first(),
            Some(&Fact::new(AstmSender, "ACME^AX-1^2.0^SN1"))
        );
        assert_eq!((stats.checksum_errors, stats.frames), (1, 1));
        assert_eq!(stats.sequence_errors, 0);
        assert_eq!(stats.records_of(RecordType::Header), 1);
        // Lower-case checksum digits are accepted; non-hex ones make the frame malformed.
        let mut lower = (0..64)
            .map(|i| frame(1, &format!("H|\\^&|||X{i}\r"), ETX))
            .find(|f| {
                f[f.len() - 4..f.len() - 2]
                    .iter()
                    .any(u8::is_ascii_uppercase)
            })
            .unwrap();
        let n = lower.len();
        lower[n - 4..n - 2].make_ascii_lowercase();
        let (_, stats) = run_chunks([&lower[..]]);
        assert_eq!((stats.checksum_errors, stats.frames), (0, 1));
        let mut nonhex = good.clone();
        let n = nonhex.len();
        nonhex[n - 4] = b'G';
        let (out, stats) = run_chunks([&nonhex[..]]);
        assert!(out.is_empty());
        assert_eq!(stats.malformed_frames, 1);
    }

    #[test]
    fn a_corrupt_intermediate_frame_rolls_back_only_itself() {
        // The Header spans two frames; the second arrives corrupt, then again intact.
        let first = frame(1, "H|\\^&|||ACME^AX", ETB);
        let second = frame(2, "-1^2.0^SN1|||||||P|1\r", ETX);
        let mut bad = second.clone();
        bad[3] = b'Z';
        let mut stream = vec![ENQ];
        stream.extend(first);
        stream.extend(bad);
        stream.extend(second);
        stream.extend(frame(3, "L|1|N\r", ETX));
        stream.push(EOT);
        let (out, stats) = run_chunks([&stream[..]]);
        assert_eq!(stats.checksum_errors, 1);
        assert_eq!(
            out,
            vec![
                Fact::new(AstmSender, "ACME^AX-1^2.0^SN1"),
                Fact::new(AstmSenderManufacturer, "ACME"),
                Fact::new(AstmSenderModel, "AX-1"),
                Fact::new(AstmSenderSoftwareVersion, "2.0"),
                Fact::new(AstmInstrumentId, "SN1"),
                Fact::new(AstmProcessingId, "P"),
                Fact::new(AstmVersion, "1"),
                Fact::new(AstmRecordTypes, "H,L"),
            ]
        );
    }

    #[test]
    fn frame_numbers_are_checked_and_retransmissions_not_counted_twice() {
        let h = frame(1, "H|\\^&|||X^Y\r", ETX);
        let p = frame(2, "P|1|CANARYSEQ\r", ETX);
        let mut stream = vec![ENQ];
        stream.extend_from_slice(&h);
        stream.extend_from_slice(&p);
        // The ACK was lost: the same frame again.
        stream.extend_from_slice(&p);
        // Out of sequence: 5 after 2.
        stream.extend(frame(5, "R|1|^^^X|CANARYSEQ\r", ETX));
        stream.extend(frame(6, "L|1\r", ETX));
        let (out, stats) = run_chunks([&stream[..]]);
        assert_eq!(stats.retransmissions, 1);
        assert_eq!(stats.sequence_errors, 1);
        assert_eq!(stats.records_of(RecordType::Patient), 1);
        assert_eq!(stats.frames, 4);
        assert_eq!(out.last(), Some(&Fact::new(AstmRecordTypes, "H,P,R,L")));
        assert_no_canary(&out);
        // Frame numbers wrap 7 -> 0 -> 1.
        let recs: Vec<String> = (0..10).map(|i| format!("C|{i}")).collect();
        let mut all = vec!["H|\\^&"];
        all.extend(recs.iter().map(String::as_str));
        all.push("L|1");
        let (out, stats) = run_chunks([&session(&all)[..]]);
        assert_eq!(stats.sequence_errors, 0);
        assert_eq!(stats.retransmissions, 0);
        assert_eq!(stats.records_of(RecordType::Comment), 10);
        assert_eq!(out, vec![Fact::new(AstmRecordTypes, "H,C,L")]);
    }

    #[test]
    fn other_delimiters_and_escapes() {
        let out = run(&session(&[
            "H!~$#!CTRL!CANARYPW!Maker #F# Co$Model~2$1.0$ID#S#9!!!!!LIS#E#A!!Q!LIS2-A2",
            "P!1!CANARYPATIENT$NAME",
            "L!1",
        ]));
        assert_eq!(
            out,
            vec![
                Fact::new(AstmSender, "Maker | Co^Model"),
                Fact::new(AstmSenderManufacturer, "Maker | Co"),
                Fact::new(AstmSenderModel, "Model"),
                Fact::new(AstmReceiverId, "LIS&A"),
                Fact::new(AstmProcessingId, "Q"),
                Fact::new(AstmVersion, "LIS2-A2"),
                Fact::new(AstmRecordTypes, "H,P,L"),
            ]
        );
        // Repeats: the first repetition only; canonical delimiters written back.
        let out = run(&session(&["H|\\^&|||A^B^C^D\\E^F|||||R1\\R2"]));
        assert_eq!(out[0], Fact::new(AstmSender, "A^B^C^D"));
        assert_eq!(out[5], Fact::new(AstmReceiverId, "R1"));
    }

    #[test]
    fn invalid_delimiters_disable_the_header() {
        for h in ["H|\\^|||A^B", "HA\\^&A||A^B", "H|\\^", "H| ^&|||A^B", "H"] {
            let (out, stats) = run_chunks([&session(&[h, "L|1"])[..]]);
            assert!(
                out.iter().all(|f| f.field == AstmRecordTypes),
                "{h}: {out:?}"
            );
            assert_eq!(stats.records_of(RecordType::Header), 1);
        }
    }

    #[test]
    fn the_password_and_unwanted_fields_are_never_read() {
        let out = run(&session(&[
            "H|\\^&|CANARYMSGID|CANARYPASSWORD|Maker^M1|CANARYADDR||CANARYPHONE|CANARYCAPS|LIS|CANARYCOMMENT|P|1|CANARYTIME|CANARY15",
        ]));
        assert_no_canary(&out);
        assert_eq!(out.len(), 7, "{out:?}");
    }

    #[test]
    fn bounds() {
        // A wanted field past MAX_FIELD_BYTES is dropped, not buffered.
        let long = "S".repeat(MAX_FIELD_BYTES + 1);
        let out = run(&session(&[&format!("H|\\^&|||{long}|||||||P")]));
        let out: Vec<Fact> = out
            .into_iter()
            .filter(|f| f.field != AstmRecordTypes)
            .collect();
        assert_eq!(out, vec![Fact::new(AstmProcessingId, "P")]);
        // Frame text past MAX_FRAME_TEXT abandons the frame.
        let huge = format!("P|{}", "X".repeat(MAX_FRAME_TEXT));
        let (out, stats) = run_chunks([&session(&["H|\\^&|||A", &huge])[..]]);
        assert_eq!(stats.malformed_frames, 1);
        assert_eq!(stats.records_of(RecordType::Patient), 0);
        assert_eq!(out.len(), 3, "{out:?}");
        // Junk: given up after MAX_HUNT_BYTES.
        let mut dec = AstmDecoder::new();
        let mut out = Vec::new();
        let junk = vec![b'A'; 1000];
        let mut fed = 0;
        while dec.feed(Direction::FromClient, &junk, false, &mut out) != Feed::Done {
            fed += junk.len();
            assert!(fed <= MAX_HUNT_BYTES + junk.len());
        }
        assert_eq!(
            dec.feed(Direction::FromClient, FRAMES_CLIENT, false, &mut out),
            Feed::Done
        );
        assert!(out.is_empty());
        // Facts are de-duplicated per side, within a bound.
        let mut dec = AstmDecoder::new();
        let mut out = Vec::new();
        for i in 0..100 {
            let s = session(&[&format!("H|\\^&|||M{i}")]);
            dec.feed(Direction::FromClient, &s, false, &mut out);
            dec.feed(Direction::FromClient, &s, false, &mut out);
        }
        // Every distinct sender is reported; past the bound repeats are no longer suppressed.
        let senders: std::collections::HashSet<_> =
            out.iter().filter(|f| f.field == AstmSender).collect();
        assert_eq!(senders.len(), 100);
        assert_eq!(out.iter().filter(|f| f.field == AstmRecordTypes).count(), 1);
        assert_eq!(dec.sides[0].seen.len(), MAX_DEDUPE);
    }

    #[test]
    fn sides_are_independent_and_debug_shows_no_content() {
        let mut dec = AstmDecoder::new();
        let mut client = Vec::new();
        let mut server = Vec::new();
        for i in 0..FRAMES_CLIENT.len() {
            dec.feed(
                Direction::FromClient,
                &FRAMES_CLIENT[i..i + 1],
                false,
                &mut client,
            );
            if let Some(b) = FRAMES_SERVER.get(i..i + 1) {
                dec.feed(Direction::FromServer, b, false, &mut server);
            }
        }
        assert_eq!(client, header_facts());
        assert!(server.is_empty());
        let mut dec = AstmDecoder::new();
        dec.feed(
            Direction::FromClient,
            b"\x05\x021H|\\^&|SECRETID|SECRETPW|SECRETSENDER",
            false,
            &mut Vec::new(),
        );
        let shown = format!("{dec:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    /// LIS2-A2 records straight over TCP, without E1381 framing (what some instruments and
    /// middleware send on a TCP connection).
    fn raw_session(eol: &str) -> Vec<u8> {
        [
            "H|\\^&|||ACME^AX-1^2.0^SN1|||||||P|1",
            "P|1|CANARYPATIENTID||CANARYFAMILY^CANARYGIVEN",
            "O|1|CANARYSPECIMEN||^^^GLU",
            "R|1|^^^GLU|CANARYRESULT",
            "L|1|N",
        ]
        .iter()
        .map(|r| format!("{r}{eol}"))
        .collect::<String>()
        .into_bytes()
    }

    #[test]
    fn unframed_records() {
        let want = vec![
            Fact::new(AstmSender, "ACME^AX-1^2.0^SN1"),
            Fact::new(AstmSenderManufacturer, "ACME"),
            Fact::new(AstmSenderModel, "AX-1"),
            Fact::new(AstmSenderSoftwareVersion, "2.0"),
            Fact::new(AstmInstrumentId, "SN1"),
            Fact::new(AstmProcessingId, "P"),
            Fact::new(AstmVersion, "1"),
            Fact::new(AstmRecordTypes, "H,P,O,R,L"),
        ];
        for eol in ["\r", "\r\n", "\n"] {
            let raw = raw_session(eol);
            assert_eq!(looks_like_astm(&raw), Some(true));
            let (out, stats) = run_chunks([&raw[..]]);
            assert_eq!(out, want, "{eol:?}");
            assert_no_canary(&out);
            assert_eq!(stats.frames, 0);
            assert_eq!(stats.records_of(RecordType::Patient), 1);
            assert_eq!(stats.records_of(RecordType::Terminator), 1);
            assert_eq!(run_sizes(&raw, &[1]), want);
            assert_eq!(run_sizes(&raw, &[3, 7, 2]), want);
        }
        // Joined mid-session: at the next line that starts a Header.
        let mut stream = b"NARYFAMILY\rO|1|X\r".to_vec();
        stream.extend(raw_session("\r"));
        let at = find_frame_start(&stream).unwrap();
        assert_eq!(&stream[at..at + 2], b"H|");
        assert_eq!(run(&stream[at..]), want);
        // A line that only starts with `H`, or records with no Header before them: nothing.
        for text in [
            &b"HYSICIAN\rP|1|CANARY\rL|1\r"[..],
            b"P|1|CANARY\rR|1|X\rL|1\r",
            b"Hello world\r\n",
        ] {
            let (out, stats) = run_chunks([text]);
            assert!(out.is_empty(), "{out:?}");
            assert_eq!(stats.records, [0; 10], "{text:?}");
        }
        // Framing resumes after unframed records.
        let mut mixed = raw_session("\r\n");
        mixed.extend_from_slice(FRAMES_CLIENT);
        let out = run(&mixed);
        for f in want.iter().chain(&header_facts()) {
            assert!(out.contains(f), "{f:?} missing from {out:?}");
        }
        for (prefix, answer) in [
            (&b"H"[..], None),
            (b"H|\\", None),
            (b"H|\\^&", Some(true)),
            (b"H|||||", Some(false)),
            (b"HEAD / HTTP/1.1", Some(false)),
            (b"Hello", Some(false)),
            (b"h|\\^&", Some(false)),
        ] {
            assert_eq!(looks_like_astm(prefix), answer, "{prefix:?}");
        }
    }

    #[test]
    fn truncations_never_panic_and_stay_consistent() {
        for capture in [FRAMES_CLIENT, CHUNKED_CLIENT] {
            for cut in 0..=capture.len() {
                let out = run(&capture[..cut]);
                assert!(out.iter().all(|f| header_facts().contains(f)), "cut {cut}");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                       split in 0usize..2048) {
            let mut framed = b"\x05\x021H|\\^&|".to_vec();
            framed.extend_from_slice(&data);
            for input in [&data[..], &framed[..]] {
                let _ = looks_like_astm(input);
                let _ = find_frame_start(input);
                let split = split.min(input.len());
                let (out, _) = run_chunks([&input[..split], &input[split..]]);
                for f in out {
                    prop_assert_eq!(f.field.protocol(), Protocol::Astm);
                    prop_assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
                }
            }
        }

        #[test]
        fn mutations_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                 sizes in proptest::collection::vec(1usize..64, 1..8)) {
            let mut msg = CHUNKED_CLIENT.to_vec();
            msg.extend_from_slice(FRAMES_CLIENT);
            for (at, b) in edits {
                let at = at % msg.len();
                msg[at] = b;
            }
            let whole = run(&msg);
            prop_assert_eq!(run_sizes(&msg, &sizes), whole.clone());
            for f in whole {
                prop_assert_eq!(f.field.protocol(), Protocol::Astm);
            }
        }

        #[test]
        fn random_chunking_is_invisible(sizes in proptest::collection::vec(1usize..200, 1..16)) {
            let mut stream = FRAMES_CLIENT.to_vec();
            stream.extend_from_slice(CHUNKED_CLIENT);
            prop_assert_eq!(run_sizes(&stream, &sizes), header_facts());
        }
    }
}
