//! The driver loop: asks the engine for steps and the controller for step sizes; handles output
//! times, observers, statistics and errors. Methods know nothing of this loop.
use num_traits::Float;

use crate::bdf::BdfStepper;
use crate::controller::{PiController, StepController};
use crate::engine::{Engine, RkStepper};
use crate::error::{num, OdeError};
use crate::event::{Cut, Detector, Event, StopReason};
use crate::jacobian::Sparsity;
use crate::method::{OdeMethod, Scheme};
use crate::norm::ErrorNorm;
use crate::observer::{AcceptedStep, Observer};
use crate::options::{Options, Tolerance, Tolerances};
use crate::radau::RadauStepper;
use crate::rosenbrock::RosenbrockStepper;
use crate::small::{self, ArrayEngine};
use crate::solution::{DenseSolution, Solution, Stats};
use crate::state::State;
use crate::stepper::{Attempt, StepFailure, Stepper};
use crate::system::{OdeSystem, SliceFn};
use crate::tableau::RkMethod;
use crate::util::cast;

/// A configured solver: a method plus options. Reusable for many solves.
///
/// ```
/// use cnf_ode::{Dopri5, Solver};
/// // y' = -y, y(0) = 1 on [0, 1]
/// let sol = Solver::new(Dopri5).rtol(1e-8).atol(1e-10)
///     .solve(|_t, y, dy| dy[0] = -y[0], 0.0, 1.0, &[1.0])
///     .unwrap();
/// assert!((sol.y[0] - (-1.0f64).exp()).abs() < 1e-8);
/// ```
///
/// The step-size controller is a type parameter: [`PiController`] by default, with the
/// tableau's parameters ([`crate::Tableau::controller`]); any [`StepController`] can replace it
/// ([`Solver::controller`]).
#[derive(Debug, Clone)]
pub struct Solver<M, T, C = PiController<T>> {
    method: M,
    options: Options<T>,
    controller: C,
    dense: bool,
}

impl<M: OdeMethod, T: Float> Solver<M, T> {
    /// A solver for `method` with default options (adaptive when the method has an error
    /// estimate, rtol 1e-6, atol 1e-9) and the method's default PI controller.
    pub fn new(method: M) -> Self {
        let controller = PiController::from_params(method.scheme().controller());
        Self {
            method,
            options: Options::default(),
            controller,
            dense: false,
        }
    }
    /// The largest factor by which one step may grow over the previous one (the PI
    /// controller's `fac_max`): 10 for the 5(4) pairs, 6 for DOP853 as in Hairer's code, where
    /// scipy's DOP853 uses 10.
    pub fn step_growth_cap(mut self, fac_max: T) -> Self {
        self.controller.fac_max = fac_max;
        self
    }
}

