//! Asset scope: a row of the asset register. Subject `asset:<tag>`.

use serde_json::json;

use super::{flag, time_of, At, FlagConfig, FlagKind, Scope, DAY_US};
use crate::import::model::Asset;
use crate::store::FlagInstance;

/// Every asset-scope condition that holds for `a`; `last_seen_us` is the latest time a device
/// linked to it was seen (`None`: no device links to it).
pub fn asset_flags(
    a: &Asset,
    last_seen_us: Option<i64>,
    cfg: &FlagConfig,
    at: At,
    out: &mut Vec<FlagInstance>,
) {
    not_seen(a, last_seen_us, cfg, at, out);
}

/// `asset_not_seen`: no linked device seen within `asset_not_seen_days` (exactly that long ago
/// still counts as seen), or never.
fn not_seen(a: &Asset, last: Option<i64>, cfg: &FlagConfig, at: At, out: &mut Vec<FlagInstance>) {
    let fresh =
        last.is_some_and(|l| at.now_us.saturating_sub(l) <= cfg.asset_not_seen_days * DAY_US);
    if fresh {
        return;
    }
    let what = format!(
        "asset {} ({} {})",
        a.tag,
        a.manufacturer.as_deref().unwrap_or("?"),
        a.model.as_deref().unwrap_or("?")
    );
    out.push(flag(
        FlagKind::AssetNotSeen,
        Scope::Asset.subject(&a.tag),
        String::new(),
        match last {
            Some(l) => format!(
                "{what}: last seen {} — more than {} days ago",
                time_of(l),
                cfg.asset_not_seen_days
            ),
            None => format!("{what}: never seen on the network"),
        },
        json!({"asset": a, "last_seen": last.map(time_of), "days": cfg.asset_not_seen_days}),
    ));
}

#[cfg(test)]
pub(super) fn cases() -> Vec<super::testkit::Case> {
    use super::testkit::*;
    let last_seen = |ago: i64| {
        World::covered_with(move |w| {
            let n = w.now_us;
            w.d().last_us = n - ago;
        })
    };
    vec![
        Case::new(
            "a register row no device matches",
            FlagKind::AssetNotSeen,
            World::covered_with(|w| w.d().macs.clear()),
            World::covered(),
        ),
        Case::new(
            "last seen 30 days and a microsecond ago",
            FlagKind::AssetNotSeen,
            last_seen(30 * DAY_US + 1),
            last_seen(30 * DAY_US),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// The 30-day threshold and a configured one; the evidence says when and how long.
    #[test]
    fn not_seen_thresholds() {
        let at = |ago: i64, days: i64| {
            let mut w = World::covered();
            let n = w.now_us;
            w.d().last_us = n - ago;
            w.cfg.asset_not_seen_days = days;
            w.of(FlagKind::AssetNotSeen)
        };
        assert!(at(29 * DAY_US, 30).is_empty());
        assert!(at(30 * DAY_US, 30).is_empty());
        let f = at(31 * DAY_US, 30);
        assert_eq!(f[0].subject, "asset:A-1");
        assert_eq!(f[0].evidence["days"], 30);
        assert_eq!(f[0].evidence["last_seen"], "2026-05-15T12:00:00Z");
        assert!(at(7 * DAY_US, 7).is_empty());
        assert_eq!(at(7 * DAY_US + 1, 7).len(), 1);
        // Never seen.
        let w = World::covered_with(|w| w.d().macs.clear());
        let f = w.of(FlagKind::AssetNotSeen);
        assert_eq!(f[0].evidence["last_seen"], serde_json::Value::Null);
        assert!(
            f[0].summary.ends_with("never seen on the network"),
            "{}",
            f[0].summary
        );
    }

    /// The latest of several linked devices counts.
    #[test]
    fn the_latest_linked_device_counts() {
        let two = |ago2: i64| {
            let mut w = World::covered();
            let n = w.now_us;
            w.d().last_us = n - 100 * DAY_US;
            let mut other = dev(2).id("serial", "SN-1");
            other.last_us = n - ago2;
            w.inv.devices.push(other);
            w.inv.assets[0].serial = Some("sn-1".into());
            w
        };
        assert!(two(DAY_US).of(FlagKind::AssetNotSeen).is_empty());
        assert_eq!(two(40 * DAY_US).of(FlagKind::AssetNotSeen).len(), 1);
    }
}
