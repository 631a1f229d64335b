//! The RNODE penalty integrands (kinetic `|v|^2`, Jacobian Frobenius `|dv/dz|_F^2`) and their
//! gradients, against finite differences, the dual-number reference and the generic default.

mod common;

use cnf_field::field::{Integrands, VjpInput, VjpOutput};
use cnf_field::{
    orthogonal_probes, rademacher_probes, DualField, Inputs, Linear, Trace, VectorField,
};
use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `(v, div, kinetic, frobenius)` from a field's `eval_penalties_batch`.
fn penalties<F: VectorField<f64>>(
    f: &F,
    t: f64,
    z: &[f64],
    trace: &Trace<f64>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let b = z.len() / f.dim();
    let mut s = f.scratch(b);
    let (mut v, mut div) = (vec![0.0; z.len()], vec![0.0; b]);
    let (mut kin, mut frob) = (vec![0.0; b], vec![0.0; b]);
    let out = Integrands {
        v: &mut v,
        div: &mut div,
        kinetic: &mut kin,
        frobenius: &mut frob,
    };
    f.eval_penalties_batch(&mut s, Inputs::shared(t, z), trace, out);
    (v, div, kin, frob)
}

/// The field with only the trait's default `eval_penalties_batch` (VJPs of unit cotangents).
struct DefaultPenalties<F>(F);

impl<F: VectorField<f64>> VectorField<f64> for DefaultPenalties<F> {
    type Scratch = F::Scratch;
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn num_params(&self) -> usize {
        self.0.num_params()
    }
    fn params(&self) -> &[f64] {
        self.0.params()
    }
    fn params_mut(&mut self) -> &mut [f64] {
        self.0.params_mut()
    }
    fn scratch(&self, batch: usize) -> F::Scratch {
        self.0.scratch(batch)
    }
    fn eval_batch(&self, s: &mut F::Scratch, x: Inputs<'_, f64>, out: &mut [f64]) {
        self.0.eval_batch(s, x, out)
    }
    fn eval_div_batch(
        &self,
        s: &mut F::Scratch,
        x: Inputs<'_, f64>,
        trace: &Trace<f64>,
        v: &mut [f64],
        div: &mut [f64],
    ) {
        self.0.eval_div_batch(s, x, trace, v, div)
    }
    fn vjp_batch(&self, s: &mut F::Scratch, input: VjpInput<'_, f64>, out: VjpOutput<'_, f64>) {
        self.0.vjp_batch(s, input, out)
    }
}

/// `|dv/dz|_F^2` of every point by central differences of `v`.
fn fd_frobenius<F: VectorField<f64>>(f: &F, t: f64, z: &[f64]) -> Vec<f64> {
    let d = f.dim();
    let eval = |zb: &[f64]| {
        let mut s = f.scratch(1);
        let mut v = vec![0.0; d];
        f.eval_batch(&mut s, Inputs::shared(t, zb), &mut v);
        v
    };
    z.chunks(d)
        .map(|zb| fd_jacobian(&eval, zb, 1e-5).iter().map(|x| x * x).sum())
        .collect()
}

