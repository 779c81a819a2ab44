//! The three moduli SecureNN computes in, and the helper's dealing of shares.

use tessera_common::net::Network;
use tessera_common::prg::Prg;
use tessera_common::ring::Ring;

use super::HELPER;
use crate::mpc::{MpcError, Op, Session};

/// `2^64 - 1`, the odd modulus.
pub const M: u64 = u64::MAX;

/// The odd ring `Z_{2^64 - 1}` ShareConvert and ComputeMSB reshare in (values in the ring itself
/// are dealt with [`deal_ring`], PrivateCompare's bit shares in `Z_67` with [`deal_bits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zn {
    /// `Z_{2^64 - 1}`.
    Odd,
}

impl Zn {
    pub fn add(self, a: u64, b: u64) -> u64 {
        let (s, carry) = a.overflowing_add(b);
        // 2^64 = 1 (mod 2^64 - 1).
        let s = s + carry as u64;
        if s == M { 0 } else { s }
    }

    pub fn neg(self, a: u64) -> u64 {
        if a == 0 { 0 } else { M - a }
    }

    pub fn sub(self, a: u64, b: u64) -> u64 {
        self.add(a, self.neg(b))
    }

    /// Reduces a 64-bit value into the modulus.
    pub fn reduce(self, a: u64) -> u64 {
        if a == M { 0 } else { a }
    }

    /// `k * a` for a small public `k` (0, 1 or 2 in the protocols; any `k` works).
    pub fn mul_small(self, k: u64, a: u64) -> u64 {
        ((k as u128 * a as u128) % M as u128) as u64
    }

    /// Uniform elements (`2^64 - 1` maps to 0, a bias of `2^-64`).
    pub fn sample(self, prg: &mut Prg, n: usize) -> Vec<u64> {
        prg.ring_vec::<u64>(n)
            .into_iter()
            .map(|v| self.reduce(v))
            .collect()
    }

    pub fn encode(self, v: &[u64]) -> Vec<u8> {
        tessera_common::ring::encode_elements(v)
    }

    pub fn decode(self, bytes: &[u8]) -> Option<Vec<u64>> {
        let v: Vec<u64> = tessera_common::ring::decode_elements(bytes)?;
        v.iter().all(|x| self.reduce(*x) == *x).then_some(v)
    }

    pub fn bytes(self, n: usize) -> usize {
        8 * n
    }
}

/// The small prime of PrivateCompare's bit shares. Its elements are bytes, in memory as on the
/// wire: 64 per compared value.
pub const P: u8 = 67;

/// `a + b` in `Z_67` (both below 67).
#[inline]
pub fn add67(a: u8, b: u8) -> u8 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// `a - b` in `Z_67` (both below 67).
#[inline]
pub fn sub67(a: u8, b: u8) -> u8 {
    if a >= b { a - b } else { a + P - b }
}

/// `a * b` in `Z_67` (both below 67).
#[inline]
pub fn mul67(a: u8, b: u8) -> u8 {
    ((u16::from(a) * u16::from(b)) % u16::from(P)) as u8
}

/// `n` uniform values in `[0, bound)` for `bound <= 256`, by rejection from PRG bytes.
pub fn sample_below(prg: &mut Prg, n: usize, bound: u8) -> Vec<u8> {
    let bound = u16::from(bound);
    let limit = 256 - 256 % bound;
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; n + n / 2 + 16];
    while out.len() < n {
        prg.fill_bytes(&mut buf);
        out.extend(
            buf.iter()
                .filter(|b| u16::from(**b) < limit)
                .map(|b| (u16::from(*b) % bound) as u8)
                .take(n - out.len()),
        );
    }
    out
}

/// A uniform index in `0..=i` from a uniform 64-bit draw: the high word of `draw (i + 1)`
/// (Lemire's multiply-shift, no division; the bias is below `(i + 1) 2^-64`).
#[inline]
pub fn below(draw: u64, i: usize) -> usize {
    ((u128::from(draw) * (i as u128 + 1)) >> 64) as usize
}

/// What a dealing is: its part name, PRG stream and modulus.
#[derive(Debug, Clone, Copy)]
pub struct Deal {
    pub part: &'static str,
    pub stream: u64,
    pub zn: Zn,
}

/// The helper's dealing of the bits of its masked value in `Z_67` (ShareConvert and ComputeMSB):
/// part name and PRG stream.
pub const X_BITS: (&str, u64) = ("x_bits", 2);

/// At the helper: deals the bits `v` (each 0 or 1) as shares in `Z_67`, a byte each;
/// `server0`'s share from the PRG stream, `server1`'s sent.
pub async fn deal_bits<N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    v: &[u8],
) -> Result<(), MpcError> {
    let s0 = sample_below(&mut session.shared_prg(0, op, stream)?, v.len(), P);
    let s1: Vec<u8> = v.iter().zip(&s0).map(|(a, b)| sub67(*a, *b)).collect();
    session.send_bytes(1, op, part, s1).await
}

/// At `server0` or `server1`: this server's shares of what the helper deals with [`deal_bits`].
pub async fn dealt_bits<N: Network>(
    session: &Session<N>,
    op: &Op,
    (part, stream): (&'static str, u64),
    n: usize,
) -> Result<Vec<u8>, MpcError> {
    if session.me() == 0 {
        return Ok(sample_below(
            &mut session.shared_prg(HELPER, op, stream)?,
            n,
            P,
        ));
    }
    let bytes = session.recv_bytes(HELPER, op, part, n).await?;
    if bytes.iter().any(|b| *b >= P) {
        return Err(MpcError::Protocol {
            peer: tessera_common::PartyId::Server(HELPER as u8),
            reason: format!("{part} is not in Z_67"),
        });
    }
    Ok(bytes)
}

/// At the helper: deals `v` to `server0` and `server1`. `server0`'s share is drawn from the PRG
/// the two share (stream `deal.stream`), only `server1`'s is sent.
pub async fn deal<N: Network>(
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
pub async fn dealt<N: Network>(
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
        reason: format!("{} is not in {:?}", deal.part, deal.zn),
    })
}

/// At the helper: deals `v` in the ring of `R` (the 0/1 results may live in a wider ring than
/// the comparison), `server0`'s share from the PRG stream `stream`, `server1`'s sent as `part`.
pub async fn deal_ring<R: Ring, N: Network>(
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
pub async fn dealt_ring<R: Ring, N: Network>(
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

/// The 64 bits of each value, least significant first, as elements of `Z_67` (bytes).
pub fn bits_of(values: &[u64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| (0..64).map(move |i| ((v >> i) & 1) as u8))
        .collect()
}

/// Whether `a + b` wraps around `2^64`.
pub fn wraps(a: u64, b: u64) -> u64 {
    a.overflowing_add(b).1 as u64
}
