//! A model folder's flow in the precision chosen at run time: [`AnyModel`] is the one place
//! where f32 and f64 part ways; [`LoadedFlow`] adds the folder's standardisation, so that points
//! go in and come out in data space as f64, row-major.
use std::io::{ErrorKind, Write};

use cnf_field::{Mlp, Real};
use cnf_flow::{Batching, Cnf, FlowError};
use cnf_ode::{cast, SolverSpec, Stats};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::data::Table;
use crate::error::TrainError;
use crate::model::{
    describe_solver, log_density_table_at, solver_in, to_model_space, ModelConfig, ModelDir,
    Precision,
};

/// Points per ODE solve when evaluating and sampling: parallel solves of this many points (each
/// with its own adaptive steps) are ~10x faster than one solve of a whole large batch.
pub const SOLVE_POINTS: usize = 1024;

/// Points per log-density call when a table is streamed through
/// [`LoadedFlow::log_density_chunks`].
pub const DENSITY_CHUNK: usize = 16_384;

/// Points drawn, solved and written at a time by [`LoadedFlow::write_samples`]: a multiple of
/// [`SOLVE_POINTS`], so the solves (and so the samples) are those of one
/// `Cnf::sample(n, rng)` call with `Batching::Chunks(SOLVE_POINTS)`.
pub const STREAM_CHUNK: usize = 64 * SOLVE_POINTS;

/// The flow of a model folder in f32 or f64: the precision is chosen once, here.
#[derive(Debug, Clone)]
pub enum AnyModel {
    /// Single precision.
    F32(Cnf<f32, Mlp<f32>>),
    /// Double precision.
    F64(Cnf<f64, Mlp<f64>>),
}

/// Runs `$body` with `$cnf` bound to the flow in its own precision.
macro_rules! with_cnf {
    ($model:expr, $cnf:ident => $body:expr) => {
        match $model {
            AnyModel::F32($cnf) => $body,
            AnyModel::F64($cnf) => $body,
        }
    };
}

fn to_f64<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect()
}

impl AnyModel {
    /// The weights of `dir` in `precision`, with `solver`, solving [`SOLVE_POINTS`] points at a
    /// time in parallel.
    ///
    /// # Errors
    /// The weights cannot be read or do not match `config`; the solver's tolerances are not
    /// normal numbers in `precision`.
    pub fn load(
        dir: &ModelDir,
        config: &ModelConfig,
        solver: &SolverSpec<f64>,
        precision: Precision,
    ) -> Result<Self, TrainError> {
        let chunks = Batching::Chunks(SOLVE_POINTS);
        Ok(match precision {
            Precision::F32 => Self::F32(dir.load_cnf(config, Some(solver))?.with_batching(chunks)),
            Precision::F64 => Self::F64(dir.load_cnf(config, Some(solver))?.with_batching(chunks)),
        })
    }

    /// The precision the flow runs in.
    pub fn precision(&self) -> Precision {
        match self {
            Self::F32(_) => Precision::F32,
            Self::F64(_) => Precision::F64,
        }
    }

    /// The dimension of the points.
    pub fn dim(&self) -> usize {
        with_cnf!(self, c => c.dim())
    }

    /// The same flow (weights and batching) solving with `solver`.
    ///
    /// # Errors
    /// The solver's tolerances are not normal numbers in the flow's precision.
    pub fn with_solver(&self, solver: &SolverSpec<f64>) -> Result<Self, TrainError> {
        Ok(match self {
            Self::F32(c) => Self::F32(Cnf {
                solver: solver_in(solver)?,
                ..c.clone()
            }),
            Self::F64(c) => Self::F64(Cnf {
                solver: solver_in(solver)?,
                ..c.clone()
            }),
        })
    }
}

/// A model folder's flow loaded for use: data-space points in and out (f64, row-major), the
/// standardisation applied and undone inside.
#[derive(Debug, Clone)]
pub struct LoadedFlow {
    pub(crate) model: AnyModel,
    pub(crate) config: ModelConfig,
    pub(crate) solver: SolverSpec<f64>,
    /// The same flow with the sampling solver (`sampler`).
    pub(crate) sampling: AnyModel,
    pub(crate) sampler: SolverSpec<f64>,
}

/// Receives a part of a table and its data-space log-densities.
pub type DensitySink<'a> = dyn FnMut(&Table, &[f64]) -> Result<(), TrainError> + 'a;

