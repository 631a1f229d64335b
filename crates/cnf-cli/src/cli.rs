//! The `cnf` command line (clap): a thin layer over the library.
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cnf_field::{Activation, MlpConfig};

use cnf_train::model::Precision;
pub use cnf_train::model::{Method, MAX_STEPS};
use cnf_train::session::{EvalOptions, SolverOverrides, TraceSetting, DEFAULT_HIDDEN};
use cnf_train::trainer::{grad_from_name, Differentiation, TraceKind, GRAD_NAMES};

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
    Train(Box<TrainArgs>),
    /// Append a `logp` column (log-density in data space) to a CSV of points.
    Density(DensityArgs),
    /// Draw samples from a model, with its sampling solver: the model's solver, or for a
    /// conditional flow-matching model the RK4 steps its config.json records (`sampler`);
    /// --method/--steps/--rtol/--atol change the model's solver and sample with that.
    Sample(SampleArgs),
    /// Plot a 2-D model's density as a heat map.
    Plot(PlotArgs),
    /// Make a model folder from PyTorch/JAX weights (.npz, torch layout W0.., b0..).
    Import(ImportArgs),
    /// Test NLL of a model (with its standard error).
    Eval(EvalArgs),
}

/// Nonlinearity of the hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActivationArg {
    /// tanh(x).
    Tanh,
    /// ln(1 + e^x).
    Softplus,
    /// x * sigmoid(x) (SiLU).
    #[value(alias = "silu")]
    Swish,
    /// x for x > 0, e^x - 1 otherwise.
    Elu,
}

impl From<ActivationArg> for Activation {
    fn from(a: ActivationArg) -> Self {
        match a {
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Softplus => Activation::Softplus,
            ActivationArg::Swish => Activation::Swish,
            ActivationArg::Elu => Activation::Elu,
        }
    }
}

/// The trace estimator of the training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceArg {
    /// Exact up to 16 dimensions, Rademacher above (cnf-train's `TraceKind::auto`).
    Auto,
    /// Exact Jacobian diagonal.
    Exact,
    /// Hutchinson with a Rademacher probe.
    #[value(alias = "hutchinson")]
    Rademacher,
    /// Hutchinson with a Gaussian probe.
    Gaussian,
    /// Hutchinson with min(d, 4) orthogonal probes per point (lower variance, 4 tangent passes).
    Orthogonal,
}

impl From<TraceArg> for TraceSetting {
    fn from(t: TraceArg) -> Self {
        match t {
            TraceArg::Auto => TraceSetting::Auto,
            TraceArg::Exact => TraceSetting::Kind(TraceKind::Exact),
            TraceArg::Rademacher => TraceSetting::Kind(TraceKind::Rademacher),
            TraceArg::Gaussian => TraceSetting::Kind(TraceKind::Gaussian),
            TraceArg::Orthogonal => TraceSetting::Kind(TraceKind::Orthogonal),
        }
    }
}

/// What training minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Maximum likelihood through the ODE (exact or Hutchinson trace).
    Ml,
    /// Flow matching: regression onto a conditional velocity, no ODE solve in training.
    Fm,
}

/// The probability path of flow matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    /// x_t = (1 - t) x + t e (+ sigma noise): I-CFM; rectified flow at sigma 0.
    Straight,
    /// Lipman et al.'s optimal-transport path with sigma_min.
    Lipman,
    /// x_t = cos(pi t / 2) x + sin(pi t / 2) e (variance preserving).
    Cosine,
}

/// How the learning rate changes over a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LrScheduleArg {
    /// The same rate throughout.
    Constant,
    /// Cosine annealing from --lr to 0 over the iterations.
    Cosine,
}

impl From<LrScheduleArg> for cnf_train::optim::LrSchedule {
    fn from(s: LrScheduleArg) -> Self {
        match s {
            LrScheduleArg::Constant => Self::Constant,
            LrScheduleArg::Cosine => Self::Cosine,
        }
    }
}

/// How flow matching pairs data with base draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CouplingArg {
    /// Independent pairs.
    Independent,
    /// Exact minibatch optimal transport (squared distance).
    Ot,
    /// Entropic OT (Sinkhorn), epsilon 0.05 of the mean pairwise cost.
    Sinkhorn,
}

/// Largest minibatch `--batch` accepts (the solver holds several copies of the batch).
pub const MAX_BATCH: usize = 1 << 20;

/// `--grad`: one of cnf-train's gradient names, parsed into the `Differentiation` it names.
fn grad_parser() -> impl TypedValueParser<Value = Differentiation<f64>> {
    clap::builder::PossibleValuesParser::new(GRAD_NAMES)
        .map(|name| grad_from_name(&name).expect("GRAD_NAMES are the names grad_from_name knows"))
}

/// A parser of integers in `lo..=hi` (clap's usage error, exit code 2, names the range).
fn usize_in(lo: usize, hi: usize) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(lo as u64..=hi as u64)
}

/// Parses a method name; the usage error lists every method (and accepts rk45 for dopri5).
fn method_parser() -> impl TypedValueParser<Value = Method> {
    let names = Method::ALL.iter().map(|m| m.name()).chain(["rk45"]);
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<Method>())
}

