//! The AVX-512 kernel against the oracle (`gemm` crate + separate elementwise pass) over random
//! shapes, strides, values and every epilogue.

use super::*;
use num_traits::ToPrimitive;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The epilogues tested, by number.
const CASES: usize = 9;

fn random<T: Real>(rng: &mut StdRng, len: usize, r: f64) -> Vec<T> {
    (0..len)
        .map(|_| cnf_ode::cast::<T>(rng.random_range(-r..r)))
        .collect()
}

fn f(x: impl ToPrimitive) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// The buffers of one random problem and the outputs of one run on them.
#[derive(Clone)]
struct Case<T> {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<T>,
    rsa: usize,
    csa: usize,
    b: Vec<T>,
    rsb: usize,
    csb: usize,
    bias: Vec<T>,
    scale: Vec<T>,
    group: usize,
    c: Vec<T>,
    ds: Vec<T>,
    d2s: Vec<T>,
    raw: Vec<T>,
}

impl<T: Real> Case<T> {
    fn new(m: usize, k: usize, n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        // A row-major or transposed (column-major), B with padded rows.
        let (rsa, csa) = if rng.random_bool(0.5) {
            (k + rng.random_range(0..3), 1)
        } else {
            (1, m + rng.random_range(0..3))
        };
        // B row-major (the broadcast kernel's layout) or column-major (the narrow kernel's).
        let (rsb, csb) = if rng.random_bool(0.5) {
            (n + rng.random_range(0..3), 1)
        } else {
            (1, k + rng.random_range(0..3))
        };
        let group = rng.random_range(1..4);
        let a_len = (m - 1) * rsa + (k - 1) * csa + 1;
        let range = if rng.random_bool(0.3) { 8.0 } else { 1.0 };
        Self {
            m,
            k,
            n,
            a: random(&mut rng, a_len, range),
            rsa,
            csa,
            b: random(&mut rng, (k - 1) * rsb + (n - 1) * csb + 1, 1.0),
            rsb,
            csb,
            bias: random(&mut rng, n, 1.0),
            scale: random(&mut rng, m.div_ceil(group) * n, 2.0),
            group,
            c: random(&mut rng, m * n, 1.0),
            ds: vec![T::nan(); m * n],
            d2s: vec![T::nan(); m * n],
            raw: vec![T::nan(); m * n],
        }
    }

    /// Runs epilogue `case` on the kernel (`simd`) or the oracle; false when the kernel is
    /// not available.
    fn run(&mut self, case: usize, simd: bool) -> bool {
        let Self {
            m,
            k,
            n,
            a,
            rsa,
            csa,
            b,
            rsb,
            csb,
            bias,
            scale,
            group,
            c,
            ds,
            d2s,
            raw,
        } = self;
        let activate = |act, derivatives| Epilogue::Activate {
            act,
            bias,
            derivatives,
        };
        let epilogue = match case {
            0 => Epilogue::Store { bias: None },
            1 => Epilogue::Store { bias: Some(bias) },
            2 => Epilogue::Accumulate,
            3 => activate(Activation::Tanh, None),
            4 => activate(Activation::Tanh, Some(Derivatives { ds, d2s: None })),
            5 => activate(Activation::Tanh, Some(Derivatives { ds, d2s: Some(d2s) })),
            6 => Epilogue::Scale {
                scale,
                group: *group,
                raw: None,
            },
            7 => Epilogue::Scale {
                scale,
                group: *group,
                raw: Some(raw),
            },
            _ => activate(
                Activation::Softplus,
                Some(Derivatives { ds, d2s: Some(d2s) }),
            ),
        };
        let mut job = GemmJob {
            m: *m,
            k: *k,
            n: *n,
            a: (a, *rsa, *csa),
            b: (b, *rsb, *csb),
            c,
            epilogue,
        };
        if simd {
            T::simd_gemm(&mut job)
        } else {
            reference(job);
            true
        }
    }

    /// `sum_p |A[i, p] B[p, j]|`: the scale of the rounding error of entry `(i, j)`.
    fn magnitude(&self, i: usize, j: usize) -> f64 {
        (0..self.k)
            .map(|p| {
                f(self.a[i * self.rsa + p * self.csa]).abs()
                    * f(self.b[p * self.rsb + j * self.csb]).abs()
            })
            .sum()
    }
}

