//! The reads both backends run alike: devices with everything stored about them (for the
//! inventory, one device's view, or the part of the inventory an evaluation looks at), the
//! imports' bodies, flags, links, merges, agents and counts. Compiled by each backend against
//! its `driver`; every read states its order (PostgreSQL returns ties in no particular order;
//! SQLite walks the same keys' indexes, so its orders cost nothing).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::driver::{params, params_from_iter, Connection};
use ward_protocols::MacAddr;

use super::reads::{flag_row, FlagRowRaw};
use super::{db, decode, query};
use crate::import::model::{Asset, Contract};
use crate::store::{
    AgentRow, AttributeValue, Counts, DeviceView, FlagRow, Inventory, Link, LinkKind, MergeRow,
    ServiceDirection, ServiceView, Sighting, StoreError, Transport,
};

/// Which devices [`load_devices`] reads.
#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    /// Every device.
    All,
    /// One device, in full (its classification too).
    One(i64),
    /// These devices (what an evaluation of part of the inventory reads).
    These(&'a [i64]),
}

/// Devices (not merged away) with everything stored about them, of `which`.
fn load_devices(
    conn: &Connection,
    which: Which<'_>,
) -> Result<BTreeMap<i64, DeviceView>, StoreError> {
    // The rows of one device or a few, through the device_id indexes, bound as ?1 (an id, or
    // a JSON array of ids); or every device's.
    const IN_IDS: &str = "IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))";
    let (w, and_id) = match which {
        Which::One(_) => (
            " WHERE device_id = ?1".to_string(),
            " AND id = ?1".to_string(),
        ),
        Which::These(_) => (
            format!(" WHERE device_id {IN_IDS}"),
            format!(" AND id {IN_IDS}"),
        ),
        Which::All => (String::new(), String::new()),
    };
    let one: Option<super::driver::Value> = match which {
        Which::One(id) => Some(super::driver::Value::Integer(id)),
        Which::These(ids) => Some(super::driver::Value::Text(
            serde_json::to_string(ids).unwrap_or_default(),
        )),
        Which::All => None,
    };
    let mut devs: BTreeMap<i64, DeviceView> = query(
        conn,
        "reading devices",
        &format!("SELECT id, first_us, last_us FROM devices WHERE merged_into IS NULL{and_id}"),
        params_from_iter(one.clone()),
        |r| {
            let id = r.get(0)?;
            Ok((
                id,
                DeviceView {
                    id,
                    first_us: r.get(1)?,
                    last_us: r.get(2)?,
                    ..Default::default()
                },
            ))
        },
    )?
    .into_iter()
    .collect();
    let identities: Vec<(i64, String, String)> = query(
        conn,
        "reading identities",
        &format!("SELECT device_id, kind, value FROM identities{w} ORDER BY device_id, kind, first_us, value"),
        params_from_iter(one.clone()),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (id, kind, value) in identities {
        if let Some(d) = devs.get_mut(&id) {
            if kind == "mac" {
                if let Ok(m) = value.parse::<MacAddr>() {
                    d.macs.push(m);
                }
            }
            d.identities.entry(kind).or_default().push(value);
        }
    }
    let attributes: Vec<(i64, String, AttributeValue)> = query(
        conn,
        "reading attributes",
        &format!("SELECT device_id, name, value, first_us, last_us, agent_id FROM attributes{w} ORDER BY device_id, name, first_us, value"),
        params_from_iter(one.clone()),
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                AttributeValue {
                    value: r.get(2)?,
                    first_us: r.get(3)?,
                    last_us: r.get(4)?,
                    agent_id: r.get(5)?,
                },
            ))
        },
    )?;
    for (id, name, v) in attributes {
        if let Some(d) = devs.get_mut(&id) {
            d.attributes.entry(name).or_default().push(v);
        }
    }
    // The whole classification only for one device's view: evaluation over the inventory
    // never reads it, and it is the bulkiest part of a device.
    let classifications: Vec<(i64, String)> = match which {
        Which::One(_) => query(
            conn,
            "reading classifications",
            "SELECT device_id, record FROM classifications WHERE device_id = ?1",
            params_from_iter(one.clone()),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        _ => Vec::new(),
    };
    for (id, record) in classifications {
        if let Some(d) = devs.get_mut(&id) {
            d.classification = Some(decode("classification", &record)?);
        }
    }
    for (id, episodes) in super::versions::read(conn, &w, one.clone())? {
        if let Some(d) = devs.get_mut(&id) {
            d.software_versions = episodes;
        }
    }
    let sightings: Vec<(i64, Sighting)> = query(
        conn,
        "reading sightings",
        &format!("SELECT site, agent_id, key, device_id, vlan, first_us, last_us FROM sightings{w} ORDER BY device_id, site, agent_id, key"),
        params_from_iter(one.clone()),
        |r| {
            Ok((
                r.get(3)?,
                Sighting {
                    site: r.get(0)?,
                    agent_id: r.get(1)?,
                    key: r.get(2)?,
                    vlan: r.get(4)?,
                    first_us: r.get(5)?,
                    last_us: r.get(6)?,
                },
            ))
        },
    )?;
    for (id, si) in sightings {
        if let Some(d) = devs.get_mut(&id) {
            d.sightings.push(si);
        }
    }
    let mut peers: HashMap<(i64, ServiceDirection, Transport, u16), Vec<IpAddr>> = HashMap::new();
    let rows: Vec<(i64, ServiceDirection, Transport, u16, String)> = query(
        conn,
        "reading service peers",
        &format!("SELECT device_id, direction, transport, port, peer FROM service_peers{w} ORDER BY device_id, direction, transport, port, peer"),
        params_from_iter(one.clone()),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    for (id, dir, tr, port, peer) in rows {
        if let Ok(ip) = peer.parse::<IpAddr>() {
            peers.entry((id, dir, tr, port)).or_default().push(ip);
        }
    }
    let services: Vec<(i64, ServiceView)> = query(
        conn,
        "reading services",
        &format!("SELECT device_id, direction, transport, port, app, peers, first_us, last_us FROM services{w} ORDER BY device_id, direction, transport, port"),
        params_from_iter(one.clone()),
        |r| {
            Ok((
                r.get(0)?,
                ServiceView {
                    direction: r.get(1)?,
                    transport: r.get(2)?,
                    port: r.get(3)?,
                    app: r.get(4)?,
                    peers: r.get::<_, i64>(5)?.max(0) as u64,
                    peer_addresses: Vec::new(),
                    first_us: r.get(6)?,
                    last_us: r.get(7)?,
                },
            ))
        },
    )?;
    for (id, mut sv) in services {
        if let Some(mut p) = peers.remove(&(id, sv.direction, sv.transport, sv.port)) {
            p.sort_unstable();
            sv.peer_addresses = p;
        }
        if let Some(d) = devs.get_mut(&id) {
            d.services.push(sv);
        }
    }
    Ok(devs)
}

/// Imported contracts and assets: validated records stored whole as JSON.
fn bodies<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    what: &str,
    sql: &str,
) -> Result<Vec<T>, StoreError> {
    query(conn, &format!("reading {what}s"), sql, [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?
    .into_iter()
    .map(|(key, body)| decode(&format!("{what} {key}"), &body))
    .collect()
}

pub(super) fn contracts(conn: &Connection) -> Result<Vec<Contract>, StoreError> {
    bodies(
        conn,
        "contract",
        "SELECT id, body FROM contracts ORDER BY id",
    )
}

pub(super) fn assets(conn: &Connection) -> Result<Vec<Asset>, StoreError> {
    bodies(conn, "asset", "SELECT tag, body FROM assets ORDER BY tag")
}

pub(super) fn inventory(conn: &Connection) -> Result<Inventory, StoreError> {
    // One read transaction so the pieces agree with each other.
    let tx = conn.unchecked_transaction().map_err(db("starting read"))?;
    let devs = load_devices(&tx, Which::All)?;
    let contracts = contracts(&tx)?;
    let assets = assets(&tx)?;
    Ok(Inventory {
        devices: devs.into_values().collect(),
        assets,
        contracts,
        ..Inventory::default()
    })
}

pub(super) fn devices_by_id(conn: &Connection, ids: &[i64]) -> Result<Vec<DeviceView>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let tx = conn.unchecked_transaction().map_err(db("starting read"))?;
    Ok(load_devices(&tx, Which::These(ids))?
        .into_values()
        .collect())
}

pub(super) fn device(conn: &Connection, id: i64) -> Result<Option<DeviceView>, StoreError> {
    let tx = conn.unchecked_transaction().map_err(db("starting read"))?;
    Ok(load_devices(&tx, Which::One(id))?.remove(&id))
}

/// A flag row's columns, in [`flag_row`]'s order.
pub(super) const FLAG_COLUMNS: &str = "id, kind, subject, detail, severity, status, summary, evidence, opened_us, last_true_us, resolved_us";

/// Flag rows with their evidence decoded.
pub(super) fn decode_flags(rows: Vec<FlagRowRaw>) -> Result<Vec<FlagRow>, StoreError> {
    rows.into_iter()
        .map(|(mut f, ev)| {
            f.evidence = decode("flag evidence", &ev)?;
            Ok(f)
        })
        .collect()
}

pub(super) fn flags(conn: &Connection, open_only: bool) -> Result<Vec<FlagRow>, StoreError> {
    let filter = if open_only {
        " WHERE status = 'open'"
    } else {
        ""
    };
    let sql = format!("SELECT {FLAG_COLUMNS} FROM flags{filter} ORDER BY id DESC");
    decode_flags(query(conn, "reading flags", &sql, [], flag_row)?)
}

pub(super) fn links(conn: &Connection) -> Result<Vec<Link>, StoreError> {
    query(
        conn,
        "reading links",
        "SELECT device_id, kind, target, method, confidence FROM links ORDER BY device_id, kind",
        [],
        |r| {
            Ok(Link {
                device_id: r.get(0)?,
                kind: if r.get::<_, String>(1)? == "asset" {
                    LinkKind::Asset
                } else {
                    LinkKind::Contract
                },
                target: r.get(2)?,
                method: r.get(3)?,
                confidence: r.get::<_, f64>(4)? as f32,
            })
        },
    )
}

pub(super) fn merges(conn: &Connection) -> Result<Vec<MergeRow>, StoreError> {
    query(
        conn,
        "reading merges",
        "SELECT kept, absorbed, identity_kind, identity_value, explanation, at_us FROM merges ORDER BY id",
        [],
        |r| {
            Ok(MergeRow {
                kept: r.get(0)?,
                absorbed: r.get(1)?,
                identity_kind: r.get(2)?,
                identity_value: r.get(3)?,
                explanation: r.get(4)?,
                at_us: r.get(5)?,
            })
        },
    )
}

pub(super) fn agents(conn: &Connection) -> Result<Vec<AgentRow>, StoreError> {
    query(
        conn,
        "reading agents",
        "SELECT a.site, a.agent_id, a.instance, a.state, a.version, a.status_time, a.reason, a.stats,
           (SELECT count(*) FROM messages m WHERE m.site = a.site AND m.agent_id = a.agent_id),
           (SELECT CAST(coalesce(sum(mx - n), 0) AS BIGINT) FROM
              (SELECT max(seq) AS mx, count(*) AS n FROM messages m
               WHERE m.site = a.site AND m.agent_id = a.agent_id GROUP BY instance) AS gaps)
         FROM agents a ORDER BY a.site, a.agent_id",
        [],
        |r| {
            Ok(AgentRow {
                site: r.get(0)?,
                agent_id: r.get(1)?,
                instance: r.get(2)?,
                state: r.get(3)?,
                version: r.get(4)?,
                status_time: r.get(5)?,
                reason: r.get(6)?,
                stats: r
                    .get::<_, Option<String>>(7)?
                    .and_then(|s| serde_json::from_str(&s).ok()),
                messages: r.get(8)?,
                missing: r.get(9)?,
            })
        },
    )
}

pub(super) fn counts(conn: &Connection) -> Result<Counts, StoreError> {
    let one = |sql: &str| -> Result<u64, StoreError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(db("counting"))
    };
    Ok(Counts {
        devices: one("SELECT count(*) FROM devices WHERE merged_into IS NULL")?,
        messages: one("SELECT count(*) FROM messages")?,
        contracts: one("SELECT count(*) FROM contracts")?,
        assets: one("SELECT count(*) FROM assets")?,
        links: one("SELECT count(*) FROM links")?,
        // The counts kept with the flags, when they are (a count of two million open flags
        // takes half a second on PostgreSQL).
        open_flags: one(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM summary_counts WHERE grp = 'flags' AND name = 'kept')
               THEN (SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM summary_counts WHERE grp = 'flags_open')
               ELSE (SELECT count(*) FROM flags WHERE status = 'open') END",
        )?,
        merges: one("SELECT count(*) FROM merges")?,
    })
}

/// The number of open flags (of `kind`), from the counts kept with the flags; `None` where
/// they are not kept (a database last evaluated by an older collector). What a page of open
/// flags shows as its total without counting them (a million open flags of one kind: a second
/// on PostgreSQL, on every page).
pub(super) fn kept_open_flags(
    conn: &Connection,
    kind: Option<&str>,
) -> Result<Option<u64>, StoreError> {
    let (kept, n): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM summary_counts WHERE grp = 'flags' AND name = 'kept'),
                    (SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM summary_counts
                     WHERE grp = 'flags_open' AND (?1 = '' OR value = ?1))",
            params![kind.unwrap_or("")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db("reading open flag counts"))?;
    Ok((kept > 0).then_some(n.max(0) as u64))
}
