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
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
