//! Fuzz target `csv`: see `tessera_tests::fuzz::csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::csv(data));
