//! Rings `Z/2^k` for k = 32, 64, 128.
//!
//! Secret sharing and MPC in Tessera compute in the ring of integers modulo `2^k`, which native
//! unsigned integers give for free with wrapping arithmetic. [`Ring`] abstracts over `u32`, `u64` and
//! `u128` so every sharing, protocol and kernel is written once. [`RingTensor`] is an n-dimensional
//! array of ring elements with elementwise wrapping operations, and [`matmul`] is the blocked,
//! cache-tiled, rayon-parallel kernel that multiplies them (ndarray's `dot` on integers is a naive
//! loop and is kept only as the test oracle).

mod matmul;
mod tensor;

pub use matmul::{matmul, matmul_serial};
pub use tensor::{RingTensor, ShapeError};

use std::fmt::Debug;
use std::hash::Hash;

/// A ring `Z/2^BITS`: an unsigned integer type with wrapping arithmetic.
///
/// Elements are read as two's-complement signed values where a sign matters (fixed point,
/// comparisons). Byte encodings are little-endian.
pub trait Ring:
    Copy + Default + Debug + Eq + Ord + Hash + Send + Sync + bytemuck::Pod + 'static
{
    /// Number of bits `k` of the ring `Z/2^k`.
    const BITS: u32;
    /// Number of bytes in the encoding of one element.
    const BYTES: usize;
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// A short name ("u32", "u64", "u128") for logs and benchmark tables.
    const NAME: &'static str;

    /// `self + rhs mod 2^k`.
    fn add(self, rhs: Self) -> Self;
    /// `self - rhs mod 2^k`.
    fn sub(self, rhs: Self) -> Self;
    /// `self * rhs mod 2^k`.
    fn mul(self, rhs: Self) -> Self;
    /// `-self mod 2^k`.
    fn neg(self) -> Self;
    /// Logical right shift.
    fn shr(self, bits: u32) -> Self;
    /// Left shift (wrapping).
    fn shl(self, bits: u32) -> Self;
    /// Arithmetic right shift: the element read as signed, shifted, read back.
    fn shr_signed(self, bits: u32) -> Self;
    /// The element reduced from a signed 128-bit integer (wraps modulo `2^k`).
    fn from_i128(v: i128) -> Self;
    /// The element read as a signed two's-complement integer.
    fn to_i128(self) -> i128;
    /// The element from a `u64` (wraps for `u32`).
    fn from_u64(v: u64) -> Self;
    /// Bit `i` of the element.
    fn bit(self, i: u32) -> bool;
    /// Bitwise XOR (the addition of boolean sharing).
    fn xor(self, rhs: Self) -> Self;
    /// Bitwise AND (the product of boolean sharing).
    fn and(self, rhs: Self) -> Self;
    /// Bitwise NOT.
    fn not(self) -> Self;
    /// The low 64 bits (the element modulo `2^64`; sign-extended from a narrower ring), so a
    /// value below `2^63` in magnitude keeps its signed value.
    fn low_u64(self) -> u64;
    /// Converts from little-endian in place (a no-op on little-endian machines).
    fn le_to_native(self) -> Self;
    /// Writes the little-endian encoding into `out`, which has exactly [`Ring::BYTES`] bytes.
    fn write_le(self, out: &mut [u8]);
    /// Reads the little-endian encoding from `bytes`, which has exactly [`Ring::BYTES`] bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! impl_ring {
    ($t:ty, $s:ty, $name:literal) => {
        impl Ring for $t {
            const BITS: u32 = <$t>::BITS;
            const BYTES: usize = core::mem::size_of::<$t>();
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const NAME: &'static str = $name;

            #[inline(always)]
            fn add(self, rhs: Self) -> Self {
                self.wrapping_add(rhs)
            }
            #[inline(always)]
            fn sub(self, rhs: Self) -> Self {
                self.wrapping_sub(rhs)
            }
            #[inline(always)]
            fn mul(self, rhs: Self) -> Self {
                self.wrapping_mul(rhs)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn shr(self, bits: u32) -> Self {
                self.checked_shr(bits).unwrap_or(0)
            }
            #[inline(always)]
            fn shl(self, bits: u32) -> Self {
                self.checked_shl(bits).unwrap_or(0)
            }
            #[inline(always)]
            fn shr_signed(self, bits: u32) -> Self {
                ((self as $s) >> bits.min(<$t>::BITS - 1)) as $t
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_i128(self) -> i128 {
                (self as $s) as i128
            }
            #[inline(always)]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn bit(self, i: u32) -> bool {
                (self >> i) & 1 == 1
            }
            #[inline(always)]
            fn xor(self, rhs: Self) -> Self {
                self ^ rhs
            }
            #[inline(always)]
            fn and(self, rhs: Self) -> Self {
                self & rhs
            }
            #[inline(always)]
            fn not(self) -> Self {
                !self
            }
            #[inline(always)]
            fn low_u64(self) -> u64 {
                (self as $s) as i128 as u64
            }
            #[inline(always)]
            fn le_to_native(self) -> Self {
                <$t>::from_le(self)
            }
            #[inline(always)]
            fn write_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn read_le(bytes: &[u8]) -> Self {
                let mut raw = [0u8; core::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_le_bytes(raw)
            }
        }
    };
}

impl_ring!(u32, i32, "u32");
impl_ring!(u64, i64, "u64");
impl_ring!(u128, i128, "u128");

/// Encodes ring elements as little-endian bytes (the wire format of shares).
pub fn encode_elements<R: Ring>(values: &[R]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * R::BYTES);
    encode_elements_into(values, &mut out);
    out
}

/// Appends the little-endian bytes of `values` to `out` (one copy on a little-endian machine).
pub fn encode_elements_into<R: Ring>(values: &[R], out: &mut Vec<u8>) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(values));
    } else {
        let start = out.len();
        out.resize(start + values.len() * R::BYTES, 0);
        for (chunk, v) in out[start..].chunks_exact_mut(R::BYTES).zip(values) {
            v.write_le(chunk);
        }
    }
}

/// Decodes little-endian bytes into ring elements; `None` if the length is not a multiple of
/// [`Ring::BYTES`].
pub fn decode_elements<R: Ring>(bytes: &[u8]) -> Option<Vec<R>> {
    if !bytes.len().is_multiple_of(R::BYTES) {
        return None;
    }
    if cfg!(target_endian = "little") {
        return Some(bytemuck::pod_collect_to_vec(bytes));
    }
    Some(bytes.chunks_exact(R::BYTES).map(R::read_le).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_views() {
        assert_eq!(u32::MAX.to_i128(), -1);
        assert_eq!(<u64 as Ring>::from_i128(-5).to_i128(), -5);
        assert_eq!((1u128 << 127).to_i128(), i128::MIN);
        assert_eq!(<u64 as Ring>::from_i128(-8).shr_signed(2).to_i128(), -2);
        assert_eq!(Ring::shr(u64::MAX, 64), 0);
    }

    #[test]
    fn element_codec_round_trips() {
        let v: Vec<u128> = vec![0, 1, u128::MAX, 1 << 100];
        assert_eq!(decode_elements::<u128>(&encode_elements(&v)), Some(v));
        assert_eq!(decode_elements::<u64>(&[0u8; 9]), None);
    }
}
