//! A range check with an exact lift, on bit planes: whether each element of `y` (64-bit ring)
//! is below `2^r`, and how often its three arithmetic shares wrapped `2^64` when summed as
//! integers, without computing the sum's bits.
//!
//! With the two summands of [`super::sliced::summand_planes`] (`s = x0`, `t = x1 + x2` modulo
//! `2^64`, shared by server 1), the shares' integer sum is `x0 + x1 + x2 = y + (v + w) 2^64`:
//! `v` whether `x1 + x2` wrapped (server 1 knows it), `w` the carry out of `s + t`. Split the
//! positions at `r`: `cin` is the carry into position `r` (the group generate of positions
//! `0..r`, a carry tree), and the high halves `s_hi`, `t_hi` (positions `r..64`, `m = 64 - r`
//! bits) must add up with `cin` to zero modulo `2^m`:
//!
//! - `[s_hi + t_hi + cin = 0 mod 2^m]` without an adder: the sum is zero exactly when at every
//!   position the bit `s_i ^ t_i` equals the carry into it that a zero sum below produces:
//!   `cin` at the lowest position, `s_{i-1} | t_{i-1}` above it (`maj(s, t, s ^ t)`); with
//!   `u_i = !s_i & !t_i` (one AND) the condition above the lowest is the bit
//!   `s_i ^ t_i ^ u_{i-1}`, and `E` the AND of those `m - 1` bits, computed while the carry
//!   tree runs; in range: `E & !(s_r ^ t_r ^ cin)`;
//! - in range, `w = 0` exactly when `s_hi = t_hi = 0` and `cin = 0`: with `Z` the AND of the
//!   `u_i`, `w = !(Z & !cin) = !(Z ^ Z cin)`.
//!
//! The wrap count `v + w` becomes arithmetic (modulo `2^64`) in one round: `w` by bit
//! injection with `v` added by server 1 for free ([`super::inject::inject_with`]).
//!
//! Gates per element: 64 (`r` generate bits and `m` NOR bits, one round), the carry tree
//! (under `2 r`) and two AND trees of `m - 1` and `m` leaves side by side, two final ANDs:
//! 64 + 53 + 32 + 33 + 2 = 184 for `r = 30` where the word-wise adder with its wrap bits
//! (the A2B this replaced) took 896; rounds: server 1's summand,
//! `2 + ceil(log2(max(r, m)))`, the injection.
//!
//! Elements past the end of the last word have all shares zero, so `y = 0`: in range, no wraps.

use crate::error::{Broken, Invalid};
use tessera_common::net::Network;

use super::inject::inject_with;
use super::sliced::{
    AndTree, CarryTree, Owned, and_planes, not, plane_of, run_trees, summand_planes, view, xor,
};
use super::{Aby3Bits, Aby3Tensor, Shared, check_servers};
use crate::{MpcError, Session};

