//! `cnf`: continuous normalizing flows and the ODE solvers under them.
//!
//! This facade re-exports the member crates so that examples and benchmarks at the workspace root
//! can use them through one name:
//! - [`ode`]: fixed-step and adaptive Runge-Kutta solvers (`cnf-ode`);
//! - [`field`]: vector fields, the MLP, exact traces and gradients (`cnf-field`);
//! - [`flow`]: log-densities, sampling and gradients of a CNF (`cnf-flow`);
//! - [`train`]: data sets, optimiser and the training loop (`cnf-train`).
pub use cnf_field as field;
pub use cnf_flow as flow;
pub use cnf_ode as ode;
pub use cnf_train as train;
