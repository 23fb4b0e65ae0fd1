//! Vendor names: folding ([`fold`]) and the alias table ([`VendorAliases`]) that says when an
//! advisory's vendor and a device's manufacturer are the same company.
//!
//! Advisories name vendors as legal entities or parents ("Becton, Dickinson and Company (BD)",
//! "Hillrom and ELI, Baxter International Inc."), devices announce brands and former names
//! ("CareFusion", "Welch Allyn", "GE MEDICAL SYSTEMS"). The table is data
//! (`collector/data/vendor-aliases.toml`, bundled, each entry with the public fact behind it),
//! extended by the file the configuration names (`[advisories] vendor_aliases`), so users add
//! their own without a release. A match says which names matched and how, so a report can show
//! "CareFusion = Becton, Dickinson and Company (BD) (alias table)" as evidence.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::import::files::{read_text, ImportError};

/// The bundled table.
const BUNDLED: &str = include_str!("../../data/vendor-aliases.toml");

/// Legal-form words dropped from the end of a name ("Inc.", "GmbH", "AG & Co. KGaA", "N.V.").
const SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "ltd",
    "limited",
    "llc",
    "llp",
    "gmbh",
    "ag",
    "kg",
    "kgaa",
    "plc",
    "nv",
    "bv",
    "sa",
    "se",
    "spa",
    "srl",
    "sas",
    "ab",
    "oy",
    "pty",
    "kk",
    "and",
];

/// Folds a vendor name for comparison: lower case, common accents to ASCII, `&` as "and",
/// punctuation as spaces, and trailing legal-form words removed ("GE HEALTHCARE, INC." and
/// "GE Healthcare" both become "ge healthcare"). A name that is nothing but suffixes keeps them.
pub fn fold(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' | 'à' | 'á' | 'â' | 'ã' | 'å' => s.push('a'),
            'ö' | 'ò' | 'ó' | 'ô' | 'õ' | 'ø' => s.push('o'),
            'ü' | 'ù' | 'ú' | 'û' => s.push('u'),
            'é' | 'è' | 'ê' | 'ë' => s.push('e'),
            'í' | 'ì' | 'î' | 'ï' => s.push('i'),
            'ç' => s.push('c'),
            'ñ' => s.push('n'),
            'ß' => s.push_str("ss"),
            '&' => s.push_str(" and "),
            c if c.is_alphanumeric() => s.push(c),
            _ => s.push(' '),
        }
    }
    let mut words: Vec<&str> = s.split_whitespace().collect();
    while words.len() > 1 {
        let n = words.len();
        // Dotted abbreviations arrive as single letters: "N.V." is "n v", "S.p.A." "s p a".
        let glued = |k: usize| {
            (n > k && words[n - k..].iter().all(|w| w.len() == 1))
                .then(|| words[n - k..].concat())
                .filter(|g| SUFFIXES.contains(&g.as_str()))
        };
        if SUFFIXES.contains(&words[n - 1]) {
            words.pop();
        } else if glued(2).is_some() {
            words.truncate(n - 2);
        } else if glued(3).is_some() {
            words.truncate(n - 3);
        } else {
            break;
        }
    }
    words.join(" ")
}

/// One company for matching purposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vendor {
    /// The canonical name reports use.
    pub name: String,
    /// Other names of the same company.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The public fact that makes them one (required in the bundled table).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vendor: Vec<Vendor>,
}

/// How two vendor names were found to be the same company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum VendorMatch {
    /// The same name once folded (case, punctuation, legal form).
    Folded {
        /// The folded name.
        folded: String,
    },
    /// Both names belong to one entry of the alias table.
    Alias {
        /// The entry's canonical name.
        vendor: String,
        /// The table's public fact, when it has one.
        source: Option<String>,
    },
}

/// The alias table: bundled entries plus the user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorAliases {
    vendors: Vec<Vendor>,
    /// Folded name or alias → index in `vendors`.
    index: HashMap<String, usize>,
}

impl Default for VendorAliases {
    /// The bundled table.
    fn default() -> Self {
        VendorAliases::bundled()
    }
}

impl VendorAliases {
    /// The bundled table alone.
    pub fn bundled() -> VendorAliases {
        let mut t = VendorAliases {
            vendors: Vec::new(),
            index: HashMap::new(),
        };
        // The bundled file is checked by this module's tests; a broken one would fail them.
        if let Ok(v) = parse(BUNDLED, "vendor-aliases.toml") {
            let _ = t.extend(v, "vendor-aliases.toml");
        }
        t
    }

