//! The training session through its public API: a table run whose kept model is its start (a
//! whitened Gaussian) evaluates to the closed-form Gaussian baseline; samples have its mean;
//! streamed samples are the one-shot samples; a resume continues bit for bit; any observer may
//! stop a run.
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use cnf_train::error::TrainError;
use cnf_train::model::{DataSource, Precision, CHECKPOINT_FILE};
use cnf_train::observers::{Checkpoint, EventObserver};
use cnf_train::session::{EvalOptions, ResumeOptions, RunPlan, Session, TrainOptions};
use cnf_train::trainer::ValEvent;
use rand::{Rng, SeedableRng};

/// A CSV of `n` rows of two correlated columns (x ~ N(3, 4), y = 0.5 x + N(-1, 0.25)).
fn correlated_csv(dir: &Path, n: usize) -> PathBuf {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut text = String::from("a,b\n");
    for _ in 0..n {
        let (u, v): (f64, f64) = (
            rng.sample(rand_distr::StandardNormal),
            rng.sample(rand_distr::StandardNormal),
        );
        let x = 3.0 + 2.0 * u;
        text.push_str(&format!("{x},{}\n", 0.5 * x - 1.0 + 0.5 * v));
    }
    let path = dir.join("data.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// Stops the run at its first validation (the untrained one for a whitened table).
struct StopAtOnce(usize);

impl EventObserver for StopAtOnce {
    fn on_validation(&mut self, _: &ValEvent) -> ControlFlow<()> {
        self.0 += 1;
        ControlFlow::Break(())
    }
}

fn options(precision: Precision) -> TrainOptions {
    TrainOptions {
        hidden: Some(vec![8]),
        iters: Some(50),
        precision: Some(precision),
        ..TrainOptions::default()
    }
}

/// A table run stopped by an observer at the untrained validation: its folder is a model.
fn untrained_table_model(dir: &Path, precision: Precision) -> Session {
    let data = DataSource::from_name(correlated_csv(dir, 600).to_str().unwrap(), None).unwrap();
    let plan = RunPlan::new(data, &options(precision), Some(dir.join("m"))).unwrap();
    assert!(plan.settings().unwrap().starts_with("settings for"));
    let mut session = Session::start(plan, false).unwrap();
    let mut stop = StopAtOnce(0);
    let summary = session.train(vec![Box::new(&mut stop)]).unwrap();
    assert_eq!(stop.0, 1, "one validation: the untrained one");
    assert_eq!(summary.iterations, 0);
    Session::open(dir.join("m")).unwrap()
}

/// The start of a whitened table run is the Gaussian fitted to its training split: evaluated
/// on the recorded test split, the flow's NLL is the closed-form Gaussian's (the field is zero,
/// so the ODE moves nothing), in f64 to 1e-9 and in f32 to f32's resolution.
#[test]
fn an_untrained_table_model_evaluates_to_the_gaussian_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let session = untrained_table_model(dir.path(), Precision::F64);
    let data = dir.path().join("data.csv");
    let (e, notes) = session
        .evaluate(data.to_str().unwrap(), &EvalOptions::default())
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert!(e.points.starts_with("the test split of"), "{}", e.points);
    let g = e.gaussian_nll.unwrap();
    assert!((e.test_nll - g).abs() < 1e-9, "flow {} vs {g}", e.test_nll);
    assert_eq!(e.precision, "f64");
    let f32 = EvalOptions {
        precision: Some(Precision::F32),
        ..EvalOptions::default()
    };
    let (e32, _) = session.evaluate(data.to_str().unwrap(), &f32).unwrap();
    assert_eq!(e32.precision, "f32");
    assert!(
        (e32.test_nll - g).abs() < 1e-5 * g.abs(),
        "{} vs {g}",
        e32.test_nll
    );
}

/// Samples of that model have the Gaussian's mean (within 5 standard errors per column), and
/// trajectories start at their data-space starts and, with a zero field, stay there.
#[test]
fn samples_and_trajectories_of_the_gaussian_start() {
    let dir = tempfile::tempdir().unwrap();
    let session = untrained_table_model(dir.path(), Precision::F64);
    let flow = session.flow(&EvalOptions::default()).unwrap();
    let n = 20_000;
    let x = flow.sample(n, 3).unwrap();
    assert_eq!(x.len(), 2 * n);
    let s = session.config().standardizer.clone().unwrap();
    for j in 0..2 {
        let col: Vec<f64> = x.iter().skip(j).step_by(2).copied().collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = (var / n as f64).sqrt();
        assert!(
            (mean - s.mean[j]).abs() < 5.0 * se,
            "column {j}: {mean} vs {}",
            s.mean[j]
        );
    }
    let starts = [1.0, 2.0, -3.0, 0.5];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let paths = flow
        .trajectories(Some(&starts), 2, &mut rng, &[0.0, 0.5, 1.0])
        .unwrap();
    assert_eq!(paths.len(), 3);
    for at in &paths {
        for (a, b) in at.iter().zip(&starts) {
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

/// The streamed CSV of `write_samples` holds exactly the values of one `sample` call with the
/// same seed (f64 text reads back to the same number).
#[test]
fn streamed_samples_are_the_one_shot_samples() {
    let dir = tempfile::tempdir().unwrap();
    let session = untrained_table_model(dir.path(), Precision::F32);
    let flow = session.flow(&EvalOptions::default()).unwrap();
    let mut csv = Vec::new();
    let report = flow.write_samples(300, 9, &mut csv).unwrap();
    assert_eq!(report.written, 300);
    assert!(!report.closed_early);
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("a,b"));
    let streamed: Vec<f64> = lines
        .flat_map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()))
        .collect();
    assert_eq!(streamed, flow.sample(300, 9).unwrap());
}

fn toy_run(dir: &Path, name: &str, iters: usize) -> PathBuf {
    let data = DataSource::from_name("8gaussians", None).unwrap();
    let options = TrainOptions {
        hidden: Some(vec![8]),
        iters: Some(iters),
        batch: Some(16),
        val_every: Some(2),
        ..TrainOptions::default()
    };
    let out = dir.join(name);
    let plan = RunPlan::new(data, &options, Some(out.clone())).unwrap();
    Session::start(plan, false)
        .unwrap()
        .train(Vec::new())
        .unwrap();
    out
}

/// Four iterations, then a resume to eight, end with exactly the parameters and optimiser
/// state of eight iterations in one go (batches and probes are functions of seed and
/// iteration).
#[test]
fn a_resumed_run_continues_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let once = toy_run(dir.path(), "once", 8);
    let split = toy_run(dir.path(), "split", 4);
    let resume = ResumeOptions {
        iters: Some(8),
        ..ResumeOptions::default()
    };
    let plan = RunPlan::resume(&split, resume).unwrap();
    let mut session = Session::start(plan, false).unwrap();
    assert_eq!(session.iterations(), Some((4, 8)));
    assert_eq!(session.train(Vec::new()).unwrap().iterations, 4);
    let load = |p: &Path| -> Checkpoint<f32> {
        let text = std::fs::read_to_string(p.join(CHECKPOINT_FILE)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (a, b) = (load(&once), load(&split));
    assert_eq!(a.iter, 8);
    assert_eq!(a.params, b.params);
    assert_eq!(a.best_val, b.best_val);
    assert_eq!(
        serde_json::to_string(&a.adam).unwrap(),
        serde_json::to_string(&b.adam).unwrap()
    );
}

/// A session opened to read cannot train, and a new run into a folder holding a model is
/// refused unless forced.
#[test]
fn refusals_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = toy_run(dir.path(), "r", 2);
    let mut opened = Session::open(&run).unwrap();
    assert!(matches!(
        opened.train(Vec::new()),
        Err(TrainError::Invalid(_))
    ));
    let data = DataSource::from_name("8gaussians", None).unwrap();
    let plan = RunPlan::new(data, &TrainOptions::default(), Some(run.clone())).unwrap();
    match Session::start(plan, false) {
        Err(TrainError::Invalid(m)) => assert!(m.contains("already holds a model"), "{m}"),
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        DataSource::from_name("no-such-set-or-file", None),
        Err(TrainError::Invalid(_))
    ));
}
