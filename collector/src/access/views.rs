//! What each kind of reader may see. The HTTP API and the `report` command both go through
//! these functions, so vendor isolation is enforced in one place: a vendor principal gets only
//! its manufacturers' devices, their flags and its own contracts, and no peer of any device.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use ward_protocols::Field;

use crate::access::tokens::{Principal, Role};
use crate::compliance::flags::FlagKind;
use crate::import::model::{Asset, Contract};
use crate::store::{
    AgentRow, DeviceQuery, DeviceSummary, DeviceView, FlagQuery, FlagRow, LinkKind, Store,
    StoreError,
};

/// Refusals and failures of a view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The role may not see this.
    #[error("forbidden for role {0}")]
    Forbidden(&'static str),
    /// No such thing.
    #[error("not found")]
    NotFound,
    /// It exists, but not for this principal: answered exactly as [`ViewError::NotFound`] (the
    /// caller cannot tell the two apart), logged apart.
    #[error("not found")]
    Invisible,
    /// A parameter is wrong.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// Matching in total.
    pub total: u64,
    /// Page size asked for.
    pub limit: u32,
    /// Offset asked for.
    pub offset: u64,
    /// The page.
    pub items: Vec<T>,
}

/// Attributes the collector derives itself (classification, OUI, link facts) that a vendor may
/// see of its own devices. Agent facts are decided by [`vendor_may_see_attribute`].
pub const VENDOR_DERIVED_ATTRIBUTES: &[&str] = &[
    "manufacturer",
    "model",
    "device_type",
    "software_version",
    "oui_vendor",
    "mac_kind",
    "vlan",
];

/// Whether a vendor may see the attribute `name` of its own devices: identity and software,
/// nothing naming a peer. For agent facts this is the field's `vendor_visible` role in the
/// allow-list (`ward_protocols::evidence`): AE titles and HL7 applications/facilities, which can
/// name the other end of a conversation, are not; a new field is hidden until its row says so.
pub fn vendor_may_see_attribute(name: &str) -> bool {
    VENDOR_DERIVED_ATTRIBUTES.contains(&name)
        || Field::from_name(name).is_some_and(Field::vendor_visible)
}

/// Identity kinds a vendor may see.
pub const VENDOR_IDENTITIES: &[&str] = &["mac", "serial", "eui64", "udi", "ip", "hostname"];

/// Maximum page size.
pub const MAX_LIMIT: u32 = 1000;

fn vendors(p: &Principal) -> Option<Vec<String>> {
    match p.role {
        Role::Vendor => Some(p.vendors.clone().unwrap_or_default()),
        _ => None,
    }
}

fn owns(p: &Principal, manufacturer: Option<&str>) -> bool {
    match vendors(p) {
        None => true,
        Some(globs) => manufacturer
            .is_some_and(|m| globs.iter().any(|g| crate::import::pattern::matches(g, m))),
    }
}

/// Removes every field about peers, recursively: a vendor sees its devices, not whom they talk
/// to.
pub fn strip_peers(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.contains("peer"));
            m.values_mut().for_each(strip_peers);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_peers),
        _ => {}
    }
}

/// Device list.
pub fn devices(
    store: &dyn Store,
    p: &Principal,
    mut q: DeviceQuery,
) -> Result<Page<DeviceSummary>, ViewError> {
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(ViewError::BadRequest(format!(
            "limit must be 1..={MAX_LIMIT}"
        )));
    }
    q.vendors = vendors(p);
    let (total, items) = store.device_page(&q)?;
    Ok(Page {
        total,
        limit: q.limit,
        offset: q.offset,
        items,
    })
}

fn device_json(d: &DeviceView, vendor: bool) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if vendor {
        if let Some(m) = v.get_mut("attributes").and_then(Value::as_object_mut) {
            m.retain(|k, _| vendor_may_see_attribute(k));
        }
        if let Some(m) = v.get_mut("identities").and_then(Value::as_object_mut) {
            m.retain(|k, _| VENDOR_IDENTITIES.contains(&k.as_str()));
        }
        // The rule matches quote their evidence (an AE title, a peer's name): a vendor sees
        // only those of fields it may see as attributes.
        if let Some(m) = v
            .get_mut("classification")
            .and_then(|c| c.get_mut("matches"))
            .and_then(Value::as_array_mut)
        {
            m.retain(|r| r["field"].as_str().is_some_and(vendor_may_see_attribute));
        }
        strip_peers(&mut v);
    }
    v
}

