//! Property tests of the algebraic core, for every ring: sharings reconstruct exactly, the matmul
//! kernel equals ndarray's naive `dot`, and fixed point stays within its stated error bound.

use std::num::Wrapping;

use ndarray::Array2;
use proptest::prelude::*;
use tessera_common::fixed::FixedPoint;
use tessera_common::prg::Seed;
use tessera_common::ring::{Ring, RingTensor, matmul, matmul_serial};
use tessera_common::sharing::{
    reveal_additive, reveal_replicated, reveal_seeded, share_additive, share_replicated,
    share_seeded,
};

fn tensor<R: Ring>(shape: &[usize], raw: &[u128]) -> RingTensor<R> {
    let n: usize = shape.iter().product();
    let values = raw
        .iter()
        .cycle()
        .take(n)
        .map(|v| R::from_i128(*v as i128))
        .collect();
    RingTensor::from_vec(shape, values).unwrap()
}

/// The oracle: ndarray's naive `dot` over `Wrapping<R>` (plain integers would panic on overflow in
/// debug builds).
fn naive_dot<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R>
where
    Wrapping<R>: ndarray::LinalgScalar,
{
    let wrap = |v: &[R]| v.iter().map(|x| Wrapping(*x)).collect::<Vec<_>>();
    let a = Array2::from_shape_vec((m, k), wrap(a)).unwrap();
    let b = Array2::from_shape_vec((k, n), wrap(b)).unwrap();
    a.dot(&b).iter().map(|w| w.0).collect()
}

fn shapes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 1..4)
}

fn raw_values() -> impl Strategy<Value = Vec<u128>> {
    prop::collection::vec(any::<u128>(), 1..64)
}

macro_rules! ring_properties {
    ($modname:ident, $r:ty) => {
        mod $modname {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(64))]

                #[test]
                fn additive_round_trip(shape in shapes(), raw in raw_values(), parties in 2usize..6) {
                    let x = tensor::<$r>(&shape, &raw);
                    let shares = share_additive(&x, parties, &mut rand::rng()).unwrap();
                    prop_assert_eq!(shares.len(), parties);
                    prop_assert_eq!(reveal_additive(&shares).unwrap(), x);
                }

                #[test]
                fn replicated_round_trip(shape in shapes(), raw in raw_values()) {
                    let x = tensor::<$r>(&shape, &raw);
                    let shares = share_replicated(&x, &mut rand::rng()).unwrap();
                    prop_assert_eq!(reveal_replicated(&shares).unwrap(), x.clone());
                    // Any two parties hold all three components.
                    let from_two = shares[0].first.add(&shares[0].second).unwrap()
                        .add(&shares[1].second).unwrap();
                    prop_assert_eq!(from_two, x);
                }

                #[test]
                fn seeded_round_trip(shape in shapes(), raw in raw_values(), parties in 2usize..4) {
                    let x = tensor::<$r>(&shape, &raw);
                    let shares = share_seeded(&x, parties, &mut rand::rng()).unwrap();
                    prop_assert_eq!(shares.seeds.len(), parties - 1);
                    prop_assert_eq!(reveal_seeded(&shares).unwrap(), x);
                }

                #[test]
                fn matmul_equals_naive_dot(m in 1usize..40, k in 1usize..300, n in 1usize..40, seed in any::<[u8; 32]>()) {
                    let mut prg = tessera_common::prg::Prg::new(&Seed(seed), 9);
                    let a: Vec<$r> = prg.ring_vec(m * k);
                    let b: Vec<$r> = prg.ring_vec(k * n);
                    let oracle: Vec<$r> = naive_dot(&a, &b, m, k, n);
                    prop_assert_eq!(&matmul(&a, &b, m, k, n), &oracle);
                    prop_assert_eq!(&matmul_serial(&a, &b, m, k, n), &oracle);
                    let ta = RingTensor::from_vec(&[m, k], a).unwrap();
                    let tb = RingTensor::from_vec(&[k, n], b).unwrap();
                    prop_assert_eq!(ta.matmul(&tb).unwrap().into_vec(), oracle);
                }

                #[test]
                fn fixed_point_error_within_bound(x in -1.0e3f64..1.0e3, frac_bits in 8u32..24) {
                    let fp = FixedPoint::new(frac_bits);
                    let v: $r = fp.encode(x).unwrap();
                    let err = (fp.decode(v) - x).abs();
                    // Bound: rounding to the nearest multiple of 2^-f is off by at most 2^-(f+1);
                    // the f64 arithmetic adds at most a few ulps of x (|x| <= 1e3 => < 1e-12).
                    prop_assert!(err <= fp.max_roundtrip_error() + 1e-12, "err {} bound {}", err, fp.max_roundtrip_error());
                }

                #[test]
                fn fixed_point_sum_is_exact_within_budget(xs in prop::collection::vec(-4.0f64..4.0, 1..50)) {
                    let fp = FixedPoint::new(12);
                    prop_assume!(fp.sum_budget::<$r>(xs.len() as u64, 4.0).fits());
                    let enc: Vec<$r> = xs.iter().map(|x| fp.encode(*x).unwrap()).collect();
                    let sum = enc.iter().fold(<$r as Ring>::ZERO, |a, b| a.add(*b));
                    let exact: i128 = enc.iter().map(|v| v.to_i128()).sum();
                    prop_assert_eq!(sum.to_i128(), exact);
                    let err = (fp.decode(sum) - xs.iter().sum::<f64>()).abs();
                    prop_assert!(err <= xs.len() as f64 * fp.max_roundtrip_error() + 1e-9);
                }
            }
        }
    };
}

