//! Pond in one process: every operation revealed and compared with the
//! plaintext computation (exact in the ring; truncation within its stated bound), what a server
//! sees of an input, and who a reveal reaches.

use std::sync::Arc;

use futures::future::BoxFuture;
use proptest::prelude::*;
use tessera_common::ring::RingTensor;
use tessera_mpc::MpcError;
use tessera_mpc::harness::run_local;
use tessera_mpc::nn;
use tessera_mpc::pond::{self, PondTensor};
use tessera_mpc::protocol::Pond;

use crate::{S, runtime, tensor};

/// A binary secure operation under test.
type BinaryOp = fn(
    S,
    PondTensor<u64>,
    PondTensor<u64>,
) -> BoxFuture<'static, Result<PondTensor<u64>, MpcError>>;

/// Shares `x` from server0 and `y` from server1, applies `f`, reveals to server0.
fn run_binary(x: RingTensor<u64>, y: RingTensor<u64>, f: BinaryOp) -> RingTensor<u64> {
    let outs = runtime()
        .block_on(run_local(3, move |s: S| {
            let (x, y) = (x.clone(), y.clone());
            async move {
                let me = s.me();
                let xs = pond::share_from(&s, 0, (me == 0).then_some(&x), x.shape()).await?;
                let ys = pond::share_from(&s, 1, (me == 1).then_some(&y), y.shape()).await?;
                let z = f(Arc::clone(&s), xs, ys).await?;
                pond::reveal_to(&s, &z, 0).await
            }
        }))
        .unwrap();
    assert!(
        outs[1].is_none() && outs[2].is_none(),
        "only server0 receives the output"
    );
    outs[0].clone().unwrap()
}

fn mul_op(
    s: S,
    x: PondTensor<u64>,
    y: PondTensor<u64>,
) -> BoxFuture<'static, Result<PondTensor<u64>, MpcError>> {
    Box::pin(async move { pond::mul(&s, &x, &y).await })
}

fn matmul_op(
    s: S,
    x: PondTensor<u64>,
    y: PondTensor<u64>,
) -> BoxFuture<'static, Result<PondTensor<u64>, MpcError>> {
    Box::pin(async move { pond::matmul(&s, &x, &y).await })
}

fn add_op(
    s: S,
    x: PondTensor<u64>,
    y: PondTensor<u64>,
) -> BoxFuture<'static, Result<PondTensor<u64>, MpcError>> {
    let _ = s;
    Box::pin(async move { x.add(&y.scale(3).neg()) })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn pond_mul_is_exact(n in 1usize..300, seed in any::<u8>()) {
        let (x, y) = (tensor(seed, &[n]), tensor(seed.wrapping_add(1), &[n]));
        prop_assert_eq!(run_binary(x.clone(), y.clone(), mul_op), x.mul(&y).unwrap());
    }

    #[test]
    fn pond_matmul_is_exact(m in 1usize..20, k in 1usize..40, n in 1usize..20, seed in any::<u8>()) {
        let (x, y) = (tensor(seed, &[m, k]), tensor(seed.wrapping_add(1), &[k, n]));
        prop_assert_eq!(run_binary(x.clone(), y.clone(), matmul_op), x.matmul(&y).unwrap());
    }

    #[test]
    fn pond_linear_ops_are_exact(n in 1usize..100, seed in any::<u8>()) {
        let (x, y) = (tensor(seed, &[n]), tensor(seed.wrapping_add(1), &[n]));
        let expected = x.sub(&y.scale(3)).unwrap();
        prop_assert_eq!(run_binary(x, y, add_op), expected);
    }
}

