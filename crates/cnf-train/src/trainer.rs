//! The training loop, in the way of argmin's executor: one loop, and observers for everything
//! else (progress bar, metrics file, checkpoints, early stopping). Adding a concern adds an
//! observer, not a flag.
use std::borrow::Cow;
use std::ops::ControlFlow;
use std::time::Instant;

use cnf_field::field::orthogonal_probes;
use cnf_field::{gaussian_probes, rademacher_probes, Mlp, MlpScratch, Real, Trace, VectorField};
use cnf_flow::{Cnf, LossOptions, Penalties, Regularisation};
use cnf_ode::cast;
pub use cnf_ode::Differentiation;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::{Table, ToySet};
use crate::error::TrainError;
use crate::fm::{FlowMatching, FmWork};
use crate::optim::Adam;

/// Steps per segment of [`Differentiation::Checkpointed`] when training with
/// `checkpointed` and no segment length given: memory `(s + 1) n` per step for 8 steps instead
/// of all (8gaussians' Dopri5 solves take 4-10 steps early, 20-40 late in training).
pub const DEFAULT_CHECKPOINT_EVERY: usize = 8;

/// The training gradient's names, as config.json and the command line spell them:
/// `backprop` ([`Differentiation::Discretise`]), `checkpointed`
/// ([`Differentiation::Checkpointed`], [`DEFAULT_CHECKPOINT_EVERY`] steps per segment unless
/// given) and `adjoint` ([`Differentiation::adjoint`]: the backsolve adjoint with the seminorm
/// at the forward solve's tolerances).
pub const GRAD_NAMES: [&str; 3] = ["backprop", "checkpointed", "adjoint"];

/// The gradient method named `name` (one of [`GRAD_NAMES`]; None for any other).
pub fn grad_from_name(name: &str) -> Option<Differentiation<f64>> {
    match name {
        "backprop" => Some(Differentiation::Discretise),
        "checkpointed" => Some(Differentiation::Checkpointed {
            every: DEFAULT_CHECKPOINT_EVERY,
        }),
        "adjoint" => Some(Differentiation::adjoint()),
        _ => None,
    }
}

/// "backprop", "checkpointed every 8 steps", "adjoint", "backsolve rtol 1e-6 atol 1e-6 full
/// norm": the gradient method in the command line's words.
pub fn describe_grad(grad: &Differentiation<f64>) -> String {
    match grad {
        Differentiation::Discretise => "backprop".into(),
        Differentiation::Checkpointed { every } => format!("checkpointed every {every} steps"),
        Differentiation::Backsolve {
            tolerances,
            seminorm,
        } => {
            let tol = tolerances.map_or(String::new(), |(r, a)| format!(" rtol {r:e} atol {a:e}"));
            let norm = if *seminorm { "" } else { " full norm" };
            match (tolerances, seminorm) {
                (None, true) => "adjoint".into(),
                _ => format!("backsolve{tol}{norm}"),
            }
        }
        // `Differentiation` is non-exhaustive: a method added to cnf-ode later.
        other => format!("{other:?}"),
    }
}

/// config.json's form of the training gradient (`training.grad`): `"backprop"`, `"adjoint"`
/// (the two names files have always used), `{"checkpointed": {"every": 8}}`, or
/// `{"backsolve": {"tolerances": [rtol, atol] | null, "seminorm": bool}}` for an adjoint other
/// than [`Differentiation::adjoint`].
pub(crate) mod grad_serde {
    use super::Differentiation;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Repr {
        Backprop,
        Adjoint,
        Checkpointed {
            every: usize,
        },
        Backsolve {
            #[serde(default)]
            tolerances: Option<(f64, f64)>,
            seminorm: bool,
        },
    }

    pub fn serialize<S: Serializer>(g: &Differentiation<f64>, s: S) -> Result<S::Ok, S::Error> {
        match *g {
            Differentiation::Discretise => Repr::Backprop,
            Differentiation::Checkpointed { every } => Repr::Checkpointed { every },
            Differentiation::Backsolve {
                tolerances: None,
                seminorm: true,
            } => Repr::Adjoint,
            Differentiation::Backsolve {
                tolerances,
                seminorm,
            } => Repr::Backsolve {
                tolerances,
                seminorm,
            },
            // `Differentiation` is non-exhaustive: a method config.json has no name for yet.
            ref other => {
                return Err(serde::ser::Error::custom(format!(
                    "no config.json form for the gradient method {other:?}"
                )))
            }
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Differentiation<f64>, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Backprop => Differentiation::Discretise,
            Repr::Adjoint => Differentiation::adjoint(),
            Repr::Checkpointed { every: 0 } => {
                return Err(serde::de::Error::custom(
                    "checkpointed needs every >= 1 (steps per segment)",
                ))
            }
            Repr::Checkpointed { every } => Differentiation::Checkpointed { every },
            Repr::Backsolve {
                tolerances,
                seminorm,
            } => Differentiation::Backsolve {
                tolerances,
                seminorm,
            },
        })
    }
}

