//! ABY3 in one process: ring operations exact, fixed-point ones within stated bounds, boolean
//! conversions and comparisons exact, and what a server sees.

use proptest::prelude::*;
use tessera_common::ring::RingTensor;
use tessera_mpc::aby3::{self, Aby3Tensor, boolean, trunc};
use tessera_mpc::harness::run_local;

use crate::{Aby3M, F, S, enc, ints, prog, reals, run, runtime, signed, tensor};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn mul_matmul_and_linear_ops_are_exact(m in 1usize..12, k in 1usize..30, n in 1usize..12, seed in any::<u8>()) {
        let (x, y) = (tensor(seed, &[m, k]), tensor(seed.wrapping_add(1), &[k, n]));
        let got = run(vec![x.clone(), y.clone()], prog!(Aby3M, |p, v| aby3::matmul(p.session(), &v[0], &v[1]).await));
        prop_assert_eq!(got, x.matmul(&y).unwrap());
        let y2 = tensor(seed.wrapping_add(2), &[m, k]);
        let got = run(vec![x.clone(), y2.clone()], prog!(Aby3M, |p, v| {
            let z = aby3::mul(p.session(), &v[0], &v[1]).await?;
            z.sub(&v[1].scale(5))?.add_public(p.session().me(), &vec![7; v[0].len()])
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
        let got = run(vec![x.clone()], prog!(Aby3M, |p, v| {
            let b = boolean::a2b(p.session(), &v[0]).await?;
            boolean::b2a(p.session(), &b).await
        }));
        prop_assert_eq!(&got, &x);
        let (xs, ys) = (signed(&x), signed(&y));
        let got = run(vec![x.clone(), y.clone()], prog!(Aby3M, |p, v| {
            let lt = boolean::less(p.session(), &v[0], &v[1]).await?;
            let gt = boolean::greater(p.session(), &v[0], &v[1]).await?;
            let eq = boolean::equal(p.session(), &v[0], &v[1]).await?;
            Ok(aby3::Shared::concat(&[&lt, &gt, &eq]))
        }));
        let got = got.into_vec();
        for i in 0..n {
            prop_assert_eq!(got[i], (xs[i] < ys[i]) as u64, "less at {}", i);
            prop_assert_eq!(got[n + i], (xs[i] > ys[i]) as u64, "greater at {}", i);
            prop_assert_eq!(got[2 * n + i], (xs[i] == ys[i]) as u64, "equal at {}", i);
        }
    }

    /// Truncation pairs: within one unit of the exact shift, except with probability
    /// `2^(l+1-64)` per element for `|x| < 2^l`. Inputs in [-100, 100] with 16 fractional bits
    /// give products below 2^46, so `2^-17` per element: over the 600 results of a case about
    /// 0.005 failures are expected, and the one failure the test allows leaves a chance of about
    /// 1e-5 per case of a spurious red.
    #[test]
    fn truncation_and_fixed_point_mul_are_within_one_unit(n in 1usize..300, seed in any::<u8>()) {
        let (a, b) = (reals(seed, n, -100.0, 100.0), reals(seed.wrapping_add(9), n, -100.0, 100.0));
        let (x, y) = (enc(&a, &[n]), enc(&b, &[n]));
        let got = run(vec![x.clone(), y.clone()], prog!(Aby3M, |p, v| {
            let t = trunc::truncate(p.session(), &aby3::mul(p.session(), &v[0], &v[1]).await?, F).await?;
            let m = trunc::mul_trunc(p.session(), &v[0], &v[1], F, None).await?;
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
