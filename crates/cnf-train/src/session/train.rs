//! Training a session: the model and optimiser built or restored from the checkpoint, the
//! folder's observers attached, the loop run, the best model validated.
use std::time::Instant;

use cnf_field::{Mlp, Real, VectorField};
use cnf_flow::Cnf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::prepare::Prepared;
use super::{ResumeOptions, Session};
use crate::error::TrainError;
use crate::model::{
    describe_solver, log_det, solver_in, to_model_space_given, write_atomic, FolderLock, Precision,
    CHECKPOINT_FILE, METRICS_FILE,
};
use crate::observers::{
    BestSoFar, BestWeights, Checkpoint, EarlyStopping, EventObserver, Events, Metrics, ResumeFile,
};
use crate::optim::{Adam, AdamConfig};
use crate::trainer::{mean_nll_rows, FlowMatchingObjective, Observer, TrainSettings, Trainer};

/// A session's training state between [`Session::start`] and [`Session::train`].
pub(super) struct PendingRun {
    /// Taken by the first [`Session::train`].
    pub prepared: Option<Prepared>,
    pub resume: Option<ResumeOptions>,
    pub force: bool,
    /// The iteration training starts at (the checkpoint's when resuming).
    pub start: usize,
    pub _lock: FolderLock,
}

/// What a finished training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Iterations done by this call (from the start or the checkpoint).
    pub iterations: usize,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
    /// The best model's validation NLL in data space (exact trace, the model's solver).
    pub val_nll: f64,
    /// Validation points.
    pub val_points: usize,
    /// Field evaluations of that validation.
    pub nfe: usize,
    /// The model's solver in the command line's words.
    pub solver: String,
}

/// Keeps the lines of metrics.jsonl up to iteration `iter` (a resumed run appends after them,
/// so no iteration appears twice).
fn truncate_metrics(session: &Session, iter: usize) -> Result<(), TrainError> {
    let p = session.path(METRICS_FILE);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["iter"].as_u64())
                .is_some_and(|i| i as usize <= iter)
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    write_atomic(&p, kept.as_bytes())
}

impl Session {
    /// Trains the run this session was started with ([`Session::start`]): a new run writes
    /// config.json first (removing an old run's files when forced); a resumed run restores
    /// parameters, optimiser and best-so-far record from checkpoint.json and continues
    /// metrics.jsonl. The folder's observers keep metrics, the best weights, the resume file
    /// and early stopping; `observers` (progress displays, callbacks) see every event and may
    /// stop the run. A whitened table's run validates its starting model (the Gaussian
    /// baseline) first, so the model kept is never worse than it.
    ///
    /// # Errors
    /// The session was opened, not started, or has trained already; the checkpoint does not
    /// match the model; a file cannot be written; training diverges
    /// ([`TrainError::Diverged`], naming the checkpoint kept).
    pub fn train(
        &mut self,
        observers: Vec<Box<dyn EventObserver + '_>>,
    ) -> Result<TrainSummary, TrainError> {
        match self.config.precision {
            Precision::F64 => self.train_in::<f64>(observers),
            Precision::F32 => self.train_in::<f32>(observers),
        }
    }

