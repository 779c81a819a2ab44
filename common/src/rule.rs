//! The aggregation rule a job uses (`mean` unless it says otherwise) and the public parameters
//! of the checks the servers run for it.
//!
//! - `mean`: the sum of the committed updates (the fast path; no check on any update).
//! - `norm-bound:B`: an upload joins the sum only if the L2 norm of its update is at most `B`,
//!   every coordinate is within the range honest owners fit, its weight is exactly one and its
//!   loss coordinate lies in `[0, w]`; checked under MPC by three servers, which learn the
//!   verdict bit and nothing else (see `tessera_aggregator::secagg::robust`).
//! - `clip:B`: each update scaled by `min(1, B w / ||u||)` under MPC before it joins the sum
//!   (uploads out of range, with another weight or with a loss outside `[0, w]` are refused as
//!   under `norm-bound`).
//! - `trimmed-mean:k`: coordinate by coordinate, the mean of the contributors' values without
//!   the `k` smallest and the `k` largest; `median`: the middle value (the mean of the middle two
//!   for an even count). Sorted under MPC at the round's close (the weight coordinate is trimmed
//!   like any other).
//!
//! Under every robust rule each contributor counts once: an honest owner sends weight 1 whatever
//! its sample count, because nothing an owner declares about itself may loosen the bound. (Under
//! `||u|| <= B w` with a declared `w <= max_weight`, an owner claiming `max_weight` against
//! honest owners of a few hundred samples outweighed them all.) The bounds, with `n`
//! contributors and `m_H` the mean of the others' updates (each of norm at most `B` under
//! `norm-bound` and `clip`):
//!
//! - `norm-bound:B`: one malicious owner moves the revealed mean update by at most `2 B / n` from
//!   `m_H` (`||a - m_H|| / n` with `||a|| <= B`), plus half a fixed-point unit per coordinate,
//!   and the revealed mean loss (scaled into `[0, 1]`) by at most `1 / n`;
//! - `clip:B`: the same, with `B` grown by the clipping's fixed-point error (0.1% of `B` and one
//!   unit per coordinate);
//! - `trimmed-mean:k` and `median`: each revealed coordinate lies between two honest owners'
//!   values as long as at most `k` (for the median, fewer than half) of the contributors are
//!   malicious.
//!
//! The robust rules need three servers and the 64-bit ring.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a round combines the uploads.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum AggregationRule {
    /// The sum of the committed updates.
    #[default]
    Mean,
    /// Only uploads with `||u / w|| <= bound` (and in range) join the sum.
    NormBound {
        /// The bound `B` on the norm of the update divided by its weight.
        bound: f64,
    },
    /// Each update scaled by `min(1, bound w / ||u||)` before it joins the sum.
    Clip {
        /// The bound `B` on the norm of the update divided by its weight after scaling.
        bound: f64,
    },
    /// Per coordinate, the mean without the `trim` smallest and `trim` largest values.
    TrimmedMean {
        /// Values dropped at each end.
        trim: usize,
    },
    /// Per coordinate, the median.
    Median,
}

/// A rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "aggregation rule {given:?}: {reason} (rules: mean, norm-bound:B, clip:B, trimmed-mean:k, median)"
)]
pub struct RuleParseError {
    /// What was given.
    pub given: String,
    /// Why it is refused.
    pub reason: String,
}

impl AggregationRule {
    /// Whether uploads are checked or transformed under MPC (three servers, 64-bit ring).
    pub fn is_robust(&self) -> bool {
        !matches!(self, AggregationRule::Mean)
    }

    /// Whether the rule sorts each coordinate over the contributors (`trimmed-mean`,
    /// `median`): the servers keep every upload until the close, and each owner counts once.
    pub fn is_order_statistic(&self) -> bool {
        matches!(
            self,
            AggregationRule::TrimmedMean { .. } | AggregationRule::Median
        )
    }

    /// Whether the servers keep each upload's (transformed) replicated sharing until the close
    /// instead of a running sum of the additive shares: `clip`, `trimmed-mean`, `median`.
    pub fn keeps_uploads(&self) -> bool {
        self.is_order_statistic() || matches!(self, AggregationRule::Clip { .. })
    }

