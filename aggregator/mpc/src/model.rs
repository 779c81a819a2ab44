//! A [`ModelSpec`] under MPC: the spec that builds the data owners' burn module (and the model
//! owner's) runs as a secure model on any [`Protocol`], with its parameters in the same canonical
//! order (per parametric layer: the weight, then the bias; a dense weight is `[inputs, units]`, a
//! convolution's `[channels, in_channels, k, k]`, as burn stores them).
//!
//! Encrypted prediction: the model owner shares the flat parameters, the prediction client its
//! input batch, the servers run [`SecureModel::forward`] and reveal the logits to the client only.

use crate::error::Invalid;
use tessera_common::model_spec::{ModelSpec, ResolvedLayer, SpecError, StatelessLayer};
use tessera_common::protocol::ProtocolKind;

use super::layout::Window;
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

/// A resolved [`ModelSpec`] ready to run on shares.
#[derive(Debug, Clone)]
pub struct SecureModel {
    layers: Vec<ResolvedLayer>,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

impl SecureModel {
    /// Resolves `spec`.
    pub fn new(spec: &ModelSpec) -> Result<Self, SpecError> {
        let (layers, output_shape) = spec.resolve()?;
        Ok(SecureModel {
            layers,
            input_shape: spec.input_shape.clone(),
            output_shape,
        })
    }

    /// The resolved layers in order.
    pub fn layers(&self) -> &[ResolvedLayer] {
        &self.layers
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The shape of one output (the logits of one sample).
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The shapes of the parameters in canonical order
    /// ([`ResolvedLayer::param_shapes`], layer by layer).
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.layers
            .iter()
            .flat_map(ResolvedLayer::param_shapes)
            .collect()
    }

    /// The number of parameters.
    pub fn num_params(&self) -> usize {
        self.param_shapes()
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Cuts a flat sharing of all parameters into one tensor per weight and bias.
    pub fn split_params<P: Protocol>(
        &self,
        p: &P,
        flat: &P::Tensor,
    ) -> Result<Vec<P::Tensor>, MpcError> {
        let shapes = self.param_shapes();
        let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        let flat = p.reshape(flat, &[self.num_params()])?;
        p.split(&flat, &refs)
    }

    /// Logits `[batch, outputs]` for an input batch shared as `[batch, features...]` (fixed
    /// point with the protocol's fractional bits).
    pub async fn forward<P: Protocol>(
        &self,
        p: &P,
        params: &[P::Tensor],
        x: &P::Tensor,
        activations: Activations,
    ) -> Result<P::Tensor, MpcError> {
        let batch = *p.shape(x).first().unwrap_or(&0);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.input_shape);
        let mut h = p.reshape(x, &shape)?;
        let mut next = params.iter();
        let mut param = || next.next().ok_or(MpcError::Invalid(Invalid::FewerParams));
        for layer in &self.layers {
            h = match *layer {
                ResolvedLayer::Dense { inputs, .. } => {
                    let flat = p.reshape(&h, &[batch, inputs])?;
                    let (w, b) = (param()?, param()?);
                    nn::dense(p, &flat, w, b).await?
                }
                ResolvedLayer::Conv2d {
                    stride, padding, ..
                } => {
                    let (w, b) = (param()?, param()?);
                    let y = nn::conv2d(p, &h, w, stride, padding).await?;
                    nn::add_channel_bias(p, &y, b)?
                }
                ResolvedLayer::Stateless(s) => match (s, activations) {
                    (StatelessLayer::Relu, Activations::Exact) => nn::relu(p, &h).await?,
                    (StatelessLayer::Relu, Activations::Polynomial) => nn::relu_poly(p, &h).await?,
                    (StatelessLayer::Sigmoid, act) => act.sigmoid(p, &h).await?,
                    (StatelessLayer::MaxPool2d(k, stride), _) => {
                        let window = Window {
                            kernel: (k, k),
                            stride,
                            padding: 0,
                        };
                        nn::maxpool2d(p, &h, window).await?
                    }
                    (StatelessLayer::AvgPool2d(k, stride), _) => {
                        let window = Window {
                            kernel: (k, k),
                            stride,
                            padding: 0,
                        };
                        nn::avgpool2d(p, &h, window).await?
                    }
                    (StatelessLayer::Flatten, _) => {
                        let n: usize = p.shape(&h).iter().product();
                        p.reshape(&h, &[batch, n / batch.max(1)])?
                    }
                },
            };
        }
        let outputs: usize = self.output_shape.iter().product();
        p.reshape(&h, &[batch, outputs])
    }
}
