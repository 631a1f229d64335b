//! The generic dual-number path: the reference every fast path is tested against.
//!
//! A [`GenericField`] is written once over any `num_traits::Float`; [`DualField`] turns it
//! into a [`VectorField`] by evaluating it on forward-mode dual numbers (first derivatives,
//! for `v`, `J u` and the divergence) and on nested duals (dual of dual, for the second
//! derivatives the gradient of the divergence needs). It is simple and slow: `nt` passes per
//! point for the divergence and `d * nt` nested passes per point for the VJP.

use crate::field::{
    contract_tangents, frobenius_from_tangents, kinetic_from_v, Inputs, Integrands, Trace,
    VectorField, VjpInput, VjpOutput,
};
use crate::real::{cast, Real};
use autodiff::{F, FT};
use num_traits::Float;

/// A vector field written over a generic float type, so it can be run on dual numbers.
pub trait GenericField: Send + Sync {
    /// Dimension `d` of the state.
    fn dim(&self) -> usize;
    /// Width `k` of the context (0, the default: unconditional).
    fn context_dim(&self) -> usize {
        0
    }
    /// `out = v(t, z, c)` for one point (`z` and `out` have length `d`, the context `c`
    /// length `k`).
    fn eval<S: Float>(&self, t: S, z: &[S], c: &[S], out: &mut [S]);
}

/// Second-order forward dual: `x.x` value, `x.dx` inner derivative, `dx.x` outer derivative,
/// `dx.dx` mixed second derivative.
type Dual2<T> = F<FT<T>, FT<T>>;

/// Adapter giving a [`GenericField`] the [`VectorField`] interface by dual numbers.
/// Parameter-free as far as `VectorField` is concerned (`num_params() == 0`).
#[derive(Clone, Debug)]
pub struct DualField<G> {
    /// The wrapped field.
    pub inner: G,
}

impl<G> DualField<G> {
    /// Wraps `inner`.
    pub fn new(inner: G) -> Self {
        Self { inner }
    }
}

/// Work buffers of [`DualField`].
#[derive(Debug, Default)]
pub struct DualScratch<T> {
    tangents: Vec<T>,
    jt: Vec<T>,
    z1: Vec<FT<T>>,
    o1: Vec<FT<T>>,
    z2: Vec<Dual2<T>>,
    o2: Vec<Dual2<T>>,
    c1: Vec<FT<T>>,
    c2: Vec<Dual2<T>>,
}

impl<T: Real> DualScratch<T> {
    fn ensure(&mut self, batch: usize, nt: usize, dim: usize, k: usize) {
        let zero1 = FT::<T>::cst(T::zero());
        let zero2 = Dual2::<T>::cst(zero1);
        grow(&mut self.tangents, batch * nt * dim, T::zero());
        grow(&mut self.jt, batch * nt * dim, T::zero());
        grow(&mut self.z1, dim, zero1);
        grow(&mut self.o1, dim, zero1);
        grow(&mut self.z2, dim, zero2);
        grow(&mut self.o2, dim, zero2);
        grow(&mut self.c1, k, zero1);
        grow(&mut self.c2, k, zero2);
    }
}

/// Grows `buf` to at least `len` elements (never shrinks, so steady state does not allocate).
pub(crate) fn grow<X: Clone>(buf: &mut Vec<X>, len: usize, fill: X) {
    if buf.len() < len {
        buf.resize(len, fill);
    }
}

impl<T: Real, G: GenericField> VectorField<T> for DualField<G> {
    type Scratch = DualScratch<T>;

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn num_params(&self) -> usize {
        0
    }

    fn params(&self) -> &[T] {
        &[]
    }

    fn params_mut(&mut self) -> &mut [T] {
        &mut []
    }

    fn scratch(&self, batch: usize) -> DualScratch<T> {
        let mut s = DualScratch::default();
        let d = self.inner.dim();
        s.ensure(batch, d, d, self.inner.context_dim());
        s
    }

    fn context_dim(&self) -> usize {
        self.inner.context_dim()
    }

    fn eval_batch(&self, _s: &mut DualScratch<T>, x: Inputs<'_, T>, out: &mut [T]) {
        let (d, k) = (self.inner.dim(), self.inner.context_dim());
        debug_assert_eq!(x.z.len(), out.len());
        let rows = x.z.chunks_exact(d).zip(out.chunks_exact_mut(d));
        for (b, (zb, ob)) in rows.enumerate() {
            self.inner.eval(x.t.at(b), zb, &x.context[b * k..][..k], ob);
        }
    }

