//! The three moduli SecureNN computes in, and the helper's dealing of shares.

use crate::error::Misbehaved;
use tessera_common::net::Network;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::Ring;

use super::HELPER;
use crate::{MpcError, Op, Session};

/// `2^64 - 1`, the odd modulus.
pub(super) const M: u64 = u64::MAX;

/// The odd ring `Z_{2^64 - 1}` ShareConvert and ComputeMSB reshare in (values in the ring itself
/// are dealt with [`deal_ring`], PrivateCompare's bit shares in `Z_67` with [`deal_bits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zn {
    /// `Z_{2^64 - 1}`.
    Odd,
}

impl Zn {
    /// The modulus as the paper writes it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Zn::Odd => "Z_{2^64-1}",
        }
    }

    pub(super) fn add(self, a: u64, b: u64) -> u64 {
        let (s, carry) = a.overflowing_add(b);
        // 2^64 = 1 (mod 2^64 - 1).
        let s = s + carry as u64;
        if s == M { 0 } else { s }
    }

    pub(super) fn neg(self, a: u64) -> u64 {
        if a == 0 { 0 } else { M - a }
    }

    pub(super) fn sub(self, a: u64, b: u64) -> u64 {
        self.add(a, self.neg(b))
    }

    /// Reduces a 64-bit value into the modulus.
    pub(super) fn reduce(self, a: u64) -> u64 {
        if a == M { 0 } else { a }
    }

    /// `k * a` for a small public `k` (0, 1 or 2 in the protocols; any `k` works).
    pub(super) fn mul_small(self, k: u64, a: u64) -> u64 {
        ((k as u128 * a as u128) % M as u128) as u64
    }

    /// Uniform elements (`2^64 - 1` maps to 0, a bias of `2^-64`).
    pub(super) fn sample(self, prg: &mut Prg, n: usize) -> Vec<u64> {
        prg.ring_vec::<u64>(n)
            .into_iter()
            .map(|v| self.reduce(v))
            .collect()
    }

    pub(super) fn encode(self, v: &[u64]) -> Vec<u8> {
        tessera_common::ring::encode_elements(v)
    }

    pub(super) fn decode(self, bytes: &[u8]) -> Option<Vec<u64>> {
        let v: Vec<u64> = tessera_common::ring::decode_elements(bytes)?;
        v.iter().all(|x| self.reduce(*x) == *x).then_some(v)
    }

    pub(super) fn bytes(self, n: usize) -> usize {
        8 * n
    }
}

/// The small prime of PrivateCompare's bit shares. Its elements are bytes, in memory as on the
/// wire: 64 per compared value.
pub(super) const P: u8 = 67;

/// `a + b` in `Z_67` (both below 67).
#[inline]
pub(super) fn add67(a: u8, b: u8) -> u8 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// `a - b` in `Z_67` (both below 67).
#[inline]
pub(super) fn sub67(a: u8, b: u8) -> u8 {
    if a >= b { a - b } else { a + P - b }
}

/// `a * b` in `Z_67` (both below 67).
#[inline]
pub(super) fn mul67(a: u8, b: u8) -> u8 {
    ((u16::from(a) * u16::from(b)) % u16::from(P)) as u8
}

