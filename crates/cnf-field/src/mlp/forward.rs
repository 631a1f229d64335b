//! Batched forward pass: primal activations and tangent matrices carried layer by layer.
//!
//! Layouts (all row-major): primal `h_l` is `(B, in_l)`; tangents `U_l` are `(B * nt, in_l)`
//! with row `b * nt + p` holding tangent `p` of point `b`, so one GEMM `U_l W_l^T` pushes
//! every tangent of every point through a layer at once.

use super::{LayerSlot, Mlp};
use crate::dual::grow;
use crate::field::{
    contract_tangents, frobenius_from_tangents, kinetic_from_v, Inputs, Time, Trace,
};
use crate::kernel::{
    fused_gemm, narrow, same_bits, AlignedBuf, Derivatives, Epilogue, GemmJob, PackedT,
};
use crate::real::Real;

/// Work buffers of the MLP fast path (grown on demand, never shrunk).
#[derive(Clone, Debug, Default)]
pub struct MlpScratch<T> {
    /// `h[l]`: input of layer `l`, `(B, in_l)`; `h[0] = [z, t, c]`.
    pub(super) h: Vec<AlignedBuf<T>>,
    /// `u[l]`: tangent input of layer `l`, `(B * nt, in_l)` (`(B * nt, d)` for `l = 0`).
    pub(super) u: Vec<AlignedBuf<T>>,
    /// `tan[l] = U_l W_l^T`: tangent pre-activations `(B * nt, out_l)`; the last is `J U_0`.
    pub(super) tan: Vec<AlignedBuf<T>>,
    /// `s'(a_l)` and `s''(a_l)` of every hidden layer, `(B, out_l)`.
    pub(super) ds: Vec<AlignedBuf<T>>,
    pub(super) d2s: Vec<AlignedBuf<T>>,
    /// Ping-pong cotangent buffers of the reverse pass: primal `(B, w)`, tangent `(B * nt, w)`.
    pub(super) g_primal: [AlignedBuf<T>; 2],
    pub(super) g_tangent: [AlignedBuf<T>; 2],
    /// Concat-squash layers fold their time gates into effective weights once per call:
    /// `W_eff = diag(g) W`, `b_eff = g * b + Wb t` with `g = sigmoid(Wg t + bg)`.
    pub(super) w_eff: Vec<Vec<T>>,
    pub(super) b_eff: Vec<Vec<T>>,
    pub(super) gate: Vec<Vec<T>>,
    /// Gradients w.r.t. one layer's effective weights, before the chain rule to `W, b, gates`.
    pub(super) g_w_eff: Vec<T>,
    pub(super) g_b_eff: Vec<T>,
    /// Concat-squash layers at per-row times (where no effective weights exist): the gates
    /// `G = sigmoid(t Wg^T + bg)` of every row `(B, out_l)`, the gate's input `h W^T + b`
    /// `(B, out_l)` and the tangents' `U W^T` `(B * nt, out_l)` before the gate.
    pub(super) row_gate: Vec<AlignedBuf<T>>,
    pub(super) lin: Vec<AlignedBuf<T>>,
    pub(super) tan_lin: Vec<AlignedBuf<T>>,
    /// Whether the last forward pass gated concat-squash layers per row.
    pub(super) row_gates: bool,
    /// `W^T` of every layer for the fused kernel, repacked only when the weights change.
    pub(super) packed: Vec<PackedT<T>>,
    /// Layer 0's bias with a shared time and context folded in (see `forward`).
    pub(super) bias0: Vec<T>,
    /// Tangents per point of the last forward pass.
    pub(super) nt: usize,
    /// Runs every product on the `gemm` crate with separate elementwise passes (the tests'
    /// oracle for the fused SIMD kernel).
    pub(super) oracle: bool,
    /// Whether the last forward pass (and so its reverse pass) ran on the fused kernel.
    pub(super) fused: bool,
}

/// Points from which a pass runs on the fused kernel: below, checking that the packed weights
/// are current costs about what the kernel saves (a single point stays on the `gemm` crate, as
/// fast as before). A function of the batch alone, so `v` is the same with and without traces.
const FUSED_MIN_POINTS: usize = 8;

