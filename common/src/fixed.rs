//! Fixed-point encoding of reals into a ring, and the overflow budget of a sum.
//!
//! A real `x` is encoded as the ring element `round(x * 2^f)` read in two's complement, where `f` is
//! the number of fractional bits. Decoding reads the element as a signed integer and divides by
//! `2^f`. For `|x| * 2^f < 2^(k-1)` (k the ring's bits) one encode/decode round trip is off by at
//! most [`FixedPoint::max_roundtrip_error`] `= 2^-(f+1)` (plus the f64 rounding of the input, which
//! is far smaller for the parameters Tessera uses).
//!
//! Secure aggregation sums the encodings of many clipped values in the ring. The sum is exact as
//! long as it does not wrap: [`FixedPoint::sum_budget`] states, for N values each clipped to
//! `|v| <= C`, whether `N * (C * 2^f + 1/2) < 2^(k-1)` holds and how many bits of headroom remain.
//! A job refuses parameters whose budget does not fit.

use crate::ring::Ring;

/// A value that cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FixedPointError {
    /// NaN or an infinity.
    #[error("value {0} is not finite")]
    NotFinite(f64),
    /// `|x| * 2^f` does not fit in the signed range of the ring.
    #[error(
        "value {value} out of range: |x| must stay below {limit} with {frac_bits} fractional bits in a {ring_bits}-bit ring"
    )]
    OutOfRange {
        /// The value.
        value: f64,
        /// The largest magnitude that encodes.
        limit: f64,
        /// Fractional bits.
        frac_bits: u32,
        /// Ring bits.
        ring_bits: u32,
    },
    /// More fractional bits than the ring can hold.
    #[error("{frac_bits} fractional bits do not fit a {ring_bits}-bit ring")]
    TooManyFracBits {
        /// Fractional bits.
        frac_bits: u32,
        /// Ring bits.
        ring_bits: u32,
    },
}

/// Fixed-point encoding of the public constant `v` with `f` fractional bits in the ring `R`
/// (rounded to nearest; the MPC engine's constants and scales).
pub fn fx<R: Ring>(v: f64, f: u32) -> R {
    R::from_i128((v * f64::from(f).exp2()).round() as i128)
}

/// Fixed-point parameters: the number of fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    /// Fractional bits `f`: encodings are `round(x * 2^f)`.
    pub frac_bits: u32,
}

/// Whether summing N clipped values can wrap the ring, and by how much it cannot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SumBudget {
    /// Largest magnitude of the encoded sum: `N * (C * 2^f + 1/2)`.
    pub max_abs_sum: f64,
    /// The wrap limit `2^(k-1)`.
    pub limit: f64,
    /// `log2(limit / max_abs_sum)`: bits to spare (negative when the sum can wrap).
    pub headroom_bits: f64,
}

impl SumBudget {
    /// Whether the sum is guaranteed not to wrap.
    pub fn fits(&self) -> bool {
        self.max_abs_sum < self.limit
    }
}

impl FixedPoint {
    /// Parameters with `frac_bits` fractional bits.
    pub const fn new(frac_bits: u32) -> Self {
        FixedPoint { frac_bits }
    }

    /// `2^f` as f64.
    pub fn scale(&self) -> f64 {
        (self.frac_bits as f64).exp2()
    }

    /// The largest magnitude that encodes into ring `R` (exclusive).
    pub fn max_magnitude<R: Ring>(&self) -> f64 {
        ((R::BITS - 1) as f64).exp2() / self.scale()
    }

    /// Checks the parameters against ring `R`.
    pub fn check<R: Ring>(&self) -> Result<(), FixedPointError> {
        if self.frac_bits + 1 >= R::BITS {
            return Err(FixedPointError::TooManyFracBits {
                frac_bits: self.frac_bits,
                ring_bits: R::BITS,
            });
        }
        Ok(())
    }

    /// Encodes one real: `round(x * 2^f)` as a ring element.
    pub fn encode<R: Ring>(&self, x: f64) -> Result<R, FixedPointError> {
        self.check::<R>()?;
        if !x.is_finite() {
            return Err(FixedPointError::NotFinite(x));
        }
        let limit = self.max_magnitude::<R>();
        let scaled = (x * self.scale()).round();
        if scaled.abs() >= ((R::BITS - 1) as f64).exp2() {
            return Err(FixedPointError::OutOfRange {
                value: x,
                limit,
                frac_bits: self.frac_bits,
                ring_bits: R::BITS,
            });
        }
        Ok(R::from_i128(scaled as i128))
    }

    /// Encodes a slice of f32 values.
    pub fn encode_f32_slice<R: Ring>(&self, xs: &[f32]) -> Result<Vec<R>, FixedPointError> {
        xs.iter().map(|x| self.encode(f64::from(*x))).collect()
    }

    /// Decodes one ring element.
    pub fn decode<R: Ring>(&self, v: R) -> f64 {
        v.to_i128() as f64 / self.scale()
    }

    /// Decodes a slice of ring elements.
    pub fn decode_slice<R: Ring>(&self, vs: &[R]) -> Vec<f64> {
        vs.iter().map(|v| self.decode(*v)).collect()
    }

    /// The error bound of one encode/decode round trip: `2^-(f+1)`.
    pub fn max_roundtrip_error(&self) -> f64 {
        (-(self.frac_bits as f64) - 1.0).exp2()
    }

    /// The overflow budget of summing `count` values each clipped to `|v| <= clip` in ring `R`.
    pub fn sum_budget<R: Ring>(&self, count: u64, clip: f64) -> SumBudget {
        let max_abs_sum = count as f64 * (clip.abs() * self.scale() + 0.5);
        let limit = ((R::BITS - 1) as f64).exp2();
        SumBudget {
            max_abs_sum,
            limit,
            headroom_bits: (limit / max_abs_sum).log2(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_negative_values_in_twos_complement() {
        let fp = FixedPoint::new(16);
        let v: u64 = fp.encode(-1.5).unwrap();
        assert_eq!(v, (-(3i64 << 15)) as u64);
        assert_eq!(fp.decode(v), -1.5);
    }

    #[test]
    fn rejects_bad_values() {
        let fp = FixedPoint::new(16);
        assert!(matches!(
            fp.encode::<u32>(f64::NAN),
            Err(FixedPointError::NotFinite(_))
        ));
        assert!(matches!(
            fp.encode::<u32>(f64::INFINITY),
            Err(FixedPointError::NotFinite(_))
        ));
        assert!(matches!(
            fp.encode::<u32>(40_000.0),
            Err(FixedPointError::OutOfRange { .. })
        ));
        assert!(fp.encode::<u32>(32_767.0).is_ok());
        assert!(matches!(
            FixedPoint::new(40).encode::<u32>(1.0),
            Err(FixedPointError::TooManyFracBits { .. })
        ));
    }

    #[test]
    fn sum_budget_detects_wrap() {
        let fp = FixedPoint::new(16);
        // 1000 values clipped to 10: 1000 * (10 * 65536 + 0.5) ~ 6.6e8 < 2^31.
        assert!(fp.sum_budget::<u32>(1000, 10.0).fits());
        // 10_000 values clipped to 10: ~6.6e9 > 2^31.
        assert!(!fp.sum_budget::<u32>(10_000, 10.0).fits());
        assert!(fp.sum_budget::<u64>(10_000, 10.0).headroom_bits > 30.0);
    }
}
