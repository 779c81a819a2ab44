//! The MPC engine: every protocol's operations revealed and compared with a plaintext reference
//! (exact in the ring for ring operations, within a bound stated and justified next to each
//! fixed-point test), what one server sees of an input, who a reveal reaches, and the
//! communication each operation costs. One test binary, one module per protocol.

mod aby3;
mod dp_sgd;
mod graph;
mod grpc;
mod io;
mod layers;
mod model;
mod onnx;
mod onnx_graph;
mod pond;
mod robust;
mod securenn;
mod service;
mod service_refusals;
mod train;
mod train_job;
mod views;

use std::sync::Arc;

use futures::future::BoxFuture;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::RingTensor;
use tessera_mpc::harness::run_local;
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_mpc::{MpcError, Session};

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

/// A protocol bound to a test session with [`F`] fractional bits.
pub trait Make: Protocol<Elem = u64> + Sized + 'static {
    /// Binds `s`.
    fn make(s: S) -> Self;
}

impl Make for Pond<MemoryNetwork> {
    fn make(s: S) -> Self {
        Pond::new(s, F).expect("valid fractional bits")
    }
}

impl Make for SecureNn<MemoryNetwork> {
    fn make(s: S) -> Self {
        SecureNn::new(s, F).expect("valid fractional bits")
    }
}

impl Make for Aby3<MemoryNetwork> {
    fn make(s: S) -> Self {
        Aby3::new(s, F).expect("valid fractional bits")
    }
}

/// Pond on the in-memory network.
pub type PondM = Pond<MemoryNetwork>;
/// SecureNN on the in-memory network.
pub type SecureNnM = SecureNn<MemoryNetwork>;
/// ABY3 on the in-memory network.
pub type Aby3M = Aby3<MemoryNetwork>;

/// A secure program under test: shared inputs in, one shared result out.
pub type Prog<P> = Arc<
    dyn Fn(
            Arc<P>,
            Vec<<P as Protocol>::Tensor>,
        ) -> BoxFuture<'static, Result<<P as Protocol>::Tensor, MpcError>>
        + Send
        + Sync,
>;

/// Builds a [`Prog`] for protocol `$P` from `|p, v| body` (`p: Arc<$P>`, `v` the shared inputs).
#[macro_export]
macro_rules! prog {
    ($P:ty, |$p:ident, $v:ident| $body:expr) => {{
        let f: $crate::Prog<$P> = std::sync::Arc::new(
            move |$p: std::sync::Arc<$P>,
                  $v: Vec<<$P as tessera_mpc::protocol::Protocol>::Tensor>| {
                Box::pin(async move { $body })
                    as futures::future::BoxFuture<
                        'static,
                        Result<
                            <$P as tessera_mpc::protocol::Protocol>::Tensor,
                            tessera_mpc::MpcError,
                        >,
                    >
            },
        );
        f
    }};
}

/// Shares input `i` from server `i % 3`, runs `program` under protocol `P`, reveals the result
/// to server 1 only (and checks that nobody else got it).
pub fn try_run<P: Make>(
    inputs: Vec<RingTensor<P::Elem>>,
    program: Prog<P>,
) -> Result<RingTensor<P::Elem>, MpcError> {
    let outs = runtime().block_on(run_local(3, move |s: S| {
        let (inputs, program) = (inputs.clone(), Arc::clone(&program));
        async move {
            let p = Arc::new(P::make(s));
            let me = p.me();
            let mut shared = Vec::new();
            for (i, x) in inputs.iter().enumerate() {
                let owner = i % 3;
                shared.push(
                    p.share(owner, (me == owner).then_some(x), x.shape())
                        .await?,
                );
            }
            let z = program(Arc::clone(&p), shared).await?;
            p.reveal(&z, 1).await
        }
    }))?;
    assert!(
        outs[0].is_none() && outs[2].is_none(),
        "only server1 receives"
    );
    Ok(outs[1].clone().expect("server1 receives"))
}

/// [`try_run`], expecting success.
pub fn run<P: Make>(inputs: Vec<RingTensor<P::Elem>>, program: Prog<P>) -> RingTensor<P::Elem> {
    try_run(inputs, program).expect("secure program")
}

/// Signed view of ring elements.
pub fn signed(x: &RingTensor<u64>) -> Vec<i64> {
    x.as_slice().iter().map(|v| *v as i64).collect()
}

/// Random signed integers with `|x| < 2^bits`.
pub fn ints(seed: u8, n: usize, bits: u32) -> RingTensor<u64> {
    tensor(seed, &[n]).map(|v| ((v as i64) >> (64 - bits - 1)) as u64)
}
