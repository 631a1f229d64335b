//! The benchmark tasks of `cnf_train::sbi` against mathematics: the Gaussian linear posterior
//! against the conjugate (precision-weighted) formula and Bayes' rule, exact draws and
//! simulators against their closed-form moments, two moons' geometry against sbibm's own
//! reference posterior samples.
//!
//! Sampling bounds: a sample mean of n draws is within 5 standard errors of its expectation
//! except with probability 6e-7 per comparison; the few hundred comparisons here stay below
//! 1e-3 family-wise. The draws are seeded, so a pass is reproducible.

use std::f64::consts::PI;
use std::path::PathBuf;

use cnf_train::data::{read_csv, ColumnSelection};
use cnf_train::sbi::{
    task, GaussianLinear, Observation, SbiError, Slcp, Task, TwoMoons, NUM_OBSERVATIONS, TASK_NAMES,
};
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

const Z: f64 = 5.0;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample covariance of two equally long series (divisor n - 1).
fn cov(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() - 1) as f64
}

fn column(rows: &[f64], width: usize, j: usize) -> Vec<f64> {
    rows.chunks_exact(width).map(|r| r[j]).collect()
}

/// log N(z; m, var I), written out.
fn log_normal_iso(z: &[f64], m: &[f64], var: f64) -> f64 {
    z.iter()
        .zip(m)
        .map(|(z, m)| -0.5 * (2.0 * PI * var).ln() - 0.5 * (z - m).powi(2) / var)
        .sum()
}

/// Checks that the sample `rows` (n x d) has mean `mu` and covariance `sigma` (d x d,
/// row-major) within Z standard errors of a Gaussian's estimators: the mean's se is
/// sqrt(S_ii / n), a covariance entry's sqrt((S_ii S_jj + S_ij^2) / n).
fn assert_gaussian_moments(rows: &[f64], d: usize, mu: &[f64], sigma: &[f64], what: &str) {
    let n = (rows.len() / d) as f64;
    let cols: Vec<Vec<f64>> = (0..d).map(|j| column(rows, d, j)).collect();
    for i in 0..d {
        let se = (sigma[i * d + i] / n).sqrt();
        let m = mean(&cols[i]);
        assert!(
            (m - mu[i]).abs() < Z * se,
            "{what}: mean[{i}] {m} vs {} (se {se})",
            mu[i]
        );
        for j in 0..=i {
            let s = sigma[i * d + j];
            let se = ((sigma[i * d + i] * sigma[j * d + j] + s * s) / n).sqrt();
            let c = cov(&cols[i], &cols[j]);
            assert!(
                (c - s).abs() < Z * se,
                "{what}: cov[{i},{j}] {c} vs {s} (se {se})"
            );
        }
    }
}

#[test]
fn gaussian_linear_posterior_is_the_precision_weighted_conjugate_update() {
    let task = GaussianLinear;
    for obs in Observation::all() {
        let x = task.observation(obs);
        let post = GaussianLinear::posterior(&x).unwrap();
        // Precision form: Lambda = Lambda_prior + Lambda_noise, mean = Lambda^-1 (Lambda_noise x).
        let precision = 1.0 / GaussianLinear::PRIOR_VAR + 1.0 / GaussianLinear::NOISE_VAR;
        assert!((post.var() - 1.0 / precision).abs() < 1e-15);
        for (m, xi) in post.mean().iter().zip(&x) {
            let expected = (xi / GaussianLinear::NOISE_VAR) / precision;
            assert!((m - expected).abs() < 1e-15, "{m} vs {expected}");
        }
    }
}

#[test]
fn gaussian_linear_exact_draws_have_the_posterior_moments() {
    let task = GaussianLinear;
    let d = GaussianLinear::DIM;
    let obs = Observation::new(3).unwrap();
    let n = 20_000;
    let draws = task
        .reference_posterior(obs, n, &mut StdRng::seed_from_u64(11))
        .unwrap();
    assert_eq!(draws.len(), n * d);
    let var = 1.0 / (1.0 / GaussianLinear::PRIOR_VAR + 1.0 / GaussianLinear::NOISE_VAR);
    let mu: Vec<f64> = task
        .observation(obs)
        .iter()
        .map(|x| var * x / GaussianLinear::NOISE_VAR)
        .collect();
    let sigma: Vec<f64> = (0..d * d)
        .map(|k| if k % (d + 1) == 0 { var } else { 0.0 })
        .collect();
    assert_gaussian_moments(&draws, d, &mu, &sigma, "gaussian linear posterior");
}

