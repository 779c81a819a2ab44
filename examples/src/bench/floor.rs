//! The machine's rates a benchmark row's floor is computed from: what the row cannot go below
//! on this machine with this code's kernels, whatever the protocol does around them.
//!
//! A row's floor is the sum of its multiply-adds at the matrix kernel's rate (both cores), the
//! bytes its servers send at the rate of a memory copy (in simulated mode every message is
//! written and read through memory at least once), and the PRG bytes it draws at the PRG's
//! rate on both cores. "x floor" is the measured time over it.

use std::time::Instant;

use tessera_common::prg::{Prg, Seed};

/// Rates measured at the start of a run.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// `u64` multiply-adds per second of the matmul kernel, both cores (twice the one-thread
    /// rate: in simulated mode the servers' products run side by side).
    pub macs_u64: f64,
    /// `u128` multiply-adds per second of the matmul kernel, both cores (likewise).
    pub macs_u128: f64,
    /// Bytes per second of a large memory copy.
    pub copy: f64,
    /// Keystream bytes per second of the PRG on one core.
    pub prg: f64,
}

impl Rates {
    /// Measures the rates (about a second): a 128 x 784 x 128 product in each ring on one
    /// thread, a 64 MiB copy and 1 MiB of keystream (in cache), the best of five runs each.
    pub fn measure() -> Self {
        let (m, k, n) = (128, 784, 128);
        let mut prg = Prg::new(&Seed([7; 32]), 0);
        let a: Vec<u64> = prg.ring_vec(m * k);
        let b: Vec<u64> = prg.ring_vec(k * n);
        let t64 = best_of(5, || tessera_common::ring::matmul_serial(&a, &b, m, k, n));
        let a: Vec<u128> = prg.ring_vec(m * k);
        let b: Vec<u128> = prg.ring_vec(k * n);
        let t128 = best_of(5, || tessera_common::ring::matmul_serial(&a, &b, m, k, n));
        let src = vec![1u8; 64 << 20];
        let mut dst = vec![0u8; src.len()];
        let c = best_of(5, || {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(dst.as_ptr());
        });
        let mut keystream = vec![0u8; 1 << 20];
        let p = best_of(5, || prg.fill_bytes(&mut keystream));
        let macs = (m * k * n) as f64;
        Rates {
            macs_u64: 2.0 * macs / t64,
            macs_u128: 2.0 * macs / t128,
            copy: src.len() as f64 / c,
            prg: keystream.len() as f64 / p,
        }
    }

    /// The floor of a row: `macs` multiply-adds in the 64-bit ring, `bytes` sent, `prg` PRG
    /// bytes drawn.
    pub fn floor_u64(&self, macs: f64, bytes: f64, prg: f64) -> f64 {
        macs / self.macs_u64 + bytes / self.copy + prg / (2.0 * self.prg)
    }
}

/// The shortest of `runs` timings of `f`.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
