//! Builds a large capture for throughput benchmarks (`bench/compare.sh`,
//! `scripts/bench-agent.sh`).
//!
//! ```sh
//! cargo run --release -p ward-tests --bin make-mixed-capture -- /tmp/mixed.pcap 1024 [MIX]
//! ```
//!
//! `MIX` is one of:
//!
//! - `site` (default): a hospital network. The capture is a sequence of *departments*, eight or
//!   so active at any moment, their traffic interleaved packet by packet. Each department holds:
//!   one copy of every Ethernet frame of the fixture captures and of the bundled sample site
//!   (real dcmtk, pynetdicom, hl7apy, dnsmasq traffic) with MAC, IPv4, ARP and DHCP addresses
//!   rewritten, so every copy is a new set of devices; a CT scanner sending a study of eight
//!   512 KiB images to the PACS over DICOM (C-STORE, 16 KiB PDUs, 1448-byte segments, ACKs);
//!   a central monitoring station streaming HL7 v2 ORU^R01 vitals over MLLP with ACKs;
//!   bedside monitors streaming UDP to the station; infusion pumps with TLS heartbeats and
//!   syslog; workstations downloading over HTTPS and asking DNS; DHCP, ARP and NTP for every
//!   synthetic host. 1 GiB holds about 150 departments and several thousand devices.
//! - `dense` or `dense:N`: the worst case for per-flow and per-device work: the fixture frames
//!   replayed copy after copy with N (default 3) HTTPS-sized bulk frames after each, so a
//!   quarter of the packets open or carry a medical-protocol exchange.
//!
//! Checksums are not recomputed after rewriting (no tool in the comparison verifies them);
//! synthetic frames carry correct ones. Output is deterministic: same arguments, same bytes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use etherparse::PacketBuilder;
use ward_protocols::frame::LinkType;
use ward_tests::{fixture_path, frames, manifest};

// ---------------------------------------------------------------------------------------------
// Output

struct Pcap {
    w: BufWriter<File>,
    written: u64,
    packets: u64,
    t_us: u64,
    target: u64,
}

impl Pcap {
    fn create(path: &str, target: u64) -> std::io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&0i32.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&65535u32.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        Ok(Pcap {
            w,
            written: 24,
            packets: 0,
            t_us: 1_764_662_400_000_000, // 2025-12-02T08:00:00Z
            target,
        })
    }

    fn full(&self) -> bool {
        self.written >= self.target
    }

    fn frame(&mut self, data: &[u8]) {
        // A full capture ignores the rest of a burst: the file is cut where a real capture would be.
        if self.full() {
            return;
        }
        let t = self.t_us;
        let res = (|| {
            self.w.write_all(&((t / 1_000_000) as u32).to_le_bytes())?;
            self.w.write_all(&((t % 1_000_000) as u32).to_le_bytes())?;
            self.w.write_all(&(data.len() as u32).to_le_bytes())?;
            self.w.write_all(&(data.len() as u32).to_le_bytes())?;
            self.w.write_all(data)
        })();
        if let Err(e) = res {
            eprintln!("make-mixed-capture: write failed: {e}");
            std::process::exit(1);
        }
        self.written += 16 + data.len() as u64;
        self.packets += 1;
        // ~1 Gbit/s of wire time per byte, so timestamps look like a busy link.
        self.t_us += 1 + data.len() as u64 / 125;
    }
}

/// xorshift64*: deterministic, dependency-free, good enough to interleave flows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture replay with rewritten addresses

fn base_frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut add = |path: &Path| {
        for (link, f) in frames(path) {
            if link == LinkType::Ethernet {
                out.push(f);
            }
        }
    };
    for fx in manifest().fixtures {
        add(&fixture_path(&fx.file));
    }
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-site.pcap");
    if site.exists() {
        add(&site);
    }
    out
}

fn rewrite_mac(mac: &mut [u8], n: u32) {
    // Group (broadcast, multicast) and all-zero addresses keep their meaning.
    if mac.len() < 6 || mac[0] & 1 == 1 || mac.iter().all(|&b| b == 0) {
        return;
    }
    let b = n.to_be_bytes();
    mac[3] ^= b[1];
    mac[4] ^= b[2];
    mac[5] ^= b[3];
}

fn rewrite_ip(ip: &mut [u8], n: u32) {
    if ip.len() < 4 || ip[0] == 0 || ip[0] >= 224 || ip[0] == 127 {
        return;
    }
    let b = n.to_be_bytes();
    ip[2] ^= b[2];
    ip[3] ^= b[3];
    // Keep host part valid: never .0 or .255 after the mix.
    if ip[3] == 0 || ip[3] == 255 {
        ip[3] ^= 0x01;
    }
}

