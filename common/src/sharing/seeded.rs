//! Seed-compressed additive sharing.
//!
//! For `n` parties the dealer draws `n-1` random 32-byte seeds, sets `x_i = PRG(seed_i)` for
//! `i >= 1` ([`crate::prg`], stream [`STREAM_SHARE`]) and `x_0 = x - sum_{i>=1} x_i`. Party 0
//! receives `x_0` in full, party `i >= 1` only its seed, so the dealer sends about one plaintext copy
//! plus 32 bytes per extra party. Each `x_i`, `i >= 1`, is pseudo-random, and `x_0` is masked by
//! them, so any `n-1` shares reveal nothing about `x`.

use super::SharingError;
use crate::prg::{Prg, STREAM_SHARE, Seed};
use crate::ring::{Ring, RingTensor};

/// A seed-compressed sharing: the explicit share of party 0 and the seeds of parties `1..n`.
#[derive(Clone)]
pub struct SeededShares<R: Ring> {
    /// `x_0 = x - sum of the expanded seeds`.
    pub explicit: RingTensor<R>,
    /// `seeds[i-1]` expands to `x_i`.
    pub seeds: Vec<Seed>,
}

impl<R: Ring> std::fmt::Debug for SeededShares<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SeededShares(shape {:?}, {} seeds, <redacted>)",
            self.explicit.shape(),
            self.seeds.len()
        )
    }
}

/// Expands one seed into the share it stands for.
pub fn expand_seed_share<R: Ring>(seed: &Seed, shape: &[usize]) -> RingTensor<R> {
    Prg::new(seed, STREAM_SHARE).ring_tensor(shape)
}

/// Shares `x` among `parties` parties with seed compression.
pub fn share_seeded<R: Ring, G: rand::CryptoRng + ?Sized>(
    x: &RingTensor<R>,
    parties: usize,
    rng: &mut G,
) -> Result<SeededShares<R>, SharingError> {
    if parties < 2 {
        return Err(SharingError::BadPartyCount(parties));
    }
    let mut explicit = x.clone();
    let mut seeds = Vec::with_capacity(parties - 1);
    for _ in 1..parties {
        let seed = Seed::random(rng);
        explicit.sub_assign(&expand_seed_share(&seed, x.shape()))?;
        seeds.push(seed);
    }
    Ok(SeededShares { explicit, seeds })
}

/// Reconstructs `x` from the explicit share and the seeds.
pub fn reveal_seeded<R: Ring>(shares: &SeededShares<R>) -> Result<RingTensor<R>, SharingError> {
    let mut sum = shares.explicit.clone();
    for seed in &shares.seeds {
        sum.add_assign(&expand_seed_share(seed, shares.explicit.shape()))?;
    }
    Ok(sum)
}
