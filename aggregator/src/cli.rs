//! The `aggregator` command line.

use clap::{Parser, Subcommand};
use tessera_common::cli::{KeygenArgs, keygen_exit_code};

/// Tessera compute server.
#[derive(Debug, Parser)]
#[command(name = "aggregator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate this server's X25519 key file and print its public key.
    Keygen(KeygenArgs),
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging();
    match cli.command {
        Command::Keygen(args) => keygen_exit_code(&args, "server", |p| p.is_server()),
    }
}
