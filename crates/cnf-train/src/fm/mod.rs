//! Flow matching: training a CNF's field by regression on a conditional velocity, with no ODE
//! solve and no trace (Lipman et al. 2022; Tong et al. 2023, TorchCFM; Liu et al. 2022,
//! rectified flow). The trained field is an ordinary [`cnf_field::VectorField`], so
//! `cnf_flow::Cnf::log_density` still gives its exact likelihood.
//!
//! # Convention
//!
//! As everywhere in this project, the **data `x` is at `t = 0` and the base `N(0, I)` at
//! `t = 1`**, and `dz/dt = v(z, t)` carries data to base. The papers use the reverse time, so
//! their velocities change sign here: the straight path's target is `e - x` (data to noise). See
//! [`path`] for each path's formulas and the derivation of Lipman et al.'s path in this
//! direction.
//!
//! # Pieces
//!
//! * [`ProbabilityPath`] (trait) with [`StraightPath`] (I-CFM / rectified flow), [`LipmanPath`]
//!   and [`CosinePath`]; [`PathSpec`] names one for configuration.
//! * [`Coupling`]: independent pairs, exact minibatch OT ([`linear_assignment`]), entropic
//!   Sinkhorn ([`sinkhorn`]).
//! * [`fm_loss_and_grad`] / [`fm_loss`]: loss `1/(B d) sum |v(t_b, x_t) - u_t|^2` (TorchCFM's
//!   mean) and its parameter gradient through the field's VJP only, for any
//!   [`cnf_field::VectorField`], called once per batch with one time per sample
//!   ([`cnf_field::Time::PerRow`]).
//! * [`FlowMatching`] `{ path, coupling, time }`: [`FlowMatching::step`] draws the base points,
//!   times and noise, couples, and returns the loss and gradient of one batch.
//! * [`w2_distance`]: the 2-Wasserstein distance between sample sets (a sample-quality metric).
//!
//! # Use in a training loop
//!
//! ```
//! use cnf_field::{Activation, Mlp, MlpConfig};
//! use cnf_train::fm::{Coupling, FlowMatching, FmWork, PathSpec, TimeDist};
//! use cnf_train::optim::{Adam, AdamConfig};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let mut mlp = Mlp::<f32>::new(MlpConfig::new(2, &[16, 16], Activation::Tanh), 0).unwrap();
//! let fm = FlowMatching {
//!     path: PathSpec::Straight { sigma: 0.0 },
//!     coupling: Coupling::ExactOt,
//!     time: TimeDist::Uniform,
//! };
//! let mut work = FmWork::new(&mlp);
//! let mut grad = vec![0.0f32; cnf_field::VectorField::num_params(&mlp)];
//! let mut adam = Adam::new(grad.len(), AdamConfig::default()).unwrap();
//! let mut rng = StdRng::seed_from_u64(1);
//! let x = vec![0.5f32; 2 * 64]; // a (64, 2) data batch
//! let step = fm.step(&mlp, &mut work, &x, &mut rng, &mut grad).unwrap();
//! assert!(step.loss.is_finite());
//! adam.step(cnf_field::VectorField::params_mut(&mut mlp), &grad).unwrap();
//! ```

pub mod assign;
pub mod coupling;
pub mod loss;
pub mod path;
pub mod w2;

pub use assign::{assignment_cost, linear_assignment, AssignStats, AssignWork};
pub use coupling::{
    sinkhorn, squared_distances, squared_distances_into, Coupling, CouplingWork, SinkhornPlan,
    MAX_OT_POINTS,
};
pub use loss::{fm_loss, fm_loss_and_grad, FlowMatching, FmBatch, FmStep, FmWork, TimeDist};
pub use path::{CosinePath, LipmanPath, PathSpec, ProbabilityPath, StraightPath};
pub use w2::{w2_distance, W2_MAX_POINTS};

/// Errors of the flow-matching objective, couplings and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FmError {
    /// A buffer has the wrong length for the batch and dimension.
    #[error("{what}: expected {expected} values, found {found}")]
    Shape {
        /// Which buffer, with its layout (for instance "base draws e (B, d)").
        what: &'static str,
        /// The length it should have; for a `(B, d)` batch whose length is not a multiple of
        /// `d`, the dimension `d` itself (`usize::MAX` when the size overflows).
        expected: usize,
        /// Its actual length.
        found: usize,
    },
    /// An input holds a NaN or infinite value.
    #[error("{what}: entry {index} is not finite")]
    NonFinite {
        /// Which buffer.
        what: &'static str,
        /// 0-based index of the first non-finite entry in the flat buffer.
        index: usize,
    },
    /// A path, coupling or time-distribution setting is out of range.
    #[error("{name} = {value} {why}")]
    BadSetting {
        /// The setting's name (for instance `sigma`, `epsilon`, `std`).
        name: &'static str,
        /// The value given.
        value: f64,
        /// The range it must lie in, in words.
        why: &'static str,
    },
    /// A per-sample time is outside `[0, 1]` (or NaN).
    #[error("time {index} is {value}, outside [0, 1]")]
    BadTime {
        /// 0-based index of the sample.
        index: usize,
        /// Its time.
        value: f64,
    },
    /// A batch (or point set) with no points.
    #[error("the batch is empty")]
    EmptyBatch,
    /// More points than an optimal-transport computation accepts: its `(n, n)` cost matrix
    /// would be too large to build.
    #[error("{n} points is more than the {max} that exact optimal transport accepts")]
    TooManyPoints {
        /// Number of points given.
        n: usize,
        /// The limit ([`MAX_OT_POINTS`] for couplings, [`W2_MAX_POINTS`] for W2).
        max: usize,
    },
}

#[cfg(test)]
mod tests;
