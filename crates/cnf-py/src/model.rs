//! The one file of glue between Python and cnf-train: fitting a table held in memory, scoring,
//! sampling, and a model's two files (config.json + model.safetensors) as bytes or a folder.
//! Everything here calls cnf-train's public API as the `cnf` command does; when cnf-train grows
//! a runtime-typed training session, this file is what moves onto it.
use std::path::{Path, PathBuf};

use cnf_field::{Activation, Mlp, MlpConfig, Real, VectorField};
use cnf_flow::{Batching, Cnf, Penalties};
use cnf_ode::SolverSpec;
use cnf_train::data::table::default_names;
use cnf_train::data::{dequantize, integer_columns, Standardizer, Table, SPLIT};
use cnf_train::error::{DataError, TrainError};
use cnf_train::fm::{Coupling, FlowMatching, PathSpec, TimeDist};
use cnf_train::model::{
    check_solver_precision, log_density_table, solver_in, to_model_space, DataSource, ModelConfig,
    ModelDir, Precision, TrainingConfig, WEIGHTS_FILE,
};
use cnf_train::observers::Checkpointer;
use cnf_train::optim::{Adam, AdamConfig};
use cnf_train::trainer::{
    mean_nll, Batches, Differentiation, FlowMatchingObjective, TraceKind, TrainSettings, Trainer,
    ValEvent,
};
use rand::{rngs::StdRng, SeedableRng};
use serde::{de::DeserializeOwned, Serialize};

/// Points per ODE solve, as the `cnf` command's `density`, `eval` and `sample`: row `i`'s
/// result depends only on the rows of its block of 1024, so results are bit-identical to the
/// command's and to any split of the rows at multiples of 1024.
pub const SOLVE_CHUNK: usize = 1024;

/// What `config.json` records as the data of a model fitted from Python (no file holds it).
pub const ARRAY_SOURCE: &str = "<array passed to fit>";

/// Training settings of [`Model::fit`]; `None` is the `cnf` command's choice for a table of
/// that size (see [`TableDefaults`]).
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// Hidden widths.
    pub hidden: Option<Vec<usize>>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Iterations.
    pub iters: Option<usize>,
    /// Minibatch size.
    pub batch: Option<usize>,
    /// Adam's learning rate.
    pub lr: Option<f64>,
    /// Decoupled weight decay.
    pub weight_decay: Option<f64>,
    /// Validations without improvement before stopping.
    pub patience: Option<usize>,
    /// Validation interval.
    pub val_every: Option<usize>,
    /// The solver (f64, as config.json records it).
    pub solver: SolverSpec<f64>,
    /// Training and evaluation precision.
    pub precision: Precision,
    /// Seed of the split, the initial weights and the minibatches.
    pub seed: u64,
    /// Flow matching (straight paths, independent pairs) instead of maximum likelihood.
    pub flow_matching: bool,
}

/// The `cnf` command's settings for a table of `n_train` training rows and `d` columns
/// (docs/train.md, "Defaults for tables"). The command keeps the same rules in
/// `cnf-cli/src/commands/train.rs`; both move to cnf-train's session.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefaults {
    hidden: Vec<usize>,
    batch: usize,
    lr: f64,
    iters: usize,
    patience: usize,
    val_every: usize,
    weight_decay: f64,
}

impl TableDefaults {
    fn choose(n_train: usize, d: usize) -> Self {
        let width = match d {
            0..=8 => 64,
            9..=32 => 128,
            _ => 256,
        };
        let batch = n_train.clamp(1, 512);
        let epoch = n_train.div_ceil(batch).max(1);
        let small = n_train <= 5_000;
        Self {
            hidden: vec![width; if n_train < 10_000 { 2 } else { 3 }],
            batch,
            lr: 1e-3,
            iters: if small {
                2_000
            } else {
                (20 * epoch).clamp(2_000, 20_000)
            },
            patience: 10,
            val_every: if small { 20 } else { 100 },
            weight_decay: if small { 1e-4 } else { 1e-5 },
        }
    }
}

/// A flow in the precision its config names (chosen once, when the model is built).
#[derive(Debug, Clone)]
enum Flow {
    F32(Cnf<f32, Mlp<f32>>),
    F64(Cnf<f64, Mlp<f64>>),
}

/// A fitted or loaded model: its config.json and its flow.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    flow: Flow,
}

fn chunked<T: Real>(mlp: Mlp<T>, config: &ModelConfig) -> Result<Cnf<T, Mlp<T>>, TrainError> {
    Ok(Cnf::new(mlp, solver_in::<T>(&config.solver)?).with_batching(Batching::Chunks(SOLVE_CHUNK)))
}

impl Model {
    fn from_mlp(config: ModelConfig, mlp: Mlp<f64>) -> Result<Self, TrainError> {
        let flow = match config.precision {
            Precision::F32 => Flow::F32(chunked(mlp.cast::<f32>(), &config)?),
            Precision::F64 => Flow::F64(chunked(mlp, &config)?),
        };
        Ok(Self { config, flow })
    }

