//! Reading dictionary files: TOML → manufacturers (an [`Aliases`] table) and products (rules
//! compiled by the rules loader, so their conditions, templates and device types are checked
//! exactly as a rule's are, with errors located in the dictionary file).

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use ward_protocols::Field;

use super::{
    normalise, Aliases, Dictionary, FileSummary, Summary, MAX_ALIASES, MAX_CONFIDENCE, MAX_FILES,
    MAX_FILE_BYTES, MAX_NAME_CHARS,
};
use crate::rules::load::{compile_raw, error_at, merge, RawCondition, RawRule};
use crate::rules::{RuleError, RuleSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    manufacturer: Vec<Spanned<RawManufacturer>>,
    #[serde(default)]
    product: Vec<Spanned<RawProduct>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManufacturer {
    name: Option<Spanned<String>>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    source: Option<Spanned<String>>,
    #[allow(dead_code)] // documentation for readers of the file
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    id: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
    manufacturer: Option<Spanned<String>>,
    line: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    device_type: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    note: Option<Spanned<String>>,
    confidence: Option<Spanned<f64>>,
    #[serde(rename = "match")]
    conditions: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    /// Alternatives: each condition on its own recognises the product (one rule each).
    match_any: Option<Spanned<Vec<Spanned<RawAlternative>>>>,
}

/// A `match_any` entry: a rule condition whose `fields` may list several fields, standing for
/// one condition per field (a product name is recognised the same way in every field that can
/// carry it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlternative {
    field: Option<Spanned<String>>,
    fields: Option<Spanned<Vec<Spanned<String>>>>,
    equals: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    contains: Option<Spanned<String>>,
    regex: Option<Spanned<String>>,
    #[serde(default)]
    case_insensitive: bool,
}

impl RawAlternative {
    /// The conditions this entry stands for, in field order.
    fn expand(
        self,
        span: Range<usize>,
        err: &dyn Fn(Range<usize>, String) -> RuleError,
    ) -> Result<Vec<Spanned<RawCondition>>, RuleError> {
        let fields: Vec<Spanned<String>> = match (self.field, self.fields) {
            (Some(f), None) => vec![f],
            (None, Some(list)) if list.get_ref().is_empty() => {
                return Err(err(list.span(), "`fields` is empty".to_owned()))
            }
            (None, Some(list)) => list.into_inner(),
            (None, None) => {
                return Err(err(span, "condition has no `field` or `fields`".to_owned()))
            }
            (Some(f), Some(_)) => {
                return Err(err(
                    f.span(),
                    "give `field` or `fields`, not both".to_owned(),
                ))
            }
        };
        Ok(fields
            .into_iter()
            .map(|field| {
                Spanned::new(
                    span.clone(),
                    RawCondition {
                        field,
                        equals: self.equals.clone(),
                        prefix: self.prefix.clone(),
                        contains: self.contains.clone(),
                        regex: self.regex.clone(),
                        case_insensitive: self.case_insensitive,
                        not: false,
                    },
                )
            })
            .collect())
    }
}

/// Most conditions one `match_any` stands for (each is a rule).
const MAX_ALTERNATIVES: usize = 256;

fn yes() -> bool {
    true
}

/// Confidence of a product whose entry gives none, by the field of its first condition: a field
/// that names the product model is strong, a vendor's product string in a protocol header a
/// little less, a name someone chose (host names, AE titles, friendly names) weak.
pub(super) fn default_confidence(field: &str) -> f64 {
    if is_one_of(field, MODEL_FIELDS) {
        0.85
    } else if is_one_of(field, PRODUCT_STRINGS) {
        // Above the vendor-only rules of the same fields (0.6: "a B. Braun device"), which a
        // product line refines.
        0.65
    } else {
        // Host names, AE titles, station and friendly names, and anything else.
        0.5
    }
}

/// Whether the field named `name` (as a condition gives it) is one of `fields`.
fn is_one_of(name: &str, fields: &[Field]) -> bool {
    fields.iter().any(|f| f.name() == name)
}

