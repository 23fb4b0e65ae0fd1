//! OpenEoX statements against one device: `end_of_life_product` once the vendor's end of
//! security support or end of life has passed for the product (release) the device runs.
//!
//! The device is matched to a statement the way it is matched to an advisory's product entry
//! ([`crate::compliance::matching`]): its manufacturer to the statement's vendor through the
//! vendor alias table, its model to the product name ([`matching::model_match`]: the name, an
//! abbreviation in parentheses, or a run of its words), its software version to the
//! statement's version — an exact version, or a range (`<2.0`, `vers:generic/<2.0`) — by the
//! version order. A statement without a version covers every version. A device whose version
//! is unknown or cannot be compared with the statement's is not flagged: an end-of-life claim
//! needs the release it is about.
//!
//! Which date: the earlier of `end_of_security_support` and `end_of_life` that has passed (a
//! stated day is the last day of support, so the flag holds from the day after); `tba`
//! dates never pass. The subject is the device, the detail `eox:<statement key>`, apart from
//! the advisory-borne `end_of_life_product` flags (detail = advisory id).

use chrono::NaiveDate;
use serde_json::json;

use super::{device_evidence, flag, At, DeviceFacts, FlagConfig, FlagKind};
use crate::compliance::matching;
use crate::compliance::version::{membership, Membership};
use crate::import::advisories::Product;
use crate::import::eox::{EoxDate, EoxStatement};
use crate::store::FlagInstance;

/// The `end_of_life_product` detail of a statement.
pub fn detail(s: &EoxStatement) -> String {
    format!("eox:{}", s.key())
}

/// Whether a statement's version is a range (an operator or a `vers:` string) rather than one
/// version.
fn is_range(v: &str) -> bool {
    let t = v.trim_start();
    t.starts_with(['<', '>', '=', '!']) || t.starts_with("vers:")
}

