//! [`MpcService`]: one server's registry of MPC jobs and deployed models, transport-free (the
//! gRPC adapter only moves envelopes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tessera_common::PartyId;
use tessera_common::chunks::{Keys, Message, seal_chunks};
use tessera_common::net::Network;
use tessera_common::request::{MAX_CLOCK_SKEW_SECS, RequestKind, now_secs, open_request};
use tessera_common::seal::{Context, Expected, Header, Opened, Purpose, ReplayGuard, Sealer};
use tracing::{info, warn};

use super::endpoint::{JobIo, JobNet, TakeError};
use super::job::Job;
use super::limits::MpcLimits;
use super::program::{agree_on_description, program};
use super::registry::{Assembly, Deployed, Entry, InputSlot, Params, Registry};
use super::watch::{tell_peers, watch_peers};
use tessera_common::protocol::ProtocolKind;
use tessera_common::sharing::outside::Scheme;
use tessera_jobs::JobState;
use tessera_jobs::MpcServiceError as Error;
use tessera_jobs::error::{BadJob, BadMessage};
use tessera_jobs::job::{JobKind, JobSpec};
use tessera_jobs::status::MpcJobStatus;
use tessera_jobs::wire::{
    ABORT_PLAINTEXT, ABORT_ROUND, DESCRIPTION_ROUND, LAUNCH_ROUND, chunk_all, job_ids_of,
    parse_chunk,
};
use tessera_mpc::model::Activations;
use tessera_mpc::protocol::{Aby3, Pond, SecureNn};
use tessera_mpc::session::{SECAGG_SESSIONS, party_tag, session_prefix};
use tessera_mpc::train::job::serve_training;
use tessera_mpc::{MpcError, Session};

/// How long a job waits, before it starts, for this server's links to the other servers (a peer
/// that restarted a moment ago is linked again within a second; one that is down fails the job
/// after this, naming it).
const LINK_GRACE: Duration = Duration::from_secs(10);

/// One server's MPC job service (see the module docs of [`super`]).
pub struct MpcService<N: Network + 'static> {
    sealer: Sealer,
    peers: Arc<N>,
    /// Model id -> the clients the cluster file lets query it.
    access: HashMap<String, Vec<PartyId>>,
    limits: MpcLimits,
    registry: Mutex<Registry>,
    /// Jobs by (kind, outcome): `launched`, `done`, `failed`, `aborted` (fixed names: bounded).
    job_counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl<N: Network + 'static> std::fmt::Debug for MpcService<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpcService({})", self.sealer.me())
    }
}

/// Ring elements a server holds per element of a value under `scheme`.
fn words_per_element(scheme: Scheme, server: PartyId) -> usize {
    match (scheme, server) {
        (Scheme::Replicated, _) => 2,
        (Scheme::Additive, PartyId::Server(0 | 1)) => 1,
        (Scheme::Additive, _) => 0,
    }
}

