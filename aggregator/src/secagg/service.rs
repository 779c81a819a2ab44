//! The aggregation service of one server: jobs, rounds, uploads, helpers, results.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_common::PartyId;
use tessera_common::job::JobSettings;
use tessera_common::net::{NetError, Network, Tag};
use tessera_common::request::{RequestKind, now_secs, open_request};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Context, Expected, Header, Purpose, ReplayGuard, Sealer};
use tessera_common::upload::{UPLOAD_CHUNK_BYTES, UploadPart};
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use super::limits::{Limits, StagingBudget, UploadSlots};
use super::messages::{
    JobStatus, PeerMsg, PeerReply, RoundAnnouncement, RoundMsg, RoundState, UploadReceipt,
};
use super::session::open_forward_secret;
use super::{ServiceError, UploadSession};

/// One job on one server.
pub struct Job {
    pub(crate) settings: JobSettings,
    state: Mutex<JobState>,
    changed: watch::Sender<(u64, RoundState)>,
    /// Uploads in flight and committed in the current round (leader).
    pub(crate) uploads: Arc<StdMutex<UploadSlots>>,
    /// Held while the leader exchanges messages with the helpers about the job (an upload's
    /// forward and decision, a round's close), so they never interleave; the job's state is
    /// never locked across a network wait.
    peer_turn: Mutex<()>,
}

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

struct JobState {
    round: u64,
    state: RoundState,
    deadline_unix_ms: u64,
    /// Global weights of the current round, f32 little-endian (leader).
    weights: Arc<Vec<u8>>,
    /// Running sum of this server's shares of the committed updates.
    acc: Option<RingVec>,
    contributors: Vec<PartyId>,
    guard: ReplayGuard,
    /// Next leader-to-helper message number of the current round.
    peer_seq: u64,
    /// Sealed result shares by round.
    results: HashMap<u64, Vec<Vec<u8>>>,
    message: String,
}

impl Job {
    async fn notify(&self, st: &JobState) {
        self.changed.send_replace((st.round, st.state));
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The tag of every leader-to-helper message of a job (they arrive in order).
fn job_tag(job: u64) -> Tag {
    Tag::new(format!("secagg/{job}/leader"))
}

fn reply_tag(job: u64, round: u64, seq: u64) -> Tag {
    Tag::new(format!("secagg/{job}/{round}/{seq}/reply"))
}

/// The aggregation service of one server.
pub struct AggregatorService<N: Network + 'static> {
    me: PartyId,
    num_servers: usize,
    sealer: Sealer,
    network: Arc<N>,
    jobs: StdMutex<HashMap<u64, Arc<Job>>>,
    limits: Limits,
    staging: Arc<StagingBudget>,
}

impl<N: Network + 'static> std::fmt::Debug for AggregatorService<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AggregatorService({})", self.me)
    }
}

