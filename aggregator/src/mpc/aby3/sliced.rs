//! Bit-sliced boolean circuits on ABY3 sharings: the sign of `x` without a whole adder.
//!
//! The word-wise adder of [`super::boolean`] ANDs whole 64-bit words at every Kogge-Stone level
//! (832 AND gates per 64-bit element where the circuit needs about 240), because one element's
//! bits share a word. Here the shares are transposed into *bit planes*: plane `b` holds bit `b`
//! of 64 elements per word, so a gate is one bit of one plane and only the planes a circuit
//! still needs are ANDed. Transposition is linear over XOR, so each server transposes its own
//! shares locally.
//!
//! The most significant bit of `x = x0 + x1 + x2` (the arithmetic shares read as the boolean
//! sharing `s = x0 ^ x1 ^ x2` plus carries):
//! 1. carry-save: `c = maj(x0, x1, x2) = x0 x1 ^ x1 x2 ^ x2 x0`, and server `i` knows
//!    `x_i x_{i+1}`, so each server's term is local and one resharing round makes `c`
//!    replicated (bits `0..k-2`: the top carry leaves the word);
//! 2. `x = s + (c << 1)`: its top bit is `s_{k-1} ^ c_{k-2} ^ C`, with `C` the carry into bit
//!    `k-1`. Position 0 cannot generate (`(c << 1)_0 = 0`), so `C` is the group generate of
//!    positions `1..k-2`: one round for the generate bits `g_b = s_b c_{b-1}`, then a binary
//!    tree of `(G, P)` merges, `G = G_hi ^ P_hi G_lo`, `P = P_hi P_lo` (the lowest block never
//!    needs its `P`), `ceil(log2(k-2))` rounds.
//!
//! For `k = 64`: 63 + 62 + 116 = 241 AND gates and 8 rounds (the word-wise adder: 832 gates
//! and 8 rounds), so a comparison sends 30.1 bytes per server per element before bit injection
//! (one more round and one bit with a preprocessed daBit, [`super::prep`]).

use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::{Aby3Bits, Aby3Tensor, Bool, MpcError, Session, Shared, check_servers};

/// Transposes a 64 x 64 bit matrix in place: afterwards bit `j` of word `i` is what bit `i` of
/// word `j` was (Hacker's Delight, 7-3, least significant bit first).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// The bit planes of `v`: `R::BITS` planes of `ceil(len / 64)` words each, one after another;
/// bit `j` of word `w` of plane `b` is bit `b` of `v[64 w + j]` (zero past the end).
pub fn to_planes<R: Ring>(v: &[R]) -> Vec<u64> {
    let words = v.len().div_ceil(64);
    let mut out = vec![0u64; R::BITS as usize * words];
    let mut block = [0u64; 64];
    for q in 0..(R::BITS / 64) {
        for (w, chunk) in v.chunks(64).enumerate() {
            block.fill(0);
            for (b, x) in block.iter_mut().zip(chunk) {
                *b = x.shr(64 * q).low_u64();
            }
            transpose64(&mut block);
            for (b, word) in block.iter().enumerate() {
                out[(64 * q as usize + b) * words + w] = *word;
            }
        }
    }
    out
}

/// The bits of one plane as `len` words holding 0 or 1 (the inverse of one plane of
/// [`to_planes`]).
pub fn plane_bits(plane: &[u64], len: usize) -> Vec<u64> {
    (0..len).map(|i| (plane[i / 64] >> (i % 64)) & 1).collect()
}

/// One plane of a sharing: this server's two shares of it.
type Plane<'a> = [&'a [u64]; 2];

/// An owned plane sharing.
type Owned = [Vec<u64>; 2];

fn view(p: &Owned) -> Plane<'_> {
    [&p[0], &p[1]]
}

fn xor(a: Plane<'_>, b: Plane<'_>) -> Owned {
    let f = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, b)| a ^ b).collect();
    [f(a[0], b[0]), f(a[1], b[1])]
}

