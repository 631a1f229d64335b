//! `Solver::solve_with_gradient` against mathematics: the closed-form sensitivities of a linear
//! system (via the matrix exponential and its Frechet derivative), central finite differences
//! of the discrete solve (Discretise is exact for it), and the seminorm's step counts.
#![allow(clippy::needless_range_loop)] // matrix algebra reads best with indices
use cnf_ode::{
    Bs3, Differentiation, Dop853, Dopri5, Euler, Heun, Midpoint, OdeError, Rk4, RkMethod, Solver,
    Tableau, Tsit5, VjpOut, VjpSystem,
};

/// dy/dt = A y with A = p as an n x n row-major matrix (n^2 parameters).
struct Linear {
    n: usize,
    p: Vec<f64>,
    calls: usize,
}

impl Linear {
    fn new(p: &[f64]) -> Self {
        let n = (p.len() as f64).sqrt().round() as usize;
        assert_eq!(n * n, p.len());
        Self {
            n,
            p: p.to_vec(),
            calls: 0,
        }
    }
}

impl VjpSystem<f64> for Linear {
    fn num_params(&self) -> usize {
        self.p.len()
    }
    fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
        self.calls += 1;
        let n = self.n;
        for i in 0..n {
            dy[i] = (0..n).map(|j| self.p[i * n + j] * y[j]).sum();
        }
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out: VjpOut<'_, f64>) {
        self.rhs(t, y, out.f);
        let n = self.n;
        for i in 0..n {
            for j in 0..n {
                out.a_y[j] += a[i] * self.p[i * n + j];
                out.a_p[i * n + j] += a[i] * y[j];
            }
        }
    }
}

/// A nonlinear, time-dependent system with three parameters:
/// y0' = p0 sin(y1) + p2 t,  y1' = -p1 y0 y1.
struct Nonlinear {
    p: [f64; 3],
}

impl VjpSystem<f64> for Nonlinear {
    fn num_params(&self) -> usize {
        3
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        let p = self.p;
        dy[0] = p[0] * y[1].sin() + p[2] * t;
        dy[1] = -p[1] * y[0] * y[1];
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out: VjpOut<'_, f64>) {
        self.rhs(t, y, out.f);
        let p = self.p;
        out.a_y[0] += -a[1] * p[1] * y[1];
        out.a_y[1] += a[0] * p[0] * y[1].cos() - a[1] * p[1] * y[0];
        out.a_p[0] += a[0] * y[1].sin();
        out.a_p[1] += -a[1] * y[0] * y[1];
        out.a_p[2] += a[0] * t;
    }
}

/// L = 0.5 |y1|^2 + sum_i (i + 1) y1_i: its cotangent depends on y1.
fn loss(y1: &[f64]) -> f64 {
    y1.iter()
        .enumerate()
        .map(|(i, &v)| 0.5 * v * v + (i + 1) as f64 * v)
        .sum()
}

fn loss_cotangent(y1: &[f64], a: &mut [f64]) {
    for (i, (ai, &v)) in a.iter_mut().zip(y1).enumerate() {
        *ai = v + (i + 1) as f64;
    }
}

fn all_methods() -> Vec<&'static Tableau> {
    vec![
        Euler.tableau(),
        Midpoint.tableau(),
        Heun.tableau(),
        Rk4.tableau(),
        Bs3.tableau(),
        Dopri5.tableau(),
        Tsit5.tableau(),
        Dop853.tableau(),
    ]
}

/// Largest |a - b| / max(|b|, floor) over components.
fn worst_rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
        .fold(0.0, f64::max)
}

/// Central differences of `f` at `x` in every component.
fn fd(x: &[f64], eps: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut xp = x.to_vec();
            xp[i] += eps;
            let mut xm = x.to_vec();
            xm[i] -= eps;
            (f(&xp) - f(&xm)) / (2.0 * eps)
        })
        .collect()
}

// ---- the matrix exponential and its Frechet derivative ------------------------------------

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

/// exp(M) by scaling and squaring with a 30-term Taylor series (norms here are O(1)).
fn expm(m: &[f64], n: usize) -> Vec<f64> {
    let norm: f64 = m.iter().map(|v| v.abs()).sum();
    let squarings = (norm.max(1.0).log2().ceil() as i32 + 4).max(0);
    let scale = 0.5f64.powi(squarings);
    let ms: Vec<f64> = m.iter().map(|v| v * scale).collect();
    let mut result = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        result[i * n + i] = 1.0;
        term[i * n + i] = 1.0;
    }
    for k in 1..30 {
        term = matmul(&term, &ms, n);
        for v in term.iter_mut() {
            *v /= k as f64;
        }
        for (r, t) in result.iter_mut().zip(&term) {
            *r += t;
        }
    }
    for _ in 0..squarings {
        result = matmul(&result, &result, n);
    }
    result
}

