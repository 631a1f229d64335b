//! The one explicit Runge-Kutta engine: performs a step of any [`Tableau`], estimates its error
//! and evaluates its continuous extension. It owns every buffer it needs (allocated once, by
//! cloning the initial state), so stepping never allocates.
use num_traits::Float;

use crate::options::Tolerances;
use crate::state::State;
use crate::system::OdeSystem;
use crate::tableau::{ErrorEstimate, Tableau};
use crate::util::lit;

pub(crate) struct Engine<T, S> {
    pub(crate) tab: &'static Tableau,
    c: Vec<T>,
    a: Vec<Vec<T>>,
    b: Vec<T>,
    e5: Vec<T>,
    e3: Vec<T>,
    extra: Vec<(T, Vec<T>)>,
    /// Stage derivatives: main stages, then f(t + h, y_new) for non-FSAL methods, then the extra
    /// dense-output stages.
    pub(crate) k: Vec<S>,
    ytmp: S,
    w64: Vec<f64>,
    /// k[0] holds f(t, y) for the current (t, y).
    k0_valid: bool,
    /// Dense-output stages of the last step are computed.
    dense_ready: bool,
    pub(crate) nfe: usize,
}

fn cast<T: Float>(xs: &[f64]) -> Vec<T> {
    xs.iter().map(|&x| lit(x)).collect()
}

/// out = y + h * sum_j coef_j k_j, skipping zero coefficients.
fn combine<T: Float, S: State<T>>(out: &mut S, y: &S, h: T, coef: &[T], k: &[S]) {
    let out = out.as_mut_slice();
    out.copy_from_slice(y.as_slice());
    for (cj, kj) in coef.iter().zip(k) {
        if *cj != T::zero() {
            let f = h * *cj;
            for (o, &kv) in out.iter_mut().zip(kj.as_slice()) {
                *o = *o + f * kv;
            }
        }
    }
}

impl<T: Float, S: State<T>> Engine<T, S> {
    pub(crate) fn new(tab: &'static Tableau, y0: &S) -> Self {
        let (e5, e3) = match tab.error {
            ErrorEstimate::None => (vec![], vec![]),
            ErrorEstimate::Embedded(e) => (cast(e), vec![]),
            ErrorEstimate::Dop853 { e5, e3 } => (cast(e5), cast(e3)),
        };
        let n_k = tab.dense_stages().max(tab.end_stage() + 1);
        Self {
            tab,
            c: cast(tab.c),
            a: tab.a.iter().map(|r| cast(r)).collect(),
            b: cast(tab.b),
            e5,
            e3,
            extra: tab
                .dense
                .extra
                .iter()
                .map(|(c, r)| (lit(*c), cast(r)))
                .collect(),
            k: vec![y0.clone(); n_k],
            ytmp: y0.clone(),
            w64: vec![0.0; n_k],
            k0_valid: false,
            dense_ready: false,
            nfe: 0,
        }
    }

    /// f(t, y) into k[0] unless already there (FSAL or reused end derivative).
    pub(crate) fn ensure_k0<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) -> &S {
        if !self.k0_valid {
            sys.rhs(t, y, &mut self.k[0]);
            self.nfe += 1;
            self.k0_valid = true;
        }
        &self.k[0]
    }

    /// One step of size h from (t, y) into y_new. Leaves the stages in `k`.
    pub(crate) fn step<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
    ) {
        self.ensure_k0(sys, t, y);
        self.dense_ready = false;
        let s = self.tab.stages();
        for i in 1..s {
            let (done, rest) = self.k.split_at_mut(i);
            let ti = t + self.c[i] * h;
            if self.tab.fsal && i == s - 1 {
                // The last FSAL stage is evaluated at y_new itself.
                combine(y_new, y, h, &self.a[i], done);
                sys.rhs(ti, y_new, &mut rest[0]);
            } else {
                combine(&mut self.ytmp, y, h, &self.a[i], done);
                sys.rhs(ti, &self.ytmp, &mut rest[0]);
            }
            self.nfe += 1;
        }
        if !self.tab.fsal {
            combine(y_new, y, h, &self.b, &self.k[..s]);
        }
    }

    /// Scaled RMS norm of the local error estimate of the last step (Hairer's).
    pub(crate) fn error_norm(&self, h: T, y: &S, y_new: &S, tol: &Tolerances<T>) -> T {
        let n = y.len();
        let (y, y_new) = (y.as_slice(), y_new.as_slice());
        let mut acc5 = T::zero();
        let mut acc3 = T::zero();
        for i in 0..n {
            let sc = tol.scale(i, y[i].abs().max(y_new[i].abs()));
            let mut e5 = T::zero();
            for (ej, kj) in self.e5.iter().zip(&self.k) {
                e5 = e5 + *ej * kj.as_slice()[i];
            }
            let r5 = e5 / sc;
            acc5 = acc5 + r5 * r5;
            if !self.e3.is_empty() {
                let mut e3 = T::zero();
                for (ej, kj) in self.e3.iter().zip(&self.k) {
                    e3 = e3 + *ej * kj.as_slice()[i];
                }
                let r3 = e3 / sc;
                acc3 = acc3 + r3 * r3;
            }
        }
        let nt: T = lit(n as f64);
        if self.e3.is_empty() {
            h.abs() * (acc5 / nt).sqrt()
        } else {
            let mut deno = acc5 + lit::<T>(0.01) * acc3;
            if deno <= T::zero() {
                deno = T::one();
            }
            h.abs() * acc5 / (nt * deno).sqrt()
        }
    }

    /// Computes the stages the continuous extension of the last (accepted) step needs beyond the
    /// main ones, once per step.
    pub(crate) fn prepare_dense<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &S,
    ) {
        if self.dense_ready {
            return;
        }
        let tab = self.tab;
        if tab.dense.end_derivative && !tab.fsal {
            let s = tab.stages();
            sys.rhs(t + h, y_new, &mut self.k[s]);
            self.nfe += 1;
        }
        let first = tab.dense_stages() - self.extra.len();
        for (j, (c, row)) in self.extra.iter().enumerate() {
            let (done, rest) = self.k.split_at_mut(first + j);
            combine(&mut self.ytmp, y, h, row, done);
            sys.rhs(t + *c * h, &self.ytmp, &mut rest[0]);
            self.nfe += 1;
        }
        self.dense_ready = true;
    }

    /// y(t + theta h) from the continuous extension of the last step (after `prepare_dense`).
    pub(crate) fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        let n = self.tab.dense_stages();
        (self.tab.dense.weights)(theta.to_f64().unwrap_or(f64::NAN), &mut self.w64[..n]);
        let out_s = out.as_mut_slice();
        out_s.copy_from_slice(y.as_slice());
        for (wj, kj) in self.w64[..n].iter().zip(&self.k) {
            if *wj != 0.0 {
                let f = h * lit::<T>(*wj);
                for (o, &kv) in out_s.iter_mut().zip(kj.as_slice()) {
                    *o = *o + f * kv;
                }
            }
        }
    }

    /// The last step was accepted: carry f(t_new, y_new) over as the next first stage when it is
    /// known (FSAL, or computed for dense output).
    pub(crate) fn accept(&mut self) {
        let end = self.tab.end_stage();
        if self.tab.fsal || (self.dense_ready && self.tab.dense.end_derivative) {
            self.k.swap(0, end);
            self.k0_valid = true;
        } else {
            self.k0_valid = false;
        }
        self.dense_ready = false;
    }
}
