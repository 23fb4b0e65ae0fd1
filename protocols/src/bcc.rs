//! B. Braun Space communication (BCC) over TCP: what a SpaceCom says about itself and its
//! pumps.
//!
//! Framing as the public open-source BCC client describes it (KaiWU17TUM/icu_devices,
//! `icu_devices/src/bcc.cpp` and `bbraun_const.h`): `SOH`, the frame length as five ASCII
//! digits, `STX`, the bed id (`1/1/1`), `>`, the payload, `ETX` (or `ETB` when more frames
//! follow), the checksum — the sum of every byte from `SOH` to `ETX` modulo 256 — as five ASCII
//! digits, `EOT`. The receiver acknowledges with `ACK` (or `NAK`). Before sending, `D` is
//! stuffed as `EX`, `E` as `EE`, `d` as `ex` and `e` as `ee`; the decoder undoes that.
//!
//! A SpaceCom's answer to `MEM:GET` carries records separated by `RS` (0x1E), each
//! `relative time,address,PARAMETER,value`. Only the parameter name of a record is compared
//! with an allow-list — `GNMODEL` (the pump model name), `INSERNUM` (its serial number),
//! `INDTNR` (its DiaNet type number) and `VERSION` (the protocol version) — and only those
//! values are copied. Every other record is passed over unread: they include patient
//! identifiers and demographics (`PATID`, `PATIDBADGE`, `PATW`, `PATAGE`…), the nurse id, drug
//! names and orders, rates and volumes.
//!
//! Recognised by structure, never by port: a direction that starts (after `ACK`/`NAK` bytes)
//! with `SOH`, five digits and `STX`. A frame is at most [`MAX_FRAME`] bytes and must carry a
//! correct checksum to be read.

use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};
use crate::{Feed, StreamDecoder};

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const EOT: u8 = 0x04;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const ETB: u8 = 0x17;
const RS: u8 = 0x1e;
/// Bytes of one frame on the wire (stuffed); a longer one ends decoding of the direction.
pub const MAX_FRAME: usize = 64 * 1024;
/// Records looked at per frame.
pub const MAX_RECORDS: usize = 1024;
/// Bytes of a bed id.
const MAX_BED_ID: usize = 64;
/// Distinct facts remembered for de-duplication (a SpaceCom repeats its answer on every poll).
const MAX_DEDUPE: usize = 128;

/// BCC's entry in [`crate::registry`].
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Bcc,
    probe: |prefix| Probe::from(looks_like_bcc(prefix)),
    resync: None,
    decode: Decode::Stream(|| Box::new(BccDecoder::default())),
};

/// The allow-listed parameters and their fields.
const PARAMETERS: &[(&[u8], Field)] = &[
    (b"GNMODEL", Field::BccPumpModel),
    (b"INSERNUM", Field::BccPumpSerial),
    (b"INDTNR", Field::BccDianetType),
    (b"VERSION", Field::BccProtocolVersion),
];

/// `Some(true)`: `SOH`, five digits, `STX` after any `ACK`/`NAK` bytes; `Some(false)`: anything
/// else; `None`: too few bytes yet.
#[must_use]
pub fn looks_like_bcc(prefix: &[u8]) -> Option<bool> {
    let skipped = prefix.iter().take_while(|&&b| b == ACK || b == NAK).count();
    if skipped > 16 {
        return Some(false);
    }
    let head = prefix.get(skipped..).unwrap_or_default();
    for (i, &b) in head.iter().take(7).enumerate() {
        let ok = match i {
            0 => b == SOH,
            1..=5 => b.is_ascii_digit(),
            _ => b == STX,
        };
        if !ok {
            return Some(false);
        }
    }
    if head.len() >= 7 {
        Some(true)
    } else {
        None
    }
}

