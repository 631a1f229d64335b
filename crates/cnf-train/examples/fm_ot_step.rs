//! Exact minibatch OT per training iteration (target: <= 2 ms per iteration with exact OT; 2-D,
//! batch 256, MLP 3x64, f32).
//!
//! `cargo run --release -p cnf-train --example fm_ot_step [-- ITERS]` (default 200 timed
//! iterations after 20 warm-up ones) times [`FlowMatching::step`] with its exact coupling
//! (`Coupling::ExactOt`: auction with epsilon scaling, then LAPJV's shortest augmenting paths,
//! reused buffers) on 8gaussians batches, and the assignment alone on 8gaussians and on
//! standard-normal data, printing one JSON line each. (The previous plain LAPJV it replaced was
//! 4x slower: docs/flow_matching.md.) Optimality of the assignment is tested against brute force
//! in `cnf_train::fm::assign`.

use std::time::Instant;

use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
use cnf_testkit::stats::median;
use cnf_train::data::ToySet;
use cnf_train::fm::FmWork;
use cnf_train::fm::{squared_distances, AssignWork, Coupling, FlowMatching, PathSpec, TimeDist};
use cnf_train::optim::{Adam, AdamConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("usage: fm_ot_step [ITERS]"))
        .unwrap_or(200);
    let (batch, dim, warmup) = (256usize, 2usize, 20usize);
    let mut data_rng = StdRng::seed_from_u64(0);
    let batches: Vec<Vec<f32>> = (0..iters + warmup)
        .map(|_| {
            ToySet::EightGaussians
                .sample(batch, &mut data_rng)
                .data()
                .iter()
                .map(|&v| v as f32)
                .collect()
        })
        .collect();
    let fm = FlowMatching {
        path: PathSpec::Straight { sigma: 0.0 },
        coupling: Coupling::ExactOt,
        time: TimeDist::Uniform,
    };
    let config = MlpConfig::new(dim, &[64, 64, 64], Activation::Tanh);
    let mut mlp = Mlp::<f32>::new(config, 1).expect("valid MLP");
    let np = VectorField::num_params(&mlp);
    let mut work = FmWork::new(&mlp);
    let mut grad = vec![0.0f32; np];
    let mut adam = Adam::new(np, AdamConfig::default()).expect("valid Adam");
    let mut rng = StdRng::seed_from_u64(2);
    let mut times = Vec::new();
    let mut loss = 0.0;
    for (it, x) in batches.iter().enumerate() {
        let start = Instant::now();
        let step = fm
            .step(&mlp, &mut work, x, &mut rng, &mut grad)
            .expect("flow-matching step");
        adam.step(mlp.params_mut(), &grad).expect("Adam step");
        let dt = ms(start);
        if it >= warmup {
            times.push(dt);
        }
        loss = step.loss;
    }
    let line = serde_json::json!({
        "bench": "fm_ot_step",
        "data": "8gaussians",
        "batch": batch,
        "hidden": [64, 64, 64],
        "precision": "f32",
        "iters": iters,
        "median_ms": median(times),
        "target_ms": 2.0,
        "final_loss": loss,
    });
    println!("{line}");
    // The assignment alone, on 8gaussians and on standard-normal data.
    let normal = |rng: &mut StdRng| -> f32 {
        let v: f64 = StandardNormal.sample(rng);
        v as f32
    };
    let mut rng = StdRng::seed_from_u64(3);
    for data in ["8gaussians", "normal"] {
        let mut assign = AssignWork::new();
        let mut times = Vec::new();
        let (mut bids, mut aug, mut scans) = (0usize, 0usize, 0usize);
        for x in &batches[warmup..] {
            let x: Vec<f32> = if data == "normal" {
                (0..batch * dim).map(|_| normal(&mut rng)).collect()
            } else {
                x.clone()
            };
            let e: Vec<f32> = (0..batch * dim).map(|_| normal(&mut rng)).collect();
            let cost = squared_distances(&x, &e, dim);
            let start = Instant::now();
            assign.solve(&cost, batch).expect("assignment");
            times.push(ms(start));
            let s = assign.stats();
            (bids, aug, scans) = (bids + s.bids, aug + s.augmentations, scans + s.path_scans);
        }
        let k = times.len() as f64;
        let line = serde_json::json!({
            "bench": "assignment",
            "data": data,
            "n": batch,
            "median_ms": median(times),
            "mean_bids": bids as f64 / k,
            "mean_free_after_auction": aug as f64 / k,
            "mean_path_scans": scans as f64 / k,
        });
        println!("{line}");
    }
}
