//! Fixed-step methods: Euler, explicit midpoint, Heun, classic RK4, each with its natural
//! continuous extension (weights polynomial in theta that reduce to b at theta = 1).
use super::{method, DenseOutput, ErrorEstimate, Tableau};
use crate::controller::PiParams;

method!(
    Euler,
    Tableau {
        name: "Euler",
        order: 1,
        error_order: 1,
        c: &[0.0],
        a: &[&[]],
        b: &[1.0],
        error: ErrorEstimate::None,
        fsal: false,
        dense: DenseOutput {
            end_derivative: false,
            extra: &[],
            weights: |th, w| w[0] = th,
        },
        controller: PiParams::DOPRI5,
    },
    "Forward Euler, order 1."
);

method!(
    Midpoint,
    Tableau {
        name: "Midpoint",
        order: 2,
        error_order: 2,
        c: &[0.0, 0.5],
        a: &[&[], &[0.5]],
        b: &[0.0, 1.0],
        error: ErrorEstimate::None,
        fsal: false,
        dense: DenseOutput {
            end_derivative: false,
            extra: &[],
            weights: |th, w| {
                w[0] = th - th * th;
                w[1] = th * th;
            },
        },
        controller: PiParams::DOPRI5,
    },
    "Explicit midpoint rule, order 2."
);

method!(
    Heun,
    Tableau {
        name: "Heun",
        order: 2,
        error_order: 2,
        c: &[0.0, 1.0],
        a: &[&[], &[1.0]],
        b: &[0.5, 0.5],
        error: ErrorEstimate::None,
        fsal: false,
        dense: DenseOutput {
            end_derivative: false,
            extra: &[],
            weights: |th, w| {
                w[0] = th - 0.5 * th * th;
                w[1] = 0.5 * th * th;
            },
        },
        controller: PiParams::DOPRI5,
    },
    "Heun's method (explicit trapezoid), order 2."
);

method!(
    Rk4,
    Tableau {
        name: "RK4",
        order: 4,
        error_order: 4,
        c: &[0.0, 0.5, 0.5, 1.0],
        a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
        b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
        error: ErrorEstimate::None,
        fsal: false,
        dense: DenseOutput {
            end_derivative: false,
            extra: &[],
            // The classic third-order continuous extension of RK4.
            weights: |th, w| {
                let (t2, t3) = (th * th, th * th * th);
                w[0] = th - 1.5 * t2 + 2.0 / 3.0 * t3;
                w[1] = t2 - 2.0 / 3.0 * t3;
                w[2] = w[1];
                w[3] = -0.5 * t2 + 2.0 / 3.0 * t3;
            },
        },
        controller: PiParams::DOPRI5,
    },
    "The classic fourth-order Runge-Kutta method."
);
