//! cnf-train: data loading, standardisation, the Adam optimiser, a Gaussian
//! baseline and plotting for training continuous normalizing flows.

pub mod data;
pub mod error;
pub mod fm;
pub mod gaussian;
pub mod optim;
pub mod plot;

pub mod cli;
pub mod commands;
pub mod model;
pub mod observers;
pub mod report;
pub mod trainer;

pub use error::{DataError, OptimError, PlotError, TrainError};
