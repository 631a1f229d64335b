//! Per-column standardisation `z = (x - mean) / std`, fitted on training data.
//!
//! Densities change by the Jacobian: `dz/dx = diag(1 / std)`, so
//! `log p_x(x) = log p_z(z) + log_det()` with `log_det() = -sum(ln std)`.
//! A model trained on standardised data therefore reports data-space
//! log-likelihoods by adding `log_det()` to each log-density.
//!
//! With whitening ([`Standardizer::fit_whitened`], the default for tables) the standardised
//! point is further mapped by `L^{-1}`, where `L L^T` is the covariance of the standardised
//! training data: `z = L^{-1} (x - mean) / std`, and `log_det() = -sum(ln std) - sum(ln L_ii)`.
//! The whitened training data have zero mean and identity covariance, so a flow whose field is
//! zero is exactly the full-covariance Gaussian fitted to the training data.
//!
//! Integer-valued columns can be dequantised ([`integer_columns`], [`dequantize`]): `x + u`,
//! `u ~ U(0, 1)`. A density `p` of `x + u` gives `E_u[log p(x + u)] <= log P(x)` for the discrete
//! probability `P(x) = integral of p over [x, x + 1)` (Jensen), so its log-likelihoods are lower
//! bounds on discrete log-probabilities.

use serde::{Deserialize, Serialize};

use crate::data::table::Table;
use crate::error::DataError;

/// Column means and standard deviations (population, divisor `n`), optionally followed by
/// full-covariance whitening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Per-column means of the data the standardiser was fitted on.
    pub mean: Vec<f64>,
    /// Per-column standard deviations (divisor `n`), all positive: the model sees
    /// `(x - mean) / std` before any whitening.
    pub std: Vec<f64>,
    /// Whitening: the lower-triangular Cholesky factor `L` (row-major, `d x d`) of the covariance
    /// of the standardised training data; the model sees `L^{-1} (x - mean) / std`. Absent in
    /// per-column standardisation (and in configs written before whitening existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cholesky: Option<Vec<f64>>,
    /// Integer-valued columns (0-based) that training dequantised with `U(0, 1)` noise: the
    /// model is a density of `x + u` in these columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dequantized: Vec<usize>,
}

