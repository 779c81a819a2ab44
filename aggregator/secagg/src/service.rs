//! The aggregation service of one server: jobs, their state, and what any server answers.
//!
//! The rounds themselves are the state machines of [`super::round`]; this service holds them per
//! job and drives them: the leader's side in `driver/leader.rs`, a helper's in `driver/helper.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tessera_common::PartyId;
use tessera_common::chunks::{Keys, Message, seal_chunks};
use tessera_common::job::JobSettings;
use tessera_common::net::Network;
use tessera_common::refusal::Malformed;
use tessera_common::request::{RequestKind, now_secs, open_request};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Header, Purpose, Sealer};
use tessera_common::upload::UPLOAD_CHUNK_BYTES;
use tokio::sync::{Mutex, MutexGuard, watch};
use tracing::info;

use super::ServiceError;
use super::limits::{Limits, StagingBudget, UploadSlots};
use super::messages::{JobStatus, RoundState, job_prefix, leader_tag};
use super::round::{HelperRounds, LeaderRounds};
use tessera_mpc::aby3::Aby3Tensor;

/// One job on one server.
pub struct Job {
    pub(crate) settings: JobSettings,
    pub(super) state: Mutex<JobState>,
    pub(super) changed: watch::Sender<(u64, RoundState)>,
    /// Uploads in flight and committed in the current round (leader).
    pub(crate) uploads: Arc<StdMutex<UploadSlots>>,
    /// Held from taking a round machine's outbox (under the state lock) until it is sent, so the
    /// helpers get the leader's messages in the order the machine queued them; the state itself
    /// is never locked across a network wait.
    pub(super) send_order: Mutex<()>,
    /// Under `trimmed-mean` and `median`: each upload's replicated sharing by round and forward,
    /// kept until the round's close sorts them (bounded by the round's places and the uploads
    /// in flight; dropped at the close).
    pub(super) kept: StdMutex<BTreeMap<(u64, u64), Aby3Tensor<u64>>>,
    /// When the job last changed (Unix ms): started, a round opened, moved or closed.
    touched: AtomicU64,
}

/// The round machine of this server's role.
pub(super) enum Rounds {
    Leader(LeaderRounds),
    Helper(HelperRounds),
}

pub(super) struct JobState {
    pub(super) rounds: Rounds,
    pub(super) deadline_unix_ms: u64,
    /// Global weights of the current round, f32 little-endian (leader).
    pub(super) weights: Arc<Vec<u8>>,
    /// The run of each helper when the current round opened (leader; `None` where the network
    /// does not tell): a helper on another run since holds none of the round.
    pub(super) helper_runs: Vec<Option<u64>>,
    /// Sealed result shares by round.
    pub(super) results: HashMap<u64, Vec<Vec<u8>>>,
    /// How often each data owner fetched the current round's weights, and that round (leader;
    /// at most one entry per registered owner).
    pub(super) weight_fetches: HashMap<PartyId, (u64, usize)>,
}

impl JobState {
    pub(super) fn round(&self) -> u64 {
        match &self.rounds {
            Rounds::Leader(m) => m.round(),
            Rounds::Helper(m) => m.round(),
        }
    }

    pub(super) fn round_state(&self) -> RoundState {
        match &self.rounds {
            Rounds::Leader(m) => m.state(),
            Rounds::Helper(m) => m.state(),
        }
    }

    fn contributors(&self) -> &[PartyId] {
        match &self.rounds {
            Rounds::Leader(m) => m.contributors(),
            Rounds::Helper(m) => m.contributors(),
        }
    }

    fn message(&self) -> String {
        match &self.rounds {
            Rounds::Leader(m) => m.message(),
            Rounds::Helper(m) => m.message().to_owned(),
        }
    }

    /// The leader's machine; none at a helper.
    pub(super) fn leader(&mut self) -> Option<&mut LeaderRounds> {
        match &mut self.rounds {
            Rounds::Leader(m) => Some(m),
            Rounds::Helper(_) => None,
        }
    }
}

