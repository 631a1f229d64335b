//! Variable-order (1-5), variable-step BDF for stiff problems, in the quasi-constant step-size
//! NDF form of Shampine and Reichelt (MATLAB's ode15s; scipy's `BDF` is the same algorithm).
//!
//! The method carries the backward differences D_0 .. D_k of the polynomial through its last
//! k + 1 points at one spacing h (D_0 = y_n). A step predicts y_pred = sum_j D_j and solves the
//! corrector for d = y_new - y_pred,
//!
//!   alpha_k d + sum_{j=1}^k gamma_j D_j = h f(t + h, y_pred + d),
//!
//! gamma_j = sum_{i <= j} 1 / i, alpha_k = (1 - kappa_k) gamma_k (kappa: the NDF coefficients),
//! by a simplified Newton iteration with the matrix I - c J, c = h / alpha_k (at most 4
//! iterations, stopped early when the observed rate of convergence cannot reach the tolerance).
//! The local error is error_const_k d. A change of h rescales the differences to the new
//! spacing (the matrices R U of Shampine and Reichelt), so the history needs no storage of past
//! points. After k + 1 steps at one h, the next order (k - 1, k or k + 1) and step size come from
//! the error estimates of the three orders.
//!
//! Work is saved where the algorithm allows (scipy's choices throughout): the Jacobian is
//! evaluated at the start and then only when a Newton iteration fails with a Jacobian older than
//! the current step (with a fresh one the step is halved); the LU of I - c J is kept until c
//! changes or the Jacobian is refreshed, and after a rejection for the error estimate it serves
//! the smaller c too, over the steps that follow, until the next order selection or Newton
//! failure (the iteration matrix only has to be close to I - c J).
use num_traits::Float;

use crate::controller::StepController;
use crate::engine::error_of;
use crate::implicit::CurrentPoint;
use crate::jacobian::{jacobian, Sparsity};
use crate::linalg::{DenseLu, LinearSolver};
use crate::options::{Tolerance, Tolerances};
use crate::solution::Stats;
use crate::state::State;
use crate::stepper::{Attempt, Interpolant, StepFailure, Stepper};
use crate::system::OdeSystem;
use crate::util::cast;

/// The highest order.
pub(crate) const MAX_ORDER: usize = 5;
/// Newton iterations per attempt at most.
const NEWTON_MAXITER: usize = 4;
/// Bounds of the step-size factor after a rejected and after an accepted step.
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
/// The NDF coefficients kappa_k (Shampine and Reichelt 1997, Table 1); kappa_5 = 0 (BDF5).
const KAPPA: [f64; MAX_ORDER + 1] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];

/// Rows of the difference array: D_0 .. D_k, the last correction (D_{k+1}) and the difference
/// after it (D_{k+2}) for the order selection.
const ROWS: usize = MAX_ORDER + 3;

type Square<T> = [[T; MAX_ORDER + 1]; MAX_ORDER + 1];

/// R(factor) of order k: R_ij = prod_{l=1}^{i} (l - 1 - factor j) / l, R_0j = 1 (Shampine and
/// Reichelt's change of spacing of the differences).
fn spacing_matrix<T: Float>(k: usize, factor: T) -> Square<T> {
    let mut r = [[T::zero(); MAX_ORDER + 1]; MAX_ORDER + 1];
    r[0][..=k].fill(T::one());
    for i in 1..=k {
        let li: T = cast(i as f64);
        let (done, rest) = r.split_at_mut(i);
        let row = rest[0].iter_mut().zip(&done[i - 1]).enumerate();
        for (j, (x, &above)) in row.take(k + 1).skip(1) {
            let lj: T = cast(j as f64);
            *x = above * (li - T::one() - factor * lj) / li;
        }
    }
    r
}

/// The dense output's weights over D_1 .. D_5 of the step's new differences, for the point
/// t + theta h: y(t + theta h) = y + theta D_1 + sum_{j >= 2} p_j(theta) D_j with
/// p_j = prod_{m=0}^{j-1} (theta - 1 + m) / (m + 1) (Newton's backward form about t + h; the
/// term of D_1 absorbs D_0 = y + D_1).
fn bdf_weights(theta: f64, w: &mut [f64]) {
    w[0] = theta;
    let mut p = theta - 1.0;
    for j in 2..=MAX_ORDER {
        p *= (theta + (j as f64 - 2.0)) / j as f64;
        w[j - 1] = p;
    }
}

