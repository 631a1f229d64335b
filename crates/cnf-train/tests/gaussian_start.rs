//! Issue 12: a table model starts as the full-covariance Gaussian fitted to its training data
//! (whitening + a zero field), and early stopping keeps the best validation model.
use std::cell::RefCell;
use std::ops::ControlFlow;

use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
use cnf_flow::Cnf;
use cnf_train::data::{Standardizer, Table};
use cnf_train::gaussian::Gaussian;
use cnf_train::model::{
    default_solver, log_density_table, solver_in, to_model_space, DataSource, ModelConfig,
    ModelDir, Precision, WEIGHTS_FILE,
};
use cnf_train::observers::{BestSoFar, BestWeights, EarlyStopping, ResumeFile};
use cnf_train::optim::{Adam, AdamConfig};
use cnf_train::trainer::{
    mean_nll, Batches, Differentiation, Observer, TraceKind, TrainSettings, Trainer, ValEvent,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// `n` rows of `d` correlated, skewed columns with random scales and offsets.
fn correlated_table(n: usize, d: usize, seed: u64) -> Table {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mix: Vec<f64> = (0..d * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let scale: Vec<f64> = (0..d)
        .map(|_| 10f64.powf(rng.random_range(-3.0..3.0)))
        .collect();
    let offset: Vec<f64> = (0..d).map(|_| rng.random_range(-100.0..100.0)).collect();
    let data = (0..n)
        .flat_map(|_| {
            let e: Vec<f64> = (0..d)
                .map(|_| {
                    let u: f64 = rng.random_range(-1.0..1.0);
                    u + 0.5 * u * u * u.signum()
                })
                .collect();
            (0..d)
                .map(|j| {
                    let v: f64 = (0..d).map(|k| mix[j * d + k] * e[k]).sum::<f64>() + e[j];
                    v * scale[j] + offset[j]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Table::with_default_names(n, d, data).unwrap()
}

fn config(d: usize, standardizer: Standardizer) -> ModelConfig {
    ModelConfig {
        mlp: MlpConfig::new(d, &[16, 16], Activation::Tanh),
        solver: default_solver(),
        sampler: None,
        standardizer: Some(standardizer),
        data: DataSource::Toy {
            name: "test".into(),
        },
        seed: 0,
        columns: (0..d).map(|j| format!("x{j}")).collect(),
        context: None,
        precision: Precision::F64,
        training: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// On any correlated table, the untrained model (whitening fitted on the training rows, a
    /// zero-output MLP) gives in data space exactly the log-density of the Gaussian fitted to
    /// the same rows, on points it was not fitted to.
    #[test]
    fn untrained_model_is_the_fitted_gaussian(
        n in 20usize..120,
        d in 1usize..7,
        seed in any::<u64>(),
    ) {
        let all = correlated_table(n + 30, d, seed);
        let train = all.select_rows(&(0..n).collect::<Vec<_>>());
        let test = all.select_rows(&(n..n + 30).collect::<Vec<_>>());
        let s = Standardizer::fit_whitened(&train, &all).unwrap();
        let cfg = config(d, s);
        let mut mlp = Mlp::<f64>::new(cfg.mlp.clone(), seed).unwrap();
        mlp.zero_output();
        let cnf = Cnf::new(mlp, solver_in::<f64>(&cfg.solver).unwrap());
        let (logp, _) = log_density_table(&cnf, &cfg, &test).unwrap();
        let g = Gaussian::fit(&train).unwrap();
        for (row, lp) in test.rows().zip(&logp) {
            let want = g.log_density(row).unwrap();
            prop_assert!(
                (lp - want).abs() <= 1e-9 * want.abs().max(1.0),
                "flow {lp} vs Gaussian {want}"
            );
        }
    }
}

/// Records every validation NLL.
struct Record<'a>(&'a RefCell<Vec<ValEvent>>);

impl Observer<f64> for Record<'_> {
    fn on_validation(
        &mut self,
        ev: &ValEvent,
        _: &Mlp<f64>,
        _: &Adam<f64>,
    ) -> Result<ControlFlow<()>, cnf_train::error::TrainError> {
        self.0.borrow_mut().push(ev.clone());
        Ok(ControlFlow::Continue(()))
    }
}

/// With patience, training stops after that many validations without improvement, and
/// model.safetensors holds the model of the best validation, not the last one.
#[test]
fn early_stopping_restores_the_best_validation_model() {
    let dir = tempfile::tempdir().unwrap();
    let md = ModelDir::new(dir.path());
    let all = correlated_table(120, 2, 7);
    let train = all.select_rows(&(0..60).collect::<Vec<_>>());
    let val = all.select_rows(&(60..120).collect::<Vec<_>>());
    let s = Standardizer::fit_whitened(&train, &all).unwrap();
    let cfg = config(2, s.clone());
    let mut mlp = Mlp::<f64>::new(cfg.mlp.clone(), 3).unwrap();
    mlp.zero_output();
    let integ = solver_in::<f64>(&cfg.solver).unwrap();
    let events = RefCell::new(Vec::new());
    // A large learning rate on 60 rows overfits quickly: validation gets worse after a while.
    let adam = Adam::new(
        mlp.num_params(),
        AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        },
    )
    .unwrap();
    let iters = 400;
    let mut trainer = Trainer {
        cnf: Cnf::new(mlp, integ),
        adam,
        batches: Batches::Table(s.transform(&train).unwrap()),
        val: to_model_space(&cfg, &val).unwrap(),
        settings: TrainSettings {
            iters,
            batch: 60,
            grad: Differentiation::Discretise,
            trace: TraceKind::Exact,
            val_every: 5,
            seed: 1,
            regularisers: Default::default(),
        },
        observers: vec![
            Box::new(Record(&events)),
            Box::new(BestWeights::new(md.clone(), BestSoFar::default())),
            Box::new(ResumeFile::new(md.clone(), BestSoFar::default())),
            Box::new(EarlyStopping::new(3, BestSoFar::default())),
        ],
    };
    let done = trainer.run(0).unwrap();
    let events = events.borrow().clone();
    assert!(
        done < iters,
        "early stopping did not trigger in {iters} iterations"
    );
    let (best_at, best) = events
        .iter()
        .map(|e| (e.iter, e.val_nll))
        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    // Stopped exactly `patience` validations after the best one.
    assert_eq!(events.last().unwrap().iter, best_at + 3 * 5);
    let last = events.last().unwrap().val_nll;
    assert!(last > best);
    let bytes = std::fs::read(md.path(WEIGHTS_FILE)).unwrap();
    let restored = Mlp::<f64>::from_safetensors_bytes(&bytes, cfg.mlp.clone()).unwrap();
    let restored = Cnf::new(restored, solver_in::<f64>(&cfg.solver).unwrap());
    let (nll, _) = mean_nll(&restored, &trainer.val).unwrap();
    assert!(
        (nll - best).abs() < 1e-9,
        "restored {nll}, best {best}, last {last}"
    );
    let (now, _) = mean_nll(&trainer.cnf, &trainer.val).unwrap();
    assert!((now - last).abs() < 1e-9);
}
