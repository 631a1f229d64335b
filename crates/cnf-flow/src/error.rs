//! Flow errors: each names what failed and where.
use cnf_ode::{OdeError, Stats};
use thiserror::Error;

/// Why a flow computation failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FlowError {
    /// The flow's solver is an implicit (stiff) method: over a batch the augmented system's
    /// Jacobian is block-diagonal but the stiff methods factorise it densely, and a CNF's field
    /// is not stiff; the explicit methods are the ones for flows.
    #[error(
        "{method} is an implicit (stiff) method; a flow's solves use an explicit one \
         (dopri5, tsit5, bs3, dop853, or a fixed-step method)"
    )]
    ImplicitMethod {
        /// The method asked for.
        method: cnf_ode::Method,
    },
    /// The input is not a whole number of points of the field's dimension.
    #[error("input has {len} values, not a multiple of the dimension {dim}")]
    Shape {
        /// Length of the flat row-major buffer given.
        len: usize,
        /// The field's dimension `d` (a zero dimension is also an error).
        dim: usize,
    },
    /// An input value is NaN or infinite.
    #[error("sample {sample} has a non-finite coordinate")]
    NonFiniteInput {
        /// 0-based index of the first point with a NaN or infinite coordinate.
        sample: usize,
    },
    /// The context is not one row of the field's context width per point (or per context row,
    /// when sampling).
    #[error(
        "the context has {len} values, not {} of the model's context width {width}",
        rows.map_or_else(|| "whole rows".to_string(), |r| format!("{r} rows"))
    )]
    ContextShape {
        /// Length of the flat row-major context given.
        len: usize,
        /// Rows expected: one per point, or `None` when sampling (any whole number of rows).
        rows: Option<usize>,
        /// The field's context width `k`.
        width: usize,
    },
    /// A context value is NaN or infinite.
    #[error("context row {row} has a non-finite value")]
    NonFiniteContext {
        /// 0-based index of the first context row with a NaN or infinite value.
        row: usize,
    },
    /// A finite input gave a non-finite result in the flow's precision (e.g. a point so far
    /// out that log N(z) underflows to -inf in f32).
    #[error(
        "the {quantity} of row {} (counting from 1) is not finite in {precision} (the point is \
         too far out for this precision; try f64)", sample + 1
    )]
    NonFiniteOutput {
        /// The first such sample.
        sample: usize,
        /// What overflowed ("log-density", "transported point").
        quantity: &'static str,
        /// The flow's floating-point type.
        precision: &'static str,
    },
    /// The ODE solve failed (non-finite values, too many steps, step-size underflow). The
    /// solver's error is kept as the [`std::error::Error::source`] (`message`), in f64.
    #[error("solve failed{} at t = {t}: {message}", sample.map(|s| format!(" for sample {s}")).unwrap_or_default())]
    Solve {
        /// The first sample that fails on its own, when it could be found.
        sample: Option<usize>,
        /// Time at which the solve failed.
        t: f64,
        /// The solver's error: the cause (named `message` for compatibility with the callers
        /// that move it from one `Solve` into another).
        #[source]
        message: Box<OdeError>,
        /// Work done before the failure.
        stats: Stats,
    },
    /// Invalid settings (tolerances, steps, probes).
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// The computation would need more memory than the field allows (checked before anything
    /// is allocated; the message names the figure), e.g. the exact trace of a very wide input.
    #[error("{0}")]
    TooLarge(String),
}

/// Turns a solver error into a flow error (the sample is filled in by the caller if known).
/// Errors of the settings (tolerances, span, options) are not failures of a solve.
pub(crate) fn solve_error(e: OdeError) -> FlowError {
    let t = match &e {
        OdeError::NonFinite { t, .. }
        | OdeError::StepSizeTooSmall { t, .. }
        | OdeError::MaxStepsExceeded { t, .. } => *t,
        _ => return FlowError::Invalid(e.to_string()),
    };
    FlowError::Solve {
        sample: None,
        t,
        stats: e.stats().copied().unwrap_or_default(),
        message: Box::new(e),
    }
}
