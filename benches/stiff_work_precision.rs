//! Work-precision of cnf-ode's stiff methods (Rodas5P, Rosenbrock23, BDF, Radau) against scipy's Radau
//! and BDF on ROBER (to t = 1e11) and van der Pol (mu = 1e3, to t = 3000: MATLAB's vdp1000,
//! y1' = y2, y2' = mu (1 - y1^2) y2 - y1, about two relaxation cycles), in one run.
//!
//! `cargo bench --bench stiff_work_precision` (scipy from `$SCIPY_PYTHON`, default
//! `/tmp/venv-scipy/bin/python`; see benches/peers/scipy_stiff.py)
//!
//! References: ROBER's end point from the Bari test set; van der Pol's from our own Rodas5P solve
//! at rtol 1e-12, atol 1e-15, checked against scipy's Radau at rtol 1e-10, atol 1e-13 (the
//! `reference` line gives the largest relative difference).
//!
//! Prints scipy's JSON lines, then one line per (problem, method, rtol) of ours (the same
//! tolerances, automatic finite-difference Jacobians as scipy's), then per problem, method and
//! rtol a `summary` line at our achieved error: per quantity the smaller of scipy's two methods
//! (log-log interpolated at our error, and which method it is) against ours, and whether ours is
//! no larger. Evaluations are compared like with like: `nfe_total` counts every evaluation
//! (Jacobians' columns included; cnf-ode's `Stats::nfe`), `nfe_excl_jacobian` leaves out the
//! finite-difference Jacobians' evaluations (scipy's `nfev`).
use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use cnf::ode::{Method, Solver, Stats};
use serde_json::{json, Value};

const REPEATS: usize = 5;
const RTOLS: [f64; 5] = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8];
const OURS: [Method; 4] = [
    Method::Rodas5p,
    Method::Rosenbrock23,
    Method::Bdf,
    Method::Radau5,
];
const SCIPY: [&str; 2] = ["scipy Radau", "scipy BDF"];

fn rober(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    dy[2] = 3e7 * y[1] * y[1];
    dy[1] = -dy[0] - dy[2];
}

fn vdp(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = y[1];
    dy[1] = 1e3 * (1.0 - y[0] * y[0]) * y[1] - y[0];
}

type Rhs = fn(f64, &[f64], &mut [f64]);

struct Problem {
    name: &'static str,
    f: Rhs,
    y0: Vec<f64>,
    t1: f64,
    /// atol = atol_factor * rtol.
    atol_factor: f64,
    reference: Vec<f64>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn rel_error(y: &[f64], reference: &[f64]) -> f64 {
    y.iter()
        .zip(reference)
        .map(|(y, r)| ((y - r) / r).abs())
        .fold(0.0, f64::max)
}

/// Evaluations a solve spent on finite-difference Jacobians: BDF and Radau take f at the
/// Jacobian's point from their iteration or step start (n columns), Rosenbrock adds df/dt by one
/// difference (n + 1). This
/// is the arithmetic `tests/stiff.rs` (`counters_follow_the_methods_arithmetic`) asserts.
fn jacobian_nfe(m: Method, n: usize, s: &Stats) -> usize {
    match m {
        Method::Bdf | Method::Radau5 => n * s.jacobians,
        _ => (n + 1) * s.jacobians,
    }
}

/// One of our runs: largest relative error at the end point, work, median ms.
fn run(m: Method, p: &Problem, rtol: f64) -> (f64, Stats, f64) {
    let solver = Solver::new(m)
        .rtol(rtol)
        .atol(rtol * p.atol_factor)
        .max_steps(1_000_000);
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let sol = solver
            .solve(p.f, 0.0, p.t1, &black_box(p.y0.clone()))
            .expect("solves");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        last = Some(sol);
    }
    let sol = last.expect("at least one run");
    (rel_error(&sol.y, &p.reference), sol.stats, median(times))
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

/// scipy's runs (its JSON lines), given the references on stdin; empty if scipy cannot run.
fn scipy_runs(python: &str, problems: &[Problem]) -> Vec<Value> {
    let refs: serde_json::Map<String, Value> = problems
        .iter()
        .map(|p| (p.name.to_string(), json!(p.reference)))
        .collect();
    let child = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/peers/scipy_stiff.py"
        ))
        .arg(REPEATS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let out = child.and_then(|mut c| {
        let mut stdin = c.stdin.take().expect("piped stdin");
        stdin.write_all(Value::Object(refs).to_string().as_bytes())?;
        drop(stdin);
        c.wait_with_output()
    });
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        _ => {
            eprintln!("scipy peer not run ({python}): ours only");
            Vec::new()
        }
    }
}

