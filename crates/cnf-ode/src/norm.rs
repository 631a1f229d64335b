//! How the scaled local errors of the components become the one number the step-size controller
//! sees: the RMS over the whole state (Hairer's), or the largest of the RMS norms of groups of
//! components (one group per sample of a batch), so that every sample of a whole-batch solve is
//! held to the tolerances and not only the batch on average.
use std::ops::Range;

use num_traits::Float;

use crate::error::OdeError;

/// The norm of the scaled local error (`e_i / (atol_i + rtol_i max(|y_i|, |y_new_i|))`) that a
/// step must keep at or below 1. The same norm measures the state and its derivatives in the
/// automatic initial step, so the two stay consistent. Components outside
/// [`crate::Solver::error_components`] enter neither norm.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorNorm {
    /// The root mean square over all components of the norm (Hairer's; the default).
    #[default]
    Rms,
    /// The maximum over the groups of a [`SampleLayout`] of each group's root mean square: every
    /// sample of a batch solved as one state is held to the tolerances on its own. With one group
    /// this is [`ErrorNorm::Rms`] exactly (the same accepted steps).
    PerSample(SampleLayout),
}

/// One block of a [`SampleLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `samples x width` components, row-major: sample `b` owns `width` consecutive components.
    Rows(usize),
    /// `len` components shared by all samples: together (with everything after the layout's end)
    /// they form one group of their own.
    Shared(usize),
}

/// Which sample each component of a state belongs to: the state is a sequence of blocks, each
/// either `samples` rows of some width (row-major) or components shared by all samples.
///
/// A CNF's augmented state `[z (B x d, row-major), log-det (B), k more per-sample integrals
/// (B each)]` is `SampleLayout::rows(B, d).then_columns(1 + k)`: sample `b` is `z[b d..(b + 1) d]`
/// plus the `b`-th entry of each column. Components past the layout's end are shared (one
/// group); components outside [`crate::Solver::error_components`] are in no group at all (e.g.
/// regulariser integrals, which should not shorten the steps).
///
/// ```
/// use cnf_ode::{Block, SampleLayout};
/// let layout = SampleLayout::rows(1024, 2).then_columns(1);
/// assert_eq!(layout.len(), 1024 * 3);
/// assert_eq!(layout.blocks(), &[Block::Rows(2), Block::Rows(1)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleLayout {
    samples: usize,
    blocks: Vec<Block>,
}

impl SampleLayout {
    /// `samples` rows of `width` components, row-major (a [`crate::Batch`]'s layout).
    pub fn rows(samples: usize, width: usize) -> Self {
        Self {
            samples,
            blocks: vec![Block::Rows(width)],
        }
    }
    /// A layout from its blocks.
    pub fn new(samples: usize, blocks: Vec<Block>) -> Self {
        Self { samples, blocks }
    }
    /// Then another block of `samples` rows of `width`.
    pub fn then_rows(mut self, width: usize) -> Self {
        self.blocks.push(Block::Rows(width));
        self
    }
    /// Then `k` columns of one component per sample (`k` blocks of `samples` scalars).
    pub fn then_columns(mut self, k: usize) -> Self {
        self.blocks.extend(std::iter::repeat_n(Block::Rows(1), k));
        self
    }
    /// Then `len` components shared by all samples (the shared group).
    pub fn then_shared(mut self, len: usize) -> Self {
        self.blocks.push(Block::Shared(len));
        self
    }
    /// Number of samples (groups besides the shared one).
    pub fn samples(&self) -> usize {
        self.samples
    }
    /// The blocks, in state order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }
    /// Number of components the blocks cover.
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|&b| self.block_len(b)).sum()
    }
    /// True when the blocks cover no component.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of components of one block.
    fn block_len(&self, block: Block) -> usize {
        match block {
            Block::Rows(w) => self.samples * w,
            Block::Shared(len) => len,
        }
    }
    /// The layout of the continuous adjoint's state `[y_out, a_out, y[r], a[r], a_p]` for a
    /// state `y` of `n` components in this layout (padded with shared components to `n`) whose
    /// error norm covers the window `r` (see `grad::backsolve`): sample `b`'s group holds its
    /// components of both `y[r]` and its cotangent `a[r]`; `a_p` is shared. The window must
    /// start and end at block boundaries.
    pub(crate) fn adjoint(&self, n: usize, r: Range<usize>) -> Result<Self, OdeError> {
        let mut padded = self.blocks.clone();
        if n > self.len() {
            padded.push(Block::Shared(n - self.len()));
        }
        let mut inside = Vec::new();
        let mut start = 0;
        for block in padded {
            let end = start + self.block_len(block);
            if start >= r.start && end <= r.end {
                inside.push(block);
            } else if start < r.end && end > r.start {
                return Err(OdeError::ErrorComponentsSplitBlock {
                    start: r.start,
                    end: r.end,
                    block_start: start,
                    block_end: end,
                });
            }
            start = end;
        }
        let mut blocks = vec![Block::Shared(2 * (n - r.len()))];
        blocks.extend_from_slice(&inside);
        blocks.extend_from_slice(&inside);
        Ok(Self {
            samples: self.samples,
            blocks,
        })
    }
}

