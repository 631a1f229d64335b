//! Error types of this crate: one enum per concern, each variant a one-line
//! message that names the file, line and column where that applies.

use std::path::PathBuf;

/// Errors from reading, writing, splitting, standardising or fitting data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// A CSV record has a different number of fields than the first record (or the header).
    #[error("{}: line {line} has {found} fields, expected {expected}", path.display())]
    RaggedRow {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number in the file (the header, if any, is line 1).
        line: usize,
        /// Number of fields on that line.
        found: usize,
        /// Number of fields of the first record, which fixes the width of the table.
        expected: usize,
    },
    /// A CSV field does not parse as a number.
    #[error("{}: line {line}, column {column}: {text:?} is not a number", path.display())]
    NotNumeric {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// 1-based column (field) number on that line.
        column: usize,
        /// The field as written in the file.
        text: String,
    },
    /// A CSV field parses as a number but is infinite or NaN (`inf`, `NaN`, or out of the `f64`
    /// range), which no density model can use.
    #[error("{}: line {line}, column {column}: value {text:?} is not finite", path.display())]
    NonFinite {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// 1-based column (field) number on that line.
        column: usize,
        /// The field as written in the file.
        text: String,
    },
    /// A header field is not valid UTF-8, so it cannot be a column name.
    #[error("{}: line {line}, column {column}: the header is not valid UTF-8", path.display())]
    NotUtf8 {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number of the header.
        line: usize,
        /// 1-based column number of the offending header field.
        column: usize,
    },
    /// Any other CSV reader error (for instance an unterminated quote).
    #[error("{}: line {line}: {message}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number where the reader failed; 0 when the reader does not know.
        line: usize,
        /// The CSV reader's description of the problem.
        message: String,
    },
    /// A CSV or `.npy` file holds no data (an empty file, a header only, or a zero-sized array).
    #[error("{}: no data rows", path.display())]
    NoRows {
        /// The empty file.
        path: PathBuf,
    },
    /// A column given to select or drop names no column of the file (neither a header name nor
    /// a 0-based index below the number of columns).
    #[error("{}: unknown column {name:?} (available: {})", path.display(), available.join(", "))]
    UnknownColumn {
        /// The file the columns were selected from.
        path: PathBuf,
        /// The name (or index) as given.
        name: String,
        /// The file's column names, listed in the message to help fix the selection.
        available: Vec<String>,
    },
    /// Two columns of a CSV header have the same name, and the selection keeps both or names
    /// one of them: which column the name means would be a guess (`density` matches columns by
    /// name).
    #[error(
        "{}: columns {first} and {second} are both named {name:?}; rename one (or leave one \
         out with a selection by index)",
        path.display()
    )]
    DuplicateColumn {
        /// The CSV file.
        path: PathBuf,
        /// The repeated name.
        name: String,
        /// 1-based position of its first column.
        first: usize,
        /// 1-based position of the other column of that name.
        second: usize,
    },
    /// A column selection keeps one column twice (`x,x`, or `x,0` when column 0 is `x`): the
    /// model would read the same data as two columns.
    #[error(
        "{}: the column selection names column {name:?} twice ({first:?} and {second:?})",
        path.display()
    )]
    RepeatedColumn {
        /// The file the columns were selected from.
        path: PathBuf,
        /// The column's name.
        name: String,
        /// The first entry of the selection that names it, as given.
        first: String,
        /// The second entry of the selection that names it, as given.
        second: String,
    },
    /// Selecting and dropping columns left none.
    #[error("{}: the column selection leaves no columns", path.display())]
    NoColumns {
        /// The file the columns were selected from.
        path: PathBuf,
    },
    /// A `.npy` file is malformed, truncated, not a 1-D or 2-D float32 / float64 array, or holds
    /// a non-finite value.
    #[error("{}: {message}", path.display())]
    Npy {
        /// The `.npy` file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A table's data length does not equal rows times columns.
    #[error("table shape {n_rows}x{n_cols} needs {expected} values, got {found}")]
    Shape {
        /// Number of rows asked for.
        n_rows: usize,
        /// Number of columns asked for.
        n_cols: usize,
        /// `n_rows * n_cols` (`usize::MAX` if that overflows).
        expected: usize,
        /// Length of the data given.
        found: usize,
    },
    /// A table built in memory holds an infinite or NaN value.
    #[error("row {row}, column {column}: value {value} is not finite")]
    NonFiniteValue {
        /// 0-based row index of the first such value.
        row: usize,
        /// 0-based column index of that value.
        column: usize,
        /// The value itself (infinite or NaN).
        value: f64,
    },
    /// Train / validation / test fractions that are negative, not finite, or do not sum to 1;
    /// holds the fractions as given.
    #[error("split fractions {0:?} must be non-negative, finite and sum to 1")]
    BadSplit([f64; 3]),
    /// An operation needs more rows than the table has (2 to fit a Gaussian or a
    /// standardisation, 1 to average an NLL).
    #[error("need at least {needed} rows, got {found}")]
    TooFewRows {
        /// Minimum number of rows the operation needs.
        needed: usize,
        /// Number of rows the table has.
        found: usize,
    },
    /// A table, row or matrix has a different number of columns than the model or
    /// transformation it is used with.
    #[error("expected {expected} columns, got {found}")]
    ColumnCount {
        /// Number of columns (dimension) expected.
        expected: usize,
        /// Number of columns given.
        found: usize,
    },
    /// A column has (numerically) zero variance in the rows a standardisation is fitted on, so
    /// dividing by its standard deviation is impossible; the column should be dropped.
    #[error(
        "column {name:?} is constant ({}) in the {rows} rows the standardisation was fitted \
         on, so it cannot be standardised (drop it)",
        short(*value)
    )]
    ConstantColumn {
        /// The column's name.
        name: String,
        /// Its value in the first of those rows (the constant, up to round-off).
        value: f64,
        /// Number of rows the standardisation was fitted on.
        rows: usize,
    },
    /// A column varies in the file but is constant in its training split (the rows the
    /// standardisation is fitted on): a density fitted to those rows would put all its mass on
    /// one value of that column, and every other value would be impossible.
    #[error(
        "column {name:?} is constant ({}) in the {rows} rows of the training split, though it \
         varies in the whole file ({total} rows): a density fitted to the training rows cannot \
         explain its other values (drop the column, or add rows where it varies)",
        short(*value)
    )]
    ConstantInSplit {
        /// The column's name.
        name: String,
        /// Its value in the training split.
        value: f64,
        /// Rows of the training split.
        rows: usize,
        /// Rows of the whole table.
        total: usize,
    },
    /// A column's magnitudes are so large that its mean or standard deviation overflows `f64`
    /// even after rescaling.
    #[error("column {name:?}: values up to {max_abs:e} are too large to standardise")]
    TooLargeToStandardise {
        /// The column's name.
        name: String,
        /// Its largest magnitude.
        max_abs: f64,
    },
    /// The train / validation split of a file leaves fewer than 2 training rows or no
    /// validation row.
    #[error(
        "{}: {rows} data row{} leave{} {train} for training and {val} for validation; \
         need at least 2 to train and 1 to validate{}",
        path.display(),
        if *rows == 1 { "" } else { "s" },
        if *rows == 1 { "s" } else { "" },
        needed.map_or(String::new(), |n| format!(": at least {n} rows in all"))
    )]
    SplitTooSmall {
        /// The file the table came from.
        path: PathBuf,
        /// Number of data rows in the file.
        rows: usize,
        /// Rows the split gives to training.
        train: usize,
        /// Rows the split gives to validation.
        val: usize,
        /// The smallest number of rows with which the same fractions would work, if one was found
        /// (the search stops a million rows above the current count).
        needed: Option<usize>,
    },
    #[error("the covariance matrix is singular or not positive definite")]
    /// A covariance matrix has no Cholesky factor: singular (collinear or too few distinct
    /// rows) or not positive definite.
    SingularCovariance,
}

