//! Where observations go: an MQTT broker (with a durable on-disk spool, so nothing is lost
//! while the broker is away) or a JSON-lines file / standard output.
//!
//! - [`parse_output_url`] turns `--output` into an [`OutputSpec`].
//! - [`mqtt::MqttOutput`] publishes `ward.observation.v1` messages on
//!   `ward/v1/<site>/<agent-id>/devices` (QoS 1) and `ward.status.v1` on
//!   `ward/v1/<site>/<agent-id>/status` (QoS 1, retained, with an offline last will).
//! - [`jsonl::JsonlOutput`] writes every message as one line.
//! - [`Output`] is either, behind one surface.
//!
//! Message schemas and delivery guarantees: `docs/schema/observation-v1.md`.

pub mod jsonl;
pub mod mqtt;
pub mod spool;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use jsonl::JsonlOutput;
pub use mqtt::{MqttConfig, MqttOutput};
pub use spool::{Spool, SpoolError, SpoolMessage, SpoolStats};
pub use ward_mqtt::endpoint::{MQTTS_PORT, MQTT_PORT};
/// A broker address (`mqtt://` or `mqtts://`, host, port).
pub use ward_mqtt::Endpoint as MqttEndpoint;
use ward_mqtt::UrlProblem;

/// Output errors.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// `--output` (or `MqttConfig::url`) could not be parsed.
    #[error("invalid output {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A setting is invalid; [`ward_mqtt::ConfigError::setting`] is the [`MqttConfig`] field
    /// name.
    #[error("MQTT output: {0}")]
    Setting(#[from] ward_mqtt::ConfigError),
    /// The spool failed (the message was not stored).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Writing a JSON-lines output failed.
    #[error("{target}: {source}")]
    Io {
        /// The file (or `-`).
        target: String,
        /// The error.
        source: std::io::Error,
    },
    /// A message was not valid JSON (JSON-lines output re-encodes multi-line JSON).
    #[error("message is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The message is larger than an MQTT packet can be.
    #[error("message of {size} bytes exceeds the MQTT packet limit of {max} bytes")]
    TooLarge {
        /// Packet size it would need.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The output was shut down or its task is gone.
    #[error("output is shut down")]
    Closed,
    /// `MqttOutput::start` was called outside a Tokio runtime.
    #[error("the MQTT output must be started inside a Tokio runtime")]
    NoRuntime,
}

/// A parsed `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    Mqtt(MqttEndpoint),
    /// `jsonl:PATH` or `jsonl:-`.
    Jsonl(JsonlTarget),
}

/// Where JSON lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlTarget {
    /// `jsonl:-`.
    Stdout,
    /// `jsonl:PATH` (appended to).
    File(PathBuf),
}

/// Parses `mqtt://host[:port]` (default 1883), `mqtts://host[:port]` (default 8883),
/// `jsonl:PATH` and `jsonl:-` (standard output).
pub fn parse_output_url(s: &str) -> Result<OutputSpec, OutputError> {
    let bad = |reason: &str| OutputError::InvalidUrl {
        url: s.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = s.strip_prefix("jsonl:") {
        return match path {
            "" => Err(bad("expected jsonl:PATH or jsonl:- (standard output)")),
            "-" => Ok(OutputSpec::Jsonl(JsonlTarget::Stdout)),
            p => Ok(OutputSpec::Jsonl(JsonlTarget::File(PathBuf::from(
                p.strip_prefix("//").unwrap_or(p),
            )))),
        };
    }
    // The broker URL is ward-mqtt's; only the hint for an unknown scheme names jsonl too.
    MqttEndpoint::parse(s)
        .map(OutputSpec::Mqtt)
        .map_err(|e| match e.problem {
            UrlProblem::UnknownScheme => {
                bad("expected mqtt://host[:port], mqtts://host[:port], jsonl:PATH or jsonl:-")
            }
            problem => bad(&problem.to_string()),
        })
}

/// Counters of an output. Cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutputStats {
    /// Device messages accepted by `publish_devices` since start.
    pub published: u64,
    /// Device PUBLISH packets handed to the connection, resends included (JSON lines: lines
    /// written).
    pub sent: u64,
    /// Device messages the broker acknowledged (PUBACK) and the spool dropped (JSON lines:
    /// lines flushed).
    pub acked: u64,
    /// Messages in the spool.
    pub spool_depth: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// Messages evicted from the full spool since start.
    pub evicted_messages: u64,
    /// Bytes evicted since start.
    pub evicted_bytes: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Failed connection attempts (refused, unreachable, TLS, authentication…).
    pub connect_failures: u64,
    /// Connected to the broker now (JSON lines: always true).
    pub connected: bool,
}

