//! Radau IIA of order 5 (3 stages), a port of scipy's `Radau` (Hairer and Wanner, "Solving
//! Ordinary Differential Equations II", Sec. IV.8) that does scipy's work step for step.
//!
//! A step solves the collocation system for Z_i = y(t + c_i h) - y, i = 1..3, by a simplified
//! Newton iteration on the transformed variables W = T^-1 Z, in which the Radau matrix A =
//! T diag(mu_real, mu_complex, conj(mu_complex))^-1 T^-1 decouples: one real system with
//! (mu_real / h) I - J and one complex system with (mu_complex / h) I - J per iteration (at most
//! 6 iterations, stopped early when the observed rate of convergence cannot reach the
//! tolerance). The iteration starts from the previous step's collocation polynomial
//! extrapolated. The error estimate is the embedded order-3 formula filtered through the real
//! LU (plus one more evaluation and solve after a rejection, scipy's variant of Hairer's
//! improvement); the step size comes from Gustafsson's predictive controller with a safety
//! factor that shrinks with the Newton iterations used. The Jacobian is kept until a step's
//! Newton iteration converged slowly (then it is refreshed at the new point) or failed with an
//! older Jacobian; the LUs are kept while the step size is (the controller holds h when it
//! would grow by less than 1.2x). Dense output is the cubic collocation polynomial.
//!
//! Work counters as scipy's: `factorisations` counts each LU (2 per iteration matrix: the real
//! and the complex one, scipy's `nlu`); `linear_solves` counts the real and the complex solve of
//! each Newton iteration and each error-estimate solve.
use num_complex::Complex;
use num_traits::Float;

use crate::bdf::{newton_tolerance, norm_at};
use crate::complex_lu::ComplexLu;
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

/// sqrt(6), in the nodes and the coefficients.
fn s6() -> f64 {
    6f64.sqrt()
}

/// The nodes c_i.
fn nodes() -> [f64; 3] {
    [(4.0 - s6()) / 10.0, (4.0 + s6()) / 10.0, 1.0]
}

/// The error estimate's weights on Z (divided by h).
fn error_weights() -> [f64; 3] {
    [
        (-13.0 - 7.0 * s6()) / 3.0,
        (-13.0 + 7.0 * s6()) / 3.0,
        -1.0 / 3.0,
    ]
}

/// The real eigenvalue of A^-1.
fn mu_real() -> f64 {
    3.0 + 3f64.powf(2.0 / 3.0) - 3f64.powf(1.0 / 3.0)
}

/// The complex eigenvalue of A^-1 (with its conjugate), as (re, im).
fn mu_complex() -> (f64, f64) {
    (
        3.0 + 0.5 * (3f64.powf(1.0 / 3.0) - 3f64.powf(2.0 / 3.0)),
        -0.5 * (3f64.powf(5.0 / 6.0) + 3f64.powf(7.0 / 6.0)),
    )
}

/// Z = T W.
const T_MAT: [[f64; 3]; 3] = [
    [
        0.09443876248897524,
        -0.1412552950209542,
        0.03002919410514742,
    ],
    [0.2502131229653333, 0.20412935229379994, -0.3829421127572619],
    [1.0, 1.0, 0.0],
];

/// W = TI Z.
const TI: [[f64; 3]; 3] = [
    [4.178718591551904, 0.32768282076106237, 0.5233764454994495],
    [
        -4.178718591551904,
        -0.32768282076106237,
        0.47662355450055044,
    ],
    [0.5028726349457868, -2.571926949855605, 0.5960392048282249],
];

/// The dense output's coefficients: Q = Z^T P, y(t + x h) = y + sum_j Q_j x^(j+1).
fn dense_coefficients() -> [[f64; 3]; 3] {
    let s = s6();
    [
        [
            13.0 / 3.0 + 7.0 * s / 3.0,
            -23.0 / 3.0 - 22.0 * s / 3.0,
            10.0 / 3.0 + 5.0 * s,
        ],
        [
            13.0 / 3.0 - 7.0 * s / 3.0,
            -23.0 / 3.0 + 22.0 * s / 3.0,
            10.0 / 3.0 - 5.0 * s,
        ],
        [1.0 / 3.0, -8.0 / 3.0, 10.0 / 3.0],
    ]
}