impl<M: OdeMethod, T: Float, C> Solver<M, T, C> {
    /// Relative tolerance, scalar or per component.
    pub fn rtol(mut self, rtol: impl Into<Tolerance<T>>) -> Self {
        self.options.rtol = rtol.into();
        self
    }
    /// Absolute tolerance, scalar or per component.
    pub fn atol(mut self, atol: impl Into<Tolerance<T>>) -> Self {
        self.options.atol = atol.into();
        self
    }
    /// Exactly `n` equal steps (for any method).
    pub fn fixed_steps(mut self, n: usize) -> Self {
        self.options.fixed_steps = Some(n);
        self
    }
    /// Grades the fixed steps with power `p`: step `i` of `N` ends at
    /// `t0 + (t1 - t0) (1 - (1 - i/N)^p)`, so for `p > 1` the steps shrink towards the end of
    /// the solve, where a flow's samples reach the data (1, the default: equal steps; checked
    /// by [`crate::SolverSpec`]'s builder, not here).
    pub fn graded(mut self, p: f64) -> Self {
        self.options.grading = p;
        self
    }
    /// First step size (magnitude); default: Hairer's automatic estimate.
    pub fn initial_step(mut self, h: T) -> Self {
        self.options.h0 = Some(h);
        self
    }
    /// Largest step size magnitude.
    pub fn max_step(mut self, h: T) -> Self {
        self.options.h_max = Some(h);
        self
    }
    /// Smallest step size magnitude before failing with `StepSizeTooSmall`.
    pub fn min_step(mut self, h: T) -> Self {
        self.options.h_min = h;
        self
    }
    /// Maximum number of steps (accepted and rejected).
    pub fn max_steps(mut self, n: usize) -> Self {
        self.options.max_steps = n;
        self
    }
    /// Report the state at these times (in integration order, inside the span).
    pub fn output_times(mut self, t_out: Vec<T>) -> Self {
        self.options.t_out = t_out;
        self
    }
    /// Only the components `range` enter the error norm (a seminorm; default all of them).
    pub fn error_components(mut self, range: std::ops::Range<usize>) -> Self {
        self.options.error_components = Some(range);
        self
    }
    /// How the components' scaled errors combine into the step's error: [`ErrorNorm::Rms`]
    /// (default) or [`ErrorNorm::PerSample`], the largest per-sample RMS of a batch solved as
    /// one state. Combines with [`Solver::error_components`]: components outside that range are
    /// in no group.
    ///
    /// ```
    /// use cnf_ode::{Dopri5, ErrorNorm, SampleLayout, Solver};
    /// // Two samples of y' = -k y, rates 1 and 50, as one state of 2 rows of width 1.
    /// let solver = Solver::new(Dopri5).rtol(1e-6).atol(1e-9)
    ///     .error_norm(ErrorNorm::PerSample(SampleLayout::rows(2, 1)));
    /// let sol = solver.solve(|_t, y, dy| { dy[0] = -y[0]; dy[1] = -50.0 * y[1]; },
    ///     0.0, 0.1, &[1.0, 1.0])?;
    /// assert!((sol.y[1] - (-5.0f64).exp()).abs() < 1e-7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error_norm(mut self, norm: ErrorNorm) -> Self {
        self.options.error_norm = norm;
        self
    }
    /// Replace the step-size controller (default: the method's, [`Scheme::controller`]) by any
    /// [`StepController`], e.g. an [`crate::IController`].
    pub fn controller<C2: StepController<T>>(self, c: C2) -> Solver<M, T, C2> {
        Solver {
            method: self.method,
            options: self.options,
            controller: c,
            dense: self.dense,
        }
    }
    /// Record every accepted step's continuous extension, so that
    /// [`Solution::interpolate`] can evaluate the solution anywhere in the span after the solve
    /// (default off). Memory grows with the number of steps: per step the state at its start and
    /// the method's dense stages (see [`crate::DenseSolution`]); the solution itself is unchanged.
    ///
    /// ```
    /// use cnf_ode::{Dopri5, Solver};
    /// // y' = -y: query y(t) at any t after one solve, without choosing output times first.
    /// let sol = Solver::new(Dopri5).rtol(1e-9).atol(1e-12).dense(true)
    ///     .solve(|_t, y, dy| dy[0] = -y[0], 0.0, 2.0, &[1.0])?;
    /// let dense = sol.dense.as_ref().expect("recorded");
    /// assert_eq!(dense.steps(), sol.stats.accepted);
    /// for t in [0.1f64, 0.77, 1.5] {
    ///     let y = sol.interpolate(t).expect("inside the span");
    ///     assert!((y[0] - (-t).exp()).abs() < 1e-8, "t = {t}");
    /// }
    /// assert_eq!(sol.interpolate(2.0), Some(sol.y));
    /// assert!(sol.interpolate(2.5).is_none()); // outside the span
    /// # Ok::<(), cnf_ode::OdeError>(())
    /// ```
    pub fn dense(mut self, on: bool) -> Self {
        self.dense = on;
        self
    }
    /// The step-size controller in use.
    pub fn step_controller(&self) -> &C {
        &self.controller
    }
    /// The settings in use.
    pub(crate) fn options(&self) -> &Options<T> {
        &self.options
    }
    /// What the method is (its tableau, for an explicit method).
    pub fn scheme(&self) -> Scheme {
        self.method.scheme()
    }
    /// Where the Jacobian can be non-zero, so that the implicit methods' finite-difference
    /// Jacobians perturb structurally independent columns together (default: dense, one
    /// evaluation per column). Unused by explicit methods and by systems with their own
    /// Jacobian ([`OdeSystem::jacobian`]).
    ///
    /// ```
    /// use cnf_ode::{Method, Solver, Sparsity};
    /// // Two uncoupled stiff decays: a diagonal Jacobian costs one evaluation, not two.
    /// let diag = Sparsity::new(2, [(0, 0), (1, 1)])?;
    /// let sol = Solver::new(Method::Rodas5p).jacobian_sparsity(diag).rtol(1e-8).atol(1e-12)
    ///     .solve(|_t, y, dy| { dy[0] = -1e4 * y[0]; dy[1] = -y[1]; }, 0.0, 1.0, &[1.0, 1.0])?;
    /// assert!((sol.y[1] - (-1.0f64).exp()).abs() < 1e-7);
    /// # Ok::<(), cnf_ode::OdeError>(())
    /// ```
    pub fn jacobian_sparsity(mut self, pattern: Sparsity) -> Self {
        self.options.sparsity = Some(pattern);
        self
    }
    /// Refine each stage solve of the Rosenbrock methods once, with the residual of
    /// (I / (h gamma) - J) k = r computed in twice the working precision (default off). For
    /// problems with a conserved linear combination of components far below the largest one's
    /// rounding (E5 of the Bari test set: y2 - y3 - y4 = 0 at 1e-22 beside y1 = 1.76e-3), which
    /// the LU's rounding moves by up to h gamma eps |J| |k| per stage and nothing restores;
    /// with it Rodas5P meets E5's digits at rtol 1e-5 .. 1e-10 (docs/ode.md). It costs an
    /// O(n^2) residual and a second pair of triangular solves per stage, no evaluations of f
    /// (1.8x the time on 3-component problems). BDF and Radau do not need it: their Newton
    /// residual goes through f.
    pub fn refine_stage_solves(mut self, on: bool) -> Self {
        self.options.refine_stage_solves = on;
        self
    }

    /// Integrates dy/dt = f(t, y) from (t0, y0) to t1 (t1 < t0 integrates backwards). `f`
    /// writes f(t, y) into its third argument; it sees every state as a slice, so a closure
    /// needs no type annotations: `solver.solve(|t, y, dy| dy[0] = -y[0], 0.0, 1.0, &[1.0])`.
    /// For a system with state of its own (scratch buffers, counters) see
    /// [`Solver::solve_system`].
    ///
    /// ```
    /// use cnf_ode::{Method, Solver};
    /// // The harmonic oscillator y'' = -y, with the states at t = 0.5 and 1 too.
    /// let sol = Solver::new(Method::Tsit5).rtol(1e-8).atol(1e-10).output_times(vec![0.5, 1.0])
    ///     .solve(|_t, y, dy| { dy[0] = y[1]; dy[1] = -y[0]; }, 0.0, 2.0, &vec![1.0, 0.0])?;
    /// assert!((sol.y[0] - 2f64.cos()).abs() < 1e-7);
    /// assert!((sol.y_out[0][0] - 0.5f64.cos()).abs() < 1e-7);
    /// assert!(sol.stats.nfe > 0 && sol.stats.rejected <= sol.stats.accepted);
    /// # Ok::<(), cnf_ode::OdeError>(())
    /// ```
    ///
    /// # Errors
    /// Before any evaluation: [`OdeError::EmptyState`], [`OdeError::InvalidTolerance`] (each
    /// tolerance positive and finite), [`OdeError::DimensionMismatch`] (a per-component
    /// tolerance of another length), [`OdeError::InvalidSpan`], [`OdeError::OutputTimeOutsideSpan`],
    /// [`OdeError::OutputTimesOutOfOrder`], [`OdeError::InvalidSetting`] (zero fixed steps, fixed
    /// steps for BDF, step bounds), [`OdeError::NotAdaptive`] (no fixed steps for a method
    /// without an error estimate), the error norm's [`OdeError::InvalidErrorComponents`] and
    /// [`OdeError::ErrorComponentsSplitBlock`], a Jacobian pattern of another size
    /// ([`OdeError::DimensionMismatch`]). During the integration, with the work done so far
    /// ([`OdeError::stats`]): [`OdeError::NonFinite`] (also for a non-finite `y0`),
    /// [`OdeError::StepSizeTooSmall`], [`OdeError::MaxStepsExceeded`], and for the implicit
    /// methods [`OdeError::SingularMatrix`] and [`OdeError::NewtonFailure`].
    pub fn solve<S, F>(&self, f: F, t0: T, t1: T, y0: &S) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: FnMut(T, &[T], &mut [T]),
        C: StepController<T> + Clone,
    {
        self.solve_system_observed(&mut SliceFn(f), t0, t1, y0, &mut ())
    }

    /// As [`Solver::solve`], calling `observer` after every accepted step.
    ///
    /// # Errors
    /// As [`Solver::solve`].
    pub fn solve_observed<S, F, O>(
        &self,
        f: F,
        t0: T,
        t1: T,
        y0: &S,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: FnMut(T, &[T], &mut [T]),
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        self.solve_system_observed(&mut SliceFn(f), t0, t1, y0, observer)
    }

    /// Integrates an [`OdeSystem`] (borrowed mutably for the solve: it may keep scratch
    /// buffers or count calls, and is given back afterwards).
    ///
    /// # Errors
    /// As [`Solver::solve`].
    pub fn solve_system<S, F>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: OdeSystem<T, S>,
        C: StepController<T> + Clone,
    {
        self.solve_system_observed(sys, t0, t1, y0, &mut ())
    }

    /// As [`Solver::solve_system`], calling `observer` after every accepted step.
    ///
    /// # Errors
    /// As [`Solver::solve`].
    pub fn solve_system_observed<S, F, O>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        self.solve_events_observed(sys, t0, t1, y0, Vec::new(), observer)
    }

    /// As [`Solver::solve`], locating the zeros of the `events`' functions on the way (see
    /// [`Event`] and docs/ode.md, "Events"): the solution's `events` lists them, `stop` says
    /// whether a terminal event ended the solve, and an event's action may change the state.
    ///
    /// ```
    /// use cnf_ode::{Direction, Dopri5, Event, Solver};
    /// // y = sin t crosses zero going down at pi and 3 pi, going up at 2 pi.
    /// let events = vec![Event::new(|_t, y: &[f64]| y[0]).direction(Direction::Down)];
    /// let sol = Solver::new(Dopri5).rtol(1e-10).atol(1e-12)
    ///     .solve_with_events(|_t, y, dy| { dy[0] = y[1]; dy[1] = -y[0]; }, 0.0, 10.0, &vec![0.0, 1.0], events)?;
    /// let times: Vec<f64> = sol.events.iter().map(|e| e.t).collect();
    /// assert_eq!(times.len(), 2);
    /// assert!((times[0] - std::f64::consts::PI).abs() < 1e-9);
    /// assert!((times[1] - 3.0 * std::f64::consts::PI).abs() < 1e-9);
    /// # Ok::<(), cnf_ode::OdeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Solver::solve`], and [`OdeError::InvalidSetting`] (a terminal count of 0),
    /// [`OdeError::EventNonFinite`] (an event function returned NaN or infinity),
    /// [`OdeError::EventStateSize`] (an action changed the state's size).
    pub fn solve_with_events<S, F>(
        &self,
        f: F,
        t0: T,
        t1: T,
        y0: &S,
        events: Vec<Event<'_, T, S>>,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: FnMut(T, &[T], &mut [T]),
        C: StepController<T> + Clone,
    {
        self.solve_system_with_events(&mut SliceFn(f), t0, t1, y0, events, &mut ())
    }

    /// As [`Solver::solve_with_events`] for an [`OdeSystem`], calling `observer` after every
    /// accepted step (a step that an event ends early is seen as ending at the event).
    ///
    /// # Errors
    /// As [`Solver::solve_with_events`].
    pub fn solve_system_with_events<S, F, O>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        events: Vec<Event<'_, T, S>>,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        self.solve_events_observed(sys, t0, t1, y0, events, observer)
    }

    /// The solve with the method's stepper, locating `events` (none: no cost).
    fn solve_events_observed<S, F, O>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        events: Vec<Event<'_, T, S>>,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        match self.method.scheme() {
            Scheme::Explicit(tab) => self.drive(
                sys,
                t0,
                t1,
                y0,
                observer,
                |y0| RkStepper(Engine::new(tab, y0)),
                events,
            ),
            Scheme::Rosenbrock(ros) => {
                let (pattern, floor) = (self.sparsity(y0.len())?, self.difference_floor());
                let refine = self.options.refine_stage_solves;
                self.drive(
                    sys,
                    t0,
                    t1,
                    y0,
                    observer,
                    |y0| RosenbrockStepper::new(ros, y0, pattern, floor, refine),
                    events,
                )
            }
            Scheme::Bdf => {
                if let Some(steps) = self.options.fixed_steps {
                    Scheme::Bdf.check_fixed_steps(steps)?;
                }
                let (pattern, floor) = (self.sparsity(y0.len())?, self.difference_floor());
                let rtol = &self.options.rtol;
                self.drive(
                    sys,
                    t0,
                    t1,
                    y0,
                    observer,
                    |y0| BdfStepper::new(y0, pattern, floor, rtol),
                    events,
                )
            }
            Scheme::Radau5 => {
                let (pattern, floor) = (self.sparsity(y0.len())?, self.difference_floor());
                let (rtol, atol) = (&self.options.rtol, &self.options.atol);
                // The Newton test's tolerances for fixed steps (the driver reports invalid ones).
                let newton_tol = Tolerances::new(rtol, atol, y0.len()).ok();
                self.drive(
                    sys,
                    t0,
                    t1,
                    y0,
                    observer,
                    |y0| RadauStepper::new(y0, pattern, floor, rtol, newton_tol),
                    events,
                )
            }
        }
    }

    /// The finite-difference Jacobians' floor: the absolute tolerance, one value or one per
    /// component.
    fn difference_floor(&self) -> Vec<T> {
        match &self.options.atol {
            Tolerance::Scalar(a) => vec![*a],
            Tolerance::PerComponent(v) => v.clone(),
        }
    }

    /// The Jacobian's pattern for a state of `n` components.
    fn sparsity(&self, n: usize) -> Result<Sparsity, OdeError> {
        match &self.options.sparsity {
            None => Ok(Sparsity::dense(n)),
            Some(p) if p.dim() == n => Ok(p.clone()),
            Some(p) => Err(OdeError::DimensionMismatch {
                expected: n,
                found: p.dim(),
            }),
        }
    }
}

