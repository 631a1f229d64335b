//! Many samples of one system in one contiguous buffer (row-major: sample after sample).
//!
//! A CNF integrates a whole minibatch as one ODE with shared steps; keeping the samples in one
//! buffer lets the vector field work on the batch with matrix products.
use crate::error::OdeError;

/// `rows` samples of dimension `dim`, stored row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    data: Vec<T>,
    dim: usize,
}

impl<T: Clone> Batch<T> {
    /// A batch over `data` (row-major, `data.len()` a multiple of `dim`).
    ///
    /// # Errors
    /// [`OdeError::DimensionMismatch`] when `dim` is 0 or does not divide `data.len()`.
    pub fn new(data: Vec<T>, dim: usize) -> Result<Self, OdeError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(OdeError::DimensionMismatch {
                expected: dim,
                found: data.len(),
            });
        }
        Ok(Self { data, dim })
    }
    /// A batch of `rows` copies of `value`.
    pub fn filled(rows: usize, dim: usize, value: T) -> Self {
        Self {
            data: vec![value; rows * dim],
            dim,
        }
    }
    /// Dimension of one sample.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    /// Sample `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Sample `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The whole buffer.
    pub fn data(&self) -> &[T] {
        &self.data
    }
    /// The whole buffer, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    /// The buffer, by value.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
}
