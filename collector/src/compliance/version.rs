//! The order of medical-device software versions, and whether a version lies in an advisory's
//! range.
//!
//! Vendors write versions in many schemes: dotted numbers (`1.52.01`), letter suffixes
//! (`14.0.3a`), build tags (`4.2.0_Build_9`), Siemens-style `VA30A`, HP-style `B.00.05`, a
//! leading `v`. Advisories write ranges as CISA free text (`<=1.52`, `>= 1.1 | <= 1.3.2`) or as
//! PURL `vers:` strings (`vers:generic/>=1.0|<2.0`, `vers:all/*`). A wrong answer either way is
//! costly — a vulnerable pump reported clean, or a patched one reported overdue — so the order is
//! deliberately partial: [`compare`] answers `None` when two strings are not in the same scheme
//! (`2.0` against `VA30A`, `9.x model 35700BAX3` against `9.2`), and [`Range::contains`] reports
//! [`Membership::NotComparable`] with both strings instead of guessing.
//!
//! The order, token by token (a version is split into runs of digits and runs of letters;
//! `.`, `-`, `_`, `+`, `~` and spaces only separate, case is ignored):
//! * numbers compare as numbers of any length (`9` < `10`, `01` = `1`);
//! * words compare alphabetically (`VA30A` < `VA30B` < `VB10A`);
//! * a number against a word is not comparable, except that a pre-release word (`dev`,
//!   `alpha`, `beta`, `pre`, `preview`, `rc`, `snapshot`) sorts before any number;
//! * when one version runs out, it is padded with zeros: `1.52` < `1.52.01`, `1.0` = `1.0.0`,
//!   `1.0` < `1.0a`, `4.2.0` < `4.2.0_Build_9`, but `1.0-rc1` < `1.0`.
//!
//! Strings with other characters (parentheses, slashes, commas…) are free text, not versions.

use std::cmp::Ordering;
use std::fmt;

/// Longer strings are not versions; the bound keeps comparison cost bounded on hostile input.
const MAX_LEN: usize = 128;

/// Words that mark a release before the plain version, in their conventional order.
const PRE_RELEASE: &[&str] = &["dev", "snapshot", "alpha", "beta", "pre", "preview", "rc"];

/// One token of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Digits without leading zeros (`"0"` for zero), compared as a number of any size.
    Num(String),
    /// A pre-release word, by its rank in [`PRE_RELEASE`], then a trailing number if glued
    /// (`rc1`) is a separate token.
    Pre(usize),
    /// Any other run of letters, lower-cased.
    Word(String),
}

/// A version string split for comparison. Equality is the order's: `1.0` equals `1.0.0`.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    tokens: Vec<Token>,
}

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Nothing but separators.
    #[error("empty version")]
    Empty,
    /// Longer than any real version.
    #[error("longer than {MAX_LEN} characters")]
    TooLong,
    /// A character no version scheme here uses.
    #[error("{0:?} is not part of a version (free text)")]
    FreeText(char),
}

impl Version {
    /// Splits `text` (surrounding space and a leading `v` before a digit ignored).
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let t = text.trim();
        if t.len() > MAX_LEN {
            return Err(VersionError::TooLong);
        }
        let body = match t.strip_prefix(['v', 'V']) {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => t,
        };
        let mut tokens = Vec::new();
        let mut chars = body.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if c.is_ascii_digit() {
                let mut end = start;
                while let Some(&(i, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = i + 1;
                    chars.next();
                }
                let digits = body[start..end].trim_start_matches('0');
                tokens.push(Token::Num(if digits.is_empty() {
                    "0".into()
                } else {
                    digits.into()
                }));
            } else if c.is_ascii_alphabetic() {
                let mut end = start;
                while let Some(&(i, a)) = chars.peek() {
                    if !a.is_ascii_alphabetic() {
                        break;
                    }
                    end = i + 1;
                    chars.next();
                }
                let word = body[start..end].to_ascii_lowercase();
                tokens.push(match PRE_RELEASE.iter().position(|p| *p == word) {
                    Some(rank) => Token::Pre(rank),
                    None => Token::Word(word),
                });
            } else if matches!(c, '.' | '-' | '_' | '+' | '~' | ' ') {
                chars.next();
            } else {
                return Err(VersionError::FreeText(c));
            }
        }
        if tokens.is_empty() {
            return Err(VersionError::Empty);
        }
        Ok(Version {
            text: t.to_owned(),
            tokens,
        })
    }

    /// The string as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The order between two versions; `None` when their schemes differ.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        let n = self.tokens.len().max(other.tokens.len());
        for i in 0..n {
            let o = cmp_token(self.tokens.get(i), other.tokens.get(i))?;
            if o != Ordering::Equal {
                return Some(o);
            }
        }
        Some(Ordering::Equal)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Compares two version strings; `None` when either is not a version or their schemes differ.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Version::parse(a).ok()?.compare(&Version::parse(b).ok()?)
}

