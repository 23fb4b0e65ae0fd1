//! Differential test against Wireshark for IEEE 11073 SDC discovery: on every fixture with SDC
//! facts, the endpoint reference addresses, types, transport addresses, location scope parts
//! and device classes that ward extracts from WS-Discovery announcements and answers are
//! exactly the values tshark's XML dissector shows for the same datagrams (SOAP-over-UDP has no
//! dissector of its own: tshark reads it as XML with its UDP heuristic on).
//!
//! tshark's PDML is read line by line (it writes one field per line): `xml.tag` fields nest like
//! the document's elements, with their `xml.attribute` (namespace declarations) and `xml.cdata`
//! (text, entities left escaped) as children. The semantics applied to that tree are
//! WS-Discovery 1.1's and IEEE 11073-20701 §9's, written out again here independently of
//! `ward_protocols::sdc`: the Action's last segment is the kind; a Hello, Bye or the single
//! ProbeMatch/ResolveMatch of an answer is read; Types QNames are resolved against the
//! declarations in scope; XAddrs keep `scheme://host:port`; the location scope's query and the
//! `sdc.cdc.type` code are percent-decoded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use ward_tests::{fact_set, fixture_path, manifest, run_capture};

const WSA: &str = "http://www.w3.org/2005/08/addressing";
const WSD: &str = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01";
const MDC_OID: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1";
const COMPARED: [&str; 10] = [
    "sdc.epr",
    "sdc.type",
    "sdc.xaddr",
    "sdc.device_class",
    "sdc.location_facility",
    "sdc.location_building",
    "sdc.location_floor",
    "sdc.location_room",
    "sdc.location_bed",
    "sdc.location_point_of_care",
];

fn known_prefix(ns: &str) -> Option<&'static str> {
    match ns {
        "http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01" => Some("dpws"),
        "http://standards.ieee.org/downloads/11073/11073-20702-2016" => Some("mdpws"),
        "http://standards.ieee.org/downloads/11073/11073-20701-2018" => Some("sdc"),
        WSD => Some("wsd"),
        _ => None,
    }
}

/// One element as tshark shows it.
#[derive(Debug, Default)]
struct El {
    name: String,
    ns: BTreeMap<String, String>,
    text: String,
    children: Vec<usize>,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// The XML documents of a capture's UDP datagrams: (arena, roots).
fn udp_documents(file: &Path) -> (Vec<El>, Vec<usize>) {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-o",
            "xml.heuristic:TRUE",
            "-o",
            "xml.heuristic_udp:TRUE",
            "-Y",
            "udp && xml",
            "-T",
            "pdml",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is required for this test (scripts/test.sh installs it): {e}")
        });
    assert!(out.status.success(), "tshark failed on {}", file.display());
    let pdml = String::from_utf8(out.stdout).unwrap();
    let mut arena: Vec<El> = Vec::new();
    let mut roots = Vec::new();
    // For each open <field>: the element it is (an xml.tag) or None.
    let mut open: Vec<Option<usize>> = Vec::new();
    for line in pdml.lines().map(str::trim) {
        if line == "</field>" {
            open.pop();
            continue;
        }
        if line.starts_with("<packet>") || line.starts_with("</proto>") {
            open.clear();
            continue;
        }
        if !line.starts_with("<field ") {
            continue;
        }
        let name = attr(line, "name").unwrap_or_default();
        let show = unescape(attr(line, "show").unwrap_or_default());
        let parent = open.iter().rev().find_map(|e| *e);
        let mut me = None;
        match (name, parent) {
            ("xml.tag", _) => {
                let tag = show.trim_start_matches('<');
                let end = tag.find([' ', '>', '/', '\t', '\n']).unwrap_or(tag.len());
                arena.push(El {
                    name: tag[..end].to_owned(),
                    ..El::default()
                });
                let id = arena.len() - 1;
                match parent {
                    Some(p) => arena[p].children.push(id),
                    None => roots.push(id),
                }
                me = Some(id);
            }
            ("xml.attribute", Some(p)) => {
                if let Some((k, v)) = show.split_once('=') {
                    let v = v.trim().trim_matches(['"', '\'']).to_owned();
                    if k == "xmlns" {
                        arena[p].ns.insert(String::new(), v);
                    } else if let Some(prefix) = k.strip_prefix("xmlns:") {
                        arena[p].ns.insert(prefix.to_owned(), v);
                    }
                }
            }
            ("xml.cdata", Some(p)) => arena[p].text.push_str(&show),
            _ => {}
        }
        if !line.ends_with("/>") {
            open.push(me);
        }
    }
    (arena, roots)
}

/// Namespace and local name of `el` under `scope` (extended by its own declarations).
fn resolve(
    el: &El,
    scope: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, String, String) {
    let mut s = scope.clone();
    s.extend(el.ns.clone());
    let (prefix, local) = el.name.rsplit_once(':').unwrap_or(("", &el.name));
    let ns = s.get(prefix).cloned().unwrap_or_default();
    (s, ns, local.to_owned())
}

