//! A [`ModelGraph`] on shares: the executor of encrypted inference for any model, chain or graph.
//!
//! [`SecureGraph`] resolves the graph once (shapes, parameters, and for each value the node that
//! reads it last), then [`SecureGraph::forward`] runs the nodes in their topological order
//! ([`ops`]), dropping each activation's shares right after its last reader. What stays alive is
//! what a later node still needs (a residual block's input until its addition, every layer of a
//! dense block until its concatenation); [`SecureGraph::peak_elements`] is the most ring
//! elements of activations alive at once in that schedule (per share held; the parameters'
//! shares are held throughout and not counted).

mod ops;

use tessera_common::graph::{ModelGraph, Op, Resolved};
use tessera_common::model_spec::SpecError;

use crate::MpcError;
use crate::activations::Activations;
use crate::error::Invalid;
use crate::protocol::Protocol;

/// One node as the executor runs it.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// Places of its inputs in the value table (the input is 0, node `i`'s output `i + 1`).
    inputs: Vec<usize>,
    /// Its parameter tensors: `params[range]`.
    params: std::ops::Range<usize>,
    /// The per-sample shape it produces.
    out: Vec<usize>,
    /// The values it reads last.
    frees: Vec<usize>,
}

/// A resolved graph ready to run on shares.
#[derive(Debug, Clone)]
pub struct SecureGraph {
    steps: Vec<Step>,
    output: usize,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    param_shapes: Vec<Vec<usize>>,
    /// Per sample, the most activation elements alive at once.
    peak: usize,
}

impl SecureGraph {
    /// Resolves `graph`.
    pub fn new(graph: &ModelGraph) -> Result<Self, SpecError> {
        let resolved: Resolved = graph.resolve()?;
        let schedule = graph.schedule();
        let mut steps = Vec::with_capacity(graph.nodes.len());
        let mut next_param = 0;
        for (node, step) in graph.nodes.iter().zip(schedule.steps) {
            let count = tessera_common::graph::shape::param_shapes(
                &node.op,
                &resolved.shapes[&node.inputs[0]],
            )
            .len();
            steps.push(Step {
                op: node.op,
                inputs: step.inputs,
                params: next_param..next_param + count,
                out: resolved.shapes[&node.output].clone(),
                frees: step.frees,
            });
            next_param += count;
        }
        let output = schedule.output;
        let size = |v: usize| -> usize {
            let shape = if v == 0 {
                &graph.input_shape
            } else {
                &steps[v - 1].out
            };
            shape.iter().product()
        };
        // The schedule `forward` runs: a node's output joins its inputs, then the inputs it
        // reads last go.
        let (mut alive, mut peak) = (size(0), size(0));
        for (i, step) in steps.iter().enumerate() {
            alive += size(i + 1);
            peak = peak.max(alive);
            alive -= step.frees.iter().map(|&v| size(v)).sum::<usize>();
        }
        Ok(SecureGraph {
            peak,
            steps,
            output,
            input_shape: graph.input_shape.clone(),
            output_shape: resolved.output_shape,
            param_shapes: resolved.params,
        })
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The shape of one output.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// The parameters' shapes in canonical order.
    pub fn param_shapes(&self) -> &[Vec<usize>] {
        &self.param_shapes
    }

    /// The most ring elements of activations alive at once in a forward pass of `batch`
    /// samples (per share a server holds).
    pub fn peak_elements(&self, batch: usize) -> usize {
        self.peak * batch
    }

    /// Logits `[batch, outputs]` for an input batch `[batch, features...]`.
    pub async fn forward<P: Protocol>(
        &self,
        p: &P,
        params: &[P::Tensor],
        x: &P::Tensor,
        activations: Activations,
    ) -> Result<P::Tensor, MpcError> {
        if params.len() < self.param_shapes.len() {
            return Err(MpcError::Invalid(Invalid::FewerParams));
        }
        let batch = *p.shape(x).first().unwrap_or(&0);
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.input_shape);
        let mut values: Vec<Option<P::Tensor>> = vec![None; self.steps.len() + 1];
        values[0] = Some(p.reshape(x, &shape)?);
        for (i, step) in self.steps.iter().enumerate() {
            let inputs: Vec<&P::Tensor> = step
                .inputs
                .iter()
                .map(|&v| values[v].as_ref().expect("read before freed"))
                .collect();
            let y = ops::apply(
                p,
                &step.op,
                &inputs,
                &params[step.params.clone()],
                &step.out,
                activations,
            )
            .await?;
            for &v in &step.frees {
                values[v] = None;
            }
            values[i + 1] = Some(y);
        }
        let out = values[self.output]
            .take()
            .expect("the output is never freed");
        let outputs: usize = self.output_shape.iter().product();
        p.reshape(&out, &[batch, outputs])
    }
}
