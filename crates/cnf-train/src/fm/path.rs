//! Probability paths between the data (t = 0) and the base N(0, I) (t = 1).
//!
//! # Convention
//!
//! This project integrates `dz/dt = v(z, t)` from the data `x` at `t = 0` to the base at
//! `t = 1` (FFJORD's convention, see `cnf_flow`). The flow-matching papers (Lipman et al. 2022,
//! Tong et al. 2023, Liu et al. 2022) put the noise at `t = 0` and the data at `t = 1`; every
//! path here is written in *this project's* direction, so with `tau = 1 - t` the papers' time,
//! a papers' velocity `u^paper` becomes `u = -u^paper`. For the straight path this makes the
//! target `e - x` (the papers write `x1 - x0`, data minus noise).
//!
//! A path maps a data point `x`, a base draw `e ~ N(0, I)`, a time `t` and (for paths that use
//! it) an extra noise draw `n ~ N(0, I)` to the point `x_t` on the conditional path and the
//! conditional target velocity `u_t = d x_t / dt` (with `x, e, n` held fixed).

use cnf_field::Real;
use cnf_ode::cast;
use serde::{Deserialize, Serialize};

use super::FmError;

/// A conditional probability path `x_t = psi_t(x, e, n)` and its velocity `u_t = d psi_t / dt`.
///
/// Implementations work on one point (`x`, `e`, `noise`, `xt`, `ut` all have the data dimension
/// `d`); shapes are checked by the callers ([`super::fm_loss_and_grad`] and friends).
pub trait ProbabilityPath<T: Real>: Send + Sync {
    /// Whether [`ProbabilityPath::interpolate`] reads `noise` (if not, callers may pass zeros and
    /// need not draw it).
    fn uses_noise(&self) -> bool;

    /// Writes `x_t` and the target velocity `u_t` of one point at time `t` in `[0, 1]`.
    fn interpolate(&self, t: T, x: &[T], e: &[T], noise: &[T], xt: &mut [T], ut: &mut [T]);
}

/// The straight (conditional optimal-transport) path of I-CFM (Tong et al. 2023):
///
/// `x_t = (1 - t) x + t e + sigma n`,  `u_t = e - x`.
///
/// The noise level `sigma` is constant in `t`, so it adds nothing to the velocity. `sigma = 0`
/// is rectified flow (Liu et al. 2022). At `t = 0` the point is `x + sigma n`, at `t = 1` it is
/// `e + sigma n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StraightPath {
    sigma: f64,
}

impl StraightPath {
    /// The path with noise level `sigma` (finite, `>= 0`).
    ///
    /// # Errors
    /// [`FmError::BadSetting`] for a negative or non-finite `sigma`.
    pub fn new(sigma: f64) -> Result<Self, FmError> {
        check_sigma("sigma", sigma, f64::INFINITY)?;
        Ok(Self { sigma })
    }

    /// The noise level.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl<T: Real> ProbabilityPath<T> for StraightPath {
    fn uses_noise(&self) -> bool {
        self.sigma > 0.0
    }

    fn interpolate(&self, t: T, x: &[T], e: &[T], noise: &[T], xt: &mut [T], ut: &mut [T]) {
        let one_t = T::one() - t;
        let sigma = cast::<T>(self.sigma);
        for i in 0..xt.len() {
            let n = if self.sigma > 0.0 {
                sigma * noise[i]
            } else {
                T::zero()
            };
            xt[i] = one_t * x[i] + t * e[i] + n;
            ut[i] = e[i] - x[i];
        }
    }
}

