//! The hot-path methods do not allocate once their scratch is large enough, apart from the
//! workspace the `gemm` crate allocates inside a GEMM call (it has no API to pass one in): its
//! packing buffer when it packs, and a vector of flags, so at most two allocations per call.
//! Every allocation of a steady-state round is attributed by its backtrace: none may come from
//! outside the gemm crate.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};

use cnf_field::field::VjpOutput;
use cnf_field::{rademacher_probes, Inputs, Linear, Trace, VectorField};
use common::*;
use rand::SeedableRng;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static RECORD: Cell<bool> = const { Cell::new(false) };
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    static TRACES: RefCell<Vec<Backtrace>> = const { RefCell::new(Vec::new()) };
}

/// The system allocator, counting this thread's allocations and, while recording, keeping a
/// backtrace of each (the allocations of the capture itself are neither counted nor kept).
struct Attributing;

// SAFETY: forwards to the system allocator unchanged; only thread-local bookkeeping is added.
unsafe impl GlobalAlloc for Attributing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !IN_HOOK.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
            if RECORD.with(Cell::get) {
                IN_HOOK.with(|h| h.set(true));
                let bt = Backtrace::force_capture();
                TRACES.with(|t| t.borrow_mut().push(bt));
                IN_HOOK.with(|h| h.set(false));
            }
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Attributing = Attributing;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}

/// Whether a backtrace passes through the gemm crate (gemm, gemm-common, gemm-f32/f64).
fn from_gemm(bt: &Backtrace) -> bool {
    let text = bt.to_string();
    text.contains("gemm_common::")
        || text.contains("gemm::gemm::")
        || text.contains("gemm_f64::")
        || text.contains("gemm_f32::")
        || text.contains("/gemm-common-")
}

/// Allocations of `f` as (inside the gemm crate, elsewhere); prints one backtrace from
/// elsewhere, if any.
fn attributed(f: impl FnOnce()) -> (usize, usize) {
    TRACES.with(|t| t.borrow_mut().clear());
    RECORD.with(|r| r.set(true));
    let n = allocations_during(f);
    RECORD.with(|r| r.set(false));
    let traces = TRACES.with(|t| std::mem::take(&mut *t.borrow_mut()));
    assert_eq!(traces.len(), n);
    let gemm = traces.iter().filter(|bt| from_gemm(bt)).count();
    if let Some(bt) = traces.iter().find(|bt| !from_gemm(bt)) {
        println!("allocation outside gemm:\n{bt}");
    }
    (gemm, n - gemm)
}

/// Runs eval, eval + div and the VJP (exact and Hutchinson) once to size the scratch, then
/// attributes the allocations of a second round: (inside gemm, elsewhere).
fn steady_state_allocations<F: VectorField<f64>>(
    f: &F,
    p: &Problem,
    probes: &[f64],
) -> (usize, usize) {
    let mut s = f.scratch(1);
    let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
    let (mut g_z, mut g_th) = (vec![0.0; p.z.len()], vec![0.0; f.num_params()]);
    let mut round = |s: &mut F::Scratch| {
        for trace in [Trace::Exact, Trace::Hutchinson(probes)] {
            f.eval_batch(s, Inputs::shared(p.t, &p.z), &mut v);
            f.eval_div_batch(s, Inputs::shared(p.t, &p.z), &trace, &mut v, &mut div);
            f.vjp_batch(
                s,
                p.input(&trace),
                VjpOutput::new(&mut v, &mut div, &mut g_z, &mut g_th),
            );
        }
    };
    round(&mut s);
    attributed(|| round(&mut s))
}

#[test]
fn hot_paths_do_not_allocate_in_steady_state() {
    use cnf_field::LayerKind;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    // GEMM calls per trace with L = 3 layers: eval L, eval_div 2L, vjp 2L forward + 4L - 1
    // backward; two traces per round.
    let gemm_calls = 2 * (9 * 3 - 1);
    for kind in [LayerKind::Concat, LayerKind::ConcatSquash] {
        let mut counts = Vec::new();
        for batch in [32, 256] {
            let p = problem_of_kind(2, vec![16, 16], 0, kind, batch, 4);
            let probes = rademacher_probes(&mut rng, 3, p.batch, 2);
            counts.push(steady_state_allocations(&p.mlp, &p, &probes));
        }
        println!("{kind:?}: (gemm's, ours) per round for 32 and 256 points: {counts:?}");
        for &(gemm, ours) in &counts {
            // Nothing of ours; gemm's workspace: at most two per GEMM call, whatever the batch.
            assert_eq!(ours, 0, "{kind:?}: {counts:?}");
            assert!(
                gemm <= 2 * gemm_calls,
                "{kind:?}: {counts:?} for {gemm_calls} GEMMs"
            );
            // The attribution sees gemm's allocations (it is not vacuously "not ours"), where
            // the gemm crate runs the products (with AVX-512 the fused kernel runs nearly all).
            #[cfg(target_arch = "x86_64")]
            let fused = std::arch::is_x86_feature_detected!("avx512f");
            #[cfg(not(target_arch = "x86_64"))]
            let fused = false;
            assert!(gemm > 0 || fused, "{kind:?}: {counts:?}");
        }
    }
    let p = problem(2, vec![1], 0, 32, 5);
    let probes = rademacher_probes(&mut rng, 3, p.batch, 2);
    let lin = Linear::new(2, &[0.5, -1.0, 2.0, 0.25], &[0.1, 0.2]).unwrap();
    assert_eq!(steady_state_allocations(&lin, &p, &probes), (0, 0));
    // Sanity check of the counter itself.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