/// Newton iterations per attempt at most.
const NEWTON_MAXITER: usize = 6;
/// Bounds of the step-size factor after a rejected and after an accepted step.
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;
/// A converged iteration slower than this (after more than 2 iterations) asks for a new
/// Jacobian at the next point.
const SLOW_RATE: f64 = 1e-3;
/// The step size is kept (and with it the LUs) when the controller would grow it by less.
const HOLD_BELOW: f64 = 1.2;

/// The dense output's weights over Q_1 .. Q_3: x, x^2, x^3.
fn radau_weights(theta: f64, w: &mut [f64]) {
    w[0] = theta;
    w[1] = theta * theta;
    w[2] = w[1] * theta;
}

/// Gustafsson's predictive factor (Hairer and Wanner IV.8, scipy's `predict_factor`):
/// min(1, (h / h_old) (err_old / err)^(1/4)) err^(-1/4), the one-step factor err^(-1/4) without
/// a previous step.
fn predict_factor<T: Float>(h_abs: T, old: Option<(T, T)>, err: T) -> T {
    let quarter: T = cast(0.25);
    let multiplier = match old {
        Some((h_old, err_old)) if err != T::zero() => h_abs / h_old * (err_old / err).powf(quarter),
        _ => T::one(),
    };
    multiplier.min(T::one()) * err.powf(-quarter)
}

/// The Radau stepper: Jacobian, the two LUs, the collocation variables and the previous
/// step's polynomial.
pub(crate) struct RadauStepper<T, S> {
    n: usize,
    pattern: Sparsity,
    /// The finite differences' floor per component (the absolute tolerance).
    floor: Vec<T>,
    newton_tol: T,
    /// The tolerances of the Newton test when fixed steps give none (taken out during an
    /// attempt).
    fixed_tol: Option<Tolerances<T>>,
    /// Fixed steps: no controller, so the Jacobian counts as old after every step and the LUs
    /// are kept only while h is.
    fixed: bool,
    c: [T; 3],
    e: [T; 3],
    mu_real: T,
    mu_complex: Complex<T>,
    /// f at the current point, scratch and work.
    cur: CurrentPoint<S>,
    jac: Vec<T>,
    jac_valid: bool,
    /// The Jacobian is at the current point or was refreshed for this step (scipy's
    /// `current_jac`): a Newton failure then shrinks the step instead of refreshing it.
    jac_current: bool,
    /// The last step converged slowly: refresh the Jacobian at the new point.
    jac_due: bool,
    m_real: Vec<T>,
    m_complex: Vec<Complex<T>>,
    lu_real: DenseLu<T>,
    lu_complex: ComplexLu<T>,
    /// The step size the LUs are of, while they are usable.
    lu_h: Option<T>,
    /// The extrapolated start of the iteration, the iterate Z and W = TI Z.
    z0: [S; 3],
    z: [S; 3],
    w: [S; 3],
    /// f at the stages, then the Newton updates.
    stage_f: [S; 3],
    dw: [S; 3],
    rhs_complex: Vec<Complex<T>>,
    /// Z^T E / h of the last attempt, and its error vector.
    ze: S,
    err: S,
    ytmp: S,
    /// The attempt's start (t, h, y), for the polynomial once it is accepted.
    t_att: T,
    h_att: T,
    y_att: S,
    /// The polynomial of the last attempt (after `prepare_dense`) and of the last accepted
    /// step: Q, its start y and its (t, h).
    q: [S; 3],
    dense_ready: bool,
    q_prev: [S; 3],
    y_prev: S,
    prev_span: Option<(T, T)>,
    /// Newton iterations and the last rate of convergence of the last converged attempt.
    iters: usize,
    rate: Option<T>,
    /// An attempt of the current step was rejected for its error (a second error solve then).
    rejected: bool,
    /// The next attempt starts a step.
    step_start: bool,
    /// The step size proposed for the current step (scipy's `h_abs` at its start).
    proposal: Option<T>,
    entry_h_abs: T,
    /// The previous step's proposed size and error norm (the predictive controller's memory).
    old: Option<(T, T)>,
    w64: [f64; 3],
}

