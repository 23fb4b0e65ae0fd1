//! OpenEoX statements (issue 20): stored by key, revisions ordered by `last_updated`.

use super::driver::{params, Connection, OptionalExtension};
use chrono::{DateTime, Utc};

use super::{db, exec, query};
use crate::import::eox::{EoxDate, EoxStatement};
use crate::store::{EoxImportStats, StoreError};

pub(super) fn import_eox(
    conn: &mut Connection,
    statements: &[EoxStatement],
    now_us: i64,
) -> Result<EoxImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting OpenEoX import"))?;
    let mut st = EoxImportStats::default();
    let mut write = Vec::new();
    for s in statements {
        let key = s.key();
        let stored: Option<(String, String)> = tx
            .query_row(
                "SELECT last_updated, source FROM eox_statements WHERE key = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db("reading OpenEoX statement"))?;
        match stored {
            None => {
                st.inserted += 1;
                write.push(s);
            }
            Some((at, source)) => {
                let at = DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| StoreError::Corrupt {
                        what: format!("OpenEoX statement {key}"),
                        detail: e.to_string(),
                    })?;
                match s.last_updated.cmp(&at) {
                    std::cmp::Ordering::Greater => {
                        st.replaced += 1;
                        write.push(s);
                    }
                    std::cmp::Ordering::Equal => st.unchanged += 1,
                    std::cmp::Ordering::Less => st.refused.push(format!(
                        "{}: the statement about {key} was last updated {} but the stored one (from \
                         {source}) on {}: an older statement never replaces a newer one",
                        s.source,
                        s.last_updated.to_rfc3339(),
                        at.to_rfc3339()
                    )),
                }
            }
        }
    }
    if !st.refused.is_empty() {
        // All or nothing: the transaction is dropped unwritten.
        return Ok(EoxImportStats {
            inserted: 0,
            replaced: 0,
            unchanged: 0,
            refused: st.refused,
        });
    }
    for s in write {
        exec(
            &tx,
            "storing OpenEoX statement",
            "INSERT INTO eox_statements (key, vendor, product, version, end_of_life,
               end_of_security_support, end_of_sales, general_availability, last_updated, source,
               imported_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (key) DO UPDATE SET vendor = excluded.vendor, product = excluded.product,
               version = excluded.version, end_of_life = excluded.end_of_life,
               end_of_security_support = excluded.end_of_security_support,
               end_of_sales = excluded.end_of_sales,
               general_availability = excluded.general_availability,
               last_updated = excluded.last_updated, source = excluded.source,
               imported_us = excluded.imported_us",
            params![
                s.key(),
                s.vendor,
                s.product,
                s.version,
                s.end_of_life.to_text(),
                s.end_of_security_support.to_text(),
                s.end_of_sales.map(EoxDate::to_text),
                s.general_availability.map(EoxDate::to_text),
                s.last_updated.to_rfc3339(),
                s.source,
                now_us
            ],
        )?;
    }
    tx.commit().map_err(db("committing OpenEoX import"))?;
    Ok(st)
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

pub(super) fn statements(conn: &Connection) -> Result<Vec<EoxStatement>, StoreError> {
    let rows: Vec<Row> = query(
        conn,
        "reading OpenEoX statements",
        "SELECT key, vendor, product, version, end_of_life, end_of_security_support, end_of_sales,
           general_availability, last_updated, source FROM eox_statements ORDER BY key",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(
            |(key, vendor, product, version, eol, eoss, eos, ga, updated, source)| {
                let corrupt = |what: &str| StoreError::Corrupt {
                    what: format!("OpenEoX statement {key}"),
                    detail: format!("{what} is not a date-time or tba"),
                };
                let date = |s: &str, what: &str| EoxDate::from_text(s).ok_or_else(|| corrupt(what));
                let opt = |s: Option<String>, what: &str| s.map(|s| date(&s, what)).transpose();
                Ok(EoxStatement {
                    vendor,
                    product,
                    version,
                    end_of_life: date(&eol, "end_of_life")?,
                    end_of_security_support: date(&eoss, "end_of_security_support")?,
                    end_of_sales: opt(eos, "end_of_sales")?,
                    general_availability: opt(ga, "general_availability")?,
                    last_updated: date(&updated, "last_updated")?
                        .at()
                        .ok_or_else(|| corrupt("last_updated"))?,
                    source,
                })
            },
        )
        .collect()
}