/// One device with its history, links and flags.
pub fn device(store: &dyn Store, p: &Principal, id: i64) -> Result<Value, ViewError> {
    let summary = store.device_summary(id)?.ok_or(ViewError::NotFound)?;
    if !owns(p, summary.manufacturer.as_deref()) {
        return Err(ViewError::Invisible);
    }
    let d = store.device(id)?.ok_or(ViewError::NotFound)?;
    let vendor = p.role == Role::Vendor;
    let (_, flags) = store.flag_page(&FlagQuery {
        subject: Some(format!("device:{id}")),
        limit: MAX_LIMIT,
        ..FlagQuery::default()
    })?;
    let mut flags = serde_json::to_value(flags).unwrap_or(Value::Null);
    if vendor {
        strip_peers(&mut flags);
    }
    let mut links: Vec<Value> = Vec::new();
    for (kind, l) in [
        (LinkKind::Asset, &summary.asset),
        (LinkKind::Contract, &summary.contract),
    ] {
        if let Some(l) = l {
            links.push(json!({"kind": kind, "target": l.target, "method": l.method, "confidence": l.confidence}));
        }
    }
    Ok(json!({
        "summary": summary,
        "device": device_json(&d, vendor),
        "links": links,
        "flags": flags,
    }))
}

/// One change of a device's software version, as the version timeline lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionChange {
    /// The version.
    pub software_version: String,
    /// First seen in this episode (RFC 3339).
    pub first_seen: String,
    /// Last seen in this episode (RFC 3339).
    pub last_seen: String,
    /// First seen, µs.
    pub first_us: i64,
    /// Last seen, µs.
    pub last_us: i64,
    /// The site of the agent that last reported it in this episode.
    pub site: String,
    /// That agent.
    pub agent_id: String,
    /// The evidence fields that carried it (allow-list names); empty when the classification
    /// rules inferred it.
    pub fields: Vec<String>,
    /// Against the version before it, by the version order: `first`, `upgrade`, `rollback`,
    /// `reinstall` (the same version again) or `not_comparable`.
    pub change: &'static str,
    /// Whether this is the version the device runs now (the one seen last).
    pub current: bool,
}

/// Every software-version change of a device, oldest first: each episode (a version seen with
/// no other seen in between) with its time, its source and whether it is current. A vendor sees
/// the timeline of its own devices only (another device is a 404, as for [`device`]).
pub fn device_versions(
    store: &dyn Store,
    p: &Principal,
    id: i64,
) -> Result<Vec<VersionChange>, ViewError> {
    let summary = store.device_summary(id)?.ok_or(ViewError::NotFound)?;
    if !owns(p, summary.manufacturer.as_deref()) {
        return Err(ViewError::Invisible);
    }
    let d = store.device(id)?.ok_or(ViewError::NotFound)?;
    Ok(version_timeline(&d))
}

/// [`device_versions`] of a device already read.
pub fn version_timeline(d: &DeviceView) -> Vec<VersionChange> {
    let current = d.current("software_version");
    let latest = d
        .software_versions
        .iter()
        .enumerate()
        .filter(|(_, e)| Some(e.value.as_str()) == current)
        .max_by_key(|(_, e)| (e.last_us, e.first_us))
        .map(|(i, _)| i);
    let time = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let mut prev: Option<&str> = None;
    d.software_versions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let change = match prev {
                None => "first",
                Some(p) => match crate::compliance::version::compare(p, &e.value) {
                    Some(std::cmp::Ordering::Less) => "upgrade",
                    Some(std::cmp::Ordering::Greater) => "rollback",
                    Some(std::cmp::Ordering::Equal) => "reinstall",
                    None => "not_comparable",
                },
            };
            prev = Some(&e.value);
            VersionChange {
                software_version: e.value.clone(),
                first_seen: time(e.first_us),
                last_seen: time(e.last_us),
                first_us: e.first_us,
                last_us: e.last_us,
                site: e.site.clone(),
                agent_id: e.agent_id.clone(),
                fields: e.fields.clone(),
                change,
                current: Some(i) == latest,
            }
        })
        .collect()
}

