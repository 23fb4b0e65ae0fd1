//! NetBIOS name service (RFC 1001/1002, UDP 137): the names a host registers and answers for.
//!
//! Read: name registration and refresh requests (RFC 1002 §4.2.2, §4.2.4 — a host claims its
//! own names, B-node broadcast or P-node unicast to a name server; the claimed record is the
//! additional record), and positive name query responses sent by the name's owner itself
//! (§4.2.13 with RA clear: RA "must be zero in all other responses" than a name server's, §4.2.1.1,
//! so a response with RA set is a name server answering for *another* host and is skipped).
//! Each record's NetBIOS name is decoded from the first-level encoding (§4.1, RFC 1001 §14.1):
//! 15 characters padded with spaces, then a suffix byte naming the service (0x00 workstation,
//! 0x20 file server, 0x03 messenger, 0x1D/0x1E browser roles…). A unique name is the host's name
//! ([`Field::NbnsName`]) and its suffix a service it runs ([`Field::NbnsSuffix`]); a group name
//! is its workgroup or domain ([`Field::NbnsGroup`]). Queries are not read: the name a host asks
//! for is another host's.
//!
//! Recognised by structure, never by port 137: an RFC 1002 header with a known opcode, zero
//! reserved bits, and a first question or answer name that is a 32-byte first-level-encoded
//! label (every byte in `A`..=`P`). Names reuse mDNS's bounded reader (backwards-only
//! compression pointers, at most [`crate::mdns::MAX_POINTERS`] per name).

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::mdns::{be16, read_name_in, HEADER_LEN};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Nbns);
/// Records walked per message (a registration carries one, a response one or a few).
pub const MAX_RECORDS: usize = 16;
/// NB_FLAGS/NB_ADDRESS entries read per record.
pub const MAX_ADDRESSES: usize = 16;
/// Facts kept per message.
pub const MAX_FACTS: usize = 32;
/// Length of a first-level-encoded NetBIOS name label.
pub const ENCODED_LEN: usize = 32;

/// UDP port of the name service. For reference only: detection is by structure ([`probe`]).
pub const PORT: u16 = 137;

/// The name service's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Nbns,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

mod opcode {
    pub const QUERY: u16 = 0;
    pub const REGISTRATION: u16 = 5;
    pub const RELEASE: u16 = 6;
    pub const WACK: u16 = 7;
    pub const REFRESH: u16 = 8;
    pub const REFRESH_ALT: u16 = 9;
    pub const MULTIHOMED: u16 = 0xf;
}

const TYPE_NB: u16 = 0x0020;
/// NB_FLAGS group bit.
const GROUP: u16 = 0x8000;

#[derive(Debug, Clone, Copy)]
struct Header {
    response: bool,
    opcode: u16,
    ra: bool,
    rcode: u16,
    counts: [u16; 4],
}

fn header(b: &[u8]) -> Result<Header, DecodeError> {
    if b.len() < HEADER_LEN {
        return Err(DecodeError::truncated(LAYER, 0, HEADER_LEN, b.len()));
    }
    let flags = be16(b, 2).unwrap_or(0xffff);
    let opcode = (flags >> 11) & 0xf;
    let known = matches!(
        opcode,
        opcode::QUERY
            | opcode::REGISTRATION
            | opcode::RELEASE
            | opcode::WACK
            | opcode::REFRESH
            | opcode::REFRESH_ALT
            | opcode::MULTIHOMED
    );
    // The two NM_FLAGS bits between RA and B are reserved zero (§4.2.1.1).
    if !known || flags & 0x0060 != 0 {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 2,
            what: "flags (opcode or reserved bits)",
        });
    }
    let mut counts = [0u16; 4];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = be16(b, 4 + 2 * i).unwrap_or(0);
    }
    Ok(Header {
        response: flags & 0x8000 != 0,
        opcode,
        ra: flags & 0x0080 != 0,
        rcode: flags & 0xf,
        counts,
    })
}

