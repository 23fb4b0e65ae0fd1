//! Live, receive-only capture from network interfaces (a SPAN/mirror port) through
//! `pnet_datalink`'s Linux `AF_PACKET` backend.
//!
//! # Receive-only invariant
//!
//! ward must never transmit on a monitored network. `pnet_datalink::channel` always returns a
//! sender together with the receiver; [`Capture::open`] drops that `DataLinkSender` on the
//! spot (asking pnet for a zero-byte write buffer) and no other code in the agent ever obtains
//! one. Nothing in `ward-agent` calls the sender methods; a unit test of this module scans the
//! crate's sources (`src/`, `tests/`) and fails if either of pnet's transmit methods is ever
//! called. The live-capture integration test proves it on the wire as well: the monitor
//! interface's kernel `tx_packets` stays unchanged while the agent captures.
//!
//! Note what an `ETH_P_ALL` packet socket sees: every frame received on the interface *and*
//! every frame this host transmits on it. A monitor interface should have no addresses and
//! IPv6 disabled (`net.ipv6.conf.<if>.disable_ipv6=1`) so the host itself stays silent there.
//!
//! # Threads, buffers, timestamps
//!
//! Each interface gets one OS thread doing blocking reads (poll with
//! [`CaptureConfig::read_timeout`], so [`CaptureHandle::stop`] takes effect within one timeout).
//! Frames are handed to a callback or a bounded channel as [`Packet`]s with link type
//! Ethernet. `time_us` is the wall-clock time at which ward read the frame (pnet exposes no
//! kernel timestamp), so it lags the wire by the socket backlog.
//!
//! The per-read buffer ([`CaptureConfig::read_buffer_bytes`], 64 KiB by default) holds jumbo
//! frames (9216 bytes) and the up-to-64-KiB super-frames that GRO/LRO build on NICs with
//! receive offloads on. A frame that fills the whole buffer may have been cut (pnet does not
//! report `MSG_TRUNC`) and is counted in [`InterfaceStats::possibly_truncated`]; the decoder
//! handles truncated frames. pnet does not set `SO_RCVBUF`, so the socket's receive buffer is
//! `net.core.rmem_default`; raise that sysctl (e.g. to 8 MiB) on busy SPAN ports before ward
//! starts. [`InterfaceStats::socket`] shows the actual buffer size and socket drops.
//!
//! `PACKET_FANOUT` is not used: one socket per interface, one reader thread. (Fanout would let
//! several threads share one interface's load; pnet supports it in `linux::Config`.)
//!
//! If reading fails (the link went down, the interface was deleted and re-created...), the
//! thread closes the socket, waits while the interface is administratively down, and reopens it
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
//! [`CaptureHandle::stats`] returns ward's own counters and what the kernel says; see
//! [`KernelStats`] and [`SocketStats`] for exactly what each kernel number means and what is
//! not available without the socket's descriptor.
//!
//! # VLANs
//!
//! See [`VLAN_NOTE`]: live capture loses the outermost VLAN tag. Offline reading of a libpcap
//! capture keeps it.

mod kernel;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pnet_datalink::{Channel, ChannelType, DataLinkReceiver};
use serde::{Deserialize, Serialize};
use ward_protocols::frame::LinkType;

pub use kernel::{KernelStats, SocketStats};

/// What live capture does to 802.1Q / 802.1ad tags, and what to do about it.
///
/// Verified on Linux 6.18 with a veth pair: frames sent with tags in the frame bytes were read
/// by a plain `AF_PACKET` `recvfrom` (which is all pnet does) as follows, with
/// `rx-vlan-offload` both on and off on the receiving veth, while `tcpdump` on the same
/// interface showed every tag. The live-capture integration test asserts this behaviour.
pub const VLAN_NOTE: &str = "\
Live capture loses the outermost VLAN tag. On receive, Linux moves the outermost 802.1Q or \
802.1ad tag out of the frame into packet metadata: the NIC does it when rx-vlan-offload is on, \
and the core network stack does it in software (skb_vlan_untag in __netif_receive_skb_core) \
when it is off or the NIC cannot (on current kernels, with or without the 8021q module). A packet \
socket gets the tag back only from PACKET_AUXDATA control messages (or the TPACKET ring \
header), which pnet_datalink does not read. So a single-tagged frame arrives untagged (its VLAN \
id is lost), and a QinQ frame arrives with only its inner tag (the outer S-tag id is lost). \
`ethtool -K IF rxvlan off` does NOT help: the software path strips the tag anyway. \
Workarounds: (1) if VLAN ids matter, capture with libpcap, which re-inserts the tag from \
PACKET_AUXDATA, and feed ward offline, e.g. `tcpdump -i IF -s 0 -U -w - | ward-agent read -`; \
pcap/pcapng files keep their tags; (2) have the switch send one SPAN session per VLAN to \
separate ports and map interface to VLAN in configuration; (3) a future capture backend that \
reads PACKET_AUXDATA control messages (tp_vlan_tci, tp_vlan_tpid) or a TPACKET ring could put \
the tag back (nix 0.29 does not expose unknown control messages' bytes, so this needs another \
crate or a newer nix).";

