//! The scalar trait: f32 / f64 together with the GEMM used by the batched fast path.

use crate::kernel::GemmJob;
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

    /// Runs a fused GEMM + epilogue on this type's SIMD kernel (AVX-512 for f32 and f64, when
    /// the CPU has it); false when there is none, and then nothing was done. Internal to the
    /// MLP's fast path.
    #[doc(hidden)]
    fn simd_gemm(_job: &mut GemmJob<'_, Self>) -> bool {
        false
    }

    /// Appends the little-endian bytes of `self`.
    fn extend_le_bytes(self, out: &mut Vec<u8>);

    /// `tanh` as used by the batched fast path: branch-free (loops over it vectorise) and
    /// accurate to a few ulp. f32: a rational approximation (< 4 ulp); f64: from a table-free
    /// `exp` (<= 3 ulp from glibc's `tanh`, tested in `tests/activation_accuracy.rs`).
    fn tanh_fast(self) -> Self;

    /// `(tanh x, 1 - tanh^2 x)` as used by the batched fast path; the first is bit-identical to
    /// [`Real::tanh_fast`]. f64 computes the derivative as `sech^2 x = 4 e / (1 + e)^2`,
    /// `e = exp(-2|x|)`, accurate to a few ulp at every `x` (`1 - tanh^2` loses all its digits
    /// for large `|x|`); f32 uses `1 - y * y`.
    fn tanh_sech2_fast(self) -> (Self, Self);

    /// `exp` as used by the batched fast path (sigmoid, swish, softplus, ELU): branch-free and
    /// table-free, so loops over it vectorise. f64: <= 1 ulp from glibc over [-1416, 710]
    /// (0 below, +inf above); f32: the f64 one, rounded. Tested in `tests/activation_accuracy.rs`.
    fn exp_fast(self) -> Self;

    /// `(expm1 x, exp x)` from one argument reduction, for `x <= 0` (ELU's negative branch;
    /// larger `x` are clamped to 0), same accuracy as [`Real::exp_fast`], with the second
    /// bit-identical to it.
    fn expm1_exp_fast(self) -> (Self, Self);

    /// `ln(1 + x)` for `0 <= x <= 1` (softplus's `ln(1 + e^-|x|)`), branch-free: f64 <= 2 ulp
    /// from glibc's `log1p` on that interval; f32 through f64. NaN gives NaN.
    fn ln_1p_unit_fast(self) -> Self;
    /// The value's bit pattern, widened to 64 bits: equal exactly for the same bits (so `-0`
    /// differs from `0`, and a NaN equals only the same NaN).
    fn bits(self) -> u64;
}

