//! [`Upload`]: one upload driven as its envelopes arrive, the same for every transport (the gRPC
//! stream and the in-process call): the first envelope's header names the job, every envelope
//! is checked and staged as it comes, and the finish commits it (the helpers check their seeds).

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::api::UploadReceipt;
use tessera_common::net::Network;
use tessera_common::refusal::Incomplete;
use tessera_common::seal::Header;

use crate::{AggregatorService, ServiceError, UploadSession};

/// An upload in progress at the leader.
pub struct Upload<N: Network + 'static> {
    service: Arc<AggregatorService<N>>,
    session: Option<UploadSession>,
}

impl<N: Network + 'static> Upload<N> {
    /// An upload to `service` (the leader); nothing is checked before the first envelope.
    pub fn new(service: Arc<AggregatorService<N>>) -> Self {
        Upload {
            service,
            session: None,
        }
    }

    /// The uploading owner, once an envelope has named it.
    pub fn owner(&self) -> Option<PartyId> {
        self.session.as_ref().and_then(UploadSession::owner)
    }

    /// Checks and stages the next envelope; the first begins the upload for the job its
    /// (authenticated later, parsed now) header names.
    pub fn push(&mut self, envelope: &[u8]) -> Result<(), ServiceError> {
        let session = match self.session.as_mut() {
            Some(session) => session,
            None => {
                let job_id = Header::parse(envelope)
                    .map_err(|e| self.service.refuse_upload(e.into()))?
                    .job_id;
                self.session.insert(self.service.begin_upload(job_id)?)
            }
        };
        self.service.push_upload(session, envelope)
    }

    /// Commits the complete upload. An upload without envelopes is
    /// [`ServiceError::Malformed`].
    pub async fn finish(self) -> Result<UploadReceipt, ServiceError> {
        let session = self
            .session
            .ok_or_else(|| self.service.refuse_upload(Incomplete::NoEnvelopes.into()))?;
        self.service.finish_upload(session).await
    }
}
