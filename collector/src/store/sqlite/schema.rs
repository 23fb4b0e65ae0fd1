//! The schema: versioned migrations recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use super::db;
use crate::store::StoreError;

/// Migrations, in order; `user_version` = how many have run. Never edit one that shipped:
/// append.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    site TEXT NOT NULL, agent_id TEXT NOT NULL,
    instance TEXT, state TEXT, version TEXT, started_at TEXT, status_time TEXT, reason TEXT,
    stats TEXT, last_message_us INTEGER,
    PRIMARY KEY (site, agent_id)
);
CREATE TABLE messages (
    site TEXT NOT NULL, agent_id TEXT NOT NULL, instance TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, time_us INTEGER NOT NULL, devices INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    PRIMARY KEY (site, agent_id, instance, seq)
);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    merged_into INTEGER REFERENCES devices(id)
);
CREATE TABLE sightings (
    site TEXT NOT NULL, agent_id TEXT NOT NULL, key TEXT NOT NULL,
    device_id INTEGER NOT NULL REFERENCES devices(id), vlan INTEGER,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    PRIMARY KEY (site, agent_id, key)
);
CREATE INDEX sightings_device ON sightings(device_id);
CREATE TABLE identities (
    kind TEXT NOT NULL, value TEXT NOT NULL, device_id INTEGER NOT NULL REFERENCES devices(id),
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, agent_id TEXT NOT NULL,
    PRIMARY KEY (kind, value, device_id)
);
CREATE INDEX identities_device ON identities(device_id);
CREATE TABLE attributes (
    device_id INTEGER NOT NULL REFERENCES devices(id), name TEXT NOT NULL, value TEXT NOT NULL,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, count INTEGER NOT NULL,
    site TEXT NOT NULL, agent_id TEXT NOT NULL,
    PRIMARY KEY (device_id, name, value)
);
CREATE TABLE services (
    device_id INTEGER NOT NULL REFERENCES devices(id), direction TEXT NOT NULL,
    transport TEXT NOT NULL, port INTEGER NOT NULL, app TEXT, peers INTEGER NOT NULL,
    first_us INTEGER NOT NULL, last_us INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (device_id, direction, transport, port)
);
CREATE TABLE service_peers (
    device_id INTEGER NOT NULL, direction TEXT NOT NULL, transport TEXT NOT NULL,
    port INTEGER NOT NULL, peer TEXT NOT NULL,
    PRIMARY KEY (device_id, direction, transport, port, peer)
);
CREATE TABLE merges (
    id INTEGER PRIMARY KEY, kept INTEGER NOT NULL, absorbed INTEGER NOT NULL,
    identity_kind TEXT NOT NULL, identity_value TEXT NOT NULL, explanation TEXT NOT NULL,
    at_us INTEGER NOT NULL
);
CREATE TABLE contracts (
    id TEXT PRIMARY KEY, supplier TEXT NOT NULL, body TEXT NOT NULL, source TEXT NOT NULL,
    imported_us INTEGER NOT NULL
);
CREATE TABLE assets (
    tag TEXT PRIMARY KEY, body TEXT NOT NULL, mac TEXT, serial TEXT, ip TEXT, contract_id TEXT,
    source TEXT NOT NULL, imported_us INTEGER NOT NULL
);
CREATE TABLE links (
    device_id INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, method TEXT NOT NULL,
    confidence REAL NOT NULL, since_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind)
);
CREATE TABLE flags (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,
    severity TEXT NOT NULL, status TEXT NOT NULL, summary TEXT NOT NULL, evidence TEXT NOT NULL,
    opened_us INTEGER NOT NULL, last_true_us INTEGER NOT NULL, resolved_us INTEGER
);
CREATE UNIQUE INDEX flags_open ON flags(kind, subject, detail) WHERE status = 'open';
CREATE INDEX flags_subject ON flags(subject);
"#,
    r#"
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, vendors TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL, created_us INTEGER NOT NULL, expires_us INTEGER,
    revoked_us INTEGER, last_used_us INTEGER
);
CREATE TABLE device_summary (
    device_id INTEGER PRIMARY KEY, body TEXT NOT NULL,
    manufacturer TEXT, model TEXT, device_type TEXT, software_version TEXT,
    sites TEXT NOT NULL, first_us INTEGER NOT NULL, last_us INTEGER NOT NULL,
    asset_tag TEXT, contract_id TEXT, open_flags INTEGER NOT NULL, flag_kinds TEXT NOT NULL,
    medical INTEGER NOT NULL
);
CREATE INDEX device_summary_type ON device_summary(device_type);
-- Alerting state per flag: bit 1 = its opening was alerted, bit 2 = its resolution. Flags that
-- predate alerts count as alerted, so an upgrade does not replay history.
ALTER TABLE flags ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
UPDATE flags SET alerted = 3;
CREATE INDEX flags_unalerted ON flags(alerted) WHERE alerted != 3;
"#,
    // Security advisories (CSAF) and the CISA KEV catalog (issue 20). Child rows are keyed by
    // the advisory id and replaced with it when a newer revision is imported.
    r#"
