//! API bearer tokens: stored by id with the SHA-256 of their secret, never the secret.

use super::driver::{params, Connection, OptionalExtension};

use super::{db, decode, encode, query};
use crate::store::{StoreError, TokenRecord};

const COLUMNS: &str =
    "SELECT id, name, role, vendors, secret_sha256, created_us, expires_us, revoked_us FROM tokens";

pub(super) fn insert(conn: &Connection, t: &TokenRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tokens (id, name, role, vendors, secret_sha256, created_us, expires_us, revoked_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            t.id,
            t.name,
            t.role,
            encode(&t.vendors),
            t.secret_sha256,
            t.created_us,
            t.expires_us,
            t.revoked_us
        ],
    )
    .map_err(db("storing token"))?;
    Ok(())
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<TokenRecord>, StoreError> {
    let row = conn
        .prepare_cached(&format!("{COLUMNS} WHERE id = ?1"))
        .and_then(|mut s| s.query_row(params![id], token_row).optional())
        .map_err(db("reading token"))?;
    row.map(|(t, v)| finish_token(t, &v)).transpose()
}

pub(super) fn list(conn: &Connection) -> Result<Vec<TokenRecord>, StoreError> {
    query(
        conn,
        "reading tokens",
        &format!("{COLUMNS} ORDER BY created_us"),
        [],
        token_row,
    )?
    .into_iter()
    .map(|(t, v)| finish_token(t, &v))
    .collect()
}

pub(super) fn revoke(conn: &Connection, id: &str, now_us: i64) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "UPDATE tokens SET revoked_us = coalesce(revoked_us, ?2) WHERE id = ?1",
            params![id, now_us],
        )
        .map_err(db("revoking token"))?;
    Ok(n > 0)
}

fn token_row(r: &super::driver::Row<'_>) -> super::driver::Result<(TokenRecord, String)> {
    Ok((
        TokenRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: r.get(2)?,
            vendors: Vec::new(),
            secret_sha256: r.get(4)?,
            created_us: r.get(5)?,
            expires_us: r.get(6)?,
            revoked_us: r.get(7)?,
        },
        r.get::<_, String>(3)?,
    ))
}

fn finish_token(mut t: TokenRecord, vendors: &str) -> Result<TokenRecord, StoreError> {
    t.vendors = decode("token vendors", vendors)?;
    Ok(t)
}
