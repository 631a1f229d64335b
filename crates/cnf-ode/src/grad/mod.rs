//! Gradients of a solve: dL/dy0 and dL/dp of a loss L(y(t1)) for dy/dt = f(t, y; p), where the
//! method of differentiation is a value passed to one entry point,
//! [`Solver::solve_with_gradient`] (diffrax's `adjoint=` argument):
//!
//! - [`Differentiation::Discretise`] (discretise-then-optimise): reverse mode through the
//!   accepted steps of the forward solve, with the engine's own tableau arithmetic transposed.
//!   The gradient of exactly the computed y(t1) for the step sequence taken (step sizes are
//!   constants of the reverse pass). Memory: one contiguous tape of `(s + 1) n` values per
//!   accepted step (the state and the s stages; n components, s stages of the method) plus
//!   `(s + 4) n` of working buffers; backward work: one VJP per live stage of each step.
//! - [`Differentiation::Checkpointed`]: the same gradient keeping only every k-th state; the
//!   stages of one segment at a time are recomputed (one more forward pass; memory `n` per
//!   checkpoint plus one segment's tape).
//! - [`Differentiation::Backsolve`] (optimise-then-discretise): the continuous adjoint
//!   `[y, a, a_p]`, `dy/dt = f`, `da/dt = -a^T df/dy`, `da_p/dt = -a^T df/dp`, solved from t1
//!   back to t0 from `[y(t1), dL/dy(t1), 0]`. O(1) memory in the number of steps; accurate to
//!   its tolerances. With `seminorm` (Kidger, Chen, Lyons 2021, "Hey, that's not an ODE") the
//!   `a_p` components are left out of the error norm: they are integrals that feed nothing back
//!   into the other components, so their error need not shorten the steps.
mod backsolve;
mod discretise;
mod system;

use num_traits::Float;

use crate::controller::StepController;
use crate::error::{check_tolerance, num, OdeError};
use crate::method::{OdeMethod, Scheme};
use crate::options::Tolerance;
use crate::solution::Stats;
use crate::solver::Solver;

pub use system::{VjpOut, VjpSystem};

/// Why a solve cannot differentiate the local-error penalty
/// ([`Solver::solve_with_gradient_and_error_penalty`]): the one check of its preconditions,
/// made by the solver and, before any work, by [`crate::SolverSpec::check_error_penalty`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PenaltyRefusal {
    /// The penalty is a property of the discrete steps: `Backsolve` cannot differentiate it.
    Backsolve,
    /// The method has no single embedded pair (DOP853, the fixed-step methods).
    NoEmbeddedPair {
        /// The method's name.
        method: &'static str,
    },
    /// A [`crate::SolverSpec`] with fixed steps carries no tolerances to measure the errors
    /// against.
    FixedSteps,
}

impl PenaltyRefusal {
    /// The refusal, if any, of the penalty for `tableau` differentiated by `method`.
    pub(crate) fn check<T>(scheme: Scheme, method: &Differentiation<T>) -> Result<(), Self> {
        if matches!(method, Differentiation::Backsolve { .. }) {
            return Err(Self::Backsolve);
        }
        match scheme.tableau() {
            Some(tab) if matches!(tab.error, crate::tableau::ErrorEstimate::Embedded(_)) => Ok(()),
            _ => Err(Self::NoEmbeddedPair {
                method: scheme.name(),
            }),
        }
    }
}

impl From<PenaltyRefusal> for OdeError {
    fn from(r: PenaltyRefusal) -> Self {
        match r {
            PenaltyRefusal::Backsolve => OdeError::Unsupported(
                "the local-error penalty is a property of the discrete steps: differentiate it \
                 with Discretise or Checkpointed, not Backsolve",
            ),
            PenaltyRefusal::NoEmbeddedPair { method } => OdeError::NoEmbeddedPair { method },
            PenaltyRefusal::FixedSteps => OdeError::Unsupported(
                "the local-error penalty measures the steps' errors against the tolerances of \
                 adaptive steps: fixed steps have none",
            ),
        }
    }
}

/// How [`Solver::solve_with_gradient`] differentiates the solve.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Differentiation<T> {
    /// Reverse mode through the accepted steps: exact for the discrete solve; memory grows with
    /// the number of steps (`(s + 1) n` values each).
    Discretise,
    /// `Discretise` with checkpoints: only the state at the start of every `every`-th step is
    /// kept, and the stages of one segment of `every` steps at a time are recomputed from it
    /// during the reverse pass. Memory: `n` per checkpoint plus `(s + 1) n every` for one
    /// segment (about `2 n sqrt(s N)` at `every = sqrt(N / s)` for N steps); work: one more
    /// forward pass over the steps. The same gradient as `Discretise` (to rounding).
    Checkpointed {
        /// Steps per segment (at least 1).
        every: usize,
    },
    /// The continuous adjoint solved backwards with the solver's method: O(1) memory.
    /// `tolerances` are the backward solve's `(rtol, atol)`; `None` takes the forward solve's
    /// own (scalar) tolerances. Unused with fixed steps, where the backward solve takes the same
    /// number of steps as the forward one.
    Backsolve {
        /// Relative and absolute tolerance of the backward solve (`None`: the forward solve's).
        tolerances: Option<(T, T)>,
        /// Leave the parameter cotangents out of the backward error norm (recommended).
        seminorm: bool,
    },
}

