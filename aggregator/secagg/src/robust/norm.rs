//! The `norm-bound` check on one replicated upload: every coordinate in range, the weight in
//! the job's window (exactly one under the robust rules: every owner counts once, see
//! [`tessera_common::rule`]), the loss coordinate in `[0, w]`, and `||u|| <= B w` (the L2 norm
//! of the update divided by its weight at most `B`), computed under ABY3 so that only the
//! verdict bit is opened, to the servers.
//!
//! The upload `x = (u, loss w, w)` lives in the 64-bit ring, where a malicious owner may put any
//! value: squares there wrap (`2^32` squares to `0`), so the norm is computed in the 128-bit
//! ring on the exactly lifted values, after an exact range check shows it cannot wrap there:
//!
//! 1. `y = x + 2^k` (the weight: `y = w`); one bit-plane circuit ([`range_and_wraps`]) gives
//!    whether `y < 2^(k+1)`, i.e. `-2^k <= x < 2^k` (the weight `0 <= w < 2^(k+1)`), and how
//!    often `y`'s shares wrapped as an integer sum (arithmetic, modulo `2^64`), without `y`'s
//!    bits.
//! 2. Range: one AND over every coordinate's range bit ([`and_all`]).
//! 3. Lift: the shares zero-extended to 128 bits, less `2^64` per wrap (the count modulo `2^64`
//!    is enough for a multiple of `2^64`), less the offset: the exact `x` in the 128-bit ring.
//! 4. `B^2 w^2 - ||u||^2`, `w - min_weight`, `max_weight - w`, `loss w` and `w - loss w`, all
//!    `>= 0` ([`window_slack`]), with `||u||^2` one inner product (one resharing) and the signs
//!    from one A2B of 128-bit values; the range bit ANDed in and the result opened. `k` is the
//!    smallest range honest owners fit (`max_weight * max(clip, 1)` in fixed point), and
//!    `NormBound::new` refuses settings where the squares could reach `2^126`.

use tessera_common::net::Network;

use super::replicate::{Component, replicate};
use tessera_common::rule::{BOUND_SHIFT, NormBound};
use tessera_mpc::aby3::boolean::{a2b, and_all};
use tessera_mpc::aby3::range::range_and_wraps;
use tessera_mpc::aby3::{Aby3Bits, Aby3Tensor, Shared, mul, open, sum_squares};
use tessera_mpc::error::Invalid;
use tessera_mpc::{MpcError, Session};

/// Whether the upload whose component this server holds passes [`NormBound`]: the conversion to
/// replicated shares ([`replicate`]) then [`norm_bound_verdict`].
pub async fn check_upload<N: Network>(
    session: &Session<N>,
    mine: &Component,
    len: usize,
    check: &NormBound,
) -> Result<bool, MpcError> {
    let shared = replicate(session, mine, len).await?;
    norm_bound_verdict(session, &shared, check).await
}

/// Whether the replicated upload `x` (`params + 2` elements) passes [`NormBound`]: the bit every
/// server learns, and nothing else.
pub async fn norm_bound_verdict<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<u64>,
    check: &NormBound,
) -> Result<bool, MpcError> {
    let (in_range, lifted) = lift_checked(session, x, check.range_bits).await?;
    let me = session.me();
    let p = check.params;
    let norm_sq = sum_squares(session, &lifted, p).await?;
    let w = lifted.map_local(&[1], |v| vec![v[p + 1]])?;
    let w_sq = mul(session, &w, &w).await?;
    let norm_slack = w_sq
        .scale(check.bound_sq)
        .sub(&norm_sq.scale(1u128 << BOUND_SHIFT))?;
    let slack = Shared::concat(&[&norm_slack, &window_slack(me, &lifted, check)?]);
    all_nonnegative_in_range(session, &slack, &in_range).await
}

/// Whether the replicated upload `x` is in range with its weight and loss in their windows
/// (`norm-bound` without the norm: the check under `mean`, see
/// [`tessera_common::job::JobSettings::checks_uploads`]): the bit every server learns.
pub async fn range_verdict<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<u64>,
    check: &NormBound,
) -> Result<bool, MpcError> {
    let (in_range, lifted) = lift_checked(session, x, check.range_bits).await?;
    let window = window_slack(session.me(), &lifted, check)?;
    all_nonnegative_in_range(session, &window, &in_range).await
}

