//! The subcommands of `cnf`, over the library.
mod inspect;
mod sample;
mod train;

use std::path::Path;

use crate::cli::{Command, SolverArgs};
use cnf_train::data::Table;
use cnf_train::error::TrainError;
use cnf_train::model::SolverConfig;

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
    if let Some(n) = args.error_norm {
        s.error_norm = n;
    }
    s
}

/// Writes a table as CSV to a file or standard output.
pub fn emit_table(table: &Table, output: Option<&Path>) -> Result<(), TrainError> {
    match output {
        Some(p) => cnf_train::data::write_csv(p, table)?,
        None => {
            let stdout = std::io::stdout();
            cnf_train::data::write_csv_to(&mut stdout.lock(), table)
                .map_err(TrainError::io("standard output"))?;
        }
    }
    Ok(())
}
