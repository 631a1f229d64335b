//! Step-size control for adaptive methods.
use num_traits::Float;

use crate::util::lit;

/// Decides whether a step with a given error norm is accepted and what the next step size is.
pub trait StepController<T> {
    /// `err` is the scaled error norm of a step of size `h` (accept when `err <= 1`);
    /// `error_order` is the method's error exponent. Returns (accepted, next h).
    fn decide(&mut self, err: T, h: T, error_order: u32) -> (bool, T);
    /// Forget history (a new solve starts).
    fn reset(&mut self);
}

/// Gustafsson's PI controller as in Hairer's DOPRI5/DOP853 codes:
/// h_new = h / clamp(err^(1/q - 0.75 beta) / err_prev^beta / safety, 1/fac_max, 1/fac_min),
/// never growing right after a rejection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiController<T> {
    /// Safety factor (0.9).
    pub safety: T,
    /// Integral-part weight beta (0.04 for Dopri5; 0 for DOP853 as in Hairer).
    pub beta: T,
    /// Smallest step-size factor (0.2).
    pub fac_min: T,
    /// Largest step-size factor (10).
    pub fac_max: T,
    err_prev: T,
    rejected_last: bool,
}

impl<T: Float> PiController<T> {
    /// A controller with the given parameters.
    pub fn new(safety: T, beta: T, fac_min: T, fac_max: T) -> Self {
        Self {
            safety,
            beta,
            fac_min,
            fac_max,
            err_prev: lit(1e-4),
            rejected_last: false,
        }
    }
    /// Hairer's defaults for a method of this error order (DOP853's for order 8 and above).
    pub fn hairer(error_order: u32) -> Self {
        if error_order >= 8 {
            Self::new(lit(0.9), T::zero(), lit(1.0 / 3.0), lit(6.0))
        } else {
            Self::new(lit(0.9), lit(0.04), lit(0.2), lit(10.0))
        }
    }
}

impl<T: Float> StepController<T> for PiController<T> {
    fn decide(&mut self, err: T, h: T, error_order: u32) -> (bool, T) {
        let expo = T::one() / lit(f64::from(error_order)) - lit::<T>(0.75) * self.beta;
        let fac11 = err.powf(expo);
        let up = T::one() / self.fac_max;
        let down = T::one() / self.fac_min;
        if err <= T::one() {
            // x^0 = 1 exactly: skip the power for the pure I controller (DOP853).
            let prev = if self.beta == T::zero() {
                T::one()
            } else {
                self.err_prev.powf(self.beta)
            };
            let fac = (fac11 / prev / self.safety).min(down).max(up);
            let mut h_new = h / fac;
            if self.rejected_last {
                h_new = h_new.abs().min(h.abs()) * h.signum();
            }
            self.err_prev = err.max(lit(1e-4));
            self.rejected_last = false;
            (true, h_new)
        } else {
            self.rejected_last = true;
            (false, h / down.min(fac11 / self.safety))
        }
    }
    fn reset(&mut self) {
        self.err_prev = lit(1e-4);
        self.rejected_last = false;
    }
}