/// Closed-form (y1, dL/dy0, dL/dA) of y1 = exp(A) y0 and `loss`: dL/dy0 = exp(A)^T g and
/// dL/dA_ij = g^T L(A, E_ij) y0 with g = dL/dy1 and the Frechet derivative L(A, E) the upper
/// right block of exp([[A, E], [0, A]]).
fn closed_form(p: &[f64], y0: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = y0.len();
    let e = expm(p, n);
    let y1: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| e[i * n + j] * y0[j]).sum())
        .collect();
    let mut g = vec![0.0; n];
    loss_cotangent(&y1, &mut g);
    let gy0: Vec<f64> = (0..n)
        .map(|j| (0..n).map(|i| e[i * n + j] * g[i]).sum())
        .collect();
    let m = 2 * n;
    let mut gp = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let mut big = vec![0.0; m * m];
            for i in 0..n {
                for j in 0..n {
                    big[i * m + j] = p[i * n + j];
                    big[(n + i) * m + n + j] = p[i * n + j];
                }
            }
            big[a * m + n + b] = 1.0;
            let eb = expm(&big, m);
            let mut s = 0.0;
            for i in 0..n {
                for j in 0..n {
                    s += g[i] * eb[i * m + n + j] * y0[j];
                }
            }
            gp[a * n + b] = s;
        }
    }
    (y1, gy0, gp)
}

const P: [f64; 9] = [-0.4, 0.9, 0.1, -0.7, -0.2, 0.5, 0.3, -0.6, -0.5];
const Y0: [f64; 3] = [1.0, -0.5, 0.8];

/// The closed form itself: dL/dA from the Frechet derivative equals central differences of the
/// exact loss through `expm` (so the reference is not wrong in the same way as the solver).
#[test]
fn closed_form_reference_agrees_with_its_own_differences() {
    let (_, gy0, gp) = closed_form(&P, &Y0);
    let l = |p: &[f64], y0: &[f64]| loss(&closed_form(p, y0).0);
    let fd_p = fd(&P, 1e-5, |p| l(p, &Y0));
    let fd_y = fd(&Y0, 1e-5, |y| l(&P, y));
    assert!(worst_rel(&gp, &fd_p, 1e-3) < 1e-8, "{gp:?} vs {fd_p:?}");
    assert!(worst_rel(&gy0, &fd_y, 1e-3) < 1e-8, "{gy0:?} vs {fd_y:?}");
}

/// Discretise is the exact gradient of the discrete solve: for every tableau with 7 fixed
/// steps, on the linear and on the nonlinear time-dependent system, it equals central
/// differences of the same discrete solve (in y0 and in p) to 1e-9.
#[test]
fn discretise_equals_differences_of_the_discrete_solve() {
    for tab in all_methods() {
        let solver = Solver::new(tab).fixed_steps(7);
        // Linear: the loss is a polynomial in p and y0 of moderate degree.
        let run = |p: &[f64], y0: &[f64]| {
            solver
                .solve_with_gradient(
                    &mut Linear::new(p),
                    0.0,
                    1.0,
                    y0,
                    loss_cotangent,
                    Differentiation::Discretise,
                )
                .unwrap()
        };
        let g = run(&P, &Y0);
        let fd_p = fd(&P, 1e-5, |p| loss(&run(p, &Y0).y1));
        let fd_y = fd(&Y0, 1e-5, |y| loss(&run(&P, y).y1));
        let (ep, ey) = (
            worst_rel(&g.grad_p, &fd_p, 1e-2),
            worst_rel(&g.grad_y0, &fd_y, 1e-2),
        );
        println!("{} linear: rel err p {ep:.1e}, y0 {ey:.1e}", tab.name);
        assert!(ep < 1e-9 && ey < 1e-9, "{}: {ep:e} {ey:e}", tab.name);
        assert_eq!(g.forward.accepted, 7);
        assert_eq!(g.backward.accepted, 7);

        // Nonlinear and time-dependent, backwards in time (t0 > t1).
        let p0 = [0.8, 1.3, -0.6];
        let y0 = [0.4, 1.1];
        let run = |p: &[f64], y0: &[f64]| {
            solver
                .solve_with_gradient(
                    &mut Nonlinear {
                        p: [p[0], p[1], p[2]],
                    },
                    1.5,
                    0.25,
                    y0,
                    loss_cotangent,
                    Differentiation::Discretise,
                )
                .unwrap()
        };
        let g = run(&p0, &y0);
        let fd_p = fd(&p0, 1e-5, |p| loss(&run(p, &y0).y1));
        let fd_y = fd(&y0, 1e-5, |y| loss(&run(&p0, y).y1));
        let (ep, ey) = (
            worst_rel(&g.grad_p, &fd_p, 1e-2),
            worst_rel(&g.grad_y0, &fd_y, 1e-2),
        );
        println!("{} nonlinear: rel err p {ep:.1e}, y0 {ey:.1e}", tab.name);
        assert!(ep < 1e-9 && ey < 1e-9, "{}: {ep:e} {ey:e}", tab.name);
    }
}

