//! Engine overhead on small states, without the peers (fast to build; deterministic under
//! `valgrind --tool=callgrind`): `cargo bench -p cnf-ode --bench small_state_overhead --
//! [rk4|adaptive|floor|all] [repeats] [problem or method]`.
//!
//! `rk4`: fixed-step RK4 on Lorenz ([f64; 3]) against a hand-written loop, ns per evaluation.
//! `adaptive`: Dopri5, Tsit5, DOP853 on the benchmark problems at rtol = atol = 1e-3..1e-10 with
//! the tableau passed at run time (as the work-precision example does), ns per evaluation.
//! `floor`: `solve_small` Dopri5 against the hand-written Dopri5 loop
//! (`cnf_testkit::floor::dopri5_by_hand`, the same steps) per problem and tolerance.
use std::hint::black_box;
use std::time::Instant;

use cnf_ode::{Dop853, Dopri5, Rk4, RkMethod, Solver, Tsit5};
use cnf_testkit::floor::dopri5_by_hand;
use cnf_testkit::problems::{
    lorenz_rhs, lorenz_rk4_by_hand, Problem, ARENSTORF, KEPLER, LORENZ, TOLERANCES,
};

fn min_time<R>(repeats: usize, mut f: impl FnMut() -> R) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The right-hand side of a benchmark problem (a `const`) as a closure that calls it directly
/// (inlinable), as a user's closure would be: `rhs!(KEPLER)`.
macro_rules! rhs {
    ($p:ident) => {
        |t: f64, y: &[f64; _], dy: &mut [f64; _]| ($p.rhs)(t, y, dy)
    };
}

fn adaptive<const N: usize, M: RkMethod + Copy>(
    p: &Problem<N>,
    f: impl Fn(f64, &[f64; N], &mut [f64; N]) + Copy,
    m: M,
    repeats: usize,
) {
    let filter = args().get(3).cloned().unwrap_or_default();
    if !p.name.contains(&filter) && !m.tableau().name.contains(&filter) {
        return;
    }
    let (mut secs, mut small, mut nfe) = (0.0, 0.0, 0);
    for tol in TOLERANCES {
        let s = Solver::new(m.tableau()).rtol(tol).atol(tol);
        secs += min_time(repeats, || s.solve_system(&mut { f }, 0.0, p.t_end, &p.y0));
        let typed = Solver::new(m).rtol(tol).atol(tol);
        small += min_time(repeats, || {
            typed.solve_small(&mut { f }, 0.0, p.t_end, &p.y0)
        });
        nfe += s
            .solve_system(&mut { f }, 0.0, p.t_end, &p.y0)
            .unwrap()
            .stats
            .nfe;
    }
    println!(
        "{:22} {:7} nfe {:7} ns/rhs {:6.2} solve_small {:6.2}",
        p.name,
        m.tableau().name,
        nfe,
        secs * 1e9 / nfe as f64,
        small * 1e9 / nfe as f64
    );
}

/// ns per evaluation of the hand-written Dopri5 loop and of `solve_small` (same steps, checked).
fn floor<const N: usize>(
    p: &Problem<N>,
    f: impl Fn(f64, &[f64; N], &mut [f64; N]) + Copy,
    repeats: usize,
) {
    let filter = args().get(3).cloned().unwrap_or_default();
    if !p.name.contains(&filter) {
        return;
    }
    let (mut hand_sum, mut small_sum, mut nfe_sum) = (0.0, 0.0, 0);
    for tol in TOLERANCES {
        let typed = Solver::new(Dopri5).rtol(tol).atol(tol);
        let run = || typed.solve_small(&mut { f }, 0.0, p.t_end, &black_box(p.y0));
        let by_hand = || dopri5_by_hand(f, 0.0, p.t_end, black_box(p.y0), tol, tol);
        let (sol, (y, counts)) = (run().expect("solves"), by_hand());
        assert_eq!((sol.y, sol.stats.nfe), (y, counts.nfe), "{} {tol}", p.name);
        let hand = min_time(repeats, by_hand);
        let small = min_time(repeats, run);
        let ns = |secs: f64| secs * 1e9 / counts.nfe as f64;
        println!(
            "{:22} {tol:7.0e} nfe {:6} ns/rhs hand {:6.2} solve_small {:6.2} ratio {:.2}",
            p.name,
            counts.nfe,
            ns(hand),
            ns(small),
            small / hand
        );
        (hand_sum, small_sum, nfe_sum) = (hand_sum + hand, small_sum + small, nfe_sum + counts.nfe);
    }
    let ns = |secs: f64| secs * 1e9 / nfe_sum as f64;
    println!(
        "{:22} all     nfe {:6} ns/rhs hand {:6.2} solve_small {:6.2} ratio {:.2}",
        p.name,
        nfe_sum,
        ns(hand_sum),
        ns(small_sum),
        small_sum / hand_sum
    );
}

fn main() {
    let args = args();
    let mode = args.get(1).map_or("all", String::as_str);
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(15);
    if mode == "rk4" || mode == "all" {
        let n = 100_000;
        let hand = min_time(repeats, || lorenz_rk4_by_hand(black_box(LORENZ.y0), 1.0, n));
        let s = Solver::new(Rk4).fixed_steps(n);
        let ours = min_time(repeats, || {
            s.solve_system(&mut lorenz_rhs, 0.0, 1.0, &black_box(LORENZ.y0))
        });
        let small = min_time(repeats, || {
            s.solve_small(&mut lorenz_rhs, 0.0, 1.0, &black_box(LORENZ.y0))
        });
        let ns = |secs: f64| secs * 1e9 / (4 * n) as f64;
        println!(
            "rk4 lorenz: hand {:.2} ns/rhs, ours {:.2} ns/rhs (ratio {:.2}), solve_small {:.2} ns/rhs (ratio {:.2})",
            ns(hand),
            ns(ours),
            ours / hand,
            ns(small),
            small / hand
        );
    }
    if mode == "adaptive" || mode == "all" {
        adaptive(&ARENSTORF, rhs!(ARENSTORF), Dopri5, repeats);
        adaptive(&KEPLER, rhs!(KEPLER), Dopri5, repeats);
        adaptive(&LORENZ, rhs!(LORENZ), Dopri5, repeats);
        adaptive(&ARENSTORF, rhs!(ARENSTORF), Tsit5, repeats);
        adaptive(&KEPLER, rhs!(KEPLER), Tsit5, repeats);
        adaptive(&LORENZ, rhs!(LORENZ), Tsit5, repeats);
        adaptive(&ARENSTORF, rhs!(ARENSTORF), Dop853, repeats);
        adaptive(&KEPLER, rhs!(KEPLER), Dop853, repeats);
        adaptive(&LORENZ, rhs!(LORENZ), Dop853, repeats);
    }
    if mode == "floor" || mode == "all" {
        floor(&ARENSTORF, rhs!(ARENSTORF), repeats);
        floor(&KEPLER, rhs!(KEPLER), repeats);
        floor(&LORENZ, rhs!(LORENZ), repeats);
    }
}

/// The command-line arguments without the `--bench` flag `cargo bench` appends.
fn args() -> Vec<String> {
    std::env::args().filter(|a| a != "--bench").collect()
}
