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

    /// The context columns of a conditional model (empty for an unconditional one).
    pub fn context_columns(&self) -> &[String] {
        self.config().context.as_ref().map_or(&[], |c| &c.columns)
    }

    /// The rows of `context` as a table of the model's context columns (None for an
    /// unconditional model); refused when missing for a conditional model, given to an
    /// unconditional one, of another width, or, when scoring `points` points, not one row per
    /// point (sampling passes None: it draws for every row). A column far outside the
    /// training range adds the `cnf` command's warning to `warnings`.
    fn context_table(
        &self,
        context: Option<Rows>,
        points: Option<usize>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Table>, TrainError> {
        let (c, ctx) = match (context, &self.config().context) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(TrainError::Invalid(
                    "the model is unconditional: it takes no context".into(),
                ))
            }
            (None, Some(ctx)) => {
                return Err(TrainError::Invalid(format!(
                    "the model is conditional on {}: give a context",
                    ctx.columns.join(", ")
                )))
            }
            (Some(c), Some(ctx)) => (c, ctx),
        };
        if c.width != ctx.width() {
            return Err(TrainError::Invalid(format!(
                "the context has {} columns, the model is conditioned on {} ({})",
                c.width,
                ctx.width(),
                ctx.columns.join(", ")
            )));
        }
        if let Some(n) = points.filter(|&n| n != c.n) {
            return Err(TrainError::Invalid(format!(
                "{} context rows for {n} points: give one context row per point",
                c.n
            )));
        }
        let table = Table::new(c.n, c.width, c.data, ctx.columns.clone())?;
        // The command prints these on stderr with a "warning: " prefix; Python's warnings
        // module names the category itself.
        warnings.extend(
            ctx.far_outside(&table)
                .into_iter()
                .map(|w| w.strip_prefix("warning: ").unwrap_or(&w).to_string()),
        );
        Ok(Some(table))
    }

    /// Data-space log-densities of the rows of `x` (the model's width, else the `cnf density`
    /// error), given one row of `context` per point for a conditional model (log p(x | c)),
    /// in solves of [`SOLVE_CHUNK`] rows as that command. A context column far outside the
    /// training range adds that command's warning to `warnings`.
    ///
    /// # Errors
    /// A wrong width or a non-finite value, a value beyond the model's precision, a context
    /// missing, unexpected or of the wrong shape (all `TrainError::Invalid`/`Data`), a failed
    /// or non-finite solve (`Flow`).
    pub fn log_density(
        &self,
        x: Rows,
        context: Option<Rows>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<f64>, TrainError> {
        let d = self.dim();
        if x.width != d {
            return Err(TrainError::Invalid(format!(
                "the data has {} columns, the model expects {d}",
                x.width
            )));
        }
        let columns = &self.config().columns;
        let names = if columns.len() == d {
            columns.clone()
        } else {
            default_names(d)
        };
        let n = x.n;
        let table = Table::new(n, d, x.data, names)?;
        let table = match self.context_table(context, Some(n), warnings)? {
            Some(c) => table.concat_columns(&c)?,
            None => table,
        };
        Ok(self.flow.log_density_table(&table, 0)?.0)
    }

    /// `n` samples in data space, row-major: the rows `cnf sample -n N --seed S` writes. A
    /// conditional model draws `n` samples for each row `i` of `context`, draw `j` at row
    /// `i n + j` (as `cnf sample --given FILE` orders them). A context column far outside the
    /// training range adds that command's warning to `warnings`.
    ///
    /// # Errors
    /// A context missing, unexpected or of the wrong width; more samples than memory can
    /// address; a failed solve, or a sample that is not finite.
    pub fn sample(
        &self,
        n: usize,
        seed: u64,
        context: Option<Rows>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<f64>, TrainError> {
        let given = self
            .context_table(context, None, warnings)?
            .map_or_else(Vec::new, Table::into_data);
        let rows = (given.len() / self.context_columns().len().max(1)).max(1);
        if rows
            .checked_mul(n)
            .and_then(|m| m.checked_mul(self.dim()))
            .is_none()
        {
            return Err(TrainError::Invalid(format!(
                "{n} samples for each of {rows} context rows do not fit in memory addresses"
            )));
        }
        let x = self.flow.sample_given(n, seed, &given)?;
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::Invalid(format!(
                "sample {} is not finite in data space",
                i / self.dim().max(1)
            )));
        }
        Ok(x)
    }

    /// Fits a model to the rows of `x` (named `names`) as `cnf train --data TABLE` does, with
    /// its settings for a table of that size where `options` leaves them open; with a
    /// `context` (one row per row of `x`, named `context_names`), the conditional density
    /// p(x | c) as `cnf train --context`. The run's folder is a temporary one, and the best
    /// model is kept.
    ///
    /// # Errors
    /// Bad input or settings (too few rows, a constant column, a non-finite value, a context
    /// of another number of rows, a name both a data and a context column), a training run
    /// that diverged.
    pub fn fit(
        x: Rows,
        names: Vec<String>,
        context: Option<(Rows, Vec<String>)>,
        mut options: TrainOptions,
    ) -> Result<Self, TrainError> {
        let n = x.n;
        let mut table = Table::new(n, x.width, x.data, names)?;
        if let Some((c, context_names)) = context {
            if c.n != n {
                return Err(TrainError::Invalid(format!(
                    "{} context rows for {n} data rows: give one context row per row",
                    c.n
                )));
            }
            if let Some(both) = table.names().iter().find(|n| context_names.contains(n)) {
                return Err(TrainError::Invalid(format!(
                    "column {both:?} is both a data column and a context column"
                )));
            }
            let c = Table::new(c.n, c.width, c.data, context_names.clone())?;
            table = table.concat_columns(&c)?;
            options.context = Some(context_names);
        }
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
        let plan = RunPlan::from_table(&table, source, &label, &options, scratch.path().into())?;
        let mut session = Session::start(plan, false)?;
        session.train(Vec::new())?;
        let flow = session.flow(&EvalOptions::default())?;
        Ok(Self { flow })
    }
}

/// The rows (indices from 0) that [`Model::fit`] trains on, validates on and holds out for `n`
/// rows and `seed`: the `cnf train --data TABLE` split ([`SPLIT`]), so that a peer can be
/// trained and compared on the same rows.
///
/// # Errors
/// None for `n` below 2^53 (an index column is split as the table would be).
pub fn split_rows(n: usize, seed: u64) -> Result<[Vec<usize>; 3], TrainError> {
    // Row indices below 2^53 are exact as f64.
    let index = Table::new(n, 1, (0..n).map(|i| i as f64).collect(), vec!["row".into()])?;
    let (train, val, test) = index.split(SPLIT, seed)?;
    Ok([train, val, test].map(|t| t.data().iter().map(|&i| i as usize).collect()))
}

/// `n` rows of `width` values, row-major (a C-ordered 2-D array's buffer).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The values, `n * width` of them.
    pub data: Vec<f64>,
    /// Number of rows.
    pub n: usize,
    /// Values per row.
    pub width: usize,
}
