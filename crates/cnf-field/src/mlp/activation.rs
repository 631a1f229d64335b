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
        match self {
            Self::Tanh => x.iter_mut().for_each(|v| *v = v.tanh_fast()),
            // The same expressions as `apply`, so v is bit-identical with and without the trace.
            _ => x.iter_mut().for_each(|v| *v = self.derivatives(*v).0),
        }
    }

    /// In place `x <- s(x)`, with `ds <- s'(x)` and, if given, `d2s <- s''(x)`.
    pub fn apply<T: Real>(self, x: &mut [T], ds: &mut [T], d2s: Option<&mut [T]>) {
        // One monomorphic loop per activation (no per-element dispatch).
        match self {
            // `tanh_sech2_fast` gives the same value as `tanh_fast` in `apply_value`, and in f64
            // a derivative that keeps its digits where `1 - y^2` would cancel.
            Self::Tanh => map_derivatives(x, ds, d2s, |x: T| {
                let (y, d1) = x.tanh_sech2_fast();
                (y, d1, -(d1 + d1) * y)
            }),
            Self::Softplus => map_derivatives(x, ds, d2s, |x| Self::Softplus.derivatives(x)),
            Self::Swish => map_derivatives(x, ds, d2s, |x| Self::Swish.derivatives(x)),
            Self::Elu => map_derivatives(x, ds, d2s, |x| Self::Elu.derivatives(x)),
        }
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
