//! Bit planes: the layout the bit-sliced circuits ([`super::sliced`]) and bit injection work in.
//! Plane `b` of a vector holds bit `b` of 64 elements per word, so one gate on a plane is one
//! bit of 64 elements. Local and linear over XOR: each server transposes its own shares.

use tessera_common::ring::Ring;

/// Transposes a 64 x 64 bit matrix in place: afterwards bit `j` of word `i` is what bit `i` of
/// word `j` was (Hacker's Delight, 7-3, least significant bit first).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// The bit planes of `v`: `R::BITS` planes of `ceil(len / 64)` words each, one after another;
/// bit `j` of word `w` of plane `b` is bit `b` of `v[64 w + j]` (zero past the end).
pub fn to_planes<R: Ring>(v: &[R]) -> Vec<u64> {
    let words = v.len().div_ceil(64);
    let mut out = vec![0u64; R::BITS as usize * words];
    let mut block = [0u64; 64];
    for q in 0..(R::BITS / 64) {
        for (w, chunk) in v.chunks(64).enumerate() {
            block.fill(0);
            for (b, x) in block.iter_mut().zip(chunk) {
                *b = x.shr(64 * q).low_u64();
            }
            transpose64(&mut block);
            for (b, word) in block.iter().enumerate() {
                out[(64 * q as usize + b) * words + w] = *word;
            }
        }
    }
    out
}

/// The bits of one plane as `len` words holding 0 or 1 (the inverse of one plane of
/// [`to_planes`]).
pub fn plane_bits(plane: &[u64], len: usize) -> Vec<u64> {
    (0..len).map(|i| (plane[i / 64] >> (i % 64)) & 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::prg::{Prg, Seed};

    #[test]
    fn transpose_matches_the_definition() {
        let mut a = [0u64; 64];
        Prg::new(&Seed([4; 32]), 0).fill_ring(&mut a);
        let before = a;
        transpose64(&mut a);
        for (i, word) in a.iter().enumerate() {
            for (j, was) in before.iter().enumerate() {
                assert_eq!((word >> j) & 1, (was >> i) & 1, "bit {j} of word {i}");
            }
        }
    }

    #[test]
    fn planes_hold_each_bit_of_each_element() {
        let v: Vec<u128> = Prg::new(&Seed([5; 32]), 0).ring_vec(200);
        let planes = to_planes(&v);
        let words = 4;
        assert_eq!(planes.len(), 128 * words);
        for b in 0..128 {
            let bits = plane_bits(&planes[b * words..(b + 1) * words], v.len());
            for (i, x) in v.iter().enumerate() {
                assert_eq!(bits[i], ((x >> b) & 1) as u64, "bit {b} of element {i}");
            }
        }
        // Padding past the end is zero.
        assert_eq!(planes[words - 1] >> (200 - 192), 0);
    }
}
