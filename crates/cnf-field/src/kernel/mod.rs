//! GEMMs with their elementwise epilogue fused in: `C = op(A B)` where `op` adds a bias, applies
//! the activation (writing `s'` and `s''` on the way), scales by `s'` of the point a tangent row
//! belongs to, or accumulates into `C`, while the output tile is still in registers.
//!
//! `fused_gemm` runs the type's SIMD kernel ([`Real::simd_gemm`], AVX-512 for f32 and f64 when
//! the CPU has it) and otherwise `reference`: the `gemm` crate followed by the same epilogue
//! as a separate pass (the fallback, and the oracle the kernel is tested against).

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

use crate::mlp::Activation;
use crate::real::Real;

/// `C (m x n, row-major, contiguous) = epilogue(A (m x k) B (k x n))`, `A` and `B` given by a
/// buffer plus row and column strides.
pub struct GemmJob<'a, T> {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// `(buffer, row stride, column stride)` of `A`.
    pub a: (&'a [T], usize, usize),
    /// `(buffer, row stride, column stride)` of `B`.
    pub b: (&'a [T], usize, usize),
    /// `C`, `m * n` values.
    pub c: &'a mut [T],
    /// What happens to `A B` on its way into `C`.
    pub epilogue: Epilogue<'a, T>,
}

/// `s'` (and optionally `s''`) of an activation, laid out like `C`.
pub struct Derivatives<'a, T> {
    /// `s'(a)`.
    pub ds: &'a mut [T],
    /// `s''(a)`, when asked for.
    pub d2s: Option<&'a mut [T]>,
}

/// The elementwise step applied to each entry `x = (A B)[i, j]`.
pub enum Epilogue<'a, T> {
    /// `C = x (+ bias[j])`.
    Store {
        /// Added to every row.
        bias: Option<&'a [T]>,
    },
    /// `C += x`.
    Accumulate,
    /// `C = s(x + bias[j])`, with the derivatives at `x + bias[j]` when given.
    Activate {
        /// The nonlinearity `s`.
        act: Activation,
        /// Added to every row before `s`.
        bias: &'a [T],
        /// `s'` and `s''`.
        derivatives: Option<Derivatives<'a, T>>,
    },
    /// `C = x * scale[i / group, j]`, with `raw = x` when given: a tangent row of point
    /// `i / group` scaled by that point's `s'`.
    Scale {
        /// `(ceil(m / group), n)` row-major.
        scale: &'a [T],
        /// Rows of `C` per row of `scale`.
        group: usize,
        /// `x` itself, laid out like `C`.
        raw: Option<&'a mut [T]>,
    },
}

/// The environment variable that chooses the GEMM path: `CNF_KERNEL=generic` runs every
/// product on [`reference`] even where the CPU has AVX-512, so that both paths can be compared
/// on one machine (any other value, or none, lets the CPU decide). Read once per process.
pub const KERNEL_ENV: &str = "CNF_KERNEL";

/// Whether products run on the AVX-512 kernel in this process: the CPU has AVX-512F and FMA
/// (every AVX-512F CPU has FMA; a VM could mask it) and [`KERNEL_ENV`] does not ask for the
/// generic path. Decided once.
pub fn simd_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let cpu = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let cpu = false;
        cpu && std::env::var_os(KERNEL_ENV).is_none_or(|v| v != "generic")
    })
}

/// The GEMM path of this process: `"avx512"` or `"generic"` (see [`simd_enabled`]).
pub fn active() -> &'static str {
    if simd_enabled() {
        "avx512"
    } else {
        "generic"
    }
}

/// Runs `job` on the SIMD kernel when `simd` and the type and CPU have one, else on
/// [`reference`].
pub(crate) fn fused_gemm<T: Real>(mut job: GemmJob<'_, T>, simd: bool) {
    if !(simd && T::simd_gemm(&mut job)) {
        reference(job);
    }
}

/// Whether a product into `n` columns runs best as dot products (rows of `A` against columns of
/// `B`, so `B` column-major): at most half a vector wide, where the broadcast kernel's tiles
/// would be mostly padding.
pub(crate) fn narrow<T>(n: usize) -> bool {
    n <= 32 / std::mem::size_of::<T>()
}

