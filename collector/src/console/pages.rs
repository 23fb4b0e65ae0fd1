//! The console's pages. Each is built from a view of [`crate::access::views`] for the session's
//! principal; maud escapes every value where it is written (text and attributes), so strings
//! from the wire (host names, AE titles, User-Agents) and from imported files are only ever
//! text.

use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;
use ward_protocols::Field;

use super::{chart, PageError, Session, CSS_PATH};
use crate::access::tokens::Role;
use crate::access::views::{self, MAX_LIMIT};
use crate::compliance::flags::{FlagKind, Severity};
use crate::store::{DeviceQuery, DeviceSort, FlagQuery, LinkFilter, Store};

/// Devices per page.
pub const PAGE_SIZE: u32 = 50;
/// The device list counts at most this many matching devices when the total is not one of the
/// stored counts (a filter by type, site or search): a broad filter at 100 000 devices shows
/// "more than 10000" rather than counting every one on each page view (docs/console.md).
pub const COUNT_CAP: u64 = 10_000;
/// Flags per page.
pub const FLAG_PAGE_SIZE: u32 = 50;
/// Rows the assets page lists at most.
const ASSET_ROWS: usize = 500;

/// The console's sections, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Devices,
    Flags,
    Contracts,
    Assets,
    Agents,
    PatchSla,
    None,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/", "Overview"),
    (Nav::Devices, "/devices", "Devices"),
    (Nav::Flags, "/flags", "Flags"),
    (Nav::Contracts, "/contracts", "Contracts"),
    (Nav::Assets, "/assets", "Assets"),
    (Nav::Agents, "/agents", "Agents"),
    (Nav::PatchSla, "/patch-sla", "Patch SLA"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — ward" }
            link rel="stylesheet" href=(CSS_PATH);
        }
    }
}

