//! Link-Local Multicast Name Resolution (RFC 4795): the names a device answers for.
//!
//! A responder answers only for names it is authoritative for (RFC 4795 §2.3), so the owner
//! names of the A/AAAA records in a response are the responder's own names ([`Field::LlmnrName`]).
//! The name a querier asks for is someone else's: it says whom the sender wants to talk to, never
//! who the sender is, and is kept as a hint only ([`Field::LlmnrQueriedName`], private, no
//! identity role).
//!
//! Recognised by structure, never by port 5355: the DNS header format with LLMNR's flag layout
//! (§2.1.1): opcode 0, the four Z bits zero, exactly one question, a query's tentative bit clear
//! and its answer and authority sections empty, and a question name of one label (LLMNR resolves
//! single-label names by default, §3) or a reverse-mapping name. Unicast DNS fails that probe:
//! its queries set RD (LLMNR's T bit) and its responses set RA (an LLMNR Z bit). Names reuse
//! mDNS's bounded reader ([`crate::mdns`]): backwards-only compression pointers, at most
//! [`crate::mdns::MAX_POINTERS`] per name.

use crate::error::{DecodeError, Layer};
use crate::evidence::{Direction, Fact, Field, Protocol};
use crate::mdns::{be16, read_name_in, Name, HEADER_LEN};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Llmnr);
/// Answer records walked per response (a responder answers with a handful).
pub const MAX_RECORDS: usize = 64;
/// Facts kept per message.
pub const MAX_FACTS: usize = 16;

/// UDP port of LLMNR. For reference only: detection is by structure ([`probe`]), never by port.
pub const PORT: u16 = 5355;

/// LLMNR's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Llmnr,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

mod flag {
    pub const QR: u16 = 0x8000;
    pub const OPCODE: u16 = 0x7800;
    pub const T: u16 = 0x0100;
    pub const Z: u16 = 0x00f0;
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

#[derive(Debug, Clone, Copy)]
struct Header {
    response: bool,
    an: u16,
}

fn header(b: &[u8]) -> Result<Header, DecodeError> {
    if b.len() < HEADER_LEN {
        return Err(DecodeError::truncated(LAYER, 0, HEADER_LEN, b.len()));
    }
    let flags = be16(b, 2).unwrap_or(0xffff);
    let count = |i: usize| be16(b, 4 + 2 * i).unwrap_or(0);
    let response = flags & flag::QR != 0;
    if flags & (flag::OPCODE | flag::Z) != 0 || (!response && flags & flag::T != 0) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 2,
            what: "flags (opcode, Z bits or a query's T bit)",
        });
    }
    if count(0) != 1 || (!response && (count(1) != 0 || count(2) != 0)) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 4,
            what: "section counts (one question; a query carries no answers)",
        });
    }
    Ok(Header {
        response,
        an: count(1),
    })
}

/// The question name, when it has the shape LLMNR resolves: one label, or a reverse name.
fn question(b: &[u8]) -> Result<Name<'_>, DecodeError> {
    let q = read_name_in(b, HEADER_LEN, LAYER)?;
    let reverse = q
        .labels
        .last()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"arpa"));
    if q.labels.len() != 1 && !reverse {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: HEADER_LEN,
            what: "question name (LLMNR resolves single-label names)",
        });
    }
    let Some(qtype) = be16(b, q.end).filter(|_| q.end + 4 <= b.len()) else {
        return Err(DecodeError::truncated(LAYER, q.end, 4, b.len()));
    };
    // NetBIOS name service messages share the header layout and ask single-label questions of
    // type NB (0x20) or NBSTAT (0x21) — in DNS NIMLOC and SRV, which no LLMNR client asks for a
    // single label. They are the NetBIOS decoder's.
    if qtype == 0x20 || qtype == 0x21 {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: q.end,
            what: "question type (NetBIOS NB/NBSTAT)",
        });
    }
    Ok(q)
}

