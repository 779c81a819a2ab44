//! Bit-sliced boolean circuits on ABY3 sharings: the sign of `x` without a whole adder.
//!
//! The word-wise adder of [`super::boolean`] ANDs whole 64-bit words at every Kogge-Stone level
//! (832 AND gates per 64-bit element where the circuit needs about 240), because one element's
//! bits share a word. Here the shares are transposed into *bit planes*: plane `b` holds bit `b`
//! of 64 elements per word, so a gate is one bit of one plane and only the planes a circuit
//! still needs are ANDed. Transposition is linear over XOR, so each server transposes its own
//! shares locally.
//!
//! The most significant bit of `x = x0 + x1 + x2`:
//! 1. two summands (ABY3 §5.3, semi-honest A2B): `x = s + t` modulo `2^k` with `s = x0`
//!    (slot 0, known to servers 0 and 2, a boolean sharing as it stands) and `t = x1 + x2`,
//!    which server 1 computes and shares (one message of `k` bits per element, to server 2:
//!    [`summand_planes`]);
//! 2. its top bit is `s_{k-1} ^ t_{k-1} ^ C`, with `C` the carry into bit `k-1`: the group
//!    generate of positions `0..k-1`: one round for the generate bits `g_b = s_b t_b`, then a
//!    binary tree of `(G, P)` merges, `G = G_hi ^ P_hi G_lo`, `P = P_hi P_lo` (the lowest block
//!    never needs its `P`), `ceil(log2(k-1))` rounds.
//!
//! For `k = 64`: 63 + 118 = 181 AND gates and 8 rounds (the word-wise adder: 832 gates and 8
//! rounds), so a comparison sends 22.6 bytes per server per element plus server 1's 8-byte
//! summand before bit injection (one more round: [`super::inject`], or one bit with a
//! preprocessed daBit, [`super::prep`]).

use crate::error::Broken;
use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::planes::to_planes;
use super::{Aby3Bits, Aby3Tensor, Bool, Shared, check_servers};
use crate::{MpcError, Session};

/// One plane of a sharing: this server's two shares of it.
pub(super) type Plane<'a> = [&'a [u64]; 2];

/// An owned plane sharing.
pub(super) type Owned = [Vec<u64>; 2];

pub(super) fn view(p: &Owned) -> Plane<'_> {
    [&p[0], &p[1]]
}

pub(super) fn xor(a: Plane<'_>, b: Plane<'_>) -> Owned {
    let f = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(a, b)| a ^ b).collect();
    [f(a[0], b[0]), f(a[1], b[1])]
}

/// The complement of a plane: slot 0 is flipped (this server's first share at server 0, its
/// second at server 2).
pub(super) fn not(me: usize, a: Plane<'_>) -> Owned {
    let flip = |x: &[u64], yes: bool| x.iter().map(|v| if yes { !v } else { *v }).collect();
    [flip(a[0], me == 0), flip(a[1], me == 2)]
}

/// The planes `b * words .. (b + 1) * words` of both shares.
pub(super) fn plane_of(s: &[Vec<u64>; 2], b: usize, words: usize) -> Plane<'_> {
    [&s[0][b * words..][..words], &s[1][b * words..][..words]]
}

