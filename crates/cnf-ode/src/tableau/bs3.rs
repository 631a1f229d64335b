//! Bogacki-Shampine 3(2), FSAL, with the cubic Hermite interpolant (free: it uses k1 and k4).
use super::{method, DenseOutput, ErrorEstimate, Tableau};
use crate::controller::PiParams;

const B: [f64; 4] = [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0];

/// Cubic Hermite on (y0, h f0, y1, h f1): y0 + h01 (y1 - y0) + h10 h k1 + h11 h k4.
fn weights(th: f64, w: &mut [f64]) {
    let (t2, t3) = (th * th, th * th * th);
    let h01 = -2.0 * t3 + 3.0 * t2;
    let h10 = t3 - 2.0 * t2 + th;
    let h11 = t3 - t2;
    for i in 0..4 {
        w[i] = h01 * B[i];
    }
    w[0] += h10;
    w[3] += h11;
}

method!(
    Bs3,
    Tableau {
        name: "BS3",
        order: 3,
        error_order: 3,
        c: &[0.0, 0.5, 0.75, 1.0],
        a: &[
            &[],
            &[0.5],
            &[0.0, 0.75],
            &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0]
        ],
        b: &B,
        error: ErrorEstimate::Embedded(&[-5.0 / 72.0, 1.0 / 12.0, 1.0 / 9.0, -1.0 / 8.0]),
        fsal: true,
        dense: DenseOutput {
            end_derivative: true,
            extra: &[],
            weights,
        },
        controller: PiParams::DOPRI5,
    },
    "Bogacki-Shampine 3(2) (scipy's RK23, diffrax's Bosh3)."
);
