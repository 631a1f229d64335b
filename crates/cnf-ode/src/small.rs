//! The engine for small states that are `Copy` (`[T; N]`, nalgebra `SVector`): the same
//! Runge-Kutta arithmetic as [`crate::engine::Engine`], in the same order (the same results, bit
//! for bit), but with its stage buffers in an array inside the engine (on the stack, no heap
//! buffer, no indirection) and the tableau read straight from the method.
//!
//! When the method is a unit type ([`crate::Dopri5`], [`crate::Rk4`], ...), its tableau is a
//! constant the compiler sees: the loops over stages and over the non-zero coefficients of each
//! row unroll, zero coefficients disappear, and the stages of a small state can stay in
//! registers. The method is still data, one tableau fed to one engine: nothing here is written per
//! method. With a tableau chosen at run time (`&'static Tableau`) the same code runs with the
//! loops kept.
use std::marker::PhantomData;

use num_traits::Float;

use crate::engine::{error_of, RkEngine, RkParts};
use crate::options::Tolerances;
use crate::state::State;
use crate::system::OdeSystem;
use crate::tableau::{ErrorEstimate, RkMethod, Tableau};
use crate::util::cast;

/// Stage buffers of the array engine: enough for every built-in method (DOP853 with its dense
/// output takes 16).
pub(crate) const MAX_STAGES: usize = 16;

/// True when the array engine has room for the stage buffers of `tab`.
pub(crate) fn fits(tab: &Tableau) -> bool {
    tab.dense_stages().max(tab.end_stage() + 1) <= MAX_STAGES
}

pub(crate) struct ArrayEngine<'m, M, T, S> {
    method: &'m M,
    /// Stage derivatives, laid out as `Engine::k`.
    k: [S; MAX_STAGES],
    ytmp: S,
    ytmp2: S,
    dense_weights: [f64; MAX_STAGES],
    k0_valid: bool,
    dense_ready: bool,
    nfe: usize,
    _t: PhantomData<T>,
}

impl<'m, M: RkMethod, T: Float, S: State<T> + Copy> ArrayEngine<'m, M, T, S> {
    /// An engine for `method` (whose tableau must [`fits`]) with buffers shaped as `y0`.
    pub(crate) fn new(method: &'m M, y0: &S) -> Self {
        debug_assert!(fits(method.tableau()));
        Self {
            method,
            k: [*y0; MAX_STAGES],
            ytmp: *y0,
            ytmp2: *y0,
            dense_weights: [0.0; MAX_STAGES],
            k0_valid: false,
            dense_ready: false,
            nfe: 0,
            _t: PhantomData,
        }
    }
}

/// The running sum of a stage combination: terms come one at a time and are applied two per
/// pass, as [`crate::engine::sum_terms`] does (the same rounding).
struct Sum<T> {
    started: bool,
    pending: Option<(usize, T)>,
}

impl<T: Float> Sum<T> {
    #[inline(always)]
    fn push<S: State<T>>(&mut self, j: usize, c: f64, out: &mut [T], k: &[S]) {
        if c == 0.0 {
            return;
        }
        let c1: T = cast(c);
        match self.pending.take() {
            None => self.pending = Some((j, c1)),
            Some((j0, c0)) => {
                let (a, b) = (k[j0].as_slice(), k[j].as_slice());
                if self.started {
                    for ((o, &x), &z) in out.iter_mut().zip(a).zip(b) {
                        *o = *o + c0 * x + c1 * z;
                    }
                } else {
                    for ((o, &x), &z) in out.iter_mut().zip(a).zip(b) {
                        *o = c0 * x + c1 * z;
                    }
                    self.started = true;
                }
            }
        }
    }
    #[inline(always)]
    fn finish<S: State<T>>(mut self, out: &mut [T], k: &[S]) -> bool {
        if let Some((j0, c0)) = self.pending {
            let a = k[j0].as_slice();
            if self.started {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = *o + c0 * x;
                }
            } else {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = c0 * x;
                }
                self.started = true;
            }
        }
        self.started
    }
}

/// out = sum_j row_j k_j over the non-zero entries of `row`, in the order and pairing of
/// [`crate::engine::sum_terms`] (two stages per pass); false (out untouched) when all are zero.
/// `unroll` (a constant: the tableau is) writes the terms out one by one, so that with constant
/// coefficients the zero tests and the pairing are resolved at compile time.
#[inline(always)]
fn sum_row<T: Float, S: State<T>, const MAX: usize>(
    out: &mut [T],
    row: &[f64],
    k: &[S],
    unroll: bool,
) -> bool {
    let mut sum = Sum {
        started: false,
        pending: None,
    };
    if unroll && row.len() <= MAX_STAGES {
        // Terms past MAX (a row of A has I entries) are not even generated.
        macro_rules! terms {
            ($($j:literal)*) => { $(
                if const { $j < MAX } && $j < row.len() {
                    sum.push($j, row[$j], out, k);
                }
            )* };
        }
        terms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    } else {
        for (j, &c) in row.iter().enumerate() {
            sum.push(j, c, out, k);
        }
    }
    sum.finish(out, k)
}

/// out = y + h sum_j row_j k_j, as [`crate::engine::combine`] (rows of at most `MAX` entries).
#[inline(always)]
fn combine_row<T: Float, S: State<T>, const MAX: usize>(
    out: &mut [T],
    y: &[T],
    h: T,
    row: &[f64],
    k: &[S],
    unroll: bool,
) {
    if !sum_row::<T, S, MAX>(out, row, k, unroll) {
        out.copy_from_slice(y);
        return;
    }
    for (o, &yv) in out.iter_mut().zip(y) {
        *o = yv + h * *o;
    }
}

