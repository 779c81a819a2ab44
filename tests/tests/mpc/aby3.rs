//! ABY3 in one process: ring operations exact, fixed-point ones within stated bounds, boolean
//! conversions and comparisons exact, and what a server sees.

use std::sync::Arc;

use futures::future::BoxFuture;
use proptest::prelude::*;
use tessera_aggregator::mpc::MpcError;
use tessera_aggregator::mpc::aby3::{self, Aby3Tensor, approx, boolean, nonlinear, trunc};
use tessera_aggregator::mpc::harness::run_local;
use tessera_aggregator::mpc::layout::Window;
use tessera_common::ring::RingTensor;

use crate::{F, S, dec, enc, reals, runtime, tensor};

type Program = Arc<
    dyn Fn(S, Vec<Aby3Tensor>) -> BoxFuture<'static, Result<Aby3Tensor, MpcError>> + Send + Sync,
>;

/// Shares input `i` from server `i % 3`, runs `program`, reveals the result to server 1 only.
pub fn run(inputs: Vec<RingTensor<u64>>, program: Program) -> RingTensor<u64> {
    let outs = runtime()
        .block_on(run_local(3, move |s: S| {
            let (inputs, program) = (inputs.clone(), Arc::clone(&program));
            async move {
                let me = s.me();
                let mut shared = Vec::new();
                for (i, x) in inputs.iter().enumerate() {
                    let owner = i % 3;
                    shared.push(
                        aby3::share_from(&s, owner, (me == owner).then_some(x), x.shape()).await?,
                    );
                }
                let z = program(Arc::clone(&s), shared).await?;
                aby3::reveal_to(&s, &z, 1).await
            }
        }))
        .unwrap();
    assert!(
        outs[0].is_none() && outs[2].is_none(),
        "only server1 receives"
    );
    outs[1].clone().unwrap()
}

macro_rules! program {
    (|$s:ident, $v:ident| $body:expr) => {
        Arc::new(move |$s: S, $v: Vec<Aby3Tensor>| {
            Box::pin(async move { $body }) as BoxFuture<'static, Result<Aby3Tensor, MpcError>>
        })
    };
}

fn signed(x: &RingTensor<u64>) -> Vec<i64> {
    x.as_slice().iter().map(|v| *v as i64).collect()
}