/// Two tokens at the same place; `None` stands for the padding of a version that ran out.
fn cmp_token(a: Option<&Token>, b: Option<&Token>) -> Option<Ordering> {
    use Token::{Num, Pre, Word};
    let zero = |n: &str| n == "0";
    Some(match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(Num(x)), Some(Num(y))) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Some(Word(x)), Some(Word(y))) => x.cmp(y),
        (Some(Pre(x)), Some(Pre(y))) => x.cmp(y),
        // Padding is a zero…
        (None, Some(Num(y))) => {
            if zero(y) {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        }
        (Some(Num(x)), None) => {
            if zero(x) {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
        // …that comes before a suffix word (`1.0` < `1.0a`) and after a pre-release (`1.0rc`).
        (None, Some(Word(_))) | (Some(Pre(_)), None) => Ordering::Less,
        (Some(Word(_)), None) | (None, Some(Pre(_))) => Ordering::Greater,
        (Some(Pre(_)), Some(Num(_) | Word(_))) => Ordering::Less,
        (Some(Num(_) | Word(_)), Some(Pre(_))) => Ordering::Greater,
        // A number against a word: different schemes (`9.2` against `9.x`, `2.0` against `VA30`).
        (Some(Num(_)), Some(Word(_))) | (Some(Word(_)), Some(Num(_))) => return None,
    })
}

/// A comparison operator of a range constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=` (or no operator)
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "=",
            Op::Ne => "!=",
        }
    }

    /// Whether `v` (compared with the bound as `o`) satisfies the constraint.
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
        }
    }
}

/// One `op version` of a range.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// The operator.
    pub op: Op,
    /// The bound.
    pub version: Version,
}

/// Which versions an advisory's product entry covers.
#[derive(Debug, Clone)]
pub enum Range {
    /// Every version (`vers:all/*`, `vers:generic/*`, `*`).
    All,
    /// Constraints with the PURL vers semantics (a `|`-separated list).
    Constraints {
        /// The `vers:` scheme, when the string was written as one.
        scheme: Option<String>,
        /// Sorted by bound.
        constraints: Vec<Constraint>,
    },
}

/// Why a range string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `vers:` without `scheme/constraints`.
    #[error("a vers range is written vers:<scheme>/<constraints>")]
    VersSyntax,
    /// An empty constraint (`>=1.0||<2.0`).
    #[error("empty constraint")]
    EmptyConstraint,
    /// A bound that is not a version.
    #[error("bound {bound:?}: {error}")]
    Bound {
        /// The bound as written.
        bound: String,
        /// Why it is not a version.
        error: VersionError,
    },
    /// Two bounds in different schemes, so the constraints cannot be ordered.
    #[error("bounds {0:?} and {1:?} are not comparable")]
    Unordered(String, String),
    /// More constraints than any real range has.
    #[error("more than 32 constraints")]
    TooMany,
}

