//! Security advisories and the KEV catalog: each import is one transaction. An advisory is a
//! row plus its products, vulnerabilities, product status, scores and remediations, all keyed
//! by the advisory id and replaced together when a newer revision arrives. Which revision wins
//! is [`crate::import::advisories::revision`]'s decision, not this file's.

use super::driver::{params, Connection, OptionalExtension, Transaction};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use super::{db, exec, query};
use crate::import::advisories::{
    revision, Advisory, Product, ProductStatus, Remediation, Revision, Score, Vulnerability,
};
use crate::import::kev::{KevCatalog, KevEntry};
use crate::store::{AdvisoryImportStats, ImportStats, RefusedRevision, StoreError};

/// The tables holding an advisory's parts, cleared when it is replaced.
const CHILD_TABLES: &[&str] = &[
    "DELETE FROM advisory_products WHERE advisory_id = ?1",
    "DELETE FROM advisory_vulnerabilities WHERE advisory_id = ?1",
    "DELETE FROM advisory_product_status WHERE advisory_id = ?1",
    "DELETE FROM advisory_scores WHERE advisory_id = ?1",
    "DELETE FROM advisory_remediations WHERE advisory_id = ?1",
];

/// ordinal, cve, title, cwe.
type VulnRow = (i64, Option<String>, Option<String>, Option<String>);
/// category, date, details, url, product ids (JSON).
type RemediationRow = (String, Option<String>, String, Option<String>, String);

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(what: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            what: what.to_owned(),
            detail: e.to_string(),
        })
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(what: &str, s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

pub(super) fn import_advisories(
    conn: &mut Connection,
    advisories: &[Advisory],
    now_us: i64,
) -> Result<AdvisoryImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting advisory import"))?;
    let mut st = AdvisoryImportStats::default();
    for a in advisories {
        let stored: Option<(String, String)> = tx
            .query_row(
                "SELECT tracking_version, source FROM advisories WHERE id = ?1",
                [&a.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db("reading advisory"))?;
        let decision = revision(stored.as_ref().map(|s| s.0.as_str()), &a.tracking_version);
        match decision {
            Revision::Same => {
                st.unchanged += 1;
                continue;
            }
            Revision::Older | Revision::NotComparable => {
                let (stored_version, stored_source) = stored.unwrap_or_default();
                st.refused.push(RefusedRevision {
                    id: a.id.clone(),
                    file: a.source.clone(),
                    version: a.tracking_version.clone(),
                    stored_version,
                    stored_source,
                    not_comparable: decision == Revision::NotComparable,
                });
                continue;
            }
            Revision::Newer => {
                for sql in CHILD_TABLES {
                    exec(&tx, "replacing advisory", sql, [&a.id])?;
                }
                st.replaced += 1;
            }
            Revision::New => st.inserted += 1,
        }
        store_one(&tx, a, now_us)?;
    }
    if st.refused.is_empty() {
        tx.commit().map_err(db("committing advisory import"))?;
    }
    // Otherwise the transaction rolls back on drop: all or nothing.
    Ok(st)
}

fn store_one(tx: &Transaction<'_>, a: &Advisory, now_us: i64) -> Result<(), StoreError> {
    exec(
        tx,
        "storing advisory",
        "INSERT INTO advisories (id, title, category, csaf_version, publisher, tracking_version,
           status, initial_release, current_release, source, imported_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, category = excluded.category,
           csaf_version = excluded.csaf_version, publisher = excluded.publisher,
           tracking_version = excluded.tracking_version, status = excluded.status,
           initial_release = excluded.initial_release, current_release = excluded.current_release,
           source = excluded.source, imported_us = excluded.imported_us",
        params![
            a.id,
            a.title,
            a.category,
            a.csaf_version,
            a.publisher,
            a.tracking_version,
            a.status,
            time(&a.initial_release),
            time(&a.current_release),
            a.source,
            now_us
        ],
    )?;
    for (i, p) in a.products.iter().enumerate() {
        exec(
            tx,
            "storing advisory product",
            "INSERT INTO advisory_products (advisory_id, product_id, ordinal, name, vendor,
               product, version, version_range, legacy, cpe, purl, model_numbers, skus)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                a.id,
                p.product_id,
                i as i64,
                p.name,
                p.vendor,
                p.product,
                p.version,
                p.version_range,
                p.legacy,
                p.cpe,
                p.purl,
                json_list(&p.model_numbers),
                json_list(&p.skus)
            ],
        )?;
    }
    for (v_i, v) in a.vulnerabilities.iter().enumerate() {
        let v_i = v_i as i64;
        exec(
            tx,
            "storing advisory vulnerability",
            "INSERT INTO advisory_vulnerabilities (advisory_id, ordinal, cve, title, cwe)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, v_i, v.cve, v.title, v.cwe],
        )?;
        for (status, ids) in &v.product_status {
            for (i, pid) in ids.iter().enumerate() {
                exec(
                    tx,
                    "storing product status",
                    "INSERT INTO advisory_product_status (advisory_id, vulnerability, status,
                       product_id, ordinal) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![a.id, v_i, status.as_str(), pid, i as i64],
                )?;
            }
        }
        for (i, s) in v.scores.iter().enumerate() {
            exec(
                tx,
                "storing score",
                "INSERT INTO advisory_scores (advisory_id, vulnerability, ordinal, cvss_version,
                   base_score, severity, vector, products)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.id,
                    v_i,
                    i as i64,
                    s.cvss_version,
                    s.base_score,
                    s.severity,
                    s.vector,
                    json_list(&s.products)
                ],
            )?;
        }
        for (i, r) in v.remediations.iter().enumerate() {
            exec(
                tx,
                "storing remediation",
                "INSERT INTO advisory_remediations (advisory_id, vulnerability, ordinal, category,
                   date, details, url, product_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.id,
                    v_i,
                    i as i64,
                    r.category,
                    r.date.as_ref().map(time),
                    r.details,
                    r.url,
                    json_list(&r.product_ids)
                ],
            )?;
        }
    }
    Ok(())
}