/// Discretise counts one VJP per live stage: all stages for RK4, s - 1 for the FSAL methods
/// (their last stage feeds nothing within the step).
#[test]
fn discretise_takes_one_vjp_per_live_stage() {
    for (tab, per_step) in [
        (Rk4.tableau(), 4),
        (Dopri5.tableau(), 6),
        (Bs3.tableau(), 3),
        (Tsit5.tableau(), 6),
        (Euler.tableau(), 1),
    ] {
        let g = Solver::new(tab)
            .fixed_steps(5)
            .solve_with_gradient(
                &mut Linear::new(&P),
                0.0,
                1.0,
                &Y0,
                loss_cotangent,
                Differentiation::Discretise,
            )
            .unwrap();
        assert_eq!(g.backward.nfe, 5 * per_step, "{}", tab.name);
    }
}

/// Checkpointed gives Discretise's gradient (to rounding) for any segment length, on fixed and
/// adaptive steps, forwards and backwards in time; its backward work is Discretise's VJPs plus
/// one replay of the steps: s evaluations for the first step of a segment, then s - 1 per step
/// for FSAL methods (the last stage carries over) and s for the others.
#[test]
fn checkpointed_equals_discretise() {
    let methods: [(&'static Tableau, bool); 4] = [
        (Dopri5.tableau(), true),
        (Bs3.tableau(), true),
        (Dop853.tableau(), true),
        (Rk4.tableau(), false),
    ];
    for (tab, adaptive) in methods {
        let s = tab.stages();
        let mut solvers = vec![("fixed 13", Solver::new(tab).fixed_steps(13))];
        if adaptive {
            solvers.push(("adaptive 1e-9", Solver::new(tab).rtol(1e-9).atol(1e-9)));
        }
        for (name, solver) in solvers {
            for (t0, t1) in [(0.0, 2.0), (1.5, -0.5)] {
                let run = |method| {
                    solver
                        .solve_with_gradient(
                            &mut Nonlinear {
                                p: [0.8, 1.3, -0.6],
                            },
                            t0,
                            t1,
                            &[0.4, 1.1],
                            loss_cotangent,
                            method,
                        )
                        .unwrap()
                };
                let reference = run(Differentiation::Discretise);
                let steps = reference.forward.accepted;
                assert!(steps >= 6, "{} {name}: {steps} steps", tab.name);
                for every in [1, 2, 5, steps, steps + 10] {
                    let g = run(Differentiation::Checkpointed { every });
                    let (ep, ey) = (
                        worst_rel(&g.grad_p, &reference.grad_p, 1e-8),
                        worst_rel(&g.grad_y0, &reference.grad_y0, 1e-8),
                    );
                    assert!(
                        ep < 1e-12 && ey < 1e-12,
                        "{} {name} every {every}: {ep:e} {ey:e}",
                        tab.name
                    );
                    assert_eq!(g.y1, reference.y1);
                    assert_eq!(g.forward, reference.forward);
                    assert_eq!(g.backward.accepted, steps);
                    let segments = steps.div_ceil(every);
                    let replay = if tab.fsal {
                        segments * s + (steps - segments) * (s - 1)
                    } else {
                        steps * s
                    };
                    assert_eq!(
                        g.backward.nfe,
                        reference.backward.nfe + replay,
                        "{} {name} every {every}",
                        tab.name
                    );
                }
            }
        }
    }
    let e = Solver::new(Rk4)
        .fixed_steps(3)
        .solve_with_gradient(
            &mut Linear::new(&P),
            0.0,
            1.0,
            &Y0,
            loss_cotangent,
            Differentiation::Checkpointed { every: 0 },
        )
        .unwrap_err();
    assert!(
        matches!(&e, OdeError::InvalidSetting { field, .. } if field == "Checkpointed.every"),
        "{e}"
    );
}

/// Both methods converge to the closed form with adaptive steps (Dopri5 and DOP853 at tight
/// tolerances), and Backsolve's fixed steps converge at the method's order.
#[test]
fn both_methods_match_the_closed_form() {
    let (y1, gy0, gp) = closed_form(&P, &Y0);
    for tab in [Dopri5.tableau(), Dop853.tableau(), Tsit5.tableau()] {
        let solver = Solver::new(tab).rtol(1e-11).atol(1e-12);
        for (name, method) in [
            ("discretise", Differentiation::Discretise),
            ("backsolve", Differentiation::backsolve(1e-11, 1e-12)),
            (
                "backsolve full norm",
                // No tolerances of its own: the forward solve's (1e-11, 1e-12).
                Differentiation::Backsolve {
                    tolerances: None,
                    seminorm: false,
                },
            ),
        ] {
            let g = solver
                .solve_with_gradient(&mut Linear::new(&P), 0.0, 1.0, &Y0, loss_cotangent, method)
                .unwrap();
            let (e1, ey, ep) = (
                worst_rel(&g.y1, &y1, 1e-3),
                worst_rel(&g.grad_y0, &gy0, 1e-3),
                worst_rel(&g.grad_p, &gp, 1e-3),
            );
            println!(
                "{} {name}: y1 {e1:.1e}, dL/dy0 {ey:.1e}, dL/dp {ep:.1e}, fwd {}, bwd {}",
                tab.name, g.forward, g.backward
            );
            assert!(e1 < 1e-9 && ey < 1e-8 && ep < 1e-8, "{} {name}", tab.name);
        }
    }
    // Fixed RK4 steps: the backsolve error falls ~16x per halving of h.
    let errs: Vec<f64> = [8, 16, 32]
        .iter()
        .map(|&n| {
            let g = Solver::new(Rk4)
                .fixed_steps(n)
                .solve_with_gradient(
                    &mut Linear::new(&P),
                    0.0,
                    1.0,
                    &Y0,
                    loss_cotangent,
                    Differentiation::backsolve(1e-6, 1e-6),
                )
                .unwrap();
            assert_eq!(g.backward.accepted, n);
            worst_rel(&g.grad_p, &gp, 1e-3)
        })
        .collect();
    println!("RK4 backsolve errors at 8, 16, 32 steps: {errs:?}");
    for w in errs.windows(2) {
        let ratio = w[0] / w[1];
        assert!((10.0..24.0).contains(&ratio), "{errs:?}");
    }
}

/// The seminorm (parameter cotangents out of the backward error norm) gives the gradient to
/// the tolerance (within 20x, the growth over the span) with no more backward evaluations than the full norm, and fewer over the
/// range of tolerances, on a 4 x 4 linear system (16 parameter cotangents against the 8
/// components of [y, a]). It is not a law: the RMS over fewer components can also be larger
/// (with A scaled by 3 it takes one step more at some tolerances), so only this case is pinned.
#[test]
fn seminorm_takes_no_more_backward_steps_for_the_same_gradient() {
    let n = 4;
    let p: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                -0.5 - 0.1 * i as f64
            } else {
                0.9 * ((k as f64) * 1.7).sin()
            }
        })
        .collect();
    let y0: Vec<f64> = (0..n).map(|i| (1.3 * i as f64 + 0.4).cos()).collect();
    let (_, gy0, gp) = closed_form(&p, &y0);
    let (mut total_semi, mut total_full) = (0, 0);
    for tol in [1e-3, 1e-4, 1e-5, 1e-6, 1e-8] {
        let solver = Solver::new(Dopri5).rtol(tol).atol(tol);
        let run = |seminorm| {
            solver
                .solve_with_gradient(
                    &mut Linear::new(&p),
                    0.0,
                    1.0,
                    &y0,
                    loss_cotangent,
                    Differentiation::Backsolve {
                        tolerances: Some((tol, tol)),
                        seminorm,
                    },
                )
                .unwrap()
        };
        let (semi, full) = (run(true), run(false));
        let err = |g: &cnf_ode::GradSolution<f64>| {
            worst_rel(&g.grad_p, &gp, 1e-2).max(worst_rel(&g.grad_y0, &gy0, 1e-2))
        };
        let (es, ef) = (err(&semi), err(&full));
        println!(
            "tol {tol:e}: seminorm bwd {} (err {es:.1e}), full norm bwd {} (err {ef:.1e})",
            semi.backward, full.backward
        );
        assert_eq!(semi.forward, full.forward);
        assert!(semi.backward.nfe <= full.backward.nfe, "tol {tol:e}");
        assert!(
            es < 20.0 * tol && ef < 20.0 * tol,
            "tol {tol:e}: {es:e} {ef:e}"
        );
        total_semi += semi.backward.nfe;
        total_full += full.backward.nfe;
    }
    assert!(total_semi < total_full, "{total_semi} vs {total_full}");
}

