//! Differential test against Wireshark's dissectors: on every fixture, the DICOM AE titles,
//! implementation class UIDs and version names, the HL7 MSH fields, the TLS hello fields and
//! what mDNS responses announce (instances, service types, SRV targets, allow-listed TXT
//! values) that ward extracts are exactly the values tshark decodes from the same capture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

fn tshark_dicom(file: &Path) -> FieldSets {
    let fields = [
        ("dicom.assoc.ae.called", "dicom.called_ae"),
        ("dicom.assoc.ae.calling", "dicom.calling_ae"),
        ("dicom.userinfo.uid", "dicom.implementation_class_uid"),
        ("dicom.userinfo.version", "dicom.implementation_version"),
    ];
    let mut args = vec![
        "--enable-heuristic",
        "dicom_tcp",
        "-Y",
        "dicom",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=\u{1}",
    ];
    for (f, _) in &fields {
        args.push("-e");
        args.push(f);
    }
    let mut sets = FieldSets::new();
    for line in tshark(&args, file).lines() {
        for ((_, ours), col) in fields.iter().zip(line.split('\t')) {
            for v in col.split('\u{1}').map(str::trim).filter(|v| !v.is_empty()) {
                sets.entry(ours).or_default().insert(v.to_owned());
            }
        }
    }
    sets
}

/// Server ports of every TCP conversation with payload (the lower port of each pair), so HL7
/// can be decoded wherever it runs.
fn tcp_ports(file: &Path) -> BTreeSet<u16> {
    tshark(
        &[
            "-Y",
            "tcp.len>0",
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
        ],
        file,
    )
    .lines()
    .filter_map(|l| {
        let mut it = l.split('\t').map(|p| p.trim().parse::<u16>().ok());
        Some(it.next()??.min(it.next()??))
    })
    .collect()
}

fn tshark_hl7(file: &Path) -> FieldSets {
    let msh = [
        (3, "hl7.sending_application"),
        (4, "hl7.sending_facility"),
        (5, "hl7.receiving_application"),
        (6, "hl7.receiving_facility"),
        (9, "hl7.message_type"),
        (11, "hl7.processing_id"),
        (12, "hl7.version"),
        (21, "hl7.profile"),
    ];
    let decode_as: Vec<String> = tcp_ports(file)
        .into_iter()
        .map(|p| format!("tcp.port=={p},hl7"))
        .collect();
    let mut args: Vec<&str> = vec!["-V", "-Y", "hl7"];
    for d in &decode_as {
        args.push("-d");
        args.push(d);
    }
    let mut sets = FieldSets::new();
    let mut in_msh = false;
    for line in tshark(&args, file).lines() {
        let t = line.trim_start();
        if t.starts_with("MSH (") {
            in_msh = true;
            continue;
        }
        if !t.starts_with("field ") {
            in_msh = false;
            continue;
        }
        if !in_msh {
            continue;
        }
        let Some((num, value)) = t["field ".len()..].split_once(": ") else {
            continue;
        };
        let Ok(num) = num.parse::<u32>() else {
            continue;
        };
        if let Some((_, ours)) = msh.iter().find(|(n, _)| *n == num) {
            let reps: Vec<&str> = if num == 21 {
                value.split('~').collect()
            } else {
                vec![value]
            };
            for v in reps.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
                sets.entry(ours).or_default().insert(v.to_owned());
            }
        }
    }
    sets
}

