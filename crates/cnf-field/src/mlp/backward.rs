//! The reverse pass: one sweep back through the per-layer primal + tangent computation,
//! giving `d/dz` and `d/dtheta` of `a_v.v + a_div.div` (plus the penalty terms
//! `a_kinetic |v|^2 + a_frobenius norm sum_p |J u_p|^2`, which only change the seeds: `2 a_kinetic v`
//! and `2 a_frobenius norm J u_p`) without a general autodiff tape.
//!
//! Per layer `a = h W^T + b`, `A = U W^T`, with cotangents `ga (B, out)` and `gA (B*nt, out)`:
//! `gW += ga^T h + gA^T U`, `gb += sum_b ga`, `gh = ga W`, `gU = gA W`. Through the
//! activation `h = s(a)`, `U = s'(a) * A`:
//! `ga_prev = s'(a) gh + s''(a) sum_p gU_p * A_p` and `gA_prev = s'(a) gU`.

use super::{Mlp, MlpScratch};
use crate::field::{seed_penalty_cotangents, seed_tangent_cotangents, Time, VjpInput};
use crate::kernel::{fused_gemm, AlignedBuf, Epilogue, GemmJob};
use crate::real::Real;

/// The gradients a reverse pass accumulates into: `g_z (B, d)`, `g_theta (num_params)` and
/// `g_context (B, k)` (empty = not wanted).
pub(super) struct Grads<'a, T> {
    pub g_z: &'a mut [T],
    pub g_theta: &'a mut [T],
    pub g_context: &'a mut [T],
}

