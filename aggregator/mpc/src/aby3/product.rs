//! Products on ABY3 sharings (§3, §5.1): zero-sharings from the pairwise PRGs, the local cross
//! terms, and one resharing round; elementwise and matrix products, batched.

use crate::error::Broken;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, ShapeError, matmul as ring_matmul};

use super::share::{
    Aby3Bits, Aby3Tensor, Arith, Kind, Shared, check_servers, next, numel, prev, zip,
};
use crate::{MpcError, Op, Session};

/// This server's share of a fresh zero-sharing for `op`/`sub`: `F(k_{i,i+1}) - F(k_{i-1,i})`
/// (§2.2), so the three shares sum (or XOR) to zero and no server can predict another's.
pub(crate) fn zero_share<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    len: usize,
) -> Result<Vec<K::Word>, MpcError> {
    let me = session.me();
    let mut a: Vec<K::Word> = session.shared_prg(next(me), op, sub)?.ring_vec(len);
    let b: Vec<K::Word> = session.shared_prg(prev(me), op, sub)?.ring_vec(len);
    for (x, y) in a.iter_mut().zip(b) {
        *x = K::sub(*x, y);
    }
    Ok(a)
}

/// A random sharing no server knows: slot `j` comes from the PRG of the pair `{j-1, j}`, the
/// two servers that hold it. No communication.
pub(crate) fn random_shared<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    let me = session.me();
    let n = numel(shape);
    let mine: Vec<K::Word> = session.shared_prg(prev(me), op, sub)?.ring_vec(n);
    let theirs: Vec<K::Word> = session.shared_prg(next(me), op, sub)?.ring_vec(n);
    Ok(Shared::from_parts(mine, theirs, shape))
}

/// Turns a 3-out-of-3 sharing `z_me` (already masked by a zero-sharing) back into a replicated
/// one: each server sends its share to the previous server (one round, one element each).
pub(super) async fn reshare<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    z: Vec<K::Word>,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    let me = session.me();
    session.send_vec(prev(me), op, "reshare", &z).await?;
    let other = session.recv_vec(next(me), op, "reshare", z.len()).await?;
    Ok(Shared::from_parts(z, other, shape))
}

/// How a product is formed: elementwise or matrix product (arithmetic only).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Product {
    Hadamard,
    Matmul { m: usize, k: usize, n: usize },
}

impl Product {
    pub(crate) fn for_matmul(x: &[usize], y: &[usize]) -> Result<(Self, Vec<usize>), MpcError> {
        match (x, y) {
            (&[m, k], &[k2, n]) if k == k2 => Ok((Product::Matmul { m, k, n }, vec![m, n])),
            _ => Err(ShapeError::Matmul {
                left: x.to_vec(),
                right: y.to_vec(),
            }
            .into()),
        }
    }

    /// `x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i`: this server's additive share of the product.
    fn cross<K: Kind>(self, x: &Shared<K>, y: &Shared<K>) -> Result<Vec<K::Word>, MpcError> {
        match self {
            // x_i (y_i + y_{i+1}) + x_{i+1} y_i: two products per element.
            Product::Hadamard => Ok(x.s[0]
                .iter()
                .zip(&x.s[1])
                .zip(y.s[0].iter().zip(&y.s[1]))
                .map(|((a0, a1), (b0, b1))| K::add(K::mul(*a0, K::add(*b0, *b1)), K::mul(*a1, *b0)))
                .collect()),
            // x_i (y_i + y_{i+1}) + x_{i+1} y_i: two matrix products on the shares as they are.
            Product::Matmul { m, k, n } => {
                let y01: Vec<K::Word> = zip(&y.s[0], &y.s[1], K::add);
                let mut z = ring_matmul(&x.s[0], &y01, m, k, n);
                for (z, v) in z.iter_mut().zip(ring_matmul(&x.s[1], &y.s[0], m, k, n)) {
                    *z = K::add(*z, v);
                }
                Ok(z)
            }
        }
    }
}

/// This server's share of a product in three-out-of-three form: its cross terms plus its share
/// of a fresh zero-sharing, so the share alone is uniform to anyone else (every product, fused
/// truncation or not, starts here).
pub(crate) fn masked_cross<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    product: Product,
    x: &Shared<K>,
    y: &Shared<K>,
) -> Result<Vec<K::Word>, MpcError> {
    let mut z = product.cross(x, y)?;
    mask::<K, N>(session, op, 0, &mut z)?;
    Ok(z)
}

