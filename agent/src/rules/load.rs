//! Reading rule files: TOML → raw rules (with source spans) → validated, compiled rules.
//!
//! Every error carries the `file:line:column` of the offending key or value: TOML errors take
//! theirs from the `toml` crate's span, semantic errors from `Spanned` values.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use regex::RegexBuilder;
use serde::Deserialize;
use toml::Spanned;
use ward_protocols::roles::ROLES;
use ward_protocols::Field;

use super::{
    Condition, FileSummary, Located, Rule, RuleError, RuleSet, RuleSummary, Subject, Template,
    Test, DEVICE_TYPES,
};

/// Largest compiled regex accepted from a rule file (bytes of the compiled program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// One `[[rule]]` table as written. The product dictionary (`crate::products`) assembles these
/// from its own entries so that they are validated and compiled exactly like rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) id: Spanned<String>,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    pub(crate) description: Option<Spanned<String>>,
    pub(crate) confidence: Option<Spanned<f64>>,
    pub(crate) manufacturer: Option<Spanned<String>>,
    pub(crate) model: Option<Spanned<String>>,
    pub(crate) device_type: Option<Spanned<String>>,
    pub(crate) software_version: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub(crate) conditions: Option<Spanned<Vec<Spanned<RawCondition>>>>,
}

fn yes() -> bool {
    true
}

/// One condition as written (`match` entries of rules and of products).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    pub(crate) field: Spanned<String>,
    pub(crate) equals: Option<Spanned<String>>,
    pub(crate) prefix: Option<Spanned<String>>,
    pub(crate) contains: Option<Spanned<String>>,
    pub(crate) regex: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) case_insensitive: bool,
    #[serde(default)]
    pub(crate) not: bool,
}

/// Error builder for one file.
struct Ctx<'t> {
    source: Arc<str>,
    text: &'t str,
    /// Byte offsets of the newlines: every rule is located, and scanning the text from the
    /// start for each one made loading quadratic in the file's size.
    newlines: Vec<usize>,
    /// Regexes compiled so far in this file, by (pattern, case-insensitive): a product entry of
    /// the dictionary repeats one pattern over several fields, and compiling it once per field
    /// multiplied the start-up cost.
    regexes: std::cell::RefCell<HashMap<(String, bool), regex::Regex>>,
}

impl Ctx<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.newlines.partition_point(|&n| n < offset);
        let start = match line {
            0 => 0,
            l => self.newlines.get(l - 1).map_or(0, |n| n + 1),
        };
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line + 1, column)
    }

    fn error(&self, span: Range<usize>, rule: Option<&str>, message: String) -> RuleError {
        let (line, column) = self.line_col(span.start);
        RuleError::Invalid {
            file: self.source.to_string(),
            line,
            column,
            rule: rule.map(str::to_owned),
            message,
        }
    }

    fn located(&self, id: &str, span: Range<usize>) -> Located {
        let (line, column) = self.line_col(span.start);
        Located {
            id: id.to_owned(),
            source: self.source.clone(),
            line,
            column,
        }
    }
}

impl<'t> Ctx<'t> {
    fn new(source_name: &str, text: &'t str) -> Ctx<'t> {
        Ctx {
            source: Arc::from(source_name),
            text,
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
            regexes: Default::default(),
        }
    }
}

/// An error at byte `span` of `text` (the file `source_name`), located as `line:column`: for
/// other loaders of rule-like files (`crate::products`) so that their errors read the same.
pub(crate) fn error_at(
    source_name: &str,
    text: &str,
    span: Range<usize>,
    rule: Option<&str>,
    message: String,
) -> RuleError {
    Ctx::new(source_name, text).error(span, rule, message)
}

/// Parses and validates one rule file.
pub(super) fn parse(source_name: &str, text: &str) -> Result<RuleSet, RuleError> {
    let ctx = Ctx::new(source_name, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let rule = rule_at(text, span.start);
        // The message alone: the span already says where, and `Display` adds a source excerpt.
        ctx.error(
            span,
            rule.as_deref(),
            e.message().trim().replace('\n', "; "),
        )
    })?;
    compile_all(&ctx, raw.rule)
}

