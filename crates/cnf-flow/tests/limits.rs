//! Issue 20 items 6 and 7 at the library level: the untrained model (the Gaussian) works in f32
//! with every solve, and a very wide input's exact trace is a typed error naming the memory it
//! would need, never an aborting allocation.
use cnf_field::{rademacher_probes, Activation, Mlp, MlpConfig, Trace, VectorField};
use cnf_flow::{log_normal, Cnf, FlowError};
use cnf_ode::Differentiation;
use cnf_ode::Method;
use cnf_ode::SolverSpec;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// An f32 MLP whose output layer is zero: the field is exactly 0 and the flow the identity.
fn untrained(dim: usize) -> Mlp<f32> {
    let mut mlp = Mlp::<f32>::new(MlpConfig::new(dim, &[32, 32], Activation::Tanh), 5).unwrap();
    mlp.zero_output();
    mlp
}

/// log N(x; 0, I) in closed form, in f64.
fn standard_normal(x: &[f32]) -> f64 {
    let sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    -0.5 * sq - 0.5 * x.len() as f64 * (2.0 * std::f64::consts::PI).ln()
}

#[test]
fn the_untrained_model_is_the_gaussian_in_f32() {
    // Before the fix every f32 solve starting at t = 1 with a zero field (`sample`, the
    // adjoint's backward solve) failed on its first step: "step size -9.99e-7 below the
    // minimum at t = 1.0"; log-densities (0 -> 1) took 1e-6-sized first steps.
    let x: Vec<f32> = vec![0.3, -1.2, 2.5, 0.0, -0.7, 1.1, 4.0, -3.5];
    let integrators = [
        SolverSpec::<f32>::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
        SolverSpec::adaptive(Method::Tsit5, 1e-5, 1e-5).unwrap(),
        SolverSpec::adaptive(Method::Bs3, 1e-6, 1e-6).unwrap(),
        SolverSpec::adaptive(Method::Dop853, 1e-5, 1e-5).unwrap(),
    ];
    for integrator in integrators {
        let cnf = Cnf::new(untrained(2), integrator);
        let d = cnf.log_density(&x).unwrap();
        for (p, &logp) in x.chunks(2).zip(&d.logp) {
            assert_eq!(logp, log_normal(p), "{p:?}");
            assert!(
                (f64::from(logp) - standard_normal(p)).abs() < 1e-5,
                "{p:?}: {logp}"
            );
        }
        assert_eq!(d.z1, x);
        assert!(d.delta_logp.iter().all(|&v| v == 0.0));
        assert!(d.stats.accepted <= 12, "{:?}", d.stats);
        // Sampling runs t = 1 -> 0: the base draws come back unchanged.
        let s = cnf.sample(300, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(s.points.len(), 600);
        let back = cnf.transform(&s.points, 0.0, 1.0).unwrap();
        assert_eq!(back.points, s.points);
        // Trajectories both ways, and training's gradient (1 -> 0 in the adjoint's backward
        // solve).
        let tr = cnf.trajectory(&x, &[1.0, 0.5, 0.0]).unwrap();
        assert_eq!(tr.points[2], x);
        for method in [
            Differentiation::Discretise,
            Differentiation::backsolve(1e-5, 1e-5),
        ] {
            let g = cnf.loss_and_grad(&x, &Trace::Exact, method).unwrap();
            let nll = -x.chunks(2).map(standard_normal).sum::<f64>() / 4.0;
            assert!(
                (f64::from(g.loss) - nll).abs() < 1e-5 * nll.abs(),
                "{}",
                g.loss
            );
        }
    }
}

#[test]
fn a_very_wide_exact_trace_is_refused_with_the_memory_figure() {
    // 16 000 columns, 50 rows: the exact trace wanted 41 GB of scratch in one allocation and
    // aborted the process. The refusal comes before any buffer of that size exists.
    let d = 16_000;
    let mlp = Mlp::<f32>::new(MlpConfig::new(d, &[64, 64, 64], Activation::Tanh), 0).unwrap();
    let cnf = Cnf::new(
        mlp,
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );
    let rows = 50;
    let x: Vec<f32> = (0..rows * d)
        .map(|i| ((i % 97) as f32 - 48.0) / 30.0)
        .collect();
    let err = cnf.log_density(&x).unwrap_err();
    assert!(matches!(err, FlowError::TooLarge(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("4.1 GB") && msg.contains("16000"), "{msg}");
    assert!(!msg.contains('\n'));
    let err = cnf
        .loss_and_grad(&x, &Trace::Exact, Differentiation::Discretise)
        .unwrap_err();
    assert!(matches!(err, FlowError::TooLarge(_)), "{err:?}");
    // A one-probe Hutchinson trace fits: one training gradient in little memory.
    let probes = rademacher_probes::<f32, _>(&mut StdRng::seed_from_u64(2), 1, rows, d);
    let g = cnf
        .loss_and_grad(&x, &Trace::Hutchinson(&probes), Differentiation::Discretise)
        .unwrap();
    assert!(g.loss.is_finite() && g.grad.iter().all(|v| v.is_finite()));
    assert_eq!(g.grad.len(), cnf.field.num_params());
}