impl<M: OdeMethod, T: Float, C> Solver<M, T, C> {
    /// As [`Solver::solve_system`] for small states that are `Copy`: `[T; N]`, nalgebra's
    /// `SVector` (feature `nalgebra`), small structs of your own. The stage buffers are an array
    /// inside the engine (no heap buffers, no indirection) and, when the method is a unit type
    /// such as [`crate::Dopri5`] or [`crate::Rk4`] (not a `&'static Tableau` or a
    /// [`crate::Method`] chosen at run time), its tableau is a constant the compiler unrolls the
    /// stage loops over, so a few-component state can stay in registers. A [`crate::Method`]
    /// chosen at run time runs its explicit methods on the same engine with the tableau read at
    /// run time, and the stiff ones on the general path. Same steps and results
    /// as [`Solver::solve_system`] (the same arithmetic in the same order), output times, dense
    /// output and error norms included; the generic path stays the one for large and batched
    /// states.
    ///
    /// ```
    /// use cnf_ode::{Dopri5, Solver};
    /// let mut osc = |_t: f64, y: &[f64; 2], dy: &mut [f64; 2]| *dy = [y[1], -y[0]];
    /// let solver = Solver::new(Dopri5).rtol(1e-8).atol(1e-10);
    /// let small = solver.solve_small(&mut osc, 0.0, 1.0, &[1.0, 0.0])?;
    /// let general = solver.solve_system(&mut osc, 0.0, 1.0, &[1.0, 0.0])?;
    /// assert_eq!(small.y, general.y);
    /// assert_eq!(small.stats, general.stats);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Solver::solve`].
    pub fn solve_small<S, F>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T> + Copy,
        F: OdeSystem<T, S>,
        C: StepController<T> + Clone,
    {
        self.solve_small_with_events(sys, t0, t1, y0, Vec::new(), &mut ())
    }

