//! Orthogonal Hutchinson probes: the shape (norm sqrt(d), mutually orthogonal within a block),
//! unbiasedness of `mean_p e_p.(A e_p)` for a fixed non-symmetric `A`, the exact trace at
//! `k = d`, and a measured variance reduction against independent probes at the same `k`.
use cnf_field::field::{gaussian_probes, orthogonal_probes};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random_matrix(rng: &mut StdRng, d: usize) -> Vec<f64> {
    (0..d * d).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn trace(a: &[f64], d: usize) -> f64 {
    (0..d).map(|i| a[i * d + i]).sum()
}

/// Per-point Hutchinson estimates `mean_p e_p.(A e_p)` from probes laid out `(k, B, d)`.
fn estimates(a: &[f64], probes: &[f64], k: usize, b: usize, d: usize) -> Vec<f64> {
    (0..b)
        .map(|pt| {
            (0..k)
                .map(|p| {
                    let e = &probes[(p * b + pt) * d..][..d];
                    (0..d)
                        .map(|i| e[i] * (0..d).map(|j| a[i * d + j] * e[j]).sum::<f64>())
                        .sum::<f64>()
                })
                .sum::<f64>()
                / k as f64
        })
        .collect()
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (
        m,
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn probes_have_norm_sqrt_d_and_are_orthogonal_within_a_block() {
    let (k, b, d) = (7, 50, 3); // blocks of 3, 3, 1
    let p = orthogonal_probes::<f64, _>(&mut StdRng::seed_from_u64(1), k, b, d);
    assert_eq!(p.len(), k * b * d);
    for pt in 0..b {
        let e = |q: usize| &p[(q * b + pt) * d..][..d];
        for q in 0..k {
            let nn: f64 = e(q).iter().map(|v| v * v).sum();
            assert!((nn - d as f64).abs() < 1e-12, "|e|^2 = {nn}");
            for r in 0..q {
                let dot: f64 = e(q).iter().zip(e(r)).map(|(x, y)| x * y).sum();
                if q / d == r / d {
                    assert!(dot.abs() < 1e-12, "probes {q}, {r} of point {pt}: {dot}");
                }
            }
        }
    }
    // Blocks of one point are independent: probe 0 and probe 3 are not orthogonal in general.
    let dots: Vec<f64> = (0..b)
        .map(|pt| {
            (0..d)
                .map(|i| p[pt * d + i] * p[(3 * b + pt) * d + i])
                .sum()
        })
        .collect();
    assert!(dots.iter().any(|v| v.abs() > 0.1), "{dots:?}");
}

#[test]
fn orthogonal_estimate_is_unbiased_for_a_non_symmetric_matrix() {
    let (k, b, d) = (2, 40_000, 6);
    let mut rng = StdRng::seed_from_u64(5);
    let a = random_matrix(&mut rng, d);
    let p = orthogonal_probes::<f64, _>(&mut rng, k, b, d);
    let (m, v) = mean_var(&estimates(&a, &p, k, b, d));
    let se = (v / b as f64).sqrt();
    println!(
        "mean {m:.5}, tr(A) {:.5}, standard error {se:.2e}",
        trace(&a, d)
    );
    assert!(
        (m - trace(&a, d)).abs() < 4.0 * se,
        "mean {m}, tr {}, se {se}",
        trace(&a, d)
    );
}

#[test]
fn k_equal_d_orthogonal_probes_give_the_exact_trace() {
    let mut rng = StdRng::seed_from_u64(9);
    for d in [1, 2, 5, 16] {
        let a = random_matrix(&mut rng, d);
        let b = 20;
        let p = orthogonal_probes::<f64, _>(&mut rng, d, b, d);
        for est in estimates(&a, &p, d, b, d) {
            assert!(
                (est - trace(&a, d)).abs() < 1e-10,
                "d {d}: {est} vs {}",
                trace(&a, d)
            );
        }
        // Independent Gaussian probes at the same k are not exact.
        if d > 1 {
            let g = gaussian_probes::<f64, _>(&mut rng, d, b, d);
            let worst = estimates(&a, &g, d, b, d)
                .iter()
                .fold(0.0f64, |w, e| w.max((e - trace(&a, d)).abs()));
            assert!(worst > 1e-3, "d {d}: {worst}");
        }
    }
}

#[test]
fn orthogonal_probes_reduce_variance_on_a_symmetric_positive_matrix() {
    // A = B B^T / d. Independent Gaussian probes: Var = 2 |A|_F^2 / k. Orthogonal probes (a
    // scaled Haar frame) have a smaller variance, also smaller than k independent probes on
    // the same sphere (which isolates the effect of orthogonality from that of the norm).
    let (k, b, d) = (4, 20_000, 8);
    let mut rng = StdRng::seed_from_u64(11);
    let bm = random_matrix(&mut rng, d);
    let a: Vec<f64> = (0..d * d)
        .map(|ij| {
            (0..d)
                .map(|l| bm[(ij / d) * d + l] * bm[(ij % d) * d + l])
                .sum::<f64>()
                / d as f64
        })
        .collect();
    let frob2: f64 = a.iter().map(|v| v * v).sum();
    let orth = orthogonal_probes::<f64, _>(&mut rng, k, b, d);
    let gauss = gaussian_probes::<f64, _>(&mut rng, k, b, d);
    // (1, k B, d) read as (k, B, d): k independent sphere probes per point.
    let sphere = orthogonal_probes::<f64, _>(&mut rng, 1, k * b, d);
    let (_, v_orth) = mean_var(&estimates(&a, &orth, k, b, d));
    let (_, v_gauss) = mean_var(&estimates(&a, &gauss, k, b, d));
    let (_, v_sphere) = mean_var(&estimates(&a, &sphere, k, b, d));
    println!(
        "k {k}, d {d}: variance orthogonal {v_orth:.4e}, independent sphere {v_sphere:.4e}, \
         independent Gaussian {v_gauss:.4e} (theory {:.4e})",
        2.0 * frob2 / k as f64
    );
    // The Gaussian estimate matches its theory (relative standard error of a sample variance
    // of a chi^2-like quantity at 20k draws is ~2%), so the comparison is meaningful.
    assert!((v_gauss / (2.0 * frob2 / k as f64) - 1.0).abs() < 0.1);
    assert!(v_orth < v_sphere, "{v_orth} vs {v_sphere}");
    assert!(v_orth < 0.5 * v_gauss, "{v_orth} vs {v_gauss}");
}
