//! Web console sessions: the SHA-256 of each session's secret, the token it was opened with,
//! its CSRF token and its times. Expired sessions are deleted when any session is used.

use rusqlite::{params, Connection, OptionalExtension};

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
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
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

#[cfg(test)]
mod tests {
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ConsoleSession, SessionLimits, Store};

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_sign_out() {
        let mut s = SqliteStore::in_memory().unwrap();
        let limits = SessionLimits {
            idle_us: 100,
            absolute_us: 1000,
        };
        let mk = |id: &str, at: i64| ConsoleSession {
            id_sha256: id.into(),
            token_id: "t".into(),
            csrf: "c".into(),
            created_us: at,
            last_used_us: at,
        };
        s.session_insert(&mk("a", 0)).unwrap();
        s.session_insert(&mk("b", 0)).unwrap();
        // Used within the idle limit, again and again: alive until the absolute limit.
        for t in (50..1000).step_by(50) {
            assert!(s.session_use("a", t, limits).unwrap().is_some(), "{t}");
        }
        assert!(s.session_use("a", 1000, limits).unwrap().is_none());
        // "b" was idle for more than 100 µs: gone (deleted by the check of "a").
        assert!(s.session_use("b", 60, limits).unwrap().is_none());
        s.session_insert(&mk("c", 2000)).unwrap();
        assert!(s.session_end("c").unwrap());
        assert!(s.session_use("c", 2001, limits).unwrap().is_none());
        assert!(!s.session_end("c").unwrap());
    }
}
