//! `cnf eval`, `import` and the log-densities `cnf density` writes: using a model folder.
use std::path::Path;

use cnf_field::{Mlp, Real, VectorField};
use rand::SeedableRng;
use serde::Serialize;

use super::solver_config;
use crate::cli::{EvalArgs, ImportArgs};
use cnf_ode::SolverSpec;
use cnf_train::data::{dequantize, read_table, toy_test};
use cnf_train::data::{ColumnSelection, HeaderMode, Table, ToySet};
use cnf_train::error::TrainError;
use cnf_train::gaussian::Gaussian;
use cnf_train::model::log_density_table_at;
use cnf_train::model::{
    default_solver, describe_solver, file_sha256, DataSource, ModelConfig, ModelDir, Precision,
};

/// Points per log-density solve when streaming a file through `density`.
const DENSITY_CHUNK: usize = 16_384;
/// Points per ODE solve of `density` and `eval` (solves run in parallel; NFE is summed).
const SOLVE_POINTS: usize = 1024;

/// Number of solves `densities` makes for `n` points.
fn solves_for(n: usize) -> usize {
    (0..n)
        .step_by(DENSITY_CHUNK)
        .map(|start| (n - start).min(DENSITY_CHUNK).div_ceil(SOLVE_POINTS))
        .sum()
}

pub(super) fn open(model: &Path) -> Result<(ModelDir, ModelConfig), TrainError> {
    let dir = ModelDir::new(model);
    let config = dir.config()?;
    Ok((dir, config))
}

/// The precision of an evaluation: f64 when asked, else the model's own.
pub(super) fn precision(config: &ModelConfig, f64: bool) -> Precision {
    if f64 {
        Precision::F64
    } else {
        config.precision
    }
}

/// Receives a chunk of points and their data-space log-densities.
pub(super) type DensitySink<'a> = dyn FnMut(&Table, &[f64]) -> Result<(), TrainError> + 'a;

/// Log-densities (data space) of a table, in chunks, each handed to `sink` as it is done.
pub(super) fn densities(
    dir: &ModelDir,
    config: &ModelConfig,
    solver: &SolverSpec<f64>,
    precision: Precision,
    table: &Table,
    sink: &mut DensitySink<'_>,
) -> Result<cnf_ode::Stats, TrainError> {
    fn go<T: Real>(
        dir: &ModelDir,
        c: &ModelConfig,
        s: &SolverSpec<f64>,
        table: &Table,
        sink: &mut DensitySink<'_>,
    ) -> Result<cnf_ode::Stats, TrainError> {
        let cnf = dir
            .load_cnf::<T>(c, Some(s))?
            .with_batching(cnf_flow::Batching::Chunks(SOLVE_POINTS));
        let mut stats = cnf_ode::Stats::default();
        let rows: Vec<usize> = (0..table.n_rows()).collect();
        for (k, idx) in rows.chunks(DENSITY_CHUNK).enumerate() {
            let part = table.select_rows(idx);
            let first = k * DENSITY_CHUNK;
            let (lp, st) = log_density_table_at(&cnf, c, &part, first).map_err(|e| {
                // Name rows of the whole file, not of the chunk.
                match e {
                    TrainError::Flow(cnf_flow::FlowError::NonFiniteOutput {
                        sample,
                        quantity,
                        precision,
                    }) => TrainError::Flow(cnf_flow::FlowError::NonFiniteOutput {
                        sample: sample + first,
                        quantity,
                        precision,
                    }),
                    other => other,
                }
            })?;
            stats += st;
            sink(&part, &lp)?;
        }
        Ok(stats)
    }
    match precision {
        Precision::F64 => go::<f64>(dir, config, solver, table, sink),
        Precision::F32 => go::<f32>(dir, config, solver, table, sink),
    }
}

/// Reads the points of `path` in the model's columns. With a header that names every column the
/// model was trained on, columns are matched by name (in any order; other columns are ignored);
/// otherwise the file must have exactly the model's number of columns, taken in order.
pub(super) fn read_points(config: &ModelConfig, path: &Path) -> Result<Table, TrainError> {
    let mut all = read_table(path, &ColumnSelection::default())?;
    if let Some(note) = all.header_note() {
        let first: Vec<&str> = note.first_row.iter().map(|f| f.trim()).collect();
        if config.columns.iter().all(|c| first.contains(&c.as_str())) {
            // A numeric first row that names the model's columns (a model trained with
            // `--header yes` on `400,500`): it is the header.
            all = read_table(
                path,
                &ColumnSelection {
                    header: HeaderMode::Yes,
                    ..Default::default()
                },
            )?;
        } else {
            eprintln!("note: {note}");
        }
    }
    let names = all.names();
    if config.columns.iter().all(|c| names.contains(c)) {
        let idx: Vec<usize> = config
            .columns
            .iter()
            .filter_map(|c| names.iter().position(|n| n == c))
            .collect();
        let data = all
            .rows()
            .flat_map(|r| idx.iter().map(move |&j| r[j]))
            .collect();
        return Ok(Table::new(
            all.n_rows(),
            idx.len(),
            data,
            config.columns.clone(),
        )?);
    }
    let headerless = names == cnf_train::data::table::default_names(names.len()).as_slice();
    if headerless && all.n_cols() == config.mlp.dim {
        return Ok(all);
    }
    if headerless {
        return Err(TrainError::Invalid(format!(
            "{}: {} columns without a header, the model expects {} ({})",
            path.display(),
            all.n_cols(),
            config.mlp.dim,
            config.columns.join(", ")
        )));
    }
    Err(lacks_columns(config, path, names))
}

