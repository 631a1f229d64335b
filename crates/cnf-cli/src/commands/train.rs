//! `cnf train`.
use std::path::{Path, PathBuf};

use cnf_field::{Mlp, MlpConfig, Real, VectorField};
use cnf_flow::{Cnf, Penalties};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::solver_config;
use crate::cli::{CouplingArg, ObjectiveArg, PathArg, TraceArg, TrainArgs};
use crate::progress::Progress;
use crate::report::plot_model;
use cnf_train::data::{dequantize, integer_columns, Standardizer, Table, ToySet};
use cnf_train::data::{read_table, toy_validation, SPLIT};
use cnf_train::error::TrainError;
use cnf_train::fm::{Coupling, FlowMatching, PathSpec, TimeDist};
use cnf_train::model::to_model_space;
use cnf_train::model::{
    check_solver_precision, default_solver, describe_solver, file_sha256, solver_in, DataSource,
    ModelConfig, ModelDir, Precision, TrainingConfig, CHECKPOINT_FILE, METRICS_FILE,
    TRAINING_CURVE_FILE,
};
use cnf_train::observers::{Checkpoint, Checkpointer, Metrics};
use cnf_train::optim::{Adam, AdamConfig};
use cnf_train::trainer::{
    mean_nll, Batches, Differentiation, FlowMatchingObjective, Regularisers, TraceKind,
    TrainSettings, Trainer, ValEvent, EXACT_TRACE_MAX_DIM,
};

/// Adam's learning rate unless `--lr` is given (the peers' protocol).
const DEFAULT_LR: f64 = 1e-3;
/// Minibatch size unless `--batch` is given.
const DEFAULT_BATCH: usize = 512;
/// Validation interval unless `--val-every` is given.
const DEFAULT_VAL_EVERY: usize = 100;
/// Iterations unless `--iters` is given (toy sets).
const DEFAULT_ITERS: usize = 1000;
/// Iterations of `--objective fm` on a toy set unless `--iters` is given: a flow-matching
/// iteration (no ODE solve) costs about 1/25 of a maximum-likelihood one, and 10k of them reach
/// maximum likelihood's test NLL on 8gaussians to about 0.01 nats (docs/flow_matching.md).
const DEFAULT_ITERS_FM: usize = 10_000;
/// Validation interval of `--objective fm` on a toy set unless `--val-every` is given (10
/// exact-NLL validations, as for maximum likelihood's 1000 iterations).
const DEFAULT_VAL_EVERY_FM: usize = 1000;

/// Settings chosen from a table's size and dimension when the flags leave them open
/// (docs/train.md, "Defaults for tables").
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefaults {
    pub hidden: Vec<usize>,
    pub batch: usize,
    pub lr: f64,
    pub trace: TraceKind,
    pub iters: usize,
    pub patience: usize,
    pub val_every: usize,
    pub weight_decay: f64,
}

impl TableDefaults {
    /// The choices for `n_train` training rows of `d` columns.
    pub fn choose(n_train: usize, d: usize) -> Self {
        let width = if d <= 8 {
            64
        } else if d <= 32 {
            128
        } else {
            256
        };
        let depth = if n_train < 10_000 { 2 } else { 3 };
        let batch = n_train.clamp(1, 512);
        let epoch = n_train.div_ceil(batch).max(1);
        Self {
            hidden: vec![width; depth],
            batch,
            lr: 1e-3,
            trace: TraceKind::auto(d),
            // Small tables: many passes, stopped by validation; large ones: a few epochs.
            iters: if n_train <= 5_000 {
                2_000
            } else {
                (20 * epoch).clamp(2_000, 20_000)
            },
            patience: 10,
            val_every: if n_train <= 5_000 { 20 } else { 100 },
            weight_decay: if n_train <= 5_000 { 1e-4 } else { 1e-5 },
        }
    }

