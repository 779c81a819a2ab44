//! `data-owner`: Tessera data-owner node (an institution).

use clap::Parser;

fn main() {
    tessera_alloc::init();
    let cli = tessera_data_owner::cli::Cli::parse();
    std::process::exit(tessera_data_owner::cli::run(cli));
}
