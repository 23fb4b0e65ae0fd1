//! The web console (issue 21) over a real running collector whose inventory comes from the real
//! agent reading the fixture captures, the sample site and a capture whose DHCP host name is
//! `<script>alert(1)</script>` (tests/fixtures/dhcp-hostile.pcap, recorded from ISC dhclient).
//!
//! Two parts:
//! - over raw HTTP: the sign-in's CSRF checks, the cookie's attributes, the security headers of
//!   every page, a revoked token ending its session, sign-out, the session stored only as a
//!   hash;
//! - in Debian's Chromium driven by playwright-core (`tests/console/console.mjs`): sign in as an
//!   administrator, a clinical engineer and a vendor, walk every page, filter, open a device,
//!   export CSV, sign out; no dialog, no script element, no CSP violation. Every page's HTML and
//!   the CSV it saved are then scanned here for the patient canaries, and the vendor's for
//!   every string of another vendor's device, every peer address and every AE title.
//!
//! Screenshots and page HTML are kept under `target/tmp/console/` (docs/console.md shows them).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const HOSTILE: &str = "<script>alert(1)</script>";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agent_jsonl(dir: &Path, name: &str, site: &str, captures: &[PathBuf]) -> PathBuf {
    let jsonl = dir.join(format!("{name}.jsonl"));
    let out = Command::new(agent_bin())
        .arg("read")
        .args(captures)
        .args(["--output", &format!("jsonl:{}", jsonl.display())])
        .args(["--site", site, "--agent-id", name])
        .arg("--spool-dir")
        .arg(dir.join(format!("spool-{name}")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_file_clean("the agent's JSON lines", &jsonl);
    jsonl
}

fn build_inventory(dir: &Path, db: &Path) {
    let fixtures: Vec<PathBuf> = [
        "dicom-dcmtk.pcap",
        "dicom-pynetdicom.pcap",
        "hl7-mllp.pcap",
        "hl7-mllp-vlan.pcap",
        "dhcp.pcap",
        "dhcp-hostile.pcap",
    ]
    .iter()
    .map(|f| fixtures().join(f))
    .collect();
    let a = agent_jsonl(dir, "span-1", "test", &fixtures);
    let b = agent_jsonl(dir, "demo-span-1", "demo", &[sample_site()]);
    cli_json(db, &["ingest", a.to_str().unwrap(), b.to_str().unwrap()]);
    let contracts = dir.join("contracts.yaml");
    std::fs::write(
        &contracts,
        "contracts:\n\
         - id: C-CT\n  supplier: WARD TEST MEDICAL\n  products: [\"WardScan *\"]\n  end_of_support: 2020-01-01\n  encryption_in_transit_required: true\n  patch_sla_days: {critical: 30}\n\
         - id: C-MR\n  supplier: WARD PY MEDICAL\n  products: [\"PyMR*\"]\n  end_of_support: 2020-01-01\n  patch_sla_days: {critical: 30}\n",
    )
    .unwrap();
    cli_json(db, &["contracts", "import", contracts.to_str().unwrap()]);
    let sample = std::fs::read_to_string(workspace().join("examples/contracts.yaml"))
        .unwrap()
        .replace("{{EOS_SOON}}", "2099-01-01");
    let sample_contracts = dir.join("sample-contracts.yaml");
    std::fs::write(&sample_contracts, sample).unwrap();
    cli_json(
        db,
        &["contracts", "import", sample_contracts.to_str().unwrap()],
    );
    let assets = dir.join("assets.csv");
    std::fs::write(
        &assets,
        "Asset Tag,Manufacturer,Model,MAC Address,Contract\n\
         A-CT,WARD TEST MEDICAL,WardScan 64,02:57:41:52:44:0a,C-CT\n\
         A-MR,WARD PY MEDICAL,PyMR 3T,02:57:41:52:44:0b,C-MR\n",
    )
    .unwrap();
    cli_json(db, &["assets", "import", assets.to_str().unwrap()]);
    let examples = workspace().join("examples");
    cli_json(
        db,
        &[
            "advisories",
            "import",
            examples.join("advisories").to_str().unwrap(),
        ],
    );
    cli_json(
        db,
        &[
            "kev",
            "import",
            examples.join("kev-example.json").to_str().unwrap(),
        ],
    );
}

/// A response over a raw socket: status, header lines (lowercased names), body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().into_iter().find_map(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Every header but the fixed `Referrer-Policy: no-referrer`, whose "referrer" is also the
    // name of a fixture's canary (a referring physician), and the whole body.
    let scanned: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("referrer-policy:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_clean(
        &format!("console response head to {method} {path}"),
        &scanned,
    );
    assert_clean(&format!("console response to {method} {path}"), body);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

fn form_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in over HTTP the way a browser does; returns the session cookie's value.
fn sign_in(port: u16, token: &str) -> String {
    let page = request(port, "GET", "/signin", &[], "");
    assert_eq!(page.status, 200);
    let csrf = page.cookie("ward_signin").expect("sign-in cookie");
    let r = request(
        port,
        "POST",
        "/signin",
        &[
            ("Cookie", &format!("ward_signin={csrf}")),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &format!("token={}&csrf={csrf}", form_value(token)),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/"));
    r.cookie("ward_session").expect("session cookie")
}

fn session_csrf(port: u16, session: &str) -> String {
    let r = request(
        port,
        "GET",
        "/",
        &[("Cookie", &format!("ward_session={session}"))],
        "",
    );
    assert_eq!(r.status, 200);
    let at = r.body.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    r.body[at..at + 64].to_string()
}

const PAGES: &[&str] = &[
    "/",
    "/devices",
    "/devices?q=02%3A57&sort=flags&contract=%28none%29",
    "/devices.csv",
    "/flags?status=all",
    "/contracts",
    "/assets",
    "/agents",
    "/patch-sla",
    "/static/console.css",
    "/nowhere",
];

fn assert_security_headers(r: &Resp, what: &str) {
    let csp = r.header("content-security-policy").unwrap_or("");
    for want in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(want), "{what}: CSP {csp:?} lacks {want}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    if !what.ends_with(".css") {
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    }
}

#[test]
fn sessions_csrf_and_headers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    build_inventory(d, &db);
    let admin = token(&db, &["--name", "ops", "--role", "admin"]);
    let gone = token(&db, &["--name", "leaver", "--role", "admin"]);
    let c = serve(&db, &[], &d.join("collector.log"));
    let port = c.http_port();

    // Not signed in: every page redirects to the sign-in form, with the headers.
    for p in ["/", "/devices", "/devices/1", "/flags", "/agents"] {
        let r = request(port, "GET", p, &[], "");
        assert_eq!(r.status, 303, "{p}");
        assert_eq!(r.header("location"), Some("/signin"), "{p}");
        assert_security_headers(&r, p);
    }
    let form = request(port, "GET", "/signin", &[], "");
    assert_security_headers(&form, "/signin");
    let csrf = form.cookie("ward_signin").unwrap();
    let set = form.cookies().join("\n");
    assert!(
        set.contains("HttpOnly; SameSite=Strict; Path=/"),
        "sign-in cookie: {set}"
    );
    assert!(form
        .body
        .contains(&format!("name=\"csrf\" value=\"{csrf}\"")));

    // The sign-in's CSRF checks: no cookie, a different value, a cross-site post.
    let body = format!("token={}&csrf={csrf}", form_value(&admin));
    let cookie = format!("ward_signin={csrf}");
    let other = "0".repeat(64);
    for (what, headers, body) in [
        ("no cookie", vec![], body.clone()),
        (
            "another value",
            vec![("Cookie", cookie.as_str())],
            format!("token={}&csrf={other}", form_value(&admin)),
        ),
        (
            "cross-site",
            vec![
                ("Cookie", cookie.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            body.clone(),
        ),
        (
            "another origin",
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", "http://evil.example"),
            ],
            body.clone(),
        ),
    ] {
        let r = request(port, "POST", "/signin", &headers, &body);
        assert_eq!(r.status, 403, "{what}");
        assert!(r.cookie("ward_session").is_none(), "{what}");
    }
    // A wrong token: refused, no session.
    let r = request(
        port,
        "POST",
        "/signin",
        &[("Cookie", &cookie)],
        &format!(
            "token=ward_{}_{}&csrf={csrf}",
            "1".repeat(16),
            "2".repeat(64)
        ),
    );
    assert_eq!(r.status, 401);
    assert!(r.cookie("ward_session").is_none());

    // Signed in: the cookie's attributes; nothing secret in the redirect.
    let page = request(port, "GET", "/signin", &[], "");
    let csrf = page.cookie("ward_signin").unwrap();
    let r = request(
        port,
        "POST",
        "/signin",
        &[
            ("Cookie", &format!("ward_signin={csrf}")),
            ("Origin", &format!("http://127.0.0.1:{port}")),
        ],
        &format!("token={}&csrf={csrf}", form_value(&admin)),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let session = r.cookie("ward_session").unwrap();
    let set = r
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("ward_session="))
        .unwrap()
        .to_string();
    assert_eq!(
        set,
        format!("ward_session={session}; HttpOnly; SameSite=Strict; Path=/")
    );
    let jar = format!("ward_session={session}");
    for p in PAGES {
        let r = request(port, "GET", p, &[("Cookie", &jar)], "");
        let want = if *p == "/nowhere" { 404 } else { 200 };
        assert_eq!(r.status, want, "{p}: {}", r.body);
        assert_security_headers(&r, p);
        assert!(
            !r.body.contains(&session) && !r.body.contains(&admin),
            "{p}"
        );
    }
    // The database keeps the session's hash, never the secret (the WAL included).
    let copy = copy_db_live(&db, &d.join("copy"));
    for (name, bytes) in &copy.files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&session), "{name} holds a session secret");
    }

    // Sign-out needs the session's CSRF token.
    let r = request(
        port,
        "POST",
        "/signout",
        &[("Cookie", &jar)],
        &format!("csrf={}", "0".repeat(64)),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        request(port, "GET", "/", &[("Cookie", &jar)], "").status,
        200
    );

    // A revoked token ends its sessions.
    let leaver = sign_in(port, &gone);
    let leaver_jar = format!("ward_session={leaver}");
    assert_eq!(
        request(port, "GET", "/devices", &[("Cookie", &leaver_jar)], "").status,
        200
    );
    let id = gone.split('_').nth(1).unwrap();
    assert!(cli(&db, &["token", "revoke", id]).status.success());
    let r = request(port, "GET", "/devices", &[("Cookie", &leaver_jar)], "");
    assert_eq!(r.status, 303, "a revoked token's session still opens pages");
    assert_eq!(r.header("location"), Some("/signin"));

    // Sign-out ends the session for good.
    let csrf = session_csrf(port, &session);
    let r = request(
        port,
        "POST",
        "/signout",
        &[("Cookie", &jar)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303);
    assert!(r
        .cookies()
        .iter()
        .any(|c| c.starts_with("ward_session=;") && c.contains("Max-Age=0")));
    assert_eq!(
        request(port, "GET", "/", &[("Cookie", &jar)], "").status,
        303
    );
    assert_log_clean(
        "the collector's log",
        std::fs::read(d.join("collector.log")).unwrap(),
    );
}

