//! From MQTT payloads to stored inventory: decoding (with the checks a hostile or confused agent
//! needs), batching, and the link + flag evaluation that follows.

use ward_protocols::schema::observation::{Observation, SCHEMA};
use ward_protocols::schema::status::{StatusMessage, STATUS_SCHEMA};

use crate::flags::{self, FlagConfig};
use crate::link;
use crate::store::{Applied, IngestStats, Message, Store, StoreError};

/// Why a message was not ingested. Such messages are logged, counted and acknowledged: a
/// message that can never be stored must not block the ones behind it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not `ward/v1/<site>/<agent>/<devices|status>`.
    #[error("topic {0:?} is not ward/v1/<site>/<agent-id>/devices|status")]
    Topic(String),
    /// Not JSON of the expected schema.
    #[error("topic {topic}: payload is not a valid {schema} message: {detail}")]
    Payload {
        /// Topic.
        topic: String,
        /// Expected schema.
        schema: &'static str,
        /// Parser's words.
        detail: String,
    },
    /// The payload names another site/agent than its topic: refused, so one agent's
    /// credentials cannot write another agent's inventory.
    #[error("topic {topic}: message claims site {site:?} agent {agent:?}, which does not match the topic")]
    Mismatch {
        /// Topic.
        topic: String,
        /// Site in the payload.
        site: String,
        /// Agent in the payload.
        agent: String,
    },
}

/// Decodes one MQTT message.
pub fn decode(topic: &str, payload: &[u8]) -> Result<Message, DecodeError> {
    let parts: Vec<&str> = topic.split('/').collect();
    let [_, _, site, agent, leaf] = parts.as_slice() else {
        return Err(DecodeError::Topic(topic.to_string()));
    };
    if parts[0] != "ward" || parts[1] != "v1" {
        return Err(DecodeError::Topic(topic.to_string()));
    }
    let msg = match *leaf {
        "devices" => {
            let o: Observation =
                serde_json::from_slice(payload).map_err(|e| DecodeError::Payload {
                    topic: topic.to_string(),
                    schema: SCHEMA,
                    detail: e.to_string(),
                })?;
            if o.schema != SCHEMA {
                return Err(DecodeError::Payload {
                    topic: topic.to_string(),
                    schema: SCHEMA,
                    detail: format!("schema is {:?}", o.schema),
                });
            }
            if o.site != *site || o.agent_id != *agent {
                return Err(DecodeError::Mismatch {
                    topic: topic.to_string(),
                    site: o.site,
                    agent: o.agent_id,
                });
            }
            Message::Observation(o)
        }
        "status" => {
            let s: StatusMessage =
                serde_json::from_slice(payload).map_err(|e| DecodeError::Payload {
                    topic: topic.to_string(),
                    schema: STATUS_SCHEMA,
                    detail: e.to_string(),
                })?;
            if s.schema != STATUS_SCHEMA {
                return Err(DecodeError::Payload {
                    topic: topic.to_string(),
                    schema: STATUS_SCHEMA,
                    detail: format!("schema is {:?}", s.schema),
                });
            }
            if s.site != *site || s.agent_id != *agent {
                return Err(DecodeError::Mismatch {
                    topic: topic.to_string(),
                    site: s.site,
                    agent: s.agent_id,
                });
            }
            Message::Status(s)
        }
        _ => return Err(DecodeError::Topic(topic.to_string())),
    };
    Ok(msg)
}

/// Decodes one JSON line of an agent's `--output jsonl:` file (observations and status
/// messages interleaved, told apart by `schema`).
pub fn decode_line(line: &str) -> Result<Message, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        schema: String,
    }
    let p: Probe = serde_json::from_str(line).map_err(|e| e.to_string())?;
    match p.schema.as_str() {
        SCHEMA => serde_json::from_str(line)
            .map(Message::Observation)
            .map_err(|e| e.to_string()),
        STATUS_SCHEMA => serde_json::from_str(line)
            .map(Message::Status)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown schema {other:?}")),
    }
}

/// Now, µs since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Links everything and reconciles flags at `now_us`. Called after imports, after ingest
/// batches (debounced) and on a schedule, so time-based flags (end of support, assets not seen)
/// open without new traffic.
pub fn evaluate(
    store: &mut dyn Store,
    cfg: &FlagConfig,
    now_us: i64,
) -> Result<Applied, StoreError> {
    let t = std::time::Instant::now();
    let inv = store.inventory()?;
    let links = link::link(&inv);
    let flags = flags::evaluate(&inv, &links, cfg, now_us);
    let st = store.apply_evaluation(&links, &flags, now_us)?;
    store.write_summaries(&crate::summary::summaries(&inv, &links, &flags, cfg))?;
    tracing::debug!(
        devices = inv.devices.len(),
        links = links.len(),
        flags_open = st.stats.flags_open,
        opened = st.stats.flags_opened,
        resolved = st.stats.flags_resolved,
        elapsed_ms = t.elapsed().as_millis() as u64,
        "evaluated"
    );
    Ok(st)
}

/// Replays agent JSON-lines files into the store, in batches. Returns the totals.
pub fn replay_files(
    store: &mut dyn Store,
    paths: &[std::path::PathBuf],
    batch: usize,
) -> anyhow::Result<(IngestStats, u64)> {
    use anyhow::Context;
    use std::io::BufRead;
    let mut total = IngestStats::default();
    let mut bad = 0u64;
    let mut buf = Vec::with_capacity(batch);
    for p in paths {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", p.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match decode_line(&line) {
                Ok(m) => buf.push(m),
                Err(e) => {
                    bad += 1;
                    tracing::warn!(file = %p.display(), line = i + 1, error = %e, "line skipped");
                }
            }
            if buf.len() >= batch {
                total.add(&store.ingest(&buf, now_us())?);
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        total.add(&store.ingest(&buf, now_us())?);
    }
    Ok((total, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads_are_checked() {
        assert!(matches!(
            decode("ward/v2/a/b/devices", b"{}"),
            Err(DecodeError::Topic(_))
        ));
        assert!(matches!(
            decode("ward/v1/a/b/other", b"{}"),
            Err(DecodeError::Topic(_))
        ));
        assert!(matches!(
            decode("ward/v1/a/b/devices", b"not json"),
            Err(DecodeError::Payload { .. })
        ));
        let o = r#"{"schema":"ward.observation.v1","site":"x","agent_id":"b","instance":"i","seq":1,"kind":"delta","time_us":1,"devices":[]}"#;
        assert!(matches!(
            decode("ward/v1/a/b/devices", o.as_bytes()),
            Err(DecodeError::Mismatch { .. })
        ));
        assert!(matches!(
            decode("ward/v1/x/b/devices", o.as_bytes()),
            Ok(Message::Observation(_))
        ));
    }
}
