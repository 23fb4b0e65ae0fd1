//! The software-version timeline (`version_episodes`): one row per stretch of time a device
//! ran one version, so 1.0 → 1.1 → 1.0 is three rows where `attributes` has two.

use std::collections::BTreeMap;

use super::driver::{params, params_from_iter, Connection};

use super::{exec, query};
use crate::store::{StoreError, VersionEpisode};

/// Records that `dev` ran `value` from `first` to `last`, reported by `agent` at `site`
/// through `fields`. The sighting extends the episode it falls in or right after (the latest
/// one starting at or before it) when that is the same version; else, when the next episode is
/// the same version (nothing else was seen between them), that one moves back to its start;
/// else it starts an episode of its own. Agents report in time order, so this is one write
/// per sighting and one row per version change; a late, out-of-order message lands in the
/// right place as far as the rows say.
#[allow(clippy::too_many_arguments)] // the columns of one row
pub(super) fn record(
    conn: &Connection,
    dev: i64,
    value: &str,
    first: i64,
    last: i64,
    site: &str,
    agent: &str,
    fields: &[&str],
) -> Result<(), StoreError> {
    let episodes = read(
        conn,
        " WHERE device_id = ?1",
        Some(super::driver::Value::Integer(dev)),
    )?
    .remove(&dev)
    .unwrap_or_default();
    let joined = |old: &[String]| {
        let mut all: Vec<String> = old.to_vec();
        for f in fields {
            if !all.iter().any(|a| a == f) {
                all.push((*f).to_owned());
            }
        }
        all.join(",")
    };
    let prev = episodes.iter().rev().find(|e| e.first_us <= first);
    if let Some(p) = prev.filter(|p| p.value == value) {
        exec(
            conn,
            "extending version episode",
            "UPDATE version_episodes SET
               site = CASE WHEN ?4 >= last_us THEN ?5 ELSE site END,
               agent_id = CASE WHEN ?4 >= last_us THEN ?6 ELSE agent_id END,
               last_us = max(last_us, ?4), fields = ?7
             WHERE device_id = ?1 AND first_us = ?2 AND value = ?3",
            params![dev, p.first_us, value, last, site, agent, joined(&p.fields)],
        )?;
        return Ok(());
    }
    let next = episodes.iter().find(|e| e.first_us > first);
    if let Some(n) = next.filter(|n| n.value == value) {
        exec(
            conn,
            "moving version episode back",
            // The row the update would collide with is excluded by NOT EXISTS (SQLite's
            // UPDATE OR IGNORE, which PostgreSQL lacks); writers are serialised, so nothing
            // slips in between.
            "UPDATE version_episodes SET first_us = ?4, fields = ?5
             WHERE device_id = ?1 AND first_us = ?2 AND value = ?3
               AND NOT EXISTS (SELECT 1 FROM version_episodes e
                               WHERE e.device_id = ?1 AND e.first_us = ?4 AND e.value = ?3)",
            params![dev, n.first_us, value, first, joined(&n.fields)],
        )?;
        return Ok(());
    }
    exec(
        conn,
        "storing version episode",
        "INSERT OR IGNORE INTO version_episodes (device_id, value, first_us, last_us, site, agent_id, fields)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![dev, value, first, last, site, agent, joined(&[])],
    )?;
    Ok(())
}

/// Episodes by device (of one device when `one`), each device's by first seen.
/// The episodes of the devices `filter` (a `WHERE` on `device_id`, or nothing) selects with
/// `bound` as its `?1`.
pub(super) fn read(
    conn: &Connection,
    filter: &str,
    bound: Option<super::driver::Value>,
) -> Result<BTreeMap<i64, Vec<VersionEpisode>>, StoreError> {
    let w = filter;
    let rows: Vec<(i64, VersionEpisode)> = query(
        conn,
        "reading version episodes",
        &format!(
            "SELECT device_id, value, first_us, last_us, site, agent_id, fields FROM version_episodes{w}
             ORDER BY device_id, first_us, last_us, value"
        ),
        params_from_iter(bound),
        |r| {
            let fields: String = r.get(6)?;
            Ok((
                r.get(0)?,
                VersionEpisode {
                    value: r.get(1)?,
                    first_us: r.get(2)?,
                    last_us: r.get(3)?,
                    site: r.get(4)?,
                    agent_id: r.get(5)?,
                    fields: fields
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                },
            ))
        },
    )?;
    let mut m: BTreeMap<i64, Vec<VersionEpisode>> = BTreeMap::new();
    for (id, e) in rows {
        m.entry(id).or_default().push(e);
    }
    Ok(m)
}
