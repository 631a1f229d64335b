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
    /// `out = v(t, z)` for one point (`z` and `out` have length `d`).
    fn eval<S: Float>(&self, t: S, z: &[S], out: &mut [S]);
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
}

impl<T: Real> DualScratch<T> {
    fn ensure(&mut self, batch: usize, nt: usize, dim: usize) {
        let zero1 = FT::<T>::cst(T::zero());
        let zero2 = Dual2::<T>::cst(zero1);
        grow(&mut self.tangents, batch * nt * dim, T::zero());
        grow(&mut self.jt, batch * nt * dim, T::zero());
        grow(&mut self.z1, dim, zero1);
        grow(&mut self.o1, dim, zero1);
        grow(&mut self.z2, dim, zero2);
        grow(&mut self.o2, dim, zero2);
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
        s.ensure(batch, d, d);
        s
    }

    fn eval_batch(&self, _s: &mut DualScratch<T>, x: Inputs<'_, T>, out: &mut [T]) {
        let d = self.inner.dim();
        debug_assert_eq!(x.z.len(), out.len());
        debug_assert!(x.context.is_empty(), "dual fields take no context");
        let rows = x.z.chunks_exact(d).zip(out.chunks_exact_mut(d));
        for (b, (zb, ob)) in rows.enumerate() {
            self.inner.eval(x.t.at(b), zb, ob);
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
        let d = self.inner.dim();
        let z = x.z;
        let batch = z.len() / d;
        debug_assert!(x.context.is_empty(), "dual fields take no context");
        let nt = trace.tangents_per_point(batch, d);
        s.ensure(batch, nt, d);
        trace.fill_tangents(batch, d, &mut s.tangents);
        for b in 0..batch {
            let t1 = FT::cst(x.t.at(b));
            for p in 0..nt {
                let row = b * nt + p;
                let u = &s.tangents[row * d..][..d];
                for i in 0..d {
                    s.z1[i] = F::new(z[b * d + i], u[i]);
                }
                self.inner.eval(t1, &s.z1[..d], &mut s.o1[..d]);
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
        debug_assert!(x.context.is_empty(), "dual fields take no context");
        let (a_v, a_div) = (input.a_v, input.a_div);
        let VjpOutput { v, div, g_z, .. } = out;
        let d = self.inner.dim();
        let batch = z.len() / d;
        let nt = trace.tangents_per_point(batch, d);
        s.ensure(batch, nt, d);
        trace.fill_tangents(batch, d, &mut s.tangents);
        let norm = trace.norm(batch, d);
        for b in 0..batch {
            let t2 = Dual2::cst(FT::cst(x.t.at(b)));
            let mut div_b = T::zero();
            // Inner direction e_m gives d/dz_m; outer direction u_p gives J u_p.
            for m in 0..d {
                let mut second = T::zero();
                for p in 0..nt {
                    let u = &s.tangents[(b * nt + p) * d..][..d];
                    for i in 0..d {
                        let inner = if i == m { T::one() } else { T::zero() };
                        s.z2[i] = F::new(F::new(z[b * d + i], inner), F::new(u[i], T::zero()));
                    }
                    self.inner.eval(t2, &s.z2[..d], &mut s.o2[..d]);
                    let o = &s.o2[..d];
                    if p == 0 {
                        // J e_m, shared by all outer directions.
                        let jv = (0..d).fold(T::zero(), |acc, i| acc + a_v[b * d + i] * o[i].x.dx);
                        g_z[b * d + m] = g_z[b * d + m] + jv;
                    }
                    if m == 0 {
                        for i in 0..d {
                            v[b * d + i] = o[i].x.x;
                            div_b = div_b + u[i] * o[i].dx.x;
                        }
                    }
                    second = second + (0..d).fold(T::zero(), |acc, i| acc + u[i] * o[i].dx.dx);
                }
                g_z[b * d + m] = g_z[b * d + m] + a_div[b] * norm * second;
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
