//! [`RingVec`]: a vector of ring elements whose ring is chosen at run time (a job's `ring_bits`).
//!
//! Secure aggregation sums share vectors in the job's ring; the ring is a setting, not a type, so
//! this enum dispatches once per operation to the monomorphic code of [`crate::ring`].

use crate::fixed::FixedPoint;
use crate::prg::{Prg, STREAM_SHARE, Seed};
use crate::ring::{Ring, decode_elements, encode_elements};

/// A ring-element vector in `Z/2^32`, `Z/2^64` or `Z/2^128`.
#[derive(Clone, PartialEq, Eq)]
pub enum RingVec {
    /// 32-bit ring.
    U32(Vec<u32>),
    /// 64-bit ring.
    U64(Vec<u64>),
    /// 128-bit ring.
    U128(Vec<u128>),
}

impl std::fmt::Debug for RingVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RingVec(u{}, {} elements)", self.ring_bits(), self.len())
    }
}

/// An operation on vectors of different rings or lengths, or bytes that are not whole elements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingVecError {
    /// Unsupported ring size.
    #[error("unsupported ring size {0} (32, 64 or 128)")]
    BadRing(u32),
    /// Lengths or rings differ, or a piece does not fit.
    #[error("{0}")]
    Mismatch(String),
}

macro_rules! dispatch {
    ($self:expr, $v:ident => $body:expr) => {
        match $self {
            RingVec::U32($v) => $body,
            RingVec::U64($v) => $body,
            RingVec::U128($v) => $body,
        }
    };
}

fn add_into<R: Ring>(acc: &mut [R], add: &[R]) {
    for (a, b) in acc.iter_mut().zip(add) {
        *a = a.add(*b);
    }
}

fn add_bytes_into<R: Ring>(
    acc: &mut [R],
    offset: usize,
    bytes: &[u8],
) -> Result<usize, RingVecError> {
    let values: Vec<R> = decode_elements(bytes).ok_or_else(|| {
        RingVecError::Mismatch(format!(
            "{} bytes are not whole u{} elements",
            bytes.len(),
            R::BITS
        ))
    })?;
    let end = offset
        .checked_add(values.len())
        .filter(|end| *end <= acc.len())
        .ok_or_else(|| {
            RingVecError::Mismatch(format!(
                "piece at {offset} of {} elements overruns {}",
                values.len(),
                acc.len()
            ))
        })?;
    add_into(&mut acc[offset..end], &values);
    Ok(values.len())
}

fn add_seed_into<R: Ring>(acc: &mut [R], seed: &Seed) {
    // Expand in blocks so memory stays O(block), not O(len).
    let mut prg = Prg::new(seed, STREAM_SHARE);
    // On the heap: 16 Ki elements of u128 would be 256 KiB of stack.
    let mut block = Vec::new();
    block.resize(1 << 14, R::ZERO);
    for chunk in acc.chunks_mut(1 << 14) {
        let buf = &mut block[..chunk.len()];
        prg.fill_ring(buf);
        add_into(chunk, buf);
    }
}

impl RingVec {
    /// All-zero vector of `len` elements in the `ring_bits`-bit ring.
    pub fn zeros(ring_bits: u32, len: usize) -> Result<Self, RingVecError> {
        Ok(match ring_bits {
            32 => RingVec::U32(vec![0; len]),
            64 => RingVec::U64(vec![0; len]),
            128 => RingVec::U128(vec![0; len]),
            other => return Err(RingVecError::BadRing(other)),
        })
    }

    /// Encodes `values` in fixed point into the `ring_bits`-bit ring.
    pub fn encode(
        ring_bits: u32,
        fp: FixedPoint,
        values: &[f64],
    ) -> Result<Self, crate::fixed::FixedPointError> {
        fn enc<R: Ring>(
            fp: FixedPoint,
            values: &[f64],
        ) -> Result<Vec<R>, crate::fixed::FixedPointError> {
            values.iter().map(|v| fp.encode(*v)).collect()
        }
        Ok(match ring_bits {
            32 => RingVec::U32(enc(fp, values)?),
            64 => RingVec::U64(enc(fp, values)?),
            _ => RingVec::U128(enc(fp, values)?),
        })
    }

