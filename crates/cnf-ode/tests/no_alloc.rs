//! The stepping loop does not allocate: a solve allocates the same number of times whatever
//! its number of steps (buffers are made once, before the loop).
use cnf_ode::{Dop853, Dopri5, Rk4, RkMethod, Solver, Tableau};
use cnf_testkit::alloc_count::{allocations_during, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations and accepted steps of one solve of the oscillator on [0, t1].
fn count(solver: &Solver<&'static Tableau, f64>, t1: f64) -> (usize, usize) {
    let y0 = vec![1.0, 0.0];
    let mut rhs = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| {
        dy[0] = y[1];
        dy[1] = -y[0];
    };
    let mut accepted = 0;
    let n = allocations_during(|| {
        accepted = solver
            .solve_system(&mut rhs, 0.0, t1, &y0)
            .unwrap()
            .stats
            .accepted
    });
    (n, accepted)
}

#[test]
fn allocations_do_not_grow_with_the_number_of_steps() {
    for tab in [Dopri5.tableau(), Dop853.tableau()] {
        let s = Solver::new(tab).rtol(1e-8).atol(1e-8);
        let (short, steps_short) = count(&s, 1.0);
        let (long, steps_long) = count(&s, 50.0);
        assert!(
            steps_long > 10 * steps_short,
            "{steps_short} vs {steps_long}"
        );
        assert_eq!(short, long, "{}: allocations depend on the steps", tab.name);
        assert!(short > 0, "the counter counts");
    }
    let (few, _) = count(&Solver::new(Rk4.tableau()).fixed_steps(10), 1.0);
    let (many, steps) = count(&Solver::new(Rk4.tableau()).fixed_steps(1000), 1.0);
    assert_eq!(steps, 1000);
    assert_eq!(few, many, "RK4: allocations depend on the steps");
}
