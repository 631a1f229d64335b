//! Adaptive stepping, output times, states, directions and precisions.
mod common;

use cnf_ode::{AcceptedStep, Batch, Bs3, Dop853, Dopri5, Rk4, RkMethod, Solver, Stats, Tsit5};
use cnf_testkit::problems::{lorenz_rhs, KEPLER, LORENZ};
use common::{max_abs_diff, Linear};
use nalgebra::{DVector, SVector};

fn adaptive() -> [&'static dyn RkMethod; 4] {
    [&Bs3, &Dopri5, &Tsit5, &Dop853]
}

fn oscillator() -> Linear {
    Linear::new([0.0, 1.0, 0.0, -1.0, -0.1, 0.0, 0.0, 0.0, -0.5])
}

#[test]
fn error_falls_with_tolerance() {
    let lin = oscillator();
    let y0 = [1.0, 0.0, 1.0];
    let exact = lin.exact(10.0, &y0);
    for m in adaptive() {
        let err = |tol: f64| {
            let sol = Solver::new(m.tableau())
                .rtol(tol)
                .atol(tol)
                .solve_system(&mut lin.rhs(), 0.0, 10.0, &y0)
                .unwrap();
            max_abs_diff(&sol.y, &exact)
        };
        let (loose, tight) = (err(1e-5), err(1e-10));
        let name = m.tableau().name;
        assert!(tight < loose * 1e-3, "{name}: {tight:e} vs {loose:e}");
        assert!(
            loose < 1e-5 * 100.0 && tight < 1e-10 * 100.0,
            "{name}: {loose:e} {tight:e}"
        );
    }
}

#[test]
fn forward_then_backward_returns() {
    let t1 = KEPLER.t_end / 10.0;
    for m in adaptive() {
        let s = Solver::new(m.tableau()).rtol(1e-10).atol(1e-10);
        let fwd = s
            .solve_system(&mut { KEPLER.rhs }, 0.0, t1, &KEPLER.y0)
            .unwrap();
        // One period: the orbit is back at its start.
        assert!(KEPLER.error(&fwd.y) < 1e-6, "{}", m.tableau().name);
        let back = s
            .solve_system(&mut { KEPLER.rhs }, t1, 0.0, &fwd.y)
            .unwrap();
        assert_eq!(back.t, 0.0);
        let d = max_abs_diff(&back.y, &KEPLER.y0);
        assert!(d < 1e-6, "{}: {d:e}", m.tableau().name);
    }
}

#[test]
fn f32_and_f64() {
    let f32_rhs = |_t: f32, y: &[f32; 2], dy: &mut [f32; 2]| {
        dy[0] = y[1];
        dy[1] = -y[0];
    };
    let f64_rhs = |_t: f64, y: &[f64; 2], dy: &mut [f64; 2]| {
        dy[0] = y[1];
        dy[1] = -y[0];
    };
    for m in adaptive() {
        let s32 = Solver::new(m.tableau()).rtol(1e-5f32).atol(1e-7f32);
        let y32 = s32
            .solve_system(&mut { f32_rhs }, 0.0, 3.0, &[1.0, 0.0])
            .unwrap()
            .y;
        let s64 = Solver::new(m.tableau()).rtol(1e-10).atol(1e-12);
        let y64 = s64
            .solve_system(&mut { f64_rhs }, 0.0, 3.0, &[1.0, 0.0])
            .unwrap()
            .y;
        let exact = [3f64.cos(), -3f64.sin()];
        let e32 = (f64::from(y32[0]) - exact[0])
            .abs()
            .max((f64::from(y32[1]) - exact[1]).abs());
        assert!(e32 < 1e-3, "{} f32: {e32:e}", m.tableau().name);
        assert!(
            max_abs_diff(&y64, &exact) < 1e-8,
            "{} f64",
            m.tableau().name
        );
    }
}

#[test]
fn all_states_agree() {
    let s = Solver::new(Dopri5).rtol(1e-8).atol(1e-8);
    let arr = s
        .solve_system(&mut lorenz_rhs, 0.0, 2.0, &LORENZ.y0)
        .unwrap();
    let vec = s
        .solve_system(
            &mut |t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| {
                let (mut a, mut d) = ([0.0; 3], [0.0; 3]);
                a.copy_from_slice(y);
                lorenz_rhs(t, &a, &mut d);
                dy.copy_from_slice(&d);
            },
            0.0,
            2.0,
            &LORENZ.y0.to_vec(),
        )
        .unwrap();
    let sv = s
        .solve_system(
            &mut |t: f64, y: &SVector<f64, 3>, dy: &mut SVector<f64, 3>| {
                lorenz_rhs(t, &(*y).into(), dy.as_mut_slice().try_into().unwrap());
            },
            0.0,
            2.0,
            &SVector::from(LORENZ.y0),
        )
        .unwrap();
    let dv = s
        .solve_system(
            &mut |t: f64, y: &DVector<f64>, dy: &mut DVector<f64>| {
                let a: [f64; 3] = y.as_slice().try_into().unwrap();
                lorenz_rhs(t, &a, dy.as_mut_slice().try_into().unwrap());
            },
            0.0,
            2.0,
            &DVector::from_column_slice(&LORENZ.y0),
        )
        .unwrap();
    // A batch of one sample (the error norm is per component, so one row reproduces the rest).
    let b = s
        .solve_system(
            &mut |t: f64, y: &Batch<f64>, dy: &mut Batch<f64>| {
                let a: [f64; 3] = y.row(0).try_into().unwrap();
                lorenz_rhs(t, &a, dy.row_mut(0).try_into().unwrap());
            },
            0.0,
            2.0,
            &Batch::new(LORENZ.y0.to_vec(), 3).unwrap(),
        )
        .unwrap();
    for (y, stats) in [
        (vec.y.clone(), vec.stats),
        (sv.y.as_slice().to_vec(), sv.stats),
        (dv.y.as_slice().to_vec(), dv.stats),
        (b.y.data().to_vec(), b.stats),
    ] {
        assert_eq!(y.as_slice(), arr.y.as_slice());
        assert_eq!(stats, arr.stats);
    }
}

