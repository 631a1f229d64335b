//! Speed and accuracy of drawing 10^4 posterior samples for one observation from a trained
//! conditional model (docs/sbi.md, "Defaults of conditional runs"), every solver in one run.
//!
//! `cargo bench --bench sbi_sample_speed -- MODEL_DIR GIVEN.csv [N]`
//!
//! MODEL_DIR is a `cnf train --context` folder, GIVEN.csv a one-row file of its context columns.
//! For each solver (the tight reference Dopri5 at rtol = atol = 1e-9 in f64, the model's
//! default Dopri5 at 1e-5, the model's sampler, RK4 with 16, 8, 6, 4 and 2 equal steps, RK4
//! graded 1.5 in 8, 6, 5 and 4 steps and graded 2 in 6, midpoint with 8 and 4) and each
//! batching (one solve of all N draws, or parallel solves of 1024), the same base draws are moved
//! to the data side; one JSON line gives the median wall time of the draw (ms, 7 repeats, the
//! context's standardisation and the base draws included), the field evaluations per draw, and
//! the error against the reference in posterior standard deviations (per coordinate, the
//! largest over draws and coordinates, and the root mean square).
use std::hint::black_box;
use std::time::Instant;

use cnf::field::{Mlp, Real};
use cnf::flow::{Batching, Cnf};
use cnf::ode::{cast, SolverSpec};
use cnf::train::model::{describe_solver, solver_in, Method, Precision};
use cnf::train::session::{AnyModel, EvalOptions, Session, SOLVE_POINTS};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

const REPEATS: usize = 7;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// `n` draws for the model-space context `c`, with `solver` and `batching`: the points (f64,
/// model space), field evaluations per draw (per solve) and the median time in ms.
fn draw<T: Real>(
    cnf: &Cnf<T, Mlp<T>>,
    solver: &SolverSpec<f64>,
    batching: Batching,
    c: &[f64],
    n: usize,
) -> (Vec<f64>, f64, f64) {
    let cnf = Cnf {
        solver: solver_in::<T>(solver).expect("a solver of the model's precision"),
        ..cnf.clone()
    }
    .with_batching(batching);
    let mut times = Vec::with_capacity(REPEATS);
    let mut out = None;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let c: Vec<T> = c.iter().map(|&v| cast(v)).collect();
        let moved = cnf
            .sample_given(&c, n, &mut StdRng::seed_from_u64(0))
            .expect("the draw solves");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        out = Some(black_box(moved));
    }
    let moved = out.expect("REPEATS > 0");
    let points = moved
        .points
        .iter()
        .map(|v| v.to_f64().unwrap_or(f64::NAN))
        .collect();
    let solves = match batching {
        Batching::Whole => 1,
        Batching::Chunks(m) => n.div_ceil(m.max(1)),
    };
    (
        points,
        moved.stats.nfe as f64 / solves as f64,
        median(times),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(dir), Some(given)) = (args.first(), args.get(1)) else {
        return Err("usage: sbi_sample_speed MODEL_DIR GIVEN.csv [N]".into());
    };
    let n: usize = args.get(2).map_or(Ok(10_000), |s| s.parse())?;
    let session = Session::open(dir)?;
    let mut notes = Vec::new();
    let table = session.read_context(std::path::Path::new(given), &mut notes)?;
    let context = session
        .config()
        .context
        .as_ref()
        .ok_or("the model is unconditional")?;
    let c: Vec<f64> = context.to_model_space::<f64>(&table, 0)?;
    if c.len() != context.width() {
        return Err("GIVEN.csv must hold one row".into());
    }
    let f64_flow = session.flow(&EvalOptions {
        precision: Some(Precision::F64),
        ..EvalOptions::default()
    })?;
    let flow = session.flow(&EvalOptions::default())?;
    let d = session.dim();
    let tight = SolverSpec::builder(Method::Dopri5)
        .rtol(1e-9)
        .atol(1e-9)
        .build()?;
    let AnyModel::F64(reference_cnf) = f64_flow.model() else {
        unreachable!("asked for f64")
    };
    let (reference, ref_nfe, ref_ms) = draw(reference_cnf, &tight, Batching::Whole, &c, n);
    // Posterior standard deviation per coordinate (model space), the unit of the errors.
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let col: Vec<f64> = reference.iter().skip(j).step_by(d).copied().collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        })
        .collect();
    println!(
        "{}",
        json!({"solver": "reference dopri5 rtol 1e-9 atol 1e-9 (f64)", "nfe_per_draw": ref_nfe,
               "ms": ref_ms, "posterior_sd": sd})
    );
    let fixed = |m: Method, s: usize| SolverSpec::builder(m).fixed_steps(s).build();
    let graded =
        |m: Method, s: usize, p: f64| SolverSpec::builder(m).fixed_steps(s).graded(p).build();
    let solvers = [
        flow.solver().clone(),
        flow.sampler().clone(),
        fixed(Method::Rk4, 16)?,
        fixed(Method::Rk4, 8)?,
        graded(Method::Rk4, 8, 1.5)?,
        fixed(Method::Rk4, 6)?,
        graded(Method::Rk4, 6, 1.5)?,
        graded(Method::Rk4, 6, 2.0)?,
        graded(Method::Rk4, 5, 1.5)?,
        graded(Method::Rk4, 4, 1.5)?,
        fixed(Method::Rk4, 4)?,
        fixed(Method::Rk4, 2)?,
        fixed(Method::Midpoint, 8)?,
        fixed(Method::Midpoint, 4)?,
    ];
    for solver in &solvers {
        for (name, batching) in [
            ("one solve", Batching::Whole),
            ("solves of 1024", Batching::Chunks(SOLVE_POINTS)),
        ] {
            let (points, nfe, ms) = match flow.model() {
                AnyModel::F32(cnf) => draw(cnf, solver, batching, &c, n),
                AnyModel::F64(cnf) => draw(cnf, solver, batching, &c, n),
            };
            let (mut max, mut sq) = (0.0f64, 0.0);
            for (i, (a, b)) in points.iter().zip(&reference).enumerate() {
                let e = (a - b).abs() / sd[i % d];
                max = max.max(e);
                sq += e * e;
            }
            println!(
                "{}",
                json!({"solver": describe_solver(solver), "batching": name,
                       "precision": flow.precision().as_str(), "nfe_per_draw": nfe, "ms": ms,
                       "max_error_sd": max, "rms_error_sd": (sq / points.len() as f64).sqrt()})
            );
        }
    }
    Ok(())
}
