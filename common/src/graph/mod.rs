//! A model as a graph ([`ModelGraph`]): the one description every party shares once models are
//! more than chains (residual additions, concatenations, depthwise convolutions). Nodes name
//! their inputs and their output; the graph's input is the value [`INPUT`]; nodes are listed in
//! a topological order (every input is the graph's or an earlier node's output).
//!
//! - [`op`]: the operators and their attributes;
//! - [`shape`]: static shape inference of one node and its parameters' shapes;
//!   [`ModelGraph::resolve`] walks the graph with it, every error naming its node
//!   ([`GraphError`]);
//! - a chain `ModelSpec` is sugar for a chain graph (`ModelSpec::graph`), so spec files and
//!   presets keep working.
//!
//! Parameters are one flat vector in a documented order: node by node, in the graph's order,
//! each node's tensors in the order [`shape::param_shapes`] gives (a dense layer's `[inputs,
//! units]` weight then its bias, a convolution's `[channels, in_channels / groups, kh, kw]`
//! weight then its bias, an affine node's scale then shift). A chain graph's order is the
//! chain's, so uploads, checkpoints and deployments keep their format.

mod error;
pub mod op;
pub mod shape;

pub use error::{GraphError, GraphProblem};
pub use op::Op;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most elements one value of one sample may have.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// The most parameters a model may have.
pub const MAX_PARAMS: usize = 1 << 34;

/// The elements of `shape`, if at most `max`.
fn elements(shape: &[usize], max: usize) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .filter(|n| *n <= max)
}

/// The name of the graph's input value.
pub const INPUT: &str = "input";

/// One node: an operator applied to named values, producing one named value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The node's name (errors name it).
    pub name: String,
    /// What it computes.
    pub op: Op,
    /// The values it reads, in the operator's order.
    pub inputs: Vec<String>,
    /// The value it produces.
    pub output: String,
}

impl Node {
    /// A node `name` applying `op` to `inputs`, its output named as the node.
    pub fn new(name: &str, op: Op, inputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: name.into(),
        }
    }
}

/// A model as a graph of nodes over one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGraph {
    /// The shape of one input sample: `[features]` or `[channels, height, width]`.
    pub input_shape: Vec<usize>,
    /// The nodes, in a topological order.
    pub nodes: Vec<Node>,
    /// The value that is the model's output (the logits).
    pub output: String,
}

impl ModelGraph {
    /// Every value's shape, the output's, and the parameters' in their canonical order; the
    /// first node that does not fit is a [`GraphError`] naming it.
    pub fn resolve(&self) -> Result<Resolved, GraphError> {
        if elements(&self.input_shape, MAX_ELEMENTS).is_none() {
            return Err(GraphError {
                node: INPUT.into(),
                problem: GraphProblem::TooLarge { what: "the input" },
            });
        }
        let mut shapes = BTreeMap::new();
        shapes.insert(INPUT.to_string(), self.input_shape.clone());
        let mut params = Vec::new();
        let mut num_params = 0usize;
        for node in &self.nodes {
            let at = |problem| GraphError {
                node: node.name.clone(),
                problem,
            };
            let op = node.op.name();
            let got = node.inputs.len();
            match node.op.arity() {
                Some(expected) if got != expected => {
                    return Err(at(GraphProblem::Arity { op, expected, got }));
                }
                None if got == 0 => {
                    return Err(at(GraphProblem::Arity {
                        op,
                        expected: 1,
                        got,
                    }));
                }
                _ => {}
            }
            let inputs = node
                .inputs
                .iter()
                .map(|name| {
                    shapes
                        .get(name)
                        .map(Vec::as_slice)
                        .ok_or_else(|| at(GraphProblem::Unknown(name.clone())))
                })
                .collect::<Result<Vec<&[usize]>, _>>()?;
            let out = shape::output_shape(&node.op, &inputs).map_err(at)?;
            if elements(&out, MAX_ELEMENTS).is_none() {
                return Err(at(GraphProblem::TooLarge { what: "its output" }));
            }
            for param in shape::param_shapes(&node.op, inputs[0]) {
                num_params = elements(&param, MAX_PARAMS)
                    .and_then(|n| num_params.checked_add(n))
                    .filter(|n| *n <= MAX_PARAMS)
                    .ok_or_else(|| {
                        at(GraphProblem::TooLarge {
                            what: "the parameters",
                        })
                    })?;
                params.push(param);
            }
            if shapes.contains_key(&node.output) {
                return Err(at(GraphProblem::Duplicate(node.output.clone())));
            }
            shapes.insert(node.output.clone(), out);
        }
        let output_shape = shapes
            .get(&self.output)
            .cloned()
            .ok_or_else(|| GraphError {
                node: "output".into(),
                problem: GraphProblem::Unknown(self.output.clone()),
            })?;
        Ok(Resolved {
            shapes,
            output_shape,
            params,
        })
    }
}

/// The order a graph runs in and when each value can go: values are numbered by place (the
/// input is 0, node `i`'s output `i + 1`), and each step reads some and is the last reader of
/// some ([`ModelGraph::schedule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// One step per node, in the graph's order.
    pub steps: Vec<ScheduleStep>,
    /// The output's place (never freed).
    pub output: usize,
}

/// One node of a [`Schedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStep {
    /// The places of its inputs, in order.
    pub inputs: Vec<usize>,
    /// The places it reads last (sorted, once each): free after it ran.
    pub frees: Vec<usize>,
}

impl ModelGraph {
    /// The graph's [`Schedule`]. The graph must resolve ([`ModelGraph::resolve`]): every name
    /// it reads is the input or an earlier node's output.
    pub fn schedule(&self) -> Schedule {
        let mut place = BTreeMap::new();
        place.insert(INPUT, 0);
        for (i, node) in self.nodes.iter().enumerate() {
            place.insert(node.output.as_str(), i + 1);
        }
        let output = place[self.output.as_str()];
        let mut last = vec![usize::MAX; self.nodes.len() + 1];
        for (i, node) in self.nodes.iter().enumerate() {
            for name in &node.inputs {
                last[place[name.as_str()]] = i;
            }
        }
        let steps = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let inputs: Vec<usize> = node.inputs.iter().map(|n| place[n.as_str()]).collect();
                let mut frees: Vec<usize> = inputs
                    .iter()
                    .copied()
                    .filter(|&v| last[v] == i && v != output)
                    .collect();
                frees.sort_unstable();
                frees.dedup();
                ScheduleStep { inputs, frees }
            })
            .collect();
        Schedule { steps, output }
    }
}

/// A graph with its shapes known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Every value's per-sample shape, by name.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// The output's shape (the logits of one sample).
    pub output_shape: Vec<usize>,
    /// The parameters' shapes, in the canonical order.
    pub params: Vec<Vec<usize>>,
}

impl Resolved {
    /// Parameters in all.
    pub fn num_params(&self) -> usize {
        self.params
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests;
