//! The one explicit Runge-Kutta engine: performs a step of any [`Tableau`], estimates its error
//! and evaluates its continuous extension. It owns every buffer it needs (allocated once, by
//! cloning the initial state), so stepping never allocates.
use std::ops::Range;

use num_traits::Float;

use crate::grad::{VjpOut, VjpSystem};
use crate::options::Tolerances;
use crate::solution::Stats;
use crate::state::State;
use crate::stepper::{Attempt, Interpolant, Stepper};
use crate::system::OdeSystem;
use crate::tableau::{ErrorEstimate, Tableau};
use crate::util::cast;

pub(crate) struct Engine<T, S> {
    pub(crate) tab: &'static Tableau,
    c: Vec<T>,
    /// The non-zero coefficients of every stage combination, flattened: (stage, coefficient).
    terms: Vec<(usize, T)>,
    /// Ranges of `terms`: rows 1..s of A at 1..s (0 unused), then b, err_main, err_aux, the extra rows.
    rows: Vec<Range<usize>>,
    /// Nodes of the extra dense-output stages.
    extra_c: Vec<T>,
    /// Stage derivatives: main stages, then f(t + h, y_new) for non-FSAL methods, then the extra
    /// dense-output stages.
    pub(crate) k: Vec<S>,
    ytmp: S,
    /// Scratch for the second error estimate (DOP853).
    ytmp2: S,
    dense_weights: Vec<f64>,
    /// k[0] holds f(t, y) for the current (t, y).
    k0_valid: bool,
    /// Dense-output stages of the last step are computed.
    dense_ready: bool,
    pub(crate) nfe: usize,
}

/// Index of b, err_main and err_aux in `Engine::rows` (after the s rows of A), and of the first extra row.
const B: usize = 0;
const E5: usize = 1;
const E3: usize = 2;
const EXTRA: usize = 3;

/// Stage derivatives as the stage arithmetic reads them: the engine's own buffers, a window of
/// them (the components of a seminorm), or the flat tape of the reverse pass.
pub(crate) trait Stages<T> {
    /// The components of stage `j`.
    fn stage(&self, j: usize) -> &[T];
}

impl<T, S: State<T>> Stages<T> for [S] {
    #[inline(always)]
    fn stage(&self, j: usize) -> &[T] {
        self[j].as_slice()
    }
}

/// Components `range` of each of the engine's stage buffers.
struct Window<'a, S> {
    k: &'a [S],
    range: Range<usize>,
}

impl<T, S: State<T>> Stages<T> for Window<'_, S> {
    #[inline(always)]
    fn stage(&self, j: usize) -> &[T] {
        &self.k[j].as_slice()[self.range.clone()]
    }
}

/// Stages of `n` components stored one after another in one buffer.
pub(crate) struct ContiguousStages<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) n: usize,
}

impl<T> Stages<T> for ContiguousStages<'_, T> {
    #[inline(always)]
    fn stage(&self, j: usize) -> &[T] {
        &self.data[j * self.n..(j + 1) * self.n]
    }
}

