//! Events: zeros of g(t, y) located on the continuous extension of the accepted steps, checked
//! against closed forms.
use std::f64::consts::PI;

use cnf_ode::{
    AcceptedStep, Bs3, Direction, Dop853, Dopri5, Event, Method, Observer, OdeError, Rk4, Solver,
    StopReason, Tsit5, SIGN_CHECKS,
};
use proptest::prelude::*;

const EPS: f64 = f64::EPSILON;

/// y' = 1: the solution is y0 + t - t0 for every method, and every continuous extension
/// reproduces it (up to rounding), so the roots of g(y) are known exactly.
fn unit_speed(_t: f64, _y: &[f64], dy: &mut [f64]) {
    dy[0] = 1.0;
}

/// The harmonic oscillator from (0, 1): y0 = sin t, y1 = cos t.
fn oscillator(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = y[1];
    dy[1] = -y[0];
}

/// How far a method's coefficients, as stored, are from reproducing polynomials of degree 2
/// exactly: max over theta of |sum_j w_j(theta) - theta| + |sum_j w_j(theta) c_j - theta^2 / 2|
/// of the continuous extension, plus |sum_j b_j - 1|. The coefficients are decimals rounded to
/// about 16 digits: ~3e-16 for Dopri5 and Bs3, ~1e-14 for Tsit5, ~6e-15 for DOP853. A linear
/// or quadratic solution is reproduced up to this times the step's scale (plus rounding).
fn polynomial_defect(method: Method) -> f64 {
    let tab = method.tableau().expect("an explicit method");
    let n = tab.dense_stages();
    // Nodes of the dense vectors: the main stages, the end derivative, the extra stages.
    let mut c: Vec<f64> = tab.c.to_vec();
    if c.len() < n {
        c.push(1.0);
    }
    c.extend(tab.dense.extra.iter().map(|(ce, _)| *ce));
    c.truncate(n);
    let mut w = vec![0.0; n];
    let mut worst: f64 = 0.0;
    for i in 0..=1000 {
        let theta = f64::from(i) / 1000.0;
        (tab.dense.weights)(theta, &mut w);
        let s1: f64 = w.iter().sum();
        let s2: f64 = w.iter().zip(&c).map(|(w, c)| w * c).sum();
        worst = worst.max((s1 - theta).abs() + (s2 - theta * theta / 2.0).abs());
    }
    worst + (tab.b.iter().sum::<f64>() - 1.0).abs()
}

fn times<S>(sol: &cnf_ode::Solution<f64, S>) -> Vec<f64> {
    sol.events.iter().map(|e| e.t).collect()
}

/// The adaptive methods (BDF through its interpolating polynomial, Radau through its
/// collocation polynomial) and RK4 and Euler with a few
/// fixed steps.
fn methods() -> Vec<(Method, Option<usize>)> {
    vec![
        (Method::Bs3, None),
        (Method::Dopri5, None),
        (Method::Tsit5, None),
        (Method::Dop853, None),
        (Method::Bdf, None),
        (Method::Radau5, None),
        (Method::Rk4, Some(3)),
        (Method::Euler, Some(1)),
    ]
}

fn solver(method: Method, steps: Option<usize>) -> Solver<Method, f64> {
    let s = Solver::new(method).rtol(1e-10).atol(1e-12);
    match steps {
        Some(n) => s.fixed_steps(n),
        None => s,
    }
}

