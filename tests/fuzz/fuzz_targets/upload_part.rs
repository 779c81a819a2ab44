//! Fuzz target `upload_part`: see `tessera_tests::fuzz::upload_part`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::upload_part(data));