/// Validates and compiles rules assembled by another loader from the file `source_name`
/// (whose `text` the spans point into): ids, duplicates and every rule check, as for a rule file.
pub(crate) fn compile_raw(
    source_name: &str,
    text: &str,
    raw: Vec<Spanned<RawRule>>,
) -> Result<RuleSet, RuleError> {
    compile_all(&Ctx::new(source_name, text), raw)
}

fn compile_all(ctx: &Ctx<'_>, raw: Vec<Spanned<RawRule>>) -> Result<RuleSet, RuleError> {
    let mut rules = Vec::with_capacity(raw.len());
    let mut disabled = Vec::new();
    let mut seen: HashMap<String, Located> = HashMap::new();
    for spanned in raw {
        let span = spanned.span();
        let raw_rule = spanned.into_inner();
        let id = raw_rule.id.get_ref().clone();
        check_id(ctx, &raw_rule.id)?;
        let at = ctx.located(&id, span.clone());
        if let Some(first) = seen.get(&id) {
            return Err(duplicate(ctx, &raw_rule.id, first));
        }
        seen.insert(id.clone(), at.clone());
        if raw_rule.enabled {
            rules.push(compile(ctx, at, span, raw_rule)?);
        } else {
            disabled.push(at);
        }
    }
    Ok(RuleSet::from_parts(rules, disabled))
}

/// Id of the rule whose table contains byte `offset`, if the file is valid enough to tell: used
/// to name the rule in errors the strict parse reports (unknown keys, wrong types).
fn rule_at(text: &str, offset: usize) -> Option<String> {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        rule: Vec<Spanned<LooseRule>>,
    }
    #[derive(Deserialize)]
    struct LooseRule {
        id: Option<toml::Value>,
    }
    let loose: Loose = toml::from_str(text).ok()?;
    // A rule's span covers its own keys but not the `[[rule.match]]` tables after it, so take
    // the last rule that starts before the offset.
    loose
        .rule
        .iter()
        .rev()
        .find(|r| r.span().start <= offset)
        .and_then(|r| r.get_ref().id.as_ref()?.as_str().map(str::to_owned))
}

