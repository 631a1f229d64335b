//! Conditional flows p(x | c): the density integrates to 1 over x for each fixed context, the
//! context changes it, sampling draws n points per context row in one solve (one draw for each
//! of n copies of a row equals n draws for that row) and maps back to its base draws, the
//! loss gradient (context weights included) against finite differences, chunked solves slice
//! the context, and bad contexts are typed errors.

mod common;

use cnf_field::{Activation, Mlp, MlpConfig, Trace, VectorField};
use cnf_flow::{Batching, Cnf, FlowError, LossOptions};
use cnf_ode::{cast, Differentiation, Method, SolverSpec};
use common::{fd, SMOOTH};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// A 2-D flow conditioned on a context of width `k`: a random tanh network (weights scaled
/// up so the context and the points move the density well away from the base).
fn flow(k: usize, solver: SolverSpec<f64>) -> Cnf<f64, Mlp<f64>> {
    let config = MlpConfig::new(2, &[16, 16], Activation::Tanh).with_context(k);
    let mut mlp = Mlp::<f64>::new(config, 21).unwrap();
    for w in mlp.params_mut() {
        *w *= 1.5;
    }
    Cnf::new(mlp, solver)
}

fn tight() -> SolverSpec<f64> {
    SolverSpec::adaptive(Method::Dopri5, 1e-9, 1e-9).unwrap()
}

/// The midpoint rule over [-L, L]^2 on an n x n grid of exp(log p(x | c)): the density's mass
/// outside the box and the rule's error (spectral for a smooth, rapidly decaying integrand)
/// are both far below the tolerance.
#[test]
fn conditional_density_integrates_to_one_for_each_context() {
    let cnf = flow(1, tight());
    let (l, n) = (9.0, 180);
    let h = 2.0 * l / n as f64;
    let grid: Vec<f64> = (0..n * n)
        .flat_map(|i| {
            let (a, b) = (i / n, i % n);
            [-l + (a as f64 + 0.5) * h, -l + (b as f64 + 0.5) * h]
        })
        .collect();
    let mut logps = Vec::new();
    for c in [-1.5, 2.0] {
        let context = vec![c; n * n];
        let d = cnf
            .log_density_given(&grid, &context, &Trace::Exact)
            .unwrap();
        let mass: f64 = d.logp.iter().map(|lp| lp.exp()).sum::<f64>() * h * h;
        assert!((mass - 1.0).abs() < 2e-3, "c = {c}: mass {mass}");
        logps.push(d.logp);
    }
    // The two contexts give different densities (the context is not ignored).
    let gap = logps[0]
        .iter()
        .zip(&logps[1])
        .map(|(a, b)| (a - b).abs())
        .filter(|g| g.is_finite())
        .fold(0.0, f64::max);
    assert!(gap > 0.1, "largest log-density gap {gap}");
}

/// `n` draws for one context row equal one draw for each of `n` copies of that row (the base
/// points are drawn in the result's row order), bit for bit; several rows give `n` rows each,
/// and moving the draws back to t = 1 recovers the base points drawn from the same seed.
#[test]
fn one_draw_per_row_equals_n_draws_for_one_row() {
    let cnf = flow(2, tight());
    let row = [0.4, -1.1];
    let n = 37;
    let many = cnf
        .sample_given(&row, n, &mut StdRng::seed_from_u64(5))
        .unwrap();
    let copies: Vec<f64> = row.repeat(n);
    let one_each = cnf
        .sample_given(&copies, 1, &mut StdRng::seed_from_u64(5))
        .unwrap();
    assert_eq!(many.points.len(), n * 2);
    assert_eq!(many.points, one_each.points);

    // Three context rows, four draws each: row i * 4 + j is draw j of context i.
    let contexts = [0.4, -1.1, 2.0, 0.3, -0.7, 1.5];
    let draws = cnf
        .sample_given(&contexts, 4, &mut StdRng::seed_from_u64(9))
        .unwrap();
    assert_eq!(draws.points.len(), 3 * 4 * 2);
    let mut rng = StdRng::seed_from_u64(9);
    let base: Vec<f64> = (0..3 * 4 * 2)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let repeated: Vec<f64> = contexts.chunks(2).flat_map(|c| c.repeat(4)).collect();
    let back = cnf
        .transform_given(&draws.points, &repeated, 0.0, 1.0)
        .unwrap();
    let err = back
        .points
        .iter()
        .zip(&base)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-6, "round trip error {err}");
    // Each context gives its own draws from the same base points: different contexts differ.
    assert_ne!(draws.points[..8], draws.points[8..16]);
}

/// The unconditional `sample` is `sample_given` with the empty context (one row of width 0).
#[test]
fn unconditional_sample_is_the_empty_context() {
    let cnf = flow(0, tight());
    let a = cnf.sample(50, &mut StdRng::seed_from_u64(3)).unwrap();
    let b = cnf
        .sample_given(&[], 50, &mut StdRng::seed_from_u64(3))
        .unwrap();
    assert_eq!(a.points, b.points);
    let a = cnf.log_density(&a.points).unwrap();
    let b = cnf
        .log_density_given(&b.points, &[], &Trace::Exact)
        .unwrap();
    assert_eq!(a.logp, b.logp);
}

