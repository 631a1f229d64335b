//! `cnf density`: the input's rows, every column as it was, with the model's log-density
//! appended as `logp`; written through the project's atomic write path, so any error leaves
//! an existing output file byte for byte intact.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cnf_train::atomic::{same_file, OutputFile};
use cnf_train::data::table::default_names;
use cnf_train::data::{read_table, ColumnSelection, Table};
use cnf_train::error::{DataError, TrainError};
use cnf_train::model::{describe_solver, ModelConfig};

use super::inspect::{densities, lacks_columns, open, precision, read_points};
use super::solver_config;
use crate::cli::DensityArgs;

/// The name of the appended column.
const LOGP: &str = "logp";

fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Where the result goes: `None` for standard output. An output that is the input file is
/// refused unless `--in-place` asks for it; `--in-place` alone means the input.
fn output_path(args: &DensityArgs) -> Result<Option<PathBuf>, TrainError> {
    let input = &args.input;
    let npy_in_place = || {
        TrainError::Invalid(format!(
            "--in-place would replace the .npy file {} with CSV; give another --output",
            input.display()
        ))
    };
    match (&args.output, args.in_place) {
        (None, false) => Ok(None),
        (None, true) if is_npy(input) => Err(npy_in_place()),
        (None, true) => Ok(Some(input.clone())),
        (Some(out), in_place) => {
            let same = same_file(out, input);
            if same && !in_place {
                Err(TrainError::Invalid(format!(
                    "--output {} is the input file; add --in-place to replace it (the result \
                     is written in full beside it first), or choose another output",
                    out.display()
                )))
            } else if !same && in_place {
                Err(TrainError::Invalid(format!(
                    "--in-place replaces the input {}, but --output names another file ({}); \
                     drop one of them",
                    input.display(),
                    out.display()
                )))
            } else if same && is_npy(input) {
                Err(npy_in_place())
            } else {
                Ok(Some(out.clone()))
            }
        }
    }
}

/// The model's columns of the input as numbers: by name when the header has them (other
/// columns may hold anything, words too), else, without a header, all columns in order.
fn read_model_columns(config: &ModelConfig, path: &Path) -> Result<Table, TrainError> {
    if !is_npy(path) {
        let by_name = ColumnSelection {
            columns: Some(config.columns.clone()),
            ..Default::default()
        };
        match read_table(path, &by_name) {
            Ok(t) if t.names() == config.columns.as_slice() => {
                if let Some(note) = t.header_note() {
                    eprintln!("note: {note}");
                }
                return Ok(t);
            }
            // Selected by index (a header of numbers): decide as without a header.
            Ok(_) => {}
            Err(TrainError::Data(DataError::UnknownColumn { available, .. }))
                if available != default_names(available.len()) =>
            {
                // A damaged file is reported as such first (a ragged row, a non-finite
                // value), as by `read_points`; a word in another column is no damage.
                match read_points(config, path) {
                    Err(TrainError::Data(DataError::NotNumeric { .. })) => {}
                    other => return other,
                }
                return Err(lacks_columns(config, path, &available));
            }
            Err(TrainError::Data(DataError::UnknownColumn { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    read_points(config, path)
}

/// A CSV reader with the settings of the numeric reader (`cnf_train::data::read_csv`), so that
/// both see the same records.
fn csv_reader(file: File) -> csv::Reader<File> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(1 << 16)
        .from_reader(file)
}

/// The next non-blank record; false at the end.
fn next_record(
    reader: &mut csv::Reader<File>,
    record: &mut csv::ByteRecord,
    path: &Path,
) -> Result<bool, TrainError> {
    loop {
        if !reader
            .read_byte_record(record)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?
        {
            return Ok(false);
        }
        let blank = record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace);
        if !blank {
            return Ok(true);
        }
    }
}

/// A field as the numeric reader sees it: quotes the csv crate kept (`1, "a"`: spaces before
/// the quote) dropped, `""` read as `"`.
fn clean(field: &[u8]) -> Vec<u8> {
    match field {
        [b'"', inner @ .., b'"'] => {
            let text = String::from_utf8_lossy(inner).trim().replace("\"\"", "\"");
            text.into_bytes()
        }
        _ => field.to_vec(),
    }
}

/// The input's rows as text, read in step with the numeric table.
struct Passthrough {
    path: PathBuf,
    reader: csv::Reader<File>,
    record: csv::ByteRecord,
    /// Names of the input's columns (its header, or `x0, x1, ...`).
    names: Vec<Vec<u8>>,
    /// The input's own `logp` column, whose values are replaced.
    logp: Option<usize>,
}

impl Passthrough {
    /// Opens `path`, whose numeric reading gave `rows` rows: one record more means a header.
    fn open(path: &Path, rows: usize) -> Result<Self, TrainError> {
        let open = || File::open(path).map_err(TrainError::io(path.display()));
        let mut record = csv::ByteRecord::new();
        let mut counter = csv_reader(open()?);
        let (mut count, mut width) = (0usize, 0usize);
        while next_record(&mut counter, &mut record, path)? {
            if count == 0 {
                width = record.len();
            }
            count += 1;
        }
        let mut reader = csv_reader(open()?);
        let changed = || {
            TrainError::Invalid(format!(
                "{} changed while it was read; try again",
                path.display()
            ))
        };
        let names: Vec<Vec<u8>> = if count == rows + 1 {
            if !next_record(&mut reader, &mut record, path)? {
                return Err(changed());
            }
            record
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let f = if j == 0 {
                        f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
                    } else {
                        f
                    };
                    clean(f)
                })
                .collect()
        } else if count == rows {
            default_names(width)
                .into_iter()
                .map(String::into_bytes)
                .collect()
        } else {
            return Err(changed());
        };
        let logp = names.iter().position(|n| n == LOGP.as_bytes());
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            record,
            names,
            logp,
        })
    }

    /// Writes the next input row with `logp` (replaced or appended).
    fn write_row<W: Write>(&mut self, out: &mut csv::Writer<W>, logp: &str) -> Result<(), String> {
        match next_record(&mut self.reader, &mut self.record, &self.path) {
            Ok(true) => {}
            Ok(false) => return Err(format!("{} changed while it was read", self.path.display())),
            Err(e) => return Err(e.to_string()),
        }
        let csv = |e: csv::Error| e.to_string();
        for (j, f) in self.record.iter().enumerate() {
            if Some(j) == self.logp {
                out.write_field(logp).map_err(csv)?;
            } else {
                out.write_field(clean(f)).map_err(csv)?;
            }
        }
        if self.logp.is_none() {
            out.write_field(logp).map_err(csv)?;
        }
        out.write_record(None::<&[u8]>).map_err(csv)
    }
}

