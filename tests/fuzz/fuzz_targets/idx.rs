//! Fuzz target `idx`: see `tessera_tests::fuzz::idx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::idx(data));
