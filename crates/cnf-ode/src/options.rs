//! Tolerances and solver settings.
use std::ops::Range;

use num_traits::Float;

use crate::error::{check_tolerance, OdeError};
use crate::norm::{ErrorNorm, Groups};

/// A tolerance: one value for every component, or one per component.
#[derive(Debug, Clone, PartialEq)]
pub enum Tolerance<T> {
    /// The same tolerance for every component.
    Scalar(T),
    /// One tolerance per component.
    PerComponent(Vec<T>),
}

impl<T> From<T> for Tolerance<T> {
    fn from(x: T) -> Self {
        Self::Scalar(x)
    }
}

impl<T> From<Vec<T>> for Tolerance<T> {
    fn from(v: Vec<T>) -> Self {
        Self::PerComponent(v)
    }
}

/// Validated tolerances for a state of known length: error scale atol_i + rtol_i * |y_i|.
#[derive(Debug, Clone)]
pub(crate) struct Tolerances<T> {
    rtol: Vec<T>,
    atol: Vec<T>,
    /// The components that enter the error norm (all unless a seminorm is asked for).
    norm: Range<usize>,
    /// Number of components of the state.
    n: usize,
    /// The groups of a per-sample norm ([`ErrorNorm::PerSample`]); `None` for the RMS.
    groups: Option<Groups<T>>,
}

impl<T: Float> Tolerances<T> {
    /// Checks `rtol` and `atol` ([`check_tolerance`]: positive and finite) and their lengths
    /// against a state of `n` components.
    pub(crate) fn new(
        rtol: &Tolerance<T>,
        atol: &Tolerance<T>,
        n: usize,
    ) -> Result<Self, OdeError> {
        check_tolerance("rtol", rtol)?;
        check_tolerance("atol", atol)?;
        let expand = |t: &Tolerance<T>| match t {
            Tolerance::Scalar(x) => Ok(vec![*x]),
            Tolerance::PerComponent(v) if v.len() == n => Ok(v.clone()),
            Tolerance::PerComponent(v) => Err(OdeError::DimensionMismatch {
                expected: n,
                found: v.len(),
            }),
        };
        Ok(Self {
            rtol: expand(rtol)?,
            atol: expand(atol)?,
            norm: 0..n,
            n,
            groups: None,
        })
    }
    /// Only the components `range` enter the error norm (a seminorm); `None` keeps them all.
    pub(crate) fn with_norm_components(
        mut self,
        range: Option<Range<usize>>,
    ) -> Result<Self, OdeError> {
        if let Some(r) = range {
            if r.start >= r.end || r.end > self.norm.end {
                return Err(OdeError::InvalidErrorComponents {
                    start: r.start,
                    end: r.end,
                    len: self.norm.end,
                });
            }
            self.norm = r;
        }
        Ok(self)
    }
    /// Combine the components' errors with `norm` (after `with_norm_components`).
    pub(crate) fn with_error_norm(mut self, norm: &ErrorNorm) -> Result<Self, OdeError> {
        self.groups = match norm {
            ErrorNorm::Rms => None,
            ErrorNorm::PerSample(layout) => Some(Groups::new(layout, self.n, &self.norm)?),
        };
        Ok(self)
    }
    /// The groups of a per-sample norm, if any.
    #[inline]
    pub(crate) fn groups_mut(&mut self) -> Option<&mut Groups<T>> {
        self.groups.as_mut()
    }
    /// Hairer's unnormalised squared norm `sum_i (v_i / scale_i)^2` of `v_i = v(i)` with
    /// `scale_i = atol_i + rtol_i |y_i|`, over the components of the norm (the initial step's
    /// norms), or with groups `n * max_g mean_{i in g} (v_i / scale_i)^2`.
    pub(crate) fn sum_sq(&mut self, y: &[T], v: impl Fn(usize) -> T) -> T {
        let range = self.norm.clone();
        let (rtol, atol) = (&self.rtol, &self.atol);
        let at = |t: &[T], i: usize| if t.len() == 1 { t[0] } else { t[i] };
        let sq = |i: usize| (v(i) / (at(atol, i) + at(rtol, i) * y[i].abs())).powi(2);
        match &mut self.groups {
            None => range.fold(T::zero(), |acc, i| acc + sq(i)),
            Some(g) => g.sum_sq(range, sq),
        }
    }
    /// The components that enter the error norm.
    #[inline]
    pub(crate) fn norm_range(&self) -> Range<usize> {
        self.norm.clone()
    }
    pub(crate) fn rtol(&self, i: usize) -> T {
        if self.rtol.len() == 1 {
            self.rtol[0]
        } else {
            self.rtol[i]
        }
    }
    fn atol(&self, i: usize) -> T {
        if self.atol.len() == 1 {
            self.atol[0]
        } else {
            self.atol[i]
        }
    }
    /// Error scale of component `i` with magnitude `y_abs`.
    #[inline]
    pub(crate) fn scale(&self, i: usize, y_abs: T) -> T {
        self.atol(i) + self.rtol(i) * y_abs
    }
    /// sum_i (e_i / scale_i)^2 with scale_i = atol_i + rtol_i * max(|y_i|, |y_new_i|), over the
    /// components of the norm: the arguments are those components (`y[norm_range()]`...).
    #[inline]
    pub(crate) fn sum_sq_scaled(&self, y: &[T], y_new: &[T], e: &[T]) -> T {
        let start = self.norm.start;
        let mut acc = T::zero();
        if let (&[rtol], &[atol]) = (&self.rtol[..], &self.atol[..]) {
            for ((&a, &b), &ei) in y.iter().zip(y_new).zip(e) {
                let r = ei / (atol + rtol * a.abs().max(b.abs()));
                acc = acc + r * r;
            }
        } else {
            for (i, ((&a, &b), &ei)) in y.iter().zip(y_new).zip(e).enumerate() {
                let r = ei / self.scale(start + i, a.abs().max(b.abs()));
                acc = acc + r * r;
            }
        }
        acc
    }
    /// e_i <- (e_i / scale_i)^2, scale_i = atol_i + rtol_i * max(|y_i|, |y_new_i|), over the
    /// components of the norm (the arguments are those components, as in `sum_sq_scaled`).
    #[inline]
    pub(crate) fn square_scaled(&self, y: &[T], y_new: &[T], e: &mut [T]) {
        let start = self.norm.start;
        if let (&[rtol], &[atol]) = (&self.rtol[..], &self.atol[..]) {
            for ((&a, &b), ei) in y.iter().zip(y_new).zip(e) {
                let r = *ei / (atol + rtol * a.abs().max(b.abs()));
                *ei = r * r;
            }
        } else {
            for (i, ((&a, &b), ei)) in y.iter().zip(y_new).zip(e).enumerate() {
                let r = *ei / self.scale(start + i, a.abs().max(b.abs()));
                *ei = r * r;
            }
        }
    }
}