fn main() {
    let python =
        std::env::var("SCIPY_PYTHON").unwrap_or_else(|_| "/tmp/venv-scipy/bin/python".into());
    let mut problems = vec![
        Problem {
            name: "rober",
            f: rober,
            y0: vec![1.0, 0.0, 0.0],
            t1: 1e11,
            atol_factor: 1e-10,
            reference: vec![
                0.2083340149701255e-07,
                0.8333360770334713e-13,
                0.999_999_979_166_505,
            ],
        },
        Problem {
            name: "vdp_mu1e3",
            f: vdp,
            y0: vec![2.0, 0.0],
            t1: 3000.0,
            atol_factor: 1e-3,
            reference: Vec::new(),
        },
    ];
    problems[1].reference = Solver::new(Method::Rodas5p)
        .rtol(1e-12)
        .atol(1e-15)
        .max_steps(10_000_000)
        .solve(vdp, 0.0, 3000.0, &vec![2.0, 0.0])
        .expect("the reference solve")
        .y;
    let scipy = scipy_runs(&python, &problems);
    for v in &scipy {
        println!("{v}");
    }
    if let Some(check) = scipy.iter().find(|v| v["check"] == "vdp_mu1e3") {
        let y: Vec<f64> = serde_json::from_value(check["y"].clone()).unwrap_or_default();
        println!(
            "{}",
            json!({"reference": "vdp_mu1e3", "method": "cnf-ode rodas5p", "rtol": 1e-12,
                   "atol": 1e-15, "y": problems[1].reference,
                   "rel_diff_to_scipy_radau_1e-10": rel_error(&y, &problems[1].reference)})
        );
    }
    for p in &problems {
        // scipy's curve of one quantity: (error, value) sorted by error.
        let curve = |solver: &str, key: &str| -> Vec<(f64, f64)> {
            let mut c: Vec<(f64, f64)> = scipy
                .iter()
                .filter(|v| v["problem"] == p.name && v["solver"] == solver)
                .map(|v| {
                    let value = v[key].as_f64().unwrap_or(f64::NAN);
                    (v["rel_error"].as_f64().unwrap_or(f64::NAN), value)
                })
                .collect();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            c
        };
        // The smaller of scipy's methods at error `err`, and which one.
        let best = |key: &str, err: f64| -> Option<(f64, &str)> {
            SCIPY
                .iter()
                .filter_map(|sv| Some((at_error(&curve(sv, key), err)?, *sv)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let n = p.y0.len();
        for m in OURS {
            for rtol in RTOLS {
                let (err, s, ms) = run(m, p, rtol);
                let jac_nfe = jacobian_nfe(m, n, &s);
                println!(
                    "{}",
                    json!({"problem": p.name, "solver": format!("cnf-ode {m}"), "rtol": rtol,
                           "rel_error": err, "nfe_total": s.nfe, "nfe_jacobian": jac_nfe,
                           "nfe_excl_jacobian": s.nfe - jac_nfe, "njev": s.jacobians,
                           "nlu": s.factorisations, "steps": s.accepted, "rejected": s.rejected,
                           "newton_iterations": s.newton_iterations,
                           "newton_failures": s.newton_failures, "ms": ms, "runs": REPEATS})
                );
                let ours = [
                    ("nfe_total", s.nfe as f64),
                    ("nfe_excl_jacobian", (s.nfe - jac_nfe) as f64),
                    ("nlu", s.factorisations as f64),
                    ("njev", s.jacobians as f64),
                    ("ms", ms),
                ];
                let mut line = json!({"summary": p.name, "solver": format!("cnf-ode {m}"),
                                      "rtol": rtol, "error": err});
                for (key, value) in ours {
                    line[key] = match best(key, err) {
                        Some((peer, sv)) => json!({"ours": value, "scipy": peer, "peer": sv,
                                                   "no_more": value <= peer.round()}),
                        None => json!({"ours": value, "scipy": null}),
                    };
                }
                if let Some((peer_ms, sv)) = best("ms", err) {
                    line["time_ratio_scipy_over_ours"] = json!({"ratio": peer_ms / ms, "peer": sv});
                }
                println!("{line}");
            }
        }
    }
}
