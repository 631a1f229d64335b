//! The density model as a density: it integrates to one, sampling inverts the density's map,
//! failures say where they happened, and the Hutchinson estimator is unbiased.
mod common;
use cnf_field::{rademacher_probes, DualField, GenericField, Linear, Trace};
use cnf_flow::{Batching, Cnf, FlowError};
use cnf_ode::{Method, SolverSpec};
use common::diffrax_model;
use num_traits::Float;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Midpoint rule for the integral of p over the box [-l, l]^2 with n x n cells; returns the
/// integral, the part of it from the frame max(|x|, |y|) > r, and the NFE of the solves.
fn grid_mass(cnf: &Cnf<f64, cnf_field::Mlp<f64>>, l: f64, n: usize, r: f64) -> (f64, f64, u64) {
    let h = 2.0 * l / n as f64;
    let c = |i: usize| -l + (i as f64 + 0.5) * h;
    let x: Vec<f64> = (0..n * n).flat_map(|k| [c(k / n), c(k % n)]).collect();
    let dens = cnf.log_density(&x).unwrap();
    let (mut total, mut frame) = (0.0, 0.0);
    for (p, &lp) in x.chunks(2).zip(&dens.logp) {
        let m = lp.exp() * h * h;
        total += m;
        if p[0].abs().max(p[1].abs()) > r {
            frame += m;
        }
    }
    (total, frame, dens.stats.nfe as u64)
}

/// The learned 8gaussians density (modes at radius 2.83, width 0.35) integrates to one, to the
/// 1e-5 docs/flow.md states. In f64 at rtol = atol = 1e-8 (solver error in log p ~1e-8, far
/// below 1e-5) over [-6, 6]^2: the density decays outwards, so the mass of the frame
/// 5.5 < |x|_inf < 6 bounds what lies beyond the box (the mass of [-5, 5]^2 alone misses ~1e-5,
/// see the print); a coarser grid shows the quadrature error (the midpoint rule on a smooth,
/// rapidly decaying density converges much faster than h^2).
#[test]
fn diffrax_density_integrates_to_one() {
    let cnf = Cnf::new(
        diffrax_model::<f64>(),
        SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8).unwrap(),
    )
    .with_batching(Batching::Chunks(512));
    let l = 6.0;
    let (fine, frame, nfe) = grid_mass(&cnf, l, 96, 5.5);
    let (coarse, _, nfe_c) = grid_mass(&cnf, l, 80, 5.5);
    println!(
        "integral over [-{l},{l}]^2: {fine:.9} (h = 0.125, NFE {nfe}), {coarse:.9} (h = 0.15, \
         NFE {nfe_c}); mass with |x|_inf > 5.5: {frame:.2e}"
    );
    assert!((fine - 1.0).abs() < 1e-5, "{fine}");
    assert!(
        (fine - coarse).abs() < 1e-6,
        "quadrature: {fine} vs {coarse}"
    );
    assert!(frame < 1e-6, "truncation: {frame}");
}

/// Base points drawn the way `Cnf::sample` draws them (f64 standard normals, row-major).
fn base_points<R: rand::Rng>(rng: &mut R, n: usize, d: usize) -> Vec<f64> {
    (0..n * d).map(|_| StandardNormal.sample(rng)).collect()
}

/// Sampling is the inverse of the density's map: x = transform(z, 1 -> 0), then the forward
/// solve of log_density brings x back to z, and `sample` is exactly that transform of its draws.
#[test]
fn sample_then_log_density_returns_the_base_points() {
    let tol = 1e-9;
    for batching in [Batching::Whole, Batching::Chunks(16)] {
        let cnf = Cnf::new(
            diffrax_model::<f64>(),
            SolverSpec::adaptive(Method::Dopri5, tol, tol).unwrap(),
        )
        .with_batching(batching);
        let n = 64;
        let z = base_points(&mut StdRng::seed_from_u64(11), n, 2);
        let x = cnf.transform(&z, 1.0, 0.0).unwrap();
        let s = cnf.sample(n, &mut StdRng::seed_from_u64(11)).unwrap();
        assert_eq!(s.points, x.points, "sample = transform of the same draws");
        let dens = cnf.log_density(&s.points).unwrap();
        let err = dens
            .z1
            .iter()
            .zip(&z)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{batching:?}: max |z1 - z| = {err:.2e}, sample {}, density {}",
            s.stats, dens.stats
        );
        assert!(err < 1e-6, "{err}");
        // The samples moved (the map is not the identity) and their log-densities are finite.
        let moved = s
            .points
            .iter()
            .zip(&z)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(moved > 0.5, "{moved}");
        assert!(dens.logp.iter().all(|v| v.is_finite()));
        // log p(x) = log N(z) + D(1) with z the base point we drew.
        for (i, zb) in z.chunks(2).enumerate() {
            let lp = cnf_flow::log_normal(zb) + dens.delta_logp[i];
            assert!((lp - dens.logp[i]).abs() < 1e-6);
        }
    }
}

/// v = z^2 componentwise: z(t) = z0 / (1 - z0 t) blows up at t = 1 / z0.
struct Square;

impl GenericField for Square {
    fn dim(&self) -> usize {
        2
    }
    fn eval<S: Float>(&self, _t: S, z: &[S], _c: &[S], out: &mut [S]) {
        for (o, &x) in out.iter_mut().zip(z) {
            *o = x * x;
        }
    }
}

