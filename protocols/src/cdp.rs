//! Cisco Discovery Protocol (versions 1 and 2): what a Cisco switch, router, access point or
//! IP phone (and lldpd, which speaks it too) announces about itself to its link neighbour.
//!
//! CDP travels in IEEE 802.3 frames (a length, not an EtherType) to 01:00:0c:cc:cc:cc, with an
//! 802.2 LLC/SNAP header: DSAP 0xaa, SSAP 0xaa, control 0x03 (UI), OUI 00-00-0C (Cisco),
//! protocol id 0x2000. Then a 4-byte header (version, TTL, checksum) and TLVs with a 16-bit
//! type and a 16-bit length that counts the 4-byte TLV header. There is no IP layer: the
//! dissector offers 802.3 frames through the registry's link-layer path
//! ([`crate::registry::LinkFrames::Llc`]) with the payload cut to the frame's length, and
//! every fact describes the sender. The layout follows Wireshark's `packet-cdp.c`, the public
//! reference for this proprietary protocol.
//!
//! Read: device ID, addresses, port ID, capabilities, software version (its first line),
//! platform, native VLAN, management addresses. Every other TLV (VTP domain, power, the voice
//! VLAN a switch offers a phone, …) is stepped over by its length, unread.
//!
//! Recognised by structure: the LLC/SNAP header naming CDP, version 1 or 2. At most
//! [`MAX_TLVS`] TLVs and [`MAX_ADDRESSES`] addresses per address TLV are read.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Fact, Field, Protocol};
use crate::registry::{AppDecoder, Decode, LinkFrames, Probe};

const LAYER: Layer = Layer::App(Protocol::Cdp);
/// TLVs walked per message.
pub const MAX_TLVS: usize = 64;
/// Addresses read per address TLV.
pub const MAX_ADDRESSES: usize = 8;
/// LLC/SNAP header of CDP: DSAP, SSAP, UI, OUI 00-00-0C, protocol id 0x2000.
pub const SNAP_HEADER: [u8; 8] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00];

/// CDP's entry in [`crate::registry`]: 802.3 frames with LLC/SNAP.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Cdp,
    probe,
    resync: None,
    decode: Decode::Link {
        frames: LinkFrames::Llc,
        decode: extract,
    },
};

mod field {
    //! Offsets from the start of the LLC header.
    use core::ops::Range;

    pub const SNAP: Range<usize> = 0..8;
    pub const VERSION: usize = 8;
    /// TTL (1 byte) and checksum (2) follow the version; the TLVs start after them.
    pub const TLVS: usize = 12;
    pub const TLV_TYPE: Range<usize> = 0..2;
    pub const TLV_LEN: Range<usize> = 2..4;
    pub const TLV_VALUE: usize = 4;
}

mod tlv_type {
    pub const DEVICE_ID: u16 = 0x0001;
    pub const ADDRESSES: u16 = 0x0002;
    pub const PORT_ID: u16 = 0x0003;
    pub const CAPABILITIES: u16 = 0x0004;
    pub const SOFTWARE_VERSION: u16 = 0x0005;
    pub const PLATFORM: u16 = 0x0006;
    pub const NATIVE_VLAN: u16 = 0x000a;
    pub const MANAGEMENT_ADDRESSES: u16 = 0x0016;
}

/// Capability bits, bit 0 first (Wireshark `packet-cdp.c`).
pub const CAPABILITIES: [&str; 11] = [
    "router",
    "trans_bridge",
    "source_route_bridge",
    "switch",
    "host",
    "igmp",
    "repeater",
    "phone",
    "remote",
    "cvta",
    "mac_relay",
];

fn be16(b: &[u8], r: core::ops::Range<usize>) -> Option<u16> {
    b.get(r)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map(u16::from_be_bytes)
}

fn invalid(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: LAYER,
        offset,
        what,
    }
}