fn ours(file: &Path, fields: &[&'static str]) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if let Some(name) = fields.iter().find(|n| **n == f.field) {
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn dicom_and_hl7_identity_fields_equal_tsharks() {
    let mut compared = (0, 0);
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        let has = |p: &str| fx.facts.iter().any(|f| f.field.starts_with(p));
        if has("dicom.") {
            let theirs = tshark_dicom(&file);
            let mine = ours(
                &file,
                &[
                    "dicom.called_ae",
                    "dicom.calling_ae",
                    "dicom.implementation_class_uid",
                    "dicom.implementation_version",
                ],
            );
            if theirs.is_empty() {
                problems.push(format!("{}: tshark decoded no DICOM", fx.file));
            }
            if mine != theirs {
                problems.push(format!(
                    "{}: DICOM differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                    fx.file
                ));
            }
            compared.0 += 1;
        }
        if has("hl7.") {
            let theirs = tshark_hl7(&file);
            let mine = ours(
                &file,
                &[
                    "hl7.sending_application",
                    "hl7.sending_facility",
                    "hl7.receiving_application",
                    "hl7.receiving_facility",
                    "hl7.message_type",
                    "hl7.processing_id",
                    "hl7.version",
                    "hl7.profile",
                ],
            );
            if theirs.is_empty() {
                problems.push(format!("{}: tshark decoded no HL7", fx.file));
            }
            if mine != theirs {
                problems.push(format!(
                    "{}: HL7 MSH differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                    fx.file
                ));
            }
            compared.1 += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        compared.0 >= 4 && compared.1 >= 4,
        "compared only {compared:?} DICOM/HL7 fixtures"
    );
}

/// TLS: the ClientHello server names and ALPN lists and the ServerHello versions ward extracts
/// are exactly tshark's. (tshark 4.0 has no JA4 field and no subject-only certificate fields;
/// the manifest builder checks those against tshark's cipher/extension lists and certificate
/// bytes.)
fn tshark_tls(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let hellos = tshark(
        &[
            "-Y",
            "tls.handshake.type == 1",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "tls.handshake.extensions_alpn_str",
        ],
        file,
    );
    for line in hellos.lines() {
        let mut cols = line.split('\t');
        let (sni, alpn) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
        if !sni.is_empty() {
            sets.entry("tls.server_name")
                .or_default()
                .insert(sni.to_owned());
        }
        for a in alpn.split(',').filter(|a| !a.is_empty()) {
            sets.entry("tls.alpn").or_default().insert(a.to_owned());
        }
    }
    let servers = tshark(
        &[
            "-Y",
            "tls.handshake.type == 2",
            "-T",
            "fields",
            "-e",
            "tls.handshake.version",
            "-e",
            "tls.handshake.extensions.supported_version",
        ],
        file,
    );
    for line in servers.lines() {
        let mut cols = line.split('\t');
        let legacy = cols.next().unwrap_or("");
        let selected = cols.next().filter(|s| !s.is_empty()).unwrap_or(legacy);
        let v = u16::from_str_radix(selected.trim_start_matches("0x"), 16).unwrap();
        sets.entry("tls.server_version")
            .or_default()
            .insert(ward_protocols::tls::version_name(v));
    }
    sets
}

#[test]
fn tls_hello_fields_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("tls.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_tls(&file);
        let mine = ours(
            &file,
            &["tls.server_name", "tls.alpn", "tls.server_version"],
        );
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no TLS", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: TLS differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no TLS fixture compared");
}

/// tshark's view of what mDNS responses announce: SRV owners split into instance, service and
/// protocol (`dns.srv.service`, `dns.srv.proto`, `dns.srv.name`), SRV targets, and TXT strings
/// whose key is on ward's allow-list.
fn tshark_mdns(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "mdns && dns.flags.response == 1",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "dns.srv.service",
            "-e",
            "dns.srv.proto",
            "-e",
            "dns.srv.name",
            "-e",
            "dns.srv.target",
            "-e",
            "dns.txt",
        ],
        file,
    );
    let mut add = |f: &'static str, v: &str| {
        if !v.is_empty() {
            sets.entry(f).or_default().insert(v.to_owned());
        }
    };
    for line in out.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1}').collect())
            .collect();
        let col = |i: usize| cols.get(i).cloned().unwrap_or_default();
        for ((inst, proto), name) in col(0).iter().zip(col(1)).zip(col(2)) {
            add("mdns.instance", inst);
            let label = name.split('.').next().unwrap_or("");
            add("mdns.service_type", &format!("{proto}.{label}"));
        }
        for t in col(3) {
            add("mdns.host_name", t);
        }
        for kv in col(4) {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let field = ward_protocols::mdns::TXT_KEYS
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, f)| f.name());
            if let Some(f) = field {
                add(f, v);
            }
        }
    }
    sets
}

#[test]
fn mdns_announced_fields_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("mdns.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_mdns(&file);
        let mine = ours(
            &file,
            &[
                "mdns.instance",
                "mdns.service_type",
                "mdns.host_name",
                "mdns.model",
                "mdns.manufacturer",
                "mdns.software_version",
                "mdns.serial",
            ],
        );
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no mDNS", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: mDNS differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no mDNS fixture compared");
}

