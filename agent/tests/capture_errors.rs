//! Damaged captures through the real `ward-agent read` (issue 12, findings 1 and 14): every
//! error or warning names the file, the byte offset and what was wrong, and none carries a
//! byte of the capture's content in any encoding; packets of an interface the capture never
//! described are counted and reported, not dropped silently.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

const SRC: [u8; 6] = [0x02, 0x57, 0x41, 0x52, 0x44, 0x31];
const DST: [u8; 6] = [0x02, 0x57, 0x41, 0x52, 0x44, 0x32];

struct Run {
    out: Output,
    /// stdout + stderr + the JSON-lines file.
    all: String,
    jsonl: String,
}

/// Runs `ward-agent read FILE` at debug level (every way of asking for it) with JSON-lines
/// output, text logs and a spool directory in `dir`.
fn read(dir: &Path, file: &Path, log_format: &str) -> Run {
    let jsonl = dir.join(format!("out-{log_format}.jsonl"));
    let out = Command::new(AGENT)
        .arg("read")
        .arg(file)
        .args(["--output", &format!("jsonl:{}", jsonl.display())])
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args(["--log-level", "trace", "--log-format", log_format])
        .env("RUST_LOG", "trace")
        .env("WARD_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .env_remove("WARD_CONFIG")
        .output()
        .unwrap();
    let jsonl = std::fs::read_to_string(&jsonl).unwrap_or_default();
    let all = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        jsonl
    );
    Run { out, all, jsonl }
}

fn stderr(r: &Run) -> String {
    String::from_utf8_lossy(&r.out.stderr).into_owned()
}

/// A pcapng whose second EPB declares a block length of 8, followed by HL7 frames carrying a
/// patient name and MRN: pcap-parser's error for it holds the rest of its buffer.
#[test]
fn damaged_block_error_carries_no_packet_bytes_and_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cap = shb();
    cap.extend(idb());
    cap.extend(epb(0, 1_000_000, &tcp_frame(SRC, DST, 1, &hl7_mllp(1))));
    let damaged_at = cap.len();
    // Block type EPB, block length 8: shorter than any EPB can be.
    cap.extend_from_slice(&6u32.to_le_bytes());
    cap.extend_from_slice(&8u32.to_le_bytes());
    let mut seq = 1000;
    for i in 0..200 {
        let m = hl7_mllp(100 + i);
        cap.extend(epb(
            0,
            2_000_000 + u64::from(i),
            &tcp_frame(SRC, DST, seq, &m),
        ));
        seq += m.len() as u32;
    }
    let file = dir.path().join("damaged-epb.pcapng");
    std::fs::write(&file, &cap).unwrap();
    for format in ["text", "json"] {
        let r = read(dir.path(), &file, format);
        assert!(!r.out.status.success(), "a damaged block must fail the run");
        assert_no_patient_bytes(&format!("ward-agent read output ({format} logs)"), &r.all);
        let err = stderr(&r);
        assert!(
            err.len() < 16 * 1024,
            "{} bytes of stderr for one damaged block",
            err.len()
        );
        assert!(
            err.contains(&file.display().to_string()),
            "error does not name the file: {err}"
        );
        assert!(
            err.contains(&format!("byte offset {damaged_at}")),
            "error does not give the block's offset {damaged_at}: {err}"
        );
        // What was read before the damage is still published.
        assert!(
            r.jsonl.contains("mac:02:57:41:52:44:31"),
            "devices read before the damage were not flushed: {}",
            r.jsonl
        );
    }
}

#[test]
fn truncated_header_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.pcap");
    std::fs::write(&file, &pcap_header()[..10]).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(!r.out.status.success());
    let err = stderr(&r);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("byte offset 10"), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn bad_magic_names_file_and_offset_without_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-capture.pcap");
    // An HL7 message where a capture header should be.
    let mut bytes = hl7_mllp(7);
    bytes.extend(hl7_mllp(8));
    std::fs::write(&file, &bytes).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(!r.out.status.success());
    assert_no_patient_bytes("bad magic output", &r.all);
    let err = stderr(&r);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("byte offset 0"), "{err}");
    assert!(err.contains("magic"), "{err}");
}

