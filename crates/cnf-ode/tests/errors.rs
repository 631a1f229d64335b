//! Every failure is a typed error, never a panic; integration errors keep their statistics.
use cnf_ode::{Dop853, Dopri5, OdeError, Rk4, Solver};
use cnf_testkit::problems::{lorenz_rhs, LORENZ};

#[test]
fn nan_in_initial_state() {
    let r = Solver::new(Dopri5).solve_system(&mut lorenz_rhs, 0.0, 1.0, &[1.0, f64::NAN, 1.0]);
    assert!(matches!(r, Err(OdeError::NonFinite { t, .. }) if t == 0.0));
}

#[test]
fn rhs_turning_nan_reports_the_time() {
    let mut f = |t: f64, y: &[f64; 1], dy: &mut [f64; 1]| {
        dy[0] = if t > 0.5 { f64::NAN } else { -y[0] };
    };
    match Solver::new(Dopri5).solve_system(&mut f, 0.0, 1.0, &[1.0]) {
        Err(OdeError::NonFinite { t, stats }) => {
            assert!(t > 0.3 && t <= 0.5, "t = {t}");
            assert!(stats.nfe > 0 && stats.accepted > 0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_tolerances() {
    let solve = |s: Solver<Dopri5, f64>| s.solve_system(&mut lorenz_rhs, 0.0, 1.0, &LORENZ.y0);
    assert!(matches!(
        solve(Solver::new(Dopri5).rtol(-1e-6)),
        Err(OdeError::InvalidTolerance { .. })
    ));
    assert!(matches!(
        solve(Solver::new(Dopri5).rtol(0.0).atol(0.0)),
        Err(OdeError::InvalidTolerance { .. })
    ));
    assert!(matches!(
        solve(Solver::new(Dopri5).atol(vec![1e-6; 2])),
        Err(OdeError::DimensionMismatch {
            expected: 3,
            found: 2
        })
    ));
}

#[test]
fn output_time_outside_span() {
    for (t0, t1, out) in [(0.0, 1.0, 1.5), (0.0, 1.0, -0.1), (1.0, 0.0, 1.2)] {
        let r = Solver::new(Dopri5).output_times(vec![out]).solve_system(
            &mut lorenz_rhs,
            t0,
            t1,
            &LORENZ.y0,
        );
        assert!(
            matches!(r, Err(OdeError::OutputTimeOutsideSpan { .. })),
            "{out}"
        );
    }
}

#[test]
fn max_steps_exceeded_keeps_stats() {
    match Solver::new(Dopri5).rtol(1e-10).max_steps(10).solve_system(
        &mut lorenz_rhs,
        0.0,
        5.0,
        &LORENZ.y0,
    ) {
        Err(OdeError::MaxStepsExceeded {
            max_steps, stats, ..
        }) => {
            assert_eq!(max_steps, 10);
            assert_eq!(stats.accepted + stats.rejected, 10);
            assert!(stats.nfe >= 10 * 6);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn step_size_underflow_past_a_singularity() {
    // y' = y^2, y(0) = 1: y = 1 / (1 - t) blows up at t = 1.
    let mut f = |_t: f64, y: &[f64; 1], dy: &mut [f64; 1]| dy[0] = y[0] * y[0];
    for r in [
        Solver::new(Dopri5).solve_system(&mut f, 0.0, 2.0, &[1.0]),
        Solver::new(Dop853).solve_system(&mut f, 0.0, 2.0, &[1.0]),
    ] {
        match r {
            Err(OdeError::StepSizeTooSmall { t, stats, .. } | OdeError::NonFinite { t, stats }) => {
                assert!((t - 1.0).abs() < 1e-2, "t = {t}");
                assert!(stats.accepted > 0);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn invalid_options() {
    let r = Solver::new(Rk4)
        .fixed_steps(0)
        .solve_system(&mut lorenz_rhs, 0.0, 1.0, &LORENZ.y0);
    assert!(
        matches!(&r, Err(OdeError::InvalidSetting { field, .. }) if field == "steps"),
        "{r:?}"
    );
    let r = Solver::new(Rk4).solve_system(&mut lorenz_rhs, 0.0, 1.0, &LORENZ.y0);
    assert!(matches!(r, Err(OdeError::NotAdaptive { method: "RK4" })));
    let r = Solver::new(Dopri5).solve_system(&mut lorenz_rhs, 0.0, f64::INFINITY, &LORENZ.y0);
    assert!(matches!(r, Err(OdeError::InvalidSpan { .. })));
}
