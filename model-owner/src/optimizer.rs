//! Server-side optimizers applied to the securely averaged update (Reddi et al. 2021,
//! "Adaptive Federated Optimization", Algorithm 2).
//!
//! The aggregate is the weighted mean of the clients' deltas `Δ = Σ w_k Δ_k / Σ w_k`, a pseudo-gradient
//! pointing downhill. FedAvg adds it (scaled by the server learning rate); FedAdam keeps Adam moments
//! of it: `m = β1 m + (1-β1) Δ`, `v = β2 v + (1-β2) Δ²`, `x += η m / (√v + τ)`.

use serde::{Deserialize, Serialize};
use tessera_common::job::ServerOptimizer;

/// The optimizer with its state (checkpointed with the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Which optimizer and its hyper-parameters.
    pub kind: ServerOptimizer,
    /// First moments (FedAdam).
    pub m: Vec<f64>,
    /// Second moments (FedAdam).
    pub v: Vec<f64>,
}

impl OptimizerState {
    /// Fresh state for `n` parameters.
    pub fn new(kind: ServerOptimizer, n: usize) -> Self {
        let moments = matches!(kind, ServerOptimizer::FedAdam { .. });
        OptimizerState {
            kind,
            m: if moments { vec![0.0; n] } else { Vec::new() },
            v: if moments { vec![0.0; n] } else { Vec::new() },
        }
    }

    /// Applies the mean delta to `weights`.
    pub fn apply(&mut self, weights: &mut [f32], mean_delta: &[f64]) {
        match self.kind {
            ServerOptimizer::FedAvg { server_lr } => {
                for (w, d) in weights.iter_mut().zip(mean_delta) {
                    *w = (f64::from(*w) + server_lr * d) as f32;
                }
            }
            ServerOptimizer::FedAdam {
                server_lr,
                beta1,
                beta2,
                tau,
            } => {
                for (i, (w, d)) in weights.iter_mut().zip(mean_delta).enumerate() {
                    self.m[i] = beta1 * self.m[i] + (1.0 - beta1) * d;
                    self.v[i] = beta2 * self.v[i] + (1.0 - beta2) * d * d;
                    *w = (f64::from(*w) + server_lr * self.m[i] / (self.v[i].sqrt() + tau)) as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedavg_adds_the_scaled_delta() {
        let mut w = vec![1.0f32, -1.0];
        OptimizerState::new(ServerOptimizer::FedAvg { server_lr: 0.5 }, 2)
            .apply(&mut w, &[0.2, 0.4]);
        assert_eq!(w, vec![1.1, -0.8]);
    }

    #[test]
    fn fedadam_first_step_moves_by_about_lr_times_sign() {
        let kind = ServerOptimizer::FedAdam {
            server_lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        };
        let mut state = OptimizerState::new(kind, 2);
        let mut w = vec![0.0f32, 0.0];
        state.apply(&mut w, &[0.5, -0.5]);
        // m = 0.05, v = 0.0025, step = 0.01 * 0.05 / (0.05 + 0.001) ~ 0.0098.
        assert!(
            (w[0] - 0.0098).abs() < 1e-4 && (w[1] + 0.0098).abs() < 1e-4,
            "{w:?}"
        );
    }
}
