//! Linear fields v = A z: z(1) = exp(A) x and D(1) = tr(A), so log p is known exactly.
use cnf_field::Linear;
use cnf_flow::{log_normal, Batching, Cnf};
use cnf_ode::{Method, SolverSpec};
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
            (SolverSpec::fixed(Method::Rk4, 100).unwrap(), 1e-8),
            (SolverSpec::adaptive(Method::Dopri5, 1e-11, 1e-11).unwrap(), 1e-8),
            (SolverSpec::adaptive(Method::Tsit5, 1e-11, 1e-11).unwrap(), 1e-8),
        ] {
            for batching in [Batching::Whole, Batching::Chunks(1)] {
                let cnf = Cnf::new(Linear::new(d, a, &b).unwrap(), integ.clone())
                    .with_batching(batching);
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
        SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
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

/// Mean NLL of v = A z + b in closed form: z(1) = exp(A) x + phi(A) b with phi(A) b read from
/// exp([[A, b], [0, 0]]) (no inverse of A needed), D(1) = tr(A) (exact trace) or
/// mean_p e_p^T A e_p (Hutchinson probes held along the path). Also returns M = exp(A).
fn closed_form_loss(d: usize, theta: &[f64], x: &[f64], probes: Option<&[f64]>) -> f64 {
    let mut aug = DMatrix::zeros(d + 1, d + 1);
    for i in 0..d {
        for j in 0..d {
            aug[(i, j)] = theta[i * d + j];
        }
        aug[(i, d)] = theta[d * d + i];
    }
    let e = aug.exp();
    let b = x.len() / d;
    let mut total = 0.0;
    for (n, p) in x.chunks(d).enumerate() {
        let z: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| e[(i, j)] * p[j]).sum::<f64>() + e[(i, d)])
            .collect();
        let div = match probes {
            None => (0..d).map(|i| theta[i * d + i]).sum::<f64>(),
            Some(pr) => {
                let k = pr.len() / (b * d);
                (0..k)
                    .map(|q| {
                        let u = &pr[(q * b + n) * d..][..d];
                        (0..d)
                            .map(|i| (0..d).map(|j| u[i] * theta[i * d + j] * u[j]).sum::<f64>())
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / k as f64
            }
        };
        total -= log_normal(&z) + div;
    }
    total / b as f64
}

/// The loss and gradients of both methods (Dopri5 1e-12) against the closed form: the loss to
/// 1e-12 (relative), dL/dA and dL/db against fourth-order finite differences of the closed form,
/// dL/dx against exp(A)^T z(1) / B, per component to 1e-10 (relative, floor 1e-3); measured
/// 2.5e-14, 2.5e-12, 1.8e-12. Exact trace and Rademacher probes (k = 2).
#[test]
fn loss_and_gradients_of_linear_flow_match_closed_form() {
    use cnf_field::{rademacher_probes, Trace, VectorField};
    use cnf_ode::Differentiation;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let d = 3;
    let mut rng = StdRng::seed_from_u64(21);
    let a: Vec<f64> = (0..d * d).map(|_| rng.random_range(-0.8..0.8)).collect();
    let bias: Vec<f64> = (0..d).map(|_| rng.random_range(-0.5..0.5)).collect();
    let x: Vec<f64> = (0..6 * d).map(|_| rng.random_range(-2.0..2.0)).collect();
    let probes = rademacher_probes::<f64, _>(&mut rng, 2, 6, d);
    let field = Linear::new(d, &a, &bias).unwrap();
    let theta = field.params().to_vec();
    let m = DMatrix::from_row_slice(d, d, &a).exp();
    for (trace, pr) in [
        (Trace::Exact, None),
        (Trace::Hutchinson(&probes), Some(&probes[..])),
    ] {
        let l0 = closed_form_loss(d, &theta, &x, pr);
        // dL/dtheta of the closed form by fourth-order central differences (h = 1e-3).
        let h = 1e-3;
        let g_cf: Vec<f64> = (0..theta.len())
            .map(|i| {
                let at = |e: f64| {
                    let mut t = theta.clone();
                    t[i] += e;
                    closed_form_loss(d, &t, &x, pr)
                };
                (8.0 * (at(h) - at(-h)) - (at(2.0 * h) - at(-2.0 * h))) / (12.0 * h)
            })
            .collect();
        for method in [
            Differentiation::Discretise,
            Differentiation::backsolve(1e-12, 1e-12),
        ] {
            let cnf = Cnf::new(
                field.clone(),
                SolverSpec::adaptive(Method::Dopri5, 1e-12, 1e-12).unwrap(),
            );
            let g = cnf.loss_and_grad(&x, &trace, method).unwrap();
            // dL/dx = exp(A)^T z(1) / B with z(1) from the closed form.
            let mut gx_cf = vec![0.0; x.len()];
            let nb = (x.len() / d) as f64;
            let (zx, _) = exact_affine(&a, &bias, d, &x);
            for (n, zn) in zx.chunks(d).enumerate() {
                for j in 0..d {
                    gx_cf[n * d + j] = (0..d).map(|i| m[(i, j)] * zn[i]).sum::<f64>() / nb;
                }
            }
            let rel = |u: &[f64], v: &[f64]| {
                u.iter()
                    .zip(v)
                    .map(|(p, q)| (p - q).abs() / (q.abs() + 1e-3))
                    .fold(0.0, f64::max)
            };
            let (el, eg, ex) = (
                (g.loss - l0).abs() / l0.abs(),
                rel(&g.grad, &g_cf),
                rel(&g.grad_x, &gx_cf),
            );
            println!(
                "{method:?} exact={}: loss {:.6} vs {l0:.6} (rel {el:.1e}), dL/dtheta {eg:.1e}, \
                 dL/dx {ex:.1e}",
                pr.is_none(),
                g.loss
            );
            assert!(el < 1e-12 && eg < 1e-10 && ex < 1e-10, "{el} {eg} {ex}");
        }
    }
}

/// z(1) of v = A z + b for every point, from exp([[A, b], [0, 0]]).
fn exact_affine(a: &[f64], b: &[f64], d: usize, x: &[f64]) -> (Vec<f64>, DMatrix<f64>) {
    let mut aug = DMatrix::zeros(d + 1, d + 1);
    for i in 0..d {
        for j in 0..d {
            aug[(i, j)] = a[i * d + j];
        }
        aug[(i, d)] = b[i];
    }
    let e = aug.exp();
    let z = x
        .chunks(d)
        .flat_map(|p| {
            (0..d)
                .map(|i| (0..d).map(|j| e[(i, j)] * p[j]).sum::<f64>() + e[(i, d)])
                .collect::<Vec<_>>()
        })
        .collect();
    (z, e)
}
