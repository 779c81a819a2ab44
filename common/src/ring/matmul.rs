//! Blocked, cache-tiled, rayon-parallel matrix multiplication over rings.
//!
//! The loop nest follows the BLIS/GotoBLAS design (Van Zee & van de Geijn, "BLIS: A Framework for
//! Rapidly Instantiating BLAS Functionality", 2015):
//!
//! - `pc` walks the shared dimension in blocks of [`KC`] and packs the `KC x n` slab of `B` into
//!   `NR`-wide column panels (contiguous, zero-padded), shared read-only by every thread;
//! - the rows of `C` are split into blocks of [`MC`] rows, one rayon task each; a task packs its
//!   `MC x KC` block of `A` into `MR`-tall row panels;
//! - the micro-kernel multiplies one `MR x KC` panel of `A` by one `KC x NR` panel of `B` into an
//!   `MR x NR` accumulator that stays in registers, then adds it into `C`.
//!
//! Everything is wrapping ring arithmetic, so the result is exact and independent of the blocking
//! and of the number of threads. ndarray's `dot` on integer element types is a naive triple loop;
//! the tests use it as the oracle and the `bench` binary measures both.

use rayon::prelude::*;

use super::Ring;

/// Rows of the register micro-tile.
const MR: usize = 4;
/// Columns of the register micro-tile.
const NR: usize = 8;
/// Depth of one packed block of the shared dimension.
const KC: usize = 256;
/// Rows of `C` per parallel task (a multiple of [`MR`]).
const MC: usize = 64;
/// Below this many multiply-adds the product runs on the calling thread.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `C = A * B` for row-major `A` (`m x k`) and `B` (`k x n`), in parallel on the rayon pool.
///
/// # Panics
/// If the slice lengths do not match the dimensions (callers check shapes first).
pub fn matmul<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
    gemm(a, b, m, k, n, m * k * n >= PARALLEL_THRESHOLD)
}

/// `C = A * B` on the calling thread only (for benchmarks and for callers already parallel).
///
/// # Panics
/// If the slice lengths do not match the dimensions.
pub fn matmul_serial<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize) -> Vec<R> {
    gemm(a, b, m, k, n, false)
}

fn gemm<R: Ring>(a: &[R], b: &[R], m: usize, k: usize, n: usize, parallel: bool) -> Vec<R> {
    assert_eq!(a.len(), m * k, "A is not {m} x {k}");
    assert_eq!(b.len(), k * n, "B is not {k} x {n}");
    let mut c = vec![R::ZERO; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    // A single row or column would fill a register tile's other rows or columns with zeros
    // (4x or 8x the multiply-adds) and pack whole blocks for it: plain loops instead.
    if n == 1 {
        for (c, row) in c.iter_mut().zip(a.chunks_exact(k)) {
            *c = dot(row, b);
        }
        return c;
    }
    if m == 1 {
        for (av, b_row) in a.iter().zip(b.chunks_exact(n)) {
            for (c, bv) in c.iter_mut().zip(b_row) {
                *c = c.add(av.mul(*bv));
            }
        }
        return c;
    }
    let panels = n.div_ceil(NR);
    let mut packed_b = vec![R::ZERO; KC * panels * NR];
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        pack_b(b, n, pc, kc, &mut packed_b);
        let packed_b = &packed_b[..kc * panels * NR];
        let task = |(block, c_rows): (usize, &mut [R])| {
            let ic = block * MC;
            let mc = c_rows.len() / n;
            let mut packed_a = vec![R::ZERO; mc.div_ceil(MR) * MR * kc];
            pack_a(a, k, ic, mc, pc, kc, &mut packed_a);
            block_kernel(&packed_a, packed_b, kc, mc, n, c_rows);
        };
        if parallel {
            c.par_chunks_mut(MC * n).enumerate().for_each(task);
        } else {
            c.chunks_mut(MC * n).enumerate().for_each(task);
        }
    }
    c
}

/// `sum_i a[i] b[i]`, in four independent accumulators.
fn dot<R: Ring>(a: &[R], b: &[R]) -> R {
    let mut acc = [R::ZERO; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for j in 0..4 {
            acc[j] = acc[j].add(x[j].mul(y[j]));
        }
    }
    let tail = ar
        .iter()
        .zip(br)
        .fold(R::ZERO, |s, (x, y)| s.add(x.mul(*y)));
    acc[0].add(acc[1]).add(acc[2].add(acc[3])).add(tail)
}

