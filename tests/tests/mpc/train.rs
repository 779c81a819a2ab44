//! Encrypted training: the revealed gradients of a small random batch equal burn's autodiff
//! gradients (every layer kind and the softmax cross-entropy in one network), a step under each
//! protocol lowers the loss, training refuses a ring too narrow for it, and the truncation
//! failure rate of the 128-bit ring at its largest stated magnitude is zero in 10^8 trials.
//! Whole jobs, as the model owner runs them, are `train_job.rs`'s.

use std::sync::Arc;

use tessera_common::fixed::FixedPoint;
use tessera_common::model_spec::{LayerSpec, ModelSpec};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::Seed;
use tessera_common::ring::RingTensor;
use tessera_common::train_job::Optimizer;
use tessera_ml::{gradients, initial_params};
use tessera_mpc::MpcError;
use tessera_mpc::harness::run_local;
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_mpc::train::init::{self, Init};
use tessera_mpc::train::precision::{MAX_MAGNITUDE_BITS, count_failures};
use tessera_mpc::train::{Loss, TrainSpec, Trainer, tape};

use crate::{S, reals, runtime};

/// Fractional bits of training.
pub(super) const FW: u32 = 20;

const FIXED: FixedPoint = FixedPoint { frac_bits: FW };

pub(super) fn enc_w(values: &[f64], shape: &[usize]) -> RingTensor<u128> {
    let v = values.iter().map(|x| FIXED.encode(*x).unwrap()).collect();
    RingTensor::from_vec(shape, v).unwrap()
}

pub(super) fn dec_w(x: &RingTensor<u128>) -> Vec<f64> {
    FIXED.decode_slice(x.as_slice())
}

/// Every layer kind: conv (padding), ReLU, max-pooling, average pooling, flatten, dense,
/// sigmoid, dense.
pub(super) fn spec() -> ModelSpec {
    ModelSpec::chain(
        vec![2, 6, 6],
        vec![
            LayerSpec::Conv2d {
                channels: 3,
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            LayerSpec::Relu,
            LayerSpec::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
            LayerSpec::AvgPool2d {
                kernel: 2,
                stride: 1,
            },
            LayerSpec::Flatten,
            LayerSpec::Dense { units: 8 },
            LayerSpec::Sigmoid,
            LayerSpec::Dense { units: 4 },
        ],
    )
}

/// Shares the flat parameters (server 0), the batch (server 1) and the one-hot labels (server
/// 2) in the 128-bit ring, runs `program` on them and reveals its flat result to server 1.
pub(super) fn run_wide<P, F, Fut>(
    make: fn(S) -> Result<P, MpcError>,
    inputs: [RingTensor<u128>; 3],
    program: F,
) -> Result<RingTensor<u128>, MpcError>
where
    P: Protocol<Elem = u128> + 'static,
    F: Fn(Arc<P>, Vec<P::Tensor>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<P::Tensor, MpcError>> + Send + 'static,
{
    let program = Arc::new(program);
    let outs = runtime().block_on(run_local(3, move |s: S| {
        let (inputs, program) = (inputs.clone(), Arc::clone(&program));
        async move {
            let p = Arc::new(make(s)?);
            let me = p.me();
            let mut shared = Vec::new();
            for (owner, x) in inputs.iter().enumerate() {
                shared.push(
                    p.share(owner, (me == owner).then_some(x), x.shape())
                        .await?,
                );
            }
            let z = program(Arc::clone(&p), shared).await?;
            p.reveal(&z, 1).await
        }
    }))?;
    Ok(outs[1].clone().expect("server1 receives"))
}

pub(super) struct Batch {
    pub(super) params: Vec<f32>,
    pub(super) features: Vec<f32>,
    pub(super) labels: Vec<u8>,
    pub(super) n: usize,
}

pub(super) fn batch(n: usize) -> Batch {
    let s = spec();
    let params = initial_params(&s).expect("initial parameters");
    let features: Vec<f32> = reals(91, n * 72, -1.0, 1.0)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i * 3 % 4) as u8).collect();
    Batch {
        params,
        features,
        labels,
        n,
    }
}