/// Flags.
pub fn flags(store: &dyn Store, p: &Principal, mut q: FlagQuery) -> Result<Page<Value>, ViewError> {
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(ViewError::BadRequest(format!(
            "limit must be 1..={MAX_LIMIT}"
        )));
    }
    q.vendors = vendors(p);
    let (total, rows) = store.flag_page(&q)?;
    let vendor = p.role == Role::Vendor;
    let items = rows
        .into_iter()
        .map(|f: FlagRow| {
            let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
            if vendor {
                strip_peers(&mut v);
            }
            v
        })
        .collect();
    Ok(Page {
        total,
        limit: q.limit,
        offset: q.offset,
        items,
    })
}

/// Contracts (a vendor: those it is the supplier of).
pub fn contracts(store: &dyn Store, p: &Principal) -> Result<Vec<Contract>, ViewError> {
    let inv = store.inventory_contracts()?;
    Ok(inv
        .into_iter()
        .filter(|c| owns(p, Some(&c.supplier)))
        .collect())
}

/// Assets (a vendor: those of its manufacturers).
pub fn assets(store: &dyn Store, p: &Principal) -> Result<Vec<Asset>, ViewError> {
    let all = store.inventory_assets()?;
    Ok(all
        .into_iter()
        .filter(|a| p.role != Role::Vendor || owns(p, a.manufacturer.as_deref()))
        .collect())
}

/// The devices linked to an asset of the register (of the vendor's devices for a vendor).
pub fn asset_links(
    store: &dyn Store,
    p: &Principal,
) -> Result<Vec<crate::store::AssetLinkRow>, ViewError> {
    Ok(store.asset_links(vendors(p).as_deref())?)
}

pub use crate::store::Coverage;

/// Coverage summary, from the counts the store keeps with the device summaries (no inventory
/// load).
pub fn coverage(store: &dyn Store, p: &Principal) -> Result<Coverage, ViewError> {
    Ok(store.coverage(vendors(p).as_deref())?)
}

/// One line of the installed base.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstalledBaseRow {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Software version.
    pub software_version: String,
    /// Devices.
    pub devices: u64,
    /// Of which under a contract.
    pub under_contract: u64,
    /// Of which past end of support.
    pub end_of_support_passed: u64,
    /// Sites.
    pub sites: Vec<String>,
}

/// Installed base by manufacturer, model and software version.
pub fn installed_base(
    store: &dyn Store,
    p: &Principal,
) -> Result<Vec<InstalledBaseRow>, ViewError> {
    let rows = store.device_summaries(vendors(p).as_deref())?;
    let mut m: BTreeMap<(String, String, String), InstalledBaseRow> = BTreeMap::new();
    for d in rows.iter().filter(|d| d.manufacturer.is_some()) {
        let key = (
            d.manufacturer.clone().unwrap_or_default(),
            d.model.clone().unwrap_or_default(),
            d.software_version.clone().unwrap_or_default(),
        );
        let e = m.entry(key.clone()).or_insert_with(|| InstalledBaseRow {
            manufacturer: key.0,
            model: key.1,
            software_version: key.2,
            devices: 0,
            under_contract: 0,
            end_of_support_passed: 0,
            sites: Vec::new(),
        });
        e.devices += 1;
        e.under_contract += u64::from(d.contract.is_some());
        e.end_of_support_passed += u64::from(
            d.flag_kinds
                .iter()
                .any(|k| k == FlagKind::EndOfSupportPassed.name()),
        );
        for s in &d.sites {
            if !e.sites.contains(s) {
                e.sites.push(s.clone());
            }
        }
    }
    Ok(m.into_values().collect())
}

