//! What an evaluation writes: links, flags (opened, kept, resolved), the per-device summaries
//! the API pages through, the counts kept with both, the devices changed since they were last
//! evaluated, and which flag changes have been alerted.
//!
//! One file for both backends: each compiles it (`#[path]`) against its own driver,
//! `super::driver` — rusqlite, or the PostgreSQL shim that has rusqlite's API
//! (`postgres::sql`). The SQL is what both dialects accept as it is or after the shim's
//! mechanical rewrite: upserts with `ON CONFLICT … DO UPDATE`, `RETURNING`, id lists as one
//! JSON array parameter (`json_each`). The one difference, claiming alerts under row locks, is
//! the driver's [`CLAIM_ROWS`].

use std::collections::{BTreeMap, HashMap, HashSet};

use super::driver::{params, Connection, TransactionBehavior, CLAIM_ROWS};
use super::reads::{decode_flags, flag_row, FlagRowRaw};
use super::{db, decode, encode, exec, query};
use crate::compliance::flags::DAY_US;
use crate::compliance::summary;
use crate::store::{
    Applied, ApplyStats, Changes, ChangesSeen, Covered, DeviceSummary, EvalScope, Evaluated,
    FlagInstance, FlagRow, Link, LinkKind, LinkedElsewhere, ResolutionNote, StoreError,
};

/// `ids IN` one JSON array parameter (`?N`), whichever backend.
const IDS_IN: &str = "(SELECT CAST(value AS BIGINT) FROM json_each(?1))";

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// The rows of `all` (no parameter), or of `part` with its `?1` bound to `arg`.
fn rows<T>(
    conn: &Connection,
    what: &str,
    all: &str,
    part: Option<(&str, &str)>,
    map: impl FnMut(&super::driver::Row<'_>) -> super::driver::Result<T>,
) -> Result<Vec<T>, StoreError> {
    match part {
        None => query(conn, what, all, params![], map),
        Some((sql, arg)) => query(conn, what, sql, params![arg], map),
    }
}

fn link_kind(s: &str) -> LinkKind {
    if s == "asset" {
        LinkKind::Asset
    } else {
        LinkKind::Contract
    }
}

pub(super) fn apply(conn: &mut Connection, e: &Evaluated<'_>) -> Result<Applied, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("starting evaluation"))?;
    let mut st = ApplyStats::default();
    let part_ids = match e.scope {
        EvalScope::All => None,
        EvalScope::Part { devices, .. } => Some(json(&devices)),
    };
    write_links(&tx, e.links, part_ids.as_deref(), e.now_us, &mut st)?;
    let (opened, resolved) = write_flags(&tx, e, &mut st)?;
    if let Some(rows) = e.summaries {
        write_summary_rows(&tx, rows, part_ids.as_deref())?;
    }
    match e.changes {
        ChangesSeen::None => {}
        ChangesSeen::These { devices, up_to } => {
            exec(
                &tx,
                "forgetting evaluated changes",
                &format!("DELETE FROM changed_devices WHERE device_id IN {IDS_IN} AND token <= ?2"),
                params![json(&devices), up_to],
            )?;
        }
        ChangesSeen::UpTo(up_to) => {
            exec(
                &tx,
                "forgetting evaluated changes",
                "DELETE FROM changed_devices WHERE token <= ?1",
                params![up_to],
            )?;
        }
    }
    tx.commit().map_err(db("committing evaluation"))?;
    let resolved = if resolved.is_empty() {
        Vec::new()
    } else {
        let raw = query(
            conn,
            "reading resolved flags",
            &format!(
                "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us,
                   last_true_us, resolved_us
                 FROM flags WHERE id IN {IDS_IN} ORDER BY id DESC"
            ),
            params![json(&resolved)],
            flag_row,
        )?;
        decode_flags(raw)?
    };
    Ok(Applied {
        stats: st,
        opened,
        resolved,
    })
}

/// Replaces the links of the scope (`part`: a JSON array of device ids; `None`: all) with
/// `links`, writing only what changed.
fn write_links(
    tx: &Connection,
    links: &[Link],
    part: Option<&str>,
    now_us: i64,
    st: &mut ApplyStats,
) -> Result<(), StoreError> {
    let existing: HashMap<(i64, String), (String, String, f64)> = rows(
        tx,
        "reading links",
        "SELECT device_id, kind, target, method, confidence FROM links",
        part.map(|p| {
            (
                "SELECT device_id, kind, target, method, confidence FROM links
                 WHERE device_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
                p,
            )
        }),
        |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?))),
    )?
    .into_iter()
    .collect();
    let mut wanted: HashSet<(i64, String)> = HashSet::new();
    for l in links {
        let key = (l.device_id, l.kind.as_str().to_string());
        wanted.insert(key.clone());
        let same = existing.get(&key).is_some_and(|(t, m, c)| {
            t == &l.target && m == &l.method && (*c - f64::from(l.confidence)).abs() < 1e-6
        });
        if !same {
            exec(
                tx,
                "storing link",
                "INSERT INTO links (device_id, kind, target, method, confidence, since_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (device_id, kind) DO UPDATE SET target = excluded.target,
                   method = excluded.method, confidence = excluded.confidence,
                   since_us = excluded.since_us",
                params![
                    l.device_id,
                    l.kind.as_str(),
                    l.target,
                    l.method,
                    f64::from(l.confidence),
                    now_us
                ],
            )?;
            st.links_changed += 1;
        }
    }
    for key in existing.keys() {
        if !wanted.contains(key) {
            exec(
                tx,
                "removing link",
                "DELETE FROM links WHERE device_id = ?1 AND kind = ?2",
                params![key.0, key.1],
            )?;
            st.links_removed += 1;
        }
    }
    Ok(())
}

