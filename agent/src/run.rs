//! The agent's main loop, shared by `capture` and `read`: packets into the [`Engine`], delta
//! batches every `batch_interval`, full snapshots every `snapshot_interval`, a stats log line
//! and a status message every `stats_interval`, and a final flush when the input ends or a
//! stop is requested (SIGTERM/SIGINT).
//!
//! Runs on a plain OS thread: the engine is synchronous; only the MQTT output is async, and
//! its `publish_*` methods are callable from any thread.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use crate::capture::{CaptureHandle, OwnedPacket};
use crate::engine::{Batcher, Engine};
use crate::observation::Kind;
use crate::output::{AgentState, Output, StatusStats};
use ward_protocols::schema::status::CaptureStats;

/// A fresh message numberer for this run (`seq` counts from 1 per instance).
pub fn batcher(cfg: &LoopConfig) -> Batcher {
    Batcher::new(
        &cfg.site,
        &cfg.agent_id,
        &cfg.instance,
        cfg.devices_per_message,
    )
}

/// Intervals and identity for the loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Site.
    pub site: String,
    /// Agent id.
    pub agent_id: String,
    /// This run's instance id.
    pub instance: String,
    /// When the agent started.
    pub started_at: SystemTime,
    /// Delta batch interval.
    pub batch_interval: Duration,
    /// Snapshot interval.
    pub snapshot_interval: Duration,
    /// Stats interval.
    pub stats_interval: Duration,
    /// Devices per message.
    pub devices_per_message: usize,
}

/// What the loop did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopSummary {
    /// Packets processed.
    pub packets: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Devices at the end.
    pub devices: u64,
    /// Devices evicted from the full table (each published with its last changes).
    pub devices_evicted: u64,
    /// Evicted devices whose last changes could not be published (see
    /// [`crate::devices::DeviceStats::evicted_unpublished`]; zero when the loop keeps up).
    pub devices_evicted_unpublished: u64,
    /// Observation messages published.
    pub messages: u64,
}

struct Loop<'a> {
    cfg: &'a LoopConfig,
    engine: &'a mut Engine,
    batcher: &'a mut Batcher,
    output: &'a Output,
    last_batch: Instant,
    last_snapshot: Instant,
    last_stats: Instant,
    last_packets: u64,
    last_bytes: u64,
    messages: u64,
    /// Live capture counters as of the last refresh (empty when reading files).
    capture: Vec<CaptureStats>,
    progress: Option<(Arc<AtomicU64>, u64)>,
}