/// The values that are all non-negative exactly when the lifted upload `(u, loss w, w)`'s
/// weight lies in `[min_weight, max_weight]` and its loss coordinate in `[0, w]` (the loss is
/// scaled into `[0, 1]` before weighting, so an owner can move the mean loss no more than the
/// mean update, and cannot push it below zero to have the round thrown away): `w - min_weight`,
/// `max_weight - w`, `loss w`, `w - loss w`. Local: no communication.
pub fn window_slack(
    me: usize,
    lifted: &Aby3Tensor<u128>,
    check: &NormBound,
) -> Result<Aby3Tensor<u128>, MpcError> {
    let p = check.params;
    let loss = lifted.map_local(&[1], |v| vec![v[p]])?;
    let w = lifted.map_local(&[1], |v| vec![v[p + 1]])?;
    let above_min = w.add_public(me, &[u128::from(check.min_weight).wrapping_neg()])?;
    let below_max = w.neg().add_public(me, &[u128::from(check.max_weight)])?;
    let loss_below_w = w.sub(&loss)?;
    Ok(Shared::concat(&[
        &above_min,
        &below_max,
        &loss,
        &loss_below_w,
    ]))
}

/// Whether every element of `slack` is non-negative and the range bit `in_range` (bit 0) is
/// set: the one bit opened, to the servers.
pub async fn all_nonnegative_in_range<N: Network>(
    session: &Session<N>,
    slack: &Aby3Tensor<u128>,
    in_range: &Aby3Bits<u64>,
) -> Result<bool, MpcError> {
    let me = session.me();
    // Bit 0: the sign of each slack (1: negative, the check failed); the bits above are 0.
    let negative: Aby3Bits<u128> = a2b(session, slack).await?.shr(127);
    let verdict = Shared::concat(&[&negative.not(me), &bit0_else_ones(me, &in_range.widen())?]);
    let all = and_all(session, &verdict).await?;
    let op = session.op("secagg_verdict");
    Ok(open(session, &op, &all).await?[0] & 1 == 1)
}

/// Keeps bit 0 of each element and sets every other bit, so an [`and_all`] over several such
/// values is the AND of their bit 0.
fn bit0_else_ones(me: usize, x: &Aby3Bits<u128>) -> Result<Aby3Bits<u128>, MpcError> {
    let n = x.len();
    x.mul_public(&vec![1; n])?.add_public(me, &vec![!1u128; n])
}

