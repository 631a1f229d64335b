//! Gradients of the mean negative log-likelihood with respect to the field's parameters.
//!
//! L = -(1/B) sum_b [log N(z_b(1)) + D_b(1)], so the cotangents at t = 1 are
//! dL/dz_b(1) = z_b(1) / B and dL/dD_b(1) = -1/B. Two ways carry them back to t = 0:
//! - [`GradMethod::Adjoint`]: optimise-then-discretise; the continuous adjoint system is solved
//!   backwards with an adaptive solver, O(1) memory in the number of steps, accurate to the
//!   adjoint solve's tolerance;
//! - [`GradMethod::Backprop`]: discretise-then-optimise; exact reverse mode through the accepted
//!   steps of the forward solve (their stages are kept), the gradient of exactly the computed
//!   loss for that step sequence.
mod adjoint;
mod backprop;

use cnf_field::{Real, Trace, VectorField};
use cnf_ode::Stats;

use crate::error::FlowError;
use crate::flow::{log_normal, Cnf};

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

/// The loss and the cotangents at t = 1 from the final augmented state [z(1), D(1)].
fn terminal<T: Real>(y1: &[T], b: usize, d: usize) -> (T, Vec<T>, Vec<T>) {
    let (z1, dl) = y1.split_at(b * d);
    let inv_b = T::one() / T::from_usize(b).unwrap_or_else(T::nan);
    let mut loss = T::zero();
    for (z, &dlp) in z1.chunks(d).zip(dl) {
        loss = loss - (log_normal(z) + dlp);
    }
    let a_z = z1.iter().map(|&z| z * inv_b).collect();
    let a_div = vec![-inv_b; b];
    (loss * inv_b, a_z, a_div)
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
        match method {
            GradMethod::Adjoint { rtol, atol } => self.grad_adjoint(x, b, trace, rtol, atol),
            GradMethod::Backprop => self.grad_backprop(x, b, trace),
        }
    }
}
