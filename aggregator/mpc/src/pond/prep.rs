//! Pond's preprocessing: the producer's Beaver triples and squaring pairs, made in batches
//! ahead of the online phase and used once (SecureNN multiplies with the same triples).
//!
//! A triple of a [`TripleShape`] is `(a, b, c)` with `c = a * b`, `a · b` or `a * a`: the
//! producer derives `(a_i, b_i)` from the PRG it shares with computing server `i` and `c_0`
//! from the one it shares with `server0`, and sends `server1` only `c_1 = c - c_0`. None of it
//! depends on the inputs, so [`make_triples`] can run before them: the computing servers draw
//! their masks, `server0` its `c_0`, and `server1` receives its `c_1`s, all in one round. Online
//! ([`take`]), a multiplication then needs only the openings of `x - a` and `y - b`, and the
//! producer no work at all (inline it computes the product of the triple, a full matrix product
//! for a matmul, while the servers wait for `c_1`).
//!
//! Draws are in order from one stream per pair and operation: the masks of triple `j` follow
//! those of triple `j - 1`, so a batch of one is exactly the inline triple.

use std::collections::VecDeque;

use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor};

use super::roles::{C0_STREAM, PRODUCER, check_servers, producer_prg};
use crate::prep::{Ledger, Need, Pool, Product, TripleShape};
use crate::{MpcError, Op, Session};

/// One computing server's part of a triple.
pub(super) struct Triple<R: Ring> {
    /// Its share of `a`.
    pub a: RingTensor<R>,
    /// Its share of `b` (none for a squaring pair).
    pub b: Option<RingTensor<R>>,
    /// Its share of `c`.
    pub c: RingTensor<R>,
}

/// Triples of one shape made and not yet used (empty at the producer, which keeps only the
/// ledger), and their ledger.
struct Triples<R: Ring> {
    ready: VecDeque<Triple<R>>,
    ledger: Ledger,
}

impl<R: Ring> Default for Triples<R> {
    fn default() -> Self {
        Triples {
            ready: VecDeque::new(),
            ledger: Ledger::default(),
        }
    }
}

impl<R: Ring> Pool for Triples<R> {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

fn key<R: Ring>(shape: &TripleShape) -> Need {
    Need::Triple {
        ring_bits: R::BITS,
        shape: shape.clone(),
    }
}

/// A share of `a` and of `b` (none for a squaring pair).
pub(super) type Masks<R> = (RingTensor<R>, Option<RingTensor<R>>);

/// Computing server `i`'s masks of `count` triples of `shape` under `op`, in order, from the
/// PRG it shares with the producer (either end may call it).
pub(super) fn masks<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    shape: &TripleShape,
    i: usize,
    count: usize,
) -> Result<Vec<Masks<R>>, MpcError> {
    let mut prg = producer_prg(session, op, i, i as u64)?;
    Ok((0..count)
        .map(|_| {
            let a = prg.ring_tensor(&shape.left);
            let b = (shape.product != Product::Square).then(|| prg.ring_tensor(&shape.right));
            (a, b)
        })
        .collect())
}

/// The product a triple's `c` is (or an online term of a multiplication): `a * b`, `a · b`.
pub(super) fn apply<R: Ring>(
    product: Product,
    a: &RingTensor<R>,
    b: &RingTensor<R>,
) -> Result<RingTensor<R>, MpcError> {
    Ok(match product {
        Product::Hadamard | Product::Square => a.mul(b)?,
        Product::Matmul => a.matmul(b)?,
    })
}

/// The message part of triple `j`'s `c_1`.
fn c1_part(j: usize) -> String {
    match j {
        0 => "c1".into(),
        _ => format!("c1/{j}"),
    }
}

/// The producer's side of `count` triples under `op`: computes each `c` and sends `server1`
/// its `c_1` (one message per triple, all in the same round).
pub(super) async fn deal<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    shape: &TripleShape,
    count: usize,
) -> Result<(), MpcError> {
    let m0 = masks::<R, N>(session, op, shape, 0, count)?;
    let m1 = masks::<R, N>(session, op, shape, 1, count)?;
    let mut c0 = producer_prg(session, op, 0, C0_STREAM)?;
    let out = shape.out();
    for (j, ((a0, b0), (a1, b1))) in m0.iter().zip(&m1).enumerate() {
        let a = a0.add(a1)?;
        let c = match (b0, b1) {
            (Some(b0), Some(b1)) => apply(shape.product, &a, &b0.add(b1)?)?,
            _ => a.mul(&a)?,
        };
        let c1 = c.sub(&c0.ring_tensor(&out))?;
        session.send(1, op, &c1_part(j), &c1).await?;
    }
    Ok(())
}

