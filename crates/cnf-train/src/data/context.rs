//! The context columns of a conditional model p(x | c): their names and the training split's
//! statistics. The context is standardised per column (mean 0, standard deviation 1 on the
//! training split) before it enters the field; x is whitened by [`super::Standardizer`] as for
//! an unconditional model. Standardising c does not change p(x | c) (it only renames the
//! condition), so no Jacobian term enters the log-density.
use serde::{Deserialize, Serialize};

use super::{Standardizer, Table};
use crate::error::{DataError, TrainError};

/// How far beyond the training split's range (in its standard deviations) a context value may
/// lie before [`ContextColumns::far_outside`] warns: the flow was never fitted there.
pub const FAR_OUTSIDE_STDS: f64 = 1.0;

/// The context columns of a conditional model (config.json's `context` block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextColumns {
    /// Names of the context columns, in the order the field reads them.
    pub columns: Vec<String>,
    /// Means of the training split.
    pub mean: Vec<f64>,
    /// Standard deviations of the training split (positive).
    pub std: Vec<f64>,
    /// Smallest value of each column in the training split.
    pub min: Vec<f64>,
    /// Largest value of each column in the training split.
    pub max: Vec<f64>,
    /// The linear part of p(x | c) on the training split, `G` (`d x k`, row-major): the model
    /// sees `x_m - G c_m`, `x_m` the whitened x and `c_m` the standardised context, so that an
    /// untrained flow (zero field) is the linear-Gaussian conditional fitted by least squares
    /// ([`fit_conditional_whitening`]). Absent: the model sees `x_m` (files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Vec<f64>>,
}

impl ContextColumns {
    /// The statistics of `train`, a table of the context columns only (at least 2 rows; a
    /// constant column is refused by name: it cannot inform the condition).
    ///
    /// # Errors
    /// Too few rows, a constant column, values too large to standardise.
    pub fn fit(train: &Table) -> Result<Self, DataError> {
        let s = Standardizer::fit(train)?;
        let k = train.n_cols();
        let mut min = vec![f64::INFINITY; k];
        let mut max = vec![f64::NEG_INFINITY; k];
        for row in train.rows() {
            for (j, &v) in row.iter().enumerate() {
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
            }
        }
        Ok(Self {
            columns: train.names().to_vec(),
            mean: s.mean,
            std: s.std,
            min,
            max,
            shift: None,
        })
    }

    /// The number of context columns `k`.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Checks config.json's block: one positive finite scale, finite mean and range per
    /// column, distinct names. Messages name the field.
    ///
    /// # Errors
    /// The block is inconsistent.
    pub fn validate(&self) -> Result<(), String> {
        let k = self.width();
        if k == 0 {
            return Err(
                "context.columns is empty (leave the block out for an unconditional \
                        model)"
                    .into(),
            );
        }
        for (name, v) in [
            ("mean", &self.mean),
            ("std", &self.std),
            ("min", &self.min),
            ("max", &self.max),
        ] {
            if v.len() != k {
                return Err(format!(
                    "context.{name} has {} values for {k} columns",
                    v.len()
                ));
            }
            if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                return Err(format!("context.{name}[{j}] is not finite"));
            }
        }
        if let Some(j) = self.std.iter().position(|s| *s <= 0.0) {
            return Err(format!("context.std[{j}] must be positive"));
        }
        for (j, c) in self.columns.iter().enumerate() {
            if self.columns[..j].contains(c) {
                return Err(format!("context.columns names {c:?} twice"));
            }
        }
        if let Some(g) = &self.shift {
            if g.is_empty() || !g.len().is_multiple_of(k) || g.iter().any(|v| !v.is_finite()) {
                return Err(format!(
                    "context.shift must be d x {k} finite numbers, got {} values",
                    g.len()
                ));
            }
        }
        Ok(())
    }

    /// Adds `sign * G c` to each model-space row of `x` (`(n, d)`; `c` is `(n, k)` in model
    /// space, or one row for all of `x`'s rows); nothing without a shift.
    pub fn shift_rows(&self, x: &mut [f64], c: &[f64], sign: f64) {
        let (Some(g), k) = (&self.shift, self.width()) else {
            return;
        };
        let d = g.len() / k;
        let one_row = c.len() == k;
        for (i, row) in x.chunks_exact_mut(d).enumerate() {
            let c = if one_row { c } else { &c[i * k..][..k] };
            for (v, gi) in row.iter_mut().zip(g.chunks_exact(k)) {
                *v += sign * gi.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
            }
        }
    }

    /// The context rows of `table` (its columns are these context columns, in order)
    /// standardised, in precision `T`. `first_row` numbers the rows in messages (the table may
    /// be part of a larger one).
    ///
    /// # Errors
    /// The table has another number of columns; a value overflows `T`.
    pub fn to_model_space<T: cnf_field::Real>(
        &self,
        table: &Table,
        first_row: usize,
    ) -> Result<Vec<T>, TrainError> {
        let k = self.width();
        if table.n_cols() != k {
            return Err(TrainError::Invalid(format!(
                "the context has {} columns, the model is conditioned on {k} ({})",
                table.n_cols(),
                self.columns.join(", ")
            )));
        }
        table
            .data()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = i % k;
                let z = (v - self.mean[j]) / self.std[j];
                T::from_f64(z).filter(|x| x.is_finite()).ok_or_else(|| {
                    TrainError::Invalid(format!(
                        "context row {}, column {:?}: {v} overflows the model's precision ({})",
                        first_row + i / k + 1,
                        self.columns[j],
                        T::NAME
                    ))
                })
            })
            .collect()
    }

    /// One warning per context column of `table` (these columns, in order) with a value more
    /// than [`FAR_OUTSIDE_STDS`] training standard deviations outside the training split's
    /// range: the model extrapolates there.
    pub fn far_outside(&self, table: &Table) -> Vec<String> {
        let k = self.width();
        if table.n_cols() != k {
            return Vec::new();
        }
        (0..k)
            .filter_map(|j| {
                let margin = FAR_OUTSIDE_STDS * self.std[j];
                let (lo, hi) = (self.min[j] - margin, self.max[j] + margin);
                let (row, v) = table
                    .rows()
                    .map(|r| r[j])
                    .enumerate()
                    .find(|(_, v)| *v < lo || *v > hi)?;
                Some(format!(
                    "warning: context column {:?} is far outside the training range [{}, {}] \
                     (row {}: {v}); the model extrapolates there",
                    self.columns[j],
                    self.min[j],
                    self.max[j],
                    row + 1
                ))
            })
            .collect()
    }
}

