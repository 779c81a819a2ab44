//! PrivateCompare (SecureNN Algorithm 3).
//!
//! `server0` and `server1` hold shares in `Z_67` of the 64 bits of each `x`, a public `r` and a
//! common random bit `beta`. Per bit `i`, from the top, each computes its share of
//! `c_i = r_i - x_i + 1 + sum_{k > i} (x_k XOR r_k)` (for `beta = 0`; for `beta = 1` the same
//! with `t = r + 1` and the signs of the first terms swapped), which is zero at exactly one `i`
//! when `x > r` (resp. `x < t`) and never otherwise, since the sum stays below 67. The shares are
//! multiplied by common non-zero masks `s_i`, padded by a common uniform `z_i` (added by `server0`,
//! subtracted by `server1`, so only `s_i c_i` is determined by what the helper receives) and
//! rotated by a common uniform offset per element (below) before they go to the helper, which
//! learns only whether a zero is among them:
//! `beta' = beta XOR (x > r)`. The case `beta = 1, r = 2^64 - 1` (where `t` would overflow) sends
//! masked shares with exactly one zero, as the algorithm prescribes. One round; each computing
//! server sends 64 bytes per element.
//!
//! The permutation is a uniformly random rotation of the 64 terms, which gives the helper the
//! same view as the paper's uniformly random permutation: every term gets its own mask and pad,
//! so what the helper receives for a term is a uniform byte and `s_i c_i` (0 or uniform non-zero,
//! independently of everything else), and at most one `c_i` is zero; the view is therefore fixed
//! by where the zero lands, and a uniform rotation puts it at a uniform position, as a uniform
//! permutation does (`zero_lands_uniformly` checks it). It costs one PRG byte per element (`& 63`,
//! exact since 64 divides 256) instead of 63 draws and swaps.
//!
//! Every `Z_67` value is a byte, in memory as on the wire; the masks and pads of a chunk of
//! elements come from one branch-free sampling each ([`sample_below`]), and the terms of an
//! element are computed in fixed-size arrays the compiler vectorises.

use crate::error::{Broken, Misbehaved};
use rayon::prelude::*;
use tessera_common::net::Network;
use tessera_common::prg::{Prg, Seed};

use super::HELPER;
use super::zn::{P, add67, chunk_seeds, mul67, sample_below, sub67};
use crate::{MpcError, Op, Session};

/// PRG stream of the common masks, permutations and the special case's `u`.
const STREAM: u64 = 40;

/// Runs PrivateCompare under `op`. `bits` (at `server0`/`server1`): `64 n` shares in `Z_67`,
/// least significant bit first per element; `r` and `beta`: public to both. The helper gets
/// `Some(beta')`, the others `None`.
pub async fn private_compare<N: Network>(
    session: &Session<N>,
    op: &Op,
    bits: &[u8],
    r: &[u64],
    beta: &[u64],
    n: usize,
) -> Result<Option<Vec<u64>>, MpcError> {
    let me = session.me();
    if me == HELPER {
        let d0 = session.recv_bytes(0, op, "pc", 64 * n).await?;
        let d1 = session.recv_bytes(1, op, "pc", 64 * n).await?;
        // Per element: whether a term's two parts are out of `Z_67` (bit 1 for server0's, 2
        // for server1's) and whether their sum is zero in `Z_67` (below 67 each, so a sum of 0
        // or 67), in one pass the compiler vectorises, on every core.
        let found: Vec<u8> = d0
            .par_chunks(64)
            .zip(d1.par_chunks(64))
            .map(|(a, b)| {
                a.iter().zip(b).fold(0u8, |acc, (a, b)| {
                    let (a, b) = (*a, *b);
                    let sum = a.wrapping_add(b);
                    let bad = u8::from(a >= P) | (u8::from(b >= P) << 1);
                    acc | bad | (u8::from(sum == 0 || sum == P) << 2)
                })
            })
            .collect();
        let flags = found.iter().fold(0u8, |acc, f| acc | f);
        if flags & 1 != 0 {
            return Err(bad(0));
        }
        if flags & 2 != 0 {
            return Err(bad(1));
        }
        return Ok(Some(found.iter().map(|f| u64::from(f >> 2)).collect()));
    }
    if bits.len() != 64 * n || r.len() != n || beta.len() != n {
        return Err(Broken::Lengths {
            what: "PrivateCompare bit shares, r and beta",
            got: bits.len() + r.len() + beta.len(),
            expected: 66 * n,
        }
        .into());
    }
    // Both computing servers derive the same per-chunk seeds from their common PRG, so the
    // chunks (masks, permutations) can be computed in parallel.
    let mut common = session.shared_prg(1 - me, op, STREAM)?;
    let mut out = vec![0u8; 64 * n];
    let seeds = chunk_seeds(&mut common, n.div_ceil(CHUNK));
    out.par_chunks_mut(64 * CHUNK)
        .zip(seeds.par_iter())
        .enumerate()
        .for_each(|(c, (chunk, seed))| {
            let first = c * CHUNK;
            let len = chunk.len() / 64;
            masked_terms(
                me as u8,
                &bits[64 * first..64 * (first + len)],
                &r[first..first + len],
                &beta[first..first + len],
                seed,
                chunk,
            );
        });
    session.send_bytes(HELPER, op, "pc", out).await?;
    Ok(None)
}

