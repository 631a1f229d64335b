//! The automatic initial step is never below the smallest step the solver accepts at t0 (issue 20
//! item 6): with f = 0 (an untrained flow is the identity) Hairer's estimate is 1e-6, which in f32
//! at |t| = 1 is below the step floor 10 eps |t| = 1.2e-6; the solve failed on its own first step
//! with "step size -9.99e-7 below the minimum at t = 1.0".
use cnf_ode::{Bs3, Dop853, Dopri5, Method, OdeError, OdeMethod, Solver, Tsit5};

/// The methods with an error estimate, as a `Method` chosen at run time.
const ADAPTIVE: [Method; 4] = [Method::Bs3, Method::Dopri5, Method::Tsit5, Method::Dop853];

/// y' = rate * y in f32 over (t0, t1) with default tolerances: the result and the accepted steps.
fn solve_f32<M: OdeMethod>(method: M, rate: f32, t0: f32, t1: f32) -> (Vec<f32>, usize) {
    let y0 = vec![1.5f32, -0.25, 3.0];
    let sol = Solver::new(method)
        .solve(
            |_t, y: &[f32], dy: &mut [f32]| {
                for (d, &v) in dy.iter_mut().zip(y) {
                    *d = rate * v;
                }
            },
            t0,
            t1,
            &y0,
        )
        .unwrap_or_else(|e| panic!("({t0} -> {t1}, rate {rate}): {e}"));
    (sol.y, sol.stats.accepted)
}

#[test]
fn zero_field_in_f32_both_directions_is_exact_in_a_few_steps() {
    for m in ADAPTIVE {
        // Sampling integrates 0 -> 1, densities 1 -> 0.
        for (t0, t1) in [(0.0f32, 1.0f32), (1.0, 0.0)] {
            let (y, accepted) = solve_f32(m, 0.0, t0, t1);
            assert_eq!(y, [1.5, -0.25, 3.0], "{m:?} {t0} -> {t1}");
            assert!(accepted <= 10, "{m:?} {t0} -> {t1}: {accepted} steps");
        }
    }
}

#[test]
fn negligible_field_in_f32_both_directions_is_exact() {
    // 1e-30 y: f0 is non-zero but its squared norm underflows (the same branch of HINIT).
    for m in ADAPTIVE {
        for (t0, t1) in [(0.0f32, 1.0f32), (1.0, 0.0)] {
            let (y, accepted) = solve_f32(m, 1e-30, t0, t1);
            assert_eq!(y, [1.5, -0.25, 3.0], "{m:?} {t0} -> {t1}");
            assert!(accepted <= 10, "{m:?} {t0} -> {t1}: {accepted} steps");
        }
    }
}

#[test]
fn zero_field_with_the_cli_tolerances_and_small_states() {
    // The tolerances `cnf density` / `sample` use, and the stack-buffer engine.
    let mut f = |_t: f32, _y: &[f32; 2], dy: &mut [f32; 2]| *dy = [0.0, 0.0];
    for (t0, t1) in [(0.0f32, 1.0f32), (1.0, 0.0)] {
        let s = Solver::new(Dopri5).rtol(1e-5f32).atol(1e-5f32);
        let small = s.solve_small(&mut f, t0, t1, &[0.5, -2.0]).unwrap();
        let general = s.solve_system(&mut f, t0, t1, &[0.5, -2.0]).unwrap();
        assert_eq!(small.y, [0.5, -2.0]);
        assert_eq!(small.stats, general.stats);
        let tsit = Solver::new(Tsit5).rtol(1e-5f32).atol(1e-5f32);
        assert_eq!(
            tsit.solve_small(&mut f, t0, t1, &[0.5, -2.0]).unwrap().y,
            [0.5, -2.0]
        );
    }
}

#[test]
fn large_times_in_f64_have_the_same_floor() {
    // In f64 the floor 10 eps |t| passes 1e-6 for |t| > 4.5e8.
    for (t0, t1) in [(1e10, 1e10 + 1.0), (1e10 + 1.0, 1e10)] {
        for m in [Method::Dopri5, Method::Dop853, Method::Bs3] {
            let sol = Solver::new(m)
                .solve(
                    |_t, _y: &[f64], dy: &mut [f64]| dy[0] = 0.0,
                    t0,
                    t1,
                    &vec![7.0],
                )
                .unwrap_or_else(|e| panic!("{m:?} {t0} -> {t1}: {e}"));
            assert_eq!(sol.y, [7.0]);
        }
    }
}

#[test]
fn a_span_shorter_than_the_floor_is_one_step() {
    // One ulp of 1 in f32: shorter than 10 eps, so no step "above the minimum" exists; the step
    // that reaches t1 is taken rather than refused.
    let t1 = 1.0f32 + f32::EPSILON;
    for (a, b) in [(1.0f32, t1), (t1, 1.0)] {
        let sol = Solver::new(Dopri5)
            .solve(
                |_t, y: &[f32], dy: &mut [f32]| dy[0] = -y[0],
                a,
                b,
                &vec![2.0f32],
            )
            .unwrap_or_else(|e| panic!("{a} -> {b}: {e}"));
        assert!((sol.y[0] - 2.0).abs() <= 4.0 * f32::EPSILON, "{}", sol.y[0]);
        assert_eq!(sol.stats.accepted, 1);
    }
}

#[test]
fn steps_that_shrink_below_the_floor_still_fail() {
    // The floor still stops a solve that cannot make progress: a field that blows up at t = 0.5.
    let r = Solver::new(Dopri5).rtol(1e-6f32).atol(1e-6f32).solve(
        |t, _y: &[f32], dy: &mut [f32]| dy[0] = 1.0 / (0.5 - t).powi(2),
        0.0f32,
        1.0,
        &vec![0.0f32],
    );
    assert!(
        matches!(
            r,
            Err(OdeError::StepSizeTooSmall { .. } | OdeError::NonFinite { .. })
        ),
        "{r:?}"
    );
    // A user's own initial step below the floor is the user's choice and still refused.
    let r = Solver::new(Dopri5).initial_step(1e-7f32).solve(
        |_t, _y: &[f32], dy: &mut [f32]| dy[0] = 0.0,
        1.0f32,
        0.0,
        &vec![1.0f32],
    );
    assert!(matches!(r, Err(OdeError::StepSizeTooSmall { .. })), "{r:?}");
}

#[test]
fn unit_type_methods_agree_with_runtime_methods() {
    for (t0, t1) in [(0.0f32, 1.0f32), (1.0, 0.0)] {
        assert_eq!(
            solve_f32(Dopri5, 0.0, t0, t1),
            solve_f32(Method::Dopri5, 0.0, t0, t1)
        );
        assert_eq!(
            solve_f32(Bs3, 0.0, t0, t1),
            solve_f32(Method::Bs3, 0.0, t0, t1)
        );
        assert_eq!(
            solve_f32(Dop853, 0.0, t0, t1),
            solve_f32(Method::Dop853, 0.0, t0, t1)
        );
    }
}
