//! The federated training loop the model owner drives.
//!
//! Start the job on every server; then per round: open it on the leader with the current weights,
//! wait until it is aggregated (or failed), fetch every server's sealed result share, reveal the
//! sum, apply the server optimizer, evaluate on the held-out test set, checkpoint and log metrics.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tessera_common::PartyId;
use tessera_common::api::{ApiError, JobStatus, RoundState, ServerApi};
use tessera_common::chunks::{Keys, Message, seal_chunks};
use tessera_common::dataset::Dataset;
use tessera_common::job::JobSettings;
use tessera_common::model_file::ModelChoice;
use tessera_common::seal::{Context, Purpose, Sealer};
use tessera_common::upload::UPLOAD_CHUNK_BYTES;
use tessera_ml::{ModelError, evaluate};
use tracing::{info, warn};

use crate::checkpoint::Checkpoint;
use crate::optimizer::OptimizerState;
use crate::report::{self, RoundMetrics};
use crate::reveal::{decode_aggregate, reveal_sum};

mod error;

pub use error::TrainError;

/// How long the model owner waits for servers that are still starting.
const STARTUP_WAIT: Duration = Duration::from_secs(120);

/// How to run training.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// The job.
    pub settings: JobSettings,
    /// Where metrics, plot and checkpoint go.
    pub out_dir: PathBuf,
    /// Show a progress bar over rounds.
    pub show_progress: bool,
    /// Print one line per round on stdout.
    pub print_rounds: bool,
    /// Keep each round's revealed sum (`aggregate-<job>-<round>.bin`, little-endian ring elements)
    /// and contributors (`aggregate-<job>-<round>.txt`) in this folder.
    pub audit_dir: Option<PathBuf>,
    /// The data owners who may take part (the cluster file's), to say who a round still waits
    /// for.
    pub data_owners: Vec<PartyId>,
}

/// The outcome of a training run.
#[derive(Debug, Clone)]
pub struct TrainingSummary {
    /// Final weights.
    pub weights: Vec<f32>,
    /// One row per round.
    pub metrics: Vec<RoundMetrics>,
    /// Test accuracy of the final weights.
    pub final_accuracy: f64,
}

/// The model owner's driver over the servers `servers[i]` = `server{i}`.
pub struct Trainer<S: ServerApi> {
    servers: Vec<S>,
    sealer: Sealer,
    config: TrainerConfig,
    test: Dataset,
    /// The data owners whose declining was already said.
    reported: std::sync::Mutex<std::collections::BTreeSet<PartyId>>,
}

impl<S: ServerApi> std::fmt::Debug for Trainer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trainer(job {})", self.config.settings.job_id)
    }
}

fn api(server: usize) -> impl Fn(ApiError) -> TrainError {
    move |source| TrainError::Api {
        server: PartyId::Server(server as u8),
        source,
    }
}

impl<S: ServerApi> Trainer<S> {
    /// A trainer over `servers` (in index order), sealing as the model owner.
    pub fn new(servers: Vec<S>, sealer: Sealer, config: TrainerConfig, test: Dataset) -> Self {
        Trainer {
            servers,
            sealer,
            config,
            test,
            reported: Default::default(),
        }
    }

