//! The cluster file: every party's address and public key, plus job defaults.
//!
//! ```toml
//! [job]
//! ring_bits = 32          # 32, 64 or 128
//! frac_bits = 16
//! # rule = "norm-bound:5" # how rounds combine uploads (default "mean")
//!
//! # [job.dp]              # distributed differential privacy (optional)
//! # noise_multiplier = 1.0
//! # clip = 1.0            # L2 bound of each owner's update
//! # delta = 1e-5
//!
//! [parties.server0]
//! address = "127.0.0.1:7100"
//! public_key = "base64..."
//!
//! [parties.server1]
//! address = "127.0.0.1:7101"
//! public_key = "base64..."
//!
//! [parties.model-owner]
//! address = "127.0.0.1:7200"   # the model owner dials out; the address is informational
//! public_key = "base64..."
//!
//! [parties.data-owner-0]
//! public_key = "base64..."      # data owners only dial out: no address needed
//!
//! [models.mnist]                # a deployed model's id, and who may query it
//! clients = ["data-owner-0"]
//! max_queries = 1000             # predictions each of them may run (unlimited when absent)
//!
//! [privacy]                      # the minimum DP of every federated job (see `dp::policy`)
//! min_noise_multiplier = 1.0
//!
//! [training]                     # what an encrypted training may reveal (`train_policy`)
//! min_batch = 32
//! ```
//!
//! Any value can be overridden from the environment with the `TESSERA` prefix and `__` between
//! levels, e.g. `TESSERA__PARTIES__SERVER1__ADDRESS=10.0.0.5:7101` or `TESSERA__JOB__FRAC_BITS=20`
//! (environment keys are lowercased, so party names with dashes can only be set in the file).
//!
//! A cluster needs `server0`, `server1` and the `model-owner`; `server2` is optional (two-server
//! additive aggregation) but needed by the three-server protocols. Servers need an address.
//!
//! Any party may go by a name of its own instead, given with its role (and a server's index):
//!
//! ```toml
//! [parties.eu-leader]
//! role = "server"
//! index = 0                     # 0 leads; 1 and 2 help
//! address = "10.0.0.10:7100"
//! public_key = "base64..."
//!
//! [parties.acme-research]
//! role = "model-owner"
//! public_key = "base64..."
//!
//! [parties.hospital-a]
//! role = "data-owner"
//! public_key = "base64..."
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use x25519_dalek::PublicKey;

use crate::dp::{DpSettings, PrivacyPolicy};
use crate::identity::public_key_from_base64;
use crate::party::{MAX_SERVERS, PartyId, is_name_of_ones_own};
use crate::rule::AggregationRule;

mod error;

pub use error::{ConfigError, RoleProblem};

/// Job parameters the cluster file sets by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobDefaults {
    /// Ring size in bits for shares: 32, 64 or 128.
    pub ring_bits: u32,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Clipping bound on every coordinate of an update.
    pub clip: f64,
    /// Data owners needed before a round may close.
    pub min_clients: usize,
    /// Seconds a round stays open for uploads.
    pub round_deadline_secs: u64,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Local batch size.
    pub batch_size: usize,
    /// Local learning rate.
    pub learning_rate: f64,
    /// Largest weight (sample count) one data owner may claim.
    pub max_weight: f64,
    /// How a round combines the uploads: `"mean"` or `"norm-bound:B"`.
    #[serde(deserialize_with = "rule_from_str")]
    pub rule: AggregationRule,
    /// Distributed differential privacy (`[job.dp]`: `noise_multiplier`, `clip`, `delta`), none
    /// when absent.
    pub dp: Option<DpSettings>,
}

fn rule_from_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AggregationRule, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            ring_bits: 32,
            frac_bits: 16,
            clip: 1.0,
            min_clients: 2,
            round_deadline_secs: 120,
            local_epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            max_weight: 4096.0,
            rule: AggregationRule::Mean,
            dp: None,
        }
    }
}

