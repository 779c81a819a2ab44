//! `bench`: Tessera's benchmark suites.
//!
//! ```text
//! cargo run --release -p tessera-examples --bin bench -- ring
//! cargo run --release -p tessera-examples --bin bench -- secagg
//! cargo run --release -p tessera-examples --bin bench -- mpc
//! cargo run --release -p tessera-examples --bin bench -- mpc --only relu
//! cargo run --release -p tessera-examples --bin bench -- secagg-rules --only norm-bound --params 100000
//! cargo run --release -p tessera-examples --bin bench -- owners
//! cargo run --release -p tessera-examples --bin bench -- serve
//! cargo run --release -p tessera-examples --bin bench -- train
//! cargo run --release -p tessera-examples --bin bench -- train --accuracy --epochs 1
//! cargo run --release -p tessera-examples --bin bench -- train --only network_a
//! ```
//!
//! Each suite prints a markdown table and writes `target/bench/<suite>.json`.

use tessera_examples::bench::{mpc, owners, report, ring, secagg, serve, train};

fn main() {
    tessera_alloc::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let accuracy = args.iter().any(|a| a == "--accuracy");
    let epochs = args
        .iter()
        .position(|a| a == "--epochs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let params = args
        .iter()
        .position(|a| a == "--params")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let suites: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !["--epochs", "--only", "--params"].contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone())
        .collect();
    if suites.is_empty() {
        eprintln!(
            "usage: bench <suite>...   (suites: ring, secagg, secagg-rules, mpc, owners, serve, train)"
        );
        std::process::exit(2);
    }
    for suite in suites {
        let rows = match suite.as_str() {
            "ring" => ring::run(),
            "secagg" => secagg::run(),
            "secagg-rules" => secagg::run_rules(only.as_deref(), params),
            "mpc" => mpc::run(only.as_deref()),
            "owners" => owners::run(),
            "serve" => serve::run(),
            "train" => train::run(accuracy.then_some(epochs), only.as_deref()),
            other => {
                eprintln!(
                    "unknown suite {other:?} (suites: ring, secagg, secagg-rules, mpc, owners, serve, train)"
                );
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