impl<T: Float, S: State<T>> RadauStepper<T, S> {
    /// A stepper with buffers shaped as `y0`, the Jacobian's pattern (checked by the caller),
    /// the finite differences' floor, the relative tolerance (it sets the Newton tolerance) and
    /// the tolerances of the Newton test of fixed steps (`None` if they are invalid: the driver
    /// then refuses the solve before any step).
    pub(crate) fn new(
        y0: &S,
        pattern: Sparsity,
        floor: Vec<T>,
        rtol: &Tolerance<T>,
        fixed_tol: Option<Tolerances<T>>,
    ) -> Self {
        let n = y0.len();
        let three = || [y0.clone(), y0.clone(), y0.clone()];
        let (mr, (cr, ci)) = (mu_real(), mu_complex());
        Self {
            n,
            pattern,
            floor,
            newton_tol: newton_tolerance(rtol),
            fixed_tol,
            fixed: false,
            c: nodes().map(cast),
            e: error_weights().map(cast),
            mu_real: cast(mr),
            mu_complex: Complex::new(cast(cr), cast(ci)),
            cur: CurrentPoint::new(y0),
            jac: vec![T::zero(); n * n],
            jac_valid: false,
            jac_current: false,
            jac_due: false,
            m_real: vec![T::zero(); n * n],
            m_complex: vec![Complex::new(T::zero(), T::zero()); n * n],
            lu_real: DenseLu::new(),
            lu_complex: ComplexLu::new(),
            lu_h: None,
            z0: three(),
            z: three(),
            w: three(),
            stage_f: three(),
            dw: three(),
            rhs_complex: vec![Complex::new(T::zero(), T::zero()); n],
            ze: y0.clone(),
            err: y0.clone(),
            ytmp: y0.clone(),
            t_att: T::zero(),
            h_att: T::zero(),
            y_att: y0.clone(),
            q: three(),
            dense_ready: false,
            q_prev: three(),
            y_prev: y0.clone(),
            prev_span: None,
            iters: 0,
            rate: None,
            rejected: false,
            step_start: true,
            proposal: None,
            entry_h_abs: T::zero(),
            old: None,
            w64: [0.0; 3],
        }
    }

