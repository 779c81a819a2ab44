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
//!
//! The protocol bindings use the other truncation of §5.1.1 instead, the two-share Π_trunc1
//! ([`truncate_two_share`], [`mul_trunc_two_share`]): also one round, half the online bytes, and
//! no preprocessing at all; in the 128-bit ring of training the pairs' 128-bit boolean adder
//! took most of a step (a `perf` profile of network A: 28% ChaCha20 for the adder's masks, 24%
//! copies, 11% matrix products). What that costs in privacy: Π_trunc1 rounds by the low bits of
//! the half `A` that servers 0 and 2 hold (the result is exactly
//! `floor(x / 2^d) + [x mod 2^d > A mod 2^d]`), so an output receiver colluding with one of
//! them learns one comparison of each truncated value's discarded low bits with a number it
//! knows; the pairs round by `s`, which no party knows. The guide's Security chapter states it.

use crate::error::Broken;
use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::boolean::b2a;
use super::{
    Aby3Bits, Aby3Tensor, Product, Shared, check_servers, masked_cross, next, prev, random_shared,
};
use crate::{MpcError, Op, Session};

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
    let z = masked_cross(session, &op, product, x, y)?;
    let mine: Vec<R> = (0..n).map(|i| z[i].add(s.s[0][i])).collect();
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
        return Err(Broken::Lengths {
            what: "truncation pair",
            got: s.len(),
            expected: n,
        }
        .into());
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

/// The two-share truncation of ABY3 §5.1.1 (Π_trunc1, semi-honest), needing no preprocessing.
///
/// The value is seen as two shares, `A` at servers 0 and 2 and `B` at server 1; SecureML's
/// local truncation of each (`floor(A / 2^d)` and `ceil(B / 2^d) = -((-B) >> d)`, so the
/// rounding errors cancel on average instead of adding up to a bias of one unit) sums to within
/// one unit of `x / 2^d` unless `A + B` overflows as signed integers, which for a uniform `A` and
/// `|x| < 2^l` has probability at most `2^(l + 1 - k)` (the same bound as the pairs; see
/// [`crate::train::precision`]). The result is made replicated again with one message:
/// `y0 = A >> d` (servers 0 and 2 both compute it), `y2 = r` from the PRG of servers 1 and 2,
/// and `y1 = (B >> d) - r`, which server 1 sends to server 0.
///
/// For a replicated `x`, `A = x0` and `B = x1 + x2`: one round, `n` elements sent in all.
/// After a product ([`mul_trunc_two_share`]) the three-out-of-three shares `z_i` (masked by a
/// zero-sharing) give `A = z0 + z2` (servers 0 and 2 swap theirs) and `B = z1`, all three
/// messages in the same round: `3n` elements against the pairs' `6n` online, and no boolean
/// adder offline. Every message is masked: `z0` and `z2` by the zero-sharing terms of the PRG
/// the receiver does not hold, `y1` by `r`.
pub async fn truncate_two_share<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    bits: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_trunc1");
    let before = session.net_stats();
    let me = session.me();
    let n = x.len();
    let halves = match me {
        1 => Halves::B((0..n).map(|i| x.s[0][i].add(x.s[1][i])).collect()),
        0 => Halves::A(x.s[0].clone()),
        _ => Halves::A(x.s[1].clone()),
    };
    let out = rereplicate(session, &op, halves, bits, x.shape()).await;
    session.record(&op, before);
    out
}

/// What a server holds of the two shares `x = A + B` of the two-share truncation.
enum Halves<R> {
    /// `A` (servers 0 and 2).
    A(Vec<R>),
    /// `B` (server 1).
    B(Vec<R>),
}

/// Truncates `A` and `B` locally (floor and ceil) and makes the result replicated again:
/// `y0 = floor(A / 2^d)` at servers 0 and 2, `y2 = r` from the PRG of servers 1 and 2, and
/// `y1 = ceil(B / 2^d) - r`, sent by server 1 to server 0 (see [`truncate_two_share`]).
async fn rereplicate<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    halves: Halves<R>,
    bits: u32,
    shape: &[usize],
) -> Result<Aby3Tensor<R>, MpcError> {
    let n: usize = shape.iter().product();
    let floor = |v: &[R]| v.iter().map(|a| a.shr_signed(bits)).collect::<Vec<R>>();
    match (session.me(), halves) {
        (0, Halves::A(a)) => {
            let y1 = session.recv_vec::<R>(1, op, "y1", n).await?;
            Ok(Shared::from_parts(floor(&a), y1, shape))
        }
        (1, Halves::B(b)) => {
            let r: Vec<R> = session.shared_prg(2, op, 1)?.ring_vec(n);
            let y1: Vec<R> = ceil_shift(&b, bits)
                .iter()
                .zip(&r)
                .map(|(p, q)| p.sub(*q))
                .collect();
            session.send_vec(0, op, "y1", &y1).await?;
            Ok(Shared::from_parts(y1, r, shape))
        }
        (2, Halves::A(a)) => {
            let r: Vec<R> = session.shared_prg(1, op, 1)?.ring_vec(n);
            Ok(Shared::from_parts(r, floor(&a), shape))
        }
        (me, _) => Err(Broken::WrongHalf(me).into()),
    }
}