    /// The values dropped at each end of a coordinate's sorted values when `contributors`
    /// contributed: 0 for the summing rules.
    pub fn trim(&self, contributors: usize) -> usize {
        match self {
            AggregationRule::TrimmedMean { trim } => *trim,
            AggregationRule::Median => contributors.saturating_sub(1) / 2,
            _ => 0,
        }
    }

    /// How many values each coordinate of the revealed sum adds up when `contributors`
    /// contributed (the model owner's count for its plausibility checks).
    pub fn values_summed(&self, contributors: usize) -> usize {
        contributors.saturating_sub(2 * self.trim(contributors))
    }
}

impl fmt::Display for AggregationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AggregationRule::Mean => write!(f, "mean"),
            AggregationRule::NormBound { bound } => write!(f, "norm-bound:{bound}"),
            AggregationRule::Clip { bound } => write!(f, "clip:{bound}"),
            AggregationRule::TrimmedMean { trim } => write!(f, "trimmed-mean:{trim}"),
            AggregationRule::Median => write!(f, "median"),
        }
    }
}

impl FromStr for AggregationRule {
    type Err = RuleParseError;

    /// `mean`, `norm-bound:B` (or `norm-bound(B)`), `clip:B`, `trimmed-mean:k` (or `trimmed-mean(k)`),
    /// `median`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |reason: &str| RuleParseError {
            given: s.to_owned(),
            reason: reason.to_owned(),
        };
        let t = s.trim();
        let (name, arg) = match t.find([':', '(']) {
            Some(i) => {
                let arg = t[i + 1..].trim_end_matches(')');
                (&t[..i], Some(arg.trim()))
            }
            None => (t, None),
        };
        let positive = |arg: Option<&str>| -> Result<f64, RuleParseError> {
            let a = arg.ok_or_else(|| refuse("needs its bound, e.g. norm-bound:2.5"))?;
            match a.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(refuse("the bound must be a positive number")),
            }
        };
        match name {
            "mean" if arg.is_none() => Ok(AggregationRule::Mean),
            "norm-bound" => Ok(AggregationRule::NormBound {
                bound: positive(arg)?,
            }),
            "clip" => Ok(AggregationRule::Clip {
                bound: positive(arg)?,
            }),
            "trimmed-mean" => match arg.map(str::parse::<usize>) {
                Some(Ok(trim)) => Ok(AggregationRule::TrimmedMean { trim }),
                _ => Err(refuse(
                    "needs how many values to drop at each end, e.g. trimmed-mean:1",
                )),
            },
            "median" if arg.is_none() => Ok(AggregationRule::Median),
            _ => Err(refuse("unknown rule")),
        }
    }
}

/// `B^2` is applied as `B^2 2^16` rounded down (and `||u||^2` scaled by `2^16` to match).
pub const BOUND_SHIFT: u32 = 16;

/// The public parameters of the `norm-bound` check, fixed by the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormBound {
    /// Parameters: the update's first coordinates; the weighted loss and the weight follow.
    pub params: usize,
    /// Every coordinate must lie in `[-2^range_bits, 2^range_bits)` (the weight in
    /// `[0, 2^(range_bits + 1))`).
    pub range_bits: u32,
    /// `B^2 2^16`, rounded down.
    pub bound_sq: u128,
    /// The smallest weight, in fixed point.
    pub min_weight: u64,
    /// The largest weight, in fixed point (the smallest under equal weights: one).
    pub max_weight: u64,
}

/// Settings whose check could overflow the 128-bit ring it runs in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("norm-bound check does not fit the 128-bit ring: {0}")]
pub struct NormBoundError(pub String);

/// The smallest `k` with `2^k > v` (at least 1).
fn bits_above(v: f64) -> u32 {
    (v.max(1.0).log2().floor() as u32) + 1
}