fn check_id(ctx: &Ctx<'_>, id: &Spanned<String>) -> Result<(), RuleError> {
    let value = id.get_ref();
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ctx.error(
            id.span(),
            None,
            format!("invalid rule id {value:?}: use 1-128 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn duplicate(ctx: &Ctx<'_>, id: &Spanned<String>, first: &Located) -> RuleError {
    ctx.error(
        id.span(),
        Some(id.get_ref()),
        format!(
            "duplicate rule id (first defined at {}:{}:{})",
            first.source, first.line, first.column
        ),
    )
}

fn compile(
    ctx: &Ctx<'_>,
    at: Located,
    span: Range<usize>,
    raw: RawRule,
) -> Result<Rule, RuleError> {
    let id = at.id.clone();
    let err = |span: Range<usize>, message: String| ctx.error(span, Some(&id), message);
    let missing = |key: &str| err(span.clone(), format!("missing key `{key}`"));

    let description = raw.description.ok_or_else(|| missing("description"))?;
    if description.get_ref().trim().is_empty() {
        return Err(err(
            description.span(),
            "`description` is empty: say what the rule recognises and cite its public source"
                .to_owned(),
        ));
    }

    let confidence = raw.confidence.ok_or_else(|| missing("confidence"))?;
    let c = *confidence.get_ref();
    if !(0.0..=1.0).contains(&c) {
        return Err(err(
            confidence.span(),
            format!("confidence {c} is out of range (expected 0.0 to 1.0)"),
        ));
    }

    let device_type = match raw.device_type {
        None => None,
        Some(t) => Some(
            DEVICE_TYPES
                .iter()
                .copied()
                .find(|known| *known == t.get_ref())
                .ok_or_else(|| {
                    err(
                        t.span(),
                        format!(
                            "unknown device_type {:?} (expected one of: {})",
                            t.get_ref(),
                            DEVICE_TYPES.join(", ")
                        ),
                    )
                })?,
        ),
    };

    let conditions_raw = raw.conditions.ok_or_else(|| missing("match"))?;
    if conditions_raw.get_ref().is_empty() {
        return Err(err(
            conditions_raw.span(),
            "`match` is empty: a rule needs at least one condition".to_owned(),
        ));
    }
    let mut conditions = Vec::with_capacity(conditions_raw.get_ref().len());
    for (i, cond) in conditions_raw.into_inner().into_iter().enumerate() {
        let cond_span = cond.span();
        let compiled = compile_condition(cond.into_inner(), &err, cond_span.clone(), &ctx.regexes)?;
        if i == 0 && compiled.negate {
            return Err(err(
                cond_span,
                "the first condition cannot have `not = true`: it supplies the evidence the \
                 match reports"
                    .to_owned(),
            ));
        }
        conditions.push(compiled);
    }
    let primary_regex = match conditions.first().map(|c| &c.test) {
        Some(Test::Regex(re)) => Some(re),
        _ => None,
    };
    let template = |value: Option<Spanned<String>>| -> Result<Option<Template>, RuleError> {
        let Some(value) = value else { return Ok(None) };
        let t = Template::parse(value.get_ref()).map_err(|m| err(value.span(), m))?;
        t.check_references(primary_regex)
            .map_err(|m| err(value.span(), m))?;
        Ok(Some(t))
    };
    let manufacturer = template(raw.manufacturer)?;
    let model = template(raw.model)?;
    let software_version = template(raw.software_version)?;
    if manufacturer.is_none()
        && model.is_none()
        && device_type.is_none()
        && software_version.is_none()
    {
        return Err(err(
            span,
            "the rule sets nothing: give at least one of manufacturer, model, device_type, \
             software_version"
                .to_owned(),
        ));
    }

    Ok(Rule {
        at,
        conditions,
        manufacturer,
        model,
        device_type,
        software_version,
        // Confidences are shown to two decimals at most; f32 is plenty.
        confidence: c as f32,
        user: false,
    })
}

fn compile_condition(
    raw: RawCondition,
    err: &dyn Fn(Range<usize>, String) -> RuleError,
    span: Range<usize>,
    cache: &std::cell::RefCell<HashMap<(String, bool), regex::Regex>>,
) -> Result<Condition, RuleError> {
    let subject = Subject::parse(raw.field.get_ref()).ok_or_else(|| {
        let names: Vec<&str> = Field::ALL
            .iter()
            .map(|f| f.name())
            .chain(["oui", "mac_prefix", "mac", "role"])
            .collect();
        err(
            raw.field.span(),
            format!(
                "unknown field {:?} (expected one of: {})",
                raw.field.get_ref(),
                names.join(", ")
            ),
        )
    })?;
    let mut tests: Vec<(&str, Spanned<String>)> = Vec::new();
    for (kind, value) in [
        ("equals", raw.equals),
        ("prefix", raw.prefix),
        ("contains", raw.contains),
        ("regex", raw.regex),
    ] {
        if let Some(v) = value {
            tests.push((kind, v));
        }
    }
    let (kind, pattern) = match tests.len() {
        1 => tests.remove(0),
        0 => {
            return Err(err(
                span,
                "condition has no test: give one of equals, prefix, contains, regex".to_owned(),
            ))
        }
        _ => {
            let kinds: Vec<&str> = tests.iter().map(|(k, _)| *k).collect();
            return Err(err(
                span,
                format!(
                    "condition has {} tests ({}): give exactly one (use several conditions to \
                     AND them)",
                    kinds.len(),
                    kinds.join(", ")
                ),
            ));
        }
    };
    let pattern_span = pattern.span();
    let mut text = pattern.into_inner();
    if text.is_empty() {
        return Err(err(pattern_span, format!("empty `{kind}` pattern")));
    }
    // A role is a fixed word: a misspelt one would silently never match.
    if subject == Subject::Role && kind == "equals" && !ROLES.contains(&text.as_str()) {
        return Err(err(
            pattern_span,
            format!(
                "unknown role {:?} (expected one of: {})",
                text,
                ROLES.join(", ")
            ),
        ));
    }
    // MAC pseudo-fields are lowercase and colon-separated; literal patterns are normalised to
    // that form and every test on them ignores case.
    let ci = raw.case_insensitive || subject.is_mac();
    if subject.is_mac() && kind != "regex" {
        if !text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'-')
        {
            return Err(err(
                pattern_span,
                format!(
                    "{:?} is not a MAC address or prefix (hex digits separated by `:`)",
                    text
                ),
            ));
        }
        text = text.to_ascii_lowercase().replace('-', ":");
    }
    let build_regex = |source: &str| {
        let key = (source.to_owned(), ci);
        if let Some(re) = cache.borrow().get(&key) {
            // A clone shares the compiled program.
            return Ok(re.clone());
        }
        let re = RegexBuilder::new(source)
            .case_insensitive(ci)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| err(pattern_span.clone(), regex_message(&e)))?;
        cache.borrow_mut().insert(key, re.clone());
        Ok(re)
    };
    let test = match (kind, ci) {
        ("equals", false) => Test::Equals(text.into()),
        ("equals", true) => Test::EqualsCi(text.chars().flat_map(char::to_lowercase).collect()),
        ("prefix", false) => Test::Prefix(text.into()),
        ("contains", false) => Test::Contains(text.into()),
        ("prefix", true) => Test::Regex(build_regex(&format!("^{}", regex::escape(&text)))?),
        ("contains", true) => Test::Regex(build_regex(&regex::escape(&text))?),
        _ => Test::Regex(build_regex(&text)?),
    };
    Ok(Condition {
        subject,
        test,
        negate: raw.not,
    })
}