    fn eval_div_batch(
        &self,
        s: &mut DualScratch<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    ) {
        let (d, k) = (self.inner.dim(), self.inner.context_dim());
        let z = x.z;
        let batch = z.len() / d;
        let nt = trace.tangents_per_point(batch, d);
        s.ensure(batch, nt, d, k);
        trace.fill_tangents(batch, d, &mut s.tangents);
        for b in 0..batch {
            let t1 = FT::cst(x.t.at(b));
            for (c1, &c) in s.c1[..k].iter_mut().zip(&x.context[b * k..][..k]) {
                *c1 = FT::cst(c);
            }
            for p in 0..nt {
                let row = b * nt + p;
                let u = &s.tangents[row * d..][..d];
                for i in 0..d {
                    s.z1[i] = F::new(z[b * d + i], u[i]);
                }
                self.inner.eval(t1, &s.z1[..d], &s.c1[..k], &mut s.o1[..d]);
                for i in 0..d {
                    v[b * d + i] = s.o1[i].x;
                    s.jt[row * d + i] = s.o1[i].dx;
                }
            }
        }
        let norm = trace.norm(batch, d);
        contract_tangents(batch, nt, d, norm, &s.tangents, &s.jt, div);
    }

    /// `|J u_p|^2` from the dual tangents of the divergence pass (no extra evaluations).
    fn eval_penalties_batch(
        &self,
        s: &mut DualScratch<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        let d = self.inner.dim();
        let batch = x.batch(d);
        self.eval_div_batch(s, x, trace, out.v, out.div);
        if !out.kinetic.is_empty() {
            kinetic_from_v(d, out.v, out.kinetic);
        }
        if !out.frobenius.is_empty() {
            let (nt, norm) = (trace.tangents_per_point(batch, d), trace.norm(batch, d));
            frobenius_from_tangents(batch, nt, d, norm, &s.jt, out.frobenius);
        }
    }

    fn vjp_batch(&self, s: &mut DualScratch<T>, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        let VjpInput { x, trace, .. } = input;
        let z = x.z;
        let (a_v, a_div) = (input.a_v, input.a_div);
        let VjpOutput {
            v,
            div,
            g_z,
            g_context,
            ..
        } = out;
        let (d, k) = (self.inner.dim(), self.inner.context_dim());
        let batch = z.len() / d;
        let nt = trace.tangents_per_point(batch, d);
        s.ensure(batch, nt, d, k);
        trace.fill_tangents(batch, d, &mut s.tangents);
        let norm = trace.norm(batch, d);
        // Inner directions: the d coordinates of z, then (if d/dc is wanted) the k of c.
        let inner_dirs = if g_context.is_empty() { d } else { d + k };
        for b in 0..batch {
            let t2 = Dual2::cst(FT::cst(x.t.at(b)));
            let c = &x.context[b * k..][..k];
            let mut div_b = T::zero();
            // Inner direction e_m gives d/dz_m (d/dc_{m-d}); outer direction u_p gives J u_p.
            for m in 0..inner_dirs {
                let mut second = T::zero();
                let mut first = T::zero();
                let seed = |i: usize| if i == m { T::one() } else { T::zero() };
                for (j, (c2, &cj)) in s.c2[..k].iter_mut().zip(c).enumerate() {
                    *c2 = F::new(F::new(cj, seed(d + j)), FT::cst(T::zero()));
                }
                for p in 0..nt.max(1) {
                    let zero_u = [T::zero()];
                    let u = if nt == 0 {
                        &zero_u[..0]
                    } else {
                        &s.tangents[(b * nt + p) * d..][..d]
                    };
                    for i in 0..d {
                        let outer = u.get(i).copied().unwrap_or(T::zero());
                        s.z2[i] = F::new(F::new(z[b * d + i], seed(i)), F::new(outer, T::zero()));
                    }
                    self.inner.eval(t2, &s.z2[..d], &s.c2[..k], &mut s.o2[..d]);
                    let o = &s.o2[..d];
                    if p == 0 {
                        // (dv/dz_m or dv/dc) e_m, shared by all outer directions.
                        first = (0..d).fold(T::zero(), |acc, i| acc + a_v[b * d + i] * o[i].x.dx);
                        if m == 0 {
                            for i in 0..d {
                                v[b * d + i] = o[i].x.x;
                            }
                        }
                    }
                    if nt == 0 {
                        continue;
                    }
                    if m == 0 {
                        for i in 0..d {
                            div_b = div_b + u[i] * o[i].dx.x;
                        }
                    }
                    second = second + (0..d).fold(T::zero(), |acc, i| acc + u[i] * o[i].dx.dx);
                }
                let g = first + a_div[b] * norm * second;
                if m < d {
                    g_z[b * d + m] = g_z[b * d + m] + g;
                } else {
                    let j = b * k + m - d;
                    g_context[j] = g_context[j] + g;
                }
            }
            div[b] = norm * div_b;
        }
    }
}

/// Converts a parameter stored as `T` to the evaluation type `S` (f64, f32 or a dual).
#[inline]
pub(crate) fn param<S: Float, T: Real>(x: T) -> S {
    cast::<S>(x)
}