    /// Starts the job on every server.
    pub async fn start_job(&self) -> Result<(), TrainError> {
        let settings = &self.config.settings;
        let json = serde_json::to_vec(settings)
            .map_err(|e| TrainError::Internal(format!("job settings: {e}")))?;
        for (i, server) in self.servers.iter().enumerate() {
            let ctx = Context {
                purpose: Purpose::Control,
                job_id: settings.job_id,
                round: 0,
                chunk: 0,
            };
            let envelope = self
                .sealer
                .seal_for(PartyId::Server(i as u8), &ctx, &json)?;
            // Servers may still be starting or connecting to each other: retry while unavailable.
            let start = Instant::now();
            let mut backoff = Duration::from_millis(100);
            let mut said = None;
            loop {
                match server.start_job(envelope.clone()).await {
                    Ok(_) => break,
                    Err(ApiError::Unavailable(reason)) if start.elapsed() < STARTUP_WAIT => {
                        // Say who is awaited at once and every 10 s, not only when giving up.
                        if said.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                            warn!(
                                "waiting for server{i} ({reason}); retrying for up to {}s",
                                STARTUP_WAIT.saturating_sub(start.elapsed()).as_secs()
                            );
                            said = Some(Instant::now());
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => return Err(api(i)(e)),
                }
            }
        }
        Ok(())
    }

    /// Runs rounds `1..=settings.rounds` from `checkpoint` (its weights, optimizer and metrics).
    pub async fn run(&self, mut checkpoint: Checkpoint) -> Result<TrainingSummary, TrainError> {
        let settings = self.config.settings.clone();
        let out = &self.config.out_dir;
        std::fs::create_dir_all(out).map_err(writing(out))?;
        self.start_job().await?;
        if self.config.print_rounds {
            println!(
                "job {} started: {} rounds, {} parameters",
                settings.job_id, settings.rounds, settings.num_params
            );
        }
        let bar = if self.config.show_progress {
            indicatif::ProgressBar::new(settings.rounds)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("rounds {bar:30} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        let round_offset = checkpoint.metrics.len() as u64;
        let mut aggregated = 0u64;
        for round in 1..=settings.rounds {
            let started = Instant::now();
            let (contributors, train_loss, bytes) = self
                .round(round, round == 1, &mut checkpoint)
                .await?
                .unwrap_or((0, f64::NAN, 0));
            aggregated += u64::from(contributors > 0);
            let (accuracy, test_loss) = self.evaluate(&checkpoint.weights).await?;
            let row = RoundMetrics {
                round: round_offset + round,
                train_loss,
                test_loss,
                test_accuracy: accuracy,
                clients: contributors,
                bytes,
                seconds: started.elapsed().as_secs_f64(),
                epsilon: settings.dp.map(|dp| {
                    dp.spent(checkpoint.revealed_rounds, settings.frac_bits)
                        .epsilon
                }),
            };
            let mut line = format!(
                "round {:>3}: clients {} train loss {:.4} test loss {:.4} test accuracy {:.4} ({:.1} s)",
                row.round,
                row.clients,
                row.train_loss,
                row.test_loss,
                row.test_accuracy,
                row.seconds
            );
            if contributors == 0 {
                line += " FAILED: no aggregate, the model is unchanged";
            }
            if let Some(dp) = &settings.dp {
                let per_round = dp.spent(1, settings.frac_bits);
                let total = dp.spent(checkpoint.revealed_rounds, settings.frac_bits);
                line += &format!(
                    " privacy: epsilon {:.3} this round, {:.3} in total over {} aggregates (delta {:e}, RDP of the sampled Gaussian)",
                    per_round.epsilon, total.epsilon, checkpoint.revealed_rounds, total.delta
                );
            }
            if self.config.print_rounds {
                bar.suspend(|| println!("{line}"));
            }
            info!("{line}");
            bar.set_message(format!("accuracy {accuracy:.4}"));
            bar.inc(1);
            checkpoint.metrics.push(row);
            checkpoint.save(&self.config.out_dir.join("checkpoint.json"))?;
            let csv = self.config.out_dir.join("metrics.csv");
            report::write_metrics_csv(&csv, &checkpoint.metrics).map_err(writing(&csv))?;
            let title = format!(
                "Tessera job {}: federated training, {} parameters, {} rounds",
                settings.job_id, settings.num_params, settings.rounds
            );
            let labels = report::PlotLabels {
                title: &title,
                step: "round",
            };
            for name in ["metrics.png", "metrics.svg"] {
                let path = self.config.out_dir.join(name);
                report::write_plot(&path, labels, &checkpoint.metrics).map_err(writing(&path))?;
            }
        }
        bar.finish_and_clear();
        if aggregated == 0 {
            return Err(TrainError::NoContributions {
                rounds: settings.rounds,
                metrics: self.config.out_dir.join("metrics.csv"),
            });
        }
        let final_accuracy = checkpoint
            .metrics
            .last()
            .map(|m| m.test_accuracy)
            .unwrap_or(0.0);
        Ok(TrainingSummary {
            weights: checkpoint.weights,
            metrics: checkpoint.metrics,
            final_accuracy,
        })
    }

    async fn evaluate(&self, weights: &[f32]) -> Result<(f64, f64), TrainError> {
        let (spec, weights, test) = (
            self.config.settings.model.clone(),
            weights.to_vec(),
            self.test.clone(),
        );
        tokio::task::spawn_blocking(move || evaluate(&spec, &weights, &test))
            .await
            .map_err(|e| TrainError::Internal(format!("evaluation: {e}")))?
            .map_err(TrainError::from)
    }

    /// Whether server `i` is still in `round` of the job (or past it with a result): not so
    /// after it restarted, when it holds the job from a later round on, or not at all.
    async fn holds_round(&self, i: usize, round: u64) -> bool {
        match self.servers[i].status(self.config.settings.job_id).await {
            Ok(status) => status.round == round && status.state != RoundState::Failed,
            // Unreachable now: the next fetch says so.
            Err(ApiError::Unavailable(_)) => true,
            Err(_) => false,
        }
    }

    /// Says (once each) which data owners declined the job and why, and fails the job when
    /// too few data owners are left to reach `min_clients`.
    fn check_declined(&self, status: &JobStatus) -> Result<(), TrainError> {
        if status.declined.is_empty() {
            return Ok(());
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for (owner, reason) in &status.declined {
            if reported.insert(*owner) {
                warn!("{owner} cannot take part: {reason}");
            }
        }
        let owners = &self.config.data_owners;
        let able = owners
            .iter()
            .filter(|o| !status.declined.iter().any(|(d, _)| d == *o))
            .count();
        let min_clients = self.config.settings.min_clients;
        if !owners.is_empty() && able < min_clients {
            return Err(TrainError::Declined {
                declined: status.declined.clone(),
                able,
                min_clients,
            });
        }
        Ok(())
    }

    /// One round; `None` if it failed (too few contributors, a server lost mid-round) or its
    /// aggregate was refused, leaving the weights unchanged.
    ///
    /// A server that cannot be reached fails the round, not the run: every round after the
    /// run's first starts the job again on every server (idempotent for a server that holds it),
    /// waiting up to [`STARTUP_WAIT`] for one that is restarting, so a restarted server takes
    /// the job up at the next round.
    async fn round(
        &self,
        round: u64,
        first: bool,
        checkpoint: &mut Checkpoint,
    ) -> Result<Option<(usize, f64, u64)>, TrainError> {
        if !first {
            self.start_job().await?;
        }
        match self.round_on_servers(round, checkpoint).await {
            Err(TrainError::Api {
                server,
                source: ApiError::Unavailable(reason),
            }) => {
                warn!(
                    round,
                    %server,
                    %reason,
                    "round failed: a server is unreachable; the next round starts the job on it again"
                );
                Ok(None)
            }
            other => other,
        }
    }

    /// [`Trainer::round`] once the job is started on every server.
    async fn round_on_servers(
        &self,
        round: u64,
        checkpoint: &mut Checkpoint,
    ) -> Result<Option<(usize, f64, u64)>, TrainError> {
        let settings = &self.config.settings;
        let mut bytes = 0u64;
        let weight_bytes: Vec<u8> = checkpoint
            .weights
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let message = Message {
            purpose: Purpose::Control,
            job_id: settings.job_id,
            round,
        };
        let envelopes = seal_chunks(
            &self.sealer,
            PartyId::Server(0),
            message,
            Keys::Static,
            weight_bytes.chunks(UPLOAD_CHUNK_BYTES),
        )?;
        bytes += envelopes.iter().map(|e| e.len() as u64).sum::<u64>();
        self.servers[0]
            .open_round(envelopes)
            .await
            .map_err(api(0))?;

        let waited_max =
            Duration::from_millis(settings.round_deadline_ms) + Duration::from_secs(120);
        let waiting = Instant::now();
        let mut said = Instant::now();
        let status = loop {
            let status = self.servers[0]
                .status(settings.job_id)
                .await
                .map_err(api(0))?;
            self.check_declined(&status)?;
            if status.round == round
                && matches!(status.state, RoundState::Aggregated | RoundState::Failed)
            {
                break status;
            }
            if waiting.elapsed() > waited_max {
                return Err(TrainError::RoundTimeout {
                    round,
                    waited: waited_max,
                });
            }
            // Every 10 s of a round, say who has not uploaded yet.
            if status.round == round && said.elapsed() >= Duration::from_secs(10) {
                warn!(
                    "round {round}: {} of {} data owners uploaded after {}s (deadline {}s); waiting for {}",
                    status.contributors.len(),
                    self.config.data_owners.len(),
                    waiting.elapsed().as_secs(),
                    settings.round_deadline_ms / 1000,
                    missing(&self.config.data_owners, &status.contributors)
                );
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if status.state == RoundState::Failed {
            warn!(
                round,
                reason = %status.message,
                missing = %missing(&self.config.data_owners, &status.contributors),
                "round failed"
            );
            return Ok(None);
        }
        let mut shares = Vec::with_capacity(self.servers.len());
        for (i, server) in self.servers.iter().enumerate() {
            let mut polls = 0u32;
            let fetched = loop {
                match server.fetch_result(settings.job_id, round).await {
                    Ok(s) => break s,
                    Err(ApiError::NotReady(why)) if waiting.elapsed() < waited_max => {
                        // Now and then: a server restarted since the round began holds no
                        // share of it, and never will.
                        polls += 1;
                        if polls.is_multiple_of(20) && !self.holds_round(i, round).await {
                            warn!(
                                round,
                                server = %PartyId::Server(i as u8),
                                %why,
                                "round failed: the server lost its share of the round (restarted?)"
                            );
                            return Ok(None);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(api(i)(e)),
                }
            };
            bytes += fetched.iter().map(|e| e.len() as u64).sum::<u64>();
            shares.push((PartyId::Server(i as u8), fetched));
        }
        let sum = reveal_sum(&self.sealer, settings, round, &shares)?;
        checkpoint.revealed_rounds += 1;
        if let Some(dir) = &self.config.audit_dir {
            std::fs::create_dir_all(dir).map_err(writing(dir))?;
            let stem = format!("aggregate-{}-{round}", settings.job_id);
            let bin = dir.join(format!("{stem}.bin"));
            std::fs::write(&bin, sum.to_le_bytes(0..sum.len())).map_err(writing(&bin))?;
            let names: Vec<String> = status
                .contributors
                .iter()
                .map(ToString::to_string)
                .collect();
            let txt = dir.join(format!("{stem}.txt"));
            std::fs::write(&txt, names.join("\n") + "\n").map_err(writing(&txt))?;
        }
        // Under trimmed-mean and median the sum adds up fewer values than contributors.
        let summed = settings.rule.values_summed(status.contributors.len());
        let aggregate = match decode_aggregate(settings, &sum, summed) {
            Ok(a) => a,
            Err(e) => {
                warn!(round, reason = %e, "aggregate refused; the global model is kept");
                return Ok(None);
            }
        };
        checkpoint
            .optimizer
            .apply(&mut checkpoint.weights, &aggregate.mean_delta);
        checkpoint.next_round = round + 1;
        Ok(Some((
            status.contributors.len(),
            aggregate.mean_train_loss,
            bytes,
        )))
    }
}

/// The weights a fresh job of `settings` starts from: the model's own (an ONNX model's) when
/// `choice` brings them, else burn's initialisers.
pub fn starting_weights(
    choice: &ModelChoice,
    settings: &JobSettings,
) -> Result<Vec<f32>, TrainError> {
    match choice.initial_weights() {
        Some(weights) if weights.len() == settings.num_params => Ok(weights.to_vec()),
        Some(weights) => Err(TrainError::Model(ModelError::WrongLength {
            expected: settings.num_params,
            got: weights.len(),
        })),
        None => Ok(tessera_ml::initial_params(&settings.model)?),
    }
}

/// A fresh checkpoint: initial weights and optimizer state, no rounds yet.
pub fn initial_checkpoint(settings: &JobSettings, weights: Vec<f32>) -> Checkpoint {
    Checkpoint {
        next_round: 1,
        optimizer: OptimizerState::new(settings.optimizer, weights.len()),
        weights,
        metrics: Vec::new(),
        revealed_rounds: 0,
        settings: settings.clone(),
    }
}

/// At most this many missing owners are named in one line; the rest are counted.
const NAMED_MISSING: usize = 10;

/// The data owners of `all` not among `contributors`, comma-separated (`none` if every one is;
/// past [`NAMED_MISSING`] names, `and N more`).
fn missing(all: &[PartyId], contributors: &[PartyId]) -> String {
    let contributed: std::collections::HashSet<&PartyId> = contributors.iter().collect();
    let absent: Vec<&PartyId> = all.iter().filter(|p| !contributed.contains(p)).collect();
    let named: Vec<String> = absent
        .iter()
        .take(NAMED_MISSING)
        .map(ToString::to_string)
        .collect();
    match absent.len() {
        0 => "none".into(),
        n if n > NAMED_MISSING => format!("{} and {} more", named.join(", "), n - NAMED_MISSING),
        _ => named.join(", "),
    }
}

/// The error of writing `path`.
fn writing(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Report {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_round_names_who_has_not_uploaded() {
        let all: Vec<PartyId> = (0..4).map(PartyId::DataOwner).collect();
        let some = [PartyId::DataOwner(2), PartyId::DataOwner(0)];
        assert_eq!(missing(&all, &some), "data-owner-1, data-owner-3");
        assert_eq!(missing(&all, &all), "none");
        // Ten thousand owners are not one line of ten thousand names.
        let many: Vec<PartyId> = (0..10_000).map(PartyId::DataOwner).collect();
        let text = missing(&many, &many[..5]);
        assert!(text.starts_with("data-owner-5, data-owner-6,"), "{text}");
        assert!(text.ends_with("data-owner-14 and 9985 more"), "{text}");
    }
}