pub use ward_protocols::schema::status::{AgentState, StatusMessage, StatusStats, STATUS_SCHEMA};

/// A status with the schema and version filled in and `time` = now.
pub fn new_status(
    state: AgentState,
    site: &str,
    agent_id: &str,
    instance: &str,
    started_at: SystemTime,
) -> StatusMessage {
    StatusMessage {
        schema: STATUS_SCHEMA.to_string(),
        state,
        agent_id: agent_id.to_string(),
        site: site.to_string(),
        instance: instance.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: rfc3339_millis(started_at),
        time: rfc3339_millis(SystemTime::now()),
        reason: None,
        stats: None,
    }
}

/// `2025-01-31T12:34:56.789Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Either output, behind one surface.
#[derive(Debug)]
pub enum Output {
    /// MQTT with a spool.
    Mqtt(MqttOutput),
    /// JSON lines.
    Jsonl(JsonlOutput),
}

impl Output {
    /// Publishes one `ward.observation.v1` message. MQTT: stored durably in the spool before
    /// this returns (a blocking fsync), then sent; returns the spool id. JSON lines: buffered;
    /// returns the line number.
    pub fn publish_devices(&self, payload: Vec<u8>) -> Result<u64, OutputError> {
        match self {
            Output::Mqtt(o) => o.publish_devices(payload),
            Output::Jsonl(o) => o.publish_devices(payload),
        }
    }

    /// Publishes a `ward.status.v1` message (MQTT: retained, latest value only, not spooled).
    pub fn publish_status(&self, payload: Vec<u8>) -> Result<(), OutputError> {
        match self {
            Output::Mqtt(o) => o.publish_status(payload),
            Output::Jsonl(o) => o.publish_status(payload),
        }
    }

    /// Counters.
    pub fn stats(&self) -> OutputStats {
        match self {
            Output::Mqtt(o) => o.stats(),
            Output::Jsonl(o) => o.stats(),
        }
    }

