//! What a solve returns.
use std::fmt;

use num_traits::Float;

use crate::event::{EventRecord, StopReason};
use crate::state::State;
use crate::stepper::Interpolant;
use crate::util::cast;

/// Work done by a solve, under scipy's and CVODE's names. The work of several solves adds up
/// with `+` and `+=`:
///
/// ```
/// use cnf_ode::Stats;
/// let a = Stats { nfe: 20, accepted: 3, rejected: 1, ..Stats::default() };
/// let mut total = a + a;
/// total += Stats { nfe: 1, ..Stats::default() };
/// assert_eq!(total, Stats { nfe: 41, accepted: 6, rejected: 2, ..Stats::default() });
/// ```
///
/// Explicit methods leave the linear-algebra counters at zero. Right-hand-side evaluations
/// spent on finite-difference Jacobians count in `nfe` too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Right-hand-side evaluations (including the initial-step estimate, dense-output stages and
    /// finite-difference Jacobians).
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps (error too large, or a failed attempt: singular iteration matrix,
    /// non-finite stage).
    pub rejected: usize,
    /// Jacobian evaluations (scipy's `njev`), by any means: user-supplied, finite differences or
    /// dual numbers.
    pub jacobians: usize,
    /// LU factorisations of an iteration matrix (scipy's `nlu`; Radau: 2 per iteration matrix,
    /// its real and its complex LU, as scipy counts them).
    pub factorisations: usize,
    /// Linear solves with a factorised matrix (one right-hand side each).
    pub linear_solves: usize,
    /// Newton iterations of implicit steps (scipy's and CVODE's `nniters`; BDF: one linear
    /// solve and one evaluation each; Radau: a real and a complex solve and 3 evaluations).
    pub newton_iterations: usize,
    /// Newton iterations that did not converge (CVODE's `nncfails`); each is retried with a
    /// fresh Jacobian or a smaller step.
    pub newton_failures: usize,
}

impl std::ops::Add for Stats {
    type Output = Stats;
    fn add(self, other: Stats) -> Stats {
        Stats {
            nfe: self.nfe + other.nfe,
            accepted: self.accepted + other.accepted,
            rejected: self.rejected + other.rejected,
            jacobians: self.jacobians + other.jacobians,
            factorisations: self.factorisations + other.factorisations,
            linear_solves: self.linear_solves + other.linear_solves,
            newton_iterations: self.newton_iterations + other.newton_iterations,
            newton_failures: self.newton_failures + other.newton_failures,
        }
    }
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, other: Stats) {
        *self = *self + other;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nfe {}, accepted {}, rejected {}",
            self.nfe, self.accepted, self.rejected
        )?;
        // Explicit solves print as they always did.
        if self.jacobians + self.factorisations + self.linear_solves > 0 {
            write!(
                f,
                ", jacobians {}, LU {}, solves {}",
                self.jacobians, self.factorisations, self.linear_solves
            )?;
        }
        if self.newton_iterations + self.newton_failures > 0 {
            write!(
                f,
                ", newton {} (failed {})",
                self.newton_iterations, self.newton_failures
            )?;
        }
        Ok(())
    }
}

/// The result of a solve: the exact final state at `t_end` (or where a terminal event or an
/// observer stopped the solve), the states at the requested output times, the located events,
/// and statistics.
#[derive(Debug, Clone)]
pub struct Solution<T, S> {
    /// Final time: exactly the requested `t_end`, or the time of a terminal event or of the step
    /// after which an observer stopped the solve ([`Solution::stop`]).
    pub t: T,
    /// State at `t` (after the action of a terminal event, if it has one).
    pub y: S,
    /// The output times reached, in the order given (all requested ones unless the solve
    /// stopped early).
    pub t_out: Vec<T>,
    /// States at `t_out`.
    pub y_out: Vec<S>,
    /// Work done.
    pub stats: Stats,
    /// Every step's continuous extension, when recorded ([`crate::Solver::dense`]).
    pub dense: Option<DenseSolution<T, S>>,
    /// The located events in time order (empty for a solve without events:
    /// [`crate::Solver::solve_with_events`]).
    pub events: Vec<EventRecord<T, S>>,
    /// Why the solve ended.
    pub stop: StopReason,
}

