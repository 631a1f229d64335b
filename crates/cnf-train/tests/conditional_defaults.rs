//! The defaults of conditional runs (docs/sbi.md, "Defaults of conditional runs"): a
//! conditional flow-matching run on a table takes `TableDefaults::conditional_flow_matching`,
//! a cosine learning-rate schedule and a fixed-step sampling solver (config.json's `sampler`);
//! unconditional and maximum-likelihood runs keep the table defaults and write config.json as
//! before. Samples are drawn with the sampler unless solver changes are asked for, and its
//! draws agree with a tight adaptive solve's from the same base points.
use std::path::{Path, PathBuf};

use cnf_train::model::{conditional_sampler, DataSource, Method, Precision, CONFIG_FILE};
use cnf_train::optim::LrSchedule;
use cnf_train::session::{
    EvalOptions, ResumeOptions, RunPlan, Session, SolverOverrides, TableDefaults, TrainOptions,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// `n` rows of the 2-D gaussian-linear task: theta ~ N(0, 0.1 I), x ~ N(theta, 0.1 I).
fn simulations(dir: &Path, n: usize) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(11);
    let sd = Normal::new(0.0, 0.1f64.sqrt()).unwrap();
    let mut text = String::from("theta_1,theta_2,x_1,x_2\n");
    for _ in 0..n {
        let t = [sd.sample(&mut rng), sd.sample(&mut rng)];
        let x = [t[0] + sd.sample(&mut rng), t[1] + sd.sample(&mut rng)];
        text += &format!("{},{},{},{}\n", t[0], t[1], x[0], x[1]);
    }
    let path = dir.join("sims.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` rows of a task whose posterior is not linear-Gaussian (so a trained flow is more than
/// its linear-Gaussian start): theta ~ N(0, I), x = theta^2 + N(0, 0.1^2 I), so p(theta | x)
/// has a mode near each of +-sqrt(x) per coordinate.
fn bimodal_simulations(dir: &Path, n: usize) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(12);
    let (prior, noise) = (
        Normal::new(0.0, 1.0).unwrap(),
        Normal::new(0.0, 0.1).unwrap(),
    );
    let mut text = String::from("theta_1,theta_2,x_1,x_2\n");
    for _ in 0..n {
        let t: [f64; 2] = [prior.sample(&mut rng), prior.sample(&mut rng)];
        let x = [
            t[0] * t[0] + noise.sample(&mut rng),
            t[1] * t[1] + noise.sample(&mut rng),
        ];
        text += &format!("{},{},{},{}\n", t[0], t[1], x[0], x[1]);
    }
    let path = dir.join("bimodal.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn plan_on(data: &Path, dir: &Path, name: &str, options: &TrainOptions) -> RunPlan {
    let data = DataSource::from_name(data.to_str().unwrap(), None).unwrap();
    RunPlan::new(data, options, Some(dir.join(name))).unwrap()
}

fn plan(dir: &Path, name: &str, options: &TrainOptions) -> RunPlan {
    plan_on(&simulations(dir, 1000), dir, name, options)
}

fn conditional_fm(iters: usize) -> TrainOptions {
    TrainOptions {
        context: Some(vec!["x_1".into(), "x_2".into()]),
        flow_matching: Some(Default::default()),
        hidden: Some(vec![16, 16]),
        iters: Some(iters),
        val_every: Some(iters),
        ..TrainOptions::default()
    }
}

fn config_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap()).unwrap()
}