/// A component left out of the error norm has no say in the steps: with a violently
/// oscillating second component excluded, the solve takes exactly the steps of the first
/// component alone (and the same initial step); included, it takes many more.
#[test]
fn excluded_components_do_not_limit_the_steps() {
    let solver = Solver::new(Dopri5).rtol(1e-8).atol(1e-8);
    let alone = solver
        .solve_system(
            &mut |_t: f64, y: &[f64; 1], dy: &mut [f64; 1]| dy[0] = -y[0],
            0.0,
            3.0,
            &[1.0],
        )
        .unwrap();
    let mut pair = |t: f64, y: &[f64; 2], dy: &mut [f64; 2]| {
        dy[0] = -y[0];
        dy[1] = 1e3 * (1e3 * t).cos();
    };
    let masked = solver
        .clone()
        .error_components(0..1)
        .solve_system(&mut pair, 0.0, 3.0, &[1.0, 0.0])
        .unwrap();
    let full = solver
        .solve_system(&mut pair, 0.0, 3.0, &[1.0, 0.0])
        .unwrap();
    println!(
        "alone {}, masked {}, full {}",
        alone.stats, masked.stats, full.stats
    );
    assert_eq!(masked.stats.accepted, alone.stats.accepted);
    assert_eq!(masked.stats.rejected, alone.stats.rejected);
    assert_eq!(masked.y[0], alone.y[0]);
    assert!(full.stats.accepted > 10 * alone.stats.accepted);
    // The mask must name components of the state.
    for bad in [1..1, 0..3, 2..3] {
        let e = solver
            .clone()
            .error_components(bad.clone())
            .solve_system(&mut pair, 0.0, 3.0, &[1.0, 0.0])
            .unwrap_err();
        assert!(
            matches!(e, OdeError::InvalidErrorComponents { .. }),
            "{bad:?}: {e}"
        );
    }
}