#[test]
fn truncated_pcap_record_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cap = pcap_header();
    cap.extend(pcap_record(1_000_000, &arp_frame(SRC, [10, 1, 0, 10])));
    let cut_at = cap.len();
    let last = pcap_record(2_000_000, &tcp_frame(SRC, DST, 1, &hl7_mllp(3)));
    cap.extend_from_slice(&last[..last.len() - 20]);
    let file = dir.path().join("cut.pcap");
    std::fs::write(&file, &cap).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(r.out.status.success(), "{}", stderr(&r));
    assert_no_patient_bytes("truncated record output", &r.all);
    let err = stderr(&r);
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&format!("byte offset {cut_at}")), "{err}");
}

#[test]
fn truncated_pcapng_block_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cap = shb();
    cap.extend(idb());
    cap.extend(epb(0, 1_000_000, &arp_frame(SRC, [10, 1, 0, 10])));
    let cut_at = cap.len();
    let last = epb(0, 2_000_000, &tcp_frame(SRC, DST, 1, &hl7_mllp(3)));
    cap.extend_from_slice(&last[..last.len() - 30]);
    let file = dir.path().join("cut.pcapng");
    std::fs::write(&file, &cap).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(r.out.status.success(), "{}", stderr(&r));
    assert_no_patient_bytes("truncated block output", &r.all);
    let err = stderr(&r);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&format!("byte offset {cut_at}")), "{err}");
}

/// An EPB naming an interface the section never described cannot be decoded; it is counted
/// and the first one's offset logged, and the packets around it are still read.
#[test]
fn out_of_range_interface_id_is_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let a = [0x02, 0, 0, 0, 0, 0x0a];
    let b = [0x02, 0, 0, 0, 0, 0x0b];
    let c = [0x02, 0, 0, 0, 0, 0x0c];
    let mut cap = shb();
    cap.extend(idb());
    cap.extend(epb(0, 1_000_000, &arp_frame(a, [10, 1, 0, 1])));
    let bad_at = cap.len();
    cap.extend(epb(7, 2_000_000, &arp_frame(b, [10, 1, 0, 2])));
    cap.extend(epb(3, 2_500_000, &arp_frame(b, [10, 1, 0, 2])));
    cap.extend(epb(0, 3_000_000, &arp_frame(c, [10, 1, 0, 3])));
    let file = dir.path().join("bad-interface.pcapng");
    std::fs::write(&file, &cap).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(r.out.status.success(), "{}", stderr(&r));
    let err = stderr(&r);
    assert!(r.jsonl.contains("mac:02:00:00:00:00:0a"), "{}", r.jsonl);
    assert!(r.jsonl.contains("mac:02:00:00:00:00:0c"), "{}", r.jsonl);
    let line = err
        .lines()
        .find(|l| l.contains("interface") && l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning about the unknown interface: {err}"));
    assert!(line.contains(&format!("byte offset {bad_at}")), "{line}");
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains("packets=2"), "{line}");
}

/// A block larger than the initial 256 KiB buffer (a GRO super-frame with a large snap
/// length) is read, not reported as damage.
#[test]
fn block_larger_than_the_initial_buffer_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut cap = shb();
    cap.extend(idb());
    let mut big = arp_frame(SRC, [10, 1, 0, 10]);
    big.resize(300 * 1024, 0);
    cap.extend(epb(0, 1_000_000, &big));
    cap.extend(epb(0, 2_000_000, &arp_frame(DST, [10, 1, 0, 11])));
    let file = dir.path().join("big.pcapng");
    std::fs::write(&file, &cap).unwrap();
    let r = read(dir.path(), &file, "text");
    assert!(r.out.status.success(), "{}", stderr(&r));
    assert!(r.jsonl.contains("mac:02:57:41:52:44:31"), "{}", r.jsonl);
    assert!(r.jsonl.contains("mac:02:57:41:52:44:32"), "{}", r.jsonl);
}
