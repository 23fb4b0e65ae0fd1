//! The tables people and spreadsheets read: `ward-collector report …` (the API's views as a
//! table, CSV or JSON; `--vendor` gives exactly what that vendor's API token would see), and
//! `devices` and `flags` (the store as it is, for the local administrator). Every one goes
//! through [`write`], the one renderer.
//!
//! CSV is opened in spreadsheets, and its cells carry text from agents (what a device says
//! about itself on the wire) and from imported files: a cell such as `=HYPERLINK(…)` must not
//! run as a formula. Every CSV cell is therefore written through [`csv_cell`] (the OWASP
//! CSV-injection rule): a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return,
//! or with one of `=`, `+`, `-`, `@` after leading whitespace, is prefixed with a single quote
//! `'`, which spreadsheets show as text and do not evaluate. The numbers and dates the report
//! writes itself (ids, counts, `YYYY-MM-DD HH:MM`) never begin with those characters and are
//! written as they are. Table and JSON output are not changed.

use std::borrow::Cow;

use std::io::Write;

use serde_json::Value;

use crate::access::tokens::Principal;
use crate::access::views::{self, printable, Page, ViewError, MAX_LIMIT};
use crate::store::{DeviceQuery, FlagQuery, Store};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Every device with its links and open flags.
    Devices,
    /// Flags (open by default).
    Flags,
    /// Coverage summary.
    Coverage,
    /// Installed base by manufacturer, model and software version.
    InstalledBase,
    /// Per supplier and contract: advisories touching the installed base, devices affected,
    /// patched within the SLA, overdue, no fix available, median days from fix to patch.
    PatchSla,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// RFC 4180 CSV with a header row; a cell beginning with =, +, -, @, tab or CR (also after
    /// leading whitespace) is prefixed with ' so spreadsheets do not run it as a formula.
    Csv,
    /// JSON.
    Json,
}

impl Format {
    /// JSON with `--json`, else a table.
    pub fn json_if(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Table
        }
    }
}

/// Which flags a flag report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Open flags.
    Open,
    /// Resolved flags.
    Resolved,
    /// Both.
    All,
}

impl Status {
    fn filter(self) -> Option<String> {
        match self {
            Status::Open => Some("open".into()),
            Status::Resolved => Some("resolved".into()),
            Status::All => None,
        }
    }
}

/// Who a report is for: the local administrator, or exactly what a vendor token for these
/// manufacturers (globs) sees.
pub fn viewer(vendors: &[String]) -> Principal {
    if vendors.is_empty() {
        Principal::local_admin()
    } else {
        Principal::vendor(vendors)
    }
}

/// Column names, rows as text, and the same data as JSON.
type Table = (Vec<&'static str>, Vec<Vec<String>>, Value);

fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Every item of a paged view, page by page at the largest page size.
fn all_pages<T>(
    mut page: impl FnMut(u64) -> Result<Page<T>, ViewError>,
) -> Result<Vec<T>, ViewError> {
    let mut all = Vec::new();
    loop {
        let p = page(all.len() as u64)?;
        let n = p.items.len();
        all.extend(p.items);
        if n == 0 || all.len() as u64 >= p.total {
            return Ok(all);
        }
    }
}

fn rows_devices(store: &dyn Store, p: &Principal) -> anyhow::Result<Table> {
    rows_devices_where(store, p, DeviceQuery::default())
}

/// The device report of the devices `q` selects (its filters and order; every page).
fn rows_devices_where(store: &dyn Store, p: &Principal, q: DeviceQuery) -> anyhow::Result<Table> {
    let all = all_pages(|offset| {
        let q = DeviceQuery {
            limit: MAX_LIMIT,
            offset,
            ..q.clone()
        };
        views::devices(store, p, q)
    })?;
    let head = vec![
        "id",
        "macs",
        "ips",
        "manufacturer",
        "model",
        "type",
        "software",
        "sites",
        "last_seen",
        "asset",
        "contract",
        "open_flags",
        "flag_kinds",
    ];
    let rows = all
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.macs.join(" "),
                d.ips.join(" "),
                d.manufacturer.clone().unwrap_or_default(),
                d.model.clone().unwrap_or_default(),
                d.device_type.clone(),
                d.software_version.clone().unwrap_or_default(),
                d.sites.join(" "),
                time(d.last_us),
                d.asset
                    .as_ref()
                    .map(|a| format!("{} ({})", a.target, a.method))
                    .unwrap_or_default(),
                d.contract
                    .as_ref()
                    .map(|c| format!("{} ({})", c.target, c.method))
                    .unwrap_or_default(),
                d.open_flags.to_string(),
                d.flag_kinds.join(" "),
            ]
        })
        .collect();
    Ok((head, rows, serde_json::to_value(&all)?))
}