/// Conditional whitening: regresses the whitened training rows `x (n, d)` on their
/// standardised context `c (n, k)` by least squares, `x = G c + r`, and whitens the residual
/// `r` instead of `x`: `standardizer`'s whitening factor `L` becomes `L L_r` (`L_r L_r^T` the
/// residual covariance) and `context.shift` becomes `L_r^{-1} G`, so the model sees
/// `L_r^{-1} (x - G c)`: zero mean and identity covariance on the training split, uncorrelated
/// with c, and a zero field is the linear-Gaussian p(x | c). The log-density's Jacobian is the
/// standardiser's as before (`log_det` includes `L_r`; the shift does not depend on x).
/// Returns false (and changes nothing) when `standardizer` does not whiten or the context's
/// or the residual's covariance is singular.
pub fn fit_conditional_whitening(
    standardizer: &mut Standardizer,
    context: &mut ContextColumns,
    x: &[f64],
    c: &[f64],
) -> bool {
    use nalgebra::DMatrix;
    let (Some(l), k) = (&standardizer.cholesky, context.width()) else {
        return false;
    };
    let d = standardizer.mean.len();
    let n = x.len() / d.max(1);
    if k == 0 || n <= d + k || c.len() != n * k {
        return false;
    }
    let xm = DMatrix::from_row_slice(n, d, x);
    let cm = DMatrix::from_row_slice(n, k, c);
    let Some(gram) = (cm.transpose() * &cm).cholesky() else {
        return false;
    };
    // G^T = (C^T C)^{-1} C^T X.
    let g = gram.solve(&(cm.transpose() * &xm)).transpose();
    let residual = (&xm - &cm * g.transpose()) / (n as f64).sqrt();
    let Some(lr) = crate::gaussian::correlation_factor(residual) else {
        return false;
    };
    let largest = lr.diagonal().iter().fold(0.0f64, |a, b| a.max(*b));
    if lr
        .diagonal()
        .iter()
        .any(|v| !v.is_finite() || *v <= 1e-10 * largest)
    {
        return false;
    }
    let Some(shift) = lr.clone().solve_lower_triangular(&g) else {
        return false;
    };
    let l = DMatrix::from_row_slice(d, d, l);
    let whitening = l * lr;
    standardizer.cholesky = Some((0..d * d).map(|i| whitening[(i / d, i % d)]).collect());
    context.shift = Some((0..d * k).map(|i| shift[(i / k, i % k)]).collect());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian linear at d = 2 (theta ~ N(0, 0.1 I), x ~ N(theta, 0.1 I)): whitened given x,
    /// the training rows have zero mean, identity covariance and no correlation with the
    /// context, the Jacobian is that of the exact posterior's covariance 0.05 I (within the
    /// sampling error of 20 000 rows), and data -> model -> data is the identity.
    #[test]
    fn conditional_whitening_whitens_the_residual_of_the_linear_regression() {
        use rand::{rngs::StdRng, SeedableRng};
        use rand_distr::{Distribution, StandardNormal};
        let (n, d) = (20_000, 2);
        let mut rng = StdRng::seed_from_u64(7);
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let (mut theta, mut x) = (Vec::new(), Vec::new());
        for _ in 0..n * d {
            let t = 0.1f64.sqrt() * normal();
            theta.push(t);
            x.push(t + 0.1f64.sqrt() * normal());
        }
        let names = |p: &str| (1..=d).map(|j| format!("{p}_{j}")).collect::<Vec<_>>();
        let theta = Table::new(n, d, theta, names("theta")).unwrap();
        let x = Table::new(n, d, x, names("x")).unwrap();
        let mut s = Standardizer::fit_whitened(&theta, &theta).unwrap();
        let mut ctx = ContextColumns::fit(&x).unwrap();
        let c: Vec<f64> = ctx.to_model_space(&x, 0).unwrap();
        let rows = s.transform(&theta).unwrap().into_data();
        assert!(fit_conditional_whitening(&mut s, &mut ctx, &rows, &c));
        ctx.validate().unwrap();
        let mut z = s.transform(&theta).unwrap().into_data();
        ctx.shift_rows(&mut z, &c, -1.0);
        let moment = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n as f64;
        for a in 0..d {
            assert!(moment(&|i| z[i * d + a]).abs() < 1e-9, "mean of {a}");
            for b in 0..d {
                let cov = moment(&|i| z[i * d + a] * z[i * d + b]);
                let target = if a == b { 1.0 } else { 0.0 };
                assert!((cov - target).abs() < 1e-9, "cov {a} {b}: {cov}");
                let cross = moment(&|i| z[i * d + a] * c[i * d + b]);
                assert!(cross.abs() < 1e-9, "cross {a} {b}: {cross}");
            }
        }
        // log|det| = -(d / 2) ln 0.05 for the exact posterior covariance 0.05 I; the fitted
        // variances have a relative standard error of sqrt(2 / n) = 0.01 each.
        let exact = -(d as f64) / 2.0 * 0.05f64.ln();
        assert!(
            (s.log_det() - exact).abs() < 0.05,
            "{} vs {exact}",
            s.log_det()
        );
        let config_row = |i: usize| {
            let mut r = z[i * d..][..d].to_vec();
            ctx.shift_rows(&mut r, &c[i * d..][..d], 1.0);
            s.inverse_row(&r)
        };
        for i in [0, 17, n - 1] {
            let back = config_row(i);
            for (b, t) in back.iter().zip(theta.row(i).unwrap()) {
                assert!((b - t).abs() < 1e-12, "row {i}: {b} vs {t}");
            }
        }
    }

    #[test]
    fn standardises_with_the_training_statistics_and_warns_outside_the_range() {
        let train = Table::new(
            4,
            2,
            vec![0.0, 10.0, 1.0, 20.0, 2.0, 30.0, 3.0, 40.0],
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        let c = ContextColumns::fit(&train).unwrap();
        c.validate().unwrap();
        assert_eq!(c.mean, vec![1.5, 25.0]);
        // Population standard deviations (divided by n, as the Standardizer's): sqrt(5/4) and
        // 10 sqrt(5/4).
        let s = (5.0f64 / 4.0).sqrt();
        assert!((c.std[0] - s).abs() < 1e-12 && (c.std[1] - 10.0 * s).abs() < 1e-9);
        let z: Vec<f64> = c.to_model_space(&train, 0).unwrap();
        assert!((z[0] + 1.5 / s).abs() < 1e-12 && (z[7] - 15.0 / (10.0 * s)).abs() < 1e-12);
        let near = Table::new(1, 2, vec![3.0 + 0.9 * s, 10.0], c.columns.clone()).unwrap();
        assert!(c.far_outside(&near).is_empty());
        let far = Table::new(1, 2, vec![3.0 + 1.1 * s, 10.0], c.columns.clone()).unwrap();
        let w = c.far_outside(&far);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("\"a\""), "{}", w[0]);
        let constant = Table::new(2, 1, vec![1.0, 1.0], vec!["k".into()]).unwrap();
        assert!(ContextColumns::fit(&constant).is_err());
    }
}
