//! Events: zeros of functions g(t, y) located on the continuous extension of each accepted step.
//!
//! Each accepted step is checked at [`SIGN_CHECKS`] points (its end and equally spaced interior
//! points), so that several crossings in one step are found as long as they fall between
//! different check points. A bracketed crossing is located by the Illinois (modified secant)
//! iteration of CVODE's root finder to a few ulps of t; every function that crosses within
//! that bracket is reported at the same time. A value of exactly zero counts as the new side
//! when it is reached (a root exactly at a step end is reported once, in the step that ends
//! there) and not as a crossing when it is left (so a root exactly at t0 is no event). The
//! method works only through the stepper's interpolant, so it serves every method alike.
use std::fmt;

use num_traits::Float;

use crate::error::{num, OdeError};
use crate::solution::Stats;
use crate::state::State;
use crate::util::cast;

/// Points at which each accepted step is checked for a sign change: the step's end and
/// `SIGN_CHECKS - 1` equally spaced interior points. Two crossings of one function within one
/// eighth of a step cancel out and are not seen.
pub const SIGN_CHECKS: usize = 8;

/// Most Illinois iterations for one root; the bracket has shrunk to the tolerance long before
/// (each pass shrinks it at least tenfold once it is near the tolerance), this only bounds work
/// on a function that is not continuous.
const MAX_ITERATIONS: usize = 200;

/// Which zero crossings of an event function count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// g goes from negative to zero or positive (in the direction of integration).
    Up,
    /// g goes from positive to zero or negative.
    Down,
    /// Both.
    #[default]
    Both,
}

/// An event: a function g(t, y) whose zeros are located during a solve, with the crossings that
/// count ([`Direction`]), an optional terminal count (stop at the n-th crossing) and an optional
/// action that changes the state at the event.
///
/// ```
/// use cnf_ode::{Direction, Dopri5, Event, Solver, StopReason};
/// // y' = 1 from y = 0: y crosses 0.5 going up at t = 0.5; stop there.
/// let events = vec![Event::new(|_t, y: &[f64]| y[0] - 0.5).direction(Direction::Up).terminal(1)];
/// let sol = Solver::new(Dopri5).solve_with_events(|_t, _y, dy| dy[0] = 1.0, 0.0, 2.0, &vec![0.0], events)?;
/// assert_eq!(sol.stop, StopReason::TerminalEvent);
/// assert!((sol.t - 0.5).abs() < 1e-15 && sol.events[0].fired == vec![0]);
/// # Ok::<(), cnf_ode::OdeError>(())
/// ```
pub struct Event<'a, T, S> {
    g: EventFn<'a, T>,
    direction: Direction,
    terminal: Option<usize>,
    action: Option<Action<'a, T, S>>,
}

/// An event function g(t, y).
type EventFn<'a, T> = Box<dyn FnMut(T, &[T]) -> T + 'a>;
/// An event's action on the state.
type Action<'a, T, S> = Box<dyn FnMut(T, &mut S) + 'a>;

impl<T, S> fmt::Debug for Event<'_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("direction", &self.direction)
            .field("terminal", &self.terminal)
            .field("action", &self.action.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, T, S> Event<'a, T, S> {
    /// An event on the zeros of `g(t, y)` (y as a slice): every crossing counts, none stops the
    /// solve, the state is not changed.
    pub fn new(g: impl FnMut(T, &[T]) -> T + 'a) -> Self {
        Self {
            g: Box::new(g),
            direction: Direction::Both,
            terminal: None,
            action: None,
        }
    }
    /// Only crossings in this direction count (are reported, located and counted).
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }
    /// Stop the solve at the `n`-th crossing that counts (n >= 1; 0 is refused when the solve
    /// starts with [`OdeError::InvalidSetting`]).
    pub fn terminal(mut self, n: usize) -> Self {
        self.terminal = Some(n);
        self
    }
    /// Change the state at each crossing: `action(t, y)` receives the state at the event and
    /// may change its values (not its size: [`OdeError::EventStateSize`]). The method then
    /// restarts from the new state: whatever it carried over (the FSAL stage) is discarded and
    /// f is evaluated afresh. An action also runs at a terminal crossing (the solution's final
    /// state is the changed one).
    pub fn action(mut self, action: impl FnMut(T, &mut S) + 'a) -> Self {
        self.action = Some(Box::new(action));
        self
    }
}

