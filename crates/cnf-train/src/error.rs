//! Error types of this crate: one enum per concern, each variant a one-line
//! message that names the file, line and column where that applies.

use std::path::PathBuf;

/// Errors from reading, writing, splitting, standardising or fitting data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line} has {found} fields, expected {expected}", path.display())]
    RaggedRow {
        path: PathBuf,
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("{}: line {line}, column {column}: {text:?} is not a number", path.display())]
    NotNumeric {
        path: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
    #[error("{}: line {line}, column {column}: value {text:?} is not finite", path.display())]
    NonFinite {
        path: PathBuf,
        line: usize,
        column: usize,
        text: String,
    },
    #[error("{}: line {line}, column {column}: the header is not valid UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: no data rows", path.display())]
    NoRows { path: PathBuf },
    #[error("{}: unknown column {name:?} (available: {})", path.display(), available.join(", "))]
    UnknownColumn {
        path: PathBuf,
        name: String,
        available: Vec<String>,
    },
    #[error("{}: the column selection leaves no columns", path.display())]
    NoColumns { path: PathBuf },
    #[error("{}: {message}", path.display())]
    Npy { path: PathBuf, message: String },
    #[error("table shape {n_rows}x{n_cols} needs {expected} values, got {found}")]
    Shape {
        n_rows: usize,
        n_cols: usize,
        expected: usize,
        found: usize,
    },
    #[error("row {row}, column {column}: value {value} is not finite")]
    NonFiniteValue {
        row: usize,
        column: usize,
        value: f64,
    },
    #[error("split fractions {0:?} must be non-negative, finite and sum to 1")]
    BadSplit([f64; 3]),
    #[error("need at least {needed} rows, got {found}")]
    TooFewRows { needed: usize, found: usize },
    #[error("expected {expected} columns, got {found}")]
    ColumnCount { expected: usize, found: usize },
    #[error(
        "column {name:?} is constant ({value}) in the {rows} rows the standardisation was \
         fitted on, so it cannot be standardised (drop it)"
    )]
    ConstantColumn {
        name: String,
        value: f64,
        rows: usize,
    },
    #[error("column {name:?}: values up to {max_abs:e} are too large to standardise")]
    TooLargeToStandardise { name: String, max_abs: f64 },
    #[error(
        "{}: {rows} data row{} leave{} {train} for training and {val} for validation; \
         need at least 2 to train and 1 to validate{}",
        path.display(),
        if *rows == 1 { "" } else { "s" },
        if *rows == 1 { "s" } else { "" },
        needed.map_or(String::new(), |n| format!(": at least {n} rows in all"))
    )]
    SplitTooSmall {
        path: PathBuf,
        rows: usize,
        train: usize,
        val: usize,
        needed: Option<usize>,
    },
    #[error("the covariance matrix is singular or not positive definite")]
    SingularCovariance,
}

/// Errors from the optimiser.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimError {
    #[error("invalid Adam setting {name} = {value}: {why}")]
    BadSetting {
        name: &'static str,
        value: f64,
        why: &'static str,
    },
    #[error(
        "optimiser holds {expected} parameters, got {params} parameters and {grads} gradients"
    )]
    Length {
        expected: usize,
        params: usize,
        grads: usize,
    },
}

/// Errors from drawing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: drawing failed: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("bounds {0:?} must be finite with x_min < x_max and y_min < y_max")]
    BadBounds([f64; 4]),
    #[error("bad plot input: {0}")]
    BadInput(String),
}

/// Errors of training and of the command line.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("model: {0}")]
    Field(#[from] cnf_field::FieldError),
    #[error(transparent)]
    Flow(#[from] cnf_flow::FlowError),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
    /// Training diverged; whatever checkpoint was written before stays. `kept` says which (the
    /// command line fills it in; the trainer does not know the folder layout).
    #[error("training stopped at iteration {iter}: {reason}{kept}")]
    Diverged {
        iter: usize,
        reason: String,
        kept: String,
    },
}
