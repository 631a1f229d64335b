//! A model folder: `config.json` (architecture, solver, standardisation, data source) and
//! `model.safetensors` (weights), plus `checkpoint.json` while training (to resume).
//!
//! Every file is written atomically (write a temporary file beside it, then rename), so a kill
//! during a save leaves the previous version intact.
use std::path::{Path, PathBuf};

use cnf_field::{Mlp, MlpConfig, Real};
use cnf_flow::Cnf;
pub use cnf_ode::Method;
use cnf_ode::{OdeError, PenaltyRefusal, SolverSpec, StepSizing, Tolerance};
use serde::{Deserialize, Serialize};

use crate::data::{ColumnSelection, ContextColumns, HeaderMode, Standardizer, Table};
use crate::error::TrainError;

/// File names inside a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights of the best model so far.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Everything needed to resume training.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// One JSON line per validation.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// NLL and NFE against iteration, drawn from metrics.jsonl.
pub const TRAINING_CURVE_FILE: &str = "training_curve.png";
/// The lock file held while a process writes into the folder.
pub const LOCK_FILE: &str = ".lock";
/// Every file a run writes: a new run into an old folder (`--force`) removes them first, so no
/// stale plot or metric survives.
pub const RUN_FILES: [&str; 8] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    "density.png",
    "samples.png",
    "trajectories.png",
    TRAINING_CURVE_FILE,
];

/// An exclusive lock on a model folder (released when dropped, or when the process dies).
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// The floating-point type a model is trained and evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision (the default: the MLP runs about twice as fast).
    F32,
    /// Double precision.
    F64,
}