impl<T: Real> Mlp<T> {
    /// Reverse pass after `forward(.., second = true, ..)`; accumulates into `grads`. `v` is
    /// the output of that forward pass (for the kinetic penalty's cotangent).
    pub(super) fn backward(
        &self,
        s: &mut MlpScratch<T>,
        batch: usize,
        input: &VjpInput<'_, T>,
        v: &[T],
        grads: Grads<'_, T>,
    ) {
        let Grads {
            g_z,
            g_theta,
            g_context,
        } = grads;
        let (trace, a_v, a_div) = (&input.trace, input.a_v, input.a_div);
        // At per-row times concat-squash layers gated per row (`forward_row_gated`); plain
        // concat layers need nothing: the time column of h0 holds every row's time.
        let row_times = match input.x.t {
            Time::PerRow(ts) if s.row_gates => Some(ts),
            _ => None,
        };
        let d = self.config.dim;
        let nt = s.nt;
        debug_assert_eq!(a_v.len(), batch * d);
        debug_assert_eq!(a_div.len(), batch);
        debug_assert_eq!(g_z.len(), batch * d);
        debug_assert_eq!(g_theta.len(), self.params.len());

        let MlpScratch {
            h,
            u,
            tan,
            ds,
            d2s,
            g_primal,
            g_tangent,
            w_eff,
            b_eff,
            gate,
            g_w_eff,
            g_b_eff,
            packed,
            row_gate,
            lin,
            tan_lin,
            ..
        } = s;
        g_primal[0][..batch * d].copy_from_slice(a_v);
        let norm = trace.norm(batch, d);
        seed_tangent_cotangents(batch, nt, d, norm, a_div, &u[0], &mut g_tangent[0]);
        if input.has_penalties() {
            let jt = &tan[self.slots.len() - 1][..batch * nt * d];
            let (g_v, g_jt) = (
                &mut g_primal[0][..batch * d],
                &mut g_tangent[0][..batch * nt * d],
            );
            seed_penalty_cotangents(batch, nt, d, norm, input, v, jt, g_v, g_jt);
        }

        let simd = s.fused;
        let mut cur = 0;
        for (l, slot) in self.slots.iter().enumerate().rev() {
            let (out, inp) = (slot.out, slot.inp);
            let in_tan = if l == 0 { d } else { inp };
            let (w, _) = self.weights_at(w_eff, b_eff, l, row_times.is_some());
            if let (Some(ts), Some(g)) = (row_times, slot.gate) {
                // Cotangents of a = G * lin + t Wb, A = G * tan_lin: the gate parameters'
                // gradients, then ga, gA scaled by G in place (the cotangents of lin and
                // tan_lin), which the products below take as a plain layer's.
                let rows = RowGated {
                    ts,
                    gate: &row_gate[l][..batch * out],
                    lin: &lin[l][..batch * out],
                    tan_lin: &tan_lin[l][..batch * nt * out],
                };
                let ga = &mut g_primal[cur][..batch * out];
                let g_a_tan = &mut g_tangent[cur][..batch * nt * out];
                self.chain_row_gates(l, g, nt, rows, ga, g_a_tan, g_b_eff, g_theta);
            }
            let (gp_cur, gp_next) = pick(g_primal, cur);
            let (gt_cur, gt_next) = pick(g_tangent, cur);
            let ga = &gp_cur[..batch * out];
            let g_a_tan = &gt_cur[..batch * nt * out];

            // Parameter gradients (of the effective weights first for concat-squash layers).
            let (g_w, g_b) = if slot.gate.is_some() && row_times.is_none() {
                g_w_eff[..out * inp].fill(T::zero());
                g_b_eff[..out].fill(T::zero());
                (&mut g_w_eff[..out * inp], &mut g_b_eff[..out])
            } else {
                g_theta[slot.w..slot.b + out].split_at_mut(out * inp)
            };
            let accumulate = |k: usize, n: usize, a: &[T], b: &[T], c: &mut [T]| {
                let job = GemmJob {
                    m: out,
                    k,
                    n,
                    a: (a, 1, out),
                    b: (b, n, 1),
                    c,
                    epilogue: Epilogue::Accumulate,
                };
                fused_gemm(job, simd);
            };
            accumulate(batch, inp, ga, &h[l][..batch * inp], &mut *g_w);
            if nt > 0 {
                let u_in = &u[l][..batch * nt * in_tan];
                if in_tan == inp {
                    accumulate(batch * nt, inp, g_a_tan, u_in, g_w);
                } else {
                    // Layer 0: only the z columns of W0 (a strided block of g_w).
                    T::gemm(
                        out,
                        batch * nt,
                        in_tan,
                        T::one(),
                        (g_a_tan, 1, out),
                        (u_in, in_tan, 1),
                        T::one(),
                        (g_w, inp, 1),
                    );
                }
            }
            for row in ga.chunks_exact(out) {
                for (g, &x) in g_b.iter_mut().zip(row) {
                    *g = *g + x;
                }
            }
            if let (Some(g), Time::Shared(t)) = (slot.gate, input.x.t) {
                self.chain_gates(l, g, t, &gate[l], g_w_eff, g_b_eff, g_theta);
            }

            // (g * W) for cotangent rows g: W row-major is B as the broadcast kernel reads it.
            let times_w = |m: usize, g: &[T], n: usize, c: &mut [T], epilogue| {
                let job = GemmJob {
                    m,
                    k: out,
                    n,
                    a: (g, out, 1),
                    b: (w, inp, 1),
                    c,
                    epilogue,
                };
                fused_gemm(job, simd);
            };
            if l == 0 {
                // The z columns of W0 (time and context columns have no state cotangent): a narrow
                // product, so B = W0[:, :d] column-major, as rows of the packed W0^T.
                packed[0].refresh(w, out, inp);
                let (wt, ld, _) = packed[0].view();
                let job = GemmJob {
                    m: batch,
                    k: out,
                    n: d,
                    a: (ga, out, 1),
                    b: (wt, 1, ld),
                    c: &mut *g_z,
                    epilogue: Epilogue::Accumulate,
                };
                fused_gemm(job, simd);
                let k = self.config.context_dim;
                if !g_context.is_empty() && k > 0 {
                    // d/dc = ga W0[:, c0..c0 + k], the context columns of the first layer.
                    let c0 = self.config.context_start();
                    debug_assert_eq!(g_context.len(), batch * k);
                    T::gemm(
                        batch,
                        out,
                        k,
                        T::one(),
                        (ga, out, 1),
                        (&w[c0..], inp, 1),
                        T::one(),
                        (g_context, k, 1),
                    );
                }
                break;
            }

            let gh = &mut gp_next[..batch * inp];
            times_w(batch, ga, inp, &mut *gh, Epilogue::Store { bias: None });
            let g_u = &mut gt_next[..batch * nt * inp];
            if nt > 0 {
                times_w(
                    batch * nt,
                    g_a_tan,
                    inp,
                    &mut *g_u,
                    Epilogue::Store { bias: None },
                );
            }

            // Through the activation of hidden layer l - 1 (width inp).
            let (ds, d2s) = (&ds[l - 1][..batch * inp], &d2s[l - 1][..batch * inp]);
            let a_tan = &tan[l - 1][..batch * nt * inp];
            for b in 0..batch {
                let gh_pt = &mut gh[b * inp..][..inp];
                let (ds_pt, d2s_pt) = (&ds[b * inp..][..inp], &d2s[b * inp..][..inp]);
                let g_u_pt = &mut g_u[b * nt * inp..][..nt * inp];
                let a_pt = &a_tan[b * nt * inp..][..nt * inp];
                // sum_p gU_p * A_p over chunks of units, so the loops run along the units
                // (contiguous) and vectorise.
                for (i, gh_c) in gh_pt.chunks_mut(CHUNK).enumerate() {
                    let (o0, w) = (i * CHUNK, gh_c.len());
                    let mut curvature = [T::zero(); CHUNK];
                    for p in 0..nt {
                        let g = &g_u_pt[p * inp + o0..][..w];
                        let a = &a_pt[p * inp + o0..][..w];
                        for ((c, &g), &a) in curvature.iter_mut().zip(g).zip(a) {
                            *c = *c + g * a;
                        }
                    }
                    let derivs = ds_pt[o0..].iter().zip(&d2s_pt[o0..]).zip(&curvature);
                    for (g, ((&d1, &d2), &c)) in gh_c.iter_mut().zip(derivs) {
                        *g = d1 * *g + d2 * c;
                    }
                }
                for row in g_u_pt.chunks_exact_mut(inp) {
                    for (g, &sd) in row.iter_mut().zip(ds_pt) {
                        *g = *g * sd;
                    }
                }
            }
            cur = 1 - cur;
        }
    }
}