    /// Decodes every element from fixed point.
    pub fn decode(&self, fp: FixedPoint) -> Vec<f64> {
        dispatch!(self, v => fp.decode_slice(v))
    }

    /// Ring size in bits.
    pub fn ring_bits(&self) -> u32 {
        match self {
            RingVec::U32(_) => 32,
            RingVec::U64(_) => 64,
            RingVec::U128(_) => 128,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        dispatch!(self, v => v.len())
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per element.
    pub fn element_bytes(&self) -> usize {
        self.ring_bits() as usize / 8
    }

    /// Adds little-endian elements `bytes` at `offset`; returns how many elements were added.
    pub fn add_bytes_at(&mut self, offset: usize, bytes: &[u8]) -> Result<usize, RingVecError> {
        dispatch!(self, v => add_bytes_into(v, offset, bytes))
    }

    /// Adds the expansion of a share seed (seed-compressed sharing).
    pub fn add_seed(&mut self, seed: &Seed) {
        dispatch!(self, v => add_seed_into(v, seed))
    }

    /// Elementwise `self += other`.
    pub fn add_assign(&mut self, other: &RingVec) -> Result<(), RingVecError> {
        if self.len() != other.len() {
            return Err(RingVecError::Mismatch(format!(
                "lengths {} and {}",
                self.len(),
                other.len()
            )));
        }
        match (self, other) {
            (RingVec::U32(a), RingVec::U32(b)) => add_into(a, b),
            (RingVec::U64(a), RingVec::U64(b)) => add_into(a, b),
            (RingVec::U128(a), RingVec::U128(b)) => add_into(a, b),
            (a, b) => {
                return Err(RingVecError::Mismatch(format!(
                    "rings u{} and u{}",
                    a.ring_bits(),
                    b.ring_bits()
                )));
            }
        }
        Ok(())
    }

    /// Adds the signed integers `values` (in units of the ring, wrapping) to the first
    /// `values.len()` elements.
    pub fn add_signed(&mut self, values: &[i64]) -> Result<(), RingVecError> {
        fn add<R: Ring>(acc: &mut [R], values: &[i64]) {
            for (a, v) in acc.iter_mut().zip(values) {
                *a = a.add(R::from_i128(i128::from(*v)));
            }
        }
        if values.len() > self.len() {
            return Err(RingVecError::Mismatch(format!(
                "{} values for {} elements",
                values.len(),
                self.len()
            )));
        }
        dispatch!(self, v => add(v, values));
        Ok(())
    }

    /// Little-endian bytes of elements `range`.
    pub fn to_le_bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        dispatch!(self, v => encode_elements(&v[range]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_bytes_accumulate() {
        let seed = Seed([4; 32]);
        let mut a = RingVec::zeros(64, 40_000).unwrap();
        a.add_seed(&seed);
        let expected: Vec<u64> = Prg::new(&seed, STREAM_SHARE).ring_vec(40_000);
        assert_eq!(a, RingVec::U64(expected.clone()));
        let mut b = RingVec::zeros(64, 40_000).unwrap();
        b.add_bytes_at(10, &encode_elements(&expected[..5]))
            .unwrap();
        assert_eq!(b.to_le_bytes(10..15), encode_elements(&expected[..5]));
        // A piece past the end, a piece not of whole elements, another ring: each refused.
        assert!(matches!(
            b.add_bytes_at(39_999, &encode_elements(&expected[..5])),
            Err(RingVecError::Mismatch(_))
        ));
        assert!(matches!(
            b.add_bytes_at(0, &[1, 2, 3]),
            Err(RingVecError::Mismatch(_))
        ));
        assert!(matches!(
            a.add_assign(&RingVec::zeros(32, 40_000).unwrap()),
            Err(RingVecError::Mismatch(_))
        ));
    }
}
