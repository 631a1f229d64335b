//! Simulation-based inference benchmark tasks, as the sbibm benchmark defines them (Lueckmann et
//! al., "Benchmarking Simulation-Based Inference", AISTATS 2021): a prior over parameters theta,
//! a simulator drawing data x given theta, sbibm's ten observations x_o per task, and reference
//! posterior samples p(theta | x_o) to score an estimated posterior against (C2ST).
//!
//! Three tasks: [`TwoMoons`] (2 parameters, 2 data), [`GaussianLinear`] (10, 10; its posterior
//! is Gaussian in closed form) and [`Slcp`] (5 parameters, 8 data). All values are row-major
//! `Vec<f64>`s of `n x dim`; every draw comes from the caller's RNG, so a seeded RNG gives the
//! same numbers on every run.
//!
//! ```
//! use cnf_train::sbi::{task, Observation, Task};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let task = task("gaussian_linear")?;
//! let sims = task.simulate_pairs(1000, 0)?; // theta ~ prior, x ~ simulator(theta)
//! assert_eq!(sims.x.len(), 1000 * task.x_dim());
//! let obs = Observation::new(1)?;
//! let exact = task.reference_posterior(obs, 500, &mut StdRng::seed_from_u64(1))?;
//! assert_eq!(exact.len(), 500 * task.theta_dim());
//! # Ok::<(), cnf_train::sbi::SbiError>(())
//! ```

mod dist;
mod gaussian_linear;
mod observations;
mod slcp;
mod two_moons;

pub use dist::{IsotropicGaussian, UniformBox};
pub use gaussian_linear::GaussianLinear;
pub use slcp::Slcp;
pub use two_moons::TwoMoons;

use rand::{rngs::StdRng, RngCore, SeedableRng};

/// The names [`task`] accepts, in sbibm's spelling.
pub const TASK_NAMES: [&str; 3] = ["two_moons", "gaussian_linear", "slcp"];

/// How many observations sbibm defines per task (numbered 1 to 10).
pub const NUM_OBSERVATIONS: usize = 10;

/// Errors of the benchmark tasks: bad names, observation numbers or array shapes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SbiError {
    /// No task has this name.
    #[error("unknown task {name:?}; expected one of two_moons, gaussian_linear, slcp")]
    UnknownTask {
        /// The name asked for.
        name: String,
    },
    /// sbibm numbers its observations 1 to 10.
    #[error("observation {number} does not exist; the tasks have observations 1 to 10")]
    NoObservation {
        /// The number asked for.
        number: usize,
    },
    /// A row-major array's length is not a whole number of rows of the expected width.
    #[error("{what}: {len} values are not a whole number of rows of {width}")]
    Shape {
        /// Which argument (`theta`, `x`).
        what: &'static str,
        /// Its length.
        len: usize,
        /// The row width the task expects.
        width: usize,
    },
    /// An input value is NaN or infinite.
    #[error("{what}: value {value} at index {index} is not finite")]
    NonFinite {
        /// Which argument (`theta`, `x`).
        what: &'static str,
        /// Position in the row-major array.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The task has no sampler of its posterior; its reference samples ship as files.
    #[error(
        "{task} has no exact posterior sampler; score against sbibm's reference samples \
         (crates/cnf-train/tests/data/sbi/{task})"
    )]
    NoReferenceSampler {
        /// The task's name.
        task: &'static str,
    },
    /// A rejection sampler accepted too few proposals to finish (an observation far outside
    /// what the prior can produce).
    #[error("{task}: rejection sampling accepted {accepted} of {tried} proposals; giving up")]
    RejectionStalled {
        /// The task's name.
        task: &'static str,
        /// Proposals accepted.
        accepted: usize,
        /// Proposals drawn.
        tried: usize,
    },
}

/// One of sbibm's observations of a task, numbered 1 to [`NUM_OBSERVATIONS`]; checked once here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Observation(usize);

impl Observation {
    /// Observation `number` (1-based, as sbibm numbers them).
    ///
    /// # Errors
    /// [`SbiError::NoObservation`] unless `1 <= number <= 10`.
    pub fn new(number: usize) -> Result<Self, SbiError> {
        if (1..=NUM_OBSERVATIONS).contains(&number) {
            Ok(Self(number))
        } else {
            Err(SbiError::NoObservation { number })
        }
    }

    /// All ten observations, in order.
    pub fn all() -> impl Iterator<Item = Self> {
        (1..=NUM_OBSERVATIONS).map(Self)
    }