#[test]
fn a_conditional_flow_matching_run_takes_its_own_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let options = TrainOptions {
        hidden: None,
        ..conditional_fm(10)
    };
    let p = plan(dir.path(), "fm", &options);
    let chosen = TableDefaults::conditional_flow_matching(800, 2);
    let tr = p.config().training.clone().unwrap();
    assert_eq!(p.config().mlp.hidden, chosen.hidden);
    assert_eq!(tr.batch, chosen.batch);
    assert_eq!(tr.lr, chosen.lr);
    assert_eq!(tr.lr_schedule, LrSchedule::Cosine);
    assert_eq!(tr.patience, Some(chosen.patience));
    assert_eq!(p.config().sampler, Some(conditional_sampler()));
    assert!(p.settings().unwrap().contains("conditional flow matching"));
    Session::start(p, false).unwrap().train(Vec::new()).unwrap();
    let c = config_json(&dir.path().join("fm"));
    assert_eq!(c["sampler"]["method"], "rk4");
    assert_eq!(c["training"]["lr_schedule"], "cosine");

    // Given settings win; a given solver leaves the sampler to it.
    let given = TrainOptions {
        lr_schedule: Some(LrSchedule::Constant),
        solver: SolverOverrides {
            rtol: Some(1e-4),
            ..SolverOverrides::default()
        },
        ..conditional_fm(10)
    };
    let p = plan(dir.path(), "given", &given);
    assert_eq!(p.config().sampler, None);
    assert_eq!(
        p.config().training.as_ref().unwrap().lr_schedule,
        LrSchedule::Constant
    );
}

/// Unconditional table runs and conditional maximum-likelihood runs keep the table defaults,
/// and their config.json has neither a sampler nor a schedule (the form every release wrote).
#[test]
fn other_runs_keep_the_table_defaults_and_the_file_form() {
    let dir = tempfile::tempdir().unwrap();
    let ml = TrainOptions {
        flow_matching: None,
        ..conditional_fm(2)
    };
    let unconditional = TrainOptions {
        context: None,
        flow_matching: None,
        ..conditional_fm(2)
    };
    for (name, options) in [("ml", ml), ("plain", unconditional)] {
        let p = plan(dir.path(), name, &options);
        let d = p.config().columns.len();
        let chosen = TableDefaults::choose(800, d);
        let tr = p.config().training.clone().unwrap();
        assert_eq!(
            (tr.batch, tr.lr, tr.weight_decay),
            (chosen.batch, chosen.lr, chosen.weight_decay)
        );
        assert_eq!(tr.lr_schedule, LrSchedule::Constant, "{name}");
        assert_eq!(p.config().sampler, None, "{name}");
        Session::start(p, false).unwrap().train(Vec::new()).unwrap();
        let c = config_json(&dir.path().join(name));
        assert!(c.get("sampler").is_none(), "{name}: {c}");
        assert!(c["training"].get("lr_schedule").is_none(), "{name}: {c}");
    }
}

/// Samples come from the sampler: the same numbers as asking for RK4 with its steps; any
/// solver change replaces it (then the model's Dopri5 with the change draws). The sampler's
/// draws are those of a tight adaptive solve (Dopri5 at 1e-9 in f64) from the same base points
/// to within 1e-3 posterior standard deviations (the posterior sd is sqrt(0.05) = 0.22).
#[test]
fn samples_are_drawn_with_the_sampler_and_match_a_tight_solve() {
    let dir = tempfile::tempdir().unwrap();
    let data = bimodal_simulations(dir.path(), 1000);
    let p = plan_on(&data, dir.path(), "fm", &conditional_fm(300));
    Session::start(p, false).unwrap().train(Vec::new()).unwrap();
    let session = Session::open(dir.path().join("fm")).unwrap();
    let given = [0.8, 1.5];
    let n = 2000;
    let default = session
        .sample_given(n, 4, &given, &EvalOptions::default())
        .unwrap();
    let rk4 = |steps, grading| EvalOptions {
        solver: SolverOverrides {
            method: Some(Method::Rk4),
            steps: Some(steps),
            grading,
            ..SolverOverrides::default()
        },
        ..EvalOptions::default()
    };
    let sampler = conditional_sampler();
    let (steps, grading) = (sampler.fixed_steps().unwrap(), sampler.grading());
    assert_eq!(
        default,
        session
            .sample_given(n, 4, &given, &rk4(steps, Some(grading)))
            .unwrap()
    );
    // Other steps, or the same steps equal (a new method's steps are ungraded unless asked).
    assert_ne!(
        default,
        session
            .sample_given(n, 4, &given, &rk4(steps / 2, Some(grading)))
            .unwrap()
    );
    assert_ne!(
        default,
        session
            .sample_given(n, 4, &given, &rk4(steps, None))
            .unwrap()
    );
    let flow = session.flow(&EvalOptions::default()).unwrap();
    assert_eq!(flow.sampler(), &conditional_sampler());
    assert_eq!(flow.solver(), &session.config().solver);
    let loose = EvalOptions {
        solver: SolverOverrides {
            rtol: Some(1e-3),
            ..SolverOverrides::default()
        },
        ..EvalOptions::default()
    };
    let changed = session.flow(&loose).unwrap();
    assert_eq!(changed.sampler(), changed.solver());
    assert_eq!(changed.sampler().method(), Method::Dopri5);

    let tight = EvalOptions {
        solver: SolverOverrides {
            rtol: Some(1e-9),
            atol: Some(1e-9),
            ..SolverOverrides::default()
        },
        precision: Some(cnf_train::model::Precision::F64),
    };
    let reference = session.sample_given(n, 4, &given, &tight).unwrap();
    // In units of the posterior's scale: each mode has a standard deviation of about
    // 0.1 / (2 sqrt(x)) >= 0.04 here.
    let sd = 0.04;
    let worst = default
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs() / sd)
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "largest difference {worst:.2e} posterior sd");
}

