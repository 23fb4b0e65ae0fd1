//! Reads: the inventory (devices with everything stored about them, assets, contracts) and the
//! API's pages, counts and lists. Every read of several statements runs in one read transaction
//! so its pieces agree with each other.
//!
//! PostgreSQL: every read that SQLite returns in primary-key order (walking the key's index)
//! says so with ORDER BY here; PostgreSQL returns ties in no particular order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use super::sql::{params, params_from_iter, Connection, OptionalExtension};

use super::{db, decode, encode, query};
use crate::store::{
    AssetLinkRow, Coverage, DeviceQuery, DeviceSort, DeviceSummary, FlagDay, FlagQuery, FlagRow,
    LinkFilter, StoreError,
};

pub(super) use super::inventory::{
    agents, assets, contracts, counts, decode_flags, device, devices_by_id, flags, inventory,
    links, merges, FLAG_COLUMNS,
};

pub(super) fn device_page(
    conn: &Connection,
    q: &DeviceQuery,
) -> Result<(u64, Vec<DeviceSummary>), StoreError> {
    // With the summary of the summaries kept, the names a filter matches come from its few
    // rows, not from a pass over every summary (a database from an older collector: until its
    // next evaluation; then the distinct names by a loose index scan, [`summary_names`]).
    let kept = counts_kept(conn)?;
    let mut f = Filter::default();
    if let Some(site) = &q.site {
        let p = f.text(format!("%,{},%", like_literal(site)));
        f.and(format!("sites LIKE {p} ESCAPE '\\'"));
    }
    if let Some(t) = &q.device_type {
        // A family (`network_infra`) finds its kinds too (`switch`, `dhcp_server`, …).
        let kinds = ward_protocols::schema::observation::device_types_in_family(t);
        let mut ps = vec![f.text(t.clone())];
        ps.extend(
            kinds
                .iter()
                .filter(|k| *k != t)
                .map(|k| f.text((*k).to_owned())),
        );
        f.and(format!("device_type IN ({})", ps.join(", ")));
    }
    // The manufacturers the filter and the vendor globs leave (`None`: any).
    let mut manufacturers: Option<Vec<String>> = None;
    if let Some(m) = &q.manufacturer {
        let needle = crate::import::pattern::Substring::new(m);
        let names = if kept {
            counted_manufacturers(conn, |n| needle.matches(n))?
        } else {
            summary_names(conn, "manufacturer", |n| needle.matches(n))?
        };
        let list = f.list(&names);
        f.and(format!("manufacturer IN {list}"));
        manufacturers = Some(names);
    }
    if let Some(flag) = &q.flag {
        let p = f.text(format!("%,{},%", like_literal(flag)));
        f.and(format!("flag_kinds LIKE {p} ESCAPE '\\'"));
    }
    let searching = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if let Some(text) = searching {
        // Identities by prefix — each kind and spelling a range of the identities' index, so a
        // search stays an index lookup at any inventory size — and manufacturer or model by
        // substring, tested on their distinct names (the summary counts' rows, or
        // [`summary_names`]) and then looked up by their indexes. One `device_id IN (… UNION
        // …)`: an OR of several conditions reads every summary on PostgreSQL (3.6 s per
        // search at 1 000 000 devices).
        let mut spellings = vec![text.to_owned(), text.to_lowercase(), text.to_uppercase()];
        spellings.dedup();
        let mut ranges = Vec::new();
        for spelling in spellings {
            // PostgreSQL has no GLOB, and its LIKE (ILIKE here) with a bound pattern is never
            // an index range: 1.3 s per search at 1 000 000 devices. A range of byte order
            // (`COLLATE "C"`, over the `identities_prefix` index) is exactly the values that
            // start with the spelling, whatever the database's collation — SQLite's GLOB.
            let from = f.text(spelling.clone());
            let until = match prefix_end(&spelling) {
                Some(end) => format!(" AND value COLLATE \"C\" < {}", f.text(end)),
                None => String::new(),
            };
            for kind in SEARCHED_IDENTITIES {
                ranges.push(format!(
                    "SELECT device_id FROM identities WHERE kind = '{kind}' AND value COLLATE \"C\" >= {from}{until}"
                ));
            }
        }
        let needle = crate::import::pattern::Substring::new(text);
        for column in ["manufacturer", "model"] {
            let names = if kept {
                counted_names(conn, column, |n| needle.matches(n))?
            } else {
                summary_names(conn, column, |n| needle.matches(n))?
            };
            if !names.is_empty() {
                let list = f.list(&names);
                ranges.push(format!(
                    "SELECT device_id FROM device_summary WHERE {column} IN {list}"
                ));
            }
        }
        f.and(format!("device_id IN ({})", ranges.join(" UNION ")));
    }
    for (column, link) in [("contract_id", &q.contract), ("asset_tag", &q.asset)] {
        match link {
            None => {}
            Some(LinkFilter::Linked) => f.and(format!("{column} IS NOT NULL")),
            Some(LinkFilter::Unlinked) => f.and(format!("{column} IS NULL")),
            Some(LinkFilter::To(target)) => {
                let p = f.text(target.clone());
                f.and(format!("{column} = {p}"));
            }
        }
    }
    if let Some(pats) = &q.vendors {
        let names = if kept {
            counted_manufacturers(conn, |n| glob_any(pats, n))?
        } else {
            summary_names(conn, "manufacturer", |n| glob_any(pats, n))?
        };
        let list = f.list(&names);
        f.and(format!("manufacturer IN {list}"));
        manufacturers = Some(match manufacturers {
            None => names,
            Some(m) => m.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    let listing = Listing {
        what: "devices",
        table: "device_summary",
        columns: "body",
        order: match q.sort {
            DeviceSort::Id => "device_id",
            DeviceSort::Manufacturer => "manufacturer IS NULL, manufacturer, model, device_id",
            DeviceSort::Type => "device_type, device_id",
            DeviceSort::LastSeen => "last_us DESC, device_id",
            DeviceSort::Flags => "open_flags DESC, device_id",
        },
    };
    // A total the summary counts hold is read from them. Otherwise — a count, or an OFFSET,
    // over a million summaries reads every one of them (here 0.07–0.6 s for the count,
    // 0.4–0.6 s for a page half-way) — the device list remembers both: the total, and the
    // device id at every ANCHOR_STEP-th position in id order, from which a deep page is a short
    // index range, for as long as the summaries' generation says they still hold. Not for a
    // search: it also matches identities, which change without the summaries; a search's total
    // is counted, up to the query's cap when it has one.
    let counted = match (kept, counted_name(q)) {
        (true, Some((name, negate))) => {
            Some(counted_total(conn, manufacturers.as_deref(), name, negate)?)
        }
        _ => None,
    };
    let mut offset = q.offset;
    let total = if searching.is_none() {
        let (generation, db_name) = summary_generation(conn)?;
        let key = format!("{db_name}\u{1f}{}\u{1f}{:?}", f.where_sql(), f.args);
        let known = listed()
            .get(&key)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.total);
        let total = match (counted, known, q.count_cap) {
            (Some(n), _, _) | (None, Some(n), _) => n,
            // A capped count (the console) is not worth a full count to remember: up to the
            // cap, then "more than cap" (`DeviceQuery::count_cap`).
            (None, None, Some(cap)) => {
                let n = f.count_up_to(conn, &listing, cap.saturating_add(1))?;
                if n > cap {
                    u64::MAX
                } else {
                    n
                }
            }
            (None, None, None) => remembered(
                conn,
                generation,
                &key,
                |e| e.total,
                |e, t| e.total = Some(t),
                || f.count(conn, &listing),
            )?,
        };
        if offset >= total {
            return Ok((total, Vec::new()));
        }
        if q.sort == DeviceSort::Id && offset >= ANCHOR_STEP {
            let anchors = remembered(
                conn,
                generation,
                &key,
                |e| e.anchors.clone(),
                |e, a| e.anchors = Some(a),
                || {
                    let sql = format!(
                        "SELECT device_id FROM (SELECT device_id, row_number() OVER (ORDER BY device_id) AS pos
                         FROM device_summary{}) AS ranked WHERE pos % {ANCHOR_STEP} = 1 ORDER BY pos",
                        f.where_sql()
                    );
                    query(
                        conn,
                        "anchoring the device list",
                        &sql,
                        params_from_iter(f.args.iter()),
                        |r| r.get(0),
                    )
                    .map(Arc::new)
                },
            )?;
            let i = usize::try_from(offset / ANCHOR_STEP)
                .unwrap_or(usize::MAX)
                .min(anchors.len().saturating_sub(1));
            if let Some(&from) = anchors.get(i) {
                let p = f.int(from);
                f.and(format!("device_id >= {p}"));
                offset -= i as u64 * ANCHOR_STEP;
            }
        }
        total
    } else {
        match q.count_cap {
            Some(cap) => {
                let n = f.count_up_to(conn, &listing, cap.saturating_add(1))?;
                // Above the cap: "more than cap" (`DeviceQuery::count_cap`).
                if n > cap {
                    u64::MAX
                } else {
                    n
                }
            }
            None => f.count(conn, &listing)?,
        }
    };
    let rows = f.rows(conn, &listing, (q.limit, offset), |r| r.get::<_, String>(0))?;
    let rows = rows
        .iter()
        .map(|b| decode("device summary", b))
        .collect::<Result<Vec<DeviceSummary>, _>>()?;
    Ok((total, rows))
}

/// The summary count a device query's total is, when it is one: the query filters by nothing
/// but manufacturers (its filter, the vendor's globs) and at most one of an open-flag kind, a
/// contract or an asset link (any or none). `(name, negate)`: `negate` = devices minus `name`.
fn counted_name(q: &DeviceQuery) -> Option<(String, bool)> {
    if q.site.is_some() || q.device_type.is_some() {
        return None;
    }
    if q.search.as_deref().is_some_and(|t| !t.trim().is_empty()) {
        return None;
    }
    let mut names = Vec::new();
    if let Some(flag) = &q.flag {
        // The stored list is comma-joined (a comma would match across two kinds), and its
        // Its LIKE folds case: only a kind as stored (lower case) is its count.
        if flag.is_empty()
            || !flag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        names.push((
            format!("{}{flag}", crate::compliance::summary::OPEN_PREFIX),
            false,
        ));
    }
    for (name, link) in [("with_contract", &q.contract), ("with_asset", &q.asset)] {
        match link {
            None => {}
            Some(LinkFilter::Linked) => names.push((name.to_string(), false)),
            Some(LinkFilter::Unlinked) => names.push((name.to_string(), true)),
            Some(LinkFilter::To(_)) => return None,
        }
    }
    match names.len() {
        0 => Some(("devices".into(), false)),
        1 => names.pop(),
        _ => None,
    }
}

/// A total from the summary counts: `name` (or devices minus `name`) over every device, or
/// summed over `manufacturers`.
fn counted_total(
    conn: &Connection,
    manufacturers: Option<&[String]>,
    name: String,
    negate: bool,
) -> Result<u64, StoreError> {
    let (sql, args) = match manufacturers {
        None => (
            "SELECT CAST(coalesce(sum(CASE WHEN name = 'devices' THEN n ELSE 0 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN name = ?1 THEN n ELSE 0 END), 0) AS BIGINT)
             FROM summary_counts WHERE grp = 'all' AND name IN ('devices', ?1)",
            vec![name],
        ),
        Some(m) => (
            "SELECT CAST(coalesce(sum(CASE WHEN name = 'devices' THEN n ELSE 0 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN name = ?1 THEN n ELSE 0 END), 0) AS BIGINT)
             FROM summary_counts WHERE grp = 'manufacturer' AND name IN ('devices', ?1)
               AND value IN (SELECT value FROM json_each(?2))",
            vec![name, encode(&m)],
        ),
    };
    let (devices, named): (i64, i64) = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(db("counting devices"))?;
    let (devices, named) = (devices.max(0) as u64, named.max(0) as u64);
    Ok(if negate {
        devices.saturating_sub(named)
    } else {
        named
    })
}

/// The least string greater, in byte (code point) order, than every string that starts with
/// `prefix`: its last character that has a successor, incremented, after the characters before
/// it. `None` when there is none (every character is the last code point).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = (u32::from(c) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Positions of the device list remembered per filter: every this many devices.
const ANCHOR_STEP: u64 = 1000;

/// Most filters remembered (each at most a total and one id per ANCHOR_STEP devices).
const LISTED_MAX: usize = 256;

/// What the device list remembers about one filter of one database, valid at `generation`.
#[derive(Debug, Default)]
struct Listed {
    generation: i64,
    total: Option<u64>,
    /// The device id at positions 0, ANCHOR_STEP, 2 × ANCHOR_STEP… in id order.
    anchors: Option<Arc<Vec<i64>>>,
}

fn listed() -> std::sync::MutexGuard<'static, HashMap<String, Listed>> {
    static LISTED: OnceLock<Mutex<HashMap<String, Listed>>> = OnceLock::new();
    LISTED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The summaries' generation (a trigger moves it whenever a summary is inserted or deleted or a
/// column the list filters on changes: `summary_generation` in the PostgreSQL migrations), and
/// which database and schema it counts for.
fn summary_generation(conn: &Connection) -> Result<(i64, String), StoreError> {
    conn.query_row(
        "SELECT n, current_database() || '/' || current_schema() || '/'
                || coalesce(inet_server_addr()::text, '') || ':' || coalesce(inet_server_port()::text, '')
         FROM summary_generation",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(db("reading the summaries' generation"))
}

/// What `get` finds remembered for `key` at `generation`, or `compute`'s answer — remembered
/// only if the generation is still the same once it is computed: a writer that committed in
/// between may or may not be in it.
fn remembered<T>(
    conn: &Connection,
    generation: i64,
    key: &str,
    get: impl Fn(&Listed) -> Option<T>,
    set: impl FnOnce(&mut Listed, T),
    compute: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    T: Clone,
{
    if let Some(v) = listed()
        .get(key)
        .filter(|e| e.generation == generation)
        .and_then(&get)
    {
        return Ok(v);
    }
    let v = compute()?;
    if summary_generation(conn)?.0 == generation {
        let mut m = listed();
        if m.len() >= LISTED_MAX && !m.contains_key(key) {
            m.clear();
        }
        let e = m.entry(key.to_string()).or_default();
        if e.generation != generation {
            *e = Listed {
                generation,
                ..Listed::default()
            };
        }
        set(e, v.clone());
    }
    Ok(v)
}

pub(super) fn device_summaries(
    conn: &Connection,
    vendors: Option<&[String]>,
) -> Result<Vec<DeviceSummary>, StoreError> {
    let (_, rows) = device_page(
        conn,
        &DeviceQuery {
            vendors: vendors.map(<[String]>::to_vec),
            limit: u32::MAX,
            ..DeviceQuery::default()
        },
    )?;
    Ok(rows)
}

/// Coverage from the summary of the summaries (`summary_counts`, kept by every evaluation with
/// the summaries): a few rows for everyone, a few per manufacturer for a vendor (the sum over
/// the manufacturers its globs match, as its device list is restricted). A database summarised
/// by an older collector has no counts until the next evaluation: then the summaries are counted.
pub(super) fn coverage(
    conn: &Connection,
    vendors: Option<&[String]>,
) -> Result<Coverage, StoreError> {
    if !counts_kept(conn)? {
        return coverage_scan(conn, vendors);
    }
    let rows: Vec<(String, i64)> = match vendors {
        None => query(
            conn,
            "reading coverage",
            "SELECT name, n FROM summary_counts WHERE grp = 'all'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        Some(globs) => {
            let names = counted_manufacturers(conn, |n| glob_any(globs, n))?;
            query(
                conn,
                "reading coverage",
                "SELECT name, n FROM summary_counts
                 WHERE grp = 'manufacturer' AND value IN (SELECT value FROM json_each(?1))",
                [encode(&names)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        }
    };
    Ok(crate::compliance::summary::coverage_from(
        rows.into_iter().map(|(k, n)| (k, n.max(0) as u64)),
    ))
}

/// The devices linked to an asset (of these vendors), by tag then device: from the
/// `device_summary_asset_links` index alone (tag, id, manufacturer, model), in one statement.
pub(super) fn asset_links(
    conn: &Connection,
    vendors: Option<&[String]>,
) -> Result<Vec<AssetLinkRow>, StoreError> {
    let mut f = Filter::default();
    f.and("asset_tag IS NOT NULL".into());
    if let Some(pats) = vendors {
        let names = if counts_kept(conn)? {
            counted_manufacturers(conn, |n| glob_any(pats, n))?
        } else {
            names_where(conn, "device_summary", "manufacturer", |n| {
                glob_any(pats, n)
            })?
        };
        let list = f.list(&names);
        f.and(format!("manufacturer IN {list}"));
    }
    query(
        conn,
        "listing asset links",
        &format!(
            "SELECT asset_tag, device_id, manufacturer, model FROM device_summary{}
             ORDER BY asset_tag, device_id",
            f.where_sql()
        ),
        params_from_iter(f.args.iter()),
        |r| {
            Ok(AssetLinkRow {
                tag: r.get(0)?,
                device_id: r.get(1)?,
                manufacturer: r.get(2)?,
                model: r.get(3)?,
            })
        },
    )
}

/// Whether the summary of the summaries is kept (see `coverage`).
fn counts_kept(conn: &Connection) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT count(*) FROM summary_counts WHERE grp = 'all' AND value = '' AND name = 'devices'",
    )
    .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
    .map(|n| n > 0)
    .map_err(db("reading summary counts"))
}

/// The distinct manufacturers of the summaries (from their counts: one row each) for which
/// `keep` holds.
fn counted_manufacturers(
    conn: &Connection,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    counted_names(conn, "manufacturer", keep)
}

/// The distinct manufacturers or models (`column`) the summary counts hold, for which `keep`
/// holds.
fn counted_names(
    conn: &Connection,
    column: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = query(
        conn,
        "listing names",
        "SELECT value FROM summary_counts WHERE grp = ?1 AND name = 'devices'",
        params![column],
        |r| r.get(0),
    )?;
    Ok(names.into_iter().filter(|n| keep(n)).collect())
}

/// Coverage counted over every summary (of these vendors): the computation the stored counts
/// replace, kept for a database whose counts are not kept yet and as the tests' reference.
pub(super) fn coverage_scan(
    conn: &Connection,
    vendors: Option<&[String]>,
) -> Result<Coverage, StoreError> {
    let mut f = Filter::default();
    if let Some(pats) = vendors {
        vendor_devices(conn, &mut f, pats)?;
    }
    let where_sql = f.where_sql();
    // A row at a time, five narrow columns, no summary body decoded: memory stays flat
    // whatever the inventory's size.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT medical, asset_tag IS NOT NULL, contract_id IS NOT NULL, open_flags, flag_kinds
             FROM device_summary{where_sql}"
        ))
        .map_err(db("reading coverage"))?;
    let mut rows = stmt
        .query(params_from_iter(f.args.iter()))
        .map_err(db("reading coverage"))?;
    let mut c = Coverage::default();
    while let Some(r) = rows.next().map_err(db("reading coverage"))? {
        let medical: bool = r.get(0).map_err(db("reading coverage"))?;
        let asset: bool = r.get(1).map_err(db("reading coverage"))?;
        let contract: bool = r.get(2).map_err(db("reading coverage"))?;
        let open: i64 = r.get(3).map_err(db("reading coverage"))?;
        let kinds: String = r.get(4).map_err(db("reading coverage"))?;
        c.devices += 1;
        if medical {
            c.medical += 1;
            c.medical_in_asset_register += u64::from(asset);
            c.medical_under_contract += u64::from(contract);
        }
        c.with_open_flags += u64::from(open > 0);
        for k in kinds.split(',').filter(|k| !k.is_empty()) {
            c.end_of_support_passed += u64::from(k == "end_of_support_passed");
            c.end_of_support_within += u64::from(k == "end_of_support_within");
            match c.open_flags_by_kind.get_mut(k) {
                Some(n) => *n += 1,
                None => {
                    c.open_flags_by_kind.insert(k.to_string(), 1);
                }
            }
        }
    }
    Ok(c)
}

pub(super) fn device_summary(
    conn: &Connection,
    id: i64,
) -> Result<Option<DeviceSummary>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM device_summary WHERE device_id = ?1")
        .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
        .map_err(db("reading device summary"))?;
    body.map(|b| decode("device summary", &b)).transpose()
}

