//! The continuous adjoint method.
use cnf_field::{Real, Trace, VectorField};

use crate::dynamics::{Adjoint, Augmented};
use crate::error::FlowError;
use crate::flow::Cnf;
use crate::grad::{terminal, LossGrad};
use crate::integrator::solve_error;
use crate::rows::RowParallel;

impl<T: Real, F: VectorField<T>> Cnf<T, F> {
    pub(super) fn grad_adjoint(
        &self,
        x: &[T],
        b: usize,
        trace: &Trace<T>,
        rtol: T,
        atol: T,
    ) -> Result<LossGrad<T>, FlowError> {
        let d = self.dim();
        let solver = self.integrator.solver()?;
        let mut y0 = x.to_vec();
        y0.resize(x.len() + b, T::zero());
        let mut fwd = Augmented {
            rows: RowParallel::new(&self.field, b, trace),
            split: x.len(),
        };
        let sol = solver
            .solve(&mut fwd, T::zero(), T::one(), &y0)
            .map_err(solve_error)?;
        let (loss, a_z, a_div) = terminal(&sol.y, b, d);

        // [z(1), a_z(1), a_theta(1) = 0], integrated from t = 1 to 0.
        let p = self.field.num_params();
        let mut y1 = Vec::with_capacity(2 * b * d + p);
        y1.extend_from_slice(&sol.y[..b * d]);
        y1.extend_from_slice(&a_z);
        y1.resize(2 * b * d + p, T::zero());
        let mut adj = Adjoint {
            rows: fwd.rows,
            split: b * d,
            a_div,
            div: vec![T::zero(); b],
        };
        let back_solver = match self.integrator.steps {
            Some(_) => solver,
            None => solver.rtol(rtol).atol(atol),
        };
        let back = back_solver
            .solve(&mut adj, T::one(), T::zero(), &y1)
            .map_err(solve_error)?;
        Ok(LossGrad {
            loss,
            grad: back.y[2 * b * d..].to_vec(),
            grad_x: back.y[b * d..2 * b * d].to_vec(),
            forward: sol.stats,
            backward: back.stats,
        })
    }
}
