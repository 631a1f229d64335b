//! The hand-written Dopri5 loop is the floor of `Solver::new(Dopri5)`: the same accepted and
//! rejected steps, the same evaluations and the same final state on every benchmark problem
//! and tolerance of the work-precision tables.
use cnf_ode::{Dopri5, Solver};
use cnf_testkit::floor::dopri5_by_hand;
use cnf_testkit::problems::{Problem, ARENSTORF, KEPLER, LORENZ, TOLERANCES};

fn same_steps<const N: usize>(p: &Problem<N>) {
    for tol in TOLERANCES {
        let sol = Solver::new(Dopri5)
            .rtol(tol)
            .atol(tol)
            .solve_small(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let (y, counts) = dopri5_by_hand(p.rhs, 0.0, p.t_end, p.y0, tol, tol);
        let stats = (sol.stats.nfe, sol.stats.accepted, sol.stats.rejected);
        assert_eq!(
            (counts.nfe, counts.accepted, counts.rejected),
            stats,
            "{} {tol}",
            p.name
        );
        assert_eq!(y, sol.y, "{} {tol}", p.name);
    }
}

#[test]
fn takes_the_same_steps_as_the_solver() {
    same_steps(&ARENSTORF);
    same_steps(&KEPLER);
    same_steps(&LORENZ);
}
