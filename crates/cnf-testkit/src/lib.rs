//! # cnf-testkit: fixtures for the workspace's tests, benches and examples
//!
//! Not part of any public API (`publish = false`); crates use it as a dev-dependency.
//! - [`problems`]: the benchmark problems (Arenstorf, Kepler, Lorenz) with reference solutions
//!   and scipy's measured work-precision tables;
//! - [`floor`]: hand-written solver loops (Dopri5 over `[f64; N]`), the floor the small-state
//!   benchmarks compare cnf-ode against;
//! - [`alloc_count`]: a counting global allocator, for "this loop does not allocate" tests;
//! - [`stats`]: the median the benchmarks and examples report.
#![warn(missing_docs)]
pub mod alloc_count;
pub mod floor;
pub mod problems;
pub mod stats;
