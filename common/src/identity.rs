//! Party identities: X25519 static key pairs and their key files.
//!
//! Every party has one long-term X25519 key pair. Public keys are listed in the cluster file
//! (base64, standard alphabet with padding); the secret stays in the party's key file.
//!
//! Key file format (UTF-8 text, written with mode 0600):
//!
//! ```text
//! # Tessera identity key. Keep this file secret.
//! party = server0
//! secret = <base64 of the 32-byte X25519 secret>
//! public = <base64 of the 32-byte public key>
//! ```
//!
//! Loading checks that `public` is the key `secret` derives, so a corrupted file is caught early.
//! The secret is zeroized on drop (x25519-dalek's `zeroize` feature) and never printed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
pub use x25519_dalek::PublicKey;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::party::{BadPartyName, PartyId};

/// Errors reading or writing keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the key file is malformed or a field is missing.
    #[error("key file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The party name in the file is not a party name.
    #[error(transparent)]
    Party(#[from] BadPartyName),
    /// A public key that is not 32 bytes of base64.
    #[error("bad public key {0:?}: expected 32 bytes in base64")]
    BadPublicKey(String),
    /// The file's public key is not the one its secret derives.
    #[error("key file {0}: public key does not match the secret key")]
    Mismatch(PathBuf),
    /// Refusing to overwrite an existing key file.
    #[error("key file {0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// A secret key file others may read or write (as ssh, it is refused: the key may be
    /// known to them).
    #[error(
        "key file {} has mode {mode:04o}: group or others may read or write it; a secret key must be private (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Refuses a secret key file (an identity key, a TLS key) that the group or others may read or
/// write, as ssh refuses an unprotected private key; on systems without Unix permissions it
/// accepts every file.
pub fn check_private(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Encodes a public key as base64.
pub fn public_key_to_base64(key: &PublicKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a base64 public key.
pub fn public_key_from_base64(s: &str) -> Result<PublicKey, KeyError> {
    let bytes = B64
        .decode(s.trim())
        .map_err(|_| KeyError::BadPublicKey(s.to_owned()))?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::BadPublicKey(s.to_owned()))?;
    Ok(PublicKey::from(raw))
}

/// Writes a key file for the party called `name` (as the cluster file lists it) with mode
/// 0600; refuses to overwrite an existing file. `keygen` writes a name of one's own this way
/// before any cluster file says which role it has.
pub fn write_key_file(path: &Path, name: &str, secret: &StaticSecret) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_owned())
        } else {
            io(e)
        }
    })?;
    let encoded = Zeroizing::new(B64.encode(secret.as_bytes()));
    let text = Zeroizing::new(format!(
        "# Tessera identity key. Keep this file secret.\nparty = {name}\nsecret = {}\npublic = {}\n",
        encoded.as_str(),
        public_key_to_base64(&PublicKey::from(secret))
    ));
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A party's long-term X25519 key pair.
pub struct Identity {
    party: PartyId,
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identity({}, public {}, secret <redacted>)",
            self.party,
            public_key_to_base64(&self.public)
        )
    }
}

impl Identity {
    /// A fresh random key pair for `party`.
    pub fn generate<G: rand::CryptoRng + ?Sized>(party: PartyId, rng: &mut G) -> Self {
        Self::from_secret(party, StaticSecret::random_from_rng(rng))
    }

    /// The key pair of a given secret.
    pub fn from_secret(party: PartyId, secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        Identity {
            party,
            secret,
            public,
        }
    }

    /// The party this identity belongs to.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key in base64.
    pub fn public_key_base64(&self) -> String {
        public_key_to_base64(&self.public)
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// Writes the key file with mode 0600; refuses to overwrite an existing file.
    pub fn write_key_file(&self, path: &Path) -> Result<(), KeyError> {
        write_key_file(path, &self.party.to_string(), &self.secret)
    }

    /// Reads a key file written by [`Identity::write_key_file`]; refuses one the group or
    /// others may read or write ([`check_private`]).
    pub fn read_key_file(path: &Path) -> Result<Self, KeyError> {
        check_private(path)?;
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Io {
                    path: path.to_owned(),
                    source,
                })?,
            );
        let format = |reason: &str| KeyError::Format {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let (mut party, mut secret, mut public) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format("expected `name = value` lines"))?;
            let slot = match key.trim() {
                "party" => &mut party,
                "secret" => &mut secret,
                "public" => &mut public,
                other => return Err(format(&format!("unknown field {other:?}"))),
            };
            *slot = Some(value.trim());
        }
        let party: PartyId = party.ok_or_else(|| format("missing `party`"))?.parse()?;
        let secret_bytes = Zeroizing::new(
            B64.decode(secret.ok_or_else(|| format("missing `secret`"))?)
                .map_err(|_| format("`secret` is not base64"))?,
        );
        let raw: [u8; 32] = secret_bytes
            .as_slice()
            .try_into()
            .map_err(|_| format("`secret` is not 32 bytes"))?;
        let identity = Identity::from_secret(party, StaticSecret::from(raw));
        let claimed = public_key_from_base64(public.ok_or_else(|| format("missing `public`"))?)?;
        if claimed.as_bytes() != identity.public.as_bytes() {
            return Err(KeyError::Mismatch(path.to_owned()));
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server1.key");
        let id = Identity::generate(PartyId::Server(1), &mut rand::rng());
        id.write_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = Identity::read_key_file(&path).unwrap();
        assert_eq!(back.party(), PartyId::Server(1));
        assert_eq!(back.public_key(), id.public_key());
        assert!(matches!(id.write_key_file(&path), Err(KeyError::Exists(_))));
        assert!(!format!("{back:?}").contains(&B64.encode(back.secret().as_bytes())));
    }

    /// A key file the group or others may read or write is refused with its path, mode and
    /// the fix; made private again, it reads.
    #[cfg(unix)]
    #[test]
    fn an_exposed_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server0.key");
        let id = Identity::generate(PartyId::Server(0), &mut rand::rng());
        id.write_key_file(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Identity::read_key_file(&path).unwrap_err();
            assert!(
                matches!(&err, KeyError::Exposed { mode: m, .. } if *m == mode),
                "{mode:o}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("chmod 600") && text.contains("server0.key"),
                "{text}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Identity::read_key_file(&path).is_ok(), "{mode:o}");
        }
    }

    /// Writes a key file's text with mode 0600 (as keygen does), so only its content is tested.
    fn write_private(path: &Path, text: String) {
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn corrupted_key_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let other = Identity::generate(PartyId::ModelOwner, &mut rand::rng());
        let id = Identity::generate(PartyId::ModelOwner, &mut rand::rng());
        let secret = B64.encode(id.secret().as_bytes());
        write_private(
            &path,
            format!(
                "party = model-owner\nsecret = {secret}\npublic = {}\n",
                other.public_key_base64()
            ),
        );
        assert!(matches!(
            Identity::read_key_file(&path),
            Err(KeyError::Mismatch(_))
        ));
        write_private(&path, "party = model-owner\n".into());
        assert!(matches!(
            Identity::read_key_file(&path),
            Err(KeyError::Format { .. })
        ));
        write_private(&path, format!("party = No Body\nsecret = {secret}\n"));
        assert!(matches!(
            Identity::read_key_file(&path),
            Err(KeyError::Party(_))
        ));
        assert!(matches!(
            public_key_from_base64("AAAA"),
            Err(KeyError::BadPublicKey(_))
        ));
    }
}
