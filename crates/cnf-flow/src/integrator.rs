//! Which `cnf-ode` solver integrates the flow, and with what settings.
use cnf_field::Real;
use cnf_ode::{
    Dopri5, ErrorNorm, Method, OdeError, RkMethod, SampleLayout, Solver, SolverSpec, Stats, Steps,
    Tableau, Tolerance,
};

use crate::error::FlowError;

/// How the step-size control of a solve over several points measures the local error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchNorm {
    /// The RMS over the whole batch (the peers' way, and the default): the batch is accurate on
    /// average, a hard point may be off by more (2e-2 in log p at 1e-5 on the diffrax model in
    /// a batch of 10k, against 2.7e-4 per-sample; `examples/batch_norm.rs`, docs/flow.md).
    #[default]
    Rms,
    /// The largest of the points' own RMS errors: every point of a batch is held to the
    /// tolerances as if solved alone, at ~1.6x the evaluations of `Rms` on that model.
    PerSample,
}

/// A solver choice: any tableau of `cnf-ode`, with N fixed steps or adaptive tolerances.
///
/// A plain, `Copy` description that is checked by turning it into a
/// [`cnf_ode::SolverSpec`] ([`Integrator::spec`]) when a solve starts;
/// [`Integrator::from_spec`] goes the other way.
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
    /// The error norm of solves over several points (adaptive steps only).
    pub norm: BatchNorm,
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
            norm: BatchNorm::default(),
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
            norm: BatchNorm::default(),
        }
    }
    /// Dopri5 at rtol = atol = 1e-5 (the peers' CNF setting).
    pub fn default_dopri5() -> Self {
        let tol = T::from_f64(1e-5).unwrap_or_else(T::epsilon);
        Self::adaptive(Dopri5, tol, tol)
    }
    /// The same integrator with another batch error norm.
    pub fn with_norm(self, norm: BatchNorm) -> Self {
        Self { norm, ..self }
    }
    /// The same integrator with other tolerances.
    pub fn with_tolerances(self, rtol: T, atol: T) -> Self {
        Self { rtol, atol, ..self }
    }
    /// The validated [`SolverSpec`] this describes: every check (steps at least 1, an error
    /// estimate for adaptive steps, positive finite tolerances) is the spec's. `Invalid` names
    /// the field ("rtol must be positive and finite, got -1").
    pub fn spec(&self) -> Result<SolverSpec<T>, FlowError> {
        let method = Method::from_tableau(self.tableau).ok_or_else(|| {
            FlowError::Invalid(format!(
                "{} is not one of cnf-ode's methods",
                self.tableau.name
            ))
        })?;
        let b = SolverSpec::builder(method).max_steps(self.max_steps.max(1));
        let b = match self.steps {
            Some(n) => b.fixed_steps(n),
            None => b.rtol(self.rtol).atol(self.atol),
        };
        b.build().map_err(|e| FlowError::Invalid(e.to_string()))
    }
    /// The integrator of a spec with scalar tolerances (or fixed steps); the spec's controller
    /// settings are not kept (the flow uses the tableau's).
    pub fn from_spec(spec: &SolverSpec<T>) -> Result<Self, FlowError> {
        let tableau = spec.method().tableau();
        Ok(match spec.steps() {
            Steps::Fixed(n) => Self {
                tableau,
                steps: Some(*n),
                rtol: T::zero(),
                atol: T::zero(),
                max_steps: spec.max_steps(),
                norm: BatchNorm::default(),
            },
            Steps::Adaptive {
                rtol: Tolerance::Scalar(rtol),
                atol: Tolerance::Scalar(atol),
            } => Self {
                tableau,
                steps: None,
                rtol: *rtol,
                atol: *atol,
                max_steps: spec.max_steps(),
                norm: BatchNorm::default(),
            },
            Steps::Adaptive { .. } => {
                return Err(FlowError::Invalid(
                    "the flow takes scalar tolerances, not one per component".into(),
                ))
            }
        })
    }
    /// The `cnf-ode` solver this describes (built from [`Integrator::spec`]).
    pub fn solver(&self) -> Result<Solver<Method, T>, FlowError> {
        Ok(self.spec()?.solver())
    }
    /// The solver for a state whose first `points * dim` components are the points (row-major)
    /// followed by `columns` blocks of one value per point: with [`BatchNorm::PerSample`] and
    /// several points, each point's components form one group of the error norm.
    pub fn batch_solver(
        &self,
        points: usize,
        dim: usize,
        columns: usize,
    ) -> Result<Solver<Method, T>, FlowError> {
        let solver = self.solver()?;
        Ok(match self.norm {
            BatchNorm::PerSample if points > 1 && self.steps.is_none() => solver.error_norm(
                ErrorNorm::PerSample(SampleLayout::rows(points, dim).then_columns(columns)),
            ),
            _ => solver,
        })
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
        message: e.map_time(|x| x.to_f64().unwrap_or(f64::NAN)),
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