/// Adds this server's share of a fresh zero-sharing for `op`/`sub` to `z`, in place.
pub(super) fn mask<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    z: &mut [K::Word],
) -> Result<(), MpcError> {
    let alpha = zero_share::<K, N>(session, op, sub, z.len())?;
    for (a, b) in z.iter_mut().zip(alpha) {
        *a = K::add(*a, b);
    }
    Ok(())
}

/// Several independent elementwise products (AND for boolean sharings) in one round and one
/// message per server: the cross terms of each pair written one after another, masked once.
pub(crate) async fn product_batch<K: Kind, N: Network>(
    session: &Session<N>,
    name: &'static str,
    pairs: &[(&Shared<K>, &Shared<K>)],
) -> Result<Vec<Shared<K>>, MpcError> {
    check_servers(session)?;
    let op = session.op(name);
    let before = session.net_stats();
    let mut z = Vec::with_capacity(pairs.iter().map(|(x, _)| x.len()).sum());
    for (x, y) in pairs {
        x.check_same(y)?;
        z.extend(Product::Hadamard.cross(x, y)?);
    }
    mask::<K, N>(session, &op, 0, &mut z)?;
    let me = session.me();
    session.send_vec(prev(me), &op, "reshare", &z).await?;
    let other: Vec<K::Word> = session.recv_vec(next(me), &op, "reshare", z.len()).await?;
    session.record(&op, before);
    let mut out = Vec::with_capacity(pairs.len());
    let mut at = 0;
    for (x, _) in pairs {
        let n = x.len();
        out.push(Shared::from_parts(
            z[at..at + n].to_vec(),
            other[at..at + n].to_vec(),
            &x.shape,
        ));
        at += n;
    }
    Ok(out)
}

/// Product of two sharings (mul for arithmetic, AND for boolean) with resharing: one round,
/// each server sends one element per output element (§3 semi-honest multiplication).
pub(crate) async fn product<K: Kind, N: Network>(
    session: &Session<N>,
    name: &'static str,
    x: &Shared<K>,
    y: &Shared<K>,
    product: Product,
    out_shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    check_servers(session)?;
    let op = session.op(name);
    let before = session.net_stats();
    let z = masked_cross(session, &op, product, x, y)?;
    let out = reshare(session, &op, z, out_shape).await?;
    session.record(&op, before);
    Ok(out)
}

/// Elementwise product `x * y` (exact in the ring).
pub async fn mul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    x.check_same(y)?;
    product(session, "aby3_mul", x, y, Product::Hadamard, &x.shape).await
}

/// Matrix product of `m x k` and `k x n` sharings (exact in the ring).
pub async fn matmul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let (p, shape) = Product::for_matmul(&x.shape, &y.shape)?;
    product(session, "aby3_matmul", x, y, p, &shape).await
}

/// `sum_{i < len} x_i^2` as a one-element sharing: each server sums its cross terms
/// `x_i (x_i + 2 x_{i+1})` locally, then one element is reshared (an inner product costs what
/// one product costs).
pub async fn sum_squares<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    len: usize,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    if len > x.len() {
        return Err(Broken::Lengths {
            what: "sum of squares",
            got: x.len(),
            expected: len,
        }
        .into());
    }
    let op = session.op("aby3_sum_squares");
    let before = session.net_stats();
    let (a, b) = x.shares();
    let local = a[..len]
        .iter()
        .zip(&b[..len])
        .fold(R::ZERO, |acc, (a0, a1)| {
            acc.add(a0.mul(a0.add(a1.add(*a1))))
        });
    let mut z = vec![local];
    mask::<Arith<R>, N>(session, &op, 0, &mut z)?;
    let out = reshare(session, &op, z, &[1]).await?;
    session.record(&op, before);
    Ok(out)
}

/// Bitwise AND of two boolean sharings.
pub async fn and<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Bits<R>,
    y: &Aby3Bits<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    x.check_same(y)?;
    product(session, "aby3_and", x, y, Product::Hadamard, &x.shape).await
}
