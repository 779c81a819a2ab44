//! The privacy spent by a job's rounds: Rényi differential privacy (RDP) of the sampled Gaussian
//! mechanism, composed over rounds and converted to `(epsilon, delta)`.
//!
//! Method: the RDP of one round at integer order `a` is `log(A_a) / (a - 1)` with
//! `A_a = sum_k C(a, k) (1 - q)^(a - k) q^k exp((k^2 - k) / (2 z^2))` (Mironov, Talwar and
//! Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", 2019, Sec. 3.3;
//! `a / (2 z^2)` when every owner takes part, `q = 1`). Rounds compose by adding RDP. The
//! conversion to `(epsilon, delta)` is Canonne, Kamath and Steinke 2020, Prop. 12 (also Asoodeh
//! et al. 2020): `epsilon = rdp + log(1 - 1/a) - log(delta a) / (a - 1)`, minimised over the
//! orders `2..=256`. The same method and orders as Google's `dp_accounting` `RdpAccountant`
//! (`common/tests/dp_reference.rs` compares against figures a committed script has it compute).

/// The orders the accountant minimises over.
pub const ORDERS: std::ops::RangeInclusive<u32> = 2..=256;

/// `(epsilon, delta)` after some rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    /// Epsilon.
    pub epsilon: f64,
    /// Delta (as asked).
    pub delta: f64,
    /// The order that gave the smallest epsilon.
    pub order: u32,
}

/// RDP of one round of the sampled Gaussian mechanism with sampling rate `q` and noise
/// multiplier `z`, at integer order `a >= 2`.
pub fn rdp_sampled_gaussian(q: f64, z: f64, a: u32) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    let a_f = f64::from(a);
    if q >= 1.0 {
        return a_f / (2.0 * z * z);
    }
    let (log_q, log_1mq) = (q.ln(), (-q).ln_1p());
    let mut log_a = f64::NEG_INFINITY;
    for k in 0..=a {
        let k_f = f64::from(k);
        let term = log_binomial(a, k)
            + k_f * log_q
            + (a_f - k_f) * log_1mq
            + (k_f * k_f - k_f) / (2.0 * z * z);
        log_a = log_add(log_a, term);
    }
    log_a / (a_f - 1.0)
}

/// `(epsilon, delta)` after `rounds` rounds, each the sampled Gaussian with rate `q` and noise
/// multiplier `z`.
pub fn spent(q: f64, z: f64, rounds: u64, delta: f64) -> Spent {
    spent_of_rdp(|a| rounds as f64 * rdp_sampled_gaussian(q, z, a), delta)
}

/// `(epsilon, delta)` of a composed RDP curve, given as its value at each order of [`ORDERS`]
/// (a data owner's ledger adds up rounds of different jobs this way).
pub fn spent_of_rdp(rdp_at: impl Fn(u32) -> f64, delta: f64) -> Spent {
    let mut best = Spent {
        epsilon: f64::INFINITY,
        delta,
        order: 0,
    };
    for a in ORDERS {
        let rdp = rdp_at(a);
        let epsilon = rdp_to_epsilon(rdp, f64::from(a), delta);
        if epsilon < best.epsilon {
            best = Spent {
                epsilon,
                delta,
                order: a,
            };
        }
    }
    best.epsilon = best.epsilon.max(0.0);
    best
}

/// The `(epsilon, delta)` an RDP guarantee `rdp` at order `a` implies (CKS20 Prop. 12).
fn rdp_to_epsilon(rdp: f64, a: f64, delta: f64) -> f64 {
    if rdp <= 0.0 || delta * delta + (-rdp).exp_m1() > 0.0 {
        // The KL bound alone already gives delta at epsilon 0.
        return 0.0;
    }
    rdp + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
}

/// `log(C(n, k))`.
fn log_binomial(n: u32, k: u32) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// `log(exp(x) + exp(y))` without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let (hi, lo) = if x > y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `log(n!)`.
fn ln_factorial(n: u32) -> f64 {
    (2..=n).map(|i| f64::from(i).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_noise_or_fewer_rounds_spend_less() {
        let base = spent(0.1, 1.0, 100, 1e-5).epsilon;
        assert!(spent(0.1, 2.0, 100, 1e-5).epsilon < base);
        assert!(spent(0.1, 1.0, 10, 1e-5).epsilon < base);
        assert!(spent(0.01, 1.0, 100, 1e-5).epsilon < base);
        assert_eq!(spent(0.0, 1.0, 100, 1e-5).epsilon, 0.0);
    }

    #[test]
    fn full_participation_is_the_gaussian_mechanism() {
        for a in [2, 7, 64] {
            let direct = f64::from(a) / (2.0 * 1.3 * 1.3);
            // q just below 1 through the series: the same value.
            let series = rdp_sampled_gaussian(1.0 - 1e-12, 1.3, a);
            assert!((series - direct).abs() <= 1e-6 * direct, "order {a}");
        }
    }
}
