//! The layers that hold parameters: one per dense, convolution or affine node, in graph order
//! (their fields in canonical order: weight before bias, scale before shift).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::activation::Activation;

/// A parameterised layer.
#[derive(Module, Debug)]
pub enum Layer {
    /// Fully connected.
    Dense(Linear),
    /// 2-D convolution.
    Conv(Conv2d),
    /// Per-channel scale and shift.
    Affine(Affine),
}

/// `scale * x + shift` per channel (axis 1 of the batch).
#[derive(Module, Debug)]
pub struct Affine {
    /// One factor per channel.
    pub scale: Param<Tensor<1>>,
    /// One offset per channel.
    pub shift: Param<Tensor<1>>,
}

impl Affine {
    pub(super) fn new(channels: usize, device: &Device) -> Self {
        Affine {
            scale: Param::from_tensor(Tensor::ones([channels], device)),
            shift: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    pub(super) fn forward(&self, x: Activation) -> Activation {
        let (scale, shift) = (self.scale.val(), self.shift.val());
        let c = scale.dims()[0];
        match x {
            Activation::Flat(t) => {
                Activation::Flat(t * scale.reshape([1, c]) + shift.reshape([1, c]))
            }
            Activation::Image(t) => {
                Activation::Image(t * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]))
            }
        }
    }
}
