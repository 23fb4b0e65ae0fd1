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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusStats {
    /// Packets captured.
    pub packets: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// Packets the kernel dropped before the agent saw them (capture rings full).
    pub kernel_drops: u64,
    /// Frames the kernel discarded because a capture ring was full (sum over interfaces and
    /// workers; the same events as `kernel_drops` for live capture). 0 when reading files.
    #[serde(default)]
    pub ring_drops: u64,
    /// Frames captured but dropped because the queue to the decoders was full.
    #[serde(default)]
    pub queue_drops: u64,
    /// Live capture counters per interface and worker; absent when reading files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capture: Vec<CaptureStats>,
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

/// Live capture counters of one interface and worker (an element of `stats.capture`),
/// cumulative since the instance started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Interface name.
    pub interface: String,
    /// Worker number on that interface, from 0.
    #[serde(default)]
    pub worker: u32,
    /// Frames read from the ring.
    #[serde(default)]
    pub packets: u64,
    /// Frames the kernel discarded because this ring was full.
    #[serde(default)]
    pub ring_drops: u64,
    /// Frames dropped because the queue to the decoders was full.
    #[serde(default)]
    pub queue_drops: u64,
    /// `rx_dropped` growth of the interface since the capture opened (per interface, so only on
    /// worker 0): frames the driver or the stack dropped, some before packet sockets see them
    /// (backlog full), some after (protocols the host does not run, e.g. IPv6 when disabled).
    #[serde(default)]
    pub interface_drops: u64,
}
