//! DIMSE command sets and the allow-list dataset walker.
//!
//! Command sets (group 0000, always implicit VR little endian) are small and carry no patient
//! data, so they are buffered whole and parsed. Datasets are never buffered: [`DatasetWalker`]
//! is a streaming state machine that reads element *headers* and copies a value only when its tag
//! is one of the six device-identity tags. Everything else, group 0010 above all, is skipped by
//! counting bytes, so patient data is never read, let alone copied.

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Fact, Field, Protocol};

/// Undefined length (PS3.5 §7.1.1): the value ends at a delimiter instead.
const UNDEFINED: u32 = 0xffff_ffff;

/// Values longer than this are skipped even when allow-listed: identity strings are short
/// (LO is 64 chars) and the buffer must stay small.
pub const MAX_VALUE_LEN: u32 = 1024;

/// Deepest sequence/item nesting the walker follows through undefined lengths before giving up.
const MAX_DEPTH: u8 = 16;

const fn tag(group: u16, element: u16) -> u32 {
    ((group as u32) << 16) | element as u32
}

const SOFTWARE_VERSIONS: u32 = tag(0x0018, 0x1020);

/// The allow-list: the only dataset values this crate ever reads.
const fn allowed(t: u32) -> Option<Field> {
    Some(match t {
        0x0008_0060 => Field::DicomModality,
        0x0008_0070 => Field::DicomManufacturer,
        0x0008_1010 => Field::DicomStationName,
        0x0008_1090 => Field::DicomModelName,
        0x0018_1000 => Field::DicomDeviceSerialNumber,
        SOFTWARE_VERSIONS => Field::DicomSoftwareVersions,
        _ => return None,
    })
}

const ITEM: u32 = tag(0xfffe, 0xe000);
const ITEM_END: u32 = tag(0xfffe, 0xe00d);
const SEQUENCE_END: u32 = tag(0xfffe, 0xe0dd);

/// How a dataset's elements are encoded, from the accepted transfer syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR little endian.
    Implicit,
    /// Explicit VR little endian (also the element encoding of the encapsulated syntaxes).
    Explicit,
    /// Unknown syntax (A-ASSOCIATE-AC not seen, or private): decided from the first element.
    Guess,
    /// Big endian or deflated: not walked.
    Unsupported,
}

impl Encoding {
    /// The encoding a transfer syntax UID implies.
    pub fn from_transfer_syntax(uid: &str) -> Self {
        match uid {
            "1.2.840.10008.1.2" => Encoding::Implicit,
            "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => Encoding::Unsupported,
            // Explicit LE, and every encapsulated syntax (JPEG, JPEG-LS, JPEG 2000, RLE, MPEG,
            // HTJ2K): only pixel data is compressed, elements stay explicit VR little endian.
            u if u.starts_with("1.2.840.10008.1.2.") => Encoding::Explicit,
            _ => Encoding::Guess,
        }
    }
}

/// DIMSE command field values (PS3.7 §E.1), requests; responses have bit 15 set.
pub fn command_name(field: u16) -> Option<&'static str> {
    Some(match field {
        0x0001 => "C-STORE-RQ",
        0x8001 => "C-STORE-RSP",
        0x0010 => "C-GET-RQ",
        0x8010 => "C-GET-RSP",
        0x0020 => "C-FIND-RQ",
        0x8020 => "C-FIND-RSP",
        0x0021 => "C-MOVE-RQ",
        0x8021 => "C-MOVE-RSP",
        0x0030 => "C-ECHO-RQ",
        0x8030 => "C-ECHO-RSP",
        0x0fff => "C-CANCEL-RQ",
        0x0100 => "N-EVENT-REPORT-RQ",
        0x8100 => "N-EVENT-REPORT-RSP",
        0x0110 => "N-GET-RQ",
        0x8110 => "N-GET-RSP",
        0x0120 => "N-SET-RQ",
        0x8120 => "N-SET-RSP",
        0x0130 => "N-ACTION-RQ",
        0x8130 => "N-ACTION-RSP",
        0x0140 => "N-CREATE-RQ",
        0x8140 => "N-CREATE-RSP",
        0x0150 => "N-DELETE-RQ",
        0x8150 => "N-DELETE-RSP",
        _ => return None,
    })
}

/// C-STORE-RQ command field.
pub const C_STORE_RQ: u16 = 0x0001;

