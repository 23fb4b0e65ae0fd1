//! Differential test against Wireshark's LLDP and CDP dissectors (issue 17): on every fixture,
//! the set of values ward extracts for each LLDP/LLDP-MED and CDP field is exactly the set
//! tshark decodes from the same capture (subtypes and capability bits named as ward names them,
//! CDP software versions cut to their first line) — so on the fixtures without LLDP or CDP both
//! find nothing. The lldpd fixture is also compared with every frame re-tagged behind an
//! 802.1Q header, the path a switch's trunk port takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use ward_protocols::{cdp, lldp, Field, Protocol};
use ward_tests::{fact_set, fixture_path, manifest, run_capture};

type FieldSets = BTreeMap<String, BTreeSet<String>>;

fn tshark(args: &[&str], file: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is required for this test (scripts/test.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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
        for ((theirs, ours), values) in cols.iter().zip(row) {
            for v in values {
                let rendered = match *theirs {
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
        for ((theirs, ours), values) in cols.iter().zip(row) {
            for v in values {
                let rendered = match *theirs {
                    "cdp.capabilities" => bits(&v, &cdp::CAPABILITIES),
                    // tshark escapes a line break as `\n`.
                    "cdp.software_version" => {
                        vec![v.split("\\n").next().unwrap_or("").trim().to_owned()]
                    }
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
