//! The training data of a run: a toy set or a table read, split, dequantised and standardised
//! as the run's config says; and the settings chosen from a table's size.
use std::path::{Path, PathBuf};

use crate::data::{dequantize, integer_columns, read_table, toy_validation, SPLIT};
use crate::data::{ColumnSelection, Standardizer, Table, ToySet};
use crate::error::{DataError, TrainError};
use crate::model::{file_sha256, DataSource};
use crate::trainer::{Batches, TraceKind, EXACT_TRACE_MAX_DIM};

/// Training data and the validation points (data space).
pub(crate) struct Prepared {
    pub batches: Batches,
    pub val: Table,
    pub source: DataSource,
    pub standardizer: Option<Standardizer>,
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

/// Loads the training data that `source` names, split with `seed`.
pub(crate) fn prepare(source: &DataSource, seed: u64) -> Result<Prepared, TrainError> {
    match source {
        DataSource::Toy { name } => {
            let set = toy_set(name)?;
            // FFJORD's protocol: fresh samples every iteration, raw coordinates.
            Ok(Prepared {
                batches: Batches::Toy(set),
                val: toy_validation(set, seed),
                source: source.clone(),
                standardizer: None,
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
            prepare_table(&table, source, *split, seed, path, run_name(path))
        }
        DataSource::Imported { .. } => Err(TrainError::Invalid(
            "this model was imported, not trained here: it has no training data to resume with"
                .into(),
        )),
    }
}

/// The training data of `table` (recorded in config.json as `source`, named `label` in
/// messages): split with `seed`, integer-valued columns dequantised, standardised with the
/// training split's statistics (whitened unless its covariance is singular).
pub(crate) fn prepare_table(
    table: &Table,
    source: DataSource,
    split: [f64; 3],
    seed: u64,
    label: &Path,
    name: String,
) -> Result<Prepared, TrainError> {
    let mut notes = Vec::new();
    if let Some(note) = table.header_note() {
        notes.push(format!("note: {note}"));
    }
    let (train, val, _test) = table.split_for_training(split, seed, label)?;
    // Integer-valued columns are dequantised (x + u, u ~ U(0, 1), fixed per row): the model is
    // a density of x + u (docs/train.md).
    let ints = integer_columns(table);
    let train = dequantize(&train, &ints, seed)?;
    let val = dequantize(&val, &ints, seed.wrapping_add(1))?;
    let whole = dequantize(table, &ints, seed.wrapping_add(2))?;
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
            "integer-valued column(s) {} dequantised with U(0, 1) noise: log-likelihoods are \
             those of the continuous density of x + u (a lower bound on the discrete \
             log-probability)",
            names.join(", ")
        ));
    }
    standardizer.dequantized = ints;
    Ok(Prepared {
        batches: Batches::Table(standardizer.transform(&train)?),
        // Validation stays in data space: `to_model_space` standardises it once.
        val,
        columns: table.names().to_vec(),
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

    /// What was chosen and why, one line per setting ("(given)" where an option overrode it).
    pub(crate) fn describe(
        &self,
        n_train: usize,
        d: usize,
        whitened: bool,
        o: &super::TrainOptions,
    ) -> String {
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
            o.hidden.clone().unwrap_or_else(|| self.hidden.clone()),
            given(o.hidden.is_some()),
            o.batch.unwrap_or(self.batch),
            given(o.batch.is_some()),
            o.lr.unwrap_or(self.lr),
            given(o.lr.is_some()),
            o.weight_decay.unwrap_or(self.weight_decay),
            given(o.weight_decay.is_some()),
            o.trace.map_or(self.trace, |t| t.kind(d)),
            given(o.trace.is_some()),
            o.iters.unwrap_or(self.iters),
            given(o.iters.is_some()),
            o.val_every.unwrap_or(self.val_every),
            given(o.val_every.is_some()),
            o.patience.unwrap_or(self.patience),
            given(o.patience.is_some()),
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
