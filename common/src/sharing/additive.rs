//! n-party additive sharing: `x = x_0 + ... + x_{n-1} mod 2^k`, any `n-1` shares uniformly random.

use super::SharingError;
use crate::ring::{Ring, RingTensor};

/// Splits `x` into `parties` additive shares. Shares `1..n` are uniform; share 0 makes the sum.
pub fn share_additive<R: Ring, G: rand::CryptoRng + ?Sized>(
    x: &RingTensor<R>,
    parties: usize,
    rng: &mut G,
) -> Result<Vec<RingTensor<R>>, SharingError> {
    if parties < 2 {
        return Err(SharingError::BadPartyCount(parties));
    }
    let mut first = x.clone();
    let mut shares = Vec::with_capacity(parties);
    shares.push(RingTensor::zeros(x.shape()));
    for _ in 1..parties {
        let mut s = RingTensor::<R>::zeros(x.shape());
        rng.fill_bytes(bytemuck::cast_slice_mut(s.as_mut_slice()));
        first.sub_assign(&s)?;
        shares.push(s);
    }
    shares[0] = first;
    Ok(shares)
}

/// Sums additive shares back into the secret.
pub fn reveal_additive<R: Ring>(shares: &[RingTensor<R>]) -> Result<RingTensor<R>, SharingError> {
    let (first, rest) = shares.split_first().ok_or(SharingError::NoShares)?;
    let mut sum = first.clone();
    for s in rest {
        sum.add_assign(s)?;
    }
    Ok(sum)
}
