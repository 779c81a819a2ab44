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
//! cargo run --release -p tessera-examples --bin bench -- infer --only resnet18
//! cargo run --release -p tessera-examples --bin bench -- report --guide examples/guide/benchmarks.md
//! ```
//!
//! Each suite prints a markdown table and writes `target/bench/<suite>.json`; `report` renders
//! the tables of the JSON there (`--from DIR` elsewhere) and, with `--guide FILE`, fills that
//! file's `<!-- bench:SUITE -->` regions with them.

use clap::Parser;
use tessera_examples::bench::cli::{BenchCli, Suite};
use tessera_examples::bench::{accuracy, infer, mpc, owners, report, ring, secagg, serve, train};

fn main() {
    tessera_alloc::init();
    let cli = BenchCli::parse();
    for suite in &cli.suites {
        let rows = match suite {
            Suite::Ring => ring::run(),
            Suite::Secagg => secagg::run(),
            Suite::SecaggRules => secagg::run_rules(cli.only.as_deref(), cli.params),
            Suite::Mpc => mpc::run(cli.only.as_deref()),
            Suite::Owners => owners::run(),
            Suite::Serve => serve::run(),
            Suite::Train => train::run(cli.accuracy.then_some(cli.epochs), cli.only.as_deref()),
            Suite::Accuracy => accuracy::run(cli.only.as_deref()),
            Suite::Infer => infer::run(cli.only.as_deref()),
            Suite::Report => {
                let from = cli.from.clone().unwrap_or_else(report::bench_dir);
                if let Err(e) = report::report(&from, cli.guide.as_deref()) {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
                continue;
            }
        };
        match report::write_json(suite.name(), &rows) {
            Ok(path) => println!("\nwrote {}", path.display()),
            Err(e) => {
                eprintln!("could not write results: {e}");
                std::process::exit(1);
            }
        }
    }
}
