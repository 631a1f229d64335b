//! The fast path on the fused SIMD kernel against the same passes on the oracle (the `gemm`
//! crate with separate elementwise passes): `v`, the trace and the VJP with penalties, f32 and
//! f64, over random architectures (widths around the kernel's 16-lane panels, context widths 0
//! to 3) and batches, at a shared time and at per-row times, with a context per row or one
//! context shared by every row (which the fast path folds into layer 0's bias).

use super::*;
use crate::field::{rademacher_probes, VjpInput, VjpOutput};
use proptest::prelude::*;
use rand::Rng;

/// Every output of one `vjp_batch` with penalties (and `d/dc`), then `eval_batch`'s `v`, at
/// time 0.3 or at the per-row times `ts`, with a context when the network takes one (the same
/// for every row when `shared`).
fn outputs<T: Real>(
    mlp: &Mlp<T>,
    z: &[T],
    ts: Option<&[T]>,
    probes: Option<&[T]>,
    shared: bool,
    oracle: bool,
) -> Vec<Vec<T>> {
    let (dim, n, k) = (mlp.config().dim, mlp.num_params(), mlp.config().context_dim);
    let batch = z.len() / dim;
    let trace = probes.map_or(Trace::Exact, Trace::Hutchinson);
    let wave = |len: usize, f: f64| -> Vec<T> {
        (0..len).map(|i| cast::<T>((i as f64 * f).sin())).collect()
    };
    let (a_v, a_div, a_kin, a_frob) = (
        wave(batch * dim, 0.7),
        wave(batch, 0.3),
        wave(batch, 0.9),
        wave(batch, 0.4),
    );
    let context = match shared {
        true => wave(k, 0.5).repeat(batch),
        false => wave(batch * k, 0.5),
    };
    let mut s = mlp.scratch(batch);
    s.oracle = oracle;
    let x = match ts {
        Some(ts) => Inputs::per_row(ts, z),
        None => Inputs::shared(cast::<T>(0.3), z),
    }
    .with_context(&context);
    let mut o = vec![
        vec![T::zero(); batch * dim],
        vec![T::zero(); batch],
        vec![T::zero(); batch],
        vec![T::zero(); batch],
        vec![T::zero(); batch * dim],
        vec![T::zero(); n],
        vec![T::zero(); batch * dim],
        vec![T::zero(); batch * k],
    ];
    let [v, div, kin, frob, g_z, g_th, v_only, g_c] = &mut o[..] else {
        unreachable!()
    };
    mlp.vjp_batch(
        &mut s,
        VjpInput::new(x, trace, &a_v, &a_div).with_penalties(&a_kin, &a_frob),
        VjpOutput::new(v, div, g_z, g_th)
            .with_penalties(kin, frob)
            .with_context_grad(g_c),
    );
    mlp.eval_batch(&mut s, x, v_only);
    o
}

/// The inputs a case varies: how time and context are given.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// One time for the batch, a context per row.
    SharedTime,
    /// A time per row, a context per row.
    PerRowTimes,
    /// One time for the batch, one context for every row (folded into layer 0's bias).
    SharedContext,
}

/// Fast and oracle outputs agree to `tol` relative to each output's largest entry.
fn check<T: Real>(
    config: MlpConfig,
    batch: usize,
    seed: u64,
    hutchinson: bool,
    case: Case,
    tol: f64,
) -> Result<(), TestCaseError> {
    let (per_row, shared) = (case == Case::PerRowTimes, case == Case::SharedContext);
    let mlp = Mlp::<T>::new(config, seed).expect("valid config");
    let dim = mlp.config().dim;
    let mut rng = StdRng::seed_from_u64(seed);
    let z: Vec<T> = (0..batch * dim)
        .map(|_| cast::<T>(rng.random_range(-2.0..2.0)))
        .collect();
    let probes = rademacher_probes::<T, _>(&mut rng, 2, batch, dim);
    let probes = hutchinson.then_some(&probes[..]);
    let ts: Vec<T> = (0..batch)
        .map(|_| cast::<T>(rng.random_range(-1.0..1.5)))
        .collect();
    let ts = per_row.then_some(&ts[..]);
    let fast = outputs(&mlp, &z, ts, probes, shared, false);
    let oracle = outputs(&mlp, &z, ts, probes, shared, true);
    let names = [
        "v",
        "div",
        "kinetic",
        "frobenius",
        "g_z",
        "g_theta",
        "v (eval)",
        "g_context",
    ];
    for ((x, y), name) in fast.iter().zip(&oracle).zip(names) {
        let f = |v: &T| v.to_f64().unwrap_or(f64::NAN);
        let size = y.iter().fold(1.0f64, |m, v| m.max(f(v).abs()));
        let err = x
            .iter()
            .zip(y)
            .fold(0.0f64, |m, (a, b)| m.max((f(a) - f(b)).abs()));
        prop_assert!(err <= tol * size, "{name}: error {err}, size {size}");
    }
    // v is bit-identical with and without the trace and the reverse pass.
    prop_assert!(fast[0] == fast[6]);
    Ok(())
}

fn configs() -> impl Strategy<Value = MlpConfig> {
    (
        1usize..=4,
        prop::collection::vec(
            prop_oneof![1usize..=20, 30usize..=34, 60usize..=70, Just(64)],
            1..=3,
        ),
        prop_oneof![
            Just(Activation::Tanh),
            Just(Activation::Tanh),
            Just(Activation::Softplus),
            Just(Activation::Swish),
            Just(Activation::Elu)
        ],
        prop_oneof![Just(LayerKind::Concat), Just(LayerKind::ConcatSquash)],
        prop_oneof![Just(0usize), 1usize..=3],
    )
        .prop_map(|(dim, hidden, act, kind, k)| MlpConfig {
            layer_kind: kind,
            ..MlpConfig::new(dim, &hidden, act).with_context(k)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn simd_forward_and_vjp_match_oracle_f32(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f32>(config, batch, seed, hutchinson, Case::SharedTime, 2e-5)?;
    }

    #[test]
    fn simd_forward_and_vjp_match_oracle_f64(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f64>(config, batch, seed, hutchinson, Case::SharedTime, 1e-13)?;
    }

    #[test]
    fn simd_per_row_times_match_oracle_f32(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f32>(config, batch, seed, hutchinson, Case::PerRowTimes, 2e-5)?;
    }

    #[test]
    fn simd_per_row_times_match_oracle_f64(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f64>(config, batch, seed, hutchinson, Case::PerRowTimes, 1e-13)?;
    }

    #[test]
    fn simd_shared_context_matches_oracle_f32(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f32>(config, batch, seed, hutchinson, Case::SharedContext, 2e-5)?;
    }

    #[test]
    fn simd_shared_context_matches_oracle_f64(
        config in configs(), batch in 1usize..60, seed in any::<u64>(), hutchinson in any::<bool>()
    ) {
        check::<f64>(config, batch, seed, hutchinson, Case::SharedContext, 1e-13)?;
    }
}