/// The open flags in scope, by `(kind, subject, detail)`.
fn open_flags(
    tx: &Connection,
    scope: EvalScope<'_>,
) -> Result<HashMap<(String, String, String), i64>, StoreError> {
    let rows = match scope {
        EvalScope::All => query(
            tx,
            "reading flags",
            "SELECT kind, subject, detail, id FROM flags WHERE status = 'open'",
            params![],
            |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)),
        )?,
        EvalScope::Part {
            devices,
            assets,
            contracts,
            every_aggregate,
        } => {
            let mut subjects: Vec<String> = devices.iter().map(|d| format!("device:{d}")).collect();
            subjects.extend(assets.iter().map(|a| format!("asset:{a}")));
            subjects.extend(contracts.iter().map(|c| format!("contract:{c}")));
            let aggregates = if every_aggregate {
                " OR (status = 'open' AND (subject LIKE 'asset:%' OR subject LIKE 'contract:%'))"
            } else {
                ""
            };
            query(
                tx,
                "reading flags",
                &format!(
                    "SELECT kind, subject, detail, id FROM flags
                     WHERE (status = 'open' AND subject IN (SELECT value FROM json_each(?1))){aggregates}"
                ),
                params![json(&subjects)],
                |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)),
            )?
        }
    };
    Ok(rows.into_iter().collect())
}