impl<T: Real> Mlp<T> {
    /// Chain rule from the effective weights `W_eff = diag(g) W`, `b_eff = g * b + Wb t`,
    /// `g = sigmoid(Wg t + bg)` of concat-squash layer `l` to its stored parameters.
    #[allow(clippy::too_many_arguments)]
    fn chain_gates(
        &self,
        l: usize,
        gate_offset: usize,
        t: T,
        gate: &[T],
        g_w_eff: &[T],
        g_b_eff: &[T],
        g_theta: &mut [T],
    ) {
        let slot = self.slots[l];
        let (out, inp) = (slot.out, slot.inp);
        let (w, b) = self.layer(l);
        for o in 0..out {
            let g = gate[o];
            let (w_row, gw_row) = (&w[o * inp..][..inp], &g_w_eff[o * inp..][..inp]);
            let mut g_gate = g_b_eff[o] * b[o];
            for (i, (&wv, &gw)) in w_row.iter().zip(gw_row).enumerate() {
                let k = slot.w + o * inp + i;
                g_theta[k] = g_theta[k] + g * gw;
                g_gate = g_gate + gw * wv;
            }
            g_theta[slot.b + o] = g_theta[slot.b + o] + g * g_b_eff[o];
            let g_pre = g_gate * g * (T::one() - g);
            let (wg, bg, wb) = (
                gate_offset + o,
                gate_offset + out + o,
                gate_offset + 2 * out + o,
            );
            g_theta[wg] = g_theta[wg] + g_pre * t;
            g_theta[bg] = g_theta[bg] + g_pre;
            g_theta[wb] = g_theta[wb] + g_b_eff[o] * t;
        }
    }
}

/// What the reverse pass of a concat-squash layer at per-row times reads from the forward pass.
struct RowGated<'a, T> {
    /// Times `(B)`.
    ts: &'a [T],
    /// Gates `G (B, out)`.
    gate: &'a [T],
    /// `h W^T + b`, `(B, out)`.
    lin: &'a [T],
    /// `U W^T`, `(B * nt, out)`.
    tan_lin: &'a [T],
}

impl<T: Real> Mlp<T> {
    /// Chain rule through the per-row gates of concat-squash layer `l`
    /// (`a = G * lin + t Wb^T`, `A = G * tan_lin`, `G = sigmoid(t Wg^T + bg)`): accumulates the
    /// gradients of `Wg`, `bg`, `Wb` into `g_theta` and scales the cotangents `ga (B, out)` and
    /// `g_a_tan (B * nt, out)` by `G` in place. `acc` (at least `out` values) is work memory.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn chain_row_gates(
        &self,
        l: usize,
        gate_offset: usize,
        nt: usize,
        rows: RowGated<'_, T>,
        ga: &mut [T],
        g_a_tan: &mut [T],
        acc: &mut [T],
        g_theta: &mut [T],
    ) {
        let out = self.slots[l].out;
        let acc = &mut acc[..out];
        let (wg, rest) = g_theta[gate_offset..gate_offset + 3 * out].split_at_mut(out);
        let (bg, wb) = rest.split_at_mut(out);
        let row = nt * out;
        let per_point = ga
            .chunks_exact_mut(out)
            .zip(rows.gate.chunks_exact(out))
            .zip(rows.lin.chunks_exact(out))
            .zip(rows.ts)
            .enumerate();
        for (b, (((ga, gate), lin), &t)) in per_point {
            // d/dG = ga * lin + sum_p gA_p * tan_lin_p.
            for ((a, &g), &x) in acc.iter_mut().zip(&*ga).zip(lin) {
                *a = g * x;
            }
            if nt > 0 {
                let g_tan = &mut g_a_tan[b * row..][..row];
                let tan_lin = &rows.tan_lin[b * row..][..row];
                for (g_row, x_row) in g_tan.chunks_exact(out).zip(tan_lin.chunks_exact(out)) {
                    for ((a, &g), &x) in acc.iter_mut().zip(g_row).zip(x_row) {
                        *a = *a + g * x;
                    }
                }
                for g_row in g_tan.chunks_exact_mut(out) {
                    for (g, &gt) in g_row.iter_mut().zip(gate) {
                        *g = *g * gt;
                    }
                }
            }
            for o in 0..out {
                let g = gate[o];
                let g_pre = acc[o] * g * (T::one() - g);
                wg[o] = wg[o] + g_pre * t;
                bg[o] = bg[o] + g_pre;
                wb[o] = wb[o] + ga[o] * t;
                ga[o] = ga[o] * g;
            }
        }
    }
}

/// Units per chunk of the activation's reverse step.
const CHUNK: usize = 16;

/// `(buffers[cur], buffers[1 - cur])` as (shared, mutable).
fn pick<T>(buffers: &mut [AlignedBuf<T>; 2], cur: usize) -> (&[T], &mut [T]) {
    let [a, b] = buffers;
    if cur == 0 {
        (a, b)
    } else {
        (b, a)
    }
}
