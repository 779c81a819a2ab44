//! `bench`: Tessera's benchmark suites.
//!
//! ```text
//! cargo run --release -p tessera-examples --bin bench -- ring
//! cargo run --release -p tessera-examples --bin bench -- secagg
//! cargo run --release -p tessera-examples --bin bench -- mpc
//! cargo run --release -p tessera-examples --bin bench -- train
//! ```
//!
//! Each suite prints a markdown table and writes `target/bench/<suite>.json`.

use tessera_examples::bench::{mpc, report, ring, secagg, train};

fn main() {
    let suites: Vec<String> = std::env::args().skip(1).collect();
    if suites.is_empty() {
        eprintln!("usage: bench <suite>...   (suites: ring, secagg, mpc, train)");
        std::process::exit(2);
    }
    for suite in suites {
        let rows = match suite.as_str() {
            "ring" => ring::run(),
            "secagg" => secagg::run(),
            "mpc" => mpc::run(),
            "train" => train::run(),
            other => {
                eprintln!("unknown suite {other:?} (suites: ring, secagg, mpc, train)");
                std::process::exit(2);
            }
        };
        match report::write_json(&suite, &rows) {
            Ok(path) => println!("\nwrote {}", path.display()),
            Err(e) => {
                eprintln!("could not write results: {e}");
                std::process::exit(1);
            }
        }
    }
}
