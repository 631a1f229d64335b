//! MLP field throughput: v, v + exact trace, and + parameter VJP, for a batch of 512 points
//! (d = 2, 3 x 64 tanh, the FFJORD 8-gaussians architecture), against the raw GEMM of the hidden
//! layers' tangent shape measured in the same run on the gemm crate and on the fused AVX-512
//! kernel, on one thread and on two (the summary printed after criterion's groups); and
//! the activation pass alone (vectorised tanh against libm's `tanh`) over a 512 x 64 buffer.
//!
//! Throughput is reported in "elements" = floating-point operations of the GEMMs only
//! (elementwise work is not counted), so `Gelem/s` reads as GEMM GFLOP/s.

use cnf_field::field::{VjpInput, VjpOutput};
use cnf_field::kernel::{Epilogue, GemmJob, PackedT};
use cnf_field::{Activation, Inputs, Mlp, MlpConfig, Real, Trace, VectorField};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

const BATCH: usize = 512;
const DIM: usize = 2;
const HIDDEN: [usize; 3] = [64, 64, 64];
/// The raw GEMM shape: the tangent product of a hidden layer, (B * d, 64) x (64, 64).
const GEMM_SHAPE: (usize, usize, usize) = (BATCH * DIM, 64, 64);

/// GEMM flops of one `eval_batch`, one `eval_div_batch` (exact trace) and one `vjp_batch`.
fn pass_flops(config: &MlpConfig) -> (f64, f64, f64) {
    let (b, d, nt) = (BATCH as f64, config.dim as f64, config.dim as f64);
    let (mut primal, mut fwd, mut bwd) = (0.0, 0.0, 0.0);
    for (l, (out, inp)) in config.layer_shapes().into_iter().enumerate() {
        let (out, inp) = (out as f64, inp as f64);
        let in_tan = if l == 0 { d } else { inp };
        primal += 2.0 * b * inp * out;
        fwd += 2.0 * b * inp * out + 2.0 * b * nt * in_tan * out;
        bwd += 2.0 * out * b * inp + 2.0 * out * b * nt * in_tan;
        bwd += if l == 0 {
            2.0 * b * out * d
        } else {
            2.0 * b * out * inp + 2.0 * b * nt * out * inp
        };
    }
    (primal, fwd, fwd + bwd)
}

struct Problem<T: Real> {
    mlp: Mlp<T>,
    z: Vec<T>,
    a_v: Vec<T>,
    a_div: Vec<T>,
    /// The raw GEMM's `B` as the fused kernel reads it: `W^T`, packed like the MLP's weights.
    packed: PackedT<T>,
}

fn problem<T: Real>() -> Problem<T> {
    let mlp = Mlp::new(MlpConfig::new(DIM, &HIDDEN, Activation::Tanh), 7).expect("valid config");
    let wave = |n: usize, f: f64| {
        (0..n)
            .map(|i| cnf_ode::cast::<T>((i as f64 * f).sin() * 2.0))
            .collect()
    };
    let (_, k, n) = GEMM_SHAPE;
    let mut packed = PackedT::default();
    packed.refresh(&vec![cnf_ode::cast::<T>(0.25); n * k], n, k);
    Problem {
        mlp,
        z: wave(BATCH * DIM, 0.37),
        a_v: wave(BATCH * DIM, 0.11),
        a_div: wave(BATCH, 0.53),
        packed,
    }
}

/// Whether this type has the fused SIMD kernel on this CPU (a 1 x 1 x 1 product runs on it).
fn has_kernel<T: Real>() -> bool {
    let one = [T::one()];
    let mut c = [T::zero()];
    T::simd_gemm(&mut GemmJob {
        m: 1,
        k: 1,
        n: 1,
        a: (&one, 1, 1),
        b: (&one, 1, 1),
        c: &mut c,
        epilogue: Epilogue::Store { bias: None },
    })
}

fn gemm_once<T: Real>(a: &[T], b: &[T], c: &mut [T]) {
    let (m, k, n) = GEMM_SHAPE;
    T::gemm(
        m,
        k,
        n,
        T::one(),
        (a, k, 1),
        (b, n, 1),
        T::zero(),
        (c, n, 1),
    );
}