/// How a Newton iteration ended.
enum Newton {
    /// Converged after this many iterations.
    Converged(usize),
    /// Diverged, or converging too slowly to reach the tolerance in the iterations left.
    Diverged,
    /// f was not finite at an iterate.
    NonFinite,
}

/// The scaled distance to the solution at which a Newton iteration stops: max(10 eps / rtol,
/// min(0.03, sqrt(rtol))) with the smallest rtol (scipy's BDF and Radau).
pub(crate) fn newton_tolerance<T: Float>(rtol: &Tolerance<T>) -> T {
    let rtol = match rtol {
        Tolerance::Scalar(r) => *r,
        Tolerance::PerComponent(v) => v.iter().fold(T::infinity(), |a, &b| a.min(b)),
    };
    (cast::<T>(10.0) * T::epsilon() / rtol).max(cast::<T>(0.03).min(rtol.sqrt()))
}

/// The scaled RMS norm of `e` (over the norm's components; `e` is overwritten) with the error
/// scale taken at `at`.
pub(crate) fn norm_at<T: Float>(tol: &mut Tolerances<T>, at: &[T], e: &mut [T]) -> T {
    let r = tol.norm_range();
    let at = &at[r.clone()];
    error_of(T::one(), (at, at), tol, &mut e[r], None)
}

/// The scaled norm at `at`'s scale of c (a + s b), with `scratch` as the buffer.
fn combination_norm<T: Float>(
    tol: &mut Tolerances<T>,
    at: &[T],
    c: T,
    (a, s, b): (&[T], T, &[T]),
    scratch: &mut [T],
) -> T {
    for ((e, &x), &y) in scratch.iter_mut().zip(a).zip(b) {
        *e = c * (x + s * y);
    }
    norm_at(tol, at, scratch)
}

/// The BDF stepper: the difference array, the Jacobian, the LU of the iteration matrix and the
/// Newton buffers.
pub(crate) struct BdfStepper<T, S> {
    n: usize,
    pattern: Sparsity,
    /// The finite differences' floor per component (the absolute tolerance).
    floor: Vec<T>,
    /// The Newton iteration stops when its estimated distance to the solution is below this
    /// (scaled) value: max(10 eps / rtol, min(0.03, sqrt(rtol))), as scipy.
    newton_tol: T,
    gamma: [T; MAX_ORDER + 1],
    alpha: [T; MAX_ORDER + 1],
    error_const: [T; MAX_ORDER + 1],
    /// D_0 .. D_{k+2} (see [`ROWS`]), at spacing `h`.
    d: Vec<S>,
    /// Scratch rows for rescaling the differences.
    rescaled: Vec<S>,
    order: usize,
    /// The step size the differences are spaced at (signed).
    h: T,
    /// False at the start and after a restart: the next attempt starts the history from y.
    history: bool,
    /// Steps accepted at the current h and order.
    n_equal: usize,
    /// f at the current point, scratch and work.
    cur: CurrentPoint<S>,
    jac: Vec<T>,
    jac_valid: bool,
    /// The Jacobian was evaluated during the current step (a Newton failure then shrinks the
    /// step rather than refreshing it).
    jac_fresh: bool,
    m: Vec<T>,
    lu: DenseLu<T>,
    /// c of the factorised I - c J, if it is valid.
    lu_c: Option<T>,
    /// Attempts may start Newton with the LU of another c (as scipy; the iteration matrix only
    /// has to be close to I - c J): set by a rejection for the error estimate, kept over the
    /// steps that follow at the size it chose, cleared by an order selection (a deliberate new
    /// step size and order), a Newton failure, or a step size the method did not propose.
    keep_lu: bool,
    /// The step size the last decision proposed (signed).
    proposed_h: Option<T>,
    y_pred: S,
    psi: S,
    /// The correction d = y_new - y_pred of the last attempt.
    corr: S,
    dy: S,
    /// f at the prediction (the first Newton iterate), kept for a Jacobian there.
    f_pred: S,
    f: S,
    ytmp: S,
    /// Newton iterations of the last converged attempt.
    iters: usize,
    /// Error norms of orders k - 1 and k + 1 at the last attempt, when the order is due for
    /// selection (infinite where that order does not exist).
    neighbours: Option<(T, T)>,
    /// The order after the last decided step.
    next_order: usize,
    dense: Vec<S>,
    dense_ready: bool,
    w64: [f64; MAX_ORDER],
}

