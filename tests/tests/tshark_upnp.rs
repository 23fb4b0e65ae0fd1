//! Differential test against Wireshark's XML dissector (issue 17): on every fixture whose
//! manifest lists UPnP device-description facts, the values ward extracts for each description
//! field are exactly those tshark's XML dissector shows as the text of the same elements
//! (children of a `<device>` under a `<root xmlns="urn:schemas-upnp-org:device-1-0">` of an HTTP
//! 200 response); on every other fixture and public capture ward finds none, so no other XML
//! or HTTP body is read as a description.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ward_tests::{fact_set, fixture_path, manifest, run_capture, tshark};

/// Element local name → ward field.
const ELEMENTS: [(&str, &str); 8] = [
    ("deviceType", "ssdp.device_type"),
    ("friendlyName", "ssdp.friendly_name"),
    ("manufacturer", "ssdp.manufacturer"),
    ("modelDescription", "ssdp.model_description"),
    ("modelName", "ssdp.model_name"),
    ("modelNumber", "ssdp.model_number"),
    ("serialNumber", "ssdp.serial_number"),
    ("UDN", "ssdp.udn"),
];

type FieldSets = BTreeMap<&'static str, BTreeSet<String>>;

/// The value of attribute `name` in one PDML line (`name="…"`), unescaped.
fn attr(line: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = line.find(&key)? + key.len();
    let rest = &line[at..];
    let raw = &rest[..rest.find('"')?];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The local name of an `xml.tag` show value (`<u:device attr="…">` → `device`).
fn local(show: &str) -> &str {
    let name = show
        .trim_start_matches('<')
        .split([' ', '>', '/'])
        .next()
        .unwrap_or("");
    name.rsplit(':').next().unwrap_or(name)
}

/// One `xml.tag` node of tshark's PDML tree.
struct Node {
    show: String,
    cdata: String,
    children: Vec<Node>,
}

/// tshark's XML trees of the HTTP 200 responses, rebuilt from PDML's nesting (each `<field>`
/// line is indented by its depth; `xml.tag` fields nest as the document's elements do and
/// `xml.cdata` fields hold their text).
fn xml_trees(file: &Path) -> Vec<Node> {
    let args: Vec<String> = [
        "-Y",
        "tcp && http.response.code == 200 && xml",
        "-T",
        "pdml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let pdml = tshark(&args, file);
    let mut roots = Vec::new();
    // (indent, node) of the open xml.tag fields, outermost first.
    let mut open: Vec<(usize, Node)> = Vec::new();
    let close_to = |open: &mut Vec<(usize, Node)>, roots: &mut Vec<Node>, indent: usize| {
        while open.last().is_some_and(|(i, _)| *i >= indent) {
            let (_, node) = open.pop().unwrap();
            match open.last_mut() {
                Some((_, parent)) => parent.children.push(node),
                None => roots.push(node),
            }
        }
    };
    for line in pdml.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim_start();
        if t.starts_with("<proto ") || t.starts_with("</proto>") || t.starts_with("<packet>") {
            close_to(&mut open, &mut roots, 0);
            continue;
        }
        if !t.starts_with("<field ") {
            continue;
        }
        match attr(t, "name").as_deref() {
            Some("xml.tag") => {
                close_to(&mut open, &mut roots, indent);
                open.push((
                    indent,
                    Node {
                        show: attr(t, "show").unwrap_or_default(),
                        cdata: String::new(),
                        children: Vec::new(),
                    },
                ));
            }
            Some("xml.cdata") => {
                close_to(&mut open, &mut roots, indent);
                if let Some((_, node)) = open.last_mut() {
                    node.cdata.push_str(&attr(t, "show").unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    close_to(&mut open, &mut roots, 0);
    roots
}

fn walk(node: &Node, in_device: bool, sets: &mut FieldSets) {
    for child in &node.children {
        let name = local(&child.show);
        if name == "device" {
            walk(child, true, sets);
        } else if let Some((_, field)) = ELEMENTS.iter().find(|(e, _)| in_device && *e == name) {
            let v = child.cdata.trim();
            if !v.is_empty() {
                sets.entry(field).or_default().insert(v.to_owned());
            }
        } else {
            walk(child, false, sets);
        }
    }
}

fn tshark_descriptions(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for root in xml_trees(file) {
        if local(&root.show) == "root" && root.show.contains("urn:schemas-upnp-org:device-1-0") {
            walk(&root, false, &mut sets);
        }
    }
    sets
}

fn ours(file: &Path) -> FieldSets {
    let mut sets = FieldSets::new();
    for f in fact_set(&run_capture(file)) {
        if let Some((_, name)) = ELEMENTS.iter().find(|(_, n)| *n == f.field) {
            sets.entry(name).or_default().insert(f.value);
        }
    }
    sets
}

#[test]
fn description_fields_equal_tsharks_and_appear_nowhere_else() {
    let mut compared = 0;
    let mut problems = Vec::new();
    for fx in manifest().fixtures {
        let file = fixture_path(&fx.file);
        let mine = ours(&file);
        let listed = fx
            .facts
            .iter()
            .any(|f| ELEMENTS.iter().any(|(_, n)| *n == f.field));
        if !listed {
            if !mine.is_empty() {
                problems.push(format!(
                    "{}: ward found description facts where the manifest lists none: {mine:?}",
                    fx.file
                ));
            }
            continue;
        }
        let theirs = tshark_descriptions(&file);
        if theirs.len() != ELEMENTS.len() {
            problems.push(format!(
                "{}: tshark decoded {} of the {} description fields: {theirs:?}",
                fx.file,
                theirs.len(),
                ELEMENTS.len()
            ));
        }
        if mine != theirs {
            problems.push(format!(
                "{}: description differs\n  ward:   {mine:?}\n  tshark: {theirs:?}",
                fx.file
            ));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared >= 1, "no UPnP description fixture compared");
}
