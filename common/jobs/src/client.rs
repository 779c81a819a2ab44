//! The outside parties' end of the job service, transport-free: [`JobClient`] launches a job at
//! every server, shares inputs, fetches and reconstructs outputs, waits and aborts, over any
//! [`MpcTransport`] (gRPC in `tessera-proto`, direct calls in the aggregator's `jobs::local`).
//! The envelopes it exchanges are [`crate::envelope`]'s.

use std::future::Future;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::fixed::FixedPoint;
use tessera_common::model_spec::ModelSpec;
use tessera_common::protocol::ProtocolKind;
use tessera_common::refusal::Refusal;
use tessera_common::request::{RequestKind, now_secs, seal_request};
use tessera_common::ring::{Ring, RingTensor};
use tessera_common::seal::Sealer;
use tessera_common::sharing::SharingError;
use tessera_common::sharing::outside::{input_payloads, reconstruct};

use crate::client_error::{ClientError, Inconsistency};
use crate::envelope::{open_output, seal_abort, seal_input, seal_launch};
use crate::error::MpcServiceError as Error;
use crate::job::{JobKind, JobSpec};
use crate::state::JobState;
use crate::status::{MpcJobStatus, TransferInfo};
use crate::wire::{fetch_round, job_ids_of};

/// How an outside party reaches the servers' job services: gRPC in networked mode, direct
/// calls in tests. Every method names the server it talks to.
pub trait MpcTransport: Send + Sync {
    /// Sends a launch envelope to `server`.
    fn launch(
        &self,
        server: PartyId,
        envelope: Vec<u8>,
    ) -> impl Future<Output = Result<MpcJobStatus, ClientError>> + Send;
    /// Sends the chunks of one input to `server`.
    fn submit(
        &self,
        server: PartyId,
        envelopes: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Fetches output `round` of a job from `server` (a fetch-output token).
    fn fetch(
        &self,
        server: PartyId,
        job_id: u64,
        round: u64,
        token: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, ClientError>> + Send;
    /// A job's status at `server` (a status token).
    fn status(
        &self,
        server: PartyId,
        job_id: u64,
        token: Vec<u8>,
    ) -> impl Future<Output = Result<MpcJobStatus, ClientError>> + Send;
    /// Sends an abort envelope to `server`.
    fn abort(
        &self,
        server: PartyId,
        envelope: Vec<u8>,
    ) -> impl Future<Output = Result<MpcJobStatus, ClientError>> + Send;
}

/// An outside party's handle on the servers' job services.
pub struct JobClient<'a, T: MpcTransport> {
    /// The transport.
    pub transport: &'a T,
    /// The caller's sealer (knowing every server's key).
    pub sealer: &'a Sealer,
    /// The servers, `server0` first.
    pub servers: Vec<PartyId>,
    /// How long a job may take from launch to its output.
    pub timeout: Duration,
}

/// A random id in `launcher`'s own range ([`job_ids_of`]; every range lies below
/// `tessera-mpc`'s `session::SECAGG_SESSIONS`, whose ids are secure aggregation's).
pub fn random_job_id(launcher: PartyId) -> Result<u64, Error> {
    let ids = job_ids_of(launcher).ok_or_else(|| Error::Forbidden {
        party: launcher,
        what: "launch a job".into(),
    })?;
    Ok(ids.start + rand::Rng::next_u64(&mut rand::rng()) % (ids.end - ids.start))
}

/// Encodes reals as fixed point in ring `R` (a non-finite or out-of-range value is refused
/// with its position).
fn encode<R: Ring>(values: &[f64], frac_bits: u32) -> Result<Vec<R>, Error> {
    let fixed = FixedPoint { frac_bits };
    values
        .iter()
        .enumerate()
        .map(|(i, x)| {
            fixed
                .encode::<R>(*x)
                .map_err(|source| Error::Unencodable { index: i, source })
        })
        .collect()
}

/// Whether `len` elements fit `input`: exactly its shape, or whole rows up to it.
fn fits(input: &TransferInfo, len: usize) -> bool {
    let most: usize = input.shape.iter().product();
    match input.row {
        Some(row) if row > 0 => len > 0 && len <= most && len.is_multiple_of(row),
        _ => len == most,
    }
}

impl<T: MpcTransport> JobClient<'_, T> {
    /// Launches `kind` at every server under a fresh random id; returns the id and the status
    /// all servers agree on.
    pub async fn launch(&self, kind: JobKind) -> Result<(u64, MpcJobStatus), ClientError> {
        self.launch_as(random_job_id(self.sealer.me())?, kind).await
    }

