//! Party identifiers.
//!
//! Every participant of a Tessera cluster has a stable name: the compute servers `server0`,
//! `server1`, `server2`, the `model-owner`, and the institutions `data-owner-0`, `data-owner-1`, ...
//! The name is what the cluster file, key files, logs and sealed envelopes use.
//!
//! A data owner may also go by a name of its own (`hospital-a`, `st-marys-2`): lowercase ASCII
//! letters, digits and `-`, starting with a letter, at most [`MAX_NAME_LEN`] bytes, and not one
//! of the fixed patterns. Its index is then derived from the name (the top bit set, then 31
//! bits of the name's SHA-256), so every party computes the same [`PartyId`] from the same name
//! with no table to agree on; two names of one cluster that meet on an index are refused when
//! the second is parsed. The names parsed in a process are remembered (at most [`MAX_NAMES`]),
//! so a named party is displayed by its name in logs, files and messages.
//!
//! The servers and the model owner may go by names of their own too (`eu-leader`,
//! `acme-research`), given in the cluster file with their role (and a server's index, which
//! says which server it is: 0 leads). Their [`PartyId`] stays the role's (`Server(0)`,
//! `ModelOwner`): those names bind to it in the process that loaded the cluster file
//! ([`name_role`], called by [`crate::config::ClusterConfig::register_names`]), and from then
//! on parse to it and display as it. Serialised forms ([`PartyId::canonical`], serde) keep the
//! fixed names, so a file or message written by one process reads the same in another.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest number of compute servers a cluster may have.
pub const MAX_SERVERS: u8 = 3;

/// One participant of a Tessera cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PartyId {
    /// A compute server (`server0` is the leader).
    Server(u8),
    /// The model owner: starts jobs and alone opens their results.
    ModelOwner,
    /// A data owner (an institution).
    DataOwner(u32),
}

/// A party name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown party name {0:?} (expected server0..server2, model-owner, data-owner-N, or a data owner's own name: lowercase letters, digits and '-', starting with a letter)"
)]
pub struct BadPartyName(pub String);

/// The longest name of a data owner's own.
pub const MAX_NAME_LEN: usize = 64;
/// Names remembered per process for display; past it, a named party shows as `data-owner-#<hex>`.
pub const MAX_NAMES: usize = 1 << 16;
/// Indices at or above this belong to data owners with a name of their own.
const NAMED: u32 = 1 << 31;

fn names() -> &'static RwLock<HashMap<u32, Box<str>>> {
    static NAMES: OnceLock<RwLock<HashMap<u32, Box<str>>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// Whether `s` is a well-formed name of a data owner's own (not checked against the fixed
/// patterns).
fn is_own_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Names of their own that the servers and the model owner go by in this process.
#[derive(Default)]
struct RoleNames {
    by_name: HashMap<Box<str>, PartyId>,
    by_party: HashMap<PartyId, Box<str>>,
}

fn role_names() -> &'static RwLock<RoleNames> {
    static ROLES: OnceLock<RwLock<RoleNames>> = OnceLock::new();
    ROLES.get_or_init(Default::default)
}

impl RoleNames {
    /// Binds `name` to `party`, replacing an earlier binding of either.
    fn bind(&mut self, name: &str, party: PartyId) {
        if let Some(old) = self.by_party.remove(&party) {
            self.by_name.remove(&old);
        }
        if let Some(old) = self.by_name.remove(name) {
            self.by_party.remove(&old);
        }
        self.by_name.insert(name.into(), party);
        self.by_party.insert(party, name.into());
    }
}

/// The party a role name (see [`name_role`]) is bound to.
fn role_named(name: &str) -> Option<PartyId> {
    role_names()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .by_name
        .get(name)
        .copied()
}

/// The name of its own a server or the model owner goes by in this process.
fn role_name(party: PartyId) -> Option<Box<str>> {
    role_names()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .by_party
        .get(&party)
        .cloned()
}

/// Binds `name` to a server or the model owner in this process: from now on the name parses to
/// `party` and `party` displays as the name (replacing an earlier binding of either). The name
/// must be a name of one's own (see the module docs), not a fixed one.
pub fn name_role(name: &str, party: PartyId) -> Result<(), BadPartyName> {
    if matches!(party, PartyId::DataOwner(_)) || !is_name_of_ones_own(name) {
        return Err(BadPartyName(name.to_owned()));
    }
    role_names()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .bind(name, party);
    Ok(())
}

/// Whether `s` starts like a fixed name (`server...`, `model-owner...`, `data-owner-...`): such
/// a string is a fixed name or a typo of one, never a name of one's own.
fn is_reserved(s: &str) -> bool {
    s.starts_with("server") || s.starts_with("model-owner") || s.starts_with("data-owner-")
}

