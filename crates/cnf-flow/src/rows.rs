//! The field evaluated over blocks of rows in parallel, so one whole-batch solve (shared steps)
//! uses every core. Each block has its own scratch (and its slice of the Hutchinson probes and
//! of the context); parameter gradients are summed over the blocks.
use cnf_field::field::{Integrands, VjpInput, VjpOutput};
use cnf_field::{Inputs, Real, Trace, VectorField};
use cnf_ode::VjpOut;
use rayon::iter::Either;
use rayon::prelude::*;

use crate::error::FlowError;

/// The field's memory check ([`VectorField::check_tangents`]) for `tangents` tangent directions
/// per point, before any scratch is made: a wide input's exact trace is a typed error naming the
/// figure, not an allocation that aborts the process.
pub(crate) fn check_memory<T: Real, F: VectorField<T>>(
    field: &F,
    tangents: usize,
) -> Result<(), FlowError> {
    field
        .check_tangents(tangents)
        .map_err(|e| FlowError::TooLarge(format!("{e}; a Hutchinson trace with few probes fits")))
}

/// Rows below which a block is not worth a thread.
const MIN_ROWS_PER_BLOCK: usize = 128;

struct RowBlock<T, S> {
    scratch: S,
    /// This block's probes, `(k, rows, d)`, for Hutchinson traces.
    probes: Option<Vec<T>>,
    /// This block's parameter gradient (only with several blocks; made by the first `vjp`).
    g_theta: Vec<T>,
}

/// The trace of a block (a function of the probes alone, so the scratch stays borrowable).
fn trace_of<T>(probes: &Option<Vec<T>>) -> Trace<'_, T> {
    match probes {
        None => Trace::Exact,
        Some(p) => Trace::Hutchinson(p),
    }
}

/// The VJP input of a block at `x` (time, points, context).
fn vjp_input<'a, T>(
    probes: &'a Option<Vec<T>>,
    x: Inputs<'a, T>,
    a_v: &'a [T],
    a_div: &'a [T],
) -> VjpInput<'a, T> {
    VjpInput::new(x, trace_of(probes), a_v, a_div)
}

/// A per-row buffer (penalties, context) in blocks of `rows` values, or one empty slice per
/// block when it is empty (no penalties, no context), so the blocks zip with it either way.
fn per_block<T: Sync>(
    buf: &[T],
    rows: usize,
    blocks: usize,
) -> impl IndexedParallelIterator<Item = &[T]> {
    if buf.is_empty() {
        Either::Right((0..blocks).into_par_iter().map(|_| <&[T]>::default()))
    } else {
        Either::Left(buf.par_chunks(rows))
    }
}

/// Mutable version of [`per_block`].
fn per_block_mut<T: Send>(
    buf: &mut [T],
    rows: usize,
    blocks: usize,
) -> impl IndexedParallelIterator<Item = &mut [T]> {
    if buf.is_empty() {
        Either::Right((0..blocks).into_par_iter().map(|_| <&mut [T]>::default()))
    } else {
        Either::Left(buf.par_chunks_mut(rows))
    }
}

/// A field bound to a batch of `rows` points, split into blocks evaluated in parallel.
pub struct RowParallel<'a, T: Real, F: VectorField<T>> {
    field: &'a F,
    dim: usize,
    /// Rows per block (the last block may be shorter).
    block: usize,
    blocks: Vec<RowBlock<T, F::Scratch>>,
    /// Whether the right-hand side carries the penalty integrands `[kinetic, frobenius]`.
    penalties: bool,
    /// The context of every row, `(rows, k)` (empty for unconditional fields).
    context: &'a [T],
    /// Whether `vjp` also gives d/dc: the context then counts as parameters after the
    /// field's (see [`RowParallel::with_context_grad`]).
    context_grad: bool,
}

impl<'a, T: Real, F: VectorField<T>> RowParallel<'a, T, F> {
    /// Blocks for `rows` points with `trace` (Hutchinson probes laid out `(k, rows, d)`).
    pub fn new(field: &'a F, rows: usize, trace: &Trace<T>) -> Self {
        Self::blocks_with(field, rows, trace, F::scratch)
    }

