//! The AVX-512 kernel: tiles of `MR` rows by up to `4 L` columns (`L` = 16 f32 or 8 f64 lanes)
//! accumulated in registers over the whole `k` (no blocking: the MLP's `k` is at most a few
//! hundred), `A[i, p]` broadcast against a row of `B` and fused multiply-added; then the
//! epilogue on the tile, still in registers. Ragged edges: rows past `m` repeat the last row
//! and are not stored; the last vector of a row is masked.

use super::{narrow, Derivatives, Epilogue, GemmJob};
use crate::mlp::Activation;
use crate::real::{
    Real, EXP_C, EXP_SHIFT, LN2_HI, LN2_LO, TANH32_CLAMP, TANH32_P, TANH32_Q, TANH64_CLAMP,
};
use std::arch::x86_64::*;

/// Rows per tile: `MR x 4` accumulators plus four vectors of `B` and a broadcast fit the 32
/// vector registers.
const MR: usize = 6;
/// Vectors per tile row, at most.
const NV_MAX: usize = 4;

/// The lanes of one scalar type. Every method is a thin wrapper over intrinsics, inlined into
/// the `#[target_feature]` kernel below.
///
/// # Safety
/// The methods may only be called where AVX-512F is available (checked in [`run`]); pointers
/// are read or written only in the lanes of the mask.
pub(crate) trait Lanes: Real {
    /// A vector of lanes.
    type V: Copy;
    /// A lane mask.
    type M: Copy;
    /// Lanes per vector.
    const L: usize;
    /// The first `min(n, L)` lanes.
    fn mask(n: usize) -> Self::M;
    unsafe fn v_zero() -> Self::V;
    unsafe fn v_splat(x: Self) -> Self::V;
    unsafe fn v_load(p: *const Self, m: Self::M) -> Self::V;
    unsafe fn v_store(p: *mut Self, v: Self::V, m: Self::M);
    unsafe fn v_add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn v_mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, one rounding.
    unsafe fn v_fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The vector whose lane `t` is the sum of the lanes of `acc[t]`, `t < L`.
    unsafe fn v_sums(acc: &[Self::V; 16]) -> Self::V;
    /// `Real::tanh_fast` on every lane.
    unsafe fn v_tanh(x: Self::V) -> Self::V;
    /// `Real::tanh_sech2_fast` on every lane.
    unsafe fn v_tanh_sech2(x: Self::V) -> (Self::V, Self::V);
}

impl Lanes for f32 {
    type V = __m512;
    type M = __mmask16;
    const L: usize = 16;

    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 {
            !0
        } else {
            (1u16 << n) - 1
        }
    }
    #[inline(always)]
    unsafe fn v_zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn v_splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn v_load(p: *const f32, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
    #[inline(always)]
    unsafe fn v_store(p: *mut f32, v: __m512, m: __mmask16) {
        _mm512_mask_storeu_ps(p, m, v)
    }
    #[inline(always)]
    unsafe fn v_add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn v_mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn v_fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }

    /// A transposing tree: pairs of vectors are interleaved and added (per 128-bit group,
    /// then across groups), halving the count and the partial sums' spread at each level.
    #[inline(always)]
    unsafe fn v_sums(acc: &[__m512; 16]) -> __m512 {
        let t: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (acc[2 * i], acc[2 * i + 1]);
            _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
        });
        let u: [__m512; 4] = std::array::from_fn(|i| {
            // Pairs of lanes moved as one 64-bit lane, added as two f32 lanes.
            let (x, y) = (_mm512_castps_pd(t[2 * i]), _mm512_castps_pd(t[2 * i + 1]));
            _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)),
            )
        });
        let groups = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(x, y),
                _mm512_shuffle_f32x4::<0xDD>(x, y),
            )
        };
        groups(groups(u[0], u[1]), groups(u[2], u[3]))
    }

    /// `tanh_f32`'s rational function, with fused multiply-adds in the Horner steps.
    #[inline(always)]
    unsafe fn v_tanh(x: __m512) -> __m512 {
        let (a, b) = (TANH32_P, TANH32_Q);
        // max/min return their second operand when one is NaN: NaN goes through.
        let x = _mm512_min_ps(
            _mm512_set1_ps(TANH32_CLAMP),
            _mm512_max_ps(_mm512_set1_ps(-TANH32_CLAMP), x),
        );
        let x2 = _mm512_mul_ps(x, x);
        let horner = |acc: __m512, c: f32| _mm512_fmadd_ps(x2, acc, _mm512_set1_ps(c));
        let p = horner(_mm512_set1_ps(a[6]), a[5]);
        let p = horner(p, a[4]);
        let p = horner(p, a[3]);
        let p = horner(p, a[2]);
        let p = horner(p, a[1]);
        let p = _mm512_mul_ps(x, horner(p, a[0]));
        let q = horner(_mm512_set1_ps(b[3]), b[2]);
        let q = horner(q, b[1]);
        let q = horner(q, b[0]);
        _mm512_div_ps(p, q)
    }

    #[inline(always)]
    unsafe fn v_tanh_sech2(x: __m512) -> (__m512, __m512) {
        let y = Self::v_tanh(x);
        (y, _mm512_fnmadd_ps(y, y, _mm512_set1_ps(1.0)))
    }
}

