//! The stepping contract between the driver ([`crate::Solver`]'s loop) and a method.
//!
//! The driver knows a method only through [`Stepper`]: its orders, an attempt at a step that
//! either succeeds with an error estimate or fails ([`Attempt`]), and the continuous extension
//! of the last step (dense output, output times). The controller decides on the outcome, unless
//! the method chooses its own steps ([`Stepper::decide`]: BDF picks step and order from its
//! history). The explicit Runge-Kutta engines ([`crate::engine::Engine`],
//! [`crate::small::ArrayEngine`]), the Rosenbrock, BDF and Radau steppers are the
//! implementations.
use num_traits::Float;

use crate::controller::StepController;
use crate::options::Tolerances;
use crate::solution::Stats;
use crate::state::State;
use crate::system::OdeSystem;
use crate::util::cast;

/// The outcome of one attempted step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Attempt<T> {
    /// The step was computed: `err` is its scaled error norm (accept when `err <= 1`; 0 when no
    /// estimate was asked for). A non-finite `err` means the step overflowed.
    Done {
        /// The scaled error norm.
        err: T,
    },
    /// The step could not be computed with this step size.
    Failed(StepFailure),
}

/// Why an attempt failed; the driver retries with a smaller step and reports the last failure
/// if the step size collapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepFailure {
    /// The iteration matrix was singular to working precision.
    Singular,
    /// The Newton iteration of an implicit step did not converge (with a fresh Jacobian).
    Newton,
}

impl StepFailure {
    /// The factor of the step size the attempt is retried with: half after a Newton failure
    /// (as scipy's BDF and Radau), a quarter after a singular matrix.
    pub(crate) fn retry_factor(self) -> f64 {
        match self {
            StepFailure::Newton => 0.5,
            StepFailure::Singular => 0.25,
        }
    }
}

/// A continuous extension over one step of size h from y: y(t + theta h) = y + sum_j c_j(theta)
/// v_j, with `weights` filling w_j(theta) and c_j = h w_j when `times_h` (Runge-Kutta stages
/// are derivatives) or c_j = w_j (vectors already scaled, as Rosenbrock's dense terms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interpolant {
    /// Fills one weight per vector for `theta` in [0, 1].
    pub(crate) weights: fn(theta: f64, w: &mut [f64]),
    /// Number of vectors per step.
    pub(crate) vectors: usize,
    /// Whether the weights are multiplied by h.
    pub(crate) times_h: bool,
}

impl Interpolant {
    /// out = y + sum_j c_j(theta) v_j over `vectors` (at least `self.vectors` of them), with
    /// `w` (as long) as scratch for the weights.
    pub(crate) fn apply<T: Float, S: State<T>>(
        &self,
        (theta, h): (T, T),
        y: &S,
        vectors: &[S],
        w: &mut [f64],
        out: &mut S,
    ) {
        let w = &mut w[..self.vectors];
        (self.weights)(theta.to_f64().unwrap_or(f64::NAN), w);
        let out_s = out.as_mut_slice();
        out_s.copy_from_slice(y.as_slice());
        for (&wj, vj) in w.iter().zip(vectors) {
            if wj != 0.0 {
                let c = if self.times_h {
                    h * cast::<T>(wj)
                } else {
                    cast::<T>(wj)
                };
                for (o, &v) in out_s.iter_mut().zip(vj.as_slice()) {
                    *o = *o + c * v;
                }
            }
        }
    }
}

/// What the driver needs of a method (see the module's documentation).
pub(crate) trait Stepper<T, S> {
    /// The method's name, for errors.
    fn name(&self) -> &'static str;
    /// Order of the propagated solution.
    fn order(&self) -> u32;
    /// The local error estimate scales as h^error_order (the controller's exponent).
    fn error_order(&self) -> u32;
    /// The exponent q of the initial step estimate, h ~ (0.01 / ||f'||)^(1/q): the order, as in
    /// Hairer's HINIT, unless the method starts at an order whose error scales otherwise.
    #[inline(always)]
    fn initial_step_order(&self) -> u32 {
        self.order()
    }
    /// True when the method has an error estimate.
    fn is_adaptive(&self) -> bool;
    /// Work done so far: evaluations and linear algebra (steps are the driver's).
    fn work(&self) -> Stats;
    /// Count `n` more evaluations (the driver's initial step estimate).
    fn add_nfe(&mut self, n: usize);
    /// f(t, y) (evaluated unless known), and a scratch state the driver may use until the next
    /// attempt (the initial step estimate evaluates f there).
    fn derivative<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) -> (&S, &mut S);
    /// One step of size h from (t, y) into y_new, with its error norm when `tol` is given.
    fn attempt<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
        tol: Option<&mut Tolerances<T>>,
    ) -> Attempt<T>;
    /// The vectors of the last step that observers see as its stages (explicit Runge-Kutta:
    /// the main stage derivatives, which reverse mode needs).
    fn stages(&self) -> &[S];
    /// Completes the continuous extension of the last (computed) step; evaluates extra stages
    /// where the method needs them, once per step.
    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &S);
    /// y(t + theta h) from the continuous extension of the last step (after `prepare_dense`).
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S);
    /// The continuous extension of the last step as data to record: its vectors and weights
    /// (after `prepare_dense`).
    fn dense_vectors(&self) -> (&[S], Interpolant);
    /// Whether to accept a computed attempt of size h with error norm `err` (finite), and the
    /// next step size: the controller's decision, unless the method chooses its own steps
    /// (BDF: step size and order from the error estimates of its history).
    #[inline(always)]
    fn decide<C: StepController<T>>(&mut self, ctrl: &mut C, err: T, h: T) -> (bool, T) {
        ctrl.decide(err, h, self.error_order())
    }
    /// The last attempt was accepted (carry over what the next step can reuse).
    fn accept(&mut self);
    /// The state was changed between steps (an event's action): forget everything carried over
    /// (the FSAL stage, a method's history), so the next attempt starts from the state alone.
    fn restart(&mut self);
}