/// One located event: the time, the state there (before any action) and the functions that
/// crossed zero at that time.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord<T, S> {
    /// Time of the crossing: the end of the final bracket (within a few ulps of the root of the
    /// continuous extension), where every function in `fired` has reached its new side or zero.
    pub t: T,
    /// The state at `t` from the step's continuous extension, before any action.
    pub y: S,
    /// Indices (into the events given to the solve, ascending) of the functions that crossed.
    pub fired: Vec<usize>,
}

/// Why a solve ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StopReason {
    /// The end of the span was reached.
    #[default]
    End,
    /// An event reached its terminal count (the last [`EventRecord`] says which).
    TerminalEvent,
    /// An observer asked to stop ([`crate::Observer::stop`]).
    Observer,
}

/// What the events of one step asked of the driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut<T> {
    /// Nothing: the step stands as computed.
    None,
    /// An event with an action or a terminal count fired at `t`: the step ends there, with the
    /// state [`Detector::state_at_cut`].
    At {
        /// The event time.
        t: T,
        /// A terminal count was reached.
        terminal: bool,
    },
}

/// The events of one solve and the values of their functions at the current point.
pub(crate) struct Detector<'a, T, S> {
    events: Vec<Event<'a, T, S>>,
    /// Counted crossings per function.
    counts: Vec<usize>,
    /// g at the start of the next step.
    g_left: Vec<T>,
    /// g at the low end, high end and middle of the bracket; g at the current check point.
    lo: Vec<T>,
    hi: Vec<T>,
    mid: Vec<T>,
    top: Vec<T>,
    /// Scratch states: a check point, an iterate, the state at the bracket's high end.
    y_top: S,
    y_mid: S,
    y_root: S,
    /// The method restarted at the current point after an action: the next step's check starts
    /// just past it.
    restarted: bool,
    /// The events located so far.
    pub(crate) records: Vec<EventRecord<T, S>>,
}

/// A crossing from `lo` to `hi` that counts for `direction`: `lo` non-zero (leaving zero is no
/// crossing), on the side the direction leaves, and `hi` zero or of the other sign.
#[inline]
fn crosses<T: Float>(direction: Direction, lo: T, hi: T) -> bool {
    let leaves = match direction {
        Direction::Up => lo < T::zero(),
        Direction::Down => lo > T::zero(),
        Direction::Both => lo != T::zero(),
    };
    leaves && (hi == T::zero() || (lo < T::zero()) != (hi < T::zero()))
}

impl<'a, T: Float, S: State<T>> Detector<'a, T, S> {
    /// Checks the events' settings and evaluates their functions at (t0, y0).
    pub(crate) fn new(events: Vec<Event<'a, T, S>>, t0: T, y0: &S) -> Result<Self, OdeError> {
        if let Some(i) = events.iter().position(|e| e.terminal == Some(0)) {
            return Err(OdeError::InvalidSetting {
                field: format!("events[{i}].terminal"),
                requirement: "at least 1",
                value: 0.0,
            });
        }
        let m = events.len();
        let mut d = Self {
            events,
            counts: vec![0; m],
            g_left: vec![T::zero(); m],
            lo: vec![T::zero(); m],
            hi: vec![T::zero(); m],
            mid: vec![T::zero(); m],
            top: vec![T::zero(); m],
            y_top: y0.clone(),
            y_mid: y0.clone(),
            y_root: y0.clone(),
            restarted: false,
            records: Vec::new(),
        };
        evaluate(&mut d.events, t0, y0, &mut d.g_left, Stats::default())?;
        Ok(d)
    }

    /// The state at the last cut (before any action).
    pub(crate) fn state_at_cut(&self) -> &S {
        &self.y_root
    }