/// One line of the patch-SLA report: a supplier and contract, and the advisories that touch the
/// devices it covers. Counts are of device × advisory pairs (one `vulnerable_software` flag
/// each, open or resolved), except `advisories` and `devices_affected`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatchSlaRow {
    /// The contract's supplier; for devices no contract covers, their manufacturer.
    pub supplier: String,
    /// The contract; `None` for devices no contract covers (no patch clock).
    pub contract_id: Option<String>,
    /// Distinct advisories that ever matched an affected version of these devices.
    pub advisories: u64,
    /// The advisory ids.
    pub advisory_ids: Vec<String>,
    /// Distinct devices that ran an affected version.
    pub devices_affected: u64,
    /// Pairs still affected now (open `vulnerable_software`).
    pub still_affected: u64,
    /// Pairs patched: the device no longer runs an affected version (resolved).
    pub patched: u64,
    /// Of which the fixed version was first seen on or before the patch due date (fix + SLA).
    pub patched_within_sla: u64,
    /// Pairs past their patch due date now (open `patch_overdue`).
    pub overdue: u64,
    /// Pairs still affected with no vendor fix available.
    pub no_fix_available: u64,
    /// Pairs whose supplier is past the SLA without a fix (open `vendor_fix_overdue`).
    pub vendor_fix_overdue: u64,
    /// Median days from the fix (F) to the first sighting of the version that cleared the
    /// device; `None` ("n/a") when no patched pair has both.
    pub median_days_fix_to_patch: Option<f64>,
    /// Each patched pair: "patched at T, N days after the fix" (JSON only).
    pub patched_pairs: Vec<PatchedPair>,
}

/// A device that no longer runs a version an advisory names.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatchedPair {
    /// `device:<id>`.
    pub subject: String,
    /// The advisory.
    pub advisory: String,
    /// The version it runs now.
    pub software_version: Option<String>,
    /// F, when a fix was known.
    pub fix_available_since: Option<chrono::NaiveDate>,
    /// The first sighting of the version it runs now, when before the resolution.
    pub patch_seen: Option<chrono::NaiveDate>,
    /// From F to that sighting.
    pub days_fix_to_patch: Option<i64>,
    /// Whether the sighting was on or before F + the SLA days (`None`: no clock).
    pub within_sla: Option<bool>,
    /// When ward found the device no longer affected (the flag's resolution), µs.
    pub resolved_us: Option<i64>,
}

