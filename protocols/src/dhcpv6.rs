//! DHCPv6 (RFC 8415, UDP 546/547): what a client says about itself.
//!
//! Read from client messages only (Solicit, Request, Confirm, Renew, Rebind, Release, Decline,
//! Information-request): the client DUID (option 1, §11) and, for DUID-LLT/DUID-LL over
//! Ethernet, the link-layer address in it ([`Field::Dhcpv6ClientMac`], the device the message is
//! about even when a relay forwards it); the vendor class (option 16, §21.16: IANA enterprise
//! number and opaque strings); the client FQDN (option 39, RFC 4704). Server messages carry
//! the client's DUID back and the server's own options: they are not read.
//!
//! Recognised by structure, never by port: a known message type, options that exactly fill
//! the datagram, and the option every such message must carry — Elapsed Time (option 8,
//! §21.9) in a client's, Server Identifier (option 2) in a server's. Relay messages are not
//! decoded.

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Direction, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, Probe};

const LAYER: Layer = Layer::App(Protocol::Dhcpv6);
/// Message type and transaction id.
pub const HEADER_LEN: usize = 4;
/// Options walked per message.
pub const MAX_OPTIONS: usize = 64;
/// Vendor class data strings read per option.
pub const MAX_VENDOR_STRINGS: usize = 8;
/// Facts kept per message.
pub const MAX_FACTS: usize = 32;
/// Longest DUID kept (RFC 8415 §11.1: at most 128 octets).
pub const MAX_DUID: usize = 130;

/// DHCPv6's entry in [`crate::registry`]: UDP, one message per datagram.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Dhcpv6,
    probe,
    resync: None,
    decode: Decode::Datagram {
        decode: extract,
        direction,
    },
};

mod opt {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const ELAPSED_TIME: u16 = 8;
    pub const VENDOR_CLASS: u16 = 16;
    pub const CLIENT_FQDN: u16 = 39;
}

/// Solicit, Request, Confirm, Renew, Rebind, Release, Decline, Information-request.
fn is_client(t: u8) -> bool {
    matches!(t, 1 | 3 | 4 | 5 | 6 | 8 | 9 | 11)
}

/// Advertise, Reply, Reconfigure.
fn is_server(t: u8) -> bool {
    matches!(t, 2 | 7 | 10)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The options of a message as `(code, offset of the value, value)`, or the first error.
fn options(b: &[u8]) -> impl Iterator<Item = Result<(u16, usize, &[u8]), DecodeError>> {
    let mut pos = HEADER_LEN;
    let mut n = 0usize;
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || pos >= b.len() || n >= MAX_OPTIONS {
            return None;
        }
        n += 1;
        let (Some(code), Some(len)) = (be16(b, pos), be16(b, pos + 2)) else {
            failed = true;
            return Some(Err(DecodeError::truncated(
                LAYER,
                pos,
                4,
                b.len().saturating_sub(pos),
            )));
        };
        let at = pos + 4;
        let Some(value) = b.get(at..at + usize::from(len)) else {
            failed = true;
            return Some(Err(DecodeError::truncated(
                LAYER,
                at,
                usize::from(len),
                b.len().saturating_sub(at),
            )));
        };
        pos = at + value.len();
        Some(Ok((code, at, value)))
    })
}