    /// The bundled table extended by the file `extra` (the `[advisories] vendor_aliases`
    /// setting), if any.
    pub fn load(extra: Option<&Path>) -> Result<VendorAliases, ImportError> {
        let mut t = VendorAliases::bundled();
        if let Some(path) = extra {
            let file = path.display().to_string();
            let text = read_text(path, &file)?;
            t.extend(parse(&text, &file)?, &file)?;
        }
        Ok(t)
    }

    /// Adds `vendors`: an entry whose name folds to a known vendor's name or alias adds its
    /// aliases to that vendor. A name that would then belong to two vendors is refused: which
    /// company it means would be a guess.
    pub fn extend(&mut self, vendors: Vec<Vendor>, file: &str) -> Result<(), ImportError> {
        for v in vendors {
            let key = fold(&v.name);
            if key.is_empty() {
                return Err(ImportError::new(file, "a vendor with an empty name"));
            }
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    self.vendors.push(Vendor {
                        name: v.name.clone(),
                        aliases: Vec::new(),
                        source: v.source.clone(),
                    });
                    let i = self.vendors.len() - 1;
                    self.index.insert(key, i);
                    i
                }
            };
            for alias in v.aliases {
                let k = fold(&alias);
                if k.is_empty() {
                    continue;
                }
                match self.index.get(&k) {
                    Some(&j) if j != i => {
                        return Err(ImportError::new(
                            file,
                            format!(
                                "alias {alias:?} of {:?} already names {:?}: one name cannot be \
                                 two companies",
                                v.name, self.vendors[j].name
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        self.index.insert(k, i);
                    }
                }
                if !self.vendors[i].aliases.contains(&alias) {
                    self.vendors[i].aliases.push(alias);
                }
            }
        }
        Ok(())
    }

    /// Every vendor, in table order.
    pub fn vendors(&self) -> &[Vendor] {
        &self.vendors
    }

    /// The vendor `name` is, or an alias of.
    pub fn lookup(&self, name: &str) -> Option<&Vendor> {
        self.index.get(&fold(name)).map(|&i| &self.vendors[i])
    }

    /// Whether `a` and `b` name the same company, and why; `None` when nothing says so.
    pub fn same_vendor(&self, a: &str, b: &str) -> Option<VendorMatch> {
        let (fa, fb) = (fold(a), fold(b));
        if fa.is_empty() || fb.is_empty() {
            return None;
        }
        let (ia, ib) = (self.index.get(&fa), self.index.get(&fb));
        match (ia, ib) {
            (Some(i), Some(j)) if i == j => {
                let v = &self.vendors[*i];
                if fa == fb {
                    Some(VendorMatch::Folded { folded: fa })
                } else {
                    Some(VendorMatch::Alias {
                        vendor: v.name.clone(),
                        source: v.source.clone(),
                    })
                }
            }
            _ if fa == fb => Some(VendorMatch::Folded { folded: fa }),
            _ => None,
        }
    }
}

/// Parses an alias file; errors name the file and line.
fn parse(text: &str, file: &str) -> Result<Vec<Vendor>, ImportError> {
    let f: File = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_column(text, s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        ImportError::new(file, e.message().to_owned()).at(line, column)
    })?;
    Ok(f.vendor)
}

