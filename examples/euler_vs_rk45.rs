//! Euler, RK4 and RK45 (Dopri5) on a problem with a known solution: the damped oscillator
//! y' = A y, A = [[0, 1], [-1, -0.1]], y(0) = (1, 0) on [0, 10], exact y(t) = exp(At) y0.
//! Prints error, NFE and time per setting and writes a log-log plot of error vs NFE.
//!
//! `cargo run --release --example euler_vs_rk45 [-- --out PATH.png]`
use std::time::Instant;

use cnf::ode::{Dopri5, Euler, Rk4, RkMethod, Solver, Tableau};
use nalgebra::{Matrix2, Vector2};

const T_END: f64 = 10.0;

fn rhs(_t: f64, y: &[f64; 2], dy: &mut [f64; 2]) {
    dy[0] = y[1];
    dy[1] = -y[0] - 0.1 * y[1];
}

/// One solve: (max abs error at T_END, NFE, median seconds of 5 runs).
fn run(solver: &Solver<&'static Tableau, f64>, exact: &Vector2<f64>) -> (f64, usize, f64) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let sol = solver
            .solve_system(&mut rhs, 0.0, T_END, &[1.0, 0.0])
            .expect("solve");
        times.push(t0.elapsed().as_secs_f64());
        last = Some(sol);
    }
    times.sort_by(f64::total_cmp);
    let sol = last.expect("five runs");
    let err = (sol.y[0] - exact[0]).abs().max((sol.y[1] - exact[1]).abs());
    (err, sol.stats.nfe, times[2])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "euler_vs_rk45.png".into());
    let a = Matrix2::new(0.0, 1.0, -1.0, -0.1);
    let exact = (a * T_END).exp() * Vector2::new(1.0, 0.0);

    println!("damped oscillator on [0, {T_END}], error = max abs error of y({T_END}) vs exp(At) y0 (nalgebra)");
    println!(
        "{:<8} {:>16} {:>12} {:>8} {:>12}",
        "method", "setting", "max error", "NFE", "time (us)"
    );
    let mut series = Vec::new();
    let fixed = [(Euler.tableau(), "Euler"), (Rk4.tableau(), "RK4")];
    for (tab, name) in fixed {
        let mut pts = Vec::new();
        for n in [10usize, 30, 100, 300, 1000, 3000, 10_000] {
            let (err, nfe, secs) = run(&Solver::new(tab).fixed_steps(n), &exact);
            println!(
                "{name:<8} {:>16} {err:>12.3e} {nfe:>8} {:>12.1}",
                format!("N = {n}"),
                secs * 1e6
            );
            pts.push((nfe as f64, err.max(1e-16)));
        }
        series.push((name.to_string(), pts));
    }
    let mut pts = Vec::new();
    for k in 2..=12 {
        let tol = 10f64.powi(-k);
        let (err, nfe, secs) = run(&Solver::new(Dopri5.tableau()).rtol(tol).atol(tol), &exact);
        println!(
            "{:<8} {:>16} {err:>12.3e} {nfe:>8} {:>12.1}",
            "RK45",
            format!("tol = 1e-{k}"),
            secs * 1e6
        );
        pts.push((nfe as f64, err.max(1e-16)));
    }
    series.push(("RK45 (Dopri5)".to_string(), pts));
    match cnf_cli::plot::loglog_lines(&out, "error vs work", "NFE", "max abs error", &series) {
        Ok(()) => println!("wrote {out}"),
        Err(e) => {
            eprintln!("error: could not write {out}: {e}");
            std::process::exit(1);
        }
    }
}
