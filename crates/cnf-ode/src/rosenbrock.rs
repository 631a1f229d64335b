//! Linearly implicit Rosenbrock(-Wanner) methods for stiff problems: Rodas5P and Rosenbrock23.
//!
//! A step of size h from (t, y) factorises the iteration matrix M = I / (h gamma) - J once
//! (J = df/dy at (t, y), kept across rejected attempts from the same point) and solves one
//! linear system per stage. In Hairer and Wanner's transformed form (IV.7, (7.25)):
//!
//!   M k_i = f(t + c_i h, y + sum_j a_ij k_j) + sum_j (C_ij / h) k_j + h d_i df/dt,
//!   y_new = y + sum_i b_i k_i, error = sum_i btilde_i k_i.
//!
//! Rodas5P (Steinebach 2023, 8 stages, order 5(4), stiffly accurate, L-stable) is that form;
//! its coefficients are OrdinaryDiffEq.jl's (`RODAS5PA`, `RODAS5PC`, `RODAS5Pc`, `RODAS5Pd`,
//! `RODAS5PH`), with its dense output y(t + theta h) = (1 - theta) y + theta (y_new + (1 -
//! theta)(k'_1 + theta (k'_2 + theta k'_3))), k'_j = sum_i H_ji k_i. Rosenbrock23 is Shampine
//! and Reichelt's ode23s pair (order 2(3), L-stable, FSAL), with its own dense output.
//!
//! Rounding. With `Solver::refine_stage_solves` each stage's solve is refined once, k += LU^-1 (r - (I / (h gamma) - J) k), with the
//! residual in twice the working precision (`linalg::residual_shifted`). Unlike a Newton
//! iteration, a Rosenbrock stage has no residual through f, and the LU's rounding, eps |L| |U|
//! |k|, is multiplied by up to h gamma along directions that J does not damp: a conserved linear
//! combination of the state (J^T v = 0) moves by h gamma eps |J| |k| per stage and nothing brings
//! it back. On E5 (docs/ode.md) that was 2e-20 at rtol 1e-6, 200 times the final value of the
//! components it ends up in. The refined k is the solution of the system with the given J to
//! working precision; what remains is J's own rounding (a finite-difference column of a tiny
//! component carries eps |f| / its step). It costs an O(n^2) residual and a second triangular
//! solve per stage, no evaluations of f.
use num_traits::Float;

use crate::engine::error_of;
use crate::implicit::CurrentPoint;
use crate::jacobian::{jacobian, time_derivative, Sparsity};
use crate::linalg::{residual_shifted, DenseLu, LinearSolver};
use crate::options::Tolerances;
use crate::solution::Stats;
use crate::state::State;
use crate::stepper::{Attempt, Interpolant, StepFailure, Stepper};
use crate::system::OdeSystem;
use crate::util::cast;

/// A Rosenbrock method, as data for the one Rosenbrock stepper.
#[derive(Debug)]
pub struct RosenbrockTableau {
    /// Display name.
    pub name: &'static str,
    /// Order of the propagated solution.
    pub order: u32,
    /// The error estimate scales as h^error_order.
    pub error_order: u32,
    pub(crate) kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// The transformed form with a stiffly accurate dense output (Rodas).
    Rodas(&'static Rodas),
    /// Shampine's ode23s.
    Ros23,
}

/// Coefficients of a Rodas-type method in the transformed form.
#[derive(Debug)]
pub(crate) struct Rodas {
    gamma: f64,
    /// a_ij, rows 1..s (row 0 empty).
    a: &'static [&'static [f64]],
    /// C_ij, rows 1..s.
    cm: &'static [&'static [f64]],
    c: &'static [f64],
    d: &'static [f64],
    b: &'static [f64],
    btilde: &'static [f64],
    /// Dense-output rows H_j over the stages.
    dense: &'static [&'static [f64]],
}

