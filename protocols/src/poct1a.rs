//! POCT1-A (CLSI POCT1-A2) device messaging over TCP: what a point-of-care analyzer says about
//! itself.
//!
//! The device and its data manager exchange XML documents back to back on a TCP connection,
//! each an optional XML declaration and one root element named by the message type
//! (`HEL.R01` hello, `DST.R01` device status, `OBS.R01` observations, `ACK.R01`, `REQ.R01`,
//! `EOT.R01`, `END.R01`, `KPA.R01`…: three capital letters, `.R`, two digits).
//!
//! Observations carry patient and operator records (`PT.patient_id`, `OPR.operator_id`, results),
//! so this decoder is built around what it must not see. Of every message only the root element
//! name is read (`poct1a.message_type`); every message other than `HEL.R01` and `DST.R01` is
//! then passed over by searching for its closing tag, without buffering or parsing it. A hello
//! or a status message is buffered whole (at most [`MAX_IDENTITY_MESSAGE`] bytes) and scanned
//! tag by tag for an allow-list of elements: `DEV.vendor_id`, `DEV.model_id`, `DEV.serial_id`,
//! `DEV.device_id`, `DEV.manufacturer_name`, `DEV.hw_version`, `DEV.sw_version` and
//! `DST.condition_cd`, of which only the `V` attribute is copied (element text never is).
//!
//! The scanner is not an XML parser: no DOM, no DTD, no entity expansion (values are copied as
//! sent), comments, CDATA sections and processing instructions are stepped over, and the number
//! of tags looked at is bounded ([`MAX_TAGS`]). Recognised by structure, never by port: a
//! direction whose first bytes (after an optional byte-order mark, whitespace and XML
//! declaration) open a message-type root element.

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

/// Bytes of a hello or status message buffered to read it (POCT1-A devices announce their
/// maximum message size in `DSC.max_message_sz`; 32 KiB is common). A longer one is skipped.
pub const MAX_IDENTITY_MESSAGE: usize = 64 * 1024;
/// Bytes allowed before a root element (byte-order mark, whitespace, XML declaration, comments).
pub const MAX_PROLOG: usize = 512;
/// Tags looked at per identity message.
pub const MAX_TAGS: usize = 4096;
/// Distinct facts remembered for de-duplication (a device repeats its hello on every
/// conversation); past the bound facts are still emitted, no longer de-duplicated.
const MAX_DEDUPE: usize = 64;

/// POCT1-A's entry in [`crate::registry`]: TCP, joined mid-stream at the next message root.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Poct1a,
    probe: |prefix| Probe::from(looks_like_poct1a(prefix)),
    resync: Some(find_message_start),
    decode: Decode::Stream(|| Box::new(Poct1aDecoder::default())),
};

/// The allow-list: element name → field. Only the `V` attribute of these is read.
const ELEMENTS: &[(&[u8], Field)] = &[
    (b"DEV.vendor_id", Field::Poct1aVendorId),
    (b"DEV.model_id", Field::Poct1aModelId),
    (b"DEV.serial_id", Field::Poct1aSerialId),
    (b"DEV.device_id", Field::Poct1aDeviceId),
    (b"DEV.manufacturer_name", Field::Poct1aManufacturerName),
    (b"DEV.hw_version", Field::Poct1aHwVersion),
    (b"DEV.sw_version", Field::Poct1aSwVersion),
    (b"DST.condition_cd", Field::Poct1aCondition),
];

/// Messages whose content is scanned for [`ELEMENTS`]; every other one is skipped unread.
const IDENTITY_MESSAGES: &[&[u8]] = &[b"HEL.R01", b"DST.R01"];

/// Whether `name` is a POCT1-A message type: `[A-Z]{3}.R[0-9]{2}`.
fn is_message_type(name: &[u8]) -> bool {
    matches!(name, [a, b, c, b'.', b'R', d, e]
        if [a, b, c].iter().all(|x| x.is_ascii_uppercase())
            && d.is_ascii_digit() && e.is_ascii_digit())
}

/// Bytes allowed between messages: XML whitespace, and the MLLP block characters some
/// devices wrap each POCT1-A document in (`0x0B` document `0x1C 0x0D`).
fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b || b == 0x1c
}

/// Bytes that end an element name.
fn ends_name(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'>' || b == b'/'
}

