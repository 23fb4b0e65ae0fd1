//! Glob patterns for contract product models, manufacturers and software versions, and for
//! vendor tokens' manufacturers.
//!
//! Contracts name products the way suppliers write them (`SOMATOM *`, `VA4?`), and CMMS exports
//! and device banners differ in case, so matching is a case-insensitive glob. Patterns are
//! compiled once into an anchored regex because the linker tests every device against every
//! contract.
//!
//! This module is the one definition of case-insensitive matching: case is folded for all of
//! Unicode (`Dräger*` matches `DRÄGER`, `σιεμενσ` matches `ΣΙΕΜΕΝΣ`), not ASCII only as in
//! SQLite's `LIKE`. The store therefore never filters by a glob in SQL: it asks
//! [`matches`] which of the stored names match and filters by those names, so a vendor's
//! device list and device detail cannot disagree.

use std::fmt;
use std::str::FromStr;

use regex::Regex;

/// A compiled case-insensitive glob: `*` matches any run of characters (also none), `?` exactly
/// one; everything else is literal (there is no escape: model names do not contain `*` or `?`).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty pattern would match only empty text, which is never what a contract means.
    #[error("empty pattern")]
    Empty,
    /// The regex engine refused the translation (in practice: size limits on huge patterns).
    #[error("pattern {pattern:?} cannot be compiled: {reason}")]
    Compile {
        /// The glob as written.
        pattern: String,
        /// The regex engine's explanation.
        reason: String,
    },
}

/// Whether `text` contains `needle`, ignoring case exactly as patterns do (the API's
/// "manufacturer contains" filter). `*` and `?` in `needle` are literal here; an empty needle is
/// contained in everything.
pub fn contains(text: &str, needle: &str) -> bool {
    Substring::new(needle).matches(text)
}

/// A compiled [`contains`] test, for checking one needle against many texts.
#[derive(Debug, Clone)]
pub struct Substring(Option<Regex>);

impl Substring {
    /// Compiles `needle`; a needle the regex engine refuses (size limits) is contained nowhere.
    pub fn new(needle: &str) -> Substring {
        let re = format!("(?is){}", regex::escape(needle));
        Substring(Regex::new(&re).ok())
    }

    /// Whether `text` contains the needle, case folded.
    pub fn matches(&self, text: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(text))
    }
}

/// Whether `glob` matches `text`, compiling each distinct glob once per thread. Linking and flag
/// evaluation test every device against every contract's patterns; compiling a regex per test
/// dominated evaluation at 100 000 devices. Invalid globs match nothing.
pub fn matches(glob: &str, text: &str) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Pattern>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if !c.contains_key(glob) {
            // Contract sets are small; the bound only guards against pathological input.
            if c.len() >= 4096 {
                c.clear();
            }
            c.insert(glob.to_string(), Pattern::new(glob).ok());
        }
        c.get(glob)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.matches(text))
    })
}

impl Pattern {
    /// Compiles `glob`; blank patterns are refused.
    pub fn new(glob: &str) -> Result<Pattern, PatternError> {
        if glob.trim().is_empty() {
            return Err(PatternError::Empty);
        }
        // (?s): a `*` must also cross line breaks, or a multi-line value would silently not match.
        let mut re = String::with_capacity(glob.len() * 2 + 8);
        re.push_str("(?is)\\A");
        let mut prev_star = false;
        for c in glob.chars() {
            match c {
                '*' if prev_star => {}
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
            prev_star = c == '*';
        }
        re.push_str("\\z");
        let regex = Regex::new(&re).map_err(|e| PatternError::Compile {
            pattern: glob.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Pattern {
            source: glob.to_owned(),
            regex,
        })
    }

    /// Whether the whole of `text` matches (not a substring search).
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard, so callers can use a cheaper exact comparison.
    pub fn is_literal(&self) -> bool {
        !self.source.contains(['*', '?'])
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::new(p).map(|p| p.matches(t)).unwrap_or(false)
    }

    #[test]
    fn globs_match_whole_text_case_insensitively() {
        assert!(m("SOMATOM *", "somatom Force"));
        assert!(m("SOMATOM *", "SOMATOM "));
        assert!(!m("SOMATOM *", "SOMATOM"));
        assert!(!m("SOMATOM", "SOMATOM Force"));
        assert!(!m("Force", "SOMATOM Force"));
        assert!(m("VA4?", "va40"));
        assert!(!m("VA4?", "VA4"));
        assert!(!m("VA4?", "VA401"));
        assert!(m("*", ""));
        assert!(m("a**b", "ab"));
        assert!(m("Ärztlich*", "ärztliche"));
    }

    #[test]
    fn case_is_folded_beyond_ascii() {
        assert!(m("Dräger*", "DRÄGER"));
        assert!(m("DRÄGER*", "drägerwerk"));
        assert!(m("*ÄGER*", "Dräger Medical"));
        assert!(m("ärzte*", "ÄRZTEWERK"));
        assert!(m("σιεμενσ", "ΣΙΕΜΕΝΣ"));
        assert!(m("Dr?ger", "DRÄGER"), "? is one character, not one byte");
        assert!(!m("Dräger*", "Drager"));
        assert!(matches("SIEMENS*", "Siemens Healthineers"));
        assert!(contains("Dräger Medical", "ÄGER MED"));
        assert!(contains("DRÄGER", "dräger"));
        assert!(contains("anything", ""));
        assert!(
            !contains("GE Healthcare", "G?"),
            "wildcards are literal in contains"
        );
        assert!(contains("100% sure", "0% S"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert!(m("2.1.*", "2.1.7"));
        assert!(!m("2.1.*", "2x1.7"));
        assert!(m("IntelliVue (MX*)", "intellivue (mx450)"));
        assert!(m("a+b[c]", "A+B[C]"));
        assert!(!m("a+b", "aab"));
        assert!(m("*", "line1\nline2"));
    }

    #[test]
    fn empty_patterns_are_refused() {
        assert_eq!(Pattern::new(""), Err(PatternError::Empty));
        assert_eq!(Pattern::new("  "), Err(PatternError::Empty));
    }

    #[test]
    fn keeps_the_source() {
        let p: Pattern = "Alaris*".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.as_str(), "Alaris*");
        assert_eq!(p.to_string(), "Alaris*");
        assert!(!p.is_literal());
        assert!(Pattern::new("GC").is_ok_and(|p| p.is_literal()));
    }
}