/// `(num, den, e)` of `tanh_parts` in real.rs, operation for operation.
#[inline(always)]
unsafe fn tanh_parts_f64(x: __m512d) -> (__m512d, __m512d, __m512d) {
    let ax = _mm512_min_pd(
        _mm512_set1_pd(TANH64_CLAMP),
        _mm512_max_pd(_mm512_setzero_pd(), _mm512_abs_pd(x)),
    );
    let y = _mm512_mul_pd(_mm512_set1_pd(-2.0), ax);
    // exp_reduce(y)
    let shift = _mm512_set1_pd(EXP_SHIFT);
    let shifted = _mm512_add_pd(
        _mm512_mul_pd(y, _mm512_set1_pd(std::f64::consts::LOG2_E)),
        shift,
    );
    let k = _mm512_sub_epi64(
        _mm512_castpd_si512(shifted),
        _mm512_set1_epi64(EXP_SHIFT.to_bits() as i64),
    );
    let kd = _mm512_sub_pd(shifted, shift);
    let r = _mm512_fnmadd_pd(
        kd,
        _mm512_set1_pd(LN2_LO),
        _mm512_fnmadd_pd(kd, _mm512_set1_pd(LN2_HI), y),
    );
    let mut q = _mm512_set1_pd(EXP_C[11]);
    for &c in EXP_C[..11].iter().rev() {
        q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(c));
    }
    let p = _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r);
    let k1 = _mm512_srai_epi64::<1>(k);
    let k2 = _mm512_sub_epi64(k, k1);
    let pow2 = |k: __m512i| {
        _mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_add_epi64(
            k,
            _mm512_set1_epi64(1023),
        )))
    };
    let (s1, s2) = (pow2(k1), pow2(k2));
    // tanh_parts
    let one = _mm512_set1_pd(1.0);
    let s = _mm512_mul_pd(s1, s2);
    let sp = _mm512_mul_pd(s, p);
    let num = _mm512_sub_pd(_mm512_sub_pd(one, s), sp);
    let den = _mm512_add_pd(_mm512_add_pd(one, s), sp);
    (num, den, _mm512_mul_pd(s1, _mm512_fmadd_pd(s2, p, s2)))
}

/// `|m|` with the sign of `x`.
#[inline(always)]
unsafe fn copysign_f64(m: __m512d, x: __m512d) -> __m512d {
    let sign = _mm512_set1_epi64(i64::MIN);
    // 0xCA: bitwise `sign ? x : m`.
    _mm512_castsi512_pd(_mm512_ternarylogic_epi64::<0xCA>(
        sign,
        _mm512_castpd_si512(x),
        _mm512_castpd_si512(m),
    ))
}

