//! diffsol (crates.io) against cnf-ode on Robertson, in one process.
//!
//! The problem and tolerances are diffsol's own Robertson benchmark (`robertson_ode`, after
//! CVODE's cvRoberts_dns): rtol 1e-4, atol (1e-8, 1e-14, 1e-6), output at t = 0.4, 4, ...,
//! 4e10; then the same with every tolerance scaled by 1e-1 .. 1e-4, so that the solvers can be
//! compared at equal achieved error. Every solver gets the exact Jacobian (diffsol through its
//! Jacobian-vector product, cnf-ode through `WithJacobian`); cnf-ode is also run with its
//! automatic finite-difference Jacobian. The error is the largest relative error at t = 4e10
//! against a reference computed here by Rodas5P at rtol 1e-13; the first line reports its
//! difference from the rtol 1e-12 solve and, for the same computation to t = 1e11, from the Bari
//! test set's reference.
//!
//! Prints one JSON line per (solver, tolerance): error, steps, rejected steps, right-hand-side
//! evaluations, Jacobian-vector products, Jacobians, LU factorisations, Newton iterations and
//! the median wall time of `runs` solves (default 31), the solvers interleaved run by run.
//!
//! ```text
//! cd benches/peers/diffsol && cargo run --release -- [runs]
//! ```
use std::hint::black_box;
use std::time::Instant;

use cnf_ode::{Method, Solver, Stats, WithJacobian};
use diffsol::{
    FaerLU, FaerMat, FaerVec, NalgebraLU, NalgebraMat, NalgebraVec, OdeBuilder, OdeEquations,
    OdeSolverMethod, Op,
};

/// Rate constants of Robertson's kinetics.
const K: [f64; 3] = [0.04, 1.0e4, 3.0e7];
/// diffsol's (and CVODE's) tolerances for it.
const RTOL: f64 = 1e-4;
const ATOL: [f64; 3] = [1e-8, 1e-14, 1e-6];
/// The output times of CVODE's cvRoberts_dns, which diffsol's benchmark solves at.
const T_OUT: [f64; 12] = [
    0.4, 4.0, 40.0, 400.0, 4e3, 4e4, 4e5, 4e6, 4e7, 4e8, 4e9, 4e10,
];
/// CVODE's printed end point (its own solution at rtol 1e-4, so no reference).
const CVODE_END: [f64; 3] = [6.934511e-08, 2.773804e-13, 9.999999e-01];
/// The Bari test set's reference at t = 1e11, a check on the reference computed here.
const BARI_1E11: [f64; 3] = [
    0.2083340149701255e-07,
    0.8333360770334713e-13,
    0.9999999791665050,
];
/// Tolerance scales of the sweep (1 = diffsol's documented tolerances).
const SCALES: [f64; 5] = [1.0, 1e-1, 1e-2, 1e-3, 1e-4];

fn rober(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = -K[0] * y[0] + K[1] * y[1] * y[2];
    dy[2] = K[2] * y[1] * y[1];
    dy[1] = -dy[0] - dy[2];
}

fn rober_jacobian(_t: f64, y: &[f64], j: &mut [f64]) {
    let row0 = [-K[0], K[1] * y[2], K[1] * y[1]];
    let row2 = [0.0, 2.0 * K[2] * y[1], 0.0];
    for c in 0..3 {
        j[c] = row0[c];
        j[6 + c] = row2[c];
        j[3 + c] = -row0[c] - row2[c];
    }
}

/// What one solve did, in common names.
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    steps: usize,
    rejected: usize,
    nfe: usize,
    jac_muls: usize,
    jacobians: usize,
    lu: usize,
    newton: usize,
}

impl From<Stats> for Work {
    fn from(s: Stats) -> Self {
        Work {
            steps: s.accepted,
            rejected: s.rejected,
            nfe: s.nfe,
            jac_muls: 0,
            jacobians: s.jacobians,
            lu: s.factorisations,
            newton: s.newton_iterations,
        }
    }
}

