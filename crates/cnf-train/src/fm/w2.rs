//! The 2-Wasserstein distance between two equal-size point sets, by exact optimal transport.
//!
//! For empirical measures with `n` equally weighted points each, an optimal plan is a
//! permutation (Birkhoff–von Neumann), so
//! `W2(a, b)^2 = min_perm 1/n sum_i |a_i - b_perm(i)|^2`, solved exactly by
//! [`super::linear_assignment`] (`O(n^3)` worst case, hence the size limit).

use super::assign::{assignment_cost, linear_assignment};
use super::coupling::{check_pair, squared_distances};
use super::FmError;
use cnf_field::Real;

/// Largest `n` [`w2_distance`] accepts (the cost matrix has `n^2` entries and the solver is
/// cubic in the worst case).
pub const W2_MAX_POINTS: usize = 2000;

/// `W2` between the points `a (n, dim)` and `b (n, dim)` (row-major, finite, `1 <= n <=`
/// [`W2_MAX_POINTS`]).
///
/// ```
/// use cnf_train::fm::w2_distance;
///
/// // A set and its translate by (3, 4): W2 is the length of the shift, 5.
/// let a = [0.0, 0.0, 1.0, 2.0, -1.0, 5.0];
/// let b: Vec<f64> = a.chunks(2).flat_map(|p| [p[0] + 3.0, p[1] + 4.0]).collect();
/// assert!((w2_distance(&a, &b, 2)? - 5.0).abs() < 1e-12);
/// # Ok::<(), cnf_train::fm::FmError>(())
/// ```
///
/// # Errors
/// [`FmError::Shape`] if `a` is not whole rows of `dim > 0` or `b` differs from it in length;
/// [`FmError::NonFinite`] for a NaN or infinite entry; [`FmError::EmptyBatch`] for no points;
/// [`FmError::TooManyPoints`] above [`W2_MAX_POINTS`].
pub fn w2_distance<T: Real>(a: &[T], b: &[T], dim: usize) -> Result<f64, FmError> {
    let n = check_pair(a, b, dim)?;
    if n == 0 {
        return Err(FmError::EmptyBatch);
    }
    if n > W2_MAX_POINTS {
        return Err(FmError::TooManyPoints {
            n,
            max: W2_MAX_POINTS,
        });
    }
    let cost = squared_distances(a, b, dim);
    let perm = linear_assignment(&cost, n)?;
    Ok((assignment_cost(&cost, n, &perm).max(0.0) / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn w2_of_a_translate_is_the_shift_length() {
        let mut rng = StdRng::seed_from_u64(1);
        for (n, d) in [(1, 2), (17, 2), (200, 3), (500, 2)] {
            let a: Vec<f64> = (0..n * d)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            let shift: Vec<f64> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
            let mut b: Vec<f64> = a
                .chunks(d)
                .flat_map(|p| p.iter().zip(&shift).map(|(x, s)| x + s))
                .collect();
            // Shuffle b's rows: the answer must not depend on the order.
            for i in (1..n).rev() {
                let j = rng.random_range(0..=i);
                for k in 0..d {
                    b.swap(i * d + k, j * d + k);
                }
            }
            let want = shift.iter().map(|s| s * s).sum::<f64>().sqrt();
            let got = w2_distance(&a, &b, d).unwrap();
            assert!((got - want).abs() < 1e-9, "n={n} d={d}: {got} vs {want}");
        }
    }

    #[test]
    fn w2_in_one_dimension_is_the_sorted_matching() {
        let mut rng = StdRng::seed_from_u64(2);
        for n in [1, 5, 100, 400] {
            let a: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
            let b: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..3.0)).collect();
            let (mut sa, mut sb) = (a.clone(), b.clone());
            sa.sort_by(f64::total_cmp);
            sb.sort_by(f64::total_cmp);
            let want = (sa
                .iter()
                .zip(&sb)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                / n as f64)
                .sqrt();
            let got = w2_distance(&a, &b, 1).unwrap();
            assert!((got - want).abs() < 1e-9, "n={n}: {got} vs {want}");
        }
    }

    #[test]
    fn w2_is_zero_on_a_permuted_copy_and_works_in_f32() {
        let a: Vec<f32> = vec![0.0, 1.0, 2.0, 3.0, -1.0, 0.5];
        let b: Vec<f32> = vec![-1.0, 0.5, 0.0, 1.0, 2.0, 3.0];
        assert!(w2_distance(&a, &b, 2).unwrap() < 1e-12);
    }

    #[test]
    fn w2_rejects_bad_input() {
        let a = [0.0f64; 4];
        assert!(matches!(
            w2_distance(&a, &a[..2], 2),
            Err(FmError::Shape { .. })
        ));
        assert!(matches!(
            w2_distance::<f64>(&[], &[], 2),
            Err(FmError::EmptyBatch)
        ));
        assert!(matches!(
            w2_distance(&[0.0, f64::NAN], &[0.0, 0.0], 1),
            Err(FmError::NonFinite { .. })
        ));
        let big = vec![0.0f64; W2_MAX_POINTS + 1];
        assert!(matches!(
            w2_distance(&big, &big, 1),
            Err(FmError::TooManyPoints { .. })
        ));
    }
}
