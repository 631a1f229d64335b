//! `cnf_rs._native`: the Python extension module of the `cnf-rs` package. A thin layer: arrays
//! in and out, the GIL released around every solve and training run, errors turned into Python
//! exceptions with the `cnf` command's one-line messages. The scikit-learn estimator and the
//! `solve_ivp`-like result live in Python (`python/cnf_rs/`); the glue to cnf-train is
//! `model.rs`, the ODE API `ode.rs`.
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use cnf_field::Activation;
use cnf_ode::Method;
use cnf_train::error::TrainError;
use cnf_train::fm::{Coupling, FlowMatching, PathSpec, TimeDist};
use cnf_train::model::Precision;
use cnf_train::session::{flow_matching_by_default, SolverOverrides, TrainOptions};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod model;
mod ode;

use model::{Model, Rows};

/// Rust's allocations in the extension: mimalloc keeps freed pages for reuse, where glibc's
/// malloc in a process that has trained returns the solves' scratch to the kernel at each free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    cnf_rs,
    SolverError,
    PyRuntimeError,
    "An ODE solve failed (step size underflow, step budget exhausted, a non-finite state) or \
     training diverged."
);

/// Set in a child process after `fork`: rayon's global pool did not survive it, so every call
/// there runs on a pool of its own.
static FORKED: AtomicBool = AtomicBool::new(false);

