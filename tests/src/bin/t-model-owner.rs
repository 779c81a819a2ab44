//! The `model-owner` command line, built inside the test package so the networked tests can start it as
//! a real process (`CARGO_BIN_EXE_t-model-owner`).

use clap::Parser;

fn main() {
    let cli = tessera_model_owner::cli::Cli::parse();
    std::process::exit(tessera_model_owner::cli::run(cli));
}