/// What [`LoadedFlow::write_samples`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleReport {
    /// Rows written.
    pub written: usize,
    /// Work of all solves.
    pub stats: Stats,
    /// The reader went away (a closed pipe, e.g. `| head`) before all rows were written.
    pub closed_early: bool,
}

impl LoadedFlow {
    /// The flow of a model held in memory: its config.json (validated here) and the bytes of
    /// its weights file, in the config's precision and solver (as [`AnyModel::load`]).
    ///
    /// # Errors
    /// The config is invalid; the weights cannot be read or do not match its architecture;
    /// the solver's tolerances are not normal numbers in the precision.
    pub fn from_bytes(config: ModelConfig, weights: &[u8]) -> Result<Self, TrainError> {
        config.validate()?;
        let mlp = Mlp::<f64>::from_safetensors_bytes(weights, config.mlp.clone())?;
        let chunks = Batching::Chunks(SOLVE_POINTS);
        let solver = config.solver.clone();
        let sampler = config.sampler.clone().unwrap_or_else(|| solver.clone());
        let model = match config.precision {
            Precision::F32 => AnyModel::F32(
                Cnf::new(mlp.cast::<f32>(), solver_in::<f32>(&solver)?).with_batching(chunks),
            ),
            Precision::F64 => {
                AnyModel::F64(Cnf::new(mlp, solver_in::<f64>(&solver)?).with_batching(chunks))
            }
        };
        Ok(Self {
            sampling: model.with_solver(&sampler)?,
            model,
            config,
            solver,
            sampler,
        })
    }

    /// The bytes of the weights file (safetensors, in the flow's precision).
    ///
    /// # Errors
    /// The weights cannot be serialised.
    pub fn weights_bytes(&self) -> Result<Vec<u8>, TrainError> {
        with_cnf!(&self.model, c => Ok(c.field.to_safetensors_bytes()?))
    }

