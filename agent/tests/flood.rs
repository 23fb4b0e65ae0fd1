//! Floods of new MACs and new flows keep memory bounded: the device and flow tables evict
//! least-recently-seen entries at their caps, and the process RSS stays under a documented
//! bound (`RSS_BOUND_MB`) after 1 M random MACs and 1 M TCP flows.

use etherparse::PacketBuilder;
use ward_agent::engine::{Engine, EngineConfig};
use ward_agent::rules::RuleSet;
use ward_protocols::frame::LinkType;

/// Documented bound for the default limits (100 000 devices, 65 536 flows); see README.
const RSS_BOUND_MB: u64 = 440;

fn rss_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096 / (1024 * 1024)
}

/// xorshift: deterministic "random" MACs without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn one_million_macs_and_one_million_flows_stay_bounded() {
    let cfg = EngineConfig::default();
    let mut engine = Engine::new(cfg, RuleSet::bundled().unwrap());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = Vec::with_capacity(128);
    let before = rss_mb();
    for i in 0..1_000_000u64 {
        let r = next(&mut rng);
        let mut mac = r.to_be_bytes();
        mac[0] &= 0xfe; // unicast
        let src: [u8; 6] = mac[..6].try_into().unwrap();
        buf.clear();
        // Each frame: a new MAC and a new TCP flow carrying a few bytes that match no decoder
        // yet, so the flow is kept (the worst case for the flow table).
        PacketBuilder::ethernet2(src, [0, 0x12, 0x21, 0, 0, 1])
            .ipv4(
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                [10, 255, 0, 1],
                64,
            )
            .tcp(1024 + (r >> 48) as u16 % 60000, 443, r as u32, 1024)
            .write(&mut buf, &[0x01])
            .unwrap();
        engine.process(i as i64 * 10, Some(LinkType::Ethernet), &buf);
        if i % 100_000 == 0 {
            // Deltas are cut periodically in the agent; do the same so dirty lists stay small.
            while !engine.take_changes(500).is_empty() {}
        }
    }
    let s = engine.stats();
    let after = rss_mb();
    eprintln!(
        "rss before {before} MB, after {after} MB; devices {} (evicted {}), flows {} (evicted {}), engine memory {} MB",
        s.devices.devices,
        s.devices.evicted,
        s.dissect.flows_active,
        s.dissect.flows_evicted,
        engine.memory() / (1024 * 1024)
    );
    assert_eq!(s.devices.devices as usize, cfg.devices.max_devices);
    assert!(s.devices.evicted >= 1_000_000 - cfg.devices.max_devices as u64);
    assert!(s.dissect.flows_active as usize <= cfg.dissector.max_flows);
    assert!(s.dissect.flows_evicted >= 1_000_000 - cfg.dissector.max_flows as u64);
    assert!(
        after < RSS_BOUND_MB,
        "RSS {after} MB exceeds the documented {RSS_BOUND_MB} MB"
    );
}
