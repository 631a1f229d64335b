//! The training session: a model folder opened or created, its data prepared, trained (new or
//! resumed) with observers, and the read-side operations on it (log-densities, samples,
//! evaluation, trajectories). The precision is chosen once ([`AnyModel`]); points go in and come
//! out as f64 slices, row-major, in data space; every failure is a [`TrainError`]. The `cnf`
//! command maps its arguments onto this type; bindings to other languages call the same.
//!
//! ```
//! use cnf_train::session::{EvalOptions, RunPlan, Session, TrainOptions};
//! use cnf_train::model::DataSource;
//!
//! let dir = tempfile::tempdir()?;
//! let data = DataSource::from_name("8gaussians", None)?;
//! let options = TrainOptions {
//!     hidden: Some(vec![16]),
//!     iters: Some(4),
//!     batch: Some(32),
//!     val_every: Some(2),
//!     ..TrainOptions::default()
//! };
//! let plan = RunPlan::new(data, &options, Some(dir.path().join("run")))?;
//! let mut session = Session::start(plan, false)?;
//! let summary = session.train(Vec::new())?;
//! assert_eq!(summary.iterations, 4);
//!
//! // The folder is a model: open it again and use it (data space, f64, row-major).
//! let session = Session::open(dir.path().join("run"))?;
//! let flow = session.flow(&EvalOptions::default())?;
//! let logp = flow.log_density(&[0.0, 0.0, 2.0, 0.0])?;
//! assert_eq!(logp.len(), 2);
//! let x = flow.sample(3, 0)?;
//! assert_eq!(x.len(), 3 * 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
mod any_model;
mod eval;
mod points;
mod prepare;
mod train;

use std::path::{Path, PathBuf};

use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
use cnf_ode::{SolverSpec, StepSizing, Tolerance};

pub use any_model::{
    AnyModel, DensitySink, LoadedFlow, SampleReport, DENSITY_CHUNK, GIVEN_ROW, SOLVE_POINTS,
    STREAM_CHUNK,
};
pub use cnf_ode::Stats;
pub use eval::Evaluation;
pub use points::is_npy;
pub use prepare::TableDefaults;
pub use train::TrainSummary;

use crate::data::{Table, ToySet};
use crate::error::TrainError;
use crate::fm::FlowMatching;
use crate::model::{
    conditional_sampler, default_solver, file_sha256, solver_error, DataSource, FolderLock, Method,
    ModelConfig, ModelDir, Precision,
};
use crate::observers::checkpoint_iter;
use crate::optim::LrSchedule;
use crate::trainer::{Differentiation, Regularisers, TraceKind};
use prepare::Prepared;

/// Hidden widths of a new model on a toy set unless given.
pub const DEFAULT_HIDDEN: [usize; 3] = [64, 64, 64];
/// Adam's learning rate unless given (the peers' protocol).
pub const DEFAULT_LR: f64 = 1e-3;
/// Minibatch size unless given.
pub const DEFAULT_BATCH: usize = 512;
/// Validation interval unless given (toy sets).
pub const DEFAULT_VAL_EVERY: usize = 100;
/// Iterations unless given (toy sets).
pub const DEFAULT_ITERS: usize = 1000;
/// Iterations of flow matching on a toy set unless given: a flow-matching iteration (no ODE
/// solve) costs about 1/25 of a maximum-likelihood one, and 10k of them reach maximum
/// likelihood's test NLL on 8gaussians to about 0.01 nats (docs/flow_matching.md).
pub const DEFAULT_ITERS_FM: usize = 10_000;
/// Validation interval of flow matching on a toy set unless given (10 exact-NLL validations, as
/// for maximum likelihood's 1000 iterations).
pub const DEFAULT_VAL_EVERY_FM: usize = 1000;

