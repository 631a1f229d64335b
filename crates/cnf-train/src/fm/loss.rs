//! The flow-matching regression loss, its parameter gradient, and one training step's draws.
//!
//! # Loss
//!
//! For a batch of `B` points in `d` dimensions with times `t_b`, path points `x_t` and targets
//! `u_t` ([`super::ProbabilityPath`]):
//!
//! `L = 1 / (B d) * sum_b |v(t_b, x_t[b]) - u_t[b]|^2`,
//!
//! the mean over batch *and* dimensions, which is TorchCFM's `torch.mean((vt - ut) ** 2)`, so
//! loss values compare with its tutorials. Its gradient is the VJP of `v` with the cotangent
//! `a_v = 2 (v - u) / (B d)`; no divergence (trace) is involved.
//!
//! # The field's calls
//!
//! Every sample has its own time, so the field is called with [`Time::PerRow`]
//! ([`Inputs::per_row`]): one batched `eval_batch` and one batched `vjp_batch` per loss and
//! gradient, for any [`VectorField`] (the MLP takes per-row times natively: a plain-concat
//! first layer reads each row's time from its time column, concat-squash gates are per row).
//!
//! The VJP is that of `v` only: the divergence cotangent is zero, and the trace is a Hutchinson
//! estimator with *no* probes (`Trace::NONE`), for which `tangents_per_point` is 0:
//! the MLP then carries no tangent rows at all (the path `eval_batch` takes) instead of `d`
//! rows per point with [`Trace::Exact`]. The divergence it reports is 0 and unused. (The
//! gradient tests check this against finite differences for the MLP of both layer kinds and a
//! hand-written field.)

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::coupling::{check_finite, Coupling, CouplingWork};
use super::path::{PathSpec, ProbabilityPath};
use super::FmError;
use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{Inputs, Real, Time, Trace, VectorField};
use cnf_ode::cast;
use rayon::prelude::*;

/// One flow-matching batch: data `x (B, d)`, base draws `e (B, d)` already paired with `x` row
/// by row, times `t (B)` in `[0, 1]`, and the path's extra noise `(B, d)` (may be empty when the
/// path does not use it).
#[derive(Debug, Clone, Copy)]
pub struct FmBatch<'a, T> {
    /// Data points (the path's `t = 0` end), `(B, d)` row-major.
    pub x: &'a [T],
    /// Base draws `N(0, I)` (the `t = 1` end), `(B, d)`; row `i` is the partner of `x`'s row
    /// `i` (after the coupling).
    pub e: &'a [T],
    /// One time per sample, `(B)`, each in `[0, 1]`.
    pub t: &'a [T],
    /// Standard normal noise for paths with a noise level, `(B, d)`; empty if the path does
    /// not use it.
    pub noise: &'a [T],
}

/// Buffers of the loss (the path points, targets, field values and cotangents), reused across
/// calls, and the field's scratch `S` ([`VectorField::Scratch`]).
pub struct FmWork<T: Real, S> {
    scratch: S,
    /// The VJP's divergence cotangent (zeros), divergence (unused) and `g_z` (unused).
    a_div: Vec<T>,
    div: Vec<T>,
    g_z: Vec<T>,
    xt: Vec<T>,
    ut: Vec<T>,
    v: Vec<T>,
    a: Vec<T>,
    zero_noise: Vec<T>,
    // Draws of [`FlowMatching::step`].
    e: Vec<T>,
    e_paired: Vec<T>,
    t: Vec<T>,
    noise: Vec<T>,
    coupling: CouplingWork,
    /// Row blocks of the gradient run in parallel (1: one call on this thread).
    row_blocks: usize,
    /// Each block's scratch and parameter gradient (with several blocks).
    blocks: Vec<(S, Vec<T>)>,
}

impl<T: Real, S> FmWork<T, S> {
    /// Buffers for `field` (they grow with the batch on first use).
    pub fn new<F: VectorField<T, Scratch = S> + ?Sized>(field: &F) -> Self {
        Self {
            scratch: field.scratch(0),
            a_div: Vec::new(),
            div: Vec::new(),
            g_z: Vec::new(),
            xt: Vec::new(),
            ut: Vec::new(),
            v: Vec::new(),
            a: Vec::new(),
            zero_noise: Vec::new(),
            e: Vec::new(),
            e_paired: Vec::new(),
            t: Vec::new(),
            noise: Vec::new(),
            coupling: CouplingWork::default(),
            row_blocks: 1,
            blocks: Vec::new(),
        }
    }

