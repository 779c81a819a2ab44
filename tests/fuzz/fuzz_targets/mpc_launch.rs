//! Fuzz target `mpc_launch`: see `tessera_tests::fuzz::mpc_launch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_tests::fuzz::mpc_launch(data));
