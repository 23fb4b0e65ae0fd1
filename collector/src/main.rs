//! `ward-collector`: ingests agent observations into the inventory, imports contracts and the
//! CMMS asset register, links devices to both, and keeps compliance flags with evidence.
//! Thin wiring: the command line (its settings are declared in `config.rs`), logging, and a
//! dispatch to the library, which does the work.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use ward_collector::access::report::{self, Format, Kind, Status};
use ward_collector::access::tokens::Role;
use ward_collector::commands::{self, import_and_evaluate, open, Import};
use ward_collector::compliance::vendors::VendorAliases;
use ward_collector::config::{Config, LogFormat, Overrides, ServeOverrides};
use ward_collector::demo::DemoArgs;
use ward_collector::ingest::now_us;
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
    overrides: Overrides,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The whole system on the bundled sample site: a collector (embedded broker, SQLite in a
    /// temporary directory) receives examples/sample-site.pcap from the real ward-agent over
    /// MQTT, imports the sample contracts and CMMS export (and the fictional example advisories
    /// and KEV catalog), prints devices and flags, then serves the API with a read-only token
    /// until Ctrl-C.
    Demo(DemoArgs),
    /// Run the collector: embedded MQTT broker (or --broker), ingest, scheduled flag evaluation.
    /// Stops cleanly on SIGTERM/SIGINT after committing what it has acknowledged.
    Serve(Box<ServeOverrides>),
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
    /// Security advisories (CSAF 2.0, e.g. CISA ICS medical advisories): import, list, and the
    /// vendor alias table that matches their vendors to device manufacturers.
    Advisories {
        #[command(subcommand)]
        cmd: AdvisoriesCmd,
    },
    /// SBOMs (CycloneDX JSON) of the products under contract: import, list. Advisories that
    /// identify a component by PURL or CPE (OpenSSL, zlib…) then match the devices that run
    /// the product release the SBOM describes.
    Sbom {
        #[command(subcommand)]
        cmd: SbomCmd,
    },
    /// The CISA Known Exploited Vulnerabilities catalog: import, show.
    Kev {
        #[command(subcommand)]
        cmd: KevCmd,
    },
    /// OpenEoX end-of-life statements (when a vendor stops supporting and patching a
    /// product): import, list. A device matched to a statement's product raises
    /// end_of_life_product once its end of security support or end of life has passed.
    Eox {
        #[command(subcommand)]
        cmd: EoxCmd,
    },
    /// Re-link devices and re-evaluate every flag now (serve also does this on a schedule).
    Evaluate {
        /// Evaluate as of this time (RFC 3339 or YYYY-MM-DD) instead of now: for audits and tests.
        #[arg(long, value_name = "TIME", value_parser = commands::parse_time)]
        now: Option<i64>,
    },
    /// Print the inventory: devices with their links (JSON with --json).
    Devices {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// One device: its software-version timeline (`device versions ID`).
    Device {
        #[command(subcommand)]
        cmd: DeviceCmd,
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
        /// devices, flags, coverage, installed-base or patch-sla.
        #[arg(value_enum)]
        kind: Kind,
        /// Only these manufacturers (as a vendor token).
        #[arg(long, value_name = "MANUFACTURER")]
        vendor: Vec<String>,
        /// table, csv or json.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Flags: open (default) or resolved; `all` for both.
        #[arg(long, value_enum, default_value = "open")]
        status: Status,
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
        role: Role,
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

#[derive(Debug, Subcommand)]
enum AdvisoriesCmd {
    /// Import CSAF 2.0 advisories (JSON files, or directories of *.json). Each file is checked
    /// whole - document, tracking, product tree, vulnerabilities - and every problem is
    /// reported as file:line:column; any problem, in any file, imports nothing. Stored: the
    /// product tree flattened (vendor, product, version or range, product id, CPE/PURL/model
    /// numbers, legacy = end of life), product status, CVEs with CVSS, remediations and release
    /// dates. A newer tracking.version replaces the stored advisory, the same one changes
    /// nothing, an older one is refused (and nothing of the invocation is imported).
    Import {
        /// CSAF JSON files or directories.
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List stored advisories with their products, CVEs and remediations (JSON).
    List,
    /// Print the vendor alias table in effect: the bundled one plus `[advisories]
    /// vendor_aliases` from the configuration (JSON).
    Vendors,
}

#[derive(Debug, Subcommand)]
enum SbomCmd {
    /// Import a CycloneDX 1.4-1.6 JSON SBOM (components with name, version, PURL, CPE; nested
    /// components flattened) for a product under contract. The product is --product/--version,
    /// else the SBOM's metadata.component name and version; without a model nothing is
    /// imported. A device whose manufacturer (the SBOM's, else the contract's supplier, through
    /// the vendor alias table), model (case and spacing ignored) and software version (by the
    /// version order; no version in the SBOM = every version) are that product's runs its
    /// components: an advisory that identifies one of them by PURL or CPE raises
    /// vulnerable_software and the other advisory flags on it, the evidence naming the SBOM,
    /// the component and the advisory entry. The same serialNumber again replaces the stored
    /// SBOM unless its BOM version is older (refused). All or nothing, errors as
    /// file:line:column; the contract must be imported.
    Import {
        /// The CycloneDX JSON file.
        file: PathBuf,
        /// The contract whose product it describes.
        #[arg(long, value_name = "ID")]
        contract: String,
        /// The device model it describes (default: metadata.component.name).
        #[arg(long, value_name = "MODEL")]
        product: Option<String>,
        /// The software version it describes (default: metadata.component.version).
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List stored SBOMs with their product binding and components (JSON).
    List,
}

#[derive(Debug, Subcommand)]
enum KevCmd {
    /// Import the CISA KEV catalog (known_exploited_vulnerabilities.json), checked against
    /// CISA's schema (required fields, CVE and CWE ids, dates) and for a count that matches its
    /// entries; it replaces the stored catalog whole (entries CISA removed go). All or nothing,
    /// errors as file:line:column.
    Import {
        /// The catalog's JSON file.
        file: PathBuf,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the stored catalog (JSON).
    List,
}

#[derive(Debug, Subcommand)]
enum DeviceCmd {
    /// Every software-version change of a device, oldest first (a rollback is an entry of its
    /// own): first and last seen, the agent and evidence fields that reported it, upgrade or
    /// rollback by the version order, and which one is current. The API's
    /// /api/v1/devices/{id}/versions.
    Versions {
        /// The device id (`devices` lists them).
        id: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EoxCmd {
    /// Import OpenEoX JSON files (or directories of *.json): shell documents (the TC's draft
    /// shell schema: statements, each a core document with vendorName, productName and
    /// productVersion), or a bare OpenEoX Core 1.0 document (the dates only) with --vendor and
    /// --product (and --version) saying which product it is about. The core is checked as its
    /// closed schema says (unknown keys, dates that are neither RFC 3339 nor "tba" refused).
    /// A statement is keyed by vendor, product and version: a later last_updated replaces the
    /// stored one, the same changes nothing, an earlier one is refused. All or nothing, errors
    /// as file:line:column. productVersion is an exact version, or a range such as "<2.0" or
    /// "vers:generic/>=1.0|<2.0".
    Import {
        /// OpenEoX JSON files or directories.
        #[arg(required = true, value_name = "FILE|DIR")]
        paths: Vec<PathBuf>,
        /// For core documents: the vendor (matched through the vendor alias table).
        #[arg(long, value_name = "VENDOR")]
        vendor: Option<String>,
        /// For core documents: the product (matched to device models like an advisory's).
        #[arg(long, value_name = "PRODUCT")]
        product: Option<String>,
        /// For core documents: the version or range (default: every version).
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Validate only.
        #[arg(long)]
        dry_run: bool,
    },
    /// List stored statements (JSON).
    List,
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
    let Cli { mut overrides, cmd } = Cli::parse();
    if matches!(cmd, Cmd::Demo(_)) {
        // The demo prints tables; logs would drown them unless a level is asked for.
        overrides.log_level.get_or_insert_with(|| "warn".into());
    }
    let serve = match &cmd {
        Cmd::Serve(s) => Some(&**s),
        _ => None,
    };
    let cfg = Config::from_overrides(&overrides, serve)?;
    init_logging(&cfg)?;
    dispatch(cmd, cfg)
}

fn init_logging(cfg: &Config) -> anyhow::Result<()> {
    // `Targets`, not `EnvFilter`: see ward-agent's init_logging (the `env-filter` feature makes
    // every `Regex` build a full DFA).
    let filter: tracing_subscriber::filter::Targets = cfg
        .log_level
        .parse()
        .with_context(|| format!("invalid log filter {:?}", cfg.log_level))?;
    // The PostgreSQL driver logs every statement's bound values at debug: the inventory's
    // contents (and token hashes) stay out of the log unless its target is asked for by name.
    let filter = if cfg.log_level.contains("postgres") {
        filter
    } else {
        filter
            .with_target("tokio_postgres", tracing::Level::INFO)
            .with_target("postgres", tracing::Level::INFO)
    };
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

fn print<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    report::write_json(v, &mut std::io::stdout().lock())
}

/// Stores `what` and evaluates, or with `dry_run` only says that it was read and checked.
fn import(cfg: &Config, what: Import, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        println!("{what}, valid");
        return Ok(());
    }
    let outcome = import_and_evaluate(&mut open(cfg)?, &[what], &cfg.flags, now_us())?;
    print(&outcome.json()?)
}

fn dispatch(cmd: Cmd, cfg: Config) -> anyhow::Result<()> {
    let out = &mut std::io::stdout();
    match cmd {
        Cmd::Serve(_) => ward_collector::serve::run(cfg),
        Cmd::Demo(args) => ward_collector::demo::run(args),
        Cmd::Ingest { files, batch } => import(&cfg, Import::observations(files, batch), false),
        Cmd::Contracts { cmd } => match cmd {
            ContractsCmd::Import { file, dry_run } => {
                import(&cfg, Import::contracts(file)?, dry_run)
            }
            ContractsCmd::List => print(&open(&cfg)?.inventory()?.contracts),
        },
        Cmd::Assets { cmd } => match cmd {
            AssetsCmd::Import {
                file,
                map,
                replace,
                dry_run,
            } => import(&cfg, Import::assets(file, &map, replace)?, dry_run),
            AssetsCmd::List => print(&open(&cfg)?.inventory()?.assets),
        },
        Cmd::Advisories { cmd } => match cmd {
            AdvisoriesCmd::Import { paths, dry_run } => {
                import(&cfg, Import::advisories(paths)?, dry_run)
            }
            AdvisoriesCmd::List => print(&open(&cfg)?.advisories()?),
            AdvisoriesCmd::Vendors => {
                let table = VendorAliases::load(cfg.advisories.vendor_aliases.as_deref())?;
                print(table.vendors())
            }
        },
        Cmd::Sbom { cmd } => match cmd {
            SbomCmd::Import {
                file,
                contract,
                product,
                version,
                dry_run,
            } => {
                let binding = ward_collector::import::sbom::Binding {
                    contract_id: contract,
                    model: product,
                    version,
                };
                import(&cfg, Import::sbom(file, &binding)?, dry_run)
            }
            SbomCmd::List => print(&open(&cfg)?.sboms()?),
        },
        Cmd::Kev { cmd } => match cmd {
            KevCmd::Import { file, dry_run } => import(&cfg, Import::kev(file)?, dry_run),
            KevCmd::List => print(&open(&cfg)?.kev()?),
        },
        Cmd::Eox { cmd } => match cmd {
            EoxCmd::Import {
                paths,
                vendor,
                product,
                version,
                dry_run,
            } => {
                let binding = ward_collector::import::eox::Binding {
                    vendor,
                    product,
                    version,
                };
                import(&cfg, Import::eox(paths, &binding)?, dry_run)
            }
            EoxCmd::List => print(&open(&cfg)?.eox_statements()?),
        },
        Cmd::Evaluate { now } => {
            let now = now.unwrap_or_else(now_us);
            print(&import_and_evaluate(&mut open(&cfg)?, &[], &cfg.flags, now)?.evaluation)
        }
        Cmd::Devices { json } => report::inventory(&open(&cfg)?, Format::json_if(json), out),
        Cmd::Device { cmd } => match cmd {
            DeviceCmd::Versions { id, json } => {
                report::device_versions(&open(&cfg)?, id, Format::json_if(json), out)
            }
        },
        Cmd::Flags { all, json } => {
            report::stored_flags(&open(&cfg)?, !all, Format::json_if(json), out)
        }
        Cmd::Agents => print(&open(&cfg)?.agents()?),
        Cmd::Merges => print(&open(&cfg)?.merges()?),
        Cmd::Status => print(&open(&cfg)?.counts()?),
        Cmd::Token { cmd } => {
            let mut store = open(&cfg)?;
            match cmd {
                TokenCmd::Create {
                    name,
                    role,
                    vendor,
                    expires,
                } => {
                    let lifetime = expires.map(Into::into);
                    let token = commands::create_token(
                        &mut store,
                        &name,
                        role,
                        &vendor,
                        lifetime,
                        now_us(),
                    )?;
                    Ok(writeln!(out, "{token}")?)
                }
                TokenCmd::List => print(&store.token_list()?),
                TokenCmd::Revoke { id } => {
                    let revoked = store.token_revoke(&id, now_us())?;
                    anyhow::ensure!(revoked, "no token with id {id:?}");
                    Ok(writeln!(out, "revoked {id}")?)
                }
            }
        }
        Cmd::Report {
            kind,
            vendor,
            format,
            status,
        } => {
            let viewer = report::viewer(&vendor);
            report::run(&open(&cfg)?, &viewer, kind, format, status, out)
        }
    }
}
