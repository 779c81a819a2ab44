//! Fuzz target `model_file`: see `tessera_tests::fuzz::model_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::model_file(data));
