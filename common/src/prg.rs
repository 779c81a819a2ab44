//! The pseudo-random generator that expands 32-byte seeds into ring elements.
//!
//! Definition (stable: shares on the wire depend on it). For a seed `s` (32 bytes) and a stream
//! number `t` (u64), the byte stream is AES-128 in counter mode (NIST SP 800-38A, the whole
//! 128-bit block incremented big-endian) under key `s[0..16]`, starting from the counter block
//! `s[16..32] XOR (be64(t) || be64(0))`. Element `i` of a ring with `B` bytes per element is the
//! little-endian integer in bytes `[i*B, (i+1)*B)` of that stream. Streams with different `t`
//! under one seed start 2^64 blocks apart, so none reaches another within 256 EiB.
//!
//! Why AES: every MPC operation draws its masks, zero-sharings and the dealer's triples from
//! here, and with the CPU's AES instructions (the `aes` crate detects them at run time; a
//! constant-time software AES otherwise) AES-128-CTR runs at about 3.5 times ChaCha20's speed on
//! the machines here (`bench ring`). ChaCha20 stays where it is the right choice: the sealing
//! AEAD (ChaCha20-Poly1305) is fast without special instructions on every party's machine, has
//! no timing side channel in software, and takes 96-bit random nonces safely.
//!
//! Seed-compressed sharing uses stream [`STREAM_SHARE`]; protocols take their own stream numbers.

use aes::Aes128;
use ctr::cipher::{KeyIvInit, StreamCipher};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ring::{Ring, RingTensor};

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Stream number of seed-compressed share expansion.
pub const STREAM_SHARE: u64 = 0;

/// Keystream bytes drawn by every [`Prg`] of this process (benchmarks read it to state the PRG
/// part of an operation's floor; one relaxed atomic add per call).
static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Keystream bytes drawn so far by all [`Prg`]s of this process.
pub fn drawn_bytes() -> u64 {
    DRAWN.load(std::sync::atomic::Ordering::Relaxed)
}

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

/// An AES-128-CTR keystream positioned at the start of one stream of one seed.
pub struct Prg {
    cipher: Aes128Ctr,
}

impl Prg {
    /// The PRG for stream `stream` of `seed`.
    pub fn new(seed: &Seed, stream: u64) -> Self {
        let mut key = [0u8; 16];
        key.copy_from_slice(&seed.0[..16]);
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&seed.0[16..]);
        for (b, t) in iv[..8].iter_mut().zip(stream.to_be_bytes()) {
            *b ^= t;
        }
        let prg = Prg {
            cipher: Aes128Ctr::new(&key.into(), &iv.into()),
        };
        key.zeroize();
        prg
    }

    /// Fills `out` with the next keystream bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        DRAWN.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.cipher.write_keystream(out);
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

    /// FIPS-197 appendix C.1 (AES-128: key 000102..0f, plaintext 00112233..ff): the first block
    /// of stream 0 of the seed `key || plaintext` is that ciphertext; the second is the
    /// encryption of the next counter block (SP 800-38A: the whole block incremented
    /// big-endian), checked against the block cipher itself.
    #[test]
    fn keystream_matches_fips197_and_sp800_38a() {
        use aes::cipher::{BlockCipherEncrypt, KeyInit};
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate().take(16) {
            *b = i as u8;
        }
        for i in 0..16 {
            seed[16 + i] = (i as u8) * 0x11;
        }
        let mut bytes = [0u8; 32];
        Prg::new(&Seed(seed), 0).fill_bytes(&mut bytes);
        let hex: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "69c4e0d86a7b0430d8cdb78070b4c55a");
        let key: [u8; 16] = seed[..16].try_into().unwrap();
        let mut next: [u8; 16] = seed[16..].try_into().unwrap();
        next[15] = next[15].wrapping_add(1);
        next[14] = next[14].wrapping_add(1); // 0xff + 1 carries into byte 14
        let mut block = next.into();
        Aes128::new(&key.into()).encrypt_block(&mut block);
        assert_eq!(bytes[16..], block[..]);
        // Stream 1 starts from the counter block with be64(1) XORed into its high half.
        let mut other = [0u8; 16];
        Prg::new(&Seed(seed), 1).fill_bytes(&mut other);
        let mut start: [u8; 16] = seed[16..].try_into().unwrap();
        start[7] ^= 1;
        let mut block = start.into();
        Aes128::new(&key.into()).encrypt_block(&mut block);
        assert_eq!(other[..], block[..]);
    }

    /// Pins element decoding: the first u64 is the little-endian read of the first 8 bytes.
    #[test]
    fn ring_elements_are_little_endian_keystream() {
        let mut bytes = [0u8; 16];
        Prg::new(&Seed([3; 32]), 5).fill_bytes(&mut bytes);
        let v: Vec<u64> = Prg::new(&Seed([3; 32]), 5).ring_vec(2);
        assert_eq!(v[0], u64::from_le_bytes(bytes[..8].try_into().unwrap()));
        assert_eq!(v[1], u64::from_le_bytes(bytes[8..].try_into().unwrap()));
        let w: Vec<u32> = Prg::new(&Seed([3; 32]), 5).ring_vec(1);
        assert_eq!(w[0], u32::from_le_bytes(bytes[..4].try_into().unwrap()));
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
