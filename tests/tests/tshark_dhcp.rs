//! Differential test against Wireshark's DHCP dissector for the DHCPv4 identity options of
//! issue 17 (options 77 and 43): on every fixture, the user classes and the option-43
//! sub-option codes and printable values ward extracts from client messages are exactly what
//! tshark decodes (`dhcp.option.user_class.text` / `.data`, and `dhcp.option.value` of option
//! 43 split into RFC 2132 §8.4 sub-options here, as tshark leaves an unknown vendor's option 43
//! undissected).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

const FIELDS: [&str; 3] = [
    "dhcp.user_class",
    "dhcp.vendor_option_codes",
    "dhcp.vendor_option",
];

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

fn unhex(h: &str) -> Vec<u8> {
    let h: String = h.chars().filter(|c| *c != ':').collect();
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// Option 43's value as RFC 2132 §8.4 sub-options: (code, value) pairs, or none when the value
/// is not such a sequence.
fn sub_options(v: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            0 => i += 1,
            255 => break,
            code => {
                let Some(&n) = v.get(i + 1) else {
                    return Vec::new();
                };
                let Some(val) = v.get(i + 2..i + 2 + usize::from(n)) else {
                    return Vec::new();
                };
                out.push((code, val.to_vec()));
                i += 2 + usize::from(n);
            }
        }
    }
    out
}

fn tshark_dhcp(file: &Path) -> FieldSets {
    let out = tshark(
        &[
            "-Y",
            "dhcp.type == 1",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "dhcp.option.type",
            "-e",
            "dhcp.option.value",
            "-e",
            "dhcp.option.user_class.text",
            "-e",
            "dhcp.option.user_class.data",
        ],
        file,
    );
    let mut sets = FieldSets::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        for text in col(2).split('\u{1}').filter(|t| !t.is_empty()) {
            sets.entry("dhcp.user_class")
                .or_default()
                .insert(text.to_owned());
        }
        for data in col(3).split('\u{1}').filter(|t| !t.is_empty()) {
            sets.entry("dhcp.user_class")
                .or_default()
                .insert(latin1(&unhex(data)));
        }
        // dhcp.option.value has one entry per option that has a value (every type but pad and
        // end), in wire order: pair them to find option 43's.
        let types = col(0).split('\u{1}').filter(|t| !matches!(*t, "0" | "255"));
        for (t, raw) in types.zip(col(1).split('\u{1}')) {
            if t != "43" {
                continue;
            }
            let subs = sub_options(&unhex(raw));
            if subs.is_empty() {
                continue;
            }
            let codes: Vec<String> = subs.iter().map(|(c, _)| c.to_string()).collect();
            sets.entry("dhcp.vendor_option_codes")
                .or_default()
                .insert(codes.join(","));
            for (c, v) in subs {
                if !v.is_empty() && v.iter().all(|b| (0x20..0x7f).contains(b)) {
                    sets.entry("dhcp.vendor_option")
                        .or_default()
                        .insert(format!("{c}={}", latin1(&v)));
                }
            }
        }
    }
    sets
}

fn ours(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if let Some(name) = FIELDS.iter().find(|n| **n == f.field) {
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn dhcp_user_class_and_vendor_options_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("dhcp.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_dhcp(&file);
        let mine = ours(&file);
        if mine != theirs {
            problems.push(format!(
                "{}: DHCP options 77/43 differ\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        if FIELDS.iter().all(|f| theirs.contains_key(f)) {
            compared += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no fixture with options 77 and 43 compared");
}