/// Range-checks every coordinate of the upload and lifts it exactly into the 128-bit ring:
/// returns the range bit (bit 0: every coordinate in range) and the lifted upload. Coordinates
/// out of range lift to what their shares sum to; the range bit says not to trust them.
pub async fn lift_checked<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<u64>,
    range_bits: u32,
) -> Result<(Aby3Bits<u64>, Aby3Tensor<u128>), MpcError> {
    let me = session.me();
    let n = x.len();
    if n < 2 || range_bits + 1 >= 64 {
        return Err(Invalid::RangeCheck {
            elements: n,
            range_bits,
        }
        .into());
    }
    // The weight (last) must be non-negative: no offset for it.
    let mut offsets = vec![1u64 << range_bits; n];
    offsets[n - 1] = 0;
    let y = x.add_public(me, &offsets)?;
    let (in_range, wraps) = range_and_wraps(session, &y, range_bits as usize + 1).await?;
    let in_range = and_all(session, &in_range).await?;
    // Each share zero-extended, less 2^64 per wrap, less the offset (a public value: slot 0,
    // this server's first share at server 0 and its second at server 2), in one pass. Only the
    // wrap count times 2^64 matters in the 128-bit ring, so its shares modulo 2^64 serve.
    let lift = |y: &[u64], w: &[u64], public: bool| -> Vec<u128> {
        y.iter()
            .zip(w)
            .zip(&offsets)
            .map(|((y, w), o)| {
                let v = u128::from(*y).wrapping_sub(u128::from(*w) << 64);
                if public {
                    v.wrapping_sub(u128::from(*o))
                } else {
                    v
                }
            })
            .collect()
    };
    let ((y0, y1), (w0, w1)) = (y.shares(), wraps.shares());
    let lifted = Shared::from_parts(lift(y0, w0, me == 0), lift(y1, w1, me == 2), y.shape());
    Ok((in_range, lifted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::replicate::components_of;
    use tessera_common::prg::Seed;
    use tessera_mpc::harness::run_local;

    const F: u32 = 16;

    fn fx(v: f64) -> u64 {
        (v * f64::from(1u32 << F)).round() as i64 as u64
    }

    /// Shares `x` as an upload does (explicit vector + two seeds) and runs the check.
    async fn verdict(x: Vec<u64>, check: NormBound) -> bool {
        let len = x.len();
        let components = components_of(&x, [Seed([1; 32]), Seed([2; 32])]);
        let out = run_local(3, move |session| {
            let mine = components[session.me()].clone();
            async move { check_upload(&session, &mine, len, &check).await }
        })
        .await
        .unwrap();
        assert!(out.iter().all(|v| *v == out[0]), "servers disagree");
        out[0]
    }

    /// An upload `(w u, 0.5 w, w)` with `u` of norm `norm` spread over `params` coordinates.
    fn upload(params: usize, norm: f64, w: f64) -> Vec<u64> {
        let per = norm / (params as f64).sqrt();
        let mut x: Vec<u64> = (0..params)
            .map(|i| fx(if i % 2 == 0 { per * w } else { -per * w }))
            .collect();
        x.push(fx(0.5 * w));
        x.push(fx(w));
        x
    }

    #[tokio::test]
    async fn the_verdict_follows_the_norm_the_range_and_the_weight() {
        let params = 64;
        let check = NormBound::new(params, F, 1.0, (1.0, 100.0), 2.0).unwrap();
        assert_eq!(check.range_bits, 23);
        // Honest, and at the edge on each side (B = 2, 1% margin for the fixed point).
        assert!(verdict(upload(params, 1.0, 3.0), check).await);
        assert!(verdict(upload(params, 1.98, 7.0), check).await);
        assert!(!verdict(upload(params, 2.02, 7.0), check).await);
        // Scaled by 100: rejected.
        assert!(!verdict(upload(params, 100.0, 3.0), check).await);
        // A coordinate whose square wraps the 64-bit ring to 0: in the 64-bit ring its norm
        // would be that of the rest. Out of range, rejected.
        let mut wrap = upload(params, 0.5, 3.0);
        wrap[5] = 1u64 << 32;
        assert!(!verdict(wrap, check).await);
        // Four coordinates of 2^63: their squares sum to 2^128, which is 0 in the 128-bit ring,
        // so only the range check stands between them and the sum.
        let mut wide = upload(params, 0.0, 1.0);
        for c in &mut wide[..4] {
            *c = 1u64 << 63;
        }
        assert!(!verdict(wide, check).await);
        // A large negative coordinate just past the range, with a weight that would cover it.
        let mut low = upload(params, 0.5, 90.0);
        low[0] = (-(1i64 << 23) - 1) as u64;
        assert!(!verdict(low, check).await);
        // A weight above max_weight, or negative.
        assert!(!verdict(upload(params, 1.0, 101.0), check).await);
        let mut negative = upload(params, 0.0, 1.0);
        negative[params + 1] = fx(-1.0);
        assert!(!verdict(negative, check).await);
        // A weight below the window: refused, even with the zero update.
        assert!(!verdict(upload(params, 0.0, 0.5), check).await);
        assert!(verdict(upload(params, 0.0, 1.0), check).await);
        // The loss coordinate outside [0, w]: one unit below zero, one unit above the weight.
        let mut below = upload(params, 0.5, 3.0);
        below[params] = u64::MAX;
        assert!(!verdict(below, check).await);
        let mut above = upload(params, 0.5, 3.0);
        above[params] = fx(3.0) + 1;
        assert!(!verdict(above, check).await);
        let mut edge = upload(params, 0.5, 3.0);
        edge[params] = fx(3.0);
        assert!(verdict(edge.clone(), check).await);
        edge[params] = 0;
        assert!(verdict(edge, check).await);
    }

    /// Equal weights (the robust rules): the weight must be exactly one unit of `2^16`.
    #[tokio::test]
    async fn under_equal_weights_only_weight_one_passes() {
        let params = 16;
        let check = NormBound::new(params, F, 1.0, (1.0, 1.0), 2.0).unwrap();
        assert!(verdict(upload(params, 1.9, 1.0), check).await);
        for w in [1.0 + 1.0 / 65536.0, 1.0 - 1.0 / 65536.0, 4096.0, 0.0] {
            assert!(!verdict(upload(params, 0.1, w), check).await, "weight {w}");
        }
    }
}
