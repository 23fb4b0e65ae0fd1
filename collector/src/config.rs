//! Collector configuration: a TOML file (`--config`), overridden by `WARD_COLLECTOR_*`
//! environment variables, overridden by flags.
//!
//! The file format is [`Config`] itself: every key optional, a default where the file says
//! nothing, unknown keys errors (a typo must never silently leave a default in place). The flags
//! and their variables are declared here too, as [`Overrides`] (every command) and
//! [`ServeOverrides`] (`serve`), which the binary flattens into its command line: one module
//! names each setting's key, flag and variable. clap puts a flag over its variable;
//! [`Config::resolve`] puts both over the file and checks the result, naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::compliance::flags::FlagConfig;

/// The whole configuration file, and the effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SQLite database file, or a `postgres://`/`postgresql://` URL (PostgreSQL; several
    /// collectors may share it).
    pub db: PathBuf,
    /// Log level or filter.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Embedded broker (used unless `source.url` is set).
    pub broker: BrokerSection,
    /// External broker to subscribe to instead of the embedded one.
    pub source: SourceSection,
    /// Ingest tuning.
    pub ingest: IngestSection,
    /// The HTTP API.
    pub http: HttpSection,
    /// The web console on the API's address (issue 21).
    pub console: ConsoleSection,
    /// Alerts on new and resolved flags (MQTT `ward/v1/alerts/<site>`, webhook).
    pub alerts: crate::alerts::AlertConfig,
    /// Flag thresholds.
    pub flags: FlagConfig,
    /// Security advisories: the vendor alias table's extension.
    pub advisories: AdvisoriesSection,
}

/// `[advisories]`: how advisories are matched to devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvisoriesSection {
    /// A vendor alias file (the format of the bundled `collector/data/vendor-aliases.toml`)
    /// that extends the bundled table: your CMMS's or devices' names for the same companies.
    pub vendor_aliases: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: PathBuf::from("ward-collector.db"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            broker: BrokerSection::default(),
            source: SourceSection::default(),
            ingest: IngestSection::default(),
            http: HttpSection::default(),
            console: ConsoleSection::default(),
            alerts: crate::alerts::AlertConfig::default(),
            flags: FlagConfig::default(),
            advisories: AdvisoriesSection::default(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[broker]`: the embedded MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSection {
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS server certificate (PEM); with `tls_key`, the listener speaks MQTT over TLS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that agent client certificates must chain to (mutual TLS).
    pub tls_ca: Option<PathBuf>,
    /// File of per-agent credentials (TOML): `agent-id = "password"`, or
    /// `agent-id = { password = "…", site = "…" }` to bind the agent to one site. The user name
    /// is the agent id: an agent may publish only under `ward/v1/<site>/<its id>/`. When set,
    /// anonymous connections are refused.
    pub credentials_file: Option<PathBuf>,
    /// Identities (user names, or client-certificate common names) that are read-only alert
    /// consumers: they may subscribe to `ward/v1/alerts/…` and publish nothing.
    pub alert_readers: Vec<String>,
    /// Listen on a non-loopback address without TLS or without authentication (logged as a
    /// warning). Without it such a listener is refused.
    pub allow_insecure_listen: bool,
    /// Largest accepted MQTT payload, bytes.
    pub max_payload: usize,
}

impl Default for BrokerSection {
    fn default() -> Self {
        BrokerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            credentials_file: None,
            alert_readers: Vec::new(),
            allow_insecure_listen: false,
            max_payload: 4 << 20,
        }
    }
}

/// `[source]`: an external broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSection {
    /// `mqtt://host:port` or `mqtts://host:port`; unset = embedded broker. A comma-separated
    /// list names the nodes of one broker cluster sharing sessions (NATS with JetStream: each
    /// node's MQTT listener); the collector uses the first and moves to the next on failure.
    pub url: Option<String>,
    /// MQTT client id (must be stable: the broker keeps the persistent session under it).
    pub client_id: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) for `mqtts://`.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// Shared-subscription group: several collectors split the agents' messages
    /// (`$share/<group>/ward/v1/+/+/devices`).
    pub share_group: Option<String>,
    /// Only these sites' agents (`ward/v1/<site>/+/…`); empty: every site. Collectors of a
    /// broker without shared subscriptions (a NATS cluster) split the agents by site with it,
    /// each taking a disjoint set.
    pub sites: Vec<String>,
}

