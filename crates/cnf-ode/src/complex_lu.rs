//! Dense LU with partial pivoting over complex numbers of a generic float, for Radau's complex
//! iteration matrix (mu / h) I - J with complex mu. Organised as [`crate::DenseLu`] (the same
//! row-major storage, pivot record and [`LinearSolver`] contract, with `Complex<T>` entries), so
//! a banded or sparse backend serves both by implementing `LinearSolver<T>` and
//! `LinearSolver<Complex<T>>`.
use num_complex::Complex;
use num_traits::Float;

use crate::linalg::{LinearSolver, Singular};

/// |re| + |im|: LAPACK's pivot measure for complex LU (`izamax`), cheaper than the modulus and
/// equivalent up to a factor sqrt(2).
fn magnitude<T: Float>(z: Complex<T>) -> T {
    z.re.abs() + z.im.abs()
}

/// Complex dense LU with partial (row) pivoting, P A = L U, in place.
#[derive(Debug, Clone, Default)]
pub struct ComplexLu<T> {
    n: usize,
    /// L below the diagonal (unit diagonal implied) and U on and above it, row-major.
    lu: Vec<Complex<T>>,
    /// At step k rows k and `piv[k]` were exchanged.
    piv: Vec<usize>,
}

impl<T: Float> ComplexLu<T> {
    /// An empty solver (allocates on the first factorisation).
    pub fn new() -> Self {
        Self {
            n: 0,
            lu: Vec::new(),
            piv: Vec::new(),
        }
    }
}

impl<T: Float> LinearSolver<Complex<T>> for ComplexLu<T> {
    fn factorise(&mut self, a: &[Complex<T>], n: usize) -> Result<(), Singular> {
        debug_assert_eq!(a.len(), n * n);
        self.n = n;
        self.lu.clear();
        self.lu.extend_from_slice(a);
        self.piv.clear();
        self.piv.resize(n, 0);
        let lu = &mut self.lu;
        for k in 0..n {
            let mut p = k;
            let mut best = magnitude(lu[k * n + k]);
            for i in k + 1..n {
                let v = magnitude(lu[i * n + k]);
                if v > best {
                    best = v;
                    p = i;
                }
            }
            if best == T::zero() || !best.is_finite() {
                return Err(Singular { column: k });
            }
            self.piv[k] = p;
            if p != k {
                for j in 0..n {
                    lu.swap(k * n + j, p * n + j);
                }
            }
            let inv = Complex::new(T::one(), T::zero()) / lu[k * n + k];
            let (top, below) = lu.split_at_mut((k + 1) * n);
            let row_k = &top[k * n..];
            for row in below.chunks_exact_mut(n) {
                let l = row[k] * inv;
                row[k] = l;
                if l.re != T::zero() || l.im != T::zero() {
                    for (x, &u) in row[k + 1..].iter_mut().zip(&row_k[k + 1..]) {
                        *x = *x - l * u;
                    }
                }
            }
        }
        Ok(())
    }

    fn solve_in_place(&self, b: &mut [Complex<T>]) {
        let (n, lu) = (self.n, &self.lu);
        debug_assert_eq!(b.len(), n);
        for (k, &p) in self.piv.iter().enumerate() {
            b.swap(k, p);
        }
        let zero = Complex::new(T::zero(), T::zero());
        for i in 1..n {
            let row = &lu[i * n..i * n + i];
            let s = row.iter().zip(&b[..i]).fold(zero, |s, (&l, &y)| s + l * y);
            b[i] = b[i] - s;
        }
        for i in (0..n).rev() {
            let row = &lu[i * n + i + 1..(i + 1) * n];
            let s = row
                .iter()
                .zip(&b[i + 1..])
                .fold(zero, |s, (&u, &x)| s + u * x);
            b[i] = (b[i] - s) / lu[i * n + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A x = b for a complex matrix with a zero leading entry (pivoting needed), checked by
    /// the residual.
    #[test]
    fn solves_with_pivoting() {
        let c = |re: f64, im: f64| Complex::new(re, im);
        let a = [
            c(0.0, 0.0),
            c(2.0, 1.0),
            c(1.0, -1.0),
            c(1.0, 3.0),
            c(1.0, 0.0),
            c(0.0, 1.0),
            c(4.0, 0.0),
            c(-1.0, 2.0),
            c(3.0, 0.5),
        ];
        let x = [c(1.0, -1.0), c(-2.0, 0.5), c(3.0, 2.0)];
        let mut b: Vec<Complex<f64>> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let mut lu = ComplexLu::new();
        lu.factorise(&a, 3).unwrap();
        lu.solve_in_place(&mut b);
        for (got, want) in b.iter().zip(x) {
            assert!((got - want).norm() < 1e-14, "{got} vs {want}");
        }
    }

    #[test]
    fn refuses_a_singular_matrix() {
        let c = |re: f64, im: f64| Complex::new(re, im);
        // Row 2 = (1 + i) row 1.
        let a = [c(1.0, 0.0), c(0.0, 2.0), c(1.0, 1.0), c(-2.0, 2.0)];
        assert_eq!(
            ComplexLu::new().factorise(&a, 2),
            Err(Singular { column: 1 })
        );
    }
}
