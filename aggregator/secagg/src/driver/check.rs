//! A job's robust-aggregation check of one upload as the service runs it (see
//! [`crate::robust`]): the leader runs its part once every helper staged its seed, each helper as
//! soon as it staged its own. The three meet in an MPC session named by the job, round and
//! forward ([`secagg_session_id`]); only the verdict is opened, and the leader's decides. Under
//! `clip` the check also scales the upload, and under `trimmed-mean` and `median` it converts it;
//! either way the upload is kept, and the round's close sums or sorts the kept ones
//! ([`AggregatorService::close_kept`]).

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tessera_common::net::Network;
use tessera_common::ringvec::RingVec;
use tessera_common::rule::AggregationRule;

use crate::robust::clip::clip_upload;
use crate::robust::norm::range_verdict;
use crate::robust::sort::trimmed_sum;
use crate::robust::{Component, norm_bound_verdict, replicate};
use crate::service::Job;
use crate::{AggregatorService, ServiceError};
use tessera_mpc::aby3::Aby3Tensor;
use tessera_mpc::session::{secagg_session_id, session_prefix};
use tessera_mpc::{MpcError, Session};

/// How long a helper lets a check the leader dropped run on before stopping it.
pub(crate) const CHECK_GRACE: Duration = Duration::from_secs(5);

/// How long an abandoned check's session is kept for messages still on their way before they
/// are dropped.
pub(crate) const CHECK_LINGER: Duration = Duration::from_secs(10);

impl<N: Network + 'static> AggregatorService<N> {
    /// This server's part of the check of the upload forwarded as `seq` in `round`, from its
    /// `component` of the upload: `Ok` if the upload passes the job's rule (under `mean`, its
    /// range and windows where the check can run,
    /// [`tessera_common::job::JobSettings::checks_uploads`]; always elsewhere).
    /// Under `clip` the upload is scaled, under `trimmed-mean` and `median` converted to
    /// replicated sharing, and kept for the close ([`AggregatorService::close_kept`]).
    pub(crate) async fn run_check(
        &self,
        job: &Job,
        round: u64,
        seq: u64,
        component: Component,
    ) -> Result<(), ServiceError> {
        let settings = &job.settings;
        let len = settings.update_len();
        let id = secagg_session_id(settings.job_id, round, seq);
        let failed = |e: MpcError| ServiceError::CheckFailed(e.to_string());
        match settings.rule {
            AggregationRule::Mean if !settings.checks_uploads() => Ok(()),
            // The range and windows (and under `norm-bound` the norm): only the verdict opened.
            AggregationRule::Mean | AggregationRule::NormBound { .. } => {
                let bound = match settings.rule {
                    AggregationRule::NormBound { bound } => Some(bound),
                    _ => None,
                };
                let check = bound
                    .map_or_else(|| settings.range_check(), |b| settings.norm_bound(b))
                    .map_err(|e| ServiceError::CheckFailed(e.to_string()))?;
                let verdict = self
                    .in_session(id, async |session| {
                        let shared = replicate(session, &component, len).await?;
                        match bound {
                            Some(_) => norm_bound_verdict(session, &shared, &check).await,
                            None => range_verdict(session, &shared, &check).await,
                        }
                    })
                    .await
                    .map_err(failed)?;
                if verdict {
                    Ok(())
                } else {
                    Err(ServiceError::RuleRejected {
                        rule: settings.rule.to_string(),
                    })
                }
            }
            AggregationRule::Clip { bound } => {
                let check = settings
                    .norm_bound(bound)
                    .map_err(|e| ServiceError::CheckFailed(e.to_string()))?;
                let frac_bits = settings.frac_bits;
                let clipped = self
                    .in_session(id, async |session| {
                        clip_upload(session, &component, len, &check, bound, frac_bits).await
                    })
                    .await
                    .map_err(failed)?;
                let clipped = clipped.ok_or_else(|| ServiceError::RuleRejected {
                    rule: settings.rule.to_string(),
                })?;
                lock(&job.kept).insert((round, seq), clipped);
                Ok(())
            }
            AggregationRule::TrimmedMean { .. } | AggregationRule::Median => {
                let shared = self
                    .in_session(id, async |session| {
                        replicate(session, &component, len).await
                    })
                    .await
                    .map_err(failed)?;
                lock(&job.kept).insert((round, seq), shared);
                Ok(())
            }
        }
    }

    /// This server's share of round `round`'s aggregate under a rule that keeps the uploads:
    /// the kept uploads of the forwards `seqs` (the leader: every one kept for the round, as it
    /// drops the others at their decision), summed under `clip`, sorted under ABY3 in the
    /// session of the close `close_seq` under `trimmed-mean` and `median`. Every other upload
    /// kept for this round or an earlier one is dropped.
    pub(crate) async fn close_kept(
        &self,
        job: &Job,
        round: u64,
        close_seq: u64,
        seqs: Option<&[u64]>,
    ) -> Result<RingVec, ServiceError> {
        let uploads: Vec<Aby3Tensor<u64>> = {
            let mut kept = lock(&job.kept);
            let later = kept.split_off(&(round + 1, 0));
            let mine = std::mem::replace(&mut *kept, later);
            drop(kept);
            mine.into_iter()
                .filter(|((r, seq), _)| *r == round && seqs.is_none_or(|s| s.contains(seq)))
                .map(|(_, x)| x)
                .collect()
        };
        if let Some(seqs) = seqs.filter(|s| s.len() != uploads.len()) {
            return Err(ServiceError::CheckFailed(format!(
                "{} of the {} committed uploads were converted here",
                uploads.len(),
                seqs.len()
            )));
        }
        if !job.settings.rule.is_order_statistic() {
            // Each server's first share of every clipped upload: their sum over the servers is
            // the sum of the uploads.
            let mut sum = vec![0u64; job.settings.update_len()];
            for u in &uploads {
                for (a, b) in sum.iter_mut().zip(u.shares().0) {
                    *a = a.wrapping_add(*b);
                }
            }
            return Ok(RingVec::U64(sum));
        }
        let trim = job.settings.rule.trim(uploads.len());
        let id = secagg_session_id(job.settings.job_id, round, close_seq);
        let sum = self
            .in_session(id, async |session| {
                trimmed_sum(session, &uploads, trim).await
            })
            .await
            .map_err(|e| ServiceError::CheckFailed(e.to_string()))?;
        Ok(RingVec::U64(sum.shares().0.to_vec()))
    }

    /// Runs `f` in the MPC session `id` among the servers, and forgets whatever of the session
    /// is left on the network afterwards.
    async fn in_session<T>(
        &self,
        id: u64,
        f: impl AsyncFnOnce(&Arc<Session<N>>) -> Result<T, MpcError>,
    ) -> Result<T, MpcError> {
        let out = async {
            let session = Arc::new(Session::with_id(Arc::clone(&self.network), id).await?);
            f(&session).await
        }
        .await;
        self.network.forget(&session_prefix(id));
        out
    }

    /// Drops, after [`CHECK_LINGER`], whatever of an abandoned check's session arrives late.
    pub(crate) fn forget_check_later(self: &Arc<Self>, job: u64, round: u64, seq: u64) {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(CHECK_LINGER).await;
            service
                .network
                .forget(&session_prefix(secagg_session_id(job, round, seq)));
        });
    }
}

/// The kept uploads, whoever panicked holding them.
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