/// Fields whose value is the device's own model name: a product recognised there keeps the
/// model as sent (`SOMATOM Force`) rather than the product line (`SOMATOM`).
const MODEL_FIELDS: &[Field] = &[
    Field::DicomModelName,
    Field::Hl7DeviceModel,
    Field::LldpMedModel,
    Field::SdcModelName,
    Field::SdcModelNumber,
    Field::SsdpModelName,
    Field::SsdpModelNumber,
    Field::MdnsModel,
    Field::IntellivueModel,
    Field::Poct1aModelId,
    Field::AstmSenderModel,
    Field::FhirDeviceModelNumber,
    Field::BccPumpModel,
];

/// Fields carrying a vendor's product string (protocol headers, vendor classes, descriptions).
const PRODUCT_STRINGS: &[Field] = &[
    Field::DhcpVendorClass,
    Field::Dhcpv6VendorClass,
    Field::Hl7SendingApplication,
    Field::Hl7ReceivingApplication,
    Field::Hl7EquipmentInstance,
    Field::AstmSender,
    Field::HttpUserAgent,
    Field::HttpServer,
    Field::SnmpSysDescr,
    Field::LldpSystemDescription,
    Field::CdpPlatform,
    Field::SsdpServer,
    Field::SsdpModelDescription,
    Field::DicomImplementationVersion,
    Field::DicomSoftwareVersions,
    Field::MdnsServiceType,
];

/// One parsed file, kept until every file's manufacturers are known.
struct Parsed {
    name: String,
    text: String,
    file: RawFile,
}

impl Parsed {
    fn error(&self, span: Range<usize>, rule: Option<&str>, message: String) -> RuleError {
        error_at(&self.name, &self.text, span, rule, message)
    }
}

/// Where a manufacturer spelling was defined, for duplicate errors.
struct Defined {
    name: Arc<str>,
    at: String,
}

/// Loads `files` (name, text) as one set over `base`.
pub(super) fn load_set(
    files: Vec<(String, String)>,
    base: &Aliases,
) -> Result<Dictionary, RuleError> {
    let mut parsed = Vec::with_capacity(files.len());
    for (name, text) in files {
        let file: RawFile = toml::from_str(&text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            error_at(
                &name,
                &text,
                span,
                None,
                e.message().trim().replace('\n', "; "),
            )
        })?;
        parsed.push(Parsed { name, text, file });
    }

    // Manufacturers of the whole set first: a product may name one defined in a later file.
    let mut own = Aliases::default();
    let mut seen: HashMap<String, Defined> = HashMap::new();
    let mut summary = Summary::default();
    for p in &parsed {
        let mut aliases = 0;
        for m in &p.file.manufacturer {
            aliases += m.get_ref().aliases.len();
            manufacturer(p, m, &mut own, &mut seen)?;
        }
        summary.files.push(FileSummary {
            file: p.name.clone(),
            manufacturers: p.file.manufacturer.len(),
            aliases,
            products: 0,
            disabled: 0,
        });
    }
    let known = base.overlaid(&own);

    let mut rules = RuleSet::default();
    for (p, counts) in parsed.iter_mut().zip(&mut summary.files) {
        let products = std::mem::take(&mut p.file.product);
        let mut raw = Vec::with_capacity(products.len());
        for (n, product) in products.into_iter().enumerate() {
            let enabled = product.get_ref().enabled;
            raw.extend(compile_product(p, n + 1, product, &known)?);
            if enabled {
                counts.products += 1;
            } else {
                counts.disabled += 1;
            }
        }
        rules = merge(rules, compile_raw(&p.name, &p.text, raw)?)?;
    }
    Ok(Dictionary {
        rules,
        aliases: own,
        summary,
    })
}

