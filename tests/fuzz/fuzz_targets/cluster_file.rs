//! Fuzz target `cluster_file`: see `tessera_tests::fuzz::cluster_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::cluster_file(data));
