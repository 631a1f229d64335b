//! Gradients of the mean negative log-likelihood with respect to the field's parameters.
//!
//! L = -(1/B) sum_b [log N(z_b(1)) + D_b(1)], so the cotangents at t = 1 are
//! dL/dz_b(1) = z_b(1) / B and dL/dD_b(1) = -1/B. Carrying them back to t = 0 is `cnf-ode`'s
//! [`cnf_ode::Solver::solve_with_gradient`] on the augmented system
//! ([`crate::dynamics::Augmented`], a [`cnf_ode::VjpSystem`]), differentiated as the
//! [`Differentiation`] passed says; the flow only supplies the loss:
//! - [`Differentiation::Discretise`] ("backprop"): discretise-then-optimise; exact reverse mode
//!   through the accepted steps of the forward solve (their stages are kept), the gradient of
//!   exactly the computed loss for that step sequence;
//! - [`Differentiation::Checkpointed`]: the same gradient keeping every `every`-th state and
//!   recomputing one segment's stages at a time;
//! - [`Differentiation::Backsolve`] ("adjoint", [`Differentiation::adjoint`] at the flow's own
//!   tolerances): optimise-then-discretise; the continuous adjoint solved backwards, O(1) memory
//!   in the number of steps, accurate to the backward solve's tolerance; with `seminorm` the
//!   parameter cotangents are left out of its error norm.
//!
//! [`Cnf::loss_and_grad_with`] adds RNODE's regularisers ([`Regularisation`]: the kinetic
//! energy `K = int |v|^2 dt` and the Jacobian Frobenius norm `J = int |dv/dz|_F^2 dt`, Finlay et
//! al. 2020) as two more integrated states per point, `[z, D, K, J]`, left out of the forward
//! solve's error norm; their cotangents at the end time are the weights over B, carried back by
//! the same methods. It also takes the end time of the solve (STEER, Ghosh et al. 2020,
//! draws it per iteration).
use cnf_field::{Real, Trace, VectorField};
use cnf_ode::{Differentiation, Stats};

use crate::dynamics::Augmented;
use crate::error::{solve_error, FlowError};
use crate::flow::{log_normal, Cnf};
use crate::rows::{check_memory, RowParallel};

/// RNODE's regularisers: weights of the batch means of `K = int_0^T |v|^2 dt` (kinetic energy,
/// sum over dimensions) and `J = int_0^T |dv/dz|_F^2 dt` (Jacobian Frobenius norm; estimated
/// from the Hutchinson probes when the trace is, exact with the exact trace) added to the loss.
///
/// RNODE's code weighs `0.5 * mean over dimensions` of the same integrands, so its weight `w`
/// is `w / (2 d)` here.
///
/// `local_error` weighs the solver's own local error estimates (Pal et al. 2021, ERNODE:
/// `R = sum_j |h_j| E_j` over the accepted steps of the training solve, `E_j` the step's scaled
/// error norm, RMS over `[z, D]`; see
/// [`cnf_ode::Solver::solve_with_gradient_and_error_penalty`]): a property of the discrete
/// solve, so [`Differentiation::Discretise`] or [`Differentiation::Checkpointed`] only.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Regularisation<T> {
    /// Weight of the kinetic energy.
    pub kinetic: T,
    /// Weight of the Jacobian Frobenius norm.
    pub frobenius: T,
    /// Weight of the local-error penalty (needs `Discretise` or `Checkpointed` and an adaptive
    /// pair).
    pub local_error: T,
}

impl<T: Real> Regularisation<T> {
    /// No regularisation.
    pub fn none() -> Self {
        Self {
            kinetic: T::zero(),
            frobenius: T::zero(),
            local_error: T::zero(),
        }
    }

    /// Whether the kinetic or Frobenius weight is non-zero (the penalty states are integrated
    /// only then).
    pub fn is_active(&self) -> bool {
        self.kinetic != T::zero() || self.frobenius != T::zero()
    }

