//! The MLP vector field `v(t, z) = MLP([z, t])` with a batched primal + tangent fast path.

pub mod activation;
mod backward;
mod forward;
mod io;

pub use activation::Activation;
pub use forward::MlpScratch;

use crate::dual::{param, GenericField};
use crate::error::{check_finite, check_len, FieldError};
use crate::field::{Integrands, Trace, VectorField, VjpInput, VjpOutput};
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

/// Architecture of an [`Mlp`]: `[z, t] (d + 1) -> hidden[0] -> ... -> hidden[n-1] -> d`
/// (input `z (d)` for concat-squash layers, which take `t` through their gates).
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
}

impl MlpConfig {
    /// A plain-concat configuration.
    pub fn new(dim: usize, hidden: &[usize], activation: Activation) -> Self {
        Self {
            dim,
            hidden: hidden.to_vec(),
            activation,
            layer_kind: LayerKind::Concat,
        }
    }

    /// Rejects zero dimensions and zero widths.
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
            .chain([&self.dim])
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

    /// Width of the network input: `d + 1` for `[z, t]`, `d` for concat-squash.
    pub fn input_width(&self) -> usize {
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

/// Multilayer perceptron field. Parameters live in one flat buffer, layer by layer:
/// `W0 (out, in)` row-major, `b0`, `W1`, `b1`, ...
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp<T> {
    config: MlpConfig,
    slots: Vec<LayerSlot>,
    params: Vec<T>,
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
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self, FieldError> {
        config.validate()?;
        let slots = slots_of(&config);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(config.num_params());
        for slot in &slots {
            let bound = 1.0 / (slot.inp as f64).sqrt();
            params.extend(
                (0..slot.out * slot.inp + slot.out)
                    .map(|_| cast::<T, f64>(rng.random_range(-bound..bound))),
            );
            if slot.gate.is_some() {
                params
                    .extend((0..3 * slot.out).map(|_| cast::<T, f64>(rng.random_range(-1.0..1.0))));
            }
        }
        Ok(Self {
            config,
            slots,
            params,
        })
    }

    /// Builds the MLP around an existing flat parameter buffer (checked for length and
    /// finiteness).
    pub fn from_params(config: MlpConfig, params: Vec<T>) -> Result<Self, FieldError> {
        config.validate()?;
        check_len("parameters", &params, &[config.num_params()])?;
        check_finite("parameters", &params)?;
        let slots = slots_of(&config);
        Ok(Self {
            config,
            slots,
            params,
        })
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
            params: self.params.iter().map(|&x| cast::<U, T>(x)).collect(),
        }
    }

    fn check_point(&self, z: &[T]) -> Result<(), FieldError> {
        check_len("z", z, &[self.config.dim])
    }

    /// `v(t, z)` for a single point.
    pub fn eval(&self, t: T, z: &[T]) -> Result<Vec<T>, FieldError> {
        self.check_point(z)?;
        let mut out = vec![T::zero(); self.config.dim];
        let mut s = self.scratch(1);
        self.eval_batch(&mut s, t, z, &mut out);
        Ok(out)
    }

    /// Exact divergence `tr(dv/dz)` at a single point.
    pub fn divergence(&self, t: T, z: &[T]) -> Result<T, FieldError> {
        self.check_point(z)?;
        let mut v = vec![T::zero(); self.config.dim];
        let mut div = [T::zero()];
        let mut s = self.scratch(1);
        self.eval_div_batch(&mut s, t, z, &Trace::Exact, &mut v, &mut div);
        Ok(div[0])
    }
}

impl<T: Real> GenericField for Mlp<T> {
    fn dim(&self) -> usize {
        self.config.dim
    }

    /// Straightforward per-point evaluation (allocates; it is the reference path).
    fn eval<S: Float>(&self, t: S, z: &[S], out: &mut [S]) {
        let mut h: Vec<S> = z.to_vec();
        if self.config.layer_kind == LayerKind::Concat {
            h.push(t);
        }
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

    fn scratch(&self, batch: usize) -> MlpScratch<T> {
        let mut s = MlpScratch::default();
        s.ensure(&self.slots, batch, self.config.dim, true);
        s
    }

    fn eval_batch(&self, s: &mut MlpScratch<T>, t: T, z: &[T], out: &mut [T]) {
        self.forward(s, t, z, None, false, out);
    }

    fn eval_div_batch(
        &self,
        s: &mut MlpScratch<T>,
        t: T,
        z: &[T],
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    ) {
        self.forward(s, t, z, Some(trace), false, v);
        self.contract(s, z.len() / self.config.dim, trace, div);
    }

    fn vjp_batch(&self, s: &mut MlpScratch<T>, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        let (t, z, trace) = (input.t, input.z, &input.trace);
        let batch = z.len() / self.config.dim;
        self.forward(s, t, z, Some(trace), true, out.v);
        self.contract(s, batch, trace, out.div);
        self.penalties(s, batch, trace, out.v, out.kinetic, out.frobenius);
        self.backward(s, batch, &input, out.v, out.g_z, out.g_theta);
    }

    fn eval_penalties_batch(
        &self,
        s: &mut MlpScratch<T>,
        t: T,
        z: &[T],
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        let batch = z.len() / self.config.dim;
        self.forward(s, t, z, Some(trace), false, out.v);
        self.contract(s, batch, trace, out.div);
        self.penalties(s, batch, trace, out.v, out.kinetic, out.frobenius);
    }

    fn differentiates_penalties(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