    /// As [`Solver::solve_small`], calling `observer` after every accepted step.
    ///
    /// # Errors
    /// As [`Solver::solve`].
    pub fn solve_small_observed<S, F, O>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T> + Copy,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        self.solve_small_with_events(sys, t0, t1, y0, Vec::new(), observer)
    }

    /// As [`Solver::solve_system_with_events`] for small `Copy` states, on the engine of
    /// [`Solver::solve_small`].
    ///
    /// ```
    /// use cnf_ode::{Direction, Dopri5, Event, Solver};
    /// // A ball dropped from 1 m: y = 1 - g t^2 / 2 reaches the ground at sqrt(2 / g).
    /// let g = 9.81;
    /// let mut fall = |_t: f64, y: &[f64; 2], dy: &mut [f64; 2]| *dy = [y[1], -g];
    /// let ground = vec![Event::new(|_t, y: &[f64]| y[0]).direction(Direction::Down).terminal(1)];
    /// let sol = Solver::new(Dopri5).rtol(1e-10).atol(1e-12)
    ///     .solve_small_with_events(&mut fall, 0.0, 10.0, &[1.0, 0.0], ground, &mut ())?;
    /// assert!((sol.t - (2.0 / g).sqrt()).abs() < 1e-10);
    /// # Ok::<(), cnf_ode::OdeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Solver::solve_with_events`].
    pub fn solve_small_with_events<S, F, O>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        events: Vec<Event<'_, T, S>>,
        observer: &mut O,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T> + Copy,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
    {
        match self.method.explicit() {
            Some(m) if small::fits(m.tableau()) => self.drive(
                sys,
                t0,
                t1,
                y0,
                observer,
                |y0| RkStepper(ArrayEngine::new(&m, y0)),
                events,
            ),
            _ => self.solve_events_observed(sys, t0, t1, y0, events, observer),
        }
    }
}