/// `npm ci` in tests/console when playwright-core is not installed yet.
fn node_project() -> PathBuf {
    let dir = workspace().join("tests/console");
    if !dir.join("node_modules/playwright-core").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (nodejs) is needed for the console's browser tests");
        assert!(st.success(), "npm ci in tests/console failed");
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed for the console's browser tests (scripts/test.sh installs it)"
    );
    dir
}

fn strings_in(v: &Value, key: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    if let Some(a) = x.as_array() {
                        out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
                strings_in(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, key, out)),
        _ => {}
    }
}

#[test]
fn every_page_in_chromium_for_every_role() {
    let node = node_project();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("ward.db");
    build_inventory(d, &db);
    let admin = token(&db, &["--name", "ops", "--role", "admin"]);
    let ce = token(&db, &["--name", "biomed", "--role", "clinical_engineering"]);
    let vendor = token(
        &db,
        &[
            "--name",
            "ct-vendor",
            "--role",
            "vendor",
            "--vendor",
            "WARD TEST*",
        ],
    );
    let c = serve(&db, &[], &d.join("collector.log"));
    let port = c.http_port();

    // What the vendor must never see, from the administrator's API view: every string of the
    // other vendor's device, every peer address and every AE title of any device.
    let all = get_json(port, "/api/v1/devices?limit=1000", &admin);
    let mut peers = BTreeSet::new();
    let mut ae_titles = BTreeSet::new();
    let mut mr = None;
    let mut hostile = None;
    for item in all["items"].as_array().unwrap() {
        let id = item["id"].as_i64().unwrap();
        let full = get_json(port, &format!("/api/v1/devices/{id}"), &admin);
        strings_in(&full, "peer_addresses", &mut peers);
        strings_in(&full["device"]["identities"], "ae_title", &mut ae_titles);
        if item["macs"].to_string().contains("02:57:41:52:44:0b") {
            mr = Some(id);
        }
        if item["macs"].to_string().contains("02:57:41:52:44:3c") {
            hostile = Some(id);
        }
    }
    let mr = mr.expect("the MR of dicom-pynetdicom.pcap");
    assert!(hostile.is_some(), "the device of dhcp-hostile.pcap");
    assert!(!ae_titles.is_empty() && !peers.is_empty());
    let own = get_json(port, "/api/v1/devices?limit=1000", &vendor);
    let mut own_ips = BTreeSet::new();
    strings_in(&own, "ips", &mut own_ips);
    let mut secrets: Vec<String> = [
        "02:57:41:52:44:0b",
        "WARD PY MEDICAL",
        "PyMR",
        "C-MR",
        "A-MR",
        "PY-0007",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    secrets.extend(peers.difference(&own_ips).cloned());
    secrets.extend(ae_titles.iter().cloned());

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new("node")
        .arg("console.mjs")
        .current_dir(&node)
        .env("WARD_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "WARD_TOKENS",
            serde_json::json!({"admin": admin, "clinical": ce, "vendor": vendor}).to_string(),
        )
        .env("WARD_OUT", &out)
        .env("WARD_HIDDEN", serde_json::json!({"device": mr}).to_string())
        .env("WARD_HOSTILE", HOSTILE)
        .output()
        .expect("running node");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "browser checks failed:\n{log}");
    assert!(log.contains("all checks passed"), "{log}");

    // What the browser saved: every page of every role, and the CSV exports.
    let mut pages = 0;
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !(name.ends_with(".html") || name.ends_with(".csv")) {
            continue;
        }
        pages += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        assert_clean(&format!("the page {name}"), &text);
        assert!(
            !text.contains(HOSTILE),
            "{name}: the hostile host name is markup"
        );
        if name.starts_with("vendor-") {
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "{name} shows {s:?} to a vendor");
            }
        }
    }
    assert!(pages >= 30, "only {pages} pages saved in {}", out.display());
    for role in ["admin", "clinical"] {
        let page =
            std::fs::read_to_string(out.join(format!("{role}-device-hostile.html"))).unwrap();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{role}: the hostile host name is not shown as text"
        );
    }
    for f in [
        "vendor-overview.png",
        "admin-device.png",
        "clinical-devices.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    assert_log_clean(
        "the collector's log",
        std::fs::read(d.join("collector.log")).unwrap(),
    );
}
