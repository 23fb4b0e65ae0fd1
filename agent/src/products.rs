//! The product dictionary as data: manufacturers under one canonical name, and the connected
//! product lines of medical vendors with the patterns that recognise them on the wire.
//!
//! Files are TOML beside the rules (`agent/products/*.toml`, format in
//! `agent/products/README.md`): `[[manufacturer]]` tables give a canonical name and the
//! spellings seen for it (IEEE OUI registry, DICOM Manufacturer, HL7, DHCP, mDNS/UPnP/LLDP/SDC),
//! `[[product]]` tables a product line with its device type, its public source and `match`
//! conditions in the rules' own condition syntax.
//!
//! Each product compiles into an ordinary rule (id `products.<file>.<n>` or its own `id`), so the
//! rules' index and precedence apply unchanged: the dictionary is a more compact, cited way to
//! write product rules, not a second classifier. The manufacturer entries become an [`Aliases`]
//! table that [`crate::rules::RuleSet::classify`] applies last, so a device is reported as
//! `GE HealthCare` whether its evidence said `GE Medical Systems` or `GE Healthcare`.
//!
//! The bundled dictionary is compiled in; a site directory extends it (new manufacturers,
//! aliases and products) and overrides it (a product with a bundled product's id replaces it,
//! `enabled = false` removes it). Errors read like the rules loader's:
//! `file:line:column: rule "id": what is wrong`.

mod load;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::rules::{RuleError, RuleSet};

/// Largest product file read (bytes): the dictionary is hand-written data, and a site directory
/// must not make the agent allocate without bound.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most `*.toml` files read from one directory.
pub const MAX_FILES: usize = 1024;
/// Longest manufacturer name or alias (characters).
pub const MAX_NAME_CHARS: usize = 128;
/// Most aliases of one manufacturer.
pub const MAX_ALIASES: usize = 256;
/// Highest confidence a product entry may have: below the 0.9 the rules give a device's own
/// serial-bearing model fields (IntelliVue, DEV segments), which a product pattern never outranks.
pub const MAX_CONFIDENCE: f64 = 0.85;

/// The bundled dictionary files, in load order.
const BUNDLED: &[(&str, &str)] = &[
    (
        "bundled:manufacturers.toml",
        include_str!("../products/manufacturers.toml"),
    ),
    (
        "bundled:infusion.toml",
        include_str!("../products/infusion.toml"),
    ),
    (
        "bundled:monitoring.toml",
        include_str!("../products/monitoring.toml"),
    ),
    (
        "bundled:ventilation.toml",
        include_str!("../products/ventilation.toml"),
    ),
    ("bundled:lab.toml", include_str!("../products/lab.toml")),
    (
        "bundled:imaging.toml",
        include_str!("../products/imaging.toml"),
    ),
    (
        "bundled:nurse_call.toml",
        include_str!("../products/nurse_call.toml"),
    ),
];

/// File names of the bundled dictionary files (`manufacturers.toml`, …), in load order.
pub fn bundled_files() -> impl Iterator<Item = &'static str> {
    BUNDLED
        .iter()
        .map(|(name, _)| name.strip_prefix("bundled:").unwrap_or(name))
}

/// Legal-form words dropped from the end of a name when its whole spelling is not known:
/// `Spacelabs Healthcare, Inc.` finds `Spacelabs Healthcare`.
const LEGAL_FORMS: &[&str] = &[
    "ab",
    "ag",
    "as",
    "bv",
    "co",
    "company",
    "corp",
    "corporation",
    "gmbh",
    "inc",
    "incorporated",
    "kg",
    "kk",
    "limited",
    "llc",
    "lp",
    "ltd",
    "nv",
    "oy",
    "plc",
    "pte",
    "pty",
    "sa",
    "sas",
    "se",
    "spa",
    "srl",
];

/// Lowercased alphanumeric runs of `name`: `B.Braun Melsungen AG` → `b`, `braun`, `melsungen`,
/// `ag`. Comparing names by these ignores case, spacing and punctuation.
fn tokens(name: &str) -> impl Iterator<Item = String> + '_ {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().flat_map(char::to_lowercase).collect())
}

/// The lookup key of a name: its tokens joined (`bbraunmelsungenag`).
pub fn normalise(name: &str) -> String {
    tokens(name).collect()
}

/// The key of `name` without trailing legal forms, if it had any (and something else).
fn stripped_key(name: &str) -> Option<String> {
    let mut t: Vec<String> = tokens(name).collect();
    let before = t.len();
    while t.len() > 1 && t.last().is_some_and(|w| LEGAL_FORMS.contains(&w.as_str())) {
        t.pop();
    }
    (t.len() < before).then(|| t.concat())
}

/// Manufacturer names and their aliases: every spelling maps to one canonical name.
///
/// Lookups ignore case, white space and punctuation and compare the whole name (`GE
/// Healthcare`, `GE HEALTHCARE` and `GE-Healthcare` are one spelling; `GE Healthcare Finland`
/// is another); a spelling not found is tried once more without trailing legal-form words
/// (`Inc.`, `Co., Ltd.`, `GmbH`, `AG` …). [`Aliases::canonical`] is idempotent: a canonical
/// name always maps to itself.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// Canonical names; the values of `keys` index this.
    names: Vec<Arc<str>>,
    /// Normalised spelling → canonical name.
    keys: HashMap<Box<str>, u32>,
}

impl Aliases {
    /// The canonical name of the manufacturer `name` spells, if the table knows it.
    pub fn canonical(&self, name: &str) -> Option<&str> {
        let found = self
            .keys
            .get(normalise(name).as_str())
            .or_else(|| stripped_key(name).and_then(|k| self.keys.get(k.as_str())))?;
        self.names.get(*found as usize).map(|n| &**n)
    }