fn text(el: &El) -> String {
    // tshark leaves the document's entity references in: `&amp;` is `&`.
    unescape(&el.text).trim().to_owned()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_match(
    arena: &[El],
    id: usize,
    scope: &BTreeMap<String, String>,
    add: &mut impl FnMut(&'static str, String),
) {
    for &c in &arena[id].children {
        let (s, ns, local) = resolve(&arena[c], scope);
        match (ns.as_str(), local.as_str()) {
            (WSA, "EndpointReference") => {
                for &a in &arena[c].children {
                    let (_, ans, alocal) = resolve(&arena[a], &s);
                    if ans == WSA && alocal == "Address" {
                        add("sdc.epr", text(&arena[a]));
                    }
                }
            }
            (WSD, "Types") => {
                for q in text(&arena[c]).split_whitespace() {
                    let (prefix, name) = q.rsplit_once(':').unwrap_or(("", q));
                    if let Some(uri) = s.get(prefix) {
                        add(
                            "sdc.type",
                            match known_prefix(uri) {
                                Some(p) => format!("{p}:{name}"),
                                None => format!("{{{uri}}}{name}"),
                            },
                        );
                    }
                }
            }
            (WSD, "XAddrs") => {
                for u in text(&arena[c]).split_whitespace() {
                    if let Some((scheme, rest)) = u.split_once("://") {
                        let auth = rest.split(['/', '?', '#']).next().unwrap_or_default();
                        let host = auth.rsplit('@').next().unwrap_or_default();
                        if !host.is_empty() {
                            add("sdc.xaddr", format!("{}://{host}", scheme.to_lowercase()));
                        }
                    }
                }
            }
            (WSD, "Scopes") => {
                for sc in text(&arena[c]).split_whitespace() {
                    let (scheme, rest) = sc.split_once(':').unwrap_or((sc, ""));
                    if scheme.eq_ignore_ascii_case("sdc.ctxt.loc") {
                        let Some((_, query)) = rest.split_once('?') else {
                            continue;
                        };
                        for pair in query.split('#').next().unwrap_or_default().split('&') {
                            let Some((k, v)) = pair.split_once('=') else {
                                continue;
                            };
                            let field = match k {
                                "fac" => "sdc.location_facility",
                                "bldng" => "sdc.location_building",
                                "flr" => "sdc.location_floor",
                                "rm" => "sdc.location_room",
                                "bed" => "sdc.location_bed",
                                "poc" => "sdc.location_point_of_care",
                                _ => continue,
                            };
                            add(field, percent_decode(v));
                        }
                    } else if scheme.eq_ignore_ascii_case("sdc.cdc.type") {
                        let parts: Vec<&str> =
                            rest.strip_prefix('/').unwrap_or(rest).split('/').collect();
                        if let [cs, _, code] = parts[..] {
                            let (cs, code) = (percent_decode(cs), percent_decode(code));
                            if !code.is_empty() {
                                add(
                                    "sdc.device_class",
                                    if cs.is_empty() || cs == MDC_OID {
                                        code
                                    } else {
                                        format!("{cs}#{code}")
                                    },
                                );
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

fn tshark_sdc(file: &Path) -> (FieldSets, usize) {
    let (arena, roots) = udp_documents(file);
    let mut sets = FieldSets::new();
    let mut messages = 0;
    let mut add = |f: &'static str, v: String| {
        if !v.is_empty() {
            sets.entry(f).or_default().insert(v);
        }
    };
    for root in roots {
        // Walk depth first with the namespaces in scope, finding Action and the body element.
        let mut stack = vec![(root, BTreeMap::new())];
        let mut action = None;
        let mut bodies = Vec::new();
        while let Some((id, scope)) = stack.pop() {
            let (s, ns, local) = resolve(&arena[id], &scope);
            if ns == WSA && local == "Action" {
                action = Some(text(&arena[id]));
            }
            if ns == WSD {
                bodies.push((id, scope.clone(), local));
            }
            for &c in arena[id].children.iter().rev() {
                stack.push((c, s.clone()));
            }
        }
        let Some(kind) =
            action.and_then(|a| Some(a.strip_prefix(WSD)?.strip_prefix('/')?.to_owned()))
        else {
            continue;
        };
        messages += 1;
        let Some((id, scope, _)) = bodies.into_iter().find(|(_, _, l)| *l == kind) else {
            continue;
        };
        match kind.as_str() {
            "Hello" | "Bye" => read_match(&arena, id, &scope, &mut add),
            "ProbeMatches" | "ResolveMatches" => {
                let (s, _, _) = resolve(&arena[id], &scope);
                let matches: Vec<usize> = arena[id]
                    .children
                    .iter()
                    .copied()
                    .filter(|&c| {
                        let (_, ns, local) = resolve(&arena[c], &s);
                        ns == WSD && local == kind[..kind.len() - 2]
                    })
                    .collect();
                // Several matches: a proxy answering for other devices.
                if let [one] = matches[..] {
                    read_match(&arena, one, &s, &mut add);
                }
            }
            _ => {}
        }
    }
    (sets, messages)
}

fn ours(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if let Some(name) = COMPARED.iter().find(|n| **n == f.field) {
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn sdc_discovery_fields_equal_tsharks() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        if !fx.facts.iter().any(|f| f.field.starts_with("sdc.")) {
            continue;
        }
        let file = fixture_path(&fx.file);
        let (theirs, messages) = tshark_sdc(&file);
        let mine = ours(&file);
        if messages == 0 || theirs.is_empty() {
            problems.push(format!("{}: tshark decoded no WS-Discovery", fx.file));
        }
        for f in ["sdc.epr", "sdc.type", "sdc.xaddr", "sdc.location_facility"] {
            if !theirs.contains_key(f) {
                problems.push(format!("{}: tshark shows no {f}", fx.file));
            }
        }
        if mine != theirs {
            problems.push(format!(
                "{}: SDC discovery differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no SDC fixture compared");
}