/// Masks this server's three-out-of-three shares `z` with a fresh zero-sharing and reshares them
/// (one round, one bit per gate per server), returning `planes` planes of `words` words.
async fn reshare_planes<N: Network>(
    session: &Session<N>,
    name: &'static str,
    mut z: Vec<u64>,
    words: usize,
) -> Result<Vec<Owned>, MpcError> {
    let op = session.op(name);
    let before = session.net_stats();
    super::mask::<Bool<u64>, N>(session, &op, 0, &mut z)?;
    let len = z.len();
    let shared = super::reshare::<Bool<u64>, N>(session, &op, z, &[len]).await?;
    session.record(&op, before);
    let (z, other) = shared.shares();
    if words == 0 {
        return Ok(Vec::new());
    }
    Ok(z.chunks(words)
        .zip(other.chunks(words))
        .map(|(a, b)| [a.to_vec(), b.to_vec()])
        .collect())
}

/// ANDs pairs of planes in one round.
async fn and_planes<N: Network>(
    session: &Session<N>,
    pairs: &[(Plane<'_>, Plane<'_>)],
    words: usize,
) -> Result<Vec<Owned>, MpcError> {
    let mut z = Vec::with_capacity(pairs.len() * words);
    for (a, b) in pairs {
        z.extend((0..words).map(|i| (a[0][i] & (b[0][i] ^ b[1][i])) ^ (a[1][i] & b[0][i])));
    }
    reshare_planes(session, "aby3_and_planes", z, words).await
}

/// The most significant bit of each element of `x` (1 for negative values in two's
/// complement), as one boolean plane: a sharing of `ceil(len / 64)` words whose bit `j` of word
/// `w` is the sign of element `64 w + j`. See the module docs for the circuit.
pub async fn msb_plane<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
) -> Result<Aby3Bits<u64>, MpcError> {
    check_servers(session)?;
    let words = x.len().div_ceil(64);
    if words == 0 {
        return Ok(Shared::from_parts(Vec::new(), Vec::new(), &[0]));
    }
    let k = R::BITS as usize;
    let (x0, x1) = x.shares();
    let s = [to_planes(x0), to_planes(x1)];
    let plane =
        |b: usize| -> Plane<'_> { [&s[0][b * words..][..words], &s[1][b * words..][..words]] };
    // 1. Carry-save: server i's term of maj(x0, x1, x2) is x_i & x_{i+1}.
    let local: Vec<u64> = s[0][..(k - 1) * words]
        .iter()
        .zip(&s[1][..(k - 1) * words])
        .map(|(a, b)| a & b)
        .collect();
    let carry = reshare_planes(session, "aby3_msb_carry", local, words).await?;
    // 2. Generate and propagate bits of s + (c << 1) at positions 1..k-2.
    let pairs: Vec<_> = (1..k - 1)
        .map(|b| (plane(b), view(&carry[b - 1])))
        .collect();
    let mut generate = and_planes(session, &pairs, words).await?;
    let mut prop: Vec<Owned> = (1..k - 1)
        .map(|b| xor(plane(b), view(&carry[b - 1])))
        .collect();
    // 3. The tree: merge neighbouring blocks, lowest first, until one remains.
    while generate.len() > 1 {
        let merges = generate.len() / 2;
        let mut pairs = Vec::with_capacity(2 * merges);
        for m in 0..merges {
            let (lo, hi) = (2 * m, 2 * m + 1);
            pairs.push((view(&prop[hi]), view(&generate[lo])));
            if lo > 0 {
                pairs.push((view(&prop[hi]), view(&prop[lo])));
            }
        }
        let mut anded = and_planes(session, &pairs, words).await?.into_iter();
        let mut next_generate = Vec::with_capacity(generate.len().div_ceil(2));
        let mut next_prop = Vec::with_capacity(generate.len().div_ceil(2));
        for m in 0..merges {
            let (lo, hi) = (2 * m, 2 * m + 1);
            let carried = anded.next().ok_or_else(short)?;
            next_generate.push(xor(view(&generate[hi]), view(&carried)));
            next_prop.push(if lo > 0 {
                anded.next().ok_or_else(short)?
            } else {
                [Vec::new(), Vec::new()]
            });
        }
        if generate.len() % 2 == 1 {
            next_generate.push(generate.pop().ok_or_else(short)?);
            next_prop.push(prop.pop().ok_or_else(short)?);
        }
        generate = next_generate;
        prop = next_prop;
    }
    let top = xor(plane(k - 1), view(&carry[k - 2]));
    let sign = match generate.pop() {
        Some(g) => xor(view(&top), view(&g)),
        None => top,
    };
    let [a, b] = sign;
    Ok(Shared::from_parts(a, b, &[words]))
}