/// The `gemm` crate's product, then the epilogue as a separate pass over `C`.
///
/// # Panics
/// If a buffer is too short for the shapes (the callers size them from the same shapes).
pub(crate) fn reference<T: Real>(job: GemmJob<'_, T>) {
    let GemmJob {
        m,
        k,
        n,
        a,
        b,
        c,
        epilogue,
    } = job;
    let c = &mut c[..m * n];
    let gemm = |beta: T, c: &mut [T]| T::gemm(m, k, n, T::one(), a, b, beta, (c, n, 1));
    match epilogue {
        Epilogue::Store { bias: None } => gemm(T::zero(), c),
        Epilogue::Store { bias: Some(bias) } => {
            if n > 0 {
                for row in c.chunks_exact_mut(n) {
                    row.copy_from_slice(&bias[..n]);
                }
            }
            gemm(T::one(), c);
        }
        Epilogue::Accumulate => gemm(T::one(), c),
        Epilogue::Activate {
            act,
            bias,
            derivatives,
        } => {
            gemm(T::zero(), c);
            match derivatives {
                None => act.apply_value_bias(c, &bias[..n]),
                Some(Derivatives { ds, d2s }) => {
                    let d2s = d2s.map(|d| &mut d[..m * n]);
                    act.apply_bias(c, &bias[..n], &mut ds[..m * n], d2s)
                }
            }
        }
        Epilogue::Scale { scale, group, raw } => {
            let x = match raw {
                Some(raw) => {
                    let raw = &mut raw[..m * n];
                    gemm(T::zero(), raw);
                    c.copy_from_slice(raw);
                    c
                }
                None => {
                    gemm(T::zero(), c);
                    c
                }
            };
            if n > 0 && group > 0 {
                for (rows, s) in x.chunks_mut(group * n).zip(scale.chunks_exact(n)) {
                    for row in rows.chunks_exact_mut(n) {
                        for (v, &g) in row.iter_mut().zip(s) {
                            *v = *v * g;
                        }
                    }
                }
            }
        }
    }
}

/// `W^T` of a layer's `W (n x k)`, row-major `(k, n)` with rows padded to whole 64-byte lines and
/// starting on one (the kernel's `B`); rebuilt only when `W` changes (compared bit for bit).
#[derive(Clone, Debug, Default)]
pub struct PackedT<T> {
    src: Vec<T>,
    shape: (usize, usize),
    buf: Vec<T>,
    off: usize,
    ld: usize,
}

impl<T: Real> PackedT<T> {
    /// Packs `W (n x k)` unless it is the one packed last.
    pub fn refresh(&mut self, w: &[T], n: usize, k: usize) {
        let w = &w[..n * k];
        if self.shape != (n, k) || !same_bits(&self.src, w) {
            self.src.clear();
            self.src.extend_from_slice(w);
            self.shape = (n, k);
            let line = (64 / std::mem::size_of::<T>()).max(1);
            self.ld = n.div_ceil(line) * line;
            self.buf.clear();
            self.buf.resize(k * self.ld + line, T::zero());
            let addr = self.buf.as_ptr() as usize;
            self.off = (addr.next_multiple_of(64) - addr) / std::mem::size_of::<T>();
            let wt = &mut self.buf[self.off..];
            for (j, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
                for (kk, &x) in row.iter().enumerate() {
                    wt[kk * self.ld + j] = x;
                }
            }
        }
    }

    /// `(buffer, row stride, column stride)` of the packed `W^T`.
    pub fn view(&self) -> (&[T], usize, usize) {
        (&self.buf[self.off..], self.ld, 1)
    }
}

/// A buffer whose contents start on a 64-byte boundary, so the kernel's vector loads and
/// stores of rows that are whole cache lines do not split lines. Grown on demand, never shrunk;
/// growing does not keep the contents.
#[derive(Clone, Debug, Default)]
pub struct AlignedBuf<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Real> AlignedBuf<T> {
    /// Makes room for at least `len` values (zeros when it grows).
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            let line = (64 / std::mem::size_of::<T>()).max(1);
            self.buf = vec![T::zero(); len + line];
            let addr = self.buf.as_ptr() as usize;
            self.off = ((addr.next_multiple_of(64) - addr) / std::mem::size_of::<T>()).min(line);
            self.len = len;
        }
    }
}

impl<T> std::ops::Deref for AlignedBuf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl<T> std::ops::DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// The same bits everywhere (so `-0` differs from `0`), compared as integers in blocks without
/// early exits within a block, so the comparison runs on vectors.
pub(crate) fn same_bits<T: Real>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.chunks(64).zip(b.chunks(64)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(0u64, |diff, (&p, &q)| diff | (p.bits() ^ q.bits()))
                == 0
        })
}

#[cfg(test)]
mod tests;
