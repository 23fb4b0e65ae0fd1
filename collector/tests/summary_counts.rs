//! The summary of the summaries (issue 21's console at 100 000 devices): coverage, the device
//! list's totals and its manufacturer/model search read counts kept by every evaluation rather
//! than a pass over every summary. Each answer must be the one the pass gave: the same store is
//! asked again after its counts are removed (a database summarised by an older collector, which
//! the store answers by counting the summaries, as before), on SQLite and, in the PostgreSQL
//! pass, on PostgreSQL.

mod common;

use std::path::Path;

use ward_collector::compliance::flags::FlagKind;
use ward_collector::store::{
    DeviceQuery, DeviceSort, DeviceSummary, FlagInstance, LinkFilter, LinkRef, Store,
};

fn link(t: &str) -> LinkRef {
    LinkRef {
        target: t.into(),
        method: "mac".into(),
        confidence: 1.0,
    }
}

/// A small inventory with every case the counts distinguish: manufacturers with and without
/// non-ASCII letters, none at all, models sharing substrings, a `%` in a model, medical or not,
/// asset and contract links, open flags of several kinds.
fn inventory() -> Vec<DeviceSummary> {
    let kinds = [
        "end_of_support_passed",
        "end_of_support_within",
        "no_contract",
        "not_in_asset_register",
    ];
    (0..48i64)
        .map(|i| {
            let flag_kinds: Vec<String> = kinds
                .iter()
                .enumerate()
                .filter(|(k, _)| (i as usize + k).is_multiple_of(3))
                .map(|(_, k)| k.to_string())
                .collect();
            DeviceSummary {
                id: i + 1,
                macs: vec![format!("02:00:00:00:00:{:02x}", i + 1)],
                ips: vec![format!("10.0.0.{}", i + 1)],
                manufacturer: match i % 5 {
                    0 => Some("ACME Medical".into()),
                    1 => Some("DRÄGER".into()),
                    2 => Some("Other".into()),
                    3 => Some("acme labs".into()),
                    _ => None,
                },
                model: match i % 4 {
                    0 => Some("Scan 64".into()),
                    1 => Some("Scan 128".into()),
                    2 => Some("Pump 5%".into()),
                    _ => None,
                },
                device_type: if i % 3 == 0 { "ct" } else { "infusion_pump" }.into(),
                software_version: None,
                sites: vec![if i % 2 == 0 { "north" } else { "south" }.into()],
                vlans: vec![],
                first_us: i,
                last_us: 1000 - i * 7 % 50,
                asset: (i % 5 == 0 || i % 7 == 1).then(|| link(&format!("A-{i}"))),
                contract: (i % 7 < 3).then(|| link(if i % 2 == 0 { "C-1" } else { "C-2" })),
                open_flags: flag_kinds.len() as u32,
                flag_kinds,
                medical: i % 2 == 0,
            }
        })
        .collect()
}

/// Removes the stored counts, as a database summarised before they existed has none.
fn forget_counts(path: &Path) {
    match common::postgres_server() {
        None => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch("DELETE FROM summary_counts").unwrap();
        }
        Some(_) => {
            let url = common::db_arg(path);
            std::thread::scope(|sc| {
                sc.spawn(|| {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    c.batch_execute("DELETE FROM summary_counts").unwrap();
                })
                .join()
            })
            .unwrap();
        }
    }
}

fn vendor_sets() -> Vec<Option<Vec<String>>> {
    vec![
        None,
        Some(vec!["acme*".into()]),
        Some(vec!["dräger*".into(), "Other".into()]),
        Some(vec!["nobody".into()]),
    ]
}