impl Lanes for f64 {
    type V = __m512d;
    type M = __mmask8;
    const L: usize = 8;

    #[inline(always)]
    fn mask(n: usize) -> __mmask8 {
        if n >= 8 {
            !0
        } else {
            (1u8 << n) - 1
        }
    }
    #[inline(always)]
    unsafe fn v_zero() -> __m512d {
        _mm512_setzero_pd()
    }
    #[inline(always)]
    unsafe fn v_splat(x: f64) -> __m512d {
        _mm512_set1_pd(x)
    }
    #[inline(always)]
    unsafe fn v_load(p: *const f64, m: __mmask8) -> __m512d {
        _mm512_maskz_loadu_pd(m, p)
    }
    #[inline(always)]
    unsafe fn v_store(p: *mut f64, v: __m512d, m: __mmask8) {
        _mm512_mask_storeu_pd(p, m, v)
    }
    #[inline(always)]
    unsafe fn v_add(a: __m512d, b: __m512d) -> __m512d {
        _mm512_add_pd(a, b)
    }
    #[inline(always)]
    unsafe fn v_mul(a: __m512d, b: __m512d) -> __m512d {
        _mm512_mul_pd(a, b)
    }
    #[inline(always)]
    unsafe fn v_fma(a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        _mm512_fmadd_pd(a, b, c)
    }

    /// As the f32 tree, one level fewer.
    #[inline(always)]
    unsafe fn v_sums(acc: &[__m512d; 16]) -> __m512d {
        let t: [__m512d; 4] = std::array::from_fn(|i| {
            let (a, b) = (acc[2 * i], acc[2 * i + 1]);
            _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b))
        });
        let groups = |x: __m512d, y: __m512d| {
            _mm512_add_pd(
                _mm512_shuffle_f64x2::<0x88>(x, y),
                _mm512_shuffle_f64x2::<0xDD>(x, y),
            )
        };
        groups(groups(t[0], t[1]), groups(t[2], t[3]))
    }

    #[inline(always)]
    unsafe fn v_tanh(x: __m512d) -> __m512d {
        let (num, den, _) = tanh_parts_f64(x);
        copysign_f64(_mm512_div_pd(num, den), x)
    }

    #[inline(always)]
    unsafe fn v_tanh_sech2(x: __m512d) -> (__m512d, __m512d) {
        let (num, den, e) = tanh_parts_f64(x);
        let y = copysign_f64(_mm512_div_pd(num, den), x);
        let d1 = _mm512_div_pd(
            _mm512_mul_pd(_mm512_set1_pd(4.0), e),
            _mm512_mul_pd(den, den),
        );
        (y, d1)
    }
}