pub(super) fn flag_page(
    conn: &Connection,
    q: &FlagQuery,
) -> Result<(u64, Vec<FlagRow>), StoreError> {
    let mut f = Filter::default();
    for (col, v) in [
        ("status", &q.status),
        ("kind", &q.kind),
        ("severity", &q.severity),
        ("subject", &q.subject),
    ] {
        if let Some(v) = v {
            let p = f.text(v.clone());
            f.and(format!("{col} = {p}"));
        }
    }
    if let Some(site) = &q.site {
        let p = f.text(format!("%,{},%", like_literal(site)));
        f.and(format!(
            "subject IN (SELECT 'device:' || device_id FROM device_summary WHERE sites LIKE {p} ESCAPE '\\')"
        ));
    }
    if let Some(c) = &q.contract {
        let p = f.text(c.clone());
        let own = f.text(format!("contract:{c}"));
        f.and(format!(
            "(subject = {own} OR subject IN (SELECT 'device:' || device_id FROM device_summary WHERE contract_id = {p}))"
        ));
    }
    if let Some(pats) = &q.vendors {
        vendor_flags(conn, &mut f, pats)?;
    }
    let listing = Listing {
        what: "flags",
        table: "flags",
        columns: FLAG_COLUMNS,
        order: "id DESC",
    };
    // Open flags, of one kind or all: the counts kept with the flags are the total.
    let plain_open = q.status.as_deref() == Some("open")
        && q.severity.is_none()
        && q.subject.is_none()
        && q.site.is_none()
        && q.contract.is_none()
        && q.vendors.is_none();
    let kept = if plain_open {
        super::inventory::kept_open_flags(conn, q.kind.as_deref())?
    } else {
        None
    };
    let (total, rows) = match kept {
        Some(total) => (
            total,
            f.rows(conn, &listing, (q.limit, q.offset), flag_row)?,
        ),
        None => f.page(conn, &listing, (q.limit, q.offset), flag_row)?,
    };
    Ok((total, decode_flags(rows)?))
}

