//! Why training runs in the 128-bit ring, and how often its truncations fail.
//!
//! Every fixed-point product is truncated by a probabilistic protocol: SecureML's local
//! truncation of two shares, `x = A + B` with `A` uniform, each share shifted on its own (Pond
//! and SecureNN on their two shares; ABY3's two-share truncation Π_trunc1 on `A = x0`,
//! `B = x1 + x2`), or ABY3's truncation pairs (Π_trunc2: open `c = x + s` for a uniform `s`,
//! output `(c >> d) - (s >> d)`). All are within one unit of `x / 2^d` unless a sum of a
//! uniform value and `x` wraps around the ring's signed range, which for `|x| < 2^l` in the ring
//! `Z_{2^k}` happens with probability at most `2^(l + 1 - k)` per element (Mohassel & Zhang
//! 2017, Thm. 1) and then the error is about `2^(k - d)`: the value is destroyed.
//!
//! In the 64-bit ring with 16 fractional bits, a product of two values of magnitude 8 carries
//! `2 * 16 + 6 = 38` bits before truncation: a failure per `2^25` elements. A network-A training
//! step truncates about 150,000 values (forward 33k, backward 100k, the update 118k), so a run
//! of a few hundred steps meets one; MP-SPDZ #964 and CrypTen #347 report runs destroyed by it.
//!
//! Tessera trains in `Z_{2^128}` with [`FRAC_BITS`] fractional bits. The bound we hold to is
//! `2^-40` per element, which allows `l = 87` bits before truncation. The largest values a
//! training step truncates:
//!
//! - products of two fixed-point values (`2f = 40` fractional bits): activations, logits,
//!   weights and batch-summed gradients stay below `2^20` in magnitude (network A's largest
//!   are below `2^8`), so `l <= 60`: failure `<= 2^-67`;
//! - a public real constant applied with 24 significant bits ([`super::optim::scale_real`]):
//!   at most `f + 20 + 24 = 64` bits;
//! - Adam's inverse square root, the widest: `x y^2` with `x` at `2f` and `y^2` at `2f`
//!   fractional bits, at most 1 in value: below `2^80`, failure `<= 2^-47`.
//!
//! [`MAX_MAGNITUDE_BITS`] = 87 is the largest magnitude at which the bound holds;
//! [`count_failures`] replays the truncation's arithmetic on random masks (`A = s`,
//! `B = x - s`: the pairs' `(x + s) >> d - s >> d` is the same event) so a test can run
//! `10^8` truncations at `2^87` and count zero large errors (the expected count is
//! `10^8 2^-40 < 10^-4`), and show the 64-bit ring failing at the predicted rate.
//!
//! Comparisons stay in the 64-bit ring (they read the value modulo `2^64`, exact while
//! `|x| < 2^62`, i.e. `2^42` at 20 fractional bits), so the wider ring doubles the bytes of
//! products and truncations but not the comparison circuits.
//!
//! Fractional bits: Piranha measured that 16 train network A to about 96% and 22-24 to about
//! 97%, 14 or fewer not at all. Measured here (ABY3, network A, SGD, 5 epochs on the 8,000
//! bundled digits, single runs): 12 bits 0.9300, 16 bits 0.9375, 20 bits 0.9315, 24 bits 0.9330,
//! all within a run's noise: the division by the batch is folded into one constant kept to 24
//! significant bits ([`super::optim::scale_real`]), so small updates do not lose their bits.
//! [`FRAC_BITS`] = 20 is the default of `simulate --encrypted` (`--frac-bits` changes it): Adam
//! keeps its second moment at `2f` bits and needs `2f >= 27` for `eps^2 = 1e-8`, and 20 leaves
//! the comparisons a range of `2^42`.

use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::Ring;

/// The default fractional bits of training.
pub const FRAC_BITS: u32 = 20;

/// The largest magnitude (in bits, raw) a training truncation may see while the failure
/// probability stays at most `2^-40` in the 128-bit ring.
pub const MAX_MAGNITUDE_BITS: u32 = 87;

/// The failure probability bound `2^(l + 1 - k)` of a probabilistic truncation of values below
/// `2^l` in the ring of `R`, as a power of two.
pub fn failure_exponent<R: Ring>(magnitude_bits: u32) -> i32 {
    magnitude_bits as i32 + 1 - R::BITS as i32
}

/// Replays `count` truncations by `d` bits of values of magnitude just below `2^l` (random
/// signs and values in `[2^(l-1), 2^l)`) with uniform masks, the arithmetic of ABY3's Π_trunc2,
/// `(x + s) >> d - s >> d`, whose failure event (the sum wraps) is the two-share truncation's.
/// Returns how many land more than one unit from `x >> d`.
pub fn count_failures<R: Ring>(count: u64, magnitude_bits: u32, d: u32, seed: u64) -> u64 {
    const CHUNK: usize = 1 << 16;
    let mut prg = Prg::new(&Seed([7; 32]), seed);
    let mut failures = 0;
    let mut done = 0u64;
    let span = R::ONE.shl(magnitude_bits - 1);
    let low_mask = span.sub(R::ONE);
    while done < count {
        let n = CHUNK.min((count - done) as usize);
        let raw: Vec<R> = prg.ring_vec(2 * n);
        for i in 0..n {
            let (a, s) = (raw[i], raw[n + i]);
            // x in ±[2^(l-1), 2^l): the low l-1 bits random, the top one set, a random sign.
            let mag = a.and(low_mask).add(span);
            let x = if a.bit(R::BITS - 1) { mag.neg() } else { mag };
            let got = x.add(s).shr_signed(d).sub(s.shr_signed(d));
            let err = got.sub(x.shr_signed(d)).to_i128();
            if !(-1..=1).contains(&err) {
                failures += 1;
            }
        }
        done += n as u64;
    }
    failures
}
