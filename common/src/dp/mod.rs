//! Distributed differential privacy for a job's aggregates.
//!
//! The job states a noise multiplier `z`, an L2 clipping bound `S` and the `delta` it accounts
//! for. Then:
//!
//! - each honest data owner sends weight 1 and its vector `(delta, loss / 16)` clipped to L2
//!   norm `S` (less the fixed-point rounding, [`DpSettings::owner_clip`]), so adding or removing
//!   one owner moves the sum of the vectors by at most `S`;
//! - every server adds its own draw of the discrete Gaussian `N_Z(0, (z S 2^f)^2)` ([`sample`])
//!   to each coordinate of its share of the sum but the weight before sealing it: the noise of
//!   any one honest server is enough for the guarantee, so the aggregate carries the sum of
//!   `num_servers` draws (variance `num_servers` times that of one), and no server knows the
//!   others' draws;
//! - the model owner accounts for the rounds with the Gaussian mechanism's RDP composed over
//!   them ([`accountant`]) and prints `(epsilon, delta)` per round and in total.
//!
//! No sampling is credited: every registered owner is asked every round, and the model owner,
//! the party the noise protects against, receives each round's contributor list, so nothing is
//! hidden in which owners took part and subsampling's amplification does not apply (an
//! accountant that credited a rate `q < 1` printed 1.23 where the truth at `q = 1` is 110.1, for
//! `z = 1` over 100 rounds). Each round is accounted at `q = 1`; the subsampled Gaussian
//! ([`accountant::spent`] with `q < 1`) is only for sampling the servers do from a seed the
//! receiver does not know.
//!
//! The guarantee: user-level, for the aggregates the model owner sees, against a model owner
//! that colludes with all servers but one, under zero-out adjacency (one owner's vector replaced
//! by zeros: the weight coordinate carries no noise, so whether an owner contributed at all is
//! not hidden; the model owner gets the contributor list anyway). A malicious owner that does
//! not clip only gives up its own privacy, which is why the bound is enforced at the owners and
//! not under MPC (the robust rules add the servers' own check on top).

pub mod accountant;
pub mod ledger;
pub mod policy;
pub mod sample;

use serde::{Deserialize, Serialize};

pub use accountant::Spent;
pub use ledger::{Ledger, LedgerError};
pub use policy::{PrivacyPolicy, PrivacyRefusal};

/// A job's differential privacy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    /// `z`: each server's noise standard deviation over the clipping bound.
    pub noise_multiplier: f64,
    /// `S`: the L2 bound on each owner's `(delta, loss / 16)` vector.
    pub clip: f64,
    /// The `delta` the model owner accounts for.
    pub delta: f64,
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// A field out of range.
    #[error("dp {field} = {value}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The range it must be in.
        reason: &'static str,
    },
}

