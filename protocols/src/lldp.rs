//! LLDP (IEEE 802.1AB) and its LLDP-MED extensions (ANSI/TIA-1057): what a station announces
//! about itself to its link neighbour.
//!
//! An LLDPDU is the payload of an Ethernet II frame of EtherType 0x88cc (behind any VLAN tags),
//! a sequence of TLVs each with a 16-bit header — a 7-bit type and a 9-bit length — ending at
//! the End of LLDPDU TLV (type 0) or at the end of the frame. It has no IP layer: the dissector
//! offers it through the registry's link-layer path ([`crate::registry::LinkFrames`]), and every
//! fact describes the frame's sender (its source MAC).
//!
//! Read: chassis ID, port ID (with their subtypes), TTL, port description, system name and
//! description, system and enabled capabilities, management addresses, and of the
//! organisationally specific TLVs only TIA's (OUI 00-12-BB): LLDP-MED capabilities and device
//! class, and the inventory TLVs (hardware, firmware and software revision, serial number,
//! manufacturer, model, asset ID). Every other organisationally specific TLV (IEEE 802.1/802.3,
//! vendors'), the LLDP-MED network policy, location (a civic address or an emergency number:
//! site data) and power TLVs are stepped over by their length, unread.
//!
//! Recognised by structure: the EtherType, then a first TLV that is a Chassis ID of a valid
//! length (802.1AB §8.2: the LLDPDU starts with Chassis ID, Port ID, TTL). At most
//! [`MAX_TLVS`] TLVs are walked; an LLDPDU fits in one frame, so nothing is buffered.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{DecodeError, Layer};
use crate::evidence::{clean_text, Fact, Field, MacAddr, Protocol};
use crate::registry::{AppDecoder, Decode, LinkFrames, Probe};

const LAYER: Layer = Layer::App(Protocol::Lldp);
/// The LLDP EtherType (IEEE 802.1AB §7.2).
pub const ETHER_TYPE: u16 = 0x88cc;
/// TLVs walked per LLDPDU; more is an error. Generous: a switch's trunk port can announce a
/// VLAN Name TLV per VLAN before the LLDP-MED TLVs, and each TLV costs a few instructions.
pub const MAX_TLVS: usize = 512;
/// The TIA TR-41 OUI of the LLDP-MED TLVs.
pub const OUI_TIA: [u8; 3] = [0x00, 0x12, 0xbb];

/// LLDP's entry in [`crate::registry`]: Ethernet II frames of EtherType 0x88cc.
pub const DECODER: AppDecoder = AppDecoder {
    protocol: Protocol::Lldp,
    probe,
    resync: None,
    decode: Decode::Link {
        frames: LinkFrames::EtherType(ETHER_TYPE),
        decode: extract,
    },
};

mod field {
    //! TLV layout (802.1AB §8.4): a 16-bit header, then the value.
    use core::ops::Range;

    pub const HEADER: Range<usize> = 0..2;
    pub const VALUE: usize = 2;
    /// Organisationally specific TLV: OUI, subtype, then the information string.
    pub const ORG_OUI: Range<usize> = 0..3;
    pub const ORG_SUBTYPE: usize = 3;
    pub const ORG_INFO: usize = 4;
    /// Management address TLV: address string length (subtype + address), subtype, address.
    pub const MGMT_ADDR_LEN: usize = 0;
    pub const MGMT_SUBTYPE: usize = 1;
    pub const MGMT_ADDR: usize = 2;
}

mod tlv_type {
    pub const END: u8 = 0;
    pub const CHASSIS_ID: u8 = 1;
    pub const PORT_ID: u8 = 2;
    pub const TTL: u8 = 3;
    pub const PORT_DESCRIPTION: u8 = 4;
    pub const SYSTEM_NAME: u8 = 5;
    pub const SYSTEM_DESCRIPTION: u8 = 6;
    pub const SYSTEM_CAPABILITIES: u8 = 7;
    pub const MANAGEMENT_ADDRESS: u8 = 8;
    pub const ORG_SPECIFIC: u8 = 127;
}

