//! One data owner's upload in progress at the leader: chunk-by-chunk checks and staging.
//!
//! Nothing an upload session does touches the round: its explicit share is summed into its own
//! staging vector, and only [`crate::AggregatorService::finish_upload`] commits it. A
//! session dropped half-way (the owner died, the stream broke) leaves no trace.

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::refusal::{Incomplete, Malformed};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Header, Purpose, Sealer};
use tessera_common::upload::{SEED_ENVELOPE_BYTES, UploadPart, share_chunk_count};

use super::ServiceError;
use super::limits::{Reservation, StagingBudget, UploadSlot, UploadSlots};
use super::service::Job;

/// Opens an upload envelope, which must be forward secret.
pub(crate) fn open_forward_secret(
    sealer: &Sealer,
    envelope: &[u8],
    expected: &Expected,
) -> Result<tessera_common::seal::Opened, ServiceError> {
    let opened = sealer.open(envelope, expected)?;
    if opened.ephemeral {
        Ok(opened)
    } else {
        Err(ServiceError::NotForwardSecret)
    }
}

/// A checked, staged upload not yet committed.
pub struct UploadSession {
    pub(crate) job: Arc<Job>,
    pub(crate) owner: Option<PartyId>,
    pub(crate) round: u64,
    pub(crate) share_chunks: Option<u64>,
    pub(crate) staging: Option<RingVec>,
    pub(crate) next_chunk: u64,
    pub(crate) seed_envelopes: Vec<Vec<u8>>,
    pub(crate) headers: Vec<Header>,
    /// This owner's place for the round, claimed at the manifest.
    pub(crate) slot: Option<UploadSlot>,
    budget: Arc<StagingBudget>,
    reservation: Option<Reservation>,
    /// Envelope bytes pushed so far.
    bytes: u64,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UploadSession(job {}, {:?}, round {}, next chunk {})",
            self.job.settings.job_id, self.owner, self.round, self.next_chunk
        )
    }
}

impl UploadSession {
    pub(crate) fn new(job: Arc<Job>, budget: Arc<StagingBudget>) -> Self {
        UploadSession {
            slot: None,
            budget,
            reservation: None,
            job,
            owner: None,
            round: 0,
            share_chunks: None,
            staging: None,
            next_chunk: 0,
            seed_envelopes: Vec::new(),
            headers: Vec::new(),
            bytes: 0,
        }
    }

    /// Envelope bytes pushed so far (accepted or not).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The uploading data owner, once the first envelope named it.
    pub fn owner(&self) -> Option<PartyId> {
        self.owner
    }

