//! Work-precision of cnf-ode's adaptive methods and of the `ode_solvers` crate on the project's
//! benchmark problems (arenstorf, kepler_e0.5_10periods, lorenz_t5), in one run.
//!
//! `cargo bench --bench ode_work_precision`
//!
//! Prints one JSON line per (problem, solver, tolerance), then a summary line: our error / scipy's
//! error at equal NFE (geometric mean over rtol = atol = 1e-6..1e-10; scipy numbers from
//! docs/peers/peers.md, embedded in `cnf::ode::problems`), the median of
//! our time / ode_solvers time per method (both for `Solver::solve_small`, the path for
//! fixed-size states, and for the general `Solver::solve_system`), and ns per right-hand-side
//! evaluation of our fixed-step RK4 (both paths) against a hand-written RK4 loop on Lorenz.
//!
//! The floor of Dopri5: "hand Dopri5" rows are `cnf_testkit::floor::dopri5_by_hand`, Dopri5
//! written out for `[f64; N]` with the solver's step selection (the same steps and final state
//! as "cnf-ode Dopri5", asserted here). Per problem and tolerance a `floor` line gives the time
//! ratios ours / floor, ode_solvers / floor, ours / ode_solvers (median times of the same run)
//! and ns per evaluation of each; the summary has their medians over the tolerances.
//!
//! "cnf-ode" rows are `solve_small` with the method as a type (`Solver::new(Dopri5)`), the way
//! to solve a `[f64; N]` state; "cnf-ode general" rows are `solve_system` with the tableau chosen
//! at run time (what the table showed before the fixed-size path existed).
use std::hint::black_box;
use std::time::Instant;

use cnf::ode::{Bs3, Dop853, Dopri5, Rk4, RkMethod, Solver, Tableau, Tsit5};
use cnf_testkit::floor::dopri5_by_hand;
use cnf_testkit::problems::{
    error_at_nfe, lorenz_rhs, lorenz_rk4_by_hand, Problem, ARENSTORF, KEPLER, LORENZ, TOLERANCES,
};
use cnf_testkit::stats::median;
use ode_solvers::{OutputType, SVector, System};
use serde_json::json;

const REPEATS: usize = 15;

/// The right-hand side of a benchmark problem (a `const`), called directly: `rhs!(KEPLER)`.
macro_rules! rhs {
    ($p:ident) => {
        |t: f64, y: &[f64; _], dy: &mut [f64; _]| ($p.rhs)(t, y, dy)
    };
}

/// Median wall time (ms) of `REPEATS` runs of `f`, with the last run's result.
fn timed<R>(mut f: impl FnMut() -> R) -> (R, f64) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut out = None;
    for _ in 0..REPEATS {
        let t = Instant::now();
        out = Some(black_box(f()));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    (out.expect("REPEATS > 0"), median(times))
}

/// One cell of the table.
struct Cell {
    problem: &'static str,
    solver: String,
    tol: f64,
    err: f64,
    nfe: usize,
    accepted: usize,
    rejected: usize,
    ms: f64,
}

impl Cell {
    fn print(&self) {
        println!(
            "{}",
            json!({
                "problem": self.problem, "solver": self.solver, "rtol": self.tol, "atol": self.tol,
                "err_max_abs": self.err, "nfe": self.nfe, "accepted": self.accepted,
                "rejected": self.rejected, "time_ms_median": self.ms,
            })
        );
    }
}

/// `Solver::solve_small` with the method as a type (its tableau a compile-time constant).
fn ours<const N: usize, M: RkMethod + Copy>(
    p: &Problem<N>,
    f: impl RhsFn<N>,
    m: M,
    tol: f64,
) -> Cell {
    let solver = Solver::new(m).rtol(tol).atol(tol);
    let (sol, ms) = timed(|| solver.solve_small(&mut { f }, 0.0, p.t_end, &p.y0));
    cell(p, format!("cnf-ode {}", m.tableau().name), tol, sol, ms)
}

/// `Solver::solve_system` with the tableau chosen at run time: the general engine.
fn ours_general<const N: usize>(
    p: &Problem<N>,
    f: impl RhsFn<N>,
    tab: &'static Tableau,
    tol: f64,
) -> Cell {
    let solver = Solver::new(tab).rtol(tol).atol(tol);
    let (sol, ms) = timed(|| solver.solve_system(&mut { f }, 0.0, p.t_end, &p.y0));
    cell(p, format!("cnf-ode general {}", tab.name), tol, sol, ms)
}