/// Kernel and oracle agree within the worst-case rounding of a `k`-term sum (both sides),
/// plus a few ulps of the activation; `s'`, `s''` are Lipschitz in the pre-activation.
fn check<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    case: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut fast = Case::<T>::new(m, k, n, seed);
    let mut oracle = fast.clone();
    // Broadcast kernel: B row-major; narrow kernel: Store/Accumulate into at most L / 2
    // columns, rows of A and columns of B contiguous. Tanh is the only fused activation.
    let narrow =
        case <= 2 && narrow::<T>(n) && (fast.csa == 1 || k == 1) && (fast.rsb == 1 || k == 1);
    let handled = case != 8 && (narrow || fast.csb == 1 || n == 1);
    let ran = fast.run(case, true);
    prop_assert_eq!(ran, handled && super::simd_enabled());
    if !ran {
        return Ok(());
    }
    oracle.run(case, false);
    let eps = f(T::epsilon());
    for i in 0..m {
        for j in 0..n {
            let at = i * n + j;
            let extra = match case {
                1 | 3..=5 => f(fast.bias[j]).abs(),
                2 => f(oracle.c[at]).abs(),
                _ => 0.0,
            };
            let tol = 2.0 * (k + 2) as f64 * eps * (fast.magnitude(i, j) + extra) + 16.0 * eps;
            let scale = if case >= 6 {
                f(fast.scale[(i / fast.group) * n + j]).abs()
            } else {
                1.0
            };
            let close = |x: &[T], y: &[T], tol: f64| (f(x[at]) - f(y[at])).abs() <= tol;
            prop_assert!(
                close(&fast.c, &oracle.c, tol * scale),
                "C[{i}, {j}]: {} vs {} (case {case}, tol {tol})",
                fast.c[at],
                oracle.c[at]
            );
            if case == 4 || case == 5 {
                prop_assert!(close(&fast.ds, &oracle.ds, 2.0 * tol), "ds[{i}, {j}]");
            }
            if case == 5 {
                prop_assert!(close(&fast.d2s, &oracle.d2s, 4.0 * tol), "d2s[{i}, {j}]");
            }
            if case == 7 {
                prop_assert!(close(&fast.raw, &oracle.raw, tol), "raw[{i}, {j}]");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kernel_matches_oracle_f32(
        m in 1usize..300, k in 1usize..130, n in prop_oneof![1usize..=8, 1usize..130],
        case in 0..CASES, seed in any::<u64>()
    ) {
        check::<f32>(m, k, n, case, seed)?;
    }

    #[test]
    fn kernel_matches_oracle_f64(
        m in 1usize..300, k in 1usize..130, n in prop_oneof![1usize..=8, 1usize..130],
        case in 0..CASES, seed in any::<u64>()
    ) {
        check::<f64>(m, k, n, case, seed)?;
    }
}

/// Buffers too short for the shapes are declined (the oracle's asserts then decide), never
/// read past.
#[test]
fn kernel_declines_short_buffers() {
    let mut case = Case::<f32>::new(7, 5, 20, 1);
    case.b.truncate(case.b.len() - 1);
    assert!(!case.run(0, true));
    let mut case = Case::<f32>::new(7, 5, 20, 2);
    case.scale.truncate(case.scale.len() - 1);
    assert!(!case.run(6, true));
}

/// `W^T` is repacked when a weight changes, even only its sign of zero, and not otherwise.
#[test]
fn packed_follows_the_weights() {
    let mut w = vec![1.0f32, 2.0, 3.0, 0.0, 5.0, 6.0];
    let mut p = PackedT::default();
    p.refresh(&w, 2, 3);
    let (wt, ld, _) = p.view();
    assert_eq!(
        (wt[0], wt[1], wt[ld], wt[ld + 1], wt[2 * ld + 1]),
        (1.0, 0.0, 2.0, 5.0, 6.0)
    );
    assert_eq!(wt.as_ptr() as usize % 64, 0);
    w[3] = -0.0;
    p.refresh(&w, 2, 3);
    let (wt, _, _) = p.view();
    assert!(wt[1].is_sign_negative());
    p.refresh(&w, 3, 2);
    let (wt, ld, _) = p.view();
    assert_eq!((wt[0], wt[1], wt[2], wt[ld]), (1.0, 3.0, 5.0, 2.0));
}
