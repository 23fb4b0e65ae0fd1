//! Fingerprint rules as data: what a device is, from the evidence seen about it.
//!
//! Rules live in TOML files (format, precedence and override semantics: `agent/rules/README.md`).
//! The bundled set (`agent/rules/*.toml`) is compiled into the binary; sites add or override rules
//! with their own directory. Each rule has AND-ed conditions on evidence fields (every
//! [`ward_protocols::Field`] name, plus the pseudo-fields `oui`, `mac_prefix` and `mac`) and sets
//! some of `manufacturer`, `model`, `device_type` (a fixed vocabulary, [`DEVICE_TYPES`]) and
//! `software_version`, with a confidence.
//!
//! Loading validates everything — TOML syntax and keys, field names, regexes, templates, device
//! types, confidences, duplicate ids across files — and reports `file:line:column` of the problem.
//!
//! [`RuleSet::classify`] evaluates every rule against one device's facts. It is cheap: regexes
//! are compiled at load, `equals` conditions are looked up in a hash index per field, and every
//! other condition is only tried on facts of its own field. For each output attribute the value
//! comes from the matching rule of highest precedence: higher confidence, then user over bundled,
//! then more conditions, then earlier in file order.

pub(crate) mod load;
mod template;

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use ward_protocols::{Field, MacAddr};

use crate::observation::{CandidateRecord, ClassificationRecord, RuleMatchRecord};
use crate::oui::OuiRegistry;
use crate::products::Aliases;
use template::Template;
use ward_protocols::schema::observation::device_type_family;

/// The device-type vocabulary: a rule may only set one of these. Documented in
/// `agent/rules/README.md`; it is the observation schema's (a collector stores any other value
/// as `unknown`).
pub use ward_protocols::schema::observation::DEVICE_TYPES;

/// The facts known about one device, as [`RuleSet::classify`] reads them.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    /// The device's MAC address. The all-zero address means "no MAC known" (captures without a
    /// link layer): the `mac` and `mac_prefix` pseudo-fields are then absent.
    pub mac: MacAddr,
    /// Organisation of the MAC's OUI (the `oui` pseudo-field), normally
    /// [`OuiRegistry::lookup`], which is `None` for locally administered addresses.
    pub oui_vendor: Option<&'a str>,
    /// Distinct (field, value) facts known for the device.
    pub facts: &'a [(Field, &'a str)],
    /// Its behavioural roles (`ward_protocols::roles`): the `role` pseudo-field.
    pub roles: &'a [&'a str],
}

impl<'a> RuleInput<'a> {
    /// Input whose `oui_vendor` comes from the bundled IEEE registry.
    pub fn with_bundled_oui(mac: MacAddr, facts: &'a [(Field, &'a str)]) -> RuleInput<'a> {
        RuleInput {
            mac,
            oui_vendor: OuiRegistry::bundled().lookup(mac),
            facts,
            roles: &[],
        }
    }
}

/// A problem loading rules. The `Display` form is `file:line:column: rule "id": what is wrong`.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A rule file is malformed or a rule is invalid.
    #[error("{file}:{line}:{column}: {}{message}", rule_prefix(rule.as_deref()))]
    Invalid {
        /// Source name of the file (its path, or `bundled:NAME` for bundled rules).
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// Id of the rule concerned, when known.
        rule: Option<String>,
        /// What is wrong.
        message: String,
    },
}

fn rule_prefix(rule: Option<&str>) -> String {
    rule.map(|id| format!("rule {id:?}: ")).unwrap_or_default()
}

/// What [`check_dir`] found: rule counts per file, in load order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSummary {
    /// One entry per `*.toml` file.
    pub files: Vec<FileSummary>,
}

/// Rule counts of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Source name (path) of the file.
    pub file: String,
    /// Enabled rules.
    pub rules: usize,
    /// Rules with `enabled = false` (overrides that switch a bundled rule off).
    pub disabled: usize,
}

impl RuleSummary {
    /// Enabled rules in all files.
    pub fn total(&self) -> usize {
        self.files.iter().map(|f| f.rules).sum()
    }
}

impl fmt::Display for RuleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rule(s) in {} file(s): OK",
            self.total(),
            self.files.len()
        )?;
        for file in &self.files {
            write!(f, "\n  {}: {} rule(s)", file.file, file.rules)?;
            if file.disabled > 0 {
                write!(f, ", {} disabled", file.disabled)?;
            }
        }
        Ok(())
    }
}

/// Loads and validates every `*.toml` file in `dir` (what `ward-agent rules check DIR` runs).
pub fn check_dir(dir: &Path) -> Result<RuleSummary, RuleError> {
    load::load_dir(dir).map(|(_, summary)| summary)
}

