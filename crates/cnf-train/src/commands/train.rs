//! `cnf train`.
use std::path::PathBuf;

use cnf_field::{Mlp, MlpConfig, Real, VectorField};
use cnf_flow::Cnf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{read_table, solver_config, to_model_space, toy_validation, SPLIT};
use crate::cli::TrainArgs;
use crate::data::{Standardizer, Table, ToySet};
use crate::error::TrainError;
use crate::model::{DataSource, ModelConfig, ModelDir, SolverConfig, CHECKPOINT_FILE};
use crate::observers::{Checkpoint, Checkpointer, Metrics, Progress};
use crate::optim::{Adam, AdamConfig};
use crate::report::plot_model;
use crate::trainer::{mean_nll, Batches, TraceKind, TrainSettings, Trainer};

/// Adam's learning rate unless `--lr` is given (the peers' protocol).
const DEFAULT_LR: f64 = 1e-3;

/// Training data and the model-space validation points.
struct Prepared {
    batches: Batches,
    val: Table,
    source: DataSource,
    standardizer: Option<Standardizer>,
    columns: Vec<String>,
    name: String,
}

fn prepare(args: &TrainArgs) -> Result<Prepared, TrainError> {
    if let Ok(set) = args.data.parse::<ToySet>() {
        // FFJORD's protocol: fresh samples every iteration, raw coordinates.
        return Ok(Prepared {
            batches: Batches::Toy(set),
            val: toy_validation(set, args.seed),
            source: DataSource::Toy {
                name: set.name().to_string(),
            },
            standardizer: None,
            columns: vec!["x0".into(), "x1".into()],
            name: set.name().to_string(),
        });
    }
    let path = PathBuf::from(&args.data);
    if !path.exists() {
        return Err(TrainError::Invalid(format!(
            "--data {:?} is neither a toy set ({}) nor an existing file",
            args.data,
            ToySet::NAMES.join(", ")
        )));
    }
    let source = DataSource::Table {
        path: path.clone(),
        columns: args.columns.clone(),
        drop: args.drop.clone(),
        split: SPLIT,
    };
    let table = read_table(&path, &source.selection())?;
    let (train, val, _test) = table.split(SPLIT, args.seed)?;
    let standardizer = Standardizer::fit(&train)?;
    Ok(Prepared {
        batches: Batches::Table(standardizer.transform(&train)?),
        val: standardizer.transform(&val)?,
        columns: table.names().to_vec(),
        source,
        standardizer: Some(standardizer),
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data")
            .to_string(),
    })
}

/// Trains a model and writes its folder; plots for 2-D data.
pub fn train(args: &TrainArgs) -> Result<(), TrainError> {
    if args.batch == 0 || args.iters == 0 || args.val_every == 0 {
        return Err(TrainError::Invalid(
            "--batch, --iters and --val-every must be positive".into(),
        ));
    }
    let prep = prepare(args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&prep.name));
    let dir = ModelDir::new(out);
    let activation = args.arch.activation()?;
    let dim = prep.val.n_cols();
    let config = if args.resume {
        dir.config()?
    } else {
        ModelConfig {
            mlp: MlpConfig::new(dim, &args.arch.hidden, activation),
            solver: solver_config(&SolverConfig::default(), &args.solver),
            standardizer: prep.standardizer.clone(),
            data: prep.source.clone(),
            seed: args.seed,
            columns: prep.columns.clone(),
            precision: if args.f64 { "f64" } else { "f32" }.into(),
        }
    };
    config.mlp.validate()?;
    if config.mlp.dim != dim {
        return Err(TrainError::Invalid(format!(
            "the data has {dim} columns, the model in {} has {}",
            dir.dir.display(),
            config.mlp.dim
        )));
    }
    if config.precision == "f64" {
        run::<f64>(args, prep, &dir, &config)
    } else {
        run::<f32>(args, prep, &dir, &config)
    }
}

