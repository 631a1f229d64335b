//! The continuous adjoint against finite differences (f64): it converges with its tolerances,
//! its backward tolerance matters on its own, Hutchinson traces, and fixed steps.
mod common;
use cnf_field::{gaussian_probes, rademacher_probes, Activation, Mlp, MlpConfig, Trace};
use cnf_flow::Cnf;
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};
use common::{fd_params, fd_x, loss, worst_rel, SMOOTH};
use rand::{rngs::StdRng, SeedableRng};

fn model() -> Mlp<f64> {
    Mlp::new(MlpConfig::new(2, &[8, 8], Activation::Tanh), 7).unwrap()
}

fn points() -> Vec<f64> {
    vec![0.5, -1.0, 1.5, 0.3, -0.7, -0.2, 2.0, 1.0, -1.2, 0.8]
}

/// Floor of the per-component comparisons (dL/dtheta is 1e-3..1 here; dL/dx carries 1/B).
const FLOOR: f64 = 1e-3;
const FLOOR_X: f64 = 2e-4;

/// The loss of the exact flow: 24 fixed DOP853 steps, smooth in theta and x, so its finite
/// differences are the true gradient (checked against 48 steps below).
fn exact(field: Mlp<f64>) -> Cnf<f64, Mlp<f64>> {
    Cnf::new(field, SolverSpec::fixed(Method::Dop853, 24).unwrap())
}

/// (dL/dtheta, dL/dx) of the exact flow by finite differences.
fn true_gradient(trace: &Trace<f64>) -> (Vec<f64>, Vec<f64>) {
    let x = points();
    let cnf = exact(model());
    (
        fd_params(&cnf, &x, trace, None, SMOOTH),
        fd_x(&cnf, &x, trace, None, SMOOTH),
    )
}

fn adjoint(tol: f64) -> Differentiation<f64> {
    Differentiation::backsolve(tol, tol)
}

#[test]
fn exact_reference_is_converged() {
    let x = points();
    let a = loss(&exact(model()), &x, &Trace::Exact);
    let b = loss(
        &Cnf::new(model(), SolverSpec::fixed(Method::Dop853, 48).unwrap()),
        &x,
        &Trace::Exact,
    );
    println!("loss 24 vs 48 DOP853 steps: {a} vs {b}");
    assert!((a - b).abs() < 1e-13, "{a} vs {b}");
}

/// The adjoint gradient (dL/dtheta and dL/dx) converges to the true gradient as the
/// tolerances (forward and backward together) tighten.
#[test]
fn adjoint_converges_with_tolerance() {
    let x = points();
    let (g_ref, gx_ref) = true_gradient(&Trace::Exact);
    let mut errs = vec![];
    for tol in [1e-4, 1e-7, 1e-10] {
        let cnf = Cnf::new(
            model(),
            SolverSpec::adaptive(Method::Dopri5, tol, tol).unwrap(),
        );
        let g = cnf.loss_and_grad(&x, &Trace::Exact, adjoint(tol)).unwrap();
        let e = worst_rel(&g.grad, &g_ref, FLOOR);
        let ex = worst_rel(&g.grad_x, &gx_ref, FLOOR_X);
        println!(
            "adjoint tol {tol:e}: worst rel err theta {e:.2e}, x {ex:.2e}, fwd {}, bwd {}",
            g.forward, g.backward
        );
        errs.push(e.max(ex));
    }
    assert!(errs[2] < 1e-7, "{errs:?}");
    assert!(
        errs[2] < errs[1] / 10.0 && errs[1] < errs[0] / 10.0,
        "{errs:?}"
    );
}

/// With the forward solve fixed (Dopri5 1e-10), the backward tolerance alone decides the
/// adjoint's error: 1e-3 gives a much larger error than 1e-10.
#[test]
fn adjoint_backward_tolerance_matters() {
    let x = points();
    let (g_ref, gx_ref) = true_gradient(&Trace::Exact);
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
    );
    let err = |tol: f64| {
        let g = cnf.loss_and_grad(&x, &Trace::Exact, adjoint(tol)).unwrap();
        let e = (
            worst_rel(&g.grad, &g_ref, FLOOR),
            worst_rel(&g.grad_x, &gx_ref, FLOOR_X),
        );
        println!(
            "forward 1e-10, backward {tol:e}: worst rel err theta {:.2e}, x {:.2e}, fwd {}, bwd {}",
            e.0, e.1, g.forward, g.backward
        );
        e
    };
    let (loose, tight) = (err(1e-3), err(1e-10));
    assert!(tight.0 < 1e-7 && tight.1 < 1e-7, "{tight:?}");
    assert!(loose.0 > 100.0 * tight.0, "{loose:?} vs {tight:?}");
    assert!(loose.1 > 100.0 * tight.1, "{loose:?} vs {tight:?}");
}

/// Hutchinson traces: the adjoint is the gradient of the loss with the same probes (held along
/// the path), Rademacher k = 1 and Gaussian k = 3.
#[test]
fn hutchinson_adjoint_matches_finite_differences() {
    let x = points();
    let mut rng = StdRng::seed_from_u64(4);
    let rad = rademacher_probes::<f64, _>(&mut rng, 1, 5, 2);
    let gau = gaussian_probes::<f64, _>(&mut rng, 3, 5, 2);
    for (name, probes) in [("Rademacher k=1", &rad), ("Gaussian k=3", &gau)] {
        let trace = Trace::Hutchinson(probes);
        let (g_ref, gx_ref) = true_gradient(&trace);
        let cnf = Cnf::new(
            model(),
            SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
        );
        let g = cnf.loss_and_grad(&x, &trace, adjoint(1e-10)).unwrap();
        let e = worst_rel(&g.grad, &g_ref, FLOOR);
        let ex = worst_rel(&g.grad_x, &gx_ref, FLOOR_X);
        println!("adjoint {name}: worst rel err theta {e:.2e}, x {ex:.2e}");
        assert!(e < 1e-7 && ex < 1e-7, "{name}: {e}, {ex}");
        // The probes matter: the exact-trace gradient is far from this one.
        assert!(worst_rel(&true_gradient(&Trace::Exact).0, &g_ref, FLOOR) > 1e-2);
    }
}

/// Fixed steps: the adjoint is solved backwards with the same N RK4 steps; it is not the
/// gradient of the N-step loss, but both are O(h^4) from the true gradient, so their
/// difference falls ~16x per doubling of N.
#[test]
fn fixed_step_adjoint_converges_to_finite_differences() {
    let x = points();
    let mut errs = vec![];
    for n in [3, 6, 12, 24] {
        let cnf = Cnf::new(model(), SolverSpec::fixed(Method::Rk4, n).unwrap());
        let g = cnf.loss_and_grad(&x, &Trace::Exact, adjoint(1.0)).unwrap();
        assert_eq!((g.forward.accepted, g.backward.accepted), (n, n));
        let e = worst_rel(
            &g.grad,
            &fd_params(&cnf, &x, &Trace::Exact, None, SMOOTH),
            FLOOR,
        );
        println!("RK4 {n} steps: adjoint vs FD of the {n}-step loss: worst rel err {e:.2e}");
        errs.push(e);
    }
    for w in errs.windows(2) {
        assert!(w[1] < w[0] / 10.0, "{errs:?}");
    }
    assert!(errs[3] < 1e-5, "{errs:?}");
}