/// Opens, keeps and resolves the flags of the scope; the flags opened (whole) and the ids of
/// those resolved.
fn write_flags(
    tx: &Connection,
    e: &Evaluated<'_>,
    st: &mut ApplyStats,
) -> Result<(Vec<FlagRow>, Vec<i64>), StoreError> {
    let now_us = e.now_us;
    let open = open_flags(tx, e.scope)?;
    let mut opened: Vec<FlagRow> = Vec::new();
    let mut resolved: Vec<i64> = Vec::new();
    // Open flags per kind, moved by this evaluation (the counts kept with the flags).
    let mut open_delta: BTreeMap<String, i64> = BTreeMap::new();
    let mut still: HashSet<i64> = HashSet::new();
    for f in e.flags {
        let key = (
            f.kind.name().to_string(),
            f.subject.clone(),
            f.detail.clone(),
        );
        match open.get(&key) {
            Some(&id) => {
                still.insert(id);
                exec(
                    tx,
                    "updating flag",
                    "UPDATE flags SET last_true_us = ?2, severity = ?3, summary = ?4, evidence = ?5 WHERE id = ?1",
                    params![id, now_us, f.severity.as_str(), f.summary, encode(&f.evidence)],
                )?;
            }
            None => {
                let id = open_flag(tx, f, now_us)?;
                st.flags_opened += 1;
                *open_delta.entry(f.kind.name().to_string()).or_default() += 1;
                opened.push(FlagRow {
                    id,
                    kind: f.kind.name().to_string(),
                    subject: f.subject.clone(),
                    detail: f.detail.clone(),
                    severity: f.severity.as_str().to_string(),
                    status: "open".into(),
                    summary: f.summary.clone(),
                    evidence: f.evidence.clone(),
                    opened_us: now_us,
                    last_true_us: now_us,
                    resolved_us: None,
                });
                tracing::info!(kind = %f.kind, subject = %f.subject, detail = %f.detail, severity = %f.severity, "flag opened");
            }
        }
    }
    let notes: HashMap<(&str, &str, &str), &ResolutionNote> = e
        .notes
        .iter()
        .map(|n| ((n.kind.name(), n.subject.as_str(), n.detail.as_str()), n))
        .collect();
    for (key, id) in &open {
        if still.contains(id) {
            continue;
        }
        resolve_flag(
            tx,
            *id,
            notes.get(&(key.0.as_str(), key.1.as_str(), key.2.as_str())),
            now_us,
        )?;
        st.flags_resolved += 1;
        *open_delta.entry(key.0.clone()).or_default() -= 1;
        resolved.push(*id);
        tracing::info!(kind = %key.0, subject = %key.1, detail = %key.2, "flag resolved");
    }
    let recount = match e.scope {
        EvalScope::All => true,
        EvalScope::Part {
            every_aggregate, ..
        } => every_aggregate,
    };
    if recount || !flag_counts_kept(tx)? {
        write_flag_counts(tx)?;
    } else {
        let day = now_us.div_euclid(DAY_US).to_string();
        let mut deltas: Vec<(&str, String, i64)> = open_delta
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(k, n)| ("flags_open", k, n))
            .collect();
        for (grp, n) in [
            ("flags_opened", st.flags_opened),
            ("flags_resolved", st.flags_resolved),
        ] {
            if n > 0 {
                deltas.push((grp, day.clone(), i64::try_from(n).unwrap_or(i64::MAX)));
            }
        }
        add_counts(tx, deltas.iter().map(|(g, v, n)| (*g, v.as_str(), "", *n)))?;
    }
    st.flags_open = tx
        .query_row(
            "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM summary_counts WHERE grp = 'flags_open'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db("counting flags"))?
        .max(0) as u64;
    Ok((opened, resolved))
}

fn open_flag(tx: &Connection, f: &FlagInstance, now_us: i64) -> Result<i64, StoreError> {
    query(
        tx,
        "opening flag",
        "INSERT INTO flags (kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?7) RETURNING id",
        params![
            f.kind.name(),
            f.subject,
            f.detail,
            f.severity.as_str(),
            f.summary,
            encode(&f.evidence),
            now_us
        ],
        |r| r.get::<_, i64>(0),
    )?
    .into_iter()
    .next()
    .ok_or_else(|| StoreError::Corrupt {
        what: "flags".into(),
        detail: "an inserted flag returned no id".into(),
    })
}