CREATE TABLE advisories (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, category TEXT NOT NULL,
    csaf_version TEXT NOT NULL, publisher TEXT NOT NULL, tracking_version TEXT NOT NULL,
    status TEXT NOT NULL, initial_release TEXT NOT NULL, current_release TEXT NOT NULL,
    source TEXT NOT NULL, imported_us INTEGER NOT NULL
);
CREATE TABLE advisory_products (
    advisory_id TEXT NOT NULL, product_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    name TEXT NOT NULL, vendor TEXT, product TEXT, version TEXT, version_range TEXT,
    legacy INTEGER NOT NULL, cpe TEXT, purl TEXT, model_numbers TEXT NOT NULL,
    skus TEXT NOT NULL,
    PRIMARY KEY (advisory_id, product_id)
);
CREATE TABLE advisory_vulnerabilities (
    advisory_id TEXT NOT NULL, ordinal INTEGER NOT NULL, cve TEXT, title TEXT, cwe TEXT,
    PRIMARY KEY (advisory_id, ordinal)
);
CREATE INDEX advisory_vulnerabilities_cve ON advisory_vulnerabilities(cve);
CREATE TABLE advisory_product_status (
    advisory_id TEXT NOT NULL, vulnerability INTEGER NOT NULL, status TEXT NOT NULL,
    product_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    PRIMARY KEY (advisory_id, vulnerability, status, ordinal)
);
CREATE TABLE advisory_scores (
    advisory_id TEXT NOT NULL, vulnerability INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    cvss_version TEXT NOT NULL, base_score REAL NOT NULL, severity TEXT NOT NULL,
    vector TEXT NOT NULL, products TEXT NOT NULL,
    PRIMARY KEY (advisory_id, vulnerability, ordinal)
);
CREATE TABLE advisory_remediations (
    advisory_id TEXT NOT NULL, vulnerability INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    category TEXT NOT NULL, date TEXT, details TEXT NOT NULL, url TEXT,
    product_ids TEXT NOT NULL,
    PRIMARY KEY (advisory_id, vulnerability, ordinal)
);
CREATE TABLE kev_catalog (
    one INTEGER PRIMARY KEY CHECK (one = 1), title TEXT, catalog_version TEXT NOT NULL,
    date_released TEXT NOT NULL, source TEXT NOT NULL, imported_us INTEGER NOT NULL
);
CREATE TABLE kev (
    cve TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, vendor_project TEXT NOT NULL,
    product TEXT NOT NULL, name TEXT NOT NULL, date_added TEXT NOT NULL,
    short_description TEXT NOT NULL, required_action TEXT NOT NULL, due_date TEXT NOT NULL,
    known_ransomware_campaign_use TEXT, notes TEXT, cwes TEXT NOT NULL
);
"#,
    // SBOMs (CycloneDX) bound to a contract and a product release (issue 20). Components are
    // keyed by the SBOM's key and replaced with it.
    r#"
