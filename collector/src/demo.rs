//! `ward-collector demo`: the whole system on the bundled sample site, in one command. A real
//! collector (embedded broker, SQLite in a temporary directory) receives the sample capture from
//! the real `ward-agent` process over MQTT; the sample contracts and CMMS export are imported;
//! the inventory and flags are printed; the API keeps serving with a read-only token until
//! Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::access::report::{self, Format, Kind, Status};
use crate::commands::{import_and_evaluate, Import};
use crate::config::Config;
use crate::ingest;
use crate::store::Store;

/// Demo options (`ward-collector demo`'s flags).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Capture to stream.
    #[arg(long, default_value = "examples/sample-site.pcap")]
    pub capture: PathBuf,
    /// Contracts (`{{EOS_SOON}}` becomes the evaluation date + 90 days).
    #[arg(long, default_value = "examples/contracts.yaml")]
    pub contracts: PathBuf,
    /// CMMS export.
    #[arg(long, default_value = "examples/cmms-assets.csv")]
    pub assets: PathBuf,
    /// Security advisories (CSAF 2.0 files or directories; the bundled ones are fictional).
    #[arg(long, default_value = "examples/advisories")]
    pub advisories: Vec<PathBuf>,
    /// A KEV catalog (the bundled one is fictional, in CISA's format).
    #[arg(long, default_value = "examples/kev-example.json")]
    pub kev: PathBuf,
    /// API address (a free port if taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Keep the database in this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print and exit instead of serving the API.
    #[arg(long)]
    pub no_serve: bool,
}

fn step(n: u32, text: &str) {
    eprintln!("[demo {n}/6] {text}");
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The agent binary: beside this one (a release or debug build of the workspace), else built
/// with the cargo that ran us (`cargo run` sets `CARGO`).
fn agent_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating ward-collector")?;
    let beside = me.with_file_name("ward-agent");
    if beside.exists() {
        return Ok(beside);
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = me
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "release");
        eprintln!("[demo] building ward-agent (first run only)…");
        let mut c = Command::new(cargo);
        c.args(["build", "-q", "-p", "ward-agent", "--bin", "ward-agent"]);
        if release {
            c.arg("--release");
        }
        let st = c.status().context("running cargo build -p ward-agent")?;
        if st.success() && beside.exists() {
            return Ok(beside);
        }
    }
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("ward-agent"))
            .find(|p| p.exists())
    }) {
        return Ok(p);
    }
    bail!(
        "ward-agent not found beside {} or on PATH; build it with `cargo build --release -p ward-agent`",
        me.display()
    )
}

/// Runs the demo; removes its temporary directory afterwards (not `--dir`).
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp = args.dir.is_none();
    let mut dir_used = None;
    let r = run_in(args, &mut dir_used);
    if let (true, Some(d)) = (temp, dir_used) {
        let _ = std::fs::remove_dir_all(d);
    }
    r
}