/// The bundled rule files, in precedence (file) order.
const BUNDLED: &[(&str, &str)] = &[
    ("bundled:dicom.toml", include_str!("../rules/dicom.toml")),
    ("bundled:hl7.toml", include_str!("../rules/hl7.toml")),
    ("bundled:dhcp.toml", include_str!("../rules/dhcp.toml")),
    ("bundled:http.toml", include_str!("../rules/http.toml")),
    ("bundled:ssh.toml", include_str!("../rules/ssh.toml")),
    ("bundled:tls.toml", include_str!("../rules/tls.toml")),
    ("bundled:mdns.toml", include_str!("../rules/mdns.toml")),
    ("bundled:ssdp.toml", include_str!("../rules/ssdp.toml")),
    ("bundled:snmp.toml", include_str!("../rules/snmp.toml")),
    ("bundled:llmnr.toml", include_str!("../rules/llmnr.toml")),
    ("bundled:dns.toml", include_str!("../rules/dns.toml")),
    ("bundled:nbns.toml", include_str!("../rules/nbns.toml")),
    ("bundled:dhcpv6.toml", include_str!("../rules/dhcpv6.toml")),
    ("bundled:lldp.toml", include_str!("../rules/lldp.toml")),
    ("bundled:cdp.toml", include_str!("../rules/cdp.toml")),
    ("bundled:sdc.toml", include_str!("../rules/sdc.toml")),
    ("bundled:astm.toml", include_str!("../rules/astm.toml")),
    (
        "bundled:intellivue.toml",
        include_str!("../rules/intellivue.toml"),
    ),
    ("bundled:poct1a.toml", include_str!("../rules/poct1a.toml")),
    ("bundled:bcc.toml", include_str!("../rules/bcc.toml")),
    ("bundled:fhir.toml", include_str!("../rules/fhir.toml")),
    ("bundled:roles.toml", include_str!("../rules/roles.toml")),
    ("bundled:names.toml", include_str!("../rules/names.toml")),
    ("bundled:oui.toml", include_str!("../rules/oui.toml")),
];

/// File names of the bundled rule files (`dicom.toml`, …), in precedence order.
pub fn bundled_files() -> impl Iterator<Item = &'static str> {
    BUNDLED
        .iter()
        .map(|(name, _)| name.strip_prefix("bundled:").unwrap_or(name))
}

/// A compiled, indexed set of rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Enabled rules in file order (bundled first after [`RuleSet::with_overrides`]).
    rules: Vec<Rule>,
    /// Rules switched off with `enabled = false`: they only matter to `with_overrides`.
    disabled: Vec<Located>,
    index: Index,
    /// Manufacturer aliases of the product dictionary (`crate::products`): every classification's
    /// manufacturer is reported under its canonical name.
    aliases: Arc<Aliases>,
}

/// Where a rule was defined.
#[derive(Debug, Clone)]
struct Located {
    id: String,
    source: Arc<str>,
    line: usize,
    column: usize,
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    at: Located,
    /// AND-ed; the first is positive and is the primary condition (evidence and captures).
    conditions: Vec<Condition>,
    manufacturer: Option<Template>,
    model: Option<Template>,
    device_type: Option<&'static str>,
    software_version: Option<Template>,
    confidence: f32,
    /// From a user override set: wins ties against bundled rules.
    user: bool,
}

impl Rule {
    /// Whether the rule matches `facts`; if so, the fact that satisfied its primary condition.
    fn evaluate<'f>(
        &self,
        facts: &[(Subject, &'f str)],
        stats: &mut Stats,
    ) -> Option<(Subject, &'f str)> {
        let (primary, rest) = self.conditions.split_first()?;
        let evidence = primary.first_match(facts, stats)?;
        rest.iter()
            .all(|c| c.first_match(facts, stats).is_some() != c.negate)
            .then_some(evidence)
    }
}

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Fact(Field),
    /// Organisation name of the MAC's OUI.
    Oui,
    /// First three octets of the MAC, `aa:bb:cc`.
    MacPrefix,
    /// The whole MAC, `aa:bb:cc:dd:ee:ff`.
    Mac,
    /// A behavioural role (`dhcp_server`, `hl7_hub`, … `ward_protocols::roles::ROLES`).
    Role,
}

/// Number of index slots: every field, then the four pseudo-fields.
const SLOTS: usize = Field::ALL.len() + 4;

