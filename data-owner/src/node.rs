//! The data-owner node: waits for rounds, trains locally, uploads its sealed, shared update.
//!
//! Per round: fetch the global weights (sealed by the leader for this owner), train `local_epochs`
//! on the local data, form the update `[clip(delta) * w, min(loss, 16) / 16 * w, w]` with `w` the
//! sample count capped at `max_weight` (`w = 1` under the robust rules, and under differential
//! privacy with the vector before `w` clipped to the job's L2 bound:
//! [`JobSettings::equal_weights`]), encode it in fixed point, share it with seed compression
//! among the servers, seal every part and upload. A failed round is logged and the node waits for
//! the next; an unreachable leader is retried with exponential backoff.

use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundAnnouncement, UploadReceipt};
use tessera_common::dataset::Dataset;
use tessera_common::dp::{Ledger, LedgerError, PrivacyPolicy, PrivacyRefusal};
use tessera_common::fixed::FixedPointError;
use tessera_common::job::JobSettings;
use tessera_common::model_spec::DataMismatch;
use tessera_common::notice::seal_decline;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Purpose, SealError, Sealer};
use tessera_common::upload::{UploadBuildError, build_upload_vec};
use tracing::{error, info, warn};

use tessera_ml::{ModelError, TrainSettings, train_local};

/// Why a round failed for this node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoundError {
    /// The leader refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The weights did not open (not from the leader, or tampered).
    #[error("weights: {0}")]
    Seal(#[from] SealError),
    /// The weights have the wrong length or non-finite values.
    #[error("weights: {0}")]
    BadWeights(String),
    /// Training failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The update does not encode (non-finite after training).
    #[error(transparent)]
    Encode(#[from] FixedPointError),
    /// Sharing or sealing failed.
    #[error(transparent)]
    Upload(#[from] UploadBuildError),
    /// The job's privacy is below the cluster's minimum, or the round would take this owner
    /// past its own budget: nothing is uploaded.
    #[error("privacy: {0}")]
    Privacy(#[from] PrivacyRefusal),
    /// This owner's privacy ledger could not be read or written: nothing is uploaded.
    #[error(transparent)]
    Ledger(LedgerError),
    /// The round announcement's job settings (sent in clear) differ from those the leader sealed
    /// for this owner: someone on the path changed them, and nothing is uploaded.
    #[error("the announced job settings differ from the leader's sealed ones: {field} changed")]
    SettingsMismatch {
        /// The first differing field.
        field: String,
    },
}

/// What one round did.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The receipt of the upload.
    pub receipt: UploadReceipt,
    /// Mean local training loss of the last epoch.
    pub train_loss: f64,
    /// Bytes uploaded (envelopes).
    pub upload_bytes: usize,
}

/// Training losses are reported up to this bound, scaled into `[0, 1]` before weighting.
pub const LOSS_BOUND: f64 = 16.0;

/// How often a serving data owner asks the leader for a new job once its last one is done.
pub const NEXT_JOB_POLL: Duration = Duration::from_secs(1);

/// Forms the plaintext update: clipped deltas and clipped loss, each times the weight, then the
/// weight.
pub fn form_update(
    settings: &JobSettings,
    start: &[f32],
    trained: &[f32],
    train_loss: f64,
    samples: usize,
) -> Vec<f64> {
    // Under differential privacy (its vector clipped in L2, dp module) and under the robust
    // rules (whose bounds no declared weight may loosen) every owner counts once.
    let w = if settings.equal_weights() {
        1.0
    } else {
        (samples as f64).min(settings.max_weight)
    };
    let clip = settings.clip;
    let mut update: Vec<f64> = trained
        .iter()
        .zip(start)
        .map(|(t, s)| (f64::from(*t) - f64::from(*s)).clamp(-clip, clip) * w)
        .collect();
    update.push(train_loss.clamp(0.0, LOSS_BOUND) / LOSS_BOUND * w);
    if let Some(dp) = &settings.dp {
        let bound = dp.owner_clip(update.len(), settings.frac_bits);
        tessera_common::dp::clip_l2(&mut update, bound);
    }
    update.push(w);
    update
}

/// What a node does to its data before it trains and to its update before it shares it: nothing
/// for an honest node. The simulated attacks ([`crate::attack::Attack`]) plug in here, so the
/// honest node's code knows of no attack.
pub trait RoundHook: Send + Sync {
    /// The data this round trains on, from the node's own.
    fn data(&self, own: &Dataset) -> Dataset;
    /// The update this round sends, from the honest one `(w delta, w loss, w)`.
    fn update(&self, settings: &JobSettings, honest: Vec<f64>) -> Vec<f64>;
}

/// One institution's node.
pub struct DataOwnerNode<L: LeaderApi> {
    me: PartyId,
    sealer: Sealer,
    leader: L,
    data: Dataset,
    show_progress: bool,
    audit_dir: Option<std::path::PathBuf>,
    hook: Option<Box<dyn RoundHook>>,
    privacy: PrivacyPolicy,
    ledger: Option<std::sync::Mutex<Ledger>>,
}

/// Why this owner sits a job out (told to the leader, [`DataOwnerNode::decline`]).
#[derive(Debug, Clone)]
enum Unfit {
    /// Its data does not fit the job's model.
    Data(DataMismatch),
    /// The job's privacy is below the cluster's minimum.
    Privacy(PrivacyRefusal),
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Data(m) => m.fmt(f),
            Unfit::Privacy(p) => p.fmt(f),
        }
    }
}