/// A block resolved to positions: components `start..start + width * groups.len()`, `width` per
/// group, groups `groups` (the shared group is number `samples`).
#[derive(Debug, Clone)]
struct Placed {
    start: usize,
    width: usize,
    groups: Range<usize>,
}

/// The groups of a solve: the layout placed over the norm's components, with per-group
/// accumulators allocated once.
#[derive(Debug, Clone)]
pub(crate) struct Groups<T> {
    placed: Vec<Placed>,
    /// Components of each group inside the norm (samples, then the shared group).
    counts: Vec<T>,
    acc_main: Vec<T>,
    acc_aux: Vec<T>,
}

impl<T: Float> Groups<T> {
    /// The groups of `layout` over a state of `n` components whose norm covers `norm`.
    pub(crate) fn new(
        layout: &SampleLayout,
        n: usize,
        norm: &Range<usize>,
    ) -> Result<Self, OdeError> {
        let len = layout.len();
        if len > n {
            return Err(OdeError::DimensionMismatch {
                expected: n,
                found: len,
            });
        }
        let b = layout.samples;
        let mut placed = Vec::with_capacity(layout.blocks.len() + 1);
        let mut start = 0;
        for block in &layout.blocks {
            let (width, groups) = match *block {
                Block::Rows(w) => (w, 0..b),
                Block::Shared(len) => (len, b..b + 1),
            };
            let end = start + width * groups.len();
            if end > start {
                placed.push(Placed {
                    start,
                    width,
                    groups,
                });
            }
            start = end;
        }
        if n > start {
            placed.push(Placed {
                start,
                width: n - start,
                groups: b..b + 1,
            });
        }
        let mut counts = vec![T::zero(); b + 1];
        for_each_in(&placed, norm.clone(), &mut |_, g| {
            counts[g] = counts[g] + T::one()
        });
        Ok(Self {
            placed,
            counts,
            acc_main: vec![T::zero(); b + 1],
            acc_aux: vec![T::zero(); b + 1],
        })
    }

    /// `n_norm * max_g (sum_{i in g} v_i / n_g)` for `v_i = sq(i)` over the components `norm`:
    /// the square of Hairer's unnormalised norm `sqrt(sum v_i)` when there is one group.
    pub(crate) fn sum_sq(&mut self, norm: Range<usize>, sq: impl Fn(usize) -> T) -> T {
        let n: T = crate::util::cast(norm.len() as f64);
        self.acc_main.fill(T::zero());
        let acc = &mut self.acc_main;
        for_each_in(&self.placed, norm, &mut |i, g| acc[g] = acc[g] + sq(i));
        // acc_g (n / n_g) of the group with the largest mean: exactly the sum with one group.
        let (mut worst, mut at) = (T::zero(), None);
        for (g, (&a, &c)) in self.acc_main.iter().zip(&self.counts).enumerate() {
            if c != T::zero() {
                let v = a / c;
                if at.is_none() || v.is_nan() || v > worst {
                    (worst, at) = (v, Some(g));
                }
            }
        }
        at.map_or(T::zero(), |g| self.acc_main[g] * (n / self.counts[g]))
    }

    /// The step's error norm from the squared scaled errors `r5` (and `aux` for DOP853, empty
    /// otherwise) of the components `norm` (`r5[i - norm.start]` is component i's): the largest
    /// over the groups of Hairer's error of each group.
    pub(crate) fn error(&mut self, h: T, norm: Range<usize>, r5: &[T], aux: &[T]) -> T {
        let off = norm.start;
        self.acc_main.fill(T::zero());
        let acc = &mut self.acc_main;
        for_each_in(&self.placed, norm.clone(), &mut |i, g| {
            acc[g] = acc[g] + r5[i - off]
        });
        if aux.is_empty() {
            return h.abs() * max_mean(&self.acc_main, &self.counts).sqrt();
        }
        self.acc_aux.fill(T::zero());
        let acc = &mut self.acc_aux;
        for_each_in(&self.placed, norm, &mut |i, g| {
            acc[g] = acc[g] + aux[i - off]
        });
        // Per group: acc_main / sqrt(n (acc_main + 0.01 acc_aux)), as Hairer's DOP853 over the whole state.
        let mut worst = T::zero();
        for ((&a5, &a3), &c) in self.acc_main.iter().zip(&self.acc_aux).zip(&self.counts) {
            if c == T::zero() {
                continue;
            }
            let mut denom = a5 + crate::util::cast::<T>(0.01) * a3;
            if denom <= T::zero() {
                denom = T::one();
            }
            let e = h.abs() * a5 / (c * denom).sqrt();
            if e.is_nan() {
                return e;
            }
            worst = worst.max(e);
        }
        worst
    }
}