    /// Blocks for `rows` points that are only moved ([`RowParallel::eval`], as sampling
    /// does): each block's scratch is the field's [`VectorField::eval_scratch`], without the
    /// room of the exact trace and the reverse pass that [`RowParallel::new`] makes.
    pub fn transport(field: &'a F, rows: usize) -> Self {
        Self::blocks_with(field, rows, &Trace::Exact, F::eval_scratch)
    }

    fn blocks_with(
        field: &'a F,
        rows: usize,
        trace: &Trace<T>,
        scratch: fn(&F, usize) -> F::Scratch,
    ) -> Self {
        let threads = rayon::current_num_threads().max(1);
        let n_blocks = (rows / MIN_ROWS_PER_BLOCK).clamp(1, threads);
        let block = rows.div_ceil(n_blocks).max(1);
        let dim = field.dim();
        let blocks = (0..n_blocks)
            .map(|i| {
                let r0 = (i * block).min(rows);
                let r1 = ((i + 1) * block).min(rows);
                let probes = match trace {
                    Trace::Exact => None,
                    Trace::Hutchinson(p) => {
                        let k = trace.tangents_per_point(rows, dim);
                        let mut mine = Vec::with_capacity(k * (r1 - r0) * dim);
                        for probe in 0..k {
                            mine.extend_from_slice(
                                &p[(probe * rows + r0) * dim..(probe * rows + r1) * dim],
                            );
                        }
                        Some(mine)
                    }
                };
                RowBlock {
                    scratch: scratch(field, r1 - r0),
                    probes,
                    g_theta: Vec::new(),
                }
            })
            .collect();
        Self {
            field,
            dim,
            block,
            blocks,
            penalties: false,
            context: &[],
            context_grad: false,
        }
    }

    /// The same rows conditioned on `context (rows, k)`, sliced with the blocks (checked by
    /// the flow before).
    pub fn with_context(mut self, context: &'a [T]) -> Self {
        self.context = context;
        self
    }

    /// Context values per block.
    fn context_block(&self) -> usize {
        self.block * self.field.context_dim()
    }

    /// The same rows, also computing the penalty integrands `|v|^2` and `|dv/dz|_F^2` (one
    /// block of `rows` values each, after the divergence) in `eval_div` and `vjp`.
    pub fn with_penalties(mut self, penalties: bool) -> Self {
        self.penalties = penalties;
        self
    }

    /// The same rows with the context treated as parameters of the system: `num_params` adds
    /// its `rows * k` values after the field's, and `vjp` accumulates d/dc there, so a solve's
    /// parameter gradient ends with dL/dc (the context is constant along the solve, like the
    /// weights).
    pub fn with_context_grad(mut self, context_grad: bool) -> Self {
        self.context_grad = context_grad;
        self
    }

    /// Number of parameters of the system: the field's, then the context's values when its
    /// gradient is asked for.
    pub fn num_params(&self) -> usize {
        self.field.num_params()
            + if self.context_grad {
                self.context.len()
            } else {
                0
            }
    }

    /// v (rows, d).
    pub fn eval(&mut self, t: T, z: &[T], v: &mut [T]) {
        let (field, bd, bc) = (self.field, self.block * self.dim, self.context_block());
        let nb = self.blocks.len();
        self.blocks
            .par_iter_mut()
            .zip(z.par_chunks(bd))
            .zip(v.par_chunks_mut(bd))
            .zip(per_block(self.context, bc, nb))
            .for_each(|(((b, z), v), c)| {
                field.eval_batch(&mut b.scratch, Inputs::shared(t, z).with_context(c), v)
            });
    }

    /// Rows of each penalty block of the state: `rows` with penalties, else 0 (no blocks).
    fn penalty_rows(&self, rows: usize) -> usize {
        if self.penalties {
            rows
        } else {
            0
        }
    }