impl Standardizer {
    /// Fits means and standard deviations to `table` (at least 2 rows).
    ///
    /// A column constant in `table` is an error ([`DataError::ConstantColumn`], naming it)
    /// rather than silently given `std = 1`: its density would be degenerate, so the caller
    /// should drop it (or fit on more rows, if `table` is a split of a larger file).
    /// "Constant" is relative to the column's own scale: all values equal, or
    /// `std <= 1e-12 * max |x|` (a column of values near 1e-13 that vary by 1e-16 is not
    /// constant). Values from the smallest subnormal up to `f64::MAX` are handled: columns of
    /// very large or very small magnitudes are scaled by their largest magnitude first, so
    /// sums neither overflow nor underflow.
    ///
    /// ```
    /// use cnf_train::data::{Standardizer, Table};
    ///
    /// let data = vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
    /// let table = Table::with_default_names(4, 2, data)?;
    /// let s = Standardizer::fit(&table)?;
    /// // Means 2.5 and 25; population standard deviations sqrt(1.25) and 10 sqrt(1.25).
    /// let sd = 1.25f64.sqrt();
    /// assert!((s.mean[0] - 2.5).abs() < 1e-15 && (s.mean[1] - 25.0).abs() < 1e-13);
    /// assert!((s.std[0] - sd).abs() < 1e-15 && (s.std[1] - 10.0 * sd).abs() < 1e-13);
    /// // log |det dz/dx| = -sum ln std.
    /// assert!((s.log_det() + sd.ln() + (10.0 * sd).ln()).abs() < 1e-13);
    /// // Standardised: zero mean and unit variance per column; the inverse gives the data back.
    /// let z = s.transform(&table)?;
    /// for j in 0..2 {
    ///     let c = z.column(j).unwrap();
    ///     let mean = c.iter().sum::<f64>() / 4.0;
    ///     let var = c.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
    ///     assert!(mean.abs() < 1e-15 && (var - 1.0).abs() < 1e-14);
    /// }
    /// let back = s.inverse(&z)?;
    /// assert!(back.data().iter().zip(table.data()).all(|(a, b)| (a - b).abs() < 1e-13));
    /// # Ok::<(), cnf_train::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::TooFewRows`] for fewer than 2 rows; [`DataError::ConstantColumn`] naming a
    /// constant column; [`DataError::TooLargeToStandardise`] for a column whose mean or standard
    /// deviation overflows even after rescaling.
    pub fn fit(table: &Table) -> Result<Self, DataError> {
        let n = table.n_rows();
        if n < 2 {
            return Err(DataError::TooFewRows {
                needed: 2,
                found: n,
            });
        }
        let range = ColumnRange::of(table);
        // Plain sums for ordinary magnitudes (bit for bit as before); others in units of the
        // column's largest magnitude.
        let ordinary = |m: f64| m == 0.0 || (1e-100..=1e100).contains(&m);
        let scale: Vec<f64> = range
            .max_abs
            .iter()
            .map(|&m| if ordinary(m) { 1.0 } else { m })
            .collect();
        let (mut mean, mut std) = moments(table, &scale);
        if mean.iter().chain(&std).any(|v| !v.is_finite()) {
            let scale: Vec<f64> = range
                .max_abs
                .iter()
                .map(|&m| if m > 0.0 { m } else { 1.0 })
                .collect();
            (mean, std) = moments(table, &scale);
            for (j, ((m, s), c)) in mean.iter_mut().zip(&mut std).zip(&scale).enumerate() {
                (*m, *s) = (*m * c, *s * c);
                if !m.is_finite() || !s.is_finite() {
                    return Err(DataError::TooLargeToStandardise {
                        name: table.names()[j].clone(),
                        max_abs: range.max_abs[j],
                    });
                }
            }
        } else {
            for ((m, s), c) in mean.iter_mut().zip(&mut std).zip(&scale) {
                (*m, *s) = (*m * c, *s * c);
            }
        }
        for (j, s) in std.iter().enumerate() {
            if range.is_constant(j, *s) {
                return Err(DataError::ConstantColumn {
                    name: table.names()[j].clone(),
                    value: table.row(0).map_or(mean[j], |r| r[j]),
                    rows: n,
                });
            }
        }
        Ok(Self {
            mean,
            std,
            cholesky: None,
            dequantized: Vec::new(),
        })
    }

    /// Per-column standardisation of `train` followed by full-covariance whitening.
    ///
    /// A column constant in `train` is an error: [`DataError::ConstantInSplit`] when it varies
    /// in `whole` (the table `train` was split from; a density fitted to `train` would put all
    /// its mass on one value of the column), else [`DataError::ConstantColumn`]. Collinear
    /// columns are [`DataError::SingularCovariance`].
    ///
    /// # Errors
    /// As [`Standardizer::fit`] (with [`DataError::ConstantInSplit`] for a column constant only
    /// in `train`), and [`DataError::SingularCovariance`] when `train` has no more rows than
    /// columns or its columns are (nearly) collinear.
    pub fn fit_whitened(train: &Table, whole: &Table) -> Result<Self, DataError> {
        let mut s = match Self::fit(train) {
            Ok(s) => s,
            Err(DataError::ConstantColumn { name, value, rows }) => {
                // The same column of the whole table, fitted alone: does it vary there?
                let column = train
                    .names()
                    .iter()
                    .position(|n| *n == name)
                    .filter(|_| whole.n_cols() == train.n_cols())
                    .and_then(|j| whole.column(j));
                let varies = column.is_some_and(|c| {
                    Table::new(c.len(), 1, c, vec![name.clone()])
                        .and_then(|t| Self::fit(&t))
                        .is_ok()
                });
                return Err(if varies {
                    DataError::ConstantInSplit {
                        name,
                        value,
                        rows,
                        total: whole.n_rows(),
                    }
                } else {
                    DataError::ConstantColumn { name, value, rows }
                });
            }
            Err(e) => return Err(e),
        };
        let z = s.transform(train)?;
        let (n, d) = (z.n_rows(), z.n_cols());
        if n <= d {
            return Err(DataError::SingularCovariance);
        }
        // The covariance of the standardised data (the correlation matrix), factored as the
        // Gaussian baseline factors it, so the untrained model is that Gaussian.
        let root_n = (n as f64).sqrt();
        let a = nalgebra::DMatrix::from_fn(n, d, |i, j| z.data()[i * d + j] / root_n);
        let l = crate::gaussian::correlation_factor(a).ok_or(DataError::SingularCovariance)?;
        let diag = l.diagonal();
        let largest = diag.iter().fold(0.0f64, |a, b| a.max(*b));
        if diag.iter().any(|v| !v.is_finite() || *v <= 1e-10 * largest) {
            return Err(DataError::SingularCovariance);
        }
        s.cholesky = Some((0..d * d).map(|k| l[(k / d, k % d)]).collect());
        Ok(s)
    }

