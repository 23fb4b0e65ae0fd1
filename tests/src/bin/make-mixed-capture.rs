//! Builds a large mixed capture for throughput benchmarks from the fixture captures: every
//! Ethernet fixture frame is replayed many times with rewritten MAC and IPv4 addresses (so each
//! copy is a different set of devices and flows), interleaved with bulk TCP traffic of the kind
//! a clinical VLAN also carries (HTTPS-sized segments, small ACKs, DNS-like UDP).
//!
//! ```sh
//! cargo run --release -p ward-tests --bin make-mixed-capture -- /tmp/mixed.pcap 1024 [BULK]
//! ```
//!
//! `BULK` (default 3) is the number of bulk frames written after each fixture frame: 3 makes a
//! quarter of the packets medical-protocol exchanges (a dense worst case), 19 makes 5 %.

use std::fs::File;
use std::io::{BufWriter, Write};

use ward_protocols::frame::LinkType;
use ward_tests::{fixtures_dir, frames, manifest};

fn pcap_header(w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes()) // LINKTYPE_ETHERNET
}

fn record(w: &mut impl Write, t_us: u64, data: &[u8]) -> std::io::Result<usize> {
    w.write_all(&((t_us / 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&((t_us % 1_000_000) as u32).to_le_bytes())?;
    w.write_all(&(data.len() as u32).to_le_bytes())?;
    w.write_all(&(data.len() as u32).to_le_bytes())?;
    w.write_all(data)?;
    Ok(16 + data.len())
}

/// Rewrites copy `n` of an Ethernet/IPv4 frame: MAC bytes 3–5 and IPv4 octets 2–3 of both
/// addresses get the copy number mixed in (checksums are not fixed: ward does not verify them).
fn rewrite(frame: &mut [u8], n: u32) {
    let b = n.to_be_bytes();
    for base in [0usize, 6] {
        if frame.len() >= base + 6 {
            frame[base + 3] ^= b[1];
            frame[base + 4] ^= b[2];
            frame[base + 5] ^= b[3];
        }
    }
    // Find the IPv4 header past any VLAN tags.
    let mut off = 12;
    while frame.len() >= off + 2
        && matches!([frame[off], frame[off + 1]], [0x81, 0x00] | [0x88, 0xa8])
    {
        off += 4;
    }
    if frame.len() >= off + 22 && frame[off] == 0x08 && frame[off + 1] == 0x00 {
        let ip = off + 2;
        for a in [ip + 12, ip + 16] {
            frame[a + 1] ^= b[2];
            frame[a + 2] ^= b[3];
        }
    }
}

fn bulk(n: u32, i: u32, out: &mut Vec<u8>) {
    use etherparse::PacketBuilder;
    out.clear();
    let host = (n % 250) as u8;
    let eth = PacketBuilder::ethernet2([2, 0, 0, 1, (n >> 8) as u8, host], [2, 0, 0, 2, 0, 1]);
    let payload = [0x17u8; 1400];
    match i % 8 {
        0..=4 => eth
            .ipv4([10, 20, (n >> 8) as u8, host], [10, 30, 0, 1], 64)
            .tcp(40000 + (n % 20000) as u16, 443, i.wrapping_mul(1400), 4096)
            .write(out, &payload)
            .unwrap(),
        5 | 6 => eth
            .ipv4([10, 30, 0, 1], [10, 20, (n >> 8) as u8, host], 64)
            .tcp(443, 40000 + (n % 20000) as u16, i, 4096)
            .write(out, &[])
            .unwrap(),
        _ => eth
            .ipv4([10, 20, (n >> 8) as u8, host], [10, 30, 0, 53], 64)
            .udp(50000, 53)
            .write(out, &payload[..60])
            .unwrap(),
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/ward-mixed.pcap".into());
    let mib: u64 = args
        .next()
        .map(|s| s.parse().expect("size in MiB"))
        .unwrap_or(1024);
    let bulk_per_fixture: u32 = args
        .next()
        .map(|s| s.parse().expect("bulk frames per fixture frame"))
        .unwrap_or(3);
    let target = mib * 1024 * 1024;
    let mut base = Vec::new();
    for fx in manifest().fixtures {
        for (link, f) in frames(&fixtures_dir().join(&fx.file)) {
            if link == LinkType::Ethernet {
                base.push(f);
            }
        }
    }
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    pcap_header(&mut w)?;
    let (mut written, mut packets, mut t) = (24u64, 0u64, 1_700_000_000_000_000u64);
    let mut scratch = Vec::with_capacity(1600);
    let mut copy = 0u32;
    while written < target {
        copy += 1;
        for f in &base {
            scratch.clear();
            scratch.extend_from_slice(f);
            rewrite(&mut scratch, copy);
            written += record(&mut w, t, &scratch)? as u64;
            t += 10;
            packets += 1;
            for k in 0..bulk_per_fixture {
                bulk(copy, packets as u32 * 3 + k, &mut scratch);
                written += record(&mut w, t, &scratch)? as u64;
                t += 10;
                packets += 1;
            }
        }
    }
    w.flush()?;
    eprintln!(
        "wrote {path}: {packets} packets, {:.1} MiB, {copy} copies of {} fixture frames",
        written as f64 / 1048576.0,
        base.len()
    );
    Ok(())
}
