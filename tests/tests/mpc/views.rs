//! What the servers see while they train: a recording of every message a server receives during
//! an encrypted training holds no example, label, weight or gradient of the job (under ABY3 and
//! SecureNN).

use std::sync::Arc;

use tessera_common::net::memory::MemoryNetwork;
use tessera_common::train_job::Optimizer;
use tessera_ml::gradients;
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Protocol, SecureNn};
use tessera_mpc::train::{Loss, TrainSpec, Trainer};
use tessera_mpc::{MpcError, Session};
use tessera_tests::Recording;

use super::train::{FW, batch, dec_w, enc_w, spec, wide_inputs};
use crate::runtime;

/// What each server receives during a training step (a data owner's examples and labels and
/// the model owner's weights shared in, one SGD step, the weights revealed to the model owner
/// only) never contains, as any aligned 128-bit word, the fixed-point encoding of an example's
/// pixel, a label, a weight, a gradient or an updated weight, nor any small value at all: every
/// word a server sees is a share or a masked value, uniform in the ring (a uniform word is
/// below 2^40 in magnitude with probability 2^-87, so the check cannot fail by chance).
fn server_views_hold_no_secret<P: Protocol<Elem = u128> + 'static>(
    make: fn(Arc<Session<Recording>>) -> Result<P, MpcError>,
    scheme: tessera_common::sharing::outside::Scheme,
) {
    use tessera_common::PartyId;
    use tessera_mpc::io::{receive_output, send_input};
    let b = batch(4);
    let [w0, x, y] = wide_inputs(&b);
    let x_clear = x.clone();
    // The secrets: the inputs, and burn's gradients and the weights after the step (encoded).
    let grads = gradients(&spec(), &b.params, &b.features, &b.labels, b.n).expect("burn");
    let lr = 0.5;
    let stepped: Vec<f64> = b
        .params
        .iter()
        .zip(&grads)
        .map(|(w, g)| f64::from(*w) - lr / b.n as f64 * f64::from(*g))
        .collect();
    let mut secrets: std::collections::HashSet<u128> = std::collections::HashSet::new();
    for t in [&w0, &x, &y] {
        secrets.extend(t.as_slice().iter().copied().filter(|v| *v != 0));
    }
    let g64: Vec<f64> = grads.iter().map(|g| f64::from(*g)).collect();
    for t in [enc_w(&g64, &[g64.len()]), enc_w(&stepped, &[stepped.len()])] {
        secrets.extend(t.as_slice().iter().copied().filter(|v| *v != 0));
    }
    let secrets: std::collections::HashSet<u128> = secrets
        .iter()
        .flat_map(|v| [*v, v.wrapping_neg()])
        .collect();
    let parties = [
        PartyId::Server(0),
        PartyId::Server(1),
        PartyId::Server(2),
        PartyId::DataOwner(0),
        PartyId::ModelOwner,
    ];
    let mut nets = MemoryNetwork::cluster(&parties);
    let (owner, data_owner) = (nets.pop().unwrap(), nets.pop().unwrap());
    let views: Vec<Arc<std::sync::Mutex<Vec<Vec<u8>>>>> = (0..3).map(|_| Arc::default()).collect();
    let servers: Vec<Recording> = nets
        .into_iter()
        .zip(&views)
        .map(|(inner, seen)| Recording::new(inner, Arc::clone(seen)))
        .collect();
    let n_params = w0.len();
    let (features, labels) = (x.shape().to_vec(), y.shape().to_vec());
    let rt = runtime();
    let revealed = rt.block_on(async move {
        let data = tokio::spawn(async move {
            send_input(&data_owner, scheme, "x", &x).await?;
            send_input(&data_owner, scheme, "y", &y).await
        });
        let model_owner = tokio::spawn(async move {
            send_input(&owner, scheme, "w0", &w0).await?;
            receive_output::<u128, _>(&owner, scheme, "w1", &[n_params]).await
        });
        tessera_mpc::harness::run_on(servers, move |s| {
            let (features, labels) = (features.clone(), labels.clone());
            async move {
                let p = make(s)?;
                let x = p.input(PartyId::DataOwner(0), "x", &features).await?;
                let y = p.input(PartyId::DataOwner(0), "y", &labels).await?;
                let model = SecureModel::new(&spec())?;
                let w = p
                    .input(PartyId::ModelOwner, "w0", &[model.num_params()])
                    .await?;
                let params = model.split_params(&p, &w)?;
                let train = TrainSpec {
                    loss: Loss::SoftmaxCrossEntropy,
                    optimizer: Optimizer::sgd(lr),
                    activations: Activations::Exact,
                    dp: None,
                };
                let mut t = Trainer::new::<P>(model, train, params)?;
                t.step(&p, &x, &y, false).await?;
                let flat = p.concat(&t.params().iter().collect::<Vec<_>>())?;
                p.output(&flat, PartyId::ModelOwner, "w1").await
            }
        })
        .await
        .expect("servers");
        data.await.expect("data owner").expect("inputs");
        model_owner.await.expect("model owner").expect("weights")
    });
    // The model owner got the stepped weights (so the secrets above are the right ones).
    let got = dec_w(&revealed);
    assert!(
        got.iter().zip(&stepped).all(|(g, w)| (g - w).abs() < 0.05),
        "{}: the revealed weights are not the step's",
        P::NAME
    );
    // A message leaks if a word is a secret's encoding or small.
    let leak = |msg: &[u8]| -> Option<String> {
        msg.chunks_exact(16).find_map(|word| {
            let v = u128::from_le_bytes(word.try_into().expect("16 bytes"));
            if secrets.contains(&v) {
                Some(format!("the secret value {}", v as i128))
            } else if (v as i128).unsigned_abs() < (1u128 << 40) {
                Some(format!("the small word {}", v as i128))
            } else {
                None
            }
        })
    };
    // The check finds a leak where there is one: the examples, the gradients in the clear.
    let g_enc = enc_w(&g64, &[g64.len()]);
    assert!(leak(&tessera_common::ring::encode_elements(x_clear.as_slice())).is_some());
    assert!(leak(&tessera_common::ring::encode_elements(g_enc.as_slice())).is_some());
    for (i, view) in views.iter().enumerate() {
        let view = view.lock().unwrap();
        assert!(
            view.len() > 10,
            "server {i} received {} messages",
            view.len()
        );
        let bytes: usize = view.iter().map(Vec::len).sum();
        assert!(
            bytes > 16 * 4 * 72,
            "server {i} received only {bytes} bytes"
        );
        for msg in view.iter() {
            if let Some(what) = leak(msg) {
                panic!("{}: server {i} received {what}", P::NAME);
            }
        }
    }
}

#[test]
fn aby3_servers_see_no_example_label_weight_or_gradient() {
    server_views_hold_no_secret(
        |s| Aby3::<Recording, u128>::in_ring(s, FW),
        tessera_common::sharing::outside::Scheme::Replicated,
    );
}

#[test]
fn securenn_servers_see_no_example_label_weight_or_gradient() {
    server_views_hold_no_secret(
        |s| SecureNn::<Recording, u128>::in_ring(s, FW),
        tessera_common::sharing::outside::Scheme::Additive,
    );
}
