//! Optimise-then-discretise: the continuous adjoint solved backwards.
use num_traits::Float;

use super::{terminal, GradSolution, VjpOut, VjpSystem};
use crate::controller::StepController;
use crate::error::OdeError;
use crate::norm::ErrorNorm;
use crate::solver::Solver;
use crate::tableau::RkMethod;

/// The adjoint system over `[y (n), a (n), a_p (P)]`: dy/dt = f, da/dt = -a^T df/dy,
/// da_p/dt = -a^T df/dp, one VJP per evaluation.
fn adjoint_rhs<T: Float, V: VjpSystem<T> + ?Sized>(
    sys: &mut V,
    n: usize,
    t: T,
    y: &[T],
    dy: &mut [T],
) {
    let (y, a) = y.split_at(n);
    let (f, rest) = dy.split_at_mut(n);
    rest.fill(T::zero());
    let (a_y, a_p) = rest.split_at_mut(n);
    sys.vjp(t, y, &a[..n], VjpOut { f, a_y, a_p });
    for g in rest.iter_mut() {
        *g = -*g;
    }
}

/// Forward solve, then `[y(t1), dL/dy(t1), 0]` from t1 back to t0 with the same method and
/// stepping; `(rtol, atol, seminorm)` set the backward tolerances and error norm.
pub(super) fn solve<M, T, C, V, L>(
    solver: &Solver<M, T, C>,
    sys: &mut V,
    t0: T,
    t1: T,
    y0: &[T],
    cotangent: L,
    (rtol, atol, seminorm): (T, T, bool),
) -> Result<GradSolution<T>, OdeError<T>>
where
    M: RkMethod + Clone,
    T: Float,
    C: StepController<T> + Clone,
    V: VjpSystem<T> + ?Sized,
    L: FnOnce(&[T], &mut [T]),
{
    let n = y0.len();
    let sol = solver.solve_system(
        &mut |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy),
        t0,
        t1,
        &y0.to_vec(),
    )?;
    let a = terminal(&sol.y, cotangent, t1, sol.stats)?;
    let p = sys.num_params();
    let mut state = Vec::with_capacity(2 * n + p);
    state.extend_from_slice(&sol.y);
    state.extend_from_slice(&a);
    state.resize(2 * n + p, T::zero());
    // Without the seminorm every component enters the norm (whatever the forward solve used).
    let norm = if seminorm && p > 0 {
        0..2 * n
    } else {
        0..2 * n + p
    };
    // A per-sample norm groups each sample's state with its cotangent (`a_p` is shared).
    let grouped = match &solver.options().error_norm {
        ErrorNorm::Rms => ErrorNorm::Rms,
        ErrorNorm::PerSample(layout) => ErrorNorm::PerSample(layout.twice(n)),
    };
    let back = solver
        .clone()
        .error_norm(grouped)
        .rtol(rtol)
        .atol(atol)
        .error_components(norm)
        .solve_system(
            &mut |t, y: &Vec<T>, dy: &mut Vec<T>| adjoint_rhs(sys, n, t, y, dy),
            t1,
            t0,
            &state,
        )?;
    let mut y = back.y;
    let grad_p = y.split_off(2 * n);
    let grad_y0 = y.split_off(n);
    Ok(GradSolution {
        y1: sol.y,
        grad_y0,
        grad_p,
        forward: sol.stats,
        backward: back.stats,
    })
}
