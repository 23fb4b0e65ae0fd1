//! Entry points shared by the `fuzz/` targets and the corpus replay test, so CI replays exactly
//! what the fuzzer ran. Each takes arbitrary bytes and must return without panicking; the
//! `assert!`s state invariants a fuzzer should report when broken.

use crate::dissect::{Dissector, DissectorConfig};
use crate::frame::{self, LinkType};
use crate::reassembly::{HalfStream, ReassemblyConfig};
use crate::registry::{Decode, REGISTRY};
use crate::{dhcp, dicom, hl7, tls, Direction, Fact, Feed, StreamDecoder};

const LINKS: [LinkType; 5] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Null,
];

/// Splits `data` into frames: a 2-byte big-endian length before each.
fn records(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    core::iter::from_fn(move || {
        let (len, rest) = data.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
        let (rec, rest) = rest.split_at_checked(len.min(rest.len()))?;
        data = rest;
        Some(rec)
    })
}

/// First byte picks the link type; the rest is a sequence of length-prefixed frames run through
/// one dissector (so flows span frames).
pub fn frames(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS
        .get(usize::from(sel) % LINKS.len())
        .copied()
        .unwrap_or(LinkType::Ethernet);
    let mut d = Dissector::new(DissectorConfig {
        max_flows: 8,
        ..DissectorConfig::default()
    });
    let mut out = Vec::new();
    for (i, rec) in records(rest).enumerate() {
        if let Ok(f) = frame::decode(link, rec) {
            d.process(i as i64, &f, &mut out);
        }
    }
    assert!(d.stats().flows_active <= 8);
}

/// Ops of 7-byte headers (kind, seq u32, len u16) followed by `len` payload bytes.
pub fn reassembly(data: &[u8]) {
    let cfg = ReassemblyConfig {
        prefix_limit: 4096,
        reorder_window: 2048,
        max_pending_segments: 8,
        max_pending_bytes: 2048,
    };
    let mut h = HalfStream::new(cfg);
    let mut rest = data;
    while let Some((hdr, tail)) = rest.split_at_checked(7) {
        let [kind, s0, s1, s2, s3, l0, l1] = <[u8; 7]>::try_from(hdr).unwrap_or([0; 7]);
        let seq = u32::from_be_bytes([s0, s1, s2, s3]);
        let len = usize::from(u16::from_be_bytes([l0, l1])).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        match kind % 4 {
            0 => h.on_syn(seq),
            1 => {
                h.on_data(seq, payload, false);
            }
            2 => {
                h.on_data(seq, payload, true);
            }
            _ => {
                let n = usize::from(kind) % (h.data().len() + 1);
                h.consume(n);
            }
        }
        assert!(h.data().len() <= cfg.prefix_limit);
        assert!(h.memory() <= 64 * 1024);
    }
}

/// Feeds `data` to a stream decoder in chunks whose sizes come from the data itself,
/// alternating direction on each chunk whose selector byte is odd, through a real
/// [`HalfStream`] per direction so consumption and the limit behave as in the dissector.
fn stream<D: StreamDecoder + Default>(data: &[u8]) -> usize {
    stream_with(&mut D::default(), data)
}

fn stream_with(dec: &mut dyn StreamDecoder, data: &[u8]) -> usize {
    let cfg = ReassemblyConfig {
        prefix_limit: 16 * 1024,
        ..ReassemblyConfig::default()
    };
    let mut halves = [HalfStream::new(cfg), HalfStream::new(cfg)];
    let mut seqs = [0u32, 0u32];
    let mut facts: Vec<Fact> = Vec::new();
    let mut rest = data;
    let mut side = 0usize;
    while let Some((&sel, tail)) = rest.split_first() {
        let len = (usize::from(sel >> 1) + 1).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        if sel & 1 == 1 {
            side = 1 - side;
        }
        let (Some(h), Some(seq)) = (halves.get_mut(side), seqs.get_mut(side)) else {
            return facts.len();
        };
        h.on_data(*seq, chunk, false);
        *seq = seq.wrapping_add(chunk.len() as u32);
        if h.data().is_empty() {
            continue;
        }
        let dir = if side == 0 {
            Direction::FromClient
        } else {
            Direction::FromServer
        };
        let offered = h.data().len();
        match dec.feed(dir, h.data(), h.at_limit(), &mut facts) {
            Feed::Consumed(n) => {
                assert!(n <= offered, "consumed {n} of {offered}");
                h.consume(n);
            }
            Feed::Done => h.finish(crate::reassembly::Stop::DecoderDone),
        }
    }
    for f in &facts {
        assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
    }
    facts.len()
}

/// DICOM Upper Layer decoder over arbitrary chunked bytes, plus the structure probe.
pub fn dicom(data: &[u8]) {
    let _ = dicom::looks_like_dicom(data);
    stream::<dicom::DicomDecoder>(data);
}

/// HL7/MLLP decoder over arbitrary chunked bytes, plus the probes.
pub fn hl7(data: &[u8]) {
    let _ = hl7::looks_like_hl7(data);
    let _ = hl7::find_mllp_start(data);
    stream::<hl7::Hl7Decoder>(data);
}

/// DHCP message extraction.
pub fn dhcp(data: &[u8]) {
    let mut facts = Vec::new();
    let _ = dhcp::extract(data, &mut facts);
}

/// TLS handshake decoder over arbitrary chunked bytes, plus the probe; the same bytes as a
/// ClientHello body and as a Certificate message body (the X.509 parser's input).
pub fn tls(data: &[u8]) {
    let _ = tls::probe(data);
    stream::<tls::TlsDecoder>(data);
    let mut facts = Vec::new();
    let _ = tls::client_hello_facts(data, &mut facts);
    let _ = tls::certificate_facts(data, &mut facts);
    for f in &facts {
        assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
    }
}

/// Any registered decoder: the first byte picks the [`REGISTRY`] entry, the rest goes to its
/// probe and resync, then to its stream decoder (chunked as for the per-protocol targets) or
/// its datagram decoder. One target covers every protocol, including ones added later.
pub fn app(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Some(app) = REGISTRY.get(usize::from(sel) % REGISTRY.len().max(1)) else {
        return;
    };
    let _ = (app.probe)(rest);
    if let Some(resync) = app.resync {
        if let Some(pos) = resync(rest) {
            assert!(pos <= rest.len());
        }
    }
    match app.decode {
        Decode::Stream(new) => {
            let mut dec = new();
            stream_with(dec.as_mut(), rest);
        }
        Decode::Datagram { decode, direction } => {
            let mut facts = Vec::new();
            let _ = decode(rest, &mut facts);
            let _ = direction(rest);
            for f in &facts {
                assert_eq!(f.field.protocol(), app.protocol);
                assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
            }
        }
        Decode::Link { decode, .. } => {
            let mut facts = Vec::new();
            let _ = decode(rest, &mut facts);
            for f in &facts {
                assert_eq!(f.field.protocol(), app.protocol);
                assert!(f.value.chars().count() <= crate::evidence::MAX_VALUE_CHARS);
            }
        }
    }
}
