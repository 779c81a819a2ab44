//! Model descriptions shared by every party.
//!
//! A [`ModelSpec`] is a serde description of a network: the shape of one input sample and either
//! a chain of layers (`layers`: the presets, spec files, the models of SecureML and SecureNN) or
//! a graph of nodes (`nodes` and `output`: residual, dense and depthwise networks, see
//! [`crate::graph`]). A chain is sugar for a chain graph ([`ModelSpec::graph`]). The same spec
//! builds the burn module the data owners train and the model owner evaluates, runs under MPC,
//! and names how many parameters an update has, so the servers can check upload lengths
//! without knowing anything else about the model.
//!
//! Parameters are counted (and flattened) node by node in graph order
//! ([`crate::graph::shape::param_shapes`]); for a chain that is layer by layer: a dense layer's
//! weight (`in x out`, row-major) then its bias (`out`); a conv layer's weight
//! (`out_channels x in_channels x k x k`) then its bias (`out_channels`).

use serde::{Deserialize, Serialize};

use crate::graph::{GraphError, INPUT, ModelGraph, Node, Op, Resolved, op};

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// Fully connected layer with `units` outputs (input must be flat).
    Dense {
        /// Output width.
        units: usize,
    },
    /// `max(0, x)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// 2-D convolution with square kernels.
    Conv2d {
        /// Output channels.
        channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// 2-D max pooling with square windows.
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// 2-D average pooling with square windows.
    AvgPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Flattens `[c, h, w]` to `[c * h * w]`.
    Flatten,
}

/// A network: input sample shape and a chain of layers or a graph of nodes; the last layer's
/// output (the graph's `output`) is the class logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Shape of one input sample: `[features]` or `[channels, height, width]`.
    pub input_shape: Vec<usize>,
    /// A chain's layers in order (empty for a graph).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerSpec>,
    /// A graph's nodes in a topological order (empty for a chain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// A graph's output value (the last node's when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A spec that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A chain's layer that does not fit its input.
    #[error("model spec: layer {layer} ({kind}) cannot take input of shape {input:?}")]
    Layer {
        /// Index of the offending layer.
        layer: usize,
        /// Its kind.
        kind: &'static str,
        /// The shape it was given.
        input: Vec<usize>,
    },
    /// A graph's node that does not resolve.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Neither layers nor nodes, or both.
    #[error("model spec: give either `layers` (a chain) or `nodes` (a graph), not {0}")]
    Form(&'static str),
    /// A graph where a chain is needed: `what` (encrypted training, until it covers graphs)
    /// takes chains only.
    #[error("model spec: {what} takes a chain of layers, and this model is a graph")]
    NotAChain {
        /// What needs the chain.
        what: &'static str,
    },
}

/// Data that does not fit a model: found by a data owner when it joins a job, and by the model
/// owner against its test data before round 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataMismatch {
    /// The samples' shape is not the model's input shape (nor the same number of values with a
    /// flat input).
    #[error("data samples have shape {data:?}, the model takes {model:?}")]
    Shape {
        /// The data's sample shape.
        data: Vec<usize>,
        /// The model's input shape.
        model: Vec<usize>,
    },
    /// A label the model's outputs cannot express.
    #[error("the data has label {label}, the model has {outputs} output(s) (labels 0..{classes})")]
    Labels {
        /// The largest label in the data.
        label: u8,
        /// The model's output width.
        outputs: usize,
        /// The labels it can express (one output: two classes, a binary logit).
        classes: usize,
    },
    /// The spec itself does not resolve.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// There is nothing to train on.
    #[error("the data has no examples")]
    NoExamples,
}

/// What one layer turns into once shapes are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedLayer {
    /// Dense `inputs -> units`.
    Dense {
        /// Input width.
        inputs: usize,
        /// Output width.
        units: usize,
    },
    /// Conv `in_channels -> channels`.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding.
        padding: usize,
    },
    /// A layer without parameters.
    Stateless(StatelessLayer),
}

impl ResolvedLayer {
    /// The shapes of this layer's parameters, in the canonical order: a dense layer's
    /// `[inputs, units]` weight then its bias, a convolution's `[channels, in_channels, kernel,
    /// kernel]` weight then its bias, none for the others. A model's flat parameter vector is
    /// its layers' in order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        match *self {
            ResolvedLayer::Dense { inputs, units } => vec![vec![inputs, units], vec![units]],
            ResolvedLayer::Conv2d {
                in_channels,
                channels,
                kernel,
                ..
            } => vec![vec![channels, in_channels, kernel, kernel], vec![channels]],
            ResolvedLayer::Stateless(_) => Vec::new(),
        }
    }

    /// How many parameters the layer has.
    pub fn num_params(&self) -> usize {
        self.param_shapes()
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }
}

