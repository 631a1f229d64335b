//! Shared helpers for the integration tests: random problems and finite-difference references.
#![allow(dead_code)]

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{Activation, Inputs, LayerKind, Mlp, MlpConfig, Trace, VectorField};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const ACTIVATIONS: [Activation; 4] = [
    Activation::Tanh,
    Activation::Softplus,
    Activation::Swish,
    Activation::Elu,
];

/// A random small MLP problem: architecture, seed, batch of points, cotangents and a time.
#[derive(Clone, Debug)]
pub struct Problem {
    pub mlp: Mlp<f64>,
    pub t: f64,
    pub z: Vec<f64>,
    pub a_v: Vec<f64>,
    pub a_div: Vec<f64>,
    pub batch: usize,
    pub seed: u64,
}

impl Problem {
    /// The VJP input at this problem's time, points and cotangents.
    pub fn input<'a>(&'a self, trace: &Trace<'a, f64>) -> VjpInput<'a, f64> {
        VjpInput::new(
            Inputs::shared(self.t, &self.z),
            *trace,
            &self.a_v,
            &self.a_div,
        )
    }
}

pub fn uniform(rng: &mut StdRng, n: usize, r: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-r..r)).collect()
}

pub fn problem(dim: usize, hidden: Vec<usize>, act: usize, batch: usize, seed: u64) -> Problem {
    problem_of_kind(dim, hidden, act, LayerKind::Concat, batch, seed)
}

pub fn problem_of_kind(
    dim: usize,
    hidden: Vec<usize>,
    act: usize,
    layer_kind: LayerKind,
    batch: usize,
    seed: u64,
) -> Problem {
    let config = MlpConfig {
        layer_kind,
        ..MlpConfig::new(dim, &hidden, ACTIVATIONS[act])
    };
    let mlp = Mlp::<f64>::new(config, seed).expect("valid config");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    Problem {
        t: rng.random_range(-1.0..1.0),
        z: uniform(&mut rng, batch * dim, 2.0),
        a_v: uniform(&mut rng, batch * dim, 1.0),
        a_div: uniform(&mut rng, batch, 1.0),
        mlp,
        batch,
        seed,
    }
}

/// Strategy over small random architectures, activations, batches and seeds.
pub fn problems() -> impl Strategy<Value = Problem> {
    (
        1usize..=3,
        prop::collection::vec(1usize..=7, 1..=3),
        0usize..4,
        prop_oneof![Just(LayerKind::Concat), Just(LayerKind::ConcatSquash)],
        1usize..=3,
        any::<u64>(),
    )
        .prop_map(|(dim, hidden, act, kind, batch, seed)| {
            problem_of_kind(dim, hidden, act, kind, batch, seed)
        })
}

/// `sum_b a_v[b].v[b] + a_div[b] div[b]` evaluated by the field's own forward pass.
pub fn objective<F: VectorField<f64>>(f: &F, p: &Problem, z: &[f64], trace: &Trace<f64>) -> f64 {
    let mut s = f.scratch(p.batch);
    let mut v = vec![0.0; z.len()];
    let mut div = vec![0.0; p.batch];
    f.eval_div_batch(&mut s, Inputs::shared(p.t, z), trace, &mut v, &mut div);
    v.iter().zip(&p.a_v).map(|(x, y)| x * y).sum::<f64>()
        + div.iter().zip(&p.a_div).map(|(x, y)| x * y).sum::<f64>()
}

pub const FD_STEP: f64 = 1e-6;

/// Central difference of `g` along coordinate `i` of `x`.
pub fn central_diff(x: &[f64], i: usize, h: f64, mut g: impl FnMut(&[f64]) -> f64) -> f64 {
    let mut xp = x.to_vec();
    xp[i] = x[i] + h;
    let fp = g(&xp);
    xp[i] = x[i] - h;
    let fm = g(&xp);
    (fp - fm) / (2.0 * h)
}

/// Largest elementwise relative error, with a floor of `1e-2 * max|expected|` (and 1e-8) on
/// the denominator so entries that are zero up to roundoff do not dominate.
pub fn max_rel_err(actual: &[f64], expected: &[f64]) -> f64 {
    rel_err_with_floor(actual, expected, 1e-8)
}

/// Relative error against a finite-difference gradient of an objective of size `objective`:
/// central differences carry a roundoff of about `eps * |objective| / h` (~1e-10 * |objective|),
/// so the denominator floor also includes `1e-3 * max(1, |objective|)`.
pub fn fd_rel_err(actual: &[f64], expected: &[f64], objective: f64) -> f64 {
    rel_err_with_floor(actual, expected, 1e-3 * objective.abs().max(1.0))
}

fn rel_err_with_floor(actual: &[f64], expected: &[f64], abs_floor: f64) -> f64 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let floor = (1e-2 * scale).max(abs_floor);
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs() / a.abs().max(e.abs()).max(floor))
        .fold(0.0, f64::max)
}

/// Jacobian `dv/dz` of one point by central differences, `(d, d)` row-major.
pub fn fd_jacobian(f: &impl Fn(&[f64]) -> Vec<f64>, z: &[f64], h: f64) -> Vec<f64> {
    let d = z.len();
    let mut jac = vec![0.0; d * d];
    for j in 0..d {
        let mut zp = z.to_vec();
        zp[j] += h;
        let vp = f(&zp);
        zp[j] = z[j] - h;
        let vm = f(&zp);
        for i in 0..d {
            jac[i * d + j] = (vp[i] - vm[i]) / (2.0 * h);
        }
    }
    jac
}

/// `(v, div)` of a field.
pub fn eval_div<F: VectorField<f64>>(
    f: &F,
    p: &Problem,
    trace: &Trace<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let mut s = f.scratch(p.batch);
    let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
    f.eval_div_batch(&mut s, Inputs::shared(p.t, &p.z), trace, &mut v, &mut div);
    (v, div)
}

/// `(v, div, g_z, g_theta)` of a field's VJP, accumulated onto the given starting gradients.
pub fn vjp<F: VectorField<f64>>(
    f: &F,
    p: &Problem,
    trace: &Trace<f64>,
    g_z0: &[f64],
    g_theta0: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut s = f.scratch(p.batch);
    let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
    let (mut g_z, mut g_theta) = (g_z0.to_vec(), g_theta0.to_vec());
    f.vjp_batch(
        &mut s,
        p.input(trace),
        VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_theta),
    );
    (v, div, g_z, g_theta)
}