    /// Checks and stages one envelope.
    pub(crate) fn push(&mut self, sealer: &Sealer, envelope: &[u8]) -> Result<(), ServiceError> {
        self.bytes += envelope.len() as u64;
        let settings = &self.job.settings;
        let header = Header::parse(envelope)?;
        // The first envelope fixes sender and round; every later one must match.
        let owner = *self.owner.get_or_insert(header.sender);
        if self.headers.is_empty() {
            self.round = header.round;
        }
        if !matches!(owner, PartyId::DataOwner(_)) {
            return Err(ServiceError::Forbidden {
                party: owner,
                action: "upload an update",
            });
        }
        let expected = Expected {
            purpose: Purpose::Upload,
            job_id: settings.job_id,
            round: self.round,
            sender: Some(owner),
        };
        if header.chunk < self.next_chunk {
            return Err(ServiceError::ReplayedChunk {
                chunk: header.chunk,
            });
        }
        if header.chunk > self.next_chunk {
            return Err(ServiceError::OutOfOrder {
                expected: self.next_chunk,
                got: header.chunk,
            });
        }
        let share_chunks = self.share_chunks;
        match (header.chunk, share_chunks) {
            (0, _) => {
                let opened = open_forward_secret(sealer, envelope, &expected)?;
                let part = UploadPart::from_bytes(&opened.plaintext).map_err(Malformed::Part)?;
                let UploadPart::Manifest {
                    chunks,
                    elements,
                    ring_bits,
                    frac_bits,
                } = part
                else {
                    return Err(Malformed::WrongPart {
                        chunk: 0,
                        expected: "the manifest",
                    }
                    .into());
                };
                let len = settings.update_len();
                let want_chunks = share_chunk_count(len, settings.ring_bits as usize / 8);
                let wrong = |what, got: u64, expected: u64| {
                    (got != expected).then_some(ServiceError::WrongLength {
                        what,
                        got,
                        expected,
                    })
                };
                if let Some(e) = wrong(
                    "manifest ring bits",
                    ring_bits.into(),
                    settings.ring_bits.into(),
                )
                .or_else(|| wrong("manifest elements", elements, len as u64))
                .or_else(|| wrong("manifest chunks", chunks.into(), want_chunks as u64))
                {
                    return Err(e);
                }
                if frac_bits != settings.frac_bits {
                    return Err(ServiceError::FixedPointMismatch {
                        got: frac_bits,
                        job: settings.frac_bits,
                    });
                }
                // One upload in flight per owner and round, none after its commit, and the
                // staging vector only within the server's budget.
                self.slot = Some(UploadSlots::claim(
                    &self.job.uploads,
                    settings.job_id,
                    owner,
                    self.round,
                )?);
                self.reservation = Some(
                    self.budget
                        .reserve(len * (settings.ring_bits as usize / 8))?,
                );
                self.share_chunks = Some(u64::from(chunks));
                self.staging = Some(RingVec::zeros(settings.ring_bits, len)?);
            }
            (c, Some(k)) if c <= k => {
                let opened = open_forward_secret(sealer, envelope, &expected)?;
                let part = UploadPart::from_bytes(&opened.plaintext).map_err(Malformed::Part)?;
                let UploadPart::Share { offset, bytes } = part else {
                    return Err(Malformed::WrongPart {
                        chunk: c,
                        expected: "a share piece",
                    }
                    .into());
                };
                let staging = self.staging.as_mut().ok_or(Incomplete::NoManifest)?;
                let per_chunk =
                    tessera_common::upload::UPLOAD_CHUNK_BYTES / staging.element_bytes();
                let want_offset = (c - 1) * per_chunk as u64;
                let want_len = per_chunk.min(staging.len() - want_offset as usize);
                if offset != want_offset {
                    return Err(ServiceError::WrongLength {
                        what: "share piece offset",
                        got: offset,
                        expected: want_offset,
                    });
                }
                if bytes.len() != want_len * staging.element_bytes() {
                    return Err(ServiceError::WrongLength {
                        what: "share piece bytes",
                        got: bytes.len() as u64,
                        expected: (want_len * staging.element_bytes()) as u64,
                    });
                }
                // In place and of whole elements, checked above: the sum cannot fail.
                staging.add_bytes_at(offset as usize, &bytes)?;
            }
            (c, Some(k)) if c < k + settings.num_servers as u64 => {
                // A helper's seed: check the header and the exact length only; the helper opens
                // it. Nothing longer is ever forwarded on the peer link.
                let helper = PartyId::Server((c - k) as u8);
                if envelope.len() != SEED_ENVELOPE_BYTES {
                    return Err(ServiceError::WrongLength {
                        what: "seed envelope bytes",
                        got: envelope.len() as u64,
                        expected: SEED_ENVELOPE_BYTES as u64,
                    });
                }
                if header.receiver != helper
                    || header.purpose != Purpose::Upload
                    || header.job_id != settings.job_id
                    || header.round != self.round
                    || header.sender != owner
                {
                    return Err(Malformed::SeedHeader {
                        chunk: c,
                        helper,
                        round: self.round,
                    }
                    .into());
                }
                self.seed_envelopes.push(envelope.to_vec());
            }
            (c, _) => {
                return Err(Malformed::UnexpectedChunk(c).into());
            }
        }
        self.headers.push(header);
        self.next_chunk += 1;
        Ok(())
    }

    /// Whether every part arrived.
    pub(crate) fn check_complete(&self) -> Result<(), ServiceError> {
        let helpers = self.job.settings.num_servers as u64 - 1;
        match self.share_chunks {
            Some(k) if self.next_chunk == 1 + k + helpers => Ok(()),
            Some(k) => Err(Incomplete::Envelopes {
                got: self.next_chunk,
                expected: 1 + k + helpers,
            }
            .into()),
            None => Err(Incomplete::NoManifest.into()),
        }
    }
}
