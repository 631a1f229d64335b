//! Discretise-then-optimise: reverse mode through the accepted steps of the forward solve,
//! with every step's stages kept, or with checkpoints and the stages of one segment at a time
//! recomputed.
use num_traits::Float;

use super::{terminal, GradSolution, VjpSystem};
use crate::controller::StepController;
use crate::engine::{Engine, Reverse};
use crate::error::OdeError;
use crate::observer::Step;
use crate::solution::Stats;
use crate::solver::Solver;
use crate::tableau::RkMethod;

/// The forward solve records (t, h) of every accepted step and, with `every = None`,
/// `[y, k_0, .., k_{s-1}]` of each into one contiguous tape; with `every = Some(k)` only the
/// state at the start of every k-th step. The reverse pass walks the steps back with the
/// engine's transposed step, replaying each segment of k steps from its checkpoint with the
/// engine first (its evaluations are added to the backward `nfe`).
pub(super) fn solve<M, T, C, V, L>(
    solver: &Solver<M, T, C>,
    sys: &mut V,
    (t0, t1): (T, T),
    y0: &[T],
    cotangent: L,
    every: Option<usize>,
) -> Result<GradSolution<T>, OdeError<T>>
where
    M: RkMethod,
    T: Float,
    C: StepController<T> + Clone,
    V: VjpSystem<T> + ?Sized,
    L: FnOnce(&[T], &mut [T]),
{
    let tab = solver.tableau();
    let (n, s) = (y0.len(), tab.stages());
    let stride = (s + 1) * n;
    let mut steps: Vec<(T, T)> = Vec::new();
    let mut tape: Vec<T> = Vec::new();
    let mut record = |st: &Step<'_, T, Vec<T>>| {
        let i = steps.len();
        steps.push((st.t_prev, st.t - st.t_prev));
        match every {
            None => {
                tape.extend_from_slice(st.y_prev);
                for k in st.stages {
                    tape.extend_from_slice(k);
                }
            }
            Some(k) if i.is_multiple_of(k) => tape.extend_from_slice(st.y_prev),
            Some(_) => {}
        }
    };
    let y0 = y0.to_vec();
    let sol = solver.solve_system_observed(
        &mut |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy),
        t0,
        t1,
        &y0,
        &mut record,
    )?;
    let a = terminal(&sol.y, cotangent, t1, sol.stats)?;

    let mut rev = Reverse::new(tab, n);
    rev.cotangent_mut().copy_from_slice(&a);
    let mut grad_p = vec![T::zero(); sys.num_params()];
    let mut backward = Stats::default();
    match every {
        None => {
            for (&(t, h), rec) in steps.iter().zip(tape.chunks_exact(stride)).rev() {
                reverse_step(&mut rev, sys, (t, h), rec, &mut grad_p, &mut backward)?;
            }
        }
        Some(k) => {
            // One segment's stages at a time, recomputed from its checkpoint.
            let mut engine = Engine::new(tab, &y0);
            let mut seg: Vec<T> = Vec::with_capacity(k.min(steps.len()) * stride);
            let (mut y, mut y_next) = (y0.clone(), y0);
            for (j, checkpoint) in tape.chunks_exact(n).enumerate().rev() {
                let segment = &steps[j * k..((j + 1) * k).min(steps.len())];
                y.copy_from_slice(checkpoint);
                engine.restart();
                seg.clear();
                let mut f = |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy);
                for &(t, h) in segment {
                    engine.step(&mut f, t, h, &y, &mut y_next);
                    seg.extend_from_slice(&y);
                    for stage in &engine.k[..s] {
                        seg.extend_from_slice(stage);
                    }
                    engine.accept();
                    std::mem::swap(&mut y, &mut y_next);
                }
                for (&(t, h), rec) in segment.iter().zip(seg.chunks_exact(stride)).rev() {
                    reverse_step(&mut rev, sys, (t, h), rec, &mut grad_p, &mut backward)?;
                }
            }
            backward.nfe += engine.nfe;
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

/// The transposed step over one record `[y, k_0, .., k_{s-1}]`, counted in `backward`.
fn reverse_step<T: Float, V: VjpSystem<T> + ?Sized>(
    rev: &mut Reverse<T>,
    sys: &mut V,
    (t, h): (T, T),
    rec: &[T],
    grad_p: &mut [T],
    backward: &mut Stats,
) -> Result<(), OdeError<T>> {
    let (y, stages) = rec.split_at(rec.len() / (rev.stages() + 1));
    backward.nfe += rev.step(sys, t, h, y, stages, grad_p);
    backward.accepted += 1;
    if rev.cotangent_mut().iter().any(|v| !v.is_finite()) {
        return Err(OdeError::NonFinite {
            t,
            stats: *backward,
        });
    }
    Ok(())
}
