//! Pond: two-party additive sharing between `server0` and `server1`, with `server2` as the crypto
//! producer (Dahl et al. 2018, arXiv 1810.08130, §3; Beaver 1991 for multiplication triples;
//! Mohassel & Zhang 2017 (SecureML) §4.1 for local truncation).
//!
//! A [`PondTensor`] is `x = x0 + x1 mod 2^k`; `server0` holds `x0`, `server1` holds `x1`, the
//! producer holds nothing. Linear operations are local. Multiplication uses a Beaver triple from the
//! producer: `(a0, b0, c0)` come from the PRG the producer shares with `server0`, `(a1, b1)` from the
//! one it shares with `server1`, and the producer sends only the correction
//! `c1 = (a0 + a1)(b0 + b1) - c0` to `server1`. Online, each computing server sends `x_i - a_i` and
//! `y_i - b_i` and gets the other's: one round, `2n` elements each way, plus `n` from the producer.
//! Squaring uses a pair `(a, a²)` and opens only `x - a`.

use crate::error::{Broken, PartyError};
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor, ShapeError};

use super::prep::{Product, TripleShape};
use super::{MpcError, Op, Session};
use prep::Taken;

pub mod prep;
pub mod roles;

pub use roles::PRODUCER;
use roles::{check_servers, computing};

/// A Pond-shared tensor: this server's share (none at the producer) and the public shape.
#[derive(Clone)]
pub struct PondTensor<R: Ring> {
    share: Option<RingTensor<R>>,
    shape: Vec<usize>,
}

impl<R: Ring> std::fmt::Debug for PondTensor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PondTensor({:?}, <share redacted>)", self.shape)
    }
}

impl<R: Ring> PondTensor<R> {
    /// The public shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// This server's share (none at the producer). Exposed for tests of what a server sees.
    pub fn share(&self) -> Option<&RingTensor<R>> {
        self.share.as_ref()
    }

    fn map2(
        &self,
        other: &Self,
        f: impl Fn(
            &RingTensor<R>,
            &RingTensor<R>,
        ) -> Result<RingTensor<R>, tessera_common::ring::ShapeError>,
    ) -> Result<Self, MpcError> {
        let share = match (&self.share, &other.share) {
            (Some(a), Some(b)) => Some(f(a, b)?),
            _ => None,
        };
        Ok(PondTensor {
            share,
            shape: self.shape.clone(),
        })
    }

    pub(crate) fn from_share(share: Option<RingTensor<R>>, shape: &[usize]) -> Self {
        PondTensor {
            share,
            shape: shape.to_vec(),
        }
    }

    /// Applies a local map to this server's share. `f` must be linear (a gather, reshape, sum...).
    pub fn map_local(&self, shape: &[usize], f: impl Fn(&[R]) -> Vec<R>) -> Result<Self, MpcError> {
        let share = match &self.share {
            Some(s) => Some(RingTensor::from_vec(shape, f(s.as_slice()))?),
            None => None,
        };
        Ok(Self::from_share(share, shape))
    }

    /// Adds a public tensor (server0 adds it to its share).
    pub fn add_public(&self, me: usize, c: &[R]) -> Result<Self, MpcError> {
        if c.len() != self.shape.iter().product::<usize>() {
            return Err(tessera_common::ring::ShapeError::Length {
                len: c.len(),
                shape: self.shape.clone(),
            }
            .into());
        }
        let add = |s: &[R]| s.iter().zip(c).map(|(a, b)| a.add(*b)).collect();
        if me == 0 {
            self.map_local(&self.shape.clone(), add)
        } else {
            Ok(self.clone())
        }
    }

    /// Elementwise product with a public tensor (local, no truncation).
    pub fn mul_public(&self, c: &[R]) -> Result<Self, MpcError> {
        if c.len() != self.shape.iter().product::<usize>() {
            return Err(tessera_common::ring::ShapeError::Length {
                len: c.len(),
                shape: self.shape.clone(),
            }
            .into());
        }
        self.map_local(&self.shape.clone(), |s| {
            s.iter().zip(c).map(|(a, b)| a.mul(*b)).collect()
        })
    }