/// Restricts `f` to the flags a vendor sees: on its devices and on its own contracts, nothing
/// else.
fn vendor_flags(conn: &Connection, f: &mut Filter, pats: &[String]) -> Result<(), StoreError> {
    let devices = names_where(conn, "device_summary", "manufacturer", |n| {
        glob_any(pats, n)
    })?;
    let devices = f.list(&devices);
    let contracts = names_where(conn, "contracts", "supplier", |n| glob_any(pats, n))?;
    let contracts = f.list(&contracts);
    f.and(format!(
        "(subject IN (SELECT 'device:' || device_id FROM device_summary WHERE manufacturer IN {devices})
          OR subject IN (SELECT 'contract:' || id FROM contracts WHERE supplier IN {contracts}))"
    ));
    Ok(())
}

/// Flags opened and resolved per UTC day from `since_us` to `until_us` (of the flags `vendors`
/// see). One range count per day and column over the `flags_opened` and `flags_resolved`
/// indexes: a grouped scan of every flag sorts them all (125 ms at 200 000 flags; the range
/// counts take 10 ms).
pub(super) fn flag_timeline(
    conn: &Connection,
    vendors: Option<&[String]>,
    since_us: i64,
    until_us: i64,
) -> Result<Vec<FlagDay>, StoreError> {
    const DAY_US: i64 = 86_400_000_000;
    if vendors.is_none() && flag_counts_kept(conn)? {
        return kept_flag_timeline(
            conn,
            since_us.div_euclid(DAY_US),
            until_us.div_euclid(DAY_US),
        );
    }
    let mut f = Filter::default();
    if let Some(pats) = vendors {
        vendor_flags(conn, &mut f, pats)?;
    }
    let vendor_sql = if f.conds.is_empty() {
        String::new()
    } else {
        format!(" AND {}", f.conds.join(" AND "))
    };
    let (from, to) = (f.args.len() + 1, f.args.len() + 2);
    let (first, last) = (since_us.div_euclid(DAY_US), until_us.div_euclid(DAY_US));
    // At most a year of days, whatever the caller asks.
    let first = first.max(last - 366);
    let mut out = Vec::new();
    for day in first..=last {
        let mut args = f.args.clone();
        args.push(super::sql::Value::Integer(day * DAY_US));
        args.push(super::sql::Value::Integer((day + 1) * DAY_US));
        let mut counts = [0u64; 2];
        for (i, column) in ["opened_us", "resolved_us"].iter().enumerate() {
            let n: i64 = conn
                .prepare_cached(&format!(
                    "SELECT count(*) FROM flags
                     WHERE {column} >= ?{from} AND {column} < ?{to}{vendor_sql}"
                ))
                .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                .map_err(db("reading the flag timeline"))?;
            counts[i] = n.max(0) as u64;
        }
        if counts != [0, 0] {
            out.push(FlagDay {
                day,
                opened: counts[0],
                resolved: counts[1],
            });
        }
    }
    Ok(out)
}

