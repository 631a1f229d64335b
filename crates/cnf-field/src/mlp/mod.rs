//! The MLP vector field `v(t, z, c) = MLP([z, t, c])` with a batched primal + tangent fast path
//! (`c`, the per-row context, has width `k >= 0`; `k = 0` is the unconditional field).

pub mod activation;
mod backward;
mod forward;
mod io;

pub use activation::Activation;
pub use forward::MlpScratch;

use backward::Grads;

use crate::dual::{param, GenericField};
use crate::error::{check_finite, check_len, FieldError};
use crate::field::{Inputs, Integrands, Time, Trace, VectorField, VjpInput, VjpOutput};
use crate::real::{cast, Real};
use num_traits::Float;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How time enters the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// Plain concatenation: the first layer sees `[z, t]`; later layers see only `h`.
    #[default]
    Concat,
    /// FFJORD's concat-squash layers, every layer gated by time:
    /// `h' = (W h + b) * sigmoid(Wg t + bg) + Wb t`; the first layer sees `z` only.
    ConcatSquash,
}

/// Architecture of an [`Mlp`]: `[z, t, c] (d + 1 + k) -> hidden[0] -> ... -> hidden[n-1] -> d`
/// (input `[z, c] (d + k)` for concat-squash layers, which take `t` through their gates). The
/// context `c` (width `k`, 0 for an unconditional field) enters the first layer only, as extra
/// columns of `W0` after those of `z` (and `t`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// State dimension `d`.
    pub dim: usize,
    /// Hidden widths, e.g. `[64, 64, 64]`.
    pub hidden: Vec<usize>,
    /// Nonlinearity after every hidden layer (the output layer is linear).
    pub activation: Activation,
    /// How time enters.
    #[serde(default)]
    pub layer_kind: LayerKind,
    /// Width `k` of the per-row context (0: unconditional). Files without it load with 0, and
    /// 0 is not written, so unconditional configurations read as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context_dim: usize,
}

fn is_zero(k: &usize) -> bool {
    *k == 0
}

impl MlpConfig {
    /// A plain-concat configuration.
    pub fn new(dim: usize, hidden: &[usize], activation: Activation) -> Self {
        Self {
            dim,
            hidden: hidden.to_vec(),
            activation,
            layer_kind: LayerKind::Concat,
            context_dim: 0,
        }
    }

    /// The same architecture taking a per-row context of width `k` into its first layer.
    pub fn with_context(mut self, k: usize) -> Self {
        self.context_dim = k;
        self
    }

    /// Rejects zero dimensions and zero widths.
    ///
    /// # Errors
    /// [`FieldError::InvalidConfig`] for a zero dimension or width, or a network over
    /// [`MlpConfig::MAX_WIDTH`] units per layer or [`MlpConfig::MAX_PARAMS`] parameters.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.dim == 0 {
            return Err(FieldError::InvalidConfig("dim must be positive".into()));
        }
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            return Err(FieldError::InvalidConfig(format!(
                "hidden width {i} is zero"
            )));
        }
        // Sizes are checked before anything is allocated: a huge width is a clear error, not an
        // allocation abort. Every layer's (out, in) product is formed with checked arithmetic.
        let widest = self
            .hidden
            .iter()
            .chain([&self.dim, &self.context_dim])
            .copied()
            .max()
            .unwrap_or(0);
        let params = self
            .layer_shapes()
            .iter()
            .try_fold(0usize, |acc, &(out, inp)| {
                out.checked_mul(inp + 5).and_then(|p| acc.checked_add(p))
            });
        match params {
            Some(p) if p <= Self::MAX_PARAMS && widest <= Self::MAX_WIDTH => Ok(()),
            _ => Err(FieldError::InvalidConfig(format!(
                "the network is too large: at most {} units per layer and {} parameters \
                 (widths {:?}, dimension {})",
                Self::MAX_WIDTH,
                Self::MAX_PARAMS,
                self.hidden,
                self.dim
            ))),
        }
    }

    /// Largest layer width [`MlpConfig::validate`] accepts.
    pub const MAX_WIDTH: usize = 1 << 16;
    /// Largest number of parameters [`MlpConfig::validate`] accepts (an upper bound that counts
    /// concat-squash's extra vectors for every layer).
    pub const MAX_PARAMS: usize = 100_000_000;

    /// `(out, in)` of every linear layer.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let mut widths = Vec::with_capacity(self.hidden.len() + 2);
        widths.push(self.input_width());
        widths.extend_from_slice(&self.hidden);
        widths.push(self.dim);
        widths.windows(2).map(|w| (w[1], w[0])).collect()
    }

    /// Width of the network input: `d + 1 + k` for `[z, t, c]`, `d + k` for concat-squash's
    /// `[z, c]`.
    pub fn input_width(&self) -> usize {
        self.context_start() + self.context_dim
    }

    /// Column of the first layer's input where the context starts: after `z` and, for plain
    /// concat, `t`.
    pub fn context_start(&self) -> usize {
        match self.layer_kind {
            LayerKind::Concat => self.dim + 1,
            LayerKind::ConcatSquash => self.dim,
        }
    }

    /// `(name, shape)` of every parameter tensor, in flat-buffer order: per layer `W_i (out, in)`,
    /// `b_i (out)` and for concat-squash also `Wg_i (out, 1)`, `bg_i (out)`, `Wb_i (out, 1)`.
    pub fn tensor_specs(&self) -> Vec<(String, Vec<usize>)> {
        let squash = self.layer_kind == LayerKind::ConcatSquash;
        let mut specs = Vec::new();
        for (i, (out, inp)) in self.layer_shapes().into_iter().enumerate() {
            specs.push((format!("W{i}"), vec![out, inp]));
            specs.push((format!("b{i}"), vec![out]));
            if squash {
                specs.push((format!("Wg{i}"), vec![out, 1]));
                specs.push((format!("bg{i}"), vec![out]));
                specs.push((format!("Wb{i}"), vec![out, 1]));
            }
        }
        specs
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.tensor_specs()
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }
}