impl Loop<'_> {
    fn publish(&mut self, kind: Kind, last_time_us: i64) -> anyhow::Result<()> {
        let per = self.cfg.devices_per_message;
        match kind {
            Kind::Delta => loop {
                let devices = self.engine.take_changes(per);
                if devices.is_empty() {
                    break;
                }
                self.send(kind, last_time_us, devices)?;
            },
            Kind::Snapshot => {
                // Evicted devices are not in the snapshot: their last changes go out first.
                self.publish_evicted(last_time_us)?;
                // A snapshot includes every other change, so pending changes are cleared.
                self.engine.clear_changes();
                // Stream chunk by chunk: a snapshot of a big table is never whole in memory.
                let Loop {
                    engine,
                    batcher,
                    output,
                    messages,
                    ..
                } = self;
                let mut failure = None;
                let mut chunks = 0;
                engine.snapshot(per, |c| {
                    chunks += 1;
                    if failure.is_none() {
                        if let Err(e) = send(batcher, output, messages, kind, last_time_us, c) {
                            failure = Some(e);
                        }
                    }
                });
                if let Some(e) = failure {
                    return Err(e);
                }
                if chunks == 0 {
                    self.send(kind, last_time_us, Vec::new())?;
                }
            }
        }
        Ok(())
    }

    /// Publishes the last state of every device evicted with unpublished changes.
    fn publish_evicted(&mut self, last_time_us: i64) -> anyhow::Result<()> {
        loop {
            let devices = self.engine.take_evicted(self.cfg.devices_per_message);
            if devices.is_empty() {
                return Ok(());
            }
            self.send(Kind::Delta, last_time_us, devices)?;
        }
    }

    /// Takes one frame a capture worker dissected (see [`Self::process`] about evictions).
    fn process_dissected(&mut self, p: &mut crate::workers::Dissected) -> anyhow::Result<()> {
        self.engine
            .process_dissected(p.time_us, p.link, &p.data, &mut p.evidence);
        if self.engine.pending_evicted() >= self.cfg.devices_per_message {
            self.publish_evicted(p.time_us)?;
        }
        Ok(())
    }

    /// Processes one packet. Devices evicted from a full table are published as soon as a
    /// message's worth waits, so their changes are neither lost nor held without bound.
    fn process(
        &mut self,
        time_us: i64,
        link: Option<ward_protocols::frame::LinkType>,
        data: &[u8],
    ) -> anyhow::Result<()> {
        self.engine.process(time_us, link, data);
        if self.engine.pending_evicted() >= self.cfg.devices_per_message {
            self.publish_evicted(time_us)?;
        }
        Ok(())
    }

    fn send(
        &mut self,
        kind: Kind,
        last_time_us: i64,
        devices: Vec<crate::observation::DeviceRecord>,
    ) -> anyhow::Result<()> {
        send(
            self.batcher,
            self.output,
            &mut self.messages,
            kind,
            last_time_us,
            devices,
        )
    }

    fn stats(&mut self, state: AgentState) -> anyhow::Result<()> {
        let s = self.engine.stats();
        let out = self.output.stats();
        let secs = self.last_stats.elapsed().as_secs_f64().max(1e-3);
        let pps = (s.packets - self.last_packets) as f64 / secs;
        let mbps = (s.bytes - self.last_bytes) as f64 * 8.0 / secs / 1e6;
        self.last_packets = s.packets;
        self.last_bytes = s.bytes;
        let progress = self.progress.as_ref().map(|(read, total)| {
            let r = read.load(Ordering::Relaxed);
            if *total > 0 {
                format!("{:.1}%", r as f64 * 100.0 / *total as f64)
            } else {
                format!("{r} bytes")
            }
        });
        let ring_drops: u64 = self.capture.iter().map(|c| c.ring_drops).sum();
        let queue_drops: u64 = self.capture.iter().map(|c| c.queue_drops).sum();
        let per_worker = capture_summary(&self.capture);
        tracing::info!(
            packets = s.packets,
            bytes = s.bytes,
            pps = pps as u64,
            mbit_s = format!("{mbps:.1}"),
            kernel_drops = ring_drops,
            ring_drops,
            queue_drops,
            capture = per_worker.as_deref().unwrap_or("-"),
            devices = s.devices.devices,
            devices_evicted = s.devices.evicted,
            devices_evicted_unpublished = s.devices.evicted_unpublished,
            flows = s.dissect.flows_active,
            flows_evicted = s.dissect.flows_evicted,
            apps = %s.dissect.apps_summary(),
            table_bytes = self.engine.memory(),
            spool_depth = out.spool_depth,
            spool_evicted = out.evicted_messages,
            connected = out.connected,
            progress = progress.as_deref().unwrap_or("-"),
            "stats"
        );
        let mut status = crate::output::new_status(
            state,
            &self.cfg.site,
            &self.cfg.agent_id,
            &self.cfg.instance,
            self.cfg.started_at,
        );
        status.stats = Some(StatusStats {
            packets: s.packets,
            bytes: s.bytes,
            kernel_drops: ring_drops,
            ring_drops,
            queue_drops,
            capture: self.capture.clone(),
            devices: s.devices.devices,
            flows: s.dissect.flows_active,
            evictions: s.devices.evicted + s.dissect.flows_evicted,
            spool_depth: out.spool_depth,
            spool_bytes: out.spool_bytes,
            spool_evicted: out.evicted_messages,
        });
        self.output
            .publish_status(serde_json::to_vec(&status)?)
            .context("publishing status")?;
        self.last_stats = Instant::now();
        Ok(())
    }

    /// Timers: called between packets (cheaply: `Instant::now` only every few packets).
    fn tick(&mut self, last_time_us: i64) -> anyhow::Result<()> {
        if self.last_snapshot.elapsed() >= self.cfg.snapshot_interval {
            self.publish(Kind::Snapshot, last_time_us)?;
            self.last_snapshot = Instant::now();
            self.last_batch = Instant::now();
        } else if self.last_batch.elapsed() >= self.cfg.batch_interval {
            self.publish(Kind::Delta, last_time_us)?;
            self.last_batch = Instant::now();
        }
        if self.last_stats.elapsed() >= self.cfg.stats_interval {
            self.stats(AgentState::Online)?;
        }
        Ok(())
    }

    fn finish(mut self, last_time_us: i64) -> anyhow::Result<LoopSummary> {
        // Every device is in some delta (new devices are changed devices), so the final flush
        // is a delta; full snapshots stay on their timer.
        self.publish(Kind::Delta, last_time_us)?;
        self.stats(AgentState::Online)?;
        let s = self.engine.stats();
        if s.devices.evicted > 0 {
            tracing::warn!(
                devices = s.devices.devices,
                devices_evicted = s.devices.evicted,
                "the device table was full (--max-devices): the least recently seen devices \
                 were evicted after their last changes were published"
            );
        }
        if s.devices.evicted_unpublished > 0 {
            tracing::warn!(
                devices_evicted_unpublished = s.devices.evicted_unpublished,
                "evicted devices' last changes could not all be kept for publishing"
            );
        }
        Ok(LoopSummary {
            packets: s.packets,
            bytes: s.bytes,
            devices: s.devices.devices,
            devices_evicted: s.devices.evicted,
            devices_evicted_unpublished: s.devices.evicted_unpublished,
            messages: self.messages,
        })
    }
}

