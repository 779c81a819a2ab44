//! Fuzz target `peer_frame`: see `tessera_tests::fuzz::peer_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::peer_frame(data));
