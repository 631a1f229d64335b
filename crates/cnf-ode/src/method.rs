//! Every method of the crate as one value: pick a method at run time, by name, or loop over all.
use std::fmt;
use std::str::FromStr;

use crate::controller::PiParams;
use crate::error::OdeError;
use crate::rosenbrock::{RosenbrockTableau, RODAS5P_TABLEAU, ROS23_TABLEAU};
use crate::tableau::{Bs3, Dop853, Dopri5, Euler, Heun, Midpoint, Rk4, RkMethod, Tableau, Tsit5};

/// What a method is to the solver: an explicit Runge-Kutta tableau, a Rosenbrock method
/// (linearly implicit, for stiff problems: it needs the Jacobian, automatic by default), the
/// variable-order BDF or the Radau IIA collocation method (implicit, Newton on the same
/// Jacobian).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Scheme {
    /// An explicit Runge-Kutta method.
    Explicit(&'static Tableau),
    /// A Rosenbrock method.
    Rosenbrock(&'static RosenbrockTableau),
    /// Variable-order (1-5), variable-step BDF in the NDF form (scipy's `BDF`, MATLAB's
    /// ode15s); it chooses its own steps and orders.
    Bdf,
    /// Radau IIA of order 5 (scipy's `Radau`): implicit Runge-Kutta, 3 stages, simplified
    /// Newton with one real and one complex LU; it chooses its own steps (scipy's predictive
    /// controller).
    Radau5,
}

impl Scheme {
    /// The method's display name ("Dopri5", "Rodas5P").
    pub fn name(self) -> &'static str {
        match self {
            Self::Explicit(t) => t.name,
            Self::Rosenbrock(r) => r.name,
            Self::Bdf => "BDF",
            Self::Radau5 => "Radau",
        }
    }
    /// Order of the propagated solution (BDF: its highest order).
    pub fn order(self) -> u32 {
        match self {
            Self::Explicit(t) => t.order,
            Self::Rosenbrock(r) => r.order,
            Self::Bdf => crate::bdf::MAX_ORDER as u32,
            Self::Radau5 => 5,
        }
    }
    /// The step-size controller the method is used with: the tableau's
    /// ([`Tableau::controller`]), or [`PiParams::ROSENBROCK`] (which BDF and Radau, choosing
    /// their own steps, do not consult).
    pub fn controller(self) -> PiParams {
        match self {
            Self::Explicit(t) => t.controller,
            Self::Rosenbrock(_) | Self::Bdf | Self::Radau5 => PiParams::ROSENBROCK,
        }
    }
    /// True for methods with an error estimate.
    pub fn is_adaptive(self) -> bool {
        match self {
            Self::Explicit(t) => t.is_adaptive(),
            Self::Rosenbrock(_) | Self::Bdf | Self::Radau5 => true,
        }
    }
    /// The one rule for `steps` fixed steps: every method takes them but BDF, which chooses
    /// its own steps and orders.
    pub(crate) fn check_fixed_steps(self, steps: usize) -> Result<(), OdeError> {
        match self {
            Self::Bdf => Err(OdeError::InvalidSetting {
                field: "steps".into(),
                requirement: "unset for bdf, which chooses its own steps and orders",
                value: steps as f64,
            }),
            _ => Ok(()),
        }
    }
    /// The tableau of an explicit method.
    pub fn tableau(self) -> Option<&'static Tableau> {
        match self {
            Self::Explicit(t) => Some(t),
            Self::Rosenbrock(_) | Self::Bdf | Self::Radau5 => None,
        }
    }
}

/// A method a [`crate::Solver`] can run: every [`RkMethod`] (the unit structs, a
/// `&'static Tableau`) and [`Method`].
pub trait OdeMethod {
    /// What the method is.
    fn scheme(&self) -> Scheme;
    /// The method as an explicit Runge-Kutta method for [`crate::Solver::solve_small`]'s array
    /// engine: the method itself for the unit types (a constant tableau the compiler unrolls),
    /// the run-time tableau of an explicit [`Method`]; `None` for the other schemes.
    fn explicit(&self) -> Option<impl RkMethod + '_>;
}

impl<M: RkMethod> OdeMethod for M {
    fn scheme(&self) -> Scheme {
        Scheme::Explicit(self.tableau())
    }
    fn explicit(&self) -> Option<impl RkMethod + '_> {
        Some(self)
    }
}

