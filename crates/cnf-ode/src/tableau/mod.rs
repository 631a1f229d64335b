//! Butcher tableaux: each method is plain data fed to the one explicit Runge-Kutta engine
//! (`engine.rs`). Adding a method means adding a file of constants here.
mod bs3;
mod dop853;
mod dopri5;
mod fixed;
mod tsit5;

pub use bs3::Bs3;
pub use dop853::Dop853;
pub use dopri5::Dopri5;
pub use fixed::{Euler, Heun, Midpoint, Rk4};
pub use tsit5::Tsit5;

use crate::controller::PiParams;

/// How a method estimates its local error.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ErrorEstimate {
    /// No estimate: a fixed-step method.
    None,
    /// One embedded solution: err = h * sum_i e_i k_i, with e = b - b_hat.
    Embedded(&'static [f64]),
    /// Hairer's DOP853 estimator from a 5th- and a 3rd-order difference:
    /// err = |h| * E5^2 / sqrt(n (E5^2 + 0.01 E3^2)) with E5, E3 the scaled norms of
    /// sum_i e5_i k_i and sum_i e3_i k_i. It is sharper than either alone at loose tolerances.
    Dop853 {
        /// Weights of the 5th-order difference.
        e5: &'static [f64],
        /// Weights of the 3rd-order difference.
        e3: &'static [f64],
    },
}

/// A continuous extension y(t + theta h) = y + h sum_i w_i(theta) k_i.
#[derive(Debug, Clone, Copy)]
pub struct DenseOutput {
    /// Whether the weights use k_s = f(t + h, y_new) (stored after the main stages). FSAL
    /// methods have it among their stages already; for others it costs one evaluation, which is
    /// reused as the first stage of the next step.
    pub end_derivative: bool,
    /// Extra stages (c, a-row over all earlier stages) evaluated only for steps that contain an
    /// output time, never to shorten steps.
    pub extra: &'static [(f64, &'static [f64])],
    /// Fills `w` (one weight per stage, main + end derivative + extra) for `theta` in [0, 1].
    pub weights: fn(theta: f64, w: &mut [f64]),
}

/// An explicit Runge-Kutta method.
#[derive(Debug, Clone, Copy)]
pub struct Tableau {
    /// Display name.
    pub name: &'static str,
    /// Order of the propagated solution.
    pub order: u32,
    /// Exponent denominator for step-size control: the error scales as h^error_order.
    pub error_order: u32,
    /// Nodes c_i, one per stage.
    pub c: &'static [f64],
    /// Rows of A below the diagonal: row i has i entries (row 0 is empty).
    pub a: &'static [&'static [f64]],
    /// Weights b_i of the solution.
    pub b: &'static [f64],
    /// Error estimate.
    pub error: ErrorEstimate,
    /// First Same As Last: the last stage is f(t + h, y_new) and becomes the next step's first.
    pub fsal: bool,
    /// Continuous extension for output times.
    pub dense: DenseOutput,
    /// The step-size controller the method's authors use with it: [`PiParams::DOPRI5`] for the
    /// 5(4) and 3(2) pairs, [`PiParams::DOP853`] for DOP853 (ignored by fixed steps).
    pub controller: PiParams,
}

impl Tableau {
    /// Number of main stages.
    pub fn stages(&self) -> usize {
        self.c.len()
    }
    /// True for methods with an error estimate (adaptive step size).
    pub fn is_adaptive(&self) -> bool {
        !matches!(self.error, ErrorEstimate::None)
    }
    /// Index of k = f(t + h, y_new) among the stage buffers.
    pub fn end_stage(&self) -> usize {
        if self.fsal {
            self.stages() - 1
        } else {
            self.stages()
        }
    }
    /// Number of stage buffers the dense output uses.
    pub fn dense_stages(&self) -> usize {
        let base = if self.dense.end_derivative {
            self.end_stage() + 1
        } else {
            self.stages()
        };
        base + self.dense.extra.len()
    }
}

