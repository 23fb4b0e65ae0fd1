//! From decoded frames to [`Evidence`]: a bounded TCP flow table that feeds each connection's
//! stream prefixes to the DICOM or HL7 decoder chosen by structure, and DHCP over UDP.
//!
//! This is the one place where the parsers meet; the agent calls [`Dissector::process`] for
//! every frame and aggregates what comes out.

use std::collections::{BTreeMap, HashMap};

/// Keyed by attacker-controlled addresses and ports: a randomly seeded, fast hasher (aHash)
/// keeps lookups constant-time without SipHash's per-packet cost.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

use core::net::IpAddr;

use crate::dicom::{self, DicomDecoder};
use crate::evidence::{Direction, Endpoints, Evidence, Fact};
use crate::frame::{Frame, Net, TcpSegment, Transport};
use crate::hl7::{self, Hl7Decoder};
use crate::reassembly::{HalfStream, ReassemblyConfig, Stop};
use crate::{dhcp, Feed, StreamDecoder};

/// Limits of the dissector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DissectorConfig {
    /// Per-direction reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// Most TCP flows tracked at once; the least recently seen is evicted beyond this.
    pub max_flows: usize,
    /// A flow not seen for this long (capture time) is dropped by [`Dissector::expire`].
    pub idle_timeout_us: i64,
}

impl Default for DissectorConfig {
    fn default() -> Self {
        DissectorConfig {
            reassembly: ReassemblyConfig::default(),
            max_flows: 65_536,
            idle_timeout_us: 300_000_000,
        }
    }
}

/// Counters, cumulative since the dissector was created (except `flows_active`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DissectStats {
    /// Frames processed.
    pub frames: u64,
    /// TCP segments seen.
    pub tcp_segments: u64,
    /// UDP datagrams seen.
    pub udp_datagrams: u64,
    /// TCP flows created.
    pub flows_created: u64,
    /// TCP flows currently tracked.
    pub flows_active: u64,
    /// Flows evicted because the table was full.
    pub flows_evicted: u64,
    /// Flows dropped for being idle.
    pub flows_expired: u64,
    /// Flows recognised as DICOM.
    pub dicom_flows: u64,
    /// Flows recognised as HL7/MLLP.
    pub hl7_flows: u64,
    /// DHCP messages decoded.
    pub dhcp_messages: u64,
    /// Application-layer decode errors (malformed DHCP and the like).
    pub app_errors: u64,
    /// Evidence records emitted.
    pub evidence: u64,
}

/// Canonical key of a TCP connection: the lower endpoint first, so both directions find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
    vlan: Option<u16>,
}

enum App {
    Undecided,
    Dicom(Box<DicomDecoder>),
    Hl7(Box<Hl7Decoder>),
    Ignored,
}

impl App {
    fn decoder(&mut self) -> Option<&mut dyn StreamDecoder> {
        match self {
            App::Dicom(d) => Some(d.as_mut()),
            App::Hl7(d) => Some(d.as_mut()),
            App::Undecided | App::Ignored => None,
        }
    }
}

struct Flow {
    /// Index 0: bytes sent by `key.lo`; index 1: bytes sent by `key.hi`.
    halves: [HalfStream; 2],
    /// Which index opened the connection, when its SYN was seen.
    client: Option<usize>,
    /// Per side: `Some(false)` when its first bytes matched no decoder.
    matched: [Option<bool>; 2],
    closed: [bool; 2],
    app: App,
    last_seen_us: i64,
    tick: u64,
}

impl Flow {
    /// Direction of bytes sent by `side`, as evidence reports it.
    fn direction(&self, side: usize) -> Direction {
        match self.client {
            Some(c) if c == side => Direction::FromClient,
            Some(_) => Direction::FromServer,
            None => Direction::Unknown,
        }
    }

    fn memory(&self) -> usize {
        core::mem::size_of::<Flow>() + self.halves.iter().map(HalfStream::memory).sum::<usize>()
    }
}

/// Turns frames into evidence. See the module documentation.
pub struct Dissector {
    cfg: DissectorConfig,
    flows: FastMap<FlowKey, Flow>,
    /// Flows by the tick they were last touched: the first entry is the least recently seen.
    lru: BTreeMap<u64, FlowKey>,
    tick: u64,
    stats: DissectStats,
    facts: Vec<Fact>,
}

impl core::fmt::Debug for Dissector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dissector")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for Dissector {
    fn default() -> Self {
        Dissector::new(DissectorConfig::default())
    }
}

fn endpoints(
    frame: &Frame<'_>,
    src: Option<(IpAddr, u16)>,
    dst: Option<(IpAddr, u16)>,
) -> Endpoints {
    Endpoints {
        src_mac: frame.src_mac,
        dst_mac: frame.dst_mac,
        vlans: frame.vlans.as_slice().to_vec(),
        src_ip: src.map(|s| s.0),
        dst_ip: dst.map(|d| d.0),
        src_port: src.map(|s| s.1),
        dst_port: dst.map(|d| d.1),
    }
}