fn short() -> MpcError {
    MpcError::Invalid("bit-sliced circuit ran out of gates".into())
}

/// The sign bits of `x` as an arithmetic 0/1 in `R` (1 for negative): [`msb_plane`] of the
/// value modulo `2^64`, then one round of bit injection with preprocessed daBits
/// ([`super::prep::inject_plane`]).
pub async fn msb_arith<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let plane = msb_plane(session, &x.low64()).await?;
    super::prep::inject_plane(session, &plane, x.len(), x.shape()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::aby3::open;
    use crate::mpc::harness::run_local;
    use tessera_common::prg::{Prg, Seed};
    use tessera_common::ring::RingTensor;

    #[test]
    fn transpose_matches_the_definition() {
        let mut a = [0u64; 64];
        Prg::new(&Seed([4; 32]), 0).fill_ring(&mut a);
        let before = a;
        transpose64(&mut a);
        for (i, word) in a.iter().enumerate() {
            for (j, was) in before.iter().enumerate() {
                assert_eq!((word >> j) & 1, (was >> i) & 1, "bit {j} of word {i}");
            }
        }
    }

    #[test]
    fn planes_hold_each_bit_of_each_element() {
        let v: Vec<u128> = Prg::new(&Seed([5; 32]), 0).ring_vec(200);
        let planes = to_planes(&v);
        let words = 4;
        assert_eq!(planes.len(), 128 * words);
        for b in 0..128 {
            let bits = plane_bits(&planes[b * words..(b + 1) * words], v.len());
            for (i, x) in v.iter().enumerate() {
                assert_eq!(bits[i], ((x >> b) & 1) as u64, "bit {b} of element {i}");
            }
        }
        // Padding past the end is zero.
        assert_eq!(planes[words - 1] >> (200 - 192), 0);
    }

    /// The sign of random and edge values, in both rings, against the plaintext; the lengths
    /// cover none, a partial word and an exact multiple of 64.
    #[tokio::test]
    async fn msb_matches_the_plaintext_sign() {
        async fn check<R: Ring>(len: usize) {
            let mut v: Vec<R> = Prg::new(&Seed([6; 32]), len as u64).ring_vec(len);
            let edges = [R::ZERO, R::ONE, R::ONE.neg(), R::ONE.shl(R::BITS - 1)];
            for (x, e) in v.iter_mut().zip(edges) {
                *x = e;
            }
            let t = RingTensor::from_vec(&[len], v.clone()).unwrap();
            let out = run_local(3, move |session| {
                let t = t.clone();
                async move {
                    let me = session.me();
                    let x = super::super::share_from::<super::super::Arith<R>, _>(
                        &session,
                        0,
                        (me == 0).then_some(&t),
                        &[len],
                    )
                    .await?;
                    let plane = msb_plane(&session, &x).await?;
                    let op = session.op("test_open");
                    open(&session, &op, &plane).await
                }
            })
            .await
            .unwrap();
            let bits = plane_bits(&out[0], len);
            for (i, x) in v.iter().enumerate() {
                assert_eq!(bits[i] == 1, x.bit(R::BITS - 1), "element {i} of {len}");
            }
        }
        check::<u64>(0).await;
        check::<u64>(100).await;
        check::<u64>(128).await;
        check::<u128>(70).await;
    }
}
