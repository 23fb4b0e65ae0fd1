//! What only the PostgreSQL backend has (issue 22): versioned migrations recorded in
//! `schema_migrations` and a database from a newer program refused; the password never in an
//! error or a log line; `sslmode=require` refuses a server without TLS. PostgreSQL only: these
//! run in the suite's PostgreSQL pass (scripts/test.sh), which CI always runs.

mod common;

use common::*;
use ward_collector::store::open_store;

#[test]
fn migrations_run_once_and_a_newer_database_is_refused() {
    if sqlite() {
        eprintln!("PostgreSQL only (WARD_TEST_POSTGRES)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let url = db_arg(&db);
    drop(open_store(&url).unwrap());
    drop(open_store(&url).unwrap());
    let rows = db_rows(
        &db,
        "SELECT kind, count(*), max(version) FROM schema_migrations GROUP BY kind ORDER BY kind",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r[1], r[2], "each version recorded once: {rows:?}");
    }
    // A newer program's migration recorded: this one refuses the database.
    let newer: i64 = rows
        .iter()
        .find(|r| r[0].as_deref() == Some("shared"))
        .unwrap()[2]
        .as_deref()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        + 1;
    db_rows(
        &db,
        &format!("INSERT INTO schema_migrations VALUES ('shared', {newer}, 0) RETURNING version"),
    );
    let e = open_store(&url).unwrap_err().to_string();
    assert!(e.contains("newer"), "{e}");
}

#[test]
fn the_password_is_in_no_error_and_no_log() {
    if sqlite() {
        eprintln!("PostgreSQL only (WARD_TEST_POSTGRES)");
        return;
    }
    // Nothing listens on port 1: the connection fails, and its error names the database.
    let url = "postgres://ward:Pa55-CANARY-word@127.0.0.1:1/ward?connect_timeout=2";
    let out = std::process::Command::new(collector_bin())
        .args(["--db", url, "--log-level", "debug", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("Pa55-CANARY-word"), "{text}");
    assert!(text.contains("ward:***@"), "{text}");
}

#[test]
fn sslmode_require_refuses_a_server_without_tls() {
    let Some(server) = postgres_server() else {
        eprintln!("PostgreSQL only (WARD_TEST_POSTGRES)");
        return;
    };
    // The suite's throw-away server has no TLS: with sslmode=require the collector must not
    // fall back to plain text.
    let sep = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{sep}sslmode=require");
    let e = open_store(&url).unwrap_err().to_string();
    assert!(
        e.to_ascii_lowercase().contains("tls") || e.to_ascii_lowercase().contains("ssl"),
        "{e}"
    );
}

#[test]
fn the_lease_has_one_holder_until_it_expires_or_is_released() {
    let mut a = fresh_store();
    if sqlite() {
        // One collector per file: always granted.
        assert!(a.try_lease("evaluator", "a", 1_000, 0).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    let (mut a, mut b) = (common::open_store(&db), common::open_store(&db));
    let ttl = 10_000_000;
    assert!(a.try_lease("evaluator", "a", ttl, 0).unwrap());
    assert!(!b.try_lease("evaluator", "b", ttl, 1).unwrap(), "held by a");
    assert!(
        a.try_lease("evaluator", "a", ttl, 5_000_000).unwrap(),
        "renewed"
    );
    assert!(
        !b.try_lease("evaluator", "b", ttl, 14_000_000).unwrap(),
        "renewed until 15 s"
    );
    assert!(
        b.try_lease("evaluator", "b", ttl, 15_000_001).unwrap(),
        "expired: taken over"
    );
    assert!(
        !a.try_lease("evaluator", "a", ttl, 15_000_002).unwrap(),
        "a lost it"
    );
    // Released (renewed as expired) by its holder: free at once; nobody else can release it.
    assert!(!a.try_lease("evaluator", "a", -1, 15_000_003).unwrap());
    assert!(
        !a.try_lease("evaluator", "a", ttl, 15_000_004).unwrap(),
        "still b's"
    );
    b.try_lease("evaluator", "b", -1, 15_000_005).unwrap();
    assert!(
        a.try_lease("evaluator", "a", ttl, 15_000_006).unwrap(),
        "released by b"
    );
    // Other leases are independent.
    assert!(b.try_lease("other", "b", ttl, 15_000_007).unwrap());
}

/// The device list's totals and deep pages, which the PostgreSQL store remembers for as long as
/// the summaries' generation holds (issue 22; SQLite computes them each time, and this runs on
/// either backend): every probed page of 2 500 summaries, in id order and filtered by type,
/// holds exactly the ids it should, and after a write that removes summaries and changes types
/// — or one that only moves last-seen times — they are right again at once.
#[test]
fn device_list_totals_and_deep_pages_follow_every_summary_write() {
    use ward_collector::store::{DeviceQuery, DeviceSummary, Store};
    let mut s = fresh_store();
    let row = |id: i64, t: &str| DeviceSummary {
        id,
        macs: vec![],
        ips: vec![],
        manufacturer: Some("ACME".into()),
        model: None,
        device_type: t.into(),
        software_version: None,
        sites: vec!["s".into()],
        vlans: vec![],
        first_us: 0,
        last_us: 0,
        asset: None,
        contract: None,
        open_flags: 0,
        flag_kinds: vec![],
        medical: true,
    };
    fn check(s: &dyn Store, rows: &[DeviceSummary], t: Option<&str>) {
        let want: Vec<i64> = rows
            .iter()
            .filter(|r| t.is_none_or(|t| r.device_type == t))
            .map(|r| r.id)
            .collect();
        let n = want.len();
        for offset in [0, 1, 999, 1000, 1001, 1999, 2000, 2345, n - 1, n, n + 5] {
            let (total, got) = s
                .device_page(&DeviceQuery {
                    device_type: t.map(Into::into),
                    limit: 7,
                    offset: offset as u64,
                    ..DeviceQuery::default()
                })
                .unwrap();
            assert_eq!(total as usize, n, "type {t:?}");
            let got: Vec<i64> = got.iter().map(|r| r.id).collect();
            let expected: Vec<i64> = want.iter().skip(offset).take(7).copied().collect();
            assert_eq!(got, expected, "offset {offset}, type {t:?}");
        }
    }
    let rows: Vec<DeviceSummary> = (1..=2500)
        .map(|i| row(i * 2, if i % 3 == 0 { "pump" } else { "ct" }))
        .collect();
    s.write_summaries(&rows).unwrap();
    for t in [None, Some("ct"), Some("pump")] {
        check(&*s, &rows, t);
    }
    let fewer: Vec<DeviceSummary> = rows
        .iter()
        .filter(|r| r.id % 10 != 0)
        .map(|r| {
            row(
                r.id,
                if r.id % 7 == 0 {
                    "pump"
                } else {
                    &r.device_type
                },
            )
        })
        .collect();
    s.write_summaries(&fewer).unwrap();
    for t in [None, Some("ct"), Some("pump")] {
        check(&*s, &fewer, t);
    }
    let later: Vec<DeviceSummary> = fewer
        .iter()
        .map(|r| DeviceSummary {
            last_us: 99,
            ..r.clone()
        })
        .collect();
    s.write_summaries(&later).unwrap();
    for t in [None, Some("ct"), Some("pump")] {
        check(&*s, &later, t);
    }
}