const RODAS5P: Rodas = Rodas {
    gamma: 0.21193756319429014,
    a: &[
        &[],
        &[3.0],
        &[2.849394379747939, 0.45842242204463923],
        &[-6.954028509809101, 2.489845061869568, -10.358996098473584],
        &[
            2.8029986275628964,
            0.5072464736228206,
            -0.3988312541770524,
            -0.04721187230404641,
        ],
        &[
            -7.502846399306121,
            2.561846144803919,
            -11.627539656261098,
            -0.18268767659942256,
            0.030198172008377946,
        ],
        &[
            -7.502846399306121,
            2.561846144803919,
            -11.627539656261098,
            -0.18268767659942256,
            0.030198172008377946,
            1.0,
        ],
        &[
            -7.502846399306121,
            2.561846144803919,
            -11.627539656261098,
            -0.18268767659942256,
            0.030198172008377946,
            1.0,
            1.0,
        ],
    ],
    cm: &[
        &[],
        &[-14.155112264123755],
        &[-17.97296035885952, -2.859693295451294],
        &[147.12150275711716, -1.41221402718213, 71.68940251302358],
        &[
            165.43517024871676,
            -0.4592823456491126,
            42.90938336958603,
            -5.961986721573306,
        ],
        &[
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
        ],
        &[
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
        ],
        &[
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
        ],
    ],
    c: &[
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ],
    d: &[
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ],
    // The last row of a with 1 appended: y_new is the last stage's input plus k_8.
    b: &[
        -7.502846399306121,
        2.561846144803919,
        -11.627539656261098,
        -0.18268767659942256,
        0.030198172008377946,
        1.0,
        1.0,
        1.0,
    ],
    btilde: &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    dense: &[
        &[
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ],
        &[
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ],
        &[
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ],
    ],
};

/// Rodas5P.
pub(crate) static RODAS5P_TABLEAU: RosenbrockTableau = RosenbrockTableau {
    name: "Rodas5P",
    order: 5,
    error_order: 5,
    kind: Kind::Rodas(&RODAS5P),
};

/// Rosenbrock23.
pub(crate) static ROS23_TABLEAU: RosenbrockTableau = RosenbrockTableau {
    name: "Rosenbrock23",
    order: 2,
    error_order: 3,
    kind: Kind::Ros23,
};

/// ode23s's gamma, d = 1 / (2 + sqrt 2).
const D23: f64 = 0.29289321881345254;
/// ode23s's e32 = 6 + sqrt 2.
const E32: f64 = 7.414213562373095;

/// Rodas dense weights over [y_new - y, k'_1, k'_2, k'_3].
fn rodas_weights(theta: f64, w: &mut [f64]) {
    let t1 = 1.0 - theta;
    w[0] = theta;
    w[1] = theta * t1;
    w[2] = theta * theta * t1;
    w[3] = theta * theta * theta * t1;
}

/// ode23s dense weights over [k1, k2] (times h).
fn ros23_weights(theta: f64, w: &mut [f64]) {
    let den = 1.0 - 2.0 * D23;
    w[0] = theta * (1.0 - theta) / den;
    w[1] = theta * (theta - 2.0 * D23) / den;
}

/// The Rosenbrock stepper: owns J, df/dt, the LU of the iteration matrix and the stages.
pub(crate) struct RosenbrockStepper<T, S> {
    tab: &'static RosenbrockTableau,
    n: usize,
    pattern: Sparsity,
    /// The finite differences' floor per component (the absolute tolerance).
    floor: Vec<T>,
    /// f at the current point, scratch and work.
    cur: CurrentPoint<S>,
    /// J and df/dt at the current point.
    jac: Vec<T>,
    dfdt: S,
    jac_valid: bool,
    /// The iteration matrix M = I / (h gamma) - J, then its LU.
    m: Vec<T>,
    lu: DenseLu<T>,
    /// Stage vectors k_i.
    k: Vec<S>,
    /// Dense vectors of the last step.
    dense: Vec<S>,
    dense_ready: bool,
    ytmp: S,
    w64: [f64; 4],
    /// 1 / (h gamma) of the last factorisation.
    diag: T,
    /// The buffers of the stage solves' refinement, when it is asked for.
    refinement: Option<Refinement<T>>,
}