/// Elements per parallel chunk.
const CHUNK: usize = 1024;

/// One computing server's masked, padded, permuted shares of `c_i` for a chunk of elements.
///
/// Both computing servers multiply their share of `c_i` by the same non-zero mask `s_i` and add
/// a common pad `z_i` uniform in `Z_67` (`server0` adds it, `server1` subtracts it), so the helper
/// receives `(s_i c_i^0 + z_i, s_i c_i^1 - z_i)`: the first part is uniform on its own, and the
/// pair tells nothing beyond `s_i c_i`, which is 0 when `c_i = 0` and uniform non-zero
/// otherwise. Without the pad the helper could divide one part by the other, cancel the mask,
/// and, knowing the bits of `x` it dealt, recover `r`.
fn masked_terms(j: u8, bits: &[u8], r: &[u64], beta: &[u64], seed: &Seed, out: &mut [u8]) {
    let n = r.len();
    let mut prg = Prg::new(seed, 0);
    let s = sample_below(&mut prg, 64 * n, P - 1);
    let z = sample_below(&mut prg, 64 * n, P);
    let mut turns = vec![0u8; n];
    prg.fill_bytes(&mut turns);
    for e in 0..n {
        let range = 64 * e..64 * (e + 1);
        // The special case's randomness, drawn (alike at both servers) only where it is used.
        let u = if special(r[e], beta[e]) {
            sample_below(&mut prg, 64, P - 1)
        } else {
            Vec::new()
        };
        let c = term_shares(j, &bits[range.clone()], r[e], beta[e], &u);
        let (s, z) = (&s[range.clone()], &z[range.clone()]);
        let mut masked = [0u8; 64];
        for i in 0..64 {
            let m = mul67(s[i] + 1, c[i]);
            masked[i] = if j == 0 {
                add67(m, z[i])
            } else {
                sub67(m, z[i])
            };
        }
        // Term i goes to position (i + turn) mod 64.
        let turn = usize::from(turns[e] & 63);
        let terms = &mut out[range];
        terms[turn..].copy_from_slice(&masked[..64 - turn]);
        terms[..turn].copy_from_slice(&masked[64 - turn..]);
    }
}

/// Whether `(r, beta)` is the case `beta = 1, r = 2^64 - 1`, where `t = r + 1` overflows.
fn special(r: u64, beta: u64) -> bool {
    beta == 1 && r == u64::MAX
}

