//! The `VectorField` trait, the `Trace` selector and the tangent bookkeeping shared by all fields.

use crate::error::FieldError;
use crate::real::{cast, Real};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// How the divergence tr(dv/dz) is computed.
#[derive(Clone, Copy, Debug)]
pub enum Trace<'a, T> {
    /// `d` unit tangents per point; the divergence is the exact Jacobian diagonal sum.
    Exact,
    /// Probes `e`, layout `(k, B, d)` flattened: `k` probes per point; the estimate is
    /// `mean_k e.(J e)`.
    Hutchinson(&'a [T]),
}

impl<T> Trace<'static, T> {
    /// No divergence at all: no tangents are carried (a Hutchinson estimate with zero probes),
    /// for callers that need only v or its VJP (flow matching).
    pub const NONE: Self = Trace::Hutchinson(&[]);
}

impl<T: Real> Trace<'_, T> {
    /// Number of tangent directions carried per point (`d` for exact, `k` for Hutchinson).
    pub fn tangents_per_point(&self, batch: usize, dim: usize) -> usize {
        match self {
            Trace::Exact => dim,
            Trace::Hutchinson(probes) => {
                if batch == 0 || dim == 0 {
                    0
                } else {
                    probes.len() / (batch * dim)
                }
            }
        }
    }

    /// Writes the initial tangents as a `(B * nt, d)` matrix whose row `b * nt + p` is tangent
    /// `p` of point `b` (unit vector `e_p` for exact, probe `p` for Hutchinson).
    pub fn fill_tangents(&self, batch: usize, dim: usize, u: &mut [T]) {
        let nt = self.tangents_per_point(batch, dim);
        debug_assert!(u.len() >= batch * nt * dim);
        match self {
            Trace::Exact => {
                // One fill, then the ones (a fill per row is a memset call per row).
                let u = &mut u[..batch * nt * dim];
                u.fill(T::zero());
                for (r, row) in u.chunks_exact_mut(dim).enumerate() {
                    row[r % dim] = T::one();
                }
            }
            Trace::Hutchinson(probes) => {
                for b in 0..batch {
                    for p in 0..nt {
                        let src = &probes[(p * batch + b) * dim..][..dim];
                        u[(b * nt + p) * dim..][..dim].copy_from_slice(src);
                    }
                }
            }
        }
    }

    /// The factor in `div = norm * sum_p u_p.(J u_p)`: 1 for exact, `1/k` for Hutchinson.
    pub fn norm(&self, batch: usize, dim: usize) -> T {
        match self {
            Trace::Exact => T::one(),
            Trace::Hutchinson(_) => {
                let k = self.tangents_per_point(batch, dim);
                T::one() / cast::<T>(k.max(1))
            }
        }
    }

    /// Checks that Hutchinson probes have the `(k, B, d)` layout with `k >= 1`.
    ///
    /// # Errors
    /// [`FieldError::Shape`] if the probes are empty, `batch * dim` is zero, or their length
    /// is not a multiple of `batch * dim`. [`Trace::Exact`] always passes.
    pub fn check(&self, batch: usize, dim: usize) -> Result<(), FieldError> {
        match self {
            Trace::Exact => Ok(()),
            Trace::Hutchinson(probes) => {
                let per_probe = batch * dim;
                if per_probe == 0 || probes.is_empty() || probes.len() % per_probe != 0 {
                    Err(FieldError::Shape {
                        what: "Hutchinson probes (k, B, d)".into(),
                        expected: vec![1, batch, dim],
                        found: vec![probes.len()],
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// `div[b] = norm * sum_p u[b,p,:] . jt[b,p,:]` for tangents `u` and their images `jt = J u`,
/// both `(B * nt, d)`.
pub fn contract_tangents<T: Real>(
    batch: usize,
    nt: usize,
    dim: usize,
    norm: T,
    u: &[T],
    jt: &[T],
    div: &mut [T],
) {
    let row = nt * dim;
    for (b, d) in div[..batch].iter_mut().enumerate() {
        let (u, jt) = (&u[b * row..][..row], &jt[b * row..][..row]);
        *d = norm
            * u.iter()
                .zip(jt)
                .fold(T::zero(), |acc, (&x, &y)| acc + x * y);
    }
}

/// Cotangent of `jt` for the objective `sum_b a_div[b] * div[b]`:
/// `gjt[b,p,:] = a_div[b] * norm * u[b,p,:]`.
pub fn seed_tangent_cotangents<T: Real>(
    batch: usize,
    nt: usize,
    dim: usize,
    norm: T,
    a_div: &[T],
    u: &[T],
    gjt: &mut [T],
) {
    let row = nt * dim;
    for b in 0..batch {
        let scale = a_div[b] * norm;
        for (g, &x) in gjt[b * row..][..row].iter_mut().zip(&u[b * row..][..row]) {
            *g = scale * x;
        }
    }
}

/// The time of a batch: one value shared by every row (an ODE solve), or one per row (flow
/// matching draws a time per sample).
#[derive(Clone, Copy, Debug)]
pub enum Time<'a, T> {
    /// One time for the whole batch.
    Shared(T),
    /// `t[b]` for row `b`, `(B)`.
    PerRow(&'a [T]),
}

impl<'a, T: Copy> Time<'a, T> {
    /// The time of row `b`.
    ///
    /// # Panics
    /// If the times are per row and `b` is out of range.
    #[inline]
    pub fn at(&self, b: usize) -> T {
        match *self {
            Time::Shared(t) => t,
            Time::PerRow(t) => t[b],
        }
    }

    /// The times of rows `r` (a shared time stays shared).
    #[inline]
    pub fn rows(&self, r: std::ops::Range<usize>) -> Self {
        match *self {
            Time::Shared(t) => Time::Shared(t),
            Time::PerRow(t) => Time::PerRow(&t[r]),
        }
    }
}

/// What a field is evaluated at: the time (shared or per row), the points `z (B, d)` and the
/// context `(B, k)`, a per-row conditioning vector (`k = 0`, empty, for unconditional fields).
///
/// The tangents (and so the divergence and `g_z`) are over `z` only.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a, T> {
    /// Time, shared by the batch or one per row.
    pub t: Time<'a, T>,
    /// Points, `(B, d)` row-major.
    pub z: &'a [T],
    /// Context, `(B, k)` row-major, `k` the field's [`VectorField::context_dim`]; empty for
    /// unconditional fields (`k = 0`). The hot-path methods only `debug_assert` its shape;
    /// [`ShapeCheck::inputs`] checks it.
    pub context: &'a [T],
}

impl<'a, T> Inputs<'a, T> {
    /// Points `z` at one shared time `t`, no context.
    #[inline]
    pub fn shared(t: T, z: &'a [T]) -> Self {
        Self {
            t: Time::Shared(t),
            z,
            context: &[],
        }
    }

    /// Points `z` at times `t (B)`, one per row, no context.
    #[inline]
    pub fn per_row(t: &'a [T], z: &'a [T]) -> Self {
        Self {
            t: Time::PerRow(t),
            z,
            context: &[],
        }
    }

    /// Number of rows `B` for points of dimension `dim`.
    #[inline]
    pub fn batch(&self, dim: usize) -> usize {
        self.z.len() / dim.max(1)
    }

    /// The same inputs with a context `c (B, k)`: row `b` of `c` conditions point `b`.
    #[inline]
    pub fn with_context(self, context: &'a [T]) -> Self {
        Self { context, ..self }
    }

    /// The same inputs with other points (time and context kept): e.g. a stage's state.
    #[inline]
    pub fn with_z(self, z: &'a [T]) -> Self {
        Self { z, ..self }
    }
}

impl<T: Copy> Inputs<'_, T> {
    /// Rows `r` of every per-row part (points, per-row times, context), for points of
    /// dimension `dim`.
    #[inline]
    pub fn rows(&self, r: std::ops::Range<usize>, dim: usize) -> Self {
        let batch = self.batch(dim);
        let k = self.context.len().checked_div(batch).unwrap_or(0);
        Self {
            t: self.t.rows(r.clone()),
            z: &self.z[r.start * dim..r.end * dim],
            context: &self.context[r.start * k..r.end * k],
        }
    }
}

/// A time-dependent vector field `v(t, z)` on `R^d` with batched value, divergence and
/// vector-Jacobian products.
///
/// The batched methods take their point as one [`Inputs`] value: the time ([`Time::Shared`]
/// for an ODE solve, [`Time::PerRow`] for flow matching), the points `z (B, d)` and the
/// context `(B, k)`, `k` = [`VectorField::context_dim`] (empty for unconditional fields). Every
/// field handles both kinds of time. Tangents, divergences and `g_z` are over `z` only.
///
/// ```
/// use cnf_field::{orthogonal_probes, Activation, Inputs, Mlp, MlpConfig, Trace, VectorField};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let (d, batch) = (3, 4);
/// let mlp = Mlp::<f64>::new(MlpConfig::new(d, &[16], Activation::Tanh), 0)?;
/// let z: Vec<f64> = (0..batch * d).map(|i| (0.37 * i as f64).sin()).collect();
/// let x = Inputs::shared(0.5, &z);
/// let mut s = mlp.scratch(batch);
///
/// // v alone, then v with the exact divergence: the same v.
/// let mut v = vec![0.0; batch * d];
/// mlp.eval_batch(&mut s, x, &mut v);
/// let (mut v2, mut exact) = (vec![0.0; batch * d], vec![0.0; batch]);
/// mlp.eval_div_batch(&mut s, x, &Trace::Exact, &mut v2, &mut exact);
/// assert!(v.iter().zip(&v2).all(|(a, b)| (a - b).abs() < 1e-14));
///
/// // Hutchinson with d orthogonal probes per point is the exact trace, not an estimate.
/// let probes = orthogonal_probes::<f64, _>(&mut StdRng::seed_from_u64(1), d, batch, d);
/// let mut estimate = vec![0.0; batch];
/// mlp.eval_div_batch(&mut s, x, &Trace::Hutchinson(&probes), &mut v2, &mut estimate);
/// for (e, h) in exact.iter().zip(&estimate) {
///     assert!((e - h).abs() < 1e-12, "{e} vs {h}");
/// }
/// # Ok::<(), cnf_field::FieldError>(())
/// ```
pub trait VectorField<T: Real>: Send + Sync {
    /// Reusable work buffers.
    type Scratch: Send;
    /// Dimension `d` of the state.
    fn dim(&self) -> usize;
    /// Number of trainable parameters (0 for parameter-free fields).
    fn num_params(&self) -> usize;
    /// Flat parameter buffer (empty if none).
    fn params(&self) -> &[T];
    /// Flat parameter buffer, mutable.
    fn params_mut(&mut self) -> &mut [T];
    /// Work buffers sized for `batch` points; methods grow them if given a larger batch and
    /// otherwise do not allocate.
    fn scratch(&self, batch: usize) -> Self::Scratch;
    /// Work buffers for [`VectorField::eval_batch`] alone over `batch` points: no trace, no
    /// reverse pass, as a solve that only moves points (sampling) needs. Fields whose
    /// [`VectorField::scratch`] makes room for the exact trace and the reverse pass make only
    /// the buffers of `v` here; the other methods still work with it (they grow it on demand).
    /// The default is [`VectorField::scratch`].
    fn eval_scratch(&self, batch: usize) -> Self::Scratch {
        self.scratch(batch)
    }
    /// `v(t, z)` for a batch at `x`: `x.z` is `(B, d)` row-major, `out` is `(B, d)`.
    fn eval_batch(&self, s: &mut Self::Scratch, x: Inputs<'_, T>, out: &mut [T]);
    /// `v` and the divergence together (one forward-tangent pass): `v (B, d)`, `div (B)`.
    fn eval_div_batch(
        &self,
        s: &mut Self::Scratch,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    );
    /// Vector-Jacobian products of `(v, div)` at `input.x` with cotangents
    /// `input.a_v (B, d)` and `input.a_div (B)`: ACCUMULATES (`+=`) `d/dz [a_v.v + a_div.div]`
    /// into `out.g_z (B, d)` and `d/dtheta` of the same (summed over the batch) into
    /// `out.g_theta (num_params)`. Also writes `out.v` and `out.div` computed on the way.
    ///
    /// Fields whose [`VectorField::differentiates_penalties`] is true also take the penalty
    /// cotangents `input.a_kinetic`, `input.a_frobenius` (empty = zero) into both gradients and
    /// write the penalty integrands into `out.kinetic`, `out.frobenius` (empty = not wanted).
    fn vjp_batch(&self, s: &mut Self::Scratch, input: VjpInput<'_, T>, out: VjpOutput<'_, T>);

    /// The VJP of `v` alone with a cotangent computed from `v` itself, as regression losses
    /// need (flow matching's `a_v = 2 (v - u) / (B d)`): writes `out.v (B, d)` at `x`, then
    /// `cotangent(v, a_v)` fills `a_v (B, d)`, then ACCUMULATES `d/dtheta a_v.v` into
    /// `out.g_theta` and `d/dz a_v.v` into `out.g_z` (no trace: `a_div (B)` must be zeros and
    /// `out.div` is written as [`VectorField::vjp_batch`] writes it with [`Trace::NONE`]).
    ///
    /// The default is [`VectorField::eval_batch`] followed by [`VectorField::vjp_batch`] (two
    /// forward passes); a field that keeps its forward pass for the backward one (the MLP)
    /// overrides it with one.
    fn vjp_of_v(
        &self,
        s: &mut Self::Scratch,
        x: Inputs<'_, T>,
        cotangent: &mut dyn FnMut(&[T], &mut [T]),
        a_v: &mut [T],
        a_div: &[T],
        out: VjpOutput<'_, T>,
    ) {
        self.eval_batch(s, x, out.v);
        cotangent(out.v, a_v);
        self.vjp_batch(s, VjpInput::new(x, Trace::NONE, a_v, a_div), out);
    }

    /// `v`, the divergence and the RNODE penalty integrands of every point (Finlay et al. 2020):
    /// `kinetic[b] = |v_b|^2` and `frobenius[b]`, the squared Frobenius norm of `dv/dz` at
    /// `z_b`: exact for [`Trace::Exact`], an unbiased estimate `mean_p |J u_p|^2` (or
    /// `|J^T u_p|^2`) from the Hutchinson probes otherwise (any probes with `E[u u^T] = I`).
    ///
    /// The default runs `eval_div_batch` and then one `vjp_batch` per tangent direction
    /// (`|J^T u_p|^2`), allocating its buffers: correct for any field, slow. Fields with
    /// forward tangents (the MLP, the linear field, dual numbers) override it and read
    /// `|J u_p|^2` off the tangents the divergence already computed, at no extra passes.
    fn eval_penalties_batch(
        &self,
        s: &mut Self::Scratch,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        let d = self.dim();
        let batch = x.batch(d);
        let Integrands {
            v,
            div,
            kinetic,
            frobenius,
        } = out;
        self.eval_div_batch(s, x, trace, v, div);
        if !kinetic.is_empty() {
            kinetic_from_v(d, v, kinetic);
        }
        if frobenius.is_empty() {
            return;
        }
        let nt = trace.tangents_per_point(batch, d);
        let norm = trace.norm(batch, d);
        let mut u = vec![T::zero(); batch * nt * d];
        trace.fill_tangents(batch, d, &mut u);
        let zero = T::zero();
        let (mut a_v, a_div) = (vec![zero; batch * d], vec![zero; batch]);
        let (mut v2, mut div2, mut g_z) = (
            vec![zero; batch * d],
            vec![zero; batch],
            vec![zero; batch * d],
        );
        let mut g_theta = vec![zero; self.num_params()];
        frobenius[..batch].fill(zero);
        for p in 0..nt {
            for b in 0..batch {
                a_v[b * d..][..d].copy_from_slice(&u[(b * nt + p) * d..][..d]);
            }
            g_z.fill(zero);
            let input = VjpInput::new(x, Trace::NONE, &a_v, &a_div);
            let out = VjpOutput::new(&mut v2, &mut div2, &mut g_z, &mut g_theta);
            self.vjp_batch(s, input, out);
            for (f, row) in frobenius[..batch].iter_mut().zip(g_z.chunks_exact(d)) {
                *f = *f + norm * row.iter().fold(zero, |acc, &x| acc + x * x);
            }
        }
    }

    /// Width `k` of the context rows the field takes (`Inputs::context` is `(B, k)`); 0, the
    /// default, for an unconditional field.
    fn context_dim(&self) -> usize {
        0
    }

    /// Whether `vjp_batch` differentiates the penalty integrands (see
    /// [`VectorField::eval_penalties_batch`]); regularised training needs it. Default: no.
    fn differentiates_penalties(&self) -> bool {
        false
    }

    /// Checks, before any buffer is made, that evaluating with `tangents` tangent directions
    /// per point (`d` for [`Trace::Exact`], `k` for `k` Hutchinson probes) fits the field's
    /// memory limits: an error naming the figure when it does not (the batched methods cannot
    /// fail, and a failed allocation aborts the process). The flow calls it before every solve
    /// with a trace. Default: no limit.
    ///
    /// # Errors
    /// [`FieldError::TooLarge`] when the work memory for `tangents` directions per point is
    /// over the field's limit (the default implementation never fails).
    fn check_tangents(&self, tangents: usize) -> Result<(), FieldError> {
        let _ = tangents;
        Ok(())
    }
}

/// `kinetic[b] = |v_b|^2` for `v (B, d)`.
pub fn kinetic_from_v<T: Real>(dim: usize, v: &[T], kinetic: &mut [T]) {
    for (k, row) in kinetic.iter_mut().zip(v.chunks_exact(dim)) {
        *k = row.iter().fold(T::zero(), |acc, &x| acc + x * x);
    }
}

/// `frobenius[b] = norm * sum_p |jt[b,p,:]|^2` for tangent images `jt = J u`, `(B * nt, d)`.
pub fn frobenius_from_tangents<T: Real>(
    batch: usize,
    nt: usize,
    dim: usize,
    norm: T,
    jt: &[T],
    frobenius: &mut [T],
) {
    let row = nt * dim;
    for (b, f) in frobenius[..batch].iter_mut().enumerate() {
        *f = norm
            * jt[b * row..][..row]
                .iter()
                .fold(T::zero(), |acc, &x| acc + x * x);
    }
}

/// Adds the penalty cotangents to the output cotangents of a reverse pass:
/// `g_v[b,:] += 2 a_kinetic[b] v[b,:]` and `g_jt[b,p,:] += 2 a_frobenius[b] norm jt[b,p,:]`
/// (empty cotangent slices are zero).
#[allow(clippy::too_many_arguments)]
pub fn seed_penalty_cotangents<T: Real>(
    batch: usize,
    nt: usize,
    dim: usize,
    norm: T,
    input: &VjpInput<'_, T>,
    v: &[T],
    jt: &[T],
    g_v: &mut [T],
    g_jt: &mut [T],
) {
    let two = T::one() + T::one();
    if !input.a_kinetic.is_empty() {
        for b in 0..batch {
            let scale = two * input.a_kinetic[b];
            for (g, &x) in g_v[b * dim..][..dim].iter_mut().zip(&v[b * dim..][..dim]) {
                *g = *g + scale * x;
            }
        }
    }
    if !input.a_frobenius.is_empty() {
        let row = nt * dim;
        for b in 0..batch {
            let scale = two * input.a_frobenius[b] * norm;
            for (g, &x) in g_jt[b * row..][..row].iter_mut().zip(&jt[b * row..][..row]) {
                *g = *g + scale * x;
            }
        }
    }
}

/// What [`VectorField::eval_penalties_batch`] writes: `v (B, d)`, the divergence `(B)` and
/// the penalty integrands `(B)` each (an empty penalty slice is not computed).
#[derive(Debug)]
pub struct Integrands<'a, T> {
    /// `v(t, z)`, `(B, d)`.
    pub v: &'a mut [T],
    /// Divergence, `(B)`.
    pub div: &'a mut [T],
    /// `|v|^2` per point, `(B)` or empty.
    pub kinetic: &'a mut [T],
    /// `|dv/dz|_F^2` (or its estimate) per point, `(B)` or empty.
    pub frobenius: &'a mut [T],
}

/// What [`VectorField::vjp_batch`] reads: the point `x` (time, `z`, context), how the
/// divergence is taken, and the cotangents of `v` and `div`.
#[derive(Clone, Copy, Debug)]
pub struct VjpInput<'a, T> {
    /// Where the field is evaluated: time, points `(B, d)`, context.
    pub x: Inputs<'a, T>,
    /// How the divergence is computed.
    pub trace: Trace<'a, T>,
    /// Cotangent of `v`, `(B, d)`.
    pub a_v: &'a [T],
    /// Cotangent of `div`, `(B)`.
    pub a_div: &'a [T],
    /// Cotangent of the kinetic integrand `|v|^2`, `(B)`; empty = zero.
    pub a_kinetic: &'a [T],
    /// Cotangent of the Frobenius integrand `|dv/dz|_F^2`, `(B)`; empty = zero.
    pub a_frobenius: &'a [T],
}

impl<'a, T> VjpInput<'a, T> {
    /// The point `x`, the trace, and the cotangents of `v` and `div` (no penalties).
    pub fn new(x: Inputs<'a, T>, trace: Trace<'a, T>, a_v: &'a [T], a_div: &'a [T]) -> Self {
        Self {
            x,
            trace,
            a_v,
            a_div,
            a_kinetic: &[],
            a_frobenius: &[],
        }
    }

    /// The same input with cotangents of the penalty integrands (`(B)` each, or empty).
    pub fn with_penalties(mut self, a_kinetic: &'a [T], a_frobenius: &'a [T]) -> Self {
        self.a_kinetic = a_kinetic;
        self.a_frobenius = a_frobenius;
        self
    }

    /// Whether any penalty cotangent is given.
    pub fn has_penalties(&self) -> bool {
        !self.a_kinetic.is_empty() || !self.a_frobenius.is_empty()
    }
}

/// What [`VectorField::vjp_batch`] writes: `v` and `div` (overwritten) and the gradients `g_z`
/// and `g_theta` (accumulated, `+=`).
#[derive(Debug)]
pub struct VjpOutput<'a, T> {
    /// `v(t, z)`, `(B, d)`.
    pub v: &'a mut [T],
    /// Divergence, `(B)`.
    pub div: &'a mut [T],
    /// `+= d/dz [a_v.v + a_div.div]`, `(B, d)`.
    pub g_z: &'a mut [T],
    /// `+= d/dtheta` of the same summed over the batch, `(num_params)` (may be empty for
    /// parameter-free fields).
    pub g_theta: &'a mut [T],
    /// `+= d/dc` of the same, `(B, k)` like the context; empty = not wanted. Fields with a
    /// context fill it ([`crate::Mlp`], [`crate::DualField`]).
    pub g_context: &'a mut [T],
    /// Kinetic integrand `|v|^2` per point, `(B)`; empty = not wanted.
    pub kinetic: &'a mut [T],
    /// Frobenius integrand per point, `(B)`; empty = not wanted.
    pub frobenius: &'a mut [T],
}

impl<'a, T> VjpOutput<'a, T> {
    /// The outputs `(v, div, g_z, g_theta)` (no penalty integrands).
    pub fn new(v: &'a mut [T], div: &'a mut [T], g_z: &'a mut [T], g_theta: &'a mut [T]) -> Self {
        Self {
            v,
            div,
            g_z,
            g_theta,
            g_context: &mut [],
            kinetic: &mut [],
            frobenius: &mut [],
        }
    }

    /// The same outputs, also accumulating `d/dc` into `g_context (B, k)`.
    pub fn with_context_grad(mut self, g_context: &'a mut [T]) -> Self {
        self.g_context = g_context;
        self
    }

    /// The same outputs, also writing the penalty integrands (`(B)` each, or empty).
    pub fn with_penalties(mut self, kinetic: &'a mut [T], frobenius: &'a mut [T]) -> Self {
        self.kinetic = kinetic;
        self.frobenius = frobenius;
        self
    }
}

/// Checks the buffer shapes of a `vjp_batch` / `eval_div_batch` call for a batch of `batch`
/// points (pass empty slices for buffers the call does not use). The hot-path methods only
/// `debug_assert` these; callers handling user data should check once up front.
pub struct ShapeCheck {
    /// State dimension.
    pub dim: usize,
    /// Number of parameters.
    pub num_params: usize,
    /// Number of points.
    pub batch: usize,
    /// Width `k` of the context rows.
    pub context_dim: usize,
}

impl ShapeCheck {
    /// Shape check for field `f` and `batch` points.
    pub fn new<T: Real, F: VectorField<T> + ?Sized>(f: &F, batch: usize) -> Self {
        Self {
            dim: f.dim(),
            num_params: f.num_params(),
            batch,
            context_dim: f.context_dim(),
        }
    }

    /// `buf` must be a `(B, d)` matrix.
    ///
    /// # Errors
    /// [`FieldError::Shape`] (named `what`) if `buf.len() != batch * dim`.
    pub fn points<T>(&self, what: &str, buf: &[T]) -> Result<(), FieldError> {
        crate::error::check_len(what, buf, &[self.batch, self.dim])
    }

    /// `buf` must hold one value per point.
    ///
    /// # Errors
    /// [`FieldError::Shape`] (named `what`) if `buf.len() != batch`.
    pub fn per_point<T>(&self, what: &str, buf: &[T]) -> Result<(), FieldError> {
        crate::error::check_len(what, buf, &[self.batch])
    }

    /// `buf` must hold one value per parameter.
    ///
    /// # Errors
    /// [`FieldError::Shape`] (named `what`) if `buf.len() != num_params`.
    pub fn per_param<T>(&self, what: &str, buf: &[T]) -> Result<(), FieldError> {
        crate::error::check_len(what, buf, &[self.num_params])
    }

    /// The inputs must have points `(B, d)`, one time per row if per row, and a context
    /// `(B, k)` (empty for `k = 0`); each mismatch is a [`FieldError::Shape`] error.
    ///
    /// # Errors
    /// [`FieldError::Shape`] naming the first part of the wrong length.
    pub fn inputs<T>(&self, x: &Inputs<'_, T>) -> Result<(), FieldError> {
        self.points("z", x.z)?;
        if let Time::PerRow(t) = x.t {
            self.per_point("times", t)?;
        }
        crate::error::check_len("context", x.context, &[self.batch, self.context_dim])
    }

    /// Hutchinson probes must be `(k, B, d)` with `k >= 1`.
    ///
    /// # Errors
    /// [`FieldError::Shape`] as [`Trace::check`] for this batch and dimension.
    pub fn trace<T: Real>(&self, trace: &Trace<T>) -> Result<(), FieldError> {
        trace.check(self.batch, self.dim)
    }
}

/// `k` Rademacher probes (entries +-1) per point, layout `(k, B, d)`.
pub fn rademacher_probes<T: Real, R: Rng + ?Sized>(
    rng: &mut R,
    k: usize,
    batch: usize,
    dim: usize,
) -> Vec<T> {
    (0..k * batch * dim)
        .map(|_| {
            if rng.random::<bool>() {
                T::one()
            } else {
                -T::one()
            }
        })
        .collect()
}

/// `k` standard Gaussian probes per point, layout `(k, B, d)`.
pub fn gaussian_probes<T: Real, R: Rng + ?Sized>(
    rng: &mut R,
    k: usize,
    batch: usize,
    dim: usize,
) -> Vec<T> {
    (0..k * batch * dim)
        .map(|_| cast::<T>(Distribution::<f64>::sample(&StandardNormal, rng)))
        .collect()
}

/// `k` orthogonal Gaussian probes per point, layout `(k, B, d)`: for each point, the probes
/// come in blocks of `min(d, remaining)` mutually orthogonal vectors of norm `sqrt(d)`
/// (Gram-Schmidt of independent Gaussian vectors, so each block is a Haar-random orthonormal
/// frame scaled by `sqrt(d)`); blocks are independent of each other.
///
/// Each probe is uniform on the sphere of radius `sqrt(d)`, so `E[e e^T] = I` and the
/// Hutchinson estimate `mean_p e_p.(A e_p)` is unbiased. Orthogonality lowers its variance
/// against `k` independent probes, and with `k = d` the estimate is the exact trace for any `A`
/// (`sum_p e_p.(A e_p) = d tr(Q^T A Q) = d tr(A)`).
pub fn orthogonal_probes<T: Real, R: Rng + ?Sized>(
    rng: &mut R,
    k: usize,
    batch: usize,
    dim: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); k * batch * dim];
    if dim == 0 {
        return out;
    }
    let scale = (dim as f64).sqrt();
    let mut block: Vec<f64> = Vec::with_capacity(dim * dim.min(k));
    for b in 0..batch {
        let mut p0 = 0;
        while p0 < k {
            let m = dim.min(k - p0);
            block.clear();
            while block.len() < m * dim {
                let mut v: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
                // Modified Gram-Schmidt, twice for orthogonality to rounding.
                for _ in 0..2 {
                    for q in block.chunks_exact(dim) {
                        let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                        v.iter_mut().zip(q).for_each(|(vi, qi)| *vi -= dot * qi);
                    }
                }
                let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                // A (probability zero) degenerate draw is redrawn.
                if norm > 1e-8 {
                    block.extend(v.iter().map(|a| a / norm));
                }
            }
            for (j, q) in block.chunks_exact(dim).enumerate() {
                let dst = &mut out[((p0 + j) * batch + b) * dim..][..dim];
                dst.iter_mut()
                    .zip(q)
                    .for_each(|(o, &qi)| *o = cast::<T>(qi * scale));
            }
            p0 += m;
        }
    }
    out
}