/// Where a layer's weights live in the flat parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LayerSlot {
    pub out: usize,
    pub inp: usize,
    pub w: usize,
    pub b: usize,
    /// Offset of `Wg` for concat-squash layers (then `bg` and `Wb` follow, `out` each).
    pub gate: Option<usize>,
}

/// Work memory the exact trace may take per block of rows: a batch whose scratch would be
/// larger is evaluated in blocks of rows that fit (the same numbers, to rounding; the products
/// are smaller). A point carries `d` tangents of every layer's width, so the scratch grows with
/// `d^2` per point: 40 GB for 50 points of 16 000 columns in one block.
pub const TRACE_BLOCK_BYTES: usize = 256 << 20;

/// The most work memory one point may need ([`VectorField::check_tangents`] refuses more, with
/// the figure): 1 GiB, about 8 000 dimensions in f32 and 5 800 in f64 with the exact trace.
pub const MAX_POINT_SCRATCH_BYTES: usize = 1 << 30;

/// Multilayer perceptron field. Parameters live in one flat buffer, layer by layer:
/// `W0 (out, in)` row-major, `b0`, `W1`, `b1`, ...
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp<T> {
    config: MlpConfig,
    slots: Vec<LayerSlot>,
    params: Vec<T>,
    /// Rows per block of an exact-trace evaluation (at least 1): [`TRACE_BLOCK_BYTES`] (or
    /// [`Mlp::with_trace_block_bytes`]) over one point's scratch.
    exact_rows: usize,
    /// The budget `exact_rows` derives from.
    block_bytes: usize,
}

/// Values of scratch one point needs with `nt` tangents (and the reverse pass's buffers if
/// `backward`), as [`MlpScratch::ensure`] sizes them, plus with `row_gates` the per-row gate
/// buffers of concat-squash layers at per-row times (`MlpScratch::ensure_row_gates`); `None`
/// if the count overflows. The shared-time gate buffers, a function of the weights alone, are
/// not counted.
fn values_per_point(
    slots: &[LayerSlot],
    nt: usize,
    backward: bool,
    row_gates: bool,
) -> Option<usize> {
    let layers = slots.len();
    let dim = slots.last()?.out;
    let mut n = 0usize;
    for (l, s) in slots.iter().enumerate() {
        let in_tan = if l == 0 { dim } else { s.inp };
        let tangents = in_tan.checked_add(s.out)?.checked_mul(nt)?;
        n = n.checked_add(s.inp)?.checked_add(tangents)?;
        if l + 1 < layers {
            n = n.checked_add(s.out.checked_mul(1 + usize::from(backward))?)?;
        }
        if row_gates && s.gate.is_some() {
            n = n.checked_add(s.out.checked_mul(nt.checked_add(2)?)?)?;
        }
    }
    if backward {
        let widest = slots.iter().map(|s| s.inp.max(s.out)).max()?;
        n = n.checked_add(widest.checked_mul(nt.checked_add(1)?)?.checked_mul(2)?)?;
    }
    Some(n)
}

