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
        Ok(Self {
            mean,
            std,
            cholesky: None,
            dequantized: Vec::new(),
        })
    }

    /// Per-column standardisation of `train` followed by full-covariance whitening.
    ///
    /// A column constant in `train` but not in `whole` (the table `train` was split from) is
    /// not an error: it gets the scale of `whole`'s column and is left out of the whitening
    /// (unit variance, uncorrelated). A column constant in `whole` too is
    /// [`DataError::ConstantColumn`]. Collinear columns are [`DataError::SingularCovariance`].
    pub fn fit_whitened(train: &Table, whole: &Table) -> Result<Self, DataError> {
        let mut s = match Self::fit(train) {
            Ok(s) => s,
            Err(DataError::ConstantColumn { .. }) if whole.n_cols() == train.n_cols() => {
                let full = Self::fit(whole)?;
                let mut s = Self::fit_scales_only(train)?;
                for (j, sd) in s.std.iter_mut().enumerate() {
                    if *sd <= 1e-12 * s.mean[j].abs().max(1.0) {
                        *sd = full.std[j];
                    }
                }
                s
            }
            Err(e) => return Err(e),
        };
        let z = s.transform(train)?;
        let (n, d) = (z.n_rows(), z.n_cols());
        let mut cov = nalgebra::DMatrix::<f64>::zeros(d, d);
        for row in z.rows() {
            let r = nalgebra::DVector::from_column_slice(row);
            cov += &r * r.transpose();
        }
        cov /= n as f64;
        for j in 0..d {
            // Constant in the training split: unit variance, no correlation.
            if cov[(j, j)] <= 1e-24 {
                for k in 0..d {
                    cov[(j, k)] = 0.0;
                    cov[(k, j)] = 0.0;
                }
                cov[(j, j)] = 1.0;
            }
        }
        let l = nalgebra::Cholesky::new(cov)
            .ok_or(DataError::SingularCovariance)?
            .unpack();
        let diag = l.diagonal();
        let largest = diag.iter().fold(0.0f64, |a, b| a.max(*b));
        if diag.iter().any(|v| !v.is_finite() || *v <= 1e-10 * largest) {
            return Err(DataError::SingularCovariance);
        }
        s.cholesky = Some((0..d * d).map(|k| l[(k / d, k % d)]).collect());
        Ok(s)
    }

    /// Means and scales without the constant-column check (for [`Self::fit_whitened`]).
    fn fit_scales_only(table: &Table) -> Result<Self, DataError> {
        let (mean, std) = moments(table, &vec![1.0; table.n_cols()]);
        if mean.iter().chain(&std).any(|v| !v.is_finite()) {
            return Self::fit(table);
        }
        Ok(Self {
            mean,
            std,
            cholesky: None,
            dequantized: Vec::new(),
        })
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

    fn check_width(&self, table: &Table) -> Result<(), DataError> {
        if table.n_cols() != self.mean.len() {
            return Err(DataError::ColumnCount {
                expected: self.mean.len(),
                found: table.n_cols(),
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

    #[test]
    fn constant_in_the_split_but_not_in_the_table_is_whitened_not_an_error() {
        let train = table(2, vec![1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 3.0, 0.0]);
        let whole = table(2, vec![1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 3.0, 0.0, 2.0, 1.0]);
        let s = Standardizer::fit_whitened(&train, &whole).unwrap();
        assert!(s.std[1] > 0.0 && s.log_det().is_finite());
        let z = s.transform(&whole).unwrap();
        assert!(z.data().iter().all(|v| v.is_finite()));
        // Constant in the whole table too: the usual error.
        assert!(matches!(
            Standardizer::fit_whitened(&train, &train),
            Err(DataError::ConstantColumn { .. })
        ));
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
