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
use tessera_common::ring::Ring;

use super::boolean::b2a;
use super::{
    Aby3Bits, Aby3Tensor, Arith, MpcError, Product, Session, Shared, check_servers, next, prev,
    random_shared, zero_share,
};

/// A truncation pair: `s` and `t = s >> d` as arithmetic sharings of the same length.
pub type TruncPair<R = u64> = (Aby3Tensor<R>, Aby3Tensor<R>);

/// A truncation pair `([s], [s >> d])` for `n` elements.
pub async fn trunc_pair<R: Ring, N: Network>(
    session: &Session<N>,
    n: usize,
    bits: u32,
) -> Result<TruncPair<R>, MpcError> {
    Ok(trunc_pairs(session, &[(bits, n)]).await?.remove(0))
}

/// Truncation pairs for several `(bits, n)` needs at once: one B2A for all of them, so the
/// preprocessing costs its rounds once.
pub async fn trunc_pairs<R: Ring, N: Network>(
    session: &Session<N>,
    needs: &[(u32, usize)],
) -> Result<Vec<TruncPair<R>>, MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_trunc_pair");
    let total: usize = needs.iter().map(|(_, n)| n).sum();
    let s: Aby3Bits<R> = random_shared(session, &op, 0, &[total])?;
    let shift = |v: &[R]| {
        let mut out = Vec::with_capacity(v.len());
        let mut at = 0;
        for (bits, n) in needs {
            out.extend(v[at..at + n].iter().map(|a| a.shr_signed(*bits)));
            at += n;
        }
        out
    };
    let t = s.map_local(&[total], shift)?;
    let both = b2a(session, &Shared::concat(&[&s, &t])).await?;
    let mut shapes: Vec<[usize; 1]> = needs.iter().map(|(_, n)| [*n]).collect();
    shapes.extend(needs.iter().map(|(_, n)| [*n]));
    let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    let mut parts = both.split(&shape_refs)?;
    let ts = parts.split_off(needs.len());
    Ok(parts.into_iter().zip(ts).collect())
}

fn finish<R: Ring>(
    me: usize,
    c: &[R],
    t: &Aby3Tensor<R>,
    bits: u32,
    shape: &[usize],
) -> Result<Aby3Tensor<R>, MpcError> {
    let shifted: Vec<R> = c.iter().map(|v| v.shr_signed(bits)).collect();
    t.neg().add_public(me, &shifted)?.reshape(shape)
}

/// `x >> bits` (signed), within one unit (see the module docs for the failure probability).
pub async fn truncate<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    bits: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    let pair = trunc_pair(session, x.len(), bits).await?;
    truncate_with(session, x, bits, pair).await
}

/// [`truncate`] with a pair made beforehand (for `bits`, of `x`'s length).
pub async fn truncate_with<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    bits: u32,
    (s, t): TruncPair<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_pair(&s, x.len())?;
    let op = session.op("aby3_trunc");
    let before = session.net_stats();
    let c = super::open(session, &op, &x.reshape(&[x.len()])?.add(&s)?).await?;
    let out = finish(session.me(), &c, &t, bits, x.shape());
    session.record(&op, before);
    out
}

/// A product followed by truncation by `bits`, in one online round: each server sends
/// `z_i + alpha_i + s_i` to both others.
pub(crate) async fn product_trunc<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    product: Product,
    out_shape: &[usize],
    bits: u32,
    (s, t): TruncPair<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let n: usize = out_shape.iter().product();
    check_pair(&s, n)?;
    let op = session.op("aby3_mul_trunc");
    let before = session.net_stats();
    let me = session.me();
    let z = product.cross(x, y)?;
    let alpha = zero_share::<Arith<R>, N>(session, &op, 0, n)?;
    let mine: Vec<R> = (0..n).map(|i| z[i].add(alpha[i]).add(s.s[0][i])).collect();
    session.send_vec(next(me), &op, "c", &mine).await?;
    session.send_vec(prev(me), &op, "c", &mine).await?;
    let a = session.recv_vec::<R>(next(me), &op, "c", n).await?;
    let b = session.recv_vec::<R>(prev(me), &op, "c", n).await?;
    let c: Vec<R> = (0..n).map(|i| mine[i].add(a[i]).add(b[i])).collect();
    let out = finish(me, &c, &t, bits, out_shape);
    session.record(&op, before);
    out
}

fn check_pair<R: Ring>(s: &Aby3Tensor<R>, n: usize) -> Result<(), MpcError> {
    if s.len() != n {
        return Err(MpcError::Invalid(format!(
            "truncation pair for {} elements, {n} needed",
            s.len()
        )));
    }
    Ok(())
}

/// Fixed-point elementwise product: `(x * y) >> bits` in one online round (with `pair` made
/// beforehand, or a fresh one).
pub async fn mul_trunc<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    bits: u32,
    pair: Option<TruncPair<R>>,
) -> Result<Aby3Tensor<R>, MpcError> {
    x.check_same(y)?;
    let pair = match pair {
        Some(p) => p,
        None => trunc_pair(session, x.len(), bits).await?,
    };
    product_trunc(session, x, y, Product::Hadamard, x.shape(), bits, pair).await
}

/// Fixed-point matrix product: `(x · y) >> bits` in one online round (with `pair` made
/// beforehand, or a fresh one).
pub async fn matmul_trunc<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    bits: u32,
    pair: Option<TruncPair<R>>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let (p, shape) = Product::for_matmul(x.shape(), y.shape())?;
    let pair = match pair {
        Some(p) => p,
        None => trunc_pair(session, shape.iter().product(), bits).await?,
    };
    product_trunc(session, x, y, p, &shape, bits, pair).await
}