/// Lipman et al.'s (2022) optimal-transport path with a minimal width `sigma_min`, in this
/// project's direction.
///
/// # Derivation
///
/// Lipman et al. write the path from noise `x0` (their time `tau = 0`) to the data `x1`
/// (`tau = 1`) as the Gaussian `N(mu_tau, sigma_tau^2 I)` with `mu_tau = tau x1` and
/// `sigma_tau = 1 - (1 - sigma_min) tau`, realised by the flow map
/// `psi_tau(x0) = sigma_tau x0 + mu_tau = (1 - (1 - sigma_min) tau) x0 + tau x1`
/// whose velocity is `d psi / d tau = x1 - (1 - sigma_min) x0`.
///
/// Here the data is `x = x1`, the base draw is `e = x0` and our time is `t = 1 - tau`:
///
/// `x_t = (1 - t) x + (1 - (1 - sigma_min)(1 - t)) e = (1 - t) x + (sigma_min + (1 - sigma_min) t) e`,
///
/// `u_t = d x_t / dt = -x + (1 - sigma_min) e`
///
/// (the papers' velocity with its sign flipped, as `dt = -d tau`). At `t = 1` the point is the
/// base draw `e`; at `t = 0` it is `x + sigma_min e`, a Gaussian of width `sigma_min` around
/// the data point. The width comes from the base draw itself, so this path does not read the
/// extra `noise`. `sigma_min = 0` gives the straight path without noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LipmanPath {
    sigma_min: f64,
}

impl LipmanPath {
    /// The path with minimal width `sigma_min` in `[0, 1]`.
    ///
    /// # Errors
    /// [`FmError::BadSetting`] for a `sigma_min` outside `[0, 1]` (or NaN).
    pub fn new(sigma_min: f64) -> Result<Self, FmError> {
        check_sigma("sigma_min", sigma_min, 1.0)?;
        Ok(Self { sigma_min })
    }

    /// The minimal width.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
}

impl<T: Real> ProbabilityPath<T> for LipmanPath {
    fn uses_noise(&self) -> bool {
        false
    }

    fn interpolate(&self, t: T, x: &[T], e: &[T], _noise: &[T], xt: &mut [T], ut: &mut [T]) {
        let s = cast::<T>(self.sigma_min);
        let k = T::one() - s;
        let be = s + k * t;
        let one_t = T::one() - t;
        for i in 0..xt.len() {
            xt[i] = one_t * x[i] + be * e[i];
            ut[i] = k * e[i] - x[i];
        }
    }
}

/// The variance-preserving (cosine, trigonometric) schedule:
///
/// `x_t = cos(pi t / 2) x + sin(pi t / 2) e`,
/// `u_t = (pi / 2) (cos(pi t / 2) e - sin(pi t / 2) x)`.
///
/// For standardised data (unit variance per column, independent of `e`) the variance of `x_t`
/// is `cos^2 + sin^2 = 1` at every `t`, hence the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CosinePath;

impl<T: Real> ProbabilityPath<T> for CosinePath {
    fn uses_noise(&self) -> bool {
        false
    }

    fn interpolate(&self, t: T, x: &[T], e: &[T], _noise: &[T], xt: &mut [T], ut: &mut [T]) {
        let half_pi = cast::<T>(std::f64::consts::FRAC_PI_2);
        let (s, co) = (half_pi * t).sin_cos();
        for i in 0..xt.len() {
            xt[i] = co * x[i] + s * e[i];
            ut[i] = half_pi * (co * e[i] - s * x[i]);
        }
    }
}

/// A path chosen by name and setting (for configuration files and the command line).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PathSpec {
    /// [`StraightPath`] with noise level `sigma` (0: rectified flow).
    Straight {
        /// Standard deviation of the constant Gaussian noise around the line (non-negative).
        sigma: f64,
    },
    /// [`LipmanPath`] with minimal width `sigma_min`.
    Lipman {
        /// Width of the Gaussian around the data point at `t = 0`, in `[0, 1]`.
        sigma_min: f64,
    },
    /// [`CosinePath`].
    Cosine,
}

impl Default for PathSpec {
    fn default() -> Self {
        Self::Straight { sigma: 0.0 }
    }
}

impl PathSpec {
    /// Checks the setting (finite, non-negative sigma; `sigma_min <= 1`).
    ///
    /// # Errors
    /// [`FmError::BadSetting`] as [`StraightPath::new`] / [`LipmanPath::new`].
    pub fn validate(&self) -> Result<(), FmError> {
        match *self {
            Self::Straight { sigma } => StraightPath::new(sigma).map(|_| ()),
            Self::Lipman { sigma_min } => LipmanPath::new(sigma_min).map(|_| ()),
            Self::Cosine => Ok(()),
        }
    }