fn rows_flags(store: &dyn Store, p: &Principal, status: Status) -> anyhow::Result<Table> {
    let all = all_pages(|offset| {
        let q = FlagQuery {
            status: status.filter(),
            limit: MAX_LIMIT,
            offset,
            ..FlagQuery::default()
        };
        views::flags(store, p, q)
    })?;
    let head = vec![
        "id", "status", "severity", "kind", "subject", "detail", "opened", "resolved", "summary",
    ];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let rows = all
        .iter()
        .map(|f| {
            vec![
                f["id"].to_string(),
                s(f, "status"),
                s(f, "severity"),
                s(f, "kind"),
                s(f, "subject"),
                s(f, "detail"),
                f["opened_us"].as_i64().map(time).unwrap_or_default(),
                f["resolved_us"].as_i64().map(time).unwrap_or_default(),
                s(f, "summary"),
            ]
        })
        .collect();
    Ok((head, rows, Value::Array(all)))
}

/// `ward-collector devices`: the stored inventory with every link (method, confidence).
pub fn inventory(store: &dyn Store, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    let inv = store.inventory()?;
    let links = store.links()?;
    let rows = inv
        .devices
        .iter()
        .map(|d| {
            let (m, model) = crate::compliance::link::manufacturer_model(d);
            let linked: Vec<String> = links
                .iter()
                .filter(|l| l.device_id == d.id)
                .map(|l| {
                    let (kind, target, method) = (l.kind.as_str(), &l.target, &l.method);
                    format!("{kind}={target} ({method}, {:.2})", l.confidence)
                })
                .collect();
            let macs: Vec<String> = d.macs.iter().map(|m| m.to_string()).collect();
            vec![
                d.id.to_string(),
                macs.join(","),
                format!("{} {}", m.unwrap_or("?"), model.unwrap_or("")),
                d.current("device_type").unwrap_or("unknown").to_owned(),
                linked.join("  "),
            ]
        })
        .collect();
    let json = serde_json::json!({"devices": inv.devices, "links": links});
    let head = vec!["id", "macs", "device", "type", "links"];
    write((head, rows, json), format, out)
}

/// `ward-collector device versions ID`: a device's software-version timeline (what
/// `/api/v1/devices/{id}/versions` answers an admin).
pub fn device_versions(
    store: &dyn Store,
    id: i64,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let d = store
        .device(id)?
        .ok_or_else(|| anyhow::anyhow!("no device {id}"))?;
    let timeline = crate::access::views::version_timeline(&d);
    let rows = timeline
        .iter()
        .map(|v| {
            vec![
                v.software_version.clone(),
                v.first_seen.clone(),
                v.last_seen.clone(),
                v.change.to_owned(),
                if v.current { "yes" } else { "" }.to_owned(),
                format!("{}/{}", v.site, v.agent_id),
                if v.fields.is_empty() {
                    "classification".to_owned()
                } else {
                    v.fields.join(",")
                },
            ]
        })
        .collect();
    let head = vec![
        "version",
        "first_seen",
        "last_seen",
        "change",
        "current",
        "agent",
        "source",
    ];
    write((head, rows, serde_json::to_value(&timeline)?), format, out)
}

/// `ward-collector flags`: the stored flags, open ones only with `open_only`.
pub fn stored_flags(
    store: &dyn Store,
    open_only: bool,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let flags = store.flags(open_only)?;
    let rows = flags
        .iter()
        .map(|f| {
            let cells = [&f.status, &f.severity, &f.kind, &f.summary];
            std::iter::once(f.id.to_string())
                .chain(cells.map(String::clone))
                .collect()
        })
        .collect();
    let head = vec!["id", "status", "severity", "kind", "summary"];
    write((head, rows, serde_json::to_value(&flags)?), format, out)
}

/// The device report as CSV for the devices `q` selects (the web console's export of the view
/// on screen): the same columns and the same formula-safe cells as `report devices --format csv`.
pub fn devices_csv(
    store: &dyn Store,
    p: &Principal,
    q: DeviceQuery,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    write(rows_devices_where(store, p, q)?, Format::Csv, out)
}

