//! Optimisers over flat parameter buffers.

pub mod adam;

pub use adam::{Adam, AdamConfig, LrSchedule};