/// Rewrites copy `n` of an Ethernet frame: MACs (Ethernet, ARP, DHCP chaddr and client id) get
/// the copy number in their last three octets, unicast IPv4 addresses (IP header, ARP, DHCP
/// address fields and options) in their last two.
fn rewrite(frame: &mut [u8], n: u32) {
    if frame.len() < 14 {
        return;
    }
    rewrite_mac(&mut frame[0..6], n);
    rewrite_mac(&mut frame[6..12], n);
    let mut off = 12;
    while frame.len() >= off + 2
        && matches!([frame[off], frame[off + 1]], [0x81, 0x00] | [0x88, 0xa8])
    {
        off += 4;
    }
    if frame.len() < off + 2 {
        return;
    }
    let ethertype = [frame[off], frame[off + 1]];
    let l3 = off + 2;
    match ethertype {
        [0x08, 0x06] if frame.len() >= l3 + 28 => {
            rewrite_mac(&mut frame[l3 + 8..l3 + 14], n);
            rewrite_ip(&mut frame[l3 + 14..l3 + 18], n);
            rewrite_mac(&mut frame[l3 + 18..l3 + 24], n);
            rewrite_ip(&mut frame[l3 + 24..l3 + 28], n);
        }
        [0x08, 0x00] if frame.len() >= l3 + 20 => {
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let proto = frame[l3 + 9];
            rewrite_ip(&mut frame[l3 + 12..l3 + 16], n);
            rewrite_ip(&mut frame[l3 + 16..l3 + 20], n);
            let l4 = l3 + ihl;
            if proto == 17 && frame.len() >= l4 + 8 {
                let sport = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
                let dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
                if matches!(sport, 67 | 68) && matches!(dport, 67 | 68) {
                    rewrite_dhcp(&mut frame[l4 + 8..], n);
                }
            }
        }
        _ => {}
    }
}