/// Changes to a model's solver. `method` starts from the method's own defaults (its
/// controller, and fixed steps only with `steps`); tolerances not given are the base's (or the
/// default solver's when the base has fixed steps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SolverOverrides {
    /// Another Runge-Kutta method.
    pub method: Option<Method>,
    /// Fixed steps per solve.
    pub steps: Option<usize>,
    /// Relative tolerance of adaptive methods.
    pub rtol: Option<f64>,
    /// Absolute tolerance of adaptive methods.
    pub atol: Option<f64>,
    /// Per-sample error norm (`false`: the batch RMS).
    pub per_sample_norm: Option<bool>,
    /// Grading of fixed steps ([`cnf_ode::SolverSpecBuilder::graded`]; 1: equal steps).
    pub grading: Option<f64>,
}

impl SolverOverrides {
    /// `base` with these changes, validated once by `SolverSpec`'s builder; messages name the
    /// command line's flags ("rk4 is a fixed-step method: give --steps").
    ///
    /// # Errors
    /// The resulting solver is invalid (a fixed-step method without steps, a bad tolerance).
    pub fn apply(&self, base: &SolverSpec<f64>) -> Result<SolverSpec<f64>, TrainError> {
        let method = self.method.unwrap_or(base.method());
        let tolerances = |s: &SolverSpec<f64>| match s.steps() {
            StepSizing::Adaptive { rtol, atol } => Some((rtol.clone(), atol.clone())),
            StepSizing::Fixed(_) => None,
        };
        let (rtol, atol) = tolerances(base)
            .or_else(|| tolerances(&default_solver()))
            .unwrap_or((Tolerance::Scalar(1e-5), Tolerance::Scalar(1e-5)));
        let mut b = SolverSpec::builder(method)
            .max_steps(base.max_steps())
            .per_sample_norm(self.per_sample_norm.unwrap_or(base.per_sample_norm()))
            .rtol(self.rtol.map_or(rtol, Tolerance::Scalar))
            .atol(self.atol.map_or(atol, Tolerance::Scalar));
        if let (None, Some(c)) = (self.method, base.explicit_controller()) {
            b = b.controller(c);
        }
        // The base's grading goes with the base's steps; new steps are equal unless graded.
        let (steps, grading) = match (self.method, self.steps) {
            (None, None) => (base.fixed_steps(), base.grading()),
            (_, steps) => (steps, 1.0),
        };
        if let Some(n) = steps {
            b = b.fixed_steps(n);
        }
        b = b.graded(self.grading.unwrap_or(grading));
        b.build().map_err(|e| solver_error(e, "--"))
    }
}

/// How a session's flow is loaded for use: the model's solver with changes, in the model's
/// precision unless another is asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOptions {
    /// Changes to the model's solver. Any change also replaces a model's sampling solver
    /// (config.json's `sampler`): samples are then drawn with the changed model solver.
    pub solver: SolverOverrides,
    /// The precision to run in (None: the model's).
    pub precision: Option<Precision>,
}

/// The trace of a new run's training loss: automatic (exact up to
/// [`crate::trainer::EXACT_TRACE_MAX_DIM`] dimensions) or a given estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceSetting {
    /// [`TraceKind::auto`] of the data's dimension.
    Auto,
    /// This estimator.
    Kind(TraceKind),
}

impl TraceSetting {
    /// The estimator for `dim` dimensions.
    pub fn kind(self, dim: usize) -> TraceKind {
        match self {
            Self::Auto => TraceKind::auto(dim),
            Self::Kind(k) => k,
        }
    }
}

/// Whether a run trains by flow matching when no objective is asked for: a conditional run
/// does (straight path, independent pairs; docs/sbi.md, "Defaults of conditional runs"), an
/// unconditional one trains by maximum likelihood. The command line and the Python package
/// both ask this one rule.
pub fn flow_matching_by_default(conditional: bool) -> bool {
    conditional
}

