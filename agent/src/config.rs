//! Agent configuration: a TOML file, overridden by `WARD_*` environment variables, overridden by
//! command-line flags. This module holds the file format and the merge; `main.rs` declares the
//! flags (with their `WARD_*` variables) and hands them over as [`Overrides`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration file, every key optional. Unknown keys are errors, so a typo cannot
/// silently leave a default in place.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Site name used in MQTT topics.
    pub site: Option<String>,
    /// Agent id used in MQTT topics (default: host name).
    pub agent_id: Option<String>,
    /// Output URL: `mqtt://host:port`, `mqtts://host:port`, `jsonl:PATH`, `jsonl:-`.
    pub output: Option<String>,
    /// Unprivileged user to switch to after opening capture interfaces (when root).
    pub user: Option<String>,
    /// Seconds between stats log lines and status messages.
    pub stats_interval_secs: Option<u64>,
    /// Seconds between delta batches.
    pub batch_interval_secs: Option<u64>,
    /// Seconds between full snapshots.
    pub snapshot_interval_secs: Option<u64>,
    /// Capture settings.
    #[serde(default)]
    pub capture: CaptureSection,
    /// MQTT settings.
    #[serde(default)]
    pub mqtt: MqttSection,
    /// Spool settings.
    #[serde(default)]
    pub spool: SpoolSection,
    /// Table limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Fingerprint rules.
    #[serde(default)]
    pub rules: RulesSection,
    /// Product dictionary.
    #[serde(default)]
    pub products: ProductsSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
}

/// `[capture]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Interfaces to capture on.
    pub interfaces: Option<Vec<String>>,
    /// Promiscuous mode (default true).
    pub promiscuous: Option<bool>,
    /// Bytes kept per frame (the snapshot length; default 65536 fits jumbo and GRO frames).
    pub read_buffer_bytes: Option<usize>,
    /// Receive ring size per interface in bytes (default 67108864).
    pub ring_bytes: Option<usize>,
    /// Block timeout of the receive ring in milliseconds (default 100).
    pub block_timeout_ms: Option<u64>,
    /// tcpdump filter expression; only matching frames are captured.
    pub filter: Option<String>,
    /// Capture workers per interface (default: one per core, at most 8).
    pub workers: Option<usize>,
}

/// `[mqtt]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// User name.
    pub username: Option<String>,
    /// Password (prefer `password_file`).
    pub password: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM).
    pub client_key: Option<PathBuf>,
    /// Keep-alive in seconds.
    pub keep_alive_secs: Option<u64>,
}

/// `[spool]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Spool directory.
    pub dir: Option<PathBuf>,
    /// Spool size bound in bytes.
    pub max_bytes: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Most TCP flows tracked.
    pub max_flows: Option<usize>,
    /// Most devices tracked.
    pub max_devices: Option<usize>,
    /// Bytes of each stream direction inspected.
    pub stream_prefix_bytes: Option<usize>,
}

/// `[rules]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RulesSection {
    /// Directory of user rule files (override bundled rules with the same id).
    pub dir: Option<PathBuf>,
}

/// `[products]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductsSection {
    /// Directory of site product dictionary files (extend the bundled dictionary; a product with
    /// a bundled product's id replaces it).
    pub dir: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: Option<String>,
    /// `error`, `warn`, `info`, `debug`, `trace`, or `level,target=level` directives
    /// (tracing-subscriber `Targets` syntax).
    pub level: Option<String>,
}