fn rewrite_dhcp(p: &mut [u8], n: u32) {
    if p.len() < 240 {
        return;
    }
    for a in [12, 16, 20, 24] {
        rewrite_ip(&mut p[a..a + 4], n);
    }
    rewrite_mac(&mut p[28..34], n);
    let mut i = 240;
    while i + 2 <= p.len() {
        let code = p[i];
        if code == 0 {
            i += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let len = usize::from(p[i + 1]);
        let v = i + 2;
        if v + len > p.len() {
            break;
        }
        match (code, len) {
            (50 | 54, 4) => rewrite_ip(&mut p[v..v + 4], n),
            (61, 7) if p[v] == 1 => rewrite_mac(&mut p[v + 1..v + 7], n),
            _ => {}
        }
        i = v + len;
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic hosts and traffic

#[derive(Clone, Copy)]
struct Host {
    mac: [u8; 6],
    ip: [u8; 4],
}

impl Host {
    /// Host `h` of department `d`: the OUI says who made its interface; the address is
    /// 172.(16 + d / 256 % 16).(d % 256).h.
    fn dept(oui: [u8; 3], d: u32, h: u8) -> Host {
        Host {
            mac: [oui[0], oui[1], oui[2], h, (d >> 8) as u8, d as u8],
            ip: [172, 16 + ((d >> 8) & 0x0f) as u8, d as u8, h],
        }
    }
    fn central(oui: [u8; 3], h: u8) -> Host {
        Host {
            mac: [oui[0], oui[1], oui[2], 0xfa, 0, h],
            ip: [10, 250, 0, h],
        }
    }
}

const GE: [u8; 3] = [0x08, 0x00, 0x19];
const PHILIPS_PM: [u8; 3] = [0x00, 0x09, 0xfb];
const PHILIPS_CM: [u8; 3] = [0x00, 0x09, 0x5c];
const BBRAUN: [u8; 3] = [0x00, 0x12, 0x21];
const DELL: [u8; 3] = [0x00, 0x14, 0x22];
const CISCO: [u8; 3] = [0x00, 0x00, 0x0c];

fn pacs() -> Host {
    Host::central(DELL, 10)
}
fn hl7_engine() -> Host {
    Host::central(DELL, 20)
}
fn dns_server() -> Host {
    Host::central(DELL, 53)
}
fn web_server() -> Host {
    Host::central(DELL, 80)
}
fn ntp_server() -> Host {
    Host::central(CISCO, 123)
}
fn syslog_server() -> Host {
    Host::central(DELL, 114)
}

/// One source of frames; `step` writes the next burst (one message, one datagram) and says
/// whether there is more.
trait Source {
    fn step(&mut self, out: &mut Pcap, buf: &mut Vec<u8>) -> bool;
}

struct Replay {
    frames: std::rc::Rc<Vec<Vec<u8>>>,
    next: usize,
    copy: u32,
}

impl Source for Replay {
    fn step(&mut self, out: &mut Pcap, buf: &mut Vec<u8>) -> bool {
        // A few frames per turn: fixture flows are short request/response exchanges.
        for _ in 0..4 {
            let Some(f) = self.frames.get(self.next) else {
                return false;
            };
            buf.clear();
            buf.extend_from_slice(f);
            rewrite(buf, self.copy);
            out.frame(buf);
            self.next += 1;
        }
        self.next < self.frames.len()
    }
}

/// A TCP conversation: handshake, a script of application messages (each segmented at 1448
/// bytes and ACKed every second segment), FIN exchange.
struct Tcp {
    c: Host,
    s: Host,
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    opened: bool,
    script: Box<dyn Iterator<Item = (bool, Vec<u8>)>>,
}

const MSS: usize = 1448;

impl Tcp {
    fn new(
        c: Host,
        s: Host,
        cport: u16,
        sport: u16,
        script: impl Iterator<Item = (bool, Vec<u8>)> + 'static,
    ) -> Self {
        Tcp {
            c,
            s,
            cport,
            sport,
            cseq: 0x1000_0000 ^ u32::from(cport) << 8,
            sseq: 0x7000_0000 ^ u32::from(sport) << 12 ^ u32::from(c.ip[3]),
            opened: false,
            script: Box::new(script),
        }
    }

    fn seg(
        &self,
        from_client: bool,
        flags: &str,
        payload: &[u8],
        out: &mut Pcap,
        buf: &mut Vec<u8>,
    ) {
        let (a, b, ap, bp, seq, ack) = if from_client {
            (self.c, self.s, self.cport, self.sport, self.cseq, self.sseq)
        } else {
            (self.s, self.c, self.sport, self.cport, self.sseq, self.cseq)
        };
        let mut t = PacketBuilder::ethernet2(a.mac, b.mac)
            .ipv4(a.ip, b.ip, 64)
            .tcp(ap, bp, seq, 64240);
        if flags.contains('S') {
            t = t.syn();
        }
        if flags.contains('A') {
            t = t.ack(ack);
        }
        if flags.contains('P') {
            t = t.psh();
        }
        if flags.contains('F') {
            t = t.fin();
        }
        buf.clear();
        t.write(buf, payload).expect("frame fits");
        out.frame(buf);
    }

    fn advance(&mut self, from_client: bool, n: usize) {
        let seq = if from_client {
            &mut self.cseq
        } else {
            &mut self.sseq
        };
        *seq = seq.wrapping_add(n as u32);
    }
}

impl Source for Tcp {
    fn step(&mut self, out: &mut Pcap, buf: &mut Vec<u8>) -> bool {
        if !self.opened {
            self.opened = true;
            self.seg(true, "S", &[], out, buf);
            self.advance(true, 1);
            self.seg(false, "SA", &[], out, buf);
            self.advance(false, 1);
            self.seg(true, "A", &[], out, buf);
            return true;
        }
        let Some((from_client, msg)) = self.script.next() else {
            self.seg(true, "FA", &[], out, buf);
            self.advance(true, 1);
            self.seg(false, "FA", &[], out, buf);
            self.advance(false, 1);
            self.seg(true, "A", &[], out, buf);
            return false;
        };
        let chunks = msg.chunks(MSS).count();
        for (i, chunk) in msg.chunks(MSS).enumerate() {
            let last = i + 1 == chunks;
            self.seg(from_client, if last { "PA" } else { "A" }, chunk, out, buf);
            self.advance(from_client, chunk.len());
            if i % 2 == 1 || last {
                self.seg(!from_client, "A", &[], out, buf);
            }
        }
        true
    }
}

/// Datagrams or ARP frames, one per step.
struct Datagrams {
    frames: VecDeque<Vec<u8>>,
}

impl Source for Datagrams {
    fn step(&mut self, out: &mut Pcap, _buf: &mut Vec<u8>) -> bool {
        if let Some(f) = self.frames.pop_front() {
            out.frame(&f);
        }
        !self.frames.is_empty()
    }
}

fn udp(a: Host, b: Host, ap: u16, bp: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(42 + payload.len());
    PacketBuilder::ethernet2(a.mac, b.mac)
        .ipv4(a.ip, b.ip, 64)
        .udp(ap, bp)
        .write(&mut v, payload)
        .expect("frame fits");
    v
}

fn arp(op: u16, sender: Host, target_mac: [u8; 6], target_ip: [u8; 4], dst: [u8; 6]) -> Vec<u8> {
    let mut v = Vec::with_capacity(60);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&sender.mac);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sender.mac);
    v.extend_from_slice(&sender.ip);
    v.extend_from_slice(&target_mac);
    v.extend_from_slice(&target_ip);
    v.resize(60, 0);
    v
}

/// DHCP DISCOVER/OFFER/REQUEST/ACK for `h`, with host name and vendor class as the device
/// would send them.
fn dhcp_exchange(h: Host, gw: Host, xid: u32, hostname: &str, vendor: &str) -> Vec<Vec<u8>> {
    let bootp = |op: u8, msg: u8, yiaddr: [u8; 4], client: bool| {
        let mut p = vec![0u8; 240];
        p[0] = op;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&xid.to_be_bytes());
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&h.mac);
        p[236..240].copy_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&[53, 1, msg]);
        if client {
            p.extend_from_slice(&[61, 7, 1]);
            p.extend_from_slice(&h.mac);
            p.extend_from_slice(&[12, hostname.len() as u8]);
            p.extend_from_slice(hostname.as_bytes());
            p.extend_from_slice(&[60, vendor.len() as u8]);
            p.extend_from_slice(vendor.as_bytes());
            p.extend_from_slice(&[55, 6, 1, 3, 6, 15, 42, 43]);
            if msg == 3 {
                p.extend_from_slice(&[50, 4]);
                p.extend_from_slice(&h.ip);
                p.extend_from_slice(&[54, 4]);
                p.extend_from_slice(&gw.ip);
            }
        } else {
            p.extend_from_slice(&[54, 4]);
            p.extend_from_slice(&gw.ip);
            p.extend_from_slice(&[51, 4, 0, 1, 0x51, 0x80, 1, 4, 255, 255, 255, 0, 3, 4]);
            p.extend_from_slice(&gw.ip);
            p.extend_from_slice(&[6, 4]);
            p.extend_from_slice(&dns_server().ip);
        }
        p.push(255);
        p.resize(p.len().max(300), 0);
        p
    };
    let bcast = Host {
        mac: [0xff; 6],
        ip: [255; 4],
    };
    let unknown = Host {
        mac: h.mac,
        ip: [0; 4],
    };
    vec![
        udp(unknown, bcast, 68, 67, &bootp(1, 1, [0; 4], true)),
        udp(
            gw,
            Host {
                mac: h.mac,
                ip: h.ip,
            },
            67,
            68,
            &bootp(2, 2, h.ip, false),
        ),
        udp(unknown, bcast, 68, 67, &bootp(1, 3, [0; 4], true)),
        udp(
            gw,
            Host {
                mac: h.mac,
                ip: h.ip,
            },
            67,
            68,
            &bootp(2, 5, h.ip, false),
        ),
    ]
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