/// The error for a header (`names`) that lacks some of the model's columns.
pub(super) fn lacks_columns(config: &ModelConfig, path: &Path, names: &[String]) -> TrainError {
    let missing: Vec<&str> = config
        .columns
        .iter()
        .filter(|c| !names.contains(c))
        .map(String::as_str)
        .collect();
    TrainError::Invalid(format!(
        "{}: the header lacks the model's column(s) {} (the model was trained on {})",
        path.display(),
        missing.join(", "),
        config.columns.join(", ")
    ))
}

/// `cnf import`.
pub fn import(args: &ImportArgs) -> Result<(), TrainError> {
    let mlp = Mlp::<f32>::from_npz(&args.npz, &args.arch.hidden(), args.arch.activation())?;
    let solver = solver_config(&default_solver(), &args.solver)?;
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
        precision: Precision::F32,
        training: None,
    };
    let dir = ModelDir::new(&args.out);
    let _lock = dir.lock()?;
    dir.clear_for_new(args.force)?;
    dir.save_weights(&mlp)?;
    dir.save_config(&config)?;
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
    /// Test NLL divided by the number of dimensions.
    test_nll_per_dim: f64,
    n: usize,
    /// Standard error of `test_nll`; `null` for a single point.
    stderr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_nll: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_stderr: Option<f64>,
    /// Why the Gaussian baseline is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_missing: Option<String>,
    /// Why the Gaussian baseline is less certain than its stderr says (nearly collinear
    /// columns), when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    gaussian_warning: Option<String>,
    /// Field evaluations summed over all solves.
    nfe: usize,
    /// Number of ODE solves (of up to 1024 points each, with their own steps).
    solves: usize,
    /// `nfe / solves`: the evaluations one solve of up to 1024 points took, on average.
    nfe_per_solve: f64,
    /// 2-Wasserstein distance (data space, exact OT) between `w2_n` model samples (seed 0) and
    /// the first `w2_n` test points: sample quality next to the likelihood. `null` when it
    /// could not be computed (`w2_missing` says why).
    w2: Option<f64>,
    /// Why `w2` is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    w2_missing: Option<String>,
    /// Points on each side of `w2`.
    w2_n: usize,
    solver: String,
    precision: &'static str,
    /// What the points are: the toy test set, the run's test split, or a whole file.
    points: String,
}

/// W2 between `n = min(rows, W2_MAX_POINTS)` samples of the model and the first `n` test
/// points, in data space.
fn sample_w2(
    dir: &ModelDir,
    config: &ModelConfig,
    solver: &SolverSpec<f64>,
    precision: Precision,
    test: &Table,
) -> Result<(f64, usize), TrainError> {
    fn go<T: Real>(
        dir: &ModelDir,
        c: &ModelConfig,
        s: &SolverSpec<f64>,
        test: &Table,
    ) -> Result<(f64, usize), TrainError> {
        let n = test.n_rows().min(cnf_train::fm::W2_MAX_POINTS);
        let cnf = dir
            .load_cnf::<T>(c, Some(s))?
            .with_batching(cnf_flow::Batching::Chunks(SOLVE_POINTS));
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let z: Vec<f64> = cnf
            .sample(n, &mut rng)?
            .points
            .iter()
            .map(|v| v.to_f64().unwrap_or(f64::NAN))
            .collect();
        let samples: Vec<f64> = match &c.standardizer {
            Some(st) => z
                .chunks(c.mlp.dim)
                .flat_map(|r| st.inverse_row(r))
                .collect(),
            None => z,
        };
        let d = test.n_cols();
        let w2 = cnf_train::fm::w2_distance(&samples, &test.data()[..n * d], d)
            .map_err(|e| TrainError::Invalid(format!("W2: {e}")))?;
        Ok((w2, n))
    }
    match precision {
        Precision::F64 => go::<f64>(dir, config, solver, test),
        Precision::F32 => go::<f32>(dir, config, solver, test),
    }
}

