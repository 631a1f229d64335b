//! PNG plots: density heat maps, samples beside data, flow trajectories and
//! log-log line charts. Text uses plotters' `ttf` feature (system fonts
//! through fontconfig; DejaVu is on this project's machines).

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::PlotError;

/// Pixel sizes of each kind of plot.
pub const HEATMAP_SIZE: (u32, u32) = (600, 600);
pub const SAMPLES_VS_DATA_SIZE: (u32, u32) = (1000, 500);
pub const TRAJECTORIES_SIZE: (u32, u32) = (600, 600);
pub const LOGLOG_SIZE: (u32, u32) = (700, 500);

const FONT: &str = "sans-serif";

/// Anchors of matplotlib's viridis at 0, 1/8, ..., 1, linearly interpolated.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The viridis colour of `t`, clamped to `[0, 1]` (NaN maps to 0).
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let scaled = t * (VIRIDIS.len() - 1) as f64;
    let i = (scaled.floor() as usize).min(VIRIDIS.len() - 2);
    let f = scaled - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_error<E: Display>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Checks `[x_min, x_max, y_min, y_max]` and returns the two ranges.
fn ranges(bounds: [f64; 4]) -> Result<(Range<f64>, Range<f64>), PlotError> {
    let [x0, x1, y0, y1] = bounds;
    if bounds.iter().all(|b| b.is_finite()) && x0 < x1 && y0 < y1 {
        Ok((x0..x1, y0..y1))
    } else {
        Err(PlotError::BadBounds(bounds))
    }
}

/// Draws `exp(log_density)` over `bounds = [x_min, x_max, y_min, y_max]` on a
/// `resolution x resolution` grid of cell centres, evaluated in one call.
/// Colours are scaled to the grid's maximum density; non-finite values are 0.
pub fn density_heatmap(
    path: impl AsRef<Path>,
    log_density: impl Fn(&[[f64; 2]]) -> Vec<f64>,
    bounds: [f64; 4],
    resolution: usize,
    title: &str,
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (xs, ys) = ranges(bounds)?;
    if resolution == 0 {
        return Err(PlotError::BadInput("resolution must be positive".into()));
    }
    let dx = (xs.end - xs.start) / resolution as f64;
    let dy = (ys.end - ys.start) / resolution as f64;
    let grid: Vec<[f64; 2]> = (0..resolution * resolution)
        .map(|k| {
            let (i, j) = (k % resolution, k / resolution);
            [
                xs.start + (i as f64 + 0.5) * dx,
                ys.start + (j as f64 + 0.5) * dy,
            ]
        })
        .collect();
    let log_p = log_density(&grid);
    if log_p.len() != grid.len() {
        return Err(PlotError::BadInput(format!(
            "log_density returned {} values for {} grid points",
            log_p.len(),
            grid.len()
        )));
    }
    let max = log_p
        .iter()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    // Relative to the maximum, so that exp() neither overflows nor underflows.
    let relative = |v: f64| if v.is_finite() { (v - max).exp() } else { 0.0 };

    let err = draw_error(path);
    let root = BitMapBackend::new(path, HEATMAP_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(xs, ys)
        .map_err(&err)?;
    chart
        .draw_series(grid.iter().zip(&log_p).map(|(c, &v)| {
            let corners = [
                (c[0] - dx / 2.0, c[1] - dy / 2.0),
                (c[0] + dx / 2.0, c[1] + dy / 2.0),
            ];
            Rectangle::new(corners, viridis(relative(v)).filled())
        }))
        .map_err(&err)?;
    chart.configure_mesh().disable_mesh().draw().map_err(&err)?;
    root.present().map_err(&err)
}

/// Scatter of one point set on an existing drawing area.
fn scatter_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    path: &Path,
    title: &str,
    points: &[[f64; 2]],
    bounds: [f64; 4],
    color: RGBColor,
) -> Result<(), PlotError> {
    let err = draw_error(path);
    let (xs, ys) = ranges(bounds)?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(xs, ys)
        .map_err(&err)?;
    chart.configure_mesh().draw().map_err(&err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p[0], p[1]), 1, color.mix(0.6).filled())),
        )
        .map_err(&err)?;
    Ok(())
}

