//! Work-precision of cnf-ode's stiff methods (Rodas5P, Rosenbrock23, BDF) against scipy's Radau
//! and BDF on ROBER (to t = 1e11) and van der Pol (mu = 1e3, to t = 3000), in one run.
//!
//! `cargo bench --bench stiff_work_precision` (scipy from `$SCIPY_PYTHON`, default
//! `/tmp/venv-scipy/bin/python`; see benches/peers/scipy_stiff.py)
//!
//! Prints scipy's JSON lines, then one line per (problem, method, rtol) of ours (the same
//! tolerances, automatic finite-difference Jacobians as scipy's), then per problem and method a
//! summary at equal achieved error: scipy's better method's NFE, LU count, Jacobian count and
//! median time interpolated (log-log) at our error, against ours.
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use cnf::ode::{Method, Solver, Stats};
use serde_json::{json, Value};

const REPEATS: usize = 5;
const RTOLS: [f64; 5] = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8];

fn rober(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    dy[2] = 3e7 * y[1] * y[1];
    dy[1] = -dy[0] - dy[2];
}

fn vdp(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = y[1];
    dy[1] = 1e3 * ((1.0 - y[0] * y[0]) * y[1] - y[0]);
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One of our runs: largest relative error at the end point, work, median ms.
fn run(
    m: Method,
    f: fn(f64, &[f64], &mut [f64]),
    y0: &[f64],
    t1: f64,
    rtol: f64,
    atol: f64,
    reference: &[f64],
) -> (f64, Stats, f64) {
    let solver = Solver::new(m).rtol(rtol).atol(atol).max_steps(1_000_000);
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let sol = solver
            .solve(f, 0.0, t1, &black_box(y0.to_vec()))
            .expect("solves");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        last = Some(sol);
    }
    let sol = last.expect("at least one run");
    let err = sol
        .y
        .iter()
        .zip(reference)
        .map(|(y, r)| ((y - r) / r).abs())
        .fold(0.0, f64::max);
    (err, sol.stats, median(times))
}

/// Log-log interpolation of `(error, value)` points (sorted by error) at `err`; None outside.
fn at_error(points: &[(f64, f64)], err: f64) -> Option<f64> {
    points.windows(2).find_map(|w| {
        let ((e0, v0), (e1, v1)) = (w[0], w[1]);
        let (lo, hi) = (e0.min(e1), e0.max(e1));
        (err >= lo && err <= hi && lo < hi).then(|| {
            let s = (err.ln() - e0.ln()) / (e1.ln() - e0.ln());
            (v0.ln() + s * (v1.ln() - v0.ln())).exp()
        })
    })
}

fn main() {
    let python =
        std::env::var("SCIPY_PYTHON").unwrap_or_else(|_| "/tmp/venv-scipy/bin/python".into());
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/peers/scipy_stiff.py"
        ))
        .arg(REPEATS.to_string())
        .output();
    let scipy: Vec<Value> = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        _ => {
            eprintln!("scipy peer not run ({python}): ours only");
            Vec::new()
        }
    };
    for v in &scipy {
        println!("{v}");
    }
    let vdp_ref: Vec<f64> = scipy
        .iter()
        .find(|v| v["reference"] == "vdp_mu1e3")
        .and_then(|v| serde_json::from_value(v["y"].clone()).ok())
        .unwrap_or_default();
    let rober_ref = vec![
        0.2083340149701255e-07,
        0.8333360770334713e-13,
        0.999_999_979_166_505,
    ];
    type Problem = (
        &'static str,
        fn(f64, &[f64], &mut [f64]),
        Vec<f64>,
        f64,
        f64,
        Vec<f64>,
    );
    let problems: Vec<Problem> = vec![
        ("rober", rober, vec![1.0, 0.0, 0.0], 1e11, 1e-10, rober_ref),
        ("vdp_mu1e3", vdp, vec![2.0, 0.0], 3000.0, 1e-3, vdp_ref),
    ];
    for (name, f, y0, t1, atol_factor, reference) in problems {
        if reference.is_empty() {
            eprintln!("{name}: no reference (the scipy peer computes it); skipped");
            continue;
        }
        // scipy's curves: error -> nfe, nlu, ms per method.
        let curve = |solver: &str, key: &str| -> Vec<(f64, f64)> {
            let mut c: Vec<(f64, f64)> = scipy
                .iter()
                .filter(|v| v["problem"] == name && v["solver"] == solver)
                .map(|v| {
                    (
                        v["rel_error"].as_f64().unwrap_or(f64::NAN),
                        v[key].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            c
        };
        for m in [Method::Rodas5p, Method::Rosenbrock23, Method::Bdf] {
            let mut ratios = Vec::new();
            for rtol in RTOLS {
                let (err, s, ms) = run(m, f, &y0, t1, rtol, rtol * atol_factor, &reference);
                println!(
                    "{}",
                    json!({"problem": name, "solver": format!("cnf-ode {m}"), "rtol": rtol,
                           "rel_error": err, "nfe": s.nfe, "njev": s.jacobians,
                           "nlu": s.factorisations, "steps": s.accepted, "rejected": s.rejected,
                           "newton_iterations": s.newton_iterations,
                           "newton_failures": s.newton_failures, "ms": ms})
                );
                // The better scipy method at our error: the fewer evaluations.
                let best = ["scipy Radau", "scipy BDF"]
                    .iter()
                    .filter_map(|sv| {
                        Some((
                            *sv,
                            at_error(&curve(sv, "nfe"), err)?,
                            at_error(&curve(sv, "nlu"), err)?,
                            at_error(&curve(sv, "njev"), err)?,
                            at_error(&curve(sv, "ms"), err)?,
                        ))
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((sv, nfe, nlu, njev, sms)) = best {
                    ratios.push(json!({"rtol": rtol, "error": err, "peer": sv,
                        "peer_nfe": nfe.round(), "nfe": s.nfe, "peer_nlu": nlu.round(),
                        "nlu": s.factorisations, "peer_njev": njev.round(), "njev": s.jacobians,
                        "peer_ms": sms, "ms": ms,
                        "time_ratio_peer_over_ours": sms / ms}));
                }
            }
            println!(
                "{}",
                json!({"summary": name, "solver": format!("cnf-ode {m}"), "at_equal_error": ratios})
            );
        }
    }
}
