//! Differential test against Wireshark's HTTP and SSH dissectors (issue 17): on every fixture
//! that carries HTTP or SSH, the set of values ward extracts for each HTTP/SSH field is exactly
//! the set tshark decodes; on every other fixture (DICOM, HL7, DHCP, the public captures) ward
//! finds no HTTP or SSH at all, so the new probes steal nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

const FIELDS: [&str; 7] = [
    "http.user_agent",
    "http.host",
    "http.server",
    "http.x_powered_by",
    "http.auth_realm",
    "ssh.banner",
    "ssh.software_version",
];

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

/// Values of `fields` in every packet, with every TCP server port decoded as `proto`.
fn tshark_fields(file: &Path, proto: &str, ports: &[u16], fields: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<String> = Vec::new();
    for p in ports {
        args.push("-d".into());
        args.push(format!("tcp.port=={p},{proto}"));
    }
    // Over TCP only: tshark's HTTP dissector also reads SSDP (HTTP over UDP), which ward
    // reads as SSDP (the upnp fixture has both).
    for a in [
        "-Y",
        "tcp",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=\u{1}",
    ] {
        args.push(a.into());
    }
    for f in fields {
        args.push("-e".into());
        args.push((*f).into());
    }
    let mut cols = vec![Vec::new(); fields.len()];
    for line in tshark(&args, file).lines() {
        for (col, v) in cols.iter_mut().zip(line.split('\t')) {
            col.extend(
                v.split('\u{1}')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    cols
}

/// The realm of a WWW-Authenticate value as tshark shows it (quoted form, as the fixtures use).
fn realm_of(challenge: &str) -> Option<String> {
    let lower = challenge.to_ascii_lowercase();
    let at = lower.find("realm=\"")? + "realm=\"".len();
    let rest = challenge.get(at..)?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn tshark_http(file: &Path, ports: &[u16]) -> FieldSets {
    let cols = tshark_fields(
        file,
        "http",
        ports,
        &[
            "http.user_agent",
            "http.host",
            "http.server",
            "http.www_authenticate",
            "http.response.line",
        ],
    );
    let mut sets = FieldSets::new();
    for (name, col) in ["http.user_agent", "http.host", "http.server"]
        .into_iter()
        .zip(&cols)
    {
        for v in col {
            sets.entry(name).or_default().insert(v.clone());
        }
    }
    for v in &cols[3] {
        if let Some(r) = realm_of(v) {
            sets.entry("http.auth_realm").or_default().insert(r);
        }
    }
    for line in &cols[4] {
        let line = line.trim_end_matches("\\r\\n");
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("x-powered-by") {
                sets.entry("http.x_powered_by")
                    .or_default()
                    .insert(value.trim().to_owned());
            }
        }
    }
    sets
}

fn tshark_ssh(file: &Path, ports: &[u16]) -> FieldSets {
    let mut sets = FieldSets::new();
    for banner in &tshark_fields(file, "ssh", ports, &["ssh.protocol"])[0] {
        sets.entry("ssh.banner").or_default().insert(banner.clone());
        // RFC 4253 §4.2: SSH-protoversion-softwareversion SP comments.
        if let Some(sw) = banner.splitn(3, '-').nth(2) {
            let sw = sw.split(' ').next().unwrap_or(sw);
            if !sw.is_empty() {
                sets.entry("ssh.software_version")
                    .or_default()
                    .insert(sw.to_owned());
            }
        }
    }
    sets
}

/// Server ports of the TCP conversations with payload (the lower port of each pair).
fn tcp_ports(file: &Path) -> Vec<u16> {
    let args: Vec<String> = [
        "-Y",
        "tcp.len>0",
        "-T",
        "fields",
        "-e",
        "tcp.srcport",
        "-e",
        "tcp.dstport",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let set: BTreeSet<u16> = tshark(&args, file)
        .lines()
        .filter_map(|l| {
            let mut it = l.split('\t').map(|p| p.trim().parse::<u16>().ok());
            Some(it.next()??.min(it.next()??))
        })
        .collect();
    set.into_iter().collect()
}

fn ours(file: &Path, prefix: &str) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if let Some(name) = FIELDS
            .iter()
            .find(|n| **n == f.field && n.starts_with(prefix))
        {
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn http_and_ssh_fields_equal_tsharks_and_appear_nowhere_else() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        let has = |p: &str| fx.facts.iter().any(|f| f.field.starts_with(p));
        for (prefix, decode) in [
            ("http.", tshark_http as fn(&Path, &[u16]) -> FieldSets),
            ("ssh.", tshark_ssh),
        ] {
            let mine = ours(&file, prefix);
            if has(prefix) {
                let theirs = decode(&file, &tcp_ports(&file));
                if theirs.is_empty() {
                    problems.push(format!("{}: tshark decoded no {prefix}", fx.file));
                }
                if mine != theirs {
                    problems.push(format!(
                        "{}: {prefix} differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                        fx.file
                    ));
                }
                compared += 1;
            } else if !mine.is_empty() {
                problems.push(format!(
                    "{}: ward found {prefix} facts where the manifest lists none: {mine:?}",
                    fx.file
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 2, "only {compared} HTTP/SSH fixtures compared");
}
