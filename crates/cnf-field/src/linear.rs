//! The linear field `v = A z + b`, with analytic divergence and VJPs.
//!
//! Its flow is `exp(t A)`-affine, which makes it the test field of the flow crate.

use crate::dual::{grow, param, GenericField};
use crate::error::{check_finite, check_len, FieldError};
use crate::field::{kinetic_from_v, Inputs, Integrands, Trace, VectorField, VjpInput, VjpOutput};
use crate::real::Real;
use num_traits::Float;
use std::borrow::Cow;

/// `v(t, z) = A z + b` (time-independent). Parameters: `A (d, d)` row-major, then `b (d)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T> {
    dim: usize,
    params: Vec<T>,
}

impl<T: Real> Linear<T> {
    /// Builds the field from `A (d x d, row-major)` and `b (d)`.
    ///
    /// # Errors
    /// [`FieldError::InvalidConfig`] for `dim == 0`; [`FieldError::Shape`] if `a` is not
    /// `d * d` values or `b` not `d`; [`FieldError::NonFinite`] for a NaN or infinite entry.
    pub fn new(dim: usize, a: &[T], b: &[T]) -> Result<Self, FieldError> {
        if dim == 0 {
            return Err(FieldError::InvalidConfig(
                "dimension must be positive".into(),
            ));
        }
        check_len("A", a, &[dim, dim])?;
        check_len("b", b, &[dim])?;
        check_finite("A", a)?;
        check_finite("b", b)?;
        let params = a.iter().chain(b).copied().collect();
        Ok(Self { dim, params })
    }

    /// The matrix `A`, `(d, d)` row-major.
    pub fn a(&self) -> &[T] {
        &self.params[..self.dim * self.dim]
    }

    /// The offset `b`.
    pub fn b(&self) -> &[T] {
        &self.params[self.dim * self.dim..]
    }
}

impl<T: Real> Linear<T> {
    /// `|v|^2` and `norm * sum_p |A u_p|^2` from `v` and the tangents in `s` (empty outputs
    /// are skipped).
    fn penalties(
        &self,
        s: &[T],
        batch: usize,
        trace: &Trace<T>,
        v: &[T],
        kinetic: &mut [T],
        frobenius: &mut [T],
    ) {
        let d = self.dim;
        if !kinetic.is_empty() {
            kinetic_from_v(d, v, kinetic);
        }
        if frobenius.is_empty() {
            return;
        }
        let nt = trace.tangents_per_point(batch, d);
        let norm = trace.norm(batch, d);
        let a = self.a();
        for (b, f) in frobenius[..batch].iter_mut().enumerate() {
            let mut acc = T::zero();
            for u in s[b * nt * d..][..nt * d].chunks_exact(d) {
                for row in a.chunks_exact(d) {
                    let au = row
                        .iter()
                        .zip(u)
                        .fold(T::zero(), |acc, (&x, &y)| acc + x * y);
                    acc = acc + au * au;
                }
            }
            *f = norm * acc;
        }
    }
}

impl<T: Real> GenericField for Linear<T> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn eval<S: Float>(&self, _t: S, z: &[S], _c: &[S], out: &mut [S]) {
        let d = self.dim;
        for (i, o) in out[..d].iter_mut().enumerate() {
            let row = &self.a()[i * d..][..d];
            *o = row.iter().zip(z).fold(param(self.b()[i]), |acc, (&a, &x)| {
                acc + param::<S, T>(a) * x
            });
        }
    }
}

impl<T: Real> VectorField<T> for Linear<T> {
    /// Materialised tangents `(B * nt, d)`.
    type Scratch = Vec<T>;

    fn dim(&self) -> usize {
        self.dim
    }

    fn num_params(&self) -> usize {
        self.params.len()
    }

    fn params(&self) -> &[T] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    fn scratch(&self, batch: usize) -> Vec<T> {
        vec![T::zero(); batch * self.dim * self.dim]
    }

    fn eval_batch(&self, _s: &mut Vec<T>, x: Inputs<'_, T>, out: &mut [T]) {
        debug_assert_eq!(x.z.len(), out.len());
        debug_assert!(x.context.is_empty(), "the linear field takes no context");
        let d = self.dim;
        let rows = x.z.chunks_exact(d).zip(out.chunks_exact_mut(d));
        for (b, (zb, ob)) in rows.enumerate() {
            GenericField::eval(self, x.t.at(b), zb, &[], ob);
        }
    }

