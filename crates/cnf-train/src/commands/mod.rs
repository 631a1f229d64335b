//! The subcommands of `cnf`, over the library.
mod inspect;
mod sample;
mod train;

use std::path::Path;

use cnf_field::{Mlp, Real};
use cnf_flow::Cnf;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cli::{Command, SolverArgs};
use crate::data::{read_csv, read_npy, ColumnSelection, Standardizer, Table, ToySet};
use crate::error::TrainError;
use crate::model::{ModelConfig, SolverConfig};

pub use inspect::{density, eval, import};
pub use sample::{plot, sample};
pub use train::train;

/// Runs one subcommand.
pub fn run(command: Command) -> Result<(), TrainError> {
    match command {
        Command::Train(a) => train(&a),
        Command::Density(a) => density(&a),
        Command::Sample(a) => sample(&a),
        Command::Plot(a) => plot(&a),
        Command::Import(a) => import(&a),
        Command::Eval(a) => eval(&a),
    }
}

/// Split of table data into train / validation / test.
pub const SPLIT: [f64; 3] = [0.8, 0.1, 0.1];
/// Offset of the toy validation seed from the training seed.
const TOY_VAL_STREAM: u64 = 1_000_003;
/// Seed of the toy test sets: one fixed set for every model, so test NLLs compare.
pub const TOY_TEST_SEED: u64 = 2_000_003;

/// Toy validation sample (2000 points) of a training run with `seed`.
pub fn toy_validation(set: ToySet, seed: u64) -> Table {
    set.sample(
        2_000,
        &mut StdRng::seed_from_u64(seed.wrapping_add(TOY_VAL_STREAM)),
    )
}

/// The toy test set: 10 000 points from [`TOY_TEST_SEED`], whatever the training seed.
pub fn toy_test(set: ToySet) -> Table {
    set.sample(10_000, &mut StdRng::seed_from_u64(TOY_TEST_SEED))
}

/// Reads a CSV or .npy table.
pub fn read_table(path: &Path, selection: &ColumnSelection) -> Result<Table, TrainError> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    Ok(if is_npy {
        read_npy(path)?
    } else {
        read_csv(path, selection)?
    })
}

/// The config's solver with command-line overrides.
pub fn solver_config(base: &SolverConfig, args: &SolverArgs) -> SolverConfig {
    let mut s = base.clone();
    if let Some(m) = args.method {
        s.method = m;
        s.steps = None;
    }
    if args.steps.is_some() {
        s.steps = args.steps;
    }
    if let Some(r) = args.rtol {
        s.rtol = r;
    }
    if let Some(a) = args.atol {
        s.atol = a;
    }
    s
}

/// Points of a table in model space (standardised when the model was), in precision T.
/// A finite value that overflows T (1e39 in f32) is an error naming its row and column.
pub fn to_model_space<T: Real>(config: &ModelConfig, table: &Table) -> Result<Vec<T>, TrainError> {
    if table.n_cols() != config.mlp.dim {
        return Err(TrainError::Invalid(format!(
            "the data has {} columns, the model expects {}",
            table.n_cols(),
            config.mlp.dim
        )));
    }
    let t = match &config.standardizer {
        Some(s) => s.transform(table)?,
        None => table.clone(),
    };
    let d = t.n_cols();
    t.data()
        .iter()
        .enumerate()
        .map(|(i, &v)| match T::from_f64(v).filter(|x| x.is_finite()) {
            Some(x) => Ok(x),
            None => Err(TrainError::Invalid(format!(
                "row {}, column {:?}: {} overflows the model's precision ({}){}",
                i / d,
                table.names()[i % d],
                table.data()[i],
                T::NAME,
                if T::NAME == "f32" { "; use --f64" } else { "" }
            ))),
        })
        .collect()
}

/// log|det| of the standardisation (0 without one): log p_data = log p_model + this.
pub fn log_det(config: &ModelConfig) -> f64 {
    config
        .standardizer
        .as_ref()
        .map_or(0.0, Standardizer::log_det)
}

/// Data-space log-densities of a table.
pub fn log_density_table<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    table: &Table,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    let x: Vec<T> = to_model_space(config, table)?;
    let dens = cnf.log_density(&x)?;
    let ld = log_det(config);
    Ok((
        dens.logp
            .iter()
            .map(|v| v.to_f64().unwrap_or(f64::NAN) + ld)
            .collect(),
        dens.stats,
    ))
}

/// Writes a table as CSV to a file or standard output.
pub fn emit_table(table: &Table, output: Option<&Path>) -> Result<(), TrainError> {
    match output {
        Some(p) => crate::data::write_csv(p, table)?,
        None => {
            let stdout = std::io::stdout();
            crate::data::write_csv_to(&mut stdout.lock(), table)
                .map_err(|e| TrainError::Io(format!("standard output: {e}")))?;
        }
    }
    Ok(())
}

/// Reads a table with the column selection the model was trained with.
pub fn read_table_for(config: &ModelConfig, path: &Path) -> Result<Table, TrainError> {
    read_table(path, &config.data.selection())
}