    /// Weights must be finite and non-negative.
    ///
    /// # Errors
    /// [`FlowError::Invalid`] naming the first weight that is negative, NaN or infinite.
    pub fn validate(&self) -> Result<(), FlowError> {
        for (name, w) in [
            ("kinetic", self.kinetic),
            ("frobenius", self.frobenius),
            ("local-error", self.local_error),
        ] {
            if !w.is_finite() || w < T::zero() {
                return Err(FlowError::Invalid(format!(
                    "the {name} regularisation weight must be finite and >= 0, got {w}"
                )));
            }
        }
        Ok(())
    }
}

/// What a training solve optimises besides the likelihood, and until when it integrates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossOptions<T> {
    /// RNODE's regularisers (none by default).
    pub regularisation: Regularisation<T>,
    /// End time `T` of the solve: 1, or a STEER draw from `[1 - b, 1 + b]`.
    pub end_time: T,
}

impl<T: Real> Default for LossOptions<T> {
    fn default() -> Self {
        Self {
            regularisation: Regularisation::none(),
            end_time: T::one(),
        }
    }
}

/// The penalties of a training solve, unweighted, each present when it was computed: RNODE's
/// kinetic energy and Jacobian Frobenius norm (batch means, when regularised) and ERNODE's
/// local-error penalty (when weighted). One value from the flow's gradient to the trainer's
/// events and metrics.jsonl (whose fields are these names).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Penalties<T> {
    /// Mean over the batch of `K = int |v|^2 dt` (sum over dimensions).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub kinetic: Option<T>,
    /// Mean over the batch of `J = int |dv/dz|_F^2 dt`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub jacobian: Option<T>,
    /// The local-error penalty `R = sum_j |h_j| E_j` of the forward solve.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub local_error: Option<T>,
}

impl<T: Copy> Penalties<T> {
    /// None computed.
    pub fn none() -> Self {
        Self {
            kinetic: None,
            jacobian: None,
            local_error: None,
        }
    }
    /// The same penalties with each value converted by `f` (e.g. to f64).
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Penalties<U> {
        Penalties {
            kinetic: self.kinetic.map(&f),
            jacobian: self.jacobian.map(&f),
            local_error: self.local_error.map(&f),
        }
    }
    /// The values present.
    pub fn values(&self) -> impl Iterator<Item = T> {
        [self.kinetic, self.jacobian, self.local_error]
            .into_iter()
            .flatten()
    }
}

impl Penalties<f64> {
    /// Each penalty's mean over the entries of `all` that hold it (None where none does).
    pub fn mean(all: &[Self]) -> Self {
        let mean = |get: fn(&Self) -> Option<f64>| {
            let v: Vec<f64> = all.iter().filter_map(get).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Self {
            kinetic: mean(|p| p.kinetic),
            jacobian: mean(|p| p.jacobian),
            local_error: mean(|p| p.local_error),
        }
    }
}

/// Loss, gradient and the work of both passes.
#[derive(Debug, Clone)]
pub struct LossGrad<T> {
    /// Mean negative log-likelihood of the batch (at the solve's end time).
    pub loss: T,
    /// The weighted penalties, `w_K mean K + w_J mean J + w_R R` (0 without any).
    pub penalty: T,
    /// The unweighted penalties, when computed.
    pub penalties: Penalties<T>,
    /// d(loss + penalty)/dtheta, one entry per parameter of the field.
    pub grad: Vec<T>,
    /// dL/dx, `(B, d)`.
    pub grad_x: Vec<T>,
    /// dL/dc, `(B, k)`, from [`Cnf::loss_and_grad_context`]; empty from the other methods.
    pub grad_context: Vec<T>,
    /// Forward solve.
    pub forward: Stats,
    /// Backward pass (adjoint solve, or the VJPs of the reverse pass counted as evaluations).
    pub backward: Stats,
}

impl<T: Real, F: VectorField<T>> Cnf<T, F> {
    /// Mean NLL of the batch `x (B, d)` and its gradient w.r.t. the field's parameters, with the
    /// divergence computed as `trace` says (the same probes serve the forward and backward pass)
    /// and the gradient as `method` says.
    ///
    /// # Errors
    /// As [`Cnf::loss_and_grad_given`].
    pub fn loss_and_grad(
        &self,
        x: &[T],
        trace: &Trace<T>,
        method: Differentiation<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        self.loss_and_grad_with(x, trace, method, &LossOptions::default())
    }

