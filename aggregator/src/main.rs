//! `aggregator`: the Tessera compute server binary.

use clap::Parser;

fn main() {
    tessera_alloc::init();
    let cli = tessera_aggregator::cli::Cli::parse();
    std::process::exit(tessera_aggregator::cli::run(cli));
}