impl From<Unfit> for RoundError {
    fn from(u: Unfit) -> Self {
        match u {
            Unfit::Data(m) => RoundError::Model(m.into()),
            Unfit::Privacy(p) => RoundError::Privacy(p),
        }
    }
}

impl<L: LeaderApi> std::fmt::Debug for DataOwnerNode<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataOwnerNode({}, {} samples)", self.me, self.data.len())
    }
}

impl<L: LeaderApi> DataOwnerNode<L> {
    /// A node for `sealer.me()` holding `data`.
    pub fn new(sealer: Sealer, leader: L, data: Dataset, show_progress: bool) -> Self {
        DataOwnerNode {
            me: sealer.me(),
            sealer,
            leader,
            data,
            show_progress,
            audit_dir: None,
            hook: None,
            privacy: PrivacyPolicy::default(),
            ledger: None,
        }
    }

    /// Makes this node enforce the cluster's minimum privacy (`[privacy]` of the cluster file):
    /// it sits out, and tells the leader, any job below it.
    pub fn with_privacy(mut self, policy: PrivacyPolicy) -> Self {
        self.privacy = policy;
        self
    }

    /// Makes this node keep its own privacy ledger across jobs and refuse any round that would
    /// take it past the ledger's budget (charged before the upload leaves: see
    /// [`tessera_common::dp::ledger`]).
    pub fn with_ledger(mut self, ledger: Ledger) -> Self {
        self.ledger = Some(std::sync::Mutex::new(ledger));
        self
    }

    /// Runs every round through `hook` (a simulated attack: [`crate::attack::Attack`]).
    pub fn with_hook(mut self, hook: impl RoundHook + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Keeps a record of every update this node uploads: `<dir>/update-<owner>-<job>-<round>.bin`, the
    /// encoded update (little-endian ring elements) before sharing. An institution's own audit trail
    /// of what it contributed; it never leaves the institution.
    pub fn with_audit_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.audit_dir = Some(dir);
        self
    }

    /// Takes part in every round of `job_id` (0: the newest job) until the job is done.
    /// Progress is kept per job: when the newest job changes under `job_id` 0 (a job stopped and
    /// another started), the new job's rounds count from its first.
    pub async fn run(&self, job_id: u64) -> Vec<Result<RoundReport, RoundError>> {
        self.run_job(job_id).await.1
    }

