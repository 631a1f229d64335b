//! Pinned step sequences: engine optimisations must not change which steps a solve takes.
//!
//! The counts were recorded with the engine of commit 47d3729 (the last change to
//! `crates/cnf-ode/src` when they were pinned). They are not only our own output:
//! - Dopri5 and DOP853: the accepted and rejected counts are those of the independent
//!   implementation in the `ode_solvers` 0.6 crate ("same steps as ode_solvers 0.6"), compared
//!   directly by the root test `tests/ode_vs_ode_solvers.rs` (`cargo test --test
//!   ode_vs_ode_solvers`) and printed side by side by `cargo bench --bench
//!   ode_work_precision`;
//! - every NFE and error is the one published in docs/ode.md's work-precision tables;
//! - every NFE satisfies the evaluation accounting of its method (checked below).
//!
//! Tsit5 and BS3 have no independent peer here: for them the pin is a regression guard.
use cnf_ode::{Bs3, Dop853, Dopri5, RkMethod, Solver, Stats, Tsit5};
use cnf_testkit::problems::{Problem, ARENSTORF, KEPLER, LORENZ};

/// (method, rtol = atol, NFE, accepted, rejected, error of the final state as published in
/// docs/ode.md's work-precision tables, two digits)
type Pin = (
    &'static dyn RkMethod,
    f64,
    usize,
    usize,
    usize,
    &'static str,
);

const ARENSTORF_PINS: [Pin; 8] = [
    (&Dopri5, 1e-6, 986, 139, 25, "4.0e-2"),
    (&Dopri5, 1e-9, 3212, 530, 5, "1.9e-5"),
    (&Tsit5, 1e-6, 1076, 144, 35, "2.7e-2"),
    (&Tsit5, 1e-9, 3284, 544, 3, "3.6e-6"),
    (&Dop853, 1e-6, 1034, 65, 23, "6.9e-3"),
    (&Dop853, 1e-9, 2183, 136, 50, "7.3e-6"),
    (&Bs3, 1e-6, 2540, 844, 2, "4.7e-2"),
    (&Bs3, 1e-9, 25406, 8468, 0, "4.5e-5"),
];

const KEPLER_PINS: [Pin; 8] = [
    (&Dopri5, 1e-6, 2192, 297, 68, "3.7e-2"),
    (&Dopri5, 1e-9, 6770, 1128, 0, "2.4e-6"),
    (&Tsit5, 1e-6, 2504, 319, 98, "3.8e-3"),
    (&Tsit5, 1e-9, 7178, 1196, 0, "6.3e-6"),
    (&Dop853, 1e-6, 2165, 129, 56, "5.8e-3"),
    (&Dop853, 1e-9, 4372, 268, 105, "7.6e-6"),
    (&Bs3, 1e-6, 5966, 1988, 0, "1.4e-2"),
    (&Bs3, 1e-9, 59762, 19920, 0, "1.4e-5"),
];

const LORENZ_PINS: [Pin; 8] = [
    (&Dopri5, 1e-6, 1034, 171, 1, "1.8e-4"),
    (&Dopri5, 1e-9, 4022, 670, 0, "1.6e-7"),
    (&Tsit5, 1e-6, 932, 154, 1, "8.1e-5"),
    (&Tsit5, 1e-9, 3632, 605, 0, "5.2e-8"),
    (&Dop853, 1e-6, 816, 56, 13, "6.1e-5"),
    (&Dop853, 1e-9, 1857, 129, 28, "2.0e-8"),
    (&Bs3, 1e-6, 2921, 973, 0, "1.2e-3"),
    (&Bs3, 1e-9, 29162, 9720, 0, "1.2e-6"),
];

/// Evaluations a solve must have made for its steps: f(y0) once (reused by the initial-step
/// estimate), one evaluation at the estimate's trial point, then per step the stages after the
/// first (FSAL methods: the last stage is the next step's first). DOP853's twelfth stage,
/// f(y_new), is evaluated only after an accepted step (Hairer's accounting).
fn expected_nfe(m: &dyn RkMethod, s: &Stats) -> usize {
    let steps = s.accepted + s.rejected;
    match m.tableau().name {
        "Dopri5" | "Tsit5" => 2 + 6 * steps,
        "BS3" => 2 + 3 * steps,
        "DOP853" => 1 + 11 * steps + s.accepted,
        other => panic!("no accounting for {other}"),
    }
}

fn check<const N: usize>(p: &Problem<N>, pins: &[Pin]) {
    for &(m, tol, nfe, accepted, rejected, err) in pins {
        let sol = Solver::new(m.tableau())
            .rtol(tol)
            .atol(tol)
            .solve_system(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let name = format!("{} {} {tol:e}", p.name, m.tableau().name);
        assert_eq!(
            sol.stats,
            Stats {
                nfe,
                accepted,
                rejected,
                ..Stats::default()
            },
            "{name}"
        );
        assert_eq!(
            sol.stats.nfe,
            expected_nfe(m, &sol.stats),
            "{name}: accounting"
        );
        let ours = format!("{:.1e}", p.error(&sol.y));
        assert_eq!(ours, err, "{name}: error of the final state");
    }
}

#[test]
fn arenstorf_step_counts_are_pinned() {
    check(&ARENSTORF, &ARENSTORF_PINS);
}

#[test]
fn kepler_step_counts_are_pinned() {
    check(&KEPLER, &KEPLER_PINS);
}

#[test]
fn lorenz_step_counts_are_pinned() {
    check(&LORENZ, &LORENZ_PINS);
}