/// The raw GEMM on the fused kernel (nothing if it is not available).
fn kernel_gemm_once<T: Real>(a: &[T], b: (&[T], usize, usize), c: &mut [T]) {
    let (m, k, n) = GEMM_SHAPE;
    T::simd_gemm(&mut GemmJob {
        m,
        k,
        n,
        a: (a, k, 1),
        b,
        c,
        epilogue: Epilogue::Store { bias: None },
    });
}

/// One closure sharing one scratch: 0 GEMM (gemm crate), 4 GEMM (fused kernel), 1 eval + div,
/// 2 eval + div + VJP, 3 eval.
fn run_all<T: Real>(p: &Problem<T>) -> impl FnMut(usize) + '_ {
    let (m, k, n) = GEMM_SHAPE;
    let a = vec![cnf_ode::cast::<T>(0.5); m * k];
    let bm = vec![cnf_ode::cast::<T>(0.25); k * n];
    let mut c = vec![T::zero(); m * n];
    let mut s = p.mlp.scratch(BATCH);
    let (mut v, mut div) = (vec![T::zero(); BATCH * DIM], vec![T::zero(); BATCH]);
    let (mut g_z, mut g_th) = (
        vec![T::zero(); BATCH * DIM],
        vec![T::zero(); p.mlp.num_params()],
    );
    move |which| match which {
        0 => gemm_once(&a, &bm, &mut c),
        4 => kernel_gemm_once(&a, p.packed.view(), &mut c),
        1 => p.mlp.eval_div_batch(
            &mut s,
            Inputs::shared(T::one(), black_box(&p.z)),
            &Trace::Exact,
            &mut v,
            &mut div,
        ),
        3 => p
            .mlp
            .eval_batch(&mut s, Inputs::shared(T::one(), black_box(&p.z)), &mut v),
        _ => p.mlp.vjp_batch(
            &mut s,
            VjpInput::new(
                Inputs::shared(T::one(), black_box(&p.z)),
                Trace::Exact,
                &p.a_v,
                &p.a_div,
            ),
            VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th),
        ),
    }
}

fn bench_precision<T: Real>(c: &mut Criterion) {
    let p = problem::<T>();
    let (primal_flops, fwd_flops, vjp_flops) = pass_flops(p.mlp.config());
    let (m, k, n) = GEMM_SHAPE;
    let mut run = run_all(&p);
    let mut group = c.benchmark_group(format!("mlp_{}", T::NAME));
    let cases = [
        (0, "gemm_1024x64x64", 2.0 * (m * k * n) as f64),
        (4, "kernel_gemm_1024x64x64", 2.0 * (m * k * n) as f64),
        (3, "eval_b512", primal_flops),
        (1, "eval_div_exact_b512", fwd_flops),
        (2, "eval_div_vjp_exact_b512", vjp_flops),
    ];
    for (which, name, flops) in cases {
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| run(which))
        });
    }
    group.finish();
}

/// Median seconds of `reps` timed runs of `f` after a warm-up.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..reps / 4 + 1 {
        f();
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

/// Median GFLOP/s of each `(case, flops)` on `threads` threads at once, summed over them (each
/// thread runs its own copy of the problem; a barrier lines the cases up).
fn rates<T: Real>(threads: usize, cases: &[(usize, f64)]) -> Vec<f64> {
    let barrier = std::sync::Barrier::new(threads);
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let p = problem::<T>();
                    let mut run = run_all(&p);
                    cases
                        .iter()
                        .map(|&(which, flops)| {
                            barrier.wait();
                            let reps = if which == 2 { 100 } else { 300 };
                            flops / median_secs(reps, || run(which)) / 1e9
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread"))
            .collect()
    });
    (0..cases.len())
        .map(|c| per_thread.iter().map(|r| r[c]).sum())
        .collect()
}