/// Only sample 2 starts at z0 = 3 (blow-up at t = 1/3); the others blow up after t = 1 or never.
#[test]
fn solve_failure_names_the_sample_and_the_time() {
    let x = [0.5, -1.0, -2.0, 0.4, 3.0, 0.1, 0.2, 0.3, -0.5, 0.45];
    for batching in [
        Batching::Whole,
        Batching::Chunks(1),
        Batching::Chunks(2),
        Batching::Chunks(3),
    ] {
        let cnf = Cnf::new(
            DualField::new(Square),
            SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8).unwrap(),
        )
        .with_batching(batching);
        let dens = cnf.log_density(&x);
        let back = cnf.transform(&x, 0.0, 1.0);
        for r in [dens.map(|_| ()), back.map(|_| ())] {
            match r {
                Err(FlowError::Solve {
                    sample: Some(2),
                    t,
                    ref stats,
                    ..
                }) => {
                    println!("{batching:?}: {}", r.clone().unwrap_err());
                    assert!((t - 1.0 / 3.0).abs() < 1e-6, "t = {t}");
                    assert!(stats.nfe > 0);
                }
                other => panic!("{batching:?}: {other:?}"),
            }
        }
    }
    // Without sample 2 every solve succeeds, so the error is the sample's, not the batch's.
    let ok: Vec<f64> = x[..4].iter().chain(&x[6..]).copied().collect();
    let cnf = Cnf::new(
        DualField::new(Square),
        SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8).unwrap(),
    );
    let dens = cnf.log_density(&ok).unwrap();
    // D(1) = sum_i integral of 2 z_i = -2 sum_i ln(1 - z0_i).
    for (p, &dl) in ok.chunks(2).zip(&dens.delta_logp) {
        let exact: f64 = p.iter().map(|&z0| -2.0 * (1.0 - z0).ln()).sum();
        assert!((dl - exact).abs() < 1e-6, "{dl} vs {exact}");
    }
}

#[test]
fn bad_inputs_and_settings_are_typed_errors() {
    let lin = || Linear::new(2, &[0.1, 0.0, 0.0, -0.2], &[0.0, 0.0]).unwrap();
    let cnf = Cnf::new(
        lin(),
        SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6).unwrap(),
    );
    let mut x = vec![0.1; 10];
    x[7] = f64::NAN;
    assert_eq!(
        cnf.log_density(&x).unwrap_err(),
        FlowError::NonFiniteInput { sample: 3 }
    );
    x[7] = f64::INFINITY;
    assert!(matches!(
        cnf.transform(&x, 0.0, 1.0),
        Err(FlowError::NonFiniteInput { sample: 3 })
    ));
    assert_eq!(
        cnf.log_density(&[0.1; 5]).unwrap_err(),
        FlowError::Shape { len: 5, dim: 2 }
    );
    assert!(matches!(
        cnf.sample(0, &mut StdRng::seed_from_u64(0)).map(|s| s.points),
        Ok(p) if p.is_empty()
    ));
    // Settings no solve can use are refused by the flow's SolverSpec, where it is made.
    for spec in [
        SolverSpec::<f64>::adaptive(Method::Euler, 1e-6, 1e-6),
        SolverSpec::adaptive(Method::Rk4, 1e-6, 1e-6),
        SolverSpec::fixed(Method::Rk4, 0),
    ] {
        let e = spec.unwrap_err();
        println!("{e}");
    }
}

/// With Rademacher probes e held along the path, e.(J e) = tr J + e_1 e_2 (J_12 + J_21) in
/// d = 2, so each estimate of D(1) is D +- s with equal probability: unbiased, and the mean over
/// M independent draws is within a few standard errors of the exact value. The M draws are M
/// copies of the points in one whole-batch solve (each copy gets its own probe).
#[test]
fn hutchinson_averages_to_the_exact_log_density() {
    let cnf = Cnf::new(
        diffrax_model::<f64>(),
        SolverSpec::adaptive(Method::Dopri5, 1e-8, 1e-8).unwrap(),
    );
    let x = [0.0, 0.0, 2.0, 0.1, -1.4, 1.5, 0.5, -2.5, 3.0, 3.0];
    let (b, m) = (x.len() / 2, 400);
    let exact = cnf.log_density(&x).unwrap();
    let xs: Vec<f64> = (0..m).flat_map(|_| x).collect();
    let mut rng = StdRng::seed_from_u64(5);
    let probes = rademacher_probes::<f64, _>(&mut rng, 1, m * b, 2);
    let est = cnf
        .log_density_with(&xs, &Trace::Hutchinson(&probes))
        .unwrap();
    for i in 0..b {
        let vals: Vec<f64> = (0..m).map(|r| est.logp[r * b + i]).collect();
        let mean = vals.iter().sum::<f64>() / m as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
        let se = (var / m as f64).sqrt();
        println!(
            "point {i}: exact {:.5}, Hutchinson mean {mean:.5} +- {se:.5} (sd {:.4})",
            exact.logp[i],
            var.sqrt()
        );
        // The estimator is random (not secretly exact) ...
        assert!(var.sqrt() > 1e-3, "sd {}", var.sqrt());
        // ... two-valued, symmetric about the exact value ...
        let s = (vals[0] - exact.logp[i]).abs();
        assert!(vals
            .iter()
            .all(|v| ((v - exact.logp[i]).abs() - s).abs() < 1e-5));
        // ... and its mean is within 4.5 standard errors (5 points: a false alarm has
        // probability below 5 * 7e-6).
        assert!((mean - exact.logp[i]).abs() < 4.5 * se + 1e-6);
    }
}