/// A stage's right-hand side, its residual and the residual's rounding errors, for the
/// refinement of its solve.
struct Refinement<T> {
    rhs: Vec<T>,
    residual: Vec<T>,
    residual_err: Vec<T>,
}

impl<T: Float, S: State<T>> RosenbrockStepper<T, S> {
    /// A stepper for `tab` with buffers shaped as `y0`, its Jacobian's pattern `pattern` (of
    /// y0's length, checked by the caller) and the finite differences' floor (one value or one
    /// per component).
    pub(crate) fn new(
        tab: &'static RosenbrockTableau,
        y0: &S,
        pattern: Sparsity,
        floor: Vec<T>,
        refine: bool,
    ) -> Self {
        let n = y0.len();
        let (stages, vectors) = match tab.kind {
            Kind::Rodas(r) => (r.c.len(), r.dense.len() + 1),
            Kind::Ros23 => (3, 2),
        };
        Self {
            tab,
            n,
            pattern,
            floor,
            cur: CurrentPoint::new(y0),
            jac: vec![T::zero(); n * n],
            dfdt: y0.clone(),
            jac_valid: false,
            m: vec![T::zero(); n * n],
            lu: DenseLu::new(),
            k: vec![y0.clone(); stages],
            dense: vec![y0.clone(); vectors],
            dense_ready: false,
            ytmp: y0.clone(),
            w64: [0.0; 4],
            diag: T::one(),
            refinement: refine.then(|| Refinement {
                rhs: vec![T::zero(); n],
                residual: vec![T::zero(); n],
                residual_err: vec![T::zero(); n],
            }),
        }
    }