#[test]
fn three_roots_in_one_step_are_all_found() {
    // y' = 0 and g = (t - a)(t - b)(t - c) over one Euler step: the three roots lie in
    // different eighths of the step (the sign checks) and all are found.
    let (a, b, c) = (0.1, 0.45, 0.8);
    let events = vec![Event::new(move |t: f64, _y: &[f64]| {
        (t - a) * (t - b) * (t - c)
    })];
    let sol = Solver::new(cnf_ode::Euler)
        .fixed_steps(1)
        .solve_with_events(|_t, _y, dy| dy[0] = 0.0, 0.0, 1.0, &vec![0.0], events)
        .unwrap();
    assert_eq!(sol.stats.accepted, 1);
    let got = times(&sol);
    assert_eq!(got.len(), 3, "{got:?}");
    for (t, root) in got.iter().zip([a, b, c]) {
        // The bracket's tolerance is 4 ulps of t; the cubic's rounding near a simple root adds
        // about one.
        assert!((t - root).abs() <= 8.0 * EPS * root, "{t} vs {root}");
    }
    // The same cubic in y = t, through every method's interpolant.
    for (method, steps) in methods() {
        let events = vec![Event::new(move |_t, y: &[f64]| {
            (y[0] - a) * (y[0] - b) * (y[0] - c)
        })];
        let sol = solver(method, steps)
            .max_step(1.0)
            .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
            .unwrap();
        let got = times(&sol);
        assert_eq!(got.len(), 3, "{method:?}: {got:?}");
        for (t, root) in got.iter().zip([a, b, c]) {
            assert!((t - root).abs() <= 8.0 * EPS, "{method:?}: {t} vs {root}");
        }
        assert_eq!(sol.stop, StopReason::End);
        assert_eq!(sol.t, 1.0);
    }
}

#[test]
fn two_crossings_in_one_step_are_both_found() {
    // y = t over one Dopri5 step of 0.9 and g = cos(pi y / 0.4): zeros at 0.2 (down) and 0.6
    // (up), one sign check apart, while g has the same sign at both ends of the step.
    let events = vec![Event::new(|_t, y: &[f64]| (PI * y[0] / 0.4).cos())];
    let sol = Solver::new(Dopri5)
        .fixed_steps(1)
        .solve_with_events(unit_speed, 0.0, 0.9, &vec![0.0], events)
        .unwrap();
    let got = times(&sol);
    assert_eq!(got.len(), 2, "{got:?}");
    for (t, root) in got.iter().zip([0.2, 0.6]) {
        assert!((t - root).abs() < 1e-14, "{t} vs {root}");
    }
}

#[test]
fn direction_filters_the_crossings() {
    // sin t on [0, 13]: down through zero at pi and 3 pi, up at 2 pi and 4 pi; zero at t0 is no
    // event.
    let cases = [
        (Direction::Up, vec![2.0 * PI, 4.0 * PI]),
        (Direction::Down, vec![PI, 3.0 * PI]),
        (Direction::Both, vec![PI, 2.0 * PI, 3.0 * PI, 4.0 * PI]),
    ];
    for (method, steps) in methods() {
        let steps = steps.map(|n| n * 400);
        for (direction, want) in &cases {
            let events = vec![Event::new(|_t, y: &[f64]| y[0]).direction(*direction)];
            let sol = solver(method, steps)
                .solve_with_events(oscillator, 0.0, 13.0, &vec![0.0, 1.0], events)
                .unwrap();
            let got = times(&sol);
            assert_eq!(got.len(), want.len(), "{method:?} {direction:?}: {got:?}");
            // Euler with 400 steps is far from sin t: only the count is checked there.
            let tol = if method == Method::Euler {
                f64::INFINITY
            } else {
                1e-7
            };
            for (t, w) in got.iter().zip(want) {
                assert!((t - w).abs() < tol, "{method:?} {direction:?}: {t} vs {w}");
            }
            for e in &sol.events {
                assert_eq!(e.fired, vec![0]);
            }
        }
    }
}