/// out = y + h * sum_j coef_j k_j over the non-zero terms (stage j, coef_j): one pass per term
/// over a register-sized state, no branch on coefficients.
#[inline]
pub(crate) fn combine<T: Float, K: Stages<T> + ?Sized>(
    out: &mut [T],
    y: &[T],
    h: T,
    terms: &[(usize, T)],
    k: &K,
) {
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
pub(crate) fn sum_terms<T: Float, K: Stages<T> + ?Sized>(
    out: &mut [T],
    terms: &[(usize, T)],
    k: &K,
) -> bool {
    let mut pairs = terms.chunks_exact(2);
    let rest = pairs.remainder();
    match (pairs.next(), rest) {
        (Some(&[(j0, c0), (j1, c1)]), _) => {
            let (k0, k1) = (k.stage(j0), k.stage(j1));
            for ((o, &a), &b) in out.iter_mut().zip(k0).zip(k1) {
                *o = c0 * a + c1 * b;
            }
        }
        (_, &[(j0, c0)]) => {
            for (o, &a) in out.iter_mut().zip(k.stage(j0)) {
                *o = c0 * a;
            }
            return true;
        }
        _ => return false,
    }
    for pair in pairs.by_ref() {
        let (&(j0, c0), &(j1, c1)) = (&pair[0], &pair[1]);
        let (k0, k1) = (k.stage(j0), k.stage(j1));
        for ((o, &a), &b) in out.iter_mut().zip(k0).zip(k1) {
            *o = *o + c0 * a + c1 * b;
        }
    }
    if let &[(j0, c0)] = rest {
        for (o, &a) in out.iter_mut().zip(k.stage(j0)) {
            *o = *o + c0 * a;
        }
    }
    true
}

/// Flattened non-zero coefficients of one stage combination: (stage, coefficient).
type Terms<T> = [(usize, T)];

/// Hairer's scaled error norm of a step from the error weights `(err_main, err_aux)` (err_aux empty unless
/// DOP853) over the components of `y` (the tolerances' norm window): the RMS, or the largest of
/// the groups' (per-sample) norms.
#[inline(always)]
fn scaled_error<T: Float, K: Stages<T> + ?Sized>(
    h: T,
    (y, y_new): (&[T], &[T]),
    tol: &mut Tolerances<T>,
    (main_terms, aux_terms): (&Terms<T>, &Terms<T>),
    k: &K,
    (err_main, err_aux): (&mut [T], &mut [T]),
) -> T {
    sum_terms(err_main, main_terms, k);
    let err_aux = if aux_terms.is_empty() {
        None
    } else {
        sum_terms(err_aux, aux_terms, k);
        Some(err_aux)
    };
    error_of(h, (y, y_new), tol, err_main, err_aux)
}

/// The error norm of a step whose error combinations `err_main` (and `err_aux` for DOP853) are formed, over
/// the components of `y` (the tolerances' norm window). Overwrites `err_main` and `err_aux` with a
/// per-sample norm.
#[inline(always)]
pub(crate) fn error_of<T: Float>(
    h: T,
    (y, y_new): (&[T], &[T]),
    tol: &mut Tolerances<T>,
    err_main: &mut [T],
    err_aux: Option<&mut [T]>,
) -> T {
    if tol.groups_mut().is_some() {
        let range = tol.norm_range();
        tol.square_scaled(y, y_new, err_main);
        let aux: &[T] = match err_aux {
            None => &[],
            Some(err_aux) => {
                tol.square_scaled(y, y_new, err_aux);
                err_aux
            }
        };
        let groups = tol.groups_mut().expect("checked above");
        return groups.error(h, range, err_main, aux);
    }
    let nt: T = cast(y.len() as f64);
    let acc_main = tol.sum_sq_scaled(y, y_new, err_main);
    match err_aux {
        None => h.abs() * (acc_main / nt).sqrt(),
        Some(err_aux) => {
            let acc_aux = tol.sum_sq_scaled(y, y_new, err_aux);
            let mut denom = acc_main + cast::<T>(0.01) * acc_aux;
            if denom <= T::zero() {
                denom = T::one();
            }
            h.abs() * acc_main / (nt * denom).sqrt()
        }
    }
}

/// The state an explicit Runge-Kutta engine carries between calls, borrowed at once.
pub(crate) struct RkParts<'a, S> {
    /// Stage derivatives, laid out as [`Engine::k`].
    pub(crate) k: &'a mut [S],
    /// Scratch for the continuous extension's weights.
    pub(crate) dense_weights: &'a mut [f64],
    /// k[0] holds f(t, y) for the current (t, y).
    pub(crate) k0_valid: &'a mut bool,
    /// Dense-output stages of the last step are computed.
    pub(crate) dense_ready: &'a mut bool,
    /// Right-hand-side evaluations so far.
    pub(crate) nfe: &'a mut usize,
}

