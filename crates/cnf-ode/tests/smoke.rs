use cnf_ode::{Bs3, Dopri5, Rk4, Solver};

fn lorenz(_t: f64, y: &[f64; 3], dy: &mut [f64; 3]) {
    dy[0] = 10.0 * (y[1] - y[0]);
    dy[1] = y[0] * (28.0 - y[2]) - y[1];
    dy[2] = y[0] * y[1] - 8.0 / 3.0 * y[2];
}

#[test]
fn lorenz_dopri5_matches_reference() {
    let reference = [-6.51211369941923, -6.974042788415759, 23.924129572104295];
    for tol in [1e-6, 1e-8, 1e-10] {
        let sol = Solver::new(Dopri5)
            .rtol(tol)
            .atol(tol)
            .solve(&mut lorenz, 0.0, 5.0, &[1.0, 1.0, 1.0])
            .unwrap();
        let err = (0..3)
            .map(|i| (sol.y[i] - reference[i]).abs())
            .fold(0.0, f64::max);
        println!("tol {tol:e}: err {err:.2e} {}", sol.stats);
        let sol = Solver::new(Bs3)
            .rtol(tol)
            .atol(tol)
            .solve(&mut lorenz, 0.0, 5.0, &[1.0, 1.0, 1.0])
            .unwrap();
        let err3 = (0..3)
            .map(|i| (sol.y[i] - reference[i]).abs())
            .fold(0.0, f64::max);
        println!("bs3 tol {tol:e}: err {err3:.2e} {}", sol.stats);
        assert!(err < tol * 1e4);
    }
    let sol = Solver::new(Rk4)
        .fixed_steps(1000)
        .solve(&mut lorenz, 0.0, 5.0, &[1.0, 1.0, 1.0])
        .unwrap();
    println!("rk4 {:?} {}", sol.y, sol.stats);
}
