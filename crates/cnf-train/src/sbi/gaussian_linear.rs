//! Gaussian linear (sbibm `gaussian_linear`): theta ~ N(0, 0.1 I) in 10 dimensions and
//! x ~ N(theta, 0.1 I). sbibm's `prior_scale` / `simulator_scale` of 0.1 are used as
//! covariances (`precision_matrix = inverse(0.1 I)`), so the standard deviations are sqrt(0.1).

use rand::RngCore;

use super::dist::IsotropicGaussian;
use super::{check_rows, observations, Observation, SbiError, Task};

/// The Gaussian linear task; its posterior is Gaussian in closed form ([`GaussianLinear::posterior`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GaussianLinear;

impl GaussianLinear {
    /// Dimension of theta and of x.
    pub const DIM: usize = 10;
    /// Prior covariance: `PRIOR_VAR * I`.
    pub const PRIOR_VAR: f64 = 0.1;
    /// Simulator noise covariance: `NOISE_VAR * I`.
    pub const NOISE_VAR: f64 = 0.1;

    /// The prior N(0, 0.1 I).
    pub fn prior() -> IsotropicGaussian {
        IsotropicGaussian::new(vec![0.0; Self::DIM], Self::PRIOR_VAR)
    }

    /// The exact posterior p(theta | x) for one data vector `x` (10 values): with the gain
    /// `k = PRIOR_VAR / (PRIOR_VAR + NOISE_VAR)`, N(k x, (1 - k) PRIOR_VAR I).
    ///
    /// # Errors
    /// `x` not 10 finite values.
    pub fn posterior(x: &[f64]) -> Result<IsotropicGaussian, SbiError> {
        if check_rows("x", x, Self::DIM)? != 1 {
            return Err(SbiError::Shape {
                what: "x",
                len: x.len(),
                width: Self::DIM,
            });
        }
        let gain = Self::PRIOR_VAR / (Self::PRIOR_VAR + Self::NOISE_VAR);
        Ok(IsotropicGaussian::new(
            x.iter().map(|v| gain * v).collect(),
            (1.0 - gain) * Self::PRIOR_VAR,
        ))
    }
}

impl Task for GaussianLinear {
    fn name(&self) -> &'static str {
        "gaussian_linear"
    }

    fn theta_dim(&self) -> usize {
        Self::DIM
    }

    fn x_dim(&self) -> usize {
        Self::DIM
    }

    fn sample_prior(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        Self::prior().sample(n, rng)
    }

    fn prior_log_density(&self, theta: &[f64]) -> Result<Vec<f64>, SbiError> {
        Self::prior().log_density(theta)
    }

    fn simulate(&self, theta: &[f64], rng: &mut dyn RngCore) -> Result<Vec<f64>, SbiError> {
        check_rows("theta", theta, Self::DIM)?;
        // x = theta + noise: a zero-mean noise draw per value, shifted by theta.
        let noise = IsotropicGaussian::new(vec![0.0; Self::DIM], Self::NOISE_VAR);
        let mut x = noise.sample(theta.len() / Self::DIM, rng);
        x.iter_mut().zip(theta).for_each(|(x, t)| *x += t);
        Ok(x)
    }

    fn observation(&self, obs: Observation) -> Vec<f64> {
        observations::GAUSSIAN_LINEAR[obs.index()].to_vec()
    }

    fn reference_posterior(
        &self,
        obs: Observation,
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>, SbiError> {
        Ok(Self::posterior(&self.observation(obs))?.sample(n, rng))
    }
}
