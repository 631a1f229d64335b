//! Per-column standardisation `z = (x - mean) / std`, fitted on training data.
//!
//! Densities change by the Jacobian: `dz/dx = diag(1 / std)`, so
//! `log p_x(x) = log p_z(z) + log_det()` with `log_det() = -sum(ln std)`.
//! A model trained on standardised data therefore reports data-space
//! log-likelihoods by adding `log_det()` to each log-density.

use serde::{Deserialize, Serialize};

use crate::data::table::Table;
use crate::error::DataError;

/// Column means and standard deviations (population, divisor `n`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits means and standard deviations to `table` (at least 2 rows).
    ///
    /// A column constant in `table` is an error ([`DataError::ConstantColumn`], naming it)
    /// rather than silently given `std = 1`: its density would be degenerate, so the caller
    /// should drop it (or fit on more rows, if `table` is a split of a larger file).
    /// "Constant" means `std <= 1e-12 * max(1, |mean|)`. Values up to `f64::MAX` are handled:
    /// when the plain sums overflow, each column is scaled by its largest magnitude first.
    pub fn fit(table: &Table) -> Result<Self, DataError> {
        let n = table.n_rows();
        if n < 2 {
            return Err(DataError::TooFewRows {
                needed: 2,
                found: n,
            });
        }
        let (mut mean, mut std) = moments(table, &vec![1.0; table.n_cols()]);
        if mean.iter().chain(&std).any(|v| !v.is_finite()) {
            let mut max_abs = vec![0.0f64; table.n_cols()];
            for row in table.rows() {
                for (m, x) in max_abs.iter_mut().zip(row) {
                    *m = m.max(x.abs());
                }
            }
            let scale: Vec<f64> = max_abs
                .iter()
                .map(|&m| if m > 0.0 { m } else { 1.0 })
                .collect();
            (mean, std) = moments(table, &scale);
            for (j, ((m, s), c)) in mean.iter_mut().zip(&mut std).zip(&scale).enumerate() {
                (*m, *s) = (*m * c, *s * c);
                if !m.is_finite() || !s.is_finite() {
                    return Err(DataError::TooLargeToStandardise {
                        name: table.names()[j].clone(),
                        max_abs: max_abs[j],
                    });
                }
            }
        }
        for (j, (s, m)) in std.iter().zip(&mean).enumerate() {
            if *s <= 1e-12 * m.abs().max(1.0) {
                return Err(DataError::ConstantColumn {
                    name: table.names()[j].clone(),
                    value: table.row(0).map_or(*m, |r| r[j]),
                    rows: n,
                });
            }
        }
        Ok(Self { mean, std })
    }

    /// `(x - mean) / std`, column by column (as `x / std - mean / std` where `x - mean`
    /// would overflow).
    pub fn transform(&self, table: &Table) -> Result<Table, DataError> {
        self.map(table, |x, m, s| {
            let d = x - m;
            if d.is_finite() {
                d / s
            } else {
                x / s - m / s
            }
        })
    }

    /// `z * std + mean`, the inverse of [`Self::transform`].
    pub fn inverse(&self, table: &Table) -> Result<Table, DataError> {
        self.map(table, |z, m, s| z * s + m)
    }

    /// `log |det dz/dx| = -sum(ln std)`: add it to a log-density of the
    /// standardised data to get the log-density in data space.
    pub fn log_det(&self) -> f64 {
        -self.std.iter().map(|s| s.ln()).sum::<f64>()
    }

    fn map(&self, table: &Table, f: impl Fn(f64, f64, f64) -> f64) -> Result<Table, DataError> {
        if table.n_cols() != self.mean.len() {
            return Err(DataError::ColumnCount {
                expected: self.mean.len(),
                found: table.n_cols(),
            });
        }
        let data = table
            .rows()
            .flat_map(|row| {
                row.iter()
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|(x, (m, s))| f(*x, *m, *s))
                    .collect::<Vec<_>>()
            })
            .collect();
        Table::new(table.n_rows(), table.n_cols(), data, table.names().to_vec())
    }
}

