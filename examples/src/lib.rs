//! Runnable Tessera examples and the benchmark suite behind the `bench` binary.

#![forbid(unsafe_code)]

pub mod bench;
pub mod private_predict;
