//! The right-hand side of an ODE system.
use crate::state::State;

/// dy/dt = f(t, y). `rhs` writes f(t, y) into `dy` (same length as `y`).
///
/// Takes `&mut self` so a system can keep scratch buffers or count calls; the solver borrows it
/// for one solve and gives it back ([`crate::Solver::solve_system`]). Closures
/// `FnMut(T, &S, &mut S)` are systems too; a plain right-hand side is simpler to pass as a
/// closure over slices to [`crate::Solver::solve`].
pub trait OdeSystem<T, S> {
    /// Evaluate f(t, y) into `dy`.
    fn rhs(&mut self, t: T, y: &S, dy: &mut S);
}

impl<T, S, F> OdeSystem<T, S> for F
where
    F: FnMut(T, &S, &mut S),
{
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        self(t, y, dy)
    }
}

/// A closure over slices as a system of any slice-like state.
pub(crate) struct SliceFn<F>(pub(crate) F);

impl<T, S, F> OdeSystem<T, S> for SliceFn<F>
where
    S: State<T>,
    F: FnMut(T, &[T], &mut [T]),
{
    #[inline]
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        (self.0)(t, y.as_slice(), dy.as_mut_slice())
    }
}