/// 802.1AB Table 8-2, chassis ID subtypes 1–7.
const CHASSIS_SUBTYPES: [&str; 7] = [
    "chassis_component",
    "interface_alias",
    "port_component",
    "mac_address",
    "network_address",
    "interface_name",
    "local",
];
/// 802.1AB Table 8-3, port ID subtypes 1–7.
const PORT_SUBTYPES: [&str; 7] = [
    "interface_alias",
    "port_component",
    "mac_address",
    "network_address",
    "interface_name",
    "agent_circuit_id",
    "local",
];
/// 802.1AB-2016 Table 8-4, system capabilities, bit 0 first.
pub const CAPABILITIES: [&str; 11] = [
    "other",
    "repeater",
    "bridge",
    "wlan_access_point",
    "router",
    "telephone",
    "docsis_cable_device",
    "station_only",
    "c_vlan",
    "s_vlan",
    "two_port_mac_relay",
];
/// TIA-1057 §10.2.2.1, LLDP-MED capabilities, bit 0 first.
pub const MED_CAPABILITIES: [&str; 6] = [
    "capabilities",
    "network_policy",
    "location",
    "power_pse",
    "power_pd",
    "inventory",
];
/// TIA-1057 §10.2.2.2, device types 1–4.
const MED_CLASSES: [&str; 4] = [
    "generic_endpoint",
    "media_endpoint",
    "communication_endpoint",
    "network_connectivity",
];

/// LLDP-MED subtypes read (TIA-1057 §10.2): capabilities, and the inventory strings with
/// their fields. Network policy (2), location (3) and power (4) are not read.
const MED_CAPABILITIES_SUBTYPE: u8 = 1;
const MED_INVENTORY: [(u8, Field); 7] = [
    (5, Field::LldpMedHardwareRevision),
    (6, Field::LldpMedFirmwareRevision),
    (7, Field::LldpMedSoftwareRevision),
    (8, Field::LldpMedSerial),
    (9, Field::LldpMedManufacturer),
    (10, Field::LldpMedModel),
    (11, Field::LldpMedAssetId),
];

/// One TLV in checked form: its type, and its value's range in the LLDPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv {
    /// The 7-bit type.
    pub kind: u8,
    /// Offset of the value.
    pub start: usize,
    /// Offset after the value.
    pub end: usize,
}

/// Reads the TLV header at `at` and checks that its value fits in `b`.
pub fn tlv_at(b: &[u8], at: usize) -> Result<Tlv, DecodeError> {
    let h = b
        .get(at + field::HEADER.start..at + field::HEADER.end)
        .ok_or_else(|| DecodeError::truncated(LAYER, at, field::VALUE, b.len()))?;
    let word = u16::from_be_bytes([*h.first().unwrap_or(&0), *h.get(1).unwrap_or(&0)]);
    let kind = (word >> 9) as u8;
    let len = usize::from(word & 0x01ff);
    let start = at + field::VALUE;
    let end = start + len;
    if end > b.len() {
        return Err(DecodeError::truncated(
            LAYER,
            at,
            field::VALUE + len,
            b.len(),
        ));
    }
    Ok(Tlv { kind, start, end })
}

/// Structure test on an EtherType-0x88cc payload: a first TLV that is a Chassis ID with a
/// subtype and an ID of 1–255 bytes (802.1AB §8.5.2), within the frame.
pub fn probe(payload: &[u8]) -> Probe {
    match tlv_at(payload, 0) {
        Ok(t) if t.kind == tlv_type::CHASSIS_ID && (2..=256).contains(&(t.end - t.start)) => {
            Probe::Certain
        }
        _ => Probe::NotMine,
    }
}

fn invalid(offset: usize, what: &'static str) -> DecodeError {
    DecodeError::Invalid {
        layer: LAYER,
        offset,
        what,
    }
}

