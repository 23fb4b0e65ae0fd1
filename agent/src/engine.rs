//! The agent's processing core, shared by live capture and file reading: packet → frame →
//! dissector (evidence) → device table, and device table → observation messages.
//!
//! Synchronous and single-threaded by design: one engine per capture thread keeps the hot
//! path free of locks; the caller decides when to cut a batch and where to send it.

use ward_protocols::dissect::{DissectStats, Dissector, DissectorConfig};
use ward_protocols::frame::{self, LinkType};
use ward_protocols::Evidence;

use crate::devices::{DeviceStats, DeviceTable, DeviceTableConfig};
use crate::observation::{DeviceRecord, Kind, Observation, SCHEMA};
use crate::rules::RuleSet;

/// Limits of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineConfig {
    /// Flow tracking and reassembly limits.
    pub dissector: DissectorConfig,
    /// Device table limits.
    pub devices: DeviceTableConfig,
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Packets offered.
    pub packets: u64,
    /// Captured bytes offered.
    pub bytes: u64,
    /// Packets of a link type ward does not decode.
    pub unknown_link: u64,
    /// Packets whose link header could not be decoded.
    pub link_errors: u64,
    /// Dissector counters.
    pub dissect: DissectStats,
    /// Device table counters.
    pub devices: DeviceStats,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Engine {
    dissector: Dissector,
    dissector_cfg: DissectorConfig,
    devices: DeviceTable,
    rules: RuleSet,
    evidence: Vec<Evidence>,
    packets: u64,
    bytes: u64,
    unknown_link: u64,
    link_errors: u64,
    last_expire_us: i64,
    /// Live capture with workers: their dissectors' counters and memory, summed (the engine's
    /// own dissector then sees no packets).
    workers_dissect: Option<(DissectStats, usize)>,
}

impl Engine {
    /// An engine classifying with `rules`.
    pub fn new(cfg: EngineConfig, rules: RuleSet) -> Self {
        Engine {
            dissector: Dissector::new(cfg.dissector),
            dissector_cfg: cfg.dissector,
            devices: DeviceTable::new(cfg.devices),
            rules,
            evidence: Vec::new(),
            packets: 0,
            bytes: 0,
            unknown_link: 0,
            link_errors: 0,
            last_expire_us: i64::MIN,
            workers_dissect: None,
        }
    }

    /// The dissector limits this engine was built with (each capture worker gets its own
    /// dissector; see [`crate::workers`]).
    pub fn dissector_config(&self) -> DissectorConfig {
        self.dissector_cfg
    }

