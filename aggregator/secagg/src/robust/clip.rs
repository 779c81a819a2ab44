//! `clip:B`: each upload's update scaled by `min(1, B w / ||u||)` under ABY3 before it joins the
//! sum, so that `||u|| <= B w` afterwards (the norm of the update divided by its weight at most
//! `B`, as `norm-bound` demands) without refusing the owner.
//!
//! 1. The upload is converted, range-checked and lifted into the 128-bit ring exactly as for
//!    `norm-bound` ([`lift_checked`]); `||u||^2` is one inner product.
//! 2. The range bit, the weight window and the loss coordinate in `[0, w]`
//!    ([`window_slack`]) are the only opened bit: an upload out of range, with a weight other
//!    than one (every owner counts once under the robust rules) or with a loss outside its
//!    window is refused (`RuleRejected`), since no honest owner sends one.
//! 3. `c = min(1, B w / sqrt(||u||^2))` in fixed point with 32 fractional bits: `1 / sqrt` by
//!    [`inv_sqrt_wide`] over `[lo, hi]`, `hi` the largest `||u||^2` the range allows and
//!    `lo = (B min_weight)^2` (below `lo` the factor exceeds one, and the Newton iteration may
//!    stop short there, which the minimum with one absorbs), then the minimum by one comparison
//!    (`drelu`) and one product.
//! 4. `u c` truncated back to the job's fixed point, the loss and weight unchanged, reduced to
//!    the 64-bit ring (local): the clipped upload, replicated, which the close sums.
//!
//! The truncations are ABY3's two-share ones in the 128-bit ring (off by at most one unit, wrong
//! with probability about `|x| / 2^127`): the sum is exact up to one unit per coordinate and
//! owner, not bit-exact as under `mean` and `norm-bound`.

use std::sync::Arc;

use tessera_common::net::Network;

use super::norm::{all_nonnegative_in_range, lift_checked, window_slack};
use super::replicate::{Component, replicate};
use tessera_common::fixed::fx;
use tessera_common::rule::NormBound;
use tessera_mpc::aby3::boolean::drelu;
use tessera_mpc::aby3::{Aby3Tensor, Shared, mul, sum_squares};
use tessera_mpc::approx::inv_sqrt_wide;
use tessera_mpc::protocol::{Aby3, Protocol};
use tessera_mpc::{MpcError, Session};

/// Fractional bits of the scale factor's computation.
const FACTOR_BITS: u32 = 32;

/// The clipped upload, replicated in the 64-bit ring, or `None` if it is out of range or its
/// weight or loss is outside its window (the one bit the servers learn). `check` holds the range and weight cap of
/// `norm-bound` with the same bound, `frac_bits` the job's fixed point.
pub async fn clip_upload<N: Network>(
    session: &Arc<Session<N>>,
    mine: &Component,
    len: usize,
    check: &NormBound,
    bound: f64,
    frac_bits: u32,
) -> Result<Option<Aby3Tensor<u64>>, MpcError> {
    let x = replicate(session, mine, len).await?;
    clip_replicated(session, &x, check, bound, frac_bits).await
}

