//! Tsitouras 5(4), FSAL, with its free fourth-order continuous extension.
//!
//! Constants: Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column
//! simplifying assumption", Comput. Math. Appl. 62 (2011) 770-775, as tabulated (in f64) by
//! OrdinaryDiffEq.jl (`Tsit5ConstantCache`, `Tsit5Interp`) and used by diffrax's `Tsit5`.
// Constants keep the digits of their published sources.
#![allow(clippy::excessive_precision)]
use super::{method, DenseOutput, ErrorEstimate, Tableau};
use crate::controller::PiParams;

const B: [f64; 7] = [
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
    0.0,
];

/// b_i(theta) = sum_j R[i][j] theta^(j+1): the interpolation polynomials (expanded form).
const R: [[f64; 4]; 7] = [
    [
        1.0,
        -2.763706197274826,
        2.9132554618219126,
        -1.0530884977290216,
    ],
    [0.0, 0.13169999999999998, -0.2234, 0.1017],
    [
        0.0,
        3.9302962368947516,
        -5.941033872131505,
        2.490627285651253,
    ],
    [
        0.0,
        -12.411077166933676,
        30.33818863028232,
        -16.548102889244902,
    ],
    [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [
        0.0,
        -27.896526289197286,
        65.09189467479366,
        -34.87065786149661,
    ],
    [0.0, 1.5, -4.0, 2.5],
];

fn weights(th: f64, w: &mut [f64]) {
    for (wi, r) in w.iter_mut().zip(&R) {
        *wi = th * (r[0] + th * (r[1] + th * (r[2] + th * r[3])));
    }
}

method!(
    Tsit5,
    Tableau {
        name: "Tsit5",
        order: 5,
        error_order: 5,
        c: &[0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
        a: &[
            &[],
            &[0.161],
            &[-0.008480655492356989, 0.335480655492357],
            &[2.8971530571054935, -6.359448489975075, 4.3622954328695815],
            &[
                5.325864828439257,
                -11.748883564062828,
                7.4955393428898365,
                -0.09249506636175525,
            ],
            &[
                5.86145544294642,
                -12.92096931784711,
                8.159367898576159,
                -0.071584973281401,
                -0.028269050394068383,
            ],
            &[
                0.09646076681806523,
                0.01,
                0.4798896504144996,
                1.379008574103742,
                -3.290069515436081,
                2.324710524099774,
            ],
        ],
        b: &B,
        // b_hat - b (OrdinaryDiffEq's btilde); the sign is irrelevant to the norm.
        error: ErrorEstimate::Embedded(&[
            -0.00178001105222577714,
            -0.0008164344596567469,
            0.007880878010261995,
            -0.1447110071732629,
            0.5823571654525552,
            -0.45808210592918697,
            1.0 / 66.0,
        ]),
        fsal: true,
        dense: DenseOutput {
            end_derivative: true,
            extra: &[],
            weights,
        },
        controller: PiParams::DOPRI5,
    },
    "Tsitouras 5(4) (diffrax's and DifferentialEquations.jl's Tsit5): FSAL, free dense output \
     of order 4, usually a little more efficient than Dopri5."
);