/// An explicit Runge-Kutta engine. The general [`Engine`] and the array engine of
/// `Solver::solve_small` differ only in how they store the stages and run the stage
/// arithmetic (`step`, `error_norm`, `prepare_dense`); the first stage, the carry-over between
/// steps, interpolation and the stepper contract are written once, here.
pub(crate) trait RkEngine<T: Float, S: State<T>> {
    /// The method's tableau.
    fn tab(&self) -> &'static Tableau;
    /// The stage derivatives.
    fn k(&self) -> &[S];
    /// Right-hand-side evaluations so far.
    fn nfe(&self) -> usize;
    /// The carried state, mutably.
    fn parts(&mut self) -> RkParts<'_, S>;
    /// One step of size h from (t, y) into y_new. Leaves the stages in `k`.
    fn step<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &mut S);
    /// Scaled RMS norm of the local error estimate of the last step (Hairer's), over the
    /// components the tolerances select. Uses the scratch buffers, so call it right after
    /// `step`.
    fn error_norm(&mut self, h: T, y: &S, y_new: &S, tol: &mut Tolerances<T>) -> T;
    /// Computes the stages the continuous extension of the last (accepted) step needs beyond
    /// the main ones, once per step.
    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &S);

    /// f(t, y) into k[0] unless already there (FSAL or reused end derivative).
    #[inline(always)]
    fn ensure_k0<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) {
        let p = self.parts();
        if !*p.k0_valid {
            sys.rhs(t, y, &mut p.k[0]);
            *p.nfe += 1;
            *p.k0_valid = true;
        }
    }

    /// y(t + theta h) from the continuous extension of the last step (after `prepare_dense`).
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        let tab = self.tab();
        let n = tab.dense_stages();
        let p = self.parts();
        (tab.dense.weights)(
            theta.to_f64().unwrap_or(f64::NAN),
            &mut p.dense_weights[..n],
        );
        let out_s = out.as_mut_slice();
        out_s.copy_from_slice(y.as_slice());
        for (wj, kj) in p.dense_weights[..n].iter().zip(p.k.iter()) {
            if *wj != 0.0 {
                let f = h * cast::<T>(*wj);
                for (o, &kv) in out_s.iter_mut().zip(kj.as_slice()) {
                    *o = *o + f * kv;
                }
            }
        }
    }

    /// The last step was accepted: carry f(t_new, y_new) over as the next first stage when it
    /// is known (FSAL, or computed for dense output).
    #[inline(always)]
    fn accept(&mut self) {
        let tab = self.tab();
        let p = self.parts();
        if tab.fsal || (*p.dense_ready && tab.dense.end_derivative) {
            p.k.swap(0, tab.end_stage());
            *p.k0_valid = true;
        } else {
            *p.k0_valid = false;
        }
        *p.dense_ready = false;
    }

    /// Forget the carried-over first stage: the next step starts from a state of its own (an
    /// event's action, a checkpoint replayed by the reverse pass).
    fn restart(&mut self) {
        let p = self.parts();
        *p.k0_valid = false;
        *p.dense_ready = false;
    }
}

/// An explicit Runge-Kutta engine behind the stepper contract.
pub(crate) struct RkStepper<E>(pub(crate) E);

impl<T: Float, S: State<T>, E: RkEngine<T, S>> Stepper<T, S> for RkStepper<E> {
    #[inline(always)]
    fn name(&self) -> &'static str {
        self.0.tab().name
    }
    #[inline(always)]
    fn order(&self) -> u32 {
        self.0.tab().order
    }
    #[inline(always)]
    fn error_order(&self) -> u32 {
        self.0.tab().error_order
    }
    #[inline(always)]
    fn is_adaptive(&self) -> bool {
        self.0.tab().is_adaptive()
    }
    #[inline(always)]
    fn work(&self) -> Stats {
        Stats {
            nfe: self.0.nfe(),
            ..Stats::default()
        }
    }
    #[inline(always)]
    fn add_nfe(&mut self, n: usize) {
        *self.0.parts().nfe += n;
    }
    #[inline(always)]
    fn derivative<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S) -> (&S, &mut S) {
        self.0.ensure_k0(sys, t, y);
        // The end-derivative buffer is free between steps.
        let end = self.0.tab().end_stage();
        let (head, tail) = self.0.parts().k.split_at_mut(end);
        (&head[0], &mut tail[0])
    }
    #[inline(always)]
    fn attempt<F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
        tol: Option<&mut Tolerances<T>>,
    ) -> Attempt<T> {
        RkEngine::step(&mut self.0, sys, t, h, y, y_new);
        let err = match tol {
            Some(tol) => RkEngine::error_norm(&mut self.0, h, y, y_new, tol),
            None => T::zero(),
        };
        Attempt::Done { err }
    }
    #[inline(always)]
    fn stages(&self) -> &[S] {
        &self.0.k()[..self.0.tab().stages()]
    }
    #[inline(always)]
    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &S) {
        RkEngine::prepare_dense(&mut self.0, sys, t, h, y, y_new)
    }
    #[inline(always)]
    fn interpolate(&mut self, theta: T, h: T, y: &S, out: &mut S) {
        RkEngine::interpolate(&mut self.0, theta, h, y, out)
    }
    #[inline(always)]
    fn dense_vectors(&self) -> (&[S], Interpolant) {
        let tab = self.0.tab();
        (&self.0.k()[..tab.dense_stages()], rk_interpolant(tab))
    }
    #[inline(always)]
    fn accept(&mut self) {
        RkEngine::accept(&mut self.0)
    }
    fn restart(&mut self) {
        RkEngine::restart(&mut self.0)
    }
}

