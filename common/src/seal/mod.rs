//! Sealing: the authenticated, encrypted envelope every message between two parties travels in.
//!
//! Key agreement: for parties A and B with static X25519 keys, the pair key is
//! `HKDF-SHA256(salt = "tessera/v1/seal", ikm = X25519(a, B), info = "pair key" || min(pkA, pkB) ||
//! max(pkA, pkB))`, 32 bytes, the same in both directions (the header binds the direction). A
//! shared secret that is not contributory (the peer's public key has low order) is rejected.
//!
//! Envelope, all integers little-endian:
//!
//! ```text
//! header (36 bytes) = version u8 (1) | purpose u8 | job_id u64 | round u64
//!                     | sender (5 bytes) | receiver (5 bytes) | chunk u64
//! envelope          = header | nonce (12 random bytes) | ChaCha20-Poly1305(pair key, nonce,
//!                     aad = header, plaintext) (ciphertext || 16-byte tag)
//! ```
//!
//! The header is readable but authenticated: opening checks it against what the receiver expects
//! (receiver, purpose, job, round, sender) and reports a mismatch with its own error, then
//! authenticates. A header edited to pass those checks fails authentication, because it is the
//! AEAD's associated data. Replays of an authentic envelope are caught by [`ReplayGuard`], which
//! remembers `(sender, purpose, job, round, chunk)`.
//!
//! Nonces are random; with 96-bit nonces the collision bound stays below 2^-32 for up to 2^32
//! messages per pair key, far above any job's message count.
//!
//! **Forward-secret envelopes** (version 2, [`Sealer::seal_ephemeral_for`]; uploads use them):
//! the sender draws a fresh X25519 key `e` per envelope, and the key is
//! `HKDF-SHA256(salt = "tessera/v1/seal-ephemeral", ikm = X25519(e, R) || X25519(s, R),
//! info = "ephemeral key" || E || S || R)` for the sender's static key pair `(s, S)`, the
//! receiver's static public key `R` and `E = e·G` (HPKE's authenticated mode, RFC 9180 §5.1.3,
//! with DHKEM's two shared secrets). `E` travels after the header and is authenticated with it:
//!
//! ```text
//! envelope v2 = header (version 2) | E (32 bytes) | nonce (12) | ChaCha20-Poly1305(key, nonce,
//!               aad = header || E, plaintext)
//! ```
//!
//! Only the sender's static key can make `X25519(s, R)`, so the envelope is authenticated as
//! before; and since `e` is forgotten once the envelope is sealed, a sender's static key stolen
//! later no longer opens what it sent (the receiver's static key still does: that would need an
//! interactive handshake).

use std::collections::HashMap;
use std::sync::OnceLock;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use rand::Rng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

mod error;
mod format;
mod header;
mod purpose;
mod replay;

pub use error::SealError;
pub use format::{
    EPHEMERAL_OVERHEAD, HEADER_LEN, NONCE_LEN, OVERHEAD, TAG_LEN, VERSION, VERSION_EPHEMERAL,
};
pub use header::{Context, Expected, Header, Opened};
pub use purpose::Purpose;
pub use replay::ReplayGuard;

use crate::identity::Identity;
use crate::party::PartyId;

const HKDF_SALT: &[u8] = b"tessera/v1/seal";
const HKDF_INFO: &[u8] = b"pair key";
const EPHEMERAL_SALT: &[u8] = b"tessera/v1/seal-ephemeral";
const EPHEMERAL_INFO: &[u8] = b"ephemeral key";

/// Derives the pair key of `me` and `peer` (see the module docs); fails for a low-order peer key.
pub fn derive_pair_key(
    me: &Identity,
    peer: PartyId,
    peer_key: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    derive_pair_key_from(me.secret(), me.public_key(), peer, peer_key)
}

/// [`derive_pair_key`] from this party's key pair.
fn derive_pair_key_from(
    secret: &StaticSecret,
    public: &PublicKey,
    peer: PartyId,
    peer_key: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let shared = secret.diffie_hellman(peer_key);
    if !shared.was_contributory() {
        return Err(SealError::NonContributory(peer));
    }
    let (lo, hi) = if public.as_bytes() <= peer_key.as_bytes() {
        (public.as_bytes(), peer_key.as_bytes())
    } else {
        (peer_key.as_bytes(), public.as_bytes())
    };
    let mut info = Vec::with_capacity(HKDF_INFO.len() + 64);
    info.extend_from_slice(HKDF_INFO);
    info.extend_from_slice(lo);
    info.extend_from_slice(hi);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(HKDF_SALT), shared.as_bytes())
        .expand(&info, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(key)
}

