#![no_main]
// Any registered application decoder: the first byte picks the registry entry (issue 14).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_protocols::fuzz_harness::app(data));