    /// The right-hand side `f = [v (rows, d), div (rows), penalties (rows each)]` at `z`.
    /// Without penalties the field's `eval_penalties_batch` gets empty penalty outputs, which
    /// is its `eval_div_batch`.
    pub fn eval_div(&mut self, t: T, z: &[T], f: &mut [T]) {
        let (field, bd, br) = (self.field, self.block * self.dim, self.block);
        let bc = self.context_block();
        let (n, nb) = (z.len(), self.blocks.len());
        let rows = n / self.dim;
        let pen = self.penalty_rows(rows);
        let (v, rest) = f.split_at_mut(n);
        let (div, tail) = rest.split_at_mut(rows);
        let (kin, frob) = tail[..2 * pen].split_at_mut(pen);
        self.blocks
            .par_iter_mut()
            .zip(z.par_chunks(bd))
            .zip(v.par_chunks_mut(bd))
            .zip(div.par_chunks_mut(br))
            .zip(per_block_mut(kin, br, nb))
            .zip(per_block_mut(frob, br, nb))
            .zip(per_block(self.context, bc, nb))
            .for_each(|((((((b, z), v), div), kinetic), frobenius), c)| {
                let trace = trace_of(&b.probes);
                let out = Integrands {
                    v,
                    div,
                    kinetic,
                    frobenius,
                };
                let x = Inputs::shared(t, z).with_context(c);
                field.eval_penalties_batch(&mut b.scratch, x, &trace, out);
            });
    }

    /// The field's `vjp_batch` over all rows, for the augmented state `[z (rows, d), D (rows),
    /// penalties (rows each)]` (only `z` is read): with the cotangent `a` of the same layout,
    /// writes the right-hand side into `out.f` and accumulates d/dz into `out.a_y[..rows * d]`
    /// (nothing depends on D or the penalty integrals) and d/dtheta into `out.a_p`.
    pub fn vjp(&mut self, t: T, z: &[T], a: &[T], out: VjpOut<'_, T>) {
        let n = z.len();
        let rows = n / self.dim;
        let pen = self.penalty_rows(rows);
        let (a_v, a_rest) = a.split_at(n);
        let (a_div, a_tail) = a_rest.split_at(rows);
        let (a_kin, a_frob) = a_tail[..2 * pen].split_at(pen);
        let (v, f_rest) = out.f.split_at_mut(n);
        let (div, f_tail) = f_rest.split_at_mut(rows);
        let (kin, frob) = f_tail[..2 * pen].split_at_mut(pen);
        let g_z = &mut out.a_y[..n];
        let (field, bd, br) = (self.field, self.block * self.dim, self.block);
        let (g_theta, g_c) = out.a_p.split_at_mut(field.num_params());
        let (bc, context) = (self.context_block(), self.context);
        let nb = self.blocks.len();
        if let [b] = self.blocks.as_mut_slice() {
            let x = Inputs::shared(t, z).with_context(context);
            let input = vjp_input(&b.probes, x, a_v, a_div).with_penalties(a_kin, a_frob);
            let out = VjpOutput::new(v, div, g_z, g_theta)
                .with_penalties(kin, frob)
                .with_context_grad(g_c);
            field.vjp_batch(&mut b.scratch, input, out);
            return;
        }
        self.blocks
            .par_iter_mut()
            .zip(z.par_chunks(bd))
            .zip(a_v.par_chunks(bd))
            .zip(a_div.par_chunks(br))
            .zip(v.par_chunks_mut(bd))
            .zip(div.par_chunks_mut(br))
            .zip(g_z.par_chunks_mut(bd))
            .zip(per_block(a_kin, br, nb))
            .zip(per_block(a_frob, br, nb))
            .zip(per_block_mut(kin, br, nb))
            .zip(per_block_mut(frob, br, nb))
            .zip(per_block(context, bc, nb))
            .zip(per_block_mut(g_c, bc, nb))
            .for_each(
                |((((((((((((b, z), a_v), a_div), v), div), g_z), a_k), a_f), k), f), c), gc)| {
                    b.g_theta.clear();
                    b.g_theta.resize(field.num_params(), T::zero());
                    let x = Inputs::shared(t, z).with_context(c);
                    let input = vjp_input(&b.probes, x, a_v, a_div).with_penalties(a_k, a_f);
                    let out = VjpOutput::new(v, div, g_z, &mut b.g_theta)
                        .with_penalties(k, f)
                        .with_context_grad(gc);
                    field.vjp_batch(&mut b.scratch, input, out);
                },
            );
        for b in &self.blocks {
            for (g, &x) in g_theta.iter_mut().zip(&b.g_theta) {
                *g = *g + x;
            }
        }
    }
}