/// A resumed cosine run anneals over the iterations it now reaches.
#[test]
fn a_resumed_cosine_run_anneals_to_its_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), "fm", &conditional_fm(4));
    Session::start(p, false).unwrap().train(Vec::new()).unwrap();
    let steps = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("checkpoint.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["adam"]["config"]["cosine_steps"].as_u64().unwrap()
    };
    let out = dir.path().join("fm");
    assert_eq!(steps(&out), 4);
    let resume = ResumeOptions {
        iters: Some(10),
        ..ResumeOptions::default()
    };
    let mut session = Session::start(RunPlan::resume(&out, resume).unwrap(), false).unwrap();
    session.train(Vec::new()).unwrap();
    assert_eq!(steps(&out), 10);
}

/// A conditional flow-matching run keeps a moving average of its weights (config.json's
/// `training.ema_decay`): the kept model is the average (not the last iterate), and a run
/// resumed half way ends with the parameters, average and optimiser state of one run.
#[test]
fn the_weight_average_is_kept_and_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // A constant rate: a cosine run of 4 iterations anneals differently from one of 8.
    let options = TrainOptions {
        val_every: Some(20),
        lr_schedule: Some(LrSchedule::Constant),
        lr: Some(3e-3),
        ..conditional_fm(40)
    };
    // Bimodal posteriors: training beats the linear-Gaussian start, so the kept model is the
    // last validation's.
    let sims = bimodal_simulations(dir.path(), 1000);
    let once = plan_on(&sims, dir.path(), "once", &options);
    let decay = once.config().training.as_ref().unwrap().ema_decay;
    assert_eq!(
        decay,
        TableDefaults::conditional_flow_matching(800, 2).ema_decay
    );
    assert!(decay > 0.0);
    Session::start(once, false)
        .unwrap()
        .train(Vec::new())
        .unwrap();
    let split = plan_on(
        &sims,
        dir.path(),
        "split",
        &TrainOptions {
            iters: Some(4),
            ..options
        },
    );
    Session::start(split, false)
        .unwrap()
        .train(Vec::new())
        .unwrap();
    let resume = ResumeOptions {
        iters: Some(40),
        ..ResumeOptions::default()
    };
    let split = dir.path().join("split");
    let mut session = Session::start(RunPlan::resume(&split, resume).unwrap(), false).unwrap();
    session.train(Vec::new()).unwrap();
    let checkpoint = |d: &Path| -> cnf_train::observers::Checkpoint<f32> {
        serde_json::from_str(&std::fs::read_to_string(d.join("checkpoint.json")).unwrap()).unwrap()
    };
    let once = dir.path().join("once");
    let (a, b) = (checkpoint(&once), checkpoint(&split));
    assert_eq!(a.iter, 40);
    assert_eq!(a.params, b.params);
    assert_eq!(
        serde_json::to_string(&a.adam).unwrap(),
        serde_json::to_string(&b.adam).unwrap()
    );
    // The checkpoint's parameters are the validated average; the raw ones differ from it.
    let (raw, _) = a.clone().into_training().unwrap();
    assert_ne!(raw, a.params);
    use cnf_field::field::VectorField;
    let folder = cnf_train::model::ModelDir::new(&once);
    let kept = folder.load_mlp::<f32>(&folder.config().unwrap()).unwrap();
    assert_eq!(a.since_best, 0, "the last validation is the best");
    assert_eq!(kept.params(), &a.params[..]);
}

