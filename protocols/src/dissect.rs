//! From decoded frames to [`Evidence`]: a bounded TCP flow table that feeds each connection's
//! stream prefixes to the application decoder chosen by structure from [`crate::registry`], and
//! each UDP datagram to the datagram decoder whose probe claims it.
//!
//! Frames with no IP layer take the link-layer path: LLDP and CDP announce a device to its
//! link neighbour directly over Ethernet. Rather than a second dispatch beside the registry,
//! they are registry entries of their own transport ([`registry::LinkFrames`]: an EtherType, or
//! 802.3 frames with LLC), so the per-protocol counters, the generic fuzz entry point and the
//! registry's tests cover them like any other; [`Dissector::process`] hands such a frame's
//! payload to [`registry::probe_link`] before it looks for IP. Their facts describe the frame's
//! sender, whose only address is its source MAC: the evidence carries the MACs and no IP, and
//! the agent keys the device by that MAC as it does for every frame.
//!
//! This is the one place where the parsers meet; the agent calls [`Dissector::process`] for
//! every frame and aggregates what comes out. Nothing here names a protocol: a new one is a
//! registry entry, not a change to this file.

use std::collections::{BTreeMap, HashMap};

/// Keyed by attacker-controlled addresses and ports: a randomly seeded, fast hasher (aHash)
/// keeps lookups constant-time without SipHash's per-packet cost.
type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

use core::net::IpAddr;

use crate::evidence::{Direction, Endpoints, Evidence, Fact, Protocol};
use crate::frame::{Frame, Net, TcpSegment, Transport};
use crate::reassembly::{HalfStream, ReassemblyConfig, Stop};
use crate::registry::{self, AppDecoder, Decode, StreamVerdict};
use crate::{Feed, StreamDecoder};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Per application protocol, indexed by [`Protocol::index`] (see [`DissectStats::app`]).
    pub apps: [AppStats; Protocol::COUNT],
    /// Evidence records emitted.
    pub evidence: u64,
}

/// Counters of one application protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppStats {
    /// TCP flows recognised as the protocol, or datagrams decoded as it.
    pub recognised: u64,
    /// Datagrams that were the protocol's but malformed (the facts before the damage are kept).
    pub errors: u64,
}

impl Default for DissectStats {
    fn default() -> Self {
        DissectStats {
            frames: 0,
            tcp_segments: 0,
            udp_datagrams: 0,
            flows_created: 0,
            flows_active: 0,
            flows_evicted: 0,
            flows_expired: 0,
            apps: [AppStats::default(); Protocol::COUNT],
            evidence: 0,
        }
    }
}

impl DissectStats {
    /// The counters of `protocol`.
    pub fn app(&self, protocol: Protocol) -> AppStats {
        self.apps.get(protocol.index()).copied().unwrap_or_default()
    }

    fn app_mut(&mut self, protocol: Protocol) -> Option<&mut AppStats> {
        self.apps.get_mut(protocol.index())
    }

    /// Application decode errors of every protocol.
    pub fn app_errors(&self) -> u64 {
        self.apps.iter().map(|a| a.errors).sum()
    }