/// Restricts `f` to the devices whose manufacturer matches one of the vendor globs.
fn vendor_devices(conn: &Connection, f: &mut Filter, globs: &[String]) -> Result<(), StoreError> {
    let names = names_where(conn, "device_summary", "manufacturer", |n| {
        glob_any(globs, n)
    })?;
    let list = f.list(&names);
    f.and(format!("manufacturer IN {list}"));
    Ok(())
}

/// What an API page lists: `columns` of `table` in `order`; `what` names it in errors.
#[derive(Clone, Copy)]
struct Listing<'a> {
    what: &'a str,
    table: &'a str,
    columns: &'a str,
    order: &'a str,
}

/// A WHERE clause built from API filters: conditions joined by AND, every value bound as a
/// parameter (`?n`), never spliced into the SQL.
#[derive(Default)]
struct Filter {
    conds: Vec<String>,
    args: Vec<super::sql::types::Value>,
}

impl Filter {
    /// Binds `v`; returns its placeholder.
    fn text(&mut self, v: String) -> String {
        self.args.push(super::sql::types::Value::Text(v));
        format!("?{}", self.args.len())
    }

    /// `(SELECT value FROM json_each(?n))` binding `names` as one JSON array parameter: any
    /// number of names in one statement, no dynamic SQL.
    fn list(&mut self, names: &[String]) -> String {
        let p = self.text(encode(&names));
        format!("(SELECT value FROM json_each({p}))")
    }

