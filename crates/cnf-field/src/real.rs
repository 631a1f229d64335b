//! The scalar trait: f32 / f64 together with the GEMM used by the batched fast path.

use num_traits::{Float, FromPrimitive};
use std::fmt::{Debug, Display};

/// Number of elements a strided `rows x cols` matrix reaches into its buffer.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// Scalar type for fields: f32 and f64. Carries the GEMM used by the batched fast path.
pub trait Real: Float + FromPrimitive + Send + Sync + Debug + Display + Default + 'static {
    /// Name of the type as used in file formats ("f32" / "f64").
    const NAME: &'static str;

    /// `C (m x n) = alpha * A (m x k) * B (k x n) + beta * C`, all three matrices given by a
    /// buffer plus row and column strides (so transposes and sub-blocks cost nothing).
    /// Runs matrixmultiply's sgemm / dgemm. When `beta == 0`, `C` is not read.
    ///
    /// # Panics
    /// If a stride pattern reaches past the end of its buffer (this guards memory safety; the
    /// callers in this crate size their buffers from the same shapes).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (&[Self], usize, usize),
        b: (&[Self], usize, usize),
        beta: Self,
        c: (&mut [Self], usize, usize),
    );

    /// Appends the little-endian bytes of `self`.
    fn extend_le_bytes(self, out: &mut Vec<u8>);
}

macro_rules! impl_real {
    ($t:ty, $name:literal, $kernel:path) => {
        impl Real for $t {
            const NAME: &'static str = $name;

            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                (a, rsa, csa): (&[Self], usize, usize),
                (b, rsb, csb): (&[Self], usize, usize),
                beta: Self,
                (c, rsc, csc): (&mut [Self], usize, usize),
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                assert!(extent(m, k, rsa, csa) <= a.len(), "gemm: A out of bounds");
                assert!(extent(k, n, rsb, csb) <= b.len(), "gemm: B out of bounds");
                assert!(extent(m, n, rsc, csc) <= c.len(), "gemm: C out of bounds");
                // SAFETY: the asserts above keep every strided access inside its slice, and `c`
                // is a unique borrow, so it cannot alias `a` or `b`.
                unsafe {
                    $kernel(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        beta,
                        c.as_mut_ptr(),
                        rsc as isize,
                        csc as isize,
                    )
                }
            }

            fn extend_le_bytes(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

impl_real!(f32, "f32", matrixmultiply::sgemm);
impl_real!(f64, "f64", matrixmultiply::dgemm);

/// Converts between float types without panicking (NaN if the value is not representable,
/// which cannot happen between f32, f64 and the dual numbers built on them).
#[inline]
pub fn cast<S: Float, U: num_traits::ToPrimitive>(x: U) -> S {
    S::from(x).unwrap_or_else(S::nan)
}
