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
use crate::identity::{KeyError, public_key_from_base64};
use crate::party::{MAX_SERVERS, PartyId, is_name_of_ones_own};
use crate::rule::AggregationRule;

/// Errors of loading a cluster file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A server's TLS settings are missing or unusable.
    #[error("{party}: TLS: {reason}")]
    BadTls {
        /// The server.
        party: PartyId,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read or parsed, or a value has the wrong type.
    #[error("cluster config {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What the `config` crate reported.
        source: Box<config::ConfigError>,
    },
    /// A table under `[parties]` whose name is not a party name.
    #[error(
        "cluster config: {0:?} is not a party name (server0..server2, model-owner, data-owner-N, or a data owner's own name: lowercase letters, digits and '-', starting with a letter)"
    )]
    BadPartyName(String),
    /// A party's `role` is missing (a data owner with a name of its own must say it is one) or
    /// is not the role its name has.
    #[error("cluster config: party {name}: {reason}")]
    BadRole {
        /// The party's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A required party is not listed.
    #[error("cluster config: party {0} is missing")]
    MissingParty(PartyId),
    /// A party's address is not `host:port`.
    #[error("cluster config: party {party} has a bad address {address:?} (expected host:port)")]
    BadAddress {
        /// The party.
        party: PartyId,
        /// The address as written.
        address: String,
    },
    /// A party's public key is not 32 bytes of base64.
    #[error("cluster config: party {party} has a bad public key: {source}")]
    BadKey {
        /// The party.
        party: PartyId,
        /// The key error.
        source: KeyError,
    },
    /// A model's access list names a party that is not a client.
    #[error("cluster config: models.{model}: {reason}")]
    BadModelAccess {
        /// The model id.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// A `[privacy]` setting out of range.
    #[error("cluster config: {0}")]
    BadPrivacy(crate::dp::policy::PolicyError),
    /// A job default out of range.
    #[error("cluster config: job.{field} {reason}")]
    BadJob {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

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
    let bad = |reason: String| ConfigError::BadRole {
        name: name.to_owned(),
        reason,
    };
    const ROLES: [&str; 3] = ["server", "model-owner", "data-owner"];
    if let Some(r) = role.filter(|r| !ROLES.contains(r)) {
        return Err(bad(format!(
            "unknown role {r:?} (server, model-owner or data-owner)"
        )));
    }
    if let Some(party) = PartyId::parse_fixed(name) {
        let has = match party {
            PartyId::Server(_) => "server",
            PartyId::ModelOwner => "model-owner",
            PartyId::DataOwner(_) => "data-owner",
        };
        if let Some(r) = role.filter(|r| *r != has) {
            return Err(bad(format!(
                "role {r:?}, but {name} is the name of a {has} (give a name of its own to use another role)"
            )));
        }
        return match index {
            Some(i) if party.server_index() != Some(usize::from(i)) => Err(bad(format!(
                "index = {i}, but {name} is not server{i} (an index is given with a server's name of its own)"
            ))),
            _ => Ok(party),
        };
    }
    if !is_name_of_ones_own(name) {
        return Err(ConfigError::BadPartyName(name.to_owned()));
    }
    match (role, index) {
        (None, _) => Err(bad(
            "a name of one's own needs its role: role = \"data-owner\", role = \"model-owner\", or role = \"server\" with its index".into(),
        )),
        (Some("server"), Some(i)) if i < MAX_SERVERS => Ok(PartyId::Server(i)),
        (Some("server"), Some(i)) => Err(bad(format!(
            "index = {i}, but servers are 0 (the leader), 1 and 2"
        ))),
        (Some("server"), None) => Err(bad(
            "a server with a name of its own needs its index: index = 0 (the leader), 1 or 2".into(),
        )),
        (Some(r), Some(_)) => Err(bad(format!("index is for servers, not a {r}"))),
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
                return Err(ConfigError::BadPartyName(format!(
                    "{name} (the same party as {other}: listed twice, or its index meets another name's)"
                )));
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
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn key() -> String {
        Identity::generate(PartyId::ModelOwner, &mut rand::rng()).public_key_base64()
    }

    fn cluster(extra: &str) -> String {
        format!(
            "[job]\nfrac_bits = 12\n\
             [parties.server0]\naddress = \"127.0.0.1:7100\"\npublic_key = \"{}\"\n\
             [parties.server1]\naddress = \"localhost:7101\"\npublic_key = \"{}\"\n\
             [parties.model-owner]\npublic_key = \"{}\"\n\
             [parties.data-owner-0]\npublic_key = \"{}\"\n{extra}",
            key(),
            key(),
            key(),
            key()
        )
    }

    #[test]
    fn loads_a_valid_cluster_with_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, cluster("")).unwrap();
        let mut env = config::Map::new();
        env.insert("TESSERA__JOB__RING_BITS".into(), "64".into());
        env.insert(
            "TESSERA__PARTIES__SERVER1__ADDRESS".into(),
            "10.1.2.3:9000".into(),
        );
        // Off loopback without a certificate: allowed only when the file says so.
        env.insert("TESSERA__NETWORK__ALLOW_PLAINTEXT".into(), "true".into());
        let c = ClusterConfig::load_with_env(&path, Some(env)).unwrap();
        assert_eq!(c.num_servers(), 2);
        assert_eq!(c.job.frac_bits, 12);
        assert_eq!(c.job.ring_bits, 64);
        assert_eq!(
            c.party(PartyId::Server(1)).unwrap().address.as_deref(),
            Some("10.1.2.3:9000")
        );
        assert_eq!(c.data_owners(), vec![PartyId::DataOwner(0)]);
        assert!(c.network.allow_plaintext);
    }

    #[test]
    fn the_job_may_ask_for_differential_privacy() {
        let plain = ClusterConfig::from_toml(&cluster("")).unwrap();
        assert_eq!(plain.job.dp, None);
        // The table follows the parties in this file, so it names its full path.
        let with = cluster("[job.dp]\nnoise_multiplier = 1.1\nclip = 0.5\ndelta = 1e-6\n");
        let dp = ClusterConfig::from_toml(&with).unwrap().job.dp.unwrap();
        assert_eq!((dp.noise_multiplier, dp.clip, dp.delta), (1.1, 0.5, 1e-6));
        let typo = cluster("[job.dp]\nnoise = 1.1\nclip = 0.5\ndelta = 1e-6\n");
        assert!(matches!(
            ClusterConfig::from_toml(&typo),
            Err(ConfigError::Load { .. })
        ));
        // A sampling rate is refused, not ignored: no owner sampling happens, so none may be
        // credited (see `dp`).
        let sampled = cluster(
            "[job.dp]\nnoise_multiplier = 1.1\nclip = 0.5\ndelta = 1e-6\nsampling_rate = 0.01\n",
        );
        assert!(matches!(
            ClusterConfig::from_toml(&sampled),
            Err(ConfigError::Load { .. })
        ));
    }

    #[test]
    fn the_privacy_table_sets_the_clusters_minimum() {
        let none = ClusterConfig::from_toml(&cluster("")).unwrap();
        assert_eq!(none.privacy, PrivacyPolicy::default());
        let set = cluster("[privacy]\nmin_noise_multiplier = 1.5\nmax_delta = 1e-6\n");
        let policy = ClusterConfig::from_toml(&set).unwrap().privacy;
        assert_eq!(
            (policy.min_noise_multiplier, policy.max_delta),
            (Some(1.5), Some(1e-6))
        );
        let training = cluster("[training]\nmin_batch = 32\noptimizers = [\"sgd\"]\n");
        let training = ClusterConfig::from_toml(&training).unwrap().training;
        assert_eq!(
            (training.min_batch, training.optimizers),
            (32, Some(vec!["sgd".to_string()]))
        );
        let zero = cluster("[privacy]\nmin_noise_multiplier = 0\n");
        assert!(matches!(
            ClusterConfig::from_toml(&zero),
            Err(ConfigError::BadPrivacy(_))
        ));
    }

    #[test]
    fn a_server_off_loopback_needs_a_certificate() {
        let remote = cluster("").replace("localhost:7101", "10.1.2.3:7101");
        assert!(matches!(
            ClusterConfig::from_toml(&remote),
            Err(ConfigError::BadTls {
                party: PartyId::Server(1),
                ..
            })
        ));
        let cert = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
        let with_cert = remote.replace(
            "address = \"10.1.2.3:7101\"",
            &format!("address = \"10.1.2.3:7101\"\ntls_cert = \"{cert}\""),
        );
        let c = ClusterConfig::from_toml(&with_cert).unwrap();
        let endpoint = c.endpoint(PartyId::Server(1)).unwrap();
        assert_eq!(endpoint.address, "10.1.2.3:7101");
        assert!(
            endpoint
                .tls_cert
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(c.endpoint(PartyId::Server(0)).unwrap().tls_cert, None);
        let plaintext = format!("{remote}[network]\nallow_plaintext = true\n");
        assert!(ClusterConfig::from_toml(&plaintext).is_ok());
        let not_pem = remote.replace(
            "address = \"10.1.2.3:7101\"",
            "address = \"10.1.2.3:7101\"\ntls_cert = \"hello\"",
        );
        assert!(matches!(
            ClusterConfig::from_toml(&not_pem),
            Err(ConfigError::BadTls { .. })
        ));
        assert!(is_loopback("127.0.0.1:1") && is_loopback("[::1]:1") && is_loopback("localhost:1"));
        assert!(!is_loopback("10.0.0.1:1") && !is_loopback("example.org:1"));
    }

    /// Data owners may go by names of their own, given with their role; a role that is not
    /// the name's, or a missing one, is refused naming the party.
    #[test]
    fn data_owners_may_have_names_of_their_own_with_their_role() {
        let named = cluster(&format!(
            "[parties.hospital-a]\nrole = \"data-owner\"\npublic_key = \"{}\"\n",
            key()
        ));
        let c = ClusterConfig::from_toml(&named).unwrap();
        let hospital: PartyId = "hospital-a".parse().unwrap();
        assert!(c.data_owners().contains(&hospital), "{:?}", c.data_owners());
        assert!(c.data_owners().contains(&PartyId::DataOwner(0)));
        assert_eq!(hospital.to_string(), "hospital-a");

        let no_role = named.replace("role = \"data-owner\"\n", "");
        assert!(matches!(
            ClusterConfig::from_toml(&no_role),
            Err(ConfigError::BadRole { name, .. }) if name == "hospital-a"
        ));
        let wrong = named.replace("role = \"data-owner\"", "role = \"server\"");
        assert!(matches!(
            ClusterConfig::from_toml(&wrong),
            Err(ConfigError::BadRole { name, .. }) if name == "hospital-a"
        ));
        let server_as_owner = named.replace(
            "[parties.server0]\n",
            "[parties.server0]\nrole = \"data-owner\"\n",
        );
        assert!(matches!(
            ClusterConfig::from_toml(&server_as_owner),
            Err(ConfigError::BadRole { name, .. }) if name == "server0"
        ));
        let unknown = named.replace("role = \"data-owner\"", "role = \"auditor\"");
        let e = ClusterConfig::from_toml(&unknown).unwrap_err();
        assert!(e.to_string().contains("unknown role \"auditor\""), "{e}");
    }

    /// Servers and the model owner may go by names of their own too (issue 12, item 7): a
    /// server gives its role and index, and the file's names resolve to the parties. A missing
    /// or out-of-range index, an index on another role, a fixed name's wrong index, and two
    /// names for one party are refused naming the entry.
    #[test]
    fn servers_and_the_model_owner_may_have_names_of_their_own() {
        let named = cluster("")
            .replace(
                "[parties.server0]\n",
                "[parties.eu-leader]\nrole = \"server\"\nindex = 0\n",
            )
            .replace(
                "[parties.model-owner]\n",
                "[parties.acme-research]\nrole = \"model-owner\"\n",
            )
            + "[models.m]\nclients = [\"acme-research\", \"data-owner-0\"]\nmax_queries = 5\n";
        let c = ClusterConfig::from_toml(&named).unwrap();
        assert_eq!(c.resolve("eu-leader").unwrap(), PartyId::Server(0));
        assert_eq!(c.resolve("server0").unwrap(), PartyId::Server(0));
        assert_eq!(c.resolve("acme-research").unwrap(), PartyId::ModelOwner);
        assert_eq!(c.resolve("server1").unwrap(), PartyId::Server(1));
        assert_eq!(c.party(PartyId::Server(0)).unwrap().name, "eu-leader");
        assert_eq!(c.models["m"], [PartyId::ModelOwner, PartyId::DataOwner(0)]);
        assert_eq!(c.query_budgets["m"], 5);
        assert_eq!(c.num_servers(), 2);
        assert!(matches!(
            c.resolve("nobody-here"),
            Err(ConfigError::BadPartyName(_))
        ));

        let bad_role = |toml: &str, entry: &str, says: &str| {
            let e = ClusterConfig::from_toml(toml).unwrap_err();
            assert!(
                matches!(&e, ConfigError::BadRole { name, .. } if name == entry)
                    && e.to_string().contains(says),
                "{e}"
            );
        };
        bad_role(
            &named.replace("index = 0\n", ""),
            "eu-leader",
            "needs its index",
        );
        bad_role(
            &named.replace("index = 0", "index = 3"),
            "eu-leader",
            "0 (the leader), 1 and 2",
        );
        bad_role(
            &named.replace(
                "role = \"model-owner\"",
                "role = \"model-owner\"\nindex = 1",
            ),
            "acme-research",
            "index is for servers",
        );
        bad_role(
            &named.replace("[parties.server1]\n", "[parties.server1]\nindex = 0\n"),
            "server1",
            "not server0",
        );
        let twice = named.replace(
            "[parties.server1]\n",
            "[parties.eu-backup]\nrole = \"server\"\nindex = 0\n",
        );
        let e = ClusterConfig::from_toml(&twice).unwrap_err();
        assert!(
            matches!(&e, ConfigError::BadPartyName(n) if n.contains("eu-backup") && n.contains("eu-leader")),
            "{e}"
        );
    }

    #[test]
    fn reports_missing_party_bad_address_and_bad_key() {
        let no_s1 = cluster("").replace("[parties.server1]", "[parties.server2]");
        assert!(matches!(
            ClusterConfig::from_toml(&no_s1),
            Err(ConfigError::MissingParty(PartyId::Server(1)))
        ));
        let bad_addr = cluster("").replace("localhost:7101", "localhost");
        assert!(matches!(
            ClusterConfig::from_toml(&bad_addr),
            Err(ConfigError::BadAddress {
                party: PartyId::Server(1),
                ..
            })
        ));
        let bad_key = cluster("[parties.data-owner-1]\npublic_key = \"not-a-key\"\n");
        assert!(matches!(
            ClusterConfig::from_toml(&bad_key),
            Err(ConfigError::BadKey {
                party: PartyId::DataOwner(1),
                ..
            })
        ));
        let bad_name = cluster("[parties.server9]\npublic_key = \"x\"\n");
        assert!(matches!(
            ClusterConfig::from_toml(&bad_name),
            Err(ConfigError::BadPartyName(_))
        ));
        let bad_ring = cluster("").replace("frac_bits = 12", "ring_bits = 48");
        assert!(matches!(
            ClusterConfig::from_toml(&bad_ring),
            Err(ConfigError::BadJob { .. })
        ));
    }
}
