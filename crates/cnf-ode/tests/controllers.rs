//! The step controller is a type parameter of `Solver`: the default comes with the tableau, a
//! second controller and a user's own controller plug in through `StepController`.
use cnf_ode::{
    AcceptedStep, Dop853, Dopri5, IController, PiController, PiParams, Solver, StepController,
    Tsit5,
};

/// Step sizes of the accepted steps of y' = -y on [0, 10] from a tiny first step.
fn accepted_steps<C: StepController<f64> + Clone>(solver: &Solver<Dop853, f64, C>) -> Vec<f64> {
    let mut hs = Vec::new();
    solver
        .solve_observed(
            |_t, y, dy| dy[0] = -y[0],
            0.0,
            10.0,
            &[1.0],
            &mut |s: &AcceptedStep<'_, f64, [f64; 1]>| hs.push(s.t - s.t_prev),
        )
        .unwrap();
    hs
}

#[test]
fn defaults_come_with_the_tableau() {
    assert_eq!(
        Solver::<_, f64>::new(Dop853).step_controller(),
        &PiController::from_params(PiParams::DOP853)
    );
    assert_eq!(
        Solver::<_, f64>::new(Dopri5).step_controller(),
        &PiController::from_params(PiParams::DOPRI5)
    );
    assert_eq!(
        Solver::<_, f64>::new(Tsit5).step_controller(),
        &PiController::from_params(PiParams::DOPRI5)
    );
}

/// From a first step of 1e-6 on a smooth problem every step wants to grow as fast as allowed:
/// DOP853's default never grows a step by more than 6, and with the cap set to scipy's 10 it
/// does grow by more than 6 and needs fewer steps.
#[test]
fn dop853_step_growth_cap_is_six_and_settable() {
    let base = Solver::new(Dop853).rtol(1e-6).atol(1e-9).initial_step(1e-6);
    let ratios = |hs: &[f64]| hs.windows(2).map(|w| w[1] / w[0]).collect::<Vec<_>>();
    let capped = accepted_steps(&base);
    let max6 = ratios(&capped).into_iter().fold(0.0, f64::max);
    assert!(max6 <= 6.0 * (1.0 + 1e-12), "growth {max6}");
    assert!(max6 > 5.9, "the cap is reached: {max6}");
    let scipy = accepted_steps(&base.clone().step_growth_cap(10.0));
    let max10 = ratios(&scipy).into_iter().fold(0.0, f64::max);
    assert!(
        max10 > 6.5 && max10 <= 10.0 * (1.0 + 1e-12),
        "growth {max10}"
    );
    assert!(
        scipy.len() < capped.len(),
        "{} vs {}",
        scipy.len(),
        capped.len()
    );
}

/// The I controller reaches the tolerance like the PI controller.
#[test]
fn i_controller_solves_to_tolerance() {
    for tol in [1e-4, 1e-8] {
        let sol = Solver::new(Dopri5)
            .rtol(tol)
            .atol(tol)
            .controller(IController::default())
            .solve(
                |t, y, dy| {
                    dy[0] = y[1];
                    dy[1] = -y[0] + 0.0 * t;
                },
                0.0,
                10.0,
                &[1.0, 0.0],
            )
            .unwrap();
        let err = (sol.y[0] - 10f64.cos())
            .abs()
            .max((sol.y[1] + 10f64.sin()).abs());
        assert!(err < 100.0 * tol, "tol {tol}: err {err}");
        assert!(sol.stats.accepted > 3, "{}", sol.stats);
    }
}

/// A user's controller: always accepts and asks for the same step, rejecting the first
/// attempt once.
#[derive(Clone)]
struct Constant {
    h: f64,
    rejected_once: bool,
}

impl StepController<f64> for Constant {
    fn decide(&mut self, _err: f64, h: f64, _order: u32) -> (bool, f64) {
        if !self.rejected_once {
            self.rejected_once = true;
            return (false, self.h * h.signum());
        }
        (true, self.h * h.signum())
    }
    fn reset(&mut self) {
        self.rejected_once = false;
    }
}

#[test]
fn a_user_controller_plugs_in() {
    let solver = Solver::new(Dopri5).controller(Constant {
        h: 0.25,
        rejected_once: true,
    });
    // reset() runs at the start of each solve: one rejection per solve, then steps of 0.25.
    for _ in 0..2 {
        let sol = solver
            .solve(|_t, y, dy| dy[0] = -y[0], 0.0, 1.0, &[1.0])
            .unwrap();
        assert_eq!((sol.stats.accepted, sol.stats.rejected), (4, 1));
        // Four Dopri5 steps of 0.25: error of order h^5 / 5! per unit time, well below 1e-4.
        assert!((sol.y[0] - (-1f64).exp()).abs() < 1e-5);
        assert!((sol.y[0] - (-1f64).exp()).abs() > 1e-12);
    }
}