/// Jumbo frame size that [`CaptureConfig::read_buffer_bytes`] must at least hold by default.
pub const JUMBO_FRAME_BYTES: usize = 9216;

/// Smallest accepted read buffer: a full-size untagged Ethernet frame.
pub const MIN_READ_BUFFER_BYTES: usize = 1518;

/// Live capture settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Interfaces to capture on, by name (each at most once).
    pub interfaces: Vec<String>,
    /// Bytes read per frame; larger frames are cut. Default 65 536: jumbo frames and
    /// GRO/LRO super-frames fit.
    pub read_buffer_bytes: usize,
    /// Put the interfaces in promiscuous mode while capturing (default true; the kernel undoes
    /// it when the socket closes).
    pub promiscuous: bool,
    /// How long one read waits for a frame before the loop checks for shutdown (default
    /// 250 ms). [`CaptureHandle::stop`] takes effect within this time.
    pub read_timeout: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            read_buffer_bytes: 65_536,
            promiscuous: true,
            read_timeout: Duration::from_millis(250),
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
        if self.read_buffer_bytes < MIN_READ_BUFFER_BYTES {
            return Err(CaptureError::Config(format!(
                "read buffer of {} bytes cannot hold an Ethernet frame (minimum {MIN_READ_BUFFER_BYTES}, \
                 default 65536)",
                self.read_buffer_bytes
            )));
        }
        if self.read_timeout < Duration::from_millis(1) {
            return Err(CaptureError::Config(
                "read timeout must be at least 1 ms (0 would spin)".into(),
            ));
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
        /// What the kernel said.
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

/// One captured frame, borrowed from the capture thread's read buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Time ward read the frame, microseconds since the Unix epoch (wall clock).
    pub time_us: i64,
    /// Index of the interface in [`CaptureConfig::interfaces`] (and in
    /// [`CaptureHandle::stats`]).
    pub interface: usize,
    /// Link type of `data` (always Ethernet today).
    pub link: LinkType,
    /// The frame, from the destination MAC on (no FCS); see [`VLAN_NOTE`] about tags.
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// Copies the frame out of the read buffer.
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
    /// Frames read from the socket.
    pub packets: u64,
    /// Bytes of those frames (as read).
    pub bytes: u64,
    /// Frames that filled the whole read buffer and so may have been cut.
    pub possibly_truncated: u64,
    /// Frames the callback did not take ([`Delivery::Dropped`] / [`Delivery::Closed`]), e.g.
    /// because the bounded channel was full.
    pub sink_dropped: u64,
    /// Read errors (each closes the socket; the thread then reopens the interface).
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

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    truncated: AtomicU64,
    sink_dropped: AtomicU64,
    errors: AtomicU64,
    reopens: AtomicU64,
    running: AtomicBool,
}

#[derive(Debug)]
struct IfaceShared {
    name: String,
    kernel_at_open: Option<KernelStats>,
    counters: Counters,
}