/// A computing server's shares of the `c` of `count` triples under `op`: `server0` draws them,
/// `server1` receives them from the producer.
pub(super) async fn products<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    shape: &TripleShape,
    count: usize,
) -> Result<Vec<RingTensor<R>>, MpcError> {
    let out = shape.out();
    if session.me() == 0 {
        let mut c0 = producer_prg(session, op, 0, C0_STREAM)?;
        return Ok((0..count).map(|_| c0.ring_tensor(&out)).collect());
    }
    let mut cs = Vec::with_capacity(count);
    for j in 0..count {
        cs.push(session.recv(PRODUCER, op, &c1_part(j), &out).await?);
    }
    Ok(cs)
}

/// Makes `count` triples of `shape` in the ring of `R` and adds them to the pool: one round,
/// the producer's `c_1`s to `server1`. Every server calls it with the same arguments.
pub async fn make_triples<R: Ring, N: Network>(
    session: &Session<N>,
    shape: &TripleShape,
    count: usize,
) -> Result<(), MpcError> {
    if count == 0 {
        return Ok(());
    }
    check_servers(session)?;
    let op = session.op("pond_triples");
    let before = session.net_stats();
    let mut made = VecDeque::new();
    if session.me() == PRODUCER {
        deal::<R, N>(session, &op, shape, count).await?;
    } else {
        let ab = masks::<R, N>(session, &op, shape, session.me(), count)?;
        let cs = products::<R, N>(session, &op, shape, count).await?;
        made.extend(ab.into_iter().zip(cs).map(|((a, b), c)| Triple { a, b, c }));
    }
    session.record(&op, before);
    session.with_pool(&key::<R>(shape), |p: &mut Triples<R>| {
        p.ready.append(&mut made);
        p.ledger.made += count as u64;
    })
}

/// What the pool gave a multiplication.
pub(super) enum Taken<R: Ring> {
    /// The pool held none: make the triple inline.
    Short,
    /// The next triple of the pool (this server's part; none at the producer).
    Pooled(Option<Box<Triple<R>>>),
}

/// The next triple of `shape` from the pool, or [`Taken::Short`] (counted) when it is empty.
pub(super) fn take<R: Ring, N: Network>(
    session: &Session<N>,
    shape: &TripleShape,
) -> Result<Taken<R>, MpcError> {
    session.with_pool(&key::<R>(shape), |p: &mut Triples<R>| {
        if p.ledger.available() == 0 {
            p.ledger.short += 1;
            return Taken::Short;
        }
        p.ledger.hand_out(1);
        Taken::Pooled(p.ready.pop_front().map(Box::new))
    })
}