impl<T: Float, S: State<T>> BdfStepper<T, S> {
    /// A stepper with buffers shaped as `y0`, the Jacobian's pattern (checked by the caller),
    /// the finite differences' floor (one value or one per component) and the relative
    /// tolerance (validated by the caller), which sets the Newton tolerance.
    pub(crate) fn new(y0: &S, pattern: Sparsity, floor: Vec<T>, rtol: &Tolerance<T>) -> Self {
        let n = y0.len();
        let newton_tol = newton_tolerance(rtol);
        let mut gamma = [T::zero(); MAX_ORDER + 1];
        let mut alpha = [T::zero(); MAX_ORDER + 1];
        let mut error_const = [T::zero(); MAX_ORDER + 1];
        let mut g = 0.0;
        for k in 0..=MAX_ORDER {
            if k > 0 {
                g += 1.0 / k as f64;
            }
            gamma[k] = cast(g);
            alpha[k] = cast((1.0 - KAPPA[k]) * g);
            error_const[k] = cast(KAPPA[k] * g + 1.0 / (k as f64 + 1.0));
        }
        Self {
            n,
            pattern,
            floor,
            newton_tol,
            gamma,
            alpha,
            error_const,
            d: vec![y0.clone(); ROWS],
            rescaled: vec![y0.clone(); MAX_ORDER],
            order: 1,
            h: T::zero(),
            history: false,
            n_equal: 0,
            cur: CurrentPoint::new(y0),
            jac: vec![T::zero(); n * n],
            jac_valid: false,
            jac_fresh: false,
            m: vec![T::zero(); n * n],
            lu: DenseLu::new(),
            lu_c: None,
            keep_lu: false,
            proposed_h: None,
            y_pred: y0.clone(),
            psi: y0.clone(),
            corr: y0.clone(),
            dy: y0.clone(),
            f_pred: y0.clone(),
            f: y0.clone(),
            ytmp: y0.clone(),
            iters: 0,
            neighbours: None,
            next_order: 1,
            dense: vec![y0.clone(); MAX_ORDER],
            dense_ready: false,
            w64: [0.0; MAX_ORDER],
        }
    }

