//! Error bounds of the fast path's activations, in ulps, against the C library (glibc).
//!
//! f64 `tanh` (branch-free, vectorised, from a table-free `exp`) is swept over a dense grid of
//! [-20, 20], random points (uniform on [-40, 40] and log-uniform magnitudes from 1e-310 to
//! 1e4, both signs) and special values (0, -0, subnormals, the reduction's breakpoints, the
//! under-/overflow edges of sech^2, huge values, infinities), and compared with glibc:
//! `tanh` against `f64::tanh`, `s' = sech^2` against `(1 / cosh x)^2` and `s'' = -2 tanh sech^2`
//! against the same product of the references. The bounds asserted are in ulps of the
//! reference (the references themselves carry glibc's error: about 1 ulp for `tanh`, a few for
//! the products). The vectorised loops (`Activation::apply`, `apply_value`) must give the
//! scalar functions' values bit for bit, and NaN in must give NaN out.

use cnf_field::{Activation, Real};

/// Max ulps of the f64 `tanh` from glibc's `tanh`.
const TANH_ULPS: u64 = 3;
/// Max ulps of `s'(x) = sech^2 x` from `(1 / cosh x)^2` (glibc `cosh`).
const SECH2_ULPS: u64 = 8;
/// Max ulps of `s''(x) = -2 tanh(x) sech^2(x)` from the product of the references.
const D2_ULPS: u64 = 10;

/// Position of `x` on the number line of doubles (adjacent doubles differ by 1; +0 = -0).
fn ordinal(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        i64::MIN - b
    } else {
        b
    }
}

/// Distance in ulps; NaN matches only NaN.
fn ulps(a: f64, b: f64) -> u64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0,
        (false, false) => (ordinal(a) - ordinal(b)).unsigned_abs(),
        _ => u64::MAX,
    }
}

