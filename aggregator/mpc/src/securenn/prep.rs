//! SecureNN preprocessing: the helper's ComputeMSB masks, made in batches ahead of the online
//! phase and used once.
//!
//! ComputeMSB (Algorithm 5) opens `2a + x` for a random `x` the helper deals: shares of `x` in
//! the odd ring, of its 64 bits in `Z_67` and of its low bit in the ring of the result. None of
//! it depends on the inputs, so the whole dealing (one message from the helper to `server1`,
//! 73 + 8 bytes per value at 64 bits; `server0`'s shares come from the PRG it shares with the
//! helper) can run before them: [`make_msb_masks`] fills a pool that [`msb_masks`] draws from.
//! A call that finds the pool short deals its own masks inline (what it costs without
//! preprocessing) and the pool's [`Ledger`] counts them, so the next run can be sized from it;
//! every server's pool holds the same count, so all decide alike.

use tessera_common::net::Network;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::Ring;

use super::HELPER;
use super::zn::{Deal, X_BITS, Zn, deal, deal_bits, deal_ring, dealt, dealt_bits, dealt_ring};
use crate::prep::{Ledger, Need, Pool};
use crate::{MpcError, Op, Session};

const X: Deal = Deal {
    part: "x",
    stream: 1,
    zn: Zn::Odd,
};
/// The low bit of `x`, dealt in the output ring.
const X_LSB: (&str, u64) = ("x_lsb", 3);

/// One computing server's shares of ComputeMSB masks (all empty at the helper).
#[derive(Debug, Default)]
pub struct Masks<R> {
    /// `x` in `Z_{2^64 - 1}`.
    pub x: Vec<u64>,
    /// The 64 bits of each `x` in `Z_67`, least significant first.
    pub bits: Vec<u8>,
    /// The low bit of each `x` in the ring of `R`.
    pub lsb: Vec<R>,
}

/// Masks made and not yet used, and their ledger.
#[derive(Default)]
struct MaskPool<R> {
    masks: Masks<R>,
    count: usize,
    ledger: Ledger,
}

impl<R: Ring> Pool for MaskPool<R> {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

fn key<R: Ring>() -> Need {
    Need::MsbMasks { ring_bits: R::BITS }
}

/// The helper deals `n` fresh masks under `op`; the computing servers receive their shares.
async fn deal_masks<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    n: usize,
) -> Result<Masks<R>, MpcError> {
    if session.me() == HELPER {
        let mut fresh = Prg::new(&Seed::random(&mut rand::rng()), 0);
        let x = Zn::Odd.sample(&mut fresh, n);
        deal(session, op, X, &x).await?;
        deal_bits(session, op, X_BITS, &x).await?;
        let lsb: Vec<R> = x.iter().map(|v| R::from_u64(v & 1)).collect();
        deal_ring(session, op, X_LSB, &lsb).await?;
        return Ok(Masks::default());
    }
    Ok(Masks {
        x: dealt(session, op, X, n).await?,
        bits: dealt_bits(session, op, X_BITS, 64 * n).await?,
        lsb: dealt_ring(session, op, X_LSB, n).await?,
    })
}

/// Makes `count` ComputeMSB masks for results in the ring of `R` and adds them to the pool.
/// Every server calls it with the same `count`; one message, helper to `server1`.
pub async fn make_msb_masks<R: Ring, N: Network>(
    session: &Session<N>,
    count: usize,
) -> Result<(), MpcError> {
    if count == 0 {
        return Ok(());
    }
    let op = session.op("snn_msb_masks");
    let before = session.net_stats();
    let made = deal_masks::<R, N>(session, &op, count).await?;
    session.record(&op, before);
    session.with_pool(&key::<R>(), |p: &mut MaskPool<R>| {
        p.masks.x.extend_from_slice(&made.x);
        p.masks.bits.extend_from_slice(&made.bits);
        p.masks.lsb.extend_from_slice(&made.lsb);
        p.count += count;
        p.ledger.made += count as u64;
    })
}

/// The ledger of this session's ComputeMSB masks for results in the ring of `R`.
pub fn msb_mask_ledger<R: Ring, N: Network>(session: &Session<N>) -> Result<Ledger, MpcError> {
    Ok(session.ledger(&key::<R>()))
}

/// `n` masks for one ComputeMSB under `op`: the next `n` of the pool, or, when it holds fewer,
/// `n` dealt now (and counted short).
pub(super) async fn msb_masks<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    n: usize,
) -> Result<Masks<R>, MpcError> {
    let taken = session.with_pool(&key::<R>(), |p: &mut MaskPool<R>| {
        if p.count < n {
            p.ledger.short += n as u64;
            return None;
        }
        p.count -= n;
        p.ledger.hand_out(n as u64);
        // At the helper the vectors are empty: it keeps only the count.
        fn front<T>(v: &mut Vec<T>, k: usize) -> Vec<T> {
            v.drain(..k.min(v.len())).collect()
        }
        Some(Masks {
            x: front(&mut p.masks.x, n),
            bits: front(&mut p.masks.bits, 64 * n),
            lsb: front(&mut p.masks.lsb, n),
        })
    })?;
    match taken {
        Some(masks) => Ok(masks),
        None => deal_masks(session, op, n).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_local;
    use crate::pond::{reveal_to, share_from};
    use crate::securenn::drelu;
    use tessera_common::ring::RingTensor;

    /// Three DReLUs of 100, 50 and 30 elements after making 150 masks ahead: the results are
    /// right, the pool handed out 0..100 and 100..150 to the first two, the third found it empty
    /// and dealt its own (30 short); no mask twice, at every server (the helper keeps the count).
    #[tokio::test]
    async fn every_msb_mask_is_used_once() {
        let out = run_local(3, |session| async move {
            let me = session.me();
            make_msb_masks::<u64, _>(&session, 150).await?;
            let mut checked = Vec::new();
            for len in [100usize, 50, 30] {
                // Values within DReLU's range |x| < 2^62, of both signs.
                let v: Vec<u64> = Prg::new(&Seed([len as u8; 32]), 0)
                    .ring_vec::<u64>(len)
                    .iter()
                    .map(|x| ((*x as i64) >> 2) as u64)
                    .collect();
                let t = RingTensor::from_vec(&[len], v.clone())?;
                let x = share_from(&session, 0, (me == 0).then_some(&t), &[len]).await?;
                let d = drelu(&session, &x).await?;
                if let Some(bits) = reveal_to(&session, &d, 0).await? {
                    checked.push((v, bits.as_slice().to_vec()));
                }
            }
            Ok((checked, msb_mask_ledger::<u64, _>(&session)?))
        })
        .await
        .unwrap();
        assert_eq!(out[0].0.len(), 3);
        for (v, bits) in &out[0].0 {
            for (x, b) in v.iter().zip(bits) {
                assert_eq!(*b, u64::from((*x as i64) >= 0), "DReLU of {x:#x}");
            }
        }
        for (_, ledger) in out {
            assert_eq!(ledger.made, 150);
            assert_eq!(ledger.short, 30);
            assert_eq!(ledger.taken, vec![0..100, 100..150]);
            assert_eq!(ledger.wanted(), 180);
            assert!(!ledger.reuses());
        }
    }
}