/// Model samples (left) beside data (right), on the same axes.
pub fn samples_vs_data(
    path: impl AsRef<Path>,
    samples: &[[f64; 2]],
    data: &[[f64; 2]],
    bounds: [f64; 4],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    ranges(bounds)?;
    let err = draw_error(path);
    let root = BitMapBackend::new(path, SAMPLES_VS_DATA_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let (left, right) = root.split_horizontally(SAMPLES_VS_DATA_SIZE.0 / 2);
    scatter_panel(&left, path, "samples", samples, bounds, RED)?;
    scatter_panel(&right, path, "data", data, bounds, BLUE)?;
    root.present().map_err(&err)
}

/// Paths from t = 0 to t = 1: grey lines, a blue dot at the start and a red
/// dot at the end.
pub fn trajectories(
    path: impl AsRef<Path>,
    paths: &[Vec<[f64; 2]>],
    bounds: [f64; 4],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (xs, ys) = ranges(bounds)?;
    let err = draw_error(path);
    let root = BitMapBackend::new(path, TRAJECTORIES_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("trajectories", (FONT, 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(xs, ys)
        .map_err(&err)?;
    chart.configure_mesh().draw().map_err(&err)?;
    let grey = RGBColor(120, 120, 120).mix(0.5);
    for line in paths {
        chart
            .draw_series(LineSeries::new(line.iter().map(|p| (p[0], p[1])), grey))
            .map_err(&err)?;
    }
    let ends = |pick: fn(&Vec<[f64; 2]>) -> Option<&[f64; 2]>, color: RGBColor| {
        paths
            .iter()
            .filter_map(pick)
            .map(move |p| Circle::new((p[0], p[1]), 2, color.filled()))
    };
    chart.draw_series(ends(|l| l.first(), BLUE)).map_err(&err)?;
    chart.draw_series(ends(|l| l.last(), RED)).map_err(&err)?;
    root.present().map_err(&err)
}

/// A log-log chart of named `(x, y)` series with a legend; points with a
/// non-positive or non-finite coordinate are left out.
pub fn loglog_lines(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let plottable = |&(x, y): &(f64, f64)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite();
    let kept: Vec<(&String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| (name, pts.iter().copied().filter(plottable).collect()))
        .collect();
    let all = kept.iter().flat_map(|(_, pts)| pts.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all {
        (x_min, x_max, y_min, y_max) = (x_min.min(x), x_max.max(x), y_min.min(y), y_max.max(y));
    }
    if !x_min.is_finite() {
        return Err(PlotError::BadInput(
            "no point with positive x and y to plot".into(),
        ));
    }
    // Pad by a factor so that a single point or a flat line still has a range.
    let (xs, ys) = (x_min / 1.5..x_max * 1.5, y_min / 1.5..y_max * 1.5);

    let err = draw_error(path);
    let root = BitMapBackend::new(path, LOGLOG_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xs.log_scale(), ys.log_scale())
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .draw()
        .map_err(&err)?;
    for (i, (name, pts)) in kept.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(&err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)
}

/// Log-axis tick text: plain for moderate magnitudes, `1e-9` style otherwise
/// (the default prints float noise such as `0.0010000000000000002`).
fn format_tick(v: f64) -> String {
    if (1e-2..1e4).contains(&v.abs()) {
        format!("{}", (v * 1e6).round() / 1e6)
    } else {
        format!("{v:.0e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the PNG signature and reads width and height from the IHDR chunk.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 33, "PNG too short");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    #[test]
    fn viridis_hits_its_end_points_and_interpolates() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        // Half way between the anchors at 0 and 1/8.
        assert_eq!(viridis(1.0 / 16.0), RGBColor(70, 23, 103));
    }

    #[test]
    fn log_ticks_are_short() {
        assert_eq!(format_tick(0.0010000000000000002), "1e-3");
        assert_eq!(format_tick(100.00000000000001), "100");
        assert_eq!(format_tick(0.5), "0.5");
        assert_eq!(format_tick(1e6), "1e6");
    }

    #[test]
    fn density_heatmap_evaluates_the_grid_once_and_writes_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("density.png");
        let calls = std::cell::Cell::new(0);
        let log_density = |pts: &[[f64; 2]]| {
            calls.set(calls.get() + 1);
            pts.iter()
                .map(|p| -0.5 * (p[0] * p[0] + p[1] * p[1]))
                .collect()
        };
        density_heatmap(&path, log_density, [-3.0, 3.0, -3.0, 3.0], 50, "N(0, I)").unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(png_size(&path), HEATMAP_SIZE);
    }

    #[test]
    fn density_heatmap_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let short = |_: &[[f64; 2]]| vec![0.0];
        assert!(matches!(
            density_heatmap(&path, short, [-1.0, 1.0, -1.0, 1.0], 4, "t"),
            Err(PlotError::BadInput(_))
        ));
        let ok = |p: &[[f64; 2]]| vec![0.0; p.len()];
        assert!(matches!(
            density_heatmap(&path, ok, [1.0, -1.0, -1.0, 1.0], 4, "t"),
            Err(PlotError::BadBounds(_))
        ));
    }

    #[test]
    fn samples_vs_data_writes_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.png");
        let a: Vec<[f64; 2]> = (0..200)
            .map(|i| [(i as f64).sin(), (i as f64).cos()])
            .collect();
        let b: Vec<[f64; 2]> = a.iter().map(|p| [p[0] * 0.5, p[1] * 0.5]).collect();
        samples_vs_data(&path, &a, &b, [-2.0, 2.0, -2.0, 2.0]).unwrap();
        assert_eq!(png_size(&path), SAMPLES_VS_DATA_SIZE);
    }

    #[test]
    fn trajectories_writes_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paths.png");
        let paths: Vec<Vec<[f64; 2]>> = (0..10)
            .map(|k| {
                (0..=20)
                    .map(|s| [k as f64 * 0.1, s as f64 * 0.05])
                    .collect()
            })
            .collect();
        trajectories(&path, &paths, [-0.5, 1.5, -0.5, 1.5]).unwrap();
        assert_eq!(png_size(&path), TRAJECTORIES_SIZE);
    }

    #[test]
    fn loglog_lines_writes_png_and_rejects_nothing_plottable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err.png");
        let nfe: Vec<f64> = (1..8).map(|k| 10f64.powi(k) / 10.0).collect();
        let series = vec![
            (
                "Euler".to_string(),
                nfe.iter().map(|&n| (n, 1.0 / n)).collect(),
            ),
            (
                "RK4".to_string(),
                nfe.iter().map(|&n| (n, n.powi(-4))).collect(),
            ),
        ];
        loglog_lines(&path, "error vs NFE", "NFE", "error", &series).unwrap();
        assert_eq!(png_size(&path), LOGLOG_SIZE);
        let nothing = vec![("zero".to_string(), vec![(0.0, 1.0), (1.0, -1.0)])];
        assert!(matches!(
            loglog_lines(&path, "t", "x", "y", &nothing),
            Err(PlotError::BadInput(_))
        ));
    }
}
