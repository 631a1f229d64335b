//! Observers of training, one concern each: the metrics file ([`Metrics`]), the best model's
//! weights ([`BestWeights`]), the resume file ([`ResumeFile`]) and early stopping
//! ([`EarlyStopping`]). Each works for any field and keeps its own record of the best
//! validation by one rule ([`BestSoFar`]). Progress displays are the caller's (the command
//! line's bar in cnf-cli), attached through [`EventObserver`].
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use cnf_field::{Mlp, Real, VectorField};
use cnf_flow::Penalties;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::model::{write_atomic, ModelDir, CHECKPOINT_FILE, WEIGHTS_FILE};
use crate::optim::Adam;
use crate::trainer::{IterEvent, Observer, ValEvent};

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
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        _: &F,
        _: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
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
        Ok(ControlFlow::Continue(()))
    }
}

/// What `checkpoint.json` holds: enough to resume exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint<T> {
    /// Iterations done.
    pub iter: usize,
    /// Current parameters: the validated ones, so with a moving average of the weights the
    /// average (the optimiser then holds the raw ones: [`Checkpoint::into_training`]).
    pub params: Vec<T>,
    /// Optimiser state.
    pub adam: Adam<T>,
    /// Best validation NLL so far (its weights are in model.safetensors).
    pub best_val: f64,
    /// Validations since the best one.
    pub since_best: usize,
}

impl<T: Real> Checkpoint<T> {
    /// The raw parameters and the optimiser to train on from (the average back in the
    /// optimiser when it keeps one).
    ///
    /// # Errors
    /// [`TrainError::Optim`] when the optimiser's average does not match the parameters.
    pub fn into_training(self) -> Result<(Vec<T>, Adam<T>), TrainError> {
        let (mut params, mut adam) = (self.params, self.adam);
        adam.swap_average(&mut params)?;
        Ok((params, adam))
    }
}

impl<T: Real + DeserializeOwned> Checkpoint<T> {
    /// Reads `checkpoint.json` of a model folder.
    ///
    /// # Errors
    /// The file cannot be read or is not a checkpoint in precision `T`.
    pub fn load(dir: &ModelDir) -> Result<Self, TrainError> {
        let p = dir.path(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&p).map_err(TrainError::io(p.display()))?;
        serde_json::from_str(&text).map_err(TrainError::json(p.display()))
    }
}

/// The iteration a checkpoint was written at, read without its parameters (whose precision
/// the reader need not know).
///
/// # Errors
/// The file cannot be read or holds no iteration.
pub fn checkpoint_iter(dir: &ModelDir) -> Result<usize, TrainError> {
    #[derive(Deserialize)]
    struct Head {
        iter: usize,
    }
    let p = dir.path(CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&p).map_err(TrainError::io(p.display()))?;
    let head: Head = serde_json::from_str(&text).map_err(TrainError::json(p.display()))?;
    Ok(head.iter)
}

/// The best validation NLL so far and the validations since it: the one rule ("better" is
/// strictly lower) by which the observers below agree on the best model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestSoFar {
    /// The lowest validation NLL seen (infinity before the first).
    pub val_nll: f64,
    /// Validations since the lowest one.
    pub since: usize,
}

impl Default for BestSoFar {
    fn default() -> Self {
        Self {
            val_nll: f64::INFINITY,
            since: 0,
        }
    }
}

impl BestSoFar {
    /// The record a checkpoint holds (a resumed run continues it).
    pub fn of_checkpoint<T>(ck: &Checkpoint<T>) -> Self {
        Self {
            val_nll: ck.best_val,
            since: ck.since_best,
        }
    }
    /// Takes in a validation NLL; true when it is a new best.
    pub fn update(&mut self, val_nll: f64) -> bool {
        if val_nll < self.val_nll {
            self.val_nll = val_nll;
            self.since = 0;
            true
        } else {
            self.since += 1;
            false
        }
    }
}

/// A field that can be written as a model folder's weights file.
pub trait WeightsFile {
    /// The bytes of the weights file (safetensors for the MLP).
    ///
    /// # Errors
    /// The weights cannot be serialised.
    fn weights_bytes(&self) -> Result<Vec<u8>, TrainError>;
}

impl<T: Real> WeightsFile for Mlp<T> {
    fn weights_bytes(&self) -> Result<Vec<u8>, TrainError> {
        Ok(self.to_safetensors_bytes()?)
    }
}

/// Keeps the weights of the best validation so far in the folder's `model.safetensors`
/// (written atomically, only when the validation NLL improves).
pub struct BestWeights {
    dir: ModelDir,
    best: BestSoFar,
}

impl BestWeights {
    /// Starts from `best` (the default for a new run; a checkpoint's on resume).
    pub fn new(dir: ModelDir, best: BestSoFar) -> Self {
        Self { dir, best }
    }
}

