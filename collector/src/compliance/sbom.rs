//! Advisories through SBOMs: an advisory product entry that identifies a component by PURL or
//! CPE (its product identification helper) is matched against the components of the imported
//! SBOMs, and an SBOM against the devices of the product release it describes.
//!
//! A device is bound to an SBOM when its model is the SBOM's product model (case, spacing and
//! punctuation ignored), its manufacturer is the SBOM's (or, when the SBOM names none, the
//! supplier of the contract it was imported for) through the vendor alias table, and its
//! current software version is the SBOM's product version by the version order (an SBOM
//! without a product version covers every version of the model; a device that never showed a
//! version is bound only to such an SBOM: which release it runs is unknown).
//!
//! A component matches an entry by PURL (type, namespace and name equal, case ignored) or by
//! CPE (part, vendor and product equal). The affected versions are the entry's own PURL or CPE
//! version when it states one, else its `product_version` / `product_version_range` (`vers:`
//! included), else every version; the component's version (its `version`, else its PURL's or
//! CPE's) is compared with them by [`super::version::membership`], so "not comparable" keeps
//! both strings here too. The result is a [`ProductMatch`] whose [`SbomVia`] names the SBOM,
//! the component and the identifier, so the advisory flags treat it like any other match.

use serde::Serialize;

use super::matching::{cves_for, DeviceFacts, ModelMatch, ProductMatch, Verdict};
use super::vendors::{VendorAliases, VendorMatch};
use super::version::{compare, membership, Membership, Range};
use crate::import::advisories::{Advisory, Product};
use crate::import::model::Contract;
use crate::import::sbom::{Component, Sbom};

/// Longer identifiers are not read (nothing real comes close).
const MAX_ID: usize = 1024;

/// `%XX` sequences decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A package URL (`pkg:type/namespace/name@version?qualifiers#subpath`), the parts matching
/// uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    /// `type`, lower-case (`generic`, `deb`, `npm`, `maven`…).
    pub ty: String,
    /// `namespace` segments joined by `/`, decoded.
    pub namespace: Option<String>,
    /// `name`, decoded.
    pub name: String,
    /// `version`, decoded.
    pub version: Option<String>,
}

impl Purl {
    /// Reads a package URL; the error says what is missing.
    pub fn parse(s: &str) -> Result<Purl, String> {
        if s.len() > MAX_ID {
            return Err(format!("longer than {MAX_ID} bytes"));
        }
        let rest = s
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("pkg:"))
            .map(|_| &s[4..])
            .ok_or("a package URL starts with pkg:")?;
        let rest = rest.trim_start_matches('/');
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        // The version follows the last '@' after the last '/' (an npm scope may be written
        // with a bare '@').
        let slash = rest
            .rfind('/')
            .ok_or("a package URL is pkg:<type>/<name>")?;
        let (path, version) = match rest[slash..].rfind('@') {
            Some(at) => (&rest[..slash + at], Some(&rest[slash + at + 1..])),
            None => (rest, None),
        };
        let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.len() < 2 {
            return Err("a package URL is pkg:<type>/<name>".into());
        }
        let ty = segments.remove(0).to_ascii_lowercase();
        let valid_type = ty.starts_with(|c: char| c.is_ascii_alphabetic())
            && ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        if !valid_type {
            return Err(format!("type {ty:?} is not a package type"));
        }
        let name = percent_decode(segments.pop().unwrap_or_default());
        if name.trim().is_empty() {
            return Err("the name is empty".into());
        }
        let namespace = (!segments.is_empty()).then(|| {
            segments
                .iter()
                .map(|s| percent_decode(s))
                .collect::<Vec<_>>()
                .join("/")
        });
        let version = match version.map(percent_decode) {
            Some(v) if v.trim().is_empty() => return Err("'@' without a version".into()),
            v => v,
        };
        Ok(Purl {
            ty,
            namespace,
            name,
            version,
        })
    }

    /// Whether both name the same package (case ignored: advisories and SBOM tools disagree on
    /// it, and no two real packages of one type differ only by case).
    pub fn same_package(&self, o: &Purl) -> bool {
        let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        self.ty == o.ty
            && eq(&self.namespace, &o.namespace)
            && self.name.eq_ignore_ascii_case(&o.name)
    }
}

