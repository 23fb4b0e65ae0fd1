//! Merges: what the identity policy reads about a stored device, and folding one device into
//! another. Both backends' ingest run these statements one at a time (a merge is rare, and
//! reads the rows the batch stored before it), so they are written once, compiled by each
//! backend against its `driver`.

use super::driver::{params, Transaction};
use ward_protocols::MacAddr;

use super::{db, exec, query};
use crate::compliance::identity::{self, Ident, MergeCandidate};
use crate::store::StoreError;

/// What the identity policy needs to know about a stored device: its MACs, addresses, peers and
/// seen period.
pub(super) fn candidate(tx: &Transaction, dev: i64) -> Result<MergeCandidate, StoreError> {
    let (first_us, last_us) = tx
        .prepare_cached("SELECT first_us, last_us FROM devices WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![dev], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(db("reading device"))?;
    let mut c = MergeCandidate {
        id: dev,
        first_us,
        last_us,
        ..MergeCandidate::default()
    };
    let ids: Vec<(String, String)> = query(
        tx,
        "reading device addresses",
        "SELECT kind, value FROM identities WHERE device_id = ?1 AND kind IN ('mac', 'ip')",
        params![dev],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (kind, value) in ids {
        if kind == "mac" {
            c.macs.extend(value.parse::<MacAddr>());
        } else {
            c.ips.extend(value.parse::<std::net::IpAddr>());
        }
    }
    let peers: Vec<String> = query(
        tx,
        "reading device peers",
        "SELECT DISTINCT peer FROM service_peers WHERE device_id = ?1",
        params![dev],
        |r| r.get(0),
    )?;
    c.peers = peers.iter().filter_map(|p| p.parse().ok()).collect();
    Ok(c)
}

/// Folds `absorbed` into `kept`. Histories are combined with min/max, and the agent and site of
/// a row are those of its latest sighting, so the result is the same whichever order the two
/// were seen in.
pub(super) fn merge(
    tx: &Transaction,
    kept: &MergeCandidate,
    absorbed: &MergeCandidate,
    why: &Ident,
    site: &str,
    agent: &str,
    at_us: i64,
) -> Result<(), StoreError> {
    let explanation = identity::merge_explanation(kept, absorbed, why, site, agent, at_us);
    let (kept, absorbed) = (kept.id, absorbed.id);
    let stmts = [
        "INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
         SELECT kind, value, ?1, first_us, last_us, agent_id FROM identities WHERE device_id = ?2
         ON CONFLICT (kind, value, device_id) DO UPDATE SET
           first_us = min(identities.first_us, excluded.first_us),
           agent_id = CASE WHEN excluded.last_us >= identities.last_us THEN excluded.agent_id ELSE identities.agent_id END,
           last_us = max(identities.last_us, excluded.last_us)",
        "DELETE FROM identities WHERE device_id = ?2",
        "INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
         SELECT ?1, name, value, first_us, last_us, count, site, agent_id FROM attributes WHERE device_id = ?2
         ON CONFLICT (device_id, name, value) DO UPDATE SET
           first_us = min(attributes.first_us, excluded.first_us),
           site = CASE WHEN excluded.last_us >= attributes.last_us THEN excluded.site ELSE attributes.site END,
           agent_id = CASE WHEN excluded.last_us >= attributes.last_us THEN excluded.agent_id ELSE attributes.agent_id END,
           last_us = max(attributes.last_us, excluded.last_us),
           count = max(attributes.count, excluded.count)",
        "DELETE FROM attributes WHERE device_id = ?2",
        "INSERT OR IGNORE INTO version_episodes (device_id, value, first_us, last_us, site, agent_id, fields)
         SELECT ?1, value, first_us, last_us, site, agent_id, fields FROM version_episodes WHERE device_id = ?2",
        "DELETE FROM version_episodes WHERE device_id = ?2",
        "INSERT INTO classifications (device_id, last_us, record)
         SELECT ?1, last_us, record FROM classifications WHERE device_id = ?2
         ON CONFLICT (device_id) DO UPDATE SET
           record = CASE WHEN excluded.last_us > classifications.last_us THEN excluded.record ELSE classifications.record END,
           last_us = max(classifications.last_us, excluded.last_us)",
        "DELETE FROM classifications WHERE device_id = ?2",
        "INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
         SELECT ?1, direction, transport, port, app, peers, first_us, last_us, count FROM services WHERE device_id = ?2
         ON CONFLICT (device_id, direction, transport, port) DO UPDATE SET
           app = coalesce(services.app, excluded.app), peers = max(services.peers, excluded.peers),
           first_us = min(services.first_us, excluded.first_us),
           last_us = max(services.last_us, excluded.last_us),
           count = max(services.count, excluded.count)",
        "DELETE FROM services WHERE device_id = ?2",
        "INSERT OR IGNORE INTO service_peers (device_id, direction, transport, port, peer)
         SELECT ?1, direction, transport, port, peer FROM service_peers WHERE device_id = ?2",
        "DELETE FROM service_peers WHERE device_id = ?2",
        "UPDATE sightings SET device_id = ?1 WHERE device_id = ?2",
        "UPDATE devices SET
           first_us = min(first_us, (SELECT first_us FROM devices WHERE id = ?2)),
           last_us = max(last_us, (SELECT last_us FROM devices WHERE id = ?2))
         WHERE id = ?1",
        "UPDATE devices SET merged_into = ?1 WHERE id = ?2 OR merged_into = ?2",
        "DELETE FROM links WHERE device_id = ?2",
    ];
    for sql in stmts {
        exec(tx, "merging devices", sql, params![kept, absorbed])?;
    }
    // The absorbed device's open flags end here; the next evaluation raises them on the kept one.
    super::evaluation::resolve_merged_flags(tx, kept, absorbed, at_us)?;
    exec(
        tx,
        "recording merge",
        "INSERT INTO merges (kept, absorbed, identity_kind, identity_value, explanation, at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![kept, absorbed, why.kind, why.value, explanation, at_us],
    )?;
    tracing::info!(kept, absorbed, kind = why.kind, value = %why.value, "devices merged on a strong identity");
    Ok(())
}