/// The key of a forward-secret envelope from the two shared secrets and the three public keys
/// `[E, sender, receiver]`; fails if either secret is not contributory (a low-order key).
fn ephemeral_key(
    peer: PartyId,
    ephemeral_shared: &x25519_dalek::SharedSecret,
    static_shared: &x25519_dalek::SharedSecret,
    keys: [&PublicKey; 3],
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    if !ephemeral_shared.was_contributory() || !static_shared.was_contributory() {
        return Err(SealError::NonContributory(peer));
    }
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(ephemeral_shared.as_bytes());
    ikm[32..].copy_from_slice(static_shared.as_bytes());
    let mut info = Vec::with_capacity(EPHEMERAL_INFO.len() + 96);
    info.extend_from_slice(EPHEMERAL_INFO);
    for k in keys {
        info.extend_from_slice(k.as_bytes());
    }
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(EPHEMERAL_SALT), ikm.as_ref())
        .expand(&info, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(key)
}

/// `aad || nonce || ciphertext || tag`: `plaintext` encrypted under `cipher` with a random nonce,
/// `aad` (the header, and a forward-secret envelope's ephemeral key) authenticated.
fn seal_under(
    cipher: &ChaCha20Poly1305,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(aad.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(aad);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body = &mut out[aad.len() + NONCE_LEN..];
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), aad, body.into())
        .map_err(|_| SealError::Malformed("message too long to seal"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The sender's side of a forward-secret envelope's key: from the ephemeral secret, the sender's
/// static secret and the receiver's public key (see the module docs).
pub fn derive_ephemeral_key(
    ephemeral: &StaticSecret,
    sender: &StaticSecret,
    receiver: PartyId,
    receiver_key: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    ephemeral_key(
        receiver,
        &ephemeral.diffie_hellman(receiver_key),
        &sender.diffie_hellman(receiver_key),
        [
            &PublicKey::from(ephemeral),
            &PublicKey::from(sender),
            receiver_key,
        ],
    )
}

/// Seals and opens envelopes between one party and the parties it knows.
pub struct Sealer {
    me: PartyId,
    /// Each peer's pair key, derived on first use.
    keys: HashMap<PartyId, OnceLock<Result<ChaCha20Poly1305, SealError>>>,
    /// This party's static key pair and the peers' public keys, for forward-secret envelopes.
    secret: StaticSecret,
    public: PublicKey,
    peers: HashMap<PartyId, PublicKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({}, {} peers)", self.me, self.keys.len())
    }
}

impl Sealer {
    /// A sealer for `identity` knowing the given peers' public keys. A peer whose key is low-order
    /// is kept, and every seal or open with it fails with [`SealError::NonContributory`].
    pub fn new<'a>(
        identity: &Identity,
        peers: impl IntoIterator<Item = (PartyId, &'a PublicKey)>,
    ) -> Self {
        let peers: HashMap<PartyId, PublicKey> = peers
            .into_iter()
            .filter(|(p, _)| *p != identity.party())
            .map(|(p, pk)| (p, *pk))
            .collect();
        // Pair keys are derived on first use: a server of 10,000 data owners pays one X25519
        // exchange per owner that writes to it, not per owner in the cluster file.
        let keys = peers.keys().map(|p| (*p, OnceLock::new())).collect();
        Sealer {
            me: identity.party(),
            keys,
            secret: identity.secret().clone(),
            public: *identity.public_key(),
            peers,
        }
    }

    /// The party this sealer seals as.
    pub fn me(&self) -> PartyId {
        self.me
    }

    /// Whether `party` has a registered key.
    pub fn knows(&self, party: PartyId) -> bool {
        self.keys.contains_key(&party)
    }

    fn cipher(&self, party: PartyId) -> Result<&ChaCha20Poly1305, SealError> {
        let (Some(cell), Some(public)) = (self.keys.get(&party), self.peers.get(&party)) else {
            return Err(SealError::UnknownSender(party));
        };
        let derived = cell.get_or_init(|| {
            derive_pair_key_from(&self.secret, &self.public, party, public)
                .map(|k| ChaCha20Poly1305::new(&(*k).into()))
        });
        match derived {
            Err(e) => Err(e.clone()),
            Ok(c) => Ok(c),
        }
    }

    /// Seals `plaintext` for `receiver` under `context`.
    pub fn seal_for(
        &self,
        receiver: PartyId,
        context: &Context,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let cipher = self.cipher(receiver)?;
        let header = self.header(receiver, context, VERSION);
        seal_under(cipher, &header, plaintext)
    }

    /// Seals `plaintext` for `receiver` under `context` in a forward-secret envelope (version 2:
    /// a fresh ephemeral key; see the module docs).
    pub fn seal_ephemeral_for(
        &self,
        receiver: PartyId,
        context: &Context,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.cipher(receiver)?;
        let receiver_key = self
            .peers
            .get(&receiver)
            .ok_or(SealError::UnknownSender(receiver))?;
        let ephemeral = StaticSecret::random_from_rng(&mut rand::rng());
        let ephemeral_public = PublicKey::from(&ephemeral);
        let key = derive_ephemeral_key(&ephemeral, &self.secret, receiver, receiver_key)?;
        drop(ephemeral);
        let mut aad = self.header(receiver, context, VERSION_EPHEMERAL).to_vec();
        aad.extend_from_slice(ephemeral_public.as_bytes());
        seal_under(&ChaCha20Poly1305::new(&(*key).into()), &aad, plaintext)
    }

    /// The header of an envelope from this party, with format `version`.
    fn header(&self, receiver: PartyId, context: &Context, version: u8) -> [u8; HEADER_LEN] {
        let mut header = Header {
            purpose: context.purpose,
            job_id: context.job_id,
            round: context.round,
            sender: self.me,
            receiver,
            chunk: context.chunk,
        }
        .to_bytes();
        header[0] = version;
        header
    }

    /// Checks an envelope's header against `expected`, then authenticates and decrypts it
    /// (either version).
    pub fn open(&self, envelope: &[u8], expected: &Expected) -> Result<Opened, SealError> {
        let header = Header::parse(envelope)?;
        if header.receiver != self.me {
            return Err(SealError::WrongReceiver {
                expected: self.me,
                got: header.receiver,
            });
        }
        if header.purpose != expected.purpose {
            return Err(SealError::WrongPurpose {
                expected: expected.purpose,
                got: header.purpose as u8,
            });
        }
        if header.job_id != expected.job_id {
            return Err(SealError::WrongJob {
                expected: expected.job_id,
                got: header.job_id,
            });
        }
        if header.round != expected.round {
            return Err(SealError::WrongRound {
                expected: expected.round,
                got: header.round,
            });
        }
        if let Some(sender) = expected.sender
            && header.sender != sender
        {
            return Err(SealError::WrongSender {
                expected: sender,
                got: header.sender,
            });
        }
        let pair = self.cipher(header.sender)?;
        let ephemeral = envelope[0] == VERSION_EPHEMERAL;
        let (aad_len, derived) = if ephemeral {
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&envelope[HEADER_LEN..HEADER_LEN + 32]);
            let ephemeral_public = PublicKey::from(raw);
            let sender_key = self
                .peers
                .get(&header.sender)
                .ok_or(SealError::UnknownSender(header.sender))?;
            let key = ephemeral_key(
                header.sender,
                &self.secret.diffie_hellman(&ephemeral_public),
                &self.secret.diffie_hellman(sender_key),
                [&ephemeral_public, sender_key, &self.public],
            )?;
            (HEADER_LEN + 32, Some(ChaCha20Poly1305::new(&(*key).into())))
        } else {
            (HEADER_LEN, None)
        };
        let cipher = derived.as_ref().unwrap_or(pair);
        let (aad, rest) = envelope.split_at(aad_len);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Malformed("nonce length"))?;
        let tag = Tag::try_from(tag).map_err(|_| SealError::Malformed("tag length"))?;
        cipher
            .decrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into(), &tag)
            .map_err(|_| SealError::AuthenticationFailed {
                sender: header.sender,
            })?;
        Ok(Opened {
            header,
            plaintext,
            ephemeral,
        })
    }

    /// [`Sealer::open`], then records the envelope in `guard`, failing if it was seen before.
    pub fn open_once(
        &self,
        envelope: &[u8],
        expected: &Expected,
        guard: &mut ReplayGuard,
    ) -> Result<Opened, SealError> {
        let opened = self.open(envelope, expected)?;
        guard.record(&opened.header)?;
        Ok(opened)
    }
}
