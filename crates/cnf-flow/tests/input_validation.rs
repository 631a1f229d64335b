//! Bad input at the library boundary: a typed error that names the argument, never a solve that
//! fails later with a misleading message, and no panic.
use cnf_field::{Activation, Linear, Mlp, MlpConfig, Trace};
use cnf_flow::{Cnf, FlowError};
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};

fn linear_flow() -> Cnf<f64, Linear<f64>> {
    let field = Linear::new(2, &[-0.5, 0.1, 0.0, -0.3], &[0.0, 0.0]).unwrap();
    Cnf::new(
        field,
        SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8).unwrap(),
    )
}

/// A finite f32 point so far out that log N(z) is -inf in f32 is an error naming the sample and
/// the precision; the same point in f64 has a finite log-density.
#[test]
fn log_density_that_overflows_the_precision_is_an_error() {
    let mlp = Mlp::<f32>::new(MlpConfig::new(2, &[8], Activation::Tanh), 3).unwrap();
    let cnf = Cnf::new(
        mlp.clone(),
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );
    let err = cnf.log_density(&[0.1, 0.2, 1e30, 0.0]).unwrap_err();
    assert_eq!(
        err,
        FlowError::NonFiniteOutput {
            sample: 1,
            quantity: "log-density",
            precision: "f32"
        }
    );
    assert!(err.to_string().contains("not finite in f32"), "{err}");
    let cnf64 = Cnf::new(
        mlp.cast::<f64>(),
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );
    let lp = cnf64.log_density(&[0.1, 0.2, 1e30, 0.0]).unwrap().logp;
    assert!(lp.iter().all(|v| v.is_finite()), "{lp:?}");
}

/// Zero points: an empty answer (nothing to integrate), not a solver error; the mean NLL of an
/// empty batch is undefined and says so.
#[test]
fn empty_inputs() {
    let cnf = linear_flow();
    let d = cnf.log_density(&[]).unwrap();
    assert!(d.logp.is_empty() && d.z1.is_empty());
    assert_eq!(d.stats.nfe, 0);
    assert!(cnf.transform(&[], 0.0, 1.0).unwrap().points.is_empty());
    let mut rng = rand::rng();
    assert!(cnf.sample(0, &mut rng).unwrap().points.is_empty());
    let err = cnf
        .loss_and_grad(&[], &Trace::Exact, Differentiation::Discretise)
        .unwrap_err();
    assert!(
        matches!(&err, FlowError::Invalid(m) if m.contains("empty")),
        "{err}"
    );
}

/// Bad tolerances are named before any solve (no "solve failed for sample 0 at t = NaN").
#[test]
fn bad_tolerances_name_the_argument() {
    for (rtol, atol, name) in [
        (-1e-5, 1e-5, "rtol"),
        (f64::NAN, 1e-5, "rtol"),
        (1e-5, 0.0, "atol"),
        (1e-5, f64::INFINITY, "atol"),
    ] {
        // The flow's SolverSpec refuses them where it is made.
        let err = linear_flow()
            .solver
            .with_tolerances(rtol, atol)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(name), "rtol {rtol} atol {atol}: {err}");
    }
    // The adjoint's own tolerances too.
    let err = linear_flow()
        .loss_and_grad(
            &[0.5, 0.5],
            &Trace::Exact,
            Differentiation::backsolve(-1.0, 1e-6),
        )
        .unwrap_err();
    assert!(
        matches!(&err, FlowError::Invalid(m) if m.contains("tolerance")),
        "{err}"
    );
    let err = SolverSpec::<f64>::fixed(Method::Rk4, 0).unwrap_err();
    assert!(err.to_string().starts_with("steps"), "{err}");
}

/// Input shape and non-finite input.
#[test]
fn shape_and_non_finite_input() {
    let cnf = linear_flow();
    assert_eq!(
        cnf.log_density(&[1.0, 2.0, 3.0]).unwrap_err(),
        FlowError::Shape { len: 3, dim: 2 }
    );
    assert_eq!(
        cnf.log_density(&[1.0, 2.0, f64::NAN, 0.0]).unwrap_err(),
        FlowError::NonFiniteInput { sample: 1 }
    );
}
