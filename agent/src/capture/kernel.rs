//! Kernel-side counters for a capture interface, read without the socket's file descriptor.
//!
//! pnet_datalink keeps the `AF_PACKET` socket's descriptor private, so the socket options that
//! report drops (`getsockopt(PACKET_STATISTICS)`) and size the buffer (`SO_RCVBUF`) are out of
//! reach. What *is* reachable, and what each number means:
//!
//! | Counter | Source | Scope | Meaning |
//! |---|---|---|---|
//! | [`KernelStats`] | `/sys/class/net/<if>/statistics/*` | the interface, every reader | what the driver and the core network stack counted on the interface since it was created, *before* any packet socket sees a frame |
//! | [`SocketStats::queued_bytes`] | `/proc/net/packet` (`Rmem`) | this process's packet socket(s) on the interface | bytes received by the kernel for us and not yet read: a backlog that approaches the receive buffer means drops are imminent |
//! | [`SocketStats::rcvbuf_bytes`], [`SocketStats::drops`] | `ss -0 -m` (`NETLINK_SOCK_DIAG` / `packet_diag`, `skmem` `rb` and `d`) | the same socket(s) | the receive buffer size and `sk_drops`: frames the kernel had for the socket but discarded because the receive buffer was full (the same events `PACKET_STATISTICS` reports as `tp_drops`, but cumulative since the socket was opened, not reset on read) |
//!
//! Not available: `PACKET_STATISTICS` itself (needs the descriptor), per-frame drop reasons,
//! drops inside the NIC that the driver does not count, and anything about frames the switch
//! never mirrored (a SPAN session that oversubscribes its destination port drops in the switch;
//! only the switch's counters show that).
//!
//! All sources are per network namespace: the agent reads the namespace it runs in.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Interface-level counters from `/sys/class/net/<if>/statistics/`, cumulative since the
/// interface was created (they survive link down/up, and are shared with every other reader of
/// the interface). A file the kernel does not provide reads as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStats {
    /// `rx_packets`: frames the interface received and handed to the network stack.
    pub rx_packets: u64,
    /// `rx_bytes`: bytes of those frames.
    pub rx_bytes: u64,
    /// `rx_dropped`: frames received but dropped by the driver or the core stack before any
    /// socket (including ours) saw them: no buffer memory, per-CPU backlog full, and on some
    /// drivers frames for an unknown VLAN or protocol. Kernel-side loss that the agent cannot
    /// see in its own counters.
    pub rx_dropped: u64,
    /// `rx_missed_errors`: frames the NIC itself missed because its receive ring/FIFO was full
    /// (the host did not empty it fast enough). Driver-specific; many virtual NICs leave it 0.
    pub rx_missed_errors: u64,
    /// `rx_fifo_errors`: receive FIFO overruns (driver-specific, often the same events as
    /// `rx_missed_errors`).
    pub rx_fifo_errors: u64,
    /// `rx_over_errors`: receive ring buffer overflows (driver-specific).
    pub rx_over_errors: u64,
    /// `rx_errors`: total receive errors (CRC, length, frame, FIFO, missed...).
    pub rx_errors: u64,
    /// `rx_nohandler`: frames dropped because nothing (no protocol, no packet socket) wanted
    /// them; non-zero growth while the capture runs would mean our socket was not bound.
    pub rx_nohandler: u64,
    /// `tx_packets`: frames transmitted on the interface by anyone on this host. A monitor
    /// interface with no addresses (and IPv6 disabled) should never transmit; ward itself never
    /// does (see the crate's receive-only invariant).
    pub tx_packets: u64,
    /// `tx_bytes`: bytes of those frames.
    pub tx_bytes: u64,
}

impl KernelStats {
    /// Reads the counters of `interface` in the current network namespace.
    pub fn read(interface: &str) -> io::Result<KernelStats> {
        Self::read_from(
            &Path::new("/sys/class/net")
                .join(interface)
                .join("statistics"),
        )
    }

