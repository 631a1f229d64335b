//! The batched MLP fast path against the dual-number reference and finite differences.

mod common;

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{
    gaussian_probes, rademacher_probes, DualField, Inputs, LayerKind, Mlp, Trace, VectorField,
};
use common::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn probes(p: &Problem, k: usize) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(p.seed.wrapping_add(7));
    rademacher_probes(&mut rng, k, p.batch, p.mlp.config().dim)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Batched v and divergence (exact and Hutchinson) equal the per-point dual path.
    #[test]
    fn fast_path_matches_dual(p in problems(), k in 1usize..4) {
        let dual = DualField::new(p.mlp.clone());
        let e = probes(&p, k);
        for trace in [Trace::Exact, Trace::Hutchinson(&e)] {
            let (v_fast, div_fast) = eval_div(&p.mlp, &p, &trace);
            let (v_dual, div_dual) = eval_div(&dual, &p, &trace);
            prop_assert!(max_rel_err(&v_fast, &v_dual) < 1e-12, "{:?} vs {:?}", v_fast, v_dual);
            prop_assert!(max_rel_err(&div_fast, &div_dual) < 1e-12, "{:?} vs {:?}", div_fast, div_dual);
            let mut s = p.mlp.scratch(p.batch);
            let mut v_only = vec![0.0; p.z.len()];
            p.mlp.eval_batch(&mut s, Inputs::shared(p.t, &p.z), &mut v_only);
            prop_assert_eq!(&v_only, &v_fast);
        }
    }

    /// vjp_batch w.r.t. z and every parameter equals central finite differences of
    /// a_v.v + a_div.div (exact and Hutchinson), and it accumulates rather than overwrites.
    #[test]
    fn vjp_matches_fd(p in problems(), hutchinson in any::<bool>()) {
        let e = probes(&p, 2);
        let trace = if hutchinson { Trace::Hutchinson(&e) } else { Trace::Exact };
        let n = p.mlp.num_params();
        let (g_z0, g_theta0): (Vec<f64>, Vec<f64>) =
            ((0..p.z.len()).map(|i| i as f64).collect(), (0..n).map(|i| 0.5 * i as f64).collect());
        let (v, div, g_z, g_theta) = vjp(&p.mlp, &p, &trace, &g_z0, &g_theta0);
        let (v_ref, div_ref) = eval_div(&p.mlp, &p, &trace);
        prop_assert_eq!(v, v_ref);
        prop_assert_eq!(div, div_ref);
        let g_z: Vec<f64> = g_z.iter().zip(&g_z0).map(|(g, g0)| g - g0).collect();
        let g_theta: Vec<f64> = g_theta.iter().zip(&g_theta0).map(|(g, g0)| g - g0).collect();

        let obj = objective(&p.mlp, &p, &p.z, &trace);
        let fd_z: Vec<f64> = (0..p.z.len())
            .map(|i| central_diff(&p.z, i, FD_STEP, |z| objective(&p.mlp, &p, z, &trace)))
            .collect();
        prop_assert!(fd_rel_err(&g_z, &fd_z, obj) < 1e-6, "z: {:?} vs {:?}", g_z, fd_z);
        let fd_theta: Vec<f64> = (0..n)
            .map(|i| {
                central_diff(p.mlp.params(), i, FD_STEP, |th| {
                    let mut m = p.mlp.clone();
                    m.params_mut().copy_from_slice(th);
                    objective(&m, &p, &p.z, &trace)
                })
            })
            .collect();
        prop_assert!(fd_rel_err(&g_theta, &fd_theta, obj) < 1e-6, "theta: {:?} vs {:?}", g_theta, fd_theta);
    }

    /// The fast VJP w.r.t. z equals the nested-dual VJP (which needs no finite differences).
    #[test]
    fn vjp_z_matches_dual(p in problems(), k in 1usize..4) {
        let dual = DualField::new(p.mlp.clone());
        let e = probes(&p, k);
        for trace in [Trace::Exact, Trace::Hutchinson(&e)] {
            let zeros = vec![0.0; p.z.len()];
            let (_, _, g_fast, _) = vjp(&p.mlp, &p, &trace, &zeros, &vec![0.0; p.mlp.num_params()]);
            let (_, _, g_dual, _) = vjp(&dual, &p, &trace, &zeros, &[]);
            prop_assert!(max_rel_err(&g_fast, &g_dual) < 1e-11, "{:?} vs {:?}", g_fast, g_dual);
        }
    }

    /// f32 agrees with f64 to f32 accuracy (v, divergence and all gradients).
    #[test]
    fn f32_agrees_with_f64(p in problems()) {
        let m32: Mlp<f32> = p.mlp.cast();
        let to32 = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let (z, a_v, a_div) = (to32(&p.z), to32(&p.a_v), to32(&p.a_div));
        // Compare against f64 evaluated at the f32-rounded inputs and weights.
        let m64: Mlp<f64> = m32.cast();
        let p64 = Problem {
            mlp: m64.clone(),
            z: z.iter().map(|&x| x as f64).collect(),
            a_v: a_v.iter().map(|&x| x as f64).collect(),
            a_div: a_div.iter().map(|&x| x as f64).collect(),
            t: p.t as f32 as f64,
            ..p.clone()
        };
        let (v64, div64, gz64, gth64) = vjp(&m64, &p64, &Trace::Exact, &vec![0.0; z.len()], &vec![0.0; m64.num_params()]);
        let mut s = m32.scratch(p.batch);
        let (mut v, mut div) = (vec![0.0f32; z.len()], vec![0.0f32; p.batch]);
        let (mut g_z, mut g_th) = (vec![0.0f32; z.len()], vec![0.0f32; m32.num_params()]);
        let input = VjpInput::new(Inputs::shared(p.t as f32, &z), Trace::Exact, &a_v, &a_div);
        m32.vjp_batch(&mut s, input, VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th));
        // How far the f64 results move when every input and weight moves by one f32 rounding
        // (relative 2^-24, random signs; the largest of 4 draws): cancellation in a result
        // (a divergence of 2.5e-6 summed from terms of 1e-2) makes it ill-conditioned, and no
        // f32 evaluation can then be closer than this, however correct.
        let mut rng = StdRng::seed_from_u64(p.seed ^ 0xf32);
        let mut sens = [vec![0.0; z.len()], vec![0.0; p.batch], vec![0.0; z.len()], vec![0.0; m64.num_params()]];
        for _ in 0..4 {
            let mut bump = |x: f64| x * (1.0 + if rng.random::<bool>() { 1.0 } else { -1.0 } * f32::EPSILON as f64 / 2.0);
            let mut mp = m64.clone();
            for w in mp.params_mut() {
                *w = bump(*w);
            }
            let pp = Problem {
                mlp: mp.clone(),
                z: p64.z.iter().map(|&x| bump(x)).collect(),
                a_v: p64.a_v.iter().map(|&x| bump(x)).collect(),
                a_div: p64.a_div.iter().map(|&x| bump(x)).collect(),
                t: bump(p64.t),
                ..p64.clone()
            };
            let (v, div, gz, gth) = vjp(&mp, &pp, &Trace::Exact, &vec![0.0; z.len()], &vec![0.0; m64.num_params()]);
            for (s, (new, old)) in sens.iter_mut().zip([(v, &v64), (div, &div64), (gz, &gz64), (gth, &gth64)]) {
                for ((si, a), b) in s.iter_mut().zip(new).zip(old) {
                    *si = f64::max(*si, (a - b).abs());
                }
            }
        }
        let up = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let [sv, sdiv, sgz, sgth] = sens;
        for (name, a, b, sens) in [("v", up(&v), v64, sv), ("div", up(&div), div64, sdiv), ("g_z", up(&g_z), gz64, sgz), ("g_theta", up(&g_th), gth64, sgth)] {
            // f32 accuracy (2e-4 relative, normwise floor) or, for ill-conditioned components,
            // within 64 times the f64 result's own response to f32-sized perturbations.
            let err = max_rel_err(&a, &b);
            let within_conditioning = a.iter().zip(&b).zip(&sens).all(|((x, y), s)| (x - y).abs() <= 64.0 * s);
            prop_assert!(err < 2e-4 || within_conditioning, "{}: rel err {}, {:?} vs {:?} (sensitivity {:?})", name, err, a, b, sens);
        }
    }
}

