//! The hot-path methods do not allocate once their scratch is large enough, apart from the
//! packing workspace the `gemm` crate allocates inside a GEMM call (it has no API to pass one
//! in; one or two buffers a call, sized by the matrices).

mod common;

use cnf_field::{rademacher_probes, Linear, Trace, VectorField};
use cnf_ode::alloc_count::{allocations_during, CountingAllocator};
use common::*;
use rand::SeedableRng;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs eval, eval + div and the VJP (exact and Hutchinson) once to size the scratch, then
/// counts allocations of a second round, which must be zero.
fn steady_state_allocations<F: VectorField<f64>>(f: &F, p: &Problem, probes: &[f64]) -> usize {
    let mut s = f.scratch(1);
    let (mut v, mut div) = (vec![0.0; p.z.len()], vec![0.0; p.batch]);
    let (mut g_z, mut g_th) = (vec![0.0; p.z.len()], vec![0.0; f.num_params()]);
    let mut round = |s: &mut F::Scratch| {
        for trace in [Trace::Exact, Trace::Hutchinson(probes)] {
            f.eval_batch(s, p.t, &p.z, &mut v);
            f.eval_div_batch(s, p.t, &p.z, &trace, &mut v, &mut div);
            f.vjp_batch(
                s, p.t, &p.z, &trace, &p.a_v, &p.a_div, &mut v, &mut div, &mut g_z, &mut g_th,
            );
        }
    };
    round(&mut s);
    allocations_during(|| round(&mut s))
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
        // At most gemm's two packing buffers per GEMM call, whatever the number of points.
        for c in &counts {
            assert!(
                *c <= 2 * gemm_calls,
                "{kind:?}: {counts:?} for {gemm_calls} GEMMs"
            );
        }
    }
    let p = problem(2, vec![1], 0, 32, 5);
    let probes = rademacher_probes(&mut rng, 3, p.batch, 2);
    let lin = Linear::new(2, &[0.5, -1.0, 2.0, 0.25], &[0.1, 0.2]).unwrap();
    assert_eq!(steady_state_allocations(&lin, &p, &probes), 0);
    // Sanity check of the counter itself.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}
