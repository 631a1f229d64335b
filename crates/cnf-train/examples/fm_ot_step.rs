//! Exact minibatch OT per training iteration, before and after the auction warm start
//! (issue 11's target: <= 2 ms per iteration with exact OT; 2-D, batch 256, MLP 3x64, f32).
//!
//! `cargo run --release -p cnf-train --example fm_ot_step [-- ITERS]` (default 200 timed
//! iterations after 20 warm-up ones) times, interleaved on the same 8gaussians batches, and
//! prints one JSON line per variant:
//!
//! * `before`: one flow-matching step (base draws and times, the squared-distance matrix, the
//!   assignment, loss + gradient, Adam) with the previous assignment, plain LAPJV (column
//!   reduction, reduction transfer, augmenting row reduction, shortest augmenting paths),
//!   copied below verbatim;
//! * `after`: [`FlowMatching::step`] with its exact coupling (`Coupling::ExactOt`: auction with
//!   epsilon scaling, then LAPJV's shortest augmenting paths, reused buffers);
//!
//! and the assignment alone for both, on standard-normal data too. Every assignment's cost is
//! checked to agree (relative 1e-12).

use std::time::Instant;

use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
use cnf_train::data::ToySet;
use cnf_train::fm::{
    assignment_cost, fm_loss_and_grad, squared_distances, AssignWork, Coupling, FlowMatching,
    FmBatch, FmWork, PathSpec, ProbabilityPath, TimeDist,
};
use cnf_train::optim::{Adam, AdamConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("usage: fm_ot_step [ITERS]"))
        .unwrap_or(200);
    let (batch, dim, warmup) = (256usize, 2usize, 20usize);
    let mut data_rng = StdRng::seed_from_u64(0);
    let batches: Vec<Vec<f32>> = (0..iters + warmup)
        .map(|_| {
            ToySet::EightGaussians
                .sample(batch, &mut data_rng)
                .data()
                .iter()
                .map(|&v| v as f32)
                .collect()
        })
        .collect();
    let path = PathSpec::Straight { sigma: 0.0 };
    let fm = FlowMatching {
        path,
        coupling: Coupling::ExactOt,
        time: TimeDist::Uniform,
    };
    let config = MlpConfig::new(dim, &[64, 64, 64], Activation::Tanh);
    let mut mlp_old = Mlp::<f32>::new(config.clone(), 1).expect("valid MLP");
    let mut mlp_new = Mlp::<f32>::new(config, 1).expect("valid MLP");
    let np = VectorField::num_params(&mlp_new);
    let (mut work_old, mut work_new) = (FmWork::new(&mlp_old), FmWork::new(&mlp_new));
    let (mut grad_old, mut grad_new) = (vec![0.0f32; np], vec![0.0f32; np]);
    let mut adam_old = Adam::new(np, AdamConfig::default()).expect("valid Adam");
    let mut adam_new = Adam::new(np, AdamConfig::default()).expect("valid Adam");
    let (mut rng_old, mut rng_new) = (StdRng::seed_from_u64(2), StdRng::seed_from_u64(2));
    let (mut t_old, mut t_new) = (Vec::new(), Vec::new());
    let (mut loss_old, mut loss_new) = (0.0, 0.0);
    let normal = |rng: &mut StdRng| -> f32 {
        let v: f64 = StandardNormal.sample(rng);
        v as f32
    };
    for (it, x) in batches.iter().enumerate() {
        // Before: the same draws and work as `FlowMatching::step`, with the old assignment.
        let start = Instant::now();
        let e: Vec<f32> = (0..batch * dim).map(|_| normal(&mut rng_old)).collect();
        let t: Vec<f32> = (0..batch)
            .map(|_| TimeDist::Uniform.sample(&mut rng_old) as f32)
            .collect();
        assert!(!ProbabilityPath::<f32>::uses_noise(&path));
        let perm = old_lapjv(&squared_distances(x, &e, dim), batch);
        let e_paired: Vec<f32> = perm
            .iter()
            .flat_map(|&j| e[j * dim..][..dim].iter().copied())
            .collect();
        let b = FmBatch {
            x,
            e: &e_paired,
            t: &t,
            noise: &[],
        };
        let loss = fm_loss_and_grad(&mlp_old, &mut work_old, &path, &b, &mut grad_old)
            .expect("flow-matching loss");
        adam_old
            .step(mlp_old.params_mut(), &grad_old)
            .expect("Adam step");
        let dt_old = ms(start);
        // After: the library's step.
        let start = Instant::now();
        let step = fm
            .step(&mlp_new, &mut work_new, x, &mut rng_new, &mut grad_new)
            .expect("flow-matching step");
        adam_new
            .step(mlp_new.params_mut(), &grad_new)
            .expect("Adam step");
        let dt_new = ms(start);
        if it >= warmup {
            t_old.push(dt_old);
            t_new.push(dt_new);
        }
        (loss_old, loss_new) = (loss, step.loss);
    }
    for (variant, times, loss) in [("before", t_old, loss_old), ("after", t_new, loss_new)] {
        let line = serde_json::json!({
            "bench": "fm_ot_step",
            "variant": variant,
            "data": "8gaussians",
            "batch": batch,
            "hidden": [64, 64, 64],
            "precision": "f32",
            "iters": iters,
            "median_ms": median(times),
            "target_ms": 2.0,
            "final_loss": loss,
        });
        println!("{line}");
    }
    // The assignment alone, old and new, on 8gaussians and on standard-normal data.
    let mut rng = StdRng::seed_from_u64(3);
    for data in ["8gaussians", "normal"] {
        let mut work = AssignWork::new();
        let (mut a_old, mut a_new) = (Vec::new(), Vec::new());
        let (mut bids, mut aug, mut scans) = (0usize, 0usize, 0usize);
        for x in &batches[warmup..] {
            let x: Vec<f32> = if data == "normal" {
                (0..batch * dim).map(|_| normal(&mut rng)).collect()
            } else {
                x.clone()
            };
            let e: Vec<f32> = (0..batch * dim).map(|_| normal(&mut rng)).collect();
            let cost = squared_distances(&x, &e, dim);
            let start = Instant::now();
            let p_old = old_lapjv(&cost, batch);
            a_old.push(ms(start));
            let start = Instant::now();
            let p_new = work.solve(&cost, batch).expect("assignment").to_vec();
            a_new.push(ms(start));
            let s = work.stats();
            (bids, aug, scans) = (bids + s.bids, aug + s.augmentations, scans + s.path_scans);
            let (c_old, c_new) = (
                assignment_cost(&cost, batch, &p_old),
                assignment_cost(&cost, batch, &p_new),
            );
            assert!(
                (c_old - c_new).abs() <= 1e-12 * c_old.abs(),
                "costs differ: {c_old} vs {c_new}"
            );
        }
        let k = a_new.len() as f64;
        let line = serde_json::json!({
            "bench": "assignment",
            "data": data,
            "n": batch,
            "before_median_ms": median(a_old),
            "after_median_ms": median(a_new),
            "after_mean_bids": bids as f64 / k,
            "after_mean_free_after_auction": aug as f64 / k,
            "after_mean_path_scans": scans as f64 / k,
        });
        println!("{line}");
    }
}

