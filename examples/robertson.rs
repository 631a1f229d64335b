//! A stiff problem: Robertson's chemical kinetics (ROBER of the Bari test set) to t = 1e11,
//! with Rodas5P, Rosenbrock23, BDF and Radau chosen by name, the Jacobian automatic (finite differences),
//! against the test set's reference end point. Dopri5 is shown for contrast on [0, 40] only:
//! stability, not accuracy, limits its steps.
//!
//! ```text
//! cargo run --release --example robertson
//! ```
use cnf::ode::{Method, Solver};

/// y1' = -0.04 y1 + 1e4 y2 y3, y3' = 3e7 y2^2, y2' = -y1' - y3'.
fn rober(_t: f64, y: &[f64], dy: &mut [f64]) {
    dy[0] = -0.04 * y[0] + 1e4 * y[1] * y[2];
    dy[2] = 3e7 * y[1] * y[1];
    dy[1] = -dy[0] - dy[2];
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Mazzia & Magherini, Test Set for IVP Solvers, ROBER at t = 1e11.
    let reference = [
        0.2083340149701255e-07,
        0.8333360770334713e-13,
        0.999_999_979_166_505,
    ];
    let y0 = [1.0, 0.0, 0.0];
    println!(
        "{:<13} {:>6} {:>8} {:>6} {:>5} {:>6} {:>6}",
        "method", "rtol", "digits", "nfe", "steps", "LU", "jac"
    );
    for name in ["rodas5p", "rosenbrock23", "bdf", "radau"] {
        let method: Method = name.parse()?;
        for rtol in [1e-4, 1e-6, 1e-8] {
            let sol = Solver::new(method)
                .rtol(rtol)
                .atol(rtol * 1e-10)
                .solve(rober, 0.0, 1e11, &y0)?;
            let rel = sol
                .y
                .iter()
                .zip(reference)
                .map(|(y, r)| ((y - r) / r).abs())
                .fold(0.0, f64::max);
            let s = sol.stats;
            println!(
                "{name:<13} {rtol:>6.0e} {:>8.2} {:>6} {:>5} {:>6} {:>6}",
                -rel.log10(),
                s.nfe,
                s.accepted,
                s.factorisations,
                s.jacobians
            );
        }
    }
    let explicit = Solver::new(Method::Dopri5)
        .rtol(1e-6)
        .atol(1e-12)
        .solve(rober, 0.0, 40.0, &y0)?;
    let stiff = Solver::new(Method::Rodas5p)
        .rtol(1e-6)
        .atol(1e-12)
        .solve(rober, 0.0, 40.0, &y0)?;
    println!(
        "on [0, 40]: dopri5 {} steps ({} nfe), rodas5p {} steps ({} nfe)",
        explicit.stats.accepted, explicit.stats.nfe, stiff.stats.accepted, stiff.stats.nfe
    );
    Ok(())
}
