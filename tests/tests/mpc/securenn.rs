//! SecureNN's comparison stack (PrivateCompare, ShareConvert, ComputeMSB) through DReLU: exact on
//! random values over the whole range it supports (`|x| < 2^62`) and on the edges.

use proptest::prelude::*;
use tessera_common::ring::RingTensor;
use tessera_mpc::securenn;

use crate::{SecureNnM, ints, prog, run};

fn drelu_matches_sign(x: RingTensor<u64>) {
    let got = run::<SecureNnM>(
        vec![x.clone()],
        prog!(SecureNnM, |p, v| securenn::drelu(p.session(), &v[0]).await),
    );
    for (i, (g, v)) in got.as_slice().iter().zip(x.as_slice()).enumerate() {
        assert_eq!(*g, ((*v as i64) >= 0) as u64, "element {i}: {}", *v as i64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn drelu_is_exact_on_random_values(n in 1usize..300, seed in any::<u8>()) {
        drelu_matches_sign(ints(seed, n, 61));
    }
}

#[test]
fn drelu_is_exact_on_edges() {
    let edges: Vec<u64> = [
        0i64,
        1,
        -1,
        2,
        -2,
        (1 << 62) - 1,
        -(1 << 62),
        1 << 61,
        -(1 << 61),
        i64::from(u32::MAX),
    ]
    .iter()
    .map(|v| *v as u64)
    .collect();
    drelu_matches_sign(RingTensor::from_vec(&[edges.len()], edges).unwrap());
}
