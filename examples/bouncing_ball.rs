//! A bouncing ball: events with a state reset and a terminal count.
//!
//! Height x and velocity v with x' = v, v' = -g, dropped from 1 m at rest. Event 0 is the floor
//! (x = 0 going down): its action reflects the velocity with restitution e = 0.9 and the
//! method restarts from the new state; the solve stops at the 20th impact. Event 1 records the
//! apexes (v = 0 going down) without changing anything. Impact times are printed against the
//! closed form t_1 = sqrt(2 h / g), t_{k+1} = t_k + 2 e^k g t_1 / g.
//!
//! ```text
//! cargo run --release --example bouncing_ball
//! ```
use cnf::ode::{Direction, Dopri5, Event, Solver, StopReason};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (g, e, h0, impacts) = (9.81f64, 0.9f64, 1.0f64, 20);
    let events = vec![
        Event::new(|_t, y: &[f64]| y[0])
            .direction(Direction::Down)
            .terminal(impacts)
            .action(move |_t, y: &mut Vec<f64>| y[1] *= -e),
        Event::new(|_t, y: &[f64]| y[1]).direction(Direction::Down),
    ];
    let sol = Solver::new(Dopri5)
        .rtol(1e-10)
        .atol(1e-12)
        .solve_with_events(
            |_t, y, dy| {
                dy[0] = y[1];
                dy[1] = -g;
            },
            0.0,
            100.0,
            &vec![h0, 0.0],
            events,
        )?;
    assert_eq!(sol.stop, StopReason::TerminalEvent);

    let t1 = (2.0 * h0 / g).sqrt();
    let mut exact = t1;
    let mut k = 0;
    println!(
        "{:>6} {:>20} {:>20} {:>10}",
        "impact", "t", "closed form", "error"
    );
    for record in sol.events.iter().filter(|r| r.fired.contains(&0)) {
        println!(
            "{:>6} {:>20.15} {:>20.15} {:>10.1e}",
            k + 1,
            record.t,
            exact,
            (record.t - exact).abs()
        );
        k += 1;
        exact += 2.0 * e.powi(k) * t1;
    }
    let apexes = sol.events.iter().filter(|r| r.fired == [1]).count();
    println!(
        "stopped at t = {:.12} ({:?}) after {} impacts and {} apexes; {}",
        sol.t, sol.stop, impacts, apexes, sol.stats
    );
    Ok(())
}