/// Resolves flag `id` at `now_us`; with a note, why, kept with the evidence of when it last
/// held.
fn resolve_flag(
    tx: &Connection,
    id: i64,
    note: Option<&&ResolutionNote>,
    now_us: i64,
) -> Result<(), StoreError> {
    exec(
        tx,
        "resolving flag",
        "UPDATE flags SET status = 'resolved', resolved_us = ?2 WHERE id = ?1",
        params![id, now_us],
    )?;
    let Some(n) = note else { return Ok(()) };
    let (summary, evidence): (String, String) = tx
        .query_row(
            "SELECT summary, evidence FROM flags WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db("reading resolved flag"))?;
    let mut evidence: serde_json::Value = decode("flag evidence", &evidence)?;
    if let Some(obj) = evidence.as_object_mut() {
        obj.insert("resolution".into(), n.evidence.clone());
    }
    exec(
        tx,
        "noting flag resolution",
        "UPDATE flags SET summary = ?2, evidence = ?3 WHERE id = ?1",
        params![
            id,
            format!("{summary}; resolved: {}", n.summary),
            encode(&evidence)
        ],
    )?;
    Ok(())
}

/// Adds to counts of `summary_counts` (`grp, value, name, n`), removing those that reach zero
/// (apart from every device's, whose presence says the counts are kept).
fn add_counts<'a>(
    tx: &Connection,
    deltas: impl IntoIterator<Item = (&'a str, &'a str, &'a str, i64)>,
) -> Result<(), StoreError> {
    for (grp, value, name, n) in deltas {
        if n == 0 {
            continue;
        }
        exec(
            tx,
            "adding to a count",
            "INSERT INTO summary_counts (grp, value, name, n) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (grp, value, name) DO UPDATE SET n = summary_counts.n + excluded.n",
            params![grp, value, name, n],
        )?;
        if n < 0 && !(grp == summary::ALL && name == "devices") {
            exec(
                tx,
                "removing a count",
                "DELETE FROM summary_counts WHERE grp = ?1 AND value = ?2 AND name = ?3 AND n <= 0",
                params![grp, value, name],
            )?;
        }
    }
    Ok(())
}

fn flag_counts_kept(tx: &Connection) -> Result<bool, StoreError> {
    Ok(!query(
        tx,
        "reading flag counts",
        "SELECT n FROM summary_counts WHERE grp = 'flags' AND value = '' AND name = 'kept'",
        params![],
        |r| r.get::<_, i64>(0),
    )?
    .is_empty())
}

/// The overview's flag counts, kept with the flags (`summary_counts` groups `flags_open`,
/// `flags_opened`, `flags_resolved`; `flags`/`kept` says they are kept): open flags by kind,
/// and flags opened and resolved per UTC day, so that a page view reads a few rows instead of
/// counting the flags. An evaluation of part of the inventory adds what it changed; a whole
/// one, and the last step of a sweep, recount them from the flags' indexes (tens of
/// milliseconds at 200 000 flags), so what a merge resolved is counted again there.
fn write_flag_counts(tx: &Connection) -> Result<(), StoreError> {
    exec(
        tx,
        "clearing flag counts",
        "DELETE FROM summary_counts
         WHERE grp IN ('flags', 'flags_open', 'flags_opened', 'flags_resolved')",
        params![],
    )?;
    exec(
        tx,
        "counting open flags",
        "INSERT INTO summary_counts (grp, value, name, n)
         SELECT 'flags_open', kind, '', count(*) FROM flags WHERE status = 'open' GROUP BY kind",
        params![],
    )?;
    for (grp, column) in [
        ("flags_opened", "opened_us"),
        ("flags_resolved", "resolved_us"),
    ] {
        // The UTC day, rounded down (negative times too, as `i64::div_euclid`).
        exec(
            tx,
            "counting flags per day",
            &format!(
                "INSERT INTO summary_counts (grp, value, name, n)
                 SELECT '{grp}', CAST(day AS TEXT), '', count(*) FROM
                   (SELECT CASE WHEN {column} >= 0 THEN {column} / 86400000000
                                ELSE ({column} + 1) / 86400000000 - 1 END AS day
                    FROM flags WHERE {column} IS NOT NULL) AS days
                 GROUP BY day"
            ),
            params![],
        )?;
    }
    exec(
        tx,
        "marking flag counts",
        "INSERT INTO summary_counts (grp, value, name, n) VALUES ('flags', '', 'kept', 1)",
        params![],
    )?;
    Ok(())
}

pub(super) fn write_summaries(
    conn: &mut Connection,
    rows: &[DeviceSummary],
) -> Result<u64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("starting summary write"))?;
    let written = write_summary_rows(&tx, rows, None)?;
    tx.commit().map_err(db("committing summaries"))?;
    Ok(written)
}

