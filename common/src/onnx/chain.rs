//! A graph the chain's layers express imports as that chain, as it always did: the same spec,
//! so checkpoints and jobs made from an ONNX chain before graphs existed still match it.

use crate::graph::{INPUT, ModelGraph, Op};
use crate::model_spec::{LayerSpec, ModelSpec};

/// The chain `graph` is, if every node reads the one before it (the first the input) and is a
/// layer a chain has; `None` otherwise. Global average pooling of a square input is the
/// average pool of its whole side (a chain's way: the flatten after it gives the same values).
pub(super) fn as_chain(graph: &ModelGraph) -> Option<ModelSpec> {
    let resolved = graph.resolve().ok()?;
    let mut previous = INPUT;
    let mut layers = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        if node.inputs.len() != 1 || node.inputs[0] != previous {
            return None;
        }
        let input = &resolved.shapes[&node.inputs[0]];
        let square = |k: [usize; 2], s: [usize; 2]| k[0] == k[1] && s[0] == s[1];
        let layer = match node.op {
            Op::Dense { units } => LayerSpec::Dense { units },
            Op::Relu => LayerSpec::Relu,
            Op::Sigmoid => LayerSpec::Sigmoid,
            Op::Flatten => LayerSpec::Flatten,
            Op::Conv2d(c)
                if square(c.kernel, c.stride)
                    && c.pads.iter().all(|p| *p == c.pads[0])
                    && c.dilation == [1, 1]
                    && c.groups == 1 =>
            {
                LayerSpec::Conv2d {
                    channels: c.channels,
                    kernel: c.kernel[0],
                    stride: c.stride[0],
                    padding: c.pads[0],
                }
            }
            Op::MaxPool2d(p) if square(p.kernel, p.stride) && p.pads == [0; 4] => {
                LayerSpec::MaxPool2d {
                    kernel: p.kernel[0],
                    stride: p.stride[0],
                }
            }
            Op::AvgPool2d(p) if square(p.kernel, p.stride) && p.pads == [0; 4] => {
                LayerSpec::AvgPool2d {
                    kernel: p.kernel[0],
                    stride: p.stride[0],
                }
            }
            Op::GlobalAvgPool => match input.as_slice() {
                [_, h, w] if h == w => LayerSpec::AvgPool2d {
                    kernel: *h,
                    stride: *h,
                },
                _ => return None,
            },
            _ => return None,
        };
        layers.push(layer);
        previous = &node.output;
    }
    let spec = ModelSpec::chain(graph.input_shape.clone(), layers);
    (previous == graph.output && spec.resolve().is_ok()).then_some(spec)
}
