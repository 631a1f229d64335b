//! Per-iteration cost of a flow-matching training step (issue 11's targets).
//!
//! `cargo run --release -p cnf-train --example fm_step [-- ITERS]` prints one JSON line per
//! configuration: 2-D 8gaussians batches of 256, an MLP 3x64 tanh in f32, the straight path,
//! uniform times; one step = draw the batch's base points and times, couple (independent or
//! exact minibatch OT), loss + gradient through the batched VJP, and an Adam update. Medians
//! over `ITERS` (default 200) timed steps after 20 warm-up steps; the coupling (base draws and
//! pairing) is also timed on its own. Data sampling is outside the timed step (the
//! trainer draws its batches separately). A last line times the W2 metric on 2000 + 2000
//! 8gaussians points (one run).

use std::time::Instant;

use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
use cnf_testkit::stats::median;
use cnf_train::data::ToySet;
use cnf_train::fm::{Coupling, FlowMatching, FmWork, PathSpec, TimeDist};
use cnf_train::optim::{Adam, AdamConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("usage: fm_step [ITERS]"))
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
    for (coupling, target_ms) in [(Coupling::Independent, 0.5), (Coupling::ExactOt, 2.0)] {
        let config = MlpConfig::new(dim, &[64, 64, 64], Activation::Tanh);
        let mut mlp = Mlp::<f32>::new(config, 1).expect("valid MLP");
        let fm = FlowMatching {
            path: PathSpec::Straight { sigma: 0.0 },
            coupling,
            time: TimeDist::Uniform,
        };
        let mut work = FmWork::new(&mlp);
        let np = VectorField::num_params(&mlp);
        let mut grad = vec![0.0f32; np];
        let mut adam = Adam::new(np, AdamConfig::default()).expect("valid Adam");
        let mut rng = StdRng::seed_from_u64(2);
        let mut step_ms = Vec::with_capacity(iters);
        let mut last_loss = 0.0;
        for (i, x) in batches.iter().enumerate() {
            let start = Instant::now();
            let step = fm
                .step(&mlp, &mut work, x, &mut rng, &mut grad)
                .expect("flow-matching step");
            adam.step(mlp.params_mut(), &grad).expect("Adam step");
            let ms = start.elapsed().as_secs_f64() * 1e3;
            if i >= warmup {
                step_ms.push(ms);
            }
            last_loss = step.loss;
        }
        // The coupling alone (base draws plus pairing) on the same batches.
        let mut couple_ms = Vec::with_capacity(iters);
        for x in &batches[warmup..] {
            let start = Instant::now();
            let e: Vec<f32> = (0..batch * dim)
                .map(|_| {
                    let n: f64 = StandardNormal.sample(&mut rng);
                    n as f32
                })
                .collect();
            let p = coupling.pair(x, &e, dim, &mut rng).expect("coupling");
            std::hint::black_box(p);
            couple_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let med = median(step_ms.clone());
        step_ms.sort_by(f64::total_cmp);
        let (p10, p90) = (step_ms[step_ms.len() / 10], step_ms[step_ms.len() * 9 / 10]);
        let line = serde_json::json!({
            "bench": "fm_step",
            "coupling": coupling.name(),
            "batch": batch,
            "dim": dim,
            "hidden": [64, 64, 64],
            "precision": "f32",
            "iters": iters,
            "median_ms": med,
            "p10_ms": p10,
            "p90_ms": p90,
            "coupling_median_ms": median(couple_ms),
            "target_ms": target_ms,
            "meets_target": med <= target_ms,
            "final_loss": last_loss,
        });
        println!("{line}");
    }
    // The W2 metric at its largest size: 2000 8gaussians points against 2000 others.
    let n = cnf_train::fm::W2_MAX_POINTS;
    let a = ToySet::EightGaussians.sample(n, &mut data_rng);
    let b = ToySet::EightGaussians.sample(n, &mut data_rng);
    let start = Instant::now();
    let w2 = cnf_train::fm::w2_distance(a.data(), b.data(), dim).expect("W2");
    let line = serde_json::json!({
        "bench": "w2",
        "n": n,
        "dim": dim,
        "w2": w2,
        "ms": start.elapsed().as_secs_f64() * 1e3,
    });
    println!("{line}");
}
