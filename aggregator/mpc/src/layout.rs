//! Local data movement on shares: gathers for im2col, pooling windows, axis reductions and
//! sorting networks. Every map here is linear (a gather, with zeros for padding), so applying it
//! to each share of a sharing applies it to the shared value, with no communication.

use super::MpcError;
use crate::error::Invalid;

/// A gather: output element `i` is input element `idx[i]`, or zero for `None` (padding).
#[derive(Debug, Clone)]
pub struct Gather {
    idx: Vec<Option<usize>>,
}

impl Gather {
    /// Applies the gather to one share.
    pub fn apply<T: Copy + Default>(&self, v: &[T]) -> Vec<T> {
        self.idx
            .iter()
            .map(|i| i.map_or(T::default(), |i| v[i]))
            .collect()
    }

    /// The adjoint of the gather: adds output element `i` into input position `idx[i]` of a
    /// vector of `len` elements (padding positions are dropped). The backward pass of every
    /// layer that gathers (im2col, pooling windows, broadcasts) is this scatter-add, linear like
    /// the gather, so it too runs on each share alone.
    pub fn scatter_add<R: tessera_common::ring::Ring>(&self, v: &[R], len: usize) -> Vec<R> {
        let mut out = vec![R::ZERO; len];
        for (i, x) in self.idx.iter().zip(v) {
            if let Some(i) = i {
                out[*i] = out[*i].add(*x);
            }
        }
        out
    }

    /// A gather from its positions, `None` reading zero.
    pub fn with_zeros(idx: Vec<Option<usize>>) -> Self {
        Gather { idx }
    }

    /// Whether any output reads zero (padding).
    pub fn pads(&self) -> bool {
        self.idx.iter().any(Option::is_none)
    }

    /// Per output element, whether it reads zero (padding).
    pub fn padding(&self) -> impl Iterator<Item = bool> + '_ {
        self.idx.iter().map(Option::is_none)
    }

    /// Number of output elements.
    pub fn len(&self) -> usize {
        self.idx.len()
    }

    /// Whether the gather produces nothing.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// Columns `cols` of every row of a `[rows, width]` matrix, as `[rows, cols.len()]`.
    pub fn columns(rows: usize, width: usize, cols: &[usize]) -> Self {
        Gather {
            idx: (0..rows)
                .flat_map(|r| cols.iter().map(move |c| Some(r * width + c)))
                .collect(),
        }
    }

    /// Elements at the given flat positions.
    pub fn positions(idx: &[usize]) -> Self {
        Gather {
            idx: idx.iter().map(|i| Some(*i)).collect(),
        }
    }

    /// Transpose of a `[rows, cols]` matrix.
    pub fn transpose(rows: usize, cols: usize) -> Self {
        Gather {
            idx: (0..cols)
                .flat_map(|c| (0..rows).map(move |r| Some(r * cols + c)))
                .collect(),
        }
    }
}

/// Geometry of a 2-D window sweep over an `[n, c, h, w]` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Vertical and horizontal stride.
    pub stride: (usize, usize),
    /// Zero padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Vertical and horizontal dilation (1: adjacent taps).
    pub dilation: (usize, usize),
}

impl Window {
    /// A `kernel` window with one stride and one padding on every side, no dilation.
    pub fn square(kernel: (usize, usize), stride: usize, padding: usize) -> Window {
        Window {
            kernel,
            stride: (stride, stride),
            pads: [padding; 4],
            dilation: (1, 1),
        }
    }

    /// Output height and width for an `h x w` input.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize), MpcError> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (dh, dw) = self.dilation;
        let [top, left, bottom, right] = self.pads;
        // The span a dilated kernel covers.
        let (eh, ew) = ((kh.max(1) - 1) * dh + 1, (kw.max(1) - 1) * dw + 1);
        let (ph, pw) = (h + top + bottom, w + left + right);
        if sh == 0 || sw == 0 || kh == 0 || kw == 0 || dh == 0 || dw == 0 || ph < eh || pw < ew {
            return Err(Invalid::Window {
                kernel: self.kernel,
                stride: self.stride,
                pads: self.pads,
                h,
                w,
            }
            .into());
        }
        Ok(((ph - eh) / sh + 1, (pw - ew) / sw + 1))
    }

    fn dims(shape: &[usize]) -> Result<(usize, usize, usize, usize), MpcError> {
        match shape {
            &[n, c, h, w] => Ok((n, c, h, w)),
            _ => Err(Invalid::Layout {
                what: "a windowed input",
                expected: "[n, c, h, w]",
                shape: shape.to_vec(),
            }
            .into()),
        }
    }

    /// The input position tap `(dy, dx)` of output `(y, x)` reads in an `h x w` plane, if it is
    /// inside (else padding).
    fn tap(
        &self,
        (y, x): (usize, usize),
        (dy, dx): (usize, usize),
        (h, w): (usize, usize),
    ) -> Option<usize> {
        let iy = (y * self.stride.0 + dy * self.dilation.0).checked_sub(self.pads[0])?;
        let ix = (x * self.stride.1 + dx * self.dilation.1).checked_sub(self.pads[1])?;
        (iy < h && ix < w).then_some(iy * w + ix)
    }

    /// im2col: `[n*oh*ow, c*kh*kw]` patches (padding reads zero) and `(n, oh, ow)`.
    pub fn im2col(&self, shape: &[usize]) -> Result<(Gather, (usize, usize, usize)), MpcError> {
        let (n, c, h, w) = Self::dims(shape)?;
        let (oh, ow) = self.output(h, w)?;
        let (kh, kw) = self.kernel;
        let mut idx = Vec::with_capacity(n * oh * ow * c * kh * kw);
        for b in 0..n {
            for y in 0..oh {
                for x in 0..ow {
                    for ch in 0..c {
                        let plane = (b * c + ch) * h * w;
                        for dy in 0..kh {
                            for dx in 0..kw {
                                idx.push(self.tap((y, x), (dy, dx), (h, w)).map(|i| plane + i));
                            }
                        }
                    }
                }
            }
        }
        Ok((Gather { idx }, (n, oh, ow)))
    }

    /// Pooling windows per channel: `[n*c*oh*ow, kh*kw]` and the output shape `[n, c, oh, ow]`.
    pub fn pool(&self, shape: &[usize]) -> Result<(Gather, Vec<usize>), MpcError> {
        let (n, c, h, w) = Self::dims(shape)?;
        let (oh, ow) = self.output(h, w)?;
        let (kh, kw) = self.kernel;
        let mut idx = Vec::with_capacity(n * c * oh * ow * kh * kw);
        for plane in 0..n * c {
            for y in 0..oh {
                for x in 0..ow {
                    for dy in 0..kh {
                        for dx in 0..kw {
                            idx.push(
                                self.tap((y, x), (dy, dx), (h, w))
                                    .map(|i| plane * h * w + i),
                            );
                        }
                    }
                }
            }
        }
        Ok((Gather { idx }, vec![n, c, oh, ow]))
    }
}

