//! `ward-agent`: passive medical-device fingerprinting on span ports and capture files.
//! Thin wiring: arguments and configuration, logging, privilege drop, the runtime for MQTT,
//! and signals. The work happens in the library (`ward_agent::run`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use ward_agent::capture::{Capture, CaptureConfig};
use ward_agent::config::{Config, FileConfig, LogFormat, Overrides};
use ward_agent::engine::{Engine, EngineConfig};
use ward_agent::output::jsonl::JsonlOutput;
use ward_agent::output::mqtt::{MqttConfig, MqttOutput};
use ward_agent::output::{parse_output_url, Output, OutputSpec};
use ward_agent::products::{self, Dictionary};
use ward_agent::rules::{self, RuleSet};
use ward_agent::run::{run_file, run_live, LoopConfig};
use ward_protocols::dissect::DissectorConfig;
use ward_protocols::reassembly::ReassemblyConfig;

const DEFAULT_CONFIG: &str = "/etc/ward/agent.toml";
const DEFAULT_USER: &str = "ward";

#[derive(Debug, Parser)]
#[command(
    name = "ward-agent",
    version,
    about = "Passive medical-device fingerprinting agent for span ports and capture files",
    long_about = "Passive medical-device fingerprinting agent for span ports and capture files.\n\n\
        ward-agent listens on a SPAN/mirror port (or reads pcap/pcapng files), identifies devices \
        from what they say (DICOM, HL7 v2, FHIR, IEEE 11073 SDC, ASTM, POCT1-A, IntelliVue, \
        B. Braun BCC, DHCP, HTTP, TLS, SSH, mDNS, SSDP/UPnP, SNMP, DNS, LLDP/CDP, MAC vendors) \
        and what they do (answering DHCP, relaying HL7, reporting for several monitors…), names \
        them with fingerprint rules and a product dictionary kept as data, and streams device \
        observations to a ward collector over MQTT, spooling to disk while the broker is away. \
        It never transmits on the monitored interface and never exports patient data.\n\n\
        Configuration: a TOML file (--config, default /etc/ward/agent.toml when present), then \
        WARD_* environment variables, then flags, each overriding the one before.",
    after_help = "Examples:\n  \
        ward-agent capture --interface eth1 --site main-campus --output mqtts://collector:8883\n  \
        ward-agent read --output jsonl:- tests/fixtures/dicom-dcmtk.pcap\n  \
        tcpdump -i eth1 -w - | ward-agent read --output jsonl:devices.jsonl -\n  \
        ward-agent rules check /etc/ward/rules\n  \
        ward-agent products check /etc/ward/products"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture live from one or more interfaces (needs root or CAP_NET_RAW).
    Capture {
        /// Interface to capture on; repeat for several.
        #[arg(
            long = "interface",
            short = 'i',
            value_name = "IF",
            env = "WARD_INTERFACES",
            value_delimiter = ','
        )]
        interfaces: Vec<String>,
        /// After opening the interfaces, switch to this user keeping only CAP_NET_RAW (when
        /// started as root) [default: "ward" if that user exists].
        #[arg(long, env = "WARD_USER", value_name = "USER")]
        user: Option<String>,
        /// Only capture frames matching this tcpdump filter expression, run in the kernel,
        /// e.g. 'not (tcp port 445 or udp port 2049)' to skip bulk file traffic.
        #[arg(long, env = "WARD_FILTER", value_name = "BPF")]
        filter: Option<String>,
        /// Receive ring size per interface in bytes (memory-mapped TPACKET_V3 ring; it absorbs
        /// bursts while the decoders catch up) [default: 67108864].
        #[arg(long = "ring-size", env = "WARD_RING_SIZE", value_name = "BYTES")]
        ring_bytes: Option<usize>,
        /// Milliseconds after which the kernel hands over a ring block that is not full
        /// (latency on quiet links; also how fast a stop takes effect) [default: 100].
        #[arg(long = "block-timeout", env = "WARD_BLOCK_TIMEOUT", value_name = "MS")]
        block_timeout: Option<u64>,
        /// Capture workers per interface, each with its own ring share, flow table and
        /// decoders; the kernel keeps both directions of a flow on one worker
        /// [default: one per core, at most 8].
        #[arg(long, env = "WARD_WORKERS", value_name = "N")]
        workers: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Read pcap/pcapng files ("-" for standard input) and exit when done.
    Read {
        /// Capture files; "-" reads standard input (`tcpdump -w - | ward-agent read -`).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Fingerprint rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Product dictionary files (manufacturer aliases, product lines).
    Products {
        #[command(subcommand)]
        command: ProductsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProductsCommand {
    /// Validate every *.toml dictionary file in DIR as a site extension of the bundled
    /// dictionary; errors name the file and line.
    Check {
        /// Directory of product dictionary files.
        dir: PathBuf,
    },
    /// List the bundled manufacturers and product rule ids.
    List,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Validate every *.toml rule file in DIR; errors name the file and line.
    Check {
        /// Directory of rule files.
        dir: PathBuf,
    },
    /// List the bundled rules.
    List,
}

#[derive(Debug, Args)]
struct Common {
    /// Configuration file (TOML).
    #[arg(long, env = "WARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where observations go: mqtt://host[:port], mqtts://host[:port], jsonl:PATH or jsonl:-
    /// [default: mqtt://127.0.0.1:1883, the collector's embedded broker]
    #[arg(long, short = 'o', env = "WARD_OUTPUT", value_name = "URL")]
    output: Option<String>,
    /// Site name, used in MQTT topics [default: "default"].
    #[arg(long, env = "WARD_SITE")]
    site: Option<String>,
    /// Agent id, used in MQTT topics [default: host name].
    #[arg(long, env = "WARD_AGENT_ID")]
    agent_id: Option<String>,
    /// Directory of user rule files; rules with a bundled rule's id replace it.
    #[arg(long, env = "WARD_RULES_DIR", value_name = "DIR")]
    rules_dir: Option<PathBuf>,
    /// Directory of site product dictionary files; they extend the bundled dictionary, and a
    /// product with a bundled product's id replaces it.
    #[arg(long, env = "WARD_PRODUCTS_DIR", value_name = "DIR")]
    products_dir: Option<PathBuf>,
    /// Spool directory for messages not yet acknowledged by the broker
    /// [default: /var/lib/ward-agent/spool].
    #[arg(long, env = "WARD_SPOOL_DIR", value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Spool size bound in bytes; the oldest messages are evicted (and counted) beyond it
    /// [default: 268435456].
    #[arg(long, env = "WARD_SPOOL_MAX_BYTES", value_name = "BYTES")]
    spool_max_bytes: Option<u64>,
    /// MQTT user name.
    #[arg(long, env = "WARD_MQTT_USERNAME")]
    mqtt_username: Option<String>,
    /// File holding the MQTT password (or set WARD_MQTT_PASSWORD).
    #[arg(long, env = "WARD_MQTT_PASSWORD_FILE", value_name = "FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// CA certificate (PEM) for mqtts://.
    #[arg(long, env = "WARD_MQTT_CA", value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mqtts://.
    #[arg(long, env = "WARD_MQTT_CERT", value_name = "FILE")]
    mqtt_cert: Option<PathBuf>,
    /// Client private key (PEM) for mqtts://.
    #[arg(long, env = "WARD_MQTT_KEY", value_name = "FILE")]
    mqtt_key: Option<PathBuf>,
    /// Seconds between stats log lines and status messages [default: 30].
    #[arg(long, env = "WARD_STATS_INTERVAL", value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Most TCP flows tracked at once [default: 65536].
    #[arg(long, env = "WARD_MAX_FLOWS")]
    max_flows: Option<usize>,
    /// Most devices tracked at once [default: 100000].
    #[arg(long, env = "WARD_MAX_DEVICES")]
    max_devices: Option<usize>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "WARD_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log level or filter, e.g. info, debug, ward_agent=debug [default: info].
    #[arg(long, env = "WARD_LOG", value_name = "FILTER")]
    log_level: Option<String>,
}

/// The `capture` subcommand's own options.
#[derive(Debug, Default)]
struct LiveOptions {
    interfaces: Vec<String>,
    user: Option<String>,
    filter: Option<String>,
    ring_bytes: Option<usize>,
    block_timeout_ms: Option<u64>,
    workers: Option<usize>,
}

fn load_config(common: Common, live: LiveOptions) -> anyhow::Result<Config> {
    let LiveOptions {
        interfaces,
        user,
        filter,
        ring_bytes,
        block_timeout_ms,
        workers,
    } = live;
    let file = match &common.config {
        Some(path) => FileConfig::load(path)?,
        None if Path::new(DEFAULT_CONFIG).exists() => FileConfig::load(Path::new(DEFAULT_CONFIG))?,
        None => FileConfig::default(),
    };
    let o = Overrides {
        site: common.site,
        agent_id: common.agent_id,
        output: common.output,
        user,
        stats_interval_secs: common.stats_interval,
        rules_dir: common.rules_dir,
        products_dir: common.products_dir,
        spool_dir: common.spool_dir,
        spool_max_bytes: common.spool_max_bytes,
        mqtt_username: common.mqtt_username,
        mqtt_password_file: common.mqtt_password_file,
        mqtt_password: std::env::var("WARD_MQTT_PASSWORD").ok(),
        mqtt_ca: common.mqtt_ca,
        mqtt_cert: common.mqtt_cert,
        mqtt_key: common.mqtt_key,
        log_format: common.log_format,
        log_level: common.log_level,
        max_flows: common.max_flows,
        max_devices: common.max_devices,
        interfaces,
        ring_bytes,
        block_timeout_ms,
        filter,
        workers,
    };
    Ok(Config::resolve(file, o)?)
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    // `Targets` rather than `EnvFilter`: the same `level,target=level` syntax without
    // tracing-subscriber's `env-filter` feature, which switches on regex-automata's full-DFA
    // build for every `Regex` in the process — and compiling the bundled rules' regexes as full
    // DFAs cost about 200 M instructions at every start (callgrind).
    let filter: tracing_subscriber::filter::Targets = cfg.log_level.parse().with_context(|| {
        format!(
            "invalid log filter {:?} (--log-level / WARD_LOG)",
            cfg.log_level
        )
    })?;
    // Logs go to stderr so `--output jsonl:-` keeps stdout for observations.
    let builder = tracing_subscriber::fmt()
        // The builder's own ceiling is INFO; the `Targets` layer below decides.
        .with_max_level(tracing::Level::TRACE)
        // Colour only on a terminal: files and the journal get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Text => builder.finish().with(filter).init(),
        LogFormat::Json => builder.json().finish().with(filter).init(),
    }
    Ok(())
}

fn load_rules(cfg: &Config) -> anyhow::Result<RuleSet> {
    let bundled = RuleSet::bundled().context("bundled rules")?;
    let site_rules = match &cfg.rules_dir {
        Some(dir) => Some(RuleSet::load_dir(dir)?),
        None => None,
    };
    // Site products are site rules too: they replace bundled ids and win precedence ties.
    let site = match &cfg.products_dir {
        Some(dir) => Some(
            Dictionary::load_dir(dir, bundled.aliases())?.apply(site_rules.unwrap_or_default())?,
        ),
        None => site_rules,
    };
    Ok(match site {
        Some(site) => bundled.with_overrides(site),
        None => bundled,
    })
}

fn engine_config(cfg: &Config) -> EngineConfig {
    let mut e = EngineConfig {
        dissector: DissectorConfig {
            reassembly: ReassemblyConfig {
                prefix_limit: cfg.stream_prefix_bytes,
                ..ReassemblyConfig::default()
            },
            max_flows: cfg.max_flows,
            ..DissectorConfig::default()
        },
        ..EngineConfig::default()
    };
    e.devices.max_devices = cfg.max_devices;
    e
}

fn open_output(cfg: &Config, instance: &str) -> anyhow::Result<Output> {
    match parse_output_url(&cfg.output)? {
        OutputSpec::Jsonl(target) => Ok(Output::Jsonl(JsonlOutput::open(&target)?)),
        OutputSpec::Mqtt(_) => {
            let mut m = MqttConfig::new(
                cfg.output.clone(),
                cfg.site.clone(),
                cfg.agent_id.clone(),
                instance,
                cfg.spool_dir.clone(),
            );
            m.client.username = cfg.mqtt_username.clone();
            m.client.password = cfg.mqtt_password.clone();
            m.client.tls.ca_file = cfg.mqtt_ca.clone();
            m.client.tls.client_cert = cfg.mqtt_cert.clone();
            m.client.tls.client_key = cfg.mqtt_key.clone();
            m.client.keep_alive = cfg.keep_alive;
            m.spool_max_bytes = cfg.spool_max_bytes;
            ward_agent::output::spool::create_private_dir(&cfg.spool_dir).with_context(|| {
                format!(
                    "creating spool directory {} (--spool-dir / WARD_SPOOL_DIR)",
                    cfg.spool_dir.display()
                )
            })?;
            Ok(Output::Mqtt(MqttOutput::start(m)?))
        }
    }
}

fn loop_config(cfg: &Config, instance: &str, started_at: SystemTime) -> LoopConfig {
    LoopConfig {
        site: cfg.site.clone(),
        agent_id: cfg.agent_id.clone(),
        instance: instance.to_owned(),
        started_at,
        batch_interval: cfg.batch_interval,
        snapshot_interval: cfg.snapshot_interval,
        stats_interval: cfg.stats_interval,
        devices_per_message: 500,
    }
}

/// Sets `stop` on SIGTERM or SIGINT.
async fn watch_signals(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping: flushing devices and spool"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping: flushing devices and spool"),
    }
    stop.store(true, Ordering::Relaxed);
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