/// Replaces the summaries of the scope (`part`: a JSON array of device ids; `None`: every
/// summary) with `rows`, writing only what changed, and keeps their counts with them.
fn write_summary_rows(
    tx: &Connection,
    rows: &[DeviceSummary],
    part: Option<&str>,
) -> Result<u64, StoreError> {
    let existing: HashMap<i64, String> = self::rows(
        tx,
        "reading summaries",
        "SELECT device_id, body FROM device_summary",
        part.map(|p| {
            (
                "SELECT device_id, body FROM device_summary
                 WHERE device_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
                p,
            )
        }),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect();
    let mut written = 0u64;
    let mut keep: HashSet<i64> = HashSet::with_capacity(rows.len());
    // What changed, for counts kept by difference: the rows before and after.
    let (mut before, mut after): (Vec<DeviceSummary>, Vec<&DeviceSummary>) = (vec![], vec![]);
    let counted = part.is_some() && summary_counts_kept(tx)?;
    for r in rows {
        keep.insert(r.id);
        let body = encode(r);
        let old = existing.get(&r.id);
        if old == Some(&body) {
            continue;
        }
        if counted {
            if let Some(old) = old {
                before.push(decode("device summary", old)?);
            }
            after.push(r);
        }
        let join = |v: &[String]| format!(",{},", v.join(","));
        exec(
            tx,
            "writing summary",
            "INSERT INTO device_summary (device_id, body, manufacturer, model,
               device_type, software_version, sites, first_us, last_us, asset_tag, contract_id,
               open_flags, flag_kinds, medical)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (device_id) DO UPDATE SET body = excluded.body,
               manufacturer = excluded.manufacturer, model = excluded.model,
               device_type = excluded.device_type, software_version = excluded.software_version,
               sites = excluded.sites, first_us = excluded.first_us, last_us = excluded.last_us,
               asset_tag = excluded.asset_tag, contract_id = excluded.contract_id,
               open_flags = excluded.open_flags, flag_kinds = excluded.flag_kinds,
               medical = excluded.medical",
            params![
                r.id,
                body,
                r.manufacturer,
                r.model,
                r.device_type,
                r.software_version,
                join(&r.sites),
                r.first_us,
                r.last_us,
                r.asset.as_ref().map(|a| a.target.clone()),
                r.contract.as_ref().map(|c| c.target.clone()),
                r.open_flags,
                join(&r.flag_kinds),
                r.medical
            ],
        )?;
        written += 1;
    }
    for (id, body) in &existing {
        if !keep.contains(id) {
            if counted {
                before.push(decode("device summary", body)?);
            }
            exec(
                tx,
                "removing summary",
                "DELETE FROM device_summary WHERE device_id = ?1",
                params![id],
            )?;
            written += 1;
        }
    }
    match part {
        None => write_counts(tx, rows)?,
        Some(_) if counted => {
            // Counts are sums over rows: the new rows' counts minus the old rows'.
            let mut delta: BTreeMap<(&'static str, String, String), i64> = BTreeMap::new();
            for (k, n) in summary::summary_counts_of(after.iter().copied()) {
                *delta.entry(k).or_default() += i64::try_from(n).unwrap_or(i64::MAX);
            }
            for (k, n) in summary::summary_counts_of(before.iter()) {
                *delta.entry(k).or_default() -= i64::try_from(n).unwrap_or(i64::MAX);
            }
            add_counts(
                tx,
                delta
                    .iter()
                    .map(|((g, v, name), n)| (*g, v.as_str(), name.as_str(), *n)),
            )?;
        }
        Some(_) => {
            // Counts never kept (a database last evaluated by an older collector): counted
            // once from every summary.
            let all: Vec<DeviceSummary> = query(
                tx,
                "reading summaries",
                "SELECT body FROM device_summary",
                params![],
                |r| r.get::<_, String>(0),
            )?
            .iter()
            .map(|b| decode("device summary", b))
            .collect::<Result<_, _>>()?;
            write_counts(tx, &all)?;
        }
    }
    Ok(written)
}

fn summary_counts_kept(tx: &Connection) -> Result<bool, StoreError> {
    Ok(!query(
        tx,
        "reading summary counts",
        "SELECT n FROM summary_counts WHERE grp = ?1 AND value = '' AND name = 'devices'",
        params![summary::ALL],
        |r| r.get::<_, i64>(0),
    )?
    .is_empty())
}

/// Keeps the summary of the summaries (`summary_counts`) equal to the counts of `rows` (every
/// summary), in the summaries' transaction: only the rows that changed are written.
fn write_counts(tx: &Connection, rows: &[DeviceSummary]) -> Result<(), StoreError> {
    let want: HashMap<(String, String, String), u64> = summary::summary_counts(rows)
        .into_iter()
        .map(|((g, v, n), c)| ((g.to_string(), v, n), c))
        .collect();
    let have: HashMap<(String, String, String), i64> = query(
        tx,
        "reading summary counts",
        "SELECT grp, value, name, n FROM summary_counts
         WHERE grp IN ('all', 'manufacturer', 'model')",
        params![],
        |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)),
    )?
    .into_iter()
    .collect();
    for ((grp, value, name), n) in &want {
        let n = i64::try_from(*n).unwrap_or(i64::MAX);
        if have.get(&(grp.clone(), value.clone(), name.clone())) == Some(&n) {
            continue;
        }
        exec(
            tx,
            "writing summary count",
            "INSERT INTO summary_counts (grp, value, name, n) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (grp, value, name) DO UPDATE SET n = excluded.n",
            params![grp, value, name, n],
        )?;
    }
    for key in have.keys() {
        if !want.contains_key(key) {
            let (grp, value, name) = key;
            exec(
                tx,
                "removing summary count",
                "DELETE FROM summary_counts WHERE grp = ?1 AND value = ?2 AND name = ?3",
                params![grp, value, name],
            )?;
        }
    }
    Ok(())
}