/// `sum_b a_k[b] kin[b] + a_f[b] frob[b] + a_v.v + a_div.div` by the forward pass.
fn penalised_objective<F: VectorField<f64>>(
    f: &F,
    p: &Problem,
    z: &[f64],
    trace: &Trace<f64>,
    a_k: &[f64],
    a_f: &[f64],
) -> f64 {
    let (v, div, kin, frob) = penalties(f, p.t, z, trace);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    dot(&v, &p.a_v) + dot(&div, &p.a_div) + dot(&kin, a_k) + dot(&frob, a_f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Kinetic is |v|^2; the exact Frobenius equals finite differences of the Jacobian and
    /// the dual-number reference; the generic default (VJPs) gives the same values.
    #[test]
    fn integrands_match_references(p in problems()) {
        let (v, div, kin, frob) = penalties(&p.mlp, p.t, &p.z, &Trace::Exact);
        let d = p.mlp.config().dim;
        let (v_ref, div_ref) = eval_div(&p.mlp, &p, &Trace::Exact);
        prop_assert_eq!(&v, &v_ref);
        prop_assert_eq!(&div, &div_ref);
        let kin_ref: Vec<f64> = v.chunks(d).map(|r| r.iter().map(|x| x * x).sum()).collect();
        prop_assert_eq!(&kin, &kin_ref);
        let fd = fd_frobenius(&p.mlp, p.t, &p.z);
        prop_assert!(max_rel_err(&frob, &fd) < 1e-6, "{:?} vs {:?}", frob, fd);
        let (_, _, _, frob_dual) = penalties(&DualField::new(p.mlp.clone()), p.t, &p.z, &Trace::Exact);
        prop_assert!(max_rel_err(&frob, &frob_dual) < 1e-12);
        let (_, _, kin_def, frob_def) =
            penalties(&DefaultPenalties(p.mlp.clone()), p.t, &p.z, &Trace::Exact);
        prop_assert!(max_rel_err(&kin_def, &kin) < 1e-14);
        prop_assert!(max_rel_err(&frob_def, &frob) < 1e-12, "{:?} vs {:?}", frob_def, frob);
    }

    /// d orthogonal probes of norm sqrt(d) give the exact Frobenius norm (sum_p |J u_p|^2 / d
    /// = |J Q|_F^2 = |J|_F^2 for an orthonormal Q), as the default's |J^T u_p|^2 does too.
    #[test]
    fn orthogonal_probes_give_exact_frobenius(p in problems()) {
        let d = p.mlp.config().dim;
        let mut rng = StdRng::seed_from_u64(p.seed);
        let e = orthogonal_probes(&mut rng, d, p.batch, d);
        let (_, _, _, exact) = penalties(&p.mlp, p.t, &p.z, &Trace::Exact);
        let (_, _, _, probed) = penalties(&p.mlp, p.t, &p.z, &Trace::Hutchinson(&e));
        prop_assert!(max_rel_err(&probed, &exact) < 1e-10, "{:?} vs {:?}", probed, exact);
        let (_, _, _, default) =
            penalties(&DefaultPenalties(p.mlp.clone()), p.t, &p.z, &Trace::Hutchinson(&e));
        prop_assert!(max_rel_err(&default, &exact) < 1e-10, "{:?} vs {:?}", default, exact);
    }

    /// The VJP with penalty cotangents equals central finite differences of the penalised
    /// objective, in z and in every parameter (exact and Hutchinson traces), and writes the
    /// integrands it computed on the way.
    #[test]
    fn penalty_vjp_matches_fd(p in problems(), hutchinson in any::<bool>()) {
        let d = p.mlp.config().dim;
        let mut rng = StdRng::seed_from_u64(p.seed.wrapping_add(3));
        let e = rademacher_probes(&mut rng, 2, p.batch, d);
        let trace = if hutchinson { Trace::Hutchinson(&e) } else { Trace::Exact };
        let a_k: Vec<f64> = (0..p.batch).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a_f: Vec<f64> = (0..p.batch).map(|_| rng.random_range(-1.0..1.0)).collect();
        let n = p.mlp.num_params();
        let mut s = p.mlp.scratch(p.batch);
        let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
        let (mut kin, mut frob) = (vec![0.0; p.batch], vec![0.0; p.batch]);
        let (mut g_z, mut g_theta) = (vec![0.0; p.z.len()], vec![0.0; n]);
        let input = p.input(&trace).with_penalties(&a_k, &a_f);
        let out = VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_theta)
            .with_penalties(&mut kin, &mut frob);
        p.mlp.vjp_batch(&mut s, input, out);
        let (_, _, kin_ref, frob_ref) = penalties(&p.mlp, p.t, &p.z, &trace);
        prop_assert_eq!(kin, kin_ref);
        prop_assert_eq!(frob, frob_ref);

        let obj = penalised_objective(&p.mlp, &p, &p.z, &trace, &a_k, &a_f);
        let fd_z: Vec<f64> = (0..p.z.len())
            .map(|i| central_diff(&p.z, i, FD_STEP, |z| penalised_objective(&p.mlp, &p, z, &trace, &a_k, &a_f)))
            .collect();
        prop_assert!(fd_rel_err(&g_z, &fd_z, obj) < 1e-6, "z: {:?} vs {:?}", g_z, fd_z);
        let fd_theta: Vec<f64> = (0..n)
            .map(|i| {
                central_diff(p.mlp.params(), i, FD_STEP, |th| {
                    let mut m = p.mlp.clone();
                    m.params_mut().copy_from_slice(th);
                    penalised_objective(&m, &p, &p.z, &trace, &a_k, &a_f)
                })
            })
            .collect();
        prop_assert!(fd_rel_err(&g_theta, &fd_theta, obj) < 1e-6, "theta: {:?} vs {:?}", g_theta, fd_theta);
    }
}

