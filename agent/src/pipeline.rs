//! Offline pipeline: capture file → frames → evidence.

use std::io::Read;

use ward_protocols::dissect::{DissectStats, Dissector, DissectorConfig};
use ward_protocols::frame;
use ward_protocols::Evidence;

use crate::pcap::{read_packets, ReadError, ReadStats};

/// What reading one capture produced.
#[derive(Debug, Default)]
pub struct CaptureResult {
    /// Every evidence record, in capture order.
    pub evidence: Vec<Evidence>,
    /// Reader counters.
    pub read: ReadStats,
    /// Dissector counters.
    pub dissect: DissectStats,
    /// Frames whose link header could not be decoded.
    pub link_errors: u64,
}

/// Runs a whole capture through a fresh dissector.
pub fn evidence_from_capture<R: Read + Send>(
    input: R,
    cfg: DissectorConfig,
) -> Result<CaptureResult, ReadError> {
    let mut dissector = Dissector::new(cfg);
    let mut evidence = Vec::new();
    let mut link_errors = 0;
    let read = read_packets(input, |p| {
        let Some(link) = p.link else { return };
        match frame::decode(link, p.data) {
            Ok(f) => dissector.process(p.time_us, &f, &mut evidence),
            Err(_) => link_errors += 1,
        }
    })?;
    Ok(CaptureResult {
        evidence,
        read,
        dissect: dissector.stats(),
        link_errors,
    })
}