impl<T: Real> MlpScratch<T> {
    pub(super) fn ensure(&mut self, slots: &[LayerSlot], batch: usize, nt: usize, backward: bool) {
        let layers = slots.len();
        let zero = T::zero();
        self.h.resize_with(layers, AlignedBuf::default);
        self.u.resize_with(layers, AlignedBuf::default);
        self.tan.resize_with(layers, AlignedBuf::default);
        self.ds.resize_with(layers - 1, AlignedBuf::default);
        self.w_eff.resize_with(layers, Vec::new);
        self.b_eff.resize_with(layers, Vec::new);
        self.gate.resize_with(layers, Vec::new);
        self.packed.resize_with(layers, PackedT::default);
        self.d2s.resize_with(layers - 1, AlignedBuf::default);
        let dim = slots[layers - 1].out;
        for (l, s) in slots.iter().enumerate() {
            self.h[l].grow(batch * s.inp);
            let in_tan = if l == 0 { dim } else { s.inp };
            self.u[l].grow(batch * nt * in_tan);
            self.tan[l].grow(batch * nt * s.out);
            if s.gate.is_some() {
                grow(&mut self.w_eff[l], s.out * s.inp, zero);
                grow(&mut self.b_eff[l], s.out, zero);
                grow(&mut self.gate[l], s.out, zero);
                if backward {
                    grow(&mut self.g_w_eff, s.out * s.inp, zero);
                    grow(&mut self.g_b_eff, s.out, zero);
                }
            }
            if l + 1 < layers {
                self.ds[l].grow(batch * s.out);
                if backward {
                    self.d2s[l].grow(batch * s.out);
                }
            }
        }
        if backward {
            let widest = slots.iter().map(|s| s.inp.max(s.out)).max().unwrap_or(0);
            for g in &mut self.g_primal {
                g.grow(batch * widest);
            }
            for g in &mut self.g_tangent {
                g.grow(batch * nt * widest);
            }
        }
    }

    /// The per-row gate buffers of concat-squash layers (see `row_gate`).
    fn ensure_row_gates(&mut self, slots: &[LayerSlot], batch: usize, nt: usize) {
        let layers = slots.len();
        self.row_gate.resize_with(layers, AlignedBuf::default);
        self.lin.resize_with(layers, AlignedBuf::default);
        self.tan_lin.resize_with(layers, AlignedBuf::default);
        for (l, s) in slots.iter().enumerate() {
            if s.gate.is_some() {
                self.row_gate[l].grow(batch * s.out);
                self.lin[l].grow(batch * s.out);
                self.tan_lin[l].grow(batch * nt * s.out);
            }
        }
    }
}

