//! A helper's side of the service: the loop that feeds the leader's messages to the job's
//! [`HelperRounds`] machine and sends its answers.
//!
//! [`HelperRounds`]: crate::round::HelperRounds

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::job::JobSettings;
use tessera_common::net::{NetError, Network};
use tessera_common::prg::Seed;
use tessera_common::refusal::Malformed;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Purpose};
use tessera_common::upload::UploadPart;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::check::CHECK_GRACE;
use crate::messages::{PeerMsg, PeerReply, RoundMsg, job_prefix, leader_tag, reply_tag};
use crate::robust::Component;
use crate::round::Staged;
use crate::service::{Job, Rounds};
use crate::session::open_forward_secret;
use crate::{AggregatorService, ServiceError};

/// How often a helper whose leader is gone looks whether it is back.
const LEADER_POLL: std::time::Duration = std::time::Duration::from_secs(1);

impl<N: Network + 'static> AggregatorService<N> {
    /// A helper's side of a job: answers the leader's messages in order until the last round
    /// closes or the job is dropped; a lost leader fails the round in progress and is waited for.
    pub(crate) async fn helper_loop(self: Arc<Self>, job: Arc<Job>) {
        let settings = &job.settings;
        let leader = PartyId::Server(0);
        // Under a robust rule: this helper's part of each staged upload's check, by round and
        // forward.
        let mut checks: HashMap<(u64, u64), JoinHandle<()>> = HashMap::new();
        // Under `clip`, `trimmed-mean` and `median`: the committed forwards' conversions, by
        // round and forward, awaited at the close.
        let mut committed: BTreeMap<(u64, u64), JoinHandle<()>> = BTreeMap::new();
        let keeps = settings.rule.keeps_uploads();
        let mut leader_lost = false;
        loop {
            let bytes = match self
                .network
                .recv(leader, &leader_tag(settings.job_id))
                .await
            {
                Ok(bytes) => bytes,
                // Rounds may be far apart: a quiet leader is not a lost one, unless the job was
                // dropped as idle to make room for others.
                Err(NetError::Timeout { .. }) => {
                    if self.job(settings.job_id).is_err() {
                        return;
                    }
                    continue;
                }
                // The leader is gone: the round in progress fails, and the job waits for the
                // leader to dial back (a restarted leader takes the job up at the model owner's
                // next round). A job nobody comes back for is dropped as idle.
                Err(e) => {
                    if !leader_lost {
                        let mut st = job.state.lock().await;
                        if let Rounds::Helper(m) = &mut st.rounds {
                            m.leader_lost(&e.to_string());
                        }
                        job.notify(&st);
                        warn!(me = %self.me, job = settings.job_id, error = %e, "leader unreachable; the job waits for it to return");
                        leader_lost = true;
                    }
                    tokio::time::sleep(LEADER_POLL).await;
                    if self.job(settings.job_id).is_err() {
                        return;
                    }
                    continue;
                }
            };
            if std::mem::take(&mut leader_lost) {
                info!(me = %self.me, job = settings.job_id, "leader back");
            }
            let msg = match RoundMsg::from_bytes(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    warn!(me = %self.me, job = settings.job_id, error = %e, "leader message dropped");
                    continue;
                }
            };
            let (round, seq) = (msg.round, msg.seq);
            let forward = matches!(msg.msg, PeerMsg::Forward { .. });
            let close = matches!(msg.msg, PeerMsg::Close { .. });
            let decided = match msg.msg {
                PeerMsg::Decide { forward, commit } => Some((forward, commit)),
                _ => None,
            };
            let mut opened_seed = None;
            let mut close_round_kept = None;
            let step = {
                let mut st = job.state.lock().await;
                let st = &mut *st;
                let Rounds::Helper(m) = &mut st.rounds else {
                    return;
                };
                let results = &mut st.results;
                let step = m.on_message(
                    msg,
                    |round, owner, envelope| {
                        let (staged, seed) = self.stage_seed(settings, round, owner, envelope)?;
                        opened_seed = Some(seed);
                        Ok(staged)
                    },
                    |round, sum| {
                        if keeps {
                            // Sealed once the kept uploads are summed or sorted, below.
                            close_round_kept = Some(round);
                        } else {
                            results.insert(round, self.seal_result(settings, round, &sum)?);
                        }
                        Ok(())
                    },
                );
                job.notify(st);
                step
            };
            if settings.checks_uploads() {
                if let (true, Some(PeerReply::Ok), Some(seed)) = (forward, &step.reply, opened_seed)
                {
                    let (service, job) = (Arc::clone(&self), Arc::clone(&job));
                    let task = tokio::spawn(async move {
                        let part = Component::Seed(seed);
                        if let Err(e) = service.run_check(&job, round, seq, part).await {
                            debug!(me = %service.me, round, seq, error = %e, "check: no pass");
                        }
                    });
                    checks.insert((round, seq), task);
                }
                if let (true, Some((forward, true))) = (keeps, decided)
                    && let Some(task) = checks.remove(&(round, forward))
                {
                    committed.insert((round, forward), task);
                }
                self.settle_checks(&mut checks, settings.job_id, round, decided);
            }
            if let Some(note) = &step.note {
                warn!(me = %self.me, job = settings.job_id, round, seq, "{note}");
            }
            if let Some(reply) = step.reply {
                self.reply(settings.job_id, round, seq, reply).await;
            }
            if let Some(round) = close_round_kept {
                self.seal_kept(&job, round, seq, &mut committed).await;
            } else if close {
                // An aborted or refused close: what was kept for the round is of no more use.
                job.drop_kept_through(round);
                committed.retain(|(r, _), _| *r > round);
            }
            if step.done {
                // The job is over here: whatever the leader still sent is dropped with it.
                self.network.forget(&job_prefix(settings.job_id));
                return;
            }
        }
    }

    /// Under `clip`, `trimmed-mean` and `median`, after the close `close_seq` of `round`: waits
    /// for the committed forwards' conversions, sums or sorts them (with the other servers) and
    /// seals this server's share of the result (a failure leaves no result: the leader's round fails too).
    async fn seal_kept(
        &self,
        job: &Job,
        round: u64,
        close_seq: u64,
        committed: &mut BTreeMap<(u64, u64), JoinHandle<()>>,
    ) {
        let later = committed.split_off(&(round + 1, 0));
        let mine = std::mem::replace(committed, later);
        let mut seqs = Vec::new();
        for ((r, seq), task) in mine {
            if r == round && task.await.is_ok() {
                seqs.push(seq);
            }
        }
        let sealed = self
            .close_kept(job, round, close_seq, Some(&seqs))
            .await
            .and_then(|share| self.seal_result(&job.settings, round, &share));
        match sealed {
            Ok(sealed) => {
                job.state.lock().await.results.insert(round, sealed);
            }
            Err(e) => {
                warn!(me = %self.me, job = job.settings.job_id, round, error = %e, "kept aggregate failed")
            }
        }
    }

    /// Lets go of the checks the leader's message settled: a committed upload's runs to its end
    /// (the leader's part passed, so every message it needs is on its way); a dropped upload's,
    /// and any of an earlier round, gets [`CHECK_GRACE`] to end by itself (the leader ran its
    /// part and refused the upload) before it is stopped and its late messages dropped (the
    /// leader never ran it).
    fn settle_checks(
        self: &Arc<Self>,
        checks: &mut HashMap<(u64, u64), JoinHandle<()>>,
        job: u64,
        round: u64,
        decided: Option<(u64, bool)>,
    ) {
        let mut settled = Vec::new();
        match decided {
            Some((forward, true)) => {
                checks.remove(&(round, forward));
            }
            Some((forward, false)) => settled.extend(checks.remove_entry(&(round, forward))),
            None => {}
        }
        let stale: Vec<(u64, u64)> = checks.keys().filter(|(r, _)| *r < round).copied().collect();
        settled.extend(stale.into_iter().filter_map(|k| checks.remove_entry(&k)));
        for ((r, seq), mut task) in settled {
            let service = Arc::clone(self);
            tokio::spawn(async move {
                if tokio::time::timeout(CHECK_GRACE, &mut task).await.is_err() {
                    task.abort();
                    service.forget_check_later(job, r, seq);
                }
            });
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
        round: u64,
        owner: PartyId,
        envelope: &[u8],
    ) -> Result<(Staged, Seed), ServiceError> {
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
        let part = UploadPart::from_bytes(&opened.plaintext).map_err(Malformed::Part)?;
        let UploadPart::Seed { seed, elements } = part else {
            return Err(Malformed::WrongPart {
                chunk: 0,
                expected: "a seed",
            }
            .into());
        };
        if elements != settings.update_len() as u64 {
            return Err(ServiceError::WrongLength {
                what: "seed expansion elements",
                got: elements,
                expected: settings.update_len() as u64,
            });
        }
        let mut expansion = RingVec::zeros(settings.ring_bits, settings.update_len())?;
        expansion.add_seed(&seed);
        let staged = Staged {
            expansion,
            header: opened.header,
        };
        Ok((staged, seed))
    }
}
