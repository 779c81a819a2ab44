//! Benchmarks: each suite prints a markdown table and writes the same rows as JSON to
//! `target/bench/<suite>.json`.
//!
//! Timing is wall-clock over enough repetitions to fill a minimum duration (see [`time_it`]);
//! the figures are throughputs, so a faster machine shows bigger numbers.

pub mod accuracy;
pub mod cli;
pub mod floor;
pub mod infer;
pub mod mpc;
pub mod owners;
pub mod report;
pub mod ring;
pub mod secagg;
pub mod serve;
pub mod tables;
pub mod train;
pub mod zoo;

use std::time::{Duration, Instant};

/// Runs `f` repeatedly until `min` has passed (at least once) and returns seconds per call.
pub fn time_it(min: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed() < min {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}