impl<T: Real> Mlp<T> {
    /// Weights of layer `l` as used at this time: the stored ones, or the effective
    /// (time-gated) ones of a concat-squash layer computed by `forward` at a shared time
    /// (`row_gates` false; at per-row times the gates act after the stored weights).
    pub(super) fn weights_at<'a>(
        &'a self,
        w_eff: &'a [Vec<T>],
        b_eff: &'a [Vec<T>],
        l: usize,
        row_gates: bool,
    ) -> (&'a [T], &'a [T]) {
        let slot = self.slots[l];
        if slot.gate.is_some() && !row_gates {
            (&w_eff[l][..slot.out * slot.inp], &b_eff[l][..slot.out])
        } else {
            self.layer(l)
        }
    }

    /// Fills the effective weights of every concat-squash layer for time `t`.
    fn fold_gates(&self, s: &mut MlpScratch<T>, t: T) {
        for (l, slot) in self.slots.iter().enumerate() {
            let Some(g) = slot.gate else { continue };
            let (out, inp) = (slot.out, slot.inp);
            let (w, b) = self.layer(l);
            let (wg, rest) = self.params[g..g + 3 * out].split_at(out);
            let (bg, wb) = rest.split_at(out);
            for o in 0..out {
                let r = wg[o] * t + bg[o];
                let gate = T::one() / (T::one() + (-r).exp());
                s.gate[l][o] = gate;
                s.b_eff[l][o] = gate * b[o] + wb[o] * t;
                for (we, &wv) in s.w_eff[l][o * inp..][..inp]
                    .iter_mut()
                    .zip(&w[o * inp..][..inp])
                {
                    *we = gate * wv;
                }
            }
        }
    }

    /// `bias0 = b0 + W0[:, d..] [t, c]`: layer 0's bias (effective at time `t` for
    /// concat-squash) with the time column (concat) and the context `c` shared by every row.
    fn fold_first_bias(&self, s: &mut MlpScratch<T>, t: T, c: &[T]) {
        let (d, slot) = (self.config.dim, self.slots[0]);
        let (w, bias) = self.weights_at(&s.w_eff, &s.b_eff, 0, false);
        let timed = self.config.context_start() > d;
        s.bias0.clear();
        for (row, &b) in w.chunks_exact(slot.inp).zip(bias).take(slot.out) {
            let mut acc = if timed { b + row[d] * t } else { b };
            for (&wj, &cj) in row[slot.inp - c.len()..].iter().zip(c) {
                acc = acc + wj * cj;
            }
            s.bias0.push(acc);
        }
    }

    /// Primal pass writing `v`, plus (if `trace` is given) the tangent pass for the trace's
    /// directions; `second` also records `s''` for the reverse pass.
    pub(super) fn forward(
        &self,
        s: &mut MlpScratch<T>,
        x: &Inputs<'_, T>,
        trace: Option<&Trace<T>>,
        second: bool,
        v: &mut [T],
    ) {
        let d = self.config.dim;
        let z = x.z;
        let batch = z.len() / d;
        debug_assert_eq!(z.len(), batch * d);
        debug_assert_eq!(v.len(), batch * d);
        let k = self.config.context_dim;
        debug_assert_eq!(x.context.len(), batch * k, "context (B, k)");
        let nt = trace.map_or(0, |tr| tr.tangents_per_point(batch, d));
        s.ensure(&self.slots, batch, nt, second);
        s.nt = nt;

        // h0 = [z, t, c] for concat, [z, c] for concat-squash (time enters through the gates).
        let width0 = self.slots[0].inp;
        let timed = self.config.context_start() > d;
        s.fused = !s.oracle && batch >= FUSED_MIN_POINTS;
        let simd = s.fused;
        // On the fused kernel, a time shared by the batch and a context shared by every row
        // (draws for one observation) add the same vector to every row of layer 0's product:
        // folded into its bias once, the product runs over z alone (d columns, not d + 1 + k).
        // Decided by the inputs alone, so v is the same with and without the reverse pass,
        // which still gets the whole h0.
        let fold = simd && k > 0 && matches!(x.t, Time::Shared(_)) && rows_equal(x.context, k);
        let fill_h0 = !fold || second;
        let row_times = match x.t {
            Time::Shared(t) => {
                s.row_gates = false;
                self.fold_gates(s, t);
                if fold {
                    self.fold_first_bias(s, t, &x.context[..k]);
                }
                if fill_h0 {
                    for (row, zb) in s.h[0].chunks_exact_mut(width0).zip(z.chunks_exact(d)) {
                        row[..d].copy_from_slice(zb);
                        if timed {
                            row[d] = t;
                        }
                    }
                }
                None
            }
            Time::PerRow(ts) => {
                debug_assert_eq!(ts.len(), batch);
                let rows = s.h[0].chunks_exact_mut(width0).zip(z.chunks_exact(d));
                for ((row, zb), &t) in rows.zip(ts) {
                    row[..d].copy_from_slice(zb);
                    if timed {
                        row[d] = t;
                    }
                }
                s.row_gates = self.config.layer_kind == super::LayerKind::ConcatSquash;
                if s.row_gates {
                    s.ensure_row_gates(&self.slots, batch, nt);
                }
                s.row_gates.then_some(ts)
            }
        };
        if k > 0 && fill_h0 {
            let rows = s.h[0]
                .chunks_exact_mut(width0)
                .zip(x.context.chunks_exact(k));
            for (row, cb) in rows {
                row[width0 - k..].copy_from_slice(cb);
            }
        }
        if let Some(tr) = trace {
            tr.fill_tangents(batch, d, &mut s.u[0]);
        }

        let last = self.slots.len() - 1;
        let act = self.config.activation;
        for (l, slot) in self.slots.iter().enumerate() {
            if let Some(ts) = row_times {
                self.forward_row_gated(s, l, ts, second, v);
                continue;
            }
            let (out, inp) = (slot.out, slot.inp);
            let (w, bias) = self.weights_at(&s.w_eff, &s.b_eff, l, false);
            let bias = if l == 0 && fold { &s.bias0[..] } else { bias };
            // W^T as B: packed row-major, or W itself (B column-major) for the gemm crate and
            // for a narrow output layer (the kernel's dot-product layout).
            let wt = if !simd || (l == last && narrow::<T>(out)) {
                (w, 1, inp)
            } else {
                s.packed[l].refresh(w, out, inp);
                s.packed[l].view()
            };
            let (h_done, h_next) = s.h.split_at_mut(l + 1);
            // Layer 0 with the time and context folded in multiplies z by W0[:, :d], the first
            // d rows of W0^T.
            let (h_in, k_in) = match l == 0 && fold {
                true => (z, d),
                false => (&h_done[l][..batch * inp], inp),
            };
            let primal: &mut [T] = if l == last {
                v
            } else {
                &mut h_next[0][..batch * out]
            };

            // a = h W^T + b, and for hidden layers h' = s(a) with s'(a) (and s''(a)) in the
            // same pass over the output.
            let epilogue = if l == last {
                Epilogue::Store { bias: Some(bias) }
            } else {
                let derivatives = (nt > 0 || second).then(|| Derivatives {
                    ds: &mut s.ds[l][..batch * out],
                    d2s: second.then(|| &mut s.d2s[l][..batch * out]),
                });
                Epilogue::Activate {
                    act,
                    bias,
                    derivatives,
                }
            };
            let job = GemmJob {
                m: batch,
                k: k_in,
                n: out,
                a: (h_in, k_in, 1),
                b: wt,
                c: primal,
                epilogue,
            };
            fused_gemm(job, simd);
            if nt == 0 {
                continue;
            }

            // A = U W^T (the time and context columns of W0 have no tangent, so layer 0 uses
            // W0[:, :d]), and
            // for hidden layers U' = s'(a) * A (s'(a) broadcast over the nt tangent rows of a
            // point); A itself is kept for the reverse pass and, at the output, the trace.
            let in_tan = if l == 0 { d } else { inp };
            let (u_done, u_next) = s.u.split_at_mut(l + 1);
            let u_in = &u_done[l][..batch * nt * in_tan];
            let tan = &mut s.tan[l][..batch * nt * out];
            let (c, epilogue) = if l == last {
                (tan, Epilogue::Store { bias: None })
            } else {
                let scale = Epilogue::Scale {
                    scale: &s.ds[l][..batch * out],
                    group: nt,
                    raw: second.then_some(tan),
                };
                (&mut u_next[0][..batch * nt * out], scale)
            };
            let job = GemmJob {
                m: batch * nt,
                k: in_tan,
                n: out,
                a: (u_in, in_tan, 1),
                b: wt,
                c,
                epilogue,
            };
            fused_gemm(job, simd);
        }
    }

    /// Concat-squash layer `l` at per-row times `ts` (after layer `l - 1`):
    /// `a = G * (h W^T + b) + t Wb^T` with `G = sigmoid(t Wg^T + bg)` per row, tangents
    /// `A = G * (U W^T)`; then, for hidden layers, `h' = s(a)`, `U' = s'(a) * A` as in the
    /// shared-time pass. The products run on the stored weights (the kernel when the pass is
    /// fused), the gates as separate passes.
    #[inline(never)]
    fn forward_row_gated(
        &self,
        s: &mut MlpScratch<T>,
        l: usize,
        ts: &[T],
        second: bool,
        v: &mut [T],
    ) {
        let slot = self.slots[l];
        let (out, inp) = (slot.out, slot.inp);
        let batch = ts.len();
        let nt = s.nt;
        let last = l + 1 == self.slots.len();
        let simd = s.fused;
        let (w, bias) = self.layer(l);
        let Some((wg, bg, wb)) = self.gate(l) else {
            unreachable!("per-row gates on a concat-squash network only")
        };
        let wt = if !simd || (last && narrow::<T>(out)) {
            (w, 1, inp)
        } else {
            s.packed[l].refresh(w, out, inp);
            s.packed[l].view()
        };

        let gate = &mut s.row_gate[l][..batch * out];
        for (g_row, &t) in gate.chunks_exact_mut(out).zip(ts) {
            for ((g, &wg), &bg) in g_row.iter_mut().zip(wg).zip(bg) {
                let r = wg * t + bg;
                *g = T::one() / (T::one() + (-r).exp());
            }
        }
        let gate = &s.row_gate[l][..batch * out];
        let lin = &mut s.lin[l][..batch * out];
        let job = GemmJob {
            m: batch,
            k: inp,
            n: out,
            a: (&s.h[l][..batch * inp], inp, 1),
            b: wt,
            c: &mut *lin,
            epilogue: Epilogue::Store { bias: Some(bias) },
        };
        fused_gemm(job, simd);
        let (_, h_next) = s.h.split_at_mut(l + 1);
        let primal: &mut [T] = if last {
            v
        } else {
            &mut h_next[0][..batch * out]
        };
        for (((a, lin), g), &t) in primal
            .chunks_exact_mut(out)
            .zip(lin.chunks_exact(out))
            .zip(gate.chunks_exact(out))
            .zip(ts)
        {
            for (((a, &lin), &g), &wb) in a.iter_mut().zip(lin).zip(g).zip(wb) {
                *a = g * lin + wb * t;
            }
        }
        let act = self.config.activation;
        if !last {
            if nt > 0 || second {
                let d2s = second.then(|| &mut s.d2s[l][..batch * out]);
                act.apply(primal, &mut s.ds[l][..batch * out], d2s);
            } else {
                act.apply_value(primal);
            }
        }
        if nt == 0 {
            return;
        }

        // Layer 0's tangents are over z only (W0[:, :d]; the context columns have none).
        let in_tan = if l == 0 { self.config.dim } else { inp };
        let tan_lin = &mut s.tan_lin[l][..batch * nt * out];
        let job = GemmJob {
            m: batch * nt,
            k: in_tan,
            n: out,
            a: (&s.u[l][..batch * nt * in_tan], in_tan, 1),
            b: wt,
            c: &mut *tan_lin,
            epilogue: Epilogue::Store { bias: None },
        };
        fused_gemm(job, simd);
        let tan = &mut s.tan[l][..batch * nt * out];
        for ((a_pt, lin_pt), g) in tan
            .chunks_exact_mut(nt * out)
            .zip(tan_lin.chunks_exact(nt * out))
            .zip(gate.chunks_exact(out))
        {
            for (a, lin) in a_pt.chunks_exact_mut(out).zip(lin_pt.chunks_exact(out)) {
                for ((a, &lin), &g) in a.iter_mut().zip(lin).zip(g) {
                    *a = g * lin;
                }
            }
        }
        if last {
            return;
        }
        let (_, u_next) = s.u.split_at_mut(l + 1);
        let u_next = &mut u_next[0][..batch * nt * out];
        let ds = &s.ds[l][..batch * out];
        for ((u_pt, a_pt), ds) in u_next
            .chunks_exact_mut(nt * out)
            .zip(tan.chunks_exact(nt * out))
            .zip(ds.chunks_exact(out))
        {
            for (u, a) in u_pt.chunks_exact_mut(out).zip(a_pt.chunks_exact(out)) {
                for ((u, &a), &ds) in u.iter_mut().zip(a).zip(ds) {
                    *u = ds * a;
                }
            }
        }
    }

    /// The penalty integrands from the last forward pass: `|v|^2` and `norm * sum_p |J u_p|^2`
    /// (empty outputs are skipped).
    pub(super) fn penalties(
        &self,
        s: &MlpScratch<T>,
        batch: usize,
        trace: &Trace<T>,
        v: &[T],
        kinetic: &mut [T],
        frobenius: &mut [T],
    ) {
        let d = self.config.dim;
        if !kinetic.is_empty() {
            kinetic_from_v(d, v, kinetic);
        }
        if !frobenius.is_empty() {
            let norm = trace.norm(batch, d);
            let jt = &s.tan[self.slots.len() - 1];
            frobenius_from_tangents(batch, s.nt, d, norm, jt, frobenius);
        }
    }

    /// Divergence from the last forward pass's tangents.
    pub(super) fn contract(
        &self,
        s: &MlpScratch<T>,
        batch: usize,
        trace: &Trace<T>,
        div: &mut [T],
    ) {
        let d = self.config.dim;
        let norm = trace.norm(batch, d);
        let jt = &s.tan[self.slots.len() - 1];
        contract_tangents(batch, s.nt, d, norm, &s.u[0], jt, div);
    }
}

/// Whether every row of `c (B, k)` (`k > 0`, at least one row) is the same bits as the first:
/// then each value equals the one a row before it.
fn rows_equal<T: Real>(c: &[T], k: usize) -> bool {
    c.len() >= k && same_bits(&c[k..], &c[..c.len() - k])
}
