//! Contract and asset imports: each import is one transaction, a row per contract or asset
//! keyed by its id or tag, the validated record stored whole as JSON.

use std::collections::HashSet;

use super::driver::{params, Connection, Transaction};

use super::{db, encode, query};
use crate::import::model::{Asset, Contract};
use crate::store::{ImportStats, StoreError};

pub(super) fn contracts(
    conn: &mut Connection,
    contracts: &[Contract],
    source: &str,
    now_us: i64,
) -> Result<ImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting import"))?;
    let mut st = ImportStats::default();
    for c in contracts {
        upsert(
            &tx,
            &mut st,
            ("contract", &c.id),
            "SELECT count(*) FROM contracts WHERE id = ?1",
            "INSERT INTO contracts (id, supplier, body, source, imported_us) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET supplier = excluded.supplier, body = excluded.body,
               source = excluded.source, imported_us = excluded.imported_us",
            params![c.id, c.supplier, encode(c), source, now_us],
        )?;
    }
    tx.commit().map_err(db("committing import"))?;
    Ok(st)
}

pub(super) fn assets(
    conn: &mut Connection,
    assets: &[Asset],
    replace: bool,
    source: &str,
    now_us: i64,
) -> Result<ImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting import"))?;
    let mut st = ImportStats::default();
    if replace {
        let tags: HashSet<&str> = assets.iter().map(|a| a.tag.as_str()).collect();
        let existing: Vec<String> =
            query(&tx, "reading assets", "SELECT tag FROM assets", [], |r| {
                r.get(0)
            })?;
        for t in existing {
            if !tags.contains(t.as_str()) {
                tx.execute("DELETE FROM assets WHERE tag = ?1", params![t])
                    .map_err(db("removing asset"))?;
                st.removed += 1;
            }
        }
    }
    for a in assets {
        upsert(
            &tx,
            &mut st,
            ("asset", &a.tag),
            "SELECT count(*) FROM assets WHERE tag = ?1",
            "INSERT INTO assets (tag, body, mac, serial, ip, contract_id, source, imported_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tag) DO UPDATE SET body = excluded.body, mac = excluded.mac,
               serial = excluded.serial, ip = excluded.ip, contract_id = excluded.contract_id,
               source = excluded.source, imported_us = excluded.imported_us",
            params![
                a.tag,
                encode(a),
                a.mac.map(|m| m.to_string()),
                a.serial,
                a.ip.map(|i| i.to_string()),
                a.contract_id,
                source,
                now_us
            ],
        )?;
    }
    tx.commit().map_err(db("committing import"))?;
    Ok(st)
}

/// Inserts or replaces one imported row (`what` named by `key`), counting which it was.
fn upsert(
    tx: &Transaction<'_>,
    st: &mut ImportStats,
    (what, key): (&str, &str),
    exists_sql: &str,
    upsert_sql: &str,
    params: impl super::driver::Params,
) -> Result<(), StoreError> {
    let existed = tx
        .query_row(exists_sql, [key], |r| r.get::<_, i64>(0))
        .map_err(db(format!("reading {what}")))?
        > 0;
    tx.execute(upsert_sql, params)
        .map_err(db(format!("storing {what} {key}")))?;
    if existed {
        st.replaced += 1
    } else {
        st.inserted += 1
    }
    Ok(())
}
