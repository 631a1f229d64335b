//! Automatic Jacobians for implicit methods: forward finite differences, one evaluation per
//! group of structurally independent columns ([`Sparsity`]), and df/dt likewise.
use num_traits::Float;

use crate::error::OdeError;
use crate::state::State;
use crate::system::OdeSystem;

/// Where a Jacobian df/dy can be non-zero: finite differences then perturb every group of
/// columns that share no row in one evaluation (Curtis, Powell and Reid), so a banded or
/// otherwise sparse n x n Jacobian costs a few evaluations instead of n.
///
/// ```
/// use cnf_ode::Sparsity;
/// // A tridiagonal 6 x 6 pattern: 3 groups of columns ({0, 3}, {1, 4}, {2, 5}).
/// let p = Sparsity::new(6, (0..6usize).flat_map(|i| [(i, i), (i, i.saturating_sub(1)), (i, (i + 1).min(5))]))?;
/// assert_eq!(p.groups(), 3);
/// # Ok::<(), cnf_ode::OdeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparsity {
    n: usize,
    /// The rows that can be non-zero, per column (sorted, distinct).
    rows: Vec<Vec<usize>>,
    /// Groups of columns sharing no row.
    groups: Vec<Vec<usize>>,
}

impl Sparsity {
    /// The pattern of an `n` x `n` Jacobian with these `(row, column)` entries possibly
    /// non-zero (the others are exactly zero everywhere).
    ///
    /// # Errors
    /// [`OdeError::InvalidSetting`] for an entry outside the matrix.
    pub fn new(
        n: usize,
        entries: impl IntoIterator<Item = (usize, usize)>,
    ) -> Result<Self, OdeError> {
        let mut rows = vec![Vec::new(); n];
        for (i, j) in entries {
            if i >= n || j >= n {
                return Err(OdeError::InvalidSetting {
                    field: format!("jacobian_sparsity entry ({i}, {j})"),
                    requirement: "inside the n x n matrix",
                    value: n as f64,
                });
            }
            rows[j].push(i);
        }
        for r in &mut rows {
            r.sort_unstable();
            r.dedup();
        }
        // Greedy colouring: each column joins the first group none of whose rows it touches.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut taken: Vec<Vec<bool>> = Vec::new();
        for (j, rj) in rows.iter().enumerate() {
            let g = (0..groups.len()).find(|&g| rj.iter().all(|&i| !taken[g][i]));
            let g = g.unwrap_or_else(|| {
                groups.push(Vec::new());
                taken.push(vec![false; n]);
                groups.len() - 1
            });
            groups[g].push(j);
            for &i in rj {
                taken[g][i] = true;
            }
        }
        Ok(Self { n, rows, groups })
    }

    /// The dense pattern: every column its own group.
    pub(crate) fn dense(n: usize) -> Self {
        Self {
            n,
            rows: vec![(0..n).collect(); n],
            groups: (0..n).map(|j| vec![j]).collect(),
        }
    }

    /// Number of components.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// Evaluations one finite-difference Jacobian costs (beyond f(t, y)).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }
}

/// The perturbation of a forward difference at x: sqrt(eps) max(|x|, floor), rounded so that
/// (x + d) - x == d exactly. The floor is the component's absolute tolerance (as scipy's
/// `num_jac` threshold): the scale below which the solve does not resolve it.
#[inline]
fn step<T: Float>(x: T, floor: T) -> T {
    let d = T::epsilon().sqrt() * x.abs().max(floor);
    (x + d) - x
}

/// The floor of component j: one value for all, or one per component.
#[inline]
fn floor_of<T: Float>(floor: &[T], j: usize) -> T {
    if floor.len() == 1 {
        floor[0]
    } else {
        floor[j]
    }
}