/// `if/worker:packets/ring_drops/queue_drops` per ring, for the stats line (`None` when not
/// capturing live).
fn capture_summary(capture: &[CaptureStats]) -> Option<String> {
    (!capture.is_empty()).then(|| {
        capture
            .iter()
            .map(|c| {
                format!(
                    "{}/{}:{}/{}/{}",
                    c.interface, c.worker, c.packets, c.ring_drops, c.queue_drops
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Capture counters for the status message, one element per ring (interface and worker).
pub fn capture_stats(stats: &[crate::capture::InterfaceStats]) -> Vec<CaptureStats> {
    stats
        .iter()
        .map(|s| CaptureStats {
            interface: s.interface.clone(),
            worker: s.worker,
            packets: s.packets,
            ring_drops: s.ring_drops,
            queue_drops: s.sink_dropped,
            // Interface counters are the same for every ring of the interface: reported once.
            interface_drops: match (s.worker, s.kernel, s.kernel_at_open) {
                (0, Some(now), Some(base)) => now.since(&base).rx_dropped,
                _ => 0,
            },
        })
        .collect()
}

/// Warns once per refresh for each ring whose losses grew since `before`.
fn warn_on_new_drops(before: &[CaptureStats], now: &[CaptureStats]) {
    for c in now {
        let prev = before
            .iter()
            .find(|b| b.interface == c.interface && b.worker == c.worker);
        let (ring, queue) = prev.map_or((0, 0), |p| (p.ring_drops, p.queue_drops));
        let (new_ring, new_queue) = (
            c.ring_drops.saturating_sub(ring),
            c.queue_drops.saturating_sub(queue),
        );
        if new_ring > 0 || new_queue > 0 {
            tracing::warn!(
                interface = %c.interface,
                worker = c.worker,
                ring_drops = new_ring,
                queue_drops = new_queue,
                ring_drops_total = c.ring_drops,
                queue_drops_total = c.queue_drops,
                "live capture lost frames (ring_drops: the ring was full, raise --ring-size or                  narrow --filter; queue_drops: the decoders did not keep up)"
            );
        }
    }
}

fn send(
    batcher: &mut Batcher,
    output: &Output,
    messages: &mut u64,
    kind: Kind,
    last_time_us: i64,
    devices: Vec<crate::observation::DeviceRecord>,
) -> anyhow::Result<()> {
    for msg in batcher.messages(kind, last_time_us, devices) {
        let payload = serde_json::to_vec(&msg).context("serialising an observation")?;
        output
            .publish_devices(payload)
            .context("publishing an observation")?;
        *messages += 1;
    }
    Ok(())
}

fn new_loop<'a>(
    cfg: &'a LoopConfig,
    engine: &'a mut Engine,
    batcher: &'a mut Batcher,
    output: &'a Output,
) -> Loop<'a> {
    let now = Instant::now();
    Loop {
        cfg,
        engine,
        batcher,
        output,
        last_batch: now,
        last_snapshot: now,
        last_stats: now,
        last_packets: 0,
        last_bytes: 0,
        messages: 0,
        capture: Vec::new(),
        progress: None,
    }
}

/// Counts bytes read and reports end of file once `stop` is set, so a long file read ends
/// promptly on SIGTERM with everything read so far flushed.
struct StoppableRead<R> {
    inner: R,
    stop: Arc<AtomicBool>,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for StoppableRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Warns about what reading a capture skipped or found cut short, with byte offsets.
fn report_read(name: &str, stats: &crate::pcap::ReadStats) {
    if let Some(at) = stats.truncated_at {
        tracing::warn!(
            file = %name,
            packets = stats.packets,
            "the capture ends in the middle of a block at byte offset {at} (truncated file); \
             everything before it was read"
        );
    }
    if stats.unknown_link > 0 {
        tracing::warn!(
            file = %name,
            packets = stats.unknown_link,
            "packets with a link type ward does not decode were skipped"
        );
    }
    if stats.unknown_interface > 0 {
        tracing::warn!(
            file = %name,
            packets = stats.unknown_interface,
            "packets in pcapng blocks naming an interface their section never described \
             (first at byte offset {}) cannot be decoded and were skipped",
            stats.unknown_interface_first_at.unwrap_or(0)
        );
    }
}

/// Reads one capture stream `name` (`size` bytes, 0 if unknown) through the engine.
///
/// A regular file is read on this thread with the timers checked every few thousand packets.
/// A pipe (`size` 0, e.g. `tcpdump -w - | ward-agent read -`) may pause for any length of time,
/// so it is parsed on a reader thread and handed over packet by packet, letting batches,
/// snapshots and status go out on time while the input is idle.
///
/// A damaged capture ends the read with a [`crate::pcap::ReadError`] (file, byte offset, what
/// was wrong); the devices seen before the damage are published first.
#[allow(clippy::too_many_arguments)]
pub fn run_file<R: Read + Send + 'static>(
    cfg: &LoopConfig,
    engine: &mut Engine,
    batcher: &mut Batcher,
    output: &Output,
    name: &str,
    input: R,
    size: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<LoopSummary> {
    let mut lp = new_loop(cfg, engine, batcher, output);
    let read = Arc::new(AtomicU64::new(0));
    lp.progress = Some((read.clone(), size));
    let input = StoppableRead {
        inner: input,
        stop: stop.clone(),
        read,
    };
    let mut last_time = 0i64;
    if size == 0 {
        let (tx, rx) = std::sync::mpsc::sync_channel::<OwnedPacket>(4096);
        // Detached, not scoped: a reader blocked on an idle pipe must not keep a stop request
        // waiting. On stop the loop leaves it blocked; the process exits after the flush.
        let thread_name = name.to_owned();
        let reader = std::thread::Builder::new()
            .name("ward-read".into())
            .spawn(move || {
                crate::pcap::read_packets_from(&thread_name, input, |p| {
                    let Some(link) = p.link else { return };
                    let _ = tx.send(OwnedPacket {
                        time_us: p.time_us,
                        interface: 0,
                        link,
                        data: p.data.to_vec(),
                    });
                })
            })
            .context("starting the capture reader thread")?;
        let mut finished = false;
        while !stop.load(Ordering::Relaxed) {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(p) => {
                    lp.process(p.time_us, Some(p.link), &p.data)?;
                    last_time = p.time_us;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    finished = true;
                    break;
                }
            }
            lp.tick(last_time)?;
        }
        // Whatever was already handed over is processed before the final flush.
        for p in rx.try_iter() {
            lp.process(p.time_us, Some(p.link), &p.data)?;
            last_time = p.time_us;
        }
        if !finished {
            return lp.finish(last_time);
        }
        let result = reader
            .join()
            .map_err(|_| anyhow::anyhow!("capture reader thread panicked"))?;
        return finish_read(lp, name, result, last_time);
    }
    let mut n = 0u64;
    let mut failure = None;
    let result = crate::pcap::read_packets_from(name, input, |p| {
        if failure.is_some() {
            return;
        }
        if let Err(e) = lp.process(p.time_us, p.link, p.data) {
            failure = Some(e);
            return;
        }
        last_time = p.time_us;
        n += 1;
        if n.is_multiple_of(4096) {
            if let Err(e) = lp.tick(last_time) {
                failure = Some(e);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    finish_read(lp, name, result, last_time)
}

/// Reports the read and flushes; a damaged capture's error is returned after the flush.
fn finish_read(
    lp: Loop<'_>,
    name: &str,
    result: Result<crate::pcap::ReadStats, crate::pcap::ReadError>,
    last_time: i64,
) -> anyhow::Result<LoopSummary> {
    match result {
        Ok(stats) => {
            report_read(name, &stats);
            lp.finish(last_time)
        }
        Err(e) => {
            report_read(name, &e.stats);
            lp.finish(last_time)?;
            Err(e.into())
        }
    }
}

/// The live capture a loop reads: the capture, the frames its workers dissected, and the
/// workers' counters (see [`crate::workers`]).
#[derive(Debug)]
pub struct Live<'a> {
    /// The running capture.
    pub handle: &'a CaptureHandle,
    /// Frames the workers dissected.
    pub packets: Receiver<crate::workers::Dissected>,
    /// The workers' dissector counters.
    pub workers: Vec<Arc<crate::workers::WorkerReport>>,
}

/// Runs live capture until `stop` is set.
pub fn run_live(
    cfg: &LoopConfig,
    engine: &mut Engine,
    batcher: &mut Batcher,
    output: &Output,
    live: Live<'_>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<LoopSummary> {
    let Live {
        handle,
        packets,
        workers,
    } = live;
    let mut lp = new_loop(cfg, engine, batcher, output);
    let mut last_time = 0i64;
    let mut last_kernel = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match packets.recv_timeout(Duration::from_millis(200)) {
            Ok(mut p) => {
                lp.process_dissected(&mut p)?;
                last_time = p.time_us;
                // Drain what is already queued before looking at the clocks again.
                for mut p in packets.try_iter().take(4096) {
                    lp.process_dissected(&mut p)?;
                    last_time = p.time_us;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_kernel.elapsed() >= cfg.stats_interval.min(Duration::from_secs(5)) {
            let now = capture_stats(&handle.stats_without_ss());
            warn_on_new_drops(&lp.capture, &now);
            lp.capture = now;
            let (dissect, memory) = crate::workers::merged(&workers);
            lp.engine.set_workers_dissect(dissect, memory);
            last_kernel = Instant::now();
        }
        lp.tick(last_time)?;
    }
    handle.stop();
    for mut p in packets.try_iter() {
        lp.process_dissected(&mut p)?;
        last_time = p.time_us;
    }
    let now = capture_stats(&handle.stats_without_ss());
    warn_on_new_drops(&lp.capture, &now);
    lp.capture = now;
    let (dissect, memory) = crate::workers::merged(&workers);
    lp.engine.set_workers_dissect(dissect, memory);
    lp.finish(last_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{InterfaceStats, KernelStats};

    #[test]
    fn capture_counters_reach_the_status_and_the_stats_line() {
        let base = KernelStats {
            rx_dropped: 4,
            ..KernelStats::default()
        };
        let s = InterfaceStats {
            interface: "eth1".into(),
            worker: 0,
            packets: 1000,
            bytes: 64_000,
            possibly_truncated: 0,
            sink_dropped: 3,
            ring_drops: 9,
            errors: 0,
            reopens: 0,
            running: true,
            kernel: Some(KernelStats {
                rx_dropped: 10,
                ..base
            }),
            kernel_at_open: Some(base),
            socket: None,
        };
        let c = capture_stats(&[s]);
        assert_eq!(
            c,
            vec![CaptureStats {
                interface: "eth1".into(),
                worker: 0,
                packets: 1000,
                ring_drops: 9,
                queue_drops: 3,
                interface_drops: 6,
            }]
        );
        assert_eq!(capture_summary(&c).as_deref(), Some("eth1/0:1000/9/3"));
        assert_eq!(capture_summary(&[]), None);
        // No panic on a ring that appeared since the last refresh or on counters that restarted.
        warn_on_new_drops(&[], &c);
        warn_on_new_drops(&c, &[]);
    }
}