    /// `self + other` (local).
    pub fn add(&self, other: &Self) -> Result<Self, MpcError> {
        self.map2(other, RingTensor::add)
    }

    /// `self - other` (local).
    pub fn sub(&self, other: &Self) -> Result<Self, MpcError> {
        self.map2(other, RingTensor::sub)
    }

    /// `-self` (local).
    pub fn neg(&self) -> Self {
        PondTensor {
            share: self.share.as_ref().map(RingTensor::neg),
            shape: self.shape.clone(),
        }
    }

    /// `self * k` for a public scalar (local).
    pub fn scale(&self, k: R) -> Self {
        PondTensor {
            share: self.share.as_ref().map(|s| s.scale(k)),
            shape: self.shape.clone(),
        }
    }
}

/// Shares a value held by server `owner` (`value` is `Some` there, `None` elsewhere).
pub async fn share_from<R: Ring, N: Network>(
    session: &Session<N>,
    owner: usize,
    value: Option<&RingTensor<R>>,
    shape: &[usize],
) -> Result<PondTensor<R>, MpcError> {
    check_servers(session)?;
    let op = session.op("pond_share");
    let before = session.net_stats();
    let me = session.me();
    let share = if me == owner {
        let x = value.ok_or(PartyError::NoValue)?;
        ShapeError::same(x.shape(), shape)?;
        let mut mask = RingTensor::<R>::zeros(shape);
        rand::Rng::fill_bytes(
            &mut rand::rng(),
            bytemuck::cast_slice_mut(mask.as_mut_slice()),
        );
        let other_share = x.sub(&mask)?;
        match owner {
            0 => {
                session.send(1, &op, "share", &other_share).await?;
                Some(mask)
            }
            1 => {
                session.send(0, &op, "share", &other_share).await?;
                Some(mask)
            }
            _ => {
                session.send(0, &op, "share", &mask).await?;
                session.send(1, &op, "share", &other_share).await?;
                None
            }
        }
    } else if computing(session) {
        Some(session.recv(owner, &op, "share", shape).await?)
    } else {
        None
    };
    session.record(&op, before);
    Ok(PondTensor {
        share,
        shape: shape.to_vec(),
    })
}

/// Receives an input from a party outside the servers (a data owner or the model owner), sent
/// with [`crate::io::send_input`] under `label`: `server0` and `server1` each get one
/// additive share; the producer gets nothing.
pub async fn input_from<R: Ring, N: Network>(
    session: &Session<N>,
    from: tessera_common::PartyId,
    label: &str,
    shape: &[usize],
) -> Result<PondTensor<R>, MpcError> {
    check_servers(session)?;
    let share = if computing(session) {
        let n = shape.iter().product();
        Some(RingTensor::from_vec(
            shape,
            session.recv_party::<R>(from, label, n).await?,
        )?)
    } else {
        None
    };
    Ok(PondTensor::from_share(share, shape))
}

/// Reveals `x` to a party outside the servers: `server0` and `server1` send their shares, the
/// party adds them ([`crate::io::receive_output`]).
pub async fn output_to<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
    to: tessera_common::PartyId,
    label: &str,
) -> Result<(), MpcError> {
    if let Some(share) = &x.share {
        session
            .send_party(
                to,
                label,
                tessera_common::ring::encode_elements(share.as_slice()),
            )
            .await?;
    }
    Ok(())
}

/// Reveals `x` to server `receiver` only: it gets `Some(x)`, every other server `None`.
pub async fn reveal_to<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
    receiver: usize,
) -> Result<Option<RingTensor<R>>, MpcError> {
    let op = session.op("pond_reveal");
    let before = session.net_stats();
    let me = session.me();
    if computing(session) && me != receiver {
        let share = x.share.as_ref().ok_or(PartyError::NoShare(me))?;
        session.send(receiver, &op, "open", share).await?;
    }
    let out = if me == receiver {
        let mut sum = x
            .share
            .clone()
            .unwrap_or_else(|| RingTensor::zeros(&x.shape));
        for j in (0..PRODUCER).filter(|j| *j != me) {
            sum.add_assign(&session.recv(j, &op, "open", &x.shape).await?)?;
        }
        Some(sum)
    } else {
        None
    };
    session.record(&op, before);
    Ok(out)
}