/// A method usable by [`crate::Solver`]: a named handle on a tableau.
pub trait RkMethod {
    /// The tableau of the method.
    fn tableau(&self) -> &'static Tableau;
    /// True when the tableau is a compile-time constant: the method is a zero-sized unit type
    /// such as [`crate::Dopri5`] (also behind a reference). [`crate::Solver::solve_small`] then
    /// unrolls its stage loops over the constant.
    #[inline(always)]
    fn constant_tableau(&self) -> bool
    where
        Self: Sized,
    {
        std::mem::size_of::<Self>() == 0
    }
}

/// Implements `RkMethod` for a unit struct with a `TABLEAU` constant.
macro_rules! method {
    ($name:ident, $tab:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;
        impl $crate::tableau::RkMethod for $name {
            fn tableau(&self) -> &'static $crate::tableau::Tableau {
                static TAB: $crate::tableau::Tableau = $tab;
                &TAB
            }
        }
    };
}
pub(crate) use method;

impl RkMethod for &'static Tableau {
    fn tableau(&self) -> &'static Tableau {
        self
    }
}

/// A borrowed method is the method (its tableau, still a constant for the unit types).
impl<M: RkMethod> RkMethod for &M {
    #[inline(always)]
    fn tableau(&self) -> &'static Tableau {
        (**self).tableau()
    }
    #[inline(always)]
    fn constant_tableau(&self) -> bool {
        (**self).constant_tableau()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<&'static Tableau> {
        vec![
            Euler.tableau(),
            Midpoint.tableau(),
            Heun.tableau(),
            Rk4.tableau(),
            Bs3.tableau(),
            Dopri5.tableau(),
            Tsit5.tableau(),
            Dop853.tableau(),
        ]
    }

    /// Consistency conditions every tableau must meet: row sums of A equal c, weights sum to 1,
    /// the error weights sum to 0, and the continuous extension interpolates both ends.
    #[test]
    fn tableaux_are_consistent() {
        for tab in all() {
            assert_eq!(tab.a.len(), tab.stages(), "{}", tab.name);
            for (i, row) in tab.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{} row {i}", tab.name);
                let s: f64 = row.iter().sum();
                assert!(
                    (s - tab.c[i]).abs() < 1e-12,
                    "{} row {i}: {s} vs {}",
                    tab.name,
                    tab.c[i]
                );
            }
            let sb: f64 = tab.b.iter().sum();
            assert!((sb - 1.0).abs() < 1e-12, "{}: sum b = {sb}", tab.name);
            match tab.error {
                ErrorEstimate::None => {}
                ErrorEstimate::Embedded(e) => {
                    assert!(e.iter().sum::<f64>().abs() < 1e-12, "{}", tab.name)
                }
                ErrorEstimate::Dop853 { e5, e3 } => {
                    assert!(e5.iter().sum::<f64>().abs() < 1e-12, "{}", tab.name);
                    assert!(e3.iter().sum::<f64>().abs() < 1e-12, "{}", tab.name);
                }
            }
            if tab.fsal {
                let last = tab.a[tab.stages() - 1];
                for (j, (x, y)) in last.iter().zip(tab.b).enumerate() {
                    assert!((x - y).abs() < 1e-15, "{} FSAL row {j}", tab.name);
                }
            }
            for (c, row) in tab.dense.extra {
                let s: f64 = row.iter().sum();
                assert!((s - c).abs() < 1e-12, "{} extra stage", tab.name);
            }
            let n = tab.dense_stages();
            let mut w = vec![f64::NAN; n];
            (tab.dense.weights)(0.0, &mut w);
            assert!(
                w.iter().all(|x| x.abs() < 1e-14),
                "{} at 0: {w:?}",
                tab.name
            );
            (tab.dense.weights)(1.0, &mut w);
            for (j, wj) in w.iter().enumerate() {
                let bj = tab.b.get(j).copied().unwrap_or(0.0);
                assert!(
                    (wj - bj).abs() < 1e-12,
                    "{} at 1, stage {j}: {wj} vs {bj}",
                    tab.name
                );
            }
        }
    }
}