CREATE TABLE sboms (
    key TEXT PRIMARY KEY, serial_number TEXT, bom_version INTEGER NOT NULL,
    spec_version TEXT NOT NULL, contract_id TEXT NOT NULL, product_model TEXT NOT NULL,
    product_version TEXT, manufacturer TEXT, source TEXT NOT NULL, imported_us INTEGER NOT NULL
);
CREATE TABLE sbom_components (
    sbom_key TEXT NOT NULL, ordinal INTEGER NOT NULL, name TEXT NOT NULL, grp TEXT,
    version TEXT, purl TEXT, cpe TEXT, supplier TEXT,
    PRIMARY KEY (sbom_key, ordinal)
);
"#,
    // OpenEoX end-of-life statements, keyed by vendor/product/version (folded), and the
    // software-version timeline: one row per episode (a version seen without another version
    // seen in between), so a rollback to a version seen before is a row of its own, which the
    // per-value `attributes` row cannot show (issue 20). Existing histories start with one
    // episode per value.
    r#"
CREATE TABLE eox_statements (
    key TEXT PRIMARY KEY, vendor TEXT NOT NULL, product TEXT NOT NULL, version TEXT,
    end_of_life TEXT NOT NULL, end_of_security_support TEXT NOT NULL, end_of_sales TEXT,
    general_availability TEXT, last_updated TEXT NOT NULL, source TEXT NOT NULL,
    imported_us INTEGER NOT NULL
);
CREATE TABLE version_episodes (
    device_id INTEGER NOT NULL, value TEXT NOT NULL, first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL, site TEXT NOT NULL, agent_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (device_id, first_us, value)
);
INSERT INTO version_episodes (device_id, value, first_us, last_us, site, agent_id, fields)
    SELECT device_id, value, first_us, last_us, site, agent_id, '' FROM attributes
    WHERE name = 'software_version';
"#,
    // The latest classification an agent reported for a device, whole (rules matched,
    // candidates and explanation when the evidence disagreed): the device view's "why" (issue
    // 19). The newest report wins; a late one never replaces a newer.
    r#"
CREATE TABLE classifications (
    device_id INTEGER PRIMARY KEY, last_us INTEGER NOT NULL, record TEXT NOT NULL
);
"#,
    // Web console sessions (issue 21): stored, not kept in one process, so several collectors
    // on one database share them and a sign-out or a revoked token ends them everywhere. Only
    // the SHA-256 of the session secret is kept (a copy of the database signs nobody in).
    r#"
CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY, token_id TEXT NOT NULL, csrf TEXT NOT NULL,
    created_us INTEGER NOT NULL, last_used_us INTEGER NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions(token_id);
-- The console's orders and link filters over the device summaries, and its chart of flags per
-- day (bench/console.sh: without them a sorted page at 100 000 devices sorts the whole table).
CREATE INDEX device_summary_last ON device_summary(last_us DESC, device_id);
CREATE INDEX device_summary_open_flags ON device_summary(open_flags DESC, device_id);
CREATE INDEX device_summary_manufacturer
    ON device_summary((manufacturer IS NULL), manufacturer, model, device_id);
CREATE INDEX device_summary_contract ON device_summary(contract_id);
CREATE INDEX device_summary_asset ON device_summary(asset_tag);
-- Coverage (the overview, /api/v1/coverage) reads these columns of every summary: from this
-- index alone rather than from rows that carry the whole summary body.
CREATE INDEX device_summary_coverage
    ON device_summary(medical, asset_tag, contract_id, open_flags, flag_kinds, manufacturer);
-- Flags of one kind, open or resolved, newest first (the patch-SLA view pages through them).
CREATE INDEX flags_kind ON flags(kind, id);
CREATE INDEX flags_opened ON flags(opened_us);
CREATE INDEX flags_resolved ON flags(resolved_us) WHERE resolved_us IS NOT NULL;
"#,
    // The summary of the summaries (compliance::summary::summary_counts), kept with them by
    // every evaluation: coverage and the device list's totals read a few rows instead of
    // every summary, and the search matches a substring against the distinct manufacturers and
    // models, then fetches their devices through the two indexes below (bench/console.sh at
    // 100 000 devices). `device_summary_ids` lets a deep page in id order skip rows through a
    // narrow index rather than through the rows carrying the summary bodies;
    // `device_summary_asset_links` gives the assets page its linked devices without them.
    r#"
