//! cnf-train: training continuous normalizing flows as a library: data (toy sets, CSV / .npy
//! tables, splits, standardisation), the Adam optimiser, a full-covariance Gaussian baseline,
//! model folders (config + weights, written atomically), the training loop with observers, and
//! flow matching. [`session::Session`] puts them together: a model folder opened or trained
//! (new or resumed) with the precision chosen once, and its log-densities, samples and
//! evaluation, f64 slices in and out; the `cnf` command and other languages' bindings call it.
//! Below, the loop itself. The `cnf` command is the separate crate `cnf-cli`; this crate builds without
//! clap, plotters or indicatif (the optional `clap` feature derives `clap::ValueEnum` on the
//! choice enums for it).
//!
//! ```
//! use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
//! use cnf_flow::Cnf;
//! use cnf_ode::{Method, SolverSpec};
//! use cnf_train::data::ToySet;
//! use cnf_train::optim::{Adam, AdamConfig};
//! use cnf_train::trainer::{
//!     mean_nll, Batches, Differentiation, TraceKind, TrainSettings, Trainer,
//! };
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! // FFJORD's 8gaussians: fresh training batches every iteration, a fixed validation draw.
//! let set: ToySet = "8gaussians".parse()?;
//! let val = set.sample(200, &mut StdRng::seed_from_u64(1));
//! let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[16], Activation::Tanh), 0)?;
//! let adam = Adam::new(mlp.num_params(), AdamConfig { lr: 1e-2, ..AdamConfig::default() })?;
//! let mut trainer: Trainer<'_, f64> = Trainer {
//!     cnf: Cnf::new(mlp, SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5)?),
//!     adam,
//!     batches: Batches::Toy(set),
//!     val: val.data().to_vec(),
//!     settings: TrainSettings {
//!         iters: 5,
//!         batch: 64,
//!         // reverse mode through the solver's steps (or Checkpointed, or the adjoint)
//!         grad: Differentiation::Discretise,
//!         trace: TraceKind::Exact,
//!         val_every: 5,
//!         seed: 0,
//!         regularisers: Default::default(), // RNODE's kinetic/Jacobian weights, STEER
//!     },
//!     observers: Vec::new(), // metrics, best weights, resume file, early stopping: `observers`
//! };
//! let done = trainer.run(0)?; // maximum likelihood from iteration 0
//! assert_eq!(done, 5);
//! let (nll, nfe) = mean_nll(&trainer.cnf, val.data())?;
//! println!("validation NLL {nll:.3} ({nfe} field evaluations)");
//! assert!(nll.is_finite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]
pub mod atomic;
pub mod data;
pub mod error;
pub mod fm;
pub mod gaussian;
pub mod model;
pub mod observers;
pub mod optim;
pub mod sbi;
pub mod session;
pub mod trainer;

pub use error::{DataError, OptimError, PlotError, TrainError};