#[test]
fn gaussian_linear_joint_has_the_model_moments() {
    // theta ~ N(0, 0.1 I), x = theta + N(0, 0.1 I): the pair (theta_i, x_i) has covariance
    // [[0.1, 0.1], [0.1, 0.2]] and coordinates are independent.
    let task = GaussianLinear;
    let sims = task.simulate_pairs(20_000, 5).unwrap();
    let d = GaussianLinear::DIM;
    for i in 0..d {
        let pair: Vec<f64> = column(&sims.theta, d, i)
            .into_iter()
            .zip(column(&sims.x, d, i))
            .flat_map(|(t, x)| [t, x])
            .collect();
        let (p, q) = (GaussianLinear::PRIOR_VAR, GaussianLinear::NOISE_VAR);
        assert_gaussian_moments(&pair, 2, &[0.0, 0.0], &[p, p, p, p + q], "joint");
    }
    let x0 = column(&sims.x, d, 0);
    let x1 = column(&sims.x, d, 1);
    let se = (0.2 * 0.2 / 20_000.0f64).sqrt();
    assert!(cov(&x0, &x1).abs() < Z * se);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bayes' rule: log p(theta | x) = log p(x | theta) + log p(theta) - log p(x), with the
    /// evidence p(x) = N(x; 0, (PRIOR_VAR + NOISE_VAR) I).
    #[test]
    fn gaussian_linear_log_posterior_is_bayes_rule(
        theta in prop::collection::vec(-2.0f64..2.0, 10),
        x in prop::collection::vec(-2.0f64..2.0, 10),
    ) {
        let (p, q) = (GaussianLinear::PRIOR_VAR, GaussianLinear::NOISE_VAR);
        let zero = [0.0; 10];
        let bayes = log_normal_iso(&x, &theta, q) + log_normal_iso(&theta, &zero, p)
            - log_normal_iso(&x, &zero, p + q);
        let lp = GaussianLinear::posterior(&x).unwrap().log_density(&theta).unwrap()[0];
        prop_assert!((lp - bayes).abs() < 1e-9 * (1.0 + bayes.abs()), "{} vs {}", lp, bayes);
        let prior = GaussianLinear.prior_log_density(&theta).unwrap()[0];
        prop_assert!((prior - log_normal_iso(&theta, &zero, p)).abs() < 1e-12);
    }

    /// The uniform priors: -d ln(width) inside the box, -inf outside.
    #[test]
    fn uniform_priors_are_flat_on_their_box(row in prop::collection::vec(-4.0f64..4.0, 5)) {
        let inside = row.iter().all(|v| v.abs() <= 3.0);
        let lp = Slcp.prior_log_density(&row).unwrap()[0];
        if inside {
            prop_assert!((lp + 5.0 * 6.0f64.ln()).abs() < 1e-12);
        } else {
            prop_assert_eq!(lp, f64::NEG_INFINITY);
        }
        let lp = TwoMoons.prior_log_density(&row[..2]).unwrap()[0];
        if row[..2].iter().all(|v| v.abs() <= 1.0) {
            prop_assert!((lp + 2.0 * 2.0f64.ln()).abs() < 1e-12);
        } else {
            prop_assert_eq!(lp, f64::NEG_INFINITY);
        }
    }
}

#[test]
fn uniform_prior_draws_have_the_uniform_moments() {
    let n = 20_000;
    for (task, half) in [(&Slcp as &dyn Task, 3.0), (&TwoMoons, 1.0)] {
        let d = task.theta_dim();
        let draws = task.sample_prior(n, &mut StdRng::seed_from_u64(2));
        assert!(task
            .prior_log_density(&draws)
            .unwrap()
            .iter()
            .all(|l| l.is_finite()));
        // U(-h, h): variance h^2 / 3 (and independent coordinates).
        let v = half * half / 3.0;
        let sigma: Vec<f64> = (0..d * d)
            .map(|k| if k % (d + 1) == 0 { v } else { 0.0 })
            .collect();
        // The Gaussian standard error of a variance estimate, 2 v^2 / n, exceeds the uniform's
        // (mu_4 - v^2) / n = 0.8 v^2 / n, so the bound is conservative here.
        assert_gaussian_moments(&draws, d, &vec![0.0; d], &sigma, task.name());
    }
}