/// Whether `s` is a name of one's own: well formed and not reserved by the fixed names.
pub fn is_name_of_ones_own(s: &str) -> bool {
    is_own_name(s) && !is_reserved(s)
}

/// The data owner named `name` (well formed), remembering the name for display; `None` if
/// another name already holds its index.
fn named_owner(name: &str) -> Option<PartyId> {
    let digest = Sha256::digest(name.as_bytes());
    let index = NAMED | (u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) & !NAMED);
    let known = names()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&index)
        .map(|n| &**n == name);
    match known {
        Some(true) => {}
        Some(false) => return None,
        None => {
            let mut table = names().write().unwrap_or_else(|p| p.into_inner());
            if table.len() < MAX_NAMES {
                let held = table.entry(index).or_insert_with(|| name.into());
                if &**held != name {
                    return None;
                }
            }
        }
    }
    Some(PartyId::DataOwner(index))
}

impl PartyId {
    /// Whether this party is one of the compute servers.
    pub fn is_server(self) -> bool {
        matches!(self, PartyId::Server(_))
    }

    /// Whether this is a data owner that goes by a name of its own (`hospital-a`).
    pub fn is_named(self) -> bool {
        matches!(self, PartyId::DataOwner(i) if i >= NAMED)
    }

    /// The server index, if this is a server.
    pub fn server_index(self) -> Option<usize> {
        match self {
            PartyId::Server(i) => Some(usize::from(i)),
            _ => None,
        }
    }

    /// Fixed-size binary form used inside sealed envelopes: a kind byte and a little-endian index.
    pub fn to_bytes(self) -> [u8; 5] {
        let (kind, index) = match self {
            PartyId::Server(i) => (0u8, u32::from(i)),
            PartyId::ModelOwner => (1, 0),
            PartyId::DataOwner(i) => (2, i),
        };
        let mut out = [0u8; 5];
        out[0] = kind;
        out[1..].copy_from_slice(&index.to_le_bytes());
        out
    }

    /// Inverse of [`PartyId::to_bytes`]; `None` for an encoding no party has.
    pub fn from_bytes(bytes: [u8; 5]) -> Option<Self> {
        let index = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        match bytes[0] {
            0 => u8::try_from(index)
                .ok()
                .filter(|i| *i < MAX_SERVERS)
                .map(PartyId::Server),
            1 if index == 0 => Some(PartyId::ModelOwner),
            2 => Some(PartyId::DataOwner(index)),
            _ => None,
        }
    }

    /// The fixed name (`server0`, `model-owner`), or a data owner's name.
    fn fmt_fixed(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartyId::Server(i) => write!(f, "server{i}"),
            PartyId::ModelOwner => write!(f, "model-owner"),
            PartyId::DataOwner(i) if *i >= NAMED => {
                match names().read().unwrap_or_else(|p| p.into_inner()).get(i) {
                    Some(name) => f.write_str(name),
                    None => write!(f, "data-owner-#{i:08x}"),
                }
            }
            PartyId::DataOwner(i) => write!(f, "data-owner-{i}"),
        }
    }

    /// The name every process reads the same, whatever names of their own the servers and the
    /// model owner go by in this one: `server0`, `model-owner`, `data-owner-3`, `hospital-a`.
    pub fn canonical(self) -> String {
        Canonical(self).to_string()
    }

    /// Parses one of the fixed names only (`server0`..`server2`, `model-owner`,
    /// `data-owner-N`); `None` for anything else.
    pub fn parse_fixed(s: &str) -> Option<PartyId> {
        if s == "model-owner" {
            return Some(PartyId::ModelOwner);
        }
        if let Some(rest) = s.strip_prefix("server") {
            return parse_index::<u8>(rest)
                .filter(|i| *i < MAX_SERVERS)
                .map(PartyId::Server);
        }
        s.strip_prefix("data-owner-")
            .and_then(parse_index)
            .filter(|i| *i < NAMED)
            .map(PartyId::DataOwner)
    }

    /// The data owner that goes by `name`, a name of one's own (see the module docs), whatever
    /// this process has bound the name to.
    pub fn named_data_owner(name: &str) -> Result<PartyId, BadPartyName> {
        if is_name_of_ones_own(name) {
            named_owner(name).ok_or_else(|| BadPartyName(name.to_owned()))
        } else {
            Err(BadPartyName(name.to_owned()))
        }
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !matches!(self, PartyId::DataOwner(_))
            && let Some(name) = role_name(*self)
        {
            return f.write_str(&name);
        }
        self.fmt_fixed(f)
    }
}