impl<M: RkMethod, T: Float, S: State<T> + Copy> ArrayEngine<'_, M, T, S> {
    /// Stage `I` (a constant) of a step, if the method has that many stages.
    #[inline(always)]
    fn stage<const I: usize, F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
    ) {
        if I < self.method.tableau().stages() {
            self.stage_at::<F, I>(I, sys, t, h, y, y_new);
        }
    }

    /// Stage `i` of a step (with at most `MAX` earlier stages): its input from the earlier
    /// stages, then f there.
    #[inline(always)]
    fn stage_at<F: OdeSystem<T, S>, const MAX: usize>(
        &mut self,
        i: usize,
        sys: &mut F,
        t: T,
        h: T,
        y: &S,
        y_new: &mut S,
    ) {
        let tab = self.method.tableau();
        let s = tab.stages();
        let last_in_y_new = if tab.fsal { s - 1 } else { s };
        let (done, rest) = self.k.split_at_mut(i);
        let ti = t + cast::<T>(tab.c[i]) * h;
        // The last FSAL stage is evaluated at y_new itself; one call site either way.
        let at: &mut S = if i == last_in_y_new {
            y_new
        } else {
            &mut self.ytmp
        };
        combine_row::<T, S, MAX>(
            at.as_mut_slice(),
            y.as_slice(),
            h,
            tab.a[i],
            done,
            self.method.constant_tableau(),
        );
        sys.rhs(ti, at, &mut rest[0]);
    }
}

impl<M: RkMethod, T: Float, S: State<T> + Copy> RkEngine<T, S> for ArrayEngine<'_, M, T, S> {
    #[inline(always)]
    fn tab(&self) -> &'static Tableau {
        self.method.tableau()
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
    #[inline(always)]
    fn step<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &mut S) {
        self.ensure_k0(sys, t, y);
        // States of whole 16-byte lanes ([f64; 4]) are read from a local copy, which the stages
        // keep in registers, rather than through `y`, a pointer into the driver's state pair
        // (Arenstorf, Kepler: 5-16% less time per evaluation for Dopri5, Tsit5, DOP853). A
        // [f64; 3] copy costs 3-28% (Lorenz, RK4 included), so other sizes read `y` in place.
        // Measured with `small_state_overhead -- all`; the arithmetic is unchanged.
        let copy = *y;
        let y = if std::mem::size_of::<S>().is_multiple_of(16) {
            &copy
        } else {
            y
        };
        self.dense_ready = false;
        let tab = self.method.tableau();
        let s = tab.stages();
        if self.method.constant_tableau() {
            // A unit method: its tableau is a constant, so each stage is its own code with
            // constant coefficients (the stages past `s` vanish at compile time).
            macro_rules! unrolled {
                ($($i:literal)*) => { $( self.stage::<$i, F>(sys, t, h, y, y_new); )* };
            }
            unrolled!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        } else {
            for i in 1..s {
                self.stage_at::<F, MAX_STAGES>(i, sys, t, h, y, y_new);
            }
        }
        self.nfe += s - 1;
        if !tab.fsal {
            combine_row::<T, S, MAX_STAGES>(
                y_new.as_mut_slice(),
                y.as_slice(),
                h,
                tab.b,
                &self.k[..s],
                self.method.constant_tableau(),
            );
        }
    }

    #[inline(always)]
    fn error_norm(&mut self, h: T, y: &S, y_new: &S, tol: &mut Tolerances<T>) -> T {
        let tab = self.method.tableau();
        let (err_main, err_aux): (&[f64], &[f64]) = match tab.error {
            ErrorEstimate::None => (&[], &[]),
            ErrorEstimate::Embedded(e) => (e, &[]),
            ErrorEstimate::Dop853 {
                e5: err_main,
                e3: err_aux,
            } => (err_main, err_aux),
        };
        let range = tol.norm_range();
        let s = tab.stages();
        sum_row::<T, S, MAX_STAGES>(
            self.ytmp.as_mut_slice(),
            err_main,
            &self.k[..s],
            self.method.constant_tableau(),
        );
        let aux = if err_aux.is_empty() {
            None
        } else {
            sum_row::<T, S, MAX_STAGES>(
                self.ytmp2.as_mut_slice(),
                err_aux,
                &self.k[..s],
                self.method.constant_tableau(),
            );
            Some(&mut self.ytmp2.as_mut_slice()[range.clone()])
        };
        let (y, y_new) = (
            &y.as_slice()[range.clone()],
            &y_new.as_slice()[range.clone()],
        );
        error_of(
            h,
            (y, y_new),
            tol,
            &mut self.ytmp.as_mut_slice()[range],
            aux,
        )
    }
    fn prepare_dense<F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, h: T, y: &S, y_new: &S) {
        if self.dense_ready {
            return;
        }
        let tab = self.method.tableau();
        let s = tab.stages();
        if tab.dense.end_derivative && !tab.fsal {
            sys.rhs(t + h, y_new, &mut self.k[s]);
            self.nfe += 1;
        }
        let first = tab.dense_stages() - tab.dense.extra.len();
        for (j, &(c, row)) in tab.dense.extra.iter().enumerate() {
            let (done, rest) = self.k.split_at_mut(first + j);
            // Only steps with an output time: the loops stay (less code).
            combine_row::<T, S, MAX_STAGES>(
                self.ytmp.as_mut_slice(),
                y.as_slice(),
                h,
                row,
                done,
                false,
            );
            sys.rhs(t + cast::<T>(c) * h, &self.ytmp, &mut rest[0]);
            self.nfe += 1;
        }
        self.dense_ready = true;
    }
}
