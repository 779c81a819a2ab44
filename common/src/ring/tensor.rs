//! Ring tensors: n-dimensional arrays of ring elements with wrapping elementwise operations.

use ndarray::{ArrayD, IxDyn, Zip};

use super::{Ring, matmul};

/// Two tensors whose shapes do not fit the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Elementwise operands of different shapes.
    #[error("shape mismatch: {left:?} vs {right:?}")]
    Mismatch {
        /// Shape of the left operand.
        left: Vec<usize>,
        /// Shape of the right operand.
        right: Vec<usize>,
    },
    /// A matrix product whose inner dimensions differ, or an operand that is not 2-D.
    #[error("cannot multiply {left:?} by {right:?}")]
    Matmul {
        /// Shape of the left operand.
        left: Vec<usize>,
        /// Shape of the right operand.
        right: Vec<usize>,
    },
    /// A buffer whose length does not match the requested shape.
    #[error("{len} elements do not fill shape {shape:?}")]
    Length {
        /// Number of elements supplied.
        len: usize,
        /// Requested shape.
        shape: Vec<usize>,
    },
}

impl ShapeError {
    /// `Ok` if `left` and `right` are the same shape, else [`ShapeError::Mismatch`] naming both:
    /// the one check of elementwise operands (and of a value against its declared shape).
    pub fn same(left: &[usize], right: &[usize]) -> Result<(), ShapeError> {
        if left == right {
            Ok(())
        } else {
            Err(ShapeError::Mismatch {
                left: left.to_vec(),
                right: right.to_vec(),
            })
        }
    }
}

/// An n-dimensional array of ring elements in standard (row-major) layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingTensor<R: Ring>(ArrayD<R>);

impl<R: Ring> RingTensor<R> {
    /// All-zero tensor of the given shape.
    pub fn zeros(shape: &[usize]) -> Self {
        RingTensor(ArrayD::from_elem(IxDyn(shape), R::ZERO))
    }

    /// Tensor from row-major elements.
    pub fn from_vec(shape: &[usize], values: Vec<R>) -> Result<Self, ShapeError> {
        let len = values.len();
        ArrayD::from_shape_vec(IxDyn(shape), values)
            .map(RingTensor)
            .map_err(|_| ShapeError::Length {
                len,
                shape: shape.to_vec(),
            })
    }

    /// Wraps an ndarray array (copied into standard layout if needed).
    pub fn from_array(array: ArrayD<R>) -> Self {
        if array.is_standard_layout() {
            RingTensor(array)
        } else {
            RingTensor(array.as_standard_layout().into_owned())
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[R] {
        self.0
            .as_slice()
            .expect("RingTensor invariant: standard layout")
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [R] {
        self.0
            .as_slice_mut()
            .expect("RingTensor invariant: standard layout")
    }

    /// The underlying ndarray array.
    pub fn view(&self) -> &ArrayD<R> {
        &self.0
    }

    /// Unwraps into the ndarray array.
    pub fn into_array(self) -> ArrayD<R> {
        self.0
    }

    /// Unwraps into the row-major elements.
    pub fn into_vec(self) -> Vec<R> {
        let (v, offset) = self.0.into_raw_vec_and_offset();
        debug_assert!(offset.unwrap_or(0) == 0);
        v
    }

    fn check_same(&self, other: &Self) -> Result<(), ShapeError> {
        ShapeError::same(self.shape(), other.shape())
    }

    fn zip_with(&self, other: &Self, f: impl Fn(R, R) -> R + Sync) -> Result<Self, ShapeError> {
        self.check_same(other)?;
        let out = Zip::from(&self.0)
            .and(&other.0)
            .map_collect(|a, b| f(*a, *b));
        Ok(RingTensor(out))
    }

    /// Elementwise `self + other`.
    pub fn add(&self, other: &Self) -> Result<Self, ShapeError> {
        self.zip_with(other, R::add)
    }

    /// Elementwise `self - other`.
    pub fn sub(&self, other: &Self) -> Result<Self, ShapeError> {
        self.zip_with(other, R::sub)
    }

    /// Elementwise (Hadamard) product.
    pub fn mul(&self, other: &Self) -> Result<Self, ShapeError> {
        self.zip_with(other, R::mul)
    }

    /// In-place `self += other`.
    pub fn add_assign(&mut self, other: &Self) -> Result<(), ShapeError> {
        self.check_same(other)?;
        Zip::from(&mut self.0)
            .and(&other.0)
            .for_each(|a, b| *a = a.add(*b));
        Ok(())
    }

    /// In-place `self -= other`.
    pub fn sub_assign(&mut self, other: &Self) -> Result<(), ShapeError> {
        self.check_same(other)?;
        Zip::from(&mut self.0)
            .and(&other.0)
            .for_each(|a, b| *a = a.sub(*b));
        Ok(())
    }

    /// Elementwise negation.
    pub fn neg(&self) -> Self {
        self.map(R::neg)
    }

    /// Multiplies every element by a public scalar.
    pub fn scale(&self, k: R) -> Self {
        self.map(|x| x.mul(k))
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(R) -> R) -> Self {
        RingTensor(self.0.mapv(f))
    }

    /// Matrix product of two 2-D tensors with the blocked parallel kernel.
    pub fn matmul(&self, other: &Self) -> Result<Self, ShapeError> {
        let (m, k, n) = self.matmul_dims(other)?;
        let c = matmul(self.as_slice(), other.as_slice(), m, k, n);
        Self::from_vec(&[m, n], c)
    }

    /// The `(m, k, n)` of `self (m x k) * other (k x n)`, or the error if they do not fit.
    pub fn matmul_dims(&self, other: &Self) -> Result<(usize, usize, usize), ShapeError> {
        match (self.shape(), other.shape()) {
            (&[m, k], &[k2, n]) if k == k2 => Ok((m, k, n)),
            (l, r) => Err(ShapeError::Matmul {
                left: l.to_vec(),
                right: r.to_vec(),
            }),
        }
    }
}

impl<R: Ring> From<ArrayD<R>> for RingTensor<R> {
    fn from(a: ArrayD<R>) -> Self {
        Self::from_array(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_ops_wrap() {
        let a = RingTensor::<u32>::from_vec(&[2], vec![u32::MAX, 3]).unwrap();
        let b = RingTensor::<u32>::from_vec(&[2], vec![2, 5]).unwrap();
        assert_eq!(a.add(&b).unwrap().as_slice(), &[1, 8]);
        assert_eq!(b.sub(&a).unwrap().as_slice(), &[3, 2]);
        assert_eq!(a.mul(&b).unwrap().as_slice(), &[u32::MAX - 1, 15]);
        assert_eq!(a.neg().as_slice(), &[1, 3u32.wrapping_neg()]);
    }

    #[test]
    fn shape_errors_are_typed() {
        let a = RingTensor::<u64>::zeros(&[2, 3]);
        let b = RingTensor::<u64>::zeros(&[2, 3]);
        assert!(matches!(
            a.add(&RingTensor::zeros(&[3, 2])),
            Err(ShapeError::Mismatch { .. })
        ));
        assert!(matches!(a.matmul(&b), Err(ShapeError::Matmul { .. })));
        assert!(matches!(
            RingTensor::<u64>::from_vec(&[2, 2], vec![1, 2, 3]),
            Err(ShapeError::Length { .. })
        ));
    }
}
