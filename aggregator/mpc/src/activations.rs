//! [`Activations`]: how a model's nonlinear functions are computed under a protocol, exactly
//! where it compares or by Pond's polynomials.

use tessera_common::protocol::ProtocolKind;

use super::protocol::Protocol;
use super::{MpcError, approx, nn};

/// How activations are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activations {
    /// Exactly where the protocol compares (ReLU, max-pooling), CrypTen-style approximations
    /// otherwise (sigmoid); Pond refuses with [`MpcError::Unsupported`].
    Exact,
    /// TF Encrypted's polynomials for ReLU and sigmoid (Pond's way; any protocol can use them).
    Polynomial,
}

impl Activations {
    /// The activations a model runs with under `protocol`: exact comparisons, or Pond's
    /// polynomials.
    pub fn of(protocol: ProtocolKind) -> Activations {
        if protocol.compares() {
            Activations::Exact
        } else {
            Activations::Polynomial
        }
    }

    /// The logistic function as these activations compute it.
    pub async fn sigmoid<P: Protocol>(self, p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
        match self {
            Activations::Exact => approx::sigmoid(p, x).await,
            Activations::Polynomial => nn::sigmoid_poly(p, x).await,
        }
    }
}