    /// The flow in its precision.
    pub fn model(&self) -> &AnyModel {
        &self.model
    }
    /// The model folder's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The solver the flow uses (the model's, or the one asked for).
    pub fn solver(&self) -> &SolverSpec<f64> {
        &self.solver
    }
    /// "dopri5 rtol 1e-5 atol 1e-5": the solver in the command line's words.
    pub fn describe_solver(&self) -> String {
        describe_solver(&self.solver)
    }
    /// The solver that samples are drawn with (config.json's `sampler`, else the model's
    /// solver; with the changes asked for).
    pub fn sampler(&self) -> &SolverSpec<f64> {
        &self.sampler
    }
    /// "rk4 with 4 steps graded 1.5": the sampling solver in the command line's words.
    pub fn describe_sampler(&self) -> String {
        describe_solver(&self.sampler)
    }
    /// The precision the flow runs in.
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }
    /// The dimension of the points.
    pub fn dim(&self) -> usize {
        self.config.mlp.dim
    }

    /// The width of the model's context (0: unconditional).
    pub fn context_dim(&self) -> usize {
        self.config.context_dim()
    }

    /// Data-space log-densities of `x` (`(n, d)` row-major, the model's columns in order) under
    /// an unconditional model.
    ///
    /// # Errors
    /// As [`LoadedFlow::log_density_given`]; a conditional model needs its context.
    pub fn log_density(&self, x: &[f64]) -> Result<Vec<f64>, TrainError> {
        self.log_density_given(x, &[])
    }

    /// Data-space conditional log-densities log p(x | c) of `x` (`(n, d)` row-major, the
    /// model's columns in order) given `c` (`(n, k)`, the model's context columns in order;
    /// empty for an unconditional model).
    ///
    /// # Errors
    /// `x` is not a whole number of rows; `c` is not one context row per point (or is given to
    /// an unconditional model); a value overflows the model's precision; a solve fails.
    pub fn log_density_given(&self, x: &[f64], c: &[f64]) -> Result<Vec<f64>, TrainError> {
        let d = self.dim();
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(TrainError::Invalid(format!(
                "{} values are not whole rows of {d} columns",
                x.len()
            )));
        }
        let n = x.len() / d;
        let table = Table::new(n, d, x.to_vec(), self.config.columns.clone())?;
        let table = match &self.config.context {
            None => {
                self.context_table(c)?;
                table
            }
            Some(_) => {
                let context = self.context_table(c)?;
                if context.n_rows() != n {
                    return Err(TrainError::Invalid(format!(
                        "{} context rows for {n} points: give one context row per point",
                        context.n_rows()
                    )));
                }
                table.concat_columns(&context)?
            }
        };
        Ok(self.log_density_table(&table, 0)?.0)
    }

    /// The data-space context rows `c` (`(m, k)` row-major) as a table of the model's context
    /// columns; refused when empty for a conditional model or not empty for an unconditional
    /// one.
    fn context_table(&self, c: &[f64]) -> Result<Table, TrainError> {
        match &self.config.context {
            None if c.is_empty() => Ok(Table::with_default_names(0, 0, Vec::new())?),
            None => Err(TrainError::Invalid(
                "the model is unconditional: it takes no context (given values)".into(),
            )),
            Some(ctx) if c.is_empty() => Err(TrainError::Invalid(format!(
                "the model is conditional on {}: give a context",
                ctx.columns.join(", ")
            ))),
            Some(ctx) => {
                let k = ctx.width();
                if !c.len().is_multiple_of(k) {
                    return Err(TrainError::Invalid(format!(
                        "{} context values are not whole rows of {k} columns ({})",
                        c.len(),
                        ctx.columns.join(", ")
                    )));
                }
                Ok(Table::new(c.len() / k, k, c.to_vec(), ctx.columns.clone())?)
            }
        }
    }

    /// The data-space context rows `c` in model space (standardised); empty for an
    /// unconditional model.
    fn context_model_space(&self, c: &[f64]) -> Result<Vec<f64>, TrainError> {
        let table = self.context_table(c)?;
        match &self.config.context {
            None => Ok(Vec::new()),
            Some(ctx) => ctx.to_model_space::<f64>(&table, 0),
        }
    }

    /// Data-space log-densities of a table in the model's input columns (x, then the context
    /// of a conditional model: log p(x | c)) whose first row is row `first_row` of a larger whole (messages name rows of the whole), with the work done.
    ///
    /// # Errors
    /// As [`LoadedFlow::log_density`].
    pub fn log_density_table(
        &self,
        table: &Table,
        first_row: usize,
    ) -> Result<(Vec<f64>, Stats), TrainError> {
        with_cnf!(&self.model, c => log_density_table_at(c, &self.config, table, first_row))
    }

    /// Log-densities of a table [`DENSITY_CHUNK`] rows at a time, each part handed to `sink`
    /// with its values as soon as it is done; returns the work of all solves.
    ///
    /// # Errors
    /// As [`LoadedFlow::log_density`] (a non-finite result names its row in the whole table),
    /// or what `sink` returns.
    pub fn log_density_chunks(
        &self,
        table: &Table,
        sink: &mut DensitySink<'_>,
    ) -> Result<Stats, TrainError> {
        let mut stats = Stats::default();
        let rows: Vec<usize> = (0..table.n_rows()).collect();
        for (k, idx) in rows.chunks(DENSITY_CHUNK).enumerate() {
            let part = table.select_rows(idx);
            let first = k * DENSITY_CHUNK;
            let (lp, st) = self.log_density_table(&part, first).map_err(|e| match e {
                TrainError::Flow(FlowError::NonFiniteOutput {
                    sample,
                    quantity,
                    precision,
                }) => TrainError::Flow(FlowError::NonFiniteOutput {
                    sample: sample + first,
                    quantity,
                    precision,
                }),
                other => other,
            })?;
            stats += st;
            sink(&part, &lp)?;
        }
        Ok(stats)
    }

    /// Number of ODE solves [`LoadedFlow::log_density_chunks`] makes for `n` points.
    pub fn solves_for(n: usize) -> usize {
        (0..n)
            .step_by(DENSITY_CHUNK)
            .map(|start| (n - start).min(DENSITY_CHUNK).div_ceil(SOLVE_POINTS))
            .sum()
    }

    /// `n` samples in model space for each row of the model-space context `given` (empty for
    /// an unconditional model) drawn with `rng`, as f64.
    fn sample_model_space(
        &self,
        n: usize,
        given: &[f64],
        rng: &mut StdRng,
    ) -> Result<Vec<f64>, TrainError> {
        with_cnf!(&self.sampling, c => {
            let given: Vec<_> = given.iter().map(|&v| cast(v)).collect();
            Ok(to_f64(&c.sample_given(&given, n, rng)?.points))
        })
    }

    /// Model-space points (f64, row-major) back in data space; row `r` was drawn given the
    /// model-space context row `r / n` of `given` (empty for an unconditional model).
    fn to_data_space(&self, z: Vec<f64>, given: &[f64], n: usize) -> Vec<f64> {
        let k = self.config.context_dim();
        if self.config.standardizer.is_none() && k == 0 {
            return z;
        }
        z.chunks(self.dim().max(1))
            .enumerate()
            .flat_map(|(r, row)| {
                let c = match k {
                    0 => &[][..],
                    k => &given[(r / n.max(1)) * k..][..k],
                };
                self.config.to_data_row(row, c)
            })
            .collect()
    }

    /// `n` samples in data space (`(n, d)` row-major) drawn with `rng`: base points z ~ N(0, I)
    /// moved from t = 1 to t = 0, standardisation undone.
    ///
    /// # Errors
    /// A solve fails.
    pub fn sample_with(&self, n: usize, rng: &mut StdRng) -> Result<Vec<f64>, TrainError> {
        self.sample_given_with(n, &[], rng)
    }

    /// `n` data-space samples for each row of `given` (`(m, k)` row-major, data space, the
    /// model's context columns in order; empty for an unconditional model) drawn with `rng`:
    /// `(m n, d)`, draw `j` of given row `i` at row `i n + j`.
    ///
    /// # Errors
    /// `given` is not whole context rows (or is given to an unconditional model, or missing
    /// for a conditional one); a solve fails.
    pub fn sample_given_with(
        &self,
        n: usize,
        given: &[f64],
        rng: &mut StdRng,
    ) -> Result<Vec<f64>, TrainError> {
        let given = self.context_model_space(given)?;
        let z = self.sample_model_space(n, &given, rng)?;
        Ok(self.to_data_space(z, &given, n))
    }

    /// [`LoadedFlow::sample_given_with`] from `StdRng::seed_from_u64(seed)`.
    ///
    /// # Errors
    /// As [`LoadedFlow::sample_given_with`].
    pub fn sample_given(&self, n: usize, seed: u64, given: &[f64]) -> Result<Vec<f64>, TrainError> {
        self.sample_given_with(n, given, &mut StdRng::seed_from_u64(seed))
    }

    /// `n` samples in data space from `StdRng::seed_from_u64(seed)`; see
    /// [`LoadedFlow::sample_with`].
    ///
    /// # Errors
    /// A solve fails.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f64>, TrainError> {
        self.sample_with(n, &mut StdRng::seed_from_u64(seed))
    }

    /// Paths of points from t = 0 to 1 at `times` (0 first, 1 last): one data-space `(n, d)`
    /// buffer per time. The paths start at `starts` (data space) or, without them, at `n`
    /// samples drawn with `rng`. One solve with each method's continuous extension between
    /// its steps.
    ///
    /// # Errors
    /// A start overflows the model's precision; the times are not increasing; a solve fails.
    pub fn trajectories(
        &self,
        starts: Option<&[f64]>,
        n: usize,
        rng: &mut StdRng,
        times: &[f64],
    ) -> Result<Vec<Vec<f64>>, TrainError> {
        let d = self.dim();
        let starts: Vec<f64> = match starts {
            Some(x) => {
                let t = Table::with_default_names(x.len() / d.max(1), d, x.to_vec())?;
                to_model_space::<f64>(&self.config, &t)?
            }
            None => self.sample_model_space(n, &self.context_model_space(&[])?, rng)?,
        };
        let paths: Vec<Vec<f64>> = with_cnf!(&self.model, c => {
            let x: Vec<_> = starts.iter().map(|&v| cast(v)).collect();
            let t: Vec<_> = times.iter().map(|&v| cast(v)).collect();
            c.trajectory(&x, &t)?.points.iter().map(|p| to_f64(p)).collect()
        });
        Ok(paths
            .into_iter()
            .map(|p| self.to_data_space(p, &[], 1))
            .collect())
    }

    /// Draws `n` samples from `seed` and writes them as CSV (a header with the model's column
    /// names, then one data-space row per sample) to `out`, [`STREAM_CHUNK`] points at a time,
    /// so memory does not grow with `n`. The rows are exactly those of [`LoadedFlow::sample`]
    /// with the same seed. Values are written in the model's precision (the shortest text
    /// that reads back to the same number), or as f64 when the model was trained on
    /// standardised data (then `z * std + mean` is computed in f64). A reader that goes away
    /// (a closed pipe) ends the output quietly.
    ///
    /// # Errors
    /// A solve fails; a sample is not finite; writing fails other than by a closed pipe.
    pub fn write_samples<W: Write>(
        &self,
        n: usize,
        seed: u64,
        out: &mut W,
    ) -> Result<SampleReport, TrainError> {
        self.write_samples_given(n, seed, &[], out)
    }

    /// [`LoadedFlow::write_samples`] of a conditional model: `n` draws for each row of `given`
    /// (`(m, k)` row-major, data space, the model's context columns in order), the rows those of
    /// [`LoadedFlow::sample_given`] with the same seed. With several given rows, a first column
    /// [`GIVEN_ROW`] holds the index (from 0) of the given row each draw belongs to.
    ///
    /// # Errors
    /// As [`LoadedFlow::write_samples`]; `given` is not whole context rows (or is given to an
    /// unconditional model, or missing for a conditional one).
    pub fn write_samples_given<W: Write>(
        &self,
        n: usize,
        seed: u64,
        given: &[f64],
        out: &mut W,
    ) -> Result<SampleReport, TrainError> {
        let given = self.context_model_space(given)?;
        with_cnf!(&self.sampling, c => write_samples(c, &self.config, n, seed, &given, out))
    }
}

