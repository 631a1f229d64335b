//! A model folder: `config.json` (architecture, solver, standardisation, data source) and
//! `model.safetensors` (weights), plus `checkpoint.json` while training (to resume).
//!
//! Every file is written atomically (write a temporary file beside it, then rename), so a kill
//! during a save leaves the previous version intact.
use std::path::{Path, PathBuf};

use cnf_field::{Mlp, MlpConfig, Real};
use cnf_flow::{BatchNorm, Cnf, Integrator};
pub use cnf_ode::Method;
use serde::{Deserialize, Serialize};

use crate::data::{ColumnSelection, HeaderMode, Standardizer, Table};
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

/// The ODE solver of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverConfig {
    /// The Runge-Kutta method.
    pub method: Method,
    /// Fixed number of steps (None: adaptive).
    pub steps: Option<usize>,
    /// Relative tolerance (adaptive).
    pub rtol: f64,
    /// Absolute tolerance (adaptive).
    pub atol: f64,
    /// Error norm of solves over several points (absent in config.json: the batch RMS).
    #[serde(default, skip_serializing_if = "ErrorNormConfig::is_rms")]
    pub error_norm: ErrorNormConfig,
}

/// How adaptive solves over several points measure the error (`cnf_flow::BatchNorm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ErrorNormConfig {
    /// RMS over the whole batch (the peers' way; cheapest).
    #[default]
    Rms,
    /// The largest of the points' own RMS errors: every point held to the tolerances.
    PerSample,
}

impl ErrorNormConfig {
    /// Whether this is the default batch RMS.
    pub fn is_rms(&self) -> bool {
        *self == Self::Rms
    }
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            method: Method::Dopri5,
            steps: None,
            rtol: 1e-5,
            atol: 1e-5,
            error_norm: ErrorNormConfig::Rms,
        }
    }
}

