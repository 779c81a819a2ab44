//! The servers' program for an encrypted training job ([`serve_training`]): the job is what
//! every party agrees on before it starts ([`TrainJob`], all public, in `tessera-common`), this
//! is the transfers it makes and the steps between them. Simulated mode (`model-owner simulate
//! --encrypted`) and the aggregators' job service run this same program.
//!
//! Transfers, in order:
//! 1. each data owner `i` shares [`N`] (its number of examples, a plain integer; the servers
//!    open it: how many examples an institution contributes is public in this job, as the batch
//!    order is), then [`X`] (`n x features`, fixed point) and [`Y`] (`n x classes`: one-hot
//!    rows, or the 0/1 label of a one-logit model);
//! 2. the model owner shares [`W0`], the initial weights, unless the servers draw them from the
//!    job's seed ([`TrainJob::servers_init`]);
//! 3. the servers reveal to the model owner [`ROWS`] (every owner's count, so it knows the
//!    batch plan), the loss of every `loss_every`-th batch under [`LOSS`] (in order), and
//!    after each epoch `e` the weights under [`weights_label`]`(e)`. Nothing else is opened.
//!
//! Preprocessing ([`StepPrep`]): the first step runs with what it needs made inline and
//! measures it; from then on the servers make a few steps' worth ahead whenever the pools
//! cannot cover the next step, so a step's online phase takes its Beaver triples, ComputeMSB
//! masks and daBits from the pools.

use crate::error::{Invalid, PartyError};
use tessera_common::PartyId;
use tessera_common::fixed::FixedPoint;
use tessera_common::ring::{Ring, RingTensor};
use tessera_common::train_job::{LOSS, N, ROWS, TrainJob, TrainJobError, W0, X, Y, weights_label};

use super::init::{Init, initial_params};
use super::{Loss, StepPrep, TrainSpec, Trainer};
use crate::MpcError;
use crate::model::{Activations, SecureModel};
use crate::protocol::Protocol;

/// Checks `job` ([`TrainJob::check`]) and resolves its model to run on shares.
pub fn model_of(job: &TrainJob) -> Result<SecureModel, MpcError> {
    job.check()?;
    Ok(SecureModel::new(&job.spec)?)
}

/// The initial weights of `job` (He-uniform from its seed, [`TrainJob::weights_seed`]): the
/// same values whoever draws them.
pub fn initial_weights(job: &TrainJob, model: &SecureModel) -> Vec<f64> {
    initial_params(model, Init::He, &job.weights_seed())
}

/// Opens `x` to every server (all three protocols run on three servers).
async fn open_to_servers<P: Protocol>(
    p: &P,
    x: &P::Tensor,
) -> Result<RingTensor<P::Elem>, MpcError> {
    let mut mine = None;
    for to in 0..3 {
        if let Some(v) = p.reveal(x, to).await? {
            mine = Some(v);
        }
    }
    mine.ok_or(MpcError::Party(PartyError::NoOpening))
}

/// The servers' program (see the module docs).
pub async fn serve_training<P: Protocol<Elem = u128>>(
    p: &P,
    job: &TrainJob,
    activations: Activations,
) -> Result<(), MpcError> {
    let shape = job.check()?;
    let model = SecureModel::new(&job.spec)?;
    let (features, classes) = (shape.features, shape.classes);
    let mut counts = Vec::with_capacity(job.owners.len());
    for owner in &job.owners {
        let n = p.input(*owner, N, &[1]).await?;
        let n = open_to_servers(p, &n).await?.as_slice()[0].to_i128();
        if n < 1 || n > job.max_rows as i128 {
            return Err(TrainJobError::Rows {
                owner: *owner,
                rows: n,
                max: job.max_rows,
            }
            .into());
        }
        counts.push(n as usize);
    }
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (owner, n) in job.owners.iter().zip(&counts) {
        xs.push(p.input(*owner, X, &[n * features]).await?);
        ys.push(p.input(*owner, Y, &[n * classes]).await?);
    }
    let x = p.concat(&xs.iter().collect::<Vec<_>>())?;
    let y = p.concat(&ys.iter().collect::<Vec<_>>())?;
    drop((xs, ys));
    let rows: Vec<u128> = counts.iter().map(|n| *n as u128).collect();
    p.output(&p.public(&rows, &[rows.len()]), PartyId::ModelOwner, ROWS)
        .await?;
    let w0 = if job.servers_init {
        let fixed = FixedPoint {
            frac_bits: job.frac_bits,
        };
        let w = initial_weights(job, &model)
            .iter()
            .map(|v| fixed.encode::<u128>(*v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Invalid::Encode {
                what: "initial weights",
                source,
            })?;
        p.public(&w, &[w.len()])
    } else {
        p.input(PartyId::ModelOwner, W0, &[model.num_params()])
            .await?
    };
    let params = model.split_params(p, &w0)?;
    let spec = TrainSpec {
        loss: Loss::for_classes(classes),
        optimizer: job.optimizer,
        activations,
        dp: job.dp,
    };
    let mut trainer = Trainer::new::<P>(model, spec, params)?;
    let rows_of = |t: &P::Tensor, idx: &[usize], width: usize| {
        let gather: Vec<usize> = idx
            .iter()
            .flat_map(|r| r * width..(r + 1) * width)
            .collect();
        p.map_local(t, &[idx.len(), width], &|s| {
            gather.iter().map(|i| s[*i]).collect()
        })
    };
    let rates = job.rates();
    let order = job.order(counts.iter().sum());
    let total: u64 = order.iter().map(|e| e.len() as u64).sum();
    let mut prep = StepPrep::default();
    let mut step = 0u64;
    for (e, batches) in order.iter().enumerate() {
        trainer.set_learning_rate(rates[e]);
        for (b, idx) in batches.iter().enumerate() {
            let xb = rows_of(&x, idx, features)?;
            let yb = rows_of(&y, idx, classes)?;
            prep.before(p, total - step).await?;
            if let Some(l) = trainer.step(p, &xb, &yb, job.wants_loss(b)).await? {
                p.output(&l, PartyId::ModelOwner, LOSS).await?;
            }
            prep.after(p);
            step += 1;
        }
        let flat = p.concat(&trainer.params().iter().collect::<Vec<_>>())?;
        p.output(&flat, PartyId::ModelOwner, &weights_label(e))
            .await?;
    }
    Ok(())
}