impl Range {
    /// Reads a CSAF `product_version_range`: a `vers:` string or CISA's free form (`<=1.52`,
    /// `<= 1.11`, `>= 1.1 | <= 1.3.2`, `*`).
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let t = text.trim();
        let (scheme, body) = match t.strip_prefix("vers:") {
            Some(rest) => {
                let (scheme, body) = rest.split_once('/').ok_or(RangeError::VersSyntax)?;
                if scheme.is_empty() {
                    return Err(RangeError::VersSyntax);
                }
                (Some(scheme.to_ascii_lowercase()), body)
            }
            None => (None, t),
        };
        if body.trim() == "*" {
            return Ok(Range::All);
        }
        let parts: Vec<&str> = body.split('|').collect();
        if parts.len() > 32 {
            return Err(RangeError::TooMany);
        }
        let mut constraints = Vec::with_capacity(parts.len());
        for part in parts {
            let p = part.trim();
            if p.is_empty() {
                return Err(RangeError::EmptyConstraint);
            }
            let (op, bound) = [
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("!=", Op::Ne),
                ("<", Op::Lt),
                (">", Op::Gt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(s, op)| p.strip_prefix(s).map(|rest| (*op, rest)))
            .unwrap_or((Op::Eq, p));
            let version = Version::parse(bound).map_err(|error| RangeError::Bound {
                bound: bound.trim().to_owned(),
                error,
            })?;
            constraints.push(Constraint { op, version });
        }
        // vers ranges are meant sorted; sorting needs every pair of bounds comparable.
        for (i, a) in constraints.iter().enumerate() {
            for b in &constraints[i + 1..] {
                if a.version.compare(&b.version).is_none() {
                    return Err(RangeError::Unordered(
                        a.version.to_string(),
                        b.version.to_string(),
                    ));
                }
            }
        }
        constraints.sort_by(|a, b| a.version.compare(&b.version).unwrap_or(Ordering::Equal));
        Ok(Range::Constraints {
            scheme,
            constraints,
        })
    }

    /// A CSAF `product_version`: exactly that version.
    pub fn exact(text: &str) -> Result<Range, RangeError> {
        let version = Version::parse(text).map_err(|error| RangeError::Bound {
            bound: text.trim().to_owned(),
            error,
        })?;
        Ok(Range::Constraints {
            scheme: None,
            constraints: vec![Constraint {
                op: Op::Eq,
                version,
            }],
        })
    }