macro_rules! impl_real {
    ($t:ty, $name:literal, $tanh:path, $tanh_sech2:path, $exp:path, $expm1_exp:path, $ln_1p:path) => {
        impl Real for $t {
            const NAME: &'static str = $name;

            fn bits(self) -> u64 {
                u64::from(self.to_bits())
            }

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

            fn simd_gemm(job: &mut GemmJob<'_, Self>) -> bool {
                #[cfg(target_arch = "x86_64")]
                return crate::kernel::avx512::run(job);
                #[cfg(not(target_arch = "x86_64"))]
                return {
                    let _ = job;
                    false
                };
            }

            fn extend_le_bytes(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            #[inline]
            fn tanh_fast(self) -> Self {
                $tanh(self)
            }

            #[inline]
            fn tanh_sech2_fast(self) -> (Self, Self) {
                $tanh_sech2(self)
            }

            #[inline]
            fn exp_fast(self) -> Self {
                $exp(self)
            }

            #[inline]
            fn expm1_exp_fast(self) -> (Self, Self) {
                $expm1_exp(self)
            }

            #[inline]
            fn ln_1p_unit_fast(self) -> Self {
                $ln_1p(self)
            }
        }
    };
}

impl_real!(
    f32,
    "f32",
    tanh_f32,
    tanh_sech2_f32,
    exp_f32,
    expm1_exp_f32,
    ln_1p_unit_f32
);
impl_real!(
    f64,
    "f64",
    tanh_f64,
    tanh_sech2_f64,
    exp_f64,
    expm1_exp_f64,
    ln_1p_unit_f64
);

/// f32 `exp` through the f64 one (conversions vectorise; one more rounding, to f32).
#[inline]
fn exp_f32(x: f32) -> f32 {
    exp_f64(x as f64) as f32
}

#[inline]
fn expm1_exp_f32(x: f32) -> (f32, f32) {
    let (m, e) = expm1_exp_f64(x as f64);
    (m as f32, e as f32)
}

#[inline]
fn tanh_sech2_f32(x: f32) -> (f32, f32) {
    let y = tanh_f32(x);
    (y, 1.0 - y * y)
}

/// Rational minimax approximation of tanh on [-7.9, 7.9] (the one used by Eigen and XLA);
/// beyond that range tanh rounds to +-1 in f32. Branch-free so loops over it vectorise (plain
/// multiply-adds: `mul_add` is a libm call unless the target enables FMA).
#[inline]
fn tanh_f32(x: f32) -> f32 {
    let (a, b) = (TANH32_P, TANH32_Q);
    let x = x.clamp(-TANH32_CLAMP, TANH32_CLAMP);
    let x2 = x * x;
    let p = x2 * a[6] + a[5];
    let p = x2 * p + a[4];
    let p = x2 * p + a[3];
    let p = x2 * p + a[2];
    let p = x2 * p + a[1];
    let p = x * (x2 * p + a[0]);
    let q = x2 * b[3] + b[2];
    let q = x2 * q + b[1];
    let q = x2 * q + b[0];
    p / q
}

/// `tanh_f32` is `+-1` (rounded) beyond this.
pub(crate) const TANH32_CLAMP: f32 = 7.905_311;
/// Numerator of `tanh_f32`: `x * P(x^2)`, coefficients from degree 0 up.
pub(crate) const TANH32_P: [f32; 7] = [
    4.893_524_6e-3,
    6.372_619_3e-4,
    1.485_722_4e-5,
    5.122_297e-8,
    -8.604_672e-11,
    2.000_188e-13,
    -2.760_768_5e-16,
];
/// Denominator of `tanh_f32`: `Q(x^2)`, coefficients from degree 0 up.
pub(crate) const TANH32_Q: [f32; 4] =
    [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];

/// `a * b + c`: one fused multiply-add where the build targets FMA (`.cargo/config.toml` builds
/// for the host CPU), else a multiply and an add (`mul_add` without FMA is a libm call, which
/// would stop the loops from vectorising).
#[inline(always)]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    #[cfg(target_feature = "fma")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_feature = "fma"))]
    {
        a * b + c
    }
}

/// `y = (k1 + k2) ln 2 + r` with `|r| <= ln 2 / 2`: returns `(2^k1, 2^k2, expm1(r))`, so
/// `exp(y) = 2^k1 (2^k2 (1 + expm1(r)))`. Splitting `2^k` in two keeps both factors normal
/// for `y` in [-1416, 1418] (the caller clamps), so results that under- or overflow do so in
/// the final product, with the correct rounding into subnormals. Branch-free and table-free:
/// `k` comes from the 1.5 * 2^52 rounding trick (its low bits hold `k`), `r` from a two-part
/// `ln 2` (fdlibm's: `k * LN2_HI` is exact for `|k| < 2^20`, and `y - k * LN2_HI` is exact by
/// Sterbenz), `expm1(r) = r + r^2 q(r)` from its Taylor series to degree 13 (the truncation
/// error is < 2e-17 relative on the interval). NaN in gives NaN out (through `r`).
#[inline(always)]
fn exp_reduce(y: f64) -> (f64, f64, f64) {
    let shifted = y * std::f64::consts::LOG2_E + EXP_SHIFT;
    let k = (shifted.to_bits() as i64).wrapping_sub(EXP_SHIFT.to_bits() as i64);
    let kd = shifted - EXP_SHIFT;
    let r = fma(-kd, LN2_LO, fma(-kd, LN2_HI, y));
    let mut q = EXP_C[11];
    for &c in EXP_C[..11].iter().rev() {
        q = fma(q, r, c);
    }
    let p = fma(r * r, q, r);
    let k1 = k >> 1;
    let k2 = k - k1;
    let pow2 = |k: i64| f64::from_bits((k.wrapping_add(1023) as u64) << 52);
    (pow2(k1), pow2(k2), p)
}

