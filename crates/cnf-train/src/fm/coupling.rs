//! Couplings of a data minibatch with its base draws.
//!
//! A coupling decides which base draw `e_j` is paired with which data point `x_i` before the
//! pairs go on a probability path. Independent pairs are I-CFM; pairing by minibatch optimal
//! transport under the squared Euclidean cost (Tong et al. 2023, "OT-CFM"; Pooladian et al. 2023)
//! gives straighter, less crossing conditional paths and so a straighter learnt field.

use rand::Rng;
use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::assign::linear_assignment;
use super::assign::AssignWork;
use super::FmError;
use cnf_field::Real;

/// Largest batch the OT couplings accept: their `(B, B)` cost matrix is 128 MiB at this size.
pub const MAX_OT_POINTS: usize = 4096;

/// How the batch is paired with its base draws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Coupling {
    /// `x_i` with `e_i` (the draws are already independent of the data).
    #[default]
    Independent,
    /// Exact minibatch optimal transport: the permutation minimising `sum_i |x_i - e_perm(i)|^2`
    /// ([`linear_assignment`](super::linear_assignment)). Every data point and every base draw is used once. (TorchCFM
    /// resamples `B` pairs with replacement from the plan; for the exact plan of two equal
    /// uniform batches that plan is this permutation, so using it directly is the same coupling
    /// without the resampling noise.)
    ExactOt,
    /// Entropic optimal transport by log-domain Sinkhorn; each data point's partner is drawn
    /// from its row of the plan (so every data point is used once and the base draws
    /// approximately once). `epsilon` is relative to the mean pairwise squared distance of the
    /// batch, which makes it independent of the data's scale; `epsilon -> 0` approaches
    /// [`Coupling::ExactOt`].
    Sinkhorn {
        /// Entropic regularisation relative to the batch's mean squared distance (positive).
        epsilon: f64,
        /// Most Sinkhorn iterations in all (over every regularisation level).
        max_iters: usize,
        /// Relative tolerance on the plan's row marginals (`|row sum - 1/n| <= tol / n`).
        tol: f64,
    },
}

impl Coupling {
    /// Sinkhorn with the given relative `epsilon`, at most 1000 iterations and marginal
    /// tolerance `1e-6`.
    pub fn sinkhorn(epsilon: f64) -> Self {
        Self::Sinkhorn {
            epsilon,
            max_iters: 1000,
            tol: 1e-6,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`FmError::BadSetting`] for a Sinkhorn `epsilon` or `tol` that is not finite and
    /// positive, or `max_iters == 0`.
    pub fn validate(&self) -> Result<(), FmError> {
        if let Self::Sinkhorn {
            epsilon,
            max_iters,
            tol,
        } = *self
        {
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return Err(FmError::BadSetting {
                    name: "epsilon",
                    value: epsilon,
                    why: "must be finite and positive",
                });
            }
            if !(tol.is_finite() && tol > 0.0) {
                return Err(FmError::BadSetting {
                    name: "tol",
                    value: tol,
                    why: "must be finite and positive",
                });
            }
            if max_iters == 0 {
                return Err(FmError::BadSetting {
                    name: "max_iters",
                    value: 0.0,
                    why: "must be positive",
                });
            }
        }
        Ok(())
    }