/// Invalid requests are errors, not panics, and the forward solve is not spent on a request
/// that cannot succeed.
#[test]
fn invalid_requests_are_errors() {
    let solver = Solver::new(Dopri5);
    let mut sys = Linear::new(&P);
    let e = solver
        .solve_with_gradient(
            &mut sys,
            0.0,
            1.0,
            &Y0,
            loss_cotangent,
            Differentiation::backsolve(-1.0, 1e-6),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Backsolve.tolerances.rtol must be positive and finite, got -1"
    );
    assert_eq!(sys.calls, 0);
    let e = solver
        .clone()
        .output_times(vec![0.5])
        .solve_with_gradient(
            &mut sys,
            0.0,
            1.0,
            &Y0,
            loss_cotangent,
            Differentiation::Discretise,
        )
        .unwrap_err();
    assert!(matches!(e, OdeError::Unsupported(_)), "{e}");
    assert_eq!(sys.calls, 0);
    for method in [
        Differentiation::Discretise,
        Differentiation::backsolve(1e-6, 1e-6),
    ] {
        let e = solver
            .solve_with_gradient(&mut sys, 0.0, 1.0, &Y0, |_, a| a[1] = f64::NAN, method)
            .unwrap_err();
        assert!(
            matches!(e, OdeError::NonFinite { t, .. } if t == 1.0),
            "{e}"
        );
        let e = solver
            .solve_with_gradient(&mut sys, 0.0, 1.0, &[], loss_cotangent, method)
            .unwrap_err();
        assert!(matches!(e, OdeError::EmptyState), "{e}");
    }
}

/// A zero span is the identity: y1 = y0, dL/dy0 = dL/dy1, dL/dp = 0, no work.
#[test]
fn zero_span_is_the_identity() {
    for method in [
        Differentiation::Discretise,
        Differentiation::backsolve(1e-6, 1e-6),
    ] {
        let g = Solver::new(Dopri5)
            .solve_with_gradient(&mut Linear::new(&P), 0.5, 0.5, &Y0, loss_cotangent, method)
            .unwrap();
        let mut a = [0.0; 3];
        loss_cotangent(&Y0, &mut a);
        assert_eq!(g.y1, Y0);
        assert_eq!(g.grad_y0, a);
        assert!(g.grad_p.iter().all(|&v| v == 0.0));
        assert_eq!(g.backward.accepted, 0);
    }
}

/// `[q, y]` with y' = A y (A = p, 2 x 2) and an integral q' = |y|^2 (+ `wobble` cos(1e3 t) 1e3,
/// which feeds nothing back): the shape of a CNF's regulariser integrals.
struct WithIntegral {
    linear: Linear,
    wobble: f64,
}

