//! Writes the cargo-fuzz seed corpus from the fixture captures and the protocols test data, in
//! the input formats of `ward_protocols::fuzz_harness`:
//!
//! ```sh
//! cargo run -p ward-tests --bin make-fuzz-seeds -- fuzz/corpus
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use ward_protocols::frame::LinkType;
use ward_tests::{fixtures_dir, frames, public_captures_dir, tcp_streams};

fn link_selector(l: LinkType) -> u8 {
    match l {
        LinkType::Ethernet => 0,
        LinkType::LinuxSll => 1,
        LinkType::LinuxSll2 => 2,
        LinkType::RawIp => 3,
        LinkType::Null => 4,
    }
}

/// One selector byte (chunk length, same side) before each ≤128-byte chunk.
fn chunked(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in s.chunks(128) {
        out.push(((c.len() - 1) as u8) << 1);
        out.extend_from_slice(c);
    }
    out
}

fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [fixtures_dir(), public_captures_dir()] {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/testdata");
    let mut n = 0;
    for cap in captures() {
        let stem = cap.file_stem().unwrap().to_string_lossy().into_owned();
        // frame: the capture's first 64 frames, length-prefixed, after the link selector.
        let fr = frames(&cap);
        if let Some((link, _)) = fr.first() {
            let mut seed = vec![link_selector(*link)];
            for (_, f) in fr.iter().take(64) {
                let f = &f[..f.len().min(u16::MAX as usize)];
                seed.extend_from_slice(&(f.len() as u16).to_be_bytes());
                seed.extend_from_slice(f);
            }
            write(&out.join("frame"), &format!("{stem}.seed"), &seed);
            n += 1;
        }
        for (i, s) in tcp_streams(&cap).iter().enumerate() {
            let s = &s[..s.len().min(16 * 1024)];
            let target = if stem.to_ascii_lowercase().contains("hl7") {
                "hl7"
            } else {
                "dicom"
            };
            write(&out.join(target), &format!("{stem}-{i}.seed"), &chunked(s));
            // reassembly: the same bytes as out-of-order segments (kind 1) after a SYN (kind 0).
            let mut ops = vec![0u8, 0, 0, 0, 0, 0, 0];
            let segs: Vec<_> = s.chunks(300).take(12).enumerate().collect();
            for (j, c) in segs.iter().rev() {
                ops.push(1);
                ops.extend_from_slice(&(1 + (*j as u32) * 300).to_be_bytes());
                ops.extend_from_slice(&(c.len() as u16).to_be_bytes());
                ops.extend_from_slice(c);
            }
            write(&out.join("reassembly"), &format!("{stem}-{i}.seed"), &ops);
            n += 2;
        }
    }
    for (sub, target) in [("dicom", "dicom"), ("hl7", "hl7")] {
        let Ok(rd) = fs::read_dir(testdata.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("bin") {
                let data = fs::read(&p).unwrap();
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                write(
                    &out.join(target),
                    &format!("testdata-{name}.seed"),
                    &chunked(&data[..data.len().min(16 * 1024)]),
                );
                n += 1;
            }
        }
    }
    // app: the link-layer decoders' captured payloads after their registry selector (LLDP 12,
    // CDP 13), named `<protocol>-<testdata stem>-sel<n>.seed`.
    for (sub, sel) in [("lldp", 12u8), ("cdp", 13u8)] {
        let Ok(rd) = fs::read_dir(testdata.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("bin") {
                let mut seed = vec![sel];
                seed.extend_from_slice(&fs::read(&p).unwrap());
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                write(
                    &out.join("app"),
                    &format!("{sub}-{name}-sel{sel}.seed"),
                    &seed,
                );
                n += 1;
            }
        }
    }
    // dhcp: every UDP 67/68 payload in the fixtures.
    for cap in captures() {
        let stem = cap.file_stem().unwrap().to_string_lossy().into_owned();
        for (i, (link, f)) in frames(&cap).iter().enumerate() {
            let Ok(fr) = ward_protocols::frame::decode(*link, f) else {
                continue;
            };
            if let ward_protocols::frame::Transport::Udp(u) = fr.transport {
                if [67, 68].contains(&u.src_port) {
                    write(&out.join("dhcp"), &format!("{stem}-{i}.seed"), u.payload);
                    n += 1;
                }
            }
        }
    }
    println!("wrote {n} seeds under {}", out.display());
}
