//! Typed solver errors. Errors raised during integration keep the statistics gathered so far.
use thiserror::Error;

use crate::solution::Stats;

/// Why a solve failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OdeError<T> {
    /// The state or its derivative became NaN or infinite.
    #[error("non-finite state or derivative at t = {t:?} ({stats})")]
    NonFinite {
        /// Start of the step where it happened.
        t: T,
        /// Work done until then.
        stats: Stats,
    },
    /// The controller asked for a step smaller than the minimum step.
    #[error("step size {h:?} below the minimum at t = {t:?} ({stats})")]
    StepSizeTooSmall {
        /// Time reached.
        t: T,
        /// The step size asked for (signed).
        h: T,
        /// Work done until then.
        stats: Stats,
    },
    /// More than `max_steps` steps were needed.
    #[error("maximum number of steps ({max_steps}) exceeded at t = {t:?} ({stats})")]
    MaxStepsExceeded {
        /// Time reached.
        t: T,
        /// The budget.
        max_steps: usize,
        /// Work done until then.
        stats: Stats,
    },
    /// A tolerance is negative, non-finite, or both tolerances are zero somewhere.
    #[error("invalid tolerance: {0}")]
    InvalidTolerance(String),
    /// The time span or an output time is invalid (non-finite, empty, or outside the span).
    #[error("invalid time span: {0}")]
    InvalidSpan(String),
    /// A state, tolerance vector or output has the wrong number of components.
    #[error("dimension mismatch: expected {expected}, found {found}")]
    DimensionMismatch {
        /// Components expected.
        expected: usize,
        /// Components given.
        found: usize,
    },
    /// Invalid solver settings (zero steps, non-positive step bounds...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A setting of a [`crate::SolverSpec`] (or of a controller) is out of its range. The
    /// message names the field: "rtol must be positive and finite, got -1".
    #[error("{field} must be {requirement}, got {value}")]
    InvalidSetting {
        /// The field (`"rtol"`, `"atol[2]"`, `"steps"`, `"controller.fac_max"`).
        field: String,
        /// What it must be (`"positive and finite"`).
        requirement: &'static str,
        /// The value given.
        value: f64,
    },
    /// Adaptive steps were asked of a method without an error estimate (Euler, RK4...).
    #[error("{method} has no error estimate, so it needs a fixed number of steps")]
    NotAdaptive {
        /// The method's name.
        method: &'static str,
    },
}

impl<T> OdeError<T> {
    /// The same error with its times and step sizes converted by `f` (e.g. to f64, so that an
    /// error of an f32 solve can be the `source` of a non-generic error type).
    pub fn map_time<U>(self, f: impl Fn(T) -> U) -> OdeError<U> {
        match self {
            Self::NonFinite { t, stats } => OdeError::NonFinite { t: f(t), stats },
            Self::StepSizeTooSmall { t, h, stats } => OdeError::StepSizeTooSmall {
                t: f(t),
                h: f(h),
                stats,
            },
            Self::MaxStepsExceeded {
                t,
                max_steps,
                stats,
            } => OdeError::MaxStepsExceeded {
                t: f(t),
                max_steps,
                stats,
            },
            Self::InvalidTolerance(m) => OdeError::InvalidTolerance(m),
            Self::InvalidSpan(m) => OdeError::InvalidSpan(m),
            Self::DimensionMismatch { expected, found } => {
                OdeError::DimensionMismatch { expected, found }
            }
            Self::InvalidOption(m) => OdeError::InvalidOption(m),
            Self::InvalidSetting {
                field,
                requirement,
                value,
            } => OdeError::InvalidSetting {
                field,
                requirement,
                value,
            },
            Self::NotAdaptive { method } => OdeError::NotAdaptive { method },
        }
    }
    /// Statistics of the failed integration, where it had started.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Self::NonFinite { stats, .. }
            | Self::StepSizeTooSmall { stats, .. }
            | Self::MaxStepsExceeded { stats, .. } => Some(stats),
            _ => None,
        }
    }
}
