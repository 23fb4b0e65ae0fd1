//! SNMP v1 (RFC 1157) and v2c (RFC 1901/3416) over UDP: what an agent answers about itself.
//!
//! Only a GetResponse PDU is read, and in it only three variable bindings of the system group
//! (RFC 3418): `sysDescr.0` (1.3.6.1.2.1.1.1.0), `sysObjectID.0` (1.3.6.1.2.1.1.2.0, as a
//! dotted OID: its enterprise arc names the vendor, IANA's Private Enterprise Numbers) and
//! `sysName.0` (1.3.6.1.2.1.1.5.0). They describe the responder. Requests, traps and every
//! other binding are skipped unread.
//!
//! The community string is a password: it is stepped over by its length and never copied,
//! stored, logged or put in an error. Errors carry offsets and a static description only.
//!
//! Recognised by structure: a BER SEQUENCE spanning the whole datagram, INTEGER version 0 (v1)
//! or 1 (v2c), an OCTET STRING community and a PDU tag (0xa0–0xa8). BER is walked along this
//! fixed shape (no recursion), lengths use at most [`MAX_LEN_OCTETS`] octets and must fit in the
//! enclosing value, at most [`MAX_VARBINDS`] bindings are looked at, and OIDs have at most
//! [`MAX_OID_ARCS`] arcs of at most 32 bits.

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Snmp);
/// Octets of a long-form BER length (a UDP datagram is < 64 KiB).
pub const MAX_LEN_OCTETS: usize = 2;
/// Variable bindings looked at per PDU.
pub const MAX_VARBINDS: usize = 64;
/// Arcs of an OID value rendered as text.
pub const MAX_OID_ARCS: usize = 128;
/// UDP ports of SNMP (agent, trap). For reference only: detection is by structure.
pub const PORTS: [u16; 2] = [161, 162];

/// SNMP's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Snmp,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const GET_REQUEST: u8 = 0xa0;
    pub const GET_NEXT_REQUEST: u8 = 0xa1;
    pub const GET_RESPONSE: u8 = 0xa2;
    pub const SET_REQUEST: u8 = 0xa3;
    pub const GET_BULK_REQUEST: u8 = 0xa5;
    pub const LAST_PDU: u8 = 0xa8;
}

/// `sysDescr.0`, `sysObjectID.0`, `sysName.0` as encoded OID contents, and their fields.
const SYSTEM: &[(&[u8], Field)] = &[
    (&[0x2b, 6, 1, 2, 1, 1, 1, 0], Field::SnmpSysDescr),
    (&[0x2b, 6, 1, 2, 1, 1, 2, 0], Field::SnmpSysObjectId),
    (&[0x2b, 6, 1, 2, 1, 1, 5, 0], Field::SnmpSysName),
];

/// One BER TLV: its tag, its contents' range in the message, and where it ends.
#[derive(Debug, Clone, Copy)]
struct Tlv {
    tag: u8,
    start: usize,
    end: usize,
}

/// Reads the TLV at `at`, which must end by `limit`.
fn tlv(b: &[u8], at: usize, limit: usize) -> Result<Tlv, DecodeError> {
    let need = |n: usize, have: usize| DecodeError::truncated(LAYER, at, n, have);
    let t = *b.get(at).ok_or_else(|| need(2, 0))?;
    if t & 0x1f == 0x1f {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: at,
            what: "multi-octet BER tag",
        });
    }
    let first = *b.get(at + 1).ok_or_else(|| need(2, 1))?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > MAX_LEN_OCTETS {
            return Err(DecodeError::Invalid {
                layer: LAYER,
                offset: at + 1,
                what: "BER length form (indefinite or too long)",
            });
        }
        let octets = b
            .get(at + 2..at + 2 + n)
            .ok_or_else(|| need(2 + n, b.len() - at))?;
        (
            octets
                .iter()
                .fold(0usize, |a, &o| (a << 8) | usize::from(o)),
            2 + n,
        )
    };
    let start = at + header;
    let end = start + len;
    if end > limit.min(b.len()) {
        return Err(DecodeError::truncated(
            LAYER,
            at,
            header + len,
            limit.min(b.len()).saturating_sub(at),
        ));
    }
    Ok(Tlv { tag: t, start, end })
}