    /// Whether `version` is in the range, following the vers algorithm: `=` and `!=` decide
    /// first; then a version below a leading `<`/`<=`, above a trailing `>`/`>=`, or between a
    /// `>`/`>=` and the `<`/`<=` that follows it is in.
    pub fn contains(&self, version: &Version) -> Result<bool, (String, String)> {
        let constraints = match self {
            Range::All => return Ok(true),
            Range::Constraints { constraints, .. } => constraints,
        };
        let mut orders = Vec::with_capacity(constraints.len());
        for c in constraints {
            let o = version
                .compare(&c.version)
                .ok_or_else(|| (version.to_string(), c.version.to_string()))?;
            orders.push(o);
        }
        for (c, &o) in constraints.iter().zip(&orders) {
            match c.op {
                Op::Eq if o == Ordering::Equal => return Ok(true),
                Op::Ne if o == Ordering::Equal => return Ok(false),
                _ => {}
            }
        }
        let ranged: Vec<(Op, Ordering)> = constraints
            .iter()
            .zip(orders)
            .filter(|(c, _)| !matches!(c.op, Op::Eq | Op::Ne))
            .map(|(c, o)| (c.op, o))
            .collect();
        if ranged.is_empty() {
            // Only `=`/`!=`: in when it matched no `=` and some `!=` excludes others.
            return Ok(constraints.iter().all(|c| c.op == Op::Ne));
        }
        let lower = |op: Op| matches!(op, Op::Gt | Op::Ge);
        let upper = |op: Op| matches!(op, Op::Lt | Op::Le);
        if let Some(&(op, o)) = ranged.first() {
            if upper(op) && op.holds(o) {
                return Ok(true);
            }
        }
        if let Some(&(op, o)) = ranged.last() {
            if lower(op) && op.holds(o) {
                return Ok(true);
            }
        }
        Ok(ranged.windows(2).any(|w| {
            lower(w[0].0) && upper(w[1].0) && w[0].0.holds(w[0].1) && w[1].0.holds(w[1].1)
        }))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::All => f.write_str("vers:all/*"),
            Range::Constraints {
                scheme,
                constraints,
            } => {
                write!(f, "vers:{}/", scheme.as_deref().unwrap_or("generic"))?;
                for (i, c) in constraints.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "|" };
                    write!(f, "{sep}{}{}", c.op.as_str(), c.version)?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a device's version is affected by an advisory product entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// In the range.
    Affected,
    /// Outside it.
    NotAffected,
    /// Undecidable: one of the strings is not a version, or they are in different schemes.
    /// Both strings are kept so the report can show them.
    NotComparable {
        /// Why, in plain words.
        reason: String,
        /// The device's version as seen.
        version: String,
        /// The advisory's version or range as written.
        range: String,
    },
}

/// Whether `version` (as the device reports it) is covered by an advisory's product entry:
/// `range` is its `product_version_range`, or with `exact` its `product_version`.
pub fn membership(version: &str, range: &str, exact: bool) -> Membership {
    let not = |reason: String| Membership::NotComparable {
        reason,
        version: version.to_owned(),
        range: range.to_owned(),
    };
    // An exact product_version is decidable by spelling even when it is no version
    // (`CMS7.820.075.08/0.74(0.75)`): the same string is that version.
    if exact && version.trim().eq_ignore_ascii_case(range.trim()) && !range.trim().is_empty() {
        return Membership::Affected;
    }
    let parsed = if exact {
        Range::exact(range)
    } else {
        Range::parse(range)
    };
    let r = match parsed {
        Ok(r) => r,
        Err(e) => return not(format!("the advisory's version is not a range: {e}")),
    };
    if let Range::All = r {
        return Membership::Affected;
    }
    let v = match Version::parse(version) {
        Ok(v) => v,
        Err(e) => return not(format!("the device's version is not a version: {e}")),
    };
    match r.contains(&v) {
        Ok(true) => Membership::Affected,
        Ok(false) => Membership::NotAffected,
        Err((a, b)) => not(format!("{a:?} and {b:?} are in different version schemes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn dotted_numbers_compare_as_numbers_not_floats_or_strings() {
        assert_eq!(compare("1.52", "1.52.01"), Some(Less));
        assert_eq!(compare("1.9", "1.10"), Some(Less));
        assert_eq!(compare("1.0", "1.0.0"), Some(Equal));
        assert_eq!(compare("01.2", "1.2"), Some(Equal));
        assert_eq!(compare("12.2.8.410", "12.2.8.41"), Some(Greater));
        assert_eq!(compare("99999999999999999999999.1", "2.1"), Some(Greater));
    }

    #[test]
    fn build_tags_suffixes_and_vendor_schemes() {
        assert_eq!(compare("4.2.0_Build_9", "4.2.0_Build_10"), Some(Less));
        assert_eq!(compare("4.2.0", "4.2.0_Build_9"), Some(Less));
        assert_eq!(compare("VA30A", "VA30B"), Some(Less));
        assert_eq!(compare("VA30A", "VB10A"), Some(Less));
        assert_eq!(compare("va30a", "VA30A"), Some(Equal));
        assert_eq!(compare("B.00.05", "B.00.06"), Some(Less));
        assert_eq!(compare("A.01.00", "B.00.05"), Some(Less));
        assert_eq!(compare("v1.12", "1.12"), Some(Equal));
        assert_eq!(compare("V2.0", "v1.9"), Some(Greater));
        assert_eq!(compare("14.0.3", "14.0.3a"), Some(Less));
        assert_eq!(compare("22D19", "22D28"), Some(Less));
        assert_eq!(compare("v22D28", "22D28"), Some(Equal));
        assert_eq!(compare("1.0-rc1", "1.0"), Some(Less));
        assert_eq!(compare("1.0-beta", "1.0-rc1"), Some(Less));
        assert_eq!(compare("1.0-rc1", "1.0.1"), Some(Less));
    }

    #[test]
    fn different_schemes_and_free_text_are_not_comparable() {
        assert_eq!(compare("2.0", "VA30A"), None);
        assert_eq!(compare("9.x", "9.2"), None);
        assert_eq!(
            compare("CMS7.820.075.08/0.74(0.75)", "CMS7.820.075.08"),
            None
        );
        assert_eq!(compare("", "1.0"), None);
        assert_eq!(compare(&"1.".repeat(100), "1.0"), None);
        assert_eq!(
            Version::parse("0.74(0.75)").unwrap_err(),
            VersionError::FreeText('(')
        );
    }

    fn m(version: &str, range: &str) -> Membership {
        membership(version, range, false)
    }

    fn nc(m: Membership) -> bool {
        matches!(m, Membership::NotComparable { .. })
    }

    /// Every range form in ../shared/advisories/public, with versions on both sides of it.
    #[test]
    fn every_range_form_of_the_public_advisories() {
        use Membership::{Affected, NotAffected};
        // icsma-22-062-02 BD Viper LT: ">= 2.0", open-ended.
        assert_eq!(m("4.80", ">= 2.0"), Affected);
        assert_eq!(m("1.9", ">= 2.0"), NotAffected);
        // icsma-22-167-01 Welch Allyn ELI: "<= 2.2.0" etc.
        assert_eq!(m("2.2.0", "<= 2.2.0"), Affected);
        assert_eq!(m("2.2.1", "<= 2.2.0"), NotAffected);
        assert_eq!(m("2.6", "<= 2.6.0"), Affected);
        // icsma-23-180-01 Paceart "<= 1.11", fix v1.12.
        assert_eq!(m("1.11", "<= 1.11"), Affected);
        assert_eq!(m("v1.12", "<= 1.11"), NotAffected);
        assert_eq!(m("1.2", "<= 1.11"), Affected);
        // icsma-23-248-01 MedDream "<= 7.2.8.810", fix 7.2.9.820.
        assert_eq!(m("7.2.8.810", "<= 7.2.8.810"), Affected);
        assert_eq!(m("7.2.9.820", "<= 7.2.8.810"), NotAffected);
        // icsma-24-058-01 Sante "<=14.0.3" (no space), fix 14.0.4.
        assert_eq!(m("14.0.3", "<=14.0.3"), Affected);
        assert_eq!(m("14.0.4", "<=14.0.3"), NotAffected);
        // icsma-24-151-02 Connex Spot "<=1.52", fix 1.52.01: newer, so outside.
        assert_eq!(m("1.52", "<=1.52"), Affected);
        assert_eq!(m("1.52.01", "<=1.52"), NotAffected);
        assert_eq!(m("1.5", "<=1.52"), Affected);
        // icsma-24-200-01 Vue PACS "<12.2.8.410".
        assert_eq!(m("12.2.8.400", "<12.2.8.410"), Affected);
        assert_eq!(m("12.2.8.410", "<12.2.8.410"), NotAffected);
        // icsma-25-233-01 Synapse Mobility "<8.2".
        assert_eq!(m("8.1.1", "<8.2"), Affected);
        assert_eq!(m("8.2", "<8.2"), NotAffected);
        // icsma-25-294-01 MinKNOW "<24.06" and "<24.11": 24.06 outside the first, inside the second.
        assert_eq!(m("24.06", "<24.06"), NotAffected);
        assert_eq!(m("24.06", "<24.11"), Affected);
        assert_eq!(m("24.11", "<24.11"), NotAffected);
        // icsma-23-047-01 Alaris Infusion Central ">= 1.1 | <= 1.3.2".
        assert_eq!(m("1.3", ">= 1.1 | <= 1.3.2"), Affected);
        assert_eq!(m("1.0", ">= 1.1 | <= 1.3.2"), NotAffected);
        assert_eq!(m("1.3.3", ">= 1.1 | <= 1.3.2"), NotAffected);
        // icsma-23-117-01 Illumina: ">= 1.0.0  | <= 1.3.1", ">= 1.3.3", "<= 1.7", "vers:all/*",
        // and exact product_version "4.0".
        assert_eq!(m("1.3.2", ">= 1.0.0  | <= 1.3.1"), NotAffected);
        assert_eq!(m("1.3.3", ">= 1.3.3"), Affected);
        assert_eq!(m("1.8", "<= 1.7"), NotAffected);
        assert_eq!(m("anything at all", "vers:all/*"), Affected);
        assert_eq!(membership("4.0", "4.0", true), Affected);
        assert_eq!(membership("4.0.5", "4.0", true), NotAffected);
        assert_eq!(membership("4.0.0", "4.0", true), Affected);
        // icsma-25-030-01 Contec CMS8000: exact firmware strings that are free text.
        assert_eq!(
            membership(
                "CMS7.820.075.08/0.74(0.75)",
                "CMS7.820.075.08/0.74(0.75)",
                true
            ),
            Affected
        );
        assert!(nc(membership(
            "CMS7.820.120.01/0.93(0.95)",
            "CMS7.820.075.08/0.74(0.75)",
            true
        )));
        assert_eq!(
            membership(
                "smart3250-2.6.27-wlan2.1.7.cramfs",
                "smart3250-2.6.27-wlan2.1.7.cramfs",
                true
            ),
            Affected
        );
        // icsma-22-251-01 Baxter Sigma Spectrum: "9.x model 35700BAX3" and battery-module prose.
        assert!(nc(membership("9.2", "9.x model 35700BAX3", true)));
        assert!(nc(m(
            "9.2",
            "9.x (with Wireless Battery Modules >= 22D19 | <= v22D28)"
        )));
        // icsma-23-103-01 B. Braun: part numbers as versions.
        assert!(nc(m(
            "053L000091",
            "053L000091 (global) / 054U000091 (U.S.) and 053L000092 (global) / 054U000092 (U.S.)"
        )));
    }

    #[test]
    fn vers_ranges() {
        use Membership::{Affected, NotAffected};
        assert_eq!(m("1.5", "vers:generic/>=1.0|<2.0"), Affected);
        assert_eq!(m("2.0", "vers:generic/>=1.0|<2.0"), NotAffected);
        assert_eq!(m("0.9", "vers:generic/<2.0|>=1.0"), NotAffected);
        assert_eq!(m("1.5", "vers:generic/!=1.5"), NotAffected);
        assert_eq!(m("1.6", "vers:generic/!=1.5"), Affected);
        assert_eq!(m("1.6", "vers:generic/1.5|1.6"), Affected);
        assert_eq!(m("1.7", "vers:generic/1.5|1.6"), NotAffected);
        assert_eq!(m("1.7", "vers:generic/*"), Affected);
        // Two intervals: <1.0, and >=2.0|<3.0.
        assert_eq!(m("0.5", "vers:generic/<1.0|>=2.0|<3.0"), Affected);
        assert_eq!(m("1.5", "vers:generic/<1.0|>=2.0|<3.0"), NotAffected);
        assert_eq!(m("2.5", "vers:generic/<1.0|>=2.0|<3.0"), Affected);
        assert_eq!(m("4.2.0_Build_10", "<=4.2.0_Build_9"), NotAffected);
        assert_eq!(m("4.2.0_Build_9", "<=4.2.0_Build_9"), Affected);
        // CISA's vers:all with a constraint: not valid vers, but its meaning is plain.
        assert_eq!(m("1.0", "vers:all/<=1.2"), Affected);
    }

    #[test]
    fn undecidable_memberships_keep_both_strings() {
        let got = m("VA30A", "<=2.0");
        match got {
            Membership::NotComparable {
                reason,
                version,
                range,
            } => {
                assert_eq!(version, "VA30A");
                assert_eq!(range, "<=2.0");
                assert!(reason.contains("different version schemes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(nc(m("1.0", "vers:")));
        assert!(nc(m("1.0", ">=1.0||<2.0")));
        assert!(nc(m("1.0", ">=1.0|<VA30")));
        assert!(nc(m("", "<2.0")));
        assert!(nc(m("1.0", &"<1|".repeat(40))));
    }

    #[test]
    fn ranges_display_as_vers() {
        assert_eq!(
            Range::parse("<= 1.3.2 | >= 1.1").unwrap().to_string(),
            "vers:generic/>=1.1|<=1.3.2"
        );
        assert_eq!(
            Range::parse("vers:all/*").unwrap().to_string(),
            "vers:all/*"
        );
    }

    fn version_strategy() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            (0u32..30).prop_map(|n| n.to_string()),
            Just("0".to_owned()),
            Just("00".to_owned()),
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("va".to_owned()),
            Just("rc".to_owned()),
            Just("beta".to_owned()),
            Just("build".to_owned()),
        ];
        let sep = prop_oneof![Just(""), Just("."), Just("-"), Just("_")];
        proptest::collection::vec((token, sep), 1..6).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(t, s)| format!("{t}{s}"))
                .collect::<String>()
        })
    }

    proptest! {
        #[test]
        fn the_order_is_reflexive_and_antisymmetric(a in version_strategy(), b in version_strategy()) {
            if Version::parse(&a).is_ok() {
                prop_assert_eq!(compare(&a, &a), Some(Equal));
            }
            prop_assert_eq!(compare(&a, &b), compare(&b, &a).map(Ordering::reverse));
        }

        #[test]
        fn the_order_is_transitive_where_comparable(
            a in version_strategy(), b in version_strategy(), c in version_strategy()
        ) {
            if let (Some(ab), Some(bc), Some(ac)) = (compare(&a, &b), compare(&b, &c), compare(&a, &c)) {
                if ab != Greater && bc != Greater {
                    prop_assert_ne!(ac, Greater, "{} {:?} {} {:?} {}", a, ab, b, bc, c);
                    if ab == Less || bc == Less {
                        prop_assert_eq!(ac, Less, "{} {:?} {} {:?} {}", a, ab, b, bc, c);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(a in ".{0,200}", b in ".{0,200}") {
            let _ = compare(&a, &b);
            let _ = membership(&a, &b, false);
            let _ = membership(&a, &b, true);
        }
    }
}
