//! The subcommands of `cnf`, over the library.
mod density;
mod inspect;
mod sample;
mod train;

use crate::cli::{Command, SolverArgs};
use cnf_train::error::TrainError;
use cnf_train::model::SolverConfig;

pub use density::density;
pub use inspect::{eval, import};
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