    /// J and df/dt at (t, y) unless known, then the LU of I / (h gamma) - J.
    fn factorise<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        y: &S,
        hgamma: T,
    ) -> Result<(), StepFailure> {
        if !self.jac_valid {
            self.cur.work.nfe += jacobian(
                sys,
                (t, y, &self.cur.f),
                (&self.pattern, &self.floor),
                (&mut self.ytmp, &mut self.cur.scratch),
                &mut self.jac,
            );
            self.cur.work.nfe += time_derivative(sys, (t, y, &self.cur.f), &mut self.dfdt);
            self.cur.work.jacobians += 1;
            self.jac_valid = true;
        }
        let n = self.n;
        let diag = T::one() / hgamma;
        self.diag = diag;
        for (m, &j) in self.m.iter_mut().zip(&self.jac) {
            *m = -j;
        }
        for i in 0..n {
            self.m[i * n + i] = self.m[i * n + i] + diag;
        }
        self.cur.work.factorisations += 1;
        self.lu
            .factorise(&self.m, n)
            .map_err(|_| StepFailure::Singular)
    }

    /// k = M^-1 k in place; when asked for, refined once with the residual of
    /// (I / (h gamma) - J) k = r in twice the precision (see the module's notes on rounding).
    fn solve(&mut self, i: usize) {
        let k = self.k[i].as_mut_slice();
        match &mut self.refinement {
            None => self.lu.solve_in_place(k),
            Some(r) => {
                r.rhs.copy_from_slice(k);
                self.lu.solve_in_place(k);
                residual_shifted(
                    self.diag,
                    &self.jac,
                    (&r.rhs, k),
                    (&mut r.residual, &mut r.residual_err),
                );
                self.lu.solve_in_place(&mut r.residual);
                for (x, &d) in k.iter_mut().zip(&r.residual) {
                    *x = *x + d;
                }
            }
        }
        self.cur.work.linear_solves += 1;
    }

    fn rodas<F: OdeSystem<T, S>>(
        &mut self,
        r: &Rodas,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
    ) {
        let ys = y.as_slice();
        let inv_h = T::one() / h;
        for i in 0..r.c.len() {
            let hd: T = h * cast(r.d[i]);
            let (done, rest) = self.k.split_at_mut(i);
            let ki = rest[0].as_mut_slice();
            if i == 0 {
                ki.copy_from_slice(self.cur.f.as_slice());
            } else {
                let u = self.ytmp.as_mut_slice();
                u.copy_from_slice(ys);
                for (j, &a) in r.a[i].iter().enumerate() {
                    if a != 0.0 {
                        let a: T = cast(a);
                        for (u, &kv) in u.iter_mut().zip(done[j].as_slice()) {
                            *u = *u + a * kv;
                        }
                    }
                }
                sys.rhs(t + cast::<T>(r.c[i]) * h, &self.ytmp, &mut rest[0]);
                self.cur.work.nfe += 1;
                let ki = rest[0].as_mut_slice();
                for (j, &cij) in r.cm[i].iter().enumerate() {
                    let c = cast::<T>(cij) * inv_h;
                    for (x, &kv) in ki.iter_mut().zip(done[j].as_slice()) {
                        *x = *x + c * kv;
                    }
                }
            }
            if r.d[i] != 0.0 {
                let ki = self.k[i].as_mut_slice();
                for (x, &d) in ki.iter_mut().zip(self.dfdt.as_slice()) {
                    *x = *x + hd * d;
                }
            }
            self.solve(i);
        }
        let out = y_new.as_mut_slice();
        out.copy_from_slice(ys);
        for (kj, &b) in self.k.iter().zip(r.b) {
            if b != 0.0 {
                let b: T = cast(b);
                for (o, &kv) in out.iter_mut().zip(kj.as_slice()) {
                    *o = *o + b * kv;
                }
            }
        }
        // The error vector sum_i btilde_i k_i into ftmp.
        let e = self.cur.scratch.as_mut_slice();
        e.fill(T::zero());
        for (kj, &b) in self.k.iter().zip(r.btilde) {
            if b != 0.0 {
                let b: T = cast(b);
                for (o, &kv) in e.iter_mut().zip(kj.as_slice()) {
                    *o = *o + b * kv;
                }
            }
        }
    }

    /// One ode23s step; k[2] ends as f(t + h, y_new) and the error vector is left in ftmp.
    fn ros23<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &mut S) {
        let hd: T = h * cast(D23);
        let inv_hd = T::one() / hd;
        let half: T = cast(0.5);
        let ys = y.as_slice();
        // k1 = W^-1 (f0 + h d df/dt), W = I - h d J = h d M.
        for ((k, &f), &d) in self.k[0]
            .as_mut_slice()
            .iter_mut()
            .zip(self.cur.f.as_slice())
            .zip(self.dfdt.as_slice())
        {
            *k = (f + hd * d) * inv_hd;
        }
        self.solve(0);
        // f1 = f(t + h/2, y + h/2 k1) into ytmp's partner ftmp.
        for ((u, &yv), &k1) in self
            .ytmp
            .as_mut_slice()
            .iter_mut()
            .zip(ys)
            .zip(self.k[0].as_slice())
        {
            *u = yv + half * h * k1;
        }
        sys.rhs(t + half * h, &self.ytmp, &mut self.cur.scratch);
        self.cur.work.nfe += 1;
        // k2 = W^-1 (f1 - k1) + k1.
        {
            let (k1, k2) = self.k.split_at_mut(1);
            for ((x, &f1), &a) in k2[0]
                .as_mut_slice()
                .iter_mut()
                .zip(self.cur.scratch.as_slice())
                .zip(k1[0].as_slice())
            {
                *x = (f1 - a) * inv_hd;
            }
        }
        self.solve(1);
        {
            let (k1, k2) = self.k.split_at_mut(1);
            for (x, &a) in k2[0].as_mut_slice().iter_mut().zip(k1[0].as_slice()) {
                *x = *x + a;
            }
        }
        for ((o, &yv), &k2) in y_new
            .as_mut_slice()
            .iter_mut()
            .zip(ys)
            .zip(self.k[1].as_slice())
        {
            *o = yv + h * k2;
        }
        // f2 = f(t + h, y_new) into k[2] (the next step's f0 when accepted), then
        // k3 = W^-1 (f2 - e32 (k2 - f1) - 2 (k1 - f0) + h df/dt) in ytmp.
        sys.rhs(t + h, y_new, &mut self.k[2]);
        self.cur.work.nfe += 1;
        let e32: T = cast(E32);
        let two: T = cast(2.0);
        {
            let k3 = self.ytmp.as_mut_slice();
            let (k1, k2, f2) = (
                self.k[0].as_slice(),
                self.k[1].as_slice(),
                self.k[2].as_slice(),
            );
            let (f0, f1, dt) = (
                self.cur.f.as_slice(),
                self.cur.scratch.as_slice(),
                self.dfdt.as_slice(),
            );
            for (i, x) in k3.iter_mut().enumerate() {
                *x = (f2[i] - e32 * (k2[i] - f1[i]) - two * (k1[i] - f0[i]) + h * dt[i]) * inv_hd;
            }
        }
        self.lu.solve_in_place(self.ytmp.as_mut_slice());
        self.cur.work.linear_solves += 1;
        // error = h / 6 (k1 - 2 k2 + k3) into ftmp.
        let sixth: T = h / cast(6.0);
        let (k1, k2, k3) = (
            self.k[0].as_slice(),
            self.k[1].as_slice(),
            self.ytmp.as_slice(),
        );
        for (i, e) in self.cur.scratch.as_mut_slice().iter_mut().enumerate() {
            *e = sixth * (k1[i] - two * k2[i] + k3[i]);
        }
    }
}

