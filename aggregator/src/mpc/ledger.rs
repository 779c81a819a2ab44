//! The accounting every preprocessing pool keeps (ABY3's daBits, SecureNN's ComputeMSB masks):
//! what it made, what it handed out and where, and what callers wanted when it ran short, so a
//! test can count that no correlated value is used twice and a program can size the next run.

use std::ops::Range;

/// What a pool made and handed out, in values (one daBit, one ComputeMSB mask).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Values made.
    pub made: u64,
    /// Values the calls that found the pool short would have taken (they made their own inline).
    pub short: u64,
    /// The ranges of value indices handed out, in order (index `i` is the `i`-th value made).
    pub taken: Vec<Range<u64>>,
}

impl Ledger {
    /// Records `n` values handed out, the ones after those handed out so far.
    pub fn hand_out(&mut self, n: u64) {
        let start = self.taken.last().map_or(0, |r| r.end);
        self.taken.push(start..start + n);
    }

    /// Values handed out.
    pub fn used(&self) -> u64 {
        self.taken.iter().map(|r| r.end - r.start).sum()
    }

    /// Values the program asked for: handed out or short (what to make ahead next time).
    pub fn wanted(&self) -> u64 {
        self.used() + self.short
    }

    /// Whether some value was handed out twice (overlapping ranges) or before it was made.
    pub fn reuses(&self) -> bool {
        let mut sorted = self.taken.clone();
        sorted.sort_by_key(|r| r.start);
        sorted.windows(2).any(|w| w[0].end > w[1].start)
            || sorted.last().is_some_and(|r| r.end > self.made)
    }
}