impl<T: Real, F: VectorField<T> + WeightsFile> Observer<T, F> for BestWeights {
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        model: &F,
        _: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
        if self.best.update(ev.val_nll) {
            write_atomic(&self.dir.path(WEIGHTS_FILE), &model.weights_bytes()?)?;
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Writes `checkpoint.json` (atomically) at every validation: parameters, optimiser state and
/// the best-so-far record, enough to resume exactly.
pub struct ResumeFile {
    dir: ModelDir,
    best: BestSoFar,
}

impl ResumeFile {
    /// Starts from `best` (the default for a new run; a checkpoint's on resume).
    pub fn new(dir: ModelDir, best: BestSoFar) -> Self {
        Self { dir, best }
    }
}

impl<T: Real + Serialize, F: VectorField<T>> Observer<T, F> for ResumeFile {
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        model: &F,
        adam: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
        self.best.update(ev.val_nll);
        let ckpt = Checkpoint {
            iter: ev.iter,
            params: model.params().to_vec(),
            adam: adam.clone(),
            best_val: self.best.val_nll,
            since_best: self.best.since,
        };
        let text = serde_json::to_string(&ckpt).map_err(TrainError::json(CHECKPOINT_FILE))?;
        write_atomic(&self.dir.path(CHECKPOINT_FILE), text.as_bytes())?;
        Ok(ControlFlow::Continue(()))
    }
}

/// Stops training after `patience` validations without improvement.
pub struct EarlyStopping {
    patience: usize,
    best: BestSoFar,
}

impl EarlyStopping {
    /// Stops after `patience` validations without a new best, counting from `best`.
    pub fn new(patience: usize, best: BestSoFar) -> Self {
        Self { patience, best }
    }
}

impl<T: Real, F: VectorField<T>> Observer<T, F> for EarlyStopping {
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        _: &F,
        _: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
        self.best.update(ev.val_nll);
        Ok(if self.best.since >= self.patience {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }
}

/// Watches training through its events only (no weights, no precision): progress displays
/// and callbacks of other languages. Attach one to a run with [`Events`].
pub trait EventObserver {
    /// After every iteration.
    fn on_iter(&mut self, _ev: &IterEvent) {}
    /// After every validation; `Break` ends the run.
    fn on_validation(&mut self, _ev: &ValEvent) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// Once at the end (also after a stop).
    fn on_finish(&mut self) {}
}

/// A borrowed observer observes too (the caller keeps it, to read what it saw).
impl<O: EventObserver + ?Sized> EventObserver for &mut O {
    fn on_iter(&mut self, ev: &IterEvent) {
        (**self).on_iter(ev);
    }
    fn on_validation(&mut self, ev: &ValEvent) -> ControlFlow<()> {
        (**self).on_validation(ev)
    }
    fn on_finish(&mut self) {
        (**self).on_finish();
    }
}

/// An [`EventObserver`] as an [`Observer`] of any precision and field.
pub struct Events<'a>(pub &'a mut dyn EventObserver);

impl<T: Real, F: VectorField<T>> Observer<T, F> for Events<'_> {
    fn on_iter(&mut self, ev: &IterEvent) {
        self.0.on_iter(ev);
    }
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        _: &F,
        _: &Adam<T>,
    ) -> Result<ControlFlow<()>, TrainError> {
        Ok(self.0.on_validation(ev))
    }
    fn on_finish(&mut self) {
        self.0.on_finish();
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
            untrained: false,
        }
    }

    /// Each observer alone: the best weights are written exactly when the NLL improves, the
    /// resume file at every validation with the best-so-far record, and early stopping breaks
    /// after `patience` validations without improvement.
    #[test]
    fn each_observer_keeps_its_own_concern() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = ModelDir::new(dir.path());
        let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[4], Activation::Tanh), 1).unwrap();
        let adam = Adam::new(mlp.num_params(), Default::default()).unwrap();
        let mut best = BestWeights::new(model_dir.clone(), BestSoFar::default());
        let mut resume = ResumeFile::new(model_dir.clone(), BestSoFar::default());
        let mut stop = EarlyStopping::new(2, BestSoFar::default());
        let weights = model_dir.path(WEIGHTS_FILE);
        let mut decisions = Vec::new();
        for (i, v) in [3.0, 2.9, 2.95, 2.96].into_iter().enumerate() {
            let ev = event(i + 1, v);
            // Remove the weights: the call writes them again exactly when the NLL improves.
            let _ = std::fs::remove_file(&weights);
            let b = Observer::<f64, Mlp<f64>>::on_validation(&mut best, &ev, &mlp, &adam);
            assert!(b.unwrap().is_continue());
            assert_eq!(weights.exists(), i < 2, "validation {i}");
            let r = Observer::<f64, Mlp<f64>>::on_validation(&mut resume, &ev, &mlp, &adam);
            assert!(r.unwrap().is_continue());
            let saved: Checkpoint<f64> = Checkpoint::load(&model_dir).unwrap();
            assert_eq!(saved.iter, i + 1);
            assert_eq!(checkpoint_iter(&model_dir).unwrap(), i + 1);
            assert_eq!(saved.best_val, if i == 0 { 3.0 } else { 2.9 });
            assert_eq!(saved.since_best, i.saturating_sub(1));
            assert_eq!(saved.params, mlp.params());
            let s = Observer::<f64, Mlp<f64>>::on_validation(&mut stop, &ev, &mlp, &adam);
            decisions.push(s.unwrap().is_break());
        }
        assert_eq!(decisions, [false, false, false, true]);
    }

    /// A resumed record continues: one validation short of the patience, the next
    /// non-improving validation stops; an improving one does not.
    #[test]
    fn early_stopping_continues_a_resumed_record() {
        let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[4], Activation::Tanh), 1).unwrap();
        let adam = Adam::new(mlp.num_params(), Default::default()).unwrap();
        let record = BestSoFar {
            val_nll: 1.0,
            since: 2,
        };
        let mut worse = EarlyStopping::new(3, record);
        let ev = event(10, 1.5);
        let w = Observer::<f64, Mlp<f64>>::on_validation(&mut worse, &ev, &mlp, &adam);
        assert!(w.unwrap().is_break());
        let mut better = EarlyStopping::new(3, record);
        let ev = event(10, 0.5);
        let b = Observer::<f64, Mlp<f64>>::on_validation(&mut better, &ev, &mlp, &adam);
        assert!(b.unwrap().is_continue());
    }
}
