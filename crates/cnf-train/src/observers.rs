//! Observers of training: metrics file, checkpoints, early stopping (the progress bar is the
//! command line's, in cnf-cli).
use std::io::Write;
use std::path::PathBuf;

use cnf_field::{Mlp, Real, VectorField};
use cnf_flow::Penalties;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::model::{write_atomic, ModelDir, CHECKPOINT_FILE};
use crate::optim::Adam;
use crate::trainer::{Control, Observer, ValEvent};

/// Appends one JSON line per validation to `metrics.jsonl`: iteration, training loss, the
/// validation NLL in model space (as the optimiser sees it) and in data space (`*_data`, what
/// `cnf eval` reports), NFE and time. A flow-matching run logs its regression loss as
/// `train_fm_loss` instead of `train_nll`.
pub struct Metrics {
    path: PathBuf,
    log_det: f64,
    flow_matching: bool,
}

impl Metrics {
    /// Metrics written to `path` (appended, so a resumed run continues the file); `log_det` is
    /// the standardisation's log-determinant (data-space NLL = model-space NLL - log_det).
    pub fn new(path: PathBuf, log_det: f64) -> Self {
        Self {
            path,
            log_det,
            flow_matching: false,
        }
    }
    /// Whether the training loss is flow matching's regression loss (not an NLL).
    pub fn flow_matching(mut self, yes: bool) -> Self {
        self.flow_matching = yes;
        self
    }
}

/// One line of metrics.jsonl.
#[derive(Serialize)]
struct MetricsLine {
    iter: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    train_nll: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    train_nll_data: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    train_fm_loss: Option<f64>,
    val_nll: f64,
    val_nll_data: f64,
    nfe_fwd: usize,
    nfe_bwd: usize,
    nfe_val: usize,
    #[serde(flatten)]
    penalties: Penalties<f64>,
    seconds: f64,
}

impl<T: Real, F: VectorField<T>> Observer<T, F> for Metrics {
    fn on_validation(&mut self, ev: &ValEvent, _: &F, _: &Adam<T>) -> Result<Control, TrainError> {
        let (nll, fm) = if self.flow_matching {
            (None, Some(ev.train_nll))
        } else {
            (Some(ev.train_nll), None)
        };
        let line = serde_json::to_string(&MetricsLine {
            iter: ev.iter,
            train_nll: nll,
            train_nll_data: nll.map(|v| v - self.log_det),
            train_fm_loss: fm,
            val_nll: ev.val_nll,
            val_nll_data: ev.val_nll - self.log_det,
            nfe_fwd: ev.nfe_fwd,
            nfe_bwd: ev.nfe_bwd,
            nfe_val: ev.nfe_val,
            penalties: ev.penalties,
            seconds: ev.seconds,
        })
        .map_err(TrainError::json("a metrics line"))?;
        let io = |e: std::io::Error| TrainError::io(self.path.display())(e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)?;
        Ok(Control::Continue)
    }
}

/// What `checkpoint.json` holds: enough to resume exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint<T> {
    /// Iterations done.
    pub iter: usize,
    /// Current parameters.
    pub params: Vec<T>,
    /// Optimiser state.
    pub adam: Adam<T>,
    /// Best validation NLL so far (its weights are in model.safetensors).
    pub best_val: f64,
    /// Validations since the best one.
    pub since_best: usize,
}

impl<T: Real + DeserializeOwned> Checkpoint<T> {
    /// Reads `checkpoint.json` of a model folder.
    pub fn load(dir: &ModelDir) -> Result<Self, TrainError> {
        let p = dir.path(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&p).map_err(TrainError::io(p.display()))?;
        serde_json::from_str(&text).map_err(TrainError::json(p.display()))
    }
}

/// Keeps the best model (`model.safetensors`) and a resume checkpoint, both written atomically;
/// stops training after `patience` validations without improvement (early stopping).
pub struct Checkpointer {
    dir: ModelDir,
    best_val: f64,
    since_best: usize,
    patience: Option<usize>,
}

impl Checkpointer {
    /// Starts with the best validation NLL known so far (resume) or infinity.
    pub fn new(dir: ModelDir, best_val: f64, since_best: usize, patience: Option<usize>) -> Self {
        Self {
            dir,
            best_val,
            since_best,
            patience,
        }
    }
}

impl<T: Real + Serialize> Observer<T> for Checkpointer {
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        model: &Mlp<T>,
        adam: &Adam<T>,
    ) -> Result<Control, TrainError> {
        if ev.val_nll < self.best_val {
            self.best_val = ev.val_nll;
            self.since_best = 0;
            self.dir.save_weights(model)?;
        } else {
            self.since_best += 1;
        }
        let ckpt = Checkpoint {
            iter: ev.iter,
            params: model.params().to_vec(),
            adam: adam.clone(),
            best_val: self.best_val,
            since_best: self.since_best,
        };
        let text = serde_json::to_string(&ckpt).map_err(TrainError::json(CHECKPOINT_FILE))?;
        write_atomic(&self.dir.path(CHECKPOINT_FILE), text.as_bytes())?;
        Ok(match self.patience {
            Some(p) if self.since_best >= p => Control::Stop,
            _ => Control::Continue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnf_field::{Activation, MlpConfig};

    fn event(iter: usize, val_nll: f64) -> ValEvent {
        ValEvent {
            iter,
            train_nll: val_nll,
            val_nll,
            nfe_fwd: 0,
            nfe_bwd: 0,
            nfe_val: 0,
            penalties: Penalties::none(),
            seconds: 0.0,
        }
    }

    /// Saves weights only on improvement, always writes the resume checkpoint, and stops after
    /// `patience` validations without improvement.
    #[test]
    fn checkpointer_keeps_the_best_and_stops_early() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = ModelDir::new(dir.path());
        let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[4], Activation::Tanh), 1).unwrap();
        let adam = Adam::new(mlp.num_params(), Default::default()).unwrap();
        let mut ck = Checkpointer::new(model_dir.clone(), f64::INFINITY, 0, Some(2));
        let weights = model_dir.path(crate::model::WEIGHTS_FILE);
        let mut decisions = Vec::new();
        for (i, v) in [3.0, 2.9, 2.95, 2.96].into_iter().enumerate() {
            // Remove the weights: the call writes them again exactly when the NLL improves.
            let _ = std::fs::remove_file(&weights);
            decisions.push(ck.on_validation(&event(i + 1, v), &mlp, &adam).unwrap());
            assert_eq!(weights.exists(), i < 2, "validation {i}");
            let saved: Checkpoint<f64> = Checkpoint::load(&model_dir).unwrap();
            assert_eq!(saved.iter, i + 1);
            assert_eq!(saved.best_val, if i == 0 { 3.0 } else { 2.9 });
        }
        assert_eq!(
            decisions,
            [
                Control::Continue,
                Control::Continue,
                Control::Continue,
                Control::Stop
            ]
        );
    }
}