impl<T: Float, S: State<T>> Stepper<T, S> for RosenbrockStepper<T, S> {
    fn name(&self) -> &'static str {
        self.tab.name
    }
    fn order(&self) -> u32 {
        self.tab.order
    }
    fn error_order(&self) -> u32 {
        self.tab.error_order
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
        self.cur.ensure(sys, t, y);
        self.dense_ready = false;
        let gamma = match self.tab.kind {
            Kind::Rodas(r) => r.gamma,
            Kind::Ros23 => D23,
        };
        if let Err(failure) = self.factorise(sys, t, y, h * cast(gamma)) {
            return Attempt::Failed(failure);
        }
        match self.tab.kind {
            Kind::Rodas(r) => self.rodas(r, sys, t, h, y, y_new),
            Kind::Ros23 => self.ros23(sys, t, h, y, y_new),
        }
        let err = match tol {
            None => T::zero(),
            Some(tol) => {
                let r = tol.norm_range();
                let (y, y_new) = (&y.as_slice()[r.clone()], &y_new.as_slice()[r.clone()]);
                error_of(
                    T::one(),
                    (y, y_new),
                    tol,
                    &mut self.cur.scratch.as_mut_slice()[r],
                    None,
                )
            }
        };
        Attempt::Done { err }
    }
    fn stages(&self) -> &[S] {
        &self.k
    }
    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, _sys: &mut F, _t: T, _h: T, y: &S, y_new: &S) {
        if self.dense_ready {
            return;
        }
        match self.tab.kind {
            Kind::Rodas(r) => {
                for ((d, &a), &b) in self.dense[0]
                    .as_mut_slice()
                    .iter_mut()
                    .zip(y_new.as_slice())
                    .zip(y.as_slice())
                {
                    *d = a - b;
                }
                for (row, dj) in r.dense.iter().zip(&mut self.dense[1..]) {
                    let dj = dj.as_mut_slice();
                    dj.fill(T::zero());
                    for (ki, &c) in self.k.iter().zip(*row) {
                        let c: T = cast(c);
                        for (o, &kv) in dj.iter_mut().zip(ki.as_slice()) {
                            *o = *o + c * kv;
                        }
                    }
                }
            }
            Kind::Ros23 => {
                self.dense[0]
                    .as_mut_slice()
                    .copy_from_slice(self.k[0].as_slice());
                self.dense[1]
                    .as_mut_slice()
                    .copy_from_slice(self.k[1].as_slice());
            }
        }
        self.dense_ready = true;
    }
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        let interp = self.dense_vectors().1;
        interp.apply((theta, h), y, &self.dense, &mut self.w64, out);
    }
    fn dense_vectors(&self) -> (&[S], Interpolant) {
        let interp = match self.tab.kind {
            Kind::Rodas(r) => Interpolant {
                weights: rodas_weights,
                vectors: r.dense.len() + 1,
                times_h: false,
            },
            Kind::Ros23 => Interpolant {
                weights: ros23_weights,
                vectors: 2,
                times_h: true,
            },
        };
        (&self.dense, interp)
    }
    fn accept(&mut self) {
        self.jac_valid = false;
        self.dense_ready = false;
        match self.tab.kind {
            // FSAL: f(t + h, y_new) is k[2].
            Kind::Ros23 => {
                std::mem::swap(&mut self.cur.f, &mut self.k[2]);
                self.cur.valid = true;
            }
            Kind::Rodas(_) => self.cur.valid = false,
        }
    }
    fn restart(&mut self) {
        self.cur.valid = false;
        self.jac_valid = false;
        self.dense_ready = false;
    }
}

