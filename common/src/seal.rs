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

use std::collections::{HashMap, HashSet};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use rand::Rng;
use sha2::Sha256;
use x25519_dalek::PublicKey;
use zeroize::Zeroizing;

use crate::identity::Identity;
use crate::party::PartyId;

/// Envelope format version.
pub const VERSION: u8 = 1;
/// Bytes of the cleartext header.
pub const HEADER_LEN: usize = 36;
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const HKDF_SALT: &[u8] = b"tessera/v1/seal";
const HKDF_INFO: &[u8] = b"pair key";

/// Errors of sealing and opening. Each way an envelope can be wrong has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Too short to hold a header, nonce and tag, or a header field no party encodes.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// A format version this build does not speak.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// Addressed to another party.
    #[error("envelope is for {got}, not for {expected}")]
    WrongReceiver {
        /// This party.
        expected: PartyId,
        /// The header's receiver.
        got: PartyId,
    },
    /// From a different sender than expected.
    #[error("envelope is from {got}, expected {expected}")]
    WrongSender {
        /// The expected sender.
        expected: PartyId,
        /// The header's sender.
        got: PartyId,
    },
    /// Sealed for another purpose (an upload opened as a result, say).
    #[error("envelope purpose {got:?}, expected {expected:?}")]
    WrongPurpose {
        /// The expected purpose.
        expected: Purpose,
        /// The header's purpose byte.
        got: u8,
    },
    /// Sealed for another job.
    #[error("envelope is for job {got}, expected job {expected}")]
    WrongJob {
        /// The expected job.
        expected: u64,
        /// The header's job.
        got: u64,
    },
    /// Sealed for another round.
    #[error("envelope is for round {got}, expected round {expected}")]
    WrongRound {
        /// The expected round.
        expected: u64,
        /// The header's round.
        got: u64,
    },
    /// The sender has no registered public key.
    #[error("unknown sender {0}")]
    UnknownSender(PartyId),
    /// The peer's public key yields a non-contributory (low-order) shared secret.
    #[error("public key of {0} gives a non-contributory shared secret")]
    NonContributory(PartyId),
    /// The tag did not verify: the ciphertext, header or nonce was altered, or the key is wrong.
    #[error("envelope from {sender} failed authentication")]
    AuthenticationFailed {
        /// The header's (unauthenticated) sender.
        sender: PartyId,
    },
    /// An authentic envelope seen before.
    #[error("replayed envelope: {sender} job {job_id} round {round} chunk {chunk}")]
    Replayed {
        /// Sender.
        sender: PartyId,
        /// Job.
        job_id: u64,
        /// Round.
        round: u64,
        /// Chunk index.
        chunk: u64,
    },
}

/// What an envelope is for; part of the authenticated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Purpose {
    /// A data owner's share upload (explicit share for the leader, a seed for a helper).
    Upload = 1,
    /// A server's share of a result, for the output receiver.
    Result = 2,
    /// A frame on a server-to-server peer stream.
    Peer = 3,
    /// A control message (job start, status) from the model owner.
    Control = 4,
    /// An input shared into an MPC computation.
    Input = 5,
    /// A token that authenticates a read request (see [`crate::request`]).
    Request = 6,
}

impl Purpose {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Purpose::Upload,
            2 => Purpose::Result,
            3 => Purpose::Peer,
            4 => Purpose::Control,
            5 => Purpose::Input,
            6 => Purpose::Request,
            _ => return None,
        })
    }
}

/// Where a sealed message belongs: bound into the envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// What the message is for.
    pub purpose: Purpose,
    /// The job.
    pub job_id: u64,
    /// The round (or, on a peer stream, the frame sequence number).
    pub round: u64,
    /// Index of this chunk within the message.
    pub chunk: u64,
}

/// The cleartext, authenticated header of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message is for.
    pub purpose: Purpose,
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// Who sealed it.
    pub sender: PartyId,
    /// Who can open it.
    pub receiver: PartyId,
    /// Chunk index.
    pub chunk: u64,
}