    /// Short name: `independent`, `ot` or `sinkhorn`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Independent => "independent",
            Self::ExactOt => "ot",
            Self::Sinkhorn { .. } => "sinkhorn",
        }
    }

    /// The partner of every data point: `partner[i]` indexes the row of `e` paired with row `i`
    /// of `x`. Both are `(B, dim)` row-major and must be finite. Allocates its buffers; use
    /// [`Coupling::pair_with`] in a loop.
    ///
    /// # Errors
    /// As [`Coupling::pair_with`].
    pub fn pair<T: Real, R: Rng + ?Sized>(
        &self,
        x: &[T],
        e: &[T],
        dim: usize,
        rng: &mut R,
    ) -> Result<Vec<usize>, FmError> {
        let mut work = CouplingWork::default();
        Ok(self.pair_with(x, e, dim, rng, &mut work)?.to_vec())
    }

    /// [`Coupling::pair`] with reused buffers (the cost matrix, the assignment's work and the
    /// result): no allocation per call for the independent and exact couplings once the
    /// buffers have grown to the batch size.
    ///
    /// # Errors
    /// [`FmError::BadSetting`] as [`Coupling::validate`]; [`FmError::Shape`] if `x` is not whole
    /// rows of `dim > 0` or `e` differs from it in length; [`FmError::NonFinite`] for a NaN or
    /// infinite entry; [`FmError::TooManyPoints`] for an OT coupling of more than
    /// [`MAX_OT_POINTS`] points.
    pub fn pair_with<'w, T: Real, R: Rng + ?Sized>(
        &self,
        x: &[T],
        e: &[T],
        dim: usize,
        rng: &mut R,
        work: &'w mut CouplingWork,
    ) -> Result<&'w [usize], FmError> {
        self.validate()?;
        let b = check_pair(x, e, dim)?;
        if b > MAX_OT_POINTS && *self != Self::Independent {
            return Err(FmError::TooManyPoints {
                n: b,
                max: MAX_OT_POINTS,
            });
        }
        match *self {
            Self::Independent => {
                work.partner.clear();
                work.partner.extend(0..b);
                Ok(&work.partner)
            }
            Self::ExactOt => {
                squared_distances_into(x, e, dim, &mut work.cost);
                work.assign.solve(&work.cost, b)
            }
            Self::Sinkhorn {
                epsilon,
                max_iters,
                tol,
            } => {
                squared_distances_into(x, e, dim, &mut work.cost);
                let plan = sinkhorn(&work.cost, b, epsilon, max_iters, tol)?;
                work.partner = plan.sample_rows(rng);
                Ok(&work.partner)
            }
        }
    }
}

/// Reusable buffers of [`Coupling::pair_with`].
#[derive(Debug, Clone, Default)]
pub struct CouplingWork {
    cost: Vec<f64>,
    assign: AssignWork,
    partner: Vec<usize>,
}

impl CouplingWork {
    /// Counts of the last exact assignment (see [`AssignWork::stats`]).
    pub fn assign_stats(&self) -> super::assign::AssignStats {
        self.assign.stats()
    }
}

/// Checks two `(B, dim)` batches of equal size and finite entries; returns `B`.
pub(crate) fn check_pair<T: Real>(x: &[T], e: &[T], dim: usize) -> Result<usize, FmError> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(FmError::Shape {
            what: "data batch (B, d)",
            expected: dim,
            found: x.len(),
        });
    }
    if e.len() != x.len() {
        return Err(FmError::Shape {
            what: "base draws (B, d)",
            expected: x.len(),
            found: e.len(),
        });
    }
    check_finite("data batch", x)?;
    check_finite("base draws", e)?;
    Ok(x.len() / dim)
}

pub(crate) fn check_finite<T: Real>(what: &'static str, v: &[T]) -> Result<(), FmError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(FmError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// `C_ij = |x_i - e_j|^2` in `f64`, `(B, B)` row-major.
pub fn squared_distances<T: Real>(x: &[T], e: &[T], dim: usize) -> Vec<f64> {
    let mut cost = Vec::new();
    squared_distances_into(x, e, dim, &mut cost);
    cost
}

/// [`squared_distances`] into `cost` (cleared and resized).
pub fn squared_distances_into<T: Real>(x: &[T], e: &[T], dim: usize, cost: &mut Vec<f64>) {
    let dim = dim.max(1);
    let b = x.len() / dim;
    let nb = e.len() / dim;
    let f = |v: &T| v.to_f64().unwrap_or(f64::NAN);
    cost.clear();
    cost.resize(b * nb, 0.0);
    if nb == 0 {
        return;
    }
    for (row, xi) in cost.chunks_exact_mut(nb).zip(x.chunks_exact(dim)) {
        for (c, ej) in row.iter_mut().zip(e.chunks_exact(dim)) {
            *c = xi
                .iter()
                .zip(ej)
                .map(|(a, b)| {
                    let diff = f(a) - f(b);
                    diff * diff
                })
                .sum();
        }
    }
}

/// An entropic transport plan between two uniform distributions on `n` points.
#[derive(Debug, Clone)]
pub struct SinkhornPlan {
    /// Number of points per side.
    pub n: usize,
    /// `pi_ij`, `(n, n)` row-major; rows and columns each sum to about `1 / n`.
    pub plan: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// `max_i |n * sum_j pi_ij - 1|` at the end (columns are exact after each iteration).
    pub marginal_error: f64,
}

impl SinkhornPlan {
    /// `sum_ij pi_ij C_ij`: the plan's expected cost of one pair.
    pub fn expected_cost(&self, cost: &[f64]) -> f64 {
        self.plan.iter().zip(cost).map(|(p, c)| p * c).sum()
    }

    /// One partner per row, drawn from the row's conditional `pi_ij / sum_j pi_ij`.
    pub fn sample_rows<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let n = self.n;
        (0..n)
            .map(|i| {
                let row = &self.plan[i * n..][..n];
                let total: f64 = row.iter().sum();
                let mut u = rng.random::<f64>() * total;
                for (j, &p) in row.iter().enumerate() {
                    u -= p;
                    if u < 0.0 {
                        return j;
                    }
                }
                // Rounding left `u` at or just above zero: the last column with mass.
                row.iter().rposition(|&p| p > 0.0).unwrap_or(i)
            })
            .collect()
    }
}