    /// The same buffers computing the gradient in `blocks` row blocks in parallel (rayon),
    /// each with its own scratch and parameter gradient, summed in block order. The loss and
    /// gradient are those of one call up to the order of the gradient's sums; 1 (the default)
    /// is one call on this thread.
    pub fn with_row_blocks(mut self, blocks: usize) -> Self {
        self.row_blocks = blocks.max(1);
        self
    }
}

/// Rows below which a block of the gradient is not worth a thread.
const MIN_ROWS_PER_BLOCK: usize = 128;

/// `v` and the gradient of the loss's rows in parallel row blocks: per block, `v` of its rows,
/// `a_v = two (v - u)` and the VJP into the block's own gradient; then the blocks' gradients
/// summed into `grad` in order. `rows` rows per block.
#[allow(clippy::too_many_arguments)]
fn blocked_gradient<T: Real, F: VectorField<T> + ?Sized>(
    field: &F,
    work: &mut FmWork<T, F::Scratch>,
    t: &[T],
    context: &[T],
    n: usize,
    rows: usize,
    two: T,
    grad: &mut [T],
) {
    let (d, k, np) = (field.dim(), field.context_dim(), field.num_params());
    let b = t.len();
    let nb = b.div_ceil(rows);
    while work.blocks.len() < nb {
        work.blocks.push((field.scratch(rows), vec![T::zero(); np]));
    }
    resize(&mut work.g_z, n);
    resize(&mut work.a_div, b);
    resize(&mut work.div, b);
    let contexts: Vec<&[T]> = match k {
        0 => vec![&[] as &[T]; nb],
        k => context.chunks(rows * k).collect(),
    };
    work.blocks[..nb]
        .par_iter_mut()
        .zip(work.xt[..n].par_chunks(rows * d))
        .zip(work.ut[..n].par_chunks(rows * d))
        .zip(work.v[..n].par_chunks_mut(rows * d))
        .zip(work.a[..n].par_chunks_mut(rows * d))
        .zip(work.g_z[..n].par_chunks_mut(rows * d))
        .zip(work.div[..b].par_chunks_mut(rows))
        .zip(work.a_div[..b].par_chunks(rows))
        .zip(t.par_chunks(rows))
        .zip(contexts.into_par_iter())
        .for_each(
            |(((((((((block, xt), ut), v), a), g_z), div), a_div), t), c)| {
                let (scratch, g) = block;
                let x = Inputs::per_row(t, xt).with_context(c);
                g.fill(T::zero());
                g_z.fill(T::zero());
                let mut cotangent = |v: &[T], a: &mut [T]| {
                    for ((a, &v), &u) in a.iter_mut().zip(v).zip(ut) {
                        *a = two * (v - u);
                    }
                };
                let out = VjpOutput::new(v, div, g_z, g);
                field.vjp_of_v(scratch, x, &mut cotangent, a, a_div, out);
            },
        );
    grad.fill(T::zero());
    for (_, g) in &work.blocks[..nb] {
        for (acc, &gi) in grad.iter_mut().zip(g) {
            *acc = *acc + gi;
        }
    }
}

/// Checks the batch against the field and path; returns `(B, d)`.
fn check_batch<T: Real, F: VectorField<T> + ?Sized, P: ProbabilityPath<T> + ?Sized>(
    field: &F,
    path: &P,
    batch: &FmBatch<T>,
) -> Result<(usize, usize), FmError> {
    let d = field.dim();
    let b = batch.t.len();
    if b == 0 {
        return Err(FmError::EmptyBatch);
    }
    let n = b * d;
    for (what, buf) in [
        ("data batch x (B, d)", batch.x),
        ("base draws e (B, d)", batch.e),
    ] {
        if buf.len() != n {
            return Err(FmError::Shape {
                what,
                expected: n,
                found: buf.len(),
            });
        }
    }
    if path.uses_noise() || !batch.noise.is_empty() {
        if batch.noise.len() != n {
            return Err(FmError::Shape {
                what: "path noise (B, d)",
                expected: n,
                found: batch.noise.len(),
            });
        }
        check_finite("path noise", batch.noise)?;
    }
    check_finite("data batch", batch.x)?;
    check_finite("base draws", batch.e)?;
    if let Some(index) = batch
        .t
        .iter()
        .position(|&t| !(t >= T::zero() && t <= T::one()))
    {
        return Err(FmError::BadTime {
            index,
            value: batch.t[index].to_f64().unwrap_or(f64::NAN),
        });
    }
    Ok((b, d))
}

