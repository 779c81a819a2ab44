//! Weights of imported layers: constants read off the graph, the dense layout Tessera keeps
//! (`[inputs, units]`), and batch normalisation folded into the layer before it.

use onnx_ir::{Argument, TensorDataExt};

use super::OnnxError;

/// A constant input of `node`: its shape and values as `f32`.
pub(super) fn constant(
    node: &str,
    arg: &Argument,
    what: &str,
) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
    let bad = |reason: String| OnnxError::Weights {
        node: node.to_owned(),
        reason,
    };
    let data = arg.value().ok_or_else(|| {
        bad(format!(
            "its {what} ({:?}) is not a constant: only initializers import",
            arg.name
        ))
    })?;
    let values = data
        .to_f32_vec()
        .map_err(|e| bad(format!("its {what} cannot be read as numbers: {e:?}")))?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("its {what} holds {v}")));
    }
    Ok((data.shape().to_vec(), values))
}

/// The parameters of one dense or convolutional layer, in Tessera's layout.
#[derive(Debug, Clone)]
pub(super) struct LayerWeights {
    /// Dense: `[inputs, units]` row-major; convolution: `[channels, in_channels, k, k]`.
    pub weight: Vec<f32>,
    /// One per output unit or channel.
    pub bias: Vec<f32>,
    /// Whether output `o`'s weights are column `o` (dense) or the `o`-th block (convolution).
    pub columns: bool,
}

impl LayerWeights {
    /// Output units or channels.
    pub(super) fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// Multiplies output `o`'s weights by `scale[o]` and maps its bias `b` to
    /// `b * scale[o] + shift[o]`.
    pub(super) fn scale_outputs(&mut self, scale: &[f32], shift: &[f32]) {
        let outs = self.outputs();
        if self.columns {
            for row in self.weight.chunks_mut(outs) {
                for (w, s) in row.iter_mut().zip(scale) {
                    *w *= s;
                }
            }
        } else {
            let per = self.weight.len() / outs.max(1);
            for (block, s) in self.weight.chunks_mut(per.max(1)).zip(scale) {
                for w in block {
                    *w *= s;
                }
            }
        }
        for ((b, s), t) in self.bias.iter_mut().zip(scale).zip(shift) {
            *b = *b * s + t;
        }
    }
}

/// `m` (`rows x cols`, row-major) transposed.
pub(super) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = m[r * cols + c];
        }
    }
    out
}

/// A bias of `outputs` values from a constant that broadcasts to them (`[outputs]`,
/// `[1, outputs]` or one value), times `factor`.
pub(super) fn bias(
    node: &str,
    shape: &[usize],
    values: &[f32],
    outputs: usize,
    factor: f32,
) -> Result<Vec<f32>, OnnxError> {
    match values.len() {
        n if n == outputs => Ok(values.iter().map(|v| v * factor).collect()),
        1 => Ok(vec![values[0] * factor; outputs]),
        _ => Err(OnnxError::Weights {
            node: node.to_owned(),
            reason: format!("a bias of shape {shape:?} does not broadcast to {outputs} outputs"),
        }),
    }
}

/// The per-channel `(scale, shift)` of an inference-mode batch normalisation:
/// `y = (x - mean) * gamma / sqrt(var + eps) + beta = x * s + (beta - mean * s)`.
pub(super) fn batch_norm_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| (f64::from(*g) / (f64::from(*v) + epsilon).sqrt()) as f32)
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    (scale, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_a_batch_norm_matches_applying_it() {
        // A dense layer 2 -> 3, then batch norm on its 3 outputs.
        let mut dense = LayerWeights {
            weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            bias: vec![0.5, -0.5, 1.0],
            columns: true,
        };
        let (gamma, beta, mean, var) = (
            [2.0, 1.0, 0.5],
            [0.1, 0.2, 0.3],
            [1.0, 0.0, -1.0],
            [3.0, 0.0, 1.0],
        );
        let x = [0.7f32, -1.3];
        let apply = |l: &LayerWeights| -> Vec<f32> {
            (0..3)
                .map(|o| x[0] * l.weight[o] + x[1] * l.weight[3 + o] + l.bias[o])
                .collect()
        };
        let before = apply(&dense);
        let (s, t) = batch_norm_affine(&gamma, &beta, &mean, &var, 1e-5);
        dense.scale_outputs(&s, &t);
        let after = apply(&dense);
        for o in 0..3 {
            let want = (before[o] - mean[o]) * gamma[o] / (var[o] + 1e-5).sqrt() + beta[o];
            assert!(
                (after[o] - want).abs() < 1e-3,
                "{o}: {} vs {want}",
                after[o]
            );
        }
        // A convolution's channels are blocks.
        let mut conv = LayerWeights {
            weight: vec![1.0; 8],
            bias: vec![0.0, 1.0],
            columns: false,
        };
        conv.scale_outputs(&[2.0, 3.0], &[0.5, 0.0]);
        assert_eq!(conv.weight, vec![2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]);
        assert_eq!(conv.bias, vec![0.5, 3.0]);
    }

    #[test]
    fn transposes_and_broadcasts_biases() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(bias("n", &[1], &[2.0], 3, 0.5).unwrap(), vec![1.0; 3]);
        assert!(matches!(
            bias("n", &[2], &[1.0, 2.0], 3, 1.0),
            Err(OnnxError::Weights { .. })
        ));
    }
}