/// Settings of a new run; `None` (or the default) leaves a setting to the session, which
/// chooses from the data ([`TableDefaults`] for tables, the objective's protocol for toy
/// sets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainOptions {
    /// Seed of initialisation, split, batches and probes (default 0).
    pub seed: Option<u64>,
    /// Hidden widths.
    pub hidden: Option<Vec<usize>>,
    /// Nonlinearity (default tanh).
    pub activation: Option<Activation>,
    /// Changes to the default solver (Dopri5, rtol = atol = 1e-5).
    pub solver: SolverOverrides,
    /// Minibatch size.
    pub batch: Option<usize>,
    /// Adam's learning rate.
    pub lr: Option<f64>,
    /// How the learning rate changes over the run.
    pub lr_schedule: Option<LrSchedule>,
    /// Decoupled weight decay.
    pub weight_decay: Option<f64>,
    /// Decay of the moving average of the weights that is validated and kept (0: none).
    pub ema_decay: Option<f64>,
    /// Trace of the training loss.
    pub trace: Option<TraceSetting>,
    /// Iterations.
    pub iters: Option<usize>,
    /// Validation interval.
    pub val_every: Option<usize>,
    /// Early stopping after this many validations without improvement.
    pub patience: Option<usize>,
    /// Gradient method (default backprop).
    pub grad: Option<Differentiation<f64>>,
    /// Train by flow matching with these settings (None: maximum likelihood).
    pub flow_matching: Option<FlowMatching>,
    /// RNODE's regularisers and STEER (maximum likelihood).
    pub regularisers: Regularisers,
    /// Precision (default f32).
    pub precision: Option<Precision>,
    /// Context columns of a table, by name: the run trains the conditional density p(x | c)
    /// of the other columns (or those the data source selects) given these. None or empty:
    /// an unconditional run.
    pub context: Option<Vec<String>>,
}

/// What may change when a run is resumed; everything else is the run's config.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeOptions {
    /// The run's data, given again as [`DataSource::from_name`] takes it (a toy set by name, a
    /// table file recognised by content: it may have moved). None: what config.json records.
    pub data: Option<String>,
    /// Total iterations to reach.
    pub iters: Option<usize>,
    /// A new learning rate (replacing the checkpoint's).
    pub lr: Option<f64>,
    /// A new patience.
    pub patience: Option<usize>,
}

/// A run ready to start: its folder, config and prepared data, checked before anything is
/// written. [`RunPlan::notes`] and [`RunPlan::settings`] say what was found and chosen.
pub struct RunPlan {
    dir: ModelDir,
    config: ModelConfig,
    prepared: Prepared,
    settings: Option<String>,
    resume: Option<ResumeOptions>,
}

impl RunPlan {
    /// A new run on `data` with `options`, into `out` (default: the first of `runs/NAME`,
    /// `runs/NAME-2`, ... that holds no run, NAME the data's).
    ///
    /// # Errors
    /// The data cannot be read or prepared; a setting is invalid.
    pub fn new(
        data: DataSource,
        options: &TrainOptions,
        out: Option<PathBuf>,
    ) -> Result<Self, TrainError> {
        let context = options.context.clone().unwrap_or_default();
        let data = match context.is_empty() {
            true => data,
            false => prepare::with_context(data, &context)?,
        };
        let prep = prepare::prepare(&data, options.seed.unwrap_or(0), &context)?;
        let out = out.unwrap_or_else(|| default_out(&prep.name));
        Self::of_prepared(prep, options, out)
    }

    /// A new run on a table held in memory (bindings fit arrays no file holds), into `out`:
    /// prepared as a table file is; `source` is what config.json records as the data (a
    /// [`DataSource::Table`], its split used, a conditional run's as `cnf train --context`
    /// chooses it) and `label` names the table in messages. With `options.context`, the table's
    /// last columns (named so) are the context of a conditional run.
    ///
    /// # Errors
    /// `source` is not a table; the table is too small to split or cannot be standardised (a
    /// constant column); the context columns are not the table's last ones; a setting is
    /// invalid.
    pub fn from_table(
        table: &Table,
        mut source: DataSource,
        label: &Path,
        options: &TrainOptions,
        out: PathBuf,
    ) -> Result<Self, TrainError> {
        let context = options.context.as_deref().unwrap_or_default();
        let DataSource::Table { split, .. } = &mut source else {
            return Err(TrainError::Invalid(format!(
                "a table held in memory is recorded as a table, not as {}",
                source.describe()
            )));
        };
        *split = prepare::split_of_new_run(*split, !context.is_empty());
        let split = *split;
        let seed = options.seed.unwrap_or(0);
        let prep =
            prepare::prepare_table(table, source, split, seed, label, "data".into(), context)?;
        Self::of_prepared(prep, options, out)
    }

