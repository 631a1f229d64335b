//! Pictures of a trained model: density heat map, samples beside data and trajectories of a
//! 2-D model, and the training curve of any run (from its metrics.jsonl).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cnf_field::{Mlp, Real};
use cnf_flow::{Batching, Cnf};
use cnf_ode::cast;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;

use crate::plot::{density_heatmap, samples_vs_data, training_curve, trajectories};
use cnf_train::data::toy_test;
use cnf_train::data::{Table, ToySet};
use cnf_train::error::{PlotError, TrainError};
use cnf_train::model::log_density_table;
use cnf_train::model::{DataSource, ModelConfig};

/// Points per ODE solve when plotting and sampling: parallel solves of this many points (each
/// with its own adaptive steps) are ~10x faster than one solve of a whole large batch.
pub const SOLVE_CHUNK: usize = 1024;

/// Points drawn, solved and written at a time by `cnf sample`: a multiple of
/// [`SOLVE_CHUNK`], so the solves (and so the samples) are the same as one
/// `Cnf::sample(n, rng)` call with `Batching::Chunks(SOLVE_CHUNK)`.
pub const STREAM_CHUNK: usize = 64 * SOLVE_CHUNK;

/// The flow with [`SOLVE_CHUNK`]-point parallel solves.
pub fn fast<T: Real>(cnf: &Cnf<T, Mlp<T>>) -> Cnf<T, Mlp<T>> {
    cnf.clone().with_batching(Batching::Chunks(SOLVE_CHUNK))
}

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

fn to_f64<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect()
}

fn pairs(x: &[f64]) -> Vec<[f64; 2]> {
    x.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// Model-space points back to data space.
fn to_data_space(config: &ModelConfig, x: Vec<f64>) -> Result<Vec<f64>, TrainError> {
    Ok(match &config.standardizer {
        Some(s) => s
            .inverse(&Table::with_default_names(x.len() / 2, 2, x)?)?
            .data()
            .to_vec(),
        None => x,
    })
}

/// The heat map of the model's density in data space.
pub fn plot_density<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    path: &Path,
    resolution: usize,
) -> Result<(), TrainError> {
    let cnf = &fast(cnf);
    let [x, y] = axis_names(config);
    // The heat map takes an `Fn`; keep the first failure to report it after drawing.
    let failure = std::cell::RefCell::new(None);
    density_heatmap(
        path,
        |pts| {
            let flat: Vec<f64> = pts.iter().flatten().copied().collect();
            let table = Table::with_default_names(pts.len(), 2, flat);
            match table
                .map_err(TrainError::from)
                .and_then(|t| log_density_table(cnf, config, &t))
            {
                Ok((lp, _)) => lp,
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                    vec![f64::NEG_INFINITY; pts.len()]
                }
            }
        },
        bounds(config),
        resolution,
        "learned density p(x)",
        [&x, &y],
    )?;
    failure.into_inner().map_or(Ok(()), Err)
}

/// density.png, samples.png and trajectories.png in `dir`.
pub fn plot_model<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    dir: &Path,
) -> Result<(), TrainError> {
    let cnf = &fast(cnf);
    let b = bounds(config);
    let [x, y] = axis_names(config);
    let labels = [x.as_str(), y.as_str()];
    plot_density(cnf, config, &dir.join("density.png"), 150)?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(7));
    let samples = to_data_space(config, to_f64(&cnf.sample(2000, &mut rng)?.points))?;
    let data: Vec<f64> = match &config.data {
        DataSource::Toy { name } => {
            let set: ToySet = name
                .parse()
                .map_err(|e: cnf_train::data::toy::UnknownToySet| {
                    TrainError::Invalid(e.to_string())
                })?;
            toy_test(set).data()[..4000].to_vec()
        }
        DataSource::Table { path, .. } => {
            let t = cnf_train::model::read_table_for(config, path)?;
            t.data()[..t.data().len().min(4000)].to_vec()
        }
        DataSource::Imported { .. } => Vec::new(),
    };
    samples_vs_data(
        dir.join("samples.png"),
        &pairs(&samples),
        &pairs(&data),
        b,
        labels,
    )?;
    // Trajectories of a few points from t = 0 to 1, in model space: one solve with 21 output
    // times (each method's continuous extension between its steps).
    let starts: Vec<T> = if data.len() >= 24 {
        cnf_train::model::to_model_space(
            config,
            &Table::with_default_names(12, 2, data[..24].to_vec())?,
        )?
    } else {
        cnf.sample(12, &mut rng)?.points
    };
    let steps = 20;
    let times: Vec<T> = (0..=steps)
        .map(|k| cast::<T>(k as f64 / steps as f64))
        .collect();
    let mut paths: Vec<Vec<[f64; 2]>> = vec![Vec::new(); starts.len() / 2];
    for at in cnf.trajectory(&starts, &times)?.points {
        let shown = to_data_space(config, to_f64(&at))?;
        for (p, xy) in paths.iter_mut().zip(pairs(&shown)) {
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
