//! `TraceKind::Orthogonal` in the maximum-likelihood objective: with `d <= 4` its
//! `min(d, 4) = d` orthogonal probes make the Hutchinson estimate the exact trace, so loss and
//! gradient equal the exact-trace ones to rounding; with `d > 4` they are a (different) estimate
//! whose mean over iterations matches the exact loss. It is spelled "orthogonal" in config.json.
use cnf_field::{Activation, Mlp, MlpConfig};
use cnf_flow::Cnf;
use cnf_ode::{Method, SolverSpec};
use cnf_train::trainer::{Differentiation, MaximumLikelihood, Objective, TraceKind};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn setup(d: usize) -> (Cnf<f64, Mlp<f64>>, Vec<f64>) {
    let mlp = Mlp::<f64>::new(MlpConfig::new(d, &[16, 16], Activation::Tanh), 4).unwrap();
    let cnf = Cnf::new(mlp, SolverSpec::fixed(Method::Rk4, 4).unwrap());
    let mut rng = StdRng::seed_from_u64(2);
    let x = (0..32 * d).map(|_| rng.random_range(-2.0..2.0)).collect();
    (cnf, x)
}

fn loss_grad(cnf: &Cnf<f64, Mlp<f64>>, x: &[f64], trace: TraceKind, seed: u64) -> (f64, Vec<f64>) {
    let mut obj = MaximumLikelihood {
        trace,
        grad: Differentiation::Discretise,
        regularisers: Default::default(),
    };
    let mut grad = Vec::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let step =
        Objective::<f64, Mlp<f64>>::loss_and_grad(&mut obj, cnf, x, &[], &mut rng, &mut grad)
            .unwrap();
    (step.loss, grad)
}

#[test]
fn orthogonal_trace_is_exact_up_to_four_dimensions() {
    for d in [2, 4] {
        let (cnf, x) = setup(d);
        let (l_exact, g_exact) = loss_grad(&cnf, &x, TraceKind::Exact, 0);
        let (l_orth, g_orth) = loss_grad(&cnf, &x, TraceKind::Orthogonal, 0);
        let (l_rad, _) = loss_grad(&cnf, &x, TraceKind::Rademacher, 0);
        assert!(
            (l_orth - l_exact).abs() < 1e-10,
            "d {d}: {l_orth} vs {l_exact}"
        );
        let worst = g_orth
            .iter()
            .zip(&g_exact)
            .fold(0.0f64, |w, (a, b)| w.max((a - b).abs()));
        assert!(worst < 1e-10, "d {d}: gradient differs by {worst}");
        // One Rademacher probe is not exact here, so the comparison above can fail.
        assert!(
            (l_rad - l_exact).abs() > 1e-6,
            "d {d}: {l_rad} vs {l_exact}"
        );
    }
}

#[test]
fn orthogonal_trace_above_four_dimensions_is_an_unbiased_estimate() {
    let d = 6;
    let (cnf, x) = setup(d);
    let (l_exact, _) = loss_grad(&cnf, &x, TraceKind::Exact, 0);
    let losses: Vec<f64> = (0..200)
        .map(|s| loss_grad(&cnf, &x, TraceKind::Orthogonal, s).0)
        .collect();
    let n = losses.len() as f64;
    let m = losses.iter().sum::<f64>() / n;
    let sd = (losses.iter().map(|l| (l - m) * (l - m)).sum::<f64>() / (n - 1.0)).sqrt();
    println!("exact {l_exact:.6}, orthogonal mean {m:.6}, sd {sd:.2e}");
    assert!(sd > 1e-8, "4 of 6 probes: the estimate is random");
    assert!(
        (m - l_exact).abs() < 4.0 * sd / n.sqrt(),
        "{m} vs {l_exact}"
    );
}

#[test]
fn orthogonal_is_spelled_orthogonal_in_config() {
    let s = serde_json::to_string(&TraceKind::Orthogonal).unwrap();
    assert_eq!(s, "\"orthogonal\"");
    let back: TraceKind = serde_json::from_str(&s).unwrap();
    assert_eq!(back, TraceKind::Orthogonal);
}
