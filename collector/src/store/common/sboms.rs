//! SBOMs: an import is one transaction that checks the contract exists and the BOM version
//! does not go backwards, then replaces the SBOM of the same key and its components whole.

use super::driver::{params, Connection, OptionalExtension};

use super::{db, exec, query};
use crate::import::sbom::{Component, Sbom};
use crate::store::{SbomImportStats, StoreError};

pub(super) fn import_sbom(
    conn: &mut Connection,
    sbom: &Sbom,
    now_us: i64,
) -> Result<SbomImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting SBOM import"))?;
    let mut st = SbomImportStats::default();
    let contract: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM contracts WHERE id = ?1",
            [&sbom.contract_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db("reading contract"))?;
    if contract.is_none() {
        st.refused = Some(format!(
            "{}: contract {:?} is not imported (import it first with `contracts import`): the \
             SBOM describes that contract's product",
            sbom.source, sbom.contract_id
        ));
        return Ok(st);
    }
    let key = sbom.key();
    let stored: Option<(u32, String)> = tx
        .query_row(
            "SELECT bom_version, source FROM sboms WHERE key = ?1",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db("reading SBOM"))?;
    match stored {
        Some((v, from)) if v > sbom.bom_version => {
            st.refused = Some(format!(
                "{}: SBOM {key} version {} is older than the stored version {v} (from {from}); \
                 an older BOM never replaces a newer one",
                sbom.source, sbom.bom_version
            ));
            return Ok(st);
        }
        Some(_) => {
            exec(
                &tx,
                "replacing SBOM",
                "DELETE FROM sbom_components WHERE sbom_key = ?1",
                [&key],
            )?;
            st.replaced = 1;
        }
        None => st.inserted = 1,
    }
    exec(
        &tx,
        "storing SBOM",
        "INSERT INTO sboms (key, serial_number, bom_version, spec_version, contract_id,
           product_model, product_version, manufacturer, source, imported_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (key) DO UPDATE SET serial_number = excluded.serial_number,
           bom_version = excluded.bom_version, spec_version = excluded.spec_version,
           contract_id = excluded.contract_id, product_model = excluded.product_model,
           product_version = excluded.product_version, manufacturer = excluded.manufacturer,
           source = excluded.source, imported_us = excluded.imported_us",
        params![
            key,
            sbom.serial_number,
            sbom.bom_version,
            sbom.spec_version,
            sbom.contract_id,
            sbom.product_model,
            sbom.product_version,
            sbom.manufacturer,
            sbom.source,
            now_us
        ],
    )?;
    for (i, c) in sbom.components.iter().enumerate() {
        exec(
            &tx,
            "storing SBOM component",
            "INSERT INTO sbom_components (sbom_key, ordinal, name, grp, version, purl, cpe,
               supplier) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![key, i as i64, c.name, c.group, c.version, c.purl, c.cpe, c.supplier],
        )?;
    }
    st.components = sbom.components.len() as u64;
    tx.commit().map_err(db("committing SBOM import"))?;
    Ok(st)
}

/// Every stored SBOM, whole, ordered by key.
pub(super) fn sboms(conn: &Connection) -> Result<Vec<Sbom>, StoreError> {
    type Head = (
        String,
        Option<String>,
        u32,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let heads: Vec<Head> = query(
        conn,
        "reading SBOMs",
        "SELECT key, serial_number, bom_version, spec_version, contract_id, product_model,
           product_version, manufacturer, source FROM sboms ORDER BY key",
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
            ))
        },
    )?;
    let mut out = Vec::with_capacity(heads.len());
    for (key, serial_number, bom_version, spec_version, contract_id, model, version, man, source) in
        heads
    {
        let components: Vec<Component> = query(
            conn,
            "reading SBOM components",
            "SELECT name, grp, version, purl, cpe, supplier FROM sbom_components
             WHERE sbom_key = ?1 ORDER BY ordinal",
            [&key],
            |r| {
                Ok(Component {
                    name: r.get(0)?,
                    group: r.get(1)?,
                    version: r.get(2)?,
                    purl: r.get(3)?,
                    cpe: r.get(4)?,
                    supplier: r.get(5)?,
                })
            },
        )?;
        out.push(Sbom {
            serial_number,
            bom_version,
            spec_version,
            contract_id,
            product_model: model,
            product_version: version,
            manufacturer: man,
            components,
            source,
        });
    }
    Ok(out)
}
