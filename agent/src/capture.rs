//! Live, receive-only capture from network interfaces (a SPAN/mirror port) through libpcap's
//! memory-mapped `TPACKET_V3` receive ring (crate `pcap`).
//!
//! # Why libpcap
//!
//! The kernel writes frames into a ring of blocks shared with the process (`PACKET_RX_RING`,
//! `TPACKET_V3`); a block is handed over when it is full or when the block timeout expires, so
//! a burst fills the ring instead of a small socket buffer, and reading costs no system call per
//! frame. libpcap (1.10, the `libpcap0.8` package) sets this ring up, re-inserts the 802.1Q /
//! 802.1ad tag the kernel moved into the ring's frame header (`tp_vlan_tci`, `tp_vlan_tpid`),
//! compiles tcpdump filter expressions to BPF and attaches them in the kernel, and keeps the
//! kernel's drop counter (`PACKET_STATISTICS`). Doing the same on a raw `AF_PACKET` socket
//! would need `unsafe` (mmap, ring headers) in a crate that forbids it; ARCHITECTURE.md has the
//! measurement behind the choice.
//!
//! # Receive-only invariant
//!
//! ward must never transmit on a monitored network. The only transmit call of the binding,
//! `pcap::Capture::sendpacket`, is disallowed by `clippy.toml` (the build runs clippy with
//! `-D warnings`), and a unit test keeps that entry in place. The live-capture integration test
//! proves it on the wire as well: the monitor interface's kernel `tx_packets` stays unchanged
//! while the agent captures.
//!
//! Note what an `ETH_P_ALL` packet socket sees: every frame received on the interface *and*
//! every frame this host transmits on it. A monitor interface should have no addresses and
//! IPv6 disabled (`net.ipv6.conf.<if>.disable_ipv6=1`) so the host itself stays silent there.
//!
//! # Threads, ring, timestamps
//!
//! Each ring gets one OS thread reading it ([`CaptureConfig::ring_bytes`], 64 MiB by default per
//! interface, shared among its workers' rings). A block is handed to the reader when full or after
//! [`CaptureConfig::block_timeout`] (100 ms by default), which is also how quickly
//! [`CaptureHandle::stop`] takes effect. Frames are handed to a callback or a bounded channel as
//! [`Packet`]s with link type Ethernet and the kernel's receive timestamp.
//!
//! [`CaptureConfig::snaplen`] (64 KiB by default) holds jumbo frames (9216 bytes) and the
//! up-to-64-KiB super-frames that GRO/LRO build on NICs with receive offloads on. A longer
//! frame is cut and counted in [`InterfaceStats::possibly_truncated`] (libpcap reports the
//! original length); the decoder handles truncated frames.
//!
//! [`CaptureConfig::filter`] is a tcpdump filter expression compiled by libpcap and run in the
//! kernel: excluded frames never reach the ring (nor the counters).
//!
//! [`CaptureConfig::workers`] rings per interface share its traffic: each ring's kernel filter
//! takes a symmetric hash share of the IP traffic ([`worker_filter`]), so both directions of a
//! flow reach one ring and one reader thread. `PACKET_FANOUT` would do the same without running
//! one filter per ring, but libpcap has no call for it and setting the socket option on its
//! descriptor needs `unsafe`, which the workspace forbids.
//!
//! If reading fails (the link went down, the interface was deleted and re-created...), the
//! thread closes the capture, waits while the interface is administratively down, and reopens it
//! by name with backoff (100 ms doubling to 5 s); [`InterfaceStats::errors`] and
//! [`InterfaceStats::reopens`] count this. Reopening needs `CAP_NET_RAW`, which is why
//! [`crate::privileges::drop_to`] keeps exactly that capability.
//!
//! # Use
//!
//! ```no_run
//! use ward_agent::capture::{Capture, CaptureConfig, Delivery};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // As root (or with CAP_NET_RAW): open every interface first, so errors surface early...
//! let capture = Capture::open(&CaptureConfig::for_interfaces(["eth1"]))?;
//! // ...then drop to the service user, before any other thread starts...
//! ward_agent::privileges::drop_to("ward")?;
//! // ...then start one reader thread per interface.
//! let handle = capture.start(|p| {
//!     // p.time_us, p.interface, p.link, p.data → ward_protocols::frame::decode(p.link, p.data)
//!     Delivery::Delivered
//! })?;
//! // Later: handle.stats() for counters; handle.stop() / handle.join() to finish.
//! let final_stats = handle.join();
//! # let _ = final_stats;
//! # Ok(())
//! # }
//! ```
//!
//! # Counters
//!
//! [`CaptureHandle::stats`] returns ward's own counters, the ring's drop counter
//! ([`InterfaceStats::ring_drops`]: frames the kernel discarded because the ring was full) and
//! what the interface says; see [`KernelStats`] and [`SocketStats`].
//!
//! # VLANs
//!
//! See [`VLAN_NOTE`]: live capture keeps 802.1Q and QinQ tags, as offline reading does.

mod kernel;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ward_protocols::frame::LinkType;

pub use kernel::{KernelStats, SocketStats};

