//! The benchmark's large networks, built in Rust as model graphs with seeded He-uniform weights
//! (nothing to download): torchvision's ResNet-18 and ResNet-50, VGG-19 and DenseNet-121, their
//! batch norms folded into the convolutions before them (inference), except DenseNet's, which
//! read concatenations and stay affine nodes (identity scale and shift here).
//!
//! The last convolution of each residual branch is scaled by [`BRANCH_GAIN`] (as zero-initialised
//! or small last batch norms do in trained ResNets), so the residual sums grow slowly with depth
//! and the logits stay in the range fixed-point arithmetic holds.

use std::collections::BTreeMap;

use tessera_common::graph::op::{Conv, Pool};
use tessera_common::graph::{INPUT, ModelGraph, Node, Op, shape};
use tessera_common::model_spec::ModelSpec;
use tessera_common::prg::{Prg, Seed};

/// The gain of the last convolution of a residual branch.
pub const BRANCH_GAIN: f32 = 0.2;

/// A network and its weights in canonical order.
pub struct Net {
    /// Its name, as the benchmark rows give it.
    pub name: &'static str,
    /// The graph.
    pub spec: ModelSpec,
    /// Its parameters.
    pub weights: Vec<f32>,
}

/// Builds a graph node by node, drawing each parametric node's weights as it goes.
struct Builder {
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    shapes: BTreeMap<String, Vec<usize>>,
    weights: Vec<f32>,
    prg: Prg,
}

impl Builder {
    fn new(input_shape: &[usize], seed: u8) -> Self {
        Builder {
            input_shape: input_shape.to_vec(),
            nodes: Vec::new(),
            shapes: BTreeMap::from([(INPUT.to_string(), input_shape.to_vec())]),
            weights: Vec::new(),
            prg: Prg::new(&Seed([seed; 32]), 0),
        }
    }

    /// Uniform in `[-bound, bound)`.
    fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        let raw: Vec<u64> = self.prg.ring_vec(n);
        raw.iter()
            .map(|r| ((*r >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound)
            .collect()
    }

    fn op(&mut self, op: Op, inputs: &[&str]) -> String {
        let shapes: Vec<&[usize]> = inputs.iter().map(|i| self.shapes[*i].as_slice()).collect();
        let out = shape::output_shape(&op, &shapes).expect("the zoo's graphs resolve");
        let name = format!("{}{}", op.name(), self.nodes.len());
        self.shapes.insert(name.clone(), out);
        self.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: name.clone(),
        });
        name
    }

    fn channels(&self, x: &str) -> usize {
        self.shapes[x][0]
    }

    /// A convolution with He-uniform weights times `gain`, zero biases, `groups` 1.
    fn conv(
        &mut self,
        x: &str,
        out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        gain: f32,
    ) -> String {
        let c = self.channels(x);
        let fan_in = (c * k * k) as f32;
        let w = self.uniform(out * c * k * k, gain * (6.0 / fan_in).sqrt());
        self.weights.extend(w);
        self.weights.extend(std::iter::repeat_n(0.0, out));
        self.op(
            Op::Conv2d(Conv {
                channels: out,
                kernel: [k, k],
                stride: [stride, stride],
                pads: [pad; 4],
                dilation: [1, 1],
                groups: 1,
            }),
            &[x],
        )
    }

    fn conv_relu(&mut self, x: &str, out: usize, k: usize, stride: usize, pad: usize) -> String {
        let y = self.conv(x, out, k, stride, pad, 1.0);
        self.op(Op::Relu, &[&y])
    }

    fn dense(&mut self, x: &str, units: usize) -> String {
        let inputs: usize = self.shapes[x].iter().product();
        let w = self.uniform(inputs * units, (6.0 / inputs as f32).sqrt());
        self.weights.extend(w);
        self.weights.extend(std::iter::repeat_n(0.0, units));
        self.op(Op::Dense { units }, &[x])
    }

    /// A batch norm that cannot fold, ReLU after it.
    fn affine_relu(&mut self, x: &str) -> String {
        let c = self.channels(x);
        self.weights.extend(std::iter::repeat_n(1.0, c));
        self.weights.extend(std::iter::repeat_n(0.0, c));
        let y = self.op(Op::Affine, &[x]);
        self.op(Op::Relu, &[&y])
    }

    fn pool(&mut self, x: &str, k: usize, stride: usize, pad: usize, max: bool) -> String {
        let pool = Pool {
            kernel: [k, k],
            stride: [stride, stride],
            pads: [pad; 4],
            count_pad: true,
        };
        let op = if max {
            Op::MaxPool2d(pool)
        } else {
            Op::AvgPool2d(pool)
        };
        self.op(op, &[x])
    }

    fn finish(self, name: &'static str, output: String) -> Net {
        let spec = ModelSpec::from_graph(ModelGraph {
            input_shape: self.input_shape,
            nodes: self.nodes,
            output,
        });
        debug_assert_eq!(spec.num_params(), Ok(self.weights.len()));
        Net {
            name,
            spec,
            weights: self.weights,
        }
    }
}

