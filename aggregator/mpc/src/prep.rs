//! Preprocessing: correlated randomness that does not depend on the inputs, made in batches
//! ahead of the online phase, kept in pools and used once.
//!
//! The pools, one per [`Need`]:
//! - ABY3's daBits ([`super::aby3::prep`]);
//! - SecureNN's ComputeMSB masks ([`super::securenn::prep`]);
//! - Pond's (and so SecureNN's) Beaver triples and squaring pairs, one pool per shape
//!   ([`super::pond::prep`]).
//!
//! A call that finds its pool short makes what it needs inline (what it costs without
//! preprocessing), so a program runs the same with or without it. Every pool keeps a
//! [`Ledger`]: what it made, the index ranges it handed out, what it was short of; a test counts
//! from it that no value is used twice. A program is sized from what it asked:
//! [`crate::Session::wanted`] gives the [`Needs`] so far, the difference across one run of a program
//! (one training step, one prediction) is what the next run will ask, and
//! [`crate::prepare::prepare`] makes it ahead. Every server of a session holds the same counts, so all decide alike.

use std::any::Any;
use std::collections::BTreeMap;
use std::ops::Range;

/// Hand-outs a [`Ledger`] keeps one range each for; later ones extend the last range, so a
/// long session's ledger stays small (the ranges stay exact as a union).
pub const LEDGER_RANGES: usize = 4096;

/// What a pool made and handed out, in values (one daBit, one ComputeMSB mask, one triple).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Values made.
    pub made: u64,
    /// Values the calls that found the pool short would have taken (they made their own inline).
    pub short: u64,
    /// The ranges of value indices handed out, in order (index `i` is the `i`-th value made):
    /// one per hand-out, the first [`LEDGER_RANGES`] of them.
    pub taken: Vec<Range<u64>>,
    used: u64,
}

impl Ledger {
    /// Records `n` values handed out, the ones after those handed out so far.
    pub fn hand_out(&mut self, n: u64) {
        let full = self.taken.len() >= LEDGER_RANGES;
        match self.taken.last_mut() {
            Some(last) if full => last.end += n,
            last => {
                let start = last.map_or(0, |r| r.end);
                self.taken.push(start..start + n);
            }
        }
        self.used += n;
    }

    /// Values handed out.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Values made and not yet handed out.
    pub fn available(&self) -> u64 {
        self.made.saturating_sub(self.used)
    }

    /// Values the program asked for: handed out or short (what to make ahead next time).
    pub fn wanted(&self) -> u64 {
        self.used + self.short
    }

    /// Whether some value was handed out twice (overlapping ranges) or before it was made.
    pub fn reuses(&self) -> bool {
        let mut sorted = self.taken.clone();
        sorted.sort_by_key(|r| r.start);
        sorted.windows(2).any(|w| w[0].end > w[1].start)
            || sorted.last().is_some_and(|r| r.end > self.made)
    }
}

/// What a Beaver triple's `c` is of its `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    /// Elementwise `a * b`.
    Hadamard,
    /// Matrix product `a · b`.
    Matmul,
    /// A squaring pair: `a * a` (no `b`).
    Square,
}

/// The public shape of a Beaver triple: its product and the shapes of `a` and `b` (`b` empty
/// for a squaring pair).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TripleShape {
    /// What `c` is.
    pub product: Product,
    /// The shape of `a` (the left operand).
    pub left: Vec<usize>,
    /// The shape of `b` (the right operand; empty for [`Product::Square`]).
    pub right: Vec<usize>,
}

impl TripleShape {
    /// The shape of `c`.
    pub fn out(&self) -> Vec<usize> {
        match (self.product, self.left.as_slice(), self.right.as_slice()) {
            (Product::Matmul, [m, _], [_, n]) => vec![*m, *n],
            _ => self.left.clone(),
        }
    }
}

/// A kind of correlated value, the key of one pool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// ABY3 daBits in the ring of `ring_bits` bits.
    DaBits {
        /// The ring of the arithmetic half.
        ring_bits: u32,
    },
    /// SecureNN ComputeMSB masks for results in the ring of `ring_bits` bits.
    MsbMasks {
        /// The ring of the result.
        ring_bits: u32,
    },
    /// Pond / SecureNN Beaver triples of one shape in the ring of `ring_bits` bits.
    Triple {
        /// The ring.
        ring_bits: u32,
        /// The triple's shape.
        shape: TripleShape,
    },
}