/// Values given by flags or `WARD_*` variables (clap resolves flag-over-env); `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--site` / `WARD_SITE`.
    pub site: Option<String>,
    /// `--agent-id` / `WARD_AGENT_ID`.
    pub agent_id: Option<String>,
    /// `--output` / `WARD_OUTPUT`.
    pub output: Option<String>,
    /// `--user` / `WARD_USER`.
    pub user: Option<String>,
    /// `--stats-interval` / `WARD_STATS_INTERVAL`.
    pub stats_interval_secs: Option<u64>,
    /// `--rules-dir` / `WARD_RULES_DIR`.
    pub rules_dir: Option<PathBuf>,
    /// `--products-dir` / `WARD_PRODUCTS_DIR`.
    pub products_dir: Option<PathBuf>,
    /// `--spool-dir` / `WARD_SPOOL_DIR`.
    pub spool_dir: Option<PathBuf>,
    /// `--spool-max-bytes` / `WARD_SPOOL_MAX_BYTES`.
    pub spool_max_bytes: Option<u64>,
    /// `--mqtt-username` / `WARD_MQTT_USERNAME`.
    pub mqtt_username: Option<String>,
    /// `--mqtt-password-file` / `WARD_MQTT_PASSWORD_FILE`.
    pub mqtt_password_file: Option<PathBuf>,
    /// `WARD_MQTT_PASSWORD` (no flag: a flag would show in `ps`).
    pub mqtt_password: Option<String>,
    /// `--mqtt-ca` / `WARD_MQTT_CA`.
    pub mqtt_ca: Option<PathBuf>,
    /// `--mqtt-cert` / `WARD_MQTT_CERT`.
    pub mqtt_cert: Option<PathBuf>,
    /// `--mqtt-key` / `WARD_MQTT_KEY`.
    pub mqtt_key: Option<PathBuf>,
    /// `--log-format` / `WARD_LOG_FORMAT`.
    pub log_format: Option<String>,
    /// `--log-level` / `WARD_LOG`.
    pub log_level: Option<String>,
    /// `--max-flows`.
    pub max_flows: Option<usize>,
    /// `--max-devices`.
    pub max_devices: Option<usize>,
    /// `--interface` (capture only).
    pub interfaces: Vec<String>,
    /// `--ring-size` / `WARD_RING_SIZE` (capture only).
    pub ring_bytes: Option<usize>,
    /// `--block-timeout` / `WARD_BLOCK_TIMEOUT` in milliseconds (capture only).
    pub block_timeout_ms: Option<u64>,
    /// `--filter` / `WARD_FILTER` (capture only).
    pub filter: Option<String>,
    /// `--workers` / `WARD_WORKERS` (capture only).
    pub workers: Option<usize>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site name.
    pub site: String,
    /// Agent id.
    pub agent_id: String,
    /// Output URL.
    pub output: String,
    /// User to drop to.
    pub user: Option<String>,
    /// Stats interval.
    pub stats_interval: Duration,
    /// Delta batch interval.
    pub batch_interval: Duration,
    /// Snapshot interval.
    pub snapshot_interval: Duration,
    /// Interfaces.
    pub interfaces: Vec<String>,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Snapshot length (bytes kept per frame).
    pub read_buffer_bytes: usize,
    /// Receive ring size per interface.
    pub ring_bytes: usize,
    /// Block timeout of the receive ring.
    pub block_timeout: Duration,
    /// Capture filter (tcpdump syntax).
    pub filter: Option<String>,
    /// Capture workers per interface.
    pub workers: usize,
    /// MQTT user name.
    pub mqtt_username: Option<String>,
    /// MQTT password.
    pub mqtt_password: Option<String>,
    /// CA file.
    pub mqtt_ca: Option<PathBuf>,
    /// Client certificate.
    pub mqtt_cert: Option<PathBuf>,
    /// Client key.
    pub mqtt_key: Option<PathBuf>,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Spool bound.
    pub spool_max_bytes: u64,
    /// Flow cap.
    pub max_flows: usize,
    /// Device cap.
    pub max_devices: usize,
    /// Stream prefix.
    pub stream_prefix_bytes: usize,
    /// User rules directory.
    pub rules_dir: Option<PathBuf>,
    /// Site product dictionary directory.
    pub products_dir: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What and where (line:column).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// The setting, as `file key / --flag / WARD_VAR`.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Default output: the collector's embedded broker on this host.
