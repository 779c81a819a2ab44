//! A batch's activation as the interpreter carries it: flat or an image, the two sample ranks a
//! graph's values take.

use burn::tensor::Tensor;

/// An activation of a batch: `[n, features]` or `[n, c, h, w]`.
#[derive(Clone, Debug)]
pub(crate) enum Activation {
    /// `[n, features]`.
    Flat(Tensor<2>),
    /// `[n, c, h, w]`.
    Image(Tensor<4>),
}

impl Activation {
    /// `[n, everything else]`.
    pub(crate) fn flat(self) -> Tensor<2> {
        match self {
            Activation::Flat(t) => t,
            Activation::Image(t) => t.flatten(1, 3),
        }
    }

    /// The same elementwise function on either rank.
    pub(super) fn map(
        self,
        f2: impl FnOnce(Tensor<2>) -> Tensor<2>,
        f4: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Self {
        match self {
            Activation::Flat(t) => Activation::Flat(f2(t)),
            Activation::Image(t) => Activation::Image(f4(t)),
        }
    }

    pub(super) fn image(self) -> Tensor<4> {
        match self {
            Activation::Image(t) => t,
            Activation::Flat(_) => unreachable!("shape inference gives windows [c, h, w] inputs"),
        }
    }
}