/// A CSV cell that no spreadsheet runs as a formula (OWASP CSV injection): `cell` itself unless
/// it begins with `=`, `+`, `-`, `@`, tab or CR, or with `=`, `+`, `-`, `@` after leading
/// whitespace; then `'` and `cell`. The csv writer quotes the result as needed.
pub fn csv_cell(cell: &str) -> Cow<'_, str> {
    let formula =
        cell.starts_with(['\t', '\r']) || cell.trim_start().starts_with(['=', '+', '-', '@']);
    if formula {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Writes a report.
pub fn run(
    store: &dyn Store,
    p: &Principal,
    kind: Kind,
    format: Format,
    status: Status,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let table = match kind {
        Kind::Devices => rows_devices(store, p)?,
        Kind::Flags => rows_flags(store, p, status)?,
        Kind::Coverage => {
            let c = views::coverage(store, p)?;
            let mut rows = vec![
                vec!["devices".into(), c.devices.to_string()],
                vec!["medical".into(), c.medical.to_string()],
                vec![
                    "medical_in_asset_register".into(),
                    c.medical_in_asset_register.to_string(),
                ],
                vec![
                    "medical_under_contract".into(),
                    c.medical_under_contract.to_string(),
                ],
                vec![
                    "end_of_support_passed".into(),
                    c.end_of_support_passed.to_string(),
                ],
                vec![
                    "end_of_support_within".into(),
                    c.end_of_support_within.to_string(),
                ],
                vec!["with_open_flags".into(), c.with_open_flags.to_string()],
            ];
            for (k, v) in &c.open_flags_by_kind {
                rows.push(vec![format!("open_flags.{k}"), v.to_string()]);
            }
            (vec!["measure", "value"], rows, serde_json::to_value(&c)?)
        }
        Kind::PatchSla => {
            let r = views::patch_sla(store, p)?;
            let rows = r
                .iter()
                .map(|r| {
                    vec![
                        r.supplier.clone(),
                        r.contract_id.clone().unwrap_or_else(|| "(none)".into()),
                        r.advisories.to_string(),
                        r.devices_affected.to_string(),
                        r.still_affected.to_string(),
                        r.patched.to_string(),
                        r.patched_within_sla.to_string(),
                        r.overdue.to_string(),
                        r.no_fix_available.to_string(),
                        r.vendor_fix_overdue.to_string(),
                        r.median_days_fix_to_patch
                            .map_or("n/a".into(), |d| format!("{d}")),
                        r.advisory_ids.join(" "),
                    ]
                })
                .collect();
            (
                vec![
                    "supplier",
                    "contract",
                    "advisories",
                    "devices_affected",
                    "still_affected",
                    "patched",
                    "patched_within_sla",
                    "overdue",
                    "no_fix_available",
                    "vendor_fix_overdue",
                    "median_days_fix_to_patch",
                    "advisory_ids",
                ],
                rows,
                serde_json::to_value(&r)?,
            )
        }
        Kind::InstalledBase => {
            let ib = views::installed_base(store, p)?;
            let rows = ib
                .iter()
                .map(|r| {
                    vec![
                        r.manufacturer.clone(),
                        r.model.clone(),
                        r.software_version.clone(),
                        r.devices.to_string(),
                        r.under_contract.to_string(),
                        r.end_of_support_passed.to_string(),
                        r.sites.join(" "),
                    ]
                })
                .collect();
            (
                vec![
                    "manufacturer",
                    "model",
                    "software",
                    "devices",
                    "under_contract",
                    "end_of_support_passed",
                    "sites",
                ],
                rows,
                serde_json::to_value(&ib)?,
            )
        }
    };
    write(table, format, out)
}

/// Pretty JSON and a newline: what every `--json` and JSON-printing command writes.
pub fn write_json<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The one renderer of every table above.
fn write(table: Table, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    let (head, rows, json) = table;
    match format {
        Format::Json => write_json(&json, out)?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(head.iter().map(|h| csv_cell(h).into_owned()))?;
            for r in &rows {
                w.write_record(r.iter().map(|c| csv_cell(c).into_owned()))?;
            }
            w.flush()?;
        }
        Format::Table => {
            // Columns are capped so one long value does not push the rest off screen; the last
            // column (a summary, usually) is never cut.
            const CAP: usize = 80;
            // Stored text (agent values, imported fields) must not steer the terminal.
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| r.iter().map(|c| printable(c).into_owned()).collect())
                .collect();
            let last = head.len().saturating_sub(1);
            let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    if let Some(w) = width.get_mut(i) {
                        *w = (*w).max(c.chars().count()).min(CAP);
                    }
                }
            }
            let line = |cells: Vec<String>, out: &mut dyn Write| -> std::io::Result<()> {
                let mut s = String::new();
                for (i, c) in cells.iter().enumerate() {
                    let w = width.get(i).copied().unwrap_or(0);
                    let c: String = if i == last {
                        c.clone()
                    } else {
                        c.chars().take(CAP).collect()
                    };
                    s.push_str(&format!("{c:<w$}  "));
                }
                writeln!(out, "{}", s.trim_end())
            };
            line(head.iter().map(|h| h.to_string()).collect(), out)?;
            for r in rows {
                line(r, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        for (cell, want) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("\t=1", "'\t=1"),
            ("\rx", "'\rx"),
            ("  =1", "'  =1"),
            ("\n@x", "'\n@x"),
            ("\u{a0}+1", "'\u{a0}+1"),
            ("-", "'-"),
        ] {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
        for cell in [
            "",
            "Siemens Healthineers",
            "42",
            "2024-01-31 12:00",
            "a=b",
            "x+1",
            "'=already text",
            "  plain",
        ] {
            assert_eq!(csv_cell(cell), cell, "{cell:?}");
        }
    }
}
