//! Web console sessions: the SHA-256 of each session's secret, the token it was opened with,
//! its CSRF token and its times. Expired sessions are deleted when any session is used.

use super::driver::{params, Connection, OptionalExtension};

use super::db;
use crate::store::{ConsoleSession, SessionLimits, StoreError};

pub(super) fn insert(conn: &Connection, s: &ConsoleSession) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO console_sessions (id_sha256, token_id, csrf, created_us, last_used_us)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            s.id_sha256,
            s.token_id,
            s.csrf,
            s.created_us,
            s.last_used_us
        ],
    )
    .map_err(db("storing console session"))?;
    Ok(())
}

/// Most page views only read: a session's last use is written when it is older than this (or
/// than a quarter of the idle limit, if shorter), so the idle limit holds to within that and a
/// page does not wait for the ingest's write transaction. Expired sessions are deleted then too.
const TOUCH_US: i64 = 60_000_000;

/// The session whose secret hashes to `id_sha256`, if it is within its idle and absolute limits
/// at `now_us`; its last use is recorded (to within [`TOUCH_US`]). An expired one is deleted.
pub(super) fn use_session(
    conn: &mut Connection,
    id_sha256: &str,
    now_us: i64,
    limits: SessionLimits,
) -> Result<Option<ConsoleSession>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id_sha256, token_id, csrf, created_us, last_used_us FROM console_sessions
             WHERE id_sha256 = ?1",
        )
        .and_then(|mut st| {
            st.query_row(params![id_sha256], |r| {
                Ok(ConsoleSession {
                    id_sha256: r.get(0)?,
                    token_id: r.get(1)?,
                    csrf: r.get(2)?,
                    created_us: r.get(3)?,
                    last_used_us: r.get(4)?,
                })
            })
            .optional()
        })
        .map_err(db("reading console session"))?;
    let Some(mut s) = row else {
        return Ok(None);
    };
    let expired = now_us.saturating_sub(s.last_used_us) >= limits.idle_us
        || now_us.saturating_sub(s.created_us) >= limits.absolute_us;
    let touch = TOUCH_US.min(limits.idle_us / 4).max(0);
    if expired || now_us.saturating_sub(s.last_used_us) >= touch {
        let tx = conn
            .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
            .map_err(db("starting console session update"))?;
        tx.execute(
            "DELETE FROM console_sessions WHERE last_used_us <= ?1 OR created_us <= ?2",
            params![
                now_us.saturating_sub(limits.idle_us),
                now_us.saturating_sub(limits.absolute_us)
            ],
        )
        .map_err(db("expiring console sessions"))?;
        let n = tx
            .execute(
                "UPDATE console_sessions SET last_used_us = max(last_used_us, ?2)
                 WHERE id_sha256 = ?1",
                params![id_sha256, now_us],
            )
            .map_err(db("using console session"))?;
        tx.commit()
            .map_err(db("committing console session update"))?;
        if expired || n == 0 {
            return Ok(None);
        }
        s.last_used_us = s.last_used_us.max(now_us);
    }
    Ok(Some(s))
}

pub(super) fn end(conn: &Connection, id_sha256: &str) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "DELETE FROM console_sessions WHERE id_sha256 = ?1",
            params![id_sha256],
        )
        .map_err(db("ending console session"))?;
    Ok(n > 0)
}