impl Need {
    /// Bytes one value of this kind takes in a computing server's pool (an upper bound: the
    /// helper or dealer keeps only the count).
    pub fn bytes_each(&self) -> u64 {
        let elem = |ring_bits: u32| u64::from(ring_bits / 8);
        match self {
            // Both boolean share words (a bit each) and both arithmetic shares.
            Need::DaBits { ring_bits } => 1 + 2 * elem(*ring_bits),
            // `x` (8 bytes), its 64 bits in `Z_67` (a byte each), its low bit in the ring.
            Need::MsbMasks { ring_bits } => 8 + 64 + elem(*ring_bits),
            Need::Triple { ring_bits, shape } => {
                let n = |s: &[usize]| s.iter().product::<usize>() as u64;
                let right = if shape.product == Product::Square {
                    0
                } else {
                    n(&shape.right)
                };
                (n(&shape.left) + right + n(&shape.out())) * elem(*ring_bits)
            }
        }
    }
}

/// A session's pool of one [`Need`]: whatever it stores, it keeps a [`Ledger`].
pub trait Pool: Any + Send {
    /// The pool's accounting.
    fn ledger(&self) -> &Ledger;
}

/// Counts of correlated values by kind: what a program asked for, or what to make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs(BTreeMap<Need, u64>);

impl Needs {
    /// Adds `n` values of `need`.
    pub fn add(&mut self, need: Need, n: u64) {
        if n > 0 {
            *self.0.entry(need).or_default() += n;
        }
    }

    /// The count of `need`.
    pub fn get(&self, need: &Need) -> u64 {
        self.0.get(need).copied().unwrap_or(0)
    }

    /// What was asked after `before` (an earlier snapshot of the same session).
    pub fn since(&self, before: &Needs) -> Needs {
        let mut out = Needs::default();
        for (need, n) in &self.0 {
            out.add(need.clone(), n.saturating_sub(before.get(need)));
        }
        out
    }

    /// Every count times `k` (the needs of `k` runs of the same program).
    pub fn times(&self, k: u64) -> Needs {
        let mut out = Needs::default();
        for (need, n) in &self.0 {
            out.add(need.clone(), n * k);
        }
        out
    }

    /// The kinds and counts, in a fixed order (the same at every server).
    pub fn iter(&self) -> impl Iterator<Item = (&Need, u64)> {
        self.0.iter().map(|(k, v)| (k, *v))
    }

    /// Whether nothing is needed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Values of every kind together.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Bytes these values take in a computing server's pools ([`Need::bytes_each`]).
    pub fn bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|(need, n)| need.bytes_each().saturating_mul(*n))
            .fold(0, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_finds_overlaps_and_overdrafts() {
        let mut ledger = Ledger {
            made: 192,
            taken: vec![0..64, 128..192],
            ..Ledger::default()
        };
        assert!(!ledger.reuses());
        ledger.taken.push(60..70);
        assert!(ledger.reuses());
        ledger.taken = vec![0..64, 128..256];
        assert!(ledger.reuses());
    }

    /// Past [`LEDGER_RANGES`] hand-outs the last range grows instead of the list: the union of
    /// the ranges is still exactly what was handed out.
    #[test]
    fn a_long_ledger_stays_small_and_exact() {
        let mut ledger = Ledger {
            made: 3 * LEDGER_RANGES as u64,
            ..Ledger::default()
        };
        for _ in 0..LEDGER_RANGES + 10 {
            ledger.hand_out(2);
        }
        let n = 2 * (LEDGER_RANGES as u64 + 10);
        assert_eq!(ledger.taken.len(), LEDGER_RANGES);
        assert_eq!(ledger.taken.last().map(|r| r.end), Some(n));
        assert_eq!((ledger.used(), ledger.available()), (n, ledger.made - n));
        assert!(!ledger.reuses());
    }

    #[test]
    fn needs_subtract_and_scale() {
        let a = Need::DaBits { ring_bits: 64 };
        let b = Need::MsbMasks { ring_bits: 128 };
        let mut before = Needs::default();
        before.add(a.clone(), 10);
        let mut after = before.clone();
        after.add(a.clone(), 5);
        after.add(b.clone(), 7);
        let run = after.since(&before);
        assert_eq!((run.get(&a), run.get(&b), run.total()), (5, 7, 12));
        assert_eq!(run.times(3).total(), 36);
        assert!(after.since(&after).is_empty());
        // A daBit in the 64-bit ring: two bits and two 8-byte shares; a mask at 128 bits:
        // 8 + 64 + 16.
        assert_eq!(run.bytes(), 5 * 17 + 7 * 88);
        let t = Need::Triple {
            ring_bits: 128,
            shape: TripleShape {
                product: Product::Matmul,
                left: vec![2, 3],
                right: vec![3, 4],
            },
        };
        assert_eq!(t.bytes_each(), (6 + 12 + 8) * 16);
    }
}