impl VjpSystem<f64> for WithIntegral {
    fn num_params(&self) -> usize {
        4
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
        self.linear.rhs(t, &y[1..], &mut dy[1..]);
        dy[0] = y[1] * y[1] + y[2] * y[2] + self.wobble * 1e3 * (1e3 * t).cos();
    }
    fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out: VjpOut<'_, f64>) {
        let VjpOut { f, a_y, a_p } = out;
        f[0] = y[1] * y[1] + y[2] * y[2] + self.wobble * 1e3 * (1e3 * t).cos();
        a_y[1] += 2.0 * a[0] * y[1];
        a_y[2] += 2.0 * a[0] * y[2];
        self.linear.vjp(
            t,
            &y[1..],
            &a[1..],
            VjpOut {
                f: &mut f[1..],
                a_y: &mut a_y[1..],
                a_p,
            },
        );
    }
}

/// Components the forward error norm leaves out stay out of the backsolve's norm (with their
/// cotangents): with an oscillating integral excluded and no loss on it, the backward solve
/// takes exactly the steps of the system without it and gives the same gradient; included,
/// it takes many more.
#[test]
fn backsolve_keeps_the_forward_norm_window() {
    let p = [-0.5, 0.3, -0.2, -1.0];
    let y0 = [0.7, -1.1];
    let solver = Solver::new(Dopri5).rtol(1e-7).atol(1e-7);
    let method = Differentiation::backsolve(1e-7, 1e-7);
    let plain = solver
        .solve_with_gradient(&mut Linear::new(&p), 0.0, 2.0, &y0, loss_cotangent, method)
        .unwrap();
    let with_q = |solver: &Solver<Dopri5, f64>| {
        let mut sys = WithIntegral {
            linear: Linear::new(&p),
            wobble: 1.0,
        };
        let on_y = |y1: &[f64], a: &mut [f64]| loss_cotangent(&y1[1..], &mut a[1..]);
        solver
            .solve_with_gradient(&mut sys, 0.0, 2.0, &[0.0, y0[0], y0[1]], on_y, method)
            .unwrap()
    };
    let masked = with_q(&solver.clone().error_components(1..3));
    let full = with_q(&solver);
    println!(
        "plain bwd {}, masked bwd {}, full bwd {}",
        plain.backward, masked.backward, full.backward
    );
    assert_eq!(masked.forward, plain.forward);
    assert_eq!(masked.backward, plain.backward);
    assert_eq!(masked.grad_y0[0], 0.0);
    assert_eq!(&masked.grad_y0[1..], &plain.grad_y0[..]);
    assert_eq!(masked.grad_p, plain.grad_p);
    assert!(full.backward.accepted > 10 * plain.backward.accepted);
}

/// The gradient of a loss on the excluded integral itself, L = q(T) = int_0^T |e^{At} y0|^2 dt,
/// against its closed form for a diagonal A = diag(l0, l1): dL/dy0_i = y0_i (e^{2 l_i T} - 1) /
/// l_i, dL/dA_ii = 2 y0_i^2 int t e^{2 l_i t}, and off the diagonal (first-order perturbation
/// dy_i = y0_j (e^{l_j t} - e^{l_i t}) / (l_j - l_i))
/// dL/dA_ij = 2 y0_i y0_j / (l_j - l_i) [(e^{(l_i + l_j) T} - 1) / (l_i + l_j) - (e^{2 l_i T} - 1) / (2 l_i)].
#[test]
fn backsolve_differentiates_an_excluded_integral() {
    let (l, y0, t1) = ([-0.5, -1.25], [0.7, -1.1], 1.5);
    let p = [l[0], 0.0, 0.0, l[1]];
    let e = |r: f64| ((r * t1).exp() - 1.0) / r;
    // int_0^T t e^{r t} dt
    let te = |r: f64| t1 * (r * t1).exp() / r - ((r * t1).exp() - 1.0) / (r * r);
    let mut want_p = [0.0; 4];
    for i in 0..2 {
        want_p[i * 2 + i] = 2.0 * y0[i] * y0[i] * te(2.0 * l[i]);
        let j = 1 - i;
        want_p[i * 2 + j] = 2.0 * y0[i] * y0[j] / (l[j] - l[i]) * (e(l[i] + l[j]) - e(2.0 * l[i]));
    }
    let want_y0 = [2.0 * y0[0] * e(2.0 * l[0]), 2.0 * y0[1] * e(2.0 * l[1])];
    let solver = Solver::new(Dopri5)
        .rtol(1e-10)
        .atol(1e-10)
        .error_components(1..3);
    let mut sys = WithIntegral {
        linear: Linear::new(&p),
        wobble: 0.0,
    };
    let g = solver
        .solve_with_gradient(
            &mut sys,
            0.0,
            t1,
            &[0.0, y0[0], y0[1]],
            |_y1, a| a[0] = 1.0,
            Differentiation::backsolve(1e-10, 1e-10),
        )
        .unwrap();
    println!("grad_y0 {:?} want {want_y0:?}", g.grad_y0);
    println!("grad_p {:?} want {want_p:?}", g.grad_p);
    assert_eq!(g.grad_y0[0], 1.0);
    assert!(worst_rel(&g.grad_y0[1..], &want_y0, 1e-2) < 1e-8);
    assert!(worst_rel(&g.grad_p, &want_p, 1e-2) < 1e-8);
}

