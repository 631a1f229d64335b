//! One step of each method on a small state (Lorenz, [f64; 3]) and on a 1024-dimensional linear
//! decay (Vec<f64>): `cargo bench -p cnf-ode --bench step`. `error_norm_1024x3`: a Dopri5 solve
//! of 1024 samples x (2 + log-det) with a cheap right-hand side under the RMS and the per-sample
//! error norm (the two take the same steps here: the step counts are printed).
use std::hint::black_box;

use cnf_ode::{
    Bs3, Dop853, Dopri5, ErrorNorm, Euler, Heun, Midpoint, Rk4, RkMethod, SampleLayout, Solver,
    Tsit5,
};
use cnf_testkit::problems::{lorenz_rhs, LORENZ};
use criterion::{criterion_group, criterion_main, Criterion};

fn methods() -> [&'static dyn RkMethod; 8] {
    [
        &Euler, &Midpoint, &Heun, &Rk4, &Bs3, &Dopri5, &Tsit5, &Dop853,
    ]
}

fn one_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_step_lorenz");
    for m in methods() {
        let s = Solver::new(m.tableau()).fixed_steps(1);
        g.bench_function(m.tableau().name, |b| {
            b.iter(|| s.solve_system(&mut lorenz_rhs, 0.0, 0.01, black_box(&LORENZ.y0)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("one_step_decay_1024");
    let y0: Vec<f64> = (0..1024).map(|i| 1.0 + f64::from(i) / 1024.0).collect();
    let mut decay = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| {
        for (d, v) in dy.iter_mut().zip(y) {
            *d = -v;
        }
    };
    for m in methods() {
        let s = Solver::new(m.tableau()).fixed_steps(1);
        g.bench_function(m.tableau().name, |b| {
            b.iter(|| s.solve_system(&mut decay, 0.0, 0.01, black_box(&y0)))
        });
    }
    g.finish();
}

/// 1024 damped rotations z' = A z (A = [[-0.1, 1], [-1, -0.1]]) and their log-det column,
/// `[z (1024 x 2), D (1024)]`: about as cheap a right-hand side as the state allows, so the
/// error norm's share of a step is as large as it gets.
fn error_norm(c: &mut Criterion) {
    const B: usize = 1024;
    let mut y0: Vec<f64> = (0..B)
        .flat_map(|i| [(i as f64).cos(), (i as f64).sin()])
        .collect();
    y0.extend(std::iter::repeat_n(0.0, B));
    let rhs = |_t: f64, y: &[f64], dy: &mut [f64]| {
        let (z, dz) = (&y[..2 * B], &mut dy[..2 * B]);
        for (d, v) in dz.chunks_exact_mut(2).zip(z.chunks_exact(2)) {
            d[0] = -0.1 * v[0] + v[1];
            d[1] = -v[0] - 0.1 * v[1];
        }
        dy[2 * B..].fill(-0.2);
    };
    let norms = [
        ("rms", ErrorNorm::Rms),
        (
            "per_sample",
            ErrorNorm::PerSample(SampleLayout::rows(B, 2).then_columns(1)),
        ),
    ];
    let mut g = c.benchmark_group("error_norm_1024x3");
    for (name, norm) in norms {
        let s = Solver::new(Dopri5).rtol(1e-6).atol(1e-6).error_norm(norm);
        let stats = s.solve(rhs, 0.0, 2.0, &y0).unwrap().stats;
        eprintln!("error_norm_1024x3/{name}: {stats}");
        g.bench_function(name, |b| {
            b.iter(|| s.solve(rhs, 0.0, 2.0, black_box(&y0)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, one_step, error_norm);
criterion_main!(benches);