/// Whether each element of `y` is below `2^r` (as an unsigned 64-bit value): one boolean plane
/// of `ceil(len / 64)` words ([`super::sliced`]'s layout), and the number of times `y`'s shares
/// wrap `2^64` as an arithmetic sharing modulo `2^64` (exact for elements in range). See the
/// module docs for the circuit; `1 <= r <= 63`.
pub async fn range_and_wraps<N: Network>(
    session: &Session<N>,
    y: &Aby3Tensor<u64>,
    r: usize,
) -> Result<(Aby3Bits<u64>, Aby3Tensor<u64>), MpcError> {
    check_servers(session)?;
    if !(1..64).contains(&r) {
        return Err(Invalid::RangeBits(r as u32).into());
    }
    let me = session.me();
    let len = y.len();
    let words = len.div_ceil(64);
    if words == 0 {
        return Ok((
            Shared::from_parts(Vec::new(), Vec::new(), &[0]),
            Shared::from_parts(Vec::new(), Vec::new(), y.shape()),
        ));
    }
    let (s, t) = summand_planes(session, y).await?;
    let (sp, tp) = (|b| plane_of(&s, b, words), |b| plane_of(&t, b, words));
    // 1. Generate bits of positions 0..r and the NOR bits u_i = !s_i & !t_i of positions r..64.
    let not_s: Vec<Owned> = (r..64).map(|b| not(me, sp(b))).collect();
    let not_t: Vec<Owned> = (r..64).map(|b| not(me, tp(b))).collect();
    let mut pairs: Vec<_> = (0..r).map(|b| (sp(b), tp(b))).collect();
    pairs.extend((0..64 - r).map(|i| (view(&not_s[i]), view(&not_t[i]))));
    let mut generate = and_planes(session, &pairs, words).await?;
    let nor = generate.split_off(r);
    let prop: Vec<Owned> = (0..r).map(|b| xor(sp(b), tp(b))).collect();
    // 2. The carry tree for cin and the AND trees for E and Z, side by side.
    let lowest = xor(sp(r), tp(r));
    let e_leaves: Vec<Owned> = (r + 1..64)
        .map(|b| xor(view(&xor(sp(b), tp(b))), view(&nor[b - r - 1])))
        .collect();
    let mut cin = CarryTree::new(generate, prop);
    let mut e = AndTree::new(e_leaves);
    let mut z = AndTree::new(nor);
    run_trees(session, words, &mut [&mut cin, &mut e, &mut z]).await?;
    let (cin, z) = (
        cin.finish().ok_or_else(short)?,
        z.finish().ok_or_else(short)?,
    );
    // With m = 1 no position lies above the lowest: E is 1.
    let e = e
        .finish()
        .unwrap_or_else(|| not(me, view(&[vec![0; words], vec![0; words]])));
    // 3. in range = E & !(s_r ^ t_r ^ cin); w = !(Z ^ Z cin).
    let lowest_zero = not(me, view(&xor(view(&lowest), view(&cin))));
    let mut last = and_planes(
        session,
        &[(view(&e), view(&lowest_zero)), (view(&z), view(&cin))],
        words,
    )
    .await?
    .into_iter();
    let (in_range, b) = (
        last.next().ok_or_else(short)?,
        last.next().ok_or_else(short)?,
    );
    let [in0, in1] = in_range;
    let [w0, w1] = not(me, view(&xor(view(&z), view(&b))));
    // 4. v + w: server 1's wrap of x1 + x2 joins the injection of w.
    let v: Vec<u64> = if me == 1 {
        let (x1, x2) = y.shares();
        x1.iter()
            .zip(x2)
            .map(|(p, q)| u64::from(p.checked_add(*q).is_none()))
            .collect()
    } else {
        Vec::new()
    };
    let w = Shared::from_parts(w0, w1, &[words]);
    let wraps = inject_with(session, &w, len, &v, y.shape()).await?;
    Ok((Shared::from_parts(in0, in1, &[words]), wraps))
}

fn short() -> MpcError {
    MpcError::Broken(Broken::Gates("range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aby3::planes::plane_bits;
    use crate::aby3::{Arith, open, share_from};
    use crate::harness::run_local;
    use tessera_common::prg::{Prg, Seed};
    use tessera_common::ring::RingTensor;

    /// Values at and around the bound (below, at, above, the top of the ring, zero) and random
    /// ones, for several bounds: the range bit against the plaintext, and the wrap count against
    /// the integer sum of the shares.
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
                    let (in_range, wraps) = range_and_wraps(&session, &y, r).await?;
                    let op = session.op("test_open");
                    let in_range = open(&session, &op, &in_range).await?;
                    let wraps = open(&session, &op, &wraps).await?;
                    // The integer sum of the shares: server 0 holds x0, x1; x2 = y - x0 - x1.
                    let (x0, x1) = y.shares();
                    Ok((in_range, wraps, x0.to_vec(), x1.to_vec()))
                }
            })
            .await
            .unwrap();
            let (in_range, wraps, x0, x1) = &out[0];
            let in_range = plane_bits(in_range, len);
            let mut checked = 0;
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
                    assert_eq!(wraps[i], (sum >> 64) as u64, "r {r} element {i}");
                    checked += 1;
                }
            }
            // 71 masked values and at least the edges 0 and 1 are in range.
            assert!(checked >= 73, "r {r}: {checked} in range");
        }
    }
}