/// Fixed-point multiplication with truncation. Inputs in [-1000, 1000] with 16 fractional bits in
/// the 64-bit ring; the product has 32 fractional bits and magnitude below 2^52. The reference is
/// the exact product of the encoded inputs shifted right by 16, so the only error left is the
/// truncation's: SecureML's local truncation is within one unit (2^-16) of it except with
/// probability about |x*y| / 2^63 < 2^-11 per element (a wrap of the shares). Over 200 elements the
/// chance of more than two such failures is about 2e-4; the test allows two.
#[test]
fn pond_fixed_point_mul_truncates_within_one_ulp() {
    let fp = tessera_common::fixed::FixedPoint::new(16);
    let xs: Vec<f64> = (0..200).map(|i| (i as f64 * 7.31).sin() * 1000.0).collect();
    let ys: Vec<f64> = (0..200).map(|i| (i as f64 * 3.17).cos() * 1000.0).collect();
    let enc = |v: &[f64]| {
        RingTensor::from_vec(
            &[v.len()],
            v.iter().map(|a| fp.encode::<u64>(*a).unwrap()).collect(),
        )
        .unwrap()
    };
    let (x, y) = (enc(&xs), enc(&ys));
    let outs = runtime()
        .block_on(run_local(3, move |s: S| {
            let (x, y) = (x.clone(), y.clone());
            async move {
                let me = s.me();
                let xs = pond::share_from(&s, 0, (me == 0).then_some(&x), x.shape()).await?;
                let ys = pond::share_from(&s, 2, (me == 2).then_some(&y), y.shape()).await?;
                let z = pond::truncate(me, &pond::mul(&s, &xs, &ys).await?, 16);
                pond::reveal_to(&s, &z, 1).await
            }
        }))
        .unwrap();
    let z = outs[1].clone().unwrap();
    let mut failures = 0;
    for (i, v) in z.as_slice().iter().enumerate() {
        let exact = ((fp.encode::<u64>(xs[i]).unwrap() as i64 as i128)
            * (fp.encode::<u64>(ys[i]).unwrap() as i64 as i128))
            >> 16;
        let got = *v as i64 as i128;
        if (got - exact).abs() > 1 {
            failures += 1;
        }
    }
    assert!(
        failures <= 2,
        "{failures} elements off by more than one unit"
    );
}

#[test]
fn a_server_share_is_not_the_input_and_changes_between_runs() {
    let x = tensor(9, &[64]);
    let view = |x: RingTensor<u64>| {
        runtime()
            .block_on(run_local(3, move |s: S| {
                let x = x.clone();
                async move {
                    let me = s.me();
                    let xs = pond::share_from(&s, 0, (me == 0).then_some(&x), x.shape()).await?;
                    Ok(xs.share().cloned())
                }
            }))
            .unwrap()
    };
    let first = view(x.clone());
    let second = view(x.clone());
    let s1 = first[1].clone().unwrap();
    assert_ne!(s1, x);
    assert_ne!(s1, second[1].clone().unwrap());
    assert!(first[2].is_none(), "the producer holds no share");
    assert_eq!(first[0].clone().unwrap().add(&s1).unwrap(), x);
}

#[test]
fn pond_mul_moves_the_expected_bytes() {
    // Online: each computing server sends e and f (2n elements); the producer sends c1 (n).
    let n = 1000;
    let stats = runtime()
        .block_on(run_local(3, move |s: S| async move {
            let me = s.me();
            let x = tensor(1, &[n]);
            let xs = pond::share_from(&s, 0, (me == 0).then_some(&x), &[n]).await?;
            pond::mul(&s, &xs, &xs).await?;
            Ok(s.op_stats().last().cloned().expect("mul recorded").net)
        }))
        .unwrap();
    assert_eq!(stats[0].bytes_sent, 2 * n as u64 * 8);
    assert_eq!(stats[1].bytes_sent, 2 * n as u64 * 8);
    assert_eq!(stats[2].bytes_sent, n as u64 * 8);
    assert_eq!(stats[0].rounds, 1);
}

#[test]
fn pond_square_and_sum_are_exact() {
    let x = tensor(5, &[7, 9]);
    let outs = runtime()
        .block_on(run_local(3, {
            let x = x.clone();
            move |s: S| {
                let x = x.clone();
                async move {
                    let me = s.me();
                    let xs = pond::share_from(&s, 2, (me == 2).then_some(&x), x.shape()).await?;
                    let sq = pond::square(&s, &xs).await?;
                    let sq_bytes = s
                        .op_stats()
                        .last()
                        .cloned()
                        .expect("square recorded")
                        .net
                        .bytes_sent;
                    let summed = nn::sum_axis(&Pond::new(Arc::clone(&s), 16)?, &sq, 1)?;
                    Ok((
                        pond::reveal_to(&s, &sq, 0).await?,
                        pond::reveal_to(&s, &summed, 0).await?,
                        sq_bytes,
                    ))
                }
            }
        }))
        .unwrap();
    let (sq, summed, bytes) = outs[0].clone();
    let expected = x.mul(&x).unwrap();
    assert_eq!(sq.unwrap(), expected);
    let rows: Vec<u64> = expected
        .as_slice()
        .chunks(9)
        .map(|r| r.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
        .collect();
    assert_eq!(summed.unwrap().into_vec(), rows);
    // Half of mul's online traffic: one opened tensor of 63 elements.
    assert_eq!(bytes, 63 * 8);
}