fn layout(s: &Session, title: &str, nav: Nav, body: Markup) -> Markup {
    let vendor = s.principal.role == Role::Vendor;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    span class="brand" { "ward" }
                    nav aria-label="Main" {
                        ul {
                            @for (n, href, label) in NAV {
                                @if !(vendor && *n == Nav::Agents) {
                                    li {
                                        a href=(href) aria-current=[(*n == nav).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form class="signout" method="post" action="/signout" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        span class="who" {
                            (s.principal.name) " (" (role_label(s.principal.role)) ")"
                        }
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn role_label(r: Role) -> &'static str {
    match r {
        Role::Admin => "administrator",
        Role::ClinicalEngineering => "clinical engineering",
        Role::Vendor => "vendor",
    }
}

/// The sign-in page.
pub fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" { span class="brand" { "ward" } }
                main id="main" class="signin" {
                    h1 { "Sign in to ward" }
                    @if let Some(e) = error {
                        p class="error" role="alert" { (e) }
                    }
                    form method="post" action="/signin" {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="off" required
                            aria-describedby="token-help";
                        p id="token-help" class="help" {
                            "The token you were given (" code { "ward-collector token create" }
                            "). It is checked once and not kept in this browser: the session "
                            "cookie is a separate secret that ends when you sign out."
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A page for an error (no session needed).
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Error"))
            body {
                header class="top" { span class="brand" { "ward" } }
                main id="main" {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p { (message) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM` UTC.
pub fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn time_of(v: &Value) -> String {
    v.as_i64().map(time).unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Where a flag's subject is shown.
fn subject_href(subject: &str) -> Option<String> {
    let (kind, id) = subject.split_once(':')?;
    match kind {
        "device" => id.parse::<i64>().ok().map(|n| format!("/devices/{n}")),
        "contract" => Some(format!("/contracts#contract-{}", enc(id))),
        "asset" => Some(format!("/assets{}", query_string(&[("tag", id)]))),
        _ => None,
    }
}

fn stat(label: &str, value: u64, href: Option<String>) -> Markup {
    html! {
        div class="stat" {
            dt { (label) }
            dd {
                @if let Some(h) = href { a href=(h) { (value) } } @else { (value) }
            }
        }
    }
}

/// Overview.
pub fn overview(store: &mut dyn Store, s: &Session) -> Result<Markup, PageError> {
    let p = &s.principal;
    let c = views::coverage(store, p)?;
    let counts = views::open_flag_counts(store, p)?;
    let by_kind: Vec<(FlagKind, u64)> = FlagKind::ALL
        .iter()
        .filter_map(|k| {
            counts
                .iter()
                .find(|(name, _)| name == k.name())
                .map(|(_, n)| (*k, *n))
        })
        .collect();
    let agents = match p.role {
        Role::Vendor => None,
        _ => Some(views::agents(store, p)?),
    };
    let now = crate::ingest::now_us();
    let days = views::flag_timeline(store, p, now - (chart::DAYS - 1) * chart::DAY_US, now)?;
    let body = html! {
        section aria-labelledby="inv" {
            h2 id="inv" { "Inventory" }
            dl class="stats" {
                (stat("Devices", c.devices, Some("/devices".into())))
                (stat("Medical devices", c.medical, None))
                (stat("Medical, in the asset register", c.medical_in_asset_register, None))
                (stat("Medical, under contract", c.medical_under_contract, None))
                (stat("Past end of support", c.end_of_support_passed,
                    Some(format!("/devices?flag={}", FlagKind::EndOfSupportPassed.name()))))
                (stat("Near end of support", c.end_of_support_within,
                    Some(format!("/devices?flag={}", FlagKind::EndOfSupportWithin.name()))))
                (stat("With open flags", c.with_open_flags, None))
            }
        }
        section aria-labelledby="open" {
            h2 id="open" { "Open flags by severity and kind" }
            @if by_kind.is_empty() {
                p { "No open flags." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Severity" } th scope="col" { "Kind" } th scope="col" class="num" { "Open" } } }
                    tbody {
                        @for sev in Severity::ALL {
                            @for (k, n) in by_kind.iter().filter(|(k, _)| k.severity() == *sev) {
                                tr {
                                    td { span class={"sev sev-" (sev.as_str())} { (sev.as_str()) } }
                                    td { a href={"/flags?status=open&kind=" (k.name())} { (k.name()) } }
                                    td class="num" { (n) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(agents) = &agents {
            section aria-labelledby="agents" {
                h2 id="agents" { "Agents" }
                @let online = agents.iter().filter(|a| a.state.as_deref() == Some("online")).count();
                @let num = |a: &crate::store::AgentRow, k: &str| a.stats.as_ref().and_then(|s| s.get(k)).and_then(Value::as_u64).unwrap_or(0);
                dl class="stats" {
                    (stat("Agents", agents.len() as u64, Some("/agents".into())))
                    (stat("Online", online as u64, None))
                    (stat("Ring drops", agents.iter().map(|a| num(a, "ring_drops")).sum(), None))
                    (stat("Queue drops", agents.iter().map(|a| num(a, "queue_drops")).sum(), None))
                    (stat("Messages missing", agents.iter().map(|a| a.missing.max(0) as u64).sum(), None))
                }
            }
        }
        section aria-labelledby="trend" {
            h2 id="trend" { "Flags opened and resolved, last " (chart::DAYS) " days" }
            (chart::flags_chart(&days, now))
        }
    };
    Ok(layout(s, "Overview", Nav::Overview, body))
}

/// `GET /devices` parameters (all text: a form's empty field means "any").
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeviceParams {
    q: Option<String>,
    site: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    manufacturer: Option<String>,
    flag: Option<String>,
    contract: Option<String>,
    asset: Option<String>,
    sort: Option<String>,
    offset: Option<String>,
}

/// The "any linked" and "not linked" choices of the contract and asset filters.
const LINKED: &str = "(any)";
const UNLINKED: &str = "(none)";

fn some(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn link_filter(v: &Option<String>) -> Option<LinkFilter> {
    some(v).map(|v| match v.as_str() {
        LINKED => LinkFilter::Linked,
        UNLINKED => LinkFilter::Unlinked,
        _ => LinkFilter::To(v),
    })
}

const SORTS: &[(&str, &str, DeviceSort)] = &[
    ("", "Id", DeviceSort::Id),
    (
        "manufacturer",
        "Manufacturer, model",
        DeviceSort::Manufacturer,
    ),
    ("type", "Type", DeviceSort::Type),
    ("last_seen", "Last seen", DeviceSort::LastSeen),
    ("flags", "Open flags", DeviceSort::Flags),
];

impl DeviceParams {
    fn get(&self, k: &str) -> String {
        let v = match k {
            "q" => &self.q,
            "site" => &self.site,
            "type" => &self.device_type,
            "manufacturer" => &self.manufacturer,
            "flag" => &self.flag,
            "contract" => &self.contract,
            "asset" => &self.asset,
            "sort" => &self.sort,
            _ => return String::new(),
        };
        some(v).unwrap_or_default()
    }

    fn offset(&self) -> u64 {
        some(&self.offset).and_then(|o| o.parse().ok()).unwrap_or(0)
    }

    /// The store query these parameters select (`limit` devices from `offset`).
    pub fn query(&self, offset: u64, limit: u32) -> Result<DeviceQuery, PageError> {
        let sort = match SORTS.iter().find(|(k, _, _)| *k == self.get("sort")) {
            Some((_, _, s)) => *s,
            None => return Err(PageError::bad_request("Unknown sort order.")),
        };
        Ok(DeviceQuery {
            site: some(&self.site),
            device_type: some(&self.device_type),
            manufacturer: some(&self.manufacturer),
            flag: some(&self.flag),
            search: some(&self.q),
            contract: link_filter(&self.contract),
            asset: link_filter(&self.asset),
            sort,
            vendors: None,
            limit,
            offset,
            count_cap: None,
        })
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            "q",
            "site",
            "type",
            "manufacturer",
            "flag",
            "contract",
            "asset",
            "sort",
        ]
        .into_iter()
        .map(|k| (k, self.get(k)))
        .collect()
    }

    fn href(&self, base: &str, offset: Option<u64>) -> String {
        let mut pairs = self.pairs();
        let o = offset.map(|o| o.to_string()).unwrap_or_default();
        if offset.is_some_and(|o| o > 0) {
            pairs.push(("offset", o));
        }
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        format!("{base}{}", query_string(&borrowed))
    }
}

fn text_filter(id: &str, label: &str, value: &str, help: Option<&str>) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            input id=(id) name=(id) type="search" value=(value);
            @if let Some(h) = help { small { (h) } }
        }
    }
}

fn link_select(id: &str, label: &str, value: &str, linked: &str, unlinked: &str) -> Markup {
    let custom = !value.is_empty() && value != LINKED && value != UNLINKED;
    html! {
        div class="field" {
            label for=(id) { (label) }
            select id=(id) name=(id) {
                option value="" selected[value.is_empty()] { "Any" }
                option value=(LINKED) selected[value == LINKED] { (linked) }
                option value=(UNLINKED) selected[value == UNLINKED] { (unlinked) }
                @if custom { option value=(value) selected { (value) } }
            }
        }
    }
}

/// Devices: search, filters, sort, paging, CSV export of the same view.
pub fn devices(
    store: &mut dyn Store,
    s: &Session,
    params: &DeviceParams,
) -> Result<Markup, PageError> {
    let offset = params.offset();
    let mut q = params.query(offset, PAGE_SIZE)?;
    q.count_cap = Some(COUNT_CAP);
    let page = views::devices(store, &s.principal, q)?;
    // Above the cap the total is "more than" it; the next page exists while pages are full.
    let capped = page.total == u64::MAX;
    let known_total = match (capped, page.items.len() == PAGE_SIZE as usize) {
        (true, true) => u64::MAX,
        (true, false) => offset.saturating_add(page.items.len() as u64),
        (false, _) => page.total,
    };
    let (first, last) = (
        if page.items.is_empty() { 0 } else { offset + 1 },
        offset + page.items.len() as u64,
    );
    let flag = params.get("flag");
    let sort = params.get("sort");
    let body = html! {
        form class="filters" method="get" action="/devices" role="search" aria-label="Devices" {
            (text_filter("q", "Search", &params.get("q"), Some("MAC, IP, host name or serial (starts with); model or manufacturer (contains)")))
            (text_filter("site", "Site", &params.get("site"), None))
            (text_filter("type", "Type", &params.get("type"), None))
            (text_filter("manufacturer", "Manufacturer", &params.get("manufacturer"), None))
            div class="field" {
                label for="flag" { "Open flag" }
                select id="flag" name="flag" {
                    option value="" selected[flag.is_empty()] { "Any" }
                    @for k in FlagKind::ALL {
                        option value=(k.name()) selected[flag == k.name()] { (k.name()) }
                    }
                }
            }
            (link_select("contract", "Contract", &params.get("contract"), "Under a contract", "No contract"))
            (link_select("asset", "Asset register", &params.get("asset"), "In the register", "Not in the register"))
            div class="field" {
                label for="sort" { "Sort by" }
                select id="sort" name="sort" {
                    @for (k, label, _) in SORTS {
                        option value=(k) selected[sort == *k] { (label) }
                    }
                }
            }
            div class="actions" {
                button type="submit" { "Apply" }
                a href="/devices" { "Clear" }
            }
        }
        p class="summary" aria-live="polite" {
            "Devices " (first) "–" (last) " of "
            @if capped { "more than " (COUNT_CAP) } @else { (page.total) }
            ". "
            a href=(params.href("/devices.csv", None)) download { "Export this view as CSV" }
        }
        div class="scroll" {
            table {
                caption class="visually-hidden" { "Devices" }
                thead {
                    tr {
                        th scope="col" { "Id" }
                        th scope="col" { "MAC" }
                        th scope="col" { "IP" }
                        th scope="col" { "Manufacturer" }
                        th scope="col" { "Model" }
                        th scope="col" { "Type" }
                        th scope="col" { "Software" }
                        th scope="col" { "Sites" }
                        th scope="col" { "Last seen" }
                        th scope="col" { "Asset" }
                        th scope="col" { "Contract" }
                        th scope="col" class="num" { "Open flags" }
                    }
                }
                tbody {
                    @for d in &page.items {
                        tr {
                            td { a href={"/devices/" (d.id)} { (d.id) } }
                            td class="mono" { (d.macs.join(" ")) }
                            td class="mono" { (d.ips.join(" ")) }
                            td { (d.manufacturer.as_deref().unwrap_or("")) }
                            td { (d.model.as_deref().unwrap_or("")) }
                            td { (d.device_type) }
                            td { (d.software_version.as_deref().unwrap_or("")) }
                            td { (d.sites.join(", ")) }
                            td { (time(d.last_us)) }
                            td { (d.asset.as_ref().map(|a| a.target.as_str()).unwrap_or("")) }
                            td { (d.contract.as_ref().map(|a| a.target.as_str()).unwrap_or("")) }
                            td class="num" {
                                @if d.open_flags > 0 {
                                    a href={"/flags?status=open&subject=device:" (d.id)} { (d.open_flags) }
                                } @else { "0" }
                            }
                        }
                    }
                }
            }
        }
        (pager(offset, PAGE_SIZE, known_total, |o| params.href("/devices", Some(o))))
    };
    Ok(layout(s, "Devices", Nav::Devices, body))
}

fn pager(offset: u64, size: u32, total: u64, href: impl Fn(u64) -> String) -> Markup {
    let size = u64::from(size);
    html! {
        nav class="pager" aria-label="Pages" {
            @if offset > 0 {
                a rel="prev" href=(href(offset.saturating_sub(size))) { "← Previous" }
            }
            @if offset.saturating_add(size) < total {
                a rel="next" href=(href(offset.saturating_add(size))) { "Next →" }
            }
        }
    }
}

fn json_block(v: &Value) -> Markup {
    html! { pre class="evidence" { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// Where a fact came from: the protocol of its field, else how the agent or the collector
/// derived it.
fn source_of(attribute: &str) -> &'static str {
    match Field::from_name(attribute) {
        Some(f) => f.protocol().name(),
        None => match attribute {
            "device_type" | "manufacturer" | "model" => "agent rules",
            "oui_vendor" => "IEEE OUI registry",
            "mac_kind" => "MAC address",
            "role" => "agent (behaviour)",
            "software_version" => "derived from the facts",
            _ => "collector",
        },
    }
}

fn flag_rows(flags: &[Value], with_subject: bool) -> Markup {
    html! {
        table {
            thead {
                tr {
                    th scope="col" { "Severity" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Status" }
                    @if with_subject { th scope="col" { "Subject" } }
                    th scope="col" { "Summary and evidence" }
                    th scope="col" { "Opened" }
                    th scope="col" { "Resolved" }
                }
            }
            tbody {
                @for f in flags {
                    @let sev = text(&f["severity"]);
                    @let subject = text(&f["subject"]);
                    tr {
                        td { span class={"sev sev-" (sev)} { (sev) } }
                        td { (text(&f["kind"])) }
                        td { (text(&f["status"])) }
                        @if with_subject {
                            td {
                                @if let Some(h) = subject_href(&subject) { a href=(h) { (subject) } }
                                @else { (subject) }
                            }
                        }
                        td {
                            (text(&f["summary"]))
                            details { summary { "Evidence" } (json_block(&f["evidence"])) }
                        }
                        td { (time_of(&f["opened_us"])) }
                        td { (time_of(&f["resolved_us"])) }
                    }
                }
            }
        }
    }
}

/// One device: identity facts with their evidence, classification, software timeline,
/// services and peers (as the view gives them: none for a vendor), links, flags, merges.
pub fn device(store: &mut dyn Store, s: &Session, id: i64) -> Result<Markup, PageError> {
    let p = &s.principal;
    let v = views::device(store, p, id)?;
    let merges = views::device_merges(store, p, id)?;
    let sum = &v["summary"];
    let d = &v["device"];
    let empty = serde_json::Map::new();
    let attrs = d["attributes"].as_object().unwrap_or(&empty);
    let identities = d["identities"].as_object().unwrap_or(&empty);
    let classification = [
        "device_type",
        "manufacturer",
        "model",
        "oui_vendor",
        "mac_kind",
        "role",
    ];
    let what = format!("{} {}", text(&sum["manufacturer"]), text(&sum["model"]));
    let title = match what.trim() {
        "" => format!("Device {id}"),
        w => format!("Device {id}: {w}"),
    };
    let services = d["services"].as_array().cloned().unwrap_or_default();
    let show_peers = services.iter().any(|s| s.get("peer_addresses").is_some());
    let body = html! {
        dl class="facts" {
            dt { "Type" } dd { (text(&sum["device_type"])) }
            dt { "Manufacturer" } dd { (text(&sum["manufacturer"])) }
            dt { "Model" } dd { (text(&sum["model"])) }
            dt { "Software" } dd { (text(&sum["software_version"])) }
            dt { "MAC" } dd class="mono" { (join(&sum["macs"])) }
            dt { "IP" } dd class="mono" { (join(&sum["ips"])) }
            dt { "Sites" } dd { (join(&sum["sites"])) }
            dt { "First seen" } dd { (time_of(&sum["first_us"])) }
            dt { "Last seen" } dd { (time_of(&sum["last_us"])) }
            dt { "Medical" } dd { @if sum["medical"] == Value::Bool(true) { "yes" } @else { "no" } }
        }
        section aria-labelledby="ids" {
            h2 id="ids" { "Identities" }
            table {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "Values" } } }
                tbody {
                    @for (k, vals) in identities {
                        tr { th scope="row" { (k) } td class="mono" { (join(vals)) } }
                    }
                }
            }
        }
        section aria-labelledby="class" {
            h2 id="class" { "Classification" }
            p class="help" {
                "What the agents' rules concluded and the device's behavioural roles, with when "
                "and by which agent each was reported; then the agent's latest classification: "
                "each rule that matched with the evidence it matched, and, where the evidence "
                "disagreed, every candidate with its score."
            }
            (attribute_table(attrs, |n| classification.contains(&n)))
            (classification_detail(&d["classification"]))
        }
        section aria-labelledby="facts" {
            h2 id="facts" { "Identity facts and their evidence" }
            (attribute_table(attrs, |n| !classification.contains(&n) && n != "software_version"))
        }
        section aria-labelledby="sw" {
            h2 id="sw" { "Software versions over time" }
            (attribute_table(attrs, |n| n == "software_version"))
        }
        section aria-labelledby="seen" {
            h2 id="seen" { "Where it was seen" }
            table {
                thead { tr { th scope="col" { "Site" } th scope="col" { "Agent" } th scope="col" { "VLAN" } th scope="col" { "First seen" } th scope="col" { "Last seen" } } }
                tbody {
                    @for g in d["sightings"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&g["site"])) }
                            td { (text(&g["agent_id"])) }
                            td { (text(&g["vlan"])) }
                            td { (time_of(&g["first_us"])) }
                            td { (time_of(&g["last_us"])) }
                        }
                    }
                }
            }
        }
        @if p.role != Role::Vendor {
            section aria-labelledby="svc" {
                h2 id="svc" { "Services and peers" }
                @if services.is_empty() { p { "None seen." } } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "Direction" } th scope="col" { "Transport" }
                            th scope="col" class="num" { "Port" } th scope="col" { "Protocol" }
                            th scope="col" class="num" { "Peers" }
                            @if show_peers { th scope="col" { "Peer addresses" } }
                            th scope="col" { "First seen" } th scope="col" { "Last seen" }
                        }
                    }
                    tbody {
                        @for sv in &services {
                            tr {
                                td { (text(&sv["direction"])) }
                                td { (text(&sv["transport"])) }
                                td class="num" { (text(&sv["port"])) }
                                td { (text(&sv["app"])) }
                                td class="num" { (text(&sv["peers"])) }
                                @if show_peers { td class="mono" { (join(&sv["peer_addresses"])) } }
                                td { (time_of(&sv["first_us"])) }
                                td { (time_of(&sv["last_us"])) }
                            }
                        }
                    }
                }
                }
            }
        }
        section aria-labelledby="links" {
            h2 id="links" { "Asset and contract links" }
            @if v["links"].as_array().is_none_or(Vec::is_empty) {
                p { "Not linked to an asset or a contract." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Target" } th scope="col" { "Method" } th scope="col" class="num" { "Confidence" } } }
                    tbody {
                        @for l in v["links"].as_array().into_iter().flatten() {
                            @let kind = text(&l["kind"]);
                            @let target = text(&l["target"]);
                            tr {
                                td { (kind) }
                                td {
                                    @if kind == "contract" {
                                        a href={"/contracts#contract-" (enc(&target))} { (target) }
                                    } @else {
                                        a href={"/assets?tag=" (enc(&target))} { (target) }
                                    }
                                }
                                td { (text(&l["method"])) }
                                td class="num" { (l["confidence"].as_f64().map(|c| format!("{c:.2}")).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="flags" {
            h2 id="flags" { "Flags" }
            @let flags = v["flags"].as_array().cloned().unwrap_or_default();
            @if flags.is_empty() { p { "No flags." } } @else { (flag_rows(&flags, false)) }
        }
        section aria-labelledby="merges" {
            h2 id="merges" { "Merges" }
            @if merges.is_empty() {
                p { "This device's record was never merged with another." }
            } @else {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Absorbed" } th scope="col" { "On" } th scope="col" { "Why" } } }
                    tbody {
                        @for m in &merges {
                            tr {
                                td { (time(m.at_us)) }
                                td { "device " (m.absorbed) }
                                td { (m.identity_kind) " " span class="mono" { (m.identity_value) } }
                                td { (m.explanation) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(s, &title, Nav::None, body))
}

/// The agent's latest classification of a device: why it won (when the evidence disagreed),
/// the candidates with their scores, and the rules that matched with their evidence (a vendor's
/// view has only the matches on fields it may see).
fn classification_detail(c: &Value) -> Markup {
    let empty = Vec::new();
    let candidates = c["candidates"].as_array().unwrap_or(&empty);
    let matches = c["matches"].as_array().unwrap_or(&empty);
    html! {
        @if let Some(why) = c["explanation"].as_str() {
            p { strong { "Why: " } (why) }
        }
        @if !candidates.is_empty() {
            table {
                caption { "Candidates (the evidence disagreed)" }
                thead {
                    tr {
                        th scope="col" { "Attribute" } th scope="col" { "Value" }
                        th scope="col" { "Score" } th scope="col" { "Rules" } th scope="col" { "Chosen" }
                    }
                }
                tbody {
                    @for k in candidates {
                        tr {
                            th scope="row" { (text(&k["attribute"])) }
                            td { (text(&k["value"])) }
                            td { (format!("{:.2}", k["score"].as_f64().unwrap_or(0.0))) }
                            td { (join(&k["rules"])) }
                            td { @if k["chosen"] == Value::Bool(true) { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
        @if !matches.is_empty() {
            table {
                caption { "Rules that matched, strongest first" }
                thead {
                    tr {
                        th scope="col" { "Rule" } th scope="col" { "File" }
                        th scope="col" { "Field" } th scope="col" { "Value" }
                    }
                }
                tbody {
                    @for m in matches {
                        tr {
                            th scope="row" class="mono" { (text(&m["rule"])) }
                            td { (text(&m["source"])) }
                            td class="mono" { (text(&m["field"])) }
                            td { (text(&m["value"])) }
                        }
                    }
                }
            }
        }
    }
}

fn attribute_table(attrs: &serde_json::Map<String, Value>, keep: impl Fn(&str) -> bool) -> Markup {
    let rows: Vec<(&String, &Value)> = attrs
        .iter()
        .filter(|(k, _)| keep(k))
        .flat_map(|(k, vals)| vals.as_array().into_iter().flatten().map(move |v| (k, v)))
        .collect();
    html! {
        @if rows.is_empty() {
            p { "None reported." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Fact" } th scope="col" { "Value" } th scope="col" { "Source" }
                        th scope="col" { "First seen" } th scope="col" { "Last seen" } th scope="col" { "Agent" }
                    }
                }
                tbody {
                    @for (k, a) in rows {
                        tr {
                            th scope="row" { (k) }
                            td { (text(&a["value"])) }
                            td { (source_of(k)) }
                            td { (time_of(&a["first_us"])) }
                            td { (time_of(&a["last_us"])) }
                            td { (text(&a["agent_id"])) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /flags` parameters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FlagParams {
    status: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    subject: Option<String>,
    site: Option<String>,
    contract: Option<String>,
    offset: Option<String>,
}

/// Flags: open/resolved, by kind, severity and subject (a device or a contract).
pub fn flags(store: &mut dyn Store, s: &Session, q: &FlagParams) -> Result<Markup, PageError> {
    let status = some(&q.status).unwrap_or_else(|| "open".into());
    let status_filter = match status.as_str() {
        "open" | "resolved" => Some(status.clone()),
        "all" => None,
        _ => return Err(PageError::bad_request("Status is open, resolved or all.")),
    };
    let offset = some(&q.offset).and_then(|o| o.parse().ok()).unwrap_or(0u64);
    let (kind, severity, subject, site, contract) = (
        some(&q.kind).unwrap_or_default(),
        some(&q.severity).unwrap_or_default(),
        some(&q.subject).unwrap_or_default(),
        some(&q.site).unwrap_or_default(),
        some(&q.contract).unwrap_or_default(),
    );
    let page = views::flags(
        store,
        &s.principal,
        FlagQuery {
            status: status_filter,
            kind: some(&q.kind),
            severity: some(&q.severity),
            subject: some(&q.subject),
            site: some(&q.site),
            contract: some(&q.contract),
            vendors: None,
            limit: FLAG_PAGE_SIZE,
            offset,
        },
    )?;
    let href = |o: u64| {
        let o = o.to_string();
        format!(
            "/flags{}",
            query_string(&[
                ("status", &status),
                ("kind", &kind),
                ("severity", &severity),
                ("subject", &subject),
                ("site", &site),
                ("contract", &contract),
                ("offset", if o == "0" { "" } else { &o }),
            ])
        )
    };
    let body = html! {
        form class="filters" method="get" action="/flags" aria-label="Flags" {
            div class="field" {
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for st in ["open", "resolved", "all"] {
                        option value=(st) selected[status == st] { (st) }
                    }
                }
            }
            div class="field" {
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" selected[kind.is_empty()] { "Any" }
                    @for k in FlagKind::ALL {
                        option value=(k.name()) selected[kind == k.name()] { (k.name()) }
                    }
                }
            }
            div class="field" {
                label for="severity" { "Severity" }
                select id="severity" name="severity" {
                    option value="" selected[severity.is_empty()] { "Any" }
                    @for sv in Severity::ALL {
                        option value=(sv.as_str()) selected[severity == sv.as_str()] { (sv.as_str()) }
                    }
                }
            }
            (text_filter("site", "Site", &site, None))
            (text_filter("contract", "Contract", &contract, Some("its flags and its devices'")))
            (text_filter("subject", "Subject", &subject, Some("device:<id>, contract:<id> or asset:<tag>")))
            div class="actions" {
                button type="submit" { "Apply" }
                a href="/flags" { "Clear" }
            }
        }
        p class="summary" aria-live="polite" { (page.total) " flags." }
        div class="scroll" { (flag_rows(&page.items, true)) }
        (pager(offset, FLAG_PAGE_SIZE, page.total, href))
    };
    Ok(layout(s, "Flags", Nav::Flags, body))
}

/// Contracts: terms, covered devices (used vs contracted), flags.
pub fn contracts(store: &mut dyn Store, s: &Session) -> Result<Markup, PageError> {
    let p = &s.principal;
    let list = views::contracts(store, p)?;
    let mut rows = Vec::new();
    for c in &list {
        let covered = views::devices(
            store,
            p,
            DeviceQuery {
                contract: Some(LinkFilter::To(c.id.clone())),
                limit: 1,
                ..DeviceQuery::default()
            },
        )?
        .total;
        let open = views::flags(
            store,
            p,
            FlagQuery {
                status: Some("open".into()),
                subject: Some(format!("contract:{}", c.id)),
                limit: 1,
                ..FlagQuery::default()
            },
        )?
        .total;
        rows.push((c, covered, open));
    }
    let date = |d: &Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let body = html! {
        @if rows.is_empty() { p { "No contracts." } }
        @for (c, covered, open) in &rows {
            section class="card" id={"contract-" (enc(&c.id))} aria-labelledby={"h-" (enc(&c.id))} {
                h2 id={"h-" (enc(&c.id))} { (c.id) " — " (c.supplier) }
                dl class="facts" {
                    dt { "Products" }
                    dd {
                        (c.products.iter().map(|pp| format!("{} {}", pp.manufacturer.as_deref().unwrap_or(""), pp.model).trim().to_string()).collect::<Vec<_>>().join(", "))
                    }
                    @if !c.serials.is_empty() { dt { "Serials" } dd class="mono" { (c.serials.join(", ")) } }
                    dt { "Devices covered" }
                    dd {
                        a href={"/devices?contract=" (enc(&c.id))} { (covered) }
                        @if let Some(q) = c.quantity { " of " (q) " contracted" @if u64::from(q) < *covered { " — " strong { "over the contracted quantity" } } }
                    }
                    dt { "Term" } dd { (date(&c.start)) " – " (date(&c.end)) }
                    dt { "End of support" } dd { (date(&c.end_of_support)) }
                    @if c.end_of_life.is_some() { dt { "End of life" } dd { (date(&c.end_of_life)) } }
                    @if !c.supported_software_versions.is_empty() {
                        dt { "Supported software" } dd { (c.supported_software_versions.join(", ")) }
                    }
                    dt { "Patch SLA (days)" } dd { (serde_json::to_string(&c.patch_sla_days).unwrap_or_default()) }
                    dt { "Encryption in transit required" } dd { @if c.encryption_in_transit_required { "yes" } @else { "no" } }
                    dt { "External communication permitted" } dd { @if c.external_communication_permitted { "yes" } @else { "no" } }
                    dt { "Permitted services" } dd { (c.permitted_services.len()) }
                    dt { "Open flags" }
                    dd {
                        a href={"/flags?status=open&subject=contract:" (enc(&c.id))} { (open) " on the contract" }
                        ", "
                        a href={"/flags?status=open&contract=" (enc(&c.id))} { "with its devices'" }
                    }
                    @if let Some(n) = &c.notes { dt { "Notes" } dd { (n) } }
                }
            }
        }
    };
    Ok(layout(s, "Contracts", Nav::Contracts, body))
}

/// Assets: the CMMS reconciliation — assets never seen (their `asset_not_seen` flags), devices
/// not in the register, linked devices whose manufacturer or model differ from the register's.
pub fn assets(store: &mut dyn Store, s: &Session) -> Result<Markup, PageError> {
    let p = &s.principal;
    let assets = views::assets(store, p)?;
    let flags_of = |store: &dyn Store, kind: FlagKind| {
        views::flags(
            store,
            p,
            FlagQuery {
                status: Some("open".into()),
                kind: Some(kind.name().into()),
                limit: MAX_LIMIT,
                ..FlagQuery::default()
            },
        )
    };
    let not_seen = flags_of(store, FlagKind::AssetNotSeen)?;
    let not_in_register = views::devices(
        store,
        p,
        DeviceQuery {
            asset: Some(LinkFilter::Unlinked),
            limit: 1,
            ..DeviceQuery::default()
        },
    )?
    .total;
    // Tag → the device linked to it (the last by id, when several are): one narrow index
    // read, not the linked devices' summaries page by page.
    let mut linked = std::collections::HashMap::new();
    for l in views::asset_links(store, p)? {
        linked.insert(l.tag.clone(), l);
    }
    let differs = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => !a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    };
    let mismatched: Vec<_> = assets
        .iter()
        .filter_map(|a| linked.get(&a.tag).map(|d| (a, d)))
        .filter(|(a, d)| {
            differs(a.model.as_deref(), d.model.as_deref())
                || differs(a.manufacturer.as_deref(), d.manufacturer.as_deref())
        })
        .collect();
    let body = html! {
        dl class="stats" {
            (stat("Assets in the register", assets.len() as u64, None))
            (stat("Linked to a seen device", linked.len() as u64, None))
            (stat("Never seen on the network", not_seen.total, Some("/flags?status=open&kind=asset_not_seen".into())))
            (stat("Devices not in the register", not_in_register, Some(format!("/devices?asset={}", enc(UNLINKED)))))
            (stat("Model or manufacturer differs", mismatched.len() as u64, None))
        }
        section aria-labelledby="mismatch" {
            h2 id="mismatch" { "Register and network disagree" }
            @if mismatched.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "Asset" } th scope="col" { "Register says" } th scope="col" { "Network says" } th scope="col" { "Device" } } }
                    tbody {
                        @for (a, d) in &mismatched {
                            tr {
                                td { (a.tag) }
                                td { (a.manufacturer.as_deref().unwrap_or("")) " " (a.model.as_deref().unwrap_or("")) }
                                td { (d.manufacturer.as_deref().unwrap_or("")) " " (d.model.as_deref().unwrap_or("")) }
                                td { a href={"/devices/" (d.device_id)} { (d.device_id) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="never" {
            h2 id="never" { "Assets never seen" }
            @if not_seen.items.is_empty() { p { "None." } } @else { (flag_rows(&not_seen.items, true)) }
        }
        section aria-labelledby="register" {
            h2 id="register" { "Register" }
            @if assets.len() > ASSET_ROWS { p { "The first " (ASSET_ROWS) " of " (assets.len()) " assets." } }
            div class="scroll" {
                table {
                    thead {
                        tr {
                            th scope="col" { "Tag" } th scope="col" { "Manufacturer" } th scope="col" { "Model" }
                            th scope="col" { "Serial" } th scope="col" { "MAC" } th scope="col" { "Location" }
                            th scope="col" { "Contract" } th scope="col" { "Seen as" }
                        }
                    }
                    tbody {
                        @for a in assets.iter().take(ASSET_ROWS) {
                            tr id={"asset-" (enc(&a.tag))} {
                                th scope="row" { (a.tag) }
                                td { (a.manufacturer.as_deref().unwrap_or("")) }
                                td { (a.model.as_deref().unwrap_or("")) }
                                td class="mono" { (a.serial.as_deref().unwrap_or("")) }
                                td class="mono" { (a.mac.map(|m| m.to_string()).unwrap_or_default()) }
                                td { (a.location.as_deref().unwrap_or("")) }
                                td { (a.contract_id.as_deref().unwrap_or("")) }
                                td {
                                    @if let Some(d) = linked.get(&a.tag) { a href={"/devices/" (d.device_id)} { "device " (d.device_id) } }
                                    @else { "not seen" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(s, "Assets", Nav::Assets, body))
}

/// Agents: state, packets, drops, spool depth (not for vendors: the view refuses).
pub fn agents(store: &mut dyn Store, s: &Session) -> Result<Markup, PageError> {
    let list = views::agents(store, &s.principal)?;
    let num = |a: &crate::store::AgentRow, k: &str| {
        a.stats
            .as_ref()
            .and_then(|s| s.get(k))
            .and_then(Value::as_u64)
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let body = html! {
        @if list.is_empty() { p { "No agent has reported yet." } } @else {
            div class="scroll" {
                table {
                    thead {
                        tr {
                            th scope="col" { "Site" } th scope="col" { "Agent" } th scope="col" { "State" }
                            th scope="col" { "Version" } th scope="col" { "Last status" }
                            th scope="col" class="num" { "Packets" } th scope="col" class="num" { "Ring drops" }
                            th scope="col" class="num" { "Queue drops" } th scope="col" class="num" { "Spool depth" }
                            th scope="col" class="num" { "Messages" } th scope="col" class="num" { "Missing" }
                        }
                    }
                    tbody {
                        @for a in &list {
                            tr {
                                td { (a.site) }
                                td { (a.agent_id) }
                                td { (a.state.as_deref().unwrap_or("")) @if let Some(r) = &a.reason { " (" (r) ")" } }
                                td { (a.version.as_deref().unwrap_or("")) }
                                td { (a.status_time.as_deref().unwrap_or("")) }
                                td class="num" { (num(a, "packets")) }
                                td class="num" { (num(a, "ring_drops")) }
                                td class="num" { (num(a, "queue_drops")) }
                                td class="num" { (num(a, "spool_depth")) }
                                td class="num" { (a.messages) }
                                td class="num" { (a.missing) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(s, "Agents", Nav::Agents, body))
}

/// Patch SLA and advisories (the `/api/v1/patch-sla` view).
pub fn patch_sla(store: &mut dyn Store, s: &Session) -> Result<Markup, PageError> {
    let rows = views::patch_sla(store, &s.principal)?;
    let body = html! {
        p class="help" {
            "Per supplier and contract: the advisories that touch the devices it covers, how many "
            "device × advisory pairs are still affected, patched (and within the contract's SLA), "
            "overdue, or without a vendor fix."
        }
        @if rows.is_empty() { p { "No advisory matches a device." } } @else {
            div class="scroll" {
                table {
                    thead {
                        tr {
                            th scope="col" { "Supplier" } th scope="col" { "Contract" } th scope="col" { "Advisories" }
                            th scope="col" class="num" { "Devices" } th scope="col" class="num" { "Still affected" }
                            th scope="col" class="num" { "Patched" } th scope="col" class="num" { "Within SLA" }
                            th scope="col" class="num" { "Overdue" } th scope="col" class="num" { "No fix" }
                            th scope="col" class="num" { "Vendor fix overdue" } th scope="col" class="num" { "Median days fix → patch" }
                        }
                    }
                    tbody {
                        @for r in &rows {
                            tr {
                                td { (r.supplier) }
                                td {
                                    @if let Some(c) = &r.contract_id { a href={"/contracts#contract-" (enc(c))} { (c) } }
                                    @else { "(none)" }
                                }
                                td { (r.advisory_ids.join(", ")) }
                                td class="num" { (r.devices_affected) }
                                td class="num" { (r.still_affected) }
                                td class="num" { (r.patched) }
                                td class="num" { (r.patched_within_sla) }
                                td class="num" { (r.overdue) }
                                td class="num" { (r.no_fix_available) }
                                td class="num" { (r.vendor_fix_overdue) }
                                td class="num" { (r.median_days_fix_to_patch.map_or("n/a".into(), |d| format!("{d}"))) }
                            }
                        }
                    }
                }
            }
            p { a href={"/flags?status=open&kind=" (FlagKind::VulnerableSoftware.name())} { "Open advisory flags, with their evidence" } }
        }
    };
    Ok(layout(s, "Patch SLA and advisories", Nav::PatchSla, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(enc("a b&c=<d>"), "a%20b%26c%3D%3Cd%3E");
        assert_eq!(
            query_string(&[("q", "x y"), ("site", ""), ("sort", "type")]),
            "?q=x%20y&sort=type"
        );
        assert_eq!(subject_href("device:12").as_deref(), Some("/devices/12"));
        assert_eq!(subject_href("device:1 or 1").as_deref(), None);
        assert_eq!(
            subject_href("contract:C 1").as_deref(),
            Some("/contracts#contract-C%201")
        );
    }

    #[test]
    fn markup_from_the_wire_is_text() {
        let s = Session {
            principal: crate::access::tokens::Principal::local_admin(),
            csrf: "\"><script>alert(2)</script>".into(),
        };
        let page = layout(
            &s,
            "<script>alert(1)</script>",
            Nav::None,
            html! { p { ("<img src=x onerror=alert(3)>") } },
        )
        .into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("value=\"&quot;&gt;&lt;script&gt;"), "{page}");
    }
}
