//! Observers: called after every accepted step (progress, recording, events).
use crate::solution::Stats;

/// An accepted step from `t_prev` to `t`. When an event with an action or a terminal count
/// ends the step early ([`crate::Event`]), `t` is the event time and `y` the state there (before
/// the action); `stages` stay those of the whole attempted step.
#[derive(Debug)]
pub struct AcceptedStep<'a, T, S> {
    /// Start of the step.
    pub t_prev: T,
    /// End of the step.
    pub t: T,
    /// State at `t_prev`.
    pub y_prev: &'a S,
    /// State at `t`.
    pub y: &'a S,
    /// The method's stage derivatives k_i of this step (main stages only): with `y_prev` and the
    /// tableau they reproduce the step exactly, which reverse-mode differentiation through the
    /// solver needs.
    pub stages: &'a [S],
    /// Work done so far.
    pub stats: Stats,
}

/// Receives every accepted step.
pub trait Observer<T, S> {
    /// Called after each accepted step.
    fn on_step(&mut self, step: &AcceptedStep<'_, T, S>);
    /// Asked after each `on_step`: true ends the solve at that step, with
    /// [`crate::StopReason::Observer`] (default: never).
    fn stop(&self) -> bool {
        false
    }
}

/// No observer.
impl<T, S> Observer<T, S> for () {
    fn on_step(&mut self, _: &AcceptedStep<'_, T, S>) {}
}

impl<T, S, F: FnMut(&AcceptedStep<'_, T, S>)> Observer<T, S> for F {
    fn on_step(&mut self, step: &AcceptedStep<'_, T, S>) {
        self(step)
    }
}
