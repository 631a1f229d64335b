//! One typed, validated description of a solver: what a flow, a trainer, a config file and a
//! command line all pass around instead of strings.
use num_traits::Float;

use crate::controller::{PiController, PiParams};
use crate::error::{check_tolerance, OdeError};
use crate::grad::{Differentiation, PenaltyRefusal};
use crate::method::Method;
use crate::norm::{ErrorNorm, SampleLayout};
use crate::options::Tolerance;
use crate::solver::Solver;

/// How a [`SolverSpec`] chooses its steps.
#[derive(Debug, Clone, PartialEq)]
pub enum StepSizing<T> {
    /// Exactly this many equal steps (any method).
    Fixed(usize),
    /// Error-controlled steps (methods with an error estimate).
    Adaptive {
        /// Relative tolerance, scalar or per component.
        rtol: Tolerance<T>,
        /// Absolute tolerance, scalar or per component.
        atol: Tolerance<T>,
    },
}

/// A solver choice, validated once at construction: a [`Method`], fixed steps or adaptive
/// tolerances, a step budget, the step-size controller's parameters and the error norm of
/// batched states (the RMS over the state, or the largest per-sample RMS). Every value a
/// `SolverSpec` holds is valid; [`SolverSpec::solver`] builds the [`Solver`] it describes
/// ([`SolverSpec::solver_for`] for a state of samples).
///
/// ```
/// use cnf_ode::{Method, SolverSpec};
/// let spec = SolverSpec::adaptive(Method::Dop853, 1e-8, 1e-10).unwrap();
/// let sol = spec.solver().solve(|_t, y, dy| dy[0] = -y[0], 0.0, 1.0, &[1.0]).unwrap();
/// assert!((sol.y[0] - (-1.0f64).exp()).abs() < 1e-8);
///
/// let err = SolverSpec::adaptive(Method::Dopri5, -1.0, 1e-9).unwrap_err();
/// assert_eq!(err.to_string(), "rtol must be positive and finite, got -1");
/// assert!(SolverSpec::<f64>::adaptive(Method::Rk4, 1e-6, 1e-6).is_err()); // no error estimate
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        try_from = "serde_impl::RawSpec<T>",
        into = "serde_impl::RawSpec<T>",
        bound(
            serialize = "T: Float + std::fmt::Debug + serde::Serialize",
            deserialize = "T: Float + std::fmt::Debug + serde::Deserialize<'de>"
        )
    )
)]
pub struct SolverSpec<T> {
    method: Method,
    steps: StepSizing<T>,
    max_steps: usize,
    /// `None`: the tableau's ([`crate::Tableau::controller`]).
    controller: Option<PiParams>,
    per_sample: bool,
    /// Grading of fixed steps ([`SolverSpecBuilder::graded`]); 1 for equal steps.
    grading: f64,
}

/// Default step budget of a [`SolverSpec`] (accepted plus rejected steps).
pub const DEFAULT_MAX_STEPS: usize = 100_000;

impl<T: Float> SolverSpec<T> {
    /// Adaptive steps of `method` with these tolerances; the tableau's default controller and
    /// [`DEFAULT_MAX_STEPS`].
    ///
    /// # Errors
    /// As [`SolverSpecBuilder::build`].
    pub fn adaptive(
        method: Method,
        rtol: impl Into<Tolerance<T>>,
        atol: impl Into<Tolerance<T>>,
    ) -> Result<Self, OdeError> {
        Self::builder(method).rtol(rtol).atol(atol).build()
    }

    /// Exactly `steps` equal steps of `method`.
    ///
    /// # Errors
    /// [`OdeError::InvalidSetting`] for zero steps.
    pub fn fixed(method: Method, steps: usize) -> Result<Self, OdeError> {
        Self::builder(method).fixed_steps(steps).build()
    }

    /// A builder starting from `method`, adaptive at rtol 1e-6, atol 1e-9 when the method has an
    /// error estimate (else give [`SolverSpecBuilder::fixed_steps`]).
    pub fn builder(method: Method) -> SolverSpecBuilder<T> {
        SolverSpecBuilder {
            method,
            fixed: None,
            rtol: Tolerance::Scalar(crate::util::cast(1e-6)),
            atol: Tolerance::Scalar(crate::util::cast(1e-9)),
            max_steps: DEFAULT_MAX_STEPS,
            controller: None,
            per_sample: false,
            grading: 1.0,
        }
    }

