//! The `data-owner` command line, built inside the test package so the networked tests can start it as
//! a real process (`CARGO_BIN_EXE_t-data-owner`).

use clap::Parser;

fn main() {
    let cli = tessera_data_owner::cli::Cli::parse();
    std::process::exit(tessera_data_owner::cli::run(cli));
}