/// A CPE name (2.3 formatted string or 2.2 URI), the parts matching uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpe {
    /// `a` (application), `o` (operating system) or `h` (hardware).
    pub part: String,
    /// The vendor, lower-case, unescaped.
    pub vendor: String,
    /// The product, lower-case, unescaped.
    pub product: String,
    /// The version with its update (`1.1.1` + `k`), when specific (not `*` or `-`).
    pub version: Option<String>,
}

impl Cpe {
    /// Reads `cpe:2.3:a:vendor:product:version:update:…` or `cpe:/a:vendor:product:version`.
    pub fn parse(s: &str) -> Result<Cpe, String> {
        if s.len() > MAX_ID {
            return Err(format!("longer than {MAX_ID} bytes"));
        }
        let lower = s.to_ascii_lowercase();
        let fields: Vec<String> = if let Some(rest) = lower.strip_prefix("cpe:2.3:") {
            // Split at ':' not escaped by '\', then unescape.
            let mut out = vec![String::new()];
            let mut escaped = false;
            for c in rest.chars() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, ':') => out.push(String::new()),
                    (_, c) => {
                        escaped = false;
                        if let Some(last) = out.last_mut() {
                            last.push(c);
                        }
                    }
                }
            }
            if out.len() != 11 {
                return Err(format!(
                    "a CPE 2.3 name has 13 ':'-separated parts, this one {}",
                    out.len() + 2
                ));
            }
            out
        } else if let Some(rest) = lower.strip_prefix("cpe:/") {
            rest.split(':').map(percent_decode).collect()
        } else {
            return Err("a CPE name starts with cpe:2.3: or cpe:/".into());
        };
        let get = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
        let part = get(0);
        if !matches!(part, "a" | "o" | "h") {
            return Err(format!("part {part:?} is not a, o or h"));
        }
        let specific = |v: &str| !matches!(v, "" | "*" | "-");
        let (vendor, product) = (get(1), get(2));
        if !specific(vendor) || !specific(product) {
            return Err("vendor and product must be named".into());
        }
        let version = specific(get(3)).then(|| {
            if specific(get(4)) {
                format!("{}-{}", get(3), get(4))
            } else {
                get(3).to_owned()
            }
        });
        Ok(Cpe {
            part: part.to_owned(),
            vendor: vendor.to_owned(),
            product: product.to_owned(),
            version,
        })
    }

    /// Whether both name the same product.
    pub fn same_product(&self, o: &Cpe) -> bool {
        self.part == o.part && self.vendor == o.vendor && self.product == o.product
    }
}

/// How a component was found in an advisory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifiedBy {
    /// The package URL.
    Purl,
    /// The CPE name.
    Cpe,
}

/// The component of an SBOM that matched an advisory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentMatch {
    /// By PURL or CPE.
    pub identified_by: IdentifiedBy,
    /// The advisory entry's identifier as written.
    pub advisory_identifier: String,
    /// The component's identifier as written.
    pub component_identifier: String,
    /// The affected versions the component's version was compared with.
    pub version_or_range: Option<String>,
    /// The component's version, if it states one.
    pub component_version: Option<String>,
    /// The outcome.
    pub verdict: Verdict,
}

/// The PURL and CPE of an entry or a component, parsed once (an evaluation compares each
/// entry with every component of the bound SBOMs).
#[derive(Debug, Clone, Default)]
pub struct Ids {
    purl: Option<Purl>,
    cpe: Option<Cpe>,
}

impl Ids {
    /// Parses both (an unreadable one counts as absent: imports checked them already).
    pub fn new(purl: Option<&str>, cpe: Option<&str>) -> Ids {
        Ids {
            purl: purl.and_then(|p| Purl::parse(p).ok()),
            cpe: cpe.and_then(|c| Cpe::parse(c).ok()),
        }
    }