/// The hand-written Dopri5 loop: the floor of `ours(p, f, Dopri5, tol)`.
fn floor<const N: usize>(p: &Problem<N>, f: impl RhsFn<N>, tol: f64) -> Cell {
    let ((y, counts), ms) = timed(|| dopri5_by_hand(f, 0.0, p.t_end, p.y0, tol, tol));
    Cell {
        problem: p.name,
        solver: "hand Dopri5".into(),
        tol,
        err: p.error(&y),
        nfe: counts.nfe,
        accepted: counts.accepted,
        rejected: counts.rejected,
        ms,
    }
}

fn cell<const N: usize>(
    p: &Problem<N>,
    solver: String,
    tol: f64,
    sol: Result<cnf::ode::Solution<f64, [f64; N]>, cnf::ode::OdeError>,
    ms: f64,
) -> Cell {
    let sol = sol.expect("benchmark problems solve");
    Cell {
        problem: p.name,
        solver,
        tol,
        err: p.error(&sol.y),
        nfe: sol.stats.nfe,
        accepted: sol.stats.accepted,
        rejected: sol.stats.rejected,
        ms,
    }
}

/// A problem's right-hand side as a type of its own (a closure calling the constant's function),
/// so that every solver, ours and the peer's, calls it directly and may inline it.
trait RhsFn<const N: usize>: Fn(f64, &[f64; N], &mut [f64; N]) + Copy {}
impl<const N: usize, F: Fn(f64, &[f64; N], &mut [f64; N]) + Copy> RhsFn<N> for F {}

/// A benchmark problem as an `ode_solvers` system.
struct Peer<F>(F);

impl<const N: usize, F: RhsFn<N>> System<f64, SVector<f64, N>> for Peer<F> {
    fn system(&self, t: f64, y: &SVector<f64, N>, dy: &mut SVector<f64, N>) {
        let y: &[f64; N] = y.as_slice().try_into().expect("length N");
        (self.0)(t, y, dy.as_mut_slice().try_into().expect("length N"));
    }
}

fn peer<const N: usize>(p: &Problem<N>, f: impl RhsFn<N>, dop853: bool, tol: f64) -> Cell {
    let y0 = SVector::<f64, N>::from(p.y0);
    let run = || {
        let (stats, y) = if dop853 {
            let mut s = ode_solvers::Dop853::new(Peer(f), 0.0, p.t_end, p.t_end, y0, tol, tol);
            s.set_output(OutputType::Sparse);
            (s.integrate(), s.y_out().last().copied())
        } else {
            let mut s = ode_solvers::Dopri5::new(Peer(f), 0.0, p.t_end, p.t_end, y0, tol, tol);
            s.set_output(OutputType::Sparse);
            (s.integrate(), s.y_out().last().copied())
        };
        (
            stats.expect("ode_solvers integrates"),
            y.expect("final state"),
        )
    };
    let ((stats, y), ms) = timed(run);
    Cell {
        problem: p.name,
        solver: format!("ode_solvers {}", if dop853 { "Dop853" } else { "Dopri5" }),
        tol,
        err: p.error(y.as_slice()),
        nfe: stats.num_eval as usize,
        accepted: stats.accepted_steps as usize,
        rejected: stats.rejected_steps as usize,
        ms,
    }
}