impl<N: Network + 'static> MpcService<N> {
    /// The service of the server `sealer` seals as, over its peer network, with the cluster
    /// file's access lists (model id -> clients).
    pub fn new(
        sealer: Sealer,
        peers: Arc<N>,
        access: HashMap<String, Vec<PartyId>>,
        limits: MpcLimits,
    ) -> Arc<Self> {
        Arc::new(MpcService {
            sealer,
            peers,
            access,
            limits,
            registry: Mutex::new(Registry::default()),
            job_counts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Jobs counted so far by (kind, outcome): every job is `launched`, then `done`, `failed`
    /// or `aborted`.
    pub fn job_counts(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.job_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count_job(&self, job: &Job, outcome: &'static str) {
        let mut counts = self.job_counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((job.spec.kind.name(), outcome)).or_default() += 1;
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This server.
    pub fn me(&self) -> PartyId {
        self.sealer.me()
    }

    /// The ids of the deployed models.
    pub fn models(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.registry().models.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Bytes held in partial inputs and unfetched outputs of all jobs.
    pub fn held_bytes(&self) -> usize {
        let reg = self.registry();
        reg.jobs
            .values()
            .map(|e| e.io.held_bytes() + e.inputs.values().map(Assembly::held).sum::<usize>())
            .sum()
    }

    /// Opens a `JobControl` envelope of `round` (launch or abort): the job id in its header,
    /// and the opened envelope.
    fn open_control(&self, envelope: &[u8], round: u64) -> Result<(u64, Opened), Error> {
        let id = Header::parse(envelope)?.job_id;
        let expected = Expected {
            purpose: Purpose::JobControl,
            job_id: id,
            round,
            sender: None,
        };
        Ok((id, self.sealer.open(envelope, &expected)?))
    }

    /// Launches a job from a sealed description (purpose `Control`, round [`LAUNCH_ROUND`],
    /// the job id in the header): checks who may launch it, registers it and starts this
    /// server's part.
    pub fn launch(self: &Arc<Self>, envelope: &[u8]) -> Result<MpcJobStatus, Error> {
        let (id, opened) = self.open_control(envelope, LAUNCH_ROUND)?;
        if id >= SECAGG_SESSIONS {
            return Err(BadMessage::JobIdRange(id).into());
        }
        let launcher = opened.header.sender;
        if !job_ids_of(launcher).is_some_and(|ids| ids.contains(&id)) {
            return Err(Error::Forbidden {
                party: launcher,
                what: format!("launch job id {id} (outside its own range of ids)"),
            });
        }
        let spec: JobSpec = serde_json::from_slice(&opened.plaintext)
            .map_err(|e| BadMessage::Description(e.to_string()))?;
        let skew_secs = spec.issued_at.abs_diff(now_secs());
        if skew_secs > MAX_CLOCK_SKEW_SECS {
            return Err(Error::Stale { skew_secs });
        }
        let mut reg = self.registry();
        if reg.jobs.contains_key(&id) {
            return Err(Error::DuplicateJob(id));
        }
        let running: Vec<PartyId> = reg
            .jobs
            .values()
            .filter(|e| !e.io.state().is_over())
            .map(|e| e.job.launcher)
            .collect();
        if running.len() >= self.limits.max_running {
            return Err(Error::Busy {
                what: "running MPC jobs",
                limit: self.limits.max_running,
            });
        }
        let mine = running.iter().filter(|p| **p == launcher).count();
        if mine >= self.limits.max_running_per_launcher {
            return Err(Error::Busy {
                what: "running MPC jobs of one launcher",
                limit: self.limits.max_running_per_launcher,
            });
        }
        let (job, params) = match &spec.kind {
            JobKind::Deploy { model_id, .. } => {
                if !reg.models.contains_key(model_id) && reg.models.len() >= self.limits.max_models
                {
                    return Err(Error::Busy {
                        what: "deployed models",
                        limit: self.limits.max_models,
                    });
                }
                (Job::deploy(id, launcher, spec.clone())?, None)
            }
            JobKind::Predict { model_id, .. } => {
                let allowed = self
                    .access
                    .get(model_id)
                    .is_some_and(|clients| clients.contains(&launcher));
                if !allowed {
                    return Err(Error::NotAllowed {
                        party: launcher,
                        model: model_id.clone(),
                    });
                }
                if let Some(budget) = self.limits.query_budgets.get(model_id) {
                    let used = reg.queries.get(&(model_id.clone(), launcher));
                    if used.copied().unwrap_or(0) >= *budget {
                        return Err(Error::QueryBudget {
                            party: launcher,
                            model: model_id.clone(),
                            budget: *budget,
                        });
                    }
                }
                let deployed = reg
                    .models
                    .get(model_id)
                    .ok_or_else(|| Error::UnknownModel(model_id.clone()))?;
                let job = Job::predict(
                    id,
                    launcher,
                    spec.clone(),
                    (deployed.protocol, &deployed.model, deployed.frac_bits),
                )?;
                (job, Some(Arc::clone(&deployed.params)))
            }
            JobKind::Train { job: train, .. } => {
                self.limits.training.check(&train.terms())?;
                (Job::train(id, launcher, spec.clone())?, None)
            }
        };
        let element_bytes =
            words_per_element(job.protocol.scheme(), self.me()) * (job.ring_bits / 8) as usize;
        let declared: usize = job
            .inputs
            .iter()
            .map(|t| t.elements() * element_bytes)
            .sum();
        if declared > self.limits.max_job_input_bytes {
            return Err(BadJob::InputBytes {
                server: self.me(),
                bytes: declared,
                max: self.limits.max_job_input_bytes,
            }
            .into());
        }
        let job = Arc::new(job);
        let io = Arc::new(JobIo::new(self.limits.input_timeout));
        let service = Arc::clone(self);
        let digest: [u8; 32] = Sha256::digest(&opened.plaintext).into();
        let task = tokio::spawn({
            let (job, io) = (Arc::clone(&job), Arc::clone(&io));
            async move { service.run(job, io, params, digest).await }
        });
        info!(job = id, kind = job.spec.kind.name(), %launcher, "MPC job launched");
        self.count_job(&job, "launched");
        if let JobKind::Predict { model_id, .. } = &job.spec.kind {
            *reg.queries.entry((model_id.clone(), launcher)).or_default() += 1;
        }
        reg.jobs.insert(
            id,
            Entry {
                job: Arc::clone(&job),
                digest,
                io,
                task: Some(task.abort_handle()),
                inputs: HashMap::new(),
                guard: ReplayGuard::new(),
            },
        );
        Ok(job.status(&digest, JobState::Running))
    }

    /// This server's part of a job, start to end.
    async fn run(
        self: Arc<Self>,
        job: Arc<Job>,
        io: Arc<JobIo>,
        params: Option<Params>,
        digest: [u8; 32],
    ) {
        let outside: Vec<PartyId> = job
            .inputs
            .iter()
            .chain(&job.outputs)
            .map(|t| t.party)
            .collect();
        let net = Arc::new(JobNet::new(
            Arc::clone(&self.peers),
            Arc::clone(&io),
            &outside,
        ));
        let work = async {
            let session = Arc::new(Session::with_id(net, job.id).await?);
            agree_on_description(&session, &digest).await?;
            let f = job.frac_bits;
            let s = Arc::clone(&session);
            match (&job.spec.kind, job.protocol) {
                (JobKind::Train { job: train, .. }, protocol) => {
                    let act = Activations::of(protocol);
                    match protocol {
                        ProtocolKind::Aby3 => {
                            serve_training(&Aby3::<_, u128>::in_ring(s, f)?, train, act).await
                        }
                        ProtocolKind::SecureNn => {
                            serve_training(&SecureNn::<_, u128>::in_ring(s, f)?, train, act).await
                        }
                        ProtocolKind::Pond => {
                            serve_training(&Pond::<_, u128>::in_ring(s, f)?, train, act).await
                        }
                    }
                    .map(|()| None)
                }
                (_, ProtocolKind::Aby3) => program(Aby3::new(s, f)?, &job, params).await,
                (_, ProtocolKind::SecureNn) => program(SecureNn::new(s, f)?, &job, params).await,
                (_, ProtocolKind::Pond) => program(Pond::new(s, f)?, &job, params).await,
            }
        };
        // A peer that just restarted may not be linked again yet: wait for it (bounded) rather
        // than fail on the missing link, and only then watch the peers, whose watch fails at
        // once on a peer marked gone.
        let linked = self.peers.linked(LINK_GRACE).await.map_err(MpcError::Net);
        let result = match linked {
            Err(e) => Err(e),
            Ok(()) => tokio::select! {
                r = work => r,
                e = watch_peers(Arc::clone(&self.peers), job.id) => Err(e),
            },
        };
        if let Err(e) = &result {
            tell_peers(&*self.peers, job.id, &format!("{}: {e}", self.me())).await;
        }
        self.peers.forget(&session_prefix(job.id));
        match result {
            Ok(deployed) => {
                if let (Some(params), JobKind::Deploy { model_id, .. }) = (deployed, &job.spec.kind)
                {
                    self.registry().models.insert(
                        model_id.clone(),
                        Deployed {
                            protocol: job.protocol,
                            model: job.model.clone(),
                            frac_bits: job.frac_bits,
                            params,
                        },
                    );
                    info!(job = job.id, model = %model_id, "model deployed");
                }
                io.finish(JobState::Done);
                self.count_job(&job, "done");
            }
            Err(e) => {
                warn!(job = job.id, error = %e, "MPC job failed");
                io.finish(JobState::Failed(e.to_string()));
                self.count_job(&job, "failed");
            }
        }
        self.retire(job.id);
        // Messages a peer sent after this server stopped listening would wait forever: drop
        // them once more when every peer has given up on the job.
        let (peers, prefix, linger) = (
            Arc::clone(&self.peers),
            session_prefix(job.id),
            self.limits.linger,
        );
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            peers.forget(&prefix);
        });
    }

    /// Moves a job that ended into the finished list, forgetting the oldest past the bound.
    fn retire(&self, id: u64) {
        let mut reg = self.registry();
        if let Some(entry) = reg.jobs.get_mut(&id) {
            entry.task = None;
            entry.inputs.clear();
        }
        reg.finished.push_back(id);
        while reg.finished.len() > self.limits.max_finished {
            if let Some(old) = reg.finished.pop_front() {
                reg.jobs.remove(&old);
            }
        }
    }

    /// Accepts one chunk of an input (purpose `Input`, the input's index as `round`); returns
    /// whether the input is now complete.
    pub fn submit_chunk(&self, envelope: &[u8]) -> Result<bool, Error> {
        let header = Header::parse(envelope)?;
        let id = header.job_id;
        let mut reg = self.registry();
        let entry = reg.jobs.get_mut(&id).ok_or(Error::UnknownJob(id))?;
        let state = entry.io.state();
        if state.is_over() {
            return Err(Error::ended(id, &state));
        }
        let opened = self.sealer.open(
            envelope,
            &Expected {
                purpose: Purpose::Input,
                job_id: id,
                round: header.round,
                sender: None,
            },
        )?;
        // Refused before it is recorded, so the sender's forward-secret chunk still opens.
        if !opened.ephemeral {
            return Err(Error::NotForwardSecret {
                job: id,
                party: opened.header.sender,
            });
        }
        entry.guard.record(&opened.header)?;
        let (from, round, chunk) = (
            opened.header.sender,
            opened.header.round,
            opened.header.chunk,
        );
        let input = entry.job.input(from, round).ok_or(Error::UnexpectedInput {
            job: id,
            party: from,
            round,
        })?;
        let element_bytes = words_per_element(entry.job.protocol.scheme(), self.me())
            * (entry.job.ring_bits / 8) as usize;
        let expected = input.elements() * element_bytes;
        let row_bytes = input.row.map(|w| w * element_bytes);
        let (tag, label) = (party_tag(&input.label), input.label.clone());
        let (total, bytes) = parse_chunk(&opened.plaintext)?;
        let slot = InputSlot {
            job: id,
            round,
            expected,
            row_bytes,
        };
        let assembly = entry.inputs.entry(round).or_default();
        let Some(payload) = assembly.push(chunk, total, bytes, &slot, || {
            format!("input {label:?} of job {id} at {}", self.me())
        })?
        else {
            return Ok(false);
        };
        entry.io.deliver_input(from, tag, payload);
        Ok(true)
    }

    /// The sealed chunks of a value of an output of a job for the caller the token names (a
    /// [`RequestKind::FetchOutput`] token for that job and `round`, which names the output and
    /// the value: [`fetch_round`]); waits up to the limit's output wait, then answers
    /// [`Error::NotReady`]. The same request again gets the same value; asking for a value
    /// releases the ones before it.
    pub async fn fetch_output(
        &self,
        job_id: u64,
        round: u64,
        token: &[u8],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let caller = open_request(
            &self.sealer,
            token,
            RequestKind::FetchOutput,
            job_id,
            round,
            now_secs(),
        )?;
        let (index, seq) = (round & 0xffff_ffff, round >> 32);
        let (io, tag) = {
            let reg = self.registry();
            let entry = reg.jobs.get(&job_id).ok_or(Error::UnknownJob(job_id))?;
            let output = entry.job.output(caller, index).ok_or(Error::NoSuchOutput {
                job: job_id,
                party: caller,
                round: index,
            })?;
            (Arc::clone(&entry.io), party_tag(&output.label))
        };
        let bytes = match io
            .take_output(caller, &tag, seq, self.limits.output_wait)
            .await
        {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(Error::NotReady { job: job_id, round }),
            Err(TakeError::Ended(state)) => return Err(Error::ended(job_id, &state)),
            Err(TakeError::Released { first }) => {
                return Err(Error::Released {
                    job: job_id,
                    output: index,
                    seq,
                    first,
                });
            }
        };
        let message = Message {
            purpose: Purpose::Output,
            job_id,
            round,
        };
        let pieces = chunk_all(&bytes);
        Ok(seal_chunks(
            &self.sealer,
            caller,
            message,
            Keys::Static,
            &pieces,
        )?)
    }

    /// A job's status for the caller the token names (a [`RequestKind::Status`] token): its
    /// launcher, an outside party of the job, or the model owner.
    pub fn status(&self, job_id: u64, token: &[u8]) -> Result<MpcJobStatus, Error> {
        let caller = open_request(
            &self.sealer,
            token,
            RequestKind::Status,
            job_id,
            0,
            now_secs(),
        )?;
        let reg = self.registry();
        let entry = reg.jobs.get(&job_id).ok_or(Error::UnknownJob(job_id))?;
        let job = &entry.job;
        let involved = caller == PartyId::ModelOwner
            || caller == job.launcher
            || job
                .inputs
                .iter()
                .chain(&job.outputs)
                .any(|t| t.party == caller);
        if !involved {
            return Err(Error::Forbidden {
                party: caller,
                what: format!("see MPC job {job_id}"),
            });
        }
        let mut status = job.status(&entry.digest, entry.io.state());
        let description =
            serde_json::to_vec(&job.spec).map_err(|e| BadMessage::Description(e.to_string()))?;
        let context = Context {
            purpose: Purpose::JobControl,
            job_id,
            round: DESCRIPTION_ROUND,
            chunk: 0,
        };
        status.sealed_description = self.sealer.seal_for(caller, &context, &description)?;
        Ok(status)
    }

    /// Aborts a job (a sealed `JobControl` envelope of the model owner, round
    /// [`ABORT_ROUND`], naming the digest of the launch it aborts): stops this server's part,
    /// drops its inputs, outputs and queued messages. An abort of another launch under the
    /// same id (a recorded one, replayed after a restart) is refused: aborts are bound to one
    /// launch, and aborting it twice changes nothing.
    pub fn abort(&self, envelope: &[u8]) -> Result<MpcJobStatus, Error> {
        let (id, opened) = self.open_control(envelope, ABORT_ROUND)?;
        if opened.header.sender != PartyId::ModelOwner {
            return Err(Error::Forbidden {
                party: opened.header.sender,
                what: "abort a job".into(),
            });
        }
        let named = opened
            .plaintext
            .strip_prefix(ABORT_PLAINTEXT)
            .filter(|d| d.len() == 32)
            .ok_or(BadMessage::Abort)?;
        let (io, job, task, digest) = {
            let mut reg = self.registry();
            let entry = reg.jobs.get_mut(&id).ok_or(Error::UnknownJob(id))?;
            if named != entry.digest {
                return Err(Error::AbortMismatch { job: id });
            }
            entry.inputs.clear();
            (
                Arc::clone(&entry.io),
                Arc::clone(&entry.job),
                entry.task.take(),
                entry.digest,
            )
        };
        if let Some(task) = task {
            task.abort();
            io.finish(JobState::Aborted);
            self.peers.forget(&session_prefix(id));
            self.retire(id);
            info!(job = id, "MPC job aborted");
            self.count_job(&job, "aborted");
        }
        Ok(job.status(&digest, io.state()))
    }
}
