//! Command-line pieces shared by the `aggregator`, `data-owner` and `model-owner` binaries.

use std::path::PathBuf;

use crate::identity::{Identity, KeyError};
use crate::party::PartyId;

/// Arguments of the `keygen` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// The party this key belongs to (server0..server2, model-owner, data-owner-3, or a data
    /// owner's own name such as hospital-a, listed in the cluster file with role = "data-owner").
    #[arg(long)]
    pub name: PartyId,
    /// Where to write the key file (created with mode 0600; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Errors of `keygen`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// The name is not a party this binary plays.
    #[error("{name} is not a {role} party name")]
    WrongRole {
        /// The name given.
        name: PartyId,
        /// The binary's role.
        role: &'static str,
    },
    /// Writing the key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Generates a key pair for `args.name`, checks it is a party `role` plays (`is_role`), writes the
/// key file and returns the identity (whose public key the caller prints for the cluster file).
pub fn run_keygen(
    args: &KeygenArgs,
    role: &'static str,
    is_role: impl Fn(PartyId) -> bool,
) -> Result<Identity, KeygenError> {
    if !is_role(args.name) {
        return Err(KeygenError::WrongRole {
            name: args.name,
            role,
        });
    }
    let identity = Identity::generate(args.name, &mut rand::rng());
    identity.write_key_file(&args.out)?;
    Ok(identity)
}

/// Prints what `keygen` made: the public key line to paste into the cluster file.
pub fn print_keygen_result(identity: &Identity, out: &std::path::Path) {
    println!("wrote {} key to {}", identity.party(), out.display());
    println!("public_key = \"{}\"", identity.public_key_base64());
}

/// How log lines are written to stderr (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields` with the message, `target`),
    /// for log collectors.
    Json,
}

/// Installs the `tracing` subscriber: `RUST_LOG` filters, default `info`.
pub fn init_logging(format: LogFormat) {
    init_logging_with_default("info", format);
}

/// Installs the `tracing` subscriber with default level `warn` (interactive commands that print
/// their own progress).
pub fn init_logging_quiet(format: LogFormat) {
    init_logging_with_default("warn", format);
}

fn init_logging_with_default(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .try_init(),
    };
}

/// Whether log lines get colour codes: only on a terminal, and not when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>); a log file or pipe gets plain text.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Runs `keygen` end to end for a binary playing `role`: writes the key file, prints the public
/// key, and returns the process exit code (errors go to stderr).
pub fn keygen_exit_code(
    args: &KeygenArgs,
    role: &'static str,
    is_role: impl Fn(PartyId) -> bool,
) -> i32 {
    match run_keygen(args, role, is_role) {
        Ok(identity) => {
            print_keygen_result(&identity, &args.out);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Runs `future` on a new multi-threaded tokio runtime; exit code 0 on `Ok`, 1 (with the error on
/// stderr) otherwise.
pub fn block_on_exit_code<E: std::fmt::Display>(
    future: impl std::future::Future<Output = Result<(), E>>,
) -> i32 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The arguments every long-running party takes: its cluster file, name and key file.
#[derive(Debug, Clone, clap::Args)]
pub struct PartyArgs {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// This party's name (server0, data-owner-3, hospital-a, ...).
    #[arg(long)]
    pub name: PartyId,
    /// This party's key file.
    #[arg(long)]
    pub key: PathBuf,
}

impl PartyArgs {
    /// [`load_party`] for these arguments.
    pub fn load(&self) -> Result<(crate::config::ClusterConfig, Identity), PartyLoadError> {
        load_party(&self.config, &self.key, self.name)
    }
}

/// Errors of loading a party's cluster file and key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartyLoadError {
    /// The cluster file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The key file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The key file is for another party, or its key is not the cluster file's.
    #[error("{0}")]
    Mismatch(String),
}

/// Loads the cluster file and the key file of `party`, checking that the key file is that party's
/// and that its public key is the one the cluster file lists.
pub fn load_party(
    config: &std::path::Path,
    key: &std::path::Path,
    party: PartyId,
) -> Result<(crate::config::ClusterConfig, Identity), PartyLoadError> {
    let cluster = crate::config::ClusterConfig::load(config)?;
    let identity = Identity::read_key_file(key)?;
    if identity.party() != party {
        return Err(PartyLoadError::Mismatch(format!(
            "key file {} is for {}, not {party}",
            key.display(),
            identity.party()
        )));
    }
    if cluster.party(party)?.public_key != *identity.public_key() {
        return Err(PartyLoadError::Mismatch(format!(
            "{party}'s key file does not match its public key in {}",
            config.display()
        )));
    }
    Ok((cluster, identity))
}

#[cfg(test)]
mod colour_tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