#[test]
fn terminal_stops_at_the_nth_crossing() {
    let events = vec![Event::new(|_t, y: &[f64]| y[0]).terminal(3)];
    let sol = Solver::new(Dopri5)
        .rtol(1e-10)
        .atol(1e-12)
        .output_times(vec![1.0, 9.0, 9.5, 12.0])
        .solve_with_events(oscillator, 0.0, 13.0, &vec![0.0, 1.0], events)
        .unwrap();
    assert_eq!(sol.stop, StopReason::TerminalEvent);
    assert_eq!(times(&sol).len(), 3);
    assert!((sol.t - 3.0 * PI).abs() < 1e-8, "{}", sol.t);
    assert_eq!(sol.t, sol.events[2].t);
    assert!(sol.y[0].abs() < 1e-8 && (sol.y[1] + 1.0).abs() < 1e-8);
    // Output times after the stop are not reached.
    assert_eq!(sol.t_out, vec![1.0, 9.0]);
    assert_eq!(sol.y_out.len(), 2);
    assert!((sol.y_out[1][0] - 9f64.sin()).abs() < 1e-8);
    // Only crossings that count are counted: down crossings, stop at the second (3 pi).
    let events = vec![Event::new(|_t, y: &[f64]| y[0])
        .direction(Direction::Down)
        .terminal(2)];
    let sol = Solver::new(Tsit5)
        .rtol(1e-10)
        .atol(1e-12)
        .solve_with_events(oscillator, 0.0, 13.0, &vec![0.0, 1.0], events)
        .unwrap();
    assert_eq!(times(&sol).len(), 2);
    assert!((sol.t - 3.0 * PI).abs() < 1e-8);
}

/// The bouncing ball: height x, velocity v, gravity G, dropped from H at rest; at each impact
/// v -> -E v.
const G: f64 = 9.81;
const H: f64 = 1.0;
const E: f64 = 0.9;
/// The ball's largest step: it bounds the interpolant's reach in the error bound below.
const H_MAX: f64 = 0.05;

/// Closed-form impact times: t_1 = sqrt(2 H / G), impact speed v_1 = G t_1; after impact k
/// the ball leaves at E^k v_1 and flies 2 E^k v_1 / G.
fn bounce_times(n: usize) -> Vec<f64> {
    let t1 = (2.0 * H / G).sqrt();
    let v1 = G * t1;
    let mut t = vec![t1];
    for k in 1..n {
        t.push(t[k - 1] + 2.0 * E.powi(k as i32) * v1 / G);
    }
    t
}

/// Every right-hand-side call of a ball's solve: (t, height, velocity).
type Calls = Vec<(f64, f64, f64)>;

/// The ball dropped from H, `n` impacts (terminal), with `method` at rtol 1e-10 / atol 1e-12
/// scaled by `tol_scale`, steps at most H_MAX.
fn bounce(method: Method, n: usize, tol_scale: f64) -> (cnf_ode::Solution<f64, Vec<f64>>, Calls) {
    let mut calls = Vec::new();
    let mut ball = |t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| {
        calls.push((t, y[0], y[1]));
        dy[0] = y[1];
        dy[1] = -G;
    };
    let events = vec![Event::new(|_t, y: &[f64]| y[0])
        .direction(Direction::Down)
        .terminal(n)
        .action(|_t, y: &mut Vec<f64>| y[1] *= -E)];
    let sol = Solver::new(method)
        .rtol(1e-10 * tol_scale)
        .atol(1e-12 * tol_scale)
        .max_step(H_MAX)
        .solve_system_with_events(&mut ball, 0.0, 100.0, &vec![H, 0.0], events, &mut ())
        .unwrap();
    assert_eq!(sol.stop, StopReason::TerminalEvent);
    assert_eq!(times(&sol).len(), n, "{method:?}");
    (sol, calls)
}

/// Each flight starts fresh: the first evaluation after an impact is at the impact time and the
/// reflected state (no derivative or history carried over from before the action).
fn assert_restarts(method: Method, sol: &cnf_ode::Solution<f64, Vec<f64>>, calls: &Calls) {
    for (k, e) in sol.events.iter().enumerate().take(sol.events.len() - 1) {
        let after = calls
            .iter()
            .position(|c| c.0 == e.t && c.2 > 0.0)
            .unwrap_or_else(|| panic!("{method:?}: no fresh evaluation after impact {k}"));
        assert_eq!(calls[after].2, -E * e.y[1]);
    }
}

