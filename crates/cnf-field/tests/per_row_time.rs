//! Per-row times (`Time::PerRow`, flow matching's input) through every batched method of the
//! MLP, both layer kinds, f64 and f32: against the shared-time methods applied one row at a
//! time, against the dual-number oracle, and the parameter gradient against finite differences.

mod common;

use cnf_field::field::{Integrands, VjpInput, VjpOutput};
use cnf_field::{
    rademacher_probes, DualField, Inputs, LayerKind, Mlp, Real, ShapeCheck, Time, Trace,
    VectorField,
};
use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A problem with one time per row and penalty cotangents (batches up to 12 points, so both
/// the `gemm`-crate path (< 8 points) and the fused kernel (>= 8) run).
#[derive(Clone, Debug)]
struct RowProblem {
    p: Problem,
    ts: Vec<f64>,
    a_kin: Vec<f64>,
    a_frob: Vec<f64>,
    probes: Vec<f64>,
}

fn row_problems() -> impl Strategy<Value = RowProblem> {
    (
        1usize..=3,
        prop::collection::vec(1usize..=9, 1..=3),
        0usize..4,
        prop_oneof![Just(LayerKind::Concat), Just(LayerKind::ConcatSquash)],
        1usize..=12,
        any::<u64>(),
    )
        .prop_map(|(dim, hidden, act, kind, batch, seed)| {
            let p = problem_of_kind(dim, hidden, act, kind, batch, seed);
            let mut rng = StdRng::seed_from_u64(seed ^ 0x7777);
            RowProblem {
                ts: (0..batch).map(|_| rng.random_range(-1.0..1.5)).collect(),
                a_kin: uniform(&mut rng, batch, 1.0),
                a_frob: uniform(&mut rng, batch, 1.0),
                probes: rademacher_probes(&mut rng, 2, batch, dim),
                p,
            }
        })
}

/// Every output of the four batched methods at `x`: `eval_batch`'s v; `eval_div_batch`'s v,
/// div; `eval_penalties_batch`'s v, div, kinetic, frobenius; `vjp_batch`'s (with penalty
/// cotangents) v, div, kinetic, frobenius, g_z, g_theta.
#[allow(clippy::too_many_arguments)]
fn outputs<T: Real, F: VectorField<T>>(
    f: &F,
    x: Inputs<'_, T>,
    trace: Trace<'_, T>,
    a_v: &[T],
    a_div: &[T],
    a_kin: &[T],
    a_frob: &[T],
) -> Vec<Vec<T>> {
    let d = f.dim();
    let batch = x.batch(d);
    let mut s = f.scratch(batch);
    let pts = || vec![T::zero(); batch * d];
    let per = || vec![T::zero(); batch];
    let mut v0 = pts();
    f.eval_batch(&mut s, x, &mut v0);
    let (mut v1, mut div1) = (pts(), per());
    f.eval_div_batch(&mut s, x, &trace, &mut v1, &mut div1);
    let (mut v2, mut div2, mut kin2, mut frob2) = (pts(), per(), per(), per());
    let out = Integrands {
        v: &mut v2,
        div: &mut div2,
        kinetic: &mut kin2,
        frobenius: &mut frob2,
    };
    f.eval_penalties_batch(&mut s, x, &trace, out);
    let (mut v3, mut div3, mut kin3, mut frob3) = (pts(), per(), per(), per());
    let (mut g_z, mut g_th) = (pts(), vec![T::zero(); f.num_params()]);
    let input = VjpInput::new(x, trace, a_v, a_div).with_penalties(a_kin, a_frob);
    let out = VjpOutput::new(&mut v3, &mut div3, &mut g_z, &mut g_th)
        .with_penalties(&mut kin3, &mut frob3);
    f.vjp_batch(&mut s, input, out);
    vec![
        v0, v1, div1, v2, div2, kin2, frob2, v3, div3, kin3, frob3, g_z, g_th,
    ]
}

const NAMES: [&str; 13] = [
    "eval v",
    "div v",
    "div",
    "pen v",
    "pen div",
    "pen kinetic",
    "pen frobenius",
    "vjp v",
    "vjp div",
    "vjp kinetic",
    "vjp frobenius",
    "g_z",
    "g_theta",
];

/// The same outputs from the shared-time methods, one row at a time (per-row outputs
/// concatenated, `g_theta` summed over the rows).
#[allow(clippy::too_many_arguments)]
fn row_by_row<T: Real, F: VectorField<T>>(
    f: &F,
    ts: &[T],
    z: &[T],
    probes: Option<&[T]>,
    a_v: &[T],
    a_div: &[T],
    a_kin: &[T],
    a_frob: &[T],
) -> Vec<Vec<T>> {
    let d = f.dim();
    let batch = ts.len();
    let mut all: Vec<Vec<T>> = vec![Vec::new(); NAMES.len()];
    all[NAMES.len() - 1] = vec![T::zero(); f.num_params()];
    for (b, &t) in ts.iter().enumerate() {
        // Probe p of point b: (k, B, d) -> (k, 1, d).
        let row_probes: Vec<T> = probes.map_or_else(Vec::new, |e| {
            let k = e.len() / (batch * d);
            (0..k)
                .flat_map(|p| e[(p * batch + b) * d..][..d].to_vec())
                .collect()
        });
        let trace = match probes {
            Some(_) => Trace::Hutchinson(&row_probes),
            None => Trace::Exact,
        };
        let r = b * d..(b + 1) * d;
        let one = outputs(
            f,
            Inputs::shared(t, &z[r.clone()]),
            trace,
            &a_v[r],
            &a_div[b..=b],
            &a_kin[b..=b],
            &a_frob[b..=b],
        );
        let last = NAMES.len() - 1;
        for (acc, o) in all[..last].iter_mut().zip(&one) {
            acc.extend_from_slice(o);
        }
        for (g, &x) in all[last].iter_mut().zip(&one[last]) {
            *g = *g + x;
        }
    }
    all
}

/// Largest error of each output relative to the largest entry of the reference, with `floor`
/// on that scale.
fn check_close<T: Real>(a: &[Vec<T>], b: &[Vec<T>], tol: f64, floor: f64) -> Result<(), String> {
    let f = |x: &T| x.to_f64().unwrap_or(f64::NAN);
    for ((x, y), name) in a.iter().zip(b).zip(NAMES) {
        if x.len() != y.len() {
            return Err(format!("{name}: lengths {} vs {}", x.len(), y.len()));
        }
        let scale = y.iter().fold(floor, |m, v| m.max(f(v).abs()));
        let err = x
            .iter()
            .zip(y)
            .map(|(p, q)| (f(p) - f(q)).abs())
            // NaN propagates (f64::max would drop it).
            .fold(0.0f64, |m, e| if e > m || e.is_nan() { e } else { m });
        if err.is_nan() || err > tol * scale {
            return Err(format!("{name}: error {err}, scale {scale}"));
        }
    }
    Ok(())
}

fn cast_all<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter()
        .map(|&v| T::from_f64(v).unwrap_or_else(T::nan))
        .collect()
}