/// What live capture does to 802.1Q / 802.1ad tags.
///
/// Verified on Linux 6.18 with a veth pair (the live-capture integration test asserts it).
pub const VLAN_NOTE: &str = "\
Live capture keeps VLAN tags. On receive, Linux moves the outermost 802.1Q or 802.1ad tag out \
of the frame into packet metadata (the NIC with rx-vlan-offload, or the core stack in software, \
with or without the 8021q module). The capture ring's frame header carries it (tp_vlan_tci, \
tp_vlan_tpid) and libpcap puts it back into the frame, so a single-tagged frame arrives with its \
tag and a QinQ frame with both tags, exactly as in a pcap file of the same traffic.";

/// Jumbo frame size that [`CaptureConfig::snaplen`] must at least hold by default.
pub const JUMBO_FRAME_BYTES: usize = 9216;

/// Smallest accepted snapshot length: a full-size untagged Ethernet frame.
pub const MIN_SNAPLEN: usize = 1518;

/// Default ring size per interface: about 0.5 s of a saturated 1 Gbit/s link.
pub const DEFAULT_RING_BYTES: usize = 64 << 20;

/// Smallest accepted ring: a few blocks of 64-KiB frames.
pub const MIN_RING_BYTES: usize = 1 << 20;

/// Largest accepted ring (libpcap takes an `int`; the ring is locked kernel memory).
pub const MAX_RING_BYTES: usize = 1 << 30;

/// Most workers per interface.
pub const MAX_WORKERS: usize = 64;

/// The kernel filter of worker `k` of `n` on an interface: the user's filter (if any) and a
/// share of the traffic. IPv4 and IPv6 frames go by the sum of their source and destination
/// addresses (the low 32 bits for IPv6) modulo `n`: a sum does not depend on the direction, so
/// both directions of a flow, and every fragment of a datagram, reach the same worker. Frames
/// without an IP header the kernel can see at the link's network offset (ARP, LLDP, QinQ frames
/// whose inner tag is still in the frame...) all go to worker 0, which keeps them in order.
///
/// This is how ward spreads one interface over cores without `PACKET_FANOUT`: libpcap has no
/// fanout call, and `setsockopt` on its descriptor needs `unsafe`, which the workspace forbids.
/// Each frame runs `n` small BPF programs in the kernel, and is copied into one ring only.
pub fn worker_filter(user: Option<&str>, n: usize, k: usize) -> Option<String> {
    let share = (n > 1).then(|| {
        let mut any = format!(
            "(ip and (ip[12:4] + ip[16:4]) % {n} = {k}) or (ip6 and (ip6[20:4] + ip6[36:4]) % {n} = {k})"
        );
        if k == 0 {
            any.push_str(" or (not ip and not ip6)");
        }
        any
    });
    match (user, share) {
        (None, None) => None,
        (Some(u), None) => Some(u.to_owned()),
        (None, Some(s)) => Some(s),
        (Some(u), Some(s)) => Some(format!("({u}) and ({s})")),
    }
}

/// Live capture settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Interfaces to capture on, by name (each at most once).
    pub interfaces: Vec<String>,
    /// Bytes kept per frame; longer frames are cut. Default 65 536: jumbo frames and
    /// GRO/LRO super-frames fit.
    pub snaplen: usize,
    /// Size of each interface's receive ring in bytes (default [`DEFAULT_RING_BYTES`]).
    pub ring_bytes: usize,
    /// Put the interfaces in promiscuous mode while capturing (default true; the kernel undoes
    /// it when the socket closes).
    pub promiscuous: bool,
    /// How long the kernel waits before handing over a block that is not full, and how long a
    /// read waits before the loop checks for shutdown (default 100 ms).
    pub block_timeout: Duration,
    /// tcpdump filter expression: only matching frames are captured (default: everything).
    pub filter: Option<String>,
    /// Rings (and reader threads) per interface, 1..=[`MAX_WORKERS`] (default 1). With more
    /// than one, the kernel splits the traffic by a symmetric hash of the IP addresses (see
    /// [`worker_filter`]): both directions of a flow reach the same worker. The ring size is
    /// shared among them.
    pub workers: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            snaplen: 65_536,
            ring_bytes: DEFAULT_RING_BYTES,
            promiscuous: true,
            block_timeout: Duration::from_millis(100),
            filter: None,
            workers: 1,
        }
    }
}

impl CaptureConfig {
    /// Default settings for these interfaces.
    pub fn for_interfaces<I, S>(interfaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CaptureConfig {
            interfaces: interfaces.into_iter().map(Into::into).collect(),
            ..CaptureConfig::default()
        }
    }