fn dns_pair(c: Host, id: u16, name: &str, answer: [u8; 4]) -> [Vec<u8>; 2] {
    let q = dns_name(name);
    let mut query = id.to_be_bytes().to_vec();
    query.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    query.extend_from_slice(&q);
    query.extend_from_slice(&[0, 1, 0, 1]);
    let mut resp = id.to_be_bytes().to_vec();
    resp.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    resp.extend_from_slice(&q);
    resp.extend_from_slice(&[0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
    resp.extend_from_slice(&answer);
    let port = 40000 + id % 20000;
    [
        udp(c, dns_server(), port, 53, &query),
        udp(dns_server(), c, 53, port, &resp),
    ]
}

fn ntp_pair(c: Host) -> [Vec<u8>; 2] {
    let mut q = vec![0u8; 48];
    q[0] = 0x23;
    let mut r = vec![0u8; 48];
    r[0] = 0x24;
    r[1] = 2;
    [
        udp(c, ntp_server(), 123, 123, &q),
        udp(ntp_server(), c, 123, 123, &r),
    ]
}

// --- DICOM (PS3.8 upper layer, PS3.7 command set) ---------------------------------------------

fn item(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn ae(title: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..title.len().min(16)].copy_from_slice(&title.as_bytes()[..title.len().min(16)]);
    a
}

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn associate(rq: bool, calling: &str, called: &str) -> Vec<u8> {
    let mut body = vec![0, 1, 0, 0];
    body.extend_from_slice(&ae(called));
    body.extend_from_slice(&ae(calling));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for (id, sop) in [(1u8, CT_IMAGE), (3, "1.2.840.10008.1.1")] {
        let mut pc = vec![id, 0, 0, 0];
        if rq {
            pc.extend(item(0x30, sop.as_bytes()));
        }
        pc.extend(item(0x40, EXPLICIT_LE.as_bytes()));
        body.extend(item(if rq { 0x20 } else { 0x21 }, &pc));
    }
    let mut ui = item(0x51, &16384u32.to_be_bytes());
    ui.extend(item(0x52, b"1.2.840.113619.6.374"));
    ui.extend(item(0x55, b"GEHC_CT_REV_43"));
    body.extend(item(0x50, &ui));
    pdu(if rq { 1 } else { 2 }, &body)
}

fn implicit(group: u16, elem: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len() + 1);
    v.extend_from_slice(&group.to_le_bytes());
    v.extend_from_slice(&elem.to_le_bytes());
    let padded = value.len() + value.len() % 2;
    v.extend_from_slice(&(padded as u32).to_le_bytes());
    v.extend_from_slice(value);
    if value.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn command(elements: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = elements.concat();
    let mut v = implicit(0, 0, &(body.len() as u32).to_le_bytes());
    v.extend(body);
    v
}

fn explicit(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + value.len());
    v.extend_from_slice(&group.to_le_bytes());
    v.extend_from_slice(&elem.to_le_bytes());
    v.extend_from_slice(vr);
    let pad = value.len() % 2;
    if matches!(vr, b"OB" | b"OW") {
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&((value.len() + pad) as u32).to_le_bytes());
    } else {
        v.extend_from_slice(&((value.len() + pad) as u16).to_le_bytes());
    }
    v.extend_from_slice(value);
    if pad == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    v
}