impl NormBound {
    /// The check for updates of `params` parameters encoded with `frac_bits` fractional bits,
    /// with weights in `[min_weight, max_weight]` (both one under the robust rules, see the
    /// module docs) and honest coordinates at most `max_weight * max(clip, 1)` in magnitude,
    /// against the bound `bound` on `||u / w||`. The range is the smallest honest owners fit;
    /// settings where the squares could reach `2^126` are refused.
    pub fn new(
        params: usize,
        frac_bits: u32,
        clip: f64,
        (min_weight, max_weight): (f64, f64),
        bound: f64,
    ) -> Result<Self, NormBoundError> {
        if !(bound.is_finite() && bound > 0.0) {
            return Err(NormBoundError(format!("bound {bound} must be positive")));
        }
        if !(min_weight > 0.0 && min_weight <= max_weight && max_weight.is_finite()) {
            return Err(NormBoundError(format!(
                "weights [{min_weight}, {max_weight}] must be a positive range"
            )));
        }
        let scale = f64::from(frac_bits).exp2();
        let range_bits = bits_above(max_weight * clip.max(1.0) * scale);
        let log_params = (params.max(1) as f64).log2().ceil() as u32;
        let norm_bits = 2 * range_bits + log_params + BOUND_SHIFT;
        let weight_bits = 2 * (range_bits + 1) + bits_above(bound * bound) + BOUND_SHIFT;
        if range_bits + 1 >= 63 || norm_bits > 125 || weight_bits > 125 {
            return Err(NormBoundError(format!(
                "coordinates up to 2^{range_bits} over {params} parameters and bound {bound} \
                 need {} bits",
                norm_bits.max(weight_bits)
            )));
        }
        Ok(NormBound {
            params,
            range_bits,
            bound_sq: (bound * bound * f64::from(1u32 << BOUND_SHIFT)) as u128,
            min_weight: (min_weight * scale).round() as u64,
            max_weight: (max_weight * scale).round() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_print_and_refuse_what_they_should() {
        for (s, rule) in [
            ("mean", AggregationRule::Mean),
            ("norm-bound:2.5", AggregationRule::NormBound { bound: 2.5 }),
            ("norm-bound(3)", AggregationRule::NormBound { bound: 3.0 }),
            ("clip:1.5", AggregationRule::Clip { bound: 1.5 }),
            ("trimmed-mean:2", AggregationRule::TrimmedMean { trim: 2 }),
            ("trimmed-mean(1)", AggregationRule::TrimmedMean { trim: 1 }),
            ("median", AggregationRule::Median),
        ] {
            assert_eq!(s.parse::<AggregationRule>(), Ok(rule));
            assert_eq!(rule.to_string().parse::<AggregationRule>(), Ok(rule));
        }
        for bad in [
            "norm-bound",
            "norm-bound:-1",
            "norm-bound:x",
            "krum",
            "mean:2",
            "trimmed-mean",
            "trimmed-mean:-1",
            "median:3",
        ] {
            assert!(
                matches!(
                    bad.parse::<AggregationRule>(),
                    Err(RuleParseError { given, .. }) if given == bad
                ),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&AggregationRule::NormBound { bound: 2.0 }).unwrap();
        assert_eq!(json, r#"{"rule":"norm-bound","bound":2.0}"#);
        // What each rule sums: all but 2k values, the middle one or two.
        let trimmed = AggregationRule::TrimmedMean { trim: 2 };
        assert_eq!(trimmed.values_summed(10), 6);
        assert_eq!(AggregationRule::Median.values_summed(10), 2);
        assert_eq!(AggregationRule::Median.values_summed(9), 1);
        assert_eq!(AggregationRule::Mean.values_summed(9), 9);
    }

    #[test]
    fn settings_that_could_wrap_the_wide_ring_are_refused() {
        let ok = NormBound::new(1 << 20, 16, 1.0, (1.0, 4096.0), 10.0).unwrap();
        assert_eq!(ok.range_bits, 29);
        // Equal weights: the range of one owner's clipped delta.
        let equal = NormBound::new(1 << 20, 16, 1.0, (1.0, 1.0), 10.0).unwrap();
        assert_eq!(
            (equal.range_bits, equal.min_weight, equal.max_weight),
            (17, 1 << 16, 1 << 16)
        );
        assert!(matches!(
            NormBound::new(1 << 20, 30, 1.0, (1.0, 1e9), 10.0),
            Err(NormBoundError(_))
        ));
        assert!(matches!(
            NormBound::new(10, 16, 1.0, (1.0, 10.0), 0.0),
            Err(NormBoundError(_))
        ));
        assert!(matches!(
            NormBound::new(10, 16, 1.0, (2.0, 1.0), 1.0),
            Err(NormBoundError(_))
        ));
    }
}