    /// A builder holding this specification's values (to change some and validate again).
    pub fn to_builder(&self) -> SolverSpecBuilder<T> {
        let mut b = Self::builder(self.method)
            .max_steps(self.max_steps)
            .per_sample_norm(self.per_sample)
            .graded(self.grading);
        b.controller = self.controller;
        match &self.steps {
            StepSizing::Fixed(n) => b = b.fixed_steps(*n),
            StepSizing::Adaptive { rtol, atol } => b = b.rtol(rtol.clone()).atol(atol.clone()),
        }
        b
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }
    /// Fixed steps or adaptive tolerances.
    pub fn steps(&self) -> &StepSizing<T> {
        &self.steps
    }
    /// `Some(n)` for n fixed steps.
    pub fn fixed_steps(&self) -> Option<usize> {
        match self.steps {
            StepSizing::Fixed(n) => Some(n),
            StepSizing::Adaptive { .. } => None,
        }
    }
    /// Step budget (accepted plus rejected steps) of an adaptive solve.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }
    /// The grading power of fixed steps (1: equal steps; [`SolverSpecBuilder::graded`]).
    pub fn grading(&self) -> f64 {
        self.grading
    }
    /// The step-size controller's parameters (the tableau's unless set).
    pub fn controller(&self) -> PiParams {
        self.controller.unwrap_or(self.method.controller())
    }
    /// The controller's parameters when set explicitly; `None` means the tableau's, which a
    /// caller may adapt to the solve (cnf-flow moves points without log-density columns with
    /// the tableau's controller without PI memory, [`PiParams::integral`]).
    pub fn explicit_controller(&self) -> Option<PiParams> {
        self.controller
    }
    /// Whether adaptive solves of a state of several samples hold every sample to the
    /// tolerances on its own ([`crate::ErrorNorm::PerSample`], see [`SolverSpec::solver_for`])
    /// rather than the whole state on average ([`crate::ErrorNorm::Rms`], the default).
    pub fn per_sample_norm(&self) -> bool {
        self.per_sample
    }

    /// The same specification with other tolerances (adaptive from now on).
    ///
    /// # Errors
    /// As [`SolverSpecBuilder::build`].
    pub fn with_tolerances(
        &self,
        rtol: impl Into<Tolerance<T>>,
        atol: impl Into<Tolerance<T>>,
    ) -> Result<Self, OdeError> {
        let mut b = self.to_builder().rtol(rtol).atol(atol).graded(1.0);
        b.fixed = None;
        b.build()
    }

    /// The solver this describes, with the RMS error norm over the whole state.
    pub fn solver(&self) -> Solver<Method, T> {
        let s = Solver::new(self.method)
            .max_steps(self.max_steps)
            .controller(PiController::from_params(self.controller()));
        match &self.steps {
            StepSizing::Fixed(n) => s.fixed_steps(*n).graded(self.grading),
            StepSizing::Adaptive { rtol, atol } => s.rtol(rtol.clone()).atol(atol.clone()),
        }
    }

    /// The solver for a state of samples laid out as `layout`: with
    /// [`SolverSpec::per_sample_norm`], adaptive steps and more than one sample, the error norm
    /// is [`ErrorNorm::PerSample`] over `layout`; otherwise [`SolverSpec::solver`] (one sample's
    /// RMS is the per-sample norm exactly).
    pub fn solver_for(&self, layout: SampleLayout) -> Solver<Method, T> {
        let s = self.solver();
        if self.per_sample && layout.samples() > 1 && self.fixed_steps().is_none() {
            s.error_norm(ErrorNorm::PerSample(layout))
        } else {
            s
        }
    }

    /// Whether solves of this specification can differentiate the local-error penalty with
    /// `method` (checked by the solver too, with these reasons): not with `Backsolve`, only
    /// with a method of one embedded pair, and only with adaptive steps (a fixed-step
    /// specification has no tolerances to measure the errors against).
    ///
    /// # Errors
    /// The [`PenaltyRefusal`] that says why not.
    pub fn check_error_penalty(&self, method: &Differentiation<T>) -> Result<(), PenaltyRefusal> {
        PenaltyRefusal::check(self.method.scheme(), method)?;
        match self.steps {
            StepSizing::Fixed(_) => Err(PenaltyRefusal::FixedSteps),
            StepSizing::Adaptive { .. } => Ok(()),
        }
    }