/// Which trace the training loss uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    /// Exact Jacobian diagonal (d tangent passes).
    Exact,
    /// Hutchinson with one Rademacher probe per point, fresh every iteration.
    Rademacher,
    /// Hutchinson with one Gaussian probe per point, fresh every iteration.
    Gaussian,
    /// Hutchinson with [`ORTHOGONAL_PROBES`] (at most `d`) mutually orthogonal probes of norm
    /// `sqrt(d)` per point, fresh every iteration: lower variance than as many independent
    /// probes, at that many tangent passes (see `cnf_field::field::orthogonal_probes`).
    Orthogonal,
}

/// The largest dimension [`TraceKind::auto`] gives the exact trace (its cost is d tangent
/// passes per evaluation; docs/train.md, "Defaults for tables"). One rule for library users and
/// `cnf train` alike.
pub const EXACT_TRACE_MAX_DIM: usize = 16;

/// Probes per point of [`TraceKind::Orthogonal`] (capped at the dimension, where the estimate
/// becomes the exact trace).
pub const ORTHOGONAL_PROBES: usize = 4;

impl TraceKind {
    /// The automatic choice, for the library and the command line alike: exact up to
    /// [`EXACT_TRACE_MAX_DIM`] dimensions (d tangent passes, no estimator variance), Hutchinson
    /// with Rademacher probes above.
    pub fn auto(dim: usize) -> Self {
        if dim <= EXACT_TRACE_MAX_DIM {
            Self::Exact
        } else {
            Self::Rademacher
        }
    }
}

/// Where minibatches come from.
pub enum Batches {
    /// Fresh samples of a toy set every iteration (infinite data, FFJORD's protocol).
    Toy(ToySet),
    /// Random rows (with replacement) of a training table, already standardised; for a
    /// conditional field each row is the point followed by its context, `[x | c]`.
    Table(Table),
}

impl Batches {
    /// Minibatch `iter` (a function of the seed and the iteration only, so a resumed run sees
    /// the same batches).
    pub fn batch(&self, seed: u64, iter: usize, size: usize) -> Vec<f64> {
        let mut rng = iter_rng(seed, iter, 0);
        match self {
            Self::Toy(set) => set.sample(size, &mut rng).into_data(),
            // No rows to draw from: an empty batch, which the objective refuses as empty points.
            Self::Table(t) if t.n_rows() == 0 => Vec::new(),
            Self::Table(t) => {
                // Rows gathered straight into the batch (one copy).
                let mut out = Vec::with_capacity(size * t.n_cols());
                for _ in 0..size {
                    if let Some(row) = t.row(rng.random_range(0..t.n_rows())) {
                        out.extend_from_slice(row);
                    }
                }
                out
            }
        }
    }
}

/// A reproducible RNG for one iteration and purpose.
pub fn iter_rng(seed: u64, iter: usize, stream: u64) -> StdRng {
    StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iter as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ stream.wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

/// RNODE's regularisers (Finlay et al. 2020) and STEER's end times (Ghosh et al. 2020) for
/// maximum-likelihood training. All zero: plain maximum likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Regularisers {
    /// Weight of the kinetic energy: the batch mean of `int_0^T |v|^2 dt` (sum over dimensions).
    #[serde(default)]
    pub kinetic: f64,
    /// Weight of the Jacobian Frobenius norm: the batch mean of `int_0^T |dv/dz|_F^2 dt`
    /// (exact with the exact trace; the unbiased estimate from the Hutchinson probes otherwise,
    /// at no extra passes).
    #[serde(default)]
    pub jacobian: f64,
    /// STEER: the end time `T` of every training solve is drawn uniformly from
    /// `[1 - steer, 1 + steer]` (0: always 1). Evaluation always integrates to 1.
    #[serde(default)]
    pub steer: f64,
    /// Weight of the solver's local error estimates over the training solve's accepted steps
    /// (Pal et al. 2021, ERNODE; see [`cnf_flow::Regularisation::local_error`]): needs
    /// a discrete gradient (backprop or checkpointed) and an adaptive method.
    #[serde(default)]
    pub local_error: f64,
}

