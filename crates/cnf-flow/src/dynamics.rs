//! The flow's ODE systems. They are ordinary `cnf-ode` systems: the flow adds equations, not a
//! new solver.
//!
//! State layouts (one contiguous `Vec<T>` per solve, batch-major so the field sees a `(B, d)`
//! matrix without copies):
//! - [`Transport`]: `[z (B*d)]`, dz/dt = v;
//! - [`Augmented`]: `[z (B*d), D (B)]`, dz/dt = v, dD/dt = +tr(dv/dz), and with penalties
//!   `[z, D, K (B), J (B)]`, dK/dt = |v|^2, dJ/dt = |dv/dz|_F^2 (RNODE's regularisers,
//!   integrated along the same solve and left out of its error norm). It is also a
//!   [`VjpSystem`] (the field's VJPs in z and theta; nothing depends on D), so `cnf-ode`
//!   differentiates its solves ([`cnf_ode::Solver::solve_with_gradient`]): the continuous
//!   adjoint `[z, D, a_z, a_D, a_theta]` and the reverse pass through the steps are `cnf-ode`'s.
use cnf_field::{Real, VectorField};
use cnf_ode::{OdeSystem, VjpOut, VjpSystem};

use crate::rows::RowParallel;

/// dz/dt = v(z, t) for a batch.
pub struct Transport<'a, T: Real, F: VectorField<T>> {
    pub(crate) rows: RowParallel<'a, T, F>,
}

impl<T: Real, F: VectorField<T>> OdeSystem<T, Vec<T>> for Transport<'_, T, F> {
    fn rhs(&mut self, t: T, y: &Vec<T>, dy: &mut Vec<T>) {
        self.rows.eval(t, y, dy);
    }
}

/// (z, D) with dD/dt = +tr(dv/dz), and optionally the penalty integrals (K, J).
pub struct Augmented<'a, T: Real, F: VectorField<T>> {
    pub(crate) rows: RowParallel<'a, T, F>,
    /// B * d: where D starts.
    pub(crate) split: usize,
}

impl<T: Real, F: VectorField<T>> OdeSystem<T, Vec<T>> for Augmented<'_, T, F> {
    fn rhs(&mut self, t: T, y: &Vec<T>, dy: &mut Vec<T>) {
        self.rows.eval_div(t, &y[..self.split], dy);
    }
}

impl<T: Real, F: VectorField<T>> VjpSystem<T> for Augmented<'_, T, F> {
    fn num_params(&self) -> usize {
        self.rows.num_params()
    }
    fn rhs(&mut self, t: T, y: &[T], dy: &mut [T]) {
        self.rows.eval_div(t, &y[..self.split], dy);
    }
    /// The cotangent `a = [a_z, a_D (, a_K, a_J)]`: the field's VJP of (v, div (, |v|^2,
    /// |dv/dz|_F^2)) in z and theta; f does not depend on D, K or J, so nothing is added to
    /// those parts of `a_y`.
    fn vjp(&mut self, t: T, y: &[T], a: &[T], out: VjpOut<'_, T>) {
        self.rows.vjp(t, &y[..self.split], a, out);
    }
}
