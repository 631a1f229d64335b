//! The numeric cast every crate of the workspace uses.
use num_traits::{Float, ToPrimitive};

/// `x` in the float type `T`, rounded to nearest: an f64 constant in the working precision
/// (`cast::<T>(0.9)`), a count (`cast::<T>(n)`), or a value of another float type.
/// Never panics: a value `T` cannot represent gives NaN, which a solve reports as a non-finite
/// error (between f32 and f64 there is none: out-of-range values become infinite).
///
/// ```
/// use cnf_ode::cast;
/// let half: f32 = cast(0.5);
/// assert_eq!(half, 0.5f32);
/// assert_eq!(cast::<f64>(3usize), 3.0);
/// assert_eq!(cast::<f32>(0.1f64), 0.1f32);
/// ```
#[inline]
pub fn cast<T: Float>(x: impl ToPrimitive) -> T {
    T::from(x).unwrap_or_else(T::nan)
}