    /// What was chosen and why, one line per setting ("(flag)" where a flag overrode it).
    fn describe(&self, n_train: usize, d: usize, whitened: bool, args: &TrainArgs) -> String {
        let given = |set: bool| if set { " (given)" } else { "" };
        format!(
            "settings for {n_train} training rows x {d} columns:\n  \
             hidden {:?}{}: width from the dimension (64 up to 8 columns, 128 up to 32, 256 \
             above), 2 layers below 10k rows, 3 above\n  \
             batch {}{}: min(512, training rows)\n  \
             lr {:e}{}, weight decay {:e}{}: Adam; a small decoupled decay against overfitting\n  \
             trace {:?}{}: exact (d tangents) up to {EXACT_TRACE_MAX_DIM} columns, Hutchinson \
             (Rademacher) above\n  \
             up to {} iterations{}, validation every {}{} with early stopping after {}{} \
             validations without improvement on the validation split's exact NLL; the best \
             model is kept\n  \
             start: {}",
            args.arch
                .hidden
                .clone()
                .unwrap_or_else(|| self.hidden.clone()),
            given(args.arch.hidden.is_some()),
            args.batch.unwrap_or(self.batch),
            given(args.batch.is_some()),
            args.lr.unwrap_or(self.lr),
            given(args.lr.is_some()),
            args.weight_decay.unwrap_or(self.weight_decay),
            given(args.weight_decay.is_some()),
            args.trace.map_or(self.trace, |t| trace_kind(t, d)),
            given(args.trace.is_some()),
            args.iters.unwrap_or(self.iters),
            given(args.iters.is_some()),
            args.val_every.unwrap_or(self.val_every),
            given(args.val_every.is_some()),
            args.patience.unwrap_or(self.patience),
            given(args.patience.is_some()),
            if whitened {
                "full-covariance whitening fitted on the training split and a zero field, so \
                 the untrained model is the Gaussian baseline"
            } else {
                "per-column standardisation (no whitening: the covariance is singular) and a \
                 random field"
            },
        )
    }
}

/// Training data and the validation points (data space).
struct Prepared {
    batches: Batches,
    val: Table,
    source: DataSource,
    standardizer: Option<Standardizer>,
    columns: Vec<String>,
    name: String,
    /// Rows of the training split (tables).
    n_train: Option<usize>,
}

/// Loads the training data that `source` names, split with `seed`.
fn prepare(source: &DataSource, seed: u64) -> Result<Prepared, TrainError> {
    match source {
        DataSource::Toy { name } => {
            let set: ToySet = name
                .parse()
                .map_err(|e: cnf_train::data::toy::UnknownToySet| {
                    TrainError::Invalid(e.to_string())
                })?;
            // FFJORD's protocol: fresh samples every iteration, raw coordinates.
            Ok(Prepared {
                batches: Batches::Toy(set),
                val: toy_validation(set, seed),
                source: source.clone(),
                standardizer: None,
                columns: vec!["x0".into(), "x1".into()],
                name: set.name().to_string(),
                n_train: None,
            })
        }
        DataSource::Table {
            path,
            sha256,
            split,
            ..
        } => {
            let table = read_table(path, &source.selection())?;
            if let Some(note) = table.header_note() {
                eprintln!("note: {note}");
            }
            let hash = file_sha256(path)?;
            if sha256.as_ref().is_some_and(|h| *h != hash) {
                return Err(TrainError::Invalid(format!(
                    "{} has changed since this run started (its SHA-256 differs from config.json's)",
                    path.display()
                )));
            }
            let (train, val, _test) = table.split_for_training(*split, seed, path)?;
            // Integer-valued columns are dequantised (x + u, u ~ U(0, 1), fixed per row): the
            // model is a density of x + u (docs/train.md).
            let ints = integer_columns(&table);
            let train = dequantize(&train, &ints, seed)?;
            let val = dequantize(&val, &ints, seed.wrapping_add(1))?;
            let whole = dequantize(&table, &ints, seed.wrapping_add(2))?;
            let mut standardizer = match Standardizer::fit_whitened(&train, &whole) {
                Ok(s) => s,
                Err(cnf_train::error::DataError::SingularCovariance) => {
                    eprintln!(
                        "note: the training split's covariance is singular (collinear columns): \
                         per-column standardisation only, no whitening"
                    );
                    Standardizer::fit(&train)?
                }
                Err(e) => return Err(e.into()),
            };
            if !ints.is_empty() {
                let names: Vec<&str> = ints.iter().map(|&j| table.names()[j].as_str()).collect();
                eprintln!(
                    "integer-valued column(s) {} dequantised with U(0, 1) noise: log-likelihoods \
                     are those of the continuous density of x + u (a lower bound on the discrete \
                     log-probability)",
                    names.join(", ")
                );
            }
            standardizer.dequantized = ints;
            let mut source = source.clone();
            if let DataSource::Table { sha256, .. } = &mut source {
                *sha256 = Some(hash);
            }
            Ok(Prepared {
                batches: Batches::Table(standardizer.transform(&train)?),
                // Validation stays in data space: `to_model_space` standardises it once.
                val,
                columns: table.names().to_vec(),
                n_train: Some(train.n_rows()),
                source,
                standardizer: Some(standardizer),
                name: run_name(path),
            })
        }
        DataSource::Imported { .. } => Err(TrainError::Invalid(
            "this model was imported, not trained here: it has no training data to resume with"
                .into(),
        )),
    }
}

