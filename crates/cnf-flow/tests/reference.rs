//! The imported diffrax model reproduces scipy's log-densities (DOP853 at 1e-12, exact trace).
mod common;
use cnf_flow::{Batching, Cnf};
use cnf_ode::{Method, SolverSpec};
use common::{diffrax_model, reference_rows};

#[test]
fn logp_reference_f64_at_1e10() {
    let rows = reference_rows();
    assert_eq!(rows.len(), 69);
    let x: Vec<f64> = rows.iter().flat_map(|r| r.0).collect();
    let cnf = Cnf::new(
        diffrax_model::<f64>(),
        SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
    );
    let dens = cnf.log_density(&x).unwrap();
    let mut worst = (0.0f64, 0.0f64);
    for (i, (_, logp, z1)) in rows.iter().enumerate() {
        worst.0 = worst.0.max((dens.logp[i] - logp).abs());
        for (a, b) in dens.z1[2 * i..2 * i + 2].iter().zip(z1) {
            worst.1 = worst.1.max((a - b).abs());
        }
    }
    println!(
        "f64 Dopri5 1e-10: max |logp err| {:.2e}, max |z1 err| {:.2e}, {}",
        worst.0, worst.1, dens.stats
    );
    // README: "max error 1.3e-9"; fails at 1e-8 (log p) and 1e-9 (z1, measured 1.1e-10).
    assert!(worst.0 < 1e-8 && worst.1 < 1e-9, "{worst:?}");
}

/// Per-point solves hold every point to the tolerance. A whole-batch solve shares its steps and
/// controls the RMS error over the batch, which at 1e-5 leaves ~3.5e-3 in the worst log-density
/// here (f64 gives the same: it is the tolerance, not the precision), so it is checked at 1e-6.
/// Measured worst errors: 2.1e-4 (per point, 1e-5) and 1.9e-4 (whole batch, 1e-6); asserted
/// at 5e-4.
#[test]
fn logp_reference_f32() {
    let rows = reference_rows();
    let x: Vec<f32> = rows.iter().flat_map(|r| r.0.map(|v| v as f32)).collect();
    for (batching, tol) in [
        (Batching::Chunks(1), 1e-5),
        (Batching::Whole, 1e-6),
        (Batching::Whole, 1e-5),
    ] {
        let cnf = Cnf::new(
            diffrax_model::<f32>(),
            SolverSpec::adaptive(Method::Dopri5, tol, tol).unwrap(),
        )
        .with_batching(batching);
        let dens = cnf.log_density(&x).unwrap();
        let worst = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (f64::from(dens.logp[i]) - r.1).abs())
            .fold(0.0, f64::max);
        println!(
            "f32 Dopri5 {tol:e} {batching:?}: max |logp err| {worst:.2e}, {}",
            dens.stats
        );
        if (batching, tol) == (Batching::Whole, 1e-5) {
            // docs/flow.md: the worst point is off by more than the tolerance (3.5e-3).
            assert!(worst > 1e-3 && worst < 5e-3, "{worst}");
        } else {
            assert!(worst < 5e-4, "{batching:?}: {worst}");
        }
    }
}

/// The per-sample error norm holds every point of a whole-batch solve to the tolerance: the 69
/// reference points solved inside a batch of 2069 (the others from the 8gaussians test set) are
/// as accurate as solved one by one (< 5e-4), where the batch RMS norm lets the worst drift
/// past 3e-3.
#[test]
fn per_sample_norm_holds_every_point_of_a_batch() {
    use cnf_train_free_points::points;
    let rows = reference_rows();
    let mut x: Vec<f32> = rows.iter().flat_map(|r| r.0.map(|v| v as f32)).collect();
    x.extend(points(2000));
    let mut worst_of = Vec::new();
    for per_sample in [false, true] {
        let spec = SolverSpec::builder(Method::Dopri5)
            .rtol(1e-5)
            .atol(1e-5)
            .per_sample_norm(per_sample)
            .build()
            .unwrap();
        let cnf = Cnf::new(diffrax_model::<f32>(), spec);
        let dens = cnf.log_density(&x).unwrap();
        let worst = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (f64::from(dens.logp[i]) - r.1).abs())
            .fold(0.0, f64::max);
        println!(
            "per-sample {per_sample}: max |logp err| {worst:.2e}, {}",
            dens.stats
        );
        worst_of.push(worst);
    }
    assert!(worst_of[0] > 3e-3, "batch RMS: {}", worst_of[0]);
    assert!(worst_of[1] < 5e-4, "per-sample: {}", worst_of[1]);
}

/// Points of the 8gaussians shape without depending on cnf-train: centres at radius 4 (scaled
/// by 1/1.414 as FFJORD's), noise 0.5, from a fixed seed.
mod cnf_train_free_points {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::StandardNormal;
    pub fn points(n: usize) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(17);
        (0..n)
            .flat_map(|_| {
                let k = rng.random_range(0..8) as f64;
                let a = k * std::f64::consts::FRAC_PI_4;
                let (nx, ny): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
                let p = [
                    (4.0 * a.cos() + 0.5 * nx) / 1.414,
                    (4.0 * a.sin() + 0.5 * ny) / 1.414,
                ];
                p.map(|v| v as f32)
            })
            .collect()
    }
}