    /// A new run on prepared data with `options`, into `out`.
    fn of_prepared(
        mut prep: Prepared,
        options: &TrainOptions,
        out: PathBuf,
    ) -> Result<Self, TrainError> {
        let seed = options.seed.unwrap_or(0);
        let dir = ModelDir::new(out);
        let dim = prep.columns.len();
        let k = prep.context.as_ref().map_or(0, |c| c.columns.len());
        let mut flow_matching = options.flow_matching;
        if let Some(fm) = flow_matching.as_mut().filter(|_| k > 0) {
            if fm.coupling != crate::fm::Coupling::Independent {
                // A minibatch OT plan would pair each point's base draw with points of other
                // contexts, so the draws given one context would no longer be N(0, I).
                prep.notes.push(format!(
                    "note: the {} coupling pairs points across contexts; a conditional run \
                     pairs independently instead (contexts are continuous: no two rows share \
                     one)",
                    fm.coupling.name()
                ));
                fm.coupling = crate::fm::Coupling::Independent;
            }
        }
        let mut settings = None;
        let auto = prep.n_train.map(|n| {
            let a = match flow_matching {
                Some(_) if k > 0 => TableDefaults::conditional_flow_matching(n, dim),
                _ => TableDefaults::choose(n, dim),
            };
            let start = if prep.context.as_ref().is_some_and(|c| c.shift.is_some()) {
                prepare::Start::WhitenedGivenContext
            } else if prep.standardizer.as_ref().is_some_and(|s| s.is_whitened()) {
                prepare::Start::Whitened
            } else {
                prepare::Start::Standardised
            };
            settings = Some(a.describe(n, dim, start, options));
            a
        });
        let hidden = match (&options.hidden, &auto) {
            (Some(h), _) => h.clone(),
            (None, Some(a)) => a.hidden.clone(),
            (None, None) => DEFAULT_HIDDEN.to_vec(),
        };
        // Toy sets: each objective's own protocol (tables choose from their size).
        let (toy_iters, toy_val_every) = if options.flow_matching.is_some() {
            (DEFAULT_ITERS_FM, DEFAULT_VAL_EVERY_FM)
        } else {
            (DEFAULT_ITERS, DEFAULT_VAL_EVERY)
        };
        let pick = |given: Option<usize>, table: fn(&TableDefaults) -> usize, toy: usize| {
            given.unwrap_or(auto.as_ref().map_or(toy, table))
        };
        let config = ModelConfig {
            mlp: MlpConfig::new(dim, &hidden, options.activation.unwrap_or(Activation::Tanh))
                .with_context(k),
            solver: options.solver.apply(&default_solver())?,
            // A conditional flow-matching run samples with fewer evaluations unless a solver
            // is given (docs/sbi.md, "Defaults of conditional runs").
            sampler: (auto.as_ref().is_some_and(|a| a.conditional_flow_matching)
                && options.solver == SolverOverrides::default())
            .then(conditional_sampler),
            standardizer: prep.standardizer.clone(),
            data: prep.source.clone(),
            seed,
            columns: prep.columns.clone(),
            context: prep.context.clone(),
            precision: options.precision.unwrap_or(Precision::F32),
            training: Some(crate::model::TrainingConfig {
                batch: pick(options.batch, |a| a.batch, DEFAULT_BATCH),
                grad: options.grad.unwrap_or(Differentiation::Discretise),
                trace: match (options.trace, &auto) {
                    (None, Some(a)) => a.trace,
                    (t, _) => t.unwrap_or(TraceSetting::Auto).kind(dim),
                },
                lr: options
                    .lr
                    .unwrap_or(auto.as_ref().map_or(DEFAULT_LR, |a| a.lr)),
                lr_schedule: options.lr_schedule.unwrap_or(
                    auto.as_ref()
                        .map_or(LrSchedule::Constant, |a| a.lr_schedule),
                ),
                weight_decay: options
                    .weight_decay
                    .unwrap_or(auto.as_ref().map_or(0.0, |a| a.weight_decay)),
                ema_decay: options
                    .ema_decay
                    .unwrap_or(auto.as_ref().map_or(0.0, |a| a.ema_decay)),
                val_every: pick(options.val_every, |a| a.val_every, toy_val_every),
                iters: Some(pick(options.iters, |a| a.iters, toy_iters)),
                patience: options.patience.or(auto.as_ref().map(|a| a.patience)),
                flow_matching,
                regularisers: options.regularisers,
            }),
        };
        crate::model::check_solver_precision(&config.solver, "--", config.precision)?;
        config.validate()?;
        Ok(Self {
            dir,
            config,
            prepared: prep,
            settings,
            resume: None,
        })
    }

