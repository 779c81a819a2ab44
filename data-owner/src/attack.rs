//! Malicious data owners, for attacks in simulated mode (`simulate --attackers K --attack A`).
//!
//! An attacker holds a legitimate key and follows the protocol; what it controls is what a
//! malicious owner can send: any vector and any weight. Each attack starts from the owner's
//! honest update `(w delta, w loss, w)` and claims the largest weight an honest owner may send
//! (`max_weight`, or one where every owner counts once: a larger claim is refused outright by
//! the servers under the robust rules):
//!
//! - `scale:F`: the delta times `F` (past the clip bound);
//! - `sign-flip[:F]`: the delta negated and times `F` (10 unless given);
//! - `gaussian:S`: the delta replaced by Gaussian noise of standard deviation `S`;
//! - `label-flip`: trained on the labels `c - 1 - y` (`c` classes); the update is formed
//!   honestly from that training.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use tessera_common::dataset::Dataset;
use tessera_common::job::JobSettings;

use crate::node::RoundHook;

/// An attack a malicious data owner mounts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attack {
    /// The delta times the factor.
    Scale(f64),
    /// The delta negated, times the factor.
    SignFlip(f64),
    /// The delta replaced by Gaussian noise of this standard deviation.
    Gaussian(f64),
    /// Training on flipped labels.
    LabelFlip,
}

/// An attack that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attack {given:?}: {reason} (attacks: scale:F, sign-flip[:F], gaussian:S, label-flip)")]
pub struct AttackParseError {
    /// What was given.
    pub given: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl FromStr for Attack {
    type Err = AttackParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| AttackParseError {
            given: s.to_owned(),
            reason,
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let number = |arg: Option<&str>| -> Result<f64, AttackParseError> {
            arg.ok_or_else(|| refuse("needs its parameter"))?
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| refuse("the parameter must be a positive number"))
        };
        match name {
            "scale" => Ok(Attack::Scale(number(arg)?)),
            "sign-flip" => Ok(Attack::SignFlip(match arg {
                None => 10.0,
                some => number(some)?,
            })),
            "gaussian" => Ok(Attack::Gaussian(number(arg)?)),
            "label-flip" if arg.is_none() => Ok(Attack::LabelFlip),
            _ => Err(refuse("unknown attack")),
        }
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::Scale(k) => write!(f, "scale:{k}"),
            Attack::SignFlip(k) => write!(f, "sign-flip:{k}"),
            Attack::Gaussian(s) => write!(f, "gaussian:{s}"),
            Attack::LabelFlip => write!(f, "label-flip"),
        }
    }
}

impl Attack {
    /// The data the attacker trains on: its own, with the labels flipped under `label-flip`.
    pub fn poison(&self, data: &Dataset) -> Dataset {
        let mut d = data.clone();
        if *self == Attack::LabelFlip {
            let top = d.num_classes.saturating_sub(1) as u8;
            for y in &mut d.labels {
                *y = top - *y;
            }
        }
        d
    }

    /// The update the attacker sends, from its honest one `(w delta, w loss, w)`.
    pub fn craft(&self, settings: &JobSettings, honest: &[f64], rng: &mut impl Rng) -> Vec<f64> {
        let p = settings.num_params;
        let w = honest[p + 1].max(f64::MIN_POSITIVE);
        let claim = settings.weight_range().1;
        let delta = |i: usize| honest[i] / w;
        let mut out: Vec<f64> = (0..p)
            .map(|i| match self {
                Attack::Scale(k) => k * delta(i),
                Attack::SignFlip(k) => -k * delta(i),
                Attack::Gaussian(s) => s * standard_normal(rng),
                Attack::LabelFlip => delta(i),
            })
            .map(|d| d * claim)
            .collect();
        out.push(honest[p] / w * claim);
        out.push(claim);
        out
    }
}

impl RoundHook for Attack {
    fn data(&self, own: &Dataset) -> Dataset {
        self.poison(own)
    }

    fn update(&self, settings: &JobSettings, honest: Vec<f64>) -> Vec<f64> {
        self.craft(settings, &honest, &mut rand::rng())
    }
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_parse_and_print() {
        for (s, a) in [
            ("scale:100", Attack::Scale(100.0)),
            ("sign-flip", Attack::SignFlip(10.0)),
            ("sign-flip:4", Attack::SignFlip(4.0)),
            ("gaussian:0.5", Attack::Gaussian(0.5)),
            ("label-flip", Attack::LabelFlip),
        ] {
            assert_eq!(s.parse::<Attack>(), Ok(a));
            assert_eq!(a.to_string().parse::<Attack>(), Ok(a));
        }
        for bad in ["scale", "scale:-1", "gaussian:x", "label-flip:2", "krum"] {
            assert!(
                matches!(
                    bad.parse::<Attack>(),
                    Err(AttackParseError { given, .. }) if given == bad
                ),
                "{bad}"
            );
        }
    }
}
