//! What a solve returns.
use std::fmt;

use num_traits::Float;

use crate::state::State;
use crate::tableau::Tableau;
use crate::util::cast;

/// Work done by a solve. The work of several solves adds up with `+` and `+=`:
///
/// ```
/// use cnf_ode::Stats;
/// let a = Stats { nfe: 20, accepted: 3, rejected: 1 };
/// let mut total = a + a;
/// total += Stats { nfe: 1, ..Stats::default() };
/// assert_eq!(total, Stats { nfe: 41, accepted: 6, rejected: 2 });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Right-hand-side evaluations (including the initial-step estimate and dense-output stages).
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

impl std::ops::Add for Stats {
    type Output = Stats;
    fn add(self, other: Stats) -> Stats {
        Stats {
            nfe: self.nfe + other.nfe,
            accepted: self.accepted + other.accepted,
            rejected: self.rejected + other.rejected,
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
    /// Every step's continuous extension, when recorded ([`crate::Solver::dense`]).
    pub dense: Option<DenseSolution<T, S>>,
}

/// The continuous extension of every accepted step of a solve, recorded with
/// [`crate::Solver::dense`]`(true)`: query the solution anywhere in the span afterwards with
/// [`Solution::interpolate`].
///
/// Memory: per accepted step, the state at its start and the method's dense-output stages
/// (`Tableau::dense_stages()`: 7 states for Dopri5 and Tsit5, 4 for BS3, 16 for DOP853, 1-4
/// for the fixed-step methods), plus the final state. DOP853 evaluates its 3 extra dense stages
/// on every step (3 more evaluations per step); the other methods evaluate nothing more.
#[derive(Debug, Clone)]
pub struct DenseSolution<T, S> {
    tab: &'static Tableau,
    /// Start time of each step, then the final time.
    t: Vec<T>,
    /// Step size of each step (signed).
    h: Vec<T>,
    /// State at the start of each step, then the final state.
    y: Vec<S>,
    /// `tab.dense_stages()` stage derivatives per step, step after step.
    k: Vec<S>,
}

impl<T: Float, S: State<T>> DenseSolution<T, S> {
    pub(crate) fn new(tab: &'static Tableau, t0: T, y0: &S) -> Self {
        Self {
            tab,
            t: vec![t0],
            h: Vec::new(),
            y: vec![y0.clone()],
            k: Vec::new(),
        }
    }

    /// Records an accepted step from the last recorded end to `t_new` of size `h` (its dense
    /// stages are `k`), ending at `y_new`.
    pub(crate) fn push(&mut self, h: T, t_new: T, k: &[S], y_new: &S) {
        self.h.push(h);
        self.t.push(t_new);
        self.k.extend_from_slice(&k[..self.tab.dense_stages()]);
        self.y.push(y_new.clone());
    }

    /// Number of recorded steps.
    pub fn steps(&self) -> usize {
        self.h.len()
    }

    /// The state at `t` (None outside the span): the state itself at the start of the span and
    /// at every step end, else the continuous extension of the step containing `t`, evaluated
    /// exactly as for output times.
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
            return Some(self.y[i + 1].clone());
        }
        let y = &self.y[i];
        let n = self.tab.dense_stages();
        let mut w = vec![0.0; n];
        (self.tab.dense.weights)(((t - ts) / h).to_f64().unwrap_or(f64::NAN), &mut w);
        let mut out = y.clone();
        let out_s = out.as_mut_slice();
        for (wj, kj) in w.iter().zip(&self.k[i * n..(i + 1) * n]) {
            if *wj != 0.0 {
                let f = h * cast::<T>(*wj);
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