    /// Processes one packet a capture worker has already dissected: the device table learns
    /// from the frame's headers and takes the worker's evidence (drained).
    pub fn process_dissected(
        &mut self,
        time_us: i64,
        link: LinkType,
        data: &[u8],
        evidence: &mut Vec<Evidence>,
    ) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        let Ok(frame) = frame::decode(link, data) else {
            self.link_errors += 1;
            return;
        };
        self.devices.observe_frame(time_us, &frame);
        if !evidence.is_empty() {
            self.devices.observe_evidence(evidence);
        }
    }

    /// Sets the capture workers' dissector counters and flow-table memory, reported by
    /// [`stats`](Self::stats) and [`memory`](Self::memory) in place of the engine's own.
    pub fn set_workers_dissect(&mut self, stats: DissectStats, memory: usize) {
        self.workers_dissect = Some((stats, memory));
    }

    /// Processes one captured packet.
    pub fn process(&mut self, time_us: i64, link: Option<LinkType>, data: &[u8]) {
        self.packets += 1;
        self.bytes += data.len() as u64;
        let Some(link) = link else {
            self.unknown_link += 1;
            return;
        };
        let Ok(frame) = frame::decode(link, data) else {
            self.link_errors += 1;
            return;
        };
        self.devices.observe_frame(time_us, &frame);
        self.dissector.process(time_us, &frame, &mut self.evidence);
        if !self.evidence.is_empty() {
            self.devices.observe_evidence(&mut self.evidence);
        }
        // Idle flows are dropped once per second of capture time, not per packet.
        if time_us.saturating_sub(self.last_expire_us) >= 1_000_000 {
            self.last_expire_us = time_us;
            self.dissector.expire(time_us);
        }
    }

    /// Up to `limit` devices changed since they were last taken, evicted ones first (call
    /// until empty).
    pub fn take_changes(&mut self, limit: usize) -> Vec<DeviceRecord> {
        self.devices.take_changes(&self.rules, limit)
    }

    /// Up to `limit` devices evicted from the full table with changes not yet taken: their
    /// last state, owed to the output.
    pub fn take_evicted(&mut self, limit: usize) -> Vec<DeviceRecord> {
        self.devices.take_evicted(&self.rules, limit)
    }

    /// Evicted devices whose changes wait to be taken; take them once a message's worth
    /// waits, so the queue never reaches its bound (beyond it changes are lost, and counted).
    pub fn pending_evicted(&self) -> usize {
        self.devices.pending_evicted()
    }

    /// Clears the changed marks of the devices in the table (before a full snapshot);
    /// evicted devices' changes stay for [`take_evicted`](Self::take_evicted).
    pub fn clear_changes(&mut self) {
        self.devices.clear_changes();
    }

    /// Every device, in chunks of at most `chunk`.
    pub fn snapshot(&mut self, chunk: usize, each: impl FnMut(Vec<DeviceRecord>)) {
        self.devices.snapshot(&self.rules, chunk, each);
    }

    /// Every device in one vector (tests and small tables).
    pub fn snapshot_all(&mut self) -> Vec<DeviceRecord> {
        let mut all = Vec::new();
        self.snapshot(usize::MAX, |mut c| all.append(&mut c));
        all
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            packets: self.packets,
            bytes: self.bytes,
            unknown_link: self.unknown_link,
            link_errors: self.link_errors,
            dissect: match &self.workers_dissect {
                Some((s, _)) => *s,
                None => self.dissector.stats(),
            },
            devices: self.devices.stats(),
        }
    }

    /// Heap bytes held by flows and devices (walks both tables: for periodic stats only).
    pub fn memory(&self) -> usize {
        let flows = match &self.workers_dissect {
            Some((_, m)) => *m,
            None => self.dissector.memory(),
        };
        flows + self.devices.memory()
    }
}

/// Builds observation messages for one agent instance, numbering them.
#[derive(Debug, Clone)]
pub struct Batcher {
    site: String,
    agent_id: String,
    instance: String,
    seq: u64,
    max_devices: usize,
}

impl Batcher {
    /// A batcher for `site`/`agent_id`; `instance` identifies this run of the agent;
    /// messages carry at most `max_devices` devices each.
    pub fn new(site: &str, agent_id: &str, instance: &str, max_devices: usize) -> Self {
        Batcher {
            site: site.to_owned(),
            agent_id: agent_id.to_owned(),
            instance: instance.to_owned(),
            seq: 0,
            max_devices: max_devices.max(1),
        }
    }

    /// Splits `devices` into numbered messages. An empty delta yields no message; an empty
    /// snapshot yields one (it says "nothing seen").
    pub fn messages(
        &mut self,
        kind: Kind,
        time_us: i64,
        devices: Vec<DeviceRecord>,
    ) -> Vec<Observation> {
        if devices.is_empty() {
            return match kind {
                Kind::Delta => Vec::new(),
                Kind::Snapshot => vec![self.message(kind, time_us, Vec::new())],
            };
        }
        let mut out = Vec::new();
        let mut it = devices.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<DeviceRecord> = it.by_ref().take(self.max_devices).collect();
            out.push(self.message(kind, time_us, chunk));
        }
        out
    }

    fn message(&mut self, kind: Kind, time_us: i64, devices: Vec<DeviceRecord>) -> Observation {
        self.seq += 1;
        Observation {
            schema: SCHEMA.to_owned(),
            site: self.site.clone(),
            agent_id: self.agent_id.clone(),
            instance: self.instance.clone(),
            seq: self.seq,
            kind,
            time_us,
            devices,
        }
    }
}