/// One-line form of a regex error (the library's form spans several lines with a caret diagram).
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    let detail = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim());
    format!("invalid regex: {detail}")
}

/// Appends `more` to `set`, rejecting an id defined in both.
pub(crate) fn merge(set: RuleSet, more: RuleSet) -> Result<RuleSet, RuleError> {
    let known: HashMap<&str, &Located> = set
        .rules
        .iter()
        .map(|r| &r.at)
        .chain(&set.disabled)
        .map(|l| (l.id.as_str(), l))
        .collect();
    let clash = more
        .rules
        .iter()
        .map(|r| &r.at)
        .chain(&more.disabled)
        .find_map(|l| known.get(l.id.as_str()).map(|first| (l, *first)));
    if let Some((again, first)) = clash {
        return Err(RuleError::Invalid {
            file: again.source.to_string(),
            line: again.line,
            column: again.column,
            rule: Some(again.id.clone()),
            message: format!(
                "duplicate rule id (first defined at {}:{}:{})",
                first.source, first.line, first.column
            ),
        });
    }
    drop(known);
    let RuleSet {
        mut rules,
        mut disabled,
        ..
    } = set;
    rules.extend(more.rules);
    disabled.extend(more.disabled);
    Ok(RuleSet::from_parts(rules, disabled))
}

/// Loads every `*.toml` in `dir`, sorted by file name.
pub(super) fn load_dir(dir: &Path) -> Result<(RuleSet, RuleSummary), RuleError> {
    let io = |path: &Path, source: std::io::Error| RuleError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut set = RuleSet::default();
    let mut summary = RuleSummary::default();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let name = path.display().to_string();
        let file = parse(&name, &text)?;
        summary.files.push(FileSummary {
            file: name,
            rules: file.rules.len(),
            disabled: file.disabled.len(),
        });
        set = merge(set, file)?;
    }
    Ok((set, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\nçd = 1\n";
        let ctx = Ctx {
            source: Arc::from("t"),
            text,
            newlines: vec![2, text.len() - 1],
            regexes: Default::default(),
        };
        assert_eq!(ctx.line_col(0), (1, 1));
        assert_eq!(ctx.line_col(2), (1, 3));
        assert_eq!(ctx.line_col(3), (2, 1));
        assert_eq!(ctx.line_col(3 + "çd".len()), (2, 3));
        assert_eq!(ctx.line_col(999), (3, 1));
    }

    #[test]
    #[allow(clippy::invalid_regex)] // the point of the test
    fn regex_errors_are_one_line() {
        let e = regex::Regex::new("a(b").unwrap_err();
        let m = regex_message(&e);
        assert!(!m.contains('\n'), "{m}");
        assert!(m.starts_with("invalid regex: "), "{m}");
    }
}