/// tshark's view of what SSDP NOTIFYs and search responses say about their sender: its HTTP
/// dissector's `http.server` and `http.location`, and USN / NT / ST, which it leaves as raw
/// header lines. An M-SEARCH's ST (what the searcher looks for) is skipped, as ward skips it.
fn tshark_ssdp(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "ssdp && (http.request.method == \"NOTIFY\" || http.response.code == 200)",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "http.request.method",
            "-e",
            "http.server",
            "-e",
            "http.location",
            "-e",
            "http.unknown_header",
            "-e",
            "http.request.line",
            "-e",
            "http.response.line",
        ],
        file,
    );
    let mut add = |f: &'static str, v: &str| {
        if !v.is_empty() {
            sets.entry(f).or_default().insert(v.to_owned());
        }
    };
    for line in out.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1}').collect())
            .collect();
        let col = |i: usize| cols.get(i).cloned().unwrap_or_default();
        let notify = col(0).first() == Some(&"NOTIFY");
        for v in col(1) {
            add("ssdp.server", v.trim());
        }
        for v in col(2) {
            // ward keeps the URL's scheme://host:port only (issue 17: a path can carry anything).
            if let Some(o) = url_origin(v.trim()) {
                add("ssdp.location", o);
            }
        }
        for h in col(3).into_iter().chain(col(4)).chain(col(5)) {
            let Some((name, value)) = h.split_once(':') else {
                continue;
            };
            let value = value.trim_end_matches("\\r\\n").trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "usn" => add("ssdp.usn", value),
                "nt" if notify => add("ssdp.type", value),
                "st" if !notify => add("ssdp.type", value),
                _ => {}
            }
        }
    }
    sets
}

/// `scheme://authority` of an absolute URL without userinfo, as ward's SSDP decoder keeps it.
fn url_origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!scheme.is_empty() && !authority.is_empty() && !authority.contains('@'))
        .then(|| &url[..scheme.len() + 3 + end])
}

#[test]
fn ssdp_announced_fields_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("ssdp.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_ssdp(&file);
        let mine = ours(
            &file,
            &["ssdp.server", "ssdp.usn", "ssdp.type", "ssdp.location"],
        );
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no SSDP", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: SSDP differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no SSDP fixture compared");
}

/// tshark's `bytes` fields are hex (`57:61` or `5761`): the text they encode.
fn hex_text(hex: &str) -> String {
    let digits: String = hex.chars().filter(|c| *c != ':').collect();
    let bytes: Vec<u8> = (0..digits.len() / 2)
        .filter_map(|i| u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// tshark's view of the system group in SNMP GetResponses: binding names (`snmp.name`) matched
/// in order with string (`snmp.value.octets`, hex) and OID (`snmp.value.oid`) values.
fn tshark_snmp(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "snmp.data == 2",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "snmp.name",
            "-e",
            "snmp.value.octets",
            "-e",
            "snmp.value.oid",
        ],
        file,
    );
    for line in out.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1}').filter(|s| !s.is_empty()).collect())
            .collect();
        let col = |i: usize| cols.get(i).cloned().unwrap_or_default();
        let (mut octets, mut oids) = (col(1).into_iter(), col(2).into_iter());
        for name in col(0) {
            let (field, value) = match name {
                "1.3.6.1.2.1.1.1.0" => ("snmp.sys_descr", octets.next().map(hex_text)),
                "1.3.6.1.2.1.1.5.0" => ("snmp.sys_name", octets.next().map(hex_text)),
                "1.3.6.1.2.1.1.2.0" => ("snmp.sys_object_id", oids.next().map(str::to_owned)),
                _ => continue,
            };
            if let Some(v) = value {
                sets.entry(field).or_default().insert(v);
            }
        }
    }
    sets
}

#[test]
fn snmp_system_group_equals_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("snmp.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_snmp(&file);
        let mine = ours(
            &file,
            &["snmp.sys_descr", "snmp.sys_object_id", "snmp.sys_name"],
        );
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no SNMP", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: SNMP differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no SNMP fixture compared");
}

/// tshark's LLMNR dissector: question names of queries, and the owner names of A/AAAA answers
/// (`dns.resp.name` paired with `dns.resp.type`) of responses.
fn tshark_llmnr(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "llmnr",
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
            "dns.resp.name",
            "-e",
            "dns.resp.type",
        ],
        file,
    );
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        if matches!(col(0), "0" | "False") {
            sets.entry("llmnr.queried_name")
                .or_default()
                .insert(col(1).to_owned());
            continue;
        }
        for (name, rtype) in col(2).split('\u{1}').zip(col(3).split('\u{1}')) {
            if !name.is_empty() && matches!(rtype, "1" | "28") {
                sets.entry("llmnr.name")
                    .or_default()
                    .insert(name.to_owned());
            }
        }
    }
    sets
}

#[test]
fn llmnr_names_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("llmnr.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_llmnr(&file);
        let mine = ours(&file, &["llmnr.name", "llmnr.queried_name"]);
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no LLMNR", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: LLMNR differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no LLMNR fixture compared");
}

