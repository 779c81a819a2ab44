//! DP-SGD under MPC (security review 2, finding 4): each example's gradient is clipped to the
//! bound before the batch's sum, the servers' noise has the stated variance, and a job that
//! would reveal an unclipped loss or clip a convolution is refused.

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::dp::DpSettings;
use tessera_common::model_spec::{LayerSpec, ModelSpec};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::ring::RingTensor;
use tessera_common::train_job::Optimizer;
use tessera_common::train_job::{TrainJob, TrainJobError};
use tessera_mpc::MpcError;
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Protocol};
use tessera_mpc::train::{Loss, dp, tape};

use super::reals;
use super::train::{FW, aby3_wide, dec_w, enc_w, run_wide};

type P = Aby3<MemoryNetwork, u128>;

const FEATURES: usize = 6;
const CLASSES: usize = 3;

fn mlp() -> ModelSpec {
    ModelSpec::chain(
        vec![FEATURES],
        vec![
            LayerSpec::Dense { units: 5 },
            LayerSpec::Relu,
            LayerSpec::Dense { units: CLASSES },
        ],
    )
}

/// Rows `rows` of a `[n, width]` sharing.
fn rows(
    p: &P,
    t: &<P as Protocol>::Tensor,
    rows: &[usize],
    width: usize,
) -> <P as Protocol>::Tensor {
    let idx: Vec<usize> = rows
        .iter()
        .flat_map(|r| r * width..(r + 1) * width)
        .collect();
    p.map_local(t, &[rows.len(), width], &|s| {
        idx.iter().map(|i| s[*i]).collect()
    })
    .unwrap()
}