/// Random signed integers with `|x| < 2^bits`.
fn ints(seed: u8, n: usize, bits: u32) -> RingTensor<u64> {
    tensor(seed, &[n]).map(|v| ((v as i64) >> (64 - bits - 1)) as u64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn mul_matmul_and_linear_ops_are_exact(m in 1usize..12, k in 1usize..30, n in 1usize..12, seed in any::<u8>()) {
        let (x, y) = (tensor(seed, &[m, k]), tensor(seed.wrapping_add(1), &[k, n]));
        let got = run(vec![x.clone(), y.clone()], program!(|s, v| aby3::matmul(&s, &v[0], &v[1]).await));
        prop_assert_eq!(got, x.matmul(&y).unwrap());
        let y2 = tensor(seed.wrapping_add(2), &[m, k]);
        let got = run(vec![x.clone(), y2.clone()], program!(|s, v| {
            let p = aby3::mul(&s, &v[0], &v[1]).await?;
            p.sub(&v[1].scale(5))?.add_public(s.me(), &vec![7; v[0].len()])
        }));
        let expected = x.mul(&y2).unwrap().sub(&y2.scale(5)).unwrap().map(|a| a.wrapping_add(7));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn a2b_b2a_and_comparisons_are_exact(n in 1usize..200, seed in any::<u8>()) {
        let x = ints(seed, n, 62);
        let mut y = ints(seed.wrapping_add(1), n, 62);
        // Make some pairs equal so `equal` sees both outcomes.
        for i in (0..n).step_by(3) {
            y.as_mut_slice()[i] = x.as_slice()[i];
        }
        // A2B then B2A is the identity.
        let got = run(vec![x.clone()], program!(|s, v| {
            let b = boolean::a2b(&s, &v[0]).await?;
            boolean::b2a(&s, &b).await
        }));
        prop_assert_eq!(&got, &x);
        let (xs, ys) = (signed(&x), signed(&y));
        let got = run(vec![x.clone(), y.clone()], program!(|s, v| {
            let lt = boolean::less(&s, &v[0], &v[1]).await?;
            let gt = boolean::greater(&s, &v[0], &v[1]).await?;
            let eq = boolean::equal(&s, &v[0], &v[1]).await?;
            Ok(aby3::Shared::concat(&[&lt, &gt, &eq]))
        }));
        let got = got.into_vec();
        for i in 0..n {
            prop_assert_eq!(got[i], (xs[i] < ys[i]) as u64, "less at {}", i);
            prop_assert_eq!(got[n + i], (xs[i] > ys[i]) as u64, "greater at {}", i);
            prop_assert_eq!(got[2 * n + i], (xs[i] == ys[i]) as u64, "equal at {}", i);
        }
    }

    /// ReLU is exact: the sign comes from the exact A2B adder and the product is exact in the ring.
    #[test]
    fn relu_is_exact_on_fixed_point_inputs(n in 1usize..300, seed in any::<u8>()) {
        let xs = reals(seed, n, -1000.0, 1000.0);
        let x = enc(&xs, &[n]);
        let got = run(vec![x.clone()], program!(|s, v| nonlinear::relu(&s, &v[0]).await));
        let expected = x.map(|v| if (v as i64) < 0 { 0 } else { v });
        prop_assert_eq!(got, expected);
    }

    /// Truncation pairs: within one unit of the exact shift, except with probability
    /// `2^(l+1-64)` per element for `|x| < 2^l`; here `l = 48`, so `2^-15` per element and at most
    /// ~1% chance of one failure over the 300 elements of a case; the test allows one.
    #[test]
    fn truncation_and_fixed_point_mul_are_within_one_unit(n in 1usize..300, seed in any::<u8>()) {
        let (a, b) = (reals(seed, n, -1000.0, 1000.0), reals(seed.wrapping_add(9), n, -1000.0, 1000.0));
        let (x, y) = (enc(&a, &[n]), enc(&b, &[n]));
        let got = run(vec![x.clone(), y.clone()], program!(|s, v| {
            let t = trunc::truncate(&s, &aby3::mul(&s, &v[0], &v[1]).await?, F).await?;
            let m = trunc::mul_trunc(&s, &v[0], &v[1], F).await?;
            Ok(aby3::Shared::concat(&[&t, &m]))
        }));
        let got = signed(&got);
        let mut failures = 0;
        for i in 0..n {
            let exact = ((x.as_slice()[i] as i64 as i128 * y.as_slice()[i] as i64 as i128) >> F) as i64;
            for g in [got[i], got[n + i]] {
                if (g - exact).abs() > 1 {
                    failures += 1;
                }
            }
        }
        prop_assert!(failures <= 1, "{} elements off by more than one unit", failures);
    }
}

#[test]
fn maximum_argmax_maxpool_and_sort_are_exact() {
    let (rows, k) = (13, 10);
    let x = ints(3, rows * k, 40).into_vec();
    let x = RingTensor::from_vec(&[rows, k], x).unwrap();
    let got = run(
        vec![x.clone()],
        program!(|s, v| {
            let m = nonlinear::max_last_axis(&s, &v[0]).await?;
            let a = nonlinear::argmax(&s, &v[0]).await?;
            Ok(aby3::Shared::concat(&[&m, &a]))
        }),
    );
    let xs = signed(&x);
    let got = signed(&got);
    for r in 0..rows {
        let row = &xs[r * k..(r + 1) * k];
        let max = *row.iter().max().unwrap();
        assert_eq!(got[r], max, "max of row {r}");
        assert_eq!(
            got[rows + r],
            row.iter().position(|v| *v == max).unwrap() as i64
        );
    }
    // Max-pooling 2x2 stride 2 over [1, 2, 4, 6].
    let img = ints(4, 48, 30);
    let img = RingTensor::from_vec(&[1, 2, 4, 6], img.into_vec()).unwrap();
    let win = Window {
        kernel: (2, 2),
        stride: 2,
        padding: 0,
    };
    let got = signed(&run(
        vec![img.clone()],
        program!(|s, v| nonlinear::maxpool2d(&s, &v[0], win).await),
    ));
    let p = signed(&img);
    let mut expected = Vec::new();
    for c in 0..2 {
        for y in 0..2 {
            for x in 0..3 {
                let at = |dy: usize, dx: usize| p[(c * 4 + 2 * y + dy) * 6 + 2 * x + dx];
                expected.push(at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
            }
        }
    }
    assert_eq!(got, expected);
    // Sort 100 values (padded to 128 inside).
    let v = ints(5, 100, 50);
    let got = signed(&run(
        vec![v.clone()],
        program!(|s, v| nonlinear::sort(&s, &v[0]).await),
    ));
    let mut expected = signed(&v);
    expected.sort();
    assert_eq!(got, expected);
}

/// Applies a fixed-point function and checks `|got - f(x)| <= abs + rel * |f(x)|`.
fn check_approx(
    name: &str,
    xs: &[f64],
    program: Program,
    reference: impl Fn(f64) -> f64,
    bound: impl Fn(f64) -> f64,
) {
    let got = dec(&run(vec![enc(xs, &[xs.len()])], program));
    for (x, g) in xs.iter().zip(&got) {
        let want = reference(*x);
        assert!(
            (g - want).abs() <= bound(*x),
            "{name}({x}) = {g}, expected {want} within {}",
            bound(*x)
        );
    }
}

/// Bounds: exp's base `1 + t + t^2/2` for `t = x/256` is `e^t (1 - t^3/6 ...)`, raised to the
/// 256th power: relative error `|x|^3 / (6 * 256^2)`; the rounding of `t` (one unit of 2^-20) and
/// of the squarings (one unit each, 2^-20 for six, 2^-16 for two, each doubled by every later
/// squaring) add `256 * 2^-20 + 2 * 128 * 2^-20 + 3 * 2^-16 < 6e-4` relative; `1e-3` relative plus
/// `2^-15` absolute (the final rounding) covers all. Newton methods converge quadratically; after the stated iteration
/// counts the iteration error is far below the fixed-point error, which is a few units per step:
/// 0.2% relative + 0.002 absolute. log uses exp inside its iteration: 0.01 absolute.
#[test]
fn exp_log_reciprocal_sqrt_and_sigmoid_are_within_bounds() {
    let u = 1.0 / (1u64 << F) as f64;
    let xs = reals(11, 64, -6.0, 3.0);
    check_approx(
        "exp",
        &xs,
        program!(|s, v| approx::exp(&s, &v[0], F).await),
        f64::exp,
        |x| x.exp() * (x.abs().powi(3) / 196608.0 + 1e-3) + 2.0 * u,
    );
    let pos = reals(12, 64, 0.5, 50.0);
    check_approx(
        "reciprocal",
        &pos,
        program!(|s, v| approx::reciprocal(&s, &v[0], F).await),
        |x| 1.0 / x,
        |x| 0.002 / x + 0.002,
    );
    check_approx(
        "sqrt",
        &pos,
        program!(|s, v| approx::sqrt(&s, &v[0], F).await),
        f64::sqrt,
        |x| 0.002 * x.sqrt() + 0.002,
    );
    check_approx(
        "inv_sqrt",
        &pos,
        program!(|s, v| approx::inv_sqrt(&s, &v[0], F).await),
        |x| 1.0 / x.sqrt(),
        |x| 0.002 / x.sqrt() + 0.002,
    );
    check_approx(
        "log",
        &pos,
        program!(|s, v| approx::log(&s, &v[0], F).await),
        f64::ln,
        |_| 0.01,
    );
    let xs = reals(13, 64, -10.0, 10.0);
    check_approx(
        "sigmoid",
        &xs,
        program!(|s, v| approx::sigmoid(&s, &v[0], F).await),
        |x| 1.0 / (1.0 + (-x).exp()),
        |_| 0.005,
    );
}

/// Softmax: exp's error on `x - max <= 0` is relative (<= (x-max)^2/512 e^(x-max) <= 4/(512 e^2)
/// at worst, about 0.1%), the sum's and the reciprocal's add a few units: 0.005 absolute.
#[test]
fn softmax_is_within_bound() {
    let (rows, k) = (16, 10);
    let xs = reals(14, rows * k, -4.0, 4.0);
    let got = dec(&run(
        vec![enc(&xs, &[rows, k])],
        program!(|s, v| approx::softmax(&s, &v[0], F).await),
    ));
    for r in 0..rows {
        let row = &xs[r * k..(r + 1) * k];
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for c in 0..k {
            let want = (row[c] - max).exp() / total;
            let g = got[r * k + c];
            assert!(
                (g - want).abs() <= 0.005,
                "softmax[{r},{c}] = {g}, expected {want}"
            );
        }
    }
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
                    let xs: Aby3Tensor =
                        aby3::share_from(&s, 0, (me == 0).then_some(&x), x.shape()).await?;
                    let (a, b) = xs.shares();
                    Ok((a.to_vec(), b.to_vec()))
                }
            }))
            .unwrap()
    };
    let (first, second) = (view(x.clone()), view(x.clone()));
    let (a, b) = &first[1];
    assert_ne!(a.as_slice(), x.as_slice());
    assert_ne!(b.as_slice(), x.as_slice());
    assert_ne!(a, &second[1].0, "fresh shares each run");
    // Two servers together hold all three shares, which add up to the input.
    let (c, _) = &first[0];
    let sum: Vec<u64> = (0..64)
        .map(|i| c[i].wrapping_add(a[i]).wrapping_add(b[i]))
        .collect();
    assert_eq!(sum, x.as_slice());
}