/// [`clip_upload`] of an upload already in replicated sharing.
pub async fn clip_replicated<N: Network>(
    session: &Arc<Session<N>>,
    x: &Aby3Tensor<u64>,
    check: &NormBound,
    bound: f64,
    frac_bits: u32,
) -> Result<Option<Aby3Tensor<u64>>, MpcError> {
    let me = session.me();
    let p = check.params;
    let (in_range, lifted) = lift_checked(session, x, check.range_bits).await?;
    let parts = lifted.split(&[&[p], &[1], &[1]])?;
    let (u, loss, w) = (&parts[0], &parts[1], &parts[2]);
    let window = window_slack(me, &lifted, check)?;
    if !all_nonnegative_in_range(session, &window, &in_range).await? {
        return Ok(None);
    }
    // ||u||^2 with 2f fractional bits.
    let norm_sq = sum_squares(session, u, p).await?;
    let proto = Aby3::<N, u128>::in_ring(Arc::clone(session), FACTOR_BITS)?;
    let unit = f64::from(frac_bits).exp2();
    let largest = (1u128 << check.range_bits) as f64 / unit;
    let hi = p as f64 * largest * largest;
    let lo = (bound * check.min_weight as f64 / unit).powi(2);
    let inv_norm = inv_sqrt_wide(&proto, &norm_sq, 2 * frac_bits, lo, hi).await?;
    // B w with FACTOR_BITS fractional bits, then the factor B w / ||u||.
    let bw = proto
        .truncate(&w.scale(fx(bound, FACTOR_BITS)), frac_bits)
        .await?;
    let factor = proto.mul_trunc(&bw, &inv_norm, FACTOR_BITS).await?;
    // c = 1 + [factor <= 1] (factor - 1). The factor stays below 3.8 max_weight (Newton from
    // below stops within 3.8 / sqrt(lo) of zero), far inside the comparison's 2^31.
    let one: u128 = fx(1.0, FACTOR_BITS);
    let small = drelu(session, &factor.neg().add_public(me, &[one])?).await?;
    let excess = factor.add_public(me, &[one.wrapping_neg()])?;
    let c = mul(session, &small, &excess)
        .await?
        .add_public(me, &[one])?;
    let spread = c.map_local(&[p], |v| vec![v[0]; p])?;
    let clipped = proto.mul_trunc(u, &spread, FACTOR_BITS).await?;
    Ok(Some(Shared::concat(&[&clipped, loss, w]).low64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::replicate::components_of;
    use tessera_common::prg::Seed;
    use tessera_mpc::harness::run_local;

    const F: u32 = 16;

    fn fx16(v: f64) -> u64 {
        (v * 65536.0).round() as i64 as u64
    }

    /// Clips `(w u, loss w, w)` with `u` of norm `norm` over `params` coordinates; returns the
    /// opened result as reals, or `None` if refused.
    async fn clipped(params: usize, norm: f64, w: f64, bound: f64) -> Option<Vec<f64>> {
        let per = norm / (params as f64).sqrt();
        let mut x: Vec<u64> = (0..params)
            .map(|i| fx16(if i % 3 == 0 { -per * w } else { per * w }))
            .collect();
        x.push(fx16(0.25 * w));
        x.push(fx16(w));
        let len = x.len();
        let check = NormBound::new(params, F, 1.0, (1.0, 100.0), bound).unwrap();
        let components = components_of(&x, [Seed([3; 32]), Seed([4; 32])]);
        let out = run_local(3, move |session| {
            let mine = components[session.me()].clone();
            async move {
                let r = clip_upload(&session, &mine, len, &check, bound, F).await?;
                Ok(r.map(|t| t.shares().0.to_vec()))
            }
        })
        .await
        .unwrap();
        let parts: Vec<Vec<u64>> = out.into_iter().collect::<Option<_>>()?;
        Some(
            (0..len)
                .map(|i| {
                    let v = parts[0][i]
                        .wrapping_add(parts[1][i])
                        .wrapping_add(parts[2][i]);
                    v as i64 as f64 / 65536.0
                })
                .collect(),
        )
    }

    fn norm_over_weight(v: &[f64], params: usize) -> f64 {
        let w = v[params + 1];
        v[..params].iter().map(|x| x * x).sum::<f64>().sqrt() / w
    }

    #[tokio::test]
    async fn long_updates_shrink_to_the_bound_and_short_ones_stay() {
        let params = 100;
        // 3 B: scaled to B (fixed point: within 0.1% and one unit per coordinate).
        let long = clipped(params, 6.0, 7.0, 2.0).await.expect("in range");
        let n = norm_over_weight(&long, params);
        assert!((n - 2.0).abs() < 2e-3, "norm over weight {n}");
        assert_eq!((long[params], long[params + 1]), (0.25 * 7.0, 7.0));
        // 6 B at the largest weight (coordinates of 120, within the range of 128): clipped.
        let attack = clipped(params, 12.0, 100.0, 2.0).await.expect("in range");
        assert!((norm_over_weight(&attack, params) - 2.0).abs() < 2e-3);
        // Half the bound: unchanged up to one unit per coordinate (the truncation).
        let short = clipped(params, 1.0, 3.0, 2.0).await.expect("in range");
        let per = 1.0 / 10.0 * 3.0;
        assert!(
            short[..params]
                .iter()
                .all(|v| (v.abs() - per).abs() <= 2.0 / 65536.0)
        );
        // The zero update stays zero.
        let zero = clipped(params, 0.0, 1.0, 2.0).await.expect("in range");
        assert!(zero[..params].iter().all(|v| v.abs() <= 1.0 / 65536.0));
        // Over the weight cap or under its floor: refused.
        assert!(clipped(params, 1.0, 101.0, 2.0).await.is_none());
        assert!(clipped(params, 1.0, 0.5, 2.0).await.is_none());
    }
}