/// The parts of a command set ward uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// (0000,0100) Command Field.
    pub field: Option<u16>,
    /// (0000,0002) Affected SOP Class UID, or (0000,0003) Requested SOP Class UID for the N-
    /// services that name their class that way; cleaned.
    pub sop_class: Option<String>,
    /// (0000,0800) Command Data Set Type is not 0x0101 ("no data set").
    pub has_dataset: bool,
}

/// Parses a whole command set (implicit VR little endian, group 0000 only).
pub fn parse_command(buf: &[u8]) -> Result<Command, DecodeError> {
    let mut cmd = Command::default();
    let mut requested = None;
    let mut data_set_type = None;
    let mut rest = buf;
    let mut offset = 0;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_at_checked(8) else {
            return Err(DecodeError::truncated(
                Layer::App(Protocol::Dicom),
                offset,
                8,
                buf.len(),
            ));
        };
        let t = tag(le_u16(header, 0), le_u16(header, 2));
        if t >> 16 != 0 {
            return Err(DecodeError::Invalid {
                layer: Layer::App(Protocol::Dicom),
                offset,
                what: "command set tag outside group 0000",
            });
        }
        let len = le_u32(header, 4);
        let Some((value, next)) = after.split_at_checked(super::pdu::to_usize(len)) else {
            let needed = 8usize.saturating_add(super::pdu::to_usize(len));
            return Err(DecodeError::truncated(
                Layer::App(Protocol::Dicom),
                offset,
                needed,
                buf.len(),
            ));
        };
        match t {
            0x0000_0002 => cmd.sop_class = Some(clean_text(value)),
            0x0000_0003 => requested = Some(clean_text(value)),
            0x0000_0100 if value.len() == 2 => cmd.field = Some(le_u16(value, 0)),
            0x0000_0800 if value.len() == 2 => data_set_type = Some(le_u16(value, 0)),
            _ => {}
        }
        offset += 8 + value.len();
        rest = next;
    }
    if cmd.sop_class.is_none() {
        cmd.sop_class = requested;
    }
    cmd.has_dataset = data_set_type != Some(0x0101);
    Ok(cmd)
}

fn le_u16(buf: &[u8], at: usize) -> u16 {
    buf.get(at..at + 2)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_le_bytes)
}

