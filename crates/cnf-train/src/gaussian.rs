//! A full-covariance Gaussian fitted by maximum likelihood: the baseline a
//! flow should beat.

use std::f64::consts::PI;

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use crate::data::Table;
use crate::error::DataError;

/// `N(mean, cov)` with `cov = L L^T` kept as its Cholesky factor.
#[derive(Debug, Clone)]
pub struct Gaussian {
    mean: DVector<f64>,
    cholesky: Cholesky<f64, Dyn>,
    /// `-sum(ln L_ii) - d/2 ln(2 pi)`, the part of the log-density that does
    /// not depend on the point.
    log_norm: f64,
}

impl Gaussian {
    /// Fits the mean and the maximum-likelihood covariance (divisor `n`).
    pub fn fit(table: &Table) -> Result<Self, DataError> {
        let (n, d) = (table.n_rows(), table.n_cols());
        if n < 2 {
            return Err(DataError::TooFewRows {
                needed: 2,
                found: n,
            });
        }
        let x = DMatrix::from_row_slice(n, d, table.data());
        let mean = x.row_mean().transpose();
        let centered = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centered.transpose() * &centered / n as f64;
        Self::new(mean, cov)
    }

    /// A Gaussian with the given mean and covariance.
    pub fn new(mean: DVector<f64>, cov: DMatrix<f64>) -> Result<Self, DataError> {
        if cov.nrows() != mean.len() || cov.ncols() != mean.len() {
            return Err(DataError::ColumnCount {
                expected: mean.len(),
                found: cov.nrows(),
            });
        }
        let cholesky = Cholesky::new(cov).ok_or(DataError::SingularCovariance)?;
        let diag = cholesky.l_dirty().diagonal();
        // Cholesky succeeds on some numerically singular matrices; a tiny
        // pivot relative to the largest would give meaningless densities.
        let largest = diag.iter().fold(0.0f64, |a, b| a.max(*b));
        if diag.iter().any(|l| l.is_nan() || *l <= 1e-10 * largest) {
            return Err(DataError::SingularCovariance);
        }
        let log_norm =
            -diag.iter().map(|l| l.ln()).sum::<f64>() - 0.5 * mean.len() as f64 * (2.0 * PI).ln();
        Ok(Self {
            mean,
            cholesky,
            log_norm,
        })
    }

    /// Dimension of the data space (length of the mean).
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean vector.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The covariance `L L^T`.
    pub fn covariance(&self) -> DMatrix<f64> {
        let l = self.cholesky.l();
        &l * l.transpose()
    }

    /// `log N(row; mean, cov) = -|L^{-1}(x - mean)|^2 / 2 + log_norm`.
    pub fn log_density(&self, row: &[f64]) -> Result<f64, DataError> {
        if row.len() != self.dim() {
            return Err(DataError::ColumnCount {
                expected: self.dim(),
                found: row.len(),
            });
        }
        let centered = DVector::from_column_slice(row) - &self.mean;
        let whitened = self
            .cholesky
            .l_dirty()
            .solve_lower_triangular(&centered)
            .ok_or(DataError::SingularCovariance)?;
        Ok(-0.5 * whitened.norm_squared() + self.log_norm)
    }

    /// Mean negative log-likelihood per row and its standard error
    /// (sample standard deviation over `sqrt(n)`; 0 for a single row).
    pub fn mean_nll(&self, table: &Table) -> Result<(f64, f64), DataError> {
        let n = table.n_rows();
        if n == 0 {
            return Err(DataError::TooFewRows {
                needed: 1,
                found: 0,
            });
        }
        let nll = table
            .rows()
            .map(|r| self.log_density(r).map(|l| -l))
            .collect::<Result<Vec<f64>, _>>()?;
        let mean = nll.iter().sum::<f64>() / n as f64;
        let stderr = if n > 1 {
            let var = nll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        } else {
            0.0
        };
        Ok((mean, stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n_cols: usize, data: Vec<f64>) -> Table {
        Table::with_default_names(data.len() / n_cols, n_cols, data).unwrap()
    }

    fn correlated() -> Gaussian {
        let cov = DMatrix::from_row_slice(2, 2, &[2.0, 0.8, 0.8, 0.5]);
        Gaussian::new(DVector::from_vec(vec![0.5, -1.0]), cov).unwrap()
    }

    #[test]
    fn density_integrates_to_one_on_a_grid() {
        let g = correlated();
        let (lo, hi, steps) = (-10.0, 10.0, 400);
        let h = (hi - lo) / steps as f64;
        let mut total = 0.0;
        for i in 0..steps {
            for j in 0..steps {
                let x = lo + (i as f64 + 0.5) * h;
                let y = lo + (j as f64 + 0.5) * h;
                total += g.log_density(&[x, y]).unwrap().exp() * h * h;
            }
        }
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn diagonal_covariance_matches_product_of_normals() {
        let (mean, std) = ([1.0, -2.0, 0.5], [0.5, 2.0, 1.5]);
        let cov = DMatrix::from_diagonal(&DVector::from_iterator(3, std.iter().map(|s| s * s)));
        let g = Gaussian::new(DVector::from_row_slice(&mean), cov).unwrap();
        let x = [0.3, 1.0, -4.0];
        let expected: f64 = (0..3)
            .map(|i| {
                let z = (x[i] - mean[i]) / std[i];
                -0.5 * z * z - std[i].ln() - 0.5 * (2.0 * PI).ln()
            })
            .sum();
        assert!((g.log_density(&x).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn fit_recovers_moments_and_nll_is_consistent() {
        let t = table(2, vec![0.0, 1.0, 2.0, 2.0, 4.0, 6.0, 1.0, 3.0, 3.0, 2.0]);
        let g = Gaussian::fit(&t).unwrap();
        assert!((g.mean()[0] - 2.0).abs() < 1e-12 && (g.mean()[1] - 2.8).abs() < 1e-12);
        // Var(x0) = mean((x - 2)^2) = (4 + 0 + 4 + 1 + 1) / 5 = 2.
        assert!((g.covariance()[(0, 0)] - 2.0).abs() < 1e-12);
        let (nll, stderr) = g.mean_nll(&t).unwrap();
        // At the MLE the mean Mahalanobis distance is d, so the mean NLL is
        // d/2 (1 + ln 2 pi) + ln det(cov) / 2.
        let det = g.covariance().determinant();
        let expected = (1.0 + (2.0 * PI).ln()) + 0.5 * det.ln();
        assert!((nll - expected).abs() < 1e-10, "{nll} vs {expected}");
        assert!(stderr > 0.0);
    }

    #[test]
    fn singular_covariance_and_wrong_width_are_errors() {
        // Second column is twice the first: rank 1.
        let t = table(2, vec![1.0, 2.0, 2.0, 4.0, 3.0, 6.0]);
        assert!(matches!(
            Gaussian::fit(&t),
            Err(DataError::SingularCovariance)
        ));
        assert!(matches!(
            correlated().log_density(&[1.0]),
            Err(DataError::ColumnCount {
                expected: 2,
                found: 1
            })
        ));
    }
}
