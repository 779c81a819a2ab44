//! The cluster's minimum privacy: the `[privacy]` table of the cluster file, which every server
//! and every data owner enforces on a federated job's settings. Privacy budgets belong to the
//! data owners, not to the model owner the noise protects them from: the model owner proposes a
//! job's DP settings, and a job below the cluster's minimum is refused by the servers at its
//! start and declined by every data owner (security review 2, finding 5).
//!
//! ```toml
//! [privacy]
//! min_noise_multiplier = 1.0   # every job adds at least this much noise (absent: DP optional)
//! max_delta = 1e-5             # and accounts for a delta no larger
//! ```

use serde::Deserialize;

use super::DpSettings;

/// The cluster's minimum privacy settings (none by default: DP optional).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyPolicy {
    /// Every job must add distributed DP noise with at least this (effective) multiplier.
    pub min_noise_multiplier: Option<f64>,
    /// The largest `delta` a job may account for.
    pub max_delta: Option<f64>,
}

/// A job's privacy that a server or a data owner refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyRefusal {
    /// The cluster requires DP and the job has none.
    #[error(
        "the cluster requires differential privacy (noise multiplier at least {min}); the job has none"
    )]
    NoNoise {
        /// The cluster's minimum multiplier.
        min: f64,
    },
    /// The job's noise is below the cluster's minimum.
    #[error("noise multiplier {got} is below the cluster's minimum {min}")]
    TooLittleNoise {
        /// The job's effective multiplier.
        got: f64,
        /// The cluster's minimum.
        min: f64,
    },
    /// The job accounts for a larger delta than the cluster allows.
    #[error("delta {got} is above the cluster's maximum {max}")]
    DeltaTooLarge {
        /// The job's delta.
        got: f64,
        /// The cluster's maximum.
        max: f64,
    },
    /// Taking part would bring a data owner past its own budget.
    #[error(
        "taking part would bring this owner's epsilon to {would:.3} (delta {delta:e}), over its budget {budget}"
    )]
    OverBudget {
        /// The epsilon after the round.
        would: f64,
        /// The owner's budget.
        budget: f64,
        /// The delta the owner accounts at.
        delta: f64,
    },
}

/// A policy that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[privacy] {field} = {value}: {reason}")]
pub struct PolicyError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// Why.
    pub reason: &'static str,
}

impl PrivacyPolicy {
    /// Checks the policy's own fields.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(z) = self.min_noise_multiplier
            && !(z.is_finite() && z > 0.0)
        {
            return Err(PolicyError {
                field: "min_noise_multiplier",
                value: z,
                reason: "must be positive",
            });
        }
        if let Some(d) = self.max_delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(PolicyError {
                field: "max_delta",
                value: d,
                reason: "must be in (0, 1)",
            });
        }
        Ok(())
    }

    /// Whether a job with differential privacy `dp` (at `frac_bits` fractional bits: the noise
    /// the servers really add, [`DpSettings::effective_noise_multiplier`]) meets the policy.
    pub fn check(&self, dp: Option<&DpSettings>, frac_bits: u32) -> Result<(), PrivacyRefusal> {
        if let Some(min) = self.min_noise_multiplier {
            let dp = dp.ok_or(PrivacyRefusal::NoNoise { min })?;
            let got = dp.effective_noise_multiplier(frac_bits);
            if got < min {
                return Err(PrivacyRefusal::TooLittleNoise { got, min });
            }
        }
        if let (Some(max), Some(dp)) = (self.max_delta, dp)
            && dp.delta > max
        {
            return Err(PrivacyRefusal::DeltaTooLarge { got: dp.delta, max });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_below_the_minimum_are_refused_by_reason() {
        let policy = PrivacyPolicy {
            min_noise_multiplier: Some(1.0),
            max_delta: Some(1e-5),
        };
        let dp = |z: f64, delta: f64| DpSettings {
            noise_multiplier: z,
            clip: 1.0,
            delta,
        };
        assert_eq!(policy.check(Some(&dp(1.0, 1e-5)), 16), Ok(()));
        assert_eq!(policy.check(Some(&dp(3.0, 1e-6)), 16), Ok(()));
        assert_eq!(
            policy.check(None, 16),
            Err(PrivacyRefusal::NoNoise { min: 1.0 })
        );
        assert!(matches!(
            policy.check(Some(&dp(0.5, 1e-5)), 16),
            Err(PrivacyRefusal::TooLittleNoise { .. })
        ));
        assert!(matches!(
            policy.check(Some(&dp(2.0, 1e-3)), 16),
            Err(PrivacyRefusal::DeltaTooLarge { .. })
        ));
        // No policy: anything goes, DP or not.
        assert_eq!(PrivacyPolicy::default().check(None, 16), Ok(()));
        assert!(matches!(
            PrivacyPolicy {
                min_noise_multiplier: Some(0.0),
                max_delta: None
            }
            .validate(),
            Err(PolicyError {
                field: "min_noise_multiplier",
                ..
            })
        ));
    }
}