/// `[n*oh*ow, o]` convolution rows to `[n, o, oh, ow]`.
pub fn rows_to_nchw(n: usize, oh: usize, ow: usize, o: usize) -> Gather {
    let mut idx = Vec::with_capacity(n * o * oh * ow);
    for b in 0..n {
        for ch in 0..o {
            for p in 0..oh * ow {
                idx.push(Some((b * oh * ow + p) * o + ch));
            }
        }
    }
    Gather { idx }
}

/// `[n, o, oh, ow]` back to convolution rows `[n*oh*ow, o]` (the inverse of
/// [`rows_to_nchw`]).
pub fn nchw_to_rows(n: usize, oh: usize, ow: usize, o: usize) -> Gather {
    let mut idx = Vec::with_capacity(n * o * oh * ow);
    for b in 0..n {
        for p in 0..oh * ow {
            for ch in 0..o {
                idx.push(Some((b * o + ch) * oh * ow + p));
            }
        }
    }
    Gather { idx }
}

/// Each of `rows` values repeated `width` times (`[rows]` to `[rows, width]`).
pub fn repeat_each(rows: usize, width: usize) -> Gather {
    Gather {
        idx: (0..rows * width).map(|i| Some(i / width)).collect(),
    }
}

/// A `[width]` vector repeated for each of `rows` rows (`[width]` to `[rows, width]`).
pub fn tile(rows: usize, width: usize) -> Gather {
    Gather {
        idx: (0..rows * width).map(|i| Some(i % width)).collect(),
    }
}

/// The compare-exchange stages of a bitonic sorting network on `n` (a power of two) elements:
/// per stage, pairs `(i, l)` with `i < l` and whether the pair sorts ascending.
pub fn bitonic_stages(n: usize) -> Vec<Vec<(usize, usize, bool)>> {
    let mut stages = Vec::new();
    let mut k = 2;
    while k <= n {
        let mut j = k / 2;
        while j > 0 {
            stages.push(
                (0..n)
                    .filter_map(|i| {
                        let l = i ^ j;
                        (l > i).then_some((i, l, i & k == 0))
                    })
                    .collect(),
            );
            j /= 2;
        }
        k *= 2;
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_add_is_the_adjoint_of_the_gather() {
        // <g(x), y> = <x, g^T(y)> for every x, y: the property backpropagation relies on.
        let win = Window::square((3, 3), 2, 1);
        let (g, _) = win.im2col(&[2, 3, 5, 5]).unwrap();
        let x: Vec<u64> = (0..150u64).map(|i| i * 7 + 3).collect();
        let y: Vec<u64> = (0..g.len() as u64).map(|i| i * 13 + 1).collect();
        let dot = |a: &[u64], b: &[u64]| {
            a.iter()
                .zip(b)
                .fold(0u64, |s, (p, q)| s.wrapping_add(p.wrapping_mul(*q)))
        };
        assert_eq!(dot(&g.apply(&x), &y), dot(&x, &g.scatter_add(&y, x.len())));
        let back = nchw_to_rows(2, 3, 4, 5).apply(&rows_to_nchw(2, 3, 4, 5).apply(&x[..120]));
        assert_eq!(back, x[..120].to_vec());
    }

    #[test]
    fn bitonic_network_sorts_plain_values() {
        let mut v: Vec<i64> = (0..64).map(|i| (i * 37 % 64) - 20).collect();
        for stage in bitonic_stages(v.len()) {
            for (i, l, asc) in stage {
                if (v[l] < v[i]) == asc && v[l] != v[i] {
                    v.swap(i, l);
                }
            }
        }
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
    }

    #[test]
    fn im2col_of_identity_kernel_reads_the_input() {
        let win = Window::square((1, 1), 1, 0);
        let (g, (n, oh, ow)) = win.im2col(&[1, 2, 2, 3]).unwrap();
        assert_eq!((n, oh, ow), (1, 2, 3));
        let v: Vec<u64> = (0..12).collect();
        // rows are pixels, columns channels.
        assert_eq!(g.apply(&v), vec![0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]);
        let padded = Window::square((3, 3), 1, 1);
        let (g, _) = padded.im2col(&[1, 1, 2, 2]).unwrap();
        // the first patch (centred on pixel 0) has zeros above and to the left.
        assert_eq!(&g.apply(&[1, 2, 3, 4])[..9], &[0, 0, 0, 0, 1, 2, 0, 3, 4]);
    }
}
