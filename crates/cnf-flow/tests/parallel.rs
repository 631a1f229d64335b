//! Whole-batch solves split the field's rows over threads; results must not depend on the split.
use cnf_field::{rademacher_probes, Activation, Mlp, MlpConfig, Trace};
use cnf_flow::Cnf;
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_the_number_of_row_blocks() {
    let mut rng = StdRng::seed_from_u64(11);
    let b = 600; // 1 block with one thread, 4 blocks (150 rows) with four
    let x: Vec<f64> = (0..2 * b).map(|_| rng.random_range(-2.0..2.0)).collect();
    let probes = rademacher_probes::<f64, _>(&mut rng, 2, b, 2);
    let cnf = Cnf::new(
        Mlp::new(MlpConfig::new(2, &[16, 16], Activation::Softplus), 5).unwrap(),
        SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6).unwrap(),
    );
    for trace in [Trace::Exact, Trace::Hutchinson(&probes)] {
        let run = |threads| {
            in_pool(threads, || {
                let dens = cnf.log_density_with(&x, &trace).unwrap();
                let bp = cnf
                    .loss_and_grad(&x, &trace, Differentiation::Discretise)
                    .unwrap();
                let adj = cnf
                    .loss_and_grad(&x, &trace, Differentiation::backsolve(1e-6, 1e-6))
                    .unwrap();
                let work = [
                    dens.stats,
                    bp.forward,
                    bp.backward,
                    adj.forward,
                    adj.backward,
                ];
                (dens.logp, bp.grad, adj.grad, work)
            })
        };
        let (one, four) = (run(1), run(4));
        // Normwise: within 1e-10 of the vector's largest component (the split only reorders
        // the sums over rows).
        let close = |a: &[f64], b: &[f64]| {
            let scale = a.iter().fold(0.0f64, |m, u| m.max(u.abs()));
            a.iter().zip(b).all(|(u, v)| (u - v).abs() <= 1e-10 * scale)
        };
        // The same steps and evaluations in every solve: log-density, backprop forward and
        // backward, adjoint forward and backward.
        assert_eq!(one.3, four.3, "same steps");
        assert!(close(&one.0, &four.0), "log-densities differ");
        assert!(close(&one.1, &four.1), "backprop gradients differ");
        assert!(close(&one.2, &four.2), "adjoint gradients differ");
    }
}
