//! Hostile-input properties on real bytes: every truncation and random mutation of every
//! fixture frame, and of every fixture TCP stream, returns a value or an error and never panics.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ward_protocols::dissect::Dissector;
use ward_protocols::frame;
use ward_protocols::fuzz_harness;
use ward_tests::{fixture_path, frames, manifest, tcp_streams};

fn all_frames() -> Vec<(frame::LinkType, Vec<u8>)> {
    manifest()
        .fixtures
        .iter()
        .flat_map(|fx| frames(&fixture_path(&fx.file)))
        .collect()
}

fn all_streams() -> Vec<Vec<u8>> {
    manifest()
        .fixtures
        .iter()
        .flat_map(|fx| tcp_streams(&fixture_path(&fx.file)))
        .collect()
}

#[test]
fn every_truncation_of_every_fixture_frame() {
    let frames = all_frames();
    assert!(frames.len() > 100);
    let mut d = Dissector::default();
    let mut out = Vec::new();
    for (link, bytes) in &frames {
        for n in 0..=bytes.len() {
            if let Ok(f) = frame::decode(*link, &bytes[..n]) {
                d.process(0, &f, &mut out);
            }
        }
    }
}

#[test]
fn every_truncation_of_every_fixture_stream() {
    let streams = all_streams();
    assert!(streams.len() > 10);
    for s in &streams {
        // Cut points: every byte for short streams, a stride for long ones (linear total work).
        let step = (s.len() / 512).max(1);
        for n in (0..=s.len()).step_by(step) {
            let cut = &s[..n];
            fuzz_harness::dicom(&chunked(cut));
            fuzz_harness::hl7(&chunked(cut));
        }
    }
}

/// Re-frames a stream for the harness: one selector byte (chunk of up to 128 bytes, same side)
/// before each chunk.
fn chunked(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 100 + 1);
    for c in s.chunks(100) {
        out.push(((c.len() - 1) as u8) << 1);
        out.extend_from_slice(c);
    }
    out
}

#[test]
fn random_mutations_of_fixture_frames() {
    let frames = all_frames();
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    let n = frames.len();
    runner
        .run(
            &(
                0..n,
                proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            ),
            |(i, edits)| {
                let (link, mut bytes) = frames[i].clone();
                for (pos, val) in edits {
                    if !bytes.is_empty() {
                        let p = pos % bytes.len();
                        bytes[p] = val;
                    }
                }
                let mut d = Dissector::default();
                let mut out = Vec::new();
                if let Ok(f) = frame::decode(link, &bytes) {
                    d.process(0, &f, &mut out);
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn random_mutations_of_fixture_streams() {
    let streams: Vec<_> = all_streams()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        ..Config::default()
    });
    let n = streams.len();
    runner
        .run(
            &(
                0..n,
                proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16),
                1usize..300,
            ),
            |(i, edits, chunk)| {
                let mut s = streams[i].clone();
                s.truncate(20_000);
                for (pos, val) in edits {
                    let p = pos % s.len();
                    s[p] = val;
                }
                let mut framed = Vec::new();
                for c in s.chunks(chunk.min(128)) {
                    framed.push(((c.len() - 1) as u8) << 1);
                    framed.extend_from_slice(c);
                }
                fuzz_harness::dicom(&framed);
                fuzz_harness::hl7(&framed);
                fuzz_harness::dhcp(&s);
                Ok(())
            },
        )
        .unwrap();
}