    fn validate(&self) -> Result<(), CaptureError> {
        if self.interfaces.is_empty() {
            return Err(CaptureError::Config(
                "no capture interface given (--interface IF)".into(),
            ));
        }
        let mut seen = HashSet::new();
        for name in &self.interfaces {
            if !seen.insert(name.as_str()) {
                return Err(CaptureError::Config(format!(
                    "interface {name} is listed twice"
                )));
            }
        }
        if self.snaplen < MIN_SNAPLEN || self.snaplen > 262_144 {
            return Err(CaptureError::Config(format!(
                "snapshot length of {} bytes is outside {MIN_SNAPLEN}..=262144 (default 65536)",
                self.snaplen
            )));
        }
        if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&self.ring_bytes) {
            return Err(CaptureError::Config(format!(
                "ring of {} bytes is outside {MIN_RING_BYTES}..={MAX_RING_BYTES} (default {DEFAULT_RING_BYTES})",
                self.ring_bytes
            )));
        }
        if self.block_timeout < Duration::from_millis(1)
            || self.block_timeout > Duration::from_secs(10)
        {
            return Err(CaptureError::Config(
                "block timeout must be between 1 ms (0 would never hand over a quiet block) and 10 s"
                    .into(),
            ));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(CaptureError::Config(format!(
                "workers must be between 1 and {MAX_WORKERS} (got {})",
                self.workers
            )));
        }
        if self.ring_bytes / self.workers < MIN_RING_BYTES {
            return Err(CaptureError::Config(format!(
                "a ring of {} bytes shared by {} workers leaves less than {MIN_RING_BYTES} bytes each",
                self.ring_bytes, self.workers
            )));
        }
        if let Some(f) = &self.filter {
            // Compiled against an Ethernet link without a device, so a bad expression fails
            // here, before any interface is opened.
            let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
                .map_err(|e| CaptureError::Config(format!("capture filter: {e}")))?;
            dead.compile(f, true).map_err(|e| CaptureError::Filter {
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Why live capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Bad settings.
    #[error("capture configuration: {0}")]
    Config(String),
    /// The `--filter` expression does not compile.
    #[error("capture filter (--filter) is not a valid tcpdump expression: {message}")]
    Filter {
        /// libpcap's message (it names the token, never packet data).
        message: String,
    },
    /// The interface does not exist in this network namespace.
    #[error(
        "capture interface {name} does not exist in this network namespace (available: {}); \
         check --interface",
        available.join(", ")
    )]
    NoSuchInterface {
        /// Requested name.
        name: String,
        /// What exists.
        available: Vec<String>,
    },
    /// The interface is not an Ethernet-framed interface.
    #[error(
        "capture interface {name} is not an Ethernet interface (ARPHRD type {arphrd}); \
         ward captures Ethernet SPAN/mirror ports"
    )]
    NotEthernet {
        /// Requested name.
        name: String,
        /// Its `ARPHRD_*` type.
        arphrd: u16,
    },
    /// Opening a raw packet socket was refused.
    #[error(
        "permission denied opening a raw packet socket on capture interface {name}: run \
         ward-agent as root (it drops to --user once the sockets are open) or grant it \
         CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW; or \
         `setcap cap_net_raw+ep /path/to/ward-agent`)"
    )]
    PermissionDenied {
        /// Requested name.
        name: String,
    },
    /// Opening the interface failed otherwise.
    #[error("opening capture interface {name}: {source}")]
    Open {
        /// Requested name.
        name: String,
        /// What libpcap or the kernel said.
        source: io::Error,
    },
    /// A capture thread could not be started.
    #[error("starting the capture thread for {name}: {source}")]
    Spawn {
        /// Interface name.
        name: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// One captured frame, borrowed from the capture ring.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Time the kernel received the frame, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Index of the interface in [`CaptureConfig::interfaces`] (and in
    /// [`CaptureHandle::stats`]).
    pub interface: usize,
    /// Link type of `data` (always Ethernet today).
    pub link: LinkType,
    /// The frame, from the destination MAC on (no FCS), VLAN tags in place.
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// Copies the frame out of the ring.
    pub fn to_owned_packet(&self) -> OwnedPacket {
        OwnedPacket {
            time_us: self.time_us,
            interface: self.interface,
            link: self.link,
            data: self.data.to_vec(),
        }
    }
}

/// One captured frame, owned (what [`Capture::start_channel`] delivers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPacket {
    /// See [`Packet::time_us`].
    pub time_us: i64,
    /// See [`Packet::interface`].
    pub interface: usize,
    /// See [`Packet::link`].
    pub link: LinkType,
    /// The frame.
    pub data: Vec<u8>,
}

/// What a packet callback did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Taken.
    Delivered,
    /// Not taken (e.g. the consumer's queue was full); counted in
    /// [`InterfaceStats::sink_dropped`].
    Dropped,
    /// The consumer is gone: the capture thread counts the frame as dropped and stops.
    Closed,
}

/// Per-interface counters, as of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Interface name.
    pub interface: String,
    /// Worker (ring) number on the interface, from 0; one entry per ring.
    #[serde(default)]
    pub worker: u32,
    /// Frames read from the ring.
    pub packets: u64,
    /// Bytes of those frames (as captured).
    pub bytes: u64,
    /// Frames longer than the snapshot length, cut to it.
    pub possibly_truncated: u64,
    /// Frames the callback did not take ([`Delivery::Dropped`] / [`Delivery::Closed`]), e.g.
    /// because the bounded channel to the decoders was full (queue full).
    pub sink_dropped: u64,
    /// Frames the kernel discarded because the ring was full (`PACKET_STATISTICS` `tp_drops`,
    /// summed over reopens): the reader did not keep up.
    #[serde(default)]
    pub ring_drops: u64,
    /// Read errors (each closes the capture; the thread then reopens the interface).
    pub errors: u64,
    /// Successful reopens after a read error.
    pub reopens: u64,
    /// Whether the capture thread is still running.
    pub running: bool,
    /// Interface counters now (`None` if unreadable, e.g. the interface is gone).
    pub kernel: Option<KernelStats>,
    /// Interface counters when the capture opened the interface; `kernel.since(baseline)` is
    /// what the interface saw while ward listened.
    pub kernel_at_open: Option<KernelStats>,
    /// This process's packet socket on the interface (`None` if `/proc` is unreadable).
    pub socket: Option<SocketStats>,
}

