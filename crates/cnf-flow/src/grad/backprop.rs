//! Reverse mode through the accepted steps of the forward solve.
//!
//! A step is y' = y + h sum_i b_i k_i with stages k_i = f(t + c_i h, Y_i),
//! Y_i = y + h sum_{j<i} a_ij k_j. Given the cotangent of y', the stage cotangents start at
//! h b_i y'bar and are swept from the last stage to the first: the field's VJP at (t_i, Y_i)
//! gives Y_i-bar (and a parameter contribution), which flows into y-bar and into the cotangents
//! of the earlier stages through h a_ij. The stages are kept from the forward pass, so the
//! backward pass evaluates only VJPs, and none for stages nothing depends on (FSAL's last).
use cnf_field::{Real, Trace, VectorField};
use cnf_ode::{Stats, Step};

use crate::dynamics::Augmented;
use crate::error::FlowError;
use crate::flow::Cnf;
use crate::grad::{terminal, LossGrad};
use crate::integrator::solve_error;
use crate::rows::RowParallel;

/// One accepted step as the forward pass left it.
struct Recorded<T> {
    t: T,
    h: T,
    y: Vec<T>,
    stages: Vec<Vec<T>>,
}

impl<T: Real, F: VectorField<T>> Cnf<T, F> {
    pub(super) fn grad_backprop(
        &self,
        x: &[T],
        b: usize,
        trace: &Trace<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        let d = self.dim();
        let n = b * d;
        let tab = self.integrator.tableau;
        let mut y0 = x.to_vec();
        y0.resize(n + b, T::zero());
        let mut sys = Augmented {
            rows: RowParallel::new(&self.field, b, trace),
            split: n,
        };
        let mut tape: Vec<Recorded<T>> = Vec::new();
        let mut record = |s: &Step<'_, T, Vec<T>>| {
            tape.push(Recorded {
                t: s.t_prev,
                h: s.t - s.t_prev,
                y: s.y_prev.clone(),
                stages: s.stages.to_vec(),
            })
        };
        let sol = self
            .integrator
            .solver()?
            .solve_observed(&mut sys, T::zero(), T::one(), &y0, &mut record)
            .map_err(solve_error)?;
        let (loss, a_z, a_div) = terminal(&sol.y, b, d);

        let lit = |v: f64| T::from_f64(v).unwrap_or_else(T::nan);
        let s = tab.stages();
        let p = self.field.num_params();
        let mut grad = vec![T::zero(); p];
        // Cotangent of the state: z part evolves, the D part stays a_div (f ignores D).
        let mut ybar = a_z;
        let mut kbar = vec![vec![T::zero(); n]; s];
        let mut kbar_div = vec![vec![T::zero(); b]; s];
        let mut stage_y = vec![T::zero(); n];
        let (mut v, mut div, mut g_z) =
            (vec![T::zero(); n], vec![T::zero(); b], vec![T::zero(); n]);
        let mut backward = Stats::default();
        let mut live = vec![false; s];
        for step in tape.iter().rev() {
            let h = step.h;
            for i in 0..s {
                let hb = h * lit(tab.b[i]);
                for (kb, &yb) in kbar[i].iter_mut().zip(&ybar) {
                    *kb = hb * yb;
                }
                for (kd, &ad) in kbar_div[i].iter_mut().zip(&a_div) {
                    *kd = hb * ad;
                }
            }
            // A stage needs a VJP when the step's result or a later live stage depends on it.
            for (i, l) in live.iter_mut().enumerate() {
                *l = tab.b[i] != 0.0;
            }
            for i in (0..s).rev() {
                if !live[i] {
                    continue;
                }
                // Y_i (z part) from the kept stages.
                stage_y.copy_from_slice(&step.y[..n]);
                for (j, &a) in tab.a[i].iter().enumerate() {
                    if a != 0.0 {
                        let f = h * lit(a);
                        for (yv, &k) in stage_y.iter_mut().zip(&step.stages[j][..n]) {
                            *yv = *yv + f * k;
                        }
                    }
                }
                g_z.fill(T::zero());
                let ti = step.t + h * lit(tab.c[i]);
                sys.rows.vjp(
                    ti,
                    &stage_y,
                    &kbar[i],
                    &kbar_div[i],
                    &mut v,
                    &mut div,
                    &mut g_z,
                    &mut grad,
                );
                backward.nfe += 1;
                for (yb, &g) in ybar.iter_mut().zip(&g_z) {
                    *yb = *yb + g;
                }
                for (j, &a) in tab.a[i].iter().enumerate() {
                    if a != 0.0 {
                        let f = h * lit(a);
                        for (kb, &g) in kbar[j].iter_mut().zip(&g_z) {
                            *kb = *kb + f * g;
                        }
                        live[j] = true;
                    }
                }
            }
            backward.accepted += 1;
        }
        Ok(LossGrad {
            loss,
            grad,
            grad_x: ybar,
            forward: sol.stats,
            backward,
        })
    }
}
