//! The right-hand side of an ODE system, with its optional Jacobian.
use autodiff::FT;
use num_traits::Float;

use crate::state::State;

/// dy/dt = f(t, y). `rhs` writes f(t, y) into `dy` (same length as `y`).
///
/// Takes `&mut self` so a system can keep scratch buffers or count calls; the solver borrows it
/// for one solve and gives it back ([`crate::Solver::solve_system`]). Closures
/// `FnMut(T, &S, &mut S)` are systems too; a plain right-hand side is simpler to pass as a
/// closure over slices to [`crate::Solver::solve`].
///
/// Implicit methods (Rosenbrock) also need the Jacobian df/dy and, for non-autonomous systems,
/// df/dt. Both are optional: the defaults return `false` and the solver computes them by
/// forward finite differences (grouped by a [`crate::Sparsity`] when one is given to
/// [`crate::Solver::jacobian_sparsity`]). [`WithJacobian`] attaches a Jacobian closure to a
/// right-hand side; [`Dual`] differentiates a [`GenericSystem`] with dual numbers.
pub trait OdeSystem<T, S> {
    /// Evaluate f(t, y) into `dy`.
    fn rhs(&mut self, t: T, y: &S, dy: &mut S);
    /// Writes df/dy at (t, y) into `jac` (row-major: `jac[i * n + j]` = df_i/dy_j, `n * n`
    /// values, zeroed) and returns true; false (the default) leaves it to the solver.
    fn jacobian(&mut self, t: T, y: &S, jac: &mut [T]) -> bool {
        let _ = (t, y, jac);
        false
    }
    /// Writes df/dt at (t, y) into `dfdt` and returns true; false (the default) leaves it to
    /// the solver.
    fn time_derivative(&mut self, t: T, y: &S, dfdt: &mut S) -> bool {
        let _ = (t, y, dfdt);
        false
    }
}

impl<T, S, F> OdeSystem<T, S> for F
where
    F: FnMut(T, &S, &mut S),
{
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        self(t, y, dy)
    }
}

/// A closure over slices as a system of any slice-like state.
pub(crate) struct SliceFn<F>(pub(crate) F);

impl<T, S, F> OdeSystem<T, S> for SliceFn<F>
where
    S: State<T>,
    F: FnMut(T, &[T], &mut [T]),
{
    #[inline]
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        (self.0)(t, y.as_slice(), dy.as_mut_slice())
    }
}

/// A right-hand side with its Jacobian, both closures over slices:
/// `jac(t, y, J)` writes df_i/dy_j into `J[i * n + j]` (`J` zeroed).
///
/// ```
/// use cnf_ode::{Method, Solver, WithJacobian};
/// // y' = -1000 (y - cos t): stiff, with its Jacobian -1000.
/// let mut sys = WithJacobian::new(
///     |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -1000.0 * (y[0] - t.cos()),
///     |_t: f64, _y: &[f64], jac: &mut [f64]| jac[0] = -1000.0,
/// );
/// let sol = Solver::new(Method::Rodas5p).rtol(1e-8).atol(1e-10)
///     .solve_system(&mut sys, 0.0, 1.0, &vec![1.0])?;
/// // After the transient e^{-1000 t}: y = (k^2 cos t + k sin t) / (1 + k^2), k = 1000.
/// let k = 1000.0f64;
/// let exact = (k * k * 1f64.cos() + k * 1f64.sin()) / (1.0 + k * k);
/// assert!((sol.y[0] - exact).abs() < 1e-7);
/// // One Jacobian per point a step starts from (rejected attempts reuse it).
/// assert_eq!(sol.stats.jacobians, sol.stats.accepted);
/// # Ok::<(), cnf_ode::OdeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WithJacobian<F, J> {
    /// The right-hand side f(t, y, dy).
    pub rhs: F,
    /// The Jacobian jac(t, y, J).
    pub jac: J,
}

impl<F, J> WithJacobian<F, J> {
    /// The system of `rhs` with the Jacobian `jac`.
    pub fn new(rhs: F, jac: J) -> Self {
        Self { rhs, jac }
    }
}

impl<T, S, F, J> OdeSystem<T, S> for WithJacobian<F, J>
where
    S: State<T>,
    F: FnMut(T, &[T], &mut [T]),
    J: FnMut(T, &[T], &mut [T]),
{
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        (self.rhs)(t, y.as_slice(), dy.as_mut_slice())
    }
    fn jacobian(&mut self, t: T, y: &S, jac: &mut [T]) -> bool {
        (self.jac)(t, y.as_slice(), jac);
        true
    }
}

/// A right-hand side written once over any float type, so that [`Dual`] can evaluate it on
/// forward-mode dual numbers (a closure cannot be generic, hence a trait).
pub trait GenericSystem {
    /// Evaluate f(t, y) into `dy` in any precision.
    fn rhs<U: Float>(&mut self, t: U, y: &[U], dy: &mut [U]);
}

/// Exact Jacobians and df/dt of a [`GenericSystem`] by forward-mode dual numbers (the
/// `autodiff` crate): one dual evaluation per column, and one for df/dt.
///
/// ```
/// use cnf_ode::{Dual, GenericSystem, Method, Solver};
/// struct VanDerPol(f64);
/// impl GenericSystem for VanDerPol {
///     fn rhs<U: num_traits::Float>(&mut self, _t: U, y: &[U], dy: &mut [U]) {
///         let mu = U::from(self.0).unwrap();
///         dy[0] = y[1];
///         dy[1] = mu * ((U::one() - y[0] * y[0]) * y[1] - y[0]);
///     }
/// }
/// let sol = Solver::new(Method::Rodas5p).rtol(1e-6).atol(1e-6)
///     .solve_system(&mut Dual::new(VanDerPol(1000.0)), 0.0, 0.5, &vec![2.0, 0.0])?;
/// // On the slow manifold y0 falls from 2 and reaches 1 only at t = 1.5 - ln 2 = 0.81.
/// assert!(sol.stats.jacobians > 0 && sol.y[0] > 1.0);
/// # Ok::<(), cnf_ode::OdeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dual<G> {
    /// The system.
    pub inner: G,
}

impl<G> Dual<G> {
    /// Differentiates `inner` with dual numbers.
    pub fn new(inner: G) -> Self {
        Self { inner }
    }
}

impl<T, S, G> OdeSystem<T, S> for Dual<G>
where
    T: Float + std::fmt::Debug,
    S: State<T>,
    G: GenericSystem,
{
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        self.inner.rhs(t, y.as_slice(), dy.as_mut_slice())
    }
    fn jacobian(&mut self, t: T, y: &S, jac: &mut [T]) -> bool {
        let y = y.as_slice();
        let n = y.len();
        let mut yd: Vec<FT<T>> = y.iter().map(|&v| FT::cst(v)).collect();
        let mut out = vec![FT::cst(T::zero()); n];
        for j in 0..n {
            yd[j] = FT::var(y[j]);
            self.inner.rhs(FT::cst(t), &yd, &mut out);
            for (i, o) in out.iter().enumerate() {
                jac[i * n + j] = o.dx;
            }
            yd[j] = FT::cst(y[j]);
        }
        true
    }
    fn time_derivative(&mut self, t: T, y: &S, dfdt: &mut S) -> bool {
        let yd: Vec<FT<T>> = y.as_slice().iter().map(|&v| FT::cst(v)).collect();
        let mut out = vec![FT::cst(T::zero()); yd.len()];
        self.inner.rhs(FT::var(t), &yd, &mut out);
        for (d, o) in dfdt.as_mut_slice().iter_mut().zip(&out) {
            *d = o.dx;
        }
        true
    }
}
