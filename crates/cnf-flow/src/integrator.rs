//! Which `cnf-ode` solver integrates the flow, and with what settings.
use cnf_field::Real;
use cnf_ode::{Dopri5, OdeError, RkMethod, Solver, Stats, Tableau};

use crate::error::FlowError;

/// A solver choice: any tableau of `cnf-ode`, with N fixed steps or adaptive tolerances.
#[derive(Debug, Clone, Copy)]
pub struct Integrator<T> {
    /// The Runge-Kutta method.
    pub tableau: &'static Tableau,
    /// `Some(n)`: exactly n equal steps; `None`: adaptive with `rtol`/`atol`.
    pub steps: Option<usize>,
    /// Relative tolerance (adaptive).
    pub rtol: T,
    /// Absolute tolerance (adaptive).
    pub atol: T,
    /// Step budget per solve.
    pub max_steps: usize,
}

impl<T: Real> Integrator<T> {
    /// Adaptive steps with the method's error estimate.
    pub fn adaptive(method: impl RkMethod, rtol: T, atol: T) -> Self {
        Self {
            tableau: method.tableau(),
            steps: None,
            rtol,
            atol,
            max_steps: 10_000,
        }
    }
    /// Exactly `steps` equal steps (Euler, RK4, or any method).
    pub fn fixed(method: impl RkMethod, steps: usize) -> Self {
        Self {
            tableau: method.tableau(),
            steps: Some(steps),
            rtol: T::zero(),
            atol: T::zero(),
            max_steps: steps,
        }
    }
    /// Dopri5 at rtol = atol = 1e-5 (the peers' CNF setting).
    pub fn default_dopri5() -> Self {
        let tol = T::from_f64(1e-5).unwrap_or_else(T::epsilon);
        Self::adaptive(Dopri5, tol, tol)
    }
    /// The same integrator with other tolerances.
    pub fn with_tolerances(self, rtol: T, atol: T) -> Self {
        Self { rtol, atol, ..self }
    }
    /// The `cnf-ode` solver this describes.
    pub fn solver(&self) -> Result<Solver<&'static Tableau, T>, FlowError> {
        let solver = Solver::new(self.tableau).max_steps(self.max_steps);
        match self.steps {
            Some(0) => Err(FlowError::Invalid("fixed steps must be at least 1".into())),
            Some(n) => Ok(solver.fixed_steps(n)),
            None if !self.tableau.is_adaptive() => Err(FlowError::Invalid(format!(
                "{} has no error estimate: give a number of steps",
                self.tableau.name
            ))),
            None => {
                for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
                    if !(v.is_finite() && v > T::zero()) {
                        return Err(FlowError::Invalid(format!(
                            "{name} must be positive and finite, got {v}"
                        )));
                    }
                }
                Ok(solver.rtol(self.rtol).atol(self.atol))
            }
        }
    }
}

/// Turns a solver error into a flow error (the sample is filled in by the caller if known).
/// Errors of the settings (tolerances, span, options) are not failures of a solve.
pub(crate) fn solve_error<T: Real>(e: OdeError<T>) -> FlowError {
    let t = match &e {
        OdeError::NonFinite { t, .. }
        | OdeError::StepSizeTooSmall { t, .. }
        | OdeError::MaxStepsExceeded { t, .. } => t.to_f64().unwrap_or(f64::NAN),
        _ => return FlowError::Invalid(e.to_string()),
    };
    FlowError::Solve {
        sample: None,
        t,
        stats: e.stats().copied().unwrap_or_default(),
        message: e.to_string(),
    }
}

/// Adds the work of several solves.
pub(crate) fn add_stats(a: Stats, b: Stats) -> Stats {
    Stats {
        nfe: a.nfe + b.nfe,
        accepted: a.accepted + b.accepted,
        rejected: a.rejected + b.rejected,
    }
}