    fn of_component(c: &Component) -> Ids {
        Ids::new(c.purl.as_deref(), c.cpe.as_deref())
    }

    fn is_empty(&self) -> bool {
        self.purl.is_none() && self.cpe.is_none()
    }
}

/// Whether `c` is the component `p` identifies, and whether its version is affected.
pub fn component_match(p: &Product, c: &Component) -> Option<ComponentMatch> {
    matched(
        p,
        &Ids::new(p.purl.as_deref(), p.cpe.as_deref()),
        c,
        &Ids::of_component(c),
    )
}

/// [`component_match`] with both sides' identifiers parsed.
fn matched(p: &Product, pi: &Ids, c: &Component, ci: &Ids) -> Option<ComponentMatch> {
    let by_purl = || {
        let (a, b) = (pi.purl.as_ref()?, ci.purl.as_ref()?);
        a.same_package(b).then(|| {
            (
                IdentifiedBy::Purl,
                p.purl.clone().unwrap_or_default(),
                c.purl.clone().unwrap_or_default(),
                a.version.clone(),
                b.version.clone(),
            )
        })
    };
    let by_cpe = || {
        let (a, b) = (pi.cpe.as_ref()?, ci.cpe.as_ref()?);
        a.same_product(b).then(|| {
            (
                IdentifiedBy::Cpe,
                p.cpe.clone().unwrap_or_default(),
                c.cpe.clone().unwrap_or_default(),
                a.version.clone(),
                b.version.clone(),
            )
        })
    };
    let (identified_by, aid, cid, entry_version, id_version) = by_purl().or_else(by_cpe)?;
    let (spec, exact) = match (entry_version, &p.version, &p.version_range) {
        (Some(v), _, _) => (Some(v), true),
        (None, Some(v), _) => (Some(v.clone()), true),
        (None, None, Some(r)) => (Some(r.clone()), false),
        (None, None, None) => (None, false),
    };
    let component_version = c.version.clone().or(id_version);
    let verdict = match (&spec, &component_version) {
        (None, _) => Verdict::Affected,
        (Some(s), Some(v)) => match membership(v, s, exact) {
            Membership::Affected => Verdict::Affected,
            Membership::NotAffected => Verdict::NotAffected,
            Membership::NotComparable {
                reason,
                version,
                range,
            } => Verdict::VersionNotComparable {
                reason,
                version,
                range,
            },
        },
        // `vers:all/*` needs no version to decide.
        (Some(s), None) if !exact && matches!(Range::parse(s), Ok(Range::All)) => Verdict::Affected,
        (Some(_), None) => Verdict::VersionUnknown,
    };
    Some(ComponentMatch {
        identified_by,
        advisory_identifier: aid,
        component_identifier: cid,
        version_or_range: spec,
        component_version,
        verdict,
    })
}

/// The SBOM side of a match, for the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SbomVia {
    /// The SBOM's `serialNumber`, when it has one.
    pub serial_number: Option<String>,
    /// Its BOM `version`.
    pub bom_version: u32,
    /// The contract it was imported for.
    pub contract_id: String,
    /// The product model it describes.
    pub product_model: String,
    /// The product version it describes (none: every version).
    pub product_version: Option<String>,
    /// The file it came from.
    pub source: String,
    /// The component: name, version, PURL and CPE as the SBOM writes them.
    pub component: Component,
    /// How the component matched the advisory entry.
    pub component_match: ComponentMatch,
}

/// The SBOMs with the vendor name a device's manufacturer is compared with and their
/// components' identifiers parsed, built once per evaluation.
#[derive(Debug, Clone)]
pub struct SbomIndex<'a> {
    sboms: Vec<(&'a Sbom, Option<String>, Vec<Ids>)>,
}