/// max_g acc_g / n_g over the non-empty groups; NaN when any is NaN.
#[inline]
fn max_mean<T: Float>(acc: &[T], counts: &[T]) -> T {
    let mut worst = T::zero();
    for (&a, &c) in acc.iter().zip(counts) {
        if c != T::zero() {
            let v = a / c;
            if v.is_nan() {
                return v;
            }
            worst = worst.max(v);
        }
    }
    worst
}

/// Calls `f(i, group)` for every component `i` of `norm`, in increasing order.
#[inline]
fn for_each_in(placed: &[Placed], norm: Range<usize>, f: &mut impl FnMut(usize, usize)) {
    for p in placed {
        let end = p.start + p.width * p.groups.len();
        let (lo, hi) = (p.start.max(norm.start), end.min(norm.end));
        if lo >= hi {
            continue;
        }
        if p.width == 1 {
            for (i, g) in (lo..hi).zip(p.groups.start + (lo - p.start)..) {
                f(i, g);
            }
            continue;
        }
        let first = (lo - p.start) / p.width;
        let last = (hi - 1 - p.start) / p.width;
        for r in first..=last {
            let row = p.start + r * p.width;
            let g = p.groups.start + r;
            for i in row.max(lo)..(row + p.width).min(hi) {
                f(i, g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups_of(layout: &SampleLayout, n: usize, norm: Range<usize>) -> Vec<(usize, usize)> {
        let g = Groups::<f64>::new(layout, n, &norm).unwrap();
        let mut out = Vec::new();
        for_each_in(&g.placed, norm, &mut |i, g| out.push((i, g)));
        out
    }

    #[test]
    fn cnf_layout_assigns_rows_and_columns_to_their_samples() {
        // [z (3 x 2), D (3), R (3)], shared tail of 2.
        let l = SampleLayout::rows(3, 2).then_columns(2);
        let all = groups_of(&l, 14, 0..14);
        let want: Vec<usize> = vec![0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2, 3, 3];
        assert_eq!(all.iter().map(|p| p.1).collect::<Vec<_>>(), want);
        assert_eq!(
            all.iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..14).collect::<Vec<_>>()
        );
        // A window: z[1..] and D only.
        let win = groups_of(&l, 14, 1..9);
        assert_eq!(
            win,
            vec![
                (1, 0),
                (2, 1),
                (3, 1),
                (4, 2),
                (5, 2),
                (6, 0),
                (7, 1),
                (8, 2)
            ]
        );
    }

    #[test]
    fn adjoint_layout_groups_state_and_cotangent_of_each_sample() {
        // Whole window: [y (2 samples + 1 shared, padded by 1), a (same), a_p (1)].
        let l = SampleLayout::rows(2, 1).then_shared(1);
        let t = l.adjoint(4, 0..4).unwrap();
        assert_eq!(
            t.blocks(),
            &[
                Block::Shared(0),
                Block::Rows(1),
                Block::Shared(1),
                Block::Shared(1),
                Block::Rows(1),
                Block::Shared(1),
                Block::Shared(1)
            ]
        );
        let g: Vec<usize> = groups_of(&t, 9, 0..9).iter().map(|p| p.1).collect();
        assert_eq!(g, vec![0, 1, 2, 2, 0, 1, 2, 2, 2]);
        // A CNF state [z (2 x 2), D (2), K (2)] whose norm covers z and D: the backward state
        // is [K, a_K, z, D, a_z, a_D, a_p] and only z, D and their cotangents are grouped.
        let cnf = SampleLayout::rows(2, 2).then_columns(2);
        let t = cnf.adjoint(8, 0..6).unwrap();
        let g = groups_of(&t, 17, 4..16);
        let want: Vec<usize> = vec![0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1];
        assert_eq!(g.iter().map(|p| p.1).collect::<Vec<_>>(), want);
        // A window that splits a block is refused.
        assert!(cnf.adjoint(8, 0..5).is_err());
        assert!(cnf.adjoint(8, 1..6).is_err());
    }

    #[test]
    fn a_layout_longer_than_the_state_is_refused() {
        let l = SampleLayout::rows(4, 2);
        assert!(Groups::<f64>::new(&l, 7, &(0..7)).is_err());
    }
}