impl<T> Differentiation<T> {
    /// The backsolve adjoint with the seminorm and its own tolerances.
    pub fn backsolve(rtol: T, atol: T) -> Self {
        Self::Backsolve {
            tolerances: Some((rtol, atol)),
            seminorm: true,
        }
    }

    /// The backsolve adjoint with the seminorm at the forward solve's tolerances (what
    /// training with `--grad adjoint` uses).
    pub fn adjoint() -> Self {
        Self::Backsolve {
            tolerances: None,
            seminorm: true,
        }
    }

    /// The same method with its tolerances converted by `f` (e.g. from f64 to a model's
    /// precision).
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Differentiation<U> {
        match self {
            Self::Discretise => Differentiation::Discretise,
            Self::Checkpointed { every } => Differentiation::Checkpointed { every },
            Self::Backsolve {
                tolerances,
                seminorm,
            } => Differentiation::Backsolve {
                tolerances: tolerances.map(|(r, a)| (f(r), f(a))),
                seminorm,
            },
        }
    }
}

/// The result of [`Solver::solve_with_gradient`].
#[derive(Debug, Clone)]
pub struct GradSolution<T> {
    /// y(t1) of the forward solve.
    pub y1: Vec<T>,
    /// dL/dy0.
    pub grad_y0: Vec<T>,
    /// dL/dp, one entry per parameter.
    pub grad_p: Vec<T>,
    /// Work of the forward solve.
    pub forward: Stats,
    /// Work of the backward pass: for `Discretise`, `nfe` counts VJPs and `accepted` the steps
    /// reversed; `Checkpointed` adds the evaluations that recompute the stages; for
    /// `Backsolve`, the backward solve's statistics (one VJP per evaluation).
    pub backward: Stats,
    /// The local-error penalty `R = sum_j |h_j| E_j` of the forward solve's accepted steps
    /// (unweighted; 0 unless asked for by
    /// [`Solver::solve_with_gradient_and_error_penalty`]).
    pub local_error: T,
}

