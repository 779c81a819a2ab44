//! The leader's side of the service: round openings, the weights owners fetch, uploads and
//! their commit, the round's close. The decisions are [`LeaderRounds`]'s; this file moves the
//! bytes and waits for the helpers.
//!
//! [`LeaderRounds`]: crate::round::LeaderRounds

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_common::PartyId;
use tessera_common::chunks::{Keys, Message, seal_chunks};
use tessera_common::net::{NetError, Network};
use tessera_common::notice::NoticeError;
use tessera_common::refusal::{Incomplete, Malformed};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Header, Purpose};
use tessera_common::upload::UPLOAD_CHUNK_BYTES;
use tracing::{info, warn};

use crate::limits::UploadSlots;
use crate::messages::{
    JobStatus, PeerReply, RoundAnnouncement, UploadReceipt, reply_tag, round_prefix,
};
use crate::robust::Component;
use crate::round::CloseStep;
use crate::service::{Job, now_unix_ms};
use crate::{AggregatorService, ServiceError, UploadSession};

/// How often one data owner may fetch one round's weights (the first fetch and retries).
pub const MAX_WEIGHT_FETCHES: usize = 4;

/// The model owner's opening of a round in progress: each weight chunk is authenticated as it
/// arrives, and no more than the job's parameters are accepted.
pub struct RoundOpening {
    job: Arc<Job>,
    expected: Expected,
    weights: Vec<u8>,
    next_chunk: u64,
}

impl std::fmt::Debug for RoundOpening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RoundOpening(job {}, round {}, {} chunks)",
            self.expected.job_id, self.expected.round, self.next_chunk
        )
    }
}

