//! CNF throughput on the diffrax-trained 8gaussians model (f32, Dopri5 at rtol = atol = 1e-5),
//! against the peers' figures (docs/peers/peers.md).
//!
//! `cargo run --release --example cnf_throughput` prints one JSON line per measurement:
//! what, batching, median seconds over the repeats, the solver work of one call, the peer's
//! time, the target and the ratio to the target (< 1 beats it).
use std::time::Instant;

use cnf::field::{Activation, Inputs, Mlp, Trace, VectorField};
use cnf::flow::{Batching, Cnf};
use cnf::ode::Stats;
use cnf::ode::{Differentiation, Method, PiParams, SolverSpec};
use cnf::train::data::ToySet;
use rand::{rngs::StdRng, SeedableRng};
use serde_json::json;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cnf_8g_diffrax_1000it.npz"
);
const REPEATS: usize = 7;
const N: usize = 10_000;

/// Peer (diffrax, f32) seconds and the target for each task.
const LOGP_PEER: f64 = 0.2731;
const LOGP_TARGET: f64 = 0.14;
const SAMPLE_PEER: f64 = 0.0490;
const SAMPLE_TARGET: f64 = 0.025;
const STEP_PEER: f64 = 0.0676;
const STEP_TARGET: f64 = 0.034;

/// `n` points of the FFJORD 8gaussians toy set (cnf-train's generator), in f32.
fn eight_gaussians(rng: &mut StdRng, n: usize) -> Vec<f32> {
    ToySet::EightGaussians
        .sample(n, rng)
        .data()
        .iter()
        .map(|&v| v as f32)
        .collect()
}

/// Median wall time of `REPEATS` calls (after one warm-up) and the stats of the last call.
fn time<R>(mut f: impl FnMut() -> R) -> (f64, R) {
    let mut last = f();
    let mut secs: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            last = f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    (secs[REPEATS / 2], last)
}

fn line(what: &str, batching: &str, secs: f64, stats: Stats, extra: serde_json::Value) {
    let (peer, target) = match what {
        "log_density_10k" => (LOGP_PEER, LOGP_TARGET),
        "sample_10k" => (SAMPLE_PEER, SAMPLE_TARGET),
        _ => (STEP_PEER, STEP_TARGET),
    };
    let mut v = json!({
        "what": what,
        "batching": batching,
        "seconds": secs,
        "nfe": stats.nfe,
        "accepted": stats.accepted,
        "rejected": stats.rejected,
        "peer_diffrax_seconds": peer,
        "target_seconds": target,
        "ratio_to_target": secs / target,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    println!("{v}");
}

fn main() {
    let mlp = Mlp::<f32>::from_npz(MODEL, &[64, 64, 64], Activation::Tanh).expect("model");
    let cnf = Cnf::new(
        mlp,
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );
    let mut rng = StdRng::seed_from_u64(0);
    let x = eight_gaussians(&mut rng, N);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}",
        json!({"what": "setup", "threads": threads, "repeats": REPEATS, "points": N,
               "dtype": "f32", "solver": "Dopri5", "rtol": 1e-5, "atol": 1e-5})
    );

    let batchings = [
        ("whole", Batching::Whole),
        ("chunks512", Batching::Chunks(512)),
        ("chunks1024", Batching::Chunks(1024)),
        ("chunks1", Batching::Chunks(1)),
    ];
    for (name, b) in batchings {
        let c = cnf.clone().with_batching(b);
        let (secs, dens) = time(|| c.log_density(&x).expect("log-density"));
        let nll = -dens.logp.iter().map(|&v| f64::from(v)).sum::<f64>() / N as f64;
        line(
            "log_density_10k",
            name,
            secs,
            dens.stats,
            json!({"mean_nll": nll}),
        );
    }
    // Sampling uses the I controller by default (no explicit controller in the spec); the PI
    // controller (the tableau's, set explicitly) for comparison on whole batches.
    let sample_runs = batchings
        .iter()
        .map(|&(name, b)| (name, b, None, "auto_i"))
        .chain([(
            "whole",
            Batching::Whole,
            Some(PiParams::DOPRI5),
            "tableau_pi",
        )]);
    for (name, b, control, cname) in sample_runs {
        let mut c = cnf.clone().with_batching(b);
        if let Some(p) = control {
            c.solver = c.solver.to_builder().controller(p).build().unwrap();
        }
        let mut srng = StdRng::seed_from_u64(1);
        let (secs, s) = time(|| c.sample(N, &mut srng).expect("sample"));
        line("sample_10k", name, secs, s.stats, json!({"control": cname}));
    }

    // One training step: batch 512, exact trace.
    let xb = &x[..2 * 512];
    for (name, method) in [
        ("backprop", Differentiation::Discretise),
        ("adjoint", Differentiation::backsolve(1e-5, 1e-5)),
    ] {
        let (secs, g) = time(|| {
            cnf.loss_and_grad(xb, &Trace::Exact, method)
                .expect("gradient")
        });
        line(
            "train_step_512",
            "whole",
            secs,
            g.forward,
            json!({"method": name, "loss": g.loss, "forward_nfe": g.forward.nfe,
                   "backward_nfe": g.backward.nfe, "backward_steps": g.backward.accepted}),
        );
    }

    // Where the time goes: the field alone, one eval_div_batch (v + exact trace) on 10k points
    // and on 512 points, to compare with the cost per NFE of the solves above.
    for b in [N, 512, 1] {
        let mut s = cnf.field.scratch(b);
        let (mut v, mut div) = (vec![0.0f32; 2 * b], vec![0.0f32; b]);
        let reps = (N / b).max(1);
        let (secs, _) = time(|| {
            for r in 0..reps {
                let off = (r * b) % N;
                cnf.field.eval_div_batch(
                    &mut s,
                    Inputs::shared(0.5, &x[2 * off..2 * (off + b)]),
                    &Trace::Exact,
                    &mut v,
                    &mut div,
                );
            }
        });
        println!(
            "{}",
            json!({"what": "field_eval_div_10k_points", "chunk": b, "seconds": secs,
                   "ns_per_point": secs / (reps * b) as f64 * 1e9, "threads": 1})
        );
    }
}
