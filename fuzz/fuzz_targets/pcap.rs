#![no_main]
// The agent's pcap/pcapng reader on arbitrary bytes (`ward_agent::pcap::fuzz_read` checks its
// contract: packets inside the input, counts that add up, errors that point inside it and never
// quote it).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_agent::pcap::fuzz_read(data));