/// Parses a positive, finite tolerance.
fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a positive finite number")),
        Err(e) => Err(e.to_string()),
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite number >= 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// Architecture of the MLP (train, import).
#[derive(Debug, Clone, Args)]
pub struct ArchArgs {
    /// Hidden widths, comma-separated [default: 64,64,64; tables: from the dimension and rows;
    /// --context with flow matching: 128,128,128].
    #[arg(long, value_delimiter = ',', value_parser = usize_in(1, MlpConfig::MAX_WIDTH))]
    pub hidden: Option<Vec<usize>>,
    /// Nonlinearity of the hidden layers [default: tanh].
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
}

impl ArchArgs {
    /// The hidden widths (default 64,64,64).
    pub fn hidden(&self) -> Vec<usize> {
        self.hidden
            .clone()
            .unwrap_or_else(|| DEFAULT_HIDDEN.to_vec())
    }
    /// The activation (default tanh).
    pub fn activation(&self) -> Activation {
        self.activation.map_or(Activation::Tanh, Activation::from)
    }
}

/// Solver options shared by several commands.
#[derive(Debug, Clone, Args)]
pub struct SolverArgs {
    /// The Runge-Kutta method (adaptive: bs3, dopri5, tsit5, dop853; fixed: euler, midpoint,
    /// heun, rk4, which need --steps).
    #[arg(long, value_parser = method_parser())]
    pub method: Option<Method>,
    /// Fixed number of steps (required for euler/midpoint/heun/rk4).
    #[arg(long, value_parser = usize_in(1, MAX_STEPS))]
    pub steps: Option<usize>,
    /// Relative tolerance of adaptive methods.
    #[arg(long, value_parser = positive_f64)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of adaptive methods.
    #[arg(long, value_parser = positive_f64)]
    pub atol: Option<f64>,
    /// Error norm of adaptive solves over many points: rms over the batch (the peers'; cheapest)
    /// or per-sample (every point held to the tolerances; ~1.6x the evaluations)
    /// [default: the model's, rms].
    #[arg(long, value_parser = ["rms", "per-sample"])]
    pub error_norm: Option<String>,
    /// Grading of fixed steps: step i of N ends at the fraction 1 - (1 - i/N)^P of the solve, so
    /// for P > 1 the steps shrink towards its end (for sampling: the data) [default: 1, equal
    /// steps; a conditional flow-matching model's sampler: 1.5].
    #[arg(long)]
    pub grading: Option<f64>,
}