/// Per-row vs row-at-a-time shared, exact and Hutchinson, for `T`.
fn per_row_matches_rows<T: Real>(rp: &RowProblem, tol: f64, floor: f64) -> Result<(), String> {
    let p = &rp.p;
    let mlp: Mlp<T> = p.mlp.cast();
    let (ts, z, a_v, a_div, a_kin, a_frob, e) = (
        cast_all::<T>(&rp.ts),
        cast_all::<T>(&p.z),
        cast_all::<T>(&p.a_v),
        cast_all::<T>(&p.a_div),
        cast_all::<T>(&rp.a_kin),
        cast_all::<T>(&rp.a_frob),
        cast_all::<T>(&rp.probes),
    );
    // Exact, two probes, and no probes at all (no tangent rows: flow matching's VJP of v).
    for probes in [None, Some(&e[..]), Some(&[][..])] {
        let trace = probes.map_or(Trace::Exact, Trace::Hutchinson);
        let x = Inputs::per_row(&ts, &z);
        let batched = outputs(&mlp, x, trace, &a_v, &a_div, &a_kin, &a_frob);
        let rows = row_by_row(&mlp, &ts, &z, probes, &a_v, &a_div, &a_kin, &a_frob);
        check_close(&batched, &rows, tol, floor).map_err(|m| {
            format!(
                "{:?} probes={:?}: {m}",
                mlp.config(),
                probes.map(<[T]>::len)
            )
        })?;
        // v is the same with and without the trace and the reverse pass.
        for (k, name) in [1, 3, 7].into_iter().map(|k| (k, NAMES[k])) {
            if batched[k] != batched[0] {
                return Err(format!("{name} differs from eval v"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// f64: every batched method at per-row times equals the shared-time method row by row.
    #[test]
    fn per_row_equals_shared_row_by_row_f64(rp in row_problems()) {
        per_row_matches_rows::<f64>(&rp, 1e-12, 1e-12).map_err(TestCaseError::fail)?;
    }

    /// f32: the same, to f32 rounding (normwise, scale at least 1).
    #[test]
    fn per_row_equals_shared_row_by_row_f32(rp in row_problems()) {
        per_row_matches_rows::<f32>(&rp, 1e-4, 1.0).map_err(TestCaseError::fail)?;
    }

    /// Per-row v, div and g_z equal the dual-number oracle's (nested duals for g_z).
    #[test]
    fn per_row_matches_dual(rp in row_problems()) {
        let p = &rp.p;
        let dual = DualField::new(p.mlp.clone());
        let x = Inputs::per_row(&rp.ts, &p.z);
        for trace in [Trace::Exact, Trace::Hutchinson(&rp.probes)] {
            let zeros = vec![0.0; p.batch];
            let fast = outputs(&p.mlp, x, trace, &p.a_v, &p.a_div, &zeros, &zeros);
            let slow = outputs(&dual, x, trace, &p.a_v, &p.a_div, &zeros, &zeros);
            for k in [1, 2, 11] {
                prop_assert!(
                    max_rel_err(&fast[k], &slow[k]) < 1e-11,
                    "{}: {:?} vs {:?}", NAMES[k], fast[k], slow[k]
                );
            }
        }
    }

    /// The per-row VJP's g_theta and g_z equal central finite differences of
    /// `sum_b a_v.v + a_div div + a_kin |v|^2 + a_frob |dv/dz|_F^2` at per-row times.
    #[test]
    fn per_row_vjp_matches_fd(rp in row_problems()) {
        let p = &rp.p;
        let objective = |m: &Mlp<f64>, z: &[f64]| -> f64 {
            let x = Inputs::per_row(&rp.ts, z);
            let zeros = vec![0.0; p.batch];
            let o = outputs(m, x, Trace::Exact, &p.a_v, &p.a_div, &zeros, &zeros);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            dot(&o[3], &p.a_v) + dot(&o[4], &p.a_div) + dot(&o[5], &rp.a_kin) + dot(&o[6], &rp.a_frob)
        };
        let x = Inputs::per_row(&rp.ts, &p.z);
        let o = outputs(&p.mlp, x, Trace::Exact, &p.a_v, &p.a_div, &rp.a_kin, &rp.a_frob);
        let obj = objective(&p.mlp, &p.z);
        let fd_z: Vec<f64> = (0..p.z.len())
            .map(|i| central_diff(&p.z, i, FD_STEP, |z| objective(&p.mlp, z)))
            .collect();
        prop_assert!(fd_rel_err(&o[11], &fd_z, obj) < 1e-6, "z: {:?} vs {:?}", o[11], fd_z);
        let fd_theta: Vec<f64> = (0..p.mlp.num_params())
            .map(|i| {
                central_diff(p.mlp.params(), i, FD_STEP, |th| {
                    let mut m = p.mlp.clone();
                    m.params_mut().copy_from_slice(th);
                    objective(&m, &p.z)
                })
            })
            .collect();
        prop_assert!(fd_rel_err(&o[12], &fd_theta, obj) < 1e-6, "theta: {:?} vs {:?}", o[12], fd_theta);
    }
}

/// A plain-concat MLP at per-row times that are all equal gives the shared-time results bit
/// for bit (the time column of the first layer is the only place time enters).
#[test]
fn concat_per_row_equal_times_is_shared_bit_for_bit() {
    for batch in [3, 20] {
        let p = problem_of_kind(2, vec![16, 16], 0, LayerKind::Concat, batch, 5);
        let ts = vec![p.t; batch];
        let zeros = vec![0.0; batch];
        let shared = outputs(
            &p.mlp,
            Inputs::shared(p.t, &p.z),
            Trace::Exact,
            &p.a_v,
            &p.a_div,
            &zeros,
            &zeros,
        );
        let per_row = outputs(
            &p.mlp,
            Inputs::per_row(&ts, &p.z),
            Trace::Exact,
            &p.a_v,
            &p.a_div,
            &zeros,
            &zeros,
        );
        assert_eq!(shared, per_row);
    }
}

/// A batch larger than the exact trace's block at per-row times is split with its times
/// (both layer kinds): the same results as one block.
#[test]
fn per_row_times_follow_the_row_blocks() {
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        let p = problem_of_kind(3, vec![8, 8], 1, kind, 11, 9);
        let ts: Vec<f64> = (0..11).map(|i| 0.1 * i as f64).collect();
        let small = p.mlp.clone().with_trace_block_bytes(0);
        let x = Inputs::per_row(&ts, &p.z);
        let kin = vec![0.3; 11];
        let whole = outputs(&p.mlp, x, Trace::Exact, &p.a_v, &p.a_div, &kin, &kin);
        let blocked = outputs(&small, x, Trace::Exact, &p.a_v, &p.a_div, &kin, &kin);
        check_close(&blocked, &whole, 1e-12, 1e-12).unwrap();
    }
}

/// `ShapeCheck::inputs` checks the points, the per-row times and refuses a context (no field
/// takes one yet).
#[test]
fn shape_check_of_inputs() {
    let p = problem(2, vec![4], 0, 3, 1);
    let check = ShapeCheck::new(&p.mlp, 3);
    let ts = [0.1, 0.2, 0.3];
    assert!(check.inputs(&Inputs::shared(0.5, &p.z)).is_ok());
    assert!(check.inputs(&Inputs::per_row(&ts, &p.z)).is_ok());
    assert!(check.inputs(&Inputs::per_row(&ts[..2], &p.z)).is_err());
    assert!(check.inputs(&Inputs::shared(0.5, &p.z[..4])).is_err());
    let context = [1.0; 3];
    let x = Inputs {
        context: &context,
        ..Inputs::shared(0.5, &p.z)
    };
    assert!(check.inputs(&x).is_err());
    assert_eq!(p.mlp.context_dim(), 0);
    // Rows of an input slice its per-row parts.
    let x = Inputs::per_row(&ts, &p.z).rows(1..3, 2);
    assert_eq!(x.z, &p.z[2..6]);
    assert!(matches!(x.t, Time::PerRow(t) if t == &ts[1..3]));
}