/// Two moons' mean map, from the paper: z = R(-pi/4) theta, x = p + (-|z_1|, z_2).
fn two_moons_shift(theta: &[f64]) -> [f64; 2] {
    let (c, s) = ((-PI / 4.0).cos(), (-PI / 4.0).sin());
    let z1 = c * theta[0] - s * theta[1];
    let z2 = s * theta[0] + c * theta[1];
    [-z1.abs(), z2]
}

/// The noise point p = x - shift(theta) in polar form around (0.25, 0): (r, a).
fn two_moons_polar(theta: &[f64], x: &[f64]) -> (f64, f64) {
    let g = two_moons_shift(theta);
    let (u, v) = (x[0] - g[0] - 0.25, x[1] - g[1]);
    ((u * u + v * v).sqrt(), v.atan2(u))
}

#[test]
fn two_moons_simulator_draws_a_crescent_around_the_shift() {
    // r ~ N(0.1, 0.01^2) and a ~ U(-pi/2, pi/2), whatever theta is.
    let n = 20_000;
    let sims = TwoMoons.simulate_pairs(n, 3).unwrap();
    let (r, a): (Vec<f64>, Vec<f64>) = sims
        .theta
        .chunks_exact(2)
        .zip(sims.x.chunks_exact(2))
        .map(|(t, x)| two_moons_polar(t, x))
        .unzip();
    let nf = n as f64;
    assert!(
        (mean(&r) - 0.1).abs() < Z * 0.01 / nf.sqrt(),
        "mean r {}",
        mean(&r)
    );
    let var_r = cov(&r, &r);
    assert!(
        (var_r - 1e-4).abs() < Z * 1e-4 * (2.0 / nf).sqrt(),
        "var r {var_r}"
    );
    assert!(a.iter().all(|a| a.abs() <= PI / 2.0 + 1e-12));
    // U(-pi/2, pi/2): variance pi^2 / 12, fourth central moment pi^4 / 80.
    let var_a = PI * PI / 12.0;
    assert!(mean(&a).abs() < Z * (var_a / nf).sqrt());
    let se_var = ((PI.powi(4) / 80.0 - var_a * var_a) / nf).sqrt();
    assert!((cov(&a, &a) - var_a).abs() < Z * se_var);
}

fn sbibm_two_moons_reference(obs: Observation) -> Vec<f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "tests/data/sbi/two_moons/reference_{}.csv",
        obs.number()
    ));
    let table = read_csv(&path, &ColumnSelection::default()).unwrap();
    assert_eq!(table.names(), ["parameter_1", "parameter_2"]);
    assert_eq!(table.n_rows(), 10_000);
    table.into_data()
}