fn reversed(e: &Endpoints) -> Endpoints {
    Endpoints {
        src_mac: e.dst_mac,
        dst_mac: e.src_mac,
        vlans: e.vlans.clone(),
        src_ip: e.dst_ip,
        dst_ip: e.src_ip,
        src_port: e.dst_port,
        dst_port: e.src_port,
    }
}

impl Dissector {
    /// A dissector with the given limits.
    pub fn new(cfg: DissectorConfig) -> Self {
        Dissector {
            cfg,
            flows: FastMap::default(),
            lru: BTreeMap::new(),
            tick: 0,
            stats: DissectStats::default(),
            facts: Vec::new(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> DissectStats {
        DissectStats {
            flows_active: self.flows.len() as u64,
            ..self.stats
        }
    }

    /// Heap bytes held by tracked flows (reassembly buffers and flow state). Walks the table:
    /// call it for periodic statistics, not per packet.
    pub fn memory(&self) -> usize {
        self.flows.values().map(Flow::memory).sum::<usize>()
            + self.lru.len() * core::mem::size_of::<(u64, FlowKey)>()
    }

    /// Processes one frame captured at `time_us`, appending any evidence to `out`.
    pub fn process(&mut self, time_us: i64, frame: &Frame<'_>, out: &mut Vec<Evidence>) {
        self.stats.frames += 1;
        let Net::Ip {
            src,
            dst,
            fragmented: false,
        } = frame.net
        else {
            return;
        };
        match frame.transport {
            Transport::Tcp(seg) => {
                self.stats.tcp_segments += 1;
                self.tcp(time_us, frame, src, dst, &seg, out);
            }
            Transport::Udp(udp) => {
                self.stats.udp_datagrams += 1;
                if dhcp::PORTS.contains(&udp.src_port) && dhcp::PORTS.contains(&udp.dst_port) {
                    self.stats.dhcp_messages += 1;
                    let mut facts = core::mem::take(&mut self.facts);
                    if dhcp::extract(udp.payload, &mut facts).is_err() {
                        self.stats.app_errors += 1;
                    }
                    let ends =
                        endpoints(frame, Some((src, udp.src_port)), Some((dst, udp.dst_port)));
                    self.emit(time_us, Direction::Unknown, &ends, &mut facts, out);
                    self.facts = facts;
                }
            }
            Transport::None => {}
        }
    }

    fn emit(
        &mut self,
        time_us: i64,
        dir: Direction,
        ends: &Endpoints,
        facts: &mut Vec<Fact>,
        out: &mut Vec<Evidence>,
    ) {
        if facts.is_empty() {
            return;
        }
        self.stats.evidence += facts.len() as u64;
        out.extend(
            facts
                .drain(..)
                .map(|f| Evidence::new(f, time_us, dir, ends.clone())),
        );
    }

    fn tcp(
        &mut self,
        time_us: i64,
        frame: &Frame<'_>,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpSegment<'_>,
        out: &mut Vec<Evidence>,
    ) {
        let s = (src, seg.src_port);
        let d = (dst, seg.dst_port);
        let (key, side) = if s <= d {
            (
                FlowKey {
                    lo: s,
                    hi: d,
                    vlan: frame.vlans.as_slice().last().copied(),
                },
                0,
            )
        } else {
            (
                FlowKey {
                    lo: d,
                    hi: s,
                    vlan: frame.vlans.as_slice().last().copied(),
                },
                1,
            )
        };
        self.tick += 1;
        let tick = self.tick;
        if !self.flows.contains_key(&key) {
            // A bare ACK or RST of a connection we never saw carries nothing to decode.
            if seg.payload.is_empty() && !seg.syn {
                return;
            }
            if self.flows.len() >= self.cfg.max_flows {
                if let Some((_, old)) = self.lru.pop_first() {
                    self.flows.remove(&old);
                    self.stats.flows_evicted += 1;
                }
            }
            self.stats.flows_created += 1;
            self.flows.insert(
                key,
                Flow {
                    halves: [
                        HalfStream::new(self.cfg.reassembly),
                        HalfStream::new(self.cfg.reassembly),
                    ],
                    client: None,
                    matched: [None, None],
                    closed: [false, false],
                    app: App::Undecided,
                    last_seen_us: time_us,
                    tick,
                },
            );
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        // Approximate LRU: a flow's place is refreshed only once it has fallen an eighth of the
        // table behind, so a busy flow costs two B-tree operations per few thousand packets
        // instead of per packet, and still never looks older than flows truly idle longer.
        let behind = tick - flow.tick;
        if behind == 0 || behind >= (self.cfg.max_flows as u64 / 8).max(1) {
            self.lru.remove(&flow.tick);
            self.lru.insert(tick, key);
            flow.tick = tick;
        }
        flow.last_seen_us = time_us;

        if matches!(flow.app, App::Ignored) {
            if seg.rst || (seg.fin && flow.closed.get(1 - side) == Some(&true)) {
                self.remove(&key);
            } else if seg.fin {
                if let Some(c) = flow.closed.get_mut(side) {
                    *c = true;
                }
            }
            return;
        }

        let Some(half) = flow.halves.get_mut(side) else {
            return;
        };
        if seg.syn {
            half.on_syn(seg.seq);
            if !seg.ack {
                flow.client = Some(side);
            } else if flow.client.is_none() {
                flow.client = Some(1 - side);
            }
        }
        let mut facts = core::mem::take(&mut self.facts);
        let fed = half.on_data(seg.seq, seg.payload, seg.truncated);
        let closing = seg.fin || seg.rst;
        if fed || closing {
            let new_apps = pump(flow, side, closing, &mut facts);
            self.stats.dicom_flows += new_apps.0;
            self.stats.hl7_flows += new_apps.1;
        }
        if closing {
            if let Some(c) = flow.closed.get_mut(side) {
                *c = true;
            }
        }
        let dir = flow.direction(side);
        let other_dir = flow.direction(1 - side);
        let done = seg.rst || flow.closed == [true, true];
        // Most segments yield nothing: build the endpoints (which copy the VLAN tags) only
        // for those that do.
        if !facts.is_empty() {
            let ends = endpoints(frame, Some(s), Some(d));
            self.emit(time_us, dir, &ends, &mut facts, out);
        }
        if seg.rst {
            // A reset ends both directions: the other side gets its final pass too, and what it
            // yields was sent the other way.
            if let Some(flow) = self.flows.get_mut(&key) {
                pump(flow, 1 - side, true, &mut facts);
            }
            if !facts.is_empty() {
                let ends = reversed(&endpoints(frame, Some(s), Some(d)));
                self.emit(time_us, other_dir, &ends, &mut facts, out);
            }
        }
        self.facts = facts;
        if done {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &FlowKey) {
        if let Some(flow) = self.flows.remove(key) {
            self.lru.remove(&flow.tick);
        }
    }

    /// Drops flows not seen since `now_us - idle_timeout`. Call it periodically (e.g. once a
    /// second of capture time); it walks only the expired flows.
    pub fn expire(&mut self, now_us: i64) {
        let cutoff = now_us.saturating_sub(self.cfg.idle_timeout_us);
        while let Some((&tick, &key)) = self.lru.first_key_value() {
            let Some(flow) = self.flows.get(&key) else {
                self.lru.remove(&tick);
                continue;
            };
            if flow.last_seen_us >= cutoff {
                break;
            }
            self.remove(&key);
            self.stats.flows_expired += 1;
        }
    }
}

/// Chooses a decoder for a flow from the first bytes of `side`, then feeds that side's
/// in-order bytes to it. Returns (new DICOM flows, new HL7 flows) for the counters.
fn pump(flow: &mut Flow, side: usize, closing: bool, facts: &mut Vec<Fact>) -> (u64, u64) {
    let mut new = (0, 0);
    // Decoders keep per-direction state keyed by the side they are told, so two distinct sides
    // are needed even when the capture missed the SYN and the true roles are unknown.
    let dir = match flow.direction(side) {
        Direction::Unknown if side == 0 => Direction::FromClient,
        Direction::Unknown => Direction::FromServer,
        known => known,
    };
    let Some(half) = flow.halves.get_mut(side) else {
        return new;
    };
    let at_limit = closing || half.at_limit();
    if matches!(flow.app, App::Undecided) {
        let data = half.data();
        let verdict = match (dicom::looks_like_dicom(data), hl7::looks_like_hl7(data)) {
            (Some(true), _) => Some(true),
            (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        };
        match verdict {
            Some(true) => {
                if dicom::looks_like_dicom(data) == Some(true) {
                    flow.app = App::Dicom(Box::default());
                    new.0 = 1;
                } else {
                    flow.app = App::Hl7(Box::default());
                    new.1 = 1;
                }
            }
            Some(false) => {
                // Picked up mid-connection, an HL7 stream can still be joined at its next
                // message start; anything else on this side is not ours.
                if let Some(pos) = half
                    .midstream()
                    .then(|| hl7::find_mllp_start(data))
                    .flatten()
                {
                    half.consume(pos);
                    flow.app = App::Hl7(Box::default());
                    new.1 = 1;
                } else {
                    half.finish(Stop::DecoderDone);
                    if let Some(m) = flow.matched.get_mut(side) {
                        *m = Some(false);
                    }
                    if flow.matched == [Some(false), Some(false)] {
                        flow.app = App::Ignored;
                        for h in &mut flow.halves {
                            h.finish(Stop::DecoderDone);
                        }
                    }
                    return new;
                }
            }
            None => {
                if at_limit {
                    half.finish(Stop::DecoderDone);
                }
                return new;
            }
        }
    }
    let Some(decoder) = flow.app.decoder() else {
        return new;
    };
    if half.stopped() == Some(Stop::DecoderDone) {
        return new;
    }
    let data = half.data();
    if data.is_empty() && !at_limit {
        return new;
    }
    match decoder.feed(dir, data, at_limit, facts) {
        Feed::Consumed(n) => {
            half.consume(n);
            if at_limit {
                half.finish(if closing {
                    Stop::Closed
                } else {
                    Stop::DecoderDone
                });
            }
        }
        Feed::Done => half.finish(Stop::DecoderDone),
    }
    new
}
