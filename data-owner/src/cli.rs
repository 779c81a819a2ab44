//! The `data-owner` command line.

use clap::{Parser, Subcommand};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, keygen_exit_code};

/// Tessera data-owner node (an institution).
#[derive(Debug, Parser)]
#[command(name = "data-owner", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate this party's X25519 key file and print its public key.
    Keygen(KeygenArgs),
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging();
    match cli.command {
        Command::Keygen(args) => {
            keygen_exit_code(&args, "data owner", |p| matches!(p, PartyId::DataOwner(_)))
        }
    }
}
