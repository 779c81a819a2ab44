//! The MPC engine: every protocol's operations revealed and compared with a plaintext reference
//! (exact in the ring for ring operations, within a bound stated and justified next to each
//! fixed-point test), what one server sees of an input, who a reveal reaches, and the
//! communication each operation costs. One test binary, one module per protocol.

mod aby3;
mod pond;

use std::sync::Arc;

use tessera_aggregator::mpc::Session;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::RingTensor;

/// A session over the in-memory network.
pub type S = Arc<Session<MemoryNetwork>>;

/// Fractional bits of the fixed-point tests.
pub const F: u32 = 16;

/// A two-worker runtime, as on the CI machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A deterministic uniformly random ring tensor.
pub fn tensor(seed: u8, shape: &[usize]) -> RingTensor<u64> {
    Prg::new(&Seed([seed; 32]), 0).ring_tensor(shape)
}

/// Fixed-point encoding with [`F`] fractional bits.
pub fn enc(values: &[f64], shape: &[usize]) -> RingTensor<u64> {
    let v = values
        .iter()
        .map(|x| (x * (1u64 << F) as f64).round() as i64 as u64)
        .collect();
    RingTensor::from_vec(shape, v).unwrap()
}

/// Fixed-point decoding with [`F`] fractional bits.
pub fn dec(x: &RingTensor<u64>) -> Vec<f64> {
    x.as_slice()
        .iter()
        .map(|v| *v as i64 as f64 / (1u64 << F) as f64)
        .collect()
}

/// Deterministic pseudo-random reals in `[lo, hi)`.
pub fn reals(seed: u8, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    tensor(seed, &[n])
        .as_slice()
        .iter()
        .map(|v| lo + (hi - lo) * ((*v >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}