pub(super) fn wide_inputs(b: &Batch) -> [RingTensor<u128>; 3] {
    let flat: Vec<f64> = b.params.iter().map(|v| f64::from(*v)).collect();
    let x: Vec<f64> = b.features.iter().map(|v| f64::from(*v)).collect();
    let mut y = vec![0.0; b.n * 4];
    for (i, l) in b.labels.iter().enumerate() {
        y[i * 4 + *l as usize] = 1.0;
    }
    [
        enc_w(&flat, &[flat.len()]),
        enc_w(&x, &[b.n, 72]),
        enc_w(&y, &[b.n, 4]),
    ]
}

fn secure_gradients<P: Protocol<Elem = u128> + 'static>(
    make: fn(S) -> Result<P, MpcError>,
    b: &Batch,
) -> Vec<f64> {
    let got = run_wide(
        make,
        wide_inputs(b),
        |p: Arc<P>, v: Vec<P::Tensor>| async move {
            let model = SecureModel::new(&spec())?;
            let params = model.split_params(&*p, &v[0])?;
            let (z, t) = tape::forward(&*p, &model, &params, &v[1], Activations::Exact).await?;
            let dz = Loss::SoftmaxCrossEntropy
                .gradient(&*p, &z, &v[2], Activations::Exact)
                .await?;
            let grads = tape::backward(&*p, &model, &params, &t, &dz).await?;
            p.concat(&grads.iter().collect::<Vec<_>>())
        },
    )
    .expect("secure gradients");
    dec_w(&got)
}

/// Bound: with 20 fractional bits each truncation adds at most 2^-20 and the inputs and weights
/// are rounded to 2^-21, which the layers' fan-in (at most 18) and the batch sum (4) amplify to
/// about 1e-4; the larger terms are the approximations: the softmax within 0.003 of its true
/// value (its test bound) and the sigmoid within 0.003, each multiplied by activations of size
/// below 3 and summed over a batch of 4, so 0.003 * 3 * 4 = 0.036 in the worst case. We allow
/// 0.04 absolute plus 2% of the value.
fn gradients_match_burn<P: Protocol<Elem = u128> + 'static>(make: fn(S) -> Result<P, MpcError>) {
    let b = batch(4);
    let want = gradients(&spec(), &b.params, &b.features, &b.labels, b.n).expect("burn");
    let got = secure_gradients(make, &b);
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let w = f64::from(*w);
        let err = (g - w).abs();
        worst = worst.max(err);
        assert!(
            err <= 0.04 + 0.02 * w.abs(),
            "{}: gradient {i}: {g} vs burn's {w}",
            P::NAME
        );
    }
    // The gradients are not all tiny (a check that cannot pass vacuously).
    assert!(
        want.iter().any(|w| w.abs() > 0.05),
        "burn's gradients {want:?}"
    );
    eprintln!("{}: largest gradient error {worst:.2e}", P::NAME);
}

pub(super) fn aby3_wide(s: S) -> Result<Aby3<MemoryNetwork, u128>, MpcError> {
    Aby3::in_ring(s, FW)
}

fn securenn_wide(s: S) -> Result<SecureNn<MemoryNetwork, u128>, MpcError> {
    SecureNn::in_ring(s, FW)
}

#[test]
fn aby3_gradients_match_burn_for_every_layer() {
    gradients_match_burn(aby3_wide);
}

#[test]
fn securenn_gradients_match_burn_for_every_layer() {
    gradients_match_burn(securenn_wide);
}

/// Three SGD steps on the same batch from the servers' own He initialisation (a fixed seed):
/// the revealed loss (summed over the 8 examples) drops at each step by more than its own
/// error (the logarithm's and the softmax's, below 0.01 over the batch), so each step starts
/// from the weights the last one wrote and moves them downhill.
#[test]
fn sgd_steps_lower_the_loss_under_aby3() {
    let mut b = batch(8);
    let model = SecureModel::new(&spec()).unwrap();
    b.params = init::initial_params(&model, Init::He, &Seed([5; 32]))
        .iter()
        .map(|v| *v as f32)
        .collect();
    let losses = run_wide(aby3_wide, wide_inputs(&b), |p, v| async move {
        let model = SecureModel::new(&spec())?;
        let params = model.split_params(&*p, &v[0])?;
        let train = TrainSpec {
            loss: Loss::SoftmaxCrossEntropy,
            optimizer: Optimizer::sgd(1.0),
            activations: Activations::Exact,
            dp: None,
        };
        let mut t = Trainer::new::<Aby3<MemoryNetwork, u128>>(model, train, params)?;
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(t.step(&*p, &v[1], &v[2], true).await?.expect("loss"));
        }
        p.concat(&out.iter().collect::<Vec<_>>())
    })
    .expect("training steps");
    let l = dec_w(&losses);
    assert!(l[1] < l[0] - 0.02 && l[2] < l[1] - 0.02, "losses {l:?}");
}

