//! PNG plots: density heat maps with a colour bar, samples beside data, flow trajectories,
//! training curves and log-log line charts. Every plot titles its axes; points outside a
//! frame are left out and counted (plotters would pile them up on the frame's edge).
//! Text uses plotters' `ttf` feature (system fonts through fontconfig; DejaVu is on this
//! project's machines).

use std::fmt::Display;
use std::ops::Range;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use cnf_train::atomic::AtomicFile;
use cnf_train::error::{PlotError, TrainError};

/// Pixel sizes of each kind of plot.
pub const HEATMAP_SIZE: (u32, u32) = (720, 600);
pub const SAMPLES_VS_DATA_SIZE: (u32, u32) = (1000, 500);
pub const TRAJECTORIES_SIZE: (u32, u32) = (600, 600);
pub const LOGLOG_SIZE: (u32, u32) = (700, 500);
pub const TRAINING_CURVE_SIZE: (u32, u32) = (800, 800);

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

/// Bytes of an RGB image of `size` pixels.
fn rgb_len(size: (u32, u32)) -> usize {
    size.0 as usize * size.1 as usize * 3
}

/// Encodes an image drawn in memory as PNG into `path` through cnf-train's atomic write path:
/// a failure (or a kill) leaves an existing image intact, never a half-written one.
fn save_png(path: &Path, rgb: &[u8], size: (u32, u32)) -> Result<(), PlotError> {
    use image::ImageEncoder;
    let fail = |e: TrainError| PlotError::Draw {
        path: path.to_path_buf(),
        message: match e {
            TrainError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        },
    };
    let mut file = AtomicFile::create(path).map_err(fail)?;
    image::codecs::png::PngEncoder::new(&mut file)
        .write_image(rgb, size.0, size.1, image::ColorType::Rgb8)
        .map_err(draw_error(path))?;
    file.commit().map_err(fail)
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

/// Most grid points per axis of a heat map (the command line's `--resolution` cap): the plotting
/// area is narrower than a thousand pixels, so a finer grid draws nothing more, and 1e5 per axis
/// would be 1e10 evaluations.
pub const MAX_RESOLUTION: usize = 2000;

/// Tick text of a linear axis: plain for moderate magnitudes, `1.2e-7` style otherwise.
/// A chart with linear axes named `labels` and its mesh drawn in the plots' one axis style
/// (tick format, fonts); `caption` = (title, font size), `y_area` = room for the y labels.
fn linear_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    path: &Path,
    caption: (&str, u32),
    y_area: u32,
    (xs, ys): (Range<f64>, Range<f64>),
    labels: [&str; 2],
) -> Result<
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    PlotError,
> {
    let err = draw_error(path);
    let mut chart = ChartBuilder::on(area)
        .caption(caption.0, (FONT, caption.1))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(y_area)
        .build_cartesian_2d(xs, ys)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(labels[0])
        .y_desc(labels[1])
        .x_label_formatter(&|v| format_linear_tick(*v))
        .y_label_formatter(&|v| format_linear_tick(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(&err)?;
    Ok(chart)
}

fn format_linear_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e5).contains(&a) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    } else {
        format!("{v:.1e}")
    }
}

