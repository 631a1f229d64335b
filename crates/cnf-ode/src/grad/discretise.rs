//! Discretise-then-optimise: reverse mode through the accepted steps of the forward solve,
//! with every step's stages kept, or with checkpoints and the stages of one segment at a time
//! recomputed.
use num_traits::Float;

use super::{terminal, GradSolution, VjpSystem};
use crate::controller::StepController;
use crate::engine::{Engine, Reverse, RkEngine};
use crate::error::{num, OdeError};
use crate::method::{OdeMethod, Scheme};
use crate::observer::AcceptedStep;
use crate::options::Tolerances;
use crate::solution::Stats;
use crate::solver::Solver;
use crate::tableau::{ErrorEstimate, Tableau};
use crate::util::cast;

/// The forward solve records (t, h) of every accepted step and, with `every = None`,
/// `[y, k_0, .., k_{s-1}]` of each into one contiguous tape; with `every = Some(k)` only the
/// state at the start of every k-th step. The reverse pass walks the steps back with the
/// engine's transposed step, replaying each segment of k steps from its checkpoint with the
/// engine first (its evaluations are added to the backward `nfe`). With `error_weight > 0` the
/// loss also carries `error_weight` times the local-error penalty ([`LocalError`]).
pub(super) fn solve<M, T, C, V, L>(
    solver: &Solver<M, T, C>,
    sys: &mut V,
    (t0, t1): (T, T),
    y0: &[T],
    cotangent: L,
    every: Option<usize>,
    error_weight: T,
) -> Result<GradSolution<T>, OdeError>
where
    M: OdeMethod,
    T: Float,
    C: StepController<T> + Clone,
    V: VjpSystem<T> + ?Sized,
    L: FnOnce(&[T], &mut [T]),
{
    let tab = match solver.scheme() {
        Scheme::Explicit(tab) => tab,
        other => {
            return Err(OdeError::NotExplicit {
                method: other.name(),
            })
        }
    };
    let (n, s) = (y0.len(), tab.stages());
    let stride = (s + 1) * n;
    // A penalty that cannot be honoured fails before the forward solve is spent.
    let penalty = if error_weight != T::zero() {
        Some(LocalError::new(solver, tab, n, error_weight)?)
    } else {
        None
    };
    let mut steps: Vec<(T, T)> = Vec::new();
    let mut tape: Vec<T> = Vec::new();
    let mut record = |st: &AcceptedStep<'_, T, Vec<T>>| {
        let i = steps.len();
        steps.push((st.t_prev, st.t - st.t_prev));
        match every {
            None => {
                tape.extend_from_slice(st.y_prev);
                for k in st.stages {
                    tape.extend_from_slice(k);
                }
            }
            Some(k) if i.is_multiple_of(k) => tape.extend_from_slice(st.y_prev),
            Some(_) => {}
        }
    };
    let y0 = y0.to_vec();
    let sol = solver.solve_system_observed(
        &mut |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy),
        t0,
        t1,
        &y0,
        &mut record,
    )?;
    let a = terminal(&sol.y, cotangent, t1, sol.stats)?;

    let mut rev = Reverse::new(tab, n, penalty.is_some());
    rev.cotangent_mut().copy_from_slice(&a);
    let mut back = Backward {
        rev,
        penalty,
        grad_p: vec![T::zero(); sys.num_params()],
        stats: Stats::default(),
    };
    match every {
        None => {
            for (&(t, h), rec) in steps.iter().zip(tape.chunks_exact(stride)).rev() {
                back.step(sys, (t, h), rec)?;
            }
        }
        Some(k) => {
            // One segment's stages at a time, recomputed from its checkpoint.
            let mut engine = Engine::new(tab, &y0);
            let mut seg: Vec<T> = Vec::with_capacity(k.min(steps.len()) * stride);
            let (mut y, mut y_next) = (y0.clone(), y0);
            for (j, checkpoint) in tape.chunks_exact(n).enumerate().rev() {
                let segment = &steps[j * k..((j + 1) * k).min(steps.len())];
                y.copy_from_slice(checkpoint);
                engine.restart();
                seg.clear();
                let mut f = |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy);
                for &(t, h) in segment {
                    engine.step(&mut f, t, h, &y, &mut y_next);
                    seg.extend_from_slice(&y);
                    for stage in &engine.k[..s] {
                        seg.extend_from_slice(stage);
                    }
                    engine.accept();
                    std::mem::swap(&mut y, &mut y_next);
                }
                for (&(t, h), rec) in segment.iter().zip(seg.chunks_exact(stride)).rev() {
                    back.step(sys, (t, h), rec)?;
                }
            }
            back.stats.nfe += engine.nfe;
        }
    }
    if back.grad_p.iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite {
            t: num(t0),
            stats: back.stats,
        });
    }
    Ok(GradSolution {
        y1: sol.y,
        grad_y0: back.rev.cotangent_mut().to_vec(),
        grad_p: back.grad_p,
        forward: sol.stats,
        backward: back.stats,
        local_error: back.penalty.map_or(T::zero(), |p| p.total),
    })
}

/// The reverse pass: the transposed step, the local-error penalty (if any), the parameter
/// cotangent and the work done.
struct Backward<T> {
    rev: Reverse<T>,
    penalty: Option<LocalError<T>>,
    grad_p: Vec<T>,
    stats: Stats,
}