/// `kinetic 0.01, jacobian 0.01, steer 0, local-error 0`: the command line's names.
impl std::fmt::Display for Regularisers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kinetic {}, jacobian {}, steer {}, local-error {}",
            self.kinetic, self.jacobian, self.steer, self.local_error
        )
    }
}

impl Regularisers {
    /// Whether all are off (plain maximum likelihood).
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    /// Weights finite and >= 0; `steer` in `[0, 1)`.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] naming the first weight that is negative or not finite, or a
    /// `steer` outside `[0, 1)`.
    pub fn validate(&self) -> Result<(), TrainError> {
        for (name, w) in [
            ("kinetic", self.kinetic),
            ("jacobian", self.jacobian),
            ("local-error", self.local_error),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(TrainError::Invalid(format!(
                    "the {name} weight must be finite and >= 0, got {w}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.steer) {
            return Err(TrainError::Invalid(format!(
                "steer must be in [0, 1) (end times in [1 - steer, 1 + steer]), got {}",
                self.steer
            )));
        }
        Ok(())
    }

    /// The loss options of one iteration: the weights, and the end time drawn from `rng` when
    /// STEER is on.
    pub fn options<T: Real>(&self, rng: &mut StdRng) -> LossOptions<T> {
        let end_time = if self.steer > 0.0 {
            1.0 + self.steer * rng.random_range(-1.0..=1.0)
        } else {
            1.0
        };
        LossOptions {
            regularisation: Regularisation {
                kinetic: cast(self.kinetic),
                frobenius: cast(self.jacobian),
                local_error: cast(self.local_error),
            },
            end_time: cast(end_time),
        }
    }
}

/// Settings of a training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Last iteration (exclusive).
    pub iters: usize,
    /// Minibatch size.
    pub batch: usize,
    /// How the gradient is computed (config.json's names: see [`GRAD_NAMES`]).
    #[serde(with = "grad_serde")]
    pub grad: Differentiation<f64>,
    /// Trace estimator.
    pub trace: TraceKind,
    /// Validate every this many iterations.
    pub val_every: usize,
    /// Seed of batches and probes.
    pub seed: u64,
    /// RNODE's regularisers and STEER (maximum likelihood only; off by default).
    #[serde(default)]
    pub regularisers: Regularisers,
}

/// What an iteration did.
#[derive(Debug, Clone)]
pub struct IterEvent {
    /// Iteration number (0-based).
    pub iter: usize,
    /// Mean NLL of the minibatch (model space).
    pub loss: f64,
    /// Forward NFE.
    pub nfe_fwd: usize,
    /// Backward NFE (adjoint solve, or VJPs of backprop).
    pub nfe_bwd: usize,
    /// The minibatch's penalties (kinetic energy, Jacobian Frobenius norm, local error), when
    /// computed.
    pub penalties: Penalties<f64>,
    /// Seconds this iteration took.
    pub seconds: f64,
}

/// A validation result.
#[derive(Debug, Clone, Serialize)]
pub struct ValEvent {
    /// Iteration after which validation ran.
    pub iter: usize,
    /// Mean training loss since the previous validation.
    pub train_nll: f64,
    /// Mean validation NLL (model space).
    pub val_nll: f64,
    /// Median forward NFE of the iterations since the previous validation.
    pub nfe_fwd: usize,
    /// Median backward NFE of the same iterations.
    pub nfe_bwd: usize,
    /// NFE of the validation log-density (the exact-trace solve behind `val_nll`).
    pub nfe_val: usize,
    /// Mean penalties of the iterations since the previous validation, when computed.
    pub penalties: Penalties<f64>,
    /// Seconds since the start of training (this process).
    pub seconds: f64,
    /// Whether this validates the starting model before any iteration
    /// ([`Trainer::validate_untrained`]): displays of progress may leave it out.
    pub untrained: bool,
}

/// Watches training (argmin's observer pattern): the loop calls every observer with the event
/// and, at validations, the model and optimiser as they are. `F` is the vector field being
/// trained (any [`VectorField`]; the MLP by default). Any observer may end the run by
/// returning [`ControlFlow::Break`] from a validation (early stopping is one such observer).
pub trait Observer<T: Real, F: VectorField<T> = Mlp<T>> {
    /// After every iteration.
    fn on_iter(&mut self, _ev: &IterEvent) {}
    /// After every validation, with the model validated and the optimiser: with a moving
    /// average of the weights ([`crate::optim::AdamConfig::ema_decay`]) the model holds the
    /// average and the optimiser the raw weights ([`Adam::swap_average`]).
    ///
    /// # Errors
    /// Whatever the observer's own work fails with (e.g. writing a file); the run stops with it.
    fn on_validation(
        &mut self,
        _ev: &ValEvent,
        _model: &F,
        _adam: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
        Ok(ControlFlow::Continue(()))
    }
    /// Once at the end (also after a stop).
    fn on_finish(&mut self) {}
}

/// The loop: minibatch, loss and gradient, Adam step; validation at intervals. Generic over the
/// vector field `F`: anything that implements [`VectorField`] trains the same way.
pub struct Trainer<'a, T: Real, F: VectorField<T> = Mlp<T>> {
    /// The flow being trained.
    pub cnf: Cnf<T, F>,
    /// Its optimiser.
    pub adam: Adam<T>,
    /// Minibatches.
    pub batches: Batches,
    /// Validation points (model space), `(N, d + k)`: each point followed by its context (`k`
    /// the field's context width, 0 for an unconditional field).
    pub val: Vec<T>,
    /// Settings.
    pub settings: TrainSettings,
    /// Observers, called in order.
    pub observers: Vec<Box<dyn Observer<T, F> + 'a>>,
}

fn cast_vec<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter().map(|&v| cast::<T>(v)).collect()
}

