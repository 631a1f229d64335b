//! The one explicit Runge-Kutta engine: performs a step of any [`Tableau`], estimates its error
//! and evaluates its continuous extension. It owns every buffer it needs (allocated once, by
//! cloning the initial state), so stepping never allocates.
use std::ops::Range;

use num_traits::Float;

use crate::options::Tolerances;
use crate::state::State;
use crate::system::OdeSystem;
use crate::tableau::{ErrorEstimate, Tableau};
use crate::util::lit;

pub(crate) struct Engine<T, S> {
    pub(crate) tab: &'static Tableau,
    c: Vec<T>,
    /// The non-zero coefficients of every stage combination, flattened: (stage, coefficient).
    terms: Vec<(usize, T)>,
    /// Ranges of `terms`: rows 1..s of A at 1..s (0 unused), then b, e5, e3, the extra rows.
    rows: Vec<Range<usize>>,
    /// Nodes of the extra dense-output stages.
    extra_c: Vec<T>,
    /// Stage derivatives: main stages, then f(t + h, y_new) for non-FSAL methods, then the extra
    /// dense-output stages.
    pub(crate) k: Vec<S>,
    ytmp: S,
    /// Scratch for the second error estimate (DOP853).
    ytmp2: S,
    w64: Vec<f64>,
    /// k[0] holds f(t, y) for the current (t, y).
    k0_valid: bool,
    /// Dense-output stages of the last step are computed.
    dense_ready: bool,
    pub(crate) nfe: usize,
}

/// Index of b, e5 and e3 in `Engine::rows` (after the s rows of A), and of the first extra row.
const B: usize = 0;
const E5: usize = 1;
const E3: usize = 2;
const EXTRA: usize = 3;

/// out = y + h * sum_j coef_j k_j over the non-zero terms (stage j, coef_j): one pass per term
/// over a register-sized state, no branch on coefficients.
#[inline]
fn combine<T: Float, S: State<T>>(out: &mut S, y: &S, h: T, terms: &[(usize, T)], k: &[S]) {
    let out = out.as_mut_slice();
    let y = y.as_slice();
    if !sum_terms(out, terms, k) {
        out.copy_from_slice(y);
        return;
    }
    for (o, &yv) in out.iter_mut().zip(y) {
        *o = yv + h * *o;
    }
}

/// out = sum_j coef_j k_j over the terms, two stages per pass; false (out untouched) when there
/// are none.
#[inline(always)]
fn sum_terms<T: Float, S: State<T>>(out: &mut [T], terms: &[(usize, T)], k: &[S]) -> bool {
    let mut pairs = terms.chunks_exact(2);
    let rest = pairs.remainder();
    match (pairs.next(), rest) {
        (Some(&[(j0, c0), (j1, c1)]), _) => {
            let (k0, k1) = (k[j0].as_slice(), k[j1].as_slice());
            for ((o, &a), &b) in out.iter_mut().zip(k0).zip(k1) {
                *o = c0 * a + c1 * b;
            }
        }
        (_, &[(j0, c0)]) => {
            for (o, &a) in out.iter_mut().zip(k[j0].as_slice()) {
                *o = c0 * a;
            }
            return true;
        }
        _ => return false,
    }
    for pair in pairs.by_ref() {
        let (&(j0, c0), &(j1, c1)) = (&pair[0], &pair[1]);
        let (k0, k1) = (k[j0].as_slice(), k[j1].as_slice());
        for ((o, &a), &b) in out.iter_mut().zip(k0).zip(k1) {
            *o = *o + c0 * a + c1 * b;
        }
    }
    if let &[(j0, c0)] = rest {
        for (o, &a) in out.iter_mut().zip(k[j0].as_slice()) {
            *o = *o + c0 * a;
        }
    }
    true
}