/// Runs `job` on the AVX-512 kernel; false (nothing done) without AVX-512F and FMA, for an activation
/// other than tanh, a `B` with a column stride other than 1, or buffers too short for the
/// shapes (the caller's fallback then decides).
pub(crate) fn run<T: Lanes>(job: &mut GemmJob<'_, T>) -> bool {
    if !super::simd_enabled() {
        return false;
    }
    let Some(plan) = plan(job) else {
        return false;
    };
    let (m, k, n) = (job.m, job.k, job.n);
    if m == 0 || n == 0 {
        return true;
    }
    let (a, rsa, csa) = job.a;
    let (b, rsb, csb) = job.b;
    let ldb = if plan == Plan::Dot { csb } else { rsb };
    let g = Gemm {
        m,
        k,
        n,
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        ldb,
    };
    let c = job.c.as_mut_ptr();
    // SAFETY: AVX-512F and FMA are available (checked above) and `fits` checked that every strided read
    // of A and B, every write of C and every read or write of the epilogue's buffers stays
    // inside its slice; C and the epilogue's outputs are unique borrows, so nothing written
    // aliases anything read.
    unsafe {
        match &mut job.epilogue {
            Epilogue::Store { bias } if plan == Plan::Dot => g.run_dot(&Store {
                c,
                n,
                bias: bias.map_or(std::ptr::null(), <[T]>::as_ptr),
                accumulate: false,
            }),
            Epilogue::Accumulate if plan == Plan::Dot => g.run_dot(&Store {
                c,
                n,
                bias: std::ptr::null(),
                accumulate: true,
            }),
            Epilogue::Store { bias } => g.run(&Store {
                c,
                n,
                bias: bias.map_or(std::ptr::null(), <[T]>::as_ptr),
                accumulate: false,
            }),
            Epilogue::Accumulate => g.run(&Store {
                c,
                n,
                bias: std::ptr::null(),
                accumulate: true,
            }),
            Epilogue::Activate {
                bias, derivatives, ..
            } => {
                let (ds, d2s) = match derivatives {
                    None => (std::ptr::null_mut(), std::ptr::null_mut()),
                    Some(Derivatives { ds, d2s }) => (
                        ds.as_mut_ptr(),
                        d2s.as_mut()
                            .map_or(std::ptr::null_mut(), |d| d.as_mut_ptr()),
                    ),
                };
                g.run(&Tanh {
                    c,
                    n,
                    bias: bias.as_ptr(),
                    ds,
                    d2s,
                })
            }
            Epilogue::Scale { scale, group, raw } => g.run(&Scale {
                c,
                n,
                scale: scale.as_ptr(),
                group: *group,
                raw: raw
                    .as_mut()
                    .map_or(std::ptr::null_mut(), |r| r.as_mut_ptr()),
            }),
        }
    }
    true
}

/// Number of elements a strided `rows x cols` matrix reaches into its buffer.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

/// Which kernel runs a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Tiles of `C` from broadcasts of `A` against rows of `B` (`B` row-major).
    Broadcast,
    /// Dot products of rows of `A` with columns of `B` (both contiguous), for `C` at most `L / 2`
    /// columns wide, where a tile of whole vectors would be mostly padding (`Store` and
    /// `Accumulate` only).
    Dot,
}

/// The kernel for `job`, if one handles it and every buffer is long enough for it.
fn plan<T: Lanes>(job: &GemmJob<'_, T>) -> Option<Plan> {
    let (m, k, n) = (job.m, job.k, job.n);
    let within = |len: usize, need: Option<usize>| need.is_some_and(|need| need <= len);
    let mn = m.checked_mul(n)?;
    let (a, rsa, csa) = job.a;
    let (b, rsb, csb) = job.b;
    let plain = matches!(job.epilogue, Epilogue::Store { .. } | Epilogue::Accumulate);
    if k == 0 {
        return None;
    }
    let plan = if plain && narrow::<T>(n) && (csa == 1 || k <= 1) && (rsb == 1 || k <= 1) {
        Plan::Dot
    } else if csb == 1 || n <= 1 {
        Plan::Broadcast
    } else {
        return None;
    };
    let shapes = within(a.len(), extent(m, k, rsa, csa))
        && within(b.len(), extent(k, n, rsb, csb))
        && job.c.len() >= mn;
    let fits = shapes
        && match &job.epilogue {
            Epilogue::Store { bias } => bias.is_none_or(|b| b.len() >= n),
            Epilogue::Accumulate => true,
            Epilogue::Activate {
                act,
                bias,
                derivatives,
            } => {
                *act == Activation::Tanh
                    && bias.len() >= n
                    && derivatives.as_ref().is_none_or(|d| {
                        d.ds.len() >= mn && d.d2s.as_ref().is_none_or(|d2| d2.len() >= mn)
                    })
            }
            Epilogue::Scale { scale, group, raw } => {
                *group > 0
                    && (m == 0 || within(scale.len(), ((m - 1) / group + 1).checked_mul(n)))
                    && raw.as_ref().is_none_or(|r| r.len() >= mn)
            }
        };
    fits.then_some(plan)
}