    /// Continues the run in `dir` from its checkpoint, with its config.json's settings and
    /// data (checked to be the same data when `options.data` gives it again).
    ///
    /// # Errors
    /// The folder holds no run to resume (no training settings, no checkpoint), its data is
    /// missing, changed or not the data given.
    pub fn resume(dir: impl Into<PathBuf>, options: ResumeOptions) -> Result<Self, TrainError> {
        let dir = ModelDir::new(dir);
        let mut config = dir.config()?;
        if config.training.is_none() {
            return Err(TrainError::Invalid(format!(
                "{} holds no training settings (an imported model?): nothing to resume",
                dir.dir.display()
            )));
        }
        if let (None, DataSource::Table { path, .. }) = (&options.data, &config.data) {
            if !path.is_file() {
                return Err(TrainError::Invalid(format!(
                    "the run's data {} is not there (config.json records it{}); pass --data with \
                     the file, which is recognised by its SHA-256",
                    path.display(),
                    if path.is_relative() {
                        " relative to the folder training ran in"
                    } else {
                        ""
                    }
                )));
            }
        }
        if let Some(data) = &options.data {
            // The same data: the same toy set, or a file with the same content (wherever it
            // is now: the run continues on the file given).
            let same = match (DataSource::from_name(data, None)?, &mut config.data) {
                (DataSource::Toy { name: a }, DataSource::Toy { name: b }) => a == *b,
                (DataSource::Table { path: given, .. }, DataSource::Table { sha256, path, .. }) => {
                    let same = sha256.as_deref() == Some(file_sha256(&given)?.as_str());
                    if same {
                        *path = given;
                    }
                    same
                }
                _ => false,
            };
            if !same {
                return Err(TrainError::Invalid(format!(
                    "--data {data:?} is not the data of the run being resumed ({}); resume \
                     continues with the run's own data, so --data may be left out",
                    config.data.describe()
                )));
            }
        }
        let context = config.context.as_ref().map(|c| c.columns.clone());
        let prepared = prepare::prepare(&config.data, config.seed, &context.unwrap_or_default())?;
        Ok(Self {
            dir,
            config,
            prepared,
            settings: None,
            resume: Some(options),
        })
    }

    /// The run's configuration (what config.json holds or will hold).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir.dir
    }
    /// What the data preparation found (a numeric first row read as data, collinear columns,
    /// dequantised integer columns), one line each.
    pub fn notes(&self) -> &[String] {
        &self.prepared.notes
    }
    /// For a new run on a table: the settings chosen from its size and why.
    pub fn settings(&self) -> Option<&str> {
        self.settings.as_deref()
    }
    /// Whether this resumes a run.
    pub fn is_resume(&self) -> bool {
        self.resume.is_some()
    }
}

/// The iteration a run trains to: the resume's when given, else config.json's (else the
/// default of files that did not record it).
fn total_iters(config: &ModelConfig, resume: Option<&ResumeOptions>) -> usize {
    resume
        .and_then(|r| r.iters)
        .or(config.training.as_ref().and_then(|t| t.iters))
        .unwrap_or(DEFAULT_ITERS)
}

