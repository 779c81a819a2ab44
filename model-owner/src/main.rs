//! `model-owner`: Tessera model owner: starts jobs, opens results, trains the global model.

use clap::Parser;

fn main() {
    tessera_alloc::init();
    let cli = tessera_model_owner::cli::Cli::parse();
    std::process::exit(tessera_model_owner::cli::run(cli));
}
