//! The peers' CNF protocol end to end (docs/peers/peers.md, "CNF protocol"): 8gaussians,
//! MLP [z, t] -> 64 -> 64 -> 64 -> 2 tanh, exact trace, Dopri5 rtol = atol = 1e-5 on the whole
//! batch, batch 512, Adam lr 1e-3, 1000 iterations, f32; test NLL on 10k fresh samples.
//! Prints one JSON line per gradient method:
//! `cargo bench --bench cnf_protocol [-- --iters N] [-- --grad backprop|adjoint|both]
//! [-- --kinetic W --jacobian W --steer B --local-error W]` (RNODE's regularisers, STEER and
//! ERNODE's local-error penalty, issue 10).
//! `-- --seed S` draws other initial weights, batches and probes (the test points stay fixed).
//! `-- --train-control i` trains with the I controller (no PI memory, diffrax's default) instead
//! of Hairer's PI controller; the test log-density is evaluated with the default either way.
//! `-- --compare-norms` instead trains with backprop and, at iterations 0, 20, 60, 200 and
//! `--iters`, computes the gradient of the same 5 batches with the adjoint with and without the
//! seminorm (and backprop), printing one JSON line per checkpoint: backward NFE (median) and
//! the adjoint gradients' relative distance to backprop's.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use cnf::field::Trace;
use cnf::field::{Activation, Mlp, MlpConfig, VectorField};
use cnf::flow::Cnf;
use cnf::ode::Differentiation;
use cnf::ode::{Method, PiParams, SolverSpec};
use cnf::train::data::ToySet;
use cnf::train::data::{toy_test, toy_validation};
use cnf::train::optim::{Adam, AdamConfig};
use cnf::train::trainer::{
    mean_nll, Batches, IterEvent, Observer, Regularisers, TraceKind, TrainSettings, Trainer,
};
use cnf_testkit::stats::median;

/// Collects every iteration's time and NFE (shared with the caller).
struct Record(Rc<RefCell<Vec<IterEvent>>>);
impl Observer<f32> for Record {
    fn on_iter(&mut self, ev: &IterEvent) {
        self.0.borrow_mut().push(ev.clone());
    }
}

/// Dopri5 at rtol = atol = 1e-5 (the peers' setting), with `control` or the default controller.
fn dopri5(control: Option<PiParams>) -> SolverSpec<f32> {
    let mut b = SolverSpec::builder(Method::Dopri5).rtol(1e-5).atol(1e-5);
    if let Some(p) = control {
        b = b.controller(p);
    }
    b.build().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let iters: usize = opt("--iters").and_then(|s| s.parse().ok()).unwrap_or(1000);
    let grads = match opt("--grad").as_deref() {
        Some("adjoint") => vec![false],
        Some("both") => vec![true, false],
        _ => vec![true],
    };
    let number = |name: &str| opt(name).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let regularisers = Regularisers {
        kinetic: number("--kinetic"),
        jacobian: number("--jacobian"),
        steer: number("--steer"),
        local_error: number("--local-error"),
    };
    regularisers.validate().unwrap();
    // The step-size control of the training solves (the test evaluation keeps the default).
    let (train_control, control_name) = match opt("--train-control").as_deref() {
        Some("i") => (Some(PiParams::DOPRI5_I), "i"),
        _ => (None, "default"),
    };
    // The seed of the initial weights, the batches and the probes (the test points are fixed).
    let seed: u64 = opt("--seed").and_then(|s| s.parse().ok()).unwrap_or(0);
    let set = ToySet::EightGaussians;
    if args.iter().any(|a| a == "--compare-norms") {
        compare_norms(set, iters);
        return;
    }
    let val: Vec<f32> = toy_validation(set, 0)
        .data()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let test: Vec<f32> = toy_test(set).data().iter().map(|&v| v as f32).collect();
    for backprop in grads {
        let mlp =
            Mlp::<f32>::new(MlpConfig::new(2, &[64, 64, 64], Activation::Tanh), seed).unwrap();
        let adam = Adam::new(mlp.num_params(), AdamConfig::default()).unwrap();
        let events = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        {
            let mut trainer = Trainer {
                cnf: Cnf::new(mlp, dopri5(train_control)),
                adam,
                batches: Batches::Toy(set),
                val: val.clone(),
                settings: TrainSettings {
                    iters,
                    batch: 512,
                    grad: if backprop {
                        Differentiation::Discretise
                    } else {
                        Differentiation::adjoint()
                    },
                    trace: TraceKind::Exact,
                    val_every: iters,
                    seed,
                    regularisers,
                },
                observers: vec![Box::new(Record(events.clone()))],
            };
            trainer.run(0).unwrap();
            let wall = start.elapsed().as_secs_f64();
            trainer.cnf.solver = dopri5(None);
            let (test_nll, nfe) = mean_nll(&trainer.cnf, &test).unwrap();
            let events = events.borrow();
            let window: Vec<&IterEvent> = events
                .iter()
                .filter(|e| (20..60).contains(&e.iter))
                .collect();
            let last = events.last().unwrap();
            println!(
                "{}",
                serde_json::json!({
                    "run": format!("cnf_rust_{}_f32", if backprop { "backprop" } else { "adjoint" }),
                    "iters": iters,
                    "kinetic": regularisers.kinetic,
                    "jacobian": regularisers.jacobian,
                    "steer": regularisers.steer,
                    "seed": seed,
                    "local_error": regularisers.local_error,
                    "train_control": control_name,
                    "s_per_iter_median_20_60": median(window.iter().map(|e| e.seconds).collect()),
                    "s_per_iter_mean_all": wall / iters as f64,
                    "fwd_nfe_median_20_60": median(window.iter().map(|e| e.nfe_fwd as f64).collect()),
                    "bwd_nfe_median_20_60": median(window.iter().map(|e| e.nfe_bwd as f64).collect()),
                    "final_fwd_nfe": last.nfe_fwd,
                    // Machine-independent proxy of the training cost: all evaluations done.
                    "train_nfe_fwd_total": events.iter().map(|e| e.nfe_fwd).sum::<usize>(),
                    "train_nfe_bwd_total": events.iter().map(|e| e.nfe_bwd).sum::<usize>(),
                    "test_nll_10k": test_nll,
                    "test_nfe": nfe,
                    "train_wall_s": wall,
                    "peers": {"diffrax_recursive_f32_s_per_iter": 0.0676, "torchdiffeq_plain_f32_s_per_iter": 0.0960,
                              "diffrax_test_nll": 2.8435, "torchdiffeq_test_nll": 2.8446, "target_s_per_iter": 0.034}
                })
            );
        }
    }
}