/// Masks this server's three-out-of-three shares `z` with a fresh zero-sharing and reshares them
/// (one round, one bit per gate per server), returning `planes` planes of `words` words.
pub(super) async fn reshare_planes<N: Network>(
    session: &Session<N>,
    name: &'static str,
    mut z: Vec<u64>,
    words: usize,
) -> Result<Vec<Owned>, MpcError> {
    let op = session.op(name);
    let before = session.net_stats();
    super::product::mask::<Bool<u64>, N>(session, &op, 0, &mut z)?;
    let len = z.len();
    let shared = super::product::reshare::<Bool<u64>, N>(session, &op, z, &[len]).await?;
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
pub(super) async fn and_planes<N: Network>(
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

/// A reduction over planes that merges neighbours level by level, one round per level; several
/// run side by side in the same rounds ([`run_trees`]).
pub(super) trait Tree: Send {
    /// The AND gates of this level (none once one node remains).
    fn pairs(&self) -> Vec<(Plane<'_>, Plane<'_>)>;
    /// Takes this level's AND results, in the order of [`Tree::pairs`].
    fn merge(&mut self, anded: &mut dyn Iterator<Item = Owned>) -> Result<(), MpcError>;
    /// Whether one node (or none) remains.
    fn done(&self) -> bool;
}

/// Runs the trees level by level until each has one node: every level of every tree in one
/// round together.
pub(super) async fn run_trees<N: Network>(
    session: &Session<N>,
    words: usize,
    trees: &mut [&mut dyn Tree],
) -> Result<(), MpcError> {
    while trees.iter().any(|t| !t.done()) {
        let anded = {
            let pairs: Vec<_> = trees.iter().flat_map(|t| t.pairs()).collect();
            and_planes(session, &pairs, words).await?
        };
        let mut anded = anded.into_iter();
        for t in trees.iter_mut() {
            t.merge(&mut anded)?;
        }
    }
    Ok(())
}

/// The group generate of carry positions, lowest first, from their generate and propagate
/// planes: `G = G_hi ^ P_hi G_lo`, `P = P_hi P_lo` (the lowest block never needs its `P`).
pub(super) struct CarryTree {
    generate: Vec<Owned>,
    prop: Vec<Owned>,
}

impl CarryTree {
    pub(super) fn new(generate: Vec<Owned>, prop: Vec<Owned>) -> Self {
        Self { generate, prop }
    }

    /// The carry out of all the positions (`None` for no positions).
    pub(super) fn finish(mut self) -> Option<Owned> {
        self.generate.pop()
    }
}

impl Tree for CarryTree {
    fn pairs(&self) -> Vec<(Plane<'_>, Plane<'_>)> {
        let mut pairs = Vec::new();
        for m in 0..self.generate.len() / 2 {
            let (lo, hi) = (2 * m, 2 * m + 1);
            pairs.push((view(&self.prop[hi]), view(&self.generate[lo])));
            if lo > 0 {
                pairs.push((view(&self.prop[hi]), view(&self.prop[lo])));
            }
        }
        pairs
    }

    fn merge(&mut self, anded: &mut dyn Iterator<Item = Owned>) -> Result<(), MpcError> {
        let n = self.generate.len();
        if n <= 1 {
            return Ok(());
        }
        let mut generate = Vec::with_capacity(n.div_ceil(2));
        let mut prop = Vec::with_capacity(n.div_ceil(2));
        for m in 0..n / 2 {
            let (lo, hi) = (2 * m, 2 * m + 1);
            let carried = anded.next().ok_or_else(short)?;
            generate.push(xor(view(&self.generate[hi]), view(&carried)));
            prop.push(if lo > 0 {
                anded.next().ok_or_else(short)?
            } else {
                [Vec::new(), Vec::new()]
            });
        }
        if n % 2 == 1 {
            generate.push(self.generate.pop().ok_or_else(short)?);
            prop.push(self.prop.pop().ok_or_else(short)?);
        }
        self.generate = generate;
        self.prop = prop;
        Ok(())
    }

    fn done(&self) -> bool {
        self.generate.len() <= 1
    }
}

/// The AND of all its leaves.
pub(super) struct AndTree(Vec<Owned>);

impl AndTree {
    pub(super) fn new(leaves: Vec<Owned>) -> Self {
        Self(leaves)
    }

    /// The AND of the leaves (`None` for no leaves).
    pub(super) fn finish(mut self) -> Option<Owned> {
        self.0.pop()
    }
}

impl Tree for AndTree {
    fn pairs(&self) -> Vec<(Plane<'_>, Plane<'_>)> {
        self.0
            .chunks_exact(2)
            .map(|p| (view(&p[0]), view(&p[1])))
            .collect()
    }

    fn merge(&mut self, anded: &mut dyn Iterator<Item = Owned>) -> Result<(), MpcError> {
        if self.0.len() <= 1 {
            return Ok(());
        }
        let odd = (self.0.len() % 2 == 1).then(|| self.0.pop()).flatten();
        let pairs = self.0.len() / 2;
        self.0 = anded.take(pairs).collect();
        if self.0.len() != pairs {
            return Err(short());
        }
        self.0.extend(odd);
        Ok(())
    }

    fn done(&self) -> bool {
        self.0.len() <= 1
    }
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
    let (s, t) = summand_planes(session, x).await?;
    let (sp, tp) = (|b| plane_of(&s, b, words), |b| plane_of(&t, b, words));
    // Generate and propagate bits of s + t at positions 0..k-1, then the tree.
    let pairs: Vec<_> = (0..k - 1).map(|b| (sp(b), tp(b))).collect();
    let generate = and_planes(session, &pairs, words).await?;
    let prop: Vec<Owned> = (0..k - 1).map(|b| xor(sp(b), tp(b))).collect();
    let mut tree = CarryTree::new(generate, prop);
    run_trees(session, words, &mut [&mut tree]).await?;
    let top = xor(sp(k - 1), tp(k - 1));
    let sign = match tree.finish() {
        Some(g) => xor(view(&top), view(&g)),
        None => top,
    };
    let [a, b] = sign;
    Ok(Shared::from_parts(a, b, &[words]))
}

/// The bit planes of two summands whose sum modulo `2^k` is `x` (ABY3 §5.3, semi-honest):
/// `s = x0`, slot 0 of `x` as it stands, and `t = x1 + x2`, computed by server 1 and shared as
/// `rho ^ (t ^ rho)`: `rho` (slot 1) from the PRG of servers 0 and 1, `t ^ rho` (slot 2) sent
/// to server 2. Returns this server's two shares of each, `R::BITS` planes of `ceil(len / 64)`
/// words ([`to_planes`]). Server 1 alone also learns whether `x1 + x2` wrapped (see
/// [`super::range`]).
pub(super) async fn summand_planes<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
) -> Result<([Vec<u64>; 2], [Vec<u64>; 2]), MpcError> {
    let me = session.me();
    let total = R::BITS as usize * x.len().div_ceil(64);
    let op = session.op("aby3_summands");
    let zeros = || vec![0u64; total];
    let (a, b) = x.shares();
    let s = match me {
        0 => [to_planes(a), zeros()],
        2 => [zeros(), to_planes(b)],
        _ => [zeros(), zeros()],
    };
    let before = session.net_stats();
    let t = match me {
        0 => [zeros(), session.shared_prg(1, &op, 0)?.ring_vec(total)],
        1 => {
            let rho: Vec<u64> = session.shared_prg(0, &op, 0)?.ring_vec(total);
            let sum: Vec<R> = a.iter().zip(b).map(|(p, q)| p.add(*q)).collect();
            let mut masked = to_planes(&sum);
            for (m, r) in masked.iter_mut().zip(&rho) {
                *m ^= r;
            }
            session.send_vec(2, &op, "t", &masked).await?;
            [rho, masked]
        }
        _ => [session.recv_vec::<u64>(1, &op, "t", total).await?, zeros()],
    };
    session.record(&op, before);
    Ok((s, t))
}

fn short() -> MpcError {
    MpcError::Broken(Broken::Gates("bit-sliced"))
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
    use crate::aby3::open;
    use crate::aby3::planes::plane_bits;
    use crate::harness::run_local;
    use tessera_common::prg::{Prg, Seed};
    use tessera_common::ring::RingTensor;

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
