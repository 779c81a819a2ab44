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

fn secure_logits<P: Make>(batch: usize) -> Result<(Vec<f64>, Vec<f32>), MpcError> {
    let model_spec = spec();
    let params = initial_params(&model_spec).expect("initial parameters");
    let features: Vec<f64> = reals(81, batch * 72, -1.0, 1.0);
    let f32s: Vec<f32> = features.iter().map(|v| *v as f32).collect();
    let plain = logits(&model_spec, &params, &f32s, batch).expect("plaintext logits");
    let model = SecureModel::new(&model_spec)?;
    assert_eq!(model.num_params(), params.len());
    let flat: Vec<f64> = params.iter().map(|v| f64::from(*v)).collect();
    // Inputs as f32 values, like burn sees them.
    let x: Vec<f64> = f32s.iter().map(|v| f64::from(*v)).collect();
    let got = try_run::<P>(
        vec![enc(&flat, &[flat.len()]), enc(&x, &[batch, 72])],
        prog!(P, |p, v| {
            let model = SecureModel::new(&self::spec())?;
            let params = model.split_params(&*p, &v[0])?;
            model.forward(&*p, &params, &v[1], Activations::Exact).await
        }),
    )?;
    Ok((dec(&got), plain))
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