    fn read_from(dir: &Path) -> io::Result<KernelStats> {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", dir.display()),
            ));
        }
        let get = |name: &str| -> u64 {
            fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(KernelStats {
            rx_packets: get("rx_packets"),
            rx_bytes: get("rx_bytes"),
            rx_dropped: get("rx_dropped"),
            rx_missed_errors: get("rx_missed_errors"),
            rx_fifo_errors: get("rx_fifo_errors"),
            rx_over_errors: get("rx_over_errors"),
            rx_errors: get("rx_errors"),
            rx_nohandler: get("rx_nohandler"),
            tx_packets: get("tx_packets"),
            tx_bytes: get("tx_bytes"),
        })
    }

    /// Counter growth from `earlier` to `self` (saturating: an interface that was deleted and
    /// re-created restarts its counters at 0).
    pub fn since(&self, earlier: &KernelStats) -> KernelStats {
        KernelStats {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            rx_missed_errors: self
                .rx_missed_errors
                .saturating_sub(earlier.rx_missed_errors),
            rx_fifo_errors: self.rx_fifo_errors.saturating_sub(earlier.rx_fifo_errors),
            rx_over_errors: self.rx_over_errors.saturating_sub(earlier.rx_over_errors),
            rx_errors: self.rx_errors.saturating_sub(earlier.rx_errors),
            rx_nohandler: self.rx_nohandler.saturating_sub(earlier.rx_nohandler),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
        }
    }
}

/// Socket-level state of this process's packet socket(s) on one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStats {
    /// This process's packet sockets bound to the interface (1 while capturing; 0 between a
    /// failure and the reopen).
    pub sockets: u32,
    /// `/proc/net/packet` `Rmem`: bytes waiting in the receive buffer(s) right now.
    pub queued_bytes: u64,
    /// `ss` `skmem` `rb`: receive buffer size in bytes (`net.core.rmem_default` unless
    /// something raised it; pnet does not set `SO_RCVBUF`). `None` when `ss` is unavailable.
    pub rcvbuf_bytes: Option<u64>,
    /// `ss` `skmem` `d` (`sk_drops`): frames discarded because the receive buffer was full,
    /// cumulative since the current socket was opened (a reopen restarts it). `None` when `ss`
    /// is unavailable.
    pub drops: Option<u64>,
}

/// Where `ss` may live; only absolute paths (never `$PATH`) so a root agent cannot be tricked
/// into running something else.
const SS_PATHS: &[&str] = &["/usr/bin/ss", "/bin/ss", "/usr/sbin/ss", "/sbin/ss"];

/// The inodes of this process's sockets (`/proc/self/fd/* -> socket:[N]`). A process can always
/// read its own fd table, also after dropping privileges.
fn own_socket_inodes() -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(n) = t
            .strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    Ok(out)
}

/// One line of `/proc/net/packet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcPacketLine {
    ifindex: u32,
    rmem: u64,
    inode: u64,
}

/// Parses `/proc/net/packet`:
/// `sk RefCnt Type Proto Iface R Rmem User Inode`.
fn parse_proc_net_packet(text: &str) -> Vec<ProcPacketLine> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            Some(ProcPacketLine {
                ifindex: cols.get(4)?.parse().ok()?,
                rmem: cols.get(6)?.parse().ok()?,
                inode: cols.get(8)?.parse().ok()?,
            })
        })
        .collect()
}

/// `rb` and `d` of each packet socket's `skmem:(...)` in `ss -0 -a -m -e -n -H` output, by inode.
fn parse_ss(text: &str) -> HashMap<u64, (Option<u64>, Option<u64>)> {
    let mut out = HashMap::new();
    let mut inode = None;
    for token in text.split_whitespace() {
        if let Some(n) = token.strip_prefix("ino:") {
            inode = n.parse::<u64>().ok();
        } else if let Some(mem) = token.strip_prefix("skmem:(") {
            let Some(ino) = inode.take() else { continue };
            let mut rb = None;
            let mut drops = None;
            for item in mem.trim_end_matches(')').split(',') {
                if let Some(v) = item.strip_prefix("rb") {
                    rb = v.parse().ok();
                } else if let Some(v) = item.strip_prefix('d') {
                    drops = v.parse().ok();
                }
            }
            out.insert(ino, (rb, drops));
        }
    }
    out
}

