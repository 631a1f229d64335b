//! Typed solver errors. Errors raised during integration keep the statistics gathered so far.
use num_traits::Float;
use thiserror::Error;

use crate::options::Tolerance;
use crate::solution::Stats;

/// Why a solve failed, or why its settings were refused.
///
/// Times and step sizes are f64 whatever the solve's precision, so an error of an f32 solve and
/// one of an f64 solve have the same type. `NonFinite`, `StepSizeTooSmall`, `MaxStepsExceeded`,
/// `SingularMatrix` and `NewtonFailure` are failures of an integration and carry its [`Stats`]
/// ([`OdeError::stats`]); the others are refusals of the inputs, raised before any evaluation.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum OdeError {
    /// The state or its derivative became NaN or infinite.
    #[error("non-finite state or derivative at t = {t:?} ({stats})")]
    NonFinite {
        /// Start of the step where it happened.
        t: f64,
        /// Work done until then.
        stats: Stats,
    },
    /// The controller asked for a step smaller than the minimum step.
    #[error("step size {h:?} below the minimum at t = {t:?} ({stats})")]
    StepSizeTooSmall {
        /// Time reached.
        t: f64,
        /// The step size asked for (signed).
        h: f64,
        /// Work done until then.
        stats: Stats,
    },
    /// More than `max_steps` steps were needed.
    #[error("maximum number of steps ({max_steps}) exceeded at t = {t:?} ({stats})")]
    MaxStepsExceeded {
        /// Time reached.
        t: f64,
        /// The budget.
        max_steps: usize,
        /// Work done until then.
        stats: Stats,
    },
    /// The iteration matrix of an implicit method (I - h gamma J) was singular to working
    /// precision for every step size down to the smallest one.
    #[error("singular iteration matrix at t = {t:?} (step {h:?}) ({stats})")]
    SingularMatrix {
        /// Time reached.
        t: f64,
        /// The last step size tried (signed).
        h: f64,
        /// Work done until then.
        stats: Stats,
    },
    /// The Newton iteration of an implicit step (BDF) did not converge, with a Jacobian
    /// evaluated for the step, at every step size down to the smallest one.
    #[error("Newton iteration failed to converge at t = {t:?} (step {h:?}) ({stats})")]
    NewtonFailure {
        /// Time reached.
        t: f64,
        /// The last step size tried (signed).
        h: f64,
        /// Work done until then.
        stats: Stats,
    },
    /// A tolerance is not positive and finite: "rtol must be positive and finite, got -1".
    #[error("{field} must be positive and finite, got {value}")]
    InvalidTolerance {
        /// The tolerance (`"rtol"`, `"atol[2]"`, `"Backsolve.tolerances.rtol"`).
        field: String,
        /// The value given.
        value: f64,
    },
    /// The start or the end of the time span is NaN or infinite.
    #[error("invalid time span: t0 and t1 must be finite, got [{t0}, {t1}]")]
    InvalidSpan {
        /// The start given.
        t0: f64,
        /// The end given.
        t1: f64,
    },
    /// An output time is NaN, infinite or outside the span `[t0, t1]`.
    #[error("invalid time span: output time {t} outside [{t0}, {t1}]")]
    OutputTimeOutsideSpan {
        /// The output time.
        t: f64,
        /// Start of the span.
        t0: f64,
        /// End of the span.
        t1: f64,
    },
    /// The output times are not in the order of integration (increasing for `t1 > t0`).
    #[error("invalid time span: output times must be in integration order ({t} after {previous})")]
    OutputTimesOutOfOrder {
        /// The output time out of order.
        t: f64,
        /// The output time before it.
        previous: f64,
    },
    /// The initial state has no components.
    #[error("the initial state has no components")]
    EmptyState,
    /// A state, tolerance vector or output has the wrong number of components.
    #[error("dimension mismatch: expected {expected}, found {found}")]
    DimensionMismatch {
        /// Components expected.
        expected: usize,
        /// Components given.
        found: usize,
    },
    /// A setting (of a [`crate::SolverSpec`], a [`crate::Solver`], a controller or a
    /// [`crate::Differentiation`]) is out of its range. The message names the field: "steps
    /// must be at least 1, got 0".
    #[error("{field} must be {requirement}, got {value}")]
    InvalidSetting {
        /// The field (`"steps"`, `"max_step"`, `"controller.fac_max"`, `"Checkpointed.every"`).
        field: String,
        /// What it must be (`"at least 1"`).
        requirement: &'static str,
        /// The value given.
        value: f64,
    },
    /// The components of the error norm ([`crate::Solver::error_components`]) are empty or
    /// reach past the state.
    #[error("error_components {start}..{end} must be a non-empty range inside 0..{len}")]
    InvalidErrorComponents {
        /// Start of the range given.
        start: usize,
        /// End of the range given.
        end: usize,
        /// Components of the state.
        len: usize,
    },
    /// A per-sample error norm's block straddles the error norm's components (they must start
    /// and end at block boundaries of the [`crate::SampleLayout`]).
    #[error(
        "a per-sample error norm needs error_components {start}..{end} to start and end at \
         block boundaries of its layout (block {block_start}..{block_end} straddles it)"
    )]
    ErrorComponentsSplitBlock {
        /// Start of the error norm's components.
        start: usize,
        /// End of the error norm's components.
        end: usize,
        /// Start of the block that straddles a boundary.
        block_start: usize,
        /// End of that block.
        block_end: usize,
    },
    /// Adaptive steps were asked of a method without an error estimate (Euler, RK4...).
    #[error("{method} has no error estimate, so it needs a fixed number of steps")]
    NotAdaptive {
        /// The method's name.
        method: &'static str,
    },
    /// The local-error penalty was asked of a method without exactly one embedded pair
    /// (DOP853, the fixed-step methods).
    #[error("the local-error penalty needs a method with one embedded pair; {method} has none")]
    NoEmbeddedPair {
        /// The method's name.
        method: &'static str,
    },
    /// Reverse-mode differentiation through the steps ([`crate::Differentiation::Discretise`],
    /// [`crate::Differentiation::Checkpointed`]) was asked of an implicit method.
    #[error(
        "reverse mode through the steps (Discretise, Checkpointed) needs an explicit method; \
         {method} is implicit: differentiate it with Backsolve"
    )]
    NotExplicit {
        /// The method's name.
        method: &'static str,
    },
    /// An event function returned NaN or an infinite value.
    #[error("event function {index} is not finite at t = {t:?} ({stats})")]
    EventNonFinite {
        /// The event's index among those given to the solve.
        index: usize,
        /// Where it was evaluated.
        t: f64,
        /// Work done until then.
        stats: Stats,
    },
    /// An event's action changed the number of components of the state.
    #[error("the action of event {index} changed the state's size from {expected} to {found} at t = {t:?}")]
    EventStateSize {
        /// The event's index among those given to the solve.
        index: usize,
        /// The event time.
        t: f64,
        /// Components before the action.
        expected: usize,
        /// Components after it.
        found: usize,
    },
    /// A combination of valid settings that the gradient of a solve does not support (the
    /// message says which and what to do instead).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl OdeError {
    /// Statistics of the failed integration, where it had started.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Self::NonFinite { stats, .. }
            | Self::StepSizeTooSmall { stats, .. }
            | Self::MaxStepsExceeded { stats, .. }
            | Self::SingularMatrix { stats, .. }
            | Self::NewtonFailure { stats, .. }
            | Self::EventNonFinite { stats, .. } => Some(stats),
            _ => None,
        }
    }
}

/// A time or step size of the working precision as the f64 an error reports.
pub(crate) fn num<T: Float>(x: T) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// The one rule for tolerances, on every path ([`crate::Solver`], [`crate::SolverSpec`], the
/// backward solve of [`crate::Differentiation::Backsolve`]): each value positive and finite, and
/// a per-component tolerance not empty. `name` names the field in the error.
pub(crate) fn check_tolerance<T: Float>(name: &str, tol: &Tolerance<T>) -> Result<(), OdeError> {
    let bad = |field: String, v: T| OdeError::InvalidTolerance {
        field,
        value: num(v),
    };
    let ok = |v: T| v.is_finite() && v > T::zero();
    match tol {
        Tolerance::Scalar(v) if !ok(*v) => Err(bad(name.into(), *v)),
        Tolerance::Scalar(_) => Ok(()),
        Tolerance::PerComponent(vs) if vs.is_empty() => Err(OdeError::InvalidSetting {
            field: name.into(),
            requirement: "a scalar or one value per component",
            value: 0.0,
        }),
        Tolerance::PerComponent(vs) => match vs.iter().position(|&v| !ok(v)) {
            Some(i) => Err(bad(format!("{name}[{i}]"), vs[i])),
            None => Ok(()),
        },
    }
}