/// Sets `buf` to `n` zeros if it is shorter (existing entries are kept zero by all callers).
fn resize<T: Real>(buf: &mut Vec<T>, n: usize) {
    if buf.len() < n {
        buf.resize(n, T::zero());
    }
}

/// One of the two calls of [`VectorField::vjp_batch`] in this module tree (the other is
/// [`blocked_gradient`]'s, per row block): `v(t_b, x_t[b])` of the
/// batch (`work.xt`, `work.a` hold the points and `a_v`, `(B, d)`) and
/// `g_theta += d/dtheta sum_b a_v[b] . v[b]` (zero divergence cotangent, an empty Hutchinson
/// probe set so no tangent work). Adapt here if `vjp_batch`'s argument list changes.
fn vjp_v_only<T: Real, F: VectorField<T> + ?Sized>(
    field: &F,
    work: &mut FmWork<T, F::Scratch>,
    t: &[T],
    context: &[T],
    n: usize,
    g_theta: &mut [T],
) {
    let b = t.len();
    resize(&mut work.g_z, n);
    resize(&mut work.a_div, b);
    resize(&mut work.div, b);
    work.g_z[..n].fill(T::zero());
    let x = Inputs::per_row(t, &work.xt[..n]).with_context(context);
    let input = VjpInput::new(x, Trace::NONE, &work.a[..n], &work.a_div[..b]);
    let out = VjpOutput::new(
        &mut work.v[..n],
        &mut work.div[..b],
        &mut work.g_z[..n],
        g_theta,
    );
    field.vjp_batch(&mut work.scratch, input, out);
}

/// Fills `xt`, `ut` and evaluates `v` (and, with `grad`, the VJP); returns the loss.
/// `context` is `(B, k)`, row `b` conditioning sample `b` (empty for an unconditional field).
fn run<T: Real, F: VectorField<T> + ?Sized, P: ProbabilityPath<T> + ?Sized>(
    field: &F,
    work: &mut FmWork<T, F::Scratch>,
    path: &P,
    batch: &FmBatch<T>,
    context: &[T],
    grad: Option<&mut [T]>,
) -> Result<T, FmError> {
    let (b, d) = check_batch(field, path, batch)?;
    let n = b * d;
    let k = field.context_dim();
    if context.len() != b * k {
        return Err(FmError::Shape {
            what: "context c (B, k)",
            expected: b * k,
            found: context.len(),
        });
    }
    check_finite("context", context)?;
    for buf in [&mut work.xt, &mut work.ut, &mut work.v, &mut work.a] {
        if buf.len() < n {
            buf.resize(n, T::zero());
        }
    }
    if work.zero_noise.len() < d {
        work.zero_noise.resize(d, T::zero());
    }
    for i in 0..b {
        let r = i * d..(i + 1) * d;
        let nz = if batch.noise.is_empty() {
            &work.zero_noise[..d]
        } else {
            &batch.noise[r.clone()]
        };
        let (xt, ut) = (&mut work.xt[r.clone()], &mut work.ut[r.clone()]);
        path.interpolate(batch.t[i], &batch.x[r.clone()], &batch.e[r], nz, xt, ut);
    }
    let scale = T::one() / cast::<T>(n as f64);
    let x = Inputs {
        t: Time::PerRow(batch.t),
        z: &work.xt[..n],
        context,
    };
    match grad {
        None => field.eval_batch(&mut work.scratch, x, &mut work.v[..n]),
        Some(grad) => {
            let np = field.num_params();
            if grad.len() != np {
                return Err(FmError::Shape {
                    what: "gradient (num_params)",
                    expected: np,
                    found: grad.len(),
                });
            }
            let two = scale + scale;
            let rows = b.div_ceil(work.row_blocks).max(MIN_ROWS_PER_BLOCK);
            if rows < b {
                blocked_gradient(field, work, batch.t, context, n, rows, two, grad);
            } else {
                // a_v needs v: evaluate first, then the VJP (which evaluates v again on the
                // way).
                field.eval_batch(&mut work.scratch, x, &mut work.v[..n]);
                for k in 0..n {
                    work.a[k] = two * (work.v[k] - work.ut[k]);
                }
                grad.fill(T::zero());
                vjp_v_only(field, work, batch.t, context, n, grad);
            }
        }
    }
    let sum = work.v[..n]
        .iter()
        .zip(&work.ut[..n])
        .fold(T::zero(), |acc, (&v, &u)| acc + (v - u) * (v - u));
    Ok(sum * scale)
}