#[test]
fn training_refuses_the_64_bit_ring() {
    let model = SecureModel::new(&spec()).unwrap();
    let train = TrainSpec {
        loss: Loss::SoftmaxCrossEntropy,
        optimizer: Optimizer::sgd(0.1),
        activations: Activations::Exact,
        dp: None,
    };
    let err = Trainer::new::<Aby3<MemoryNetwork>>(model, train, Vec::new())
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            MpcError::RingTooNarrow {
                bits: 64,
                needed: 128
            }
        ),
        "{err:?}"
    );
}

/// 10^8 truncations by 40 bits at the largest stated magnitude (2^87) in the 128-bit ring:
/// the bound is 2^-40 per element, so the expected count of large errors is 10^8 2^-40 <
/// 10^-4 and we require zero. The same arithmetic in the 64-bit ring at 2^50 (a product of two
/// values near 2^9 with 16 fractional bits each) fails at rate |x|/2^64, 4.6e-5 on average over
/// [2^49, 2^50): 46 expected in 10^6; the bounds [15, 90] miss with probability below 1e-7
/// (Poisson tails).
#[test]
fn truncation_failures_at_the_stated_magnitude() {
    assert_eq!(MAX_MAGNITUDE_BITS, 87);
    let wide = count_failures::<u128>(100_000_000, MAX_MAGNITUDE_BITS, 40, 1);
    assert_eq!(wide, 0, "large errors in the 128-bit ring");
    let narrow = count_failures::<u64>(1_000_000, 50, 32, 2);
    assert!((15..=90).contains(&narrow), "64-bit failures: {narrow}");
}

/// `[2, 6, 6]` inputs through Flatten, then `hidden` sigmoid units if any, then `outputs`.
fn small_spec(hidden: Option<usize>, outputs: usize) -> ModelSpec {
    let mut layers = vec![LayerSpec::Flatten];
    if let Some(h) = hidden {
        layers.extend([LayerSpec::Dense { units: h }, LayerSpec::Sigmoid]);
    }
    layers.push(LayerSpec::Dense { units: outputs });
    ModelSpec::chain(vec![2, 6, 6], layers)
}

/// The gradients of `loss` through `spec` on a batch of 4 under protocol `P`, against burn's,
/// within `abs + 2%`.
fn loss_gradients_match_burn<P: Protocol<Elem = u128> + 'static>(
    make: fn(S) -> Result<P, MpcError>,
    spec: ModelSpec,
    loss: Loss,
    activations: Activations,
    abs: f64,
) {
    use tessera_ml::{PlainLoss, gradients_with};
    let n = 4;
    let outputs = *spec.resolve().expect("spec").1.last().expect("outputs");
    let params = initial_params(&spec).expect("initial parameters");
    let features: Vec<f32> = reals(92, n * 72, -1.0, 1.0)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let (targets, plain_loss_targets): (Vec<f64>, Vec<f32>) = match loss {
        Loss::MeanSquaredError => {
            let t = reals(93, n * outputs, -1.0, 1.0);
            let f = t.iter().map(|v| *v as f32).collect();
            (t, f)
        }
        _ => {
            let t: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
            (t.clone(), t.iter().map(|v| *v as f32).collect())
        }
    };
    let labels: Vec<u8> = plain_loss_targets.iter().map(|v| *v as u8).collect();
    let plain = match loss {
        Loss::MeanSquaredError => PlainLoss::HalfSquaredError(&plain_loss_targets),
        _ => PlainLoss::BinaryCrossEntropy(&labels),
    };
    let want = gradients_with(&spec, &params, &features, n, plain).expect("burn");
    let flat: Vec<f64> = params.iter().map(|v| f64::from(*v)).collect();
    let x: Vec<f64> = features.iter().map(|v| f64::from(*v)).collect();
    let inputs = [
        enc_w(&flat, &[flat.len()]),
        enc_w(&x, &[n, 72]),
        enc_w(&targets, &[n, targets.len() / n]),
    ];
    let spec2 = spec.clone();
    let got = dec_w(
        &run_wide(make, inputs, move |p: Arc<P>, v: Vec<P::Tensor>| {
            let spec = spec2.clone();
            async move {
                let model = SecureModel::new(&spec)?;
                let params = model.split_params(&*p, &v[0])?;
                let (z, t) = tape::forward(&*p, &model, &params, &v[1], activations).await?;
                let dz = loss.gradient(&*p, &z, &v[2], activations).await?;
                let grads = tape::backward(&*p, &model, &params, &t, &dz).await?;
                p.concat(&grads.iter().collect::<Vec<_>>())
            }
        })
        .expect("secure gradients"),
    );
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let w = f64::from(*w);
        assert!(
            (g - w).abs() <= abs + 0.02 * w.abs(),
            "{} {loss:?}: gradient {i}: {g} vs burn's {w}",
            P::NAME
        );
    }
    assert!(
        want.iter().any(|w| w.abs() > 0.05),
        "burn's gradients {want:?}"
    );
}

