//! Pictures of a trained 2-D model: density heat map, samples beside data, trajectories.
use std::path::Path;

use cnf_field::{Mlp, Real};
use cnf_flow::Cnf;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::commands::{log_density_table, toy_test};
use crate::data::{Table, ToySet};
use crate::error::TrainError;
use crate::model::{DataSource, ModelConfig};
use crate::plot::{density_heatmap, samples_vs_data, trajectories};

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
        "learned density",
    )?;
    failure.into_inner().map_or(Ok(()), Err)
}

/// density.png, samples.png and trajectories.png in `dir`.
pub fn plot_model<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    dir: &Path,
) -> Result<(), TrainError> {
    let b = bounds(config);
    plot_density(cnf, config, &dir.join("density.png"), 150)?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(7));
    let samples = to_data_space(config, to_f64(&cnf.sample(2000, &mut rng)?.points))?;
    let data: Vec<f64> = match &config.data {
        DataSource::Toy { name } => {
            let set: ToySet = name
                .parse()
                .map_err(|e: crate::data::toy::UnknownToySet| TrainError::Invalid(e.to_string()))?;
            toy_test(set).data()[..4000].to_vec()
        }
        DataSource::Table { path, .. } => {
            let t = crate::commands::read_table_for(config, path)?;
            t.data()[..t.data().len().min(4000)].to_vec()
        }
        DataSource::Imported { .. } => Vec::new(),
    };
    samples_vs_data(dir.join("samples.png"), &pairs(&samples), &pairs(&data), b)?;
    // Trajectories of a few points from t = 0 to 1, in model space.
    let starts: Vec<T> = if data.len() >= 24 {
        crate::commands::to_model_space(
            config,
            &Table::with_default_names(12, 2, data[..24].to_vec())?,
        )?
    } else {
        cnf.sample(12, &mut rng)?.points
    };
    let mut paths: Vec<Vec<[f64; 2]>> = vec![Vec::new(); starts.len() / 2];
    let mut cur = starts;
    let steps = 20;
    for k in 0..=steps {
        let shown = to_data_space(config, to_f64(&cur))?;
        for (p, xy) in paths.iter_mut().zip(pairs(&shown)) {
            p.push(xy);
        }
        if k < steps {
            let lit = |v: f64| T::from_f64(v).unwrap_or_else(T::nan);
            let (t0, t1) = (
                lit(k as f64 / steps as f64),
                lit((k + 1) as f64 / steps as f64),
            );
            cur = cnf.transform(&cur, t0, t1)?.points;
        }
    }
    trajectories(dir.join("trajectories.png"), &paths, b)?;
    Ok(())
}