/// Log-domain Sinkhorn for the cost `C (n, n)` between two uniform distributions, with
/// regularisation `epsilon * mean(C)` (relative `epsilon`, see [`Coupling::Sinkhorn`]).
///
/// Potentials `f, g` are updated as
/// `f_i = -eps * logsumexp_j((g_j - C_ij) / eps) - eps ln n` and the same for `g` over `i`,
/// and the plan is `pi_ij = exp((f_i + g_j - C_ij) / eps)`; stops when the row marginals are
/// within `tol` (relative) of `1 / n` or after `max_iters` iterations in all. The
/// regularisation starts at the mean cost and halves (at most 50 iterations per level,
/// potentials carried over) down to the target, which converges far faster than starting at
/// a small epsilon. If `max_iters` runs out first, the plan of the level reached is returned
/// with its `marginal_error`.
///
/// # Errors
/// [`FmError::BadSetting`] for settings [`Coupling::validate`] refuses; [`FmError::Shape`] if
/// `cost` does not hold `n * n` values; [`FmError::NonFinite`] for a NaN or infinite cost.
pub fn sinkhorn(
    cost: &[f64],
    n: usize,
    epsilon: f64,
    max_iters: usize,
    tol: f64,
) -> Result<SinkhornPlan, FmError> {
    Coupling::Sinkhorn {
        epsilon,
        max_iters,
        tol,
    }
    .validate()?;
    if cost.len() != n.saturating_mul(n) {
        return Err(FmError::Shape {
            what: "Sinkhorn cost (n, n)",
            expected: n.saturating_mul(n),
            found: cost.len(),
        });
    }
    if let Some(index) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::NonFinite {
            what: "Sinkhorn cost",
            index,
        });
    }
    if n == 0 {
        return Ok(SinkhornPlan {
            n,
            plan: Vec::new(),
            iterations: 0,
            marginal_error: 0.0,
        });
    }
    let mean = cost.iter().sum::<f64>() / cost.len() as f64;
    // All points equal (zero cost): any plan is optimal; regularise on a unit scale.
    let eps = epsilon * if mean > 0.0 { mean } else { 1.0 };
    let ln_n = (n as f64).ln();
    let mut cost_t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            cost_t[j * n + i] = cost[i * n + j];
        }
    }
    let mut f = vec![0.0; n];
    let mut g = vec![0.0; n];
    let mut err = f64::INFINITY;
    let mut iterations = 0;
    // Epsilon scaling: solve at a coarse regularisation first and halve it, warm-starting the
    // potentials, down to the target (plain Sinkhorn needs ~1/eps iterations at small eps).
    let mut level = f64::max(eps, mean.max(eps));
    loop {
        let last = level <= eps;
        let budget = if last { max_iters } else { 50 };
        let mut k = 0;
        while k < budget && iterations < max_iters {
            k += 1;
            iterations += 1;
            soft_min(cost, &g, level, ln_n, &mut f);
            soft_min(&cost_t, &f, level, ln_n, &mut g);
            err = row_error(cost, &f, &g, level, n);
            if err <= tol {
                break;
            }
        }
        if last || iterations >= max_iters {
            break;
        }
        level = f64::max(eps, 0.5 * level);
    }
    // The potentials may belong to a coarser level if the budget ran out there.
    let eps = level;
    let mut plan = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            plan[i * n + j] = ((f[i] + g[j] - cost[i * n + j]) / eps).exp();
        }
    }
    Ok(SinkhornPlan {
        n,
        plan,
        iterations,
        marginal_error: err,
    })
}

