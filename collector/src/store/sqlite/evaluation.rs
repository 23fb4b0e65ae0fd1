//! What an evaluation writes: links, flags (opened, kept, resolved), the per-device summaries
//! the API pages through, and which flag changes have been alerted.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection};

use super::reads::{self, flag_row, FlagRowRaw};
use super::{db, decode, encode, exec, query};
use crate::store::{
    Applied, ApplyStats, DeviceSummary, FlagInstance, FlagRow, Link, ResolutionNote, StoreError,
};

pub(super) fn apply(
    conn: &mut Connection,
    links: &[Link],
    flags: &[FlagInstance],
    notes: &[ResolutionNote],
    now_us: i64,
) -> Result<Applied, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting evaluation"))?;
    let mut st = ApplyStats::default();
    let mut opened: Vec<FlagRow> = Vec::new();
    let mut resolved: Vec<i64> = Vec::new();
    let existing: HashMap<(i64, String), (String, String, f64)> = query(
        &tx,
        "reading links",
        "SELECT device_id, kind, target, method, confidence FROM links",
        [],
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
            tx.execute(
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
            )
            .map_err(db("storing link"))?;
            st.links_changed += 1;
        }
    }
    for key in existing.keys() {
        if !wanted.contains(key) {
            tx.execute(
                "DELETE FROM links WHERE device_id = ?1 AND kind = ?2",
                params![key.0, key.1],
            )
            .map_err(db("removing link"))?;
            st.links_removed += 1;
        }
    }
    let open: HashMap<(String, String, String), i64> = query(
        &tx,
        "reading flags",
        "SELECT kind, subject, detail, id FROM flags WHERE status = 'open'",
        [],
        |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)),
    )?
    .into_iter()
    .collect();
    let mut still: HashSet<i64> = HashSet::new();
    for f in flags {
        let key = (
            f.kind.name().to_string(),
            f.subject.clone(),
            f.detail.clone(),
        );
        match open.get(&key) {
            Some(&id) => {
                still.insert(id);
                exec(
                    &tx,
                    "updating flag",
                    "UPDATE flags SET last_true_us = ?2, severity = ?3, summary = ?4, evidence = ?5 WHERE id = ?1",
                    params![id, now_us, f.severity.as_str(), f.summary, encode(&f.evidence)],
                )?;
            }
            None => {
                exec(
                    &tx,
                    "opening flag",
                    "INSERT INTO flags (kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us)
                     VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?7)",
                    params![
                        f.kind.name(),
                        f.subject,
                        f.detail,
                        f.severity.as_str(),
                        f.summary,
                        encode(&f.evidence),
                        now_us
                    ],
                )?;
                st.flags_opened += 1;
                opened.push(FlagRow {
                    id: tx.last_insert_rowid(),
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
    let notes: HashMap<(&str, &str, &str), &ResolutionNote> = notes
        .iter()
        .map(|n| ((n.kind.name(), n.subject.as_str(), n.detail.as_str()), n))
        .collect();
    for (key, id) in &open {
        if !still.contains(id) {
            tx.execute(
                "UPDATE flags SET status = 'resolved', resolved_us = ?2 WHERE id = ?1",
                params![id, now_us],
            )
            .map_err(db("resolving flag"))?;
            if let Some(n) = notes.get(&(key.0.as_str(), key.1.as_str(), key.2.as_str())) {
                // Why it resolved, kept with the evidence of when it last held.
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
                    &tx,
                    "noting flag resolution",
                    "UPDATE flags SET summary = ?2, evidence = ?3 WHERE id = ?1",
                    params![
                        id,
                        format!("{summary}; resolved: {}", n.summary),
                        encode(&evidence)
                    ],
                )?;
            }
            st.flags_resolved += 1;
            resolved.push(*id);
            tracing::info!(kind = %key.0, subject = %key.1, detail = %key.2, "flag resolved");
        }
    }
    st.flags_open = tx
        .query_row(
            "SELECT count(*) FROM flags WHERE status = 'open'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db("counting flags"))? as u64;
    write_flag_counts(&tx)?;
    tx.commit().map_err(db("committing evaluation"))?;
    let resolved = if resolved.is_empty() {
        Vec::new()
    } else {
        let ids: HashSet<i64> = resolved.into_iter().collect();
        reads::flags(conn, false)?
            .into_iter()
            .filter(|f| ids.contains(&f.id))
            .collect()
    };
    Ok(Applied {
        stats: st,
        opened,
        resolved,
    })
}

pub(super) fn write_summaries(
    conn: &mut Connection,
    rows: &[DeviceSummary],
) -> Result<u64, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting summary write"))?;
    let existing: HashMap<i64, String> = query(
        &tx,
        "reading summaries",
        "SELECT device_id, body FROM device_summary",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect();
    let mut written = 0u64;
    let mut keep: HashSet<i64> = HashSet::with_capacity(rows.len());
    for r in rows {
        keep.insert(r.id);
        let body = encode(r);
        if existing.get(&r.id) == Some(&body) {
            continue;
        }
        let join = |v: &[String]| format!(",{},", v.join(","));
        exec(
            &tx,
            "writing summary",
            "INSERT OR REPLACE INTO device_summary (device_id, body, manufacturer, model,
               device_type, software_version, sites, first_us, last_us, asset_tag, contract_id,
               open_flags, flag_kinds, medical)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
    for id in existing.keys() {
        if !keep.contains(id) {
            tx.execute(
                "DELETE FROM device_summary WHERE device_id = ?1",
                params![id],
            )
            .map_err(db("removing summary"))?;
            written += 1;
        }
    }
    write_counts(&tx, rows)?;
    tx.commit().map_err(db("committing summaries"))?;
    Ok(written)
}

/// The overview's flag counts, kept with the flags in the evaluation's transaction: open flags
/// by kind, and flags opened and resolved per UTC day (`summary_counts` groups `flags_open`,
/// `flags_opened`, `flags_resolved`; `flags`/`kept` says they are kept). Recounted from the
/// flags' indexes each evaluation (tens of milliseconds at 200 000 flags) so that a page view
/// reads a few rows instead of counting them.
fn write_flag_counts(tx: &Connection) -> Result<(), StoreError> {
    exec(
        tx,
        "clearing flag counts",
        "DELETE FROM summary_counts
         WHERE grp IN ('flags', 'flags_open', 'flags_opened', 'flags_resolved')",
        [],
    )?;
    exec(
        tx,
        "counting open flags",
        "INSERT INTO summary_counts (grp, value, name, n)
         SELECT 'flags_open', kind, '', count(*) FROM flags WHERE status = 'open' GROUP BY kind",
        [],
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
            [],
        )?;
    }
    exec(
        tx,
        "marking flag counts",
        "INSERT INTO summary_counts (grp, value, name, n) VALUES ('flags', '', 'kept', 1)",
        [],
    )?;
    Ok(())
}

/// Keeps the summary of the summaries (`summary_counts`) equal to the counts of `rows`, in the
/// summaries' transaction: only the rows that changed are written.
fn write_counts(tx: &Connection, rows: &[DeviceSummary]) -> Result<(), StoreError> {
    let want: HashMap<(String, String, String), u64> =
        crate::compliance::summary::summary_counts(rows)
            .into_iter()
            .map(|((g, v, n), c)| ((g.to_string(), v, n), c))
            .collect();
    let have: HashMap<(String, String, String), i64> = query(
        tx,
        "reading summary counts",
        "SELECT grp, value, name, n FROM summary_counts
         WHERE grp IN ('all', 'manufacturer', 'model')",
        [],
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
            "INSERT OR REPLACE INTO summary_counts (grp, value, name, n) VALUES (?1, ?2, ?3, ?4)",
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

pub(super) fn take_alerts(conn: &mut Connection, max: usize) -> Result<Applied, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting alert read"))?;
    let rows: Vec<(FlagRowRaw, i64)> = query(
        &tx,
        "reading unalerted flags",
        "SELECT id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us, alerted
         FROM flags WHERE alerted != 3
           AND ((status = 'open' AND alerted & 1 = 0) OR (status = 'resolved' AND alerted & 2 = 0))
         ORDER BY id LIMIT ?1",
        params![max as i64],
        |r| Ok((flag_row(r)?, r.get(11)?)),
    )?;
    let mut out = Applied::default();
    for ((mut f, ev), alerted) in rows {
        f.evidence = decode("flag evidence", &ev)?;
        let mark = if f.status == "open" { 1 } else { 3 };
        exec(
            &tx,
            "marking flag alerted",
            "UPDATE flags SET alerted = alerted | ?2 WHERE id = ?1",
            params![f.id, mark],
        )?;
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
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db("starting alert confirmation"))?;
    for (id, bit) in done {
        exec(
            &tx,
            "marking alert delivered",
            "UPDATE flags SET delivered = delivered | ?2 WHERE id = ?1",
            params![id, bit],
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
