//! The step sequence of the sampling solve of the shared diffrax model (issue 15), and the
//! accuracy of the sampled points (and of log-densities) against a float64 reference at
//! rtol = atol = 1e-9, for Hairer's PI controller and the I controller.
//!
//! `$PY benches/peers/diffrax_steps.py` first (writes /tmp/cnf_sample_ref.csv: the base points
//! z, diffrax's samples and diffrax's f64 reference), then
//! `cargo run --release --example sample_steps [-- /tmp/cnf_sample_ref.csv]`.
use cnf::field::{Activation, Inputs, Mlp, Trace, VectorField};
use cnf::flow::{log_normal, Cnf};
use cnf::ode::{Dopri5, Method, PiController, PiParams, Solver, SolverSpec, Stats, StepController};
use cnf::train::data::ToySet;
use rand::{rngs::StdRng, SeedableRng};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/cnf_8g_diffrax_1000it.npz"
);

/// diffrax 0.7.2's PIDController(pcoeff=0, icoeff=1): accept when err < 1; factor
/// 0.9 err^(-1/q) clipped to [1, 10] after an accepted step, to [0.2, 0.9] after a rejection.
#[derive(Clone, Copy)]
struct DiffraxI;
impl StepController<f32> for DiffraxI {
    fn decide(&mut self, err: f32, h: f32, q: u32) -> (bool, f32) {
        let ok = err < 1.0;
        let f = 0.9 * err.powf(-1.0 / q as f32);
        let f = if ok {
            f.clamp(1.0, 10.0)
        } else {
            f.clamp(0.2, 0.9)
        };
        (ok, h * f)
    }
    fn reset(&mut self) {}
}

#[derive(Clone, Copy)]
enum Ctrl {
    Pi(PiParams),
    Diffrax,
}

/// A controller that optionally prints each decision of the controller it wraps.
#[derive(Clone, Copy)]
struct Logged {
    ctrl: Ctrl,
    pi: PiController<f32>,
    print: bool,
}

impl StepController<f32> for Logged {
    fn decide(&mut self, err: f32, h: f32, error_order: u32) -> (bool, f32) {
        let (ok, h_new) = match self.ctrl {
            Ctrl::Pi(_) => self.pi.decide(err, h, error_order),
            Ctrl::Diffrax => DiffraxI.decide(err, h, error_order),
        };
        if self.print {
            println!(
                "    h {:>12.6e}  err {:>8.4}  {}  next h {:>12.6e}",
                h.abs(),
                err,
                if ok { "ok " } else { "REJ" },
                h_new.abs()
            );
        }
        (ok, h_new)
    }
    fn reset(&mut self) {
        self.pi.reset()
    }
}

fn errors(x: &[f64], r: &[f64]) -> (f64, f64) {
    let (mut max, mut sq) = (0.0f64, 0.0);
    for (a, b) in x.iter().zip(r) {
        max = max.max((a - b).abs());
        sq += (a - b) * (a - b);
    }
    (max, (sq / x.len() as f64).sqrt())
}