fn pond_wide(s: S) -> Result<Pond<MemoryNetwork, u128>, MpcError> {
    Pond::in_ring(s, FW)
}

/// Binary cross-entropy (gradient `sigmoid(z) - y`) and half the squared error (`z - y`)
/// through a sigmoid hidden layer, under ABY3 and SecureNN: the sigmoid's approximation (within
/// 0.003) is the largest error, summed over 4 examples and multiplied by inputs below 1 and
/// weights below 0.5 through the layers: 0.04 absolute (plus 2%) covers it.
#[test]
fn binary_cross_entropy_and_squared_error_gradients_match_burn() {
    for loss in [Loss::BinaryCrossEntropy, Loss::MeanSquaredError] {
        let outputs = if loss == Loss::BinaryCrossEntropy {
            1
        } else {
            3
        };
        let spec = small_spec(Some(8), outputs);
        loss_gradients_match_burn(aby3_wide, spec.clone(), loss, Activations::Exact, 0.04);
        loss_gradients_match_burn(securenn_wide, spec, loss, Activations::Exact, 0.04);
    }
}

/// Pond trains what its polynomials can: logistic regression with binary cross-entropy, where
/// the polynomial sigmoid (within 0.0234 on [-8, 8], TF Encrypted's fit) makes each example's
/// `s - y` off by up to 0.0234, summed over 4 examples times inputs below 1: 0.094, so 0.1
/// absolute (plus 2%); and a linear model with the squared error, exact but for fixed-point
/// rounding (2^-20 per truncation, times 4 examples and 72 inputs: below 1e-3).
#[test]
fn pond_trains_logistic_and_linear_models() {
    loss_gradients_match_burn(
        pond_wide,
        small_spec(None, 1),
        Loss::BinaryCrossEntropy,
        Activations::Polynomial,
        0.1,
    );
    loss_gradients_match_burn(
        pond_wide,
        small_spec(None, 3),
        Loss::MeanSquaredError,
        Activations::Polynomial,
        1e-3,
    );
}