// ---- the local-error penalty (ERNODE) -------------------------------------------------------

/// On y' = l y with fixed steps h, Dopri5's stages are k_m = l Y_m y_j with Y_m polynomials in
/// z = h l, so the error combination is h r_j = y_j P(z) with
/// P(z) = sum_m e_m z Y_m(z) = -97/120000 z^5 + 13/40000 z^6 - 1/24000 z^7 and the step is
/// y_{j+1} = R5(z) y_j, R5 = 1 + z + .. + z^5/120 + z^6/600 (Hairer & Wanner's stability
/// function of Dopri5; P from exact rational arithmetic on Dormand & Prince's coefficients).
/// With one component E_j = |h r_j| / sc_j, so R = sum_j h |y_j P(z)| / sc_j.
#[test]
fn local_error_penalty_of_a_linear_decay_matches_its_closed_form() {
    let (l, y0, steps, rtol, atol) = (-1.3, 1.7, 5, 1e-3, 1e-6);
    let h = 1.0 / steps as f64;
    let z: f64 = h * l;
    let r5 = 1.0
        + z
        + z.powi(2) / 2.0
        + z.powi(3) / 6.0
        + z.powi(4) / 24.0
        + z.powi(5) / 120.0
        + z.powi(6) / 600.0;
    let p = -97.0 / 120000.0 * z.powi(5) + 13.0 / 40000.0 * z.powi(6) - z.powi(7) / 24000.0;
    let mut want = 0.0;
    let mut y = y0;
    for _ in 0..steps {
        let y_next = r5 * y;
        want += h * (y * p).abs() / (atol + rtol * f64::max(y.abs(), y_next.abs()));
        y = y_next;
    }
    let solver = Solver::new(Dopri5).fixed_steps(steps).rtol(rtol).atol(atol);
    for method in [
        Differentiation::Discretise,
        Differentiation::Checkpointed { every: 2 },
    ] {
        let g = solver
            .solve_with_gradient_and_error_penalty(
                &mut Linear::new(&[l]),
                (0.0, 1.0),
                &[y0],
                |_, a| a[0] = 1.0,
                method,
                1.0,
            )
            .unwrap();
        println!("R = {:.6e}, closed form {want:.6e}", g.local_error);
        assert!((g.local_error - want).abs() < 1e-12 * want, "{method:?}");
        assert!((g.y1[0] - y).abs() < 1e-14);
    }
}