#[test]
fn per_component_tolerances() {
    // A loose tolerance on a component that is not coupled back changes nothing else's accuracy,
    // while a per-component vector equal to the scalar gives the identical solve.
    let lin = Linear::new([0.0, 1.0, 0.0, -1.0, -0.1, 0.0, 0.0, 0.0, -3.0]);
    let y0 = [1.0, 0.0, 1.0];
    let scalar = Solver::new(Dopri5).rtol(1e-8).atol(1e-10);
    let vector = Solver::new(Dopri5).rtol(vec![1e-8; 3]).atol(vec![1e-10; 3]);
    let a = scalar.solve_system(&mut lin.rhs(), 0.0, 5.0, &y0).unwrap();
    let b = vector.solve_system(&mut lin.rhs(), 0.0, 5.0, &y0).unwrap();
    assert_eq!(a.y, b.y);
    assert_eq!(a.stats, b.stats);
    let loose = Solver::new(Dopri5)
        .rtol(vec![1e-8, 1e-8, 1e-2])
        .atol(vec![1e-10, 1e-10, 1e-2])
        .solve_system(&mut lin.rhs(), 0.0, 5.0, &y0)
        .unwrap();
    assert!(loose.stats.nfe < a.stats.nfe);
    let exact = lin.exact(5.0, &y0);
    assert!(max_abs_diff(&loose.y[..2], &exact[..2]) < 1e-6);
}

#[test]
fn output_times_are_accurate_and_do_not_change_steps() {
    let lin = oscillator();
    let y0 = [1.0, 0.0, 1.0];
    let ts: Vec<f64> = (0..=40).map(|i| f64::from(i) * 0.25).collect();
    for m in adaptive() {
        let s = Solver::new(m.tableau()).rtol(1e-9).atol(1e-9);
        let plain = s.solve_system(&mut lin.rhs(), 0.0, 10.0, &y0).unwrap();
        let with = s
            .clone()
            .output_times(ts.clone())
            .solve_system(&mut lin.rhs(), 0.0, 10.0, &y0)
            .unwrap();
        let name = m.tableau().name;
        assert_eq!(plain.y, with.y, "{name}");
        assert_eq!(plain.stats.accepted, with.stats.accepted, "{name}");
        assert_eq!(plain.stats.rejected, with.stats.rejected, "{name}");
        let tab = m.tableau();
        if tab.dense.extra.is_empty() {
            assert_eq!(plain.stats.nfe, with.stats.nfe, "{name}");
        } else {
            // Extra stages only in steps holding an output time (at most one per time).
            let extra = with.stats.nfe - plain.stats.nfe;
            assert!(
                extra > 0 && extra <= tab.dense.extra.len() * ts.len(),
                "{name}"
            );
        }
        for (t, y) in ts.iter().zip(&with.y_out) {
            let e = max_abs_diff(y, &lin.exact(*t, &y0));
            assert!(e < 1e-7, "{name} at {t}: {e:e}");
        }
    }
}

#[test]
fn last_step_lands_exactly_on_t_end() {
    for m in adaptive() {
        let mut last_t = f64::NAN;
        let mut observer = |s: &AcceptedStep<'_, f64, [f64; 4]>| last_t = s.t;
        let t_end = KEPLER.t_end;
        let sol = Solver::new(m.tableau())
            .rtol(1e-6)
            .atol(1e-6)
            .solve_system_observed(&mut { KEPLER.rhs }, 0.0, t_end, &KEPLER.y0, &mut observer)
            .unwrap();
        assert_eq!(sol.t.to_bits(), t_end.to_bits());
        assert_eq!(last_t.to_bits(), t_end.to_bits(), "{}", m.tableau().name);
    }
}

#[test]
fn fixed_steps_take_exactly_n_steps() {
    let mut count = 0;
    let mut last_t = f64::NAN;
    let mut observer = |s: &AcceptedStep<'_, f64, [f64; 3]>| {
        count += 1;
        last_t = s.t;
    };
    let sol = Solver::new(Rk4)
        .fixed_steps(49)
        .solve_system_observed(&mut lorenz_rhs, 0.0, 1.0, &LORENZ.y0, &mut observer)
        .unwrap();
    assert_eq!(count, 49);
    assert_eq!(last_t, 1.0);
    assert_eq!(
        sol.stats,
        Stats {
            nfe: 4 * 49,
            accepted: 49,
            rejected: 0,
            ..Stats::default()
        }
    );
}

/// docs/ode.md: fixed-step RK4 on Lorenz (100000 steps to t = 1) ends at the state of a
/// hand-written RK4 loop (no solver) "to 5.1e-13": only the rounding of the stage sums differs.
#[test]
fn fixed_rk4_matches_a_hand_written_loop() {
    let n = 100_000;
    let hand = cnf_testkit::problems::lorenz_rk4_by_hand(LORENZ.y0, 1.0, n);
    let ours = Solver::new(Rk4)
        .fixed_steps(n)
        .solve_system(&mut lorenz_rhs, 0.0, 1.0, &LORENZ.y0)
        .unwrap();
    let d = max_abs_diff(&ours.y, &hand);
    println!("|ours - hand| = {d:.1e}");
    assert!(d < 1e-12, "{d:e}");
}