/// Resolves the open flags of a device merged into another, in the merge's transaction, and
/// keeps the flag counts with them (the next evaluation raises what still holds on the device
/// kept).
pub(super) fn resolve_merged_flags(
    tx: &Connection,
    kept: i64,
    absorbed: i64,
    at_us: i64,
) -> Result<(), StoreError> {
    let subject = format!("device:{absorbed}");
    let open: Vec<(String, i64)> = query(
        tx,
        "reading merged device flags",
        "SELECT kind, count(*) FROM flags WHERE subject = ?1 AND status = 'open' GROUP BY kind",
        params![subject],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if open.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "resolving merged device flags",
        "UPDATE flags SET status = 'resolved', resolved_us = ?2,
           summary = summary || ' (device merged into ' || ?3 || ')'
         WHERE subject = ?1 AND status = 'open'",
        params![subject, at_us, kept.to_string()],
    )?;
    if flag_counts_kept(tx)? {
        let day = at_us.div_euclid(DAY_US).to_string();
        let resolved: i64 = open.iter().map(|(_, n)| n).sum();
        add_counts(
            tx,
            open.iter()
                .map(|(kind, n)| ("flags_open", kind.as_str(), "", -n))
                .chain([("flags_resolved", day.as_str(), "", resolved)]),
        )?;
    }
    Ok(())
}

/// Records that these devices' stored facts changed, in the ingest's transaction (under its
/// write lock): each gets a token greater than every token recorded, so an evaluation that
/// read older tokens forgets only the changes it saw ([`ChangesSeen`]).
pub(super) fn record_changes(tx: &Connection, devices: &[i64]) -> Result<(), StoreError> {
    if devices.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "recording changed devices",
        "INSERT INTO changed_devices (device_id, token)
         SELECT CAST(value AS BIGINT),
                (SELECT coalesce(max(token), 0) + 1 FROM changed_devices)
         FROM json_each(?1) WHERE true
         ON CONFLICT (device_id) DO UPDATE SET token = excluded.token",
        params![json(&devices)],
    )?;
    Ok(())
}

