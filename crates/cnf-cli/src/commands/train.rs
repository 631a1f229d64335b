//! `cnf train`: the flags mapped onto a `RunPlan`, trained by a `Session` with the progress bar.
use cnf_train::data::ColumnSelection;
use cnf_train::error::TrainError;
use cnf_train::fm::{Coupling, FlowMatching, PathSpec, TimeDist};
use cnf_train::model::{DataSource, ModelConfig, Precision, METRICS_FILE, TRAINING_CURVE_FILE};
use cnf_train::session::{flow_matching_by_default, ResumeOptions, RunPlan, Session, TrainOptions};
use cnf_train::trainer::{Differentiation, Regularisers};

use crate::cli::{CouplingArg, ObjectiveArg, PathArg, TrainArgs};
use crate::progress::Progress;
use crate::report::{plot_model, plot_training_curve};

/// The flow-matching settings of `--objective fm` (None for maximum likelihood).
fn flow_matching(args: &TrainArgs) -> Result<Option<FlowMatching>, TrainError> {
    let default = match flow_matching_by_default(args.context.is_some()) {
        true => ObjectiveArg::Fm,
        false => ObjectiveArg::Ml,
    };
    if args.objective.unwrap_or(default) != ObjectiveArg::Fm {
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

/// The settings of a new run that the flags give.
fn train_options(args: &TrainArgs) -> Result<TrainOptions, TrainError> {
    Ok(TrainOptions {
        seed: args.seed,
        hidden: args.arch.hidden.clone(),
        activation: args.arch.activation.map(Into::into),
        solver: args.solver.overrides(),
        batch: args.batch,
        lr: args.lr,
        lr_schedule: args.lr_schedule.map(Into::into),
        weight_decay: args.weight_decay,
        ema_decay: args.ema_decay,
        trace: args.trace.map(Into::into),
        iters: args.iters,
        val_every: args.val_every,
        patience: args.patience,
        grad: grad(args)?,
        flow_matching: flow_matching(args)?,
        regularisers: regularisers(args)?,
        precision: args.f64.then_some(Precision::F64),
        context: args.context.clone(),
    })
}

/// The table selection of `--columns`, `--drop` and `--header` (None: none given).
fn selection(args: &TrainArgs) -> Option<ColumnSelection> {
    (args.columns.is_some() || args.drop.is_some() || args.header.is_some()).then(|| {
        ColumnSelection {
            columns: args.columns.clone(),
            drop: args.drop.clone().unwrap_or_default(),
            header: args.header.unwrap_or_default(),
        }
    })
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

/// Checks the flags of a resume against the run's config.json.
fn check_resume_flags(args: &TrainArgs, config: &ModelConfig) -> Result<(), TrainError> {
    let Some(tr) = &config.training else {
        return Ok(());
    };
    if let DataSource::Table {
        columns,
        drop,
        header,
        ..
    } = &config.data
    {
        check_same("--header", args.header, *header)?;
        match &config.context {
            // A conditional run records its modelled and context columns by name.
            Some(c) => {
                check_same("--columns", args.columns.clone(), config.columns.clone())?;
                check_same("--context", args.context.clone(), c.columns.clone())?;
            }
            None => {
                check_same("--columns", args.columns.clone().map(Some), columns.clone())?;
                check_same("--drop", args.drop.clone(), drop.clone())?;
            }
        }
    }
    if config.context.is_none() && args.context.is_some() {
        return Err(TrainError::Invalid(
            "--context: the run being resumed is unconditional; a conditional model is a new \
             run"
            .into(),
        ));
    }
    check_same(
        "--hidden",
        args.arch.hidden.clone(),
        config.mlp.hidden.clone(),
    )?;
    let activation = args.arch.activation.map(Into::into);
    check_same("--activation", activation, config.mlp.activation)?;
    let solver = args.solver.overrides().apply(&config.solver)?;
    let flags = "--method/--steps/--rtol/--atol/--error-norm";
    check_same(flags, Some(solver), config.solver.clone())?;
    check_same("--batch", args.batch, tr.batch)?;
    check_same("--grad/--checkpoint-every", grad(args)?, tr.grad)?;
    let trace = args
        .trace
        .map(|t| cnf_train::session::TraceSetting::from(t).kind(config.mlp.dim));
    check_same("--trace", trace, tr.trace)?;
    check_same("--weight-decay", args.weight_decay, tr.weight_decay)?;
    check_same("--ema-decay", args.ema_decay, tr.ema_decay)?;
    check_same(
        "--lr-schedule",
        args.lr_schedule.map(Into::into),
        tr.lr_schedule,
    )?;
    check_same("--val-every", args.val_every, tr.val_every)?;
    if args.objective.is_some() {
        let flags = "--objective/--fm-path/--fm-sigma/--coupling";
        check_same(flags, Some(flow_matching(args)?), tr.flow_matching)?;
    }
    let regularised = [args.kinetic, args.jacobian, args.steer, args.local_error];
    if regularised.iter().any(Option::is_some) {
        // Display, not Debug: f64's shortest round-trip form, so equal text is equal value.
        let flags = "--kinetic/--jacobian/--steer/--local-error";
        check_same(
            flags,
            Some(regularisers(args)?.to_string()),
            tr.regularisers.to_string(),
        )?;
    }
    check_same("--seed", args.seed, config.seed)?;
    check_same(
        "--f64",
        args.f64.then_some(Precision::F64),
        config.precision,
    )
}

/// The run the flags ask for: a new one, or the resume of `--out`.
fn plan(args: &TrainArgs) -> Result<RunPlan, TrainError> {
    if !args.resume {
        let data = args.data.as_deref().unwrap_or("8gaussians");
        let source = DataSource::from_name(data, selection(args))?;
        return RunPlan::new(source, &train_options(args)?, args.out.clone());
    }
    let out = args.out.clone().ok_or_else(|| {
        TrainError::Invalid("--resume needs --out, the folder of the run to continue".into())
    })?;
    let resume = ResumeOptions {
        data: args.data.clone(),
        iters: args.iters,
        lr: args.lr,
        patience: args.patience,
    };
    let plan = RunPlan::resume(out, resume)?;
    check_resume_flags(args, plan.config())?;
    Ok(plan)
}

/// Trains a model and writes its folder; plots for 2-D data.
pub fn train(args: &TrainArgs) -> Result<(), TrainError> {
    let plan = plan(args)?;
    for note in plan
        .notes()
        .iter()
        .chain(plan.settings().map(String::from).as_ref())
    {
        eprintln!("{note}");
    }
    let resuming = plan.is_resume();
    let mut session = Session::start(plan, args.force)?;
    let (start, iters) = session.iterations().unwrap_or_default();
    if resuming {
        eprintln!("resuming {} at iteration {start}", session.dir().display());
    }
    let fm = session
        .config()
        .training
        .as_ref()
        .and_then(|t| t.flow_matching);
    if let Some(fm) = fm {
        eprintln!("objective: flow matching ({fm:?}); validation: exact NLL through the ODE");
    }
    if !session.context_columns().is_empty() {
        eprintln!(
            "conditional model p({} | {}): validation on the exact conditional NLL",
            session.config().columns.join(", "),
            session.context_columns().join(", ")
        );
    }
    let s = session.train(vec![Box::new(Progress::new(start, iters))])?;
    println!(
        "trained {} iterations in {:.1} s ({:.4} s/iter); best model: validation NLL {:.4} nats \
         on {} points (data space, exact trace, {}, NFE {}); saved in {}",
        s.iterations,
        s.seconds,
        s.seconds / s.iterations.max(1) as f64,
        s.val_nll,
        s.val_points,
        s.solver,
        s.nfe,
        session.dir().display()
    );
    if !args.no_plots {
        let curve = session.path(TRAINING_CURVE_FILE);
        plot_training_curve(&session.path(METRICS_FILE), &curve)?;
        // The plots draw an unconditional density.
        if session.dim() == 2 && session.context_columns().is_empty() {
            plot_model(&session, session.dir())?;
        }
    }
    Ok(())
}