/// The continuous extension of every accepted step of a solve, recorded with
/// [`crate::Solver::dense`]`(true)`: query the solution anywhere in the span afterwards with
/// [`Solution::interpolate`].
///
/// Memory: per accepted step, the state at its start and the method's dense-output vectors
/// (`Tableau::dense_stages()`: 7 states for Dopri5 and Tsit5, 4 for BS3, 16 for DOP853, 1-4
/// for the fixed-step methods; 4 for Rodas5P, 2 for Rosenbrock23), plus the final state.
/// DOP853 evaluates its 3 extra dense stages on every step (3 more evaluations per step); the
/// other methods evaluate nothing more.
#[derive(Debug, Clone)]
pub struct DenseSolution<T, S> {
    interp: Interpolant,
    /// Start time of each step, then the final time.
    t: Vec<T>,
    /// Step size of each step (signed): the interpolant's h, longer than the step when an event
    /// ended it early.
    h: Vec<T>,
    /// State at the start of each step, then the final state.
    y: Vec<S>,
    /// `interp.vectors` vectors per step, step after step.
    k: Vec<S>,
    /// Steps at whose end an event's action changed the state: (step, state at its end before
    /// the action); `y` holds the state after it, where the next step starts.
    jumps: Vec<(usize, S)>,
}

impl<T: Float, S: State<T>> DenseSolution<T, S> {
    pub(crate) fn new(interp: Interpolant, t0: T, y0: &S) -> Self {
        Self {
            interp,
            t: vec![t0],
            h: Vec::new(),
            y: vec![y0.clone()],
            k: Vec::new(),
            jumps: Vec::new(),
        }
    }

    /// An event's action changed the state at the end of the last recorded step to `y`.
    pub(crate) fn jump(&mut self, y: &S) {
        if let (Some(step), Some(last)) = (self.h.len().checked_sub(1), self.y.last_mut()) {
            let before = std::mem::replace(last, y.clone());
            self.jumps.push((step, before));
        }
    }

    /// Records an accepted step from the last recorded end to `t_new` of size `h` (its dense
    /// vectors are `k`), ending at `y_new`.
    pub(crate) fn push(&mut self, h: T, t_new: T, k: &[S], y_new: &S) {
        self.h.push(h);
        self.t.push(t_new);
        self.k.extend_from_slice(&k[..self.interp.vectors]);
        self.y.push(y_new.clone());
    }

    /// Number of recorded steps.
    pub fn steps(&self) -> usize {
        self.h.len()
    }

    /// The state at `t` (None outside the span): the state itself at the start of the span and
    /// at every step end, else the continuous extension of the step containing `t`, evaluated
    /// exactly as for output times. At an event whose action changed the state, the state
    /// before the action (as the event's record and output times have it); after it, the
    /// solution from the changed state.
    pub fn interpolate(&self, t: T) -> Option<S> {
        let (t0, t1) = (self.t[0], *self.t.last()?);
        let dir = if t1 >= t0 { T::one() } else { -T::one() };
        if !t.is_finite() || (t - t0) * dir < T::zero() || (t - t1) * dir > T::zero() {
            return None;
        }
        if t == t0 {
            return Some(self.y[0].clone());
        }
        // The first step whose end is at or beyond t (as output times are served).
        let i = self.t[1..].partition_point(|&te| (t - te) * dir > T::zero());
        let (ts, h, t_end) = (self.t[i], *self.h.get(i)?, self.t[i + 1]);
        if t == t_end {
            if let Ok(j) = self.jumps.binary_search_by_key(&i, |(step, _)| *step) {
                return Some(self.jumps[j].1.clone());
            }
            return Some(self.y[i + 1].clone());
        }
        let y = &self.y[i];
        let n = self.interp.vectors;
        let mut w = vec![0.0; n];
        (self.interp.weights)(((t - ts) / h).to_f64().unwrap_or(f64::NAN), &mut w);
        let mut out = y.clone();
        let out_s = out.as_mut_slice();
        for (wj, kj) in w.iter().zip(&self.k[i * n..(i + 1) * n]) {
            if *wj != 0.0 {
                let f = if self.interp.times_h {
                    h * cast::<T>(*wj)
                } else {
                    cast::<T>(*wj)
                };
                for (o, &kv) in out_s.iter_mut().zip(kj.as_slice()) {
                    *o = *o + f * kv;
                }
            }
        }
        Some(out)
    }
}

impl<T: Float, S: State<T>> Solution<T, S> {
    /// The state at any `t` of the span, from the method's own continuous extension. Needs
    /// [`crate::Solver::dense`]`(true)`; None without it, or for `t` outside the span. At an
    /// output time it returns exactly the state in `y_out` (the same formula).
    pub fn interpolate(&self, t: T) -> Option<S> {
        self.dense.as_ref()?.interpolate(t)
    }
}