    /// J into `jac`: at (t, y) with f0 = f(t, y) when `y` is given, else at the prediction
    /// (t, y_pred) with f_pred.
    fn evaluate_jacobian<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: Option<&S>) {
        let (at, fy) = match y {
            Some(y) => (y, &self.cur.f),
            None => (&self.y_pred, &self.f_pred),
        };
        self.cur.work.nfe += jacobian(
            sys,
            (t, at, fy),
            (&self.pattern, &self.floor),
            (&mut self.ytmp, &mut self.cur.scratch),
            &mut self.jac,
        );
        self.cur.work.jacobians += 1;
        self.jac_valid = true;
        self.jac_fresh = true;
        self.lu_c = None;
    }

    /// A decision (accept?, next step size), remembered as the proposal.
    fn propose(&mut self, accept: bool, h: T) -> (bool, T) {
        self.proposed_h = Some(h);
        (accept, h)
    }

    /// The LU of I - c J.
    fn factorise(&mut self, c: T) -> Result<(), StepFailure> {
        let n = self.n;
        for (m, &j) in self.m.iter_mut().zip(&self.jac) {
            *m = -c * j;
        }
        for i in 0..n {
            self.m[i * n + i] = self.m[i * n + i] + T::one();
        }
        self.cur.work.factorisations += 1;
        self.lu_c = None;
        self.lu
            .factorise(&self.m, n)
            .map_err(|_| StepFailure::Singular)?;
        self.lu_c = Some(c);
        Ok(())
    }

    /// Rescales D_1 .. D_k from spacing h to `factor` h: D <- (R(factor) U)^T D, U = R(1). Row
    /// and column 0 of R U are those of the identity, so D_0 is unchanged.
    fn rescale(&mut self, factor: T) {
        let k = self.order;
        let (r, u) = (spacing_matrix(k, factor), spacing_matrix(k, T::one()));
        for (j, out) in self.rescaled.iter_mut().enumerate().take(k) {
            let (j, out) = (j + 1, out.as_mut_slice());
            out.fill(T::zero());
            for (i, di) in self.d.iter().enumerate().take(k + 1).skip(1) {
                let c = (1..=k).fold(T::zero(), |s, l| s + r[i][l] * u[l][j]);
                if c != T::zero() {
                    for (o, &v) in out.iter_mut().zip(di.as_slice()) {
                        *o = *o + c * v;
                    }
                }
            }
        }
        for j in 1..=k {
            std::mem::swap(&mut self.d[j], &mut self.rescaled[j - 1]);
        }
    }

    /// Starts the history at (t, y) for a first step of size h: D_0 = y, D_1 = h f(t, y),
    /// order 1.
    fn start<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S) {
        self.cur.ensure(sys, t, y);
        self.d[0].as_mut_slice().copy_from_slice(y.as_slice());
        for (d, &f) in self.d[1]
            .as_mut_slice()
            .iter_mut()
            .zip(self.cur.f.as_slice())
        {
            *d = h * f;
        }
        for row in &mut self.d[2..] {
            row.as_mut_slice().fill(T::zero());
        }
        self.order = 1;
        self.next_order = 1;
        self.n_equal = 0;
        self.h = h;
        self.history = true;
        self.lu_c = None;
    }

    /// Newton's iteration for the correction (into `corr`, the iterate into `y_new`) with the
    /// factorised I - c J.
    fn newton<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t_new: T,
        c: T,
        y_new: &mut S,
        tol: &mut Tolerances<T>,
    ) -> Newton {
        y_new.as_mut_slice().copy_from_slice(self.y_pred.as_slice());
        self.corr.as_mut_slice().fill(T::zero());
        let mut norm_old: Option<T> = None;
        for it in 0..NEWTON_MAXITER {
            let f = if it == 0 {
                &mut self.f_pred
            } else {
                &mut self.f
            };
            sys.rhs(t_new, y_new, f);
            self.cur.work.nfe += 1;
            let f = f.as_slice();
            if f.iter().any(|x| !x.is_finite()) {
                return Newton::NonFinite;
            }
            // dy = (I - c J)^-1 (c f - psi - d)
            for (((o, &fv), &p), &d) in self
                .dy
                .as_mut_slice()
                .iter_mut()
                .zip(f)
                .zip(self.psi.as_slice())
                .zip(self.corr.as_slice())
            {
                *o = c * fv - p - d;
            }
            self.lu.solve_in_place(self.dy.as_mut_slice());
            self.cur.work.linear_solves += 1;
            self.cur.work.newton_iterations += 1;
            self.cur
                .scratch
                .as_mut_slice()
                .copy_from_slice(self.dy.as_slice());
            let norm = norm_at(tol, self.y_pred.as_slice(), self.cur.scratch.as_mut_slice());
            if !norm.is_finite() {
                return Newton::Diverged;
            }
            let rate = norm_old.map(|old| norm / old);
            if let Some(rate) = rate {
                let left = (NEWTON_MAXITER - it) as i32;
                if rate >= T::one() || rate.powi(left) / (T::one() - rate) * norm > self.newton_tol
                {
                    return Newton::Diverged;
                }
            }
            for ((y, d), &v) in y_new
                .as_mut_slice()
                .iter_mut()
                .zip(self.corr.as_mut_slice())
                .zip(self.dy.as_slice())
            {
                *y = *y + v;
                *d = *d + v;
            }
            let done = match rate {
                None => norm == T::zero(),
                Some(rate) => rate / (T::one() - rate) * norm < self.newton_tol,
            };
            if done {
                return Newton::Converged(it + 1);
            }
            norm_old = Some(norm);
        }
        Newton::Diverged
    }
}

