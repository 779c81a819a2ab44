//! Boolean circuits on ABY3 sharings (Mohassel & Rindal 2018, §5.3 conversions, §5.4 bit
//! injection) and the comparisons built on them.
//!
//! Arithmetic-to-boolean (A2B): the three arithmetic shares `x0, x1, x2` are each a boolean
//! sharing with one non-zero slot (its two holders know it), so `x = x0 + x1 + x2` is a boolean
//! addition of three inputs: one full-adder layer (carry-save, one AND round) and a Kogge-Stone
//! parallel-prefix adder (one AND round for the generate bits, then `log2 64 = 6` rounds of
//! two batched ANDs). Boolean-to-arithmetic (B2A, §5.3): servers 0 and 1 draw `x1`, servers 1
//! and 2 draw `x2`, the circuit computes `x0 = x - x1 - x2`, which is opened to servers 0 and 2 only.
//! Bit injection (a shared bit to an arithmetic 0/1) XORs the three slot bits arithmetically,
//! `a ^ b = a + b - 2ab`: two multiplications in sequence.

use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::{Aby3Bits, Aby3Tensor, Arith, Bool, Shared, check_servers, next, product_batch};
use crate::{MpcError, Session};

/// Bits of an element of the 64-bit ring, where comparisons run ([`drelu`]).
pub const BITS: u32 = 64;

/// ANDs several independent pairs in one round (their lengths may differ).
pub async fn and_batch<R: Ring, N: Network>(
    session: &Session<N>,
    pairs: &[(&Aby3Bits<R>, &Aby3Bits<R>)],
) -> Result<Vec<Aby3Bits<R>>, MpcError> {
    product_batch(session, "aby3_and", pairs).await
}

/// `a + b` on boolean sharings with a Kogge-Stone adder: `1 + log2 k` AND rounds for `k`-bit
/// words (7 for 64 bits).
pub async fn ks_add<R: Ring, N: Network>(
    session: &Session<N>,
    a: &Aby3Bits<R>,
    b: &Aby3Bits<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    let (p0, g) = ks_generate(session, a, b).await?;
    p0.add(&g.shl(1))
}

/// The Kogge-Stone prefix of `a + b`: the propagate bits `a ^ b` and the group generate bits
/// `g`, bit `i` of which is the carry out of bit `i` (so the sum is `p ^ (g << 1)` and the top
/// bit of `g` is the carry out of the word).
pub async fn ks_generate<R: Ring, N: Network>(
    session: &Session<N>,
    a: &Aby3Bits<R>,
    b: &Aby3Bits<R>,
) -> Result<(Aby3Bits<R>, Aby3Bits<R>), MpcError> {
    let p0 = a.add(b)?;
    let mut g = and_batch(session, &[(a, b)]).await?.remove(0);
    let mut p = p0.clone();
    let mut shift = 1;
    while shift < R::BITS {
        let gs = g.shl(shift);
        if shift * 2 < R::BITS {
            let ps = p.shl(shift);
            let mut r = and_batch(session, &[(&p, &gs), (&p, &ps)]).await?;
            p = r.remove(1);
            g = g.add(&r.remove(0))?;
        } else {
            g = g.add(&and_batch(session, &[(&p, &gs)]).await?.remove(0))?;
        }
        shift *= 2;
    }
    Ok((p0, g))
}

/// The carry-save layer of `a + b + c`: `(a ^ b ^ c, majority(a, b, c))`, one AND round
/// (`carry = ((a^c)&(b^c))^c`); the sum is `s + (carry << 1)`.
async fn carry_save<R: Ring, N: Network>(
    session: &Session<N>,
    a: &Aby3Bits<R>,
    b: &Aby3Bits<R>,
    c: &Aby3Bits<R>,
) -> Result<(Aby3Bits<R>, Aby3Bits<R>), MpcError> {
    let sum = a.add(b)?.add(c)?;
    let t = and_batch(session, &[(&a.add(c)?, &b.add(c)?)])
        .await?
        .remove(0);
    Ok((sum, t.add(c)?))
}

/// `a + b + c` on boolean sharings: a full-adder layer reduces three inputs to two, then
/// [`ks_add`].
pub async fn add3<R: Ring, N: Network>(
    session: &Session<N>,
    a: &Aby3Bits<R>,
    b: &Aby3Bits<R>,
    c: &Aby3Bits<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    let (sum, carry) = carry_save(session, a, b, c).await?;
    ks_add(session, &sum, &carry.shl(1)).await
}

/// The three arithmetic shares of `x` as boolean sharings with one slot each.
fn share_slots<R: Ring>(me: usize, x: &Aby3Tensor<R>) -> [Aby3Bits<R>; 3] {
    let slot = |j: usize| {
        let pick = |holder: usize, v: &Vec<R>| {
            if holder == j {
                v.clone()
            } else {
                vec![R::ZERO; v.len()]
            }
        };
        Shared::<Bool<R>>::from_parts(pick(me, &x.s[0]), pick(next(me), &x.s[1]), &x.shape)
    };
    [slot(0), slot(1), slot(2)]
}

/// Arithmetic to boolean sharing (§5.3).
pub async fn a2b<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    check_servers(session)?;
    let [a, b, c] = share_slots(session.me(), x);
    add3(session, &a, &b, &c).await
}