impl Subject {
    fn parse(name: &str) -> Option<Subject> {
        match name {
            "oui" => Some(Subject::Oui),
            "mac_prefix" => Some(Subject::MacPrefix),
            "mac" => Some(Subject::Mac),
            "role" => Some(Subject::Role),
            _ => Field::ALL
                .iter()
                .find(|f| f.name() == name)
                .map(|&f| Subject::Fact(f)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Subject::Fact(f) => f.name(),
            Subject::Oui => "oui",
            Subject::MacPrefix => "mac_prefix",
            Subject::Mac => "mac",
            Subject::Role => "role",
        }
    }

    fn slot(self) -> usize {
        match self {
            // Declaration order, which is also the order of `Field::ALL`.
            Subject::Fact(f) => f as usize,
            Subject::Oui => Field::ALL.len(),
            Subject::MacPrefix => Field::ALL.len() + 1,
            Subject::Mac => Field::ALL.len() + 2,
            Subject::Role => Field::ALL.len() + 3,
        }
    }

    fn is_mac(self) -> bool {
        matches!(self, Subject::MacPrefix | Subject::Mac)
    }
}

/// One condition: `field` + one test, possibly negated.
#[derive(Debug, Clone)]
struct Condition {
    subject: Subject,
    test: Test,
    /// `not = true`: holds when *no* fact of the field passes the test.
    negate: bool,
}

impl Condition {
    /// The first fact of this condition's field that passes its test (ignoring `negate`).
    fn first_match<'f>(
        &self,
        facts: &[(Subject, &'f str)],
        stats: &mut Stats,
    ) -> Option<(Subject, &'f str)> {
        facts.iter().copied().find(|&(s, v)| {
            s == self.subject && {
                stats.tests += 1;
                self.test.matches(v)
            }
        })
    }
}

#[derive(Debug, Clone)]
enum Test {
    Equals(Box<str>),
    /// Case-insensitive equality; the pattern is stored lowercased.
    EqualsCi(Box<str>),
    Prefix(Box<str>),
    Contains(Box<str>),
    /// `regex`, and case-insensitive `prefix`/`contains` (compiled to an escaped regex).
    Regex(Regex),
}

impl Test {
    fn matches(&self, value: &str) -> bool {
        match self {
            Test::Equals(p) => value == &**p,
            Test::EqualsCi(p) => value.chars().flat_map(char::to_lowercase).eq(p.chars()),
            Test::Prefix(p) => value.starts_with(&**p),
            Test::Contains(p) => value.contains(&**p),
            Test::Regex(re) => re.is_match(value),
        }
    }
}

/// Per-field lookup structures.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Indexed by [`Subject::slot`]; `SLOTS` long once built.
    slots: Vec<SlotIndex>,
}

#[derive(Debug, Clone, Default)]
struct SlotIndex {
    /// Rules anchored on a case-sensitive `equals` of this field, by value.
    exact: HashMap<Box<str>, Vec<u32>>,
    /// Rules anchored on a case-insensitive `equals`, by lowercased value.
    exact_ci: HashMap<Box<str>, Vec<u32>>,
    /// Rules anchored on another test of this field: (rule, condition index) to try per fact.
    scan: Vec<(u32, usize)>,
}

impl Index {
    fn build(rules: &[Rule]) -> Index {
        let mut slots = vec![SlotIndex::default(); SLOTS];
        for (i, rule) in (0u32..).zip(rules) {
            // Anchor on the first positive `equals` (a hash lookup), else on the primary
            // condition. A rule can only match if its anchor matches some fact.
            let anchor = rule
                .conditions
                .iter()
                .position(|c| !c.negate && matches!(c.test, Test::Equals(_) | Test::EqualsCi(_)))
                .unwrap_or(0);
            let Some(cond) = rule.conditions.get(anchor) else {
                continue;
            };
            let Some(slot) = slots.get_mut(cond.subject.slot()) else {
                continue;
            };
            match &cond.test {
                Test::Equals(v) => slot.exact.entry(v.clone()).or_default().push(i),
                Test::EqualsCi(v) => slot.exact_ci.entry(v.clone()).or_default().push(i),
                _ => slot.scan.push((i, anchor)),
            }
        }
        Index { slots }
    }
}

/// Work counters of one classification (tests check classify does not scan every rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    /// Rules whose anchor matched a fact.
    candidates: usize,
    /// Condition tests run (anchor scans and full evaluation).
    tests: usize,
}

/// A matching rule and the fact that satisfied its primary condition.
#[derive(Debug, Clone, Copy)]
struct Hit<'f> {
    rule: usize,
    subject: Subject,
    value: &'f str,
}