/// An IANA address family number (1 IPv4, 2 IPv6) and address bytes as an IP.
fn ip(family: u8, a: &[u8]) -> Option<IpAddr> {
    match (family, a.len()) {
        (1, 4) => <[u8; 4]>::try_from(a)
            .ok()
            .map(|o| Ipv4Addr::from(o).into()),
        (2, 16) => <[u8; 16]>::try_from(a)
            .ok()
            .map(|o| Ipv6Addr::from(o).into()),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(b.len().min(128) * 2);
    for byte in b.iter().take(128) {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// A chassis or port ID as text: a MAC subtype as a MAC, a network address subtype as an IP
/// (its first byte is the IANA family), anything else as the text sent.
fn id_text(subtype: u8, mac_subtype: u8, net_subtype: u8, id: &[u8]) -> String {
    if subtype == mac_subtype {
        if let Ok(m) = <[u8; 6]>::try_from(id) {
            return MacAddr(m).to_string();
        }
    }
    if subtype == net_subtype {
        if let Some((&family, a)) = id.split_first() {
            if let Some(ip) = ip(family, a) {
                return ip.to_string();
            }
        }
    }
    clean_text(id)
}

/// One fact per set bit of `bits`, named from `names` (bit 0 first).
fn bit_facts(bits: u16, names: &[&str], field: Field, facts: &mut Vec<Fact>) {
    for (i, name) in names.iter().enumerate() {
        if bits & (1 << i) != 0 {
            facts.push(Fact::new(field, *name));
        }
    }
}

fn push_text(field: Field, raw: &[u8], facts: &mut Vec<Fact>) {
    let v = clean_text(raw);
    if !v.is_empty() {
        facts.push(Fact::new(field, v));
    }
}

/// Pushes the facts of one LLDPDU (the payload after the EtherType), in TLV order. Facts found
/// before a malformed TLV are kept and the error returned.
pub fn extract(payload: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let b = payload;
    let mut at = 0;
    for n in 0.. {
        if at >= b.len() {
            // A frame cut before its End TLV: what it held is read.
            return Ok(());
        }
        if n >= MAX_TLVS {
            return Err(invalid(at, "too many TLVs"));
        }
        let t = tlv_at(b, at)?;
        let v = b.get(t.start..t.end).unwrap_or_default();
        match t.kind {
            tlv_type::END => return Ok(()),
            tlv_type::CHASSIS_ID | tlv_type::PORT_ID => {
                let Some((&subtype, id)) = v.split_first() else {
                    return Err(invalid(t.start, "ID TLV without a subtype"));
                };
                let (names, mac, net, id_field, sub_field) = if t.kind == tlv_type::CHASSIS_ID {
                    (
                        &CHASSIS_SUBTYPES,
                        4,
                        5,
                        Field::LldpChassisId,
                        Field::LldpChassisIdSubtype,
                    )
                } else {
                    (
                        &PORT_SUBTYPES,
                        3,
                        4,
                        Field::LldpPortId,
                        Field::LldpPortIdSubtype,
                    )
                };
                if let Some(name) = names.get(usize::from(subtype).wrapping_sub(1)) {
                    facts.push(Fact::new(sub_field, *name));
                }
                let text = id_text(subtype, mac, net, id);
                if !text.is_empty() {
                    facts.push(Fact::new(id_field, text));
                }
            }
            tlv_type::TTL => {
                let ttl = <[u8; 2]>::try_from(v).map_err(|_| invalid(t.start, "TTL length"))?;
                facts.push(Fact::new(
                    Field::LldpTtl,
                    u16::from_be_bytes(ttl).to_string(),
                ));
            }
            tlv_type::PORT_DESCRIPTION => push_text(Field::LldpPortDescription, v, facts),
            tlv_type::SYSTEM_NAME => push_text(Field::LldpSystemName, v, facts),
            tlv_type::SYSTEM_DESCRIPTION => push_text(Field::LldpSystemDescription, v, facts),
            tlv_type::SYSTEM_CAPABILITIES => {
                let c = <[u8; 4]>::try_from(v)
                    .map_err(|_| invalid(t.start, "system capabilities length"))?;
                let [s0, s1, e0, e1] = c;
                let system = u16::from_be_bytes([s0, s1]);
                let enabled = u16::from_be_bytes([e0, e1]);
                bit_facts(system, &CAPABILITIES, Field::LldpSystemCapabilities, facts);
                bit_facts(
                    enabled,
                    &CAPABILITIES,
                    Field::LldpEnabledCapabilities,
                    facts,
                );
            }
            tlv_type::MANAGEMENT_ADDRESS => {
                // The address string length counts the subtype byte (§8.5.9.2): 2–32.
                let len = usize::from(*v.get(field::MGMT_ADDR_LEN).unwrap_or(&0));
                if !(2..=32).contains(&len) {
                    return Err(invalid(t.start, "management address string length"));
                }
                let family = *v
                    .get(field::MGMT_SUBTYPE)
                    .ok_or_else(|| DecodeError::truncated(LAYER, t.start, 2, v.len()))?;
                let addr = v
                    .get(field::MGMT_ADDR..field::MGMT_SUBTYPE + len)
                    .ok_or_else(|| {
                        DecodeError::truncated(LAYER, t.start, 1 + len, t.end - t.start)
                    })?;
                let text = ip(family, addr).map_or_else(|| hex(addr), |ip| ip.to_string());
                facts.push(Fact::new(Field::LldpManagementAddress, text));
            }
            tlv_type::ORG_SPECIFIC => org_specific(t, v, facts)?,
            // Reserved types 9–126: skipped by their length, as §9.2.7.7.4 asks.
            _ => {}
        }
        at = t.end;
    }
    Ok(())
}

/// An organisationally specific TLV: only TIA's LLDP-MED capabilities and inventory are read.
fn org_specific(t: Tlv, v: &[u8], facts: &mut Vec<Fact>) -> Result<(), DecodeError> {
    let Some(oui) = v.get(field::ORG_OUI) else {
        return Err(DecodeError::truncated(
            LAYER,
            t.start,
            field::ORG_INFO,
            v.len(),
        ));
    };
    if oui != OUI_TIA {
        return Ok(());
    }
    let Some(&subtype) = v.get(field::ORG_SUBTYPE) else {
        return Err(DecodeError::truncated(
            LAYER,
            t.start,
            field::ORG_INFO,
            v.len(),
        ));
    };
    let info = v.get(field::ORG_INFO..).unwrap_or_default();
    if subtype == MED_CAPABILITIES_SUBTYPE {
        let [c0, c1, class] = <[u8; 3]>::try_from(info)
            .map_err(|_| invalid(t.start + field::ORG_INFO, "LLDP-MED capabilities length"))?;
        bit_facts(
            u16::from_be_bytes([c0, c1]),
            &MED_CAPABILITIES,
            Field::LldpMedCapabilities,
            facts,
        );
        if let Some(name) = MED_CLASSES.get(usize::from(class).wrapping_sub(1)) {
            facts.push(Fact::new(Field::LldpMedDeviceClass, *name));
        }
    } else if let Some(&(_, f)) = MED_INVENTORY.iter().find(|(s, _)| *s == subtype) {
        // TIA-1057 §10.2.6: inventory strings are at most 32 octets.
        if info.len() > 32 {
            return Err(invalid(
                t.start + field::ORG_INFO,
                "LLDP-MED inventory length",
            ));
        }
        push_text(f, info, facts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::MAX_VALUE_CHARS;
    use proptest::prelude::*;

    /// lldpd 1.0.16's LLDPDU (LLDP-MED class III with inventory), from tests/fixtures/lldp.pcap:
    /// the frame's payload after the EtherType.
    const LLDPD: &[u8] = include_bytes!("../testdata/lldp/lldpd-med.bin");
    /// lldpd's shutdown LLDPDU (TTL 0, chassis, port and End only).
    const SHUTDOWN: &[u8] = include_bytes!("../testdata/lldp/lldpd-shutdown.bin");

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

    #[test]
    fn lldpd_announces_itself() {
        let one = |f| values(LLDPD, f);
        assert_eq!(one(Field::LldpChassisId), ["02:57:41:52:44:1d"]);
        assert_eq!(one(Field::LldpChassisIdSubtype), ["mac_address"]);
        assert_eq!(one(Field::LldpPortId), ["02:57:41:52:44:1d"]);
        assert_eq!(one(Field::LldpPortIdSubtype), ["mac_address"]);
        assert_eq!(one(Field::LldpTtl), ["4"]);
        assert_eq!(one(Field::LldpPortDescription), ["vdev"]);
        assert_eq!(one(Field::LldpSystemName), ["wardtest-phone7.example"]);
        assert_eq!(
            one(Field::LldpSystemDescription),
            ["WardTestTel WT-7 IP Phone, firmware FW-2024.3"]
        );
        assert_eq!(
            one(Field::LldpSystemCapabilities),
            [
                "bridge",
                "wlan_access_point",
                "router",
                "telephone",
                "station_only"
            ]
        );
        assert_eq!(one(Field::LldpEnabledCapabilities), ["telephone"]);
        assert_eq!(one(Field::LldpManagementAddress), ["192.0.2.10"]);
        assert_eq!(one(Field::LldpMedDeviceClass), ["communication_endpoint"]);
        assert_eq!(
            one(Field::LldpMedCapabilities),
            [
                "capabilities",
                "network_policy",
                "location",
                "power_pse",
                "power_pd",
                "inventory"
            ]
        );
        assert_eq!(one(Field::LldpMedHardwareRevision), ["HW-B2"]);
        assert_eq!(one(Field::LldpMedFirmwareRevision), ["FW-2024.3"]);
        assert_eq!(one(Field::LldpMedSoftwareRevision), ["7.4.1"]);
        assert_eq!(one(Field::LldpMedSerial), ["WT7-000042"]);
        assert_eq!(one(Field::LldpMedManufacturer), ["WardTestTel"]);
        assert_eq!(one(Field::LldpMedModel), ["WT-7"]);
        assert_eq!(one(Field::LldpMedAssetId), ["ASSET-7781"]);
        // Every fact is LLDP's, and the IEEE 802.3 TLVs between them were skipped.
        assert!(facts(LLDPD)
            .iter()
            .all(|(f, _)| f.protocol() == Protocol::Lldp));
    }

    #[test]
    fn shutdown_lldpdu_has_ttl_zero() {
        assert_eq!(values(SHUTDOWN, Field::LldpTtl), ["0"]);
        assert!(values(SHUTDOWN, Field::LldpSystemName).is_empty());
    }

    #[test]
    fn probe_wants_a_chassis_id_first() {
        assert_eq!(probe(LLDPD), Probe::Certain);
        assert_eq!(probe(SHUTDOWN), Probe::Certain);
        // Port ID first, a chassis ID without content, or one longer than the frame.
        for bad in [
            &[0x04, 0x02, 0x03, 0x01][..],
            &[0x02, 0x00],
            &[0x02, 0x07, 0x04, 0x02],
            b"",
            &[0x02],
            b"\x0bMSH|^~\\&|",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(probe(bad), Probe::NotMine, "{bad:?}");
        }
    }

    #[test]
    fn other_organisations_tlvs_are_skipped_unread() {
        // An IEEE 802.1 TLV and a vendor's, then a TIA location TLV (a civic address): none
        // yields a fact, and a TIA model after them does.
        let mut b = vec![0x02, 0x07, 0x04, 2, 0x57, 0x41, 0x52, 0x44, 0x16];
        for (oui, sub, info) in [
            ([0x00, 0x80, 0xc2], 1u8, &b"\x00\x64"[..]),
            ([0x00, 0x00, 0x0c], 9, b"CANARY^ORGPATIENT"),
            (OUI_TIA, 3, b"\x02\x0bCANARY-ROOM-7"),
            (OUI_TIA, 10, b"WT-9"),
        ] {
            let len = 4 + info.len();
            b.push(0xfe | ((len >> 8) as u8 & 1));
            b.push(len as u8);
            b.extend_from_slice(&oui);
            b.push(sub);
            b.extend_from_slice(info);
        }
        b.extend_from_slice(&[0, 0]);
        let f = facts(&b);
        assert!(f.iter().all(|(_, v)| !v.contains("CANARY")), "{f:?}");
        assert_eq!(values(&b, Field::LldpMedModel), ["WT-9"]);
    }

    /// A trunk port's 200 IEEE 802.1 VLAN Name TLVs before the LLDP-MED inventory: still read.
    #[test]
    fn many_vlan_names_before_the_inventory() {
        let mut b = vec![0x02, 0x07, 0x04, 2, 0x57, 0x41, 0x52, 0x44, 0x16];
        for vid in 0..200u16 {
            b.extend_from_slice(&[0xfe, 0x0b, 0x00, 0x80, 0xc2, 0x03]);
            b.extend_from_slice(&vid.to_be_bytes());
            b.extend_from_slice(&[4, b'v', b'l', b'a', b'n']);
        }
        b.extend_from_slice(&[0xfe, 0x08]);
        b.extend_from_slice(&OUI_TIA);
        b.extend_from_slice(&[10, b'W', b'T', b'-', b'7']);
        assert_eq!(values(&b, Field::LldpMedModel), ["WT-7"]);
    }

    #[test]
    fn malformed_tlvs_are_errors_with_offsets_and_keep_earlier_facts() {
        // A TLV longer than the frame, after the chassis ID.
        let b = [
            0x02, 0x07, 0x04, 2, 0x57, 0x41, 0x52, 0x44, 0x16, 0x0a, 0x10, b'x',
        ];
        let mut out = Vec::new();
        assert!(matches!(
            extract(&b, &mut out),
            Err(DecodeError::Truncated { offset: 9, .. })
        ));
        assert_eq!(out.len(), 2);
        // A TTL of three bytes.
        let b = [0x06, 0x03, 0, 0, 0];
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid { offset: 2, .. })
        ));
        // Too many TLVs.
        let b = [0x12u8, 0x00].repeat(MAX_TLVS + 1);
        assert!(matches!(
            extract(&b, &mut Vec::new()),
            Err(DecodeError::Invalid {
                what: "too many TLVs",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn truncations_never_panic(cut in 0usize..=LLDPD.len()) {
            let t = LLDPD.get(..cut).unwrap();
            let mut out = Vec::new();
            let _ = extract(t, &mut out);
            let _ = probe(t);
            for f in &out {
                prop_assert!(f.value.chars().count() <= MAX_VALUE_CHARS);
            }
        }

        #[test]
        fn mutations_never_panic(at in 0usize..260, byte in any::<u8>()) {
            let mut m = LLDPD.to_vec();
            if let Some(x) = m.get_mut(at) { *x = byte; }
            let mut out = Vec::new();
            let _ = extract(&m, &mut out);
            let _ = probe(&m);
            prop_assert!(out.len() <= MAX_TLVS * 11);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = Vec::new();
            let _ = extract(&b, &mut out);
            let _ = probe(&b);
        }
    }
}
