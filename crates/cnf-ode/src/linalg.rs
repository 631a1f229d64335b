//! Linear algebra for implicit methods: a small linear-solver trait (factorise, then solve in
//! place) and a dense LU with partial pivoting over any `num_traits::Float`.
//!
//! nalgebra's and faer's LU need `RealField`/`ComplexField`, which a generic `Float` state
//! (f32, f64, dual numbers) does not give, so the dense LU is written here; a banded or sparse
//! backend implements [`LinearSolver`] and the methods do not change.
use num_traits::Float;

/// The matrix given to [`LinearSolver::factorise`] is singular to working precision: a pivot
/// is zero or not finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Singular {
    /// The column without a usable pivot.
    pub column: usize,
}

/// A linear solver for the iteration matrix of an implicit method.
pub trait LinearSolver<T> {
    /// Factorises the `n` x `n` matrix `a` (row-major, `n * n` values), replacing the previous
    /// factorisation.
    ///
    /// # Errors
    /// [`Singular`] when a pivot is zero or not finite; the solver is then unusable until the
    /// next successful factorisation.
    fn factorise(&mut self, a: &[T], n: usize) -> Result<(), Singular>;
    /// Overwrites `b` with the solution x of A x = b, A the last factorised matrix.
    fn solve_in_place(&self, b: &mut [T]);
}

/// out = b - (c x - J x) for the n x n row-major J (n = `b.len()`): the residual of
/// (c I - J) x = b, the iteration matrix of an implicit method, each row as accurate as if
/// computed in twice the working precision and rounded once. Ogita, Rump and Oishi's Dot2
/// (SIAM J. Sci. Comput. 26, 2005): products split exactly with a fused multiply-add
/// (TwoProduct), sums with Knuth's TwoSum, their errors added up separately; about 8
/// operations per entry instead of 2. Taking c I - J rather than the matrix formed from it
/// leaves out the rounding of c - J_ii too. For a type whose `mul_add` is not fused the
/// products' errors read as zero and this is the ordinary residual.
///
/// Iterative refinement needs a residual more accurate than the working precision: computed
/// in it, the residual has the size of the rounding errors it is meant to remove, and
/// refinement stops at a componentwise backward-stable solution. With it, one step
/// x += LU^-1 (b - (c I - J) x) gives the solution of the exact system to working precision in
/// every direction, including those that (c I - J)^-1 amplifies relative to the others: along
/// a null vector of J^T (a conserved linear combination of the state) a stiff iteration matrix
/// maps an elimination error eps |L| |U| |x| to eps |L| |U| |x| / c.
pub(crate) fn residual_shifted<T: Float>(
    c: T,
    j: &[T],
    (b, x): (&[T], &[T]),
    (out, err): (&mut [T], &mut [T]),
) {
    let n = b.len();
    debug_assert_eq!(j.len(), n * n);
    // Column by column over all rows at once: the rows' sums are independent, so their
    // dependency chains overlap (and vectorise) instead of running one after another.
    // s + p = t + te and a xv = p + pe exactly.
    let add = |s: &mut T, e: &mut T, a: T, xv: T| {
        let p = a * xv;
        let pe = a.mul_add(xv, -p);
        let t = *s + p;
        let z = t - *s;
        *e = *e + (((*s - (t - z)) + (p - z)) + pe);
        *s = t;
    };
    out.copy_from_slice(b);
    err.fill(T::zero());
    for ((s, e), &xv) in out.iter_mut().zip(err.iter_mut()).zip(x) {
        add(s, e, -c, xv);
    }
    for (col, &xv) in x.iter().enumerate() {
        for ((s, e), row) in out.iter_mut().zip(err.iter_mut()).zip(j.chunks_exact(n)) {
            add(s, e, row[col], xv);
        }
    }
    for (s, &e) in out.iter_mut().zip(err.iter()) {
        *s = *s + e;
    }
}

/// Dense LU with partial (row) pivoting, P A = L U, stored in place: O(n^3 / 3) to factorise,
/// O(n^2) per solve. Buffers are kept between factorisations of the same size.
#[derive(Debug, Clone, Default)]
pub struct DenseLu<T> {
    n: usize,
    /// L below the diagonal (unit diagonal implied) and U on and above it, row-major.
    lu: Vec<T>,
    /// Row `i` of P A is row `piv[i]` of A, as a sequence of swaps: at step k rows k and
    /// `piv[k]` were exchanged.
    piv: Vec<usize>,
}

impl<T: Float> DenseLu<T> {
    /// An empty solver (allocates on the first factorisation).
    pub fn new() -> Self {
        Self {
            n: 0,
            lu: Vec::new(),
            piv: Vec::new(),
        }
    }
}

