//! `aggregator`: the Tessera compute server binary.

use clap::Parser;

fn main() {
    let cli = tessera_aggregator::cli::Cli::parse();
    std::process::exit(tessera_aggregator::cli::run(cli));
}