/// The operands of one product, as pointers checked by [`fits`].
struct Gemm<T> {
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    rsa: usize,
    csa: usize,
    b: *const T,
    ldb: usize,
}

/// What happens to a finished tile. `acc[r][v]` holds `C[i0 + r, j0 + v L ..]` for `r < rows`;
/// `last` masks the valid lanes of vector `NV - 1`.
trait Finish<T: Lanes> {
    /// # Safety
    /// The tile must lie inside the shapes [`fits`] checked, on an AVX-512F CPU.
    unsafe fn tile<const NV: usize>(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        acc: &[[T::V; NV]; MR],
        last: T::M,
    );
}

impl<T: Lanes> Gemm<T> {
    /// Every tile of `C`: row blocks outside, column panels inside (the rows of `A` a tile
    /// reads stay in L1 across the panels).
    ///
    /// # Safety
    /// AVX-512F must be available and the pointers valid for the shapes ([`fits`]).
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn run<E: Finish<T>>(&self, ep: &E) {
        let panel = NV_MAX * T::L;
        for i0 in (0..self.m).step_by(MR) {
            for j0 in (0..self.n).step_by(panel) {
                let cols = (self.n - j0).min(panel);
                // SAFETY: the tile lies inside the checked shapes (forwarded contract).
                unsafe {
                    match cols.div_ceil(T::L) {
                        1 => self.tile::<E, 1>(ep, i0, j0, cols),
                        2 => self.tile::<E, 2>(ep, i0, j0, cols),
                        3 => self.tile::<E, 3>(ep, i0, j0, cols),
                        _ => self.tile::<E, NV_MAX>(ep, i0, j0, cols),
                    }
                }
            }
        }
    }

    /// One `MR x cols` tile at `(i0, j0)`, `cols <= NV L`.
    ///
    /// # Safety
    /// As [`Gemm::run`].
    #[inline(always)]
    unsafe fn tile<E: Finish<T>, const NV: usize>(
        &self,
        ep: &E,
        i0: usize,
        j0: usize,
        cols: usize,
    ) {
        let full = T::mask(T::L);
        let last = T::mask(cols - (NV - 1) * T::L);
        let rows = (self.m - i0).min(MR);
        // SAFETY (all pointer arithmetic below): rows are clamped to m - 1, p < k, and the
        // column offsets of B stay below j0 + cols <= n with the last vector masked.
        unsafe {
            let a: [*const T; MR] =
                std::array::from_fn(|r| self.a.add((i0 + r).min(self.m - 1) * self.rsa));
            let row_of_b = |p: usize| -> [T::V; NV] {
                let b = self.b.add(p * self.ldb + j0);
                std::array::from_fn(|v| {
                    T::v_load(b.add(v * T::L), if v + 1 == NV { last } else { full })
                })
            };
            // The first product initialises the accumulators (k >= 1, see `plan`): a zeroed
            // array would be written to the stack by a memset on every tile.
            let bv = row_of_b(0);
            let mut acc: [[T::V; NV]; MR] = std::array::from_fn(|r| {
                let x = T::v_splat(*a[r]);
                std::array::from_fn(|v| T::v_mul(x, bv[v]))
            });
            for p in 1..self.k {
                let bv = row_of_b(p);
                for r in 0..MR {
                    let x = T::v_splat(*a[r].add(p * self.csa));
                    for v in 0..NV {
                        acc[r][v] = T::v_fma(x, bv[v], acc[r][v]);
                    }
                }
            }
            ep.tile::<NV>(i0, rows, j0, &acc, last);
        }
    }
}