impl<M, T, C> Solver<M, T, C>
where
    M: OdeMethod + Clone,
    T: Float,
    C: StepController<T> + Clone,
{
    /// Solves `sys` from (t0, y0) to t1 and differentiates a loss L(y(t1)) as `method` says:
    /// `cotangent(y1, a)` writes dL/dy(t1) into `a` (zeroed, same length as y1). Returns y(t1),
    /// dL/dy0, dL/dp and the work of both passes.
    ///
    /// The solver's settings (method, stepping, tolerances, step bounds, controller) apply to
    /// the forward solve; the backward solve of `Backsolve` uses the same settings with its own
    /// tolerances. Output times are not supported here.
    ///
    /// ```
    /// use cnf_ode::{Differentiation, Dopri5, Solver, VjpOut, VjpSystem};
    /// /// dy/dt = -p y: y(1) = y0 e^-p, so for L = y(1), dL/dy0 = e^-p and dL/dp = -y0 e^-p.
    /// struct Decay(f64);
    /// impl VjpSystem<f64> for Decay {
    ///     fn num_params(&self) -> usize { 1 }
    ///     fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) { dy[0] = -self.0 * y[0]; }
    ///     fn vjp(&mut self, _t: f64, y: &[f64], a: &[f64], out: VjpOut<'_, f64>) {
    ///         out.f[0] = -self.0 * y[0];
    ///         out.a_y[0] += -self.0 * a[0];
    ///         out.a_p[0] += -y[0] * a[0];
    ///     }
    /// }
    /// let solver = Solver::new(Dopri5).rtol(1e-10).atol(1e-12);
    /// for method in [Differentiation::Discretise, Differentiation::backsolve(1e-10, 1e-12)] {
    ///     let g = solver
    ///         .solve_with_gradient(&mut Decay(0.5), 0.0, 1.0, &[2.0], |_y1, a| a[0] = 1.0, method)
    ///         .unwrap();
    ///     let e = (-0.5f64).exp();
    ///     assert!((g.grad_y0[0] - e).abs() < 1e-8);
    ///     assert!((g.grad_p[0] + 2.0 * e).abs() < 1e-8);
    /// }
    /// ```
    ///
    /// # Errors
    /// Those of [`Solver::solve`] for the forward solve (and the backward one of `Backsolve`);
    /// before any evaluation also [`OdeError::Unsupported`] (output times; `Backsolve` at the
    /// forward tolerances when these are per component), [`OdeError::InvalidSetting`]
    /// (`Checkpointed { every: 0 }`) and [`OdeError::InvalidTolerance`] (`Backsolve`'s own
    /// tolerances); [`OdeError::NonFinite`] at t1 when the cotangent of the loss is not finite,
    /// and at the failing step when the reverse pass overflows.
    pub fn solve_with_gradient<V, L>(
        &self,
        sys: &mut V,
        t0: T,
        t1: T,
        y0: &[T],
        cotangent: L,
        method: Differentiation<T>,
    ) -> Result<GradSolution<T>, OdeError>
    where
        V: VjpSystem<T> + ?Sized,
        L: FnOnce(&[T], &mut [T]),
    {
        self.solve_with_gradient_and_error_penalty(sys, (t0, t1), y0, cotangent, method, T::zero())
    }

    /// [`Solver::solve_with_gradient`] of the loss `L(y(t1)) + error_weight R`, where
    /// `R = sum_j |h_j| E_j` sums the accepted steps' scaled local error estimates
    /// (`E_j = |h_j| sqrt(mean_i (r_i / sc_i)^2)` over the error norm's components, `r` the
    /// embedded pair's difference `sum_m e_m k_m`, `sc_i = atol_i + rtol_i max(|y_i|, |y_new_i|)`
    /// held constant): Pal et al. 2021's ERNODE regulariser. A field whose steps have small error
    /// estimates lets the controller take longer steps. `R` is a property of the discrete solve,
    /// so only [`Differentiation::Discretise`] and [`Differentiation::Checkpointed`] can
    /// differentiate it (the step sizes are constants of the reverse pass, as for the loss);
    /// `Backsolve` with a non-zero weight and methods without one embedded pair (DOP853, fixed
    /// tableaus) are refused. `R` is returned in [`GradSolution::local_error`].
    ///
    /// # Errors
    /// Those of [`Solver::solve_with_gradient`]; with a non-zero weight also
    /// [`OdeError::Unsupported`] (`Backsolve`), [`OdeError::NoEmbeddedPair`], and
    /// [`OdeError::InvalidSetting`] for a negative or non-finite weight.
    pub fn solve_with_gradient_and_error_penalty<V, L>(
        &self,
        sys: &mut V,
        (t0, t1): (T, T),
        y0: &[T],
        cotangent: L,
        method: Differentiation<T>,
        error_weight: T,
    ) -> Result<GradSolution<T>, OdeError>
    where
        V: VjpSystem<T> + ?Sized,
        L: FnOnce(&[T], &mut [T]),
    {
        if error_weight != T::zero() {
            PenaltyRefusal::check(self.scheme(), &method)?;
        }
        if !self.options().t_out.is_empty() {
            return Err(OdeError::Unsupported(
                "output times are not supported by solve_with_gradient",
            ));
        }
        match method {
            Differentiation::Discretise => {
                discretise::solve(self, sys, (t0, t1), y0, cotangent, None, error_weight)
            }
            Differentiation::Checkpointed { every: 0 } => Err(OdeError::InvalidSetting {
                field: "Checkpointed.every".into(),
                requirement: "at least 1",
                value: 0.0,
            }),
            Differentiation::Checkpointed { every } => discretise::solve(
                self,
                sys,
                (t0, t1),
                y0,
                cotangent,
                Some(every),
                error_weight,
            ),
            Differentiation::Backsolve {
                tolerances,
                seminorm,
            } => {
                let (rtol, atol) = match tolerances {
                    Some(tol) => tol,
                    None => match (&self.options().rtol, &self.options().atol) {
                        (Tolerance::Scalar(r), Tolerance::Scalar(a)) => (*r, *a),
                        _ => {
                            return Err(OdeError::Unsupported(
                                "Backsolve at the forward tolerances needs scalar forward \
                                 tolerances (the backward state is longer): give its own",
                            ))
                        }
                    },
                };
                // Fail on bad backward tolerances before the forward solve is spent.
                check_tolerance("Backsolve.tolerances.rtol", &Tolerance::Scalar(rtol))?;
                check_tolerance("Backsolve.tolerances.atol", &Tolerance::Scalar(atol))?;
                backsolve::solve(self, sys, t0, t1, y0, cotangent, (rtol, atol, seminorm))
            }
        }
    }
}

/// dL/dy(t1) from the caller, checked for size and finiteness.
fn terminal<T: Float, L: FnOnce(&[T], &mut [T])>(
    y1: &[T],
    cotangent: L,
    t1: T,
    forward: Stats,
) -> Result<Vec<T>, OdeError> {
    let mut a = vec![T::zero(); y1.len()];
    cotangent(y1, &mut a);
    if a.iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite {
            t: num(t1),
            stats: forward,
        });
    }
    Ok(a)
}
