//! Collector configuration: a TOML file (`--config`), overridden by `WARD_COLLECTOR_*`
//! environment variables, overridden by flags. Unknown keys are errors so a typo never
//! silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::compliance::flags::FlagConfig;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SQLite database file.
    pub db: PathBuf,
    /// Log level or filter.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Embedded broker (used unless `source.url` is set).
    pub broker: BrokerSection,
    /// External broker to subscribe to instead of the embedded one.
    pub source: SourceSection,
    /// Ingest tuning.
    pub ingest: IngestSection,
    /// The HTTP API.
    pub http: HttpSection,
    /// Alerts on new and resolved flags (MQTT `ward/v1/alerts/<site>`, webhook).
    pub alerts: crate::alerts::AlertConfig,
    /// Flag thresholds.
    pub flags: FlagConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: PathBuf::from("ward-collector.db"),
            log_level: "info".into(),
            log_format: "text".into(),
            broker: BrokerSection::default(),
            source: SourceSection::default(),
            ingest: IngestSection::default(),
            http: HttpSection::default(),
            alerts: crate::alerts::AlertConfig::default(),
            flags: FlagConfig::default(),
        }
    }
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
    /// `mqtt://host:port` or `mqtts://host:port`; unset = embedded broker.
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

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Most messages per database transaction.
    pub batch: usize,
    /// Seconds between scheduled link + flag evaluations (time-based flags need them).
    pub evaluate_interval_secs: u64,
    /// Least seconds between evaluations triggered by ingest.
    pub evaluate_debounce_secs: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            batch: 512,
            evaluate_interval_secs: 60,
            evaluate_debounce_secs: 2,
        }
    }
}

impl Config {
    /// Reads a file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("configuration {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_sample_parses_and_unknown_keys_fail() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/collector.toml");
        let c = Config::load(Path::new(sample)).unwrap();
        assert_eq!(c.broker.listen.port(), 1883);
        let e = toml::from_str::<Config>("dbb = 'x'").unwrap_err();
        assert!(e.to_string().contains("dbb"), "{e}");
    }
}