fn run<T: Real + Serialize + DeserializeOwned>(
    args: &TrainArgs,
    prep: Prepared,
    dir: &ModelDir,
    config: &ModelConfig,
) -> Result<(), TrainError> {
    let integ = config.solver.integrator::<T>()?;
    let trace = match args.trace.as_str() {
        "auto" => TraceKind::auto(config.mlp.dim),
        "exact" => TraceKind::Exact,
        "rademacher" | "hutchinson" => TraceKind::Rademacher,
        "gaussian" => TraceKind::Gaussian,
        other => {
            return Err(TrainError::Invalid(format!(
                "unknown --trace {other:?} (auto, exact, rademacher, gaussian)"
            )))
        }
    };
    let backprop = match args.grad.as_str() {
        "backprop" => true,
        "adjoint" => false,
        other => {
            return Err(TrainError::Invalid(format!(
                "unknown --grad {other:?} (backprop, adjoint)"
            )))
        }
    };
    let adam_cfg = AdamConfig {
        lr: args.lr.unwrap_or(DEFAULT_LR),
        weight_decay: args.weight_decay,
        ..AdamConfig::default()
    };
    let mut mlp = Mlp::<T>::new(config.mlp.clone(), args.seed)?;
    let mut adam = Adam::new(mlp.num_params(), adam_cfg)?;
    let (mut start, mut best, mut since) = (0, f64::INFINITY, 0);
    if args.resume {
        let ck: Checkpoint<T> = Checkpoint::load(dir)?;
        if ck.params.len() != mlp.num_params() {
            return Err(TrainError::Invalid(
                "checkpoint does not match the model".into(),
            ));
        }
        mlp.params_mut().copy_from_slice(&ck.params);
        adam = ck.adam;
        if let Some(lr) = args.lr {
            adam.set_lr(lr)?;
        }
        (start, best, since) = (ck.iter, ck.best_val, ck.since_best);
        eprintln!("resuming {} at iteration {start}", dir.dir.display());
    } else {
        dir.save_config(config)?;
        let _ = std::fs::remove_file(dir.path("metrics.jsonl"));
    }
    let val: Vec<T> = to_model_space(config, &prep.val)?;
    let mut trainer = Trainer {
        cnf: Cnf::new(mlp, integ),
        adam,
        batches: prep.batches,
        val,
        settings: TrainSettings {
            iters: args.iters,
            batch: args.batch,
            backprop,
            trace,
            val_every: args.val_every,
            seed: args.seed,
        },
        observers: vec![
            Box::new(Progress::new(start, args.iters)),
            Box::new(Metrics::new(dir.path("metrics.jsonl"))),
            Box::new(Checkpointer::new(dir.clone(), best, since, args.patience)),
        ],
    };
    let t0 = std::time::Instant::now();
    let done = trainer.run(start).map_err(|e| match e {
        TrainError::Diverged { iter, reason, .. } => TrainError::Diverged {
            iter,
            reason,
            kept: if dir.path(CHECKPOINT_FILE).exists() {
                format!(
                    " (the last good checkpoint is kept in {})",
                    dir.dir.display()
                )
            } else {
                " (no checkpoint had been written yet)".into()
            },
        },
        other => other,
    })?;
    let secs = t0.elapsed().as_secs_f64();
    let best_cnf = dir.load_cnf::<T>(config, None)?;
    let (val_nll, nfe) = mean_nll(&best_cnf, &trainer.val)?;
    println!(
        "trained {} iterations in {secs:.1} s ({:.4} s/iter); best model: validation NLL {val_nll:.4} nats \
         on {} points (model space, exact trace, {} at rtol {:e}, NFE {nfe}); saved in {}",
        done - start,
        secs / (done - start).max(1) as f64,
        trainer.val.len() / config.mlp.dim,
        config.solver.method,
        config.solver.rtol,
        dir.dir.display()
    );
    if config.mlp.dim == 2 && !args.no_plots {
        plot_model(&best_cnf, config, &dir.dir)?;
    }
    Ok(())
}