/// An untrained conditional model is the linear-Gaussian p(x | c) fitted to the training
/// split: x is whitened given c (the residual of its least-squares regression on c, whitened),
/// so a zero field's test NLL is that of the conditional of the joint Gaussian of `[x | c]`
/// (`cnf eval`'s baseline, computed independently from the joint covariance). One Adam step
/// of 1e-12 moves the field by ~1e-12, far below the 1e-8 nats allowed here.
#[test]
fn an_untrained_conditional_model_is_the_linear_gaussian_posterior() {
    let dir = tempfile::tempdir().unwrap();
    let options = TrainOptions {
        lr: Some(1e-12),
        precision: Some(Precision::F64),
        ..conditional_fm(1)
    };
    let p = plan(dir.path(), "start", &options);
    let shift = p.config().context.as_ref().and_then(|c| c.shift.clone());
    assert_eq!(shift.map(|g| g.len()), Some(4), "a 2 x 2 shift is recorded");
    Session::start(p, false).unwrap().train(Vec::new()).unwrap();
    let session = Session::open(dir.path().join("start")).unwrap();
    let sims = dir.path().join("sims.csv");
    let (eval, _) = session
        .evaluate(sims.to_str().unwrap(), &EvalOptions::default())
        .unwrap();
    let baseline = eval.gaussian_nll.expect("the test split has the baseline");
    assert!(
        (eval.test_nll - baseline).abs() < 1e-8,
        "untrained model {} vs linear-Gaussian {baseline}",
        eval.test_nll
    );
    // The exact posterior is N(x / 2, 0.05 I): its expected NLL is ln(2 pi 0.05) + 1 = -0.158
    // per pair; the 50 test pairs (5%) give a standard error of about 0.14 nats.
    assert!((eval.test_nll + 0.158).abs() < 0.35, "{}", eval.test_nll);
}

/// `write_samples_given` (what `cnf sample --given` streams) writes exactly the rows of one
/// `sample_given` call with the same seed, in f32 too: both map back to data space with the
/// f64 context (x is whitened given c, so the context's shift enters every row; a context
/// rounded to f32 there moved the rows by ~1e-7).
#[test]
fn streamed_conditional_samples_are_the_one_shot_samples_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let options = TrainOptions {
        precision: Some(Precision::F32),
        ..conditional_fm(2)
    };
    Session::start(plan(dir.path(), "f32", &options), false)
        .unwrap()
        .train(Vec::new())
        .unwrap();
    let session = Session::open(dir.path().join("f32")).unwrap();
    let flow = session.flow(&EvalOptions::default()).unwrap();
    assert_eq!(flow.precision(), Precision::F32);
    // Given rows whose model-space values are not f32 numbers.
    let given = [-0.3, 0.7, 0.1, -0.45, 0.55, 0.2];
    let n = 50;
    let mut csv = Vec::new();
    let report = flow.write_samples_given(n, 5, &given, &mut csv).unwrap();
    assert_eq!(report.written, 3 * n);
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("given_row,theta_1,theta_2"));
    let (mut index, mut streamed) = (Vec::new(), Vec::new());
    for line in lines {
        let v: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        index.push(v[0] as usize);
        streamed.extend_from_slice(&v[1..]);
    }
    assert_eq!(index, (0..3 * n).map(|r| r / n).collect::<Vec<_>>());
    assert_eq!(streamed, flow.sample_given(n, 5, &given).unwrap());
}