/// All cells of one problem; summary entries appended to `summary`.
fn problem<const N: usize>(p: &Problem<N>, f: impl RhsFn<N>, summary: &mut Vec<serde_json::Value>) {
    let mut cells: Vec<Cell> = Vec::new();
    for tol in TOLERANCES {
        cells.push(ours(p, f, Dopri5, tol));
        cells.push(floor(p, f, tol));
        cells.push(ours(p, f, Tsit5, tol));
        cells.push(ours(p, f, Dop853, tol));
        cells.push(ours(p, f, Bs3, tol));
        cells.push(ours_general(p, f, Dopri5.tableau(), tol));
        cells.push(ours_general(p, f, Dop853.tableau(), tol));
        cells.push(peer(p, f, false, tol));
        cells.push(peer(p, f, true, tol));
    }
    for c in &cells {
        c.print();
    }
    let find = |solver: &str, tol: f64| {
        cells
            .iter()
            .find(|c| c.solver == solver && c.tol == tol)
            .expect("cell exists")
    };
    // Time of `mine` / time of `other` at each tolerance, median.
    let ratio = |mine: &str, other: &str| {
        median(
            TOLERANCES
                .iter()
                .map(|&tol| find(mine, tol).ms / find(other, tol).ms)
                .collect(),
        )
    };
    let (dopri5, hand, peer5) = ("cnf-ode Dopri5", "hand Dopri5", "ode_solvers Dopri5");
    for tol in TOLERANCES {
        let (o, h, s) = (find(dopri5, tol), find(hand, tol), find(peer5, tol));
        assert_eq!(
            (o.nfe, o.accepted, o.rejected, o.err),
            (h.nfe, h.accepted, h.rejected, h.err),
            "the floor takes our steps: {} {tol}",
            p.name
        );
        let ns = |c: &Cell| c.ms * 1e6 / c.nfe as f64;
        println!(
            "{}",
            json!({
                "floor": p.name, "rtol": tol,
                "ours_over_floor": o.ms / h.ms, "ode_solvers_over_floor": s.ms / h.ms,
                "ours_over_ode_solvers": o.ms / s.ms,
                "ns_per_rhs_ours": ns(o), "ns_per_rhs_floor": ns(h), "ns_per_rhs_ode_solvers": ns(s),
            })
        );
    }
    summary.push(json!({
        "problem": p.name, "floor": hand,
        "ours_over_floor_median": ratio(dopri5, hand),
        "ode_solvers_over_floor_median": ratio(peer5, hand),
        "ours_over_ode_solvers_median": ratio(dopri5, peer5),
    }));
    // (our method, scipy curve it is compared with, ode_solvers counterpart)
    type Pairing<'a> = (&'a str, &'a [(f64, f64); 8], &'a str, Option<&'a str>);
    let pairs: [Pairing; 3] = [
        (
            "cnf-ode Dopri5",
            &p.scipy_rk45,
            "scipy RK45",
            Some("ode_solvers Dopri5"),
        ),
        ("cnf-ode Tsit5", &p.scipy_rk45, "scipy RK45", None),
        (
            "cnf-ode DOP853",
            &p.scipy_dop853,
            "scipy DOP853",
            Some("ode_solvers Dop853"),
        ),
    ];
    for (ours, curve, scipy, peer) in pairs {
        let tight = &TOLERANCES[3..];
        let log_mean: f64 = tight
            .iter()
            .map(|&tol| {
                let c = find(ours, tol);
                (c.err / error_at_nfe(curve, c.nfe as f64)).ln()
            })
            .sum::<f64>()
            / tight.len() as f64;
        // Our time / ode_solvers' time at each tolerance (equal steps, equal errors), median.
        let general = ours.replace("cnf-ode ", "cnf-ode general ");
        summary.push(json!({
            "problem": p.name, "solver": ours, "vs": scipy,
            "err_ratio_at_equal_nfe_geomean_1e-6_1e-10": log_mean.exp(),
            "ode_solvers": peer,
            "ours_time_over_ode_solvers_median": peer.map(|peer| ratio(ours, peer)),
            "general_time_over_ode_solvers_median": peer.map(|peer| ratio(&general, peer)),
        }));
    }
}

fn main() {
    let mut summary = Vec::new();
    problem(&ARENSTORF, rhs!(ARENSTORF), &mut summary);
    problem(&KEPLER, rhs!(KEPLER), &mut summary);
    problem(&LORENZ, rhs!(LORENZ), &mut summary);

    let n = 100_000;
    let (y_hand, ms_hand) = timed(|| lorenz_rk4_by_hand(black_box(LORENZ.y0), 1.0, n));
    let solver = Solver::new(Rk4).fixed_steps(n);
    let (sol, ms_small) =
        timed(|| solver.solve_small(&mut lorenz_rhs, 0.0, 1.0, &black_box(LORENZ.y0)));
    let (general, ms_general) =
        timed(|| solver.solve_system(&mut lorenz_rhs, 0.0, 1.0, &black_box(LORENZ.y0)));
    let (sol, general) = (sol.expect("fixed steps"), general.expect("fixed steps"));
    let ns = |ms: f64| ms * 1e6 / (4 * n) as f64;
    let diff = |y: &[f64; 3]| (0..3).map(|i| (y_hand[i] - y[i]).abs()).fold(0.0, f64::max);
    println!(
        "{}",
        json!({
            "summary": summary,
            "rk4_lorenz_fixed": {
                "steps": n, "ns_per_rhs_hand_loop": ns(ms_hand),
                "ns_per_rhs_cnf_ode": ns(ms_small), "ratio": ms_small / ms_hand,
                "ns_per_rhs_cnf_ode_general": ns(ms_general), "ratio_general": ms_general / ms_hand,
                "max_abs_diff_hand_vs_ours": diff(&sol.y),
                "max_abs_diff_hand_vs_general": diff(&general.y),
            }
        })
    );
}