/// `ceil(v / 2^bits)` of each signed element.
fn ceil_shift<R: Ring>(v: &[R], bits: u32) -> Vec<R> {
    v.iter().map(|a| a.neg().shr_signed(bits).neg()).collect()
}

/// A product followed by the two-share truncation by `bits`, in one round (see
/// [`truncate_two_share`]).
async fn product_two_share<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    product: Product,
    out_shape: &[usize],
    bits: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    let n: usize = out_shape.iter().product();
    let op = session.op("aby3_mul_trunc1");
    let before = session.net_stats();
    let me = session.me();
    let z = masked_cross(session, &op, product, x, y)?;
    // A = z0 + z2 (servers 0 and 2 swap theirs, in the same round as server 1's message).
    let halves = match me {
        1 => Halves::B(z),
        _ => {
            let other = 2 - me;
            session.send_vec(other, &op, "z", &z).await?;
            let theirs = session.recv_vec::<R>(other, &op, "z", n).await?;
            Halves::A(z.iter().zip(&theirs).map(|(p, q)| p.add(*q)).collect())
        }
    };
    let out = rereplicate(session, &op, halves, bits, out_shape).await;
    session.record(&op, before);
    out
}

/// Fixed-point elementwise product `(x * y) >> bits` in one round, no preprocessing.
pub async fn mul_trunc_two_share<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    bits: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    x.check_same(y)?;
    product_two_share(session, x, y, Product::Hadamard, x.shape(), bits).await
}

/// Fixed-point matrix product `(x · y) >> bits` in one round, no preprocessing.
pub async fn matmul_trunc_two_share<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
    bits: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    let (p, shape) = Product::for_matmul(x.shape(), y.shape())?;
    product_two_share(session, x, y, p, &shape, bits).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_local;

    /// What the two-share truncation's rounding depends on (security review 2, finding 8,
    /// stated in the guide's Security chapter): the result is exactly
    /// `floor(x / 2^d) + [x mod 2^d > A mod 2^d]`, with `A` the half that servers 0 and 2 hold.
    /// So an output receiver colluding with either learns, per truncated value, one comparison
    /// of the value's discarded low bits with a number it knows; nothing above the fixed-point
    /// resolution, and nothing without such a collusion (`A` is uniform to everyone else).
    #[tokio::test]
    async fn the_rounding_is_a_comparison_with_the_low_bits_of_server_0s_half() {
        let (n, d) = (20_000usize, 16u32);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Values up to 2^40 in magnitude; shares x = x0 + x1 + x2 with x0, x1 uniform.
        let x: Vec<u64> = (0..n)
            .map(|_| ((next() >> 23) as i64 - (1i64 << 40)) as u64)
            .collect();
        let x0: Vec<u64> = (0..n).map(|_| next()).collect();
        let x1: Vec<u64> = (0..n).map(|_| next()).collect();
        let x2: Vec<u64> = (0..n)
            .map(|i| x[i].wrapping_sub(x0[i]).wrapping_sub(x1[i]))
            .collect();
        let parts = [
            (x0.clone(), x1.clone()),
            (x1.clone(), x2.clone()),
            (x2, x0.clone()),
        ];
        let out = run_local(3, move |session| {
            let (a, b) = parts[session.me()].clone();
            async move {
                let shared = Shared::from_parts(a, b, &[n]);
                let y = truncate_two_share(&session, &shared, d).await?;
                Ok(y.shares().0.to_vec())
            }
        })
        .await
        .unwrap();
        let low = |v: u64| v & ((1 << d) - 1);
        for i in 0..n {
            let y = out[0][i].wrapping_add(out[1][i]).wrapping_add(out[2][i]) as i64;
            let floor = (x[i] as i64) >> d;
            let bit = i64::from(low(x[i]) > low(x0[i]));
            assert_eq!(y, floor + bit, "element {i}");
        }
    }
}
