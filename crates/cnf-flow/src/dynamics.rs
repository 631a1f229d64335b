//! The flow's ODE systems. They are ordinary `cnf-ode` systems: the flow adds equations, not a
//! new solver.
//!
//! State layouts (one contiguous `Vec<T>` per solve, batch-major so the field sees a `(B, d)`
//! matrix without copies):
//! - [`Transport`]: `[z (B*d)]`, dz/dt = v;
//! - [`Augmented`]: `[z (B*d), D (B)]`, dz/dt = v, dD/dt = +tr(dv/dz);
//! - [`Adjoint`]: `[z (B*d), a_z (B*d), a_theta (P)]`, integrated from t = 1 back to 0:
//!   dz/dt = v, da_z/dt = -(a_z.dv/dz + a_D dtr/dz), da_theta/dt = -(a_z.dv/dtheta + a_D dtr/dtheta).
use cnf_field::{Real, VectorField};
use cnf_ode::OdeSystem;

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

/// (z, D) with dD/dt = +tr(dv/dz).
pub struct Augmented<'a, T: Real, F: VectorField<T>> {
    pub(crate) rows: RowParallel<'a, T, F>,
    /// B * d: where D starts.
    pub(crate) split: usize,
}

impl<T: Real, F: VectorField<T>> OdeSystem<T, Vec<T>> for Augmented<'_, T, F> {
    fn rhs(&mut self, t: T, y: &Vec<T>, dy: &mut Vec<T>) {
        let (v, div) = dy.split_at_mut(self.split);
        self.rows.eval_div(t, &y[..self.split], v, div);
    }
}

/// The continuous adjoint system (backwards in time).
pub struct Adjoint<'a, T: Real, F: VectorField<T>> {
    pub(crate) rows: RowParallel<'a, T, F>,
    /// B * d.
    pub(crate) split: usize,
    /// dL/dD(1) per sample (constant in time: nothing depends on D).
    pub(crate) a_div: Vec<T>,
    /// Divergence output (unused by the adjoint).
    pub(crate) div: Vec<T>,
}

impl<T: Real, F: VectorField<T>> OdeSystem<T, Vec<T>> for Adjoint<'_, T, F> {
    fn rhs(&mut self, t: T, y: &Vec<T>, dy: &mut Vec<T>) {
        let n = self.split;
        let (z, rest) = y.split_at(n);
        let a_z = &rest[..n];
        let (v, rest) = dy.split_at_mut(n);
        let (g_z, g_theta) = rest.split_at_mut(n);
        g_z.fill(T::zero());
        g_theta.fill(T::zero());
        self.rows
            .vjp(t, z, a_z, &self.a_div, v, &mut self.div, g_z, g_theta);
        for g in g_z.iter_mut().chain(g_theta.iter_mut()) {
            *g = -*g;
        }
    }
}
