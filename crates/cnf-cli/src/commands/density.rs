//! `cnf density`: the input's rows, every column as it was, with the model's log-density
//! appended as `logp`; written through the project's atomic write path, so any error leaves
//! an existing output file byte for byte intact.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cnf_train::atomic::{same_file, OutputFile};
use cnf_train::data::table::default_names;
use cnf_train::data::Table;
use cnf_train::error::TrainError;
use cnf_train::session::{is_npy, LoadedFlow, Session};

use crate::cli::DensityArgs;

/// The name of the appended column.
const LOGP: &str = "logp";

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

/// Writes the header and, as the log-densities come, the rows: the input's own fields
/// (`raw`) or, without them, the model's columns; returns the work of the solves.
fn write_rows(
    flow: &LoadedFlow,
    table: &Table,
    raw: &mut Option<Passthrough>,
    sink: &mut dyn Write,
    target: &str,
) -> Result<cnf_train::session::Stats, TrainError> {
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
    let stats = flow.log_density_chunks(table, &mut |part, lp| {
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
    Ok(stats)
}

/// `cnf density`: every column of the input, in order, as it was written, with `logp` (the
/// data-space log-density) appended, or replacing an input column named `logp`. Only the
/// model's columns must be numbers. A `.npy` input (or a pipe, which cannot be read twice)
/// gives the model's columns and `logp`.
pub fn density(args: &DensityArgs) -> Result<(), TrainError> {
    let output = output_path(args)?;
    let session = Session::open(&args.model)?;
    if session.config().columns.iter().any(|c| c == LOGP) {
        return Err(TrainError::Invalid(format!(
            "the model has a column named {LOGP}, the name of the output's log-density column; \
             rename that column and retrain"
        )));
    }
    let mut notes = Vec::new();
    let table = session.read_points(&args.input, &mut notes);
    notes.iter().for_each(|n| eprintln!("{n}"));
    let table = table?;
    if let Some(ctx) = &session.config().context {
        let d = session.dim();
        let context = table.select_columns(d..d + ctx.width());
        ctx.far_outside(&context)
            .iter()
            .for_each(|w| eprintln!("{w}"));
    }
    let regular = std::fs::metadata(&args.input).is_ok_and(|m| m.is_file());
    let mut raw = if regular && !is_npy(&args.input) {
        Some(Passthrough::open(&args.input, table.n_rows())?)
    } else {
        None
    };
    if raw.as_ref().is_some_and(|r| r.logp.is_some()) {
        let input = args.input.display();
        eprintln!("note: {input} has a {LOGP} column: its values are replaced");
    }
    let flow = session.flow(&args.solver.eval_options(args.f64))?;
    let target = output
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string());
    // Nothing replaces an existing file until every row is written (`commit`).
    let stats = match output.as_deref().map(OutputFile::create).transpose()? {
        Some(mut f) => {
            let stats = write_rows(&flow, &table, &mut raw, &mut f, &target)?;
            f.commit()?;
            stats
        }
        None => {
            let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            write_rows(&flow, &table, &mut raw, &mut out, &target)?
        }
    };
    eprintln!(
        "log-densities of {} points (data space, exact trace, {} in {}, {stats})",
        table.n_rows(),
        flow.describe_solver(),
        flow.precision().as_str()
    );
    Ok(())
}