/// The flow-matching loss `1/(B d) sum_b |v(t_b, x_t[b]) - u_t[b]|^2` of a batch and its
/// gradient with respect to the field's parameters (written to `grad`, which must have
/// `num_params` entries; overwritten, not accumulated).
///
/// The gradient is the VJP of `v` alone, through the field's batched fast path. Inputs are
/// validated: shapes, finite values, `t` in `[0, 1]`, non-empty batch.
///
/// # Errors
/// As [`fm_loss`], and [`FmError::Shape`] if `grad` does not have `num_params` entries.
pub fn fm_loss_and_grad<T: Real, F: VectorField<T> + ?Sized, P: ProbabilityPath<T> + ?Sized>(
    field: &F,
    work: &mut FmWork<T, F::Scratch>,
    path: &P,
    batch: &FmBatch<T>,
    grad: &mut [T],
) -> Result<T, FmError> {
    run(field, work, path, batch, &[], Some(grad))
}

/// The flow-matching loss only (no gradient), e.g. for a validation batch.
///
/// ```
/// use cnf_field::{Activation, Mlp, MlpConfig};
/// use cnf_train::fm::{fm_loss, FmBatch, FmWork, StraightPath};
///
/// // With v = 0 the loss is the mean of |u_t|^2 / d, and the straight path's target is e - x.
/// let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, &[8], Activation::Tanh), 0)?;
/// mlp.zero_output();
/// let (x, e, t) = ([1.0, 2.0, -1.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.25, 0.75]);
/// let batch = FmBatch { x: &x, e: &e, t: &t, noise: &[] };
/// let loss = fm_loss(&mlp, &mut FmWork::new(&mlp), &StraightPath::new(0.0)?, &batch)?;
/// // (1 + 4 + 4 + 1) / (B d) with B = d = 2.
/// assert!((loss - 10.0 / 4.0).abs() < 1e-15);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`FmError::EmptyBatch`] for no times; [`FmError::Shape`] if `x`, `e` (or the noise, when
/// given or used) are not `(B, d)`; [`FmError::NonFinite`] for a NaN or infinite entry;
/// [`FmError::BadTime`] for a time outside `[0, 1]`.
pub fn fm_loss<T: Real, F: VectorField<T> + ?Sized, P: ProbabilityPath<T> + ?Sized>(
    field: &F,
    work: &mut FmWork<T, F::Scratch>,
    path: &P,
    batch: &FmBatch<T>,
) -> Result<T, FmError> {
    run(field, work, path, batch, &[], None)
}

/// How the per-sample times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TimeDist {
    /// `t ~ U[0, 1)`.
    #[default]
    Uniform,
    /// `t = sigmoid(mean + std * n)`, `n ~ N(0, 1)` (Esser et al. 2024): more weight in the
    /// middle of the path for `mean = 0`.
    LogitNormal {
        /// Location of the normal before the sigmoid (0 centres the times on 1/2).
        mean: f64,
        /// Scale of that normal (positive; larger spreads the times towards 0 and 1).
        std: f64,
    },
}

impl TimeDist {
    /// Checks the settings (finite mean, finite positive std).
    ///
    /// # Errors
    /// [`FmError::BadSetting`] naming the time `mean` or `std` that is out of range.
    pub fn validate(&self) -> Result<(), FmError> {
        if let Self::LogitNormal { mean, std } = *self {
            if !mean.is_finite() {
                return Err(FmError::BadSetting {
                    name: "time mean",
                    value: mean,
                    why: "must be finite",
                });
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(FmError::BadSetting {
                    name: "time std",
                    value: std,
                    why: "must be finite and positive",
                });
            }
        }
        Ok(())
    }

    /// One draw in `[0, 1]`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Self::Uniform => rng.random::<f64>(),
            Self::LogitNormal { mean, std } => {
                let n: f64 = StandardNormal.sample(rng);
                1.0 / (1.0 + (-(mean + std * n)).exp())
            }
        }
    }
}

/// The flow-matching objective: a path, a coupling and a time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct FlowMatching {
    /// The probability path (its noise level, `sigma` or `sigma_min`, is part of it).
    pub path: PathSpec,
    /// How the batch is paired with its base draws.
    pub coupling: Coupling,
    /// How per-sample times are drawn.
    pub time: TimeDist,
}

/// What one [`FlowMatching::step`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FmStep<T> {
    /// The regression loss of the batch.
    pub loss: T,
    /// Mean squared distance `|x_i - e_partner(i)|^2` of the pairs (the coupling's cost).
    pub pair_cost: f64,
}

