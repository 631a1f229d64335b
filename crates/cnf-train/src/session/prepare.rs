//! The training data of a run: a toy set or a table read, split, dequantised and standardised
//! as the run's config says; and the settings chosen from a table's size.
use std::path::{Path, PathBuf};

use crate::data::context::fit_conditional_whitening;
use crate::data::{
    dequantize, integer_columns, read_table, toy_validation, CONDITIONAL_SPLIT, SPLIT,
};
use crate::data::{ColumnSelection, ContextColumns, Standardizer, Table, ToySet};
use crate::error::{DataError, TrainError};
use crate::model::{file_sha256, DataSource};
use crate::optim::LrSchedule;
use crate::trainer::{Batches, TraceKind, EXACT_TRACE_MAX_DIM};

/// Training data and the validation points (data space).
pub(crate) struct Prepared {
    pub batches: Batches,
    pub val: Table,
    pub source: DataSource,
    pub standardizer: Option<Standardizer>,
    /// The context columns of a conditional run, fitted on the training split.
    pub context: Option<ContextColumns>,
    /// The modelled columns (x).
    pub columns: Vec<String>,
    pub name: String,
    /// Rows of the training split (tables).
    pub n_train: Option<usize>,
    /// What the reader should know about the data (one line each).
    pub notes: Vec<String>,
}

pub(crate) fn toy_set(name: &str) -> Result<ToySet, TrainError> {
    name.parse()
        .map_err(|e: crate::data::toy::UnknownToySet| TrainError::Invalid(e.to_string()))
}

