//! Fixed versions stated in remediation prose.
//!
//! CISA's medical advisories never use CSAF's structured `fixed` status: the fixed version, when
//! there is one, is a sentence in a remediation ("Medtronic recommends updating the Paceart
//! Optima system to v1.12"). [`stated_fix`] reads such a sentence only when it is unambiguous —
//! one version, next to a word that says it is the fix (update, upgrade, released, available…)
//! — and returns the sentence with it, so a report shows the parse as evidence. Two versions in
//! one sentence ("unable to upgrade to v24.11 … for users on version 24.06") are reported as
//! ambiguous, not picked from; a promise ("expected in an upcoming … Version 4.80") is marked
//! planned, not available.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// Which versions the sentence says are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// This version and later ("update to v1.12", "v14.0.4 or later", "from 8.2 and later").
    AtLeast,
    /// Only later versions ("versions later than 24.11").
    LaterThan,
}

/// What a remediation's text says about a fixed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fix", rename_all = "snake_case")]
pub enum FixText {
    /// One fixed version, stated unambiguously.
    Stated {
        /// The version as written (a trailing `*` footnote mark removed).
        version: String,
        /// At least it, or only later ones.
        bound: Bound,
        /// Announced for the future, not available yet.
        planned: bool,
        /// The sentence it was read from: the evidence.
        sentence: String,
    },
    /// A fix sentence with several versions: which is the fix is not decidable from the text.
    Ambiguous {
        /// The versions found.
        versions: Vec<String>,
        /// The sentence.
        sentence: String,
    },
    /// No sentence states a fixed version.
    NotStated,
}

fn version_re() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    // A dotted version, optionally after "v"/"V"; letters or a build tag may follow, and CISA's
    // footnote mark `*`. A constant pattern: the tests prove it compiles.
    RE.get_or_init(|| Regex::new(r"(?:\b[vV]\s?|\b)(\d+(?:\.\d+)+[A-Za-z0-9_]*)\*?").ok())
        .as_ref()
}

/// Words that make a sentence about a fix.
const FIX_WORDS: &[&str] = &[
    "update",
    "updating",
    "upgrade",
    "upgrading",
    "released",
    "available",
    "fix",
    "fixed",
    "prevents",
    "remediate",
    "remediates",
    "resolves",
    "resolved",
    "addresses",
    "patched",
];

/// Words that make the fix a promise.
const PLANNED_WORDS: &[&str] = &["upcoming", "expected", "planned", "will be released"];

/// Sentences of `text`: split at a line break, or a full stop, `!` or `?` followed by space or
/// the end (a version's dots are never followed by space, so "v1.12. Contact" splits after it).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let next_space = bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        let end = match b {
            b'\n' => true,
            b'.' | b'!' | b'?' => next_space,
            _ => false,
        };
        if end {
            if let Some(s) = text.get(start..=i) {
                if !s.trim().is_empty() {
                    out.push(s.trim());
                }
            }
            start = i + 1;
        }
    }
    if let Some(s) = text.get(start..) {
        if !s.trim().is_empty() {
            out.push(s.trim());
        }
    }
    out
}

