//! `cnf density`, `eval`, `sample`, `plot`, `import`: using a model folder.
use std::path::Path;

use cnf_field::{Mlp, Real, VectorField};
use serde::Serialize;

use super::{emit_table, log_density_table, read_table_for, solver_config, toy_test};
use crate::cli::{DensityArgs, EvalArgs, ImportArgs, SolverArgs};
use crate::data::{Table, ToySet};
use crate::error::TrainError;
use crate::gaussian::Gaussian;
use crate::model::{DataSource, ModelConfig, ModelDir, SolverConfig};


pub(super) fn open(model: &Path) -> Result<(ModelDir, ModelConfig), TrainError> {
    let dir = ModelDir::new(model);
    let config = dir.config()?;
    Ok((dir, config))
}

/// Log-densities (data space) of a table, in f32 or f64.
fn densities(
    dir: &ModelDir,
    config: &ModelConfig,
    solver: &SolverArgs,
    f64: bool,
    table: &Table,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    fn go<T: Real>(
        dir: &ModelDir,
        c: &ModelConfig,
        s: &SolverConfig,
        t: &Table,
    ) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
        log_density_table(&dir.load_cnf::<T>(c, Some(s))?, c, t)
    }
    let s = solver_config(&config.solver, solver);
    if f64 {
        go::<f64>(dir, config, &s, table)
    } else {
        go::<f32>(dir, config, &s, table)
    }
}

/// `cnf density`: the input CSV with a `logp` column appended.
pub fn density(args: &DensityArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    let table = read_table_for(&config, &args.input)?;
    let (logp, stats) = densities(&dir, &config, &args.solver, args.f64, &table)?;
    let d = table.n_cols();
    let mut data = Vec::with_capacity(table.n_rows() * (d + 1));
    for (row, lp) in table.rows().zip(&logp) {
        data.extend_from_slice(row);
        data.push(*lp);
    }
    let mut names = table.names().to_vec();
    names.push("logp".into());
    emit_table(
        &Table::new(table.n_rows(), d + 1, data, names)?,
        args.output.as_deref(),
    )?;
    eprintln!(
        "log-densities of {} points (exact trace, {} in {}, {stats})",
        table.n_rows(),
        solver_config(&config.solver, &args.solver).method,
        if args.f64 { "f64" } else { "f32" }
    );
    Ok(())
}

/// `cnf import`.
pub fn import(args: &ImportArgs) -> Result<(), TrainError> {
    let activation = args.arch.activation()?;
    let mlp = Mlp::<f32>::from_npz(&args.npz, &args.arch.hidden, activation)?;
    let solver = solver_config(&SolverConfig::default(), &args.solver);
    solver.integrator::<f32>()?;
    let d = mlp.dim();
    let config = ModelConfig {
        mlp: mlp.config().clone(),
        solver,
        standardizer: None,
        data: DataSource::Imported {
            path: args.npz.clone(),
        },
        seed: 0,
        columns: (0..d).map(|i| format!("x{i}")).collect(),
        precision: "f32".into(),
    };
    let dir = ModelDir::new(&args.out);
    dir.save_config(&config)?;
    dir.save_weights(&mlp)?;
    eprintln!(
        "imported {} parameters into {}",
        mlp.num_params(),
        args.out.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct EvalReport {
    test_nll: f64,
    n: usize,
    stderr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_nll: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_stderr: Option<f64>,
    nfe: usize,
    solver: String,
}

fn mean_stderr(nll: &[f64]) -> (f64, f64) {
    let n = nll.len() as f64;
    let mean = nll.iter().sum::<f64>() / n;
    let var = nll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// `cnf eval`.
pub fn eval(args: &EvalArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    let (test, train) = match args.data.parse::<ToySet>() {
        Ok(set) => (toy_test(set), None),
        Err(_) => {
            let path = Path::new(&args.data);
            let table = read_table_for(&config, path)?;
            match &config.data {
                DataSource::Table { path: p, split, .. } if p == path => {
                    let (train, _, test) = table.split(*split, config.seed)?;
                    (test, Some(train))
                }
                _ => (table, None),
            }
        }
    };
    let (logp, stats) = densities(&dir, &config, &args.solver, args.f64, &test)?;
    let nll: Vec<f64> = logp.iter().map(|v| -v).collect();
    let (test_nll, stderr) = mean_stderr(&nll);
    let gaussian = match &train {
        Some(train) => {
            let g = Gaussian::fit(train)?;
            Some(g.mean_nll(&test)?)
        }
        None => None,
    };
    let solver = solver_config(&config.solver, &args.solver);
    let report = EvalReport {
        test_nll,
        n: nll.len(),
        stderr,
        gaussian_nll: gaussian.map(|g| g.0),
        gaussian_stderr: gaussian.map(|g| g.1),
        nfe: stats.nfe,
        solver: format!(
            "{} rtol {:e} atol {:e}",
            solver.method, solver.rtol, solver.atol
        ),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| TrainError::Io(e.to_string()))?
        );
    } else {
        println!(
            "test NLL {test_nll:.4} +- {stderr:.4} nats on {} points (data space, exact trace, {}, NFE {})",
            report.n, report.solver, report.nfe
        );
        if let Some((g, s)) = gaussian {
            println!(
                "full-covariance Gaussian fitted to the training split: {g:.4} +- {s:.4} nats"
            );
        }
    }
    Ok(())
}