impl InterfaceStats {
    /// Frames lost on the way to the decoders: ring full (kernel) plus queue full (ward).
    pub fn lost(&self) -> u64 {
        self.ring_drops + self.sink_dropped
    }
}

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    truncated: AtomicU64,
    sink_dropped: AtomicU64,
    ring_drops: AtomicU64,
    errors: AtomicU64,
    reopens: AtomicU64,
    running: AtomicBool,
}

#[derive(Debug)]
struct IfaceShared {
    name: String,
    worker: usize,
    /// This ring's kernel filter (the user's and the worker's share).
    filter: Option<String>,
    kernel_at_open: Option<KernelStats>,
    counters: Counters,
}

struct Opened {
    shared: Arc<IfaceShared>,
    cap: pcap::Capture<pcap::Active>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("interface", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Opened capture rings, not yet read. Open (as root or with `CAP_NET_RAW`), then drop
/// privileges, then [`start`](Capture::start).
#[derive(Debug)]
pub struct Capture {
    cfg: CaptureConfig,
    opened: Vec<Opened>,
}

/// Interfaces of this network namespace (`/sys/class/net`), sorted.
fn interface_names() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether `name` can be an interface name (and so is safe to join to a `/sys` path).
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_whitespace)
}

fn open_error(name: &str, e: pcap::Error) -> CaptureError {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("operation not permitted") {
        CaptureError::PermissionDenied {
            name: name.to_owned(),
        }
    } else if lower.contains("no such device") {
        CaptureError::NoSuchInterface {
            name: name.to_owned(),
            available: interface_names(),
        }
    } else {
        CaptureError::Open {
            name: name.to_owned(),
            source: io::Error::other(msg),
        }
    }
}

/// Opens one interface for receiving: a `TPACKET_V3` ring of `cfg.ring_bytes`, the filter
/// attached. The binding's transmit call is disallowed by clippy.toml.
fn open_receiver(
    name: &str,
    cfg: &CaptureConfig,
    filter: Option<&str>,
) -> Result<pcap::Capture<pcap::Active>, CaptureError> {
    if !valid_interface_name(name) || !Path::new("/sys/class/net").join(name).exists() {
        return Err(CaptureError::NoSuchInterface {
            name: name.to_owned(),
            available: interface_names(),
        });
    }
    match kernel::arphrd(name) {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK (Ethernet framing with zero MACs).
        Some(1 | 772) | None => {}
        Some(arphrd) => {
            return Err(CaptureError::NotEthernet {
                name: name.to_owned(),
                arphrd,
            })
        }
    }
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // Validated: both fit an i32.
    let ring = i32::try_from(cfg.ring_bytes / cfg.workers.max(1)).unwrap_or(i32::MAX);
    let snaplen = i32::try_from(cfg.snaplen).unwrap_or(65_536);
    // No immediate mode: libpcap would fall back to TPACKET_V2 (one frame per slot, handed over
    // at once); TPACKET_V3 needs the block timeout instead.
    let mut cap = pcap::Capture::from_device(name)
        .map_err(|e| open_error(name, e))?
        .promisc(cfg.promiscuous)
        .snaplen(snaplen)
        .buffer_size(ring)
        .timeout(ms(cfg.block_timeout).max(1))
        .open()
        .map_err(|e| open_error(name, e))?;
    if cap.get_datalink() != pcap::Linktype::ETHERNET {
        return Err(CaptureError::NotEthernet {
            name: name.to_owned(),
            arphrd: kernel::arphrd(name).unwrap_or(0),
        });
    }
    if let Some(f) = filter {
        cap.filter(f, true).map_err(|e| CaptureError::Filter {
            message: e.to_string(),
        })?;
    }
    // Non-blocking: the reader waits on the descriptor itself (see `Reader::wait_for_block`).
    cap.setnonblock().map_err(|e| open_error(name, e))
}

impl Capture {
    /// Opens every configured interface (a receive ring, promiscuous if configured, the
    /// filter attached). Fails on the first interface that cannot be opened, naming it.
    pub fn open(cfg: &CaptureConfig) -> Result<Capture, CaptureError> {
        cfg.validate()?;
        let mut opened = Vec::with_capacity(cfg.interfaces.len());
        for name in &cfg.interfaces {
            for worker in 0..cfg.workers {
                let filter = worker_filter(cfg.filter.as_deref(), cfg.workers, worker);
                let cap = open_receiver(name, cfg, filter.as_deref())?;
                let kernel_at_open = KernelStats::read(name).ok();
                if let Ok(flags) =
                    std::fs::read_to_string(format!("/sys/class/net/{name}/operstate"))
                {
                    if flags.trim() == "down" {
                        tracing::warn!(interface = %name, "capture interface is down; capture starts when it comes up");
                    }
                }
                tracing::info!(
                    interface = %name,
                    worker,
                    workers = cfg.workers,
                    ring_bytes = cfg.ring_bytes / cfg.workers,
                    snaplen = cfg.snaplen,
                    block_timeout_ms = cfg.block_timeout.as_millis() as u64,
                    filter = cfg.filter.as_deref().unwrap_or("-"),
                    promiscuous = cfg.promiscuous,
                    "capture interface opened (receive-only TPACKET_V3 ring)"
                );
                opened.push(Opened {
                    shared: Arc::new(IfaceShared {
                        name: name.clone(),
                        worker,
                        filter,
                        kernel_at_open,
                        counters: Counters::default(),
                    }),
                    cap,
                });
            }
        }
        Ok(Capture {
            cfg: cfg.clone(),
            opened,
        })
    }