    /// J at (t, y) (f there is `f`); the LUs are then out of date.
    fn evaluate_jacobian<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) {
        self.cur.work.nfe += jacobian(
            sys,
            (t, y, &self.cur.f),
            (&self.pattern, &self.floor),
            (&mut self.ytmp, &mut self.cur.scratch),
            &mut self.jac,
        );
        self.cur.work.jacobians += 1;
        self.jac_valid = true;
        self.jac_current = true;
        self.jac_due = false;
        self.lu_h = None;
    }

    /// The LUs of (mu_real / h) I - J and (mu_complex / h) I - J: two factorisations.
    fn factorise(&mut self, h: T) -> Result<(), StepFailure> {
        let n = self.n;
        let (mr, mc) = (self.mu_real / h, self.mu_complex / h);
        for ((r, c), &j) in self
            .m_real
            .iter_mut()
            .zip(&mut self.m_complex)
            .zip(&self.jac)
        {
            *r = -j;
            *c = Complex::new(-j, T::zero());
        }
        for i in 0..n {
            let d = i * n + i;
            self.m_real[d] = mr + self.m_real[d];
            self.m_complex[d] = mc + self.m_complex[d];
        }
        self.lu_h = None;
        let singular = |_| StepFailure::Singular;
        self.cur.work.factorisations += 1;
        self.lu_real.factorise(&self.m_real, n).map_err(singular)?;
        self.cur.work.factorisations += 1;
        self.lu_complex
            .factorise(&self.m_complex, n)
            .map_err(singular)?;
        self.lu_h = Some(h);
        Ok(())
    }

    /// The start of the Newton iteration: the previous step's polynomial at t + c_i h, less y
    /// (zero at the first step and after a restart).
    fn extrapolate(&mut self, t: T, h: T, y: &S) {
        let Some((t_old, h_old)) = self.prev_span else {
            for z in &mut self.z0 {
                z.as_mut_slice().fill(T::zero());
            }
            return;
        };
        for (z, &c) in self.z0.iter_mut().zip(&self.c) {
            let x = (t + h * c - t_old) / h_old;
            let p = [x, x * x, x * x * x];
            let [q0, q1, q2] = [0, 1, 2].map(|j| self.q_prev[j].as_slice());
            let rows = z.as_mut_slice().iter_mut().zip(self.y_prev.as_slice());
            for (j, ((o, &yo), &yc)) in rows.zip(y.as_slice()).enumerate() {
                let poly = q0[j] * p[0] + q1[j] * p[1] + q2[j] * p[2];
                *o = poly + yo - yc;
            }
        }
    }

    /// The scaled RMS norm over the three rows of `dw` (scale at `y`).
    fn update_norm(&mut self, tol: &mut Tolerances<T>, y: &S) -> T {
        let mut sum = T::zero();
        for row in &self.dw {
            self.cur
                .scratch
                .as_mut_slice()
                .copy_from_slice(row.as_slice());
            let e = norm_at(tol, y.as_slice(), self.cur.scratch.as_mut_slice());
            sum = sum + e * e;
        }
        (sum / cast(3.0)).sqrt()
    }

    /// scipy's `solve_collocation_system`: Newton's iteration from Z0 with the factorised
    /// matrices. Returns whether it converged and the iterations taken; Z in `z`.
    fn newton<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        (t, h, y): (T, T, &S),
        tol: &mut Tolerances<T>,
    ) -> (bool, usize) {
        let (m_real, m_complex) = (self.mu_real / h, self.mu_complex / h);
        let ti: [[T; 3]; 3] = TI.map(|r| r.map(cast));
        let tm: [[T; 3]; 3] = T_MAT.map(|r| r.map(cast));
        let ti_complex: [Complex<T>; 3] = [0, 1, 2].map(|i| Complex::new(ti[1][i], ti[2][i]));
        for i in 0..3 {
            self.z[i]
                .as_mut_slice()
                .copy_from_slice(self.z0[i].as_slice());
        }
        combine(&ti, &self.z, &mut self.w);
        let mut norm_old: Option<T> = None;
        self.rate = None;
        let mut converged = false;
        let mut k = 0;
        while k < NEWTON_MAXITER {
            for i in 0..3 {
                let ys = self.ytmp.as_mut_slice();
                for ((o, &yv), &zv) in ys.iter_mut().zip(y.as_slice()).zip(self.z[i].as_slice()) {
                    *o = yv + zv;
                }
                sys.rhs(t + h * self.c[i], &self.ytmp, &mut self.stage_f[i]);
            }
            self.cur.work.nfe += 3;
            let finite = self
                .stage_f
                .iter()
                .all(|f| f.as_slice().iter().all(|x| x.is_finite()));
            if !finite {
                break;
            }
            {
                let [f0, f1, f2] = [0, 1, 2].map(|i| self.stage_f[i].as_slice());
                let [w0, w1, w2] = [0, 1, 2].map(|i| self.w[i].as_slice());
                let real = self.dw[0].as_mut_slice();
                for j in 0..self.n {
                    let fr = f0[j] * ti[0][0] + f1[j] * ti[0][1] + f2[j] * ti[0][2];
                    real[j] = fr - m_real * w0[j];
                    let fc = ti_complex[0] * f0[j] + ti_complex[1] * f1[j] + ti_complex[2] * f2[j];
                    self.rhs_complex[j] = fc - m_complex * Complex::new(w1[j], w2[j]);
                }
            }
            self.lu_real.solve_in_place(self.dw[0].as_mut_slice());
            self.lu_complex.solve_in_place(&mut self.rhs_complex);
            self.cur.work.linear_solves += 2;
            self.cur.work.newton_iterations += 1;
            {
                let [_, d1, d2] = &mut self.dw;
                let pairs = d1.as_mut_slice().iter_mut().zip(d2.as_mut_slice());
                for ((re, im), z) in pairs.zip(&self.rhs_complex) {
                    *re = z.re;
                    *im = z.im;
                }
            }
            let norm = self.update_norm(tol, y);
            if !norm.is_finite() {
                break;
            }
            let rate = norm_old.map(|old| norm / old);
            self.rate = rate;
            if let Some(rate) = rate {
                let left = (NEWTON_MAXITER - k) as i32;
                if rate >= T::one() || rate.powi(left) / (T::one() - rate) * norm > self.newton_tol
                {
                    break;
                }
            }
            for (w, dw) in self.w.iter_mut().zip(&self.dw) {
                for (x, &d) in w.as_mut_slice().iter_mut().zip(dw.as_slice()) {
                    *x = *x + d;
                }
            }
            combine(&tm, &self.w, &mut self.z);
            let done = match rate {
                None => norm == T::zero(),
                Some(rate) => rate / (T::one() - rate) * norm < self.newton_tol,
            };
            if done {
                converged = true;
                break;
            }
            norm_old = Some(norm);
            k += 1;
        }
        (converged, (k + 1).min(NEWTON_MAXITER))
    }

    /// The error estimate: (mu_real / h I - J)^-1 (f(v) + Z^T E / h), its scaled norm at
    /// max(|y|, |y_new|); f(v) is `f` (v = y), or `ftmp` for the second estimate.
    fn error_norm(&mut self, tol: &mut Tolerances<T>, (y, y_new): (&S, &S), second: bool) -> T {
        let f = if second {
            &self.cur.scratch
        } else {
            &self.cur.f
        };
        for (e, (&fv, &zv)) in self
            .err
            .as_mut_slice()
            .iter_mut()
            .zip(f.as_slice().iter().zip(self.ze.as_slice()))
        {
            *e = fv + zv;
        }
        self.lu_real.solve_in_place(self.err.as_mut_slice());
        self.cur.work.linear_solves += 1;
        self.ytmp
            .as_mut_slice()
            .copy_from_slice(self.err.as_slice());
        let r = tol.norm_range();
        let (a, b) = (&y.as_slice()[r.clone()], &y_new.as_slice()[r.clone()]);
        error_of(
            T::one(),
            (a, b),
            tol,
            &mut self.ytmp.as_mut_slice()[r],
            None,
        )
    }

    /// One attempt (see [`Stepper::attempt`]) with the Newton test's tolerances.
    fn attempt_with<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        (t, h, y): (T, T, &S),
        y_new: &mut S,
        tol: &mut Tolerances<T>,
    ) -> Attempt<T> {
        if self.step_start {
            self.step_start = false;
            self.entry_h_abs = self.proposal.unwrap_or(h.abs());
        }
        self.cur.ensure(sys, t, y);
        if !self.jac_valid || self.jac_due {
            self.evaluate_jacobian(sys, t, y);
        }
        if self.fixed && self.lu_h != Some(h) {
            self.lu_h = None;
        }
        self.extrapolate(t, h, y);
        let converged = loop {
            if self.lu_h.is_none() {
                if let Err(failure) = self.factorise(h) {
                    return Attempt::Failed(failure);
                }
            }
            let (converged, iters) = self.newton(sys, (t, h, y), tol);
            self.iters = iters;
            if converged {
                break true;
            }
            self.cur.work.newton_failures += 1;
            if self.jac_current {
                break false;
            }
            self.evaluate_jacobian(sys, t, y);
        };
        if !converged {
            self.lu_h = None;
            return Attempt::Failed(StepFailure::Newton);
        }
        for (o, (&yv, &zv)) in y_new
            .as_mut_slice()
            .iter_mut()
            .zip(y.as_slice().iter().zip(self.z[2].as_slice()))
        {
            *o = yv + zv;
        }
        {
            let [z0, z1, z2] = [0, 1, 2].map(|i| self.z[i].as_slice());
            let e = self.e;
            for (j, x) in self.ze.as_mut_slice().iter_mut().enumerate() {
                *x = (z0[j] * e[0] + z1[j] * e[1] + z2[j] * e[2]) / h;
            }
        }
        let mut err = self.error_norm(tol, (y, y_new), false);
        if self.rejected && err > T::one() {
            // scipy's second estimate after a rejection: f at y + the first estimate.
            for (o, (&yv, &ev)) in self
                .ytmp
                .as_mut_slice()
                .iter_mut()
                .zip(y.as_slice().iter().zip(self.err.as_slice()))
            {
                *o = yv + ev;
            }
            sys.rhs(t, &self.ytmp, &mut self.cur.scratch);
            self.cur.work.nfe += 1;
            err = self.error_norm(tol, (y, y_new), true);
        }
        if !err.is_finite() {
            // The driver retries at h / 10 without a decision: the LUs are of this h.
            self.lu_h = None;
        }
        self.t_att = t;
        self.h_att = h;
        self.y_att.as_mut_slice().copy_from_slice(y.as_slice());
        Attempt::Done { err }
    }
}