/// `[http]`: the API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// Serve the API at all.
    pub enabled: bool,
    /// Listen address (put a TLS-terminating proxy in front for other hosts).
    pub listen: SocketAddr,
    /// Serve plain HTTP on a non-loopback address (logged as a warning; tokens then cross the
    /// network in clear text unless a proxy on the same host terminates TLS). Without it such
    /// a listener is refused.
    pub allow_insecure_listen: bool,
    /// Expensive requests (coverage, installed base, contracts, assets, agents, evaluate,
    /// `/metrics`) served at once: each may read the whole inventory.
    pub expensive_concurrency: usize,
    /// Longest an expensive request waits for its turn before 503 (`Retry-After`), ms.
    pub expensive_wait_ms: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_insecure_listen: false,
            expensive_concurrency: crate::access::api::DEFAULT_EXPENSIVE_CONCURRENCY,
            expensive_wait_ms: crate::access::api::DEFAULT_EXPENSIVE_WAIT.as_millis() as u64,
        }
    }
}

/// `[console]`: the web console served at `/` on the API's address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSection {
    /// Serve the console (with the API; `[http] enabled = false` turns both off).
    pub enabled: bool,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// A session ends this many hours after sign-in, however busy.
    pub session_max_hours: u64,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Set it when a TLS-terminating
    /// proxy fronts the collector, which serves plain HTTP itself.
    pub secure_cookie: bool,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection {
            enabled: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            secure_cookie: false,
        }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Most messages per database transaction.
    pub batch: usize,
    /// Least seconds between two sweeps, evaluations of every device (time-based flags such as
    /// end of support need them; new data does not wait for one: the devices it changed are
    /// evaluated on their own). A sweep also waits four times its own last duration.
    pub evaluate_interval_secs: u64,
    /// Least seconds between evaluations of the devices new data changed, on top of the
    /// evaluator's own rule (never sooner than four times the last one's cost, nor than
    /// 250 ms). 0 = that rule alone: an observation becomes a flag within a second.
    pub evaluate_debounce_secs: u64,
    /// Seconds the evaluator's lease lasts without renewal (several collectors on one
    /// PostgreSQL database: one evaluates; another takes over this long after it died).
    pub evaluator_lease_secs: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            batch: 512,
            evaluate_interval_secs: 60,
            evaluate_debounce_secs: 0,
            evaluator_lease_secs: 30,
        }
    }
}

/// The settings every command takes, as flags or `WARD_COLLECTOR_*` variables (clap puts a
/// flag over its variable); `None` = given by neither, so the file or the default holds.
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    /// Configuration file (TOML).
    #[arg(
        long,
        global = true,
        env = "WARD_COLLECTOR_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// SQLite database file, or a PostgreSQL URL (`postgres://user@host/db?sslmode=require`)
    /// [default: ward-collector.db].
    #[arg(long, global = true, env = "WARD_COLLECTOR_DB", value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Log level or filter, e.g. info, debug, ward_collector=debug [default: info].
    #[arg(long, global = true, env = "WARD_COLLECTOR_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(
        long,
        global = true,
        env = "WARD_COLLECTOR_LOG_FORMAT",
        value_name = "FORMAT",
        // Listed with their descriptions, they would turn every command's short help long.
        hide_possible_values = true
    )]
    pub log_format: Option<LogFormat>,
}