/// The parameter-free layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatelessLayer {
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
    /// Max pooling (kernel, stride).
    MaxPool2d(usize, usize),
    /// Average pooling (kernel, stride).
    AvgPool2d(usize, usize),
    /// Flatten.
    Flatten,
}

impl ModelSpec {
    /// A chain of `layers` over samples of `input_shape`.
    pub fn chain(input_shape: Vec<usize>, layers: Vec<LayerSpec>) -> Self {
        ModelSpec {
            input_shape,
            layers,
            nodes: Vec::new(),
            output: None,
        }
    }

    /// `graph` as a spec (its nodes and output; a spec file with `nodes` reads as this).
    pub fn from_graph(graph: ModelGraph) -> Self {
        ModelSpec {
            input_shape: graph.input_shape,
            layers: Vec::new(),
            nodes: graph.nodes,
            output: Some(graph.output),
        }
    }

    /// Whether the model is a graph (has `nodes`) rather than a chain of `layers`.
    pub fn is_graph(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// The model as a graph: a graph spec's nodes (its output the last node's unless named),
    /// or the chain as a chain graph, node `i` being layer `i` with the chain's shapes and
    /// parameter order.
    pub fn graph(&self) -> Result<ModelGraph, SpecError> {
        match (self.layers.is_empty(), self.nodes.is_empty()) {
            (false, false) => return Err(SpecError::Form("both")),
            (true, true) => return Err(SpecError::Form("neither")),
            _ => {}
        }
        if self.is_graph() {
            let output = match &self.output {
                Some(output) => output.clone(),
                None => self.nodes[self.nodes.len() - 1].output.clone(),
            };
            return Ok(ModelGraph {
                input_shape: self.input_shape.clone(),
                nodes: self.nodes.clone(),
                output,
            });
        }
        Ok(chain_graph(&self.input_shape, &self.layers))
    }

    /// The graph with its shapes and parameters known. A chain is resolved as a chain first,
    /// so its errors name the layer ([`SpecError::Layer`]).
    pub fn resolve_graph(&self) -> Result<Resolved, SpecError> {
        if !self.is_graph() {
            self.resolve()?;
        }
        Ok(self.graph()?.resolve()?)
    }

    /// MNIST network A of SecureML/SecureNN: FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10.
    pub fn network_a() -> Self {
        ModelSpec::chain(
            vec![1, 28, 28],
            vec![
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 128 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 128 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 10 },
            ],
        )
    }

    /// MNIST network B of SecureNN (Wagh et al. 2019, Fig. 10): conv 5x5 1-16, ReLU, max-pool 2,
    /// conv 5x5 16-16, ReLU, max-pool 2, FC 256-100, ReLU, FC 100-10.
    pub fn network_b() -> Self {
        Self::conv_net(16, 16, 100)
    }

    /// MNIST network C (LeNet, as SecureNN and TF Encrypted have it): conv 5x5 1-20, ReLU,
    /// max-pool 2, conv 5x5 20-50, ReLU, max-pool 2, FC 800-500, ReLU, FC 500-10.
    pub fn network_c() -> Self {
        Self::conv_net(20, 50, 500)
    }

