//! Systems that can give vector-Jacobian products.

/// Where [`VjpSystem::vjp`] writes its results.
#[derive(Debug)]
pub struct VjpOut<'a, T> {
    /// f(t, y), written (the backsolve adjoint needs it; most VJPs compute it on the way).
    pub f: &'a mut [T],
    /// `a^T df/dy` is ADDED here (`+=`), one entry per state component.
    pub a_y: &'a mut [T],
    /// `a^T df/dp` is ADDED here (`+=`), one entry per parameter ([`VjpSystem::num_params`]).
    pub a_p: &'a mut [T],
}

/// dy/dt = f(t, y; p) over a slice state, with vector-Jacobian products in y and in the
/// parameters p: what [`crate::Solver::solve_with_gradient`] needs.
///
/// ```
/// use cnf_ode::{VjpOut, VjpSystem};
/// /// dy/dt = -p y (one parameter).
/// struct Decay(f64);
/// impl VjpSystem<f64> for Decay {
///     fn num_params(&self) -> usize {
///         1
///     }
///     fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) {
///         dy[0] = -self.0 * y[0];
///     }
///     fn vjp(&mut self, _t: f64, y: &[f64], a: &[f64], out: VjpOut<'_, f64>) {
///         out.f[0] = -self.0 * y[0];
///         out.a_y[0] += -self.0 * a[0];
///         out.a_p[0] += -y[0] * a[0];
///     }
/// }
/// ```
pub trait VjpSystem<T> {
    /// Number of parameters p (0 when only the gradient in y0 is wanted).
    fn num_params(&self) -> usize;
    /// f(t, y) into `dy` (same length as `y`).
    fn rhs(&mut self, t: T, y: &[T], dy: &mut [T]);
    /// With the cotangent `a` (same length as `y`): writes f(t, y) into `out.f` and ADDS
    /// `a^T df/dy` into `out.a_y` and `a^T df/dp` into `out.a_p`.
    fn vjp(&mut self, t: T, y: &[T], a: &[T], out: VjpOut<'_, T>);
}

impl<T, V: VjpSystem<T> + ?Sized> VjpSystem<T> for &mut V {
    fn num_params(&self) -> usize {
        (**self).num_params()
    }
    fn rhs(&mut self, t: T, y: &[T], dy: &mut [T]) {
        (**self).rhs(t, y, dy)
    }
    fn vjp(&mut self, t: T, y: &[T], a: &[T], out: VjpOut<'_, T>) {
        (**self).vjp(t, y, a, out)
    }
}