/// `serve`'s settings, as flags or `WARD_COLLECTOR_*` variables; each overrides the file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeOverrides {
    /// Embedded broker listen address [default: 127.0.0.1:1883].
    #[arg(long, env = "WARD_COLLECTOR_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Subscribe to this external broker instead of embedding one: mqtt://host:port or
    /// mqtts://host:port. For a NATS cluster (JetStream on, an `mqtt { }` listener per node)
    /// list every node's MQTT listener, comma-separated (mqtt://n1:1883,mqtt://n2:1883,…):
    /// the persistent session lives in the cluster, so the collector moves to the next node
    /// when one fails. NATS 2.9 has no `$share` groups (--share-group would receive nothing
    /// there): several collectors on one NATS cluster split the agents by site (--sites), or
    /// each receives every message (stored once; high availability, not a load split).
    #[arg(long, env = "WARD_COLLECTOR_BROKER", value_name = "URL")]
    pub broker: Option<String>,
    /// MQTT client id at the external broker (stable: it names the persistent session).
    #[arg(long, env = "WARD_COLLECTOR_CLIENT_ID")]
    pub client_id: Option<String>,
    /// User name at the external broker (password: --mqtt-password-file or
    /// WARD_COLLECTOR_MQTT_PASSWORD).
    #[arg(long, env = "WARD_COLLECTOR_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// File holding the external broker password.
    #[arg(long, env = "WARD_COLLECTOR_MQTT_PASSWORD_FILE", value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Shared-subscription group at the external broker, so several collectors split agents.
    #[arg(long, env = "WARD_COLLECTOR_SHARE_GROUP")]
    pub share_group: Option<String>,
    /// Take only these sites' agents from the external broker (comma-separated site names;
    /// default every site). A NATS cluster has no shared subscriptions: give each collector a
    /// disjoint set of sites there to split the load (each keeps its own persistent session,
    /// so a collector's sites wait in the cluster while it restarts).
    #[arg(
        long,
        env = "WARD_COLLECTOR_SITES",
        value_name = "SITE,…",
        value_delimiter = ','
    )]
    pub sites: Vec<String>,
    /// Per-agent credentials for the embedded broker (TOML: agent-id = "password", or
    /// agent-id = { password = "...", site = "..." }). The user name is the agent id: an agent
    /// may publish only under ward/v1/<site>/<its id>/ and connect only as client id <id> or
    /// ward-<id>.
    #[arg(long, env = "WARD_COLLECTOR_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// An identity (user name or client-certificate common name) that may only read alerts
    /// (subscribe to ward/v1/alerts/...). Repeat for several.
    #[arg(long = "alert-reader", value_name = "NAME")]
    pub alert_readers: Vec<String>,
    /// Allow the embedded broker and the HTTP API to listen on a non-loopback address without
    /// TLS or authentication (warned about). Without it the collector refuses to start so.
    #[arg(long, env = "WARD_COLLECTOR_ALLOW_INSECURE_LISTEN")]
    pub allow_insecure_listen: bool,
    /// TLS certificate for the embedded broker (PEM).
    #[arg(long, env = "WARD_COLLECTOR_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS key for the embedded broker (PEM).
    #[arg(long, env = "WARD_COLLECTOR_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA for agent client certificates (embedded broker) or for the external broker.
    #[arg(long, env = "WARD_COLLECTOR_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "WARD_COLLECTOR_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Do not serve the HTTP API.
    #[arg(long)]
    pub no_http: bool,
    /// Expensive API requests (coverage, installed base, contracts, assets, agents, evaluate,
    /// /metrics) served at once; others wait, then get 503 [default: 2].
    #[arg(
        long,
        env = "WARD_COLLECTOR_API_EXPENSIVE_CONCURRENCY",
        value_name = "N"
    )]
    pub api_expensive_concurrency: Option<usize>,
    /// Longest an expensive API request waits for its turn before 503, milliseconds
    /// [default: 10000].
    #[arg(long, env = "WARD_COLLECTOR_API_EXPENSIVE_WAIT_MS", value_name = "MS")]
    pub api_expensive_wait_ms: Option<u64>,
    /// Least seconds between sweeps: evaluations of every device, for time-based flags (new
    /// data is evaluated within a second without one) [default: 60].
    #[arg(long, value_name = "SECS")]
    pub evaluate_interval: Option<u64>,
}

/// A configuration problem, naming the file or the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading configuration {path}: {error}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause (in the message, so it is not a `source` printed twice by `{:#}`).
        error: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("configuration {path}: {error}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What, with the line and column.
        error: toml::de::Error,
    },
    /// A value is out of range or malformed.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// The setting, as `file key / --flag / WARD_COLLECTOR_VARIABLE`.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `slot` takes the override when one was given.
fn set<T>(slot: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *slot = v;
    }
}