impl<T: Float, S: State<T>> Stepper<T, S> for BdfStepper<T, S> {
    fn name(&self) -> &'static str {
        "BDF"
    }
    /// The current order.
    fn order(&self) -> u32 {
        self.order as u32
    }
    fn error_order(&self) -> u32 {
        self.order as u32 + 1
    }
    /// The first step is of order 1 with a local error of O(h^2): the exponent 1/2 (scipy's
    /// `select_initial_step` for its BDF). HINIT's 1/order would ask h ~ 0.01 / ||f'||, a step
    /// many decades too small on stiff problems, which the order-1 start then grows back from
    /// by at most 10x per two steps.
    fn initial_step_order(&self) -> u32 {
        self.error_order()
    }
    fn is_adaptive(&self) -> bool {
        true
    }
    fn work(&self) -> Stats {
        self.cur.work
    }
    fn add_nfe(&mut self, n: usize) {
        self.cur.work.nfe += n;
    }
    fn derivative<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) -> (&S, &mut S) {
        self.cur.derivative(sys, t, y)
    }
    fn attempt<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
        tol: Option<&mut Tolerances<T>>,
    ) -> Attempt<T> {
        // The solver refuses fixed steps for BDF: without tolerances there is no Newton test.
        let Some(tol) = tol else {
            return Attempt::Failed(StepFailure::Newton);
        };
        self.dense_ready = false;
        self.neighbours = None;
        if !self.history {
            self.start(sys, t, h, y);
        } else if h != self.h {
            self.rescale(h / self.h);
            self.h = h;
            self.n_equal = 0;
        }
        if !self.jac_valid {
            self.cur.ensure(sys, t, y);
            self.evaluate_jacobian(sys, t, Some(y));
        }
        let k = self.order;
        let t_new = t + h;
        let inv_alpha = T::one() / self.alpha[k];
        {
            let (pred, psi) = (self.y_pred.as_mut_slice(), self.psi.as_mut_slice());
            pred.copy_from_slice(self.d[0].as_slice());
            psi.fill(T::zero());
            for (j, dj) in self.d.iter().enumerate().take(k + 1).skip(1) {
                let g = self.gamma[j] * inv_alpha;
                for ((p, s), &v) in pred.iter_mut().zip(psi.iter_mut()).zip(dj.as_slice()) {
                    *p = *p + v;
                    *s = *s + g * v;
                }
            }
        }
        let c = h * inv_alpha;
        if self.proposed_h.take() != Some(h) {
            self.keep_lu = false;
        }
        let iters = loop {
            let reusable = self.lu_c == Some(c) || (self.keep_lu && self.lu_c.is_some());
            if !reusable {
                if let Err(failure) = self.factorise(c) {
                    return Attempt::Failed(failure);
                }
            }
            match self.newton(sys, t_new, c, y_new, tol) {
                Newton::Converged(iters) => break iters,
                // A step into a region where f overflows: the driver shrinks it hard.
                Newton::NonFinite => return Attempt::Done { err: T::nan() },
                Newton::Diverged => {
                    self.cur.work.newton_failures += 1;
                    self.keep_lu = false;
                    if !self.jac_fresh {
                        // A Jacobian from an earlier step: refresh it at the prediction, retry.
                        self.evaluate_jacobian(sys, t_new, None);
                    } else {
                        // With a fresh Jacobian the step is too large, also when the LU was of
                        // another c (scipy's choice; refactorising at this h instead took more
                        // LUs over a solve).
                        return Attempt::Failed(StepFailure::Newton);
                    }
                }
            }
        };
        self.iters = iters;
        let (at, corr, scratch) = (
            y_new.as_slice(),
            self.corr.as_slice(),
            self.cur.scratch.as_mut_slice(),
        );
        let ec = self.error_const;
        let zero = T::zero();
        let err = combination_norm(tol, at, ec[k], (corr, zero, corr), scratch);
        // Orders k - 1 and k + 1 are compared once k + 1 steps have been taken at this h.
        if self.n_equal + 1 > k {
            let lower = match k {
                1 => T::infinity(),
                _ => {
                    let dk = self.d[k].as_slice();
                    combination_norm(tol, at, ec[k - 1], (dk, T::one(), corr), scratch)
                }
            };
            let higher = match k {
                MAX_ORDER => T::infinity(),
                _ => {
                    let dk1 = self.d[k + 1].as_slice();
                    combination_norm(tol, at, ec[k + 1], (corr, -T::one(), dk1), scratch)
                }
            };
            self.neighbours = Some((lower, higher));
        }
        Attempt::Done { err }
    }
    fn decide<C: StepController<T>>(&mut self, _ctrl: &mut C, err: T, h: T) -> (bool, T) {
        let k = self.order;
        let maxit: T = cast(NEWTON_MAXITER as f64);
        let two: T = cast(2.0);
        let safety =
            cast::<T>(0.9) * (two * maxit + T::one()) / (two * maxit + cast(self.iters as f64));
        let root = |e: T, q: usize| e.powf(-T::one() / cast(q as f64));
        if err > T::one() {
            let factor = (safety * root(err, k + 1)).max(cast(MIN_FACTOR));
            self.keep_lu = true;
            return self.propose(false, h * factor);
        }
        self.next_order = k;
        let Some((lower, higher)) = self.neighbours else {
            return self.propose(true, h);
        };
        // The order whose error allows the largest step (the lower one on ties).
        let candidates = [
            (k - 1, root(lower, k)),
            (k, root(err, k + 1)),
            (k + 1, root(higher, k + 2)),
        ];
        let (order, best) =
            candidates
                .into_iter()
                .fold((k, T::neg_infinity()), |(o, b), (oc, fc)| {
                    if fc > b {
                        (oc, fc)
                    } else {
                        (o, b)
                    }
                });
        self.next_order = order;
        self.keep_lu = false;
        self.propose(true, h * (safety * best).min(cast(MAX_FACTOR)))
    }
    fn stages(&self) -> &[S] {
        &self.dense[..0]
    }
    fn prepare_dense<F: OdeSystem<T, S>>(
        &mut self,
        _sys: &mut F,
        _t: T,
        _h: T,
        _y: &S,
        _y_new: &S,
    ) {
        if self.dense_ready {
            return;
        }
        // The new differences: D'_j = sum_{i=j}^k D_i + d, from the top down.
        let k = self.order;
        for j in (1..=k).rev() {
            let (lower, upper) = self.dense.split_at_mut(j);
            let out = lower[j - 1].as_mut_slice();
            let above = if j == k {
                self.corr.as_slice()
            } else {
                upper[0].as_slice()
            };
            for ((o, &a), &dj) in out.iter_mut().zip(above).zip(self.d[j].as_slice()) {
                *o = a + dj;
            }
        }
        for v in &mut self.dense[k..] {
            v.as_mut_slice().fill(T::zero());
        }
        self.dense_ready = true;
    }
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        let interp = self.dense_vectors().1;
        interp.apply((theta, h), y, &self.dense, &mut self.w64, out);
    }
    fn dense_vectors(&self) -> (&[S], Interpolant) {
        (
            &self.dense,
            Interpolant {
                weights: bdf_weights,
                vectors: MAX_ORDER,
                times_h: false,
            },
        )
    }
    fn accept(&mut self) {
        // D_{k+2} = d - D_{k+1}, D_{k+1} = d, D_i += D_{i+1} for i = k .. 0: the differences of
        // the polynomial through y_new.
        let k = self.order;
        {
            let (low, high) = self.d.split_at_mut(k + 2);
            for ((x, &d), prev) in high[0]
                .as_mut_slice()
                .iter_mut()
                .zip(self.corr.as_slice())
                .zip(low[k + 1].as_mut_slice())
            {
                *x = d - *prev;
                *prev = d;
            }
        }
        for i in (0..=k).rev() {
            let (low, high) = self.d.split_at_mut(i + 1);
            for (x, &v) in low[i].as_mut_slice().iter_mut().zip(high[0].as_slice()) {
                *x = *x + v;
            }
        }
        self.n_equal += 1;
        if self.neighbours.is_some() {
            // An order selection took place: the new order starts its count at the new h.
            self.order = self.next_order;
            self.n_equal = 0;
        }
        self.neighbours = None;
        self.jac_fresh = false;
        self.cur.valid = false;
        self.dense_ready = false;
    }
    fn restart(&mut self) {
        self.history = false;
        self.cur.valid = false;
        self.jac_valid = false;
        self.jac_fresh = false;
        self.dense_ready = false;
        self.lu_c = None;
        self.keep_lu = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NDF coefficients against Shampine and Reichelt's (and scipy's) values.
    #[test]
    fn coefficients() {
        let s = BdfStepper::<f64, Vec<f64>>::new(
            &vec![0.0],
            Sparsity::dense(1),
            vec![1e-9],
            &Tolerance::Scalar(1e-6),
        );
        assert_eq!(s.gamma[2], 1.5);
        assert!((s.alpha[1] - 1.185).abs() < 1e-15);
        // error_const_1 = kappa_1 + 1/2; BDF5 (kappa = 0): 1/6.
        assert!((s.error_const[1] - 0.315).abs() < 1e-15);
        assert!((s.error_const[5] - 1.0 / 6.0).abs() < 1e-15);
        assert!((s.newton_tol - 1e-3).abs() < 1e-15);
    }

    /// Rescaling the differences of a polynomial of degree k from spacing h to factor h gives
    /// the differences of the same polynomial at the new spacing.
    #[test]
    fn rescaling_keeps_the_polynomial() {
        let p = |t: f64| 1.0 + 2.0 * t - 0.5 * t * t + 0.25 * t * t * t;
        // Backward differences of p at t = 0 with spacing h, order k.
        let diffs = |h: f64, k: usize| -> Vec<f64> {
            let mut v: Vec<f64> = (0..=k).map(|i| p(-(i as f64) * h)).collect();
            let mut out = vec![v[0]];
            for _ in 0..k {
                v = v.windows(2).map(|w| w[0] - w[1]).collect();
                out.push(v[0]);
            }
            out
        };
        for k in 3..=MAX_ORDER {
            let mut s = BdfStepper::<f64, Vec<f64>>::new(
                &vec![0.0],
                Sparsity::dense(1),
                vec![1e-9],
                &Tolerance::Scalar(1e-6),
            );
            s.order = k;
            for (row, d) in s.d.iter_mut().zip(diffs(0.3, k)) {
                row[0] = d;
            }
            s.rescale(0.7 / 0.3);
            for (j, want) in diffs(0.7, k).into_iter().enumerate() {
                assert!((s.d[j][0] - want).abs() < 1e-12, "k {k} D_{j}");
            }
        }
    }

    /// The dense weights reproduce Newton's backward interpolation: at theta = 1 the new point,
    /// at theta = 0 the previous one, and a cubic exactly in between.
    #[test]
    fn dense_weights_interpolate() {
        let mut w = [0.0; MAX_ORDER];
        bdf_weights(1.0, &mut w);
        assert_eq!(w, [1.0, 0.0, 0.0, 0.0, 0.0]);
        bdf_weights(0.0, &mut w);
        assert_eq!(w, [0.0; MAX_ORDER]);
        // p(t) = t^3 on points 1, 0, -1, -2 (h = 1, step from 0 to 1): D_1 = 1, D_2 = 1 - 0 -
        // (0 + 1)... computed directly.
        let pts = [1.0f64, 0.0, -1.0, -8.0];
        let d1 = pts[0] - pts[1];
        let d2 = pts[0] - 2.0 * pts[1] + pts[2];
        let d3 = pts[0] - 3.0 * pts[1] + 3.0 * pts[2] - pts[3];
        for theta in [0.1, 0.5, 0.77] {
            bdf_weights(theta, &mut w);
            let y = pts[1] + w[0] * d1 + w[1] * d2 + w[2] * d3;
            let want = (theta - 1.0f64 + 1.0).powi(3);
            assert!((y - want).abs() < 1e-14, "theta {theta}: {y} vs {want}");
        }
    }
}