impl RuleSet {
    /// The rules bundled with ward (`agent/rules/*.toml`), with the bundled product dictionary
    /// (`agent/products/*.toml`, compiled to rules after them, and its manufacturer aliases).
    pub fn bundled() -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        for (name, text) in BUNDLED {
            set = load::merge(set, load::parse(name, text)?)?;
        }
        crate::products::Dictionary::bundled()?.apply(set)
    }

    /// The set with `aliases` as its manufacturer alias table (replacing the current one).
    pub fn with_aliases(mut self, aliases: Aliases) -> RuleSet {
        self.aliases = Arc::new(aliases);
        self
    }

    /// The manufacturer alias table classifications are canonicalised with.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// Loads every `*.toml` file of `dir` (not recursive), in file-name order. Ids must be unique
    /// across the files.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        load::load_dir(dir).map(|(set, _)| set)
    }

    /// Parses one rule file; `source_name` names it in errors and in match records.
    pub fn parse(source_name: &str, text: &str) -> Result<RuleSet, RuleError> {
        load::parse(source_name, text)
    }

    /// `self` (normally the bundled rules) overridden by `user` rules: a user rule replaces the
    /// rule with the same id (a user rule with `enabled = false` just removes it), and user rules
    /// win precedence ties against the rest.
    pub fn with_overrides(self, user: RuleSet) -> RuleSet {
        let aliases = Arc::new(self.aliases.overlaid(&user.aliases));
        let replaced: HashSet<&str> = user
            .rules
            .iter()
            .map(|r| r.at.id.as_str())
            .chain(user.disabled.iter().map(|d| d.id.as_str()))
            .collect();
        let mut rules: Vec<Rule> = self
            .rules
            .into_iter()
            .filter(|r| !replaced.contains(r.at.id.as_str()))
            .collect();
        let mut disabled: Vec<Located> = self
            .disabled
            .into_iter()
            .filter(|d| !replaced.contains(d.id.as_str()))
            .collect();
        drop(replaced);
        rules.extend(user.rules.into_iter().map(|mut r| {
            r.user = true;
            r
        }));
        disabled.extend(user.disabled);
        RuleSet {
            aliases,
            ..RuleSet::from_parts(rules, disabled)
        }
    }

    /// Number of (enabled) rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Ids of the rules, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.at.id.as_str())
    }

    /// Classifies one device. See the module documentation and `agent/rules/README.md` for the
    /// semantics; with no matching rule the device type is `unknown` with confidence 0.
    pub fn classify(&self, input: &RuleInput<'_>) -> ClassificationRecord {
        self.classify_counted(input, &mut Stats::default())
    }

    fn from_parts(rules: Vec<Rule>, disabled: Vec<Located>) -> RuleSet {
        let index = Index::build(&rules);
        RuleSet {
            rules,
            disabled,
            index,
            aliases: Arc::default(),
        }
    }

    fn classify_counted(&self, input: &RuleInput<'_>, stats: &mut Stats) -> ClassificationRecord {
        let has_mac = input.mac != MacAddr::default();
        let mac_text = if has_mac {
            input.mac.to_string()
        } else {
            String::new()
        };
        let mut facts: Vec<(Subject, &str)> =
            Vec::with_capacity(input.facts.len() + input.roles.len() + 3);
        facts.extend(input.facts.iter().map(|&(f, v)| (Subject::Fact(f), v)));
        facts.extend(input.roles.iter().map(|&r| (Subject::Role, r)));
        if let Some(vendor) = input.oui_vendor {
            facts.push((Subject::Oui, vendor));
        }
        if has_mac {
            facts.push((Subject::MacPrefix, mac_text.get(..8).unwrap_or_default()));
            facts.push((Subject::Mac, mac_text.as_str()));
        }

        // Candidates: rules whose anchor condition matches some fact.
        let mut candidates: Vec<u32> = Vec::new();
        let mut lowered = String::new();
        for &(subject, value) in &facts {
            let Some(slot) = self.index.slots.get(subject.slot()) else {
                continue;
            };
            if let Some(rules) = slot.exact.get(value) {
                candidates.extend_from_slice(rules);
            }
            if !slot.exact_ci.is_empty() {
                lowered.clear();
                lowered.extend(value.chars().flat_map(char::to_lowercase));
                if let Some(rules) = slot.exact_ci.get(lowered.as_str()) {
                    candidates.extend_from_slice(rules);
                }
            }
            for &(rule, cond) in &slot.scan {
                stats.tests += 1;
                let hit = self
                    .rules
                    .get(rule as usize)
                    .and_then(|r| r.conditions.get(cond))
                    .is_some_and(|c| c.test.matches(value));
                if hit {
                    candidates.push(rule);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        stats.candidates = candidates.len();

        // Full evaluation of the candidates.
        let mut hits: Vec<Hit<'_>> = candidates
            .iter()
            .filter_map(|&i| {
                let rule = self.rules.get(i as usize)?;
                let (subject, value) = rule.evaluate(&facts, stats)?;
                Some(Hit {
                    rule: i as usize,
                    subject,
                    value,
                })
            })
            .collect();
        hits.sort_by(|a, b| self.precedence(a.rule, b.rule));

        // Each attribute from the first rule, in precedence order, that sets it.
        let mut out = ClassificationRecord {
            manufacturer: None,
            model: None,
            device_type: "unknown".to_owned(),
            software_version: None,
            confidence: 0.0,
            matches: Vec::with_capacity(hits.len()),
            candidates: Vec::new(),
            explanation: None,
        };
        let mut proposals = Proposals::default();
        let mut type_confidence: Option<f32> = None;
        for hit in &hits {
            let Some(rule) = self.rules.get(hit.rule) else {
                continue;
            };
            if let Some(t) = rule.device_type {
                if type_confidence.is_none() {
                    out.device_type = t.to_owned();
                    type_confidence = Some(rule.confidence);
                }
                proposals.add(Proposed::DeviceType, t, rule, hit.subject);
            }
            // Regex captures only when a template that will be used needs them.
            let mut captures = None;
            for (what, template) in [
                (Proposed::Manufacturer, rule.manufacturer.as_ref()),
                (Proposed::Model, rule.model.as_ref()),
                (Proposed::SoftwareVersion, rule.software_version.as_ref()),
            ] {
                let Some(template) = template else {
                    continue;
                };
                let slot = match what {
                    Proposed::Manufacturer => &mut out.manufacturer,
                    Proposed::Model => &mut out.model,
                    _ => &mut out.software_version,
                };
                // Versions are not weighed against each other (the latest seen leads), so a
                // later rule's version is not even expanded.
                if what == Proposed::SoftwareVersion && slot.is_some() {
                    continue;
                }
                if template.needs_captures() && captures.is_none() {
                    if let Some(Test::Regex(re)) = rule.conditions.first().map(|c| &c.test) {
                        captures = re.captures(hit.value);
                    }
                }
                let Some(mut value) = template.expand(hit.value, captures.as_ref()) else {
                    continue;
                };
                // One name per manufacturer, whatever spelling the evidence used: candidates
                // then disagree only when the companies do.
                if what == Proposed::Manufacturer {
                    if let Some(canonical) = self.aliases.canonical(&value) {
                        if canonical != value {
                            value = canonical.to_owned();
                        }
                    }
                }
                if what != Proposed::SoftwareVersion {
                    proposals.add(what, &value, rule, hit.subject);
                }
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
            out.matches.push(RuleMatchRecord {
                rule: rule.at.id.clone(),
                source: rule.at.source.to_string(),
                field: hit.subject.name().to_owned(),
                value: hit.value.to_owned(),
            });
        }
        // Hits are in precedence order, so the first is the most confident of all.
        let best_any = hits
            .first()
            .and_then(|h| self.rules.get(h.rule))
            .map(|r| r.confidence);
        out.confidence = type_confidence.or(best_any).unwrap_or(0.0);
        // One name per manufacturer whatever spelling the evidence used (the match records keep
        // the spelling seen).
        if let Some(name) = out.manufacturer.as_deref() {
            if let Some(canonical) = self.aliases.canonical(name) {
                if canonical != name {
                    out.manufacturer = Some(canonical.to_owned());
                }
            }
        }
        proposals.explain(&mut out);
        out
    }

    /// Orders rule indices by precedence, strongest first: confidence, user over bundled, more
    /// conditions, earlier in file order.
    fn precedence(&self, a: usize, b: usize) -> Ordering {
        match (self.rules.get(a), self.rules.get(b)) {
            (Some(ra), Some(rb)) => rb
                .confidence
                .total_cmp(&ra.confidence)
                .then(rb.user.cmp(&ra.user))
                .then(rb.conditions.len().cmp(&ra.conditions.len()))
                .then(a.cmp(&b)),
            _ => a.cmp(&b),
        }
    }
}

/// An attribute a rule proposes a value for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proposed {
    DeviceType,
    Manufacturer,
    Model,
    SoftwareVersion,
}

impl Proposed {
    fn name(self) -> &'static str {
        match self {
            Proposed::DeviceType => "device_type",
            Proposed::Manufacturer => "manufacturer",
            Proposed::Model => "model",
            Proposed::SoftwareVersion => "software_version",
        }
    }
}

/// Spellings of one value are one candidate, not a conflict: case, punctuation and spaces
/// ("MINDRAY", "Mindray"), and a registry's longer form of a name ("Mindray DS USA, Inc." for
/// "Mindray", "ICU Medical, Inc." for "ICU Medical").
fn comparison_key(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Keys of one value: equal, or one extends the other and the shorter is long enough not to be
/// a different company's prefix ("ge" is not "getinge").
fn same_value(a: &str, b: &str) -> bool {
    const MIN_PREFIX: usize = 5;
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.len() >= MIN_PREFIX && long.starts_with(short))
}

/// Rules listed per candidate: enough to explain, bounded for a device with hundreds of facts.
const MAX_CANDIDATE_RULES: usize = 8;

/// Every value the matching rules proposed, per attribute, in precedence order — so the first
/// proposal of an attribute is the chosen one and its rule's confidence is its score.
#[derive(Debug, Default)]
struct Proposals {
    /// (attribute, comparison key, candidate).
    seen: Vec<(Proposed, String, CandidateRecord)>,
}

impl Proposals {
    fn add(&mut self, what: Proposed, value: &str, rule: &Rule, subject: Subject) {
        let key = comparison_key(value);
        let label = format!("{} ({})", rule.at.id, subject.name());
        match self
            .seen
            .iter_mut()
            .find(|(w, k, _)| *w == what && same_value(k, &key))
        {
            Some((_, _, c)) => {
                if c.rules.len() < MAX_CANDIDATE_RULES && !c.rules.contains(&label) {
                    c.rules.push(label);
                }
            }
            None => {
                let chosen = !self.seen.iter().any(|(w, _, _)| *w == what);
                self.seen.push((
                    what,
                    key,
                    CandidateRecord {
                        attribute: what.name().to_owned(),
                        value: value.to_owned(),
                        score: rule.confidence,
                        rules: vec![label],
                        chosen,
                    },
                ));
            }
        }
    }

    /// Moves the candidates of every attribute the evidence disagreed on into `out`, with one
    /// sentence per such attribute saying what won and over what.
    fn explain(mut self, out: &mut ClassificationRecord) {
        // A generic type refined by a kind of it the evidence also proposed (`network_infra`
        // from an IOS description, `switch` from the bridge capability): the kind is what the
        // evidence says together, so it is chosen, whatever the scores.
        let mut refined = false;
        if let Some(kind) = self
            .seen
            .iter()
            .filter(|(w, _, c)| {
                *w == Proposed::DeviceType
                    && c.value != out.device_type
                    && device_type_family(&c.value) == out.device_type
            })
            .map(|(_, _, c)| c.value.clone())
            .next()
        {
            out.device_type = kind;
            refined = true;
            for (w, _, c) in &mut self.seen {
                if *w == Proposed::DeviceType {
                    c.chosen = c.value == out.device_type;
                }
            }
            // Chosen first.
            self.seen
                .sort_by_key(|(w, _, c)| (*w != Proposed::DeviceType, !c.chosen));
        }
        let mut sentences = Vec::new();
        for what in [
            Proposed::DeviceType,
            Proposed::Manufacturer,
            Proposed::Model,
        ] {
            let of: Vec<&CandidateRecord> = self
                .seen
                .iter()
                .filter(|(w, _, _)| *w == what)
                .map(|(_, _, c)| c)
                .collect();
            let [winner, rest @ ..] = of.as_slice() else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            let others: Vec<String> = rest
                .iter()
                .map(|c| format!("{} ({:.2})", c.value, c.score))
                .collect();
            let why = if refined && what == Proposed::DeviceType {
                "a kind of the type the stronger evidence gives is more specific"
            } else if rest.iter().any(|c| c.score == winner.score) {
                "equal confidence; the more specific or earlier rule wins"
            } else {
                "the strongest evidence wins"
            };
            sentences.push(format!(
                "{}: {} ({:.2}, {}) over {}: {why}",
                what.name(),
                winner.value,
                winner.score,
                winner.rules.first().map(String::as_str).unwrap_or_default(),
                others.join(", ")
            ));
            out.candidates.extend(of.into_iter().cloned());
        }
        if !sentences.is_empty() {
            out.explanation = Some(sentences.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> RuleSet {
        RuleSet::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn input<'a>(facts: &'a [(Field, &'a str)]) -> RuleInput<'a> {
        RuleInput {
            mac: MacAddr::default(),
            oui_vendor: None,
            facts,
            roles: &[],
        }
    }

    #[test]
    fn bundled_rules_load() {
        let set = RuleSet::bundled().unwrap_or_else(|e| panic!("{e}"));
        assert!(set.len() > 100, "{}", set.len());
    }

    /// Medical vendors' IANA enterprise numbers name the maker of an SNMP agent or a DHCPv6
    /// client; a registrant that makes one kind of device names the type too.
    #[test]
    fn bundled_enterprise_numbers_name_medical_manufacturers() {
        let set = RuleSet::bundled().unwrap_or_else(|e| panic!("{e}"));
        for (facts, manufacturer, device_type) in [
            (
                [(Field::SnmpSysObjectId, "1.3.6.1.4.1.3592.1.2")],
                "Dräger",
                "medical_device_other",
            ),
            (
                [(Field::SnmpSysObjectId, "1.3.6.1.4.1.17694")],
                "Elekta",
                "radiotherapy",
            ),
            (
                [(Field::Dhcpv6VendorEnterprise, "54260")],
                "Mindray",
                "medical_device_other",
            ),
        ] {
            let c = set.classify(&input(&facts));
            assert_eq!(c.manufacturer.as_deref(), Some(manufacturer), "{facts:?}");
            assert_eq!(c.device_type, device_type, "{facts:?}");
        }
        // A longer number sharing the prefix is another registrant.
        let other = [(Field::SnmpSysObjectId, "1.3.6.1.4.1.35920.1")];
        assert_eq!(set.classify(&input(&other)).manufacturer, None);
    }

    /// An embedded client naming its model and firmware as key-value pairs in its User-Agent.
    #[test]
    fn bundled_user_agent_keys_name_model_and_firmware() {
        let set = RuleSet::bundled().unwrap_or_else(|e| panic!("{e}"));
        let ua = [(
            Field::HttpUserAgent,
            "VitalsClient/2.1 (Model=VS-900; FW=3.4.1b; SN=A1B2C3)",
        )];
        let c = set.classify(&input(&ua));
        assert_eq!(c.model.as_deref(), Some("VS-900"));
        assert_eq!(c.software_version.as_deref(), Some("3.4.1b"));
        // A browser string has neither key.
        let browser = [(
            Field::HttpUserAgent,
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
        )];
        assert_eq!(set.classify(&input(&browser)).model, None);
    }

    #[test]
    fn disagreeing_evidence_lists_candidates_and_roles_are_a_pseudo_field() {
        let set = rules(
            r#"
[[rule]]
id = "t.code"
description = "an observation code naming a monitor"
confidence = 0.6
device_type = "patient_monitor"
manufacturer = "Acmedica"
match = [{ field = "hl7.device_code", equals = "69965" }]

[[rule]]
id = "t.gateway"
description = "reports for several devices"
confidence = 0.85
device_type = "monitor_gateway"
match = [{ field = "role", equals = "device_gateway" }]

[[rule]]
id = "t.oui"
description = "MAC vendor"
confidence = 0.3
device_type = "medical_device_other"
manufacturer = "ACMEDICA, Inc."
match = [{ field = "oui", equals = "ACMEDICA, Inc." }]
"#,
        );
        let facts = [(Field::Hl7DeviceCode, "69965")];
        let mut inp = input(&facts);
        inp.oui_vendor = Some("ACMEDICA, Inc.");
        let c = set.classify(&inp);
        assert_eq!(c.device_type, "patient_monitor");
        let types: Vec<(&str, bool)> = c
            .candidates
            .iter()
            .filter(|c| c.attribute == "device_type")
            .map(|c| (c.value.as_str(), c.chosen))
            .collect();
        assert_eq!(
            types,
            [("patient_monitor", true), ("medical_device_other", false)]
        );
        // "Acmedica" and "ACMEDICA, Inc." are one manufacturer: no manufacturer conflict.
        assert!(c.candidates.iter().all(|c| c.attribute == "device_type"));
        let why = c.explanation.unwrap();
        assert!(
            why.starts_with("device_type: patient_monitor (0.60, t.code (hl7.device_code)) over medical_device_other (0.30)"),
            "{why}"
        );

        inp.roles = &["device_gateway"];
        let c = set.classify(&inp);
        assert_eq!(c.device_type, "monitor_gateway");
        assert_eq!(c.confidence, 0.85);
        assert_eq!(c.candidates.len(), 3);
        assert_eq!(c.matches[0].field, "role");
        assert_eq!(c.matches[0].value, "device_gateway");

        // Agreement: no candidates, no explanation.
        let c = set.classify(&input(&facts));
        assert!(c.candidates.is_empty() && c.explanation.is_none());
    }

    #[test]
    fn a_mac_vendor_rule_never_outranks_a_protocol_rule() {
        // The bundled MAC-vendor rules that set a type stay at or below 0.3, under every rule
        // that reads what a device says or does (none of which sets a type below 0.3 …
        // except deliberately weak hints, which then lose to the vendor, as they should).
        let set = RuleSet::bundled().unwrap();
        for r in &set.rules {
            let mac = r.conditions.first().is_some_and(|c| {
                matches!(c.subject, Subject::Oui | Subject::MacPrefix | Subject::Mac)
            });
            if mac && r.device_type.is_some() {
                assert!(r.confidence <= 0.3, "{} {}", r.at.id, r.confidence);
            }
        }
    }

    #[test]
    fn an_unknown_role_is_a_load_error() {
        let err = RuleSet::parse(
            "t.toml",
            r#"
[[rule]]
id = "t.role"
description = "x"
confidence = 0.5
device_type = "pacs"
match = [{ field = "role", equals = "dhcp_sever" }]
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown role \"dhcp_sever\""), "{err}");
    }

    #[test]
    fn every_field_has_a_slot() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(Subject::Fact(*f).slot(), i, "{f}");
            assert_eq!(Subject::parse(f.name()), Some(Subject::Fact(*f)));
        }
        assert_eq!(Subject::Role.slot(), SLOTS - 1);
        assert_eq!(Subject::parse("role"), Some(Subject::Role));
    }

    #[test]
    fn highest_confidence_wins_each_attribute_and_ties_go_to_more_conditions_then_order() {
        let set = rules(
            r#"
            [[rule]]
            id = "a"
            description = "low"
            confidence = 0.3
            manufacturer = "Low"
            model = "OnlyModel"
            match = [{ field = "hl7.sending_application", prefix = "X" }]

            [[rule]]
            id = "b"
            description = "high"
            confidence = 0.9
            manufacturer = "High"
            match = [{ field = "hl7.sending_application", equals = "XYZ" }]

            [[rule]]
            id = "c"
            description = "type, 1 condition"
            confidence = 0.5
            device_type = "ct"
            match = [{ field = "hl7.sending_application", contains = "Y" }]

            [[rule]]
            id = "d"
            description = "type, 2 conditions"
            confidence = 0.5
            device_type = "mr"
            match = [
                { field = "hl7.sending_application", contains = "Z" },
                { field = "hl7.version", equals = "2.5" },
            ]
            "#,
        );
        let facts = [
            (Field::Hl7SendingApplication, "XYZ"),
            (Field::Hl7Version, "2.5"),
        ];
        let c = set.classify(&input(&facts));
        assert_eq!(c.manufacturer.as_deref(), Some("High"));
        assert_eq!(c.model.as_deref(), Some("OnlyModel"));
        assert_eq!(c.device_type, "mr");
        assert_eq!(c.confidence, 0.5);
        let order: Vec<&str> = c.matches.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(order, ["b", "d", "c", "a"]);
    }

    #[test]
    fn negated_and_case_insensitive_conditions() {
        let set = rules(
            r#"
            [[rule]]
            id = "ct-not-archive"
            description = "t"
            confidence = 0.8
            device_type = "ct"
            [[rule.match]]
            field = "dicom.modality"
            equals = "ct"
            case_insensitive = true
            [[rule.match]]
            field = "dicom.role_hint"
            equals = "storage_scp"
            not = true
            "#,
        );
        let ct = [(Field::DicomModality, "CT")];
        assert_eq!(set.classify(&input(&ct)).device_type, "ct");
        let archive = [
            (Field::DicomModality, "CT"),
            (Field::DicomRoleHint, "storage_scp"),
        ];
        let c = set.classify(&input(&archive));
        assert_eq!((c.device_type.as_str(), c.confidence), ("unknown", 0.0));
        assert!(c.matches.is_empty());
    }

    #[test]
    fn pseudo_fields_follow_the_mac_and_oui() {
        let set = rules(
            r#"
            [[rule]]
            id = "prefix"
            description = "t"
            confidence = 0.3
            manufacturer = "B. Braun"
            match = [{ field = "mac_prefix", equals = "00-12-21" }]

            [[rule]]
            id = "vendor"
            description = "t"
            confidence = 0.1
            manufacturer = "${value}"
            model = "${1}"
            match = [{ field = "oui", regex = '^(\S+)' }]
            "#,
        );
        let mac: MacAddr = "00:12:21:AA:BB:01".parse().unwrap();
        let c = set.classify(&RuleInput::with_bundled_oui(mac, &[]));
        assert_eq!(c.manufacturer.as_deref(), Some("B. Braun"));
        assert_eq!(c.model.as_deref(), Some("B.Braun"));
        assert_eq!(c.matches[0].field, "mac_prefix");
        assert_eq!(c.matches[0].value, "00:12:21");
        assert_eq!(c.matches[1].value, "B.Braun Melsungen AG");
        // No MAC: no pseudo-facts.
        assert!(set.classify(&input(&[])).matches.is_empty());
    }

    #[test]
    fn classify_does_not_scan_every_rule() {
        let set = RuleSet::bundled().unwrap();
        let mut owned: Vec<(Field, String)> = Vec::new();
        for i in 0..50 {
            let field = Field::ALL[i % Field::ALL.len()];
            owned.push((field, format!("value-{i}")));
        }
        owned[0] = (Field::DicomModality, "CT".into());
        owned[1] = (Field::DicomImplementationVersion, "OFFIS_DCMTK_367".into());
        let facts: Vec<(Field, &str)> = owned.iter().map(|(f, v)| (*f, v.as_str())).collect();
        let mac: MacAddr = "00:12:21:aa:bb:01".parse().unwrap();
        let mut stats = Stats::default();
        let c = set.classify_counted(&RuleInput::with_bundled_oui(mac, &facts), &mut stats);
        assert_eq!(c.device_type, "ct");
        // Scanning every rule against every fact would be len × 53 tests; the index keeps
        // `equals` rules out of the per-fact work entirely.
        let scanned: usize = set.index.slots.iter().map(|s| s.scan.len()).sum();
        let exact: usize = set
            .index
            .slots
            .iter()
            .flat_map(|s| s.exact.values().chain(s.exact_ci.values()))
            .map(Vec::len)
            .sum();
        assert_eq!(exact + scanned, set.len());
        assert!(exact > 40, "equals rules are hash-indexed: {exact}");
        eprintln!(
            "{stats:?}, {exact} indexed, {scanned} scanned, {} rules",
            set.len()
        );
        assert!(
            stats.tests < set.len() * facts.len() / 4,
            "{stats:?} with {} rules ({scanned} scanned)",
            set.len()
        );
        assert!(stats.candidates < 20, "{stats:?}");
    }
}
