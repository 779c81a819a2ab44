//! `model-owner`: Tessera model owner: starts jobs, opens results, trains the global model.

use clap::Parser;

fn main() {
    let cli = tessera_model_owner::cli::Cli::parse();
    std::process::exit(tessera_model_owner::cli::run(cli));
}