    /// The same specification in another precision (the tolerances converted, then validated
    /// again: 1e-300 is 0 in f32).
    pub fn cast<U: Float>(&self) -> Result<SolverSpec<U>, OdeError> {
        let conv = |t: &Tolerance<T>| match t {
            Tolerance::Scalar(v) => Tolerance::Scalar(crate::util::cast(*v)),
            Tolerance::PerComponent(vs) => {
                Tolerance::PerComponent(vs.iter().map(|&v| crate::util::cast(v)).collect())
            }
        };
        let mut b = SolverSpec::<U>::builder(self.method)
            .max_steps(self.max_steps)
            .per_sample_norm(self.per_sample)
            .graded(self.grading);
        b.controller = self.controller;
        match &self.steps {
            StepSizing::Fixed(n) => b = b.fixed_steps(*n),
            StepSizing::Adaptive { rtol, atol } => b = b.rtol(conv(rtol)).atol(conv(atol)),
        }
        b.build()
    }
}

/// Builds a [`SolverSpec`]; [`SolverSpecBuilder::build`] validates every field.
#[derive(Debug, Clone)]
pub struct SolverSpecBuilder<T> {
    method: Method,
    fixed: Option<usize>,
    rtol: Tolerance<T>,
    atol: Tolerance<T>,
    max_steps: usize,
    controller: Option<PiParams>,
    per_sample: bool,
    grading: f64,
}