impl Precision {
    /// "f32" or "f64".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

/// Largest number of fixed steps per solve a config may ask for.
pub const MAX_STEPS: usize = 1_000_000;
/// Step budget of a model's adaptive solves (config.json's `solver.max_steps` when absent, as in
/// every file written before it was recorded).
pub const SOLVER_MAX_STEPS: usize = 10_000;

/// The solver of a new model: Dopri5 at rtol = atol = 1e-5 (the peers' setting), the batch RMS
/// error norm, [`SOLVER_MAX_STEPS`].
///
/// # Panics
/// Never: the settings are constants that the spec's builder accepts.
pub fn default_solver() -> SolverSpec<f64> {
    SolverSpec::builder(Method::Dopri5)
        .rtol(1e-5)
        .atol(1e-5)
        .max_steps(SOLVER_MAX_STEPS)
        .build()
        .expect("valid default solver")
}

/// Fixed steps of [`conditional_sampler`]: 4 RK4 steps (16 evaluations), graded by
/// [`CONDITIONAL_SAMPLER_GRADING`]. The posterior C2ST of the sbibm benchmark (mean of 10
/// observations) is the same as with 6 graded steps or 8 equal ones (two moons 0.541, against
/// 0.542 and 0.544), while 4 equal steps lose it (0.625): docs/sbi.md, "s31".
pub const CONDITIONAL_SAMPLER_STEPS: usize = 4;

/// Grading of [`conditional_sampler`]'s steps: they end at t = (1 - i/4)^1.5, shorter towards
/// the data (t = 0), where the velocity of a posterior's flow changes fastest.
pub const CONDITIONAL_SAMPLER_GRADING: f64 = 1.5;

/// The sampling solver a conditional flow-matching run records (config.json's `sampler`):
/// RK4 with [`CONDITIONAL_SAMPLER_STEPS`] steps graded by [`CONDITIONAL_SAMPLER_GRADING`]. Its
/// draws are as close to a tight adaptive solve's as the posterior's C2ST can tell, at a
/// fraction of the default solver's evaluations (docs/sbi.md, "Defaults of conditional runs").
///
/// # Panics
/// Never: the settings are constants that the spec's builder accepts.
pub fn conditional_sampler() -> SolverSpec<f64> {
    SolverSpec::builder(Method::Rk4)
        .fixed_steps(CONDITIONAL_SAMPLER_STEPS)
        .graded(CONDITIONAL_SAMPLER_GRADING)
        .max_steps(SOLVER_MAX_STEPS)
        .build()
        .expect("valid conditional sampler")
}

/// A refused solver setting as a one-line message naming its source: `source` is what the
/// field names are prefixed with ("--" for flags, "config.json: solver." for the file):
/// "--rtol must be positive and finite, got -1", "rk4 is a fixed-step method: give --steps".
pub fn solver_error(e: OdeError, source: &str) -> TrainError {
    TrainError::Invalid(match e {
        OdeError::NotAdaptive { method } => {
            format!(
                "{} is a fixed-step method: give {source}steps",
                method.to_lowercase()
            )
        }
        e @ (OdeError::InvalidSetting { .. } | OdeError::InvalidTolerance { .. }) => {
            format!("{source}{e}")
        }
        e => format!("{source}: {e}"),
    })
}

/// Checks that `spec` names a method a flow can use (explicit) and that its tolerances are normal positive numbers in `precision` (1e-300 is
/// 0 in f32, 1e-40 subnormal: every step would be rejected); `source` as in [`solver_error`].
///
/// # Errors
/// [`TrainError::Invalid`] for an implicit (stiff) method, or in f32 for a tolerance that is
/// not a normal f32 number.
pub fn check_solver_precision(
    spec: &SolverSpec<f64>,
    source: &str,
    precision: Precision,
) -> Result<(), TrainError> {
    if let Err(e) = cnf_flow::check_method(spec.method()) {
        return Err(TrainError::Invalid(format!("{source}method: {e}")));
    }
    let StepSizing::Adaptive { rtol, atol } = spec.steps() else {
        return Ok(());
    };
    if precision != Precision::F32 {
        return Ok(());
    }
    for (name, tol) in [("rtol", rtol), ("atol", atol)] {
        let values = match tol {
            Tolerance::Scalar(v) => std::slice::from_ref(v),
            Tolerance::PerComponent(vs) => vs.as_slice(),
        };
        if let Some(v) = values.iter().find(|v| !(**v as f32).is_normal()) {
            return Err(TrainError::Invalid(format!(
                "{source}{name} {v:e} is not a normal f32 number (the model's precision); \
                 use a tolerance of at least {:e}, or f64",
                f32::MIN_POSITIVE
            )));
        }
    }
    Ok(())
}

/// A model's solver (f64, as config.json records it) in the model's precision `T`.
///
/// # Errors
/// [`TrainError::Invalid`] as [`check_solver_precision`], or if the tolerances do not convert
/// to `T`.
pub fn solver_in<T: Real>(spec: &SolverSpec<f64>) -> Result<SolverSpec<T>, TrainError> {
    let precision = if T::NAME == "f32" {
        Precision::F32
    } else {
        Precision::F64
    };
    check_solver_precision(spec, "", precision)?;
    spec.cast::<T>().map_err(|e| solver_error(e, ""))
}

/// "dopri5 rtol 1e-5 atol 1e-5", "dopri5 rtol 1e-5 atol 1e-5 per-sample norm", "rk4 with
/// 10 steps" or "rk4 with 4 steps graded 1.5".
pub fn describe_solver(spec: &SolverSpec<f64>) -> String {
    let tol = |t: &Tolerance<f64>| match t {
        Tolerance::Scalar(v) => format!("{v:e}"),
        Tolerance::PerComponent(vs) => format!("{vs:?}"),
    };
    match spec.steps() {
        StepSizing::Fixed(n) if spec.grading() != 1.0 => {
            format!("{} with {n} steps graded {}", spec.method(), spec.grading())
        }
        StepSizing::Fixed(n) => format!("{} with {n} steps", spec.method()),
        StepSizing::Adaptive { rtol, atol } => format!(
            "{} rtol {} atol {}{}",
            spec.method(),
            tol(rtol),
            tol(atol),
            if spec.per_sample_norm() {
                " per-sample norm"
            } else {
                ""
            }
        ),
    }
}

/// config.json's optional `sampler` block: the `solver` block's form.
mod sampler_block {
    use cnf_ode::SolverSpec;
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    struct Block(#[serde(with = "super::solver_block")] SolverSpec<f64>);

    pub fn serialize<S: Serializer>(
        spec: &Option<SolverSpec<f64>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match spec {
            Some(spec) => super::solver_block::serialize(spec, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SolverSpec<f64>>, D::Error> {
        Ok(Option::<Block>::deserialize(d)?.map(|b| b.0))
    }
}

/// config.json's `solver` block: a [`SolverSpec`] in the form every release has written
/// (`{"method": "dopri5", "steps": null, "rtol": 1e-5, "atol": 1e-5}`, `"error_norm":
/// "per-sample"` when not the batch RMS), plus `max_steps` and `controller` when they differ
/// from the defaults. Reading validates through the spec's builder; messages name the field
/// (`solver.rtol must be positive and finite, got -1`).
mod solver_block {
    use cnf_ode::{Method, PiParams, SolverSpec, StepSizing, Tolerance};
    use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

    use super::{solver_error, MAX_STEPS, SOLVER_MAX_STEPS};

    #[derive(Serialize, Deserialize)]
    struct RawSolver {
        method: Method,
        #[serde(default)]
        steps: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtol: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        atol: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_norm: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_steps: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        controller: Option<PiParams>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grading: Option<f64>,
    }

    pub fn serialize<S: Serializer>(spec: &SolverSpec<f64>, s: S) -> Result<S::Ok, S::Error> {
        let scalar = |t: &Tolerance<f64>| match t {
            Tolerance::Scalar(v) => Ok(*v),
            Tolerance::PerComponent(_) => Err(serde::ser::Error::custom(
                "config.json holds scalar tolerances, not one per component",
            )),
        };
        let (steps, rtol, atol) = match spec.steps() {
            StepSizing::Fixed(n) => (Some(*n), None, None),
            StepSizing::Adaptive { rtol, atol } => (None, Some(scalar(rtol)?), Some(scalar(atol)?)),
        };
        RawSolver {
            method: spec.method(),
            steps,
            rtol,
            atol,
            error_norm: spec.per_sample_norm().then(|| "per-sample".to_string()),
            max_steps: (spec.max_steps() != SOLVER_MAX_STEPS).then_some(spec.max_steps()),
            controller: spec.explicit_controller(),
            grading: (spec.grading() != 1.0).then_some(spec.grading()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SolverSpec<f64>, D::Error> {
        let b = RawSolver::deserialize(d)?;
        let bad = |m: String| D::Error::custom(m);
        let per_sample = match b.error_norm.as_deref() {
            None | Some("rms") => false,
            Some("per-sample") => true,
            Some(other) => {
                return Err(bad(format!(
                    "solver.error_norm must be rms or per-sample, got {other:?}"
                )))
            }
        };
        let mut builder = SolverSpec::builder(b.method)
            .per_sample_norm(per_sample)
            .max_steps(b.max_steps.unwrap_or(SOLVER_MAX_STEPS));
        if let Some(c) = b.controller {
            builder = builder.controller(c);
        }
        if let Some(p) = b.grading {
            builder = builder.graded(p);
        }
        match b.steps {
            Some(n) if n > MAX_STEPS => {
                return Err(bad(format!(
                    "solver.steps must be in 1..={MAX_STEPS}, got {n}"
                )))
            }
            Some(n) => builder = builder.fixed_steps(n),
            None => {
                // Absent tolerances are refused by name (NaN is not positive).
                builder = builder
                    .rtol(b.rtol.unwrap_or(f64::NAN))
                    .atol(b.atol.unwrap_or(f64::NAN))
            }
        }
        builder
            .build()
            .map_err(|e| bad(solver_error(e, "solver.").to_string()))
    }
}

/// How a run was trained (config.json records it; a resume continues with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Minibatch size.
    pub batch: usize,
    /// Gradient method: `"backprop"`, `"adjoint"` (the names every config.json has used),
    /// `{"checkpointed": {"every": N}}`, or a `backsolve` with its own tolerances (see
    /// [`crate::trainer::GRAD_NAMES`]).
    #[serde(with = "crate::trainer::grad_serde")]
    pub grad: crate::trainer::Differentiation<f64>,
    /// Trace estimator of the loss.
    pub trace: crate::trainer::TraceKind,
    /// Adam's learning rate at the start.
    pub lr: f64,
    /// How the learning rate changes over the run (absent: constant, as in every file
    /// written before schedules).
    #[serde(default, skip_serializing_if = "crate::optim::LrSchedule::is_constant")]
    pub lr_schedule: crate::optim::LrSchedule,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Decay of the moving average of the weights that is validated and kept (absent: 0, no
    /// average, as in every file written before it).
    #[serde(default, skip_serializing_if = "crate::optim::adam::is_zero")]
    pub ema_decay: f64,
    /// Validation interval.
    pub val_every: usize,
    /// Iterations to train (absent in configs written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iters: Option<usize>,
    /// Early stopping: validations without improvement before stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Flow matching's path, coupling and times when the run trains by flow matching (absent:
    /// maximum likelihood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_matching: Option<crate::fm::FlowMatching>,
    /// RNODE's regularisers and STEER of a maximum-likelihood run (absent: none).
    #[serde(default, skip_serializing_if = "crate::trainer::Regularisers::is_off")]
    pub regularisers: crate::trainer::Regularisers,
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    /// A toy set generated from seeds.
    Toy {
        /// FFJORD's name of the set (`8gaussians`, ...; see [`crate::data::ToySet`]).
        name: String,
    },
    /// A table file (CSV or .npy) split into train/validation/test from a seed.
    Table {
        /// The file, as given when training (a relative path is relative to the directory
        /// training ran in).
        path: PathBuf,
        /// SHA-256 of the file's bytes: `eval` recognises the training file by content.
        #[serde(default)]
        sha256: Option<String>,
        /// Columns kept, as in [`ColumnSelection::columns`](crate::data::ColumnSelection::columns).
        columns: Option<Vec<String>>,
        /// Columns dropped, as in [`ColumnSelection::drop`](crate::data::ColumnSelection::drop).
        drop: Vec<String>,
        /// Whether the file's first row names the columns, as in
        /// [`ColumnSelection::header`](crate::data::ColumnSelection::header) (absent in
        /// configs written before the option existed: `auto`, how they were read).
        #[serde(default)]
        header: HeaderMode,
        /// Train / validation / test fractions of the rows (summing to 1).
        split: [f64; 3],
    },
    /// Weights imported from another framework.
    Imported {
        /// The imported weights file.
        path: PathBuf,
    },
}

impl DataSource {
    /// "toy set 8gaussians" or "table data.csv".
    pub fn describe(&self) -> String {
        match self {
            Self::Toy { name } => format!("toy set {name}"),
            Self::Table { path, .. } => format!("table {}", path.display()),
            Self::Imported { path } => format!("weights imported from {}", path.display()),
        }
    }
    /// The column selection of a table source.
    pub fn selection(&self) -> ColumnSelection {
        match self {
            Self::Table {
                columns,
                drop,
                header,
                ..
            } => ColumnSelection {
                columns: columns.clone(),
                drop: drop.clone(),
                header: *header,
            },
            _ => ColumnSelection::default(),
        }
    }
}

/// Contents of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The vector field.
    pub mlp: MlpConfig,
    /// The solver used for training and, by default, evaluation (config.json's form: see
    /// [`default_solver`]; read and written through a conversion that keeps the files of
    /// earlier releases readable).
    #[serde(with = "solver_block")]
    pub solver: SolverSpec<f64>,
    /// The solver of sampling solves when it is not `solver` (absent: `solver`, as in every
    /// file written before it): a conditional flow-matching run records a fixed-step one,
    /// whose draws match a tight solve's at a fraction of its evaluations (docs/sbi.md).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "sampler_block"
    )]
    pub sampler: Option<SolverSpec<f64>>,
    /// Standardisation fitted on the training split (None: the model sees raw data).
    pub standardizer: Option<Standardizer>,
    /// The training data.
    pub data: DataSource,
    /// Seed of the data split / toy sampling.
    pub seed: u64,
    /// Names of the modelled columns x (the points of p(x) or p(x | c)).
    pub columns: Vec<String>,
    /// The context columns c of a conditional model p(x | c), by name, with the training
    /// split's statistics (absent: an unconditional model, as in every file written before
    /// conditional models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextColumns>,
    /// Precision the model was trained in.
    pub precision: Precision,
    /// How it was trained (None for imported models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingConfig>,
}

impl ModelConfig {
    /// The width `k` of the context (0 for an unconditional model).
    pub fn context_dim(&self) -> usize {
        self.context.as_ref().map_or(0, ContextColumns::width)
    }

    /// The names of the columns a point is read from: the modelled columns, then the context
    /// columns (the order of tables in the model's columns).
    pub fn input_columns(&self) -> Vec<String> {
        let context = self.context.as_ref().map(|c| c.columns.as_slice());
        self.columns
            .iter()
            .chain(context.unwrap_or_default())
            .cloned()
            .collect()
    }

    /// Checks everything that the weights and the data do not check themselves: the network's
    /// sizes, the solver, the standardisation (one positive finite scale per dimension) and the
    /// column names. Messages name the field of config.json.
    ///
    /// # Errors
    /// [`TrainError::Invalid`], prefixed with `config.json:`, for the first inconsistency: an
    /// architecture [`MlpConfig::validate`] refuses; a solver [`check_solver_precision`]
    /// refuses; standardiser vectors of the wrong length, a non-positive or non-finite scale, a
    /// non-finite mean, a malformed Cholesky factor or an out-of-range dequantised column; the
    /// wrong number of column names; an inconsistent context block or context width; two input
    /// columns of one name; a local-error weight the solver or gradient method cannot serve.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| TrainError::Invalid(format!("{CONFIG_FILE}: {m}"));
        self.mlp.validate().map_err(|e| bad(format!("mlp: {e}")))?;
        check_solver_precision(
            &self.solver,
            &format!("{CONFIG_FILE}: solver."),
            self.precision,
        )?;
        if let Some(sampler) = &self.sampler {
            check_solver_precision(sampler, &format!("{CONFIG_FILE}: sampler."), self.precision)?;
        }
        let d = self.mlp.dim;
        if let Some(s) = &self.standardizer {
            if s.mean.len() != d || s.std.len() != d {
                return Err(bad(format!(
                    "standardizer has {} means and {} scales for {d} dimensions",
                    s.mean.len(),
                    s.std.len()
                )));
            }
            if let Some(j) = s.std.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(bad(format!(
                    "standardizer.std[{j}] = {} must be positive and finite",
                    s.std[j]
                )));
            }
            if let Some(j) = s.mean.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!("standardizer.mean[{j}] is not finite")));
            }
            if let Some(l) = &s.cholesky {
                let diag_ok = (0..d).all(|i| l.get(i * d + i).is_some_and(|v| *v > 0.0));
                if l.len() != d * d || l.iter().any(|v| !v.is_finite()) || !diag_ok {
                    return Err(bad(format!(
                        "standardizer.cholesky must be {d} x {d} = {} finite numbers with a \
                         positive diagonal",
                        d * d
                    )));
                }
            }
            if let Some(j) = s.dequantized.iter().find(|j| **j >= d) {
                return Err(bad(format!(
                    "standardizer.dequantized names column {j} of {d}"
                )));
            }
        }
        if self.columns.len() != d {
            return Err(bad(format!(
                "{} column names for {d} dimensions",
                self.columns.len()
            )));
        }
        if let Some(c) = &self.context {
            c.validate().map_err(bad)?;
            if let Some(g) = c.shift.as_ref().filter(|g| g.len() != d * c.width()) {
                return Err(bad(format!(
                    "context.shift has {} values for {d} x {} (dimensions x context columns)",
                    g.len(),
                    c.width()
                )));
            }
        }
        if self.mlp.context_dim != self.context_dim() {
            return Err(bad(format!(
                "mlp.context_dim is {} but the context block names {} columns",
                self.mlp.context_dim,
                self.context_dim()
            )));
        }
        // Columns are matched by name (`density`, `eval`): a repeated name would make two model
        // columns read the same data.
        let columns = self.input_columns();
        for (j, c) in columns.iter().enumerate() {
            if let Some(k) = columns[..j].iter().position(|o| o == c) {
                return Err(bad(format!(
                    "columns {} and {} are both named {c:?}, so points cannot be matched to \
                     them; retrain on a file with distinct column names",
                    k + 1,
                    j + 1
                )));
            }
        }
        if let Some(tr) = self.training.as_ref() {
            if tr.regularisers.local_error != 0.0 {
                // cnf-ode's check, its reasons named by config.json's fields.
                if let Err(r) = self.solver.check_error_penalty(&tr.grad) {
                    return Err(bad(match r {
                        PenaltyRefusal::Backsolve => {
                            "training.regularisers.local_error penalises the discrete steps: it \
                             needs grad = backprop or checkpointed"
                                .into()
                        }
                        PenaltyRefusal::FixedSteps => {
                            "training.regularisers.local_error measures the steps' errors \
                             against the tolerances of adaptive steps: remove solver.steps"
                                .into()
                        }
                        _ => format!(
                            "training.regularisers.local_error needs a method with one embedded \
                             pair (bs3, dopri5, tsit5), not {}",
                            self.solver.method()
                        ),
                    }));
                }
            }
        }
        Ok(())
    }
}