/// P-DATA-TF PDUs carrying one message fragment stream for context 1.
fn pdata(data: &[u8], is_command: bool) -> Vec<Vec<u8>> {
    let max = 16384 - 6;
    let n = data.len().div_ceil(max).max(1);
    (0..n)
        .map(|i| {
            let chunk = &data[i * max..((i + 1) * max).min(data.len())];
            let mch = u8::from(is_command) | if i + 1 == n { 2 } else { 0 };
            let mut pdv = ((chunk.len() + 2) as u32).to_be_bytes().to_vec();
            pdv.extend_from_slice(&[1, mch]);
            pdv.extend_from_slice(chunk);
            pdu(4, &pdv)
        })
        .collect()
}

/// One application message (from the client?, bytes), built when its turn comes so a study's
/// images are not all in memory at once.
type LazyMessage = Box<dyn Fn() -> (bool, Vec<u8>)>;

/// A CT study sent to the PACS: association, `images` C-STOREs of 512×512×16-bit images,
/// release. The dataset names the scanner (and carries a patient-name canary ward must skip).
fn ct_study(d: u32, images: u32) -> impl Iterator<Item = (bool, Vec<u8>)> {
    let station = format!("CT{d:04}");
    let serial = format!("RV{d:06}");
    let mut msgs: Vec<(bool, Vec<u8>)> = vec![
        (true, associate(true, &station, "PACS")),
        (false, associate(false, &station, "PACS")),
    ];
    let pixels = std::rc::Rc::new(vec![0x5au8; 512 * 512 * 2]);
    let mut rest: Vec<LazyMessage> = Vec::new();
    for i in 0..images {
        let inst = format!("1.2.826.0.1.3680043.10.999.{d}.{i}");
        let cmd = command(&[
            implicit(0, 2, CT_IMAGE.as_bytes()),
            implicit(0, 0x100, &1u16.to_le_bytes()),
            implicit(0, 0x110, &(i as u16 + 1).to_le_bytes()),
            implicit(0, 0x700, &0u16.to_le_bytes()),
            implicit(0, 0x800, &0u16.to_le_bytes()),
            implicit(0, 0x1000, inst.as_bytes()),
        ]);
        let header = [
            explicit(0x0008, 0x0016, b"UI", CT_IMAGE.as_bytes()),
            explicit(0x0008, 0x0018, b"UI", inst.as_bytes()),
            explicit(0x0008, 0x0060, b"CS", b"CT"),
            explicit(0x0008, 0x0070, b"LO", b"GE MEDICAL SYSTEMS"),
            explicit(0x0008, 0x1010, b"SH", station.as_bytes()),
            explicit(0x0008, 0x1090, b"LO", b"Revolution EVO"),
            explicit(0x0010, 0x0010, b"PN", b"CANARYBENCH^PATIENT"),
            explicit(0x0018, 0x1000, b"LO", serial.as_bytes()),
            explicit(0x0018, 0x1020, b"LO", b"gmp_vct.43"),
            explicit(0x0028, 0x0010, b"US", &512u16.to_le_bytes()),
            explicit(0x0028, 0x0011, b"US", &512u16.to_le_bytes()),
        ]
        .concat();
        let px = pixels.clone();
        let rsp = command(&[
            implicit(0, 2, CT_IMAGE.as_bytes()),
            implicit(0, 0x100, &0x8001u16.to_le_bytes()),
            implicit(0, 0x120, &(i as u16 + 1).to_le_bytes()),
            implicit(0, 0x800, &0x0101u16.to_le_bytes()),
            implicit(0, 0x900, &0u16.to_le_bytes()),
            implicit(0, 0x1000, inst.as_bytes()),
        ]);
        rest.push(Box::new(move || (true, pdata(&cmd, true).concat())));
        // The dataset goes one PDU per step so big images interleave with other flows.
        let data = std::rc::Rc::new([header, explicit(0x7fe0, 0x0010, b"OW", &px)].concat());
        let max = 16384 - 6;
        let n = data.len().div_ceil(max);
        for k in 0..n {
            let data = data.clone();
            rest.push(Box::new(move || {
                let chunk = &data[k * max..((k + 1) * max).min(data.len())];
                let mch = if k + 1 == n { 2 } else { 0 };
                let mut pdv = ((chunk.len() + 2) as u32).to_be_bytes().to_vec();
                pdv.extend_from_slice(&[1, mch]);
                pdv.extend_from_slice(chunk);
                (true, pdu(4, &pdv))
            }));
        }
        rest.push(Box::new(move || (false, pdata(&rsp, true).concat())));
    }
    msgs.push((true, pdu(5, &[0; 4])));
    msgs.push((false, pdu(6, &[0; 4])));
    let release = msgs.split_off(2);
    msgs.into_iter()
        .chain(rest.into_iter().map(|f| f()))
        .chain(release)
}