/// Rows per exact-trace block for a budget of `bytes` (with the per-row gate buffers if
/// `row_gates`).
fn exact_rows_for<T>(slots: &[LayerSlot], bytes: usize, row_gates: bool) -> usize {
    let dim = slots.last().map_or(0, |s| s.out);
    let values = values_per_point(slots, dim, true, row_gates);
    match values.and_then(|v| v.checked_mul(size_of::<T>())) {
        Some(per_point) if per_point > 0 => (bytes / per_point).max(1),
        _ => 1,
    }
}

/// Rows `r` of a per-row buffer of `width` values per row, or the empty buffer (not wanted).
fn rows_of<T>(buf: &[T], r: std::ops::Range<usize>, width: usize) -> &[T] {
    if buf.is_empty() {
        buf
    } else {
        &buf[r.start * width..r.end * width]
    }
}

/// Mutable version of [`rows_of`].
fn rows_of_mut<T>(buf: &mut [T], r: std::ops::Range<usize>, width: usize) -> &mut [T] {
    if buf.is_empty() {
        buf
    } else {
        &mut buf[r.start * width..r.end * width]
    }
}

fn slots_of(config: &MlpConfig) -> Vec<LayerSlot> {
    let squash = config.layer_kind == LayerKind::ConcatSquash;
    let mut offset = 0;
    config
        .layer_shapes()
        .into_iter()
        .map(|(out, inp)| {
            let slot = LayerSlot {
                out,
                inp,
                w: offset,
                b: offset + out * inp,
                gate: squash.then_some(offset + out * inp + out),
            };
            offset += out * inp + out + if squash { 3 * out } else { 0 };
            slot
        })
        .collect()
}

