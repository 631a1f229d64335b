//! `cnf eval` and `cnf import`: using and making a model folder.
use crate::cli::{EvalArgs, ImportArgs};
use cnf_train::error::TrainError;
use cnf_train::session::{import_npz, Evaluation, Session, SOLVE_POINTS};

/// `cnf import`.
pub fn import(args: &ImportArgs) -> Result<(), TrainError> {
    let (_, params) = import_npz(
        &args.npz,
        &args.arch.hidden(),
        args.arch.activation(),
        &args.solver.overrides(),
        &args.out,
        args.force,
    )?;
    eprintln!("imported {params} parameters into {}", args.out.display());
    Ok(())
}

/// The evaluation in words, one line per figure.
fn print_text(e: &Evaluation) {
    let spread = e
        .stderr
        .map_or(" (one point: no standard error)".to_string(), |s| {
            format!(" +- {s:.4}")
        });
    let (what, gaussian) = if e.given.is_empty() {
        ("test NLL", "full-covariance Gaussian")
    } else {
        (
            "test conditional NLL -log p(x | c)",
            "linear-Gaussian p(x | c)",
        )
    };
    if !e.given.is_empty() {
        println!("conditional model: c = {}", e.given.join(", "));
    }
    println!(
        "{what} {:.4}{spread} nats ({:.4} per dimension) on {} points of {} (data space, exact \
         trace, {}, {}, NFE {} in {} solves of up to {SOLVE_POINTS} points)",
        e.test_nll, e.test_nll_per_dim, e.n, e.points, e.solver, e.precision, e.nfe, e.solves
    );
    if let (Some(g), Some(s)) = (e.gaussian_nll, e.gaussian_stderr) {
        println!("{gaussian} fitted to the training split: {g:.4} +- {s:.4} nats");
    }
    if let Some(w) = &e.gaussian_warning {
        println!("warning: {w}");
    }
    match (e.w2, &e.w2_missing) {
        (Some(w2), _) if !e.given.is_empty() => println!(
            "sample quality: W2 {w2:.4} between {} rows (x ~ model given c, c) (seed 0) and the \
             {} test rows (x, c) (data space, exact OT)",
            e.w2_n, e.w2_n
        ),
        (Some(w2), _) => println!(
            "sample quality: W2 {w2:.4} between {} model samples (seed 0) and {} test points \
             (data space, exact OT)",
            e.w2_n, e.w2_n
        ),
        (None, Some(why)) => println!("sample quality: unavailable ({why})"),
        (None, None) => {}
    }
    if let Some(why) = &e.gaussian_missing {
        println!("{why}");
    }
}

/// `cnf eval`.
pub fn eval(args: &EvalArgs) -> Result<(), TrainError> {
    let session = Session::open(&args.model)?;
    let options = args.solver.eval_options(args.f64);
    let (evaluation, notes) = session.evaluate(&args.data, &options)?;
    for note in notes {
        eprintln!("{note}");
    }
    if args.json {
        let json = serde_json::to_string(&evaluation).map_err(TrainError::json("the report"))?;
        println!("{json}");
    } else {
        print_text(&evaluation);
    }
    Ok(())
}
