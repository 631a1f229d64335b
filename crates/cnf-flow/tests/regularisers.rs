//! RNODE's regularisers and STEER's end time in the training loss: the integrals against closed
//! forms on linear fields, exact vs Hutchinson in expectation, gradients of loss + penalty
//! against finite differences for both gradient methods, and the step-size control ignoring
//! the penalty states.
mod common;

use cnf_field::{rademacher_probes, Activation, Linear, Mlp, MlpConfig, Trace, VectorField};
use cnf_flow::{log_normal, Cnf, FlowError, LossOptions, Regularisation};
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};
use common::{fd, worst_rel, SMOOTH};
use rand::{rngs::StdRng, SeedableRng};

fn options(kinetic: f64, frobenius: f64, end_time: f64) -> LossOptions<f64> {
    LossOptions {
        regularisation: Regularisation {
            kinetic,
            frobenius,
            local_error: 0.0,
        },
        end_time,
    }
}

/// `loss + penalty` and its parts for `cnf` at `x`.
fn objective<F: VectorField<f64>>(
    cnf: &Cnf<f64, F>,
    x: &[f64],
    trace: &Trace<f64>,
    opts: &LossOptions<f64>,
) -> f64 {
    let g = cnf
        .loss_and_grad_with(x, trace, Differentiation::Discretise, opts)
        .unwrap();
    g.loss + g.penalty
}

/// v = A z with A = [[a, -w], [w, a]]: exp(At) = e^{at} R(wt), so along the flow
/// |v|^2 = (a^2 + w^2) e^{2at} |x|^2 and K = (a^2 + w^2) |x|^2 (e^{2aT} - 1) / (2a);
/// |A|_F^2 = 2 (a^2 + w^2) everywhere, so J = 2 (a^2 + w^2) T. The NLL at T is
/// -log N(exp(AT) x) - 2 a T.
#[test]
fn integrals_of_a_linear_field_match_closed_forms() {
    let (a, w) = (0.4, 1.3);
    let field = Linear::new(2, &[a, -w, w, a], &[0.0, 0.0]).unwrap();
    let cnf = Cnf::new(
        field,
        SolverSpec::adaptive(Method::Dopri5, 1e-11, 1e-11).unwrap(),
    );
    let x = [0.7, -1.2, 0.1, 0.4, -2.0, 0.5];
    for t1 in [1.0, 0.8, 1.25] {
        let g = cnf
            .loss_and_grad_with(
                &x,
                &Trace::Exact,
                Differentiation::Discretise,
                &options(0.5, 0.25, t1),
            )
            .unwrap();
        let s = a * a + w * w;
        let (mut k, mut nll) = (0.0, 0.0);
        for p in x.chunks(2) {
            let r2 = p[0] * p[0] + p[1] * p[1];
            k += s * r2 * ((2.0 * a * t1).exp() - 1.0) / (2.0 * a) / 3.0;
            let (c, sn, e) = ((w * t1).cos(), (w * t1).sin(), (a * t1).exp());
            let z = [e * (c * p[0] - sn * p[1]), e * (sn * p[0] + c * p[1])];
            nll -= (log_normal(&z) + 2.0 * a * t1) / 3.0;
        }
        let j = 2.0 * s * t1;
        let (gk, gj) = (g.penalties.kinetic.unwrap(), g.penalties.jacobian.unwrap());
        println!(
            "T = {t1}: K {gk} vs {k}, J {gj} vs {j}, NLL {} vs {nll}",
            g.loss
        );
        assert!((gk - k).abs() < 1e-8 * k, "K {gk} vs {k}");
        assert!((gj - j).abs() < 1e-9 * j, "J {gj} vs {j}");
        assert!((g.loss - nll).abs() < 1e-8, "NLL {} vs {nll}", g.loss);
        assert!((g.penalty - (0.5 * k + 0.25 * j)).abs() < 1e-8 * k);
    }
}

