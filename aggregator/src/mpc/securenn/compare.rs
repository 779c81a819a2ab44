//! PrivateCompare (SecureNN Algorithm 3).
//!
//! `server0` and `server1` hold shares in `Z_67` of the 64 bits of each `x`, a public `r` and a
//! common random bit `beta`. Per bit `i`, from the top, each computes its share of
//! `c_i = r_i - x_i + 1 + sum_{k > i} (x_k XOR r_k)` (for `beta = 0`; for `beta = 1` the same
//! with `t = r + 1` and the signs of the first terms swapped), which is zero at exactly one `i`
//! when `x > r` (resp. `x < t`) and never otherwise, since the sum stays below 67. The shares are
//! multiplied by common non-zero masks `s_i` and permuted by a common random permutation per
//! element before they go to the helper, which learns only whether a zero is among them:
//! `beta' = beta XOR (x > r)`. The case `beta = 1, r = 2^64 - 1` (where `t` would overflow) sends
//! masked shares with exactly one zero, as the algorithm prescribes. One round; each computing
//! server sends 64 bytes per element.

use rayon::prelude::*;
use tessera_common::net::Network;
use tessera_common::prg::{Prg, Seed};

use super::HELPER;
use super::zn::{P, Zn, permutation, sample_below};
use crate::mpc::{MpcError, Op, Session};

/// PRG stream of the common masks, permutations and the special case's `u`.
const STREAM: u64 = 40;

/// Runs PrivateCompare under `op`. `bits` (at `server0`/`server1`): `64 n` shares, least
/// significant bit first per element; `r` and `beta`: public to both. The helper gets
/// `Some(beta')`, the others `None`.
pub async fn private_compare<N: Network>(
    session: &Session<N>,
    op: &Op,
    bits: &[u64],
    r: &[u64],
    beta: &[u64],
    n: usize,
) -> Result<Option<Vec<u64>>, MpcError> {
    let me = session.me();
    if me == HELPER {
        let mut d = Zn::P
            .decode(&session.recv_bytes(0, op, "pc", 64 * n).await?)
            .ok_or_else(|| bad(0))?;
        let d1 = Zn::P
            .decode(&session.recv_bytes(1, op, "pc", 64 * n).await?)
            .ok_or_else(|| bad(1))?;
        for (a, b) in d.iter_mut().zip(d1) {
            *a = Zn::P.add(*a, b);
        }
        return Ok(Some(d.chunks(64).map(|c| c.contains(&0) as u64).collect()));
    }
    // Both computing servers derive the same per-chunk seeds from their common PRG, so the
    // chunks (masks, permutations) can be computed in parallel.
    let mut common = session.shared_prg(1 - me, op, STREAM)?;
    let mut out = vec![0u8; 64 * n];
    let seeds: Vec<Seed> = (0..n.div_ceil(CHUNK))
        .map(|_| {
            let mut s = [0u8; 32];
            common.fill_bytes(&mut s);
            Seed(s)
        })
        .collect();
    out.par_chunks_mut(64 * CHUNK)
        .zip(seeds.par_iter())
        .enumerate()
        .for_each(|(c, (chunk, seed))| {
            let first = c * CHUNK;
            let len = chunk.len() / 64;
            masked_terms(
                me as u64,
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

/// One computing server's masked, permuted shares of `c_i` for a chunk of elements.
fn masked_terms(j: u64, bits: &[u64], r: &[u64], beta: &[u64], seed: &Seed, out: &mut [u8]) {
    let n = r.len();
    let mut prg = Prg::new(seed, 0);
    let s = sample_below(&mut prg, 64 * n, P - 1);
    let u = sample_below(&mut prg, 64 * n, P - 1);
    let zp = Zn::P;
    for e in 0..n {
        let perm = permutation(&mut prg, 64);
        let special = beta[e] == 1 && r[e] == u64::MAX;
        let t = r[e].wrapping_add(1);
        let mut acc = 0u64;
        for i in (0..64).rev() {
            let x = bits[64 * e + i];
            let ui = u[64 * e + i] + 1;
            let c = if special {
                if i != 0 {
                    zp.sub(zp.mul_small(1 - j, ui + 1), zp.mul_small(j, ui))
                } else if j == 0 {
                    ui
                } else {
                    zp.neg(ui)
                }
            } else {
                let (bit, sign_x) = if beta[e] == 0 {
                    ((r[e] >> i) & 1, P - 1)
                } else {
                    ((t >> i) & 1, 1)
                };
                // w = x XOR bit (shares): x + j*bit - 2*bit*x.
                let w = zp.sub(zp.add(x, j * bit), zp.mul_small(2 * bit, x));
                // c = ±(j*bit) ∓ x + j + acc.
                let jb = zp.mul_small(j, bit);
                let lead = if beta[e] == 0 { jb } else { zp.neg(jb) };
                let c = zp.add(zp.add(lead, zp.mul_small(sign_x, x)), zp.add(j, acc));
                acc = zp.add(acc, w);
                c
            };
            out[64 * e + perm[i]] = zp.mul_small(s[64 * e + i] + 1, c) as u8;
        }
    }
}

fn bad(peer: usize) -> MpcError {
    MpcError::Protocol {
        peer: tessera_common::PartyId::Server(peer as u8),
        reason: "PrivateCompare share outside Z_67".into(),
    }
}