/// Where the root element's `<` is, after the prolog: `Ok(Some(i))`, `Ok(None)` when more bytes
/// are needed, `Err(())` when the prolog is not one.
fn prolog_end(b: &[u8]) -> Result<Option<usize>, ()> {
    let mut i = 0;
    if b.starts_with(&[0xef, 0xbb, 0xbf]) {
        i = 3;
    } else if [0xef, 0xbb].starts_with(b) && !b.is_empty() {
        return Ok(None);
    }
    loop {
        if i > MAX_PROLOG {
            return Err(());
        }
        let Some(&c) = b.get(i) else {
            return Ok(None);
        };
        if is_separator(c) {
            i += 1;
            continue;
        }
        if c != b'<' {
            return Err(());
        }
        let rest = b.get(i..).unwrap_or_default();
        let skip_to = |open: &[u8], close: &[u8]| -> Result<Option<usize>, ()> {
            if rest.len() < open.len() {
                return if open.starts_with(rest) {
                    Ok(None)
                } else {
                    Err(())
                };
            }
            if !rest.starts_with(open) {
                return Err(()); // a DTD or other markup: not a POCT1-A prolog
            }
            match find(rest, close, open.len()) {
                Some(e) => Ok(Some(i + e + close.len())),
                None if rest.len() > MAX_PROLOG => Err(()),
                None => Ok(None),
            }
        };
        let next = match rest.get(1) {
            None => return Ok(None),
            Some(b'?') => skip_to(b"<?", b"?>")?,
            Some(b'!') => skip_to(b"<!--", b"-->")?,
            Some(_) => return Ok(Some(i)),
        };
        match next {
            Some(n) => i = n,
            None => return Ok(None),
        }
    }
}

/// The first index of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The root element's name at `lt` (its `<`): `Ok(Some(name range))`, `Ok(None)` when more
/// bytes are needed, `Err(())` when it is not a message type.
fn root_name(b: &[u8], lt: usize) -> Result<Option<(usize, usize)>, ()> {
    let start = lt + 1;
    let mut i = start;
    loop {
        match b.get(i) {
            None if i - start <= 7 => return Ok(None),
            None => return Err(()),
            Some(&c) if ends_name(c) => break,
            Some(_) if i - start >= 7 => return Err(()),
            Some(_) => i += 1,
        }
    }
    let name = b.get(start..i).unwrap_or_default();
    if is_message_type(name) {
        Ok(Some((start, i)))
    } else {
        Err(())
    }
}

/// Tells whether a stream direction starts with a POCT1-A message: `Some(true)` a
/// message-type root element after the prolog, `Some(false)` anything else, `None` too few
/// bytes yet.
#[must_use]
pub fn looks_like_poct1a(prefix: &[u8]) -> Option<bool> {
    let lt = match prolog_end(prefix) {
        Ok(Some(lt)) => lt,
        Ok(None) => return None,
        Err(()) => return Some(false),
    };
    match root_name(prefix, lt) {
        Ok(Some(_)) => Some(true),
        Ok(None) => {
            // Only a prefix of `XXX.R00` can still become one.
            let partial = prefix.get(lt + 1..).unwrap_or_default();
            let pattern_ok = partial.iter().enumerate().all(|(k, &c)| match k {
                0..=2 => c.is_ascii_uppercase(),
                3 => c == b'.',
                4 => c == b'R',
                _ => c.is_ascii_digit(),
            });
            if pattern_ok {
                None
            } else {
                Some(false)
            }
        }
        Err(()) => Some(false),
    }
}

/// The offset of the next `<XXX.R00` message root in `data` (a capture that began
/// mid-conversation joins there).
pub fn find_message_start(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = data.get(from..)?.iter().position(|&b| b == b'<') {
        let lt = from + p;
        if let Ok(Some(_)) = root_name(data, lt) {
            return Some(lt);
        }
        from = lt + 1;
    }
    None
}

/// One direction's state between `feed` calls.
#[derive(Debug, Default)]
enum Side {
    /// Looking for the next message's root element.
    #[default]
    Between,
    /// Passing over a message that is not read: its closing tag, e.g. `</OBS.R01>`.
    Skipping(Vec<u8>),
    /// The direction is not (or no longer) POCT1-A.
    Done,
}

