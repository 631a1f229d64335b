//! Optimise-then-discretise: the continuous adjoint solved backwards.
use std::ops::Range;

use num_traits::Float;

use super::{terminal, GradSolution, VjpOut, VjpSystem};
use crate::controller::StepController;
use crate::error::OdeError;
use crate::method::OdeMethod;
use crate::norm::ErrorNorm;
use crate::solver::Solver;

/// Where the backward state keeps `y` and its cotangent `a` (n components each) when the
/// forward error norm covers only the window `r` of `y`: `[y_out, a_out, y[r], a[r], a_p]`
/// with `y_out = [y[..r.start], y[r.end..]]`, so that the backward norm (`y[r]`, `a[r]`, and
/// `a_p` without the seminorm) is one contiguous window and the components the forward solve
/// left out of its error control (e.g. regulariser integrals) stay out of the backward one.
/// The whole window keeps the natural order `[y, a, a_p]`.
struct Layout {
    n: usize,
    r: Range<usize>,
}

impl Layout {
    /// Components of `y` outside the window.
    fn outside(&self) -> usize {
        self.n - self.r.len()
    }
    fn is_natural(&self) -> bool {
        self.r.len() == self.n
    }
    /// Copies one natural `n`-vector `x` into its two places `(out, inside)` of the state.
    fn scatter<T: Copy>(&self, x: &[T], out: &mut [T], inside: &mut [T]) {
        let (head, rest) = x.split_at(self.r.start);
        let (mid, tail) = rest.split_at(self.r.len());
        out[..head.len()].copy_from_slice(head);
        out[head.len()..].copy_from_slice(tail);
        inside.copy_from_slice(mid);
    }
    /// The inverse of [`Layout::scatter`].
    fn gather<T: Copy>(&self, out: &[T], inside: &[T], x: &mut [T]) {
        let (head, rest) = x.split_at_mut(self.r.start);
        let (mid, tail) = rest.split_at_mut(self.r.len());
        head.copy_from_slice(&out[..head.len()]);
        tail.copy_from_slice(&out[head.len()..]);
        mid.copy_from_slice(inside);
    }
    /// The four `n`-sized parts `(y_out, a_out, y_in, a_in)` of the first `2 n` components.
    fn parts<'a, T>(&self, s: &'a [T]) -> [&'a [T]; 4] {
        let (m, k) = (self.outside(), self.r.len());
        let (y_out, rest) = s.split_at(m);
        let (a_out, rest) = rest.split_at(m);
        let (y_in, rest) = rest.split_at(k);
        [y_out, a_out, y_in, &rest[..k]]
    }
    fn parts_mut<'a, T>(&self, s: &'a mut [T]) -> [&'a mut [T]; 4] {
        let (m, k) = (self.outside(), self.r.len());
        let (y_out, rest) = s.split_at_mut(m);
        let (a_out, rest) = rest.split_at_mut(m);
        let (y_in, rest) = rest.split_at_mut(k);
        [y_out, a_out, y_in, &mut rest[..k]]
    }
    /// The backward state `[y, a, 0 (p)]` in this layout.
    fn state<T: Float>(&self, y: &[T], a: &[T], p: usize) -> Vec<T> {
        let mut s = vec![T::zero(); 2 * self.n + p];
        let [y_out, a_out, y_in, a_in] = self.parts_mut(&mut s);
        self.scatter(y, y_out, y_in);
        self.scatter(a, a_out, a_in);
        s
    }
    /// The cotangents `(a, a_p)` of a backward state, `a` in natural order.
    fn cotangents<T: Float>(&self, s: &[T]) -> (Vec<T>, Vec<T>) {
        let [_, a_out, _, a_in] = self.parts(s);
        let mut a = vec![T::zero(); self.n];
        self.gather(a_out, a_in, &mut a);
        (a, s[2 * self.n..].to_vec())
    }
}

/// Natural-order work buffers of the adjoint right-hand side in a permuted layout.
struct Scratch<T> {
    y: Vec<T>,
    a: Vec<T>,
    f: Vec<T>,
    a_y: Vec<T>,
}

