//! Activations with their first and second derivatives (the second is needed by the gradient
//! of the trace, which differentiates `s'(a) * A` with respect to `a`).

use crate::error::FieldError;
use crate::real::Real;
use num_traits::Float;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Elementwise nonlinearity of the hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x * sigmoid(x)` (SiLU).
    Swish,
    /// `x` for `x > 0`, `e^x - 1` otherwise (alpha = 1).
    Elu,
}

impl FromStr for Activation {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, FieldError> {
        match s.to_ascii_lowercase().as_str() {
            "tanh" => Ok(Self::Tanh),
            "softplus" => Ok(Self::Softplus),
            "swish" | "silu" => Ok(Self::Swish),
            "elu" => Ok(Self::Elu),
            _ => Err(FieldError::UnknownActivation(s.to_string())),
        }
    }
}

/// Numerically stable logistic function (never exponentiates a large positive number).
#[inline]
fn sigmoid<S: Float>(x: S) -> S {
    if x >= S::zero() {
        S::one() / (S::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (S::one() + e)
    }
}

impl Activation {
    /// `s(x)` for any float type (including dual numbers).
    #[inline]
    pub fn eval<S: Float>(self, x: S) -> S {
        match self {
            Self::Tanh => x.tanh(),
            // Branches instead of max/abs keep the dual-number derivatives plain.
            Self::Softplus => {
                if x > S::zero() {
                    x + (-x).exp().ln_1p()
                } else {
                    x.exp().ln_1p()
                }
            }
            Self::Swish => x * sigmoid(x),
            Self::Elu => {
                if x > S::zero() {
                    x
                } else {
                    x.exp_m1()
                }
            }
        }
    }

    /// `(s(x), s'(x), s''(x))`.
    #[inline]
    pub fn derivatives<S: Float>(self, x: S) -> (S, S, S) {
        let (one, two) = (S::one(), S::one() + S::one());
        match self {
            Self::Tanh => {
                let y = x.tanh();
                let d1 = one - y * y;
                (y, d1, -two * y * d1)
            }
            Self::Softplus => {
                let sg = sigmoid(x);
                (self.eval(x), sg, sg * (one - sg))
            }
            Self::Swish => {
                let sg = sigmoid(x);
                let ds = sg * (one - sg);
                (x * sg, sg + x * ds, ds * (two + x * (one - two * sg)))
            }
            Self::Elu => {
                if x > S::zero() {
                    (x, one, S::zero())
                } else {
                    let e = x.exp();
                    (e - one, e, e)
                }
            }
        }
    }

    /// In place `x <- s(x)` only (the primal pass of sampling needs no derivatives).
    pub fn apply_value<T: Real>(self, x: &mut [T]) {
        // The same functions as `apply` (the unused derivatives are dropped by the compiler),
        // so v is bit-identical with and without the trace.
        match self {
            Self::Tanh => x.iter_mut().for_each(|v| *v = v.tanh_fast()),
            Self::Softplus => x.iter_mut().for_each(|v| *v = softplus_fast(*v).0),
            Self::Swish => x.iter_mut().for_each(|v| *v = swish_fast(*v).0),
            Self::Elu => x.iter_mut().for_each(|v| *v = elu_fast(*v).0),
        }
    }

    /// In place `x <- s(x)`, with `ds <- s'(x)` and, if given, `d2s <- s''(x)`.
    ///
    /// The fast path's versions of [`Activation::derivatives`]: branch-free over the vectorised
    /// `tanh`/`exp`/`ln_1p` of [`Real`], so the loops vectorise. Same functions to a few ulp
    /// (`tests/activation_accuracy.rs`).
    pub fn apply<T: Real>(self, x: &mut [T], ds: &mut [T], d2s: Option<&mut [T]>) {
        // One monomorphic loop per activation (no per-element dispatch).
        match self {
            // `tanh_sech2_fast` gives the same value as `tanh_fast` in `apply_value`, and in f64
            // a derivative that keeps its digits where `1 - y^2` would cancel.
            Self::Tanh => map_derivatives(x, ds, d2s, |x: T| {
                let (y, d1) = x.tanh_sech2_fast();
                (y, d1, -(d1 + d1) * y)
            }),
            Self::Softplus => map_derivatives(x, ds, d2s, softplus_fast),
            Self::Swish => map_derivatives(x, ds, d2s, swish_fast),
            Self::Elu => map_derivatives(x, ds, d2s, elu_fast),
        }
    }
}

impl Activation {
    /// [`Activation::apply_value`] of `x + bias`, `bias` added to every row of `x`
    /// (`(rows, bias.len())` row-major): the bias add fused into the activation pass.
    pub fn apply_value_bias<T: Real>(self, x: &mut [T], bias: &[T]) {
        match self {
            Self::Tanh => map_value_bias(x, bias, |v: T| v.tanh_fast()),
            Self::Softplus => map_value_bias(x, bias, |v| softplus_fast(v).0),
            Self::Swish => map_value_bias(x, bias, |v| swish_fast(v).0),
            Self::Elu => map_value_bias(x, bias, |v| elu_fast(v).0),
        }
    }