type Run = Box<dyn Fn(f64) -> Result<([f64; 3], Work), String>>;

/// One diffsol solve at tolerance scale `s`, for a matrix type, its LU and a method name.
macro_rules! diffsol_solve {
    ($m:ty, $v:ty, $ls:ty, $method:ident, $s:expr) => {{
        let s: f64 = $s;
        let problem = OdeBuilder::<$m>::new()
            .p(K)
            .rtol(RTOL * s)
            .atol(ATOL.map(|a| a * s))
            .rhs_implicit(
                |x: &$v, p: &$v, _t: f64, y: &mut $v| {
                    y[0] = -p[0] * x[0] + p[1] * x[1] * x[2];
                    y[1] = p[0] * x[0] - p[1] * x[1] * x[2] - p[2] * x[1] * x[1];
                    y[2] = p[2] * x[1] * x[1];
                },
                |x: &$v, p: &$v, _t: f64, v: &$v, y: &mut $v| {
                    y[0] = -p[0] * v[0] + p[1] * v[1] * x[2] + p[1] * x[1] * v[2];
                    y[1] = p[0] * v[0]
                        - p[1] * v[1] * x[2]
                        - p[1] * x[1] * v[2]
                        - 2.0 * p[2] * x[1] * v[1];
                    y[2] = 2.0 * p[2] * x[1] * v[1];
                },
            )
            .init(
                |_p: &$v, _t: f64, y: &mut $v| {
                    y[0] = 1.0;
                    y[1] = 0.0;
                    y[2] = 0.0;
                },
                3,
            )
            .build()
            .expect("diffsol problem");
        let (y_end, stats) = {
            let mut solver = problem.$method::<$ls>().map_err(|e| e.to_string())?;
            let (ys, _stop) = solver.solve_dense(&T_OUT).map_err(|e| e.to_string())?;
            let last = T_OUT.len() - 1;
            let y_end = [ys[(0, last)], ys[(1, last)], ys[(2, last)]];
            (y_end, solver.get_statistics().clone())
        };
        let rhs = problem.eqn.rhs().statistics();
        let work = Work {
            steps: stats.number_of_steps,
            rejected: stats.number_of_error_test_failures,
            nfe: rhs.number_of_calls,
            jac_muls: rhs.number_of_jac_muls,
            jacobians: rhs.number_of_matrix_evals,
            lu: stats.number_of_linear_solver_setups,
            newton: stats.number_of_nonlinear_solver_iterations,
        };
        Ok((y_end, work))
    }};
}

/// One cnf-ode solve at tolerance scale `s`, with the exact or the automatic Jacobian.
fn cnf_solve(
    method: Method,
    exact_jacobian: bool,
    (rtol, atol): (f64, [f64; 3]),
    t1: f64,
) -> Result<([f64; 3], Work), String> {
    let solver = Solver::new(method)
        .rtol(rtol)
        .atol(atol.to_vec())
        .max_steps(10_000_000)
        .output_times(T_OUT.iter().copied().filter(|&t| t <= t1).collect());
    let y0 = vec![1.0, 0.0, 0.0];
    let sol = if exact_jacobian {
        solver.solve_system(&mut WithJacobian::new(rober, rober_jacobian), 0.0, t1, &y0)
    } else {
        solver.solve(rober, 0.0, t1, &y0)
    }
    .map_err(|e| e.to_string())?;
    Ok(([sol.y[0], sol.y[1], sol.y[2]], sol.stats.into()))
}

