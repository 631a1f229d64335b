//! The engine for small `Copy` states ([`Solver::solve_small`]) against the general one: the same
//! arithmetic in the same order, so the same accepted and rejected steps and the same results,
//! bit for bit, on the benchmark problems; and RK4 converges at order 4 through it.
use cnf_ode::{
    Bs3, Dop853, Dopri5, ErrorNorm, Euler, Heun, Midpoint, Rk4, RkMethod, SampleLayout, Solver,
    Tableau, Tsit5,
};
use cnf_testkit::problems::{lorenz_rhs, Problem, ARENSTORF, KEPLER, LORENZ};
use nalgebra::SVector;

fn same_as_general<M: RkMethod + Copy, const N: usize>(p: &Problem<N>, m: M, tol: f64) {
    let t_out = vec![0.3 * p.t_end, 0.7 * p.t_end];
    for (typed, general) in [
        (
            Solver::new(m).rtol(tol).atol(tol),
            Solver::new(m).rtol(tol).atol(tol),
        ),
        (
            Solver::new(m)
                .rtol(tol)
                .atol(tol)
                .output_times(t_out.clone())
                .dense(true),
            Solver::new(m)
                .rtol(tol)
                .atol(tol)
                .output_times(t_out.clone())
                .dense(true),
        ),
    ] {
        let small = typed
            .solve_small(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let gen = general
            .solve_system(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let name = m.tableau().name;
        assert_eq!(small.stats, gen.stats, "{} {name} {tol}", p.name);
        assert_eq!(small.y, gen.y, "{} {name} {tol}", p.name);
        assert_eq!(small.y_out, gen.y_out, "{} {name} {tol}", p.name);
        if small.t_out.is_empty() {
            continue;
        }
        let t = 0.55 * p.t_end;
        assert_eq!(small.interpolate(t), gen.interpolate(t));
        // A tableau chosen at run time takes the same path without the constant tableau.
        let dynamic = Solver::new(m.tableau()).rtol(tol).atol(tol);
        let dy = dynamic
            .solve_small(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        assert_eq!(dy.y, gen.y);
    }
}

#[test]
fn adaptive_methods_take_the_same_steps_as_the_general_engine() {
    for tol in [1e-3, 1e-6, 1e-10] {
        for p in [&ARENSTORF, &KEPLER] {
            same_as_general(p, Dopri5, tol);
            same_as_general(p, Tsit5, tol);
            same_as_general(p, Dop853, tol);
            same_as_general(p, Bs3, tol);
        }
        same_as_general(&LORENZ, Dopri5, tol);
        same_as_general(&LORENZ, Tsit5, tol);
        same_as_general(&LORENZ, Dop853, tol);
        same_as_general(&LORENZ, Bs3, tol);
    }
}

#[test]
fn fixed_step_methods_match_the_general_engine() {
    fn check<M: RkMethod + Copy>(m: M) {
        let s = Solver::new(m).fixed_steps(1000);
        let small = s
            .solve_small(&mut lorenz_rhs, 0.0, 1.0, &[1.0, 1.0, 1.0])
            .unwrap();
        let gen = s
            .solve_system(&mut lorenz_rhs, 0.0, 1.0, &[1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(small.y, gen.y, "{}", m.tableau().name);
        assert_eq!(small.stats, gen.stats);
    }
    check(Euler);
    check(Midpoint);
    check(Heun);
    check(Rk4);
}

#[test]
fn svector_states_and_error_settings_take_the_same_path() {
    let rhs = |_t: f64, y: &SVector<f64, 3>, dy: &mut SVector<f64, 3>| {
        let (a, b) = (y.as_slice().try_into().unwrap(), dy.as_mut_slice());
        lorenz_rhs(0.0, a, b.try_into().unwrap());
    };
    let y0 = SVector::<f64, 3>::new(1.0, 1.0, 1.0);
    let settings: [Solver<Dopri5, f64>; 3] = [
        Solver::new(Dopri5).rtol(1e-7).atol(1e-9),
        Solver::new(Dopri5)
            .rtol(vec![1e-7, 1e-6, 1e-8])
            .atol(1e-9)
            .error_components(0..2),
        Solver::new(Dopri5)
            .rtol(1e-7)
            .atol(1e-9)
            .error_norm(ErrorNorm::PerSample(
                SampleLayout::rows(1, 2).then_shared(1),
            )),
    ];
    for s in settings {
        let small = s.solve_small(&mut { rhs }, 0.0, 2.0, &y0).unwrap();
        let gen = s.solve_system(&mut { rhs }, 0.0, 2.0, &y0).unwrap();
        assert_eq!(small.y, gen.y);
        assert_eq!(small.stats, gen.stats);
    }
}

/// y' = A y with A a rotation plus decay: RK4's error at t = 1 falls as h^4.
#[test]
fn rk4_converges_at_order_four_on_the_small_path() {
    let mut rhs = |_t: f64, y: &[f64; 2], dy: &mut [f64; 2]| {
        *dy = [-0.5 * y[0] + 2.0 * y[1], -2.0 * y[0] - 0.5 * y[1]];
    };
    let exact = {
        let e = (-0.5f64).exp();
        [e * 2f64.cos(), -e * 2f64.sin()]
    };
    let mut err = |n: usize| {
        let y = Solver::new(Rk4)
            .fixed_steps(n)
            .solve_small(&mut rhs, 0.0, 1.0, &[1.0, 0.0])
            .unwrap()
            .y;
        (0..2).map(|i| (y[i] - exact[i]).abs()).fold(0.0, f64::max)
    };
    let errs: Vec<f64> = [10, 20, 40, 80].iter().map(|&n| err(n)).collect();
    for w in errs.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(
            (order - 4.0).abs() < 0.15,
            "observed order {order}: {errs:?}"
        );
    }
}

#[test]
fn every_built_in_method_fits_the_stage_array() {
    let all: [&'static Tableau; 8] = [
        Euler.tableau(),
        Midpoint.tableau(),
        Heun.tableau(),
        Rk4.tableau(),
        Bs3.tableau(),
        Dopri5.tableau(),
        Tsit5.tableau(),
        Dop853.tableau(),
    ];
    // DOP853 with dense output uses the most stage buffers; solve_small runs it (checked
    // above with output times), so the stage array is large enough for all of them.
    let most = all
        .iter()
        .map(|t| t.dense_stages().max(t.end_stage() + 1))
        .max()
        .unwrap();
    assert!(most <= 16, "{most}");
}

/// Events on the array engine: the same roots, states and steps as the general engine, bit for
/// bit (the same interpolant arithmetic), for the method as a type and chosen at run time; and
/// the bounces of a ball (restitution 0.9, dropped from 1 m) at their closed-form times.
#[test]
fn events_on_the_small_path_match_the_general_engine() {
    const G: f64 = 9.81;
    const E: f64 = 0.9;
    let n = 20;
    // Impacts going down, each reflecting the speed with restitution E, until the n-th.
    let impacts = || {
        vec![cnf_ode::Event::new(|_t, y: &[f64]| y[0])
            .direction(cnf_ode::Direction::Down)
            .terminal(n)
            .action(|_t, y: &mut [f64; 2]| y[1] *= -E)]
    };
    let ball = |_t: f64, y: &[f64; 2], dy: &mut [f64; 2]| *dy = [y[1], -G];
    let typed = Solver::new(Dopri5).rtol(1e-10).atol(1e-12).max_step(0.05);
    let dynamic = Solver::new(cnf_ode::Method::Dopri5)
        .rtol(1e-10)
        .atol(1e-12)
        .max_step(0.05);
    let y0 = [1.0, 0.0];
    let small = typed
        .solve_small_with_events(&mut { ball }, 0.0, 100.0, &y0, impacts(), &mut ())
        .unwrap();
    let small_dyn = dynamic
        .solve_small_with_events(&mut { ball }, 0.0, 100.0, &y0, impacts(), &mut ())
        .unwrap();
    let general = typed
        .solve_system_with_events(&mut { ball }, 0.0, 100.0, &y0, impacts(), &mut ())
        .unwrap();
    assert_eq!(small.events.len(), n);
    for other in [&small_dyn, &general] {
        assert_eq!(small.stats, other.stats);
        assert_eq!(small.stop, other.stop);
        let key = |s: &cnf_ode::Solution<f64, [f64; 2]>| {
            s.events.iter().map(|e| (e.t, e.y)).collect::<Vec<_>>()
        };
        assert_eq!(key(&small), key(other));
    }
    // Impact k + 1 follows impact k after a flight of 2 E^k v_1 / G (v_1 = sqrt(2 G)).
    let v1 = (2.0 * G).sqrt();
    let mut t = v1 / G;
    for (k, e) in small.events.iter().enumerate() {
        assert!((e.t - t).abs() < 1e-8, "impact {k}: {} vs {t}", e.t);
        t += 2.0 * E.powi(k as i32 + 1) * v1 / G;
    }
}