/// `n` uniform values in `[0, bound)` for `1 <= bound <= 256`, exactly uniform: Lemire's
/// multiply-shift on 16-bit PRG draws (`(d * bound) >> 16`), a draw rejected when the low half of
/// its product is below `2^16 mod bound` (probability below `bound / 2^16`: `11 / 2^16` for 67).
/// The bulk pass is branch-free (it vectorises); the rare rejected positions are then redrawn in
/// order from the same stream ([`below`]), so servers drawing from one stream stay in step.
pub(super) fn sample_below(prg: &mut Prg, n: usize, bound: u8) -> Vec<u8> {
    let bound = u32::from(bound.max(1));
    let threshold = (0x1_0000 - bound) % bound;
    let draw = |d: &[u8]| u16::from_le_bytes([d[0], d[1]]);
    let product = |d: &[u8]| u32::from(draw(d)) * bound;
    let mut out = Vec::with_capacity(n);
    // Blocks of 256 draws, in a buffer that stays in the L1 cache; a block is rescanned for its
    // rejections only when it has one.
    let (mut draws, mut block) = ([0u8; 512], [0u8; 256]);
    while out.len() < n {
        let len = (n - out.len()).min(256);
        let (draws, block) = (&mut draws[..2 * len], &mut block[..len]);
        prg.fill_bytes(draws);
        let mut rejected = false;
        for (o, d) in block.iter_mut().zip(draws.chunks_exact(2)) {
            let m = product(d);
            *o = (m >> 16) as u8;
            rejected |= (m & 0xffff) < threshold;
        }
        if rejected {
            for (o, d) in block.iter_mut().zip(draws.chunks_exact(2)) {
                if (product(d) & 0xffff) < threshold {
                    *o = below(draw(d), bound as usize - 1, || {
                        let mut b = [0u8; 2];
                        prg.fill_bytes(&mut b);
                        u16::from_le_bytes(b)
                    }) as u8;
                }
            }
        }
        out.extend_from_slice(block);
    }
    out
}

/// `count` seeds drawn in order from `prg`, one per chunk of work done in parallel: parties
/// holding the same `prg` derive the same chunks whatever the number of threads.
pub(super) fn chunk_seeds(prg: &mut Prg, count: usize) -> Vec<Seed> {
    (0..count)
        .map(|_| {
            let mut s = [0u8; 32];
            prg.fill_bytes(&mut s);
            Seed(s)
        })
        .collect()
}

/// Values per parallel chunk of [`sample_below_par`].
const SAMPLE_CHUNK: usize = 1 << 16;

/// `n` uniform values below `bound`, as [`sample_below`] but on every core: the values come in
/// chunks of [`SAMPLE_CHUNK`], each from its own seed drawn from `prg` in order, so every party
/// holding `prg` gets the same values whatever the number of threads.
pub(super) fn sample_below_par(prg: &mut Prg, n: usize, bound: u8) -> Vec<u8> {
    use rayon::prelude::*;
    let seeds = chunk_seeds(prg, n.div_ceil(SAMPLE_CHUNK));
    let chunks: Vec<Vec<u8>> = seeds
        .par_iter()
        .enumerate()
        .map(|(c, seed)| {
            let len = SAMPLE_CHUNK.min(n - c * SAMPLE_CHUNK);
            sample_below(&mut Prg::new(seed, 0), len, bound)
        })
        .collect();
    chunks.concat()
}

/// A uniform value in `0..=i` (`i < 2^16 - 1`) from 16-bit draws: Lemire's multiply-shift with
/// rejection, exactly uniform; `draw` is the first draw, `more` gives further ones when it is
/// rejected (probability below `(i + 1) / 2^16`).
#[inline]
fn below(draw: u16, i: usize, mut more: impl FnMut() -> u16) -> usize {
    let bound = i as u32 + 1;
    let mut d = draw;
    loop {
        let m = u32::from(d) * bound;
        let low = m & 0xffff;
        if low >= bound || low >= (0x1_0000 - bound) % bound {
            return (m >> 16) as usize;
        }
        d = more();
    }
}

/// What a dealing is: its part name, PRG stream and modulus.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deal {
    pub part: &'static str,
    pub stream: u64,
    pub zn: Zn,
}

/// The helper's dealing of the bits of its masked value in `Z_67` (ShareConvert and ComputeMSB):
/// part name and PRG stream.
pub(super) const X_BITS: (&str, u64) = ("x_bits", 2);

/// At the helper: deals the 64 bits of each of `x` (least significant first) as shares in
/// `Z_67`, a byte each; `server0`'s share from the PRG stream, `server1`'s sent. The bits are
/// spread and subtracted from `server0`'s share in place, in parallel chunks.
pub(super) async fn deal_bits<N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    x: &[u64],
) -> Result<(), MpcError> {
    use rayon::prelude::*;
    const VALUES: usize = SAMPLE_CHUNK / 64;
    let mut shares = sample_below_par(&mut session.shared_prg(0, op, stream)?, 64 * x.len(), P);
    shares
        .par_chunks_mut(64 * VALUES)
        .zip(x.par_chunks(VALUES))
        .for_each(|(shares, x)| {
            for (s, v) in shares.chunks_exact_mut(64).zip(x) {
                for (s, bit) in s.iter_mut().zip(bit_bytes(*v)) {
                    *s = sub67(bit, *s);
                }
            }
        });
    session.send_bytes(1, op, part, shares).await
}