fn rel_error(y: &[f64; 3], r: &[f64; 3]) -> f64 {
    y.iter()
        .zip(r)
        .map(|(a, b)| ((a - b) / b).abs())
        .fold(0.0, f64::max)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("runs: a number"))
        .unwrap_or(31);

    // The reference at 4e10, and the same computation to t = 1e11 against the Bari test set's
    // published end point (CVODE's printed values are its own rtol 1e-4 solution).
    let reference = |rtol: f64, t1: f64| {
        let tol = (rtol, ATOL.map(|a| a * rtol / RTOL));
        cnf_solve(Method::Rodas5p, true, tol, t1)
            .expect("reference")
            .0
    };
    let (r13, r12) = (reference(1e-13, 4e10), reference(1e-12, 4e10));
    let bari = reference(1e-13, 1e11);
    println!(
        "{{\"reference\": [{:e}, {:e}, {:e}], \"t\": 4e10, \"by\": \"cnf-ode rodas5p rtol 1e-13, exact jacobian\", \"vs_rtol_1e-12\": {:.2e}, \"same_at_1e11_vs_bari\": {:.2e}, \"cvode_rtol_1e-4_printed_vs_reference\": {:.2e}}}",
        r13[0],
        r13[1],
        r13[2],
        rel_error(&r12, &r13),
        rel_error(&bari, &BARI_1E11),
        rel_error(&CVODE_END, &r13)
    );

    let mut solvers: Vec<(&str, Run)> = vec![
        (
            "diffsol bdf (nalgebra)",
            Box::new(|s| {
                diffsol_solve!(NalgebraMat<f64>, NalgebraVec<f64>, NalgebraLU<f64>, bdf, s)
            }),
        ),
        (
            "diffsol bdf (faer)",
            Box::new(|s| diffsol_solve!(FaerMat<f64>, FaerVec<f64>, FaerLU<f64>, bdf, s)),
        ),
        (
            "diffsol esdirk34 (nalgebra)",
            Box::new(|s| {
                diffsol_solve!(
                    NalgebraMat<f64>,
                    NalgebraVec<f64>,
                    NalgebraLU<f64>,
                    esdirk34,
                    s
                )
            }),
        ),
        (
            "diffsol tr_bdf2 (nalgebra)",
            Box::new(|s| {
                diffsol_solve!(
                    NalgebraMat<f64>,
                    NalgebraVec<f64>,
                    NalgebraLU<f64>,
                    tr_bdf2,
                    s
                )
            }),
        ),
    ];
    for (name, method) in [("bdf", Method::Bdf), ("rodas5p", Method::Rodas5p)] {
        for exact in [true, false] {
            let label = if exact {
                "exact jacobian"
            } else {
                "finite differences"
            };
            let name: &'static str =
                Box::leak(format!("cnf-ode {name} ({label})").into_boxed_str());
            solvers.push((
                name,
                Box::new(move |s| cnf_solve(method, exact, (RTOL * s, ATOL.map(|a| a * s)), 4e10)),
            ));
        }
    }

    for s in SCALES {
        let mut times = vec![Vec::with_capacity(runs); solvers.len()];
        let mut results = vec![Err(String::new()); solvers.len()];
        for _ in 0..runs {
            for (i, (_, run)) in solvers.iter().enumerate() {
                let start = Instant::now();
                results[i] = black_box(run(black_box(s)));
                times[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let tol = format!(
            "\"rtol\": {:.0e}, \"atol\": [{:.0e}, {:.0e}, {:.0e}]",
            RTOL * s,
            ATOL[0] * s,
            ATOL[1] * s,
            ATOL[2] * s
        );
        for (((name, _), result), t) in solvers.iter().zip(&results).zip(times) {
            match result {
                Ok((y, w)) => println!(
                    "{{\"solver\": \"{name}\", {tol}, \"rel_error\": {:.3e}, \"steps\": {}, \"rejected\": {}, \"nfe\": {}, \"jac_muls\": {}, \"jacobians\": {}, \"lu\": {}, \"newton\": {}, \"median_ms\": {:.4}, \"runs\": {runs}}}",
                    rel_error(y, &r13),
                    w.steps,
                    w.rejected,
                    w.nfe,
                    w.jac_muls,
                    w.jacobians,
                    w.lu,
                    w.newton,
                    median(t)
                ),
                Err(e) => println!("{{\"solver\": \"{name}\", {tol}, \"error\": {e:?}}}"),
            }
        }
    }
}