/// The methods of `cnf-ode`, as one enum: the run-time counterpart of the unit
/// structs [`Euler`], [`Dopri5`], ..., and the stiff methods [`Method::Rodas5p`],
/// [`Method::Rosenbrock23`], [`Method::Bdf`] and [`Method::Radau5`]. It parses from and prints as its lower-case name
/// (`"dopri5".parse::<Method>()`, alias `"rk45"` for Dopri5), and with the `serde` feature it
/// (de)serialises as that name.
///
/// ```
/// use cnf_ode::Method;
/// let m: Method = "rk45".parse().unwrap();
/// assert_eq!(m, Method::Dopri5);
/// assert_eq!(m.to_string(), "dopri5");
/// assert!(Method::ALL.iter().all(|m| m.to_string().parse::<Method>() == Ok(*m)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Method {
    /// Forward Euler (order 1, fixed steps).
    Euler,
    /// Explicit midpoint (order 2, fixed steps).
    Midpoint,
    /// Heun (order 2, fixed steps).
    Heun,
    /// Classical Runge-Kutta (order 4, fixed steps).
    Rk4,
    /// Bogacki-Shampine 3(2).
    Bs3,
    /// Dormand-Prince 5(4) (scipy's RK45).
    #[cfg_attr(feature = "serde", serde(alias = "rk45"))]
    Dopri5,
    /// Tsitouras 5(4).
    Tsit5,
    /// Dormand-Prince 8(5,3).
    Dop853,
    /// Rodas5P (Steinebach 2023): Rosenbrock, order 5(4), L-stable, stiffly accurate dense
    /// output; for stiff problems at moderate to tight tolerances.
    Rodas5p,
    /// Rosenbrock23 (Shampine and Reichelt's ode23s): Rosenbrock, order 2(3), L-stable; for
    /// stiff problems at loose tolerances.
    Rosenbrock23,
    /// BDF: variable order 1-5 and variable step in the quasi-constant step-size NDF form
    /// (scipy's `BDF`, MATLAB's ode15s), Jacobian and LU reused across steps; for large stiff
    /// systems where a Jacobian costs more than a few steps. It chooses its own step sizes and
    /// orders (a [`crate::Solver::controller`] is not consulted) and takes no fixed steps.
    ///
    /// ```
    /// use cnf_ode::{Method, Solver};
    /// // Robertson's kinetics to t = 1e11 (the Bari test set's ROBER), Jacobian automatic.
    /// let rober = |_t: f64, y: &[f64], dy: &mut [f64]| {
    ///     dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    ///     dy[2] = 3e7 * y[1] * y[1];
    ///     dy[1] = -dy[0] - dy[2];
    /// };
    /// let sol = Solver::new("bdf".parse::<Method>()?).rtol(1e-6).atol(1e-12)
    ///     .solve(rober, 0.0, 1e11, &[1.0, 0.0, 0.0])?;
    /// assert!((sol.y[0] - 2.083340149701255e-8).abs() < 1e-4 * 2.1e-8);
    /// // The Jacobian is reused across many steps.
    /// assert!(10 * sol.stats.jacobians < sol.stats.accepted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Bdf,
    /// Radau IIA of order 5 (name `radau`): implicit Runge-Kutta with 3 stages, L-stable,
    /// stiffly accurate, a port of scipy's `Radau` doing its work step for step (simplified
    /// Newton with one real and one complex LU per factorisation, Jacobian and LU reuse,
    /// Gustafsson's predictive step-size controller, cubic collocation dense output); for
    /// stiff problems at tight tolerances. It chooses its own step sizes (a
    /// [`crate::Solver::controller`] is not consulted); fixed steps run its Newton iteration
    /// to the solver's tolerances.
    ///
    /// ```
    /// use cnf_ode::{Method, Solver};
    /// // van der Pol with mu = 1000 over two relaxation periods.
    /// let vdp = |_t: f64, y: &[f64], dy: &mut [f64]| {
    ///     dy[0] = y[1];
    ///     dy[1] = 1e3 * (1.0 - y[0] * y[0]) * y[1] - y[0];
    /// };
    /// let sol = Solver::new("radau".parse::<Method>()?).rtol(1e-6).atol(1e-9)
    ///     .solve(vdp, 0.0, 3000.0, &[2.0, 0.0])?;
    /// assert!((sol.y[0] + 1.5).abs() < 0.1);
    /// // Each factorisation is a real and a complex LU (counted as 2, as scipy's `nlu`).
    /// assert_eq!(sol.stats.factorisations % 2, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Radau5,
}

impl Method {
    /// Every method: the explicit ones ([`Method::EXPLICIT`]), then the stiff ones.
    pub const ALL: [Method; 12] = [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bs3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Dop853,
        Method::Rodas5p,
        Method::Rosenbrock23,
        Method::Bdf,
        Method::Radau5,
    ];