/// A decoded NetBIOS name: 15 characters (padding trimmed) and the suffix byte.
#[derive(Debug, PartialEq, Eq)]
struct NbName {
    name: String,
    suffix: u8,
}

/// Decodes a first-level-encoded label (RFC 1001 §14.1: each nibble + 'A').
fn decode_label(label: &[u8]) -> Option<NbName> {
    if label.len() != ENCODED_LEN {
        return None;
    }
    let mut raw = [0u8; ENCODED_LEN / 2];
    for (out, pair) in raw.iter_mut().zip(label.chunks_exact(2)) {
        let (hi, lo) = (pair.first()?, pair.get(1)?);
        if !(b'A'..=b'P').contains(hi) || !(b'A'..=b'P').contains(lo) {
            return None;
        }
        *out = ((hi - b'A') << 4) | (lo - b'A');
    }
    let (&suffix, name) = raw.split_last()?;
    Some(NbName {
        name: clean_text(name),
        suffix,
    })
}

/// Reads the name at `at`: its first label decoded, and the offset after the name.
fn read_nb_name(b: &[u8], at: usize) -> Result<(Option<NbName>, usize), DecodeError> {
    let n = read_name_in(b, at, LAYER)?;
    Ok((n.labels.first().and_then(|l| decode_label(l)), n.end))
}

/// Structure test: a header ([`header`]) with one section non-empty, and a first name that is
/// a first-level-encoded NetBIOS name.
pub fn probe(payload: &[u8]) -> Probe {
    let Ok(h) = header(payload) else {
        return Probe::NotMine;
    };
    if h.counts[0] == 0 && h.counts[1] == 0 {
        return Probe::NotMine;
    }
    match read_nb_name(payload, HEADER_LEN) {
        Ok((Some(_), end)) if end + 4 <= payload.len() => Probe::Certain,
        _ => Probe::NotMine,
    }
}

/// A request is the client's (the registering or querying host), a response the server's.
pub fn direction(payload: &[u8]) -> Direction {
    match header(payload) {
        Ok(h) if h.response => Direction::FromServer,
        Ok(_) => Direction::FromClient,
        Err(_) => Direction::Unknown,
    }
}

fn push(out: &mut Vec<Fact>, start: usize, field: Field, value: String) {
    let mine = out.get(start..).unwrap_or(&[]);
    if !value.is_empty()
        && mine.len() < MAX_FACTS
        && !mine.iter().any(|f| f.field == field && f.value == value)
    {
        out.push(Fact::new(field, value));
    }
}

