//! Differential test against Wireshark's LLDP and CDP dissectors (issue 17): on every fixture,
//! the set of values ward extracts for each LLDP/LLDP-MED and CDP field is exactly the set
//! tshark decodes from the same capture (subtypes and capability bits named as ward names them,
//! CDP software versions cut to their first line) — so on the fixtures without LLDP or CDP both
//! find nothing. The lldpd fixture is also compared with every frame re-tagged behind an
//! 802.1Q header, the path a switch's trunk port takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_protocols::{cdp, lldp, Field, Protocol};
use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

type FieldSets = BTreeMap<String, BTreeSet<String>>;

/// Each row of `fields` of the packets matching `filter`, each column split into its values.
fn rows(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut args = vec![
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=\u{1}",
    ];
    for f in fields {
        args.push("-e");
        args.push(f);
    }
    tshark(&args, file)
        .lines()
        .map(|line| {
            let mut cols: Vec<Vec<String>> = line
                .split('\t')
                .map(|c| {
                    c.split('\u{1}')
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .collect();
            cols.resize(fields.len(), Vec::new());
            cols
        })
        .collect()
}

/// Hex bytes (as tshark shows a byte field) as the Latin-1 text ward renders.
fn hex_text(hex: &str) -> String {
    let hex = hex.replace(':', "");
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    ward_protocols::evidence::clean_text(&bytes)
}

fn bits(hex: &str, names: &[&str]) -> Vec<String> {
    let v = u32::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap();
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| v & (1 << i) != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

const CHASSIS_SUBTYPES: [&str; 7] = [
    "chassis_component",
    "interface_alias",
    "port_component",
    "mac_address",
    "network_address",
    "interface_name",
    "local",
];
const PORT_SUBTYPES: [&str; 7] = [
    "interface_alias",
    "port_component",
    "mac_address",
    "network_address",
    "interface_name",
    "agent_circuit_id",
    "local",
];
const MED_CLASSES: [&str; 4] = [
    "generic_endpoint",
    "media_endpoint",
    "communication_endpoint",
    "network_connectivity",
];

fn subtype(v: &str, names: &[&str]) -> String {
    let i: usize = v.parse().unwrap();
    names[i - 1].to_owned()
}

/// tshark's LLDP dissector, named and rendered as ward does.
fn tshark_lldp(file: &Path) -> FieldSets {
    let cols = [
        ("lldp.chassis.subtype", "lldp.chassis_id_subtype"),
        ("lldp.chassis.id.mac", "lldp.chassis_id"),
        ("lldp.chassis.id", "lldp.chassis_id"),
        ("lldp.chassis.id.ip4", "lldp.chassis_id"),
        ("lldp.port.subtype", "lldp.port_id_subtype"),
        ("lldp.port.id.mac", "lldp.port_id"),
        ("lldp.port.id", "lldp.port_id"),
        ("lldp.port.id.ip4", "lldp.port_id"),
        ("lldp.time_to_live", "lldp.ttl"),
        ("lldp.port.desc", "lldp.port_description"),
        ("lldp.tlv.system.name", "lldp.system_name"),
        ("lldp.tlv.system.desc", "lldp.system_description"),
        ("lldp.tlv.system_cap", "lldp.system_capabilities"),
        ("lldp.tlv.enable_system_cap", "lldp.enabled_capabilities"),
        ("lldp.mgn.addr.ip4", "lldp.management_address"),
        ("lldp.mgn.addr.ip6", "lldp.management_address"),
        ("lldp.media.subtype.caps", "lldp.med_capabilities"),
        ("lldp.media.subtype.class", "lldp.med_device_class"),
        ("lldp.media.hardware", "lldp.med_hardware_revision"),
        ("lldp.media.firmware", "lldp.med_firmware_revision"),
        ("lldp.media.software", "lldp.med_software_revision"),
        ("lldp.media.sn", "lldp.med_serial"),
        ("lldp.media.manufacturer", "lldp.med_manufacturer"),
        ("lldp.media.model", "lldp.med_model"),
        ("lldp.media.asset", "lldp.med_asset_id"),
    ];
    let names: Vec<&str> = cols.iter().map(|(t, _)| *t).collect();
    let mut sets = FieldSets::new();
    for row in rows(file, "lldp", &names) {
        // tshark shows a locally assigned (subtype 7) ID as bytes, in hex; 802.1AB calls it an
        // alphanumeric string, and ward reads it as text.
        let local = |col: usize| row[col].first().map(String::as_str) == Some("7");
        let (chassis_local, port_local) = (local(0), local(4));
        for ((theirs, ours), values) in cols.iter().zip(row.clone()) {
            for v in values {
                let rendered = match *theirs {
                    "lldp.chassis.id" if chassis_local => vec![hex_text(&v)],
                    "lldp.port.id" if port_local => vec![hex_text(&v)],
                    "lldp.chassis.subtype" => vec![subtype(&v, &CHASSIS_SUBTYPES)],
                    "lldp.port.subtype" => vec![subtype(&v, &PORT_SUBTYPES)],
                    "lldp.tlv.system_cap" | "lldp.tlv.enable_system_cap" => {
                        bits(&v, &lldp::CAPABILITIES)
                    }
                    "lldp.media.subtype.caps" => bits(&v, &lldp::MED_CAPABILITIES),
                    "lldp.media.subtype.class" => vec![subtype(&v, &MED_CLASSES)],
                    _ => vec![v],
                };
                sets.entry((*ours).to_owned()).or_default().extend(rendered);
            }
        }
    }
    sets
}

/// tshark's CDP dissector, named and rendered as ward does. Wireshark files the addresses of
/// the Addresses and Management Addresses TLVs under one field, so they are compared together.
fn tshark_cdp(file: &Path) -> FieldSets {
    let cols = [
        ("cdp.deviceid", "cdp.device_id"),
        ("cdp.portid", "cdp.port_id"),
        ("cdp.platform", "cdp.platform"),
        ("cdp.software_version", "cdp.software_version"),
        ("cdp.capabilities", "cdp.capabilities"),
        ("cdp.native_vlan", "cdp.native_vlan"),
        ("cdp.nrgyz.ip_address", "cdp.address"),
    ];
    let names: Vec<&str> = cols.iter().map(|(t, _)| *t).collect();
    let mut sets = FieldSets::new();
    for row in rows(file, "cdp", &names) {
        for ((theirs, ours), mut values) in cols.iter().zip(row) {
            // tshark shows each line of the software version as one occurrence; ward keeps the
            // first line.
            if *theirs == "cdp.software_version" {
                values.truncate(1);
            }
            for v in values {
                let rendered = match *theirs {
                    "cdp.capabilities" => bits(&v, &cdp::CAPABILITIES),
                    _ => vec![v],
                };
                sets.entry((*ours).to_owned()).or_default().extend(rendered);
            }
        }
    }
    sets
}

fn ours(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        let field = Field::from_name(&f.field).unwrap();
        if matches!(field.protocol(), Protocol::Lldp | Protocol::Cdp) {
            let name = if field == Field::CdpManagementAddress {
                "cdp.address".to_owned()
            } else {
                f.field
            };
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

fn compare(label: &str, file: &Path, problems: &mut Vec<String>) -> bool {
    let mut theirs = tshark_lldp(file);
    theirs.extend(tshark_cdp(file));
    let mine = ours(file);
    if mine != theirs {
        problems.push(format!(
            "{label}: LLDP/CDP differ\n  ward:   {mine:?}\n  tshark: {theirs:?}"
        ));
    }
    !theirs.is_empty()
}

#[test]
fn lldp_and_cdp_fields_equal_tsharks_on_every_fixture() {
    let mut with_lldp = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        if compare(&fx.file, &file, &mut problems) {
            with_lldp += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(with_lldp >= 1, "no fixture with LLDP or CDP compared");
}

/// Rewrites a classic little-endian Ethernet pcap with an 802.1Q tag (VLAN `vid`) pushed into
/// every frame after the MAC addresses.
fn vlan_tagged(pcap: &[u8], vid: u16) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let hdr = &pcap[at..at + 16];
        let incl = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(hdr[12..16].try_into().unwrap());
        let frame = &pcap[at + 16..at + 16 + incl];
        out.extend_from_slice(&hdr[..8]);
        out.extend_from_slice(&((incl + 4) as u32).to_le_bytes());
        out.extend_from_slice(&(orig + 4).to_le_bytes());
        out.extend_from_slice(&frame[..12]);
        out.extend_from_slice(&[0x81, 0x00]);
        out.extend_from_slice(&vid.to_be_bytes());
        out.extend_from_slice(&frame[12..]);
        at += 16 + incl;
    }
    out
}

#[test]
fn lldp_and_cdp_behind_a_vlan_tag_equal_tsharks() {
    let src = std::fs::read(fixture_path("lldp.pcap")).unwrap();
    assert_eq!(
        &src[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "classic little-endian pcap"
    );
    let dir = std::env::temp_dir().join(format!("ward-tshark-lldp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tagged = dir.join("lldp-vlan100.pcap");
    std::fs::write(&tagged, vlan_tagged(&src, 100)).unwrap();
    let mut problems = Vec::new();
    let found = compare("lldp.pcap behind VLAN 100", &tagged, &mut problems);
    let result = run_capture(&tagged);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(found, "tshark decoded no LLDP/CDP behind the tag");
    assert!(result
        .evidence
        .iter()
        .filter(|e| matches!(e.protocol, Protocol::Lldp | Protocol::Cdp))
        .all(|e| e.endpoints.vlans == [100]));
}

fn tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let word = (u16::from(kind) << 9) | value.len() as u16;
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(value);
}

fn cdp_tlv(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// A switch's announcements in the shapes lldpd does not send: chassis IDs of the local and
/// network-address subtypes, an interface-name port ID, an IPv6 management address, LLDP-MED
/// class "network connectivity"; CDPv2 with a multi-line IOS version, a native VLAN and a
/// Management Addresses TLV. Strings as Cisco documents them.
fn switch_frames() -> Vec<Vec<u8>> {
    let src = [0x02, 0x57, 0x41, 0x52, 0x44, 0x1e];
    let mut frames = Vec::new();
    for (chassis_subtype, chassis) in [(7u8, &b"FOC1234X0YZ"[..]), (5, &[1, 192, 0, 2, 1][..])] {
        let mut p = Vec::new();
        tlv(&mut p, 1, &[&[chassis_subtype][..], chassis].concat());
        tlv(&mut p, 2, b"\x05GigabitEthernet1/0/24");
        tlv(&mut p, 3, &120u16.to_be_bytes());
        tlv(&mut p, 4, b"GigabitEthernet1/0/24");
        tlv(&mut p, 5, b"sw-core-1.example");
        tlv(
            &mut p,
            6,
            b"Cisco IOS Software, C3750E Software (C3750E-UNIVERSALK9-M), Version 15.2(4)E10",
        );
        tlv(&mut p, 7, &[0x00, 0x14, 0x00, 0x04]);
        let mut mgmt = vec![17, 2];
        mgmt.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        mgmt.extend_from_slice(&[2, 0, 0, 0, 1, 0]);
        tlv(&mut p, 8, &mgmt);
        tlv(&mut p, 127, &[0x00, 0x12, 0xbb, 1, 0x00, 0x03, 4]);
        tlv(&mut p, 127, &[0x00, 0x80, 0xc2, 1, 0, 100]);
        tlv(&mut p, 0, &[]);
        let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e];
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xcc]);
        f.extend_from_slice(&p);
        frames.push(f);
    }
    let mut c = cdp::SNAP_HEADER.to_vec();
    c.extend_from_slice(&[2, 180, 0, 0]);
    cdp_tlv(&mut c, 1, b"sw-core-1.example");
    cdp_tlv(
        &mut c,
        5,
        b"Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE11, RELEASE \
          SOFTWARE (fc3)\nTechnical Support: http://www.cisco.com/techsupport\nCopyright (c) \
          1986-2017 by Cisco Systems, Inc.",
    );
    cdp_tlv(&mut c, 6, b"cisco WS-C2960-24TT-L");
    cdp_tlv(&mut c, 3, b"GigabitEthernet0/1");
    cdp_tlv(&mut c, 4, &0x28u32.to_be_bytes());
    cdp_tlv(&mut c, 10, &100u16.to_be_bytes());
    let mut mgmt = 1u32.to_be_bytes().to_vec();
    mgmt.extend_from_slice(&[1, 1, 0xcc, 0, 4, 192, 0, 2, 1]);
    cdp_tlv(&mut c, 0x16, &mgmt);
    let mut f = vec![0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc];
    f.extend_from_slice(&src);
    f.extend_from_slice(&(c.len() as u16).to_be_bytes());
    f.extend_from_slice(&c);
    frames.push(f);
    frames
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn switch_shaped_lldp_and_cdp_equal_tsharks() {
    let dir = std::env::temp_dir().join(format!("ward-tshark-switch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switch.pcap");
    std::fs::write(&file, pcap(&switch_frames())).unwrap();
    let mut problems = Vec::new();
    let found = compare("switch-shaped frames", &file, &mut problems);
    let mine = ours(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(found);
    // The shapes were really exercised.
    for (field, value) in [
        ("lldp.chassis_id", "FOC1234X0YZ"),
        ("lldp.chassis_id", "192.0.2.1"),
        ("lldp.port_id", "GigabitEthernet1/0/24"),
        ("lldp.management_address", "2001:db8::1"),
        ("lldp.med_device_class", "network_connectivity"),
        ("cdp.native_vlan", "100"),
        ("cdp.address", "192.0.2.1"),
    ] {
        assert!(
            mine.get(field).is_some_and(|s| s.contains(value)),
            "{field}={value} not extracted: {mine:?}"
        );
    }
}