pub const DEFAULT_OUTPUT: &str = "mqtt://127.0.0.1:1883";
/// Default spool directory.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/ward-agent/spool";

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

impl FileConfig {
    /// Parses a configuration file's text; errors carry `line:column`.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = line_col(text, s.start);
                    format!("line {l}, column {c}: ")
                })
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_owned(),
                message: format!("{at}{}", e.message()),
            }
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }
}

fn non_empty(setting: &'static str, v: String) -> Result<String, ConfigError> {
    if v.trim().is_empty() {
        return Err(ConfigError::Invalid {
            setting,
            message: "must not be empty".into(),
        });
    }
    Ok(v)
}

impl Config {
    /// Merges flags/env over the file over defaults and validates the result.
    pub fn resolve(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let agent_id = match o.agent_id.or(file.agent_id) {
            Some(a) => a,
            None => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "ward-agent".into()),
        };
        let password = match o.mqtt_password.or(file.mqtt.password) {
            Some(p) => Some(p),
            None => match o.mqtt_password_file.or(file.mqtt.password_file) {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| ConfigError::Invalid {
                            setting: "mqtt.password_file / --mqtt-password-file",
                            message: format!("{}: {e}", path.display()),
                        })?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                ),
                None => None,
            },
        };
        let log_format = match o
            .log_format
            .or(file.log.format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    setting: "log.format / --log-format / WARD_LOG_FORMAT",
                    message: format!("{other:?}: expected \"text\" or \"json\""),
                })
            }
        };
        let secs = |setting: &'static str, v: Option<u64>, default: u64| {
            let v = v.unwrap_or(default);
            if v == 0 {
                Err(ConfigError::Invalid {
                    setting,
                    message: "must be at least 1 second".into(),
                })
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let positive = |setting: &'static str, v: Option<usize>, default: usize| {
            let v = v.unwrap_or(default);
            if v == 0 {
                Err(ConfigError::Invalid {
                    setting,
                    message: "must be greater than 0".into(),
                })
            } else {
                Ok(v)
            }
        };
        let interfaces = if o.interfaces.is_empty() {
            file.capture.interfaces.unwrap_or_default()
        } else {
            o.interfaces
        };
        Ok(Config {
            site: non_empty(
                "site / --site / WARD_SITE",
                o.site.or(file.site).unwrap_or_else(|| "default".into()),
            )?,
            agent_id: non_empty("agent_id / --agent-id / WARD_AGENT_ID", agent_id)?,
            output: o
                .output
                .or(file.output)
                .unwrap_or_else(|| DEFAULT_OUTPUT.into()),
            user: o.user.or(file.user),
            stats_interval: secs(
                "stats_interval_secs / --stats-interval",
                o.stats_interval_secs.or(file.stats_interval_secs),
                30,
            )?,
            batch_interval: secs("batch_interval_secs", file.batch_interval_secs, 5)?,
            snapshot_interval: secs("snapshot_interval_secs", file.snapshot_interval_secs, 300)?,
            interfaces,
            promiscuous: file.capture.promiscuous.unwrap_or(true),
            read_buffer_bytes: positive(
                "capture.read_buffer_bytes",
                file.capture.read_buffer_bytes,
                65_536,
            )?,
            ring_bytes: positive(
                "--ring-size / capture.ring_bytes",
                o.ring_bytes.or(file.capture.ring_bytes),
                64 << 20,
            )?,
            block_timeout: Duration::from_millis(positive(
                "--block-timeout / capture.block_timeout_ms",
                o.block_timeout_ms
                    .or(file.capture.block_timeout_ms)
                    .map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
                100,
            )? as u64),
            filter: o
                .filter
                .or(file.capture.filter)
                .filter(|f| !f.trim().is_empty()),
            workers: positive(
                "--workers / capture.workers",
                o.workers.or(file.capture.workers),
                default_workers(),
            )?,
            mqtt_username: o.mqtt_username.or(file.mqtt.username),
            mqtt_password: password,
            mqtt_ca: o.mqtt_ca.or(file.mqtt.ca_file),
            mqtt_cert: o.mqtt_cert.or(file.mqtt.client_cert),
            mqtt_key: o.mqtt_key.or(file.mqtt.client_key),
            keep_alive: secs("mqtt.keep_alive_secs", file.mqtt.keep_alive_secs, 30)?,
            spool_dir: o
                .spool_dir
                .or(file.spool.dir)
                .unwrap_or_else(|| DEFAULT_SPOOL_DIR.into()),
            spool_max_bytes: o
                .spool_max_bytes
                .or(file.spool.max_bytes)
                .unwrap_or(256 * 1024 * 1024),
            max_flows: positive(
                "limits.max_flows / --max-flows",
                o.max_flows.or(file.limits.max_flows),
                65_536,
            )?,
            max_devices: positive(
                "limits.max_devices / --max-devices",
                o.max_devices.or(file.limits.max_devices),
                100_000,
            )?,
            stream_prefix_bytes: positive(
                "limits.stream_prefix_bytes",
                file.limits.stream_prefix_bytes,
                64 * 1024,
            )?,
            rules_dir: o.rules_dir.or(file.rules.dir),
            products_dir: o.products_dir.or(file.products.dir),
            log_format,
            log_level: o
                .log_level
                .or(file.log.level)
                .unwrap_or_else(|| "info".into()),
        })
    }
}

