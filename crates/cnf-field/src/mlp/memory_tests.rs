//! The exact trace's work memory is bounded (issue 20 item 7): a batch whose scratch would pass
//! the budget is evaluated in blocks of rows, giving the same numbers as one block and as the
//! dual-number oracle; a point too wide for the limit is refused with the figure before any
//! buffer is made, and the buffers of `v` alone stay small.

use super::*;
use crate::dual::DualField;
use crate::field::rademacher_probes;

/// Every output of `eval_div_batch`, `eval_penalties_batch` and `vjp_batch` (with penalty
/// cotangents) with the exact trace, in that order.
fn exact_outputs<T: Real>(mlp: &Mlp<T>, z: &[T]) -> Vec<Vec<T>> {
    let (dim, n) = (mlp.config().dim, mlp.num_params());
    let batch = z.len() / dim;
    let wave = |len: usize, f: f64| -> Vec<T> {
        (0..len).map(|i| cast::<T>((i as f64 * f).sin())).collect()
    };
    let (a_v, a_div, a_kin, a_frob) = (
        wave(batch * dim, 0.7),
        wave(batch, 0.3),
        wave(batch, 0.9),
        wave(batch, 0.4),
    );
    let t = cast::<T>(0.3);
    let zero = || vec![T::zero(); batch];
    let mut s = mlp.scratch(batch);
    let (mut v1, mut div1) = (vec![T::zero(); batch * dim], zero());
    mlp.eval_div_batch(
        &mut s,
        Inputs::shared(t, z),
        &Trace::Exact,
        &mut v1,
        &mut div1,
    );
    let (mut v2, mut div2, mut kin2, mut frob2) =
        (vec![T::zero(); batch * dim], zero(), zero(), zero());
    let out = Integrands {
        v: &mut v2,
        div: &mut div2,
        kinetic: &mut kin2,
        frobenius: &mut frob2,
    };
    mlp.eval_penalties_batch(&mut s, Inputs::shared(t, z), &Trace::Exact, out);
    let (mut v3, mut div3, mut kin3, mut frob3) =
        (vec![T::zero(); batch * dim], zero(), zero(), zero());
    // g_z and g_theta accumulate: start from non-zero values.
    let mut g_z = wave(batch * dim, 0.2);
    let mut g_th = wave(n, 0.1);
    mlp.vjp_batch(
        &mut s,
        VjpInput::new(Inputs::shared(t, z), Trace::Exact, &a_v, &a_div)
            .with_penalties(&a_kin, &a_frob),
        VjpOutput::new(&mut v3, &mut div3, &mut g_z, &mut g_th)
            .with_penalties(&mut kin3, &mut frob3),
    );
    vec![
        v1, div1, v2, div2, kin2, frob2, v3, div3, kin3, frob3, g_z, g_th,
    ]
}

/// Largest difference relative to the largest entry of `b`.
fn rel_err<T: Real>(a: &[T], b: &[T]) -> f64 {
    let f = |v: &T| v.to_f64().unwrap_or(f64::NAN);
    let size = b.iter().fold(1.0f64, |m, v| m.max(f(v).abs()));
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((f(x) - f(y)).abs()));
    assert_eq!(a.len(), b.len());
    err / size
}

fn points<T: Real>(batch: usize, dim: usize, seed: u64) -> Vec<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..batch * dim)
        .map(|_| cast::<T>(rng.random_range(-2.0..2.0)))
        .collect()
}

fn blocked_matches_whole<T: Real>(kind: LayerKind, tol: f64) {
    let config = MlpConfig {
        layer_kind: kind,
        ..MlpConfig::new(3, &[17, 9], Activation::Tanh)
    };
    let whole = Mlp::<T>::new(config, 7).unwrap();
    let batch = 23;
    let z = points::<T>(batch, 3, 1);
    let reference = exact_outputs(&whole, &z);
    let per_point = whole.scratch_bytes(1, 3, true).unwrap();
    // Blocks of 1, 2, 5 and 8 rows (the fused kernel's threshold) and a budget of 0 (one row).
    for rows in [1usize, 2, 5, 8, 0] {
        let blocked = whole.clone().with_trace_block_bytes(rows * per_point);
        assert_eq!(blocked.exact_trace_block_rows(), rows.max(1));
        assert_eq!(
            whole.exact_trace_block_rows(),
            TRACE_BLOCK_BYTES / per_point
        );
        // The scratch made for the batch is one block's.
        let s = blocked.scratch(batch);
        assert!(s.u[0].len() <= rows.max(1) * 3 * 3, "{}", s.u[0].len());
        let got = exact_outputs(&blocked, &z);
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            let e = rel_err(g, r);
            assert!(e <= tol, "{kind:?} rows {rows}: output {i} differs by {e}");
        }
    }
    // And both agree with the dual-number oracle on v and the divergence.
    let oracle = DualField::new(whole.clone());
    let mut s = oracle.scratch(batch);
    let (mut v, mut div) = (vec![T::zero(); batch * 3], vec![T::zero(); batch]);
    oracle.eval_div_batch(
        &mut s,
        Inputs::shared(cast::<T>(0.3), &z),
        &Trace::Exact,
        &mut v,
        &mut div,
    );
    let blocked = exact_outputs(&whole.clone().with_trace_block_bytes(0), &z);
    assert!(rel_err(&blocked[0], &v) <= tol);
    assert!(rel_err(&blocked[1], &div) <= tol);
    assert!(rel_err(&blocked[7], &div) <= tol);
}