/// Chunked solves (down to one point each) slice the context with the points: the same
/// log-densities as one whole-batch solve, to the solver's tolerance.
#[test]
fn chunks_slice_the_context() {
    let cnf = flow(2, tight());
    let mut rng = StdRng::seed_from_u64(4);
    let mut normal =
        |n: usize| -> Vec<f64> { (0..n).map(|_| StandardNormal.sample(&mut rng)).collect() };
    let (x, c) = (normal(2 * 9), normal(2 * 9));
    let whole = cnf.log_density_given(&x, &c, &Trace::Exact).unwrap();
    for chunk in [1, 4] {
        let chunked = cnf.clone().with_batching(Batching::Chunks(chunk));
        let d = chunked.log_density_given(&x, &c, &Trace::Exact).unwrap();
        for (a, b) in d.logp.iter().zip(&whole.logp) {
            assert!((a - b).abs() < 1e-6, "chunks of {chunk}: {a} vs {b}");
        }
        let t = chunked.transform_given(&x, &c, 0.0, 1.0).unwrap();
        for (a, b) in t.points.iter().zip(&whole.z1) {
            assert!(
                (a - b).abs() < 1e-6,
                "transform, chunks of {chunk}: {a} vs {b}"
            );
        }
    }
}

/// The conditional loss's gradient (Discretise through fixed RK4 steps: the exact gradient of
/// the computed loss) against fourth-order central differences of that loss along every
/// parameter of the first layer (the context's columns included) and a few others.
#[test]
fn conditional_loss_gradient_matches_finite_differences() {
    let solver = SolverSpec::fixed(Method::Rk4, 12).unwrap();
    let cnf = flow(2, solver);
    let mut rng = StdRng::seed_from_u64(12);
    let mut normal =
        |n: usize| -> Vec<f64> { (0..n).map(|_| StandardNormal.sample(&mut rng)).collect() };
    let (x, c) = (normal(2 * 6), normal(2 * 6));
    let options = LossOptions::default();
    let g = cnf
        .loss_and_grad_given(&x, &c, &Trace::Exact, Differentiation::Discretise, &options)
        .unwrap();
    let loss_at = |theta: &[f64]| {
        let mut m = cnf.clone();
        m.field.params_mut().copy_from_slice(theta);
        let d = m.log_density_given(&x, &c, &Trace::Exact).unwrap();
        -d.logp.iter().sum::<f64>() / d.logp.len() as f64
    };
    let theta = cnf.field.params().to_vec();
    assert!((loss_at(&theta) - g.loss).abs() < 1e-12);
    let (out, inp) = cnf.field.layer_shape(0).unwrap();
    let mut checked = (0..out * inp).collect::<Vec<_>>();
    checked.extend([out * inp, out * inp + 3, theta.len() - 1, theta.len() - 5]);
    for i in checked {
        let fd_i = fd(
            |h| {
                let mut t = theta.clone();
                t[i] += h;
                loss_at(&t)
            },
            SMOOTH,
        );
        let scale = g.grad.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        assert!(
            (g.grad[i] - fd_i).abs() < 1e-7 * scale,
            "theta[{i}]: {} vs {fd_i}",
            g.grad[i]
        );
    }
    // The unconditional entry point refuses a conditional model (no context given).
    assert!(matches!(
        cnf.loss_and_grad(&x, &Trace::Exact, Differentiation::Discretise),
        Err(FlowError::ContextShape { .. })
    ));
}