#[test]
fn bouncing_ball_matches_its_closed_form_over_100_bounces() {
    let n = 100;
    let want = bounce_times(n);
    for method in [Method::Dopri5, Method::Tsit5, Method::Bs3, Method::Dop853] {
        let (sol, calls) = bounce(method, n, 1.0);
        let got = times(&sol);
        // Each flight is a parabola, which every method and its continuous extension (order
        // >= 2) reproduce up to rounding and the defect of their stored coefficients
        // (`polynomial_defect`). Impact k arriving at speed v_k = E^k v_1 is then located
        // within eps_k = 4 ulps of t_k (the bracket) + (defect + 4 eps)(h v_k + G h^2) / v_k
        // (the interpolated height's error over the speed, h <= H_MAX) + 4 eps v_k / G (the
        // height's rounding near the floor). An error eps_k shifts the impact state by v_k
        // eps_k in height and G eps_k in speed, so the outgoing speed is off by at most
        // (E + 1/E) G eps_k; that speed error shrinks by E per impact, and the later flight
        // times (2 v / G each) move by at most 2 (E + 1/E) / (1 - E) eps_k in all. So impact K
        // is within CARRY * sum_{k <= K} eps_k, CARRY = 1 + 2 (E + 1/E) / (1 - E) = 41.2.
        let carry = 1.0 + 2.0 * (E + 1.0 / E) / (1.0 - E);
        let defect = polynomial_defect(method);
        let v1 = G * want[0];
        let (mut sum, mut worst, mut worst_ratio) = (0.0, 0.0f64, 0.0f64);
        for (k, (t, w)) in got.iter().zip(&want).enumerate() {
            let v_k = E.powi(k as i32) * v1;
            sum += 4.0 * EPS * w
                + (defect + 4.0 * EPS) * (H_MAX + G * H_MAX * H_MAX / v_k)
                + 4.0 * EPS * v_k / G;
            let bound = carry * sum;
            let err = (t - w).abs();
            assert!(
                err <= bound,
                "{method:?} impact {k}: {t} vs {w} ({err:.1e} > {bound:.1e})"
            );
            worst = worst.max(err);
            worst_ratio = worst_ratio.max(err / bound);
        }
        println!(
            "{method:?}: worst impact-time error over {n} bounces {worst:.2e} \
             (at most {worst_ratio:.2} of the bound)"
        );
        assert_restarts(method, &sol, &calls);
        // The state at each impact is on the floor, and its velocity the closed form's.
        for (k, e) in sol.events.iter().enumerate() {
            assert!(
                e.y[0].abs() < 1e-12,
                "{method:?}: height {} at impact {k}",
                e.y[0]
            );
            assert!((e.y[1] + E.powi(k as i32) * v1).abs() < 1e-9);
        }
    }
}

/// The ball through Radau: each impact's action restarts it (no extrapolated start, Jacobian or
/// step-size memory from the old state), every impact is found, and since the collocation
/// polynomial is exact on a parabola, the impact times are the closed form's up to rounding
/// and the Newton iteration's tolerance, carried over 100 flights.
#[test]
fn bouncing_ball_through_radau_matches_its_closed_form() {
    let n = 100;
    let (sol, calls) = bounce(Method::Radau5, n, 1.0);
    assert_restarts(Method::Radau5, &sol, &calls);
    let worst = times(&sol)
        .iter()
        .zip(&bounce_times(n))
        .map(|(t, w)| (t - w).abs())
        .fold(0.0f64, f64::max);
    println!("Radau: worst impact-time error over {n} bounces {worst:.2e}");
    assert!(worst < 1e-11, "{worst:e}");
}