fn expect(t: Tlv, want: u8, at: usize, what: &'static str) -> Result<Tlv, DecodeError> {
    if t.tag == want {
        Ok(t)
    } else {
        Err(DecodeError::Invalid {
            layer: LAYER,
            offset: at,
            what,
        })
    }
}

/// The PDU of a v1/v2c message: its tag and contents (the community is stepped over).
fn pdu(b: &[u8]) -> Result<Tlv, DecodeError> {
    let msg = expect(
        tlv(b, 0, b.len())?,
        tag::SEQUENCE,
        0,
        "message (not a SEQUENCE)",
    )?;
    if msg.end != b.len() {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 0,
            what: "message length (not the whole datagram)",
        });
    }
    let at = msg.start;
    let version = expect(
        tlv(b, at, msg.end)?,
        tag::INTEGER,
        at,
        "version (not an INTEGER)",
    )?;
    if b.get(version.start..version.end) != Some(&[0][..])
        && b.get(version.start..version.end) != Some(&[1][..])
    {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: version.start,
            what: "version (SNMP v1 or v2c only)",
        });
    }
    let at = version.end;
    let community = expect(
        tlv(b, at, msg.end)?,
        tag::OCTET_STRING,
        at,
        "community (not an OCTET STRING)",
    )?;
    let at = community.end;
    let p = tlv(b, at, msg.end)?;
    if !(tag::GET_REQUEST..=tag::LAST_PDU).contains(&p.tag) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: at,
            what: "PDU tag",
        });
    }
    Ok(p)
}