/// SHA-256 of a file, in hex.
///
/// # Errors
/// [`TrainError::Io`] naming the file if it cannot be opened or read.
pub fn file_sha256(path: &Path) -> Result<String, TrainError> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(TrainError::io(path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(TrainError::io(path.display()))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder (named by process
/// and a counter, so concurrent writers never share one), synced, renamed. On failure (e.g. a
/// full disk) the temporary file is removed and `path` is untouched. (The project's one atomic
/// write path, [`crate::atomic::AtomicFile`].)
///
/// # Errors
/// As [`crate::atomic::write_atomic`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    crate::atomic::write_atomic(path, bytes)
}

/// "dimension 2, hidden [64, 64], tanh, concat".
fn describe_mlp(c: &MlpConfig) -> String {
    format!(
        "dimension {}, hidden {:?}, {:?}, {:?} layers",
        c.dim, c.hidden, c.activation, c.layer_kind
    )
    .to_lowercase()
}

/// A model folder on disk.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The folder.
    pub dir: PathBuf,
}

impl ModelDir {
    /// A handle on `dir` (nothing is read yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// Path of a file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Takes the folder's exclusive lock (creating the folder): a second process writing into
    /// the same folder gets a clear error instead of mixing its files with the first's.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] if the path is a file, or another process holds the lock;
    /// [`TrainError::Io`] if the folder or the lock file cannot be created or locked.
    pub fn lock(&self) -> Result<FolderLock, TrainError> {
        let p = self.path(LOCK_FILE);
        let io = |e: std::io::Error| TrainError::io(p.display())(e);
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(TrainError::Invalid(format!(
                "{} is a file, not a folder; a model is a folder (choose another name)",
                self.dir.display()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::Invalid(format!(
                "another cnf process is writing into {}; wait for it or choose another folder",
                self.dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
    /// Whether the folder holds a model or run (any of [`RUN_FILES`]).
    pub fn holds_run(&self) -> bool {
        RUN_FILES.iter().any(|f| self.path(f).exists())
    }
    /// Refuses a folder that holds a model or run: "DIR already holds a model; {what_to_do}".
    ///
    /// # Errors
    /// [`TrainError::Invalid`] with that message when [`ModelDir::holds_run`].
    pub fn refuse_existing(&self, what_to_do: &str) -> Result<(), TrainError> {
        if self.holds_run() {
            return Err(TrainError::Invalid(format!(
                "{} already holds a model; {what_to_do}",
                self.dir.display()
            )));
        }
        Ok(())
    }
    /// Readies the folder for a new model: refuses when it holds one unless `force`, and then
    /// removes the old run's files.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] if the folder holds a run and `force` is false;
    /// [`TrainError::Io`] if one of [`RUN_FILES`] exists but cannot be removed.
    pub fn clear_for_new(&self, force: bool) -> Result<(), TrainError> {
        if !force {
            return self.refuse_existing("use --force to replace it");
        }
        for f in RUN_FILES {
            match std::fs::remove_file(self.path(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(TrainError::io(self.path(f).display())(e))
                }
                _ => {}
            }
        }
        Ok(())
    }
    /// Reads `config.json`.
    ///
    /// # Errors
    /// [`TrainError::Io`] if the file cannot be read; [`TrainError::Json`] if it is not a
    /// configuration; [`TrainError::Invalid`] if [`ModelConfig::validate`] refuses it.
    pub fn config(&self) -> Result<ModelConfig, TrainError> {
        let p = self.path(CONFIG_FILE);
        let text = std::fs::read_to_string(&p).map_err(TrainError::io(format!(
            "{} (is this a model folder?)",
            p.display()
        )))?;
        let config: ModelConfig =
            serde_json::from_str(&text).map_err(TrainError::json(p.display()))?;
        config.validate()?;
        Ok(config)
    }
    /// Writes `config.json`.
    ///
    /// # Errors
    /// [`TrainError::Json`] if the configuration cannot be serialised (a solver with
    /// per-component tolerances); otherwise as [`write_atomic`].
    pub fn save_config(&self, config: &ModelConfig) -> Result<(), TrainError> {
        let text = serde_json::to_string_pretty(config).map_err(TrainError::json(CONFIG_FILE))?;
        write_atomic(&self.path(CONFIG_FILE), text.as_bytes())
    }
    /// Writes the weights.
    ///
    /// # Errors
    /// [`TrainError::Field`] if the weights cannot be serialised; otherwise as [`write_atomic`].
    pub fn save_weights<T: Real>(&self, mlp: &Mlp<T>) -> Result<(), TrainError> {
        write_atomic(&self.path(WEIGHTS_FILE), &mlp.to_safetensors_bytes()?)
    }
    /// Reads the weights in precision `T`.
    ///
    /// # Errors
    /// [`TrainError::Io`] if `model.safetensors` cannot be read; [`TrainError::Json`] if its
    /// stored architecture is not valid JSON; [`TrainError::Invalid`] if that architecture is
    /// not `config.mlp`; [`TrainError::Field`] for weights
    /// [`Mlp::from_safetensors_bytes`] refuses.
    pub fn load_mlp<T: Real>(&self, config: &ModelConfig) -> Result<Mlp<T>, TrainError> {
        let p = self.path(WEIGHTS_FILE);
        let bytes = std::fs::read(&p).map_err(TrainError::io(p.display()))?;
        // The weights carry the architecture they were saved with: it must be config.json's.
        if let Ok((_, meta)) = safetensors::SafeTensors::read_metadata(&bytes) {
            if let Some(stored) = meta.metadata().as_ref().and_then(|m| m.get("config")) {
                let stored: MlpConfig = serde_json::from_str(stored).map_err(TrainError::json(
                    format!("{}: metadata config", p.display()),
                ))?;
                if stored != config.mlp {
                    return Err(TrainError::Invalid(format!(
                        "{CONFIG_FILE} describes {} but {WEIGHTS_FILE} was saved for {}",
                        describe_mlp(&config.mlp),
                        describe_mlp(&stored)
                    )));
                }
            }
        }
        Ok(Mlp::<f64>::from_safetensors_bytes(&bytes, config.mlp.clone())?.cast::<T>())
    }
    /// The flow of this folder in precision `T`, with the solver of its config (or `solver`).
    ///
    /// # Errors
    /// [`TrainError::Invalid`] for a solver [`solver_in`] refuses; otherwise as
    /// [`ModelDir::load_mlp`].
    pub fn load_cnf<T: Real>(
        &self,
        config: &ModelConfig,
        solver: Option<&SolverSpec<f64>>,
    ) -> Result<Cnf<T, Mlp<T>>, TrainError> {
        let spec = solver_in::<T>(solver.unwrap_or(&config.solver))?;
        Ok(Cnf::new(self.load_mlp(config)?, spec))
    }
}

/// Points of a table in model space (standardised when the model was), in precision T.
/// A finite value that overflows T (1e39 in f32) is an error naming its row and column.
///
/// # Errors
/// As [`to_model_space_at`].
pub fn to_model_space<T: Real>(config: &ModelConfig, table: &Table) -> Result<Vec<T>, TrainError> {
    to_model_space_at(config, table, 0)
}

/// [`to_model_space`] of a part of a larger table whose first row is row `first_row` (counted
/// from 0) of the whole: messages name the rows of the whole.
///
/// # Errors
/// [`TrainError::Invalid`] if the table does not have the model's dimension or a value
/// overflows `T`; [`TrainError::Data`] if the standardisation refuses the table
/// ([`Standardizer::transform`]).
pub fn to_model_space_at<T: Real>(
    config: &ModelConfig,
    table: &Table,
    first_row: usize,
) -> Result<Vec<T>, TrainError> {
    if table.n_cols() != config.mlp.dim {
        return Err(TrainError::Invalid(format!(
            "the data has {} columns, the model expects {}",
            table.n_cols(),
            config.mlp.dim
        )));
    }
    let t = match &config.standardizer {
        Some(s) => s.transform(table)?,
        None => table.clone(),
    };
    let d = t.n_cols();
    t.data()
        .iter()
        .enumerate()
        .map(|(i, &v)| match T::from_f64(v).filter(|x| x.is_finite()) {
            Some(x) => Ok(x),
            None => Err(TrainError::Invalid(format!(
                "data row {}, column {:?}: {} overflows the model's precision ({}){}",
                first_row + i / d + 1,
                table.names()[i % d],
                table.data()[i],
                T::NAME,
                if T::NAME == "f32" { "; use --f64" } else { "" }
            ))),
        })
        .collect()
}

/// The points and the context (both `(n, .)` row-major, in precision T) of a table in the
/// model's input columns ([`ModelConfig::input_columns`]: x, then c): x standardised as
/// [`to_model_space_at`] does, c with the training split's context statistics. The context is
/// empty for an unconditional model. `first_row` numbers rows in messages.
///
/// # Errors
/// [`TrainError::Invalid`] if the table does not have the model's number of input columns or a
/// value overflows `T`; otherwise as [`to_model_space_at`].
pub fn to_model_space_given<T: Real>(
    config: &ModelConfig,
    table: &Table,
    first_row: usize,
) -> Result<(Vec<T>, Vec<T>), TrainError> {
    let Some(context) = &config.context else {
        return Ok((to_model_space_at(config, table, first_row)?, Vec::new()));
    };
    let (d, k) = (config.mlp.dim, context.width());
    if table.n_cols() != d + k {
        return Err(TrainError::Invalid(format!(
            "the data has {} columns, the model reads {} ({})",
            table.n_cols(),
            d + k,
            config.input_columns().join(", ")
        )));
    }
    let x_table = table.select_columns(0..d);
    let c = context.to_model_space(&table.select_columns(d..d + k), first_row)?;
    if context.shift.is_none() {
        return Ok((to_model_space_at(config, &x_table, first_row)?, c));
    }
    // Whitened given c: x_m - G c_m, in f64 before the model's precision.
    let mut x: Vec<f64> = to_model_space_at(config, &x_table, first_row)?;
    let c64: Vec<f64> = context.to_model_space(&table.select_columns(d..d + k), first_row)?;
    context.shift_rows(&mut x, &c64, -1.0);
    let x = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            T::from_f64(v).filter(|x| x.is_finite()).ok_or_else(|| {
                TrainError::Invalid(format!(
                    "data row {}: {v} overflows the model's precision ({})",
                    first_row + i / d + 1,
                    T::NAME
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((x, c))
}

impl ModelConfig {
    /// The data-space point of a model-space row `z` (`d`) drawn given the model-space
    /// context row `c` (`k`; empty for an unconditional model): the context's shift added back
    /// and the standardisation undone.
    pub fn to_data_row(&self, z: &[f64], c: &[f64]) -> Vec<f64> {
        let mut z = z.to_vec();
        if let (Some(ctx), false) = (&self.context, c.is_empty()) {
            ctx.shift_rows(&mut z, c, 1.0);
        }
        match &self.standardizer {
            Some(s) => s.inverse_row(&z),
            None => z,
        }
    }
}

/// log|det| of the standardisation (0 without one): log p_data = log p_model + this.
pub fn log_det(config: &ModelConfig) -> f64 {
    config
        .standardizer
        .as_ref()
        .map_or(0.0, Standardizer::log_det)
}

/// Data-space log-densities of a table in the model's input columns (x, then the context of
/// a conditional model: log p(x | c)).
///
/// # Errors
/// As [`log_density_table_at`].
pub fn log_density_table<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    table: &Table,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    log_density_table_at(cnf, config, table, 0)
}

/// [`log_density_table`] of a part of a larger table whose first row is row `first_row`
/// (counted from 0) of the whole (for messages).
///
/// # Errors
/// As [`to_model_space_given`] for the table, and [`TrainError::Flow`] when the flow refuses
/// the points or a solve fails ([`Cnf::log_density_given`]).
pub fn log_density_table_at<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    table: &Table,
    first_row: usize,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    let (x, c) = to_model_space_given::<T>(config, table, first_row)?;
    let dens = cnf.log_density_given(&x, &c, &cnf_field::Trace::Exact)?;
    let ld = log_det(config);
    Ok((
        dens.logp
            .iter()
            .map(|v| v.to_f64().unwrap_or(f64::NAN) + ld)
            .collect(),
        dens.stats,
    ))
}

/// Reads a table with the column selection the model was trained with.
///
/// # Errors
/// As [`crate::data::read_table`].
pub fn read_table_for(config: &ModelConfig, path: &Path) -> Result<Table, TrainError> {
    crate::data::read_table(path, &config.data.selection())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wrap {
        #[serde(with = "solver_block")]
        solver: SolverSpec<f64>,
    }
    fn read(json: &str) -> Result<SolverSpec<f64>, String> {
        serde_json::from_str::<Wrap>(&format!(r#"{{"solver": {json}}}"#))
            .map(|w| w.solver)
            .map_err(|e| e.to_string())
    }
    fn write(spec: &SolverSpec<f64>) -> String {
        let w = Wrap {
            solver: spec.clone(),
        };
        serde_json::to_value(&w).unwrap()["solver"].to_string()
    }

    /// config.json's `solver` block as every release wrote it reads into the same spec, and
    /// the spec is written back in the same form.
    #[test]
    fn solver_blocks_of_older_files_read_and_write_back() {
        let old = r#"{"method":"dopri5","steps":null,"rtol":0.00001,"atol":0.00001}"#;
        let spec = read(old).unwrap();
        assert_eq!(spec, default_solver());
        assert_eq!(spec.max_steps(), SOLVER_MAX_STEPS);
        assert_eq!(
            write(&spec),
            r#"{"atol":0.00001,"method":"dopri5","rtol":0.00001,"steps":null}"#
        );
        // Fixed steps (old files also hold the unused tolerances) and the per-sample norm.
        let fixed = read(r#"{"method":"rk4","steps":10,"rtol":1e-5,"atol":1e-5}"#).unwrap();
        assert_eq!(fixed.fixed_steps(), Some(10));
        assert_eq!(read(&write(&fixed)).unwrap(), fixed);
        let strict = read(
            r#"{"method":"tsit5","steps":null,"rtol":1e-6,"atol":1e-7,"error_norm":"per-sample"}"#,
        )
        .unwrap();
        assert!(strict.per_sample_norm());
        assert_eq!(read(&write(&strict)).unwrap(), strict);
        assert_eq!(
            describe_solver(&strict),
            "tsit5 rtol 1e-6 atol 1e-7 per-sample norm"
        );
        assert_eq!(describe_solver(&fixed), "rk4 with 10 steps");
        // Refusals name the field.
        let e = read(r#"{"method":"dopri5","steps":null,"rtol":-1.0,"atol":1e-5}"#).unwrap_err();
        assert!(
            e.starts_with("solver.rtol must be positive and finite, got -1"),
            "{e}"
        );
        let e = read(r#"{"method":"rk4","steps":null,"rtol":1e-5,"atol":1e-5}"#).unwrap_err();
        assert!(
            e.starts_with("rk4 is a fixed-step method: give solver.steps"),
            "{e}"
        );
        let e = read(r#"{"method":"rk4","steps":2000000}"#).unwrap_err();
        assert!(e.starts_with("solver.steps must be in 1..=1000000"), "{e}");
    }
}