/// Plain-text summary: GFLOP/s of each pass next to the raw GEMM of the hidden layers' tangent
/// shape measured in the same run, on the gemm crate and on the fused kernel (the better of the
/// two is the reference), on one thread and on two (each running its own problem).
fn summary<T: Real>() {
    let p = problem::<T>();
    let (primal_flops, fwd_flops, vjp_flops) = pass_flops(p.mlp.config());
    let (m, k, n) = GEMM_SHAPE;
    let gemm_flops = 2.0 * (m * k * n) as f64;
    let kernel = has_kernel::<T>();
    let mut cases = vec![(0, gemm_flops)];
    if kernel {
        cases.push((4, gemm_flops));
    }
    let passes = [
        (3, "v", primal_flops),
        (1, "v + exact trace", fwd_flops),
        (2, "v + trace + VJP (z, theta)", vjp_flops),
    ];
    cases.extend(passes.iter().map(|&(which, _, flops)| (which, flops)));
    for threads in [1, 2] {
        let r = rates::<T>(threads, &cases);
        let (crate_rate, kernel_rate) = (r[0], if kernel { r[1] } else { f64::NAN });
        let best = crate_rate.max(if kernel { kernel_rate } else { 0.0 });
        println!(
            "[{} x{threads}] raw GEMM {m}x{k}x{n}: gemm crate {crate_rate:.1} GFLOP/s, fused \
             kernel {kernel_rate:.1} GFLOP/s",
            T::NAME,
        );
        for ((_, name, _), rate) in passes.iter().zip(&r[r.len() - passes.len()..]) {
            println!(
                "[{} x{threads}] {name}, B = {BATCH}: {rate:.1} GFLOP/s = {:.0}% of the best \
                 GEMM, {:.0}% of the gemm crate's",
                T::NAME,
                100.0 * rate / best,
                100.0 * rate / crate_rate
            );
        }
    }
}

/// Shape of the activation micro-bench: one hidden layer's pre-activations, (B, 64).
const ACT_LEN: usize = BATCH * 64;

/// The activation-pass variants timed against libm's `tanh` (each copies the input first, so
/// every run sees the same values, spread over [-4, 4] like pre-activations).
fn activation_cases<T: Real>() -> (Vec<(&'static str, Activation, usize)>, Vec<T>) {
    let x = (0..ACT_LEN)
        .map(|i| cnf_ode::cast::<T>((i as f64 * 0.618).sin() * 4.0))
        .collect();
    let mut cases = vec![
        ("libm_tanh", Activation::Tanh, 0),
        ("tanh_value", Activation::Tanh, 1),
        ("tanh_d1", Activation::Tanh, 2),
        ("tanh_d1_d2", Activation::Tanh, 3),
    ];
    for (name, act) in [
        ("softplus_d1_d2", Activation::Softplus),
        ("swish_d1_d2", Activation::Swish),
        ("elu_d1_d2", Activation::Elu),
    ] {
        cases.push((name, act, 3));
    }
    (cases, x)
}

/// Work buffers of the activation micro-bench: values, `s'`, `s''`.
struct ActBufs<T> {
    y: Vec<T>,
    d1: Vec<T>,
    d2: Vec<T>,
}

impl<T: Real> ActBufs<T> {
    fn new() -> Self {
        Self {
            y: vec![T::zero(); ACT_LEN],
            d1: vec![T::zero(); ACT_LEN],
            d2: vec![T::zero(); ACT_LEN],
        }
    }

    /// Mode 0: libm `tanh` in a plain loop; 1: `apply_value`; 2: `apply` with `s'`;
    /// 3: `apply` with `s'` and `s''`.
    fn run(&mut self, act: Activation, mode: usize, x: &[T]) {
        self.y.copy_from_slice(black_box(x));
        match mode {
            0 => self.y.iter_mut().for_each(|v| *v = v.tanh()),
            1 => act.apply_value(&mut self.y),
            2 => act.apply(&mut self.y, &mut self.d1, None),
            _ => act.apply(&mut self.y, &mut self.d1, Some(&mut self.d2)),
        }
        black_box(&self.y);
    }
}

fn bench_activation<T: Real>(c: &mut Criterion) {
    let (cases, x) = activation_cases::<T>();
    let mut bufs = ActBufs::<T>::new();
    let mut group = c.benchmark_group(format!("activation_{}_512x64", T::NAME));
    group.throughput(Throughput::Elements(ACT_LEN as u64));
    for (name, act, mode) in cases {
        group.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| bufs.run(act, mode, &x))
        });
    }
    group.finish();
}

/// Plain-text summary of the activation pass: ns per element and speed-up over libm `tanh`.
fn activation_summary<T: Real>() {
    let (cases, x) = activation_cases::<T>();
    let mut bufs = ActBufs::<T>::new();
    let copy = median_secs(400, || {
        bufs.y.copy_from_slice(black_box(&x));
        black_box(&bufs.y);
    });
    let mut libm = f64::NAN;
    for (name, act, mode) in cases {
        let secs = median_secs(400, || bufs.run(act, mode, &x));
        if mode == 0 {
            libm = secs;
        }
        println!(
            "[{}] activation {name}, 512 x 64: {:.1} us ({:.2} ns/element; copy-in {:.1} us \
             included), {:.1}x libm tanh",
            T::NAME,
            secs * 1e6,
            secs * 1e9 / ACT_LEN as f64,
            copy * 1e6,
            libm / secs
        );
    }
}

