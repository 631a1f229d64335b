//! A per-row context `c (B, k)` through the MLP: `v`, the divergence (over `z` only) and the
//! VJPs (`g_z`, `g_theta` with the context's first-layer weights, `g_context`) against the
//! dual-number oracle and central finite differences in f64, f32 against f64, at shared and
//! per-row times, both layer kinds, batches on both sides of the fused kernel's threshold; and
//! `k = 0` against the unconditional network bit for bit.

mod common;

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{
    rademacher_probes, DualField, Inputs, LayerKind, Mlp, MlpConfig, Real, ShapeCheck, Trace,
    VectorField,
};
use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A conditional problem: a network with context width `k >= 1`, points, contexts, times
/// (shared or per row), cotangents and two Rademacher probes per point.
#[derive(Clone, Debug)]
struct CondProblem {
    mlp: Mlp<f64>,
    z: Vec<f64>,
    c: Vec<f64>,
    ts: Option<Vec<f64>>,
    t: f64,
    a_v: Vec<f64>,
    a_div: Vec<f64>,
    probes: Vec<f64>,
    batch: usize,
}

impl CondProblem {
    fn inputs<'a>(&'a self, z: &'a [f64], c: &'a [f64]) -> Inputs<'a, f64> {
        match &self.ts {
            Some(ts) => Inputs::per_row(ts, z),
            None => Inputs::shared(self.t, z),
        }
        .with_context(c)
    }
}

#[allow(clippy::too_many_arguments)]
fn cond_problem(
    dim: usize,
    hidden: Vec<usize>,
    act: usize,
    kind: LayerKind,
    k: usize,
    batch: usize,
    per_row: bool,
    seed: u64,
) -> CondProblem {
    let config = MlpConfig {
        layer_kind: kind,
        ..MlpConfig::new(dim, &hidden, ACTIVATIONS[act]).with_context(k)
    };
    let mlp = Mlp::<f64>::new(config, seed).expect("valid config");
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc0_47e7);
    CondProblem {
        z: uniform(&mut rng, batch * dim, 2.0),
        c: uniform(&mut rng, batch * k, 2.0),
        ts: per_row.then(|| uniform(&mut rng, batch, 1.0)),
        t: rng.random_range(-1.0..1.0),
        a_v: uniform(&mut rng, batch * dim, 1.0),
        a_div: uniform(&mut rng, batch, 1.0),
        probes: rademacher_probes(&mut rng, 2, batch, dim),
        mlp,
        batch,
    }
}

fn cond_problems() -> impl Strategy<Value = CondProblem> {
    (
        1usize..=3,
        prop::collection::vec(1usize..=9, 1..=3),
        0usize..4,
        prop_oneof![Just(LayerKind::Concat), Just(LayerKind::ConcatSquash)],
        1usize..=3,
        1usize..=12,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(dim, hidden, act, kind, k, batch, per_row, seed)| {
            cond_problem(dim, hidden, act, kind, k, batch, per_row, seed)
        })
}

/// `[v, div, g_z, g_theta, g_context]` of one `vjp_batch` at `x` (gradients from zero).
fn vjp_all<T: Real, F: VectorField<T>>(
    f: &F,
    x: Inputs<'_, T>,
    trace: Trace<'_, T>,
    a_v: &[T],
    a_div: &[T],
) -> [Vec<T>; 5] {
    let (d, k) = (f.dim(), f.context_dim());
    let batch = x.batch(d);
    let zero = T::zero();
    let mut s = f.scratch(batch);
    let (mut v, mut div) = (vec![zero; batch * d], vec![zero; batch]);
    let (mut g_z, mut g_th, mut g_c) = (
        vec![zero; batch * d],
        vec![zero; f.num_params()],
        vec![zero; batch * k],
    );
    let out = VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th).with_context_grad(&mut g_c);
    f.vjp_batch(&mut s, VjpInput::new(x, trace, a_v, a_div), out);
    [v, div, g_z, g_th, g_c]
}