/// [`PartyId::canonical`] through `Display`.
struct Canonical(PartyId);

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_fixed(f)
    }
}

impl FromStr for PartyId {
    type Err = BadPartyName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartyName(s.to_owned());
        if let Some(party) = PartyId::parse_fixed(s) {
            return Ok(party);
        }
        if let Some(party) = role_named(s) {
            return Ok(party);
        }
        if is_reserved(s) {
            return Err(bad());
        }
        // A name of one's own not bound to a server or the model owner is a data owner's.
        if is_own_name(s) {
            return named_owner(s).ok_or_else(bad);
        }
        Err(bad())
    }
}

/// Parses a decimal index with no sign, no leading zeros (except "0") and no spaces.
fn parse_index<T: FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl TryFrom<String> for PartyId {
    type Error = BadPartyName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PartyId> for String {
    fn from(p: PartyId) -> String {
        p.canonical()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            PartyId::Server(0),
            PartyId::Server(2),
            PartyId::ModelOwner,
            PartyId::DataOwner(0),
            PartyId::DataOwner(417),
        ] {
            assert_eq!(p.to_string().parse::<PartyId>(), Ok(p));
            assert_eq!(PartyId::from_bytes(p.to_bytes()), Some(p));
        }
    }

    /// A data owner's own name parses to the same party in every process (its index comes
    /// from the name), displays as itself, survives the wire, and keeps clear of the fixed
    /// names' indices.
    #[test]
    fn a_data_owner_may_go_by_its_own_name() {
        let a: PartyId = "hospital-a".parse().unwrap();
        assert!(a.is_named() && !a.is_server());
        assert!(matches!(a, PartyId::DataOwner(i) if i >= NAMED));
        assert_eq!(a.to_string(), "hospital-a");
        assert_eq!("hospital-a".parse::<PartyId>(), Ok(a));
        assert_eq!(PartyId::from_bytes(a.to_bytes()), Some(a));
        let b: PartyId = "st-marys-2".parse().unwrap();
        assert_ne!(a, b);
        assert!(!PartyId::DataOwner(3).is_named());
        // The fixed pattern may not reach into the named indices.
        assert_eq!(
            "data-owner-2147483648".parse::<PartyId>(),
            Err(BadPartyName("data-owner-2147483648".into()))
        );
        assert!("data-owner-2147483647".parse::<PartyId>().is_ok());
    }

    /// Role names bind one to one: binding a party again drops its old name, and binding a
    /// name again moves it. (On a private table: the process's own is shared by every test.)
    #[test]
    fn role_names_bind_one_name_to_one_party() {
        let mut t = RoleNames::default();
        t.bind("eu-leader", PartyId::Server(0));
        t.bind("acme", PartyId::ModelOwner);
        t.bind("eu-main", PartyId::Server(0));
        assert_eq!(t.by_name.get("eu-leader"), None);
        assert_eq!(t.by_name.get("eu-main"), Some(&PartyId::Server(0)));
        t.bind("acme", PartyId::Server(1));
        assert_eq!(t.by_party.get(&PartyId::ModelOwner), None);
        assert_eq!(
            t.by_party.get(&PartyId::Server(1)).map(|n| &**n),
            Some("acme")
        );
        assert_eq!((t.by_name.len(), t.by_party.len()), (2, 2));
        // Only servers and the model owner, and only names of one's own, bind.
        for (name, party) in [
            ("server1", PartyId::Server(0)),
            ("x-ray", PartyId::DataOwner(1)),
            ("Bad Name", PartyId::ModelOwner),
        ] {
            assert_eq!(name_role(name, party), Err(BadPartyName(name.into())));
        }
        // Serialised forms keep the fixed names.
        assert_eq!(PartyId::Server(2).canonical(), "server2");
        assert_eq!(
            PartyId::parse_fixed("data-owner-7"),
            Some(PartyId::DataOwner(7))
        );
        assert_eq!(PartyId::parse_fixed("hospital-a"), None);
    }

    #[test]
    fn bad_names_are_rejected() {
        for s in [
            "server3",
            "server",
            "server01",
            "data-owner-",
            "data-owner--1",
            "model_owner",
            "",
            "Server0",
            "Hospital-a",
            "1hospital",
            "hospital a",
            "hospital_a",
            "-hospital",
            "model-owner-2",
            &"h".repeat(MAX_NAME_LEN + 1),
        ] {
            assert_eq!(
                s.parse::<PartyId>(),
                Err(BadPartyName(s.to_string())),
                "{s:?}"
            );
        }
        assert_eq!(PartyId::from_bytes([0, 3, 0, 0, 0]), None);
        assert_eq!(PartyId::from_bytes([9, 0, 0, 0, 0]), None);
    }
}
