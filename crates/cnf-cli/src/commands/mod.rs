//! The subcommands of `cnf`, over the library.
mod density;
mod inspect;
mod sample;
mod train;

use crate::cli::{Command, SolverArgs};
use cnf_ode::{SolverSpec, Steps, Tolerance};
use cnf_train::error::TrainError;
use cnf_train::model::{default_solver, solver_error};

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

/// The config's solver with command-line overrides (`--method` starts from the method's own
/// defaults: its controller, and fixed steps only with `--steps`), validated once by
/// `SolverSpec`'s builder; messages name the flag ("rk4 is a fixed-step method: give --steps").
pub fn solver_config(
    base: &SolverSpec<f64>,
    args: &SolverArgs,
) -> Result<SolverSpec<f64>, TrainError> {
    let method = args.method.unwrap_or(base.method());
    // Tolerances: the flags', else the base's, else the command line's defaults.
    let (rtol, atol) = match base.steps() {
        Steps::Adaptive { rtol, atol } => (rtol.clone(), atol.clone()),
        Steps::Fixed(_) => match default_solver().steps() {
            Steps::Adaptive { rtol, atol } => (rtol.clone(), atol.clone()),
            Steps::Fixed(_) => unreachable!("the default solver is adaptive"),
        },
    };
    let mut b = SolverSpec::builder(method)
        .max_steps(base.max_steps())
        .per_sample_norm(
            args.error_norm
                .as_deref()
                .map_or(base.per_sample_norm(), |n| n == "per-sample"),
        )
        .rtol(args.rtol.map_or(rtol, Tolerance::Scalar))
        .atol(args.atol.map_or(atol, Tolerance::Scalar));
    if let (None, Some(c)) = (args.method, base.explicit_controller()) {
        b = b.controller(c);
    }
    let steps = match args.method {
        Some(_) => args.steps,
        None => args.steps.or(base.fixed_steps()),
    };
    if let Some(n) = steps {
        b = b.fixed_steps(n);
    }
    b.build().map_err(|e| solver_error(e, "--"))
}