/// The gradient of `L(y1) + w R` equals central differences of the same discrete solve (fixed
/// steps, so the step sizes do not move), through the stages and through the error scales
/// (rtol > 0), for every method with one embedded pair, forwards and backwards in time, with the
/// whole state and with a norm window; Checkpointed gives the same gradient.
#[test]
fn local_error_penalty_gradient_equals_differences() {
    let p0 = [0.8, 1.3, -0.6];
    let y0 = [0.4, 1.1];
    for tab in [Bs3.tableau(), Dopri5.tableau(), Tsit5.tableau()] {
        for (span, window) in [((0.0, 1.5), None), ((1.5, 0.25), Some(0..1))] {
            let mut solver = Solver::new(tab).fixed_steps(7).rtol(1e-3).atol(1e-4);
            if let Some(w) = window.clone() {
                solver = solver.error_components(w);
            }
            let w = 30.0;
            let run = |p: &[f64], y0: &[f64], method| {
                solver
                    .solve_with_gradient_and_error_penalty(
                        &mut Nonlinear {
                            p: [p[0], p[1], p[2]],
                        },
                        span,
                        y0,
                        loss_cotangent,
                        method,
                        w,
                    )
                    .unwrap()
            };
            let total = |g: &cnf_ode::GradSolution<f64>| loss(&g.y1) + w * g.local_error;
            let g = run(&p0, &y0, Differentiation::Discretise);
            let fd_p = fd(&p0, 1e-5, |p| {
                total(&run(p, &y0, Differentiation::Discretise))
            });
            let fd_y = fd(&y0, 1e-5, |y| {
                total(&run(&p0, y, Differentiation::Discretise))
            });
            let (ep, ey) = (
                worst_rel(&g.grad_p, &fd_p, 1e-2),
                worst_rel(&g.grad_y0, &fd_y, 1e-2),
            );
            // The penalty must matter: without it the gradient differs.
            let plain = solver
                .solve_with_gradient(
                    &mut Nonlinear { p: p0 },
                    span.0,
                    span.1,
                    &y0,
                    loss_cotangent,
                    Differentiation::Discretise,
                )
                .unwrap();
            let shift = worst_rel(&plain.grad_p, &g.grad_p, 1e-2);
            println!(
                "{} {span:?} window {window:?}: w R = {:.3e} (loss {:.3e}), rel err p {ep:.1e}, \
                 y0 {ey:.1e}; the penalty moves dL/dp by {shift:.1e}",
                tab.name,
                w * g.local_error,
                loss(&g.y1)
            );
            assert!(ep < 1e-7 && ey < 1e-7, "{}: {ep:e} {ey:e}", tab.name);
            assert!(shift > 1e-3, "{}: the penalty barely matters", tab.name);
            let c = run(&p0, &y0, Differentiation::Checkpointed { every: 3 });
            assert!(worst_rel(&c.grad_p, &g.grad_p, 1e-2) < 1e-12);
            assert!(worst_rel(&c.grad_y0, &g.grad_y0, 1e-2) < 1e-12);
            assert_eq!(c.local_error, g.local_error);
        }
    }
}

/// `L + w R` for the linear system `P` from `Y0` over [0, 1], and the right-hand sides it took.
fn penalised(
    solver: Solver<&'static Tableau, f64>,
    method: Differentiation<f64>,
    w: f64,
) -> (Result<cnf_ode::GradSolution<f64>, OdeError>, usize) {
    let mut sys = Linear::new(&P);
    let r = solver.solve_with_gradient_and_error_penalty(
        &mut sys,
        (0.0, 1.0),
        &Y0,
        loss_cotangent,
        method,
        w,
    );
    (r, sys.calls)
}

/// With the penalty every stage with an error weight is live: Dopri5's FSAL stage (b = 0,
/// e = -1/40) costs one more VJP per step (7 instead of 6).
#[test]
fn local_error_penalty_makes_the_error_stages_live() {
    let run = |w| {
        let solver = Solver::new(Dopri5.tableau()).fixed_steps(5);
        penalised(solver, Differentiation::Discretise, w).0.unwrap()
    };
    assert_eq!(run(0.0).backward.nfe, 5 * 6);
    assert_eq!(run(0.0).local_error, 0.0);
    assert_eq!(run(1.0).backward.nfe, 5 * 7);
}

/// Requests the penalty cannot honour are errors before any work.
#[test]
fn local_error_penalty_refuses_what_it_cannot_differentiate() {
    let dopri = || Solver::new(Dopri5.tableau());
    for (solver, method, w) in [
        (dopri(), Differentiation::backsolve(1e-8, 1e-8), 1.0),
        (dopri(), Differentiation::Discretise, -1.0),
        (dopri(), Differentiation::Discretise, f64::NAN),
        (
            Solver::new(Dop853.tableau()),
            Differentiation::Discretise,
            1.0,
        ),
        (
            Solver::new(Rk4.tableau()).fixed_steps(4),
            Differentiation::Discretise,
            1.0,
        ),
    ] {
        let (r, calls) = penalised(solver, method, w);
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                OdeError::Unsupported(_)
                    | OdeError::InvalidSetting { .. }
                    | OdeError::NoEmbeddedPair { .. }
            ),
            "{method:?} {w}: {e}"
        );
        assert_eq!(calls, 0, "{method:?} {w}: the forward solve ran");
    }
}

/// An empty state is a typed error before any work, with or without the penalty (never a NaN
/// penalty from an empty norm).
#[test]
fn empty_states_are_refused_with_the_penalty_too() {
    for w in [0.0, 1.0] {
        let e = Solver::new(Dopri5)
            .solve_with_gradient_and_error_penalty(
                &mut Linear::new(&[]),
                (0.0, 1.0),
                &[],
                |_, _| {},
                Differentiation::Discretise,
                w,
            )
            .unwrap_err();
        assert!(matches!(e, OdeError::EmptyState), "{w}: {e}");
    }
}