impl<T: Float> Backward<T> {
    /// The transposed step over one record `[y, k_0, .., k_{s-1}]`, counted in `stats`.
    fn step<V: VjpSystem<T> + ?Sized>(
        &mut self,
        sys: &mut V,
        (t, h): (T, T),
        rec: &[T],
    ) -> Result<(), OdeError> {
        let rev = &mut self.rev;
        let (y, stages) = rec.split_at(rec.len() / (rev.stages() + 1));
        let grad_p = &mut self.grad_p;
        self.stats.nfe += match self.penalty.as_mut() {
            None => rev.step(sys, t, h, y, stages, None, grad_p),
            Some(p) => {
                p.step(h, y, stages);
                add(rev.cotangent_mut(), &p.y_new_bar);
                let vjps = rev.step(sys, t, h, y, stages, Some(&p.r_bar), grad_p);
                add(rev.cotangent_mut(), &p.y_bar);
                vjps
            }
        };
        self.stats.accepted += 1;
        if rev.cotangent_mut().iter().any(|v| !v.is_finite()) {
            return Err(OdeError::NonFinite {
                t: num(t),
                stats: self.stats,
            });
        }
        Ok(())
    }
}

/// The local-error regulariser of Pal et al. 2021 ("Opening the blackbox: accelerating neural
/// differential equations by regularizing internal solver heuristics", ERNODE):
/// `R = sum_j |h_j| E_j` over the accepted steps, with `E_j = |h_j| sqrt(mean_i (r_i / sc_i)^2)`
/// the step's scaled error estimate (`r = sum_m e_m k_m`, the embedded pair's difference) over
/// the components of the solver's error norm, RMS (Hairer's norm; a per-sample norm is not
/// followed here), and `sc_i = atol_i + rtol_i max(|y_i|, |y_new_i|)`. A field whose steps have
/// small error estimates lets the controller take longer steps. The gradient is that of `R` for
/// the step sizes taken (constants of the reverse pass, as for the loss), through `r` and
/// through the scales.
struct LocalError<T> {
    weight: T,
    e: Vec<T>,
    b: Vec<T>,
    tol: Tolerances<T>,
    y_new: Vec<T>,
    /// The step's `r`, then its cotangent.
    r_bar: Vec<T>,
    /// Cotangents of the step's start and end states through the scales.
    y_bar: Vec<T>,
    y_new_bar: Vec<T>,
    /// `R` so far (unweighted).
    total: T,
}

impl<T: Float> LocalError<T> {
    fn new<M: OdeMethod, C>(
        solver: &Solver<M, T, C>,
        tab: &'static Tableau,
        n: usize,
        weight: T,
    ) -> Result<Self, OdeError> {
        let ErrorEstimate::Embedded(weights) = tab.error else {
            return Err(OdeError::NoEmbeddedPair { method: tab.name });
        };
        if !weight.is_finite() || weight < T::zero() {
            return Err(OdeError::InvalidSetting {
                field: "error_weight".into(),
                requirement: "finite and non-negative",
                value: num(weight),
            });
        }
        let opts = solver.options();
        let tol = Tolerances::new(&opts.rtol, &opts.atol, n)?
            .with_norm_components(opts.error_components.clone())?;
        Ok(Self {
            weight,
            e: weights.iter().map(|&c| cast(c)).collect(),
            b: tab.b.iter().map(|&c| cast(c)).collect(),
            tol,
            y_new: vec![T::zero(); n],
            r_bar: vec![T::zero(); n],
            y_bar: vec![T::zero(); n],
            y_new_bar: vec![T::zero(); n],
            total: T::zero(),
        })
    }

    /// Adds the step's `|h| E` to the total and sets the weighted cotangents of `r`, `y` and
    /// `y_new` (zero outside the norm's components).
    fn step(&mut self, h: T, y: &[T], stages: &[T]) {
        let n = y.len();
        // r into `r_bar`, y_new = y + h sum_m b_m k_m.
        self.r_bar.fill(T::zero());
        self.y_new.copy_from_slice(y);
        for ((k, &e), &b) in stages.chunks_exact(n).zip(&self.e).zip(&self.b) {
            for ((r, yn), &ki) in self.r_bar.iter_mut().zip(&mut self.y_new).zip(k) {
                *r = *r + e * ki;
                *yn = *yn + h * b * ki;
            }
        }
        let range = self.tol.norm_range();
        let count: T = cast(range.len() as f64);
        let sc = |tol: &Tolerances<T>, i: usize, a: T, b: T| tol.scale(i, a.abs().max(b.abs()));
        let sum = range.clone().fold(T::zero(), |acc, i| {
            let q = self.r_bar[i] / sc(&self.tol, i, y[i], self.y_new[i]);
            acc + q * q
        });
        let rms = (sum / count).sqrt();
        self.total = self.total + h * h * rms;
        // d(h^2 rms)/dq_i = h^2 q_i / (N rms) with q_i = r_i / sc_i: dq_i/dr_i = 1 / sc_i and
        // dq_i/dsc_i = -q_i / sc_i; sc_i moves with whichever of |y_i|, |y_new_i| is larger.
        let c = if rms > T::zero() {
            self.weight * h * h / (count * rms)
        } else {
            T::zero()
        };
        self.y_bar.fill(T::zero());
        self.y_new_bar.fill(T::zero());
        // Outside the norm's components r has no cotangent.
        self.r_bar[..range.start].fill(T::zero());
        self.r_bar[range.end..].fill(T::zero());
        for i in range {
            let (a, b) = (y[i], self.y_new[i]);
            let s = sc(&self.tol, i, a, b);
            let q = self.r_bar[i] / s;
            self.r_bar[i] = c * q / s;
            // d sc_i / d|y| = rtol_i.
            let s_bar = -c * q * q / s * self.tol.rtol(i);
            if a.abs() >= b.abs() {
                self.y_bar[i] = s_bar * a.signum();
            } else {
                self.y_new_bar[i] = s_bar * b.signum();
            }
        }
    }
}

fn add<T: Float>(acc: &mut [T], v: &[T]) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a = *a + b;
    }
}