impl<T: Float> LinearSolver<T> for DenseLu<T> {
    fn factorise(&mut self, a: &[T], n: usize) -> Result<(), Singular> {
        debug_assert_eq!(a.len(), n * n);
        self.n = n;
        self.lu.clear();
        self.lu.extend_from_slice(a);
        self.piv.clear();
        self.piv.resize(n, 0);
        let lu = &mut self.lu;
        for k in 0..n {
            // The largest pivot of column k at or below the diagonal.
            let mut p = k;
            let mut best = lu[k * n + k].abs();
            for i in k + 1..n {
                let v = lu[i * n + k].abs();
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
            let inv = T::one() / lu[k * n + k];
            let (top, below) = lu.split_at_mut((k + 1) * n);
            let row_k = &top[k * n..];
            for row in below.chunks_exact_mut(n) {
                let l = row[k] * inv;
                row[k] = l;
                if l != T::zero() {
                    for (x, &u) in row[k + 1..].iter_mut().zip(&row_k[k + 1..]) {
                        *x = *x - l * u;
                    }
                }
            }
        }
        Ok(())
    }

    fn solve_in_place(&self, b: &mut [T]) {
        let (n, lu) = (self.n, &self.lu);
        debug_assert_eq!(b.len(), n);
        for (k, &p) in self.piv.iter().enumerate() {
            b.swap(k, p);
        }
        // L y = P b (unit lower triangular), then U x = y.
        for i in 1..n {
            let row = &lu[i * n..i * n + i];
            let s = row
                .iter()
                .zip(&b[..i])
                .fold(T::zero(), |s, (&l, &y)| s + l * y);
            b[i] = b[i] - s;
        }
        for i in (0..n).rev() {
            let row = &lu[i * n + i + 1..(i + 1) * n];
            let s = row
                .iter()
                .zip(&b[i + 1..])
                .fold(T::zero(), |s, (&u, &x)| s + u * x);
            b[i] = (b[i] - s) / lu[i * n + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A x = b for a matrix that needs pivoting (zero leading entry), checked by the residual
    /// in exact small integers.
    #[test]
    fn solves_with_pivoting() {
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 4.0, -1.0, 3.0];
        let x = [1.0, -2.0, 3.0];
        let mut b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let mut lu = DenseLu::new();
        lu.factorise(&a, 3).unwrap();
        lu.solve_in_place(&mut b);
        for (got, want) in b.iter().zip(x) {
            assert!((got - want).abs() < 1e-14, "{got} vs {want}");
        }
    }

    /// The residual in twice the precision keeps what the working-precision one rounds away:
    /// a product's low part, (1 + eps)(1 - eps) = 1 - eps^2, and a small term added to a large
    /// one that later cancels; the shift enters as c I - J.
    #[test]
    fn residual_in_twice_the_precision() {
        let e = f64::EPSILON;
        let mut out = [0.0];
        // c = 0, J = 1 + e: 1 - (0 - (1 + e)) (1 - e) ... = 1 + (1 + e)(1 - e) - 2 with b = -1.
        residual_shifted(
            0.0,
            &[1.0 + e],
            (&[-1.0], &[1.0 - e]),
            (&mut out, &mut [0.0]),
        );
        assert_eq!(out[0], -e * e);
        assert_eq!(-1.0 + (1.0 + e) * (1.0 - e), 0.0);
        // c = 1, J = [[0, -1], [0, 1]]: c I - J = [[1, 1], [0, 0]].
        let mut out = [0.0; 2];
        residual_shifted(
            1.0,
            &[0.0, -1.0, 0.0, 1.0],
            (&[e / 4.0, 0.0], &[1.0, -1.0]),
            (&mut out, &mut [0.0; 2]),
        );
        assert_eq!(out, [e / 4.0, 0.0]);
        assert_eq!(e / 4.0 - 1.0 + 1.0, 0.0);
    }

    /// One refinement step with the accurate residual corrects a perturbed solution back to
    /// the solution.
    #[test]
    fn refinement_corrects_a_perturbed_solution() {
        // c I - J with c = 4 and J = 4 I - a.
        let a = [4.0, -2.0, 1.0, -2.0, 4.0, -2.0, 1.0, -2.0, 4.0];
        let j: Vec<f64> = (0..9)
            .map(|k| if k % 4 == 0 { 4.0 - a[k] } else { -a[k] })
            .collect();
        let b = [11.0, -16.0, 17.0];
        let mut lu = DenseLu::new();
        lu.factorise(&a, 3).unwrap();
        let mut x = b;
        lu.solve_in_place(&mut x);
        let mut y = [x[0] + 1e-3, x[1] - 2e-3, x[2]];
        let mut r = [0.0; 3];
        residual_shifted(4.0, &j, (&b, &y), (&mut r, &mut [0.0; 3]));
        lu.solve_in_place(&mut r);
        for (y, d) in y.iter_mut().zip(r) {
            *y += d;
        }
        for (got, want) in y.iter().zip(x) {
            assert!((got - want).abs() < 1e-14, "{got} vs {want}");
        }
    }

    #[test]
    fn refuses_a_singular_matrix() {
        let a = [1.0, 2.0, 2.0, 4.0];
        assert_eq!(DenseLu::new().factorise(&a, 2), Err(Singular { column: 1 }));
        let nan = [f64::NAN, 0.0, 0.0, 1.0];
        assert_eq!(
            DenseLu::new().factorise(&nan, 2),
            Err(Singular { column: 0 })
        );
    }
}