pub(super) fn changed_devices(conn: &Connection, max: usize) -> Result<Changes, StoreError> {
    let rows: Vec<(i64, i64)> = query(
        conn,
        "reading changed devices",
        "SELECT device_id, token FROM changed_devices ORDER BY token, device_id LIMIT ?1",
        params![i64::try_from(max).unwrap_or(i64::MAX)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let up_to = rows.iter().map(|r| r.1).max().unwrap_or(0);
    let mut devices: Vec<i64> = rows.into_iter().map(|r| r.0).collect();
    devices.sort_unstable();
    Ok(Changes { devices, up_to })
}

pub(super) fn last_change(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT coalesce(max(token), 0) FROM changed_devices",
        [],
        |r| r.get(0),
    )
    .map_err(db("reading the last change"))
}

pub(super) fn device_ids_after(
    conn: &Connection,
    after: i64,
    max: usize,
) -> Result<Vec<i64>, StoreError> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    query(
        conn,
        "reading device ids",
        "SELECT id FROM (SELECT id FROM devices WHERE id > ?1 ORDER BY id LIMIT ?2) AS d
         UNION
         SELECT device_id FROM
           (SELECT device_id FROM device_summary WHERE device_id > ?1 ORDER BY device_id LIMIT ?2) AS s
         ORDER BY 1 LIMIT ?2",
        params![after, max],
        |r| r.get(0),
    )
}

pub(super) fn links_of(conn: &Connection, ids: &[i64]) -> Result<Vec<Link>, StoreError> {
    query(
        conn,
        "reading links",
        &format!(
            "SELECT device_id, kind, target, method, confidence FROM links
             WHERE device_id IN {IDS_IN} ORDER BY device_id, kind"
        ),
        params![json(&ids)],
        |r| {
            Ok(Link {
                device_id: r.get(0)?,
                kind: link_kind(&r.get::<_, String>(1)?),
                target: r.get(2)?,
                method: r.get(3)?,
                confidence: r.get::<_, f64>(4)? as f32,
            })
        },
    )
}

pub(super) fn linked_elsewhere(
    conn: &Connection,
    exclude: &[i64],
    assets: &[String],
    contracts: &[String],
) -> Result<LinkedElsewhere, StoreError> {
    let mut out = LinkedElsewhere::default();
    let exclude = json(&exclude);
    if !assets.is_empty() {
        out.asset_last_seen = query(
            conn,
            "reading asset last-seen times",
            "SELECT l.target, max(d.last_us) FROM links l JOIN devices d ON d.id = l.device_id
             WHERE l.kind = 'asset' AND l.target IN (SELECT value FROM json_each(?1))
               AND l.device_id NOT IN (SELECT CAST(value AS BIGINT) FROM json_each(?2))
               AND d.merged_into IS NULL
             GROUP BY l.target",
            params![json(&assets), exclude],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    }
    for c in contracts {
        // How many, and the lowest ids: never every device a contract covers.
        let count: i64 = conn
            .query_row(
                "SELECT count(*) FROM links
                 WHERE kind = 'contract' AND target = ?1
                   AND device_id NOT IN (SELECT CAST(value AS BIGINT) FROM json_each(?2))",
                params![c, exclude],
                |r| r.get(0),
            )
            .map_err(db("counting contract links"))?;
        if count == 0 {
            continue;
        }
        let first: Vec<i64> = query(
            conn,
            "reading contract links",
            "SELECT device_id FROM links
             WHERE kind = 'contract' AND target = ?1
               AND device_id NOT IN (SELECT CAST(value AS BIGINT) FROM json_each(?2))
             ORDER BY device_id LIMIT ?3",
            params![c, exclude, Covered::LISTED as i64],
            |r| r.get(0),
        )?;
        out.contract_devices
            .entry(c.clone())
            .or_default()
            .add(u64::try_from(count).unwrap_or(0), first);
    }
    Ok(out)
}

pub(super) fn imports_version(conn: &Connection) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::new();
    for table in [
        "contracts",
        "assets",
        "advisories",
        "kev_catalog",
        "sboms",
        "eox_statements",
    ] {
        let (n, last): (i64, i64) = conn
            .query_row(
                &format!("SELECT count(*), coalesce(max(imported_us), 0) FROM {table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db("reading import times"))?;
        out.extend([n, last]);
    }
    Ok(out)
}

pub(super) fn take_alerts(conn: &mut Connection, max: usize) -> Result<Applied, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("starting alert read"))?;
    let rows: Vec<(FlagRowRaw, i64)> = query(
        &tx,
        "reading unalerted flags",
        &format!(
            "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us, alerted
             FROM flags
             WHERE (status = 'open' AND alerted & 1 = 0) OR (status = 'resolved' AND alerted & 2 = 0)
             ORDER BY id LIMIT ?1{CLAIM_ROWS}"
        ),
        params![max as i64],
        |r| Ok((flag_row(r)?, r.get(11)?)),
    )?;
    let mut out = Applied::default();
    // Marked in one statement per mark, not one per flag: an import that opens a million flags
    // is a million alerts to claim.
    let mut marks: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for ((f, _), _) in &rows {
        let mark = if f.status == "open" { 1 } else { 3 };
        marks.entry(mark).or_default().push(f.id);
    }
    for (mark, ids) in &marks {
        exec(
            &tx,
            "marking flags alerted",
            &format!("UPDATE flags SET alerted = alerted | ?2 WHERE id IN {IDS_IN}"),
            params![json(ids), mark],
        )?;
    }
    for ((mut f, ev), alerted) in rows {
        f.evidence = decode("flag evidence", &ev)?;
        if alerted & 1 == 0 {
            // Opened and resolved between two alert rounds: say both, in order.
            out.opened.push(f.clone());
        }
        if f.status == "resolved" {
            out.resolved.push(f);
        }
    }
    tx.commit().map_err(db("committing alert marks"))?;
    Ok(out)
}

