//! What a solver needs of a state: a contiguous buffer of scalars.
//!
//! Every Runge-Kutta operation (stage combinations, error norms, interpolation) is a loop over
//! components, so a state only has to lend its components as a slice. This keeps the engine free
//! of per-type arithmetic and lets it run without allocating: buffers are cloned from the initial
//! state once, before the stepping loop.
use crate::batch::Batch;

/// A state vector the solvers can integrate: `Vec<T>`, `[T; N]`, nalgebra `SVector`/`DVector`
/// (with the `nalgebra` feature),
/// a [`Batch`] of many samples, or any user type that lends its components contiguously.
pub trait State<T>: Clone {
    /// The components, in a fixed order.
    fn as_slice(&self) -> &[T];
    /// The components, mutable.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// Number of components.
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// True when the state has no components.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> State<T> for Vec<T> {
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Copy, const N: usize> State<T> for [T; N] {
    fn as_slice(&self) -> &[T] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

/// With the `nalgebra` feature.
#[cfg(feature = "nalgebra")]
impl<T: nalgebra::Scalar, const N: usize> State<T> for nalgebra::SVector<T, N> {
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
}

/// With the `nalgebra` feature.
#[cfg(feature = "nalgebra")]
impl<T: nalgebra::Scalar> State<T> for nalgebra::DVector<T> {
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
}

impl<T: Clone> State<T> for Batch<T> {
    fn as_slice(&self) -> &[T] {
        self.data()
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        self.data_mut()
    }
}
