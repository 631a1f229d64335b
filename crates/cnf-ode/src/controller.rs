//! Step-size control for adaptive methods.
use num_traits::Float;

use crate::tableau::Tableau;
use crate::util::cast;

/// The parameters of a [`PiController`], in f64: what a [`Tableau`] carries as its default
/// (`Tableau::controller`) and what a [`crate::SolverSpec`] stores.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PiParams {
    /// Safety factor applied to the optimal step (0.9 in Hairer's codes).
    pub safety: f64,
    /// Weight of the previous error (0.04 for DOPRI5; 0 makes it an I controller, as DOP853).
    pub beta: f64,
    /// Smallest step-size factor per step (0.2 for DOPRI5, 1/3 for DOP853).
    pub fac_min: f64,
    /// Largest step-size factor per step: the step-growth cap (10 for DOPRI5, 6 for DOP853).
    pub fac_max: f64,
}

impl PiParams {
    /// Hairer's DOPRI5 settings (also used for BS3 and Tsit5): safety 0.9, beta 0.04, factors
    /// in [0.2, 10].
    pub const DOPRI5: Self = Self {
        safety: 0.9,
        beta: 0.04,
        fac_min: 0.2,
        fac_max: 10.0,
    };
    /// Hairer's DOP853 settings: safety 0.9, beta 0 (no PI memory), factors in [1/3, 6].
    ///
    /// The step-growth cap of 6 is Hairer's `FAC2`; scipy's DOP853 grows steps by up to 10
    /// (`MAX_FACTOR`). On smooth problems the cap of 6 costs a few more steps early in a solve;
    /// set [`PiParams::fac_max`] (e.g. via [`crate::Solver::step_growth_cap`]) to 10 to take
    /// scipy's steps.
    pub const DOP853: Self = Self {
        safety: 0.9,
        beta: 0.0,
        fac_min: 1.0 / 3.0,
        fac_max: 6.0,
    };

    /// The Rosenbrock methods' controller: safety 0.9, no PI memory, factors in [0.2, 6]
    /// (the bounds of Hairer's RODAS).
    pub const ROSENBROCK: Self = Self {
        safety: 0.9,
        beta: 0.0,
        fac_min: 0.2,
        fac_max: 6.0,
    };

    /// Hairer's DOPRI5 safety and factor bounds with `beta = 0`: the elementary (integral, I)
    /// controller h_new = h * clamp(0.9 err^(-1/5), 0.2, 10) with no memory of earlier errors.
    /// It is what diffrax's `PIDController(rtol, atol)` defaults to (pcoeff 0, icoeff 1,
    /// safety 0.9, factors 0.2..10; diffrax also never shrinks a step right after accepting
    /// one, this never grows one right after a rejection).
    ///
    /// Why it takes longer steps than [`PiParams::DOPRI5`] at the same tolerance: with the
    /// error model err = (h / h*)^5, the I controller jumps to 0.9 h* in one update, while the
    /// PI controller's log-step obeys u' = 0.15 u + 0.2 u_prev + ln 0.9 (u = ln(h / h*)), so it
    /// approaches its fixed point, about 0.85 h*, by a factor ~0.53 in log per step. On a solve
    /// whose errors stay far below the tolerance (CNF sampling at 1e-5: scaled errors 0.004 to
    /// 0.08 with PI) the PI controller lags behind and takes more, more accurate steps.
    pub const DOPRI5_I: Self = Self::DOPRI5.integral();

    /// The same parameters without PI memory (`beta = 0`): an I controller with the same
    /// safety factor and step-size factor bounds ([`PiParams::DOPRI5_I`] for Dopri5).
    pub const fn integral(self) -> Self {
        Self { beta: 0.0, ..self }
    }

    /// The same parameters with another step-growth cap.
    pub fn with_fac_max(self, fac_max: f64) -> Self {
        Self { fac_max, ..self }
    }

