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
//! - Conditional flows p(x | c): a field with a context ([`cnf_field::VectorField::context_dim`]
//!   `k > 0`) and the `_given` forms, the context `(rows, k)` after the points:
//!   [`Cnf::log_density_given`], [`Cnf::transform_given`], [`Cnf::trajectory_given`],
//!   [`Cnf::sample_given`] (`n` draws per context row in one solve) and
//!   [`Cnf::loss_and_grad_given`]; the unconditional methods are these with an empty context.
//!
//! ```
//! use cnf_field::{Activation, Mlp, MlpConfig, Trace};
//! use cnf_flow::Cnf;
//! use cnf_ode::{Method, SolverSpec};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! // v(t, z, c) on R^2 conditioned on one number c per point.
//! let config = MlpConfig::new(2, &[16, 16], Activation::Tanh).with_context(1);
//! let cnf = Cnf::new(Mlp::<f64>::new(config, 1)?, SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6)?);
//! let given = [0.5, -2.0]; // two context rows
//! let draws = cnf.sample_given(&given, 3, &mut StdRng::seed_from_u64(0))?; // 3 draws each
//! assert_eq!(draws.points.len(), 2 * 3 * 2);
//! let c = [0.5, 0.5, 0.5, -2.0, -2.0, -2.0]; // the context of each draw
//! let density = cnf.log_density_given(&draws.points, &c, &Trace::Exact)?;
//! assert_eq!(density.logp.len(), 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! - [`Cnf::loss_and_grad`]: the mean NLL and its gradient by the continuous adjoint method or
//!   by reverse mode through the solver's steps, as `cnf-ode`'s [`cnf_ode::Differentiation`]
//!   says (`Discretise`, `Checkpointed`, `Backsolve`).
//! - The ODE systems of [`dynamics`] are ordinary `cnf-ode` systems: the flow adds equations, not
//!   a new solver.
#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]
pub mod dynamics;
mod error;
mod flow;
mod grad;
mod rows;

pub use error::FlowError;
pub use flow::{check_method, log_normal, Batching, Cnf, Density, Trajectory, Transported};
pub use grad::{LossGrad, LossOptions, Penalties, Regularisation};