    /// The model of a folder the `cnf` command (or [`Model::save`]) wrote.
    ///
    /// # Errors
    /// As `cnf density --model DIR`: a missing or malformed config.json or weights file, or
    /// weights of another architecture.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let dir = ModelDir::new(dir);
        let config = dir.config()?;
        let mlp = dir.load_mlp::<f64>(&config)?;
        Self::from_mlp(config, mlp)
    }

    /// The model of config.json's text and model.safetensors' bytes (pickling).
    ///
    /// # Errors
    /// Malformed or contradictory files, as [`Model::open`].
    pub fn from_bytes(config_json: &str, weights: &[u8]) -> Result<Self, TrainError> {
        let config: ModelConfig =
            serde_json::from_str(config_json).map_err(TrainError::json("config.json"))?;
        config.validate()?;
        let mlp = Mlp::<f64>::from_safetensors_bytes(weights, config.mlp.clone())?;
        Self::from_mlp(config, mlp)
    }

    /// config.json's text and model.safetensors' bytes, as [`Model::save`] writes them.
    ///
    /// # Errors
    /// Serialisation failures (none for a valid model).
    pub fn to_bytes(&self) -> Result<(String, Vec<u8>), TrainError> {
        let json =
            serde_json::to_string_pretty(&self.config).map_err(TrainError::json("config.json"))?;
        let weights = match &self.flow {
            Flow::F32(c) => c.field.to_safetensors_bytes()?,
            Flow::F64(c) => c.field.to_safetensors_bytes()?,
        };
        Ok((json, weights))
    }

    /// Writes config.json and model.safetensors into `dir` (created if needed; locked while
    /// writing; each file written atomically).
    ///
    /// # Errors
    /// I/O failures, or a folder another process is writing into.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(TrainError::io(dir.display()))?;
        let dir = ModelDir::new(dir);
        let _lock = dir.lock()?;
        dir.save_config(&self.config)?;
        match &self.flow {
            Flow::F32(c) => dir.save_weights(&c.field),
            Flow::F64(c) => dir.save_weights(&c.field),
        }
    }

    /// The model's config.json.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Number of columns.
    pub fn dim(&self) -> usize {
        self.config.mlp.dim
    }

    /// Data-space log-densities of the `n` rows of `x` (row-major, `d` columns: the model's
    /// width, else the `cnf density` error), in solves of [`SOLVE_CHUNK`] rows as that command.
    ///
    /// # Errors
    /// A wrong width or a non-finite value, a value beyond the model's precision (all
    /// `TrainError::Invalid`/`Data`), a failed or non-finite solve (`Flow`).
    pub fn log_density(&self, x: Vec<f64>, n: usize, d: usize) -> Result<Vec<f64>, TrainError> {
        let names = if d == self.dim() && self.config.columns.len() == d {
            self.config.columns.clone()
        } else {
            default_names(d)
        };
        let table = Table::new(n, d, x, names)?;
        Ok(match &self.flow {
            Flow::F32(c) => log_density_table(c, &self.config, &table)?.0,
            Flow::F64(c) => log_density_table(c, &self.config, &table)?.0,
        })
    }

    /// `n` samples in data space, row-major: the rows `cnf sample -n N --seed S` writes (base
    /// points from `StdRng::seed_from_u64(seed)` in order, solves of [`SOLVE_CHUNK`] points).
    ///
    /// # Errors
    /// A failed solve, or a sample that is not finite.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f64>, TrainError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let z: Vec<f64> = match &self.flow {
            Flow::F32(c) => to_f64(&c.sample(n, &mut rng)?.points),
            Flow::F64(c) => c.sample(n, &mut rng)?.points,
        };
        let d = self.dim();
        let x = match &self.config.standardizer {
            Some(s) => z.chunks_exact(d).flat_map(|r| s.inverse_row(r)).collect(),
            None => z,
        };
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Invalid(format!(
                "sample {i} is not finite in data space",
                i = i / d
            )));
        }
        Ok(x)
    }

    /// Fits a model to `n` rows of `x` (row-major, `names.len()` columns) as `cnf train --data
    /// TABLE` does: an 80/10/10 split from `seed`, integer-valued columns dequantised, whitened
    /// with the training split's covariance and started at the Gaussian, early stopping on the
    /// validation split's exact NLL; the best model is kept.
    ///
    /// # Errors
    /// Bad input or settings (too few rows, a constant column, a non-finite value), a training
    /// run that diverged.
    pub fn fit(
        x: Vec<f64>,
        n: usize,
        names: Vec<String>,
        s: &FitSettings,
    ) -> Result<Self, TrainError> {
        let d = names.len();
        let table = Table::new(n, d, x, names)?;
        // Too few rows: "X, n_samples = 4: 4 data rows leave 3 for training and 0 for
        // validation; ...: at least 10 rows in all".
        let label = PathBuf::from(format!("X, n_samples = {n}"));
        let (train, val, _test) = table.split_for_training(SPLIT, s.seed, &label)?;
        // As the command: integer-valued columns become x + U(0, 1), fixed per row.
        let ints = integer_columns(&table);
        let train = dequantize(&train, &ints, s.seed)?;
        let val = dequantize(&val, &ints, s.seed.wrapping_add(1))?;
        let whole = dequantize(&table, &ints, s.seed.wrapping_add(2))?;
        let mut standardizer = match Standardizer::fit_whitened(&train, &whole) {
            Err(DataError::SingularCovariance) => Standardizer::fit(&train)?,
            other => other?,
        };
        standardizer.dequantized = ints;
        let auto = TableDefaults::choose(train.n_rows(), d);
        let fm = s.flow_matching.then_some(FlowMatching {
            path: PathSpec::Straight { sigma: 0.0 },
            coupling: Coupling::Independent,
            time: TimeDist::Uniform,
        });
        let config = ModelConfig {
            mlp: MlpConfig::new(d, s.hidden.as_ref().unwrap_or(&auto.hidden), s.activation),
            solver: s.solver.clone(),
            data: DataSource::Table {
                path: PathBuf::from(ARRAY_SOURCE),
                sha256: None,
                columns: None,
                drop: Vec::new(),
                header: Default::default(),
                split: SPLIT,
            },
            seed: s.seed,
            columns: table.names().to_vec(),
            precision: s.precision,
            training: Some(TrainingConfig {
                batch: s.batch.unwrap_or(auto.batch),
                grad: Differentiation::Discretise,
                trace: TraceKind::auto(d),
                lr: s.lr.unwrap_or(auto.lr),
                weight_decay: s.weight_decay.unwrap_or(auto.weight_decay),
                val_every: s.val_every.unwrap_or(auto.val_every),
                iters: Some(s.iters.unwrap_or(auto.iters)),
                patience: s.patience.or(Some(auto.patience)),
                flow_matching: fm,
                regularisers: Default::default(),
            }),
            standardizer: Some(standardizer),
        };
        check_solver_precision(&config.solver, "", config.precision)?;
        config.validate()?;
        let scratch = tempfile::tempdir().map_err(TrainError::io("a temporary model folder"))?;
        let dir = ModelDir::new(scratch.path());
        let mlp = match config.precision {
            Precision::F32 => train_in::<f32>(&dir, &config, &train, &val)?.cast::<f64>(),
            Precision::F64 => train_in::<f64>(&dir, &config, &train, &val)?,
        };
        Self::from_mlp(config, mlp)
    }
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64().unwrap_or(f64::NAN)).collect()
}