impl<N: Network + 'static> AggregatorService<N> {
    /// A service for the server `sealer.me()` among `num_servers`, talking to the other servers
    /// over `network`.
    pub fn new(sealer: Sealer, num_servers: usize, network: Arc<N>) -> Arc<Self> {
        Self::with_limits(sealer, num_servers, network, Limits::default())
    }

    /// [`AggregatorService::new`] with the given bounds on what requests may hold.
    pub fn with_limits(
        sealer: Sealer,
        num_servers: usize,
        network: Arc<N>,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(AggregatorService {
            me: sealer.me(),
            num_servers,
            sealer,
            network,
            jobs: StdMutex::new(HashMap::new()),
            staging: StagingBudget::new(limits.staging_bytes),
            limits,
        })
    }

    /// This server.
    pub fn me(&self) -> PartyId {
        self.me
    }

    /// The bounds this server enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Messages from the other servers received and not (yet) asked for.
    pub fn queued_messages(&self) -> usize {
        self.network.queued()
    }

    /// Bytes staged by the uploads in flight now.
    pub fn staged_bytes(&self) -> usize {
        self.staging.used()
    }

    /// The caller a read request's token names, if it authorises `kind` on `job_id` / `round`
    /// now (see [`tessera_common::request`]).
    pub fn authenticate(
        &self,
        token: &[u8],
        kind: RequestKind,
        job_id: u64,
        round: u64,
    ) -> Result<PartyId, ServiceError> {
        Ok(open_request(
            &self.sealer,
            token,
            kind,
            job_id,
            round,
            now_secs(),
        )?)
    }

    /// Whether this server is the leader (`server0`), which alone takes uploads and round
    /// openings.
    pub fn is_leader(&self) -> bool {
        self.me == PartyId::Server(0)
    }

    fn job(&self, job_id: u64) -> Result<Arc<Job>, ServiceError> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job_id)
            .cloned()
            .ok_or(ServiceError::UnknownJob(job_id))
    }

    /// The job with the largest id (what a data owner that names no job takes part in).
    fn newest_job(&self) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.keys().max().and_then(|k| jobs.get(k)).cloned()
    }

    fn require_leader(&self) -> Result<(), ServiceError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ServiceError::NotLeader(self.me))
        }
    }

    /// Starts a job from the model owner's sealed control envelope (idempotent for equal settings).
    pub fn start_job(self: &Arc<Self>, envelope: &[u8]) -> Result<JobStatus, ServiceError> {
        let header = Header::parse(envelope)?;
        let opened = self.sealer.open(
            envelope,
            &Expected {
                purpose: Purpose::Control,
                job_id: header.job_id,
                round: 0,
                sender: Some(PartyId::ModelOwner),
            },
        )?;
        let settings: JobSettings = serde_json::from_slice(&opened.plaintext)
            .map_err(|e| ServiceError::Malformed(format!("job settings: {e}")))?;
        settings.validate()?;
        if settings.job_id != header.job_id {
            return Err(ServiceError::Malformed(
                "job id differs from the envelope's".into(),
            ));
        }
        if settings.num_servers != self.num_servers {
            return Err(ServiceError::Malformed(format!(
                "job wants {} servers, this cluster has {}",
                settings.num_servers, self.num_servers
            )));
        }
        let job = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(existing) = jobs.get(&settings.job_id) {
                if existing.settings != settings {
                    return Err(ServiceError::JobConflict(settings.job_id));
                }
                return Ok(self.status_of(
                    existing.settings.job_id,
                    0,
                    RoundState::Idle,
                    Vec::new(),
                    String::new(),
                ));
            }
            let job = Arc::new(Job {
                settings: settings.clone(),
                state: Mutex::new(JobState {
                    round: 0,
                    state: RoundState::Idle,
                    deadline_unix_ms: 0,
                    weights: Arc::new(Vec::new()),
                    acc: None,
                    contributors: Vec::new(),
                    guard: ReplayGuard::new(),
                    peer_seq: 0,
                    results: HashMap::new(),
                    message: String::new(),
                }),
                changed: watch::Sender::new((0, RoundState::Idle)),
                uploads: Arc::default(),
                peer_turn: Mutex::new(()),
            });
            jobs.insert(settings.job_id, Arc::clone(&job));
            job
        };
        info!(me = %self.me, job = settings.job_id, params = settings.num_params, "job started");
        if !self.is_leader() {
            let service = Arc::clone(self);
            tokio::spawn(async move { service.helper_loop(job).await });
        }
        Ok(self.status_of(
            settings.job_id,
            0,
            RoundState::Idle,
            Vec::new(),
            String::new(),
        ))
    }

    fn status_of(
        &self,
        job_id: u64,
        round: u64,
        state: RoundState,
        contributors: Vec<PartyId>,
        message: String,
    ) -> JobStatus {
        JobStatus {
            job_id,
            round,
            state,
            contributors,
            message,
        }
    }

    /// The status of a job.
    pub async fn status(&self, job_id: u64) -> Result<JobStatus, ServiceError> {
        let job = self.job(job_id)?;
        let st = job.state.lock().await;
        Ok(self.status_of(
            job_id,
            st.round,
            st.state,
            st.contributors.clone(),
            st.message.clone(),
        ))
    }

    /// Opens round `round` with the global weights in the model owner's sealed envelopes (leader).
    pub async fn open_round(
        self: &Arc<Self>,
        envelopes: &[Vec<u8>],
    ) -> Result<JobStatus, ServiceError> {
        let first = envelopes
            .first()
            .ok_or_else(|| ServiceError::Incomplete("no envelopes".into()))?;
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
            return Err(ServiceError::WrongLength(format!(
                "more than {want} weight bytes for {} parameters",
                opening.job.settings.num_params
            )));
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
            return Err(ServiceError::WrongLength(format!(
                "{} weight bytes for {} parameters",
                weights.len(),
                job.settings.num_params
            )));
        }
        if weights
            .chunks_exact(4)
            .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
        {
            return Err(ServiceError::Malformed("non-finite weight".into()));
        }
        let job_id = expected.job_id;
        let round = expected.round;
        let deadline = Duration::from_millis(job.settings.round_deadline_ms);
        {
            let mut st = job.state.lock().await;
            if round != st.round + 1 || !st.state.is_final() {
                return Err(ServiceError::BadRoundOrder {
                    requested: round,
                    reason: format!("round {} is {:?}", st.round, st.state),
                });
            }
            if round > job.settings.rounds {
                return Err(ServiceError::BadRoundOrder {
                    requested: round,
                    reason: format!("the job has {} rounds", job.settings.rounds),
                });
            }
            st.round = round;
            st.state = RoundState::Open;
            st.deadline_unix_ms = now_unix_ms() + deadline.as_millis() as u64;
            st.weights = Arc::new(weights);
            st.acc = Some(
                RingVec::zeros(job.settings.ring_bits, job.settings.update_len())
                    .map_err(|e| ServiceError::Malformed(e.to_string()))?,
            );
            st.contributors.clear();
            // Envelopes of earlier rounds fail the round check; the guard only needs this one's.
            st.guard = ReplayGuard::new();
            st.peer_seq = 0;
            st.message.clear();
            UploadSlots::open(&job.uploads, round);
            job.notify(&st).await;
        }
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
                let done = st.round >= job.settings.rounds && st.state.is_final();
                if (st.round > after_round && st.state.accepts_uploads())
                    || done
                    || Instant::now() >= give_up
                {
                    return Ok(RoundAnnouncement {
                        settings: job.settings.clone(),
                        round: st.round,
                        state: st.state,
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
            let st = job.state.lock().await;
            if st.round != round || !st.state.accepts_uploads() {
                return Err(ServiceError::RoundClosed { job: job_id, round });
            }
            Arc::clone(&st.weights)
        };
        // Chunk 0 is the job's settings, sealed: the round announcement travels in clear, and an
        // owner trains and encodes only with settings the leader vouches for.
        let settings = serde_json::to_vec(&job.settings)
            .map_err(|e| ServiceError::Malformed(format!("job settings: {e}")))?;
        std::iter::once(settings.as_slice())
            .chain(weights.chunks(UPLOAD_CHUNK_BYTES))
            .enumerate()
            .map(|(i, piece)| {
                let ctx = Context {
                    purpose: Purpose::Control,
                    job_id,
                    round,
                    chunk: i as u64,
                };
                self.sealer
                    .seal_for(owner, &ctx, piece)
                    .map_err(ServiceError::from)
            })
            .collect()
    }

    /// Starts an upload for job `job_id` (leader).
    pub fn begin_upload(&self, job_id: u64) -> Result<UploadSession, ServiceError> {
        self.require_leader()?;
        Ok(UploadSession::new(
            self.job(job_id)?,
            Arc::clone(&self.staging),
        ))
    }

    /// Checks and stages one envelope of an upload.
    pub fn push_upload(
        &self,
        session: &mut UploadSession,
        envelope: &[u8],
    ) -> Result<(), ServiceError> {
        session.push(&self.sealer, envelope)
    }

    /// Commits a complete upload: the helpers check their seeds, then the share joins the round.
    ///
    /// Every path that forwarded the seeds ends in a decision sent to every helper reached (a
    /// drop on any failure), and the job's state is locked only to check and to commit.
    pub async fn finish_upload(
        self: &Arc<Self>,
        session: UploadSession,
    ) -> Result<UploadReceipt, ServiceError> {
        session.check_complete()?;
        let owner = session
            .owner
            .ok_or_else(|| ServiceError::Incomplete("empty upload".into()))?;
        let job = Arc::clone(&session.job);
        let settings = &job.settings;
        let turn = job.peer_turn.lock().await;
        let (round, seq) = {
            let mut st = job.state.lock().await;
            Self::check_accepts(settings, &st, session.round, owner)?;
            let seq = st.peer_seq;
            st.peer_seq += 2;
            (st.round, seq)
        };
        let verdict = self
            .forward_seeds(settings.job_id, round, seq, owner, &session.seed_envelopes)
            .await;
        let decided = self
            .tell_helpers(
                settings.job_id,
                round,
                seq + 1,
                &PeerMsg::Decide {
                    commit: verdict.is_ok(),
                },
            )
            .await;
        if let Err(e) = verdict.and(decided) {
            warn!(job = settings.job_id, round, %owner, error = %e, "upload not committed");
            return Err(e);
        }
        let staging = session
            .staging
            .as_ref()
            .ok_or_else(|| ServiceError::Incomplete("no share".into()))?;
        let full = {
            let mut st = job.state.lock().await;
            // Nothing can have closed the round: closing takes the same turn.
            st.acc
                .as_mut()
                .ok_or(ServiceError::RoundClosed {
                    job: settings.job_id,
                    round,
                })?
                .add_assign(staging)
                .map_err(|e| ServiceError::WrongLength(e.to_string()))?;
            for h in &session.headers {
                st.guard.record(h)?;
            }
            st.contributors.push(owner);
            if let Some(slot) = &session.slot {
                slot.commit();
            }
            st.state = RoundState::Collecting;
            info!(job = settings.job_id, round, %owner, contributors = st.contributors.len(), "upload committed");
            job.notify(&st).await;
            st.contributors.len() >= settings.max_clients
        };
        drop(turn);
        if full {
            self.close_round(&job, round).await;
        }
        Ok(UploadReceipt {
            job_id: settings.job_id,
            round,
            chunks_accepted: session.next_chunk,
        })
    }

    /// Whether `owner` may commit to `round` now.
    fn check_accepts(
        settings: &JobSettings,
        st: &JobState,
        round: u64,
        owner: PartyId,
    ) -> Result<(), ServiceError> {
        if st.round != round || !st.state.accepts_uploads() {
            return Err(ServiceError::RoundClosed {
                job: settings.job_id,
                round,
            });
        }
        if st.contributors.contains(&owner) {
            return Err(ServiceError::DuplicateUpload(owner));
        }
        if st.contributors.len() >= settings.max_clients {
            return Err(ServiceError::RoundFull(st.contributors.len()));
        }
        Ok(())
    }

    /// Forwards each helper its seed envelope and collects the answers: `Ok` if every helper
    /// staged its seed.
    async fn forward_seeds(
        &self,
        job: u64,
        round: u64,
        seq: u64,
        owner: PartyId,
        envelopes: &[Vec<u8>],
    ) -> Result<(), ServiceError> {
        for (i, envelope) in envelopes.iter().enumerate() {
            let msg = PeerMsg::Forward {
                owner,
                envelope: envelope.clone(),
            };
            self.send_peer(PartyId::Server(i as u8 + 1), job, round, seq, &msg)
                .await?;
        }
        let mut verdict = Ok(());
        for i in 0..envelopes.len() {
            let helper = PartyId::Server(i as u8 + 1);
            match self.recv_reply(helper, job, round, seq).await? {
                PeerReply::Ok => {}
                PeerReply::Rejected(reason) => {
                    verdict = Err(ServiceError::HelperRejected { helper, reason })
                }
            }
        }
        verdict
    }

    /// Sends `msg` to every helper; the first failure, after trying them all.
    async fn tell_helpers(
        &self,
        job: u64,
        round: u64,
        seq: u64,
        msg: &PeerMsg,
    ) -> Result<(), ServiceError> {
        let mut result = Ok(());
        for h in 1..self.num_servers {
            if let Err(e) = self
                .send_peer(PartyId::Server(h as u8), job, round, seq, msg)
                .await
            {
                result = result.and(Err(e));
            }
        }
        result
    }

    /// Closes `round` if it still accepts uploads: tells the helpers the contributor set, then
    /// seals this server's result share (or fails the round).
    async fn close_round(&self, job: &Job, round: u64) {
        let settings = &job.settings;
        let _turn = job.peer_turn.lock().await;
        let (contributors, seq) = {
            let mut st = job.state.lock().await;
            if st.round != round || !st.state.accepts_uploads() {
                return;
            }
            st.state = RoundState::Closed;
            job.notify(&st).await;
            let seq = st.peer_seq;
            st.peer_seq += 1;
            (st.contributors.clone(), seq)
        };
        let abort = contributors.len() < settings.min_clients;
        let msg = PeerMsg::Close {
            contributors: contributors.clone(),
            abort,
        };
        let mut failure = self
            .tell_helpers(settings.job_id, round, seq, &msg)
            .await
            .err()
            .map(|e| e.to_string());
        for h in 1..self.num_servers {
            let helper = PartyId::Server(h as u8);
            match self.recv_reply(helper, settings.job_id, round, seq).await {
                Ok(PeerReply::Ok) => {}
                Ok(PeerReply::Rejected(r)) => failure = Some(format!("{helper}: {r}")),
                Err(e) => failure = Some(format!("{helper}: {e}")),
            }
        }
        // Replies that came after their wait gave up will never be asked for.
        self.network
            .forget(&format!("secagg/{}/{round}/", settings.job_id));
        let mut st = job.state.lock().await;
        if abort {
            st.state = RoundState::Failed;
            st.message = format!(
                "round {round} closed with {} contributors, fewer than min_clients {}",
                contributors.len(),
                settings.min_clients
            );
            st.acc = None;
        } else if let Some(f) = failure {
            st.state = RoundState::Failed;
            st.message = format!("round {round} failed at a helper: {f}");
            st.acc = None;
        } else {
            match self.seal_result(settings, round, st.acc.take()) {
                Ok(sealed) => {
                    st.results.insert(round, sealed);
                    st.state = RoundState::Aggregated;
                }
                Err(e) => {
                    st.state = RoundState::Failed;
                    st.message = e.to_string();
                }
            }
        }
        info!(job = settings.job_id, round, state = ?st.state, contributors = st.contributors.len(), "round closed");
        job.notify(&st).await;
    }

    fn seal_result(
        &self,
        settings: &JobSettings,
        round: u64,
        acc: Option<RingVec>,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let acc = acc.ok_or_else(|| ServiceError::Incomplete("no accumulator".into()))?;
        let per_chunk = UPLOAD_CHUNK_BYTES / acc.element_bytes();
        (0..acc.len().div_ceil(per_chunk))
            .map(|i| {
                let range = i * per_chunk..((i + 1) * per_chunk).min(acc.len());
                let ctx = Context {
                    purpose: Purpose::Result,
                    job_id: settings.job_id,
                    round,
                    chunk: i as u64,
                };
                self.sealer
                    .seal_for(PartyId::ModelOwner, &ctx, &acc.to_le_bytes(range))
                    .map_err(ServiceError::from)
            })
            .collect()
    }

    /// This server's sealed share of round `round`'s result.
    pub async fn fetch_result(
        &self,
        job_id: u64,
        round: u64,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let job = self.job(job_id)?;
        let st = job.state.lock().await;
        st.results
            .get(&round)
            .cloned()
            .ok_or_else(|| ServiceError::NotReady {
                job: job_id,
                round,
                state: if st.round == round {
                    format!("{:?} {}", st.state, st.message)
                } else {
                    format!("current round is {}", st.round)
                },
            })
    }

    async fn send_peer(
        &self,
        to: PartyId,
        job: u64,
        round: u64,
        seq: u64,
        msg: &PeerMsg,
    ) -> Result<(), ServiceError> {
        let bytes = RoundMsg {
            round,
            seq,
            msg: msg.clone(),
        }
        .to_bytes();
        Ok(self.network.send(to, &job_tag(job), bytes).await?)
    }

    async fn recv_reply(
        &self,
        from: PartyId,
        job: u64,
        round: u64,
        seq: u64,
    ) -> Result<PeerReply, ServiceError> {
        let bytes = self.network.recv(from, &reply_tag(job, round, seq)).await?;
        PeerReply::from_bytes(&bytes)
            .map_err(|e| ServiceError::Malformed(format!("reply from {from}: {e}")))
    }

    /// A helper's side of a job: answers the leader's messages in order, following the leader
    /// by round (a message of a later round ends whatever was left of an earlier one), until the
    /// last round closes or the leader is gone.
    async fn helper_loop(self: Arc<Self>, job: Arc<Job>) {
        let settings = &job.settings;
        let leader = PartyId::Server(0);
        // The staged expansion of the last forward: its round and sequence number.
        let mut pending: Option<(u64, u64, (PartyId, RingVec, Header))> = None;
        loop {
            let bytes = match self.network.recv(leader, &job_tag(settings.job_id)).await {
                Ok(bytes) => bytes,
                Err(NetError::Timeout { .. }) => continue,
                Err(e) => {
                    let mut st = job.state.lock().await;
                    st.state = RoundState::Failed;
                    st.message = format!("leader unreachable: {e}");
                    job.notify(&st).await;
                    warn!(me = %self.me, job = settings.job_id, error = %e, "helper stops: leader unreachable");
                    return;
                }
            };
            let RoundMsg { round, seq, msg } = match RoundMsg::from_bytes(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    warn!(me = %self.me, job = settings.job_id, error = %e, "leader message dropped");
                    continue;
                }
            };
            let mut st = job.state.lock().await;
            if round < st.round || round == 0 || round > settings.rounds {
                drop(st);
                warn!(me = %self.me, job = settings.job_id, round, "message for a round not current dropped");
                if !matches!(msg, PeerMsg::Decide { .. }) {
                    let refusal = PeerReply::Rejected(format!("round {round} is not current"));
                    self.reply(settings.job_id, round, seq, refusal).await;
                }
                continue;
            }
            if round > st.round {
                if !st.state.is_final() && st.round > 0 {
                    st.state = RoundState::Failed;
                    st.message = format!("the leader moved on to round {round}");
                    job.notify(&st).await;
                }
                st.round = round;
                st.state = RoundState::Open;
                st.acc = RingVec::zeros(settings.ring_bits, settings.update_len()).ok();
                st.contributors.clear();
                st.guard = ReplayGuard::new();
                st.message.clear();
                pending = None;
            }
            let (reply, last) = match msg {
                PeerMsg::Forward { owner, envelope } => {
                    pending = None;
                    let reply = match self.stage_seed(settings, &st, round, owner, &envelope) {
                        Ok(staged) => {
                            pending = Some((round, seq, staged));
                            PeerReply::Ok
                        }
                        Err(e) => {
                            warn!(me = %self.me, %owner, error = %e, "seed rejected");
                            PeerReply::Rejected(e.to_string())
                        }
                    };
                    (Some(reply), false)
                }
                PeerMsg::Decide { commit } => {
                    match pending.take() {
                        Some((r, s, (owner, expansion, header)))
                            if commit && r == round && s + 1 == seq =>
                        {
                            let added = st.acc.as_mut().map(|acc| acc.add_assign(&expansion));
                            if matches!(added, Some(Ok(()))) && st.guard.record(&header).is_ok() {
                                st.contributors.push(owner);
                                st.state = RoundState::Collecting;
                            }
                        }
                        _ => {}
                    }
                    (None, false)
                }
                PeerMsg::Close {
                    contributors,
                    abort,
                } => {
                    pending = None;
                    let reply = if abort {
                        st.state = RoundState::Failed;
                        st.acc = None;
                        PeerReply::Ok
                    } else if contributors != st.contributors {
                        st.state = RoundState::Failed;
                        st.message = format!(
                            "contributor sets differ: leader {contributors:?}, mine {:?}",
                            st.contributors
                        );
                        PeerReply::Rejected(st.message.clone())
                    } else {
                        match self.seal_result(settings, round, st.acc.take()) {
                            Ok(sealed) => {
                                st.results.insert(round, sealed);
                                st.state = RoundState::Aggregated;
                                PeerReply::Ok
                            }
                            Err(e) => PeerReply::Rejected(e.to_string()),
                        }
                    };
                    (Some(reply), round == settings.rounds)
                }
            };
            job.notify(&st).await;
            drop(st);
            if let Some(reply) = reply {
                self.reply(settings.job_id, round, seq, reply).await;
            }
            if last {
                // The job is over here: whatever the leader still sent is dropped with it.
                self.network.forget(&format!("secagg/{}/", settings.job_id));
                return;
            }
        }
    }

    /// A helper's answer to the leader's message `seq` of `round`.
    async fn reply(&self, job: u64, round: u64, seq: u64, reply: PeerReply) {
        let leader = PartyId::Server(0);
        if let Err(e) = self
            .network
            .send(leader, &reply_tag(job, round, seq), reply.to_bytes())
            .await
        {
            warn!(me = %self.me, error = %e, "cannot answer the leader");
        }
    }

    /// Opens, checks and expands one owner's seed envelope for this helper.
    fn stage_seed(
        &self,
        settings: &JobSettings,
        st: &JobState,
        round: u64,
        owner: PartyId,
        envelope: &[u8],
    ) -> Result<(PartyId, RingVec, Header), ServiceError> {
        if st.contributors.contains(&owner) {
            return Err(ServiceError::DuplicateUpload(owner));
        }
        let opened = open_forward_secret(
            &self.sealer,
            envelope,
            &Expected {
                purpose: Purpose::Upload,
                job_id: settings.job_id,
                round,
                sender: Some(owner),
            },
        )?;
        let part = UploadPart::from_bytes(&opened.plaintext)
            .map_err(|e| ServiceError::Malformed(e.to_string()))?;
        let UploadPart::Seed { seed, elements } = part else {
            return Err(ServiceError::Malformed("expected a seed".into()));
        };
        if elements != settings.update_len() as u64 {
            return Err(ServiceError::WrongLength(format!(
                "seed expands to {elements} elements, the job needs {}",
                settings.update_len()
            )));
        }
        let mut expansion = RingVec::zeros(settings.ring_bits, settings.update_len())
            .map_err(|e| ServiceError::Malformed(e.to_string()))?;
        expansion.add_seed(&seed);
        Ok((owner, expansion, opened.header))
    }
}