/// df/dy at (t, y) into `jac` (row-major, zeroed here), with f0 = f(t, y): the system's own
/// when it has one, else forward differences over the column groups of `pattern` (steps from
/// [`step`] with `floor`, one value or one per component), with `ytmp` and `ftmp` as scratch.
/// Returns the evaluations spent.
pub(crate) fn jacobian<T, S, F>(
    sys: &mut F,
    (t, y, f0): (T, &S, &S),
    (pattern, floor): (&Sparsity, &[T]),
    (ytmp, ftmp): (&mut S, &mut S),
    jac: &mut [T],
) -> usize
where
    T: Float,
    S: State<T>,
    F: OdeSystem<T, S>,
{
    let n = pattern.n;
    jac.fill(T::zero());
    if sys.jacobian(t, y, jac) {
        return 0;
    }
    let (ys, f0) = (y.as_slice(), f0.as_slice());
    ytmp.as_mut_slice().copy_from_slice(ys);
    for group in &pattern.groups {
        for &j in group {
            ytmp.as_mut_slice()[j] = ys[j] + step(ys[j], floor_of(floor, j));
        }
        sys.rhs(t, ytmp, ftmp);
        let f1 = ftmp.as_slice();
        for &j in group {
            let inv = T::one() / step(ys[j], floor_of(floor, j));
            for &i in &pattern.rows[j] {
                jac[i * n + j] = (f1[i] - f0[i]) * inv;
            }
            ytmp.as_mut_slice()[j] = ys[j];
        }
    }
    pattern.groups.len()
}

/// df/dt at (t, y) into `dfdt`, with f0 = f(t, y): the system's own, else a forward difference
/// in t (one evaluation, into `dfdt` itself). Returns the evaluations spent.
pub(crate) fn time_derivative<T, S, F>(sys: &mut F, (t, y, f0): (T, &S, &S), dfdt: &mut S) -> usize
where
    T: Float,
    S: State<T>,
    F: OdeSystem<T, S>,
{
    if sys.time_derivative(t, y, dfdt) {
        return 0;
    }
    let dt = step(t, T::one());
    sys.rhs(t + dt, y, dfdt);
    let inv = T::one() / dt;
    for (d, &f) in dfdt.as_mut_slice().iter_mut().zip(f0.as_slice()) {
        *d = (*d - f) * inv;
    }
    1
}

/// The forward-difference Jacobian df/dy at (t, y) that the implicit methods use when the
/// system has none of its own (row-major, `n * n`): one evaluation per column, or per group of
/// columns of `pattern`, column j perturbed by sqrt(eps) max(|y_j|, atol) (the solver passes
/// its absolute tolerance). For checking a hand-written Jacobian, or inspecting the automatic
/// one.
///
/// A `pattern` of another dimension than `y` is ignored (the dense pattern is used).
pub fn finite_difference_jacobian<T, S, F>(
    sys: &mut F,
    t: T,
    y: &S,
    pattern: Option<&Sparsity>,
    atol: T,
) -> Vec<T>
where
    T: Float,
    S: State<T>,
    F: OdeSystem<T, S>,
{
    let n = y.len();
    let dense;
    let pattern = match pattern {
        Some(p) if p.n == n => p,
        _ => {
            dense = Sparsity::dense(n);
            &dense
        }
    };
    let mut f0 = y.clone();
    sys.rhs(t, y, &mut f0);
    let (mut ytmp, mut ftmp) = (y.clone(), y.clone());
    let mut jac = vec![T::zero(); n * n];
    // Differences only: the system's own Jacobian is not consulted.
    let mut fd = OnlyRhs(sys);
    jacobian(
        &mut fd,
        (t, y, &f0),
        (pattern, &[atol]),
        (&mut ytmp, &mut ftmp),
        &mut jac,
    );
    jac
}

/// A system seen through its right-hand side only.
struct OnlyRhs<'a, F>(&'a mut F);

impl<T, S, F: OdeSystem<T, S>> OdeSystem<T, S> for OnlyRhs<'_, F> {
    fn rhs(&mut self, t: T, y: &S, dy: &mut S) {
        self.0.rhs(t, y, dy)
    }
}