impl DpSettings {
    /// Checks every field's range and that the noise fits the sampler at `frac_bits`.
    pub fn validate(&self, frac_bits: u32) -> Result<(), DpError> {
        let invalid = |field, value, reason| {
            Err(DpError::Invalid {
                field,
                value,
                reason,
            })
        };
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0) {
            return invalid(
                "noise_multiplier",
                self.noise_multiplier,
                "must be positive",
            );
        }
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return invalid("clip", self.clip, "must be positive");
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return invalid("delta", self.delta, "must be in (0, 1)");
        }
        let sigma = self.sigma_units(frac_bits);
        if !(1.0..=(sample::MAX_VARIANCE as f64).sqrt()).contains(&sigma) {
            return invalid(
                "noise_multiplier",
                self.noise_multiplier,
                "z * clip * 2^frac_bits must be in [1, 2^23] units",
            );
        }
        Ok(())
    }

    /// One server's noise standard deviation in ring units: `z S 2^f`.
    pub fn sigma_units(&self, frac_bits: u32) -> f64 {
        self.noise_multiplier * self.clip * f64::from(frac_bits).exp2()
    }

    /// One server's noise variance parameter in ring units, the integer the sampler takes.
    pub fn variance_units(&self, frac_bits: u32) -> u128 {
        let sigma = self.sigma_units(frac_bits);
        ((sigma * sigma).round() as u128).clamp(1, sample::MAX_VARIANCE)
    }

    /// The noise multiplier the servers' integer variance gives (`sqrt(s) / (S 2^f)`), the one
    /// the accountant uses.
    pub fn effective_noise_multiplier(&self, frac_bits: u32) -> f64 {
        (self.variance_units(frac_bits) as f64).sqrt() / (self.clip * f64::from(frac_bits).exp2())
    }

    /// The L2 bound an owner clips its `len`-element vector to before encoding, so that the
    /// encoded vector's norm stays within `S` (each element rounds by at most half a unit).
    pub fn owner_clip(&self, len: usize, frac_bits: u32) -> f64 {
        let rounding = (len as f64).sqrt() / 2.0 * f64::from(frac_bits).exp2().recip();
        (self.clip - rounding).max(0.0)
    }

    /// `(epsilon, delta)` after `rounds` rounds, each the Gaussian mechanism over every owner
    /// (no sampling is credited: see the module docs).
    pub fn spent(&self, rounds: u64, frac_bits: u32) -> Spent {
        accountant::spent(
            1.0,
            self.effective_noise_multiplier(frac_bits),
            rounds,
            self.delta,
        )
    }

    /// One server's noise for the `len` coordinates it covers.
    pub fn noise(&self, rng: &mut impl rand::Rng, len: usize, frac_bits: u32) -> Vec<i64> {
        let s = self.variance_units(frac_bits);
        (0..len)
            .map(|_| sample::discrete_gaussian(rng, s))
            .collect()
    }
}

/// Clips `v` to L2 norm `bound` (scales it down if longer).
pub fn clip_l2(v: &mut [f64], bound: f64) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > bound {
        let scale = bound / norm;
        v.iter_mut().for_each(|x| *x *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp() -> DpSettings {
        DpSettings {
            noise_multiplier: 1.0,
            clip: 1.0,
            delta: 1e-5,
        }
    }

    #[test]
    fn settings_are_checked_by_field() {
        assert_eq!(dp().validate(16), Ok(()));
        for (bad, field) in [
            (
                DpSettings {
                    noise_multiplier: 0.0,
                    ..dp()
                },
                "noise_multiplier",
            ),
            (
                DpSettings {
                    clip: f64::NAN,
                    ..dp()
                },
                "clip",
            ),
            (DpSettings { delta: 1.0, ..dp() }, "delta"),
            // 2^24 units of noise: beyond the sampler.
            (
                DpSettings {
                    noise_multiplier: 256.0,
                    ..dp()
                },
                "noise_multiplier",
            ),
        ] {
            match bad.validate(16) {
                Err(DpError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_integer_variance_keeps_the_multiplier() {
        let d = DpSettings {
            noise_multiplier: 0.7,
            clip: 0.3,
            ..dp()
        };
        assert_eq!(
            d.variance_units(16),
            ((0.7f64 * 0.3 * 65536.0).powi(2)).round() as u128
        );
        assert!((d.effective_noise_multiplier(16) - 0.7).abs() < 1e-9);
        // Full participation, one round: the Gaussian mechanism's figure.
        assert!(
            (d.spent(1, 16).epsilon - accountant::spent(1.0, 0.7, 1, 1e-5).epsilon).abs() < 1e-6
        );
    }

    #[test]
    fn clipping_scales_only_long_vectors() {
        let mut v = vec![3.0, 4.0];
        clip_l2(&mut v, 1.0);
        assert!((v[0] - 0.6).abs() < 1e-12 && (v[1] - 0.8).abs() < 1e-12);
        let mut w = vec![0.3, 0.4];
        clip_l2(&mut w, 1.0);
        assert_eq!(w, vec![0.3, 0.4]);
        assert!(dp().owner_clip(10_000, 16) < 1.0 && dp().owner_clip(10_000, 16) > 0.99);
    }
}
