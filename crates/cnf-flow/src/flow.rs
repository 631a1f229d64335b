//! The density model: log-densities, sampling and transport of points.
use cnf_field::{Real, Trace, VectorField};
use cnf_ode::{cast, Method, PiController, SampleLayout, Solver, SolverSpec, Stats};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::dynamics::{Augmented, Transport};
use crate::error::{solve_error, FlowError};
use crate::rows::{check_memory, RowParallel};

/// How a set of points is split into ODE solves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// One solve for all points with shared steps (the peers' way).
    Whole,
    /// Solves of `n` points each, in parallel over cores (rayon); `Chunks(1)` gives every point
    /// its own steps.
    Chunks(usize),
}

/// Log-densities of a batch and what produced them.
#[derive(Debug, Clone)]
pub struct Density<T> {
    /// log p(x) per point.
    pub logp: Vec<T>,
    /// z(1) per point, `(B, d)`.
    pub z1: Vec<T>,
    /// D(1) = integral of tr(dv/dz) per point.
    pub delta_logp: Vec<T>,
    /// Work summed over all solves.
    pub stats: Stats,
}

/// Points moved by the flow, and the work done.
#[derive(Debug, Clone)]
pub struct Transported<T> {
    /// The points, `(B, d)`.
    pub points: Vec<T>,
    /// Work summed over all solves.
    pub stats: Stats,
}

/// Points along the flow at several times, and the work of the solves.
#[derive(Debug, Clone)]
pub struct Trajectory<T> {
    /// One `(B, d)` buffer per requested time.
    pub points: Vec<Vec<T>>,
    /// Work done.
    pub stats: Stats,
}

/// log N(z; 0, I) of one point.
pub fn log_normal<T: Real>(z: &[T]) -> T {
    let half = cast::<T>(0.5);
    let log2pi = cast::<T>((2.0 * std::f64::consts::PI).ln());
    let sq = z.iter().fold(T::zero(), |acc, &x| acc + x * x);
    -half * sq - half * log2pi * T::from_usize(z.len()).unwrap_or_else(T::nan)
}

/// A continuous normalizing flow: data x at t = 0, base N(0, I) at t = 1.
///
/// Every solve uses `solver` (any `cnf-ode` method, fixed steps or tolerances, step budget,
/// controller, error norm). With [`SolverSpec::per_sample_norm`] each point of a batch is held
/// to the tolerances as if solved alone (~1.6x the evaluations of the batch RMS, which keeps
/// the batch accurate on average but may leave a hard point off by more: 2e-2 in log p at 1e-5
/// on the diffrax model in a batch of 10k, against 2.7e-4; `examples/batch_norm.rs`,
/// docs/flow.md).
///
/// Without an explicit controller ([`SolverSpec::explicit_controller`]), solves that only move
/// points (`sample`, `transform`, `trajectory`) use the tableau's controller without PI memory
/// ([`cnf_ode::PiParams::integral`]; for Dopri5 [`cnf_ode::PiParams::DOPRI5_I`], the I
/// controller diffrax defaults to), and solves that carry log-density or penalty columns
/// (`log_density`, training) the tableau's own controller (Hairer's PI controller for Dopri5).
/// Why (`examples/sample_steps.rs`, f32 Dopri5 at 1e-5 on the diffrax model, 10k points as one
/// state): sampling with the PI controller takes 7 steps (44 NFE) where diffrax takes 6; its
/// scaled errors stay at 0.004-0.08, and the PI memory holds the step growth back. The I
/// controller takes 6 steps (38 NFE) and its samples are still closer to a 1e-9 reference than
/// diffrax's (max error 1.3e-3 vs 1.6e-3). It is less accurate than the PI controller at the
/// same tolerance, but not less efficient: NFE against error, both controllers lie on one
/// curve. For log-densities the I controller is worse (rejected 3 times at 1e-5: 56 NFE against
/// 44), so those solves keep the PI controller.
#[derive(Debug, Clone)]
pub struct Cnf<T, F> {
    /// The vector field v(z, t).
    pub field: F,
    /// The solver for every solve.
    pub solver: SolverSpec<T>,
    /// How points are split into solves.
    pub batching: Batching,
}

