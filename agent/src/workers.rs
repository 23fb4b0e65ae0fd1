//! Capture workers: each capture ring's reader thread dissects its own frames (its own flow
//! table and decoders) and hands the frame and the evidence it produced to the one device table
//! on the main loop's thread ([`crate::engine::Engine::process_dissected`]).
//!
//! The kernel splits an interface's traffic among the rings so that both directions of a flow
//! reach one ring ([`crate::capture::worker_filter`]); a flow's TCP reassembly therefore
//! happens in one worker. The device table stays single-threaded (no lock on the hot path): it
//! only learns from frame headers and evidence, which is cheap next to reassembly and decoding.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ward_protocols::dissect::{AppStats, DissectStats, Dissector, DissectorConfig};
use ward_protocols::frame::{self, LinkType};
use ward_protocols::Evidence;

use crate::capture::{Capture, CaptureError, CaptureHandle, Delivery, Packet};

/// A frame a worker dissected, on its way to the device table.
#[derive(Debug)]
pub struct Dissected {
    /// Kernel receive time, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Link type of `data`.
    pub link: LinkType,
    /// The frame.
    pub data: Vec<u8>,
    /// Evidence the worker's dissector emitted on this frame (often empty).
    pub evidence: Vec<Evidence>,
}

/// A worker's dissector counters and flow-table memory, as of its last report.
#[derive(Debug, Default)]
pub struct WorkerReport {
    stats: Mutex<Option<(DissectStats, usize)>>,
}

/// A started capture: its handle, the dissected frames, and each worker's report.
pub type Started = (CaptureHandle, Receiver<Dissected>, Vec<Arc<WorkerReport>>);

/// Frames between two reports of a worker's counters (and one walk of its flow table).
const REPORT_EVERY: u64 = 16_384;

/// Starts the capture with one dissecting worker per ring, feeding a bounded channel of
/// `capacity` frames (a full channel drops the frame, counted as the ring's queue drops).
/// `dissector` is the whole agent's limit: its flow budget is shared among the workers of all
/// interfaces, so memory stays within the documented bound whatever `--workers` is.
pub fn start(
    capture: Capture,
    rings: usize,
    dissector: DissectorConfig,
    capacity: usize,
) -> Result<Started, CaptureError> {
    let (tx, rx): (SyncSender<Dissected>, _) = mpsc::sync_channel(capacity.max(1));
    let per_worker = DissectorConfig {
        max_flows: (dissector.max_flows / rings.max(1)).max(1),
        ..dissector
    };
    let reports: Arc<Mutex<Vec<Arc<WorkerReport>>>> = Arc::default();
    let made = Arc::clone(&reports);
    let handle = capture.start_with(move |_, _| {
        let report = Arc::new(WorkerReport::default());
        if let Ok(mut all) = made.lock() {
            all.push(Arc::clone(&report));
        }
        worker(tx.clone(), per_worker, report)
    })?;
    let reports = reports.lock().map(|r| r.clone()).unwrap_or_default();
    Ok((handle, rx, reports))
}

/// One ring's packet callback: decode, dissect, hand over.
fn worker(
    tx: SyncSender<Dissected>,
    cfg: DissectorConfig,
    report: Arc<WorkerReport>,
) -> impl FnMut(Packet<'_>) -> Delivery + Send + 'static {
    let mut dissector = Dissector::new(cfg);
    let mut evidence = Vec::new();
    let mut last_expire_us = i64::MIN;
    let mut n = 0u64;
    move |p: Packet<'_>| {
        if let Ok(f) = frame::decode(p.link, p.data) {
            dissector.process(p.time_us, &f, &mut evidence);
        }
        // Idle flows are dropped once per second of capture time, not per packet.
        if p.time_us.saturating_sub(last_expire_us) >= 1_000_000 {
            last_expire_us = p.time_us;
            dissector.expire(p.time_us);
        }
        n += 1;
        if n.is_multiple_of(REPORT_EVERY) {
            if let Ok(mut s) = report.stats.lock() {
                *s = Some((dissector.stats(), dissector.memory()));
            }
        }
        match tx.try_send(Dissected {
            time_us: p.time_us,
            link: p.link,
            data: p.data.to_vec(),
            evidence: std::mem::take(&mut evidence),
        }) {
            Ok(()) => Delivery::Delivered,
            Err(TrySendError::Full(_)) => Delivery::Dropped,
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        }
    }
}

/// The workers' counters summed (flows, apps, evidence) and their flow tables' memory.
pub fn merged(reports: &[Arc<WorkerReport>]) -> (DissectStats, usize) {
    let mut total = DissectStats::default();
    let mut memory = 0;
    for r in reports {
        let Ok(s) = r.stats.lock() else { continue };
        let Some((s, m)) = *s else { continue };
        memory += m;
        total.frames += s.frames;
        total.tcp_segments += s.tcp_segments;
        total.udp_datagrams += s.udp_datagrams;
        total.flows_created += s.flows_created;
        total.flows_active += s.flows_active;
        total.flows_evicted += s.flows_evicted;
        total.flows_expired += s.flows_expired;
        total.evidence += s.evidence;
        for (t, a) in total.apps.iter_mut().zip(s.apps.iter()) {
            *t = AppStats {
                recognised: t.recognised + a.recognised,
                errors: t.errors + a.errors,
            };
        }
    }
    (total, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_sums_every_worker() {
        let a = Arc::new(WorkerReport::default());
        let b = Arc::new(WorkerReport::default());
        let silent = Arc::new(WorkerReport::default());
        let mut s = DissectStats {
            flows_active: 3,
            frames: 10,
            ..DissectStats::default()
        };
        s.apps[0].recognised = 2;
        *a.stats.lock().unwrap() = Some((s, 100));
        s.flows_active = 4;
        *b.stats.lock().unwrap() = Some((s, 50));
        let (t, m) = merged(&[a, b, silent]);
        assert_eq!(
            (t.flows_active, t.frames, t.apps[0].recognised, m),
            (7, 20, 4, 150)
        );
    }
}