/// `sum_b a_v.v + a_div div` by the network's forward pass.
fn objective(p: &CondProblem, m: &Mlp<f64>, z: &[f64], c: &[f64], trace: &Trace<f64>) -> f64 {
    let mut s = m.scratch(p.batch);
    let (mut v, mut div) = (vec![0.0; z.len()], vec![0.0; p.batch]);
    m.eval_div_batch(&mut s, p.inputs(z, c), trace, &mut v, &mut div);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    dot(&v, &p.a_v) + dot(&div, &p.a_div)
}

fn to<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter()
        .map(|&v| T::from_f64(v).unwrap_or_else(T::nan))
        .collect()
}

fn up<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect()
}

/// Largest error relative to the largest entry of `expected`, with a floor of 1 on that scale.
fn normwise(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, |m, e| if e > m || e.is_nan() { e } else { m })
        / scale
}

const NAMES: [&str; 5] = ["v", "div", "g_z", "g_theta", "g_context"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// v, div, g_z and g_context of the fast path equal the dual-number oracle's (nested duals
    /// seeded in z and in c), exact trace and Hutchinson.
    #[test]
    fn context_matches_dual(p in cond_problems()) {
        let dual = DualField::new(p.mlp.clone());
        prop_assert_eq!(VectorField::<f64>::context_dim(&dual), p.mlp.config().context_dim);
        let x = p.inputs(&p.z, &p.c);
        for trace in [Trace::Exact, Trace::Hutchinson(&p.probes)] {
            let fast = vjp_all(&p.mlp, x, trace, &p.a_v, &p.a_div);
            let slow = vjp_all(&dual, x, trace, &p.a_v, &p.a_div);
            for i in [0, 1, 2, 4] {
                prop_assert!(
                    max_rel_err(&fast[i], &slow[i]) < 1e-11,
                    "{}: {:?} vs {:?}", NAMES[i], fast[i], slow[i]
                );
            }
        }
    }

    /// g_z, g_theta (the context's columns of W0 included) and g_context equal central finite
    /// differences of `sum_b a_v.v + a_div div` in f64.
    #[test]
    fn context_vjp_matches_fd(p in cond_problems(), hutchinson in any::<bool>()) {
        let trace = if hutchinson { Trace::Hutchinson(&p.probes[..]) } else { Trace::Exact };
        let [_, _, g_z, g_th, g_c] = vjp_all(&p.mlp, p.inputs(&p.z, &p.c), trace, &p.a_v, &p.a_div);
        let obj = objective(&p, &p.mlp, &p.z, &p.c, &trace);
        let fd_z: Vec<f64> = (0..p.z.len())
            .map(|i| central_diff(&p.z, i, FD_STEP, |z| objective(&p, &p.mlp, z, &p.c, &trace)))
            .collect();
        prop_assert!(fd_rel_err(&g_z, &fd_z, obj) < 1e-6, "z: {:?} vs {:?}", g_z, fd_z);
        let fd_c: Vec<f64> = (0..p.c.len())
            .map(|i| central_diff(&p.c, i, FD_STEP, |c| objective(&p, &p.mlp, &p.z, c, &trace)))
            .collect();
        prop_assert!(fd_rel_err(&g_c, &fd_c, obj) < 1e-6, "c: {:?} vs {:?}", g_c, fd_c);
        let fd_theta: Vec<f64> = (0..p.mlp.num_params())
            .map(|i| {
                central_diff(p.mlp.params(), i, FD_STEP, |th| {
                    let mut m = p.mlp.clone();
                    m.params_mut().copy_from_slice(th);
                    objective(&p, &m, &p.z, &p.c, &trace)
                })
            })
            .collect();
        prop_assert!(fd_rel_err(&g_th, &fd_theta, obj) < 1e-6, "theta: {:?} vs {:?}", g_th, fd_theta);
        // The context reaches the parameters: some W0 context column has a nonzero gradient.
        let (out, inp) = p.mlp.layer_shape(0).unwrap();
        let c0 = p.mlp.config().context_start();
        let ctx_cols = (0..out).flat_map(|o| (c0..inp).map(move |j| o * inp + j));
        prop_assert!(ctx_cols.map(|i| g_th[i].abs()).fold(0.0, f64::max) > 0.0);
    }

    /// f32 (fast kernel from 8 points, the gemm crate below) agrees with f64 at the same
    /// f32-rounded inputs and weights, and the f32 fast path with the f32 dual oracle.
    #[test]
    fn context_f32_agrees_with_f64_and_dual(p in cond_problems()) {
        let m32: Mlp<f32> = p.mlp.cast();
        let m64: Mlp<f64> = m32.cast();
        let (z, c, a_v, a_div, probes) =
            (to::<f32>(&p.z), to::<f32>(&p.c), to::<f32>(&p.a_v), to::<f32>(&p.a_div), to::<f32>(&p.probes));
        let ts = p.ts.as_ref().map(|t| to::<f32>(t));
        let x32 = match &ts {
            Some(ts) => Inputs::per_row(ts, &z),
            None => Inputs::shared(p.t as f32, &z),
        }
        .with_context(&c);
        let (z64, c64, av64, ad64, pr64) = (up(&z), up(&c), up(&a_v), up(&a_div), up(&probes));
        let ts64 = ts.as_ref().map(|t| up(t));
        let x64 = match &ts64 {
            Some(ts) => Inputs::per_row(ts, &z64),
            None => Inputs::shared(p.t as f32 as f64, &z64),
        }
        .with_context(&c64);
        let dual32 = DualField::new(m32.clone());
        for hutchinson in [false, true] {
            let (t32, t64) = if hutchinson {
                (Trace::Hutchinson(&probes[..]), Trace::Hutchinson(&pr64[..]))
            } else {
                (Trace::Exact, Trace::Exact)
            };
            let fast = vjp_all(&m32, x32, t32, &a_v, &a_div);
            let slow = vjp_all(&dual32, x32, t32, &a_v, &a_div);
            let reference = vjp_all(&m64, x64, t64, &av64, &ad64);
            for i in 0..5 {
                let err = normwise(&up(&fast[i]), &reference[i]);
                prop_assert!(err < 1e-4, "{} vs f64: {err}", NAMES[i]);
                if i != 3 {
                    let err = normwise(&up(&fast[i]), &up(&slow[i]));
                    prop_assert!(err < 1e-4, "{} vs f32 dual: {err}", NAMES[i]);
                }
            }
        }
    }
}