    fn eval_div_batch(
        &self,
        s: &mut Vec<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        v: &mut [T],
        div: &mut [T],
    ) {
        self.eval_batch(s, x, v);
        let z = x.z;
        let d = self.dim;
        let batch = z.len() / d;
        let nt = trace.tangents_per_point(batch, d);
        grow(s, batch * nt * d, T::zero());
        trace.fill_tangents(batch, d, s);
        let norm = trace.norm(batch, d);
        let a = self.a();
        for (b, div_b) in div[..batch].iter_mut().enumerate() {
            let mut acc = T::zero();
            for u in s[b * nt * d..][..nt * d].chunks_exact(d) {
                // u . (A u)
                for i in 0..d {
                    let au = (0..d).fold(T::zero(), |acc, j| acc + a[i * d + j] * u[j]);
                    acc = acc + u[i] * au;
                }
            }
            *div_b = norm * acc;
        }
    }

    fn eval_penalties_batch(
        &self,
        s: &mut Vec<T>,
        x: Inputs<'_, T>,
        trace: &Trace<T>,
        out: Integrands<'_, T>,
    ) {
        // Fills the tangents in `s` as a side effect.
        self.eval_div_batch(s, x, trace, out.v, out.div);
        self.penalties(
            s,
            x.batch(self.dim),
            trace,
            out.v,
            out.kinetic,
            out.frobenius,
        );
    }

    fn differentiates_penalties(&self) -> bool {
        true
    }

    fn vjp_batch(&self, s: &mut Vec<T>, input: VjpInput<'_, T>, out: VjpOutput<'_, T>) {
        let VjpInput { x, trace, .. } = input;
        let z = x.z;
        let (a_div, g_z) = (input.a_div, out.g_z);
        // Fills the tangents in `s` as a side effect.
        self.eval_div_batch(s, x, &trace, out.v, out.div);
        let d = self.dim;
        let batch = z.len() / d;
        let nt = trace.tangents_per_point(batch, d);
        let norm = trace.norm(batch, d);
        self.penalties(s, batch, &trace, out.v, out.kinetic, out.frobenius);
        // The kinetic term |v|^2 only adds 2 a_kinetic v to the cotangent of v.
        let two = T::one() + T::one();
        let a_v: Cow<[T]> = if input.a_kinetic.is_empty() {
            Cow::Borrowed(input.a_v)
        } else {
            let mut a_v = input.a_v.to_vec();
            for (b, row) in a_v.chunks_exact_mut(d).enumerate() {
                let scale = two * input.a_kinetic[b];
                for (g, &x) in row.iter_mut().zip(&out.v[b * d..][..d]) {
                    *g = *g + scale * x;
                }
            }
            Cow::Owned(a_v)
        };
        let (g_a, g_b) = out.g_theta.split_at_mut(d * d);
        let a = self.a();
        for b in 0..batch {
            let (zb, avb) = (&z[b * d..][..d], &a_v[b * d..][..d]);
            // The divergence does not depend on z: g_z += A^T a_v.
            for j in 0..d {
                let atav = (0..d).fold(T::zero(), |acc, i| acc + a[i * d + j] * avb[i]);
                g_z[b * d + j] = g_z[b * d + j] + atav;
            }
            for i in 0..d {
                g_b[i] = g_b[i] + avb[i];
                for j in 0..d {
                    g_a[i * d + j] = g_a[i * d + j] + avb[i] * zb[j];
                }
            }
            // d/dA of norm * sum_p u_p^T A u_p is norm * sum_p u_p u_p^T, and of
            // norm * sum_p |A u_p|^2 it is 2 norm * sum_p (A u_p) u_p^T.
            let scale = a_div[b] * norm;
            let a_frob = input
                .a_frobenius
                .get(b)
                .map_or(T::zero(), |&f| two * f * norm);
            for u in s[b * nt * d..][..nt * d].chunks_exact(d) {
                for i in 0..d {
                    let au = (0..d).fold(T::zero(), |acc, j| acc + a[i * d + j] * u[j]);
                    for j in 0..d {
                        g_a[i * d + j] = g_a[i * d + j] + (scale * u[i] + a_frob * au) * u[j];
                    }
                }
            }
        }
    }
}