/// The flags of one device against every statement.
pub fn eox_flags(
    d: &DeviceFacts<'_>,
    statements: &[EoxStatement],
    cfg: &FlagConfig,
    at: At,
    out: &mut Vec<FlagInstance>,
) {
    if statements.is_empty() {
        return;
    }
    let (Some(manufacturer), Some(model)) = super::manufacturer_model(d.device) else {
        return;
    };
    let version = d.device.current("software_version");
    for s in statements {
        let Some(vendor_match) = cfg.vendor_aliases.same_vendor(manufacturer, &s.vendor) else {
            continue;
        };
        // The statement as a product entry, so the model is matched exactly as for advisories.
        let entry = Product {
            product_id: s.key(),
            name: s.product.clone(),
            vendor: Some(s.vendor.clone()),
            product: Some(s.product.clone()),
            version: s.version.clone().filter(|v| !is_range(v)),
            version_range: s.version.clone().filter(|v| is_range(v)),
            legacy: false,
            cpe: None,
            purl: None,
            model_numbers: Vec::new(),
            skus: Vec::new(),
        };
        let Some(model_match) = matching::model_match(model, &entry) else {
            continue;
        };
        let version_verdict = match (&s.version, version) {
            (None, _) => "every version of the product".to_owned(),
            (Some(spec), Some(v)) => match membership(v, spec, !is_range(spec)) {
                Membership::Affected => format!("version {v} is {spec}"),
                Membership::NotAffected | Membership::NotComparable { .. } => continue,
            },
            (Some(_), None) => continue,
        };
        let mut passed: Vec<(&str, NaiveDate)> = [
            ("end_of_security_support", s.end_of_security_support),
            ("end_of_life", s.end_of_life),
        ]
        .into_iter()
        .filter_map(|(name, date)| date.at().map(|t| (name, t.date_naive())))
        .filter(|(_, day)| at.today > *day)
        .collect();
        passed.sort_by_key(|(_, day)| *day);
        let Some(&(which, day)) = passed.first() else {
            continue;
        };
        let days_since = (at.today - day).num_days();
        let date = |d: Option<EoxDate>| d.map(EoxDate::to_text);
        let evidence = json!({
            "device": device_evidence(d.device),
            "eox": {
                "statement": s.key(),
                "source": s.source,
                "vendor": s.vendor,
                "product": s.product,
                "version": s.version,
                "end_of_life": s.end_of_life.to_text(),
                "end_of_security_support": s.end_of_security_support.to_text(),
                "end_of_sales": date(s.end_of_sales),
                "general_availability": date(s.general_availability),
                "last_updated": s.last_updated.to_rfc3339(),
            },
            "match": {
                "vendor_match": vendor_match,
                "model_match": model_match,
                "device_model": model,
                "device_version": version,
                "version": version_verdict,
            },
            "passed": {
                "date": which,
                "day": day.to_string(),
                "days_since": days_since,
                "evaluated_on": at.today.to_string(),
            },
        });
        let what = match which {
            "end_of_security_support" => "end of security support",
            _ => "end of life",
        };
        out.push(flag(
            FlagKind::EndOfLifeProduct,
            d.subject.clone(),
            detail(s),
            format!(
                "{}: {} {} {} reached its {what} on {day} ({days_since} days ago) per the OpenEoX statement of {}",
                d.name,
                s.product,
                s.version.as_deref().unwrap_or("(every version)"),
                version.map(|v| format!("(runs {v})")).unwrap_or_default(),
                s.vendor
            ),
            evidence,
        ));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};

    use super::super::testkit::*;
    use super::*;

    /// An OpenEoX statement on `ACME` `Scan 1` `version`, end of security support
    /// `eoss` days from today and end of life `eol` days from today.
    pub(crate) fn statement(version: Option<&str>, eoss: i64, eol: i64) -> EoxStatement {
        let at = |n: i64| {
            EoxDate::At(Utc.from_utc_datetime(&days(n).and_hms_opt(0, 0, 0).unwrap_or_default()))
        };
        EoxStatement {
            vendor: "ACME".into(),
            product: "Scan 1".into(),
            version: version.map(str::to_owned),
            end_of_life: at(eol),
            end_of_security_support: at(eoss),
            end_of_sales: Some(EoxDate::Tba),
            general_availability: None,
            last_updated: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            source: "eox.json".into(),
        }
    }

    fn world(version: &str, s: EoxStatement) -> World {
        World::covered_with(|w| {
            let d = std::mem::take(w.d());
            *w.d() = d.attr("software_version", version);
            w.inv.eox.push(s);
        })
    }

    pub(crate) fn cases() -> Vec<Case> {
        vec![Case::new(
            "an OpenEoX end of security support passed yesterday; today is the last day",
            FlagKind::EndOfLifeProduct,
            world("1.4", statement(Some("<2.0"), -1, 30)),
            world("1.4", statement(Some("<2.0"), 0, 30)),
        )]
    }

    #[test]
    fn the_evidence_names_the_statement_the_date_and_the_match() {
        let w = world("1.4", statement(Some("<2.0"), -10, -3));
        let f = w.of(FlagKind::EndOfLifeProduct);
        assert_eq!(f.len(), 1, "{:?}", w.flags());
        assert_eq!(f[0].detail, "eox:acme/scan 1/<2.0");
        let e = &f[0].evidence;
        // The earlier of the two dates that passed.
        assert_eq!(e["passed"]["date"], "end_of_security_support");
        assert_eq!(e["passed"]["days_since"], 10);
        assert_eq!(e["eox"]["source"], "eox.json");
        assert_eq!(e["eox"]["end_of_sales"], "tba");
        assert_eq!(e["match"]["version"], "version 1.4 is <2.0");
        assert_eq!(e["match"]["model_match"]["how"], "product_name");
        assert!(
            f[0].summary.contains("end of security support"),
            "{}",
            f[0].summary
        );
        // Only end of life passed (security support is tba): that date.
        let mut s = statement(None, 0, -2);
        s.end_of_security_support = EoxDate::Tba;
        let f = world("9.9", s).of(FlagKind::EndOfLifeProduct);
        assert_eq!(f[0].evidence["passed"]["date"], "end_of_life");
        assert_eq!(f[0].evidence["passed"]["days_since"], 2);
        assert_eq!(
            f[0].evidence["match"]["version"],
            "every version of the product"
        );
    }

    #[test]
    fn another_release_version_or_vendor_is_not_flagged() {
        // A release outside the range, an exact version that differs, a version that cannot
        // be compared: none.
        assert!(world("2.0", statement(Some("<2.0"), -10, -3))
            .of(FlagKind::EndOfLifeProduct)
            .is_empty());
        assert!(world("1.4", statement(Some("1.3"), -10, -3))
            .of(FlagKind::EndOfLifeProduct)
            .is_empty());
        assert_eq!(
            world("1.3", statement(Some("1.3"), -10, -3))
                .of(FlagKind::EndOfLifeProduct)
                .len(),
            1
        );
        assert!(world("v1_4(x)", statement(Some("<2.0"), -10, -3))
            .of(FlagKind::EndOfLifeProduct)
            .is_empty());
        let mut s = statement(None, -10, -3);
        s.vendor = "Other Corp".into();
        assert!(world("1.4", s).of(FlagKind::EndOfLifeProduct).is_empty());
    }
}