/// The name of the index column of samples drawn for several given rows.
pub const GIVEN_ROW: &str = "given_row";

/// Column names of the samples: the model's, or x0, x1, ... when it recorded none.
fn column_names(config: &ModelConfig) -> Vec<String> {
    let d = config.mlp.dim;
    if config.columns.len() == d {
        config.columns.clone()
    } else {
        (0..d).map(|i| format!("x{i}")).collect()
    }
}

/// `n` draws for each row of `given` (model space, `(m, k)`; empty for an unconditional
/// model, which counts as one row) written as CSV. The context is cast to the model's
/// precision for the solve only: the map back to data space shifts by the f64 context, as
/// [`LoadedFlow::sample_given`] does, so both give the same rows in f32 as well.
fn write_samples<T: Real, W: Write>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    n: usize,
    seed: u64,
    given: &[f64],
    out: &mut W,
) -> Result<SampleReport, TrainError> {
    let d = config.mlp.dim;
    let k = config.context_dim();
    // No context (k = 0) counts as one given row.
    let given_rows = given.len().checked_div(k).unwrap_or(1);
    let total = given_rows.checked_mul(n).ok_or_else(|| {
        TrainError::Invalid(format!(
            "{n} draws for each of {given_rows} given rows overflow"
        ))
    })?;
    let indexed = given_rows > 1;
    if cnf.dim() != d || d == 0 {
        return Err(TrainError::Invalid(format!(
            "the model's field has {} dimensions, its config {d}",
            cnf.dim()
        )));
    }
    if let Some(s) = &config.standardizer {
        if s.mean.len() != d || s.std.len() != d {
            return Err(TrainError::Invalid(format!(
                "the standardisation has {} means and {} scales for {d} dimensions",
                s.mean.len(),
                s.std.len()
            )));
        }
    }
    let mut report = SampleReport::default();
    // A closed pipe ends the output quietly (false); any other write error is reported.
    let io = |r: std::io::Result<()>| -> Result<bool, TrainError> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(TrainError::io("writing the samples")(e)),
        }
    };
    if !io(out.write_all(&csv_header(config, indexed)?))? {
        report.closed_early = true;
        return Ok(report);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut context = Vec::new();
    let mut context_f64 = Vec::new();
    while report.written < total {
        let m = (total - report.written).min(STREAM_CHUNK);
        let z: Vec<T> = (0..m * d)
            .map(|_| cast::<T>(Distribution::<f64>::sample(&StandardNormal, &mut rng)))
            .collect();
        let offset = report.written;
        // Row r draws given row r / n (as `Cnf::sample_given` lays its rows out).
        context_f64.clear();
        if k > 0 {
            for r in offset..offset + m {
                context_f64.extend_from_slice(&given[(r / n) * k..][..k]);
            }
        }
        context.clear();
        context.extend(context_f64.iter().map(|&v| cast::<T>(v)));
        // The solves of SOLVE_POINTS rows (the flow's batching, so the rows are those of one
        // `sample` call) run in parallel, each writing its rows as CSV text after it: the text
        // of one block is formatted while others solve.
        let blocks: Vec<Result<CsvBlock, TrainError>> = z
            .par_chunks(SOLVE_POINTS * d)
            .enumerate()
            .map(|(b, zb)| {
                let (r0, rows) = (b * SOLVE_POINTS, zb.len() / d);
                let moved = cnf
                    .transform_given(zb, &context[r0 * k..(r0 + rows) * k], T::one(), T::zero())
                    .map_err(|e| match e {
                        // Name the sample by its index in the whole draw, not in this block.
                        FlowError::Solve {
                            sample: Some(i),
                            t,
                            message,
                            stats,
                        } => FlowError::Solve {
                            sample: Some(i + offset + r0),
                            t,
                            message,
                            stats,
                        },
                        other => other,
                    })?;
                let rows_at = RowsAt {
                    first: offset + r0,
                    draws_per_given: n,
                    indexed,
                };
                let context = &context_f64[r0 * k..(r0 + rows) * k];
                let text = csv_rows(config, &moved.points, context, &rows_at)?;
                Ok((text, rows, moved.stats))
            })
            .collect();
        for block in blocks {
            let (text, rows, stats) = block?;
            report.stats += stats;
            if !io(out.write_all(&text))? {
                report.closed_early = true;
                return Ok(report);
            }
            report.written += rows;
        }
    }
    if !io(out.flush())? {
        report.closed_early = true;
    }
    Ok(report)
}

