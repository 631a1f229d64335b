//! cnf-ode's Dopri5 and DOP853 against an independent implementation of the same algorithms, the
//! `ode_solvers` crate (Hairer's DOPRI5 and DOP853 with the same step-size control): on the
//! project's benchmark problems and a range of tolerances both take the same steps (equal
//! accepted counts, equal numbers of attempted steps) and end at the same state. This pins the step sequences of the two methods:
//! an engine change that alters one (reordered arithmetic that flips an accept/reject decision,
//! a different controller constant) fails here.
use cnf::ode::{Dop853, Dopri5, RkMethod, Solver, Stats};
use cnf_testkit::problems::{Problem, ARENSTORF, KEPLER, LORENZ};
use ode_solvers::{OutputType, SVector, System};

/// A benchmark problem as an `ode_solvers` system.
struct Peer<const N: usize>(fn(f64, &[f64; N], &mut [f64; N]));

impl<const N: usize> System<f64, SVector<f64, N>> for Peer<N> {
    fn system(&self, t: f64, y: &SVector<f64, N>, dy: &mut SVector<f64, N>) {
        let y: &[f64; N] = y.as_slice().try_into().expect("length N");
        (self.0)(t, y, dy.as_mut_slice().try_into().expect("length N"));
    }
}

/// ode_solvers' statistics and final state.
fn peer<const N: usize>(p: &Problem<N>, dop853: bool, tol: f64) -> (Stats, [f64; N]) {
    let y0 = SVector::<f64, N>::from(p.y0);
    let (stats, y) = if dop853 {
        let mut s = ode_solvers::Dop853::new(Peer(p.rhs), 0.0, p.t_end, p.t_end, y0, tol, tol);
        s.set_output(OutputType::Sparse);
        (s.integrate(), *s.y_out().last().expect("final state"))
    } else {
        let mut s = ode_solvers::Dopri5::new(Peer(p.rhs), 0.0, p.t_end, p.t_end, y0, tol, tol);
        s.set_output(OutputType::Sparse);
        (s.integrate(), *s.y_out().last().expect("final state"))
    };
    let stats = stats.expect("ode_solvers integrates");
    (
        Stats {
            nfe: stats.num_eval as usize,
            accepted: stats.accepted_steps as usize,
            rejected: stats.rejected_steps as usize,
            ..Stats::default()
        },
        y.as_slice().try_into().expect("length N"),
    )
}

const TOLERANCES: [f64; 6] = [1e-3, 1e-5, 1e-6, 1e-8, 1e-9, 1e-10];

fn same_steps<const N: usize>(p: &Problem<N>, m: &dyn RkMethod, dop853: bool) {
    for tol in TOLERANCES {
        let ours = Solver::new(m.tableau())
            .rtol(tol)
            .atol(tol)
            .solve_system(&mut { p.rhs }, 0.0, p.t_end, &p.y0)
            .unwrap();
        let (theirs, y) = peer(p, dop853, tol);
        let name = format!("{} {} {tol:e}", p.name, m.tableau().name);
        println!("{name}: ours {} / ode_solvers {theirs}", ours.stats);
        assert_eq!(ours.stats.accepted, theirs.accepted, "{name}: accepted");
        // Our initial-step estimate reuses f(y0), which ode_solvers evaluates again (Dopri5:
        // once; DOP853: twice). Past that both count the same evaluations per attempted step,
        // so equal NFE means equally many attempted steps.
        let extra = if dop853 { 2 } else { 1 };
        assert_eq!(ours.stats.nfe + extra, theirs.nfe, "{name}: nfe");
        // ode_solvers, as Hairer's Fortran, counts a rejection only once a step has been
        // accepted; we count every one. With the attempts equal, the difference is the number
        // of rejected first steps, which is small.
        assert!(
            ours.stats.rejected >= theirs.rejected && ours.stats.rejected <= theirs.rejected + 3,
            "{name}: rejected"
        );
        // Same steps, so the same state up to the rounding of differently ordered sums, far
        // below the error of the solve itself: measured at most 1.1e-3 of it, except Kepler with
        // DOP853 at 1e-3 (1.6e-2: 5e-3 against an error of 0.31, where the coarse orbit
        // amplifies differences); a different step sequence would differ by about the error.
        let d = ours
            .y
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let err = p.error(&ours.y);
        println!("  |ours - ode_solvers| {d:.1e}, error {err:.1e}");
        assert!(
            d <= 0.05 * err,
            "{name}: states differ by {d:e} (error {err:e})"
        );
    }
}

#[test]
fn dopri5_takes_the_steps_of_ode_solvers() {
    same_steps(&ARENSTORF, &Dopri5, false);
    same_steps(&KEPLER, &Dopri5, false);
    same_steps(&LORENZ, &Dopri5, false);
}

#[test]
fn dop853_takes_the_steps_of_ode_solvers() {
    same_steps(&ARENSTORF, &Dop853, true);
    same_steps(&KEPLER, &Dop853, true);
    same_steps(&LORENZ, &Dop853, true);
}
