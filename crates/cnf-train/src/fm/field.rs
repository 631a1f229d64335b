//! Fields evaluated with one time per point, and the one place that calls `vjp_batch`.
//!
//! Flow matching draws a time per sample, but [`VectorField`]'s batched methods share one time
//! across the batch. [`PointTimeField`] bridges the two:
//!
//! * [`Mlp`] with plain concatenation layers (`v(t, z) = MLP([z, t])`) runs the whole batch in
//!   one batched call of an *augmented* MLP whose state is `z' = [z, t]` (dimension `d + 1`):
//!   its first layer has the original `W0` on the columns `[z, t]` and a zero column for the
//!   augmented network's own (shared, unused) time input, and its output layer has an extra
//!   zero row. Then `v'([z, t_b])[..d] = v(t_b, z)` exactly and the parameter gradient of the
//!   original weights is read off the augmented one. The parameters are copied in on every call
//!   (a few thousand numbers), so the augmented copy never goes stale.
//! * Any other field (concat-squash MLPs, whose time gates act on whole layers, or any
//!   [`VectorField`] through [`ByTime`]) runs one batched call per distinct time (points
//!   sorted by time). With continuous per-sample times that is one call per point: correct but
//!   slow; prefer a plain-concat MLP for flow matching.
//!
//! The VJP is that of `v` only: the divergence cotangent is zero, and the trace is a Hutchinson
//! estimator with *no* probes (`Trace::Hutchinson(&[])`), for which `tangents_per_point` is 0:
//! the MLP then carries no tangent rows at all (its `nt == 0` path, the one `eval_batch` takes)
//! instead of `d` rows per point with [`Trace::Exact`]. The divergence it reports is 0 and
//! unused. (The gradient tests below check this against finite differences for the MLP of
//! both layer kinds and a hand-written field.)

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{LayerKind, Mlp, MlpConfig, MlpScratch, Real, Trace, VectorField};

/// A parametric vector field evaluated at one time per point.
pub trait PointTimeField<T: Real> {
    /// Reusable buffers (build with [`PointTimeField::work`]; they grow on demand).
    type Work: Send;
    /// Dimension `d` of the state (named apart from [`VectorField::dim`] so both traits can be
    /// in scope).
    fn fm_dim(&self) -> usize;
    /// Number of trainable parameters.
    fn fm_num_params(&self) -> usize;
    /// Fresh work buffers.
    fn work(&self) -> Self::Work;
    /// `v[b] = v(t[b], z[b])`; `z`, `v` are `(B, d)`, `t` is `(B)` (shapes checked by callers).
    fn eval_points(&self, w: &mut Self::Work, t: &[T], z: &[T], v: &mut [T]);
    /// Writes `v` as [`PointTimeField::eval_points`] and ACCUMULATES
    /// `d/dtheta sum_b a_v[b] . v[b]` into `g_theta`.
    fn vjp_points(
        &self,
        w: &mut Self::Work,
        t: &[T],
        z: &[T],
        a_v: &[T],
        v: &mut [T],
        g_theta: &mut [T],
    );
}

/// Buffers of the single `vjp_batch` call site.
#[derive(Debug, Clone, Default)]
pub struct VjpBuffers<T> {
    a_div: Vec<T>,
    div: Vec<T>,
    g_z: Vec<T>,
}

/// The only call of [`VectorField::vjp_batch`] in this module tree: `v(t, z)` for a batch at a
/// shared time and `g_theta += d/dtheta sum_b a_v[b] . v[b]` (zero divergence cotangent, an
/// empty Hutchinson probe set so no tangent work). Adapt here if `vjp_batch`'s argument list
/// changes.
#[allow(clippy::too_many_arguments)]
fn vjp_v_only<T: Real, F: VectorField<T> + ?Sized>(
    field: &F,
    scratch: &mut F::Scratch,
    bufs: &mut VjpBuffers<T>,
    t: T,
    z: &[T],
    a_v: &[T],
    v: &mut [T],
    g_theta: &mut [T],
) {
    let n = z.len();
    let b = n / field.dim().max(1);
    resize(&mut bufs.g_z, n);
    resize(&mut bufs.a_div, b);
    resize(&mut bufs.div, b);
    bufs.g_z[..n].fill(T::zero());
    let input = VjpInput::new(t, z, Trace::Hutchinson(&[]), a_v, &bufs.a_div[..b]);
    let out = VjpOutput::new(v, &mut bufs.div[..b], &mut bufs.g_z[..n], g_theta);
    field.vjp_batch(scratch, input, out);
}

/// Sets `buf` to `n` zeros if it is shorter (existing entries are kept zero by all callers).
fn resize<T: Real>(buf: &mut Vec<T>, n: usize) {
    if buf.len() < n {
        buf.resize(n, T::zero());
    }
}