/// Decoder for one POCT1-A connection.
#[derive(Debug, Default)]
pub struct Poct1aDecoder {
    sides: [Side; 2],
    seen: Vec<(Field, String)>,
}

impl Poct1aDecoder {
    fn push(&mut self, facts: &mut Vec<Fact>, field: Field, value: String) {
        if value.is_empty() {
            return;
        }
        if self.seen.iter().any(|(f, v)| *f == field && *v == value) {
            return;
        }
        if self.seen.len() < MAX_DEDUPE {
            self.seen.push((field, value.clone()));
        }
        facts.push(Fact::new(field, value));
    }
}

/// The `V` attribute of the tag whose attributes start at `at` and which ends by `end` (its
/// `>`): quoted with `"` or `'`, copied as sent.
fn v_attribute(tag: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < tag.len() {
        // Attribute name.
        while tag.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        let name_start = i;
        while tag
            .get(i)
            .is_some_and(|&c| c != b'=' && !c.is_ascii_whitespace() && c != b'/' && c != b'>')
        {
            i += 1;
        }
        let name = tag.get(name_start..i)?;
        while tag.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        if tag.get(i) != Some(&b'=') {
            if i == name_start {
                return None; // `/` or junk: no more attributes
            }
            continue;
        }
        i += 1;
        while tag.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        let quote = *tag.get(i)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let vstart = i + 1;
        let vlen = tag.get(vstart..)?.iter().position(|&c| c == quote)?;
        if name == b"V" {
            return tag.get(vstart..vstart + vlen);
        }
        i = vstart + vlen + 1;
    }
    None
}

/// The end (exclusive) of the tag starting at `lt`: the `>` outside quotes.
fn tag_end(m: &[u8], lt: usize) -> Option<usize> {
    let mut quote = None;
    for (k, &c) in m.get(lt..)?.iter().enumerate() {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return Some(lt + k + 1),
            _ => {}
        }
    }
    None
}

/// Scans a whole hello or status message for the allow-listed elements, in document order.
fn scan_identity(m: &[u8]) -> Vec<(Field, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    for _ in 0..MAX_TAGS {
        let Some(p) = m.get(pos..).and_then(|r| r.iter().position(|&b| b == b'<')) else {
            break;
        };
        let lt = pos + p;
        let rest = m.get(lt..).unwrap_or_default();
        let skip = |close: &[u8]| find(m, close, lt + 1).map(|e| e + close.len());
        let next = if rest.starts_with(b"<!--") {
            skip(b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            skip(b"]]>")
        } else if rest.starts_with(b"<?") {
            skip(b"?>")
        } else {
            let name_end = rest.iter().position(|&c| ends_name(c)).map(|e| lt + e);
            let end = tag_end(m, lt);
            if let (Some(ne), Some(end)) = (name_end, end) {
                let name = m.get(lt + 1..ne).unwrap_or_default();
                if let Some(&(_, field)) = ELEMENTS.iter().find(|(n, _)| *n == name) {
                    if let Some(v) = m.get(ne..end - 1).and_then(v_attribute) {
                        out.push((field, v));
                    }
                }
            }
            end
        };
        match next {
            Some(n) => pos = n,
            None => break,
        }
    }
    out
}

impl StreamDecoder for Poct1aDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let idx = usize::from(side == Direction::FromServer);
        let mut pos = 0usize;
        loop {
            let Some(state) = self.sides.get_mut(idx) else {
                return Feed::Done;
            };
            let rest = data.get(pos..).unwrap_or_default();
            match state {
                Side::Done => return Feed::Done,
                Side::Skipping(close) => match find(rest, close, 0) {
                    Some(e) => {
                        pos += e + close.len();
                        *state = Side::Between;
                    }
                    None => {
                        // Keep only what could be the start of the closing tag.
                        let keep = close.len().saturating_sub(1).min(rest.len());
                        return Feed::Consumed(pos + rest.len() - keep);
                    }
                },
                Side::Between => {
                    let lt = match prolog_end(rest) {
                        Ok(Some(lt)) => lt,
                        Ok(None) if at_limit && pos == 0 => {
                            *state = Side::Done;
                            return Feed::Done;
                        }
                        Ok(None) => {
                            // Trailing whitespace between messages is consumed.
                            let ws = rest.iter().take_while(|&&c| is_separator(c)).count();
                            return Feed::Consumed(pos + ws);
                        }
                        Err(()) => {
                            *state = Side::Done;
                            return Feed::Done;
                        }
                    };
                    let (ns, ne) = match root_name(rest, lt) {
                        Ok(Some(r)) => r,
                        Ok(None) if !(at_limit && pos == 0) => return Feed::Consumed(pos),
                        _ => {
                            *state = Side::Done;
                            return Feed::Done;
                        }
                    };
                    let name = rest.get(ns..ne).unwrap_or_default().to_vec();
                    let mut close = Vec::with_capacity(name.len() + 3);
                    close.extend_from_slice(b"</");
                    close.extend_from_slice(&name);
                    close.push(b'>');
                    let self_closing = tag_end(rest, lt)
                        .is_some_and(|e| rest.get(e.saturating_sub(2)) == Some(&b'/'));
                    let identity = IDENTITY_MESSAGES.contains(&name.as_slice());
                    // Only a name of POCT1-A's message shape (`HEL.R01`: three capitals, a
                    // dot, R and two digits) is copied: the root element name is the sender's.
                    if is_message_name(&name) {
                        self.push(facts, Field::Poct1aMessageType, clean_text(&name));
                    }
                    if self_closing {
                        pos += tag_end(rest, lt).unwrap_or(rest.len());
                        continue;
                    }
                    if !identity {
                        if let Some(s) = self.sides.get_mut(idx) {
                            *s = Side::Skipping(close);
                        }
                        pos += ne;
                        continue;
                    }
                    // Look for the end only within the bound: a longer message is never
                    // scanned, whatever the reassembler delivered at once.
                    let window_end = rest.len().min(lt + MAX_IDENTITY_MESSAGE);
                    let window = rest.get(..window_end).unwrap_or_default();
                    match find(window, &close, ne) {
                        Some(e) => {
                            let end = e + close.len();
                            let m = rest.get(lt..end).unwrap_or_default();
                            for (field, v) in scan_identity(m) {
                                let value = clean_text(v);
                                self.push(facts, field, value);
                            }
                            pos += end;
                        }
                        None if rest.len() - lt > MAX_IDENTITY_MESSAGE || at_limit => {
                            // Too long to buffer: pass over it unread.
                            if let Some(s) = self.sides.get_mut(idx) {
                                *s = Side::Skipping(close);
                            }
                            pos += ne;
                        }
                        None => return Feed::Consumed(pos + lt),
                    }
                }
            }
        }
    }
}

