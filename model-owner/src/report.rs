//! Training reports: `metrics.csv` (one row per round or epoch) and `metrics.png` /
//! `metrics.svg`, drawn with `plotters` (see [`write_plot`]).

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
type Series = fn(&RoundMetrics) -> f64;

/// What a plot shows: its title and what one step of the x axis is.
#[derive(Debug, Clone, Copy)]
pub struct PlotLabels<'a> {
    /// The title (naming the job).
    pub title: &'a str,
    /// `round` (federated training) or `epoch` (encrypted training).
    pub step: &'a str,
}

/// Width and height of the plots, in pixels.
pub const PLOT_SIZE: (u32, u32) = (960, 720);

/// DejaVu Sans (Bitstream Vera license, `assets/DejaVuSans-LICENSE.txt`): the plots' text is
/// drawn with it, so they need no system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() -> std::io::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other("the bundled font does not load"))
    }
}

/// Writes the plot of `rows` to `path`: SVG if it ends in `.svg`, else PNG. Two panels over
/// the same x axis (rounds or epochs): test accuracy on a fixed 0-1 scale, and the training and
/// test cross-entropy on their own scale; axes with ticks and labels, a legend in each panel,
/// the title naming the job, and failed rounds (no aggregate) marked with red crosses.
pub fn write_plot(
    path: &Path,
    labels: PlotLabels<'_>,
    rows: &[RoundMetrics],
) -> std::io::Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let (w, h) = PLOT_SIZE;
    if path.extension().is_some_and(|e| e == "svg") {
        let root = SVGBackend::new(path, (w, h)).into_drawing_area();
        draw(&root, labels, rows).map_err(std::io::Error::other)?;
        root.present().map_err(std::io::Error::other)
    } else {
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            draw(&root, labels, rows).map_err(std::io::Error::other)?;
            root.present().map_err(std::io::Error::other)?;
        }
        let file = std::fs::File::create(path)?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&pixels)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    }
}

type DrawResult<DB> = Result<
    (),
    plotters::drawing::DrawingAreaErrorKind<<DB as plotters::prelude::DrawingBackend>::ErrorType>,
>;

