//! Fixed-point truncation with truncation pairs (Mohassel & Rindal 2018, §5.1.1, Π_trunc2).
//!
//! Preprocessing: a random boolean sharing `[s]^B` costs nothing (every slot comes from the PRG
//! of its two holders); its arithmetic right shift `[s >> d]^B` is local (the shift is
//! XOR-linear, sign extension included); one batched [`super::boolean::b2a`] turns both into
//! arithmetic sharings `([s], [t = s >> d])`. Online: open `c = x + s` (one round) and output
//! `(c >> d) - [t]`. Writing `x = c + (-s)`, this is SecureML's two-share truncation (Mohassel &
//! Zhang 2017, Thm. 1): within one unit of `x >> d` except with probability `2^(l+1-64)` for
//! `|x| < 2^l`.
//!
//! [`mul_trunc`] merges the multiplication and the truncation (§5.1.1): each server opens its
//! zero-masked product share plus its share of `s` directly, so a fixed-point product costs one
//! online round instead of two.

use tessera_common::net::Network;

use super::boolean::b2a;
use super::{
    Aby3Bits, Aby3Tensor, Arith, MpcError, Product, Session, Shared, check_servers, next, prev,
    random_shared, zero_share,
};

/// A truncation pair `([s], [s >> d])` for `n` elements.
pub async fn trunc_pair<N: Network>(
    session: &Session<N>,
    n: usize,
    bits: u32,
) -> Result<(Aby3Tensor, Aby3Tensor), MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_trunc_pair");
    let s: Aby3Bits = random_shared(session, &op, 0, &[n])?;
    let shift = |v: &[u64]| {
        v.iter()
            .map(|a| ((*a as i64) >> bits) as u64)
            .collect::<Vec<_>>()
    };
    let t = s.map_local(&[n], shift)?;
    let both = b2a(session, &Shared::concat(&[&s, &t])).await?;
    let mut parts = both.split(&[&[n], &[n]])?;
    let t = parts.remove(1);
    Ok((parts.remove(0), t))
}

fn finish(
    me: usize,
    c: &[u64],
    t: &Aby3Tensor,
    bits: u32,
    shape: &[usize],
) -> Result<Aby3Tensor, MpcError> {
    let shifted: Vec<u64> = c.iter().map(|v| ((*v as i64) >> bits) as u64).collect();
    t.neg().add_public(me, &shifted)?.reshape(shape)
}

/// `x >> bits` (signed), within one unit (see the module docs for the failure probability).
pub async fn truncate<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    bits: u32,
) -> Result<Aby3Tensor, MpcError> {
    let (s, t) = trunc_pair(session, x.len(), bits).await?;
    let op = session.op("aby3_trunc");
    let before = session.net_stats();
    let c = super::open(session, &op, &x.reshape(&[x.len()])?.add(&s)?).await?;
    let out = finish(session.me(), &c, &t, bits, x.shape());
    session.record(&op, before);
    out
}

/// A product followed by truncation by `bits`, in one online round: each server sends
/// `z_i + alpha_i + s_i` to both others.
pub(crate) async fn product_trunc<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
    product: Product,
    out_shape: &[usize],
    bits: u32,
) -> Result<Aby3Tensor, MpcError> {
    let n: usize = out_shape.iter().product();
    let (s, t) = trunc_pair(session, n, bits).await?;
    let op = session.op("aby3_mul_trunc");
    let before = session.net_stats();
    let me = session.me();
    let z = product.cross(x, y)?;
    let alpha = zero_share::<Arith, N>(session, &op, 0, n)?;
    let mine: Vec<u64> = (0..n)
        .map(|i| z[i].wrapping_add(alpha[i]).wrapping_add(s.s[0][i]))
        .collect();
    session.send_vec(next(me), &op, "c", &mine).await?;
    session.send_vec(prev(me), &op, "c", &mine).await?;
    let a = session.recv_vec::<u64>(next(me), &op, "c", n).await?;
    let b = session.recv_vec::<u64>(prev(me), &op, "c", n).await?;
    let c: Vec<u64> = (0..n)
        .map(|i| mine[i].wrapping_add(a[i]).wrapping_add(b[i]))
        .collect();
    let out = finish(me, &c, &t, bits, out_shape);
    session.record(&op, before);
    out
}

/// Fixed-point elementwise product: `(x * y) >> bits` in one online round.
pub async fn mul_trunc<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
    bits: u32,
) -> Result<Aby3Tensor, MpcError> {
    x.check_same(y)?;
    product_trunc(session, x, y, Product::Hadamard, x.shape(), bits).await
}

/// Fixed-point matrix product: `(x · y) >> bits` in one online round.
pub async fn matmul_trunc<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
    bits: u32,
) -> Result<Aby3Tensor, MpcError> {
    let (p, shape) = Product::for_matmul(x.shape(), y.shape())?;
    product_trunc(session, x, y, p, &shape, bits).await
}