    /// Whether the standardisation whitens (full covariance).
    pub fn is_whitened(&self) -> bool {
        self.cholesky.is_some()
    }

    /// Model-space point of one data-space row (`row.len()` must be the dimension).
    fn forward_row(&self, row: &[f64], out: &mut [f64]) {
        for ((o, x), (m, s)) in out.iter_mut().zip(row).zip(self.mean.iter().zip(&self.std)) {
            let d = x - m;
            *o = if d.is_finite() { d / s } else { x / s - m / s };
        }
        if let Some(l) = &self.cholesky {
            let d = out.len();
            // Forward substitution: L y = z.
            for i in 0..d {
                let mut acc = out[i];
                for k in 0..i {
                    acc -= l[i * d + k] * out[k];
                }
                out[i] = acc / l[i * d + i];
            }
        }
    }

    /// Data-space point of one model-space row: `(L z) * std + mean`.
    pub fn inverse_row(&self, z: &[f64]) -> Vec<f64> {
        let d = z.len();
        let y: Vec<f64> = match &self.cholesky {
            Some(l) if l.len() == d * d => (0..d)
                .map(|i| (0..=i).map(|k| l[i * d + k] * z[k]).sum())
                .collect(),
            _ => z.to_vec(),
        };
        y.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| v * s + m)
            .collect()
    }

    /// `(x - mean) / std`, column by column (as `x / std - mean / std` where `x - mean`
    /// would overflow), then `L^{-1}` when whitening.
    ///
    /// # Errors
    /// [`DataError::ColumnCount`] if `table` (or `std`) does not have the fitted number of
    /// columns; [`DataError::Shape`] if `cholesky` is not d x d; [`DataError::NonFiniteValue`]
    /// if a standardised value overflows `f64`.
    pub fn transform(&self, table: &Table) -> Result<Table, DataError> {
        self.check_width(table)?;
        let d = table.n_cols();
        let mut data = vec![0.0; table.n_rows() * d];
        for (row, out) in table.rows().zip(data.chunks_exact_mut(d.max(1))) {
            self.forward_row(row, out);
        }
        Table::new(table.n_rows(), d, data, table.names().to_vec())
    }

    /// `(L z) * std + mean`, the inverse of [`Self::transform`].
    ///
    /// # Errors
    /// [`DataError::ColumnCount`] if `table` does not have the fitted number of columns;
    /// [`DataError::NonFiniteValue`] if a data-space value overflows `f64`.
    pub fn inverse(&self, table: &Table) -> Result<Table, DataError> {
        self.check_width(table)?;
        let data = table.rows().flat_map(|r| self.inverse_row(r)).collect();
        Table::new(table.n_rows(), table.n_cols(), data, table.names().to_vec())
    }

    /// `log |det dz/dx| = -sum(ln std) - sum(ln L_ii)`: add it to a log-density of the
    /// standardised data to get the log-density in data space.
    pub fn log_det(&self) -> f64 {
        let d = self.std.len();
        let whitening = self.cholesky.as_ref().map_or(0.0, |l| {
            (0..d)
                .map(|i| l.get(i * d + i).map_or(0.0, |v| v.ln()))
                .sum()
        });
        -self.std.iter().map(|s| s.ln()).sum::<f64>() - whitening
    }

    /// The table has the fitted number of columns, and the (public) fields agree with it: a
    /// standard deviation per column, a d x d whitening factor.
    fn check_width(&self, table: &Table) -> Result<(), DataError> {
        let d = self.mean.len();
        for found in [table.n_cols(), self.std.len()] {
            if found != d {
                return Err(DataError::ColumnCount { expected: d, found });
            }
        }
        if let Some(l) = self.cholesky.as_ref().filter(|l| l.len() != d * d) {
            return Err(DataError::Shape {
                n_rows: d,
                n_cols: d,
                expected: d * d,
                found: l.len(),
            });
        }
        Ok(())
    }
}