/// Boolean to arithmetic sharing (§5.3): no server learns anything but its new shares.
pub async fn b2a<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Bits<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_b2a");
    let me = session.me();
    let n = x.len();
    // x1: known to servers 0 and 1 (slot 1); x2: known to servers 1 and 2 (slot 2).
    let draw = |pair_other: usize, sub: u64| -> Result<Vec<R>, MpcError> {
        Ok(session.shared_prg(pair_other, &op, sub)?.ring_vec(n))
    };
    let x1 = match me {
        0 => draw(1, 1)?,
        1 => draw(0, 1)?,
        _ => vec![R::ZERO; n],
    };
    let x2 = match me {
        1 => draw(2, 2)?,
        2 => draw(1, 2)?,
        _ => vec![R::ZERO; n],
    };
    let negate = |v: &[R]| v.iter().map(|a| a.neg()).collect::<Vec<_>>();
    let neg1 = Shared::<Bool<R>>::from_slot(me, 1, &negate(&x1), &x.shape);
    let neg2 = Shared::<Bool<R>>::from_slot(me, 2, &negate(&x2), &x.shape);
    let y = add3(session, x, &neg1, &neg2).await?;
    // Open y = x0 to servers 0 and 2, the holders of slot 0: server 1 sends slot 2 to server 0,
    // server 0 sends slot 1 to server 2.
    let before = session.net_stats();
    let open = |missing: Vec<R>| -> Vec<R> {
        (0..n)
            .map(|i| y.s[0][i].xor(y.s[1][i]).xor(missing[i]))
            .collect()
    };
    let out = match me {
        0 => {
            session.send_vec(2, &op, "x0", &y.s[1]).await?;
            let x0 = open(session.recv_vec::<R>(1, &op, "x0", n).await?);
            Shared::<Arith<R>>::from_parts(x0, x1, &x.shape)
        }
        1 => {
            session.send_vec(0, &op, "x0", &y.s[1]).await?;
            Shared::from_parts(x1, x2, &x.shape)
        }
        _ => {
            let x0 = open(session.recv_vec::<R>(0, &op, "x0", n).await?);
            Shared::from_parts(x2, x0, &x.shape)
        }
    };
    session.record(&op, before);
    Ok(out)
}

/// The bit at `pos` of each element of a boolean sharing as an arithmetic 0/1 (bit injection,
/// §5.4.1): the bits packed into a plane (local), then one round of three-party OT
/// ([`super::inject`]). The bits may come from words of one ring (`W`) and the 0/1 land in
/// another (`R`): comparisons run on 64-bit words for every ring.
pub async fn bit_inject<R: Ring, W: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Bits<W>,
    pos: u32,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    let n = x.len();
    let words = n.div_ceil(64);
    let pack = |v: &[W]| {
        let mut out = vec![0u64; words];
        for (i, a) in v.iter().enumerate() {
            out[i / 64] |= u64::from(a.bit(pos)) << (i % 64);
        }
        out
    };
    let (a, b) = x.shares();
    let plane = Shared::from_parts(pack(a), pack(b), &[words]);
    super::inject::inject(session, &plane, n, &x.shape).await
}

/// The AND of every bit of every element, in bit 0 of a one-element sharing: the elements are
/// ANDed pairwise in `ceil(log2 n)` rounds (padded with ones), then the word folds onto itself
/// in `log2 k` more.
pub async fn and_all<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Bits<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    let me = session.me();
    let mut w = x.reshape(&[x.len()])?;
    while w.len() > 1 {
        if w.len() % 2 == 1 {
            let ones = Shared::<Bool<R>>::public(me, &[R::ZERO.not()], &[1]);
            w = Shared::concat(&[&w, &ones]);
        }
        let half = w.len() / 2;
        let parts = w.split(&[&[half], &[half]])?;
        w = and_batch(session, &[(&parts[0], &parts[1])])
            .await?
            .remove(0);
    }
    let mut shift = R::BITS / 2;
    while shift >= 1 {
        let hi = w.shr(shift);
        w = and_batch(session, &[(&w, &hi)]).await?.remove(0);
        shift /= 2;
    }
    Ok(w)
}

/// The most significant bit of each element (1 for negative values) as an arithmetic 0/1: the
/// bit-sliced sign circuit ([`super::sliced`]) and bit injection.
pub async fn msb<N: Network>(session: &Session<N>, x: &Aby3Tensor) -> Result<Aby3Tensor, MpcError> {
    super::sliced::msb_arith(session, x).await
}

/// `x < y` as an arithmetic 0/1 (the sign of `x - y`; exact while `|x - y| < 2^63`).
pub async fn less<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    msb(session, &x.sub(y)?).await
}

/// `x > y` as an arithmetic 0/1.
pub async fn greater<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    less(session, y, x).await
}

/// `x == y` as an arithmetic 0/1: the AND of all bits of `!(x - y)`, folded in 6 rounds.
pub async fn equal<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    let me = session.me();
    let mut w: Aby3Bits = a2b(session, &x.sub(y)?).await?.not(me);
    let mut shift = BITS / 2;
    while shift >= 1 {
        let hi = w.shr(shift);
        w = and_batch(session, &[(&w, &hi)]).await?.remove(0);
        shift /= 2;
    }
    bit_inject(session, &w, 0).await
}

/// `x >= 0` as an arithmetic 0/1 (the derivative of ReLU): `1 - msb(x)`. In any ring the
/// comparison runs on the value modulo `2^64` ([`Aby3Tensor::low64`], local), so it is exact
/// for `|x| < 2^63` and only the 0/1 is made in `R` (bit injection). The sign comes from the
/// bit-sliced circuit of [`super::sliced`] (181 AND gates, not the whole adder's 832).
pub async fn drelu<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let msb: Aby3Tensor<R> = super::sliced::msb_arith(session, x).await?;
    msb.neg().add_public(session.me(), &vec![R::ONE; x.len()])
}
