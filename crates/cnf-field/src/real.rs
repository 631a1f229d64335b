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
    /// Runs the `gemm` crate's kernels (runtime-dispatched AVX2/FMA/AVX-512; 1.2-1.5x faster than
    /// matrixmultiply on the (B x 64) x (64 x 64) shapes of the MLP here). When `beta == 0`, `C`
    /// is not read.
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

    /// `tanh` as used by the batched fast path: libm for f64, a branch-free (vectorisable)
    /// rational approximation for f32, accurate to a few ulp.
    fn tanh_fast(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $name:literal, $tanh:path) => {
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
                    // gemm's convention: dst = alpha * dst + beta * lhs * rhs, strides given as
                    // (column stride, row stride); dst is read only when `read_dst`.
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        csc as isize,
                        rsc as isize,
                        beta != 0.0,
                        a.as_ptr(),
                        csa as isize,
                        rsa as isize,
                        b.as_ptr(),
                        csb as isize,
                        rsb as isize,
                        beta,
                        alpha,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }

            fn extend_le_bytes(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            #[inline]
            fn tanh_fast(self) -> Self {
                $tanh(self)
            }
        }
    };
}

impl_real!(f32, "f32", tanh_f32);
impl_real!(f64, "f64", f64::tanh);

/// Rational minimax approximation of tanh on [-7.9, 7.9] (the one used by Eigen and XLA);
/// beyond that range tanh rounds to +-1 in f32. Branch-free so loops over it vectorise (plain
/// multiply-adds: `mul_add` is a libm call unless the target enables FMA).
#[inline]
fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A: [f32; 7] = [
        4.893_524_6e-3,
        6.372_619_3e-4,
        1.485_722_4e-5,
        5.122_297e-8,
        -8.604_672e-11,
        2.000_188e-13,
        -2.760_768_5e-16,
    ];
    const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A[6] + A[5];
    let p = x2 * p + A[4];
    let p = x2 * p + A[3];
    let p = x2 * p + A[2];
    let p = x2 * p + A[1];
    let p = x * (x2 * p + A[0]);
    let q = x2 * B[3] + B[2];
    let q = x2 * q + B[1];
    let q = x2 * q + B[0];
    p / q
}

/// Converts between float types without panicking (NaN if the value is not representable,
/// which cannot happen between f32, f64 and the dual numbers built on them).
#[inline]
pub fn cast<S: Float, U: num_traits::ToPrimitive>(x: U) -> S {
    S::from(x).unwrap_or_else(S::nan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 approximation against f64 tanh on a dense grid and in the tails.
    #[test]
    fn tanh_f32_is_accurate() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let exact = (x as f64).tanh();
            let err = (tanh_f32(x) as f64 - exact).abs() / exact.abs().max(1e-30);
            worst = worst.max(if x == 0.0 {
                (tanh_f32(x) as f64).abs()
            } else {
                err
            });
        }
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
        for x in [1e-30f32, -3e-8, 9.0, -50.0, f32::MAX] {
            let exact = (x as f64).tanh();
            assert!((tanh_f32(x) as f64 - exact).abs() <= 4.0 * f32::EPSILON as f64 * exact.abs());
        }
    }
}