/// The ball through BDF. Each impact restarts it at order 1 (its history is dropped with the
/// old state), and order 1 does not reproduce a parabola, so a flight's error is the
/// tolerance's, not rounding: 100 impacts at rtol 1e-10, each found, and the method restarting
/// from the reflected state (the worst impact-time error is printed: the last flights, 1e-5 s
/// long, carry the earlier ones' errors); and the impact times converge to the closed form as the tolerance
/// shrinks (1000 times tighter: at least 10 times closer; an error per step of order rtol gives
/// rtol^(k/(k+1)) for order k), over the first 30 impacts, whose flights (at least 0.04 m high)
/// stay far above the looser solve's absolute tolerance.
#[test]
fn bouncing_ball_through_bdf_converges_to_its_closed_form() {
    let worst = |n: usize, tol_scale: f64| {
        let (sol, calls) = bounce(Method::Bdf, n, tol_scale);
        assert_restarts(Method::Bdf, &sol, &calls);
        times(&sol)
            .iter()
            .zip(&bounce_times(n))
            .map(|(t, w)| (t - w).abs())
            .fold(0.0f64, f64::max)
    };
    let all = worst(100, 1.0);
    let (loose, tight) = (worst(30, 1e3), worst(30, 1.0));
    println!(
        "BDF: worst impact-time error over 100 bounces {all:.2e} at rtol 1e-10; over 30: \
         {loose:.2e} at rtol 1e-7, {tight:.2e} at 1e-10"
    );
    assert!(tight * 10.0 < loose, "{loose:e} -> {tight:e}");
}

#[test]
fn roots_at_t0_and_at_a_step_end_are_reported_once() {
    // y = t with Euler steps of 0.25: g0 = y is zero at t0 (no event), g1 = y - 0.5 is zero
    // exactly at the end of the second step, g2 = y - 0.5625 exactly at the second interior
    // sign check of the third step (0.5 + 0.25 * 2 / 8). Each is reported once.
    for direction in [Direction::Both, Direction::Up] {
        let events = vec![
            Event::new(|_t, y: &[f64]| y[0]).direction(direction),
            Event::new(|_t, y: &[f64]| y[0] - 0.5).direction(direction),
            Event::new(|_t, y: &[f64]| y[0] - 0.5625).direction(direction),
        ];
        let sol = Solver::new(Method::Euler)
            .fixed_steps(4)
            .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
            .unwrap();
        let fired: Vec<(f64, Vec<usize>)> =
            sol.events.iter().map(|e| (e.t, e.fired.clone())).collect();
        assert_eq!(
            fired,
            vec![(0.5, vec![1]), (0.5625, vec![2])],
            "{direction:?}"
        );
    }
    // A zero at t0 that is later crossed for real: sin t is zero at 0 and crosses at pi.
    let events = vec![Event::new(|_t, y: &[f64]| y[0])];
    let sol = Solver::new(Dopri5)
        .rtol(1e-10)
        .atol(1e-12)
        .solve_with_events(oscillator, 0.0, 4.0, &vec![0.0, 1.0], events)
        .unwrap();
    assert_eq!(times(&sol).len(), 1);
    assert!((sol.events[0].t - PI).abs() < 1e-8);
    // An event with an action exactly at a step end: the step is not cut short, the method
    // restarts there, and the next step does not see the root again.
    let events =
        vec![Event::new(|_t, y: &[f64]| y[0] - 0.5).action(|_t, y: &mut Vec<f64>| y[0] += 0.0)];
    let sol = Solver::new(Method::Euler)
        .fixed_steps(4)
        .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
        .unwrap();
    assert_eq!(times(&sol), vec![0.5]);
    assert_eq!(sol.stats.accepted, 4);
    // ... and exactly at the end of the span, adaptive: the solve ends there, once.
    for terminal in [false, true] {
        // In t: the last step lands exactly on t1 = 0.5 (y there carries Dopri5's rounding).
        let mut event =
            Event::new(|t, _y: &[f64]| t - 0.5).action(|_t, y: &mut Vec<f64>| y[0] = 2.0);
        if terminal {
            event = event.terminal(1);
        }
        let sol = Solver::new(Dopri5)
            .solve_with_events(unit_speed, 0.0, 0.5, &vec![0.0], vec![event])
            .unwrap();
        assert_eq!(times(&sol), vec![0.5]);
        assert_eq!((sol.t, sol.y[0]), (0.5, 2.0));
        let stop = if terminal {
            StopReason::TerminalEvent
        } else {
            StopReason::End
        };
        assert_eq!(sol.stop, stop);
    }
}

