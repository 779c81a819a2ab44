//! Exact sampling from the discrete Gaussian `N_Z(0, s)` for an integer variance parameter `s`,
//! after Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
//! (NeurIPS 2020), Algorithms 1-3: Bernoulli trials of `exp(-n/d)` on integers only, a discrete
//! Laplace proposal, and a rejection step. No floating point touches a sample, so its
//! distribution is exactly the discrete Gaussian (`P(x) ∝ exp(-x^2 / 2s)`), not an approximation
//! whose tails a float's rounding shapes.
//!
//! `s` is the variance parameter (`sigma^2`); the variance of the draws is below `s` by less
//! than `s * 10^-30` for `s >= 1` (CKS20, Prop. 19).

use rand::{Rng, RngExt};

/// The largest variance parameter the sampler takes: its integer arithmetic then stays within
/// `u128` (the proposal's scale `t <= 2^24`, draws below `2^40` with all but `2^-60` probability,
/// and `(|y| t - s)^2 < 2^128`).
pub const MAX_VARIANCE: u128 = 1 << 46;

/// One draw of `N_Z(0, s)`: `s` in `[1, MAX_VARIANCE]`.
pub fn discrete_gaussian(rng: &mut impl Rng, s: u128) -> i64 {
    assert!((1..=MAX_VARIANCE).contains(&s), "variance {s} out of range");
    // t = floor(sigma) + 1, the discrete Laplace scale the rejection step is tuned for.
    let t = isqrt(s) + 1;
    loop {
        let y = discrete_laplace(rng, t);
        let a = u128::from(y.unsigned_abs());
        // Accept with probability exp(-(|y| - s/t)^2 / 2s) = exp(-(|y| t - s)^2 / (2 s t^2)).
        let diff = (a * t).abs_diff(s);
        let Some(num) = diff.checked_mul(diff) else {
            continue; // exp(-2^128 / 2^96): never accepted in practice, so reject.
        };
        if bernoulli_exp(rng, num, 2 * s * t * t) {
            return y;
        }
    }
}

/// One draw of the discrete Laplace distribution with scale `t` (`P(x) ∝ exp(-|x| / t)`),
/// CKS20 Algorithm 2 with `s = 1`.
fn discrete_laplace(rng: &mut impl Rng, t: u128) -> i64 {
    loop {
        let u = rng.random_range(0..t);
        if !bernoulli_exp(rng, u, t) {
            continue;
        }
        let mut v = 0u128;
        while bernoulli_exp(rng, 1, 1) {
            v += 1;
        }
        let x = u + t * v;
        let negative = rng.random_bool(0.5);
        if negative && x == 0 {
            continue;
        }
        let x = x as i64;
        return if negative { -x } else { x };
    }
}

/// A Bernoulli trial with success probability `exp(-num / den)` (CKS20 Algorithm 1): for
/// `gamma = num/den <= 1` by the alternating series, beyond by `floor(gamma)` trials of `exp(-1)`
/// and one of the fractional rest.
fn bernoulli_exp(rng: &mut impl Rng, num: u128, den: u128) -> bool {
    debug_assert!(den > 0);
    let mut whole = num / den;
    while whole > 0 {
        if !bernoulli_exp_at_most_one(rng, 1, 1) {
            return false;
        }
        whole -= 1;
    }
    bernoulli_exp_at_most_one(rng, num % den, den)
}

/// `exp(-num / den)` for `num <= den`: the number of successive successes of trials with
/// probabilities `gamma / k`, `k = 1, 2, ...`, is odd with probability `1 - exp(-gamma)`.
fn bernoulli_exp_at_most_one(rng: &mut impl Rng, num: u128, den: u128) -> bool {
    let mut k = 1u128;
    loop {
        // P(success) = num / (den k).
        if rng.random_range(0..den * k) >= num {
            return k % 2 == 1;
        }
        k += 1;
    }
}

/// `floor(sqrt(x))`.
fn isqrt(x: u128) -> u128 {
    let mut r = (x as f64).sqrt() as u128;
    while r * r > x {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= x {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn bernoulli_exp_has_its_probability() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        for (num, den) in [(1u128, 3u128), (5, 2), (0, 1)] {
            let p = (-(num as f64) / den as f64).exp();
            let hits = (0..n).filter(|_| bernoulli_exp(&mut rng, num, den)).count() as f64;
            // Binomial: the count is within 6 standard deviations with probability 1 - 2e-9.
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (hits - n as f64 * p).abs() <= 6.0 * sd + 1e-9,
                "exp(-{num}/{den}): {hits} of {n}, expected {}",
                n as f64 * p
            );
        }
    }

    #[test]
    fn the_draws_have_the_discrete_gaussian_law() {
        let mut rng = StdRng::seed_from_u64(11);
        // Small variance: the frequency of each value against exp(-x^2/2s) / Z.
        let s = 4u128;
        let n = 200_000;
        let mut counts = std::collections::HashMap::<i64, usize>::new();
        for _ in 0..n {
            *counts.entry(discrete_gaussian(&mut rng, s)).or_default() += 1;
        }
        let mass = |x: i64| (-((x * x) as f64) / (2.0 * s as f64)).exp();
        let z: f64 = (-60..=60).map(mass).sum();
        for x in -6..=6 {
            let p = mass(x) / z;
            let got = *counts.get(&x).unwrap_or(&0) as f64;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (got - n as f64 * p).abs() <= 6.0 * sd,
                "P({x}): {got} of {n}, expected {}",
                n as f64 * p
            );
        }
        // A large variance (sigma = 2^16, one unit of a 16-bit fixed point): mean and variance.
        // The sample variance of n draws has standard deviation s sqrt(2/n) (kurtosis 3); the
        // mean sqrt(s/n). Both within 6 of them.
        let s = 1u128 << 32;
        let n = 50_000;
        let draws: Vec<f64> = (0..n)
            .map(|_| discrete_gaussian(&mut rng, s) as f64)
            .collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
        let s = s as f64;
        assert!(mean.abs() <= 6.0 * (s / n as f64).sqrt(), "mean {mean}");
        assert!(
            (var - s).abs() <= 6.0 * s * (2.0 / n as f64).sqrt(),
            "variance {var}, expected {s}"
        );
    }

    #[test]
    fn isqrt_is_the_floor() {
        for x in [0u128, 1, 2, 3, 4, 15, 16, 17, (1 << 46) - 1, 1 << 46] {
            let r = isqrt(x);
            assert!(r * r <= x && (r + 1) * (r + 1) > x, "{x}");
        }
    }
}