    /// [`Cnf::loss_and_grad`] with regularisers and an end time: the gradient is that of
    /// `loss + penalty`.
    ///
    /// # Errors
    /// As [`Cnf::loss_and_grad_given`].
    pub fn loss_and_grad_with(
        &self,
        x: &[T],
        trace: &Trace<T>,
        method: Differentiation<T>,
        options: &LossOptions<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        self.loss_and_grad_given(x, &[], trace, method, options)
    }

    /// The conditional form of [`Cnf::loss_and_grad_with`]: the mean of -log p(x_b | c_b)
    /// over the batch, row `b` of `context (B, k)` conditioning point `b` (empty for an
    /// unconditional field). The gradient reaches every parameter, the context's first-layer
    /// weights included.
    ///
    /// # Errors
    /// [`FlowError::Invalid`] for bad weights, end time, probes or an empty batch, for a
    /// penalty the field does not differentiate, or for a local-error weight the solve cannot
    /// differentiate (fixed steps, `Backsolve`, a method without one embedded pair);
    /// [`FlowError::ImplicitMethod`] for a stiff solver;
    /// [`FlowError::Shape`] / [`FlowError::NonFiniteInput`] for bad points;
    /// [`FlowError::ContextShape`] / [`FlowError::NonFiniteContext`] for a bad context;
    /// [`FlowError::TooLarge`] for a trace over the field's memory limit;
    /// [`FlowError::Solve`] when the forward or backward solve fails.
    pub fn loss_and_grad_given(
        &self,
        x: &[T],
        context: &[T],
        trace: &Trace<T>,
        method: Differentiation<T>,
        options: &LossOptions<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        self.loss_and_grads(x, context, trace, method, options, false)
    }

    /// [`Cnf::loss_and_grad_given`] with the gradient with respect to the context as well:
    /// `grad_context (B, k)` holds dL/dc_b (L the batch mean, so each row's is its own NLL's
    /// gradient over B). The context is constant along the solve, so it enters the adjoint as
    /// parameters do: `a_c = int a(t)^T df/dc dt` (the same reverse pass, one more product
    /// per evaluation in the field's first layer).
    ///
    /// # Errors
    /// As [`Cnf::loss_and_grad_given`].
    pub fn loss_and_grad_context(
        &self,
        x: &[T],
        context: &[T],
        trace: &Trace<T>,
        method: Differentiation<T>,
        options: &LossOptions<T>,
    ) -> Result<LossGrad<T>, FlowError> {
        self.loss_and_grads(x, context, trace, method, options, true)
    }