/// The ledger of this session's triples of `shape` in the ring of `R`.
pub fn triple_ledger<R: Ring, N: Network>(session: &Session<N>, shape: &TripleShape) -> Ledger {
    session.ledger(&key::<R>(shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_local;
    use crate::pond::{PondTensor, matmul, mul, reveal_to, share_from, square};
    use tessera_common::net::memory::MemoryNetwork;
    use tessera_common::prg::{Prg, Seed};

    fn matrix(seed: u8, shape: &[usize]) -> RingTensor<u64> {
        let n = shape.iter().product();
        // Small signed values, so the plaintext products below are easy to trust.
        let v = Prg::new(&Seed([seed; 32]), 0)
            .ring_vec::<u64>(n)
            .iter()
            .map(|r| (*r % 201).wrapping_sub(100))
            .collect();
        RingTensor::from_vec(shape, v).unwrap()
    }

    async fn shared(
        session: &Session<MemoryNetwork>,
        t: &RingTensor<u64>,
    ) -> Result<PondTensor<u64>, MpcError> {
        share_from(session, 0, (session.me() == 0).then_some(t), t.shape()).await
    }

    /// One run of a small program: a matmul, an elementwise product and a square, revealed
    /// to server0 (which checks them against the plaintext).
    async fn program(session: &Session<MemoryNetwork>, round: u8) -> Result<(), MpcError> {
        let (x, y, v) = (
            matrix(round, &[3, 4]),
            matrix(round + 50, &[4, 2]),
            matrix(round + 100, &[5]),
        );
        let (xs, ys, vs) = (
            shared(session, &x).await?,
            shared(session, &y).await?,
            shared(session, &v).await?,
        );
        let outs = [
            (matmul(session, &xs, &ys).await?, x.matmul(&y)?),
            (mul(session, &vs, &vs).await?, v.mul(&v)?),
            (square(session, &vs).await?, v.mul(&v)?),
        ];
        for (z, want) in outs {
            if let Some(got) = reveal_to(session, &z, 0).await? {
                assert_eq!(got.as_slice(), want.as_slice(), "round {round}");
            }
        }
        Ok(())
    }

    fn shape(product: Product, left: &[usize], right: &[usize]) -> TripleShape {
        TripleShape {
            product,
            left: left.to_vec(),
            right: right.to_vec(),
        }
    }

    /// Two matmul triples made ahead, three matmuls: the first two take triples 0 and 1 of the
    /// pool, the third finds it empty and makes its own (1 short); the products are right and
    /// no triple is used twice, at every server (the producer keeps only the count).
    #[tokio::test]
    async fn every_triple_is_used_once() {
        let mm = shape(Product::Matmul, &[3, 4], &[4, 2]);
        let out = run_local(3, |session| {
            let mm = mm.clone();
            async move {
                make_triples::<u64, _>(&session, &mm, 2).await?;
                for round in 0..3 {
                    let (x, y) = (matrix(round, &[3, 4]), matrix(round + 50, &[4, 2]));
                    let z = matmul(
                        &session,
                        &shared(&session, &x).await?,
                        &shared(&session, &y).await?,
                    )
                    .await?;
                    if let Some(got) = reveal_to(&session, &z, 0).await? {
                        assert_eq!(got.as_slice(), x.matmul(&y)?.as_slice());
                    }
                }
                Ok(triple_ledger::<u64, _>(&session, &mm))
            }
        })
        .await
        .unwrap();
        for ledger in out {
            assert_eq!(ledger.made, 2);
            assert_eq!(ledger.short, 1);
            assert_eq!(ledger.taken, vec![0..1, 1..2]);
            assert!(!ledger.reuses());
        }
    }

    /// The program's first run makes every triple inline; what it asked (`wanted` across the
    /// run) is made ahead for two more runs, which then find every triple in the pool: none
    /// short, each handed out once, and nothing left over.
    #[tokio::test]
    async fn a_program_is_sized_from_its_first_run() {
        let kinds = [
            shape(Product::Matmul, &[3, 4], &[4, 2]),
            shape(Product::Hadamard, &[5], &[5]),
            shape(Product::Square, &[5], &[]),
        ]
        .map(|shape| Need::Triple {
            ring_bits: 64,
            shape,
        });
        let out = run_local(3, |session| {
            let kinds = kinds.clone();
            async move {
                program(&session, 1).await?;
                let needs = session.wanted();
                crate::prepare::prepare(&session, &needs.times(2)).await?;
                let before = session.wanted();
                program(&session, 2).await?;
                program(&session, 3).await?;
                let ledgers = kinds.map(|k| session.ledger(&k));
                Ok((needs, session.wanted().since(&before), ledgers))
            }
        })
        .await
        .unwrap();
        for (needs, later, ledgers) in out {
            assert_eq!(needs.total(), 3);
            for k in &kinds {
                assert_eq!(needs.get(k), 1, "{k:?}");
            }
            assert_eq!(later, needs.times(2));
            for ledger in ledgers {
                // The first run's triple was short; the two later runs took triples 0 and 1.
                assert_eq!(ledger.short, 1);
                assert_eq!((ledger.made, ledger.used(), ledger.available()), (2, 2, 0));
                assert_eq!(ledger.taken, vec![0..1, 1..2]);
                assert!(!ledger.reuses());
            }
        }
    }
}
