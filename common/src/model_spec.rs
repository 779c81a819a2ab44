//! Model descriptions shared by every party.
//!
//! A [`ModelSpec`] is a serde description of a feed-forward network: the shape of one input sample
//! and a list of layers. The same spec builds the burn module the data owners train and the model
//! owner evaluates (`tessera_data_owner::model`), and names how many parameters an update has, so
//! the servers can check upload lengths without knowing anything else about the model.
//!
//! Parameters are counted (and flattened) layer by layer in spec order: a dense layer's weight
//! (`in x out`, row-major) then its bias (`out`); a conv layer's weight
//! (`out_channels x in_channels x k x k`) then its bias (`out_channels`).

use serde::{Deserialize, Serialize};

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

/// A network: input sample shape and layers; the last layer's output is the class logits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Shape of one input sample: `[features]` or `[channels, height, width]`.
    pub input_shape: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
}

/// A spec whose layers do not fit their inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model spec: layer {layer} ({kind}) cannot take input of shape {input:?}")]
pub struct SpecError {
    /// Index of the offending layer.
    pub layer: usize,
    /// Its kind.
    pub kind: &'static str,
    /// The shape it was given.
    pub input: Vec<usize>,
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
    /// MNIST network A of SecureML/SecureNN: FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10.
    pub fn network_a() -> Self {
        ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 128 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 128 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 10 },
            ],
        }
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
        ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![
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
        }
    }

    /// MNIST network D of SecureML/SecureNN: conv 5x5 stride 2 padding 2, 1-5, ReLU,
    /// FC 980-100, ReLU, FC 100-10.
    pub fn network_d() -> Self {
        ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![
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
        }
    }

    /// Multinomial logistic regression on MNIST: FC 784-10.
    pub fn logistic_regression() -> Self {
        ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![LayerSpec::Flatten, LayerSpec::Dense { units: 10 }],
        }
    }

    /// Binary logistic regression on MNIST (one logit; small digits against large ones, as TF
    /// Encrypted's benchmark): FC 784-1.
    pub fn binary_logistic_regression() -> Self {
        ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![LayerSpec::Flatten, LayerSpec::Dense { units: 1 }],
        }
    }

    /// A preset by name (`network-a` to `network-d`, `logreg`).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "network-a" | "a" => Some(Self::network_a()),
            "network-b" | "b" => Some(Self::network_b()),
            "network-c" | "c" | "lenet" => Some(Self::network_c()),
            "network-d" | "d" => Some(Self::network_d()),
            "logreg" | "logistic-regression" => Some(Self::logistic_regression()),
            _ => None,
        }
    }

    /// Resolves every layer against its input shape; the output shape of the network with it.
    pub fn resolve(&self) -> Result<(Vec<ResolvedLayer>, Vec<usize>), SpecError> {
        let mut shape = self.input_shape.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let err = |kind: &'static str, shape: &[usize]| SpecError {
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
            layers: self.layers.clone(),
        };
        spec.resolve()?;
        Ok(spec)
    }

    /// Whether samples of `sample_shape` are this model's input: the same shape, or the same
    /// number of values when the input is flat.
    pub fn takes_shape(&self, sample_shape: &[usize]) -> bool {
        sample_shape == self.input_shape.as_slice()
            || (self.input_shape.len() == 1
                && sample_shape.iter().product::<usize>() == self.input_shape[0])
    }

    /// Labels `0..classes()` the model's logits express: its output width, or 2 for one logit.
    pub fn classes(&self) -> Result<usize, SpecError> {
        let (_, out) = self.resolve()?;
        let width: usize = out.iter().product();
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
            let (_, out) = self.resolve()?;
            return Err(DataMismatch::Labels {
                label: max_label,
                outputs: out.iter().product(),
                classes,
            });
        }
        Ok(())
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> Result<usize, SpecError> {
        Ok(self
            .resolve()?
            .0
            .iter()
            .map(ResolvedLayer::num_params)
            .sum())
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
        let spec = ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![
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
        };
        let (_, out) = spec.resolve().unwrap();
        assert_eq!(out, vec![10]);
        assert_eq!(spec.num_params(), Ok(16 * 25 + 16 + 16 * 12 * 12 * 10 + 10));
        let bad = ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![LayerSpec::Dense { units: 3 }],
        };
        assert_eq!(bad.num_params().unwrap_err().layer, 0);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
    }
}
