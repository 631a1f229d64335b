//! Which `cnf-ode` solver integrates the flow, and with what settings.
use cnf_field::Real;
use cnf_ode::{
    Dopri5, ErrorNorm, Method, OdeError, PiParams, RkMethod, SampleLayout, Solver, SolverSpec,
    Stats, Steps, Tableau, Tolerance,
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

/// The step-size controller of a flow's adaptive solves.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StepControl {
    /// The default. Solves that only move points (`sample`, `transform`, `trajectory`) use the
    /// tableau's controller without PI memory ([`PiParams::integral`]; for Dopri5
    /// [`PiParams::DOPRI5_I`], the I controller diffrax defaults to); solves that carry
    /// log-density or penalty columns (`log_density`, training) use the tableau's own
    /// controller (Hairer's PI controller for Dopri5).
    ///
    /// Why (issue 15, `examples/sample_steps.rs`, f32 Dopri5 at 1e-5 on the diffrax model,
    /// 10k points as one state): sampling with the PI controller takes 7 steps (44 NFE; 7-8 on
    /// other draws) where diffrax takes 6; its scaled errors stay at 0.004-0.08, and the PI
    /// memory holds the step growth back. The I controller takes 6 steps (38 NFE) and its
    /// samples are still closer to a 1e-9 reference than diffrax's (max error 1.3e-3 vs
    /// 1.6e-3, RMS 2.3e-5 vs 3.2e-5; same ordering on four draws). It is less accurate than the
    /// PI controller at the same tolerance (max 2.1e-4), but not less efficient: NFE against
    /// error, both controllers lie on one curve (PI at 3e-6 ~ I at 1e-5 and vice versa). For
    /// log-densities the I controller is worse: at 1e-5 it is rejected 3 times (56 NFE against
    /// 44), so those solves keep the PI controller. The initial step is not the cause: ours is
    /// Hairer's (0.0149 here); diffrax 0.7.2 starts every solve at 0.01 (`diffeqsolve` wraps
    /// the term in a `WrapTerm`, and its Hairer-style selection returns 0.01 for any term that
    /// is not an `ODETerm`).
    #[default]
    Auto,
    /// The tableau's controller ([`Tableau::controller`]) for every solve.
    Tableau,
    /// These parameters for every solve.
    Params(PiParams),
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
    /// The step-size controller (adaptive steps only).
    pub control: StepControl,
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
            control: StepControl::default(),
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
            control: StepControl::default(),
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
    /// The same integrator with another step-size control.
    pub fn with_control(self, control: StepControl) -> Self {
        Self { control, ..self }
    }
    /// The same integrator with other tolerances.
    pub fn with_tolerances(self, rtol: T, atol: T) -> Self {
        Self { rtol, atol, ..self }
    }
    /// The validated [`SolverSpec`] this describes (for solves with log-density columns: the
    /// controller of [`StepControl::Auto`] is the tableau's): every check (steps at least 1,
    /// an error estimate for adaptive steps, positive finite tolerances, the controller's
    /// ranges) is the spec's. `Invalid` names the field ("rtol must be positive and finite,
    /// got -1").
    pub fn spec(&self) -> Result<SolverSpec<T>, FlowError> {
        self.spec_for(1)
    }
    /// The controller of a solve that carries `columns` per-point columns beside the points
    /// (0: the points only, as in sampling).
    pub fn controller_for(&self, columns: usize) -> PiParams {
        let tableau = self.tableau.controller;
        match self.control {
            StepControl::Auto if columns == 0 => tableau.integral(),
            StepControl::Auto | StepControl::Tableau => tableau,
            StepControl::Params(p) => p,
        }
    }
    fn spec_for(&self, columns: usize) -> Result<SolverSpec<T>, FlowError> {
        let method = Method::from_tableau(self.tableau).ok_or_else(|| {
            FlowError::Invalid(format!(
                "{} is not one of cnf-ode's methods",
                self.tableau.name
            ))
        })?;
        let b = SolverSpec::builder(method)
            .max_steps(self.max_steps.max(1))
            .controller(self.controller_for(columns));
        let b = match self.steps {
            Some(n) => b.fixed_steps(n),
            None => b.rtol(self.rtol).atol(self.atol),
        };
        b.build().map_err(|e| FlowError::Invalid(e.to_string()))
    }
    /// The integrator of a spec with scalar tolerances (or fixed steps). A spec with the
    /// tableau's controller gives [`StepControl::Auto`], any other controller
    /// [`StepControl::Params`].
    pub fn from_spec(spec: &SolverSpec<T>) -> Result<Self, FlowError> {
        let tableau = spec.method().tableau();
        let control = if spec.controller() == tableau.controller {
            StepControl::Auto
        } else {
            StepControl::Params(spec.controller())
        };
        Ok(match spec.steps() {
            Steps::Fixed(n) => Self {
                tableau,
                steps: Some(*n),
                rtol: T::zero(),
                atol: T::zero(),
                max_steps: spec.max_steps(),
                norm: BatchNorm::default(),
                control,
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
                control,
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
    /// several points, each point's components form one group of the error norm. The
    /// controller is [`Integrator::controller_for`]`(columns)`.
    pub fn batch_solver(
        &self,
        points: usize,
        dim: usize,
        columns: usize,
    ) -> Result<Solver<Method, T>, FlowError> {
        let solver = self.spec_for(columns)?.solver();
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
