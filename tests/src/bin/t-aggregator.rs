//! The `aggregator` command line, built inside the test package so the networked tests can start it as
//! a real process (`CARGO_BIN_EXE_t-aggregator`).

use clap::Parser;

fn main() {
    let cli = tessera_aggregator::cli::Cli::parse();
    std::process::exit(tessera_aggregator::cli::run(cli));
}