fn run_in(args: DemoArgs, dir_used: &mut Option<PathBuf>) -> anyhow::Result<()> {
    for (what, p) in [
        ("capture", &args.capture),
        ("contracts", &args.contracts),
        ("assets", &args.assets),
    ] {
        anyhow::ensure!(
            p.exists(),
            "demo {what} {} not found (run from the repository root, or pass --{what})",
            p.display()
        );
    }
    let agent = agent_binary()?;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tempfile_dir()?,
    };
    *dir_used = Some(dir.clone());
    let db = dir.join("ward.db");
    let broker_port = free_port()?;
    let http = if args.http.port() != 0 && std::net::TcpListener::bind(args.http).is_ok() {
        args.http
    } else {
        std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?))
    };

    // 1. The collector, in this process, on its own thread.
    let mut cfg = Config {
        db: db.clone(),
        ..Config::default()
    };
    cfg.broker.listen = std::net::SocketAddr::from(([127, 0, 0, 1], broker_port));
    cfg.http.listen = http;
    cfg.alerts.mqtt = true;
    // The sample's flags are evaluated as of its capture time (below), not the wall clock: the
    // serving collector must not re-evaluate on its own while the demo runs.
    const TEN_YEARS: u64 = 10 * 365 * 86_400;
    cfg.ingest.evaluate_interval_secs = TEN_YEARS;
    cfg.ingest.evaluate_debounce_secs = TEN_YEARS;
    step(
        1,
        &format!(
            "collector: embedded MQTT broker on 127.0.0.1:{broker_port}, SQLite at {}",
            db.display()
        ),
    );
    let serve_cfg = cfg.clone();
    let server = std::thread::spawn(move || crate::serve::run(serve_cfg));
    // Probe the API port: it opens after the broker listens, and a bare TCP probe of the broker
    // would be logged as a failed MQTT connection.
    let start = Instant::now();
    while std::net::TcpStream::connect(http).is_err() {
        if server.is_finished() {
            return match server.join() {
                Ok(r) => r.context("collector stopped"),
                Err(_) => bail!("collector thread panicked"),
            };
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "collector did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // 2. The real agent streams the capture over MQTT.
    step(
        2,
        &format!("ward-agent streams {} over MQTT…", args.capture.display()),
    );
    let t = Instant::now();
    // The agent logs at the collector's level when that is a plain level (WARD_COLLECTOR_LOG=
    // debug makes both log at debug), else at warn, into agent.log beside the database.
    let agent_level = std::env::var("WARD_COLLECTOR_LOG")
        .ok()
        .filter(|l| ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()))
        .unwrap_or_else(|| "warn".into());
    let agent_log = dir.join("agent.log");
    let log_file = std::fs::File::create(&agent_log)
        .with_context(|| format!("creating {}", agent_log.display()))?;
    let status = Command::new(&agent)
        .arg("read")
        .arg(&args.capture)
        .args(["--output", &format!("mqtt://127.0.0.1:{broker_port}")])
        .args(["--site", "demo", "--agent-id", "demo-span-1"])
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args(["--log-level", &agent_level, "--stats-interval", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .status()
        .with_context(|| format!("running {}", agent.display()))?;
    anyhow::ensure!(
        status.success(),
        "ward-agent failed:\n{}",
        std::fs::read_to_string(&agent_log).unwrap_or_default()
    );
    // Wait until the collector has stored everything the agent sent.
    let mut last = (0u64, Instant::now());
    loop {
        let store = crate::commands::open_db(&db)?;
        let agents = store.agents()?;
        let n: i64 = agents.iter().map(|a| a.messages).sum();
        let missing: i64 = agents.iter().map(|a| a.missing).sum();
        let n = n.max(0) as u64;
        if n != last.0 {
            last = (n, Instant::now());
        }
        if n > 0 && missing == 0 && last.1.elapsed() > Duration::from_millis(700) {
            let c = store.counts()?;
            step(
                3,
                &format!(
                    "stored {n} observation messages, {} devices ({:.1} s)",
                    c.devices,
                    t.elapsed().as_secs_f64()
                ),
            );
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "collector did not store the agent's messages"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 3. Contracts and CMMS export, evaluated as of one day after the capture (the sample's
    //    time-based flags are relative to it).
    let mut store = crate::commands::open_db(&db)?;
    let inv = store.inventory()?;
    let last_seen = inv.devices.iter().map(|d| d.last_us).max().unwrap_or(0);
    let now = last_seen + 86_400_000_000;
    let eos_soon = chrono::DateTime::from_timestamp_micros(now + 90 * 86_400_000_000)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let text = std::fs::read_to_string(&args.contracts)
        .with_context(|| format!("reading {}", args.contracts.display()))?
        .replace("{{EOS_SOON}}", &eos_soon);
    let cfile = dir.join(
        args.contracts
            .file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("contracts.yaml")),
    );
    std::fs::write(&cfile, text)?;
    let imports = [
        Import::contracts(cfile)?,
        Import::assets(args.assets.clone(), &[], false)?,
        Import::advisories(args.advisories.clone())?,
        Import::kev(args.kev.clone())?,
    ];
    let ev = import_and_evaluate(&mut store, &imports, &cfg.flags, now)?.evaluation;
    step(
        4,
        &format!(
            "imported {}; evaluated as of {}: {} open flags",
            imports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            chrono::DateTime::from_timestamp_micros(now)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            ev.stats.flags_open
        ),
    );

    // 4. Tables.
    step(5, "inventory and flags:");
    let p = crate::access::tokens::Principal::local_admin();
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    use std::io::Write;
    for (title, kind) in [
        ("DEVICES", Kind::Devices),
        ("OPEN FLAGS", Kind::Flags),
        ("COVERAGE", Kind::Coverage),
    ] {
        writeln!(o, "\n{title}")?;
        report::run(&store, &p, kind, Format::Table, Status::Open, &mut o)?;
    }
    // Mark what the demo opened as alerted and delivered (the tables above showed it): the
    // serving collector must not replay it.
    while {
        let b = store.take_alerts(1000)?;
        let done: Vec<(i64, i64)> = b
            .opened
            .iter()
            .map(|f| (f.id, 1))
            .chain(b.resolved.iter().map(|f| (f.id, 2)))
            .collect();
        store.confirm_alerts(&done)?;
        !done.is_empty()
    } {}
    let (_, token) = crate::access::tokens::create(
        &mut store,
        "demo (read-only)",
        crate::access::tokens::Role::ClinicalEngineering,
        &[],
        None,
        ingest::now_us(),
    )?;
    drop(o);
    if args.no_serve {
        step(6, "done (--no-serve)");
        stop_server();
        return match server.join() {
            Ok(r) => r,
            Err(_) => bail!("collector thread panicked"),
        };
    }
    step(
        6,
        &format!(
            "the console and the API are serving until Ctrl-C:\n\n    console: http://{http}/  (sign in with the token {token})\n\n    curl -H 'Authorization: Bearer {token}' http://{http}/api/v1/devices\n    curl -H 'Authorization: Bearer {token}' 'http://{http}/api/v1/flags?status=open'\n    OpenAPI: http://{http}/api/v1/openapi.json\n"
        ),
    );
    match server.join() {
        Ok(r) => r,
        Err(_) => bail!("collector thread panicked"),
    }
}

/// Asks the in-process collector to stop the way an operator would.
fn stop_server() {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM);
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("ward-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    Ok(base)
}