impl<T: Real> Mlp<T> {
    /// Random initialisation like PyTorch's `nn.Linear`: every `W` and `b` entry drawn from
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, from a seeded `StdRng` (the concat-squash gates
    /// are `nn.Linear(1, out)`, so fan_in = 1).
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
    ///
    /// // d = 2 -> 16 -> 2; the first layer takes [z, t], so W0 is (16, 3).
    /// let config = MlpConfig::new(2, &[16], Activation::Tanh);
    /// let mlp = Mlp::<f64>::new(config.clone(), 0)?;
    /// assert_eq!(mlp.num_params(), 16 * 3 + 16 + 2 * 16 + 2);
    /// // Every entry within nn.Linear's bound 1/sqrt(fan_in).
    /// let (w0, b0) = mlp.layer(0);
    /// assert!(w0.iter().chain(b0).all(|w| w.abs() <= 1.0 / 3f64.sqrt()));
    /// let (w1, b1) = mlp.layer(1);
    /// assert!(w1.iter().chain(b1).all(|w| w.abs() <= 1.0 / 16f64.sqrt()));
    /// // The seed fixes the weights.
    /// assert_eq!(Mlp::<f64>::new(config, 0)?, mlp);
    /// # Ok::<(), cnf_field::FieldError>(())
    /// ```
    ///
    /// # Errors
    /// [`FieldError::InvalidConfig`] if `config` does not validate ([`MlpConfig::validate`]).
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self, FieldError> {
        config.validate()?;
        let slots = slots_of(&config);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(config.num_params());
        for slot in &slots {
            let bound = 1.0 / (slot.inp as f64).sqrt();
            params.extend(
                (0..slot.out * slot.inp + slot.out)
                    .map(|_| cast::<T>(rng.random_range(-bound..bound))),
            );
            if slot.gate.is_some() {
                params.extend((0..3 * slot.out).map(|_| cast::<T>(rng.random_range(-1.0..1.0))));
            }
        }
        let exact_rows = exact_rows_for::<T>(&slots, TRACE_BLOCK_BYTES, false);
        Ok(Self {
            config,
            slots,
            params,
            exact_rows,
            block_bytes: TRACE_BLOCK_BYTES,
        })
    }

    /// Builds the MLP around an existing flat parameter buffer (checked for length and
    /// finiteness).
    ///
    /// # Errors
    /// [`FieldError::InvalidConfig`] if `config` does not validate; [`FieldError::Shape`] if
    /// `params` does not hold [`MlpConfig::num_params`] values; [`FieldError::NonFinite`] for a
    /// NaN or infinite parameter.
    pub fn from_params(config: MlpConfig, params: Vec<T>) -> Result<Self, FieldError> {
        config.validate()?;
        check_len("parameters", &params, &[config.num_params()])?;
        check_finite("parameters", &params)?;
        let slots = slots_of(&config);
        let exact_rows = exact_rows_for::<T>(&slots, TRACE_BLOCK_BYTES, false);
        Ok(Self {
            config,
            slots,
            params,
            exact_rows,
            block_bytes: TRACE_BLOCK_BYTES,
        })
    }

    /// The same network with another budget for the exact trace's work memory per block of
    /// rows (default [`TRACE_BLOCK_BYTES`]): batches whose scratch would exceed it are
    /// evaluated in blocks of as many rows as fit (at least one).
    pub fn with_trace_block_bytes(mut self, bytes: usize) -> Self {
        self.exact_rows = exact_rows_for::<T>(&self.slots, bytes, false);
        self.block_bytes = bytes;
        self
    }

    /// Bytes of work memory (scratch) that `rows` points carrying `tangents` tangent directions
    /// need (`d` for the exact trace, `k` for `k` Hutchinson probes, 0 for `v` alone), with
    /// the reverse pass's buffers if `backward`; `None` when the figure overflows `usize`.
    /// The exact trace is evaluated in blocks of rows, so its scratch is about
    /// `min(rows, block) * scratch_bytes(1, d, true)`.
    pub fn scratch_bytes(&self, rows: usize, tangents: usize, backward: bool) -> Option<usize> {
        values_per_point(&self.slots, tangents, backward, false)?
            .checked_mul(size_of::<T>())?
            .checked_mul(rows)
    }

    /// Rows per block when the exact trace of a larger batch is split (at least 1).
    pub fn exact_trace_block_rows(&self) -> usize {
        self.exact_rows
    }

    /// Rows per block for `trace` over `batch` points at times `t`, when the batch must be
    /// split: only the exact trace is (Hutchinson probes are laid out for the whole batch, and
    /// few). Concat-squash layers at per-row times keep per-row gate buffers too, so their
    /// blocks are smaller.
    #[inline(always)]
    fn split_rows(&self, trace: &Trace<T>, t: &Time<'_, T>, batch: usize) -> Option<usize> {
        let rows = match t {
            Time::PerRow(_) if self.config.layer_kind == LayerKind::ConcatSquash => {
                exact_rows_for::<T>(&self.slots, self.block_bytes, true)
            }
            _ => self.exact_rows,
        };
        (batch > rows && matches!(trace, Trace::Exact)).then_some(rows)
    }

    /// Sets the output layer's weights and bias to zero (and, for concat-squash, its time
    /// term `Wb`): the field is then exactly zero, so a flow starts as the identity map and
    /// its density is the base density. The hidden layers keep their random weights, so
    /// gradients reach them from the first step on.
    pub fn zero_output(&mut self) {
        if let Some(s) = self.slots.last().copied() {
            self.params[s.w..s.b + s.out].fill(T::zero());
            if let Some(g) = s.gate {
                self.params[g + 2 * s.out..g + 3 * s.out].fill(T::zero());
            }
        }
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Number of linear layers (hidden layers + 1).
    pub fn num_layers(&self) -> usize {
        self.slots.len()
    }

    /// `(out, in)` of linear layer `i`.
    pub fn layer_shape(&self, i: usize) -> Option<(usize, usize)> {
        self.slots.get(i).map(|s| (s.out, s.inp))
    }

    /// `(W_i (out, in) row-major, b_i (out))` of linear layer `i`.
    ///
    /// # Panics
    /// If `i >= num_layers()`.
    pub fn layer(&self, i: usize) -> (&[T], &[T]) {
        let s = self.slots[i];
        (&self.params[s.w..s.b], &self.params[s.b..s.b + s.out])
    }

    /// Names of the parameter tensors in buffer order: `W0, b0, W1, b1, ...` (with
    /// `Wg_i, bg_i, Wb_i` after `b_i` for concat-squash layers).
    pub fn param_names(&self) -> Vec<String> {
        self.config
            .tensor_specs()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// `(name, shape, values)` of every parameter tensor in buffer order.
    pub fn named_params(&self) -> Vec<(String, Vec<usize>, &[T])> {
        let mut offset = 0;
        self.config
            .tensor_specs()
            .into_iter()
            .map(|(name, shape)| {
                let len: usize = shape.iter().product();
                offset += len;
                (name, shape, &self.params[offset - len..offset])
            })
            .collect()
    }

    /// `(Wg_i (out), bg_i (out), Wb_i (out))` of concat-squash layer `i`, `None` for plain
    /// concat layers or `i >= num_layers()`.
    pub fn gate(&self, i: usize) -> Option<(&[T], &[T], &[T])> {
        let s = self.slots.get(i)?;
        let g = s.gate?;
        let p = &self.params[g..g + 3 * s.out];
        Some((&p[..s.out], &p[s.out..2 * s.out], &p[2 * s.out..]))
    }

    /// The same network in another precision (f64 <-> f32).
    pub fn cast<U: Real>(&self) -> Mlp<U> {
        Mlp {
            config: self.config.clone(),
            slots: self.slots.clone(),
            params: self.params.iter().map(|&x| cast::<U>(x)).collect(),
            exact_rows: exact_rows_for::<U>(&self.slots, self.block_bytes, false),
            block_bytes: self.block_bytes,
        }
    }

    /// A single point of an unconditional field (these helpers take no context).
    fn check_point(&self, z: &[T]) -> Result<(), FieldError> {
        check_len("context", &[] as &[T], &[self.config.context_dim])?;
        check_len("z", z, &[self.config.dim])
    }

    /// `v(t, z)` for a single point of an unconditional field.
    ///
    /// # Errors
    /// [`FieldError::Shape`] if `z` is not one point or the field takes a context.
    pub fn eval(&self, t: T, z: &[T]) -> Result<Vec<T>, FieldError> {
        self.check_point(z)?;
        let mut out = vec![T::zero(); self.config.dim];
        let mut s = self.scratch(1);
        self.eval_batch(&mut s, Inputs::shared(t, z), &mut out);
        Ok(out)
    }

    /// Exact divergence `tr(dv/dz)` at a single point of an unconditional field.
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig};
    ///
    /// let mlp = Mlp::<f64>::new(MlpConfig::new(3, &[32, 32], Activation::Softplus), 1)?;
    /// let (t, z) = (0.3, [0.2, -0.7, 1.1]);
    /// // The trace of dv/dz by central differences of v in f64.
    /// let h = 1e-5;
    /// let mut fd = 0.0;
    /// for j in 0..3 {
    ///     let (mut up, mut down) = (z, z);
    ///     up[j] += h;
    ///     down[j] -= h;
    ///     fd += (mlp.eval(t, &up)?[j] - mlp.eval(t, &down)?[j]) / (2.0 * h);
    /// }
    /// assert!((mlp.divergence(t, &z)? - fd).abs() < 1e-8);
    /// # Ok::<(), cnf_field::FieldError>(())
    /// ```
    ///
    /// # Errors
    /// [`FieldError::Shape`] if `z` is not one point or the field takes a context.
    pub fn divergence(&self, t: T, z: &[T]) -> Result<T, FieldError> {
        self.check_point(z)?;
        let mut v = vec![T::zero(); self.config.dim];
        let mut div = [T::zero()];
        let mut s = self.scratch(1);
        let x = Inputs::shared(t, z);
        self.eval_div_batch(&mut s, x, &Trace::Exact, &mut v, &mut div);
        Ok(div[0])
    }
}

/// `bytes` for a message: "4.1 GB", "512 MB" (decimal units, 2 significant digits at least).
fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    let (value, unit) = if b >= 1e12 {
        (b / 1e12, "TB")
    } else if b >= 1e9 {
        (b / 1e9, "GB")
    } else if b >= 1e6 {
        (b / 1e6, "MB")
    } else {
        (b / 1e3, "kB")
    };
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

impl<T: Real> Mlp<T> {
    /// `vjp_batch` over one block of rows.
    fn vjp_rows(&self, s: &mut MlpScratch<T>, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        let trace = &input.trace;
        let batch = input.x.batch(self.config.dim);
        self.forward(s, &input.x, Some(trace), true, out.v);
        self.contract(s, batch, trace, out.div);
        self.penalties(s, batch, trace, out.v, out.kinetic, out.frobenius);
        let grads = Grads {
            g_z: out.g_z,
            g_theta: out.g_theta,
            g_context: out.g_context,
        };
        self.backward(s, batch, &input, out.v, grads);
    }

    /// `eval_penalties_batch` over one block of rows.
    fn penalties_rows(
        &self,
        s: &mut MlpScratch<T>,
        x: &Inputs<'_, T>,
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        let batch = x.batch(self.config.dim);
        self.forward(s, x, Some(trace), false, out.v);
        self.contract(s, batch, trace, out.div);
        self.penalties(s, batch, trace, out.v, out.kinetic, out.frobenius);
    }
}

impl<T: Real> GenericField for Mlp<T> {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn context_dim(&self) -> usize {
        self.config.context_dim
    }

    /// Straightforward per-point evaluation (allocates; it is the reference path).
    fn eval<S: Float>(&self, t: S, z: &[S], c: &[S], out: &mut [S]) {
        let mut h: Vec<S> = z.to_vec();
        if self.config.layer_kind == LayerKind::Concat {
            h.push(t);
        }
        h.extend_from_slice(c);
        let last = self.slots.len() - 1;
        for (l, s) in self.slots.iter().enumerate() {
            let (w, b) = self.layer(l);
            let gate = self.gate(l);
            let next: Vec<S> = (0..s.out)
                .map(|o| {
                    let linear = w[o * s.inp..][..s.inp]
                        .iter()
                        .zip(&h)
                        .fold(param::<S, T>(b[o]), |acc, (&w, &x)| {
                            acc + param::<S, T>(w) * x
                        });
                    let a = match gate {
                        Some((wg, bg, wb)) => {
                            let r = param::<S, T>(wg[o]) * t + param(bg[o]);
                            linear / (S::one() + (-r).exp()) + param::<S, T>(wb[o]) * t
                        }
                        None => linear,
                    };
                    if l == last {
                        a
                    } else {
                        self.config.activation.eval(a)
                    }
                })
                .collect();
            h = next;
        }
        out[..self.config.dim].copy_from_slice(&h);
    }
}

impl<T: Real> VectorField<T> for Mlp<T> {
    type Scratch = MlpScratch<T>;

    fn dim(&self) -> usize {
        self.config.dim
    }

    fn num_params(&self) -> usize {
        self.params.len()
    }

    fn params(&self) -> &[T] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// Buffers for `batch` points with the exact trace and the reverse pass, or for one block
    /// of rows when the batch is evaluated in blocks ([`TRACE_BLOCK_BYTES`]); when one point's
    /// exact trace is over [`MAX_POINT_SCRATCH_BYTES`] (which [`VectorField::check_tangents`]
    /// refuses), only the buffers of `v` are made, and traces grow them on demand.
    fn scratch(&self, batch: usize) -> MlpScratch<T> {
        let mut s = MlpScratch::default();
        let d = self.config.dim;
        let fits = self
            .scratch_bytes(1, d, true)
            .is_some_and(|b| b <= MAX_POINT_SCRATCH_BYTES);
        if fits {
            s.ensure(&self.slots, batch.min(self.exact_rows), d, true);
        } else {
            s.ensure(&self.slots, batch, 0, true);
        }
        s
    }

    /// The buffers of `v` alone for `batch` points (no tangents, no reverse pass): what
    /// `eval_batch` grows [`Mlp::scratch`] to, a fraction of the exact trace's.
    fn eval_scratch(&self, batch: usize) -> MlpScratch<T> {
        let mut s = MlpScratch::default();
        s.ensure(&self.slots, batch, 0, false);
        s
    }

    fn eval_batch(&self, s: &mut MlpScratch<T>, x: Inputs<'_, T>, out: &mut [T]) {
        self.forward(s, &x, None, false, out);
    }

    fn eval_div_batch(
        &self,
        s: &mut MlpScratch<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    ) {
        let d = self.config.dim;
        let batch = x.batch(d);
        if let Some(rows) = self.split_rows(trace, &x.t, batch) {
            for r0 in (0..batch).step_by(rows) {
                let r = r0..(r0 + rows).min(batch);
                self.forward(s, &x.rows(r.clone(), d), Some(trace), false, {
                    rows_of_mut(v, r.clone(), d)
                });
                self.contract(s, r.len(), trace, rows_of_mut(div, r, 1));
            }
            return;
        }
        self.forward(s, &x, Some(trace), false, v);
        self.contract(s, batch, trace, div);
    }

    fn vjp_batch(&self, s: &mut MlpScratch<T>, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        let (x, trace) = (input.x, &input.trace);
        let d = self.config.dim;
        let batch = x.batch(d);
        if let Some(rows) = self.split_rows(trace, &x.t, batch) {
            // Blocks of rows: every output but g_theta is per row, and g_theta accumulates.
            let VjpOutput {
                v,
                div,
                g_z,
                g_theta,
                g_context,
                kinetic,
                frobenius,
            } = out;
            let k = self.config.context_dim;
            for r0 in (0..batch).step_by(rows) {
                let r = r0..(r0 + rows).min(batch);
                let part = |buf, width| rows_of(buf, r.clone(), width);
                let input =
                    VjpInput::new(x.rows(r.clone(), d), Trace::Exact, part(input.a_v, d), {
                        part(input.a_div, 1)
                    })
                    .with_penalties(part(input.a_kinetic, 1), part(input.a_frobenius, 1));
                let out = VjpOutput::new(
                    rows_of_mut(v, r.clone(), d),
                    rows_of_mut(div, r.clone(), 1),
                    rows_of_mut(g_z, r.clone(), d),
                    g_theta,
                )
                .with_penalties(
                    rows_of_mut(kinetic, r.clone(), 1),
                    rows_of_mut(frobenius, r.clone(), 1),
                )
                .with_context_grad(rows_of_mut(g_context, r, k));
                self.vjp_rows(s, input, out);
            }
            return;
        }
        self.vjp_rows(s, input, out);
    }

    /// One forward pass kept for the backward one (the default evaluates `v` twice).
    fn vjp_of_v(
        &self,
        s: &mut MlpScratch<T>,
        x: Inputs<'_, T>,
        cotangent: &mut dyn FnMut(&[T], &mut [T]),
        a_v: &mut [T],
        a_div: &[T],
        out: VjpOutput<'_, T>,
    ) {
        let batch = x.batch(self.config.dim);
        self.forward(s, &x, Some(&Trace::NONE), true, out.v);
        self.contract(s, batch, &Trace::NONE, out.div);
        cotangent(out.v, a_v);
        let input = VjpInput::new(x, Trace::NONE, a_v, a_div);
        let grads = Grads {
            g_z: out.g_z,
            g_theta: out.g_theta,
            g_context: out.g_context,
        };
        self.backward(s, batch, &input, out.v, grads);
    }

    fn eval_penalties_batch(
        &self,
        s: &mut MlpScratch<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        let d = self.config.dim;
        let batch = x.batch(d);
        if let Some(rows) = self.split_rows(trace, &x.t, batch) {
            let Integrands {
                v,
                div,
                kinetic,
                frobenius,
            } = out;
            for r0 in (0..batch).step_by(rows) {
                let r = r0..(r0 + rows).min(batch);
                let out = Integrands {
                    v: rows_of_mut(v, r.clone(), d),
                    div: rows_of_mut(div, r.clone(), 1),
                    kinetic: rows_of_mut(kinetic, r.clone(), 1),
                    frobenius: rows_of_mut(frobenius, r.clone(), 1),
                };
                self.penalties_rows(s, &x.rows(r, d), trace, out);
            }
            return;
        }
        self.penalties_rows(s, &x, trace, out);
    }

    /// Refuses tangents whose scratch per point is over [`MAX_POINT_SCRATCH_BYTES`], naming the
    /// figure (larger batches are split into blocks of rows, so one point is what must fit).
    fn check_tangents(&self, tangents: usize) -> Result<(), FieldError> {
        let d = self.config.dim;
        let bytes = self.scratch_bytes(1, tangents, true);
        if bytes.is_some_and(|b| b <= MAX_POINT_SCRATCH_BYTES) {
            return Ok(());
        }
        let what = if tangents == d {
            format!("the exact trace in {d} dimensions")
        } else {
            format!("{tangents} trace probes per point in {d} dimensions")
        };
        let need = bytes.map_or_else(|| "more than 2^64 bytes".into(), human_bytes);
        Err(FieldError::TooLarge(format!(
            "{what} needs {need} of work memory per point, over the limit of {}",
            human_bytes(MAX_POINT_SCRATCH_BYTES)
        )))
    }

    fn differentiates_penalties(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.config.context_dim
    }
}

#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod tests;
