//! Linear fields v = A z: z(1) = exp(A) x and D(1) = tr(A), so log p is known exactly.
use cnf_field::Linear;
use cnf_flow::{log_normal, Batching, Cnf, Integrator};
use cnf_ode::{Dopri5, Rk4, Tsit5};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

fn exact(a: &[f64], d: usize, x: &[f64]) -> (Vec<f64>, f64) {
    let e = DMatrix::from_row_slice(d, d, a).exp();
    let z = &e * DVector::from_column_slice(x);
    let tr: f64 = (0..d).map(|i| a[i * d + i]).sum();
    (z.as_slice().to_vec(), log_normal(z.as_slice()) + tr)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn log_density_of_linear_flow_is_exact(
        d in 1usize..4,
        seed_a in proptest::collection::vec(-0.8f64..0.8, 9),
        xs in proptest::collection::vec(-2.0f64..2.0, 12),
    ) {
        let a = &seed_a[..d * d];
        let b = vec![0.0; d];
        let n = 12 / d;
        let x = &xs[..n * d];
        for (integ, tol) in [
            (Integrator::fixed(Rk4, 100), 1e-8),
            (Integrator::adaptive(Dopri5, 1e-11, 1e-11), 1e-8),
            (Integrator::adaptive(Tsit5, 1e-11, 1e-11), 1e-8),
        ] {
            for batching in [Batching::Whole, Batching::Chunks(1)] {
                let cnf = Cnf::new(Linear::new(d, a, &b).unwrap(), integ).with_batching(batching);
                let dens = cnf.log_density(x).unwrap();
                for (i, p) in x.chunks(d).enumerate() {
                    let (z, lp) = exact(a, d, p);
                    // Relative to the size of the values (log p reaches -40 when exp(A) stretches).
                    prop_assert!((dens.logp[i] - lp).abs() < tol * (1.0 + lp.abs()), "logp {} vs {}", dens.logp[i], lp);
                    for (a, b) in dens.z1[i * d..(i + 1) * d].iter().zip(&z) {
                        prop_assert!((a - b).abs() < tol * (1.0 + b.abs()));
                    }
                }
            }
        }
    }
}

#[test]
fn sample_then_forward_returns_the_base_points() {
    let a = [0.3, -0.7, 0.5, -0.2];
    let cnf = Cnf::new(
        Linear::new(2, &a, &[0.1, -0.2]).unwrap(),
        Integrator::adaptive(Dopri5, 1e-10, 1e-10),
    );
    let z: Vec<f64> = (0..40)
        .map(|i| ((i * 37 % 17) as f64 - 8.0) / 4.0)
        .collect();
    let x = cnf.transform(&z, 1.0, 0.0).unwrap();
    let back = cnf.transform(&x.points, 0.0, 1.0).unwrap();
    for (u, v) in z.iter().zip(&back.points) {
        assert!((u - v).abs() < 1e-8);
    }
}