impl<T: Lanes> Gemm<T> {
    /// The narrow product: `R = L / n` rows of `C` at a time are `R n <= L` dot products, each
    /// accumulated along `k` in `L` lanes, then summed across lanes into one vector, which is
    /// those rows of `C` (contiguous). `ldb` is the column stride of `B`.
    ///
    /// # Safety
    /// AVX-512F must be available and the pointers valid for the shapes ([`plan`]: rows of `A`
    /// and columns of `B` contiguous, `1 <= n <= L / 2`, `k >= 1`).
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn run_dot(&self, st: &Store<T>) {
        // SAFETY: forwarded contract.
        unsafe {
            match self.n {
                1 => self.dot::<1>(st),
                2 => self.dot::<2>(st),
                3 => self.dot::<3>(st),
                4 => self.dot::<4>(st),
                5 => self.dot::<5>(st),
                6 => self.dot::<6>(st),
                7 => self.dot::<7>(st),
                _ => self.dot::<8>(st),
            }
        }
    }

    /// [`Gemm::run_dot`] for `n = N`.
    ///
    /// # Safety
    /// As [`Gemm::run_dot`].
    #[inline(always)]
    unsafe fn dot<const N: usize>(&self, st: &Store<T>) {
        let per = T::L / N;
        // SAFETY (all pointer arithmetic below): rows are clamped to the block's last row
        // (< m), p0 < k with the lanes past k masked, and columns j < n.
        unsafe {
            // The bias of lane t = r N + j is bias[j].
            let mut pattern = [T::zero(); 16];
            if !st.bias.is_null() {
                for (t, x) in pattern.iter_mut().enumerate().take(per * N) {
                    *x = *st.bias.add(t % N);
                }
            }
            let bias = T::v_load(pattern.as_ptr(), T::mask(per * N));
            for i0 in (0..self.m).step_by(per) {
                let rows = (self.m - i0).min(per);
                let a: [*const T; 16] =
                    std::array::from_fn(|r| self.a.add((i0 + r.min(rows - 1)) * self.rsa));
                let mut acc = [T::v_zero(); 16];
                for p0 in (0..self.k).step_by(T::L) {
                    let mask = T::mask(self.k - p0);
                    let bv: [T::V; N] =
                        std::array::from_fn(|j| T::v_load(self.b.add(j * self.ldb + p0), mask));
                    for r in 0..per {
                        let x = T::v_load(a[r].add(p0), mask);
                        for j in 0..N {
                            acc[r * N + j] = T::v_fma(x, bv[j], acc[r * N + j]);
                        }
                    }
                }
                let sums = T::v_sums(&acc);
                let mask = T::mask(rows * N);
                let c = st.c.add(i0 * N);
                let x = if st.accumulate {
                    T::v_add(T::v_load(c, mask), sums)
                } else if st.bias.is_null() {
                    sums
                } else {
                    T::v_add(sums, bias)
                };
                T::v_store(c, x, mask);
            }
        }
    }
}

/// Lane mask of vector `v` of `NV`.
#[inline(always)]
fn lane_mask<T: Lanes, const NV: usize>(v: usize, last: T::M) -> T::M {
    if v + 1 == NV {
        last
    } else {
        T::mask(T::L)
    }
}

/// `C = x (+ bias)`, or `C += x`.
struct Store<T> {
    c: *mut T,
    n: usize,
    bias: *const T,
    accumulate: bool,
}

impl<T: Lanes> Finish<T> for Store<T> {
    #[inline(always)]
    unsafe fn tile<const NV: usize>(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        acc: &[[T::V; NV]; MR],
        last: T::M,
    ) {
        // SAFETY: inside the checked shapes (trait contract); the masks keep to column n.
        unsafe {
            for v in 0..NV {
                let mask = lane_mask::<T, NV>(v, last);
                let j = j0 + v * T::L;
                let bias = (!self.bias.is_null()).then(|| T::v_load(self.bias.add(j), mask));
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let c = self.c.add((i0 + r) * self.n + j);
                    let x = match bias {
                        Some(b) => T::v_add(acc[v], b),
                        None if self.accumulate => T::v_add(T::v_load(c, mask), acc[v]),
                        None => acc[v],
                    };
                    T::v_store(c, x, mask);
                }
            }
        }
    }
}

