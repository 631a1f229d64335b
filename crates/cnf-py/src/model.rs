//! The one file of glue between Python and cnf-train's session: fitting a table held in
//! memory, and a fitted or loaded model (config.json + model.safetensors, as bytes or a folder)
//! scored and sampled as the `cnf` command does.
use std::path::{Path, PathBuf};

use cnf_train::data::table::default_names;
use cnf_train::data::{Table, SPLIT};
use cnf_train::error::TrainError;
use cnf_train::model::{DataSource, ModelConfig, ModelDir};
use cnf_train::session::{AnyModel, EvalOptions, LoadedFlow, RunPlan, Session, TrainOptions};

/// Points per ODE solve, as the `cnf` command's `density`, `eval` and `sample`: row `i`'s
/// result depends only on the rows of its block, so results are bit-identical to the
/// command's and to any split of the rows at multiples of it.
pub use cnf_train::session::SOLVE_POINTS as SOLVE_CHUNK;

/// What `config.json` records as the data of a model fitted from Python (no file holds it).
pub const ARRAY_SOURCE: &str = "<array passed to fit>";

/// A fitted or loaded model: its config.json and its flow, in the precision it names.
#[derive(Debug, Clone)]
pub struct Model {
    flow: LoadedFlow,
}

impl Model {
    /// The model of a folder the `cnf` command (or [`Model::save`]) wrote.
    ///
    /// # Errors
    /// As `cnf density --model DIR`: a missing or malformed config.json or weights file, or
    /// weights of another architecture.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let flow = Session::open(dir)?.flow(&EvalOptions::default())?;
        Ok(Self { flow })
    }

    /// The model of config.json's text and model.safetensors' bytes (pickling).
    ///
    /// # Errors
    /// Malformed or contradictory files, as [`Model::open`].
    pub fn from_bytes(config_json: &str, weights: &[u8]) -> Result<Self, TrainError> {
        let config: ModelConfig =
            serde_json::from_str(config_json).map_err(TrainError::json("config.json"))?;
        let flow = LoadedFlow::from_bytes(config, weights)?;
        Ok(Self { flow })
    }

    /// config.json's text and model.safetensors' bytes, as [`Model::save`] writes them.
    ///
    /// # Errors
    /// Serialisation failures (none for a valid model).
    pub fn to_bytes(&self) -> Result<(String, Vec<u8>), TrainError> {
        let json =
            serde_json::to_string_pretty(self.config()).map_err(TrainError::json("config.json"))?;
        Ok((json, self.flow.weights_bytes()?))
    }

    /// Writes config.json and model.safetensors into `dir` (created if needed; locked while
    /// writing; each file written atomically).
    ///
    /// # Errors
    /// I/O failures, or a folder another process is writing into.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let dir = ModelDir::new(dir);
        let _lock = dir.lock()?;
        dir.save_config(self.config())?;
        match self.flow.model() {
            AnyModel::F32(c) => dir.save_weights(&c.field),
            AnyModel::F64(c) => dir.save_weights(&c.field),
        }
    }

    /// The model's config.json.
    pub fn config(&self) -> &ModelConfig {
        self.flow.config()
    }

    /// Number of columns.
    pub fn dim(&self) -> usize {
        self.flow.dim()
    }

    /// Data-space log-densities of the `n` rows of `x` (row-major, `d` columns: the model's
    /// width, else the `cnf density` error), in solves of [`SOLVE_CHUNK`] rows as that command.
    ///
    /// # Errors
    /// A wrong width or a non-finite value, a value beyond the model's precision (all
    /// `TrainError::Invalid`/`Data`), a failed or non-finite solve (`Flow`).
    pub fn log_density(&self, x: Vec<f64>, n: usize, d: usize) -> Result<Vec<f64>, TrainError> {
        let columns = &self.config().columns;
        let names = if d == self.dim() && columns.len() == d {
            columns.clone()
        } else {
            default_names(d)
        };
        let table = Table::new(n, d, x, names)?;
        Ok(self.flow.log_density_table(&table, 0)?.0)
    }

    /// `n` samples in data space, row-major: the rows `cnf sample -n N --seed S` writes.
    ///
    /// # Errors
    /// A failed solve, or a sample that is not finite.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f64>, TrainError> {
        let x = self.flow.sample(n, seed)?;
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Invalid(format!(
                "sample {} is not finite in data space",
                i / self.dim().max(1)
            )));
        }
        Ok(x)
    }

    /// Fits a model to `n` rows of `x` (row-major, `names.len()` columns) as `cnf train --data
    /// TABLE` does, with its settings for a table of that size where `options` leaves them
    /// open; the run's folder is a temporary one, and the best model is kept.
    ///
    /// # Errors
    /// Bad input or settings (too few rows, a constant column, a non-finite value), a training
    /// run that diverged.
    pub fn fit(
        x: Vec<f64>,
        n: usize,
        names: Vec<String>,
        options: &TrainOptions,
    ) -> Result<Self, TrainError> {
        let table = Table::new(n, names.len(), x, names)?;
        let source = DataSource::Table {
            path: PathBuf::from(ARRAY_SOURCE),
            sha256: None,
            columns: None,
            drop: Vec::new(),
            header: Default::default(),
            split: SPLIT,
        };
        // Too few rows: "X, n_samples = 4: 4 data rows leave 3 for training and 0 for
        // validation; ...: at least 10 rows in all".
        let label = PathBuf::from(format!("X, n_samples = {n}"));
        let scratch = tempfile::tempdir().map_err(TrainError::io("a temporary model folder"))?;
        let plan = RunPlan::from_table(&table, source, &label, options, scratch.path().into())?;
        let mut session = Session::start(plan, false)?;
        session.train(Vec::new())?;
        let flow = session.flow(&EvalOptions::default())?;
        Ok(Self { flow })
    }
}
