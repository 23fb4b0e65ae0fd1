//! Unicast DNS (RFC 1035): the names a device asks for, and the names a server answers for.
//!
//! A query's question is the name a device wants to reach: it says whom the device talks to
//! (its vendor's cloud, update or telemetry service, a remote-desktop relay), never who it is.
//! It is kept with its type ([`Field::DnsQueriedName`], [`Field::DnsQueryType`]) on the client,
//! as a private hint that rules and remote-access detection read
//! ([`crate::evidence::Attribute::ContactedName`]). A response's answer owner names are the
//! names a server answers for ([`Field::DnsAnsweredName`], on the server): a resolver answers
//! for whatever its clients ask, so they say what it serves, not what it is, and carry no
//! identity. The response's copy of the question is not read again (the query has it), and
//! answer data (addresses, targets, text) is never read.
//!
//! Recognised by structure, never by port 53: a standard query or its response (opcode 0, the
//! Z bit clear), exactly one question (RFC 9619) of class IN whose name is a host name (letters,
//! digits, `-` and `_` in each label), a query without answer or authority records, a response
//! with a defined rcode. The registry probes DNS after mDNS, LLMNR and NetBIOS, which share the
//! header layout and claim their datagrams first (mDNS: ID 0; LLMNR: a query with RD clear or a
//! response with RA clear for a single label; NetBIOS: its encoded names). The probe also turns
//! away NetBIOS-encoded questions on its own, so a NetBIOS name server's answer the NetBIOS
//! decoder left alone is never read as DNS. Names reuse mDNS's bounded reader
//! ([`crate::mdns`]): backwards-only compression pointers, at most [`crate::mdns::MAX_POINTERS`]
//! per name; at most [`MAX_RECORDS`] records are walked and [`MAX_NAMES`] names kept per message.

use crate::error::{DecodeError, Layer};
use crate::evidence::{Direction, Fact, Field, Protocol};
use crate::mdns::{be16, read_name_in, Name, HEADER_LEN};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Dns);
/// Answer records walked per response.
pub const MAX_RECORDS: usize = 64;
/// Answered names kept per response (a CNAME chain and its address records name a handful).
pub const MAX_NAMES: usize = 16;
/// Additional records a query may carry (an EDNS OPT record, a TSIG or SIG(0) signature).
const MAX_QUERY_ADDITIONAL: u16 = 2;

/// UDP port of DNS. For reference only: detection is by structure ([`probe`]), never by port.
pub const PORT: u16 = 53;

/// DNS's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Dns,
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
    pub const Z: u16 = 0x0040;
    pub const RCODE: u16 = 0x000f;
}

/// Highest response code a response may carry (5 REFUSED; 6–10 are dynamic update's, 11+
/// unassigned in the 4-bit field).
const MAX_RCODE: u16 = 5;
const CLASS_IN: u16 = 1;

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
    let rcode = flags & flag::RCODE;
    if flags & (flag::OPCODE | flag::Z) != 0 || rcode > if response { MAX_RCODE } else { 0 } {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: 2,
            what: "flags (opcode, Z bit or rcode)",
        });
    }
    let query_sections_ok = count(1) == 0 && count(2) == 0 && count(3) <= MAX_QUERY_ADDITIONAL;
    if count(0) != 1 || (!response && !query_sections_ok) {
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

/// A label of a host name (RFC 952/1123 letters, digits and hyphens, plus `_` for service
/// labels such as `_ldap._tcp`, RFC 2782).
fn host_label(l: &[u8]) -> bool {
    !l.is_empty()
        && l.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A NetBIOS first-level encoded name (RFC 1001 §14.1): one label of 32 letters `A`–`P`.
fn netbios_encoded(q: &Name<'_>) -> bool {
    matches!(q.labels.as_slice(), [l] if l.len() == 32 && l.iter().all(|c| (b'A'..=b'P').contains(c)))
}

/// The question: its name (a host name of at least one label) and type; the offset after it
/// is `name.end + 4`.
fn question(b: &[u8]) -> Result<(Name<'_>, u16), DecodeError> {
    let q = read_name_in(b, HEADER_LEN, LAYER)?;
    if q.labels.is_empty() || !q.labels.iter().all(|l| host_label(l)) || netbios_encoded(&q) {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: HEADER_LEN,
            what: "question name (a host name)",
        });
    }
    let (Some(qtype), Some(qclass)) = (be16(b, q.end), be16(b, q.end + 2)) else {
        return Err(DecodeError::truncated(LAYER, q.end, 4, b.len()));
    };
    if qclass != CLASS_IN {
        return Err(DecodeError::Invalid {
            layer: LAYER,
            offset: q.end + 2,
            what: "question class (IN)",
        });
    }
    Ok((q, qtype))
}