/// Server `j`'s shares of the 64 terms `c_i` of one element (Algorithm 3, steps 2-14), bit `i`
/// at index `i`; `u` (64 values below 66) is the special case's randomness, read only there.
fn term_shares(j: u8, bits: &[u8], r: u64, beta: u64, u: &[u8]) -> [u8; 64] {
    if special(r, beta) {
        let mut c = [0u8; 64];
        for (i, (c, u)) in c.iter_mut().zip(u).enumerate() {
            let ui = u + 1;
            *c = match (j, i) {
                (0, 0) => ui,
                (0, _) => add67(ui, 1),
                _ => sub67(0, ui),
            };
        }
        return c;
    }
    let t = if beta == 0 { r } else { r.wrapping_add(1) };
    let (j, p) = (u16::from(j), u16::from(P));
    // Per bit: the leading terms and w = x XOR t_i on shares (x where the bit is 0, j - x where
    // it is 1), all below 2 * 67 + 1.
    let mut lead = [0u16; 64];
    let mut w = [0u16; 64];
    for (i, x) in bits.iter().take(64).enumerate() {
        let x = u16::from(*x);
        let bit = ((t >> i) & 1) as u16;
        let jb = j * bit;
        // beta = 0: c = j t_i - x + j + acc; beta = 1: c = -j t_i + x + j + acc.
        lead[i] = if beta == 0 { jb + p - x } else { x + p - jb } + j;
        w[i] = if bit == 0 { x } else { j + p - x };
    }
    // acc_i = sum of w over the bits above i: at most 63 terms below 135, below 2^16.
    let mut acc = [0u16; 64];
    for i in (0..63).rev() {
        acc[i] = acc[i + 1] + w[i + 1];
    }
    let mut c = [0u8; 64];
    for ((c, lead), acc) in c.iter_mut().zip(&lead).zip(&acc) {
        *c = ((lead + acc) % p) as u8;
    }
    c
}

fn bad(peer: usize) -> MpcError {
    MpcError::Protocol {
        peer: tessera_common::PartyId::Server(peer as u8),
        reason: Misbehaved::OutOfRange {
            part: "PrivateCompare share",
            modulus: "Z_67",
        },
    }
}

#[cfg(test)]
mod tests {
    //! What the helper sees of PrivateCompare must not depend on `r` beyond the result bit.

    use super::*;

    /// Elements (independent trials) per compared value.
    const TRIALS: usize = 1000;

    /// Random `Z_67` shares of the bits of `x`, `TRIALS` times (as the helper deals them: it
    /// knows both shares).
    fn dealt_bits(x: u64) -> (Vec<u8>, Vec<u8>) {
        let mut prg = Prg::new(&Seed([9; 32]), 1);
        let s0 = sample_below(&mut prg, 64 * TRIALS, P);
        let bits = super::super::zn::bits_of(&vec![x; TRIALS]);
        let s1 = bits.iter().zip(&s0).map(|(b, a)| sub67(*b, *a)).collect();
        (s0, s1)
    }

    /// The helper's view of `TRIALS` comparisons of `x` with `r` (`beta = 0`): the bytes
    /// `server0` and `server1` send it.
    fn helper_view(bits: &(Vec<u8>, Vec<u8>), r: u64, seed: u8) -> (Vec<u8>, Vec<u8>) {
        let rs = vec![r; TRIALS];
        let betas = vec![0; TRIALS];
        let seed = Seed([seed; 32]);
        let mut d0 = vec![0u8; 64 * TRIALS];
        let mut d1 = vec![0u8; 64 * TRIALS];
        masked_terms(0, &bits.0, &rs, &betas, &seed, &mut d0);
        masked_terms(1, &bits.1, &rs, &betas, &seed, &mut d1);
        (d0, d1)
    }

    /// The helper's attack on a view: for a guess of `r`, the number of the 64 terms whose
    /// share pair `(c0_i, c1_i)` (computable from the guess and the dealt bits) appears, up to a
    /// common non-zero factor, among the 64 pairs received, summed over the trials. With a
    /// common mask `d_k = s (c0_i, c1_i)` and the right guess every term is found (64 per trial).
    fn found_terms(bits: &(Vec<u8>, Vec<u8>), view: &(Vec<u8>, Vec<u8>), guess: u64) -> f64 {
        let mut found = 0usize;
        for e in 0..TRIALS {
            let range = 64 * e..64 * (e + 1);
            let c0 = term_shares(0, &bits.0[range.clone()], guess, 0, &[0; 64]);
            let c1 = term_shares(1, &bits.1[range.clone()], guess, 0, &[0; 64]);
            let (d0, d1) = (&view.0[range.clone()], &view.1[range]);
            found += (0..64)
                .filter(|i| (0..64).any(|k| mul67(d0[k], c1[*i]) == mul67(d1[k], c0[*i])))
                .count();
        }
        found as f64 / TRIALS as f64
    }