fn le_u32(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Value representations of PS3.5 §6.2, for validating explicit VR headers.
const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

fn is_vr(b: &[u8]) -> bool {
    VRS.iter().any(|vr| vr.as_slice() == b)
}

/// Explicit VRs whose header has 2 reserved bytes and a 4-byte length (PS3.5 §7.1.2).
fn has_long_length(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"SV"
            | b"UV"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Collecting an element header into `header`.
    Header,
    /// Skipping this many value bytes unread.
    Skip(u32),
    /// Collecting an allow-listed value (`remaining` bytes to go).
    Value { field: Field, remaining: u32 },
    /// Nothing more of interest in this dataset.
    Done,
}

/// Streaming walker over one dataset's bytes, fed fragment by fragment in any split.
///
/// Memory is a 12-byte header buffer plus at most [`MAX_VALUE_LEN`] bytes while inside an
/// allow-listed element. It stops at the first tag past (0018,1020), after that element, or at
/// anything it cannot skip without reading values.
#[derive(Debug, Clone)]
pub struct DatasetWalker {
    encoding: Encoding,
    header: [u8; 12],
    header_len: usize,
    state: Walk,
    /// Open undefined-length sequences and items; values inside them are never extracted.
    depth: u8,
    /// Last top-level tag, to catch out-of-order (misframed) data.
    last_tag: u32,
    value: Vec<u8>,
}

impl DatasetWalker {
    /// A walker for a dataset in `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        let state = if encoding == Encoding::Unsupported {
            Walk::Done
        } else {
            Walk::Header
        };
        DatasetWalker {
            encoding,
            header: [0; 12],
            header_len: 0,
            state,
            depth: 0,
            last_tag: 0,
            value: Vec::new(),
        }
    }

    /// Whether the walk has ended; further bytes are ignored.
    pub fn is_done(&self) -> bool {
        self.state == Walk::Done
    }

    /// Bytes the walker holds (for bounding tests).
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> usize {
        self.value.capacity() + self.header.len()
    }

    /// Consumes the next bytes of the dataset, pushing identity facts.
    pub fn feed(&mut self, mut data: &[u8], facts: &mut Vec<Fact>) {
        while !data.is_empty() {
            match self.state {
                Walk::Done => return,
                Walk::Skip(n) => {
                    let k = data.len().min(super::pdu::to_usize(n));
                    data = data.get(k..).unwrap_or_default();
                    // k <= n, so the cast back cannot truncate.
                    let left = n - u32::try_from(k).unwrap_or(n);
                    self.state = if left == 0 {
                        Walk::Header
                    } else {
                        Walk::Skip(left)
                    };
                }
                Walk::Value { field, remaining } => {
                    let k = data.len().min(super::pdu::to_usize(remaining));
                    let (chunk, rest) = data.split_at_checked(k).unwrap_or((data, &[]));
                    self.value.extend_from_slice(chunk);
                    data = rest;
                    let left = remaining - u32::try_from(k).unwrap_or(remaining);
                    if left == 0 {
                        self.finish_value(field, facts);
                    } else {
                        self.state = Walk::Value {
                            field,
                            remaining: left,
                        };
                    }
                }
                Walk::Header => {
                    let need = self.header_need();
                    let have = self.header_len;
                    let k = data.len().min(need.saturating_sub(have));
                    let (chunk, rest) = data.split_at_checked(k).unwrap_or((data, &[]));
                    if let Some(dst) = self.header.get_mut(have..have + k) {
                        dst.copy_from_slice(chunk);
                    }
                    self.header_len += k;
                    data = rest;
                    if self.header_len == self.header_need() {
                        self.header_len = 0;
                        self.on_header();
                    }
                }
            }
        }
    }

    /// Header size as far as the bytes collected so far tell: 4 to see the tag, 6 to see an
    /// explicit VR, then 8 or 12. Settles a guessed encoding as soon as the first header shows
    /// whether bytes 4–5 are a VR.
    fn header_need(&mut self) -> usize {
        let have = self.header_len;
        if have < 4 {
            return 4;
        }
        if le_u16(&self.header, 0) == 0xfffe {
            return 8; // item and delimiter tags never have a VR
        }
        if self.encoding == Encoding::Guess {
            if have < 6 {
                return 6;
            }
            let explicit = self.header.get(4..6).is_some_and(is_vr);
            self.encoding = if explicit {
                Encoding::Explicit
            } else {
                Encoding::Implicit
            };
        }
        match self.encoding {
            Encoding::Explicit if have < 6 => 6,
            Encoding::Explicit if self.header.get(4..6).is_some_and(has_long_length) => 12,
            _ => 8,
        }
    }

    fn on_header(&mut self) {
        let h = &self.header;
        let t = tag(le_u16(h, 0), le_u16(h, 2));
        if t >> 16 == 0xfffe {
            self.on_delimiter(t, le_u32(h, 4));
            return;
        }
        let (len, nests) = match self.encoding {
            Encoding::Explicit => {
                let vr = h.get(4..6).unwrap_or_default();
                if !is_vr(vr) {
                    self.state = Walk::Done;
                    return;
                }
                let len = if has_long_length(vr) {
                    le_u32(h, 8)
                } else {
                    u32::from(le_u16(h, 6))
                };
                // Undefined-length SQ holds items; undefined-length OB/OW (encapsulated pixel
                // data) holds defined-length items; both end with a sequence delimiter. An
                // undefined-length UN is implicit VR inside, which this walk cannot follow.
                (len, matches!(vr, b"SQ" | b"OB" | b"OW"))
            }
            // In implicit VR only sequences may have an undefined length.
            _ => (le_u32(h, 4), true),
        };
        if self.depth == 0 {
            if t < self.last_tag || t > SOFTWARE_VERSIONS {
                self.state = Walk::Done;
                return;
            }
            self.last_tag = t;
        }
        if len == UNDEFINED {
            self.state = if nests && self.depth < MAX_DEPTH {
                self.depth += 1;
                Walk::Header
            } else {
                Walk::Done
            };
            return;
        }
        self.state = match allowed(t) {
            Some(field) if self.depth == 0 && len <= MAX_VALUE_LEN => {
                self.value.clear();
                Walk::Value {
                    field,
                    remaining: len,
                }
            }
            // Nothing of interest follows an unreadable (0018,1020).
            _ if self.depth == 0 && t == SOFTWARE_VERSIONS => Walk::Done,
            // Zero lengths need no special case: `feed` finishes them with the next byte, and
            // a dataset that ends there has nothing more to report anyway.
            _ => Walk::Skip(len),
        };
    }

    fn on_delimiter(&mut self, t: u32, len: u32) {
        if self.depth == 0 {
            // Items and delimiters only occur inside a sequence: the framing is off.
            self.state = Walk::Done;
            return;
        }
        self.state = match t {
            ITEM if len == UNDEFINED => {
                if self.depth < MAX_DEPTH {
                    self.depth += 1;
                    Walk::Header
                } else {
                    Walk::Done
                }
            }
            ITEM if len == 0 => Walk::Header,
            ITEM => Walk::Skip(len),
            ITEM_END | SEQUENCE_END => {
                self.depth -= 1;
                Walk::Header
            }
            _ => Walk::Done,
        };
    }

    fn finish_value(&mut self, field: Field, facts: &mut Vec<Fact>) {
        let value = core::mem::take(&mut self.value);
        if field == Field::DicomSoftwareVersions {
            for part in value.split(|&b| b == b'\\') {
                push_text(facts, field, part);
            }
            self.state = Walk::Done;
        } else {
            push_text(facts, field, &value);
            self.state = Walk::Header;
        }
        // Keep the (bounded) allocation for the next value.
        self.value = value;
        self.value.clear();
    }
}