/// Structure test: a DNS header ([`header`]) and one question for a host name of class IN.
pub fn probe(payload: &[u8]) -> Probe {
    if header(payload).is_ok() && question(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A query comes from the client (the device that resolves), a response from the server.
pub fn direction(payload: &[u8]) -> Direction {
    match header(payload) {
        Ok(h) if h.response => Direction::FromServer,
        Ok(_) => Direction::FromClient,
        Err(_) => Direction::Unknown,
    }
}

/// The mnemonic of a question type (RFC 1035, 3596, 2782, 9460…), `TYPE<n>` for the others
/// (RFC 3597 §5).
pub fn type_name(t: u16) -> String {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        43 => "DS",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    name.to_owned()
}

/// Extracts a query's question name and type (the client's), or a response's answer owner
/// names (the names the server answers for). Facts found before a malformed part are kept and
/// the error returned.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let h = header(payload)?;
    let (q, qtype) = question(payload)?;
    if !h.response {
        push(out, Field::DnsQueriedName, q.text());
        push(out, Field::DnsQueryType, type_name(qtype));
        return Ok(());
    }
    let start = out.len();
    let mut pos = q.end + 4;
    for _ in 0..usize::from(h.an).min(MAX_RECORDS) {
        let owner = read_name_in(payload, pos, LAYER)?;
        let p = owner.end;
        let Some(rdlen) = be16(payload, p + 8) else {
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
        if !owner.labels.is_empty() && out.len() - start < MAX_NAMES {
            push(out, Field::DnsAnsweredName, owner.text());
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

    // dig (bind9-dnsutils) against dnsmasq in generate.sh's scenario_dns.
    const QUERY: &[u8] = include_bytes!("../testdata/dns/query.bin");
    const QUERY_AAAA: &[u8] = include_bytes!("../testdata/dns/query_aaaa.bin");
    const RESPONSE: &[u8] = include_bytes!("../testdata/dns/response.bin");
    const RESPONSE_CNAME: &[u8] = include_bytes!("../testdata/dns/response_cname.bin");
    const NXDOMAIN: &[u8] = include_bytes!("../testdata/dns/nxdomain.bin");
    const ALL: [&[u8]; 5] = [QUERY, QUERY_AAAA, RESPONSE, RESPONSE_CNAME, NXDOMAIN];

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    #[test]
    fn query_names_what_the_client_resolves() {
        assert_eq!(
            facts(QUERY),
            [
                (
                    Field::DnsQueriedName,
                    "update.wardtestmed.example".to_string()
                ),
                (Field::DnsQueryType, "A".to_string()),
            ]
        );
        assert_eq!(
            facts(QUERY_AAAA),
            [
                (
                    Field::DnsQueriedName,
                    "update.wardtestmed.example".to_string()
                ),
                (Field::DnsQueryType, "AAAA".to_string()),
            ]
        );
        assert_eq!(direction(QUERY), Direction::FromClient);
    }

    #[test]
    fn response_names_what_the_server_answers_for() {
        assert_eq!(
            facts(RESPONSE),
            [(
                Field::DnsAnsweredName,
                "update.wardtestmed.example".to_string()
            )]
        );
        // A CNAME chain: the alias and its canonical name, each once.
        assert_eq!(
            facts(RESPONSE_CNAME),
            [
                (
                    Field::DnsAnsweredName,
                    "router15.teamviewer.com".to_string()
                ),
                (
                    Field::DnsAnsweredName,
                    "relay.wardtestmed.example".to_string()
                ),
            ]
        );
        // NXDOMAIN: no answers, nothing the server answers for; the question is not re-read.
        assert_eq!(facts(NXDOMAIN), []);
        assert_eq!(direction(RESPONSE), Direction::FromServer);
    }

    #[test]
    fn answered_names_are_bounded() {
        // One question, then 200 answers each with its own owner name.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 200, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01q\x07example\x00\x00\x01\x00\x01");
        for i in 0..200u8 {
            m.extend_from_slice(&[2, b'a' + i % 26, b'a' + i / 26, 0xc0, 14]);
            m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, i]);
        }
        let mut out = Vec::new();
        extract(&m, &mut out).unwrap();
        assert_eq!(out.len(), MAX_NAMES);
    }

    #[test]
    fn probe_recognises_unicast_dns_only() {
        for b in ALL {
            assert_eq!(probe(b), Probe::Certain);
        }
        // Two questions, a non-IN class, a binary label, an update opcode: not ours.
        let mut two = QUERY.to_vec();
        two[5] = 2;
        assert_eq!(probe(&two), Probe::NotMine);
        let mut chaos = QUERY.to_vec();
        let (q, _) = question(QUERY).unwrap();
        chaos[q.end + 3] = 3;
        assert_eq!(probe(&chaos), Probe::NotMine);
        let mut binary = QUERY.to_vec();
        binary[13] = 0x01;
        assert_eq!(probe(&binary), Probe::NotMine);
        let mut update = QUERY.to_vec();
        update[2] |= 0x28;
        assert_eq!(probe(&update), Probe::NotMine);
        // A query with an answer section is not a query.
        let mut answers = QUERY.to_vec();
        answers[7] = 1;
        assert_eq!(probe(&answers), Probe::NotMine);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"\x0bMSH|^~\\&|",
            include_bytes!("../testdata/nbns/query.bin"),
            include_bytes!("../testdata/nbns/response.bin"),
            include_bytes!("../testdata/nbns/registration.bin"),
            include_bytes!("../testdata/snmp/v2c-response.bin"),
            include_bytes!("../testdata/ssdp/notify.bin"),
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
        // A NetBIOS name server's answer (RA set, which the NetBIOS decoder leaves alone) is
        // still not DNS: its question is a NetBIOS-encoded name.
        let mut nbns_server = include_bytes!("../testdata/nbns/response.bin").to_vec();
        nbns_server[3] |= 0x80;
        assert_eq!(probe(&nbns_server), Probe::NotMine);
    }

    /// mDNS, LLMNR and NetBIOS datagrams stay with their decoders (registry order), and these
    /// unicast DNS ones come here.
    #[test]
    fn the_registry_gives_each_name_protocol_its_datagrams() {
        for b in ALL {
            let d = crate::registry::probe_datagram(b).map(|d| d.protocol);
            assert_eq!(d, Some(Protocol::Dns));
        }
        let others: [(&[u8], Protocol); 7] = [
            (
                include_bytes!("../testdata/mdns/announce.bin"),
                Protocol::Mdns,
            ),
            (include_bytes!("../testdata/mdns/query.bin"), Protocol::Mdns),
            (
                include_bytes!("../testdata/llmnr/query.bin"),
                Protocol::Llmnr,
            ),
            (
                include_bytes!("../testdata/llmnr/response.bin"),
                Protocol::Llmnr,
            ),
            (include_bytes!("../testdata/nbns/query.bin"), Protocol::Nbns),
            (
                include_bytes!("../testdata/nbns/response.bin"),
                Protocol::Nbns,
            ),
            (
                include_bytes!("../testdata/nbns/registration.bin"),
                Protocol::Nbns,
            ),
        ];
        for (b, p) in others {
            let d = crate::registry::probe_datagram(b).map(|d| d.protocol);
            assert_eq!(d, Some(p));
        }
    }

    #[test]
    fn errors_carry_offsets_not_payload() {
        // Cut inside the answer record (the EDNS record after it is not walked).
        let (q, _) = question(RESPONSE).unwrap();
        let b = RESPONSE.get(..q.end + 12).unwrap();
        let mut out = Vec::new();
        let e = extract(b, &mut out).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
        assert!(!e.to_string().contains("wardtestmed"));
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name(1), "A");
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(999), "TYPE999");
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=200) {
            for b in ALL {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                let _ = direction(t);
                prop_assert!(out.len() <= MAX_NAMES + 2);
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..200, byte in any::<u8>()) {
            for b in ALL {
                let mut m = b.to_vec();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_NAMES + 2);
            }
        }
    }
}