/// tshark's NBNS dissector: `nbns.name` (`NAME<xx>`, maybe followed by a description) of
/// registrations and refreshes, and of positive query responses with RA clear (the owner's own
/// answer); `nbns.nb_flags.group` tells a group name from a unique one.
fn tshark_nbns(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "nbns",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "nbns.flags.response",
            "-e",
            "nbns.flags.opcode",
            "-e",
            "nbns.flags.recavail",
            "-e",
            "nbns.flags.rcode",
            "-e",
            "nbns.name",
            "-e",
            "nbns.nb_flags.group",
        ],
        file,
    );
    for line in out.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        let response = matches!(col(0), "1" | "True");
        let claim = !response && matches!(col(1), "5" | "8" | "9" | "15");
        let owner = response
            && col(1) == "0"
            && matches!(col(2), "0" | "False" | "")
            && matches!(col(3), "0" | "");
        if !claim && !owner {
            continue;
        }
        let group = matches!(col(5).split('\u{1}').next(), Some("1" | "True"));
        for n in col(4).split('\u{1}') {
            let Some((name, rest)) = n.split_once('<') else {
                continue;
            };
            let suffix = rest.get(..2).unwrap_or("").to_ascii_lowercase();
            let name = name.trim_end().to_owned();
            if group {
                sets.entry("nbns.group").or_default().insert(name);
            } else {
                sets.entry("nbns.name").or_default().insert(name);
                sets.entry("nbns.suffix").or_default().insert(suffix);
            }
        }
    }
    sets
}

#[test]
fn nbns_names_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("nbns.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_nbns(&file);
        let mine = ours(&file, &["nbns.name", "nbns.suffix", "nbns.group"]);
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no NBNS", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: NBNS differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no NBNS fixture compared");
}

/// tshark's DHCPv6 dissector, client messages only: the Client Identifier's DUID (DUIDs pair
/// with options 1 and 2 in wire order) and its DUID-LLT link-layer address, option 16's
/// enterprise number and data strings, option 39's domain name (without tshark's root dot).
fn tshark_dhcpv6(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    let out = tshark(
        &[
            "-Y",
            "dhcpv6",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1}",
            "-e",
            "dhcpv6.msgtype",
            "-e",
            "dhcpv6.option.type",
            "-e",
            "dhcpv6.duid.bytes",
            "-e",
            "dhcpv6.duid.type",
            "-e",
            "dhcpv6.duidllt.link_layer_addr",
            "-e",
            "dhcpv6.vendorclass.enterprise",
            "-e",
            "dhcpv6.vendorclass.data",
            "-e",
            "dhcpv6.client_domain",
            "-e",
            "dhcpv6.duidll.link_layer_addr",
        ],
        file,
    );
    for line in out.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1}').filter(|v| !v.is_empty()).collect())
            .collect();
        let col = |i: usize| cols.get(i).cloned().unwrap_or_default();
        let client = col(0)
            .first()
            .is_some_and(|t| matches!(*t, "1" | "3" | "4" | "5" | "6" | "8" | "9" | "11"));
        if !client {
            continue;
        }
        let mut add = |f: &'static str, v: String| {
            sets.entry(f).or_default().insert(v);
        };
        let holders = col(1).into_iter().filter(|t| matches!(*t, "1" | "2"));
        let mut llt = col(4).into_iter();
        let mut ll = col(8).into_iter();
        for ((holder, duid), dtype) in holders.zip(col(2)).zip(col(3)) {
            // DUID-LLT (1) and DUID-LL (3) carry the link-layer address.
            let mac = match dtype {
                "1" => llt.next(),
                "3" => ll.next(),
                _ => None,
            };
            if holder == "1" {
                add("dhcpv6.duid", duid.replace(':', ""));
                if let Some(m) = mac {
                    add("dhcpv6.client_mac", m.to_owned());
                }
            }
        }
        for e in col(5) {
            add("dhcpv6.vendor_enterprise", e.to_owned());
        }
        for d in col(6) {
            add("dhcpv6.vendor_class", d.to_owned());
        }
        for d in col(7) {
            add("dhcpv6.fqdn", d.trim_end_matches('.').to_owned());
        }
    }
    sets
}

#[test]
fn dhcpv6_client_fields_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("dhcpv6.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let theirs = tshark_dhcpv6(&file);
        let mine = ours(
            &file,
            &[
                "dhcpv6.duid",
                "dhcpv6.client_mac",
                "dhcpv6.vendor_enterprise",
                "dhcpv6.vendor_class",
                "dhcpv6.fqdn",
            ],
        );
        if theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no DHCPv6", fx.file));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: DHCPv6 differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no DHCPv6 fixture compared");
}