fn draw<DB: plotters::prelude::DrawingBackend>(
    root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    labels: PlotLabels<'_>,
    rows: &[RoundMetrics],
) -> DrawResult<DB> {
    use plotters::prelude::*;
    const ORANGE: RGBColor = RGBColor(240, 150, 20);
    const DARK_RED: RGBColor = RGBColor(200, 30, 30);
    root.fill(&WHITE)?;
    let root = root.titled(labels.title, ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    let first = rows.first().map_or(1, |r| r.round) as f64;
    let last = rows.last().map_or(1, |r| r.round) as f64;
    let x_range = (first - 0.5)..(last + 0.5);
    let x_ticks = rows.len().clamp(1, 12);
    let whole = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    let failed: Vec<&RoundMetrics> = rows.iter().filter(|r| r.clients == 0).collect();
    let cross = |x: f64, y: f64| Cross::new((x, y), 7, DARK_RED.stroke_width(3));
    let legend_line = |color: RGBColor| {
        move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
    };

    let mut accuracy = ChartBuilder::on(&top)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone(), 0f64..1f64)?;
    accuracy
        .configure_mesh()
        .x_desc(labels.step)
        .y_desc("test accuracy")
        .x_labels(x_ticks)
        .x_label_formatter(&whole)
        .y_labels(11)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.test_accuracy.is_finite())
        .map(|r| (r.round as f64, r.test_accuracy))
        .collect();
    accuracy
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(3),
        ))?
        .label("test accuracy")
        .legend(legend_line(BLUE));
    accuracy.draw_series(points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
    if !failed.is_empty() {
        accuracy
            .draw_series(
                failed
                    .iter()
                    .map(|r| cross(r.round as f64, r.test_accuracy)),
            )?
            .label("failed round (no aggregate, model unchanged)")
            .legend(move |(x, y)| cross_legend(x, y));
    }
    accuracy
        .configure_series_labels()
        .position(legend_corner(&points, 1.0))
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let top_loss = rows
        .iter()
        .flat_map(|r| [r.train_loss, r.test_loss])
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max);
    let top_loss = if top_loss > 0.0 { top_loss * 1.1 } else { 1.0 };
    let mut loss = ChartBuilder::on(&bottom)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, 0f64..top_loss)?;
    loss.configure_mesh()
        .x_desc(labels.step)
        .y_desc("cross-entropy loss")
        .x_labels(x_ticks)
        .x_label_formatter(&whole)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let series: [(&str, RGBColor, Series); 2] = [
        ("training loss (contributors' mean)", ORANGE, |r| {
            r.train_loss
        }),
        ("test loss", RED, |r| r.test_loss),
    ];
    let mut right_side = Vec::new();
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| value(r).is_finite())
            .map(|r| (r.round as f64, value(r)))
            .collect();
        right_side.extend_from_slice(&points);
        loss.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(3),
        ))?
        .label(name)
        .legend(legend_line(color));
        loss.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    if !failed.is_empty() {
        loss.draw_series(
            failed
                .iter()
                .filter(|r| r.test_loss.is_finite())
                .map(|r| cross(r.round as f64, r.test_loss)),
        )?;
    }
    loss.configure_series_labels()
        .position(legend_corner(&right_side, top_loss))
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The right-hand corner the legend covers fewer `points` in (the y scale runs up to `top`):
/// the lower one if the right third of the curve runs in the upper half, else the upper one.
fn legend_corner(points: &[(f64, f64)], top: f64) -> plotters::chart::SeriesLabelPosition {
    use plotters::chart::SeriesLabelPosition;
    let last = points.iter().map(|p| p.0).fold(f64::MIN, f64::max);
    let first = points.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    let right: Vec<f64> = points
        .iter()
        .filter(|p| p.0 >= last - (last - first) / 3.0)
        .map(|p| p.1 / top)
        .collect();
    let mean = right.iter().sum::<f64>() / right.len().max(1) as f64;
    if mean > 0.5 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// The failed-round marker in a legend.
fn cross_legend(x: i32, y: i32) -> plotters::element::Cross<(i32, i32), i32> {
    use plotters::style::Color;
    plotters::element::Cross::new(
        (x + 12, y),
        6,
        plotters::style::RGBColor(200, 30, 30).stroke_width(3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<RoundMetrics> {
        (1..=8)
            .map(|round| {
                let failed = round == 4;
                RoundMetrics {
                    round,
                    train_loss: if failed { f64::NAN } else { 2.0 / round as f64 },
                    test_loss: 2.2 / round as f64,
                    test_accuracy: 1.0 - 0.6 / round as f64,
                    clients: if failed { 0 } else { 3 },
                    bytes: 1000,
                    seconds: 0.1,
                    epsilon: None,
                }
            })
            .collect()
    }

    /// The plots carry a title, axis labels, tick values, a legend and the failed round's
    /// marker (the old `metrics.png` had none of them), in SVG text and in PNG pixels.
    #[test]
    fn plots_have_titles_axes_legends_and_failed_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let labels = PlotLabels {
            title: "job 42: federated training",
            step: "round",
        };
        let svg = dir.path().join("metrics.svg");
        write_plot(&svg, labels, &rows()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        // Every text element is `<text ...>\n{text}\n</text>`.
        for needle in [
            "job 42: federated training",
            "round",
            "test accuracy",
            "cross-entropy loss",
            "training loss (contributors&apos; mean)",
            "test loss",
            "failed round (no aggregate, model unchanged)",
            "0.5",
            "8",
        ] {
            assert!(
                text.contains(&format!("\n{needle}\n</text>")),
                "{needle} missing from the SVG"
            );
        }
        let png_path = dir.path().join("metrics.png");
        write_plot(&png_path, labels, &rows()).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&png_path).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), PLOT_SIZE);
        let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
        let count = |f: &dyn Fn(&[u8]) -> bool| pixels.iter().filter(|p| f(p)).count();
        // The accuracy line is blue, the failed marker dark red, the text black.
        assert!(count(&|p| p[2] > 200 && p[0] < 60 && p[1] < 60) > 500);
        assert!(count(&|p| p[0] > 150 && p[1] < 60 && p[2] < 60) > 50);
        assert!(count(&|p| p[0] < 60 && p[1] < 60 && p[2] < 60) > 2000);
    }
}