fn queries() -> Vec<DeviceQuery> {
    let q = |f: fn(&mut DeviceQuery)| {
        let mut q = DeviceQuery {
            limit: 100,
            ..DeviceQuery::default()
        };
        f(&mut q);
        q
    };
    let mut out = vec![
        q(|_| {}),
        q(|q| q.search = Some("scan".into())),
        q(|q| q.search = Some("ACM".into())),
        q(|q| q.search = Some("5%".into())),
        q(|q| q.search = Some("äg".into())),
        q(|q| q.search = Some("10.0.0.1".into())),
        q(|q| q.search = Some("02:00:00:00:00:0".into())),
        q(|q| q.search = Some("nothing like it".into())),
        q(|q| q.manufacturer = Some("acme".into())),
        q(|q| q.manufacturer = Some("dräger".into())),
        q(|q| q.flag = Some("no_contract".into())),
        q(|q| q.flag = Some("NO_CONTRACT".into())),
        q(|q| q.contract = Some(LinkFilter::Linked)),
        q(|q| q.contract = Some(LinkFilter::Unlinked)),
        q(|q| q.contract = Some(LinkFilter::To("C-2".into()))),
        q(|q| q.asset = Some(LinkFilter::Linked)),
        q(|q| q.asset = Some(LinkFilter::Unlinked)),
        q(|q| {
            q.manufacturer = Some("acme".into());
            q.asset = Some(LinkFilter::Unlinked);
        }),
        q(|q| {
            q.device_type = Some("ct".into());
            q.manufacturer = Some("acme".into());
            q.contract = Some(LinkFilter::Linked);
        }),
        q(|q| {
            q.site = Some("north".into());
            q.flag = Some("end_of_support_passed".into());
        }),
        q(|q| {
            q.search = Some("scan".into());
            q.sort = DeviceSort::LastSeen;
        }),
        q(|q| {
            q.sort = DeviceSort::Manufacturer;
            q.limit = 7;
            q.offset = 11;
        }),
        q(|q| {
            q.sort = DeviceSort::Flags;
            q.limit = 5;
            q.offset = 40;
        }),
        q(|q| {
            q.sort = DeviceSort::Type;
            q.limit = 10;
            q.offset = 3;
        }),
        q(|q| {
            q.limit = 9;
            q.offset = 30;
        }),
    ];
    // A capped total: exact below the cap, "more than" (u64::MAX) above it.
    out.push(q(|q| {
        q.device_type = Some("ct".into());
        q.count_cap = Some(3);
    }));
    out.push(q(|q| {
        q.device_type = Some("ct".into());
        q.count_cap = Some(1000);
    }));
    out
}

type Answers = Vec<(String, String)>;

fn answers(s: &dyn Store) -> Answers {
    let mut out = Vec::new();
    for v in vendor_sets() {
        let c = s.coverage(v.as_deref()).unwrap();
        out.push((format!("coverage {v:?}"), format!("{c:?}")));
        for q in queries() {
            let q = DeviceQuery {
                vendors: v.clone(),
                ..q
            };
            let (total, rows) = s.device_page(&q).unwrap();
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            out.push((format!("{q:?}"), format!("{total} {ids:?}")));
        }
        // The assets page's linked devices: the asset-linked summaries, by tag then id.
        let mut want: Vec<(String, i64, Option<String>, Option<String>)> = s
            .device_page(&DeviceQuery {
                asset: Some(LinkFilter::Linked),
                vendors: v.clone(),
                limit: 1000,
                ..DeviceQuery::default()
            })
            .unwrap()
            .1
            .into_iter()
            .map(|d| (d.asset.unwrap().target, d.id, d.manufacturer, d.model))
            .collect();
        want.sort();
        // Sorted here too: PostgreSQL orders tags by its collation, SQLite by bytes.
        let mut got: Vec<_> = s
            .asset_links(v.as_deref())
            .unwrap()
            .into_iter()
            .map(|l| (l.tag, l.device_id, l.manufacturer, l.model))
            .collect();
        got.sort();
        assert_eq!(got, want, "{v:?}");
        out.push((format!("asset links {v:?}"), format!("{got:?}")));
        // The overview's flag counts and chart.
        out.push((
            format!("open flags {v:?}"),
            format!("{:?}", s.open_flag_counts(v.as_deref()).unwrap()),
        ));
        for (from, to) in [(0, 40 * DAY), (9 * DAY, 12 * DAY - 1), (-3 * DAY, DAY)] {
            out.push((
                format!("timeline {v:?} {from} {to}"),
                format!("{:?}", s.flag_timeline(v.as_deref(), from, to).unwrap()),
            ));
        }
    }
    out
}

const DAY: i64 = 86_400_000_000;