/// The gradients (flat) of `x`, `y` under the model with `params`, clipped to `clip` if given.
async fn gradients(
    p: &P,
    params: &<P as Protocol>::Tensor,
    x: &<P as Protocol>::Tensor,
    y: &<P as Protocol>::Tensor,
    clip: Option<f64>,
) -> Result<<P as Protocol>::Tensor, MpcError> {
    let model = SecureModel::new(&mlp())?;
    let params = model.split_params(p, params)?;
    let (z, t) = tape::forward(p, &model, &params, x, Activations::Exact).await?;
    let dz = Loss::SoftmaxCrossEntropy
        .gradient(p, &z, y, Activations::Exact)
        .await?;
    let g = match clip {
        None => tape::backward(p, &model, &params, &t, &dz).await?,
        Some(c) => tape::backward_clipped(p, &model, &params, &t, &dz, c).await?,
    };
    p.concat(&g.iter().collect::<Vec<_>>())
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Eight examples, four with features near 0.1 and four near 4 (their gradients several times
/// the bound `C = 1.5`). Each example's own gradient `g_i` comes from the unclipped backward
/// pass on a batch of one (which `gradients_match_burn` checks against burn's autodiff); the
/// clipped batch gradient equals `sum_i min(1, C / |g_i|) g_i`, and each example alone, clipped,
/// is at most `C` long. Tolerance: the fixed-point resolution is `2^-20`; a gradient entry sums
/// at most 8 products and the clipping factor's Newton iteration is within `2^-20` relative, so
/// an entry is within `1e-4 + 1e-3 |entry|` (measured: 1.5e-5 at most), and a norm within 0.1%.
#[test]
fn each_examples_gradient_is_clipped_to_the_bound() {
    const N: usize = 8;
    const CLIP: f64 = 1.5;
    let model = SecureModel::new(&mlp()).unwrap();
    let params = reals(41, model.num_params(), -0.6, 0.6);
    let mut x = reals(42, N * FEATURES, -1.0, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        *v *= if i / FEATURES < N / 2 { 0.1 } else { 4.0 };
    }
    let mut y = vec![0.0; N * CLASSES];
    for i in 0..N {
        y[i * CLASSES + i % CLASSES] = 1.0;
    }
    let inputs = [
        enc_w(&params, &[params.len()]),
        enc_w(&x, &[N, FEATURES]),
        enc_w(&y, &[N, CLASSES]),
    ];
    let got = run_wide(aby3_wide, inputs, |p: Arc<P>, v| async move {
        let mut out = Vec::new();
        // Each example's own gradient, then each alone clipped, then the clipped batch.
        for clip in [None, Some(CLIP)] {
            for i in 0..N {
                let (xi, yi) = (
                    rows(&p, &v[1], &[i], FEATURES),
                    rows(&p, &v[2], &[i], CLASSES),
                );
                out.push(gradients(&p, &v[0], &xi, &yi, clip).await?);
            }
        }
        out.push(gradients(&p, &v[0], &v[1], &v[2], Some(CLIP)).await?);
        p.concat(&out.iter().collect::<Vec<_>>())
    })
    .expect("gradients");
    let got = dec_w(&got);
    let d = model.num_params();
    let own: Vec<&[f64]> = got[..N * d].chunks(d).collect();
    let alone: Vec<&[f64]> = got[N * d..2 * N * d].chunks(d).collect();
    let batch = &got[2 * N * d..];
    let norms: Vec<f64> = own.iter().map(|g| norm(g)).collect();
    assert!(
        norms.iter().filter(|n| **n > 2.0 * CLIP).count() >= 2 && norms.iter().any(|n| *n < CLIP),
        "the batch has examples on both sides of the bound: {norms:?}"
    );
    let mut expected = vec![0.0; d];
    for (g, n) in own.iter().zip(&norms) {
        let s = (CLIP / n).min(1.0);
        for (e, v) in expected.iter_mut().zip(*g) {
            *e += s * v;
        }
    }
    for (k, (b, e)) in batch.iter().zip(&expected).enumerate() {
        assert!(
            (b - e).abs() <= 1e-4 + 1e-3 * e.abs(),
            "entry {k}: {b} against {e}"
        );
    }
    for (i, (g, n)) in alone.iter().zip(&norms).enumerate() {
        let clipped = norm(g);
        assert!(clipped <= CLIP * 1.001, "example {i}: {clipped} > {CLIP}");
        let want = n.min(CLIP);
        assert!(
            (clipped - want).abs() <= 1e-3 * want + 1e-4,
            "example {i}: {clipped} against {want}"
        );
    }
}

/// The three servers' noise on 20,000 coordinates of a zero gradient: mean 0 and variance
/// `3 (z C)^2` (three independent draws of `N_Z(0, (z C 2^f)^2)`; one server's draw repeated
/// would give 9 times it). The sample variance of 20,000 Gaussian draws has relative standard
/// error `sqrt(2 / 20000) = 1%`: within 5% is five of those; the mean within five standard
/// errors, `5 sqrt(0.75 / 20000) = 0.031`.
#[test]
fn the_servers_noise_has_the_stated_variance() {
    const LEN: usize = 20_000;
    let settings = DpSettings {
        noise_multiplier: 1.0,
        clip: 0.5,
        delta: 1e-5,
    };
    let zero = RingTensor::<u128>::zeros(&[LEN]);
    let inputs = [zero.clone(), zero.clone(), zero];
    let got = run_wide(aby3_wide, inputs, move |p: Arc<P>, v| async move {
        dp::add_noise(&*p, &v[0], &settings).await
    })
    .expect("noise");
    let values = dec_w(&got);
    let mean = values.iter().sum::<f64>() / LEN as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (LEN - 1) as f64;
    let per_server = settings.variance_units(FW) as f64 / f64::from(FW).exp2().powi(2);
    let expected = 3.0 * per_server;
    assert!((expected - 0.75).abs() < 1e-6, "{expected}");
    assert!(
        (var / expected - 1.0).abs() < 0.05,
        "variance {var}, expected {expected}"
    );
    assert!(mean.abs() < 0.031, "mean {mean}");
}

fn job(spec: ModelSpec, loss_every: usize) -> TrainJob {
    TrainJob {
        spec,
        optimizer: Optimizer::sgd(0.1),
        epochs: 4,
        batch_size: 64,
        frac_bits: FW,
        owners: vec![PartyId::DataOwner(0)],
        max_rows: 100,
        seed: 1,
        lr_decay: 1.0,
        loss_every,
        servers_init: false,
        dp: Some(DpSettings {
            noise_multiplier: 1.1,
            clip: 1.0,
            delta: 1e-5,
        }),
    }
}

/// Under DP-SGD a loss is never revealed (it is neither clipped nor noised) and a convolution
/// is refused (its per-example norms are not computed); a dense job is accounted as one
/// Gaussian mechanism per epoch.
#[test]
fn dp_sgd_jobs_reveal_no_loss_and_take_dense_models() {
    assert!(matches!(
        job(ModelSpec::network_a(), 1).check(),
        Err(TrainJobError::DpLoss)
    ));
    assert!(matches!(
        job(ModelSpec::network_b(), 0).check(),
        Err(TrainJobError::DpConv)
    ));
    let ok = job(ModelSpec::network_a(), 0);
    assert!(ok.check().is_ok());
    let dp = ok.dp.unwrap();
    assert_eq!(ok.spent(), Some(dp.spent(4, FW)));
}
