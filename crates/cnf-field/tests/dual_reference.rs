//! The dual-number reference path against central finite differences.

mod common;

use cnf_field::field::VjpOutput;
use cnf_field::{DualField, GenericField, Inputs, Linear, Trace, VectorField};
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Dual exact divergence and value equal the trace of a finite-difference Jacobian.
    #[test]
    fn dual_trace_matches_fd_jacobian(p in problems()) {
        let d = p.mlp.config().dim;
        let field = DualField::new(p.mlp.clone());
        let mut s = field.scratch(p.batch);
        let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
        field.eval_div_batch(&mut s, Inputs::shared(p.t, &p.z), &Trace::Exact, &mut v, &mut div);
        for b in 0..p.batch {
            let zb = &p.z[b * d..][..d];
            let eval = |z: &[f64]| {
                let mut out = vec![0.0; d];
                GenericField::eval(&p.mlp, p.t, z, &[], &mut out);
                out
            };
            let jac = fd_jacobian(&eval, zb, 1e-5);
            let fd_trace: f64 = (0..d).map(|i| jac[i * d + i]).sum();
            // The trace sums entries that may cancel: measure the error against their size.
            let scale = 1.0 + (0..d).map(|i| jac[i * d + i].abs()).sum::<f64>();
            prop_assert!((div[b] - fd_trace).abs() < 1e-7 * scale, "{} vs {}", div[b], fd_trace);
            let direct = eval(zb);
            prop_assert_eq!(&v[b * d..][..d], direct.as_slice());
        }
    }

    /// Dual VJP w.r.t. z (nested duals for the divergence) equals finite differences of
    /// a_v.v + a_div.div, for exact and Hutchinson traces.
    #[test]
    fn dual_vjp_matches_fd(p in problems(), hutchinson in any::<bool>()) {
        let d = p.mlp.config().dim;
        let field = DualField::new(p.mlp.clone());
        let probes = probes_for(&p, 3);
        let trace = if hutchinson { Trace::Hutchinson(&probes) } else { Trace::Exact };
        let mut s = field.scratch(p.batch);
        let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
        let mut g_z = vec![0.0; p.z.len()];
        field.vjp_batch(&mut s, p.input(&trace), VjpOutput::new(&mut v, &mut div, &mut g_z, &mut []));
        let fd: Vec<f64> = (0..p.z.len())
            .map(|i| central_diff(&p.z, i, FD_STEP, |z| objective(&field, &p, z, &trace)))
            .collect();
        let obj = objective(&field, &p, &p.z, &trace);
        prop_assert!(fd_rel_err(&g_z, &fd, obj) < 1e-6, "{:?} vs {:?} (d = {})", g_z, fd, d);
    }
}

pub fn probes_for(p: &Problem, k: usize) -> Vec<f64> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(p.seed.wrapping_add(1));
    cnf_field::gaussian_probes(&mut rng, k, p.batch, p.mlp.config().dim)
}

/// The analytic Linear field agrees with its own dual-number evaluation and with FD in every
/// parameter.
#[test]
fn linear_matches_dual_and_fd() {
    for seed in 0..8u64 {
        let p = problem(3, vec![2], 0, 4, seed);
        let d = 3;
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let a = uniform(&mut rng, d * d, 1.0);
        let b = uniform(&mut rng, d, 1.0);
        let lin = Linear::new(d, &a, &b).unwrap();
        let dual = DualField::new(lin.clone());
        let probes = probes_for(&p, 5);
        for trace in [Trace::Exact, Trace::Hutchinson(&probes)] {
            let (v1, div1, gz1, gth1) = vjp(
                &lin,
                &p,
                &trace,
                &vec![0.0; p.z.len()],
                &vec![0.0; d * d + d],
            );
            let (v2, div2, gz2, _) = vjp(&dual, &p, &trace, &vec![0.0; p.z.len()], &[]);
            assert!(max_rel_err(&v1, &v2) < 1e-14);
            assert!(max_rel_err(&div1, &div2) < 1e-13);
            assert!(max_rel_err(&gz1, &gz2) < 1e-13);
            let fd_theta: Vec<f64> = (0..d * d + d)
                .map(|i| {
                    central_diff(lin.params(), i, FD_STEP, |th| {
                        let f = Linear::new(d, &th[..d * d], &th[d * d..]).unwrap();
                        objective(&f, &p, &p.z, &trace)
                    })
                })
                .collect();
            let obj = objective(&lin, &p, &p.z, &trace);
            assert!(
                fd_rel_err(&gth1, &fd_theta, obj) < 1e-6,
                "{gth1:?} vs {fd_theta:?}"
            );
        }
    }
}

#[test]
fn linear_rejects_bad_input() {
    assert!(matches!(
        Linear::<f64>::new(2, &[1.0; 3], &[0.0; 2]),
        Err(cnf_field::FieldError::Shape { .. })
    ));
    assert!(matches!(
        Linear::<f64>::new(2, &[1.0, f64::NAN, 0.0, 1.0], &[0.0; 2]),
        Err(cnf_field::FieldError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        Linear::<f64>::new(0, &[], &[]),
        Err(cnf_field::FieldError::InvalidConfig(_))
    ));
}