    /// The loss and its gradients; with `context_grad` also dL/dc.
    fn loss_and_grads(
        &self,
        x: &[T],
        context: &[T],
        trace: &Trace<T>,
        method: Differentiation<T>,
        options: &LossOptions<T>,
        context_grad: bool,
    ) -> Result<LossGrad<T>, FlowError> {
        let reg = options.regularisation;
        reg.validate()?;
        let t1 = options.end_time;
        if !t1.is_finite() || t1 <= T::zero() {
            return Err(FlowError::Invalid(format!(
                "the end time of the solve must be finite and > 0, got {t1}"
            )));
        }
        let penalised = reg.is_active();
        // cnf-ode's one check of the local-error penalty's preconditions, before any work.
        if reg.local_error != T::zero() {
            self.solver
                .check_error_penalty(&method)
                .map_err(|r| solve_error(r.into()))?;
        }
        if penalised && !self.field.differentiates_penalties() {
            return Err(FlowError::Invalid(
                "this vector field does not differentiate the RNODE penalties".into(),
            ));
        }
        let b = self.check_points(x)?;
        self.check_context(context, b)?;
        if b == 0 {
            return Err(FlowError::Invalid(
                "the batch is empty: the mean NLL needs at least one point".into(),
            ));
        }
        trace
            .check(b, self.dim())
            .map_err(|e| FlowError::Invalid(e.to_string()))?;
        check_memory(&self.field, trace.tangents_per_point(b, self.dim()))?;
        // The augmented state [z (B, d), D (B) (, K (B), J (B))] from [x, 0] at t = 0 to T.
        let n = x.len();
        let len = n + b + if penalised { 2 * b } else { 0 };
        let mut y0 = Vec::with_capacity(len);
        y0.extend_from_slice(x);
        y0.resize(len, T::zero());
        let mut sys = Augmented {
            rows: RowParallel::new(&self.field, b, trace)
                .with_penalties(penalised)
                .with_context(context)
                .with_context_grad(context_grad),
            split: n,
        };
        // dL/dz(T) = z(T) / B, dL/dD(T) = -1/B, dL/dK(T) = w_K / B, dL/dJ(T) = w_J / B.
        let inv_b = T::one() / T::from_usize(b).unwrap_or_else(T::nan);
        let cotangent = |y1: &[T], a: &mut [T]| {
            let (a_z, rest) = a.split_at_mut(n);
            for (az, &z) in a_z.iter_mut().zip(&y1[..n]) {
                *az = z * inv_b;
            }
            let (a_d, rest) = rest.split_at_mut(b);
            a_d.fill(-inv_b);
            if penalised {
                let (a_k, a_j) = rest.split_at_mut(b);
                a_k.fill(reg.kinetic * inv_b);
                a_j.fill(reg.frobenius * inv_b);
            }
        };
        let columns = if penalised { 3 } else { 1 };
        let mut solver = self.solver_for(b, columns);
        if penalised {
            // The penalty integrals do not steer the steps (RNODE passes them 1e20 tolerances).
            solver = solver.error_components(0..n + b);
        }
        let g = solver
            .solve_with_gradient_and_error_penalty(
                &mut sys,
                (T::zero(), t1),
                &y0,
                cotangent,
                method,
                reg.local_error,
            )
            .map_err(solve_error)?;
        let (z1, rest) = g.y1.split_at(n);
        let (dl, pen) = rest.split_at(b);
        let loss = z1
            .chunks(self.dim())
            .zip(dl)
            .fold(T::zero(), |acc, (z, &dlp)| acc - (log_normal(z) + dlp));
        let mean = |v: &[T]| v.iter().fold(T::zero(), |acc, &x| acc + x) * inv_b;
        let (kinetic, frobenius) = if penalised {
            let (k, j) = pen.split_at(b);
            (Some(mean(k)), Some(mean(j)))
        } else {
            (None, None)
        };
        let local_error = (reg.local_error != T::zero()).then_some(g.local_error);
        let penalty = kinetic.map_or(T::zero(), |k| reg.kinetic * k)
            + frobenius.map_or(T::zero(), |j| reg.frobenius * j)
            + reg.local_error * g.local_error;
        let mut grad_x = g.grad_y0;
        grad_x.truncate(n);
        let mut grad = g.grad_p;
        let grad_context = grad.split_off(self.field.num_params());
        Ok(LossGrad {
            loss: loss * inv_b,
            penalty,
            penalties: Penalties {
                kinetic,
                jacobian: frobenius,
                local_error,
            },
            grad,
            grad_x,
            grad_context,
            forward: g.forward,
            backward: g.backward,
        })
    }
}