/// `[v, g_z, g_theta, g_context]` of [`VectorField::vjp_of_v`] with the regression cotangent
/// `a_v = 2 (v - u)` (gradients from zero).
fn regression_vjp<T: Real, F: VectorField<T>>(f: &F, x: Inputs<'_, T>, u: &[T]) -> [Vec<T>; 4] {
    let (d, k) = (f.dim(), f.context_dim());
    let batch = x.batch(d);
    let zero = T::zero();
    let mut s = f.scratch(batch);
    let (mut v, mut div, mut a_v, a_div) = (
        vec![zero; batch * d],
        vec![zero; batch],
        vec![zero; batch * d],
        vec![zero; batch],
    );
    let (mut g_z, mut g_th, mut g_c) = (
        vec![zero; batch * d],
        vec![zero; f.num_params()],
        vec![zero; batch * k],
    );
    let two = T::one() + T::one();
    let mut cotangent = |v: &[T], a: &mut [T]| {
        for ((a, &v), &u) in a.iter_mut().zip(v).zip(u) {
            *a = two * (v - u);
        }
    };
    let out = VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th).with_context_grad(&mut g_c);
    f.vjp_of_v(&mut s, x, &mut cotangent, &mut a_v, &a_div, out);
    [v, g_z, g_th, g_c]
}