fn at_least_one(setting: &'static str, v: u64) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(ConfigError::Invalid {
            setting,
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

impl Config {
    /// Parses a configuration file's text; errors carry the line and column.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            error,
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(path, &text)
    }

    /// The effective configuration: the file `--config` names (the defaults without one),
    /// then [`Config::resolve`].
    pub fn from_overrides(
        o: &Overrides,
        serve: Option<&ServeOverrides>,
    ) -> Result<Config, ConfigError> {
        let file = match &o.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        Config::resolve(file, o, serve)
    }

    /// Puts the flags and variables (`o`, and `serve`'s when the command is `serve`) over
    /// `file`, then checks what needs more than its type: every error names the setting.
    pub fn resolve(
        file: Config,
        o: &Overrides,
        serve: Option<&ServeOverrides>,
    ) -> Result<Config, ConfigError> {
        let mut c = file;
        set(&mut c.db, o.db.clone());
        set(&mut c.log_level, o.log_level.clone());
        set(&mut c.log_format, o.log_format);
        if let Some(s) = serve {
            c.apply_serve(s.clone());
        }
        c.log_level
            .parse::<tracing_subscriber::filter::Targets>()
            .map_err(|e| ConfigError::Invalid {
                setting: "log_level / --log-level / WARD_COLLECTOR_LOG",
                message: format!("{:?}: {e}", c.log_level),
            })?;
        at_least_one("ingest.batch", c.ingest.batch as u64)?;
        at_least_one(
            "ingest.evaluate_interval_secs / --evaluate-interval",
            c.ingest.evaluate_interval_secs,
        )?;
        at_least_one(
            "http.expensive_concurrency / --api-expensive-concurrency / \
             WARD_COLLECTOR_API_EXPENSIVE_CONCURRENCY",
            c.http.expensive_concurrency as u64,
        )?;
        if let Some(path) = c.flags.remote_access_domains_file.clone() {
            c.flags
                .remote_access_domains
                .extend_from_file(&path)
                .map_err(|e| ConfigError::Invalid {
                    setting: "flags.remote_access_domains_file",
                    message: e.to_string(),
                })?;
        }
        c.flags.vendor_aliases =
            crate::compliance::vendors::VendorAliases::load(c.advisories.vendor_aliases.as_deref())
                .map_err(|e| ConfigError::Invalid {
                    setting: "advisories.vendor_aliases",
                    message: e.to_string(),
                })?;
        if !c.source.sites.is_empty() && c.source.url.is_none() {
            return Err(ConfigError::Invalid {
                setting: "source.sites / --sites / WARD_COLLECTOR_SITES",
                message: "applies to an external broker (source.url / --broker); the embedded \
                          broker's agents all belong to this collector"
                    .into(),
            });
        }
        for site in &c.source.sites {
            ward_mqtt::topic::check_level(site).map_err(|e| ConfigError::Invalid {
                setting: "source.sites / --sites / WARD_COLLECTOR_SITES",
                message: format!("a site {e}"),
            })?;
        }
        if c.source.url.is_none() && c.broker.tls_cert.is_some() != c.broker.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                setting: "broker.tls_cert and broker.tls_key / --tls-cert and --tls-key",
                message: "the embedded broker's TLS needs both or neither".into(),
            });
        }
        Ok(c)
    }

    fn apply_serve(&mut self, s: ServeOverrides) {
        set(&mut self.broker.listen, s.listen);
        set(&mut self.source.url, s.broker.map(Some));
        set(&mut self.source.client_id, s.client_id.map(Some));
        set(&mut self.source.username, s.mqtt_username.map(Some));
        set(
            &mut self.source.password_file,
            s.mqtt_password_file.map(Some),
        );
        set(&mut self.source.share_group, s.share_group.map(Some));
        if !s.sites.is_empty() {
            self.source.sites = s.sites;
        }
        set(&mut self.broker.credentials_file, s.credentials.map(Some));
        if !s.alert_readers.is_empty() {
            self.broker.alert_readers = s.alert_readers;
        }
        if s.allow_insecure_listen {
            // One flag for both listeners: an operator who accepts clear text on the network
            // for MQTT accepts it for the API too.
            self.broker.allow_insecure_listen = true;
            self.http.allow_insecure_listen = true;
        }
        set(&mut self.broker.tls_cert, s.tls_cert.map(Some));
        set(&mut self.broker.tls_key, s.tls_key.map(Some));
        // The one CA flag serves whichever broker is in use.
        set(&mut self.source.ca, s.tls_ca.clone().map(Some));
        set(&mut self.broker.tls_ca, s.tls_ca.map(Some));
        set(&mut self.http.listen, s.http);
        if s.no_http {
            self.http.enabled = false;
        }
        set(
            &mut self.http.expensive_concurrency,
            s.api_expensive_concurrency,
        );
        set(&mut self.http.expensive_wait_ms, s.api_expensive_wait_ms);
        set(&mut self.ingest.evaluate_interval_secs, s.evaluate_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The flags as the binary declares them (global ones and `serve`'s).
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        o: Overrides,
        #[command(flatten)]
        serve: ServeOverrides,
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("ward-collector").chain(args.iter().copied()))
            .unwrap()
    }

    fn file(text: &str) -> Config {
        Config::parse(Path::new("collector.toml"), text).unwrap()
    }

    /// A site's remote-access domain file extends the bundled list when the configuration is
    /// resolved; a bad one names the setting.
    #[test]
    fn remote_access_domains_file_extends_the_bundled_list() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("remote.toml");
        std::fs::write(
            &list,
            "[[domain]]\ndomain = \"remote.example-medical.com\"\nproduct = \"Example remote \
             service\"\nkind = \"vendor_remote_service\"\nsource = \"service manual\"\n",
        )
        .unwrap();
        let text = format!("[flags]\nremote_access_domains_file = {:?}\n", list);
        let c = Config::resolve(file(&text), &Overrides::default(), None).unwrap();
        let d = &c.flags.remote_access_domains;
        assert!(d.find("x.remote.example-medical.com").is_some());
        assert!(d.find("router1.teamviewer.com").is_some());
        std::fs::write(&list, "[[domain]]\ndomain = \"com\"\n").unwrap();
        let e = Config::resolve(file(&text), &Overrides::default(), None).unwrap_err();
        assert!(e.to_string().contains("remote_access_domains_file"), "{e}");
        let text = "[flags]\nremote_access_domains_file = \"/nonexistent/ward/remote.toml\"\n";
        assert!(Config::resolve(file(text), &Overrides::default(), None).is_err());
    }

    #[test]
    fn the_packaged_sample_parses_and_resolves() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/collector.toml");
        let c = Config::load(Path::new(sample)).unwrap();
        assert_eq!(c.broker.listen.port(), 1883);
        let c = Config::resolve(c, &Overrides::default(), None).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn unknown_keys_and_bad_values_in_the_file_name_the_key_and_line() {
        let e = Config::parse(Path::new("c.toml"), "dbb = 'x'").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("dbb") && msg.contains("c.toml"), "{msg}");
        let text = "db = 'x'\n[http]\nlisten = '127.0.0.1:8080'\nexpensive_concurency = 3\n";
        let msg = Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 4") && msg.contains("expensive_concurency"),
            "{msg}"
        );
        let msg = Config::parse(Path::new("c.toml"), "log_format = 'xml'\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 1") && msg.contains("xml"), "{msg}");
        let e = Config::load(Path::new("/nonexistent/ward/collector.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let f = file(
            "db = 'file.db'\nlog_level = 'debug'\n\
             [broker]\nlisten = '127.0.0.1:1884'\ntls_ca = 'file-ca.pem'\n\
             [http]\nlisten = '127.0.0.1:9000'\nexpensive_wait_ms = 5\n",
        );
        // Nothing given: the file, and defaults where it says nothing.
        let c = Config::resolve(f.clone(), &Overrides::default(), None).unwrap();
        assert_eq!(c.db, Path::new("file.db"));
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(
            c.http.expensive_concurrency,
            HttpSection::default().expensive_concurrency
        );

        let given = flags(&[
            "--db",
            "flag.db",
            "--log-format",
            "json",
            "--listen",
            "0.0.0.0:8883",
            "--tls-ca",
            "flag-ca.pem",
            "--allow-insecure-listen",
            "--no-http",
            "--alert-reader",
            "noc",
            "--alert-reader",
            "soc",
            "--evaluate-interval",
            "5",
            "--api-expensive-concurrency",
            "3",
        ]);
        let c = Config::resolve(f.clone(), &given.o, Some(&given.serve)).unwrap();
        assert_eq!(c.db, Path::new("flag.db"));
        assert_eq!(c.log_level, "debug", "not given: the file's");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.broker.listen, "0.0.0.0:8883".parse().unwrap());
        assert_eq!(c.broker.tls_ca.as_deref(), Some(Path::new("flag-ca.pem")));
        assert_eq!(c.source.ca.as_deref(), Some(Path::new("flag-ca.pem")));
        assert!(c.broker.allow_insecure_listen && c.http.allow_insecure_listen);
        assert!(!c.http.enabled);
        assert_eq!(c.http.listen.port(), 9000, "not given: the file's");
        assert_eq!(c.http.expensive_wait_ms, 5);
        assert_eq!(c.http.expensive_concurrency, 3);
        assert_eq!(c.broker.alert_readers, ["noc", "soc"]);
        assert_eq!(c.ingest.evaluate_interval_secs, 5);

        // `serve`'s flags count only for `serve`.
        let c = Config::resolve(f, &given.o, None).unwrap();
        assert_eq!(c.broker.listen.port(), 1884);
        assert!(c.http.enabled);
    }

    #[test]
    fn every_flag_keeps_its_documented_variable() {
        // README.md, packaging/README.md and `--help` name these; a rename breaks deployments.
        let cmd = ServeOverrides::augment_args(Overrides::augment_args(clap::Command::new("t")));
        let pairs: Vec<(String, Option<String>)> = cmd
            .get_arguments()
            .filter_map(|a| {
                Some((
                    a.get_long()?.to_owned(),
                    a.get_env().map(|e| e.to_string_lossy().into_owned()),
                ))
            })
            .collect();
        let env = |v: &str| Some(format!("WARD_COLLECTOR_{v}"));
        let want = [
            ("config", env("CONFIG")),
            ("db", env("DB")),
            ("log-level", env("LOG")),
            ("log-format", env("LOG_FORMAT")),
            ("listen", env("LISTEN")),
            ("broker", env("BROKER")),
            ("client-id", env("CLIENT_ID")),
            ("mqtt-username", env("MQTT_USERNAME")),
            ("mqtt-password-file", env("MQTT_PASSWORD_FILE")),
            ("share-group", env("SHARE_GROUP")),
            ("sites", env("SITES")),
            ("credentials", env("CREDENTIALS")),
            ("alert-reader", None),
            ("allow-insecure-listen", env("ALLOW_INSECURE_LISTEN")),
            ("tls-cert", env("TLS_CERT")),
            ("tls-key", env("TLS_KEY")),
            ("tls-ca", env("TLS_CA")),
            ("http", env("HTTP")),
            ("no-http", None),
            (
                "api-expensive-concurrency",
                env("API_EXPENSIVE_CONCURRENCY"),
            ),
            ("api-expensive-wait-ms", env("API_EXPENSIVE_WAIT_MS")),
            ("evaluate-interval", None),
        ]
        .map(|(f, e)| (f.to_owned(), e));
        assert_eq!(pairs, want);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let invalid = |f: Config, o: &Overrides, s: Option<&ServeOverrides>| {
            Config::resolve(f, o, s).unwrap_err().to_string()
        };
        let o = Overrides {
            log_level: Some("ward_collector=loud".into()),
            ..Overrides::default()
        };
        let e = invalid(Config::default(), &o, None);
        assert!(
            e.contains("--log-level") && e.contains("WARD_COLLECTOR_LOG"),
            "{e}"
        );
        let e = invalid(file("[ingest]\nbatch = 0\n"), &Overrides::default(), None);
        assert!(e.contains("ingest.batch"), "{e}");
        let s = flags(&["--evaluate-interval", "0"]).serve;
        let e = invalid(Config::default(), &Overrides::default(), Some(&s));
        assert!(e.contains("--evaluate-interval"), "{e}");
        let s = flags(&["--api-expensive-concurrency", "0"]).serve;
        let e = invalid(Config::default(), &Overrides::default(), Some(&s));
        assert!(e.contains("http.expensive_concurrency"), "{e}");
        let s = flags(&["--tls-cert", "c.pem"]).serve;
        let e = invalid(Config::default(), &Overrides::default(), Some(&s));
        assert!(e.contains("--tls-key"), "{e}");
        // Sites split an external broker's agents; each is a topic level.
        let s = flags(&["--sites", "north,south"]).serve;
        let e = invalid(Config::default(), &Overrides::default(), Some(&s));
        assert!(
            e.contains("--sites") && e.contains("external broker"),
            "{e}"
        );
        let s = flags(&["--broker", "mqtt://n1:1883", "--sites", "north,a/b"]).serve;
        let e = invalid(Config::default(), &Overrides::default(), Some(&s));
        assert!(e.contains("--sites") && e.contains("'/'"), "{e}");
        let s = flags(&["--broker", "mqtt://n1:1883", "--sites", "north,south"]).serve;
        let c = Config::resolve(Config::default(), &Overrides::default(), Some(&s)).unwrap();
        assert_eq!(c.source.sites, ["north", "south"]);
        // A flag's own type is checked by clap, which names the flag.
        let e = Flags::try_parse_from(["t", "--log-format", "xml"]).unwrap_err();
        assert!(e.to_string().contains("--log-format"), "{e}");
        let e = Flags::try_parse_from(["t", "--listen", "nowhere"]).unwrap_err();
        assert!(e.to_string().contains("--listen"), "{e}");
    }
}
