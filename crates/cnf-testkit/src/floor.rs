//! Hand-written adaptive solver loops: the floor that the benchmarks measure cnf-ode's
//! small-state path (`Solver::solve_small`) against.
//!
//! [`dopri5_by_hand`] is Dormand-Prince 5(4) written out for `[f64; N]`, with the solver's step
//! selection reproduced formula for formula (Hairer's initial step, Hairer's RMS error norm, the
//! PI controller with Hairer's DOPRI5 settings), so that it takes the same accepted and rejected
//! steps as `Solver::new(Dopri5)` and ends on the same state (tested in
//! `tests/dopri5_floor.rs`). It is what a user would write for one problem: the stages are local
//! arrays, the right-hand side is a closure the compiler can inline, and nothing else happens
//! per step (no output times, observers, step-size floor, step limit or non-finite checks).

/// Right-hand-side evaluations and steps of a hand-written solve (as cnf-ode's `Stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Right-hand-side evaluations (the initial step's two included).
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

// Dormand-Prince 5(4): nodes, rows of A (the last row is b: FSAL), b - b_hat. The same
// expressions as cnf-ode's tableau, so the same doubles.
const C2: f64 = 0.2;
const C3: f64 = 0.3;
const C4: f64 = 0.8;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 0.2;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

// Hairer's DOPRI5 controller: safety 0.9, beta 0.04, step factor in [0.2, 10], error order 5.
const SAFETY: f64 = 0.9;
const BETA: f64 = 0.04;
const EXPO: f64 = 1.0 / 5.0 - 0.75 * BETA;
/// 1 / fac_max, 1 / fac_min: the bounds of h / h_new.
const UP: f64 = 1.0 / 10.0;
const DOWN: f64 = 1.0 / 0.2;

/// Dopri5 from (t0, y0) to t1 > t0 with scalar tolerances, by hand: the final state and the
/// counts. `f(t, y, dy)` writes f(t, y) into `dy`.
pub fn dopri5_by_hand<const N: usize>(
    mut f: impl FnMut(f64, &[f64; N], &mut [f64; N]),
    t0: f64,
    t1: f64,
    y0: [f64; N],
    rtol: f64,
    atol: f64,
) -> ([f64; N], Counts) {
    assert!(t1 > t0, "forward in time only");
    let h_max = t1 - t0;
    let zero = [0.0; N];
    let (mut k1, mut k2, mut k3, mut k4, mut k5, mut k6, mut k7) =
        (zero, zero, zero, zero, zero, zero, zero);
    f(t0, &y0, &mut k1);

    // Hairer's initial step: the norms of y0 and f0, then of f's change over an Euler step.
    // sum_i (v_i / (atol + rtol |y0_i|))^2
    let sum_sq = |v: [f64; N]| {
        (0..N).fold(0.0, |acc, i| {
            acc + (v[i] / (atol + rtol * y0[i].abs())).powi(2)
        })
    };
    let dnf = sum_sq(k1);
    let dny = sum_sq(y0);
    let mut h = if dnf <= 1e-10 || dny <= 1e-10 {
        1e-6
    } else {
        (dny / dnf).sqrt() * 0.01
    }
    .min(h_max);
    let y1: [f64; N] = std::array::from_fn(|i| y0[i] + h * k1[i]);
    f(t0 + h, &y1, &mut k2);
    let der2 = sum_sq(std::array::from_fn(|i| k2[i] - k1[i])).sqrt() / h;
    let der12 = der2.abs().max(dnf.sqrt());
    let h1 = if der12 <= 1e-15 {
        1e-6f64.max(h * 1e-3)
    } else {
        (0.01 / der12).powf(1.0 / 5.0)
    };
    h = (h * 100.0).min(h1).min(h_max);
    if !h.is_finite() {
        h = 1e-6f64.min(h_max);
    }

    let mut counts = Counts {
        nfe: 2,
        accepted: 0,
        rejected: 0,
    };
    let (mut t, mut y) = (t0, y0);
    // err_prev^beta of the PI controller, formed when a step is accepted.
    let mut prev_pow = 1e-4f64.powf(BETA);
    let mut rejected_last = false;
    loop {
        // Stretch to t1 when within 1% of it.
        let last = t + 1.01 * h - t1 >= 0.0;
        if last {
            h = t1 - t;
        }
        let y2 = std::array::from_fn(|i| y[i] + h * (A21 * k1[i]));
        f(t + C2 * h, &y2, &mut k2);
        let y3 = std::array::from_fn(|i| y[i] + h * (A31 * k1[i] + A32 * k2[i]));
        f(t + C3 * h, &y3, &mut k3);
        let y4 = std::array::from_fn(|i| y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]));
        f(t + C4 * h, &y4, &mut k4);
        let y5 = std::array::from_fn(|i| {
            y[i] + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
        });
        f(t + C5 * h, &y5, &mut k5);
        let y6 = std::array::from_fn(|i| {
            y[i] + h * (A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i])
        });
        f(t + h, &y6, &mut k6);
        let y_new = std::array::from_fn(|i| {
            y[i] + h * (A71 * k1[i] + A73 * k3[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i])
        });
        f(t + h, &y_new, &mut k7);
        counts.nfe += 6;

        // Hairer's error norm: |h| sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |y_new_i|)))^2).
        let mut acc = 0.0;
        for i in 0..N {
            let e = E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i];
            let r = e / (atol + rtol * y[i].abs().max(y_new[i].abs()));
            acc += r * r;
        }
        let err = h.abs() * (acc / N as f64).sqrt();

        let err_pow = err.powf(EXPO);
        if err <= 1.0 {
            let mut h_new = h / (err_pow / prev_pow / SAFETY).clamp(UP, DOWN);
            if rejected_last {
                h_new = h_new.min(h);
            }
            prev_pow = err.max(1e-4).powf(BETA);
            rejected_last = false;
            counts.accepted += 1;
            t = if last { t1 } else { t + h };
            y = y_new;
            k1 = k7;
            if last {
                return (y, counts);
            }
            h = h_new.min(h_max);
        } else {
            rejected_last = true;
            counts.rejected += 1;
            h /= DOWN.min(err_pow / SAFETY);
        }
    }
}