/// `C = tanh(x + bias)`, `ds = s'`, `d2s = s''` (null pointers: not asked for).
struct Tanh<T> {
    c: *mut T,
    n: usize,
    bias: *const T,
    ds: *mut T,
    d2s: *mut T,
}

impl<T: Lanes> Finish<T> for Tanh<T> {
    #[inline(always)]
    unsafe fn tile<const NV: usize>(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        acc: &[[T::V; NV]; MR],
        last: T::M,
    ) {
        // SAFETY: inside the checked shapes (trait contract); the masks keep to column n.
        unsafe {
            for v in 0..NV {
                let mask = lane_mask::<T, NV>(v, last);
                let j = j0 + v * T::L;
                let bias = T::v_load(self.bias.add(j), mask);
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let at = (i0 + r) * self.n + j;
                    let x = T::v_add(acc[v], bias);
                    if self.ds.is_null() {
                        T::v_store(self.c.add(at), T::v_tanh(x), mask);
                        continue;
                    }
                    let (y, d1) = T::v_tanh_sech2(x);
                    T::v_store(self.c.add(at), y, mask);
                    T::v_store(self.ds.add(at), d1, mask);
                    if !self.d2s.is_null() {
                        // s'' = -(s' + s') y
                        let minus_two = T::v_splat(-(T::one() + T::one()));
                        T::v_store(self.d2s.add(at), T::v_mul(T::v_mul(d1, minus_two), y), mask);
                    }
                }
            }
        }
    }
}

/// `C = x * scale[i / group]`, `raw = x` (null: not asked for).
struct Scale<T> {
    c: *mut T,
    n: usize,
    scale: *const T,
    group: usize,
    raw: *mut T,
}

