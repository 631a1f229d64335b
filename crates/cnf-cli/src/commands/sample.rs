//! `cnf sample` and `cnf plot`: drawing from a model folder.
//!
//! Both run in the model's precision (`precision` in config.json; f64 with `--f64`).
//! `cnf sample` streams (cnf-train's `LoadedFlow::write_samples`), so memory does not grow
//! with `-n`.
use std::io::BufWriter;

use crate::cli::{PlotArgs, SampleArgs};
use crate::report::plot_density;
use cnf_train::atomic::OutputFile;
use cnf_train::error::TrainError;
use cnf_train::session::{EvalOptions, LoadedFlow, SampleReport, Session};

/// Writes the samples to `--output` or standard output. A regular file is staged and renamed
/// when complete (an error or a kill leaves an old file intact); a special file (/dev/stdout,
/// a FIFO) is written in place, and what was written stays when its reader closes it early.
fn write(flow: &LoadedFlow, args: &SampleArgs, given: &[f64]) -> Result<SampleReport, TrainError> {
    match args.output.as_deref() {
        Some(p) => {
            let mut file = OutputFile::create(p)?;
            let report = flow.write_samples_given(args.n, args.seed, given, &mut file)?;
            if !report.closed_early {
                file.commit()?;
            }
            Ok(report)
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            flow.write_samples_given(args.n, args.seed, given, &mut w)
        }
    }
}

/// The context rows of `--given` (data space, row-major; empty for an unconditional model),
/// with its notes and far-outside-the-training-range warnings printed.
fn given_rows(session: &Session, args: &SampleArgs) -> Result<Vec<f64>, TrainError> {
    let context = session.context_columns();
    match (&args.given, context.is_empty()) {
        (None, true) => Ok(Vec::new()),
        (None, false) => Err(TrainError::Invalid(format!(
            "the model in {} is conditional on {}: give --given FILE, a CSV with those columns \
             (one row per condition)",
            args.model.display(),
            context.join(", ")
        ))),
        (Some(p), true) => Err(TrainError::Invalid(format!(
            "--given {}: the model in {} is unconditional (no context columns); sample without \
             --given",
            p.display(),
            args.model.display()
        ))),
        (Some(p), false) => {
            let mut notes = Vec::new();
            let table = session.read_context(p, &mut notes);
            notes.iter().for_each(|n| eprintln!("{n}"));
            let table = table?;
            if let Some(ctx) = &session.config().context {
                ctx.far_outside(&table)
                    .iter()
                    .for_each(|w| eprintln!("{w}"));
            }
            Ok(table.into_data())
        }
    }
}

/// `cnf sample`: `-n` rows of samples (data space) as CSV. `-n 0` is an error (this project's
/// readers refuse a CSV without rows, so an empty sample would be a file nothing here can read).
/// `--method/--steps/--rtol/--atol` replace the model's solver (e.g. a few Euler steps for a
/// flow-matching model, whose straight paths need few).
pub fn sample(args: &SampleArgs) -> Result<(), TrainError> {
    if args.n == 0 {
        return Err(TrainError::Invalid(
            "-n 0: nothing to sample; give -n 1 or more".into(),
        ));
    }
    let session = Session::open(&args.model)?;
    let given = given_rows(&session, args)?;
    let rows = (given.len() / session.context_columns().len().max(1)).max(1);
    if args.n.checked_mul(session.dim() * rows).is_none() {
        return Err(TrainError::Invalid(format!(
            "-n {} times {} dimensions for {rows} given row(s) does not fit in memory addresses",
            args.n,
            session.dim()
        )));
    }
    let flow = session.flow(&args.solver.eval_options(args.f64))?;
    let report = write(&flow, args, &given)?;
    let total = args.n * rows;
    let name = format!("{}, {}", flow.precision().as_str(), flow.describe_sampler());
    if report.closed_early {
        eprintln!(
            "{} of {} samples written before the output was closed ({name}, {})",
            report.written, total, report.stats
        );
    } else {
        eprintln!("{} samples ({name}, {})", report.written, report.stats);
    }
    Ok(())
}

/// `cnf plot`.
pub fn plot(args: &PlotArgs) -> Result<(), TrainError> {
    let session = Session::open(&args.model)?;
    if !session.context_columns().is_empty() {
        return Err(TrainError::Invalid(format!(
            "plot draws an unconditional density; the model in {} is conditional on {} (sample \
             it with cnf sample --given)",
            args.model.display(),
            session.context_columns().join(", ")
        )));
    }
    if session.dim() != 2 {
        return Err(TrainError::Invalid(format!(
            "plot needs a 2-D model, this one has {} dimensions",
            session.dim()
        )));
    }
    let options = EvalOptions {
        precision: args.f64.then_some(cnf_train::model::Precision::F64),
        ..EvalOptions::default()
    };
    plot_density(&session.flow(&options)?, &args.out, args.resolution)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