    /// `dicom=3 hl7=1 dhcp=0`: flows or datagrams recognised per protocol, for log lines.
    pub fn apps_summary(&self) -> String {
        let mut s = String::new();
        for p in Protocol::ALL {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(p.name());
            s.push('=');
            s.push_str(&self.app(*p).recognised.to_string());
        }
        s
    }
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
    /// The decoder the registry chose, and the side key each direction is fed under (fixed
    /// when it was chosen, so its per-side state never swaps if roles are learnt later).
    Decoding {
        decoder: Box<dyn StreamDecoder + Send>,
        keys: [Direction; 2],
    },
    Ignored,
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
        if let Some(link) = frame.link {
            if let Some((app, payload)) = registry::probe_link(link.ether_type, link.payload) {
                self.link(time_us, frame, app, payload, out);
            }
            return;
        }
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
                if let Some(app) = registry::probe_datagram(udp.payload) {
                    self.datagram(
                        time_us,
                        frame,
                        app,
                        (src, udp.src_port),
                        (dst, udp.dst_port),
                        udp.payload,
                        out,
                    );
                }
            }
            Transport::None => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        time_us: i64,
        frame: &Frame<'_>,
        app: &AppDecoder,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        payload: &[u8],
        out: &mut Vec<Evidence>,
    ) {
        let Decode::Datagram { decode, direction } = app.decode else {
            return;
        };
        let mut facts = core::mem::take(&mut self.facts);
        let failed = decode(payload, &mut facts).is_err();
        if let Some(a) = self.stats.app_mut(app.protocol) {
            a.recognised += 1;
            a.errors += u64::from(failed);
        }
        if !facts.is_empty() {
            let ends = endpoints(frame, Some(src), Some(dst));
            self.emit(time_us, direction(payload), &ends, &mut facts, out);
        }
        self.facts = facts;
    }

    /// One link-layer frame: decoded on its own, with no direction (an announcement to
    /// whoever listens) and no IP endpoints.
    fn link(
        &mut self,
        time_us: i64,
        frame: &Frame<'_>,
        app: &AppDecoder,
        payload: &[u8],
        out: &mut Vec<Evidence>,
    ) {
        let Decode::Link { decode, .. } = app.decode else {
            return;
        };
        let mut facts = core::mem::take(&mut self.facts);
        let failed = decode(payload, &mut facts).is_err();
        if let Some(a) = self.stats.app_mut(app.protocol) {
            a.recognised += 1;
            a.errors += u64::from(failed);
        }
        if !facts.is_empty() {
            let ends = endpoints(frame, None, None);
            self.emit(time_us, Direction::Unknown, &ends, &mut facts, out);
        }
        self.facts = facts;
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
        let mut recognised = None;
        if fed || closing {
            recognised = pump(flow, side, closing, &mut facts);
        }
        if closing {
            if let Some(c) = flow.closed.get_mut(side) {
                *c = true;
            }
        }
        // After the pump: a decoder may have just learnt from the messages which side is the
        // client.
        let dir = flow.direction(side);
        let done = seg.rst || flow.closed == [true, true];
        if let Some(a) = recognised.and_then(|p| self.stats.app_mut(p)) {
            a.recognised += 1;
        }
        // Most segments yield nothing: build the endpoints (which copy the VLAN tags) only
        // for those that do.
        if !facts.is_empty() {
            let ends = endpoints(frame, Some(s), Some(d));
            self.emit(time_us, dir, &ends, &mut facts, out);
        }
        if seg.rst {
            // A reset ends both directions: the other side gets its final pass too, and what it
            // yields was sent the other way.
            let mut other_dir = Direction::Unknown;
            if let Some(flow) = self.flows.get_mut(&key) {
                pump(flow, 1 - side, true, &mut facts);
                other_dir = flow.direction(1 - side);
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

/// Chooses a decoder for a flow from the first bytes of `side` (walking the registry), then
/// feeds that side's in-order bytes to it. Returns the protocol when this call recognised the
/// flow, for the counters.
fn pump(flow: &mut Flow, side: usize, closing: bool, facts: &mut Vec<Fact>) -> Option<Protocol> {
    let mut recognised = None;
    let half = flow.halves.get_mut(side)?;
    let at_limit = closing || half.at_limit();
    if matches!(flow.app, App::Undecided) {
        let data = half.data();
        let app = match registry::probe_stream(data) {
            StreamVerdict::Found(app) => app,
            // Picked up mid-connection, a stream can still be joined at its next message start
            // by a decoder that knows how; anything else on this side is not ours.
            StreamVerdict::NoneMine => match half
                .midstream()
                .then(|| registry::resync_stream(data))
                .flatten()
            {
                Some((app, pos)) => {
                    half.consume(pos);
                    app
                }
                None => {
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
                    return None;
                }
            },
            StreamVerdict::Unsure => {
                if at_limit {
                    half.finish(Stop::DecoderDone);
                }
                return None;
            }
        };
        let Decode::Stream(new) = app.decode else {
            return None;
        };
        // Decoders keep per-direction state keyed by the side they are told, so two distinct
        // sides are needed even when the capture missed the SYN and the true roles are unknown.
        let keys = match flow.client {
            Some(1) => [Direction::FromServer, Direction::FromClient],
            _ => [Direction::FromClient, Direction::FromServer],
        };
        flow.app = App::Decoding {
            decoder: new(),
            keys,
        };
        recognised = Some(app.protocol);
    }
    let App::Decoding { decoder, keys } = &mut flow.app else {
        return recognised;
    };
    if half.stopped() == Some(Stop::DecoderDone) {
        return recognised;
    }
    let data = half.data();
    if data.is_empty() && !at_limit {
        return recognised;
    }
    let dir = keys.get(side).copied().unwrap_or(Direction::Unknown);
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
    // A capture that missed the handshake: the messages may say who opened the conversation.
    if flow.client.is_none() {
        if let Some(opener) = decoder.client() {
            flow.client = keys.iter().position(|&k| k == opener);
        }
    }
    recognised
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Field, MacAddr};
    use crate::frame::{self, LinkType};
    use etherparse::PacketBuilder;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const ECHO_RQ_AC: (&[u8], &[u8]) = (
        include_bytes!("../testdata/dicom/echo.client.bin"),
        include_bytes!("../testdata/dicom/echo.server.bin"),
    );

    fn tcp(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src.0[3]], [2, 0, 0, 0, 0, dst.0[3]])
            .ipv4(src.0, dst.0, 64)
            .tcp(src.1, dst.1, seq, 65535);
        let b = if syn { b.syn() } else { b.ack(1) };
        b.write(&mut buf, payload).unwrap();
        buf
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, src.0[3]], [2, 0, 0, 0, 0, dst.0[3]])
            .ipv4(src.0, dst.0, 64)
            .udp(src.1, dst.1)
            .write(&mut buf, payload)
            .unwrap();
        buf
    }

    fn run(d: &mut Dissector, frames: &[Vec<u8>]) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let f = frame::decode(LinkType::Ethernet, f).unwrap();
            d.process(i as i64, &f, &mut out);
        }
        out
    }

    fn first_pdu(bytes: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(bytes[2..6].try_into().unwrap()) as usize;
        &bytes[..6 + len]
    }

    /// A capture that starts after the handshake, with the requestor on the higher endpoint
    /// (so the flow's lower side, the decoder's default "client", is the acceptor): the
    /// A-ASSOCIATE-RQ says who the client is, and the AC that answers is from the server.
    #[test]
    fn the_associate_rq_tells_the_direction_when_the_handshake_was_missed() {
        let requestor = (B, 40000);
        let acceptor = (A, 11112);
        let rq = first_pdu(ECHO_RQ_AC.0);
        let ac = first_pdu(ECHO_RQ_AC.1);
        let mut d = Dissector::default();
        let out = run(
            &mut d,
            &[
                tcp(requestor, acceptor, 1000, false, rq),
                tcp(acceptor, requestor, 5000, false, ac),
            ],
        );
        let dir_of = |field: Field, from: [u8; 4]| {
            out.iter()
                .filter(|e| e.field == field && e.endpoints.src_ip == Some(from.into()))
                .map(|e| e.direction)
                .collect::<Vec<_>>()
        };
        let rq_dirs = dir_of(Field::DicomCallingAe, B);
        assert!(!rq_dirs.is_empty());
        assert!(
            rq_dirs.iter().all(|&d| d == Direction::FromClient),
            "{rq_dirs:?}"
        );
        let ac_dirs = dir_of(Field::DicomCalledAe, A);
        assert!(!ac_dirs.is_empty());
        assert!(
            ac_dirs.iter().all(|&d| d == Direction::FromServer),
            "{ac_dirs:?}"
        );
        assert_eq!(d.stats().app(Protocol::Dicom).recognised, 1);
        assert_eq!(d.stats().app(Protocol::Hl7).recognised, 0);
    }

    /// Only the A-ASSOCIATE-AC was captured: it travels back from the acceptor, so its sender
    /// is the server.
    #[test]
    fn a_lone_associate_ac_tells_the_direction_too() {
        let requestor = (A, 40000);
        let acceptor = (B, 11112);
        let ac = first_pdu(ECHO_RQ_AC.1);
        let mut d = Dissector::default();
        let out = run(&mut d, &[tcp(acceptor, requestor, 5000, false, ac)]);
        assert!(!out.is_empty());
        assert!(
            out.iter().all(|e| e.direction == Direction::FromServer),
            "{out:?}"
        );
    }

    /// With the handshake seen, its direction stands.
    #[test]
    fn the_handshake_decides_when_it_was_seen() {
        let client = (B, 40000);
        let server = (A, 104);
        let rq = first_pdu(ECHO_RQ_AC.0);
        let mut d = Dissector::default();
        let out = run(
            &mut d,
            &[
                tcp(client, server, 999, true, &[]),
                tcp(client, server, 1000, false, rq),
            ],
        );
        assert!(!out.is_empty());
        assert!(out.iter().all(|e| e.direction == Direction::FromClient));
    }

    /// DHCP is found by its structure on any port, and a BOOTREQUEST is the client's.
    #[test]
    fn dhcp_is_recognised_by_structure_not_port() {
        let discover = include_bytes!("../testdata/dhcp/discover.bin");
        let offer = include_bytes!("../testdata/dhcp/offer.bin");
        let mut d = Dissector::default();
        let out = run(
            &mut d,
            &[
                udp((A, 6000), (B, 6001), discover),
                udp((B, 6001), (A, 6000), offer),
                udp((A, 6000), (B, 67), b"not a DHCP message at all"),
            ],
        );
        let types: Vec<_> = out
            .iter()
            .filter(|e| e.field == Field::DhcpMessageType)
            .map(|e| (e.value.as_str(), e.direction))
            .collect();
        assert_eq!(
            types,
            [
                ("DISCOVER", Direction::FromClient),
                ("OFFER", Direction::FromServer)
            ]
        );
        assert_eq!(d.stats().app(Protocol::Dhcp).recognised, 2);
        assert_eq!(d.stats().app_errors(), 0);
        let summary = d.stats().apps_summary();
        assert!(summary.starts_with("dicom=0 hl7=0 dhcp=2"), "{summary}");
    }

    /// LLDP and CDP frames have no IP layer: the link-layer path decodes them, behind VLAN
    /// tags too, with the sender's MAC and no IP in the endpoints; an 802.3 frame's padding
    /// beyond its length is not read.
    #[test]
    fn lldp_and_cdp_take_the_link_layer_path() {
        let lldpdu = include_bytes!("../testdata/lldp/lldpd-med.bin");
        let cdp = include_bytes!("../testdata/cdp/lldpd-v2.bin");
        let src = [0x02, 0x57, 0x41, 0x52, 0x44, 0x1d];
        let eth = |dst: [u8; 6], tags: &[u16], ether_type: u16, payload: &[u8]| {
            let mut f = dst.to_vec();
            f.extend_from_slice(&src);
            for &vid in tags {
                f.extend_from_slice(&[0x81, 0x00]);
                f.extend_from_slice(&vid.to_be_bytes());
            }
            f.extend_from_slice(&ether_type.to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        let lldp_dst = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
        let cdp_dst = [0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc];
        let mut padded = cdp.to_vec();
        padded.extend_from_slice(&[0x00, 0x01, 0x00, 0x08, b'x', b'x', b'x', b'x']);
        let frames = [
            eth(lldp_dst, &[], 0x88cc, lldpdu),
            eth(lldp_dst, &[100], 0x88cc, lldpdu),
            eth(cdp_dst, &[], cdp.len() as u16, &padded),
            // Not LLDP's structure, and spanning tree's LLC: neither is claimed.
            eth(lldp_dst, &[], 0x88cc, b"\x04\x02\x03\x01"),
            eth(
                [0x01, 0x80, 0xc2, 0, 0, 0],
                &[],
                38,
                &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0],
            ),
        ];
        let mut d = Dissector::default();
        let out = run(&mut d, &frames);
        assert_eq!(d.stats().app(Protocol::Lldp).recognised, 2);
        assert_eq!(d.stats().app(Protocol::Cdp).recognised, 1);
        assert_eq!(d.stats().app_errors(), 0);
        let models: Vec<_> = out
            .iter()
            .filter(|e| e.field == Field::LldpMedModel)
            .map(|e| (e.value.as_str(), e.endpoints.vlans.clone()))
            .collect();
        assert_eq!(models, [("WT-7", vec![]), ("WT-7", vec![100])]);
        assert!(out.iter().all(|e| e.endpoints.src_mac == Some(MacAddr(src))
            && e.endpoints.src_ip.is_none()
            && e.direction == Direction::Unknown));
        let platforms: Vec<_> = out
            .iter()
            .filter(|e| e.field == Field::CdpPlatform)
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(platforms, ["WardTestTel WT-7"]);
        // The padding (a device ID TLV past the length) was not read.
        assert_eq!(
            out.iter().filter(|e| e.field == Field::CdpDeviceId).count(),
            1
        );
        // `tcpdump -i any` (Linux cooked v1) records the CDP frame with protocol 0x0004.
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&src);
        sll.extend_from_slice(&[0, 0, 0x00, 0x04]);
        sll.extend_from_slice(cdp);
        let f = frame::decode(LinkType::LinuxSll, &sll).unwrap();
        let mut out = Vec::new();
        d.process(9, &f, &mut out);
        assert!(out
            .iter()
            .any(|e| e.field == Field::CdpPlatform && e.endpoints.src_mac == Some(MacAddr(src))));
    }
}