/// Column means and population standard deviations of `x / scale`, in units of `scale`.
fn moments(table: &Table, scale: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = table.n_rows() as f64;
    let mut mean = vec![0.0; table.n_cols()];
    for row in table.rows() {
        for ((m, x), c) in mean.iter_mut().zip(row).zip(scale) {
            *m += x / c;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; table.n_cols()];
    for row in table.rows() {
        for (((v, x), m), c) in var.iter_mut().zip(row).zip(&mean).zip(scale) {
            let d = x / c - m;
            *v += d * d;
        }
    }
    (mean, var.iter().map(|v| (v / n).sqrt()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn normal_log_pdf(x: f64, mean: f64, std: f64) -> f64 {
        let z = (x - mean) / std;
        -0.5 * z * z - std.ln() - 0.5 * (2.0 * PI).ln()
    }

    fn table(n_cols: usize, data: Vec<f64>) -> Table {
        Table::with_default_names(data.len() / n_cols, n_cols, data).unwrap()
    }

    #[test]
    fn transformed_columns_have_zero_mean_unit_variance() {
        let t = table(2, vec![1.0, 10.0, 2.0, 30.0, 3.0, 20.0, 6.0, 60.0]);
        let s = Standardizer::fit(&t).unwrap();
        let z = s.transform(&t).unwrap();
        for j in 0..2 {
            let col = z.column(j).unwrap();
            let mean = col.iter().sum::<f64>() / 4.0;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
        }
        let back = s.inverse(&z).unwrap();
        for (a, b) in back.data().iter().zip(t.data()) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn log_det_converts_standard_normal_density_to_data_space() {
        let t = table(1, vec![2.0, 5.0, 7.0, 11.0, 3.5]);
        let s = Standardizer::fit(&t).unwrap();
        let (mean, std) = (s.mean[0], s.std[0]);
        for x in [-3.0, 0.0, 4.2, 9.9] {
            let z = s.transform(&table(1, vec![x])).unwrap().data()[0];
            let data_space = normal_log_pdf(z, 0.0, 1.0) + s.log_det();
            assert!((data_space - normal_log_pdf(x, mean, std)).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_column_short_table_and_width_mismatch_are_errors() {
        let t = table(2, vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0]);
        assert!(matches!(
            Standardizer::fit(&t),
            Err(DataError::ConstantColumn { name, value, rows: 3 }) if name == "x1" && value == 5.0
        ));
        let message = Standardizer::fit(&t).unwrap_err().to_string();
        assert!(
            message.contains("\"x1\"") && message.contains("in the 3 rows"),
            "{message}"
        );
        assert!(matches!(
            Standardizer::fit(&table(2, vec![1.0, 2.0])),
            Err(DataError::TooFewRows { .. })
        ));
        let s = Standardizer::fit(&table(1, vec![1.0, 2.0])).unwrap();
        assert!(matches!(
            s.transform(&t),
            Err(DataError::ColumnCount {
                expected: 1,
                found: 2
            })
        ));
    }

    #[test]
    fn huge_finite_columns_are_standardised_not_called_constant() {
        // Plain sums overflow here: the mean of 1.5e308 and 1e308 is +inf, and the old code
        // then called the column constant.
        let t = table(1, vec![1.5e308, 1e308, -1e308, 5e307]);
        let s = Standardizer::fit(&t).unwrap();
        let (mean, std) = (s.mean[0], s.std[0]);
        assert!((mean / 1e308 - 0.5).abs() < 1e-12, "{mean}");
        // Deviations 1, 0.5, -1.5 and 0 (times 1e308): variance 0.875e616.
        assert!((std / 1e308 - 0.875f64.sqrt()).abs() < 1e-12, "{std}");
        let z = s.transform(&t).unwrap();
        let back = s.inverse(&z).unwrap();
        for (a, b) in back.data().iter().zip(t.data()) {
            assert!(((a - b) / b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(s.log_det().is_finite());
        // Ordinary data still goes through the plain sums, bit for bit as before.
        let small = table(1, vec![1.0, 2.0, 4.0]);
        let s = Standardizer::fit(&small).unwrap();
        assert_eq!(s.mean[0], 7.0 / 3.0);
    }

    #[test]
    fn serde_round_trip() {
        let s = Standardizer {
            mean: vec![1.5, -2.0],
            std: vec![0.25, 3.0],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), s);
    }
}
