//! # cnf-ode: explicit Runge-Kutta and stiff (Rosenbrock, BDF, Radau) solvers over any `num_traits::Float` state
//!
//! ```
//! use cnf_ode::{Method, Solver};
//! let method: Method = "dopri5".parse()?;
//! let sol = Solver::new(method).rtol(1e-8).atol(1e-10).output_times(vec![0.5, 1.0]).dense(true)
//!     .solve(|_t, y, dy| { dy[0] = y[1]; dy[1] = -y[0]; }, 0.0, 1.0, &[1.0, 0.0])?;
//! println!("y(1) = {:?} ({})", sol.y, sol.stats); // stats: NFE, accepted, rejected
//! println!("y(0.25) = {:?}", sol.interpolate(0.25)); // dense output, after the solve
//! # assert!((sol.y[0] - 1f64.cos()).abs() < 1e-8);
//! # assert!((sol.interpolate(0.25).unwrap()[0] - 0.25f64.cos()).abs() < 1e-7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! (the example of the README's "Using the solvers on your own ODE").
//!
//! The pieces are independent, in the way of diffrax:
//! - a **method** is a [`Tableau`] of constants: [`Euler`], [`Midpoint`], [`Heun`],
//!   [`Rk4`] (fixed step), [`Bs3`], [`Dopri5`], [`Tsit5`], [`Dop853`] (adaptive); [`Method`]
//!   names them all as one run-time value, with the stiff methods [`Method::Rodas5p`],
//!   [`Method::Rosenbrock23`] (Rosenbrock), [`Method::Bdf`] (variable order 1-5, Newton
//!   with Jacobian and LU reuse) and [`Method::Radau5`] (Radau IIA, implicit Runge-Kutta of
//!   order 5, scipy's `Radau`), all with automatic Jacobians by finite differences, grouped
//!   by a [`Sparsity`] pattern, or given by [`WithJacobian`], or exact by dual numbers through
//!   [`Dual`]; a dense LU, real and complex ([`ComplexLu`]), behind [`LinearSolver`]);
//! - one **engine** performs a step of any tableau, its error estimate and its continuous
//!   extension (`engine.rs`);
//! - a **step-size controller** ([`StepController`]) decides acceptance: by default a
//!   [`PiController`] with the tableau's parameters ([`Tableau::controller`]), or an
//!   [`IController`], or your own;
//! - the **driver** ([`Solver`]) runs the loop: output times, dense output, observers,
//!   statistics, errors; [`SolverSpec`] is a validated description that builds one;
//! - **events** ([`Event`], [`Solver::solve_with_events`]): zeros of g(t, y) located on each
//!   step's continuous extension, with a direction, a terminal count and an action that changes
//!   the state; the [`Solution`] lists them ([`EventRecord`]) and says why the solve ended
//!   ([`StopReason`]).
//!
//! Right-hand sides are closures over slices ([`Solver::solve`]) or [`OdeSystem`]s that keep
//! state ([`Solver::solve_system`]); small `Copy` states (`[T; N]`, `SVector`) have a path of
//! their own with stage buffers on the stack and the tableau unrolled at compile time
//! ([`Solver::solve_small`], same results). The error norm is chosen on the solver
//! ([`ErrorNorm`]): the RMS over the state, or the largest per-sample RMS of a batch solved as
//! one state ([`SampleLayout`]). States are anything that lends its components as a slice
//! ([`State`]): `Vec<T>`, `[T; N]`, nalgebra vectors (feature `nalgebra`), or a [`Batch`] of
//! samples. Buffers are allocated once per solve; the stepping loop does not allocate (unless
//! dense output is recorded). The last step lands exactly on `t_end`; `t_end < t0` integrates
//! backwards. Every [`Solution`] and every integration error carries [`Stats`] (NFE, accepted,
//! rejected).
//!
//! Features: `serde` ([`Method`], [`PiParams`], [`SolverSpec`] as lower-case names and plain
//! fields), `nalgebra` ([`State`] for `SVector` and `DVector`).
#![warn(missing_docs)]
mod batch;
mod bdf;
mod complex_lu;
mod controller;
mod engine;
mod error;
mod event;
mod grad;
mod implicit;
mod jacobian;
mod linalg;
mod method;
mod norm;
mod observer;
mod options;
mod radau;
mod rosenbrock;
mod small;
mod solution;
mod solver;
mod spec;
mod state;
mod stepper;
mod system;
mod tableau;
mod util;

pub use batch::Batch;
pub use complex_lu::ComplexLu;
pub use controller::{IController, PiController, PiParams, StepController};
pub use error::OdeError;
pub use event::{Direction, Event, EventRecord, StopReason, SIGN_CHECKS};
pub use grad::{Differentiation, GradSolution, PenaltyRefusal, VjpOut, VjpSystem};
pub use jacobian::{finite_difference_jacobian, Sparsity};
pub use linalg::{DenseLu, LinearSolver, Singular};
pub use method::{Method, OdeMethod, Scheme, UnknownMethod};
pub use norm::{Block, ErrorNorm, SampleLayout};
pub use observer::{AcceptedStep, Observer};
pub use options::Tolerance;
pub use rosenbrock::RosenbrockTableau;
pub use solution::{DenseSolution, Solution, Stats};
pub use solver::Solver;
pub use spec::{SolverSpec, SolverSpecBuilder, StepSizing, DEFAULT_MAX_STEPS};
pub use state::State;
pub use system::{Dual, GenericSystem, OdeSystem, WithJacobian};
pub use tableau::{
    Bs3, DenseOutput, Dop853, Dopri5, ErrorEstimate, Euler, Heun, Midpoint, Rk4, RkMethod, Tableau,
    Tsit5,
};
pub use util::cast;