/// Rows `[x | c]` (`(N, d + k)`) split into the points `(N, d)` and their context `(N, k)`;
/// for `k = 0` the rows themselves, uncopied.
fn split_context<T: Copy>(rows: &[T], d: usize, k: usize) -> (Cow<'_, [T]>, Vec<T>) {
    if k == 0 {
        return (Cow::Borrowed(rows), Vec::new());
    }
    let n = rows.len() / (d + k);
    let (mut x, mut c) = (Vec::with_capacity(n * d), Vec::with_capacity(n * k));
    for row in rows.chunks_exact(d + k) {
        x.extend_from_slice(&row[..d]);
        c.extend_from_slice(&row[d..]);
    }
    (Cow::Owned(x), c)
}

/// Mean NLL of `x` under the flow (exact trace).
///
/// ```
/// use cnf_field::{Activation, Mlp, MlpConfig};
/// use cnf_flow::{log_normal, Cnf};
/// use cnf_ode::{Method, SolverSpec};
/// use cnf_train::trainer::mean_nll;
///
/// // An untrained flow whose output layer is zero is the identity map: its NLL is that of
/// // the standard normal.
/// let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, &[8], Activation::Tanh), 0)?;
/// mlp.zero_output();
/// let cnf = Cnf::new(mlp, SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6)?);
/// let x = [0.0, 1.0, -2.0, 0.5];
/// let (nll, _nfe) = mean_nll(&cnf, &x)?;
/// let exact = -(log_normal(&x[..2]) + log_normal(&x[2..])) / 2.0;
/// assert!((nll - exact).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`mean_nll_given`].
pub fn mean_nll<T: Real, F: VectorField<T>>(
    cnf: &Cnf<T, F>,
    x: &[T],
) -> Result<(f64, usize), TrainError> {
    mean_nll_given(cnf, x, &[])
}

/// Mean conditional NLL `-log p(x | c)` of the points `x (N, d)` given `context (N, k)`
/// (empty for an unconditional flow), exact trace.
///
/// # Errors
/// [`TrainError::Flow`] when the flow refuses the points or the context, or a solve fails
/// ([`Cnf::log_density_given`]).
pub fn mean_nll_given<T: Real, F: VectorField<T>>(
    cnf: &Cnf<T, F>,
    x: &[T],
    context: &[T],
) -> Result<(f64, usize), TrainError> {
    let dens = cnf.log_density_given(x, context, &Trace::Exact)?;
    let n = dens.logp.len().max(1) as f64;
    let nll = -dens
        .logp
        .iter()
        .map(|v| v.to_f64().unwrap_or(f64::NAN))
        .sum::<f64>()
        / n;
    Ok((nll, dens.stats.nfe))
}

/// Mean NLL of `rows` (`(N, d + k)`: points followed by their context, model space), exact
/// trace.
///
/// # Errors
/// As [`mean_nll_given`].
pub fn mean_nll_rows<T: Real, F: VectorField<T>>(
    cnf: &Cnf<T, F>,
    rows: &[T],
) -> Result<(f64, usize), TrainError> {
    let (x, c) = split_context(rows, cnf.dim(), cnf.field.context_dim());
    mean_nll_given(cnf, &x, &c)
}

