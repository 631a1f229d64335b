//! # cnf-ode: explicit Runge-Kutta solvers over any `num_traits::Float` state
//!
//! The pieces are independent, in the way of diffrax:
//! - a **method** is a [`Tableau`] of constants ([`tableau`]): [`Euler`], [`Midpoint`], [`Heun`],
//!   [`Rk4`] (fixed step), [`Bs3`], [`Dopri5`], [`Tsit5`], [`Dop853`] (adaptive);
//! - one **engine** performs a step of any tableau, its error estimate and its continuous
//!   extension (`engine.rs`);
//! - a **step-size controller** ([`PiController`], Hairer's PI defaults) decides acceptance;
//! - the **driver** ([`Solver`]) runs the loop: output times, observers, statistics, errors.
//!
//! States are anything that lends its components as a slice ([`State`]): `Vec<T>`, `[T; N]`,
//! nalgebra vectors, or a [`Batch`] of samples. Buffers are allocated once per solve; the stepping
//! loop does not allocate. The last step lands exactly on `t_end`; `t_end < t0` integrates
//! backwards. Every [`Solution`] and every integration error carries [`Stats`] (NFE, accepted,
//! rejected).
mod batch;
mod controller;
mod engine;
mod error;
mod grad;
mod method;
mod observer;
mod options;
mod solution;
mod solver;
mod spec;
mod state;
mod system;
pub mod tableau;
mod util;

pub use batch::Batch;
pub use controller::{IController, PiController, PiParams, StepController};
pub use error::OdeError;
pub use grad::{Differentiation, GradSolution, VjpOut, VjpSystem};
pub use observer::{Observer, Step};
pub use options::{Options, Stepping, Tolerance};
pub use solution::{DenseSolution, Solution, Stats};
pub use method::{Method, UnknownMethod};
pub use solver::Solver;
pub use spec::{SolverSpec, SolverSpecBuilder, Steps, DEFAULT_MAX_STEPS};
pub use state::State;
pub use system::OdeSystem;
pub use tableau::{Bs3, Dop853, Dopri5, Euler, Heun, Midpoint, Rk4, RkMethod, Tableau, Tsit5};
