//! Shared by the agent's integration tests: pcap and pcapng files written byte by byte and the
//! frames that go in them; the patient-canary scanner (`ward_canary`) loaded with every canary
//! these tests put on the wire; the spool read back. Ports leased so tests running in parallel
//! (in this process or another) never collide, and waits on state instead of sleeps, are
//! `ward_testkit`'s, re-exported here.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use etherparse::PacketBuilder;
use ward_canary::{Kind, Scanner};
// Re-exported for the test files; each uses only some, as with the rest of this module.
#[allow(unused_imports)]
pub use ward_testkit::{assert_no_byte_dump, fixtures, lease_port, public_captures, wait_until};

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
pub const MRN: &str = "MRN40213857";
/// Family name canary.
pub const FAMILY: &str = "CANARYFAMILY";
/// Given name canary.
pub const GIVEN: &str = "CANARYGIVEN";

/// The date of birth in [`hl7_mllp`]'s PID-7.
pub const BIRTH_DATE: &str = "19700101";

/// Every canary of the fixture manifest and of [`hl7_mllp`] (family and given name, MRN, date of
/// birth): what every output of these tests is scanned for.
pub fn scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        Scanner::fixtures()
            .with(
                "agent/tests/common hl7_mllp",
                Kind::Name,
                &format!("{FAMILY}^{GIVEN}"),
            )
            .with("agent/tests/common hl7_mllp", Kind::Identifier, MRN)
            .with("agent/tests/common hl7_mllp", Kind::Identifier, &MRN[3..])
            .with("agent/tests/common hl7_mllp", Kind::Date, BIRTH_DATE)
    })
}

/// Asserts that `text` carries no patient canary in any encoding ([`scanner`]), and no long
/// run of small numbers (a byte dump of anything: a dump of non-canary patient bytes is a leak
/// the canaries alone would not show).
pub fn assert_no_patient_bytes(what: &str, text: &str) {
    scanner().assert_clean(what, text);
    assert_no_byte_dump(what, text);
}

/// One message read back from a spool file (`agent/src/output/spool.rs` format): topic and
/// payload.
pub fn read_spool_file(path: &Path) -> Option<(String, Vec<u8>)> {
    let b = std::fs::read(path).ok()?;
    if b.get(..8)? != b"WARDSPL1" {
        return None;
    }
    let tl = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    let pl = u32::from_le_bytes(b.get(12..16)?.try_into().ok()?) as usize;
    let topic = String::from_utf8(b.get(20..20 + tl)?.to_vec()).ok()?;
    let payload = b.get(20 + tl..20 + tl + pl)?.to_vec();
    Some((topic, payload))
}

/// The `.msg` files of a spool directory, sorted.
pub fn spool_messages(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "msg"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Device keys (`"key"` of every device) in an observation payload.
pub fn device_keys_of(payload: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    v["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
