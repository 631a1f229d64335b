//! The cost and accuracy of the per-sample error norm in whole-batch CNF solves (issue 15):
//! the diffrax-trained 8gaussians model, f32, Dopri5 at rtol = atol = 1e-5.
//!
//! `cargo run --release --example batch_norm` prints one JSON line per (task, batching, norm):
//! median seconds over the repeats, NFE, and for log-densities the worst error of the 69
//! reference points (scipy at 1e-12, tests/data/logp_reference.csv) solved inside a batch of
//! 10k test points (so a batch-RMS norm is diluted as in practice). The ratio PerSample / Rms
//! of the medians is the cost of holding every point to the tolerance.
use std::time::Instant;

use cnf::field::{Activation, Mlp, Trace};
use cnf::flow::{Batching, Cnf};
use cnf::ode::Differentiation;
use cnf::ode::{Method, SolverSpec};
use cnf::train::data::toy_test;
use cnf_testkit::stats::median;
use serde_json::json;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const REPEATS: usize = 5;

fn reference() -> (Vec<f32>, Vec<f64>) {
    let text = std::fs::read_to_string(format!("{DATA}/logp_reference.csv")).expect("reference");
    let (mut x, mut logp) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|s| s.trim().parse().unwrap()).collect();
        x.extend([v[0] as f32, v[1] as f32]);
        logp.push(v[2]);
    }
    (x, logp)
}

/// Dopri5 at rtol = atol = 1e-5 with the batch RMS norm ("Rms") or the per-sample norm.
fn dopri5(norm: &str) -> SolverSpec<f32> {
    SolverSpec::builder(Method::Dopri5)
        .rtol(1e-5)
        .atol(1e-5)
        .per_sample_norm(norm == "PerSample")
        .build()
        .unwrap()
}

fn main() {
    let mlp = Mlp::<f32>::from_npz(
        format!("{DATA}/cnf_8g_diffrax_1000it.npz"),
        &[64, 64, 64],
        Activation::Tanh,
    )
    .expect("model");
    let (x_ref, logp_ref) = reference();
    let mut x = x_ref.clone();
    x.extend(
        toy_test(cnf::train::data::ToySet::EightGaussians)
            .data()
            .iter()
            .map(|&v| v as f32),
    );
    let mut medians = std::collections::BTreeMap::new();
    for batching in [Batching::Whole, Batching::Chunks(1024)] {
        for norm in ["Rms", "PerSample"] {
            let cnf = Cnf::new(mlp.clone(), dopri5(norm)).with_batching(batching);
            let mut secs = Vec::new();
            let mut last = None;
            for _ in 0..REPEATS {
                let t = Instant::now();
                let d = cnf.log_density(&x).expect("log-density");
                secs.push(t.elapsed().as_secs_f64());
                last = Some(d);
            }
            let d = last.unwrap();
            let worst = logp_ref
                .iter()
                .zip(&d.logp)
                .map(|(r, l)| (r - *l as f64).abs())
                .fold(0.0, f64::max);
            let m = median(secs);
            medians.insert(format!("logp {batching:?} {norm}"), m);
            println!(
                "{}",
                json!({"task": "log_density", "points": x.len() / 2, "batching": format!("{batching:?}"),
                       "norm": norm, "median_s": m, "nfe": d.stats.nfe,
                       "worst_ref_logp_err": worst})
            );
        }
    }
    // One training step of the peers' protocol size (batch 512, backprop).
    let batch = &x[..1024];
    for norm in ["Rms", "PerSample"] {
        let cnf = Cnf::new(mlp.clone(), dopri5(norm));
        let mut secs = Vec::new();
        let mut last = None;
        for _ in 0..REPEATS {
            let t = Instant::now();
            let g = cnf
                .loss_and_grad(batch, &Trace::Exact, Differentiation::Discretise)
                .expect("gradient");
            secs.push(t.elapsed().as_secs_f64());
            last = Some(g);
        }
        let g = last.unwrap();
        let m = median(secs);
        medians.insert(format!("step {norm}"), m);
        println!(
            "{}",
            json!({"task": "loss_and_grad", "points": 512, "norm": norm,
                   "median_s": m, "nfe_fwd": g.forward.nfe, "nfe_bwd": g.backward.nfe})
        );
    }
    let ratio = |a: &str, b: &str| medians[a] / medians[b];
    println!(
        "{}",
        json!({"cost_per_sample_over_rms": {
            "logp_whole": ratio("logp Whole PerSample", "logp Whole Rms"),
            "logp_chunks1024": ratio("logp Chunks(1024) PerSample", "logp Chunks(1024) Rms"),
            "training_step": ratio("step PerSample", "step Rms"),
        }})
    );
}
