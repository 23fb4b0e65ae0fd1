#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_collector::fuzz_harness::eox(data));