/// Under Pond a ReLU or softmax, which need comparisons, is a typed error, not a wrong result.
#[test]
fn pond_refuses_what_it_cannot_train() {
    let b = batch(2);
    let err = run_wide(pond_wide, wide_inputs(&b), |p, v| async move {
        let model = SecureModel::new(&spec())?;
        let params = model.split_params(&*p, &v[0])?;
        let (z, _) = tape::forward(&*p, &model, &params, &v[1], Activations::Exact).await?;
        Ok(z)
    })
    .expect_err("refused");
    assert!(
        matches!(
            err,
            MpcError::Unsupported {
                protocol: "pond",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Adam's inverse square root over its whole range, `[1e-8, 4096]` with 40 fractional bits in
/// (the second moment's) and 20 out: Newton ends below 2^-30 relative, the rest is fixed-point
/// rounding: the last step's truncations, a few units of 2^-20 (we allow 4), and 1e-5 relative
/// for the rounding carried through the steps. Both starts: Newton from `1/sqrt(hi)` under
/// ABY3, and from the band picked by comparisons under ABY3 and SecureNN and (without a
/// comparison, falling back) Pond. The points include every band's edges and a hair either side.
#[test]
fn inverse_square_root_is_accurate_over_adams_range() {
    use tessera_mpc::approx::{inv_sqrt_banded, inv_sqrt_wide};
    let (lo, hi): (f64, f64) = (1e-8, 4096.0);
    let ratio: f64 = (hi / lo).powf(1.0 / 6.0);
    let mut xs: Vec<f64> = (0..60)
        .map(|i| lo * (hi / lo).powf(i as f64 / 59.0))
        .collect();
    for j in 1..6 {
        let edge = lo * ratio.powi(j);
        xs.extend([edge * (1.0 - 1e-9), edge, edge * (1.0 + 1e-9)]);
    }
    let enc40: Vec<u128> = xs
        .iter()
        .map(|x| (x * 2f64.powi(40)).round() as i128 as u128)
        .collect();
    let x = RingTensor::from_vec(&[xs.len()], enc40).unwrap();
    let zero = RingTensor::from_vec(&[1], vec![0u128]).unwrap();
    let inputs = [x, zero.clone(), zero];
    // The banded start under a protocol (Pond has no comparison and falls back).
    fn banded<P: Protocol<Elem = u128> + 'static>(
        make: fn(S) -> Result<P, MpcError>,
        inputs: [RingTensor<u128>; 3],
        (lo, hi): (f64, f64),
    ) -> Result<RingTensor<u128>, MpcError> {
        run_wide(make, inputs, move |p, v| async move {
            inv_sqrt_banded(&*p, &v[0], 40, lo, hi).await
        })
    }
    let runs = [
        (
            "aby3, from 1/sqrt(hi)",
            run_wide(aby3_wide, inputs.clone(), move |p, v| async move {
                inv_sqrt_wide(&*p, &v[0], 40, lo, hi).await
            }),
        ),
        ("aby3, banded", banded(aby3_wide, inputs.clone(), (lo, hi))),
        (
            "securenn, banded",
            banded(securenn_wide, inputs.clone(), (lo, hi)),
        ),
        (
            "pond, banded (falls back)",
            banded(pond_wide, inputs, (lo, hi)),
        ),
    ];
    for (name, run) in runs {
        let got = dec_w(&run.expect(name));
        for (x, g) in xs.iter().zip(&got) {
            let want = 1.0 / x.sqrt();
            let bound = 1e-5 * want + 4.0 * 2f64.powi(-20);
            assert!(
                (g - want).abs() <= bound,
                "{name}: 1/sqrt({x}) = {want}, got {g}"
            );
        }
    }
}

/// Four SecureNN steps with the training loop's preprocessing (`StepPrep`, as
/// `serve_training` runs it): the first step makes its triples and ComputeMSB masks inline and
/// measures them; every later step finds all of them in the pools (nothing more is short), and
/// the three steps' worth made ahead is used up exactly.
#[test]
fn later_steps_take_their_preprocessing_from_the_pools() {
    use tessera_mpc::train::StepPrep;
    let b = batch(8);
    let out = run_wide(securenn_wide, wide_inputs(&b), |p, v| async move {
        let model = SecureModel::new(&spec())?;
        let params = model.split_params(&*p, &v[0])?;
        let train = TrainSpec {
            loss: Loss::SoftmaxCrossEntropy,
            optimizer: Optimizer::sgd(0.1),
            activations: Activations::Exact,
            dp: None,
        };
        let mut t = Trainer::new::<SecureNn<MemoryNetwork, u128>>(model, train, params)?;
        let mut prep = StepPrep::default();
        let steps = 4u64;
        let mut short_after_first = 0;
        for step in 0..steps {
            prep.before(&*p, steps - step).await?;
            t.step(&*p, &v[1], &v[2], false).await?;
            prep.after(&*p);
            if step == 0 {
                short_after_first = p.session().short().total();
            }
        }
        let per_step = prep.per_step().map_or(0, |n| n.total());
        let figures = [
            per_step,
            short_after_first,
            p.session().short().total(),
            p.held().total(),
        ];
        Ok(p.public(&figures.map(u128::from), &[4]))
    })
    .expect("training steps");
    let [per_step, first, end, held] = [0, 1, 2, 3].map(|i| out.as_slice()[i] as u64);
    assert!(per_step > 0, "a SecureNN step takes triples and masks");
    assert_eq!(first, per_step, "the first step makes all it needs inline");
    assert_eq!(end, first, "no later step is short of anything");
    assert_eq!(
        held, 0,
        "exactly three steps' worth was made ahead and used"
    );
}