/// `v` for a message: `{}` between 1e-5 and 1e16 (and for 0), `{:e}` outside, so that no
/// number prints as hundreds of digits (`{}` of 1e-300 does).
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) || !a.is_finite() {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Errors from the optimiser.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimError {
    /// An Adam hyper-parameter is out of range or not finite.
    #[error("invalid Adam setting {name} = {value}: {why}")]
    BadSetting {
        /// The setting's name (`lr`, `beta1`, `beta2`, `eps`, `weight_decay` or `ema_decay`).
        name: &'static str,
        /// The value given.
        value: f64,
        /// The range it must lie in, in words (for instance "must be positive").
        why: &'static str,
    },
    /// The parameter or gradient slice passed to a step does not match the number of
    /// parameters the optimiser was created for.
    #[error(
        "optimiser holds {expected} parameters, got {params} parameters and {grads} gradients"
    )]
    Length {
        /// Number of parameters the optimiser holds moments for.
        expected: usize,
        /// Length of the parameter slice given.
        params: usize,
        /// Length of the gradient slice given.
        grads: usize,
    },
}

/// Errors from drawing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The plotting back end failed to draw or write the image.
    #[error("{}: drawing failed: {message}", path.display())]
    Draw {
        /// The image file being drawn.
        path: PathBuf,
        /// The back end's error message.
        message: String,
    },
    /// Plot bounds `[x_min, x_max, y_min, y_max]` that are not finite or are empty ranges;
    /// holds the bounds as given.
    #[error("bounds {0:?} must be finite with x_min < x_max and y_min < y_max")]
    BadBounds([f64; 4]),
    /// Other unusable plot input (for instance a non-positive resolution or no finite value to
    /// plot); holds the reason.
    #[error("bad plot input: {0}")]
    BadInput(String),
}

