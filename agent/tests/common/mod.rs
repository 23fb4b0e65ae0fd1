//! Capture builders shared by the agent's integration tests: pcap and pcapng files written
//! byte by byte, and the frames that go in them.

#![allow(dead_code)]

use etherparse::PacketBuilder;

/// The `ward-agent` binary under test.
pub const AGENT: &str = env!("CARGO_BIN_EXE_ward-agent");

/// A legacy pcap file header (little-endian, microseconds, Ethernet).
pub fn pcap_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65_535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// One legacy pcap record.
pub fn pcap_record(time_us: u64, frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + frame.len());
    r.extend_from_slice(&((time_us / 1_000_000) as u32).to_le_bytes());
    r.extend_from_slice(&((time_us % 1_000_000) as u32).to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(frame);
    r
}

/// A pcapng section header block (little-endian, section length unknown).
pub fn shb() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b
}

/// A pcapng interface description block for Ethernet (microsecond timestamps).
pub fn idb() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b
}

/// A pcapng enhanced packet block on interface `if_id`.
pub fn epb(if_id: u32, time_us: u64, frame: &[u8]) -> Vec<u8> {
    let padded = frame.len().div_ceil(4) * 4;
    let len = (32 + padded) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&6u32.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&if_id.to_le_bytes());
    b.extend_from_slice(&((time_us >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(time_us as u32).to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(frame);
    b.resize(28 + padded, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// An Ethernet/IPv4/TCP frame from `src` to `dst` carrying `payload`.
pub fn tcp_frame(src: [u8; 6], dst: [u8; 6], seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    PacketBuilder::ethernet2(src, dst)
        .ipv4([10, 1, 0, 10], [10, 1, 0, 20], 64)
        .tcp(40_000, 2575, seq, 65_535)
        .ack(1)
        .write(&mut buf, payload)
        .unwrap();
    buf
}

/// An ARP reply announcing `mac` at `ip` (a gratuitous ARP): one device per distinct MAC.
pub fn arp_frame(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f.push(6);
    f.push(4);
    f.extend_from_slice(&2u16.to_be_bytes()); // reply
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip);
    f
}

/// An HL7 v2 ORU message in an MLLP frame, with the patient canary in PID-5 and an MRN in
/// PID-3.
pub fn hl7_mllp(control_id: u32) -> Vec<u8> {
    let msg = format!(
        "MSH|^~\\&|MONITOR|ICU|EMR|HOSP|20240101120000||ORU^R01|{control_id}|P|2.6\r\
         PID|1||{MRN}^^^H||{FAMILY}^{GIVEN}||19700101|F\r\
         OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F\r"
    );
    let mut m = vec![0x0b];
    m.extend_from_slice(msg.as_bytes());
    m.extend_from_slice(&[0x1c, 0x0d]);
    m
}

/// Patient canary parts placed in [`hl7_mllp`].
pub const MRN: &str = "MRN98765";
/// Family name canary.
pub const FAMILY: &str = "CANARYFAMILY";
/// Given name canary.
pub const GIVEN: &str = "CANARYGIVEN";

/// Asserts that `text` carries no patient canary, as text or as bytes in any usual
/// rendering: decimal lists (`67, 65, 78` and `67,65,78`), hex (`43414e`, `43 41 4e`,
/// `0x43, 0x41`, `\x43\x41`), and no long run of numbers that could be a byte dump at all.
pub fn assert_no_patient_bytes(what: &str, text: &str) {
    let lower = text.to_ascii_lowercase();
    for canary in [MRN, FAMILY, GIVEN, "CANARY", "98765"] {
        assert!(
            !lower.contains(&canary.to_ascii_lowercase()),
            "canary {canary:?} found in {what}"
        );
        let b = canary.as_bytes();
        let renderings = [
            b.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            b.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
            b.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            b.iter().map(|x| format!("{x:02x}")).collect::<String>(),
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
            b.iter()
                .map(|x| format!("0x{x:02x}"))
                .collect::<Vec<_>>()
                .join(", "),
            b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>(),
        ];
        for r in renderings {
            assert!(
                !lower.contains(&r),
                "canary {canary:?} rendered as {r:?} found in {what}"
            );
        }
    }
    // Any run of 8 or more numbers separated by commas/spaces is a byte dump.
    let mut run = 0;
    for token in lower.split(|c: char| c == ',' || c.is_whitespace()) {
        if token.is_empty() {
            continue;
        }
        let t = token.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')');
        if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) && t.len() <= 3 {
            run += 1;
            assert!(run < 8, "a byte-list dump in {what}: …{token}…");
        } else {
            run = 0;
        }
    }
}