/// `AAA.Rnn`: a POCT1-A message type (CLSI POCT1-A2 names them topic `.` `R` version).
fn is_message_name(name: &[u8]) -> bool {
    matches!(name, [a, b, c, b'.', b'R', d, e]
        if [a, b, c].iter().all(|x| x.is_ascii_uppercase())
            && d.is_ascii_digit() && e.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Sources (see protocols/testdata/poct1a/README.md): the HEL.R01, DST.R01 and OBS.R01
    // samples of a public POCT1-A/DML server's test (`DmlTcpServerTest`, Java package
    // com.nova.bioconnect.device.protocol), which quotes Nova Biomedical's DML interface
    // specification §6.2.4 (a StatStrip meter's hello) and §6.4.2 (an observation), with canary
    // patient and operator values put in the observation's patient-bearing fields.
    const HEL: &[u8] = include_bytes!("../testdata/poct1a/hel.xml");
    const DST: &[u8] = include_bytes!("../testdata/poct1a/dst.xml");
    const OBS: &[u8] = include_bytes!("../testdata/poct1a/obs.xml");
    const ACK: &[u8] = include_bytes!("../testdata/poct1a/ack.xml");

    fn run(side: Direction, chunks: &[&[u8]]) -> Vec<(Field, String)> {
        let mut dec = Poct1aDecoder::default();
        let mut facts = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            if let Feed::Consumed(n) = dec.feed(side, &buf, false, &mut facts) {
                buf.drain(..n.min(buf.len()));
            } else {
                break;
            }
        }
        facts.into_iter().map(|f| (f.field, f.value)).collect()
    }

    fn device_conversation() -> Vec<u8> {
        let mut all = Vec::new();
        for m in [HEL, DST, OBS] {
            all.extend_from_slice(m);
            all.extend_from_slice(b"\r\n");
        }
        all
    }

    #[test]
    fn hello_names_the_device() {
        let got = run(Direction::FromClient, &[HEL]);
        assert_eq!(
            got,
            vec![
                (Field::Poct1aMessageType, "HEL.R01".to_owned()),
                (Field::Poct1aVendorId, "NOVABIO".to_owned()),
                (Field::Poct1aModelId, "StatStrip".to_owned()),
                (Field::Poct1aSerialId, "0600100736".to_owned()),
                (Field::Poct1aManufacturerName, "Nova Biomedical".to_owned()),
                (Field::Poct1aHwVersion, "K1".to_owned()),
                (Field::Poct1aSwVersion, "3.10.8.0".to_owned()),
            ]
        );
    }

    #[test]
    fn status_and_observation_are_read_no_further_than_allowed() {
        let all = device_conversation();
        let got = run(Direction::FromClient, &[&all]);
        assert!(got.contains(&(Field::Poct1aCondition, "R".to_owned())));
        assert!(got.contains(&(Field::Poct1aMessageType, "OBS.R01".to_owned())));
        assert!(got.contains(&(Field::Poct1aMessageType, "DST.R01".to_owned())));
        for (_, v) in &got {
            assert!(!v.contains("CANARY"), "{v}");
        }
        // Byte by byte: the same facts.
        let chunks: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(run(Direction::FromClient, &chunks), got);
    }

    #[test]
    fn data_manager_replies_name_their_type_only() {
        assert_eq!(
            run(Direction::FromServer, &[ACK]),
            vec![(Field::Poct1aMessageType, "ACK.R01".to_owned())]
        );
    }

    #[test]
    fn probe_and_resync() {
        assert_eq!(looks_like_poct1a(HEL), Some(true));
        assert_eq!(
            looks_like_poct1a(b"<?xml version=\"1.0\"?>\r\n<HEL.R01>"),
            Some(true)
        );
        assert_eq!(looks_like_poct1a(b"<?xml version=\"1.0\"?>"), None);
        assert_eq!(looks_like_poct1a(b"<HEL.R"), None);
        assert_eq!(looks_like_poct1a(b""), None);
        assert_eq!(looks_like_poct1a(b"<html>"), Some(false));
        assert_eq!(looks_like_poct1a(b"GET / HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_poct1a(b"\x0bMSH|^~\\&|"), Some(false));
        assert_eq!(looks_like_poct1a(b"<HEL.R01x>"), Some(false));
        let mut mid = b"ue V=\"145\"/></OBS></PT></SVC></OBS.R01>\r\n".to_vec();
        let at = mid.len();
        mid.extend_from_slice(HEL);
        assert_eq!(find_message_start(&mid), Some(at));
        assert_eq!(find_message_start(OBS), Some(0));
    }

    #[test]
    fn oversized_hello_is_skipped_unread() {
        let mut big = b"<HEL.R01><DEV><DEV.serial_id V=\"X1\"/>".to_vec();
        big.resize(MAX_IDENTITY_MESSAGE + 100, b' ');
        big.extend_from_slice(b"</DEV></HEL.R01><ACK.R01/>");
        let got = run(Direction::FromClient, &[&big]);
        assert_eq!(
            got,
            vec![
                (Field::Poct1aMessageType, "HEL.R01".to_owned()),
                (Field::Poct1aMessageType, "ACK.R01".to_owned()),
            ]
        );
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            cut in 0usize..3000, at in 0usize..3000, byte: u8, split in 1usize..64,
        ) {
            let all = device_conversation();
            let mut b = all[..cut.min(all.len())].to_vec();
            if let Some(x) = b.get_mut(at) {
                *x = byte;
            }
            let chunks: Vec<&[u8]> = b.chunks(split).collect();
            let _ = run(Direction::FromClient, &chunks);
            let mut dec = Poct1aDecoder::default();
            let _ = dec.feed(Direction::FromClient, &b, true, &mut Vec::new());
            let _ = looks_like_poct1a(&b);
            let _ = find_message_start(&b);
        }
    }

    #[test]
    fn only_message_shaped_root_names_are_reported() {
        assert!(is_message_name(b"HEL.R01") && is_message_name(b"OBS.R02"));
        for n in [&b"CANARY"[..], b"hel.r01", b"HEL.R1", b"HELO.R01", b""] {
            assert!(!is_message_name(n), "{n:?}");
        }
    }
}