    /// Stops accepting messages and drains: MQTT waits up to `timeout` for the spool to drain,
    /// publishes the retained offline status and disconnects (what is not acknowledged stays
    /// spooled for the next start); JSON lines flushes.
    pub async fn shutdown(self, timeout: Duration) -> Result<OutputStats, OutputError> {
        match self {
            Output::Mqtt(o) => Ok(o.shutdown(timeout).await),
            Output::Jsonl(o) => o.shutdown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt(tls: bool, host: &str, port: u16) -> OutputSpec {
        OutputSpec::Mqtt(MqttEndpoint {
            tls,
            host: host.into(),
            port,
        })
    }

    #[test]
    fn parses_output_urls() {
        assert_eq!(
            parse_output_url("mqtt://broker").unwrap(),
            mqtt(false, "broker", 1883)
        );
        assert_eq!(
            parse_output_url("mqtt://broker:1884/").unwrap(),
            mqtt(false, "broker", 1884)
        );
        assert_eq!(
            parse_output_url("mqtts://broker.example").unwrap(),
            mqtt(true, "broker.example", 8883)
        );
        assert_eq!(
            parse_output_url("mqtts://10.0.0.1:9000").unwrap(),
            mqtt(true, "10.0.0.1", 9000)
        );
        assert_eq!(
            parse_output_url("mqtt://[::1]:1999").unwrap(),
            mqtt(false, "::1", 1999)
        );
        assert_eq!(
            parse_output_url("mqtt://[fe80::1]").unwrap(),
            mqtt(false, "fe80::1", 1883)
        );
        assert_eq!(
            parse_output_url("jsonl:-").unwrap(),
            OutputSpec::Jsonl(JsonlTarget::Stdout)
        );
        assert_eq!(
            parse_output_url("jsonl:/var/lib/ward/out.jsonl").unwrap(),
            OutputSpec::Jsonl(JsonlTarget::File("/var/lib/ward/out.jsonl".into()))
        );
        assert_eq!(
            parse_output_url("jsonl:rel.jsonl").unwrap(),
            OutputSpec::Jsonl(JsonlTarget::File("rel.jsonl".into()))
        );
    }

    #[test]
    fn rejects_bad_urls_with_reasons() {
        for (url, needle) in [
            ("", "expected mqtt://"),
            ("broker:1883", "expected mqtt://"),
            ("tcp://broker", "use mqtt://"),
            ("ssl://broker", "use mqtts://"),
            ("MQTT://broker", "lower case"),
            ("mqtt://", "missing host"),
            ("mqtt://:1883", "missing host"),
            ("mqtt://broker:0", "port"),
            ("mqtt://broker:65536", "port"),
            ("mqtt://broker:x", "port"),
            ("mqtt://user:pw@broker", "credentials"),
            ("mqtt://broker/topic", "path"),
            ("mqtt://[::1", "unterminated"),
            ("mqtt://[zz]:1", "IPv6"),
            ("mqtt://[::1]x", ":port"),
            ("jsonl:", "jsonl:PATH"),
        ] {
            let e = parse_output_url(url).unwrap_err().to_string();
            assert!(e.contains(needle), "{url:?}: {e}");
        }
    }

    #[test]
    fn endpoint_display_round_trips() {
        for url in ["mqtt://h:1", "mqtts://h:8883", "mqtt://[::1]:1883"] {
            let OutputSpec::Mqtt(ep) = parse_output_url(url).unwrap() else {
                panic!()
            };
            assert_eq!(ep.to_string(), url);
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339_millis(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // last second of 2024
        assert_eq!(rfc3339_millis(t), "2024-12-31T23:59:59.000Z");
    }

    fn json_blocks(md: &str) -> Vec<serde_json::Value> {
        md.split("```json\n")
            .skip(1)
            .map(|b| serde_json::from_str(b.split("```").next().unwrap()).unwrap())
            .collect()
    }

    /// The examples in the schema documents are exactly what the types produce.
    #[test]
    fn documented_examples_round_trip() {
        let obs = json_blocks(include_str!("../../../docs/schema/observation-v1.md"));
        assert_eq!(obs.len(), 1);
        let o: crate::observation::Observation = serde_json::from_value(obs[0].clone()).unwrap();
        assert_eq!(o.schema, crate::observation::SCHEMA);
        // Compared as the wire text is parsed (to_value would widen f32 `confidence` to f64).
        let wire: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&o).unwrap()).unwrap();
        assert_eq!(wire, obs[0]);

        let status = json_blocks(include_str!("../../../docs/schema/status-v1.md"));
        assert_eq!(status.len(), 2);
        for v in status {
            let s: StatusMessage = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(s.schema, STATUS_SCHEMA);
            assert_eq!(serde_json::to_value(&s).unwrap(), v);
        }
    }

    #[test]
    fn status_serializes_per_schema() {
        let mut s =
            crate::output::new_status(AgentState::Online, "site", "agent", "inst", UNIX_EPOCH);
        s.stats = Some(StatusStats::default());
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["schema"], "ward.status.v1");
        assert_eq!(v["state"], "online");
        assert_eq!(v["started_at"], "1970-01-01T00:00:00.000Z");
        assert!(v.get("reason").is_none());
        for k in [
            "packets",
            "bytes",
            "kernel_drops",
            "devices",
            "flows",
            "evictions",
            "spool_depth",
            "spool_bytes",
            "spool_evicted",
        ] {
            assert_eq!(v["stats"][k], 0, "{k}");
        }
    }
}