/// Reads the fixed version a remediation's `details` state, if one sentence states exactly
/// one. The first sentence that speaks of a fix and names versions decides.
pub fn stated_fix(details: &str) -> FixText {
    for sentence in sentences(details) {
        let lower = sentence.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        if !FIX_WORDS.iter().any(|f| words.contains(f)) {
            continue;
        }
        let Some(re) = version_re() else {
            return FixText::NotStated;
        };
        // (version, byte where its match starts)
        let mut versions: Vec<(String, usize)> = Vec::new();
        // A network (202.114.4.0/24) or a range (8.0-8.1.1) is not one fixed version.
        let mut not_one = false;
        for c in re.captures_iter(sentence) {
            let (Some(whole), Some(m)) = (c.get(0), c.get(1)) else {
                continue;
            };
            let after = sentence[whole.end()..].chars().next();
            let before = sentence[..whole.start()].chars().next_back();
            not_one |= matches!(after, Some('/' | '-')) || before == Some('-');
            if !versions.iter().any(|v| v.0 == m.as_str()) {
                versions.push((m.as_str().to_owned(), whole.start()));
            }
        }
        if versions.is_empty() {
            continue;
        }
        if versions.len() > 1 || not_one {
            return FixText::Ambiguous {
                versions: versions.into_iter().map(|v| v.0).collect(),
                sentence: sentence.to_owned(),
            };
        }
        let (version, at) = versions.swap_remove(0);
        // "later than 24.11", "later than version 24.11": only later versions are fixed.
        let head: Vec<&str> = lower
            .get(..at)
            .unwrap_or("")
            .split_whitespace()
            .rev()
            .filter(|w| !matches!(*w, "version" | "versions" | "v"))
            .take(2)
            .collect();
        let bound = if head == ["than", "later"] {
            Bound::LaterThan
        } else {
            Bound::AtLeast
        };
        return FixText::Stated {
            version,
            bound,
            planned: PLANNED_WORDS.iter().any(|p| lower.contains(p)),
            sentence: sentence.to_owned(),
        };
    }
    FixText::NotStated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stated(details: &str) -> (String, Bound, bool) {
        match stated_fix(details) {
            FixText::Stated {
                version,
                bound,
                planned,
                sentence,
            } => {
                assert!(details.contains(&sentence));
                (version, bound, planned)
            }
            other => panic!("{details}: {other:?}"),
        }
    }

    /// The fix sentences of ../shared/advisories/public, as written there.
    #[test]
    fn the_fix_sentences_of_the_public_advisories() {
        assert_eq!(
            stated("Medtronic recommends updating the Paceart Optima system to v1.12."),
            ("1.12".into(), Bound::AtLeast, false)
        );
        assert_eq!(
            stated("Santesoft recommends users to mitigate these vulnerabilities by updating Sante DICOM Viewer Pro to v14.0.4 or later."),
            ("14.0.4".into(), Bound::AtLeast, false)
        );
        assert_eq!(
            stated("Welch Allyn Connex Spot Monitor: Version 1.52.01 (available October 16, 2023)"),
            ("1.52.01".into(), Bound::AtLeast, false)
        );
        assert_eq!(
            stated("Vue PACS version 12.2.8.410* released in October 2023 prevents this vulnerability."),
            ("12.2.8.410".into(), Bound::AtLeast, false)
        );
        assert_eq!(
            stated("Oxford Nanopore Technologies recommends users upgrade to MinKNOW Versions later than 24.11 to eliminate these vulnerabilities."),
            ("24.11".into(), Bound::LaterThan, false)
        );
        assert_eq!(
            stated("The fix is expected in an upcoming BD Viper LT system Version 4.80 software release."),
            ("4.80".into(), Bound::AtLeast, true)
        );
        assert_eq!(
            stated("Softneta recommends users update to v7.2.9.820 of MedDream PACS Server.Or patch their current system using Fix-v230712"),
            ("7.2.9.820".into(), Bound::AtLeast, false)
        );
    }

    #[test]
    fn the_pattern_compiles() {
        assert!(version_re().is_some());
    }

    #[test]
    fn two_versions_or_none_are_not_a_stated_fix() {
        assert!(matches!(
            stated_fix("If users are unable to upgrade to v24.11 to reduce risk from the remaining Authentication Token and Token Lock vulnerabilities, Oxford Nanopore advises the following additional measures for users on version 24.06:"),
            FixText::Ambiguous { .. }
        ));
        assert!(matches!(
            stated_fix("Patches have been released which will remediate the vulnerability for software versions 8.0-8.1.1."),
            FixText::Ambiguous { .. }
        ));
        assert_eq!(
            stated_fix("New product versions that mitigate these vulnerabilities are available as follows:"),
            FixText::NotStated
        );
        assert_eq!(
            stated_fix("Per FDA recommendation, CISA recommends users remove any Contec CMS8000 devices from their networks."),
            FixText::NotStated
        );
        assert_eq!(
            stated_fix("Block 202.114.4.0/24 at the firewall."),
            FixText::NotStated,
            "no fix word"
        );
        assert!(matches!(
            stated_fix("Update firewall rules to block 202.114.4.0/24."),
            FixText::Ambiguous { .. }
        ));
        assert_eq!(stated_fix(""), FixText::NotStated);
    }
}
