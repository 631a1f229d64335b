//! A model folder: `config.json` (architecture, solver, standardisation, data source) and
//! `model.safetensors` (weights), plus `checkpoint.json` while training (to resume).
//!
//! Every file is written atomically (write a temporary file beside it, then rename), so a kill
//! during a save leaves the previous version intact.
use std::io::Write;
use std::path::{Path, PathBuf};

use cnf_field::{Mlp, MlpConfig, Real};
use cnf_flow::{Cnf, Integrator};
use cnf_ode::{Bs3, Dop853, Dopri5, Euler, Heun, Midpoint, Rk4, RkMethod, Tsit5};
use serde::{Deserialize, Serialize};

use crate::data::{ColumnSelection, Standardizer};
use crate::error::TrainError;

/// File names inside a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights of the best model so far.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Everything needed to resume training.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// The ODE solver of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverConfig {
    /// euler, midpoint, heun, rk4, bs3, dopri5, tsit5 or dop853.
    pub method: String,
    /// Fixed number of steps (None: adaptive).
    pub steps: Option<usize>,
    /// Relative tolerance (adaptive).
    pub rtol: f64,
    /// Absolute tolerance (adaptive).
    pub atol: f64,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            method: "dopri5".into(),
            steps: None,
            rtol: 1e-5,
            atol: 1e-5,
        }
    }
}

/// The tableau of a method name.
pub fn method_by_name(name: &str) -> Result<&'static cnf_ode::Tableau, TrainError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "euler" => Euler.tableau(),
        "midpoint" => Midpoint.tableau(),
        "heun" => Heun.tableau(),
        "rk4" => Rk4.tableau(),
        "bs3" => Bs3.tableau(),
        "dopri5" | "rk45" => Dopri5.tableau(),
        "tsit5" => Tsit5.tableau(),
        "dop853" => Dop853.tableau(),
        other => {
            return Err(TrainError::Invalid(format!(
                "unknown solver {other:?} (euler, midpoint, heun, rk4, bs3, dopri5, tsit5, dop853)"
            )))
        }
    })
}

impl SolverConfig {
    /// Checks the settings and builds the flow's integrator.
    pub fn integrator<T: Real>(&self) -> Result<Integrator<T>, TrainError> {
        let tab = method_by_name(&self.method)?;
        let lit = |x: f64| T::from_f64(x).unwrap_or_else(T::nan);
        match self.steps {
            Some(0) => Err(TrainError::Invalid("--steps must be at least 1".into())),
            Some(n) => Ok(Integrator::fixed(tab, n)),
            None if !tab.is_adaptive() => Err(TrainError::Invalid(format!(
                "{} is a fixed-step method: give --steps N",
                tab.name
            ))),
            None => {
                for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
                    if !(v.is_finite() && v > 0.0) {
                        return Err(TrainError::Invalid(format!(
                            "--{name} must be positive, got {v}"
                        )));
                    }
                }
                Ok(Integrator::adaptive(tab, lit(self.rtol), lit(self.atol)))
            }
        }
    }
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataSource {
    /// A toy set generated from seeds.
    Toy { name: String },
    /// A table file (CSV or .npy) split into train/validation/test from a seed.
    Table {
        path: PathBuf,
        columns: Option<Vec<String>>,
        drop: Vec<String>,
        split: [f64; 3],
    },
    /// Weights imported from another framework.
    Imported { path: PathBuf },
}

impl DataSource {
    /// The column selection of a table source.
    pub fn selection(&self) -> ColumnSelection {
        match self {
            Self::Table { columns, drop, .. } => ColumnSelection {
                columns: columns.clone(),
                drop: drop.clone(),
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
    /// Precision the model was trained in (f32 or f64).
    pub precision: String,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let io = |e: std::io::Error| TrainError::Io(format!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
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
    /// Reads `config.json`.
    pub fn config(&self) -> Result<ModelConfig, TrainError> {
        let p = self.path(CONFIG_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            TrainError::Io(format!("{}: {e} (is this a model folder?)", p.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| TrainError::Io(format!("{}: {e}", p.display())))
    }
    /// Writes `config.json`.
    pub fn save_config(&self, config: &ModelConfig) -> Result<(), TrainError> {
        let text =
            serde_json::to_string_pretty(config).map_err(|e| TrainError::Io(e.to_string()))?;
        write_atomic(&self.path(CONFIG_FILE), text.as_bytes())
    }
    /// Writes the weights.
    pub fn save_weights<T: Real>(&self, mlp: &Mlp<T>) -> Result<(), TrainError> {
        write_atomic(&self.path(WEIGHTS_FILE), &mlp.to_safetensors_bytes()?)
    }
    /// Reads the weights in precision `T`.
    pub fn load_mlp<T: Real>(&self, config: &ModelConfig) -> Result<Mlp<T>, TrainError> {
        let p = self.path(WEIGHTS_FILE);
        let bytes =
            std::fs::read(&p).map_err(|e| TrainError::Io(format!("{}: {e}", p.display())))?;
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