/// Default capture workers per interface: one per core, at most 8 (beyond that the single
/// device table, not the decoders, is the limit).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_sample_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.toml");
        let file = FileConfig::load(&path).unwrap();
        let c = Config::resolve(file, Overrides::default()).unwrap();
        assert_eq!(c.site, "main-campus");
        assert_eq!(c.interfaces, ["eth1"]);
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_column() {
        let text = "site = \"a\"\n[spool]\nmax_byte = 3\n";
        let e = FileConfig::parse(Path::new("agent.toml"), text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("agent.toml"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("max_byte"), "{msg}");
    }

    #[test]
    fn flags_override_file_over_defaults() {
        let file = FileConfig::parse(
            Path::new("a.toml"),
            "site = \"file-site\"\nagent_id = \"file-agent\"\n[spool]\nmax_bytes = 1000\n",
        )
        .unwrap();
        let o = Overrides {
            site: Some("flag-site".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(file, o).unwrap();
        assert_eq!(c.site, "flag-site");
        assert_eq!(c.agent_id, "file-agent");
        assert_eq!(c.spool_max_bytes, 1000);
        assert_eq!(c.output, DEFAULT_OUTPUT);
        assert_eq!(c.max_flows, 65_536);
    }

    #[test]
    fn products_dir_from_the_file_or_the_flag() {
        let file = FileConfig::parse(
            Path::new("a.toml"),
            "[rules]\ndir = \"/r\"\n[products]\ndir = \"/p\"\n",
        )
        .unwrap();
        let c = Config::resolve(file.clone(), Overrides::default()).unwrap();
        assert_eq!(c.products_dir.as_deref(), Some(Path::new("/p")));
        let o = Overrides {
            products_dir: Some("/flag".into()),
            ..Overrides::default()
        };
        let c = Config::resolve(file, o).unwrap();
        assert_eq!(c.products_dir.as_deref(), Some(Path::new("/flag")));
        assert_eq!(c.rules_dir.as_deref(), Some(Path::new("/r")));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let file = FileConfig::parse(Path::new("a.toml"), "[log]\nformat = \"xml\"\n").unwrap();
        let e = Config::resolve(file, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("log.format"), "{e}");
        let o = Overrides {
            max_flows: Some(0),
            ..Overrides::default()
        };
        let e = Config::resolve(FileConfig::default(), o).unwrap_err();
        assert!(e.to_string().contains("max_flows"), "{e}");
    }
}