    fn and(&mut self, cond: String) {
        self.conds.push(cond);
    }

    fn where_sql(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }

    /// Binds `v`; returns its placeholder.
    fn int(&mut self, v: i64) -> String {
        self.args.push(super::sql::types::Value::Integer(v));
        format!("?{}", self.args.len())
    }

    /// How many rows the filter selects, and the requested `(limit, offset)` page of them.
    fn page<T>(
        self,
        conn: &Connection,
        l: &Listing<'_>,
        (limit, offset): (u32, u64),
        map: impl FnMut(&super::sql::Row<'_>) -> super::sql::Result<T>,
    ) -> Result<(u64, Vec<T>), StoreError> {
        let total = self.count(conn, l)?;
        Ok((total, self.rows(conn, l, (limit, offset), map)?))
    }

    /// How many rows the filter selects.
    fn count(&self, conn: &Connection, l: &Listing<'_>) -> Result<u64, StoreError> {
        let where_sql = self.where_sql();
        let total: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM {}{where_sql}", l.table))
            .and_then(|mut s| s.query_row(params_from_iter(self.args.iter()), |r| r.get(0)))
            .map_err(db(format!("counting {}", l.what)))?;
        Ok(total.max(0) as u64)
    }

    /// How many rows the filter selects, counting no further than `max`.
    fn count_up_to(&self, conn: &Connection, l: &Listing<'_>, max: u64) -> Result<u64, StoreError> {
        let where_sql = self.where_sql();
        let max = max.min(i64::MAX as u64);
        let total: i64 = conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM (SELECT 1 FROM {}{where_sql} LIMIT {max}) AS matching",
                l.table
            ))
            .and_then(|mut s| s.query_row(params_from_iter(self.args.iter()), |r| r.get(0)))
            .map_err(db(format!("counting {}", l.what)))?;
        Ok(total.max(0) as u64)
    }

    /// The `(limit, offset)` page of the rows the filter selects.
    fn rows<T>(
        mut self,
        conn: &Connection,
        l: &Listing<'_>,
        (limit, offset): (u32, u64),
        map: impl FnMut(&super::sql::Row<'_>) -> super::sql::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let Listing {
            what,
            table,
            columns,
            order,
        } = *l;
        let where_sql = self.where_sql();
        self.args
            .push(super::sql::types::Value::Integer(i64::from(limit)));
        let lim = self.args.len();
        self.args.push(super::sql::types::Value::Integer(
            i64::try_from(offset).unwrap_or(i64::MAX),
        ));
        let off = self.args.len();
        let rows = query(
            conn,
            &format!("listing {what}"),
            &format!("SELECT {columns} FROM {table}{where_sql} ORDER BY {order} LIMIT ?{lim} OFFSET ?{off}"),
            params_from_iter(self.args.iter()),
            map,
        )?;
        Ok(rows)
    }
}

