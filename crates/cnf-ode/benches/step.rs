//! One step of each method on a small state (Lorenz, [f64; 3]) and on a 1024-dimensional linear
//! decay (Vec<f64>): `cargo bench -p cnf-ode --bench step`.
use std::hint::black_box;

use cnf_ode::{Bs3, Dop853, Dopri5, Euler, Heun, Midpoint, Rk4, RkMethod, Solver, Tsit5};
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

criterion_group!(benches, one_step);
criterion_main!(benches);