fn flag(kind: FlagKind, subject: &str) -> FlagInstance {
    FlagInstance {
        kind,
        subject: subject.into(),
        detail: String::new(),
        severity: kind.severity(),
        summary: "s".into(),
        evidence: serde_json::Value::Null,
    }
}

/// Flags opened and resolved over several days (one before 1970: the day rounds down).
fn evaluate_flags(s: &mut dyn Store) {
    let all: Vec<FlagInstance> = (1..=12)
        .map(|i| {
            let kind = [
                FlagKind::NoContract,
                FlagKind::NotInAssetRegister,
                FlagKind::EndOfSupportPassed,
            ][i % 3];
            flag(kind, &format!("device:{i}"))
        })
        .chain([flag(FlagKind::AssetNotSeen, "asset:A-1")])
        .collect();
    s.apply_evaluation(&[], &all[..8], &[], -DAY / 2).unwrap();
    s.apply_evaluation(&[], &all, &[], 10 * DAY + 5).unwrap();
    s.apply_evaluation(&[], &all[3..], &[], 11 * DAY + 7)
        .unwrap();
    s.apply_evaluation(&[], &all[5..], &[], 11 * DAY + 9)
        .unwrap();
}

#[test]
fn stored_counts_answer_as_the_pass_over_every_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let mut s = common::open_store(&path);
    evaluate_flags(&mut *s);
    let mut rows = inventory();
    s.write_summaries(&rows).unwrap();
    let stored = common::db_rows(&path, "SELECT count(*) FROM summary_counts");
    assert_ne!(stored[0][0].as_deref(), Some("0"), "counts kept");
    let flags_kept = common::db_rows(
        &path,
        "SELECT count(*) FROM summary_counts WHERE grp = 'flags' AND name = 'kept'",
    );
    assert_eq!(flags_kept[0][0].as_deref(), Some("1"), "flag counts kept");
    let t = s.flag_timeline(None, -3 * DAY, 40 * DAY).unwrap();
    let t: Vec<(i64, u64, u64)> = t.iter().map(|d| (d.day, d.opened, d.resolved)).collect();
    assert_eq!(t, [(-1, 8, 0), (10, 5, 0), (11, 0, 5)]);
    let kept = answers(&*s);
    forget_counts(&path);
    let counted = answers(&*s);
    for (k, c) in kept.iter().zip(&counted) {
        assert_eq!(k, c);
    }
    // Sanity: the answers are not all empty, and the cap says "more than".
    let admin = s.coverage(None).unwrap();
    assert_eq!(admin.devices, 48);
    assert!(
        admin.medical > 0 && admin.open_flags_by_kind.len() == 4,
        "{admin:?}"
    );
    let (total, _) = s
        .device_page(&DeviceQuery {
            device_type: Some("ct".into()),
            count_cap: Some(3),
            limit: 1,
            ..DeviceQuery::default()
        })
        .unwrap();
    assert_eq!(total, u64::MAX);

    // The next evaluation keeps them again, following changes: a device gone, one changed, a
    // manufacturer and a model gone with them.
    rows.retain(|r| r.id != 2);
    for r in rows
        .iter_mut()
        .filter(|r| r.manufacturer.as_deref() == Some("Other"))
    {
        r.manufacturer = Some("Newco".into());
        r.model = Some("Monitor 9".into());
        r.contract = None;
    }
    s.write_summaries(&rows).unwrap();
    let kept = answers(&*s);
    forget_counts(&path);
    let counted = answers(&*s);
    for (k, c) in kept.iter().zip(&counted) {
        assert_eq!(k, c);
    }
    assert_eq!(s.coverage(None).unwrap().devices, 47);
    s.write_summaries(&rows).unwrap();
    let gone = s
        .device_page(&DeviceQuery {
            search: Some("other".into()),
            limit: 100,
            ..DeviceQuery::default()
        })
        .unwrap();
    assert_eq!(gone.0, 0);

    // No device at all: zero, not "not kept".
    s.write_summaries(&[]).unwrap();
    assert_eq!(s.coverage(None).unwrap(), Default::default());
    assert_eq!(
        s.device_page(&DeviceQuery {
            limit: 10,
            ..DeviceQuery::default()
        })
        .unwrap()
        .0,
        0
    );
}
