//! cnf-train: training continuous normalizing flows as a library: data (toy sets, CSV / .npy
//! tables, splits, standardisation), the Adam optimiser, a full-covariance Gaussian baseline,
//! model folders (config + weights, written atomically), the training loop with observers, and
//! flow matching. The `cnf` command is the separate crate `cnf-cli`; this crate builds without
//! clap, plotters or indicatif (the optional `clap` feature derives `clap::ValueEnum` on the
//! choice enums for it).

pub mod data;
pub mod error;
pub mod fm;
pub mod gaussian;
pub mod model;
pub mod observers;
pub mod optim;
pub mod trainer;

pub use error::{DataError, OptimError, PlotError, TrainError};