fn agent(command: Command) -> anyhow::Result<()> {
    let started_at = SystemTime::now();
    let instance = format!(
        "{:x}-{:x}",
        started_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
        std::process::id()
    );
    let (cfg, live) = match command {
        Command::Capture {
            interfaces,
            user,
            filter,
            ring_bytes,
            block_timeout,
            workers,
            common,
        } => {
            let live = LiveOptions {
                interfaces,
                user,
                filter,
                ring_bytes,
                block_timeout_ms: block_timeout,
                workers,
            };
            (load_config(common, live)?, None)
        }
        Command::Read { files, common } => {
            (load_config(common, LiveOptions::default())?, Some(files))
        }
        Command::Rules { .. } | Command::Products { .. } => unreachable!("handled before"),
    };
    init_logging(&cfg)?;
    let rules = load_rules(&cfg)?;
    tracing::info!(
        site = %cfg.site,
        agent_id = %cfg.agent_id,
        output = %cfg.output,
        rules = rules.len(),
        "ward-agent starting"
    );
    let engine = Engine::new(engine_config(&cfg), rules);
    let lcfg = loop_config(&cfg, &instance, started_at);
    let stop = Arc::new(AtomicBool::new(false));

    // Capture sockets are opened, and privileges dropped, before any other thread exists:
    // capabilities are per thread.
    let capture = match &live {
        None => {
            if cfg.interfaces.is_empty() {
                bail!("no interface to capture on: give --interface IF (or capture.interfaces in the config file)");
            }
            let mut c = CaptureConfig::for_interfaces(cfg.interfaces.clone());
            c.promiscuous = cfg.promiscuous;
            c.snaplen = cfg.read_buffer_bytes;
            c.ring_bytes = cfg.ring_bytes;
            c.block_timeout = cfg.block_timeout;
            c.filter = cfg.filter.clone();
            c.workers = cfg.workers;
            let capture = Capture::open(&c)?;
            // As root, the agent never keeps running as root: it switches to --user, or to the
            // packaged "ward" user when none is given.
            let user = cfg.user.clone().or_else(|| {
                (nix::unistd::geteuid().is_root()
                    && nix::unistd::User::from_name(DEFAULT_USER)
                        .ok()
                        .flatten()
                        .is_some())
                .then(|| DEFAULT_USER.to_owned())
            });
            match &user {
                Some(user) => ward_agent::privileges::drop_to(user)
                    .with_context(|| format!("dropping privileges to user {user:?} (--user)"))?,
                None if nix::unistd::geteuid().is_root() => tracing::warn!(
                    "running as root: no --user given and no {DEFAULT_USER:?} user exists; \
                     create one or pass --user to keep only CAP_NET_RAW"
                ),
                None => {}
            }
            Some(capture)
        }
        Some(_) => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _guard = runtime.enter();
    runtime.spawn(watch_signals(stop.clone()));
    let output = open_output(&cfg, &instance)?;

    let mut engine = engine;
    let mut batcher = ward_agent::run::batcher(&lcfg);
    let summary = match (capture, live) {
        (Some(capture), _) => {
            let rings = cfg.interfaces.len() * cfg.workers;
            let (handle, rx, workers) =
                ward_agent::workers::start(capture, rings, engine.dissector_config(), 65_536)?;
            tracing::info!(interfaces = ?cfg.interfaces, workers = cfg.workers, "capturing");
            run_live(
                &lcfg,
                &mut engine,
                &mut batcher,
                &output,
                ward_agent::run::Live {
                    handle: &handle,
                    packets: rx,
                    workers,
                },
                stop.clone(),
            )?
        }
        (None, Some(files)) => {
            // One engine across files: devices seen in several files are one device.
            let mut last = Default::default();
            let mut failed = None;
            for path in files {
                let name = path.display().to_string();
                let result = if path.as_os_str() == "-" {
                    run_file(
                        &lcfg,
                        &mut engine,
                        &mut batcher,
                        &output,
                        &name,
                        std::io::stdin(),
                        0,
                        stop.clone(),
                    )
                } else {
                    File::open(&path)
                        .with_context(|| format!("opening capture {}", path.display()))
                        .and_then(|f| {
                            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                            run_file(
                                &lcfg,
                                &mut engine,
                                &mut batcher,
                                &output,
                                &name,
                                f,
                                size,
                                stop.clone(),
                            )
                        })
                };
                let s = match result {
                    Ok(s) => s,
                    // A capture error names the file and the offset itself.
                    Err(e) if e.is::<ward_agent::pcap::ReadError>() => {
                        failed = Some(e);
                        break;
                    }
                    Err(e) => {
                        failed = Some(e.context(format!("reading {}", path.display())));
                        break;
                    }
                };
                tracing::info!(
                    file = %path.display(),
                    packets = s.packets,
                    devices = s.devices,
                    devices_evicted = s.devices_evicted,
                    "capture read"
                );
                last = s;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            if let Some(e) = failed {
                // What was read before the failure has been published: deliver it (or leave
                // it spooled) before reporting the error.
                let _ = runtime.block_on(output.shutdown(SHUTDOWN_TIMEOUT));
                return Err(e);
            }
            last
        }
        (None, None) => unreachable!("capture or read"),
    };
    let out = runtime.block_on(output.shutdown(SHUTDOWN_TIMEOUT))?;
    tracing::info!(
        packets = summary.packets,
        devices = summary.devices,
        devices_evicted = summary.devices_evicted,
        devices_evicted_unpublished = summary.devices_evicted_unpublished,
        messages = summary.messages,
        spooled_unacknowledged = out.spool_depth,
        "ward-agent stopped"
    );
    // Freeing a table of 100 000 devices one by one only delays the exit.
    std::mem::forget(engine);
    if out.spool_depth > 0 {
        tracing::warn!(
            messages = out.spool_depth,
            "messages remain in the spool; they are sent on the next start"
        );
    }
    Ok(())
}

fn rules_command(cmd: RulesCommand) -> anyhow::Result<()> {
    match cmd {
        RulesCommand::Check { dir } => {
            let summary = rules::check_dir(&dir)?;
            println!("{summary}");
        }
        RulesCommand::List => {
            let set = RuleSet::bundled()?;
            for id in set.ids() {
                println!("{id}");
            }
        }
    }
    Ok(())
}

fn products_command(cmd: ProductsCommand) -> anyhow::Result<()> {
    match cmd {
        ProductsCommand::Check { dir } => {
            let summary = products::check_dir(&dir)?;
            println!("{summary}");
        }
        ProductsCommand::List => {
            let dictionary = Dictionary::bundled()?;
            for name in dictionary.aliases().names() {
                println!("manufacturer {name}");
            }
            for id in dictionary.rules().ids() {
                println!("{id}");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Rules { command } => rules_command(command),
        Command::Products { command } => products_command(command),
        other => agent(other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
