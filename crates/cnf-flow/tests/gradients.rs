//! Both gradient methods against finite differences of the loss, in f64: dL/dtheta and dL/dx,
//! one model in detail, random models (widths, activations, layer kinds, batches over several
//! row blocks, Hutchinson probes, tableaux) by proptest, and the number of VJPs backprop does.
mod common;
use std::sync::atomic::{AtomicUsize, Ordering};

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{
    gaussian_probes, rademacher_probes, Activation, Inputs, LayerKind, Mlp, MlpConfig, Real, Trace,
    VectorField,
};
use cnf_flow::Cnf;
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};
use common::{fd_param_direction, fd_params, fd_x, in_pool, loss, worst_rel, Stencil, SMOOTH};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn model() -> Mlp<f64> {
    Mlp::new(MlpConfig::new(2, &[8, 8], Activation::Tanh), 7).unwrap()
}

fn points() -> Vec<f64> {
    vec![0.5, -1.0, 1.5, 0.3, -0.7, -0.2, 2.0, 1.0, -1.2, 0.8]
}

/// Floor of the per-component comparisons: components below it are compared in absolute terms
/// (the gradients here are 1e-3..1).
const FLOOR: f64 = 1e-3;

/// With fixed steps the discrete gradient is the exact gradient of the computed loss: every
/// component of dL/dtheta and dL/dx equals its finite difference to rounding.
#[test]
fn backprop_matches_finite_differences_fixed_steps() {
    let x = points();
    let mut rng = StdRng::seed_from_u64(3);
    let probes = rademacher_probes::<f64, _>(&mut rng, 1, 5, 2);
    for trace in [Trace::Exact, Trace::Hutchinson(&probes)] {
        for integ in [
            SolverSpec::fixed(Method::Rk4, 8).unwrap(),
            SolverSpec::fixed(Method::Dopri5, 4).unwrap(),
        ] {
            let cnf = Cnf::new(model(), integ.clone());
            let g = cnf
                .loss_and_grad(&x, &trace, Differentiation::Discretise)
                .unwrap();
            let e = worst_rel(&g.grad, &fd_params(&cnf, &x, &trace, None, SMOOTH), FLOOR);
            let ex = worst_rel(&g.grad_x, &fd_x(&cnf, &x, &trace, None, SMOOTH), FLOOR);
            println!(
                "backprop {} exact={}: worst rel err theta {e:.2e}, x {ex:.2e}",
                integ.method(),
                matches!(trace, Trace::Exact)
            );
            assert!(e < 1e-8 && ex < 1e-8, "theta {e}, x {ex}");
            assert!((g.loss - loss(&cnf, &x, &trace)).abs() < 1e-12);
        }
    }
}

/// Adaptive steps: the discrete gradient differs from the FD of the loss only by the step-size
/// sensitivity, which shrinks with the tolerance.
#[test]
fn backprop_adaptive_close_to_finite_differences() {
    let x = points();
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-9, 1e-9).unwrap(),
    );
    let g = cnf
        .loss_and_grad(&x, &Trace::Exact, Differentiation::Discretise)
        .unwrap();
    let e = worst_rel(
        &g.grad,
        &fd_params(&cnf, &x, &Trace::Exact, None, SMOOTH),
        FLOOR,
    );
    let ex = worst_rel(
        &g.grad_x,
        &fd_x(&cnf, &x, &Trace::Exact, None, SMOOTH),
        FLOOR,
    );
    println!(
        "backprop adaptive 1e-9: worst rel err theta {e:.2e}, x {ex:.2e}, fwd {}, bwd {}",
        g.forward, g.backward
    );
    assert!(e < 1e-6 && ex < 1e-6, "theta {e}, x {ex}");
}

/// Every gradient method is one `Differentiation` value: checkpointing (segments of 1, 3 and
/// more steps than the solve takes) gives backprop's loss and gradients to rounding, and the
/// adjoint at the flow's own tolerances (`Differentiation::adjoint`) is the adjoint with those
/// tolerances given.
#[test]
fn checkpointed_and_adjoint_at_forward_tolerances_are_the_same_values() {
    let x = points();
    let cnf = Cnf::new(
        model(),
        SolverSpec::adaptive(Method::Dopri5, 1e-7, 1e-7).unwrap(),
    );
    let full = cnf
        .loss_and_grad(&x, &Trace::Exact, Differentiation::Discretise)
        .unwrap();
    for every in [1, 3, 1000] {
        let g = cnf
            .loss_and_grad(&x, &Trace::Exact, Differentiation::Checkpointed { every })
            .unwrap();
        let e = worst_rel(&g.grad, &full.grad, FLOOR);
        let ex = worst_rel(&g.grad_x, &full.grad_x, FLOOR);
        assert!(e < 1e-12 && ex < 1e-12, "every {every}: theta {e}, x {ex}");
        assert_eq!(g.loss, full.loss);
        assert_eq!(g.forward, full.forward);
    }
    let own = cnf
        .loss_and_grad(&x, &Trace::Exact, Differentiation::adjoint())
        .unwrap();
    let given = cnf
        .loss_and_grad(&x, &Trace::Exact, Differentiation::backsolve(1e-7, 1e-7))
        .unwrap();
    assert_eq!(own.grad, given.grad);
    assert_eq!(own.backward, given.backward);
}

