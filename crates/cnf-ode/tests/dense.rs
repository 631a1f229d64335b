//! Dense output queried after the solve: `Solution::interpolate` uses each method's own
//! continuous extension.
mod common;

use cnf_ode::{Method, Solver};
use common::{max_abs_diff, Linear};

fn system() -> Linear {
    Linear::new([-0.5, 2.0, 0.0, -2.0, -0.5, 0.3, 0.1, 0.0, -1.0])
}

fn solver(m: Method, steps: Option<usize>) -> Solver<Method, f64> {
    let s = Solver::new(m).rtol(1e-7).atol(1e-9);
    match steps {
        Some(n) => s.fixed_steps(n),
        None if m.is_adaptive() => s,
        None => s.fixed_steps(13),
    }
}

/// At output times, at step ends and at the ends of the span, `interpolate` returns exactly
/// the states the solver reported (the same formula, bit for bit), forwards and backwards.
#[test]
fn interpolate_equals_output_times_exactly() {
    let lin = system();
    let y0 = [1.0, -0.5, 2.0];
    for m in Method::ALL {
        for (t0, t1) in [(0.0, 3.0), (3.0, -0.5)] {
            let t_out: Vec<f64> = (0..=40).map(|i| t0 + (t1 - t0) * i as f64 / 40.0).collect();
            let sol = solver(m, None)
                .dense(true)
                .output_times(t_out.clone())
                .solve_system(&mut lin.rhs(), t0, t1, &y0)
                .unwrap();
            let plain = solver(m, None)
                .solve_system(&mut lin.rhs(), t0, t1, &y0)
                .unwrap();
            // Recording changes nothing in the solve.
            assert_eq!(sol.y, plain.y, "{m}");
            assert_eq!(sol.stats.accepted, plain.stats.accepted, "{m}");
            let dense = sol.dense.as_ref().unwrap();
            assert_eq!(dense.steps(), sol.stats.accepted, "{m}");
            for (t, y) in sol.t_out.iter().zip(&sol.y_out) {
                assert_eq!(sol.interpolate(*t).as_ref(), Some(y), "{m} at t = {t}");
            }
            assert_eq!(sol.interpolate(t1), Some(sol.y), "{m}");
            assert_eq!(sol.interpolate(t0), Some(y0), "{m}");
            // Outside the span, or without recording: nothing.
            assert_eq!(sol.interpolate(t1 + (t1 - t0) * 1e-3), None, "{m}");
            assert_eq!(sol.interpolate(f64::NAN), None, "{m}");
            assert_eq!(plain.interpolate(t1), None, "{m}");
        }
    }
}

/// Observed order of the interpolant between the nodes: with N and 2N fixed steps the largest
/// error over points inside the steps (theta = 0.3 and 0.7) against exp(At) y0 falls like
/// h^min(p, p* + 1), p the method's order and p* the order of its continuous extension.
#[test]
fn interpolant_has_the_dense_output_order() {
    let lin = system();
    let y0 = [1.0, -0.5, 2.0];
    let t1 = 2.0;
    // (method, p* = order of the continuous extension, N): N large enough to be asymptotic,
    // small enough to stay far above round-off.
    let cases = [
        (Method::Euler, 1, 64),
        (Method::Midpoint, 1, 32),
        (Method::Heun, 1, 32),
        (Method::Rk4, 3, 16),
        (Method::Bs3, 3, 16),
        (Method::Dopri5, 4, 8),
        (Method::Tsit5, 4, 8),
        (Method::Dop853, 7, 4),
        (Method::Rosenbrock23, 2, 16),
        (Method::Rodas5p, 4, 8),
    ];
    for (m, dense_order, n) in cases {
        let max_err = |n: usize| {
            let sol = Solver::new(m)
                .fixed_steps(n)
                .dense(true)
                .solve_system(&mut lin.rhs(), 0.0, t1, &y0)
                .unwrap();
            let h = t1 / n as f64;
            let mut worst = 0.0f64;
            for i in 0..n {
                for theta in [0.3, 0.7] {
                    let t = (i as f64 + theta) * h;
                    let y = sol.interpolate(t).unwrap();
                    worst = worst.max(max_abs_diff(&y, &lin.exact(t, &y0)));
                }
            }
            worst
        };
        let (e1, e2) = (max_err(n), max_err(2 * n));
        let rate = (e1 / e2).log2();
        let expected = f64::from(m.scheme().order().min(dense_order + 1));
        println!("{m}: errors {e1:.2e} {e2:.2e}, rate {rate:.2} (expected {expected})");
        assert!(e2 > 1e-13, "{m}: {e2:e} too close to round-off");
        assert!(
            rate > expected - 0.35 && rate < expected + 0.7,
            "{m}: rate {rate:.2}, expected {expected}"
        );
    }
}