/// torchvision's stem: a 7x7 stride-2 convolution of 64, ReLU, 3x3 stride-2 max pooling.
fn stem(b: &mut Builder) -> String {
    let x = b.conv_relu(INPUT, 64, 7, 2, 3);
    b.pool(&x, 3, 2, 1, true)
}

/// A basic block (ResNet-18): two 3x3 convolutions, the input added back (projected by a 1x1
/// convolution when the shape changes).
fn basic(b: &mut Builder, x: &str, out: usize, stride: usize) -> String {
    let y = b.conv_relu(x, out, 3, stride, 1);
    let y = b.conv(&y, out, 3, 1, 1, BRANCH_GAIN);
    let short = if stride != 1 || b.channels(x) != out {
        b.conv(x, out, 1, stride, 0, 1.0)
    } else {
        x.to_string()
    };
    let sum = b.op(Op::Add, &[&short, &y]);
    b.op(Op::Relu, &[&sum])
}

/// A bottleneck block (ResNet-50): 1x1 to `width`, 3x3 (strided), 1x1 to `4 width`.
fn bottleneck(b: &mut Builder, x: &str, width: usize, stride: usize) -> String {
    let y = b.conv_relu(x, width, 1, 1, 0);
    let y = b.conv_relu(&y, width, 3, stride, 1);
    let y = b.conv(&y, 4 * width, 1, 1, 0, BRANCH_GAIN);
    let short = if stride != 1 || b.channels(x) != 4 * width {
        b.conv(x, 4 * width, 1, stride, 0, 1.0)
    } else {
        x.to_string()
    };
    let sum = b.op(Op::Add, &[&short, &y]);
    b.op(Op::Relu, &[&sum])
}

/// ResNet-18 (torchvision's layout) on `[3, side, side]` with `classes` outputs.
pub fn resnet18(side: usize, classes: usize) -> Net {
    let mut b = Builder::new(&[3, side, side], 18);
    let mut x = stem(&mut b);
    for (stage, out) in [64, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            x = basic(&mut b, &x, out, stride);
        }
    }
    let x = b.op(Op::GlobalAvgPool, &[&x]);
    let out = b.dense(&x, classes);
    b.finish("resnet18", out)
}

/// ResNet-50 (torchvision's layout) on `[3, 224, 224]`, 1000 classes.
pub fn resnet50() -> Net {
    let mut b = Builder::new(&[3, 224, 224], 50);
    let mut x = stem(&mut b);
    for (stage, (width, blocks)) in [(64, 3), (128, 4), (256, 6), (512, 3)]
        .into_iter()
        .enumerate()
    {
        for block in 0..blocks {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            x = bottleneck(&mut b, &x, width, stride);
        }
    }
    let x = b.op(Op::GlobalAvgPool, &[&x]);
    let out = b.dense(&x, 1000);
    b.finish("resnet50", out)
}

