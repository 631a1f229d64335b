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
//! Jonker & Volgenant's LAPJV (1987), `O(n^3)` in the worst case, with column prices `v`:
//!
//! 1. *Column reduction*: `v_j = min_i C_ij`; each column is offered to its cheapest row.
//! 2. *Reduction transfer*: a row holding exactly one column passes its slack to that column's
//!    price, so the row's assigned column stays its cheapest (`C_ij - v_j` minimal over `j`).
//! 3. *Augmenting row reduction* (two passes): each free row takes its cheapest column at the
//!    current prices, lowering that column's price to the second-cheapest level and bumping
//!    the previous owner; this settles most rows cheaply. (Bounded here: after `2 n` moves a
//!    pass ends, which guards against slow progress on near-ties; correctness does not
//!    depend on it.)
//! 4. *Augmentation*: for every row still free, Dijkstra on the reduced costs finds a shortest
//!    alternating path to a free column (all columns at the current minimum distance are
//!    taken up together), the prices of the scanned columns are raised by their distance
//!    slack, and the path is flipped.
//!
//! Invariant throughout: every assigned row's column is a cheapest column of that row at
//! prices `v`, i.e. with `u_i = min_j (C_ij - v_j)` the pair `(u, v)` is dual feasible and the
//! assigned edges are tight; a complete assignment with this property is optimal.

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
    Ok(lapjv(cost, n))
}

/// Sum of `cost[i, perm[i]]`.
pub fn assignment_cost(cost: &[f64], n: usize, perm: &[usize]) -> f64 {
    perm.iter().enumerate().map(|(i, &j)| cost[i * n + j]).sum()
}

const NONE: usize = usize::MAX;

fn lapjv(cost: &[f64], n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let c = |i: usize, j: usize| cost[i * n + j];
    let mut v = vec![0.0f64; n];
    let mut rowsol = vec![NONE; n];
    let mut colsol = vec![NONE; n];
    let mut matches = vec![0usize; n];

    // 1. Column reduction (last column first, as in the original).
    for j in (0..n).rev() {
        let (mut min, mut imin) = (c(0, j), 0);
        for i in 1..n {
            if c(i, j) < min {
                min = c(i, j);
                imin = i;
            }
        }
        v[j] = min;
        matches[imin] += 1;
        if matches[imin] == 1 {
            rowsol[imin] = j;
            colsol[j] = imin;
        } else if v[j] < v[rowsol[imin]] {
            let j1 = rowsol[imin];
            rowsol[imin] = j;
            colsol[j] = imin;
            colsol[j1] = NONE;
        } else {
            colsol[j] = NONE;
        }
    }

    // 2. Reduction transfer.
    let mut free: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        match matches[i] {
            0 => free.push(i),
            1 => {
                let j1 = rowsol[i];
                let row = &cost[i * n..][..n];
                let min = row
                    .iter()
                    .zip(&v)
                    .enumerate()
                    .filter(|&(j, _)| j != j1)
                    .fold(f64::INFINITY, |m, (_, (c, vj))| m.min(c - vj));
                if min.is_finite() {
                    v[j1] -= min;
                }
            }
            _ => {}
        }
    }

    // 3. Augmenting row reduction, two passes.
    for _ in 0..2 {
        let todo = std::mem::take(&mut free);
        let mut stack: Vec<usize> = Vec::new();
        let mut moves = 0usize;
        let mut k = 0;
        while k < todo.len() || !stack.is_empty() {
            let i = match stack.pop() {
                Some(i) => i,
                None => {
                    k += 1;
                    todo[k - 1]
                }
            };
            moves += 1;
            if moves > 2 * n {
                // Leave the rest to the augmentation phase.
                free.push(i);
                free.append(&mut stack);
                free.extend_from_slice(&todo[k..]);
                break;
            }
            // Cheapest and second-cheapest columns of row i.
            let row = &cost[i * n..][..n];
            let (mut umin, mut j1) = (row[0] - v[0], 0);
            let (mut usubmin, mut j2) = (f64::INFINITY, NONE);
            for (j, (c, vj)) in row.iter().zip(&v).enumerate().skip(1) {
                let h = c - vj;
                if h < usubmin {
                    if h >= umin {
                        usubmin = h;
                        j2 = j;
                    } else {
                        usubmin = umin;
                        j2 = j1;
                        umin = h;
                        j1 = j;
                    }
                }
            }
            let mut i0 = colsol[j1];
            let strict = umin < usubmin;
            if strict {
                // Lower j1's price so row i is indifferent between j1 and j2 (n = 1: j2 is
                // NONE and usubmin infinite; strict holds and nothing else competes).
                if usubmin.is_finite() {
                    v[j1] -= usubmin - umin;
                }
            } else if i0 != NONE {
                // Tie: take the second column instead if the first is held.
                j1 = j2;
                i0 = colsol[j2];
            }
            rowsol[i] = j1;
            colsol[j1] = i;
            if i0 != NONE {
                rowsol[i0] = NONE;
                if strict {
                    stack.push(i0);
                } else {
                    free.push(i0);
                }
            }
        }
    }
    free.clear();
    free.extend((0..n).filter(|&i| rowsol[i] == NONE));

    // 4. Augmentation by shortest alternating paths.
    let mut d = vec![0.0f64; n];
    let mut pred = vec![0usize; n];
    let mut collist: Vec<usize> = (0..n).collect();
    for &freerow in &free {
        let row = &cost[freerow * n..][..n];
        for j in 0..n {
            d[j] = row[j] - v[j];
            pred[j] = freerow;
            collist[j] = j;
        }
        // collist[..low]: scanned; [low..up]: at the current minimum, to scan; [up..]: rest.
        let (mut low, mut up) = (0usize, 0usize);
        let mut last = 0usize;
        let mut min = 0.0f64;
        let endofpath = 'search: loop {
            if up == low {
                last = low;
                min = d[collist[up]];
                up += 1;
                // (`up` moves inside the scan; `k` runs on to the end regardless.)
                let mut k = up;
                while k < n {
                    let j = collist[k];
                    let h = d[j];
                    if h <= min {
                        if h < min {
                            up = low;
                            min = h;
                        }
                        collist[k] = collist[up];
                        collist[up] = j;
                        up += 1;
                    }
                    k += 1;
                }
                for &j in &collist[low..up] {
                    if colsol[j] == NONE {
                        break 'search j;
                    }
                }
            }
            let j1 = collist[low];
            low += 1;
            let i = colsol[j1];
            let irow = &cost[i * n..][..n];
            let h = irow[j1] - v[j1] - min;
            let mut k = up;
            while k < n {
                let j = collist[k];
                let v2 = irow[j] - v[j] - h;
                if v2 < d[j] {
                    pred[j] = i;
                    if v2 == min {
                        if colsol[j] == NONE {
                            break 'search j;
                        }
                        collist[k] = collist[up];
                        collist[up] = j;
                        up += 1;
                    }
                    d[j] = v2;
                }
                k += 1;
            }
        };
        // Raise the prices of the scanned columns (those before `last`).
        for &j in &collist[..last] {
            v[j] += d[j] - min;
        }
        // Flip the path.
        let mut j = endofpath;
        loop {
            let i = pred[j];
            colsol[j] = i;
            let next = rowsol[i];
            rowsol[i] = j;
            if i == freerow {
                break;
            }
            j = next;
        }
    }
    rowsol
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
