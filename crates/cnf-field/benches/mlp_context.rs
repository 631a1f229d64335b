//! The conditional MLP against the unconditional one in the same run: `v` + exact trace and
//! `v` + trace + VJP (z, theta, and d/dc when there is a context) for a batch of 512 points
//! (d = 2, 3 x 64 tanh) with context widths k = 0 (the peer), 2 and 10. The context widens
//! only the first layer's input (d + 1 -> d + 1 + k columns), so the cost should grow by about
//! that layer's share of the primal GEMMs.

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::{Activation, Inputs, Mlp, MlpConfig, Real, Trace, VectorField};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

const BATCH: usize = 512;
const DIM: usize = 2;
const HIDDEN: [usize; 3] = [64, 64, 64];
const WIDTHS: [usize; 3] = [0, 2, 10];

fn wave<T: Real>(n: usize, f: f64) -> Vec<T> {
    (0..n)
        .map(|i| cnf_ode::cast::<T>((i as f64 * f).sin() * 2.0))
        .collect()
}

fn bench_precision<T: Real>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("mlp_context_{}", T::NAME));
    let (z, a_v, a_div) = (
        wave::<T>(BATCH * DIM, 0.37),
        wave::<T>(BATCH * DIM, 0.11),
        wave::<T>(BATCH, 0.53),
    );
    for k in WIDTHS {
        let config = MlpConfig::new(DIM, &HIDDEN, Activation::Tanh).with_context(k);
        let mlp = Mlp::<T>::new(config, 7).expect("valid config");
        let context = wave::<T>(BATCH * k, 0.29);
        let mut s = mlp.scratch(BATCH);
        let (mut v, mut div) = (vec![T::zero(); BATCH * DIM], vec![T::zero(); BATCH]);
        let (mut g_z, mut g_th, mut g_c) = (
            vec![T::zero(); BATCH * DIM],
            vec![T::zero(); mlp.num_params()],
            vec![T::zero(); BATCH * k],
        );
        let x = Inputs::shared(T::one(), &z).with_context(&context);
        group.bench_function(BenchmarkId::new("eval_div_exact_b512", k), |b| {
            b.iter(|| {
                mlp.eval_div_batch(&mut s, black_box(x), &Trace::Exact, &mut v, &mut div);
            })
        });
        group.bench_function(BenchmarkId::new("eval_div_vjp_exact_b512", k), |b| {
            b.iter(|| {
                let input = VjpInput::new(black_box(x), Trace::Exact, &a_v, &a_div);
                let out = VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th)
                    .with_context_grad(&mut g_c);
                mlp.vjp_batch(&mut s, input, out);
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_precision::<f32>(c);
    bench_precision::<f64>(c);
}

criterion_group!(context, benches);
criterion_main!(context);