    fn conv_net(c1: usize, c2: usize, hidden: usize) -> Self {
        let conv = |channels| LayerSpec::Conv2d {
            channels,
            kernel: 5,
            stride: 1,
            padding: 0,
        };
        let pool = LayerSpec::MaxPool2d {
            kernel: 2,
            stride: 2,
        };
        ModelSpec::chain(
            vec![1, 28, 28],
            vec![
                conv(c1),
                LayerSpec::Relu,
                pool.clone(),
                conv(c2),
                LayerSpec::Relu,
                pool,
                LayerSpec::Flatten,
                LayerSpec::Dense { units: hidden },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 10 },
            ],
        )
    }

    /// MNIST network D of SecureML/SecureNN: conv 5x5 stride 2 padding 2, 1-5, ReLU,
    /// FC 980-100, ReLU, FC 100-10.
    pub fn network_d() -> Self {
        ModelSpec::chain(
            vec![1, 28, 28],
            vec![
                LayerSpec::Conv2d {
                    channels: 5,
                    kernel: 5,
                    stride: 2,
                    padding: 2,
                },
                LayerSpec::Relu,
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 100 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 10 },
            ],
        )
    }

    /// Multinomial logistic regression on MNIST: FC 784-10.
    pub fn logistic_regression() -> Self {
        ModelSpec::chain(
            vec![1, 28, 28],
            vec![LayerSpec::Flatten, LayerSpec::Dense { units: 10 }],
        )
    }

    /// Binary logistic regression on MNIST (one logit; small digits against large ones, as TF
    /// Encrypted's benchmark): FC 784-1.
    pub fn binary_logistic_regression() -> Self {
        ModelSpec::chain(
            vec![1, 28, 28],
            vec![LayerSpec::Flatten, LayerSpec::Dense { units: 1 }],
        )
    }

    /// A small residual network on MNIST (a graph): conv 3x3 stride 2 1-8, ReLU, one basic
    /// block (conv 3x3 8-8, ReLU, conv 3x3 8-8, the block's input added back, ReLU), max-pool 2,
    /// FC 392-10. About 250,000 multiply-adds a sample (network A: 118,000).
    pub fn residual() -> Self {
        let conv = |stride| {
            Op::Conv2d(op::Conv {
                channels: 8,
                kernel: [3, 3],
                stride: [stride, stride],
                pads: [1; 4],
                dilation: [1, 1],
                groups: 1,
            })
        };
        let node = Node::new;
        ModelSpec::from_graph(ModelGraph {
            input_shape: vec![1, 28, 28],
            nodes: vec![
                node("stem", conv(2), &[INPUT]),
                node("stem_relu", Op::Relu, &["stem"]),
                node("conv1", conv(1), &["stem_relu"]),
                node("relu1", Op::Relu, &["conv1"]),
                node("conv2", conv(1), &["relu1"]),
                node("residual", Op::Add, &["stem_relu", "conv2"]),
                node("relu2", Op::Relu, &["residual"]),
                node("pool", Op::MaxPool2d(op::Pool::square(2, 2)), &["relu2"]),
                node("flatten", Op::Flatten, &["pool"]),
                node("fc", Op::Dense { units: 10 }, &["flatten"]),
            ],
            output: "fc".into(),
        })
    }

    /// A preset by name (`network-a` to `network-d`, `logreg`, `residual`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "network-a" | "a" => Some(Self::network_a()),
            "network-b" | "b" => Some(Self::network_b()),
            "network-c" | "c" | "lenet" => Some(Self::network_c()),
            "network-d" | "d" => Some(Self::network_d()),
            "logreg" | "logistic-regression" => Some(Self::logistic_regression()),
            "residual" | "resnet-mini" => Some(Self::residual()),
            _ => None,
        }
    }

    /// Resolves every layer of a chain against its input shape; the output shape of the
    /// network with it. What still takes chains only (encrypted training) reads this.
    ///
    /// A graph is [`SpecError::NotAChain`]: [`ModelSpec::resolve_graph`] takes both.
    pub fn resolve(&self) -> Result<(Vec<ResolvedLayer>, Vec<usize>), SpecError> {
        if self.is_graph() || self.output.is_some() {
            return Err(SpecError::NotAChain {
                what: "encrypted training",
            });
        }
        let mut shape = self.input_shape.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let err = |kind: &'static str, shape: &[usize]| SpecError::Layer {
                layer: i,
                kind,
                input: shape.to_vec(),
            };
            let (resolved, next) = match (layer, shape.as_slice()) {
                (LayerSpec::Dense { units }, &[inputs]) if *units > 0 && inputs > 0 => (
                    ResolvedLayer::Dense {
                        inputs,
                        units: *units,
                    },
                    vec![*units],
                ),
                (LayerSpec::Dense { .. }, s) => return Err(err("dense", s)),
                (LayerSpec::Relu, s) => {
                    (ResolvedLayer::Stateless(StatelessLayer::Relu), s.to_vec())
                }
                (LayerSpec::Sigmoid, s) => (
                    ResolvedLayer::Stateless(StatelessLayer::Sigmoid),
                    s.to_vec(),
                ),
                (LayerSpec::Flatten, s) => (
                    ResolvedLayer::Stateless(StatelessLayer::Flatten),
                    vec![s.iter().product()],
                ),
                (
                    LayerSpec::Conv2d {
                        channels,
                        kernel,
                        stride,
                        padding,
                    },
                    &[c, h, w],
                ) if *kernel > 0
                    && *stride > 0
                    && h + 2 * padding >= *kernel
                    && w + 2 * padding >= *kernel =>
                {
                    (
                        ResolvedLayer::Conv2d {
                            in_channels: c,
                            channels: *channels,
                            kernel: *kernel,
                            stride: *stride,
                            padding: *padding,
                        },
                        vec![
                            *channels,
                            (h + 2 * padding - kernel) / stride + 1,
                            (w + 2 * padding - kernel) / stride + 1,
                        ],
                    )
                }
                (LayerSpec::Conv2d { .. }, s) => return Err(err("conv2d", s)),
                (
                    LayerSpec::MaxPool2d { kernel, stride }
                    | LayerSpec::AvgPool2d { kernel, stride },
                    &[c, h, w],
                ) if *kernel > 0 && *stride > 0 && h >= *kernel && w >= *kernel => {
                    let stateless = if matches!(layer, LayerSpec::MaxPool2d { .. }) {
                        StatelessLayer::MaxPool2d(*kernel, *stride)
                    } else {
                        StatelessLayer::AvgPool2d(*kernel, *stride)
                    };
                    (
                        ResolvedLayer::Stateless(stateless),
                        vec![c, (h - kernel) / stride + 1, (w - kernel) / stride + 1],
                    )
                }
                (LayerSpec::MaxPool2d { .. } | LayerSpec::AvgPool2d { .. }, s) => {
                    return Err(err("pool2d", s));
                }
            };
            out.push(resolved);
            shape = next;
        }
        Ok((out, shape))
    }

    /// The spec with `input_shape` replaced, checked to resolve.
    pub fn with_input_shape(&self, input_shape: &[usize]) -> Result<Self, SpecError> {
        let spec = ModelSpec {
            input_shape: input_shape.to_vec(),
            ..self.clone()
        };
        spec.resolve_graph()?;
        Ok(spec)
    }

    /// Whether samples of `sample_shape` are this model's input: the same shape, or the same
    /// number of values when the input is flat.
    pub fn takes_shape(&self, sample_shape: &[usize]) -> bool {
        sample_shape == self.input_shape.as_slice()
            || (self.input_shape.len() == 1
                && sample_shape.iter().product::<usize>() == self.input_shape[0])
    }

    /// The width of the logits of one sample.
    pub fn outputs(&self) -> Result<usize, SpecError> {
        Ok(self.resolve_graph()?.output_shape.iter().product())
    }

    /// Labels `0..classes()` the model's logits express: its output width, or 2 for one logit.
    pub fn classes(&self) -> Result<usize, SpecError> {
        let width = self.outputs()?;
        Ok(if width == 1 { 2 } else { width })
    }

    /// Checks that data with samples of `sample_shape` and labels up to `max_label` fits.
    pub fn check_data(&self, sample_shape: &[usize], max_label: u8) -> Result<(), DataMismatch> {
        if !self.takes_shape(sample_shape) {
            return Err(DataMismatch::Shape {
                data: sample_shape.to_vec(),
                model: self.input_shape.clone(),
            });
        }
        let classes = self.classes()?;
        if usize::from(max_label) >= classes {
            return Err(DataMismatch::Labels {
                label: max_label,
                outputs: self.outputs()?,
                classes,
            });
        }
        Ok(())
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> Result<usize, SpecError> {
        Ok(self.resolve_graph()?.num_params())
    }
}