    /// Checks the accepted step of size `h` from t to `t_end` (state `y_end`) for crossings,
    /// records them, and says whether one of them ends the step early. `interp(theta, out)`
    /// writes the continuous extension at t + theta h.
    pub(crate) fn scan(
        &mut self,
        t: T,
        h: T,
        t_end: T,
        y_end: &S,
        mut interp: impl FnMut(T, &mut S),
        stats: Stats,
    ) -> Result<Cut<T>, OdeError> {
        let dir = h.signum();
        let mut t_lo = t;
        if self.restarted {
            // After an action the functions that fired sit at their root (up to the root's
            // tolerance, on either side): start just past it so that leaving it is no event.
            self.restarted = false;
            let delta =
                (cast::<T>(100.0) * T::epsilon() * (t.abs() + h.abs())).min(h.abs() * cast(0.5));
            t_lo = t + delta * dir;
            interp((t_lo - t) / h, &mut self.y_mid);
            evaluate(&mut self.events, t_lo, &self.y_mid, &mut self.g_left, stats)?;
        }
        let nt: T = cast(SIGN_CHECKS as f64);
        for j in 1..=SIGN_CHECKS {
            let t_top = if j == SIGN_CHECKS {
                self.y_top.clone_from(y_end);
                t_end
            } else {
                let theta = cast::<T>(j as f64) / nt;
                interp(theta, &mut self.y_top);
                t + theta * h
            };
            if (t_top - t_lo) * dir <= T::zero() {
                continue;
            }
            evaluate(&mut self.events, t_top, &self.y_top, &mut self.top, stats)?;
            while self.any_crossing(&self.g_left, &self.top) {
                self.lo.copy_from_slice(&self.g_left);
                self.hi.copy_from_slice(&self.top);
                self.y_root.clone_from(&self.y_top);
                let t_root = self.locate(t, h, t_lo, t_top, &mut interp, stats)?;
                // A function whose own root lies within the tolerance past this one crosses at
                // the same root (they differ by rounding): it fires with the others.
                let t_near = t_root + root_tol(t_root) * dir;
                if (t_top - t_near) * dir > T::zero() {
                    interp((t_near - t) / h, &mut self.y_mid);
                    evaluate(&mut self.events, t_near, &self.y_mid, &mut self.mid, stats)?;
                    for (i, e) in self.events.iter().enumerate() {
                        let (lo, hi, near) = (self.lo[i], self.hi[i], self.mid[i]);
                        if !crosses(e.direction, lo, hi) && crosses(e.direction, lo, near) {
                            self.hi[i] = near;
                        }
                    }
                }
                let fired: Vec<usize> = (0..self.events.len())
                    .filter(|&i| crosses(self.events[i].direction, self.lo[i], self.hi[i]))
                    .collect();
                let mut terminal = false;
                let mut action = false;
                for &i in &fired {
                    self.counts[i] += 1;
                    terminal |= self.events[i].terminal == Some(self.counts[i]);
                    action |= self.events[i].action.is_some();
                }
                self.records.push(EventRecord {
                    t: t_root,
                    y: self.y_root.clone(),
                    fired,
                });
                if terminal || action {
                    return Ok(Cut::At {
                        t: t_root,
                        terminal,
                    });
                }
                // Continue from the root: the functions that fired are on their new side or zero.
                t_lo = t_root;
                self.g_left.copy_from_slice(&self.hi);
            }
            t_lo = t_top;
            std::mem::swap(&mut self.g_left, &mut self.top);
        }
        Ok(Cut::None)
    }

    /// Runs the actions of the functions of the last record on `y` at its time `t` and prepares
    /// the next step's check (the method restarts); true when there was an action.
    pub(crate) fn act(&mut self, t: T, y: &mut S) -> Result<bool, OdeError> {
        let n = y.len();
        let last = self.records.len() - 1;
        let mut acted = false;
        for idx in 0..self.records[last].fired.len() {
            let i = self.records[last].fired[idx];
            if let Some(action) = &mut self.events[i].action {
                action(t, y);
                acted = true;
                if y.len() != n {
                    return Err(OdeError::EventStateSize {
                        index: i,
                        t: num(t),
                        expected: n,
                        found: y.len(),
                    });
                }
            }
        }
        self.restarted = acted;
        Ok(acted)
    }

    fn any_crossing(&self, lo: &[T], hi: &[T]) -> bool {
        self.events
            .iter()
            .zip(lo.iter().zip(hi))
            .any(|(e, (&l, &h))| crosses(e.direction, l, h))
    }

