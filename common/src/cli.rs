//! Command-line pieces shared by the `aggregator`, `data-owner` and `model-owner` binaries.

use std::path::PathBuf;

use crate::identity::{Identity, KeyError};
use crate::party::{BadPartyName, PartyId, is_name_of_ones_own};

/// Arguments of the `keygen` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// The party this key belongs to: a fixed name (server0..server2, model-owner, data-owner-3)
    /// or a name of its own (hospital-a, eu-leader), listed in the cluster file with its role.
    #[arg(long)]
    pub name: String,
    /// Where to write the key file (created with mode 0600; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Errors of `keygen`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// The name is a fixed name of a party this binary does not play.
    #[error("{name} is not a {role} party name")]
    WrongRole {
        /// The name given.
        name: PartyId,
        /// The binary's role.
        role: &'static str,
    },
    /// The name is neither a fixed name nor a well-formed name of one's own.
    #[error(transparent)]
    BadName(#[from] BadPartyName),
    /// Writing the key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A key pair `keygen` wrote: the name its file gives and the public key for the cluster file.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The name in the key file.
    pub name: String,
    /// The public key to list in the cluster file.
    pub public_key: x25519_dalek::PublicKey,
}

/// Generates a key pair for `args.name` and writes the key file. A fixed name must be one of
/// the parties `role` plays (`is_role`); a name of its own may be any, since the cluster file
/// gives its role.
pub fn run_keygen(
    args: &KeygenArgs,
    role: &'static str,
    is_role: impl Fn(PartyId) -> bool,
) -> Result<NewKey, KeygenError> {
    match PartyId::parse_fixed(&args.name) {
        Some(party) if !is_role(party) => {
            return Err(KeygenError::WrongRole { name: party, role });
        }
        Some(_) => {}
        None if is_name_of_ones_own(&args.name) => {}
        None => return Err(BadPartyName(args.name.clone()).into()),
    }
    let secret = x25519_dalek::StaticSecret::random_from_rng(&mut rand::rng());
    crate::identity::write_key_file(&args.out, &args.name, &secret)?;
    Ok(NewKey {
        name: args.name.clone(),
        public_key: x25519_dalek::PublicKey::from(&secret),
    })
}

/// Prints what `keygen` made: the public key line to paste into the cluster file.
pub fn print_keygen_result(key: &NewKey, out: &std::path::Path) {
    println!("wrote {} key to {}", key.name, out.display());
    println!(
        "public_key = \"{}\"",
        crate::identity::public_key_to_base64(&key.public_key)
    );
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
        Ok(key) => {
            print_keygen_result(&key, &args.out);
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
    /// This party's name as the cluster file lists it (server0, data-owner-3, hospital-a,
    /// eu-leader, ...).
    #[arg(long)]
    pub name: String,
    /// This party's key file.
    #[arg(long)]
    pub key: PathBuf,
}

impl PartyArgs {
    /// Loads the cluster file, finds the party `--name` names in it, and loads its key file
    /// (as [`load_party`]); the identity's [`Identity::party`] is this party.
    pub fn load(&self) -> Result<(crate::config::ClusterConfig, Identity), PartyLoadError> {
        let cluster = crate::config::ClusterConfig::load(&self.config)?;
        cluster.register_names();
        let party = cluster.resolve(&self.name)?;
        let identity = check_key_file(&cluster, &self.config, &self.key, party)?;
        Ok((cluster, identity))
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
    cluster.register_names();
    let identity = check_key_file(&cluster, config, key, party)?;
    Ok((cluster, identity))
}

/// Reads `party`'s key file, checking that it is that party's and that its public key is the
/// one the cluster file lists (the cluster's names already registered).
fn check_key_file(
    cluster: &crate::config::ClusterConfig,
    config: &std::path::Path,
    key: &std::path::Path,
    party: PartyId,
) -> Result<Identity, PartyLoadError> {
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
    Ok(identity)
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

#[cfg(test)]
mod keygen_tests {
    use super::*;

    fn args(dir: &std::path::Path, name: &str) -> KeygenArgs {
        KeygenArgs {
            name: name.into(),
            out: dir.join(format!("{name}.key")),
        }
    }

    /// A name of one's own is written as given whatever binary makes it (the cluster file gives
    /// its role); a fixed name of another role and a malformed name are refused by variant.
    #[test]
    fn keygen_writes_names_of_their_own_and_refuses_other_roles() {
        let dir = tempfile::tempdir().unwrap();
        let key = run_keygen(&args(dir.path(), "eu-leader"), "server", PartyId::is_server).unwrap();
        assert_eq!(key.name, "eu-leader");
        let text = std::fs::read_to_string(dir.path().join("eu-leader.key")).unwrap();
        assert!(text.contains("party = eu-leader\n"), "{text}");
        assert!(text.contains(&crate::identity::public_key_to_base64(&key.public_key)));
        crate::identity::check_private(&dir.path().join("eu-leader.key")).unwrap();
        let model_owner = |p| p == PartyId::ModelOwner;
        assert!(matches!(
            run_keygen(&args(dir.path(), "server1"), "model owner", model_owner),
            Err(KeygenError::WrongRole {
                name: PartyId::Server(1),
                ..
            })
        ));
        assert!(matches!(
            run_keygen(&args(dir.path(), "Eu Leader"), "server", PartyId::is_server),
            Err(KeygenError::BadName(_))
        ));
        assert!(matches!(
            run_keygen(&args(dir.path(), "eu-leader"), "server", PartyId::is_server),
            Err(KeygenError::Key(KeyError::Exists(_)))
        ));
    }
}