    /// Launches `kind` at every server as job `job_id` (an id the parties agreed on, e.g. one
    /// the model owner hands to the data owners of a training).
    pub async fn launch_as(
        &self,
        job_id: u64,
        kind: JobKind,
    ) -> Result<(u64, MpcJobStatus), ClientError> {
        let spec = JobSpec {
            issued_at: now_secs(),
            nonce: rand::Rng::next_u64(&mut rand::rng()),
            kind,
        };
        let mut agreed: Option<MpcJobStatus> = None;
        let deadline = tokio::time::Instant::now() + self.timeout;
        for server in &self.servers {
            let envelope = seal_launch(self.sealer, *server, job_id, &spec)?;
            // A server that is not up yet (or still connecting to its peers) never saw the
            // launch: ask again until the deadline.
            let status = loop {
                match self.transport.launch(*server, envelope.clone()).await {
                    Err(ClientError::Unreachable { server, reason })
                        if tokio::time::Instant::now() < deadline =>
                    {
                        tracing::info!(%server, %reason, "waiting for the server");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => break other?,
                }
            };
            match &agreed {
                None => agreed = Some(status),
                Some(first) if *first == status => {}
                Some(_) => {
                    return Err(Inconsistency::Differs {
                        server: *server,
                        job_id,
                    }
                    .into());
                }
            }
        }
        let status = agreed.ok_or(Inconsistency::NoServers)?;
        Ok((job_id, status))
    }

    /// The job's status as `server` reports it now.
    pub async fn status(&self, server: PartyId, job_id: u64) -> Result<MpcJobStatus, ClientError> {
        let token = seal_request(
            self.sealer,
            server,
            RequestKind::Status,
            job_id,
            0,
            now_secs(),
        )
        .map_err(Error::from)?;
        self.transport.status(server, job_id, token).await
    }

    /// The input `round` of a job if it is this party's.
    fn my_input<'s>(
        &self,
        status: &'s MpcJobStatus,
        round: usize,
    ) -> Result<&'s TransferInfo, ClientError> {
        status
            .inputs
            .get(round)
            .filter(|t| t.party == self.sealer.me())
            .ok_or(ClientError::Inconsistent(Inconsistency::NoTransfer {
                what: "input",
                round,
            }))
    }

    /// Secret-shares ring elements as input `round` of a job to the servers (exactly its
    /// shape, or whole rows up to it).
    pub async fn submit_ring<R: Ring>(
        &self,
        status: &MpcJobStatus,
        round: usize,
        values: &[R],
    ) -> Result<(), ClientError> {
        let input = self.my_input(status, round)?;
        if R::BITS != status.ring_bits {
            return Err(Inconsistency::Ring {
                job: status.ring_bits,
                given: R::BITS,
            }
            .into());
        }
        if !fits(input, values.len()) {
            return Err(Error::WrongLength {
                input: input.label.clone(),
                unit: "values",
                got: values.len() as u64,
                expected: input.shape.iter().product::<usize>() as u64,
                row: input.row.map(|r| r as u64),
            }
            .into());
        }
        let x =
            RingTensor::from_vec(&[values.len()], values.to_vec()).map_err(SharingError::from)?;
        for (server, payload) in input_payloads(status.protocol.scheme(), &x)? {
            let envelopes = seal_input(self.sealer, server, status.job_id, round as u64, &payload)?;
            self.transport.submit(server, envelopes).await?;
        }
        Ok(())
    }

    /// Secret-shares reals (fixed point with the job's fractional bits) as input `round`.
    pub async fn submit(
        &self,
        status: &MpcJobStatus,
        round: usize,
        values: &[f64],
    ) -> Result<(), ClientError> {
        if status.ring_bits == 128 {
            let v = encode::<u128>(values, status.frac_bits)?;
            self.submit_ring(status, round, &v).await
        } else {
            let v = encode::<u64>(values, status.frac_bits)?;
            self.submit_ring(status, round, &v).await
        }
    }

    /// Waits for output `round` of a job and reconstructs it in ring `R` (its first value:
    /// [`Self::output_ring_at`] for the others).
    pub async fn output_ring<R: Ring>(
        &self,
        status: &MpcJobStatus,
        round: usize,
    ) -> Result<RingTensor<R>, ClientError> {
        self.output_ring_at(status, round, 0).await
    }

    /// Waits for value `seq` of output `round` of a job (an output revealed several times, a
    /// training's losses, numbers its values from 0; asking for one releases those before it
    /// at the servers) and reconstructs it in ring `R`.
    pub async fn output_ring_at<R: Ring>(
        &self,
        status: &MpcJobStatus,
        round: usize,
        seq: u32,
    ) -> Result<RingTensor<R>, ClientError> {
        let output = status
            .outputs
            .get(round)
            .filter(|t| t.party == self.sealer.me())
            .ok_or(Inconsistency::NoTransfer {
                what: "output",
                round,
            })?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let holders = status.protocol.scheme().holders();
        let mut shares = Vec::with_capacity(holders);
        let index = u32::try_from(round).map_err(|_| Inconsistency::NoTransfer {
            what: "output",
            round,
        })?;
        let fetch = fetch_round(index, seq);
        for server in self.servers.iter().take(holders) {
            let envelopes = loop {
                let token = seal_request(
                    self.sealer,
                    *server,
                    RequestKind::FetchOutput,
                    status.job_id,
                    fetch,
                    now_secs(),
                )
                .map_err(Error::from)?;
                match self
                    .transport
                    .fetch(*server, status.job_id, fetch, token)
                    .await
                {
                    Ok(envelopes) => break envelopes,
                    Err(ClientError::Refused { reason, .. }) if reason.name() == "not_ready" => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(ClientError::Timeout {
                                server: *server,
                                job_id: status.job_id,
                                after: self.timeout,
                            });
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            let bytes = open_output(self.sealer, *server, status.job_id, fetch, &envelopes)?;
            shares.push((*server, bytes));
        }
        Ok(reconstruct::<R>(&output.label, &shares, &output.shape)?)
    }

    /// Waits for output `round` of a job and decodes it (fixed point, the job's ring).
    pub async fn output(
        &self,
        status: &MpcJobStatus,
        round: usize,
    ) -> Result<Vec<f64>, ClientError> {
        self.output_at(status, round, 0).await
    }

    /// Waits for value `seq` of output `round` of a job (see [`Self::output_ring_at`]) and
    /// decodes it.
    pub async fn output_at(
        &self,
        status: &MpcJobStatus,
        round: usize,
        seq: u32,
    ) -> Result<Vec<f64>, ClientError> {
        let fixed = FixedPoint {
            frac_bits: status.frac_bits,
        };
        Ok(if status.ring_bits == 128 {
            fixed.decode_slice(
                self.output_ring_at::<u128>(status, round, seq)
                    .await?
                    .as_slice(),
            )
        } else {
            fixed.decode_slice(
                self.output_ring_at::<u64>(status, round, seq)
                    .await?
                    .as_slice(),
            )
        })
    }

    /// Waits until the job is done at every server (a failure names the server that reports
    /// it).
    pub async fn wait_done(&self, job_id: u64) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        for server in &self.servers {
            loop {
                let status = self.status(*server, job_id).await?;
                match status.state {
                    JobState::Done => break,
                    JobState::Running if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    JobState::Running => {
                        return Err(ClientError::Timeout {
                            server: *server,
                            job_id,
                            after: self.timeout,
                        });
                    }
                    state => {
                        return Err(ClientError::JobEnded {
                            server: *server,
                            job_id,
                            state,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Aborts a job at every server (the model owner's right); the first refusal is returned
    /// after trying them all.
    pub async fn abort(&self, job_id: u64) -> Result<(), ClientError> {
        let mut first = None;
        for server in &self.servers {
            // The abort names the launch the server runs under this id, as it reports it.
            let sent = match self.status(*server, job_id).await {
                Ok(status) => {
                    let envelope = seal_abort(self.sealer, *server, job_id, &status.launch_digest)?;
                    self.transport.abort(*server, envelope).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Deploys a model: shares its weights to the servers, which keep them under `model_id`.
    pub async fn deploy(
        &self,
        model_id: &str,
        spec: &ModelSpec,
        protocol: ProtocolKind,
        frac_bits: u32,
        weights: &[f32],
    ) -> Result<u64, ClientError> {
        let kind = JobKind::Deploy {
            model_id: model_id.to_string(),
            spec: spec.clone(),
            protocol,
            frac_bits,
        };
        let (job_id, status) = self.launch(kind).await?;
        let weights: Vec<f64> = weights.iter().map(|w| f64::from(*w)).collect();
        self.submit(&status, 0, &weights).await?;
        self.wait_done(job_id).await?;
        Ok(job_id)
    }

    /// Predicts a batch of `batch` examples (flattened) on a deployed model; returns the
    /// logits, `[batch, outputs]` row-major, which only this caller can open.
    pub async fn predict(
        &self,
        model_id: &str,
        batch: usize,
        examples: &[f32],
    ) -> Result<Vec<f64>, ClientError> {
        let kind = JobKind::Predict {
            model_id: model_id.to_string(),
            batch,
        };
        let (_, status) = self.launch(kind).await?;
        let examples: Vec<f64> = examples.iter().map(|x| f64::from(*x)).collect();
        self.submit(&status, 0, &examples).await?;
        self.output(&status, 0).await
    }
}
