//! SLCP, "simple likelihood, complex posterior" (Papamakarios et al. 2019, as sbibm's `slcp`
//! defines it): theta ~ U(-3, 3)^5; x is 4 independent draws from the 2-D Gaussian with mean
//! (theta_1, theta_2), standard deviations s_1 = theta_3^2 and s_2 = theta_4^2 and correlation
//! rho = tanh(theta_5), flattened draw by draw into 8 values. As in sbibm, 1e-6 is added to the
//! covariance's diagonal.

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

use super::dist::UniformBox;
use super::{check_rows, observations, Observation, SbiError, Task};

/// The SLCP task. Its posterior has four modes (the signs of theta_3 and theta_4) and no exact
/// sampler: sbibm's reference samples ship as files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slcp;

/// Draws per simulation.
const NUM_DRAWS: usize = 4;
/// Added to the covariance's diagonal, as sbibm does, to keep it positive definite.
const DIAGONAL_EPS: f64 = 1e-6;

impl Slcp {
    /// The prior U(-3, 3)^5.
    pub const PRIOR: UniformBox = UniformBox::new(-3.0, 3.0, 5);
}

impl Task for Slcp {
    fn name(&self) -> &'static str {
        "slcp"
    }

    fn theta_dim(&self) -> usize {
        5
    }

    fn x_dim(&self) -> usize {
        2 * NUM_DRAWS
    }

    fn sample_prior(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        Self::PRIOR.sample(n, rng)
    }

    fn prior_log_density(&self, theta: &[f64]) -> Result<Vec<f64>, SbiError> {
        Self::PRIOR.log_density(theta)
    }

    fn simulate(&self, theta: &[f64], rng: &mut dyn RngCore) -> Result<Vec<f64>, SbiError> {
        let n = check_rows("theta", theta, 5)?;
        let mut x = Vec::with_capacity(n * self.x_dim());
        for t in theta.chunks_exact(5) {
            let (s1, s2, rho) = (t[2] * t[2], t[3] * t[3], t[4].tanh());
            // Cholesky factor L of [[s1^2 + eps, rho s1 s2], [rho s1 s2, s2^2 + eps]].
            let l11 = (s1 * s1 + DIAGONAL_EPS).sqrt();
            let l21 = rho * s1 * s2 / l11;
            // s2^2 + eps - l21^2 >= eps since |rho| < 1; the max guards rounding only.
            let l22 = (s2 * s2 + DIAGONAL_EPS - l21 * l21).max(0.0).sqrt();
            for _ in 0..NUM_DRAWS {
                let e1: f64 = StandardNormal.sample(rng);
                let e2: f64 = StandardNormal.sample(rng);
                x.extend([t[0] + l11 * e1, t[1] + l21 * e1 + l22 * e2]);
            }
        }
        Ok(x)
    }

    fn observation(&self, obs: Observation) -> Vec<f64> {
        observations::SLCP[obs.index()].to_vec()
    }

    fn reference_posterior(
        &self,
        _obs: Observation,
        _n: usize,
        _rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>, SbiError> {
        Err(SbiError::NoReferenceSampler { task: self.name() })
    }
}
