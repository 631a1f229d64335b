//! Conservation laws and the benchmark problems against the peers' measurements.
use cnf_ode::{Dop853, Dopri5, RkMethod, Solver};
use cnf_testkit::problems::{error_at_nfe, Problem, ARENSTORF, KEPLER, LORENZ};

/// Energy and angular momentum of the Kepler problem.
fn invariants(y: &[f64; 4]) -> (f64, f64) {
    let r = (y[0] * y[0] + y[1] * y[1]).sqrt();
    (
        0.5 * (y[2] * y[2] + y[3] * y[3]) - 1.0 / r,
        y[0] * y[3] - y[1] * y[2],
    )
}

#[test]
fn kepler_invariants_drift_little() {
    let (e0, l0) = invariants(&KEPLER.y0);
    let mut worst = (0.0f64, 0.0f64);
    let mut obs = |s: &cnf_ode::AcceptedStep<'_, f64, [f64; 4]>| {
        let (e, l) = invariants(s.y);
        worst = (
            worst.0.max(((e - e0) / e0).abs()),
            worst.1.max(((l - l0) / l0).abs()),
        );
    };
    let sol = Solver::new(Dop853)
        .rtol(1e-12)
        .atol(1e-12)
        .solve_system_observed(&mut { KEPLER.rhs }, 0.0, KEPLER.t_end, &KEPLER.y0, &mut obs)
        .unwrap();
    assert!(worst.0 < 1e-9 && worst.1 < 1e-9, "drift {worst:?}");
    assert!(KEPLER.error(&sol.y) < 1e-8);
}

/// Largest allowed geometric mean over rtol = atol = 1e-6..1e-10 of our error / scipy's error
/// at our NFE: single tolerances scatter by 3x either way on Kepler, for scipy too.
const MAX_RATIO: f64 = 1.5;

/// `m` is as accurate as scipy's `curve` (the same method) for the same number of evaluations:
/// the geometric mean over rtol = atol = 1e-6..1e-10 of our error / scipy's error at our NFE
/// (log-log interpolation of scipy's curve) is at most `MAX_RATIO`. Returns the ratio. The scipy
/// curves are `Problem::scipy_rk45` and `Problem::scipy_dop853`, copied from the peers'
/// reference file peers.md ("scipy RK45" and "scipy DOP853" rows).
fn matches_scipy<const N: usize>(p: &Problem<N>, m: &dyn RkMethod, curve: &[(f64, f64)]) -> f64 {
    let mut log_ratio = 0.0;
    for tol in [1e-6, 1e-7, 1e-8, 1e-9, 1e-10] {
        let sol = Solver::new(m.tableau())
            .rtol(tol)
            .atol(tol)
            .solve_system(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let ours = p.error(&sol.y);
        let scipy = error_at_nfe(curve, sol.stats.nfe as f64);
        println!(
            "{} {} {tol:e}: ours {ours:.2e} nfe {} scipy {scipy:.2e}",
            p.name,
            m.tableau().name,
            sol.stats.nfe
        );
        log_ratio += (ours / scipy).ln() / 5.0;
    }
    let ratio = log_ratio.exp();
    println!(
        "{} {}: error ratio to scipy {ratio:.2}",
        p.name,
        m.tableau().name
    );
    assert!(
        ratio <= MAX_RATIO,
        "{} {}: error ratio to scipy {ratio:.2}",
        p.name,
        m.tableau().name
    );
    ratio
}

/// Asserts the ratio is the figure published in docs/ode.md's summary table and the README
/// (two decimals).
fn is_documented(ratio: f64, documented: f64) {
    assert!(
        (ratio - documented).abs() <= 0.005,
        "ratio {ratio:.3}, documented {documented}"
    );
}

#[test]
fn dopri5_reaches_scipy_accuracy() {
    is_documented(
        matches_scipy(&ARENSTORF, &Dopri5, &ARENSTORF.scipy_rk45),
        1.21,
    );
    is_documented(matches_scipy(&KEPLER, &Dopri5, &KEPLER.scipy_rk45), 1.33);
    is_documented(matches_scipy(&LORENZ, &Dopri5, &LORENZ.scipy_rk45), 0.98);
}

#[test]
fn dop853_reaches_scipy_accuracy() {
    is_documented(
        matches_scipy(&ARENSTORF, &Dop853, &ARENSTORF.scipy_dop853),
        0.73,
    );
    is_documented(matches_scipy(&KEPLER, &Dop853, &KEPLER.scipy_dop853), 0.79);
    is_documented(matches_scipy(&LORENZ, &Dop853, &LORENZ.scipy_dop853), 0.89);
}

#[test]
fn interpolated_peer_curve() {
    let curve = [(1e-2, 100.0), (1e-4, 1000.0)];
    assert!((error_at_nfe(&curve, 100.0) - 1e-2).abs() < 1e-15);
    assert!((error_at_nfe(&curve, 10f64.powf(2.5)) - 1e-3).abs() < 1e-12);
    assert!((error_at_nfe(&curve, 1e4) - 1e-6).abs() < 1e-15);
}
