//! Speed of one conditional flow-matching training step (docs/sbi.md, "Where the time goes"):
//! the MLP's one-pass regression VJP (`VectorField::vjp_of_v`: the forward pass kept for the
//! backward one) against the trait's two-pass default (`eval_batch`, then `vjp_batch`, which
//! evaluates `v` again), in the same run, alternating, on the shapes of the sbibm tasks.
//!
//! `cargo bench --bench sbi_fm_step_speed [-- BATCH [WIDTH [LAYERS]]]` (default 512, 128, 3)
//!
//! One JSON line per task and variant: the median wall time of a step (ms, f32, the batch's
//! gradient split over the cores in row blocks as `cnf train --context` splits it), over 9
//! rounds of 50 steps, and the largest difference between the two variants' gradients.
use std::time::Instant;

use cnf::field::{
    Activation, Inputs, Mlp, MlpConfig, MlpScratch, Trace, VectorField, VjpInput, VjpOutput,
};
use cnf::train::fm::{Coupling, FlowMatching, FmWork, PathSpec, TimeDist};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// The MLP with the trait's default (two-pass) `vjp_of_v`: the peer of the one-pass MLP.
struct TwoPass(Mlp<f32>);

impl VectorField<f32> for TwoPass {
    type Scratch = MlpScratch<f32>;
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn num_params(&self) -> usize {
        self.0.num_params()
    }
    fn params(&self) -> &[f32] {
        self.0.params()
    }
    fn params_mut(&mut self) -> &mut [f32] {
        self.0.params_mut()
    }
    fn scratch(&self, batch: usize) -> MlpScratch<f32> {
        self.0.scratch(batch)
    }
    fn eval_batch(&self, s: &mut MlpScratch<f32>, x: Inputs<'_, f32>, out: &mut [f32]) {
        self.0.eval_batch(s, x, out)
    }
    fn eval_div_batch(
        &self,
        s: &mut MlpScratch<f32>,
        x: Inputs<'_, f32>,
        trace: &Trace<f32>,
        v: &mut [f32],
        div: &mut [f32],
    ) {
        self.0.eval_div_batch(s, x, trace, v, div)
    }
    fn vjp_batch(
        &self,
        s: &mut MlpScratch<f32>,
        input: VjpInput<'_, f32>,
        out: VjpOutput<'_, f32>,
    ) {
        self.0.vjp_batch(s, input, out)
    }
    fn context_dim(&self) -> usize {
        self.0.context_dim()
    }
}

const ROUNDS: usize = 9;
const STEPS: usize = 50;

/// Milliseconds per step of `STEPS` steps on the same batch, and the last gradient.
fn steps<F: VectorField<f32>>(
    field: &F,
    work: &mut FmWork<f32, F::Scratch>,
    x: &[f32],
    c: &[f32],
    grad: &mut [f32],
) -> f64 {
    let fm = FlowMatching {
        path: PathSpec::Straight { sigma: 0.0 },
        coupling: Coupling::Independent,
        time: TimeDist::Uniform,
    };
    let mut rng = StdRng::seed_from_u64(3);
    let t = Instant::now();
    for _ in 0..STEPS {
        fm.step_given(field, work, x, c, &mut rng, grad)
            .expect("a valid batch");
    }
    t.elapsed().as_secs_f64() * 1e3 / STEPS as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch = args.first().copied().unwrap_or(512);
    let width = args.get(1).copied().unwrap_or(128);
    let layers = args.get(2).copied().unwrap_or(3);
    let blocks = rayon::current_num_threads();
    for (task, d, k) in [
        ("two_moons", 2, 2),
        ("slcp", 5, 8),
        ("gaussian_linear", 10, 10),
    ] {
        let config = MlpConfig::new(d, &vec![width; layers], Activation::Tanh).with_context(k);
        let one = Mlp::<f32>::new(config, 0).expect("a valid network");
        let two = TwoPass(one.clone());
        let mut rng = StdRng::seed_from_u64(1);
        let x: Vec<f32> = (0..batch * d)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let c: Vec<f32> = (0..batch * k)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let (mut w1, mut w2) = (
            FmWork::new(&one).with_row_blocks(blocks),
            FmWork::new(&two).with_row_blocks(blocks),
        );
        let (mut g1, mut g2) = (vec![0.0; one.num_params()], vec![0.0; one.num_params()]);
        let (mut t1, mut t2) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            t1.push(steps(&one, &mut w1, &x, &c, &mut g1));
            t2.push(steps(&two, &mut w2, &x, &c, &mut g2));
        }
        let diff = g1
            .iter()
            .zip(&g2)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        for (variant, times) in [("one pass (vjp_of_v)", t1), ("two passes (default)", t2)] {
            println!(
                "{}",
                json!({"task": task, "d": d, "k": k, "batch": batch, "hidden": vec![width; layers],
                       "row_blocks": blocks, "variant": variant, "ms_per_step": median(times),
                       "max_grad_difference": diff})
            );
        }
    }
}