/// Draws indices `0..n` (with repetition) for spot checks.
fn some_indices(rng: &mut StdRng, n: usize, count: usize) -> Vec<usize> {
    (0..count).map(|_| rng.random_range(0..n)).collect()
}

const ACTIVATIONS: [Activation; 4] = [
    Activation::Tanh,
    Activation::Softplus,
    Activation::Swish,
    Activation::Elu,
];

/// One random problem of the property test.
#[derive(Debug, Clone)]
struct Case {
    dim: usize,
    hidden: Vec<usize>,
    act: Activation,
    kind: LayerKind,
    /// Points: 4 (one row block) or 300 (several blocks in a 3-thread pool).
    batch: usize,
    /// 0 exact, 1 Rademacher, 2 Gaussian.
    trace: usize,
    /// Probes per point.
    k: usize,
    /// 0 RK4, 1 Dopri5, 2 Tsit5, 3 DOP853.
    method: usize,
    seed: u64,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        prop::collection::vec(2usize..=8, 1..=2),
        0usize..4,
        any::<bool>(),
        any::<bool>(),
        (0usize..3, 1usize..=3),
        0usize..4,
        any::<u64>(),
    )
        .prop_map(
            |(dim, hidden, act, squash, big, (trace, k), method, seed)| Case {
                dim,
                hidden,
                act: ACTIVATIONS[act],
                kind: if squash {
                    LayerKind::ConcatSquash
                } else {
                    LayerKind::Concat
                },
                batch: if big { 300 } else { 4 },
                trace,
                k: if trace == 0 { 1 } else { k },
                method,
                seed,
            },
        )
}

/// Checks `g` (dL/dtheta) and `gx` (dL/dx) of a flow against finite differences of `reference`'s
/// loss: the directional derivative along a random direction and spot components; returns the
/// worst per-component error.
fn check_against_fd(
    rng: &mut StdRng,
    reference: &Cnf<f64, Mlp<f64>>,
    x: &[f64],
    trace: &Trace<f64>,
    g: &[f64],
    gx: &[f64],
    stencil: Stencil,
) -> f64 {
    let p = g.len();
    let u: Vec<f64> = (0..p).map(|_| rng.random_range(-1.0..1.0)).collect();
    let dir = fd_param_direction(reference, x, trace, &u, stencil);
    let g_dir: f64 = g.iter().zip(&u).map(|(a, b)| a * b).sum();
    let ip = some_indices(rng, p, 6);
    let ix = some_indices(rng, x.len(), 3);
    let fp = fd_params(reference, x, trace, Some(&ip), stencil);
    let fx = fd_x(reference, x, trace, Some(&ix), stencil);
    let gp: Vec<f64> = ip.iter().map(|&i| g[i]).collect();
    let gxs: Vec<f64> = ix.iter().map(|&i| gx[i]).collect();
    // dL/dx of one point carries the 1/B of the mean: scale its floor alike.
    let floor_x = FLOOR / x.len() as f64 * reference.dim() as f64;
    worst_rel(&[g_dir], &[dir], FLOOR)
        .max(worst_rel(&gp, &fp, FLOOR))
        .max(worst_rel(&gxs, &fx, floor_x))
}