    /// The 1-based number.
    pub fn number(self) -> usize {
        self.0
    }

    /// The 0-based index into a table of observations.
    fn index(self) -> usize {
        self.0 - 1
    }
}

/// `n` simulated pairs: `theta` (`n x theta_dim`) drawn from the prior and `x` (`n x x_dim`)
/// from the simulator at those parameters, row i of one belonging to row i of the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulations {
    /// Number of pairs.
    pub n: usize,
    /// Parameters, row-major `n x theta_dim`.
    pub theta: Vec<f64>,
    /// Data, row-major `n x x_dim`.
    pub x: Vec<f64>,
}

/// A benchmark task: prior, simulator, observations and reference posterior.
///
/// Arrays are row-major `n x dim`; functions taking an array check its shape and finiteness
/// and return [`SbiError::Shape`] / [`SbiError::NonFinite`] otherwise.
pub trait Task: Send + Sync {
    /// sbibm's name of the task (`two_moons`, `gaussian_linear`, `slcp`).
    fn name(&self) -> &'static str;

    /// Number of parameters (theta's width).
    fn theta_dim(&self) -> usize;

    /// Number of data values per simulation (x's width).
    fn x_dim(&self) -> usize;

    /// `n` draws from the prior, row-major `n x theta_dim`.
    fn sample_prior(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64>;

    /// The prior's log-density at each row of `theta` (`-inf` outside its support).
    ///
    /// # Errors
    /// A `theta` that is not whole rows of finite values.
    fn prior_log_density(&self, theta: &[f64]) -> Result<Vec<f64>, SbiError>;

    /// One simulation per row of `theta`: row-major `n x x_dim`.
    ///
    /// # Errors
    /// A `theta` that is not whole rows of finite values.
    fn simulate(&self, theta: &[f64], rng: &mut dyn RngCore) -> Result<Vec<f64>, SbiError>;

    /// sbibm's observation x_o number `obs` (`x_dim` values).
    fn observation(&self, obs: Observation) -> Vec<f64>;

    /// `n` exact draws from the posterior p(theta | x_o), row-major `n x theta_dim`.
    ///
    /// # Errors
    /// [`SbiError::NoReferenceSampler`] for a task whose reference samples only exist as
    /// sbibm's files (SLCP); [`SbiError::RejectionStalled`] if a rejection sampler stalls.
    fn reference_posterior(
        &self,
        obs: Observation,
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>, SbiError>;

    /// `n` pairs from the joint p(theta) p(x | theta): the prior and then the simulator draw
    /// from one `StdRng` seeded with `seed`, so the same seed gives the same pairs.
    ///
    /// # Errors
    /// Those of [`Task::simulate`] (none for the prior's own draws).
    fn simulate_pairs(&self, n: usize, seed: u64) -> Result<Simulations, SbiError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let theta = self.sample_prior(n, &mut rng);
        let x = self.simulate(&theta, &mut rng)?;
        Ok(Simulations { n, theta, x })
    }

    /// Column names of theta: `theta_1`, `theta_2`, ... (1-based, like sbibm's `parameter_1`).
    fn theta_names(&self) -> Vec<String> {
        (1..=self.theta_dim())
            .map(|i| format!("theta_{i}"))
            .collect()
    }

    /// Column names of x: `x_1`, `x_2`, ...
    fn x_names(&self) -> Vec<String> {
        (1..=self.x_dim()).map(|i| format!("x_{i}")).collect()
    }
}

/// The task called `name` (one of [`TASK_NAMES`]).
///
/// # Errors
/// [`SbiError::UnknownTask`] for any other name.
pub fn task(name: &str) -> Result<Box<dyn Task>, SbiError> {
    match name {
        "two_moons" => Ok(Box::new(TwoMoons)),
        "gaussian_linear" => Ok(Box::new(GaussianLinear)),
        "slcp" => Ok(Box::new(Slcp)),
        _ => Err(SbiError::UnknownTask {
            name: name.to_string(),
        }),
    }
}

/// Checks that `values` is whole rows of `width` finite numbers; returns the number of rows.
fn check_rows(what: &'static str, values: &[f64], width: usize) -> Result<usize, SbiError> {
    if width == 0 || !values.len().is_multiple_of(width) {
        return Err(SbiError::Shape {
            what,
            len: values.len(),
            width,
        });
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(SbiError::NonFinite {
            what,
            index,
            value: values[index],
        });
    }
    Ok(values.len() / width)
}
