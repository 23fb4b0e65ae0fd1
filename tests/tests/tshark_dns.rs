//! Differential test against Wireshark's DNS dissector (issue 17): on every fixture, the
//! question names and types of unicast DNS queries and the answer owner names of responses that
//! ward extracts are exactly what tshark decodes (`dns.qry.name`, `dns.qry.type`, the first
//! `dns.count.answers` of `dns.resp.name`). On every other fixture — mDNS, LLMNR and NetBIOS
//! share DNS's header — both find no unicast DNS, so the DNS probe steals nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

const FIELDS: [&str; 3] = ["dns.queried_name", "dns.query_type", "dns.answered_name"];

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

/// Question type mnemonics, from the IANA DNS parameters registry (RFC 3597 `TYPE<n>` for
/// the rest).
fn type_mnemonic(t: &str) -> String {
    let n: u16 = t.parse().unwrap_or_else(|_| panic!("qtype {t:?}"));
    let name = match n {
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
        _ => return format!("TYPE{n}"),
    };
    name.to_owned()
}

fn tshark_dns(file: &Path) -> FieldSets {
    let out = tshark(
        &[
            "-Y",
            "udp && dns && !mdns && !llmnr",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.qry.name",
            "-e",
            "dns.qry.type",
            "-e",
            "dns.count.answers",
            "-e",
            "dns.resp.name",
        ],
        file,
    );
    let mut sets = FieldSets::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        if matches!(col(0), "0" | "False") {
            sets.entry("dns.queried_name")
                .or_default()
                .insert(col(1).to_owned());
            sets.entry("dns.query_type")
                .or_default()
                .insert(type_mnemonic(col(2)));
            continue;
        }
        let answers: usize = col(3).parse().unwrap_or(0);
        // dns.resp.name lists the answer records first, then authority and additional.
        for name in col(4).split('\u{1}').take(answers) {
            if !name.is_empty() && name != "<Root>" {
                sets.entry("dns.answered_name")
                    .or_default()
                    .insert(name.to_owned());
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
fn dns_names_equal_tsharks_on_every_fixture() {
    let mut with_dns = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        let theirs = tshark_dns(&file);
        let mine = ours(&file);
        if mine != theirs {
            problems.push(format!(
                "{}: DNS differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        if fx.facts.iter().any(|f| f.field.starts_with("dns.")) {
            if theirs.is_empty() {
                problems.push(format!("{}: tshark decoded no DNS", fx.file));
            }
            with_dns += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(with_dns >= 1, "no DNS fixture compared");
}