#[test]
fn simultaneous_crossings_are_reported_together() {
    // g0 = y - 0.3 and g1 = t - 0.3 with y = t cross at the same time; g2 = 2 (0.3 - y) too,
    // in the other direction; g3 = y - 0.7 later on its own.
    let events = vec![
        Event::new(|_t, y: &[f64]| y[0] - 0.3),
        Event::new(|t, _y: &[f64]| t - 0.3),
        Event::new(|_t, y: &[f64]| 2.0 * (0.3 - y[0])),
        Event::new(|_t, y: &[f64]| y[0] - 0.7),
    ];
    let sol = Solver::new(Dopri5)
        .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
        .unwrap();
    assert_eq!(sol.events.len(), 2);
    assert_eq!(sol.events[0].fired, vec![0, 1, 2]);
    assert!((sol.events[0].t - 0.3).abs() <= 4.0 * EPS);
    assert_eq!(sol.events[1].fired, vec![3]);
}

#[test]
fn event_times_converge_to_the_closed_form() {
    // y' = -y from 1: y = 1/2 at ln 2, for each adaptive method at three tolerances.
    for method in [
        Method::Bs3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Dop853,
        Method::Bdf,
        Method::Radau5,
    ] {
        let mut errors = Vec::new();
        for tol in [1e-4, 1e-7, 1e-10] {
            let events = vec![Event::new(|_t, y: &[f64]| y[0] - 0.5)];
            let sol = Solver::new(method)
                .rtol(tol)
                .atol(tol)
                .solve_with_events(|_t, y, dy| dy[0] = -y[0], 0.0, 3.0, &vec![1.0], events)
                .unwrap();
            let err = (sol.events[0].t - 2f64.ln()).abs();
            // The root's error is the solution's error there over |y'| = 1/2: a few times tol.
            assert!(err < 20.0 * tol, "{method:?} tol {tol}: error {err:.2e}");
            errors.push(err);
        }
        println!(
            "{method:?}: event time errors at 1e-4, 1e-7, 1e-10: {:.2e} {:.2e} {:.2e}",
            errors[0], errors[1], errors[2]
        );
    }
}

#[test]
fn integrating_backwards_finds_the_same_roots() {
    // sin t from 13 back to 0 (y0 = [sin 13, cos 13]): roots 4 pi, 3 pi, 2 pi, pi in that
    // order.
    let y0 = vec![13f64.sin(), 13f64.cos()];
    let events = vec![Event::new(|_t, y: &[f64]| y[0])];
    let sol = Solver::new(Dopri5)
        .rtol(1e-10)
        .atol(1e-12)
        .solve_with_events(oscillator, 13.0, 0.0, &y0, events)
        .unwrap();
    let got = times(&sol);
    let want = [4.0 * PI, 3.0 * PI, 2.0 * PI, PI];
    // t = 0 is the end: sin 0 computed is a few 1e-11 off zero, so it may or may not count.
    assert!(got.len() == 4 || got.len() == 5, "{got:?}");
    for (t, w) in got.iter().zip(want) {
        assert!((t - w).abs() < 1e-8, "{t} vs {w}");
    }
}

#[test]
fn events_that_only_record_change_no_step() {
    let base = Solver::new(Dopri5).rtol(1e-8).atol(1e-10);
    let plain = base.solve(oscillator, 0.0, 20.0, &vec![0.0, 1.0]).unwrap();
    let none = base
        .solve_with_events(oscillator, 0.0, 20.0, &vec![0.0, 1.0], Vec::new())
        .unwrap();
    let with = base
        .solve_with_events(
            oscillator,
            0.0,
            20.0,
            &vec![0.0, 1.0],
            vec![
                Event::new(|_t, y: &[f64]| y[0]),
                Event::new(|_t, y: &[f64]| y[1]),
            ],
        )
        .unwrap();
    for sol in [&none, &with] {
        assert_eq!(sol.y, plain.y);
        assert_eq!(sol.stats, plain.stats);
        assert_eq!(sol.stop, StopReason::End);
    }
    assert!(plain.events.is_empty() && none.events.is_empty());
    // 20 / (pi / 2) = 12.7: 12 zeros of sin or cos.
    assert_eq!(with.events.len(), 12);
}