/// Errors of training and of the command line.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading, splitting or standardising the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The optimiser rejected its settings or a step.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// Drawing a plot failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Building, loading or saving the vector field failed.
    #[error("model: {0}")]
    Field(#[from] cnf_field::FieldError),
    /// Evaluating the flow failed (shape errors, non-finite input, ODE solver failures).
    #[error(transparent)]
    Flow(#[from] cnf_flow::FlowError),
    /// Reading or writing a file (model folder, metrics, output) failed; `what` names it and
    /// the I/O error is kept as the source.
    #[error("{what}: {source}")]
    Io {
        /// The file or stream, as the user would name it.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config.json, checkpoint.json) could not be read or written; `what` names it.
    #[error("{what}: {source}")]
    Json {
        /// The file, or what was being serialised.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An invalid setting, configuration or model folder; holds the message.
    #[error("{0}")]
    Invalid(String),
    /// Training diverged; whatever checkpoint was written before stays. `kept` says which (the
    /// command line fills it in; the trainer does not know the folder layout).
    #[error("training stopped at iteration {iter}: {reason}{kept}")]
    Diverged {
        /// Where training stopped: the 0-based index of the step whose loss or gradient was
        /// non-finite (or whose solve failed), or the number of steps done when validation failed.
        iter: usize,
        /// What went wrong (the non-finite quantity or the solver's error).
        reason: String,
        /// Appended to the message: empty from the trainer; the command line fills in which
        /// checkpoint is kept.
        kept: String,
    },
}

impl TrainError {
    /// Wraps an I/O error about `what` (a path or a stream): `.map_err(TrainError::io(&path))`.
    pub fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> TrainError {
        let what = what.to_string();
        move |source| TrainError::Io { what, source }
    }
    /// Wraps a JSON error about `what`: `.map_err(TrainError::json(&path))`.
    pub fn json(what: impl std::fmt::Display) -> impl FnOnce(serde_json::Error) -> TrainError {
        let what = what.to_string();
        move |source| TrainError::Json { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// I/O and JSON errors keep their cause: the message names the file, `source()` is the
    /// original error.
    #[test]
    fn errors_keep_their_cause() {
        let e = TrainError::io("runs/m/config.json")(std::io::Error::other("disk full"));
        assert_eq!(e.to_string(), "runs/m/config.json: disk full");
        assert_eq!(e.source().unwrap().to_string(), "disk full");
        let bad = serde_json::from_str::<f64>("{").unwrap_err();
        let e = TrainError::json("checkpoint.json")(bad);
        assert!(e.to_string().starts_with("checkpoint.json: "));
        assert!(e.source().unwrap().is::<serde_json::Error>());
    }
}