/// out_r = sum_i m[r][i] v_i for the three rows.
fn combine<T: Float, S: State<T>>(m: &[[T; 3]; 3], v: &[S; 3], out: &mut [S; 3]) {
    let [v0, v1, v2] = [0, 1, 2].map(|i| v[i].as_slice());
    for (row, o) in m.iter().zip(out.iter_mut()) {
        for (j, x) in o.as_mut_slice().iter_mut().enumerate() {
            *x = row[0] * v0[j] + row[1] * v1[j] + row[2] * v2[j];
        }
    }
}

impl<T: Float, S: State<T>> Stepper<T, S> for RadauStepper<T, S> {
    fn name(&self) -> &'static str {
        "Radau"
    }
    fn order(&self) -> u32 {
        5
    }
    /// The embedded estimate is of order 3: its error scales as h^4.
    fn error_order(&self) -> u32 {
        4
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
        self.fixed = tol.is_none();
        match tol {
            Some(tol) => self.attempt_with(sys, (t, h, y), y_new, tol),
            None => {
                let Some(mut own) = self.fixed_tol.take() else {
                    return Attempt::Failed(StepFailure::Newton);
                };
                let outcome = self.attempt_with(sys, (t, h, y), y_new, &mut own);
                self.fixed_tol = Some(own);
                outcome
            }
        }
    }
    /// scipy's controller for Radau: the predictive factor times a safety factor that is 0.9
    /// after one Newton iteration and smaller after more; after a rejection at least 0.2x;
    /// after an acceptance at most 10x, and held at 1x (keeping the LUs) below 1.2x unless a
    /// slowly converging iteration asks for a new Jacobian.
    fn decide<C: StepController<T>>(&mut self, _ctrl: &mut C, err: T, h: T) -> (bool, T) {
        let maxit: T = cast(NEWTON_MAXITER as f64);
        let two: T = cast(2.0);
        let safety =
            cast::<T>(0.9) * (two * maxit + T::one()) / (two * maxit + cast(self.iters as f64));
        let h_abs = h.abs();
        let predicted = predict_factor(h_abs, self.old, err);
        if err > T::one() {
            self.lu_h = None;
            self.rejected = true;
            return (false, h * (safety * predicted).max(cast(MIN_FACTOR)));
        }
        let slow = self.iters > 2 && self.rate.is_some_and(|r| r > cast(SLOW_RATE));
        let mut factor = (safety * predicted).min(cast(MAX_FACTOR));
        if !slow && factor < cast(HOLD_BELOW) {
            factor = T::one();
        } else {
            self.lu_h = None;
        }
        self.jac_due = slow;
        self.jac_current = slow;
        self.old = Some((self.entry_h_abs, err));
        self.proposal = Some(h_abs * factor);
        (true, h * factor)
    }
    fn stages(&self) -> &[S] {
        &self.q[..0]
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
        let p: [[T; 3]; 3] = dense_coefficients().map(|r| r.map(cast));
        // Q_j = sum_i Z_i P_ij: the transpose of P applied to the rows of Z.
        let pt = [0, 1, 2].map(|j| [p[0][j], p[1][j], p[2][j]]);
        combine(&pt, &self.z, &mut self.q);
        self.dense_ready = true;
    }
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        let interp = self.dense_vectors().1;
        interp.apply((theta, h), y, &self.q, &mut self.w64, out);
    }
    fn dense_vectors(&self) -> (&[S], Interpolant) {
        (
            &self.q,
            Interpolant {
                weights: radau_weights,
                vectors: 3,
                times_h: false,
            },
        )
    }
    fn accept(&mut self) {
        if !self.dense_ready {
            let p: [[T; 3]; 3] = dense_coefficients().map(|r| r.map(cast));
            let pt = [0, 1, 2].map(|j| [p[0][j], p[1][j], p[2][j]]);
            combine(&pt, &self.z, &mut self.q);
        }
        std::mem::swap(&mut self.q, &mut self.q_prev);
        std::mem::swap(&mut self.y_att, &mut self.y_prev);
        self.prev_span = Some((self.t_att, (self.t_att + self.h_att) - self.t_att));
        self.dense_ready = false;
        self.cur.valid = false;
        self.rejected = false;
        self.step_start = true;
        if self.fixed {
            self.jac_current = false;
        }
    }
    fn restart(&mut self) {
        self.prev_span = None;
        self.cur.valid = false;
        self.jac_valid = false;
        self.jac_current = false;
        self.jac_due = false;
        self.lu_h = None;
        self.rejected = false;
        self.step_start = true;
        self.proposal = None;
        self.old = None;
        self.dense_ready = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T and TI are inverses, and T diag(mu) TI is A^-1 of Radau IIA: A^-1 has the eigenvalues
    /// mu_real and mu_complex (its trace and determinant), and the nodes sum to (4 + 1 * 10) / 10.
    #[test]
    fn transformation_is_consistent() {
        for (i, row) in T_MAT.iter().enumerate() {
            for j in 0..3 {
                let p: f64 = row.iter().zip(&TI).map(|(t, ti)| t * ti[j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((p - want).abs() < 1e-14, "T TI [{i}][{j}] = {p}");
            }
        }
        // Radau IIA (s = 3): det(A^-1) = 60 and trace(A^-1) = 9 (Hairer-Wanner IV.8).
        let (cr, ci) = mu_complex();
        let det = mu_real() * (cr * cr + ci * ci);
        let trace = mu_real() + 2.0 * cr;
        assert!((det - 60.0).abs() < 1e-12, "{det}");
        assert!((trace - 9.0).abs() < 1e-12, "{trace}");
        assert!((nodes().iter().sum::<f64>() - 1.8).abs() < 1e-15);
    }

    /// The dense polynomial passes through the stage values: sum_j P_ij c_k^(j+1) = delta_ik
    /// (Q = Z^T P interpolates Z_k at x = c_k), and through 0 at x = 0.
    #[test]
    fn dense_polynomial_interpolates_the_stages() {
        let p = dense_coefficients();
        for (k, &c) in nodes().iter().enumerate() {
            for (i, row) in p.iter().enumerate() {
                let v = row[0] * c + row[1] * c * c + row[2] * c * c * c;
                let want = if i == k { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-13, "P row {i} at c_{k}: {v}");
            }
        }
    }

    #[test]
    fn predictive_factor() {
        assert_eq!(predict_factor(1.0, None, 16.0), 0.5);
        // Growing steps with a shrinking error: capped by the one-step factor.
        assert_eq!(predict_factor(2.0, Some((1.0, 1.0)), 1.0 / 16.0), 2.0);
        // err_old / err = 16, h / h_old = 0.25: multiplier 0.5.
        assert_eq!(predict_factor(0.25, Some((1.0, 1.0)), 1.0 / 16.0), 1.0);
    }
}
