//! Higher dimensions (issue 12): 64 columns, batch 512, MLP 3 x 256 tanh, f32, Dopri5 at
//! rtol = atol = 1e-5.
//!
//! `cargo run --release --example high_dim` prints one JSON line per measurement: seconds per
//! maximum-likelihood training iteration (loss and gradient by backprop through the solver's
//! steps, then one Adam step) with the Hutchinson trace (1 Rademacher probe per point) and with
//! the exact trace (64 tangents per point), and seconds for the exact log-density of 10k
//! points. Each figure is the median of `REPEATS` runs after `WARMUP` warm-ups (the training
//! iterations go on training, so the model moves a little between repeats). The data are a
//! 64-dimensional non-Gaussian synthetic set generated here: a 4-component Gaussian mixture with
//! random means and per-component scales, bent by `x_i += 0.8 sin(x_{i-1})`, standardised.
//! The model is freshly initialised (seed 0): solver work grows as a model trains, so these
//! are the cost at the start of training; NFE is printed with every figure.
//!
//! Set `HIGH_DIM_REPEATS` / `HIGH_DIM_WARMUP` to change the counts (defaults 5 and 2; the
//! exact log-density of 10k points uses `HIGH_DIM_EXACT_REPEATS`, default 3, after 1 warm-up,
//! because one call is long).
use std::time::Instant;

use cnf::field::{Activation, Mlp, MlpConfig, VectorField};
use cnf::flow::Cnf;
use cnf::ode::{Method, SolverSpec};
use cnf::train::optim::{Adam, AdamConfig};
use cnf::train::trainer::{Differentiation, MaximumLikelihood, Objective, TraceKind};
use cnf_testkit::stats::median;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

const D: usize = 64;
const BATCH: usize = 512;
const N_EVAL: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `n` rows of the 64-column synthetic set (the mixture's means and scales are fixed by their
/// own seed; `rng` draws the rows).
fn mixture(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let mut crng = StdRng::seed_from_u64(1234);
    let means: Vec<f64> = (0..4 * D).map(|_| crng.random_range(-2.0..2.0)).collect();
    let scales: Vec<f64> = (0..4 * D).map(|_| crng.random_range(0.2..1.0)).collect();
    let mut x = Vec::with_capacity(n * D);
    for _ in 0..n {
        let c = rng.random_range(0..4);
        let mut row: Vec<f64> = (0..D)
            .map(|i| {
                // Box-Muller.
                let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
                let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                means[c * D + i] + scales[c * D + i] * g
            })
            .collect();
        for i in 1..D {
            row[i] += 0.8 * row[i - 1].sin();
        }
        x.extend(row);
    }
    x
}

fn standardise(x: &mut [f64]) {
    let n = (x.len() / D) as f64;
    for i in 0..D {
        let m = x.iter().skip(i).step_by(D).sum::<f64>() / n;
        let v = x
            .iter()
            .skip(i)
            .step_by(D)
            .map(|a| (a - m) * (a - m))
            .sum::<f64>()
            / n;
        let s = v.sqrt().max(1e-12);
        x.iter_mut()
            .skip(i)
            .step_by(D)
            .for_each(|a| *a = (*a - m) / s);
    }
}

fn main() {
    let warmup = env_usize("HIGH_DIM_WARMUP", 2);
    let repeats = env_usize("HIGH_DIM_REPEATS", 5).max(1);
    let exact_repeats = env_usize("HIGH_DIM_EXACT_REPEATS", 3).max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}",
        json!({"what": "setup", "columns": D, "batch": BATCH, "hidden": [256, 256, 256],
               "activation": "tanh", "dtype": "f32", "solver": "Dopri5", "rtol": 1e-5,
               "atol": 1e-5, "threads": threads, "warmup": warmup, "repeats": repeats,
               "exact_log_density_repeats": exact_repeats, "exact_log_density_warmup": 1,
               "note": "shared, noisy machine: medians of few repeats; model at initialisation"})
    );

    let mut rng = StdRng::seed_from_u64(0);
    let mut all = mixture(&mut rng, 20 * BATCH + N_EVAL);
    standardise(&mut all);
    let all: Vec<f32> = all.iter().map(|&v| v as f32).collect();
    let (train, eval) = all.split_at(20 * BATCH * D);

    let config = MlpConfig::new(D, &[256, 256, 256], Activation::Tanh);
    let mlp = Mlp::<f32>::new(config, 0).expect("mlp");
    let n_params = mlp.num_params();
    let cnf0 = Cnf::new(
        mlp,
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );

    for (name, trace) in [
        ("hutchinson_rademacher_1", TraceKind::Rademacher),
        ("exact", TraceKind::Exact),
    ] {
        let mut cnf = cnf0.clone();
        let mut adam = Adam::new(n_params, AdamConfig::default()).expect("adam");
        let mut objective = MaximumLikelihood {
            trace,
            grad: Differentiation::Discretise,
            regularisers: Default::default(),
        };
        let mut grad = Vec::new();
        let (mut secs, mut nfe_fwd, mut nfe_bwd, mut losses) = (vec![], vec![], vec![], vec![]);
        for it in 0..warmup + repeats {
            let x = &train[(it % 20) * BATCH * D..][..BATCH * D];
            let mut irng = StdRng::seed_from_u64(100 + it as u64);
            let t = Instant::now();
            let step = Objective::<f32, Mlp<f32>>::loss_and_grad(
                &mut objective,
                &cnf,
                x,
                &[],
                &mut irng,
                &mut grad,
            )
            .expect("loss and gradient");
            adam.step(cnf.field.params_mut(), &grad).expect("adam step");
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "train {name} iteration {it}: {s:.3} s, loss {:.3}",
                step.loss
            );
            if it >= warmup {
                secs.push(s);
                nfe_fwd.push(step.nfe_fwd as f64);
                nfe_bwd.push(step.nfe_bwd as f64);
                losses.push(step.loss);
            }
        }
        println!(
            "{}",
            json!({"what": "train_iteration", "trace": name, "grad": "backprop",
                   "seconds_median": median(secs.clone()), "seconds": secs,
                   "nfe_fwd_median": median(nfe_fwd), "nfe_bwd_median": median(nfe_bwd),
                   "loss_last": losses.last()})
        );
    }

    let mut secs = Vec::new();
    let mut last = None;
    for it in 0..1 + exact_repeats {
        let t = Instant::now();
        let dens = cnf0.log_density(eval).expect("log-density");
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "exact log-density 10k, run {it}: {s:.3} s, nfe {}",
            dens.stats.nfe
        );
        if it >= 1 {
            secs.push(s);
        }
        last = Some(dens);
    }
    let dens = last.expect("at least one run");
    let nll = -dens.logp.iter().map(|&v| f64::from(v)).sum::<f64>() / N_EVAL as f64;
    println!(
        "{}",
        json!({"what": "exact_log_density", "points": N_EVAL, "seconds_median": median(secs.clone()),
               "seconds": secs, "nfe": dens.stats.nfe, "accepted": dens.stats.accepted,
               "rejected": dens.stats.rejected, "mean_nll": nll})
    );
}