/// Undoes the character stuffing (`EX`→`D`, `EE`→`E`, `ex`→`d`, `ee`→`e`).
fn unstuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let next = raw.get(i + 1).copied();
        match (b, next) {
            (b'E', Some(b'X')) => {
                out.push(b'D');
                i += 2;
            }
            (b'E', Some(b'E')) | (b'e', Some(b'e')) => {
                out.push(b);
                i += 2;
            }
            (b'e', Some(b'x')) => {
                out.push(b'd');
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Five ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0')))
}

/// One checked frame: bed id and payload (between `>` and `ETX`/`ETB`), unstuffed.
struct Frame {
    bed_id: Vec<u8>,
    payload: Vec<u8>,
}

/// Checks an unstuffed frame (`SOH` … `EOT`): header, terminator and checksum.
fn check(f: &[u8]) -> Option<Frame> {
    let n = f.len();
    if n < 15 || f.first() != Some(&SOH) || f.get(6) != Some(&STX) || f.last() != Some(&EOT) {
        return None;
    }
    digits(f.get(1..6)?)?;
    let end = n - 7; // ETX / ETB
    if !matches!(f.get(end), Some(&(ETX | ETB))) {
        return None;
    }
    let sum = f
        .get(..=end)?
        .iter()
        .fold(0u32, |a, &b| (a + u32::from(b)) % 256);
    if digits(f.get(end + 1..end + 6)?)? != sum {
        return None;
    }
    let body = f.get(7..end)?;
    let gt = body.iter().position(|&b| b == b'>')?;
    if gt > MAX_BED_ID {
        return None;
    }
    Some(Frame {
        bed_id: body.get(..gt)?.to_vec(),
        payload: body.get(gt + 1..)?.to_vec(),
    })
}

/// The allow-listed records of a payload: (field, value), in wire order.
fn records(payload: &[u8]) -> Vec<(Field, &[u8])> {
    let mut out = Vec::new();
    for rec in payload.split(|&b| b == RS).take(MAX_RECORDS) {
        // relative time, address, parameter, value (which may itself hold commas).
        let mut parts = rec.splitn(4, |&b| b == b',');
        let (Some(_), Some(_), Some(param), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let Some(&(_, field)) = PARAMETERS.iter().find(|(p, _)| *p == param) {
            out.push((field, value));
        }
    }
    out
}

/// Decoder for one BCC connection.
#[derive(Debug, Default)]
pub struct BccDecoder {
    done: [bool; 2],
    seen: Vec<(Field, String)>,
}

impl BccDecoder {
    fn push(&mut self, facts: &mut Vec<Fact>, field: Field, value: String) {
        if value.is_empty() || self.seen.iter().any(|(f, v)| *f == field && *v == value) {
            return;
        }
        if self.seen.len() < MAX_DEDUPE {
            self.seen.push((field, value.clone()));
        }
        facts.push(Fact::new(field, value));
    }
}

impl StreamDecoder for BccDecoder {
    fn feed(
        &mut self,
        side: Direction,
        data: &[u8],
        at_limit: bool,
        facts: &mut Vec<Fact>,
    ) -> Feed {
        let idx = usize::from(side == Direction::FromServer);
        if self.done.get(idx) != Some(&false) {
            return Feed::Done;
        }
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            let skip = rest.iter().take_while(|&&b| b == ACK || b == NAK).count();
            pos += skip;
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Feed::Consumed(pos);
            }
            if looks_like_bcc(rest) == Some(false) {
                if let Some(d) = self.done.get_mut(idx) {
                    *d = true;
                }
                return Feed::Done;
            }
            let Some(eot) = rest.iter().take(MAX_FRAME).position(|&b| b == EOT) else {
                if rest.len() >= MAX_FRAME || (at_limit && pos == 0) {
                    if let Some(d) = self.done.get_mut(idx) {
                        *d = true;
                    }
                    return Feed::Done;
                }
                return Feed::Consumed(pos);
            };
            let frame = unstuff(rest.get(..=eot).unwrap_or_default());
            if let Some(f) = check(&frame) {
                self.push(facts, Field::BccBedId, clean_text(&f.bed_id));
                for (field, v) in records(&f.payload) {
                    let value = clean_text(v);
                    self.push(facts, field, value);
                }
            }
            pos += eot + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Sources (see protocols/testdata/bcc/README.md): `alive.bin` and `memget.bin` are the
    // requests KaiWU17TUM/icu_devices' BCC client writes (`request_initialize_connection`,
    // `send_get_mem_request`); `response.bin` is a SpaceCom answer built in the same framing
    // with records named in its `bbraun_const.h`, canary patient and nurse values included.
    const ALIVE: &[u8] = include_bytes!("../testdata/bcc/alive.bin");
    const MEMGET: &[u8] = include_bytes!("../testdata/bcc/memget.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/bcc/response.bin");

    fn run(chunks: &[&[u8]]) -> Vec<(Field, String)> {
        let mut dec = BccDecoder::default();
        let mut facts = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            match dec.feed(Direction::FromServer, &buf, false, &mut facts) {
                Feed::Consumed(n) => {
                    buf.drain(..n.min(buf.len()));
                }
                Feed::Done => break,
            }
        }
        facts.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn response_names_the_pumps_and_skips_patient_records() {
        let got = run(&[RESPONSE]);
        assert_eq!(
            got,
            vec![
                (Field::BccBedId, "1/1/1".to_owned()),
                (Field::BccProtocolVersion, "3.0".to_owned()),
                (Field::BccPumpModel, "Perfusor Space".to_owned()),
                (Field::BccPumpSerial, "123456".to_owned()),
                (Field::BccDianetType, "8713030".to_owned()),
            ]
        );
        for (_, v) in &got {
            assert!(!v.contains("CANARY"), "{v}");
        }
        let chunks: Vec<&[u8]> = RESPONSE.chunks(3).collect();
        assert_eq!(run(&chunks), got);
    }

    #[test]
    fn requests_carry_the_bed_id_only() {
        let mut both = ALIVE.to_vec();
        both.push(ACK);
        both.extend_from_slice(MEMGET);
        assert_eq!(run(&[&both]), vec![(Field::BccBedId, "1/1/1".to_owned())]);
    }

    #[test]
    fn stuffing_and_checksum() {
        assert_eq!(unstuff(b"EXEEexeeX"), b"DEdeX");
        // MEM:GET is sent as MEEM:GEET.
        assert!(MEMGET.windows(9).any(|w| w == b"MEEM:GEET"));
        let mut bad = RESPONSE.to_vec();
        let n = bad.len();
        bad[n - 2] = if bad[n - 2] == b'0' { b'1' } else { b'0' };
        assert!(run(&[&bad]).is_empty());
    }

    #[test]
    fn probe() {
        assert_eq!(looks_like_bcc(ALIVE), Some(true));
        assert_eq!(looks_like_bcc(&[ACK, SOH, b'0']), None);
        assert_eq!(looks_like_bcc(b""), None);
        assert_eq!(looks_like_bcc(b"GET / HTTP/1.1"), Some(false));
        assert_eq!(looks_like_bcc(b"\x0bMSH|"), Some(false));
        assert_eq!(looks_like_bcc(&[SOH, b'0', b'0', b'x']), Some(false));
    }

    proptest! {
        #[test]
        fn truncations_and_mutations_never_panic(
            cut in 0usize..600, at in 0usize..600, byte: u8, split in 1usize..32,
        ) {
            let mut all = ALIVE.to_vec();
            all.extend_from_slice(RESPONSE);
            let mut b = all[..cut.min(all.len())].to_vec();
            if let Some(x) = b.get_mut(at) {
                *x = byte;
            }
            let chunks: Vec<&[u8]> = b.chunks(split).collect();
            let _ = run(&chunks);
            let mut dec = BccDecoder::default();
            let _ = dec.feed(Direction::FromClient, &b, true, &mut Vec::new());
            let _ = looks_like_bcc(&b);
        }
    }
}