impl FlowMatching {
    /// Checks the path, coupling and time settings.
    ///
    /// # Errors
    /// [`FmError::BadSetting`] naming the first setting out of range ([`PathSpec::validate`],
    /// [`Coupling::validate`], [`TimeDist::validate`]).
    pub fn validate(&self) -> Result<(), FmError> {
        self.path.validate()?;
        self.coupling.validate()?;
        self.time.validate()
    }

    /// One batch: draws `e ~ N(0, I)`, the times and the path noise from `rng`, pairs `e` with
    /// the data `x (B, d)` by the coupling, and writes the loss gradient to `grad`
    /// (`num_params`, overwritten).
    ///
    /// # Errors
    /// As [`FlowMatching::step_given`].
    pub fn step<T: Real, F: VectorField<T> + ?Sized, R: Rng + ?Sized>(
        &self,
        field: &F,
        work: &mut FmWork<T, F::Scratch>,
        x: &[T],
        rng: &mut R,
        grad: &mut [T],
    ) -> Result<FmStep<T>, FmError> {
        self.step_given(field, work, x, &[], rng, grad)
    }

    /// [`FlowMatching::step`] for a conditional field: row `b` of `context (B, k)` conditions
    /// sample `b` and is fed to the field with it (the target velocity does not depend on it:
    /// each pair's path is that of p(x | c_b) with the base N(0, I)). The base draws must be
    /// independent of the context, so a conditional field takes independent pairs only: an
    /// OT plan over the batch would pair draws across contexts.
    ///
    /// # Errors
    /// [`FmError::Shape`] / [`FmError::NonFinite`] for a bad batch, context or gradient buffer,
    /// [`FmError::BadSetting`] for bad settings or an OT coupling with a context,
    /// [`FmError::TooManyPoints`] for an OT coupling of more than
    /// [`MAX_OT_POINTS`](super::MAX_OT_POINTS) points.
    pub fn step_given<T: Real, F: VectorField<T> + ?Sized, R: Rng + ?Sized>(
        &self,
        field: &F,
        work: &mut FmWork<T, F::Scratch>,
        x: &[T],
        context: &[T],
        rng: &mut R,
        grad: &mut [T],
    ) -> Result<FmStep<T>, FmError> {
        self.validate()?;
        if field.context_dim() > 0 && self.coupling != Coupling::Independent {
            return Err(FmError::BadSetting {
                name: "coupling",
                value: field.context_dim() as f64,
                why: "context columns: a conditional field needs independent pairs",
            });
        }
        let d = field.dim();
        if d == 0 || !x.len().is_multiple_of(d) || x.is_empty() {
            return Err(FmError::Shape {
                what: "data batch x (B, d)",
                expected: d,
                found: x.len(),
            });
        }
        check_finite("data batch", x)?;
        let b = x.len() / d;
        let n = b * d;
        let normal = |rng: &mut R| cast::<T>(Distribution::<f64>::sample(&StandardNormal, rng));
        work.e.clear();
        work.e.extend((0..n).map(|_| normal(rng)));
        work.t.clear();
        work.t
            .extend((0..b).map(|_| cast::<T>(self.time.sample(rng))));
        work.noise.clear();
        if ProbabilityPath::<T>::uses_noise(&self.path) {
            work.noise.extend((0..n).map(|_| normal(rng)));
        }
        let partner = self
            .coupling
            .pair_with(x, &work.e, d, rng, &mut work.coupling)?;
        work.e_paired.clear();
        let mut pair_cost = 0.0;
        for (i, &j) in partner.iter().enumerate() {
            let ej = &work.e[j * d..][..d];
            pair_cost += x[i * d..][..d]
                .iter()
                .zip(ej)
                .map(|(a, b)| {
                    let diff = (*a - *b).to_f64().unwrap_or(f64::NAN);
                    diff * diff
                })
                .sum::<f64>();
            work.e_paired.extend_from_slice(ej);
        }
        // The draws move out of `work` for the call (which borrows `work` mutably) and back.
        let (e, t, noise) = (
            std::mem::take(&mut work.e_paired),
            std::mem::take(&mut work.t),
            std::mem::take(&mut work.noise),
        );
        let batch = FmBatch {
            x,
            e: &e,
            t: &t,
            noise: &noise,
        };
        let loss = run(field, work, &self.path, &batch, context, Some(grad));
        (work.e_paired, work.t, work.noise) = (e, t, noise);
        Ok(FmStep {
            loss: loss?,
            pair_cost: pair_cost / b as f64,
        })
    }
}
