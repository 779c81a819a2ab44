//! A range check with an exact lift, on bit planes: whether each element of `y` (64-bit ring)
//! is below `2^r`, and how often its three arithmetic shares wrapped `2^64` when summed as
//! integers, without computing the sum's bits.
//!
//! The shares' integer sum is `Y = x0 + x1 + x2 = s + 2c` with `s = x0 ^ x1 ^ x2` and
//! `c = maj(x0, x1, x2)` (the carry-save step of [`super::sliced`]: one round). With
//! `t = (c << 1) mod 2^64`, `s + t = y + cout 2^64` and `Y = y + (c_63 + cout) 2^64`. Split the
//! positions at `r`: `cin` is the carry into position `r` (the group generate of positions
//! `1..r`, a carry tree), and the high halves `s_hi`, `t_hi` (positions `r..64`, `m = 64 - r`
//! bits) must add up with `cin` to zero modulo `2^m`:
//!
//! - `E0 = [s_hi + t_hi = 0 mod 2^m]` without an adder: the sum is zero exactly when at every
//!   position the bit `s_i ^ t_i` equals the carry that a zero sum below would produce,
//!   `s_{i-1} | t_{i-1}` (and `0` at the lowest); with `u_i = !s_i & !t_i` (one AND) the
//!   condition is the bit `s_i ^ t_i ^ u_{i-1}`, and `E0` the AND of `m` of them;
//! - `E1 = [s_hi + t_hi = -1 mod 2^m]`: `s_i ^ t_i = 1` everywhere (no carry can occur);
//! - in range: `E0 ^ cin (E0 ^ E1)` (`E0` without a carry in, `E1` with one);
//! - in range, `cout = 0` exactly when `s_hi = t_hi = 0` and `cin = 0`: with `Z` the AND of the
//!   `u_i`, `cout = !(Z & !cin) = !(Z ^ Z cin)`.
//!
//! Gates per element: 64 (carry-save) + `r - 1` generate bits + `m` NOR bits, the carry tree
//! (about `2 r`) and three AND trees of `m` leaves side by side, and two final ANDs: about 270
//! for `r = 30` where the word-wise adder with its wrap bits ([`super::boolean::a2b_wraps`])
//! takes 832; rounds: `3 + ceil(log2(max(r - 1, m)))`.
//!
//! Elements past the end of the last word have all shares zero, so `y = 0`: in range, no wraps.

use tessera_common::net::Network;

use super::sliced::{
    AndTree, CarryTree, Owned, and_planes, carry_save, not, plane_of, run_trees, to_planes, view,
    xor,
};
use super::{Aby3Bits, Aby3Tensor, MpcError, Session, Shared, check_servers};

/// The planes of [`range_and_wraps`]: one plane each of `ceil(len / 64)` words.
pub struct RangeWraps {
    /// Bit set: the element is below `2^r`.
    pub in_range: Aby3Bits<u64>,
    /// `c_63`, the top carry of the carry-save step (one of the wraps).
    pub top_carry: Aby3Bits<u64>,
    /// `cout`, the carry out of `s + t` (the other wrap; meaningful for elements in range).
    pub carry_out: Aby3Bits<u64>,
}

