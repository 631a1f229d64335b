//! Every method of the crate as one value: pick a method at run time, by name, or loop over all.
use std::fmt;
use std::str::FromStr;

use crate::tableau::{Bs3, Dop853, Dopri5, Euler, Heun, Midpoint, Rk4, RkMethod, Tableau, Tsit5};

/// The Runge-Kutta methods of `cnf-ode`, as one enum: the run-time counterpart of the unit
/// structs [`Euler`], [`Dopri5`], ... It parses from and prints as its lower-case name
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
}

impl Method {
    /// Every method, fixed-step ones first, in order of increasing order.
    pub const ALL: [Method; 8] = [
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
        }
    }

    /// The method's tableau.
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Self::Euler => Euler.tableau(),
            Self::Midpoint => Midpoint.tableau(),
            Self::Heun => Heun.tableau(),
            Self::Rk4 => Rk4.tableau(),
            Self::Bs3 => Bs3.tableau(),
            Self::Dopri5 => Dopri5.tableau(),
            Self::Tsit5 => Tsit5.tableau(),
            Self::Dop853 => Dop853.tableau(),
        }
    }

    /// True for methods with an error estimate (they can choose their own steps).
    pub fn is_adaptive(self) -> bool {
        self.tableau().is_adaptive()
    }

    /// The method whose tableau this is (the same static), if it is one of [`Method::ALL`].
    pub fn from_tableau(tab: &Tableau) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| std::ptr::eq(m.tableau(), tab))
    }
}

impl RkMethod for Method {
    fn tableau(&self) -> &'static Tableau {
        Method::tableau(*self)
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
            assert_eq!(Method::from_tableau(m.tableau()), Some(m));
            assert_eq!(
                m.tableau().name.to_lowercase(),
                m.name(),
                "tableau name of {m}"
            );
        }
        let adaptive: Vec<_> = Method::ALL.iter().filter(|m| m.is_adaptive()).collect();
        assert_eq!(
            adaptive,
            [
                &Method::Bs3,
                &Method::Dopri5,
                &Method::Tsit5,
                &Method::Dop853
            ]
        );
        assert_eq!("rk45".parse::<Method>(), Ok(Method::Dopri5));
        let err = "RK4".parse::<Method>().unwrap_err();
        assert_eq!(err.name, "RK4");
        assert!(err.to_string().contains("rk4, bs3"), "{err}");
    }
}
