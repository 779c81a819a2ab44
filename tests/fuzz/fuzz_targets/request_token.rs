//! Fuzz target `request_token`: see `tessera_tests::fuzz::request_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::request_token(data));