// --- HL7 v2 over MLLP ---------------------------------------------------------------------------

fn mllp(msg: &str) -> Vec<u8> {
    let mut v = vec![0x0b];
    v.extend_from_slice(msg.as_bytes());
    v.extend_from_slice(&[0x1c, 0x0d]);
    v
}

/// The central station's vitals feed: `n` ORU^R01 messages, each ACKed by the engine.
fn hl7_feed(d: u32, n: u32) -> impl Iterator<Item = (bool, Vec<u8>)> {
    (0..n).flat_map(move |i| {
        let id = format!("D{d:04}M{i:06}");
        let ts = format!("202512020{}{:02}{:02}", 8 + i / 3600 % 2, i / 60 % 60, i % 60);
        let bed = i % 8 + 1;
        let oru = format!(
            "MSH|^~\\&|PIC iX^00095CFFFE{d:06X}^EUI-64|ICU_{d:04}|HL7ENGINE|GENERAL|{ts}||ORU^R01^ORU_R01|{id}|P|2.6|||NE|AL||8859/1\r\
             PID|||CANARY{d}{i}^^^GENERAL^MR||CANARYBENCH^PATIENT||19700101|U\r\
             PV1||I|ICU{d:04}^^BED{bed}\r\
             OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC|||{ts}\r\
             OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||{ts}\r\
             OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||{ts}\r\
             OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.3|121|266016^MDC_DIM_MMHG^MDC|||||R|||{ts}\r\
             OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.1.1.4|79|266016^MDC_DIM_MMHG^MDC|||||R|||{ts}\r\
             OBX|5|NM|151562^MDC_RESP_RATE^MDC|1.1.1.5|16|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R|||{ts}\r"
        );
        let ack = format!(
            "MSH|^~\\&|HL7ENGINE|GENERAL|PIC iX|ICU_{d:04}|{ts}||ACK^R01^ACK|A{id}|P|2.6\rMSA|AA|{id}\r"
        );
        [(true, mllp(&oru)), (false, mllp(&ack))]
    })
}

// --- TLS (record layer only; what a passive observer sees of HTTPS) -----------------------------

fn client_hello(sni: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    ext.extend_from_slice(&[0, 0x2b, 0, 5, 4, 3, 4, 3, 3]); // supported_versions 1.3, 1.2
    ext.extend_from_slice(&[0, 10, 0, 4, 0, 2, 0, 0x1d]); // supported_groups x25519
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0x42; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0, 6, 0x13, 1, 0x13, 2, 0xc0, 0x2f]);
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

