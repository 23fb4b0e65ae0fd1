//! SBOM import: a CycloneDX 1.4–1.6 JSON bill of materials read into an [`Sbom`] — the
//! product it describes (model and version, bound to a contract) and its components, each
//! with the PURL and CPE that CSAF advisories identify open-source components by.
//!
//! Why: advisories about the libraries inside a device (OpenSSL, zlib, a Linux kernel) name
//! no device; they name a package (`pkg:generic/openssl@1.1.1k`) or a CPE. The manufacturer's
//! SBOM for a product release is what ties such a package to the devices on the wire
//! ([`crate::compliance::sbom`] does the matching).
//!
//! Deserialisation is typed (serde_json's line and column kept for syntax, type, missing-field
//! and unknown-value errors); checks over the whole document (duplicate `bom-ref`, too deep or
//! too many nested components, no product model) find their place by searching the text. The
//! import is all or nothing: one problem anywhere stores nothing.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::compliance::sbom::{Cpe, Purl};
use crate::import::advisories::{json_error, line_column, MAX_FILE_BYTES};
use crate::import::files::{read_text, ImportError};

/// More components than any real device's SBOM (a full Linux firmware lists a few thousand).
pub const MAX_COMPONENTS: usize = 50_000;
/// Deeper nesting than any real SBOM (components inside components inside …).
pub const MAX_DEPTH: usize = 16;

/// One imported SBOM, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sbom {
    /// `serialNumber` (`urn:uuid:…`), when the document has one: with `version` it identifies
    /// the BOM, so a re-import replaces it.
    pub serial_number: Option<String>,
    /// `version`: the BOM's revision (1, 2, …); an older one never replaces a newer one.
    pub bom_version: u32,
    /// `specVersion`: 1.4, 1.5 or 1.6.
    pub spec_version: String,
    /// The contract whose devices it describes (must be imported).
    pub contract_id: String,
    /// The product's model: `--product`, else `metadata.component.name`.
    pub product_model: String,
    /// The product's software version: `--version`, else `metadata.component.version`; none
    /// means every version of the model.
    pub product_version: Option<String>,
    /// The product's manufacturer as the SBOM states it (`metadata.component.manufacturer` or
    /// `supplier`, else `metadata.manufacturer` or `supplier`).
    pub manufacturer: Option<String>,
    /// The components, nested ones flattened in document order.
    pub components: Vec<Component>,
    /// The file it was read from.
    pub source: String,
}

impl Sbom {
    /// The key a re-import replaces: the serial number, or without one the product it is bound
    /// to (contract, model, version).
    pub fn key(&self) -> String {
        match &self.serial_number {
            Some(s) => s.clone(),
            None => format!(
                "product:{}/{}/{}",
                self.contract_id,
                self.product_model,
                self.product_version.as_deref().unwrap_or("*")
            ),
        }
    }
}

/// One component of the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// `name`.
    pub name: String,
    /// `group` (Maven group, npm scope…).
    pub group: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `purl`, checked to be a package URL.
    pub purl: Option<String>,
    /// `cpe`, checked to be a CPE 2.2 or 2.3 name.
    pub cpe: Option<String>,
    /// `supplier.name`.
    pub supplier: Option<String>,
}

/// The product an SBOM is bound to, from the command line (each overrides the document).
#[derive(Debug, Clone, Default)]
pub struct Binding {
    /// `--contract`.
    pub contract_id: String,
    /// `--product`.
    pub model: Option<String>,
    /// `--version`.
    pub version: Option<String>,
}

// ---- the CycloneDX document as serde reads it ---------------------------------------------

/// A string that is not empty or blank, bounded so a hostile file cannot make one huge value.
#[derive(Debug, Clone)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        if s.len() > 4096 {
            return Err(serde::de::Error::custom("longer than 4096 bytes"));
        }
        Ok(Text(s.trim().to_owned()))
    }
}

#[derive(Deserialize)]
enum BomFormat {
    CycloneDX,
}

#[derive(Deserialize, Clone, Copy)]
enum SpecVersion {
    #[serde(rename = "1.4")]
    V1_4,
    #[serde(rename = "1.5")]
    V1_5,
    #[serde(rename = "1.6")]
    V1_6,
}