/// Distance in f32 ulps; NaN matches only NaN.
fn ulps32(a: f32, b: f32) -> u64 {
    let ordinal = |x: f32| {
        let b = x.to_bits() as i32 as i64;
        if b < 0 {
            i32::MIN as i64 - b
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

/// xorshift64: reproducible random bits without a dependency.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn special_values() -> Vec<f64> {
    let ln2 = std::f64::consts::LN_2;
    let mut v = vec![
        0.0,
        f64::from_bits(1),
        f64::MIN_POSITIVE,
        1e-300,
        1e-20,
        1.49e-8,
        1e-8,
        1e-4,
        ln2 / 4.0,
        ln2 / 4.0 * (1.0 + f64::EPSILON),
        ln2 / 4.0 * (1.0 - f64::EPSILON),
        0.5,
        1.0,
        3.0 * ln2 / 4.0,
        19.0,
        19.06,
        19.1,
        20.0,
        354.0,
        355.0,
        360.0,
        372.0,
        372.6,
        373.0,
        400.0,
        699.0,
        700.0,
        701.0,
        710.0,
        1e4,
        1e300,
        f64::MAX,
        f64::INFINITY,
    ];
    let negatives: Vec<f64> = v.iter().map(|x| -x).collect();
    v.extend(negatives);
    v
}

/// The grid `i * step` for `|i| <= half`, then `draws` pairs of random points from `seed`:
/// uniform in `[-range, range]` and a signed log-uniform magnitude in `[1e-310, 1e4]`; then the
/// special values.
fn sweep(half: i64, step: f64, draws: usize, range: f64, seed: u64) -> Vec<f64> {
    let mut xs: Vec<f64> = (-half..=half).map(|i| i as f64 * step).collect();
    let mut bits = Bits(seed);
    for _ in 0..draws {
        xs.push((bits.unit() * 2.0 - 1.0) * range);
        let magnitude = 10f64.powf(bits.unit() * 314.0 - 310.0);
        xs.push(if bits.next() & 1 == 1 {
            -magnitude
        } else {
            magnitude
        });
    }
    xs.extend(special_values());
    xs
}

fn sweep_points() -> Vec<f64> {
    sweep(2_000_000, 1e-5, 500_000, 40.0, 0x9e37_79b9_7f4a_7c15)
}

/// References from glibc: `(tanh x, sech^2 x, -2 tanh x sech^2 x)`.
fn reference(x: f64) -> (f64, f64, f64) {
    let t = x.tanh();
    let sech = 1.0 / x.cosh();
    let d1 = sech * sech;
    (t, d1, -2.0 * t * d1)
}

#[test]
fn tanh_f64_error_bound() {
    let xs = sweep_points();
    // The vectorised loops, as the MLP runs them.
    let mut value = xs.clone();
    Activation::Tanh.apply_value(&mut value);
    let (mut y, mut d1, mut d2) = (xs.clone(), vec![0.0; xs.len()], vec![0.0; xs.len()]);
    Activation::Tanh.apply(&mut y, &mut d1, Some(&mut d2));
    let (mut y_only, mut d1_only) = (xs.clone(), vec![0.0; xs.len()]);
    Activation::Tanh.apply(&mut y_only, &mut d1_only, None);

    let mut worst = [(0u64, 0.0f64); 3];
    for (i, &x) in xs.iter().enumerate() {
        let t = x.tanh_fast();
        let (t2, s2) = x.tanh_sech2_fast();
        assert_eq!(
            t.to_bits(),
            t2.to_bits(),
            "tanh_fast vs tanh_sech2_fast at {x:e}"
        );
        for (got, what) in [
            (value[i], "apply_value"),
            (y[i], "apply"),
            (y_only[i], "apply"),
        ] {
            assert_eq!(got.to_bits(), t.to_bits(), "{what} vs tanh_fast at {x:e}");
        }
        assert_eq!(d1[i].to_bits(), s2.to_bits(), "apply's s' at {x:e}");
        assert_eq!(d1_only[i].to_bits(), s2.to_bits(), "apply's s' at {x:e}");
        let (rt, rd1, rd2) = reference(x);
        for (w, (got, want)) in worst.iter_mut().zip([(t, rt), (s2, rd1), (d2[i], rd2)]) {
            let u = ulps(got, want);
            if u > w.0 {
                *w = (u, x);
            }
        }
    }
    println!(
        "f64 tanh over {} points: worst {} ulp at {:e}; sech^2 {} ulp at {:e}; s'' {} ulp at {:e}",
        xs.len(),
        worst[0].0,
        worst[0].1,
        worst[1].0,
        worst[1].1,
        worst[2].0,
        worst[2].1
    );
    assert!(worst[0].0 <= TANH_ULPS, "tanh: {worst:?}");
    assert!(worst[1].0 <= SECH2_ULPS, "sech^2: {worst:?}");
    assert!(worst[2].0 <= D2_ULPS, "s'': {worst:?}");
}

#[test]
fn tanh_f64_special_values_exact() {
    for x in [0.0f64, -0.0] {
        let (t, d1) = x.tanh_sech2_fast();
        assert_eq!(t.to_bits(), x.to_bits(), "tanh({x}) keeps the sign of zero");
        assert_eq!(d1, 1.0);
    }
    for x in [f64::from_bits(1), 1e-300, -1e-200, 1e-9, -1e-9] {
        assert_eq!(x.tanh_fast(), x, "tanh(x) = x for tiny x");
        assert_eq!(x.tanh_sech2_fast().1, 1.0);
    }
    for x in [19.1f64, 400.0, 1e300, f64::MAX, f64::INFINITY] {
        assert_eq!(x.tanh_fast(), 1.0);
        assert_eq!((-x).tanh_fast(), -1.0);
    }
    for x in [373.0f64, 1e300, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(x.tanh_sech2_fast().1, 0.0, "sech^2 underflows at {x}");
    }
    // sech^2 stays accurate through the subnormal range (no 1 - tanh^2 cancellation).
    let x = 360.0f64;
    let want = (2.0 / x.exp()).powi(2) * (1.0 + 0.0);
    assert!(x.tanh_sech2_fast().1 > 0.0 && ulps(x.tanh_sech2_fast().1, want) <= 2);
}

/// Max ulps of the f64 `exp` from glibc's `exp` (measured: 1).
const EXP_ULPS: u64 = 2;
/// Max ulps of the f64 `expm1` (x <= 0) from glibc's `expm1` (measured: 1).
const EXPM1_ULPS: u64 = 2;

#[test]
fn exp_f64_error_bound() {
    let mut xs: Vec<f64> = (-400_000..=400_000).map(|i| i as f64 * 5e-5).collect();
    let mut bits = Bits(0x2545_f491_4f6c_dd1d);
    for _ in 0..500_000 {
        xs.push((bits.unit() * 2.0 - 1.0) * 760.0);
        xs.push(-(10f64.powf(bits.unit() * 313.0 - 310.0)));
    }
    xs.extend(special_values());
    xs.extend([
        709.78, 709.79, -708.4, -745.1, -745.2, -1415.0, -1417.0, -1e4,
    ]);
    let (mut worst_exp, mut worst_expm1) = ((0u64, 0.0f64), (0u64, 0.0f64));
    for &x in &xs {
        let e = x.exp_fast();
        let u = ulps(e, x.exp());
        if u > worst_exp.0 {
            worst_exp = (u, x);
        }
        if x <= 0.0 {
            let (m, e2) = x.expm1_exp_fast();
            assert_eq!(e2.to_bits(), e.to_bits(), "expm1_exp_fast's exp at {x:e}");
            let u = ulps(m, x.exp_m1());
            if u > worst_expm1.0 {
                worst_expm1 = (u, x);
            }
        }
        // f32: the f64 value rounded, so within 1 ulp of glibc's f64 exp rounded to f32.
        let x32 = x as f32;
        let want = (x32 as f64).exp() as f32;
        let got = x32.exp_fast();
        assert!(
            ulps32(got, want) <= 1,
            "f32 exp at {x32:e}: {got:e} vs {want:e}"
        );
    }
    println!(
        "f64 exp over {} points: worst {} ulp at {:e}; expm1 (x <= 0) {} ulp at {:e}",
        xs.len(),
        worst_exp.0,
        worst_exp.1,
        worst_expm1.0,
        worst_expm1.1
    );
    assert!(worst_exp.0 <= EXP_ULPS, "exp: {worst_exp:?}");
    assert!(worst_expm1.0 <= EXPM1_ULPS, "expm1: {worst_expm1:?}");
    assert_eq!(f64::INFINITY.exp_fast(), f64::INFINITY);
    assert_eq!(710.0f64.exp_fast(), f64::INFINITY);
    assert_eq!(f64::NEG_INFINITY.exp_fast(), 0.0);
    assert_eq!(f64::NEG_INFINITY.expm1_exp_fast(), (-1.0, 0.0));
    assert!(f64::NAN.exp_fast().is_nan() && f32::NAN.exp_fast().is_nan());
    let (m, e) = f64::NAN.expm1_exp_fast();
    assert!(m.is_nan() && e.is_nan());
}

/// Max ulps of the f64 `ln(1 + x)` on [0, 1] from glibc's `log1p` (measured: 2).
const LN_1P_ULPS: u64 = 2;

#[test]
fn ln_1p_unit_error_bound() {
    let mut xs: Vec<f64> = (0..=2_000_000).map(|i| i as f64 * 5e-7).collect();
    let mut bits = Bits(0x94d0_49bb_1331_11eb);
    for _ in 0..500_000 {
        xs.push(bits.unit());
        xs.push(10f64.powf(-bits.unit() * 320.0));
    }
    xs.extend([
        0.0,
        f64::from_bits(1),
        1e-300,
        0.5,
        0.5 + f64::EPSILON / 2.0,
        1.0,
    ]);
    let mut worst = (0u64, 0.0f64);
    for &x in &xs {
        let u = ulps(x.ln_1p_unit_fast(), x.ln_1p());
        if u > worst.0 {
            worst = (u, x);
        }
        let x32 = x as f32;
        let want = (x32 as f64).ln_1p() as f32;
        assert!(
            ulps32(x32.ln_1p_unit_fast(), want) <= 1,
            "f32 ln_1p at {x32:e}"
        );
    }
    println!(
        "f64 ln_1p on [0, 1] over {} points: worst {} ulp at {:e}",
        xs.len(),
        worst.0,
        worst.1
    );
    assert!(worst.0 <= LN_1P_ULPS, "ln_1p: {worst:?}");
    assert!(f64::NAN.ln_1p_unit_fast().is_nan() && f32::NAN.ln_1p_unit_fast().is_nan());
}

/// f64 references (libm `exp`, `exp_m1`, `ln_1p`) of `(s, s', s'')` and the scale of each:
/// the sum of the magnitudes of the terms it is made of, which bounds the rounding error any
/// evaluation of that formula can reach.
fn softplus_swish_elu_reference(act: Activation, x: f64) -> [(f64, f64); 3] {
    let e = (-x.abs()).exp();
    let den = 1.0 + e;
    let sg = if x >= 0.0 { 1.0 } else { e } / den;
    let ds = e / (den * den);
    match act {
        Activation::Softplus => [
            (x.max(0.0) + e.ln_1p(), x.max(0.0) + e.ln_1p()),
            (sg, sg),
            (ds, ds),
        ],
        Activation::Swish => {
            let d2_scale = ds * (2.0 + x.abs() * (1.0 + 2.0 * sg));
            [
                (x * sg, (x * sg).abs()),
                (sg + x * ds, sg + (x * ds).abs()),
                (ds * (2.0 + x * (1.0 - 2.0 * sg)), d2_scale),
            ]
        }
        Activation::Elu if x > 0.0 => [(x, x), (1.0, 1.0), (0.0, 0.0)],
        Activation::Elu => [
            (x.exp_m1(), x.exp_m1().abs()),
            (x.exp(), x.exp()),
            (x.exp(), x.exp()),
        ],
        Activation::Tanh => unreachable!("tanh has its own test"),
    }
}

/// Worst error of `apply` (and `apply_value`, bit for bit) in units of `eps * scale`
/// (+ the smallest normal, for results in the subnormal range).
fn worst_scaled_error<T: Real>(act: Activation, xs: &[f64]) -> [(f64, f64); 3] {
    let xt: Vec<T> = xs.iter().map(|&x| cnf_ode::cast::<T>(x)).collect();
    let mut value = xt.clone();
    act.apply_value(&mut value);
    let (mut y, mut d1, mut d2) = (
        xt.clone(),
        vec![T::zero(); xt.len()],
        vec![T::zero(); xt.len()],
    );
    act.apply(&mut y, &mut d1, Some(&mut d2));
    let eps = T::epsilon().to_f64().unwrap_or(f64::NAN);
    let tiny = T::min_positive_value().to_f64().unwrap_or(f64::NAN);
    let mut worst = [(0.0f64, 0.0f64); 3];
    for (i, &x) in xt.iter().enumerate() {
        let same = value[i] == y[i] || (value[i].is_nan() && y[i].is_nan());
        assert!(same, "{act:?}: apply_value vs apply at {x:?}");
        let xf = x.to_f64().unwrap_or(f64::NAN);
        let reference = softplus_swish_elu_reference(act, xf);
        for (w, (got, (want, scale))) in worst
            .iter_mut()
            .zip([y[i], d1[i], d2[i]].into_iter().zip(reference))
        {
            let got = got.to_f64().unwrap_or(f64::NAN);
            // At +-inf some formulas give inf * 0 = NaN (swish's s'), as the generic ones do.
            let err = if got == want || (got.is_nan() && want.is_nan() && xf.is_infinite()) {
                0.0
            } else {
                (got - want).abs() / (eps * scale + tiny)
            };
            assert!(!err.is_nan(), "{act:?} at {xf:e}: {got:e} vs {want:e}");
            if err > w.0 {
                *w = (err, xf);
            }
        }
    }
    worst
}

/// Bound on the fast softplus / swish / ELU (value, s', s'') in units of `eps * scale`.
const SCALED_BOUND: f64 = 4.0;

#[test]
fn softplus_swish_elu_error_bound() {
    let xs = sweep(400_000, 5e-5, 200_000, 800.0, 0xd1b5_4a32_d192_ed03);
    for act in [Activation::Softplus, Activation::Swish, Activation::Elu] {
        let w64 = worst_scaled_error::<f64>(act, &xs);
        let w32 = worst_scaled_error::<f32>(act, &xs);
        println!("{act:?}: worst (value, s', s'') in eps * scale: f64 {w64:?}, f32 {w32:?}");
        for (w, what) in w64
            .iter()
            .chain(&w32)
            .zip(["f64 s", "f64 s'", "f64 s''", "f32 s", "f32 s'", "f32 s''"])
        {
            assert!(w.0 <= SCALED_BOUND, "{act:?} {what}: {} at {:e}", w.0, w.1);
        }
    }
}

fn assert_nan_propagates<T: Real>() {
    for act in [
        Activation::Tanh,
        Activation::Softplus,
        Activation::Swish,
        Activation::Elu,
    ] {
        let nan = T::nan();
        let mut v = vec![nan; 37];
        act.apply_value(&mut v);
        assert!(v.iter().all(|y| y.is_nan()), "{act:?} apply_value");
        let (mut y, mut d1, mut d2) = (vec![nan; 37], vec![T::zero(); 37], vec![T::zero(); 37]);
        act.apply(&mut y, &mut d1, Some(&mut d2));
        for (i, (y, (d1, d2))) in y.iter().zip(d1.iter().zip(&d2)).enumerate() {
            assert!(y.is_nan() && d1.is_nan(), "{act:?} apply {i}: {y:?} {d1:?}");
            // ELU's s'' is the constant 0 branch-wise for x > 0; every other one is NaN.
            assert!(d2.is_nan(), "{act:?} apply s'' {i}: {d2:?}");
        }
    }
    assert!(T::nan().tanh_fast().is_nan());
    let (t, d) = T::nan().tanh_sech2_fast();
    assert!(t.is_nan() && d.is_nan());
}

#[test]
fn nan_in_nan_out() {
    assert_nan_propagates::<f64>();
    assert_nan_propagates::<f32>();
}

fn assert_bias_fused_matches<T: Real>() {
    let (rows, width) = (7, 5);
    let cast = |v: f64| cnf_ode::cast::<T>(v);
    let x: Vec<T> = (0..rows * width)
        .map(|i| cast((i as f64 * 0.77).sin() * 6.0))
        .collect();
    let bias: Vec<T> = (0..width).map(|j| cast(j as f64 * 0.3 - 0.6)).collect();
    let shifted: Vec<T> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v + bias[i % width])
        .collect();
    for act in [
        Activation::Tanh,
        Activation::Softplus,
        Activation::Swish,
        Activation::Elu,
    ] {
        let n = rows * width;
        let (mut want, mut want_d1, mut want_d2) =
            (shifted.clone(), vec![T::zero(); n], vec![T::zero(); n]);
        act.apply(&mut want, &mut want_d1, Some(&mut want_d2));
        let (mut y, mut d1, mut d2) = (x.clone(), vec![T::zero(); n], vec![T::zero(); n]);
        act.apply_bias(&mut y, &bias, &mut d1, Some(&mut d2));
        assert_eq!(
            (&y, &d1, &d2),
            (&want, &want_d1, &want_d2),
            "{act:?} apply_bias"
        );
        let (mut y, mut d1) = (x.clone(), vec![T::zero(); n]);
        act.apply_bias(&mut y, &bias, &mut d1, None);
        assert_eq!(
            (&y, &d1),
            (&want, &want_d1),
            "{act:?} apply_bias without s''"
        );
        let mut y = x.clone();
        act.apply_value_bias(&mut y, &bias);
        assert_eq!(y, want, "{act:?} apply_value_bias");
    }
}

#[test]
fn bias_fused_activation_matches_separate_add() {
    assert_bias_fused_matches::<f64>();
    assert_bias_fused_matches::<f32>();
}