/// 1-based line and column (in characters) of byte `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_punctuation_accents_and_legal_forms() {
        assert_eq!(fold("GE HEALTHCARE, INC."), "ge healthcare");
        assert_eq!(fold("GE Healthcare"), "ge healthcare");
        assert_eq!(fold("Drägerwerk AG & Co. KGaA"), "dragerwerk");
        assert_eq!(fold("Koninklijke Philips N.V."), "koninklijke philips");
        assert_eq!(fold("B. Braun Melsungen AG"), "b braun melsungen");
        assert_eq!(fold("B.Braun"), "b braun");
        assert_eq!(fold("Fresenius S.p.A."), "fresenius");
        assert_eq!(
            fold("Becton, Dickinson and Company (BD)"),
            "becton dickinson and company bd"
        );
        assert_eq!(fold("Becton, Dickinson and Company"), "becton dickinson");
        assert_eq!(fold("  Inc. "), "inc");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn the_bundled_table_loads_whole_and_every_entry_has_its_source() {
        let all = parse(BUNDLED, "vendor-aliases.toml").unwrap();
        let t = VendorAliases::bundled();
        assert_eq!(t.vendors().len(), all.len(), "no entry merged into another");
        for v in &all {
            assert!(
                v.source.as_deref().is_some_and(|s| s.len() > 20),
                "{} has no source note",
                v.name
            );
        }
        let mut fresh = VendorAliases {
            vendors: Vec::new(),
            index: HashMap::new(),
        };
        fresh.extend(all, "vendor-aliases.toml").unwrap();
    }

    #[test]
    fn aliases_of_the_issue_and_the_public_advisories() {
        let t = VendorAliases::bundled();
        let same = |a: &str, b: &str| t.same_vendor(a, b);
        for (a, b) in [
            ("GE HealthCare", "GE Medical Systems"),
            ("GE Healthcare", "GE MEDICAL SYSTEMS"),
            ("Becton, Dickinson and Company (BD)", "BD"),
            ("Becton, Dickinson and Company (BD)", "CareFusion"),
            ("Hillrom and ELI, Baxter International Inc.", "Welch Allyn"),
            ("Baxter", "Welch Allyn, Inc."),
            ("Baxter", "Hill-Rom"),
            ("Medtronic", "Covidien"),
            ("Philips", "Philips Medical Systems"),
            ("Siemens Healthineers", "Siemens Healthcare GmbH"),
            ("B. Braun Melsungen AG", "B. Braun Medical Inc."),
            ("Fresenius Kabi", "Ivenix"),
            ("ICU Medical", "Smiths Medical"),
            ("Dräger", "Draeger Medical Systems, Inc."),
            ("Drägerwerk AG & Co. KGaA", "Dräger"),
            ("Canon Medical Systems", "TOSHIBA_MEC"),
            (
                "FUJIFILM Healthcare Americas Corporation",
                "FUJIFILM Corporation",
            ),
            ("Spacelabs Healthcare", "OSI Systems, Inc."),
            ("Contec Health", "Contec Medical Systems Co., Ltd."),
        ] {
            match same(a, b) {
                Some(VendorMatch::Alias { source, .. }) => assert!(source.is_some(), "{a} {b}"),
                other => panic!("{a} = {b}: {other:?}"),
            }
        }
        assert_eq!(
            same("Illumina, Inc.", "ILLUMINA"),
            Some(VendorMatch::Folded {
                folded: "illumina".into()
            })
        );
        assert_eq!(
            same("Acme Medical GmbH", "ACME MEDICAL"),
            Some(VendorMatch::Folded {
                folded: "acme medical".into()
            })
        );
        // Different companies stay apart, including the near misses left out of the table.
        for (a, b) in [
            ("Siemens", "Siemens Healthineers"),
            ("Fresenius Kabi", "Fresenius Medical Care"),
            ("Santesoft", "SanteSuite"),
            ("Contec", "Contec Health"),
            ("Philips", "Baxter"),
            ("", ""),
        ] {
            assert_eq!(same(a, b), None, "{a} {b}");
        }
        assert_eq!(
            t.lookup("carefusion").unwrap().name,
            "Becton, Dickinson and Company (BD)"
        );
    }

    #[test]
    fn a_user_file_extends_and_conflicts_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.toml");
        std::fs::write(
            &p,
            "[[vendor]]\nname = \"GE Healthcare\"\naliases = [\"GEHC\"]\n\n\
             [[vendor]]\nname = \"Acme Infusion\"\naliases = [\"Acme Pumps Ltd\"]\n",
        )
        .unwrap();
        let t = VendorAliases::load(Some(&p)).unwrap();
        assert!(matches!(
            t.same_vendor("GEHC", "GE Medical Systems"),
            Some(VendorMatch::Alias { .. })
        ));
        assert!(t.same_vendor("Acme Pumps", "Acme Infusion").is_some());

        std::fs::write(
            &p,
            "[[vendor]]\nname = \"Philips\"\naliases = [\"Welch Allyn\"]\n",
        )
        .unwrap();
        let e = VendorAliases::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("Welch Allyn") && e.contains("Baxter"), "{e}");

        std::fs::write(&p, "[[vendor]]\nname = \"X\"\nalias = [\"Y\"]\n").unwrap();
        let e = VendorAliases::load(Some(&p)).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("mine.toml:3"), "{e}");
    }
}