impl DataSource {
    /// The source `data` names: a toy set ([`ToySet::NAMES`]) or an existing CSV / .npy file
    /// (recorded absolute, so that a resume or an eval from another folder finds it), with
    /// the column selection of a table.
    ///
    /// # Errors
    /// `data` names neither, or both (a file called like a toy set in the current folder); a
    /// column selection is given with a toy set.
    pub fn from_name(data: &str, selection: Option<ColumnSelection>) -> Result<Self, TrainError> {
        if let Ok(set) = data.parse::<ToySet>() {
            if Path::new(data).exists() {
                return Err(TrainError::Invalid(format!(
                    "--data {data:?} names both a toy set and a file here; write ./{data} for the \
                     file, or run from another folder for the toy set"
                )));
            }
            if selection.is_some() {
                return Err(TrainError::Invalid(
                    "--columns, --drop and --header apply to tables, not to toy sets".into(),
                ));
            }
            return Ok(Self::Toy {
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
        let path = std::path::absolute(&path).map_err(TrainError::io(path.display()))?;
        let selection = selection.unwrap_or_default();
        Ok(Self::Table {
            path,
            sha256: None,
            columns: selection.columns,
            drop: selection.drop,
            header: selection.header,
            split: SPLIT,
        })
    }
}

/// The table source `source` with the context columns `context` (names) resolved: its
/// selection names every column it reads, the modelled columns (those `--columns` selects, or
/// all others) first, then the context columns.
///
/// # Errors
/// `source` is not a table; a context column is not in the file, named twice or also
/// selected as a modelled column; no column is left to model.
pub(crate) fn with_context(
    source: DataSource,
    context: &[String],
) -> Result<DataSource, TrainError> {
    let DataSource::Table {
        path,
        sha256,
        columns,
        drop,
        header,
        split,
    } = source
    else {
        return Err(TrainError::Invalid(
            "--context selects columns of a table (CSV / .npy), not of a toy set".into(),
        ));
    };
    for (j, c) in context.iter().enumerate() {
        if context[..j].contains(c) {
            return Err(TrainError::Invalid(format!("--context names {c:?} twice")));
        }
    }
    let read = |columns: Option<Vec<String>>| {
        let selection = ColumnSelection {
            columns,
            drop: drop.clone(),
            header,
        };
        read_table(&path, &selection)
    };
    let available = read(None)?.names().to_vec();
    let missing: Vec<&str> = context
        .iter()
        .filter(|c| !available.contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(TrainError::Invalid(format!(
            "--context: {} has no column(s) {} (its columns: {})",
            path.display(),
            missing.join(", "),
            available.join(", ")
        )));
    }
    let modelled: Vec<String> = match &columns {
        Some(_) => read(columns.clone())?.names().to_vec(),
        None => available
            .iter()
            .filter(|n| !context.contains(n))
            .cloned()
            .collect(),
    };
    if let Some(both) = modelled.iter().find(|n| context.contains(n)) {
        return Err(TrainError::Invalid(format!(
            "column {both:?} is both modelled (--columns) and a context column (--context)"
        )));
    }
    if modelled.is_empty() {
        return Err(TrainError::Invalid(format!(
            "--context takes every column of {}: no column is left to model",
            path.display()
        )));
    }
    Ok(DataSource::Table {
        path,
        sha256,
        columns: Some(
            modelled
                .into_iter()
                .chain(context.iter().cloned())
                .collect(),
        ),
        drop: Vec::new(),
        header,
        split: split_of_new_run(split, true),
    })
}

/// The split of a new run's table: a conditional run's simulations take
/// [`CONDITIONAL_SPLIT`] in place of the default [`SPLIT`]; any other split (a resumed run's,
/// recorded in config.json) stays.
pub(crate) fn split_of_new_run(split: [f64; 3], conditional: bool) -> [f64; 3] {
    if conditional && split == SPLIT {
        CONDITIONAL_SPLIT
    } else {
        split
    }
}

/// Loads the training data that `source` names, split with `seed`; the last columns of a
/// table, named `context`, are the context of a conditional run (empty: unconditional).
pub(crate) fn prepare(
    source: &DataSource,
    seed: u64,
    context: &[String],
) -> Result<Prepared, TrainError> {
    match source {
        DataSource::Toy { .. } if !context.is_empty() => Err(TrainError::Invalid(
            "a toy set has no context columns: conditional models train on tables".into(),
        )),
        DataSource::Toy { name } => {
            let set = toy_set(name)?;
            // FFJORD's protocol: fresh samples every iteration, raw coordinates.
            Ok(Prepared {
                batches: Batches::Toy(set),
                val: toy_validation(set, seed),
                source: source.clone(),
                standardizer: None,
                context: None,
                columns: vec!["x0".into(), "x1".into()],
                name: set.name().to_string(),
                n_train: None,
                notes: Vec::new(),
            })
        }
        DataSource::Table {
            path,
            sha256,
            split,
            ..
        } => {
            let table = read_table(path, &source.selection())?;
            let hash = file_sha256(path)?;
            if sha256.as_ref().is_some_and(|h| *h != hash) {
                return Err(TrainError::Invalid(format!(
                    "{} has changed since this run started (its SHA-256 differs from config.json's)",
                    path.display()
                )));
            }
            let mut source = source.clone();
            if let DataSource::Table { sha256, .. } = &mut source {
                *sha256 = Some(hash);
            }
            prepare_table(&table, source, *split, seed, path, run_name(path), context)
        }
        DataSource::Imported { .. } => Err(TrainError::Invalid(
            "this model was imported, not trained here: it has no training data to resume with"
                .into(),
        )),
    }
}

/// The training data of `table` (recorded in config.json as `source`, named `label` in
/// messages; its last columns, named `context`, condition a conditional run): split with
/// `seed`, integer-valued modelled columns dequantised, standardised with the training split's
/// statistics (whitened unless its covariance is singular).
pub(crate) fn prepare_table(
    table: &Table,
    source: DataSource,
    split: [f64; 3],
    seed: u64,
    label: &Path,
    name: String,
    context: &[String],
) -> Result<Prepared, TrainError> {
    let mut notes = Vec::new();
    if let Some(note) = table.header_note() {
        notes.push(format!("note: {note}"));
    }
    let k = context.len();
    let d = table.n_cols().saturating_sub(k);
    if table.names()[d..] != *context {
        return Err(TrainError::Invalid(format!(
            "{}: the context columns {} are not the last columns read ({})",
            label.display(),
            context.join(", "),
            table.names().join(", ")
        )));
    }
    let (train, val, _test) = table.split_for_training(split, seed, label)?;
    // Integer-valued modelled columns are dequantised (x + u, u ~ U(0, 1), fixed per
    // row): the model is a density of x + u (docs/train.md). A context is a condition,
    // not a density's variable: it is used as it is.
    let ints: Vec<usize> = integer_columns(table)
        .into_iter()
        .filter(|&j| j < d)
        .collect();
    let train = dequantize(&train, &ints, seed)?;
    let val = dequantize(&val, &ints, seed.wrapping_add(1))?;
    let whole = dequantize(table, &ints, seed.wrapping_add(2))?;
    let (train, train_c, whole) = if k == 0 {
        (train, None, whole)
    } else {
        (
            train.select_columns(0..d),
            Some(train.select_columns(d..d + k)),
            whole.select_columns(0..d),
        )
    };
    let mut context = train_c.as_ref().map(ContextColumns::fit).transpose()?;
    let mut standardizer = match Standardizer::fit_whitened(&train, &whole) {
        Ok(s) => s,
        Err(DataError::SingularCovariance) => {
            notes.push(
                "note: the training split's covariance is singular (collinear columns): \
                 per-column standardisation only, no whitening"
                    .into(),
            );
            Standardizer::fit(&train)?
        }
        Err(e) => return Err(e.into()),
    };
    if !ints.is_empty() {
        let names: Vec<&str> = ints.iter().map(|&j| table.names()[j].as_str()).collect();
        notes.push(format!(
            "integer-valued column(s) {} dequantised with U(0, 1) noise: log-likelihoods \
             are those of the continuous density of x + u (a lower bound on the discrete \
             log-probability)",
            names.join(", ")
        ));
    }
    standardizer.dequantized = ints;
    let mut rows = standardizer.transform(&train)?;
    if let (Some(c), Some(train_c)) = (&mut context, &train_c) {
        // Batches are rows of [x | c], both in model space, x whitened given c.
        let z = c.to_model_space::<f64>(train_c, 0)?;
        if fit_conditional_whitening(&mut standardizer, c, rows.data(), &z) {
            let mut x = standardizer.transform(&train)?.into_data();
            c.shift_rows(&mut x, &z, -1.0);
            rows = Table::new(train.n_rows(), d, x, train.names().to_vec())?;
        }
        rows = rows.concat_columns(&Table::new(train_c.n_rows(), k, z, c.columns.clone())?)?;
    }
    Ok(Prepared {
        batches: Batches::Table(rows),
        // Validation stays in data space (x, then c): `to_model_space_given`
        // standardises it once.
        val,
        context,
        columns: table.names()[..d].to_vec(),
        n_train: Some(train.n_rows()),
        source,
        standardizer: Some(standardizer),
        name,
        notes,
    })
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

/// Hidden width of a conditional flow-matching run (64 left two moons' posterior at C2ST 0.75,
/// 128 reached 0.51: docs/sbi.md).
const CFM_WIDTH: usize = 128;
/// Hidden layers of a conditional flow-matching run.
const CFM_DEPTH: usize = 3;
/// Minibatch of a conditional flow-matching run.
const CFM_BATCH: usize = 512;
/// Adam's learning rate of a conditional flow-matching run.
const CFM_LR: f64 = 1e-3;
/// How the learning rate of a conditional flow-matching run changes.
const CFM_LR_SCHEDULE: LrSchedule = LrSchedule::Cosine;
/// Iterations of a conditional flow-matching run: ~50 s on 2 cores at 2.1 ms per step
/// (docs/sbi.md); with theta whitened given x, two moons' validation NLL at 20000 is within
/// 0.04 nats of 30000's.
const CFM_ITERS: usize = 20_000;
/// Validation interval of a conditional flow-matching run.
const CFM_VAL_EVERY: usize = 1_000;
/// Validations without improvement before a conditional flow-matching run stops.
const CFM_PATIENCE: usize = 5;
/// Decay of the moving average of the weights of a conditional flow-matching run.
const CFM_EMA_DECAY: f64 = 0.999;

/// Where a new run on a table starts (what the settings report says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// x whitened given the context ([`fit_conditional_whitening`]).
    WhitenedGivenContext,
    /// x whitened (full covariance).
    Whitened,
    /// Per-column standardisation only.
    Standardised,
}

/// Settings chosen from a table's size and dimension when the options leave them open
/// (docs/train.md, "Defaults for tables").
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefaults {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Minibatch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// How the learning rate changes over the run.
    pub lr_schedule: LrSchedule,
    /// Trace of the training loss.
    pub trace: TraceKind,
    /// Iterations.
    pub iters: usize,
    /// Validations without improvement before stopping.
    pub patience: usize,
    /// Validation interval.
    pub val_every: usize,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Decay of the moving average of the weights that is validated and kept (0: none).
    pub ema_decay: f64,
    /// Whether these are the choices for a conditional run trained by flow matching
    /// ([`TableDefaults::conditional_flow_matching`]).
    pub conditional_flow_matching: bool,
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
            lr_schedule: LrSchedule::Constant,
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
            ema_decay: 0.0,
            conditional_flow_matching: false,
        }
    }

    /// The choices for a conditional run p(x | c) trained by flow matching on `n_train`
    /// training rows of `d` modelled columns (a posterior on simulations), whatever the
    /// context's width (it costs only the first layer): chosen by the sbibm benchmark's C2ST
    /// and training time (docs/sbi.md, "Defaults of conditional runs"). A flow-matching
    /// iteration costs no ODE solve, so many more of them fit in the time of maximum
    /// likelihood's; validations (the exact NLL through the ODE) are spaced out to match.
    pub fn conditional_flow_matching(n_train: usize, d: usize) -> Self {
        let batch = n_train.clamp(1, CFM_BATCH);
        Self {
            hidden: vec![CFM_WIDTH; CFM_DEPTH],
            batch,
            lr: CFM_LR,
            lr_schedule: CFM_LR_SCHEDULE,
            trace: TraceKind::auto(d),
            iters: CFM_ITERS,
            patience: CFM_PATIENCE,
            val_every: CFM_VAL_EVERY,
            weight_decay: 0.0,
            ema_decay: CFM_EMA_DECAY,
            conditional_flow_matching: true,
        }
    }

    /// What was chosen and why, one line per setting ("(given)" where an option overrode it).
    pub(crate) fn describe(
        &self,
        n_train: usize,
        d: usize,
        start: Start,
        o: &super::TrainOptions,
    ) -> String {
        let given = |set: bool| if set { " (given)" } else { "" };
        let (hidden_rule, batch_rule, decay_rule, ema_rule) = if self.conditional_flow_matching {
            (
                format!("conditional flow matching: {CFM_DEPTH} layers of {CFM_WIDTH}"),
                format!("min({CFM_BATCH}, training rows)"),
                "Adam, no decay",
                "the average is validated and kept, training goes on from the raw weights",
            )
        } else {
            (
                "width from the dimension (64 up to 8 columns, 128 up to 32, 256 above), 2 \
                 layers below 10k rows, 3 above"
                    .to_string(),
                "min(512, training rows)".to_string(),
                "Adam; a small decoupled decay against overfitting",
                "the validated model is the last iterate (0: no average)",
            )
        };
        let schedule = match o.lr_schedule.unwrap_or(self.lr_schedule) {
            LrSchedule::Constant if o.lr_schedule.is_none() => String::new(),
            LrSchedule::Constant => " constant (given)".into(),
            LrSchedule::Cosine => format!(
                " cosine-annealed to 0 over the iterations{}",
                given(o.lr_schedule.is_some())
            ),
        };
        format!(
            "settings for {n_train} training rows x {d} columns:\n  \
             hidden {:?}{}: {hidden_rule}\n  \
             batch {}{}: {batch_rule}\n  \
             lr {:e}{}{schedule}, weight decay {:e}{}: {decay_rule}\n  \
             moving average of the weights {}{}: {ema_rule}\n  \
             trace {:?}{}: exact (d tangents) up to {EXACT_TRACE_MAX_DIM} columns, Hutchinson \
             (Rademacher) above\n  \
             up to {} iterations{}, validation every {}{} with early stopping after {}{} \
             validations without improvement on the validation split's exact NLL; the best \
             model is kept\n  \
             start: {}",
            o.hidden.clone().unwrap_or_else(|| self.hidden.clone()),
            given(o.hidden.is_some()),
            o.batch.unwrap_or(self.batch),
            given(o.batch.is_some()),
            o.lr.unwrap_or(self.lr),
            given(o.lr.is_some()),
            o.weight_decay.unwrap_or(self.weight_decay),
            given(o.weight_decay.is_some()),
            o.ema_decay.unwrap_or(self.ema_decay),
            given(o.ema_decay.is_some()),
            o.trace.map_or(self.trace, |t| t.kind(d)),
            given(o.trace.is_some()),
            o.iters.unwrap_or(self.iters),
            given(o.iters.is_some()),
            o.val_every.unwrap_or(self.val_every),
            given(o.val_every.is_some()),
            o.patience.unwrap_or(self.patience),
            given(o.patience.is_some()),
            match start {
                Start::WhitenedGivenContext =>
                    "x whitened given the context (the residual of its least-squares regression \
                     on c, whitened) and a zero field, so the untrained model is the \
                     linear-Gaussian p(x | c)",
                Start::Whitened =>
                    "full-covariance whitening fitted on the training split and a zero field, \
                     so the untrained model is the Gaussian baseline",
                Start::Standardised =>
                    "per-column standardisation (no whitening: the covariance is singular) and \
                     a random field",
            },
        )
    }
}
