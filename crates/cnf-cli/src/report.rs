//! Pictures of a trained model: density heat map, samples beside data and trajectories of a
//! 2-D model, and the training curve of any run (from its metrics.jsonl).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;

use crate::plot::{density_heatmap, samples_vs_data, training_curve, trajectories};
use cnf_train::error::{PlotError, TrainError};
use cnf_train::model::ModelConfig;
use cnf_train::session::{EvalOptions, LoadedFlow, Session};

/// The names of a 2-D model's two axes: the data's column names when recorded, else x0, x1.
pub fn axis_names(config: &ModelConfig) -> [String; 2] {
    match config.columns.as_slice() {
        [a, b] => [a.clone(), b.clone()],
        _ => ["x0".into(), "x1".into()],
    }
}

/// The plotting box: [-4, 4]^2 for raw toy data, mean +- 4 std for standardised data.
pub fn bounds(config: &ModelConfig) -> [f64; 4] {
    match &config.standardizer {
        Some(s) if s.mean.len() == 2 => [
            s.mean[0] - 4.0 * s.std[0],
            s.mean[0] + 4.0 * s.std[0],
            s.mean[1] - 4.0 * s.std[1],
            s.mean[1] + 4.0 * s.std[1],
        ],
        _ => [-4.0, 4.0, -4.0, 4.0],
    }
}

fn pairs(x: &[f64]) -> Vec<[f64; 2]> {
    x.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// The heat map of a 2-D model's density in data space.
pub fn plot_density(flow: &LoadedFlow, path: &Path, resolution: usize) -> Result<(), TrainError> {
    let [x, y] = axis_names(flow.config());
    // The heat map takes an `Fn`; keep the first failure to report it after drawing.
    let failure = std::cell::RefCell::new(None);
    density_heatmap(
        path,
        |pts| {
            let flat: Vec<f64> = pts.iter().flatten().copied().collect();
            match flow.log_density(&flat) {
                Ok(lp) => lp,
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    vec![f64::NEG_INFINITY; pts.len()]
                }
            }
        },
        bounds(flow.config()),
        resolution,
        "learned density p(x)",
        [&x, &y],
    )?;
    failure.into_inner().map_or(Ok(()), Err)
}

/// density.png, samples.png and trajectories.png of a 2-D model (its best weights, in its
/// precision) in `dir`.
pub fn plot_model(session: &Session, dir: &Path) -> Result<(), TrainError> {
    let flow = session.flow(&EvalOptions::default())?;
    let config = session.config();
    let b = bounds(config);
    let [x, y] = axis_names(config);
    let labels = [x.as_str(), y.as_str()];
    plot_density(&flow, &dir.join("density.png"), 150)?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(7));
    let samples = flow.sample_with(2000, &mut rng)?;
    let data = session.data_points(2000)?;
    samples_vs_data(
        dir.join("samples.png"),
        &pairs(&samples),
        &pairs(&data),
        b,
        labels,
    )?;
    // Trajectories of 12 points from t = 0 to 1: the first data points, or samples.
    let steps = 20;
    let times: Vec<f64> = (0..=steps).map(|k| k as f64 / steps as f64).collect();
    let starts = (data.len() >= 24).then(|| &data[..24]);
    let mut paths: Vec<Vec<[f64; 2]>> = vec![Vec::new(); 12];
    for at in flow.trajectories(starts, 12, &mut rng, &times)? {
        for (p, xy) in paths.iter_mut().zip(pairs(&at)) {
            p.push(xy);
        }
    }
    trajectories(dir.join("trajectories.png"), &paths, b, labels)?;
    Ok(())
}

/// Why a training curve could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The metrics file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a validation record (JSON with at least `iter`).
    #[error("{}: line {line}: not a validation record: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// No line holds a finite NLL.
    #[error("{}: no validation record with a finite NLL to plot", path.display())]
    Empty { path: PathBuf },
    /// Drawing failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

impl From<MetricsError> for TrainError {
    fn from(e: MetricsError) -> Self {
        match e {
            MetricsError::Plot(p) => TrainError::Plot(p),
            MetricsError::Io { path, source } => TrainError::io(path.display())(source),
            other => TrainError::Invalid(other.to_string()),
        }
    }
}

/// One line of metrics.jsonl (a serialised `ValEvent`); unknown fields are ignored and every
/// field but `iter` may be missing or null (a NaN NLL is written as null).
#[derive(Debug, Clone, Deserialize)]
struct MetricsLine {
    iter: u64,
    #[serde(default)]
    train_nll: Option<f64>,
    #[serde(default)]
    val_nll: Option<f64>,
    #[serde(default)]
    nfe_fwd: Option<f64>,
    #[serde(default)]
    nfe_bwd: Option<f64>,
    #[serde(default)]
    nfe_val: Option<f64>,
}

/// Reads metrics.jsonl: one record per iteration (a later line for the same iteration, as
/// after a resume, replaces the earlier one), sorted by iteration. Blank lines are skipped.
fn read_metrics(path: &Path) -> Result<Vec<MetricsLine>, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut by_iter = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let rec: MetricsLine = serde_json::from_str(line).map_err(|e| MetricsError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        by_iter.insert(rec.iter, rec);
    }
    Ok(by_iter.into_values().collect())
}

/// Draws the training curve of `metrics` (a run's metrics.jsonl) into `png`: training and
/// validation NLL (top) and forward / backward training NFE and the validation solve's NFE
/// (bottom) against the iteration.
pub fn plot_training_curve(metrics: &Path, png: &Path) -> Result<(), MetricsError> {
    let recs = read_metrics(metrics)?;
    let series = |name: &str, pick: fn(&MetricsLine) -> Option<f64>| {
        let pts = recs
            .iter()
            .filter_map(|r| pick(r).map(|v| (r.iter as f64, v)))
            .collect::<Vec<_>>();
        (name.to_string(), pts)
    };
    let nll = [
        series("training (mean over the interval)", |r| r.train_nll),
        series("validation", |r| r.val_nll),
    ];
    let finite = |s: &[(String, Vec<(f64, f64)>)]| {
        s.iter()
            .flat_map(|(_, p)| p)
            .any(|(x, y)| x.is_finite() && y.is_finite())
    };
    if !finite(&nll) {
        return Err(MetricsError::Empty {
            path: metrics.to_path_buf(),
        });
    }
    let nfe = [
        series("forward (density)", |r| r.nfe_fwd),
        series("backward (gradient)", |r| r.nfe_bwd),
        series("validation log-density (exact trace)", |r| r.nfe_val),
    ];
    training_curve(png, &nll, &nfe)?;
    Ok(())
}
