//! Vector fields for continuous normalizing flows (FFJORD-style): `v(t, z)`, its divergence
//! `tr(dv/dz)` and the vector-Jacobian products the adjoint method needs.
//!
//! ```
//! use cnf_field::{Activation, DualField, Inputs, Mlp, MlpConfig, Trace, VectorField};
//!
//! // v(t, z) on R^2: one hidden layer of 16 tanh units, seeded PyTorch-style initialisation.
//! let mlp = Mlp::<f64>::new(MlpConfig::new(2, &[16], Activation::Tanh), 0)?;
//! let z = [0.5, -1.0, 2.0, 0.25, -0.3, 0.8]; // 3 points, (B, d) row-major
//! let (mut v, mut div) = (vec![0.0; 6], vec![0.0; 3]);
//! let mut scratch = mlp.scratch(3); // work buffers, reused across calls
//! let x = Inputs::shared(0.5, &z); // one time for the batch (`Inputs::per_row`: one per point)
//! mlp.eval_div_batch(&mut scratch, x, &Trace::Exact, &mut v, &mut div);
//!
//! // The dual-number reference path gives the same v and exact divergence.
//! let reference = DualField::new(mlp.clone());
//! let (mut v_ref, mut div_ref) = (vec![0.0; 6], vec![0.0; 3]);
//! let mut s = reference.scratch(3);
//! reference.eval_div_batch(&mut s, x, &Trace::Exact, &mut v_ref, &mut div_ref);
//! for (a, b) in v.iter().zip(&v_ref).chain(div.iter().zip(&div_ref)) {
//!     assert!((a - b).abs() < 1e-12, "{a} vs {b}");
//! }
//! # Ok::<(), cnf_field::FieldError>(())
//! ```
//!
//! # Design
//!
//! * [`VectorField`] is the batched interface the flow calls: `eval_batch` (`v`),
//!   `eval_div_batch` (`v` and divergence in one forward pass) and `vjp_batch` (gradients of
//!   `a_v.v + a_div.div` with respect to `z` and the parameters, accumulated; the point and
//!   cotangents come in a [`VjpInput`], the buffers it writes in a [`VjpOutput`]). Work buffers
//!   live in a per-field `Scratch`, so the hot path does not allocate in steady state (apart
//!   from the packing workspace the `gemm` crate allocates inside a GEMM call). Shapes in these
//!   methods are only `debug_assert`ed; [`ShapeCheck`] validates user buffers up front. Every
//!   method takes its point as one [`Inputs`] value: the time ([`Time::Shared`] by the batch,
//!   as in an ODE solve, or [`Time::PerRow`], as in flow matching), the points `z (B, d)` and a
//!   per-row context `c (B, k)` ([`VectorField::context_dim`]; empty for unconditional
//!   fields, `(B, k)` for the conditional [`Mlp`] of [`MlpConfig::with_context`], which takes
//!   it into its first layer: `v(t, z, c) = MLP([z, t, c])`). Tangents and the divergence are
//!   over `z` only; [`VjpOutput::with_context_grad`] also accumulates `d/dc`.
//!
//! * **Primal + tangent carry** ([`Mlp`]). For a batch of `B` points the network runs as GEMMs:
//!   per layer `a = h W^T + b`, `h' = s(a)`. Alongside, each point carries `nt` tangent
//!   directions `U` (rows `(b, p)` of a `(B * nt, width)` matrix, so one GEMM moves all of them):
//!   `A = U W^T`, `U' = s'(a) * A`. The time and context inputs have no tangent, so the first
//!   layer uses only the `z` columns of `W0`. At the output the tangent rows are `J u_p`.
//!
//!   With per-row times a plain-concat layer is unchanged (the time column of `h_0` holds each
//!   row's `t_b`, so `W0`'s time column gives the per-row term `w_t t_b`).
//!
//!   Concat-squash layers ([`LayerKind::ConcatSquash`], `h' = (W h + b) * sigmoid(Wg t + bg) +
//!   Wb t`) at a shared time are folded once per call into effective weights `diag(g) W`,
//!   `g * b + Wb t`, so the same GEMM pipeline runs them; the reverse pass chains the
//!   effective-weight gradients back to `W, b, Wg, bg, Wb`. At per-row times the gates are a
//!   `(B, out)` matrix applied after the stored weights' product (`a = G * (h W^T + b) +
//!   t Wb^T`, tangents `G * (U W^T)`), and the reverse pass scales the cotangents by `G`
//!   before the same products.
//!
//! * **Exact vs Hutchinson** ([`Trace`]). Exact: the `d` tangents are the unit vectors and the
//!   divergence is the diagonal of `J`, `sum_j e_j.(J e_j)`. Hutchinson: the tangents are `k`
//!   probes per point (see [`rademacher_probes`], [`gaussian_probes`]) and the estimate is
//!   `mean_p e_p.(J e_p)`, unbiased for probes with identity covariance. Both are the same
//!   contraction `norm * sum_p u_p.(J u_p)` with `norm = 1` or `1/k`.
//!
//! * **Reverse pass**. `vjp_batch` runs the forward pass (recording `s'` and `s''`), seeds the
//!   cotangent of the output tangents with `a_div * norm * u_p` and of `v` with `a_v`, and
//!   sweeps back through the layers: `gW += ga^T h + gA^T U`, `gh = ga W`, `gU = gA W`, then
//!   through the activation `ga = s' gh + s'' sum_p gU_p A_p`, `gA = s' gU`. The `s''` term is
//!   the derivative of the tangent path; it is why each activation provides `s, s', s''`.
//!
//! * **Reference path** ([`GenericField`], [`DualField`]). Fields written over a generic float
//!   evaluate on forward dual numbers (`J u`, divergence) and nested duals (the second
//!   derivatives in the gradient of the divergence). The MLP and [`Linear`] implement it, and
//!   the fast paths are tested against it and against finite differences.
//!
//! * **Fused kernel**. On CPUs with AVX-512, from 8 points on, the products run on a kernel of
//!   its own (f32 and f64): `W^T` packed once per set of weights (cached in the scratch, rows on
//!   whole cache lines), register tiles accumulated over the whole input width, and the
//!   elementwise step applied to the tile before it leaves the registers: bias + tanh with `s'`
//!   and `s''` for hidden layers, the scaling `U' = s'(a) * A` for tangents; narrow products
//!   (the output layer, `g_z`) as dot products. Elsewhere (and for the other activations'
//!   primal products) the same steps run as the `gemm` crate's GEMM plus a separate pass, the
//!   oracle the kernel is tested against.
//!
//! * **Precision**: everything is generic over [`Real`] (f32, f64). The fast paths use
//!   branch-free activations so the loops vectorise: a rational `tanh` in f32 (a few ulp), and in
//!   f64 a table-free `exp` (<= 2 ulp) under `tanh` (<= 3 ulp), `sech^2`, softplus, swish and ELU
//!   (error bounds asserted in `tests/activation_accuracy.rs`).
//!
//! * **Weights**: safetensors + JSON config ([`Mlp::save`], [`Mlp::load`],
//!   [`Mlp::to_safetensors_bytes`]) and torch-layout `.npz` import ([`Mlp::from_npz`]).

#![warn(missing_docs)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]
pub mod dual;
pub mod error;
pub mod field;
#[doc(hidden)]
pub mod kernel;
pub mod linear;
pub mod mlp;
pub mod npy_header;
pub mod real;

pub use dual::{DualField, DualScratch, GenericField};
pub use error::FieldError;
pub use field::{
    gaussian_probes, orthogonal_probes, rademacher_probes, Inputs, Integrands, ShapeCheck, Time,
    Trace, VectorField, VjpInput, VjpOutput,
};
pub use linear::Linear;
pub use mlp::{
    Activation, LayerKind, Mlp, MlpConfig, MlpScratch, MAX_POINT_SCRATCH_BYTES, TRACE_BLOCK_BYTES,
};
pub use real::Real;