/// Hutchinson averages over many probes converge to the exact trace (Rademacher and
/// Gaussian): the error is within 5 standard errors estimated from group means, and the
/// standard error itself is small.
#[test]
fn hutchinson_converges_to_exact_trace() {
    let p = problem(3, vec![16, 16], 0, 3, 11);
    let (_, exact) = eval_div(&p.mlp, &p, &Trace::Exact);
    let (groups, per_group) = (50usize, 400usize);
    for gaussian in [false, true] {
        let mut rng = StdRng::seed_from_u64(5);
        let mut means = vec![Vec::new(); p.batch];
        for _ in 0..groups {
            let e: Vec<f64> = if gaussian {
                gaussian_probes(&mut rng, per_group, p.batch, 3)
            } else {
                rademacher_probes(&mut rng, per_group, p.batch, 3)
            };
            let (_, est) = eval_div(&p.mlp, &p, &Trace::Hutchinson(&e));
            for (m, x) in means.iter_mut().zip(est) {
                m.push(x);
            }
        }
        for (b, m) in means.iter().enumerate() {
            let mean = m.iter().sum::<f64>() / groups as f64;
            let var = m.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (groups - 1) as f64;
            let std_err = (var / groups as f64).sqrt();
            assert!(
                (mean - exact[b]).abs() < 5.0 * std_err + 1e-12,
                "gaussian={gaussian} point {b}: {mean} vs exact {} (s.e. {std_err})",
                exact[b]
            );
            assert!(
                std_err < 0.05 * exact[b].abs().max(0.1),
                "s.e. {std_err} too large"
            );
        }
    }
}

