//! Both gradient methods against central finite differences of the loss, in f64.
use cnf_field::{rademacher_probes, Activation, Mlp, MlpConfig, Trace, VectorField};
use cnf_flow::{Cnf, GradMethod, Integrator};
use cnf_ode::{Dopri5, Rk4};
use rand::{rngs::StdRng, SeedableRng};

fn model() -> Mlp<f64> {
    Mlp::new(MlpConfig::new(2, &[8, 8], Activation::Tanh), 7).unwrap()
}

fn points() -> Vec<f64> {
    vec![0.5, -1.0, 1.5, 0.3, -0.7, -0.2, 2.0, 1.0, -1.2, 0.8]
}

/// Central differences of the loss in every parameter (step 1e-5).
fn fd_grad(cnf: &Cnf<f64, Mlp<f64>>, x: &[f64], trace: &Trace<f64>) -> Vec<f64> {
    let mut c = cnf.clone();
    let loss = |c: &Cnf<f64, Mlp<f64>>| -> f64 {
        let d = c.log_density_with(x, trace).unwrap();
        -d.logp.iter().sum::<f64>() / d.logp.len() as f64
    };
    let eps = 1e-5;
    (0..cnf.field.num_params())
        .map(|i| {
            let p0 = c.field.params()[i];
            c.field.params_mut()[i] = p0 + eps;
            let up = loss(&c);
            c.field.params_mut()[i] = p0 - eps;
            let down = loss(&c);
            c.field.params_mut()[i] = p0;
            (up - down) / (2.0 * eps)
        })
        .collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    diff / norm
}

/// With fixed steps the discrete gradient is the exact gradient of the computed loss.
#[test]
fn backprop_matches_finite_differences_fixed_steps() {
    let x = points();
    let mut rng = StdRng::seed_from_u64(3);
    let probes = rademacher_probes::<f64, _>(&mut rng, 1, 5, 2);
    for trace in [Trace::Exact, Trace::Hutchinson(&probes)] {
        for integ in [Integrator::fixed(Rk4, 8), Integrator::fixed(Dopri5, 4)] {
            let cnf = Cnf::new(model(), integ);
            let g = cnf.loss_and_grad(&x, &trace, GradMethod::Backprop).unwrap();
            let fd = fd_grad(&cnf, &x, &trace);
            let e = rel_err(&g.grad, &fd);
            println!(
                "backprop {} {:?}: rel err {e:.2e}",
                integ.tableau.name,
                matches!(trace, Trace::Exact)
            );
            assert!(e < 1e-6, "{e}");
            let dens = cnf.log_density_with(&x, &trace).unwrap();
            let loss = -dens.logp.iter().sum::<f64>() / 5.0;
            assert!((g.loss - loss).abs() < 1e-12);
        }
    }
}

/// Adaptive steps: the discrete gradient differs from the FD of the loss only by the step-size
/// sensitivity, which shrinks with the tolerance.
#[test]
fn backprop_adaptive_close_to_finite_differences() {
    let x = points();
    let cnf = Cnf::new(model(), Integrator::adaptive(Dopri5, 1e-9, 1e-9));
    let g = cnf
        .loss_and_grad(&x, &Trace::Exact, GradMethod::Backprop)
        .unwrap();
    let fd = fd_grad(&cnf, &x, &Trace::Exact);
    let e = rel_err(&g.grad, &fd);
    println!(
        "backprop adaptive 1e-9: rel err {e:.2e}, fwd {}, bwd {}",
        g.forward, g.backward
    );
    assert!(e < 1e-5, "{e}");
}

/// The adjoint gradient converges to the true gradient as the tolerances tighten.
#[test]
fn adjoint_converges_with_tolerance() {
    let x = points();
    let reference = {
        let cnf = Cnf::new(model(), Integrator::adaptive(Dopri5, 1e-11, 1e-11));
        fd_grad(&cnf, &x, &Trace::Exact)
    };
    let mut errs = vec![];
    for tol in [1e-4, 1e-7, 1e-10] {
        let cnf = Cnf::new(model(), Integrator::adaptive(Dopri5, tol, tol));
        let g = cnf
            .loss_and_grad(
                &x,
                &Trace::Exact,
                GradMethod::Adjoint {
                    rtol: tol,
                    atol: tol,
                },
            )
            .unwrap();
        let e = rel_err(&g.grad, &reference);
        println!(
            "adjoint tol {tol:e}: rel err {e:.2e}, fwd {}, bwd {}",
            g.forward, g.backward
        );
        errs.push(e);
    }
    assert!(errs[2] < 1e-6, "{errs:?}");
    assert!(errs[2] < errs[1] && errs[1] < errs[0], "{errs:?}");
}