/// VGG-19 on `[3, 224, 224]`: 16 3x3 convolutions with ReLU in five stages closed by 2x2 max
/// pooling, FC 25088-4096-4096-1000.
pub fn vgg19() -> Net {
    let mut b = Builder::new(&[3, 224, 224], 19);
    let mut x = INPUT.to_string();
    for (width, convs) in [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)] {
        for _ in 0..convs {
            x = b.conv_relu(&x, width, 3, 1, 1);
        }
        x = b.pool(&x, 2, 2, 0, true);
    }
    let x = b.op(Op::Flatten, &[&x]);
    let x = b.dense(&x, 4096);
    let x = b.op(Op::Relu, &[&x]);
    let x = b.dense(&x, 4096);
    let x = b.op(Op::Relu, &[&x]);
    let out = b.dense(&x, 1000);
    b.finish("vgg19", out)
}

/// DenseNet-121 on `[3, 224, 224]`: the stem, four dense blocks of 6, 12, 24 and 16 layers
/// (each BN-ReLU-1x1 conv to 128, BN-ReLU-3x3 conv to 32, concatenated to its input), the
/// transitions between them (BN-ReLU-1x1 conv halving the channels, 2x2 average pooling), a
/// last BN-ReLU, global pooling and FC 1024-1000.
pub fn densenet121() -> Net {
    let mut b = Builder::new(&[3, 224, 224], 121);
    let x = b.conv(INPUT, 64, 7, 2, 3, 1.0);
    let x = b.affine_relu(&x);
    let mut x = b.pool(&x, 3, 2, 1, true);
    for (i, layers) in [6, 12, 24, 16].into_iter().enumerate() {
        for _ in 0..layers {
            let y = b.affine_relu(&x);
            let y = b.conv(&y, 128, 1, 1, 0, 1.0);
            let y = b.affine_relu(&y);
            let y = b.conv(&y, 32, 3, 1, 1, 1.0);
            x = b.op(Op::Concat, &[&x, &y]);
        }
        if i < 3 {
            let half = b.channels(&x) / 2;
            let y = b.affine_relu(&x);
            let y = b.conv(&y, half, 1, 1, 0, 1.0);
            x = b.pool(&y, 2, 2, 0, false);
        }
    }
    let x = b.affine_relu(&x);
    let x = b.op(Op::GlobalAvgPool, &[&x]);
    let out = b.dense(&x, 1000);
    b.finish("densenet121", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter counts torchvision gives (batch norms folded away: ResNets and VGG count
    /// their convolutions' folded biases instead of the batch norms' two vectors each).
    #[test]
    fn the_zoo_has_torchvisions_sizes() {
        // torchvision: ResNet-18 11,689,512 parameters with 1000 classes, of which 9,600 are
        // its 20 batch norms' scales and shifts (2 x 4,800 channels); the folded convolutions
        // carry 4,800 biases instead.
        let r18 = resnet18(224, 1000);
        assert_eq!(r18.weights.len(), 11_689_512 - 9_600 + 4_800);
        // ResNet-50: 25,557,032, batch norms 2 x 26,560 channels.
        assert_eq!(resnet50().weights.len(), 25_557_032 - 2 * 26_560 + 26_560);
        // VGG-19 (no batch norms): 143,667,240.
        assert_eq!(vgg19().weights.len(), 143_667_240);
        // DenseNet-121: 7,978,856, its batch norms kept (as affine nodes); its convolutions
        // have no biases in torchvision, here zero ones, one per output channel: the stem's
        // 64, 58 dense layers' 128 + 32, the transitions' 128, 256 and 512.
        let d = densenet121();
        let graph = d.spec.graph().unwrap();
        assert_eq!(
            graph
                .nodes
                .iter()
                .filter(|n| matches!(n.op, Op::Concat))
                .count(),
            58
        );
        assert_eq!(d.weights.len(), 7_978_856 + 64 + 58 * 160 + 128 + 256 + 512);
    }
}