    /// Serves as a long-lived service: with `job_id` 0, every job the leader starts, one after
    /// another, never returning; otherwise that one job.
    pub async fn serve(&self, job_id: u64) {
        if job_id != 0 {
            let reports = self.run(job_id).await;
            info!(me = %self.me, job = job_id, rounds = reports.len(), "job done");
            return;
        }
        loop {
            let (job, reports) = self.run_job(0).await;
            let uploaded = reports.iter().filter(|r| r.is_ok()).count();
            info!(me = %self.me, job, rounds = reports.len(), uploaded, "job done; waiting for the next");
            // Until the leader's newest job is another one.
            loop {
                match self.leader.fetch_round(self.me, 0, 0).await {
                    Ok(ann) if ann.settings.job_id != job || !ann.job_done => break,
                    Ok(_) => {}
                    Err(e) => warn!(me = %self.me, error = %e, "cannot reach the leader"),
                }
                tokio::time::sleep(NEXT_JOB_POLL).await;
            }
        }
    }

    /// [`DataOwnerNode::run`], and the id of the job it ended with.
    async fn run_job(&self, job_id: u64) -> (u64, Vec<Result<RoundReport, RoundError>>) {
        let mut reports = Vec::new();
        // The job being served and the last of its rounds taken part in.
        let mut job = job_id;
        let mut after = 0;
        // The job whose model was checked against the data and the cluster's minimum privacy,
        // and how it fits them.
        let mut checked: Option<(u64, Result<(), Unfit>)> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let ann = match self.leader.fetch_round(self.me, job_id, after).await {
                Ok(a) => {
                    backoff = Duration::from_millis(100);
                    a
                }
                Err(e) => {
                    warn!(me = %self.me, error = %e, retry_in = ?backoff, "cannot reach the leader");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if ann.settings.job_id != job {
                if job != 0 {
                    info!(me = %self.me, old = job, new = ann.settings.job_id, "a new job replaced the one served");
                }
                job = ann.settings.job_id;
                after = 0;
            }
            let (fit, just_checked) = match &checked {
                Some((j, fit)) if *j == job => (fit.clone(), false),
                _ => {
                    let fit = self.check_fit(&ann.settings);
                    if let Err(unfit) = &fit {
                        self.decline(&ann.settings, unfit).await;
                        reports.push(Err(unfit.clone().into()));
                    }
                    checked = Some((job, fit.clone()));
                    (fit, true)
                }
            };
            if ann.round > after && ann.state.accepts_uploads() {
                after = ann.round;
                if let Err(unfit) = &fit {
                    // Again at each new round: a leader restarted since the first notice
                    // has forgotten it and would wait out the round's deadline for this
                    // place (the leader keeps one notice per owner: a repeat replaces it).
                    if !just_checked {
                        self.decline(&ann.settings, unfit).await;
                    }
                } else {
                    let result = self.take_part(&ann).await;
                    match &result {
                        Ok(r) => {
                            info!(me = %self.me, job, round = ann.round, loss = r.train_loss, bytes = r.upload_bytes, "update uploaded")
                        }
                        Err(e) => {
                            warn!(me = %self.me, job, round = ann.round, error = %e, "round failed; waiting for the next")
                        }
                    }
                    reports.push(result);
                }
            }
            if ann.job_done {
                return (job, reports);
            }
        }
    }

    /// Checks the job's model against this owner's data, and its privacy against the cluster's
    /// minimum, when the owner first sees the job. If either does not fit (or there are no
    /// examples), the owner sits the job out and tells the leader why ([`Self::decline`]).
    fn check_fit(&self, settings: &JobSettings) -> Result<(), Unfit> {
        let fit = if self.data.is_empty() {
            // An owner without examples would upload a weight of 0 as a contributor.
            Err(Unfit::Data(DataMismatch::NoExamples))
        } else {
            settings
                .model
                .check_data(&self.data.sample_shape, self.data.max_label())
                .map_err(Unfit::Data)
        }
        .and_then(|()| {
            self.privacy
                .check(settings.dp.as_ref(), settings.frac_bits)
                .map_err(Unfit::Privacy)
        });
        if let Err(unfit) = &fit {
            error!(me = %self.me, job = settings.job_id, reason = %unfit, "declining the job");
        }
        fit
    }

    /// Tells the leader that this owner cannot take part in the job, and why (the model owner
    /// sees it in the job's status): retried while the leader is unreachable, up to 5 times.
    async fn decline(&self, settings: &JobSettings, why: &impl std::fmt::Display) {
        let envelope = match seal_decline(&self.sealer, settings.job_id, &why.to_string()) {
            Ok(e) => e,
            Err(e) => {
                warn!(me = %self.me, error = %e, "cannot seal the notice to the leader");
                return;
            }
        };
        let mut backoff = Duration::from_millis(200);
        for _ in 0..5 {
            match self.leader.decline(envelope.clone()).await {
                Ok(()) => break,
                Err(ApiError::Unavailable(e)) => {
                    warn!(me = %self.me, error = %e, retry_in = ?backoff, "cannot reach the leader to decline");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    warn!(me = %self.me, error = %e, "the leader refused the notice");
                    break;
                }
            }
        }
    }

    /// Trains on `start` and uploads the update for the announced round.
    pub async fn take_part(&self, ann: &RoundAnnouncement) -> Result<RoundReport, RoundError> {
        let settings = &ann.settings;
        self.privacy
            .check(settings.dp.as_ref(), settings.frac_bits)?;
        let start = self.fetch_weights(settings, ann.round).await?;
        let train = TrainSettings {
            epochs: settings.local_epochs,
            batch_size: settings.batch_size,
            learning_rate: settings.learning_rate,
            shuffle_seed: ann.round
                ^ u64::from(match self.me {
                    PartyId::DataOwner(i) => i,
                    _ => 0,
                }) << 32,
        };
        let data = match &self.hook {
            Some(hook) => hook.data(&self.data),
            None => self.data.clone(),
        };
        let (spec, show) = (settings.model.clone(), self.show_progress);
        let start_for_training = start.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let bar = progress_bar(show);
            let result = train_local(&spec, &start_for_training, &data, &train, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            result
        })
        .await
        .map_err(|e| RoundError::BadWeights(format!("training task failed: {e}")))??;
        let update = form_update(
            settings,
            &start,
            &outcome.params,
            outcome.mean_loss,
            self.data.len(),
        );
        let update = match &self.hook {
            Some(hook) => hook.update(settings, update),
            None => update,
        };
        let encoded = RingVec::encode(settings.ring_bits, settings.fixed_point(), &update)?;
        let envelopes = build_upload_vec(
            &self.sealer,
            settings.job_id,
            ann.round,
            &encoded,
            settings.frac_bits,
            settings.num_servers,
            &mut rand::rng(),
        )?;
        let upload_bytes = envelopes.iter().map(Vec::len).sum();
        if let Some(ledger) = &self.ledger {
            let charged = ledger.lock().unwrap_or_else(|p| p.into_inner()).charge(
                settings.job_id,
                ann.round,
                settings.dp.as_ref(),
                settings.frac_bits,
            );
            match charged {
                Ok(epsilon) => {
                    info!(me = %self.me, job = settings.job_id, round = ann.round, epsilon, "privacy ledger charged")
                }
                Err(LedgerError::Refused(refusal)) => {
                    self.decline(settings, &refusal).await;
                    return Err(RoundError::Privacy(refusal));
                }
                Err(e) => return Err(RoundError::Ledger(e)),
            }
        }
        if let Some(dir) = &self.audit_dir {
            let path = dir.join(format!(
                "update-{}-{}-{}.bin",
                self.me, settings.job_id, ann.round
            ));
            if let Err(e) = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, encoded.to_le_bytes(0..encoded.len())))
            {
                warn!(me = %self.me, path = %path.display(), error = %e, "cannot write the audit record");
            }
        }
        let receipt = self.leader.upload(envelopes).await?;
        Ok(RoundReport {
            receipt,
            train_loss: outcome.mean_loss,
            upload_bytes,
        })
    }

    async fn fetch_weights(
        &self,
        settings: &JobSettings,
        round: u64,
    ) -> Result<Vec<f32>, RoundError> {
        let envelopes = self
            .leader
            .fetch_weights(self.me, settings.job_id, round)
            .await?;
        let expected = Expected {
            purpose: Purpose::Control,
            job_id: settings.job_id,
            round,
            sender: Some(PartyId::Server(0)),
        };
        // Chunk 0: the job's settings as the leader holds them, sealed for this owner; the
        // weights follow from chunk 1.
        let mut bytes = Vec::with_capacity(settings.num_params * 4);
        for (i, env) in envelopes.iter().enumerate() {
            let opened = self.sealer.open(env, &expected)?;
            if opened.header.chunk != i as u64 {
                return Err(RoundError::BadWeights(format!(
                    "chunk {} out of order",
                    opened.header.chunk
                )));
            }
            if i == 0 {
                let sealed: JobSettings = serde_json::from_slice(&opened.plaintext)
                    .map_err(|e| RoundError::BadWeights(format!("sealed job settings: {e}")))?;
                check_settings(settings, &sealed)?;
            } else {
                bytes.extend_from_slice(&opened.plaintext);
            }
        }
        if bytes.len() != settings.num_params * 4 {
            return Err(RoundError::BadWeights(format!(
                "{} bytes for {} parameters",
                bytes.len(),
                settings.num_params
            )));
        }
        let weights: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if weights.iter().any(|w| !w.is_finite()) {
            return Err(RoundError::BadWeights("non-finite weight".into()));
        }
        Ok(weights)
    }
}

