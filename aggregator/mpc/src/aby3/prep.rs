//! ABY3 preprocessing: correlated randomness that does not depend on the inputs, made in
//! batches ahead of the online phase and used once.
//!
//! The pool here holds *daBits* (Rotaru & Wood, "MArBled Circuits", 2019): random bits `r`
//! that no server knows, shared twice, as a boolean bit (packed 64 to a word, the layout of
//! [`super::sliced`]) and as an arithmetic 0/1 in a ring `R`. Making them costs what bit
//! injection costs (the boolean form is free: each slot comes from the PRG of the two servers
//! that hold it; the arithmetic form is [`inject`], one round of six words per bit), but none
//! of it depends on the values the program will compute on, so it runs before them. Online, a
//! shared bit `b` becomes arithmetic in one round ([`inject_plane`]): the servers open
//! `c = b ^ r` (uniform, so it tells nothing) and set `b = c + r - 2 c r` locally.
//!
//! A program says how many it needs ([`make_dabits`] ahead of it); when the pool holds too few
//! for a call, that call injects its bits directly ([`inject`]: what it costs without
//! preprocessing) and the ledger counts what it would have taken, so the next run can
//! be sized from it. Every pool keeps a [`Ledger`] of the index ranges it handed out, so a test
//! can count that no value is ever used twice.

use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::inject::{check_plane, inject};
use super::planes::plane_bits;
use super::{Aby3Bits, Aby3Tensor, Bool, Shared, open, random_shared};
pub use crate::prep::Ledger;
use crate::prep::{Need, Pool};
use crate::{MpcError, Session};

/// daBits in the ring of `R`, made and not yet used.
#[derive(Default)]
struct DaBits<R> {
    /// Boolean shares, 64 bits a word.
    bits: [Vec<u64>; 2],
    /// Arithmetic shares, 64 per word of `bits`.
    arith: [Vec<R>; 2],
    ledger: Ledger,
}

