//! 3-party replicated sharing (Araki et al. 2016; ABY3 §2.2, Mohassel & Rindal 2018).
//!
//! `x = x_0 + x_1 + x_2 mod 2^k`; party `i` holds `(x_i, x_{i+1 mod 3})`. Any two parties together
//! hold all three components; any one party's pair is uniformly random.

use super::SharingError;
use super::additive::share_additive;
use crate::ring::{Ring, RingTensor};

/// One party's replicated share: components `x_i` and `x_{i+1}`.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicatedShare<R: Ring> {
    /// `x_i`.
    pub first: RingTensor<R>,
    /// `x_{i+1 mod 3}`.
    pub second: RingTensor<R>,
}

impl<R: Ring> std::fmt::Debug for ReplicatedShare<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ReplicatedShare(shape {:?}, <redacted>)",
            self.first.shape()
        )
    }
}

/// Splits `x` into the three parties' replicated shares.
pub fn share_replicated<R: Ring, G: rand::CryptoRng + ?Sized>(
    x: &RingTensor<R>,
    rng: &mut G,
) -> Result<[ReplicatedShare<R>; 3], SharingError> {
    let parts = share_additive(x, 3, rng)?;
    let pair = |i: usize| ReplicatedShare {
        first: parts[i].clone(),
        second: parts[(i + 1) % 3].clone(),
    };
    Ok([pair(0), pair(1), pair(2)])
}

/// Reconstructs from all three shares, checking that overlapping components agree.
pub fn reveal_replicated<R: Ring>(
    shares: &[ReplicatedShare<R>; 3],
) -> Result<RingTensor<R>, SharingError> {
    for i in 0..3 {
        let next = (i + 1) % 3;
        if shares[i].second != shares[next].first {
            return Err(SharingError::Inconsistent(i, next));
        }
    }
    let mut sum = shares[0].first.add(&shares[1].first)?;
    sum.add_assign(&shares[2].first)?;
    Ok(sum)
}