/// Refuses announced settings that differ from the sealed ones, naming the first field.
fn check_settings(announced: &JobSettings, sealed: &JobSettings) -> Result<(), RoundError> {
    if announced == sealed {
        return Ok(());
    }
    let (a, b) = (
        serde_json::to_value(announced).unwrap_or_default(),
        serde_json::to_value(sealed).unwrap_or_default(),
    );
    let field = a
        .as_object()
        .and_then(|fields| fields.keys().find(|k| a[k.as_str()] != b[k.as_str()]))
        .cloned()
        .unwrap_or_else(|| "settings".into());
    Err(RoundError::SettingsMismatch { field })
}

fn progress_bar(show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("local training {bar:30} {pos}/{len} batches")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::model_spec::ModelSpec;

    #[test]
    fn updates_are_clipped_and_weighted() {
        let model = ModelSpec::logistic_regression();
        let settings = JobSettings {
            rounds: 1,
            clip: 0.5,
            max_weight: 100.0,
            max_clients: 2,
            round_deadline_ms: 10,
            batch_size: 1,
            num_servers: 2,
            ..JobSettings::new(1, model).unwrap()
        };
        let u = form_update(&settings, &[0.0, 1.0], &[2.0, 0.75], 0.3, 500);
        assert_eq!(
            u,
            vec![0.5 * 100.0, -0.25 * 100.0, 0.3 / LOSS_BOUND * 100.0, 100.0]
        );
        // Under a robust rule every owner counts once, whatever its sample count.
        let robust = JobSettings {
            rule: tessera_common::rule::AggregationRule::NormBound { bound: 1.0 },
            ..settings.clone()
        };
        let u = form_update(&robust, &[0.0, 1.0], &[2.0, 0.75], 0.3, 500);
        assert_eq!(u, vec![0.5, -0.25, 0.3 / LOSS_BOUND, 1.0]);
        // Under differential privacy: weight 1, the vector before it clipped in L2 to the
        // bound less the rounding of its three encoded coordinates.
        let dp = tessera_common::dp::DpSettings {
            noise_multiplier: 1.0,
            clip: 0.2,
            delta: 1e-5,
        };
        let settings = JobSettings {
            dp: Some(dp),
            ..settings
        };
        let u = form_update(&settings, &[0.0, 1.0], &[2.0, 0.75], 0.3, 500);
        assert_eq!(u[3], 1.0);
        let norm = u[..3].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(
            (norm - dp.owner_clip(3, 16)).abs() < 1e-12 && norm < 0.2,
            "{u:?}"
        );
        // The direction is kept: 0.5 and -0.25 stay in ratio.
        assert!((u[0] / u[1] + 2.0).abs() < 1e-12);
    }
}