/// The loss and gradient of one minibatch, with the work it took.
#[derive(Debug, Clone, Copy)]
pub struct ObjectiveStep {
    /// The minibatch loss (the mean NLL for maximum likelihood; the regression loss for flow
    /// matching).
    pub loss: f64,
    /// Field evaluations of the forward pass (0 for flow matching: no ODE solve).
    pub nfe_fwd: usize,
    /// Field evaluations (or VJPs) of the backward pass.
    pub nfe_bwd: usize,
    /// The penalties added (weighted) to `loss` in the gradient, when computed.
    pub penalties: Penalties<f64>,
}

/// What training minimises: a value chosen per run (maximum likelihood, flow matching, ...).
/// `grad` (one entry per parameter) receives the gradient; `rng` is the iteration's own stream
/// (probes, base draws, times), so runs and resumes are reproducible.
pub trait Objective<T: Real, F: VectorField<T>> {
    /// Short name for metrics and config ("ml", "fm").
    fn name(&self) -> &'static str;
    /// Loss and gradient of the minibatch `x (B, d)` given `context (B, k)` (model space;
    /// the context is empty for an unconditional field).
    ///
    /// # Errors
    /// Whatever the objective's computation fails with (a refused batch, a failed solve);
    /// the trainer stops with [`TrainError::Diverged`] carrying its message.
    fn loss_and_grad(
        &mut self,
        cnf: &Cnf<T, F>,
        x: &[T],
        context: &[T],
        rng: &mut StdRng,
        grad: &mut Vec<T>,
    ) -> Result<ObjectiveStep, TrainError>;
}

/// Maximum likelihood: the mean NLL through the ODE, its gradient as a [`Differentiation`] says
/// (backprop through the solver's steps, checkpointed, or the adjoint method), with an exact or
/// Hutchinson trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaximumLikelihood {
    /// Trace estimator.
    pub trace: TraceKind,
    /// How the gradient is computed (tolerances, if any, in f64; cast to the model's precision).
    pub grad: Differentiation<f64>,
    /// RNODE's regularisers and STEER.
    pub regularisers: Regularisers,
}

impl<T: Real, F: VectorField<T>> Objective<T, F> for MaximumLikelihood {
    fn name(&self) -> &'static str {
        "ml"
    }
    fn loss_and_grad(
        &mut self,
        cnf: &Cnf<T, F>,
        x: &[T],
        context: &[T],
        rng: &mut StdRng,
        grad: &mut Vec<T>,
    ) -> Result<ObjectiveStep, TrainError> {
        let (d, b) = (cnf.dim(), x.len() / cnf.dim().max(1));
        let probes: Vec<T> = match self.trace {
            TraceKind::Exact => Vec::new(),
            TraceKind::Rademacher => rademacher_probes(rng, 1, b, d),
            TraceKind::Gaussian => gaussian_probes(rng, 1, b, d),
            TraceKind::Orthogonal => orthogonal_probes(rng, ORTHOGONAL_PROBES.min(d), b, d),
        };
        let trace = if probes.is_empty() {
            Trace::Exact
        } else {
            Trace::Hutchinson(&probes)
        };
        let method = self.grad.map(|v| cast::<T>(v));
        let options = self.regularisers.options(rng);
        let lg = cnf.loss_and_grad_given(x, context, &trace, method, &options)?;
        *grad = lg.grad;
        let f = |v: T| v.to_f64().unwrap_or(f64::NAN);
        Ok(ObjectiveStep {
            loss: f(lg.loss),
            nfe_fwd: lg.forward.nfe,
            nfe_bwd: lg.backward.nfe,
            penalties: lg.penalties.map(f),
        })
    }
}

/// Flow matching ([`crate::fm`]): regression of the field onto a conditional velocity, no ODE
/// solve and no trace. Validation still uses the exact NLL through the ODE.
pub struct FlowMatchingObjective<T: Real> {
    /// Path, coupling and time distribution.
    pub fm: FlowMatching,
    work: Option<FmWork<T, MlpScratch<T>>>,
    row_blocks: usize,
}

impl<T: Real> FlowMatchingObjective<T> {
    /// The objective of `fm` (checked).
    ///
    /// # Errors
    /// [`TrainError::Invalid`] for settings [`FlowMatching::validate`] refuses.
    pub fn new(fm: FlowMatching) -> Result<Self, TrainError> {
        fm.validate()
            .map_err(|e| TrainError::Invalid(format!("flow matching: {e}")))?;
        Ok(Self {
            fm,
            work: None,
            row_blocks: 1,
        })
    }

