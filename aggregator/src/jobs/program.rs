//! The servers' programs of a job: agreeing on its description, then deploying a model's
//! shares or running a prediction on them (trainings run `tessera_mpc::train::job`).

use std::sync::Arc;

use super::job::Job;
use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_jobs::job::JobKind;
use tessera_mpc::error::{Invalid, Misbehaved};
use tessera_mpc::model::Activations;
use tessera_mpc::protocol::Protocol;
use tessera_mpc::{MpcError, Session};

use super::registry::Params;

/// Every server checks that the others run the same description (a launcher that sent
/// different descriptions to different servers gets a failed job, not a wrong result).
pub(super) async fn agree_on_description<N: Network>(
    session: &Session<N>,
    digest: &[u8; 32],
) -> Result<(), MpcError> {
    let op = session.op("job_digest");
    let me = session.me();
    for j in (0..session.servers()).filter(|j| *j != me) {
        session
            .send_bytes(j, &op, "digest", digest.to_vec())
            .await?;
    }
    for j in (0..session.servers()).filter(|j| *j != me) {
        let theirs = session.recv_bytes(j, &op, "digest", 32).await?;
        if theirs != digest {
            return Err(MpcError::Protocol {
                peer: PartyId::Server(j as u8),
                reason: Misbehaved::OtherDescription,
            });
        }
    }
    Ok(())
}

/// The servers' program of a job; a deployment returns the parameters' shares to keep.
pub(super) async fn program<P: Protocol<Elem = u64>>(
    p: P,
    job: &Job,
    params: Option<Params>,
) -> Result<Option<Params>, MpcError> {
    match &job.spec.kind {
        JobKind::Deploy { .. } => {
            let input = &job.inputs[0];
            let flat = p.input(input.party, &input.label, &input.shape).await?;
            let shares: Vec<P::Tensor> = job.model.split_params(&p, &flat)?;
            Ok(Some(Arc::new(shares)))
        }
        // A training runs in the 128-bit ring (serve_training), never here.
        JobKind::Train { .. } => Err(MpcError::RingTooNarrow {
            bits: 64,
            needed: 128,
        }),
        JobKind::Predict { .. } => {
            let params = params
                .as_deref()
                .and_then(|a| a.downcast_ref::<Vec<P::Tensor>>())
                .ok_or(MpcError::Invalid(Invalid::NoDeployment))?;
            let (input, output) = (&job.inputs[0], &job.outputs[0]);
            let x = p.input(input.party, &input.label, &input.shape).await?;
            let logits = job
                .model
                .forward(&p, params, &x, Activations::of(job.protocol))
                .await?;
            p.output(&logits, output.party, &output.label).await?;
            Ok(None)
        }
    }
}