/// At `server0` or `server1`: this server's shares of what the helper deals with [`deal_bits`].
pub(super) async fn dealt_bits<N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    n: usize,
) -> Result<Vec<u8>, MpcError> {
    if session.me() == 0 {
        return Ok(sample_below_par(
            &mut session.shared_prg(HELPER, op, stream)?,
            n,
            P,
        ));
    }
    let bytes = session.recv_bytes(HELPER, op, part, n).await?;
    // The largest byte, in a pass that vectorises (`any` stops early and does not).
    if bytes.iter().fold(0u8, |m, b| m.max(*b)) >= P {
        return Err(MpcError::Protocol {
            peer: tessera_common::PartyId::Server(HELPER as u8),
            reason: Misbehaved::OutOfRange {
                part,
                modulus: "Z_67",
            },
        });
    }
    Ok(bytes)
}

/// At the helper: deals `v` to `server0` and `server1`. `server0`'s share is drawn from the PRG
/// the two share (stream `deal.stream`), only `server1`'s is sent.
pub(super) async fn deal<N: Network>(
    session: &Session<N>,
    op: &Op,
    deal: Deal,
    v: &[u64],
) -> Result<(), MpcError> {
    let s0 = deal
        .zn
        .sample(&mut session.shared_prg(0, op, deal.stream)?, v.len());
    let s1: Vec<u64> = v
        .iter()
        .zip(&s0)
        .map(|(a, b)| deal.zn.sub(*a, *b))
        .collect();
    session
        .send_bytes(1, op, deal.part, deal.zn.encode(&s1))
        .await
}

/// At `server0` or `server1`: this server's share of what the helper deals with [`deal`].
pub(super) async fn dealt<N: Network>(
    session: &Session<N>,
    op: &Op,
    deal: Deal,
    n: usize,
) -> Result<Vec<u64>, MpcError> {
    if session.me() == 0 {
        return Ok(deal
            .zn
            .sample(&mut session.shared_prg(HELPER, op, deal.stream)?, n));
    }
    let bytes = session
        .recv_bytes(HELPER, op, deal.part, deal.zn.bytes(n))
        .await?;
    deal.zn.decode(&bytes).ok_or_else(|| MpcError::Protocol {
        peer: tessera_common::PartyId::Server(HELPER as u8),
        reason: Misbehaved::OutOfRange {
            part: deal.part,
            modulus: deal.zn.name(),
        },
    })
}

/// At the helper: deals `v` in the ring of `R` (the 0/1 results may live in a wider ring than
/// the comparison), `server0`'s share from the PRG stream `stream`, `server1`'s sent as `part`.
pub(super) async fn deal_ring<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    v: &[R],
) -> Result<(), MpcError> {
    let s0: Vec<R> = session.shared_prg(0, op, stream)?.ring_vec(v.len());
    let s1: Vec<R> = v.iter().zip(&s0).map(|(a, b)| a.sub(*b)).collect();
    session.send_vec(1, op, part, &s1).await
}

/// At `server0` or `server1`: this server's share of what the helper deals with [`deal_ring`].
pub(super) async fn dealt_ring<R: Ring, N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    n: usize,
) -> Result<Vec<R>, MpcError> {
    if session.me() == 0 {
        return Ok(session.shared_prg(HELPER, op, stream)?.ring_vec(n));
    }
    session.recv_vec::<R>(HELPER, op, part, n).await
}

/// The 64 bits of each value, least significant first, as elements of `Z_67` (bytes): what
/// [`deal_bits`] shares (tests read the dealt bits against it).
#[cfg(test)]
pub(super) fn bits_of(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| bit_bytes(*v)).collect()
}

