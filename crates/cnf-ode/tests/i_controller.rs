//! The I controller (`PiParams::DOPRI5_I`) against Hairer's PI controller (`PiParams::DOPRI5`)
//! on a problem whose error estimate is known in closed form.
//!
//! For y' = t^4, Dopri5's error estimate over [t, t + h] is h sum_i e_i (t + c_i h)^4. Both the
//! 5th-order weights and the embedded 4th-order weights integrate cubics exactly, so
//! sum_i e_i c_i^j = 0 for j <= 3, and the estimate is K h^5 with K = sum_i e_i c_i^4, whatever
//! t. With the scale fixed at atol (rtol negligible), the scaled error is err = (h / h*)^5,
//! h* = (atol / |K|)^(1/5). Then:
//! - the I controller (h_new = h clamp(0.9 err^(-1/5), 0.2, 10)) reaches 0.9 h* in one update
//!   (when the factor cap 10 allows) and stays there;
//! - the PI controller (h_new = h clamp(0.9 err^-(1/5 - 0.75 beta) err_prev^beta, 0.2, 10), beta
//!   0.04, err_prev = 1e-4 before the first step) follows u' = 0.15 u + 0.2 u_prev + ln 0.9 in
//!   u = ln(h / h*), whose fixed point is h* 0.9^(1/0.65) ~ 0.850 h*, approached by a factor
//!   ~0.53 per step: it needs more steps from a small first step, and its steady steps are
//!   0.9^(1 - 1/0.65) ~ 1/1.058 of the I controller's.
use cnf_ode::{AcceptedStep, Dopri5, PiController, PiParams, Solver};

/// Hairer's DOPRI5 nodes and error weights e = b - b_hat (dopri5.f: C2..C7, E1..E7).
const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

fn moment(j: i32) -> f64 {
    C.iter().zip(E).map(|(c, e)| e * c.powi(j)).sum()
}

/// Accepted step sizes of y' = t^4 on [0, t1] with err = (h / h*)^5, and the rejections.
fn steps(p: PiParams, h_star: f64, h0: f64, t1: f64) -> (Vec<f64>, usize) {
    let atol = moment(4).abs() * h_star.powi(5);
    let mut hs = Vec::new();
    let sol = Solver::new(Dopri5)
        .rtol(1e-300)
        .atol(atol)
        .initial_step(h0)
        .controller(PiController::from_params(p))
        .solve_observed(
            |t, _y, dy| dy[0] = t.powi(4),
            0.0,
            t1,
            &[0.0],
            &mut |s: &AcceptedStep<'_, f64, [f64; 1]>| hs.push(s.t - s.t_prev),
        )
        .unwrap();
    assert!((sol.y[0] - t1.powi(5) / 5.0).abs() < 1e-12 * t1.powi(5));
    (hs, sol.stats.rejected)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn the_error_estimate_of_t4_is_k_h5() {
    for j in 0..4 {
        assert!(moment(j).abs() < 1e-15, "moment {j}: {}", moment(j));
    }
    assert!(moment(4).abs() > 1e-4, "K = {}", moment(4));
}

#[test]
fn i_controller_jumps_to_0_9_h_star_and_stays() {
    let h_star = 0.1;
    // From 0.05 h*: factor 0.9 / 0.05 = 18 is capped at 10 -> 0.5 h*; then 0.9 / 0.5 -> 0.9 h*.
    let (hs, rejected) = steps(PiParams::DOPRI5_I, h_star, 0.05 * h_star, 1.0);
    assert_eq!(rejected, 0);
    assert!(close(hs[1], 0.5 * h_star, 1e-8), "{hs:?}");
    let full = &hs[2..hs.len() - 1];
    assert!(full.len() >= 8, "{hs:?}");
    for &h in full {
        assert!(
            close(h, 0.9 * h_star, 1e-8),
            "{h} vs {}: {hs:?}",
            0.9 * h_star
        );
    }
    // The same as the tableau's parameters with beta = 0.
    assert_eq!(PiParams::DOPRI5.integral(), PiParams::DOPRI5_I);
}

#[test]
fn pi_controller_follows_its_recursion_to_0_85_h_star() {
    let h_star = 0.1;
    let p = PiParams::DOPRI5;
    let (hs, rejected) = steps(p, h_star, 0.05 * h_star, 3.0);
    assert_eq!(rejected, 0);
    // Hairer's update with the exact error model err_n = (h_n / h*)^5.
    let expo = 0.2 - 0.75 * p.beta;
    let mut err_prev: f64 = 1e-4;
    for w in hs[..hs.len() - 1].windows(2) {
        let err = (w[0] / h_star).powi(5);
        let fac = (0.9 * err.powf(-expo) * err_prev.powf(p.beta)).clamp(p.fac_min, p.fac_max);
        assert!(close(w[1], w[0] * fac, 1e-7), "{} vs {}", w[1], w[0] * fac);
        err_prev = err.max(1e-4);
    }
    let fixed_point = h_star * 0.9f64.powf(1.0 / 0.65);
    let last_full = hs[hs.len() - 2];
    assert!(
        close(last_full, fixed_point, 1e-4),
        "{last_full} vs {fixed_point}"
    );
    // The I controller's steady step is longer by 0.9^(1 - 1/0.65) ~ 1.058.
    let (i_hs, _) = steps(PiParams::DOPRI5_I, h_star, 0.05 * h_star, 3.0);
    let ratio = i_hs[i_hs.len() - 2] / last_full;
    assert!(close(ratio, 0.9f64.powf(1.0 - 1.0 / 0.65), 1e-4), "{ratio}");
}

/// From a small first step the I controller needs fewer steps than the PI controller.
#[test]
fn i_controller_takes_fewer_steps_from_a_small_first_step() {
    let h_star = 0.1;
    for h0 in [1e-3, 1e-2] {
        let (i_hs, _) = steps(PiParams::DOPRI5_I, h_star, h0 * h_star, 1.0);
        let (pi_hs, _) = steps(PiParams::DOPRI5, h_star, h0 * h_star, 1.0);
        assert!(
            i_hs.len() < pi_hs.len(),
            "{} vs {}",
            i_hs.len(),
            pi_hs.len()
        );
    }
}
