//! SecureNN (Wagh, Gupta & Chandran, PoPETs 2019, "SecureNN: 3-Party Secure Computation for
//! Neural Network Training"): Pond's two-party additive sharing (`server0`, `server1`) with
//! `server2` as the helper that deals correlated randomness and takes part in the comparison
//! protocols, never seeing a value in the clear.
//!
//! - [`compare`]: PrivateCompare (Algorithm 3): shares of the bits of `x` in `Z_67` and a public
//!   `r`; the helper learns `beta XOR (x > r)` for a bit `beta` it does not know.
//! - [`convert`]: ShareConvert (Algorithm 4): shares in `Z_{2^64}` to shares in the odd ring
//!   `Z_{2^64 - 1}`.
//! - [`msb`]: ComputeMSB (Algorithm 5): the most significant bit of a value shared in
//!   `Z_{2^64 - 1}` is the low bit of `2a mod (2^64 - 1)`, read through a masked opening and
//!   PrivateCompare.
//! - [`prep`]: ComputeMSB's masks (input-independent dealing by the helper) made ahead in a pool.
//! - [`drelu`] (Algorithm 6): `x >= 0` as shares of 0/1: ShareConvert of `2x` (even, so never
//!   `2^64 - 1`, the one value ShareConvert excludes), then ComputeMSB; valid for `|x| < 2^62`.
//!
//! Exact ReLU (Algorithm 7), select (Algorithm 2), maximum and max-pooling (Algorithm 8) and
//! division (Algorithm 9) are the generic layers of [`crate::nn`] on top of [`drelu`] and
//! Pond's Beaver multiplication (SecureNN's `MatMul`, Algorithm 1, with the dealer's triples
//! compressed by seeds). The dealer's other messages are compressed the same way: `server0`'s
//! share of anything the helper deals comes from the PRG the two share, and only `server1`'s is
//! sent.

pub mod compare;
pub mod convert;
pub mod msb;
pub mod prep;
mod zn;

use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor};

use super::pond::{PRODUCER, PondTensor};
use super::{MpcError, Session};

/// The helper server.
pub const HELPER: usize = PRODUCER;

/// `x >= 0` for `|x| < 2^62`, as Pond shares of 0/1 (Algorithm 6). In a ring wider than 64
/// bits the comparison runs on the value modulo `2^64` (each share reduced, local), which keeps
/// the sign of such an `x`; only the final 0/1 is made in `R`.
pub async fn drelu<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
) -> Result<PondTensor<R>, MpcError> {
    let low = PondTensor::from_share(
        x.share()
            .map(|s| s.as_slice().iter().map(|v| v.low_u64()).collect::<Vec<_>>())
            .map(|v| RingTensor::from_vec(x.shape(), v))
            .transpose()?,
        x.shape(),
    );
    let doubled = low.scale(2);
    let y = convert::share_convert(session, &doubled).await?;
    let msb: PondTensor<R> = msb::compute_msb(session, &y, x.shape()).await?;
    let ones = vec![R::ONE; x.shape().iter().product()];
    msb.neg().add_public(session.me(), &ones)
}
