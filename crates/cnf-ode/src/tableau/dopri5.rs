//! Dormand-Prince 5(4) ("RK45"), FSAL, with Hairer's fourth-order continuous extension.
use super::{method, DenseOutput, ErrorEstimate, Tableau};
use crate::controller::PiParams;

const B: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];

/// Hairer's dense-output coefficients (DOPRI5, `contd5`).
const D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// Hairer's nested form y0 + th (D + (1-th)(h k1 - D + th (2D - h k1 - h k7 + (1-th) h d.k))),
/// with D = y1 - y0 = h b.k, written as weights on the stages.
fn weights(th: f64, w: &mut [f64]) {
    let s = 1.0 - th;
    for i in 0..7 {
        let e1 = f64::from(u8::from(i == 0));
        let e7 = f64::from(u8::from(i == 6));
        w[i] = th * (B[i] + s * (e1 - B[i] + th * (2.0 * B[i] - e1 - e7 + s * D[i])));
    }
}

method!(
    Dopri5,
    Tableau {
        name: "Dopri5",
        order: 5,
        error_order: 5,
        c: &[0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
        a: &[
            &[],
            &[0.2],
            &[3.0 / 40.0, 9.0 / 40.0],
            &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
            &[
                19372.0 / 6561.0,
                -25360.0 / 2187.0,
                64448.0 / 6561.0,
                -212.0 / 729.0,
            ],
            &[
                9017.0 / 3168.0,
                -355.0 / 33.0,
                46732.0 / 5247.0,
                49.0 / 176.0,
                -5103.0 / 18656.0,
            ],
            &[
                35.0 / 384.0,
                0.0,
                500.0 / 1113.0,
                125.0 / 192.0,
                -2187.0 / 6784.0,
                11.0 / 84.0,
            ],
        ],
        b: &B,
        // b - b_hat
        error: ErrorEstimate::Embedded(&[
            71.0 / 57600.0,
            0.0,
            -71.0 / 16695.0,
            71.0 / 1920.0,
            -17253.0 / 339200.0,
            22.0 / 525.0,
            -1.0 / 40.0,
        ]),
        fsal: true,
        dense: DenseOutput {
            end_derivative: true,
            extra: &[],
            weights,
        },
        controller: PiParams::DOPRI5,
    },
    "Dormand-Prince 5(4), the method of scipy's RK45 and diffrax's Dopri5 (FSAL, free dense output)."
);