/// A checked view of a CDP message: the SNAP header names CDP, the version is 1 or 2, and the
/// 4-byte CDP header is present. Accessors cannot fail once [`Packet::new_checked`] succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Validates the headers (see the type's documentation).
    pub fn new_checked(buffer: T) -> Result<Self, DecodeError> {
        let b = buffer.as_ref();
        if b.len() < field::TLVS {
            return Err(DecodeError::truncated(LAYER, 0, field::TLVS, b.len()));
        }
        if b.get(field::SNAP) != Some(&SNAP_HEADER[..]) {
            return Err(invalid(0, "LLC/SNAP header (not CDP)"));
        }
        if !matches!(b.get(field::VERSION), Some(1 | 2)) {
            return Err(invalid(field::VERSION, "CDP version"));
        }
        Ok(Packet { buffer })
    }

    /// The CDP version (1 or 2).
    pub fn version(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::VERSION)
            .copied()
            .unwrap_or(0)
    }

    /// The TLV area.
    pub fn tlvs(&self) -> &[u8] {
        self.buffer.as_ref().get(field::TLVS..).unwrap_or_default()
    }
}

/// Structure test on an 802.3 frame's payload: see the module documentation.
pub fn probe(payload: &[u8]) -> Probe {
    if Packet::new_checked(payload).is_ok() {
        Probe::Certain
    } else {
        Probe::NotMine
    }
}

/// The addresses of an Addresses / Management Addresses TLV: a 32-bit count, then per address
/// a protocol type (1 NLPID, 2 802.2), a protocol length, the protocol (NLPID 0xcc is IPv4;
/// 802.2 `aaaa0300000086dd` is IPv6), a 16-bit address length and the address.
fn addresses(
    v: &[u8],
    base: usize,
    field: Field,
    facts: &mut Vec<Fact>,
) -> Result<(), DecodeError> {
    const IPV6_SNAP: [u8; 8] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x86, 0xdd];
    let count = v
        .get(0..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| DecodeError::truncated(LAYER, base, 4, v.len()))?;
    let mut at = 4;
    for _ in 0..count.min(MAX_ADDRESSES as u32) {
        let plen = usize::from(*v.get(at + 1).ok_or_else(|| {
            DecodeError::truncated(LAYER, base + at, 2, v.len().saturating_sub(at))
        })?);
        let proto = v.get(at + 2..at + 2 + plen).ok_or_else(|| {
            DecodeError::truncated(LAYER, base + at, 2 + plen, v.len().saturating_sub(at))
        })?;
        let alen_at = at + 2 + plen;
        let alen = usize::from(be16(v, alen_at..alen_at + 2).ok_or_else(|| {
            DecodeError::truncated(LAYER, base + at, 4 + plen, v.len().saturating_sub(at))
        })?);
        let addr = v.get(alen_at + 2..alen_at + 2 + alen).ok_or_else(|| {
            DecodeError::truncated(
                LAYER,
                base + at,
                4 + plen + alen,
                v.len().saturating_sub(at),
            )
        })?;
        let ip: Option<IpAddr> = match (proto, addr.len()) {
            ([0xcc], 4) => <[u8; 4]>::try_from(addr)
                .ok()
                .map(|a| Ipv4Addr::from(a).into()),
            (p, 16) if p == IPV6_SNAP => <[u8; 16]>::try_from(addr)
                .ok()
                .map(|a| Ipv6Addr::from(a).into()),
            _ => None,
        };
        if let Some(ip) = ip {
            facts.push(Fact::new(field, ip.to_string()));
        }
        at = alen_at + 2 + alen;
    }
    Ok(())
}

/// The first line of a software version string (IOS puts a copyright banner after it).
fn first_line(v: &[u8]) -> &[u8] {
    let end = v
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(v.len());
    v.get(..end).unwrap_or(v)
}