ring_properties!(ring_u64, u64);
ring_properties!(ring_u128, u128);

// The u32 ring cannot hold |x| = 1e3 with 23 fractional bits; its tests use a smaller range.
mod ring_u32 {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn additive_round_trip(shape in shapes(), raw in raw_values(), parties in 2usize..6) {
            let x = tensor::<u32>(&shape, &raw);
            let shares = share_additive(&x, parties, &mut rand::rng()).unwrap();
            prop_assert_eq!(reveal_additive(&shares).unwrap(), x);
        }

        #[test]
        fn replicated_round_trip(shape in shapes(), raw in raw_values()) {
            let x = tensor::<u32>(&shape, &raw);
            let shares = share_replicated(&x, &mut rand::rng()).unwrap();
            prop_assert_eq!(reveal_replicated(&shares).unwrap(), x);
        }

        #[test]
        fn seeded_round_trip(shape in shapes(), raw in raw_values(), parties in 2usize..4) {
            let x = tensor::<u32>(&shape, &raw);
            let shares = share_seeded(&x, parties, &mut rand::rng()).unwrap();
            prop_assert_eq!(reveal_seeded(&shares).unwrap(), x);
        }

        #[test]
        fn matmul_equals_naive_dot(m in 1usize..40, k in 1usize..300, n in 1usize..40, seed in any::<[u8; 32]>()) {
            let mut prg = tessera_common::prg::Prg::new(&Seed(seed), 9);
            let a: Vec<u32> = prg.ring_vec(m * k);
            let b: Vec<u32> = prg.ring_vec(k * n);
            prop_assert_eq!(matmul(&a, &b, m, k, n), naive_dot(&a, &b, m, k, n));
        }

        #[test]
        fn fixed_point_error_within_bound(x in -1.0e3f64..1.0e3, frac_bits in 8u32..20) {
            // |x| * 2^f < 1e3 * 2^20 < 2^31: every value encodes.
            let fp = FixedPoint::new(frac_bits);
            let v: u32 = fp.encode(x).unwrap();
            prop_assert!((fp.decode(v) - x).abs() <= fp.max_roundtrip_error() + 1e-12);
        }
    }
}

/// Larger products cross the kernel's block boundaries (KC = 256, MC = 64) and the parallel path;
/// single rows and columns take the plain loops.
#[test]
fn matmul_across_block_boundaries() {
    for (m, k, n) in [
        (1, 1, 1),
        (1, 600, 1),
        (130, 257, 9),
        (65, 513, 70),
        (200, 300, 1),
        (1, 600, 70),
        (1, 100_000, 1),
    ] {
        let mut prg = tessera_common::prg::Prg::new(&Seed([3; 32]), 1);
        let a: Vec<u64> = prg.ring_vec(m * k);
        let b: Vec<u64> = prg.ring_vec(k * n);
        let oracle = naive_dot(&a, &b, m, k, n);
        assert_eq!(matmul(&a, &b, m, k, n), oracle, "{m}x{k}x{n}");
        assert_eq!(matmul_serial(&a, &b, m, k, n), oracle, "{m}x{k}x{n}");
    }
}

/// A single share is not the secret, and sharing the same secret twice gives different shares.
#[test]
fn shares_hide_the_secret() {
    let x = RingTensor::<u64>::from_vec(&[64], (0..64).collect()).unwrap();
    let a = share_seeded(&x, 3, &mut rand::rng()).unwrap();
    let b = share_seeded(&x, 3, &mut rand::rng()).unwrap();
    assert_ne!(a.explicit, x);
    assert_ne!(a.explicit, b.explicit);
    let c = share_additive(&x, 2, &mut rand::rng()).unwrap();
    assert_ne!(c[0], x);
    assert_ne!(c[1], x);
}