/// One party's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyEntry {
    /// `host:port` it listens on, if it listens.
    pub address: Option<String>,
    /// Its X25519 public key.
    pub public_key: PublicKey,
    /// A server's TLS certificate (PEM), if it serves TLS: clients trust exactly this one.
    pub tls_cert: Option<String>,
    /// The name the cluster file lists it by (a fixed name or one of its own).
    pub name: String,
}

/// How to reach a server: its address and, if it serves TLS, the certificate to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEndpoint {
    /// `host:port`.
    pub address: String,
    /// Its TLS certificate (PEM); `None` for plaintext gRPC (sealing still protects payloads).
    pub tls_cert: Option<String>,
}

/// Transport settings of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkDefaults {
    /// Allow plaintext gRPC to servers that are not on loopback (off by default: a server off
    /// loopback needs a `tls_cert`).
    pub allow_plaintext: bool,
}

/// The party listed as `name` with `role` and `index`: a fixed name is its own party (a role
/// or index given must agree with it); a name of one's own needs its role, and a server its
/// index.
fn listed_party(name: &str, role: Option<&str>, index: Option<u8>) -> Result<PartyId, ConfigError> {
    let bad = |reason: RoleProblem| ConfigError::BadRole {
        name: name.to_owned(),
        reason,
    };
    const ROLES: [&str; 3] = ["server", "model-owner", "data-owner"];
    if let Some(r) = role.filter(|r| !ROLES.contains(r)) {
        return Err(bad(RoleProblem::Unknown(r.to_owned())));
    }
    if let Some(party) = PartyId::parse_fixed(name) {
        let has = match party {
            PartyId::Server(_) => "server",
            PartyId::ModelOwner => "model-owner",
            PartyId::DataOwner(_) => "data-owner",
        };
        if let Some(r) = role.filter(|r| *r != has) {
            return Err(bad(RoleProblem::NotTheNamesRole {
                role: r.to_owned(),
                has,
            }));
        }
        return match index {
            Some(i) if party.server_index() != Some(usize::from(i)) => {
                Err(bad(RoleProblem::NotTheNamesIndex(i)))
            }
            _ => Ok(party),
        };
    }
    if !is_name_of_ones_own(name) {
        return Err(ConfigError::BadPartyName(name.to_owned()));
    }
    match (role, index) {
        (None, _) => Err(bad(RoleProblem::NeedsRole)),
        (Some("server"), Some(i)) if i < MAX_SERVERS => Ok(PartyId::Server(i)),
        (Some("server"), Some(i)) => Err(bad(RoleProblem::ServerIndexOutOfRange(i))),
        (Some("server"), None) => Err(bad(RoleProblem::ServerNeedsIndex)),
        (Some(r), Some(_)) => Err(bad(RoleProblem::IndexNotForRole(r.to_owned()))),
        (Some("model-owner"), None) => Ok(PartyId::ModelOwner),
        (Some(_), None) => PartyId::named_data_owner(name).map_err(|_| {
            ConfigError::BadPartyName(format!(
                "{name} (its index meets another name's: rename it)"
            ))
        }),
    }
}

/// Whether `host:port` names this machine (127.0.0.0/8, `localhost`, `::1`).
pub fn is_loopback(address: &str) -> bool {
    if let Ok(a) = address.parse::<std::net::SocketAddr>() {
        return a.ip().is_loopback();
    }
    address
        .rsplit_once(':')
        .is_some_and(|(host, _)| host == "localhost")
}

/// A validated cluster description.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Every party, by name.
    pub parties: BTreeMap<PartyId, PartyEntry>,
    /// Job defaults.
    pub job: JobDefaults,
    /// Transport settings.
    pub network: NetworkDefaults,
    /// Deployed models' ids and the clients each lets query it (encrypted prediction).
    pub models: BTreeMap<String, Vec<PartyId>>,
    /// The minimum privacy every server and data owner enforces on a job (`[privacy]`).
    pub privacy: PrivacyPolicy,
    /// What an encrypted training may reveal to the model owner (`[training]`), enforced by
    /// every server at the launch.
    pub training: crate::train_policy::TrainingPolicy,
    /// Predictions each client may run on a model (`max_queries` under `[models.<id>]`):
    /// every server counts them and refuses one more.
    pub query_budgets: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    job: JobDefaults,
    #[serde(default)]
    privacy: PrivacyPolicy,
    #[serde(default)]
    training: crate::train_policy::TrainingPolicy,
    #[serde(default)]
    network: NetworkDefaults,
    parties: BTreeMap<String, RawParty>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    clients: Vec<String>,
    /// Predictions each listed client may run on the model (counted at every server).
    max_queries: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParty {
    /// `server`, `model-owner` or `data-owner`: required with a name of one's own, checked
    /// against the name otherwise.
    role: Option<String>,
    /// Which server (0 leads): required for a server with a name of its own.
    index: Option<u8>,
    address: Option<String>,
    public_key: String,
    tls_cert: Option<String>,
}

