//! The right-hand side of an ODE system.

/// dy/dt = f(t, y). `rhs` writes f(t, y) into `dy` (same length as `y`).
///
/// Takes `&mut self` so a system can keep scratch buffers or count calls; the solver borrows it
/// for one solve and gives it back. Closures `FnMut(T, &S, &mut S)` are systems.
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