/// `ln 2` in two parts for `exp_reduce` (fdlibm's: `k * LN2_HI` is exact for `|k| < 2^20`).
pub(crate) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
pub(crate) const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1.5 * 2^52`: adding it rounds to an integer held in the low mantissa bits.
pub(crate) const EXP_SHIFT: f64 = 6_755_399_441_055_744.0;
/// `exp_reduce`'s series: 1 / n! for n = 2..=13.
pub(crate) const EXP_C: [f64; 12] = [
    0.5,
    1.666_666_666_666_666_6e-1,
    4.166_666_666_666_666_4e-2,
    8.333_333_333_333_333e-3,
    1.388_888_888_888_889e-3,
    1.984_126_984_126_984e-4,
    2.480_158_730_158_73e-5,
    2.755_731_922_398_589_3e-6,
    2.755_731_922_398_589e-7,
    2.505_210_838_544_172e-8,
    2.087_675_698_786_81e-9,
    1.605_904_383_682_161_3e-10,
];

/// The parts of `tanh |x|` from `e = exp(-2|x|) = s (1 + p)`: `tanh |x| = num / den` with
/// `num = (1 - s) - s p = 1 - e` and `den = (1 + s) + s p = 1 + e` (both free of
/// cancellation: `1 +- s` is exact), and `e = s1 (s2 + s2 p)` for the derivative.
#[inline(always)]
fn tanh_parts(x: f64) -> (f64, f64, f64) {
    let (s1, s2, p) = exp_reduce(-2.0 * x.abs().clamp(0.0, TANH64_CLAMP));
    let s = s1 * s2;
    let sp = s * p;
    let num = (1.0 - s) - sp;
    let den = (1.0 + s) + sp;
    (num, den, s1 * fma(s2, p, s2))
}

/// Beyond 700, `e = 0` (and tanh = 1) in f64; clamping `|x|` there keeps `2^k1`, `2^k2` normal
/// (and NaN).
pub(crate) const TANH64_CLAMP: f64 = 700.0;

/// Branch-free f64 `tanh` (vectorises; <= 3 ulp from glibc, see `tanh_fast`).
#[inline]
fn tanh_f64(x: f64) -> f64 {
    let (num, den, _) = tanh_parts(x);
    (num / den).copysign(x)
}

/// `(tanh x, sech^2 x)`, the first bit-identical to `tanh_f64`.
#[inline]
fn tanh_sech2_f64(x: f64) -> (f64, f64) {
    let (num, den, e) = tanh_parts(x);
    ((num / den).copysign(x), (4.0 * e) / (den * den))
}

/// Branch-free f64 `exp`: exact 0 below -1416 (the true value underflows from -745.2 on,
/// through subnormals), +inf above 709.78, NaN for NaN.
#[inline]
fn exp_f64(x: f64) -> f64 {
    let (s1, s2, p) = exp_reduce(x.clamp(-1416.0, 710.0));
    s1 * fma(s2, p, s2)
}

/// `(expm1 x, exp x)` for `x <= 0`: `expm1 = s p + (s - 1)` (`s - 1` is exact for `k >= -53`,
/// and the sum has no harmful cancellation since `|s p| <= 0.42 s`).
#[inline]
fn expm1_exp_f64(x: f64) -> (f64, f64) {
    let (s1, s2, p) = exp_reduce(x.clamp(-1416.0, 0.0));
    let s = s1 * s2;
    (fma(s, p, s - 1.0), s1 * fma(s2, p, s2))
}

#[inline]
fn ln_1p_unit_f32(x: f32) -> f32 {
    ln_1p_unit_f64(x as f64) as f32
}

/// `ln(1 + e)` for `0 <= e <= 1`: `e > 1/2` is reduced to `ln 2 + ln(1 + g)` with
/// `g = (e - 1) / 2` (exact by Sterbenz), so `|g| <= 1/2`; then `ln(1 + g) = 2 atanh(s)`,
/// `s = g / (2 + g)`, `|s| <= 1/5`, by its series to `s^23` (truncation < 2e-17 relative).
#[inline]
fn ln_1p_unit_f64(e: f64) -> f64 {
    /// 2 / (2n + 1) for n = 1..=11.
    const R: [f64; 11] = [
        2.0 / 3.0,
        2.0 / 5.0,
        2.0 / 7.0,
        2.0 / 9.0,
        2.0 / 11.0,
        2.0 / 13.0,
        2.0 / 15.0,
        2.0 / 17.0,
        2.0 / 19.0,
        2.0 / 21.0,
        2.0 / 23.0,
    ];
    let big = e > 0.5;
    let g = if big { (e - 1.0) * 0.5 } else { e };
    let s = g / (2.0 + g);
    let z = s * s;
    let mut q = R[10];
    for &c in R[..10].iter().rev() {
        q = fma(q, z, c);
    }
    let l = fma(s * z, q, s + s);
    (if big { std::f64::consts::LN_2 } else { 0.0 }) + l
}

/// The workspace's one numeric cast ([`cnf_ode::cast`]), for the modules of this crate.
pub(crate) use cnf_ode::cast;

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
