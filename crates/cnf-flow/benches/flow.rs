//! Flow throughput with the diffrax-trained 8gaussians model in f32 (Dopri5, rtol = atol =
//! 1e-5): log-density of 1024 points per batching, and one loss-and-gradient step of 512 points
//! with each gradient method (exact trace).
use cnf_field::{Activation, Mlp, Trace};
use cnf_flow::{Batching, Cnf};
use cnf_ode::Differentiation;
use cnf_ode::{Method, SolverSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/cnf_8g_diffrax_1000it.npz"
);

fn model() -> Cnf<f32, Mlp<f32>> {
    let mlp = Mlp::from_npz(MODEL, &[64, 64, 64], Activation::Tanh).expect("diffrax model");
    Cnf::new(
        mlp,
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    )
}

/// `n` deterministic points spread over the 8 modes (radius 2.83) with a little jitter.
fn points(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let angle = (i % 8) as f32 * std::f32::consts::FRAC_PI_4;
            let r = 2.83 + 0.3 * ((i as f32 * 0.731).sin());
            let jitter = 0.3 * (i as f32 * 1.37).cos();
            [r * angle.cos() + jitter, r * angle.sin() - jitter]
        })
        .collect()
}

fn log_density(c: &mut Criterion) {
    let cnf = model();
    let x = points(1024);
    let mut g = c.benchmark_group("log_density_1024");
    g.sample_size(10).throughput(Throughput::Elements(1024));
    for (name, b) in [
        ("whole", Batching::Whole),
        ("chunks256", Batching::Chunks(256)),
        ("chunks512", Batching::Chunks(512)),
    ] {
        let c = cnf.clone().with_batching(b);
        g.bench_with_input(BenchmarkId::from_parameter(name), &x, |bench, x| {
            bench.iter(|| black_box(c.log_density(x).expect("log-density")))
        });
    }
    g.finish();
}

fn loss_and_grad(c: &mut Criterion) {
    let cnf = model();
    let x = points(512);
    let mut g = c.benchmark_group("loss_and_grad_512");
    g.sample_size(10).throughput(Throughput::Elements(512));
    for (name, method) in [
        ("backprop", Differentiation::Discretise),
        ("adjoint", Differentiation::backsolve(1e-5, 1e-5)),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(name), &x, |bench, x| {
            bench.iter(|| {
                black_box(
                    cnf.loss_and_grad(x, &Trace::Exact, method)
                        .expect("gradient"),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, log_density, loss_and_grad);
criterion_main!(benches);