/// The largest gap between the empirical CDFs of two samples (two-sample Kolmogorov-Smirnov).
fn ks_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let t = a[i].min(b[j]);
        while i < a.len() && a[i] <= t {
            i += 1;
        }
        while j < b.len() && b[j] <= t {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn sbibm_two_moons_references_lie_on_the_crescent_of_their_observation() {
    // Each reference sample theta explains x_o: x_o - shift(theta) is a noise point p, so its
    // radius is a N(0.1, 0.01^2) draw (within 6 sd for all 10^5 samples: a 6-sd excursion has
    // probability 2e-9 each) and its angle lies in [-pi/2, pi/2] (sbibm stores float32 values:
    // 1e-4 of slack). A wrong rotation or fold puts most samples off the crescent.
    for obs in Observation::all() {
        let x = TwoMoons.observation(obs);
        for theta in sbibm_two_moons_reference(obs).chunks_exact(2) {
            let (r, a) = two_moons_polar(theta, &x);
            assert!(
                (r - 0.1).abs() < 0.06,
                "observation {}: r {r}",
                obs.number()
            );
            assert!(
                a.abs() <= PI / 2.0 + 1e-4,
                "observation {}: a {a}",
                obs.number()
            );
        }
    }
}

#[test]
fn two_moons_reference_sampler_matches_sbibm_reference_samples() {
    // Two-sample KS on theta_1, theta_2 and their sum (the crescents' long axis), 10^4 against
    // 10^4: at level 1e-4 per test the critical distance is sqrt(ln(2e4) / 2) sqrt(2 / 10^4)
    // = 0.0315; 30 tests keep the family-wise level at 3e-3.
    let n = 10_000;
    for obs in Observation::all() {
        let ours = TwoMoons
            .reference_posterior(obs, n, &mut StdRng::seed_from_u64(obs.number() as u64))
            .unwrap();
        let theirs = sbibm_two_moons_reference(obs);
        let sum = |v: &[f64]| v.chunks_exact(2).map(|t| t[0] + t[1]).collect::<Vec<_>>();
        let critical = ((2e4f64).ln() / 2.0).sqrt() * (2.0 / n as f64).sqrt();
        for (what, a, b) in [
            ("theta_1", column(&ours, 2, 0), column(&theirs, 2, 0)),
            ("theta_2", column(&ours, 2, 1), column(&theirs, 2, 1)),
            ("theta_1 + theta_2", sum(&ours), sum(&theirs)),
        ] {
            let d = ks_distance(&a, &b);
            assert!(
                d < critical,
                "observation {}: {what}: KS {d} >= {critical}",
                obs.number()
            );
        }
    }
}

#[test]
fn slcp_simulator_draws_four_independent_gaussians_with_the_closed_form_moments() {
    let theta = [0.7, -1.2, 1.3, -0.9, 0.8];
    let n = 40_000;
    let rows: Vec<f64> = theta.iter().copied().cycle().take(5 * n).collect();
    let x = Slcp.simulate(&rows, &mut StdRng::seed_from_u64(4)).unwrap();
    assert_eq!(x.len(), 8 * n);
    // Mean (theta_1, theta_2); sd theta_3^2, theta_4^2; correlation tanh(theta_5); sbibm adds
    // 1e-6 to the variances. The 8 values are 4 draws, so the 8 x 8 covariance is block
    // diagonal with that 2 x 2 block.
    let (s1, s2, rho) = (theta[2] * theta[2], theta[3] * theta[3], theta[4].tanh());
    let block = [s1 * s1 + 1e-6, rho * s1 * s2, rho * s1 * s2, s2 * s2 + 1e-6];
    let mut sigma = vec![0.0; 64];
    let mut mu = vec![0.0; 8];
    for k in 0..4 {
        mu[2 * k] = theta[0];
        mu[2 * k + 1] = theta[1];
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            sigma[(2 * k + i) * 8 + 2 * k + j] = block[2 * i + j];
        }
    }
    assert_gaussian_moments(&x, 8, &mu, &sigma, "slcp");
}

#[test]
fn observations_have_the_task_widths_and_simulation_is_seeded() {
    for name in TASK_NAMES {
        let task = task(name).unwrap();
        assert_eq!(task.name(), name);
        for obs in Observation::all() {
            assert_eq!(task.observation(obs).len(), task.x_dim());
        }
        let a = task.simulate_pairs(50, 9).unwrap();
        assert_eq!(a, task.simulate_pairs(50, 9).unwrap());
        assert_ne!(a, task.simulate_pairs(50, 10).unwrap());
        assert_eq!(
            (a.theta.len(), a.x.len()),
            (50 * task.theta_dim(), 50 * task.x_dim())
        );
        assert_eq!(task.theta_names().len(), task.theta_dim());
        assert_eq!(task.x_names()[0], "x_1");
    }
    assert_eq!(Observation::all().count(), NUM_OBSERVATIONS);
    // sbibm's first observations, as its observation.csv files have them.
    assert_eq!(
        TwoMoons.observation(Observation::new(1).unwrap()),
        [-0.6396706, 0.16234657]
    );
    assert_eq!(
        Slcp.observation(Observation::new(10).unwrap())[7],
        -3.0089793
    );
}

#[test]
fn bad_input_gets_a_typed_one_line_error() {
    let mut rng = StdRng::seed_from_u64(0);
    let errors = [
        Observation::new(0).unwrap_err(),
        Observation::new(11).unwrap_err(),
        task("three_moons").err().unwrap(),
        TwoMoons.simulate(&[0.1, 0.2, 0.3], &mut rng).unwrap_err(),
        Slcp.simulate(&[0.0, 0.0, f64::NAN, 0.0, 0.0], &mut rng)
            .unwrap_err(),
        GaussianLinear::posterior(&[0.0; 20]).unwrap_err(),
        Slcp.reference_posterior(Observation::new(1).unwrap(), 10, &mut rng)
            .unwrap_err(),
    ];
    assert!(matches!(errors[0], SbiError::NoObservation { number: 0 }));
    assert!(matches!(
        errors[3],
        SbiError::Shape {
            what: "theta",
            len: 3,
            width: 2
        }
    ));
    assert!(matches!(errors[4], SbiError::NonFinite { index: 2, .. }));
    assert!(matches!(
        errors[6],
        SbiError::NoReferenceSampler { task: "slcp" }
    ));
    for e in errors {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    }
}