/// The adjoint system over `[y (n), a (n), a_p (P)]` (in `layout`'s order): dy/dt = f,
/// da/dt = -a^T df/dy, da_p/dt = -a^T df/dp, one VJP per evaluation.
fn adjoint_rhs<T: Float, V: VjpSystem<T> + ?Sized>(
    sys: &mut V,
    (layout, scratch): (&Layout, &mut Scratch<T>),
    t: T,
    state: &[T],
    dy: &mut [T],
) {
    let n = layout.n;
    dy.fill(T::zero());
    let (dya, a_p) = dy.split_at_mut(2 * n);
    if layout.is_natural() {
        let (y, a) = state[..2 * n].split_at(n);
        let (f, a_y) = dya.split_at_mut(n);
        sys.vjp(t, y, a, VjpOut { f, a_y, a_p });
        for g in dy[n..].iter_mut() {
            *g = -*g;
        }
        return;
    }
    let [y_out, a_out, y_in, a_in] = layout.parts(state);
    layout.gather(y_out, y_in, &mut scratch.y);
    layout.gather(a_out, a_in, &mut scratch.a);
    scratch.a_y.fill(T::zero());
    let out = VjpOut {
        f: &mut scratch.f,
        a_y: &mut scratch.a_y,
        a_p: &mut *a_p,
    };
    sys.vjp(t, &scratch.y, &scratch.a, out);
    for g in scratch.a_y.iter_mut().chain(a_p.iter_mut()) {
        *g = -*g;
    }
    let [f_out, ay_out, f_in, ay_in] = layout.parts_mut(dya);
    layout.scatter(&scratch.f, f_out, f_in);
    layout.scatter(&scratch.a_y, ay_out, ay_in);
}

/// Forward solve, then `[y(t1), dL/dy(t1), 0]` from t1 back to t0 with the same method and
/// stepping; `(rtol, atol, seminorm)` set the backward tolerances and error norm. The backward
/// norm covers the components of `y` the forward norm covered and their cotangents (plus
/// `a_p` without the seminorm).
pub(super) fn solve<M, T, C, V, L>(
    solver: &Solver<M, T, C>,
    sys: &mut V,
    t0: T,
    t1: T,
    y0: &[T],
    cotangent: L,
    (rtol, atol, seminorm): (T, T, bool),
) -> Result<GradSolution<T>, OdeError>
where
    M: OdeMethod + Clone,
    T: Float,
    C: StepController<T> + Clone,
    V: VjpSystem<T> + ?Sized,
    L: FnOnce(&[T], &mut [T]),
{
    let n = y0.len();
    let p = sys.num_params();
    let layout = Layout {
        n,
        r: solver.options().error_components.clone().unwrap_or(0..n),
    };
    // Checked before the forward solve is spent (the forward solve checks the window itself).
    let grouped = match &solver.options().error_norm {
        ErrorNorm::Rms => ErrorNorm::Rms,
        ErrorNorm::PerSample(l) if layout.r.end <= n => {
            ErrorNorm::PerSample(l.adjoint(n, layout.r.clone())?)
        }
        per_sample => per_sample.clone(),
    };
    let sol = solver.solve_system(
        &mut |t, y: &Vec<T>, dy: &mut Vec<T>| sys.rhs(t, y, dy),
        t0,
        t1,
        &y0.to_vec(),
    )?;
    let a = terminal(&sol.y, cotangent, t1, sol.stats)?;
    let state = layout.state(&sol.y, &a, p);
    let m = layout.outside();
    // Without the seminorm `a_p` enters the norm too (whatever the forward solve used).
    let norm = if seminorm && p > 0 {
        2 * m..2 * n
    } else {
        2 * m..2 * n + p
    };
    let buf = || vec![T::zero(); if layout.is_natural() { 0 } else { n }];
    let mut scratch = Scratch {
        y: buf(),
        a: buf(),
        f: buf(),
        a_y: buf(),
    };
    let back = solver
        .clone()
        .error_norm(grouped)
        .rtol(rtol)
        .atol(atol)
        .error_components(norm)
        .solve_system(
            &mut |t, y: &Vec<T>, dy: &mut Vec<T>| {
                adjoint_rhs(sys, (&layout, &mut scratch), t, y, dy)
            },
            t1,
            t0,
            &state,
        )?;
    let (grad_y0, grad_p) = layout.cotangents(&back.y);
    Ok(GradSolution {
        y1: sol.y,
        grad_y0,
        grad_p,
        forward: sol.stats,
        backward: back.stats,
        local_error: T::zero(),
    })
}