/// The training run of [`Model::fit`] in precision `T`, with its checkpoints in `dir`; returns
/// the best model's field.
fn train_in<T: Real + Serialize + DeserializeOwned>(
    dir: &ModelDir,
    config: &ModelConfig,
    train: &Table,
    val: &Table,
) -> Result<Mlp<T>, TrainError> {
    let tr = config
        .training
        .as_ref()
        .ok_or_else(|| TrainError::Invalid("no training settings".into()))?;
    let standardizer = config.standardizer.as_ref();
    let batches = match standardizer {
        Some(s) => s.transform(train)?,
        None => train.clone(),
    };
    let mut mlp = Mlp::<T>::new(config.mlp.clone(), config.seed)?;
    let whitened = standardizer.is_some_and(Standardizer::is_whitened);
    if whitened {
        // Start from the Gaussian: whitened data and a zero field.
        mlp.zero_output();
    }
    let adam = Adam::new(
        mlp.num_params(),
        AdamConfig {
            lr: tr.lr,
            weight_decay: tr.weight_decay,
            ..AdamConfig::default()
        },
    )?;
    let mut trainer: Trainer<'_, T> = Trainer {
        cnf: Cnf::new(mlp, solver_in::<T>(&config.solver)?),
        adam,
        batches: Batches::Table(batches),
        val: to_model_space(config, val)?,
        settings: TrainSettings {
            iters: tr.iters.unwrap_or_default(),
            batch: tr.batch,
            grad: tr.grad,
            trace: tr.trace,
            val_every: tr.val_every,
            seed: config.seed,
            regularisers: tr.regularisers,
        },
        observers: vec![Box::new(Checkpointer::new(
            dir.clone(),
            f64::INFINITY,
            0,
            tr.patience,
        ))],
    };
    if whitened {
        // Validate the start too, so that a run that never beats the Gaussian keeps it.
        let (val_nll, nfe) = mean_nll(&trainer.cnf, &trainer.val)?;
        let ev = ValEvent {
            iter: 0,
            train_nll: val_nll,
            val_nll,
            nfe_fwd: nfe,
            nfe_bwd: 0,
            nfe_val: nfe,
            penalties: Penalties::none(),
            seconds: 0.0,
        };
        for o in &mut trainer.observers {
            o.on_validation(&ev, &trainer.cnf.field, &trainer.adam)?;
        }
    }
    match &tr.flow_matching {
        Some(fm) => trainer.run_with(0, &mut FlowMatchingObjective::new(*fm)?)?,
        None => trainer.run(0)?,
    };
    if dir.path(WEIGHTS_FILE).exists() {
        dir.load_mlp::<T>(config)
    } else {
        // No validation ran (fewer iterations than the interval): the field as trained.
        Ok(trainer.cnf.field)
    }
}