    /// Number of canonical names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of distinct spellings known (canonical names included).
    pub fn spellings(&self) -> usize {
        self.keys.len()
    }

    /// The canonical names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// `self` with the entries of `over` added; where both map a spelling, `over` wins.
    pub fn overlaid(&self, over: &Aliases) -> Aliases {
        if over.is_empty() {
            return self.clone();
        }
        let mut out = self.clone();
        for (key, &index) in &over.keys {
            if let Some(name) = over.names.get(index as usize) {
                let id = out.intern(name);
                out.keys.insert(key.clone(), id);
            }
        }
        out.settle();
        out
    }

    /// Index of canonical `name`, added if new.
    fn intern(&mut self, name: &Arc<str>) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i as u32;
        }
        self.names.push(name.clone());
        (self.names.len() - 1) as u32
    }

    /// Keeps `canonical` idempotent after an overlay: when a canonical name's own spelling was
    /// made an alias of another name, every spelling of the first follows it to the second.
    fn settle(&mut self) {
        // Each round retires at least one name, so this ends within `names.len()` rounds.
        for _ in 0..=self.names.len() {
            let redirect = self.names.iter().enumerate().find_map(|(i, n)| {
                let own = self.keys.get(normalise(n).as_str()).copied();
                match own {
                    Some(j) if j as usize != i => Some((i as u32, j)),
                    _ => None,
                }
            });
            let Some((from, to)) = redirect else { return };
            for v in self.keys.values_mut() {
                if *v == from {
                    *v = to;
                }
            }
            // The retired name keeps its slot (indices stay valid) but no spelling leads to it.
        }
    }
}

/// A loaded dictionary: its products compiled into rules, and its manufacturer aliases.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    rules: RuleSet,
    aliases: Aliases,
    summary: Summary,
}

impl Dictionary {
    /// The dictionary bundled with ward (`agent/products/*.toml`).
    pub fn bundled() -> Result<Dictionary, RuleError> {
        // Compiled once per process: its thousand-odd regexes cost more than a clone (which
        // shares them), and every `RuleSet::bundled` — each test's, too — starts from it.
        static COMPILED: std::sync::OnceLock<Option<Dictionary>> = std::sync::OnceLock::new();
        let load = || {
            let files = BUNDLED
                .iter()
                .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
                .collect();
            load::load_set(files, &Aliases::default())
        };
        match COMPILED.get_or_init(|| load().ok()) {
            Some(d) => Ok(d.clone()),
            // Not cached: load again for the error (a test catches a broken bundled file).
            None => load(),
        }
    }

    /// Loads every `*.toml` file of `dir` (not recursive) in file-name order, as a site
    /// extension of `base` (normally the bundled aliases): products may name `base`'s
    /// manufacturers.
    pub fn load_dir(dir: &Path, base: &Aliases) -> Result<Dictionary, RuleError> {
        load::load_set(load::read_dir(dir)?, base)
    }

    /// Parses one dictionary file on its own (`source_name` names it in errors and matches).
    pub fn parse(source_name: &str, text: &str, base: &Aliases) -> Result<Dictionary, RuleError> {
        load::load_set(vec![(source_name.to_owned(), text.to_owned())], base)
    }

    /// The products as rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The manufacturer aliases this dictionary defines.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Counts per file.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// `rules` with this dictionary's products added (an id in both is an error) and its
    /// aliases laid over the set's own.
    pub fn apply(self, rules: RuleSet) -> Result<RuleSet, RuleError> {
        let aliases = rules.aliases().overlaid(&self.aliases);
        Ok(crate::rules::load::merge(rules, self.rules)?.with_aliases(aliases))
    }
}

/// What a load found, per file in load order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// One entry per file.
    pub files: Vec<FileSummary>,
}

/// Counts of one dictionary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Source name (path, or `bundled:NAME`).
    pub file: String,
    /// `[[manufacturer]]` tables.
    pub manufacturers: usize,
    /// Aliases they list.
    pub aliases: usize,
    /// Enabled products.
    pub products: usize,
    /// Products with `enabled = false`.
    pub disabled: usize,
}

impl Summary {
    /// Enabled products in all files.
    pub fn products(&self) -> usize {
        self.files.iter().map(|f| f.products).sum()
    }

    /// Manufacturers in all files.
    pub fn manufacturers(&self) -> usize {
        self.files.iter().map(|f| f.manufacturers).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} product(s) and {} manufacturer(s) in {} file(s): OK",
            self.products(),
            self.manufacturers(),
            self.files.len()
        )?;
        for file in &self.files {
            write!(
                f,
                "\n  {}: {} product(s), {} manufacturer(s) with {} alias(es)",
                file.file, file.products, file.manufacturers, file.aliases
            )?;
            if file.disabled > 0 {
                write!(f, ", {} disabled", file.disabled)?;
            }
        }
        Ok(())
    }
}

/// Loads and validates every `*.toml` file in `dir` as a site dictionary over the bundled one
/// (what `ward-agent products check DIR` runs): its products may name bundled manufacturers,
/// and a product with a bundled rule's id replaces that rule.
pub fn check_dir(dir: &Path) -> Result<Summary, RuleError> {
    let bundled = RuleSet::bundled()?;
    let site = Dictionary::load_dir(dir, bundled.aliases())?;
    let summary = site.summary.clone();
    // Applying it as the agent would catches what only shows against the bundled rules.
    let _ = bundled.with_overrides(site.apply(RuleSet::default())?);
    Ok(summary)
}

#[cfg(test)]
mod tests;