/// `max_i |n * sum_j pi_ij - 1|` of the plan of potentials `f, g`.
fn row_error(cost: &[f64], f: &[f64], g: &[f64], eps: f64, n: usize) -> f64 {
    let mut err: f64 = 0.0;
    for (i, &fi) in f.iter().enumerate() {
        let row = &cost[i * n..][..n];
        let s: f64 = row
            .iter()
            .zip(g)
            .map(|(c, gj)| ((fi + gj - c) / eps).exp())
            .sum();
        err = err.max((s * n as f64 - 1.0).abs());
    }
    err
}

/// `out_i = -eps * logsumexp_j((pot_j - C_ij) / eps) - eps ln n` (stable: shifted by the max).
fn soft_min(cost: &[f64], pot: &[f64], eps: f64, ln_n: f64, out: &mut [f64]) {
    let n = pot.len();
    for (i, o) in out.iter_mut().enumerate() {
        let row = &cost[i * n..][..n];
        let m = row
            .iter()
            .zip(pot)
            .map(|(c, p)| (p - c) / eps)
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row
            .iter()
            .zip(pot)
            .map(|(c, p)| ((p - c) / eps - m).exp())
            .sum();
        *o = -eps * (m + s.ln()) - eps * ln_n;
    }
}

#[cfg(test)]
mod tests {
    use super::super::assign::assignment_cost;
    use super::super::assign::tests::brute_force;
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(rng: &mut StdRng, n: usize) -> Vec<f64> {
        (0..n).map(|_| StandardNormal.sample(rng)).collect()
    }

    fn pair_cost(x: &[f64], e: &[f64], d: usize, p: &[usize]) -> f64 {
        let b = x.len() / d;
        assignment_cost(&squared_distances(x, e, d), b, p)
    }