/// This server's triple of `shape` for `op`: from the pool, or (when it is empty) made inline,
/// the producer computing its product while the computing servers open their masked inputs.
/// `None` at the producer. The computing servers' `c` may still be on its way: see [`c_of`].
async fn triple_for<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    shape: &TripleShape,
) -> Result<Option<(prep::Masks<R>, Option<RingTensor<R>>)>, MpcError> {
    let me = session.me();
    match prep::take::<R, N>(session, shape)? {
        Taken::Pooled(_) if me == PRODUCER => Ok(None),
        Taken::Pooled(Some(t)) => {
            let t = *t;
            Ok(Some(((t.a, t.b), Some(t.c))))
        }
        Taken::Pooled(None) => Err(Broken::PoolCount {
            server: me,
            need: "triples",
        }
        .into()),
        Taken::Short if me == PRODUCER => {
            prep::deal::<R, N>(session, op, shape, 1).await?;
            Ok(None)
        }
        Taken::Short => {
            let ab = prep::masks(session, op, shape, me, 1)?.remove(0);
            Ok(Some((ab, None)))
        }
    }
}

/// A computing server's share of the triple's `c`: pooled, or made inline ([`triple_for`]).
async fn c_of<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    shape: &TripleShape,
    pooled: Option<RingTensor<R>>,
) -> Result<RingTensor<R>, MpcError> {
    match pooled {
        Some(c) => Ok(c),
        None => Ok(prep::products(session, op, shape, 1).await?.remove(0)),
    }
}

/// A Beaver multiplication (elementwise or matrix) of two shared tensors.
async fn beaver<R: Ring, N: Network>(
    session: &Session<N>,
    op: Op,
    x: &PondTensor<R>,
    y: &PondTensor<R>,
    product: Product,
) -> Result<PondTensor<R>, MpcError> {
    check_servers(session)?;
    let before = session.net_stats();
    let me = session.me();
    let shape = TripleShape {
        product,
        left: x.shape.clone(),
        right: y.shape.clone(),
    };
    let out_shape = shape.out();
    let Some(((a, b), c)) = triple_for::<R, N>(session, &op, &shape).await? else {
        session.record(&op, before);
        return Ok(PondTensor {
            share: None,
            shape: out_shape,
        });
    };
    let (xs, ys, b) = match (&x.share, &y.share, b) {
        (Some(xs), Some(ys), Some(b)) => (xs, ys, b),
        _ => return Err(PartyError::NoShare(me).into()),
    };
    let e_mine = xs.sub(&a)?;
    let f_mine = ys.sub(&b)?;
    let other = 1 - me;
    // The openings do not wait for the correction: one round in all.
    session.send(other, &op, "e", &e_mine).await?;
    session.send(other, &op, "f", &f_mine).await?;
    let c = c_of(session, &op, &shape, c).await?;
    let e = e_mine.add(&session.recv(other, &op, "e", &x.shape).await?)?;
    let f = f_mine.add(&session.recv(other, &op, "f", &y.shape).await?)?;
    // z_i = c_i + e*b_i + a_i*f (+ e*f at server0, folded in as e*(b_0 + f): two products
    // at each server, not three).
    let mut z = c;
    if me == 0 {
        z.add_assign(&prep::apply(product, &e, &b.add(&f)?)?)?;
    } else {
        z.add_assign(&prep::apply(product, &e, &b)?)?;
    }
    z.add_assign(&prep::apply(product, &a, &f)?)?;
    session.record(&op, before);
    Ok(PondTensor {
        share: Some(z),
        shape: out_shape,
    })
}

/// Elementwise product `x * y` (exact in the ring).
pub async fn mul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
    y: &PondTensor<R>,
) -> Result<PondTensor<R>, MpcError> {
    ShapeError::same(&x.shape, &y.shape)?;
    let op = session.op("pond_mul");
    beaver(session, op, x, y, Product::Hadamard).await
}