    /// The same objective computing each gradient in `blocks` row blocks in parallel
    /// ([`FmWork::with_row_blocks`]; 1, the default, is one call on the training thread).
    pub fn with_row_blocks(mut self, blocks: usize) -> Self {
        self.row_blocks = blocks;
        self
    }
}

impl<T: Real> Objective<T, Mlp<T>> for FlowMatchingObjective<T> {
    fn name(&self) -> &'static str {
        "fm"
    }
    fn loss_and_grad(
        &mut self,
        cnf: &Cnf<T, Mlp<T>>,
        x: &[T],
        context: &[T],
        rng: &mut StdRng,
        grad: &mut Vec<T>,
    ) -> Result<ObjectiveStep, TrainError> {
        let blocks = self.row_blocks;
        let work = self
            .work
            .get_or_insert_with(|| FmWork::new(&cnf.field).with_row_blocks(blocks));
        grad.resize(cnf.field.num_params(), T::zero());
        let step = self
            .fm
            .step_given(&cnf.field, work, x, context, rng, grad)
            .map_err(|e| TrainError::Invalid(format!("flow matching: {e}")))?;
        Ok(ObjectiveStep {
            loss: step.loss.to_f64().unwrap_or(f64::NAN),
            nfe_fwd: 0,
            nfe_bwd: 1,
            penalties: Penalties::none(),
        })
    }
}

impl<T: Real, F: VectorField<T>> Trainer<'_, T, F> {
    /// Trains by maximum likelihood (the settings' trace and gradient method) from iteration
    /// `start` to `settings.iters`; see [`Trainer::run_with`].
    ///
    /// # Errors
    /// As [`Trainer::run_with`].
    pub fn run(&mut self, start: usize) -> Result<usize, TrainError> {
        let mut ml = MaximumLikelihood {
            trace: self.settings.trace,
            grad: self.settings.grad,
            regularisers: self.settings.regularisers,
        };
        self.run_with(start, &mut ml)
    }

    /// Trains with `objective` from iteration `start` to `settings.iters`. Returns the last
    /// iteration done. Validation is always the exact NLL through the ODE. A non-finite loss or
    /// gradient, or a failed solve, stops training with [`TrainError::Diverged`]; the parameters
    /// are not updated with bad values.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] before the first iteration if the validation's exact trace is
    /// over the field's memory limit; [`TrainError::Diverged`] when an iteration's batch is
    /// refused, its solve fails or its loss, penalties or gradient are not finite, and when a
    /// validation fails or is not finite; [`TrainError::Optim`] if the optimiser does not hold
    /// one moment per parameter of the field; any error an observer returns.
    pub fn run_with(
        &mut self,
        start: usize,
        objective: &mut dyn Objective<T, F>,
    ) -> Result<usize, TrainError> {
        // Validation is the exact NLL: a field whose exact trace does not fit in memory is
        // refused here, with the figure, before an iteration is spent (issue 20 item 7).
        if !self.val.is_empty() && start < self.settings.iters {
            self.cnf.field.check_tangents(self.cnf.dim()).map_err(|e| {
                TrainError::Invalid(format!(
                    "the validation NLL uses the exact trace: {e}; use fewer columns"
                ))
            })?;
        }
        let t0 = Instant::now();
        let s = self.settings.clone();
        let (mut losses, mut fwd, mut bwd) = (Vec::new(), Vec::new(), Vec::new());
        let mut penalties = Vec::new();
        let diverged = |iter: usize, reason: String| TrainError::Diverged {
            iter,
            reason,
            kept: String::new(),
        };
        let mut grad = Vec::new();
        let mut iter = start;
        while iter < s.iters {
            let it_start = Instant::now();
            let rows: Vec<T> = cast_vec(&self.batches.batch(s.seed, iter, s.batch));
            let (x, context) = split_context(&rows, self.cnf.dim(), self.cnf.field.context_dim());
            let mut rng = iter_rng(s.seed, iter, 1);
            let step = objective
                .loss_and_grad(&self.cnf, &x, &context, &mut rng, &mut grad)
                .map_err(|e| diverged(iter, e.to_string()))?;
            let loss = step.loss;
            if !loss.is_finite()
                || step.penalties.values().any(|p| !p.is_finite())
                || grad.iter().any(|g| !g.is_finite())
            {
                return Err(diverged(
                    iter,
                    format!("non-finite loss, regulariser or gradient (loss {loss})"),
                ));
            }
            self.adam.step(self.cnf.field.params_mut(), &grad)?;
            let ev = IterEvent {
                iter,
                loss,
                nfe_fwd: step.nfe_fwd,
                nfe_bwd: step.nfe_bwd,
                penalties: step.penalties,
                seconds: it_start.elapsed().as_secs_f64(),
            };
            for o in &mut self.observers {
                o.on_iter(&ev);
            }
            losses.push(loss);
            fwd.push(ev.nfe_fwd);
            bwd.push(ev.nfe_bwd);
            penalties.push(ev.penalties);
            iter += 1;
            if iter.is_multiple_of(s.val_every.max(1)) || iter == s.iters {
                // With a moving average of the weights, the average is what is validated and
                // what observers see (and keep); training goes on from the raw weights.
                self.adam.swap_average(self.cnf.field.params_mut())?;
                let (val_nll, nfe_val) = mean_nll_rows(&self.cnf, &self.val)
                    .map_err(|e| diverged(iter, e.to_string()))?;
                if !val_nll.is_finite() {
                    return Err(diverged(iter, "non-finite validation NLL".into()));
                }
                let ev = ValEvent {
                    iter,
                    train_nll: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
                    val_nll,
                    nfe_fwd: median(&mut fwd),
                    nfe_bwd: median(&mut bwd),
                    nfe_val,
                    penalties: Penalties::mean(&penalties),
                    seconds: t0.elapsed().as_secs_f64(),
                    untrained: false,
                };
                losses.clear();
                fwd.clear();
                bwd.clear();
                penalties.clear();
                let flow = self.tell_validation(&ev)?;
                self.adam.swap_average(self.cnf.field.params_mut())?;
                if flow.is_break() {
                    break;
                }
            }
        }
        for o in &mut self.observers {
            o.on_finish();
        }
        Ok(iter)
    }
}