impl<N: Network + 'static> AggregatorService<N> {
    /// Opens round `round` with the global weights in the model owner's sealed envelopes (leader).
    pub async fn open_round(
        self: &Arc<Self>,
        envelopes: &[Vec<u8>],
    ) -> Result<JobStatus, ServiceError> {
        let first = envelopes.first().ok_or(Incomplete::NoEnvelopes)?;
        let mut opening = self.begin_open_round(first)?;
        for envelope in envelopes {
            self.push_weights(&mut opening, envelope)?;
        }
        self.finish_open_round(opening).await
    }

    /// Starts a round opening from its first envelope's header (leader; nothing is kept yet).
    pub fn begin_open_round(&self, first: &[u8]) -> Result<RoundOpening, ServiceError> {
        self.require_leader()?;
        let header = Header::parse(first)?;
        let job = self.job(header.job_id)?;
        Ok(RoundOpening {
            job,
            expected: Expected {
                purpose: Purpose::Control,
                job_id: header.job_id,
                round: header.round,
                sender: Some(PartyId::ModelOwner),
            },
            weights: Vec::new(),
            next_chunk: 0,
        })
    }

    /// Authenticates one weight chunk of a round opening and keeps its plaintext.
    pub fn push_weights(
        &self,
        opening: &mut RoundOpening,
        envelope: &[u8],
    ) -> Result<(), ServiceError> {
        let opened = self.sealer.open(envelope, &opening.expected)?;
        if opened.header.chunk != opening.next_chunk {
            return Err(ServiceError::OutOfOrder {
                expected: opening.next_chunk,
                got: opened.header.chunk,
            });
        }
        let want = opening.job.settings.num_params * 4;
        if opening.weights.len() + opened.plaintext.len() > want {
            return Err(ServiceError::WrongLength {
                what: "weight bytes",
                got: (opening.weights.len() + opened.plaintext.len()) as u64,
                expected: want as u64,
            });
        }
        opening.weights.extend_from_slice(&opened.plaintext);
        opening.next_chunk += 1;
        Ok(())
    }

    /// Opens the round once every weight chunk has arrived.
    pub async fn finish_open_round(
        self: &Arc<Self>,
        opening: RoundOpening,
    ) -> Result<JobStatus, ServiceError> {
        let RoundOpening {
            job,
            expected,
            weights,
            ..
        } = opening;
        if weights.len() != job.settings.num_params * 4 {
            return Err(ServiceError::WrongLength {
                what: "weight bytes",
                got: weights.len() as u64,
                expected: (job.settings.num_params * 4) as u64,
            });
        }
        if weights
            .chunks_exact(4)
            .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
        {
            return Err(Malformed::NonFiniteWeight.into());
        }
        let job_id = expected.job_id;
        let round = expected.round;
        let deadline = Duration::from_millis(job.settings.round_deadline_ms);
        {
            let mut st = job.state.lock().await;
            st.leader()
                .ok_or(ServiceError::NotLeader(self.me))?
                .open(round)?;
            st.helper_runs = self.helper_runs();
            st.deadline_unix_ms = now_unix_ms() + deadline.as_millis() as u64;
            st.weights = Arc::new(weights);
            UploadSlots::open(&job.uploads, round);
            job.notify(&st);
        }
        self.metrics.round_opened();
        info!(job = job_id, round, "round open");
        let service = Arc::clone(self);
        let deadline_job = Arc::clone(&job);
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            service.close_round(&deadline_job, round).await;
        });
        self.status(job_id).await
    }

    /// Waits up to `wait` for a round of `job_id` (0: the newest job) after `after_round` that
    /// accepts uploads.
    pub async fn fetch_round(
        &self,
        job_id: u64,
        after_round: u64,
        wait: Duration,
    ) -> Result<RoundAnnouncement, ServiceError> {
        self.require_leader()?;
        let job = if job_id == 0 {
            self.newest_job().ok_or(ServiceError::UnknownJob(0))?
        } else {
            self.job(job_id)?
        };
        let mut changed = job.changed.subscribe();
        let give_up = Instant::now() + wait;
        loop {
            {
                let st = job.state.lock().await;
                let (round, state) = (st.round(), st.round_state());
                let done = round >= job.settings.rounds && state.is_final();
                if (round > after_round && state.accepts_uploads())
                    || done
                    || Instant::now() >= give_up
                {
                    return Ok(RoundAnnouncement {
                        settings: job.settings.clone(),
                        round,
                        state,
                        deadline_unix_ms: st.deadline_unix_ms,
                        job_done: done,
                    });
                }
            }
            let _ = tokio::time::timeout_at(give_up.into(), changed.changed()).await;
        }
    }

    /// The job's settings (chunk 0) and the round's global weights (chunks 1..), sealed for
    /// `owner`.
    pub async fn fetch_weights(
        &self,
        owner: PartyId,
        job_id: u64,
        round: u64,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        self.require_leader()?;
        if !matches!(owner, PartyId::DataOwner(_)) || !self.sealer.knows(owner) {
            return Err(tessera_common::seal::SealError::UnknownSender(owner).into());
        }
        let job = self.job(job_id)?;
        let weights = {
            let mut st = job.state.lock().await;
            if st.round() != round || !st.round_state().accepts_uploads() {
                return Err(ServiceError::RoundClosed { job: job_id, round });
            }
            // Each answer is sealed for its owner and may sit unread in the transport's
            // buffers: an owner gets a round's weights a few times (retries), not without end
            // (security review 2, finding 12).
            let fetched = st.weight_fetches.entry(owner).or_insert((round, 0));
            if fetched.0 != round {
                *fetched = (round, 0);
            }
            if fetched.1 >= MAX_WEIGHT_FETCHES {
                return Err(ServiceError::Busy {
                    what: "fetches of one round's weights by one owner",
                    limit: MAX_WEIGHT_FETCHES,
                });
            }
            fetched.1 += 1;
            Arc::clone(&st.weights)
        };
        // Chunk 0 is the job's settings, sealed: the round announcement travels in clear, and an
        // owner trains and encodes only with settings the leader vouches for.
        let settings =
            serde_json::to_vec(&job.settings).map_err(|e| Malformed::Settings(e.to_string()))?;
        let message = Message {
            purpose: Purpose::Control,
            job_id,
            round,
        };
        let pieces = std::iter::once(settings.as_slice()).chain(weights.chunks(UPLOAD_CHUNK_BYTES));
        Ok(seal_chunks(
            &self.sealer,
            owner,
            message,
            Keys::Static,
            pieces,
        )?)
    }

    /// Records a data owner's notice that it cannot take part in a job (leader): the model
    /// owner sees the reason in the job's status. A second notice of the same owner replaces
    /// its first.
    pub async fn decline(&self, envelope: &[u8]) -> Result<(PartyId, u64), ServiceError> {
        self.require_leader()?;
        let (party, job_id, reason) = tessera_common::notice::open_decline(&self.sealer, envelope)
            .map_err(|e| match e {
                NoticeError::Seal(e) => ServiceError::Seal(e),
                NoticeError::NotDataOwner(party) => ServiceError::Forbidden {
                    party,
                    action: "decline a job",
                },
                other => Malformed::Notice(other).into(),
            })?;
        let job = self.job(job_id)?;
        // One entry per data owner of the cluster (only they can seal a notice), each reason at
        // most `MAX_REASON_BYTES`: bounded.
        let open_and_full = {
            let mut st = job.state.lock().await;
            let m = st.leader().ok_or(ServiceError::NotLeader(self.me))?;
            // Owners repeat their notice at every round (a restarted leader learns it again).
            if m.declined().get(&party) != Some(&reason) {
                warn!(me = %self.me, job = job_id, owner = %party, %reason, "a data owner declined the job");
            }
            m.decline(party, reason);
            let round = m.round();
            let open = m.state().accepts_uploads() && m.is_full();
            job.notify(&st);
            open.then_some(round)
        };
        // The decline may leave the open round with every other place taken.
        if let Some(round) = open_and_full {
            self.close_round(&job, round).await;
        }
        Ok((party, job_id))
    }

    /// Starts an upload for job `job_id` (leader).
    pub fn begin_upload(&self, job_id: u64) -> Result<UploadSession, ServiceError> {
        self.require_leader()?;
        let job = self
            .job(job_id)
            .inspect_err(|e| self.metrics.upload_rejected(e))?;
        Ok(UploadSession::new(job, Arc::clone(&self.staging)))
    }

    /// Checks and stages one envelope of an upload.
    pub fn push_upload(
        &self,
        session: &mut UploadSession,
        envelope: &[u8],
    ) -> Result<(), ServiceError> {
        session
            .push(&self.sealer, envelope)
            .inspect_err(|e| self.metrics.upload_rejected(e))
    }

    /// Commits a complete upload: the helpers check their seeds, then the share joins the round.
    ///
    /// Uploads overlap: the job's state is locked only to forward and to decide, never across
    /// the helpers' answers. The forward and its decision run in a task of their own, so an
    /// owner that hangs up half-way cannot leave a forward without its decision.
    pub async fn finish_upload(
        self: &Arc<Self>,
        session: UploadSession,
    ) -> Result<UploadReceipt, ServiceError> {
        let bytes = session.bytes();
        let service = Arc::clone(self);
        let receipt = match session.check_complete() {
            Ok(()) => tokio::spawn(async move { service.commit_upload(session).await })
                .await
                .map_err(|_| Incomplete::TaskEnded.into())
                .and_then(|r| r),
            Err(e) => Err(e),
        };
        match &receipt {
            Ok(_) => self.metrics.upload_accepted(bytes),
            Err(e) => self.metrics.upload_rejected(e),
        }
        receipt
    }

    async fn commit_upload(
        self: Arc<Self>,
        session: UploadSession,
    ) -> Result<UploadReceipt, ServiceError> {
        let owner = session.owner.ok_or(Incomplete::NoEnvelopes)?;
        let staging = session.staging.as_ref().ok_or(Incomplete::NoManifest)?;
        let job = Arc::clone(&session.job);
        let job_id = job.settings.job_id;
        let round = session.round;
        let (seq, sent, at_open) = {
            let mut st = job.state.lock().await;
            let at_open = st.helper_runs.clone();
            let restarted = self.restarted_helper(&at_open);
            let m = st.leader().ok_or(ServiceError::NotLeader(self.me))?;
            if let Some(helper) = restarted {
                m.helper_restarted(helper);
                job.notify(&st);
                warn!(job = job_id, round, %helper, "round failed: a helper restarted since it opened");
                return Err(ServiceError::Peer(NetError::Disconnected(helper)));
            }
            let seq = m.forward(round, owner, &session.seed_envelopes)?;
            (seq, self.send_outbox(&job, st).await, at_open)
        };
        let verdict = match sent {
            Ok(()) => self.collect_replies(job_id, round, seq, &at_open).await,
            Err(e) => Err(e),
        };
        // Under a robust rule the three servers check the upload once every helper holds it.
        let verdict = match (verdict, staging) {
            (Ok(()), RingVec::U64(share)) if job.settings.checks_uploads() => {
                let mine = Component::Vector(share.clone());
                self.run_check(&job, round, seq, mine).await
            }
            // Job settings with a robust rule in another ring are refused at the start.
            (Ok(()), staged) if job.settings.checks_uploads() => Err(ServiceError::WrongLength {
                what: "ring bits of a robust rule's share",
                got: 8 * staged.element_bytes() as u64,
                expected: 64,
            }),
            (verdict, _) => verdict,
        };
        let (decided, full, sent) = {
            let mut st = job.state.lock().await;
            let m = st.leader().ok_or(ServiceError::NotLeader(self.me))?;
            let decided = m.decide(seq, verdict, staging, &session.headers);
            if decided.is_err() {
                // Kept for the close (clip, trimmed-mean, median) only if it joined.
                job.kept
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(round, seq));
            }
            // A refusal by the rule takes a place too: the last one may fill the round.
            let full = m.is_full();
            if let (Ok(_), Some(slot)) = (&decided, &session.slot) {
                slot.commit();
            }
            job.notify(&st);
            (decided, full, self.send_outbox(&job, st).await)
        };
        if let Err(e) = sent {
            // A helper that missed the decision holds another contributor set: the close finds
            // it and fails the round.
            warn!(job = job_id, round, error = %e, "decision not delivered to every helper");
        }
        if full {
            // The upload that fills the round answers once the round is closed (the close only
            // waits for the other uploads' decisions, never for this one).
            self.close_round(&job, round).await;
        }
        match decided {
            Ok(()) => {
                info!(job = job_id, round, %owner, "upload committed");
                Ok(UploadReceipt {
                    job_id,
                    round,
                    chunks_accepted: session.next_chunk,
                })
            }
            Err(e) => {
                warn!(job = job_id, round, %owner, error = %e, "upload not committed");
                Err(e)
            }
        }
    }

    /// Each helper's run now, as the network tells it.
    fn helper_runs(&self) -> Vec<Option<u64>> {
        (1..self.num_servers)
            .map(|h| self.network.peer_run(PartyId::Server(h as u8)))
            .collect()
    }

    /// Whether `helper` is on another run than when the round opened (`at_open`, helpers
    /// `server1` on): it holds none of the round, and will answer nothing of it.
    fn restarted(&self, at_open: &[Option<u64>], helper: PartyId) -> bool {
        let then = helper
            .server_index()
            .and_then(|i| at_open.get(i.checked_sub(1)?).copied())
            .flatten();
        then.is_some() && then != self.network.peer_run(helper)
    }

    /// A helper on another run than when the round opened (`at_open`), if one.
    fn restarted_helper(&self, at_open: &[Option<u64>]) -> Option<PartyId> {
        (1..self.num_servers)
            .map(|h| PartyId::Server(h as u8))
            .find(|helper| self.restarted(at_open, *helper))
    }

    /// Every helper's answer to the leader's message `seq` of `round`: `Ok` if all said yes,
    /// else the last refusal or network failure (all are awaited, none left behind). A helper
    /// that restarted since the round opened (`at_open`) is not waited for: it is
    /// disconnected from the round, whose state its new process never had.
    async fn collect_replies(
        &self,
        job: u64,
        round: u64,
        seq: u64,
        at_open: &[Option<u64>],
    ) -> Result<(), ServiceError> {
        let mut verdict = Ok(());
        for h in 1..self.num_servers {
            let helper = PartyId::Server(h as u8);
            if self.restarted(at_open, helper) {
                verdict = Err(ServiceError::Peer(NetError::Disconnected(helper)));
                continue;
            }
            let answer = self
                .network
                .recv(helper, &reply_tag(job, round, seq))
                .await
                .map_err(ServiceError::from)
                .and_then(|bytes| {
                    PeerReply::from_bytes(&bytes).map_err(|e| {
                        Malformed::PeerReply {
                            from: helper,
                            what: e.0,
                        }
                        .into()
                    })
                });
            match answer {
                Ok(PeerReply::Ok) => {}
                Ok(PeerReply::Rejected(reason)) => {
                    verdict = Err(ServiceError::HelperRejected { helper, reason })
                }
                Err(e) => verdict = Err(e),
            }
        }
        verdict
    }

    /// Closes `round` if it still accepts uploads: once every upload in flight has its decision
    /// the helpers get the contributor set, then every server seals its result share (or the
    /// round fails).
    pub(crate) async fn close_round(&self, job: &Job, round: u64) {
        let job_id = job.settings.job_id;
        let mut changed = job.changed.subscribe();
        let step = {
            let mut st = job.state.lock().await;
            let Some(m) = st.leader() else { return };
            let step = m.close(round);
            job.notify(&st);
            if let Err(e) = self.send_outbox(job, st).await {
                warn!(job = job_id, round, error = %e, "close not delivered to every helper");
            }
            step
        };
        let seq = match step {
            CloseStep::NotOpen => return,
            CloseStep::Sent { seq, .. } => seq,
            CloseStep::Waiting(uploads) => {
                info!(
                    job = job_id,
                    round, uploads, "close waits for uploads in flight"
                );
                // Each upload in flight ends in a decision (its task cannot be cancelled and its
                // waits are bounded by the network's), and the last one sends the close.
                loop {
                    {
                        let mut st = job.state.lock().await;
                        if let Some((seq, _)) = st.leader().and_then(|m| m.close_sent()) {
                            break seq;
                        }
                    }
                    let _ = changed.changed().await;
                }
            }
        };
        let at_open = job.state.lock().await.helper_runs.clone();
        let failure = self
            .collect_replies(job_id, round, seq, &at_open)
            .await
            .err()
            .map(|e| e.to_string());
        // Replies that came after their wait gave up will never be asked for.
        self.network.forget(&round_prefix(job_id, round));
        let mut st = job.state.lock().await;
        let Some(m) = st.leader() else { return };
        if let Some(mut sum) = m.finish_close(failure) {
            if job.settings.rule.keeps_uploads() {
                // The helpers agreed on the contributors; the three sum or sort their kept
                // uploads (the state is not locked across it: the round stays `Closed`).
                drop(st);
                let sorted = self.close_kept(job, round, seq, None).await;
                st = job.state.lock().await;
                match sorted {
                    Ok(share) => sum = share,
                    Err(e) => {
                        if let Some(m) = st.leader() {
                            m.sealed(Err(e));
                        }
                        self.metrics.round_closed(st.round_state());
                        job.notify(&st);
                        return;
                    }
                }
            }
            let sealed = self.seal_result(&job.settings, round, &sum);
            let ok = sealed.as_ref().map(|_| ()).map_err(Clone::clone);
            if let Ok(sealed) = sealed {
                st.results.insert(round, sealed);
            }
            if let Some(m) = st.leader() {
                m.sealed(ok);
            }
        }
        // Whatever was kept for the round (a failed close leaves it) goes with it.
        job.drop_kept_through(round);
        info!(job = job_id, round, state = ?st.round_state(), "round closed");
        self.metrics.round_closed(st.round_state());
        job.notify(&st);
    }
}