/// Structure test: see the module documentation.
pub fn probe(payload: &[u8]) -> Probe {
    if pdu(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// Requests come from a manager (the client), a GetResponse from the agent (the server).
fn direction(payload: &[u8]) -> Direction {
    match pdu(payload).map(|p| p.tag) {
        Ok(tag::GET_RESPONSE) => Direction::FromServer,
        Ok(tag::GET_REQUEST | tag::GET_NEXT_REQUEST | tag::SET_REQUEST | tag::GET_BULK_REQUEST) => {
            Direction::FromClient
        }
        _ => Direction::Unknown,
    }
}

/// Dotted text of BER OID contents (`1.3.6.1.4.1.…`), or `None` when malformed or too long.
fn oid_text(c: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    let mut octets = 0;
    for &o in c {
        octets += 1;
        if octets > 5 {
            return None;
        }
        v = (v << 7) | u64::from(o & 0x7f);
        if o & 0x80 == 0 {
            if v > u64::from(u32::MAX) && !arcs.is_empty() {
                return None;
            }
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            if arcs.len() > MAX_OID_ARCS {
                return None;
            }
            v = 0;
            octets = 0;
        }
    }
    if octets != 0 || arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Pushes `sysDescr.0`, `sysObjectID.0` and `sysName.0` of a GetResponse, in wire order. Any
/// other PDU yields nothing.
pub fn extract(payload: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let p = pdu(payload)?;
    if p.tag != tag::GET_RESPONSE {
        return Ok(());
    }
    let b = payload;
    // request-id, error-status, error-index
    let mut at = p.start;
    for _ in 0..3 {
        let t = expect(
            tlv(b, at, p.end)?,
            tag::INTEGER,
            at,
            "PDU header (not an INTEGER)",
        )?;
        at = t.end;
    }
    let list = expect(
        tlv(b, at, p.end)?,
        tag::SEQUENCE,
        at,
        "variable bindings (not a SEQUENCE)",
    )?;
    let mut at = list.start;
    let mut seen = 0;
    while at < list.end {
        seen += 1;
        if seen > MAX_VARBINDS {
            return Err(DecodeError::Invalid {
                layer: LAYER,
                offset: at,
                what: "too many variable bindings",
            });
        }
        let vb = expect(
            tlv(b, at, list.end)?,
            tag::SEQUENCE,
            at,
            "variable binding (not a SEQUENCE)",
        )?;
        let name = expect(
            tlv(b, vb.start, vb.end)?,
            tag::OID,
            vb.start,
            "binding name (not an OID)",
        )?;
        let value = tlv(b, name.end, vb.end)?;
        let oid = b.get(name.start..name.end).unwrap_or_default();
        let contents = b.get(value.start..value.end).unwrap_or_default();
        if let Some(&(_, field)) = SYSTEM.iter().find(|(o, _)| *o == oid) {
            let text = match (field, value.tag) {
                (Field::SnmpSysObjectId, tag::OID) => oid_text(contents),
                (Field::SnmpSysDescr | Field::SnmpSysName, tag::OCTET_STRING) => {
                    Some(clean_text(contents))
                }
                // noSuchObject, noSuchInstance, NULL or a wrongly typed value: nothing.
                _ => None,
            };
            if let Some(v) = text.filter(|v| !v.is_empty()) {
                facts.push(Fact::new(field, v));
            }
        }
        at = vb.end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::MAX_VALUE_CHARS;
    use proptest::prelude::*;

    const V2C_GET: &[u8] = include_bytes!("../testdata/snmp/v2c-get.bin");
    const V2C_RESPONSE: &[u8] = include_bytes!("../testdata/snmp/v2c-response.bin");
    const V1_GET: &[u8] = include_bytes!("../testdata/snmp/v1-get.bin");
    const V1_RESPONSE: &[u8] = include_bytes!("../testdata/snmp/v1-response.bin");
    const ALL: [&[u8]; 4] = [V2C_GET, V2C_RESPONSE, V1_GET, V1_RESPONSE];

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn responses_name_the_agent() {
        for b in [V2C_RESPONSE, V1_RESPONSE] {
            assert_eq!(
                facts(b),
                [
                    (
                        Field::SnmpSysDescr,
                        "WardTestNet WX-200 Print Server, firmware 4.1.7".to_owned()
                    ),
                    (Field::SnmpSysObjectId, "1.3.6.1.4.1.32473.7.200".to_owned()),
                    (Field::SnmpSysName, "wardtestnet-wx200.example".to_owned()),
                ]
            );
            assert_eq!(direction(b), Direction::FromServer);
        }
    }

    #[test]
    fn requests_yield_nothing() {
        for b in [V2C_GET, V1_GET] {
            assert!(facts(b).is_empty());
            assert_eq!(direction(b), Direction::FromClient);
        }
    }

    #[test]
    fn community_never_reaches_facts_or_errors() {
        for b in ALL {
            for (_, v) in facts(b) {
                assert!(!v.contains("CANARY") && !v.contains("SNMPCOMMUNITY"), "{v}");
            }
            for cut in 0..b.len() {
                if let Err(e) = extract(b.get(..cut).unwrap(), &mut Vec::new()) {
                    let s = format!("{e} {e:?}");
                    assert!(!s.contains("CANARY") && !s.contains("SNMPCOMMUNITY"), "{s}");
                }
            }
        }
    }

    #[test]
    fn probe_recognises_snmp_only() {
        for b in ALL {
            assert_eq!(probe(b), Probe::Certain);
        }
        // SNMPv3 (version 3) is not read.
        let mut v3 = V2C_GET.to_vec();
        v3[4] = 3;
        assert_eq!(probe(&v3), Probe::NotMine);
        // A trailing byte: the SEQUENCE no longer spans the datagram.
        let mut longer = V2C_GET.to_vec();
        longer.push(0);
        assert_eq!(probe(&longer), Probe::NotMine);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"NOTIFY * HTTP/1.1\r\n\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"",
            b"\x0bMSH|^~\\&|",
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn oids_render_dotted_and_bounded() {
        assert_eq!(
            oid_text(&[0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59]).as_deref(),
            Some("1.3.6.1.4.1.32473")
        );
        assert_eq!(oid_text(&[0x2b, 0x86]), None);
        assert_eq!(oid_text(&[0x2b, 0x8f, 0xff, 0xff, 0xff, 0xff, 0x7f]), None);
        assert_eq!(oid_text(&[1; MAX_OID_ARCS + 1]), None);
    }

    #[test]
    fn indefinite_and_oversized_lengths_are_errors_with_offsets() {
        let mut b = V2C_RESPONSE.to_vec();
        b[1] = 0x80;
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid { offset: 1, .. })
        ));
        b[1] = 0x83;
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid { offset: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=V2C_RESPONSE.len()) {
            for b in ALL {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                prop_assert!(out.len() <= MAX_VARBINDS);
                for f in &out {
                    prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                }
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..170, byte in any::<u8>()) {
            for b in [V2C_RESPONSE, V1_RESPONSE] {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_VARBINDS);
            }
        }
    }
}