/// |a - b| / |b| over the whole vector.
fn rel_dist(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// Backward NFE of the adjoint with and without the seminorm on the same batches, along a
/// backprop training run of the protocol.
fn compare_norms(set: ToySet, iters: usize) {
    let mlp = Mlp::<f32>::new(MlpConfig::new(2, &[64, 64, 64], Activation::Tanh), 0).unwrap();
    let adam = Adam::new(mlp.num_params(), AdamConfig::default()).unwrap();
    let val: Vec<f32> = toy_validation(set, 0)
        .data()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let mut trainer = Trainer {
        cnf: Cnf::new(mlp, dopri5(None)),
        adam,
        batches: Batches::Toy(set),
        val,
        settings: TrainSettings {
            iters: 0,
            batch: 512,
            grad: Differentiation::Discretise,
            trace: TraceKind::Exact,
            val_every: usize::MAX,
            seed: 0,
            regularisers: Regularisers::default(),
        },
        observers: vec![],
    };
    let mut checkpoints = vec![0, 20, 60, 200, iters];
    checkpoints.retain(|&c| c <= iters);
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let mut done = 0;
    for checkpoint in checkpoints {
        if checkpoint > done {
            trainer.settings.iters = checkpoint;
            trainer.settings.val_every = checkpoint;
            trainer.run(done).unwrap();
            done = checkpoint;
        }
        let (tol_r, tol_a) = (1e-5, 1e-5);
        let methods = [
            ("backprop", Differentiation::Discretise),
            ("adjoint_seminorm", Differentiation::backsolve(tol_r, tol_a)),
            (
                "adjoint_full_norm",
                Differentiation::Backsolve {
                    tolerances: Some((tol_r, tol_a)),
                    seminorm: false,
                },
            ),
        ];
        let mut bwd: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut dist: Vec<Vec<f64>> = vec![Vec::new(); 2];
        for b in 0..5 {
            let x: Vec<f32> = Batches::Toy(set)
                .batch(99, b, 512)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let mut grads = Vec::new();
            for (i, (_, m)) in methods.iter().enumerate() {
                let start = Instant::now();
                let g = trainer.cnf.loss_and_grad(&x, &Trace::Exact, *m).unwrap();
                secs[i].push(start.elapsed().as_secs_f64());
                bwd[i].push(g.backward.nfe as f64);
                grads.push(g.grad);
            }
            dist[0].push(rel_dist(&grads[1], &grads[0]));
            dist[1].push(rel_dist(&grads[2], &grads[0]));
        }
        println!(
            "{}",
            serde_json::json!({
                "run": "cnf_rust_adjoint_norms_f32",
                "iter": checkpoint,
                "bwd_nfe_median": {
                    "backprop_vjps": median(bwd[0].clone()),
                    "adjoint_seminorm": median(bwd[1].clone()),
                    "adjoint_full_norm": median(bwd[2].clone()),
                },
                "s_per_grad_median": {
                    "backprop": median(secs[0].clone()),
                    "adjoint_seminorm": median(secs[1].clone()),
                    "adjoint_full_norm": median(secs[2].clone()),
                },
                "grad_rel_dist_to_backprop_median": {
                    "adjoint_seminorm": median(dist[0].clone()),
                    "adjoint_full_norm": median(dist[1].clone()),
                },
            })
        );
    }
}