/// A block of sample rows as CSV text, its number of rows and the work of its solve.
type CsvBlock = (Vec<u8>, usize, Stats);

/// The header line of the samples' CSV, through the csv crate (names with commas or quotes
/// are quoted).
fn csv_header(config: &ModelConfig, indexed: bool) -> Result<Vec<u8>, TrainError> {
    let header = indexed
        .then(|| GIVEN_ROW.to_string())
        .into_iter()
        .chain(column_names(config));
    let mut w = csv::Writer::from_writer(Vec::new());
    let invalid = |e: String| TrainError::Invalid(format!("writing the samples' header: {e}"));
    w.write_record(header).map_err(|e| invalid(e.to_string()))?;
    w.into_inner().map_err(|e| invalid(e.to_string()))
}

/// Where a block of sample rows sits in the whole draw.
struct RowsAt {
    /// Index of the block's first row.
    first: usize,
    /// Draws per given row (row r draws given row r / this).
    draws_per_given: usize,
    /// Whether a first column holds the given row's index.
    indexed: bool,
}

/// Model-space `points (rows, d)` as CSV lines in data space (whitening and the context's shift
/// undone when the model was standardised, in f64): the shortest text that reads back to each
/// number (numbers never need quoting).
///
/// # Errors
/// A sample is not finite (named by its index in the whole draw).
fn csv_rows<T: Real>(
    config: &ModelConfig,
    points: &[T],
    context: &[f64],
    at: &RowsAt,
) -> Result<Vec<u8>, TrainError> {
    use std::io::Write as _;
    let (d, k) = (config.mlp.dim, config.context_dim());
    let mut text = Vec::with_capacity(points.len() * 12);
    for (i, row) in points.chunks_exact(d).enumerate() {
        let sample = at.first + i;
        let non_finite = || FlowError::NonFiniteOutput {
            sample,
            quantity: "sample",
            precision: T::NAME,
        };
        if at.indexed {
            // Writing to a Vec cannot fail.
            let _ = write!(text, "{},", sample / at.draws_per_given);
        }
        let data = config
            .standardizer
            .as_ref()
            .map(|_| config.to_data_row(&to_f64(row), &context[i * k..][..k]));
        for j in 0..d {
            let ok = match &data {
                Some(x) => x[j].is_finite() && write!(text, "{}", x[j]).is_ok(),
                None => row[j].is_finite() && write!(text, "{}", row[j]).is_ok(),
            };
            if !ok {
                return Err(non_finite().into());
            }
            text.push(if j + 1 == d { b'\n' } else { b',' });
        }
    }
    Ok(text)
}