/// Structure test: see the [module docs](self).
pub fn probe(payload: &[u8]) -> Probe {
    let Some(&t) = payload.first() else {
        return Probe::NotMine;
    };
    if payload.len() < HEADER_LEN || !(is_client(t) || is_server(t)) {
        return Probe::NotMine;
    }
    let need = if is_client(t) {
        opt::ELAPSED_TIME
    } else {
        opt::SERVERID
    };
    let mut found = false;
    let mut end = HEADER_LEN;
    for o in options(payload) {
        match o {
            Ok((code, at, v)) => {
                found |= code == need;
                end = at + v.len();
            }
            Err(_) => return Probe::NotMine,
        }
    }
    if found && end == payload.len() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// A client message travels from the client, Advertise/Reply/Reconfigure from the server.
pub fn direction(payload: &[u8]) -> Direction {
    match payload.first() {
        Some(&t) if is_client(t) => Direction::FromClient,
        Some(&t) if is_server(t) => Direction::FromServer,
        _ => Direction::Unknown,
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Extracts a client message's DUID, link-layer address, vendor class and FQDN. Facts found
/// before a malformed option are kept and the error returned.
pub fn extract(payload: &[u8], out: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let Some(&t) = payload.first() else {
        return Err(DecodeError::truncated(LAYER, 0, HEADER_LEN, 0));
    };
    if payload.len() < HEADER_LEN {
        return Err(DecodeError::truncated(LAYER, 0, HEADER_LEN, payload.len()));
    }
    if !is_client(t) {
        return Ok(());
    }
    let start = out.len();
    for o in options(payload) {
        let (code, at, v) = o?;
        match code {
            opt::CLIENTID => duid(v, out, start),
            opt::VENDOR_CLASS => vendor_class(v, at, out, start)?,
            opt::CLIENT_FQDN => {
                let name = fqdn(v.get(1..).unwrap_or(&[]));
                push(out, start, Field::Dhcpv6Fqdn, name);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The DUID as hex, and the link-layer address of a DUID-LLT (type 1) or DUID-LL (type 3)
/// whose hardware type is Ethernet (1).
fn duid(v: &[u8], out: &mut Vec<Fact>, start: usize) {
    if v.len() < 2 || v.len() > MAX_DUID {
        return;
    }
    push(out, start, Field::Dhcpv6Duid, hex(v));
    let lladdr = match (be16(v, 0), be16(v, 2)) {
        (Some(1), Some(1)) => v.get(8..),
        (Some(3), Some(1)) => v.get(4..),
        _ => None,
    };
    if let Some(mac) = lladdr.filter(|m| m.len() == 6) {
        let s: Vec<String> = mac.iter().map(|x| format!("{x:02x}")).collect();
        push(out, start, Field::Dhcpv6ClientMac, s.join(":"));
    }
}

/// Option 16: enterprise number, then length-prefixed opaque strings.
fn vendor_class(v: &[u8], at: usize, out: &mut Vec<Fact>, start: usize) -> Result<(), DecodeError> {
    let Some(en) = v.get(..4) else {
        return Err(DecodeError::truncated(LAYER, at, 4, v.len()));
    };
    let en = u32::from_be_bytes(en.try_into().unwrap_or([0; 4]));
    push(out, start, Field::Dhcpv6VendorEnterprise, en.to_string());
    let mut pos = 4;
    for _ in 0..MAX_VENDOR_STRINGS {
        let Some(n) = be16(v, pos) else { break };
        let Some(s) = v.get(pos + 2..pos + 2 + usize::from(n)) else {
            return Err(DecodeError::truncated(
                LAYER,
                at + pos + 2,
                usize::from(n),
                v.len().saturating_sub(pos + 2),
            ));
        };
        push(out, start, Field::Dhcpv6VendorClass, clean_text(s));
        pos += 2 + s.len();
    }
    Ok(())
}

/// A domain name in DNS wire format without compression (RFC 4704 §4.2), possibly partial
/// (no root label): dotted, at most 255 bytes of labels.
fn fqdn(mut b: &[u8]) -> String {
    let mut raw = Vec::new();
    while let Some((&n, rest)) = b.split_first() {
        let n = usize::from(n);
        if n == 0 || n > 63 {
            break;
        }
        let Some(label) = rest.get(..n) else { break };
        if raw.len() + n + 1 > 255 {
            break;
        }
        if !raw.is_empty() {
            raw.push(b'.');
        }
        raw.extend_from_slice(label);
        b = rest.get(n..).unwrap_or(&[]);
    }
    clean_text(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SOLICIT: &[u8] = include_bytes!("../testdata/dhcpv6/solicit.bin");
    const ADVERTISE: &[u8] = include_bytes!("../testdata/dhcpv6/advertise.bin");
    const REQUEST: &[u8] = include_bytes!("../testdata/dhcpv6/request.bin");
    const REPLY: &[u8] = include_bytes!("../testdata/dhcpv6/reply.bin");

    fn values(b: &[u8], field: Field) -> Vec<String> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter()
            .filter(|f| f.field == field)
            .map(|f| f.value)
            .collect()
    }

    #[test]
    fn client_messages_describe_the_client() {
        for b in [SOLICIT, REQUEST] {
            assert_eq!(values(b, Field::Dhcpv6ClientMac), ["02:57:41:52:44:16"]);
            assert_eq!(values(b, Field::Dhcpv6VendorEnterprise), ["32473"]);
            assert_eq!(values(b, Field::Dhcpv6VendorClass), ["WardPump-500 fw 3.1"]);
            assert_eq!(values(b, Field::Dhcpv6Fqdn), ["wardpump-500-16.ward.test"]);
            let duid = values(b, Field::Dhcpv6Duid);
            assert_eq!(duid.len(), 1);
            assert!(duid[0].starts_with("00010001") && duid[0].ends_with("025741524416"));
            assert_eq!(direction(b), Direction::FromClient);
        }
    }

    #[test]
    fn server_messages_are_not_read() {
        for b in [ADVERTISE, REPLY] {
            let mut out = Vec::new();
            extract(b, &mut out).unwrap();
            assert!(out.is_empty());
            assert_eq!(direction(b), Direction::FromServer);
        }
    }

    #[test]
    fn probe_recognises_dhcpv6_only() {
        for b in [SOLICIT, ADVERTISE, REQUEST, REPLY] {
            assert_eq!(probe(b), Probe::Certain);
        }
        let mut extra = SOLICIT.to_vec();
        extra.push(0);
        assert_eq!(probe(&extra), Probe::NotMine);
        for other in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[0x16, 0x03, 0x01, 0x00, 0x10, 1, 0, 0, 0x0c, 3, 3, 0][..],
            &[0u8; 12][..],
            b"\x0bMSH|^~\\&|",
            include_bytes!("../testdata/llmnr/query.bin"),
            include_bytes!("../testdata/nbns/registration.bin"),
            include_bytes!("../testdata/mdns/announce.bin"),
        ] {
            assert_eq!(probe(other), Probe::NotMine);
        }
    }

    #[test]
    fn errors_carry_offsets_not_payload() {
        let b = REQUEST.get(..REQUEST.len() - 3).unwrap();
        let e = extract(b, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
        assert!(!e.to_string().contains("WardPump"));
    }

    #[test]
    fn the_registry_gives_these_datagrams_to_this_decoder() {
        for b in [SOLICIT, ADVERTISE, REQUEST, REPLY] {
            let d = crate::registry::probe_datagram(b).map(|d| d.protocol);
            assert_eq!(d, Some(Protocol::Dhcpv6));
        }
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=REQUEST.len()) {
            for b in [SOLICIT, ADVERTISE, REQUEST, REPLY] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                let _ = direction(t);
                prop_assert!(out.len() <= MAX_FACTS);
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..170, byte in any::<u8>()) {
            for b in [SOLICIT, REQUEST] {
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