fn push_text(facts: &mut Vec<Fact>, field: Field, raw: &[u8]) {
    let text = clean_text(raw);
    if !text.is_empty() {
        facts.push(Fact::new(field, text));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an element in the given encoding (test helper shared with the decoder tests).
    pub(crate) fn element(
        explicit: bool,
        group: u16,
        elem: u16,
        vr: &[u8; 2],
        value: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        if explicit {
            out.extend_from_slice(vr);
            if has_long_length(vr) {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            } else {
                out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            }
        } else {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    /// A dataset with every allow-listed tag and patient canaries around them.
    pub(crate) fn device_dataset(explicit: bool) -> Vec<u8> {
        let e = |g, el, vr, v: &[u8]| element(explicit, g, el, vr, v);
        [
            e(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"),
            e(0x0008, 0x0060, b"CS", b"MR"),
            e(0x0008, 0x0070, b"LO", b"ACME MEDICAL "),
            e(0x0008, 0x0080, b"LO", b"CANARY INSTITUTION"),
            e(0x0008, 0x1010, b"SH", b"MR-ROOM-2 "),
            e(0x0008, 0x1090, b"LO", b"Magneto 3T"),
            e(0x0010, 0x0010, b"PN", b"CANARY^PATIENT^NAME "),
            e(0x0010, 0x0020, b"LO", b"CANARY-ID-0001"),
            e(0x0018, 0x1000, b"LO", b"SN 77 "),
            e(0x0018, 0x1020, b"LO", b"1.0\\2.0 "),
            e(0x0020, 0x0010, b"SH", b"CANARY-STUDY"),
        ]
        .concat()
    }

    fn walk(enc: Encoding, data: &[u8], chunk: usize) -> Vec<Fact> {
        let mut w = DatasetWalker::new(enc);
        let mut facts = Vec::new();
        for c in data.chunks(chunk) {
            w.feed(c, &mut facts);
        }
        facts
    }

    fn expected() -> Vec<Fact> {
        vec![
            Fact::new(Field::DicomModality, "MR"),
            Fact::new(Field::DicomManufacturer, "ACME MEDICAL"),
            Fact::new(Field::DicomStationName, "MR-ROOM-2"),
            Fact::new(Field::DicomModelName, "Magneto 3T"),
            Fact::new(Field::DicomDeviceSerialNumber, "SN 77"),
            Fact::new(Field::DicomSoftwareVersions, "1.0"),
            Fact::new(Field::DicomSoftwareVersions, "2.0"),
        ]
    }

    #[test]
    fn walks_both_encodings_in_any_split() {
        for explicit in [false, true] {
            let data = device_dataset(explicit);
            let enc = if explicit {
                Encoding::Explicit
            } else {
                Encoding::Implicit
            };
            for chunk in 1..=data.len() {
                assert_eq!(walk(enc, &data, chunk), expected(), "chunk {chunk}");
                assert_eq!(
                    walk(Encoding::Guess, &data, chunk),
                    expected(),
                    "guess {chunk}"
                );
            }
        }
    }

    #[test]
    fn undefined_length_sequences_are_skipped_without_extracting_inside() {
        let mut data = element(true, 0x0008, 0x0060, b"CS", b"US");
        // (0008,1032) SQ, undefined length, one undefined-length item holding a nested
        // Manufacturer that must not be reported, then delimiters.
        data.extend_from_slice(&[
            0x08, 0, 0x32, 0x10, b'S', b'Q', 0, 0, 0xff, 0xff, 0xff, 0xff,
        ]);
        data.extend_from_slice(&[0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]);
        data.extend(element(true, 0x0008, 0x0070, b"LO", b"CANARY NESTED"));
        data.extend_from_slice(&[0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]);
        data.extend_from_slice(&[0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
        data.extend(element(true, 0x0008, 0x1090, b"LO", b"Sono 1"));
        let facts = walk(Encoding::Explicit, &data, 3);
        assert_eq!(
            facts,
            vec![
                Fact::new(Field::DicomModality, "US"),
                Fact::new(Field::DicomModelName, "Sono 1"),
            ]
        );
    }

    #[test]
    fn empty_values_are_passed_over() {
        let mut data = element(false, 0x0008, 0x0060, b"CS", b"");
        data.extend(element(false, 0x0008, 0x1010, b"SH", b""));
        data.extend(element(false, 0x0008, 0x1090, b"LO", b"M1"));
        data.extend(element(false, 0x0018, 0x1020, b"LO", b""));
        data.extend(element(false, 0x0018, 0x1030, b"LO", b"after the end"));
        for chunk in [1, 3, data.len()] {
            assert_eq!(
                walk(Encoding::Implicit, &data, chunk),
                [Fact::new(Field::DicomModelName, "M1")]
            );
        }
    }

    #[test]
    fn stops_where_it_cannot_follow() {
        // Undefined-length UN, then an allow-listed tag that must not be reached.
        let mut data = vec![
            0x08, 0, 0x10, 0x00, b'U', b'N', 0, 0, 0xff, 0xff, 0xff, 0xff,
        ];
        data.extend(element(true, 0x0008, 0x0070, b"LO", b"X"));
        assert!(walk(Encoding::Explicit, &data, 100).is_empty());
        // Out-of-order tags mean misframing.
        let mut data = element(true, 0x0008, 0x1090, b"LO", b"A");
        data.extend(element(true, 0x0008, 0x0070, b"LO", b"B"));
        assert_eq!(walk(Encoding::Explicit, &data, 100).len(), 1);
        // Overlong allow-listed value is skipped, not buffered.
        let data = element(true, 0x0008, 0x0070, b"UT", &[b'a'; 2000]);
        let mut w = DatasetWalker::new(Encoding::Explicit);
        let mut facts = Vec::new();
        w.feed(&data, &mut facts);
        assert!(facts.is_empty());
        assert!(w.footprint() < 64);
        // Invalid VR in explicit mode.
        assert!(walk(Encoding::Explicit, b"\x08\x00\x60\x00zz\x02\x00CT", 100).is_empty());
        assert!(DatasetWalker::new(Encoding::Unsupported).is_done());
    }

    #[test]
    fn command_set_parsing() {
        // C-ECHO-RQ as sent by dcmtk echoscu.
        let mut cmd = element(false, 0, 0x0002, b"UI", b"1.2.840.10008.1.1\0");
        cmd.extend(element(false, 0, 0x0100, b"US", &0x0030u16.to_le_bytes()));
        cmd.extend(element(false, 0, 0x0110, b"US", &1u16.to_le_bytes()));
        cmd.extend(element(false, 0, 0x0800, b"US", &0x0101u16.to_le_bytes()));
        let c = parse_command(&cmd).unwrap();
        assert_eq!(c.field, Some(0x0030));
        assert_eq!(c.sop_class.as_deref(), Some("1.2.840.10008.1.1"));
        assert!(!c.has_dataset);
        assert!(parse_command(&cmd[..cmd.len() - 1]).is_err());
        let err = parse_command(&element(false, 8, 0x60, b"CS", b"CT")).unwrap_err();
        assert_eq!(err.layer(), Layer::App(Protocol::Dicom));
    }

    #[test]
    fn transfer_syntax_mapping() {
        use Encoding::*;
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2"),
            Implicit
        );
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2.1"),
            Explicit
        );
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2.4.50"),
            Explicit
        );
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2.5"),
            Explicit
        );
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2.2"),
            Unsupported
        );
        assert_eq!(
            Encoding::from_transfer_syntax("1.2.840.10008.1.2.1.99"),
            Unsupported
        );
        assert_eq!(Encoding::from_transfer_syntax("1.3.6.1.4.1.99"), Guess);
    }
}