/// The name of a run on the table at `path`: its file stem, or `data` when the stem cannot
/// name a folder (`...csv` has the stem `..`).
fn run_name(path: &Path) -> String {
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.trim_matches('.').is_empty() && !stem.contains(['/', '\\']) => {
            stem.to_string()
        }
        _ => "data".to_string(),
    }
}

/// The data source that `--data` names (a toy set or an existing file).
fn source_of(args: &TrainArgs) -> Result<DataSource, TrainError> {
    let data = args.data.as_deref().unwrap_or("8gaussians");
    if let Ok(set) = data.parse::<ToySet>() {
        if Path::new(data).exists() {
            return Err(TrainError::Invalid(format!(
                "--data {data:?} names both a toy set and a file here; write ./{data} for the \
                 file, or run from another folder for the toy set"
            )));
        }
        if args.columns.is_some() || args.drop.is_some() || args.header.is_some() {
            return Err(TrainError::Invalid(
                "--columns, --drop and --header apply to tables, not to toy sets".into(),
            ));
        }
        return Ok(DataSource::Toy {
            name: set.name().to_string(),
        });
    }
    let path = PathBuf::from(data);
    if !path.is_file() {
        return Err(TrainError::Invalid(format!(
            "--data {data:?} is neither a toy set ({}) nor an existing file",
            ToySet::NAMES.join(", ")
        )));
    }
    // Recorded absolute, so that a resume or an eval from another folder finds the file.
    let path = std::path::absolute(&path).map_err(TrainError::io(path.display()))?;
    Ok(DataSource::Table {
        path,
        sha256: None,
        columns: args.columns.clone(),
        drop: args.drop.clone().unwrap_or_default(),
        header: args.header.unwrap_or_default(),
        split: SPLIT,
    })
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

/// The flow-matching settings of `--objective fm` (None for maximum likelihood).
fn flow_matching(args: &TrainArgs) -> Result<Option<FlowMatching>, TrainError> {
    if args.objective != Some(ObjectiveArg::Fm) {
        if args.fm_path.is_some() || args.fm_sigma.is_some() || args.coupling.is_some() {
            return Err(TrainError::Invalid(
                "--fm-path, --fm-sigma and --coupling need --objective fm".into(),
            ));
        }
        return Ok(None);
    }
    let path = match args.fm_path.unwrap_or(PathArg::Straight) {
        PathArg::Straight => PathSpec::Straight {
            sigma: args.fm_sigma.unwrap_or(0.0),
        },
        PathArg::Lipman => PathSpec::Lipman {
            sigma_min: args.fm_sigma.unwrap_or(1e-4),
        },
        PathArg::Cosine => PathSpec::Cosine,
    };
    let coupling = match args.coupling.unwrap_or(CouplingArg::Independent) {
        CouplingArg::Independent => Coupling::Independent,
        CouplingArg::Ot => Coupling::ExactOt,
        CouplingArg::Sinkhorn => Coupling::sinkhorn(0.05),
    };
    let fm = FlowMatching {
        path,
        coupling,
        time: TimeDist::Uniform,
    };
    fm.validate()
        .map_err(|e| TrainError::Invalid(format!("flow matching: {e}")))?;
    Ok(Some(fm))
}

/// The gradient method of `--grad` and `--checkpoint-every` (None: not given).
fn grad(args: &TrainArgs) -> Result<Option<Differentiation<f64>>, TrainError> {
    match (args.grad, args.checkpoint_every) {
        (Some(Differentiation::Checkpointed { .. }), Some(every)) => {
            Ok(Some(Differentiation::Checkpointed { every }))
        }
        (g, None) => Ok(g),
        (_, Some(_)) => Err(TrainError::Invalid(
            "--checkpoint-every is the segment length of --grad checkpointed".into(),
        )),
    }
}

/// RNODE's regularisers and STEER from the options (maximum likelihood only).
fn regularisers(args: &TrainArgs) -> Result<Regularisers, TrainError> {
    let r = Regularisers {
        kinetic: args.kinetic.unwrap_or(0.0),
        jacobian: args.jacobian.unwrap_or(0.0),
        steer: args.steer.unwrap_or(0.0),
        local_error: args.local_error.unwrap_or(0.0),
    };
    if !r.is_off() && args.objective == Some(ObjectiveArg::Fm) {
        return Err(TrainError::Invalid(
            "--kinetic, --jacobian, --steer and --local-error regularise maximum likelihood; \
             flow matching \
             (--objective fm) does not solve the ODE in training"
                .into(),
        ));
    }
    r.validate()?;
    Ok(r)
}

/// On resume, an option given on the command line must agree with the run's config.json:
/// a different value is an error, never silently ignored.
fn check_same<V: PartialEq + std::fmt::Debug>(
    flag: &str,
    given: Option<V>,
    saved: V,
) -> Result<(), TrainError> {
    match given {
        Some(g) if g != saved => Err(TrainError::Invalid(format!(
            "{flag} {g:?} conflicts with the run being resumed ({saved:?} in config.json); \
             resume continues with the run's settings (only --iters, --lr, --patience and \
             --no-plots may change)"
        ))),
        _ => Ok(()),
    }
}

/// The config of a resumed run, after checking the command line against it.
fn resumed_config(args: &TrainArgs, dir: &ModelDir) -> Result<ModelConfig, TrainError> {
    let mut config = dir.config()?;
    let Some(tr) = config.training.clone() else {
        return Err(TrainError::Invalid(format!(
            "{} holds no training settings (an imported model?): nothing to resume",
            dir.dir.display()
        )));
    };
    if let (None, DataSource::Table { path, .. }) = (&args.data, &config.data) {
        if !path.is_file() {
            return Err(TrainError::Invalid(format!(
                "the run's data {} is not there (config.json records it{}); pass --data with the \
                 file, which is recognised by its SHA-256",
                path.display(),
                if path.is_relative() {
                    " relative to the folder training ran in"
                } else {
                    ""
                }
            )));
        }
    }
    if let Some(data) = &args.data {
        // The same data: the same toy set, or a file with the same content (wherever it is
        // now: the run continues on the file given).
        let same = match (source_of(args)?, &mut config.data) {
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
    if let DataSource::Table {
        columns,
        drop,
        header,
        ..
    } = &config.data
    {
        check_same("--header", args.header, *header)?;
        check_same("--columns", args.columns.clone().map(Some), columns.clone())?;
        check_same("--drop", args.drop.clone(), drop.clone())?;
    }
    check_same(
        "--hidden",
        args.arch.hidden.clone(),
        config.mlp.hidden.clone(),
    )?;
    check_same(
        "--activation",
        args.arch.activation.map(Into::into),
        config.mlp.activation,
    )?;
    let solver = solver_config(&config.solver, &args.solver)?;
    check_same(
        "--method/--steps/--rtol/--atol/--error-norm",
        Some(solver),
        config.solver.clone(),
    )?;
    check_same("--batch", args.batch, tr.batch)?;
    check_same("--grad/--checkpoint-every", grad(args)?, tr.grad)?;
    let trace = args.trace.map(|t| trace_kind(t, config.mlp.dim));
    check_same("--trace", trace, tr.trace)?;
    check_same("--weight-decay", args.weight_decay, tr.weight_decay)?;
    check_same("--val-every", args.val_every, tr.val_every)?;
    if args.objective.is_some() {
        check_same(
            "--objective/--fm-path/--fm-sigma/--coupling",
            Some(flow_matching(args)?),
            tr.flow_matching,
        )?;
    }
    if args.kinetic.is_some()
        || args.jacobian.is_some()
        || args.steer.is_some()
        || args.local_error.is_some()
    {
        check_same(
            "--kinetic/--jacobian/--steer/--local-error",
            // Display, not Debug: f64's shortest round-trip form, so equal text is equal value.
            Some(regularisers(args)?.to_string()),
            tr.regularisers.to_string(),
        )?;
    }
    check_same("--seed", args.seed, config.seed)?;
    check_same(
        "--f64",
        args.f64.then_some(Precision::F64),
        config.precision,
    )?;
    Ok(config)
}

fn trace_kind(t: TraceArg, dim: usize) -> TraceKind {
    match t {
        TraceArg::Auto => TraceKind::auto(dim),
        TraceArg::Exact => TraceKind::Exact,
        TraceArg::Rademacher => TraceKind::Rademacher,
        TraceArg::Gaussian => TraceKind::Gaussian,
        TraceArg::Orthogonal => TraceKind::Orthogonal,
    }
}

/// Trains a model and writes its folder; plots for 2-D data.
pub fn train(args: &TrainArgs) -> Result<(), TrainError> {
    let (config, prep, dir) = if args.resume {
        let out = args.out.clone().ok_or_else(|| {
            TrainError::Invalid("--resume needs --out, the folder of the run to continue".into())
        })?;
        let dir = ModelDir::new(out);
        let config = resumed_config(args, &dir)?;
        let prep = prepare(&config.data, config.seed)?;
        (config, prep, dir)
    } else {
        let seed = args.seed.unwrap_or(0);
        let prep = prepare(&source_of(args)?, seed)?;
        let dir = ModelDir::new(args.out.clone().unwrap_or_else(|| default_out(&prep.name)));
        let dim = prep.val.n_cols();
        let auto = prep.n_train.map(|n| {
            let a = TableDefaults::choose(n, dim);
            let whitened = prep.standardizer.as_ref().is_some_and(|s| s.is_whitened());
            eprintln!("{}", a.describe(n, dim, whitened, args));
            a
        });
        let hidden = match (&args.arch.hidden, &auto) {
            (None, Some(a)) => a.hidden.clone(),
            _ => args.arch.hidden(),
        };
        // Toy sets: each objective's own protocol (tables choose from their size).
        let (toy_iters, toy_val_every) = if args.objective == Some(ObjectiveArg::Fm) {
            (DEFAULT_ITERS_FM, DEFAULT_VAL_EVERY_FM)
        } else {
            (DEFAULT_ITERS, DEFAULT_VAL_EVERY)
        };
        let config = ModelConfig {
            mlp: MlpConfig::new(dim, &hidden, args.arch.activation()),
            solver: solver_config(&default_solver(), &args.solver)?,
            standardizer: prep.standardizer.clone(),
            data: prep.source.clone(),
            seed,
            columns: prep.columns.clone(),
            precision: if args.f64 {
                Precision::F64
            } else {
                Precision::F32
            },
            training: Some(TrainingConfig {
                batch: args
                    .batch
                    .unwrap_or(auto.as_ref().map_or(DEFAULT_BATCH, |a| a.batch)),
                grad: grad(args)?.unwrap_or(Differentiation::Discretise),
                trace: match (args.trace, &auto) {
                    (None, Some(a)) => a.trace,
                    (t, _) => trace_kind(t.unwrap_or(TraceArg::Auto), dim),
                },
                lr: args
                    .lr
                    .unwrap_or(auto.as_ref().map_or(DEFAULT_LR, |a| a.lr)),
                weight_decay: args
                    .weight_decay
                    .unwrap_or(auto.as_ref().map_or(0.0, |a| a.weight_decay)),
                val_every: args
                    .val_every
                    .unwrap_or(auto.as_ref().map_or(toy_val_every, |a| a.val_every)),
                iters: Some(
                    args.iters
                        .unwrap_or(auto.as_ref().map_or(toy_iters, |a| a.iters)),
                ),
                patience: args.patience.or(auto.as_ref().map(|a| a.patience)),
                flow_matching: flow_matching(args)?,
                regularisers: regularisers(args)?,
            }),
        };
        check_solver_precision(&config.solver, "--", config.precision)?;
        config.validate()?;
        (config, prep, dir)
    };
    let _lock = dir.lock()?;
    if !args.resume && !args.force {
        // Refused before any work; with --force the old run is removed only once everything
        // the new one needs has been checked (in `run`, right before its first write).
        dir.refuse_existing("use --resume to continue its training or --force to replace it")?;
    }
    match config.precision {
        Precision::F64 => run::<f64>(args, prep, &dir, &config),
        Precision::F32 => run::<f32>(args, prep, &dir, &config),
    }
}

/// Keeps the lines of metrics.jsonl up to iteration `iter` (a resumed run appends after them,
/// so no iteration appears twice).
fn truncate_metrics(dir: &ModelDir, iter: usize) -> Result<(), TrainError> {
    let p = dir.path(METRICS_FILE);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["iter"].as_u64())
                .is_some_and(|i| i as usize <= iter)
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    cnf_train::model::write_atomic(&p, kept.as_bytes())
}

fn run<T: Real + Serialize + DeserializeOwned>(
    args: &TrainArgs,
    prep: Prepared,
    dir: &ModelDir,
    config: &ModelConfig,
) -> Result<(), TrainError> {
    let tr = config
        .training
        .as_ref()
        .ok_or_else(|| TrainError::Invalid("config.json has no training settings".into()))?;
    let integ = solver_in::<T>(&config.solver)?;
    let val: Vec<T> = to_model_space(config, &prep.val)?;
    // --iters and --patience may change on resume; otherwise the run's own (or the defaults).
    let iters = args.iters.or(tr.iters).unwrap_or(DEFAULT_ITERS);
    let patience = if args.patience.is_some() {
        args.patience
    } else {
        tr.patience
    };
    let adam_cfg = AdamConfig {
        lr: tr.lr,
        weight_decay: tr.weight_decay,
        ..AdamConfig::default()
    };
    let mut mlp = Mlp::<T>::new(config.mlp.clone(), config.seed)?;
    let mut adam = Adam::new(mlp.num_params(), adam_cfg)?;
    let (mut start, mut best, mut since) = (0, f64::INFINITY, 0);
    if args.resume {
        let ck: Checkpoint<T> = Checkpoint::load(dir)?;
        if ck.params.len() != mlp.num_params() {
            return Err(TrainError::Invalid(
                "checkpoint does not match the model".into(),
            ));
        }
        mlp.params_mut().copy_from_slice(&ck.params);
        adam = ck.adam;
        if let Some(lr) = args.lr {
            adam.set_lr(lr)?;
        }
        (start, best, since) = (ck.iter, ck.best_val, ck.since_best);
        truncate_metrics(dir, start)?;
        eprintln!("resuming {} at iteration {start}", dir.dir.display());
    } else {
        // Everything the run needs exists and was checked: only now may an old run go.
        dir.clear_for_new(args.force)?;
        dir.save_config(config)?;
        if config
            .standardizer
            .as_ref()
            .is_some_and(|s| s.is_whitened())
        {
            // Start from the Gaussian: whitened data and a zero field.
            mlp.zero_output();
        }
    }
    let log_det = cnf_train::model::log_det(config);
    let mut trainer = Trainer {
        cnf: Cnf::new(mlp, integ),
        adam,
        batches: prep.batches,
        val,
        settings: TrainSettings {
            iters,
            batch: tr.batch,
            grad: tr.grad,
            trace: tr.trace,
            val_every: tr.val_every,
            seed: config.seed,
            regularisers: tr.regularisers,
        },
        observers: vec![
            Box::new(Progress::new(start, iters)),
            Box::new(
                Metrics::new(dir.path(METRICS_FILE), log_det)
                    .flow_matching(tr.flow_matching.is_some()),
            ),
            Box::new(Checkpointer::new(dir.clone(), best, since, patience)),
        ],
    };
    let whitened = config
        .standardizer
        .as_ref()
        .is_some_and(|s| s.is_whitened());
    if start == 0 && !args.resume && whitened {
        // Validate the untrained model too: when training never beats it on the validation
        // split, the saved model is the start (for tables: the Gaussian baseline).
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
        for o in trainer.observers.iter_mut().skip(1) {
            o.on_validation(&ev, &trainer.cnf.field, &trainer.adam)?;
        }
    }
    let t0 = std::time::Instant::now();
    let done = match &tr.flow_matching {
        Some(fm) => {
            eprintln!("objective: flow matching ({fm:?}); validation: exact NLL through the ODE");
            trainer.run_with(start, &mut FlowMatchingObjective::new(*fm)?)
        }
        None => trainer.run(start),
    }
    .map_err(|e| match e {
        TrainError::Diverged { iter, reason, .. } => TrainError::Diverged {
            iter,
            reason,
            kept: if dir.path(CHECKPOINT_FILE).exists() {
                format!(
                    " (the last good checkpoint is kept in {})",
                    dir.dir.display()
                )
            } else {
                " (no checkpoint had been written yet)".into()
            },
        },
        other => other,
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let best_cnf = dir.load_cnf::<T>(config, None)?;
    let (val_nll, nfe) = mean_nll(&best_cnf, &trainer.val)?;
    println!(
        "trained {} iterations in {secs:.1} s ({:.4} s/iter); best model: validation NLL {:.4} nats \
         on {} points (data space, exact trace, {}, NFE {nfe}); saved in {}",
        done - start,
        secs / (done - start).max(1) as f64,
        val_nll - log_det,
        trainer.val.len() / config.mlp.dim,
        describe_solver(&config.solver),
        dir.dir.display()
    );
    if !args.no_plots {
        crate::report::plot_training_curve(
            &dir.path(METRICS_FILE),
            &dir.path(TRAINING_CURVE_FILE),
        )?;
        if config.mlp.dim == 2 {
            plot_model(&best_cnf, config, &dir.dir)?;
        }
    }
    Ok(())
}
