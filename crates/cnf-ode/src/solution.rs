//! What a solve returns.
use std::fmt;

/// Work done by a solve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Right-hand-side evaluations (including the initial-step estimate and dense-output stages).
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nfe {}, accepted {}, rejected {}",
            self.nfe, self.accepted, self.rejected
        )
    }
}

/// The result of a solve: the exact final state at `t_end`, the states at the requested output
/// times, and statistics.
#[derive(Debug, Clone)]
pub struct Solution<T, S> {
    /// Final time (exactly the requested `t_end`).
    pub t: T,
    /// State at `t`.
    pub y: S,
    /// Requested output times, in the order given.
    pub t_out: Vec<T>,
    /// States at `t_out`.
    pub y_out: Vec<S>,
    /// Work done.
    pub stats: Stats,
}