/// With Rademacher probes the Frobenius integral is an unbiased estimate of the exact one:
/// over 2000 probe draws the mean is within 5 standard errors (and each draw differs).
#[test]
fn hutchinson_frobenius_agrees_with_exact_in_expectation() {
    let field = Mlp::new(MlpConfig::new(2, &[8], Activation::Tanh), 4).unwrap();
    let cnf = Cnf::new(field, SolverSpec::fixed(Method::Rk4, 4).unwrap());
    let x = [0.5, -1.0, 1.5, 0.3];
    let opts = options(0.0, 1.0, 1.0);
    let exact = cnf
        .loss_and_grad_with(&x, &Trace::Exact, Differentiation::Discretise, &opts)
        .unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let n = 2000;
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for _ in 0..n {
        let e = rademacher_probes::<f64, _>(&mut rng, 1, 2, 2);
        let g = cnf
            .loss_and_grad_with(
                &x,
                &Trace::Hutchinson(&e),
                Differentiation::Discretise,
                &opts,
            )
            .unwrap();
        let j = g.penalties.jacobian.unwrap();
        sum += j;
        sum_sq += j * j;
        assert_eq!(
            g.penalties.kinetic, exact.penalties.kinetic,
            "the kinetic term does not use the probes"
        );
    }
    let mean = sum / n as f64;
    let se = ((sum_sq / n as f64 - mean * mean) / n as f64).sqrt();
    let want = exact.penalties.jacobian.unwrap();
    println!("Hutchinson J: mean {mean} (se {se}) vs exact {want}");
    assert!(se > 0.0);
    assert!((mean - want).abs() < 5.0 * se, "{mean} vs {want} (se {se})");
}

fn model() -> Mlp<f64> {
    Mlp::new(MlpConfig::new(2, &[8, 8], Activation::Tanh), 7).unwrap()
}

const X: [f64; 10] = [0.5, -1.0, 1.5, 0.3, -0.7, -0.2, 2.0, 1.0, -1.2, 0.8];

/// d(loss + penalty)/dtheta by finite differences of the forward value.
fn fd_params<F: VectorField<f64> + Clone>(
    cnf: &Cnf<f64, F>,
    trace: &Trace<f64>,
    opts: &LossOptions<f64>,
) -> Vec<f64> {
    let mut c = cnf.clone();
    (0..cnf.field.num_params())
        .map(|i| {
            let p0 = cnf.field.params()[i];
            let g = fd(
                |e| {
                    c.field.params_mut()[i] = p0 + e;
                    objective(&c, &X, trace, opts)
                },
                SMOOTH,
            );
            c.field.params_mut()[i] = p0;
            g
        })
        .collect()
}

/// Backprop through fixed steps is the exact gradient of the computed loss + penalty (exact
/// trace and Hutchinson, both regularisers, STEER end times): equal to FD to rounding.
#[test]
fn backprop_gradient_of_penalised_loss_matches_fd() {
    let mut rng = StdRng::seed_from_u64(3);
    let probes = rademacher_probes::<f64, _>(&mut rng, 1, 5, 2);
    for trace in [Trace::Exact, Trace::Hutchinson(&probes)] {
        for opts in [
            options(0.3, 0.0, 1.0),
            options(0.0, 0.2, 1.0),
            options(0.3, 0.2, 0.85),
        ] {
            let cnf = Cnf::new(model(), SolverSpec::fixed(Method::Rk4, 8).unwrap());
            let g = cnf
                .loss_and_grad_with(&X, &trace, Differentiation::Discretise, &opts)
                .unwrap();
            let e = worst_rel(&g.grad, &fd_params(&cnf, &trace, &opts), 1e-3);
            println!(
                "backprop {opts:?}: worst rel err {e:.2e}, penalty {}",
                g.penalty
            );
            assert!(g.penalty > 0.0);
            assert!(e < 1e-8, "worst rel err {e}");
        }
    }
}

/// The continuous adjoint of the penalised loss agrees with FD of a tightly solved forward
/// value (its error shrinks with the tolerances).
#[test]
fn adjoint_gradient_of_penalised_loss_matches_fd() {
    let opts = options(0.3, 0.2, 1.1);
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
    );
    let adjoint = Differentiation::backsolve(1e-10, 1e-10);
    let g = cnf
        .loss_and_grad_with(&X, &Trace::Exact, adjoint, &opts)
        .unwrap();
    let e = worst_rel(&g.grad, &fd_params(&cnf, &Trace::Exact, &opts), 1e-3);
    println!(
        "adjoint 1e-10: worst rel err {e:.2e} (fwd {}, bwd {})",
        g.forward, g.backward
    );
    assert!(e < 1e-6, "worst rel err {e}");
}

/// The penalty states are left out of the error norm: the same accepted steps and the same
/// z(T), D(T) (bit for bit) with and without them.
#[test]
fn error_control_ignores_the_penalty_states() {
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6).unwrap(),
    );
    for method in [
        Differentiation::Discretise,
        Differentiation::backsolve(1e-6, 1e-6),
    ] {
        let plain = cnf.loss_and_grad(&X, &Trace::Exact, method).unwrap();
        // Large weights: the penalty integrals are far bigger than the likelihood states.
        let reg = cnf
            .loss_and_grad_with(&X, &Trace::Exact, method, &options(50.0, 50.0, 1.0))
            .unwrap();
        assert_eq!(plain.forward.accepted, reg.forward.accepted);
        assert_eq!(plain.forward.rejected, reg.forward.rejected);
        assert_eq!(plain.loss, reg.loss);
        assert!(reg.penalty > 1.0);
    }
}