impl<T: Float, S: State<T>> Engine<T, S> {
    pub(crate) fn new(tab: &'static Tableau, y0: &S) -> Self {
        let mut terms = Vec::new();
        let mut rows = Vec::new();
        let mut push = |row: &[f64]| {
            let start = terms.len();
            terms.extend(
                row.iter()
                    .enumerate()
                    .filter(|(_, &c)| c != 0.0)
                    .map(|(j, &c)| (j, lit::<T>(c))),
            );
            rows.push(start..terms.len());
        };
        for row in tab.a {
            push(row);
        }
        let (e5, e3): (&[f64], &[f64]) = match tab.error {
            ErrorEstimate::None => (&[], &[]),
            ErrorEstimate::Embedded(e) => (e, &[]),
            ErrorEstimate::Dop853 { e5, e3 } => (e5, e3),
        };
        push(tab.b);
        push(e5);
        push(e3);
        for (_, row) in tab.dense.extra {
            push(row);
        }
        let n_k = tab.dense_stages().max(tab.end_stage() + 1);
        Self {
            tab,
            c: tab.c.iter().map(|&c| lit(c)).collect(),
            terms,
            rows,
            extra_c: tab.dense.extra.iter().map(|(c, _)| lit(*c)).collect(),
            k: vec![y0.clone(); n_k],
            ytmp: y0.clone(),
            ytmp2: y0.clone(),
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
    #[inline]
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
        let last_in_y_new = if self.tab.fsal { s - 1 } else { s };
        for i in 1..s {
            let (done, rest) = self.k.split_at_mut(i);
            let ti = t + self.c[i] * h;
            let terms = &self.terms[self.rows[i].clone()];
            if i == last_in_y_new {
                // The last FSAL stage is evaluated at y_new itself.
                combine(y_new, y, h, terms, done);
                sys.rhs(ti, y_new, &mut rest[0]);
            } else {
                combine(&mut self.ytmp, y, h, terms, done);
                sys.rhs(ti, &self.ytmp, &mut rest[0]);
            }
        }
        self.nfe += s - 1;
        if !self.tab.fsal {
            let terms = &self.terms[self.rows[s + B].clone()];
            combine(y_new, y, h, terms, &self.k[..s]);
        }
    }

    /// Scaled RMS norm of the local error estimate of the last step (Hairer's). Uses the scratch
    /// buffers, so call it right after `step`.
    #[inline]
    pub(crate) fn error_norm(&mut self, h: T, y: &S, y_new: &S, tol: &Tolerances<T>) -> T {
        let s = self.tab.stages();
        let (y, y_new) = (y.as_slice(), y_new.as_slice());
        let n = y.len();
        let e5 = self.ytmp.as_mut_slice();
        sum_terms(e5, &self.terms[self.rows[s + E5].clone()], &self.k);
        let e3_terms = &self.terms[self.rows[s + E3].clone()];
        let nt: T = lit(n as f64);
        if e3_terms.is_empty() {
            let acc5 = tol.sum_sq_scaled(y, y_new, e5);
            h.abs() * (acc5 / nt).sqrt()
        } else {
            let e3 = self.ytmp2.as_mut_slice();
            sum_terms(e3, e3_terms, &self.k);
            let acc5 = tol.sum_sq_scaled(y, y_new, e5);
            let acc3 = tol.sum_sq_scaled(y, y_new, e3);
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
        let s = tab.stages();
        if tab.dense.end_derivative && !tab.fsal {
            sys.rhs(t + h, y_new, &mut self.k[s]);
            self.nfe += 1;
        }
        let first = tab.dense_stages() - self.extra_c.len();
        for (j, &c) in self.extra_c.iter().enumerate() {
            let (done, rest) = self.k.split_at_mut(first + j);
            let terms = &self.terms[self.rows[s + EXTRA + j].clone()];
            combine(&mut self.ytmp, y, h, terms, done);
            sys.rhs(t + c * h, &self.ytmp, &mut rest[0]);
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
