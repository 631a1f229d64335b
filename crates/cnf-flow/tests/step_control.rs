//! Which controller the flow's solves use: without an explicit controller in the
//! [`SolverSpec`], the tableau's without PI memory for solves that only move points, the
//! tableau's PI controller for solves with log-density columns; an explicit controller for all.
use cnf_field::Linear;
use cnf_flow::Cnf;
use cnf_ode::{Method, PiParams, SolverSpec};

fn flow(spec: SolverSpec<f64>) -> Cnf<f64, Linear<f64>> {
    let field = Linear::new(2, &[0.5, 0.2, -0.7, -0.3], &[0.1, 0.0]).unwrap();
    Cnf::new(field, spec)
}

#[test]
fn the_default_uses_the_i_controller_only_for_transport() {
    let auto = SolverSpec::<f64>::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap();
    assert_eq!(auto.explicit_controller(), None);
    assert_eq!(auto.controller(), PiParams::DOPRI5);
    let with = |p: PiParams| auto.to_builder().controller(p).build().unwrap();
    let x = [0.3, -1.2, 2.0, 0.7, -0.4, 0.1];
    // Transport: the I controller.
    let (a, i) = (
        flow(auto.clone()).transform(&x, 0.0, 1.0).unwrap(),
        flow(with(PiParams::DOPRI5_I))
            .transform(&x, 0.0, 1.0)
            .unwrap(),
    );
    assert_eq!((&a.points, a.stats), (&i.points, i.stats));
    // Log-densities: the tableau's PI controller.
    let (a, pi) = (
        flow(auto.clone()).log_density(&x).unwrap(),
        flow(with(PiParams::DOPRI5)).log_density(&x).unwrap(),
    );
    assert_eq!((&a.logp, a.stats), (&pi.logp, pi.stats));
    // Other tableaux: their own parameters.
    let d = SolverSpec::<f64>::adaptive(Method::Dop853, 1e-6, 1e-8).unwrap();
    assert_eq!(d.controller(), PiParams::DOP853);
}

#[test]
fn specs_keep_their_controller() {
    let spec = SolverSpec::<f64>::adaptive(Method::Dopri5, 1e-5, 1e-5)
        .unwrap()
        .to_builder()
        .controller(PiParams::DOPRI5_I)
        .build()
        .unwrap();
    assert_eq!(spec.explicit_controller(), Some(PiParams::DOPRI5_I));
    assert_eq!(spec.to_builder().build().unwrap(), spec);
    // Invalid parameters are refused when the spec is built, naming the field.
    let msg = spec
        .to_builder()
        .controller(PiParams {
            beta: 1.5,
            ..PiParams::DOPRI5
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("controller.beta"), "{msg}");
}