impl<T: Real, F: VectorField<T>> Trainer<'_, T, F> {
    /// Validates the model as it is, before any iteration, and tells every observer (the event
    /// has `untrained` set, iteration 0, training loss = validation NLL): when training never
    /// beats the start, the best model kept is the start (for whitened tables, the Gaussian
    /// baseline).
    ///
    /// # Errors
    /// A failed validation solve, or an observer's error.
    pub fn validate_untrained(&mut self) -> Result<ControlFlow<()>, TrainError> {
        let (val_nll, nfe) = mean_nll_rows(&self.cnf, &self.val)?;
        let ev = ValEvent {
            iter: 0,
            train_nll: val_nll,
            val_nll,
            nfe_fwd: nfe,
            nfe_bwd: 0,
            nfe_val: nfe,
            penalties: Penalties::none(),
            seconds: 0.0,
            untrained: true,
        };
        self.tell_validation(&ev)
    }

    /// Calls every observer (all of them, in order) with a validation; `Break` when any asks.
    fn tell_validation(&mut self, ev: &ValEvent) -> Result<ControlFlow<()>, TrainError> {
        let mut stop = false;
        for o in &mut self.observers {
            stop |= o.on_validation(ev, &self.cnf.field, &self.adam)?.is_break();
        }
        Ok(if stop {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }
}

fn median(v: &mut [usize]) -> usize {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussian::Gaussian;
    use crate::optim::AdamConfig;
    use cnf_field::Linear;
    use cnf_ode::{Method, SolverSpec};
    use rand_distr::{Distribution, StandardNormal};

    /// Correlated Gaussian rows: x = mu + L e.
    fn gaussian_rows(n: usize, seed: u64) -> Table {
        let mut rng = StdRng::seed_from_u64(seed);
        let data = (0..n)
            .flat_map(|_| {
                let (e0, e1): (f64, f64) = (
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                );
                [1.0 + 1.4 * e0, -2.0 + 0.4 * e0 + 0.5 * e1]
            })
            .collect();
        Table::with_default_names(n, 2, data).unwrap()
    }

    /// A table without rows gives empty batches (which the objective refuses as empty points)
    /// instead of panicking on an empty range.
    #[test]
    fn an_empty_table_gives_empty_batches() {
        let empty = Table::with_default_names(0, 2, Vec::new()).unwrap();
        assert!(Batches::Table(empty).batch(0, 0, 8).is_empty());
        let rows = Batches::Table(gaussian_rows(5, 1)).batch(0, 0, 8);
        assert_eq!(rows.len(), 16);
    }

    /// One rule for the automatic trace: exact up to `EXACT_TRACE_MAX_DIM` = 16 dimensions
    /// (the tables' rule the command line documents), Rademacher above.
    #[test]
    fn the_automatic_trace_is_exact_up_to_sixteen_dimensions() {
        assert_eq!(EXACT_TRACE_MAX_DIM, 16);
        for d in [1, 2, 8, 9, 12, 16] {
            assert_eq!(TraceKind::auto(d), TraceKind::Exact, "d {d}");
        }
        for d in [17, 64, 784] {
            assert_eq!(TraceKind::auto(d), TraceKind::Rademacher, "d {d}");
        }
    }

    /// The gradient names of config.json and the command line are the `Differentiation`s they
    /// say, and describe themselves back.
    #[test]
    fn gradient_names_are_differentiation_values() {
        for name in GRAD_NAMES {
            let g = grad_from_name(name).unwrap();
            assert!(describe_grad(&g).starts_with(name), "{name}");
        }
        assert_eq!(
            grad_from_name("backprop"),
            Some(Differentiation::Discretise)
        );
        assert_eq!(grad_from_name("adjoint"), Some(Differentiation::adjoint()));
        assert_eq!(
            grad_from_name("checkpointed"),
            Some(Differentiation::Checkpointed {
                every: DEFAULT_CHECKPOINT_EVERY
            })
        );
        assert_eq!(grad_from_name("magic"), None);
    }

    /// The trainer is generic over the field: a linear field v = A z + b (an affine flow) trained
    /// by maximum likelihood on Gaussian data reaches the NLL of the Gaussian fitted to the data,
    /// which is the best any affine flow can do.
    #[test]
    fn trains_a_linear_field_to_the_gaussian_optimum() {
        let train = gaussian_rows(4000, 1);
        let val = gaussian_rows(2000, 2);
        let field = Linear::<f64>::new(2, &[0.0; 4], &[0.0; 2]).unwrap();
        let adam = Adam::new(
            6,
            AdamConfig {
                lr: 0.05,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        let mut trainer: Trainer<'_, f64, Linear<f64>> = Trainer {
            cnf: Cnf::new(field, SolverSpec::fixed(Method::Rk4, 8).unwrap()),
            adam,
            batches: Batches::Table(train.clone()),
            val: val.data().to_vec(),
            settings: TrainSettings {
                iters: 600,
                batch: 256,
                grad: Differentiation::Discretise,
                trace: TraceKind::Exact,
                val_every: 600,
                seed: 3,
                regularisers: Regularisers::default(),
            },
            observers: Vec::new(),
        };
        assert_eq!(trainer.run(0).unwrap(), 600);
        let (nll, _) = mean_nll(&trainer.cnf, val.data()).unwrap();
        let (best, _) = Gaussian::fit(&train).unwrap().mean_nll(&val).unwrap();
        assert!((nll - best).abs() < 0.01, "flow {nll} vs Gaussian {best}");
    }

    /// Flow matching through the same loop: the exact validation NLL of an MLP trained by
    /// regression (no ODE solve in training) falls from the untrained model's towards the fitted
    /// Gaussian's.
    #[test]
    fn flow_matching_objective_trains_through_the_same_loop() {
        use crate::fm::{Coupling, PathSpec, TimeDist};
        use cnf_field::{Activation, MlpConfig};
        let train = gaussian_rows(4000, 1);
        let val = gaussian_rows(1000, 2);
        let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[32, 32], Activation::Tanh), 0).unwrap();
        let adam = Adam::new(
            mlp.num_params(),
            AdamConfig {
                lr: 5e-3,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        let mut trainer: Trainer<'_, f64> = Trainer {
            cnf: Cnf::new(
                mlp,
                SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6).unwrap(),
            ),
            adam,
            batches: Batches::Table(train.clone()),
            val: val.data().to_vec(),
            settings: TrainSettings {
                iters: 800,
                batch: 256,
                grad: Differentiation::Discretise,
                trace: TraceKind::Exact,
                val_every: 800,
                seed: 3,
                regularisers: Regularisers::default(),
            },
            observers: Vec::new(),
        };
        let (before, _) = mean_nll(&trainer.cnf, val.data()).unwrap();
        let mut fm = FlowMatchingObjective::new(FlowMatching {
            path: PathSpec::Straight { sigma: 0.0 },
            coupling: Coupling::Independent,
            time: TimeDist::Uniform,
        })
        .unwrap();
        assert_eq!(
            Objective::<f64, Mlp<f64>>::name(&fm),
            "fm",
            "the objective names itself"
        );
        assert_eq!(trainer.run_with(0, &mut fm).unwrap(), 800);
        let (after, _) = mean_nll(&trainer.cnf, val.data()).unwrap();
        let (best, _) = Gaussian::fit(&train).unwrap().mean_nll(&val).unwrap();
        assert!(
            after < before - 0.5 && after < best + 0.15,
            "untrained {before}, trained {after}, Gaussian {best}"
        );
    }
}