/// A scratch built for one point grows for larger batches and more probes, and gives the same
/// results as a fresh scratch.
#[test]
fn scratch_grows_and_is_reusable() {
    let small = problem(2, vec![8, 8], 2, 1, 3);
    let big = problem(2, vec![8, 8], 2, 6, 3);
    let mlp = &big.mlp;
    let mut s = mlp.scratch(1);
    let e = probes(&big, 5);
    for (p, trace) in [
        (&small, Trace::Exact),
        (&big, Trace::Hutchinson(&e)),
        (&big, Trace::Exact),
        (&small, Trace::Exact),
    ] {
        let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
        let (mut g_z, mut g_th) = (vec![0.0; p.z.len()], vec![0.0; mlp.num_params()]);
        mlp.vjp_batch(
            &mut s,
            p.input(&trace),
            VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th),
        );
        let fresh = vjp(
            mlp,
            p,
            &trace,
            &vec![0.0; p.z.len()],
            &vec![0.0; mlp.num_params()],
        );
        assert_eq!((v, div, g_z, g_th), fresh);
    }
}

/// The reference architecture (3x64, d = 2) in all four activations and both layer kinds: fast VJP against the
/// nested-dual VJP and the fast divergence against the dual divergence.
#[test]
fn wide_network_matches_dual() {
    for (act, kind) in (0..4).flat_map(|a| [(a, LayerKind::Concat), (a, LayerKind::ConcatSquash)]) {
        let p = problem_of_kind(2, vec![64, 64, 64], act, kind, 5, 100 + act as u64);
        let dual = DualField::new(p.mlp.clone());
        let (_, div_fast) = eval_div(&p.mlp, &p, &Trace::Exact);
        let (_, div_dual) = eval_div(&dual, &p, &Trace::Exact);
        assert!(max_rel_err(&div_fast, &div_dual) < 1e-12);
        let zeros = vec![0.0; p.z.len()];
        let (_, _, g_fast, _) = vjp(
            &p.mlp,
            &p,
            &Trace::Exact,
            &zeros,
            &vec![0.0; p.mlp.num_params()],
        );
        let (_, _, g_dual, _) = vjp(&dual, &p, &Trace::Exact, &zeros, &[]);
        assert!(
            max_rel_err(&g_fast, &g_dual) < 1e-11,
            "{g_fast:?} vs {g_dual:?}"
        );
    }
}