const NONE: usize = usize::MAX;

/// The previous assignment (plain LAPJV), verbatim.
fn old_lapjv(cost: &[f64], n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let c = |i: usize, j: usize| cost[i * n + j];
    let mut v = vec![0.0f64; n];
    let mut rowsol = vec![NONE; n];
    let mut colsol = vec![NONE; n];
    let mut matches = vec![0usize; n];

    // 1. Column reduction (last column first, as in the original).
    for j in (0..n).rev() {
        let (mut min, mut imin) = (c(0, j), 0);
        for i in 1..n {
            if c(i, j) < min {
                min = c(i, j);
                imin = i;
            }
        }
        v[j] = min;
        matches[imin] += 1;
        if matches[imin] == 1 {
            rowsol[imin] = j;
            colsol[j] = imin;
        } else if v[j] < v[rowsol[imin]] {
            let j1 = rowsol[imin];
            rowsol[imin] = j;
            colsol[j] = imin;
            colsol[j1] = NONE;
        } else {
            colsol[j] = NONE;
        }
    }

    // 2. Reduction transfer.
    let mut free: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        match matches[i] {
            0 => free.push(i),
            1 => {
                let j1 = rowsol[i];
                let row = &cost[i * n..][..n];
                let min = row
                    .iter()
                    .zip(&v)
                    .enumerate()
                    .filter(|&(j, _)| j != j1)
                    .fold(f64::INFINITY, |m, (_, (c, vj))| m.min(c - vj));
                if min.is_finite() {
                    v[j1] -= min;
                }
            }
            _ => {}
        }
    }

    // 3. Augmenting row reduction, two passes.
    for _ in 0..2 {
        let todo = std::mem::take(&mut free);
        let mut stack: Vec<usize> = Vec::new();
        let mut moves = 0usize;
        let mut k = 0;
        while k < todo.len() || !stack.is_empty() {
            let i = match stack.pop() {
                Some(i) => i,
                None => {
                    k += 1;
                    todo[k - 1]
                }
            };
            moves += 1;
            if moves > 2 * n {
                // Leave the rest to the augmentation phase.
                free.push(i);
                free.append(&mut stack);
                free.extend_from_slice(&todo[k..]);
                break;
            }
            // Cheapest and second-cheapest columns of row i.
            let row = &cost[i * n..][..n];
            let (mut umin, mut j1) = (row[0] - v[0], 0);
            let (mut usubmin, mut j2) = (f64::INFINITY, NONE);
            for (j, (c, vj)) in row.iter().zip(&v).enumerate().skip(1) {
                let h = c - vj;
                if h < usubmin {
                    if h >= umin {
                        usubmin = h;
                        j2 = j;
                    } else {
                        usubmin = umin;
                        j2 = j1;
                        umin = h;
                        j1 = j;
                    }
                }
            }
            let mut i0 = colsol[j1];
            let strict = umin < usubmin;
            if strict {
                // Lower j1's price so row i is indifferent between j1 and j2 (n = 1: j2 is
                // NONE and usubmin infinite; strict holds and nothing else competes).
                if usubmin.is_finite() {
                    v[j1] -= usubmin - umin;
                }
            } else if i0 != NONE {
                // Tie: take the second column instead if the first is held.
                j1 = j2;
                i0 = colsol[j2];
            }
            rowsol[i] = j1;
            colsol[j1] = i;
            if i0 != NONE {
                rowsol[i0] = NONE;
                if strict {
                    stack.push(i0);
                } else {
                    free.push(i0);
                }
            }
        }
    }
    free.clear();
    free.extend((0..n).filter(|&i| rowsol[i] == NONE));

    // 4. Augmentation by shortest alternating paths.
    let mut d = vec![0.0f64; n];
    let mut pred = vec![0usize; n];
    let mut collist: Vec<usize> = (0..n).collect();
    for &freerow in &free {
        let row = &cost[freerow * n..][..n];
        for j in 0..n {
            d[j] = row[j] - v[j];
            pred[j] = freerow;
            collist[j] = j;
        }
        // collist[..low]: scanned; [low..up]: at the current minimum, to scan; [up..]: rest.
        let (mut low, mut up) = (0usize, 0usize);
        let mut last = 0usize;
        let mut min = 0.0f64;
        let endofpath = 'search: loop {
            if up == low {
                last = low;
                min = d[collist[up]];
                up += 1;
                // (`up` moves inside the scan; `k` runs on to the end regardless.)
                let mut k = up;
                while k < n {
                    let j = collist[k];
                    let h = d[j];
                    if h <= min {
                        if h < min {
                            up = low;
                            min = h;
                        }
                        collist[k] = collist[up];
                        collist[up] = j;
                        up += 1;
                    }
                    k += 1;
                }
                for &j in &collist[low..up] {
                    if colsol[j] == NONE {
                        break 'search j;
                    }
                }
            }
            let j1 = collist[low];
            low += 1;
            let i = colsol[j1];
            let irow = &cost[i * n..][..n];
            let h = irow[j1] - v[j1] - min;
            let mut k = up;
            while k < n {
                let j = collist[k];
                let v2 = irow[j] - v[j] - h;
                if v2 < d[j] {
                    pred[j] = i;
                    if v2 == min {
                        if colsol[j] == NONE {
                            break 'search j;
                        }
                        collist[k] = collist[up];
                        collist[up] = j;
                        up += 1;
                    }
                    d[j] = v2;
                }
                k += 1;
            }
        };
        // Raise the prices of the scanned columns (those before `last`).
        for &j in &collist[..last] {
            v[j] += d[j] - min;
        }
        // Flip the path.
        let mut j = endofpath;
        loop {
            let i = pred[j];
            colsol[j] = i;
            let next = rowsol[i];
            rowsol[i] = j;
            if i == freerow {
                break;
            }
            j = next;
        }
    }
    rowsol
}
