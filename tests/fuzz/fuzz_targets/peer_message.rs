//! Fuzz target `peer_message`: see `tessera_tests::fuzz::peer_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::peer_message(data));
