//! Which controller the flow's solves use ([`StepControl`]): the I controller for solves that
//! only move points, the tableau's PI controller for solves with log-density columns.
use cnf_flow::{Integrator, StepControl};
use cnf_ode::{Dop853, Method, PiParams, SolverSpec};

#[test]
fn auto_uses_the_i_controller_only_for_transport() {
    let i = Integrator::<f64>::default_dopri5();
    assert_eq!(i.control, StepControl::Auto);
    assert_eq!(i.controller_for(0), PiParams::DOPRI5_I);
    assert_eq!(i.controller_for(1), PiParams::DOPRI5);
    assert_eq!(i.controller_for(3), PiParams::DOPRI5);
    assert_eq!(i.spec().unwrap().controller(), PiParams::DOPRI5);
    // Other tableaux: their own parameters, without PI memory for transport.
    let d = Integrator::<f64>::adaptive(Dop853, 1e-6, 1e-8);
    assert_eq!(d.controller_for(0), PiParams::DOP853.integral());
    assert_eq!(d.controller_for(1), PiParams::DOP853);

    let t = i.with_control(StepControl::Tableau);
    assert_eq!(t.controller_for(0), PiParams::DOPRI5);
    let p = PiParams::DOPRI5.with_fac_max(5.0);
    let c = i.with_control(StepControl::Params(p));
    assert_eq!((c.controller_for(0), c.controller_for(1)), (p, p));
}

#[test]
fn specs_keep_their_controller() {
    let spec = SolverSpec::<f64>::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap();
    assert_eq!(
        Integrator::from_spec(&spec).unwrap().control,
        StepControl::Auto
    );
    let spec = spec
        .to_builder()
        .controller(PiParams::DOPRI5_I)
        .build()
        .unwrap();
    let i = Integrator::from_spec(&spec).unwrap();
    assert_eq!(i.control, StepControl::Params(PiParams::DOPRI5_I));
    assert_eq!(i.spec().unwrap(), spec);
    // Invalid parameters are refused when the solver is built, naming the field.
    let bad = i.with_control(StepControl::Params(PiParams {
        beta: 1.5,
        ..PiParams::DOPRI5
    }));
    let msg = bad.spec().unwrap_err().to_string();
    assert!(msg.contains("controller.beta"), "{msg}");
}