    /// Checks the ranges: safety in (0, 1], beta in [0, 1), fac_min in (0, 1],
    /// fac_max >= 1, all finite.
    ///
    /// # Errors
    /// [`crate::OdeError::InvalidSetting`] naming the first field out of range
    /// (`controller.fac_max`).
    pub fn validate(&self) -> Result<(), crate::OdeError> {
        let checks: [(&str, f64, bool, &'static str); 4] = [
            (
                "controller.safety",
                self.safety,
                self.safety > 0.0 && self.safety <= 1.0,
                "in (0, 1]",
            ),
            (
                "controller.beta",
                self.beta,
                (0.0..1.0).contains(&self.beta),
                "in [0, 1)",
            ),
            (
                "controller.fac_min",
                self.fac_min,
                self.fac_min > 0.0 && self.fac_min <= 1.0,
                "in (0, 1]",
            ),
            (
                "controller.fac_max",
                self.fac_max,
                self.fac_max >= 1.0 && self.fac_max.is_finite(),
                "at least 1 and finite",
            ),
        ];
        for (field, value, ok, requirement) in checks {
            if !ok {
                return Err(crate::OdeError::InvalidSetting {
                    field: field.into(),
                    requirement,
                    value,
                });
            }
        }
        Ok(())
    }
}

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
    /// err_prev^beta with the beta it was computed for: formed when a step is accepted, so
    /// that the power is off the path from one step's error to the next step size.
    prev_pow: Option<(T, T)>,
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
            err_prev: cast(1e-4),
            prev_pow: None,
            rejected_last: false,
        }
    }
    /// err_prev^beta, from the cache when beta has not changed since it was formed.
    #[inline]
    fn prev_pow(&self) -> T {
        if self.beta == T::zero() {
            // x^0 = 1 exactly: skip the power for the pure I controller (DOP853).
            T::one()
        } else if let Some((_, pow)) = self.prev_pow.filter(|p| p.0 == self.beta) {
            pow
        } else {
            self.err_prev.powf(self.beta)
        }
    }
    /// A controller with these parameters.
    pub fn from_params(p: PiParams) -> Self {
        Self::new(
            cast(p.safety),
            cast(p.beta),
            cast(p.fac_min),
            cast(p.fac_max),
        )
    }
    /// The tableau's default controller ([`Tableau::controller`]): Hairer's DOPRI5 settings for
    /// the 5(4) and 3(2) pairs, Hairer's DOP853 settings for DOP853.
    pub fn for_tableau(tab: &Tableau) -> Self {
        Self::from_params(tab.controller)
    }
}

impl<T: Float> StepController<T> for PiController<T> {
    fn decide(&mut self, err: T, h: T, error_order: u32) -> (bool, T) {
        let expo = T::one() / cast(f64::from(error_order)) - cast::<T>(0.75) * self.beta;
        let err_pow = err.powf(expo);
        let up = T::one() / self.fac_max;
        let down = T::one() / self.fac_min;
        if err <= T::one() {
            let prev = self.prev_pow();
            let fac = (err_pow / prev / self.safety).min(down).max(up);
            let mut h_new = h / fac;
            if self.rejected_last {
                h_new = h_new.abs().min(h.abs()) * h.signum();
            }
            self.err_prev = err.max(cast(1e-4));
            if self.beta != T::zero() {
                self.prev_pow = Some((self.beta, self.err_prev.powf(self.beta)));
            }
            self.rejected_last = false;
            (true, h_new)
        } else {
            self.rejected_last = true;
            (false, h / down.min(err_pow / self.safety))
        }
    }
    fn reset(&mut self) {
        self.err_prev = cast(1e-4);
        self.prev_pow = None;
        self.rejected_last = false;
    }
}

/// The elementary (integral) controller: h_new = h * clamp(safety * err^(-1/q), fac_min,
/// fac_max), with no memory of earlier errors and no special case after a rejection. Simpler
/// than [`PiController`] (it is what many textbook codes use); shown here as a second
/// [`StepController`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IController<T> {
    /// Safety factor (0.9).
    pub safety: T,
    /// Smallest step-size factor (0.2).
    pub fac_min: T,
    /// Largest step-size factor (5).
    pub fac_max: T,
}

impl<T: Float> Default for IController<T> {
    fn default() -> Self {
        Self {
            safety: cast(0.9),
            fac_min: cast(0.2),
            fac_max: cast(5.0),
        }
    }
}

impl<T: Float> StepController<T> for IController<T> {
    fn decide(&mut self, err: T, h: T, error_order: u32) -> (bool, T) {
        let opt = if err == T::zero() {
            self.fac_max
        } else {
            self.safety * err.powf(-T::one() / cast(f64::from(error_order)))
        };
        let fac = opt.max(self.fac_min).min(self.fac_max);
        (err <= T::one(), h * fac)
    }
    fn reset(&mut self) {}
}
