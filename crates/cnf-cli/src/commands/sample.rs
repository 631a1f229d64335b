//! `cnf sample` and `cnf plot`: drawing from a model folder.
//!
//! Both run in the model's precision (`precision` in config.json; f64 with `--f64`) with
//! parallel solves of [`SOLVE_CHUNK`] points. `cnf sample` streams: it draws, solves and writes
//! [`STREAM_CHUNK`] points at a time, so memory does not grow with `-n`.
use std::io::{BufWriter, ErrorKind, Write};

use cnf_field::{Mlp, Real};
use cnf_flow::{Cnf, FlowError};
use cnf_ode::{cast, Stats};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::inspect::open;
use crate::cli::{PlotArgs, SampleArgs};
use crate::report::STREAM_CHUNK;
use crate::report::{fast, plot_density};
use cnf_train::atomic::OutputFile;
use cnf_train::error::TrainError;
use cnf_train::model::{describe_solver, ModelConfig, ModelDir, Precision};

/// Column names of the samples: the model's, or x0, x1, ... when it recorded none.
fn column_names(config: &ModelConfig) -> Vec<String> {
    let d = config.mlp.dim;
    if config.columns.len() == d {
        config.columns.clone()
    } else {
        (0..d).map(|i| format!("x{i}")).collect()
    }
}

/// What [`write_samples`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleReport {
    /// Rows written.
    pub written: usize,
    /// Work of all solves.
    pub stats: Stats,
    /// The reader went away (a closed pipe, e.g. `| head`) before all rows were written.
    pub closed_early: bool,
}

/// Draws `n` samples of `cnf` from `seed` and writes them as CSV (a header with the model's
/// column names, then one row per sample, in data space) to `out`, [`STREAM_CHUNK`] points at a
/// time. Base points come from one `StdRng::seed_from_u64(seed)` drawn in order, so the rows are
/// exactly those of `cnf.sample(n, &mut StdRng::seed_from_u64(seed))` with
/// `Batching::Chunks(SOLVE_CHUNK)`, whatever `n`. Values are written in the model's precision
/// (the shortest text that reads back to the same number), or as f64 when the model was
/// trained on standardised data (then `z * std + mean` is computed in f64).
pub fn write_samples<T: Real, W: Write>(
    cnf: &Cnf<T, Mlp<T>>,
    config: &ModelConfig,
    n: usize,
    seed: u64,
    out: &mut W,
) -> Result<SampleReport, TrainError> {
    let d = config.mlp.dim;
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
    let cnf = fast(cnf);
    let mut report = SampleReport::default();
    // The csv crate's writer (names with commas or quotes are quoted). A closed pipe ends the
    // output quietly; any other write error is reported.
    let mut w = csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(&mut *out);
    let io = |r: std::io::Result<()>| -> Result<bool, TrainError> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(TrainError::io("writing the samples")(e)),
        }
    };
    let csv = |r: Result<(), csv::Error>| -> Result<bool, TrainError> {
        match r.map_err(csv::Error::into_kind) {
            Ok(()) => Ok(true),
            Err(csv::ErrorKind::Io(e)) => io(Err(e)),
            Err(other) => Err(TrainError::Invalid(format!(
                "writing the samples: {other:?}"
            ))),
        }
    };
    if !csv(w.write_record(column_names(config)))? {
        report.closed_early = true;
        return Ok(report);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut field = String::with_capacity(32);
    while report.written < n {
        let m = (n - report.written).min(STREAM_CHUNK);
        let z: Vec<T> = (0..m * d)
            .map(|_| cast::<T>(Distribution::<f64>::sample(&StandardNormal, &mut rng)))
            .collect();
        let offset = report.written;
        let moved = cnf
            .transform(&z, T::one(), T::zero())
            .map_err(|e| match e {
                // Name the sample by its index in the whole draw, not in this chunk.
                FlowError::Solve {
                    sample: Some(i),
                    t,
                    message,
                    stats,
                } => FlowError::Solve {
                    sample: Some(i + offset),
                    t,
                    message,
                    stats,
                },
                other => other,
            })?;
        report.stats += moved.stats;
        for (i, row) in moved.points.chunks_exact(d).enumerate() {
            // Back to data space (whitening included) when the model was standardised.
            let data: Option<Vec<f64>> = config.standardizer.as_ref().map(|s| {
                let z: Vec<f64> = row.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect();
                s.inverse_row(&z)
            });
            for (j, &v) in row.iter().enumerate() {
                use std::fmt::Write as _;
                field.clear();
                let ok = match &data {
                    Some(x) => {
                        let x = x[j];
                        x.is_finite() && write!(field, "{x}").is_ok()
                    }
                    None => v.is_finite() && write!(field, "{v}").is_ok(),
                };
                if !ok {
                    return Err(FlowError::NonFiniteOutput {
                        sample: offset + i,
                        quantity: "sample",
                        precision: T::NAME,
                    }
                    .into());
                }
                if !csv(w.write_field(&field))? {
                    report.closed_early = true;
                    return Ok(report);
                }
            }
            if !csv(w.write_record(None::<&[u8]>))? {
                report.closed_early = true;
                return Ok(report);
            }
            report.written += 1;
        }
    }
    if !io(w.flush())? {
        report.closed_early = true;
    }
    Ok(report)
}