/// dL/dc through the ODE (the context as parameters of the adjoint) against fourth-order
/// central differences of the loss along context values: the discrete gradient of fixed RK4
/// steps is the exact gradient of the computed loss. The backsolve adjoint at tight tolerances
/// (the continuous gradient, to the solves' accuracy) agrees with the discrete gradient of the
/// same tight solve. 300 points run the field over several row blocks; the parameter gradient
/// is the one `loss_and_grad_given` gives.
#[test]
fn context_gradient_matches_finite_differences() {
    let b = 300;
    let mut rng = StdRng::seed_from_u64(13);
    let mut normal =
        |n: usize| -> Vec<f64> { (0..n).map(|_| StandardNormal.sample(&mut rng)).collect() };
    let (x, c) = (normal(2 * b), normal(3 * b));
    let options = LossOptions::default();
    let grads = |cnf: &Cnf<f64, Mlp<f64>>, method| {
        let g = cnf
            .loss_and_grad_context(&x, &c, &Trace::Exact, method, &options)
            .unwrap();
        let plain = cnf
            .loss_and_grad_given(&x, &c, &Trace::Exact, method, &options)
            .unwrap();
        assert_eq!(g.grad, plain.grad, "{method:?}");
        assert!(plain.grad_context.is_empty());
        assert_eq!(g.grad_context.len(), c.len());
        g.grad_context
    };
    let scale = |g: &[f64]| g.iter().fold(1e-9f64, |m, v| m.max(v.abs()));

    let cnf = flow(3, SolverSpec::fixed(Method::Rk4, 12).unwrap());
    let g = grads(&cnf, Differentiation::Discretise);
    let loss_at = |c: &[f64]| {
        let d = cnf.log_density_given(&x, c, &Trace::Exact).unwrap();
        -d.logp.iter().sum::<f64>() / d.logp.len() as f64
    };
    for i in (0..c.len()).step_by(7).chain([c.len() - 1]) {
        let fd_i = fd(
            |h| {
                let mut cc = c.clone();
                cc[i] += h;
                loss_at(&cc)
            },
            SMOOTH,
        );
        assert!(
            (g[i] - fd_i).abs() < 1e-7 * scale(&g),
            "c[{i}]: {} vs {fd_i}",
            g[i]
        );
    }

    let cnf = flow(3, tight());
    let discrete = grads(&cnf, Differentiation::Discretise);
    let adjoint = grads(&cnf, Differentiation::adjoint());
    for (i, (a, d)) in adjoint.iter().zip(&discrete).enumerate() {
        assert!(
            (a - d).abs() < 1e-5 * scale(&discrete),
            "c[{i}]: adjoint {a} vs discrete {d}"
        );
    }
}

/// A context of the wrong width, a partial row, non-finite values, no context for a
/// conditional model and a context for an unconditional one are typed errors.
#[test]
fn bad_contexts_are_typed_errors() {
    let cnf = flow(2, tight());
    let x = [0.1, 0.2, 0.3, 0.4];
    fn shape<R>(r: Result<R, FlowError>) -> bool {
        matches!(r, Err(FlowError::ContextShape { .. }))
    }
    assert!(shape(cnf.log_density_given(&x, &[1.0; 3], &Trace::Exact)));
    assert!(shape(cnf.log_density_given(&x, &[1.0; 6], &Trace::Exact)));
    assert!(shape(cnf.log_density(&x)));
    assert!(shape(cnf.transform_given(&x, &[1.0; 2], 0.0, 1.0)));
    assert!(shape(cnf.trajectory_given(&x, &[], &[0.0, 1.0])));
    let mut rng = StdRng::seed_from_u64(1);
    let err = cnf.sample_given(&[1.0; 3], 5, &mut rng).unwrap_err();
    assert!(matches!(err, FlowError::ContextShape { rows: None, .. }));
    assert!(err.to_string().contains("whole rows"), "{err}");
    assert!(shape(cnf.sample(5, &mut rng)));
    let err = cnf
        .log_density_given(&x, &[1.0, 2.0, f64::NAN, 0.0], &Trace::Exact)
        .unwrap_err();
    assert_eq!(err, FlowError::NonFiniteContext { row: 1 });
    assert!(matches!(
        cnf.sample_given(&[f64::INFINITY, 0.0], 2, &mut rng),
        Err(FlowError::NonFiniteContext { row: 0 })
    ));
    let err = cnf
        .log_density_given(&x, &[1.0; 3], &Trace::Exact)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the context has 3 values, not 2 rows of the model's context width 2"
    );
    let plain = flow(0, tight());
    assert!(shape(plain.log_density_given(
        &x,
        &[1.0, 2.0],
        &Trace::Exact
    )));
    assert!(shape(plain.sample_given(&[1.0], 2, &mut rng)));
}

/// f32 conditional log-densities agree with f64 to f32 accuracy.
#[test]
fn f32_conditional_density_agrees_with_f64() {
    let f64_flow = flow(1, tight());
    let m32: Mlp<f32> = f64_flow.field.cast();
    let solver32 = SolverSpec::adaptive(Method::Dopri5, 1e-6f32, 1e-6).unwrap();
    let f32_flow = Cnf::new(m32.clone(), solver32);
    let f64_flow = Cnf::new(m32.cast::<f64>(), tight());
    let x: Vec<f32> = (0..40)
        .map(|i| cast::<f32>((i as f64 * 0.7).sin() * 2.0))
        .collect();
    let c: Vec<f32> = (0..20)
        .map(|i| cast::<f32>((i as f64 * 0.3).cos()))
        .collect();
    let up = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let a = f32_flow.log_density_given(&x, &c, &Trace::Exact).unwrap();
    let b = f64_flow
        .log_density_given(&up(&x), &up(&c), &Trace::Exact)
        .unwrap();
    for (p, q) in a.logp.iter().zip(&b.logp) {
        assert!(
            (*p as f64 - q).abs() < 1e-3 * q.abs().max(1.0),
            "{p} vs {q}"
        );
    }
    assert_eq!(VectorField::<f32>::context_dim(&m32), 1);
}
