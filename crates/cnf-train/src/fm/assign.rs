//! Exact linear assignment (the square linear sum assignment problem) in `f64`.
//!
//! # Why not a crate
//!
//! The well-kept `pathfinding` crate's `kuhn_munkres` needs an `Ord + Signed + Bounded` weight
//! type. `f64` is none of these; wrapping it in an ordered float compiles, but the algorithm tests
//! slacks for exact equality with zero, which rounding breaks (its docs warn that such values
//! can make it loop), and scaling to integers rounds the costs. The problem is small and well
//! understood, so this module solves it directly.
//!
//! # Algorithm
//!
//! Shortest augmenting paths with dual potentials (Jonker & Volgenant 1987; the variant of
//! Crouse 2016 that SciPy's `linear_sum_assignment` uses), `O(n^3)` in the worst case:
//!
//! * start from the column reduction `v_j = min_i C_ij`, `u_i = 0` (dual feasible:
//!   `C_ij - u_i - v_j >= 0`) and assign every column to its cheapest row where that row is
//!   still free (these edges are tight);
//! * for every free row, run Dijkstra on the reduced costs `C_ij - u_i - v_j` over the
//!   alternating tree until it reaches a free column, update the potentials so the tree stays
//!   tight and the costs stay non-negative, and flip the path.
//!
//! The matching is optimal when every row is assigned, by complementary slackness.

use super::FmError;

/// Minimises `sum_i cost[i, perm[i]]` over permutations of `0..n`; `cost` is `(n, n)` row-major
/// and must be finite. Returns `perm` (the column of every row).
pub fn linear_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>, FmError> {
    let need = n.checked_mul(n).ok_or(FmError::Shape {
        what: "assignment cost",
        expected: usize::MAX,
        found: cost.len(),
    })?;
    if cost.len() != need {
        return Err(FmError::Shape {
            what: "assignment cost (n, n)",
            expected: need,
            found: cost.len(),
        });
    }
    if let Some(i) = cost.iter().position(|c| !c.is_finite()) {
        return Err(FmError::NonFinite {
            what: "assignment cost",
            index: i,
        });
    }
    let mut solver = Lsap::new(n);
    solver.solve(cost);
    Ok(solver.col4row)
}

/// Sum of `cost[i, perm[i]]`.
pub fn assignment_cost(cost: &[f64], n: usize, perm: &[usize]) -> f64 {
    perm.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum()
}

const NONE: usize = usize::MAX;

/// Work buffers of the solver.
struct Lsap {
    n: usize,
    u: Vec<f64>,
    v: Vec<f64>,
    shortest: Vec<f64>,
    path: Vec<usize>,
    col4row: Vec<usize>,
    row4col: Vec<usize>,
    in_rows: Vec<bool>,
    in_cols: Vec<bool>,
    remaining: Vec<usize>,
}

impl Lsap {
    fn new(n: usize) -> Self {
        Self {
            n,
            u: vec![0.0; n],
            v: vec![0.0; n],
            shortest: vec![f64::INFINITY; n],
            path: vec![NONE; n],
            col4row: vec![NONE; n],
            row4col: vec![NONE; n],
            in_rows: vec![false; n],
            in_cols: vec![false; n],
            remaining: Vec::with_capacity(n),
        }
    }

    fn solve(&mut self, cost: &[f64]) {
        let n = self.n;
        // Column reduction and the tight initial matching.
        for j in 0..n {
            let (mut best, mut arg) = (f64::INFINITY, 0);
            for i in 0..n {
                let c = cost[i * n + j];
                if c < best {
                    best = c;
                    arg = i;
                }
            }
            self.v[j] = best;
            if self.col4row[arg] == NONE {
                self.col4row[arg] = j;
                self.row4col[j] = arg;
            }
        }
        for row in 0..n {
            if self.col4row[row] == NONE {
                self.augment(cost, row);
            }
        }
    }

