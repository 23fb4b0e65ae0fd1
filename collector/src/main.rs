//! `ward-collector`: ingests agent observations into the inventory, imports contracts and the
//! CMMS asset register, links devices to both, and keeps compliance flags with evidence.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ward_collector::access::views::printable;
use ward_collector::config::Config;
use ward_collector::ingest;
use ward_collector::store::sqlite::SqliteStore;
use ward_collector::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "ward-collector",
    version,
    about = "ward collector: device inventory, MC2 contract and CMMS linkage, compliance flags",
    long_about = "ward collector: ingests what ward agents see (over MQTT), keeps the device \
inventory with its history in SQLite, imports contracts (MC2 terms) and the clinical-engineering \
asset register, links devices to assets and contracts, and raises flags - end of support, no \
contract, services or remote access outside the contract, cleartext DICOM/HL7 - each with its \
evidence.\n\nStart with `ward-collector serve` (embedded MQTT broker on 127.0.0.1:1883, \
database ./ward-collector.db, HTTP API on 127.0.0.1:8080), point agents at it, then `contracts import` \
and `assets import`; read with `devices`, `flags`, `report`, or the API (`token create`).\n\n\
Configuration: --config FILE (TOML, see packaging/collector.toml) < WARD_COLLECTOR_* environment \
< flags."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct Global {
    /// Configuration file (TOML).
    #[arg(
        long,
        global = true,
        env = "WARD_COLLECTOR_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// SQLite database file [default: ward-collector.db].
    #[arg(long, global = true, env = "WARD_COLLECTOR_DB", value_name = "FILE")]
    db: Option<PathBuf>,
    /// Log level or filter, e.g. info, debug, ward_collector=debug [default: info].
    #[arg(long, global = true, env = "WARD_COLLECTOR_LOG", value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(
        long,
        global = true,
        env = "WARD_COLLECTOR_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The whole system on the bundled sample site: a collector (embedded broker, SQLite in a
    /// temporary directory) receives examples/sample-site.pcap from the real ward-agent over
    /// MQTT, imports the sample contracts and CMMS export, prints devices and flags, then serves
    /// the API with a read-only token until Ctrl-C.
    Demo {
        /// Capture to stream.
        #[arg(long, default_value = "examples/sample-site.pcap")]
        capture: PathBuf,
        /// Contracts (`{{EOS_SOON}}` becomes the evaluation date + 90 days).
        #[arg(long, default_value = "examples/contracts.yaml")]
        contracts: PathBuf,
        /// CMMS export.
        #[arg(long, default_value = "examples/cmms-assets.csv")]
        assets: PathBuf,
        /// API address (a free port if taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: std::net::SocketAddr,
        /// Keep the database in this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print and exit instead of serving the API.
        #[arg(long)]
        no_serve: bool,
    },
    /// Run the collector: embedded MQTT broker (or --broker), ingest, scheduled flag evaluation.
    /// Stops cleanly on SIGTERM/SIGINT after committing what it has acknowledged.
    Serve(Box<ServeArgs>),
    /// Replay agent JSON-lines files (`ward-agent read --output jsonl:FILE`) into the database.
    Ingest {
        /// JSON-lines files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Messages per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
    /// Contracts (MC2 terms): import from YAML, JSON or CSV; see docs/contracts.md.
    Contracts {
        #[command(subcommand)]
        cmd: ContractsCmd,
    },
    /// CMMS asset register: import a CSV export; see docs/assets.md.
    Assets {
        #[command(subcommand)]
        cmd: AssetsCmd,
    },
    /// Re-link devices and re-evaluate every flag now (serve also does this on a schedule).
    Evaluate {
        /// Evaluate as of this time (RFC 3339 or YYYY-MM-DD) instead of now: for audits and tests.
        #[arg(long)]
        now: Option<String>,
    },
    /// Print the inventory: devices with their links (JSON with --json).
    Devices {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print flags (open ones unless --all).
    Flags {
        /// Include resolved flags.
        #[arg(long)]
        all: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print agents with their last status and message counts.
    Agents,
    /// Print device merges with their explanations.
    Merges,
    /// Print counts.
    Status,
    /// API tokens: create (printed once), list, revoke.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Reports: what the API shows, as a table, CSV or JSON. `--vendor` shows exactly what that
    /// vendor's token would see.
    Report {
        /// devices, flags, coverage or installed-base.
        #[arg(value_enum)]
        kind: ward_collector::access::report::Kind,
        /// Only these manufacturers (as a vendor token).
        #[arg(long, value_name = "MANUFACTURER")]
        vendor: Vec<String>,
        /// table, csv or json.
        #[arg(long, value_enum, default_value = "table")]
        format: ward_collector::access::report::Format,
        /// Flags: open (default) or resolved; `all` for both.
        #[arg(long, default_value = "open")]
        status: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Create a token and print it (it is stored hashed and cannot be shown again).
    Create {
        /// Who or what it is for.
        #[arg(long)]
        name: String,
        /// admin, clinical_engineering or vendor.
        #[arg(long)]
        role: String,
        /// For vendor tokens: a manufacturer the token may see (repeat for several names).
        #[arg(long, value_name = "MANUFACTURER")]
        vendor: Vec<String>,
        /// Lifetime, e.g. 90d, 12h; default: no expiry.
        #[arg(long, value_name = "DURATION")]
        expires: Option<humantime::Duration>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (the part after `ward_`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ContractsCmd {
    /// Import (insert or replace by id). All or nothing: any error imports nothing.
    Import {
        /// `.yaml`/`.yml`, `.json` or `.csv`.
        file: PathBuf,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List contracts (JSON).
    List,
}

#[derive(Debug, Subcommand)]
enum AssetsCmd {
    /// Import a CSV export (insert or replace by asset tag). All or nothing.
    Import {
        /// CSV file (`,` or `;` separated, header row required).
        file: PathBuf,
        /// Map a field to a header, e.g. `--map tag="Equip #"`; fields: tag, manufacturer,
        /// model, serial, mac, ip, hostname, location, department, contract_id, risk_class.
        #[arg(long, value_name = "FIELD=HEADER")]
        map: Vec<String>,
        /// The file is the whole register: remove assets not in it.
        #[arg(long)]
        replace: bool,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List assets (JSON).
    List,
}

/// `serve` options; each overrides the configuration file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Embedded broker listen address [default: 127.0.0.1:1883].
    #[arg(long, env = "WARD_COLLECTOR_LISTEN", value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Subscribe to this external broker instead of embedding one: mqtt://host:port or
    /// mqtts://host:port.
    #[arg(long, env = "WARD_COLLECTOR_BROKER", value_name = "URL")]
    broker: Option<String>,
    /// MQTT client id at the external broker (stable: it names the persistent session).
    #[arg(long, env = "WARD_COLLECTOR_CLIENT_ID")]
    client_id: Option<String>,
    /// User name at the external broker (password: --mqtt-password-file or
    /// WARD_COLLECTOR_MQTT_PASSWORD).
    #[arg(long, env = "WARD_COLLECTOR_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// File holding the external broker password.
    #[arg(long, env = "WARD_COLLECTOR_MQTT_PASSWORD_FILE", value_name = "FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// Shared-subscription group at the external broker, so several collectors split agents.
    #[arg(long, env = "WARD_COLLECTOR_SHARE_GROUP")]
    share_group: Option<String>,
    /// Per-agent credentials for the embedded broker (TOML: agent-id = "password", or
    /// agent-id = { password = "...", site = "..." }). The user name is the agent id: an agent
    /// may publish only under ward/v1/<site>/<its id>/ and connect only as client id <id> or
    /// ward-<id>.
    #[arg(long, env = "WARD_COLLECTOR_CREDENTIALS", value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// An identity (user name or client-certificate common name) that may only read alerts
    /// (subscribe to ward/v1/alerts/...). Repeat for several.
    #[arg(long = "alert-reader", value_name = "NAME")]
    alert_readers: Vec<String>,
    /// Allow the embedded broker and the HTTP API to listen on a non-loopback address without
    /// TLS or authentication (warned about). Without it the collector refuses to start so.
    #[arg(long, env = "WARD_COLLECTOR_ALLOW_INSECURE_LISTEN")]
    allow_insecure_listen: bool,
    /// TLS certificate for the embedded broker (PEM).
    #[arg(long, env = "WARD_COLLECTOR_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS key for the embedded broker (PEM).
    #[arg(long, env = "WARD_COLLECTOR_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA for agent client certificates (embedded broker) or for the external broker.
    #[arg(long, env = "WARD_COLLECTOR_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "WARD_COLLECTOR_HTTP", value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Do not serve the HTTP API.
    #[arg(long)]
    no_http: bool,
    /// Expensive API requests (coverage, installed base, contracts, assets, agents, evaluate,
    /// /metrics) served at once; others wait, then get 503 [default: 2].
    #[arg(
        long,
        env = "WARD_COLLECTOR_API_EXPENSIVE_CONCURRENCY",
        value_name = "N"
    )]
    api_expensive_concurrency: Option<usize>,
    /// Longest an expensive API request waits for its turn before 503, milliseconds
    /// [default: 10000].
    #[arg(long, env = "WARD_COLLECTOR_API_EXPENSIVE_WAIT_MS", value_name = "MS")]
    api_expensive_wait_ms: Option<u64>,
    /// Seconds between scheduled evaluations [default: 60].
    #[arg(long, value_name = "SECS")]
    evaluate_interval: Option<u64>,
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .with_context(|| format!("invalid log filter {:?}", cfg.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only on a terminal: files and the journal get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cfg.log_format.as_str() {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => anyhow::bail!("unknown log format {other:?} (expected text or json)"),
    }
    Ok(())
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("--now {s:?}: expected RFC 3339 or YYYY-MM-DD"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_micros())
}

fn open(cfg: &Config) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(&cfg.db).with_context(|| format!("database {}", cfg.db.display()))
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward-collector: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = match &cli.global.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(db) = cli.global.db {
        cfg.db = db;
    }
    if let Some(l) = cli.global.log_level {
        cfg.log_level = l;
    }
    if let Some(f) = cli.global.log_format {
        cfg.log_format = f;
    }
    if matches!(cli.cmd, Cmd::Demo { .. })
        && std::env::var_os("WARD_COLLECTOR_LOG").is_none()
        && cfg.log_level == Config::default().log_level
    {
        // The demo prints tables; logs would drown them.
        cfg.log_level = "warn".into();
    }
    init_logging(&cfg)?;
    match cli.cmd {
        Cmd::Serve(a) => {
            if let Some(l) = a.listen {
                cfg.broker.listen = l;
            }
            if a.broker.is_some() {
                cfg.source.url = a.broker;
            }
            if a.client_id.is_some() {
                cfg.source.client_id = a.client_id;
            }
            if a.mqtt_username.is_some() {
                cfg.source.username = a.mqtt_username;
            }
            if a.mqtt_password_file.is_some() {
                cfg.source.password_file = a.mqtt_password_file;
            }
            if a.share_group.is_some() {
                cfg.source.share_group = a.share_group;
            }
            if a.credentials.is_some() {
                cfg.broker.credentials_file = a.credentials;
            }
            if !a.alert_readers.is_empty() {
                cfg.broker.alert_readers = a.alert_readers;
            }
            if a.allow_insecure_listen {
                cfg.broker.allow_insecure_listen = true;
                cfg.http.allow_insecure_listen = true;
            }
            if a.tls_cert.is_some() {
                cfg.broker.tls_cert = a.tls_cert;
            }
            if a.tls_key.is_some() {
                cfg.broker.tls_key = a.tls_key;
            }
            if let Some(ca) = a.tls_ca {
                cfg.broker.tls_ca = Some(ca.clone());
                cfg.source.ca = Some(ca);
            }
            if let Some(h) = a.http {
                cfg.http.listen = h;
            }
            if a.no_http {
                cfg.http.enabled = false;
            }
            if let Some(n) = a.api_expensive_concurrency {
                cfg.http.expensive_concurrency = n;
            }
            if let Some(ms) = a.api_expensive_wait_ms {
                cfg.http.expensive_wait_ms = ms;
            }
            if let Some(i) = a.evaluate_interval {
                cfg.ingest.evaluate_interval_secs = i;
            }
            ward_collector::serve::run(cfg)
        }
        Cmd::Demo {
            capture,
            contracts,
            assets,
            http,
            dir,
            no_serve,
        } => ward_collector::demo::run(ward_collector::demo::DemoArgs {
            capture,
            contracts,
            assets,
            http,
            dir,
            no_serve,
        }),
        Cmd::Ingest { files, batch } => {
            let mut store = open(&cfg)?;
            let t = std::time::Instant::now();
            let (st, bad) = ingest::replay_files(&mut store, &files, batch.max(1))?;
            let secs = t.elapsed().as_secs_f64();
            let ev = ingest::evaluate(&mut store, &cfg.flags, ingest::now_us())?;
            tracing::info!(
                messages = st.messages,
                duplicates = st.duplicates,
                device_records = st.device_records,
                devices_created = st.devices_created,
                merges = st.merges,
                statuses = st.statuses,
                bad_lines = bad,
                seconds = secs,
                records_per_sec = (st.device_records as f64 / secs.max(1e-9)) as u64,
                flags_open = ev.stats.flags_open,
                "replay done"
            );
            print_json(&serde_json::json!({"ingest": st, "bad_lines": bad, "evaluation": ev}))
        }
        Cmd::Contracts { cmd } => match cmd {
            ContractsCmd::Import { file, dry_run } => {
                let contracts = ward_collector::import::contracts::load(&file)?;
                if dry_run {
                    println!("{}: {} contracts, valid", file.display(), contracts.len());
                    return Ok(());
                }
                let mut store = open(&cfg)?;
                let st = store.import_contracts(
                    &contracts,
                    &file.display().to_string(),
                    ingest::now_us(),
                )?;
                let ev = ingest::evaluate(&mut store, &cfg.flags, ingest::now_us())?;
                tracing::info!(file = %file.display(), inserted = st.inserted, replaced = st.replaced, flags_open = ev.stats.flags_open, "contracts imported");
                print_json(&serde_json::json!({"import": st, "evaluation": ev}))
            }
            ContractsCmd::List => print_json(&open(&cfg)?.inventory()?.contracts),
        },
        Cmd::Assets { cmd } => match cmd {
            AssetsCmd::Import {
                file,
                map,
                replace,
                dry_run,
            } => {
                let colmap = ward_collector::import::assets::ColumnMap::with_overrides(&map)?;
                let imp = ward_collector::import::assets::load(&file, &colmap)?;
                if !imp.ignored_columns.is_empty() {
                    tracing::info!(file = %file.display(), columns = ?imp.ignored_columns, "columns not mapped (ignored)");
                }
                if dry_run {
                    println!("{}: {} assets, valid", file.display(), imp.assets.len());
                    return Ok(());
                }
                let mut store = open(&cfg)?;
                let st = store.import_assets(
                    &imp.assets,
                    replace,
                    &file.display().to_string(),
                    ingest::now_us(),
                )?;
                let ev = ingest::evaluate(&mut store, &cfg.flags, ingest::now_us())?;
                tracing::info!(file = %file.display(), inserted = st.inserted, replaced = st.replaced, removed = st.removed, flags_open = ev.stats.flags_open, "assets imported");
                print_json(
                    &serde_json::json!({"import": st, "ignored_columns": imp.ignored_columns, "evaluation": ev}),
                )
            }
            AssetsCmd::List => print_json(&open(&cfg)?.inventory()?.assets),
        },
        Cmd::Evaluate { now } => {
            let now = match now {
                Some(s) => parse_time(&s)?,
                None => ingest::now_us(),
            };
            let mut store = open(&cfg)?;
            let ev = ingest::evaluate(&mut store, &cfg.flags, now)?;
            print_json(&ev)
        }
        Cmd::Devices { json } => {
            let store = open(&cfg)?;
            let inv = store.inventory()?;
            let links = store.links()?;
            if json {
                return print_json(&serde_json::json!({"devices": inv.devices, "links": links}));
            }
            for d in &inv.devices {
                let (m, model) = ward_collector::compliance::link::manufacturer_model(d);
                let l: Vec<String> = links
                    .iter()
                    .filter(|l| l.device_id == d.id)
                    .map(|l| {
                        format!(
                            "{}={} ({}, {:.2})",
                            l.kind.as_str(),
                            l.target,
                            l.method,
                            l.confidence
                        )
                    })
                    .collect();
                // Stored text (agent values, imported fields) must not steer the terminal.
                println!(
                    "{:>6}  {:<40} {:<28} {:<18} {}",
                    d.id,
                    d.macs
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    printable(&format!("{} {}", m.unwrap_or("?"), model.unwrap_or(""))),
                    printable(d.current("device_type").unwrap_or("unknown")),
                    printable(&l.join("  "))
                );
            }
            Ok(())
        }
        Cmd::Flags { all, json } => {
            let flags = open(&cfg)?.flags(!all)?;
            if json {
                return print_json(&flags);
            }
            for f in &flags {
                println!(
                    "{:>6} {:<8} {:<6} {:<38} {}",
                    f.id,
                    f.status,
                    f.severity,
                    f.kind,
                    printable(&f.summary)
                );
            }
            Ok(())
        }
        Cmd::Agents => print_json(&open(&cfg)?.agents()?),
        Cmd::Merges => print_json(&open(&cfg)?.merges()?),
        Cmd::Status => print_json(&open(&cfg)?.counts()?),
        Cmd::Token { cmd } => {
            let mut store = open(&cfg)?;
            match cmd {
                TokenCmd::Create {
                    name,
                    role,
                    vendor,
                    expires,
                } => {
                    let role: ward_collector::access::tokens::Role =
                        role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                    let now = ingest::now_us();
                    let exp = expires.map(|d| now + d.as_micros() as i64);
                    let (rec, token) = ward_collector::access::tokens::create(
                        &mut store, &name, role, &vendor, exp, now,
                    )?;
                    tracing::info!(id = %rec.id, name = %rec.name, role = %rec.role, "token created");
                    println!("{token}");
                    Ok(())
                }
                TokenCmd::List => print_json(&store.token_list()?),
                TokenCmd::Revoke { id } => {
                    anyhow::ensure!(
                        store.token_revoke(&id, ingest::now_us())?,
                        "no token with id {id:?}"
                    );
                    println!("revoked {id}");
                    Ok(())
                }
            }
        }
        Cmd::Report {
            kind,
            vendor,
            format,
            status,
        } => {
            let store = open(&cfg)?;
            let p = if vendor.is_empty() {
                ward_collector::access::tokens::Principal::local_admin()
            } else {
                ward_collector::access::tokens::Principal::vendor(&vendor)
            };
            let status = match status.as_str() {
                "all" => None,
                "open" | "resolved" => Some(status),
                other => anyhow::bail!("--status {other:?}: expected open, resolved or all"),
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            ward_collector::access::report::run(&store, &p, kind, format, status, &mut out)
        }
    }
}