/// The patch-SLA report, from the stored advisory flags (open and resolved) the principal may
/// see: a vendor sees its own devices, and only its own contracts (rows of another supplier's
/// contract are left out). When a pair was patched is read from the device's software-version
/// history: the first sighting of its current version, when that is before the resolution.
/// The agent reports one version per run today (issue 20 point 8), so that time is the
/// start of the run that first showed it, and a pair without it counts as "n/a".
pub fn patch_sla(store: &dyn Store, p: &Principal) -> Result<Vec<PatchSlaRow>, ViewError> {
    let visible_contracts: Option<Vec<String>> = match p.role {
        Role::Vendor => Some(contracts(store, p)?.into_iter().map(|c| c.id).collect()),
        _ => None,
    };
    let of_kind = |kind: FlagKind, status: Option<&str>| -> Result<Vec<Value>, ViewError> {
        let mut all = Vec::new();
        loop {
            let page = flags(
                store,
                p,
                FlagQuery {
                    kind: Some(kind.name().to_owned()),
                    status: status.map(str::to_owned),
                    limit: MAX_LIMIT,
                    offset: all.len() as u64,
                    ..FlagQuery::default()
                },
            )?;
            let n = page.items.len();
            all.extend(page.items);
            if n == 0 || all.len() as u64 >= page.total {
                return Ok(all);
            }
        }
    };
    let key = |f: &Value| -> (String, Option<String>) {
        let clock = &f["evidence"]["patch_clock"];
        match clock["contract_id"].as_str() {
            Some(c) => (
                clock["supplier"].as_str().unwrap_or_default().to_owned(),
                Some(c.to_owned()),
            ),
            None => (
                f["evidence"]["device"]["manufacturer"]
                    .as_str()
                    .unwrap_or("(unknown)")
                    .to_owned(),
                None,
            ),
        }
    };
    #[derive(Default)]
    struct Acc {
        advisories: std::collections::BTreeSet<String>,
        devices: std::collections::BTreeSet<String>,
        row: Option<PatchSlaRow>,
        days: Vec<i64>,
    }
    let mut m: BTreeMap<(String, Option<String>), Acc> = BTreeMap::new();
    let date = |s: &Value| s.as_str().and_then(|s| s.parse::<chrono::NaiveDate>().ok());
    for f in of_kind(FlagKind::VulnerableSoftware, None)? {
        let k = key(&f);
        let e = m.entry(k.clone()).or_default();
        let row = e.row.get_or_insert_with(|| PatchSlaRow {
            supplier: k.0.clone(),
            contract_id: k.1.clone(),
            advisories: 0,
            advisory_ids: Vec::new(),
            devices_affected: 0,
            still_affected: 0,
            patched: 0,
            patched_within_sla: 0,
            overdue: 0,
            no_fix_available: 0,
            vendor_fix_overdue: 0,
            median_days_fix_to_patch: None,
            patched_pairs: Vec::new(),
        });
        e.advisories
            .insert(f["detail"].as_str().unwrap_or_default().to_owned());
        e.devices
            .insert(f["subject"].as_str().unwrap_or_default().to_owned());
        let ev = &f["evidence"];
        if f["status"] == "open" {
            row.still_affected += 1;
            if ev["vendor_fix"].is_null() {
                row.no_fix_available += 1;
            }
            continue;
        }
        row.patched += 1;
        let fix = date(&ev["vendor_fix"]["available_since"]);
        let (seen, version) = patch_seen(store, &f).unzip();
        let seen = seen.flatten();
        let mut pair = PatchedPair {
            subject: f["subject"].as_str().unwrap_or_default().to_owned(),
            advisory: f["detail"].as_str().unwrap_or_default().to_owned(),
            software_version: version.flatten(),
            fix_available_since: fix,
            patch_seen: seen,
            days_fix_to_patch: None,
            within_sla: None,
            resolved_us: f["resolved_us"].as_i64(),
        };
        if let (Some(fix), Some(seen)) = (fix, seen) {
            let days = (seen - fix).num_days();
            e.days.push(days);
            pair.days_fix_to_patch = Some(days);
            if let Some(sla) = ev["patch_clock"]["patch_sla_days"].as_u64() {
                let due = crate::compliance::flags::advisory::deadline(
                    fix,
                    u32::try_from(sla).unwrap_or(u32::MAX),
                );
                pair.within_sla = Some(seen <= due);
                row.patched_within_sla += u64::from(seen <= due);
            }
        }
        row.patched_pairs.push(pair);
    }
    for (kind, open) in [
        (FlagKind::PatchOverdue, true),
        (FlagKind::VendorFixOverdue, false),
    ] {
        for f in of_kind(kind, Some("open"))? {
            if let Some(row) = m.get_mut(&key(&f)).and_then(|e| e.row.as_mut()) {
                if open {
                    row.overdue += 1;
                } else {
                    row.vendor_fix_overdue += 1;
                }
            }
        }
    }
    Ok(m.into_iter()
        .filter(|((_, c), _)| match (&visible_contracts, c) {
            (Some(v), Some(c)) => v.contains(c),
            _ => true,
        })
        .filter_map(|(_, mut e)| {
            let mut row = e.row.take()?;
            row.advisories = e.advisories.len() as u64;
            row.advisory_ids = e.advisories.into_iter().collect();
            row.devices_affected = e.devices.len() as u64;
            row.median_days_fix_to_patch = median(&mut e.days);
            Some(row)
        })
        .collect())
}

/// The version a resolved flag's device runs now, and the first sighting (UTC date) of it if
/// that came before the resolution (else the history does not say when the patch happened).
fn patch_seen(store: &dyn Store, f: &Value) -> Option<(Option<chrono::NaiveDate>, Option<String>)> {
    let id: i64 = f["subject"]
        .as_str()?
        .strip_prefix("device:")?
        .parse()
        .ok()?;
    let resolved = f["resolved_us"].as_i64()?;
    let d = store.device(id).ok()??;
    let current = d.current("software_version")?;
    // The first sighting of the episode that runs now: after a rollback and a second patch,
    // the second patch (as the resolved flag's note says).
    let first = crate::compliance::flags::advisory::current_version_since(&d)?;
    Some((
        (first <= resolved).then(|| crate::compliance::flags::date_of(first)),
        Some(current.to_owned()),
    ))
}

fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    })
}

/// Agents: the hospital's capture points; not for vendors.
pub fn agents(store: &dyn Store, p: &Principal) -> Result<Vec<AgentRow>, ViewError> {
    if p.role == Role::Vendor {
        return Err(ViewError::Forbidden("vendor"));
    }
    Ok(store.agents()?)
}

/// The merges that formed a device (it kept the record; absorbed devices, and those they had
/// absorbed), with their explanations; the same visibility as [`device`].
pub fn device_merges(
    store: &dyn Store,
    p: &Principal,
    id: i64,
) -> Result<Vec<crate::store::MergeRow>, ViewError> {
    let summary = store.device_summary(id)?.ok_or(ViewError::NotFound)?;
    if !owns(p, summary.manufacturer.as_deref()) {
        return Err(ViewError::Invisible);
    }
    let all = store.merges()?;
    let mut ids = vec![id];
    let mut out = Vec::new();
    while let Some(kept) = ids.pop() {
        for m in all.iter().filter(|m| m.kept == kept) {
            if !out.contains(m) {
                ids.push(m.absorbed);
                out.push(m.clone());
            }
        }
    }
    out.sort_by_key(|m| m.at_us);
    Ok(out)
}

/// Open flags by kind (the web console's overview): the flags this principal may see, counted
/// by the store in one pass.
pub fn open_flag_counts(store: &dyn Store, p: &Principal) -> Result<Vec<(String, u64)>, ViewError> {
    Ok(store.open_flag_counts(vendors(p).as_deref())?)
}

/// Flags opened and resolved per day from `since_us` to `until_us` (the web console's chart): the flags this
/// principal may see, counted by the store.
pub fn flag_timeline(
    store: &dyn Store,
    p: &Principal,
    since_us: i64,
    until_us: i64,
) -> Result<Vec<crate::store::FlagDay>, ViewError> {
    Ok(store.flag_timeline(vendors(p).as_deref(), since_us, until_us)?)
}