/// The 64 bits of `v` as bytes, least significant first: each byte of `v` spreads into eight by
/// a 256-entry table of words.
#[inline]
fn bit_bytes(v: u64) -> [u8; 64] {
    const SPREAD: [u64; 256] = {
        let mut t = [0u64; 256];
        let mut b = 0;
        while b < 256 {
            let mut i = 0;
            while i < 8 {
                t[b] |= ((b as u64 >> i) & 1) << (8 * i);
                i += 1;
            }
            b += 1;
        }
        t
    };
    let mut out = [0u8; 64];
    for (o, byte) in out.chunks_exact_mut(8).zip(v.to_le_bytes()) {
        o.copy_from_slice(&SPREAD[usize::from(byte)].to_le_bytes());
    }
    out
}

/// Whether `a + b` wraps around `2^64`.
pub(super) fn wraps(a: u64, b: u64) -> u64 {
    a.overflowing_add(b).1 as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::prg::Seed;

    /// Over every 16-bit first draw, the accepted ones map onto `0..=i` exactly evenly, and a
    /// rejected one asks for another draw: the index is exactly uniform.
    #[test]
    fn lemire_draws_are_exactly_uniform() {
        for i in [1usize, 2, 6, 41, 62, 63] {
            let mut counts = vec![0u32; i + 1];
            let mut rejected = 0u32;
            for d in 0..=u16::MAX {
                let mut asked = false;
                // A further draw of 2^16 - 1 is always accepted (its low half is 2^16 - i - 1).
                let k = below(d, i, || {
                    asked = true;
                    u16::MAX
                });
                if asked {
                    rejected += 1;
                } else {
                    counts[k] += 1;
                }
            }
            assert!(
                counts.iter().all(|c| *c == counts[0]),
                "i = {i}: {counts:?}"
            );
            assert_eq!(rejected, 65536 % (i as u32 + 1), "i = {i}");
        }
    }

    #[test]
    fn bits_of_lists_each_bit_least_significant_first() {
        let values = [0u64, u64::MAX, 0xb7e1_5162_8aed_2a6a, 1 << 63];
        let bits = bits_of(&values);
        for (v, b) in values.iter().zip(bits.chunks(64)) {
            let want: Vec<u8> = (0..64).map(|i| ((v >> i) & 1) as u8).collect();
            assert_eq!(b, want.as_slice(), "{v:#x}");
        }
    }

    /// Every sample is below its bound, every value below it occurs (100,000 draws of 67 values:
    /// each is expected 1,493 times and missing with probability below 2^-2000), and the
    /// counts stay within 6 standard deviations (sd 38) of that; for the parallel sampler too,
    /// whose 100,000 values span two chunks.
    #[test]
    fn samples_cover_exactly_the_range() {
        let mut prg = Prg::new(&Seed([7; 32]), 0);
        check_uniform_below_p(&sample_below(&mut prg, 100_000, P));
        check_uniform_below_p(&sample_below_par(&mut prg, 100_000, P));
    }

    /// The parallel sampler gives the same values to every holder of the same PRG (the dealer
    /// and `server0` must agree) and leaves that PRG at the same point; chunks differ.
    #[test]
    fn parallel_samples_are_the_same_for_the_same_prg() {
        let n = 2 * SAMPLE_CHUNK + 5;
        let (mut a, mut b) = (Prg::new(&Seed([3; 32]), 1), Prg::new(&Seed([3; 32]), 1));
        let (va, vb) = (
            sample_below_par(&mut a, n, P),
            sample_below_par(&mut b, n, P),
        );
        assert_eq!(va.len(), n);
        assert_eq!(va, vb);
        assert_eq!(a.ring_vec::<u64>(4), b.ring_vec::<u64>(4));
        assert_ne!(va[..64], va[SAMPLE_CHUNK..SAMPLE_CHUNK + 64]);
    }

    fn check_uniform_below_p(v: &[u8]) {
        assert_eq!(v.len(), 100_000);
        let mut counts = [0u32; 256];
        for x in v {
            counts[usize::from(*x)] += 1;
        }
        assert!(counts[usize::from(P)..].iter().all(|c| *c == 0));
        let expected = 100_000.0 / 67.0;
        let sd = (100_000.0f64 * (1.0 / 67.0) * (66.0 / 67.0)).sqrt();
        for c in &counts[..usize::from(P)] {
            assert!(
                (f64::from(*c) - expected).abs() < 6.0 * sd,
                "{c} vs {expected}"
            );
        }
    }
}
