//! Two moons (Greenberg et al. 2019, as sbibm's `two_moons` defines it): theta ~ U(-1, 1)^2;
//! a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2), p = (r cos a + 0.25, r sin a); with z = R(-pi/4) theta,
//! x = p + (-|z_1|, z_2). The fold |z_1| makes the posterior two crescents.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

use super::dist::UniformBox;
use super::{check_rows, observations, Observation, SbiError, Task};

/// The two moons task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwoMoons;

/// Offset of the crescent's centre along the first axis.
const BASE_OFFSET: f64 = 0.25;
/// Mean and standard deviation of the radius r.
const R_LOC: f64 = 0.1;
const R_SCALE: f64 = 0.01;
/// Proposals per requested sample before the rejection sampler gives up; sbibm's observations
/// accept well over half of theirs.
const MAX_PROPOSALS_PER_SAMPLE: usize = 1000;

impl TwoMoons {
    /// The prior U(-1, 1)^2.
    pub const PRIOR: UniformBox = UniformBox::new(-1.0, 1.0, 2);

    /// One draw of the noise point p = (r cos a + 0.25, r sin a), which is x at theta = 0.
    fn noise(rng: &mut dyn RngCore) -> [f64; 2] {
        let u: f64 = StandardUniform.sample(rng);
        let a = PI * (u - 0.5);
        let e: f64 = StandardNormal.sample(rng);
        let r = R_LOC + R_SCALE * e;
        [r * a.cos() + BASE_OFFSET, r * a.sin()]
    }
}

impl Task for TwoMoons {
    fn name(&self) -> &'static str {
        "two_moons"
    }

    fn theta_dim(&self) -> usize {
        2
    }

    fn x_dim(&self) -> usize {
        2
    }

    fn sample_prior(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        Self::PRIOR.sample(n, rng)
    }

    fn prior_log_density(&self, theta: &[f64]) -> Result<Vec<f64>, SbiError> {
        Self::PRIOR.log_density(theta)
    }

    fn simulate(&self, theta: &[f64], rng: &mut dyn RngCore) -> Result<Vec<f64>, SbiError> {
        check_rows("theta", theta, 2)?;
        let mut x = Vec::with_capacity(theta.len());
        for t in theta.chunks_exact(2) {
            let p = Self::noise(rng);
            // z = R(-pi/4) theta
            let z1 = FRAC_1_SQRT_2 * (t[0] + t[1]);
            let z2 = FRAC_1_SQRT_2 * (t[1] - t[0]);
            x.extend([p[0] - z1.abs(), p[1] + z2]);
        }
        Ok(x)
    }

    fn observation(&self, obs: Observation) -> Vec<f64> {
        observations::TWO_MOONS[obs.index()].to_vec()
    }

    /// sbibm's exact sampler: draw p, solve x_o = p + (-|z_1|, z_2) for z with a fair coin for
    /// the sign of z_1, rotate back, and keep the draws inside the prior.
    fn reference_posterior(
        &self,
        obs: Observation,
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>, SbiError> {
        let x = self.observation(obs);
        let max_tries = n.saturating_mul(MAX_PROPOSALS_PER_SAMPLE).max(1_000_000);
        let mut out = Vec::with_capacity(2 * n);
        let mut tried = 0;
        while out.len() < 2 * n {
            if tried == max_tries {
                return Err(SbiError::RejectionStalled {
                    task: self.name(),
                    accepted: out.len() / 2,
                    tried,
                });
            }
            tried += 1;
            let p = Self::noise(rng);
            let flip: f64 = StandardUniform.sample(rng);
            let z1 = if flip < 0.5 { x[0] - p[0] } else { p[0] - x[0] };
            let z2 = x[1] - p[1];
            // theta = R(pi/4) z
            let theta = [FRAC_1_SQRT_2 * (z1 - z2), FRAC_1_SQRT_2 * (z1 + z2)];
            if Self::PRIOR.contains(&theta) {
                out.extend(theta);
            }
        }
        Ok(out)
    }
}
