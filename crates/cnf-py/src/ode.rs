//! `solve`: cnf-ode's solvers on a Python right-hand side `f(t, y) -> dy/dt`, for the
//! `solve_ivp`-like wrapper in `cnf_rs.ode`. The solve runs with the GIL released; each
//! evaluation of `f` takes it back for the call.
use cnf_ode::{AcceptedStep, OdeError, SolverSpec, Stats};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::SolverError;

/// What a solve returns to Python: output times `(m,)`, states `(n, m)` (scipy's layout), and
/// the work done (evaluations, accepted and rejected steps, Jacobians, LU factorisations).
type Solved<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray2<f64>>,
    (usize, usize, usize, usize, usize),
);

/// The exception of a cnf-ode error: a failure during the integration (with the work done so
/// far) is a `SolverError`, a refused setting a `ValueError`; the message is the error's own.
fn ode_err(e: OdeError) -> PyErr {
    if e.stats().is_some() {
        SolverError::new_err(e.to_string())
    } else {
        PyValueError::new_err(e.to_string())
    }
}

/// `f(t, y)` into `dy`: a 1-D float64 array (or a sequence of floats) of `dy`'s length.
fn eval(py: Python<'_>, f: &Py<PyAny>, t: f64, y: &[f64], dy: &mut [f64]) -> PyResult<()> {
    let out = f.call1(py, (t, PyArray1::from_slice(py, y)))?;
    let out = out.bind(py);
    let values: Vec<f64>;
    let got: &[f64] = match out.extract::<PyReadonlyArray1<'_, f64>>() {
        Ok(a) if a.is_contiguous() => {
            let s = a.as_slice()?;
            if s.len() == dy.len() {
                dy.copy_from_slice(s);
                return Ok(());
            }
            values = s.to_vec();
            &values
        }
        _ => {
            values = out.extract::<Vec<f64>>().map_err(|_| {
                PyValueError::new_err(
                    "f(t, y) must return a 1-D sequence of floats (a float64 array is fastest)",
                )
            })?;
            &values
        }
    };
    if got.len() != dy.len() {
        return Err(PyValueError::new_err(format!(
            "f(t, y) returned {} values for a state of {}",
            got.len(),
            dy.len()
        )));
    }
    dy.copy_from_slice(got);
    Ok(())
}

/// Solves `y' = f(t, y)` from `t0` to `t1`. Output at `t_eval` when given, else at `t0` and the
/// end of every accepted step (as scipy's `solve_ivp`).
#[pyfunction]
#[pyo3(signature = (f, t0, t1, y0, *, method, rtol, atol, t_eval=None, steps=None, max_steps=None))]
#[allow(clippy::too_many_arguments)]
pub fn solve<'py>(
    py: Python<'py>,
    f: Py<PyAny>,
    t0: f64,
    t1: f64,
    y0: Vec<f64>,
    method: &str,
    rtol: f64,
    atol: f64,
    t_eval: Option<Vec<f64>>,
    steps: Option<usize>,
    max_steps: Option<usize>,
) -> PyResult<Solved<'py>> {
    let m = crate::method(method).map_err(crate::py_err)?;
    let mut b = SolverSpec::builder(m);
    if let Some(n) = max_steps {
        b = b.max_steps(n);
    }
    let b = match steps {
        Some(n) => b.fixed_steps(n),
        None => b.rtol(rtol).atol(atol),
    };
    let spec: SolverSpec<f64> = b.build().map_err(ode_err)?;
    let every_step = t_eval.is_none();
    let solver = spec.solver().output_times(t_eval.unwrap_or_default());
    let n = y0.len();
    let mut failure: Option<PyErr> = None;
    let mut ts: Vec<f64> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    if every_step {
        ts.push(t0);
        ys.extend_from_slice(&y0);
    }
    let result = py.detach(|| {
        let rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
            if failure.is_none() {
                failure = Python::attach(|py| eval(py, &f, t, y, dy)).err();
            }
            if failure.is_some() {
                // Stops the solve (a non-finite derivative); the Python error is raised instead.
                dy.fill(f64::NAN);
            }
        };
        let mut record = |s: &AcceptedStep<'_, f64, Vec<f64>>| {
            if every_step {
                ts.push(s.t);
                ys.extend_from_slice(s.y);
            }
        };
        solver.solve_observed(rhs, t0, t1, &y0, &mut record)
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let sol = result.map_err(ode_err)?;
    if !every_step {
        ts = sol.t_out;
        ys = sol.y_out.concat();
    }
    let Stats {
        nfe,
        accepted,
        rejected,
        jacobians,
        factorisations,
        ..
    } = sol.stats;
    let m = ts.len();
    // States were recorded one time after another, (m, n); scipy's layout is (n, m).
    let y = PyArray1::from_vec(py, ys).reshape([m, n])?.transpose()?;
    let y = y.cast_into::<PyArray2<f64>>()?;
    Ok((
        PyArray1::from_vec(py, ts),
        y,
        (nfe, accepted, rejected, jacobians, factorisations),
    ))
}