    /// The helper's sum of the two views has exactly one zero per element when `x > r` and none
    /// when `x <= r`, and the zero's position is uniform over the 64 whatever bit decides the
    /// comparison (the rotation hides it). 64,000 elements per case: each position is expected
    /// 1,000 times (sd 31.2); all 64 counts of one case fall within 6 sd with probability above
    /// 1 - 64 * 2e-9. An identity "permutation" would put all 64,000 at the deciding bit.
    #[test]
    fn zero_lands_uniformly() {
        const N: usize = 64_000;
        let x: u64 = 0xb7e1_5162_8aed_2a6a;
        let mut prg = Prg::new(&Seed([3; 32]), 1);
        let s0 = sample_below(&mut prg, 64 * N, P);
        let bits = super::super::zn::bits_of(&vec![x; N]);
        let s1: Vec<u8> = bits.iter().zip(&s0).map(|(b, a)| sub67(*b, *a)).collect();
        // r below x deciding at bit 63, at bit 5, and r above x.
        for (r, zeros) in [(0u64, 1usize), (x ^ (1 << 5), 1), (x | (1 << 4), 0)] {
            let (rs, betas) = (vec![r; N], vec![0; N]);
            let seed = Seed([r as u8 ^ 0x5a; 32]);
            let mut d0 = vec![0u8; 64 * N];
            let mut d1 = vec![0u8; 64 * N];
            masked_terms(0, &s0, &rs, &betas, &seed, &mut d0);
            masked_terms(1, &s1, &rs, &betas, &seed, &mut d1);
            let mut at = [0u32; 64];
            for (e0, e1) in d0.chunks(64).zip(d1.chunks(64)) {
                let sums: Vec<u8> = e0.iter().zip(e1).map(|(a, b)| add67(*a, *b)).collect();
                let found: Vec<usize> = (0..64).filter(|k| sums[*k] == 0).collect();
                assert_eq!(found.len(), zeros, "r = {r:#x}");
                for k in found {
                    at[k] += 1;
                }
            }
            if zeros == 1 {
                let sd = (N as f64 / 64.0 * (63.0 / 64.0)).sqrt();
                for (k, count) in at.iter().enumerate() {
                    assert!(
                        (f64::from(*count) - 1000.0).abs() < 6.0 * sd,
                        "r = {r:#x}: position {k} holds the zero {count} times"
                    );
                }
            }
        }
    }

    /// Two values of `r` below `x` (the same result bit): the helper's attack statistic must
    /// score the views of both alike. Each trial's statistic lies in [0, 64], so the difference
    /// of the two means over `TRIALS` independent trials, when both views have the same
    /// distribution, exceeds 12 with probability at most 2 exp(-2 TRIALS 12^2 / 128^2) < 5e-8
    /// (Hoeffding); the seeds are fixed, so the test is deterministic. With a common mask and no
    /// pad (the code before the fix) the right guess scored 64.0 and the other 40.2.
    #[test]
    fn helper_view_does_not_depend_on_r() {
        let x: u64 = 0xb7e1_5162_8aed_2a6a;
        let (r_a, r_b) = (0x3243_f6a8_885a_308d, 0x9e37_79b9_7f4a_7c15);
        assert!(x > r_a && x > r_b);
        let bits = dealt_bits(x);
        let view_a = helper_view(&bits, r_a, 1);
        let view_b = helper_view(&bits, r_b, 2);
        let score_a = found_terms(&bits, &view_a, r_a);
        let score_b = found_terms(&bits, &view_b, r_a);
        println!("terms of r_a found: {score_a:.2} in r_a's view, {score_b:.2} in r_b's");
        assert!(
            (score_a - score_b).abs() < 12.0,
            "the helper finds {score_a:.1} terms of r_a in r_a's view and {score_b:.1} in r_b's"
        );
    }
}