    /// The crossing that counts with the largest secant fraction |b / (b - a)| among the
    /// functions that change sign strictly from `a` to `b`, and whether some function that
    /// counts is exactly zero at `b`.
    fn strongest(&self, a: &[T], b: &[T]) -> (Option<usize>, bool) {
        let (mut best, mut frac, mut zero) = (None, T::zero(), false);
        for (i, e) in self.events.iter().enumerate() {
            if !crosses(e.direction, a[i], b[i]) {
                continue;
            }
            if b[i] == T::zero() {
                zero = true;
            } else {
                let f = (b[i] / (b[i] - a[i])).abs();
                if best.is_none() || f > frac {
                    (best, frac) = (Some(i), f);
                }
            }
        }
        (best, zero)
    }

    /// Illinois iteration (CVODE's `cvRootfind`) on the bracket `[t_lo, t_hi]` of the step from
    /// t of size h, with `lo`/`hi` holding g at its ends and `y_root` the state at `t_hi`.
    /// Returns the root: the high end of the final bracket, where `hi` and `y_root` are left.
    fn locate(
        &mut self,
        t: T,
        h: T,
        mut t_lo: T,
        mut t_hi: T,
        interp: &mut impl FnMut(T, &mut S),
        stats: Stats,
    ) -> Result<T, OdeError> {
        let (first, _) = self.strongest(&self.lo, &self.hi);
        // Only zeros at the high end: that is the root.
        let Some(mut imax) = first else {
            return Ok(t_hi);
        };
        let tol = root_tol(t_lo.abs().max(t_hi.abs()));
        let half: T = cast(0.5);
        let (mut alpha, mut side, mut side_prev) = (T::one(), 0u8, 3u8);
        for _ in 0..MAX_ITERATIONS {
            if (t_hi - t_lo).abs() <= tol {
                break;
            }
            // Illinois: halve the weight of an end kept twice in a row, so the iterates
            // converge from both sides.
            alpha = if side == side_prev {
                if side == 2 {
                    alpha * cast(2.0)
                } else {
                    alpha * half
                }
            } else {
                T::one()
            };
            let (a, b) = (self.lo[imax], self.hi[imax]);
            let mut t_mid = t_hi - (t_hi - t_lo) * b / (b - alpha * a);
            // Keep the iterate inside, at least half the tolerance from either end.
            let width = (t_hi - t_lo).abs();
            let inward = || {
                let frac = width / tol;
                if frac > cast(5.0) {
                    cast::<T>(0.1)
                } else {
                    half / frac
                }
            };
            if (t_mid - t_lo).abs() < half * tol || !t_mid.is_finite() {
                t_mid = t_lo + inward() * (t_hi - t_lo);
            }
            if (t_hi - t_mid).abs() < half * tol {
                t_mid = t_hi - inward() * (t_hi - t_lo);
            }
            interp((t_mid - t) / h, &mut self.y_mid);
            evaluate(&mut self.events, t_mid, &self.y_mid, &mut self.mid, stats)?;
            side_prev = side;
            let (change, zero) = self.strongest(&self.lo, &self.mid);
            if change.is_some() || zero {
                // The crossing is in [t_lo, t_mid].
                t_hi = t_mid;
                std::mem::swap(&mut self.hi, &mut self.mid);
                std::mem::swap(&mut self.y_root, &mut self.y_mid);
                match change {
                    Some(i) => {
                        imax = i;
                        side = 1;
                    }
                    // Only exact zeros at t_mid: the root.
                    None => break,
                }
            } else {
                t_lo = t_mid;
                std::mem::swap(&mut self.lo, &mut self.mid);
                side = 2;
            }
        }
        Ok(t_hi)
    }
}

/// The width to which a root is bracketed: 4 ulps of t.
fn root_tol<T: Float>(t: T) -> T {
    (cast::<T>(4.0) * T::epsilon() * t.abs()).max(T::min_positive_value())
}

/// Every event function at (t, y) into `out`; a non-finite value is an error.
fn evaluate<T: Float, S: State<T>>(
    events: &mut [Event<'_, T, S>],
    t: T,
    y: &S,
    out: &mut [T],
    stats: Stats,
) -> Result<(), OdeError> {
    for (i, (e, o)) in events.iter_mut().zip(out.iter_mut()).enumerate() {
        let v = (e.g)(t, y.as_slice());
        if !v.is_finite() {
            return Err(OdeError::EventNonFinite {
                index: i,
                t: num(t),
                stats,
            });
        }
        *o = v;
    }
    Ok(())
}