fn check_name(p: &Parsed, what: &str, value: &Spanned<String>) -> Result<(), RuleError> {
    let v = value.get_ref();
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(p.error(
            value.span(),
            None,
            format!("{what} is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if normalise(v).is_empty() {
        return Err(p.error(
            value.span(),
            None,
            format!("{what} {v:?} has no letters or digits"),
        ));
    }
    Ok(())
}

fn manufacturer(
    p: &Parsed,
    m: &Spanned<RawManufacturer>,
    own: &mut Aliases,
    seen: &mut HashMap<String, Defined>,
) -> Result<(), RuleError> {
    let span = m.span();
    let raw = m.get_ref();
    let missing = |key: &str| {
        p.error(
            span.clone(),
            None,
            format!("manufacturer: missing key `{key}`"),
        )
    };
    let name = raw.name.as_ref().ok_or_else(|| missing("name"))?;
    check_name(p, "manufacturer name", name)?;
    let source = raw.source.as_ref().ok_or_else(|| missing("source"))?;
    if source.get_ref().trim().is_empty() {
        return Err(p.error(
            source.span(),
            None,
            "`source` is empty: cite where the names come from".to_owned(),
        ));
    }
    if raw.aliases.len() > MAX_ALIASES {
        return Err(p.error(span, None, format!("more than {MAX_ALIASES} aliases")));
    }
    let canonical: Arc<str> = Arc::from(name.get_ref().as_str());
    let id = own.intern(&canonical);
    for spelling in std::iter::once(name).chain(&raw.aliases) {
        check_name(p, "alias", spelling)?;
        let key = normalise(spelling.get_ref());
        let (line, column) = line_col(&p.text, spelling.span().start);
        if let Some(first) = seen.get(&key) {
            // The same spelling listed twice for one manufacturer is harmless.
            if first.name != canonical {
                return Err(p.error(
                    spelling.span(),
                    None,
                    format!(
                        "{:?} already names manufacturer {:?} (at {}): a spelling can belong \
                         to one manufacturer only",
                        spelling.get_ref(),
                        &*first.name,
                        first.at
                    ),
                ));
            }
            if std::ptr::eq(spelling, name) {
                return Err(p.error(
                    spelling.span(),
                    None,
                    format!(
                        "manufacturer {:?} is defined twice (first at {}): list every alias in \
                         one table",
                        spelling.get_ref(),
                        first.at
                    ),
                ));
            }
            continue;
        }
        seen.insert(
            key.clone(),
            Defined {
                name: canonical.clone(),
                at: format!("{}:{line}:{column}", p.name),
            },
        );
        own.keys.insert(key.into(), id);
    }
    Ok(())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A file name usable in an id: `infusion` for `…/infusion.toml`, other characters as `_`.
fn id_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\', ':']).next().unwrap_or(name);
    let stem = base.strip_suffix(".toml").unwrap_or(base);
    stem.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Escapes `$` so a literal product line is not read as a template.
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

fn compile_product(
    p: &Parsed,
    n: usize,
    product: Spanned<RawProduct>,
    known: &Aliases,
) -> Result<Vec<Spanned<RawRule>>, RuleError> {
    let span = product.span();
    let raw = product.into_inner();
    let id = raw.id.unwrap_or_else(|| {
        Spanned::new(span.clone(), format!("products.{}.{n}", id_stem(&p.name)))
    });
    let rule_id = id.get_ref().clone();
    let err = |span: Range<usize>, message: String| p.error(span, Some(&rule_id), message);
    if !raw.enabled {
        // A disabled product only switches a bundled one off: it needs nothing but its id.
        // (A `match_any` product's rules are `<id>.1` …: switch those off by their own ids.)
        return Ok(vec![Spanned::new(
            span,
            RawRule {
                id,
                enabled: false,
                description: None,
                confidence: None,
                manufacturer: None,
                model: None,
                device_type: None,
                software_version: None,
                conditions: None,
            },
        )]);
    }
    let missing = |key: &str| err(span.clone(), format!("missing key `{key}`"));
    let manufacturer = raw.manufacturer.ok_or_else(|| missing("manufacturer"))?;
    match known.canonical(manufacturer.get_ref()) {
        Some(c) if c == manufacturer.get_ref() => {}
        Some(c) => {
            return Err(err(
                manufacturer.span(),
                format!(
                    "{:?} is an alias of manufacturer {c:?}: name the manufacturer by its \
                     canonical name",
                    manufacturer.get_ref()
                ),
            ))
        }
        None => {
            return Err(err(
                manufacturer.span(),
                format!(
                    "unknown manufacturer {:?}: define it in a [[manufacturer]] table",
                    manufacturer.get_ref()
                ),
            ))
        }
    }
    let line = raw.line.ok_or_else(|| missing("line"))?;
    if line.get_ref().trim().is_empty() {
        return Err(err(line.span(), "`line` is empty".to_owned()));
    }
    let source = raw.source.ok_or_else(|| missing("source"))?;
    if source.get_ref().trim().is_empty() {
        return Err(err(
            source.span(),
            "`source` is empty: cite the public document the patterns come from".to_owned(),
        ));
    }
    let device_type = raw.device_type.ok_or_else(|| missing("device_type"))?;
    if let Some(c) = &raw.confidence {
        if *c.get_ref() > MAX_CONFIDENCE {
            return Err(err(
                c.span(),
                format!(
                    "confidence {} is above {MAX_CONFIDENCE}, the most a product entry may have \
                     (a device's own serial-bearing model fields, 0.9, outrank it)",
                    c.get_ref()
                ),
            ));
        }
    }
    // One rule for `match` (its conditions AND-ed), one per condition of `match_any`.
    let alternatives: Vec<(String, Spanned<Vec<Spanned<RawCondition>>>)> =
        match (raw.conditions, raw.match_any) {
            (Some(all), None) => vec![(rule_id.clone(), all)],
            (None, Some(any)) => {
                let any_span = any.span();
                let list = any.into_inner();
                if list.is_empty() {
                    return Err(err(
                        any_span,
                        "`match_any` is empty: give at least one condition".to_owned(),
                    ));
                }
                let mut conditions = Vec::new();
                for alternative in list {
                    let a_span = alternative.span();
                    conditions.extend(alternative.into_inner().expand(a_span, &err)?);
                }
                if conditions.len() > MAX_ALTERNATIVES {
                    return Err(err(
                        any_span,
                        format!("`match_any` stands for more than {MAX_ALTERNATIVES} conditions"),
                    ));
                }
                conditions
                    .into_iter()
                    .enumerate()
                    .map(|(k, c)| {
                        let c_span = c.span();
                        (
                            format!("{rule_id}.{}", k + 1),
                            Spanned::new(c_span, vec![c]),
                        )
                    })
                    .collect()
            }
            (None, None) => return Err(missing("match")),
            (Some(all), Some(_)) => {
                return Err(err(
                    all.span(),
                    "give `match` (all conditions hold) or `match_any` (any one does), not both"
                        .to_owned(),
                ))
            }
        };
    let mut description = format!("{} {}", manufacturer.get_ref(), line.get_ref());
    if let Some(note) = &raw.note {
        description.push_str(" (");
        description.push_str(note.get_ref());
        description.push(')');
    }
    description.push_str("; source: ");
    description.push_str(source.get_ref());
    let mut out = Vec::with_capacity(alternatives.len());
    for (rule_id, conditions) in alternatives {
        let field = conditions
            .get_ref()
            .first()
            .map(|c| c.get_ref().field.get_ref().clone())
            .unwrap_or_default();
        let confidence = match &raw.confidence {
            Some(c) => Spanned::new(c.span(), *c.get_ref()),
            None => Spanned::new(span.clone(), default_confidence(&field)),
        };
        // Without a model: the model as sent in a model-name field, else the product line
        // (the most specific name known).
        let model = match &raw.model {
            Some(m) => Spanned::new(m.span(), m.get_ref().clone()),
            None if is_one_of(&field, MODEL_FIELDS) => {
                Spanned::new(line.span(), "${value}".to_owned())
            }
            None => Spanned::new(line.span(), literal(line.get_ref())),
        };
        let id = Spanned::new(id.span(), rule_id);
        out.push(Spanned::new(
            span.clone(),
            RawRule {
                id,
                enabled: true,
                description: Some(Spanned::new(span.clone(), description.clone())),
                confidence: Some(confidence),
                manufacturer: Some(Spanned::new(
                    manufacturer.span(),
                    literal(manufacturer.get_ref()),
                )),
                model: Some(model),
                device_type: Some(Spanned::new(
                    device_type.span(),
                    device_type.get_ref().clone(),
                )),
                software_version: None,
                conditions: Some(conditions),
            },
        ));
    }
    Ok(out)
}

/// The `*.toml` files of `dir` in file-name order, each read up to [`MAX_FILE_BYTES`].
pub(super) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, RuleError> {
    let io = |path: &Path, source: std::io::Error| RuleError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            if paths.len() == MAX_FILES {
                return Err(io(
                    dir,
                    std::io::Error::other(format!("more than {MAX_FILES} *.toml files")),
                ));
            }
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| io(&path, e))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(io(
                &path,
                std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes")),
            ));
        }
        files.push((path.display().to_string(), text));
    }
    Ok(files)
}
