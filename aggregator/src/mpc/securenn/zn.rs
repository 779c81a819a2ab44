//! The three moduli SecureNN computes in, and the helper's dealing of shares.

use tessera_common::net::Network;
use tessera_common::prg::Prg;
use tessera_common::ring::Ring;

use super::HELPER;
use crate::mpc::{MpcError, Op, Session};

/// `2^64 - 1`, the odd modulus.
pub const M: u64 = u64::MAX;
/// The small prime of PrivateCompare's bit shares.
pub const P: u64 = 67;

/// A modulus of the comparison protocols: `Z_{2^64 - 1}` or `Z_67` (values in the ring itself
/// are dealt with [`deal_ring`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zn {
    /// `Z_{2^64 - 1}`.
    Odd,
    /// `Z_67` (one byte per element on the wire).
    P,
}

impl Zn {
    pub fn add(self, a: u64, b: u64) -> u64 {
        match self {
            Zn::Odd => {
                let (s, carry) = a.overflowing_add(b);
                // 2^64 = 1 (mod 2^64 - 1).
                let s = s + carry as u64;
                if s == M { 0 } else { s }
            }
            Zn::P => (a + b) % P,
        }
    }

    pub fn neg(self, a: u64) -> u64 {
        match self {
            Zn::Odd => {
                if a == 0 {
                    0
                } else {
                    M - a
                }
            }
            Zn::P => (P - a % P) % P,
        }
    }

    pub fn sub(self, a: u64, b: u64) -> u64 {
        self.add(a, self.neg(b))
    }

    /// Reduces a 64-bit value into the modulus.
    pub fn reduce(self, a: u64) -> u64 {
        match self {
            Zn::Odd => {
                if a == M {
                    0
                } else {
                    a
                }
            }
            Zn::P => a % P,
        }
    }

    /// `k * a` for a small public `k` (0, 1 or 2 in the protocols; any `k` works).
    pub fn mul_small(self, k: u64, a: u64) -> u64 {
        match self {
            Zn::Odd => ((k as u128 * a as u128) % M as u128) as u64,
            Zn::P => (k % P) * (a % P) % P,
        }
    }

    /// Uniform elements (`Z_67` by rejection from bytes; the odd ring maps `2^64 - 1` to 0, a
    /// bias of `2^-64`).
    pub fn sample(self, prg: &mut Prg, n: usize) -> Vec<u64> {
        match self {
            Zn::Odd => prg
                .ring_vec::<u64>(n)
                .into_iter()
                .map(|v| self.reduce(v))
                .collect(),
            Zn::P => sample_below(prg, n, P),
        }
    }

    fn width(self) -> usize {
        match self {
            Zn::P => 1,
            _ => 8,
        }
    }

    pub fn encode(self, v: &[u64]) -> Vec<u8> {
        match self {
            Zn::P => v.iter().map(|x| *x as u8).collect(),
            _ => tessera_common::ring::encode_elements(v),
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Option<Vec<u64>> {
        let v: Vec<u64> = match self {
            Zn::P => bytes.iter().map(|b| *b as u64).collect(),
            _ => tessera_common::ring::decode_elements(bytes)?,
        };
        v.iter().all(|x| self.reduce(*x) == *x).then_some(v)
    }

    pub fn bytes(self, n: usize) -> usize {
        self.width() * n
    }
}

/// `n` uniform values in `[0, bound)` for `bound <= 256`, by rejection from PRG bytes.
pub fn sample_below(prg: &mut Prg, n: usize, bound: u64) -> Vec<u64> {
    let limit = 256 - 256 % bound;
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; n + n / 2 + 16];
    while out.len() < n {
        prg.fill_bytes(&mut buf);
        out.extend(
            buf.iter()
                .filter(|b| (**b as u64) < limit)
                .map(|b| *b as u64 % bound)
                .take(n - out.len()),
        );
    }
    out
}

/// A uniform permutation of `0..len` (Fisher-Yates; the modulo bias of a 64-bit draw is below
/// `2^-57`).
pub fn permutation(prg: &mut Prg, len: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..len).collect();
    let draws: Vec<u64> = prg.ring_vec(len);
    for i in (1..len).rev() {
        let j = (draws[i] % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// What a dealing is: its part name, PRG stream and modulus.
#[derive(Debug, Clone, Copy)]
pub struct Deal {
    pub part: &'static str,
    pub stream: u64,
    pub zn: Zn,
}

/// The helper's dealing of the bits of its masked value in `Z_67` (ShareConvert and ComputeMSB).
pub const X_BITS: Deal = Deal {
    part: "x_bits",
    stream: 2,
    zn: Zn::P,
};

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

/// The 64 bits of each value, least significant first, as elements of `Z_67`.
pub fn bits_of(values: &[u64]) -> Vec<u64> {
    values
        .iter()
        .flat_map(|v| (0..64).map(move |i| (v >> i) & 1))
        .collect()
}

/// Whether `a + b` wraps around `2^64`.
pub fn wraps(a: u64, b: u64) -> u64 {
    a.overflowing_add(b).1 as u64
}