    /// Short name: `straight`, `lipman` or `cosine`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Straight { .. } => "straight",
            Self::Lipman { .. } => "lipman",
            Self::Cosine => "cosine",
        }
    }
}

impl<T: Real> ProbabilityPath<T> for PathSpec {
    fn uses_noise(&self) -> bool {
        match *self {
            Self::Straight { sigma } => sigma > 0.0,
            _ => false,
        }
    }

    /// Dispatches to the path. A setting that [`PathSpec::validate`] rejects is not checked
    /// here (the hot path); callers validate once up front.
    fn interpolate(&self, t: T, x: &[T], e: &[T], noise: &[T], xt: &mut [T], ut: &mut [T]) {
        match *self {
            Self::Straight { sigma } => StraightPath { sigma }.interpolate(t, x, e, noise, xt, ut),
            Self::Lipman { sigma_min } => {
                LipmanPath { sigma_min }.interpolate(t, x, e, noise, xt, ut)
            }
            Self::Cosine => CosinePath.interpolate(t, x, e, noise, xt, ut),
        }
    }
}

fn check_sigma(name: &'static str, value: f64, max: f64) -> Result<(), FmError> {
    if value.is_finite() && value >= 0.0 && value <= max {
        Ok(())
    } else {
        Err(FmError::BadSetting {
            name,
            value,
            why: if max.is_finite() {
                "must be in [0, 1]"
            } else {
                "must be finite and non-negative"
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_2;

    const X: [f64; 3] = [0.7, -1.3, 2.1];
    const E: [f64; 3] = [-0.4, 0.9, 0.25];
    const N: [f64; 3] = [1.1, -0.6, 0.3];

    fn run(p: &dyn ProbabilityPath<f64>, t: f64) -> ([f64; 3], [f64; 3]) {
        let (mut xt, mut ut) = ([0.0; 3], [0.0; 3]);
        p.interpolate(t, &X, &E, &N, &mut xt, &mut ut);
        (xt, ut)
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    fn paths() -> Vec<(Box<dyn ProbabilityPath<f64>>, &'static str)> {
        vec![
            (Box::new(StraightPath::new(0.0).unwrap()), "straight0"),
            (Box::new(StraightPath::new(0.3).unwrap()), "straight0.3"),
            (Box::new(LipmanPath::new(0.1).unwrap()), "lipman0.1"),
            (Box::new(CosinePath), "cosine"),
            (
                Box::new(PathSpec::Lipman { sigma_min: 0.05 }),
                "spec-lipman",
            ),
        ]
    }

    #[test]
    fn straight_path_closed_form() {
        let p = StraightPath::new(0.3).unwrap();
        for t in [0.0, 0.2, 0.5, 0.93, 1.0] {
            let (xt, ut) = run(&p, t);
            for i in 0..3 {
                let want = (1.0 - t) * X[i] + t * E[i] + 0.3 * N[i];
                assert!((xt[i] - want).abs() < 1e-15);
                assert_eq!(ut[i], E[i] - X[i]);
            }
        }
        // Endpoints: the data and the base draw, each up to the noise sigma n.
        let (x0, _) = run(&p, 0.0);
        let (x1, _) = run(&p, 1.0);
        let shift: Vec<f64> = N.iter().map(|n| 0.3 * n).collect();
        close(
            &x0,
            &X.iter().zip(&shift).map(|(a, b)| a + b).collect::<Vec<_>>(),
            1e-15,
        );
        close(
            &x1,
            &E.iter().zip(&shift).map(|(a, b)| a + b).collect::<Vec<_>>(),
            1e-15,
        );
        // Without noise the endpoints are exact and the noise is ignored.
        let p0 = StraightPath::new(0.0).unwrap();
        assert!(!ProbabilityPath::<f64>::uses_noise(&p0));
        close(&run(&p0, 0.0).0, &X, 0.0);
        close(&run(&p0, 1.0).0, &E, 0.0);
    }

    #[test]
    fn lipman_path_closed_form_and_endpoints() {
        let s = 0.1;
        let p = LipmanPath::new(s).unwrap();
        for t in [0.0, 0.37, 0.8, 1.0] {
            let (xt, ut) = run(&p, t);
            for i in 0..3 {
                // Lipman's map at tau = 1 - t with x0 = e, x1 = x.
                let tau = 1.0 - t;
                let want = (1.0 - (1.0 - s) * tau) * E[i] + tau * X[i];
                assert!((xt[i] - want).abs() < 1e-15);
                // Minus the paper's velocity x1 - (1 - sigma_min) x0.
                let paper = X[i] - (1.0 - s) * E[i];
                assert!((ut[i] + paper).abs() < 1e-15);
            }
        }
        close(&run(&p, 1.0).0, &E, 1e-15);
        let x0: Vec<f64> = X.iter().zip(&E).map(|(x, e)| x + s * e).collect();
        close(&run(&p, 0.0).0, &x0, 1e-15);
        // sigma_min = 0 is the noiseless straight path.
        let l0 = LipmanPath::new(0.0).unwrap();
        let st = StraightPath::new(0.0).unwrap();
        for t in [0.1, 0.6] {
            let (a, b) = (run(&l0, t), run(&st, t));
            close(&a.0, &b.0, 1e-15);
            close(&a.1, &b.1, 1e-15);
        }
    }

    #[test]
    fn cosine_path_closed_form_and_endpoints() {
        let p = CosinePath;
        for t in [0.0, 0.25, 0.5, 1.0] {
            let (xt, ut) = run(&p, t);
            let (s, c) = (FRAC_PI_2 * t).sin_cos();
            for i in 0..3 {
                assert!((xt[i] - (c * X[i] + s * E[i])).abs() < 1e-15);
                let want = FRAC_PI_2 * (c * E[i] - s * X[i]);
                assert!((ut[i] - want).abs() < 1e-15);
            }
        }
        close(&run(&p, 0.0).0, &X, 1e-15);
        close(&run(&p, 1.0).0, &E, 1e-15);
        // t = 1/2: equal weights sqrt(1/2).
        let h = 0.5f64.sqrt();
        let mid: Vec<f64> = X.iter().zip(&E).map(|(x, e)| h * (x + e)).collect();
        close(&run(&p, 0.5).0, &mid, 1e-15);
    }

    #[test]
    fn target_is_time_derivative_of_path() {
        let h = 1e-5;
        for (p, name) in paths() {
            for t in [0.05, 0.3, 0.5, 0.77, 0.95] {
                let (_, ut) = run(p.as_ref(), t);
                let (xp, _) = run(p.as_ref(), t + h);
                let (xm, _) = run(p.as_ref(), t - h);
                for i in 0..3 {
                    let fd = (xp[i] - xm[i]) / (2.0 * h);
                    assert!(
                        (fd - ut[i]).abs() < 1e-8,
                        "{name} t={t} i={i}: fd {fd} vs u {}",
                        ut[i]
                    );
                }
            }
        }
    }

    #[test]
    fn settings_are_validated() {
        assert!(StraightPath::new(-0.1).is_err());
        assert!(StraightPath::new(f64::NAN).is_err());
        assert!(StraightPath::new(f64::INFINITY).is_err());
        assert!(LipmanPath::new(1.5).is_err());
        assert!(LipmanPath::new(-1e-9).is_err());
        assert!(PathSpec::Straight { sigma: -1.0 }.validate().is_err());
        assert!(PathSpec::Lipman { sigma_min: 0.01 }.validate().is_ok());
        assert!(PathSpec::Cosine.validate().is_ok());
    }

    #[test]
    fn spec_round_trips_through_json() {
        for spec in [
            PathSpec::Straight { sigma: 0.1 },
            PathSpec::Lipman { sigma_min: 1e-3 },
            PathSpec::Cosine,
        ] {
            let s = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<PathSpec>(&s).unwrap(), spec);
        }
    }
}