/// Identity kinds the device search looks in: not AE titles, which a vendor may not see and so
/// may not probe for either.
const SEARCHED_IDENTITIES: &[&str] = &["mac", "ip", "hostname", "serial", "eui64", "udi"];

/// Whether the evaluation keeps the flag counts (`write_flag_counts`; not before the first
/// evaluation of this version).
fn flag_counts_kept(conn: &Connection) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT count(*) FROM summary_counts WHERE grp = 'flags' AND value = '' AND name = 'kept'",
    )
    .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
    .map(|n| n > 0)
    .map_err(db("reading flag counts"))
}

/// The timeline from the kept per-day counts: every day with a flag opened or resolved is a
/// row, so the stored set grows by at most two rows a day.
fn kept_flag_timeline(
    conn: &Connection,
    first: i64,
    last: i64,
) -> Result<Vec<FlagDay>, StoreError> {
    // At most a year of days, whatever the caller asks (as the counted timeline).
    let first = first.max(last - 366);
    let rows: Vec<(String, String, i64)> = query(
        conn,
        "reading the flag timeline",
        "SELECT grp, value, n FROM summary_counts WHERE grp IN ('flags_opened', 'flags_resolved')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut days: BTreeMap<i64, [u64; 2]> = BTreeMap::new();
    for (grp, day, n) in rows {
        let Ok(day) = day.parse::<i64>() else {
            continue;
        };
        if day < first || day > last {
            continue;
        }
        let i = usize::from(grp == "flags_resolved");
        days.entry(day).or_default()[i] += n.max(0) as u64;
    }
    Ok(days
        .into_iter()
        .filter(|(_, c)| *c != [0, 0])
        .map(|(day, [opened, resolved])| FlagDay {
            day,
            opened,
            resolved,
        })
        .collect())
}

/// Open flags by kind (of the flags `vendors` see), in one pass over the open-flags index.
pub(super) fn open_flag_counts(
    conn: &Connection,
    vendors: Option<&[String]>,
) -> Result<Vec<(String, u64)>, StoreError> {
    if vendors.is_none() && flag_counts_kept(conn)? {
        // Kept by the evaluation with the flags. A vendor's are counted: its flags are those
        // of its devices and contracts, which no stored count follows.
        return query(
            conn,
            "counting open flags",
            "SELECT value, n FROM summary_counts WHERE grp = 'flags_open' ORDER BY value",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
        );
    }
    let mut f = Filter::default();
    f.and("status = 'open'".into());
    if let Some(pats) = vendors {
        vendor_flags(conn, &mut f, pats)?;
    }
    query(
        conn,
        "counting open flags",
        &format!(
            "SELECT kind, count(*) FROM flags{} GROUP BY kind ORDER BY kind",
            f.where_sql()
        ),
        params_from_iter(f.args.iter()),
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
    )
}

/// API filter text taken literally inside a LIKE pattern: a caller's `%` or `_` must neither
/// widen the match nor make SQLite backtrack over every row.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `name` matches one of the vendor globs: `pattern::matches`, the same test the views
/// apply to a single device or contract. SQLite's `LIKE` folds ASCII case only, so a glob is
/// never translated to SQL: the store lists the distinct stored names ([`names_where`])
/// and filters by the ones that match.
fn glob_any(globs: &[String], name: &str) -> bool {
    globs
        .iter()
        .any(|g| crate::import::pattern::matches(g, name))
}

/// The distinct non-null values of `device_summary.column` (`manufacturer` or `model`) for
/// which `keep` holds, read by a loose index scan over the column's index: one index probe per
/// distinct name. A `SELECT DISTINCT` reads every summary (80 ms at 1 000 000 devices on
/// PostgreSQL, which has no skip scan), and there are few names.
fn summary_names(
    conn: &Connection,
    column: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = query(
        conn,
        "listing names",
        &format!(
            "WITH RECURSIVE n(v) AS (
               SELECT (SELECT {column} FROM device_summary WHERE {column} IS NOT NULL
                       ORDER BY {column} LIMIT 1)
               UNION ALL
               SELECT (SELECT {column} FROM device_summary WHERE {column} > n.v
                       ORDER BY {column} LIMIT 1)
               FROM n WHERE n.v IS NOT NULL)
             SELECT v FROM n WHERE v IS NOT NULL"
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(names.into_iter().filter(|n| keep(n)).collect())
}

/// The distinct non-null values of `table.column` (a name column: manufacturers, suppliers)
/// for which `keep` holds. There are far fewer distinct names than rows, and each is tested
/// once (globs are compiled once per thread).
fn names_where(
    conn: &Connection,
    table: &str,
    column: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = query(
        conn,
        "listing names",
        &format!("SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"),
        [],
        |r| r.get(0),
    )?;
    Ok(names.into_iter().filter(|n| keep(n)).collect())
}

pub(super) type FlagRowRaw = (FlagRow, String);

pub(super) fn flag_row(r: &super::sql::Row<'_>) -> super::sql::Result<FlagRowRaw> {
    Ok((
        FlagRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            subject: r.get(2)?,
            detail: r.get(3)?,
            severity: r.get(4)?,
            status: r.get(5)?,
            summary: r.get(6)?,
            evidence: serde_json::Value::Null,
            opened_us: r.get(8)?,
            last_true_us: r.get(9)?,
            resolved_us: r.get(10)?,
        },
        r.get::<_, String>(7)?,
    ))
}
