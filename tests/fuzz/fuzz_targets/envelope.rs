//! Fuzz target `envelope`: see `tessera_tests::fuzz::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::envelope(data));