#[test]
fn an_action_cuts_the_step_and_dense_output_follows_the_new_state() {
    // y' = 1 from 0; at y = 0.5 the state jumps back to 0: y = t - 0.5 afterwards, and at t = 1
    // y = 0.5 crosses again.
    let events = vec![Event::new(|_t, y: &[f64]| y[0] - 0.5)
        .direction(Direction::Up)
        .action(|_t, y: &mut Vec<f64>| y[0] = 0.0)];
    let sol = Solver::new(Dopri5)
        .dense(true)
        .output_times(vec![0.25, 0.75])
        .solve_with_events(unit_speed, 0.0, 1.2, &vec![0.0], events)
        .unwrap();
    assert_eq!(times(&sol).len(), 2);
    assert!((sol.events[0].t - 0.5).abs() <= 4.0 * EPS);
    assert!((sol.events[1].t - 1.0).abs() <= 8.0 * EPS);
    assert!((sol.y[0] - 0.2).abs() < 1e-14, "{:?}", sol.y);
    assert!((sol.y_out[0][0] - 0.25).abs() < 1e-14);
    assert!((sol.y_out[1][0] - 0.25).abs() < 1e-14);
    assert!((sol.interpolate(0.4).unwrap()[0] - 0.4).abs() < 1e-14);
    assert!((sol.interpolate(0.9).unwrap()[0] - 0.4).abs() < 1e-14);
    assert!((sol.interpolate(1.1).unwrap()[0] - 0.1).abs() < 1e-14);
    // At the event time itself: the state before the action, as the record has it.
    assert_eq!(
        sol.interpolate(sol.events[0].t),
        Some(sol.events[0].y.clone())
    );
}