/// `serialNumber`: `urn:uuid:` and an RFC 4122 UUID, as the CycloneDX schema requires.
#[derive(Debug, Clone)]
struct Serial(String);

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.strip_prefix("urn:uuid:").is_some_and(|u| {
            u.len() == 36
                && u.char_indices().all(|(i, c)| {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                })
        });
        if ok {
            Ok(Serial(s.to_ascii_lowercase()))
        } else {
            Err(serde::de::Error::custom(format!(
                "serialNumber {:?} is not urn:uuid:<UUID> (e.g. urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79)",
                clip(&s)
            )))
        }
    }
}

/// `version`: the BOM's revision, an integer from 1.
#[derive(Debug, Clone, Copy)]
struct BomVersion(u32);

impl<'de> Deserialize<'de> for BomVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        u32::try_from(v)
            .ok()
            .filter(|v| *v >= 1)
            .map(BomVersion)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "version {v}: a BOM's version is an integer from 1"
                ))
            })
    }
}

/// A checked package URL, kept as written.
#[derive(Debug, Clone)]
struct PurlText(String);

impl<'de> Deserialize<'de> for PurlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(d)?;
        Purl::parse(&s)
            .map(|_| PurlText(s.clone()))
            .map_err(|e| serde::de::Error::custom(format!("purl {:?}: {e}", clip(&s))))
    }
}

/// A checked CPE name, kept as written.
#[derive(Debug, Clone)]
struct CpeText(String);

impl<'de> Deserialize<'de> for CpeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(d)?;
        Cpe::parse(&s)
            .map(|_| CpeText(s.clone()))
            .map_err(|e| serde::de::Error::custom(format!("cpe {:?}: {e}", clip(&s))))
    }
}

/// At most 60 characters of a value for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBom {
    #[allow(dead_code)] // checked: only CycloneDX is read
    bom_format: BomFormat,
    spec_version: SpecVersion,
    serial_number: Option<Serial>,
    #[serde(default = "first_version")]
    version: BomVersion,
    metadata: Option<RawMetadata>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

fn first_version() -> BomVersion {
    BomVersion(1)
}

#[derive(Deserialize)]
struct RawMetadata {
    component: Option<RawComponent>,
    manufacturer: Option<RawEntity>,
    /// CycloneDX 1.4/1.5 spelling, deprecated in 1.6 for `manufacturer`.
    manufacture: Option<RawEntity>,
    supplier: Option<RawEntity>,
}

#[derive(Deserialize)]
struct RawEntity {
    name: Option<Text>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum ComponentType {
    Application,
    Framework,
    Library,
    Container,
    Platform,
    OperatingSystem,
    Device,
    DeviceDriver,
    Firmware,
    File,
    MachineLearningModel,
    Data,
    CryptographicAsset,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "type")]
    #[allow(dead_code)] // required by CycloneDX; checked, not stored
    kind: ComponentType,
    name: Text,
    group: Option<Text>,
    version: Option<Text>,
    purl: Option<PurlText>,
    cpe: Option<CpeText>,
    supplier: Option<RawEntity>,
    manufacturer: Option<RawEntity>,
    #[serde(rename = "bom-ref")]
    bom_ref: Option<Text>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

fn entity(e: &Option<RawEntity>) -> Option<String> {
    e.as_ref()
        .and_then(|e| e.name.as_ref())
        .map(|n| n.0.clone())
}

// ---- loading ----------------------------------------------------------------------------

/// Reads and checks one CycloneDX file, bound as `binding` says.
pub fn load(path: &Path, binding: &Binding) -> Result<Sbom, ImportError> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| ImportError::new(&file, format!("cannot read: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::new(
            &file,
            format!(
                "{size} bytes: larger than any SBOM this imports ({MAX_FILE_BYTES} bytes at most)"
            ),
        ));
    }
    let text = read_text(path, &file)?;
    parse(&text, &file, binding)
}

