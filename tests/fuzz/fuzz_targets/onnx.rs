//! Fuzz target `onnx`: see `tessera_tests::fuzz::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::onnx(data));