/// Imports weights trained elsewhere (an .npz with W0.., b0.. in torch layout) as the model
/// folder `out` (refused when it holds a model, unless `force`): an f32 model with the
/// default solver changed by `solver`. Returns the session and the number of parameters.
///
/// # Errors
/// The .npz cannot be read or does not match the architecture; the solver is invalid; the
/// folder is taken.
pub fn import_npz(
    npz: &Path,
    hidden: &[usize],
    activation: Activation,
    solver: &SolverOverrides,
    out: &Path,
    force: bool,
) -> Result<(Session, usize), TrainError> {
    let mlp = Mlp::<f32>::from_npz(npz, hidden, activation)?;
    let solver = solver.apply(&default_solver())?;
    let d = mlp.dim();
    let config = ModelConfig {
        mlp: mlp.config().clone(),
        solver,
        sampler: None,
        standardizer: None,
        data: DataSource::Imported {
            path: npz.to_path_buf(),
        },
        seed: 0,
        columns: (0..d).map(|i| format!("x{i}")).collect(),
        context: None,
        precision: Precision::F32,
        training: None,
    };
    let dir = ModelDir::new(out);
    let _lock = dir.lock()?;
    dir.clear_for_new(force)?;
    dir.save_weights(&mlp)?;
    dir.save_config(&config)?;
    let n = mlp.num_params();
    Ok((
        Session {
            dir,
            config,
            run: None,
        },
        n,
    ))
}

/// The first folder of `runs/<name>`, `runs/<name>-2`, ... that holds no run.
fn default_out(name: &str) -> PathBuf {
    let base = Path::new("runs");
    (1..)
        .map(|k| match k {
            1 => base.join(name),
            _ => base.join(format!("{name}-{k}")),
        })
        .find(|p| !ModelDir::new(p).holds_run())
        .unwrap_or_else(|| base.join(name))
}

/// A model folder in use: opened to read (log-densities, samples, evaluation) or started to
/// train (then it holds the folder's lock until dropped).
pub struct Session {
    dir: ModelDir,
    config: ModelConfig,
    run: Option<train::PendingRun>,
}

