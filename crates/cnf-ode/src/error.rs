//! Typed solver errors. Errors raised during integration keep the statistics gathered so far.
use thiserror::Error;

use crate::solution::Stats;

/// Why a solve failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OdeError<T> {
    /// The state or its derivative became NaN or infinite.
    #[error("non-finite state or derivative at t = {t:?} ({stats})")]
    NonFinite { t: T, stats: Stats },
    /// The controller asked for a step smaller than the minimum step.
    #[error("step size {h:?} below the minimum at t = {t:?} ({stats})")]
    StepSizeTooSmall { t: T, h: T, stats: Stats },
    /// More than `max_steps` steps were needed.
    #[error("maximum number of steps ({max_steps}) exceeded at t = {t:?} ({stats})")]
    MaxStepsExceeded {
        t: T,
        max_steps: usize,
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
    DimensionMismatch { expected: usize, found: usize },
    /// Invalid solver settings (zero steps, non-positive step bounds...).
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl<T> OdeError<T> {
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