#[test]
fn blocked_exact_trace_matches_one_block_and_the_oracle_f64() {
    blocked_matches_whole::<f64>(LayerKind::Concat, 1e-13);
    blocked_matches_whole::<f64>(LayerKind::ConcatSquash, 1e-13);
}

#[test]
fn blocked_exact_trace_matches_one_block_and_the_oracle_f32() {
    blocked_matches_whole::<f32>(LayerKind::Concat, 2e-5);
    blocked_matches_whole::<f32>(LayerKind::ConcatSquash, 2e-5);
}

#[test]
fn the_budget_survives_a_cast() {
    let mlp = Mlp::<f64>::new(MlpConfig::new(3, &[8], Activation::Tanh), 0).unwrap();
    let per_point = mlp.scratch_bytes(1, 3, true).unwrap();
    let small = mlp.with_trace_block_bytes(4 * per_point);
    assert_eq!(small.exact_trace_block_rows(), 4);
    // f32 halves the bytes per point: twice the rows.
    assert_eq!(small.cast::<f32>().exact_trace_block_rows(), 8);
}

#[test]
fn the_scratch_estimate_is_what_ensure_makes() {
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        let config = MlpConfig {
            layer_kind: kind,
            ..MlpConfig::new(5, &[12, 7], Activation::Softplus)
        };
        let mlp = Mlp::<f32>::new(config, 3).unwrap();
        let mut s = MlpScratch::<f32>::default();
        s.ensure(&mlp.slots, 6, 5, true);
        assert_eq!(mlp.scratch_bytes(6, 5, true), Some(values_held(&s) * 4));
    }
}

