//! Typed errors for everything that takes user data (constructors, loaders, files).

use thiserror::Error;

/// Errors raised by constructors, loaders and other public entry points taking user data.
#[derive(Debug, Error)]
pub enum FieldError {
    /// A buffer or tensor has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected:?}, found {found:?}")]
    Shape {
        /// Which buffer or tensor.
        what: String,
        /// The shape that was required.
        expected: Vec<usize>,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A weight (or input) is NaN or infinite.
    #[error("non-finite value in {what} at flat index {index}")]
    NonFinite {
        /// Which buffer or tensor.
        what: String,
        /// Flat (row-major) index of the first offending entry.
        index: usize,
    },
    /// An activation name that is not one of tanh, softplus, swish (silu), elu.
    #[error("unknown activation {0:?} (expected tanh, softplus, swish/silu or elu)")]
    UnknownActivation(String),
    /// A tensor that the architecture requires is absent from the file.
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
    /// A tensor has an element type other than f32 / f64.
    #[error("tensor {tensor:?} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// Tensor name.
        tensor: String,
        /// The dtype as found in the file.
        dtype: String,
    },
    /// An architecture that cannot be built (zero dimension, zero width, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A weights file holds arrays that the architecture does not use (e.g. `W4`, `b4` for a
    /// network with three hidden layers): importing it would silently drop them.
    #[error(
        "the file holds arrays the architecture does not use: {} (it uses {expected}; \
         do the hidden widths match the file?)",
        unused.join(", ")
    )]
    UnusedTensors {
        /// The arrays not used, sorted.
        unused: Vec<String>,
        /// How many arrays the architecture uses.
        expected: usize,
    },
    /// A computation would need more memory than the field allows (the figure is in the
    /// message), e.g. the exact trace of a very wide input.
    #[error("{0}")]
    TooLarge(String),
    /// A file that is not a valid safetensors / npz / JSON document.
    #[error("malformed file: {0}")]
    Malformed(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The JSON configuration could not be (de)serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Checks that `buf` holds exactly `expected` elements (the product of `shape`).
pub(crate) fn check_len<T>(what: &str, buf: &[T], shape: &[usize]) -> Result<(), FieldError> {
    let expected: usize = shape.iter().product();
    if buf.len() == expected {
        Ok(())
    } else {
        Err(FieldError::Shape {
            what: what.to_string(),
            expected: shape.to_vec(),
            found: vec![buf.len()],
        })
    }
}

/// Checks that every entry of `buf` is finite.
pub(crate) fn check_finite<T: num_traits::Float>(what: &str, buf: &[T]) -> Result<(), FieldError> {
    match buf.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(FieldError::NonFinite {
            what: what.to_string(),
            index,
        }),
    }
}