    /// The explicit Runge-Kutta methods, fixed-step ones first, in order of increasing order.
    pub const EXPLICIT: [Method; 8] = [
        Method::Euler,
        Method::Midpoint,
        Method::Heun,
        Method::Rk4,
        Method::Bs3,
        Method::Dopri5,
        Method::Tsit5,
        Method::Dop853,
    ];

    /// The lower-case name (`"dopri5"`), as parsed by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Euler => "euler",
            Self::Midpoint => "midpoint",
            Self::Heun => "heun",
            Self::Rk4 => "rk4",
            Self::Bs3 => "bs3",
            Self::Dopri5 => "dopri5",
            Self::Tsit5 => "tsit5",
            Self::Dop853 => "dop853",
            Self::Rodas5p => "rodas5p",
            Self::Rosenbrock23 => "rosenbrock23",
            Self::Bdf => "bdf",
            Self::Radau5 => "radau",
        }
    }

    /// What the method is: an explicit tableau, a Rosenbrock method or BDF.
    pub fn scheme(self) -> Scheme {
        match self {
            Self::Euler => Scheme::Explicit(Euler.tableau()),
            Self::Midpoint => Scheme::Explicit(Midpoint.tableau()),
            Self::Heun => Scheme::Explicit(Heun.tableau()),
            Self::Rk4 => Scheme::Explicit(Rk4.tableau()),
            Self::Bs3 => Scheme::Explicit(Bs3.tableau()),
            Self::Dopri5 => Scheme::Explicit(Dopri5.tableau()),
            Self::Tsit5 => Scheme::Explicit(Tsit5.tableau()),
            Self::Dop853 => Scheme::Explicit(Dop853.tableau()),
            Self::Rodas5p => Scheme::Rosenbrock(&RODAS5P_TABLEAU),
            Self::Rosenbrock23 => Scheme::Rosenbrock(&ROS23_TABLEAU),
            Self::Bdf => Scheme::Bdf,
            Self::Radau5 => Scheme::Radau5,
        }
    }

    /// The tableau of an explicit method; `None` for the stiff ones.
    pub fn tableau(self) -> Option<&'static Tableau> {
        self.scheme().tableau()
    }

    /// The step-size controller's parameters the method is used with by default.
    pub fn controller(self) -> PiParams {
        self.scheme().controller()
    }

    /// True for methods with an error estimate (they can choose their own steps).
    pub fn is_adaptive(self) -> bool {
        self.scheme().is_adaptive()
    }

    /// True for the explicit Runge-Kutta methods (reverse-mode differentiation through the
    /// steps, [`crate::Differentiation::Discretise`], needs one).
    pub fn is_explicit(self) -> bool {
        matches!(self.scheme(), Scheme::Explicit(_))
    }

    /// The method whose tableau this is (the same static), if it is one of [`Method::EXPLICIT`].
    pub fn from_tableau(tab: &Tableau) -> Option<Self> {
        Self::EXPLICIT
            .into_iter()
            .find(|m| m.tableau().is_some_and(|t| std::ptr::eq(t, tab)))
    }
}

impl OdeMethod for Method {
    fn scheme(&self) -> Scheme {
        Method::scheme(*self)
    }
    fn explicit(&self) -> Option<impl RkMethod + '_> {
        self.tableau()
    }
}

impl fmt::Display for Method {
    /// The lower-case name; width and alignment flags apply (`{:<9}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A name that is not a method (see [`Method::ALL`] for the names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod {
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown method {:?} (known: ", self.name)?;
        for (i, m) in Method::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(m.name())?;
        }
        f.write_str(", rk45)")
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for Method {
    type Err = UnknownMethod;
    /// Parses a lower-case name (`"dop853"`), or `"rk45"` for Dopri5. Case-sensitive, as the
    /// serde names are.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "rk45" {
            return Ok(Self::Dopri5);
        }
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMethod { name: s.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_map_to_distinct_tableaux() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>(), Ok(m));
            assert_eq!(m.scheme().name().to_lowercase(), m.name(), "name of {m}");
        }
        for m in Method::EXPLICIT {
            assert_eq!(Method::from_tableau(m.tableau().unwrap()), Some(m));
        }
        let adaptive: Vec<_> = Method::ALL.iter().filter(|m| m.is_adaptive()).collect();
        assert_eq!(
            adaptive,
            [
                &Method::Bs3,
                &Method::Dopri5,
                &Method::Tsit5,
                &Method::Dop853,
                &Method::Rodas5p,
                &Method::Rosenbrock23,
                &Method::Bdf,
                &Method::Radau5
            ]
        );
        assert_eq!("rk45".parse::<Method>(), Ok(Method::Dopri5));
        let err = "RK4".parse::<Method>().unwrap_err();
        assert_eq!(err.name, "RK4");
        assert!(err.to_string().contains("rk4, bs3"), "{err}");
    }
}
