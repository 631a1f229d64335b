//! What the implicit steppers (Rosenbrock, BDF, Radau) keep alike: f at the current point,
//! evaluated at most once there and counted, a scratch vector of the state's size beside it
//! (the driver's error estimate and the finite differences use it), and the work counters.
use num_traits::Float;

use crate::solution::Stats;
use crate::state::State;
use crate::system::OdeSystem;

#[derive(Debug)]
pub(crate) struct CurrentPoint<S> {
    /// f(t, y) at the current point, when `valid`.
    pub f: S,
    pub valid: bool,
    pub scratch: S,
    pub work: Stats,
}

impl<S: Clone> CurrentPoint<S> {
    /// Nothing evaluated yet; the vectors take `y0`'s shape.
    pub fn new(y0: &S) -> Self {
        Self {
            f: y0.clone(),
            valid: false,
            scratch: y0.clone(),
            work: Stats::default(),
        }
    }

    /// f at (t, y) unless it is known.
    pub fn ensure<T: Float, F: OdeSystem<T, S>>(&mut self, sys: &mut F, t: T, y: &S)
    where
        S: State<T>,
    {
        if !self.valid {
            sys.rhs(t, y, &mut self.f);
            self.work.nfe += 1;
            self.valid = true;
        }
    }

    /// `Stepper::derivative`: f at (t, y) and the scratch vector.
    pub fn derivative<T: Float, F: OdeSystem<T, S>>(
        &mut self,
        sys: &mut F,
        t: T,
        y: &S,
    ) -> (&S, &mut S)
    where
        S: State<T>,
    {
        self.ensure(sys, t, y);
        (&self.f, &mut self.scratch)
    }
}
