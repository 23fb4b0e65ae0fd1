//! The agent status message, `ward.status.v1`, published retained on
//! `ward/v1/<site>/<agent-id>/status`. Documented in `docs/schema/status-v1.md`.

use serde::{Deserialize, Serialize};

/// Schema identifier of status messages.
pub const STATUS_SCHEMA: &str = "ward.status.v1";

/// Agent state in a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Running and connected.
    Online,
    /// Stopped, or the broker lost the connection (last will).
    Offline,
}

/// A `ward.status.v1` message, published retained on `ward/v1/<site>/<agent-id>/status`.
/// Documented in `docs/schema/observation-v1.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// Always [`STATUS_SCHEMA`].
    pub schema: String,
    /// Online or offline.
    pub state: AgentState,
    /// Agent id.
    pub agent_id: String,
    /// Site.
    pub site: String,
    /// Agent instance (as in observations).
    pub instance: String,
    /// Agent version.
    pub version: String,
    /// When the instance started, RFC 3339 UTC.
    pub started_at: String,
    /// When the message was made, RFC 3339 UTC (the last will: when it was registered).
    pub time: String,
    /// Why offline: `shutdown` or `connection_lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Counters (absent from the last will).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatusStats>,
}

/// The `stats` object of a status message; cumulative since the instance started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusStats {
    /// Packets captured.
    pub packets: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// Packets the kernel dropped.
    pub kernel_drops: u64,
    /// Devices in the table now.
    pub devices: u64,
    /// TCP flows tracked now.
    pub flows: u64,
    /// Flow and device table evictions.
    pub evictions: u64,
    /// Messages waiting in the spool.
    pub spool_depth: u64,
    /// Bytes waiting in the spool.
    pub spool_bytes: u64,
    /// Messages the full spool evicted (lost).
    pub spool_evicted: u64,
}