/// Bad weights and end times are typed errors.
#[test]
fn invalid_options_are_errors() {
    let cnf = Cnf::new(model(), SolverSpec::fixed(Method::Rk4, 2).unwrap());
    for opts in [
        options(-1.0, 0.0, 1.0),
        options(0.0, f64::NAN, 1.0),
        options(0.0, 0.0, 0.0),
        options(0.0, 0.0, f64::INFINITY),
    ] {
        let r = cnf.loss_and_grad_with(&X, &Trace::Exact, Differentiation::Discretise, &opts);
        assert!(matches!(r, Err(FlowError::Invalid(_))), "{opts:?}: {r:?}");
    }
}

/// The local-error penalty (ERNODE) of an adaptive training solve: it leaves the forward solve
/// alone (same steps, same NLL), its value is positive and below `T max_j |h_j|` (every accepted
/// step has `E_j <= 1`), and it enters the gradient linearly in its weight, with and without the
/// RNODE states (which stay out of its norm as out of the controller's). The reverse-mode
/// arithmetic itself is checked against central differences in cnf-ode
/// (`tests/gradients.rs::local_error_penalty_gradient_equals_differences`).
#[test]
fn local_error_penalty_enters_linearly_and_leaves_the_steps_alone() {
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-4, 1e-4).unwrap(),
    );
    for (kinetic, frobenius) in [(0.0, 0.0), (0.3, 0.2)] {
        let with = |w: f64| {
            let mut opts = options(kinetic, frobenius, 1.0);
            opts.regularisation.local_error = w;
            cnf.loss_and_grad_with(&X, &Trace::Exact, Differentiation::Discretise, &opts)
                .unwrap()
        };
        let (g0, g1, g2) = (with(0.0), with(1.0), with(2.0));
        assert_eq!(g0.penalties.local_error, None);
        let r = g1.penalties.local_error.unwrap();
        assert_eq!(g2.penalties.local_error, Some(r));
        assert_eq!((g1.loss, g1.forward), (g0.loss, g0.forward));
        assert!(r > 0.0 && r < 1.0, "R = {r}");
        assert!((g2.penalty - g0.penalty - 2.0 * r).abs() < 1e-12);
        let scale = g1.grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut moved = 0.0f64;
        for ((a, b), c) in g0.grad.iter().zip(&g1.grad).zip(&g2.grad) {
            assert!((c - a - 2.0 * (b - a)).abs() < 1e-9 * scale);
            moved = moved.max((b - a).abs());
        }
        println!(
            "kinetic {kinetic} frobenius {frobenius}: R = {r:.4e} over {} steps; the penalty \
             moves the gradient by {moved:.2e} (largest component {scale:.2e}); backward VJPs \
             {} -> {}",
            g1.forward.accepted, g0.backward.nfe, g1.backward.nfe
        );
        assert!(moved > 1e-6 * scale);
        // Dopri5's FSAL stage is live for the penalty: one more VJP per accepted step.
        assert_eq!(g1.backward.nfe, g0.backward.nfe + g0.forward.accepted);
    }
}

/// The local-error penalty refuses what cannot carry it: the adjoint (no discrete steps to
/// differentiate), fixed steps (no tolerances to measure against), a negative weight.
#[test]
fn local_error_penalty_refusals() {
    let adaptive = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-4, 1e-4).unwrap(),
    );
    let fixed = Cnf::new(model(), SolverSpec::fixed(Method::Dopri5, 4).unwrap());
    let adjoint = Differentiation::backsolve(1e-6, 1e-6);
    for (cnf, method, w) in [
        (&adaptive, adjoint, 1.0),
        (&fixed, Differentiation::Discretise, 1.0),
        (&adaptive, Differentiation::Discretise, -1.0),
    ] {
        let mut opts = options(0.0, 0.0, 1.0);
        opts.regularisation.local_error = w;
        let r = cnf.loss_and_grad_with(&X, &Trace::Exact, method, &opts);
        assert!(
            matches!(r, Err(FlowError::Invalid(_))),
            "{method:?} {w}: {r:?}"
        );
    }
}