/// The MLP's one-pass `vjp_of_v` against two passes: its own `eval_batch`, the cotangent
/// `2 (v - u)` and `vjp_batch` (bit for bit, f64 and f32: the same kernels in the same order),
/// and the dual-number oracle (which takes the trait's default, two passes).
fn check_regression_vjp<T: Real>(p: &CondProblem, mlp: &Mlp<T>, u: &[T], x: Inputs<'_, T>) {
    let fused = regression_vjp(mlp, x, u);
    let d = mlp.dim();
    let mut v = vec![T::zero(); x.batch(d) * d];
    mlp.eval_batch(&mut mlp.scratch(p.batch), x, &mut v);
    let two = T::one() + T::one();
    let a_v: Vec<T> = v.iter().zip(u).map(|(&v, &u)| two * (v - u)).collect();
    let zeros = vec![T::zero(); p.batch];
    let [v2, _, g_z, g_th, g_c] = vjp_all(mlp, x, Trace::NONE, &a_v, &zeros);
    for (name, a, b) in [
        ("v", &fused[0], &v2),
        ("g_z", &fused[1], &g_z),
        ("g_theta", &fused[2], &g_th),
        ("g_context", &fused[3], &g_c),
    ] {
        assert_eq!(up(a), up(b), "{name}: one pass vs two");
    }
    let dual = regression_vjp(&DualField::new(mlp.clone()), x, u);
    for i in [0, 1, 3] {
        let err = normwise(&up(&fused[i]), &up(&dual[i]));
        assert!(
            err < 1e-4,
            "{}: one pass vs the dual oracle: {err}",
            ["v", "g_z", "g_theta", "g_context"][i]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Flow matching's one-pass VJP equals two passes, in f64 and f32.
    #[test]
    fn regression_vjp_is_two_passes_in_one(p in cond_problems()) {
        let x = p.inputs(&p.z, &p.c);
        check_regression_vjp(&p, &p.mlp, &p.a_v, x);
        let m32: Mlp<f32> = p.mlp.cast();
        let (z, c, u) = (to::<f32>(&p.z), to::<f32>(&p.c), to::<f32>(&p.a_v));
        let ts = p.ts.as_ref().map(|t| to::<f32>(t));
        let x32 = match &ts {
            Some(ts) => Inputs::per_row(ts, &z),
            None => Inputs::shared(p.t as f32, &z),
        }
        .with_context(&c);
        check_regression_vjp(&p, &m32, &u, x32);
    }
}

/// The context is sliced with the rows when the exact trace is evaluated in blocks: the same
/// results (and d/dc) as one block.
#[test]
fn context_follows_the_row_blocks() {
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        for per_row in [false, true] {
            let p = cond_problem(3, vec![8, 8], 1, kind, 2, 11, per_row, 4);
            let small = p.mlp.clone().with_trace_block_bytes(0);
            let x = p.inputs(&p.z, &p.c);
            let whole = vjp_all(&p.mlp, x, Trace::Exact, &p.a_v, &p.a_div);
            let blocked = vjp_all(&small, x, Trace::Exact, &p.a_v, &p.a_div);
            for i in 0..5 {
                assert!(normwise(&blocked[i], &whole[i]) < 1e-13, "{}", NAMES[i]);
            }
        }
    }
}

/// k = 0 is the unconditional network bit for bit: a network whose context columns of `W0`
/// are zero gives, at any context, exactly the numbers of the same network built without a
/// context (the extra terms are exact zeros), through the fused kernel (20 points) and the
/// gemm crate (3 points), shared and per-row times, both layer kinds.
#[test]
fn zero_context_weights_reproduce_the_unconditional_network_bit_for_bit() {
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        for batch in [3, 20] {
            for per_row in [false, true] {
                let k = 2;
                let p = cond_problem(2, vec![16, 16], 0, kind, k, batch, per_row, 11);
                let plain_config = MlpConfig {
                    context_dim: 0,
                    ..p.mlp.config().clone()
                };
                let (out, inp) = p.mlp.layer_shape(0).unwrap();
                let c0 = p.mlp.config().context_start();
                // The conditional parameters without W0's context columns, in buffer order.
                let is_ctx = |i: usize| i < out * inp && (c0..inp).contains(&(i % inp));
                let plain_params: Vec<f64> = (0..p.mlp.num_params())
                    .filter(|&i| !is_ctx(i))
                    .map(|i| p.mlp.params()[i])
                    .collect();
                let plain = Mlp::from_params(plain_config, plain_params).unwrap();
                let mut cond = p.mlp.clone();
                for (i, w) in cond.params_mut().iter_mut().enumerate() {
                    if is_ctx(i) {
                        *w = 0.0;
                    }
                }
                let x = p.inputs(&p.z, &p.c);
                for trace in [Trace::Exact, Trace::Hutchinson(&p.probes)] {
                    let a = vjp_all(&cond, x, trace, &p.a_v, &p.a_div);
                    let b = vjp_all(&plain, p.inputs(&p.z, &[]), trace, &p.a_v, &p.a_div);
                    assert_eq!(a[0], b[0], "v");
                    assert_eq!(a[1], b[1], "div");
                    assert_eq!(a[2], b[2], "g_z");
                    let g: Vec<f64> = (0..a[3].len())
                        .filter(|&i| !is_ctx(i))
                        .map(|i| a[3][i])
                        .collect();
                    assert_eq!(g, b[3], "g_theta");
                }
            }
        }
    }
}