#[test]
fn bad_event_input_is_a_typed_error() {
    // The error of a Dopri5 solve of y' = 1 from y(0) = 0 to t = 1 with `events`.
    let fails = |events: Vec<Event<'_, f64, Vec<f64>>>| {
        Solver::new(Dopri5)
            .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
            .unwrap_err()
    };
    // NaN at t0.
    let err = fails(vec![
        Event::new(|_t, _y: &[f64]| 0.0),
        Event::new(|_t, _y: &[f64]| f64::NAN),
    ]);
    assert!(
        matches!(err, OdeError::EventNonFinite { index: 1, t, .. } if t == 0.0),
        "{err}"
    );
    // Infinite later on: the error says where and carries the work done.
    let err = fails(vec![Event::new(|_t, y: &[f64]| {
        1.0 / (0.5 - y[0]).max(0.0) - 1e300
    })]);
    match &err {
        OdeError::EventNonFinite {
            index: 0, t, stats, ..
        } => {
            assert!(*t > 0.0 && *t <= 1.0 && stats.nfe > 0, "{err}");
        }
        other => panic!("{other}"),
    }
    println!("{err}");
    // An action that changes the state's size.
    let err = fails(vec![
        Event::new(|_t, y: &[f64]| y[0] - 0.5).action(|_t, y: &mut Vec<f64>| y.push(1.0))
    ]);
    assert!(
        matches!(
            err,
            OdeError::EventStateSize {
                index: 0,
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    println!("{err}");
    // A terminal count of zero.
    let err = fails(vec![
        Event::new(|_t, y: &[f64]| y[0]),
        Event::new(|_t, y: &[f64]| y[0]).terminal(0),
    ]);
    assert_eq!(
        err.to_string(),
        "events[1].terminal must be at least 1, got 0"
    );
    // An action that makes the state non-finite.
    let err =
        fails(vec![Event::new(|_t, y: &[f64]| y[0] - 0.5)
            .action(|_t, y: &mut Vec<f64>| y[0] = f64::INFINITY)]);
    assert!(matches!(err, OdeError::NonFinite { .. }), "{err}");
}

/// Stops after `n` accepted steps.
struct StopAfter {
    n: usize,
    seen: usize,
    last_t: f64,
}

impl Observer<f64, Vec<f64>> for StopAfter {
    fn on_step(&mut self, step: &AcceptedStep<'_, f64, Vec<f64>>) {
        self.seen += 1;
        self.last_t = step.t;
    }
    fn stop(&self) -> bool {
        self.seen >= self.n
    }
}

#[test]
fn an_observer_can_stop_a_solve() {
    let mut obs = StopAfter {
        n: 3,
        seen: 0,
        last_t: f64::NAN,
    };
    let sol = Solver::new(Dopri5)
        .rtol(1e-8)
        .solve_observed(oscillator, 0.0, 20.0, &vec![0.0, 1.0], &mut obs)
        .unwrap();
    assert_eq!(sol.stop, StopReason::Observer);
    assert_eq!(sol.stats.accepted, 3);
    assert_eq!(sol.t, obs.last_t);
    assert!(sol.t < 20.0);
    assert!((sol.y[0] - sol.t.sin()).abs() < 1e-7);
    // Fixed steps too.
    let mut obs = StopAfter {
        n: 2,
        seen: 0,
        last_t: f64::NAN,
    };
    let sol = Solver::new(Rk4)
        .fixed_steps(10)
        .solve_observed(oscillator, 0.0, 1.0, &vec![0.0, 1.0], &mut obs)
        .unwrap();
    assert_eq!(
        (sol.stop, sol.stats.accepted, sol.t),
        (StopReason::Observer, 2, 0.2)
    );
}

#[test]
fn sign_checks_are_documented_as_eight() {
    // Two roots of one function closer than an eighth of a step cancel out; a test of the
    // documented limit rather than a wish: roots at 0.30 and 0.32 in one step of 1.
    assert_eq!(SIGN_CHECKS, 8);
    let events = vec![Event::new(|_t, y: &[f64]| (y[0] - 0.30) * (y[0] - 0.32))];
    let sol = Solver::new(Bs3)
        .fixed_steps(1)
        .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
        .unwrap();
    assert!(sol.events.is_empty());
    // Halving the step (two steps) puts a check at 0.3125 between them: both found.
    let events = vec![Event::new(|_t, y: &[f64]| (y[0] - 0.30) * (y[0] - 0.32))];
    let sol = Solver::new(Dop853)
        .fixed_steps(2)
        .solve_with_events(unit_speed, 0.0, 1.0, &vec![0.0], events)
        .unwrap();
    assert_eq!(sol.events.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// y' = a from y0: g = y - c is zero at t* = (c - y0) / a; located to a few ulps of t*
    /// (4 for the bracket, plus the rounding of y near the root over |a|).
    #[test]
    fn linear_roots_are_located_to_a_few_ulps(
        a in prop_oneof![-5.0..-0.2f64, 0.2..5.0f64],
        y0 in -1.0..1.0f64,
        frac in 0.02..0.98f64,
        span in 0.1..20.0f64,
        method in 0usize..4,
    ) {
        let root = frac * span;
        let c = y0 + a * root;
        let exact = (c - y0) / a;
        let (m, steps) = [(Method::Dopri5, None), (Method::Tsit5, None), (Method::Dop853, None),
            (Method::Rk4, Some(7))][method];
        let events = vec![Event::new(move |_t, y: &[f64]| y[0] - c)];
        let sol = solver(m, steps)
            .solve_with_events(move |_t, _y, dy| dy[0] = a, 0.0, span, &vec![y0], events)
            .unwrap();
        prop_assert_eq!(sol.events.len(), 1);
        let t = sol.events[0].t;
        // The bracket (4 ulps), the time arithmetic (2 ulps), y's rounding near the root over
        // |a|, and the coefficients' defect over the span (every stage of y' = a is exactly a,
        // so y is y0 + h a sum_j w_j: off by h a times the defect).
        let bound = 6.0 * EPS * exact + 4.0 * EPS * (y0.abs() + c.abs()) / a.abs()
            + polynomial_defect(m) * span;
        prop_assert!((t - exact).abs() <= bound, "{} vs {}: {:e} > {:e}", t, exact, (t - exact).abs(), bound);
    }
}
