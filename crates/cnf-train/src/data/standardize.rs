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
    /// A constant column is an error rather than silently given `std = 1`:
    /// its density would be degenerate, so it should be dropped by the caller.
    /// "Constant" means `std <= 1e-12 * max(1, |mean|)`.
    pub fn fit(table: &Table) -> Result<Self, DataError> {
        let n = table.n_rows();
        if n < 2 {
            return Err(DataError::TooFewRows {
                needed: 2,
                found: n,
            });
        }
        let mut mean = vec![0.0; table.n_cols()];
        for row in table.rows() {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; table.n_cols()];
        for row in table.rows() {
            for ((v, x), m) in var.iter_mut().zip(row).zip(&mean) {
                *v += (x - m) * (x - m);
            }
        }
        let std: Vec<f64> = var.iter().map(|v| (v / n as f64).sqrt()).collect();
        for (j, (s, m)) in std.iter().zip(&mean).enumerate() {
            if *s <= 1e-12 * m.abs().max(1.0) {
                return Err(DataError::ConstantColumn {
                    name: table.names()[j].clone(),
                });
            }
        }
        Ok(Self { mean, std })
    }

    /// `(x - mean) / std`, column by column.
    pub fn transform(&self, table: &Table) -> Result<Table, DataError> {
        self.map(table, |x, m, s| (x - m) / s)
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
            Err(DataError::ConstantColumn { name }) if name == "x1"
        ));
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
    fn serde_round_trip() {
        let s = Standardizer {
            mean: vec![1.5, -2.0],
            std: vec![0.25, 3.0],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), s);
    }
}