CREATE TABLE summary_counts (
    grp TEXT NOT NULL, value TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (grp, value, name)
);
CREATE INDEX device_summary_by_manufacturer ON device_summary(manufacturer);
CREATE INDEX device_summary_model ON device_summary(model);
CREATE INDEX device_summary_ids ON device_summary(device_id);
CREATE INDEX device_summary_asset_links
    ON device_summary(asset_tag, device_id, manufacturer, model) WHERE asset_tag IS NOT NULL;
"#,
    // Alerts delivered, beside alerts claimed (`alerted`): a collector that dies between
    // claiming alerts and delivering them no longer loses them; the next holder of the
    // evaluator's lease sends what is claimed and not delivered (at least once). Alerts of
    // databases from before this migration count as delivered, as they were then.
    r#"
ALTER TABLE flags ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
UPDATE flags SET delivered = alerted;
CREATE INDEX flags_undelivered ON flags(id) WHERE alerted != delivered;
"#,
    // Devices changed since an evaluation saw them: every ingest that writes a row of a device
    // records it here, with a token greater than any recorded, so the evaluator's lease holder
    // evaluates just those devices within a second of their data (whichever collector stored
    // it) and forgets only the changes it saw. The links by target give an evaluation of part
    // of the inventory what the other devices' links say about the same assets and contracts.
    r#"
CREATE TABLE changed_devices (device_id INTEGER PRIMARY KEY, token INTEGER NOT NULL);
CREATE INDEX changed_devices_token ON changed_devices(token);
CREATE INDEX links_target ON links(kind, target, device_id);
"#,
    // The flags whose opening or resolution is still to be alerted, by id: `flags_unalerted`
    // (`alerted != 3`) also held every open flag already alerted, so claiming alerts walked
    // every open flag once per evaluation (a second at two million).
    r#"
DROP INDEX flags_unalerted;
CREATE INDEX flags_to_alert ON flags(id)
    WHERE (status = 'open' AND alerted & 1 = 0) OR (status = 'resolved' AND alerted & 2 = 0);
"#,
];

/// The schema version stored in the file.
pub(super) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("reading schema version"))
}

/// Runs the migrations the file has not seen, each in its own transaction. A file from a newer
/// program is refused rather than read with assumptions that no longer hold.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = version(conn)?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db("starting migration"))?;
        tx.execute_batch(sql)
            .map_err(db(format!("applying migration {}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db("recording schema version"))?;
        tx.commit().map_err(db("committing migration"))?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn migrations_run_once_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.db");
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = SqliteStore::open(&p).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    /// A database from before the version timeline starts it with one episode per stored
    /// software version (the per-value history is all it had): the migration's backfill, run
    /// over rows written before it (found by content, so the test holds wherever the migration
    /// ends up in the list).
    #[test]
    fn the_timeline_migration_starts_from_the_stored_versions() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("w.db")).unwrap();
        let m = MIGRATIONS
            .iter()
            .find(|m| m.contains("CREATE TABLE version_episodes"))
            .unwrap();
        let backfill = &m[m.find("INSERT INTO version_episodes").unwrap()..];
        s.conn
            .execute_batch(
                "INSERT INTO devices (id, first_us, last_us) VALUES (1, 10, 40);
                 INSERT INTO attributes VALUES (1, 'software_version', '1.0', 10, 20, 2, 'main', 'a1');
                 INSERT INTO attributes VALUES (1, 'software_version', '1.1', 30, 40, 1, 'main', 'a1');
                 INSERT INTO attributes VALUES (1, 'model', 'X', 10, 40, 3, 'main', 'a1');",
            )
            .unwrap();
        s.conn.execute_batch(backfill).unwrap();
        let v = crate::store::Store::device(&s, 1)
            .unwrap()
            .unwrap()
            .software_versions;
        let got: Vec<(&str, i64, i64)> = v
            .iter()
            .map(|e| (e.value.as_str(), e.first_us, e.last_us))
            .collect();
        assert_eq!(got, [("1.0", 10, 20), ("1.1", 30, 40)]);
    }
}