/// The columns of `table` whose values are all integers (and finite, below 2^53 in magnitude),
/// taking more than one value (a constant column is left to the standardisation's check).
pub fn integer_columns(table: &Table) -> Vec<usize> {
    (0..table.n_cols())
        .filter(|&j| {
            let mut first = None;
            let mut varies = false;
            for r in table.rows() {
                let v = r[j];
                if !(v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15) {
                    return false;
                }
                match first {
                    None => first = Some(v),
                    Some(f) => varies |= f != v,
                }
            }
            varies
        })
        .collect()
}

/// `table` with `u ~ U(0, 1)` added to the columns `cols` (others unchanged), from a seeded
/// generator: the same seed gives the same noise. Indices out of range are ignored.
///
/// # Errors
/// [`DataError::NonFiniteValue`] if a value plus its noise is not finite (not for a [`Table`],
/// whose values are finite and at most `f64::MAX`, to which `u < 1` adds nothing).
pub fn dequantize(table: &Table, cols: &[usize], seed: u64) -> Result<Table, DataError> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xdec0_de5e_ed00_0001);
    let d = table.n_cols();
    let mut data = table.data().to_vec();
    for row in data.chunks_exact_mut(d.max(1)) {
        for &j in cols {
            if let Some(v) = row.get_mut(j) {
                *v += rng.random::<f64>();
            }
        }
    }
    Table::new(table.n_rows(), d, data, table.names().to_vec())
}

/// Relative spread below which a column counts as constant: `std <= REL_CONSTANT * max |x|`.
const REL_CONSTANT: f64 = 1e-12;

/// Per-column smallest, largest and largest magnitude of a table's values.
struct ColumnRange {
    min: Vec<f64>,
    max: Vec<f64>,
    max_abs: Vec<f64>,
}

impl ColumnRange {
    fn of(table: &Table) -> Self {
        let d = table.n_cols();
        let mut r = Self {
            min: vec![f64::INFINITY; d],
            max: vec![f64::NEG_INFINITY; d],
            max_abs: vec![0.0; d],
        };
        for row in table.rows() {
            for (j, &x) in row.iter().enumerate() {
                r.min[j] = r.min[j].min(x);
                r.max[j] = r.max[j].max(x);
                r.max_abs[j] = r.max_abs[j].max(x.abs());
            }
        }
        r
    }

