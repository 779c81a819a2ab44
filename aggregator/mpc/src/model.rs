//! A [`ModelSpec`] under MPC: the spec that builds the data owners' burn module (and the model
//! owner's) runs as a secure model on any [`Protocol`], with its parameters in the same canonical
//! order (node by node: the weight, then the bias; a dense weight is `[inputs, units]`, a
//! convolution's `[channels, in_channels / groups, kh, kw]`, as burn stores them).
//!
//! Encrypted prediction: the model owner shares the flat parameters, the prediction client its
//! input batch, the servers run [`SecureModel::forward`] (the graph executor,
//! [`crate::graph`], for chains and graphs alike) and reveal the logits to the client only.
//! Encrypted training still walks a chain's layers ([`SecureModel::layers`]).

use crate::graph::SecureGraph;
use tessera_common::model_spec::{ModelSpec, ResolvedLayer, SpecError};

pub use crate::activations::Activations;

use super::MpcError;
use super::protocol::Protocol;

/// A resolved [`ModelSpec`] ready to run on shares.
#[derive(Debug, Clone)]
pub struct SecureModel {
    graph: SecureGraph,
    /// A chain's layers (encrypted training walks them); `None` for a graph.
    layers: Option<Vec<ResolvedLayer>>,
}

impl SecureModel {
    /// Resolves `spec`.
    pub fn new(spec: &ModelSpec) -> Result<Self, SpecError> {
        let layers = if spec.is_graph() {
            None
        } else {
            Some(spec.resolve()?.0)
        };
        Ok(SecureModel {
            graph: SecureGraph::new(&spec.graph()?)?,
            layers,
        })
    }

    /// A chain's resolved layers in order; a graph is [`SpecError::NotAChain`] (encrypted
    /// training, which reads them, takes chains only).
    pub fn layers(&self) -> Result<&[ResolvedLayer], MpcError> {
        self.layers.as_deref().ok_or_else(|| {
            SpecError::NotAChain {
                what: "encrypted training",
            }
            .into()
        })
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        self.graph.input_shape()
    }

    /// The shape of one output (the logits of one sample).
    pub fn output_shape(&self) -> &[usize] {
        self.graph.output_shape()
    }

    /// The shapes of the parameters in canonical order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.graph.param_shapes().to_vec()
    }

    /// The number of parameters.
    pub fn num_params(&self) -> usize {
        self.graph
            .param_shapes()
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

    /// The graph it runs (its peak activation memory, [`SecureGraph::peak_elements`]).
    pub fn graph(&self) -> &SecureGraph {
        &self.graph
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
        self.graph.forward(p, params, x, activations).await
    }
}