/// A value for a terminal table: control characters and invisible formatting characters
/// ([`crate::ingest::unsafe_char`]) written as `\u{…}` escapes, so nothing stored — an agent
/// value from before ingest bounded them, an imported asset tag or contract field — can move the
/// cursor, recolour the terminal, forge a line or reorder text when printed. JSON and CSV output
/// need no such treatment (JSON escapes controls; CSV has its own quoting).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    if !s.chars().any(crate::ingest::unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if crate::ingest::unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Requires the admin role.
pub fn require_admin(p: &Principal) -> Result<(), ViewError> {
    match p.role {
        Role::Admin => Ok(()),
        r => Err(ViewError::Forbidden(r.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields a vendor sees, now read from the allow-list's `vendor_visible` role, are the
    /// ones this module listed by name before issue 14 (test data: the names are the point), for
    /// the protocols that existed then.
    #[test]
    fn vendor_visible_fields_are_the_former_list() {
        use ward_protocols::Protocol;
        let then = [Protocol::Dicom, Protocol::Hl7, Protocol::Dhcp];
        // DHCP fields issue 17 added later (options 77 and 43) were not in the former list.
        let added = [
            Field::DhcpUserClass,
            Field::DhcpVendorOptionCodes,
            Field::DhcpVendorOption,
        ];
        let visible: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.vendor_visible() && then.contains(&f.protocol()))
            .filter(|f| !added.contains(f))
            .map(|f| f.name())
            .collect();
        let former = [
            "dicom.implementation_class_uid",
            "dicom.implementation_version",
            "dicom.modality",
            "dicom.manufacturer",
            "dicom.model_name",
            "dicom.device_serial_number",
            "dicom.software_versions",
            "hl7.equipment_instance",
            "hl7.device_code",
            "hl7.udi",
            "hl7.device_manufacturer",
            "hl7.device_model",
            "hl7.device_serial",
            "hl7.device_software_version",
            "dhcp.hostname",
            "dhcp.parameter_request_list",
            "dhcp.vendor_class",
        ];
        assert_eq!(visible, former);
        for name in former.iter().chain(VENDOR_DERIVED_ATTRIBUTES) {
            assert!(vendor_may_see_attribute(name), "{name}");
        }
        for hidden in [
            "dicom.calling_ae",
            "hl7.sending_application",
            "dhcp.fqdn",
            "x.y",
        ] {
            assert!(!vendor_may_see_attribute(hidden), "{hidden}");
        }
    }

    /// The store's one-pass coverage equals counting over every summary (what the view did
    /// before), for every kind of principal.
    #[test]
    fn coverage_counts_what_the_summaries_hold() {
        use crate::store::sqlite::SqliteStore;
        use crate::store::LinkRef;
        let mut s = SqliteStore::in_memory().unwrap();
        let kinds = [
            "end_of_support_passed",
            "end_of_support_within",
            "no_contract",
            "cleartext_dicom",
        ];
        let link = |t: &str| LinkRef {
            target: t.into(),
            method: "mac".into(),
            confidence: 1.0,
        };
        let rows: Vec<DeviceSummary> = (0..60i64)
            .map(|i| {
                let flag_kinds: Vec<String> = kinds
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| (i as usize + k).is_multiple_of(3))
                    .map(|(_, k)| k.to_string())
                    .collect();
                DeviceSummary {
                    id: i + 1,
                    macs: vec![],
                    ips: vec![],
                    manufacturer: match i % 4 {
                        0 => Some("ACME Medical".into()),
                        1 => Some("DRÄGER".into()),
                        2 => Some("Other".into()),
                        _ => None,
                    },
                    model: None,
                    device_type: "ct".into(),
                    software_version: None,
                    sites: vec!["s".into()],
                    vlans: vec![],
                    first_us: 0,
                    last_us: 0,
                    asset: (i % 5 == 0).then(|| link("A")),
                    contract: (i % 7 < 3).then(|| link("C")),
                    open_flags: flag_kinds.len() as u32,
                    flag_kinds,
                    medical: i % 2 == 0,
                }
            })
            .collect();
        s.write_summaries(&rows).unwrap();
        for p in [
            Principal::local_admin(),
            Principal::vendor(&["acme*".into()]),
            Principal::vendor(&["dräger*".into(), "Other".into()]),
            Principal::vendor(&["nobody".into()]),
        ] {
            let mut want = Coverage::default();
            for d in &s.device_summaries(vendors(&p).as_deref()).unwrap() {
                want.devices += 1;
                if d.medical {
                    want.medical += 1;
                    want.medical_in_asset_register += u64::from(d.asset.is_some());
                    want.medical_under_contract += u64::from(d.contract.is_some());
                }
                let has = |k: &str| d.flag_kinds.iter().any(|f| f == k);
                want.end_of_support_passed += u64::from(has("end_of_support_passed"));
                want.end_of_support_within += u64::from(has("end_of_support_within"));
                want.with_open_flags += u64::from(d.open_flags > 0);
                for k in &d.flag_kinds {
                    *want.open_flags_by_kind.entry(k.clone()).or_default() += 1;
                }
            }
            assert_eq!(coverage(&s, &p).unwrap(), want, "{p:?}");
        }
        assert_eq!(coverage(&s, &Principal::local_admin()).unwrap().devices, 60);
    }

    #[test]
    fn printable_escapes_what_a_terminal_would_obey() {
        assert!(matches!(
            printable("CT ROOM 2"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("A\u{1b}[2J\nB\u{202e}C\u{9b}"),
            "A\\u{1b}[2J\\u{a}B\\u{202e}C\\u{9b}"
        );
    }

    #[test]
    fn peers_are_stripped_at_any_depth() {
        let mut v = json!({"a": {"peer_addresses": [1], "external_peers": [2], "b": [{"peers_not_permitted": 1, "c": 2}]}, "peers": 3});
        strip_peers(&mut v);
        assert_eq!(v, json!({"a": {"b": [{"c": 2}]}}));
    }
}