/// Whether each element of `y` is below `2^r` (as an unsigned 64-bit value), and the two bits
/// whose sum is the number of times `y`'s shares wrap `2^64` (exact for elements in range).
/// See the module docs for the circuit; `1 <= r <= 63`.
pub async fn range_and_wraps<N: Network>(
    session: &Session<N>,
    y: &Aby3Tensor<u64>,
    r: usize,
) -> Result<RangeWraps, MpcError> {
    check_servers(session)?;
    if !(1..64).contains(&r) {
        return Err(MpcError::Invalid(format!("range check below 2^{r}")));
    }
    let me = session.me();
    let words = y.len().div_ceil(64);
    let plane = |p: Owned| {
        let [a, b] = p;
        Shared::from_parts(a, b, &[words])
    };
    if words == 0 {
        let empty = || Shared::from_parts(Vec::new(), Vec::new(), &[0]);
        return Ok(RangeWraps {
            in_range: empty(),
            top_carry: empty(),
            carry_out: empty(),
        });
    }
    let (x0, x1) = y.shares();
    let s = [to_planes(x0), to_planes(x1)];
    let sp = |b: usize| plane_of(&s, b, words);
    // 1. Carry-save: c_0..c_63; t_b = c_{b-1}.
    let mut carry = carry_save(session, &s, 64, words).await?;
    // 2. Generate bits of positions 1..r and the NOR bits u_i = !s_i & !t_i of positions r..64.
    let not_s: Vec<Owned> = (r..64).map(|b| not(me, sp(b))).collect();
    let not_t: Vec<Owned> = (r..64).map(|b| not(me, view(&carry[b - 1]))).collect();
    let mut pairs: Vec<_> = (1..r).map(|b| (sp(b), view(&carry[b - 1]))).collect();
    pairs.extend((0..64 - r).map(|i| (view(&not_s[i]), view(&not_t[i]))));
    let mut anded = and_planes(session, &pairs, words).await?;
    let nor = anded.split_off(r - 1);
    let prop: Vec<Owned> = (1..r).map(|b| xor(sp(b), view(&carry[b - 1]))).collect();
    // 3. The carry tree for cin and the AND trees for E0, E1, Z, side by side.
    let differ: Vec<Owned> = (r..64).map(|b| xor(sp(b), view(&carry[b - 1]))).collect();
    let mut e0_leaves = vec![not(me, view(&differ[0]))];
    e0_leaves.extend((1..64 - r).map(|i| xor(view(&differ[i]), view(&nor[i - 1]))));
    let mut cin = CarryTree::new(anded, prop);
    let mut e0 = AndTree::new(e0_leaves);
    let mut e1 = AndTree::new(differ);
    let mut z = AndTree::new(nor);
    run_trees(session, words, &mut [&mut cin, &mut e0, &mut e1, &mut z]).await?;
    let zero = || [vec![0u64; words], vec![0u64; words]];
    let cin = cin.finish().unwrap_or_else(zero);
    let (e0, e1, z) = (
        e0.finish().ok_or_else(short)?,
        e1.finish().ok_or_else(short)?,
        z.finish().ok_or_else(short)?,
    );
    // 4. in range = E0 ^ cin (E0 ^ E1); cout = !(Z ^ Z cin).
    let e01 = xor(view(&e0), view(&e1));
    let mut last = and_planes(
        session,
        &[(view(&cin), view(&e01)), (view(&z), view(&cin))],
        words,
    )
    .await?
    .into_iter();
    let (a, b) = (
        last.next().ok_or_else(short)?,
        last.next().ok_or_else(short)?,
    );
    let in_range = xor(view(&e0), view(&a));
    let carry_out = not(me, view(&xor(view(&z), view(&b))));
    let top_carry = carry.pop().ok_or_else(short)?;
    Ok(RangeWraps {
        in_range: plane(in_range),
        top_carry: plane(top_carry),
        carry_out: plane(carry_out),
    })
}

fn short() -> MpcError {
    MpcError::Invalid("range circuit ran out of gates".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::aby3::sliced::plane_bits;
    use crate::mpc::aby3::{Arith, open, share_from};
    use crate::mpc::harness::run_local;
    use tessera_common::prg::{Prg, Seed};
    use tessera_common::ring::RingTensor;

    /// Values at and around the bound (below, at, above, the top of the ring, zero) and random
    /// ones, for several bounds: the range bit against the plaintext, and the wrap bits against
    /// the integer sum of the shares each server's view implies.
    #[tokio::test]
    async fn range_and_wraps_match_the_plaintext() {
        for r in [1usize, 2, 17, 30, 62, 63] {
            let len = 150;
            let mut v: Vec<u64> = Prg::new(&Seed([9; 32]), r as u64).ring_vec(len);
            let bound = 1u64 << r;
            let edges = [
                0,
                1,
                bound - 1,
                bound,
                bound + 1,
                u64::MAX,
                bound.wrapping_neg(),
                1 << 63,
            ];
            v[..edges.len()].copy_from_slice(&edges);
            // Half the random values in range, half anywhere.
            for x in v[edges.len()..].iter_mut().step_by(2) {
                *x &= bound - 1;
            }
            let t = RingTensor::from_vec(&[len], v.clone()).unwrap();
            let out = run_local(3, move |session| {
                let t = t.clone();
                async move {
                    let me = session.me();
                    let y =
                        share_from::<Arith<u64>, _>(&session, 0, (me == 0).then_some(&t), &[len])
                            .await?;
                    let got = range_and_wraps(&session, &y, r).await?;
                    let op = session.op("test_open");
                    let bits = Shared::concat(&[&got.in_range, &got.top_carry, &got.carry_out]);
                    let opened = open(&session, &op, &bits).await?;
                    // The integer sum of the shares (server 0 holds x0, x1; x2 = y - x0 - x1
                    // is opened for the test only).
                    let whole = open(&session, &op, &y).await?;
                    let (x0, x1) = y.shares();
                    Ok((opened, whole, x0.to_vec(), x1.to_vec()))
                }
            })
            .await
            .unwrap();
            let (opened, whole, x0, x1) = &out[0];
            assert_eq!(whole, &v);
            let words = len.div_ceil(64);
            let in_range = plane_bits(&opened[..words], len);
            let top = plane_bits(&opened[words..2 * words], len);
            let cout = plane_bits(&opened[2 * words..], len);
            for i in 0..len {
                assert_eq!(
                    in_range[i] == 1,
                    v[i] < bound,
                    "r {r} element {i}: {}",
                    v[i]
                );
                if v[i] < bound {
                    let x2 = v[i].wrapping_sub(x0[i]).wrapping_sub(x1[i]);
                    let sum = u128::from(x0[i]) + u128::from(x1[i]) + u128::from(x2);
                    let wraps = (sum >> 64) as u64;
                    assert_eq!(top[i] + cout[i], wraps, "r {r} element {i}");
                }
            }
        }
    }
}