/// A vertical colour bar from 0 to `vmax` (viridis), its axis titled `label`.
fn colour_bar(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    path: &Path,
    vmax: f64,
    label: &str,
) -> Result<(), PlotError> {
    let err = draw_error(path);
    let mut chart = ChartBuilder::on(area)
        .margin_top(45)
        .margin_bottom(40)
        .margin_right(5)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..1f64, 0f64..vmax)
        .map_err(&err)?;
    const STEPS: usize = 128;
    chart
        .draw_series((0..STEPS).map(|k| {
            let (a, b) = (k as f64 / STEPS as f64, (k + 1) as f64 / STEPS as f64);
            Rectangle::new(
                [(0.0, a * vmax), (1.0, b * vmax)],
                viridis((a + b) / 2.0).filled(),
            )
        }))
        .map_err(&err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_desc(label)
        .y_label_formatter(&|v| format_linear_tick(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(&err)?;
    Ok(())
}

/// Draws the density `p = exp(log_density)` over `bounds = [x_min, x_max, y_min, y_max]` on a
/// `resolution x resolution` grid of cell centres, evaluated in one call, with axes titled
/// `labels` and a colour bar of p (linear scale, from 0 to the grid's maximum). Non-finite
/// values are drawn as 0.
pub fn density_heatmap(
    path: impl AsRef<Path>,
    log_density: impl Fn(&[[f64; 2]]) -> Vec<f64>,
    bounds: [f64; 4],
    resolution: usize,
    title: &str,
    labels: [&str; 2],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (xs, ys) = ranges(bounds)?;
    if resolution == 0 {
        return Err(PlotError::BadInput("resolution must be positive".into()));
    }
    if resolution > MAX_RESOLUTION {
        return Err(PlotError::BadInput(format!(
            "resolution {resolution} is more than {MAX_RESOLUTION} grid points per axis, finer \
             than the {}-pixel image can show",
            HEATMAP_SIZE.0
        )));
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
    // The colour bar shows p itself when its maximum is a normal number, else p / max p.
    let (vmax, bar_label) = match max.exp() {
        m if m.is_normal() => (m, "density p(x), linear scale"),
        _ => (1.0, "p(x) / max p, linear scale"),
    };

    let err = draw_error(path);
    let mut rgb = vec![0u8; rgb_len(HEATMAP_SIZE)];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, HEATMAP_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (main, bar) = root.split_horizontally(HEATMAP_SIZE.0 - 110);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, (FONT, 20))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
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
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(labels[0])
            .y_desc(labels[1])
            .x_label_formatter(&|v| format_linear_tick(*v))
            .y_label_formatter(&|v| format_linear_tick(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(&err)?;
        colour_bar(&bar, path, vmax, bar_label)?;
        root.present().map_err(&err)?;
    }
    save_png(path, &rgb, HEATMAP_SIZE)
}

/// Whether a point lies inside `[x_min, x_max] x [y_min, y_max]` (NaN never does).
fn inside(p: &[f64; 2], b: [f64; 4]) -> bool {
    (b[0]..=b[1]).contains(&p[0]) && (b[2]..=b[3]).contains(&p[1])
}

/// Scatter of the points inside the frame on an existing drawing area; the caption says how
/// many were outside (plotters would otherwise pile them up on the frame's edge).
#[allow(clippy::too_many_arguments)]
fn scatter_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    path: &Path,
    title: &str,
    points: &[[f64; 2]],
    bounds: [f64; 4],
    labels: [&str; 2],
    color: RGBColor,
) -> Result<(), PlotError> {
    let err = draw_error(path);
    let (xs, ys) = ranges(bounds)?;
    let shown: Vec<&[f64; 2]> = points.iter().filter(|p| inside(p, bounds)).collect();
    let outside = points.len() - shown.len();
    let caption = if points.is_empty() {
        title.to_string()
    } else if outside == 0 {
        format!("{title} ({} points)", points.len())
    } else {
        format!(
            "{title} ({} points, {outside} outside the frame not drawn)",
            points.len()
        )
    };
    let mut chart = linear_chart(area, path, (&caption, 17), 55, (xs, ys), labels)?;
    chart
        .draw_series(
            shown
                .iter()
                .map(|p| Circle::new((p[0], p[1]), 1, color.mix(0.6).filled())),
        )
        .map_err(&err)?;
    Ok(())
}

/// Model samples (left) beside data (right), on the same axes titled `labels`. Points outside
/// `bounds` are left out and counted in each panel's caption.
pub fn samples_vs_data(
    path: impl AsRef<Path>,
    samples: &[[f64; 2]],
    data: &[[f64; 2]],
    bounds: [f64; 4],
    labels: [&str; 2],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    ranges(bounds)?;
    let err = draw_error(path);
    let mut rgb = vec![0u8; rgb_len(SAMPLES_VS_DATA_SIZE)];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SAMPLES_VS_DATA_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (left, right) = root.split_horizontally(SAMPLES_VS_DATA_SIZE.0 / 2);
        scatter_panel(&left, path, "model samples", samples, bounds, labels, RED)?;
        let data_title = if data.is_empty() {
            "data (not recorded in the model folder)"
        } else {
            "data"
        };
        scatter_panel(&right, path, data_title, data, bounds, labels, BLUE)?;
        root.present().map_err(&err)?;
    }
    save_png(path, &rgb, SAMPLES_VS_DATA_SIZE)
}

/// The part of the segment `p -> q` inside the box `b` (Liang-Barsky), if any.
fn clip_segment(p: [f64; 2], q: [f64; 2], b: [f64; 4]) -> Option<([f64; 2], [f64; 2])> {
    if !p.iter().chain(&q).all(|v| v.is_finite()) {
        return None;
    }
    let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (pk, qk) in [
        (-dx, p[0] - b[0]),
        (dx, b[1] - p[0]),
        (-dy, p[1] - b[2]),
        (dy, b[3] - p[1]),
    ] {
        if pk == 0.0 {
            if qk < 0.0 {
                return None;
            }
        } else {
            let r = qk / pk;
            if pk < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then(|| {
        (
            [p[0] + t0 * dx, p[1] + t0 * dy],
            [p[0] + t1 * dx, p[1] + t1 * dy],
        )
    })
}

/// Paths from t = 0 (data, blue dots) to t = 1 (base, red dots) as grey lines, with a legend
/// and axes titled `labels`. Lines are cut at the frame; end points outside it are left out and
/// counted in the caption.
pub fn trajectories(
    path: impl AsRef<Path>,
    paths: &[Vec<[f64; 2]>],
    bounds: [f64; 4],
    labels: [&str; 2],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (xs, ys) = ranges(bounds)?;
    let starts: Vec<[f64; 2]> = paths.iter().filter_map(|l| l.first().copied()).collect();
    let ends: Vec<[f64; 2]> = paths.iter().filter_map(|l| l.last().copied()).collect();
    let outside = starts
        .iter()
        .chain(&ends)
        .filter(|p| !inside(p, bounds))
        .count();
    let caption = if outside == 0 {
        format!("flow of {} points from data to base", paths.len())
    } else {
        format!(
            "flow of {} points ({outside} end points outside the frame)",
            paths.len()
        )
    };
    let err = draw_error(path);
    let mut rgb = vec![0u8; rgb_len(TRAJECTORIES_SIZE)];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, TRAJECTORIES_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = linear_chart(&root, path, (&caption, 18), 55, (xs, ys), labels)?;
        let grey = RGBColor(120, 120, 120).mix(0.6);
        let segments: Vec<([f64; 2], [f64; 2])> = paths
            .iter()
            .flat_map(|l| {
                l.windows(2)
                    .filter_map(|w| clip_segment(w[0], w[1], bounds))
            })
            .collect();
        chart
            .draw_series(
                segments
                    .iter()
                    .map(|(a, b)| PathElement::new(vec![(a[0], a[1]), (b[0], b[1])], grey)),
            )
            .map_err(&err)?
            .label("path, t from 0 to 1")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
        for (points, color, name) in [
            (&starts, BLUE, "t = 0: data"),
            (&ends, RED, "t = 1: base N(0, I)"),
        ] {
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| inside(p, bounds))
                        .map(move |p| Circle::new((p[0], p[1]), 3, color.filled())),
                )
                .map_err(&err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    save_png(path, &rgb, TRAJECTORIES_SIZE)
}

/// Finite points of the series, and the padded range of their x and y (None without points).
fn linear_extent(series: &[(String, Vec<(f64, f64)>)]) -> Option<(Range<f64>, Range<f64>)> {
    let pts = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        return None;
    }
    let pad = |lo: f64, hi: f64| {
        let w = hi - lo;
        let w = if w > 0.0 { w } else { lo.abs().max(1.0) };
        lo - 0.05 * w..hi + 0.05 * w
    };
    // The y range gets 30% headroom on top for the legend.
    let headroom = |r: Range<f64>| r.start..r.end + 0.3 * (r.end - r.start);
    Some((pad(x0, x1), headroom(pad(y0, y1))))
}

/// One panel of a line chart: the series (finite points only) with markers and a legend.
fn line_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    path: &Path,
    title: &str,
    xs: Range<f64>,
    ys: Range<f64>,
    labels: [&str; 2],
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let err = draw_error(path);
    let mut chart = linear_chart(area, path, (title, 18), 65, (xs, ys), labels)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let finite: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if finite.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                finite.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if finite.len() <= 200 {
            chart
                .draw_series(finite.iter().map(|&p| Circle::new(p, 2, color.filled())))
                .map_err(&err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(&err)?;
    Ok(())
}

/// The training curve: NLL series (top panel) and NFE series (bottom panel) against the
/// iteration, sharing the x axis. Non-finite points are left out; an error if no NLL point is
/// finite.
pub fn training_curve(
    path: impl AsRef<Path>,
    nll: &[(String, Vec<(f64, f64)>)],
    nfe: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let path = path.as_ref();
    let (nll_x, nll_y) = linear_extent(nll)
        .ok_or_else(|| PlotError::BadInput("no finite NLL value to plot".into()))?;
    let (xs, nfe_y, nfe_title) = match linear_extent(nfe) {
        Some((x, y)) => (
            x.start.min(nll_x.start)..x.end.max(nll_x.end),
            0.0..y.end,
            "function evaluations per iteration (median over the interval)",
        ),
        None => (nll_x, 0.0..1.0, "function evaluations (none recorded)"),
    };
    let err = draw_error(path);
    let mut rgb = vec![0u8; rgb_len(TRAINING_CURVE_SIZE)];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, TRAINING_CURVE_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (top, bottom) = root.split_vertically(TRAINING_CURVE_SIZE.1 / 2);
        line_panel(
            &top,
            path,
            "negative log-likelihood",
            xs.clone(),
            nll_y,
            ["iteration", "NLL (nats, model space)"],
            nll,
        )?;
        line_panel(
            &bottom,
            path,
            nfe_title,
            xs,
            nfe_y,
            ["iteration", "NFE"],
            nfe,
        )?;
        root.present().map_err(&err)?;
    }
    save_png(path, &rgb, TRAINING_CURVE_SIZE)
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
    let mut rgb = vec![0u8; rgb_len(LOGLOG_SIZE)];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, LOGLOG_SIZE).into_drawing_area();
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
        root.present().map_err(&err)?;
    }
    save_png(path, &rgb, LOGLOG_SIZE)
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
        density_heatmap(
            &path,
            log_density,
            [-3.0, 3.0, -3.0, 3.0],
            50,
            "N(0, I)",
            ["x0", "x1"],
        )
        .unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(png_size(&path), HEATMAP_SIZE);
    }

    #[test]
    fn density_heatmap_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let short = |_: &[[f64; 2]]| vec![0.0];
        assert!(matches!(
            density_heatmap(&path, short, [-1.0, 1.0, -1.0, 1.0], 4, "t", ["a", "b"]),
            Err(PlotError::BadInput(_))
        ));
        let ok = |p: &[[f64; 2]]| vec![0.0; p.len()];
        assert!(matches!(
            density_heatmap(&path, ok, [1.0, -1.0, -1.0, 1.0], 4, "t", ["a", "b"]),
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
        samples_vs_data(&path, &a, &b, [-2.0, 2.0, -2.0, 2.0], ["x0", "x1"]).unwrap();
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
        trajectories(&path, &paths, [-0.5, 1.5, -0.5, 1.5], ["x0", "x1"]).unwrap();
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

    #[test]
    fn density_heatmap_refuses_a_grid_finer_than_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fine.png");
        let calls = std::cell::Cell::new(0);
        let ok = |p: &[[f64; 2]]| {
            calls.set(calls.get() + 1);
            vec![0.0; p.len()]
        };
        let r = density_heatmap(
            &path,
            ok,
            [-1.0, 1.0, -1.0, 1.0],
            MAX_RESOLUTION + 1,
            "t",
            ["a", "b"],
        );
        assert!(matches!(r, Err(PlotError::BadInput(m)) if m.contains("resolution")));
        assert_eq!(calls.get(), 0, "nothing evaluated before refusing");
        assert!(!path.exists());
    }

    #[test]
    fn segments_are_clipped_to_the_frame() {
        let b = [0.0, 1.0, 0.0, 1.0];
        // Inside: unchanged.
        assert_eq!(
            clip_segment([0.2, 0.2], [0.8, 0.8], b),
            Some(([0.2, 0.2], [0.8, 0.8]))
        );
        // Leaving through the right edge at y = 0.5.
        let (p, q) = clip_segment([0.5, 0.5], [1.5, 0.5], b).unwrap();
        assert_eq!((p, q), ([0.5, 0.5], [1.0, 0.5]));
        // Entirely outside, and parallel to an edge outside it.
        assert_eq!(clip_segment([2.0, 2.0], [3.0, 3.0], b), None);
        assert_eq!(clip_segment([-1.0, 0.5], [-1.0, 0.7], b), None);
        // Crossing the whole frame diagonally.
        let (p, q) = clip_segment([-1.0, -1.0], [2.0, 2.0], b).unwrap();
        assert!((p[0] - 0.0).abs() < 1e-12 && (q[1] - 1.0).abs() < 1e-12);
        assert_eq!(clip_segment([f64::NAN, 0.0], [0.5, 0.5], b), None);
    }

    #[test]
    fn linear_ticks_are_short() {
        assert_eq!(format_linear_tick(0.25), "0.25");
        assert_eq!(format_linear_tick(2.0), "2");
        assert_eq!(format_linear_tick(-0.0), "0");
        assert_eq!(format_linear_tick(1.5e-7), "1.5e-7");
    }

    #[test]
    fn training_curve_writes_png_and_rejects_no_finite_nll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let nll = vec![(
            "train".to_string(),
            vec![(100.0, 2.9), (200.0, 2.7), (300.0, f64::NAN)],
        )];
        let nfe = vec![("forward".to_string(), vec![(100.0, 26.0), (200.0, 32.0)])];
        training_curve(&path, &nll, &nfe).unwrap();
        assert_eq!(png_size(&path), TRAINING_CURVE_SIZE);
        let none = vec![("train".to_string(), vec![(1.0, f64::INFINITY)])];
        assert!(matches!(
            training_curve(&path, &none, &nfe),
            Err(PlotError::BadInput(_))
        ));
    }
}