    #[test]
    fn exact_ot_pairing_matches_brute_force() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 1..=7 {
            for d in [1, 2, 3] {
                let x = normal(&mut rng, n * d);
                let e = normal(&mut rng, n * d);
                let p = Coupling::ExactOt.pair(&x, &e, d, &mut rng).unwrap();
                let want = brute_force(&squared_distances(&x, &e, d), n);
                assert!((pair_cost(&x, &e, d, &p) - want).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn independent_pairing_is_identity() {
        let mut rng = StdRng::seed_from_u64(4);
        let x = normal(&mut rng, 10);
        let e = normal(&mut rng, 10);
        let p = Coupling::Independent.pair(&x, &e, 2, &mut rng).unwrap();
        assert_eq!(p, (0..5).collect::<Vec<_>>());
    }

    #[test]
    fn pairing_rejects_bad_batches() {
        let mut rng = StdRng::seed_from_u64(5);
        let ok = [0.0f64; 4];
        assert!(Coupling::ExactOt.pair(&ok, &ok[..2], 2, &mut rng).is_err());
        assert!(Coupling::ExactOt
            .pair(&ok[..3], &ok[..3], 2, &mut rng)
            .is_err());
        assert!(Coupling::ExactOt.pair(&ok, &ok, 0, &mut rng).is_err());
        let bad = [0.0, f64::INFINITY, 0.0, 0.0];
        assert!(matches!(
            Coupling::ExactOt.pair(&ok, &bad, 2, &mut rng),
            Err(FmError::NonFinite { index: 1, .. })
        ));
        assert!(Coupling::sinkhorn(0.0).pair(&ok, &ok, 2, &mut rng).is_err());
        let big = vec![0.0f64; MAX_OT_POINTS + 1];
        assert!(matches!(
            Coupling::ExactOt.pair(&big, &big, 1, &mut rng),
            Err(FmError::TooManyPoints { .. })
        ));
        assert!(Coupling::Independent.pair(&big, &big, 1, &mut rng).is_ok());
        assert!(Coupling::sinkhorn(f64::NAN).validate().is_err());
    }

    #[test]
    fn exact_ot_batch_256_is_fast_enough_to_train_with() {
        // Not a timing assertion (shared machine); it must finish and beat identity pairing.
        let mut rng = StdRng::seed_from_u64(6);
        let (n, d) = (256, 2);
        let x = normal(&mut rng, n * d);
        let e = normal(&mut rng, n * d);
        let p = Coupling::ExactOt.pair(&x, &e, d, &mut rng).unwrap();
        let ident: Vec<usize> = (0..n).collect();
        assert!(pair_cost(&x, &e, d, &p) < 0.5 * pair_cost(&x, &e, d, &ident));
    }

    #[test]
    fn sinkhorn_approaches_exact_ot_as_epsilon_shrinks() {
        let mut rng = StdRng::seed_from_u64(11);
        let (n, d) = (12, 2);
        let x = normal(&mut rng, n * d);
        let e = normal(&mut rng, n * d);
        let cost = squared_distances(&x, &e, d);
        let exact = assignment_cost(&cost, n, &linear_assignment(&cost, n).unwrap()) / n as f64;
        let mean = cost.iter().sum::<f64>() / (n * n) as f64;
        let mut last = f64::INFINITY;
        for eps in [1.0, 0.3, 0.1, 0.03, 0.01, 0.003] {
            let plan = sinkhorn(&cost, n, eps, 200_000, 1e-6).unwrap();
            assert!(
                plan.marginal_error <= 1e-6,
                "eps {eps}: {} after {}",
                plan.marginal_error,
                plan.iterations
            );
            let expected = plan.expected_cost(&cost);
            // The entropic plan is feasible, so never cheaper than OT; its cost falls with eps.
            // (Slack: the marginals are met to 1e-6, relative.)
            assert!(expected >= exact - 1e-6, "eps {eps}: {expected} < {exact}");
            assert!(expected <= last + 1e-6, "eps {eps}: {expected} > {last}");
            // pi_eps minimises <pi, C> - eps_abs H(pi) and the OT plan (a permutation / n) has
            // entropy ln n <= H(pi_eps) <= 2 ln n, so <pi_eps, C> - OT <= eps_abs ln n -> 0.
            let eps_abs = eps * mean;
            assert!(
                expected - exact <= eps_abs * (n as f64).ln() + 1e-6,
                "eps {eps}: {expected} vs OT {exact}"
            );
            last = expected;
            // Uniform marginals.
            for i in 0..n {
                let row: f64 = plan.plan[i * n..][..n].iter().sum();
                let col: f64 = (0..n).map(|k| plan.plan[k * n + i]).sum();
                assert!((row * n as f64 - 1.0).abs() <= 1e-6);
                assert!((col * n as f64 - 1.0).abs() <= 1e-9);
            }
        }
        assert!(
            last - exact < 0.01 * exact,
            "eps 0.003: {last} vs OT {exact}"
        );
        // At a large epsilon the plan is near independent (cost near the mean cost).
        let wide = sinkhorn(&cost, n, 1e3, 10_000, 1e-9).unwrap();
        assert!((wide.expected_cost(&cost) - mean).abs() < 0.01 * mean);
    }

    #[test]
    fn sinkhorn_samples_follow_the_plan() {
        let mut rng = StdRng::seed_from_u64(12);
        let (n, d) = (6, 2);
        let x = normal(&mut rng, n * d);
        let e = normal(&mut rng, n * d);
        let cost = squared_distances(&x, &e, d);
        // Small epsilon: the samples are the OT permutation.
        let exact = linear_assignment(&cost, n).unwrap();
        let sharp = Coupling::Sinkhorn {
            epsilon: 1e-3,
            max_iters: 100_000,
            tol: 1e-9,
        };
        for _ in 0..20 {
            assert_eq!(sharp.pair(&x, &e, d, &mut rng).unwrap(), exact);
        }
        // Moderate epsilon: the empirical partner frequencies match the plan's rows.
        let plan = sinkhorn(&cost, n, 0.5, 10_000, 1e-10).unwrap();
        let draws = 20_000;
        let mut counts = vec![0usize; n * n];
        for _ in 0..draws {
            for (i, j) in plan.sample_rows(&mut rng).into_iter().enumerate() {
                counts[i * n + j] += 1;
            }
        }
        for (k, &c) in counts.iter().enumerate() {
            let p = plan.plan[k] * n as f64;
            let sd = (p * (1.0 - p) / draws as f64).sqrt();
            let freq = c as f64 / draws as f64;
            assert!((freq - p).abs() < 5.0 * sd + 1e-12, "{k}: {freq} vs {p}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn ot_pairing_is_a_permutation_no_costlier_than_independent(
            n in 1usize..64,
            d in 1usize..4,
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let x = normal(&mut rng, n * d);
            let e = normal(&mut rng, n * d);
            let p = Coupling::ExactOt.pair(&x, &e, d, &mut rng).unwrap();
            let mut sorted = p.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            let ind = Coupling::Independent.pair(&x, &e, d, &mut rng).unwrap();
            prop_assert!(pair_cost(&x, &e, d, &p) <= pair_cost(&x, &e, d, &ind) + 1e-9);
        }
    }
}