/// `cnf density`: every column of the input, in order, as it was written, with `logp` (the
/// data-space log-density) appended, or replacing an input column named `logp`. Only the
/// model's columns must be numbers. A `.npy` input (or a pipe, which cannot be read twice)
/// gives the model's columns and `logp`.
pub fn density(args: &DensityArgs) -> Result<(), TrainError> {
    let output = output_path(args)?;
    let (dir, config) = open(&args.model)?;
    if config.columns.iter().any(|c| c == LOGP) {
        return Err(TrainError::Invalid(format!(
            "the model has a column named {LOGP}, the name of the output's log-density column; \
             rename that column and retrain"
        )));
    }
    let table = read_model_columns(&config, &args.input)?;
    let regular = std::fs::metadata(&args.input).is_ok_and(|m| m.is_file());
    let mut raw = if regular && !is_npy(&args.input) {
        Some(Passthrough::open(&args.input, table.n_rows())?)
    } else {
        None
    };
    if raw.as_ref().is_some_and(|r| r.logp.is_some()) {
        eprintln!(
            "note: {} has a {LOGP} column: its values are replaced",
            args.input.display()
        );
    }
    let solver = solver_config(&config.solver, &args.solver)?;
    let prec = precision(&config, args.f64);

    let target = output
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string());
    // Nothing replaces an existing file until every row is written (`commit`).
    let mut file = output.as_deref().map(OutputFile::create).transpose()?;
    let mut stdout;
    let sink: &mut dyn Write = match file.as_mut() {
        Some(f) => f,
        None => {
            stdout = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            &mut stdout
        }
    };
    let mut w = csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(sink);
    let fail = |e: String| TrainError::Invalid(format!("writing {target}: {e}"));
    let header: Vec<Vec<u8>> = match raw.as_ref() {
        Some(r) if r.logp.is_some() => r.names.clone(),
        Some(r) => r.names.iter().cloned().chain([LOGP.into()]).collect(),
        None => table
            .names()
            .iter()
            .map(|n| n.clone().into_bytes())
            .chain([LOGP.into()])
            .collect(),
    };
    w.write_record(&header).map_err(|e| fail(e.to_string()))?;
    let stats = densities(&dir, &config, &solver, prec, &table, &mut |part, lp| {
        for (row, v) in part.rows().zip(lp) {
            let v = v.to_string();
            match raw.as_mut() {
                Some(r) => r.write_row(&mut w, &v).map_err(fail)?,
                None => {
                    for x in row {
                        w.write_field(x.to_string())
                            .map_err(|e| fail(e.to_string()))?;
                    }
                    w.write_field(&v).map_err(|e| fail(e.to_string()))?;
                    w.write_record(None::<&[u8]>)
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        Ok(())
    })?;
    w.flush().map_err(|e| fail(e.to_string()))?;
    drop(w);
    if let Some(f) = file {
        f.commit()?;
    }
    eprintln!(
        "log-densities of {} points (data space, exact trace, {} in {}, {stats})",
        table.n_rows(),
        describe_solver(&solver),
        prec.as_str()
    );
    Ok(())
}