    fn train_in<T: Real + Serialize + DeserializeOwned>(
        &mut self,
        mut observers: Vec<Box<dyn EventObserver + '_>>,
    ) -> Result<TrainSummary, TrainError> {
        let not_started = || {
            TrainError::Invalid(
                "this session was opened to read, or has trained already: start a run to train"
                    .into(),
            )
        };
        let run = self.run.as_mut().ok_or_else(not_started)?;
        let prep = run.prepared.take().ok_or_else(not_started)?;
        let (resume, force) = (run.resume.clone(), run.force);
        let config = self.config.clone();
        let tr = config
            .training
            .as_ref()
            .ok_or_else(|| TrainError::Invalid("config.json has no training settings".into()))?;
        // Validation rows [x | c] in model space (c empty for an unconditional model).
        let (val_x, val_c) = to_model_space_given::<T>(&config, &prep.val, 0)?;
        let (d, k) = (config.mlp.dim, config.context_dim());
        let val: Vec<T> = if k == 0 {
            val_x
        } else {
            val_x
                .chunks_exact(d)
                .zip(val_c.chunks_exact(k))
                .flat_map(|(x, c)| x.iter().chain(c).copied())
                .collect()
        };
        let given = resume.clone().unwrap_or_default();
        // Iterations and patience may change on resume; otherwise the run's own.
        let iters = super::total_iters(&config, resume.as_ref());
        let patience = given.patience.or(tr.patience);
        let adam_cfg = AdamConfig {
            lr: tr.lr,
            weight_decay: tr.weight_decay,
            cosine_steps: tr.lr_schedule.cosine_steps(iters),
            ema_decay: tr.ema_decay,
            ..AdamConfig::default()
        };
        let mut mlp = Mlp::<T>::new(config.mlp.clone(), config.seed)?;
        let mut adam = Adam::new(mlp.num_params(), adam_cfg)?;
        let (mut start, mut best) = (0, BestSoFar::default());
        if resume.is_some() {
            let ck: Checkpoint<T> = Checkpoint::load(&self.dir)?;
            if ck.params.len() != mlp.num_params() {
                return Err(TrainError::Invalid(
                    "checkpoint does not match the model".into(),
                ));
            }
            best = BestSoFar::of_checkpoint(&ck);
            start = ck.iter;
            let (params, ck_adam) = ck.into_training()?;
            mlp.params_mut().copy_from_slice(&params);
            adam = ck_adam;
            if let Some(lr) = given.lr {
                adam.set_lr(lr)?;
            }
            // A cosine schedule anneals over the iterations the resumed run reaches.
            adam.config.cosine_steps = tr.lr_schedule.cosine_steps(iters);
            truncate_metrics(self, start)?;
        } else {
            // Everything the run needs exists and was checked: only now may an old run go.
            self.dir.clear_for_new(force)?;
            self.dir.save_config(&config)?;
            if config
                .standardizer
                .as_ref()
                .is_some_and(|s| s.is_whitened())
            {
                // Start from the Gaussian: whitened data and a zero field.
                mlp.zero_output();
            }
        }
        let log_det = log_det(&config);
        let mut folder: Vec<Box<dyn Observer<T, Mlp<T>> + '_>> = vec![
            Box::new(
                Metrics::new(self.dir.path(METRICS_FILE), log_det)
                    .flow_matching(tr.flow_matching.is_some()),
            ),
            Box::new(BestWeights::new(self.dir.clone(), best)),
            Box::new(ResumeFile::new(self.dir.clone(), best)),
        ];
        if let Some(p) = patience {
            folder.push(Box::new(EarlyStopping::new(p, best)));
        }
        let observers: Vec<Box<dyn Observer<T, Mlp<T>> + '_>> = observers
            .iter_mut()
            .map(|o| Box::new(Events(o.as_mut())) as Box<dyn Observer<T, Mlp<T>>>)
            .chain(folder)
            .collect();
        let mut trainer = Trainer {
            cnf: Cnf::new(mlp, solver_in::<T>(&config.solver)?),
            adam,
            batches: prep.batches,
            val,
            settings: TrainSettings {
                iters,
                batch: tr.batch,
                grad: tr.grad,
                trace: tr.trace,
                val_every: tr.val_every,
                seed: config.seed,
                regularisers: tr.regularisers,
            },
            observers,
        };
        let whitened = config
            .standardizer
            .as_ref()
            .is_some_and(|s| s.is_whitened());
        // When training never beats it on the validation split, the saved model is the start
        // (for tables: the Gaussian baseline).
        let stopped = resume.is_none() && whitened && trainer.validate_untrained()?.is_break();
        let t0 = Instant::now();
        let done = if stopped {
            for o in &mut trainer.observers {
                o.on_finish();
            }
            Ok(start)
        } else {
            match &tr.flow_matching {
                Some(fm) => {
                    // A conditional run splits each batch over the cores; an unconditional
                    // one keeps one call, so its numbers stay those of earlier releases.
                    let blocks = if k > 0 {
                        rayon::current_num_threads()
                    } else {
                        1
                    };
                    let mut objective = FlowMatchingObjective::new(*fm)?.with_row_blocks(blocks);
                    trainer.run_with(start, &mut objective)
                }
                None => trainer.run(start),
            }
        }
        .map_err(|e| match e {
            TrainError::Diverged { iter, reason, .. } => TrainError::Diverged {
                iter,
                reason,
                kept: if self.dir.path(CHECKPOINT_FILE).exists() {
                    format!(
                        " (the last good checkpoint is kept in {})",
                        self.dir.dir.display()
                    )
                } else {
                    " (no checkpoint had been written yet)".into()
                },
            },
            other => other,
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        let best_cnf = self.dir.load_cnf::<T>(&config, None)?;
        let (val_nll, nfe) = mean_nll_rows(&best_cnf, &trainer.val)?;
        Ok(TrainSummary {
            iterations: done - start,
            seconds,
            val_nll: val_nll - log_det,
            val_points: trainer.val.len() / (d + k),
            nfe,
            solver: describe_solver(&config.solver),
        })
    }
}