#[test]
fn a_very_wide_input_is_refused_with_the_figure_and_v_stays_cheap() {
    // 16 000 columns: one point's exact trace needs ~4 GB (50 points in one block: 41 GB, the
    // allocation that aborted). Nothing of that size is made here.
    let d = 16_000;
    let mlp = Mlp::<f32>::new(MlpConfig::new(d, &[64, 64, 64], Activation::Tanh), 0).unwrap();
    let per_point = mlp.scratch_bytes(1, d, true).unwrap();
    assert!(
        per_point > 4_000_000_000 && per_point < 4_200_000_000,
        "{per_point}"
    );
    let err = mlp.check_tangents(d).unwrap_err().to_string();
    assert!(
        err.contains("exact trace in 16000 dimensions needs 4.1 GB"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    // One Hutchinson probe fits.
    mlp.check_tangents(1).unwrap();
    // The scratch for 50 points holds no tangents: a few MB, not gigabytes.
    let batch = 50;
    let mut s = mlp.scratch(batch);
    assert!(
        values_held(&s) * 4 < 20_000_000,
        "{} bytes",
        values_held(&s) * 4
    );
    // v and a one-probe Hutchinson divergence work within a few MB.
    let z = points::<f32>(batch, d, 2);
    let mut v = vec![0.0f32; batch * d];
    mlp.eval_batch(&mut s, Inputs::shared(0.5, &z), &mut v);
    assert!(v.iter().all(|x| x.is_finite()));
    let probes = rademacher_probes::<f32, _>(&mut StdRng::seed_from_u64(3), 1, batch, d);
    let mut div = vec![0.0f32; batch];
    mlp.eval_div_batch(
        &mut s,
        Inputs::shared(0.5, &z),
        &Trace::Hutchinson(&probes),
        &mut v,
        &mut div,
    );
    assert!(div.iter().all(|x| x.is_finite()));
    assert!(
        values_held(&s) * 4 < 60_000_000,
        "{} bytes",
        values_held(&s) * 4
    );
}

#[test]
fn moderately_wide_inputs_fit_in_blocks() {
    // 2 000 columns in f32: 64 MB per point, so 4 rows per block of 256 MiB (a batch of 512 in
    // one block needed 32 GB); the estimate alone is checked, nothing is allocated.
    let d = 2_000;
    let mlp = Mlp::<f32>::new(MlpConfig::new(d, &[16], Activation::Tanh), 0).unwrap();
    mlp.check_tangents(d).unwrap();
    let per_point = mlp.scratch_bytes(1, d, true).unwrap();
    assert!(
        per_point > 64_000_000 && per_point < 65_000_000,
        "{per_point}"
    );
    assert_eq!(mlp.exact_trace_block_rows(), 4);
    assert_eq!(mlp.cast::<f64>().exact_trace_block_rows(), 2);
}

/// Values held by a scratch's per-row buffers.
fn values_held<T>(s: &MlpScratch<T>) -> usize {
    let bufs =
        s.h.iter()
            .chain(&s.u)
            .chain(&s.tan)
            .chain(&s.ds)
            .chain(&s.d2s);
    bufs.chain(&s.g_primal)
        .chain(&s.g_tangent)
        .map(|b| b.len())
        .sum()
}

/// `eval_scratch` (what a sampling solve makes) holds the buffers of `v` alone, and `v`
/// computed in it is bit for bit `v` computed in the full scratch; the same scratch, grown on
/// demand, then gives the exact trace and the VJP bit for bit as a fresh full scratch does.
fn eval_scratch_is_small_and_exact<T: Real>() {
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        let config = MlpConfig {
            layer_kind: kind,
            ..MlpConfig::new(3, &[24, 24, 24], Activation::Tanh)
        }
        .with_context(2);
        let mlp = Mlp::<T>::new(config, 5).unwrap();
        // 3 points run on the gemm crate, 40 on the fused kernel (FUSED_MIN_POINTS).
        for batch in [3usize, 40] {
            let z = points::<T>(batch, 3, 7);
            let c = points::<T>(batch, 2, 8);
            let x = Inputs::shared(cast::<T>(0.6), &z).with_context(&c);
            let bits =
                |v: &[T]| -> Vec<u64> { v.iter().map(|x| x.to_f64().unwrap().to_bits()).collect() };
            let mut full = mlp.scratch(batch);
            let mut small = mlp.eval_scratch(batch);
            // No tangent buffers: under a third of the full scratch for d = 3.
            assert!(small.u.iter().chain(&small.tan).all(|b| b.is_empty()));
            assert!(
                3 * values_held(&small) < values_held(&full),
                "{kind:?}: {} of {} values",
                values_held(&small),
                values_held(&full)
            );
            let (mut v_full, mut v_small) =
                (vec![T::zero(); batch * 3], vec![T::zero(); batch * 3]);
            mlp.eval_batch(&mut full, x, &mut v_full);
            mlp.eval_batch(&mut small, x, &mut v_small);
            assert_eq!(bits(&v_full), bits(&v_small), "{kind:?} batch {batch}: v");
            // Evaluating v grows nothing.
            let held = values_held(&small);
            mlp.eval_batch(&mut small, x, &mut v_small);
            assert_eq!(values_held(&small), held);
            // The exact trace and the VJP in the small scratch (grown on demand) against a
            // fresh full scratch.
            let with = |s: &mut MlpScratch<T>| -> Vec<Vec<u64>> {
                let (mut v, mut div) = (vec![T::zero(); batch * 3], vec![T::zero(); batch]);
                mlp.eval_div_batch(s, x, &Trace::Exact, &mut v, &mut div);
                let a_v: Vec<T> = (0..batch * 3).map(|i| cast((i as f64).sin())).collect();
                let a_div: Vec<T> = (0..batch).map(|i| cast((i as f64).cos())).collect();
                let (mut v2, mut div2) = (vec![T::zero(); batch * 3], vec![T::zero(); batch]);
                let mut g_z = vec![T::zero(); batch * 3];
                let mut g_theta = vec![T::zero(); mlp.num_params()];
                mlp.vjp_batch(
                    s,
                    VjpInput::new(x, Trace::Exact, &a_v, &a_div),
                    VjpOutput::new(&mut v2, &mut div2, &mut g_z, &mut g_theta),
                );
                [v, div, v2, div2, g_z, g_theta]
                    .iter()
                    .map(|b| bits(b))
                    .collect()
            };
            let grown = with(&mut small);
            let fresh = with(&mut mlp.scratch(batch));
            assert_eq!(grown, fresh, "{kind:?} batch {batch}: trace and VJP");
        }
    }
}

#[test]
fn eval_scratch_is_small_and_exact_f64() {
    eval_scratch_is_small_and_exact::<f64>();
}

#[test]
fn eval_scratch_is_small_and_exact_f32() {
    eval_scratch_is_small_and_exact::<f32>();
}