/// A [`crate::Solver`]'s settings, set with its builder methods.
#[derive(Debug, Clone)]
pub(crate) struct Options<T> {
    /// Relative tolerance (default 1e-6).
    pub rtol: Tolerance<T>,
    /// Absolute tolerance (default 1e-9).
    pub atol: Tolerance<T>,
    /// Exactly N steps; `None`: adaptive (needs a method with an error estimate).
    pub fixed_steps: Option<usize>,
    /// Grading of fixed steps: step `i` of `N` ends at `t0 + (t1 - t0) (1 - (1 - i/N)^p)`
    /// (1: equal steps; `p > 1`: steps shrink towards `t1`).
    pub grading: f64,
    /// First step size; default Hairer's automatic estimate.
    pub h0: Option<T>,
    /// Largest step size magnitude; default the whole span.
    pub h_max: Option<T>,
    /// Smallest step size magnitude before failing; default 0 (only round-off limits it).
    pub h_min: T,
    /// Maximum number of steps (accepted + rejected), default 100 000.
    pub max_steps: usize,
    /// Times at which to report the state (in integration order), from the continuous extension.
    pub t_out: Vec<T>,
    /// Only these components enter the error norm (a seminorm; default all). The others are
    /// integrated with the same steps but never limit them: the parameter cotangents of the
    /// backsolve adjoint ([`crate::Differentiation::Backsolve`]) are left out this way.
    pub error_components: Option<Range<usize>>,
    /// How the components' errors combine into the step's error ([`ErrorNorm::Rms`] by default,
    /// or the largest per-sample RMS).
    pub error_norm: ErrorNorm,
    /// Where the Jacobian can be non-zero, for grouped finite differences (implicit methods;
    /// default dense).
    pub sparsity: Option<crate::jacobian::Sparsity>,
    /// Refine each Rosenbrock stage solve once with its residual in twice the precision
    /// (default off).
    pub refine_stage_solves: bool,
}

impl<T: Float> Default for Options<T> {
    fn default() -> Self {
        Self {
            rtol: Tolerance::Scalar(crate::util::cast(1e-6)),
            atol: Tolerance::Scalar(crate::util::cast(1e-9)),
            fixed_steps: None,
            grading: 1.0,
            h0: None,
            h_max: None,
            h_min: T::zero(),
            max_steps: 100_000,
            t_out: Vec::new(),
            error_components: None,
            error_norm: ErrorNorm::Rms,
            sparsity: None,
            refine_stage_solves: false,
        }
    }
}