    /// [`Activation::apply`] of `x + bias`, `bias` added to every row of `x`; bit-identical
    /// values to [`Activation::apply_value_bias`].
    pub fn apply_bias<T: Real>(self, x: &mut [T], bias: &[T], ds: &mut [T], d2s: Option<&mut [T]>) {
        match self {
            Self::Tanh => map_derivatives_bias(x, bias, ds, d2s, |x: T| {
                let (y, d1) = x.tanh_sech2_fast();
                (y, d1, -(d1 + d1) * y)
            }),
            Self::Softplus => map_derivatives_bias(x, bias, ds, d2s, softplus_fast),
            Self::Swish => map_derivatives_bias(x, bias, ds, d2s, swish_fast),
            Self::Elu => map_derivatives_bias(x, bias, ds, d2s, elu_fast),
        }
    }
}

#[inline]
fn map_value_bias<T: Real>(x: &mut [T], bias: &[T], f: impl Fn(T) -> T) {
    if bias.is_empty() {
        return;
    }
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = f(*v + b);
        }
    }
}

#[inline]
fn map_derivatives_bias<T: Real>(
    x: &mut [T],
    bias: &[T],
    ds: &mut [T],
    d2s: Option<&mut [T]>,
    f: impl Fn(T) -> (T, T, T),
) {
    let w = bias.len();
    if w == 0 {
        return;
    }
    match d2s {
        Some(d2s) => {
            for (((x, d1), d2), b) in x
                .chunks_exact_mut(w)
                .zip(ds.chunks_exact_mut(w))
                .zip(d2s.chunks_exact_mut(w))
                .map(|t| (t, bias))
            {
                for (((x, d1), d2), &b) in x.iter_mut().zip(d1.iter_mut()).zip(d2.iter_mut()).zip(b)
                {
                    (*x, *d1, *d2) = f(*x + b);
                }
            }
        }
        None => {
            for ((x, d1), b) in x
                .chunks_exact_mut(w)
                .zip(ds.chunks_exact_mut(w))
                .map(|t| (t, bias))
            {
                for ((x, d1), &b) in x.iter_mut().zip(d1.iter_mut()).zip(b) {
                    let (y, dy, _) = f(*x + b);
                    (*x, *d1) = (y, dy);
                }
            }
        }
    }
}

/// `(sigmoid x, sigmoid'(x))` with `e = exp(-|x|)`: `sigmoid = (x >= 0 ? 1 : e) / (1 + e)` and
/// `sigmoid' = e / (1 + e)^2` (not `sigmoid (1 - sigmoid)`, which cancels for large `x`).
/// Selects instead of branches; NaN gives NaN.
#[inline(always)]
fn sigmoid_fast<T: Real>(x: T) -> (T, T, T) {
    let e = (-x.abs()).exp_fast();
    let den = T::one() + e;
    let num = if x >= T::zero() { T::one() } else { e };
    (num / den, e / (den * den), e)
}

/// Softplus `(ln(1 + e^x), sigmoid x, sigmoid' x)` as `max(x, 0) + ln_1p(e^-|x|)`.
#[inline(always)]
fn softplus_fast<T: Real>(x: T) -> (T, T, T) {
    let (sg, ds, e) = sigmoid_fast(x);
    let pos = if x > T::zero() { x } else { T::zero() };
    (pos + e.ln_1p_unit_fast(), sg, ds)
}

/// Swish `x sigmoid(x)` and its derivatives.
#[inline(always)]
fn swish_fast<T: Real>(x: T) -> (T, T, T) {
    let (one, two) = (T::one(), T::one() + T::one());
    let (sg, ds, _) = sigmoid_fast(x);
    (x * sg, sg + x * ds, ds * (two + x * (one - two * sg)))
}

/// ELU: `(x, 1, 0)` for `x > 0`, `(expm1 x, e^x, e^x)` otherwise (NaN gives NaN).
#[inline(always)]
fn elu_fast<T: Real>(x: T) -> (T, T, T) {
    let positive = x > T::zero();
    let (em, e) = (if positive { T::zero() } else { x }).expm1_exp_fast();
    if positive {
        (x, T::one(), T::zero())
    } else {
        (em, e, e)
    }
}

#[inline]
fn map_derivatives<T: Real>(
    x: &mut [T],
    ds: &mut [T],
    d2s: Option<&mut [T]>,
    f: impl Fn(T) -> (T, T, T),
) {
    match d2s {
        Some(d2s) => {
            for ((x, d1), d2) in x.iter_mut().zip(ds.iter_mut()).zip(d2s.iter_mut()) {
                (*x, *d1, *d2) = f(*x);
            }
        }
        None => {
            for (x, d1) in x.iter_mut().zip(ds.iter_mut()) {
                let (y, dy, _) = f(*x);
                (*x, *d1) = (y, dy);
            }
        }
    }
}