impl Session {
    /// Opens the model folder `dir` (its config.json read and validated).
    ///
    /// # Errors
    /// `dir` holds no readable, valid config.json.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let dir = ModelDir::new(dir);
        let config = dir.config()?;
        Ok(Self {
            dir,
            config,
            run: None,
        })
    }

    /// Takes the folder of `plan` (its lock) to train in it. A new run is refused in a folder
    /// that holds a model unless `force`; then the old run's files are removed, but only when
    /// training starts ([`Session::train`]), after everything it needs has been checked.
    ///
    /// # Errors
    /// Another process holds the folder; the folder holds a model and neither `force` nor a
    /// resume was asked for; a resumed run has no checkpoint.
    pub fn start(plan: RunPlan, force: bool) -> Result<Self, TrainError> {
        let lock: FolderLock = plan.dir.lock()?;
        let start = match plan.resume {
            Some(_) => checkpoint_iter(&plan.dir)?,
            None => {
                if !force {
                    plan.dir.refuse_existing(
                        "use --resume to continue its training or --force to replace it",
                    )?;
                }
                0
            }
        };
        Ok(Self {
            dir: plan.dir,
            config: plan.config,
            run: Some(train::PendingRun {
                prepared: Some(plan.prepared),
                resume: plan.resume,
                force,
                start,
                _lock: lock,
            }),
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir.dir
    }
    /// The folder's path of one of its files (`crate::model::METRICS_FILE`, ...).
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path(file)
    }
    /// The dimension of the model's points.
    pub fn dim(&self) -> usize {
        self.config.mlp.dim
    }
    /// For a started run: the iteration training starts at (the checkpoint's when resuming,
    /// else 0) and the one it runs to. None for a session opened to read.
    pub fn iterations(&self) -> Option<(usize, usize)> {
        let run = self.run.as_ref()?;
        Some((run.start, total_iters(&self.config, run.resume.as_ref())))
    }

    /// The model's context columns (empty for an unconditional model).
    pub fn context_columns(&self) -> &[String] {
        self.config.context.as_ref().map_or(&[], |c| &c.columns)
    }

    /// The model's flow (best weights) loaded as `options` say.
    ///
    /// # Errors
    /// The weights cannot be read; the solver changes are invalid or their tolerances not
    /// normal numbers in the precision.
    pub fn flow(&self, options: &EvalOptions) -> Result<LoadedFlow, TrainError> {
        let solver = options.solver.apply(&self.config.solver)?;
        // Solver changes replace the sampler too: they apply to the model's solver, so
        // `--rtol 1e-8` samples with a tight adaptive solve whatever the sampler.
        let sampler = match &self.config.sampler {
            Some(s) if options.solver == SolverOverrides::default() => s.clone(),
            _ => solver.clone(),
        };
        let precision = options.precision.unwrap_or(self.config.precision);
        let model = AnyModel::load(&self.dir, &self.config, &solver, precision)?;
        Ok(LoadedFlow {
            sampling: model.with_solver(&sampler)?,
            model,
            config: self.config.clone(),
            solver,
            sampler,
        })
    }

    /// Data-space log-densities of `x` (`(n, d)` row-major); see [`LoadedFlow::log_density`].
    ///
    /// # Errors
    /// As [`Session::flow`] and [`LoadedFlow::log_density`].
    pub fn log_density(&self, x: &[f64], options: &EvalOptions) -> Result<Vec<f64>, TrainError> {
        self.flow(options)?.log_density(x)
    }

    /// Data-space log-densities log p(x | c) of `x` (`(n, d)` row-major) given the context
    /// `c` (`(n, k)`, data space, the model's context columns in order); see
    /// [`LoadedFlow::log_density_given`].
    ///
    /// # Errors
    /// As [`Session::flow`] and [`LoadedFlow::log_density_given`].
    pub fn log_density_given(
        &self,
        x: &[f64],
        c: &[f64],
        options: &EvalOptions,
    ) -> Result<Vec<f64>, TrainError> {
        self.flow(options)?.log_density_given(x, c)
    }

    /// `n` data-space samples for each row of `given` (`(m, k)`, data space, the model's
    /// context columns in order) from `seed`: `(m n, d)` row-major, draw `j` of given row `i`
    /// at row `i n + j`; see [`LoadedFlow::sample_given`].
    ///
    /// # Errors
    /// As [`Session::flow`] and [`LoadedFlow::sample_given`].
    pub fn sample_given(
        &self,
        n: usize,
        seed: u64,
        given: &[f64],
        options: &EvalOptions,
    ) -> Result<Vec<f64>, TrainError> {
        self.flow(options)?.sample_given(n, seed, given)
    }

    /// `n` data-space samples (`(n, d)` row-major) from `seed`; see [`LoadedFlow::sample`].
    ///
    /// # Errors
    /// As [`Session::flow`] and [`LoadedFlow::sample`].
    pub fn sample(
        &self,
        n: usize,
        seed: u64,
        options: &EvalOptions,
    ) -> Result<Vec<f64>, TrainError> {
        self.flow(options)?.sample(n, seed)
    }

    /// Up to `max_rows` points of the training data (data space, row-major): the toy set's
    /// fixed test set, or the rows of the table file (with the model's column selection);
    /// empty for an imported model.
    ///
    /// # Errors
    /// The toy set is unknown or the table cannot be read.
    pub fn data_points(&self, max_rows: usize) -> Result<Vec<f64>, TrainError> {
        let table: Option<Table> = match &self.config.data {
            DataSource::Toy { name } => {
                let set: ToySet = prepare::toy_set(name)?;
                Some(crate::data::toy_test(set))
            }
            DataSource::Table { path, .. } => {
                Some(crate::model::read_table_for(&self.config, path)?)
            }
            DataSource::Imported { .. } => None,
        };
        Ok(table.map_or_else(Vec::new, |t| {
            // The modelled columns only (a conditional model's table also holds its context).
            let t = t.select_columns(0..self.dim());
            let n = t.data().len().min(max_rows * t.n_cols());
            t.data()[..n].to_vec()
        }))
    }
}
