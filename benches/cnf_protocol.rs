//! The peers' CNF protocol end to end (docs/peers/peers.md, "CNF protocol"): 8gaussians,
//! MLP [z, t] -> 64 -> 64 -> 64 -> 2 tanh, exact trace, Dopri5 rtol = atol = 1e-5 on the whole
//! batch, batch 512, Adam lr 1e-3, 1000 iterations, f32; test NLL on 10k fresh samples.
//! Prints one JSON line per gradient method:
//! `cargo bench --bench cnf_protocol [-- --iters N] [-- --grad backprop|adjoint|both]`.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use cnf::field::{Activation, Mlp, MlpConfig, VectorField};
use cnf::flow::{Cnf, Integrator};
use cnf::train::commands::{toy_test, toy_validation};
use cnf::train::data::ToySet;
use cnf::train::optim::{Adam, AdamConfig};
use cnf::train::trainer::{
    mean_nll, Batches, IterEvent, Observer, TraceKind, TrainSettings, Trainer,
};

/// Collects every iteration's time and NFE (shared with the caller).
struct Record(Rc<RefCell<Vec<IterEvent>>>);
impl Observer<f32> for Record {
    fn on_iter(&mut self, ev: &IterEvent) {
        self.0.borrow_mut().push(ev.clone());
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
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
    let set = ToySet::EightGaussians;
    let val: Vec<f32> = toy_validation(set, 0)
        .data()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let test: Vec<f32> = toy_test(set).data().iter().map(|&v| v as f32).collect();
    for backprop in grads {
        let mlp = Mlp::<f32>::new(MlpConfig::new(2, &[64, 64, 64], Activation::Tanh), 0).unwrap();
        let adam = Adam::new(mlp.num_params(), AdamConfig::default()).unwrap();
        let events = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        {
            let mut trainer = Trainer {
                cnf: Cnf::new(mlp, Integrator::default_dopri5()),
                adam,
                batches: Batches::Toy(set),
                val: val.clone(),
                settings: TrainSettings {
                    iters,
                    batch: 512,
                    backprop,
                    trace: TraceKind::Exact,
                    val_every: iters,
                    seed: 0,
                },
                observers: vec![Box::new(Record(events.clone()))],
            };
            trainer.run(0).unwrap();
            let wall = start.elapsed().as_secs_f64();
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
                    "s_per_iter_median_20_60": median(window.iter().map(|e| e.seconds).collect()),
                    "s_per_iter_mean_all": wall / iters as f64,
                    "fwd_nfe_median_20_60": median(window.iter().map(|e| e.nfe_fwd as f64).collect()),
                    "bwd_nfe_median_20_60": median(window.iter().map(|e| e.nfe_bwd as f64).collect()),
                    "final_fwd_nfe": last.nfe_fwd,
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
