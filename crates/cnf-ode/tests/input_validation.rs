//! Bad input at the solver boundary: typed errors whose messages read as numbers and names.
use cnf_ode::{Dopri5, OdeError, Solver};

#[test]
fn empty_state_is_refused() {
    let err = Solver::new(Dopri5)
        .solve_system(
            &mut |_t: f64, _y: &Vec<f64>, _dy: &mut Vec<f64>| {},
            0.0,
            1.0,
            &Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(err, OdeError::EmptyState), "{err}");
    assert_eq!(err.to_string(), "the initial state has no components");
}

#[test]
fn output_time_outside_the_span_prints_plain_numbers() {
    let err = Solver::new(Dopri5)
        .output_times(vec![2.0])
        .solve_system(
            &mut |_t: f64, y: &[f64; 1], dy: &mut [f64; 1]| dy[0] = -y[0],
            0.0,
            1.0,
            &[1.0],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid time span: output time 2 outside [0, 1]"
    );
}
