//! Entry points for the cargo-fuzz targets in `fuzz/` (and the corpus replay in
//! `tests/tests/fuzz_corpus.rs`): the collector's parsers of untrusted input. Each takes
//! arbitrary bytes and must return without panicking, whatever they hold; errors are the
//! expected outcome for most inputs.

use std::cmp::Ordering;

use crate::compliance::{fixes, version};
use crate::import::{advisories, assets, contracts, eox, kev, pattern, sbom};
use crate::ingest;

/// Longest input a harness looks at: the parsers are linear, so longer inputs add time per
/// execution, not coverage.
const MAX_INPUT: usize = 64 * 1024;

fn text(data: &[u8]) -> Option<&str> {
    core::str::from_utf8(data.get(..data.len().min(MAX_INPUT))?).ok()
}

/// A contract file: the first byte picks YAML, JSON or CSV, the rest is the file.
pub fn contracts(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let format = match sel % 3 {
        0 => contracts::Format::Yaml,
        1 => contracts::Format::Json,
        _ => contracts::Format::Csv,
    };
    if let Some(t) = text(rest) {
        let _ = contracts::parse_str(t, format, "fuzz.input");
    }
}

/// A CMMS asset export (CSV) with the default column names.
pub fn assets(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = assets::parse_str(t, &assets::ColumnMap::default(), "fuzz.csv");
    }
}

/// An agent's MQTT message: the first byte picks the topic (devices, status, or a malformed
/// one), the rest is the payload; the same bytes are also read as a JSON line of a replayed
/// `--output jsonl:` file.
pub fn observation(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let topic = match sel % 4 {
        0 => "ward/v1/site-a/agent-1/devices",
        1 => "ward/v1/site-a/agent-1/status",
        2 => "ward/v1/site-a/agent-1",
        _ => "ward/v2/site-a/agent-1/devices",
    };
    let _ = ingest::decode(
        topic,
        payload
            .get(..payload.len().min(MAX_INPUT))
            .unwrap_or(payload),
    );
    if let Some(t) = text(payload) {
        let _ = ingest::decode_line(t);
    }
}

/// A contract glob and a device value, split at the first NUL: compiling and matching must
/// stay linear (the regex engine guarantees it for what `Pattern` builds).
pub fn pattern(data: &[u8]) {
    let Some(t) = text(data) else {
        return;
    };
    let (glob, value) = t.split_once('\0').unwrap_or((t, ""));
    if let Ok(p) = pattern::Pattern::new(glob) {
        let _ = p.matches(value);
    }
    let _ = pattern::matches(glob, value);
}

/// A CSAF 2.0 advisory (JSON).
pub fn advisory(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = advisories::parse(t, "fuzz.json");
    }
}

/// A CISA KEV catalog (JSON).
pub fn kev(data: &[u8]) {
    if let Some(t) = text(data) {
        let _ = kev::parse(t, "fuzz.json");
    }
}

/// An OpenEoX document (JSON): the first byte picks whether the import names a product (odd:
/// `--vendor ACME --product "Scan 1" --version <2.0`, as a core document needs; even: none, as a
/// shell document needs), the rest is the document. Each statement's version is also matched
/// against a device version, as the evaluation does.
pub fn eox(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let binding = if sel % 2 == 1 {
        eox::Binding {
            vendor: Some("ACME".into()),
            product: Some("Scan 1".into()),
            version: Some("<2.0".into()),
        }
    } else {
        eox::Binding::default()
    };
    let Some(t) = text(rest) else {
        return;
    };
    if let Ok(statements) = eox::parse(t, "fuzz.json", &binding) {
        for s in &statements {
            let _ = s.key();
            if let Some(v) = &s.version {
                let _ = version::membership("1.0", v, false);
                let _ = version::membership("1.0", v, true);
            }
        }
    }
}

/// A CycloneDX SBOM (JSON); its PURLs and CPEs are also read as an advisory entry's and
/// matched against every component.
pub fn sbom(data: &[u8]) {
    let Some(t) = text(data) else {
        return;
    };
    let binding = sbom::Binding {
        contract_id: "C-1".into(),
        model: Some("M".into()),
        version: None,
    };
    if let Ok(s) = sbom::parse(t, "fuzz.json", &binding) {
        for c in s.components.iter().take(64) {
            let entry = advisories::Product {
                product_id: "P".into(),
                name: c.name.clone(),
                vendor: None,
                product: None,
                version: None,
                version_range: c.version.clone(),
                legacy: false,
                cpe: c.cpe.clone(),
                purl: c.purl.clone(),
                model_numbers: Vec::new(),
                skus: Vec::new(),
            };
            for other in s.components.iter().take(64) {
                let _ = crate::compliance::sbom::component_match(&entry, other);
            }
        }
    }
}

/// Up to three version strings separated by NUL bytes: the order must be reflexive,
/// antisymmetric and transitive wherever it answers (a violation panics, which is the bug the
/// fuzzer reports); each string is also read as a range, an exact version and a remediation
/// sentence.
pub fn versions(data: &[u8]) {
    let Some(t) = text(data) else {
        return;
    };
    let mut parts = t.splitn(3, '\0');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    for x in [a, b, c] {
        if version::Version::parse(x).is_ok() {
            assert_eq!(version::compare(x, x), Some(Ordering::Equal), "{x:?}");
        }
        let _ = fixes::stated_fix(x);
    }
    let ab = version::compare(a, b);
    assert_eq!(
        ab,
        version::compare(b, a).map(Ordering::reverse),
        "{a:?} {b:?}"
    );
    if let (Some(ab), Some(bc), Some(ac)) = (ab, version::compare(b, c), version::compare(a, c)) {
        if ab != Ordering::Greater && bc != Ordering::Greater {
            let strict = ab == Ordering::Less || bc == Ordering::Less;
            let want = if strict {
                Ordering::Less
            } else {
                Ordering::Equal
            };
            assert_eq!(ac, want, "{a:?} {b:?} {c:?}");
        }
    }
    let _ = version::membership(a, b, false);
    let _ = version::membership(a, b, true);
}