    /// The interface names, in [`Packet::interface`] order.
    pub fn interfaces(&self) -> Vec<&str> {
        self.cfg.interfaces.iter().map(String::as_str).collect()
    }

    /// Starts one reader thread per ring (interface and worker); each calls `on_packet` for
    /// every frame, on that thread (so the callback must be quick, or hand off).
    pub fn start<F>(self, on_packet: F) -> Result<CaptureHandle, CaptureError>
    where
        F: Fn(Packet<'_>) -> Delivery + Send + Sync + 'static,
    {
        let sink = Arc::new(on_packet);
        self.start_with(move |_, _| {
            let sink = Arc::clone(&sink);
            move |p: Packet<'_>| sink(p)
        })
    }

    /// Starts one reader thread per ring; `make(interface, worker)` builds that ring's own
    /// packet callback (e.g. a worker with its own flow table and decoders), which runs on the
    /// ring's thread.
    pub fn start_with<M, F>(self, make: M) -> Result<CaptureHandle, CaptureError>
    where
        M: Fn(usize, usize) -> F,
        F: FnMut(Packet<'_>) -> Delivery + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handle = CaptureHandle {
            stop: Arc::clone(&stop),
            ifaces: self.opened.iter().map(|o| Arc::clone(&o.shared)).collect(),
            threads: Vec::new(),
        };
        for opened in self.opened {
            let name = opened.shared.name.clone();
            let worker = opened.shared.worker;
            let index = self
                .cfg
                .interfaces
                .iter()
                .position(|i| *i == name)
                .unwrap_or(0);
            let reader = Reader {
                index,
                shared: opened.shared,
                cfg: self.cfg.clone(),
                stop: Arc::clone(&stop),
                sink: make(index, worker),
            };
            reader.shared.counters.running.store(true, Ordering::SeqCst);
            let shared = Arc::clone(&reader.shared);
            let cap = opened.cap;
            match thread::Builder::new()
                .name(format!("ward-cap-{name}"))
                .spawn(move || reader.run(cap))
            {
                Ok(t) => handle.threads.push(t),
                Err(source) => {
                    shared.counters.running.store(false, Ordering::SeqCst);
                    // Dropping `handle` stops and joins the threads already started.
                    return Err(CaptureError::Spawn { name, source });
                }
            }
        }
        Ok(handle)
    }

    /// Like [`start`](Capture::start), delivering owned frames to a bounded channel of
    /// `capacity` frames. When the channel is full the frame is dropped and counted in
    /// [`InterfaceStats::sink_dropped`] (the reader never blocks on the consumer: the ring is
    /// the buffer); when the receiver is dropped the reader threads stop.
    pub fn start_channel(
        self,
        capacity: usize,
    ) -> Result<(CaptureHandle, Receiver<OwnedPacket>), CaptureError> {
        let (tx, rx): (SyncSender<OwnedPacket>, _) = mpsc::sync_channel(capacity.max(1));
        let handle = self.start(move |p| match tx.try_send(p.to_owned_packet()) {
            Ok(()) => Delivery::Delivered,
            Err(TrySendError::Full(_)) => Delivery::Dropped,
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        })?;
        Ok((handle, rx))
    }
}

struct Reader<F> {
    index: usize,
    shared: Arc<IfaceShared>,
    cfg: CaptureConfig,
    stop: Arc<AtomicBool>,
    sink: F,
}

const REOPEN_MIN: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(5);
/// Microseconds since the epoch from a `timeval`'s parts (`time_t`/`suseconds_t` vary in width
/// across targets; `try_from` takes every one without a lossy cast).
fn time_us<S, U>(sec: S, usec: U) -> i64
where
    i64: TryFrom<S> + TryFrom<U>,
{
    let sec = i64::try_from(sec).unwrap_or(0);
    let usec = i64::try_from(usec).unwrap_or(0);
    sec.saturating_mul(1_000_000).saturating_add(usec)
}

/// How often the reader reads the ring's drop counter.
const DROPS_EVERY: Duration = Duration::from_millis(500);
/// Frames handed over per `pcap_dispatch` call (at most one ring block is walked per call).
const DISPATCH_BATCH: usize = 4096;

/// The ring's cumulative drop counter as of the last read, for one open capture. libpcap keeps
/// a 32-bit running sum; differences are taken modulo 2^32 so a wrap is not a loss.
#[derive(Debug, Default)]
struct DropCursor {
    last: u32,
}

impl DropCursor {
    fn advance(&mut self, now: u32) -> u64 {
        let d = now.wrapping_sub(self.last);
        self.last = now;
        u64::from(d)
    }
}

