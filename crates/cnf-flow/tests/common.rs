//! Shared helpers for the flow tests.
#![allow(dead_code)]
use cnf_field::{Activation, Mlp};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

/// The diffrax-trained 8gaussians model (see tests/data/README.md).
pub fn diffrax_model<T: cnf_field::Real>() -> Mlp<T> {
    Mlp::from_npz(
        format!("{DATA}/cnf_8g_diffrax_1000it.npz"),
        &[64, 64, 64],
        Activation::Tanh,
    )
    .unwrap()
}

/// Rows of logp_reference.csv: (x, logp, z1).
pub fn reference_rows() -> Vec<([f64; 2], f64, [f64; 2])> {
    let text = std::fs::read_to_string(format!("{DATA}/logp_reference.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|s| s.trim().parse().unwrap()).collect();
            ([v[0], v[1]], v[2], [v[3], v[4]])
        })
        .collect()
}

use cnf_field::{Trace, VectorField};
use cnf_flow::Cnf;

/// Mean negative log-likelihood of `x` under the flow (the loss `loss_and_grad` differentiates).
pub fn loss<F: VectorField<f64>>(cnf: &Cnf<f64, F>, x: &[f64], trace: &Trace<f64>) -> f64 {
    let d = cnf.log_density_with(x, trace).unwrap();
    -d.logp.iter().sum::<f64>() / d.logp.len() as f64
}

/// A central finite-difference formula and its step.
#[derive(Clone, Copy, Debug)]
pub enum Stencil {
    /// (f(h) - f(-h)) / (2h), truncation h^2 f'''/6: for losses that are not C5 (ELU).
    Second(f64),
    /// (8 (f(h) - f(-h)) - (f(2h) - f(-2h))) / (12 h), truncation h^4 f^(5) / 30.
    Fourth(f64),
}

/// For smooth losses: fourth order with h = 1e-3 (truncation ~1e-13, rounding ~1e-12).
pub const SMOOTH: Stencil = Stencil::Fourth(1e-3);

/// The derivative of `f` at 0 by `stencil`.
pub fn fd(mut f: impl FnMut(f64) -> f64, stencil: Stencil) -> f64 {
    match stencil {
        Stencil::Second(h) => (f(h) - f(-h)) / (2.0 * h),
        Stencil::Fourth(h) => {
            let (p1, m1, p2, m2) = (f(h), f(-h), f(2.0 * h), f(-2.0 * h));
            (8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * h)
        }
    }
}

/// Finite differences of the loss in the parameters `idx` (all if `None`).
pub fn fd_params<F: VectorField<f64> + Clone>(
    cnf: &Cnf<f64, F>,
    x: &[f64],
    trace: &Trace<f64>,
    idx: Option<&[usize]>,
    stencil: Stencil,
) -> Vec<f64> {
    let all: Vec<usize> = (0..cnf.field.num_params()).collect();
    let mut c = cnf.clone();
    idx.unwrap_or(&all)
        .iter()
        .map(|&i| {
            let p0 = cnf.field.params()[i];
            let g = fd(
                |e| {
                    c.field.params_mut()[i] = p0 + e;
                    loss(&c, x, trace)
                },
                stencil,
            );
            c.field.params_mut()[i] = p0;
            g
        })
        .collect()
}

/// Finite differences of the loss along a direction `u` in parameter space.
pub fn fd_param_direction<F: VectorField<f64> + Clone>(
    cnf: &Cnf<f64, F>,
    x: &[f64],
    trace: &Trace<f64>,
    u: &[f64],
    stencil: Stencil,
) -> f64 {
    let mut c = cnf.clone();
    fd(
        |e| {
            for ((p, &p0), &ui) in c
                .field
                .params_mut()
                .iter_mut()
                .zip(cnf.field.params())
                .zip(u)
            {
                *p = p0 + e * ui;
            }
            loss(&c, x, trace)
        },
        stencil,
    )
}

/// Finite differences of the loss in the input coordinates `idx` of `x` (all if `None`).
///
/// With fixed steps every point's trajectory is independent of the others, so the mean loss is
/// `(1/B) sum_b l_b(x_b)` and `dL/dx_i = (1/B) dl_b/dx_i`: the difference is taken of the
/// one-point loss (with that point's probes). Differencing the batch mean instead would keep the
/// mean's rounding noise while the derivative shrinks by `1/B` (at 300 points, ~2.6e-13 of noise
/// on derivatives of ~1e-5). Adaptive solves couple the points through the batch's error norm,
/// so they are differenced as a whole.
pub fn fd_x<F: VectorField<f64>>(
    cnf: &Cnf<f64, F>,
    x: &[f64],
    trace: &Trace<f64>,
    idx: Option<&[usize]>,
    stencil: Stencil,
) -> Vec<f64> {
    let all: Vec<usize> = (0..x.len()).collect();
    let d = cnf.dim();
    let batch = x.len() / d;
    let per_point = cnf.solver.fixed_steps().is_some();
    idx.unwrap_or(&all)
        .iter()
        .map(|&i| {
            if !per_point {
                let mut xp = x.to_vec();
                return fd(
                    |e| {
                        xp[i] = x[i] + e;
                        loss(cnf, &xp, trace)
                    },
                    stencil,
                );
            }
            let (b, j) = (i / d, i % d);
            let mut xb = x[b * d..][..d].to_vec();
            let probes: Vec<f64> = match trace {
                Trace::Exact => vec![],
                Trace::Hutchinson(u) => (0..u.len() / x.len())
                    .flat_map(|p| u[(p * batch + b) * d..][..d].iter().copied())
                    .collect(),
            };
            let one = match trace {
                Trace::Exact => Trace::Exact,
                Trace::Hutchinson(_) => Trace::Hutchinson(&probes),
            };
            fd(
                |e| {
                    xb[j] = x[i] + e;
                    loss(cnf, &xb, &one)
                },
                stencil,
            ) / batch as f64
        })
        .collect()
}

/// Worst per-component error `|g - r| / (|r| + floor)`: relative where the reference is larger
/// than `floor`, absolute (divided by `floor`) where it is smaller.
pub fn worst_rel(g: &[f64], r: &[f64], floor: f64) -> f64 {
    assert_eq!(g.len(), r.len());
    g.iter()
        .zip(r)
        .map(|(a, b)| (a - b).abs() / (b.abs() + floor))
        .fold(0.0, f64::max)
}

/// Runs `f` in a rayon pool of `threads` threads.
pub fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