/// Sampling (z at t = 1 back to t = 0) or log-density (x at t = 0 to 1, with the trace).
enum Task<'a, T> {
    Sample(&'a [T]),
    Logp(&'a [T]),
}

/// The result of one solve in f64: the points, or the log-densities.
fn solve<T: cnf::field::Real>(
    mlp: &Mlp<T>,
    task: &Task<T>,
    solver: Solver<Dopri5, T, impl StepController<T> + Clone>,
) -> (Vec<f64>, Stats) {
    let f64s = |v: &[T]| v.iter().map(|x| x.to_f64().unwrap()).collect::<Vec<_>>();
    match task {
        Task::Sample(z) => {
            let mut s = mlp.scratch(z.len() / 2);
            let sol = solver
                .solve(
                    |t: T, y: &[T], dy: &mut [T]| mlp.eval_batch(&mut s, Inputs::shared(t, y), dy),
                    T::one(),
                    T::zero(),
                    &z.to_vec(),
                )
                .unwrap();
            (f64s(&sol.y), sol.stats)
        }
        Task::Logp(x) => {
            let n = x.len() / 2;
            let mut s = mlp.scratch(n);
            let mut y0 = x.to_vec();
            y0.resize(3 * n, T::zero());
            let sol = solver
                .solve(
                    |t: T, y: &[T], dy: &mut [T]| {
                        let (v, div) = dy.split_at_mut(2 * n);
                        mlp.eval_div_batch(
                            &mut s,
                            Inputs::shared(t, &y[..2 * n]),
                            &Trace::Exact,
                            v,
                            div,
                        )
                    },
                    T::zero(),
                    T::one(),
                    &y0,
                )
                .unwrap();
            let y = f64s(&sol.y);
            let logp = (0..n)
                .map(|i| log_normal(&y[2 * i..2 * i + 2]) + y[2 * n + i])
                .collect();
            (logp, sol.stats)
        }
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/cnf_sample_ref.csv".into());
    let text = std::fs::read_to_string(&path).expect("run benches/peers/diffrax_steps.py first");
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let z32: Vec<f32> = rows
        .iter()
        .flat_map(|r| [r[0] as f32, r[1] as f32])
        .collect();
    let diffrax: Vec<f64> = rows.iter().flat_map(|r| [r[2], r[3]]).collect();
    let pyref: Vec<f64> = rows.iter().flat_map(|r| [r[4], r[5]]).collect();
    let n = rows.len();
    let x32: Vec<f32> = ToySet::EightGaussians
        .sample(n, &mut StdRng::seed_from_u64(0))
        .data()
        .iter()
        .map(|&v| v as f32)
        .collect();

    let m64 = Mlp::<f64>::from_npz(MODEL, &[64, 64, 64], Activation::Tanh).expect("model");
    let m32 = Mlp::<f32>::from_npz(MODEL, &[64, 64, 64], Activation::Tanh).expect("model");
    let reference = |task: &Task<f32>| {
        let up = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let (v, t64);
        t64 = match task {
            Task::Sample(z) => {
                v = up(z);
                Task::Sample(&v[..])
            }
            Task::Logp(x) => {
                v = up(x);
                Task::Logp(&v[..])
            }
        };
        solve(&m64, &t64, Solver::new(Dopri5).rtol(1e-9).atol(1e-9))
    };
    let (sref, st) = reference(&Task::Sample(&z32));
    let (m, rms) = errors(&sref, &pyref);
    println!(
        "sampling reference (f64, 1e-9): {} steps; vs diffrax's f64 1e-9 reference: max {m:.2e} rms {rms:.2e}",
        st.accepted
    );
    let (m, rms) = errors(&diffrax, &sref);
    println!("diffrax f32 1e-5 sampling vs reference: max {m:.3e} rms {rms:.3e}");
    let (lref, st) = reference(&Task::Logp(&x32));
    println!("log-density reference (f64, 1e-9): {} steps", st.accepted);

    let i_params = PiParams {
        beta: 0.0,
        ..PiParams::DOPRI5
    };
    let ctrls = [
        ("PI (DOPRI5)", Ctrl::Pi(PiParams::DOPRI5)),
        ("I (beta 0)", Ctrl::Pi(i_params)),
        ("diffrax I", Ctrl::Diffrax),
    ];
    let tasks = [
        ("sample", Task::Sample(&z32), &sref),
        ("logp", Task::Logp(&x32), &lref),
    ];
    for (tname, task, r) in &tasks {
        for (cname, ctrl) in ctrls {
            for h0 in [None, Some(0.01f32)] {
                println!(
                    "{tname} f32 1e-5, {cname}, initial step {}",
                    h0.map_or("Hairer".to_string(), |h| h.to_string())
                );
                let logged = Logged {
                    ctrl,
                    pi: PiController::from_params(match ctrl {
                        Ctrl::Pi(p) => p,
                        Ctrl::Diffrax => PiParams::DOPRI5,
                    }),
                    print: true,
                };
                let mut s = Solver::new(Dopri5).rtol(1e-5f32).atol(1e-5f32);
                if let Some(h) = h0 {
                    s = s.initial_step(h);
                }
                let (y, stats) = solve(&m32, task, s.controller(logged));
                let (m, rms) = errors(&y, r);
                println!(
                    "    => {} accepted, {} rejected, nfe {}; vs reference: max {m:.3e} rms {rms:.3e}",
                    stats.accepted, stats.rejected, stats.nfe
                );
            }
        }
    }
    // The flow's own solves (Cnf::transform, as Cnf::sample; 2 threads over rows).
    for (name, control) in [
        ("default (I for sampling)", None),
        ("the tableau's (PI)", Some(PiParams::DOPRI5)),
    ] {
        let mut b = SolverSpec::builder(Method::Dopri5).rtol(1e-5).atol(1e-5);
        if let Some(p) = control {
            b = b.controller(p);
        }
        let cnf = Cnf::new(m32.clone(), b.build().unwrap());
        let out = cnf.transform(&z32, 1.0, 0.0).unwrap();
        let x: Vec<f64> = out.points.iter().map(|&v| f64::from(v)).collect();
        let (m, rms) = errors(&x, &sref);
        println!(
            "Cnf::transform, controller {name}: {} steps, nfe {}; vs reference: max {m:.3e} rms {rms:.3e}",
            out.stats.accepted, out.stats.nfe
        );
    }
    // Work-precision: NFE against error over tolerances, Hairer's initial step.
    println!("work-precision (f32, rtol = atol = tol, Hairer's initial step)");
    for (tname, task, r) in &tasks {
        for (cname, ctrl) in &ctrls[..2] {
            for tol in [1e-3f32, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6] {
                let Ctrl::Pi(p) = *ctrl else { unreachable!() };
                let s = Solver::new(Dopri5)
                    .rtol(tol)
                    .atol(tol)
                    .controller(PiController::from_params(p));
                let (y, stats) = solve(&m32, task, s);
                let (m, rms) = errors(&y, r);
                println!(
                    "  {tname:6} {cname:12} tol {tol:.0e}: steps {:2} rej {} nfe {:3}  max {m:.3e} rms {rms:.3e}",
                    stats.accepted, stats.rejected, stats.nfe
                );
            }
        }
    }
}