/// Records that alerts were delivered to every destination: `(flag id, event bit)`, bit 1 the
/// opening and 2 the resolution. What is claimed ([`take_alerts`]) but never recorded here was
/// lost with the collector that claimed it, and is sent again by [`undelivered_alerts`].
pub(super) fn confirm_alerts(conn: &mut Connection, done: &[(i64, i64)]) -> Result<(), StoreError> {
    if done.is_empty() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("starting alert confirmation"))?;
    let mut by_bit: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (id, bit) in done {
        by_bit.entry(*bit).or_default().push(*id);
    }
    for (bit, ids) in &by_bit {
        exec(
            &tx,
            "marking alerts delivered",
            &format!("UPDATE flags SET delivered = delivered | ?2 WHERE id IN {IDS_IN}"),
            params![json(ids), bit],
        )?;
    }
    tx.commit().map_err(db("committing alert confirmations"))?;
    Ok(())
}

/// Alerts claimed but not recorded as delivered, with flag ids above `after`, at most `max`
/// (the events in `opened` and `resolved` as [`take_alerts`] gives them). The evaluator's new
/// lease holder sends them again: whoever claimed them died (or hung) before delivering.
pub(super) fn undelivered_alerts(
    conn: &Connection,
    after: i64,
    max: usize,
) -> Result<Applied, StoreError> {
    let rows: Vec<(FlagRowRaw, i64, i64)> = query(
        conn,
        "reading undelivered alerts",
        "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us, alerted, delivered
         FROM flags WHERE alerted != delivered AND id > ?1 ORDER BY id LIMIT ?2",
        params![after, max as i64],
        |r| Ok((flag_row(r)?, r.get(11)?, r.get(12)?)),
    )?;
    let mut out = Applied::default();
    for ((mut f, ev), alerted, delivered) in rows {
        f.evidence = decode("flag evidence", &ev)?;
        let missing = alerted & !delivered;
        if missing & 1 != 0 {
            out.opened.push(f.clone());
        }
        if missing & 2 != 0 {
            out.resolved.push(f);
        }
    }
    Ok(out)
}