/// The Python exception of a cnf-train error, with the `cnf` command's message.
fn py_err(e: TrainError) -> PyErr {
    use cnf_flow::FlowError;
    let msg = e.to_string();
    match e {
        TrainError::Flow(FlowError::Solve { .. } | FlowError::NonFiniteOutput { .. })
        | TrainError::Diverged { .. } => SolverError::new_err(msg),
        TrainError::Io { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// Runs `work` on `n_threads` threads: rayon's global pool when not given (it reads
/// `RAYON_NUM_THREADS`), else a pool of that size for this call. After a fork, always a pool
/// of this call's own.
fn with_threads<R: Send>(
    n_threads: Option<usize>,
    work: impl FnOnce() -> R + Send,
) -> Result<R, TrainError> {
    if n_threads.is_none() && !FORKED.load(Ordering::Relaxed) {
        return Ok(work());
    }
    let n = match n_threads {
        Some(0) => {
            return Err(TrainError::Invalid(
                "n_threads must be at least 1 (or None: RAYON_NUM_THREADS, else every core)".into(),
            ))
        }
        Some(n) => n,
        None => std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| TrainError::Invalid(format!("cannot start {n} threads: {e}")))?;
    Ok(pool.install(work))
}

/// Releases the GIL and runs `work` on `n_threads` threads.
fn detached<R: Send>(
    py: Python<'_>,
    n_threads: Option<usize>,
    work: impl FnOnce() -> Result<R, TrainError> + Send,
) -> PyResult<R> {
    py.detach(|| with_threads(n_threads, work).and_then(|r| r))
        .map_err(py_err)
}

/// Issues each of `warnings` as a Python `UserWarning`, attributed to the caller of the
/// estimator's method (stack level 2: the method itself is level 1).
fn warn_all(py: Python<'_>, warnings: Vec<String>) -> PyResult<()> {
    let category = py.get_type::<PyUserWarning>();
    for w in warnings {
        // A message holds no NUL byte (column names come from a CSV header or Python str).
        let message = CString::new(w.replace('\0', "")).unwrap_or_default();
        PyErr::warn(py, &category, &message, 2)?;
    }
    Ok(())
}

/// The rows of a float64 array, copied once into the owned buffer cnf-train's tables hold
/// (read in place when C-contiguous, as the Python layer passes it).
fn rows(x: &PyReadonlyArray2<'_, f64>) -> Rows {
    let [n, width] = [x.shape()[0], x.shape()[1]];
    let data = match x.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => x.as_array().iter().copied().collect(),
    };
    Rows { data, n, width }
}

/// A method by name (`dopri5`, `rk4`, ...; see `Method::ALL`).
pub(crate) fn method(name: &str) -> Result<Method, TrainError> {
    name.parse()
        .map_err(|e: cnf_ode::UnknownMethod| TrainError::Invalid(e.to_string()))
}

/// What pickling stores: the constructor and its arguments.
type Reduced<'py> = (Bound<'py, PyAny>, (String, Bound<'py, PyBytes>));

/// A fitted or loaded density model (config.json + weights), in the precision it was trained in.
#[pyclass(module = "cnf_rs._native", name = "NativeModel", frozen)]
struct NativeModel {
    model: Model,
}

#[pymethods]
impl NativeModel {
    /// Fits a model to the rows of `x` (float64, `(n, d)`) as `cnf train` does for a table;
    /// with `context` (`(n, k)`, columns named `context_columns`), the conditional density
    /// p(x | c) as `cnf train --context`.
    #[staticmethod]
    #[pyo3(signature = (x, columns, context=None, context_columns=None, *, hidden=None,
        activation="tanh", iters=None, batch=None, lr=None, weight_decay=None, ema_decay=None, patience=None,
        val_every=None, method=None, steps=None, rtol=None, atol=None, precision="f32", seed=0,
        flow_matching=None, n_threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f64>,
        columns: Vec<String>,
        context: Option<PyReadonlyArray2<'_, f64>>,
        context_columns: Option<Vec<String>>,
        hidden: Option<Vec<usize>>,
        activation: &str,
        iters: Option<usize>,
        batch: Option<usize>,
        lr: Option<f64>,
        weight_decay: Option<f64>,
        ema_decay: Option<f64>,
        patience: Option<usize>,
        val_every: Option<usize>,
        method: Option<&str>,
        steps: Option<usize>,
        rtol: Option<f64>,
        atol: Option<f64>,
        precision: &str,
        seed: u64,
        flow_matching: Option<bool>,
        n_threads: Option<usize>,
    ) -> PyResult<Self> {
        // None: the library's rule, as `cnf train` (flow matching for a conditional run).
        let flow_matching =
            flow_matching.unwrap_or_else(|| flow_matching_by_default(context.is_some()));
        let x = rows(&x);
        let names_fit = |names: &[String], width: usize, what: &str| {
            if names.len() == width {
                Ok(())
            } else {
                Err(PyValueError::new_err(format!(
                    "{} {what} names for {width} columns",
                    names.len()
                )))
            }
        };
        names_fit(&columns, x.width, "column")?;
        let context = match (context, context_columns) {
            (None, None) => None,
            (Some(c), Some(names)) => {
                let c = rows(&c);
                names_fit(&names, c.width, "context column")?;
                Some((c, names))
            }
            _ => {
                return Err(PyValueError::new_err(
                    "context and context_columns go together",
                ))
            }
        };
        let options = TrainOptions {
            seed: Some(seed),
            hidden,
            activation: Some(
                activation
                    .parse::<Activation>()
                    .map_err(|e| py_err(e.into()))?,
            ),
            solver: SolverOverrides {
                method: method.map(crate::method).transpose().map_err(py_err)?,
                steps,
                rtol,
                atol,
                per_sample_norm: None,
                grading: None,
            },
            batch,
            lr,
            weight_decay,
            ema_decay,
            iters,
            val_every,
            patience,
            flow_matching: flow_matching.then_some(FlowMatching {
                path: PathSpec::Straight { sigma: 0.0 },
                coupling: Coupling::Independent,
                time: TimeDist::Uniform,
            }),
            precision: Some(match precision {
                "f32" => Precision::F32,
                "f64" => Precision::F64,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "precision must be \"f32\" or \"f64\", got {other:?}"
                    )))
                }
            }),
            ..TrainOptions::default()
        };
        let model = detached(py, n_threads, move || {
            Model::fit(x, columns, context, options)
        })?;
        Ok(Self { model })
    }

    /// The model of a folder written by `cnf train`, `cnf import` or [`NativeModel::save`].
    #[staticmethod]
    fn load(py: Python<'_>, dir: PathBuf) -> PyResult<Self> {
        let model = detached(py, None, move || Model::open(&dir))?;
        Ok(Self { model })
    }

    /// Writes config.json and model.safetensors into `dir`.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        detached(py, None, || self.model.save(&dir))
    }

    /// The model of config.json's text and model.safetensors' bytes.
    #[staticmethod]
    fn from_bytes(config_json: &str, weights: &[u8]) -> PyResult<Self> {
        let model = Model::from_bytes(config_json, weights).map_err(py_err)?;
        Ok(Self { model })
    }

    /// (config.json's text, model.safetensors' bytes).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<(String, Bound<'py, PyBytes>)> {
        let (json, weights) = self.model.to_bytes().map_err(py_err)?;
        Ok((json, PyBytes::new(py, &weights)))
    }

    /// Pickles as config.json's text and the weights' bytes: unpickling rebuilds the same model
    /// bit for bit (f32 weights travel as f32).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Reduced<'py>> {
        let rebuild = py.get_type::<NativeModel>().getattr("from_bytes")?;
        Ok((rebuild, self.to_bytes(py)?))
    }

    /// Data-space log-densities of the rows of `x`; for a conditional model log p(x | c),
    /// `context` one row per row of `x` (a `UserWarning` per context column far outside the
    /// training range, as `cnf density` warns).
    #[pyo3(signature = (x, context=None, *, n_threads=None))]
    fn log_density<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        context: Option<PyReadonlyArray2<'py, f64>>,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (x, context) = (rows(&x), context.as_ref().map(rows));
        let mut warnings = Vec::new();
        let logp = detached(py, n_threads, || {
            self.model.log_density(x, context, &mut warnings)
        })?;
        warn_all(py, warnings)?;
        Ok(PyArray1::from_vec(py, logp))
    }

    /// `n` samples, `(n, d)`, from the base points of `seed`; for a conditional model `n` for
    /// each row `i` of `context` (`(m, k)`), `(m n, d)` with draw `j` at row `i n + j` (a
    /// `UserWarning` per context column far outside the training range, as `cnf sample`).
    #[pyo3(signature = (n, seed, context=None, *, n_threads=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
        context: Option<PyReadonlyArray2<'py, f64>>,
        n_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let context = context.as_ref().map(rows);
        let mut warnings = Vec::new();
        let x = detached(py, n_threads, || {
            self.model.sample(n, seed, context, &mut warnings)
        })?;
        warn_all(py, warnings)?;
        let d = self.model.dim();
        let rows = x.len() / d.max(1);
        PyArray1::from_vec(py, x).reshape([rows, d])
    }

    /// Number of columns.
    #[getter]
    fn dim(&self) -> usize {
        self.model.dim()
    }

    /// The data's column names.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.model.config().columns.clone()
    }

    /// The context columns of a conditional model (empty: unconditional).
    #[getter]
    fn context_columns(&self) -> Vec<String> {
        self.model.context_columns().to_vec()
    }

    /// "f32" or "f64".
    #[getter]
    fn precision(&self) -> &'static str {
        self.model.config().precision.as_str()
    }
}

/// The GEMM path the flows run on in this process: "avx512" (the CPU has it) or "generic"
/// (it has not, or `CNF_KERNEL=generic` was set before the first call).
#[pyfunction]
fn kernel() -> &'static str {
    cnf_field::kernel::active()
}

/// The rows (indices) that `fit` with `seed` trains on, validates on and holds out among `n`
/// rows (its 80/10/10 split), for training a peer on the same rows.
#[pyfunction]
fn split_rows(n: usize, seed: u64) -> PyResult<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let [train, val, test] = model::split_rows(n, seed).map_err(py_err)?;
    Ok((train, val, test))
}

/// Marks this process as a child after `fork` (registered with `os.register_at_fork`).
#[pyfunction]
fn _after_fork_in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SolverError", m.py().get_type::<SolverError>())?;
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(ode::solve, m)?)?;
    m.add_function(wrap_pyfunction!(kernel, m)?)?;
    m.add_function(wrap_pyfunction!(split_rows, m)?)?;
    m.add(
        "METHODS",
        Method::ALL
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>(),
    )?;
    m.add("SOLVE_CHUNK", model::SOLVE_CHUNK)?;
    Ok(())
}
