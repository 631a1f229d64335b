//! Small numeric helpers.
use num_traits::Float;

/// A constant in the working precision. Every `Float` type represents f64 constants (rounded);
/// a type that cannot yields NaN, which the solver reports as a non-finite error.
pub(crate) fn lit<T: Float>(x: f64) -> T {
    T::from(x).unwrap_or_else(T::nan)
}