/// Parses and checks one CycloneDX JSON document; `file` names it in errors.
pub fn parse(text: &str, file: &str, binding: &Binding) -> Result<Sbom, ImportError> {
    let raw: RawBom = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let mut errors = Vec::new();
    // An error at the n-th occurrence of `needle` (a quoted JSON string) in the text.
    let locate = |needle: &str, nth: usize, message: String| {
        let quoted = serde_json::to_string(needle).unwrap_or_default();
        let place = text
            .match_indices(&quoted)
            .nth(nth)
            .map(|(i, _)| line_column(text, i));
        ImportError::new(file, message).at(place.map(|p| p.0), place.map(|p| p.1))
    };

    let mut components = Vec::new();
    let mut refs: HashSet<String> = HashSet::new();
    let mut ref_seen: std::collections::HashMap<String, usize> = Default::default();
    let mut stack: Vec<(&RawComponent, usize)> =
        raw.components.iter().rev().map(|c| (c, 1)).collect();
    let mut too_many = false;
    while let Some((c, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            errors.push(locate(
                &c.name.0,
                0,
                format!(
                    "component {:?} is nested more than {MAX_DEPTH} levels deep: not a real SBOM",
                    clip(&c.name.0)
                ),
            ));
            break;
        }
        if components.len() >= MAX_COMPONENTS {
            too_many = true;
            break;
        }
        if let Some(r) = &c.bom_ref {
            let n = ref_seen.entry(r.0.clone()).or_insert(0);
            *n += 1;
            if !refs.insert(r.0.clone()) {
                errors.push(locate(
                    &r.0,
                    *n - 1,
                    format!(
                        "bom-ref {:?} is used by two components: references to it would be ambiguous",
                        clip(&r.0)
                    ),
                ));
            }
        }
        components.push(Component {
            name: c.name.0.clone(),
            group: c.group.as_ref().map(|t| t.0.clone()),
            version: c.version.as_ref().map(|t| t.0.clone()),
            purl: c.purl.as_ref().map(|t| t.0.clone()),
            cpe: c.cpe.as_ref().map(|t| t.0.clone()),
            supplier: entity(&c.supplier),
        });
        stack.extend(c.components.iter().rev().map(|s| (s, depth + 1)));
    }
    if too_many {
        errors.push(
            ImportError::new(
                file,
                format!("more than {MAX_COMPONENTS} components: not a device's SBOM"),
            )
            .at(Some(1), Some(1)),
        );
    }

    let meta = raw.metadata.as_ref();
    let product = meta.and_then(|m| m.component.as_ref());
    let model = binding
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| product.map(|p| p.name.0.clone()));
    let version = binding
        .version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            product
                .and_then(|p| p.version.as_ref())
                .map(|v| v.0.clone())
        });
    let manufacturer = product
        .and_then(|p| entity(&p.manufacturer).or_else(|| entity(&p.supplier)))
        .or_else(|| {
            meta.and_then(|m| {
                entity(&m.manufacturer)
                    .or_else(|| entity(&m.manufacture))
                    .or_else(|| entity(&m.supplier))
            })
        });
    let Some(product_model) = model else {
        let place = text.find("\"metadata\"").map(|i| line_column(text, i));
        errors.push(
            ImportError::new(
                file,
                "no product model: metadata.component.name is missing, so give --product MODEL \
                 (the device model whose software this SBOM describes)",
            )
            .at(
                Some(place.map_or(1, |p| p.0)),
                place.map(|p| p.1).or(Some(1)),
            ),
        );
        return Err(ImportError::collect(errors, 0).unwrap_or_else(|| ImportError::new(file, "")));
    };
    if binding.contract_id.trim().is_empty() {
        errors.push(ImportError::new(file, "--contract must name a contract id"));
    }
    if let Some(e) = ImportError::collect(errors, 0) {
        return Err(e);
    }
    Ok(Sbom {
        serial_number: raw.serial_number.map(|s| s.0),
        bom_version: raw.version.0,
        spec_version: match raw.spec_version {
            SpecVersion::V1_4 => "1.4",
            SpecVersion::V1_5 => "1.5",
            SpecVersion::V1_6 => "1.6",
        }
        .to_owned(),
        contract_id: binding.contract_id.trim().to_owned(),
        product_model,
        product_version: version,
        manufacturer,
        components,
        source: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) const MINIMAL: &str = r#"{
  "bomFormat": "CycloneDX",
  "specVersion": "1.5",
  "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
  "version": 2,
  "metadata": {
    "component": {"type": "firmware", "name": "Infusomat X", "version": "2.0",
      "supplier": {"name": "Acme Medical"}}
  },
  "components": [
    {"type": "library", "name": "openssl", "version": "1.1.1k",
     "purl": "pkg:generic/openssl@1.1.1k",
     "cpe": "cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*", "bom-ref": "a",
     "components": [
       {"type": "library", "name": "zlib", "version": "1.2.11", "purl": "pkg:generic/zlib@1.2.11", "bom-ref": "b"}
     ]},
    {"type": "operating-system", "name": "linux", "version": "5.10.1"}
  ]
}"#;

    fn bind() -> Binding {
        Binding {
            contract_id: "C-1".into(),
            ..Binding::default()
        }
    }

    fn err(text: &str) -> ImportError {
        parse(text, "s.json", &bind()).unwrap_err()
    }

    #[test]
    fn a_minimal_bom_reads_whole_with_nested_components_flattened() {
        let s = parse(MINIMAL, "s.json", &bind()).unwrap();
        assert_eq!(
            s.serial_number.as_deref(),
            Some("urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79")
        );
        assert_eq!(s.bom_version, 2);
        assert_eq!(s.spec_version, "1.5");
        assert_eq!(s.product_model, "Infusomat X");
        assert_eq!(s.product_version.as_deref(), Some("2.0"));
        assert_eq!(s.manufacturer.as_deref(), Some("Acme Medical"));
        let names: Vec<&str> = s.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["openssl", "zlib", "linux"]);
        assert_eq!(
            s.components[0].cpe.as_deref(),
            Some("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*")
        );
        assert_eq!(s.key(), "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79");
    }

    #[test]
    fn flags_override_the_metadata_and_a_model_is_required() {
        let b = Binding {
            contract_id: "C-1".into(),
            model: Some("IX-200".into()),
            version: Some("2.0.1".into()),
        };
        let s = parse(MINIMAL, "s.json", &b).unwrap();
        assert_eq!(s.product_model, "IX-200");
        assert_eq!(s.product_version.as_deref(), Some("2.0.1"));
        let no_product = MINIMAL.replace(
            r#""component": {"type": "firmware", "name": "Infusomat X", "version": "2.0",
      "supplier": {"name": "Acme Medical"}}"#,
            r#""timestamp": "2024-01-01T00:00:00Z""#,
        );
        let e = err(&no_product);
        assert!(e.message.contains("--product"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        let s = parse(&no_product, "s.json", &b).unwrap();
        assert_eq!(s.product_model, "IX-200");
        assert!(s.manufacturer.is_none());
    }

    #[test]
    fn serde_errors_keep_their_place() {
        let e = err(&MINIMAL.replace("\"1.5\"", "\"1.2\""));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("unknown variant"), "{e}");
        let e = err(&MINIMAL.replace("pkg:generic/zlib@1.2.11", "zlib-1.2.11"));
        assert_eq!(e.line, Some(15), "{e}");
        assert!(e.message.contains("purl"), "{e}");
        let e = err(&MINIMAL.replace("\"bom-ref\": \"b\"", "\"bom-ref\": \"a\""));
        assert_eq!(e.line, Some(15), "{e}");
        assert!(e.message.contains("bom-ref"), "{e}");
    }

    /// Each malformed document of `tests/data/sbom/` is refused whole, naming file:line.
    #[test]
    fn malformed_files_are_refused_with_file_and_line() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sbom");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("bad-") {
                continue;
            }
            n += 1;
            let e = load(&p, &bind()).expect_err(&name);
            assert!(e.line.is_some(), "{name}: {e}");
            assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
        }
        assert!(n >= 6, "{n} malformed SBOMs");
        for good in ["product-2.0.cdx.json", "product-2.1.cdx.json"] {
            load(&dir.join(good), &bind()).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let mut deep = String::from(r#"{"type":"library","name":"x0"}"#);
        for i in 1..=MAX_DEPTH + 1 {
            deep = format!(r#"{{"type":"library","name":"x{i}","components":[{deep}]}}"#);
        }
        let doc = format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{{"component":{{"type":"device","name":"M"}}}},"components":[{deep}]}}"#
        );
        let e = err(&doc);
        assert!(e.message.contains("nested"), "{e}");
        assert!(e.line.is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged SBOMs are refused with the file's name, never a panic.
        #[test]
        fn damaged_boms_never_panic(at in 0usize..900, cut in 0usize..12, junk in "[\\[\\]{}\",:.a-z0-9 @/]{0,8}") {
            let damaged = crate::import::testing::splice(MINIMAL, at, cut, &junk);
            if let Err(e) = parse(&damaged, "s.json", &bind()) {
                proptest::prop_assert!(e.to_string().starts_with("s.json"));
            }
        }
    }
}
