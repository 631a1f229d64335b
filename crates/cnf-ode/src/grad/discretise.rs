//! Discretise-then-optimise: reverse mode through the accepted steps of the forward solve.
use num_traits::Float;

use super::{terminal, GradSolution, VjpSystem};
use crate::controller::StepController;
use crate::engine::Reverse;
use crate::error::OdeError;
use crate::observer::Step;
use crate::solution::Stats;
use crate::solver::Solver;
use crate::tableau::RkMethod;

/// The forward solve records, per accepted step, (t, h) and `[y, k_0, .., k_{s-1}]` into one
/// contiguous tape; the reverse pass walks it back with the engine's transposed step.
pub(super) fn solve<M, T, C, V, L>(
    solver: &Solver<M, T, C>,
    sys: &mut V,
    t0: T,
    t1: T,
    y0: &[T],
    cotangent: L,
) -> Result<GradSolution<T>, OdeError<T>>
where
    M: RkMethod,
    T: Float,
    C: StepController<T> + Clone,
    V: VjpSystem<T> + ?Sized,
    L: FnOnce(&[T], &mut [T]),
{
    let tab = solver.tableau();
    let n = y0.len();
    let stride = (tab.stages() + 1) * n;
    let mut steps: Vec<(T, T)> = Vec::new();
    let mut tape: Vec<T> = Vec::new();
    let mut record = |st: &Step<'_, T, Vec<T>>| {
        steps.push((st.t_prev, st.t - st.t_prev));
        tape.extend_from_slice(st.y_prev);
        for k in st.stages {
            tape.extend_from_slice(k);
        }
    };
    let sol = solver.solve_system_observed(
        &mut |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy),
        t0,
        t1,
        &y0.to_vec(),
        &mut record,
    )?;
    let a = terminal(&sol.y, cotangent, t1, sol.stats)?;

    let mut rev = Reverse::new(tab, n);
    rev.cotangent_mut().copy_from_slice(&a);
    let mut grad_p = vec![T::zero(); sys.num_params()];
    let mut backward = Stats::default();
    for (&(t, h), rec) in steps.iter().zip(tape.chunks_exact(stride)).rev() {
        let (y, stages) = rec.split_at(n);
        backward.nfe += rev.step(sys, t, h, y, stages, &mut grad_p);
        backward.accepted += 1;
        if rev.cotangent_mut().iter().any(|v| !v.is_finite()) {
            return Err(OdeError::NonFinite { t, stats: backward });
        }
    }
    if grad_p.iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite {
            t: t0,
            stats: backward,
        });
    }
    Ok(GradSolution {
        y1: sol.y,
        grad_y0: rev.cotangent_mut().to_vec(),
        grad_p,
        forward: sol.stats,
        backward,
    })
}
