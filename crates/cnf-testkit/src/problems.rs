//! The benchmark problems of the project (definitions and peer measurements from
//! `docs/peers/peers.md`): Arenstorf's orbit, Kepler's problem with eccentricity 0.5
//! over 10 periods, and Lorenz to t = 5. Used by the tests and the work-precision example.
// Constants keep the digits of their published sources.
#![allow(clippy::excessive_precision)]

/// A benchmark initial-value problem on [0, t_end] with a reference final state and scipy's
/// measured work-precision (max abs error of the final state, NFE) at rtol = atol = 1e-3..1e-10.
#[derive(Debug, Clone, Copy)]
pub struct Problem<const N: usize> {
    /// Name as in the peers' tables.
    pub name: &'static str,
    /// Right-hand side.
    pub rhs: fn(f64, &[f64; N], &mut [f64; N]),
    /// Initial state at t = 0.
    pub y0: [f64; N],
    /// End of the span.
    pub t_end: f64,
    /// Reference y(t_end).
    pub reference: [f64; N],
    /// scipy 1.17.1 RK45 (err, NFE) at tolerances `TOLERANCES`.
    pub scipy_rk45: [(f64, f64); 8],
    /// scipy 1.17.1 DOP853 (err, NFE) at tolerances `TOLERANCES`.
    pub scipy_dop853: [(f64, f64); 8],
}

/// rtol = atol of the work-precision tables: 1e-3, 1e-4, ..., 1e-10.
pub const TOLERANCES: [f64; 8] = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10];

