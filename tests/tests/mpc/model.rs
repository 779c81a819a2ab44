//! The same `ModelSpec` under MPC and in burn: a small convolutional network with burn's initial
//! parameters gives the same logits on shares as in the clear (within the fixed-point error), so
//! the secure model reads burn's parameter layout right; Pond refuses its exact ReLU and
//! max-pooling with a typed error.

use tessera_common::model_spec::{LayerSpec, ModelSpec};
use tessera_ml::{initial_params, logits};
use tessera_mpc::MpcError;
use tessera_mpc::model::{Activations, SecureModel};

use crate::{Aby3M, Make, PondM, SecureNnM, dec, enc, prog, reals, try_run};

fn spec() -> ModelSpec {
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
                kernel: 1,
                stride: 1,
            },
            LayerSpec::Flatten,
            LayerSpec::Dense { units: 8 },
            LayerSpec::Sigmoid,
            LayerSpec::Dense { units: 4 },
        ],
    )
}

/// `spec`'s logits under protocol `P` and in burn, with parameters `params`, for `batch` seeded
/// inputs uniform in `[-range, range)` (as f32 values, as burn sees them).
pub(super) fn secure_and_burn<P: Make>(
    spec: fn() -> ModelSpec,
    params: &[f32],
    batch: usize,
    (seed, range): (u8, f64),
) -> Result<(Vec<f64>, Vec<f32>), MpcError> {
    let model_spec = spec();
    let width: usize = model_spec.input_shape.iter().product();
    let features: Vec<f64> = reals(seed, batch * width, -range, range);
    let f32s: Vec<f32> = features.iter().map(|v| *v as f32).collect();
    let plain = logits(&model_spec, params, &f32s, batch).expect("plaintext logits");
    let model = SecureModel::new(&model_spec)?;
    assert_eq!(model.num_params(), params.len());
    let flat: Vec<f64> = params.iter().map(|v| f64::from(*v)).collect();
    let x: Vec<f64> = f32s.iter().map(|v| f64::from(*v)).collect();
    let got = try_run::<P>(
        vec![enc(&flat, &[flat.len()]), enc(&x, &[batch, width])],
        prog!(P, |p, v| {
            let model = SecureModel::new(&spec())?;
            let params = model.split_params(&*p, &v[0])?;
            model.forward(&*p, &params, &v[1], Activations::Exact).await
        }),
    )?;
    Ok((dec(&got), plain))
}

fn secure_logits<P: Make>(batch: usize) -> Result<(Vec<f64>, Vec<f32>), MpcError> {
    let params = initial_params(&spec()).expect("initial parameters");
    secure_and_burn::<P>(spec, &params, batch, (81, 1.0))
}

/// Bound: each fixed-point layer adds a few units of 2^-16 (truncations, the rounding of the
/// inputs and weights to 16 fractional bits); the sigmoid's approximation adds up to 0.003
/// (its test bound), amplified by the last layer's weights (at most 8 of size below 0.5): 0.02.
fn matches_burn<P: Make>() {
    let batch = 3;
    let (got, plain) = secure_logits::<P>(batch).expect("secure forward");
    assert_eq!(got.len(), plain.len());
    for (i, (g, want)) in got.iter().zip(&plain).enumerate() {
        assert!(
            (g - f64::from(*want)).abs() <= 0.02,
            "{}: logit {i}: {g} vs {want}",
            P::NAME
        );
    }
}

#[test]
fn a_spec_runs_the_same_under_securenn_aby3_and_burn() {
    matches_burn::<SecureNnM>();
    matches_burn::<Aby3M>();
}

#[test]
fn pond_refuses_exact_relu_in_a_model() {
    let err = secure_logits::<PondM>(1).unwrap_err();
    assert!(matches!(err, MpcError::Unsupported { .. }), "{err:?}");
}