#[cfg(test)]
mod tests {
    //! Rodas5P's coefficients against the order conditions of Rosenbrock methods, independently
    //! of any solve.
    use super::{Rodas, RODAS5P};

    /// A rooted tree: its subtrees.
    #[derive(Debug, Clone)]
    struct Tree(Vec<Tree>);

    impl Tree {
        fn order(&self) -> usize {
            1 + self.0.iter().map(Tree::order).sum::<usize>()
        }
        /// gamma(t) = |t| times the product of the subtrees' gamma.
        fn density(&self) -> f64 {
            self.order() as f64 * self.0.iter().map(Tree::density).product::<f64>()
        }
    }

    /// The trees whose subtrees are `kids` plus trees from `all[..below]` of total order
    /// `left`, the indices non-increasing (so each multiset of subtrees is built once).
    fn build(all: &[Tree], left: usize, below: usize, kids: &mut Vec<Tree>, out: &mut Vec<Tree>) {
        if left == 0 {
            out.push(Tree(kids.clone()));
            return;
        }
        for i in (0..below).rev() {
            if all[i].order() <= left {
                kids.push(all[i].clone());
                build(all, left - all[i].order(), i + 1, kids, out);
                kids.pop();
            }
        }
    }

    /// Every rooted tree with at most `max` vertices, each once: a tree of order n is a
    /// multiset of trees of total order n - 1.
    fn trees(max: usize) -> Vec<Tree> {
        let mut all: Vec<Tree> = Vec::new();
        for n in 1..=max {
            let mut new = Vec::new();
            build(&all, n - 1, all.len(), &mut Vec::new(), &mut new);
            all.extend(new);
        }
        all
    }

    /// The method in Hairer and Wanner's untransformed form: alpha (strictly lower), Gamma
    /// (lower, gamma on the diagonal) and the weights b, from the transformed (a, C, m):
    /// Gamma^-1 = diag(1 / gamma) - C, alpha = a Gamma, b = m Gamma.
    fn untransformed(r: &Rodas, m: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) {
        let s = r.c.len();
        let mut ginv = vec![vec![0.0; s]; s];
        for (i, row) in ginv.iter_mut().enumerate() {
            row[i] = 1.0 / r.gamma;
            for (j, &c) in r.cm[i].iter().enumerate() {
                row[j] = -c;
            }
        }
        // Gamma by forward substitution, column by column (lower triangular): the indices
        // are the formula's.
        let mut g = vec![vec![0.0; s]; s];
        #[allow(clippy::needless_range_loop)]
        for j in 0..s {
            for i in j..s {
                let rhs = if i == j { 1.0 } else { 0.0 };
                let sum: f64 = (j..i).map(|k| ginv[i][k] * g[k][j]).sum();
                g[i][j] = (rhs - sum) / ginv[i][i];
            }
        }
        let times_gamma = |row: &[f64]| -> Vec<f64> {
            (0..s)
                .map(|j| row.iter().enumerate().map(|(k, &x)| x * g[k][j]).sum())
                .collect()
        };
        let alpha = (0..s).map(|i| times_gamma(r.a[i])).collect();
        let b = times_gamma(m);
        (alpha, g, b)
    }