    /// One Dijkstra search from the free row `start` and the augmentation along its path.
    fn augment(&mut self, cost: &[f64], start: usize) {
        let n = self.n;
        self.remaining.clear();
        self.remaining.extend((0..n).rev());
        self.in_rows.fill(false);
        self.in_cols.fill(false);
        self.shortest.fill(f64::INFINITY);
        let mut min_val = 0.0;
        let mut i = start;
        let sink = loop {
            self.in_rows[i] = true;
            let row = &cost[i * n..][..n];
            let ui = self.u[i];
            let (mut lowest, mut index) = (f64::INFINITY, NONE);
            for (it, &j) in self.remaining.iter().enumerate() {
                let r = min_val + row[j] - ui - self.v[j];
                if r < self.shortest[j] {
                    self.path[j] = i;
                    self.shortest[j] = r;
                }
                let s = self.shortest[j];
                if s < lowest || (s == lowest && self.row4col[j] == NONE) {
                    lowest = s;
                    index = it;
                }
            }
            // Finite costs keep every reduced cost finite, so a column is always found.
            min_val = lowest;
            let j = self.remaining.swap_remove(index);
            self.in_cols[j] = true;
            if self.row4col[j] == NONE {
                break j;
            }
            i = self.row4col[j];
        };
        // Potentials: keep the tree tight and the reduced costs non-negative.
        self.u[start] += min_val;
        for r in 0..n {
            if self.in_rows[r] && r != start {
                self.u[r] += min_val - self.shortest[self.col4row[r]];
            }
        }
        for j in 0..n {
            if self.in_cols[j] {
                self.v[j] -= min_val - self.shortest[j];
            }
        }
        // Flip the augmenting path.
        let mut j = sink;
        loop {
            let r = self.path[j];
            self.row4col[j] = r;
            std::mem::swap(&mut self.col4row[r], &mut j);
            if r == start {
                break;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Minimum over all permutations (Heap's algorithm), for small `n`.
    pub(crate) fn brute_force(cost: &[f64], n: usize) -> f64 {
        let mut perm: Vec<usize> = (0..n).collect();
        let mut best = assignment_cost(cost, n, &perm);
        let mut c = vec![0usize; n];
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    perm.swap(0, i);
                } else {
                    perm.swap(c[i], i);
                }
                best = best.min(assignment_cost(cost, n, &perm));
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        best
    }

    fn is_permutation(p: &[usize]) -> bool {
        let mut seen = vec![false; p.len()];
        p.iter()
            .all(|&j| j < p.len() && !std::mem::replace(&mut seen[j], true))
    }

    #[test]
    fn brute_force_counts_every_permutation() {
        // The identity is worst, the anti-diagonal best: brute force must find the latter.
        let n = 5;
        let cost: Vec<f64> = (0..n * n)
            .map(|k| {
                if k / n + k % n == n - 1 {
                    0.0
                } else {
                    1.0 + (k % 3) as f64
                }
            })
            .collect();
        assert_eq!(brute_force(&cost, n), 0.0);
    }

    #[test]
    fn assignment_matches_brute_force_small() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in 0..=7 {
            for _ in 0..40 {
                let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(-3.0..5.0)).collect();
                let p = linear_assignment(&cost, n).unwrap();
                assert!(is_permutation(&p));
                let got = assignment_cost(&cost, n, &p);
                let want = if n == 0 { 0.0 } else { brute_force(&cost, n) };
                assert!((got - want).abs() < 1e-9, "n={n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn assignment_handles_ties_and_integer_costs() {
        let mut rng = StdRng::seed_from_u64(8);
        for n in 1..=7 {
            for _ in 0..40 {
                let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(0..3) as f64).collect();
                let p = linear_assignment(&cost, n).unwrap();
                assert!(is_permutation(&p));
                assert_eq!(assignment_cost(&cost, n, &p), brute_force(&cost, n));
            }
        }
        // All equal: any permutation.
        let p = linear_assignment(&[2.0; 36], 6).unwrap();
        assert!(is_permutation(&p));
    }

    #[test]
    fn assignment_rejects_bad_input() {
        assert!(matches!(
            linear_assignment(&[1.0, 2.0, 3.0], 2),
            Err(FmError::Shape { .. })
        ));
        assert!(matches!(
            linear_assignment(&[1.0, f64::NAN, 3.0, 4.0], 2),
            Err(FmError::NonFinite { index: 1, .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn assignment_is_a_permutation_and_beats_identity(
            n in 1usize..40,
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(0.0..10.0)).collect();
            let p = linear_assignment(&cost, n).unwrap();
            prop_assert!(is_permutation(&p));
            let ident: Vec<usize> = (0..n).collect();
            prop_assert!(assignment_cost(&cost, n, &p) <= assignment_cost(&cost, n, &ident) + 1e-9);
            // No single swap of two rows' columns improves an optimal assignment.
            for a in 0..n {
                for b in a + 1..n {
                    let now = cost[a * n + p[a]] + cost[b * n + p[b]];
                    let swapped = cost[a * n + p[b]] + cost[b * n + p[a]];
                    prop_assert!(swapped >= now - 1e-9);
                }
            }
        }
    }
}