/// Work of the one-call-per-time strategy.
pub struct GroupWork<T, S> {
    scratch: Option<S>,
    order: Vec<usize>,
    z: Vec<T>,
    a: Vec<T>,
    v: Vec<T>,
    bufs: VjpBuffers<T>,
}

impl<T, S> Default for GroupWork<T, S> {
    fn default() -> Self {
        Self {
            scratch: None,
            order: Vec::new(),
            z: Vec::new(),
            a: Vec::new(),
            v: Vec::new(),
            bufs: VjpBuffers {
                a_div: Vec::new(),
                div: Vec::new(),
                g_z: Vec::new(),
            },
        }
    }
}

/// Points sorted by time, then one batched call (`eval_batch` or the VJP) per run of equal
/// times; `a_v = None` evaluates only.
fn grouped<T: Real, F: VectorField<T> + ?Sized>(
    field: &F,
    w: &mut GroupWork<T, F::Scratch>,
    t: &[T],
    z: &[T],
    a_v: Option<&[T]>,
    v: &mut [T],
    g_theta: &mut [T],
) {
    let d = field.dim();
    let b = t.len();
    w.order.clear();
    w.order.extend(0..b);
    w.order
        .sort_by(|&i, &j| t[i].partial_cmp(&t[j]).unwrap_or(std::cmp::Ordering::Equal));
    let scratch = w.scratch.get_or_insert_with(|| field.scratch(1));
    resize(&mut w.z, b * d);
    resize(&mut w.a, b * d);
    resize(&mut w.v, b * d);
    let mut start = 0;
    while start < b {
        let tt = t[w.order[start]];
        let mut end = start + 1;
        while end < b && t[w.order[end]] == tt {
            end += 1;
        }
        let m = end - start;
        for (k, &i) in w.order[start..end].iter().enumerate() {
            w.z[k * d..][..d].copy_from_slice(&z[i * d..][..d]);
            if let Some(a_v) = a_v {
                w.a[k * d..][..d].copy_from_slice(&a_v[i * d..][..d]);
            }
        }
        let (zg, vg) = (&w.z[..m * d], &mut w.v[..m * d]);
        match a_v {
            Some(_) => vjp_v_only(
                field,
                scratch,
                &mut w.bufs,
                tt,
                zg,
                &w.a[..m * d],
                vg,
                g_theta,
            ),
            None => field.eval_batch(scratch, tt, zg, vg),
        }
        for (k, &i) in w.order[start..end].iter().enumerate() {
            v[i * d..][..d].copy_from_slice(&w.v[k * d..][..d]);
        }
        start = end;
    }
}

/// Any [`VectorField`] as a [`PointTimeField`], by one batched call per distinct time.
pub struct ByTime<'a, F: ?Sized>(pub &'a F);

impl<T: Real, F: VectorField<T> + ?Sized> PointTimeField<T> for ByTime<'_, F> {
    type Work = GroupWork<T, F::Scratch>;

    fn fm_dim(&self) -> usize {
        self.0.dim()
    }

    fn fm_num_params(&self) -> usize {
        self.0.num_params()
    }

    fn work(&self) -> Self::Work {
        GroupWork::default()
    }

    fn eval_points(&self, w: &mut Self::Work, t: &[T], z: &[T], v: &mut [T]) {
        grouped(self.0, w, t, z, None, v, &mut []);
    }

    fn vjp_points(
        &self,
        w: &mut Self::Work,
        t: &[T],
        z: &[T],
        a_v: &[T],
        v: &mut [T],
        g_theta: &mut [T],
    ) {
        grouped(self.0, w, t, z, Some(a_v), v, g_theta);
    }
}

/// The augmented MLP of a plain-concat MLP (see the module docs) and its buffers.
pub struct Augmented<T: Real> {
    config: MlpConfig,
    net: Mlp<T>,
    /// `map[k]`: index in the augmented buffer of the original parameter `k`.
    map: Vec<usize>,
    scratch: MlpScratch<T>,
    z: Vec<T>,
    a: Vec<T>,
    v: Vec<T>,
    g: Vec<T>,
    bufs: VjpBuffers<T>,
}

