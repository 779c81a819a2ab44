//! Fuzz target `onnx`: see `tessera_tests::fuzz::onnx`.
//!
//! The ONNX reader (onnx-ir) panics on some inputs; the importer catches that panic and returns
//! `OnnxError::ReaderFailed`. libfuzzer-sys's panic hook aborts on every panic, caught or not, so
//! this target installs a quiet hook: a panic the importer does not catch still aborts, through
//! libfuzzer-sys's own `catch_unwind` around each input.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| tessera_tests::fuzz::onnx(data)
);