fn sample_as<T: Real>(
    dir: &ModelDir,
    config: &ModelConfig,
    args: &SampleArgs,
) -> Result<SampleReport, TrainError> {
    // --method/--steps/--rtol/--atol replace the model's solver (e.g. a few Euler steps for a
    // flow-matching model, whose straight paths need few).
    let solver = super::solver_config(&config.solver, &args.solver)?;
    let cnf = dir.load_cnf::<T>(config, Some(&solver))?;
    match args.output.as_deref() {
        // The project's one write path: a regular file is staged and renamed when complete (an
        // error or a kill leaves an old file intact); a special file (/dev/stdout, a FIFO) is
        // written in place.
        Some(p) => {
            let mut file = OutputFile::create(p)?;
            let report = write_samples(&cnf, config, args.n, args.seed, &mut file)?;
            if report.closed_early {
                // A reader closed a special file early: what was written stays.
                return Ok(report);
            }
            file.commit()?;
            Ok(report)
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            write_samples(&cnf, config, args.n, args.seed, &mut w)
        }
    }
}

/// `cnf sample`: `-n` rows of samples (data space) as CSV. `-n 0` is an error (this project's
/// readers refuse a CSV without rows, so an empty sample would be a file nothing here can read).
pub fn sample(args: &SampleArgs) -> Result<(), TrainError> {
    if args.n == 0 {
        return Err(TrainError::Invalid(
            "-n 0: nothing to sample; give -n 1 or more".into(),
        ));
    }
    let (dir, config) = open(&args.model)?;
    if args.n.checked_mul(config.mlp.dim).is_none() {
        return Err(TrainError::Invalid(format!(
            "-n {} times {} dimensions does not fit in memory addresses",
            args.n, config.mlp.dim
        )));
    }
    let precision = if args.f64 {
        Precision::F64
    } else {
        config.precision
    };
    let report = match precision {
        Precision::F32 => sample_as::<f32>(&dir, &config, args)?,
        Precision::F64 => sample_as::<f64>(&dir, &config, args)?,
    };
    let name = format!(
        "{}, {}",
        precision.as_str(),
        describe_solver(&super::solver_config(&config.solver, &args.solver)?)
    );
    if report.closed_early {
        eprintln!(
            "{} of {} samples written before the output was closed ({name}, {})",
            report.written, args.n, report.stats
        );
    } else {
        eprintln!("{} samples ({name}, {})", report.written, report.stats);
    }
    Ok(())
}

/// `cnf plot`.
pub fn plot(args: &PlotArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    if config.mlp.dim != 2 {
        return Err(TrainError::Invalid(format!(
            "plot needs a 2-D model, this one has {} dimensions",
            config.mlp.dim
        )));
    }
    match if args.f64 {
        Precision::F64
    } else {
        config.precision
    } {
        Precision::F32 => plot_density(
            &dir.load_cnf::<f32>(&config, None)?,
            &config,
            &args.out,
            args.resolution,
        )?,
        Precision::F64 => plot_density(
            &dir.load_cnf::<f64>(&config, None)?,
            &config,
            &args.out,
            args.resolution,
        )?,
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
