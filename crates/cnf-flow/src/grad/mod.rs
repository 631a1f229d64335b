//! Gradients of the mean negative log-likelihood with respect to the field's parameters.
//!
//! L = -(1/B) sum_b [log N(z_b(1)) + D_b(1)], so the cotangents at t = 1 are
//! dL/dz_b(1) = z_b(1) / B and dL/dD_b(1) = -1/B. Both ways of carrying them back to t = 0 are
//! `cnf-ode`'s [`cnf_ode::Solver::solve_with_gradient`] on the augmented system
//! ([`crate::dynamics::Augmented`], a [`cnf_ode::VjpSystem`]); the flow only supplies the loss:
//! - [`GradMethod::Adjoint`] ([`Differentiation::Backsolve`] with the seminorm):
//!   optimise-then-discretise; the continuous adjoint solved backwards, O(1) memory in the
//!   number of steps, accurate to the backward solve's tolerance; the parameter cotangents are
//!   left out of its error norm ([`GradMethod::AdjointFullNorm`] keeps them);
//! - [`GradMethod::Backprop`] ([`Differentiation::Discretise`]): discretise-then-optimise;
//!   exact reverse mode through the accepted steps of the forward solve (their stages are
//!   kept), the gradient of exactly the computed loss for that step sequence.
use cnf_field::{Real, Trace, VectorField};
use cnf_ode::{Differentiation, Stats};

use crate::dynamics::Augmented;
use crate::error::FlowError;
use crate::flow::{log_normal, Cnf};
use crate::integrator::solve_error;
use crate::rows::RowParallel;

/// How the gradient is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradMethod<T> {
    /// Continuous adjoint solved backwards with these tolerances (same method as forward).
    Adjoint {
        /// Relative tolerance of the backward solve.
        rtol: T,
        /// Absolute tolerance of the backward solve.
        atol: T,
    },
    /// Reverse mode through the solver's steps.
    Backprop,
    /// The continuous adjoint with every component in the backward error norm, the parameter
    /// cotangents included (`Adjoint` leaves them out: the seminorm). For comparison.
    AdjointFullNorm {
        /// Relative tolerance of the backward solve.
        rtol: T,
        /// Absolute tolerance of the backward solve.
        atol: T,
    },
}

impl<T> GradMethod<T> {
    /// The `cnf-ode` differentiation this method is.
    pub fn differentiation(self) -> Differentiation<T> {
        match self {
            Self::Adjoint { rtol, atol } => Differentiation::backsolve(rtol, atol),
            Self::AdjointFullNorm { rtol, atol } => Differentiation::Backsolve {
                rtol,
                atol,
                seminorm: false,
            },
            Self::Backprop => Differentiation::Discretise,
        }
    }
}

/// Loss, gradient and the work of both passes.
#[derive(Debug, Clone)]
pub struct LossGrad<T> {
    /// Mean negative log-likelihood of the batch.
    pub loss: T,
    /// dL/dtheta, one entry per parameter of the field.
    pub grad: Vec<T>,
    /// dL/dx, `(B, d)`.
    pub grad_x: Vec<T>,
    /// Forward solve.
    pub forward: Stats,
    /// Backward pass (adjoint solve, or the VJPs of backprop counted as evaluations).
    pub backward: Stats,
}

impl<T: Real, F: VectorField<T>> Cnf<T, F> {
    /// Mean NLL of the batch `x (B, d)` and its gradient w.r.t. the field's parameters, with the
    /// divergence computed as `trace` says (the same probes serve the forward and backward pass).
    pub fn loss_and_grad(
        &self,
        x: &[T],
        trace: &Trace<T>,
        method: GradMethod<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        let b = self.check_points(x)?;
        if b == 0 {
            return Err(FlowError::Invalid(
                "the batch is empty: the mean NLL needs at least one point".into(),
            ));
        }
        trace
            .check(b, self.dim())
            .map_err(|e| FlowError::Invalid(e.to_string()))?;
        // The augmented state [z (B, d), D (B)] from [x, 0] at t = 0 to t = 1.
        let n = x.len();
        let mut y0 = Vec::with_capacity(n + b);
        y0.extend_from_slice(x);
        y0.resize(n + b, T::zero());
        let mut sys = Augmented {
            rows: RowParallel::new(&self.field, b, trace),
            split: n,
        };
        // dL/dz(1) = z(1) / B, dL/dD(1) = -1/B.
        let inv_b = T::one() / T::from_usize(b).unwrap_or_else(T::nan);
        let cotangent = |y1: &[T], a: &mut [T]| {
            let (a_z, a_d) = a.split_at_mut(n);
            for (az, &z) in a_z.iter_mut().zip(&y1[..n]) {
                *az = z * inv_b;
            }
            a_d.fill(-inv_b);
        };
        let g = self
            .integrator
            .solver()?
            .solve_with_gradient(
                &mut sys,
                T::zero(),
                T::one(),
                &y0,
                cotangent,
                method.differentiation(),
            )
            .map_err(solve_error)?;
        let (z1, dl) = g.y1.split_at(n);
        let loss = z1
            .chunks(self.dim())
            .zip(dl)
            .fold(T::zero(), |acc, (z, &dlp)| acc - (log_normal(z) + dlp));
        let mut grad_x = g.grad_y0;
        grad_x.truncate(n);
        Ok(LossGrad {
            loss: loss * inv_b,
            grad: g.grad_p,
            grad_x,
            forward: g.forward,
            backward: g.backward,
        })
    }
}
