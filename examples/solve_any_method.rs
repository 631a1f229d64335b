//! Every method of cnf-ode, chosen at run time by name, on the same closure.
//!
//! The harmonic oscillator y'' = -y (y(0) = 1, y'(0) = 0) on [0, 10], exact solution
//! (cos t, -sin t). Adaptive methods run at rtol = atol = 1e-8, fixed-step ones with 1000 steps.
//!
//! ```text
//! cargo run --release --example solve_any_method
//! ```
use cnf::ode::{Method, Solver};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t_end = 10.0f64;
    let exact = [t_end.cos(), -t_end.sin()];
    println!(
        "{:<9} {:>10} {:>7} {:>9}",
        "method", "error", "NFE", "accepted"
    );
    for method in Method::ALL {
        // Built from its name, as a config file or a command line would give it.
        let method: Method = method.to_string().parse()?;
        let solver = Solver::new(method).rtol(1e-8).atol(1e-8);
        let solver = if method.is_adaptive() {
            solver
        } else {
            solver.fixed_steps(1000)
        };
        let sol = solver.solve(
            |_t, y, dy| {
                dy[0] = y[1];
                dy[1] = -y[0];
            },
            0.0,
            t_end,
            &vec![1.0, 0.0],
        )?;
        let err = sol
            .y
            .iter()
            .zip(exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{:<9} {:>10.2e} {:>7} {:>9}",
            method, err, sol.stats.nfe, sol.stats.accepted
        );
    }
    Ok(())
}