/// Extracts the names a registration or refresh claims, or an owner's positive query response
/// answers for. Facts found before a malformed part are kept and the error returned.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let h = header(payload)?;
    let claim = !h.response
        && matches!(
            h.opcode,
            opcode::REGISTRATION | opcode::REFRESH | opcode::REFRESH_ALT | opcode::MULTIHOMED
        );
    let owner_answer = h.response && h.opcode == opcode::QUERY && h.rcode == 0 && !h.ra;
    if !claim && !owner_answer {
        return Ok(());
    }
    let start = out.len();
    let [qd, an, ns, ar] = h.counts.map(usize::from);
    let mut pos = HEADER_LEN;
    for _ in 0..qd.min(MAX_RECORDS) {
        let (_, end) = read_nb_name(payload, pos)?;
        pos = end + 4;
        if pos > payload.len() {
            return Err(DecodeError::truncated(LAYER, end, 4, payload.len()));
        }
    }
    // A claim's record is the additional one; an answer's, the answer section.
    let (skip, read) = if claim { (an + ns, ar) } else { (0, an) };
    for i in 0..(skip + read).min(MAX_RECORDS) {
        let (name, end) = read_nb_name(payload, pos)?;
        let (Some(rtype), Some(rdlen)) = (be16(payload, end), be16(payload, end + 8)) else {
            return Err(DecodeError::truncated(LAYER, end, 10, payload.len()));
        };
        let rdata_at = end + 10;
        let Some(rdata) = payload.get(rdata_at..rdata_at + usize::from(rdlen)) else {
            return Err(DecodeError::truncated(
                LAYER,
                rdata_at,
                usize::from(rdlen),
                payload.len(),
            ));
        };
        pos = rdata_at + rdata.len();
        if i < skip || rtype != TYPE_NB {
            continue;
        }
        let Some(name) = name else { continue };
        // Each 6-byte entry: NB_FLAGS then NB_ADDRESS; the group bit is per entry but the same
        // for every entry of one name.
        let group = rdata
            .chunks_exact(6)
            .take(MAX_ADDRESSES)
            .any(|e| be16(e, 0).is_some_and(|f| f & GROUP != 0));
        if group {
            push(out, start, Field::NbnsGroup, name.name);
        } else {
            push(out, start, Field::NbnsName, name.name);
            push(
                out,
                start,
                Field::NbnsSuffix,
                format!("{:02x}", name.suffix),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REGISTRATION: &[u8] = include_bytes!("../testdata/nbns/registration.bin");
    const GROUP_REG: &[u8] = include_bytes!("../testdata/nbns/registration_group.bin");
    const QUERY: &[u8] = include_bytes!("../testdata/nbns/query.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/nbns/response.bin");

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn first_level_encoding() {
        // RFC 1001 §14.1's example: "FRED" padded, suffix 0x20 → EGFCEFEECACA…CA.
        let mut l = b"EGFCEFEE".to_vec();
        l.extend(std::iter::repeat_n(b"CA", 11).flatten());
        l.extend_from_slice(b"CA");
        let n = decode_label(&l).unwrap();
        assert_eq!(n.name, "FRED");
        assert_eq!(n.suffix, 0x20);
        l[0] = b'Q';
        assert!(decode_label(&l).is_none());
    }

    #[test]
    fn registration_names_the_registering_host() {
        let f = facts(REGISTRATION);
        assert!(
            f.contains(&(Field::NbnsName, "WARDNB-PUMP9".into())),
            "{f:?}"
        );
        assert_eq!(direction(REGISTRATION), Direction::FromClient);
        assert_eq!(facts(GROUP_REG), [(Field::NbnsGroup, "WARDTESTGRP".into())]);
    }

    #[test]
    fn owner_response_names_the_responder_and_queries_name_nobody() {
        assert_eq!(
            facts(RESPONSE),
            [
                (Field::NbnsName, "WARDNB-PUMP9".into()),
                (Field::NbnsSuffix, "00".into())
            ]
        );
        assert!(facts(QUERY).is_empty());
        // The same answer from a name server (RA set) is about another host: not read.
        let mut wins = RESPONSE.to_vec();
        wins[3] |= 0x80;
        assert!(facts(&wins).is_empty());
    }

    #[test]
    fn probe_recognises_nbns_only() {
        for b in [REGISTRATION, GROUP_REG, QUERY, RESPONSE] {
            assert_eq!(probe(b), Probe::Certain);
        }
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"\x0bMSH|^~\\&|",
            include_bytes!("../testdata/llmnr/query.bin"),
            include_bytes!("../testdata/mdns/announce.bin"),
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn errors_carry_offsets_not_payload() {
        let b = REGISTRATION.get(..REGISTRATION.len() - 2).unwrap();
        let e = extract(b, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
        assert!(!e.to_string().contains("WARDNB"));
    }

    #[test]
    fn the_registry_gives_these_datagrams_to_this_decoder() {
        for b in [REGISTRATION, GROUP_REG, QUERY, RESPONSE] {
            let d = crate::registry::probe_datagram(b).map(|d| d.protocol);
            assert_eq!(d, Some(Protocol::Nbns));
        }
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=RESPONSE.len().max(REGISTRATION.len())) {
            for b in [REGISTRATION, GROUP_REG, QUERY, RESPONSE] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                let _ = direction(t);
                prop_assert!(out.len() <= MAX_FACTS);
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..110, byte in any::<u8>()) {
            for b in [REGISTRATION, GROUP_REG, QUERY, RESPONSE] {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_FACTS);
            }
        }
    }
}
