//! ShareConvert (SecureNN Algorithm 4): shares of `a` in `Z_{2^64}` to shares in `Z_{2^64 - 1}`,
//! for `a != 2^64 - 1`.
//!
//! Over the odd ring `2^64 = 1`, so `a = a0 + a1 - wrap(a0, a1)`; the protocol computes shares of
//! `theta = wrap(a0, a1)` without revealing it: the computing servers mask `a` with a common
//! random `r = r0 + r1` (`alpha = wrap(r0, r1)` known to both), the helper sees only
//! `x = a + r` and deals shares of the bits of `x` and of `delta = wrap(x0, x1)`, and
//! PrivateCompare decides `x >= r` (which is `NOT wrap(a, r)`) under a common random bit `eta''`.
//! Then `theta = beta0 + beta1 + delta - alpha - 1 + eta` with `beta_j = wrap(a_j, r_j)` and
//! `eta = eta' XOR eta''`. Four rounds.

use crate::error::PartyError;
use tessera_common::net::Network;

use super::HELPER;
use super::compare::private_compare;
use super::zn::{Deal, X_BITS, Zn, deal, deal_bits, dealt, dealt_bits, wraps};
use crate::pond::PondTensor;
use crate::{MpcError, Session};

const DELTA: Deal = Deal {
    part: "delta",
    stream: 3,
    zn: Zn::Odd,
};
const ETA: Deal = Deal {
    part: "eta",
    stream: 4,
    zn: Zn::Odd,
};

/// This server's share of `a` in `Z_{2^64 - 1}` (empty at the helper).
pub async fn share_convert<N: Network>(
    session: &Session<N>,
    a: &PondTensor<u64>,
) -> Result<Vec<u64>, MpcError> {
    let op = session.op("snn_share_convert");
    let before = session.net_stats();
    let me = session.me();
    let n: usize = a.shape().iter().product();
    let odd = Zn::Odd;
    if me == HELPER {
        let a0 = session.recv_vec::<u64>(0, &op, "masked", n).await?;
        let a1 = session.recv_vec::<u64>(1, &op, "masked", n).await?;
        let x: Vec<u64> = a0
            .iter()
            .zip(&a1)
            .map(|(p, q)| p.wrapping_add(*q))
            .collect();
        let delta: Vec<u64> = a0.iter().zip(&a1).map(|(p, q)| wraps(*p, *q)).collect();
        deal_bits(session, &op, X_BITS, &x).await?;
        deal(session, &op, DELTA, &delta).await?;
        let eta1 = private_compare(session, &op, &[], &[], &[], n)
            .await?
            .unwrap_or_default();
        deal(session, &op, ETA, &eta1).await?;
        session.record(&op, before);
        return Ok(Vec::new());
    }
    let share = a.share().ok_or(PartyError::NoShare(me))?.as_slice();
    // Common randomness of server0 and server1.
    let mut common = session.shared_prg(1 - me, &op, 1)?;
    let eta2: Vec<u64> = common.ring_vec::<u64>(n).iter().map(|v| v & 1).collect();
    let r: Vec<u64> = common.ring_vec(n);
    let r0: Vec<u64> = common.ring_vec(n);
    let r1: Vec<u64> = r.iter().zip(&r0).map(|(a, b)| a.wrapping_sub(*b)).collect();
    let mine = if me == 0 { &r0 } else { &r1 };
    let masked: Vec<u64> = share
        .iter()
        .zip(mine)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    session.send_vec(HELPER, &op, "masked", &masked).await?;
    let x_bits = dealt_bits(session, &op, X_BITS, 64 * n).await?;
    let delta = dealt(session, &op, DELTA, n).await?;
    let r_minus_1: Vec<u64> = r.iter().map(|v| v.wrapping_sub(1)).collect();
    private_compare(session, &op, &x_bits, &r_minus_1, &eta2, n).await?;
    let eta1 = dealt(session, &op, ETA, n).await?;
    let j = me as u64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let alpha = wraps(r0[i], r1[i]);
        let beta = wraps(share[i], mine[i]);
        // eta_j = eta'_j + (1-j) eta'' - 2 eta'' eta'_j.
        let eta = odd.sub(
            odd.add(eta1[i], (1 - j) * eta2[i]),
            odd.mul_small(2 * eta2[i], eta1[i]),
        );
        // theta_j = beta_j + (1-j)(-alpha - 1) + delta_j + eta_j.
        let lead = if j == 0 { odd.neg(alpha + 1) } else { 0 };
        let theta = odd.add(odd.add(beta, lead), odd.add(delta[i], eta));
        out.push(odd.sub(odd.reduce(share[i]), theta));
    }
    session.record(&op, before);
    Ok(out)
}
