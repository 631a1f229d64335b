//! The Hutchinson probes' moments, checked directly: E[e] = 0 and E[e e^T] = I (to ~1%, far
//! tighter than convergence of the estimator within 5 standard errors, which a 25% bias in the
//! covariance could pass), probes of one point independent of each other, Rademacher entries
//! exactly +-1.
use cnf_field::{gaussian_probes, rademacher_probes};
use rand::{rngs::StdRng, SeedableRng};

/// Sample mean (d) and second moment (d x d) of the probe vectors, over all (k, B) rows, and
/// the cross moment E[e_p e_q^T] of the first two probes of each point.
fn moments(p: &[f64], k: usize, b: usize, d: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = (k * b) as f64;
    let mut mean = vec![0.0; d];
    let mut second = vec![0.0; d * d];
    for e in p.chunks(d) {
        for i in 0..d {
            mean[i] += e[i] / n;
            for j in 0..d {
                second[i * d + j] += e[i] * e[j] / n;
            }
        }
    }
    let mut cross = vec![0.0; d * d];
    for pt in 0..b {
        let (e0, e1) = (&p[pt * d..][..d], &p[(b + pt) * d..][..d]);
        for i in 0..d {
            for j in 0..d {
                cross[i * d + j] += e0[i] * e1[j] / b as f64;
            }
        }
    }
    (mean, second, cross)
}

#[test]
fn probes_have_zero_mean_and_identity_covariance() {
    // 2 probes x 250k points x 3 dims: standard errors 1/sqrt(5e5) = 1.4e-3 (Rademacher
    // off-diagonal), sqrt(2/5e5) = 2e-3 (Gaussian diagonal), so 1e-2 is 5-7 standard errors.
    let (k, b, d) = (2, 250_000, 3);
    let mut rng = StdRng::seed_from_u64(17);
    for (name, p) in [
        ("rademacher", rademacher_probes::<f64, _>(&mut rng, k, b, d)),
        ("gaussian", gaussian_probes::<f64, _>(&mut rng, k, b, d)),
    ] {
        assert_eq!(p.len(), k * b * d);
        if name == "rademacher" {
            assert!(p.iter().all(|&v| v == 1.0 || v == -1.0));
        }
        let (mean, second, cross) = moments(&p, k, b, d);
        let worst_mean = mean.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst_cov = (0..d * d)
            .map(|ij| (second[ij] - if ij % (d + 1) == 0 { 1.0 } else { 0.0 }).abs())
            .fold(0.0, f64::max);
        let worst_cross = cross.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        println!(
            "{name}: max |E e| {worst_mean:.1e}, max |E e e^T - I| {worst_cov:.1e}, \
             max |E e_1 e_2^T| {worst_cross:.1e}"
        );
        assert!(worst_mean < 1e-2, "{name}: {mean:?}");
        assert!(worst_cov < 1e-2, "{name}: {second:?}");
        assert!(worst_cross < 1e-2, "{name}: {cross:?}");
    }
    // The f32 probes are the same draws.
    let p32 = rademacher_probes::<f32, _>(&mut StdRng::seed_from_u64(3), 1, 10, 2);
    let p64 = rademacher_probes::<f64, _>(&mut StdRng::seed_from_u64(3), 1, 10, 2);
    assert!(p32.iter().zip(&p64).all(|(&a, &b)| f64::from(a) == b));
}
