//! The two distributions the tasks' priors and the Gaussian posterior are made of.

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

use super::{check_rows, SbiError};

/// N(mean, var I): a Gaussian with covariance a multiple of the identity.
#[derive(Debug, Clone, PartialEq)]
pub struct IsotropicGaussian {
    mean: Vec<f64>,
    var: f64,
}

impl IsotropicGaussian {
    /// Built from values the tasks fix (a positive variance, a finite mean).
    pub(crate) fn new(mean: Vec<f64>, var: f64) -> Self {
        debug_assert!(var > 0.0 && mean.iter().all(|m| m.is_finite()));
        Self { mean, var }
    }

    /// The mean vector.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The variance of each coordinate (the covariance is `var * I`).
    pub fn var(&self) -> f64 {
        self.var
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `n` independent draws, row-major `n x dim`.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let sd = self.var.sqrt();
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n {
            for &m in &self.mean {
                let e: f64 = StandardNormal.sample(rng);
                out.push(m + sd * e);
            }
        }
        out
    }

    /// The log-density at each row of `points`.
    ///
    /// # Errors
    /// `points` not whole rows of `dim` finite values.
    pub fn log_density(&self, points: &[f64]) -> Result<Vec<f64>, SbiError> {
        check_rows("theta", points, self.dim())?;
        let d = self.dim() as f64;
        let norm = -0.5 * d * (2.0 * std::f64::consts::PI * self.var).ln();
        Ok(points
            .chunks_exact(self.dim())
            .map(|row| {
                let sq: f64 = row
                    .iter()
                    .zip(&self.mean)
                    .map(|(z, m)| (z - m).powi(2))
                    .sum();
                norm - 0.5 * sq / self.var
            })
            .collect())
    }
}

/// The uniform distribution on the box `[low, high]^dim`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UniformBox {
    low: f64,
    high: f64,
    dim: usize,
}

impl UniformBox {
    /// Built from bounds the tasks fix (`low < high`).
    pub(crate) const fn new(low: f64, high: f64, dim: usize) -> Self {
        Self { low, high, dim }
    }

    /// The lower bound of every coordinate.
    pub fn low(&self) -> f64 {
        self.low
    }

    /// The upper bound of every coordinate.
    pub fn high(&self) -> f64 {
        self.high
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `n` independent draws, row-major `n x dim`.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let width = self.high - self.low;
        (0..n * self.dim)
            .map(|_| {
                let u: f64 = StandardUniform.sample(rng);
                self.low + width * u
            })
            .collect()
    }

    /// Whether `row` lies in the box (bounds included, as torch's Uniform log-density has it
    /// for the lower bound; the upper bound has probability zero either way).
    pub fn contains(&self, row: &[f64]) -> bool {
        row.iter().all(|v| (self.low..=self.high).contains(v))
    }

    /// The log-density at each row of `points`: `-dim ln(high - low)` inside, `-inf` outside.
    ///
    /// # Errors
    /// `points` not whole rows of `dim` finite values.
    pub fn log_density(&self, points: &[f64]) -> Result<Vec<f64>, SbiError> {
        check_rows("theta", points, self.dim)?;
        let inside = -(self.dim as f64) * (self.high - self.low).ln();
        Ok(points
            .chunks_exact(self.dim)
            .map(|row| {
                if self.contains(row) {
                    inside
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect())
    }
}