/// The continuous extension of a tableau: y + h sum_j w_j(theta) k_j over its dense stages.
pub(crate) fn rk_interpolant(tab: &Tableau) -> Interpolant {
    Interpolant {
        weights: tab.dense.weights,
        vectors: tab.dense_stages(),
        times_h: true,
    }
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
                    .map(|(j, &c)| (j, cast::<T>(c))),
            );
            rows.push(start..terms.len());
        };
        for row in tab.a {
            push(row);
        }
        let (err_main, err_aux): (&[f64], &[f64]) = match tab.error {
            ErrorEstimate::None => (&[], &[]),
            ErrorEstimate::Embedded(e) => (e, &[]),
            ErrorEstimate::Dop853 {
                e5: err_main,
                e3: err_aux,
            } => (err_main, err_aux),
        };
        push(tab.b);
        push(err_main);
        push(err_aux);
        for (_, row) in tab.dense.extra {
            push(row);
        }
        let n_k = tab.dense_stages().max(tab.end_stage() + 1);
        Self {
            tab,
            c: tab.c.iter().map(|&c| cast(c)).collect(),
            terms,
            rows,
            extra_c: tab.dense.extra.iter().map(|(c, _)| cast(*c)).collect(),
            k: vec![y0.clone(); n_k],
            ytmp: y0.clone(),
            ytmp2: y0.clone(),
            dense_weights: vec![0.0; n_k],
            k0_valid: false,
            dense_ready: false,
            nfe: 0,
        }
    }
}

impl<T: Float, S: State<T>> RkEngine<T, S> for Engine<T, S> {
    #[inline(always)]
    fn tab(&self) -> &'static Tableau {
        self.tab
    }
    #[inline(always)]
    fn k(&self) -> &[S] {
        &self.k
    }
    #[inline(always)]
    fn nfe(&self) -> usize {
        self.nfe
    }
    #[inline(always)]
    fn parts(&mut self) -> RkParts<'_, S> {
        RkParts {
            k: &mut self.k,
            dense_weights: &mut self.dense_weights,
            k0_valid: &mut self.k0_valid,
            dense_ready: &mut self.dense_ready,
            nfe: &mut self.nfe,
        }
    }

    #[inline]
    fn step<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &mut S) {
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
                combine(y_new.as_mut_slice(), y.as_slice(), h, terms, &*done);
                sys.rhs(ti, y_new, &mut rest[0]);
            } else {
                combine(self.ytmp.as_mut_slice(), y.as_slice(), h, terms, &*done);
                sys.rhs(ti, &self.ytmp, &mut rest[0]);
            }
        }
        self.nfe += s - 1;
        if !self.tab.fsal {
            let terms = &self.terms[self.rows[s + B].clone()];
            combine(y_new.as_mut_slice(), y.as_slice(), h, terms, &self.k[..s]);
        }
    }

    /// Over all components, or a seminorm's window (the others cost nothing).
    #[inline]
    fn error_norm(&mut self, h: T, y: &S, y_new: &S, tol: &mut Tolerances<T>) -> T {
        let s = self.tab.stages();
        let err_main = &self.terms[self.rows[s + E5].clone()];
        let err_aux = &self.terms[self.rows[s + E3].clone()];
        let (y, y_new) = (y.as_slice(), y_new.as_slice());
        let range = tol.norm_range();
        let scratch = (self.ytmp.as_mut_slice(), self.ytmp2.as_mut_slice());
        if range.len() == y.len() {
            // Every component: the stage buffers as they are (no slicing on small states).
            scaled_error(
                h,
                (y, y_new),
                tol,
                (err_main, err_aux),
                &self.k[..],
                scratch,
            )
        } else {
            let k = Window {
                k: &self.k,
                range: range.clone(),
            };
            let (y, y_new) = (&y[range.clone()], &y_new[range.clone()]);
            let scratch = (&mut scratch.0[range.clone()], &mut scratch.1[range]);
            scaled_error(h, (y, y_new), tol, (err_main, err_aux), &k, scratch)
        }
    }

    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &S) {
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
            combine(self.ytmp.as_mut_slice(), y.as_slice(), h, terms, &*done);
            sys.rhs(t + c * h, &self.ytmp, &mut rest[0]);
            self.nfe += 1;
        }
        self.dense_ready = true;
    }
}