/// Rademacher estimates of the Frobenius norm average to the exact value (the estimator is
/// unbiased): the mean of 4000 single-probe estimates is within 5 standard errors.
#[test]
fn hutchinson_frobenius_is_unbiased() {
    let p = problem(3, vec![8, 8], 0, 2, 11);
    let (_, _, _, exact) = penalties(&p.mlp, p.t, &p.z, &Trace::Exact);
    let mut rng = StdRng::seed_from_u64(5);
    let draws = 4000;
    let mut sum = vec![0.0; p.batch];
    let mut sum_sq = vec![0.0; p.batch];
    for _ in 0..draws {
        let e = rademacher_probes(&mut rng, 1, p.batch, 3);
        let (_, _, _, est) = penalties(&p.mlp, p.t, &p.z, &Trace::Hutchinson(&e));
        for b in 0..p.batch {
            sum[b] += est[b];
            sum_sq[b] += est[b] * est[b];
        }
    }
    for b in 0..p.batch {
        let mean = sum[b] / draws as f64;
        let var = sum_sq[b] / draws as f64 - mean * mean;
        let se = (var / draws as f64).sqrt();
        assert!(var > 0.0, "a random probe must give a varying estimate");
        assert!(
            (mean - exact[b]).abs() < 5.0 * se,
            "point {b}: mean {mean} vs exact {} (se {se})",
            exact[b]
        );
    }
}

/// The linear field v = A z + b: |J|_F^2 = |A|_F^2 everywhere, and the gradients of the
/// penalties in A, b and z are the closed forms 2 a_f A + 2 a_k v z^T, 2 a_k v, 2 a_k A^T v.
#[test]
fn linear_field_penalties_in_closed_form() {
    let a = [0.5, -1.0, 0.25, 2.0];
    let b = [0.1, -0.3];
    let lin = Linear::new(2, &a, &b).expect("valid");
    let z = [1.0, 2.0, -0.5, 0.75];
    let (v, _, kin, frob) = penalties(&lin, 0.0, &z, &Trace::Exact);
    let fro_a: f64 = a.iter().map(|x| x * x).sum();
    for bi in 0..2 {
        assert!((frob[bi] - fro_a).abs() < 1e-14);
        let vb = &v[bi * 2..][..2];
        assert!((kin[bi] - (vb[0] * vb[0] + vb[1] * vb[1])).abs() < 1e-14);
    }
    let (a_k, a_f) = ([0.7, -0.2], [0.3, 1.1]);
    let zeros = [0.0; 4];
    let mut s = lin.scratch(2);
    let (mut v2, mut div) = (vec![0.0; 4], vec![0.0; 2]);
    let (mut g_z, mut g_theta) = (vec![0.0; 4], vec![0.0; 6]);
    let input = VjpInput::new(Inputs::shared(0.0, &z), Trace::Exact, &zeros, &[0.0, 0.0])
        .with_penalties(&a_k, &a_f);
    lin.vjp_batch(
        &mut s,
        input,
        VjpOutput::new(&mut v2, &mut div, &mut g_z, &mut g_theta),
    );
    let mut g_a = [0.0; 4];
    let mut g_b = [0.0; 2];
    let mut g_z_ref = [0.0; 4];
    for bi in 0..2 {
        let (vb, zb) = (&v[bi * 2..][..2], &z[bi * 2..][..2]);
        for i in 0..2 {
            g_b[i] += 2.0 * a_k[bi] * vb[i];
            for j in 0..2 {
                g_a[i * 2 + j] += 2.0 * a_f[bi] * a[i * 2 + j] + 2.0 * a_k[bi] * vb[i] * zb[j];
                g_z_ref[bi * 2 + j] += 2.0 * a_k[bi] * a[i * 2 + j] * vb[i];
            }
        }
    }
    let expected: Vec<f64> = g_a.iter().chain(&g_b).copied().collect();
    assert!(
        max_rel_err(&g_theta, &expected) < 1e-13,
        "{g_theta:?} vs {expected:?}"
    );
    assert!(
        max_rel_err(&g_z, &g_z_ref) < 1e-13,
        "{g_z:?} vs {g_z_ref:?}"
    );
}
