//! Training reports: `metrics.csv` (one row per round) and `metrics.png`, a plot of test accuracy
//! (blue, left scale 0..1), test loss (red) and train loss (orange), the losses scaled to the
//! largest loss seen; rounds run left to right, with a grid line every 0.1 of the scale.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One round's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number.
    pub round: u64,
    /// Weighted mean local training loss of the contributors (revealed with the aggregate).
    pub train_loss: f64,
    /// Cross-entropy on the model owner's test set.
    pub test_loss: f64,
    /// Accuracy on the model owner's test set.
    pub test_accuracy: f64,
    /// Contributors.
    pub clients: usize,
    /// Bytes the model owner sent and received in the round (weights out, result shares in).
    pub bytes: u64,
    /// Wall-clock seconds of the round, evaluation included.
    pub seconds: f64,
    /// Under differential privacy: the epsilon spent by every aggregate revealed so far.
    #[serde(default)]
    pub epsilon: Option<f64>,
}

/// Writes `metrics.csv`.
pub fn write_metrics_csv(path: &Path, rows: &[RoundMetrics]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "round,train_loss,test_loss,test_accuracy,clients,bytes,seconds,epsilon"
    )?;
    for r in rows {
        let epsilon = r.epsilon.map(|e| format!("{e:.6}")).unwrap_or_default();
        writeln!(
            f,
            "{},{:.6},{:.6},{:.6},{},{},{:.3},{epsilon}",
            r.round, r.train_loss, r.test_loss, r.test_accuracy, r.clients, r.bytes, r.seconds
        )?;
    }
    f.flush()
}

/// Picks one plotted value out of a row.
type Series<'a> = &'a dyn Fn(&RoundMetrics) -> f64;

const W: usize = 640;
const H: usize = 400;
const MARGIN: usize = 30;

struct Canvas(Vec<u8>);

impl Canvas {
    fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < W && y < H {
            let i = (y * W + x) * 3;
            self.0[i..i + 3].copy_from_slice(&rgb);
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), rgb: [u8; 3]) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                self.set(x as usize + dx, y as usize + dy, rgb);
            }
        }
    }
}

/// Writes `metrics.png`.
pub fn write_plot_png(path: &Path, rows: &[RoundMetrics]) -> std::io::Result<()> {
    let mut c = Canvas(vec![255; W * H * 3]);
    let (x0, x1) = (MARGIN as f64, (W - MARGIN) as f64);
    let (y_top, y_bottom) = (MARGIN as f64, (H - MARGIN) as f64);
    let to_y = |v: f64| y_bottom - v.clamp(0.0, 1.0) * (y_bottom - y_top);
    for g in 0..=10 {
        let y = to_y(g as f64 / 10.0);
        c.line(
            (x0, y),
            (x1, y),
            if g % 5 == 0 {
                [180, 180, 180]
            } else {
                [225, 225, 225]
            },
        );
    }
    c.line((x0, y_top), (x0, y_bottom), [0, 0, 0]);
    c.line((x0, y_bottom), (x1, y_bottom), [0, 0, 0]);
    let n = rows.len().max(2) - 1;
    let to_x = |i: usize| x0 + i as f64 / n as f64 * (x1 - x0);
    let max_loss = rows
        .iter()
        .flat_map(|r| [r.test_loss, r.train_loss])
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let series: [(Series, [u8; 3]); 3] = [
        (&|r| r.test_accuracy, [30, 80, 220]),
        (&|r| r.test_loss / max_loss, [220, 40, 40]),
        (&|r| r.train_loss / max_loss, [240, 150, 20]),
    ];
    for (value, rgb) in series {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| value(r).is_finite())
            .map(|(i, r)| (to_x(i), to_y(value(r))))
            .collect();
        for pair in points.windows(2) {
            c.line(pair[0], pair[1], rgb);
        }
        for p in &points {
            for d in 0..3 {
                c.set(p.0 as usize + d, p.1 as usize, rgb);
                c.set(p.0 as usize, p.1 as usize + d, rgb);
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), W as u32, H as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&c.0)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}