/// The transposed Runge-Kutta step, for reverse-mode differentiation through accepted steps
/// ([`crate::Differentiation::Discretise`]). It reads the same flattened coefficients as the
/// forward step and runs them through the same stage arithmetic ([`combine`], [`sum_terms`]).
///
/// A step is y' = y + h sum_i b_i k_i with k_i = f(t + c_i h, Y_i), Y_i = y + h sum_j a_ij k_j.
/// Given the cotangent of y', the cotangent of stage i is
/// kbar_i = h (b_i y'bar + sum_{m > i} a_mi Ybar_m), with Ybar_m = (df/dy at stage m)^T kbar_m
/// from the system's VJP (which also adds the parameter cotangent), swept from the last stage
/// to the first; then ybar = y'bar + sum_i Ybar_i. Stages nothing depends on (b_i = 0 and no
/// live later stage uses them: FSAL's last) take no VJP.
pub(crate) struct Reverse<T> {
    n: usize,
    c: Vec<T>,
    terms: Vec<(usize, T)>,
    /// Ranges of `terms`: rows of A (to rebuild Y_i from the kept stages), then the columns of
    /// [A; b] over live stages: (m, a_mi) for live m > i, and (s, b_i).
    rows: Vec<Range<usize>>,
    live: Vec<bool>,
    /// s + 1 slots of n: Ybar_i of each stage, then the cotangent of the step's end state (which
    /// becomes the cotangent of its start state after `step`).
    g: Vec<T>,
    stage_y: Vec<T>,
    kbar: Vec<T>,
    f: Vec<T>,
    /// The error weights `e` of the embedded pair when the local error estimate `h sum e_i k_i`
    /// is differentiated too (empty otherwise): stages with `e_i != 0` are then live.
    err: Vec<T>,
}

impl<T: Float> Reverse<T> {
    /// The transposed step of `tab` for states of `n` components; allocates its buffers once.
    /// `with_error`: the embedded pair's error estimate is differentiated too (see
    /// [`Reverse::step`]; methods without one embedded pair have nothing to add).
    pub(crate) fn new(tab: &'static Tableau, n: usize, with_error: bool) -> Self {
        let s = tab.stages();
        let err: Vec<T> = match tab.error {
            ErrorEstimate::Embedded(e) if with_error => e.iter().map(|&c| cast(c)).collect(),
            _ => Vec::new(),
        };
        let mut live = vec![false; s];
        for i in (0..s).rev() {
            live[i] = tab.b[i] != 0.0
                || err.get(i).is_some_and(|&e| e != T::zero())
                || (i + 1..s).any(|m| live[m] && tab.a[m][i] != 0.0);
        }
        let mut terms = Vec::new();
        let mut rows = Vec::with_capacity(2 * s);
        for row in tab.a {
            let start = terms.len();
            terms.extend(
                row.iter()
                    .enumerate()
                    .filter(|(_, &c)| c != 0.0)
                    .map(|(j, &c)| (j, cast::<T>(c))),
            );
            rows.push(start..terms.len());
        }
        for i in 0..s {
            let start = terms.len();
            terms.extend(
                (i + 1..s)
                    .filter(|&m| live[m] && tab.a[m][i] != 0.0)
                    .map(|m| (m, cast::<T>(tab.a[m][i]))),
            );
            if tab.b[i] != 0.0 {
                terms.push((s, cast(tab.b[i])));
            }
            rows.push(start..terms.len());
        }
        Self {
            n,
            c: tab.c.iter().map(|&c| cast(c)).collect(),
            terms,
            rows,
            live,
            g: vec![T::zero(); (s + 1) * n],
            stage_y: vec![T::zero(); n],
            kbar: vec![T::zero(); n],
            f: vec![T::zero(); n],
            err,
        }
    }