impl<T: Float> SolverSpecBuilder<T> {
    /// Exactly `n` equal steps (`n >= 1`).
    pub fn fixed_steps(mut self, n: usize) -> Self {
        self.fixed = Some(n);
        self
    }
    /// Grades the fixed steps with power `p` (finite, `p >= 1`; 1, the default, gives equal
    /// steps): step `i` of `N` ends at `t0 + (t1 - t0) (1 - (1 - i/N)^p)`, so the steps shrink
    /// towards the end of the solve. A flow's samples end at the data (t = 0), where its
    /// velocity changes fastest: a posterior's draws by RK4 in 4 steps graded 1.5 score the
    /// same C2ST as by 8 equal steps, and by 4 equal steps worse (docs/sbi.md). Only for fixed
    /// steps.
    pub fn graded(mut self, p: f64) -> Self {
        self.grading = p;
        self
    }
    /// Relative tolerance, scalar or per component (positive and finite).
    pub fn rtol(mut self, rtol: impl Into<Tolerance<T>>) -> Self {
        self.rtol = rtol.into();
        self
    }
    /// Absolute tolerance, scalar or per component (positive and finite).
    pub fn atol(mut self, atol: impl Into<Tolerance<T>>) -> Self {
        self.atol = atol.into();
        self
    }
    /// Step budget of adaptive solves (`>= 1`).
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }
    /// The controller's parameters (default: the tableau's, [`crate::Tableau::controller`]).
    pub fn controller(mut self, p: PiParams) -> Self {
        self.controller = Some(p);
        self
    }
    /// Holds every sample of a batched state to the tolerances on its own
    /// ([`SolverSpec::per_sample_norm`]; default `false`, the RMS over the state).
    pub fn per_sample_norm(mut self, on: bool) -> Self {
        self.per_sample = on;
        self
    }
    /// The largest factor by which a step may grow (the controller's `fac_max`; 6 for DOP853
    /// by default, where scipy uses 10).
    pub fn step_growth_cap(mut self, fac_max: f64) -> Self {
        let p = self.controller.unwrap_or(self.method.controller());
        self.controller = Some(p.with_fac_max(fac_max));
        self
    }

    /// Validates and returns the specification.
    ///
    /// # Errors
    /// Each names the field: [`OdeError::InvalidTolerance`] ("rtol must be positive and finite,
    /// got -1", the rule [`crate::Solver`] applies too), [`OdeError::InvalidSetting`] (zero
    /// steps or step budget, an empty per-component tolerance, controller parameters out of
    /// range, fixed steps for BDF), [`OdeError::NotAdaptive`] for tolerances without fixed steps
    /// on a fixed-step method.
    pub fn build(self) -> Result<SolverSpec<T>, OdeError> {
        let steps = match self.fixed {
            Some(0) => {
                return Err(OdeError::InvalidSetting {
                    field: "steps".into(),
                    requirement: "at least 1",
                    value: 0.0,
                })
            }
            Some(n) => {
                self.method.scheme().check_fixed_steps(n)?;
                StepSizing::Fixed(n)
            }
            None => {
                if !self.method.is_adaptive() {
                    return Err(OdeError::NotAdaptive {
                        method: self.method.scheme().name(),
                    });
                }
                check_tolerance("rtol", &self.rtol)?;
                check_tolerance("atol", &self.atol)?;
                StepSizing::Adaptive {
                    rtol: self.rtol,
                    atol: self.atol,
                }
            }
        };
        if self.max_steps == 0 {
            return Err(OdeError::InvalidSetting {
                field: "max_steps".into(),
                requirement: "at least 1",
                value: 0.0,
            });
        }
        if let Some(c) = self.controller {
            c.validate()?;
        }
        if !(self.grading.is_finite() && self.grading >= 1.0) {
            return Err(OdeError::InvalidSetting {
                field: "grading".into(),
                requirement: "finite and at least 1",
                value: self.grading,
            });
        }
        if self.grading != 1.0 && !matches!(steps, StepSizing::Fixed(_)) {
            return Err(OdeError::InvalidSetting {
                field: "grading".into(),
                requirement: "1 for adaptive steps (it grades fixed steps)",
                value: self.grading,
            });
        }
        Ok(SolverSpec {
            method: self.method,
            steps,
            max_steps: self.max_steps,
            controller: self.controller,
            per_sample: self.per_sample,
            grading: self.grading,
        })
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use num_traits::Float;
    use serde::{Deserialize, Serialize};

    use super::{SolverSpec, StepSizing};
    use crate::controller::PiParams;
    use crate::method::Method;
    use crate::options::Tolerance;
    use crate::OdeError;

    /// A tolerance as JSON: a number or an array of numbers.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    pub(super) enum RawTol<T> {
        Scalar(T),
        PerComponent(Vec<T>),
    }

    /// The serialised form: `{"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}` or
    /// `{"method": "rk4", "steps": 10}`; `max_steps`, `controller`, `error_norm` (`"rms"`, the
    /// default, or `"per-sample"`) and `grading` (of fixed steps; 1 when absent) optional.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawSpec<T> {
        method: Method,
        #[serde(skip_serializing_if = "Option::is_none")]
        steps: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rtol: Option<RawTol<T>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        atol: Option<RawTol<T>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_steps: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        controller: Option<PiParams>,
        #[serde(default, skip_serializing_if = "RawNorm::is_rms")]
        error_norm: RawNorm,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grading: Option<f64>,
    }

    /// The error norm of batched states by name.
    #[derive(Serialize, Deserialize, Default, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum RawNorm {
        #[default]
        Rms,
        PerSample,
    }

    impl RawNorm {
        fn is_rms(&self) -> bool {
            *self == RawNorm::Rms
        }
    }

    fn tol<T>(t: RawTol<T>) -> Tolerance<T> {
        match t {
            RawTol::Scalar(x) => Tolerance::Scalar(x),
            RawTol::PerComponent(v) => Tolerance::PerComponent(v),
        }
    }
    fn raw<T>(t: Tolerance<T>) -> RawTol<T> {
        match t {
            Tolerance::Scalar(x) => RawTol::Scalar(x),
            Tolerance::PerComponent(v) => RawTol::PerComponent(v),
        }
    }

    impl<T: Float> TryFrom<RawSpec<T>> for SolverSpec<T> {
        type Error = OdeError;
        fn try_from(r: RawSpec<T>) -> Result<Self, Self::Error> {
            let mut b =
                SolverSpec::builder(r.method).per_sample_norm(r.error_norm == RawNorm::PerSample);
            if let Some(n) = r.steps {
                b = b.fixed_steps(n);
            }
            if let Some(t) = r.rtol {
                b = b.rtol(tol(t));
            }
            if let Some(t) = r.atol {
                b = b.atol(tol(t));
            }
            if let Some(n) = r.max_steps {
                b = b.max_steps(n);
            }
            if let Some(c) = r.controller {
                b = b.controller(c);
            }
            if let Some(p) = r.grading {
                b = b.graded(p);
            }
            b.build()
        }
    }

    impl<T> From<SolverSpec<T>> for RawSpec<T> {
        fn from(s: SolverSpec<T>) -> Self {
            let (steps, rtol, atol) = match s.steps {
                StepSizing::Fixed(n) => (Some(n), None, None),
                StepSizing::Adaptive { rtol, atol } => (None, Some(raw(rtol)), Some(raw(atol))),
            };
            RawSpec {
                method: s.method,
                steps,
                rtol,
                atol,
                max_steps: Some(s.max_steps),
                controller: s.controller,
                error_norm: if s.per_sample {
                    RawNorm::PerSample
                } else {
                    RawNorm::Rms
                },
                grading: (s.grading != 1.0).then_some(s.grading),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let msg = |e: OdeError| e.to_string();
        assert_eq!(
            msg(SolverSpec::adaptive(Method::Dopri5, -1.0, 1e-9).unwrap_err()),
            "rtol must be positive and finite, got -1"
        );
        assert_eq!(
            msg(SolverSpec::adaptive(Method::Dopri5, 1e-6, f64::NAN).unwrap_err()),
            "atol must be positive and finite, got NaN"
        );
        assert_eq!(
            msg(SolverSpec::adaptive(Method::Tsit5, 1e-6, vec![1e-9, 0.0]).unwrap_err()),
            "atol[1] must be positive and finite, got 0"
        );
        assert_eq!(
            msg(SolverSpec::<f64>::fixed(Method::Rk4, 0).unwrap_err()),
            "steps must be at least 1, got 0"
        );
        assert_eq!(
            msg(SolverSpec::adaptive(Method::Euler, 1e-6, 1e-6).unwrap_err()),
            "Euler has no error estimate, so it needs a fixed number of steps"
        );
        assert_eq!(
            msg(SolverSpec::<f64>::builder(Method::Dop853)
                .step_growth_cap(0.5)
                .build()
                .unwrap_err()),
            "controller.fac_max must be at least 1 and finite, got 0.5"
        );
        assert_eq!(
            msg(SolverSpec::<f64>::builder(Method::Bs3)
                .max_steps(0)
                .build()
                .unwrap_err()),
            "max_steps must be at least 1, got 0"
        );
    }

    #[test]
    fn defaults_come_from_the_tableau() {
        let s = SolverSpec::<f64>::builder(Method::Dop853).build().unwrap();
        assert_eq!(s.controller(), PiParams::DOP853);
        assert_eq!(s.max_steps(), DEFAULT_MAX_STEPS);
        let s = SolverSpec::<f64>::adaptive(Method::Tsit5, 1e-5, 1e-7).unwrap();
        assert_eq!(s.controller(), PiParams::DOPRI5);
        assert_eq!(
            s.steps(),
            &StepSizing::Adaptive {
                rtol: Tolerance::Scalar(1e-5),
                atol: Tolerance::Scalar(1e-7)
            }
        );
        let capped = SolverSpec::<f64>::builder(Method::Dop853)
            .step_growth_cap(10.0)
            .build()
            .unwrap();
        assert_eq!(capped.controller(), PiParams::DOP853.with_fac_max(10.0));
        // Fixed steps: tolerances are not looked at, any method goes.
        let f = SolverSpec::<f64>::fixed(Method::Euler, 3).unwrap();
        assert_eq!(f.fixed_steps(), Some(3));
        let g = f.with_tolerances(1e-3, 1e-3);
        assert!(matches!(g, Err(OdeError::NotAdaptive { .. })), "{g:?}");
    }

    #[test]
    fn the_solver_takes_the_spec_settings() {
        // Fixed: exactly n steps and n * stages evaluations for RK4 (no FSAL).
        let sol = SolverSpec::fixed(Method::Rk4, 7)
            .unwrap()
            .solver()
            .solve(|_t, y, dy| dy[0] = y[0], 0.0, 1.0, &[1.0])
            .unwrap();
        assert_eq!((sol.stats.accepted, sol.stats.nfe), (7, 28));
        // max_steps is the budget of an adaptive solve.
        let err = SolverSpec::builder(Method::Dopri5)
            .rtol(1e-12)
            .atol(1e-12)
            .max_steps(3)
            .build()
            .unwrap()
            .solver()
            .solve(|t, _y, dy| dy[0] = (50.0 * t).cos(), 0.0, 10.0, &[0.0])
            .unwrap_err();
        assert!(
            matches!(err, OdeError::MaxStepsExceeded { max_steps: 3, .. }),
            "{err}"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_and_validation() {
        let spec = SolverSpec::<f64>::adaptive(Method::Dop853, 1e-6, vec![1e-9, 1e-8]).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"method":"dop853","rtol":1e-6,"atol":[1e-9,1e-8],"max_steps":100000}"#
        );
        assert_eq!(
            serde_json::from_str::<SolverSpec<f64>>(&json).unwrap(),
            spec
        );
        let rk45: SolverSpec<f64> =
            serde_json::from_str(r#"{"method":"rk45","rtol":1e-5,"atol":1e-5}"#).unwrap();
        assert_eq!(rk45.method(), Method::Dopri5);
        let fixed: SolverSpec<f64> = serde_json::from_str(r#"{"method":"rk4","steps":8}"#).unwrap();
        assert_eq!(fixed.grading(), 1.0);
        let graded = SolverSpec::<f64>::builder(Method::Rk4)
            .fixed_steps(6)
            .graded(1.5)
            .build()
            .unwrap();
        let text = serde_json::to_string(&graded).unwrap();
        assert!(text.contains(r#""grading":1.5"#), "{text}");
        assert_eq!(
            serde_json::from_str::<SolverSpec<f64>>(&text).unwrap(),
            graded
        );
        assert!(!serde_json::to_string(&fixed).unwrap().contains("grading"));
        assert_eq!(fixed.fixed_steps(), Some(8));
        let bad = serde_json::from_str::<SolverSpec<f64>>(r#"{"method":"tsit5","rtol":-1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("rtol must be positive and finite, got -1"),
            "{bad}"
        );
        assert!(serde_json::from_str::<Method>(r#""Dopri5""#).is_err());
        // The per-sample norm and an explicit controller are kept.
        let strict = SolverSpec::<f64>::builder(Method::Tsit5)
            .per_sample_norm(true)
            .controller(PiParams::DOPRI5)
            .build()
            .unwrap();
        let json = serde_json::to_string(&strict).unwrap();
        assert!(json.contains(r#""error_norm":"per-sample""#), "{json}");
        assert_eq!(
            serde_json::from_str::<SolverSpec<f64>>(&json).unwrap(),
            strict
        );
    }

    #[test]
    fn per_sample_norm_casts_and_penalty_checks() {
        let spec = SolverSpec::<f64>::builder(Method::Dopri5)
            .rtol(1e-5)
            .atol(1e-300)
            .per_sample_norm(true)
            .build()
            .unwrap();
        assert!(spec.per_sample_norm());
        assert_eq!(spec.explicit_controller(), None);
        // 1e-300 is 0 in f32: refused by the same rule, naming the field.
        let e = spec.cast::<f32>().unwrap_err().to_string();
        assert!(e.starts_with("atol"), "{e}");
        let f = spec
            .with_tolerances(1e-5, 1e-5)
            .unwrap()
            .cast::<f32>()
            .unwrap();
        assert!(f.per_sample_norm());
        // The local-error penalty's preconditions.
        let d = Differentiation::<f64>::Discretise;
        assert_eq!(spec.check_error_penalty(&d), Ok(()));
        assert_eq!(
            spec.check_error_penalty(&Differentiation::adjoint()),
            Err(PenaltyRefusal::Backsolve)
        );
        assert_eq!(
            SolverSpec::<f64>::fixed(Method::Dopri5, 4)
                .unwrap()
                .check_error_penalty(&d),
            Err(PenaltyRefusal::FixedSteps)
        );
        assert!(matches!(
            SolverSpec::<f64>::builder(Method::Dop853)
                .build()
                .unwrap()
                .check_error_penalty(&d),
            Err(PenaltyRefusal::NoEmbeddedPair { .. })
        ));
    }
}