impl Header {
    /// The 36-byte encoding (the AEAD's associated data).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.purpose as u8;
        out[2..10].copy_from_slice(&self.job_id.to_le_bytes());
        out[10..18].copy_from_slice(&self.round.to_le_bytes());
        out[18..23].copy_from_slice(&self.sender.to_bytes());
        out[23..28].copy_from_slice(&self.receiver.to_bytes());
        out[28..36].copy_from_slice(&self.chunk.to_le_bytes());
        out
    }

    /// Parses the header at the front of an envelope (without authenticating it).
    pub fn parse(envelope: &[u8]) -> Result<Self, SealError> {
        if envelope.len() < OVERHEAD {
            return Err(SealError::Malformed("shorter than header, nonce and tag"));
        }
        if envelope[0] != VERSION {
            return Err(SealError::UnsupportedVersion(envelope[0]));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&envelope[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let party_at = |i: usize| {
            let mut b = [0u8; 5];
            b.copy_from_slice(&envelope[i..i + 5]);
            PartyId::from_bytes(b).ok_or(SealError::Malformed("bad party encoding"))
        };
        let purpose =
            Purpose::from_byte(envelope[1]).ok_or(SealError::Malformed("unknown purpose byte"))?;
        Ok(Header {
            purpose,
            job_id: u64_at(2),
            round: u64_at(10),
            sender: party_at(18)?,
            receiver: party_at(23)?,
            chunk: u64_at(28),
        })
    }
}

/// What the receiver expects of an envelope before it authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Expected purpose.
    pub purpose: Purpose,
    /// Expected job.
    pub job_id: u64,
    /// Expected round.
    pub round: u64,
    /// Expected sender, if the receiver knows it (a peer stream does; an upload service does not).
    pub sender: Option<PartyId>,
}

/// An authenticated, decrypted envelope.
pub struct Opened {
    /// Its header.
    pub header: Header,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
}

/// Derives the pair key of `me` and `peer` (see the module docs); fails for a low-order peer key.
pub fn derive_pair_key(
    me: &Identity,
    peer: PartyId,
    peer_key: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let shared = me.secret().diffie_hellman(peer_key);
    if !shared.was_contributory() {
        return Err(SealError::NonContributory(peer));
    }
    let (lo, hi) = if me.public_key().as_bytes() <= peer_key.as_bytes() {
        (me.public_key().as_bytes(), peer_key.as_bytes())
    } else {
        (peer_key.as_bytes(), me.public_key().as_bytes())
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

/// Seals and opens envelopes between one party and the parties it knows.
pub struct Sealer {
    me: PartyId,
    keys: HashMap<PartyId, Result<ChaCha20Poly1305, SealError>>,
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
        let keys = peers
            .into_iter()
            .filter(|(p, _)| *p != identity.party())
            .map(|(p, pk)| {
                let cipher =
                    derive_pair_key(identity, p, pk).map(|k| ChaCha20Poly1305::new(&(*k).into()));
                (p, cipher)
            })
            .collect();
        Sealer {
            me: identity.party(),
            keys,
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
        match self.keys.get(&party) {
            None => Err(SealError::UnknownSender(party)),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(c)) => Ok(c),
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
        let header = Header {
            purpose: context.purpose,
            job_id: context.job_id,
            round: context.round,
            sender: self.me,
            receiver,
            chunk: context.chunk,
        }
        .to_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = &mut out[HEADER_LEN + NONCE_LEN..];
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(nonce), &header, body.into())
            .map_err(|_| SealError::Malformed("message too long to seal"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Checks an envelope's header against `expected`, then authenticates and decrypts it.
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
        let cipher = self.cipher(header.sender)?;
        let (aad, rest) = envelope.split_at(HEADER_LEN);
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
        Ok(Opened { header, plaintext })
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

/// Remembers which authentic envelopes were opened, to refuse a second copy.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashSet<(PartyId, Purpose, u64, u64, u64)>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an authenticated header; fails if the same header was recorded before.
    pub fn record(&mut self, header: &Header) -> Result<(), SealError> {
        let key = (
            header.sender,
            header.purpose,
            header.job_id,
            header.round,
            header.chunk,
        );
        if self.seen.insert(key) {
            Ok(())
        } else {
            Err(SealError::Replayed {
                sender: header.sender,
                job_id: header.job_id,
                round: header.round,
                chunk: header.chunk,
            })
        }
    }
}