impl<M: OdeMethod, T: Float, C> Solver<M, T, C> {
    /// The solve with the stepper `engine(y0)`, locating `events` (none: no cost).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn drive<S, F, O, E>(
        &self,
        sys: &mut F,
        t0: T,
        t1: T,
        y0: &S,
        observer: &mut O,
        engine: impl FnOnce(&S) -> E,
        events: Vec<Event<'_, T, S>>,
    ) -> Result<Solution<T, S>, OdeError>
    where
        S: State<T>,
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T> + Clone,
        E: Stepper<T, S>,
    {
        let n = y0.len();
        if n == 0 {
            return Err(OdeError::EmptyState);
        }
        let mut tol = Tolerances::new(&self.options.rtol, &self.options.atol, n)?
            .with_norm_components(self.options.error_components.clone())?
            .with_error_norm(&self.options.error_norm)?;
        self.check_span(t0, t1)?;
        if y0.as_slice().iter().any(|x| !x.is_finite()) {
            return Err(OdeError::NonFinite {
                t: num(t0),
                stats: Stats::default(),
            });
        }
        let events = match events.is_empty() {
            true => None,
            false => Some(Detector::new(events, t0, y0)?),
        };
        let engine = engine(y0);
        let dense = self
            .dense
            .then(|| DenseSolution::new(engine.dense_vectors().1, t0, y0));
        let mut run = SolveState {
            engine,
            ys: [y0.clone(), y0.clone()],
            cur: 0,
            t: t0,
            t1,
            stats: Stats::default(),
            t_out: &self.options.t_out,
            next_out: 0,
            y_out: Vec::with_capacity(self.options.t_out.len()),
            dense,
            events,
            stop: StopReason::End,
        };
        // Output times at t0 are the initial state.
        while run.next_out < run.t_out.len() && run.t_out[run.next_out] == t0 {
            run.y_out.push(y0.clone());
            run.next_out += 1;
        }
        if t0 != t1 {
            match self.options.fixed_steps {
                Some(steps) => run.fixed(sys, steps, self.options.grading, observer)?,
                None => {
                    if !run.engine.is_adaptive() {
                        return Err(OdeError::NotAdaptive {
                            method: run.engine.name(),
                        });
                    }
                    let mut ctrl = self.controller.clone();
                    ctrl.reset();
                    run.adaptive(sys, &self.options, &mut tol, &mut ctrl, observer)?;
                }
            }
        }
        Ok(Solution {
            t: run.t,
            y: {
                let [a, b] = run.ys;
                if run.cur == 0 {
                    a
                } else {
                    b
                }
            },
            t_out: self.options.t_out[..run.y_out.len()].to_vec(),
            y_out: run.y_out,
            stats: run.stats,
            dense: run.dense,
            events: run.events.map(|d| d.records).unwrap_or_default(),
            stop: run.stop,
        })
    }

    /// Checks the span, the output times and the step settings.
    fn check_span(&self, t0: T, t1: T) -> Result<(), OdeError> {
        if !t0.is_finite() || !t1.is_finite() {
            return Err(OdeError::InvalidSpan {
                t0: num(t0),
                t1: num(t1),
            });
        }
        let dir = if t1 >= t0 { T::one() } else { -T::one() };
        let mut prev = t0;
        for &t in &self.options.t_out {
            if !t.is_finite() || (t - t0) * dir < T::zero() || (t - t1) * dir > T::zero() {
                return Err(OdeError::OutputTimeOutsideSpan {
                    t: num(t),
                    t0: num(t0),
                    t1: num(t1),
                });
            }
            if (t - prev) * dir < T::zero() {
                return Err(OdeError::OutputTimesOutOfOrder {
                    t: num(t),
                    previous: num(prev),
                });
            }
            prev = t;
        }
        let setting = |field: &str, requirement, value: f64| OdeError::InvalidSetting {
            field: field.into(),
            requirement,
            value,
        };
        if self.options.fixed_steps == Some(0) {
            return Err(setting("steps", "at least 1", 0.0));
        }
        for (field, h) in [
            ("initial_step", self.options.h0),
            ("max_step", self.options.h_max),
        ] {
            if let Some(h) = h.filter(|h| !(h.is_finite() && *h > T::zero())) {
                return Err(setting(field, "positive and finite", num(h)));
            }
        }
        let h_min = self.options.h_min;
        if h_min.is_nan() || h_min < T::zero() {
            return Err(setting("min_step", "non-negative", num(h_min)));
        }
        Ok(())
    }
}