impl Job {
    /// Drops the uploads kept for `round` and every earlier round (a failed or finished close).
    pub(super) fn drop_kept_through(&self, round: u64) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let later = kept.split_off(&(round + 1, 0));
        *kept = later;
    }

    /// Tells pollers (and a close waiting for decisions) that the round moved.
    pub(super) fn notify(&self, st: &JobState) {
        self.touched.store(now_unix_ms(), Ordering::Relaxed);
        self.changed.send_replace((st.round(), st.round_state()));
    }

    /// Whether the job may be dropped to make room: its round is over (nothing in flight)
    /// and it either ran its last round or has been idle for `idle`.
    fn evictable(&self, now_ms: u64, idle: std::time::Duration) -> bool {
        // Locked: something is working on it right now.
        let Ok(st) = self.state.try_lock() else {
            return false;
        };
        let idle_ms = now_ms.saturating_sub(self.touched.load(Ordering::Relaxed));
        st.round_state().is_final()
            && (st.round() >= self.settings.rounds || u128::from(idle_ms) >= idle.as_millis())
    }
}

pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The aggregation service of one server.
pub struct AggregatorService<N: Network + 'static> {
    pub(super) me: PartyId,
    pub(super) num_servers: usize,
    pub(super) sealer: Sealer,
    pub(super) network: Arc<N>,
    jobs: StdMutex<HashMap<u64, Arc<Job>>>,
    /// The id of the job started last (job ids are random, so the largest is not the newest).
    latest: StdMutex<Option<u64>>,
    limits: Limits,
    pub(super) staging: Arc<StagingBudget>,
    /// This server's source of differential-privacy noise (seeded from the OS).
    noise: StdMutex<StdRng>,
    /// Counters for operators (`--metrics-addr`).
    pub(super) metrics: super::SecaggMetrics,
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
            latest: StdMutex::new(None),
            staging: StagingBudget::new(limits.staging_bytes),
            limits,
            noise: StdMutex::new(StdRng::from_rng(&mut rand::rng())),
            metrics: super::SecaggMetrics::default(),
        })
    }

    /// What this server counted: rounds by outcome, uploads accepted and refused by reason.
    pub fn counts(&self) -> super::SecaggCounts {
        self.metrics.counts()
    }

    /// Counts an upload refused before it reached [`AggregatorService::begin_upload`] (its
    /// first envelope has no readable header); returns the error.
    pub fn refuse_upload(&self, error: ServiceError) -> ServiceError {
        self.metrics.upload_rejected(&error);
        error
    }

    /// Reseeds this server's differential-privacy noise: reproducible noise for tests and
    /// audits only (a seed someone else knows lets them subtract this server's noise).
    pub fn reseed_noise(&self, seed: u64) {
        *self.noise.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(seed);
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

    /// This server's traffic with the other servers so far.
    pub fn peer_stats(&self) -> tessera_common::net::NetStats {
        self.network.stats()
    }

    /// Uploads kept for a close (`clip`, `trimmed-mean`, `median`) over all jobs now.
    pub fn kept_uploads(&self) -> usize {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .map(|j| j.kept.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
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

    pub(super) fn job(&self, job_id: u64) -> Result<Arc<Job>, ServiceError> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job_id)
            .cloned()
            .ok_or(ServiceError::UnknownJob(job_id))
    }

    /// The job started last (what job 0 means to a data owner).
    pub(super) fn newest_job(&self) -> Option<Arc<Job>> {
        let latest = *self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        latest.and_then(|id| jobs.get(&id)).cloned()
    }

    pub(super) fn require_leader(&self) -> Result<(), ServiceError> {
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
            .map_err(|e| Malformed::Settings(e.to_string()))?;
        settings.validate()?;
        self.limits
            .privacy
            .check(settings.dp.as_ref(), settings.frac_bits)?;
        if settings.job_id != header.job_id {
            return Err(Malformed::SettingsJob {
                envelope: header.job_id,
                settings: settings.job_id,
            }
            .into());
        }
        if settings.num_servers != self.num_servers {
            return Err(Malformed::Servers {
                job: settings.num_servers,
                cluster: self.num_servers,
            }
            .into());
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
            if jobs.len() >= self.limits.max_jobs {
                self.evict(&mut jobs);
                if jobs.len() >= self.limits.max_jobs {
                    return Err(ServiceError::Busy {
                        what: "jobs (none finished or idle)",
                        limit: self.limits.max_jobs,
                    });
                }
            }
            let rounds = if self.is_leader() {
                Rounds::Leader(LeaderRounds::new(&settings))
            } else {
                // A helper stages each forwarded seed's expansion until its decision: as many
                // as the staging budget holds.
                let per_upload = settings.update_len() * (settings.ring_bits as usize / 8);
                let max_pending = self.limits.staging_bytes / per_upload.max(1);
                Rounds::Helper(HelperRounds::new(&settings, max_pending))
            };
            let job = Arc::new(Job {
                settings: settings.clone(),
                state: Mutex::new(JobState {
                    rounds,
                    deadline_unix_ms: 0,
                    helper_runs: Vec::new(),
                    weights: Arc::new(Vec::new()),
                    results: HashMap::new(),
                    weight_fetches: HashMap::new(),
                }),
                changed: watch::Sender::new((0, RoundState::Idle)),
                uploads: Arc::default(),
                send_order: Mutex::new(()),
                kept: StdMutex::default(),
                touched: AtomicU64::new(now_unix_ms()),
            });
            jobs.insert(settings.job_id, Arc::clone(&job));
            *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(settings.job_id);
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

    /// Drops finished and idle jobs, least recently touched first, until one more fits.
    fn evict(&self, jobs: &mut HashMap<u64, Arc<Job>>) {
        let now = now_unix_ms();
        let mut idle: Vec<(u64, u64)> = jobs
            .values()
            .filter(|j| j.evictable(now, self.limits.job_idle))
            .map(|j| (j.touched.load(Ordering::Relaxed), j.settings.job_id))
            .collect();
        idle.sort_unstable();
        let excess = (jobs.len() + 1).saturating_sub(self.limits.max_jobs);
        for (_, id) in idle.into_iter().take(excess) {
            jobs.remove(&id);
            // Whatever the servers still exchange under it is dropped with it.
            self.network.forget(&job_prefix(id));
            info!(me = %self.me, job = id, "finished or idle job dropped to make room");
        }
    }

    /// Jobs held now.
    pub fn jobs_held(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
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
            declined: Vec::new(),
        }
    }

    /// The status of a job.
    pub async fn status(&self, job_id: u64) -> Result<JobStatus, ServiceError> {
        let job = self.job(job_id)?;
        let st = job.state.lock().await;
        Ok(JobStatus {
            declined: match &st.rounds {
                Rounds::Leader(m) => m.declined().iter().map(|(p, r)| (*p, r.clone())).collect(),
                Rounds::Helper(_) => Vec::new(),
            },
            ..self.status_of(
                job_id,
                st.round(),
                st.round_state(),
                st.contributors().to_vec(),
                st.message(),
            )
        })
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
                state: if st.round() == round {
                    format!("{:?} {}", st.round_state(), st.message())
                } else {
                    format!("current round is {}", st.round())
                },
            })
    }

    /// Seals this server's share `acc` of round `round`'s sum for the model owner, with this
    /// server's differential-privacy noise added to every coordinate but the weight when the job
    /// asks for it (see [`tessera_common::dp`]).
    pub(super) fn seal_result(
        &self,
        settings: &JobSettings,
        round: u64,
        acc: &RingVec,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let noised;
        let acc = match &settings.dp {
            Some(dp) => {
                let covered = settings.num_params + 1;
                let noise = {
                    let mut rng = self.noise.lock().unwrap_or_else(|e| e.into_inner());
                    dp.noise(&mut *rng, covered, settings.frac_bits)
                };
                let mut with = acc.clone();
                with.add_signed(&noise)?;
                noised = with;
                &noised
            }
            None => acc,
        };
        let job_id = settings.job_id;
        let per_chunk = UPLOAD_CHUNK_BYTES / acc.element_bytes();
        let pieces = (0..acc.len().div_ceil(per_chunk))
            .map(|i| acc.to_le_bytes(i * per_chunk..((i + 1) * per_chunk).min(acc.len())));
        let message = Message {
            purpose: Purpose::Result,
            job_id,
            round,
        };
        Ok(seal_chunks(
            &self.sealer,
            PartyId::ModelOwner,
            message,
            Keys::Static,
            pieces,
        )?)
    }

    /// Sends what the leader's machine queued, in its order: the send turn is taken before the
    /// state lock `st` is let go. Every message is tried; the first failure is returned.
    pub(super) async fn send_outbox(
        &self,
        job: &Job,
        mut st: MutexGuard<'_, JobState>,
    ) -> Result<(), ServiceError> {
        let outbox = match &mut st.rounds {
            Rounds::Leader(m) => m.take_outbox(),
            Rounds::Helper(_) => Vec::new(),
        };
        let turn = job.send_order.lock().await;
        drop(st);
        let tag = leader_tag(job.settings.job_id);
        let mut result = Ok(());
        for (to, msg) in outbox {
            if let Err(e) = self.network.send(to, &tag, msg.to_bytes()).await {
                result = result.and(Err(e.into()));
            }
        }
        drop(turn);
        result
    }
}