/// A chain of `layers` as a graph: node `i` is layer `i`, reading the previous node's output
/// (the first reads [`INPUT`]); the last node's output is the graph's.
fn chain_graph(input_shape: &[usize], layers: &[LayerSpec]) -> ModelGraph {
    let mut nodes = Vec::with_capacity(layers.len());
    let mut previous = INPUT.to_string();
    for (i, layer) in layers.iter().enumerate() {
        let op = match *layer {
            LayerSpec::Dense { units } => Op::Dense { units },
            LayerSpec::Relu => Op::Relu,
            LayerSpec::Sigmoid => Op::Sigmoid,
            LayerSpec::Conv2d {
                channels,
                kernel,
                stride,
                padding,
            } => Op::Conv2d(op::Conv {
                channels,
                kernel: [kernel, kernel],
                stride: [stride, stride],
                pads: [padding; 4],
                dilation: [1, 1],
                groups: 1,
            }),
            LayerSpec::MaxPool2d { kernel, stride } => {
                Op::MaxPool2d(op::Pool::square(kernel, stride))
            }
            LayerSpec::AvgPool2d { kernel, stride } => {
                Op::AvgPool2d(op::Pool::square(kernel, stride))
            }
            LayerSpec::Flatten => Op::Flatten,
        };
        let output = format!("{}{i}", op.name());
        nodes.push(Node {
            name: output.clone(),
            op,
            inputs: vec![previous],
            output: output.clone(),
        });
        previous = output;
    }
    ModelGraph {
        input_shape: input_shape.to_vec(),
        nodes,
        output: previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_known_sizes() {
        assert_eq!(
            ModelSpec::network_a().num_params(),
            Ok(784 * 128 + 128 + 128 * 128 + 128 + 1290)
        );
        assert_eq!(ModelSpec::logistic_regression().num_params(), Ok(7850));
        // SecureNN's networks B, C (LeNet) and D.
        assert_eq!(
            ModelSpec::network_b().num_params(),
            Ok(16 * 25 + 16 + 16 * 16 * 25 + 16 + 256 * 100 + 100 + 100 * 10 + 10)
        );
        assert_eq!(
            ModelSpec::network_c().num_params(),
            Ok(20 * 25 + 20 + 50 * 20 * 25 + 50 + 800 * 500 + 500 + 500 * 10 + 10)
        );
        assert_eq!(
            ModelSpec::network_d().num_params(),
            Ok(5 * 25 + 5 + 980 * 100 + 100 + 100 * 10 + 10)
        );
        let (_, out) = ModelSpec::network_a().resolve().unwrap();
        assert_eq!(out, vec![10]);
    }

    #[test]
    fn conv_shapes_and_errors() {
        let spec = ModelSpec::chain(
            vec![1, 28, 28],
            vec![
                LayerSpec::Conv2d {
                    channels: 16,
                    kernel: 5,
                    stride: 1,
                    padding: 0,
                },
                LayerSpec::Relu,
                LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                },
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 10 },
            ],
        );
        let (_, out) = spec.resolve().unwrap();
        assert_eq!(out, vec![10]);
        assert_eq!(spec.num_params(), Ok(16 * 25 + 16 + 16 * 12 * 12 * 10 + 10));
        let bad = ModelSpec::chain(vec![1, 28, 28], vec![LayerSpec::Dense { units: 3 }]);
        assert!(matches!(
            bad.num_params(),
            Err(SpecError::Layer {
                layer: 0,
                kind: "dense",
                ..
            })
        ));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn a_chain_graph_has_the_chains_shapes_and_parameter_order() {
        for name in ["a", "b", "c", "d", "logreg"] {
            assert!(!ModelSpec::preset(name).unwrap().is_graph(), "{name}");
            let spec = ModelSpec::preset(name).unwrap();
            let (layers, output) = spec.resolve().unwrap();
            let resolved = spec.graph().unwrap().resolve().unwrap();
            assert_eq!(resolved.output_shape, output, "{name}");
            assert_eq!(resolved.num_params(), spec.num_params().unwrap(), "{name}");
            let chain: Vec<Vec<usize>> = layers
                .iter()
                .flat_map(ResolvedLayer::param_shapes)
                .collect();
            assert_eq!(resolved.params, chain, "{name}");
        }
    }

    #[test]
    fn the_residual_preset_is_a_graph_of_known_size() {
        let spec = ModelSpec::preset("residual").unwrap();
        assert!(spec.is_graph());
        assert_eq!(
            spec.num_params(),
            Ok((8 * 9 + 8) + 2 * (8 * 8 * 9 + 8) + (392 * 10 + 10))
        );
        assert_eq!(spec.classes(), Ok(10));
    }

    #[test]
    fn a_graph_spec_reads_from_json_and_refuses_chain_only_steps() {
        let json = r#"{
            "input_shape": [2, 4, 4],
            "nodes": [
                {"name": "c", "op": {"type": "conv2d", "channels": 2, "kernel": [3, 3],
                 "stride": [1, 1], "pads": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1},
                 "inputs": ["input"], "output": "c"},
                {"name": "sum", "op": {"type": "add"}, "inputs": ["input", "c"], "output": "sum"},
                {"name": "f", "op": {"type": "flatten"}, "inputs": ["sum"], "output": "f"},
                {"name": "fc", "op": {"type": "dense", "units": 3}, "inputs": ["f"], "output": "fc"}
            ]
        }"#;
        let spec: ModelSpec = serde_json::from_str(json).unwrap();
        assert!(spec.is_graph());
        assert_eq!(spec.graph().unwrap().output, "fc");
        assert_eq!(spec.num_params(), Ok(2 * 2 * 9 + 2 + 32 * 3 + 3));
        assert_eq!(spec.classes(), Ok(3));
        assert!(matches!(
            spec.resolve(),
            Err(SpecError::NotAChain {
                what: "encrypted training"
            })
        ));
        let round = serde_json::to_string(&spec).unwrap();
        assert!(!round.contains("layers"), "{round}");
        let mut both = spec.clone();
        both.layers = vec![LayerSpec::Relu];
        assert_eq!(both.num_params(), Err(SpecError::Form("both")));
        let chain = serde_json::to_string(&ModelSpec::network_a()).unwrap();
        assert!(
            !chain.contains("nodes") && !chain.contains("output"),
            "{chain}"
        );
    }
}