impl<T: Real, F: VectorField<T>> Cnf<T, F> {
    /// A flow with whole-batch solves.
    pub fn new(field: F, solver: SolverSpec<T>) -> Self {
        Self {
            field,
            solver,
            batching: Batching::Whole,
        }
    }

    /// The solver of a state whose first `points * dim` components are the points (row-major)
    /// followed by `columns` blocks of one value per point (0: the points only, as in
    /// sampling): the per-sample norm's layout, and the controller (see [`Cnf`]).
    pub(crate) fn solver_for(&self, points: usize, columns: usize) -> Solver<Method, T> {
        let layout = SampleLayout::rows(points, self.dim()).then_columns(columns);
        let solver = self.solver.solver_for(layout);
        match self.solver.explicit_controller() {
            None if columns == 0 => solver.controller(PiController::from_params(
                self.solver.method().controller().integral(),
            )),
            _ => solver,
        }
    }
    /// The same flow with another batching.
    pub fn with_batching(mut self, batching: Batching) -> Self {
        self.batching = batching;
        self
    }
    /// Dimension of the data.
    pub fn dim(&self) -> usize {
        self.field.dim()
    }

    /// Checks the method and a `(B, d)` buffer and returns B.
    pub(crate) fn check_points(&self, x: &[T]) -> Result<usize, FlowError> {
        check_method(self.solver.method())?;
        let d = self.dim();
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(FlowError::Shape {
                len: x.len(),
                dim: d,
            });
        }
        if let Some(i) = x.chunks(d).position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(FlowError::NonFiniteInput { sample: i });
        }
        Ok(x.len() / d)
    }

    /// Checks a context for `rows` points: `(rows, k)` for the field's context width `k` (empty
    /// for unconditional fields), finite.
    pub(crate) fn check_context(&self, c: &[T], rows: usize) -> Result<(), FlowError> {
        let k = self.field.context_dim();
        if Some(c.len()) != rows.checked_mul(k) {
            return Err(FlowError::ContextShape {
                len: c.len(),
                rows: Some(rows),
                width: k,
            });
        }
        match c
            .chunks(k.max(1))
            .position(|r| r.iter().any(|v| !v.is_finite()))
        {
            Some(row) => Err(FlowError::NonFiniteContext { row }),
            None => Ok(()),
        }
    }

    /// The context of chunk `ci` of `n` points (empty for unconditional fields).
    fn context_chunk<'c>(&self, c: &'c [T], ci: usize, n: usize) -> &'c [T] {
        let k = self.field.context_dim();
        let start = (ci * n * k).min(c.len());
        &c[start..(start + n * k).min(c.len())]
    }

    fn chunk_len(&self, b: usize) -> usize {
        match self.batching {
            Batching::Whole => b.max(1),
            Batching::Chunks(n) => n.max(1),
        }
    }

    /// Exact log-densities log p(x) = log N(z(1)) + D(1) of the points `x (B, d)` (an
    /// unconditional flow; see [`Cnf::log_density_given`]).
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig};
    /// use cnf_flow::{log_normal, Cnf};
    /// use cnf_ode::{Method, SolverSpec};
    ///
    /// // A field whose output layer is zero is v = 0: the flow is the identity map, and
    /// // log p(x) is the standard normal log-density.
    /// let mut mlp = Mlp::<f64>::new(MlpConfig::new(2, &[8], Activation::Tanh), 0)?;
    /// mlp.zero_output();
    /// let cnf = Cnf::new(mlp, SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6)?);
    /// let x = [0.3, -1.2, 2.0, 0.5]; // two points
    /// let density = cnf.log_density(&x)?;
    /// assert_eq!(density.z1, x);
    /// for (logp, point) in density.logp.iter().zip(x.chunks(2)) {
    ///     assert!((logp - log_normal(point)).abs() < 1e-12);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cnf::log_density_given`].
    pub fn log_density(&self, x: &[T]) -> Result<Density<T>, FlowError> {
        self.log_density_given(x, &[], &Trace::Exact)
    }

    /// Log-densities with the divergence computed as `trace` says (Hutchinson probes must be
    /// laid out for the whole input, `(k, B, d)`; they are only supported with whole batches).
    ///
    /// # Errors
    /// As [`Cnf::log_density_given`].
    pub fn log_density_with(&self, x: &[T], trace: &Trace<T>) -> Result<Density<T>, FlowError> {
        self.log_density_given(x, &[], trace)
    }

    /// Conditional log-densities log p(x | c) of the points `x (B, d)`, row `b` of `context`
    /// `(B, k)` conditioning point `b` (empty for an unconditional field, `k = 0`), with the
    /// divergence (over `x` only) computed as `trace` says.
    ///
    /// # Errors
    /// [`FlowError::Shape`] / [`FlowError::NonFiniteInput`] for bad points,
    /// [`FlowError::ContextShape`] / [`FlowError::NonFiniteContext`] for a context that is not
    /// `(B, k)` or not finite, [`FlowError::Invalid`] for bad probes (or probes with chunked
    /// batching), [`FlowError::ImplicitMethod`] for a stiff solver,
    /// [`FlowError::TooLarge`] for a trace over the field's memory limit,
    /// [`FlowError::Solve`] when the solve fails and [`FlowError::NonFiniteOutput`] when a
    /// log-density overflows the precision.
    pub fn log_density_given(
        &self,
        x: &[T],
        context: &[T],
        trace: &Trace<T>,
    ) -> Result<Density<T>, FlowError> {
        let b = self.check_points(x)?;
        self.check_context(context, b)?;
        let d = self.dim();
        if let Trace::Hutchinson(_) = trace {
            trace
                .check(b, d)
                .map_err(|e| FlowError::Invalid(e.to_string()))?;
            if self.chunk_len(b) < b {
                return Err(FlowError::Invalid(
                    "Hutchinson probes need whole-batch solves".into(),
                ));
            }
        }
        if b > 0 {
            check_memory(&self.field, trace.tangents_per_point(b, d))?;
        }
        let n = self.chunk_len(b);
        // `max(1)`: zero points make no chunks (an empty result), not a zero-sized chunk.
        let parts: Vec<Result<(Vec<T>, Stats), FlowError>> = x
            .par_chunks((n * d).max(1))
            .enumerate()
            .map(|(ci, xc)| {
                let cc = self.context_chunk(context, ci, n);
                self.solve_augmented(xc, cc, trace).map_err(|e| {
                    self.locate(e, xc, ci * n, |i| {
                        let one = self.context_chunk(cc, i, 1);
                        self.solve_augmented(&xc[i * d..][..d], one, &Trace::Exact)
                            .map(|_| ())
                    })
                })
            })
            .collect();
        let mut out = Density {
            logp: Vec::with_capacity(b),
            z1: Vec::with_capacity(b * d),
            delta_logp: Vec::with_capacity(b),
            stats: Stats::default(),
        };
        for part in parts {
            let (y, stats) = part?;
            let bc = y.len() / (d + 1);
            let (z1, dl) = y.split_at(bc * d);
            for (z, &dlp) in z1.chunks(d).zip(dl) {
                out.logp.push(log_normal(z) + dlp);
            }
            out.z1.extend_from_slice(z1);
            out.delta_logp.extend_from_slice(dl);
            out.stats += stats;
        }
        if let Some(sample) = out.logp.iter().position(|v| !v.is_finite()) {
            return Err(FlowError::NonFiniteOutput {
                sample,
                quantity: "log-density",
                precision: T::NAME,
            });
        }
        Ok(out)
    }

    /// Solves (z, D) from t = 0 to 1 for one chunk and its context; returns [z(1), D(1)].
    fn solve_augmented(
        &self,
        x: &[T],
        context: &[T],
        trace: &Trace<T>,
    ) -> Result<(Vec<T>, Stats), FlowError> {
        let b = x.len() / self.dim();
        let mut y0 = Vec::with_capacity(x.len() + b);
        y0.extend_from_slice(x);
        y0.resize(x.len() + b, T::zero());
        let mut sys = Augmented {
            rows: RowParallel::new(&self.field, b, trace).with_context(context),
            split: x.len(),
        };
        let sol = self
            .solver_for(b, 1)
            .solve_system(&mut sys, T::zero(), T::one(), &y0)
            .map_err(solve_error)?;
        Ok((sol.y, sol.stats))
    }

    /// For a failed multi-point solve, finds the first point that fails on its own
    /// (`solve_one(i)` solves point `i` of `x`), so the error can name it. Runs only after a
    /// failure.
    fn locate(
        &self,
        e: FlowError,
        x: &[T],
        offset: usize,
        solve_one: impl Fn(usize) -> Result<(), FlowError>,
    ) -> FlowError {
        let FlowError::Solve {
            sample: None,
            t,
            message,
            stats,
        } = e
        else {
            return e;
        };
        let d = self.dim();
        let sample = if x.len() > d {
            (0..x.len() / d)
                .position(|i| solve_one(i).is_err())
                .map(|i| i + offset)
        } else {
            Some(offset)
        };
        FlowError::Solve {
            sample,
            t,
            message,
            stats,
        }
    }

    /// Moves points `x (B, d)` along the flow from time `t0` to `t1` (either direction).
    ///
    /// # Errors
    /// As [`Cnf::transform_given`].
    pub fn transform(&self, x: &[T], t0: T, t1: T) -> Result<Transported<T>, FlowError> {
        self.transform_given(x, &[], t0, t1)
    }

    /// Moves points `x (B, d)` along the conditional flow from time `t0` to `t1`, row `b` of
    /// `context (B, k)` conditioning point `b` (empty for an unconditional field).
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig};
    /// use cnf_flow::Cnf;
    /// use cnf_ode::{Method, SolverSpec};
    ///
    /// let config = MlpConfig::new(2, &[16], Activation::Tanh).with_context(1);
    /// let solver = SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10)?;
    /// let cnf = Cnf::new(Mlp::<f64>::new(config, 2)?, solver);
    /// let (x, c) = ([0.4, -0.8, 1.5, 0.1], [2.0, -1.0]);
    /// // To the base and back under the same context: the points return.
    /// let z = cnf.transform_given(&x, &c, 0.0, 1.0)?;
    /// let back = cnf.transform_given(&z.points, &c, 1.0, 0.0)?;
    /// for (a, b) in back.points.iter().zip(&x) {
    ///     assert!((a - b).abs() < 1e-7, "{a} vs {b}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`FlowError::Shape`] / [`FlowError::NonFiniteInput`] for bad points,
    /// [`FlowError::ContextShape`] / [`FlowError::NonFiniteContext`] for a bad context,
    /// [`FlowError::ImplicitMethod`] for a stiff solver, [`FlowError::Invalid`] for a
    /// non-finite `t0` or `t1`, [`FlowError::Solve`] when a solve fails.
    pub fn transform_given(
        &self,
        x: &[T],
        context: &[T],
        t0: T,
        t1: T,
    ) -> Result<Transported<T>, FlowError> {
        let b = self.check_points(x)?;
        self.check_context(context, b)?;
        let d = self.dim();
        let n = self.chunk_len(b);
        let parts: Vec<Result<(Vec<T>, Stats), FlowError>> = x
            .par_chunks((n * d).max(1))
            .enumerate()
            .map(|(ci, xc)| {
                let cc = self.context_chunk(context, ci, n);
                self.solve_transport(xc, cc, t0, t1).map_err(|e| {
                    self.locate(e, xc, ci * n, |i| {
                        let one = self.context_chunk(cc, i, 1);
                        self.solve_transport(&xc[i * d..][..d], one, t0, t1)
                            .map(|_| ())
                    })
                })
            })
            .collect();
        let mut out = Transported {
            points: Vec::with_capacity(b * d),
            stats: Stats::default(),
        };
        for part in parts {
            let (y, stats) = part?;
            out.points.extend_from_slice(&y);
            out.stats += stats;
        }
        Ok(out)
    }

    fn solve_transport(
        &self,
        x: &[T],
        context: &[T],
        t0: T,
        t1: T,
    ) -> Result<(Vec<T>, Stats), FlowError> {
        let rows = RowParallel::transport(&self.field, x.len() / self.dim());
        let mut sys = Transport {
            rows: rows.with_context(context),
        };
        let sol = self
            .solver_for(x.len() / self.dim(), 0)
            .solve_system(&mut sys, t0, t1, &x.to_vec())
            .map_err(solve_error)?;
        Ok((sol.y, sol.stats))
    }

    /// The points `x (B, d)` at each of `times` along the flow, in one solve from `times[0]`
    /// (each method's continuous extension gives the in-between times; the steps are those of a
    /// solve to the last time). Returns one `(B, d)` buffer per time.
    ///
    /// ```
    /// use cnf_field::Linear;
    /// use cnf_flow::Cnf;
    /// use cnf_ode::{Method, SolverSpec};
    ///
    /// // v(z) = A z, A = diag(0.5, -0.3): the flow maps x to exp(t A) x at time t.
    /// let field = Linear::new(2, &[0.5, 0.0, 0.0, -0.3], &[0.0, 0.0])?;
    /// let cnf = Cnf::new(field, SolverSpec::adaptive(Method::Dopri5, 1e-9, 1e-9)?);
    /// let x = [1.0f64, 2.0];
    /// let times = [0.0f64, 0.25, 1.0];
    /// let path = cnf.trajectory(&x, &times)?;
    /// assert_eq!(path.points.len(), times.len());
    /// for (t, points) in times.iter().zip(&path.points) {
    ///     let exact = [(0.5 * t).exp() * x[0], (-0.3 * t).exp() * x[1]];
    ///     for (p, e) in points.iter().zip(exact) {
    ///         assert!((p - e).abs() < 1e-6, "t = {t}: {p} vs {e}");
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cnf::trajectory_given`].
    pub fn trajectory(&self, x: &[T], times: &[T]) -> Result<Trajectory<T>, FlowError> {
        self.trajectory_given(x, &[], times)
    }

    /// [`Cnf::trajectory`] of a conditional flow: row `b` of `context (B, k)` conditions point
    /// `b` (empty for an unconditional field).
    ///
    /// # Errors
    /// [`FlowError::Shape`] / [`FlowError::NonFiniteInput`] for bad points,
    /// [`FlowError::ContextShape`] / [`FlowError::NonFiniteContext`] for a bad context,
    /// [`FlowError::ImplicitMethod`] for a stiff solver, [`FlowError::Invalid`] without times
    /// or for times that are not finite and monotone from the first to the last,
    /// [`FlowError::Solve`] when a solve fails.
    pub fn trajectory_given(
        &self,
        x: &[T],
        context: &[T],
        times: &[T],
    ) -> Result<Trajectory<T>, FlowError> {
        let b = self.check_points(x)?;
        self.check_context(context, b)?;
        let (Some(&t0), Some(&t1)) = (times.first(), times.last()) else {
            return Err(FlowError::Invalid(
                "trajectory needs at least one time".into(),
            ));
        };
        let d = self.dim();
        let n = self.chunk_len(b);
        type Part<T> = Result<(Vec<Vec<T>>, Stats), FlowError>;
        let parts: Vec<Part<T>> = x
            .par_chunks((n * d).max(1))
            .enumerate()
            .map(|(ci, xc)| {
                let rows = RowParallel::transport(&self.field, xc.len() / d);
                let mut sys = Transport {
                    rows: rows.with_context(self.context_chunk(context, ci, n)),
                };
                let sol = self
                    .solver_for(xc.len() / d, 0)
                    .output_times(times.to_vec())
                    .solve_system(&mut sys, t0, t1, &xc.to_vec())
                    .map_err(solve_error)?;
                Ok((sol.y_out, sol.stats))
            })
            .collect();
        let mut out = Trajectory {
            points: vec![Vec::with_capacity(b * d); times.len()],
            stats: Stats::default(),
        };
        for part in parts {
            let (ys, stats) = part?;
            for (all, y) in out.points.iter_mut().zip(ys) {
                all.extend_from_slice(&y);
            }
            out.stats += stats;
        }
        Ok(out)
    }

    /// Draws `n` samples: base points z ~ N(0, I) moved from t = 1 back to t = 0.
    ///
    /// ```
    /// use cnf_field::Linear;
    /// use cnf_flow::Cnf;
    /// use cnf_ode::{Method, SolverSpec};
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use rand_distr::{Distribution, StandardNormal};
    ///
    /// // v(z) = A z, A = diag(0.5, -0.3): a sample is exp(-A) z for a base point z.
    /// let field = Linear::new(2, &[0.5, 0.0, 0.0, -0.3], &[0.0, 0.0])?;
    /// let cnf = Cnf::new(field, SolverSpec::adaptive(Method::Dopri5, 1e-9, 1e-9)?);
    /// let draws = cnf.sample(3, &mut StdRng::seed_from_u64(5))?;
    /// // The base points, drawn from the same generator in the order of the rows.
    /// let mut rng = StdRng::seed_from_u64(5);
    /// for x in draws.points.chunks(2) {
    ///     let z: [f64; 2] = [StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng)];
    ///     assert!((x[0] - (-0.5f64).exp() * z[0]).abs() < 1e-6);
    ///     assert!((x[1] - 0.3f64.exp() * z[1]).abs() < 1e-6);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cnf::sample_given`].
    pub fn sample<R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
    ) -> Result<Transported<T>, FlowError> {
        self.sample_given(&[], n, rng)
    }

    /// Draws `n` samples for each row of `context (m, k)`, all in one vectorised solve (or
    /// the flow's chunks): row `i * n + j` of the result is draw `j` given context row `i`.
    /// `n = 1` gives one draw per context row. For an unconditional field (`k = 0`) the
    /// context is empty and counts as one row: `n` draws, as [`Cnf::sample`].
    ///
    /// The base points are drawn from `rng` in the order of the result's rows, so `n` draws
    /// for one row equal one draw for each of `n` copies of that row.
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig};
    /// use cnf_flow::Cnf;
    /// use cnf_ode::{Method, SolverSpec};
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let config = MlpConfig::new(2, &[16], Activation::Tanh).with_context(1);
    /// let solver = SolverSpec::adaptive(Method::Dopri5, 1e-6, 1e-6)?;
    /// let cnf = Cnf::new(Mlp::<f64>::new(config, 4)?, solver);
    /// let three = cnf.sample_given(&[0.5], 3, &mut StdRng::seed_from_u64(0))?;
    /// let copies = cnf.sample_given(&[0.5, 0.5, 0.5], 1, &mut StdRng::seed_from_u64(0))?;
    /// assert_eq!(three.points.len(), 3 * 2);
    /// assert_eq!(three.points, copies.points);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`FlowError::ContextShape`] for a context that is not whole rows of width `k` (or is
    /// empty for a conditional field),
    /// [`FlowError::NonFiniteContext`], [`FlowError::Invalid`] if the number of draws
    /// overflows, [`FlowError::ImplicitMethod`] for a stiff solver, [`FlowError::Solve`] when a
    /// solve fails.
    pub fn sample_given<R: Rng + ?Sized>(
        &self,
        context: &[T],
        n: usize,
        rng: &mut R,
    ) -> Result<Transported<T>, FlowError> {
        let k = self.field.context_dim();
        let rows = match k {
            0 => 1,
            k => context.len() / k,
        };
        if context.len() != rows * k || rows == 0 {
            return Err(FlowError::ContextShape {
                len: context.len(),
                rows: None,
                width: k,
            });
        }
        self.check_context(context, rows)?;
        let draws = rows.checked_mul(n).ok_or_else(|| {
            FlowError::Invalid(format!("{n} draws for each of {rows} contexts overflow"))
        })?;
        let values = draws.checked_mul(self.dim()).ok_or_else(|| {
            FlowError::Invalid(format!(
                "{draws} draws of dimension {} overflow",
                self.dim()
            ))
        })?;
        let z: Vec<T> = (0..values)
            .map(|_| cast::<T>(Distribution::<f64>::sample(&StandardNormal, rng)))
            .collect();
        // Each context row repeated for its n draws.
        let repeated: Vec<T> = context
            .chunks_exact(k.max(1))
            .flat_map(|row| std::iter::repeat_n(row, n).flatten().copied())
            .collect();
        self.transform_given(&z, &repeated, T::one(), T::zero())
    }
}

/// Whether a flow can solve with `method`: the explicit methods only (see
/// [`FlowError::ImplicitMethod`]).
///
/// ```
/// use cnf_ode::Method;
/// assert!(cnf_flow::check_method(Method::Dopri5).is_ok());
/// assert!(cnf_flow::check_method(Method::Rodas5p).is_err());
/// ```
///
/// # Errors
/// [`FlowError::ImplicitMethod`] for a stiff method.
pub fn check_method(method: Method) -> Result<(), FlowError> {
    match method.is_explicit() {
        true => Ok(()),
        false => Err(FlowError::ImplicitMethod { method }),
    }
}
