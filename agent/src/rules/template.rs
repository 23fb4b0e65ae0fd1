//! Output templates: `manufacturer = "${1}"`, `software_version = "DCMTK ${1}.${2}.${3}"`.
//!
//! A template is literal text with references to the evidence that satisfied the rule's first
//! (primary) condition: `${value}` is the whole value, `${N}` capture group N and `${name}` a
//! named group of its regex. `$$` is a literal `$`; any other `$` is an error, so a mistyped
//! `$1` is caught at load time rather than shipped as text.

use regex::{Captures, Regex};

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value,
    Group(usize),
    Named(String),
}

impl Template {
    /// Parses `text`; the error says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            literal.push_str(rest.get(..pos).unwrap_or_default());
            let after = rest.get(pos + 1..).unwrap_or_default();
            if let Some(tail) = after.strip_prefix('$') {
                literal.push('$');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let end = tail
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in template {text:?}"))?;
                let name = tail.get(..end).unwrap_or_default();
                let part = if name == "value" {
                    Part::Value
                } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                    Part::Group(name.parse().map_err(|_| {
                        format!("capture group number `{name}` is too large in {text:?}")
                    })?)
                } else if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    Part::Named(name.to_owned())
                } else {
                    return Err(format!(
                        "`${{{name}}}` in template {text:?} is not a reference (expected \
                         ${{value}}, ${{N}} or ${{name}})"
                    ));
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = tail.get(end + 1..).unwrap_or_default();
            } else {
                return Err(format!(
                    "stray `$` in template {text:?}: write ${{value}}, ${{1}}, ${{name}}, or $$ \
                     for a literal `$`"
                ));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Checks the references against the primary condition: capture groups need a regex that
    /// has them. `regex` is `None` when the primary condition is not a regex.
    pub(crate) fn check_references(&self, regex: Option<&Regex>) -> Result<(), String> {
        for part in &self.parts {
            match (part, regex) {
                (Part::Literal(_) | Part::Value, _) => {}
                (Part::Group(n), Some(re)) if *n < re.captures_len() => {}
                (Part::Named(name), Some(re))
                    if re.capture_names().flatten().any(|c| c == name) => {}
                (Part::Group(n), Some(re)) => {
                    return Err(format!(
                        "template refers to capture group ${{{n}}} but the first condition's \
                         regex has {} group(s)",
                        re.captures_len() - 1
                    ))
                }
                (Part::Named(name), Some(_)) => {
                    return Err(format!(
                        "template refers to ${{{name}}} but the first condition's regex has no \
                         group named `{name}`"
                    ))
                }
                (Part::Group(_) | Part::Named(_), None) => {
                    return Err(
                        "capture groups can only be referenced when the first condition \
                                is a `regex`; use ${value} for the whole value"
                            .to_owned(),
                    )
                }
            }
        }
        Ok(())
    }

    /// Whether the template needs regex captures to expand.
    pub(crate) fn needs_captures(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Group(_) | Part::Named(_)))
    }

    /// Expands against the evidence value and, when the primary condition is a regex, its
    /// captures. Unmatched optional groups expand to nothing; the result is trimmed, and an
    /// empty result is `None` (the rule then does not set this attribute).
    pub(crate) fn expand(&self, value: &str, captures: Option<&Captures<'_>>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Value => out.push_str(value),
                Part::Group(n) => {
                    if let Some(m) = captures.and_then(|c| c.get(*n)) {
                        out.push_str(m.as_str());
                    }
                }
                Part::Named(name) => {
                    if let Some(m) = captures.and_then(|c| c.name(name)) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        let trimmed = out.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == out.len() {
            Some(out)
        } else {
            Some(trimmed.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_and_references() {
        let t = Template::parse("DCMTK ${1}.${2} ($$${value}) ${ver}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("DCMTK ".into()),
                Part::Group(1),
                Part::Literal(".".into()),
                Part::Group(2),
                Part::Literal(" ($".into()),
                Part::Value,
                Part::Literal(") ".into()),
                Part::Named("ver".into()),
            ]
        );
        assert!(t.needs_captures());
        assert!(!Template::parse("Mindray").unwrap().needs_captures());
        assert_eq!(
            Template::parse("B. Braun")
                .unwrap()
                .expand("x", None)
                .as_deref(),
            Some("B. Braun")
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "$1",
            "${",
            "${1",
            "${}",
            "${a-b}",
            "cost $",
            "${99999999999999999999}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checks_references_against_the_regex() {
        let re = Regex::new(r"^OFFIS_DCMTK_(?P<v>\d)(\d)(\d)$").unwrap();
        assert!(Template::parse("${1}${3}${v}${value}")
            .unwrap()
            .check_references(Some(&re))
            .is_ok());
        assert!(Template::parse("${4}")
            .unwrap()
            .check_references(Some(&re))
            .unwrap_err()
            .contains("3 group(s)"));
        assert!(Template::parse("${w}")
            .unwrap()
            .check_references(Some(&re))
            .is_err());
        assert!(Template::parse("${1}")
            .unwrap()
            .check_references(None)
            .is_err());
        assert!(Template::parse("${value}")
            .unwrap()
            .check_references(None)
            .is_ok());
    }

    #[test]
    fn expands_with_captures_and_trims() {
        let re = Regex::new(r"^OFFIS_DCMTK_(\d)(\d)(\d)(x)?$").unwrap();
        let caps = re.captures("OFFIS_DCMTK_367").unwrap();
        let t = Template::parse("DCMTK ${1}.${2}.${3}${4}").unwrap();
        assert_eq!(
            t.expand("OFFIS_DCMTK_367", Some(&caps)).as_deref(),
            Some("DCMTK 3.6.7")
        );
        let t = Template::parse(" ${value} ").unwrap();
        assert_eq!(t.expand("Mindray", None).as_deref(), Some("Mindray"));
        assert_eq!(t.expand("   ", None), None);
        assert_eq!(
            Template::parse("${4}").unwrap().expand("v", Some(&caps)),
            None
        );
    }
}