/// Every stored advisory, whole, ordered by id.
pub(super) fn advisories(conn: &Connection) -> Result<Vec<Advisory>, StoreError> {
    type Head = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let heads: Vec<Head> = query(
        conn,
        "reading advisories",
        "SELECT id, title, category, csaf_version, publisher, tracking_version, status,
           initial_release, current_release, source FROM advisories ORDER BY id",
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
    let mut out = Vec::with_capacity(heads.len());
    for (
        id,
        title,
        category,
        csaf_version,
        publisher,
        tracking_version,
        status,
        ini,
        cur,
        source,
    ) in heads
    {
        let what = format!("advisory {id}");
        type ProductRow = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            Option<String>,
            Option<String>,
            String,
            String,
        );
        let rows: Vec<ProductRow> = query(
            conn,
            "reading advisory products",
            "SELECT product_id, name, vendor, product, version, version_range, legacy, cpe, purl,
               model_numbers, skus FROM advisory_products WHERE advisory_id = ?1 ORDER BY ordinal",
            [&id],
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
                    r.get(10)?,
                ))
            },
        )?;
        let mut products = Vec::with_capacity(rows.len());
        for (product_id, name, vendor, product, version, version_range, legacy, cpe, purl, m, s) in
            rows
        {
            products.push(Product {
                product_id,
                name,
                vendor,
                product,
                version,
                version_range,
                legacy,
                cpe,
                purl,
                model_numbers: parse_list(&what, &m)?,
                skus: parse_list(&what, &s)?,
            });
        }
        let vulns: Vec<VulnRow> = query(
            conn,
            "reading advisory vulnerabilities",
            "SELECT ordinal, cve, title, cwe FROM advisory_vulnerabilities WHERE advisory_id = ?1
             ORDER BY ordinal",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let mut vulnerabilities = Vec::with_capacity(vulns.len());
        for (v_i, cve, vtitle, cwe) in vulns {
            let mut v = Vulnerability {
                cve,
                title: vtitle,
                cwe,
                product_status: Default::default(),
                scores: Vec::new(),
                remediations: Vec::new(),
            };
            let status: Vec<(String, String)> = query(
                conn,
                "reading product status",
                "SELECT status, product_id FROM advisory_product_status
                 WHERE advisory_id = ?1 AND vulnerability = ?2 ORDER BY status, ordinal",
                params![id, v_i],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (s, pid) in status {
                let s = ProductStatus::from_key(&s).ok_or_else(|| StoreError::Corrupt {
                    what: what.clone(),
                    detail: format!("product status {s:?}"),
                })?;
                v.product_status.entry(s).or_default().push(pid);
            }
            let scores: Vec<(String, f64, String, String, String)> = query(
                conn,
                "reading scores",
                "SELECT cvss_version, base_score, severity, vector, products FROM advisory_scores
                 WHERE advisory_id = ?1 AND vulnerability = ?2 ORDER BY ordinal",
                params![id, v_i],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            for (cvss_version, base_score, severity, vector, p) in scores {
                v.scores.push(Score {
                    cvss_version,
                    base_score,
                    severity,
                    vector,
                    products: parse_list(&what, &p)?,
                });
            }
            let rems: Vec<RemediationRow> = query(
                conn,
                "reading remediations",
                "SELECT category, date, details, url, product_ids FROM advisory_remediations
                 WHERE advisory_id = ?1 AND vulnerability = ?2 ORDER BY ordinal",
                params![id, v_i],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            for (category, date, details, url, p) in rems {
                v.remediations.push(Remediation {
                    category,
                    date: date.map(|d| parse_time(&what, &d)).transpose()?,
                    details,
                    product_ids: parse_list(&what, &p)?,
                    url,
                });
            }
            vulnerabilities.push(v);
        }
        out.push(Advisory {
            initial_release: parse_time(&what, &ini)?,
            current_release: parse_time(&what, &cur)?,
            id,
            title,
            category,
            csaf_version,
            publisher,
            tracking_version,
            status,
            products,
            vulnerabilities,
            source,
        });
    }
    Ok(out)
}

pub(super) fn import_kev(
    conn: &mut Connection,
    catalog: &KevCatalog,
    source: &str,
    now_us: i64,
) -> Result<ImportStats, StoreError> {
    let tx = conn
        .transaction_with_behavior(super::driver::TransactionBehavior::Immediate)
        .map_err(db("starting KEV import"))?;
    let before: i64 = tx
        .query_row("SELECT count(*) FROM kev", [], |r| r.get(0))
        .map_err(db("reading KEV"))?;
    let mut st = ImportStats::default();
    let mut kept = 0u64;
    for (i, e) in catalog.entries.iter().enumerate() {
        let existed: i64 = tx
            .query_row("SELECT count(*) FROM kev WHERE cve = ?1", [&e.cve], |r| {
                r.get(0)
            })
            .map_err(db("reading KEV"))?;
        if existed > 0 {
            st.replaced += 1;
            kept += 1;
        } else {
            st.inserted += 1;
        }
        exec(
            &tx,
            "storing KEV entry",
            "INSERT INTO kev (cve, ordinal, vendor_project, product, name, date_added,
               short_description, required_action, due_date, known_ransomware_campaign_use,
               notes, cwes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (cve) DO UPDATE SET ordinal = excluded.ordinal,
               vendor_project = excluded.vendor_project, product = excluded.product,
               name = excluded.name, date_added = excluded.date_added,
               short_description = excluded.short_description,
               required_action = excluded.required_action, due_date = excluded.due_date,
               known_ransomware_campaign_use = excluded.known_ransomware_campaign_use,
               notes = excluded.notes, cwes = excluded.cwes",
            params![
                e.cve,
                i as i64,
                e.vendor_project,
                e.product,
                e.name,
                e.date_added.to_string(),
                e.short_description,
                e.required_action,
                e.due_date.to_string(),
                e.known_ransomware_campaign_use,
                e.notes,
                json_list(&e.cwes)
            ],
        )?;
    }
    // The catalog is the whole list: entries CISA removed go (it has removed a few).
    let cves: Vec<&str> = catalog.entries.iter().map(|e| e.cve.as_str()).collect();
    let list = serde_json::to_string(&cves).unwrap_or_else(|_| "[]".into());
    exec(
        &tx,
        "removing KEV entries",
        "DELETE FROM kev WHERE cve NOT IN (SELECT value FROM json_each(?1))",
        [&list],
    )?;
    st.removed = (before as u64).saturating_sub(kept);
    exec(
        &tx,
        "storing KEV catalog",
        "INSERT INTO kev_catalog (one, title, catalog_version, date_released, source, imported_us)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (one) DO UPDATE SET title = excluded.title,
           catalog_version = excluded.catalog_version, date_released = excluded.date_released,
           source = excluded.source, imported_us = excluded.imported_us",
        params![
            catalog.title,
            catalog.catalog_version,
            time(&catalog.date_released),
            source,
            now_us
        ],
    )?;
    tx.commit().map_err(db("committing KEV import"))?;
    Ok(st)
}

/// The stored catalog, if one was imported.
pub(super) fn kev(conn: &Connection) -> Result<Option<KevCatalog>, StoreError> {
    let head: Option<(Option<String>, String, String)> = conn
        .query_row(
            "SELECT title, catalog_version, date_released FROM kev_catalog WHERE one = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db("reading KEV catalog"))?;
    let Some((title, catalog_version, released)) = head else {
        return Ok(None);
    };
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = query(
        conn,
        "reading KEV",
        "SELECT cve, vendor_project, product, name, date_added, short_description,
           required_action, due_date, known_ransomware_campaign_use, notes, cwes
         FROM kev ORDER BY ordinal",
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
                r.get(10)?,
            ))
        },
    )?;
    let date = |what: &str, s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| StoreError::Corrupt {
            what: what.to_owned(),
            detail: e.to_string(),
        })
    };
    let mut entries = Vec::with_capacity(rows.len());
    for (cve, vp, product, name, added, sd, ra, due, krcu, notes, cwes) in rows {
        let what = format!("KEV entry {cve}");
        entries.push(KevEntry {
            date_added: date(&what, &added)?,
            due_date: date(&what, &due)?,
            cwes: parse_list(&what, &cwes)?,
            cve,
            vendor_project: vp,
            product,
            name,
            short_description: sd,
            required_action: ra,
            known_ransomware_campaign_use: krcu,
            notes,
        });
    }
    Ok(Some(KevCatalog {
        title,
        catalog_version,
        date_released: parse_time("KEV catalog", &released)?,
        entries,
    }))
}