impl<R: Ring> Pool for DaBits<R> {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

fn key<R: Ring>() -> Need {
    Need::DaBits { ring_bits: R::BITS }
}

/// The ledger of this session's daBits in the ring of `R`.
pub fn dabit_ledger<R: Ring, N: Network>(session: &Session<N>) -> Result<Ledger, MpcError> {
    Ok(session.ledger(&key::<R>()))
}

/// Makes at least `count` daBits in the ring of `R` (a multiple of 64) and adds them to the
/// pool: no communication for the boolean form, one round of bit injection ([`inject`]) for
/// the arithmetic form. Every server calls it with the same `count`.
pub async fn make_dabits<R: Ring, N: Network>(
    session: &Session<N>,
    count: usize,
) -> Result<(), MpcError> {
    let words = count.div_ceil(64);
    if words == 0 {
        return Ok(());
    }
    let op = session.op("aby3_dabits");
    let bits: Aby3Bits<u64> = random_shared::<Bool<u64>, N>(session, &op, 0, &[words])?;
    let n = 64 * words;
    let arith: Aby3Tensor<R> = inject(session, &bits, n, &[n]).await?;
    let (a, b) = bits.shares();
    let (x0, x1) = arith.shares();
    session.with_pool(&key::<R>(), |p: &mut DaBits<R>| {
        p.bits[0].extend_from_slice(a);
        p.bits[1].extend_from_slice(b);
        p.arith[0].extend_from_slice(x0);
        p.arith[1].extend_from_slice(x1);
        p.ledger.made += n as u64;
    })
}

/// daBits taken from the pool: the boolean plane and the arithmetic 0/1s.
type Taken<R> = (Aby3Bits<u64>, Aby3Tensor<R>);

/// Takes `ceil(count / 64)` words of daBits from the pool: the boolean form as one packed
/// plane and the arithmetic form, 64 per word; `None` (and counted short) when the pool holds
/// fewer. Every server's pool holds the same count, so all decide alike.
fn take_dabits<R: Ring, N: Network>(
    session: &Session<N>,
    count: usize,
) -> Result<Option<Taken<R>>, MpcError> {
    let words = count.div_ceil(64);
    session.with_pool(&key::<R>(), |p: &mut DaBits<R>| {
        let n = 64 * words;
        if p.bits[0].len() < words {
            p.ledger.short += n as u64;
            return None;
        }
        let bits: Vec<Vec<u64>> = p
            .bits
            .iter_mut()
            .map(|v| v.drain(..words).collect())
            .collect();
        let arith: Vec<Vec<R>> = p.arith.iter_mut().map(|v| v.drain(..n).collect()).collect();
        p.ledger.hand_out(n as u64);
        let [b0, b1]: [Vec<u64>; 2] = bits.try_into().unwrap_or_default();
        let [a0, a1]: [Vec<R>; 2] = arith.try_into().unwrap_or_default();
        Some((
            Shared::from_parts(b0, b1, &[words]),
            Shared::from_parts(a0, a1, &[n]),
        ))
    })
}

/// The bits of a packed boolean plane (bit `j` of word `w` for element `64 w + j`, `len`
/// elements) as arithmetic 0/1 in `R`. With daBits in the pool, one round: `c = b ^ r` is
/// opened to the three servers (one bit per element from each), then `b = c + r - 2 c r`.
/// Without, direct bit injection ([`inject`], one round of six words per bit).
pub async fn inject_plane<R: Ring, N: Network>(
    session: &Session<N>,
    plane: &Aby3Bits<u64>,
    len: usize,
    shape: &[usize],
) -> Result<Aby3Tensor<R>, MpcError> {
    check_plane(plane, len)?;
    let Some((r_bits, r_arith)) = take_dabits::<R, N>(session, len)? else {
        return inject(session, plane, len, shape).await;
    };
    let op = session.op("aby3_inject");
    let before = session.net_stats();
    let c = plane_bits(&open(session, &op, &plane.add(&r_bits)?).await?, len);
    session.record(&op, before);
    let r = r_arith.split(&[&[len], &[r_arith.len() - len]])?.remove(0);
    let sign: Vec<R> = c
        .iter()
        .map(|c| if *c == 1 { R::ONE.neg() } else { R::ONE })
        .collect();
    let c: Vec<R> = c.iter().map(|c| R::from_u64(*c)).collect();
    r.mul_public(&sign)?
        .add_public(session.me(), &c)?
        .reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aby3::sliced::msb_plane;
    use crate::aby3::{Arith, share_from};
    use crate::harness::run_local;
    use tessera_common::prg::{Prg, Seed};
    use tessera_common::ring::RingTensor;

    /// Three sign computations of 100, 64 and 30 elements after making 192 daBits ahead: the
    /// results are right, the pool handed out 128 + 64 values (whole words) in disjoint ranges
    /// to the first two, the third found it empty and injected directly (64 short); no value
    /// twice.
    #[tokio::test]
    async fn every_dabit_is_used_once() {
        let out = run_local(3, |session| async move {
            let me = session.me();
            make_dabits::<u64, _>(&session, 192).await?;
            let mut opened = Vec::new();
            for len in [100usize, 64, 30] {
                let v: Vec<u64> = Prg::new(&Seed([len as u8; 32]), 0).ring_vec(len);
                let t = RingTensor::from_vec(&[len], v.clone())?;
                let x = share_from::<Arith<u64>, _>(&session, 0, (me == 0).then_some(&t), &[len])
                    .await?;
                let plane = msb_plane(&session, &x).await?;
                let sign: Aby3Tensor<u64> = inject_plane(&session, &plane, len, &[len]).await?;
                let op = session.op("test_open");
                opened.push((v, open(&session, &op, &sign).await?));
            }
            Ok((opened, dabit_ledger::<u64, _>(&session)?))
        })
        .await
        .unwrap();
        for (opened, ledger) in out {
            for (v, sign) in opened {
                for (x, s) in v.iter().zip(&sign) {
                    assert_eq!(*s, x >> 63, "sign of {x:#x}");
                }
            }
            assert_eq!(ledger.made, 192);
            assert_eq!(ledger.short, 64);
            assert_eq!(ledger.taken, vec![0..128, 128..192]);
            assert_eq!(ledger.used(), 192);
            assert_eq!(ledger.wanted(), 256);
            assert!(!ledger.reuses());
        }
    }
}
