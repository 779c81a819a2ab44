//! Fuzz target `grpc_messages`: see `tessera_tests::fuzz::grpc_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::grpc_messages(data));