struct Opened {
    shared: Arc<IfaceShared>,
    rx: Box<dyn DataLinkReceiver>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("interface", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Opened capture sockets, not yet read. Open (as root or with `CAP_NET_RAW`), then drop
/// privileges, then [`start`](Capture::start).
#[derive(Debug)]
pub struct Capture {
    cfg: CaptureConfig,
    opened: Vec<Opened>,
}

fn pnet_config(cfg: &CaptureConfig) -> pnet_datalink::Config {
    pnet_datalink::Config {
        // Receive-only: the sender pnet builds anyway is dropped unused; give it no buffer.
        write_buffer_size: 0,
        read_buffer_size: cfg.read_buffer_bytes,
        read_timeout: Some(cfg.read_timeout),
        write_timeout: None,
        channel_type: ChannelType::Layer2,
        linux_fanout: None,
        promiscuous: cfg.promiscuous,
        ..pnet_datalink::Config::default()
    }
}

/// Opens one interface for receiving. The only place the agent calls `pnet_datalink::channel`;
/// the sender half is dropped before this function returns.
fn open_receiver(
    name: &str,
    cfg: &CaptureConfig,
) -> Result<Box<dyn DataLinkReceiver>, CaptureError> {
    let all = pnet_datalink::interfaces();
    let Some(iface) = all.iter().find(|i| i.name == name) else {
        let mut available: Vec<String> = all.iter().map(|i| i.name.clone()).collect();
        available.sort();
        available.dedup();
        return Err(CaptureError::NoSuchInterface {
            name: name.to_owned(),
            available,
        });
    };
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
    // The one datalink channel of the agent (clippy.toml disallows the call everywhere else).
    #[allow(clippy::disallowed_methods)]
    let channel = pnet_datalink::channel(iface, pnet_config(cfg));
    match channel {
        Ok(Channel::Ethernet(sender, receiver)) => {
            // RECEIVE-ONLY INVARIANT: the sender is dropped here, unused. The socket stays open
            // through the receiver only.
            drop(sender);
            Ok(receiver)
        }
        Ok(_) => Err(CaptureError::Open {
            name: name.to_owned(),
            source: io::Error::other("pnet returned a non-Ethernet channel"),
        }),
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                || matches!(e.raw_os_error(), Some(1 | 13)) =>
        {
            Err(CaptureError::PermissionDenied {
                name: name.to_owned(),
            })
        }
        Err(e) if e.raw_os_error() == Some(19) => Err(CaptureError::NoSuchInterface {
            name: name.to_owned(),
            available: Vec::new(),
        }),
        Err(source) => Err(CaptureError::Open {
            name: name.to_owned(),
            source,
        }),
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Capture {
    /// Opens every configured interface (raw `AF_PACKET` socket, promiscuous if configured).
    /// Fails on the first interface that cannot be opened, naming it.
    pub fn open(cfg: &CaptureConfig) -> Result<Capture, CaptureError> {
        cfg.validate()?;
        let mut opened = Vec::with_capacity(cfg.interfaces.len());
        for name in &cfg.interfaces {
            let kernel_at_open = KernelStats::read(name).ok();
            let rx = open_receiver(name, cfg)?;
            if let Ok(flags) = std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")) {
                if flags.trim() == "down" {
                    tracing::warn!(interface = %name, "capture interface is down; capture starts when it comes up");
                }
            }
            tracing::info!(interface = %name, read_buffer = cfg.read_buffer_bytes, promiscuous = cfg.promiscuous, "capture interface opened (receive-only)");
            opened.push(Opened {
                shared: Arc::new(IfaceShared {
                    name: name.clone(),
                    kernel_at_open,
                    counters: Counters::default(),
                }),
                rx,
            });
        }
        Ok(Capture {
            cfg: cfg.clone(),
            opened,
        })
    }

    /// The interface names, in [`Packet::interface`] order.
    pub fn interfaces(&self) -> Vec<&str> {
        self.opened.iter().map(|o| o.shared.name.as_str()).collect()
    }

    /// Starts one reader thread per interface; each calls `on_packet` for every frame, on that
    /// thread (so the callback must be quick, or hand off).
    pub fn start<F>(self, on_packet: F) -> Result<CaptureHandle, CaptureError>
    where
        F: Fn(Packet<'_>) -> Delivery + Send + Sync + 'static,
    {
        let sink = Arc::new(on_packet);
        let stop = Arc::new(AtomicBool::new(false));
        let mut handle = CaptureHandle {
            stop: Arc::clone(&stop),
            ifaces: self.opened.iter().map(|o| Arc::clone(&o.shared)).collect(),
            threads: Vec::new(),
        };
        for (index, opened) in self.opened.into_iter().enumerate() {
            let name = opened.shared.name.clone();
            let reader = Reader {
                index,
                shared: opened.shared,
                cfg: self.cfg.clone(),
                stop: Arc::clone(&stop),
                sink: Arc::clone(&sink),
            };
            reader.shared.counters.running.store(true, Ordering::SeqCst);
            let shared = Arc::clone(&reader.shared);
            let rx = opened.rx;
            match thread::Builder::new()
                .name(format!("ward-cap-{name}"))
                .spawn(move || reader.run(rx))
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
    /// [`InterfaceStats::sink_dropped`] (the reader never blocks on the consumer); when the
    /// receiver is dropped the reader threads stop.
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
    sink: Arc<F>,
}

const REOPEN_MIN: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(5);

impl<F> Reader<F>
where
    F: Fn(Packet<'_>) -> Delivery + Send + Sync + 'static,
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

    fn run(self, rx: Box<dyn DataLinkReceiver>) {
        let c = &self.shared.counters;
        let name = self.shared.name.as_str();
        let buffer = self.cfg.read_buffer_bytes;
        let mut rx = Some(rx);
        // Reopen delay; grows while reopened sockets keep failing, resets once a read works.
        let mut backoff = REOPEN_MIN;
        // Whether the current failure streak has been logged already (log once per streak).
        let mut failing = false;
        let mut last_open_error = String::new();
        while !self.stopped() {
            let Some(reader) = rx.as_mut() else {
                if kernel::is_up(name) == Some(false) {
                    // Administratively down: a socket bound now fails at once. Wait for "up".
                    self.pause(backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
                    continue;
                }
                match open_receiver(name, &self.cfg) {
                    Ok(r) => {
                        rx = Some(r);
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
            match reader.next() {
                Ok(data) => {
                    let time_us = now_us();
                    failing = false;
                    backoff = REOPEN_MIN;
                    c.packets.fetch_add(1, Ordering::Relaxed);
                    c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if data.len() >= buffer {
                        c.truncated.fetch_add(1, Ordering::Relaxed);
                    }
                    let delivery = (self.sink)(Packet {
                        time_us,
                        interface: self.index,
                        link: LinkType::Ethernet,
                        data,
                    });
                    match delivery {
                        Delivery::Delivered => {}
                        Delivery::Dropped => {
                            c.sink_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Delivery::Closed => {
                            c.sink_dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(interface = %name, "packet consumer closed; capture thread stopping");
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    failing = false;
                    backoff = REOPEN_MIN;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => {
                    // pnet reports a socket error (ENETDOWN after the link was set down, the
                    // interface being deleted...) as a poll event it does not read, so the error
                    // is never cleared: the only way out is a fresh socket.
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(interface = %name, error = %e, "capture read failed (link down or interface gone?); reopening the interface");
                        failing = true;
                    }
                    rx = None;
                    self.pause(backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
                }
            }
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
    /// Asks every reader thread to stop; each exits within one read timeout. Does not wait
    /// (see [`join`](CaptureHandle::join)).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The interface names, in [`Packet::interface`] order.
    pub fn interfaces(&self) -> Vec<&str> {
        self.ifaces.iter().map(|i| i.name.as_str()).collect()
    }

    /// Whether any reader thread is still running.
    pub fn is_running(&self) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.counters.running.load(Ordering::SeqCst))
    }

    /// Counters per interface, in [`Packet::interface`] order. Reads sysfs and `/proc` and runs
    /// `ss` once (a few milliseconds): call it every few seconds, not per packet.
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.collect_stats(true)
    }

    /// Like [`stats`](CaptureHandle::stats) without running `ss` (no socket `drops` and
    /// `rcvbuf_bytes`).
    pub fn stats_without_ss(&self) -> Vec<InterfaceStats> {
        self.collect_stats(false)
    }

    fn collect_stats(&self, with_ss: bool) -> Vec<InterfaceStats> {
        let names: Vec<&str> = self.interfaces();
        let sockets = kernel::socket_stats(&names, with_ss);
        self.ifaces
            .iter()
            .zip(sockets)
            .map(|(i, socket)| {
                let c = &i.counters;
                InterfaceStats {
                    interface: i.name.clone(),
                    packets: c.packets.load(Ordering::Relaxed),
                    bytes: c.bytes.load(Ordering::Relaxed),
                    possibly_truncated: c.truncated.load(Ordering::Relaxed),
                    sink_dropped: c.sink_dropped.load(Ordering::Relaxed),
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
    use std::path::Path;

    #[test]
    fn config_is_validated() {
        let ok = CaptureConfig::for_interfaces(["lo"]);
        assert!(ok.validate().is_ok());
        assert!(ok.read_buffer_bytes >= JUMBO_FRAME_BYTES);
        assert!(ok.promiscuous);
        let none = CaptureConfig::default();
        assert!(matches!(none.validate(), Err(CaptureError::Config(_))));
        let twice = CaptureConfig::for_interfaces(["lo", "lo"]);
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let small = CaptureConfig {
            read_buffer_bytes: 100,
            ..ok.clone()
        };
        assert!(small.validate().is_err());
        let spin = CaptureConfig {
            read_timeout: Duration::ZERO,
            ..ok
        };
        assert!(spin.validate().is_err());
    }

    #[test]
    fn missing_interface_is_named_with_advice() {
        let err = Capture::open(&CaptureConfig::for_interfaces(["ward-nosuch0"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ward-nosuch0"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("lo"), "lists what exists: {msg}");
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

    /// With CAP_NET_RAW: `lo` opens, captures, and stops within the read timeout. Without it:
    /// the error names the interface and the remedy.
    #[test]
    fn loopback_opens_and_stops_or_permission_is_explained() {
        let cfg = CaptureConfig {
            read_timeout: Duration::from_millis(100),
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

    /// The receive-only invariant is enforced by clippy (`clippy.toml` disallows pnet's
    /// transmit methods and `pnet_datalink::channel` outside `open_receiver`); this guards the
    /// configuration itself against a silent removal.
    #[test]
    fn clippy_disallows_every_datalink_transmit_path() {
        let cfg =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../clippy.toml"))
                .expect("clippy.toml at the workspace root");
        for path in [
            "pnet_datalink::DataLinkSender::send_to",
            "pnet_datalink::DataLinkSender::build_and_send",
            "pnet_datalink::channel",
        ] {
            assert!(cfg.contains(&format!("path = \"{path}\"")), "{path}");
        }
    }
}
