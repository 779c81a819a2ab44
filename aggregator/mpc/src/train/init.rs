//! Initial weights drawn by the servers from a common seed, so no party has to provide them.
//!
//! Every server derives the same public initial parameters from a seed agreed in the job (the
//! initial weights of a model are not secret: they carry no data), then shares them as public
//! values. Dense and convolution weights are Glorot-uniform (Glorot & Bengio 2010: uniform in
//! `±sqrt(6 / (fan_in + fan_out))`) or He-uniform (He et al. 2015: `±sqrt(6 / fan_in)`, for
//! ReLU networks); biases start at zero. `fan_in` is `inputs` (dense) or `in_channels k^2`
//! (convolution), `fan_out` is `units` or `channels k^2`.

use tessera_common::prg::{Prg, Seed};

use crate::model::SecureModel;

/// The initialiser of weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Glorot (Xavier) uniform.
    Glorot,
    /// He (Kaiming) uniform.
    He,
}

/// The initial flat parameters of `model` (canonical order) from `seed`.
pub fn initial_params(model: &SecureModel, init: Init, seed: &Seed) -> Vec<f64> {
    let mut prg = Prg::new(seed, 0);
    let mut out = Vec::with_capacity(model.num_params());
    for shape in model.param_shapes() {
        let n: usize = shape.iter().product();
        if shape.len() == 1 {
            out.extend(std::iter::repeat_n(0.0, n));
            continue;
        }
        let (fan_in, fan_out) = match shape.as_slice() {
            [inputs, units] => (*inputs, *units),
            [o, c, kh, kw] => (c * kh * kw, o * kh * kw),
            _ => (n, n),
        };
        let bound = match init {
            Init::Glorot => (6.0 / (fan_in + fan_out) as f64).sqrt(),
            Init::He => (6.0 / fan_in as f64).sqrt(),
        };
        let raw: Vec<u64> = prg.ring_vec(n);
        out.extend(
            raw.iter()
                .map(|r| (*r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * bound - bound),
        );
    }
    out
}