impl SolverConfig {
    /// Checks the settings; `source` names where they came from in the message
    /// (e.g. "config.json: solver." or "--").
    pub fn check(&self, source: &str) -> Result<(), TrainError> {
        let tab = self.method.tableau();
        match self.steps {
            Some(n) if !(1..=MAX_STEPS).contains(&n) => Err(TrainError::Invalid(format!(
                "{source}steps must be in 1..={}, got {n}",
                MAX_STEPS
            ))),
            Some(_) => Ok(()),
            None if !tab.is_adaptive() => Err(TrainError::Invalid(format!(
                "{} is a fixed-step method: give {source}steps",
                self.method
            ))),
            None => {
                for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
                    if !(v.is_finite() && v > 0.0) {
                        return Err(TrainError::Invalid(format!(
                            "{source}{name} must be positive and finite, got {v}"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// [`SolverConfig::check`], and that the tolerances are normal positive numbers in
    /// `precision` (1e-300 is 0 in f32: every step would be rejected).
    pub fn check_for(&self, source: &str, precision: Precision) -> Result<(), TrainError> {
        self.check(source)?;
        if self.steps.is_some() || precision != Precision::F32 {
            return Ok(());
        }
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v as f32).is_normal() {
                return Err(TrainError::Invalid(format!(
                    "{source}{name} {v:e} is not a normal f32 number (the model's precision); \
                     use a tolerance of at least {:e}, or f64",
                    f32::MIN_POSITIVE
                )));
            }
        }
        Ok(())
    }

    /// The flow's integrator (call [`SolverConfig::check_for`] first for a message that names
    /// the source of a bad value).
    pub fn integrator<T: Real>(&self) -> Result<Integrator<T>, TrainError> {
        let precision = if T::NAME == "f32" {
            Precision::F32
        } else {
            Precision::F64
        };
        self.check_for("", precision)?;
        let tab = self.method.tableau();
        let lit = |x: f64| T::from_f64(x).unwrap_or_else(T::nan);
        let norm = match self.error_norm {
            ErrorNormConfig::Rms => BatchNorm::Rms,
            ErrorNormConfig::PerSample => BatchNorm::PerSample,
        };
        Ok(match self.steps {
            Some(n) => Integrator::fixed(tab, n),
            None => Integrator::adaptive(tab, lit(self.rtol), lit(self.atol)).with_norm(norm),
        })
    }

    /// "dopri5 rtol 1e-5 atol 1e-5", "dopri5 rtol 1e-5 atol 1e-5 per-sample norm" or "rk4 with
    /// 10 steps".
    pub fn describe(&self) -> String {
        match (self.steps, self.error_norm) {
            (Some(n), _) => format!("{} with {n} steps", self.method),
            (None, ErrorNormConfig::Rms) => {
                format!("{} rtol {:e} atol {:e}", self.method, self.rtol, self.atol)
            }
            (None, ErrorNormConfig::PerSample) => format!(
                "{} rtol {:e} atol {:e} per-sample norm",
                self.method, self.rtol, self.atol
            ),
        }
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
    /// Decoupled weight decay.
    pub weight_decay: f64,
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
    /// The solver used for training and, by default, evaluation.
    pub solver: SolverConfig,
    /// Standardisation fitted on the training split (None: the model sees raw data).
    pub standardizer: Option<Standardizer>,
    /// The training data.
    pub data: DataSource,
    /// Seed of the data split / toy sampling.
    pub seed: u64,
    /// Names of the data columns.
    pub columns: Vec<String>,
    /// Precision the model was trained in.
    pub precision: Precision,
    /// How it was trained (None for imported models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingConfig>,
}

impl ModelConfig {
    /// Checks everything that the weights and the data do not check themselves: the network's
    /// sizes, the solver, the standardisation (one positive finite scale per dimension) and the
    /// column names. Messages name the field of config.json.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| TrainError::Invalid(format!("{CONFIG_FILE}: {m}"));
        self.mlp.validate().map_err(|e| bad(format!("mlp: {e}")))?;
        self.solver
            .check_for(&format!("{CONFIG_FILE}: solver."), self.precision)?;
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
        // Columns are matched by name (`density`, `eval`): a repeated name would make two model
        // columns read the same data.
        for (j, c) in self.columns.iter().enumerate() {
            if let Some(k) = self.columns[..j].iter().position(|o| o == c) {
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
                if matches!(tr.grad, crate::trainer::Differentiation::Backsolve { .. }) {
                    return Err(bad(
                        "training.regularisers.local_error penalises the discrete steps: it \
                         needs grad = backprop or checkpointed"
                            .into(),
                    ));
                }
                if self.solver.steps.is_some() {
                    return Err(bad(
                        "training.regularisers.local_error measures the steps' errors against \
                         the tolerances of adaptive steps: remove solver.steps"
                            .into(),
                    ));
                }
                if !matches!(
                    self.solver.method.tableau().error,
                    cnf_ode::tableau::ErrorEstimate::Embedded(_)
                ) {
                    return Err(bad(format!(
                        "training.regularisers.local_error needs a method with one embedded \
                         pair (bs3, dopri5, tsit5), not {}",
                        self.solver.method
                    )));
                }
            }
        }
        Ok(())
    }
}

/// SHA-256 of a file, in hex.
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
    /// Readies the folder for a new model: refuses when it holds one unless `force`, and then
    /// removes the old run's files.
    pub fn clear_for_new(&self, force: bool) -> Result<(), TrainError> {
        if !self.holds_run() {
            return Ok(());
        }
        if !force {
            return Err(TrainError::Invalid(format!(
                "{} already holds a model; use --force to replace it",
                self.dir.display()
            )));
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
    pub fn save_config(&self, config: &ModelConfig) -> Result<(), TrainError> {
        let text = serde_json::to_string_pretty(config).map_err(TrainError::json(CONFIG_FILE))?;
        write_atomic(&self.path(CONFIG_FILE), text.as_bytes())
    }
    /// Writes the weights.
    pub fn save_weights<T: Real>(&self, mlp: &Mlp<T>) -> Result<(), TrainError> {
        write_atomic(&self.path(WEIGHTS_FILE), &mlp.to_safetensors_bytes()?)
    }
    /// Reads the weights in precision `T`.
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
    pub fn load_cnf<T: Real>(
        &self,
        config: &ModelConfig,
        solver: Option<&SolverConfig>,
    ) -> Result<Cnf<T, Mlp<T>>, TrainError> {
        let integ = solver.unwrap_or(&config.solver).integrator::<T>()?;
        Ok(Cnf::new(self.load_mlp(config)?, integ))
    }
}

/// Points of a table in model space (standardised when the model was), in precision T.
/// A finite value that overflows T (1e39 in f32) is an error naming its row and column.
pub fn to_model_space<T: Real>(config: &ModelConfig, table: &Table) -> Result<Vec<T>, TrainError> {
    to_model_space_at(config, table, 0)
}

/// [`to_model_space`] of a part of a larger table whose first row is row `first_row` (counted
/// from 0) of the whole: messages name the rows of the whole.
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

/// log|det| of the standardisation (0 without one): log p_data = log p_model + this.
pub fn log_det(config: &ModelConfig) -> f64 {
    config
        .standardizer
        .as_ref()
        .map_or(0.0, Standardizer::log_det)
}

/// Data-space log-densities of a table.
pub fn log_density_table<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    table: &Table,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    log_density_table_at(cnf, config, table, 0)
}

/// [`log_density_table`] of a part of a larger table whose first row is row `first_row`
/// (counted from 0) of the whole (for messages).
pub fn log_density_table_at<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    table: &Table,
    first_row: usize,
) -> Result<(Vec<f64>, cnf_ode::Stats), TrainError> {
    let x: Vec<T> = to_model_space_at(config, table, first_row)?;
    let dens = cnf.log_density(&x)?;
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
pub fn read_table_for(config: &ModelConfig, path: &Path) -> Result<Table, TrainError> {
    crate::data::read_table(path, &config.data.selection())
}
