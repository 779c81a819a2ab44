//! Why a cluster file does not load: [`ConfigError`], and for an entry's role and index,
//! [`RoleProblem`].

use std::path::PathBuf;

use crate::identity::KeyError;
use crate::party::PartyId;

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
        reason: RoleProblem,
    },
    /// Two entries of the file are one party (listed twice, or a data owner's name whose index
    /// meets another's).
    #[error(
        "cluster config: {name} is the same party as {other} (listed twice, or its index meets another name's)"
    )]
    SameParty {
        /// The later entry.
        name: String,
        /// The entry listed first.
        other: String,
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

/// What is wrong with an entry's `role` or `index` ([`ConfigError::BadRole`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleProblem {
    /// A role that is none of the three.
    #[error("unknown role {0:?} (server, model-owner or data-owner)")]
    Unknown(String),
    /// A fixed name given another role than its own.
    #[error(
        "role {role:?}, but the name is that of a {has} (give a name of its own to use another role)"
    )]
    NotTheNamesRole {
        /// The role given.
        role: String,
        /// The name's own role.
        has: &'static str,
    },
    /// A fixed name given an index that is not its own.
    #[error(
        "index = {0}, but the name is not server{0} (an index is given with a server's name of its own)"
    )]
    NotTheNamesIndex(u8),
    /// A name of one's own without its role.
    #[error(
        "a name of one's own needs its role: role = \"data-owner\", role = \"model-owner\", or role = \"server\" with its index"
    )]
    NeedsRole,
    /// A server's index out of range.
    #[error("index = {0}, but servers are 0 (the leader), 1 and 2")]
    ServerIndexOutOfRange(u8),
    /// A server with a name of its own and no index.
    #[error("a server with a name of its own needs its index: index = 0 (the leader), 1 or 2")]
    ServerNeedsIndex,
    /// An index on another role than a server's.
    #[error("index is for servers, not a {0}")]
    IndexNotForRole(String),
}