/// A configuration file without `context_dim` (every file before conditional flows) loads as
/// k = 0, and a k = 0 configuration is written without the key, so its files read as before.
#[test]
fn old_config_files_load_with_no_context() {
    let old = r#"{"dim": 2, "hidden": [8, 8], "activation": "tanh", "layer_kind": "concat"}"#;
    let config: MlpConfig = serde_json::from_str(old).unwrap();
    assert_eq!(config.context_dim, 0);
    assert_eq!(
        config,
        MlpConfig::new(2, &[8, 8], cnf_field::Activation::Tanh)
    );
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("context"), "{json}");
    let cond = config.clone().with_context(3);
    let json = serde_json::to_string(&cond).unwrap();
    let back: MlpConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cond);
    assert_eq!(cond.input_width(), 2 + 1 + 3);
    // W0 gains k columns; nothing else changes.
    assert_eq!(cond.num_params(), config.num_params() + 8 * 3);
}

/// Weights of a conditional network round-trip through safetensors with their config.
#[test]
fn conditional_weights_round_trip() {
    let p = cond_problem(2, vec![5], 2, LayerKind::Concat, 3, 4, false, 8);
    let bytes = p.mlp.to_safetensors_bytes().unwrap();
    let back = Mlp::<f64>::from_safetensors_bytes(&bytes, p.mlp.config().clone()).unwrap();
    assert_eq!(back, p.mlp);
    // The same file read as an unconditional network is a shape error on W0.
    let plain = MlpConfig::new(2, &[5], cnf_field::Activation::Swish);
    assert!(Mlp::<f64>::from_safetensors_bytes(&bytes, plain).is_err());
}

/// `ShapeCheck::inputs` wants a context of `(B, k)`; the single-point helpers, which take no
/// context, refuse a conditional network.
#[test]
fn shape_check_of_the_context() {
    let p = cond_problem(2, vec![4], 0, LayerKind::Concat, 2, 3, false, 1);
    assert_eq!(p.mlp.context_dim(), 2);
    let check = ShapeCheck::new(&p.mlp, 3);
    assert!(check.inputs(&p.inputs(&p.z, &p.c)).is_ok());
    assert!(check.inputs(&p.inputs(&p.z, &p.c[..4])).is_err());
    assert!(check.inputs(&p.inputs(&p.z, &[])).is_err());
    assert!(p.mlp.eval(0.5, &p.z[..2]).is_err());
    assert!(p.mlp.divergence(0.5, &p.z[..2]).is_err());
    // Rows of an input slice the context with the points.
    let x = p.inputs(&p.z, &p.c).rows(1..3, 2);
    assert_eq!(x.context, &p.c[2..6]);
}