/// Matrix product `x · y` of `m x k` and `k x n` shared matrices (exact in the ring).
pub async fn matmul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
    y: &PondTensor<R>,
) -> Result<PondTensor<R>, MpcError> {
    if !matches!((x.shape.as_slice(), y.shape.as_slice()), (&[_, k], &[k2, _]) if k == k2) {
        return Err(tessera_common::ring::ShapeError::Matmul {
            left: x.shape.clone(),
            right: y.shape.clone(),
        }
        .into());
    }
    let op = session.op("pond_matmul");
    beaver(session, op, x, y, Product::Matmul).await
}

/// Probabilistic local truncation by `bits` (SecureML §4.1): `server0` shifts its share
/// arithmetically, `server1` negates, shifts, negates. For `|x| < 2^(k-2)` the result is
/// `x >> bits` up to ±1 except with probability about `|x| / 2^(k-1)`.
pub fn truncate<R: Ring>(session_me: usize, x: &PondTensor<R>, bits: u32) -> PondTensor<R> {
    let share = x.share.as_ref().map(|s| match session_me {
        0 => s.map(|v| v.shr_signed(bits)),
        _ => s.map(|v| v.neg().shr_signed(bits).neg()),
    });
    PondTensor {
        share,
        shape: x.shape.clone(),
    }
}

/// `x²` elementwise with a squaring pair `(a, a²)` from the producer: one opening of `e = x - a`
/// instead of two, so half the online traffic of [`mul`]; `z = a² + 2·e·a + e²` (the `e²` term at
/// `server0` only).
pub async fn square<R: Ring, N: Network>(
    session: &Session<N>,
    x: &PondTensor<R>,
) -> Result<PondTensor<R>, MpcError> {
    check_servers(session)?;
    let op = session.op("pond_square");
    let before = session.net_stats();
    let me = session.me();
    let shape = TripleShape {
        product: Product::Square,
        left: x.shape.clone(),
        right: Vec::new(),
    };
    let Some(((a, _), c)) = triple_for::<R, N>(session, &op, &shape).await? else {
        session.record(&op, before);
        return Ok(PondTensor {
            share: None,
            shape: x.shape.clone(),
        });
    };
    let xs = x.share.as_ref().ok_or(PartyError::NoShare(me))?;
    let e_mine = xs.sub(&a)?;
    let other = 1 - me;
    session.send(other, &op, "e", &e_mine).await?;
    let c = c_of(session, &op, &shape, c).await?;
    let e = e_mine.add(&session.recv(other, &op, "e", &x.shape).await?)?;
    let mut z = c;
    z.add_assign(&e.mul(&a)?.scale(R::from_u64(2)))?;
    if me == 0 {
        z.add_assign(&e.mul(&e)?)?;
    }
    session.record(&op, before);
    Ok(PondTensor {
        share: Some(z),
        shape: x.shape.clone(),
    })
}

/// Concatenates flat Pond tensors (to batch independent operations into one round).
pub fn concat<R: Ring>(parts: &[&PondTensor<R>]) -> Result<PondTensor<R>, MpcError> {
    let n: usize = parts
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let share = if parts.iter().all(|p| p.share.is_some()) {
        let mut v = Vec::with_capacity(n);
        for p in parts.iter().filter_map(|p| p.share.as_ref()) {
            v.extend_from_slice(p.as_slice());
        }
        Some(RingTensor::from_vec(&[n], v)?)
    } else {
        None
    };
    Ok(PondTensor::from_share(share, &[n]))
}

/// Splits a flat Pond tensor into consecutive pieces of the given shapes.
pub fn split<R: Ring>(
    x: &PondTensor<R>,
    shapes: &[&[usize]],
) -> Result<Vec<PondTensor<R>>, MpcError> {
    let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    if total != x.shape.iter().product::<usize>() {
        return Err(tessera_common::ring::ShapeError::Length {
            len: total,
            shape: x.shape.clone(),
        }
        .into());
    }
    let mut at = 0;
    let mut out = Vec::new();
    for shape in shapes {
        let n: usize = shape.iter().product();
        let share = match &x.share {
            Some(s) => Some(RingTensor::from_vec(
                shape,
                s.as_slice()[at..at + n].to_vec(),
            )?),
            None => None,
        };
        out.push(PondTensor::from_share(share, shape));
        at += n;
    }
    Ok(out)
}