impl ClusterConfig {
    /// Loads and validates a cluster file, with `TESSERA__...` environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, None)
    }

    /// Like [`ClusterConfig::load`], with the environment given explicitly (for tests); `None`
    /// reads the process environment.
    pub fn load_with_env(
        path: &Path,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, ConfigError> {
        let load = |source| ConfigError::Load {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let raw: RawCluster = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("TESSERA")
                    .separator("__")
                    .try_parsing(true)
                    .source(env),
            )
            .build()
            .map_err(load)?
            .try_deserialize()
            .map_err(load)?;
        Self::validate(raw)
    }

    /// Parses and validates a cluster description from TOML text (no environment overrides).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawCluster = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|source| ConfigError::Load {
                path: PathBuf::from("<inline>"),
                source: Box::new(source),
            })?;
        Self::validate(raw)
    }

    fn validate(raw: RawCluster) -> Result<Self, ConfigError> {
        let mut parties = BTreeMap::new();
        for (name, entry) in raw.parties {
            let party = listed_party(&name, entry.role.as_deref(), entry.index)?;
            if let Some(other) = parties.get(&party).map(|e: &PartyEntry| &e.name) {
                return Err(ConfigError::SameParty {
                    name,
                    other: other.clone(),
                });
            }
            if let Some(address) = &entry.address
                && !is_host_port(address)
            {
                return Err(ConfigError::BadAddress {
                    party,
                    address: address.clone(),
                });
            }
            let public_key = public_key_from_base64(&entry.public_key)
                .map_err(|source| ConfigError::BadKey { party, source })?;
            if let Some(cert) = &entry.tls_cert
                && !cert.trim_start().starts_with("-----BEGIN CERTIFICATE-----")
            {
                return Err(ConfigError::BadTls {
                    party,
                    reason: "tls_cert is not a PEM certificate".into(),
                });
            }
            parties.insert(
                party,
                PartyEntry {
                    address: entry.address,
                    public_key,
                    tls_cert: entry.tls_cert,
                    name,
                },
            );
        }
        for required in [PartyId::Server(0), PartyId::Server(1), PartyId::ModelOwner] {
            if !parties.contains_key(&required) {
                return Err(ConfigError::MissingParty(required));
            }
        }
        for (party, entry) in &parties {
            if !party.is_server() {
                continue;
            }
            let Some(address) = &entry.address else {
                return Err(ConfigError::BadAddress {
                    party: *party,
                    address: String::new(),
                });
            };
            if entry.tls_cert.is_none() && !is_loopback(address) && !raw.network.allow_plaintext {
                return Err(ConfigError::BadTls {
                    party: *party,
                    reason: format!(
                        "{address} is not on loopback: give it a tls_cert, or set [network] allow_plaintext = true"
                    ),
                });
            }
        }
        let job = raw.job;
        if ![32, 64, 128].contains(&job.ring_bits) {
            return Err(ConfigError::BadJob {
                field: "ring_bits",
                reason: format!("is {}, must be 32, 64 or 128", job.ring_bits),
            });
        }
        if job.frac_bits + 2 > job.ring_bits {
            return Err(ConfigError::BadJob {
                field: "frac_bits",
                reason: format!(
                    "is {}, too large for a {}-bit ring",
                    job.frac_bits, job.ring_bits
                ),
            });
        }
        if !(job.clip.is_finite() && job.clip > 0.0) {
            return Err(ConfigError::BadJob {
                field: "clip",
                reason: format!("is {}, must be positive", job.clip),
            });
        }
        let mut models = BTreeMap::new();
        let mut query_budgets = BTreeMap::new();
        for (model, access) in raw.models {
            let mut clients = Vec::new();
            for name in access.clients {
                let party =
                    resolve(&parties, &name).ok_or_else(|| ConfigError::BadModelAccess {
                        model: model.clone(),
                        reason: format!("{name:?} is not a party name"),
                    })?;
                if party.is_server() || !parties.contains_key(&party) {
                    return Err(ConfigError::BadModelAccess {
                        model: model.clone(),
                        reason: format!("{party} is not a client listed under [parties]"),
                    });
                }
                clients.push(party);
            }
            if let Some(budget) = access.max_queries {
                query_budgets.insert(model.clone(), budget);
            }
            models.insert(model, clients);
        }
        raw.privacy.validate().map_err(ConfigError::BadPrivacy)?;
        Ok(ClusterConfig {
            parties,
            job,
            network: raw.network,
            models,
            privacy: raw.privacy,
            training: raw.training,
            query_budgets,
        })
    }

    /// The party `name` is in this cluster: a name the file lists (fixed or of one's own) or a
    /// fixed name.
    pub fn resolve(&self, name: &str) -> Result<PartyId, ConfigError> {
        resolve(&self.parties, name).ok_or_else(|| ConfigError::BadPartyName(name.to_owned()))
    }

    /// Binds the names of their own that the servers and the model owner go by in this file,
    /// for this process (see [`crate::party::name_role`]): they parse to those parties and
    /// display as them in logs and messages from now on. The binaries call it once they have
    /// loaded their cluster file.
    pub fn register_names(&self) {
        for (party, entry) in &self.parties {
            if !matches!(party, PartyId::DataOwner(_))
                && PartyId::parse_fixed(&entry.name).is_none()
            {
                // Checked by `listed_party`: a server's or the model owner's own name binds.
                let _ = crate::party::name_role(&entry.name, *party);
            }
        }
    }

    /// Number of compute servers (2 or 3).
    pub fn num_servers(&self) -> usize {
        if self.parties.contains_key(&PartyId::Server(2)) {
            3
        } else {
            2
        }
    }

    /// The compute servers, in index order.
    pub fn servers(&self) -> Vec<PartyId> {
        (0..self.num_servers() as u8).map(PartyId::Server).collect()
    }

    /// The data owners listed.
    pub fn data_owners(&self) -> Vec<PartyId> {
        self.parties
            .keys()
            .copied()
            .filter(|p| matches!(p, PartyId::DataOwner(_)))
            .collect()
    }

    /// A party's entry, or [`ConfigError::MissingParty`].
    pub fn party(&self, party: PartyId) -> Result<&PartyEntry, ConfigError> {
        self.parties
            .get(&party)
            .ok_or(ConfigError::MissingParty(party))
    }

    /// How to reach `server`: its address and TLS certificate.
    pub fn endpoint(&self, server: PartyId) -> Result<ServerEndpoint, ConfigError> {
        let entry = self.party(server)?;
        Ok(ServerEndpoint {
            address: entry.address.clone().unwrap_or_default(),
            tls_cert: entry.tls_cert.clone(),
        })
    }

    /// Every party with its public key (to build a [`crate::seal::Sealer`]).
    pub fn public_keys(&self) -> impl Iterator<Item = (PartyId, &PublicKey)> {
        self.parties.iter().map(|(p, e)| (*p, &e.public_key))
    }
}

/// The party `name` is among `parties`: one listed by that name, else a fixed name.
fn resolve(parties: &BTreeMap<PartyId, PartyEntry>, name: &str) -> Option<PartyId> {
    parties
        .iter()
        .find(|(_, e)| e.name == name)
        .map(|(p, _)| *p)
        .or_else(|| PartyId::parse_fixed(name))
}

/// `host:port` with a non-empty host (name, IPv4, or bracketed IPv6) and a u16 port.
fn is_host_port(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok()
                && !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