/// State of one solve.
struct SolveState<'a, T, S, E> {
    engine: E,
    /// The current state and the candidate of the next step: `ys[cur]` and `ys[1 - cur]`.
    /// Accepting a step flips `cur` rather than copying states.
    ys: [S; 2],
    cur: usize,
    t: T,
    t1: T,
    stats: Stats,
    t_out: &'a [T],
    next_out: usize,
    y_out: Vec<S>,
    /// The recorded continuous extension ([`Solver::dense`]).
    dense: Option<DenseSolution<T, S>>,
    /// The events being located, if any.
    events: Option<Detector<'a, T, S>>,
    stop: StopReason,
}

/// How the loop goes on after an accepted step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// With the next step.
    Continue,
    /// An event ended the step early (the rest of the span is still ahead).
    Cut,
    /// The solve ends here ([`SolveState::stop`] says why).
    Stop,
}

impl<T: Float, S: State<T>, E: Stepper<T, S>> SolveState<'_, T, S, E> {
    /// The driver's step counts with the method's work.
    fn stats(&self) -> Stats {
        let work = self.engine.work();
        Stats {
            accepted: self.stats.accepted,
            rejected: self.stats.rejected,
            ..work
        }
    }

    fn non_finite(&self, t: T) -> OdeError {
        OdeError::NonFinite {
            t: num(t),
            stats: self.stats(),
        }
    }

    /// The error of a failed attempt that no smaller step could avoid.
    #[cold]
    fn failure(&self, failure: StepFailure, h: T) -> OdeError {
        match failure {
            StepFailure::Singular => OdeError::SingularMatrix {
                t: num(self.t),
                h: num(h),
                stats: self.stats(),
            },
            StepFailure::Newton => OdeError::NewtonFailure {
                t: num(self.t),
                h: num(h),
                stats: self.stats(),
            },
        }
    }

    /// Bookkeeping after an accepted step of size h from t to t_new (y_new holds the state):
    /// events (which may end the step early), output times in (t, t_new], the observer, then
    /// the new state becomes current and an event's action may change it.
    fn accept<F, O>(
        &mut self,
        sys: &mut F,
        h: T,
        mut t_new: T,
        observer: &mut O,
    ) -> Result<Next, OdeError>
    where
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
    {
        let (y, y_new) = split(&mut self.ys, self.cur);
        if y_new.as_slice().iter().any(|x| !x.is_finite()) {
            return Err(self.non_finite(self.t));
        }
        self.stats.accepted += 1;
        let mut cut = Cut::None;
        if let Some(events) = &mut self.events {
            let (engine, t) = (&mut self.engine, self.t);
            let stats = Stats {
                accepted: self.stats.accepted,
                rejected: self.stats.rejected,
                ..engine.work()
            };
            let y_end: &S = y_new;
            let interp = |theta, out: &mut S| {
                engine.prepare_dense(sys, t, h, y, y_end);
                engine.interpolate(theta, h, y, out);
            };
            cut = events.scan(t, h, t_new, y_end, interp, stats)?;
            if let Cut::At { t: t_event, .. } = cut {
                y_new.clone_from(events.state_at_cut());
                t_new = t_event;
            }
        }
        let dir = h.signum();
        while self.next_out < self.t_out.len()
            && (self.t_out[self.next_out] - t_new) * dir <= T::zero()
        {
            let to = self.t_out[self.next_out];
            let mut out = y_new.clone();
            if to != t_new {
                self.engine.prepare_dense(sys, self.t, h, y, y_new);
                self.engine.interpolate((to - self.t) / h, h, y, &mut out);
            }
            self.y_out.push(out);
            self.next_out += 1;
        }
        if let Some(dense) = &mut self.dense {
            self.engine.prepare_dense(sys, self.t, h, y, y_new);
            dense.push(h, t_new, self.engine.dense_vectors().0, y_new);
        }
        let work = self.engine.work();
        observer.on_step(&AcceptedStep {
            t_prev: self.t,
            t: t_new,
            y_prev: y,
            y: y_new,
            stages: self.engine.stages(),
            stats: Stats {
                accepted: self.stats.accepted,
                rejected: self.stats.rejected,
                ..work
            },
        });
        let observer_stop = observer.stop();
        self.engine.accept();
        self.cur = 1 - self.cur;
        self.t = t_new;
        let mut next = Next::Continue;
        if let (Cut::At { terminal, .. }, Some(events)) = (cut, &mut self.events) {
            if events.act(t_new, &mut self.ys[self.cur])? {
                self.engine.restart();
                if let Some(dense) = &mut self.dense {
                    dense.jump(&self.ys[self.cur]);
                }
                if self.ys[self.cur].as_slice().iter().any(|x| !x.is_finite()) {
                    return Err(self.non_finite(t_new));
                }
            }
            next = Next::Cut;
            if terminal {
                self.stop = StopReason::TerminalEvent;
                next = Next::Stop;
            }
        }
        if observer_stop && next != Next::Stop {
            self.stop = StopReason::Observer;
            next = Next::Stop;
        }
        Ok(next)
    }

    fn fixed<F, O>(
        &mut self,
        sys: &mut F,
        steps: usize,
        grading: f64,
        observer: &mut O,
    ) -> Result<(), OdeError>
    where
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
    {
        let (t0, span) = (self.t, self.t1 - self.t);
        let nt: T = cast(steps as f64);
        let mut i = 1;
        while i <= steps {
            // Times from t0 + span * i / N (graded: 1 - (1 - i/N)^p), not by accumulation: the
            // last is exactly t1.
            let t_new = if i == steps {
                self.t1
            } else if grading == 1.0 {
                t0 + span * (cast::<T>(i as f64) / nt)
            } else {
                let left = 1.0 - i as f64 / steps as f64;
                t0 + span * cast::<T>(1.0 - left.powf(grading))
            };
            let h = t_new - self.t;
            let (y, y_new) = split(&mut self.ys, self.cur);
            match self.engine.attempt(sys, self.t, h, y, y_new, None) {
                Attempt::Done { .. } => match self.accept(sys, h, t_new, observer)? {
                    Next::Stop => break,
                    // An event ended the step early: the rest of it is the next step.
                    Next::Cut if self.t != t_new => {}
                    _ => i += 1,
                },
                Attempt::Failed(failure) => return Err(self.failure(failure, h)),
            }
        }
        self.stats = self.stats();
        Ok(())
    }

    fn adaptive<F, O, C>(
        &mut self,
        sys: &mut F,
        opts: &Options<T>,
        tol: &mut Tolerances<T>,
        ctrl: &mut C,
        observer: &mut O,
    ) -> Result<(), OdeError>
    where
        F: OdeSystem<T, S>,
        O: Observer<T, S> + ?Sized,
        C: StepController<T>,
    {
        let dir = (self.t1 - self.t).signum();
        let span = (self.t1 - self.t).abs();
        let h_max = opts.h_max.unwrap_or(span).min(span);
        let t0 = self.t;
        let f0_finite = {
            let y = &self.ys[self.cur];
            let (f0, _) = self.engine.derivative(sys, t0, y);
            f0.as_slice().iter().all(|x| x.is_finite())
        };
        if !f0_finite {
            return Err(self.non_finite(t0));
        }
        let mut h = match opts.h0 {
            Some(h0) => h0.min(h_max),
            None => self.initial_step(sys, tol, h_max, opts.h_min),
        } * dir;
        let eps = T::epsilon();
        let mut last_nonfinite = false;
        let mut last_failure = None;
        loop {
            if self.stats.accepted + self.stats.rejected >= opts.max_steps {
                return Err(OdeError::MaxStepsExceeded {
                    t: num(self.t),
                    max_steps: opts.max_steps,
                    stats: self.stats(),
                });
            }
            let h_floor = opts.h_min.max(cast::<T>(10.0) * eps * self.t.abs());
            if (h.abs() <= h_floor || h.abs() < T::min_positive_value())
                && !reaches_end(h, self.t, self.t1)
            {
                if last_nonfinite {
                    return Err(self.non_finite(self.t));
                }
                if let Some(failure) = last_failure {
                    return Err(self.failure(failure, h));
                }
                return Err(OdeError::StepSizeTooSmall {
                    t: num(self.t),
                    h: num(h),
                    stats: self.stats(),
                });
            }
            // Stretch to t1 when within 1% of it, so no sliver of a step remains (Hairer).
            let last = (self.t + cast::<T>(1.01) * h - self.t1) * dir >= T::zero();
            if last {
                h = self.t1 - self.t;
            }
            let (y, y_new) = split(&mut self.ys, self.cur);
            let err = match self.engine.attempt(sys, self.t, h, y, y_new, Some(tol)) {
                Attempt::Done { err } => err,
                Attempt::Failed(failure) => {
                    // Retry with a smaller step; reported if the steps collapse.
                    last_failure = Some(failure);
                    self.stats.rejected += 1;
                    h = h * cast(failure.retry_factor());
                    continue;
                }
            };
            if !err.is_finite() {
                // Too large a step can overflow; shrink hard and retry.
                last_nonfinite = true;
                self.stats.rejected += 1;
                h = h * cast(0.1);
                continue;
            }
            let (ok, h_new) = self.engine.decide(ctrl, err, h);
            if ok {
                last_nonfinite = false;
                last_failure = None;
                let t_new = if last { self.t1 } else { self.t + h };
                match self.accept(sys, h, t_new, observer)? {
                    Next::Stop => break,
                    Next::Continue if last => break,
                    // An action exactly at the end.
                    Next::Cut if self.t == self.t1 => break,
                    _ => {}
                }
                h = h_new.abs().min(h_max) * dir;
            } else {
                self.stats.rejected += 1;
                h = h_new;
            }
        }
        self.stats = self.stats();
        Ok(())
    }

    /// Hairer's automatic initial step (HINIT): one extra evaluation, f(t0, y0) is reused.
    ///
    /// The estimate is raised to ten times the smallest step the loop accepts at t0 (`h_min`, or
    /// 10 eps |t0|): with f = 0 (the untrained flow, the identity) HINIT gives 1e-6, which in
    /// f32 at |t0| = 1 is below 10 eps = 1.2e-6, and the solve would fail on its own first step.
    fn initial_step<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        tol: &mut Tolerances<T>,
        h_max: T,
        h_min: T,
    ) -> T {
        let order = self.engine.initial_step_order();
        let (t0, dir) = (self.t, (self.t1 - self.t).signum());
        let (y0, y1) = split(&mut self.ys, self.cur);
        let (f0, f1) = self.engine.derivative(sys, t0, y0);
        let y0 = y0.as_slice();
        let f0s = f0.as_slice();
        let dnf = tol.sum_sq(y0, |i| f0s[i]);
        let dny = tol.sum_sq(y0, |i| y0[i]);
        let tiny: T = cast(1e-10);
        let mut h = if dnf <= tiny || dny <= tiny {
            cast(1e-6)
        } else {
            (dny / dnf).sqrt() * cast(0.01)
        };
        h = h.min(h_max);
        // Explicit Euler step, then the second derivative estimate.
        for (y1i, (&y0i, &f0i)) in y1.as_mut_slice().iter_mut().zip(y0.iter().zip(f0s)) {
            *y1i = y0i + h * dir * f0i;
        }
        // f(t0 + h, y1) into the method's scratch state.
        sys.rhs(t0 + h * dir, y1, f1);
        let (f0, f1) = (f0s, f1.as_slice());
        let der2 = tol.sum_sq(y0, |i| f1[i] - f0[i]);
        self.engine.add_nfe(1);
        let der2 = der2.sqrt() / h;
        let der12 = der2.abs().max(dnf.sqrt());
        let h1 = if der12 <= cast(1e-15) {
            cast::<T>(1e-6).max(h * cast(1e-3))
        } else {
            (cast::<T>(0.01) / der12).powf(T::one() / cast(f64::from(order)))
        };
        let h = (h * cast(100.0)).min(h1);
        let h = if h.is_finite() { h } else { cast::<T>(1e-6) };
        let floor = h_min.max(cast::<T>(10.0) * T::epsilon() * t0.abs());
        h.max(floor * cast(10.0)).min(h_max)
    }
}

/// A step of size `h` from `t` reaches (or passes) `t1`: the last step, which the floor on step
/// sizes does not refuse (a span shorter than the floor is one step, not an error). Checked only
/// when a step is below the floor.
#[cold]
fn reaches_end<T: Float>(h: T, t: T, t1: T) -> bool {
    h.abs() >= T::min_positive_value() && h.abs() >= (t1 - t).abs()
}

/// (current state, candidate state) of a run's state pair.
#[inline]
fn split<S>(ys: &mut [S; 2], cur: usize) -> (&S, &mut S) {
    let [a, b] = ys;
    if cur == 0 {
        (a, b)
    } else {
        (b, a)
    }
}