fn server_hello() -> Vec<u8> {
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0x24; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0x13, 1, 0]);
    hello.extend_from_slice(&[0, 6, 0, 0x2b, 0, 2, 3, 4]);
    let mut hs = vec![2];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 3, 3];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

fn app_data(len: usize, fill: u8) -> Vec<u8> {
    let mut rec = vec![0x17, 3, 3];
    rec.extend_from_slice(&(len as u16).to_be_bytes());
    rec.resize(5 + len, fill);
    rec
}

/// An HTTPS exchange: handshake, one request, `records` 16 KiB response records.
fn https(sni: &str, records: usize) -> impl Iterator<Item = (bool, Vec<u8>)> {
    let head = vec![
        (true, client_hello(sni)),
        (false, server_hello()),
        (true, app_data(420, 0x33)),
    ];
    head.into_iter()
        .chain((0..records).map(|i| (false, app_data(16384, i as u8))))
}

// --- A department ------------------------------------------------------------------------------

fn department(d: u32, base: &std::rc::Rc<Vec<Vec<u8>>>) -> Vec<Box<dyn Source>> {
    let gw = Host::dept(CISCO, d, 1);
    let ct = Host::dept(GE, d, 10);
    let station = Host::dept(PHILIPS_CM, d, 20);
    let monitors: Vec<Host> = (0..4).map(|i| Host::dept(PHILIPS_PM, d, 30 + i)).collect();
    let pumps: Vec<Host> = (0..2).map(|i| Host::dept(BBRAUN, d, 50 + i)).collect();
    let stations: Vec<Host> = (0..3).map(|i| Host::dept(DELL, d, 70 + i)).collect();
    let mut out: Vec<Box<dyn Source>> = vec![Box::new(Replay {
        frames: base.clone(),
        next: 0,
        copy: d,
    })];
    out.push(Box::new(Tcp::new(
        ct,
        pacs(),
        50000 + (d % 10000) as u16,
        104,
        ct_study(d, 8),
    )));
    out.push(Box::new(Tcp::new(
        station,
        hl7_engine(),
        40000 + (d % 20000) as u16,
        2575,
        hl7_feed(d, 120),
    )));
    // Link-layer and housekeeping traffic of every synthetic host.
    let mut misc = VecDeque::new();
    let named: Vec<(Host, String, &str)> = std::iter::once((ct, format!("CT{d:04}"), "GEHC-CT"))
        .chain(std::iter::once((
            station,
            format!("PIC{d:04}"),
            "PHILIPS-PIC-IX",
        )))
        .chain(
            monitors
                .iter()
                .enumerate()
                .map(|(i, m)| (*m, format!("MX800-{d:04}-{i}"), "PHILIPS-MX800")),
        )
        .chain(
            pumps
                .iter()
                .enumerate()
                .map(|(i, p)| (*p, format!("SPACE-{d:04}-{i}"), "BBRAUN-SPACE")),
        )
        .chain(
            stations
                .iter()
                .enumerate()
                .map(|(i, w)| (*w, format!("WS{d:04}-{i}"), "MSFT 5.0")),
        )
        .collect();
    for (k, (h, name, vendor)) in named.iter().enumerate() {
        misc.extend(dhcp_exchange(*h, gw, d << 8 | k as u32, name, vendor));
        misc.push_back(arp(1, *h, [0; 6], gw.ip, [0xff; 6]));
        misc.push_back(arp(2, gw, h.mac, h.ip, h.mac));
        misc.extend(ntp_pair(*h));
    }
    out.push(Box::new(Datagrams { frames: misc }));
    // Bedside monitors stream measurements to the station (~250-byte datagrams).
    for (i, m) in monitors.iter().enumerate() {
        let frames = (0..300u32)
            .map(|k| {
                let mut p = vec![0u8; 240];
                p[..4].copy_from_slice(&k.to_be_bytes());
                p[4] = i as u8;
                udp(*m, station, 24105, 24105, &p)
            })
            .collect();
        out.push(Box::new(Datagrams { frames }));
    }
    // Pumps: a TLS heartbeat to the drug-library server and syslog.
    for (i, p) in pumps.iter().enumerate() {
        out.push(Box::new(Tcp::new(
            *p,
            web_server(),
            45000 + i as u16,
            443,
            https("dls.bbraun.example", 1),
        )));
        let frames = (0..20)
            .map(|k| {
                let msg = format!("<134>Dec  2 08:{k:02}:00 SPACE-{d:04}-{i} infusion: rate ok");
                udp(*p, syslog_server(), 514, 514, msg.as_bytes())
            })
            .collect();
        out.push(Box::new(Datagrams { frames }));
    }
    // Workstations: DNS, then an HTTPS download each.
    for (i, w) in stations.iter().enumerate() {
        let mut frames = VecDeque::new();
        for q in 0..10u16 {
            frames.extend(dns_pair(
                *w,
                (d as u16).wrapping_mul(31) ^ q << 8 ^ i as u16,
                "pacs.general.example",
                pacs().ip,
            ));
        }
        out.push(Box::new(Datagrams { frames }));
        out.push(Box::new(Tcp::new(
            *w,
            web_server(),
            52000 + i as u16,
            443,
            https("portal.general.example", 24),
        )));
    }
    out
}