impl<T: Lanes> Finish<T> for Scale<T> {
    #[inline(always)]
    unsafe fn tile<const NV: usize>(
        &self,
        i0: usize,
        rows: usize,
        j0: usize,
        acc: &[[T::V; NV]; MR],
        last: T::M,
    ) {
        // Point and tangent index of row i0, then counted along the tile (one division).
        let (mut point, mut p) = (i0 / self.group, i0 % self.group);
        // SAFETY: inside the checked shapes (trait contract): point <= (m - 1) / group, and the
        // masks keep to column n.
        unsafe {
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let at = (i0 + r) * self.n + j0;
                let scale = self.scale.add(point * self.n + j0);
                for (v, &x) in acc.iter().enumerate() {
                    let mask = lane_mask::<T, NV>(v, last);
                    let s = T::v_load(scale.add(v * T::L), mask);
                    T::v_store(self.c.add(at + v * T::L), T::v_mul(x, s), mask);
                    if !self.raw.is_null() {
                        T::v_store(self.raw.add(at + v * T::L), x, mask);
                    }
                }
                p += 1;
                if p == self.group {
                    p = 0;
                    point += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(tanh, tanh, sech^2)` of the kernel's lanes at every `x`: the value-only function, then
    /// the pair (None without AVX-512F).
    fn lanes<T: Lanes>(xs: &[T]) -> Option<Vec<(T, T, T)>> {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let mut out = Vec::with_capacity(xs.len());
        for chunk in xs.chunks(T::L) {
            let m = T::mask(chunk.len());
            let (mut y0, mut y, mut d1) = (
                vec![T::zero(); T::L],
                vec![T::zero(); T::L],
                vec![T::zero(); T::L],
            );
            // SAFETY: AVX-512F is available (checked above); the mask keeps the loads inside
            // `chunk` and the stores inside the L-long buffers.
            unsafe {
                let x = T::v_load(chunk.as_ptr(), m);
                T::v_store(y0.as_mut_ptr(), T::v_tanh(x), m);
                let (a, b) = T::v_tanh_sech2(x);
                T::v_store(y.as_mut_ptr(), a, m);
                T::v_store(d1.as_mut_ptr(), b, m);
            }
            out.extend((0..chunk.len()).map(|i| (y0[i], y[i], d1[i])));
        }
        Some(out)
    }

    /// Distance in ulps of `f64`s (NaN matches only NaN).
    fn ulps(a: f64, b: f64) -> u64 {
        let ordinal = |x: f64| {
            let b = x.to_bits() as i64;
            if b < 0 {
                i64::MIN - b
            } else {
                b
            }
        };
        match (a.is_nan(), b.is_nan()) {
            (true, true) => 0,
            (false, false) => (ordinal(a) - ordinal(b)).unsigned_abs(),
            _ => u64::MAX,
        }
    }

    /// f32: within 4 ulp of `tanh_fast` (the same rational function, Horner steps fused: near
    /// the clamp, where tanh is 1 - 1e-7, the two roundings differ by up to 4 ulp) and, like
    /// it, < 4 ulp relative from tanh (measured: 2.6, the scalar 3.3); `s'` within 8 eps of
    /// `sech^2` (measured: 5.1, the scalar's `1 - y^2` 6.7).
    #[test]
    fn tanh_f32_lanes_match_the_scalar_path() {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
        xs.extend([
            1e-30,
            -3e-8,
            7.9,
            7.905_311,
            7.92,
            9.0,
            -50.0,
            f32::MAX,
            f32::MIN,
        ]);
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -0.0]);
        let Some(got) = lanes(&xs) else { return };
        let eps = f32::EPSILON as f64;
        for (&x, &(y0, y, d1)) in xs.iter().zip(&got) {
            assert_eq!(y0.to_bits(), y.to_bits(), "x = {x}");
            let ys = x.tanh_fast();
            if x.is_nan() {
                assert!(y.is_nan() && d1.is_nan());
                continue;
            }
            let ulp = (ys.abs().max(f32::MIN_POSITIVE) as f64) * eps;
            assert!(
                (y as f64 - ys as f64).abs() <= 4.0 * ulp,
                "x = {x}: {y} vs {ys}"
            );
            let exact = (x as f64).tanh();
            assert!(
                (y as f64 - exact).abs() <= 4.0 * eps * exact.abs(),
                "x = {x}: {y} vs {exact}"
            );
            let sech2 = 1.0 - exact * exact;
            assert!(
                (d1 as f64 - sech2).abs() <= 8.0 * eps,
                "x = {x}: {d1} vs {sech2}"
            );
        }
    }

    /// f64: the scalar path operation for operation (bit-identical where the build has FMA;
    /// within 2 ulp otherwise), so within its tested bounds from glibc.
    #[test]
    fn tanh_f64_lanes_match_the_scalar_path() {
        let mut xs: Vec<f64> = (-400_000..=400_000).map(|i| i as f64 * 5e-5).collect();
        xs.extend([
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            19.06,
            354.0,
            372.6,
            699.0,
            700.0,
        ]);
        xs.extend([701.0, 1e300, f64::MAX, f64::INFINITY, f64::NAN, -0.0]);
        let negatives: Vec<f64> = xs.iter().map(|x| -x).collect();
        xs.extend(negatives);
        let Some(got) = lanes(&xs) else { return };
        let bound = if cfg!(target_feature = "fma") { 0 } else { 2 };
        for (&x, &(y0, y, d1)) in xs.iter().zip(&got) {
            assert_eq!(y0.to_bits(), y.to_bits(), "x = {x}");
            let (ys, d1s) = x.tanh_sech2_fast();
            assert!(ulps(y, ys) <= bound, "x = {x}: {y} vs {ys}");
            assert!(ulps(d1, d1s) <= bound, "x = {x}: {d1} vs {d1s}");
            assert!(x.is_nan() || ulps(y, x.tanh()) <= 3, "x = {x}");
        }
    }
}