/// An SBOM bound to a device: what [`match_sboms`] reads.
#[derive(Debug, Clone)]
pub struct Bound<'i> {
    /// The SBOM.
    pub sbom: &'i Sbom,
    /// How the device's manufacturer matched the SBOM's.
    pub vendor_match: VendorMatch,
    /// Its components' identifiers, in component order.
    ids: &'i [Ids],
}

impl<'a> SbomIndex<'a> {
    /// Each SBOM with its manufacturer: the one it states, else its contract's supplier.
    pub fn new(sboms: &'a [Sbom], contracts: &[Contract]) -> SbomIndex<'a> {
        SbomIndex {
            sboms: sboms
                .iter()
                .map(|s| {
                    let vendor = s.manufacturer.clone().or_else(|| {
                        contracts
                            .iter()
                            .find(|c| c.id == s.contract_id)
                            .map(|c| c.supplier.clone())
                    });
                    let ids = s.components.iter().map(Ids::of_component).collect();
                    (s, vendor, ids)
                })
                .collect(),
        }
    }

    /// No SBOMs at all.
    pub fn is_empty(&self) -> bool {
        self.sboms.is_empty()
    }

    /// The SBOMs that describe what `device` runs, with how its manufacturer matched.
    pub fn bound_to(&self, device: &DeviceFacts<'_>, aliases: &VendorAliases) -> Vec<Bound<'_>> {
        let (Some(manufacturer), Some(model)) = (device.manufacturer, device.model) else {
            return Vec::new();
        };
        let fold = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        };
        let model = fold(model);
        if model.is_empty() {
            return Vec::new();
        }
        self.sboms
            .iter()
            .filter(|(s, _, _)| fold(&s.product_model) == model)
            .filter(
                |(s, _, _)| match (&s.product_version, device.software_version) {
                    (None, _) => true,
                    (Some(want), Some(v)) => {
                        want.trim().eq_ignore_ascii_case(v.trim())
                            || compare(want, v) == Some(std::cmp::Ordering::Equal)
                    }
                    (Some(_), None) => false,
                },
            )
            .filter_map(|(s, vendor, ids)| {
                let vendor_match = aliases.same_vendor(manufacturer, vendor.as_deref()?)?;
                Some(Bound {
                    sbom: s,
                    vendor_match,
                    ids,
                })
            })
            .collect()
    }
}

/// Every (advisory entry, component) pair by which `bound` SBOMs put `advisory` on the device.
pub fn match_sboms(
    device: &DeviceFacts<'_>,
    bound: &[Bound<'_>],
    advisory: &Advisory,
) -> Vec<ProductMatch> {
    let mut out = Vec::new();
    if bound.is_empty() {
        return out;
    }
    for p in &advisory.products {
        let pi = Ids::new(p.purl.as_deref(), p.cpe.as_deref());
        if pi.is_empty() {
            continue;
        }
        for Bound {
            sbom,
            vendor_match,
            ids,
        } in bound
        {
            for (c, ci) in sbom.components.iter().zip(ids.iter()) {
                let Some(cm) = matched(p, &pi, c, ci) else {
                    continue;
                };
                out.push(ProductMatch {
                    advisory: advisory.id.clone(),
                    advisory_version: advisory.tracking_version.clone(),
                    product_id: p.product_id.clone(),
                    product_name: p.name.clone(),
                    vendor: p.vendor.clone().unwrap_or_default(),
                    vendor_match: vendor_match.clone(),
                    device_model: device.model.unwrap_or_default().to_owned(),
                    model_match: ModelMatch::SbomProduct {
                        model: sbom.product_model.clone(),
                    },
                    version_or_range: cm.version_or_range.clone(),
                    device_version: device.software_version.map(str::to_owned),
                    verdict: cm.verdict.clone(),
                    end_of_life: p.legacy,
                    cves: cves_for(advisory, &p.product_id),
                    sbom: Some(Box::new(SbomVia {
                        serial_number: sbom.serial_number.clone(),
                        bom_version: sbom.bom_version,
                        contract_id: sbom.contract_id.clone(),
                        product_model: sbom.product_model.clone(),
                        product_version: sbom.product_version.clone(),
                        source: sbom.source.clone(),
                        component: c.clone(),
                        component_match: cm,
                    })),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::sbom::Component;

    fn comp(name: &str, version: Option<&str>, purl: Option<&str>, cpe: Option<&str>) -> Component {
        Component {
            name: name.into(),
            group: None,
            version: version.map(Into::into),
            purl: purl.map(Into::into),
            cpe: cpe.map(Into::into),
            supplier: None,
        }
    }

    fn entry(
        purl: Option<&str>,
        cpe: Option<&str>,
        version: Option<&str>,
        range: Option<&str>,
    ) -> Product {
        Product {
            product_id: "P1".into(),
            name: "OpenSSL".into(),
            vendor: Some("OpenSSL Project".into()),
            product: Some("OpenSSL".into()),
            version: version.map(Into::into),
            version_range: range.map(Into::into),
            legacy: false,
            cpe: cpe.map(Into::into),
            purl: purl.map(Into::into),
            model_numbers: Vec::new(),
            skus: Vec::new(),
        }
    }

    fn verdict(p: &Product, c: &Component) -> Option<Verdict> {
        component_match(p, c).map(|m| m.verdict)
    }

    #[test]
    fn purls_parse_with_namespaces_versions_and_encoding() {
        let p =
            Purl::parse("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar").unwrap();
        assert_eq!(p.ty, "maven");
        assert_eq!(p.namespace.as_deref(), Some("org.apache.logging.log4j"));
        assert_eq!(p.name, "log4j-core");
        assert_eq!(p.version.as_deref(), Some("2.14.1"));
        let p = Purl::parse("pkg:npm/%40angular/core@16.0.0").unwrap();
        assert_eq!(p.namespace.as_deref(), Some("@angular"));
        let p = Purl::parse("pkg:npm/@angular/core").unwrap();
        assert_eq!(
            (p.namespace.as_deref(), p.version),
            (Some("@angular"), None)
        );
        assert_eq!(Purl::parse("PKG:Generic/openssl").unwrap().ty, "generic");
        for bad in [
            "openssl",
            "pkg:",
            "pkg:generic",
            "pkg:generic/",
            "pkg:1x/a",
            "pkg:generic/a@",
        ] {
            assert!(Purl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpes_parse_in_both_forms() {
        let c = Cpe::parse("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*").unwrap();
        assert_eq!(
            (c.vendor.as_str(), c.product.as_str()),
            ("openssl", "openssl")
        );
        assert_eq!(c.version.as_deref(), Some("1.1.1k"));
        let c = Cpe::parse("cpe:/a:openssl:openssl:1.1.1:k").unwrap();
        assert_eq!(c.version.as_deref(), Some("1.1.1-k"));
        let c = Cpe::parse("cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.version, None);
        let c = Cpe::parse(r"cpe:2.3:a:a\:b:prod:1.0:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.vendor, "a:b");
        for bad in [
            "cpe:2.3:a:openssl",
            "cpe:2.3:x:a:b:1:*:*:*:*:*:*:*",
            "openssl",
            "cpe:/a::x",
        ] {
            assert!(Cpe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn purl_matches_by_package_and_compares_versions() {
        let c = comp(
            "openssl",
            Some("1.1.1k"),
            Some("pkg:generic/openssl@1.1.1k"),
            None,
        );
        // The entry's own PURL version: exact.
        assert_eq!(
            verdict(
                &entry(Some("pkg:generic/openssl@1.1.1k"), None, None, None),
                &c
            ),
            Some(Verdict::Affected)
        );
        assert_eq!(
            verdict(
                &entry(Some("pkg:generic/openssl@1.1.1l"), None, None, None),
                &c
            ),
            Some(Verdict::NotAffected)
        );
        // A vers: range on the entry.
        let r = entry(
            Some("pkg:generic/openssl"),
            None,
            None,
            Some("vers:generic/>=1.1.1|<1.1.1l"),
        );
        assert_eq!(verdict(&r, &c), Some(Verdict::Affected));
        let newer = comp(
            "openssl",
            Some("1.1.1w"),
            Some("pkg:generic/openssl@1.1.1w"),
            None,
        );
        assert_eq!(verdict(&r, &newer), Some(Verdict::NotAffected));
        let three = comp(
            "openssl",
            Some("3.0.13"),
            Some("pkg:generic/openssl@3.0.13"),
            None,
        );
        assert_eq!(verdict(&r, &three), Some(Verdict::NotAffected));
        // No version anywhere on the entry: every version.
        assert_eq!(
            verdict(&entry(Some("pkg:generic/openssl"), None, None, None), &c),
            Some(Verdict::Affected)
        );
        // Another package, another type, another namespace: no match.
        assert_eq!(
            verdict(&entry(Some("pkg:generic/libressl"), None, None, None), &c),
            None
        );
        assert_eq!(
            verdict(&entry(Some("pkg:deb/openssl"), None, None, None), &c),
            None
        );
        assert_eq!(
            verdict(
                &entry(Some("pkg:generic/debian/openssl"), None, None, None),
                &c
            ),
            None
        );
        // The component's version may come from its PURL only.
        let bare = comp("openssl", None, Some("pkg:generic/OpenSSL@1.1.1k"), None);
        assert_eq!(verdict(&r, &bare), Some(Verdict::Affected));
        // No version at all: unknown, not silently affected or clean.
        let none = comp("openssl", None, Some("pkg:generic/openssl"), None);
        assert_eq!(verdict(&r, &none), Some(Verdict::VersionUnknown));
    }

    #[test]
    fn a_version_the_range_cannot_order_is_not_comparable_with_both_strings() {
        let r = entry(
            Some("pkg:generic/openssl"),
            None,
            None,
            Some("vers:generic/>=1.1.1|<1.1.1l"),
        );
        let odd = comp(
            "openssl",
            Some("OpenSSL_1_1_1k-fips (vendor build)"),
            Some("pkg:generic/openssl"),
            None,
        );
        match verdict(&r, &odd) {
            Some(Verdict::VersionNotComparable { version, range, .. }) => {
                assert_eq!(version, "OpenSSL_1_1_1k-fips (vendor build)");
                assert_eq!(range, "vers:generic/>=1.1.1|<1.1.1l");
            }
            other => panic!("{other:?}"),
        }
        let scheme = comp("openssl", Some("VA30A"), Some("pkg:generic/openssl"), None);
        assert!(matches!(
            verdict(&r, &scheme),
            Some(Verdict::VersionNotComparable { .. })
        ));
    }

    #[test]
    fn cpe_matches_by_vendor_and_product_and_compares_versions() {
        let c = comp(
            "openssl",
            Some("1.1.1k"),
            None,
            Some("cpe:2.3:a:openssl:openssl:1.1.1k:*:*:*:*:*:*:*"),
        );
        let any = entry(
            None,
            Some("cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*"),
            None,
            Some("<1.1.1l"),
        );
        assert_eq!(verdict(&any, &c), Some(Verdict::Affected));
        let exact = entry(
            None,
            Some("cpe:2.3:a:openssl:openssl:1.1.1j:*:*:*:*:*:*:*"),
            None,
            None,
        );
        assert_eq!(verdict(&exact, &c), Some(Verdict::NotAffected));
        let other = entry(
            None,
            Some("cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*"),
            None,
            None,
        );
        assert_eq!(verdict(&other, &c), None);
        // A PURL on one side and a CPE on the other: nothing to compare.
        let purl_only = entry(Some("pkg:generic/openssl"), None, None, None);
        assert_eq!(verdict(&purl_only, &c), None);
    }

    #[test]
    fn devices_bind_by_model_manufacturer_and_version() {
        let sbom = Sbom {
            serial_number: None,
            bom_version: 1,
            spec_version: "1.5".into(),
            contract_id: "C-1".into(),
            product_model: "Infusomat X".into(),
            product_version: Some("2.0".into()),
            manufacturer: None,
            components: vec![],
            source: "s.json".into(),
        };
        let mut c = crate::compliance::flags::testkit::contract("C-1");
        c.supplier = "Acme Medical Inc.".into();
        let sboms = [sbom];
        let idx = SbomIndex::new(&sboms, std::slice::from_ref(&c));
        let t = VendorAliases::bundled();
        let d = |m: &'static str, model: &'static str, v: Option<&'static str>| DeviceFacts {
            manufacturer: Some(m),
            model: Some(model),
            software_version: v,
        };
        assert_eq!(
            idx.bound_to(&d("ACME MEDICAL", "infusomat-x", Some("2.0.0")), &t)
                .len(),
            1
        );
        assert!(idx
            .bound_to(&d("ACME MEDICAL", "infusomat-x", Some("2.1")), &t)
            .is_empty());
        assert!(idx
            .bound_to(&d("ACME MEDICAL", "infusomat-x", None), &t)
            .is_empty());
        assert!(idx
            .bound_to(&d("Other Corp", "Infusomat X", Some("2.0")), &t)
            .is_empty());
        assert!(idx
            .bound_to(&d("Acme Medical", "Infusomat Y", Some("2.0")), &t)
            .is_empty());
    }

    fn data(name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/sbom")
            .join(name)
    }

    /// The test advisory against the 2.0 SBOM: both OpenSSL entries match the nested 1.1.1k
    /// component, and each explanation names the SBOM, the component and the entry.
    #[test]
    fn matches_through_an_sbom_explain_themselves() {
        let a = crate::import::advisories::load_file(&data("openssl-advisory.json")).unwrap();
        let binding = crate::import::sbom::Binding {
            contract_id: "C-1".into(),
            ..Default::default()
        };
        let s = crate::import::sbom::load(&data("product-2.0.cdx.json"), &binding).unwrap();
        let sboms = [s];
        let idx = SbomIndex::new(&sboms, &[]);
        let t = VendorAliases::bundled();
        let d = DeviceFacts {
            manufacturer: Some("Acme Medical, Inc."),
            model: Some("Infusomat Space X"),
            software_version: Some("2.0"),
        };
        let bound = idx.bound_to(&d, &t);
        assert_eq!(bound.len(), 1);
        let m = match_sboms(&d, &bound, &a);
        let ids: Vec<(&str, &Verdict)> = m
            .iter()
            .map(|m| (m.product_id.as_str(), &m.verdict))
            .collect();
        assert_eq!(
            ids,
            [
                ("OPENSSL-111", &Verdict::Affected),
                ("OPENSSL-111K", &Verdict::Affected)
            ]
        );
        let e = m[0].explain();
        for part in [
            "ACME-TEST-2024-0001 OPENSSL-111",
            "via SBOM urn:uuid:6c3f4d2e-1b7a-4c1e-9f0a-2d5e8b7c9a01 version 1",
            "contract C-1",
            "component openssl 1.1.1k pkg:generic/openssl@1.1.1k",
            "identifies by PURL pkg:generic/openssl;",
            "component version 1.1.1k is in vers:generic/>=1.1.1|<1.1.1l: affected",
            "CVE-2021-3711",
        ] {
            assert!(e.contains(part), "{part:?} not in {e}");
        }
        // The exact entry also carries a CPE; the PURL is tried first.
        assert_eq!(
            m[1].sbom.as_ref().map(|v| &v.component_match.identified_by),
            Some(&IdentifiedBy::Purl)
        );
        // The device's other version is bound to no SBOM, and matches nothing.
        let d21 = DeviceFacts {
            software_version: Some("2.1"),
            ..d
        };
        assert!(match_sboms(&d21, &idx.bound_to(&d21, &t), &a).is_empty());
    }
}