impl<const N: usize> Problem<N> {
    /// Max abs difference of `y` from the reference final state.
    pub fn error(&self, y: &[f64]) -> f64 {
        y.iter()
            .zip(&self.reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

/// Interpolates a work-precision curve (err, NFE) in log-log at `nfe`: the error the peer would
/// reach with that many evaluations (linear extrapolation beyond the ends).
pub fn error_at_nfe(curve: &[(f64, f64)], nfe: f64) -> f64 {
    let mut pts: Vec<(f64, f64)> = curve.iter().map(|&(e, n)| (n.ln(), e.ln())).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let x = nfe.ln();
    let i = pts
        .windows(2)
        .position(|w| x <= w[1].0)
        .unwrap_or(pts.len().saturating_sub(2));
    match (pts.get(i), pts.get(i + 1)) {
        (Some(&(x0, y0)), Some(&(x1, y1))) if x1 > x0 => {
            (y0 + (y1 - y0) * (x - x0) / (x1 - x0)).exp()
        }
        (Some(&(_, y0)), _) => y0.exp(),
        _ => f64::NAN,
    }
}

fn arenstorf_rhs(_t: f64, y: &[f64; 4], dy: &mut [f64; 4]) {
    const MU: f64 = 0.012277471;
    const MU1: f64 = 1.0 - MU;
    let d1 = ((y[0] + MU).powi(2) + y[1] * y[1]).powf(1.5);
    let d2 = ((y[0] - MU1).powi(2) + y[1] * y[1]).powf(1.5);
    dy[0] = y[2];
    dy[1] = y[3];
    dy[2] = y[0] + 2.0 * y[3] - MU1 * (y[0] + MU) / d1 - MU * (y[0] - MU1) / d2;
    dy[3] = y[1] - 2.0 * y[2] - MU1 * y[1] / d1 - MU * y[1] / d2;
}

fn kepler_rhs(_t: f64, y: &[f64; 4], dy: &mut [f64; 4]) {
    let r2 = y[0] * y[0] + y[1] * y[1];
    let r3 = r2 * r2.sqrt();
    dy[0] = y[2];
    dy[1] = y[3];
    dy[2] = -y[0] / r3;
    dy[3] = -y[1] / r3;
}

/// Lorenz's system with sigma = 10, rho = 28, beta = 8/3.
pub fn lorenz_rhs(_t: f64, y: &[f64; 3], dy: &mut [f64; 3]) {
    dy[0] = 10.0 * (y[1] - y[0]);
    dy[1] = y[0] * (28.0 - y[2]) - y[1];
    dy[2] = y[0] * y[1] - 8.0 / 3.0 * y[2];
}

const ARENSTORF_Y0: [f64; 4] = [0.994, 0.0, 0.0, -2.001_585_106_379_082_5];
const KEPLER_Y0: [f64; 4] = [0.5, 0.0, 0.0, 1.732_050_807_568_877_2];

/// Arenstorf's periodic restricted three-body orbit (Hairer-Norsett-Wanner I); y(t_end) = y0.
pub const ARENSTORF: Problem<4> = Problem {
    name: "arenstorf",
    rhs: arenstorf_rhs,
    y0: ARENSTORF_Y0,
    t_end: 17.065_216_560_157_962,
    reference: ARENSTORF_Y0,
    scipy_rk45: [
        (2.0e+00, 302.0),
        (1.9e+00, 494.0),
        (2.4e-01, 752.0),
        (1.6e-02, 1004.0),
        (6.5e-04, 1382.0),
        (1.5e-04, 2114.0),
        (2.6e-05, 3056.0),
        (3.3e-06, 4772.0),
    ],
    scipy_dop853: [
        (1.9e+00, 434.0),
        (2.2e-02, 674.0),
        (3.2e-02, 842.0),
        (6.9e-03, 1070.0),
        (6.7e-04, 1406.0),
        (8.4e-05, 1778.0),
        (7.3e-06, 2234.0),
        (1.3e-06, 2870.0),
    ],
};

/// Kepler's problem q'' = -q/|q|^3, eccentricity 0.5, 10 periods; y(t_end) = y0.
pub const KEPLER: Problem<4> = Problem {
    name: "kepler_e0.5_10periods",
    rhs: kepler_rhs,
    y0: KEPLER_Y0,
    t_end: 20.0 * std::f64::consts::PI,
    reference: KEPLER_Y0,
    scipy_rk45: [
        (2.6e+00, 776.0),
        (2.1e+00, 1016.0),
        (4.6e-01, 1484.0),
        (2.0e-02, 2216.0),
        (1.2e-03, 3032.0),
        (2.3e-05, 4028.0),
        (5.8e-06, 6392.0),
        (8.6e-07, 10148.0),
    ],
    scipy_dop853: [
        (1.4e-01, 1070.0),
        (9.6e-02, 1310.0),
        (5.3e-02, 1502.0),
        (6.6e-03, 2198.0),
        (1.3e-03, 2750.0),
        (1.1e-04, 3458.0),
        (7.6e-06, 4478.0),
        (8.4e-07, 5774.0),
    ],
};

/// Lorenz from (1, 1, 1) to t = 5; reference from scipy DOP853 at rtol = atol = 1e-13.
pub const LORENZ: Problem<3> = Problem {
    name: "lorenz_t5",
    rhs: lorenz_rhs,
    y0: [1.0, 1.0, 1.0],
    t_end: 5.0,
    reference: [-6.51211369941923, -6.974042788415759, 23.924129572104295],
    scipy_rk45: [
        (1.5e-01, 350.0),
        (1.8e-02, 494.0),
        (2.3e-03, 704.0),
        (2.4e-04, 986.0),
        (2.3e-05, 1538.0),
        (2.2e-06, 2414.0),
        (2.1e-07, 3806.0),
        (2.0e-08, 6014.0),
    ],
    scipy_dop853: [
        (9.9e-03, 446.0),
        (2.1e-02, 554.0),
        (4.3e-04, 674.0),
        (6.8e-05, 842.0),
        (2.8e-06, 1034.0),
        (2.4e-07, 1454.0),
        (2.0e-08, 1874.0),
        (1.7e-09, 2342.0),
    ],
};

/// Classic RK4 on Lorenz written out by hand over `[f64; 3]` (no solver): the floor a fixed-step
/// loop can reach, which the benchmarks compare `Solver::new(Rk4).fixed_steps(n)` against.
pub fn lorenz_rk4_by_hand(y: [f64; 3], t1: f64, n: usize) -> [f64; 3] {
    let h = t1 / n as f64;
    let axpy =
        |y: &[f64; 3], a: f64, k: &[f64; 3]| [y[0] + a * k[0], y[1] + a * k[1], y[2] + a * k[2]];
    let mut y = y;
    let (mut k1, mut k2, mut k3, mut k4) = ([0.0; 3], [0.0; 3], [0.0; 3], [0.0; 3]);
    for i in 0..n {
        let t = i as f64 * h;
        lorenz_rhs(t, &y, &mut k1);
        lorenz_rhs(t + 0.5 * h, &axpy(&y, 0.5 * h, &k1), &mut k2);
        lorenz_rhs(t + 0.5 * h, &axpy(&y, 0.5 * h, &k2), &mut k3);
        lorenz_rhs(t + h, &axpy(&y, h, &k3), &mut k4);
        for j in 0..3 {
            y[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
    }
    y
}
