//! The subcommands of `cnf`: each maps its arguments onto cnf-train's `Session` and prints.
mod density;
mod inspect;
mod sample;
mod train;

use crate::cli::Command;
use cnf_train::error::TrainError;

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
