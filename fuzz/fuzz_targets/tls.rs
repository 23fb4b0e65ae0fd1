#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_protocols::fuzz_harness::tls(data));