fn run_ss() -> Option<String> {
    let ss = SS_PATHS.iter().find(|p| Path::new(p).is_file())?;
    let out = Command::new(ss)
        .args(["-0", "-a", "-m", "-e", "-n", "-H"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel index of `interface` (`/sys/class/net/<if>/ifindex`).
pub(crate) fn ifindex(interface: &str) -> Option<u32> {
    fs::read_to_string(Path::new("/sys/class/net").join(interface).join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `interface` is administratively up (`IFF_UP` in `/sys/class/net/<if>/flags`);
/// `None` if unreadable (e.g. the interface is gone).
pub(crate) fn is_up(interface: &str) -> Option<bool> {
    let text =
        fs::read_to_string(Path::new("/sys/class/net").join(interface).join("flags")).ok()?;
    let flags = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some(flags & 0x1 != 0)
}

/// The `ARPHRD_*` type of `interface` (`/sys/class/net/<if>/type`).
pub(crate) fn arphrd(interface: &str) -> Option<u16> {
    fs::read_to_string(Path::new("/sys/class/net").join(interface).join("type"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Socket statistics for each of `interfaces` (same order). One `/proc/net/packet` read and, if
/// `with_ss`, one `ss` run for all of them.
pub(crate) fn socket_stats(interfaces: &[&str], with_ss: bool) -> Vec<Option<SocketStats>> {
    let Ok(inodes) = own_socket_inodes() else {
        return vec![None; interfaces.len()];
    };
    let Ok(proc_text) = fs::read_to_string("/proc/net/packet") else {
        return vec![None; interfaces.len()];
    };
    let mine: Vec<ProcPacketLine> = parse_proc_net_packet(&proc_text)
        .into_iter()
        .filter(|l| inodes.contains(&l.inode))
        .collect();
    let ss = if with_ss {
        run_ss().map(|t| parse_ss(&t))
    } else {
        None
    };
    interfaces
        .iter()
        .map(|name| {
            let idx = ifindex(name)?;
            let mut s = SocketStats::default();
            let mut rb_sum: Option<u64> = None;
            let mut drop_sum: Option<u64> = None;
            for l in mine.iter().filter(|l| l.ifindex == idx) {
                s.sockets += 1;
                s.queued_bytes += l.rmem;
                if let Some(&(rb, d)) = ss.as_ref().and_then(|m| m.get(&l.inode)) {
                    if let Some(rb) = rb {
                        rb_sum = Some(rb_sum.unwrap_or(0) + rb);
                    }
                    if let Some(d) = d {
                        drop_sum = Some(drop_sum.unwrap_or(0) + d);
                    }
                }
            }
            if ss.is_some() && s.sockets > 0 {
                s.rcvbuf_bytes = rb_sum;
                s.drops = drop_sum;
            }
            Some(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_packet() {
        let text = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                    00000000664339ae 3      3    0003   2     1 2496   0      91350 \n\
                    00000000c4edcf10 3      3    0003   7     1 0      65534  90934 \n";
        assert_eq!(
            parse_proc_net_packet(text),
            vec![
                ProcPacketLine {
                    ifindex: 2,
                    rmem: 2496,
                    inode: 91350
                },
                ProcPacketLine {
                    ifindex: 7,
                    rmem: 0,
                    inode: 90934
                }
            ]
        );
    }

    #[test]
    fn parses_ss_skmem() {
        let text = "p_raw UNCONN 2496   0   *:vb   *     ino:91350 sk:1029\n\
                    \tver:0 cpy_thresh:0 flags( running ) skmem:(r2496,rb2304,t0,tb212992,f0,w0,o0,bl0,d3)\n\
                    p_raw UNCONN 0 0 *:eth0 * ino:5 sk:9\n\
                    \tskmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d0)\n";
        let m = parse_ss(text);
        assert_eq!(m.get(&91350), Some(&(Some(2304), Some(3))));
        assert_eq!(m.get(&5), Some(&(Some(212_992), Some(0))));
    }

    #[test]
    fn reads_loopback_counters_and_differences() {
        let now = KernelStats::read("lo").expect("lo exists in every namespace");
        let zero = now.since(&now);
        assert_eq!(zero, KernelStats::default());
        assert!(KernelStats::read("no-such-if0").is_err());
        assert_eq!(is_up("lo"), Some(true));
        assert_eq!(is_up("no-such-if0"), None);
    }
}
