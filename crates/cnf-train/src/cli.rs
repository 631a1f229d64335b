//! The `cnf` command line (clap): a thin layer over the library.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Continuous normalizing flows: train density models, evaluate log-densities, sample, plot.
#[derive(Debug, Parser)]
#[command(name = "cnf", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a CNF on a toy set or a table (CSV / .npy); writes a model folder.
    Train(TrainArgs),
    /// Append a `logp` column (log-density in data space) to a CSV of points.
    Density(DensityArgs),
    /// Draw samples from a model.
    Sample(SampleArgs),
    /// Plot a 2-D model's density as a heat map.
    Plot(PlotArgs),
    /// Make a model folder from PyTorch/JAX weights (.npz, torch layout W0.., b0..).
    Import(ImportArgs),
    /// Test NLL of a model (with its standard error).
    Eval(EvalArgs),
}

/// Architecture of the MLP (train, import).
#[derive(Debug, Clone, Args)]
pub struct ArchArgs {
    /// Hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,64,64")]
    pub hidden: Vec<usize>,
    /// tanh, softplus, swish or elu.
    #[arg(long, default_value = "tanh")]
    pub activation: String,
}

impl ArchArgs {
    /// The activation, parsed.
    pub fn activation(&self) -> Result<cnf_field::Activation, crate::error::TrainError> {
        self.activation
            .parse()
            .map_err(|e: cnf_field::FieldError| crate::error::TrainError::Invalid(e.to_string()))
    }
}

/// Solver options shared by several commands.
#[derive(Debug, Clone, Args)]
pub struct SolverArgs {
    /// euler, midpoint, heun, rk4, bs3, dopri5, tsit5 or dop853.
    #[arg(long)]
    pub method: Option<String>,
    /// Fixed number of steps (required for euler/midpoint/heun/rk4).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Relative tolerance of adaptive methods.
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of adaptive methods.
    #[arg(long)]
    pub atol: Option<f64>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A toy set (8gaussians, 2spirals, checkerboard, circles, moons, pinwheel, rings, swissroll)
    /// or a CSV / .npy file.
    #[arg(long, default_value = "8gaussians")]
    pub data: String,
    /// Columns to use (names or 0-based indices), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Columns to drop (names or 0-based indices), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Number of iterations.
    #[arg(long, default_value_t = 1000)]
    pub iters: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Adam learning rate [default: 1e-3]; with --resume it replaces the checkpoint's.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Decoupled weight decay (AdamW).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Gradient method: backprop (through the solver's steps) or adjoint.
    #[arg(long, default_value = "backprop")]
    pub grad: String,
    /// Trace: auto (exact up to 8 dimensions), exact, rademacher or gaussian (Hutchinson).
    #[arg(long, default_value = "auto")]
    pub trace: String,
    /// Train in f64 (default f32).
    #[arg(long)]
    pub f64: bool,
    /// Seed of initialisation, data and probes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Validate every N iterations.
    #[arg(long, default_value_t = 100)]
    pub val_every: usize,
    /// Stop after this many validations without improvement.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Skip the PNG plots of 2-D models.
    #[arg(long)]
    pub no_plots: bool,
    /// Output folder (default runs/<data name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DensityArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV of points (the model's columns).
    #[arg(long)]
    pub input: PathBuf,
    /// Output CSV (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Evaluate in f64.
    #[arg(long)]
    pub f64: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples.
    #[arg(short = 'n', long)]
    pub n: usize,
    /// Output CSV (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Seed of the base samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Grid points per axis.
    #[arg(long, default_value_t = 200)]
    pub resolution: usize,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// .npz with W0..Wk (out, in) and b0..bk.
    #[arg(long)]
    pub npz: PathBuf,
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Output model folder.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Toy set name (10k fresh samples from the test seed) or a table file (its recorded test
    /// split when it is the training source, else the whole file).
    #[arg(long)]
    pub data: String,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Evaluate in f64.
    #[arg(long)]
    pub f64: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}
