//! The pseudo-random generator that expands 32-byte seeds into ring elements.
//!
//! Definition (stable: shares on the wire depend on it). For a seed `s` (32 bytes) and a stream
//! number `t` (u64), the byte stream is the ChaCha20 keystream of RFC 8439 (20 rounds, 32-bit block
//! counter starting at 0) under key `s` and the 96-bit nonce `le32(0) || le64(t)`. Element `i` of a
//! ring with `B` bytes per element is the little-endian integer in bytes `[i*B, (i+1)*B)` of that
//! stream. Streams with different `t` under one seed are independent; one stream yields at most
//! 256 GiB.
//!
//! Seed-compressed sharing uses stream [`STREAM_SHARE`]; protocols take their own stream numbers.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ring::{Ring, RingTensor};

/// Stream number of seed-compressed share expansion.
pub const STREAM_SHARE: u64 = 0;

/// A 32-byte PRG seed. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Seed(pub [u8; 32]);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

impl Seed {
    /// A fresh uniformly random seed.
    pub fn random<G: rand::CryptoRng + ?Sized>(rng: &mut G) -> Self {
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        Seed(s)
    }
}

/// A ChaCha20 keystream positioned at the start of one stream of one seed.
pub struct Prg {
    cipher: ChaCha20,
}

impl Prg {
    /// The PRG for stream `stream` of `seed`.
    pub fn new(seed: &Seed, stream: u64) -> Self {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&stream.to_le_bytes());
        Prg {
            cipher: ChaCha20::new(&seed.0.into(), &nonce.into()),
        }
    }

    /// Fills `out` with the next keystream bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        out.fill(0);
        self.cipher.apply_keystream(out);
    }

    /// Fills `out` with the next `out.len()` ring elements.
    pub fn fill_ring<R: Ring>(&mut self, out: &mut [R]) {
        self.fill_bytes(bytemuck::cast_slice_mut(out));
        if cfg!(target_endian = "big") {
            for v in out.iter_mut() {
                *v = v.le_to_native();
            }
        }
    }

    /// The next `len` ring elements.
    pub fn ring_vec<R: Ring>(&mut self, len: usize) -> Vec<R> {
        let mut v = vec![R::ZERO; len];
        self.fill_ring(&mut v);
        v
    }

    /// A tensor of the given shape filled with the next elements.
    pub fn ring_tensor<R: Ring>(&mut self, shape: &[usize]) -> RingTensor<R> {
        let mut t = RingTensor::zeros(shape);
        self.fill_ring(t.as_mut_slice());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 appendix A.1, test vector #1: all-zero key and nonce, block counter 0.
    #[test]
    fn zero_seed_matches_rfc8439_keystream() {
        let mut bytes = [0u8; 64];
        Prg::new(&Seed([0; 32]), 0).fill_bytes(&mut bytes);
        let expected = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
                        da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    /// Pins element decoding: the first u64 is the little-endian read of the first 8 bytes.
    #[test]
    fn ring_elements_are_little_endian_keystream() {
        let mut prg = Prg::new(&Seed([0; 32]), 0);
        let v: Vec<u64> = prg.ring_vec(2);
        assert_eq!(v, vec![0x903df1a0ade0b876, 0x28bd8653e56a5d40]);
        let w: Vec<u32> = Prg::new(&Seed([0; 32]), 0).ring_vec(1);
        assert_eq!(w, vec![0xade0b876]);
    }

    #[test]
    fn streams_differ_and_are_deterministic() {
        let seed = Seed([7; 32]);
        let a: Vec<u64> = Prg::new(&seed, 1).ring_vec(8);
        let b: Vec<u64> = Prg::new(&seed, 2).ring_vec(8);
        assert_ne!(a, b);
        assert_eq!(a, Prg::new(&seed, 1).ring_vec::<u64>(8));
        // Consecutive reads continue the stream.
        let mut prg = Prg::new(&seed, 1);
        let first: Vec<u64> = prg.ring_vec(3);
        let rest: Vec<u64> = prg.ring_vec(5);
        assert_eq!([first, rest].concat(), a);
    }
}