impl<T: Real> Augmented<T> {
    fn new(config: &MlpConfig) -> Option<Self> {
        if config.layer_kind != LayerKind::Concat {
            return None;
        }
        let aug_config = MlpConfig {
            dim: config.dim + 1,
            ..config.clone()
        };
        let net =
            Mlp::from_params(aug_config.clone(), vec![T::zero(); aug_config.num_params()]).ok()?;
        let shapes = config.layer_shapes();
        let aug_shapes = aug_config.layer_shapes();
        let mut map = Vec::with_capacity(config.num_params());
        let mut aug_offset = 0;
        for (&(out, inp), &(aout, ainp)) in shapes.iter().zip(&aug_shapes) {
            for o in 0..out {
                for c in 0..inp {
                    map.push(aug_offset + o * ainp + c);
                }
            }
            for o in 0..out {
                map.push(aug_offset + aout * ainp + o);
            }
            aug_offset += aout * ainp + aout;
        }
        Some(Self {
            config: config.clone(),
            net,
            map,
            scratch: MlpScratch::default(),
            z: Vec::new(),
            a: Vec::new(),
            v: Vec::new(),
            g: Vec::new(),
            bufs: VjpBuffers::default(),
        })
    }

    /// Copies the original parameters in and builds the state `[z, t]`.
    fn load(&mut self, params: &[T], t: &[T], z: &[T]) {
        let aug = self.net.params_mut();
        for (&k, &p) in self.map.iter().zip(params) {
            aug[k] = p;
        }
        let d = self.config.dim;
        let b = t.len();
        resize(&mut self.z, b * (d + 1));
        resize(&mut self.v, b * (d + 1));
        for (i, &ti) in t.iter().enumerate() {
            let row = &mut self.z[i * (d + 1)..][..d + 1];
            row[..d].copy_from_slice(&z[i * d..][..d]);
            row[d] = ti;
        }
    }

    fn unload_v(&self, b: usize, v: &mut [T]) {
        let d = self.config.dim;
        for i in 0..b {
            v[i * d..][..d].copy_from_slice(&self.v[i * (d + 1)..][..d]);
        }
    }
}

/// Work of [`Mlp`] as a [`PointTimeField`]: the augmented network for plain-concat MLPs,
/// grouping by time otherwise. Rebuilt if used with an MLP of another architecture.
#[derive(Default)]
pub struct MlpWork<T: Real> {
    augmented: Option<Augmented<T>>,
    grouped: GroupWork<T, MlpScratch<T>>,
}

impl<T: Real> MlpWork<T> {
    /// The augmented network for `mlp`, built or rebuilt as needed (`None` for concat-squash).
    fn augmented_for(&mut self, mlp: &Mlp<T>) -> Option<&mut Augmented<T>> {
        if self.augmented.as_ref().map(|a| &a.config) != Some(mlp.config()) {
            self.augmented = Augmented::new(mlp.config());
        }
        self.augmented.as_mut()
    }
}

impl<T: Real> PointTimeField<T> for Mlp<T> {
    type Work = MlpWork<T>;

    fn fm_dim(&self) -> usize {
        VectorField::dim(self)
    }

    fn fm_num_params(&self) -> usize {
        VectorField::num_params(self)
    }

    fn work(&self) -> MlpWork<T> {
        MlpWork {
            augmented: Augmented::new(self.config()),
            grouped: GroupWork::default(),
        }
    }

    fn eval_points(&self, w: &mut MlpWork<T>, t: &[T], z: &[T], v: &mut [T]) {
        let Some(aug) = w.augmented_for(self) else {
            return grouped(self, &mut w.grouped, t, z, None, v, &mut []);
        };
        aug.load(self.params(), t, z);
        let n = t.len() * (self.config().dim + 1);
        aug.net
            .eval_batch(&mut aug.scratch, T::zero(), &aug.z[..n], &mut aug.v[..n]);
        aug.unload_v(t.len(), v);
    }

    fn vjp_points(
        &self,
        w: &mut MlpWork<T>,
        t: &[T],
        z: &[T],
        a_v: &[T],
        v: &mut [T],
        g_theta: &mut [T],
    ) {
        let Some(aug) = w.augmented_for(self) else {
            return grouped(self, &mut w.grouped, t, z, Some(a_v), v, g_theta);
        };
        aug.load(self.params(), t, z);
        let d = self.config().dim;
        let b = t.len();
        let n = b * (d + 1);
        resize(&mut aug.a, n);
        for i in 0..b {
            let row = &mut aug.a[i * (d + 1)..][..d + 1];
            row[..d].copy_from_slice(&a_v[i * d..][..d]);
            row[d] = T::zero();
        }
        let np = aug.net.num_params();
        resize(&mut aug.g, np);
        aug.g[..np].fill(T::zero());
        vjp_v_only(
            &aug.net,
            &mut aug.scratch,
            &mut aug.bufs,
            T::zero(),
            &aug.z[..n],
            &aug.a[..n],
            &mut aug.v[..n],
            &mut aug.g[..np],
        );
        for (g, &k) in g_theta.iter_mut().zip(&aug.map) {
            *g = *g + aug.g[k];
        }
        aug.unload_v(b, v);
    }
}