    /// Number of stages of the method.
    pub(crate) fn stages(&self) -> usize {
        self.c.len()
    }

    /// The running state cotangent: set it to dL/dy(t_end) before the first `step`; after each
    /// `step` it is the cotangent of that step's start state.
    pub(crate) fn cotangent_mut(&mut self) -> &mut [T] {
        let s = self.c.len();
        &mut self.g[s * self.n..]
    }

    /// Carries the cotangent back through the step of size `h` from (t, y) whose stages are
    /// `stages` (s of n components, one after another); adds the parameter cotangent to `a_p`.
    /// `err_bar`: the cotangent of the step's error combination `sum_i e_i k_i` (only with the
    /// error weights given to [`Reverse::new`]). Returns the number of VJPs evaluated.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step<V: VjpSystem<T> + ?Sized>(
        &mut self,
        sys: &mut V,
        t: T,
        h: T,
        y: &[T],
        stages: &[T],
        err_bar: Option<&[T]>,
        a_p: &mut [T],
    ) -> usize {
        let (n, s) = (self.n, self.c.len());
        let k = ContiguousStages { data: stages, n };
        let mut vjps = 0;
        for i in (0..s).rev() {
            if !self.live[i] {
                continue;
            }
            let (done, later) = self.g.split_at_mut((i + 1) * n);
            let col = &self.terms[self.rows[s + i].clone()];
            // Only slots i+1..=s are read: shift the indices by i + 1.
            let later = OffsetStages {
                inner: ContiguousStages { data: later, n },
                by: i + 1,
            };
            if !sum_terms(&mut self.kbar, col, &later) {
                // Live only through the error estimate (Dopri5's FSAL stage).
                self.kbar.fill(T::zero());
            }
            for kb in &mut self.kbar {
                *kb = *kb * h;
            }
            if let (Some(eb), Some(&e)) = (err_bar, self.err.get(i)) {
                if e != T::zero() {
                    for (kb, &g) in self.kbar.iter_mut().zip(eb) {
                        *kb = *kb + e * g;
                    }
                }
            }
            let row = &self.terms[self.rows[i].clone()];
            combine(&mut self.stage_y, y, h, row, &k);
            let gi = &mut done[i * n..];
            gi.fill(T::zero());
            sys.vjp(
                t + self.c[i] * h,
                &self.stage_y,
                &self.kbar,
                VjpOut {
                    f: &mut self.f,
                    a_y: gi,
                    a_p: &mut *a_p,
                },
            );
            vjps += 1;
        }
        let (stage_bars, ybar) = self.g.split_at_mut(s * n);
        for (i, gi) in stage_bars.chunks_exact(n).enumerate() {
            if self.live[i] {
                for (yb, &g) in ybar.iter_mut().zip(gi) {
                    *yb = *yb + g;
                }
            }
        }
        vjps
    }
}

/// Stages numbered from `by`: stage j of `inner` is stage j + by.
struct OffsetStages<K> {
    inner: K,
    by: usize,
}

impl<T, K: Stages<T>> Stages<T> for OffsetStages<K> {
    #[inline(always)]
    fn stage(&self, j: usize) -> &[T] {
        self.inner.stage(j - self.by)
    }
}