/// One hidden layer, (512 x 64) x (64 x 64) + bias, then the activation (value only, or with
/// s' and s''): the bias copied into the output before a GEMM that accumulates (beta = 1), or
/// added inside the activation pass after a GEMM that overwrites (beta = 0).
struct Layer<T> {
    h: Vec<T>,
    w: Vec<T>,
    bias: Vec<T>,
    out: ActBufs<T>,
}

impl<T: Real> Layer<T> {
    fn new() -> Self {
        let wave = |n: usize, f: f64, a: f64| {
            (0..n)
                .map(|i| cnf_ode::cast::<T>((i as f64 * f).sin() * a))
                .collect::<Vec<T>>()
        };
        Self {
            h: wave(BATCH * 64, 0.37, 1.0),
            w: wave(64 * 64, 0.11, 0.25),
            bias: wave(64, 0.7, 0.5),
            out: ActBufs::new(),
        }
    }

    /// `fused`: beta = 0 and the bias in the activation pass; `derivatives`: s' and s''.
    fn run(&mut self, fused: bool, derivatives: bool) {
        let y = &mut self.out.y;
        if !fused {
            for row in y.chunks_exact_mut(64) {
                row.copy_from_slice(&self.bias);
            }
        }
        let beta = if fused { T::zero() } else { T::one() };
        T::gemm(
            BATCH,
            64,
            64,
            T::one(),
            (black_box(&self.h), 64, 1),
            (&self.w, 1, 64),
            beta,
            (y, 64, 1),
        );
        let act = Activation::Tanh;
        match (fused, derivatives) {
            (false, false) => act.apply_value(y),
            (false, true) => act.apply(y, &mut self.out.d1, Some(&mut self.out.d2)),
            (true, false) => act.apply_value_bias(y, &self.bias),
            (true, true) => act.apply_bias(y, &self.bias, &mut self.out.d1, Some(&mut self.out.d2)),
        }
        black_box(&self.out.y);
    }
}

const LAYER_CASES: [(&str, bool, bool); 4] = [
    ("bias_copy_gemm_tanh", false, false),
    ("gemm_tanh_bias_fused", true, false),
    ("bias_copy_gemm_tanh_d1_d2", false, true),
    ("gemm_tanh_d1_d2_bias_fused", true, true),
];

fn bench_layer<T: Real>(c: &mut Criterion) {
    let mut layer = Layer::<T>::new();
    let mut group = c.benchmark_group(format!("layer_{}_512x64x64", T::NAME));
    group.throughput(Throughput::Elements(2 * (BATCH * 64 * 64) as u64));
    for (name, fused, derivatives) in LAYER_CASES {
        group.bench_function(BenchmarkId::from_parameter(name), |bch| {
            bch.iter(|| layer.run(fused, derivatives))
        });
    }
    group.finish();
}

/// Plain-text summary of one layer, bias copied before the GEMM vs fused into the activation.
fn layer_summary<T: Real>() {
    let mut layer = Layer::<T>::new();
    let times: Vec<f64> = LAYER_CASES
        .iter()
        .map(|&(_, fused, derivatives)| median_secs(400, || layer.run(fused, derivatives)))
        .collect();
    for (pair, what) in [(0, "value"), (2, "value, s', s''")] {
        println!(
            "[{}] layer 512x64x64 + tanh ({what}): bias copy + GEMM(beta 1) {:.1} us, \
             GEMM(beta 0) + fused bias {:.1} us, fused / copy = {:.3}",
            T::NAME,
            times[pair] * 1e6,
            times[pair + 1] * 1e6,
            times[pair + 1] / times[pair]
        );
    }
}

fn benches(c: &mut Criterion) {
    bench_activation::<f32>(c);
    bench_activation::<f64>(c);
    bench_layer::<f32>(c);
    bench_layer::<f64>(c);
    bench_precision::<f32>(c);
    bench_precision::<f64>(c);
    activation_summary::<f32>();
    activation_summary::<f64>();
    layer_summary::<f32>();
    layer_summary::<f64>();
    summary::<f32>();
    summary::<f64>();
}

criterion_group!(mlp, benches);
criterion_main!(mlp);