/// Packs `B[pc..pc+kc, ..]` into `NR`-wide panels: panel `p` holds rows `0..kc` of columns
/// `p*NR..p*NR+NR`, each row contiguous, zero-padded past `n`.
fn pack_b<R: Ring>(b: &[R], n: usize, pc: usize, kc: usize, out: &mut [R]) {
    for (p, panel) in out
        .chunks_exact_mut(kc * NR)
        .take(n.div_ceil(NR))
        .enumerate()
    {
        let j0 = p * NR;
        let width = NR.min(n - j0);
        for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
            let row = &b[(pc + kk) * n + j0..][..width];
            dst[..width].copy_from_slice(row);
            dst[width..].fill(R::ZERO);
        }
    }
}

/// Packs `A[ic..ic+mc, pc..pc+kc]` into `MR`-tall panels stored column by column
/// (`MR` consecutive elements per `kk`), zero-padded past `mc`.
fn pack_a<R: Ring>(a: &[R], k: usize, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [R]) {
    for (p, panel) in out
        .chunks_exact_mut(kc * MR)
        .take(mc.div_ceil(MR))
        .enumerate()
    {
        let i0 = p * MR;
        let height = MR.min(mc - i0);
        for r in 0..MR {
            if r < height {
                let row = &a[(ic + i0 + r) * k + pc..][..kc];
                for (kk, v) in row.iter().enumerate() {
                    panel[kk * MR + r] = *v;
                }
            } else {
                for kk in 0..kc {
                    panel[kk * MR + r] = R::ZERO;
                }
            }
        }
    }
}

/// Multiplies the packed `mc x kc` block of `A` by every packed panel of `B`, adding into the
/// `mc x n` rows of `C`.
fn block_kernel<R: Ring>(
    packed_a: &[R],
    packed_b: &[R],
    kc: usize,
    mc: usize,
    n: usize,
    c_rows: &mut [R],
) {
    for (q, b_panel) in packed_b.chunks_exact(kc * NR).enumerate() {
        let j0 = q * NR;
        let width = NR.min(n - j0);
        for (p, a_panel) in packed_a
            .chunks_exact(kc * MR)
            .take(mc.div_ceil(MR))
            .enumerate()
        {
            let acc = micro_kernel(a_panel, b_panel, kc);
            let i0 = p * MR;
            for (r, acc_row) in acc.iter().enumerate().take(MR.min(mc - i0)) {
                let c_row = &mut c_rows[(i0 + r) * n + j0..][..width];
                for (c, v) in c_row.iter_mut().zip(acc_row) {
                    *c = c.add(*v);
                }
            }
        }
    }
}

/// The `MR x NR` register tile: `sum_kk a_panel[kk] (outer) b_panel[kk]`.
#[inline(always)]
fn micro_kernel<R: Ring>(a_panel: &[R], b_panel: &[R], kc: usize) -> [[R; NR]; MR] {
    let mut acc = [[R::ZERO; NR]; MR];
    for (a_col, b_row) in a_panel
        .chunks_exact(MR)
        .zip(b_panel.chunks_exact(NR))
        .take(kc)
    {
        for r in 0..MR {
            let av = a_col[r];
            for j in 0..NR {
                acc[r][j] = acc[r][j].add(av.mul(b_row[j]));
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_known_product() {
        // [1 2 3; 4 5 6] * [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a = [1u64, 2, 3, 4, 5, 6];
        let b = [7u64, 8, 9, 10, 11, 12];
        assert_eq!(matmul(&a, &b, 2, 3, 2), vec![58, 64, 139, 154]);
        assert_eq!(matmul_serial(&a, &b, 2, 3, 2), vec![58, 64, 139, 154]);
    }

    #[test]
    fn wraps_modulo_ring() {
        let a = [u32::MAX, 2];
        let b = [3u32, u32::MAX];
        // (-1)*3 + 2*(-1) = -5
        assert_eq!(matmul(&a, &b, 1, 2, 1), vec![5u32.wrapping_neg()]);
    }

    #[test]
    fn empty_dimensions() {
        assert_eq!(matmul::<u64>(&[], &[], 0, 0, 0), Vec::<u64>::new());
        assert_eq!(matmul::<u64>(&[], &[], 2, 0, 3), vec![0; 6]);
    }
}