/// Random models, every gradient method against central finite differences (f64):
/// - Backprop through 6 fixed steps of the case's tableau = FD of that discrete loss, to 1e-8;
/// - Backprop and Adjoint (1e-10) with adaptive steps of the tableau (RK4: 64 fixed steps) =
///   FD of the converged loss (24 fixed DOP853 steps), to 1e-6.
///
/// ELU is C1 but not C2 (s'' jumps at 0) and the loss contains s' through the trace, so its
/// gradient has kinks wherever a stage's pre-activation crosses 0: neither a fourth-order
/// stencil nor a fixed-step "converged" reference is valid. ELU cases check the fixed-step
/// backprop only, with a second-order stencil of step 1e-6 (to 1e-6), on 4 points.
#[test]
fn gradients_of_random_models_match_finite_differences() {
    let ran = AtomicUsize::new(0);
    let ran_smooth = AtomicUsize::new(0);
    let blocks = AtomicUsize::new(0);
    // Fresh random cases every run. dL/dx is checked against the per-point difference
    // (`fd_x` with fixed steps): differencing the 300-point mean left ~2.6e-13 of rounding noise
    // on components of ~1e-5 and failed one of three runs at the 1e-8 bound.
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let started = AtomicUsize::new(0);
    runner
        .run(&cases(), |mut c| {
            // Coverage by construction, whatever the seed: the activation cycles through all
            // four (two cases each in turn), every other smooth case has 300 points, the method
            // cycles through all four tableaus (each three times, each with a smooth case) and
            // the trace through exact, Rademacher and Gaussian.
            let i = started.fetch_add(1, Ordering::Relaxed);
            c.act = ACTIVATIONS[(i / 2) % 4];
            c.method = i % 4;
            c.trace = (i / 4) % 3;
            if c.trace == 0 {
                c.k = 1;
            }
            c.batch = if i.is_multiple_of(2) && c.act != Activation::Elu {
                300
            } else {
                4
            };
            let config = MlpConfig {
                layer_kind: c.kind,
                ..MlpConfig::new(c.dim, &c.hidden, c.act)
            };
            let mlp = Mlp::<f64>::new(config, c.seed).unwrap();
            let mut rng = StdRng::seed_from_u64(c.seed ^ 0x5eed);
            let x: Vec<f64> = (0..c.batch * c.dim)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            let probes = match c.trace {
                1 => rademacher_probes::<f64, _>(&mut rng, c.k, c.batch, c.dim),
                2 => gaussian_probes::<f64, _>(&mut rng, c.k, c.batch, c.dim),
                _ => vec![],
            };
            let trace = if c.trace == 0 {
                Trace::Exact
            } else {
                Trace::Hutchinson(&probes)
            };
            let (tab, adaptive) = match c.method {
                0 => (
                    SolverSpec::fixed(Method::Rk4, 6).unwrap(),
                    SolverSpec::fixed(Method::Rk4, 64).unwrap(),
                ),
                1 => (
                    SolverSpec::fixed(Method::Dopri5, 6).unwrap(),
                    SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
                ),
                2 => (
                    SolverSpec::fixed(Method::Tsit5, 6).unwrap(),
                    SolverSpec::adaptive(Method::Tsit5, 1e-10, 1e-10).unwrap(),
                ),
                _ => (
                    SolverSpec::fixed(Method::Dop853, 6).unwrap(),
                    SolverSpec::adaptive(Method::Dop853, 1e-10, 1e-10).unwrap(),
                ),
            };
            let exact = Cnf::new(mlp.clone(), SolverSpec::fixed(Method::Dop853, 24).unwrap());
            let smooth = c.act != Activation::Elu;
            // Three threads: 300 points make 2 row blocks (>= 128 rows each).
            let errs = in_pool(3, || {
                if rayon::current_num_threads() >= 2 && c.batch >= 256 {
                    blocks.fetch_add(1, Ordering::Relaxed);
                }
                let fixed = Cnf::new(mlp.clone(), tab.clone());
                let bp = fixed
                    .loss_and_grad(&x, &trace, Differentiation::Discretise)
                    .unwrap();
                let stencil = if smooth {
                    SMOOTH
                } else {
                    Stencil::Second(1e-6)
                };
                let e_fixed =
                    check_against_fd(&mut rng, &fixed, &x, &trace, &bp.grad, &bp.grad_x, stencil);
                if !smooth {
                    return (e_fixed, 0.0, 0.0);
                }
                let flow = Cnf::new(mlp.clone(), adaptive);
                let bp = flow
                    .loss_and_grad(&x, &trace, Differentiation::Discretise)
                    .unwrap();
                let adj = flow
                    .loss_and_grad(&x, &trace, Differentiation::backsolve(1e-10, 1e-10))
                    .unwrap();
                let e_bp =
                    check_against_fd(&mut rng, &exact, &x, &trace, &bp.grad, &bp.grad_x, SMOOTH);
                let e_adj =
                    check_against_fd(&mut rng, &exact, &x, &trace, &adj.grad, &adj.grad_x, SMOOTH);
                (e_fixed, e_bp, e_adj)
            });
            println!(
                "{} d={} {:?} {:?} {:?} B={} trace={} k={}: fixed backprop {:.1e}, \
                 backprop {:.1e}, adjoint {:.1e}",
                tab.method(),
                c.dim,
                c.hidden,
                c.act,
                c.kind,
                c.batch,
                c.trace,
                c.k,
                errs.0,
                errs.1,
                errs.2
            );
            let fixed_tol = if smooth { 1e-8 } else { 1e-6 };
            prop_assert!(errs.0 < fixed_tol, "fixed-step backprop: {errs:?} {c:?}");
            prop_assert!(errs.1 < 1e-6 && errs.2 < 1e-6, "{errs:?} {c:?}");
            ran.fetch_add(1, Ordering::Relaxed);
            if smooth {
                ran_smooth.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let (ran, smooth, blocks) = (
        ran.into_inner(),
        ran_smooth.into_inner(),
        blocks.into_inner(),
    );
    println!("{ran} cases, {smooth} with smooth activations, {blocks} over several row blocks");
    assert_eq!(ran, 12);
    assert!(
        smooth >= 6 && blocks >= 2,
        "{smooth} smooth, {blocks} multi-block"
    );
}

/// A field that counts the calls of each method of the field it wraps.
struct Counting<F> {
    inner: F,
    evals: AtomicUsize,
    vjps: AtomicUsize,
}

impl<F> Counting<F> {
    fn new(inner: F) -> Self {
        Self {
            inner,
            evals: AtomicUsize::new(0),
            vjps: AtomicUsize::new(0),
        }
    }
    /// (eval + eval_div calls, vjp calls) since the last take.
    fn take(&self) -> (usize, usize) {
        (
            self.evals.swap(0, Ordering::Relaxed),
            self.vjps.swap(0, Ordering::Relaxed),
        )
    }
}

impl<T: Real, F: VectorField<T>> VectorField<T> for Counting<F> {
    type Scratch = F::Scratch;
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn params(&self) -> &[T] {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut [T] {
        self.inner.params_mut()
    }
    fn scratch(&self, batch: usize) -> F::Scratch {
        self.inner.scratch(batch)
    }
    fn eval_batch(&self, s: &mut F::Scratch, x: Inputs<'_, T>, out: &mut [T]) {
        self.evals.fetch_add(1, Ordering::Relaxed);
        self.inner.eval_batch(s, x, out)
    }
    fn eval_div_batch(
        &self,
        s: &mut F::Scratch,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    ) {
        self.evals.fetch_add(1, Ordering::Relaxed);
        self.inner.eval_div_batch(s, x, trace, v, div)
    }
    fn vjp_batch(&self, s: &mut F::Scratch, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        self.vjps.fetch_add(1, Ordering::Relaxed);
        self.inner.vjp_batch(s, input, out)
    }
}

/// docs/flow.md: "backward work = one VJP per live stage (42 for 7 Dopri5 steps)". Dopri5 has
/// 7 stages and b_7 = 0 with no later stage depending on stage 7 within the step (FSAL), so 6
/// VJPs per accepted step; RK4 needs all 4. Counted at the field (one thread, so one row block
/// and one field call per VJP), on the diffrax model (f32, 1e-5) with 512 points of
/// 8gaussians: 7 accepted steps, 42 VJPs. The adjoint's VJPs are its backward evaluations.
#[test]
fn backprop_does_one_vjp_per_live_stage() {
    // 512 points of 8gaussians (the training batch of docs/flow.md's table).
    let mut rng = StdRng::seed_from_u64(0);
    let x: Vec<f32> = (0..512)
        .flat_map(|_| {
            let a = std::f64::consts::FRAC_PI_4 * rng.random_range(0..8) as f64;
            let n = |r: &mut StdRng| -> f64 {
                rand_distr::Distribution::sample(&rand_distr::StandardNormal, r)
            };
            let (u, v) = (n(&mut rng), n(&mut rng));
            [
                ((4.0 * a.cos() + 0.5 * u) / 1.414) as f32,
                ((4.0 * a.sin() + 0.5 * v) / 1.414) as f32,
            ]
        })
        .collect();
    in_pool(1, || {
        let cnf = Cnf::new(
            Counting::new(common::diffrax_model::<f32>()),
            SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
        );
        let g = cnf
            .loss_and_grad(&x, &Trace::Exact, Differentiation::Discretise)
            .unwrap();
        let (evals, vjps) = cnf.field.take();
        println!(
            "Dopri5 backprop: fwd {} ({evals} evaluations), {vjps} VJPs",
            g.forward
        );
        assert_eq!(evals, g.forward.nfe);
        assert_eq!(vjps, g.backward.nfe);
        assert_eq!(vjps, 6 * g.forward.accepted);
        assert_eq!((g.forward.accepted, vjps), (7, 42));

        let adj = cnf
            .loss_and_grad(&x, &Trace::Exact, Differentiation::backsolve(1e-5, 1e-5))
            .unwrap();
        let (evals, vjps) = cnf.field.take();
        println!("Dopri5 adjoint: fwd {}, bwd {}", adj.forward, adj.backward);
        assert_eq!((evals, vjps), (adj.forward.nfe, adj.backward.nfe));

        let cnf = Cnf::new(
            Counting::new(model()),
            SolverSpec::fixed(Method::Rk4, 5).unwrap(),
        );
        let g = cnf
            .loss_and_grad(&points(), &Trace::Exact, Differentiation::Discretise)
            .unwrap();
        let (evals, vjps) = cnf.field.take();
        assert_eq!((evals, vjps), (20, 20));
        assert_eq!(g.backward.nfe, 20);
    });
}