impl SolverArgs {
    /// The changes these flags make to a model's solver.
    pub fn overrides(&self) -> SolverOverrides {
        SolverOverrides {
            method: self.method,
            steps: self.steps,
            rtol: self.rtol,
            atol: self.atol,
            per_sample_norm: self.error_norm.as_deref().map(|n| n == "per-sample"),
            grading: self.grading,
        }
    }
    /// How a model is loaded for evaluation: these solver changes, in f64 when `f64`.
    pub fn eval_options(&self, f64: bool) -> EvalOptions {
        EvalOptions {
            solver: self.overrides(),
            precision: f64.then_some(Precision::F64),
        }
    }
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A toy set (8gaussians, 2spirals, checkerboard, circles, moons, pinwheel, rings, swissroll)
    /// or a CSV / .npy file [default: 8gaussians; with --resume: the run's].
    #[arg(long)]
    pub data: Option<String>,
    /// Columns to use (names or 0-based indices), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Columns to drop (names or 0-based indices), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub drop: Option<Vec<String>>,
    /// Context columns (names), comma-separated: train the conditional density p(x | c) of the
    /// other columns (or those of --columns) given these, e.g. a posterior p(theta | x) on
    /// simulations (standardised with the training split's statistics).
    #[arg(long, value_delimiter = ',')]
    pub context: Option<Vec<String>>,
    /// Whether a CSV file's first row names the columns: auto (when any field is not a
    /// number; a first row of numbers is read as data, with a note), yes (even if numeric:
    /// `400,500`), no (data; columns x0, x1, ...) [default: auto; with --resume: the run's].
    #[arg(long)]
    pub header: Option<cnf_train::data::HeaderMode>,
    /// Number of iterations (with --resume: the total to reach) [default: toy sets 1000,
    /// --objective fm 10000 (its iterations cost ~1/25 as much); tables chosen from their size,
    /// with early stopping; --context with flow matching 20000].
    #[arg(long, value_parser = usize_in(1, usize::MAX))]
    pub iters: Option<usize>,
    /// Minibatch size [default: 512; tables min(512, training rows)].
    #[arg(long, value_parser = usize_in(1, MAX_BATCH))]
    pub batch: Option<usize>,
    /// Adam learning rate [default: 1e-3, both objectives]; with --resume it replaces the
    /// checkpoint's.
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// How the learning rate changes over the run [default: constant; --context with flow
    /// matching: cosine].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrScheduleArg>,
    /// Decoupled weight decay (AdamW) [default: toy sets 0; tables 1e-4 up to 5k training rows,
    /// 1e-5 above; --context with flow matching 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Decay of an exponential moving average of the weights: the average is validated and
    /// kept, training goes on from the raw weights (0: none) [default: 0; --context with flow
    /// matching 0.999].
    #[arg(long)]
    pub ema_decay: Option<f64>,
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Gradient method: backprop (reverse mode through the solver's steps), checkpointed (the
    /// same gradient keeping every N-th state: less memory, one more forward pass), adjoint
    /// (the continuous adjoint solved backwards at the solver's tolerances: O(1) memory)
    /// [default: backprop].
    #[arg(long, value_parser = grad_parser())]
    pub grad: Option<Differentiation<f64>>,
    /// Steps per segment of --grad checkpointed [default: 8].
    #[arg(long, requires = "grad", value_parser = usize_in(1, usize::MAX))]
    pub checkpoint_every: Option<usize>,
    /// Trace of the training loss [default: auto = exact up to 16 dimensions, rademacher
    /// above].
    #[arg(long, value_enum)]
    pub trace: Option<TraceArg>,
    /// Train in f64 (default f32).
    #[arg(long)]
    pub f64: bool,
    /// Seed of initialisation, data split, batches and probes [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validate every N iterations [default: toy sets 100, --objective fm 1000; tables 20 up to
    /// 5k training rows, 100 above; --context with flow matching 1000].
    #[arg(long, value_parser = usize_in(1, usize::MAX))]
    pub val_every: Option<usize>,
    /// Training objective [default: ml; with --context fm, which then also samples with RK4
    /// steps (docs/sbi.md)].
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveArg>,
    /// Flow matching's probability path [default: straight].
    #[arg(long, value_enum, requires = "objective")]
    pub fm_path: Option<PathArg>,
    /// Flow matching's noise: sigma of the straight path, sigma_min of Lipman's
    /// [default: 0 straight, 1e-4 lipman].
    #[arg(long, requires = "objective")]
    pub fm_sigma: Option<f64>,
    /// Flow matching's coupling of data and base draws [default: independent].
    #[arg(long, value_enum, requires = "objective")]
    pub coupling: Option<CouplingArg>,
    /// RNODE's kinetic-energy weight: adds w * mean int |v|^2 dt to the training loss (fewer
    /// solver steps; maximum likelihood only) [default: 0].
    #[arg(long, value_parser = non_negative_f64)]
    pub kinetic: Option<f64>,
    /// RNODE's Jacobian weight: adds w * mean int |dv/dz|_F^2 dt (exact with the exact trace,
    /// the free Hutchinson estimate otherwise) [default: 0].
    #[arg(long, value_parser = non_negative_f64)]
    pub jacobian: Option<f64>,
    /// STEER: each training solve ends at a time drawn uniformly from [1 - b, 1 + b], b < 1
    /// [default: 0, always 1].
    #[arg(long, value_parser = non_negative_f64)]
    pub steer: Option<f64>,
    /// ERNODE's local-error weight (Pal et al. 2021): adds w * sum_j |h_j| E_j, the training
    /// solve's scaled local error estimates weighted by step size (fewer solver steps; needs
    /// --grad backprop or checkpointed and bs3/dopri5/tsit5) [default: 0].
    #[arg(long, value_parser = non_negative_f64)]
    pub local_error: Option<f64>,
    /// Stop after this many validations without improvement [default: toy sets never; tables
    /// 10; --context with flow matching 5].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Continue the run in --out from its checkpoint (settings come from its config.json).
    #[arg(long)]
    pub resume: bool,
    /// Replace a run already in --out (its files are removed first).
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Skip the PNG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Output folder [default: `runs/NAME`, or `runs/NAME-2`, `-3`, ... if taken; NAME is the data's].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DensityArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV (or .npy) of points: the model's columns, by name, among any others (for a
    /// conditional model also its context columns: log p(x | c) per row).
    #[arg(long)]
    pub input: PathBuf,
    /// Output CSV: the input's columns with `logp` appended (default: standard output).
    /// Written beside its name and renamed when complete: an error leaves an old file intact.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replace the input file with the output (an --output naming the input is refused
    /// without it).
    #[arg(long)]
    pub in_place: bool,
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
    /// Number of samples (for a conditional model: for each row of --given).
    #[arg(short = 'n', long)]
    pub n: usize,
    /// CSV of the conditions of a conditional model: its context columns by name, one row per
    /// condition. One row gives -n rows of the modelled columns; several rows add a first
    /// column `given_row` (0-based row of this file) to each draw.
    #[arg(long)]
    pub given: Option<PathBuf>,
    /// Output CSV (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Seed of the base samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Sample in f64 (for an f32 model whose samples overflow f32).
    #[arg(long)]
    pub f64: bool,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Grid points per axis (at most 2000).
    #[arg(long, default_value_t = 200, value_parser = usize_in(2, 2000))]
    pub resolution: usize,
    /// Evaluate and sample in f64.
    #[arg(long)]
    pub f64: bool,
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
    /// Replace a model already in --out.
    #[arg(long)]
    pub force: bool,
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