/// Structure test: an LLMNR header ([`header`]) and a single-label or reverse question.
pub fn probe(payload: &[u8]) -> Probe {
    if header(payload).is_ok() && question(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A query comes from the client (the querier), a response from the responder.
pub fn direction(payload: &[u8]) -> Direction {
    match header(payload) {
        Ok(h) if h.response => Direction::FromServer,
        Ok(_) => Direction::FromClient,
        Err(_) => Direction::Unknown,
    }
}

/// Extracts a query's question name (a hint about whom the sender talks to) or a response's
/// A/AAAA owner names (the responder's own names). Facts found before a malformed part are kept
/// and the error returned.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let h = header(payload)?;
    let q = question(payload)?;
    if !h.response {
        push(out, Field::LlmnrQueriedName, q.text());
        return Ok(());
    }
    let start = out.len();
    let mut pos = q.end + 4;
    for _ in 0..usize::from(h.an).min(MAX_RECORDS) {
        let owner = read_name_in(payload, pos, LAYER)?;
        let p = owner.end;
        let (Some(rtype), Some(rdlen)) = (be16(payload, p), be16(payload, p + 8)) else {
            return Err(DecodeError::truncated(LAYER, p, 10, payload.len()));
        };
        let end = p + 10 + usize::from(rdlen);
        if end > payload.len() {
            return Err(DecodeError::truncated(
                LAYER,
                p + 10,
                usize::from(rdlen),
                payload.len(),
            ));
        }
        if (rtype == TYPE_A || rtype == TYPE_AAAA)
            && !owner.labels.is_empty()
            && out.len() - start < MAX_FACTS
        {
            push(out, Field::LlmnrName, owner.text());
        }
        pos = end;
    }
    Ok(())
}

fn push(out: &mut Vec<Fact>, field: Field, value: String) {
    if !value.is_empty() && !out.iter().any(|f| f.field == field && f.value == value) {
        out.push(Fact::new(field, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QUERY: &[u8] = include_bytes!("../testdata/llmnr/query.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/llmnr/response.bin");
    const RESPONSE6: &[u8] = include_bytes!("../testdata/llmnr/response_aaaa.bin");

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn response_names_the_responder() {
        assert_eq!(
            facts(RESPONSE),
            [(Field::LlmnrName, "WARDLLMNR-PUMP7".to_string())]
        );
        assert_eq!(
            facts(RESPONSE6),
            [(Field::LlmnrName, "WARDLLMNR-PUMP7".to_string())]
        );
        assert_eq!(direction(RESPONSE), Direction::FromServer);
    }

    #[test]
    fn query_name_is_a_hint_not_the_senders_name() {
        assert_eq!(
            facts(QUERY),
            [(Field::LlmnrQueriedName, "WARDLLMNR-PUMP7".to_string())]
        );
        assert_eq!(direction(QUERY), Direction::FromClient);
    }

    #[test]
    fn probe_recognises_llmnr_only() {
        for b in [QUERY, RESPONSE, RESPONSE6] {
            assert_eq!(probe(b), Probe::Certain);
        }
        // A unicast DNS query sets RD (LLMNR's T bit in a query).
        let mut dns = QUERY.to_vec();
        dns[2] |= 0x01;
        assert_eq!(probe(&dns), Probe::NotMine);
        // A unicast DNS response sets RA (an LLMNR Z bit).
        let mut dns = RESPONSE.to_vec();
        dns[3] |= 0x80;
        assert_eq!(probe(&dns), Probe::NotMine);
        // A multi-label question is DNS's, not LLMNR's default.
        let mut multi = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        multi.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(probe(&multi), Probe::NotMine);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"\x0bMSH|^~\\&|",
            include_bytes!("../testdata/nbns/query.bin"),
            include_bytes!("../testdata/nbns/response.bin"),
            include_bytes!("../testdata/nbns/registration.bin"),
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn errors_carry_offsets_not_payload() {
        let b = RESPONSE.get(..RESPONSE.len() - 3).unwrap();
        let mut out = Vec::new();
        let e = extract(b, &mut out).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
        assert!(!e.to_string().contains("WARDLLMNR"));
    }

    #[test]
    fn the_registry_gives_these_datagrams_to_this_decoder() {
        for b in [QUERY, RESPONSE, RESPONSE6] {
            let d = crate::registry::probe_datagram(b).map(|d| d.protocol);
            assert_eq!(d, Some(Protocol::Llmnr));
        }
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=RESPONSE6.len()) {
            for b in [QUERY, RESPONSE, RESPONSE6] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                let _ = direction(t);
                prop_assert!(out.len() <= MAX_FACTS + 1);
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..80, byte in any::<u8>()) {
            for b in [QUERY, RESPONSE, RESPONSE6] {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_FACTS + 1);
            }
        }
    }
}