// ---------------------------------------------------------------------------------------------

fn dense(out: &mut Pcap, base: &[Vec<u8>], bulk: u32) -> u32 {
    let mut scratch = Vec::with_capacity(1600);
    let mut copy = 0u32;
    let payload = [0x17u8; 1400];
    while !out.full() {
        copy += 1;
        for f in base {
            scratch.clear();
            scratch.extend_from_slice(f);
            rewrite(&mut scratch, copy);
            out.frame(&scratch);
            for k in 0..bulk {
                let i = out.packets as u32 * 3 + k;
                let n = copy;
                let host = (n % 250) as u8;
                let eth = PacketBuilder::ethernet2(
                    [2, 0, 0, 1, (n >> 8) as u8, host],
                    [2, 0, 0, 2, 0, 1],
                );
                scratch.clear();
                let r = match i % 8 {
                    0..=4 => eth
                        .ipv4([10, 20, (n >> 8) as u8, host], [10, 30, 0, 1], 64)
                        .tcp(40000 + (n % 20000) as u16, 443, i.wrapping_mul(1400), 4096)
                        .write(&mut scratch, &payload),
                    5 | 6 => eth
                        .ipv4([10, 30, 0, 1], [10, 20, (n >> 8) as u8, host], 64)
                        .tcp(443, 40000 + (n % 20000) as u16, i, 4096)
                        .write(&mut scratch, &[]),
                    _ => eth
                        .ipv4([10, 20, (n >> 8) as u8, host], [10, 30, 0, 53], 64)
                        .udp(50000, 53)
                        .write(&mut scratch, &payload[..60]),
                };
                r.expect("frame fits");
                out.frame(&scratch);
            }
        }
    }
    copy
}

fn site(out: &mut Pcap, base: Vec<Vec<u8>>) -> u32 {
    let base = std::rc::Rc::new(base);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut active: Vec<Box<dyn Source>> = Vec::new();
    let mut buf = Vec::with_capacity(1600);
    let mut depts = 0u32;
    // About eight departments' worth of sources at once (each department brings 16).
    const WINDOW: usize = 8 * 16;
    while !out.full() {
        while active.len() < WINDOW {
            depts += 1;
            active.extend(department(depts, &base));
        }
        let i = rng.below(active.len());
        if !active[i].step(out, &mut buf) {
            active.swap_remove(i);
        }
    }
    depts
}

fn usage() -> ! {
    eprintln!("usage: make-mixed-capture PATH SIZE_MIB [site | dense | dense:N]");
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.len() > 3 {
        usage();
    }
    let path = args
        .first()
        .cloned()
        .unwrap_or_else(|| "/tmp/ward-mixed.pcap".into());
    let mib: u64 = match args.get(1).map(|s| s.parse()) {
        None => 1024,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => usage(),
    };
    let mix = args.get(2).map(String::as_str).unwrap_or("site");
    let mut out = Pcap::create(&path, mib * 1024 * 1024)?;
    let base = base_frames();
    let nbase = base.len();
    let what = match mix {
        "site" => {
            let depts = site(&mut out, base);
            format!("site mix, {depts} departments (each: {nbase} rewritten fixture frames + CT, HL7, monitors, pumps, workstations)")
        }
        m if m == "dense" || m.starts_with("dense:") => {
            let bulk = match m.strip_prefix("dense:") {
                None => 3,
                Some(n) => n.parse().unwrap_or_else(|_| usage()),
            };
            let copies = dense(&mut out, &base, bulk);
            format!("dense mix, {copies} copies of {nbase} fixture frames, {bulk} bulk frames after each")
        }
        _ => usage(),
    };
    out.w.flush()?;
    eprintln!(
        "wrote {path}: {} packets, {:.1} MiB, {what}",
        out.packets,
        out.written as f64 / 1048576.0
    );
    Ok(())
}
