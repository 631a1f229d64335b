//! # cnf-flow: continuous normalizing flows
//!
//! ```
//! use cnf_field::Linear;
//! use cnf_flow::{log_normal, Cnf};
//! use cnf_ode::{Method, SolverSpec};
//!
//! // v(z) = A z with A = diag(0.5, -0.3): the flow from t = 0 to 1 maps x to exp(A) x.
//! let field = Linear::new(2, &[0.5, 0.0, 0.0, -0.3], &[0.0, 0.0])?;
//! let cnf = Cnf::new(field, SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8)?);
//! let x = [0.7, -1.2];
//! let density = cnf.log_density(&x)?;
//! println!("log p(x) = {} ({})", density.logp[0], density.stats); // stats: NFE, steps
//!
//! // log p(x) = log N(exp(A) x; 0, I) + tr(A): the trace integrated over t in [0, 1].
//! let z1 = [0.5f64.exp() * x[0], (-0.3f64).exp() * x[1]];
//! let exact = log_normal(&z1) + (0.5 - 0.3);
//! assert!((density.logp[0] - exact).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A discrete normalizing flow x -> f_K(... f_1(x)) has
//! log p(x) = log p_base(z) + sum_k log |det df_k/dz|. Let the number of layers grow and each
//! layer become an infinitesimal step z -> z + v(z, t) dt: log |det(I + J dt)| = tr(J) dt + O(dt^2),
//! so the sum of log-determinants becomes an integral of a trace (the instantaneous change of
//! variables), and no determinant is ever computed.
//!
//! ## Convention (FFJORD's, and the peers')
//! Data x at t = 0 is integrated forward to the base at t = 1:
//!
//! dz/dt = v(z, t),  dD/dt = +tr(dv/dz),  z(0) = x,  D(0) = 0,
//!
//! log p(x) = log N(z(1); 0, I) + D(1).
//!
//! Sampling runs the other way: z ~ N(0, I) at t = 1 moved to t = 0 with dz/dt = v only.
//!
//! ## Pieces
//! - [`Cnf`]: a [`cnf_field::VectorField`] plus a [`cnf_ode::SolverSpec`] (any `cnf-ode`
//!   method, N fixed steps or adaptive tolerances, the batch error norm): [`Cnf::log_density`],
//!   [`Cnf::sample`], [`Cnf::transform`];
//!   [`Batching`] chooses one solve for the whole batch (shared steps) or parallel solves of
//!   chunks (down to one point each).
//! - [`Cnf::loss_and_grad`]: the mean NLL and its gradient by the continuous adjoint method or
//!   by reverse mode through the solver's steps, as `cnf-ode`'s [`cnf_ode::Differentiation`]
//!   says (`Discretise`, `Checkpointed`, `Backsolve`).
//! - The ODE systems of [`dynamics`] are ordinary `cnf-ode` systems: the flow adds equations, not
//!   a new solver.
#![warn(missing_docs)]
pub mod dynamics;
mod error;
mod flow;
mod grad;
mod rows;

pub use error::FlowError;
pub use flow::{log_normal, Batching, Cnf, Density, Trajectory, Transported};
pub use grad::{LossGrad, LossOptions, Penalties, Regularisation};
