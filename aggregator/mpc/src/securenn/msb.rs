//! ComputeMSB (SecureNN Algorithm 5): the most significant bit of `a`, shared in the odd ring
//! `Z_{2^64 - 1}`, as shares in `Z_{2^64}`.
//!
//! Over an odd modulus `MSB(a) = LSB(y)` for `y = 2a`. The helper deals a random `x` (shares in
//! the odd ring, of its bits in `Z_67`, and of its low bit in `Z_{2^64}`); the computing servers
//! open `r = y + x` to each other; `LSB(y) = r_0 XOR x_0 XOR (x > r)`, the last term (the
//! wrap-around) from PrivateCompare under a common random bit `beta`, dealt back as `beta'`; the
//! XORs of shared bits take one Beaver multiplication. Five rounds; the first, the helper's
//! dealing of `x`, does not depend on `a` and comes from the preprocessing pool when it holds
//! enough ([`super::prep`]), leaving four online.

use crate::error::Broken;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor};

use super::HELPER;
use super::compare::private_compare;
use super::prep::msb_masks;
use super::zn::{Zn, deal_ring, dealt_ring};
use crate::pond::{self, PondTensor};
use crate::{MpcError, Session};

/// The helper's `beta'`, dealt in the output ring.
const BETA: (&str, u64) = ("beta", 5);

/// `MSB(a)` as Pond shares of 0/1 in the ring of `R` for `a` shared in `Z_{2^64 - 1}`
/// (`a_share` empty at the helper).
pub async fn compute_msb<R: Ring, N: Network>(
    session: &Session<N>,
    a_share: &[u64],
    shape: &[usize],
) -> Result<PondTensor<R>, MpcError> {
    let op = session.op("snn_msb");
    let before = session.net_stats();
    let me = session.me();
    let n: usize = shape.iter().product();
    let odd = Zn::Odd;
    if me != HELPER && a_share.len() != n {
        return Err(Broken::Lengths {
            what: "ComputeMSB shares",
            got: a_share.len(),
            expected: n,
        }
        .into());
    }
    let masks = msb_masks::<R, N>(session, &op, n).await?;
    if me == HELPER {
        let beta1 = private_compare(session, &op, &[], &[], &[], n)
            .await?
            .unwrap_or_default();
        let beta1: Vec<R> = beta1.iter().map(|b| R::from_u64(*b)).collect();
        deal_ring(session, &op, BETA, &beta1).await?;
        session.record(&op, before);
        // The XOR's multiplication: the helper deals the Beaver triple.
        let none = PondTensor::from_share(None, shape);
        return pond::mul(session, &none, &none).await;
    }
    let (x, x_bits, x_lsb) = (masks.x, masks.bits, masks.lsb);
    // r = 2a + x, opened between server0 and server1.
    let r_mine: Vec<u64> = (0..n)
        .map(|i| odd.add(odd.add(a_share[i], a_share[i]), x[i]))
        .collect();
    let other = 1 - me;
    session.send_vec(other, &op, "r", &r_mine).await?;
    let r_other = session.recv_vec::<u64>(other, &op, "r", n).await?;
    let r: Vec<u64> = (0..n).map(|i| odd.add(r_mine[i], r_other[i])).collect();
    let beta: Vec<u64> = session
        .shared_prg(other, &op, 4)?
        .ring_vec::<u64>(n)
        .iter()
        .map(|v| v & 1)
        .collect();
    private_compare(session, &op, &x_bits, &r, &beta, n).await?;
    let beta1: Vec<R> = dealt_ring(session, &op, BETA, n).await?;
    session.record(&op, before);
    let j = me as u64;
    // gamma = beta XOR beta' = (x > r); delta = x_0 XOR r_0 (shares in the ring of R).
    let xor_public = |shared: R, bit: u64| {
        let (j, bit) = (R::from_u64(j), R::from_u64(bit));
        shared
            .add(j.mul(bit))
            .sub(R::from_u64(2).mul(bit).mul(shared))
    };
    let gamma: Vec<R> = (0..n).map(|i| xor_public(beta1[i], beta[i])).collect();
    let delta: Vec<R> = (0..n).map(|i| xor_public(x_lsb[i], r[i] & 1)).collect();
    let g = PondTensor::from_share(Some(RingTensor::from_vec(shape, gamma)?), shape);
    let d = PondTensor::from_share(Some(RingTensor::from_vec(shape, delta)?), shape);
    let theta = pond::mul(session, &g, &d).await?;
    // alpha = gamma XOR delta = gamma + delta - 2 theta.
    g.add(&d)?.sub(&theta.scale(R::from_u64(2)))
}