/// Pushes the facts of one CDP message (an 802.3 frame's payload from the LLC header, cut to
/// the frame's length), in TLV order. Facts found before a malformed TLV are kept and the error
/// returned.
pub fn extract(payload: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let p = Packet::new_checked(payload)?;
    let b = p.tlvs();
    let mut at = 0;
    let mut n = 0;
    while at < b.len() {
        n += 1;
        if n > MAX_TLVS {
            return Err(invalid(field::TLVS + at, "too many TLVs"));
        }
        let (Some(kind), Some(len)) = (
            be16(b, at + field::TLV_TYPE.start..at + field::TLV_TYPE.end),
            be16(b, at + field::TLV_LEN.start..at + field::TLV_LEN.end),
        ) else {
            return Err(DecodeError::truncated(
                LAYER,
                field::TLVS + at,
                field::TLV_VALUE,
                field::TLVS + b.len(),
            ));
        };
        let len = usize::from(len);
        if len < field::TLV_VALUE {
            return Err(invalid(field::TLVS + at + 2, "TLV length"));
        }
        let v = b.get(at + field::TLV_VALUE..at + len).ok_or_else(|| {
            DecodeError::truncated(LAYER, field::TLVS + at, len, field::TLVS + b.len())
        })?;
        let base = field::TLVS + at + field::TLV_VALUE;
        let text = |f: Field, raw: &[u8], facts: &mut Vec<Fact>| {
            let s = clean_text(raw);
            if !s.is_empty() {
                facts.push(Fact::new(f, s));
            }
        };
        match kind {
            tlv_type::DEVICE_ID => text(Field::CdpDeviceId, v, facts),
            tlv_type::PORT_ID => text(Field::CdpPortId, v, facts),
            tlv_type::PLATFORM => text(Field::CdpPlatform, v, facts),
            tlv_type::SOFTWARE_VERSION => text(Field::CdpSoftwareVersion, first_line(v), facts),
            tlv_type::CAPABILITIES => {
                let c = <[u8; 4]>::try_from(v).map_err(|_| invalid(base, "capabilities length"))?;
                let bits = u32::from_be_bytes(c);
                for (i, name) in CAPABILITIES.iter().enumerate() {
                    if bits & (1 << i) != 0 {
                        facts.push(Fact::new(Field::CdpCapabilities, *name));
                    }
                }
            }
            tlv_type::NATIVE_VLAN => {
                let vlan =
                    <[u8; 2]>::try_from(v).map_err(|_| invalid(base, "native VLAN length"))?;
                facts.push(Fact::new(
                    Field::CdpNativeVlan,
                    u16::from_be_bytes(vlan).to_string(),
                ));
            }
            tlv_type::ADDRESSES => addresses(v, base, Field::CdpAddress, facts)?,
            tlv_type::MANAGEMENT_ADDRESSES => {
                addresses(v, base, Field::CdpManagementAddress, facts)?
            }
            _ => {}
        }
        at += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::MAX_VALUE_CHARS;
    use proptest::prelude::*;

    /// lldpd 1.0.16's CDPv2 message, from tests/fixtures/lldp.pcap: the 802.3 payload from the
    /// LLC header.
    const LLDPD_V2: &[u8] = include_bytes!("../testdata/cdp/lldpd-v2.bin");

    fn facts(b: &[u8]) -> Vec<(Field, String)> {
        let mut out = Vec::new();
        extract(b, &mut out).unwrap();
        out.into_iter().map(|f| (f.field, f.value)).collect()
    }

    fn values(b: &[u8], field: Field) -> Vec<String> {
        facts(b)
            .into_iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| v)
            .collect()
    }

    /// A CDPv2 message in the shape of a Cisco switch's (Cisco's own strings from its public
    /// `show cdp neighbors detail` documentation), with a native VLAN, an IPv6 management
    /// address and an IOS version banner of several lines.
    fn cisco_switch() -> Vec<u8> {
        let mut b = SNAP_HEADER.to_vec();
        b.extend_from_slice(&[2, 180, 0, 0]);
        let mut tlv = |t: u16, v: &[u8]| {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&((v.len() + 4) as u16).to_be_bytes());
            b.extend_from_slice(v);
        };
        tlv(1, b"sw-core-1.example");
        tlv(
            5,
            b"Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, \
              RELEASE SOFTWARE (fc3)\nTechnical Support: http://www.cisco.com/techsupport\n",
        );
        tlv(6, b"cisco WS-C2960-24TT-L");
        tlv(3, b"GigabitEthernet0/1");
        tlv(4, &0x28u32.to_be_bytes());
        tlv(10, &100u16.to_be_bytes());
        tlv(9, b"CANARY-VTP-DOMAIN");
        let mut mgmt = 1u32.to_be_bytes().to_vec();
        mgmt.extend_from_slice(&[2, 8, 0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd, 0, 16]);
        mgmt.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        tlv(0x16, &mgmt);
        b
    }

    #[test]
    fn lldpd_announces_itself() {
        let one = |f| values(LLDPD_V2, f);
        assert_eq!(one(Field::CdpDeviceId), ["wardtest-phone7.example"]);
        assert_eq!(one(Field::CdpAddress), ["192.0.2.10"]);
        assert_eq!(one(Field::CdpPortId), ["vdev"]);
        assert_eq!(one(Field::CdpCapabilities), ["host"]);
        assert_eq!(
            one(Field::CdpSoftwareVersion),
            ["WardTestTel WT-7 IP Phone, firmware FW-2024.3"]
        );
        assert_eq!(one(Field::CdpPlatform), ["WardTestTel WT-7"]);
        assert_eq!(Packet::new_checked(LLDPD_V2).unwrap().version(), 2);
    }

    #[test]
    fn cisco_switch_fields() {
        let b = cisco_switch();
        assert_eq!(values(&b, Field::CdpPlatform), ["cisco WS-C2960-24TT-L"]);
        assert_eq!(
            values(&b, Field::CdpSoftwareVersion),
            [
                "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, \
              RELEASE SOFTWARE (fc3)"
            ]
        );
        assert_eq!(values(&b, Field::CdpCapabilities), ["switch", "igmp"]);
        assert_eq!(values(&b, Field::CdpNativeVlan), ["100"]);
        assert_eq!(values(&b, Field::CdpManagementAddress), ["2001:db8::1"]);
        assert!(facts(&b).iter().all(|(_, v)| !v.contains("CANARY")));
    }

    #[test]
    fn probe_wants_cdp_snap_and_a_known_version() {
        assert_eq!(probe(LLDPD_V2), Probe::Certain);
        let mut v3 = LLDPD_V2.to_vec();
        v3[8] = 3;
        assert_eq!(probe(&v3), Probe::NotMine);
        // Spanning tree (LLC 42 42 03), Cisco's VTP (SNAP pid 0x2003), short or foreign bytes.
        for bad in [
            &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x03, 2, 180, 0, 0],
            &SNAP_HEADER[..],
            b"",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(probe(bad), Probe::NotMine, "{bad:?}");
        }
    }

    #[test]
    fn malformed_tlvs_are_errors_with_offsets_and_keep_earlier_facts() {
        let mut b = cisco_switch();
        // Cut the last TLV's length field short: everything before it is kept.
        let full = facts(&b).len();
        let cut = b.len() - 30;
        b.truncate(cut);
        let mut out = Vec::new();
        assert!(extract(&b, &mut out).is_err());
        assert!(!out.is_empty() && out.len() < full);
        // A TLV length below its own header.
        let mut b = SNAP_HEADER.to_vec();
        b.extend_from_slice(&[2, 180, 0, 0, 0, 1, 0, 2]);
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid { offset: 14, .. })
        ));
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=300) {
            for b in [LLDPD_V2.to_vec(), cisco_switch()] {
                let t = b.get(..cut.min(b.len())).unwrap();
                let mut out = Vec::new();
                let _ = extract(t, &mut out);
                let _ = probe(t);
                for f in &out {
                    prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
                }
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..300, byte in any::<u8>()) {
            for b in [LLDPD_V2.to_vec(), cisco_switch()] {
                let mut m = b.clone();
                if let Some(x) = m.get_mut(at) { *x = byte; }
                let mut out = Vec::new();
                let _ = extract(&m, &mut out);
                let _ = probe(&m);
                prop_assert!(out.len() <= MAX_TLVS * (CAPABILITIES.len() + MAX_ADDRESSES));
            }
        }
    }
}