/// The mean and, from two points on, its standard error.
fn mean_stderr(nll: &[f64]) -> (f64, Option<f64>) {
    let n = nll.len() as f64;
    let mean = nll.iter().sum::<f64>() / n;
    if nll.len() < 2 {
        return (mean, None);
    }
    let var = nll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// `cnf eval`.
pub fn eval(args: &EvalArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    let toy = args.data.parse::<ToySet>();
    if toy.is_ok() && Path::new(&args.data).exists() {
        return Err(TrainError::Invalid(format!(
            "--data {:?} names both a toy set and a file here; write ./{} for the file",
            args.data, args.data
        )));
    }
    let (test, train, points) = match toy {
        Ok(set) => (
            toy_test(set),
            None,
            format!("the fixed 10k test set of {}", set.name()),
        ),
        Err(_) => {
            let path = Path::new(&args.data);
            match &config.data {
                // The training file is recognised by its content, wherever it is now.
                DataSource::Table {
                    sha256: Some(h),
                    split,
                    ..
                } if *h == file_sha256(path)? => {
                    let table = read_table(path, &config.data.selection())?;
                    let (train, _, test) = table.split(*split, config.seed)?;
                    (
                        test,
                        Some(train),
                        format!("the test split of {}", path.display()),
                    )
                }
                _ => (
                    read_points(&config, path)?,
                    None,
                    format!("all rows of {}", path.display()),
                ),
            }
        }
    };
    if test.n_rows() == 0 {
        return Err(TrainError::Invalid(format!("{points} has no rows")));
    }
    // A model trained on dequantised integer columns is a density of x + u: evaluate it (and
    // the Gaussian baseline, fitted to the training split as dequantised for training) at
    // dequantised points, with seeded noise (docs/train.md).
    let deq = config
        .standardizer
        .as_ref()
        .map_or(&[][..], |s| s.dequantized.as_slice());
    let (test, train, points) = if deq.is_empty() {
        (test, train, points)
    } else {
        let names: Vec<&str> = deq
            .iter()
            .filter_map(|&j| test.names().get(j).map(String::as_str))
            .collect();
        (
            dequantize(&test, deq, config.seed.wrapping_add(3))?,
            train
                .map(|t| dequantize(&t, deq, config.seed))
                .transpose()?,
            format!(
                "{points}, with {} dequantised (x + U(0, 1))",
                names.join(", ")
            ),
        )
    };
    let solver = solver_config(&config.solver, &args.solver)?;
    let prec = precision(&config, args.f64);
    let mut logp = Vec::with_capacity(test.n_rows());
    let stats = densities(&dir, &config, &solver, prec, &test, &mut |_, lp| {
        logp.extend_from_slice(lp);
        Ok(())
    })?;
    let nll: Vec<f64> = logp.iter().map(|v| -v).collect();
    let (test_nll, stderr) = mean_stderr(&nll);
    let (gaussian, gaussian_missing, gaussian_warning) = match &train {
        Some(train) => {
            match Gaussian::fit(train).and_then(|g| Ok((g.mean_nll(&test)?, g.warning()))) {
                Ok((g, warning)) => (Some(g), None, warning),
                Err(e) => (None, Some(format!("no Gaussian baseline: {e}")), None),
            }
        }
        None => (None, None, None),
    };
    // W2 is secondary: when it fails (samples or distances beyond f64), the NLL still stands.
    let (w2, w2_missing) = match sample_w2(&dir, &config, &solver, prec, &test) {
        Ok((w, n)) => (Some((w, n)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let solves = solves_for(nll.len());
    let report = EvalReport {
        test_nll,
        test_nll_per_dim: test_nll / config.mlp.dim as f64,
        n: nll.len(),
        stderr,
        gaussian_nll: gaussian.map(|g| g.0),
        gaussian_stderr: gaussian.map(|g| g.1),
        gaussian_missing,
        gaussian_warning,
        nfe: stats.nfe,
        solves,
        nfe_per_solve: stats.nfe as f64 / solves.max(1) as f64,
        w2: w2.map(|w| w.0),
        w2_missing,
        w2_n: w2.map_or(0, |w| w.1),
        solver: describe_solver(&solver),
        precision: prec.as_str(),
        points,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(TrainError::json("the report"))?
        );
    } else {
        let spread = stderr.map_or(" (one point: no standard error)".to_string(), |s| {
            format!(" +- {s:.4}")
        });
        println!(
            "test NLL {test_nll:.4}{spread} nats ({:.4} per dimension) on {} points of {} \
             (data space, exact trace, {}, {}, NFE {} in {} solves of up to {SOLVE_POINTS} points)",
            report.test_nll_per_dim,
            report.n,
            report.points,
            report.solver,
            report.precision,
            report.nfe,
            report.solves
        );
        if let Some((g, s)) = gaussian {
            println!(
                "full-covariance Gaussian fitted to the training split: {g:.4} +- {s:.4} nats"
            );
        }
        if let Some(w) = &report.gaussian_warning {
            println!("warning: {w}");
        }
        match (report.w2, &report.w2_missing) {
            (Some(w2), _) => println!(
                "sample quality: W2 {w2:.4} between {} model samples (seed 0) and {} test points \
                 (data space, exact OT)",
                report.w2_n, report.w2_n
            ),
            (None, Some(why)) => println!("sample quality: unavailable ({why})"),
            (None, None) => {}
        }
        if let Some(why) = &report.gaussian_missing {
            println!("{why}");
        }
    }
    Ok(())
}