    /// Whether column `j`, of standard deviation `std`, is constant: all its values are equal,
    /// or its spread is below [`REL_CONSTANT`] of its largest magnitude.
    fn is_constant(&self, j: usize, std: f64) -> bool {
        // NaN compares false, so it counts as constant too.
        self.min[j] == self.max[j]
            || std.partial_cmp(&(REL_CONSTANT * self.max_abs[j]))
                != Some(std::cmp::Ordering::Greater)
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

    /// The public fields edited out of shape are refused, not indexed out of bounds.
    #[test]
    fn fields_out_of_shape_are_errors() {
        let t = table(2, vec![1.0, 10.0, 2.0, 30.0, 3.0, 20.0, 6.0, 60.0]);
        let mut s = Standardizer::fit(&t).unwrap();
        s.cholesky = Some(vec![1.0, 0.0, 1.0]);
        assert!(matches!(
            s.transform(&t),
            Err(DataError::Shape {
                expected: 4,
                found: 3,
                ..
            })
        ));
        s.cholesky = None;
        s.std.pop();
        assert!(matches!(
            s.transform(&t),
            Err(DataError::ColumnCount {
                expected: 2,
                found: 1
            })
        ));
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
        let mut s = Standardizer {
            mean: vec![1.5, -2.0],
            std: vec![0.25, 3.0],
            cholesky: None,
            dequantized: Vec::new(),
        };
        let json = serde_json::to_string(&s).unwrap();
        // Per-column configs are written (and read) exactly as before whitening existed.
        assert_eq!(json, r#"{"mean":[1.5,-2.0],"std":[0.25,3.0]}"#);
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), s);
        s.cholesky = Some(vec![1.0, 0.0, 0.5, 2.0]);
        s.dequantized = vec![1];
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), s);
    }

    fn correlated_table() -> Table {
        let data: Vec<f64> = (0..50)
            .flat_map(|i| {
                let a = (i as f64 * 0.37).sin() * 3.0 + 1.0;
                let b = (i as f64 * 1.3).cos();
                [a, 2.0 * a + b, a * a - b]
            })
            .collect();
        table(3, data)
    }

    #[test]
    fn whitened_data_have_identity_covariance_and_invert() {
        let t = correlated_table();
        let s = Standardizer::fit_whitened(&t, &t).unwrap();
        assert!(s.is_whitened());
        let z = s.transform(&t).unwrap();
        let n = t.n_rows() as f64;
        for j in 0..3 {
            for k in 0..3 {
                let c: f64 = z.rows().map(|r| r[j] * r[k]).sum::<f64>() / n;
                let want = if j == k { 1.0 } else { 0.0 };
                assert!((c - want).abs() < 1e-10, "cov[{j}][{k}] = {c}");
            }
        }
        let back = s.inverse(&z).unwrap();
        for (a, b) in back.data().iter().zip(t.data()) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }

    #[test]
    fn whitened_log_det_is_the_gaussian_normaliser() {
        let t = correlated_table();
        let s = Standardizer::fit_whitened(&t, &t).unwrap();
        let g = crate::gaussian::Gaussian::fit(&t).unwrap();
        let z = s.transform(&t).unwrap();
        for (x, zr) in t.rows().zip(z.rows()) {
            let std_normal: f64 = zr
                .iter()
                .map(|v| -0.5 * v * v - 0.5 * (2.0 * PI).ln())
                .sum();
            let want = g.log_density(x).unwrap();
            assert!((std_normal + s.log_det() - want).abs() < 1e-9);
        }
    }

    /// A column constant in the training split but not in the whole file is refused, naming
    /// it (it used to be whitened with the whole file's scale: the model then put all its mass
    /// on one value of the column).
    #[test]
    fn constant_in_the_split_but_not_in_the_table_is_refused() {
        let train = table(2, vec![1.0, 0.5, 2.0, 0.5, 4.0, 0.5, 3.0, 0.5]);
        let whole = table(2, vec![1.0, 0.5, 2.0, 0.5, 4.0, 0.5, 3.0, 0.5, 2.0, 1.5]);
        let err = Standardizer::fit_whitened(&train, &whole).unwrap_err();
        assert!(
            matches!(
                &err,
                DataError::ConstantInSplit { name, value, rows: 4, total: 5 }
                    if name == "x1" && *value == 0.5
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "column \"x1\" is constant (0.5) in the 4 rows of the training split, though it \
             varies in the whole file (5 rows): a density fitted to the training rows cannot \
             explain its other values (drop the column, or add rows where it varies)"
        );
        // Constant in the whole table too: the usual error, about the fitted rows.
        assert!(matches!(
            Standardizer::fit_whitened(&train, &train),
            Err(DataError::ConstantColumn { rows: 4, .. })
        ));
    }

    /// Constancy is relative to the column's scale: values near 1e-13 varying by 1e-16 are
    /// standardised (they were "constant": the threshold was 1e-12 in absolute terms), values
    /// near 1e6 varying by 1e-7 (1e-13 of their size) are constant, and so are equal values
    /// of any size. The message prints the value short (it printed 1e-13 with 30 digits and
    /// 1e-300 with 300).
    #[test]
    fn constancy_is_relative_to_the_column_scale() {
        let tiny: Vec<f64> = (0..40)
            .map(|i| 1e-13 * (1.0 + 1e-3 * (i % 7) as f64))
            .collect();
        let s = Standardizer::fit(&table(1, tiny.clone())).unwrap();
        let want_mean = tiny.iter().sum::<f64>() / 40.0;
        assert!((s.mean[0] / want_mean - 1.0).abs() < 1e-12);
        assert!(s.std[0] > 1e-17 && s.std[0] < 1e-15, "{}", s.std[0]);
        assert!(s.log_det().is_finite());
        let z = s.transform(&table(1, tiny)).unwrap();
        assert!(z.data().iter().all(|v| v.abs() < 3.0));
        // Far below 1e-100 too (the squares of the deviations underflowed).
        let minute: Vec<f64> = (0..40).map(|i| 1e-200 * (1.0 + (i % 5) as f64)).collect();
        let s = Standardizer::fit(&table(1, minute)).unwrap();
        assert!(s.std[0] > 1e-201 && s.log_det().is_finite());

        let nearly: Vec<f64> = (0..40).map(|i| 1e6 + 1e-7 * (i % 2) as f64).collect();
        assert!(matches!(
            Standardizer::fit(&table(1, nearly)),
            Err(DataError::ConstantColumn { .. })
        ));
        for v in [1e-300, 1.0012881847531554e-13, 7.0, 3e250] {
            let err = Standardizer::fit(&table(1, vec![v; 50])).unwrap_err();
            assert!(matches!(err, DataError::ConstantColumn { value, rows: 50, .. } if value == v));
            let message = err.to_string();
            assert!(message.len() < 150, "{message}");
            assert!(message.contains(&format!("({})", crate::error::short(v))));
        }
        let message = Standardizer::fit(&table(1, vec![1e-300; 3]))
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("column \"x0\" is constant (1e-300) in the 3 rows"));
    }

    #[test]
    fn integer_columns_are_found_and_dequantised_within_one() {
        let t = table(3, vec![1.0, 0.5, 7.0, 2.0, 1.5, 7.0, 3.0, 2.0, 7.0]);
        assert_eq!(integer_columns(&t), vec![0]);
        let q = dequantize(&t, &[0], 3).unwrap();
        for (a, b) in q.rows().zip(t.rows()) {
            assert!(a[0] >= b[0] && a[0] < b[0] + 1.0);
            assert_eq!(&a[1..], &b[1..]);
        }
        assert_eq!(q, dequantize(&t, &[0], 3).unwrap());
    }

    /// A fair die, dequantised: `y = x + u` is uniform on [1, 7) with density 1/6, so the
    /// exact dequantised log-likelihood equals the discrete one, `-ln 6`; any other density of
    /// `y` (here the fitted Gaussian) scores lower on average: the bound of the module docs.
    #[test]
    fn dequantised_die_log_likelihood_is_a_lower_bound() {
        let rolls: Vec<f64> = (0..6000).map(|i| (i % 6 + 1) as f64).collect();
        let t = table(1, rolls);
        let y = dequantize(&t, &integer_columns(&t), 1).unwrap();
        let g = crate::gaussian::Gaussian::fit(&y).unwrap();
        let (nll, _) = g.mean_nll(&y).unwrap();
        assert!(nll > 6f64.ln(), "{nll}");
        // The uniform density's mean log-likelihood on y is exactly -ln 6 (every y in [1, 7)).
        assert!(y.data().iter().all(|v| (1.0..7.0).contains(v)));
        // And the Gaussian is not far off: a variance of 3 (35/12 + 1/12) gives
        // 0.5 ln(2 pi e 3) = 1.968 nats against ln 6 = 1.792.
        assert!((nll - 0.5 * (2.0 * PI * std::f64::consts::E * 3.0).ln()).abs() < 0.02);
    }
}