impl<F> Reader<F>
where
    F: FnMut(Packet<'_>) -> Delivery + Send + 'static,
{
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `d`, waking early on stop.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Hands up to [`DISPATCH_BATCH`] frames from the ring to the sink (0 when none is ready).
    /// Sets `closed` when the consumer is gone.
    fn dispatch(
        &mut self,
        reader: &mut pcap::Capture<pcap::Active>,
        closed: &mut bool,
    ) -> Result<usize, pcap::Error> {
        let c = &self.shared.counters;
        let index = self.index;
        let sink = &mut self.sink;
        reader.dispatch(Some(DISPATCH_BATCH), |p| {
            if *closed {
                // The consumer is gone: the rest of this batch is dropped, counted.
                c.sink_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let data = p.data;
            let ts = p.header.ts;
            let time_us = time_us(ts.tv_sec, ts.tv_usec);
            c.packets.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            if p.header.len as usize > data.len() {
                c.truncated.fetch_add(1, Ordering::Relaxed);
            }
            match sink(Packet {
                time_us,
                interface: index,
                link: LinkType::Ethernet,
                data,
            }) {
                Delivery::Delivered => {}
                Delivery::Dropped => {
                    c.sink_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::Closed => {
                    c.sink_dropped.fetch_add(1, Ordering::Relaxed);
                    *closed = true;
                }
            }
        })
    }

    /// Waits up to one block timeout for the kernel to hand over a block. The capture is
    /// non-blocking and waited on here rather than inside libpcap: libpcap's `TPACKET_V3` wait
    /// has no timeout (an idle link would keep a stop waiting forever) and it carries on
    /// silently when the link goes down. An error condition on the socket, or an idle ring on
    /// an interface that is not up (down, or deleted: a new one with the same name would never
    /// be bound), is reported as an error so the reader reopens the interface by name.
    fn wait_for_block(&self, cap: &pcap::Capture<pcap::Active>) -> Result<usize, pcap::Error> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let timeout = PollTimeout::try_from(self.cfg.block_timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if kernel::is_up(&self.shared.name) == Some(true) {
                    Ok(0)
                } else {
                    Err(pcap::Error::PcapError(
                        "the interface is down or gone".into(),
                    ))
                }
            }
            Ok(_) => {
                let bad = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
                if fds[0].revents().is_some_and(|r| r.intersects(bad)) {
                    Err(pcap::Error::PcapError(
                        "socket error (the interface went down or away)".into(),
                    ))
                } else {
                    Ok(0)
                }
            }
            Err(nix::errno::Errno::EINTR) => Ok(0),
            Err(e) => Err(pcap::Error::PcapError(format!("waiting for frames: {e}"))),
        }
    }

    /// Adds the drops the kernel counted on `cap` since the last call.
    fn account_drops(&self, cap: &mut pcap::Capture<pcap::Active>, cursor: &mut DropCursor) {
        if let Ok(s) = cap.stats() {
            let d = cursor.advance(s.dropped);
            if d > 0 {
                self.shared
                    .counters
                    .ring_drops
                    .fetch_add(d, Ordering::Relaxed);
            }
        }
    }

    fn run(mut self, cap: pcap::Capture<pcap::Active>) {
        let shared = Arc::clone(&self.shared);
        let c = &shared.counters;
        let name = shared.name.as_str();
        let mut cap = Some(cap);
        let mut cursor = DropCursor::default();
        let mut last_drops = Instant::now();
        // Reopen delay; grows while reopened captures keep failing, resets once a read works.
        let mut backoff = REOPEN_MIN;
        // Whether the current failure streak has been logged already (log once per streak).
        let mut failing = false;
        let mut last_open_error = String::new();
        let mut closed = false;
        while !self.stopped() && !closed {
            let Some(reader) = cap.as_mut() else {
                if kernel::is_up(name) == Some(false) {
                    // Administratively down: a socket bound now fails at once. Wait for "up".
                    self.pause(backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
                    continue;
                }
                match open_receiver(name, &self.cfg, self.shared.filter.as_deref()) {
                    Ok(r) => {
                        cap = Some(r);
                        cursor = DropCursor::default();
                        c.reopens.fetch_add(1, Ordering::Relaxed);
                        last_open_error.clear();
                        tracing::info!(interface = %name, "capture interface reopened");
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_open_error {
                            tracing::error!(interface = %name, error = %msg, "cannot reopen capture interface; retrying");
                            last_open_error = msg;
                        }
                        self.pause(backoff);
                        backoff = (backoff * 2).min(REOPEN_MAX);
                    }
                }
                continue;
            };
            let result = self.dispatch(reader, &mut closed);
            let result = match result {
                Ok(0) => self.wait_for_block(reader),
                other => other,
            };
            match result {
                Ok(_) | Err(pcap::Error::TimeoutExpired) => {
                    failing = false;
                    backoff = REOPEN_MIN;
                }
                Err(e) => {
                    // A socket error (ENETDOWN after the link was set down, the interface being
                    // deleted...) leaves the capture unusable: the only way out is a fresh one.
                    // The kernel still retires the last partly filled block after one block
                    // timeout: read it first, so the frames just before the failure are kept.
                    thread::sleep(self.cfg.block_timeout + Duration::from_millis(20));
                    while !closed && matches!(self.dispatch(reader, &mut closed), Ok(n) if n > 0) {}
                    self.account_drops(reader, &mut cursor);
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(interface = %name, error = %e, "capture read failed (link down or interface gone?); reopening the interface");
                        failing = true;
                    }
                    cap = None;
                    self.pause(backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
                    continue;
                }
            }
            if last_drops.elapsed() >= DROPS_EVERY {
                self.account_drops(reader, &mut cursor);
                last_drops = Instant::now();
            }
        }
        if closed {
            tracing::info!(interface = %name, "packet consumer closed; capture thread stopping");
        }
        if let Some(reader) = cap.as_mut() {
            if !closed {
                // Frames in the last, partly filled block are handed over once it is retired.
                thread::sleep(self.cfg.block_timeout + Duration::from_millis(20));
                while !closed && matches!(self.dispatch(reader, &mut closed), Ok(n) if n > 0) {}
            }
            self.account_drops(reader, &mut cursor);
        }
        c.running.store(false, Ordering::SeqCst);
    }
}

/// Running capture: stop it, read its counters.
#[derive(Debug)]
pub struct CaptureHandle {
    stop: Arc<AtomicBool>,
    ifaces: Vec<Arc<IfaceShared>>,
    threads: Vec<JoinHandle<()>>,
}

impl CaptureHandle {
    /// Asks every reader thread to stop; each exits within one block timeout. Does not wait
    /// (see [`join`](CaptureHandle::join)).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The interface names, in [`Packet::interface`] order (once each, whatever the workers).
    pub fn interfaces(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for i in &self.ifaces {
            if !out.contains(&i.name.as_str()) {
                out.push(i.name.as_str());
            }
        }
        out
    }

    /// Whether any reader thread is still running.
    pub fn is_running(&self) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.counters.running.load(Ordering::SeqCst))
    }

    /// Counters per ring (interface, then worker), in [`Packet::interface`] order. Reads sysfs and `/proc` and runs
    /// `ss` once (a few milliseconds): call it every few seconds, not per packet.
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.collect_stats(true)
    }

    /// Like [`stats`](CaptureHandle::stats) without running `ss` (no socket `drops` and
    /// `rcvbuf_bytes`).
    pub fn stats_without_ss(&self) -> Vec<InterfaceStats> {
        self.collect_stats(false)
    }

    /// One entry per ring; interface and socket counters are the interface's (the same for each
    /// of its rings).
    fn collect_stats(&self, with_ss: bool) -> Vec<InterfaceStats> {
        let names: Vec<&str> = self.ifaces.iter().map(|i| i.name.as_str()).collect();
        let sockets = kernel::socket_stats(&names, with_ss);
        self.ifaces
            .iter()
            .zip(sockets)
            .map(|(i, socket)| {
                let c = &i.counters;
                InterfaceStats {
                    interface: i.name.clone(),
                    worker: u32::try_from(i.worker).unwrap_or(u32::MAX),
                    packets: c.packets.load(Ordering::Relaxed),
                    bytes: c.bytes.load(Ordering::Relaxed),
                    possibly_truncated: c.truncated.load(Ordering::Relaxed),
                    sink_dropped: c.sink_dropped.load(Ordering::Relaxed),
                    ring_drops: c.ring_drops.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    reopens: c.reopens.load(Ordering::Relaxed),
                    running: c.running.load(Ordering::SeqCst),
                    kernel: KernelStats::read(&i.name).ok(),
                    kernel_at_open: i.kernel_at_open,
                    socket,
                }
            })
            .collect()
    }

    /// Stops, waits for every reader thread, and returns the final counters (socket stats
    /// then show 0 sockets: they are closed).
    pub fn join(mut self) -> Vec<InterfaceStats> {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a capture thread panicked");
            }
        }
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let ok = CaptureConfig::for_interfaces(["lo"]);
        assert!(ok.validate().is_ok());
        assert!(ok.snaplen >= JUMBO_FRAME_BYTES);
        assert_eq!(ok.ring_bytes, 64 << 20);
        assert!(ok.promiscuous);
        let none = CaptureConfig::default();
        assert!(matches!(none.validate(), Err(CaptureError::Config(_))));
        let twice = CaptureConfig::for_interfaces(["lo", "lo"]);
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let small = CaptureConfig {
            snaplen: 100,
            ..ok.clone()
        };
        assert!(small.validate().is_err());
        let spin = CaptureConfig {
            block_timeout: Duration::ZERO,
            ..ok.clone()
        };
        assert!(spin.validate().is_err());
        for ring_bytes in [4096, 2 << 30] {
            let ring = CaptureConfig {
                ring_bytes,
                ..ok.clone()
            };
            assert!(ring.validate().unwrap_err().to_string().contains("ring"));
        }
        for workers in [0, MAX_WORKERS + 1] {
            let w = CaptureConfig {
                workers,
                ..ok.clone()
            };
            assert!(w.validate().unwrap_err().to_string().contains("workers"));
        }
        let thin = CaptureConfig {
            workers: 8,
            ring_bytes: 4 << 20,
            ..ok.clone()
        };
        assert!(
            thin.validate().is_err(),
            "4 MiB over 8 workers is under 1 MiB each"
        );
        let filtered = CaptureConfig {
            filter: Some("not (tcp port 445 or udp port 2049)".into()),
            ..ok.clone()
        };
        assert!(filtered.validate().is_ok());
    }

    #[test]
    fn a_bad_filter_is_refused_before_any_interface_opens() {
        let cfg = CaptureConfig {
            filter: Some("tcp port 104 and and".into()),
            ..CaptureConfig::for_interfaces(["ward-nosuch0"])
        };
        let err = Capture::open(&cfg).unwrap_err();
        assert!(matches!(err, CaptureError::Filter { .. }), "{err}");
        assert!(err.to_string().contains("--filter"), "{err}");
    }

    /// An Ethernet + IPv4 + TCP frame from `src:sport` to `dst:dport`.
    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    /// Which workers' kernel filters accept `frame` (run with libpcap's BPF interpreter).
    fn accepting(user: Option<&str>, n: usize, frame: &[u8]) -> Vec<usize> {
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("dead capture");
        (0..n)
            .filter(|&k| match worker_filter(user, n, k) {
                None => true,
                Some(f) => dead.compile(&f, true).expect("compiles").filter(frame),
            })
            .collect()
    }

    #[test]
    fn worker_filters_keep_both_directions_of_a_flow_on_one_worker() {
        assert_eq!(worker_filter(None, 1, 0), None);
        assert_eq!(worker_filter(Some("tcp"), 1, 0).as_deref(), Some("tcp"));
        let mut used = HashSet::new();
        for n in [2, 3, 8] {
            for i in 0..40u8 {
                let (a, b) = ([10, 0, i, 7], [192, 168, 1, i.wrapping_mul(37)]);
                let there = accepting(None, n, &tcp4(a, b, 40_000 + u16::from(i), 104));
                let back = accepting(None, n, &tcp4(b, a, 104, 40_000 + u16::from(i)));
                assert_eq!(there.len(), 1, "exactly one of {n} workers: {there:?}");
                assert_eq!(there, back, "both directions on one worker");
                used.insert((n, there[0]));
            }
        }
        // The split spreads flows: every worker of 2 got some.
        assert!(used.contains(&(2, 0)) && used.contains(&(2, 1)), "{used:?}");
        // Non-IP (ARP) goes to worker 0 only; the user's filter still applies.
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(accepting(None, 4, &arp), vec![0]);
        let f = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 445, 50_000);
        assert!(accepting(Some("not tcp port 445"), 2, &f).is_empty());
        assert_eq!(accepting(Some("tcp port 445"), 2, &f).len(), 1);
    }

    #[test]
    fn drop_cursor_survives_the_32_bit_wrap() {
        let mut c = DropCursor::default();
        assert_eq!(c.advance(10), 10);
        assert_eq!(c.advance(10), 0);
        c.last = u32::MAX - 1;
        assert_eq!(c.advance(3), 5);
    }

    #[test]
    fn missing_interface_is_named_with_advice() {
        for name in ["ward-nosuch0", "../../etc", "a/b"] {
            let err = Capture::open(&CaptureConfig::for_interfaces([name])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains("does not exist"), "{msg}");
            assert!(msg.contains("lo"), "lists what exists: {msg}");
        }
    }

    #[test]
    fn permission_error_names_interface_and_remedy() {
        let msg = CaptureError::PermissionDenied {
            name: "eth9".into(),
        }
        .to_string();
        assert!(msg.contains("eth9"));
        assert!(msg.contains("root"));
        assert!(msg.contains("CAP_NET_RAW"));
    }

    /// With CAP_NET_RAW: `lo` opens, captures, and stops within the block timeout. Without it:
    /// the error names the interface and the remedy.
    #[test]
    fn loopback_opens_and_stops_or_permission_is_explained() {
        let cfg = CaptureConfig {
            block_timeout: Duration::from_millis(100),
            ring_bytes: MIN_RING_BYTES,
            ..CaptureConfig::for_interfaces(["lo"])
        };
        let privileged =
            caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_NET_RAW)
                .unwrap_or(false);
        let opened = Capture::open(&cfg);
        if !privileged {
            let err = opened.expect_err("no CAP_NET_RAW");
            assert!(
                matches!(err, CaptureError::PermissionDenied { .. }),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains("lo") && msg.contains("CAP_NET_RAW"), "{msg}");
            return;
        }
        let capture = opened.expect("root opens lo");
        assert_eq!(capture.interfaces(), vec!["lo"]);
        let (handle, _rx) = capture.start_channel(16).expect("start");
        assert!(handle.is_running());
        let stats = handle.stats_without_ss();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].socket.map(|s| s.sockets), Some(1), "{stats:?}");
        assert!(stats[0].kernel_at_open.is_some());
        let t = Instant::now();
        handle.stop();
        let fin = handle.join();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!fin[0].running);
        assert_eq!(fin[0].socket.map(|s| s.sockets), Some(0), "closed: {fin:?}");
    }

    /// The receive-only invariant is enforced by clippy (`clippy.toml` disallows the capture
    /// binding's transmit call); this guards the configuration itself against a silent removal.
    #[test]
    fn clippy_disallows_every_capture_transmit_path() {
        let cfg =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../clippy.toml"))
                .expect("clippy.toml at the workspace root");
        let path = "pcap::Capture::sendpacket";
        assert!(cfg.contains(&format!("path = \"{path}\"")), "{path}");
    }
}