    /// sum_j b_j Phi_j(t) - 1 / gamma(t), where a vertex with one child reaches it through
    /// beta = alpha + Gamma (the Jacobian's terms) and a vertex with more through alpha only
    /// (Hairer and Wanner IV.7: these are the Runge-Kutta conditions with that rule).
    fn defect(t: &Tree, alpha: &[Vec<f64>], g: &[Vec<f64>], b: &[f64]) -> f64 {
        fn phi(t: &Tree, alpha: &[Vec<f64>], g: &[Vec<f64>]) -> Vec<f64> {
            let s = alpha.len();
            let mut out = vec![1.0; s];
            for kid in &t.0 {
                let v = phi(kid, alpha, g);
                for (i, o) in out.iter_mut().enumerate() {
                    let row: f64 = (0..s)
                        .map(|k| {
                            let beta = if t.0.len() == 1 { g[i][k] } else { 0.0 };
                            (alpha[i][k] + beta) * v[k]
                        })
                        .sum();
                    *o *= row;
                }
            }
            out
        }
        let p = phi(t, alpha, g);
        b.iter().zip(&p).map(|(b, p)| b * p).sum::<f64>() - 1.0 / t.density()
    }

    #[test]
    fn tree_counts_are_right() {
        let counts: Vec<usize> = (1..=5)
            .map(|n| trees(5).iter().filter(|t| t.order() == n).count())
            .collect();
        assert_eq!(counts, [1, 1, 2, 4, 9]);
    }

    #[test]
    fn rodas5p_satisfies_the_order_conditions() {
        let r = &RODAS5P;
        let (alpha, g, b) = untransformed(r, r.b);
        // c_i = sum_j alpha_ij and d_i = sum_j gamma_ij (the df/dt coefficients).
        for i in 0..r.c.len() {
            let c: f64 = alpha[i].iter().sum();
            let d: f64 = g[i].iter().sum();
            assert!((c - r.c[i]).abs() < 1e-12, "c[{i}] = {} vs {c}", r.c[i]);
            assert!((d - r.d[i]).abs() < 1e-12, "d[{i}] = {} vs {d}", r.d[i]);
        }
        // Order 5: all 17 trees up to 5 vertices.
        for t in trees(5) {
            let e = defect(&t, &alpha, &g, &b);
            assert!(
                e.abs() < 1e-11,
                "order {} tree {t:?}: defect {e:e}",
                t.order()
            );
        }
        // The embedded solution y_new - sum btilde_i k_i: order 4, and not 5 (else the
        // estimate would measure nothing).
        let m_hat: Vec<f64> = r.b.iter().zip(r.btilde).map(|(b, e)| b - e).collect();
        let (_, _, b_hat) = untransformed(r, &m_hat);
        let mut worst5: f64 = 0.0;
        for t in trees(5) {
            let e = defect(&t, &alpha, &g, &b_hat);
            if t.order() <= 4 {
                assert!(
                    e.abs() < 1e-11,
                    "embedded, order {} tree {t:?}: {e:e}",
                    t.order()
                );
            } else {
                worst5 = worst5.max(e.abs());
            }
        }
        assert!(worst5 > 1e-6, "embedded method of order 5: {worst5:e}");
    }
}
